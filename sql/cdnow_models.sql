-- BG/NBD and Gamma-Gamma fitted on CDNOW reproduce the published tables:
-- Fader, Hardie & Lee (2005) and Fader & Hardie (2013).  Data from
-- $CDNOW_DIR (the Makefile's CDNOW_DIR).
\getenv cdnow_dir CDNOW_DIR
\set summary_file :cdnow_dir '/cdnow_customers_summary_with_transactions.csv'
CREATE TABLE cdnow (id int, x float8, t_x float8, t float8, zbar float8);
COPY cdnow FROM :'summary_file' WITH (FORMAT csv, HEADER);

-- BG/NBD, in weeks: r = 0.2426, alpha = 4.4135, a = 0.7929, b = 2.4258
-- (each within 1e-3 relative), log-likelihood -9582.43 (within 0.01)
CREATE TEMP TABLE bg AS SELECT post_purchase.bgnbd_fit(x, t_x, t) AS m FROM cdnow;
SELECT abs((m).r / 0.2426 - 1) < 1e-3 AS r_ok,
	   abs((m).alpha / 4.4135 - 1) < 1e-3 AS alpha_ok,
	   abs((m).a / 0.7929 - 1) < 1e-3 AS a_ok,
	   abs((m).b / 2.4258 - 1) < 1e-3 AS b_ok,
	   abs((m).log_likelihood + 9582.43) < 0.01 AS log_likelihood_ok,
	   (m).customers, (m).converged,
	   round((m).r::numeric, 3) AS r, round((m).alpha::numeric, 3) AS alpha,
	   round((m).a::numeric, 3) AS a, round((m).b::numeric, 3) AS b,
	   round((m).log_likelihood::numeric, 2) AS log_likelihood
FROM bg;

-- the same fit from weights: identical summaries compress into one row
SELECT abs((post_purchase.bgnbd_fit(x, t_x, t, n)).log_likelihood + 9582.43) < 0.01 AS weighted_fit_ok,
	   count(*) < 2357 AS fewer_rows
FROM (SELECT x, t_x, t, count(*)::float8 AS n FROM cdnow GROUP BY 1, 2, 3) grouped;

-- Gamma-Gamma on the 946 repeat buyers: p = 6.25, q = 3.74, v = 15.44,
-- log-likelihood about -4055.92
CREATE TEMP TABLE gg AS SELECT post_purchase.gamma_gamma_fit(x, zbar) AS m FROM cdnow;
SELECT round((m).p::numeric, 2) AS p, round((m).q::numeric, 2) AS q, round((m).v::numeric, 2) AS v,
	   round((m).log_likelihood::numeric, 2) AS log_likelihood, (m).customers, (m).converged
FROM gg;

-- customer 1 (x = 2, t_x = 30.43, T = 38.86) at the published parameters:
-- 1.226 expected purchases in the next 39 weeks
SELECT round(post_purchase.bgnbd_expected_purchases(
		   ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model,
		   2, 30.43, 38.86, 39)::numeric, 3) AS expected_39_weeks;

-- the fitted model's expectation for the 39 holdout weeks (1,882 repeat
-- purchases were observed there)
SELECT round(sum(post_purchase.bgnbd_expected_purchases(bg.m, x, t_x, t, 39))::numeric) AS expected_holdout_purchases
FROM cdnow, bg;

-- CLV over 12 months at 1% a month, in weeks; the customers worth most
SELECT id, x, t_x, t, zbar,
	   round(post_purchase.clv(bg.m, gg.m, x, t_x, t, zbar, 12, 0.01, '7 days')::numeric) AS clv_12m
FROM cdnow, bg, gg
ORDER BY clv_12m DESC, id LIMIT 5;

-- a parallel fit gives the serial answer
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
ALTER TABLE cdnow SET (parallel_workers = 2);
EXPLAIN (COSTS OFF) SELECT post_purchase.bgnbd_fit(x, t_x, t) FROM cdnow;
SELECT abs((p.m).log_likelihood - (bg.m).log_likelihood) < 1e-6 AS bgnbd_same,
	   abs((p.g).log_likelihood - (gg.m).log_likelihood) < 1e-6 AS gamma_gamma_same
FROM (SELECT post_purchase.bgnbd_fit(x, t_x, t) AS m, post_purchase.gamma_gamma_fit(x, zbar) AS g FROM cdnow) p,
	 bg, gg;
DROP TABLE cdnow;
