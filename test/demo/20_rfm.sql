-- RFM segments as of the end of the data: recency and frequency quintiles
-- mapped to the named segments, with each segment's share of customers and
-- of revenue.

SELECT max(ordered_at) AS data_end, max(ordered_at)::date AS data_end_day FROM shop.orders \gset

\echo
\echo '== RFM segments as of' :data_end_day '=='
WITH customers AS (
	SELECT customer_id,
		   post_purchase.rfm_summary(ordered_at, amount, :'data_end') AS rfm,
		   sum(amount) AS revenue
	FROM shop.orders
	GROUP BY customer_id
), scored AS (
	-- Recency as marketers mean it, days since the last purchase (T minus
	-- the BTYD recency): the most recent fifth scores 5.  ntile splits ties
	-- by customer_id, so the scores are the same on every run.
	SELECT customer_id, revenue,
		   (rfm).t - (rfm).recency AS days_since_last,
		   (rfm).frequency,
		   ntile(5) OVER (ORDER BY (rfm).t - (rfm).recency DESC, customer_id) AS r_score,
		   ntile(5) OVER (ORDER BY (rfm).frequency, customer_id) AS f_score
	FROM customers
), segments AS (
	SELECT post_purchase.rfm_segment(r_score, f_score) AS segment,
		   count(*) AS customers,
		   sum(revenue) AS revenue,
		   avg(days_since_last) AS days_since_last,
		   avg(frequency) AS repeat_purchases
	FROM scored
	GROUP BY 1
)
SELECT segment,
	   customers,
	   round(100.0 * customers / sum(customers) OVER (), 1) AS pct_customers,
	   round(revenue) AS revenue,
	   round(100.0 * revenue / sum(revenue) OVER (), 1) AS pct_revenue,
	   round(days_since_last) AS avg_days_since_last,
	   round(repeat_purchases, 2) AS avg_repeat_purchases
FROM segments
ORDER BY segments.revenue DESC, segments.segment COLLATE "C";
