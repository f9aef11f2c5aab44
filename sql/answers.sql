-- Survey answers back into the program: track_survey_answers() keeps each
-- customer's latest NPS and CSAT answer in customer_state (src/answers.c),
-- the rules read them (the detractors segment), a new answer re-decides the
-- customer's segments like an order, and an answer carrying a message's
-- token is a response in journey_stats.  Hand-computed cases; every bad
-- input with its SQLSTATE.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET client_min_messages = warning;
SET post_purchase.decide_in = 'order';
UPDATE post_purchase.settings SET value = '2024-03-01' WHERE name = 'today';
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');

CREATE TABLE ans_orders (order_id int PRIMARY KEY, customer_id bigint, ordered_at timestamptz, amount numeric);
INSERT INTO ans_orders VALUES (1, 1, '2024-01-10 10:00+00', 50), (2, 2, '2024-01-11 10:00+00', 70),
	(3, 3, '2024-01-12 10:00+00', 30);
SELECT post_purchase.track_orders('ans_orders');

CREATE TABLE ans (answer_id serial PRIMARY KEY, customer_id bigint, answered_at timestamptz, score integer,
				  kind text, token text, note text, score_text text, at_date date);
-- before tracking: customer 1's latest NPS is the 9 of Feb 2 (the 3 is
-- older); customer 4 has no order, so no state row to keep it in
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES
	(1, '2024-02-01 09:00+00', 3, 'nps'), (1, '2024-02-02 09:00+00', 9, 'nps'),
	(1, '2024-02-03 09:00+00', 4, 'csat'), (4, '2024-02-01 09:00+00', 0, 'nps');

-- bad inputs, each with its SQLSTATE
SELECT post_purchase.track_survey_answers('ans', customer_column => 'buyer');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('ans', score_column => 'score_text');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('ans', answered_at_column => 'at_date');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('ans', kind_column => 'score');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('ans', token_column => 'answer_id');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('ans', csat_scale => 4);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('ans_orders_pkey');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.track_survey_answers('no_such_table');
\echo :LAST_ERROR_SQLSTATE
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT post_purchase.track_survey_answers('ans');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT post_purchase.refresh_survey_answers();
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.untrack_survey_answers('ans');
\echo :LAST_ERROR_SQLSTATE
-- a role allowed to call it, but not to put a trigger on the table
CREATE ROLE ans_clerk;
GRANT USAGE ON SCHEMA post_purchase TO ans_clerk;
GRANT EXECUTE ON FUNCTION post_purchase.track_survey_answers(regclass, name, name, name, name, name, integer)
	TO ans_clerk;
GRANT EXECUTE ON FUNCTION post_purchase.tracked_column_type(regclass, name, text, regtype[]) TO ans_clerk;
GRANT SELECT, INSERT, DELETE ON post_purchase.tracked_survey_answers TO ans_clerk;
SET ROLE ans_clerk;
SELECT post_purchase.track_survey_answers('ans');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- nor may PUBLIC call it
SELECT has_function_privilege('public', 'post_purchase.track_survey_answers(regclass, name, name, name, name, name, integer)',
							  'EXECUTE') AS public_may_track;
SELECT count(*) AS tracked_after_errors FROM post_purchase.tracked_survey_answers;

-- tracking backfills the latest answers of the customers with state; ans
-- has no index on its customer column: one is made, for this trigger
SET client_min_messages = notice;
SELECT post_purchase.track_survey_answers('ans', token_column => 'token');
SET client_min_messages = warning;
SELECT post_purchase.track_survey_answers('ans');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW ans_state AS
	SELECT customer_id, last_nps, last_nps_at, last_csat, last_csat_at, changed_at IS NOT NULL AS marked
	FROM post_purchase.customer_state ORDER BY customer_id;
SELECT * FROM ans_state;
-- the customer index a deleted answer is recomputed through
SELECT indexrelid::regclass AS answers_customer_index FROM pg_index WHERE indrelid = 'ans'::regclass AND NOT indisprimary;

-- a new answer in the order's transaction (decide_in = order): the state
-- and the segments at once; customer 2 answers 4, a detractor
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (2, '2024-02-10 12:00+00', 4, 'nps');
SELECT * FROM ans_state WHERE customer_id = '2';
SELECT customer_id, segment FROM post_purchase.segment_memberships
WHERE segment = 'detractors' AND exited_at IS NULL ORDER BY customer_id;
-- an older answer does not override it (the 10 of Feb 5)
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (2, '2024-02-05 12:00+00', 10, 'nps');
SELECT * FROM ans_state WHERE customer_id = '2';
-- as late an answer: the lower score is kept, whichever came first
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (2, '2024-02-10 12:00+00', 6, 'nps'),
	(2, '2024-02-10 12:00+00', 2, 'nps');
SELECT * FROM ans_state WHERE customer_id = '2';
-- CSAT, the kind in any case; another kind is the shop's own (ignored, silently)
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (3, '2024-02-11 12:00+00', 5, 'CSAT'),
	(3, '2024-02-12 12:00+00', 1, 'ces'), (3, '2024-02-12 12:00+00', 1, NULL);
SELECT * FROM ans_state WHERE customer_id = '3';
-- scores outside the scale, or none: the insert stands, with a warning, and the state is unchanged
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (3, '2024-02-13 12:00+00', 11, 'nps'),
	(3, '2024-02-13 12:00+00', -1, 'nps'), (3, '2024-02-13 12:00+00', 0, 'csat'),
	(3, '2024-02-13 12:00+00', 6, 'csat'), (3, '2024-02-13 12:00+00', NULL, 'nps');
SELECT count(*) AS answers_of_3 FROM ans WHERE customer_id = 3;
SELECT * FROM ans_state WHERE customer_id = '3';
-- no customer or no time: nothing to keep
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (NULL, '2024-02-13 12:00+00', 1, 'nps'),
	(3, NULL, 1, 'nps');
SELECT * FROM ans_state WHERE customer_id = '3';

-- a delete of the kept answer recomputes the latest: customer 2's two
-- answers of Feb 10 12:00 are 4 and 6 once the 2 goes
DELETE FROM ans WHERE customer_id = 2 AND score = 2;
SELECT * FROM ans_state WHERE customer_id = '2';
-- a delete of another answer changes nothing
DELETE FROM ans WHERE customer_id = 2 AND score = 6;
SELECT * FROM ans_state WHERE customer_id = '2';
-- an update of the kept answer: customer 2's 4 becomes a 9, a promoter,
-- who leaves the detractors segment
UPDATE ans SET score = 9 WHERE customer_id = 2 AND score = 4;
SELECT * FROM ans_state WHERE customer_id = '2';
SELECT customer_id, segment, exited_at IS NOT NULL AS exited FROM post_purchase.segment_memberships
WHERE segment = 'detractors' ORDER BY customer_id, entered_at;
-- an update that moves an answer to another customer takes it from one to the other
UPDATE ans SET customer_id = 3 WHERE customer_id = 1 AND kind = 'csat';
SELECT * FROM ans_state WHERE customer_id IN ('1', '3');
-- the delete of every answer of a customer leaves nothing kept
DELETE FROM ans WHERE customer_id = 2;
SELECT * FROM ans_state WHERE customer_id = '2';

-- the rules see the answers: metrics_of() (what the order trigger evaluates
-- rules over) agrees with customer_metrics on every column
CREATE FUNCTION pg_temp.metrics_of_differs() RETURNS bigint LANGUAGE sql AS $$
WITH f AS (
	SELECT m.* FROM post_purchase.customer_state s
	CROSS JOIN (SELECT c.*, post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today
				FROM post_purchase.metrics_context c) ctx
	CROSS JOIN LATERAL post_purchase.metrics_of(s, ctx.today, ctx.lapsed_after_days, ctx.at_risk_after_days,
												ctx.clv_monthly_discount, ctx.model, ctx.cuts) m),
v AS (SELECT * FROM post_purchase.customer_metrics)
SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE v) a) + (SELECT count(*) FROM (TABLE v EXCEPT ALL TABLE f) b)
$$;
SELECT pg_temp.metrics_of_differs() AS metrics_of_differs;
SELECT customer_id, last_nps, last_nps_at, last_csat, last_csat_at FROM post_purchase.customer_metrics
ORDER BY customer_id;
-- a rule over the answers, filled at once (customers 1 and 3)
SELECT post_purchase.create_segment('ans_happy', 'last_nps >= 9 OR last_csat >= 5');
SELECT * FROM post_purchase.segment_members('ans_happy') ORDER BY 1;
SELECT post_purchase.drop_segment('ans_happy');

-- decide_in = worker: the answer marks the customer, and the decision
-- waits for process_changes() (what a worker calls)
SET post_purchase.decide_in = 'worker';
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (3, '2024-02-20 12:00+00', 5, 'nps');
SELECT * FROM ans_state WHERE customer_id = '3';
SELECT count(*) AS detractor_3_before FROM post_purchase.segment_memberships
WHERE segment = 'detractors' AND customer_id = '3' AND exited_at IS NULL;
SELECT order_seq, decided_seq FROM post_purchase.customer_state WHERE customer_id = '3';
SELECT post_purchase.process_changes(10) AS decided;
SELECT * FROM ans_state WHERE customer_id = '3';
SELECT count(*) AS detractor_3_after FROM post_purchase.segment_memberships
WHERE segment = 'detractors' AND customer_id = '3' AND exited_at IS NULL;
-- an older answer changes nothing, so it marks nothing
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (3, '2024-01-20 12:00+00', 10, 'nps');
SELECT * FROM ans_state WHERE customer_id = '3';
SET post_purchase.decide_in = 'order';

-- the seed detractor follow-up, once enabled, enrolls a detractor
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred) VALUES
	('1', 'email', 'one@example.com', true, true), ('3', 'email', 'three@example.com', true, true);
SELECT j.name, j.trigger, j.segment, j.enabled, s.step, s.delay, s.channel, s.payload
FROM post_purchase.journeys j JOIN post_purchase.journey_steps s ON s.journey = j.name
WHERE j.name = 'detractor_follow_up';
SET client_min_messages = error;
SELECT post_purchase.enable_journey('detractor_follow_up');
SET client_min_messages = warning;
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (1, '2024-02-21 12:00+00', 6, 'nps');
SELECT customer_id, journey, status FROM post_purchase.enrollments WHERE journey = 'detractor_follow_up';
SELECT post_purchase.fire_due_steps(10);
SELECT aggregateid, type, channel, address, payload FROM post_purchase.outbox WHERE journey = 'detractor_follow_up';
SELECT post_purchase.disable_journey('detractor_follow_up');

-- the NPS survey's payload carries the customer, the order and the token
-- (the message id); an answer with the token is the step's response
SET client_min_messages = error;
SELECT post_purchase.enable_journey('nps_survey');
SET client_min_messages = warning;
INSERT INTO ans_orders VALUES (4, 1, '2024-02-22 10:00+00', 20), (5, 3, '2024-02-22 11:00+00', 25);
UPDATE post_purchase.enrollments SET next_fire_at = now() - interval '1 second'
WHERE journey = 'nps_survey' AND status = 'active';
SELECT post_purchase.fire_due_steps(10);
SELECT aggregateid, payload - 'token' AS payload, payload ->> 'token' = id::text AS token_is_message_id
FROM post_purchase.outbox WHERE journey = 'nps_survey' ORDER BY aggregateid;
-- customer 1 answers with their token (in upper case, as some tools send
-- it); customer 3 answers with customer 1's token, which is not theirs,
-- and then twice with their own: one response each
INSERT INTO ans (customer_id, answered_at, score, kind, token)
SELECT 1, '2024-02-23 12:00+00', 8, 'nps', upper(id::text) FROM post_purchase.outbox
WHERE journey = 'nps_survey' AND aggregateid = '1';
INSERT INTO ans (customer_id, answered_at, score, kind, token)
SELECT 3, '2024-02-23 12:00+00', 7, 'nps', id::text FROM post_purchase.outbox
WHERE journey = 'nps_survey' AND aggregateid = '1';
SELECT customer_id, responded_at FROM post_purchase.step_outcomes WHERE journey = 'nps_survey' ORDER BY customer_id;
INSERT INTO ans (customer_id, answered_at, score, kind, token)
SELECT 3, '2024-02-24 12:00+00', 9, 'nps', id::text FROM post_purchase.outbox
WHERE journey = 'nps_survey' AND aggregateid = '3';
INSERT INTO ans (customer_id, answered_at, score, kind, token)
SELECT 3, '2024-02-25 12:00+00', 10, 'nps', id::text FROM post_purchase.outbox
WHERE journey = 'nps_survey' AND aggregateid = '3';
SELECT customer_id, responded_at FROM post_purchase.step_outcomes WHERE journey = 'nps_survey' ORDER BY customer_id;
SELECT journey, step, variant, fired, responses, response_rate FROM post_purchase.journey_stats
WHERE journey IN ('nps_survey', 'detractor_follow_up') ORDER BY journey;
SELECT post_purchase.disable_journey('nps_survey');
SELECT * FROM ans_state;

-- re-tracking the orders rebuilds the state, and the answers come back
SELECT post_purchase.untrack_orders('ans_orders');
SELECT count(*) AS state_rows FROM post_purchase.customer_state;
SELECT post_purchase.track_orders('ans_orders');
SELECT * FROM ans_state;
SELECT count(*) AS differences FROM post_purchase.verify_state();
-- refresh_survey_answers() recomputes them all and finds nothing to change
SELECT post_purchase.refresh_survey_answers() AS refreshed;

-- TRUNCATE of the answers empties the answers of the state
TRUNCATE ans;
SELECT * FROM ans_state;
INSERT INTO ans (customer_id, answered_at, score, kind) VALUES (1, '2024-02-26 12:00+00', 2, 'nps');
SELECT * FROM ans_state WHERE customer_id = '1';

-- a renamed column stops answers with a clear error until tracking is redone
ALTER TABLE ans RENAME COLUMN kind TO question;
INSERT INTO ans (customer_id, answered_at, score, question) VALUES (1, '2024-02-27 12:00+00', 2, 'nps');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE ans RENAME COLUMN question TO kind;

-- untracking removes the triggers and the kept answers
SELECT post_purchase.untrack_survey_answers('ans');
SELECT * FROM ans_state WHERE customer_id = '1';
SELECT count(*) AS answer_triggers FROM pg_trigger WHERE tgrelid = 'ans'::regclass AND NOT tgisinternal;
SELECT post_purchase.untrack_survey_answers('ans');
\echo :LAST_ERROR_SQLSTATE

-- clean up
SELECT post_purchase.untrack_orders('ans_orders');
DROP VIEW ans_state;
DROP TABLE ans, ans_orders;
DELETE FROM post_purchase.outbox;
DELETE FROM post_purchase.enrollments;
DELETE FROM post_purchase.segment_memberships;
DELETE FROM post_purchase.customer_channels;
REVOKE ALL ON post_purchase.tracked_survey_answers FROM ans_clerk;
REVOKE ALL ON FUNCTION post_purchase.track_survey_answers(regclass, name, name, name, name, name, integer) FROM ans_clerk;
REVOKE ALL ON FUNCTION post_purchase.tracked_column_type(regclass, name, text, regtype[]) FROM ans_clerk;
REVOKE USAGE ON SCHEMA post_purchase FROM ans_clerk;
DROP ROLE ans_clerk;
UPDATE post_purchase.settings SET value = '' WHERE name = 'today';
UPDATE post_purchase.settings SET value = '21:00' WHERE name = 'quiet_hours_start';
UPDATE post_purchase.settings SET value = '08:00' WHERE name = 'quiet_hours_end';
RESET post_purchase.decide_in;
RESET client_min_messages;
