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
-- with the same rows and indexes.  tracked=2 is the floor: the order into
-- the copy, and the upsert of the customer's state with its change mark
-- that the trigger makes, by plain SQL into a copy of the table
-- (bench.floor_state) in the same statement.
\set customer random(1, :customers + :customers / 10)
\set second random(25200, 75599)
\set quantity random(1, 3)
\set cents random(500, 20000)
\if :tracked = 1
INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
VALUES (nextval('bench.order_id'), :customer, timestamptz '2024-01-01 00:00:00+00' + :second * interval '1 second',
		:quantity, :cents / 100.0);
\elif :tracked = 2
WITH o AS (
	INSERT INTO bench.orders_copy (order_id, customer_id, ordered_at, quantity, amount)
	VALUES (nextval('bench.order_id'), :customer, timestamptz '2024-01-01 00:00:00+00' + :second * interval '1 second',
			:quantity, :cents / 100.0)
	RETURNING customer_id::text AS customer_id, ordered_at, (ordered_at AT TIME ZONE 'UTC')::date AS day, amount)
INSERT INTO bench.floor_state AS s (customer_id, orders, revenue, first_order_at, last_order_at, purchase_days,
	first_day, last_day, first_day_revenue, updated_at, changed_at, order_seq, decided_seq)
SELECT o.customer_id, 1, o.amount, o.ordered_at, o.ordered_at, 1, o.day, o.day, o.amount, now(), now(), 1, 0 FROM o
ON CONFLICT (customer_id) DO UPDATE SET orders = s.orders + 1, revenue = s.revenue + excluded.revenue,
	first_order_at = LEAST(s.first_order_at, excluded.first_order_at),
	last_order_at = GREATEST(s.last_order_at, excluded.last_order_at),
	purchase_days = s.purchase_days + CASE WHEN excluded.last_day > s.last_day THEN 1 ELSE 0 END,
	last_day = GREATEST(s.last_day, excluded.last_day), updated_at = now(),
	changed_at = coalesce(s.changed_at, now()), order_seq = s.order_seq + 1, scored_on = NULL;
\else
INSERT INTO bench.orders_copy (order_id, customer_id, ordered_at, quantity, amount)
VALUES (nextval('bench.order_id'), :customer, timestamptz '2024-01-01 00:00:00+00' + :second * interval '1 second',
		:quantity, :cents / 100.0);
\endif
