-- Decisions made by a worker after the order commits, or in the order's
-- transaction (post_purchase.decide_in): the same memberships, enrollments
-- and journeys either way.  No worker serves this database, so auto decides
-- in the order, as the other tests rely on; process_changes() is what a
-- worker calls.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SHOW post_purchase.decide_in;
CREATE TABLE dec_orders (order_id int PRIMARY KEY, customer_id text, ordered_at timestamptz, amount numeric);
SELECT post_purchase.track_orders('dec_orders');
SELECT post_purchase.create_segment('dec_big', 'revenue >= 100');
SELECT post_purchase.create_journey('dec_first', 'first_order');
SELECT post_purchase.add_step('dec_first', 'thanks', '0', 'email', 'thanks');
SELECT post_purchase.create_journey('dec_second', 'nth_order', nth_order => 2);
SELECT post_purchase.add_step('dec_second', 'invite', '0', 'email', 'invite');
SELECT post_purchase.create_journey('dec_big_welcome', 'segment_entered', segment => 'dec_big');
SELECT post_purchase.add_step('dec_big_welcome', 'note', '0', 'email', 'note');
-- (no worker serves this database: enable_journey() warns, journeys.sql shows it)
SET client_min_messages = error;
SELECT post_purchase.enable_journey(j) FROM unnest(ARRAY['dec_first', 'dec_second', 'dec_big_welcome']) j;
RESET client_min_messages;

-- the same orders for customer o1 (decided in the order) and w1 (by a worker)
CREATE FUNCTION pg_temp.orders_of(customer text, first_id int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO dec_orders VALUES (first_id, customer, '2024-03-01 10:00', 40);
	INSERT INTO dec_orders VALUES (first_id + 1, customer, '2024-03-02 10:00', 70);
	INSERT INTO dec_orders VALUES (first_id + 2, customer, '2024-03-03 10:00', 5), (first_id + 3, customer, '2024-03-04 10:00', 5);
$$;
SET post_purchase.decide_in = 'order';
SELECT pg_temp.orders_of('o1', 1);
SET post_purchase.decide_in = 'worker';
SELECT pg_temp.orders_of('w1', 11);

-- w1's state is current, and marked; nothing is decided for it yet
SELECT customer_id, orders, revenue, changed_at IS NOT NULL AS marked, order_seq, decided_seq
FROM post_purchase.customer_state ORDER BY customer_id;
SELECT customers, oldest_change IS NOT NULL AS has_oldest, lag >= interval '0' AS lag_known
FROM post_purchase.decision_backlog;
SELECT customer_id, segment FROM post_purchase.segment_memberships
WHERE segment = 'dec_big' AND customer_id IN ('o1', 'w1') ORDER BY 1;
SELECT customer_id, journey FROM post_purchase.enrollments WHERE customer_id IN ('o1', 'w1') ORDER BY 1, 2;

-- a worker's call decides it, and clears the mark
SELECT post_purchase.process_changes(10) AS decided;
SELECT post_purchase.process_changes(10) AS decided_again;
SELECT customers FROM post_purchase.decision_backlog;
SELECT customer_id, changed_at IS NOT NULL AS marked, order_seq, decided_seq
FROM post_purchase.customer_state ORDER BY customer_id;
-- the write that cleared w1's mark stored its scores (src/scores.c); o1,
-- decided in its order, has none that count, and the view computes them
SELECT b.customer_id, b.scored, b.stored_average_order_value, b.stored_lifecycle_stage
FROM post_purchase.customer_summaries_in_context b ORDER BY 1;
SELECT count(*) AS differ FROM (
	SELECT m.* FROM post_purchase.customer_state s
	CROSS JOIN (SELECT c.*, post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today
				FROM post_purchase.metrics_context c) ctx
	CROSS JOIN LATERAL post_purchase.metrics_of(s, ctx.today, ctx.lapsed_after_days, ctx.at_risk_after_days,
												ctx.clv_monthly_discount, ctx.model, ctx.cuts) m
	EXCEPT SELECT * FROM post_purchase.customer_metrics) d;

-- both customers end in the same segments and journeys: the worker's
-- decision saw w1's four orders at once and entered dec_first (order 1)
-- and dec_second (order 2) from them
SELECT replace(customer_id, 'w', 'o') AS customer, segment, exited_at IS NULL AS open,
	   count(*) FILTER (WHERE customer_id LIKE 'o%') AS in_order, count(*) FILTER (WHERE customer_id LIKE 'w%') AS by_worker
FROM post_purchase.segment_memberships WHERE customer_id IN ('o1', 'w1') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT replace(customer_id, 'w', 'o') AS customer, journey,
	   count(*) FILTER (WHERE customer_id LIKE 'o%') AS in_order, count(*) FILTER (WHERE customer_id LIKE 'w%') AS by_worker
FROM post_purchase.enrollments WHERE customer_id IN ('o1', 'w1') GROUP BY 1, 2 ORDER BY 1, 2;
-- the enrollment's context is the customer's newest order
SELECT customer_id, journey, context -> 'order' ->> 'order_id' AS order_id
FROM post_purchase.enrollments WHERE journey = 'dec_second' ORDER BY 1;

-- a repeat order decided by a worker: no journey again, the segment stays
INSERT INTO dec_orders VALUES (30, 'w1', '2024-03-10 10:00', 1);
SELECT post_purchase.process_changes(10) AS decided;
SELECT journey, count(*) FROM post_purchase.enrollments WHERE customer_id = 'w1' GROUP BY 1 ORDER BY 1;

-- a late order, an update and a delete mark the customer too (no new order,
-- no order journey); a delete of the last order leaves no state to mark:
-- it is decided at once, and its memberships end
INSERT INTO dec_orders VALUES (31, 'w2', '2024-03-01 10:00', 150);
SELECT post_purchase.process_changes(10) AS decided;
UPDATE dec_orders SET amount = 10 WHERE order_id = 31;
SELECT customer_id, changed_at IS NOT NULL AS marked, order_seq - decided_seq AS undecided_orders
FROM post_purchase.customer_state WHERE customer_id = 'w2';
SELECT post_purchase.process_changes(10) AS decided;
SELECT customer_id, exited_at IS NOT NULL AS exited FROM post_purchase.segment_memberships
WHERE segment = 'dec_big' AND customer_id = 'w2';
INSERT INTO dec_orders VALUES (32, 'w3', '2024-03-01 10:00', 500);
SELECT post_purchase.process_changes(10) AS decided;
DELETE FROM dec_orders WHERE customer_id = 'w3';
SELECT count(*) AS w3_state FROM post_purchase.customer_state WHERE customer_id = 'w3';
SELECT segment, exited_at IS NOT NULL AS exited FROM post_purchase.segment_memberships
WHERE customer_id = 'w3' AND segment = 'dec_big';

-- the backfill counts every order as decided
CREATE TABLE dec_more (customer_id text, ordered_at timestamptz, amount numeric);
INSERT INTO dec_more VALUES ('b1', '2024-01-01', 1), ('b1', '2024-01-05', 2);
SELECT post_purchase.untrack_orders('dec_orders');
SELECT post_purchase.track_orders('dec_more');
SELECT customer_id, changed_at, order_seq, decided_seq FROM post_purchase.customer_state;
SELECT post_purchase.untrack_orders('dec_more');

-- bad input
SELECT post_purchase.process_changes(0);
SET post_purchase.decide_in = 'sometimes';
RESET post_purchase.decide_in;

SELECT post_purchase.drop_journey(j) FROM unnest(ARRAY['dec_first', 'dec_second', 'dec_big_welcome']) j;
SELECT post_purchase.drop_segment('dec_big');
DROP TABLE dec_orders, dec_more;
