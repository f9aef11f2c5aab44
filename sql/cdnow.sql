-- rfm_summary reproduces the published CDNOW summary (Fader, Hardie & Lee
-- 2005) from the raw transactions of the 1/10 sample, for all 2,357
-- customers.  The data is read from $CDNOW_DIR (the Makefile's CDNOW_DIR).
SET TimeZone = 'UTC';
\getenv cdnow_dir CDNOW_DIR
\set sample_file :cdnow_dir '/CDNOW_sample.txt'
\set summary_file :cdnow_dir '/cdnow_customers_summary_with_transactions.csv'

-- whitespace separated: master_id sample_id date(YYYYMMDD) cds dollar_value
CREATE TEMP TABLE cdnow_lines (line text);
COPY cdnow_lines FROM :'sample_file';
CREATE TEMP TABLE cdnow_orders AS
SELECT f[2]::int AS customer_id,
	   to_date(f[3], 'YYYYMMDD')::timestamptz AS ordered_at,
	   f[5]::numeric AS amount
FROM (SELECT regexp_split_to_array(btrim(line, E' \r\t'), '\s+') AS f FROM cdnow_lines) l;

CREATE TEMP TABLE cdnow_published (id int, x int, t_x numeric, t numeric, zbar numeric);
COPY cdnow_published FROM :'summary_file' WITH (FORMAT csv, HEADER);

SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers FROM cdnow_orders;

-- calibration period: weeks, ending 1997-09-30
CREATE TEMP TABLE cdnow_calibration AS
SELECT customer_id, post_purchase.rfm_summary(ordered_at, amount, '1997-09-30', '7 days') AS s
FROM cdnow_orders GROUP BY customer_id;

SELECT count(*) AS customers,
	   count(*) FILTER (WHERE (c.s).frequency <> p.x) AS x_differs,
	   count(*) FILTER (WHERE round((c.s).recency::numeric, 2) <> p.t_x) AS t_x_differs,
	   count(*) FILTER (WHERE round((c.s).t::numeric, 2) <> p.t) AS t_differs,
	   count(*) FILTER (WHERE abs((c.s).monetary_value - p.zbar) > 0.01) AS zbar_differs,
	   max(abs((c.s).monetary_value - p.zbar)) <= 0.005 AS zbar_within_rounding
FROM cdnow_published p FULL JOIN cdnow_calibration c ON c.customer_id = p.id;

-- the first customers, side by side
SELECT p.id, p.x, (c.s).frequency, p.t_x, round((c.s).recency::numeric, 2) AS recency,
	   p.t, round((c.s).t::numeric, 2) AS t, p.zbar, round((c.s).monetary_value, 2) AS monetary_value
FROM cdnow_published p JOIN cdnow_calibration c ON c.customer_id = p.id
ORDER BY p.id LIMIT 5;

-- the 946 repeat buyers that Gamma-Gamma is fitted on
SELECT count(*) AS repeat_buyers FROM cdnow_calibration WHERE (s).frequency > 0;

-- holdout weeks 40 to 78: 1,882 repeat purchases (published), as the
-- difference of two rfm_summary calls
SELECT sum(f) - (SELECT sum((s).frequency) FROM cdnow_calibration) AS holdout_repeat_purchases
FROM (SELECT (post_purchase.rfm_summary(ordered_at, amount, '1998-06-30')).frequency AS f
	  FROM cdnow_orders GROUP BY customer_id) full_period;
