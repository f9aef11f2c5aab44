-- Segments: rules over customer_metrics, memberships with history, changes
\set SHOW_CONTEXT never
-- caused by orders (in the order's transaction) and by time (refresh).
SET TimeZone = 'UTC';
UPDATE post_purchase.settings SET value = '2025-01-01' WHERE name = 'today';
CREATE SCHEMA shop;
CREATE TABLE shop.orders (order_id serial PRIMARY KEY, customer_id integer, ordered_at timestamptz, amount numeric(10,2));
INSERT INTO shop.orders (customer_id, ordered_at, amount)
SELECT cohort * 1000 + s.customer,
	   timestamptz '2025-01-01 10:00' - s.t * interval '1 day'
		   + round(k * s.recency / greatest(s.frequency, 1)) * interval '1 day',
	   10 + ((s.customer * 37 + k * 11) % 5000) / 100.0
FROM generate_series(1, 4) cohort,
	 LATERAL post_purchase.bgnbd_simulate(ROW(0.8, 40, 0.8, 3, NULL, NULL, true), 150, cohort * 90, cohort) s,
	 LATERAL generate_series(0, s.frequency::int) k;
SELECT post_purchase.track_orders('shop.orders');
SELECT (bgnbd).converged FROM post_purchase.refresh_models();

-- the built-in segments
SELECT name, rule FROM post_purchase.segments WHERE builtin ORDER BY name;

-- a first refresh fills them; a second one changes nothing
SELECT * FROM post_purchase.refresh_segments();
SELECT sum(entered) AS entered, sum(exited) AS exited FROM post_purchase.refresh_segments();

-- every customer is in exactly one lifecycle and at most one RFM segment
SELECT count(*) AS customers_not_in_one_lifecycle
FROM post_purchase.customer_state s
WHERE (SELECT count(*) FROM post_purchase.segment_memberships m
	   WHERE m.customer_id = s.customer_id AND m.segment LIKE 'lifecycle%' AND m.exited_at IS NULL) <> 1;
-- memberships agree with the rules
SELECT count(*) AS disagree
FROM post_purchase.customer_metrics c
WHERE post_purchase.in_segment(c.customer_id, 'win_back') <> (c.orders >= 2 AND c.days_since_last_order >= 180)
   OR post_purchase.in_segment(c.customer_id, 'Champions') <> (c.rfm_segment IS NOT DISTINCT FROM 'Champions');
SELECT count(*) AS win_back_members FROM post_purchase.segment_members('win_back');

-- a marketer's own segment is filled when it is created (issue 19): its
-- members are the customers its rule holds for, each entry recorded in the
-- creating transaction, and a refresh right after changes nothing
BEGIN;
SELECT post_purchase.create_segment('big spenders', 'revenue >= 150 AND p_alive > 0.5');
SELECT count(*) AS entries, count(*) FILTER (WHERE entered_at = now() AND exited_at IS NULL) AS open_entered_now
FROM post_purchase.segment_memberships WHERE segment = 'big spenders';
COMMIT;
SELECT (SELECT count(*) FROM (SELECT * FROM post_purchase.segment_members('big spenders')
							  EXCEPT SELECT customer_id FROM post_purchase.customer_metrics
									 WHERE revenue >= 150 AND p_alive > 0.5) a)
	   + (SELECT count(*) FROM (SELECT customer_id FROM post_purchase.customer_metrics
								WHERE revenue >= 150 AND p_alive > 0.5
								EXCEPT SELECT * FROM post_purchase.segment_members('big spenders')) b)
	   AS members_differ_from_rule;
SELECT c.customer_id AS big_spender FROM post_purchase.customer_metrics c
WHERE c.revenue >= 150 AND c.p_alive > 0.5 ORDER BY c.customer_id LIMIT 1 \gset
SELECT c.customer_id AS small_spender FROM post_purchase.customer_metrics c
WHERE c.revenue < 150 ORDER BY c.customer_id LIMIT 1 \gset
SELECT post_purchase.in_segment(:'big_spender', 'big spenders') AS big_spender_in,
	   post_purchase.in_segment(:'small_spender', 'big spenders') AS small_spender_in;
SELECT segment, entered, exited FROM post_purchase.refresh_segments() WHERE segment = 'big spenders';

-- an order moves its customer between segments in the order's own
-- transaction: a lapsed one-time buyer comes back
SELECT c.customer_id AS lapsed_customer FROM post_purchase.customer_metrics c
WHERE c.lifecycle_stage = 'lapsed' AND c.orders = 1 ORDER BY c.customer_id LIMIT 1 \gset
BEGIN;
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (:lapsed_customer, '2024-12-31 09:00', 30);
SELECT segment, exited_at IS NOT NULL AS exited FROM post_purchase.segment_memberships
WHERE customer_id = :'lapsed_customer' AND segment LIKE 'lifecycle%' ORDER BY segment;
ROLLBACK;
-- rolled back with the order
SELECT segment FROM post_purchase.segment_memberships
WHERE customer_id = :'lapsed_customer' AND exited_at IS NULL AND segment LIKE 'lifecycle%';

-- correcting an order (same customer) re-evaluates on the final state: a
-- repeat buyer stays in its segments, not in those of the state without
-- the order
SELECT c.customer_id AS repeat_customer, c.lifecycle_stage AS repeat_stage FROM post_purchase.customer_metrics c
WHERE c.lifecycle_stage = 'returning' AND c.orders = 2 ORDER BY c.customer_id LIMIT 1 \gset
UPDATE shop.orders SET amount = amount + 1
WHERE order_id = (SELECT max(order_id) FROM shop.orders WHERE customer_id = :repeat_customer);
SELECT segment FROM post_purchase.segment_memberships
WHERE customer_id = :'repeat_customer' AND exited_at IS NULL AND segment LIKE 'lifecycle%';
SELECT count(*) AS disagree FROM post_purchase.segment_memberships m
WHERE m.customer_id = :'repeat_customer' AND m.exited_at IS NULL
  AND m.segment <> 'lifecycle_' || :'repeat_stage'
  AND m.segment <> (SELECT c.rfm_segment FROM post_purchase.customer_metrics c WHERE c.customer_id = :'repeat_customer');

-- an order that changes none of its customer's memberships writes none:
-- the open rows keep their row versions, and no history row is added
SELECT string_agg(m.segment || ':' || m.xmin, ', ' ORDER BY m.segment) AS open_before, count(*) AS rows_before
FROM post_purchase.segment_memberships m WHERE m.customer_id = :'repeat_customer' \gset
INSERT INTO shop.orders (customer_id, ordered_at, amount)
SELECT customer_id, ordered_at + interval '1 minute', 1 FROM shop.orders
WHERE order_id = (SELECT max(order_id) FROM shop.orders WHERE customer_id = :repeat_customer);
SELECT string_agg(m.segment || ':' || m.xmin, ', ' ORDER BY m.segment) FILTER (WHERE m.exited_at IS NULL)
		   = :'open_before' AS open_rows_untouched,
	   count(*) = :rows_before AS no_history_added
FROM post_purchase.segment_memberships m WHERE m.customer_id = :'repeat_customer';

-- a customer whose only order is deleted leaves every segment
DELETE FROM shop.orders WHERE customer_id = :lapsed_customer;
SELECT count(*) AS open_memberships FROM post_purchase.segment_memberships
WHERE customer_id = :'lapsed_customer' AND exited_at IS NULL;
SELECT count(*) AS history_rows FROM post_purchase.segment_memberships WHERE customer_id = :'lapsed_customer';

-- a rule that fails for a customer fails the segment's creation, which
-- evaluates it for every customer (it would fail every refresh too)
SELECT post_purchase.create_segment('fragile', '100 / (orders - 1) > 1');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS fragile_segments FROM post_purchase.segments WHERE name = 'fragile';
-- a rule that fails for some customer does not fail the order; it warns
SELECT post_purchase.create_segment('fragile', 'CASE WHEN customer_id = ''999999'' THEN 100 / (orders - 1) > 1 END');
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999999, '2024-12-31 09:00', 30);
SELECT orders FROM post_purchase.customer_state WHERE customer_id = '999999';
SELECT post_purchase.drop_segment('fragile');

-- adjusting a built-in rule applies it at once (issue 19): the customers
-- the new rule adds enter, recorded in that transaction, and nobody the
-- rule no longer holds for stays; a refresh right after changes nothing
SELECT count(*) AS win_back_before FROM post_purchase.segment_members('win_back') \gset
BEGIN;
SELECT post_purchase.set_segment_rule('win_back', 'orders >= 2 AND days_since_last_order >= 90');
SELECT count(*) > :win_back_before AS more_win_back,
	   count(*) FILTER (WHERE m.entered_at = now()) = count(*) - :win_back_before AS new_ones_entered_now
FROM post_purchase.segment_memberships m WHERE m.segment = 'win_back' AND m.exited_at IS NULL;
SELECT count(*) AS entered_by_90 FROM post_purchase.segment_memberships m
WHERE m.segment = 'win_back' AND m.entered_at = now() \gset
COMMIT;
SELECT count(*) AS disagree
FROM post_purchase.customer_metrics c
WHERE post_purchase.in_segment(c.customer_id, 'win_back') <> (c.orders >= 2 AND c.days_since_last_order >= 90);
SELECT segment, entered, exited FROM post_purchase.refresh_segments() WHERE segment = 'win_back';
-- and back: the members the stricter rule leaves out exit at once, each
-- exit recorded in that transaction
BEGIN;
SELECT post_purchase.set_segment_rule('win_back', 'orders >= 2 AND days_since_last_order >= 180');
SELECT count(*) = :entered_by_90 AS the_same_ones_exit_now FROM post_purchase.segment_memberships
WHERE segment = 'win_back' AND exited_at = now();
COMMIT;
SELECT count(*) = :win_back_before AS back_to_before,
	   count(*) FILTER (WHERE c.days_since_last_order < 180) AS members_under_180_days
FROM post_purchase.segment_members('win_back') w JOIN post_purchase.customer_metrics c ON c.customer_id = w;
SELECT segment, entered, exited FROM post_purchase.refresh_segments() WHERE segment = 'win_back';

-- the order trigger sees segment changes made in other sessions' transactions
SELECT post_purchase.create_segment('everyone', 'true');
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999998, '2024-12-31 09:00', 30);
SELECT post_purchase.in_segment('999998', 'everyone');

-- a rule runs as its segment's owner, at order time and in refresh_segments()
CREATE ROLE segment_owner;
SELECT post_purchase.create_segment('owned', 'current_user = ''segment_owner''');
UPDATE post_purchase.segments SET owner = 'segment_owner' WHERE name = 'owned';
-- the rule holds only when it runs as segment_owner; the owner needs no
-- right on customer_metrics: the rule sees the customer's row of it, as in
-- refresh_segments()
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999996, '2024-12-31 10:00', 30);
SELECT post_purchase.in_segment('999996', 'owned') AS member_as_its_owner,
	   post_purchase.in_segment('999996', 'everyone') AS other_owners_rules_too;
-- refresh_segments() grants the owner its temporary metrics: everyone else enters
SELECT entered = (SELECT count(*) - 1 FROM post_purchase.customer_state) AS everyone_else_entered_as_its_owner
FROM post_purchase.refresh_segments() WHERE segment = 'owned';
-- a role granted write access to the segments may not make another role
-- an owner: its rules would run with that role's rights
GRANT SELECT, INSERT, UPDATE ON post_purchase.segments TO segment_owner;
SET ROLE segment_owner;
UPDATE post_purchase.segments SET owner = 'postgres' WHERE name = 'owned';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO post_purchase.segments (name, rule, owner) VALUES ('borrowed', 'true', 'postgres');
\echo :LAST_ERROR_SQLSTATE
-- nor change the rule of a segment another role owns (it runs as that role)
UPDATE post_purchase.segments SET rule = 'true' WHERE name = 'lifecycle_new';
\echo :LAST_ERROR_SQLSTATE
-- its own segments it may write
INSERT INTO post_purchase.segments (name, rule) VALUES ('its_own', 'true');
UPDATE post_purchase.segments SET rule = 'orders > 0' WHERE name = 'owned';
RESET ROLE;
SELECT rule FROM post_purchase.segments WHERE name = 'lifecycle_new';
SELECT name, owner FROM post_purchase.segments WHERE name IN ('owned', 'borrowed', 'its_own') ORDER BY name;
-- a superuser may name any role
UPDATE post_purchase.segments SET owner = 'segment_owner' WHERE name = 'its_own';
SELECT post_purchase.drop_segment('its_own');
SELECT post_purchase.drop_segment('owned');
DROP OWNED BY segment_owner;
DROP ROLE segment_owner;

-- the order trigger reads what the metrics are computed with (the settings,
-- the newest model and RFM cut points) once, and again after any of them
-- changes: each change is seen by the next order, whose memberships agree
-- with the rules over customer_metrics
CREATE FUNCTION pg_temp.disagreements(customer text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	seg record;
	holds boolean;
	n bigint := 0;
BEGIN
	FOR seg IN SELECT s.name, s.rule FROM post_purchase.segments s LOOP
		EXECUTE format('SELECT (%s) FROM post_purchase.customer_metrics WHERE customer_id = $1', seg.rule)
			INTO holds USING customer;
		IF coalesce(holds, false) <> post_purchase.in_segment(customer, seg.name) THEN
			n := n + 1;
		END IF;
	END LOOP;
	RETURN n;
END
$$;
CREATE FUNCTION pg_temp.open_segments(customer text) RETURNS text LANGUAGE sql AS $$
SELECT string_agg(m.segment, ', ' ORDER BY m.segment) FROM post_purchase.segment_memberships m
WHERE m.customer_id = customer AND m.exited_at IS NULL$$;
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999990, '2024-12-31 09:00', 30);
SELECT pg_temp.open_segments('999990'), pg_temp.disagreements('999990');
-- a setting: lapsed after 0 days
UPDATE post_purchase.settings SET value = '0' WHERE name = 'lapsed_after_days';
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999990, '2024-12-31 10:00', 30);
SELECT pg_temp.open_segments('999990'), pg_temp.disagreements('999990');
UPDATE post_purchase.settings SET value = '180' WHERE name = 'lapsed_after_days';
-- the pinned today: a year later, the customer is lapsed by the default threshold
UPDATE post_purchase.settings SET value = '2026-01-01' WHERE name = 'today';
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999990, '2024-12-31 11:00', 30);
SELECT pg_temp.open_segments('999990'), pg_temp.disagreements('999990');
UPDATE post_purchase.settings SET value = '2025-01-01' WHERE name = 'today';
-- new RFM cut points: this customer's one purchase day is now the top frequency quintile
INSERT INTO post_purchase.rfm_cuts
SELECT now() + interval '1 hour', r.recency_cuts, '{0,0,0,0}', r.monetary_cuts
FROM post_purchase.rfm_cuts r ORDER BY r.computed_at DESC LIMIT 1;
INSERT INTO shop.orders (customer_id, ordered_at, amount) VALUES (999990, '2024-12-31 12:00', 30);
SELECT pg_temp.open_segments('999990'), pg_temp.disagreements('999990');
-- no model any more: no clv_12m, so the vip segment holds for nobody
SELECT count(*) > 0 AS some_vip_before FROM post_purchase.segment_members('vip');
DELETE FROM post_purchase.models;
INSERT INTO shop.orders (customer_id, ordered_at, amount)
SELECT v::integer, '2024-12-31 13:00', 30 FROM post_purchase.segment_members('vip') v ORDER BY v LIMIT 1
RETURNING customer_id AS vip_customer \gset
SELECT post_purchase.in_segment(:'vip_customer', 'vip') AS still_vip, pg_temp.disagreements(:'vip_customer');

SELECT count(*) AS differences FROM post_purchase.verify_state();
SELECT post_purchase.untrack_orders('shop.orders');
SELECT post_purchase.drop_segment('everyone');
SELECT post_purchase.drop_segment('big spenders');
SELECT post_purchase.set_segment_rule('win_back', 'orders >= 2 AND days_since_last_order >= 180');
DELETE FROM post_purchase.segment_memberships;
DELETE FROM post_purchase.models;
DELETE FROM post_purchase.rfm_cuts;
UPDATE post_purchase.settings SET value = '' WHERE name = 'today';
DROP SCHEMA shop CASCADE;
