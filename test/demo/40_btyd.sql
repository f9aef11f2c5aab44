-- A first look in the terms of the buy-till-you-die (BTYD) models that CLV
-- builds on: the customers of a calibration period, in weeks.  For CDNOW
-- run_demo.sh sets calibration_end to the papers' 1997-09-30; otherwise the
-- calibration period is the first half of the data.

\if :{?calibration_end}
\else
SELECT (min(ordered_at)::date + (max(ordered_at)::date - min(ordered_at)::date) / 2)::text AS calibration_end
FROM shop.orders \gset
\endif
SELECT max(ordered_at) AS data_end FROM shop.orders \gset

\echo
\echo '== BTYD: the calibration period up to' :calibration_end '(weeks) =='
WITH calibration AS (
	SELECT customer_id,
		   post_purchase.rfm_summary(ordered_at, amount, :'calibration_end', '7 days') AS cal,
		   post_purchase.rfm_summary(ordered_at, amount, :'data_end', '7 days') AS whole
	FROM shop.orders
	GROUP BY customer_id
)
SELECT count(*) AS customers,
	   count(*) FILTER (WHERE (cal).frequency > 0) AS repeat_buyers,
	   round(avg((cal).frequency), 3) AS mean_frequency,
	   round(avg((cal).recency)::numeric, 2) AS mean_recency,
	   round(avg((cal).t)::numeric, 2) AS mean_t,
	   round(avg((cal).monetary_value) FILTER (WHERE (cal).frequency > 0), 2) AS mean_repeat_value,
	   sum((whole).frequency - (cal).frequency) AS holdout_repeats
FROM calibration
WHERE cal IS NOT NULL;		-- customers who had bought by the calibration end
