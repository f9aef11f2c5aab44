-- Every kind of bad input, each with its SQLSTATE or its documented handling.
\set SHOW_CONTEXT never
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

-- purchase_totals: NaN and infinite amounts (22023), infinite order times
-- (22008; an infinite time is no order after the end here, since every
-- order counts), NULL, unknown and changing zones (22004, 22023)
SELECT post_purchase.purchase_totals(now(), 'NaN'::numeric, 'UTC');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.purchase_totals(now(), '-Infinity'::numeric, 'UTC');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.purchase_totals('infinity'::timestamptz, 1.0, 'UTC');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.purchase_totals('-infinity'::timestamptz, 1.0, 'UTC');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.purchase_totals(now(), 1.0, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.purchase_totals(now(), 1.0, 'Mars/Olympus_Mons');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.purchase_totals(t, 1.0, z)
FROM (VALUES ('2024-01-01'::timestamptz, 'UTC'), ('2024-01-02', 'Europe/Berlin')) v(t, z);
\echo :LAST_ERROR_SQLSTATE
-- the zones meeting only where partial states combine (one zone in each
-- partition, aggregated partition by partition): the error names the
-- aggregate the combine function serves, with its hint
CREATE TABLE zoned_orders (customer int, at timestamptz, amount numeric, zone text) PARTITION BY LIST (zone);
CREATE TABLE zoned_orders_utc PARTITION OF zoned_orders FOR VALUES IN ('UTC');
CREATE TABLE zoned_orders_berlin PARTITION OF zoned_orders FOR VALUES IN ('Europe/Berlin');
INSERT INTO zoned_orders SELECT c % 3, '2024-03-01 23:30+00', 5, z
FROM generate_series(1, 3000) c, unnest(ARRAY['UTC', 'Europe/Berlin']) z;
ANALYZE zoned_orders;
SET enable_partitionwise_aggregate = on;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF) SELECT customer, post_purchase.purchase_totals(at, amount, zone) FROM zoned_orders GROUP BY customer;
SELECT customer, post_purchase.purchase_totals(at, amount, zone) FROM zoned_orders GROUP BY customer;
\echo :LAST_ERROR_SQLSTATE
SELECT customer, post_purchase.rfm_summary(at, amount, '2024-06-01', '1 day', zone) FROM zoned_orders GROUP BY customer;
\echo :LAST_ERROR_SQLSTATE
RESET enable_partitionwise_aggregate;
RESET max_parallel_workers_per_gather;
DROP TABLE zoned_orders;

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

-- BG/NBD and Gamma-Gamma inputs (22023 unless said otherwise)
CREATE TEMP TABLE bg_model AS
SELECT ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model AS m,
	   ROW(6.25, 3.74, 15.44, NULL, NULL, true)::post_purchase.gamma_gamma_model AS g;
-- negative or fractional frequency
SELECT post_purchase.bgnbd_p_alive(m, -1, 0, 10) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_fit(f, 1, 10) FROM (VALUES (1.5::float8)) v(f);
\echo :LAST_ERROR_SQLSTATE
-- recency > t, negative t, recency without repeat purchases
SELECT post_purchase.bgnbd_expected_purchases(m, 2, 11, 10, 39) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_p_alive(m, 0, 0, -1) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_p_alive(m, 0, 3, 10) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
-- NaN and infinity
SELECT post_purchase.bgnbd_p_alive(m, 'NaN', 0, 10) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_expected_purchases(m, 1, 5, 10, 'Infinity') FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
-- a negative horizon or purchase count
SELECT post_purchase.bgnbd_expected_purchases(m, -1) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_probability_of_purchases(m, 39, -1) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
-- NULLs: STRICT scoring functions give NULL; the fits skip the row
SELECT post_purchase.bgnbd_p_alive(m, NULL, 0, 10) IS NULL AS is_null FROM bg_model;
SELECT (post_purchase.bgnbd_fit(f, r, t)).customers
FROM (VALUES (1::float8, 5::float8, 10::float8), (NULL, 0, 10), (0, 0, 8), (2, 3, 9)) v(f, r, t);
-- a model that did not converge, or with impossible parameters
SELECT post_purchase.bgnbd_p_alive(ROW(0.24, 4.4, 0.79, 2.4, NULL, NULL, false)::post_purchase.bgnbd_model, 1, 5, 10);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_p_alive(ROW(-0.24, 4.4, 0.79, 2.4, NULL, NULL, true)::post_purchase.bgnbd_model, 1, 5, 10);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_p_alive(ROW(NULL, 4.4, 0.79, 2.4, NULL, NULL, true)::post_purchase.bgnbd_model, 1, 5, 10);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.gamma_gamma_expected_value(ROW(6.25, 0.9, 15.44, NULL, NULL, true)::post_purchase.gamma_gamma_model, 2, 10);
\echo :LAST_ERROR_SQLSTATE
-- too few customers to fit; no rows give NULL
SELECT post_purchase.bgnbd_fit(f, r, t) FROM (VALUES (0::float8, 0::float8, 10::float8), (0, 0, 12)) v(f, r, t);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.gamma_gamma_fit(f, m) FROM (VALUES (2::float8, 10::float8)) v(f, m);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.bgnbd_fit(f, f, f) IS NULL AS no_rows FROM (VALUES (1::float8)) v(f) WHERE false;
-- non-positive spend of a repeat buyer; one-time buyers are skipped
SELECT post_purchase.gamma_gamma_fit(f, m) FROM (VALUES (2::float8, 0::float8)) v(f, m);
\echo :LAST_ERROR_SQLSTATE
-- a repeat buyer's negative mean spend (refunds exceeding the purchases);
-- a mean of 0 is valid (sql/customer_metrics.sql)
SELECT post_purchase.gamma_gamma_expected_value(g, 3, -5) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.clv(m, g, 1, 5, 10, -0.01, 12, 0.01) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT (post_purchase.gamma_gamma_fit(f, m)).customers
FROM (VALUES (0::float8, 0::float8), (1, 10), (2, 20), (3, 15)) v(f, m);
-- negative weights
SELECT post_purchase.bgnbd_fit(1, 5, 10, -1);
\echo :LAST_ERROR_SQLSTATE
-- clv: months out of range, discount rate of -100% or less, zero unit
SELECT post_purchase.clv(m, g, 1, 5, 10, 20, -1, 0.01) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.clv(m, g, 1, 5, 10, 20, 12, -1) FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.clv(m, g, 1, 5, 10, 20, 12, 0.01, '0 days') FROM bg_model;
\echo :LAST_ERROR_SQLSTATE
-- bgnbd_simulate: negative sizes
SELECT * FROM post_purchase.bgnbd_simulate((SELECT m FROM bg_model), -1, 39);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.bgnbd_simulate((SELECT m FROM bg_model), 10, -39);
\echo :LAST_ERROR_SQLSTATE

-- tracking: missing and wrongly typed columns (42703, 42804), not a table
-- (42809), a second table (55000), untracked table (55000); nothing is left
-- half-created
CREATE TABLE bad_orders (id int, customer_id bigint, ordered_at timestamptz, amount numeric, note text, day date);
SELECT post_purchase.track_orders('bad_orders', customer_column => 'buyer');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_orders('bad_orders', ordered_at_column => 'day');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_orders('bad_orders', amount_column => 'note');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW bad_orders_view AS SELECT * FROM bad_orders;
SELECT post_purchase.track_orders('bad_orders_view');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.untrack_orders('bad_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS tracked FROM post_purchase.tracked_orders;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'bad_orders'::regclass;
-- a NaN amount already in the table stops the backfill, and nothing is tracked
INSERT INTO bad_orders VALUES (1, 1, '2024-01-01', 'NaN');
SELECT post_purchase.track_orders('bad_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS tracked FROM post_purchase.tracked_orders;
-- so does an infinite order time, which has no purchase day (22008), as
-- the trigger refuses it with the order
UPDATE bad_orders SET amount = 1, ordered_at = 'infinity';
SELECT post_purchase.track_orders('bad_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS tracked FROM post_purchase.tracked_orders;
DELETE FROM bad_orders;
SELECT post_purchase.track_orders('bad_orders');
CREATE TABLE other_orders (LIKE bad_orders);
SELECT post_purchase.track_orders('other_orders');
\echo :LAST_ERROR_SQLSTATE
-- once tracked: NaN and infinite amounts are refused with the order
INSERT INTO bad_orders VALUES (2, 1, '2024-01-01', 'Infinity');
\echo :LAST_ERROR_SQLSTATE
-- a renamed column stops orders until tracking is redone
ALTER TABLE bad_orders RENAME COLUMN amount TO total;
INSERT INTO bad_orders VALUES (3, 1, '2024-01-01', 5);
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE bad_orders RENAME COLUMN total TO amount;
-- only the extension's owner may track tables
CREATE ROLE tracking_intruder;
SET ROLE tracking_intruder;
SELECT post_purchase.untrack_orders('bad_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.customer_state;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE tracking_intruder;
SELECT post_purchase.untrack_orders('bad_orders');
DROP VIEW bad_orders_view;
DROP TABLE bad_orders, other_orders;

-- segments: bad rules (42601, 42703, 42846), duplicate names (42710), unknown
-- segments (42704), rules smuggling statements or clauses (42601)
SELECT post_purchase.create_segment('typo', 'revenu > 100');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('not boolean', 'revenue');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('broken', 'revenue >');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('empty', ' ');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('vip', 'true');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('evil', 'true); DROP TABLE post_purchase.segments; SELECT (true');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('evil', 'true) UNION SELECT (false');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.create_segment('evil', 'true) FROM pg_authid WHERE (true');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.drop_segment('no such segment');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.set_segment_rule('no such segment', 'true');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS segments FROM post_purchase.segments;

-- tracking needs READ COMMITTED: a transaction snapshot would hide orders
-- committed while the backfill waited for its lock (55000)
CREATE TABLE rr_orders (customer_id bigint, ordered_at timestamptz, amount numeric);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT post_purchase.track_orders('rr_orders');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
DROP TABLE rr_orders;
