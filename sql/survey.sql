-- csat, csat_summary and ces_summary against hand-computed cases, their bad
-- inputs, and forced parallel plans.  test/t/008_survey_reference.pl checks
-- them against an independent reference on many more answer sets.
-- (s).* is taken from a subquery: (post_purchase.csat_summary(score)).*
-- would run the aggregate once per column.

-- Which answers count, on every scale: one answer of every point.
-- CSAT satisfied, the top-2 box: 3 of 3 (the top box only), 4-5 of 5, 6-7 of
-- 7, 9-10 of 10.  CES low effort, above the midpoint: 3 of 3, 4-5 of 5,
-- 5-7 of 7, 6-10 of 10.
CREATE TABLE survey_scales (scale int);
INSERT INTO survey_scales VALUES (3), (5), (7), (10);
SELECT scale, (c).responses, (c).satisfied, (c).csat, (c).mean,
	   (e).low_effort, (e).low_effort_percent
FROM (SELECT scale, post_purchase.csat_summary(k, scale) c, post_purchase.ces_summary(k, scale) e
	  FROM survey_scales, generate_series(1, scale) k GROUP BY scale) q
ORDER BY scale;
-- the same by the count(*) FILTER formula of the conventions above
SELECT scale,
	   count(*) FILTER (WHERE k >= CASE scale WHEN 3 THEN 3 ELSE scale - 1 END) AS satisfied,
	   count(*) FILTER (WHERE k > (scale + 1) / 2.0) AS low_effort
FROM survey_scales, generate_series(1, scale) k GROUP BY scale ORDER BY scale;

-- CSAT of 5, 4, 4, 3, 1 on 5 points: 3 satisfied, CSAT 60, mean 17/5 = 3.4.
-- Wilson, z = 1.959964, z^2 = 3.841459, n = 5, p = 0.6:
--   centre = (0.6 + 3.841459 / 10) / (1 + 3.841459 / 5) = 0.984146 / 1.768292 = 0.556552
--   half = 1.959964 / 1.768292 * sqrt(0.24 / 5 + 3.841459 / 100) = 1.108393 * 0.293963 = 0.325827
--   interval 23.0724 .. 88.2379 (percent)
SELECT (s).responses, (s).satisfied, (s).csat, (s).mean, round((s).ci_low, 4) AS ci_low, round((s).ci_high, 4) AS ci_high
FROM (SELECT post_purchase.csat_summary(a) s FROM (VALUES (5), (4), (4), (3), (1)) v(a)) q;
SELECT post_purchase.csat(a), post_purchase.csat(a, 5) FROM (VALUES (5), (4), (4), (3), (1)) v(a);

-- CES of 7, 6, 5, 5, 2 on 7 points: mean 5, 4 low-effort answers (5-7), 80%.
-- Squared deviations 4 + 1 + 0 + 0 + 9 = 14, s^2 = 14 / 4 = 3.5, s / sqrt(5) = 0.836660;
-- t(0.975, 4) = 2.776445, half = 2.322941: 2.677059 .. 7.322941 (not clipped to the scale)
SELECT (s).responses, (s).low_effort, (s).low_effort_percent, (s).mean,
	   round((s).ci_low, 6) AS ci_low, round((s).ci_high, 6) AS ci_high
FROM (SELECT post_purchase.ces_summary(a) s FROM (VALUES (7), (6), (5), (5), (2)) v(a)) q;
SELECT post_purchase.ces_summary(a) = post_purchase.ces_summary(a, 7) AS default_is_7
FROM (VALUES (7), (6), (5), (5), (2)) v(a);

-- CES of 4, 5, 5, 2 on 5 points: mean 4, low effort 4-5: 3 answers, 75%.
-- Squared deviations 0 + 1 + 1 + 4 = 6, s^2 = 2, s / sqrt(4) = 0.707107;
-- t(0.975, 3) = 3.182446, half = 2.250329: 1.749671 .. 6.250329
SELECT (s).responses, (s).low_effort, (s).low_effort_percent, (s).mean,
	   round((s).ci_low, 6) AS ci_low, round((s).ci_high, 6) AS ci_high
FROM (SELECT post_purchase.ces_summary(a, 5) s FROM (VALUES (4), (5), (5), (2)) v(a)) q;

-- 7-point CSAT: 7, 6, 5, 1: 2 satisfied, 50%, mean 19/4 = 4.75.
-- Wilson, n = 4, p = 0.5: centre 0.5, half = 1.959964 / 1.960365 * sqrt(0.25 / 4 + 3.841459 / 64)
--   = 0.999795 * 0.350033 = 0.349961: 15.0039 .. 84.9961
SELECT (s).responses, (s).satisfied, (s).csat, (s).mean, round((s).ci_low, 4) AS ci_low, round((s).ci_high, 4) AS ci_high
FROM (SELECT post_purchase.csat_summary(a, 7) s FROM (VALUES (7), (6), (5), (1)) v(a)) q;

-- one answer: the Wilson interval is defined (satisfied: n / (n + z^2) =
-- 1 / 4.841459 = 20.6549% .. 100%); the t interval of the mean is not
SELECT (s).responses, (s).csat, round((s).ci_low, 4) AS ci_low, round((s).ci_high, 4) AS ci_high
FROM (SELECT post_purchase.csat_summary(a) s FROM (VALUES (5)) v(a)) q;
SELECT (s).* FROM (SELECT post_purchase.ces_summary(a) s FROM (VALUES (6)) v(a)) q;
-- answers that do not vary: an interval of width 0
SELECT (s).* FROM (SELECT post_purchase.ces_summary(a) s FROM (VALUES (6), (6), (6)) v(a)) q;
-- none satisfied, every answer satisfied: the interval stays within 0..100,
-- 0 .. z^2 / (n + z^2) = 3.841459 / 6.841459 = 56.1497% and n / (n + z^2) = 43.8503% .. 100%
SELECT (s).csat, (s).ci_low, round((s).ci_high, 4) AS ci_high
FROM (SELECT post_purchase.csat_summary(a) s FROM (VALUES (1), (2), (3)) v(a)) q;
SELECT (s).csat, round((s).ci_low, 4) AS ci_low, (s).ci_high
FROM (SELECT post_purchase.csat_summary(a) s FROM (VALUES (4), (5), (5)) v(a)) q;

-- NULL answers are ignored; no answers give NULL like avg(), and the
-- summaries zero responses like nps_summary
SELECT post_purchase.csat(a) FROM (VALUES (5), (NULL), (1), (NULL)) v(a);
SELECT post_purchase.csat(a) FROM (VALUES (NULL::int)) v(a);
SELECT post_purchase.csat(a, 7) FROM generate_series(1, 0) a;
SELECT (s).* FROM (SELECT post_purchase.csat_summary(a) s FROM generate_series(1, 0) a) q;
SELECT (s).* FROM (SELECT post_purchase.ces_summary(a, 5) s FROM (VALUES (NULL::int)) v(a)) q;
-- a row without an answer needs no scale
SELECT post_purchase.csat(a, sc) FROM (VALUES (5, 5), (NULL, NULL)) v(a, sc);

-- per group, against the count(*) FILTER and avg() formulas
CREATE TABLE survey_answers (id int, agent int, csat int, effort int);
INSERT INTO survey_answers
SELECT i, i % 4, 1 + (i * 7919) % 5, CASE WHEN i % 13 = 0 THEN NULL ELSE 1 + (i * 104729) % 7 END
FROM generate_series(1, 2000) i;
SELECT agent,
	   (c).csat = trim_scale(100.0 * count(*) FILTER (WHERE csat >= 4) / count(csat)) AS csat_matches,
	   (c).mean = trim_scale(avg(csat)) AS csat_mean_matches,
	   (e).responses = count(effort) AS ces_responses_match,
	   (e).low_effort = count(*) FILTER (WHERE effort >= 5) AS low_effort_matches,
	   (e).mean = trim_scale(avg(effort)) AS ces_mean_matches,
	   abs(((e).ci_high - (e).ci_low) / 2 - 1.96 * stddev_samp(effort) / sqrt(count(effort))) < 0.002 AS near_normal_interval
FROM (SELECT agent, post_purchase.csat_summary(csat) c, post_purchase.ces_summary(effort) e
	  FROM survey_answers GROUP BY agent) q
JOIN survey_answers USING (agent)
GROUP BY agent, c, e ORDER BY agent;

-- as a window aggregate: the running CSAT of the first answers
SELECT id, csat, post_purchase.csat(csat) OVER (ORDER BY id) AS running_csat
FROM survey_answers WHERE id <= 5 ORDER BY id;

-- any role may compute them
CREATE ROLE survey_analyst;
SET ROLE survey_analyst;
SELECT post_purchase.csat(a), (post_purchase.ces_summary(a)).mean FROM (VALUES (5), (3)) v(a);
RESET ROLE;
DROP ROLE survey_analyst;

-- Bad input.
-- a score outside the scale names the valid range (22003)
SELECT post_purchase.csat(a) FROM (VALUES (5), (6)) v(a);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.csat(a) FROM (VALUES (0)) v(a);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.csat_summary(a, 10) FROM (VALUES (11)) v(a);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(a) FROM (VALUES (8)) v(a);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(a, 3) FROM (VALUES (2147483647)) v(a);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.csat(a, 7) FROM (VALUES (-2147483648)) v(a);
\echo :LAST_ERROR_SQLSTATE
-- an unknown scale (22023), also on a row without an answer
SELECT post_purchase.csat(5, 4);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.csat_summary(0, 11);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(1, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(NULL, -7);
\echo :LAST_ERROR_SQLSTATE
-- a NULL scale for an answer (22004)
SELECT post_purchase.csat(a, sc) FROM (VALUES (5, 5), (4, NULL)) v(a, sc);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(3, NULL);
\echo :LAST_ERROR_SQLSTATE
-- different scales in one group (22023); other groups may differ
SELECT post_purchase.csat(a, sc) FROM (VALUES (5, 5), (6, 7)) v(a, sc);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(a, sc) FROM (VALUES (3, 10), (3, 3)) v(a, sc);
\echo :LAST_ERROR_SQLSTATE
SELECT sc, post_purchase.csat(a, sc) FROM (VALUES (5, 5), (6, 7)) v(a, sc) GROUP BY sc ORDER BY sc;
-- the support functions cannot be reached from SQL
SELECT post_purchase.csat_final(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary_final(NULL);
\echo :LAST_ERROR_SQLSTATE

-- Parallel plans: Partial Aggregate in the workers, states serialized to
-- the leader and combined, the serial answers.
CREATE TABLE par_survey AS
SELECT i AS id, i % 997 AS customer_id,
	   CASE WHEN i % 101 = 0 THEN NULL ELSE 1 + ((i * 31) % 5) END AS csat,
	   1 + ((i * 17) % 7) AS effort,
	   1 + ((i * 13) % 10) AS ten_point
FROM generate_series(1, 100000) i;
ANALYZE par_survey;

SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE survey_serial_totals AS
SELECT post_purchase.csat(csat) AS csat_total, post_purchase.csat_summary(csat) AS csat_summary,
	   post_purchase.csat_summary(ten_point, 10) AS csat_ten, post_purchase.ces_summary(effort) AS ces_summary
FROM par_survey;
CREATE TEMP TABLE survey_serial_groups AS
SELECT customer_id, post_purchase.csat_summary(csat) AS csat_summary, post_purchase.ces_summary(effort, 7) AS ces_summary
FROM par_survey GROUP BY customer_id;

SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;

EXPLAIN (COSTS OFF)
SELECT post_purchase.csat(csat), post_purchase.csat_summary(csat),
	   post_purchase.csat_summary(ten_point, 10), post_purchase.ces_summary(effort)
FROM par_survey;
SELECT post_purchase.csat(csat) = s.csat_total AS csat_same,
	   post_purchase.csat_summary(csat) = s.csat_summary AS csat_summary_same,
	   post_purchase.csat_summary(ten_point, 10) = s.csat_ten AS csat_ten_same,
	   post_purchase.ces_summary(effort) = s.ces_summary AS ces_summary_same
FROM par_survey, survey_serial_totals s
GROUP BY s.csat_total, s.csat_summary, s.csat_ten, s.ces_summary;

EXPLAIN (COSTS OFF)
SELECT customer_id, post_purchase.csat_summary(csat), post_purchase.ces_summary(effort, 7)
FROM par_survey GROUP BY customer_id;
CREATE TEMP TABLE survey_parallel_groups AS
SELECT customer_id, post_purchase.csat_summary(csat) AS csat_summary, post_purchase.ces_summary(effort, 7) AS ces_summary
FROM par_survey GROUP BY customer_id;
SELECT (SELECT count(*) FROM survey_serial_groups) AS customers,
	   (SELECT count(*) FROM (SELECT * FROM survey_serial_groups EXCEPT SELECT * FROM survey_parallel_groups) d) AS missing,
	   (SELECT count(*) FROM (SELECT * FROM survey_parallel_groups EXCEPT SELECT * FROM survey_serial_groups) d) AS extra;

-- empty partial states: no worker sees a row
SELECT q.csat, (s).* FROM (SELECT post_purchase.csat(csat) AS csat, post_purchase.ces_summary(effort) s
						   FROM par_survey WHERE id < 0) q;
-- partial states of NULL answers only
SELECT (s).* FROM (SELECT post_purchase.csat_summary(csat) s FROM par_survey WHERE id % 101 = 0) q;

-- some workers see rows and others none: a table of one page
CREATE TABLE par_survey_small WITH (parallel_workers = 2) AS SELECT * FROM par_survey WHERE id <= 40;
ANALYZE par_survey_small;
EXPLAIN (COSTS OFF)
SELECT post_purchase.csat_summary(csat) FROM par_survey_small;
SELECT (c).*, (e).* FROM (SELECT post_purchase.csat_summary(csat) c, post_purchase.ces_summary(effort) e
						  FROM par_survey_small) q;
RESET parallel_leader_participation;
SET max_parallel_workers_per_gather = 0;
SELECT (c).*, (e).* FROM (SELECT post_purchase.csat_summary(csat) c, post_purchase.ces_summary(effort) e
						  FROM par_survey_small) q;

-- different scales meeting in the combine function: each partition is
-- aggregated on its own (partial partitionwise aggregation: the group key
-- is not the partition key), its states then combined
CREATE TABLE survey_parts (part int, scale int, score int, k int) PARTITION BY LIST (part);
CREATE TABLE survey_parts_1 PARTITION OF survey_parts FOR VALUES IN (1);
CREATE TABLE survey_parts_2 PARTITION OF survey_parts FOR VALUES IN (2);
-- (enough rows that aggregating each partition first is the cheaper plan)
INSERT INTO survey_parts
SELECT p, CASE p WHEN 1 THEN 5 ELSE 7 END, 1 + i % 5, 1 FROM generate_series(1, 2) p, generate_series(1, 2000) i;
ANALYZE survey_parts;
SET enable_partitionwise_aggregate = on;
EXPLAIN (COSTS OFF)
SELECT post_purchase.csat(score, scale) FROM survey_parts GROUP BY k;
SELECT post_purchase.csat(score, scale) FROM survey_parts GROUP BY k;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.ces_summary(score, scale) FROM survey_parts GROUP BY k;
\echo :LAST_ERROR_SQLSTATE
-- one scale in both partitions combines: 1-5 answers on 7 points, none
-- satisfied (6-7), 800 of 4000 low effort (5-7: the 5s), mean 3
UPDATE survey_parts SET scale = 7;
ANALYZE survey_parts;
SELECT (c).responses, (c).satisfied, (c).csat, (c).mean, (e).low_effort, (e).low_effort_percent, (e).mean
FROM (SELECT post_purchase.csat_summary(score, scale) c, post_purchase.ces_summary(score, scale) e
	  FROM survey_parts GROUP BY k) q;
RESET enable_partitionwise_aggregate;

RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
DROP TABLE survey_scales, survey_answers, par_survey, par_survey_small, survey_parts;
