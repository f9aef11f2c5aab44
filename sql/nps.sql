-- nps and nps_summary against hand-computed cases.

-- one answer of every score: 2 promoters (9, 10), 2 passives (7, 8), 7 detractors
-- NPS = 100 * (2 - 7) / 11 = -45.45...; variance = 9/11 - (5/11)^2
-- margin = 1.96 * 100 * sqrt(0.6115702479 / 11) = 46.2149942655...
SELECT post_purchase.nps(s) FROM generate_series(0, 10) s;
SELECT (post_purchase.nps_summary(s)).* FROM generate_series(0, 10) s;

-- 50 promoters, 30 passives, 20 detractors: NPS 30,
-- margin = 1.96 * 100 * sqrt((0.5 + 0.2 - 0.3^2) / 100) = 15.308089...
CREATE TABLE answers (id int, month int, score int);
INSERT INTO answers
SELECT i, 1, CASE WHEN i <= 50 THEN 9 + i % 2 WHEN i <= 80 THEN 7 + i % 2 ELSE i % 7 END
FROM generate_series(1, 100) i;
SELECT post_purchase.nps(score) = 30 AS nps_is_30,
	   round((post_purchase.nps_summary(score)).margin_of_error, 6) AS margin
FROM answers;

-- the extremes
SELECT post_purchase.nps(s) FROM (VALUES (9), (10), (10)) v(s);
SELECT post_purchase.nps(s) FROM (VALUES (0), (6), (3)) v(s);
SELECT post_purchase.nps(s) FROM (VALUES (7), (8)) v(s);
-- one answer: the margin of error is 0, not NaN
SELECT (post_purchase.nps_summary(s)).* FROM (VALUES (10)) v(s);

-- NULL answers are ignored; no answers at all give NULL like avg()
SELECT post_purchase.nps(s) FROM (VALUES (10), (NULL), (0), (NULL)) v(s);
SELECT post_purchase.nps(s) FROM (VALUES (NULL::int)) v(s);
SELECT post_purchase.nps(s) FROM generate_series(1, 0) s;
-- nps_summary counts zero responses instead, like count()
SELECT (post_purchase.nps_summary(s)).* FROM generate_series(1, 0) s;
SELECT (post_purchase.nps_summary(s)).* FROM (VALUES (NULL::int)) v(s);

-- agrees with the count(*) FILTER formula, per group
INSERT INTO answers
SELECT i, 2 + i % 3, (i * 7919) % 11 FROM generate_series(101, 3000) i;
SELECT month,
	   post_purchase.nps(score) AS nps,
	   post_purchase.nps(score) = 100.0 * (count(*) FILTER (WHERE score >= 9)
										  - count(*) FILTER (WHERE score <= 6)) / count(*) AS matches_filter_formula
FROM answers GROUP BY month ORDER BY month;

-- as a window aggregate: the running NPS of the first five answers
SELECT id, score, post_purchase.nps(score) OVER (ORDER BY id) AS running_nps
FROM answers WHERE id IN (1, 2, 81, 82, 83) ORDER BY id;

-- any role may compute metrics
CREATE ROLE nps_analyst;
SET ROLE nps_analyst;
SELECT post_purchase.nps(s) FROM (VALUES (10), (5)) v(s);
RESET ROLE;
DROP ROLE nps_analyst;
DROP TABLE answers;
