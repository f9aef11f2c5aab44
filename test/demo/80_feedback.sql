-- Feedback back into the program: CSAT answers next to the NPS ones, each
-- customer's latest answer kept in the state by a trigger on the shop's
-- answers table, and a customer entering the detractors segment the moment
-- a low score arrives.  The CSAT answers are synthetic and deterministic:
-- one for every second NPS answer, an hour after it, on a 1-5 scale that
-- follows the NPS score.

CREATE TABLE shop.feedback (
	answer_id bigint PRIMARY KEY,
	customer_id bigint NOT NULL,
	answered_at timestamptz NOT NULL,
	score integer NOT NULL,
	kind text NOT NULL
);
INSERT INTO shop.feedback
SELECT answer_id, customer_id, answered_at, score, 'nps' FROM shop.survey_answers;
INSERT INTO shop.feedback
SELECT a.answer_id + m.top, a.customer_id, a.answered_at + interval '1 hour',
	   least(5, greatest(1, a.score / 2 + a.answer_id::integer % 3 - 1)), 'csat'
FROM shop.survey_answers a CROSS JOIN (SELECT max(answer_id) AS top FROM shop.survey_answers) m
WHERE a.answer_id % 2 = 0;

\echo
\echo '== CSAT by month: top-2-box share of the 1-5 answers, with its 95% Wilson interval =='
SELECT month, (s).responses, (s).satisfied, round((s).csat, 1) AS csat,
	   round((s).ci_low, 1) AS ci_low, round((s).ci_high, 1) AS ci_high, round((s).mean, 2) AS mean
FROM (SELECT date_trunc('month', answered_at AT TIME ZONE 'UTC')::date AS month,
			 post_purchase.csat_summary(score) AS s
	  FROM shop.feedback WHERE kind = 'csat' GROUP BY 1) q
ORDER BY month LIMIT 12;

\echo
\echo '== The answers tracked: every customer''s latest NPS and CSAT in the state =='
SELECT post_purchase.track_survey_answers('shop.feedback');
SELECT count(last_nps) AS customers_with_nps, count(last_csat) AS customers_with_csat,
	   count(*) FILTER (WHERE last_nps <= 6) AS latest_nps_detractors
FROM post_purchase.customer_state;
SELECT segment, entered AS members FROM post_purchase.refresh_segments() WHERE segment = 'detractors';

\echo
\echo '== A promoter answers 3 out of 10: they enter the detractors segment with the answer =='
SELECT customer_id AS unhappy FROM post_purchase.customer_state
WHERE last_nps >= 9 ORDER BY customer_id LIMIT 1 \gset
-- decided in the answer's own transaction, so the next query sees it
SET post_purchase.decide_in = 'order';
INSERT INTO shop.feedback (answer_id, customer_id, answered_at, score, kind)
SELECT max(answer_id) + 1, :unhappy, :'demo_today'::timestamptz - interval '1 hour', 3, 'nps' FROM shop.feedback;
RESET post_purchase.decide_in;
SELECT customer_id, last_nps, segment
FROM post_purchase.customer_state s
JOIN post_purchase.segment_memberships m USING (customer_id)
WHERE s.customer_id = :'unhappy' AND m.segment = 'detractors' AND m.exited_at IS NULL;
