-- The shop's orders tracked live: the order trigger keeps every customer's
-- state, customer_metrics scores them, segments group them, and a new order
-- moves its customer between segments in its own transaction.
-- The "today" setting replays the data as of the day after its last order.

SELECT (max(ordered_at) AT TIME ZONE 'UTC')::date + 1 AS demo_today FROM shop.orders \gset
UPDATE post_purchase.settings SET value = :'demo_today' WHERE name = 'today';
CREATE INDEX ON shop.orders (customer_id, ordered_at);

\echo
\echo '== Tracking shop.orders (backfill of every order, then the trigger takes over) =='
SELECT post_purchase.track_orders('shop.orders');
SELECT count(*) AS customers, sum(orders) AS orders, sum(revenue) AS revenue FROM post_purchase.customer_state;
SELECT count(*) AS state_differences FROM post_purchase.verify_state();

\echo
\echo '== Models fitted on the live state (days) and segments refreshed =='
SELECT round((bgnbd).r::numeric, 4) AS r, round((bgnbd).alpha::numeric, 2) AS alpha,
	   round((bgnbd).a::numeric, 4) AS a, round((bgnbd).b::numeric, 4) AS b,
	   (bgnbd).converged, round(vip_clv_cut::numeric, 2) AS vip_clv_cut
FROM post_purchase.refresh_models();
SELECT segment, entered AS members FROM post_purchase.refresh_segments() ORDER BY segment;

\echo
\echo '== customer_metrics: the five customers worth most in the next 12 months =='
SELECT customer_id, orders, revenue, frequency, days_since_last_order AS days_since_last,
	   round(p_alive::numeric, 3) AS p_alive, round(expected_purchases_90d::numeric, 2) AS purchases_90d,
	   round(clv_12m::numeric, 2) AS clv_12m, rfm_segment, lifecycle_stage
FROM post_purchase.customer_metrics
ORDER BY clv_12m DESC NULLS LAST, customer_id LIMIT 5;

\echo
\echo '== A lapsed customer orders again: the trigger moves them, in the order''s transaction =='
SELECT coalesce((SELECT customer_id FROM post_purchase.customer_metrics
				 WHERE lifecycle_stage = 'lapsed' AND orders >= 2 ORDER BY customer_id LIMIT 1),
				(SELECT customer_id FROM post_purchase.customer_metrics
				 ORDER BY days_since_last_order DESC, customer_id LIMIT 1)) AS comeback \gset
SELECT segment FROM post_purchase.segment_memberships
WHERE customer_id = :'comeback' AND exited_at IS NULL ORDER BY segment;
INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
SELECT max(order_id) + 1, :comeback, :'demo_today'::timestamptz - interval '12 hours', 1, 15.99 FROM shop.orders;
SELECT segment, CASE WHEN exited_at IS NULL THEN 'entered' ELSE 'left' END AS change
FROM post_purchase.segment_memberships
WHERE customer_id = :'comeback' AND (exited_at IS NOT NULL OR entered_at > now() - interval '1 minute')
ORDER BY segment;
SELECT orders, days_since_last_order, round(p_alive::numeric, 3) AS p_alive, lifecycle_stage
FROM post_purchase.customer_metrics WHERE customer_id = :'comeback';
