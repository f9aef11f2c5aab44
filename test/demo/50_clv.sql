-- Predictive CLV: BG/NBD and Gamma-Gamma fitted in SQL on the calibration
-- period (weeks), checked against the holdout, and the customers worth most.
-- Uses :calibration_end and :data_end from 40_btyd.sql.

CREATE TEMP TABLE demo_summaries AS
SELECT customer_id,
	   post_purchase.rfm_summary(ordered_at, amount, :'calibration_end', '7 days') AS cal,
	   post_purchase.rfm_summary(ordered_at, amount, :'data_end', '7 days') AS whole
FROM shop.orders GROUP BY customer_id;
DELETE FROM demo_summaries WHERE cal IS NULL;

CREATE TEMP TABLE demo_models AS
SELECT post_purchase.bgnbd_fit((cal).frequency, (cal).recency, (cal).t) AS bg,
	   -- Gamma-Gamma describes positive spend: CDNOW has a few $0 repeat purchases
	   post_purchase.gamma_gamma_fit((cal).frequency, (cal).monetary_value)
		   FILTER (WHERE (cal).monetary_value > 0) AS gg
FROM demo_summaries;

\echo
\echo '== BG/NBD and Gamma-Gamma, fitted on the calibration period (weeks) =='
SELECT round((bg).r::numeric, 4) AS r, round((bg).alpha::numeric, 4) AS alpha,
	   round((bg).a::numeric, 4) AS a, round((bg).b::numeric, 4) AS b,
	   round((bg).log_likelihood::numeric, 2) AS bgnbd_ll,
	   round((gg).p::numeric, 3) AS p, round((gg).q::numeric, 3) AS q, round((gg).v::numeric, 3) AS v
FROM demo_models;

\echo
\echo '== Holdout: predicted vs actual repeat purchases after the calibration end =='
SELECT round(sum(post_purchase.bgnbd_expected_purchases(bg, (cal).frequency, (cal).recency, (cal).t,
														(whole).t - (cal).t))::numeric) AS predicted,
	   sum((whole).frequency - (cal).frequency) AS actual
FROM demo_summaries, demo_models;

\echo
\echo '== The ten customers with the highest 12-month CLV (1% a month) =='
SELECT customer_id, (cal).frequency AS repeat_purchases,
	   round(post_purchase.bgnbd_p_alive(bg, (cal).frequency, (cal).recency, (cal).t)::numeric, 3) AS p_alive,
	   round((cal).monetary_value, 2) AS mean_repeat_spend,
	   round(post_purchase.clv(bg, gg, (cal).frequency, (cal).recency, (cal).t, (cal).monetary_value,
							   12, 0.01, '7 days')::numeric, 2) AS clv_12m
FROM demo_summaries, demo_models
WHERE (cal).frequency = 0 OR (cal).monetary_value > 0
ORDER BY clv_12m DESC, customer_id LIMIT 10;
