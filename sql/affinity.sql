-- Complementary products: product_affinity on a basket set small enough to
-- count by hand, recommend_products(), {{recommendations}} in payloads, and
-- the bad input.  Times are whole days before today, so the recommendations'
-- "recently" and "not due yet" are fixed however the test is run.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE TABLE aff_orders (order_id int PRIMARY KEY, customer_id text, ordered_at timestamptz, amount numeric);
CREATE TABLE aff_items (order_id int REFERENCES aff_orders, product_id text, quantity int);
CREATE INDEX ON aff_items (order_id);
-- the products (and their cycles) of the tests before are put aside and back at the end
CREATE TEMP TABLE aff_saved_products AS SELECT * FROM post_purchase.products;
CREATE TEMP TABLE aff_saved_cycles AS SELECT * FROM post_purchase.product_cycles;
DELETE FROM post_purchase.products;
DELETE FROM post_purchase.product_cycles;
-- coffee lasts 30 days a unit, filters 200; tea has no name; gift is not a known product
INSERT INTO post_purchase.products VALUES ('coffee', 'Coffee beans', 30), ('filters', 'Paper filters', 200),
	('mugs', 'Mugs', NULL), ('tea', NULL, NULL);
SELECT post_purchase.track_orders('aff_orders');
SELECT post_purchase.track_order_items('aff_items');
CREATE FUNCTION pg_temp.day(d int) RETURNS timestamptz LANGUAGE sql
	AS $$SELECT date_trunc('day', now()) - d * interval '1 day' + interval '10 hours'$$;
--   c1: o1 (day -100) coffee, filters; o2 (day -80) mugs
--   c2: o3 (day -100) coffee, filters, mugs
--   c3: o4 (day -60) coffee; o5 (day -50) filters
--   c4: o6 (day -40) tea, mugs; o7 (day -5) coffee (35 days later)
--   c5: o8 (day -20) coffee, gift
INSERT INTO aff_orders VALUES (1, 'c1', pg_temp.day(100), 10), (2, 'c1', pg_temp.day(80), 10),
	(3, 'c2', pg_temp.day(100), 10), (4, 'c3', pg_temp.day(60), 10), (5, 'c3', pg_temp.day(50), 10),
	(6, 'c4', pg_temp.day(40), 10), (7, 'c4', pg_temp.day(5), 10), (8, 'c5', pg_temp.day(20), 10);
INSERT INTO aff_items VALUES (1, 'coffee', 1), (1, 'filters', 1), (2, 'mugs', 1),
	(3, 'coffee', 1), (3, 'filters', 1), (3, 'mugs', 1), (4, 'coffee', 1), (5, 'filters', 1),
	(6, 'tea', 1), (6, 'mugs', 1), (7, 'coffee', 1), (8, 'coffee', 1), (8, 'gift', 1);

-- By hand.  Same order: N = 8 orders; orders with coffee 5, filters 3,
-- mugs 3, tea 1, gift 1; both: coffee+filters 2 (o1, o3), coffee+mugs 1,
-- filters+mugs 1, mugs+tea 1, coffee+gift 1.  Sequence, window 30 days:
-- C = 5 customers; customers with coffee 5, filters 3, mugs 3, tea 1,
-- gift 1; c1 bought mugs 20 days after coffee and filters, c3 filters 10
-- days after coffee; c2's and c5's are one order each (not "after"), c4's
-- coffee came 35 days after tea and mugs (outside).
CREATE TEMP TABLE aff_expected (a text, kind text, b text, pair bigint, a_n bigint, b_n bigint, total bigint,
								support float8, confidence float8, lift float8);
INSERT INTO aff_expected VALUES
	('coffee', 'same_order', 'filters', 2, 5, 3, 8, 2/8::float8, 2/5::float8, 16/15::float8),
	('filters', 'same_order', 'coffee', 2, 3, 5, 8, 2/8::float8, 2/3::float8, 16/15::float8),
	('coffee', 'same_order', 'mugs', 1, 5, 3, 8, 1/8::float8, 1/5::float8, 8/15::float8),
	('mugs', 'same_order', 'coffee', 1, 3, 5, 8, 1/8::float8, 1/3::float8, 8/15::float8),
	('filters', 'same_order', 'mugs', 1, 3, 3, 8, 1/8::float8, 1/3::float8, 8/9::float8),
	('mugs', 'same_order', 'filters', 1, 3, 3, 8, 1/8::float8, 1/3::float8, 8/9::float8),
	('mugs', 'same_order', 'tea', 1, 3, 1, 8, 1/8::float8, 1/3::float8, 8/3::float8),
	('tea', 'same_order', 'mugs', 1, 1, 3, 8, 1/8::float8, 1., 8/3::float8),
	('coffee', 'same_order', 'gift', 1, 5, 1, 8, 1/8::float8, 1/5::float8, 8/5::float8),
	('gift', 'same_order', 'coffee', 1, 1, 5, 8, 1/8::float8, 1., 8/5::float8),
	('coffee', 'sequence', 'mugs', 1, 5, 3, 5, 1/5::float8, 1/5::float8, 1/3::float8),
	('filters', 'sequence', 'mugs', 1, 3, 3, 5, 1/5::float8, 1/3::float8, 5/9::float8),
	('coffee', 'sequence', 'filters', 1, 5, 3, 5, 1/5::float8, 1/5::float8, 1/3::float8);
-- a float8 division of two integers is the float8 nearest the fraction,
-- as the extension's ratios must be: compared for equality
SELECT post_purchase.refresh_product_affinity('30 days', 0, 0) AS pairs_kept;
SELECT product_a, kind, product_b, pair_count, a_count, b_count, total,
	   round(support::numeric, 4) AS support, round(confidence::numeric, 4) AS confidence,
	   round(lift::numeric, 4) AS lift, window_length
FROM post_purchase.product_affinity ORDER BY kind, product_a, product_b;
SELECT coalesce(e.a, x.product_a) AS a, coalesce(e.kind, x.kind) AS kind, coalesce(e.b, x.product_b) AS b,
	   e.a IS NOT NULL AS expected, x.product_a IS NOT NULL AS computed
FROM aff_expected e
FULL JOIN post_purchase.product_affinity x
  ON x.product_a = e.a AND x.kind = e.kind AND x.product_b = e.b AND x.pair_count = e.pair
 AND x.a_count = e.a_n AND x.b_count = e.b_n AND x.total = e.total
 AND x.support = e.support AND x.confidence = e.confidence AND x.lift = e.lift
WHERE e.a IS NULL OR x.product_a IS NULL;

-- the window's end is included: at 35 days c4's coffee follows tea and mugs
SELECT post_purchase.refresh_product_affinity('35 days', 0, 0) AS pairs_kept;
SELECT product_a, product_b, pair_count, a_count, b_count, total
FROM post_purchase.product_affinity WHERE kind = 'sequence' ORDER BY product_a, product_b;

-- a window in months is calendar months (affinity_pairs adds it with the
-- calendar, in UTC): 1 month holds c1's 20 and c3's 10 days but never c4's
-- 35, 2 months always do
SELECT post_purchase.refresh_product_affinity('1 mon', 0, 0) AS pairs_kept;
SELECT product_a, product_b, pair_count, window_length
FROM post_purchase.product_affinity WHERE kind = 'sequence' ORDER BY product_a, product_b;
SELECT post_purchase.refresh_product_affinity('2 mons', 0, 0) AS pairs_kept;
SELECT product_a, product_b, pair_count, window_length
FROM post_purchase.product_affinity WHERE kind = 'sequence' ORDER BY product_a, product_b;

-- thresholds: support >= 0.2 leaves coffee+filters (0.25) among same-order
-- pairs, confidence >= 0.5 only filters -> coffee (2/3); the sequences'
-- confidences (1/5, 1/3) are all below
SELECT post_purchase.refresh_product_affinity('30 days', 0.2, 0.5) AS pairs_kept;
SELECT product_a, kind, product_b, pair_count FROM post_purchase.product_affinity;
-- on the boundary a pair is kept (support exactly 0.25, confidence exactly 0.4)
SELECT post_purchase.refresh_product_affinity('30 days', 0.25, 0.4) AS pairs_kept;
SELECT product_a, kind, product_b, support, confidence FROM post_purchase.product_affinity ORDER BY 1;

-- from the settings (window 30 days, no minimum)
UPDATE post_purchase.settings SET value = '30 days' WHERE name = 'affinity_window';
UPDATE post_purchase.settings SET value = '0' WHERE name IN ('affinity_min_support', 'affinity_min_confidence');
SELECT post_purchase.refresh_product_affinity() AS pairs_kept;

-- Recommendations, scored lift x confidence, the best pair per product.
-- c1 (coffee and filters 100 days ago, mugs 80): tea via mugs (1/3 x 8/3),
-- coffee via filters (2/3 x 16/15; coffee ran out 70 days ago), gift via
-- coffee (1/5 x 8/5), mugs via filters (1/3 x 8/9); filters are not due
-- before day +100, so not recommended.
SELECT product_id, name, round(score::numeric, 6) AS score, because_of, reason
FROM post_purchase.recommend_products('c1', 10);
SELECT round(8/9., 6) AS tea, round(32/45., 6) AS coffee, round(8/25., 6) AS gift, round(8/27., 6) AS mugs;
-- c4 (tea and mugs 40 days ago, coffee 5 days ago: recent, left out):
-- mugs via tea (1 x 8/3; the reason names tea by its id, it has no name),
-- tea via mugs, filters via coffee (2/5 x 16/15)
SELECT product_id, name, round(score::numeric, 6) AS score, because_of, reason
FROM post_purchase.recommend_products('c4');
-- a sequence's reason names the window; c3 (coffee, then filters) with
-- the sequences alone: mugs via filters (1/3 x 5/9) beats via coffee (1/5 x 1/3)
BEGIN;
DELETE FROM post_purchase.product_affinity WHERE kind = 'same_order';
SELECT product_id, name, round(score::numeric, 6) AS score, because_of, reason
FROM post_purchase.recommend_products('c3');
ROLLBACK;
-- n: the best n; more than there are gives them all
SELECT count(*) FROM post_purchase.recommend_products('c1', 1);
SELECT count(*) FROM post_purchase.recommend_products('c1', 2147483647);
-- a customer with no purchases, an unknown one, NULL: no rows
SELECT count(*) FROM post_purchase.recommend_products('nobody');
SELECT count(*) FROM post_purchase.recommend_products(NULL);
-- n <= 0 or NULL: 22023
\set VERBOSITY sqlstate
SELECT * FROM post_purchase.recommend_products('c1', 0);
SELECT * FROM post_purchase.recommend_products('c1', -1);
SELECT * FROM post_purchase.recommend_products('c1', NULL);
\set VERBOSITY default
SELECT * FROM post_purchase.recommend_products('c1', 0);

-- {{recommendations}}: a JSON array (name null for a nameless or unknown product)
SELECT jsonb_pretty(post_purchase.recommendations_json('c1'));
SELECT post_purchase.recommendations_json('nobody') AS none;
SELECT post_purchase.render_message('{"r": "{{recommendations}}", "t": "for you: {{recommendations}}"}', '{}',
	NULL, 'c4', 'j', 's', NULL, 'email', NULL, 1, NULL);
-- the enrollment's context wins; no customer, no recommendations
SELECT post_purchase.render_message('{"r": "{{recommendations}}"}', '{"recommendations": [1]}',
	NULL, 'c4', 'j', 's', NULL, 'email', NULL, 1, NULL) AS context_wins,
	post_purchase.render_message('{"r": "{{recommendations}}"}', '{}',
	NULL, NULL, 'j', 's', NULL, 'email', NULL, 1, NULL) AS no_customer;
-- render_payload() has no customer to look up: the context alone
SELECT post_purchase.render_payload('{"r": "{{recommendations}}"}', '{"customer_id": "c1"}') AS payload_only;
-- the cross-sell seed journey's message carries them
SELECT post_purchase.render_message(s.payload, '{}', NULL, 'c1', s.journey, s.step, NULL, 'email', NULL, 1, NULL)
	-> 'recommendations' AS cross_sell
FROM post_purchase.journey_steps s WHERE s.journey = 'cross_sell';

-- Bad input: windows of zero, negative or absurd length, thresholds
-- outside 0..1 or NaN, settings that do not parse or are missing: 22023
\set VERBOSITY sqlstate
SELECT post_purchase.refresh_product_affinity('0');
SELECT post_purchase.refresh_product_affinity('-1 day');
SELECT post_purchase.refresh_product_affinity('1 mon -31 days');
SELECT post_purchase.refresh_product_affinity('101 years');
SELECT post_purchase.refresh_product_affinity('1 day', 1.5);
SELECT post_purchase.refresh_product_affinity('1 day', -0.1);
SELECT post_purchase.refresh_product_affinity('1 day', 'NaN');
SELECT post_purchase.refresh_product_affinity('1 day', 0, 2);
SELECT post_purchase.refresh_product_affinity('1 day', 0, 'NaN');
-- the C counter behind it checks what it relies on, if called directly
SELECT count(*) FROM post_purchase.affinity_pairs(NULL, 0, 0);
SELECT count(*) FROM post_purchase.affinity_pairs('-1 day', 0, 0);
\set VERBOSITY default
SELECT post_purchase.refresh_product_affinity('0');
SELECT post_purchase.refresh_product_affinity('1 day', 1.5);
UPDATE post_purchase.settings SET value = 'soon' WHERE name = 'affinity_window';
SELECT post_purchase.refresh_product_affinity();
SELECT * FROM post_purchase.recommend_products('c1');
UPDATE post_purchase.settings SET value = '-7 days' WHERE name = 'affinity_window';
SELECT post_purchase.refresh_product_affinity();
UPDATE post_purchase.settings SET value = 'lots' WHERE name = 'affinity_min_support';
SELECT post_purchase.refresh_product_affinity('1 day');
DELETE FROM post_purchase.settings WHERE name = 'affinity_min_confidence';
SELECT post_purchase.refresh_product_affinity('1 day', 0);
-- a failed refresh keeps the pairs there were
SELECT count(*) FROM post_purchase.product_affinity;
INSERT INTO post_purchase.settings VALUES ('affinity_min_confidence', '0.01', 'x');
UPDATE post_purchase.settings SET value = '90 days' WHERE name = 'affinity_window';
UPDATE post_purchase.settings SET value = '0.0001' WHERE name = 'affinity_min_support';
UPDATE post_purchase.settings SET description = s.description
FROM (VALUES ('affinity_min_confidence', 'refresh_product_affinity keeps a pair A -> B when the share of A''s orders (or customers) that also have B is at least this (0..1)')) s(name, description)
WHERE settings.name = s.name;

-- no items: nothing to pair, and no rows
DELETE FROM aff_items;
SELECT post_purchase.refresh_product_affinity() AS pairs_kept;
SELECT count(*) FROM post_purchase.product_affinity;

-- readers: nothing for PUBLIC; the refresh is not PUBLIC's
SELECT has_table_privilege('public', 'post_purchase.product_affinity', 'SELECT') AS public_reads,
	   has_function_privilege('public', 'post_purchase.refresh_product_affinity(interval, float8, float8)', 'EXECUTE')
		   AS public_refreshes,
	   has_function_privilege('public', 'post_purchase.recommend_products(text, integer)', 'EXECUTE')
		   AS public_recommends;

SELECT post_purchase.untrack_orders('aff_orders');
DROP TABLE aff_items, aff_orders;
DELETE FROM post_purchase.products;
INSERT INTO post_purchase.products SELECT * FROM aff_saved_products;
INSERT INTO post_purchase.product_cycles SELECT * FROM aff_saved_cycles;
