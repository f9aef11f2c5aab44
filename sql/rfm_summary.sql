-- rfm_summary against hand-computed customer histories.
SET TimeZone = 'UTC';

CREATE TABLE orders (customer text, ordered_at timestamptz, amount numeric);
INSERT INTO orders VALUES
	-- a: three purchase days (two orders on Jan 1 merge), repeat spend 20 + 30
	('a', '2024-01-01 09:00', 10.00), ('a', '2024-01-01 18:00', 5.00),
	('a', '2024-01-15 12:00', 20.00), ('a', '2024-02-14 08:00', 30.00),
	-- b: a single purchase
	('b', '2024-02-01 10:00', 99.95),
	-- c: orders only after observed_until
	('c', '2024-03-05 10:00', 12.00),
	-- d: an order after observed_until is ignored; a refund lowers the day's spend
	('d', '2024-01-10 10:00', 40.00), ('d', '2024-01-20 10:00', 50.00),
	('d', '2024-01-20 11:00', -10.00), ('d', '2024-03-10 10:00', 1000.00);

-- a: frequency 2, recency 44 days, T 60 days (2024 is a leap year), mean 25
-- b: frequency 0, recency 0, T 29, monetary 0
-- c: NULL (not a customer yet on March 1)
-- d: frequency 1, recency 10, T 51, monetary 40
SELECT customer, (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01')).*
FROM orders GROUP BY customer ORDER BY customer;

-- the same in weeks, as the BTYD papers report it
SELECT customer, (s).frequency, round((s).recency::numeric, 4) AS recency, round((s).t::numeric, 4) AS t
FROM (SELECT customer, post_purchase.rfm_summary(ordered_at, amount, '2024-03-01', '7 days') AS s
	  FROM orders GROUP BY customer) x
ORDER BY customer;

-- a month is 30 days, as in interval arithmetic
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01', '1 month')).t
FROM orders WHERE customer = 'a';

-- input order does not matter
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01' ORDER BY ordered_at DESC)).*
FROM orders WHERE customer = 'a';

-- observed_until is inclusive, and a calibration/holdout split is one query
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-01-15 12:00')).* AS calibration
FROM orders WHERE customer = 'a';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-01-15 11:59')).* AS calibration
FROM orders WHERE customer = 'a';

-- NULL ordered_at or amount: the row is ignored
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01')).*
FROM (VALUES ('2024-01-01'::timestamptz, 10.0), (NULL, 5.0), ('2024-01-05', NULL),
			 ('2024-01-09', 7.5)) v(ordered_at, amount);

-- no rows at all
SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-03-01') IS NULL AS is_null
FROM orders WHERE false;

-- calendar days are those of the session time zone: 23:30 and 00:30 the next
-- day in UTC are the same day in New York (a zone with daylight saving time)
CREATE TABLE late_orders AS
SELECT * FROM (VALUES ('2024-07-01 23:30+00'::timestamptz, 10.0),
					  ('2024-07-02 00:30+00'::timestamptz, 20.0)) v(ordered_at, amount);
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-07-10 12:00+00')).* FROM late_orders;
SET TimeZone = 'America/New_York';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-07-10 12:00+00')).* FROM late_orders;
-- and in a zone east of UTC, before 2000 (negative internal timestamps)
SET TimeZone = 'Asia/Tokyo';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '1997-09-30')).*
FROM (VALUES ('1997-01-01 00:00'::timestamptz, 1.0), ('1997-01-01 23:59', 2.0),
			 ('1997-01-02 00:00', 4.0)) v(ordered_at, amount);
SET TimeZone = 'UTC';

-- many purchase days, arriving newest first with duplicates: the day set
-- compacts and grows; 1000 distinct days, every day's spend 3 * 1.5
SELECT (post_purchase.rfm_summary(d, 1.5, '2030-01-01' ORDER BY d DESC)).*
FROM generate_series(timestamptz '2020-01-01', '2022-09-26', '1 day') d,
	 generate_series(1, 3) copies;

-- a day that compaction moves to the end of the full day set is not counted
-- twice: days 8, 1..7, 8 are 8 purchase days
SELECT (post_purchase.rfm_summary(d, 1.0, '2030-01-01' ORDER BY o)).frequency
FROM (VALUES (1, 8), (2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (8, 7), (9, 8)) v(o, n),
	 LATERAL (SELECT timestamptz '2024-01-01' + n * interval '1 day' AS d) x;

-- amounts are summed exactly, whatever their scale and size
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01')).monetary_value
FROM (VALUES ('2024-01-01'::timestamptz, 1.0),
			 ('2024-01-02', 0.1234567891234), ('2024-01-03', 0.0000000000001)) v(ordered_at, amount);
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01')).monetary_value
FROM (VALUES ('2024-01-01'::timestamptz, 1.0),
			 ('2024-01-02', 1e30), ('2024-01-03', 1e30), ('2024-01-04', 0.01)) v(ordered_at, amount);
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01')).monetary_value
FROM (VALUES ('2024-01-01'::timestamptz, 1.0),
			 ('2024-01-02', 170141183460469231731687303715884.10572), ('2024-01-02', 170141183460469231731687303715884.10572),
			 ('2024-01-03', -0.00000002)) v(ordered_at, amount);
-- 200 amounts that each fit the fixed-point fast path but whose sum does not
SELECT (post_purchase.rfm_summary(d, 9e27, '2030-01-01')).monetary_value
FROM generate_series(timestamptz '2020-01-01', '2020-07-18', '1 day') d;
-- means carry no trailing zeros
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-01')).monetary_value
FROM (VALUES ('2024-01-01'::timestamptz, 1), ('2024-01-02', 3), ('2024-01-03', 4.000)) v(ordered_at, amount);

-- purchase_totals: the customer state's purchase days, first and last day,
-- revenue and first day's revenue (src/rfm.c).  By hand: in UTC the orders
-- fall on 2024-01-01 (1.00 + 2.25), 2024-01-02 (5.50) and 2024-01-05
-- (0): 3 days, revenue 8.75, first day 3.25.  In Berlin (UTC+1 in
-- January) the 23:30 order is on 2024-01-02: first day 2.25.
CREATE TEMP TABLE totals_orders (ordered_at timestamptz, amount numeric);
INSERT INTO totals_orders VALUES ('2024-01-02 10:00+00', 5.50), ('2024-01-01 23:30+00', 1.00),
	('2024-01-01 01:00+00', 2.25), ('2024-01-05 12:00+00', 0);
SELECT (post_purchase.purchase_totals(ordered_at, amount, 'UTC')).* FROM totals_orders;
SELECT (post_purchase.purchase_totals(ordered_at, amount, 'Europe/Berlin')).* FROM totals_orders;
-- the sums keep the largest scale of their amounts, as sum() does
SELECT t.revenue, t.revenue::text = (SELECT sum(amount)::text FROM totals_orders) AS as_sum
FROM (SELECT (post_purchase.purchase_totals(ordered_at, amount, 'UTC')).* FROM totals_orders) t;
-- one order; many orders on one day are one purchase day
SELECT (post_purchase.purchase_totals('2024-03-01 08:00+00', 19.99, 'UTC')).*;
SELECT (post_purchase.purchase_totals(t, 1, 'UTC')).*
FROM generate_series(timestamptz '2024-03-01 00:00+00', '2024-03-01 23:00+00', '1 hour') t;
-- 1000 distinct days arriving newest first: the days are counted after
-- compaction, the first day is the oldest
SELECT (post_purchase.purchase_totals(d, 1.5, 'UTC' ORDER BY d DESC)).*
FROM generate_series(timestamptz '2020-01-01', '2022-09-26', '1 day') d, generate_series(1, 3) copies;
-- amounts too large for the fixed-point sums stay exact
SELECT (post_purchase.purchase_totals(t, a, 'UTC')).revenue
FROM (VALUES ('2024-01-01'::timestamptz, 1e30), ('2024-01-02', 1e30), ('2024-01-02', 0.01)) v(t, a);
-- NULL inputs are ignored; no order at all is no totals
SELECT (post_purchase.purchase_totals(t, a, 'UTC')).*
FROM (VALUES ('2024-01-01'::timestamptz, 1.0), (NULL, 2.0), ('2024-01-02', NULL)) v(t, a);
SELECT post_purchase.purchase_totals(ordered_at, amount, 'UTC') IS NULL AS no_orders
FROM totals_orders WHERE false;
DROP TABLE totals_orders;

DROP TABLE orders, late_orders;
