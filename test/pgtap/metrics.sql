-- The metrics' behaviour, from an angle independent of the regression tests:
-- small cases worked out by hand, and generated data checked against the same
-- metric written in plain SQL (count FILTER, window functions, percentile_cont).
BEGIN;
SELECT plan(61);

-- calendar days are those of the session TimeZone; fix it
SET LOCAL TimeZone = 'UTC';

------------------------------------------------------------------------------
-- nps and nps_summary
------------------------------------------------------------------------------

-- 10 10 9 9 9 | 8 | 3 0: 5 promoters, 1 passive, 2 detractors of 8;
-- NPS = 100 * (5 - 2) / 8 = 37.5
CREATE TEMP TABLE hand_scores (score int);
INSERT INTO hand_scores VALUES (10), (10), (9), (9), (9), (8), (3), (0), (NULL);

SELECT is((SELECT post_purchase.nps(score) FROM hand_scores), 37.5::numeric,
	'nps of 5 promoters, 1 passive, 2 detractors is 37.5 (NULL ignored)');
SELECT is((SELECT (s).responses FROM (SELECT post_purchase.nps_summary(score) s FROM hand_scores) x), 8::bigint,
	'nps_summary counts 8 responses, not the NULL');
SELECT is((SELECT array[(s).promoters, (s).passives, (s).detractors]
		   FROM (SELECT post_purchase.nps_summary(score) s FROM hand_scores) x),
	ARRAY[5, 1, 2]::bigint[], 'nps_summary: 5 promoters, 1 passive, 2 detractors');
SELECT is((SELECT (s).nps FROM (SELECT post_purchase.nps_summary(score) s FROM hand_scores) x), 37.5::numeric,
	'nps_summary.nps equals nps');
-- shares P = 5/8, D = 2/8: 1.96 * 100 * sqrt((P + D - (P - D)^2) / 8) = 59.38407825...
SELECT ok((SELECT abs((s).margin_of_error - 59.38407825335) < 1e-9
		   FROM (SELECT post_purchase.nps_summary(score) s FROM hand_scores) x),
	'nps_summary margin of error is 59.384078 points (hand-computed)');

SELECT is((SELECT post_purchase.nps(s) FROM (VALUES (10), (9)) v(s)), 100::numeric, 'all promoters: nps 100');
SELECT is((SELECT post_purchase.nps(s) FROM (VALUES (0), (6), (5)) v(s)), -100::numeric, 'all detractors: nps -100');
SELECT is((SELECT post_purchase.nps(s) FROM (VALUES (7), (8)) v(s)), 0::numeric, 'all passives: nps 0');
SELECT is((SELECT post_purchase.nps(s) FROM (VALUES (NULL::int)) v(s)), NULL, 'only NULL answers: nps is NULL');
SELECT is((SELECT post_purchase.nps(s) FROM (VALUES (1)) v(s) WHERE false), NULL, 'no rows: nps is NULL');
SELECT is((SELECT row((s).responses, (s).promoters, (s).passives, (s).detractors)::text
		   || coalesce((s).nps::text, '-') || coalesce((s).margin_of_error::text, '-')
		   FROM (SELECT post_purchase.nps_summary(x) s FROM (VALUES (1)) v(x) WHERE false) y),
	'(0,0,0,0)--', 'no rows: nps_summary counts zero, nps and margin NULL');
-- the category boundaries: 6 is a detractor, 7 and 8 passives, 9 a promoter
SELECT is((SELECT array[(s).promoters, (s).passives, (s).detractors]
		   FROM (SELECT post_purchase.nps_summary(x) s FROM generate_series(0, 10) x) y),
	ARRAY[2, 2, 7]::bigint[], 'scores 0..10 split 7 detractors, 2 passives, 2 promoters');

-- generated answers: per group, nps against the count FILTER formula
CREATE TABLE pgtap_answers AS
	SELECT i % 23 AS g,
		   CASE WHEN i % 17 = 0 OR i % 23 = 22 THEN NULL ELSE (i * 7 + i / 13 + (i % 23) * (i % 3)) % 11 END AS score
	FROM generate_series(1, 60000) i;
ANALYZE pgtap_answers;

-- the same metrics run once in a forced parallel plan, so partial states are
-- serialized, shipped and combined
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL enable_hashagg = off;
SET LOCAL parallel_leader_participation = off;

CREATE FUNCTION pg_temp.plan_of(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || query;
END
$$;

SELECT ok(EXISTS (SELECT 1 FROM pg_temp.plan_of('SELECT g, post_purchase.nps(score) FROM pgtap_answers GROUP BY g') p
				  WHERE p ~ 'Partial'),
	'the generated nps query runs as a parallel (partial) aggregate');
SELECT is_empty($$
	WITH by_agg AS (
		SELECT g, round(post_purchase.nps(score), 12) AS nps FROM pgtap_answers GROUP BY g),
	by_formula AS (
		SELECT g, round(100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6))
						/ NULLIF(count(score), 0), 12) AS nps
		FROM pgtap_answers GROUP BY g)
	SELECT * FROM by_agg FULL JOIN by_formula USING (g)
	WHERE by_agg.nps IS DISTINCT FROM by_formula.nps$$,
	'nps equals 100 * (count FILTER 9-10 - count FILTER 0-6) / count, for every group');
SELECT is((SELECT count(*)::int FROM (SELECT g FROM pgtap_answers GROUP BY g HAVING count(score) = 0) x), 1,
	'the generated data has one all-NULL group (so the NULL case is compared too)');
SELECT is((SELECT count(DISTINCT score)::int FROM pgtap_answers), 11, 'the generated answers use all 11 scores');
SELECT is_empty($$
	WITH by_agg AS (
		SELECT g, (s).responses, (s).promoters, (s).passives, (s).detractors, (s).margin_of_error
		FROM (SELECT g, post_purchase.nps_summary(score) s FROM pgtap_answers GROUP BY g) x),
	by_formula AS (
		SELECT g, count(score) AS responses,
			   count(*) FILTER (WHERE score >= 9) AS promoters,
			   count(*) FILTER (WHERE score BETWEEN 7 AND 8) AS passives,
			   count(*) FILTER (WHERE score <= 6) AS detractors
		FROM pgtap_answers GROUP BY g)
	SELECT * FROM by_agg FULL JOIN by_formula f USING (g)
	WHERE (by_agg.responses, by_agg.promoters, by_agg.passives, by_agg.detractors)
		  IS DISTINCT FROM (f.responses, f.promoters, f.passives, f.detractors)
	   OR (f.responses > 0 AND abs(by_agg.margin_of_error
			- 196 * sqrt((f.promoters + f.detractors - (f.promoters - f.detractors)::float8 ^ 2 / f.responses)
						 / f.responses::float8 ^ 2)::numeric) > 1e-9)$$,
	'nps_summary counts and margin of error equal their formulas, for every group');

------------------------------------------------------------------------------
-- rfm_summary
------------------------------------------------------------------------------

-- customer 1: Jan 1 (two orders, 10 + 5: one purchase day), Jan 11 (20),
-- Jan 31 (40), Feb 10 (100, after observed_until Feb 5: ignored).
-- frequency 2, recency Jan 31 - Jan 1 = 30, T Feb 5 - Jan 1 = 35,
-- monetary_value (20 + 40) / 2 = 30.
-- customer 2: one order Jan 20: frequency 0, recency 0, T 16, monetary 0.
-- customer 3: only an order after observed_until: NULL.
CREATE TEMP TABLE hand_orders (customer int, ordered_at timestamptz, amount numeric);
INSERT INTO hand_orders VALUES
	(1, '2024-01-01 10:00+00', 10), (1, '2024-01-01 18:00+00', 5), (1, '2024-01-11 09:00+00', 20),
	(1, '2024-01-31 12:00+00', 40), (1, '2024-02-10 08:00+00', 100),
	(2, '2024-01-20 23:59+00', 12.5),
	(3, '2024-03-01 00:00+00', 7);

SELECT is((SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-02-05 00:00+00') FROM hand_orders WHERE customer = 1),
	row(2, 30, 35, 30)::post_purchase.rfm_result,
	'rfm_summary of a hand-computed history: frequency 2, recency 30, T 35, monetary 30');
SELECT is((SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-02-05 00:00+00', '7 days') FROM hand_orders WHERE customer = 1),
	row(2, 30 / 7.0, 5, 30)::post_purchase.rfm_result,
	'rfm_summary in weeks: recency 30/7, T 5');
SELECT is((SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-02-05 00:00+00' ORDER BY ordered_at DESC)
		   FROM hand_orders WHERE customer = 1),
	row(2, 30, 35, 30)::post_purchase.rfm_result,
	'rfm_summary of the same history fed newest first is the same');
SELECT is((SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-02-05 00:00+00') FROM hand_orders WHERE customer = 2),
	row(0, 0, 16, 0)::post_purchase.rfm_result,
	'rfm_summary of a one-order customer: frequency 0, recency 0, T 16, monetary 0');
SELECT is((SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-02-05 00:00+00') FROM hand_orders WHERE customer = 3),
	NULL, 'rfm_summary of a customer with no order up to observed_until is NULL');
SELECT is((SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-02-10 08:00+00')).frequency
		   FROM hand_orders WHERE customer = 1),
	3::bigint, 'an order at exactly observed_until counts');
-- 23:30 and 00:30 UTC are two days in UTC but one day (18:30, 19:30) in New York
SELECT is((SELECT (post_purchase.rfm_summary(t, 1, '2024-02-01 00:00+00')).frequency
		   FROM (VALUES ('2024-01-01 23:30+00'::timestamptz), ('2024-01-02 00:30+00')) v(t)),
	1::bigint, 'in UTC, 23:30 and 00:30 are two purchase days');
SET LOCAL TimeZone = 'America/New_York';
SELECT is((SELECT (post_purchase.rfm_summary(t, 1, '2024-02-01 00:00+00')).frequency
		   FROM (VALUES ('2024-01-01 23:30+00'::timestamptz), ('2024-01-02 00:30+00')) v(t)),
	0::bigint, 'in New York the same two orders are one purchase day');
SET LOCAL TimeZone = 'UTC';

-- generated orders against the BTYD definitions written in SQL: up to 14
-- purchase days a customer, every fourth with a second order 6 hours later
-- (the same day), some after observed_until, some with a NULL amount
CREATE TABLE pgtap_orders AS
	SELECT c AS customer,
		   '2024-01-01 00:00+00'::timestamptz + ((c * 37 + i * i * 11) % 400) * interval '1 day'
			   + ((c * 7 + i * 13) % 12 + (k - 1) * 6) * interval '1 hour' AS ordered_at,
		   CASE WHEN (c + i) % 29 = 0 THEN NULL ELSE ((c * i * k) % 97 + 1) + 0.25 END AS amount
	FROM generate_series(1, 400) c, generate_series(1, 14) i, generate_series(1, 2) k
	WHERE i <= c % 14 + 1 AND (k = 1 OR i % 4 = 0);
ANALYZE pgtap_orders;

SELECT ok(EXISTS (SELECT 1 FROM pg_temp.plan_of(
		$$SELECT customer, post_purchase.rfm_summary(ordered_at, amount, '2024-12-31 12:00+00')
		  FROM pgtap_orders GROUP BY customer$$) p WHERE p ~ 'Partial'),
	'the generated rfm_summary query runs as a parallel (partial) aggregate');
SELECT is_empty($$
	WITH by_agg AS (
		SELECT customer, (r).frequency, (r).recency, (r).t, round((r).monetary_value, 10) AS monetary_value
		FROM (SELECT customer, post_purchase.rfm_summary(ordered_at, amount, '2024-12-31 12:00+00') r
			  FROM pgtap_orders GROUP BY customer) x
		WHERE r IS NOT NULL),
	days AS (
		SELECT customer, (ordered_at AT TIME ZONE 'UTC')::date AS d, sum(amount) AS spend
		FROM pgtap_orders
		WHERE ordered_at <= '2024-12-31 12:00+00' AND amount IS NOT NULL
		GROUP BY 1, 2),
	by_formula AS (
		SELECT customer, count(*) - 1 AS frequency, (max(d) - min(d))::float8 AS recency,
			   ('2024-12-31'::date - min(d))::float8 AS t,
			   round(CASE WHEN count(*) > 1
					 THEN (sum(spend) - (array_agg(spend ORDER BY d))[1]) / (count(*) - 1) ELSE 0 END, 10)
				   AS monetary_value
		FROM days GROUP BY customer)
	SELECT * FROM by_agg FULL JOIN by_formula f USING (customer)
	WHERE (by_agg.frequency, by_agg.recency, by_agg.t, by_agg.monetary_value)
		  IS DISTINCT FROM (f.frequency, f.recency, f.t, f.monetary_value)$$,
	'rfm_summary equals the BTYD definitions in SQL for every generated customer');
SELECT is((SELECT count(*)::int FROM (
			SELECT customer FROM pgtap_orders GROUP BY customer
			HAVING post_purchase.rfm_summary(ordered_at, amount, '2024-12-31 12:00+00') IS NULL) x),
	(SELECT count(*)::int FROM (
			SELECT customer FROM pgtap_orders GROUP BY customer
			HAVING count(*) FILTER (WHERE ordered_at <= '2024-12-31 12:00+00' AND amount IS NOT NULL) = 0) y),
	'rfm_summary is NULL exactly for the customers with no order up to observed_until');

------------------------------------------------------------------------------
-- purchase_cycle and replenishment_due
------------------------------------------------------------------------------

-- days Jan 1 (two orders), Jan 11, Jan 31, Feb 5 15:00: gaps 10, 20, 5;
-- median 10 days, mean 35 / 3 = 11 days 16 hours, next due Feb 15 15:00
CREATE TEMP TABLE hand_cycle (ordered_at timestamptz);
INSERT INTO hand_cycle VALUES ('2024-01-01 08:00+00'), ('2024-01-01 20:00+00'), ('2024-01-11 09:00+00'),
	('2024-01-31 12:00+00'), ('2024-02-05 15:00+00'), (NULL);
SELECT is((SELECT post_purchase.purchase_cycle(ordered_at) FROM hand_cycle),
	row(4, interval '10 days', interval '11 days 16 hours', '2024-02-05 15:00+00', '2024-02-15 15:00+00')
		::post_purchase.purchase_cycle_result,
	'purchase_cycle of gaps 10, 20, 5 days: median 10 days, mean 11 days 16 hours');
-- gaps 3, 6, 10, 1: median (3 + 6) / 2 = 4.5 days, mean 20 / 4 = 5 days
SELECT is((SELECT post_purchase.purchase_cycle(t)
		   FROM (VALUES ('2024-01-01 00:00+00'::timestamptz), ('2024-01-04 00:00+00'), ('2024-01-10 00:00+00'),
						('2024-01-20 00:00+00'), ('2024-01-21 06:00+00')) v(t)),
	row(5, interval '4 days 12 hours', interval '5 days', '2024-01-21 06:00+00', '2024-01-25 18:00+00')
		::post_purchase.purchase_cycle_result,
	'purchase_cycle with an even number of gaps: median 4.5 days');
SELECT is((SELECT post_purchase.purchase_cycle(t)
		   FROM (VALUES ('2024-03-01 09:00+00'::timestamptz), ('2024-03-01 17:00+00')) v(t)),
	row(1, NULL, NULL, '2024-03-01 17:00+00', NULL)::post_purchase.purchase_cycle_result,
	'one purchase day: no interval and no due date');
SELECT is((SELECT (post_purchase.purchase_cycle(t ORDER BY n)).last_purchase
		   FROM (VALUES (1, '2024-03-01 17:00+00'::timestamptz), (2, '2024-03-01 09:00+00')) v(n, t)),
	'2024-03-01 17:00+00'::timestamptz,
	'last_purchase is the latest order even when an earlier one on the same day comes after it');
-- eight distinct days out of order, then the latest again: still 8 days
-- (a repeat of the largest day right when the day array fills up)
SELECT is((SELECT array[(post_purchase.purchase_cycle(t ORDER BY n)).purchases,
					   (post_purchase.rfm_summary(t, 1, '2024-02-01' ORDER BY n)).frequency]
		   FROM (SELECT n, '2024-01-01 12:00+00'::timestamptz + d * interval '1 day' AS t
				 FROM unnest(ARRAY[8, 1, 2, 3, 4, 5, 6, 7, 8]) WITH ORDINALITY AS u(d, n)) x),
	ARRAY[8, 7]::bigint[],
	'a repeated day is counted once, whatever the input order: 8 purchase days, frequency 7');
SELECT is((SELECT post_purchase.purchase_cycle(t) FROM (VALUES ('2024-03-01'::timestamptz)) v(t) WHERE false),
	NULL, 'purchase_cycle of no rows is NULL');

-- generated histories against lag() and percentile_cont() over purchase days
SELECT is_empty($$
	WITH by_agg AS (
		SELECT customer, (p).purchases, extract(epoch FROM (p).median_interval) AS median_s,
			   round(extract(epoch FROM (p).mean_interval)) AS mean_s, (p).last_purchase, (p).next_due
		FROM (SELECT customer, post_purchase.purchase_cycle(ordered_at) p FROM pgtap_orders GROUP BY customer) x),
	days AS (
		SELECT customer, (ordered_at AT TIME ZONE 'UTC')::date AS d FROM pgtap_orders GROUP BY 1, 2),
	gaps AS (
		SELECT customer, d, d - lag(d) OVER (PARTITION BY customer ORDER BY d) AS gap FROM days),
	by_formula AS (
		SELECT g.customer, count(*) AS purchases,
			   (percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) * 86400)::numeric AS median_s,
			   round((max(d) - min(d)) * 86400.0 / NULLIF(count(*) - 1, 0)) AS mean_s,
			   (SELECT max(ordered_at) FROM pgtap_orders o WHERE o.customer = g.customer) AS last_purchase
		FROM gaps g GROUP BY g.customer)
	SELECT * FROM by_agg FULL JOIN by_formula f USING (customer)
	WHERE (by_agg.purchases, by_agg.median_s, by_agg.mean_s, by_agg.last_purchase)
		  IS DISTINCT FROM (f.purchases, f.median_s, f.mean_s, f.last_purchase)
	   OR by_agg.next_due IS DISTINCT FROM f.last_purchase + f.median_s * interval '1 second'$$,
	'purchase_cycle equals lag()/percentile_cont() over purchase days for every generated customer');
SELECT ok((SELECT count(*) FROM (SELECT customer FROM pgtap_orders GROUP BY customer
								 HAVING count(DISTINCT (ordered_at AT TIME ZONE 'UTC')::date) = 1) x) > 0
	   AND (SELECT count(*) FROM (SELECT customer FROM pgtap_orders GROUP BY customer
								  HAVING count(DISTINCT (ordered_at AT TIME ZONE 'UTC')::date) > 5) y) > 0
	   AND (SELECT count(*) FROM (SELECT customer FROM pgtap_orders GROUP BY customer
								  HAVING count(DISTINCT (ordered_at AT TIME ZONE 'UTC')::date) < count(*)) z) > 0,
	'the generated data has one-day histories, long ones, and same-day orders');

RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET enable_hashagg;
RESET parallel_leader_participation;

SELECT is(post_purchase.replenishment_due('2024-01-01 10:00+00', 3, 10), '2024-01-31 10:00+00'::timestamptz,
	'3 units of 10 days are due 30 days later');
SELECT is(post_purchase.replenishment_due('2024-01-01 10:00+00', 3, 0.5), '2024-01-02 22:00+00'::timestamptz,
	'3 units of half a day are due 36 hours later');
SELECT is(post_purchase.replenishment_due('2024-01-01 10:00+00', 0, 10), '2024-01-01 10:00+00'::timestamptz,
	'zero quantity is due at once');
SET LOCAL TimeZone = 'America/New_York';
-- clocks go forward on 2024-03-10 in New York: 24 hours after noon on the 9th is 13:00 EDT
SELECT is(post_purchase.replenishment_due('2024-03-09 12:00', 1, 1), '2024-03-10 13:00'::timestamptz,
	'replenishment_due counts days of 24 hours, across a DST change');
SET LOCAL TimeZone = 'UTC';
SELECT is(post_purchase.replenishment_due(NULL, 1, 1), NULL, 'replenishment_due of a NULL purchase is NULL');
SELECT is(post_purchase.replenishment_due('infinity', 1, 1), 'infinity'::timestamptz,
	'replenishment_due of an infinite purchase time is infinite');

------------------------------------------------------------------------------
-- rfm_segment
------------------------------------------------------------------------------

SELECT is((SELECT count(*)::int FROM generate_series(1, 5) r, generate_series(1, 5) f
		   WHERE post_purchase.rfm_segment(r, f) IS NOT NULL),
	25, 'rfm_segment names every one of the 25 (r, f) pairs');
SELECT set_eq($$SELECT DISTINCT post_purchase.rfm_segment(r, f) FROM generate_series(1, 5) r, generate_series(1, 5) f$$,
	ARRAY['Champions', 'Loyal Customers', 'Potential Loyalists', 'New Customers', 'Promising',
		  'Need Attention', 'About to Sleep', 'At Risk', 'Can''t Lose Them', 'Hibernating'],
	'the 25 pairs yield exactly the ten named segments');
-- the standard R x F grid, written out here rather than read from the code
SELECT is_empty($$
	SELECT r, f, post_purchase.rfm_segment(r, f), expected
	FROM (VALUES
		(5, 5, 'Champions'), (5, 4, 'Champions'),
		(4, 5, 'Loyal Customers'), (4, 4, 'Loyal Customers'), (3, 5, 'Loyal Customers'), (3, 4, 'Loyal Customers'),
		(5, 3, 'Potential Loyalists'), (5, 2, 'Potential Loyalists'),
		(4, 3, 'Potential Loyalists'), (4, 2, 'Potential Loyalists'),
		(5, 1, 'New Customers'), (4, 1, 'Promising'), (3, 3, 'Need Attention'),
		(3, 2, 'About to Sleep'), (3, 1, 'About to Sleep'),
		(2, 4, 'At Risk'), (2, 3, 'At Risk'), (1, 4, 'At Risk'), (1, 3, 'At Risk'),
		(2, 5, 'Can''t Lose Them'), (1, 5, 'Can''t Lose Them'),
		(2, 2, 'Hibernating'), (2, 1, 'Hibernating'), (1, 2, 'Hibernating'), (1, 1, 'Hibernating')
	) AS grid(r, f, expected)
	WHERE post_purchase.rfm_segment(r, f) IS DISTINCT FROM expected$$,
	'rfm_segment follows the standard R x F grid in all 25 cells');
SELECT is(post_purchase.rfm_segment(NULL, 3), NULL, 'rfm_segment of a NULL score is NULL');

------------------------------------------------------------------------------
-- errors, by SQLSTATE
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT post_purchase.nps(s) FROM (VALUES (10), (11)) v(s)$$, '22003',
	'NPS score 11 is out of range', 'nps: score 11 is 22003 numeric_value_out_of_range');
SELECT throws_ok($$SELECT post_purchase.nps(-1)$$, '22003', NULL, 'nps: score -1 is 22003');
SELECT throws_ok($$SELECT post_purchase.nps_summary(s) FROM (VALUES (0), (2147483647)) v(s)$$, '22003', NULL,
	'nps_summary: score 2147483647 is 22003');
SELECT throws_ok($$SELECT post_purchase.nps(CASE WHEN i = 59999 THEN 12 ELSE i % 11 END)
				   FROM generate_series(1, 60000) i$$, '22003', NULL,
	'nps: one bad score among 60000 good ones is still an error');
SELECT throws_ok($$SELECT post_purchase.rfm_segment(0, 3)$$, '22003', NULL, 'rfm_segment: r score 0 is 22003');
SELECT throws_ok($$SELECT post_purchase.rfm_segment(3, 6)$$, '22003', NULL, 'rfm_segment: f score 6 is 22003');
SELECT throws_ok($$SELECT post_purchase.replenishment_due('2024-01-01', -1, 10)$$, '22023', NULL,
	'replenishment_due: a negative quantity is 22023 invalid_parameter_value');
SELECT throws_ok($$SELECT post_purchase.replenishment_due('2024-01-01', 1, 'NaN')$$, '22023', NULL,
	'replenishment_due: NaN days_per_unit is 22023');
SELECT throws_ok($$SELECT post_purchase.replenishment_due('294270-01-01', 1000, 1000)$$, '22008', NULL,
	'replenishment_due: a due date past the timestamp range is 22008');
SELECT throws_ok($$SELECT post_purchase.rfm_summary(now(), 1, now(), '0 days')$$, '22023', NULL,
	'rfm_summary: a zero unit is 22023');
SELECT throws_ok($$SELECT post_purchase.rfm_summary(now(), 1, NULL)$$, '22004', NULL,
	'rfm_summary: a NULL observed_until is 22004 null_value_not_allowed');
SELECT throws_ok($$SELECT post_purchase.rfm_summary(now(), 1, 'infinity')$$, '22008', NULL,
	'rfm_summary: an infinite observed_until is 22008');
SELECT throws_ok($$SELECT post_purchase.rfm_summary(now(), 'NaN', now())$$, '22023', NULL,
	'rfm_summary: a NaN amount is 22023');
SELECT throws_ok($$SELECT post_purchase.rfm_summary(t, 1, t) FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-02')) v(t)$$,
	'22023', NULL, 'rfm_summary: observed_until changing within a group is 22023');
SELECT throws_ok($$SELECT post_purchase.purchase_cycle('infinity')$$, '22008', NULL,
	'purchase_cycle: an infinite purchase time is 22008');

SELECT * FROM finish();
ROLLBACK;
