-- Journeys into the outbox: the background worker of this database fires
-- the thank-you of every new order within moments of its commit;
-- post_purchase_sender (sender/) delivers the emails to an SMTP sink the
-- demo starts, acknowledges them and records their delivery; the win-back
-- goes to customers who lapsed.  Journeys run on the real clock
-- (now()), so the orders below are placed now.

\echo
\echo '== Background workers for this database (post_purchase.databases, reloaded) =='
SELECT current_database() AS demo_db \gset
ALTER SYSTEM SET post_purchase.databases = :'demo_db';
-- two workers: one keeps firing while the other runs the scheduled refreshes
ALTER SYSTEM SET post_purchase.workers_per_database = 2;
SELECT pg_reload_conf() AS reloaded;

-- consent: most customers gave an email address, some a phone for SMS
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred)
SELECT s.customer_id, 'email', 'customer' || s.customer_id || '@example.com',
	   hashtext(s.customer_id) % 10 <> 0, true
FROM post_purchase.customer_state s;
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred)
SELECT s.customer_id, 'sms', '+1555' || lpad(s.customer_id, 7, '0'), true, false
FROM post_purchase.customer_state s WHERE hashtext(s.customer_id) % 3 = 0;
-- quiet hours would hold SMS back at night: the demo wants to show messages now
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');

\echo
\echo '== The seed journeys, enabled with one call each =='
SELECT post_purchase.enable_journey(j) FROM unnest(ARRAY['thank_you', 'loyalty_invite', 'review_request', 'win_back']) j;
SELECT name, trigger, enabled, holdout_percent,
	   (SELECT string_agg(s.step || ' +' || s.delay, ', ' ORDER BY s.position)
		FROM post_purchase.journey_steps s WHERE s.journey = j.name) AS steps
FROM post_purchase.journeys j ORDER BY enabled DESC, name;

\echo
\echo '== The last 200 orders of the data replayed now, in their order, one checkout (transaction) =='
\echo '== every 10 ms: the workers fire each thank-you as its order commits =='
CREATE TEMP TABLE replay AS
SELECT row_number() OVER (ORDER BY o.ordered_at, o.order_id) AS n, o.customer_id, o.quantity, o.amount
FROM (SELECT * FROM shop.orders ORDER BY ordered_at DESC, order_id DESC LIMIT 200) o;
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM replay ORDER BY n LOOP
		INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
		SELECT max(order_id) + 1, r.customer_id, clock_timestamp(), r.quantity, r.amount FROM shop.orders;
		COMMIT;
		PERFORM pg_sleep(0.01);
	END LOOP;
END
$$;
-- wait (at most 30 s) for the worker; nothing here calls fire_due_steps()
DO $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM post_purchase.enrollments e
							  WHERE e.status = 'active' AND e.next_fire_at <= clock_timestamp());
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT journey, step, count(*) AS messages FROM post_purchase.outbox GROUP BY journey, step ORDER BY journey;
-- from an order's insert to its thank-you's firing transaction, in milliseconds
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50_ms,
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p99_ms
FROM (SELECT extract(epoch FROM created_at - (payload -> 'order' ->> 'ordered_at')::timestamptz) * 1000 AS ms
	  FROM post_purchase.outbox WHERE journey = 'thank_you') l;
SELECT outcome, coalesce(reason, '') AS reason, count(*) FROM post_purchase.step_outcomes
GROUP BY 1, 2 ORDER BY 1, 2;
SELECT worker, steps_fired > 0 AS has_fired, last_error FROM post_purchase.worker_status ORDER BY worker;

\echo
\echo '== One message as a sender or Debezium sees it =='
SELECT id IS NOT NULL AS has_uuid, aggregatetype, aggregateid, type, channel, address, journey, payload
FROM post_purchase.outbox WHERE journey = 'thank_you' ORDER BY aggregateid::bigint LIMIT 1;

\echo
\echo '== post_purchase_sender delivers them: an SMTP sink (aiosmtpd) and the sender, started for the demo =='
-- the sender's login role: a member of post_purchase_sender, which may run
-- outbox_claim, outbox_ack, outbox_fail and record_event and nothing else
-- (roles are cluster-wide: made once, its password set again each run)
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'post_purchase_demo_mailer') THEN
		CREATE ROLE post_purchase_demo_mailer LOGIN IN ROLE post_purchase_sender;
	END IF;
END
$$;
\getenv mailer_password PP_DEMO_MAILER_PASSWORD
ALTER ROLE post_purchase_demo_mailer PASSWORD :'mailer_password';
\! /usr/bin/python3 "$PP_DEMO_DIR/sender_demo.py"
-- psql goes on whatever \! returns: the demo fails here if nothing was delivered
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM post_purchase.outbox WHERE channel = 'email' AND acknowledged_at IS NOT NULL) THEN
		RAISE EXCEPTION 'post_purchase_sender delivered no email: see its log above';
	END IF;
END
$$;
SELECT channel, acknowledged_at IS NOT NULL AS delivered, coalesce(last_error, '') AS last_error, count(*)
FROM post_purchase.outbox GROUP BY 1, 2, 3 ORDER BY 1, 2 DESC;
SELECT event, count(*) AS events FROM post_purchase.message_events GROUP BY event ORDER BY event;

\echo
\echo '== Mail clients report opens and clicks of the delivered messages, and one unsubscribe =='
CREATE TEMP TABLE sent AS SELECT * FROM post_purchase.outbox WHERE acknowledged_at IS NOT NULL;
SELECT count(*) AS events FROM (
	SELECT post_purchase.record_event(c.id, e.event)
	FROM sent c CROSS JOIN LATERAL (VALUES ('opened'), ('clicked')) e(event)
	WHERE (e.event = 'opened' AND hashtext(c.aggregateid) % 2 = 0)
	   OR (e.event = 'clicked' AND hashtext(c.aggregateid) % 5 = 0)) x;
SELECT post_purchase.record_event(min(id::text)::uuid, 'unsubscribed') FROM sent WHERE channel = 'email';
SELECT count(*) FILTER (WHERE NOT opted_in) AS email_opt_outs FROM post_purchase.customer_channels WHERE channel = 'email';

\echo
\echo '== Win-back: customers who lapsed (180 days) since the journey was enabled =='
-- for the demo, the journey counts as enabled a year ago, and a few customers'
-- last orders are moved into that year
UPDATE post_purchase.journeys SET enabled_at = now() - interval '1 year' WHERE name = 'win_back';
UPDATE shop.orders o SET ordered_at = now() - interval '200 days' - (o.customer_id % 30) * interval '1 day'
WHERE o.customer_id IN (SELECT customer_id FROM shop.orders GROUP BY customer_id
						HAVING max(ordered_at) < now() - interval '1 day' ORDER BY customer_id LIMIT 25);
UPDATE post_purchase.enrollment_sweeps SET swept_at = '-infinity';
DO $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXIT WHEN (SELECT count(*) FROM post_purchase.step_outcomes WHERE journey = 'win_back') >= 25;
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT outcome, coalesce(reason, '') AS reason, count(*) FROM post_purchase.step_outcomes
WHERE journey = 'win_back' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT payload ->> 'discount_code' AS discount_code, count(*) FROM post_purchase.outbox
WHERE journey = 'win_back' GROUP BY 1;

\echo
\echo '== journey_stats: what each step did =='
SELECT journey, step, variant, enrolled, holdout_enrolled, fired, held_out, suppressed_no_consent,
	   delivered, opened, clicked, converted
FROM post_purchase.journey_stats ORDER BY journey, step;
