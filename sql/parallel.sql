-- Every aggregate runs as a parallel plan (Partial Aggregate in the workers,
-- states serialized to the leader and combined) and gives the serial answer.
SET TimeZone = 'UTC';

CREATE TABLE par_orders AS
SELECT i AS id,
	   i % 997 AS customer_id,
	   timestamptz '2020-01-01' + ((i * 7919) % 1500) * interval '1 day'
		   + (i % 5) * interval '3 hours' AS ordered_at,
	   round(((i * 104729) % 20000) / 100.0 + 0.01, 2) AS amount,
	   ((i * 31) % 11)::int AS score
FROM generate_series(1::bigint, 100000) i;
ANALYZE par_orders;

-- the serial answers
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_totals AS
SELECT post_purchase.nps(score) AS nps,
	   post_purchase.nps_summary(score) AS nps_summary,
	   post_purchase.rfm_summary(ordered_at, amount, '2024-01-01') AS rfm,
	   post_purchase.purchase_cycle(ordered_at) AS cycle
FROM par_orders;
CREATE TEMP TABLE serial_groups AS
SELECT customer_id,
	   post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '7 days') AS rfm,
	   post_purchase.purchase_cycle(ordered_at) AS cycle,
	   post_purchase.nps_summary(score) AS nps_summary
FROM par_orders GROUP BY customer_id;

-- force parallel plans, and let only the workers scan so that every state
-- crosses a process boundary
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
SET enable_hashagg = on;

EXPLAIN (COSTS OFF)
SELECT post_purchase.nps(score), post_purchase.nps_summary(score),
	   post_purchase.rfm_summary(ordered_at, amount, '2024-01-01'),
	   post_purchase.purchase_cycle(ordered_at)
FROM par_orders;

SELECT post_purchase.nps(score) = s.nps AS nps_same,
	   post_purchase.nps_summary(score) = s.nps_summary AS nps_summary_same,
	   post_purchase.rfm_summary(ordered_at, amount, '2024-01-01') = s.rfm AS rfm_same,
	   post_purchase.purchase_cycle(ordered_at) = s.cycle AS cycle_same
FROM par_orders, serial_totals s
GROUP BY s.nps, s.nps_summary, s.rfm, s.cycle;

EXPLAIN (COSTS OFF)
SELECT customer_id,
	   post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '7 days'),
	   post_purchase.purchase_cycle(ordered_at),
	   post_purchase.nps_summary(score)
FROM par_orders GROUP BY customer_id;

CREATE TEMP TABLE parallel_groups AS
SELECT customer_id,
	   post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '7 days') AS rfm,
	   post_purchase.purchase_cycle(ordered_at) AS cycle,
	   post_purchase.nps_summary(score) AS nps_summary
FROM par_orders GROUP BY customer_id;
SELECT (SELECT count(*) FROM serial_groups) AS customers,
	   (SELECT count(*) FROM (SELECT * FROM serial_groups EXCEPT SELECT * FROM parallel_groups) d) AS missing,
	   (SELECT count(*) FROM (SELECT * FROM parallel_groups EXCEPT SELECT * FROM serial_groups) d) AS extra;

-- empty partial states: no worker sees a row
SELECT post_purchase.nps(score), post_purchase.nps_summary(score),
	   post_purchase.rfm_summary(ordered_at, amount, '2024-01-01'),
	   post_purchase.purchase_cycle(ordered_at)
FROM par_orders WHERE id < 0;

-- some workers see rows and others none: a table of one page
CREATE TABLE par_small WITH (parallel_workers = 2) AS
SELECT * FROM par_orders WHERE id <= 100;
ANALYZE par_small;
EXPLAIN (COSTS OFF)
SELECT post_purchase.nps_summary(score) FROM par_small;
SELECT (post_purchase.nps_summary(score)).*,
	   (post_purchase.rfm_summary(ordered_at, amount, '2024-01-01')).*
FROM par_small;
RESET parallel_leader_participation;
SET max_parallel_workers_per_gather = 0;
SELECT (post_purchase.nps_summary(score)).*,
	   (post_purchase.rfm_summary(ordered_at, amount, '2024-01-01')).*
FROM par_small;

-- Issue 22: the model fits and the time-zone forms, serial and forced
-- parallel (their states cross processes as values of their own types)
RESET parallel_leader_participation;
SET max_parallel_workers_per_gather = 0;
CREATE TABLE par_fit AS
SELECT (r).frequency::float8 AS frequency, (r).recency AS recency, (r).t AS t,
	   (r).monetary_value::float8 AS monetary_value
FROM (SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-01-01') AS r FROM par_orders GROUP BY customer_id) q;
ANALYZE par_fit;
CREATE TEMP TABLE serial_fits AS
SELECT post_purchase.bgnbd_fit(frequency, recency, t) AS bgnbd,
	   post_purchase.gamma_gamma_fit(frequency, monetary_value) FILTER (WHERE frequency > 0) AS gg
FROM par_fit;
CREATE TEMP TABLE serial_zones AS
SELECT customer_id,
	   post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '1 day', 'Pacific/Auckland') AS rfm,
	   post_purchase.purchase_cycle(ordered_at, 'America/Los_Angeles') AS cycle
FROM par_orders GROUP BY customer_id;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF)
SELECT post_purchase.bgnbd_fit(frequency, recency, t) FROM par_fit;
SELECT post_purchase.bgnbd_fit(frequency, recency, t) = s.bgnbd AS bgnbd_same,
	   post_purchase.gamma_gamma_fit(frequency, monetary_value) FILTER (WHERE frequency > 0) = s.gg AS gg_same
FROM par_fit, serial_fits s
GROUP BY s.bgnbd, s.gg;
EXPLAIN (COSTS OFF)
SELECT customer_id, post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '1 day', 'Pacific/Auckland'),
	   post_purchase.purchase_cycle(ordered_at, 'America/Los_Angeles')
FROM par_orders GROUP BY customer_id;
-- the session's zone is not the one given: nothing of it counts
SET TimeZone = 'Asia/Kolkata';
CREATE TEMP TABLE parallel_zones AS
SELECT customer_id,
	   post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '1 day', 'Pacific/Auckland') AS rfm,
	   post_purchase.purchase_cycle(ordered_at, 'America/Los_Angeles') AS cycle
FROM par_orders GROUP BY customer_id;
SET TimeZone = 'UTC';
SELECT (SELECT count(*) FROM serial_zones) AS customers,
	   (SELECT count(*) FROM (SELECT * FROM serial_zones EXCEPT SELECT * FROM parallel_zones) d) AS missing,
	   (SELECT count(*) FROM (SELECT * FROM parallel_zones EXCEPT SELECT * FROM serial_zones) d) AS extra;
-- and the zone matters: for some customers Auckland's days are not UTC's
SELECT count(*) > 0 AS zone_matters
FROM serial_zones z
JOIN (SELECT customer_id, post_purchase.rfm_summary(ordered_at, amount, '2023-06-30', '1 day', 'UTC') AS rfm
	  FROM par_orders GROUP BY customer_id) u USING (customer_id)
WHERE z.rfm IS DISTINCT FROM u.rfm;
-- purchase_totals (the customer state's, src/rfm.c) shares rfm_summary's
-- state and combine function: the parallel plan gives the serial answer
-- per customer, and over all orders what plain SQL computes
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_purchase_totals AS
SELECT customer_id, post_purchase.purchase_totals(ordered_at, amount, 'Europe/Berlin') AS totals
FROM par_orders GROUP BY customer_id;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT customer_id, post_purchase.purchase_totals(ordered_at, amount, 'Europe/Berlin')
FROM par_orders GROUP BY customer_id;
CREATE TEMP TABLE parallel_purchase_totals AS
SELECT customer_id, post_purchase.purchase_totals(ordered_at, amount, 'Europe/Berlin') AS totals
FROM par_orders GROUP BY customer_id;
SELECT count(*) AS customers, count(*) FILTER (WHERE p.totals::text = s.totals::text) AS same
FROM parallel_purchase_totals p JOIN serial_purchase_totals s USING (customer_id);
EXPLAIN (COSTS OFF)
SELECT post_purchase.purchase_totals(ordered_at, amount, 'UTC') FROM par_orders;
WITH days AS (SELECT (ordered_at AT TIME ZONE 'UTC')::date AS day, amount FROM par_orders),
	 expected AS (SELECT count(DISTINCT day) AS purchase_days, min(day) AS first_day, max(day) AS last_day,
						 sum(amount) AS revenue FROM days)
SELECT t.purchase_days = e.purchase_days AS days_same, t.first_day = e.first_day AS first_same,
	   t.last_day = e.last_day AS last_same, t.revenue::text = e.revenue::text AS revenue_same,
	   t.first_day_revenue = (SELECT sum(amount) FROM days WHERE day = e.first_day) AS first_revenue_same
FROM (SELECT (post_purchase.purchase_totals(ordered_at, amount, 'UTC')).* FROM par_orders) t, expected e;
RESET parallel_leader_participation;
SET max_parallel_workers_per_gather = 0;

DROP TABLE par_orders, par_small, par_fit;
