-- purchase_cycle and replenishment_due against hand-computed cases.
SET TimeZone = 'UTC';

-- gaps of 10, 20 and 30 days: median 20, mean 20, next due 20 days after the
-- last order (at its exact time of day)
SELECT (post_purchase.purchase_cycle(t)).*
FROM (VALUES ('2024-01-01 08:00'::timestamptz), ('2024-01-11 09:00'),
			 ('2024-01-31 10:00'), ('2024-03-01 11:15')) v(t);

-- gaps 10, 20, 40, 50 (newest first, same-day orders merged): median 30,
-- mean 120 / 4 = 30
SELECT (post_purchase.purchase_cycle(t ORDER BY t DESC)).*
FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-11'), ('2024-01-11 17:00'),
			 ('2024-01-31'), ('2024-03-11'), ('2024-04-30')) v(t);

-- gaps 10 and 11: median and mean 10.5 days
SELECT (post_purchase.purchase_cycle(t)).*
FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-11'), ('2024-01-22')) v(t);

-- gaps 1, 1, 100: the median ignores the outlier, the mean does not
SELECT (post_purchase.purchase_cycle(t)).median_interval,
	   (post_purchase.purchase_cycle(t)).mean_interval
FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-02'), ('2024-01-03'), ('2024-04-12')) v(t);

-- one purchase day: no cycle yet
SELECT (post_purchase.purchase_cycle(t)).*
FROM (VALUES ('2024-01-01 08:00'::timestamptz), ('2024-01-01 20:00')) v(t);

-- the last purchase is the latest order, whatever the input order within
-- the first day
SELECT (post_purchase.purchase_cycle(t ORDER BY o)).last_purchase
FROM (VALUES (1, '2024-01-01 17:00'::timestamptz), (2, '2024-01-01 09:00')) v(o, t);

-- NULLs are ignored; no rows give NULL
SELECT (post_purchase.purchase_cycle(t)).purchases
FROM (VALUES ('2024-01-01'::timestamptz), (NULL), ('2024-02-01')) v(t);
SELECT post_purchase.purchase_cycle(t) IS NULL AS is_null
FROM (VALUES (NULL::timestamptz)) v(t);

-- per customer, as a replenishment query would use it
SELECT customer, (post_purchase.purchase_cycle(t)).next_due
FROM (VALUES ('x', '2024-01-01'::timestamptz), ('x', '2024-01-31'),
			 ('y', '2024-02-01'), ('y', '2024-02-08'), ('y', '2024-02-15')) v(customer, t)
GROUP BY customer ORDER BY customer;

-- replenishment_due: 3 units of 10 days each
SELECT post_purchase.replenishment_due('2024-01-01 10:00', 3, 10);
-- fractional: 2.5 units of 1 day = 60 hours
SELECT post_purchase.replenishment_due('2024-01-01 10:00', 2.5, 1);
-- days are 24 hours in every time zone, so the function is immutable
SET TimeZone = 'America/New_York';
SELECT post_purchase.replenishment_due('2024-03-09 12:00-05', 1, 2);
SET TimeZone = 'UTC';
-- nothing bought lasts no time; an infinite time stays infinite
SELECT post_purchase.replenishment_due('2024-01-01 10:00', 0, 30);
SELECT post_purchase.replenishment_due('infinity', 1, 30);
SELECT post_purchase.replenishment_due(NULL, 1, 30) IS NULL AS is_null;
