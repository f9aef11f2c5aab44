-- Segments: named rules over customer_metrics, with a membership history
-- that journeys react to.  Orders change memberships in their own
-- transaction (the order trigger evaluates them, src/segments.c); the
-- passage of time changes them through refresh_segments(); a new segment,
-- or a new rule, is applied to every customer at once (refresh_segment()).

CREATE TABLE post_purchase.segments (
	name text PRIMARY KEY CHECK (name <> '' AND length(name) <= 100),
	rule text NOT NULL,
	builtin boolean NOT NULL DEFAULT false,
	owner regrole NOT NULL DEFAULT current_user::regrole,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.segments IS
	'segments: a boolean SQL expression over the columns of customer_metrics';

-- Rules and step conditions run as the role in their row's owner column
-- (segments.c, journeys.c), also when the workers, a superuser's
-- processes, evaluate them.  So only a member of the owner may write such
-- a row, and only a member of a role may make it the owner: a role granted
-- INSERT or UPDATE on these tables can neither lend its SQL a superuser's
-- rights nor change the SQL a superuser's row runs.  TG_ARGV[0] names the
-- kind of row; journey steps are checked against their journey's owner.
CREATE FUNCTION post_purchase.check_owner() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	owners regrole[];
	owner regrole;
	label text;
BEGIN
	IF TG_ARGV[0] = 'journey step' THEN
		label := NEW.journey || '.' || NEW.step;
		owners := ARRAY(SELECT j.owner FROM post_purchase.journeys j WHERE j.name = NEW.journey);
		IF TG_OP = 'UPDATE' THEN
			owners := owners || ARRAY(SELECT j.owner FROM post_purchase.journeys j WHERE j.name = OLD.journey);
		END IF;
	ELSE
		label := NEW.name;
		owners := ARRAY[NEW.owner];
		IF TG_OP = 'UPDATE' THEN
			owners := owners || OLD.owner;
		END IF;
	END IF;
	FOREACH owner IN ARRAY owners LOOP
		IF NOT pg_has_role(current_user, owner, 'MEMBER') THEN
			RAISE EXCEPTION 'permission denied to write % "%" as owned by role %', TG_ARGV[0], label, owner
				USING ERRCODE = 'insufficient_privilege',
					  DETAIL = format('The %s''s SQL runs as its owner; only a member of that role may write it.', TG_ARGV[0]);
		END IF;
	END LOOP;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_owner() FROM PUBLIC;
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.segments
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('segment');

CREATE TABLE post_purchase.segment_memberships (
	customer_id text NOT NULL,
	segment text NOT NULL REFERENCES post_purchase.segments ON DELETE CASCADE ON UPDATE CASCADE,
	entered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	exited_at timestamptz,
	CHECK (exited_at >= entered_at)
);
-- one open membership per customer and segment, found by customer (the
-- order trigger, in_segment) or by segment (segment_members, refreshes)
CREATE UNIQUE INDEX segment_memberships_open ON post_purchase.segment_memberships (customer_id, segment)
	WHERE exited_at IS NULL;
CREATE INDEX segment_memberships_open_by_segment ON post_purchase.segment_memberships (segment)
	WHERE exited_at IS NULL;
COMMENT ON TABLE post_purchase.segment_memberships IS
	'who entered and left each segment when; an open membership has no exited_at';

CREATE FUNCTION post_purchase.parse_segment_rule(rule text, what text) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION post_purchase.parse_segment_rule(text, text) FROM PUBLIC;

-- A rule must be one boolean expression over customer_metrics: parse it (no
-- second statement or clause may ride along), then plan it, so typos and
-- unknown columns fail at creation.  Journey step conditions are checked
-- the same way; what names the rule in messages.
CREATE FUNCTION post_purchase.check_segment_rule(rule text, what text DEFAULT 'segment rule') RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF rule IS NULL OR btrim(rule) = '' THEN
		RAISE EXCEPTION 'a % must not be empty', what USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM post_purchase.parse_segment_rule(rule, what);
	BEGIN
		EXECUTE format('SELECT (%s)::boolean FROM post_purchase.customer_metrics LIMIT 0', rule);
	EXCEPTION WHEN syntax_error OR undefined_column OR undefined_function OR datatype_mismatch
			  OR cannot_coerce OR undefined_table OR ambiguous_column THEN
		RAISE EXCEPTION 'invalid %: %', what, SQLERRM
			USING ERRCODE = SQLSTATE,
				  DETAIL = format('The rule was: %s', rule),
				  HINT = format('A %s is a boolean SQL expression over the columns of post_purchase.customer_metrics.', what);
	END;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_segment_rule(text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.create_segment(name text, rule text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	seg post_purchase.segments;
BEGIN
	IF EXISTS (SELECT FROM post_purchase.segments s WHERE s.name = create_segment.name) THEN
		RAISE EXCEPTION 'segment "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Use post_purchase.set_segment_rule() to change its rule.';
	END IF;
	PERFORM post_purchase.check_segment_rule(rule);
	INSERT INTO post_purchase.segments (name, rule) VALUES (name, rule) RETURNING * INTO seg;
	-- filled at once, as refresh_segments() would (with the current RFM cut
	-- points): the first question a marketer asks of it gets an answer
	PERFORM post_purchase.progress_start('create_segment');
	PERFORM post_purchase.progress_phase('computing customer metrics');
	PERFORM post_purchase.prepare_segment_metrics(ARRAY[seg.owner]);
	PERFORM post_purchase.progress_phase('evaluating the rule');
	PERFORM post_purchase.refresh_segment(seg);
	DROP TABLE pg_temp.customer_metrics;
	PERFORM post_purchase.progress_finish();
END
$$;
COMMENT ON FUNCTION post_purchase.create_segment(text, text) IS
	'create a segment from a boolean SQL expression over customer_metrics, filled with its members at once';
REVOKE ALL ON FUNCTION post_purchase.create_segment(text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.set_segment_rule(name text, rule text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	seg post_purchase.segments;
BEGIN
	PERFORM post_purchase.check_segment_rule(rule);
	UPDATE post_purchase.segments s SET rule = set_segment_rule.rule WHERE s.name = set_segment_rule.name
	RETURNING * INTO seg;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'segment "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	-- applied at once, as refresh_segments() would: the members the new
	-- rule leaves exit, the ones it adds enter
	PERFORM post_purchase.progress_start('set_segment_rule');
	PERFORM post_purchase.progress_phase('computing customer metrics');
	PERFORM post_purchase.prepare_segment_metrics(ARRAY[seg.owner]);
	PERFORM post_purchase.progress_phase('evaluating the rule');
	PERFORM post_purchase.refresh_segment(seg);
	DROP TABLE pg_temp.customer_metrics;
	PERFORM post_purchase.progress_finish();
END
$$;
COMMENT ON FUNCTION post_purchase.set_segment_rule(text, text) IS
	'change the rule of a segment (built-in ones too), applied to its members at once';
REVOKE ALL ON FUNCTION post_purchase.set_segment_rule(text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.drop_segment(name text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	journey text;
BEGIN
	SELECT j.name INTO journey FROM post_purchase.journeys j WHERE j.segment = drop_segment.name
	UNION ALL
	SELECT s.journey FROM post_purchase.journey_steps s WHERE s.segment = drop_segment.name
	LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'segment "%" is used by journey "%"', name, journey
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Drop the journey first, or change it to use another segment.';
	END IF;
	DELETE FROM post_purchase.segments s WHERE s.name = drop_segment.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'segment "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.drop_segment(text) IS 'drop a segment and its membership history';
REVOKE ALL ON FUNCTION post_purchase.drop_segment(text) FROM PUBLIC;

-- Inlinable: an index lookup on the open memberships.
CREATE FUNCTION post_purchase.in_segment(customer_id text, segment text) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT EXISTS (SELECT FROM post_purchase.segment_memberships m
				   WHERE m.segment OPERATOR(pg_catalog.=) in_segment.segment
					 AND m.customer_id OPERATOR(pg_catalog.=) in_segment.customer_id
					 AND m.exited_at IS NULL)
$$;
COMMENT ON FUNCTION post_purchase.in_segment(text, text) IS 'whether the customer is in the segment now';

CREATE FUNCTION post_purchase.segment_members(segment text) RETURNS SETOF text
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT m.customer_id FROM post_purchase.segment_memberships m
	WHERE m.segment OPERATOR(pg_catalog.=) segment_members.segment AND m.exited_at IS NULL
$$;
COMMENT ON FUNCTION post_purchase.segment_members(text) IS 'the customers in the segment now';

-- The working copy of customer_metrics that refresh_segment() evaluates
-- rules over: every customer's metrics computed once, with the state's
-- updated_at they were computed from, in a temporary table that the
-- transaction's end drops (the caller drops it when done), lent to the
-- owners whose rules will run over it.
CREATE FUNCTION post_purchase.prepare_segment_metrics(owners regrole[]) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	owner regrole;
BEGIN
	CREATE TEMP TABLE customer_metrics ON COMMIT DROP AS
	SELECT m.*, s.updated_at AS state_updated_at
	FROM post_purchase.customer_metrics m JOIN post_purchase.customer_state s USING (customer_id);
	CREATE INDEX ON pg_temp.customer_metrics (customer_id);
	-- statistics that lag behind a freshly filled membership table make the
	-- planner loop over the members for every membership: minutes, not seconds
	ANALYZE pg_temp.customer_metrics;
	ANALYZE post_purchase.segment_memberships;
	-- each rule runs as its segment's owner, who reads this table only
	FOREACH owner IN ARRAY owners LOOP
		-- a regrole's text is already a quoted identifier
		EXECUTE format('GRANT SELECT ON pg_temp.customer_metrics TO %s', owner);
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.prepare_segment_metrics(regrole[]) FROM PUBLIC;

-- One segment's memberships brought up to date with its rule, run as the
-- segment's owner over prepare_segment_metrics()' table: what
-- refresh_segments() does for each segment, and create_segment() and
-- set_segment_rule() for theirs.  Returns the entries and exits recorded.
CREATE FUNCTION post_purchase.refresh_segment(seg post_purchase.segments, OUT entered bigint, OUT exited bigint)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	-- EXECUTE: planned for each segment with the statistics just taken.
	-- The customers entering and leaving are found first (hash joins over
	-- the whole segment), then the few that change are checked: a customer
	-- whose state changed since the metrics were taken had its memberships
	-- recorded by the decision on that change, from newer state, so it is
	-- left alone (its updated_at differs from the one its metrics were
	-- computed from); and an entry that such a decision, committing while
	-- this waits, made too is skipped.  A change still waiting for a
	-- worker's decision is not skipped: that decision may run with the rule
	-- this replaces (isolation spec decisions_rule_change).
	EXECUTE
		'WITH members AS MATERIALIZED (SELECT x.customer_id
									  FROM post_purchase.segment_rule_members($2, $3) x(customer_id)),
		 leaving AS MATERIALIZED (SELECT m.customer_id FROM post_purchase.segment_memberships m
								  WHERE m.segment = $1 AND m.exited_at IS NULL
									AND NOT EXISTS (SELECT FROM members x WHERE x.customer_id = m.customer_id)),
		 entering AS MATERIALIZED (SELECT x.customer_id FROM members x
								   WHERE NOT EXISTS (SELECT FROM post_purchase.segment_memberships m
													 WHERE m.segment = $1 AND m.customer_id = x.customer_id
													   AND m.exited_at IS NULL)),
		 unchanged AS MATERIALIZED (SELECT c.customer_id FROM pg_temp.customer_metrics c
									JOIN post_purchase.customer_state s ON s.customer_id = c.customer_id
									WHERE s.updated_at = c.state_updated_at
									  AND c.customer_id IN (SELECT customer_id FROM leaving
															UNION ALL SELECT customer_id FROM entering)),
		 exits AS (UPDATE post_purchase.segment_memberships m SET exited_at = GREATEST(now(), m.entered_at)
				   FROM leaving l JOIN unchanged u ON u.customer_id = l.customer_id
				   WHERE m.segment = $1 AND m.exited_at IS NULL AND m.customer_id = l.customer_id
				   RETURNING 1),
		 entries AS (INSERT INTO post_purchase.segment_memberships (customer_id, segment)
					 SELECT e.customer_id, $1 FROM entering e JOIN unchanged u ON u.customer_id = e.customer_id
					 ON CONFLICT (segment, customer_id) WHERE exited_at IS NULL DO NOTHING
					 RETURNING 1)
		 SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM exits)'
	INTO entered, exited USING seg.name, seg.owner, seg.rule;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.refresh_segment(post_purchase.segments) FROM PUBLIC;

-- Bring every segment's memberships up to date (time moves customers), and
-- the RFM cut points first.  Returns the entries and exits per segment.
-- Segment by segment in name order, the order in which an order writes a
-- customer's membership changes (src/segments.c), so the two never wait for
-- each other in a cycle (isolation spec segments_refresh_deadlock).
CREATE FUNCTION post_purchase.refresh_segments()
	RETURNS TABLE (segment text, entered bigint, exited bigint)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	seg post_purchase.segments;
BEGIN
	-- progress (src/progress.c): the phases, then the segments done of all
	-- (the phase names the segment being evaluated; a segment is one
	-- statement, not counted by customer)
	PERFORM post_purchase.progress_start('refresh_segments');
	PERFORM post_purchase.refresh_rfm_cuts();
	-- every rule reads the same customer_metrics: compute it once
	PERFORM post_purchase.progress_phase('computing customer metrics');
	PERFORM post_purchase.prepare_segment_metrics(ARRAY(SELECT DISTINCT s.owner FROM post_purchase.segments s));
	PERFORM post_purchase.progress_count((SELECT count(*) FROM post_purchase.segments), 'segments');
	FOR seg IN SELECT * FROM post_purchase.segments s ORDER BY s.name LOOP
		PERFORM post_purchase.progress_phase('segment ' || seg.name);
		segment := seg.name;
		SELECT r.entered, r.exited INTO entered, exited FROM post_purchase.refresh_segment(seg) r;
		PERFORM post_purchase.progress_advance(1);
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.customer_metrics;
	PERFORM post_purchase.progress_finish();
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_segments() IS
	'recompute RFM cut points and every segment''s members, recording entries and exits';
REVOKE ALL ON FUNCTION post_purchase.refresh_segments() FROM PUBLIC;

-- One customer's memberships after an order changed the customer, in the
-- order's transaction: what the order trigger does for each order, without
-- this SQL call (update_customer_segments() in src/segments.c).
CREATE FUNCTION post_purchase.refresh_customer_segments(customer text) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.refresh_customer_segments(text) FROM PUBLIC;

-- The customers of prepare_segment_metrics()' temporary metrics for whom a
-- rule holds, evaluated as the segment's owner (src/segments.c).
CREATE FUNCTION post_purchase.segment_rule_members(owner regrole, rule text) RETURNS SETOF text
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.segment_rule_members(regrole, text) FROM PUBLIC;

-- Any change to the segments makes every backend re-plan the rules.
CREATE FUNCTION post_purchase.segments_changed() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
REVOKE ALL ON FUNCTION post_purchase.segments_changed() FROM PUBLIC;
CREATE TRIGGER segments_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.segments
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.segments_changed();

-- The built-in segments, adjustable with set_segment_rule().
INSERT INTO post_purchase.segments (name, rule, builtin) VALUES
	('lifecycle_new', 'lifecycle_stage = ''new''', true),
	('lifecycle_returning', 'lifecycle_stage = ''returning''', true),
	('lifecycle_vip', 'lifecycle_stage = ''vip''', true),
	('lifecycle_at_risk', 'lifecycle_stage = ''at_risk''', true),
	('lifecycle_lapsed', 'lifecycle_stage = ''lapsed''', true),
	('Champions', 'rfm_segment = ''Champions''', true),
	('Loyal Customers', 'rfm_segment = ''Loyal Customers''', true),
	('Potential Loyalists', 'rfm_segment = ''Potential Loyalists''', true),
	('New Customers', 'rfm_segment = ''New Customers''', true),
	('Promising', 'rfm_segment = ''Promising''', true),
	('Need Attention', 'rfm_segment = ''Need Attention''', true),
	('About to Sleep', 'rfm_segment = ''About to Sleep''', true),
	('At Risk', 'rfm_segment = ''At Risk''', true),
	('Can''t Lose Them', 'rfm_segment = ''Can''''t Lose Them''', true),
	('Hibernating', 'rfm_segment = ''Hibernating''', true),
	('vip', 'clv_12m >= (SELECT m.vip_clv_cut FROM post_purchase.models m WHERE (m.bgnbd).converged ORDER BY m.model_id DESC LIMIT 1)', true),
	('win_back', 'orders >= 2 AND days_since_last_order >= 180', true),
	-- the latest NPS answer (src/answers.c) was 0..6
	('detractors', 'last_nps <= 6', true);
