-- post_purchase 1.0 -> 1.1
-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION post_purchase UPDATE TO '1.1'" to load this file. \quit

-- Dump and restore keep every table (src/dump.sql); the workers pause and
-- the segment triggers enroll no one while pg_restore runs (src/worker.sql).
-- Whether this session restores a dump: pg_restore connects with
-- application_name pg_restore (to restore a plain-format dump with psql,
-- set PGAPPNAME=pg_restore).  While any such session is connected to a
-- database, its workers pause (worker.c), and in the restoring session the
-- segment triggers enroll no one and restored seed rows replace the
-- installed ones (src/dump.sql): the dump holds the enrollments and the
-- outbox already, and firing in between would fire a step twice.
CREATE FUNCTION post_purchase.restoring() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.=) 'pg_restore'$$;
COMMENT ON FUNCTION post_purchase.restoring() IS
	'whether this session restores a dump (application_name pg_restore): workers pause, segment triggers do not enroll';

-- restored memberships come with the enrollments they made
CREATE OR REPLACE FUNCTION post_purchase.enroll_segment_changes() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j record;
	wanted text := CASE TG_OP WHEN 'INSERT' THEN 'segment_entered' ELSE 'segment_exited' END;
BEGIN
	-- restored memberships come with the enrollments they made
	IF post_purchase.restoring() THEN
		RETURN NULL;
	END IF;
	FOR j IN SELECT x.name, x.segment FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger = wanted ORDER BY x.name LOOP
		PERFORM post_purchase.enroll(j.name, array_agg(m.customer_id),
									 array_agg(coalesce(m.exited_at, m.entered_at)),
									 array_agg(jsonb_build_object('segment', m.segment)))
		FROM changed m
		WHERE m.segment = j.segment AND (TG_OP = 'INSERT') = (m.exited_at IS NULL)
		HAVING count(*) > 0;
	END LOOP;
	RETURN NULL;
END
$$;

-- The install script seeds rows (settings, built-in segments, the seed
-- journeys and their steps, the sweep mark) that the shop may since have
-- changed.  Those rows are in the dump too, and the restore finds the
-- seeds of its own CREATE EXTENSION in their place: while a restore runs,
-- an inserted row whose key a row already has replaces that row.  The key
-- columns are the trigger's arguments; without any, the table has one row.
-- Outside a restore an insert of an existing key fails as usual.
CREATE FUNCTION post_purchase.restore_replaces_row() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	assignments text;
	key_matches text;
	replaced bigint;
BEGIN
	IF NOT post_purchase.restoring() THEN
		RETURN NEW;
	END IF;
	-- every column the row may set (generated ones follow by themselves)
	SELECT string_agg(format('%I = ($1).%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
	INTO assignments
	FROM pg_attribute a
	WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
	SELECT coalesce(string_agg(format('t.%I = ($1).%I', k, k), ' AND '), 'true')
	INTO key_matches
	FROM unnest(TG_ARGV) k;
	EXECUTE format('UPDATE %I.%I t SET %s WHERE %s', TG_TABLE_SCHEMA, TG_TABLE_NAME, assignments, key_matches)
	USING NEW;
	GET DIAGNOSTICS replaced = ROW_COUNT;
	IF replaced > 0 THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.restore_replaces_row() FROM PUBLIC;

CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.settings
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('name');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.segments
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('name');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.journeys
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('name');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.journey_steps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('journey', 'step');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.enrollment_sweeps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row();

-- configuration
SELECT pg_catalog.pg_extension_config_dump('post_purchase.settings', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.tracked_orders', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.tracked_order_items', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.products', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.segments', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.journeys', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.journey_steps', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_channels', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_profiles', '');
-- state
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_state', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_product_orders', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.product_cycles', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.models', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_predictions', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.rfm_cuts', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.segment_memberships', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollments', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollments_enrollment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.step_outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollment_sweeps', '');
-- the outbox, its events and their sequence are marked in src/outbox.sql

-- every C function that runs SQL locks search_path in its declaration too
ALTER FUNCTION post_purchase.evaluate_condition(regrole, text, text) SET search_path = pg_catalog, pg_temp;

-- Rules and step conditions run as the role in their row's owner column
-- (src/segments.sql): only a member of that role may write such a row.
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
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.journeys
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('journey');
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.journey_steps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('journey step');

-- Queue tables vacuum at 5% dead tuples (README, Maintenance).
ALTER TABLE post_purchase.enrollments SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE post_purchase.outbox SET (autovacuum_vacuum_scale_factor = 0.05);

-- The settings customer_metrics computes with, typed, in one row.  The
-- views read them directly, so a role with SELECT on customer_metrics needs
-- no right on settings, and they read them once per query (OFFSET 0 where
-- they join them).  The order trigger keeps this row between orders
-- (metrics_context.c).
CREATE VIEW post_purchase.shop_settings AS
SELECT CASE WHEN v.today <> '' THEN v.today::date END AS pinned_today,
	   v.time_zone,
	   v.lapsed_after_days::integer AS lapsed_after_days,
	   v.at_risk_after_days::integer AS at_risk_after_days,
	   v.clv_monthly_discount::float8 AS clv_monthly_discount
FROM (SELECT max(s.value) FILTER (WHERE s.name = 'today') AS today,
			 max(s.value) FILTER (WHERE s.name = 'time_zone') AS time_zone,
			 max(s.value) FILTER (WHERE s.name = 'lapsed_after_days') AS lapsed_after_days,
			 max(s.value) FILTER (WHERE s.name = 'at_risk_after_days') AS at_risk_after_days,
			 max(s.value) FILTER (WHERE s.name = 'clv_monthly_discount') AS clv_monthly_discount
	  FROM post_purchase.settings s) v;
COMMENT ON VIEW post_purchase.shop_settings IS
	'internal: the settings customer_metrics computes with, typed: the pinned today, time zone, lifecycle thresholds, CLV discount';

-- The shop's today: the pinned date (the "today" setting) if set, else
-- today in the shop's time zone.  A body parsed at creation: inlined, it is
-- immune to the caller's search_path.
CREATE FUNCTION post_purchase.today_in_zone(pinned_today date, time_zone text) RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN COALESCE(pinned_today, (now() AT TIME ZONE time_zone)::date);

CREATE VIEW post_purchase.shop_context AS
SELECT post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today,
	   c.lapsed_after_days, c.at_risk_after_days, c.clv_monthly_discount
FROM post_purchase.shop_settings c;
COMMENT ON VIEW post_purchase.shop_context IS
	'the settings customer_metrics computes with, typed: today (in the shop''s time zone, or the today setting), lifecycle thresholds, CLV discount';

-- Today in the shop's time zone, or the "today" setting when it is set.
CREATE OR REPLACE FUNCTION post_purchase.shop_today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT c.today FROM post_purchase.shop_context c$$;

-- The order trigger keeps metrics_context between orders (metrics_context.c):
-- any change to these tables makes every backend read it again.
CREATE FUNCTION post_purchase.metrics_context_changed() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
REVOKE ALL ON FUNCTION post_purchase.metrics_context_changed() FROM PUBLIC;
CREATE TRIGGER metrics_context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.settings
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.metrics_context_changed();
CREATE TRIGGER metrics_context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.models
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.metrics_context_changed();
CREATE TRIGGER metrics_context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.rfm_cuts
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.metrics_context_changed();

-- What customer_metrics computes with, in one row: the settings, the
-- newest converged model and the newest RFM cut points (NULL if none).
CREATE VIEW post_purchase.metrics_context AS
SELECT c.pinned_today, c.time_zone, c.lapsed_after_days, c.at_risk_after_days, c.clv_monthly_discount,
	   (SELECT m FROM post_purchase.models m WHERE (m.bgnbd).converged ORDER BY m.model_id DESC LIMIT 1) AS model,
	   (SELECT r FROM post_purchase.rfm_cuts r ORDER BY r.computed_at DESC LIMIT 1) AS cuts
FROM post_purchase.shop_settings c;
COMMENT ON VIEW post_purchase.metrics_context IS
	'internal: what customer_metrics computes with: the settings, the newest converged model, the newest RFM cut points';

-- Each customer in the BTYD conventions, in days, as of today: the inputs of
-- the models.  An order dated in the future counts from its own day.  Then
-- the state they come from, so customer_metrics reads the state once, and
-- what customer_metrics computes with (the settings, the newest model and
-- RFM cut points), so it reads them once too, in one row: every join and
-- subquery costs planning and start-up time in a one-customer lookup, and
-- the order trigger evaluates the segment rules over such a lookup.
CREATE VIEW post_purchase.customer_summaries_in_context AS
SELECT s.customer_id,
	   (s.purchase_days - 1)::double precision AS frequency,
	   (s.last_day - s.first_day)::double precision AS recency,
	   (GREATEST(ctx.today, s.last_day) - s.first_day)::double precision AS t,
	   CASE WHEN s.purchase_days > 1
			THEN pg_catalog.trim_scale((s.revenue - s.first_day_revenue) / (s.purchase_days - 1)) ELSE 0 END
		   AS monetary_value,
	   ctx.today - s.last_day AS days_since_last_order,
	   s.orders, s.revenue, s.first_order_at, s.last_order_at, s.purchase_days, s.first_day, s.last_day,
	   s.updated_at,
	   ctx.lapsed_after_days, ctx.at_risk_after_days, ctx.clv_monthly_discount AS monthly_discount,
	   ctx.model, ctx.cuts
FROM post_purchase.customer_state s
-- OFFSET 0: read once per query, not again for every row and reference
CROSS JOIN (SELECT c.*, post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today
			FROM post_purchase.metrics_context c OFFSET 0) ctx;
COMMENT ON VIEW post_purchase.customer_summaries_in_context IS
	'internal: customer_summaries with what customer_metrics computes with: settings, newest model, RFM cut points';

CREATE OR REPLACE VIEW post_purchase.customer_summaries AS
SELECT b.customer_id, b.frequency, b.recency, b.t, b.monetary_value, b.days_since_last_order,
	   b.orders, b.revenue, b.first_order_at, b.last_order_at, b.purchase_days, b.first_day, b.last_day,
	   b.updated_at
FROM post_purchase.customer_summaries_in_context b;

CREATE OR REPLACE VIEW post_purchase.customer_metrics AS
SELECT b.customer_id,
	   b.orders,
	   b.first_order_at,
	   b.last_order_at,
	   b.revenue,
	   round(b.revenue / b.orders, 2) AS average_order_value,
	   b.frequency::bigint AS frequency,
	   b.recency::integer AS recency_days,
	   b.t::integer AS t_days,
	   b.monetary_value,
	   b.days_since_last_order,
	   pr.p_alive,
	   pr.expected_purchases_90d,
	   pr.clv_12m,
	   sc.r_score,
	   sc.f_score,
	   sc.m_score,
	   post_purchase.rfm_segment(sc.r_score, sc.f_score) AS rfm_segment,
	   CASE WHEN b.days_since_last_order > b.lapsed_after_days THEN 'lapsed'
			WHEN b.days_since_last_order > b.at_risk_after_days THEN 'at_risk'
			WHEN pr.clv_12m >= (b.model).vip_clv_cut THEN 'vip'
			WHEN b.purchase_days = 1 THEN 'new'
			ELSE 'returning' END AS lifecycle_stage,
	   -- the customer's own cycle: the mean gap between purchase days
	   CASE WHEN b.purchase_days > 1
			THEN b.last_order_at + (b.last_day - b.first_day) * interval '1 day' / (b.purchase_days - 1) END
		   AS next_replenishment_due,
	   (b.model).model_id AS model_id
-- b, the summary, carries the state's columns and what they are computed
-- with: no self-join of the state, one read of the rest
FROM post_purchase.customer_summaries_in_context b
-- stored predictions count only when made after the customer's last change
LEFT JOIN post_purchase.customer_predictions p
	   ON p.customer_id = b.customer_id AND p.model_id = (b.model).model_id AND p.predicted_at >= b.updated_at
CROSS JOIN LATERAL (
	SELECT CASE WHEN p.customer_id IS NOT NULL THEN p.p_alive
				WHEN (b.model).model_id IS NOT NULL THEN post_purchase.bgnbd_p_alive((b.model).bgnbd, b.frequency, b.recency, b.t)
		   END AS p_alive,
		   CASE WHEN p.customer_id IS NOT NULL THEN p.expected_purchases_90d
				WHEN (b.model).model_id IS NOT NULL
				THEN post_purchase.bgnbd_expected_purchases((b.model).bgnbd, b.frequency, b.recency, b.t, 90)
		   END AS expected_purchases_90d,
		   CASE WHEN p.customer_id IS NOT NULL THEN p.clv_12m
				WHEN (b.model).model_id IS NOT NULL
				THEN post_purchase.predicted_clv_12m(b.model, b.frequency, b.recency, b.t, b.monetary_value,
													 b.monthly_discount)
		   END AS clv_12m
	OFFSET 0) pr	-- computed once per customer, though clv_12m is used twice
CROSS JOIN LATERAL (
	SELECT 6 - post_purchase.rfm_score(b.days_since_last_order, (b.cuts).recency_cuts) AS r_score,
		   post_purchase.rfm_score(b.purchase_days, (b.cuts).frequency_cuts) AS f_score,
		   post_purchase.rfm_score(b.revenue::float8, (b.cuts).monetary_cuts) AS m_score) sc;

-- The order trigger's state write also marks the customer as changed, for
-- a worker's decision (src/decisions.c); before metrics_of() takes the row
-- type as an argument, which would keep the table from changing.  Every order so far was decided in its transaction.
ALTER TABLE post_purchase.customer_state
	ADD COLUMN changed_at timestamptz,
	ADD COLUMN order_seq bigint NOT NULL DEFAULT 0,
	ADD COLUMN decided_seq bigint NOT NULL DEFAULT 0;
UPDATE post_purchase.customer_state SET order_seq = orders, decided_seq = orders;
-- the workers take the oldest marks first
CREATE INDEX customer_state_changed ON post_purchase.customer_state (changed_at) WHERE changed_at IS NOT NULL;

-- One customer's customer_metrics row from the customer's state and what
-- the metrics are computed with, given as values (p: the stored
-- predictions that count, or a NULL row): the order trigger evaluates the
-- segment rules over it with the context it keeps (metrics_context.c), so
-- that an order reads no table for them.  The formulas are those of
-- customer_summaries_in_context and customer_metrics; sql/customer_metrics.sql
-- checks that the two agree on every customer.  The view does not call it:
-- inlined into the view, it doubled a one-customer lookup's planning time.
CREATE FUNCTION post_purchase.metrics_of(s post_purchase.customer_state, today date,
										 lapsed_after_days integer, at_risk_after_days integer,
										 monthly_discount double precision, model post_purchase.models,
										 cuts post_purchase.rfm_cuts, p post_purchase.customer_predictions)
	RETURNS TABLE (customer_id text, orders bigint, first_order_at timestamptz, last_order_at timestamptz,
				   revenue numeric, average_order_value numeric, frequency bigint, recency_days integer,
				   t_days integer, monetary_value numeric, days_since_last_order integer,
				   p_alive double precision, expected_purchases_90d double precision, clv_12m double precision,
				   r_score integer, f_score integer, m_score integer, rfm_segment text, lifecycle_stage text,
				   next_replenishment_due timestamptz, model_id bigint)
	LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT b.customer_id,
		   b.orders,
		   b.first_order_at,
		   b.last_order_at,
		   b.revenue,
		   round(b.revenue / b.orders, 2),
		   b.frequency::bigint,
		   b.recency::integer,
		   b.t::integer,
		   b.monetary_value,
		   b.days_since_last_order,
		   pr.p_alive,
		   pr.expected_purchases_90d,
		   pr.clv_12m,
		   sc.r_score,
		   sc.f_score,
		   sc.m_score,
		   post_purchase.rfm_segment(sc.r_score, sc.f_score),
		   CASE WHEN b.days_since_last_order > lapsed_after_days THEN 'lapsed'
				WHEN b.days_since_last_order > at_risk_after_days THEN 'at_risk'
				WHEN pr.clv_12m >= (model).vip_clv_cut THEN 'vip'
				WHEN b.purchase_days = 1 THEN 'new'
				ELSE 'returning' END,
		   -- the customer's own cycle: the mean gap between purchase days
		   CASE WHEN b.purchase_days > 1
				THEN b.last_order_at + (b.last_day - b.first_day) * interval '1 day' / (b.purchase_days - 1) END,
		   (model).model_id
	FROM (SELECT (s).customer_id, (s).orders, (s).revenue, (s).first_order_at, (s).last_order_at,
				 (s).purchase_days, (s).first_day, (s).last_day,
				 ((s).purchase_days - 1)::double precision AS frequency,
				 ((s).last_day - (s).first_day)::double precision AS recency,
				 (GREATEST(today, (s).last_day) - (s).first_day)::double precision AS t,
				 CASE WHEN (s).purchase_days > 1
					  THEN trim_scale(((s).revenue - (s).first_day_revenue) / ((s).purchase_days - 1)) ELSE 0 END
					 AS monetary_value,
				 today - (s).last_day AS days_since_last_order) b
	CROSS JOIN LATERAL (
		SELECT CASE WHEN (p).customer_id IS NOT NULL THEN (p).p_alive
					WHEN (model).model_id IS NOT NULL
					THEN post_purchase.bgnbd_p_alive((model).bgnbd, b.frequency, b.recency, b.t)
			   END AS p_alive,
			   CASE WHEN (p).customer_id IS NOT NULL THEN (p).expected_purchases_90d
					WHEN (model).model_id IS NOT NULL
					THEN post_purchase.bgnbd_expected_purchases((model).bgnbd, b.frequency, b.recency, b.t, 90)
			   END AS expected_purchases_90d,
			   CASE WHEN (p).customer_id IS NOT NULL THEN (p).clv_12m
					WHEN (model).model_id IS NOT NULL
					THEN post_purchase.predicted_clv_12m(model, b.frequency, b.recency, b.t, b.monetary_value,
														 monthly_discount)
			   END AS clv_12m
		OFFSET 0) pr	-- computed once, though clv_12m is used twice
	CROSS JOIN LATERAL (
		SELECT 6 - post_purchase.rfm_score(b.days_since_last_order, (cuts).recency_cuts) AS r_score,
			   post_purchase.rfm_score(b.purchase_days, (cuts).frequency_cuts) AS f_score,
			   post_purchase.rfm_score(b.revenue::float8, (cuts).monetary_cuts) AS m_score) sc;
END;

-- The segment journeys' triggers run only when an enabled journey enrolls
-- on segment entries or exits (src/segment_journeys.c).
CREATE FUNCTION post_purchase.journeys_follow_segments() RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE;
DROP TRIGGER enroll_on_segment_entry ON post_purchase.segment_memberships;
DROP TRIGGER enroll_on_segment_exit ON post_purchase.segment_memberships;
CREATE TRIGGER enroll_on_segment_entry AFTER INSERT ON post_purchase.segment_memberships
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT WHEN (post_purchase.journeys_follow_segments())
	EXECUTE FUNCTION post_purchase.enroll_segment_changes();
CREATE TRIGGER enroll_on_segment_exit AFTER UPDATE ON post_purchase.segment_memberships
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT WHEN (post_purchase.journeys_follow_segments())
	EXECUTE FUNCTION post_purchase.enroll_segment_changes();

-- refresh_segments() leaves alone the customers whose state an order changed
-- after it took the metrics, and skips entries such an order made too; its
-- evaluation of one segment is refresh_segment(), which create_segment()
-- and set_segment_rule() run too (issue 19).

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
CREATE OR REPLACE FUNCTION post_purchase.refresh_segments()
	RETURNS TABLE (segment text, entered bigint, exited bigint)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	seg post_purchase.segments;
BEGIN
	PERFORM post_purchase.refresh_rfm_cuts();
	-- every rule reads the same customer_metrics: compute it once
	PERFORM post_purchase.prepare_segment_metrics(ARRAY(SELECT DISTINCT s.owner FROM post_purchase.segments s));
	FOR seg IN SELECT * FROM post_purchase.segments s ORDER BY s.name LOOP
		segment := seg.name;
		SELECT r.entered, r.exited INTO entered, exited FROM post_purchase.refresh_segment(seg) r;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.customer_metrics;
END
$$;

-- setting() and setting_list() keep their plans for the session: SQL
-- functions that read a table are planned again in every transaction.
CREATE OR REPLACE FUNCTION post_purchase.setting(setting_name text) RETURNS text
	LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN (SELECT s.value FROM post_purchase.settings s WHERE s.name OPERATOR(pg_catalog.=) setting_name);
END
$$;
CREATE OR REPLACE FUNCTION post_purchase.setting_list(setting_name text) RETURNS text[]
	LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN (SELECT coalesce(array_agg(btrim(x)), '{}')
			FROM unnest(string_to_array(post_purchase.setting(setting_name), ',')) x
			WHERE btrim(x) <> '');
END
$$;

-- Message ids are time-ordered UUIDs of version 7 (src/message_id.c), so
-- the outbox's primary key grows at its right edge.
CREATE FUNCTION post_purchase.uuid_v7() RETURNS uuid
	AS 'MODULE_PATHNAME', 'post_purchase_uuid_v7' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.uuid_v7() IS
	'a UUID of version 7 (RFC 9562): Unix time in ms and its fraction, then 62 random bits';
ALTER TABLE post_purchase.outbox ALTER COLUMN id SET DEFAULT post_purchase.uuid_v7();
COMMENT ON COLUMN post_purchase.outbox.id IS 'the message id (a UUIDv7, time-ordered): stable across retries, senders deduplicate on it';

-- The workers' queue is per journey, so a paused journey's waiting steps
-- are not walked past by every claim and every next_due_at().
DROP INDEX post_purchase.enrollments_due;
CREATE INDEX enrollments_due ON post_purchase.enrollments (journey, next_fire_at) WHERE status = 'active';

-- When the next step is due, for the workers' sleep: the first of each
-- enabled journey's queue.
CREATE OR REPLACE FUNCTION post_purchase.next_due_at() RETURNS timestamptz
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT min(x.next_fire_at)
	FROM post_purchase.journeys j
	CROSS JOIN LATERAL (SELECT e.next_fire_at FROM post_purchase.enrollments e
						WHERE e.journey = j.name AND e.status = 'active'
						ORDER BY e.next_fire_at LIMIT 1) x
	WHERE j.enabled
$$;

-- step_outcomes has no foreign key to enrollments: the only writer,
-- fire_due_steps(), inserts outcomes of enrollments it holds locked, and the
-- key's per-row check cost a tenth of every drained step.
ALTER TABLE post_purchase.step_outcomes DROP CONSTRAINT step_outcomes_enrollment_id_fkey;
-- the cascade the foreign key would have done, once per statement: a
-- dropped journey's enrollments, or ones a DBA purges, take their outcomes
-- (as the owner, as a foreign key's cascade runs: a role that may delete
-- enrollments need not be granted the outcomes)
CREATE FUNCTION post_purchase.delete_step_outcomes() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		TRUNCATE post_purchase.step_outcomes;
	ELSE
		DELETE FROM post_purchase.step_outcomes o USING deleted d WHERE o.enrollment_id = d.enrollment_id;
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.delete_step_outcomes() FROM PUBLIC;
CREATE TRIGGER enrollments_deleted AFTER DELETE ON post_purchase.enrollments
	REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.delete_step_outcomes();
CREATE TRIGGER enrollments_truncated AFTER TRUNCATE ON post_purchase.enrollments
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.delete_step_outcomes();

-- What the workers render a message with: for an object context (the
-- extension's enrollments are), render_payload(template, jsonb_build_object(
-- 'customer', customer, 'customer_id', customer_id, ...) || context),
-- without building that object for every message (C, in src/payload.c,
-- which lists the fields in this order).  A context that is not an object
-- offers no keys, and the fields still fill their placeholders.
CREATE FUNCTION post_purchase.render_message(template jsonb, context jsonb, customer jsonb, customer_id text,
											 journey text, step text, variant text, channel text, address text,
											 enrollment_id bigint, enrolled_at timestamptz) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.render_message(jsonb, jsonb, jsonb, text, text, text, text, text, text, bigint, timestamptz) IS
	'fill a step''s payload template from the enrollment''s context, then the message''s fields (the workers'' render_payload)';

-- Claim up to batch_size due steps and decide them all (the workers' unit of
-- work; callable by hand): suppress a step with a reason, defer it past
-- quiet hours, or write its message to the outbox; then move each
-- enrollment to its next step.  The claim is FOR UPDATE SKIP LOCKED, so
-- workers share the queue; the share lock on the journey makes
-- disable_journey() wait for batches in flight, after which no step of it
-- fires.  The outbox rows, the outcomes and the moves commit together: a
-- crash before the commit leaves the steps due, and they fire again, once.
-- Set-based but for the conditions.  (Generic plans were tried: they join
-- the batch's CTEs by nested loops, quadratic in the batch size.)  Returns
-- the number of steps decided.
CREATE OR REPLACE FUNCTION post_purchase.fire_due_steps(batch_size integer DEFAULT 100) RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	ids bigint[] := '{}';
	claiming text;
	claimed_journeys text[] := '{}';
	checked record;
	failed_ids bigint[] := '{}';
	failed_reasons text[] := '{}';
	failed_details text[] := '{}';
	cap integer := coalesce(nullif(post_purchase.setting('frequency_cap_messages'), ''), '0')::integer;
	cap_window interval := post_purchase.setting('frequency_cap_window')::interval;
	fallback text[] := post_purchase.setting_list('channel_fallback');
	exempt text[] := post_purchase.setting_list('consent_exempt_channels');
	quiet text[] := CASE WHEN post_purchase.setting('quiet_hours_start')::time
							  <> post_purchase.setting('quiet_hours_end')::time
						 THEN post_purchase.setting_list('quiet_hours_channels') ELSE '{}' END;
	decided integer;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 OR batch_size > 100000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 100000, not %', coalesce(batch_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- journey by journey, the one with the earliest due step first, each
	-- one's queue in fire time order, until the batch is full: only the
	-- steps that fire are locked, and only the journeys they belong to
	FOR claiming IN SELECT j.name
					FROM post_purchase.journeys j
					CROSS JOIN LATERAL (SELECT e.next_fire_at FROM post_purchase.enrollments e
										WHERE e.journey = j.name AND e.status = 'active' AND e.next_fire_at <= now()
										ORDER BY e.next_fire_at LIMIT 1) first_due
					WHERE j.enabled
					ORDER BY first_due.next_fire_at LOOP
		-- disable_journey() waits for the batch; one being disabled is skipped
		PERFORM FROM post_purchase.journeys j WHERE j.name = claiming AND j.enabled FOR SHARE SKIP LOCKED;
		CONTINUE WHEN NOT FOUND;
		ids := ids || ARRAY(SELECT e.enrollment_id FROM post_purchase.enrollments e
							WHERE e.journey = claiming AND e.status = 'active' AND e.next_fire_at <= now()
							ORDER BY e.next_fire_at
							LIMIT batch_size - cardinality(ids)
							FOR UPDATE SKIP LOCKED);
		claimed_journeys := claimed_journeys || claiming;
		EXIT WHEN cardinality(ids) >= batch_size;
	END LOOP;
	IF cardinality(ids) = 0 THEN
		RETURN 0;
	END IF;

	-- a look at each step of the batch only if one of its journeys has a
	-- condition at all (a twentieth of a batch's time, for nothing, if not)
	IF EXISTS (SELECT FROM post_purchase.journey_steps s
			   WHERE s.journey = ANY (claimed_journeys) AND s.condition IS NOT NULL) THEN
		FOR checked IN SELECT * FROM post_purchase.evaluate_step_conditions(ids) x WHERE x.reason IS NOT NULL LOOP
			failed_ids := failed_ids || checked.enrollment_id;
			failed_reasons := failed_reasons || checked.reason;
			failed_details := failed_details || checked.detail;
		END LOOP;
	END IF;

	WITH due AS (
		SELECT e.enrollment_id, e.customer_id, e.journey, e.next_position, e.anchor_at, e.holdout, e.variant,
			   e.context, e.enrolled_at, s.step, s.channel AS wanted, s.message_type, s.segment,
			   s.payload || coalesce(s.variant_payloads -> e.variant, '{}') AS template, s.uses_customer,
			   f.reason AS condition_reason, f.detail
		FROM post_purchase.enrollments e
		JOIN post_purchase.journey_steps s ON s.journey = e.journey AND s.position = e.next_position
		LEFT JOIN unnest(failed_ids, failed_reasons, failed_details) f(enrollment_id, reason, detail)
			ON f.enrollment_id = e.enrollment_id
		WHERE e.enrollment_id = ANY (ids)
	), routed AS (
		-- the channel: the step's own if the customer opted in (or it needs no
		-- consent); for 'preferred', the customer's preferred opted-in channel,
		-- else the first opted-in one in the channel_fallback order
		SELECT d.*, coalesce(r.channel, x.channel) AS channel, coalesce(r.address, x.address) AS address,
			   CASE WHEN d.holdout THEN 'holdout'
					WHEN d.segment IS NOT NULL AND NOT post_purchase.in_segment(d.customer_id, d.segment) THEN 'segment'
					WHEN d.condition_reason IS NOT NULL THEN d.condition_reason
					WHEN r.channel IS NULL AND x.channel IS NULL THEN 'no_consent'
			   END AS early_reason
		FROM due d
		LEFT JOIN LATERAL (
			SELECT c.channel, c.address FROM post_purchase.customer_channels c
			WHERE c.customer_id = d.customer_id AND c.opted_in
			  AND (c.channel = d.wanted OR (d.wanted = 'preferred' AND (c.preferred OR c.channel = ANY (fallback))))
			ORDER BY CASE WHEN c.channel = d.wanted OR c.preferred THEN 0 ELSE array_position(fallback, c.channel) END
			LIMIT 1) r ON true
		LEFT JOIN LATERAL (
			SELECT d.wanted AS channel, (SELECT c.address FROM post_purchase.customer_channels c
										 WHERE c.customer_id = d.customer_id AND c.channel = d.wanted) AS address
			WHERE d.wanted = ANY (exempt)) x ON true
	), capped AS (
		-- the cap counts earlier messages and the ones this batch sends first
		SELECT r.*,
			   CASE WHEN r.early_reason IS NOT NULL THEN r.early_reason
					WHEN cap > 0 AND
						 (SELECT count(*) FROM post_purchase.step_outcomes o
						  WHERE o.customer_id = r.customer_id AND o.channel = r.channel AND o.outcome = 'fired'
							AND o.decided_at > now() - cap_window)
						 + count(*) FILTER (WHERE r.early_reason IS NULL)
							 OVER (PARTITION BY r.customer_id, r.channel ORDER BY r.enrollment_id) > cap
					THEN 'frequency_cap'
			   END AS reason
		FROM routed r
	), timed AS (
		SELECT c.*,
			   CASE WHEN c.reason IS NOT NULL THEN NULL
					WHEN c.channel = ANY (quiet) THEN post_purchase.quiet_hours_end(c.customer_id, c.channel, now())
					ELSE now() END AS send_at
		FROM capped c
	), decided AS (
		-- the message's id up front: the outcome refers to it without a join
		SELECT t.*, CASE WHEN t.reason IS NULL AND t.send_at <= now() THEN post_purchase.uuid_v7() END AS message_id
		FROM timed t
	), sent AS (
		INSERT INTO post_purchase.outbox (id, aggregateid, type, payload, channel, address, journey, step, variant,
										  enrollment_id)
		SELECT d.message_id, d.customer_id, d.message_type,
			   post_purchase.render_message(d.template, d.context,
				   CASE WHEN d.uses_customer THEN
					   (SELECT to_jsonb(m) FROM post_purchase.customer_metrics m WHERE m.customer_id = d.customer_id) END,
				   d.customer_id, d.journey, d.step, d.variant, d.channel, d.address, d.enrollment_id, d.enrolled_at),
			   d.channel, d.address, d.journey, d.step, d.variant, d.enrollment_id
		FROM decided d
		WHERE d.message_id IS NOT NULL
		-- a step decided again finds its message (and its outcome) in place
		ON CONFLICT ON CONSTRAINT outbox_idempotency DO NOTHING
	), recorded AS (
		INSERT INTO post_purchase.step_outcomes (enrollment_id, step, journey, customer_id, variant, holdout,
												 outcome, reason, detail, channel, outbox_id)
		SELECT d.enrollment_id, d.step, d.journey, d.customer_id, d.variant, d.holdout,
			   CASE WHEN d.reason IS NULL THEN 'fired' ELSE 'suppressed' END, d.reason,
			   CASE WHEN d.reason = 'condition_error' THEN d.detail END, d.channel, d.message_id
		FROM decided d
		WHERE d.reason IS NOT NULL OR d.send_at <= now()
		ON CONFLICT DO NOTHING
	), moved AS (
		-- quiet hours defer the step; otherwise on to the next step, or done
		UPDATE post_purchase.enrollments e
		SET next_fire_at = CASE WHEN d.send_at > now() THEN d.send_at WHEN n.position IS NOT NULL
								THEN e.anchor_at + n.delay END,
			next_position = CASE WHEN d.send_at > now() THEN e.next_position ELSE n.position END,
			status = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN 'active' ELSE 'completed' END,
			ended_at = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN NULL ELSE now() END,
			end_reason = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN NULL ELSE 'completed' END
		FROM decided d
		LEFT JOIN LATERAL (SELECT x.position, x.delay FROM post_purchase.journey_steps x
						   WHERE x.journey = d.journey AND x.position > d.next_position
						   ORDER BY x.position LIMIT 1) n ON true
		WHERE e.enrollment_id = d.enrollment_id
	)
	SELECT count(*) INTO decided FROM decided d WHERE d.reason IS NOT NULL OR d.send_at <= now();
	RETURN decided;
END
$$;
COMMENT ON FUNCTION post_purchase.fire_due_steps(integer) IS
	'decide up to batch_size due journey steps: fire them into the outbox or record why not; the workers call it';

-- Recompute the RFM quintile cut points (time moves customers between them);
-- customer_summaries now carries the revenue, so no self-join of the state.
CREATE OR REPLACE FUNCTION post_purchase.refresh_rfm_cuts() RETURNS post_purchase.rfm_cuts
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	cuts post_purchase.rfm_cuts;
BEGIN
	INSERT INTO post_purchase.rfm_cuts (computed_at, recency_cuts, frequency_cuts, monetary_cuts)
	SELECT now(),
		   percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY s.days_since_last_order::float8),
		   percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY s.frequency + 1),
		   percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY s.revenue::float8)
	FROM post_purchase.customer_summaries s
	HAVING count(*) > 0
	ON CONFLICT (computed_at) DO UPDATE SET recency_cuts = excluded.recency_cuts,
		frequency_cuts = excluded.frequency_cuts, monetary_cuts = excluded.monetary_cuts
	RETURNING * INTO cuts;
	RETURN cuts;
END
$$;

-- Functions that ran setting() for every row read their settings once
-- (setting() keeps its plan now, and pays a search_path change per call).
-- Fit both models on the current state and store every customer's predictions.
CREATE OR REPLACE FUNCTION post_purchase.refresh_models() RETURNS post_purchase.models
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fitted post_purchase.models;
	-- read once, not for every customer
	monthly_discount float8 := post_purchase.setting('clv_monthly_discount')::float8;
BEGIN
	INSERT INTO post_purchase.models (customers, bgnbd, gamma_gamma)
	SELECT count(*),
		   post_purchase.bgnbd_fit(s.frequency, s.recency, s.t),
		   post_purchase.gamma_gamma_fit(s.frequency, s.monetary_value::float8)
			   FILTER (WHERE s.monetary_value > 0)
	FROM post_purchase.customer_summaries s
	HAVING count(*) > 0
	RETURNING * INTO fitted;
	IF NOT FOUND THEN
		RETURN NULL;			-- no customer yet: nothing to fit (the workers call this on a schedule)
	END IF;
	IF NOT (fitted.bgnbd).converged THEN
		RAISE WARNING 'the BG/NBD fit did not converge; customer_metrics keeps using the previous model';
		RETURN fitted;
	END IF;
	IF fitted.gamma_gamma IS NOT NULL AND NOT (fitted.gamma_gamma).converged THEN
		RAISE WARNING 'the Gamma-Gamma fit did not converge; clv_12m stays empty under this model';
		UPDATE post_purchase.models m SET gamma_gamma = NULL WHERE m.model_id = fitted.model_id;
		fitted.gamma_gamma := NULL;
	END IF;

	INSERT INTO post_purchase.customer_predictions AS p
	SELECT s.customer_id, fitted.model_id, now(),
		   post_purchase.bgnbd_p_alive(fitted.bgnbd, s.frequency, s.recency, s.t),
		   post_purchase.bgnbd_expected_purchases(fitted.bgnbd, s.frequency, s.recency, s.t, 90),
		   post_purchase.predicted_clv_12m(fitted, s.frequency, s.recency, s.t, s.monetary_value, monthly_discount)
	FROM post_purchase.customer_summaries s
	ON CONFLICT (customer_id) DO UPDATE SET
		model_id = excluded.model_id, predicted_at = excluded.predicted_at, p_alive = excluded.p_alive,
		expected_purchases_90d = excluded.expected_purchases_90d, clv_12m = excluded.clv_12m;

	UPDATE post_purchase.models m
	SET vip_clv_cut = (SELECT percentile_cont(1 - post_purchase.setting('vip_share')::float8)
							  WITHIN GROUP (ORDER BY p.clv_12m)
					   FROM post_purchase.customer_predictions p WHERE p.clv_12m IS NOT NULL)
	WHERE m.model_id = fitted.model_id
	RETURNING * INTO fitted;
	RETURN fitted;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_models() IS
	'fit BG/NBD and Gamma-Gamma (in days) on the current customer state, store the model and every customer''s predictions';

-- The journeys time triggers: customers who lapsed, whose first order has an
-- anniversary today, or whose product runs out within the lead time.  Only
-- what happened since the journey was enabled enrolls: enabling a win-back
-- journey does not message every customer who lapsed years ago.  Step
-- delays count from the sweep (lapsed, anniversary) or from the due date
-- minus the lead time (replenishment).  Sweeps run at most every
-- enroll_due_interval; returns the enrollments made.
CREATE OR REPLACE FUNCTION post_purchase.enroll_due() RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j post_purchase.journeys;
	entered integer := 0;
	zone text := post_purchase.setting('time_zone');
	today date := (now() AT TIME ZONE zone)::date;
BEGIN
	UPDATE post_purchase.enrollment_sweeps s SET swept_at = now()
	WHERE s.swept_at <= now() - post_purchase.setting('enroll_due_interval')::interval;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	FOR j IN SELECT * FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger IN ('lapsed', 'anniversary', 'replenishment_due') ORDER BY x.name LOOP
		IF j.trigger = 'lapsed' THEN
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(s.customer_id), array_agg(now()),
											array_agg(jsonb_build_object('last_order_at', s.last_order_at)))
				FROM post_purchase.customer_state s
				WHERE s.last_order_at + make_interval(days => j.lapsed_days) <= now()
				  AND s.last_order_at + make_interval(days => j.lapsed_days) > j.enabled_at
				  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = s.customer_id
									AND e.anchor_at >= s.last_order_at + make_interval(days => j.lapsed_days))
				HAVING count(*) > 0), 0);
		ELSIF j.trigger = 'anniversary' THEN
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(s.customer_id), array_agg(now()),
											array_agg(jsonb_build_object('years', y.years, 'first_order_at', s.first_order_at)))
				FROM post_purchase.customer_state s
				CROSS JOIN LATERAL (SELECT (extract(year FROM today) - extract(year FROM s.first_day))::integer AS years) y
				WHERE y.years >= 1 AND (s.first_day + make_interval(years => y.years))::date = today
				  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = s.customer_id
									AND (e.enrolled_at AT TIME ZONE zone)::date = today)
				HAVING count(*) > 0), 0);
		ELSE
			-- one enrollment per customer, for the product due first
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(r.customer_id), array_agg(r.next_due - j.lead_time),
											array_agg(jsonb_build_object('product_id', r.product_id, 'due_at', r.next_due,
																		 'last_purchase', r.last_purchase)))
				FROM (SELECT DISTINCT ON (p.customer_id) p.*
					  FROM post_purchase.customer_product_replenishment p
					  WHERE p.next_due - j.lead_time <= now() AND p.next_due - j.lead_time > j.enabled_at
					  ORDER BY p.customer_id, p.next_due) r
				WHERE NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = r.customer_id
									AND e.anchor_at >= r.next_due - j.lead_time)
				HAVING count(*) > 0), 0);
		END IF;
	END LOOP;
	RETURN entered;
END
$$;
COMMENT ON FUNCTION post_purchase.enroll_due() IS
	'enroll customers in the lapsed, anniversary and replenishment_due journeys; the workers call it';

-- When a message on this channel may go to the customer: now, or the end
-- of the customer's quiet hours (in their time zone) if now is inside them.
CREATE OR REPLACE FUNCTION post_purchase.quiet_hours_end(customer text, channel text, at timestamptz) RETURNS timestamptz
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	zone text;
	quiet_from time;
	quiet_until time;
	local timestamp;
	t time;
BEGIN
	-- one query, not a setting() call each: this runs for every step fired
	-- on a quiet-hours channel
	SELECT coalesce((SELECT p.time_zone FROM post_purchase.customer_profiles p WHERE p.customer_id = customer),
					max(s.value) FILTER (WHERE s.name = 'time_zone')),
		   max(s.value) FILTER (WHERE s.name = 'quiet_hours_start'),
		   max(s.value) FILTER (WHERE s.name = 'quiet_hours_end')
	INTO zone, quiet_from, quiet_until
	FROM post_purchase.settings s;
	local := at AT TIME ZONE zone;
	t := local::time;
	IF quiet_from = quiet_until OR NOT channel = ANY (post_purchase.setting_list('quiet_hours_channels')) THEN
		RETURN at;
	END IF;
	IF quiet_from < quiet_until THEN
		IF t >= quiet_from AND t < quiet_until THEN
			RETURN (local::date + quiet_until) AT TIME ZONE zone;
		END IF;
	ELSIF t >= quiet_from THEN			-- overnight window, evening part
		RETURN (local::date + 1 + quiet_until) AT TIME ZONE zone;
	ELSIF t < quiet_until THEN			-- overnight window, morning part
		RETURN (local::date + quiet_until) AT TIME ZONE zone;
	END IF;
	RETURN at;
END
$$;

-- The order trigger applies an order to the customer's journeys itself
-- (src/order_journeys.c): the PL/pgSQL function it called is gone.
DROP FUNCTION post_purchase.enroll_for_order(text, bigint, jsonb);

-- A repeat customer whose repeat purchases total 0 gets a
-- clv_12m: the Gamma-Gamma expectation is defined at a mean spend of 0, and
-- a negative mean (refunds exceeding the purchases) counts as 0
-- (src/customer_metrics.sql).
CREATE OR REPLACE FUNCTION post_purchase.predicted_clv_12m(m post_purchase.models, frequency double precision,
														   recency double precision, t double precision,
														   monetary_value numeric,
														   monthly_discount double precision)
	RETURNS double precision
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT CASE WHEN m.gamma_gamma IS NOT NULL
			THEN post_purchase.clv(m.bgnbd, m.gamma_gamma, frequency, recency, t,
								   GREATEST(monetary_value, 0)::pg_catalog.float8, 12, monthly_discount,
								   '1 day') END
$$;
-- Predictions stored under 1.0 without a clv_12m, under a model that has a
-- Gamma-Gamma part, are those customers: customer_metrics computes them live
-- until the next refresh_models() stores them again.
DELETE FROM post_purchase.customer_predictions p
USING post_purchase.models m
WHERE m.model_id OPERATOR(pg_catalog.=) p.model_id AND m.gamma_gamma IS NOT NULL AND p.clv_12m IS NULL;

-- Create_segment() fills the new segment at once, and
-- set_segment_rule() applies the new rule at once, with refresh_segment()
-- (src/segments.sql).
CREATE OR REPLACE FUNCTION post_purchase.create_segment(name text, rule text) RETURNS void
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
	PERFORM post_purchase.prepare_segment_metrics(ARRAY[seg.owner]);
	PERFORM post_purchase.refresh_segment(seg);
	DROP TABLE pg_temp.customer_metrics;
END
$$;
COMMENT ON FUNCTION post_purchase.create_segment(text, text) IS
	'create a segment from a boolean SQL expression over customer_metrics, filled with its members at once';
REVOKE ALL ON FUNCTION post_purchase.create_segment(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION post_purchase.set_segment_rule(name text, rule text) RETURNS void
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
	PERFORM post_purchase.prepare_segment_metrics(ARRAY[seg.owner]);
	PERFORM post_purchase.refresh_segment(seg);
	DROP TABLE pg_temp.customer_metrics;
END
$$;
COMMENT ON FUNCTION post_purchase.set_segment_rule(text, text) IS
	'change the rule of a segment (built-in ones too), applied to its members at once';
REVOKE ALL ON FUNCTION post_purchase.set_segment_rule(text, text) FROM PUBLIC;

-- Enable_journey() warns, naming the setting to change, when no
-- background worker serves this database (src/worker.sql, src/journeys.sql).

-- Whether background workers fire this database's journey steps, with a
-- WARNING naming the setting to change when they do not: enable_journey()
-- asks, so a journey enabled where no worker runs does not wait silently.
-- A NULL argument stands for this server's own value (the current
-- database, whether the library was preloaded, post_purchase.databases,
-- post_purchase.enabled), so the decision can be tested for other servers.
CREATE FUNCTION post_purchase.check_workers_serve(database name DEFAULT NULL, preloaded boolean DEFAULT NULL,
												  databases text DEFAULT NULL, enabled boolean DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'post_purchase_check_workers_serve'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.check_workers_serve(name, boolean, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION post_purchase.set_journey_enabled(name text, enabled boolean) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	UPDATE post_purchase.journeys j
	SET enabled = set_journey_enabled.enabled,
		enabled_at = CASE WHEN set_journey_enabled.enabled AND NOT j.enabled THEN now() ELSE j.enabled_at END
	WHERE j.name = set_journey_enabled.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	IF enabled AND NOT EXISTS (SELECT FROM post_purchase.journey_steps s WHERE s.journey = set_journey_enabled.name) THEN
		RAISE EXCEPTION 'journey "%" has no steps', name
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add steps with post_purchase.add_step().';
	END IF;
	-- enabled, but nothing fires where no worker runs: say so, and which
	-- setting to change (the journey is enabled all the same)
	IF enabled THEN
		PERFORM post_purchase.check_workers_serve();
	END IF;
END
$$;

-- The customer state needs no per-day rows (src/tracking.c): an order on
-- or after the customer's last purchase day updates the state alone, and
-- the rare paths recompute the customer from the orders table, through an
-- index on the customer column that track_orders() now ensures.  The state
-- of a tracked table is current already; its days go.  A tracked table
-- without such an index gets one here, as track_orders() would make.
DROP FUNCTION post_purchase.recomputed_days();
DROP FUNCTION post_purchase.recomputed_days_query(post_purchase.tracked_orders);
DROP FUNCTION post_purchase.state_from_days(regclass);
DROP FUNCTION post_purchase.state_from_days_query(regclass);
DROP TABLE post_purchase.customer_days;

-- The query of every customer's state, recomputed from the orders table,
-- with every order decided: what the trigger keeps incrementally, and what
-- its rare paths recompute for one customer (src/tracking.c, with the same
-- formulas).  Shared by the
-- backfill, which runs it directly, and by verify_state().  The orders are
-- grouped into purchase days first (the same-day merge), by the customer's
-- text in the "C" collation, the byte equality the trigger keys on, and
-- sorted that way: the days come out in customer order, the customers'
-- totals aggregate them as they are read, and the backfill inserts in
-- primary key order, each index entry going to the rightmost leaf instead
-- of to a random page (the random inserts cost three times the rest of the
-- load).  The rows of a partitioned table are in its partitions; an
-- inheritance child's are not tracked (the trigger is the parent's).
CREATE FUNCTION post_purchase.recomputed_state_query(t post_purchase.tracked_orders)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT pg_catalog.format(
		'SELECT d.customer_id, pg_catalog.sum(d.orders)::pg_catalog.int8, pg_catalog.sum(d.revenue),
				pg_catalog.min(d.first_at), pg_catalog.max(d.last_at), pg_catalog.count(*),
				pg_catalog.min(d.day), pg_catalog.max(d.day),
				(pg_catalog.array_agg(d.revenue ORDER BY d.day))[1], pg_catalog.now(),
				NULL::pg_catalog.timestamptz, pg_catalog.sum(d.orders)::pg_catalog.int8,
				pg_catalog.sum(d.orders)::pg_catalog.int8
		 FROM (SELECT %1$I::pg_catalog.text COLLATE pg_catalog."C" AS customer_id,
					  (%2$I AT TIME ZONE %4$L)::pg_catalog.date AS day, pg_catalog.count(*) AS orders,
					  pg_catalog.sum(coalesce(%3$I::pg_catalog.numeric, 0)) AS revenue,
					  pg_catalog.min(%2$I) AS first_at, pg_catalog.max(%2$I) AS last_at
			   FROM %5$s %6$s
			   WHERE %1$I IS NOT NULL AND %2$I IS NOT NULL
			   GROUP BY 1, 2) d
		 GROUP BY d.customer_id ORDER BY d.customer_id',
		t.customer_column, t.ordered_at_column, t.amount_column, t.time_zone,
		CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) t.orders)
				  OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY' END,
		t.orders)
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_state_query(post_purchase.tracked_orders) FROM PUBLIC;

-- The state of every customer, recomputed from the orders table.  Used by
-- verify_state().
CREATE FUNCTION post_purchase.recomputed_state()
	RETURNS SETOF post_purchase.customer_state
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t post_purchase.tracked_orders;
BEGIN
	SELECT * INTO t FROM post_purchase.tracked_orders;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE post_purchase.recomputed_state_query(t);
END
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_state() FROM PUBLIC;

-- An index whose first key is the customer column, for the trigger's rare
-- paths (a late order, an update, a delete), which recompute one customer
-- from the orders table: through it they read that customer's orders, not
-- the table.  NULL when the table has none.
CREATE FUNCTION post_purchase.customer_index(orders regclass, customer_column name)
	RETURNS regclass
	LANGUAGE sql STABLE
	AS $$
	SELECT i.indexrelid::pg_catalog.regclass
	FROM pg_catalog.pg_index i
	JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
	JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) ic.relam
	JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
		AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]
	WHERE i.indrelid OPERATOR(pg_catalog.=) orders AND a.attname OPERATOR(pg_catalog.=) customer_column
	  AND i.indisvalid AND i.indpred IS NULL AND am.amname OPERATOR(pg_catalog.=) ANY (ARRAY['btree', 'hash'])
	ORDER BY i.indnkeyatts, ic.relname
	LIMIT 1
$$;
REVOKE ALL ON FUNCTION post_purchase.customer_index(regclass, name) FROM PUBLIC;

-- The customer index of the orders table, created when there is none, or
-- an error with a hint when the caller may not create it.
CREATE FUNCTION post_purchase.ensure_customer_index(orders regclass, customer_column name)
	RETURNS regclass
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	found regclass := post_purchase.customer_index(orders, customer_column);
BEGIN
	IF found IS NOT NULL THEN
		RETURN found;
	END IF;
	BEGIN
		EXECUTE format('CREATE INDEX ON %s (%I)', orders, customer_column);
	EXCEPTION WHEN insufficient_privilege THEN
		RAISE EXCEPTION '% has no index on its column "%"', orders, customer_column
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'A late, updated or deleted order makes the trigger recompute its customer from the orders table, through such an index.',
				  HINT = format('Have the table''s owner run: CREATE INDEX ON %s (%I);', orders, customer_column);
	END;
	found := post_purchase.customer_index(orders, customer_column);
	RAISE NOTICE 'created index % on %(%) for the order trigger', found, orders, customer_column;
	RETURN found;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.ensure_customer_index(regclass, name) FROM PUBLIC;

SELECT post_purchase.ensure_customer_index(t.orders, t.customer_column) FROM post_purchase.tracked_orders t;

-- TRUNCATE of the orders table empties the state with it.
CREATE OR REPLACE FUNCTION post_purchase.track_orders_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_state;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.track_orders_truncate() FROM PUBLIC;

CREATE OR REPLACE FUNCTION post_purchase.track_orders(orders regclass,
										   customer_column name DEFAULT 'customer_id',
										   ordered_at_column name DEFAULT 'ordered_at',
										   amount_column name DEFAULT 'amount',
										   backfill boolean DEFAULT true)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	-- the backfill groups a million orders in a sort, not a hash table of
	-- a million groups: its output is sorted as the inserts want it anyway
	SET enable_hashagg = off
	AS $$
DECLARE
	tracked regclass;
	zone text;
	column_type regtype;
	bad_customer text;
BEGIN
	-- the backfill must see every order committed before the lock: a
	-- transaction snapshot taken before it would miss some
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_orders() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT t.orders INTO tracked FROM post_purchase.tracked_orders t;
	IF FOUND THEN
		RAISE EXCEPTION 'post_purchase already tracks %', tracked
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_orders() first; one orders table is tracked at a time.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = orders) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', orders USING ERRCODE = 'wrong_object_type';
	END IF;

	-- every column must exist with a type the trigger understands
	column_type := post_purchase.tracked_column_type(orders, customer_column, 'customer',
		ARRAY['bigint', 'integer', 'uuid', 'text', 'character varying']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, ordered_at_column, 'ordered_at',
		ARRAY['timestamp with time zone']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, amount_column, 'amount',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);

	SELECT s.value INTO zone FROM post_purchase.settings s WHERE s.name = 'time_zone';
	PERFORM now() AT TIME ZONE zone;	-- a valid zone name, or an error here

	-- no order may change between the backfill and the trigger taking over
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', orders);
	INSERT INTO post_purchase.tracked_orders
		VALUES (orders, customer_column, ordered_at_column, amount_column, zone, backfill);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L)',
				   orders, customer_column, ordered_at_column, amount_column, zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_orders_truncate()', orders);

	PERFORM post_purchase.ensure_customer_index(orders, customer_column);

	IF backfill THEN
		-- set-based and executed directly: a set-returning function in
		-- between would first copy every row into a tuplestore
		-- (the backfilled orders count as decided: they enroll no one)
		EXECUTE 'INSERT INTO post_purchase.customer_state '
			|| post_purchase.recomputed_state_query((SELECT t FROM post_purchase.tracked_orders t));
		-- a NaN or infinite amount makes its customer's revenue one as well:
		-- checking the customers reads a tenth of the rows
		SELECT s.customer_id INTO bad_customer FROM post_purchase.customer_state s
		WHERE s.revenue IN ('NaN', 'Infinity', '-Infinity') LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'orders of customer % have a NaN or infinite amount', bad_customer
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.track_orders(regclass, name, name, name, boolean) IS
	'attach the order trigger to the shop''s orders table and backfill the customer state from it';
REVOKE ALL ON FUNCTION post_purchase.track_orders(regclass, name, name, name, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION post_purchase.untrack_orders(orders regclass)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	items regclass;
BEGIN
	-- items cannot be tracked without their orders
	SELECT i.items INTO items FROM post_purchase.tracked_order_items i;
	IF FOUND AND EXISTS (SELECT FROM post_purchase.tracked_orders t WHERE t.orders = untrack_orders.orders) THEN
		PERFORM post_purchase.untrack_order_items(items);
	END IF;
	DELETE FROM post_purchase.tracked_orders t WHERE t.orders = untrack_orders.orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase does not track %', orders
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('DROP TRIGGER post_purchase_track_orders ON %s', orders);
	EXECUTE format('DROP TRIGGER post_purchase_track_orders_truncate ON %s', orders);
	-- state nobody keeps current any more would mislead
	DELETE FROM post_purchase.customer_state;
	UPDATE post_purchase.segment_memberships m SET exited_at = GREATEST(now(), m.entered_at) WHERE m.exited_at IS NULL;
END
$$;
COMMENT ON FUNCTION post_purchase.untrack_orders(regclass) IS
	'remove the order trigger and the customer state built from the table';
REVOKE ALL ON FUNCTION post_purchase.untrack_orders(regclass) FROM PUBLIC;

-- Every difference between the state the trigger kept and the state
-- recomputed from the orders table; empty when all is well.
CREATE OR REPLACE FUNCTION post_purchase.verify_state()
	RETURNS TABLE (customer_id text, day date, field text, expected text, actual text)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN QUERY
	SELECT coalesce(e.customer_id, a.customer_id), NULL::date, f.field, f.expected, f.actual
	FROM post_purchase.recomputed_state() e
	FULL JOIN post_purchase.customer_state a ON a.customer_id = e.customer_id
	CROSS JOIN LATERAL (VALUES
		('orders', e.orders::text, a.orders::text),
		('revenue', e.revenue::text, a.revenue::text),
		('first_order_at', e.first_order_at::text, a.first_order_at::text),
		('last_order_at', e.last_order_at::text, a.last_order_at::text),
		('purchase_days', e.purchase_days::text, a.purchase_days::text),
		('first_day', e.first_day::text, a.first_day::text),
		('last_day', e.last_day::text, a.last_day::text),
		('first_day_revenue', e.first_day_revenue::text, a.first_day_revenue::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	UNION ALL
	SELECT coalesce(e.customer_id, a.customer_id), coalesce(e.day, a.day),
		   format('order %s product %s: %s', coalesce(e.order_key, a.order_key),
				  coalesce(e.product_id, a.product_id), f.field),
		   f.expected, f.actual
	FROM post_purchase.recomputed_product_orders() e
	FULL JOIN post_purchase.customer_product_orders a ON a.order_key = e.order_key AND a.product_id = e.product_id
	CROSS JOIN LATERAL (VALUES
		('customer_id', e.customer_id, a.customer_id),
		('ordered_at', e.ordered_at::text, a.ordered_at::text),
		('quantity', e.quantity::text, a.quantity::text),
		('items', e.items::text, a.items::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION post_purchase.verify_state() IS
	'every difference between the tracked customer state and the state recomputed from the orders; empty when exact';
REVOKE ALL ON FUNCTION post_purchase.verify_state() FROM PUBLIC;

-- Decide for up to batch marked customers, oldest mark first; returns how
-- many.  The workers call it; a session may, to decide without them.
CREATE FUNCTION post_purchase.process_changes(batch integer DEFAULT 100) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION post_purchase.process_changes(integer) IS
	'decide segment changes and journey enrollments for up to batch changed customers; returns how many';
REVOKE ALL ON FUNCTION post_purchase.process_changes(integer) FROM PUBLIC;

-- What waits for a decision: the changed customers and the oldest change.
-- Between an order's commit and its decision, the customer's state is
-- current and its memberships and enrollments are not yet.
CREATE VIEW post_purchase.decision_backlog AS
SELECT pg_catalog.count(*) AS customers,
	   pg_catalog.min(s.changed_at) AS oldest_change,
	   pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(s.changed_at) AS lag
FROM post_purchase.customer_state s
WHERE s.changed_at IS NOT NULL;
COMMENT ON VIEW post_purchase.decision_backlog IS
	'changed customers waiting for a worker''s decision, and the age of the oldest change';

-- CSAT and customer effort (src/survey.sql, src/survey.c): new in 1.1
-- A scale is the number of answer points, 3, 5, 7 or 10, answered from 1.
-- The one-argument forms take the usual scale (5 for CSAT, 7 for CES 2.0):
-- an aggregate's argument cannot usefully default, so each has two forms.

CREATE TYPE post_purchase.csat_result AS (
	responses bigint,
	satisfied bigint,
	csat numeric,
	mean numeric,
	ci_low numeric,
	ci_high numeric
);
COMMENT ON TYPE post_purchase.csat_result IS
	'csat_summary: answers, satisfied (top-2 box) answers, CSAT in percent, mean answer, 95% Wilson interval of CSAT in percent';

CREATE TYPE post_purchase.ces_result AS (
	responses bigint,
	low_effort bigint,
	low_effort_percent numeric,
	mean numeric,
	ci_low numeric,
	ci_high numeric
);
COMMENT ON TYPE post_purchase.ces_result IS
	'ces_summary: answers, low-effort answers (above the midpoint) and their percent, mean answer (the CES), 95% t interval of the mean';

-- The aggregates' state is a type of its own, not "internal", so that Citus
-- splits them into a partial aggregate per shard and a combine on the
-- coordinator (src/state_type.h says what it requires).
CREATE TYPE post_purchase.survey_state;
CREATE FUNCTION post_purchase.survey_state_in(cstring) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.survey_state_out(post_purchase.survey_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.survey_state_recv(internal) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.survey_state_send(post_purchase.survey_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.survey_state (
	INPUT = post_purchase.survey_state_in,
	OUTPUT = post_purchase.survey_state_out,
	RECEIVE = post_purchase.survey_state_recv,
	SEND = post_purchase.survey_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE post_purchase.survey_state IS
	'the state of csat, csat_summary and ces_summary: the scale and the count of each answer; text form \x and hex';

CREATE FUNCTION post_purchase.csat_state_accum(post_purchase.survey_state, integer) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_state_accum(post_purchase.survey_state, integer, integer)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_state_accum(post_purchase.survey_state, integer) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_state_accum(post_purchase.survey_state, integer, integer)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_state_combine(post_purchase.survey_state, post_purchase.survey_state)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_state_combine(post_purchase.survey_state, post_purchase.survey_state)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_state_final(post_purchase.survey_state) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_summary_state_final(post_purchase.survey_state) RETURNS post_purchase.csat_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_summary_state_final(post_purchase.survey_state) RETURNS post_purchase.ces_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.csat(score integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat(integer) IS
	'CSAT in percent of 1-5 answers: the share of satisfied answers (4-5)';

CREATE AGGREGATE post_purchase.csat(score integer, scale integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat(integer, integer) IS
	'CSAT in percent of answers on a 3, 5, 7 or 10-point scale: the share of the top-2 box (the top box of 3)';

CREATE AGGREGATE post_purchase.csat_summary(score integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_summary_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat_summary(integer) IS
	'CSAT of 1-5 answers with responses, satisfied, mean and the 95% Wilson interval';

CREATE AGGREGATE post_purchase.csat_summary(score integer, scale integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_summary_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat_summary(integer, integer) IS
	'CSAT on a 3, 5, 7 or 10-point scale with responses, satisfied, mean and the 95% Wilson interval';

CREATE AGGREGATE post_purchase.ces_summary(score integer) (
	SFUNC = post_purchase.ces_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.ces_summary_state_final,
	COMBINEFUNC = post_purchase.ces_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.ces_summary(integer) IS
	'customer effort of 1-7 CES 2.0 answers (7: strongly agree it was easy): mean, low-effort (5-7) share, 95% t interval of the mean';

CREATE AGGREGATE post_purchase.ces_summary(score integer, scale integer) (
	SFUNC = post_purchase.ces_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.ces_summary_state_final,
	COMBINEFUNC = post_purchase.ces_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.ces_summary(integer, integer) IS
	'customer effort on a 3, 5, 7 or 10-point scale (higher is easier): mean, low-effort share, 95% t interval of the mean';

-- Aggregate states as types of their own (src/state_type.h): every aggregate
-- of 1.0 moves from an "internal" state to one Citus can ship between nodes.
-- CREATE OR REPLACE AGGREGATE, not DROP and CREATE: an aggregate keeps its
-- oid, so the shop's views and functions that call nps() or rfm_summary()
-- keep working (a stored query does not record the state type; the planner
-- reads it from pg_aggregate), where DROP AGGREGATE would fail on them, or
-- drop them with CASCADE.  PostgreSQL replaces only aggregates that are
-- members of the extension, so this is safe in a script (CVE-2022-2625).
-- The 1.0 support functions on "internal" are dropped once unused; the
-- module keeps them, for databases still at 1.0.
CREATE TYPE post_purchase.nps_state;
CREATE FUNCTION post_purchase.nps_state_in(cstring) RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_out(post_purchase.nps_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_recv(internal) RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_send(post_purchase.nps_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.nps_state (
	INPUT = post_purchase.nps_state_in,
	OUTPUT = post_purchase.nps_state_out,
	RECEIVE = post_purchase.nps_state_recv,
	SEND = post_purchase.nps_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE post_purchase.nps_state IS
	'the state of nps and nps_summary: promoter, passive and detractor counts; text form \x and hex';

CREATE FUNCTION post_purchase.nps_state_accum(post_purchase.nps_state, integer) RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_combine(post_purchase.nps_state, post_purchase.nps_state)
	RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_final(post_purchase.nps_state) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_summary_state_final(post_purchase.nps_state) RETURNS post_purchase.nps_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE AGGREGATE post_purchase.nps(score integer) (
	SFUNC = post_purchase.nps_state_accum,
	STYPE = post_purchase.nps_state,
	SSPACE = 32,
	INITCOND = '\x000000000000000000000000000000000000000000000000',
	FINALFUNC = post_purchase.nps_state_final,
	COMBINEFUNC = post_purchase.nps_state_combine,
	PARALLEL = SAFE
);
CREATE OR REPLACE AGGREGATE post_purchase.nps_summary(score integer) (
	SFUNC = post_purchase.nps_state_accum,
	STYPE = post_purchase.nps_state,
	SSPACE = 32,
	INITCOND = '\x000000000000000000000000000000000000000000000000',
	FINALFUNC = post_purchase.nps_summary_state_final,
	COMBINEFUNC = post_purchase.nps_state_combine,
	PARALLEL = SAFE
);
DROP FUNCTION post_purchase.nps_accum(internal, integer);
DROP FUNCTION post_purchase.nps_combine(internal, internal);
DROP FUNCTION post_purchase.nps_serialize(internal);
DROP FUNCTION post_purchase.nps_deserialize(bytea, internal);
DROP FUNCTION post_purchase.nps_final(internal);
DROP FUNCTION post_purchase.nps_summary_final(internal);

CREATE TYPE post_purchase.rfm_summary_state;
CREATE FUNCTION post_purchase.rfm_summary_state_in(cstring) RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_out(post_purchase.rfm_summary_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_recv(internal) RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_send(post_purchase.rfm_summary_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.rfm_summary_state (
	INPUT = post_purchase.rfm_summary_state_in,
	OUTPUT = post_purchase.rfm_summary_state_out,
	RECEIVE = post_purchase.rfm_summary_state_recv,
	SEND = post_purchase.rfm_summary_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE post_purchase.rfm_summary_state IS
	'the state of rfm_summary: parameters, time zone, purchase days and spend; text form \x and hex';

CREATE FUNCTION post_purchase.rfm_summary_state_accum(post_purchase.rfm_summary_state, timestamptz, numeric, timestamptz)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_accum(post_purchase.rfm_summary_state, timestamptz, numeric, timestamptz, interval)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_accum(post_purchase.rfm_summary_state, timestamptz, numeric, timestamptz, interval,
													  text)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_combine(post_purchase.rfm_summary_state, post_purchase.rfm_summary_state)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- the state's time zone decides T's day: nothing of the session's
CREATE FUNCTION post_purchase.rfm_summary_state_final(post_purchase.rfm_summary_state) RETURNS post_purchase.rfm_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz) (
	SFUNC = post_purchase.rfm_summary_state_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.rfm_summary_state_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
CREATE OR REPLACE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz, unit interval) (
	SFUNC = post_purchase.rfm_summary_state_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.rfm_summary_state_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
DROP FUNCTION post_purchase.rfm_summary_accum(internal, timestamptz, numeric, timestamptz);
DROP FUNCTION post_purchase.rfm_summary_accum(internal, timestamptz, numeric, timestamptz, interval);
DROP FUNCTION post_purchase.rfm_summary_combine(internal, internal);
DROP FUNCTION post_purchase.rfm_summary_serialize(internal);
DROP FUNCTION post_purchase.rfm_summary_deserialize(bytea, internal);
DROP FUNCTION post_purchase.rfm_summary_final(internal);
-- new in 1.1: purchase days in a given time zone (src/dayset.h)
CREATE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz, unit interval, time_zone text) (
	SFUNC = post_purchase.rfm_summary_state_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.rfm_summary_state_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.rfm_summary(timestamptz, numeric, timestamptz, interval, text) IS
	'BTYD summary in units, with purchase days counted in the given time zone (an IANA name)';

CREATE TYPE post_purchase.purchase_cycle_state;
CREATE FUNCTION post_purchase.purchase_cycle_state_in(cstring) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_out(post_purchase.purchase_cycle_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_recv(internal) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_send(post_purchase.purchase_cycle_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.purchase_cycle_state (
	INPUT = post_purchase.purchase_cycle_state_in,
	OUTPUT = post_purchase.purchase_cycle_state_out,
	RECEIVE = post_purchase.purchase_cycle_state_recv,
	SEND = post_purchase.purchase_cycle_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE post_purchase.purchase_cycle_state IS
	'the state of purchase_cycle: time zone, last purchase and purchase days; text form \x and hex';

CREATE FUNCTION post_purchase.purchase_cycle_state_accum(post_purchase.purchase_cycle_state, timestamptz) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_accum(post_purchase.purchase_cycle_state, timestamptz, text) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_combine(post_purchase.purchase_cycle_state, post_purchase.purchase_cycle_state)
	RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- the state's time zone decides the due date's day: nothing of the session's
CREATE FUNCTION post_purchase.purchase_cycle_state_final(post_purchase.purchase_cycle_state) RETURNS post_purchase.purchase_cycle_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE AGGREGATE post_purchase.purchase_cycle(ordered_at timestamptz) (
	SFUNC = post_purchase.purchase_cycle_state_accum,
	STYPE = post_purchase.purchase_cycle_state,
	SSPACE = 72,
	FINALFUNC = post_purchase.purchase_cycle_state_final,
	COMBINEFUNC = post_purchase.purchase_cycle_state_combine,
	PARALLEL = SAFE
);
DROP FUNCTION post_purchase.purchase_cycle_accum(internal, timestamptz);
DROP FUNCTION post_purchase.purchase_cycle_combine(internal, internal);
DROP FUNCTION post_purchase.purchase_cycle_serialize(internal);
DROP FUNCTION post_purchase.purchase_cycle_deserialize(bytea, internal);
DROP FUNCTION post_purchase.purchase_cycle_final(internal);
-- new in 1.1: purchase days in a given time zone (src/dayset.h)
CREATE AGGREGATE post_purchase.purchase_cycle(ordered_at timestamptz, time_zone text) (
	SFUNC = post_purchase.purchase_cycle_state_accum,
	STYPE = post_purchase.purchase_cycle_state,
	SSPACE = 72,
	FINALFUNC = post_purchase.purchase_cycle_state_final,
	COMBINEFUNC = post_purchase.purchase_cycle_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.purchase_cycle(timestamptz, text) IS
	'a customer''s purchase cycle, with purchase days counted in the given time zone (an IANA name)';

CREATE TYPE post_purchase.model_fit_state;
CREATE FUNCTION post_purchase.model_fit_state_in(cstring) RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_state_out(post_purchase.model_fit_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_state_recv(internal) RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_state_send(post_purchase.model_fit_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.model_fit_state (
	INPUT = post_purchase.model_fit_state_in,
	OUTPUT = post_purchase.model_fit_state_out,
	RECEIVE = post_purchase.model_fit_state_recv,
	SEND = post_purchase.model_fit_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE post_purchase.model_fit_state IS
	'the state of bgnbd_fit and gamma_gamma_fit: the weighted distinct customer summaries; text form \x and hex';

CREATE FUNCTION post_purchase.model_fit_state_combine(post_purchase.model_fit_state, post_purchase.model_fit_state) RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION post_purchase.bgnbd_fit_state_accum(post_purchase.model_fit_state, double precision, double precision, double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.bgnbd_fit_state_accum(post_purchase.model_fit_state, double precision, double precision, double precision,
													double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.bgnbd_fit_state_final(post_purchase.model_fit_state) RETURNS post_purchase.bgnbd_model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE AGGREGATE post_purchase.bgnbd_fit(frequency double precision, recency double precision,
										 t double precision) (
	SFUNC = post_purchase.bgnbd_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.bgnbd_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
	PARALLEL = SAFE
);
CREATE OR REPLACE AGGREGATE post_purchase.bgnbd_fit(frequency double precision, recency double precision,
										 t double precision, weight double precision) (
	SFUNC = post_purchase.bgnbd_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.bgnbd_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
	PARALLEL = SAFE
);
CREATE FUNCTION post_purchase.gamma_gamma_fit_state_accum(post_purchase.model_fit_state, double precision, double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.gamma_gamma_fit_state_accum(post_purchase.model_fit_state, double precision, double precision,
														  double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.gamma_gamma_fit_state_final(post_purchase.model_fit_state) RETURNS post_purchase.gamma_gamma_model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE OR REPLACE AGGREGATE post_purchase.gamma_gamma_fit(frequency double precision, monetary_value double precision) (
	SFUNC = post_purchase.gamma_gamma_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.gamma_gamma_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
	PARALLEL = SAFE
);
CREATE OR REPLACE AGGREGATE post_purchase.gamma_gamma_fit(frequency double precision, monetary_value double precision,
											   weight double precision) (
	SFUNC = post_purchase.gamma_gamma_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.gamma_gamma_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
	PARALLEL = SAFE
);
DROP FUNCTION post_purchase.bgnbd_fit_accum(internal, double precision, double precision, double precision);
DROP FUNCTION post_purchase.bgnbd_fit_accum(internal, double precision, double precision, double precision,
											double precision);
DROP FUNCTION post_purchase.bgnbd_fit_final(internal);
DROP FUNCTION post_purchase.gamma_gamma_fit_accum(internal, double precision, double precision);
DROP FUNCTION post_purchase.gamma_gamma_fit_accum(internal, double precision, double precision, double precision);
DROP FUNCTION post_purchase.gamma_gamma_fit_final(internal);
DROP FUNCTION post_purchase.model_fit_combine(internal, internal);
DROP FUNCTION post_purchase.model_fit_serialize(internal);
DROP FUNCTION post_purchase.model_fit_deserialize(bytea, internal);
