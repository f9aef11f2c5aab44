-- The order trigger keeps customer state exact through inserts, updates,
\set SHOW_CONTEXT never
-- deletes and truncation; verify_state() proves it against a recomputation.
SET TimeZone = 'UTC';
CREATE SCHEMA shop;
CREATE TABLE shop.orders (order_id bigserial PRIMARY KEY, customer_id bigint,
						  ordered_at timestamptz, amount numeric(12,2));
CREATE INDEX ON shop.orders (customer_id, ordered_at);
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(1, '2024-01-01 10:00', 10), (1, '2024-01-01 12:00', 5), (2, '2024-01-05 08:00', 20);

-- tracking backfills what is there
SELECT post_purchase.track_orders('shop.orders');
SELECT customer_id, orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day,
	   first_day_revenue
FROM post_purchase.customer_state ORDER BY customer_id;

-- a repeat purchase, a guest checkout (skipped), a new customer
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(1, '2024-02-01 10:00', 30), (NULL, '2024-02-01 11:00', 1), (3, '2024-02-02 09:00', 7);
-- a cancellation of the day's last order, a customer id corrected, a refund
DELETE FROM shop.orders WHERE customer_id = 1 AND ordered_at = '2024-01-01 12:00';
UPDATE shop.orders SET customer_id = 2 WHERE customer_id = 3;
UPDATE shop.orders SET amount = 99 WHERE order_id = 1;
-- an update that changes nothing tracked
UPDATE shop.orders SET order_id = order_id WHERE order_id = 2;
SELECT customer_id, orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day,
	   first_day_revenue
FROM post_purchase.customer_state ORDER BY customer_id;
SELECT * FROM post_purchase.verify_state();

-- the last order of a customer: the customer leaves the state
DELETE FROM shop.orders WHERE customer_id = 2;
SELECT customer_id FROM post_purchase.customer_state ORDER BY customer_id;

-- whether an order's day is a new purchase day: the state tells for a day
-- after the last or before the first (new) and for those two days (not
-- new); for a day between them the customer is recomputed from the orders
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (7, '2024-01-10 09:00', 1), (7, '2024-01-20 09:00', 1);
CREATE FUNCTION pg_temp.add_order_at(at timestamptz) RETURNS bigint LANGUAGE sql AS $$
	INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (7, at, 1);
	SELECT s.purchase_days FROM post_purchase.customer_state s WHERE s.customer_id = '7'$$;
SELECT c.why, pg_temp.add_order_at(c.ordered_at) AS purchase_days
FROM (VALUES (1, timestamptz '2024-01-15 09:00', 'between, new'), (2, '2024-01-15 18:00', 'between, not new'),
			 (3, '2024-01-20 18:00', 'the last day'), (4, '2024-01-10 18:00', 'the first day'),
			 (5, '2024-01-05 09:00', 'before the first'), (6, '2024-01-25 09:00', 'after the last')) c(n, ordered_at, why)
ORDER BY c.n;
SELECT purchase_days, first_day, last_day FROM post_purchase.customer_state WHERE customer_id = '7';
SELECT count(*) AS differences FROM post_purchase.verify_state();
DELETE FROM shop.orders WHERE customer_id = 7;

-- one statement's row triggers fire once all its rows are in the table: a
-- customer recomputed for one row already counts the statement's other
-- rows, which then must not add themselves again (in either order)
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (8, '2024-01-10 09:00', 1), (8, '2024-01-20 09:00', 2);
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(8, '2024-01-15 09:00', 4), (8, '2024-01-25 09:00', 8), (8, '2024-01-25 10:00', 16);
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(8, '2024-01-30 09:00', 32), (8, '2024-01-12 09:00', 64), (8, '2024-01-31 09:00', 128);
-- a late order and a live one of the same customer from two statements of one query
WITH late AS (INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (8, '2024-01-13 09:00', 256) RETURNING 1)
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (8, '2024-02-01 09:00', 512);
-- a delete and an insert in one query: the delete recomputes, the insert must not add itself again
WITH gone AS (DELETE FROM shop.orders WHERE customer_id = 8 AND ordered_at = '2024-01-15 09:00' RETURNING 1)
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (8, '2024-02-02 09:00', 1024);
-- an order that had no time (untracked) gets one in the same statement that moves another
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (8, NULL, 2048);
UPDATE shop.orders SET ordered_at = CASE WHEN ordered_at IS NULL THEN '2024-02-03 09:00' ELSE ordered_at + interval '1 day' END
WHERE customer_id = 8 AND (ordered_at IS NULL OR ordered_at = '2024-01-10 09:00');
SELECT orders, revenue, purchase_days, first_day, last_day, first_day_revenue
FROM post_purchase.customer_state WHERE customer_id = '8';
SELECT count(*) AS differences FROM post_purchase.verify_state();
DELETE FROM shop.orders WHERE customer_id = 8;

-- a deterministic workload of inserts, deletes, moves, refunds and time
-- corrections over 60 customers; the state stays exactly the recomputation
INSERT INTO shop.orders (customer_id, ordered_at, amount)
SELECT (i * 7919) % 60, timestamptz '2024-01-01' + ((i * 104729) % 86400) * interval '1 minute',
	   ((i * 31) % 10000) / 100.0
FROM generate_series(1, 3000) i;
DELETE FROM shop.orders WHERE order_id % 7 = 0;
UPDATE shop.orders SET amount = amount - 1 WHERE order_id % 5 = 0;
UPDATE shop.orders SET customer_id = customer_id + 1 WHERE order_id % 11 = 0;
UPDATE shop.orders SET ordered_at = ordered_at + interval '13 hours' WHERE order_id % 13 = 0;
UPDATE shop.orders SET customer_id = NULL WHERE order_id % 17 = 0;
UPDATE shop.orders SET customer_id = 5 WHERE order_id % 17 = 0 AND order_id % 2 = 0;
SELECT count(*) AS customers, sum(orders) AS orders FROM post_purchase.customer_state;
SELECT count(*) AS differences FROM post_purchase.verify_state();

-- purchase days are calendar days of the shop's time zone, whatever the
-- session's: 23:30 UTC on Jan 9 and 00:30 UTC on Jan 10 are two days in UTC
SET TimeZone = 'America/New_York';
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES
	(100, '2024-01-09 23:30+00', 1), (100, '2024-01-10 00:30+00', 1);
SELECT purchase_days, first_day, last_day FROM post_purchase.customer_state WHERE customer_id = '100';
SET TimeZone = 'UTC';

-- TRUNCATE empties the state with the table
TRUNCATE shop.orders;
SELECT count(*) FROM post_purchase.customer_state;

-- untracking removes the triggers and the state
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (1, '2024-01-01', 1);
SELECT post_purchase.untrack_orders('shop.orders');
SELECT count(*) FROM post_purchase.customer_state;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'shop.orders'::regclass;

-- customer keys of type uuid and text, amounts of type integer
CREATE TABLE shop.uuid_orders (id serial, buyer uuid, placed timestamptz, total integer);
INSERT INTO shop.uuid_orders (buyer, placed, total) VALUES
	('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-01', 5),
	('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-04', 7);
SELECT post_purchase.track_orders('shop.uuid_orders', 'buyer', 'placed', 'total');
INSERT INTO shop.uuid_orders (buyer, placed, total) VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-09', 1);
SELECT customer_id, orders, revenue, purchase_days FROM post_purchase.customer_state;
SELECT post_purchase.untrack_orders('shop.uuid_orders');
CREATE TABLE shop.text_orders (email text, at timestamptz, amount double precision);
SELECT post_purchase.track_orders('shop.text_orders', 'email', 'at');
INSERT INTO shop.text_orders VALUES ('ann@example.com', '2024-03-01', 12.5), ('ann@example.com', '2024-03-02', 0.25);
SELECT customer_id, orders, revenue FROM post_purchase.customer_state;
SELECT count(*) AS differences FROM post_purchase.verify_state();
SELECT post_purchase.untrack_orders('shop.text_orders');


-- the rare paths recompute a customer through an index on the customer
-- column: track_orders() found shop.orders' (customer_id, ordered_at) and
-- made one for the tables above that had none
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) FROM pg_index
WHERE indrelid IN ('shop.orders'::regclass, 'shop.uuid_orders'::regclass, 'shop.text_orders'::regclass)
ORDER BY 1::text;
-- a partial or expression index does not serve; one the caller may not
-- create is refused with a hint for the table's owner
CREATE TABLE shop.guarded (buyer bigint, at timestamptz, amount numeric);
CREATE INDEX ON shop.guarded (buyer) WHERE buyer > 0;
SELECT post_purchase.customer_index('shop.guarded', 'buyer') IS NULL AS no_usable_index;
CREATE ROLE tracking_non_owner;
GRANT USAGE ON SCHEMA shop TO tracking_non_owner;
GRANT EXECUTE ON FUNCTION post_purchase.ensure_customer_index(regclass, name, text),
	post_purchase.customer_index(regclass, name) TO tracking_non_owner;
SET ROLE tracking_non_owner;
SELECT post_purchase.ensure_customer_index('shop.guarded', 'buyer', 'order');
\set SHOW_CONTEXT never
RESET ROLE;
DROP OWNED BY tracking_non_owner;
DROP ROLE tracking_non_owner;

-- a partitioned orders table: the trigger fires on the partitions, and a
-- customer is recomputed from all of them
CREATE TABLE shop.parted (customer_id bigint, ordered_at timestamptz, amount numeric) PARTITION BY RANGE (ordered_at);
CREATE TABLE shop.parted_2023 PARTITION OF shop.parted FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE shop.parted_2024 PARTITION OF shop.parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO shop.parted VALUES (1, '2023-06-01', 10), (1, '2024-06-01', 20);
SELECT post_purchase.track_orders('shop.parted');
INSERT INTO shop.parted VALUES (1, '2023-09-01', 5), (1, '2024-09-01', 1);
DELETE FROM shop.parted WHERE ordered_at = '2024-06-01';
UPDATE shop.parted SET ordered_at = '2024-02-01' WHERE ordered_at = '2023-06-01';
SELECT orders, revenue, purchase_days, first_day, last_day, first_day_revenue FROM post_purchase.customer_state;
SELECT count(*) AS differences FROM post_purchase.verify_state();
SELECT post_purchase.untrack_orders('shop.parted');

DROP SCHEMA shop CASCADE;
