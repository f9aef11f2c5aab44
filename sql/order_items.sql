-- Order items: per customer and product, when the product runs out.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
UPDATE post_purchase.settings SET value = '2024-06-01' WHERE name = 'today';
CREATE SCHEMA shop;
CREATE TABLE shop.orders (order_id bigint PRIMARY KEY, customer_id bigint, ordered_at timestamptz, amount numeric);
CREATE TABLE shop.order_items (order_id bigint REFERENCES shop.orders ON DELETE CASCADE ON UPDATE CASCADE,
							   product_id text, quantity integer);
CREATE INDEX ON shop.order_items (order_id);
INSERT INTO post_purchase.products VALUES ('coffee', 'Coffee beans 1kg', 30), ('filters', 'Paper filters', 50);

INSERT INTO shop.orders VALUES (1, 7, '2024-01-01 10:00', 20), (2, 7, '2024-01-31 10:00', 20);
INSERT INTO shop.order_items VALUES (1, 'coffee', 1), (1, 'filters', 2), (2, 'coffee', 1);
SELECT post_purchase.track_orders('shop.orders');
-- items need their orders tracked first; then they backfill
SELECT post_purchase.track_order_items('shop.order_items');
SELECT order_key, product_id, customer_id, day, quantity, items
FROM post_purchase.customer_product_orders ORDER BY order_key, product_id;

-- customer 7: coffee every 30 days (own cycle), filters once: 2 x 50 days
SELECT customer_id, product_id, purchase_days, last_quantity, cycle_source, cycle_days, next_due
FROM post_purchase.customer_product_replenishment ORDER BY customer_id, product_id;

-- a new customer buys filters twice as a repeat pattern, another once, and a
-- product nobody described: its cycle comes from other customers' repurchases
INSERT INTO shop.orders VALUES (3, 8, '2024-02-01 09:00', 5), (4, 8, '2024-02-21 09:00', 5),
							   (5, 9, '2024-03-01 09:00', 9), (6, 8, '2024-03-12 09:00', 9),
							   (7, 10, '2024-05-01 09:00', 9);
INSERT INTO shop.order_items VALUES (3, 'tea', 1), (4, 'tea', 1), (6, 'tea', 2), (5, 'tea', 1), (7, 'mugs', 1);
SELECT post_purchase.refresh_product_cycles();
SELECT product_id, median_gap_days, repurchases FROM post_purchase.product_cycles ORDER BY product_id;
SELECT customer_id, product_id, purchase_days, cycle_source, cycle_days, next_due
FROM post_purchase.customer_product_replenishment ORDER BY customer_id, product_id;

-- the order's customer and time follow the order; items follow their edits
UPDATE shop.orders SET customer_id = 11, ordered_at = '2024-03-02 09:00' WHERE order_id = 5;
UPDATE shop.order_items SET quantity = 3 WHERE order_id = 3;
INSERT INTO shop.order_items VALUES (3, 'tea', 1);
DELETE FROM shop.order_items WHERE order_id = 4;
UPDATE shop.order_items SET product_id = 'green tea' WHERE order_id = 6;
-- a cancelled order takes its items along (ON DELETE CASCADE)
DELETE FROM shop.orders WHERE order_id = 7;
-- a guest order, then assigned to a customer: its items appear
INSERT INTO shop.orders VALUES (8, NULL, '2024-04-01 09:00', 5);
INSERT INTO shop.order_items VALUES (8, 'coffee', 2);
SELECT count(*) AS guest_rows FROM post_purchase.customer_product_orders WHERE order_key = '8';
UPDATE shop.orders SET customer_id = 12 WHERE order_id = 8;
-- an order's key changes (and its items' with it, ON UPDATE CASCADE)
UPDATE shop.orders SET order_id = 20 WHERE order_id = 2;
SELECT order_key, product_id, customer_id, day, quantity, items
FROM post_purchase.customer_product_orders ORDER BY order_key, product_id;
SELECT count(*) AS differences FROM post_purchase.verify_state();

-- untracking the orders untracks the items too
SELECT post_purchase.untrack_orders('shop.orders');
SELECT count(*) AS items_tracked FROM post_purchase.tracked_order_items;
SELECT count(*) AS rows_left FROM post_purchase.customer_product_orders;
SELECT tgname FROM pg_trigger
WHERE tgrelid IN ('shop.orders'::regclass, 'shop.order_items'::regclass) AND tgname LIKE 'post_purchase%';

-- bad input: items before orders, a second items table, wrong columns
SELECT post_purchase.track_order_items('shop.order_items');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_orders('shop.orders');
SELECT post_purchase.track_order_items('shop.order_items', quantity_column => 'product_id');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_order_items('shop.order_items', orders_key_column => 'no_such_column');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_order_items('shop.order_items');
SELECT post_purchase.track_order_items('shop.order_items');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO post_purchase.products VALUES ('broken', 'Broken', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.untrack_orders('shop.orders');

DELETE FROM post_purchase.products;
DELETE FROM post_purchase.product_cycles;
UPDATE post_purchase.settings SET value = '' WHERE name = 'today';
DROP SCHEMA shop CASCADE;
