-- customer_metrics: totals, BTYD summary, predictions, RFM scores and
\set SHOW_CONTEXT never
-- lifecycle of every tracked customer, as of a fixed "today".
SET TimeZone = 'UTC';
UPDATE post_purchase.settings SET value = '2025-01-01' WHERE name = 'today';
CREATE SCHEMA shop;
CREATE TABLE shop.orders (order_id serial PRIMARY KEY, customer_id integer, ordered_at timestamptz, amount numeric(10,2));
-- 600 customers drawn from a BG/NBD model (in days) in four cohorts of 90
-- to 360 days' age, each customer's repeat orders spread evenly over the
-- recency the simulator drew; amounts from 10 to 59.99
INSERT INTO shop.orders (customer_id, ordered_at, amount)
SELECT cohort * 1000 + s.customer,
	   timestamptz '2025-01-01 10:00' - s.t * interval '1 day'
		   + round(k * s.recency / greatest(s.frequency, 1)) * interval '1 day',
	   10 + ((s.customer * 37 + k * 11) % 5000) / 100.0
FROM generate_series(1, 4) cohort,
	 LATERAL post_purchase.bgnbd_simulate(ROW(0.8, 40, 0.8, 3, NULL, NULL, true), 150, cohort * 90, cohort) s,
	 LATERAL generate_series(0, s.frequency::int) k;
SELECT post_purchase.track_orders('shop.orders');

-- metrics_of(), what the segment rules read and the stored scores are, agrees
-- with the view on every customer, column for column (NULLs equal),
-- whatever the metrics are computed with and whichever scores are stored;
-- here and after each change below
CREATE FUNCTION pg_temp.metrics_of_differs() RETURNS bigint LANGUAGE sql AS $$
WITH f AS (
	SELECT m.* FROM post_purchase.customer_state s
	CROSS JOIN (SELECT c.*, post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today
				FROM post_purchase.metrics_context c) ctx
	CROSS JOIN LATERAL post_purchase.metrics_of(s, ctx.today, ctx.lapsed_after_days, ctx.at_risk_after_days,
												ctx.clv_monthly_discount, ctx.model, ctx.cuts) m),
v AS (SELECT * FROM post_purchase.customer_metrics)
SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE v) a) + (SELECT count(*) FROM (TABLE v EXCEPT ALL TABLE f) b)
$$;
SELECT pg_temp.metrics_of_differs() AS differs_without_model;

-- before any model or RFM cut points: predictions and scores are NULL, not errors
SELECT customer_id, orders, first_order_at, last_order_at, revenue, average_order_value, frequency,
	   recency_days, t_days, monetary_value, days_since_last_order, p_alive, clv_12m, r_score,
	   rfm_segment, lifecycle_stage, next_replenishment_due
FROM post_purchase.customer_metrics WHERE customer_id IN ('1001', '4007', '4010') ORDER BY customer_id;

-- a hand-made customer: orders on Dec 1, Dec 11 (two) and Dec 31 2024:
-- frequency 2, recency 30, t 31, monetary (15 + 40) / 2, next due 15 days on
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(1, '2024-12-01 09:00', 20), (1, '2024-12-11 09:00', 5), (1, '2024-12-11 18:00', 10), (1, '2024-12-31 12:00', 40);
SELECT orders, revenue, frequency, recency_days, t_days, monetary_value, days_since_last_order,
	   next_replenishment_due
FROM post_purchase.customer_metrics WHERE customer_id = '1';

-- the same numbers as rfm_summary over the raw orders, for every customer
SELECT count(*) AS customers,
	   count(*) FILTER (WHERE m.frequency <> (r.s).frequency OR m.recency_days <> (r.s).recency
						OR m.t_days <> (r.s).t OR m.monetary_value <> (r.s).monetary_value) AS differ
FROM post_purchase.customer_metrics m
JOIN (SELECT customer_id::text, post_purchase.rfm_summary(ordered_at, amount, '2025-01-01') AS s
	  FROM shop.orders GROUP BY customer_id) r ON r.customer_id = m.customer_id;

-- RFM cut points and scores
SELECT recency_cuts, frequency_cuts, monetary_cuts FROM post_purchase.refresh_rfm_cuts();
SELECT r_score, count(*) FROM post_purchase.customer_metrics GROUP BY 1 ORDER BY 1;
SELECT rfm_segment, count(*) FROM post_purchase.customer_metrics GROUP BY 1 ORDER BY 1;
SELECT pg_temp.metrics_of_differs() AS differs_with_cuts;

-- models: fitted in days on the current state, history kept
SELECT model_id, customers, (bgnbd).converged AS bgnbd_converged, (gamma_gamma).converged AS gg_converged,
	   vip_clv_cut > 0 AS has_vip_cut
FROM post_purchase.refresh_models();
-- no customer's scores are stored yet: the view computes them
SELECT count(*) FILTER (WHERE scored) AS scored FROM post_purchase.customer_summaries_in_context;
SELECT pg_temp.metrics_of_differs() AS differs_with_model;

-- Stored scores (src/scores.c): batches of a transaction each, from where
-- the last call stopped; fewer than the batch when none is left
SELECT post_purchase.store_scores(250) AS first, post_purchase.store_scores(250) AS second,
	   post_purchase.store_scores(250) AS third, post_purchase.store_scores(250) AS none_left;
SELECT count(*) AS customers, count(*) FILTER (WHERE scored) AS scored
FROM post_purchase.customer_summaries_in_context;
-- what the view reads from them is what it computed before, on every column
SELECT pg_temp.metrics_of_differs() AS differs_when_stored;
-- a score stored for another day or under another context does not count
UPDATE post_purchase.customer_state SET scored_on = scored_on - 1 WHERE customer_id = '1001';
UPDATE post_purchase.customer_state SET scored_context = scored_context - 1, p_alive = -1 WHERE customer_id = '1002';
SELECT customer_id, scored FROM post_purchase.customer_summaries_in_context
WHERE customer_id IN ('1001', '1002', '1003') ORDER BY 1;
SELECT count(*) AS wrong_p_alive FROM post_purchase.customer_metrics WHERE p_alive < 0;
SELECT pg_temp.metrics_of_differs() AS differs_with_stale_scores;
CALL post_purchase.store_all_scores();
SELECT count(*) FILTER (WHERE NOT coalesce(scored, false)) AS unscored
FROM post_purchase.customer_summaries_in_context;
-- bad batch sizes
SELECT post_purchase.store_scores(0);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.store_scores(-5);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.store_scores(NULL) IS NULL AS null_batch;

-- stored predictions equal what the model computes live
SELECT count(*) AS differ
FROM post_purchase.customer_metrics m
JOIN post_purchase.customer_summaries s USING (customer_id)
CROSS JOIN (SELECT * FROM post_purchase.models ORDER BY model_id DESC LIMIT 1) model
WHERE m.p_alive <> post_purchase.bgnbd_p_alive(model.bgnbd, s.frequency, s.recency, s.t)
   OR m.expected_purchases_90d <> post_purchase.bgnbd_expected_purchases(model.bgnbd, s.frequency, s.recency, s.t, 90);

-- a new order: the customer's stored scores stop counting in the order's own
-- write, and the view computes them until they are stored again
SELECT orders, frequency, round(p_alive::numeric, 6) AS p_alive_before, lifecycle_stage
FROM post_purchase.customer_metrics WHERE customer_id = '4010';
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (4010, '2024-12-30 10:00', 25);
SELECT s.scored_on IS NULL AS stopped_counting, s.p_alive IS NOT NULL AS old_value_kept
FROM post_purchase.customer_state s WHERE s.customer_id = '4010';
SELECT orders, frequency, round(p_alive::numeric, 6) AS p_alive_after, lifecycle_stage
FROM post_purchase.customer_metrics WHERE customer_id = '4010';
-- and equal to what the model says for the new summary
SELECT abs(m.p_alive - post_purchase.bgnbd_p_alive(model.bgnbd, s.frequency, s.recency, s.t)) < 1e-12 AS live_ok
FROM post_purchase.customer_metrics m JOIN post_purchase.customer_summaries s USING (customer_id),
	 (SELECT * FROM post_purchase.models ORDER BY model_id DESC LIMIT 1) model
WHERE m.customer_id = '4010';

-- lifecycle stages: vip is the top 10% by clv_12m among the active
SELECT lifecycle_stage, count(*) FROM post_purchase.customer_metrics GROUP BY 1 ORDER BY 1;
-- with live predictions for the changed customer, and with other settings
SELECT pg_temp.metrics_of_differs() AS differs_with_live_predictions;
UPDATE post_purchase.settings SET value = CASE name WHEN 'lapsed_after_days' THEN '60' WHEN 'at_risk_after_days' THEN '20'
	WHEN 'clv_monthly_discount' THEN '0.05' WHEN 'today' THEN '2025-03-01' END
WHERE name IN ('lapsed_after_days', 'at_risk_after_days', 'clv_monthly_discount', 'today');
SELECT pg_temp.metrics_of_differs() AS differs_with_other_settings,
	   count(DISTINCT lifecycle_stage) AS stages FROM post_purchase.customer_metrics;
-- a change of the settings makes every stored score stop counting
SELECT count(*) FILTER (WHERE scored) AS scored FROM post_purchase.customer_summaries_in_context;
CALL post_purchase.store_all_scores();
SELECT pg_temp.metrics_of_differs() AS differs_stored_with_other_settings;
UPDATE post_purchase.settings SET value = CASE name WHEN 'lapsed_after_days' THEN '180' WHEN 'at_risk_after_days' THEN '90'
	WHEN 'clv_monthly_discount' THEN '0.01' WHEN 'today' THEN '2025-01-01' END
WHERE name IN ('lapsed_after_days', 'at_risk_after_days', 'clv_monthly_discount', 'today');

-- one customer is an index lookup
EXPLAIN (COSTS OFF) SELECT * FROM post_purchase.customer_metrics WHERE customer_id = '42';

-- a second refresh keeps the first model
SELECT model_id, (bgnbd).converged FROM post_purchase.refresh_models();
SELECT count(*) AS models FROM post_purchase.models;

-- reading the view needs only SELECT on it
CREATE ROLE metrics_reader;
GRANT USAGE ON SCHEMA post_purchase TO metrics_reader;
GRANT SELECT ON post_purchase.customer_metrics TO metrics_reader;
SET ROLE metrics_reader;
SELECT count(*) FROM post_purchase.customer_metrics;
-- every column, the ones computed from settings and models too
SELECT count(x.*) AS rows, count(x.lifecycle_stage) AS lifecycle_stages, count(x.p_alive) AS p_alives,
	   count(x.rfm_segment) AS rfm_segments FROM post_purchase.customer_metrics x;
SELECT count(*) FROM post_purchase.customer_state;
RESET ROLE;
REVOKE ALL ON post_purchase.customer_metrics FROM metrics_reader;
REVOKE USAGE ON SCHEMA post_purchase FROM metrics_reader;
DROP ROLE metrics_reader;

-- Repeat purchases that total 0 (issue 19): customer 2 bought for 30 on
-- Dec 1 and got a free replacement on Dec 11 (frequency 1, monetary_value
-- 0); customer 3's Dec 11 order is a refund of 10, more than nothing
-- (monetary_value -10).  Both get a clv_12m, stored with their state ...
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(2, '2024-12-01 09:00', 30), (2, '2024-12-11 09:00', 0),
	(3, '2024-12-01 09:00', 30), (3, '2024-12-11 09:00', -10);
SELECT model_id > 2 AS new_model, (gamma_gamma).converged AS gg_converged FROM post_purchase.refresh_models();
CALL post_purchase.store_all_scores();
SELECT m.customer_id, m.frequency, m.monetary_value, m.clv_12m IS NOT NULL AS has_clv,
	   m.clv_12m = s.clv_12m AS stored_clv, s.scored_on IS NOT NULL AS scored
FROM post_purchase.customer_metrics m JOIN post_purchase.customer_state s USING (customer_id)
WHERE m.customer_id IN ('2', '3') ORDER BY m.customer_id;
-- ... and computed live under a model with round parameters.  Gamma-Gamma
-- p = 6, q = 4, v = 15, for a customer with x = 1 repeat purchase of mean
-- m = 0:  E[M] = p (v + x m) / (p x + q - 1) = 6 (15 + 0) / (6 + 4 - 1)
-- = 90 / 9 = 10, and for x = 3:  6 * 15 / (18 + 3) = 90 / 21 = 4.285714...
SELECT post_purchase.gamma_gamma_expected_value(ROW(6, 4, 15, NULL, NULL, true)::post_purchase.gamma_gamma_model, 1, 0) AS x1_m0,
	   round(post_purchase.gamma_gamma_expected_value(ROW(6, 4, 15, NULL, NULL, true)::post_purchase.gamma_gamma_model, 3, 0)::numeric, 6) AS x3_m0;
-- a negative mean spend has no expectation under the model: an error from
-- the functions; customer_metrics counts it as 0 (customer 3 below)
SELECT post_purchase.gamma_gamma_expected_value(ROW(6, 4, 15, NULL, NULL, true)::post_purchase.gamma_gamma_model, 1, -10);
\echo :LAST_ERROR_SQLSTATE
-- (scoring does not read the log-likelihood; a NULL field would make the
-- model's Gamma-Gamma part count as absent, as a row IS NULL test does)
INSERT INTO post_purchase.models (customers, bgnbd, gamma_gamma)
SELECT customers, bgnbd, ROW(6, 4, 15, 0, customers, true)::post_purchase.gamma_gamma_model FROM post_purchase.models
WHERE (bgnbd).converged ORDER BY model_id DESC LIMIT 1;
-- clv_12m = sum over months k = 1..12 of E[M] (E[X(30 k)] - E[X(30 (k - 1))]) / 1.01^k
-- with E[M] = 10 from above and E[X] the BG/NBD expectation: the same for
-- both (customer 3's -10 counts as 0), and live (no prediction under this model)
SELECT m.customer_id, m.monetary_value, m.model_id = model.model_id AS newest_model,
	   abs(m.clv_12m - ref.clv) < 1e-9 * ref.clv AS clv_ok, ref.clv > 0 AS positive
FROM post_purchase.customer_metrics m
JOIN post_purchase.customer_summaries s USING (customer_id)
CROSS JOIN (SELECT * FROM post_purchase.models ORDER BY model_id DESC LIMIT 1) model
CROSS JOIN LATERAL (
	SELECT sum(10 * (post_purchase.bgnbd_expected_purchases(model.bgnbd, s.frequency, s.recency, s.t, 30 * k)
					 - post_purchase.bgnbd_expected_purchases(model.bgnbd, s.frequency, s.recency, s.t, 30 * (k - 1)))
			   / 1.01 ^ k) AS clv
	FROM generate_series(1, 12) k) ref
WHERE m.customer_id IN ('2', '3') ORDER BY m.customer_id;
-- every customer has a clv_12m, and metrics_of() agrees with the view
SELECT count(*) AS customers, count(clv_12m) AS with_clv FROM post_purchase.customer_metrics;
SELECT pg_temp.metrics_of_differs() AS differs_with_zero_spend;

SELECT post_purchase.untrack_orders('shop.orders');
DELETE FROM post_purchase.models;
DELETE FROM post_purchase.rfm_cuts;
UPDATE post_purchase.settings SET value = '' WHERE name = 'today';
DROP SCHEMA shop CASCADE;

-- Each metric's one definition, on hand-computed cases (the view and
-- metrics_of() both call these functions).
-- lifecycle_stage: thresholds are strict (more than 180 days is lapsed,
-- more than 90 at_risk), vip needs a clv_12m at or above the cut (NULL
-- clv or no cut is not vip), then one purchase day is new, more returning
SELECT d, purchase_days, clv, post_purchase.lifecycle_stage(d, purchase_days, clv, 500, 180, 90) AS stage
FROM (VALUES (181, 1::bigint, 900::float8), (180, 1, 900), (91, 2, NULL), (90, 2, 500), (90, 2, 499.99),
			 (0, 1, NULL), (0, 3, NULL)) v(d, purchase_days, clv);
SELECT post_purchase.lifecycle_stage(10, 2, 900, NULL, 180, 90) AS without_vip_cut;
-- monetary_value: the repeat days' mean, the first day left out; 0 with
-- one day; refunds beyond the repeat purchases give a negative mean
SELECT post_purchase.monetary_value(100, 40, 3) AS mean_of_two_repeat_days,
	   post_purchase.monetary_value(10.50, 0, 2) AS trailing_zero_trimmed,
	   post_purchase.monetary_value(40, 40, 1) AS one_day,
	   post_purchase.monetary_value(10, 40, 3) AS refunded;
-- customer_age_days: to today, or to a last purchase day after today
SELECT post_purchase.customer_age_days('2024-01-31', '2024-01-01', '2024-01-10') AS thirty_days,
	   post_purchase.customer_age_days('2024-01-31', '2024-01-01', '2024-02-10') AS future_order;
-- recency_score: 1 + the cuts below the days, reversed (5 most recent)
SELECT d, post_purchase.recency_score(d, '{10,20,30,40}') AS r
FROM unnest(ARRAY[0, 10, 11, 40, 41]) d;
-- next_replenishment_due: the last order plus the mean gap between the
-- purchase days (60 days over 2 gaps); NULL with one purchase day
SELECT post_purchase.next_replenishment_due('2024-03-01 10:00+00', '2024-01-01', '2024-03-01', 3) AS due,
	   post_purchase.next_replenishment_due('2024-03-01 10:00+00', '2024-03-01', '2024-03-01', 1) AS one_day;
