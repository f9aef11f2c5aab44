-- Parameter recovery: customers simulated from known BG/NBD parameters are
-- fitted back within their sampling error.  For each parameter set, 20
-- independent shops of 5,000 customers (seeds 1..20) are fitted; the mean of
-- the 20 estimates must lie within 4 standard errors (sd / sqrt(20)) of the
-- truth, and every fit must converge.
CREATE TABLE truths (label text, r float8, alpha float8, a float8, b float8, t float8);
INSERT INTO truths VALUES
	('CDNOW, weeks', 0.2426, 4.4135, 0.7929, 2.4258, 38.86),
	('a + b < 1', 0.5, 2, 0.3, 0.4, 52),
	('frequent buyers, days', 2, 60, 1.5, 8, 1095),
	('loyal: rare dropout', 1, 10, 0.5, 20, 104);

CREATE TABLE fits AS
SELECT label, seed, truths.r AS true_r, truths.alpha AS true_alpha, truths.a AS true_a, truths.b AS true_b,
	   (SELECT post_purchase.bgnbd_fit(s.frequency, s.recency, s.t)
		FROM post_purchase.bgnbd_simulate(ROW(truths.r, truths.alpha, truths.a, truths.b, NULL, NULL, true),
										  5000, truths.t, seed) s) AS m
FROM truths, generate_series(1, 20) seed;

SELECT label,
	   bool_and((m).converged) AS all_converged,
	   abs(avg((m).r) - true_r) <= 4 * stddev((m).r) / sqrt(20) AS r_ok,
	   abs(avg((m).alpha) - true_alpha) <= 4 * stddev((m).alpha) / sqrt(20) AS alpha_ok,
	   abs(avg((m).a) - true_a) <= 4 * stddev((m).a) / sqrt(20) AS a_ok,
	   abs(avg((m).b) - true_b) <= 4 * stddev((m).b) / sqrt(20) AS b_ok
FROM fits
GROUP BY label, true_r, true_alpha, true_a, true_b
ORDER BY label;

-- the simulator is reproducible and its seeds are independent
SELECT (SELECT sum(frequency) FROM post_purchase.bgnbd_simulate(ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true), 1000, 38.86, 1))
	 = (SELECT sum(frequency) FROM post_purchase.bgnbd_simulate(ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true), 1000, 38.86, 1)) AS same_seed_same_shop,
	   (SELECT sum(frequency) FROM post_purchase.bgnbd_simulate(ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true), 1000, 38.86, 1))
	 <> (SELECT sum(frequency) FROM post_purchase.bgnbd_simulate(ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true), 1000, 38.86, 2)) AS other_seed_other_shop;

-- simulated customers follow the model's own prediction: the mean number of
-- repeat purchases of 100,000 new customers over 39 weeks is E[X(39)]
SELECT abs(avg(frequency) / post_purchase.bgnbd_expected_purchases(
		   ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model, 39) - 1) < 0.02
	   AS mean_matches_expectation
FROM post_purchase.bgnbd_simulate(ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true), 100000, 39, 3);

DROP TABLE truths, fits;
