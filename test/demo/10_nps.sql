-- NPS by month, with the 95% margin of error: a month's move only means
-- something when it is larger than the margins.

\echo
\echo '== NPS by month (margin of error: 95%, in points) =='
SELECT to_char(month, 'YYYY-MM') AS month,
	   (s).responses,
	   round((s).nps, 1) AS nps,
	   round((s).margin_of_error, 1) AS margin_of_error
FROM (
	SELECT date_trunc('month', answered_at) AS month,
		   post_purchase.nps_summary(score) AS s
	FROM shop.survey_answers
	GROUP BY 1
) AS by_month
ORDER BY by_month.month;

\echo '-- the whole period'
SELECT (s).responses, (s).promoters, (s).passives, (s).detractors,
	   round((s).nps, 1) AS nps,
	   round((s).margin_of_error, 1) AS margin_of_error
FROM (SELECT post_purchase.nps_summary(score) AS s FROM shop.survey_answers) AS total;
