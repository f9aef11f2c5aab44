-- What is loaded: the orders and the survey answers, at a glance.

\echo
\echo '== The data =='
SELECT count(*) AS orders,
	   count(DISTINCT customer_id) AS customers,
	   min(ordered_at)::date AS first_day,
	   max(ordered_at)::date AS last_day,
	   sum(quantity) AS items,
	   sum(amount) AS revenue
FROM shop.orders;

SELECT count(*) AS survey_answers,
	   count(DISTINCT customer_id) AS customers,
	   min(answered_at)::date AS first_day,
	   max(answered_at)::date AS last_day
FROM shop.survey_answers;
