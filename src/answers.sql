-- Survey answers back into the program: each customer's latest NPS and
-- CSAT answer in customer_state, kept by a trigger on the shop's answers
-- table (src/answers.c), so that segment rules can read last_nps,
-- last_csat and their times.  One answers table is tracked at a time.

CREATE TABLE post_purchase.tracked_survey_answers (
	answers regclass PRIMARY KEY,
	customer_column name NOT NULL,
	answered_at_column name NOT NULL,
	score_column name NOT NULL,
	kind_column name NOT NULL,
	token_column name,
	csat_scale integer NOT NULL,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.tracked_survey_answers IS
	'the shop''s survey answers table that track_survey_answers attached its trigger to';
SELECT pg_catalog.pg_extension_config_dump('post_purchase.tracked_survey_answers', '');

CREATE FUNCTION post_purchase.track_answers_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.track_answers_trigger() FROM PUBLIC;

-- TRUNCATE of the answers table empties the answers' columns of the state.
CREATE FUNCTION post_purchase.track_answers_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	PERFORM post_purchase.forget_survey_answers();
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.track_answers_truncate() FROM PUBLIC;

-- Empty every customer's answer columns (untracking, TRUNCATE); the rows
-- that had answers only.
CREATE FUNCTION post_purchase.forget_survey_answers() RETURNS void
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
	UPDATE post_purchase.customer_state s
	SET last_nps = NULL, last_nps_at = NULL, last_csat = NULL, last_csat_at = NULL
	WHERE s.last_nps_at IS NOT NULL OR s.last_csat_at IS NOT NULL;
END;
REVOKE ALL ON FUNCTION post_purchase.forget_survey_answers() FROM PUBLIC;

-- Every customer's latest answers recomputed from the tracked answers
-- table, set-based: the backfill of track_survey_answers(), and after
-- track_orders() rebuilt the state.  The selection and order are the
-- trigger's (src/answers.c): kind nps or csat in any case, a score within
-- the scale, the latest answered_at, at the same time the lower score.
-- Writes only the rows that change, and marks none (as the orders'
-- backfill): refresh_segments() brings the segments along.  Returns how
-- many customers' answers changed.
CREATE FUNCTION post_purchase.refresh_survey_answers() RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t post_purchase.tracked_survey_answers;
	changed bigint;
BEGIN
	SELECT * INTO t FROM post_purchase.tracked_survey_answers;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase tracks no survey answers'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.track_survey_answers() first.';
	END IF;
	EXECUTE format(
		'WITH a AS (
			SELECT %1$I::pg_catalog.text COLLATE pg_catalog."C" AS customer_id,
				   pg_catalog.lower(%4$I::pg_catalog.text) AS kind, %3$I::pg_catalog.int4 AS score, %2$I AS at
			FROM %6$s %5$s
			WHERE %1$I IS NOT NULL AND %2$I IS NOT NULL AND %3$I IS NOT NULL
			  AND pg_catalog.lower(%4$I::pg_catalog.text) OPERATOR(pg_catalog.=) ANY (ARRAY[''nps'', ''csat''])
			  AND %3$I OPERATOR(pg_catalog.>=) CASE WHEN pg_catalog.lower(%4$I::pg_catalog.text)
															OPERATOR(pg_catalog.=) ''nps'' THEN 0 ELSE 1 END
			  AND %3$I OPERATOR(pg_catalog.<=) CASE WHEN pg_catalog.lower(%4$I::pg_catalog.text)
															OPERATOR(pg_catalog.=) ''nps'' THEN 10 ELSE %7$s END
		), latest AS (
			SELECT DISTINCT ON (a.customer_id, a.kind) a.customer_id, a.kind, a.score, a.at
			FROM a ORDER BY a.customer_id, a.kind, a.at DESC, a.score
		), l AS (
			SELECT x.customer_id,
				   pg_catalog.max(x.score) FILTER (WHERE x.kind OPERATOR(pg_catalog.=) ''nps'') AS nps_score,
				   pg_catalog.max(x.at) FILTER (WHERE x.kind OPERATOR(pg_catalog.=) ''nps'') AS nps_at,
				   pg_catalog.max(x.score) FILTER (WHERE x.kind OPERATOR(pg_catalog.=) ''csat'') AS csat_score,
				   pg_catalog.max(x.at) FILTER (WHERE x.kind OPERATOR(pg_catalog.=) ''csat'') AS csat_at
			FROM latest x GROUP BY x.customer_id
		)
		UPDATE post_purchase.customer_state s
		SET last_nps = l.nps_score, last_nps_at = l.nps_at, last_csat = l.csat_score, last_csat_at = l.csat_at
		FROM post_purchase.customer_state o LEFT JOIN l ON l.customer_id OPERATOR(pg_catalog.=) o.customer_id
		WHERE s.customer_id OPERATOR(pg_catalog.=) o.customer_id
		  AND (o.last_nps, o.last_nps_at, o.last_csat, o.last_csat_at)
			  IS DISTINCT FROM (l.nps_score, l.nps_at, l.csat_score, l.csat_at)',
		t.customer_column, t.answered_at_column, t.score_column, t.kind_column, t.answers,
		post_purchase.tracked_rows_keyword(t.answers),
		t.csat_scale);
	GET DIAGNOSTICS changed = ROW_COUNT;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_survey_answers() IS
	'recompute every customer''s latest NPS and CSAT answer in the customer state from the tracked answers table';
REVOKE ALL ON FUNCTION post_purchase.refresh_survey_answers() FROM PUBLIC;

CREATE FUNCTION post_purchase.track_survey_answers(answers regclass,
												   customer_column name DEFAULT 'customer_id',
												   answered_at_column name DEFAULT 'answered_at',
												   score_column name DEFAULT 'score',
												   kind_column name DEFAULT 'kind',
												   token_column name DEFAULT NULL,
												   csat_scale integer DEFAULT 5)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	tracked regclass;
	column_type regtype;
BEGIN
	-- the backfill must see every answer committed before the lock
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_survey_answers() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT t.answers INTO tracked FROM post_purchase.tracked_survey_answers t;
	IF FOUND THEN
		RAISE EXCEPTION 'post_purchase already tracks survey answers in %', tracked
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_survey_answers() first; one answers table is tracked at a time.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = answers) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', answers USING ERRCODE = 'wrong_object_type';
	END IF;
	-- the scales of csat() and csat_summary() (src/survey.c)
	IF csat_scale IS NULL OR csat_scale NOT IN (3, 5, 7, 10) THEN
		RAISE EXCEPTION 'CSAT scale must be 3, 5, 7 or 10, not %', coalesce(csat_scale::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- the customer keys as the order trigger keys them (the same types)
	column_type := post_purchase.tracked_column_type(answers, customer_column, 'customer',
		ARRAY['bigint', 'integer', 'uuid', 'text', 'character varying']::regtype[]);
	column_type := post_purchase.tracked_column_type(answers, answered_at_column, 'answered_at',
		ARRAY['timestamp with time zone']::regtype[]);
	column_type := post_purchase.tracked_column_type(answers, score_column, 'score',
		ARRAY['smallint', 'integer', 'bigint']::regtype[]);
	column_type := post_purchase.tracked_column_type(answers, kind_column, 'kind',
		ARRAY['text', 'character varying']::regtype[]);
	IF token_column IS NOT NULL THEN
		column_type := post_purchase.tracked_column_type(answers, token_column, 'token',
			ARRAY['uuid', 'text', 'character varying']::regtype[]);
	END IF;

	-- no answer may change between the backfill and the trigger taking over
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', answers);
	INSERT INTO post_purchase.tracked_survey_answers
		VALUES (answers, customer_column, answered_at_column, score_column, kind_column, token_column, csat_scale);
	EXECUTE format('CREATE TRIGGER post_purchase_track_answers AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_answers_trigger(%L, %L, %L, %L, %L, %L)',
				   answers, customer_column, answered_at_column, score_column, kind_column,
				   coalesce(token_column, ''), csat_scale);
	EXECUTE format('CREATE TRIGGER post_purchase_track_answers_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_answers_truncate()', answers);
	-- a delete of the kept answer recomputes its customer through it
	PERFORM post_purchase.ensure_customer_index(answers, customer_column, 'survey answers');
	PERFORM post_purchase.refresh_survey_answers();
END
$$;
COMMENT ON FUNCTION post_purchase.track_survey_answers(regclass, name, name, name, name, name, integer) IS
	'attach the survey answers trigger to the shop''s answers table and backfill each customer''s latest NPS and CSAT answer';
REVOKE ALL ON FUNCTION post_purchase.track_survey_answers(regclass, name, name, name, name, name, integer) FROM PUBLIC;

CREATE FUNCTION post_purchase.untrack_survey_answers(answers regclass)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.tracked_survey_answers t WHERE t.answers = untrack_survey_answers.answers;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase does not track survey answers in %', answers
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('DROP TRIGGER post_purchase_track_answers ON %s', answers);
	EXECUTE format('DROP TRIGGER post_purchase_track_answers_truncate ON %s', answers);
	-- answers nobody keeps current any more would mislead the rules
	PERFORM post_purchase.forget_survey_answers();
END
$$;
COMMENT ON FUNCTION post_purchase.untrack_survey_answers(regclass) IS
	'remove the survey answers trigger and the answers kept in the customer state';
REVOKE ALL ON FUNCTION post_purchase.untrack_survey_answers(regclass) FROM PUBLIC;
