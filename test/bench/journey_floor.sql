-- journey_floor.sql: the floors of run_journey_bench.sh's insert runs, by
-- plain SQL into copies of the extension's tables (schema floor: same
-- columns, defaults, checks, indexes and foreign keys; no triggers).  No
-- reads, rules or functions of the extension run; each is one call per
-- pgbench transaction: one round trip with cached plans, as the trigger's
-- statements have.
--   floor.order_write(): what an order's transaction writes when a worker
--     decides (post_purchase.decide_in = worker, or auto with workers): the
--     order and the customer's state row, with its change mark.
--   floor.decide_batch(n): what the workers write for n first orders, set-based
--     in one transaction: n lifecycle_new memberships, the 5 enrollments of
--     each, the thank-you's outbox row and outcome.  Less than the workers
--     write: the thank-you's enrollment is written completed at once (the
--     workers insert it, then complete it when they fire it), and no change
--     mark is cleared.
--   floor.first_order(): everything a first order leads to with the 8 seed
--     journeys enabled, as the order's transaction wrote it when it decided
--     itself: the order, the state, its lifecycle_new membership, the 5
--     enrollments of the journeys a first order enters, and the thank-you
--     fired (its outbox row, its outcome, its enrollment completed).
CREATE SCHEMA floor;
CREATE TABLE floor.customer_state (LIKE post_purchase.customer_state INCLUDING ALL);
CREATE TABLE floor.segment_memberships (LIKE post_purchase.segment_memberships INCLUDING ALL,
	FOREIGN KEY (segment) REFERENCES post_purchase.segments);
CREATE TABLE floor.enrollments (LIKE post_purchase.enrollments INCLUDING ALL,
	FOREIGN KEY (journey) REFERENCES post_purchase.journeys);
CREATE TABLE floor.outbox (LIKE post_purchase.outbox INCLUDING ALL);
CREATE TABLE floor.step_outcomes (LIKE post_purchase.step_outcomes INCLUDING ALL);

CREATE FUNCTION floor.first_order() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	c text;
	o bigint;
BEGIN
	INSERT INTO plain_orders (customer_id, ordered_at, amount) VALUES (nextval('customers'), clock_timestamp(), 10)
	RETURNING customer_id::text, order_id INTO c, o;
	INSERT INTO floor.customer_state (customer_id, orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day, first_day_revenue, updated_at, changed_at, order_seq, decided_seq)
		VALUES (c, 1, 10, now(), now(), 1, current_date, current_date, 10, now(), now(), 1, 0);
	INSERT INTO floor.segment_memberships (customer_id, segment) VALUES (c, 'lifecycle_new');
	INSERT INTO floor.enrollments (journey, customer_id, anchor_at, context, holdout, next_position, next_fire_at)
	SELECT v.journey, c, now(),
		   jsonb_build_object('order', jsonb_build_object('order_id', o, 'customer_id', c::bigint, 'ordered_at', now(),
			   'amount', 10)),
		   false, 1, now() + v.delay
	FROM (VALUES ('thank_you', interval '0'), ('how_to_guide', '2 days'), ('nps_survey', '7 days'),
				 ('review_request', '14 days'), ('cross_sell', '30 days')) v(journey, delay);
	WITH fired AS (
		INSERT INTO floor.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
		SELECT e.customer_id, 'thank_you', jsonb_build_object('subject', 'Thank you for your order',
			   'customer_id', e.customer_id, 'order', e.context -> 'order'), 'webhook', 'thank_you', 'thank_you',
			   e.enrollment_id
		FROM floor.enrollments e WHERE e.customer_id = c AND e.journey = 'thank_you' AND e.status = 'active'
		RETURNING id, enrollment_id, step, journey, aggregateid, channel)
	INSERT INTO floor.step_outcomes (enrollment_id, step, journey, customer_id, holdout, outcome, channel, outbox_id)
	SELECT f.enrollment_id, f.step, f.journey, f.aggregateid, false, 'fired', f.channel, f.id FROM fired f;
	UPDATE floor.enrollments e SET status = 'completed', next_position = NULL, next_fire_at = NULL, ended_at = now(),
		   end_reason = 'completed'
	WHERE e.customer_id = c AND e.journey = 'thank_you' AND e.status = 'active';
END
$$;

CREATE FUNCTION floor.order_write() RETURNS void LANGUAGE sql AS $$
	WITH o AS (INSERT INTO plain_orders (customer_id, ordered_at, amount)
			   VALUES (nextval('customers'), clock_timestamp(), 10) RETURNING customer_id::text AS c)
	INSERT INTO floor.customer_state (customer_id, orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day, first_day_revenue, updated_at, changed_at, order_seq, decided_seq)
	SELECT o.c, 1, 10, now(), now(), 1, current_date, current_date, 10, now(), now(), 1, 0
	FROM o;
$$;

CREATE FUNCTION floor.decide_batch(n integer) RETURNS void LANGUAGE sql AS $$
	WITH c AS (SELECT nextval('customers')::text AS id FROM generate_series(1, n)),
	m AS (INSERT INTO floor.segment_memberships (customer_id, segment) SELECT c.id, 'lifecycle_new' FROM c),
	e AS (
		INSERT INTO floor.enrollments (journey, customer_id, anchor_at, context, holdout, status, next_position,
									   next_fire_at, ended_at, end_reason)
		SELECT v.journey, c.id, now(),
			   jsonb_build_object('order', jsonb_build_object('order_id', 0, 'customer_id', c.id::bigint,
															  'ordered_at', now(), 'amount', 10)),
			   false, CASE WHEN v.fired THEN 'completed' ELSE 'active' END, CASE WHEN NOT v.fired THEN 1 END,
			   CASE WHEN NOT v.fired THEN now() + v.delay END, CASE WHEN v.fired THEN now() END,
			   CASE WHEN v.fired THEN 'completed' END
		FROM c CROSS JOIN (VALUES ('thank_you', interval '0', true), ('how_to_guide', '2 days', false),
								  ('nps_survey', '7 days', false), ('review_request', '14 days', false),
								  ('cross_sell', '30 days', false)) v(journey, delay, fired)
		RETURNING enrollment_id, journey, customer_id, context),
	fired AS (
		INSERT INTO floor.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
		SELECT e.customer_id, 'thank_you', jsonb_build_object('subject', 'Thank you for your order',
			   'customer_id', e.customer_id, 'order', e.context -> 'order'), 'webhook', 'thank_you', 'thank_you',
			   e.enrollment_id
		FROM e WHERE e.journey = 'thank_you'
		RETURNING id, enrollment_id, step, journey, aggregateid, channel)
	INSERT INTO floor.step_outcomes (enrollment_id, step, journey, customer_id, holdout, outcome, channel, outbox_id)
	SELECT f.enrollment_id, f.step, f.journey, f.aggregateid, false, 'fired', f.channel, f.id FROM fired f;
$$;
