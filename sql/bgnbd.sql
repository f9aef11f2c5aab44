-- BG/NBD scoring against high-precision values: the paper's formulas
-- evaluated literally by mpmath at 50 digits (test/reference/bgnbd_mpmath.py),
-- for ordinary, heavy, long-horizon, a + b < 1, a = 1, tiny and huge cases.
-- Agreement is asked to 1e-9 relative (or 1e-300 absolute, for underflow).

CREATE FUNCTION close_to(value float8, reference float8) RETURNS boolean
	LANGUAGE sql IMMUTABLE
	AS $$SELECT abs(value - reference) <= 1e-9 * abs(reference) OR abs(value - reference) < 1e-300$$;

CREATE TABLE cases (label text, r float8, alpha float8, a float8, b float8,
					x float8, t_x float8, t float8, horizon float8,
					p_alive float8, expected float8);
INSERT INTO cases VALUES
('customer 1 of CDNOW', 0.2426, 4.4135, 0.7929, 2.4258, 2, 30.43, 38.86, 39.0, 0.72660799730015627821, 1.2259111998992229327),
	('one-time buyer', 0.2426, 4.4135, 0.7929, 2.4258, 0, 0.0, 38.86, 39.0, 1.0, 0.19478655038715515311),
	('heavy buyer, x = 10000, bought last week', 0.2426, 4.4135, 0.7929, 2.4258, 10000, 38.86, 38.86, 39.0, 0.99992072758817001272, 6872.076632487731749),
	('heavy buyer, last purchase a few days ago', 0.2426, 4.4135, 0.7929, 2.4258, 10000, 38.5, 38.86, 39.0, 6.5933119613106255481e-33, 4.5313337157549149799e-29),
	('heavy buyer who stopped', 0.2426, 4.4135, 0.7929, 2.4258, 10000, 5.0, 38.86, 39.0, 0, 0),
	('long horizon, 1000 years of weeks', 0.2426, 4.4135, 0.7929, 2.4258, 0, 0.0, 38.86, 52000.0, 1.0, 12.218347027060700678),
	('long horizon, repeat buyer', 0.2426, 4.4135, 0.7929, 2.4258, 3, 20.0, 30.0, 5200.0, 0.6470925650919600182, 25.151206271412316161),
	('a + b < 1, one-time buyer', 0.5, 2, 0.3, 0.4, 0, 0.0, 10.0, 50.0, 1.0, 1.2134845967952728661),
	('a + b < 1, repeat buyer', 0.5, 2, 0.3, 0.4, 3, 8.0, 10.0, 50.0, 0.80865837323155813034, 8.3862231555504970876),
	('a = 1 exactly', 1, 1, 1, 2, 1, 5.0, 10.0, 20.0, 0.37305699481865284974, 0.8647544582291222874),
	('tiny parameters', 0.001, 0.001, 0.001, 0.001, 1, 1.0, 2.0, 10.0, 0.33329044087692500592, 1.6643039756935378585),
	('huge parameters', 1000, 10000, 1000, 1000, 5, 30.0, 40.0, 100.0, 0.26943267800356757467, 0.53673637468650755696),
	('first seen today', 0.2426, 4.4135, 0.7929, 2.4258, 0, 0.0, 0.0, 39.0, 1.0, 1.1950518784095005671);

SELECT label,
	   close_to(post_purchase.bgnbd_p_alive(m, x, t_x, t), p_alive) AS p_alive_ok,
	   close_to(post_purchase.bgnbd_expected_purchases(m, x, t_x, t, horizon), expected) AS expected_ok,
	   post_purchase.bgnbd_expected_purchases(m, x, t_x, t, horizon) BETWEEN 0 AND 'Infinity'::float8
		   AND post_purchase.bgnbd_expected_purchases(m, x, t_x, t, horizon) < 'Infinity' AS finite_and_non_negative
FROM cases, LATERAL (SELECT ROW(r, alpha, a, b, NULL, NULL, true)::post_purchase.bgnbd_model AS m) model;

-- the population curve E[X(t)] at the published CDNOW parameters
SELECT t, close_to(post_purchase.bgnbd_expected_purchases(
			ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model, t), reference) AS ok
FROM (VALUES
	(1, 0.053186655949239601628),
	(39, 1.1950518784095005671),
	(78, 1.8580217586441486984),
	(520, 4.9688290220603383563)) v(t, reference);

-- P(X(t) = n) at the published CDNOW parameters
SELECT t, n, close_to(post_purchase.bgnbd_probability_of_purchases(
			ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model, t, n), reference) AS ok
FROM (VALUES
	(39, 0, 0.5742970838734891119),
	(39, 1, 0.19919661065602669871),
	(39, 2, 0.085324573616879440295),
	(39, 5, 0.017938968482309389114),
	(78, 10, 0.0061088075167923014963),
	(1, 0, 0.95166169828379703203)) v(t, n, reference);

-- probabilities over n sum to 1
SELECT round(sum(post_purchase.bgnbd_probability_of_purchases(
			ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model, 39, n))::numeric, 9) AS total
FROM generate_series(0, 2000) n;

-- the limits: no time, no purchase; x = 0 is alive for sure
SELECT post_purchase.bgnbd_expected_purchases(m, 2, 30, 38, 0) AS conditional_at_0,
	   post_purchase.bgnbd_expected_purchases(m, 0) AS population_at_0,
	   post_purchase.bgnbd_probability_of_purchases(m, 0, 0) AS p0_at_0,
	   post_purchase.bgnbd_probability_of_purchases(m, 0, 3) AS p3_at_0,
	   post_purchase.bgnbd_p_alive(m, 0, 0, 38) AS p_alive_x0
FROM (SELECT ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model AS m) model;

-- expected purchases grow with the horizon and never exceed the population
-- rate times the horizon for a one-time buyer
SELECT bool_and(e2 >= e1) AS monotone
FROM (SELECT post_purchase.bgnbd_expected_purchases(m, 1, 10, 38, h) AS e1,
			 post_purchase.bgnbd_expected_purchases(m, 1, 10, 38, h * 1.5) AS e2
	  FROM (SELECT ROW(0.2426, 4.4135, 0.7929, 2.4258, NULL, NULL, true)::post_purchase.bgnbd_model AS m) model,
		   generate_series(1, 2000, 7) h) s;

DROP TABLE cases;
DROP FUNCTION close_to;
