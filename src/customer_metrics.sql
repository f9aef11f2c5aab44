-- The customer_metrics view, the models it scores with, and the RFM cut
-- points its scores use.  Reading one customer is an index lookup on
-- customer_state; predictions are stored by refresh_models() and computed
-- live only for customers whose state changed since.

INSERT INTO post_purchase.settings VALUES
	('at_risk_after_days', '90', 'lifecycle: a customer with no order for this many days is at_risk'),
	('lapsed_after_days', '180', 'lifecycle: a customer with no order for this many days is lapsed'),
	('vip_share', '0.10', 'lifecycle and the vip segment: the top share of customers by predicted clv_12m'),
	('clv_monthly_discount', '0.01', 'monthly discount rate of clv_12m'),
	('today', '', 'if set (YYYY-MM-DD), the date metrics are computed as of, instead of today: for replays and tests');

-- A setting's value, for the extension's functions.  It runs once per call,
-- so queries over many rows read settings through shop_context instead.
-- PL/pgSQL keeps its plan for the session: an SQL function that reads a
-- table is planned again in every transaction, and a worker's transaction
-- reads a dozen settings.
CREATE FUNCTION post_purchase.setting(setting_name text) RETURNS text
	LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN (SELECT s.value FROM post_purchase.settings s WHERE s.name OPERATOR(pg_catalog.=) setting_name);
END
$$;

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
CREATE FUNCTION post_purchase.shop_today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT c.today FROM post_purchase.shop_context c$$;

CREATE TABLE post_purchase.models (
	model_id bigserial PRIMARY KEY,
	fitted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	customers bigint NOT NULL,
	bgnbd post_purchase.bgnbd_model NOT NULL,
	gamma_gamma post_purchase.gamma_gamma_model,
	vip_clv_cut double precision
);
COMMENT ON TABLE post_purchase.models IS
	'BG/NBD and Gamma-Gamma models fitted by refresh_models(), in days; customer_metrics uses the newest converged one';


CREATE TABLE post_purchase.rfm_cuts (
	computed_at timestamptz PRIMARY KEY DEFAULT pg_catalog.now(),
	recency_cuts double precision[] NOT NULL,
	frequency_cuts double precision[] NOT NULL,
	monetary_cuts double precision[] NOT NULL
);
COMMENT ON TABLE post_purchase.rfm_cuts IS
	'quintile cut points of days since the last order, purchase days and revenue, computed by refresh_segments()';

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

CREATE VIEW post_purchase.customer_summaries AS
SELECT b.customer_id, b.frequency, b.recency, b.t, b.monetary_value, b.days_since_last_order,
	   b.orders, b.revenue, b.first_order_at, b.last_order_at, b.purchase_days, b.first_day, b.last_day,
	   b.updated_at
FROM post_purchase.customer_summaries_in_context b;

-- clv_12m under a model, for every customer once the model has a Gamma-Gamma
-- part (NULL without one).  Repeat purchases that total 0 (free
-- replacements, fully refunded orders) are a mean spend of 0, which the
-- Gamma-Gamma expectation shrinks toward the population mean; refunds that
-- exceed the repeat purchases count as 0 too, the least the model's
-- non-negative spend allows (clv() refuses a negative mean).  Inlinable.
CREATE FUNCTION post_purchase.predicted_clv_12m(m post_purchase.models, frequency double precision,
												recency double precision, t double precision,
												monetary_value numeric, monthly_discount double precision)
	RETURNS double precision
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT CASE WHEN m.gamma_gamma IS NOT NULL
			THEN post_purchase.clv(m.bgnbd, m.gamma_gamma, frequency, recency, t,
								   GREATEST(monetary_value, 0)::pg_catalog.float8, 12, monthly_discount,
								   '1 day') END
$$;

CREATE VIEW post_purchase.customer_metrics AS
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
COMMENT ON VIEW post_purchase.customer_metrics IS
	'one row per tracked customer: totals, BTYD summary in days, predictions of the newest model, RFM scores and segment, lifecycle stage';

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

-- Fit both models on the current state and store the model.
CREATE FUNCTION post_purchase.refresh_models() RETURNS post_purchase.models
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
REVOKE ALL ON FUNCTION post_purchase.refresh_models() FROM PUBLIC;

-- Recompute the RFM quintile cut points (time moves customers between them).
CREATE FUNCTION post_purchase.refresh_rfm_cuts() RETURNS post_purchase.rfm_cuts
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
REVOKE ALL ON FUNCTION post_purchase.refresh_rfm_cuts() FROM PUBLIC;
