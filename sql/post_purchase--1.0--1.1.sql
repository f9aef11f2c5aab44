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

-- The version of what customer_metrics computes with: every change of the
-- settings, the models or the RFM cut points adds one, in the changing
-- transaction.  A customer's stored scores carry the version they were
-- computed under (customer_state.scored_context, src/scores.c) and count
-- only while it is current.  Dumped, and not counted up while a restore
-- runs, so that restored scores keep counting under the restored context.
CREATE TABLE post_purchase.metrics_context_version (
	version bigint NOT NULL,
	one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row)
);
COMMENT ON TABLE post_purchase.metrics_context_version IS
	'internal: the version of the settings, models and RFM cut points, which stored scores are computed under';
INSERT INTO post_purchase.metrics_context_version (version) VALUES (1);
-- (counted up by next_metrics_context_version(), src/dump.sql, which knows
-- when a restore runs)
SELECT pg_catalog.pg_extension_config_dump('post_purchase.metrics_context_version', '');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.metrics_context_version
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row();

CREATE FUNCTION post_purchase.next_metrics_context_version() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	-- a restore brings back the settings, models and cut points the dumped
	-- version stands for, and that version with them
	IF NOT post_purchase.restoring() THEN
		UPDATE post_purchase.metrics_context_version v SET version = v.version + 1;
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.next_metrics_context_version() FROM PUBLIC;
CREATE TRIGGER metrics_context_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.settings
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.next_metrics_context_version();
CREATE TRIGGER metrics_context_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.models
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.next_metrics_context_version();
CREATE TRIGGER metrics_context_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.rfm_cuts
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.next_metrics_context_version();

-- What customer_metrics computes with, in one row: the settings, the
-- newest converged model and the newest RFM cut points (NULL if none), and
-- the version of all three.
CREATE VIEW post_purchase.metrics_context AS
SELECT c.pinned_today, c.time_zone, c.lapsed_after_days, c.at_risk_after_days, c.clv_monthly_discount,
	   (SELECT m FROM post_purchase.models m WHERE (m.bgnbd).converged ORDER BY m.model_id DESC LIMIT 1) AS model,
	   (SELECT r FROM post_purchase.rfm_cuts r ORDER BY r.computed_at DESC LIMIT 1) AS cuts,
	   (SELECT v.version FROM post_purchase.metrics_context_version v) AS version
FROM post_purchase.shop_settings c;
COMMENT ON VIEW post_purchase.metrics_context IS
	'internal: what customer_metrics computes with: the settings, the newest converged model, the newest RFM cut points, their version';

-- The latest survey answers (issue 20, src/answers.c), before the views
-- below read them; in a fresh install too they come before the change marks.
ALTER TABLE post_purchase.customer_state
	ADD COLUMN last_nps integer,
	ADD COLUMN last_nps_at timestamptz,
	ADD COLUMN last_csat integer,
	ADD COLUMN last_csat_at timestamptz;

-- The order trigger's state write also marks the customer as changed, for
-- a worker's decision (src/decisions.c); before metrics_of() takes the row
-- type as an argument, which would keep the table from changing.  Every order so far was decided in its transaction.
ALTER TABLE post_purchase.customer_state
	ADD COLUMN changed_at timestamptz,
	ADD COLUMN order_seq bigint NOT NULL DEFAULT 0,
	ADD COLUMN decided_seq bigint NOT NULL DEFAULT 0,
	-- the stored scores (src/scores.c), stored by the workers from now on
	ADD COLUMN scored_on date,
	ADD COLUMN scored_context bigint,
	ADD COLUMN average_order_value numeric,
	ADD COLUMN monetary_value numeric,
	ADD COLUMN p_alive double precision,
	ADD COLUMN expected_purchases_90d double precision,
	ADD COLUMN clv_12m double precision,
	ADD COLUMN r_score integer,
	ADD COLUMN f_score integer,
	ADD COLUMN m_score integer,
	ADD COLUMN rfm_segment text,
	ADD COLUMN lifecycle_stage text;
UPDATE post_purchase.customer_state SET order_seq = orders, decided_seq = orders;
-- the workers take the oldest marks first
CREATE INDEX customer_state_changed ON post_purchase.customer_state (changed_at) WHERE changed_at IS NOT NULL;

-- The per-customer metrics, each defined once: customer_summaries_in_context
-- and customer_metrics compute them over the state table, metrics_of() over
-- one state row (the segment rules); all three call these.  SQL bodies,
-- parsed at creation (immune to the caller's search_path) and inlined into
-- the caller's plan.

-- The mean value of the repeat purchase days: the Gamma-Gamma model's
-- monetary value (the first day is left out, as in Fader, Hardie and Lee
-- 2005); 0 for a customer with one purchase day.
CREATE FUNCTION post_purchase.monetary_value(revenue numeric, first_day_revenue numeric, purchase_days bigint)
	RETURNS numeric
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN purchase_days > 1
				THEN pg_catalog.trim_scale((revenue - first_day_revenue) / (purchase_days - 1)) ELSE 0 END;
COMMENT ON FUNCTION post_purchase.monetary_value(numeric, numeric, bigint) IS
	'mean revenue of the repeat purchase days (the first day left out); 0 with one purchase day';

-- The customer's age in days, the BTYD T: from the first purchase day to
-- today, or to the last purchase day if that is later (an order dated in
-- the future counts from its own day).
CREATE FUNCTION post_purchase.customer_age_days(today date, first_day date, last_day date) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN GREATEST(today, last_day) - first_day;
COMMENT ON FUNCTION post_purchase.customer_age_days(date, date, date) IS
	'the BTYD T in days: first purchase day to today (or to the last purchase day if later)';

-- The recency score: the quintile of the days since the last order,
-- reversed (5 is the most recent).
CREATE FUNCTION post_purchase.recency_score(days_since_last_order integer, cuts double precision[]) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN 6 - post_purchase.rfm_score(days_since_last_order, cuts);
COMMENT ON FUNCTION post_purchase.recency_score(integer, double precision[]) IS
	'RFM recency score 1..5 (5: most recent) of the days since the last order, given the recency cut points';

-- The lifecycle stage: lapsed and at_risk by the days since the last
-- order, else vip by the predicted clv_12m against the model's VIP cut,
-- else new (one purchase day) or returning.
CREATE FUNCTION post_purchase.lifecycle_stage(days_since_last_order integer, purchase_days bigint,
											  clv_12m double precision, vip_clv_cut double precision,
											  lapsed_after_days integer, at_risk_after_days integer)
	RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN days_since_last_order > lapsed_after_days THEN 'lapsed'
				WHEN days_since_last_order > at_risk_after_days THEN 'at_risk'
				WHEN clv_12m >= vip_clv_cut THEN 'vip'
				WHEN purchase_days = 1 THEN 'new'
				ELSE 'returning' END;
COMMENT ON FUNCTION post_purchase.lifecycle_stage(integer, bigint, double precision, double precision, integer, integer) IS
	'lapsed, at_risk (by days since the last order), vip (clv_12m at or above the VIP cut), new (one purchase day) or returning';

-- When the customer's own cycle says the next order is due: the last
-- order plus the mean gap between purchase days (NULL with one purchase
-- day).  STABLE: adding days to a timestamptz depends on the TimeZone.
CREATE FUNCTION post_purchase.next_replenishment_due(last_order_at timestamptz, first_day date, last_day date,
													 purchase_days bigint)
	RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN purchase_days > 1
				THEN last_order_at + (last_day - first_day) * interval '1 day' / (purchase_days - 1) END;
COMMENT ON FUNCTION post_purchase.next_replenishment_due(timestamptz, date, date, bigint) IS
	'the last order plus the customer''s mean gap between purchase days; NULL with one purchase day';

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
	   post_purchase.customer_age_days(ctx.today, s.first_day, s.last_day)::double precision AS t,
	   post_purchase.monetary_value(s.revenue, s.first_day_revenue, s.purchase_days) AS monetary_value,
	   ctx.today - s.last_day AS days_since_last_order,
	   s.orders, s.revenue, s.first_order_at, s.last_order_at, s.purchase_days, s.first_day, s.last_day,
	   s.updated_at,
	   ctx.lapsed_after_days, ctx.at_risk_after_days, ctx.clv_monthly_discount AS monthly_discount,
	   ctx.model, ctx.cuts,
	   s.last_nps, s.last_nps_at, s.last_csat, s.last_csat_at,
	   -- the stored scores, which count while computed for today under the
	   -- current context (NULL, not true, otherwise; src/scores.c)
	   s.scored_on OPERATOR(pg_catalog.=) ctx.today AND s.scored_context OPERATOR(pg_catalog.=) ctx.version
		   AS scored,
	   s.average_order_value AS stored_average_order_value, s.monetary_value AS stored_monetary_value,
	   s.p_alive AS stored_p_alive, s.expected_purchases_90d AS stored_expected_purchases_90d,
	   s.clv_12m AS stored_clv_12m, s.r_score AS stored_r_score, s.f_score AS stored_f_score,
	   s.m_score AS stored_m_score, s.rfm_segment AS stored_rfm_segment,
	   s.lifecycle_stage AS stored_lifecycle_stage
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
	   CASE WHEN b.scored THEN b.stored_average_order_value ELSE round(b.revenue / b.orders, 2) END
		   AS average_order_value,
	   b.frequency::bigint AS frequency,
	   b.recency::integer AS recency_days,
	   b.t::integer AS t_days,
	   CASE WHEN b.scored THEN b.stored_monetary_value ELSE b.monetary_value END AS monetary_value,
	   b.days_since_last_order,
	   pr.p_alive,
	   pr.expected_purchases_90d,
	   pr.clv_12m,
	   sc.r_score,
	   sc.f_score,
	   sc.m_score,
	   CASE WHEN b.scored THEN b.stored_rfm_segment ELSE post_purchase.rfm_segment(sc.r_score, sc.f_score) END
		   AS rfm_segment,
	   CASE WHEN b.scored THEN b.stored_lifecycle_stage
			ELSE post_purchase.lifecycle_stage(b.days_since_last_order, b.purchase_days, pr.clv_12m,
											   (b.model).vip_clv_cut, b.lapsed_after_days, b.at_risk_after_days)
	   END AS lifecycle_stage,
	   post_purchase.next_replenishment_due(b.last_order_at, b.first_day, b.last_day, b.purchase_days)
		   AS next_replenishment_due,
	   (b.model).model_id AS model_id,
	   -- the latest survey answers (src/answers.c)
	   b.last_nps,
	   b.last_nps_at,
	   b.last_csat,
	   b.last_csat_at
-- b, the summary, carries the state's columns, its stored scores and what
-- they are computed with: one read of the state, no join
FROM post_purchase.customer_summaries_in_context b
-- the stored scores where they count (the workers keep them, src/scores.c),
-- else computed here with the same functions as metrics_of().  Not a
-- subquery computed once per customer (OFFSET 0): the planner memoized it
-- by a key of some fifty columns, which cost more than computing clv_12m
-- a second time where it is not stored.
CROSS JOIN LATERAL (
	SELECT CASE WHEN b.scored THEN b.stored_p_alive
				WHEN (b.model).model_id IS NOT NULL THEN post_purchase.bgnbd_p_alive((b.model).bgnbd, b.frequency, b.recency, b.t)
		   END AS p_alive,
		   CASE WHEN b.scored THEN b.stored_expected_purchases_90d
				WHEN (b.model).model_id IS NOT NULL
				THEN post_purchase.bgnbd_expected_purchases((b.model).bgnbd, b.frequency, b.recency, b.t, 90)
		   END AS expected_purchases_90d,
		   CASE WHEN b.scored THEN b.stored_clv_12m
				WHEN (b.model).model_id IS NOT NULL
				THEN post_purchase.predicted_clv_12m(b.model, b.frequency, b.recency, b.t, b.monetary_value,
													 b.monthly_discount)
		   END AS clv_12m) pr
CROSS JOIN LATERAL (
	SELECT CASE WHEN b.scored THEN b.stored_r_score
				ELSE post_purchase.recency_score(b.days_since_last_order, (b.cuts).recency_cuts) END AS r_score,
		   CASE WHEN b.scored THEN b.stored_f_score
				ELSE post_purchase.rfm_score(b.purchase_days, (b.cuts).frequency_cuts) END AS f_score,
		   CASE WHEN b.scored THEN b.stored_m_score
				ELSE post_purchase.rfm_score(b.revenue::float8, (b.cuts).monetary_cuts) END AS m_score) sc;

-- One customer's customer_metrics row, computed from the customer's state
-- and what the metrics are computed with, given as values; the stored
-- scores are not read.  The segment rules are evaluated over it with the
-- context the backend keeps (metrics_context.c), so that a decision reads
-- no table for them, and the scores stored with the state are what it
-- returns (src/scores.c).  Each metric is one of the functions above,
-- which customer_metrics calls too (sql/customer_metrics.sql checks that
-- the two agree on every customer).  The view does not call this function:
-- inlined into the view, it doubled a one-customer lookup's planning time.
CREATE FUNCTION post_purchase.metrics_of(s post_purchase.customer_state, today date,
										 lapsed_after_days integer, at_risk_after_days integer,
										 monthly_discount double precision, model post_purchase.models,
										 cuts post_purchase.rfm_cuts)
	RETURNS TABLE (customer_id text, orders bigint, first_order_at timestamptz, last_order_at timestamptz,
				   revenue numeric, average_order_value numeric, frequency bigint, recency_days integer,
				   t_days integer, monetary_value numeric, days_since_last_order integer,
				   p_alive double precision, expected_purchases_90d double precision, clv_12m double precision,
				   r_score integer, f_score integer, m_score integer, rfm_segment text, lifecycle_stage text,
				   next_replenishment_due timestamptz, model_id bigint, last_nps integer,
				   last_nps_at timestamptz, last_csat integer, last_csat_at timestamptz)
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
		   post_purchase.lifecycle_stage(b.days_since_last_order, b.purchase_days, pr.clv_12m, (model).vip_clv_cut,
										 lapsed_after_days, at_risk_after_days),
		   post_purchase.next_replenishment_due(b.last_order_at, b.first_day, b.last_day, b.purchase_days),
		   (model).model_id,
		   b.last_nps,
		   b.last_nps_at,
		   b.last_csat,
		   b.last_csat_at
	FROM (SELECT (s).customer_id, (s).orders, (s).revenue, (s).first_order_at, (s).last_order_at,
				 (s).purchase_days, (s).first_day, (s).last_day,
				 (s).last_nps, (s).last_nps_at, (s).last_csat, (s).last_csat_at,
				 ((s).purchase_days - 1)::double precision AS frequency,
				 ((s).last_day - (s).first_day)::double precision AS recency,
				 post_purchase.customer_age_days(today, (s).first_day, (s).last_day)::double precision AS t,
				 post_purchase.monetary_value((s).revenue, (s).first_day_revenue, (s).purchase_days)
					 AS monetary_value,
				 today - (s).last_day AS days_since_last_order) b
	CROSS JOIN LATERAL (
		SELECT CASE WHEN (model).model_id IS NOT NULL
					THEN post_purchase.bgnbd_p_alive((model).bgnbd, b.frequency, b.recency, b.t)
			   END AS p_alive,
			   CASE WHEN (model).model_id IS NOT NULL
					THEN post_purchase.bgnbd_expected_purchases((model).bgnbd, b.frequency, b.recency, b.t, 90)
			   END AS expected_purchases_90d,
			   CASE WHEN (model).model_id IS NOT NULL
					THEN post_purchase.predicted_clv_12m(model, b.frequency, b.recency, b.t, b.monetary_value,
														 monthly_discount)
			   END AS clv_12m
		OFFSET 0) pr	-- computed once, though clv_12m is used twice
	CROSS JOIN LATERAL (
		SELECT post_purchase.recency_score(b.days_since_last_order, (cuts).recency_cuts) AS r_score,
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
											 enrollment_id bigint, enrolled_at timestamptz,
											 message_id uuid DEFAULT NULL)
	RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.render_message(jsonb, jsonb, jsonb, text, text, text, text, text, text, bigint, timestamptz, uuid) IS
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
				   d.customer_id, d.journey, d.step, d.variant, d.channel, d.address, d.enrollment_id, d.enrolled_at,
				   d.message_id),
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
-- The predictions are stored with the state now (src/scores.c): the workers
-- store every customer's under the newest model; until then
-- customer_metrics computes them.
DROP TABLE post_purchase.customer_predictions;

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
	-- the answers' columns and the stored scores are not the orders'
	-- (verify_state() compares the orders')
	RETURN QUERY EXECUTE 'SELECT q.c1, q.c2, q.c3, q.c4, q.c5, q.c6, q.c7, q.c8, q.c9, q.c10, '
		|| 'NULL::pg_catalog.int4, NULL::pg_catalog.timestamptz, NULL::pg_catalog.int4, NULL::pg_catalog.timestamptz, '
		|| 'q.c11, q.c12, q.c13, NULL::pg_catalog.date, NULL::pg_catalog.int8, NULL::pg_catalog.numeric, '
		|| 'NULL::pg_catalog.numeric, NULL::pg_catalog.float8, NULL::pg_catalog.float8, NULL::pg_catalog.float8, '
		|| 'NULL::pg_catalog.int4, NULL::pg_catalog.int4, NULL::pg_catalog.int4, NULL::pg_catalog.text, '
		|| 'NULL::pg_catalog.text FROM (' || post_purchase.recomputed_state_query(t)
		|| ') q(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13)';
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

-- The customer index of a tracked table (the orders, or the survey
-- answers), created when there is none, or an error with a hint when the
-- caller may not create it; for_trigger ('order' or 'survey answers') says
-- whose trigger needs it, in the NOTICE and the error.
CREATE FUNCTION post_purchase.ensure_customer_index(orders regclass, customer_column name, for_trigger text)
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
				  DETAIL = CASE for_trigger
							   WHEN 'survey answers' THEN 'An updated or deleted answer that was the customer''s latest makes the survey answers trigger find the customer''s latest answer again, through such an index.'
							   ELSE 'A late, updated or deleted order makes the trigger recompute its customer from the orders table, through such an index.' END,
				  HINT = format('Have the table''s owner run: CREATE INDEX ON %s (%I);', orders, customer_column);
	END;
	found := post_purchase.customer_index(orders, customer_column);
	RAISE NOTICE 'created index % on %(%) for the % trigger', found, orders, customer_column, for_trigger;
	RETURN found;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.ensure_customer_index(regclass, name, text) FROM PUBLIC;

SELECT post_purchase.ensure_customer_index(t.orders, t.customer_column, 'order') FROM post_purchase.tracked_orders t;

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
	PERFORM post_purchase.check_not_distributed(orders, 'track_orders');

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

	PERFORM post_purchase.ensure_customer_index(orders, customer_column, 'order');

	IF backfill THEN
		-- set-based and executed directly: a set-returning function in
		-- between would first copy every row into a tuplestore
		-- (the backfilled orders count as decided: they enroll no one)
		EXECUTE 'INSERT INTO post_purchase.customer_state (customer_id, orders, revenue, first_order_at, '
			|| 'last_order_at, purchase_days, first_day, last_day, first_day_revenue, updated_at, changed_at, '
			|| 'order_seq, decided_seq) '
			|| post_purchase.recomputed_state_query((SELECT t FROM post_purchase.tracked_orders t));
		-- a NaN or infinite amount makes its customer's revenue one as well:
		-- checking the customers reads a tenth of the rows
		SELECT s.customer_id INTO bad_customer FROM post_purchase.customer_state s
		WHERE s.revenue IN ('NaN', 'Infinity', '-Infinity') LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'orders of customer % have a NaN or infinite amount', bad_customer
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		-- the state is new: the tracked survey answers go back into it
		IF EXISTS (SELECT FROM post_purchase.tracked_survey_answers) THEN
			PERFORM post_purchase.refresh_survey_answers();
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

-- Stored scores (src/scores.c): customer_metrics' columns that are computed
-- from the state under the models, RFM cuts, settings and today, stored in
-- customer_state so that customer_metrics over all customers reads one
-- table.  The workers store them for each customer they decide and, after
-- the context changes (a new model or cut points, a setting, a new day),
-- for every customer, a batch a transaction.

-- Store the scores of up to batch customers whose stored scores do not
-- count (changed since, or computed under another context), going on from
-- where the session's last call stopped; returns how many.  Skips customers
-- another transaction holds (an order being written, a worker's batch).
CREATE FUNCTION post_purchase.store_scores(batch integer DEFAULT 1000) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION post_purchase.store_scores(integer) IS
	'store the scores of up to batch customers whose stored scores do not count; returns how many';
REVOKE ALL ON FUNCTION post_purchase.store_scores(integer) FROM PUBLIC;

-- Store every customer's scores, committing after each batch, for a
-- database that no worker serves (CALL, outside a transaction block).  No
-- SET search_path: a procedure with one cannot commit; every name is
-- qualified instead.
CREATE PROCEDURE post_purchase.store_all_scores(batch integer DEFAULT 10000)
	LANGUAGE plpgsql
	AS $$
DECLARE
	stored bigint;
BEGIN
	LOOP
		stored := post_purchase.store_scores(batch);
		COMMIT;
		EXIT WHEN stored IS NULL OR stored OPERATOR(pg_catalog.<) batch;
	END LOOP;
END
$$;
COMMENT ON PROCEDURE post_purchase.store_all_scores(integer) IS
	'store every customer''s scores whose stored scores do not count, committing after each batch';
REVOKE ALL ON PROCEDURE post_purchase.store_all_scores(integer) FROM PUBLIC;

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

-- purchase_totals: what the customer state keeps of a customer's orders
-- beyond their count and times, on rfm_summary's state with every order
-- counting (src/rfm.c).  The backfill, verify_state() and the order
-- trigger's recompute use it: one definition of these columns.
CREATE TYPE post_purchase.purchase_totals AS (
	purchase_days bigint,
	first_day date,
	last_day date,
	revenue numeric,
	first_day_revenue numeric
);
COMMENT ON TYPE post_purchase.purchase_totals IS
	'purchase_totals: distinct purchase days, the first and last of them, revenue, the first day''s revenue';

-- the zone is an argument, never a default: nothing of the session's
CREATE FUNCTION post_purchase.purchase_totals_accum(post_purchase.rfm_summary_state, timestamptz, numeric, text)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_totals_final(post_purchase.rfm_summary_state) RETURNS post_purchase.purchase_totals
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.purchase_totals(ordered_at timestamptz, amount numeric, time_zone text) (
	SFUNC = post_purchase.purchase_totals_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.purchase_totals_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.purchase_totals(timestamptz, numeric, text) IS
	'a customer''s purchase days (orders on one day of the zone are one), first and last day, revenue and first day''s revenue';

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
-- Complementary products (issue 20): product_affinity, refresh_product_affinity(),
-- recommend_products(), recommendations_json(), their settings (src/affinity.sql,
-- copied), and {{recommendations}} in the cross-sell seed step if the shop left it as 1.0 made it.
INSERT INTO post_purchase.settings VALUES
	('affinity_window', '90 days', 'refresh_product_affinity: B follows A when the same customer buys B within this long after A (more than 0, at most 100 years); recommend_products skips what the customer bought this recently'),
	('affinity_min_support', '0.0001', 'refresh_product_affinity keeps a pair when its support (share of orders, or of customers for sequences) is at least this (0..1)'),
	('affinity_min_confidence', '0.01', 'refresh_product_affinity keeps a pair A -> B when the share of A''s orders (or customers) that also have B is at least this (0..1)');

CREATE TABLE post_purchase.product_affinity (
	product_a text NOT NULL,
	kind text NOT NULL CHECK (kind IN ('same_order', 'sequence')),
	product_b text NOT NULL CHECK (product_b <> product_a),
	pair_count bigint NOT NULL CHECK (pair_count > 0),
	a_count bigint NOT NULL CHECK (a_count >= pair_count),
	b_count bigint NOT NULL CHECK (b_count >= pair_count),
	total bigint NOT NULL CHECK (total >= a_count AND total >= b_count),
	support double precision NOT NULL,
	confidence double precision NOT NULL,
	lift double precision NOT NULL,
	window_length interval,
	computed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (product_a, kind, product_b),
	CHECK ((kind = 'sequence') = (window_length IS NOT NULL))
);
COMMENT ON TABLE post_purchase.product_affinity IS
	'product pairs bought in the same order (same_order) or B after A by the same customer within window_length (sequence): counts, support, confidence, lift; from refresh_product_affinity()';

-- An affinity setting, typed, or a clear error naming it.
CREATE FUNCTION post_purchase.affinity_setting(setting_name text) RETURNS text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	value text := post_purchase.setting(setting_name);
BEGIN
	IF value IS NULL THEN
		RAISE EXCEPTION 'setting % is missing', setting_name USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Insert it into post_purchase.settings again (README, "Complementary products").';
	END IF;
	RETURN value;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.affinity_setting(text) FROM PUBLIC;

-- The window and thresholds refresh_product_affinity() and
-- recommend_products() work with: the arguments, else the settings;
-- validated here, once, with the name of whatever is wrong.
CREATE FUNCTION post_purchase.affinity_parameters(given_window interval, given_min_support double precision,
												  given_min_confidence double precision,
												  OUT affinity_window interval, OUT min_support double precision,
												  OUT min_confidence double precision)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	source text;
BEGIN
	source := 'affinity_window';
	BEGIN
		affinity_window := coalesce(given_window, post_purchase.affinity_setting('affinity_window')::interval);
		source := 'affinity_min_support';
		min_support := coalesce(given_min_support, post_purchase.affinity_setting('affinity_min_support')::double precision);
		source := 'affinity_min_confidence';
		min_confidence := coalesce(given_min_confidence, post_purchase.affinity_setting('affinity_min_confidence')::double precision);
	EXCEPTION WHEN invalid_datetime_format OR invalid_text_representation OR datetime_field_overflow
				   OR interval_field_overflow OR numeric_value_out_of_range THEN
		RAISE EXCEPTION 'setting % is not valid: %', source, SQLERRM USING ERRCODE = 'invalid_parameter_value';
	END;
	-- a window of 0 or less has no "after"; beyond 100 years every purchase
	-- follows every other, and tA + window may leave the timestamp range
	IF affinity_window <= interval '0' OR affinity_window > interval '100 years' THEN
		RAISE EXCEPTION 'the affinity window must be more than 0 and at most 100 years, not %', affinity_window
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass affinity_window => interval ''90 days'', or set affinity_window in post_purchase.settings.';
	END IF;
	IF NOT (min_support >= 0 AND min_support <= 1) THEN		-- NaN fails both
		RAISE EXCEPTION 'min_support must be between 0 and 1, not %', min_support
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT (min_confidence >= 0 AND min_confidence <= 1) THEN
		RAISE EXCEPTION 'min_confidence must be between 0 and 1, not %', min_confidence
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.affinity_parameters(interval, double precision, double precision) FROM PUBLIC;

-- The kept pairs of both kinds with their counts (src/affinity.c): one
-- read of customer_product_orders sorted by customer, time and order, each
-- customer's items walked once in time order; the pairs counted on product
-- numbers in a hash table per partition of the products A, each partition
-- sized to fit in work_mem x hash_mem_multiplier.  Same-order pairs come in
-- both directions.
CREATE FUNCTION post_purchase.affinity_pairs(affinity_window interval, min_support double precision,
											 min_confidence double precision)
	RETURNS TABLE (product_a text, kind text, product_b text, pair_count bigint, a_count bigint, b_count bigint,
				   total bigint)
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 10000 SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC';
REVOKE ALL ON FUNCTION post_purchase.affinity_pairs(interval, double precision, double precision) FROM PUBLIC;

-- Recompute product_affinity from customer_product_orders, in one
-- transaction (readers see the old pairs until it commits).  Returns the
-- number of pairs kept (both kinds, both directions).
--
-- Cost, per order item (src/affinity.c): its share of one sort of the
-- items by customer, time and order (O(log items) comparisons; the
-- executor's sort, spilling past work_mem), a product lookup, 16 bytes
-- written to a temporary file and read back once per partition, and a hash
-- increment per pair it is in: (o - 1) / 2 same-order pairs (o items in its
-- order) and w follow pairs (w of its customer's items within the window
-- after it, made distinct per customer by a sort of the customer's pairs).
-- So O(items x (log items + o + w)); nothing is per pair of all products.
--
-- Memory: the products (their text and counts), one customer's items and
-- distinct follow pairs, and one partition's pair hash table.  The
-- products A are split into partitions whose upper bound of distinct pairs
-- (a product's pair occurrences, at most the number of frequent products)
-- fits in work_mem x hash_mem_multiplier, and the items are read again
-- from the temporary file for each: no pass needs all pairs of all
-- products in memory at once.  The kept rows go through a tuplestore
-- (spilling past work_mem).
--
-- Products below min_support cannot be in a kept pair (a pair's count is
-- at most either product's), so their pairs are never counted.
CREATE FUNCTION post_purchase.refresh_product_affinity(affinity_window interval DEFAULT NULL,
													   min_support double precision DEFAULT NULL,
													   min_confidence double precision DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'
	AS $$
DECLARE
	p record;
	kept bigint;
BEGIN
	SELECT * INTO p FROM post_purchase.affinity_parameters(affinity_window, min_support, min_confidence);
	-- one refresh at a time: a second would only delete the first's rows
	LOCK TABLE post_purchase.product_affinity IN SHARE ROW EXCLUSIVE MODE;
	DELETE FROM post_purchase.product_affinity;
	-- the ratios as the float8 division of the exact counts; affinity_pairs
	-- kept the pairs on the same two divisions
	INSERT INTO post_purchase.product_affinity (product_a, kind, product_b, pair_count, a_count, b_count, total,
												support, confidence, lift, window_length)
	SELECT x.product_a, x.kind, x.product_b, x.pair_count, x.a_count, x.b_count, x.total,
		   x.pair_count::double precision / x.total::double precision,
		   x.pair_count::double precision / x.a_count::double precision,
		   (x.pair_count::double precision * x.total::double precision)
			   / (x.a_count::double precision * x.b_count::double precision),
		   CASE WHEN x.kind OPERATOR(pg_catalog.=) 'sequence' THEN p.affinity_window END
	FROM post_purchase.affinity_pairs(p.affinity_window, p.min_support, p.min_confidence) x;
	GET DIAGNOSTICS kept = ROW_COUNT;
	RETURN kept;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_product_affinity(interval, double precision, double precision) IS
	'recompute product_affinity (same-order and within-window pairs with support, confidence, lift) from the tracked order items';
REVOKE ALL ON FUNCTION post_purchase.refresh_product_affinity(interval, double precision, double precision) FROM PUBLIC;

-- The best complementary products for a customer: for every product they
-- bought (A), the pairs A -> B of product_affinity, scored lift x
-- confidence; per B the best of them (its reason: which purchase it
-- complements).  B is left out when the customer bought it within the
-- affinity_window, or bought it before and it is not due for replenishment
-- yet (customer_product_replenishment.next_due after now).  Highest score
-- first, ties by product id (byte order).  A customer with no tracked
-- purchase (or none with a kept pair) gets no rows; n above the candidates
-- gives them all.
CREATE FUNCTION post_purchase.recommend_products(customer_id text, n integer DEFAULT 3)
	RETURNS TABLE (product_id text, name text, score double precision, because_of text, reason text)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres'
	AS $$
#variable_conflict use_column
DECLARE
	recent interval;
BEGIN
	IF n IS NULL OR n < 1 THEN
		RAISE EXCEPTION 'n must be at least 1, not %', coalesce(n::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	recent := (post_purchase.affinity_parameters(NULL, NULL, NULL)).affinity_window;
	RETURN QUERY
	WITH bought AS (
		SELECT o.product_id, max(o.ordered_at) AS last_at
		FROM post_purchase.customer_product_orders o
		WHERE o.customer_id = recommend_products.customer_id
		GROUP BY o.product_id
	), best AS (
		SELECT DISTINCT ON (a.product_b) a.product_b, a.product_a, a.kind, a.lift * a.confidence AS score
		FROM bought b
		JOIN post_purchase.product_affinity a ON a.product_a = b.product_id
		ORDER BY a.product_b, a.lift * a.confidence DESC, a.kind, a.product_a COLLATE "C"
	)
	SELECT x.product_b, pb.name, x.score, x.product_a,
		   CASE x.kind WHEN 'same_order' THEN 'often bought together with '
					   ELSE 'often bought within ' || recent::text || ' after ' END
		   || coalesce(pa.name, x.product_a)
	FROM best x
	LEFT JOIN bought o ON o.product_id = x.product_b
	LEFT JOIN post_purchase.products pa ON pa.product_id = x.product_a
	LEFT JOIN post_purchase.products pb ON pb.product_id = x.product_b
	WHERE o.product_id IS NULL
	   OR (o.last_at <= now() - recent
		   AND NOT EXISTS (SELECT FROM post_purchase.customer_product_replenishment r
						   WHERE r.customer_id = recommend_products.customer_id
							 AND r.product_id = x.product_b AND r.next_due > now()))
	ORDER BY x.score DESC, x.product_b COLLATE "C"
	LIMIT n;
END
$$;
COMMENT ON FUNCTION post_purchase.recommend_products(text, integer) IS
	'the n best complementary products for a customer (lift x confidence from product_affinity), with the purchase each complements';
REVOKE ALL ON FUNCTION post_purchase.recommend_products(text, integer) FROM PUBLIC;

-- {{recommendations}} in payload templates (render_message, src/payload.c):
-- recommend_products() as a JSON array of {"product_id", "name", "reason",
-- "because_of"} in rank order; [] when there are none; "name" is null for
-- a product without a name (or not in products).
CREATE FUNCTION post_purchase.recommendations_json(customer_id text, n integer DEFAULT 3) RETURNS jsonb
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT coalesce(jsonb_agg(jsonb_build_object('product_id', r.product_id, 'name', r.name, 'reason', r.reason,
												 'because_of', r.because_of) ORDER BY r.rank), '[]')
	FROM post_purchase.recommend_products(customer_id, n) WITH ORDINALITY r(product_id, name, score, because_of,
																			 reason, rank)
$$;
COMMENT ON FUNCTION post_purchase.recommendations_json(text, integer) IS
	'recommend_products() as the JSON array payload templates get as {{recommendations}}';
REVOKE ALL ON FUNCTION post_purchase.recommendations_json(text, integer) FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('post_purchase.product_affinity', '');
UPDATE post_purchase.journey_steps
SET payload = payload || '{"recommendations": "{{recommendations}}"}'
WHERE journey = 'cross_sell' AND step = 'cross_sell'
  AND payload = '{"subject": "Picked for you", "customer_id": "{{customer_id}}", "rfm_segment": "{{customer.rfm_segment}}"}';
-- Survey answers back into the program (issue 20, src/answers.sql,
-- src/answers.c): each customer's latest NPS and CSAT answer in the state,
-- read by the rules through metrics_of() and customer_metrics; the
-- detractors segment and the detractor_follow_up journey; the message id
-- as the NPS survey's token, and the responses in journey_stats.

ALTER TABLE post_purchase.step_outcomes ADD COLUMN responded_at timestamptz;

CREATE OR REPLACE VIEW post_purchase.journey_stats AS
WITH enrolled AS (
	SELECT e.journey, e.variant, count(*) FILTER (WHERE NOT e.holdout) AS enrolled,
		   count(*) FILTER (WHERE e.holdout) AS holdout_enrolled
	FROM post_purchase.enrollments e GROUP BY e.journey, e.variant
), events AS (
	SELECT v.journey, v.step, v.variant,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'delivered') AS delivered,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'opened') AS opened,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'clicked') AS clicked,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'bounced') AS bounced,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'unsubscribed') AS unsubscribed
	FROM post_purchase.message_events v GROUP BY v.journey, v.step, v.variant
), steps AS (
	SELECT o.journey, o.step, o.variant,
		   count(*) FILTER (WHERE o.outcome = 'fired') AS fired,
		   count(*) FILTER (WHERE o.reason = 'holdout') AS held_out,
		   count(*) FILTER (WHERE o.reason = 'condition') AS suppressed_condition,
		   count(*) FILTER (WHERE o.reason = 'condition_error') AS suppressed_condition_error,
		   count(*) FILTER (WHERE o.reason = 'segment') AS suppressed_segment,
		   count(*) FILTER (WHERE o.reason = 'no_consent') AS suppressed_no_consent,
		   count(*) FILTER (WHERE o.reason = 'frequency_cap') AS suppressed_frequency_cap,
		   count(*) FILTER (WHERE o.outcome = 'fired' AND o.converted_at IS NOT NULL) AS converted,
		   coalesce(sum(o.attributed_revenue) FILTER (WHERE o.outcome = 'fired'), 0) AS attributed_revenue,
		   count(*) FILTER (WHERE o.reason = 'holdout' AND o.converted_at IS NOT NULL) AS holdout_converted,
		   count(*) FILTER (WHERE o.outcome = 'fired' AND o.responded_at IS NOT NULL) AS responses
	FROM post_purchase.step_outcomes o GROUP BY o.journey, o.step, o.variant
)
SELECT s.journey, s.step, s.variant, coalesce(n.enrolled, 0) AS enrolled,
	   coalesce(n.holdout_enrolled, 0) AS holdout_enrolled, s.fired, s.held_out,
	   s.suppressed_condition, s.suppressed_condition_error, s.suppressed_segment, s.suppressed_no_consent,
	   s.suppressed_frequency_cap,
	   coalesce(v.delivered, 0) AS delivered, coalesce(v.opened, 0) AS opened, coalesce(v.clicked, 0) AS clicked,
	   coalesce(v.bounced, 0) AS bounced, coalesce(v.unsubscribed, 0) AS unsubscribed,
	   s.converted, s.attributed_revenue,
	   round(s.converted::numeric / nullif(s.fired, 0), 4) AS conversion_rate,
	   s.holdout_converted,
	   round(s.holdout_converted::numeric / nullif(s.held_out, 0), 4) AS holdout_conversion_rate,
	   round(s.converted::numeric / nullif(s.fired, 0) - s.holdout_converted::numeric / nullif(s.held_out, 0), 4)
		   AS uplift,
	   -- survey answers that carried the message's token ({{message_id}})
	   s.responses,
	   round(s.responses::numeric / nullif(s.fired, 0), 4) AS response_rate
FROM steps s
LEFT JOIN enrolled n ON n.journey = s.journey AND n.variant IS NOT DISTINCT FROM s.variant
LEFT JOIN events v ON v.journey = s.journey AND v.step = s.step AND v.variant IS NOT DISTINCT FROM s.variant;
COMMENT ON VIEW post_purchase.journey_stats IS
	'per journey, step and variant: enrolled, fired, suppressed by reason, delivered, opened, clicked, converted, attributed revenue, holdout conversion and uplift, survey responses and response rate';

INSERT INTO post_purchase.segments (name, rule, builtin) VALUES
	('detractors', 'last_nps <= 6', true);
-- a detractor's answer (last_nps <= 6) enters the detractors segment
-- (src/segments.sql): ask what went wrong, once per 90 days
INSERT INTO post_purchase.journeys (name, trigger, segment, exit_on_purchase, reentry, reentry_interval,
									holdout_percent) VALUES
	('detractor_follow_up', 'segment_entered', 'detractors', false, 'after_interval', '90 days', 0);
INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, payload) VALUES
	('detractor_follow_up', 'detractor_follow_up', 1, '0', 'preferred', 'detractor_follow_up',
	 '{"subject": "We are sorry: what went wrong?", "customer_id": "{{customer_id}}", "score": "{{customer.last_nps}}", "answered_at": "{{customer.last_nps_at}}"}');
-- the NPS survey's payload as 1.1 seeds it, unless the shop changed it
UPDATE post_purchase.journey_steps
SET payload = '{"subject": "How likely are you to recommend us?", "scale": "0-10", "customer_id": "{{customer_id}}", "order": "{{order}}", "token": "{{message_id}}"}'
WHERE journey = 'nps_survey' AND step = 'nps_survey'
  AND payload = '{"subject": "How likely are you to recommend us?", "scale": "0-10", "customer_id": "{{customer_id}}"}';

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

-- The keyword before a tracked table in a FROM clause: the rows the
-- trigger tracks are a partitioned table's (in its partitions), or else
-- the table's own, ONLY (an inheritance child's are not tracked: the
-- trigger is the parent's).  The backfill, the survey answers' refresh and
-- the backfill's error path read through it.
CREATE FUNCTION post_purchase.tracked_rows_keyword(rel regclass)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY' END
	FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel
$$;
REVOKE ALL ON FUNCTION post_purchase.tracked_rows_keyword(regclass) FROM PUBLIC;

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
-- Citus (README, "Citus"): a table Citus manages (distributed, reference,
-- or a Citus local table) cannot be tracked.  Citus refuses triggers on
-- distributed tables, and with citus.enable_unsafe_triggers it creates them
-- on the shards, where the trigger runs on the node holding each shard and
-- writes that node's customer_state: the coordinator's state, filled by the
-- backfill, would never follow a new order.  Detected without depending on
-- Citus: its catalog pg_dist_partition exists in a database only once the
-- citus extension is created there (pg_catalog takes no table without
-- allow_system_table_mods), and it lists every table Citus manages,
-- partitions of a distributed partitioned table included.
CREATE FUNCTION post_purchase.check_not_distributed(tab regclass, caller text)
	RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	method "char";
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN;
	END IF;
	-- dynamic: the catalog is not there to plan against without Citus
	EXECUTE 'SELECT p.partmethod FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1'
		INTO method USING tab;
	IF method IS NOT NULL THEN
		RAISE EXCEPTION '%() cannot track %, a table managed by Citus', caller, tab
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'Citus does not support triggers on distributed tables; with citus.enable_unsafe_triggers the trigger would run on the shards of the worker nodes, and the customer state on this node would not follow new orders.',
				  HINT = 'Track an undistributed orders table; the metric aggregates work over distributed tables (README, section "Citus").';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_not_distributed(regclass, text) FROM PUBLIC;

-- track_orders() (above) and track_order_items() refuse a table Citus manages.

-- ---------------------------------------------------------------------
-- Progress of long calls (issue 21): src/progress.sql, and the long calls
-- that report it
-- ---------------------------------------------------------------------

-- Progress of long calls (src/progress.c): the calls that take long on a
-- large shop report what they do, as a NOTICE at most once per
-- post_purchase.progress_notice_interval (1 s) and in the view
-- post_purchase.progress, which another session can watch while the call
-- runs inside its transaction.  The reporting functions are what the
-- extension's own PL/pgSQL calls; a phase or an advance outside a started
-- command does nothing.  A command ends with progress_finish() or with the
-- (sub)transaction it was started in, by commit or by error.

-- Start a command (named as the function that runs it), with a count of
-- total units when unit is given (a NULL total: not known).
CREATE FUNCTION post_purchase.progress_start(command text, total bigint DEFAULT NULL, unit text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_start'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_start(text, bigint, text) FROM PUBLIC;

-- What the command does now; the count goes on.
CREATE FUNCTION post_purchase.progress_phase(phase text) RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_phase'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_phase(text) FROM PUBLIC;

-- A new count from 0 of total units (NULL: not known).
CREATE FUNCTION post_purchase.progress_count(total bigint, unit text) RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_count'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_count(bigint, text) FROM PUBLIC;

-- n more done; true, so it can count the rows of a big statement from its
-- WHERE or HAVING clause.  With a phase, the first call switches to it and
-- to a new count of unit.  VOLATILE: evaluated for every row, never
-- folded; PARALLEL UNSAFE (the default): a parallel worker's count would
-- not reach this backend's slot, and the statements it counts (INSERT ...
-- SELECT) run without parallel workers in PostgreSQL 15 anyway.
CREATE FUNCTION post_purchase.progress_advance(n bigint DEFAULT 1, phase text DEFAULT NULL, unit text DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'post_purchase_progress_advance'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_advance(bigint, text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.progress_finish() RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_finish'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_finish() FROM PUBLIC;

-- The planner's row estimate of a table (pg_class.reltuples; a partitioned
-- table's is the sum of its partitions'), NULL when the table was never
-- vacuumed or analyzed: a progress total that costs no scan.
CREATE FUNCTION post_purchase.progress_estimated_rows(rel regclass) RETURNS bigint
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN pg_catalog.bool_and(c.reltuples OPERATOR(pg_catalog.>=) 0)
				THEN pg_catalog.sum(c.reltuples)::pg_catalog.int8 END
	FROM pg_catalog.pg_class c
	-- pg_partition_tree() has no row for a table outside any partitioning
	WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(
		SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t WHERE t.isleaf
		UNION ALL
		SELECT rel WHERE (SELECT x.relkind FROM pg_catalog.pg_class x WHERE x.oid OPERATOR(pg_catalog.=) rel)
						 OPERATOR(pg_catalog.<>) 'p'))
$$;
REVOKE ALL ON FUNCTION post_purchase.progress_estimated_rows(regclass) FROM PUBLIC;

-- One row per running command, of every database; no rows unless
-- post_purchase is in shared_preload_libraries.  Readable as worker_status
-- is: by superusers and pg_read_all_stats (pg_monitor).
CREATE FUNCTION post_purchase.progress(
	OUT pid integer,
	OUT database name,
	OUT role name,
	OUT command text,
	OUT phase text,
	OUT done bigint,
	OUT total bigint,
	OUT unit text,
	OUT percent double precision,
	OUT rate double precision,
	OUT started_at timestamptz,
	OUT counting_since timestamptz,
	OUT updated_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'post_purchase_progress'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION post_purchase.progress() IS
	'the long calls running now, in every database: command, phase, done of total units, percent, units per second';
REVOKE ALL ON FUNCTION post_purchase.progress() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION post_purchase.progress() TO pg_read_all_stats;

CREATE VIEW post_purchase.progress AS
	SELECT p.pid, p.database, p.role, p.command, p.phase, p.done, p.total, p.unit,
		   pg_catalog.round(p.percent::pg_catalog.numeric, 1) AS percent,
		   pg_catalog.round(p.rate::pg_catalog.numeric, 1) AS rate,
		   p.started_at, p.counting_since, p.updated_at
	FROM post_purchase.progress() p
	ORDER BY p.started_at, p.pid;
COMMENT ON VIEW post_purchase.progress IS
	'the long calls running now, in every database: command, phase, done of total units, percent, units per second';
REVOKE ALL ON post_purchase.progress FROM PUBLIC;
GRANT SELECT ON post_purchase.progress TO pg_read_all_stats;

-- Long calls report their progress (issue 21, src/progress.c): the
-- backfill counts orders read and states written, refresh_models() the
-- customers fitted and predicted, refresh_segments() and enroll_due() the
-- segments and journeys done, the others their phases.
DROP FUNCTION post_purchase.recomputed_state_query(post_purchase.tracked_orders);

-- With report, the backfill's progress (src/progress.c): each order read,
-- then each customer's state written, counts one (a C call per row: a few
-- percent of the backfill); verify_state() does not count, so its plan may
-- stay parallel.  The purchase days and revenues by purchase_totals(), as
-- the trigger's recompute counts them (issue 19), grouped by customer only.
CREATE FUNCTION post_purchase.recomputed_state_query(t post_purchase.tracked_orders, report boolean DEFAULT false)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT pg_catalog.format(
		'SELECT c.customer::pg_catalog.text COLLATE pg_catalog."C", c.orders, (c.totals).revenue, c.first_at,
				c.last_at, (c.totals).purchase_days, (c.totals).first_day, (c.totals).last_day,
				(c.totals).first_day_revenue, pg_catalog.now(), NULL::pg_catalog.timestamptz, c.orders, c.orders
		 FROM (SELECT %1$s AS customer, pg_catalog.count(*) AS orders,
					  pg_catalog.min(%2$I) AS first_at, pg_catalog.max(%2$I) AS last_at,
					  post_purchase.purchase_totals(%2$I, coalesce(%3$I::pg_catalog.numeric, 0), %4$L) AS totals
			   FROM %5$s %6$s
			   WHERE %9$I IS NOT NULL AND %2$I IS NOT NULL%7$s
			   GROUP BY 1%8$s) c
		 ORDER BY 1',
		-- integers and uuids are equal exactly when their texts are, the
		-- equality the trigger keys on: grouped as they are, the text is
		-- made once per customer instead of once per order; anything else
		-- (a string) groups by its text's bytes, since a nondeterministic
		-- collation would merge customers
		CASE WHEN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
				   WHERE a.attrelid OPERATOR(pg_catalog.=) t.orders
					 AND a.attname OPERATOR(pg_catalog.=) t.customer_column)
				  OPERATOR(pg_catalog.=) ANY ('{bigint,integer,uuid}'::pg_catalog.regtype[])
			 THEN pg_catalog.quote_ident(t.customer_column)
			 ELSE pg_catalog.format('%I::pg_catalog.text COLLATE pg_catalog."C"', t.customer_column) END,
		t.ordered_at_column, t.amount_column, t.time_zone,
		post_purchase.tracked_rows_keyword(t.orders),
		t.orders,
		CASE WHEN report THEN ' AND post_purchase.progress_advance()' ELSE '' END,
		CASE WHEN report THEN ' HAVING post_purchase.progress_advance(1, ''writing customer state'', ''customers'')'
			 ELSE '' END,
		t.customer_column)
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_state_query(post_purchase.tracked_orders, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION post_purchase.track_orders(orders regclass,
										   customer_column name DEFAULT 'customer_id',
										   ordered_at_column name DEFAULT 'ordered_at',
										   amount_column name DEFAULT 'amount',
										   backfill boolean DEFAULT true)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
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
	PERFORM post_purchase.check_not_distributed(orders, 'track_orders');

	-- every column must exist with a type the trigger understands
	column_type := post_purchase.tracked_column_type(orders, customer_column, 'customer',
		ARRAY['bigint', 'integer', 'uuid', 'text', 'character varying']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, ordered_at_column, 'ordered_at',
		ARRAY['timestamp with time zone']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, amount_column, 'amount',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);

	SELECT s.value INTO zone FROM post_purchase.settings s WHERE s.name = 'time_zone';
	PERFORM now() AT TIME ZONE zone;	-- a valid zone name, or an error here

	-- what takes long (the lock, the index, the backfill) shows in the
	-- progress view and NOTICEs (src/progress.c)
	PERFORM post_purchase.progress_start('track_orders');
	-- no order may change between the backfill and the trigger taking over
	PERFORM post_purchase.progress_phase('waiting for a lock on the orders table');
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', orders);
	PERFORM post_purchase.progress_phase('attaching the triggers');
	INSERT INTO post_purchase.tracked_orders
		VALUES (orders, customer_column, ordered_at_column, amount_column, zone, backfill);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L)',
				   orders, customer_column, ordered_at_column, amount_column, zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_orders_truncate()', orders);

	PERFORM post_purchase.progress_phase('ensuring the customer index');
	PERFORM post_purchase.ensure_customer_index(orders, customer_column, 'order');

	IF backfill THEN
		-- the orders read count against the planner's estimate (no scan
		-- to count them first); orders without a customer or time are
		-- not counted, so done may end below the estimate, or above it
		PERFORM post_purchase.progress_count(post_purchase.progress_estimated_rows(orders), 'orders');
		PERFORM post_purchase.progress_phase('reading orders');
		-- set-based and executed directly: a set-returning function in
		-- between would first copy every row into a tuplestore
		-- (the backfilled orders count as decided: they enroll no one)
		BEGIN
			EXECUTE 'INSERT INTO post_purchase.customer_state (customer_id, orders, revenue, first_order_at, '
				|| 'last_order_at, purchase_days, first_day, last_day, first_day_revenue, updated_at, changed_at, '
				|| 'order_seq, decided_seq) '
				|| post_purchase.recomputed_state_query((SELECT t FROM post_purchase.tracked_orders t), true);
		EXCEPTION WHEN invalid_parameter_value THEN
			-- purchase_totals() refuses a NaN or infinite amount without
			-- knowing whose it is: name a customer who has one (this scan
			-- runs only on the way to the error)
			-- the rows the backfill read
			EXECUTE format('SELECT %1$I::text FROM %5$s %2$s WHERE %1$I IS NOT NULL AND %3$I IS NOT NULL '
						   'AND %4$I::numeric IN (''NaN'', ''Infinity'', ''-Infinity'') LIMIT 1',
						   customer_column, orders, ordered_at_column, amount_column,
						   post_purchase.tracked_rows_keyword(orders))
				INTO bad_customer;
			IF bad_customer IS NULL THEN
				RAISE;
			END IF;
			RAISE EXCEPTION 'orders of customer % have a NaN or infinite amount', bad_customer
				USING ERRCODE = 'invalid_parameter_value';
		END;
		-- the state is new: the tracked survey answers go back into it
		IF EXISTS (SELECT FROM post_purchase.tracked_survey_answers) THEN
			PERFORM post_purchase.refresh_survey_answers();
		END IF;
	END IF;
	PERFORM post_purchase.progress_finish();
END
$$;
CREATE OR REPLACE FUNCTION post_purchase.verify_state()
	RETURNS TABLE (customer_id text, day date, field text, expected text, actual text)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	-- one statement: its progress is its phase (src/progress.c)
	PERFORM post_purchase.progress_start('verify_state');
	PERFORM post_purchase.progress_phase('recomputing the state from the orders and comparing');
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
	PERFORM post_purchase.progress_finish();
END
$$;
CREATE OR REPLACE FUNCTION post_purchase.refresh_models() RETURNS post_purchase.models
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fitted post_purchase.models;
	-- read once, not for every customer
	monthly_discount float8 := post_purchase.setting('clv_monthly_discount')::float8;
BEGIN
	-- progress (src/progress.c): the customers read into the fits, counted
	-- against the state's row estimate (the fits' optimization, after the
	-- last one, shows as that phase at its end), then the predictions
	-- stored, of the exact count the fit read
	PERFORM post_purchase.progress_start('refresh_models');
	PERFORM post_purchase.progress_count(post_purchase.progress_estimated_rows('post_purchase.customer_state'),
										 'customers');
	PERFORM post_purchase.progress_phase('reading customers and fitting BG/NBD and Gamma-Gamma');
	INSERT INTO post_purchase.models (customers, bgnbd, gamma_gamma)
	SELECT count(*),
		   post_purchase.bgnbd_fit(s.frequency, s.recency, s.t),
		   post_purchase.gamma_gamma_fit(s.frequency, s.monetary_value::float8)
			   FILTER (WHERE s.monetary_value > 0)
	FROM post_purchase.customer_summaries s
	WHERE post_purchase.progress_advance()
	HAVING count(*) > 0
	RETURNING * INTO fitted;
	IF NOT FOUND THEN
		PERFORM post_purchase.progress_finish();
		RETURN NULL;			-- no customer yet: nothing to fit (the workers call this on a schedule)
	END IF;
	IF NOT (fitted.bgnbd).converged THEN
		RAISE WARNING 'the BG/NBD fit did not converge; customer_metrics keeps using the previous model';
		PERFORM post_purchase.progress_finish();
		RETURN fitted;
	END IF;
	IF fitted.gamma_gamma IS NOT NULL AND NOT (fitted.gamma_gamma).converged THEN
		RAISE WARNING 'the Gamma-Gamma fit did not converge; clv_12m stays empty under this model';
		UPDATE post_purchase.models m SET gamma_gamma = NULL WHERE m.model_id = fitted.model_id;
		fitted.gamma_gamma := NULL;
	END IF;

	-- The customers' scores under the new model are stored by the workers
	-- (src/scores.c): the new model row makes every stored score stop
	-- counting, and writing them all here would hold every customer's
	-- state row, and so every order, until this transaction ends.
	-- without a Gamma-Gamma part there is no clv_12m, and no VIP cut
	IF fitted.gamma_gamma IS NOT NULL THEN
		PERFORM post_purchase.progress_count(fitted.customers, 'customers');
		PERFORM post_purchase.progress_phase('computing the VIP cut');
		UPDATE post_purchase.models m
		SET vip_clv_cut = (SELECT percentile_cont(1 - post_purchase.setting('vip_share')::float8)
								  WITHIN GROUP (ORDER BY c.clv_12m)
						   FROM (SELECT post_purchase.predicted_clv_12m(fitted, s.frequency, s.recency, s.t,
																		s.monetary_value, monthly_discount) AS clv_12m
								 FROM post_purchase.customer_summaries s
								 WHERE post_purchase.progress_advance()) c
						   WHERE c.clv_12m IS NOT NULL)
		WHERE m.model_id = fitted.model_id
		RETURNING * INTO fitted;
	END IF;
	PERFORM post_purchase.progress_finish();
	RETURN fitted;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_models() IS
	'fit BG/NBD and Gamma-Gamma (in days) on the current customer state and store the model; the workers store the customers'' scores under it';
CREATE OR REPLACE FUNCTION post_purchase.refresh_rfm_cuts() RETURNS post_purchase.rfm_cuts
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	cuts post_purchase.rfm_cuts;
BEGIN
	-- one statement: its progress is its phase (src/progress.c)
	PERFORM post_purchase.progress_start('refresh_rfm_cuts');
	PERFORM post_purchase.progress_phase('computing RFM cut points');
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
	PERFORM post_purchase.progress_finish();
	RETURN cuts;
END
$$;
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
	PERFORM post_purchase.progress_start('create_segment');
	PERFORM post_purchase.progress_phase('computing customer metrics');
	PERFORM post_purchase.prepare_segment_metrics(ARRAY[seg.owner]);
	PERFORM post_purchase.progress_phase('evaluating the rule');
	PERFORM post_purchase.refresh_segment(seg);
	DROP TABLE pg_temp.customer_metrics;
	PERFORM post_purchase.progress_finish();
END
$$;
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
	PERFORM post_purchase.progress_start('set_segment_rule');
	PERFORM post_purchase.progress_phase('computing customer metrics');
	PERFORM post_purchase.prepare_segment_metrics(ARRAY[seg.owner]);
	PERFORM post_purchase.progress_phase('evaluating the rule');
	PERFORM post_purchase.refresh_segment(seg);
	DROP TABLE pg_temp.customer_metrics;
	PERFORM post_purchase.progress_finish();
END
$$;
CREATE OR REPLACE FUNCTION post_purchase.refresh_segments()
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
CREATE OR REPLACE FUNCTION post_purchase.track_order_items(items regclass,
												order_column name DEFAULT 'order_id',
												product_column name DEFAULT 'product_id',
												quantity_column name DEFAULT 'quantity',
												orders_key_column name DEFAULT 'order_id')
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	o post_purchase.tracked_orders;
	column_type regtype;
BEGIN
	-- the backfill must see every order committed before the lock: a
	-- transaction snapshot taken before it would miss some
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_order_items() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT * INTO o FROM post_purchase.tracked_orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'track the orders table first' USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Call post_purchase.track_orders() before post_purchase.track_order_items().';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.tracked_order_items) THEN
		RAISE EXCEPTION 'post_purchase already tracks %', (SELECT t.items FROM post_purchase.tracked_order_items t)
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_order_items() first.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = items) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', items USING ERRCODE = 'wrong_object_type';
	END IF;
	PERFORM post_purchase.check_not_distributed(items, 'track_order_items');
	column_type := post_purchase.tracked_column_type(items, order_column, 'order', NULL);
	column_type := post_purchase.tracked_column_type(items, product_column, 'product', NULL);
	column_type := post_purchase.tracked_column_type(items, quantity_column, 'quantity',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);
	column_type := post_purchase.tracked_column_type(o.orders, orders_key_column, 'orders_key', NULL);

	-- progress (src/progress.c): the phases, then the rows written (the
	-- reading, before the first row, shows as its phase)
	PERFORM post_purchase.progress_start('track_order_items');
	PERFORM post_purchase.progress_phase('waiting for locks on the orders and items tables');
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', o.orders);
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', items);
	PERFORM post_purchase.progress_phase('attaching the triggers');
	INSERT INTO post_purchase.tracked_order_items
		VALUES (items, order_column, product_column, quantity_column, orders_key_column);
	EXECUTE format('CREATE TRIGGER post_purchase_track_items AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_items_trigger(%L, %L, %L, %L, %L, %L, %L, %L)',
				   items, order_column, product_column, quantity_column, o.orders::oid,
				   orders_key_column, o.customer_column, o.ordered_at_column, o.time_zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_items_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_items_truncate()', items);
	PERFORM post_purchase.attach_orders_trigger(orders_key_column);
	PERFORM post_purchase.progress_phase('reading order items');
	INSERT INTO post_purchase.customer_product_orders SELECT * FROM post_purchase.recomputed_product_orders()
	WHERE post_purchase.progress_advance(1, 'writing customer product orders', 'rows');
	PERFORM post_purchase.progress_finish();
END
$$;
CREATE OR REPLACE FUNCTION post_purchase.refresh_product_cycles() RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	products bigint;
BEGIN
	-- progress (src/progress.c): the rows read, against their estimate;
	-- the sorts and the medians after the last one show as that phase
	PERFORM post_purchase.progress_start('refresh_product_cycles');
	PERFORM post_purchase.progress_count(
		post_purchase.progress_estimated_rows('post_purchase.customer_product_orders'), 'rows');
	PERFORM post_purchase.progress_phase('reading customer product orders');
	DELETE FROM post_purchase.product_cycles;
	INSERT INTO post_purchase.product_cycles (product_id, median_gap_days, repurchases)
	SELECT g.product_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gap), count(*)
	FROM (SELECT d.product_id, d.day - lag(d.day) OVER (PARTITION BY d.customer_id, d.product_id ORDER BY d.day) AS gap
		  FROM (SELECT DISTINCT p.customer_id, p.product_id, p.day FROM post_purchase.customer_product_orders p
				WHERE post_purchase.progress_advance()) d) g
	WHERE g.gap IS NOT NULL
	GROUP BY g.product_id;
	GET DIAGNOSTICS products = ROW_COUNT;
	PERFORM post_purchase.progress_finish();
	RETURN products;
END
$$;
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
	-- progress (src/progress.c): the journeys swept of all, the phase
	-- naming the one being swept (one statement each)
	PERFORM post_purchase.progress_start('enroll_due');
	PERFORM post_purchase.progress_count(
		(SELECT count(*) FROM post_purchase.journeys x
		 WHERE x.enabled AND x.trigger IN ('lapsed', 'anniversary', 'replenishment_due')), 'journeys');
	FOR j IN SELECT * FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger IN ('lapsed', 'anniversary', 'replenishment_due') ORDER BY x.name LOOP
		PERFORM post_purchase.progress_phase('journey ' || j.name);
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
		PERFORM post_purchase.progress_advance(1);
	END LOOP;
	PERFORM post_purchase.progress_finish();
	RETURN entered;
END
$$;
