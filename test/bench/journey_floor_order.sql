-- journey_floor_order.sql: the rows a first order writes with the 8 seed
-- journeys enabled (run_journey_bench.sh), written by plain SQL into copies
-- of the extension's tables (schema floor: same columns, defaults, checks,
-- indexes and foreign keys; no triggers): the order, the customer's state
-- and purchase day, its lifecycle_new membership, the 5 enrollments of the
-- journeys a first order enters, and the thank-you fired (its outbox row,
-- its outcome, its enrollment completed).  No reads, rules or functions of
-- the extension run: how fast these writes alone go bounds what tracking
-- with these journeys can reach.
BEGIN;
INSERT INTO plain_orders (customer_id, ordered_at, amount) VALUES (nextval('customers'), clock_timestamp(), 10);
INSERT INTO floor.customer_state
VALUES (currval('customers')::text, 1, 10, now(), now(), 1, current_date, current_date, 10, now());
INSERT INTO floor.customer_days VALUES (currval('customers')::text, current_date, 1, 10, now(), now());
INSERT INTO floor.segment_memberships (customer_id, segment) VALUES (currval('customers')::text, 'lifecycle_new');
INSERT INTO floor.enrollments (journey, customer_id, anchor_at, context, holdout, next_position, next_fire_at)
SELECT v.journey, currval('customers')::text, now(),
	   jsonb_build_object('order', jsonb_build_object('order_id', currval('orders_order_id_seq'),
	   'customer_id', currval('customers'), 'ordered_at', now(), 'amount', 10)),
	   false, 1, now() + v.delay
FROM (VALUES ('thank_you', interval '0'), ('how_to_guide', '2 days'), ('nps_survey', '7 days'),
			 ('review_request', '14 days'), ('cross_sell', '30 days')) v(journey, delay);
WITH fired AS (
	INSERT INTO floor.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
	SELECT e.customer_id, 'thank_you', jsonb_build_object('subject', 'Thank you for your order',
		   'customer_id', e.customer_id, 'order', e.context -> 'order'), 'webhook', 'thank_you', 'thank_you', e.enrollment_id
	FROM floor.enrollments e
	WHERE e.customer_id = currval('customers')::text AND e.journey = 'thank_you' AND e.status = 'active'
	RETURNING id, enrollment_id, step, journey, aggregateid, channel)
INSERT INTO floor.step_outcomes (enrollment_id, step, journey, customer_id, holdout, outcome, channel, outbox_id)
SELECT f.enrollment_id, f.step, f.journey, f.aggregateid, false, 'fired', f.channel, f.id FROM fired f;
UPDATE floor.enrollments e SET status = 'completed', next_position = NULL, next_fire_at = NULL, ended_at = now(),
	   end_reason = 'completed'
WHERE e.customer_id = currval('customers')::text AND e.journey = 'thank_you' AND e.status = 'active';
COMMIT;
