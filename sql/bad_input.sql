-- Every kind of bad input, each with its SQLSTATE or its documented handling.
SET TimeZone = 'UTC';

-- nps: a score outside 0..10 is an error naming the valid range (22003)
SELECT post_purchase.nps(s) FROM (VALUES (10), (11)) v(s);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.nps(s) FROM (VALUES (-1)) v(s);
\echo :LAST_ERROR_SQLSTATE
SELECT (post_purchase.nps_summary(s)).* FROM (VALUES (2147483647)) v(s);
\echo :LAST_ERROR_SQLSTATE
-- nps: NULL scores are ignored
SELECT post_purchase.nps(s) FROM (VALUES (NULL::int), (10)) v(s);

-- rfm_summary: NaN and infinite amounts are errors (22023)
SELECT post_purchase.rfm_summary(now(), 'NaN'::numeric, now());
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_summary(now(), 'Infinity'::numeric, now());
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_summary(now(), '-Infinity'::numeric, now());
\echo :LAST_ERROR_SQLSTATE
-- rfm_summary: infinite order times and observation ends (22008)
SELECT post_purchase.rfm_summary('-infinity'::timestamptz, 1.0, '2024-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_summary('2024-01-01', 1.0, 'infinity');
\echo :LAST_ERROR_SQLSTATE
-- rfm_summary: zero, negative and NULL units (22023, 22004)
SELECT post_purchase.rfm_summary('2024-01-01', 1.0, '2024-02-01', '0 days');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_summary('2024-01-01', 1.0, '2024-02-01', '-7 days');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_summary('2024-01-01', 1.0, '2024-02-01', '1 month -30 days');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_summary('2024-01-01', 1.0, '2024-02-01', NULL);
\echo :LAST_ERROR_SQLSTATE
-- rfm_summary: NULL observed_until (22004)
SELECT post_purchase.rfm_summary('2024-01-01', 1.0, NULL);
\echo :LAST_ERROR_SQLSTATE
-- rfm_summary: observed_until that changes within a group (22023)
SELECT post_purchase.rfm_summary(t, 1.0, t)
FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-02')) v(t);
\echo :LAST_ERROR_SQLSTATE
-- rfm_summary: observed_until before every order gives NULL (not a customer
-- yet), so a calibration query over all customers keeps working
SELECT post_purchase.rfm_summary(t, 1.0, '2023-12-31') IS NULL AS not_yet_a_customer
FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-02')) v(t);
-- rfm_summary: orders after observed_until are not even validated
SELECT (post_purchase.rfm_summary(t, a, '2024-01-01')).frequency
FROM (VALUES ('2024-01-01'::timestamptz, 1.0), ('2024-01-02', 'NaN')) v(t, a);

-- purchase_cycle: infinite order times (22008)
SELECT post_purchase.purchase_cycle(t) FROM (VALUES ('2024-01-01'::timestamptz), ('infinity')) v(t);
\echo :LAST_ERROR_SQLSTATE

-- replenishment_due: negative quantities and cycles, NaN, infinity (22023)
SELECT post_purchase.replenishment_due('2024-01-01', -1, 30);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.replenishment_due('2024-01-01', 1, -30);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.replenishment_due('2024-01-01', 'NaN', 30);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.replenishment_due('2024-01-01', 1, 'Infinity');
\echo :LAST_ERROR_SQLSTATE
-- replenishment_due: a due date past the timestamp range (22008)
SELECT post_purchase.replenishment_due('2024-01-01', 1e9, 1e9);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.replenishment_due('294276-12-01', 1, 60);
\echo :LAST_ERROR_SQLSTATE

-- rfm_segment: scores outside 1..5 (22003)
SELECT post_purchase.rfm_segment(0, 3);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.rfm_segment(3, 6);
\echo :LAST_ERROR_SQLSTATE

-- the support functions of the aggregates cannot be reached from SQL
SELECT post_purchase.nps_final(NULL);
\echo :LAST_ERROR_SQLSTATE
