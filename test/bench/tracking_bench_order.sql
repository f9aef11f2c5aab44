-- tracking_bench_order.sql: the pgbench script of run_tracking_bench.sh, one
-- order per transaction.
--
--   pgbench -n -M prepared -D customers=1000000 -D tracked=1 -f tracking_bench_order.sql
--
-- The customer is any of the generated ones, or (about 1 order in 11) an id
-- above them, new to the shop on its first order.  The time is a moment of
-- 2024-01-01 UTC, the day after the generated orders end: the "today" the
-- benchmark pins in post_purchase.settings.  tracked=1 inserts into the
-- tracked shop.orders, tracked=0 into bench.orders_copy, its untracked copy
-- with the same rows and indexes.
\set customer random(1, :customers + :customers / 10)
\set second random(25200, 75599)
\set quantity random(1, 3)
\set cents random(500, 20000)
\if :tracked
INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
VALUES (nextval('bench.order_id'), :customer, timestamptz '2024-01-01 00:00:00+00' + :second * interval '1 second',
		:quantity, :cents / 100.0);
\else
INSERT INTO bench.orders_copy (order_id, customer_id, ordered_at, quantity, amount)
VALUES (nextval('bench.order_id'), :customer, timestamptz '2024-01-01 00:00:00+00' + :second * interval '1 second',
		:quantity, :cents / 100.0);
\endif
