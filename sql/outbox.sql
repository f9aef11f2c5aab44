-- Outbox: the firing code's idempotent insert, the claim / acknowledge /
-- fail protocol with visibility timeouts, backoff and dead letters, retry,
-- purge, message events and consent, the sender role, and every bad input.
-- Messages are told apart by aggregateid (their ids are random); times are
-- shown relative to now() inside one transaction, where now() stands still.
-- NOTIFY is tested in the isolation spec outbox_notify (psql prints the
-- notifying backend's PID).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- from an empty outbox: the journeys test fires messages too
DELETE FROM post_purchase.outbox;
DELETE FROM post_purchase.message_events;

SELECT name, value FROM post_purchase.settings WHERE name LIKE 'outbox%' ORDER BY name;

-- what fire_due_steps() in journeys.sql does for one message, but with an id
-- made from the customer, for stable error messages
CREATE FUNCTION fire(customer text, enrollment bigint, step text DEFAULT 'thank_you') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
BEGIN
	INSERT INTO post_purchase.outbox (id, aggregateid, type, payload, channel, address, journey, step, variant, enrollment_id)
	VALUES (md5(customer)::uuid, customer, 'thank_you', jsonb_build_object('customer_id', customer), 'email',
			customer || '@example.com', 'thank_you', step, 'A', enrollment)
	ON CONFLICT ON CONSTRAINT outbox_idempotency DO NOTHING;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
-- the claimable state of every message
CREATE VIEW messages AS
	SELECT aggregateid, attempts, visible_at <= now() AS claimable_now, acknowledged_at IS NOT NULL AS acknowledged,
		   dead_lettered_at IS NOT NULL AS dead_lettered, last_error
	FROM post_purchase.outbox ORDER BY created_at;
-- time passes for one message: its claim or backoff is over
CREATE FUNCTION expire(customer text) RETURNS void LANGUAGE sql AS $$
	UPDATE post_purchase.outbox SET visible_at = now() - interval '1 millisecond' WHERE aggregateid = customer
$$;
-- fail a message and show what became of it, with the backoff exactly
CREATE FUNCTION fail(customer text, error text)
	RETURNS TABLE (attempts integer, backoff interval, last_error text, dead_lettered boolean)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM post_purchase.outbox_fail((SELECT o.id FROM post_purchase.outbox o WHERE o.aggregateid = customer), error);
	RETURN QUERY SELECT o.attempts, CASE WHEN o.dead_lettered_at IS NULL THEN o.visible_at - now() END,
						o.last_error, o.dead_lettered_at IS NOT NULL
				 FROM post_purchase.outbox o WHERE o.aggregateid = customer;
END
$$;

-- one statement per message: each has its own created_at, the claim order
SELECT fire('m1', 1);
SELECT fire('m2', 2);
SELECT fire('m3', 3);
SELECT aggregatetype, aggregateid, type, payload, channel, address, journey, step, variant, enrollment_id,
	   created_at = visible_at AS visible_from_creation, attempts, acknowledged_at, last_error, dead_lettered_at
FROM post_purchase.outbox ORDER BY created_at;

-- idempotency: the same (enrollment, step) again is not inserted ...
SELECT fire('m1', 1);
-- ... not even for another customer; a plain insert fails
SELECT fire('someone else', 1);
\set ON_ERROR_STOP 0
INSERT INTO post_purchase.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
VALUES ('m1', 'thank_you', '{}', 'email', 'thank_you', 'thank_you', 1);
\echo :LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP 1
-- another step of the same enrollment is another message; the defaults
INSERT INTO post_purchase.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
VALUES ('m1', 'thank_you', '{}', 'email', 'thank_you', 'follow_up', 1)
RETURNING id IS NOT NULL AS has_id, aggregatetype, address, variant, created_at = now() AS created_now,
		  visible_at = now() AS visible_now, attempts, acknowledged_at, last_error, dead_lettered_at;
DELETE FROM post_purchase.outbox WHERE step = 'follow_up';
SELECT count(*) FROM post_purchase.outbox;

-- a claim takes the oldest claimable messages, hides them for the
-- visibility interval and counts an attempt
BEGIN;
SELECT aggregateid, attempts, visible_at - now() AS hidden_for, acknowledged_at, last_error
FROM post_purchase.outbox_claim(2, '1 hour');
COMMIT;
-- a second claim does not see them: only m3 is left
SELECT aggregateid, attempts FROM post_purchase.outbox_claim(10, '1 hour');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM messages;

-- when the visibility interval passes unacknowledged, the message is claimed
-- again (at least once): m4 is claimed for a millisecond, then again
SELECT fire('m4', 4);
SELECT aggregateid, attempts FROM post_purchase.outbox_claim(10, '1 millisecond');
SELECT pg_sleep(0.01);
SELECT aggregateid, attempts FROM post_purchase.outbox_claim(10, '1 hour');

-- acknowledge: returns how many this call acknowledged
SELECT post_purchase.outbox_ack(ARRAY(SELECT id FROM post_purchase.outbox WHERE aggregateid IN ('m1', 'm2')));
-- again, with an unknown id, a NULL and a duplicate: nothing new
SELECT post_purchase.outbox_ack(ARRAY(SELECT id FROM post_purchase.outbox WHERE aggregateid IN ('m1', 'm2'))
								|| ARRAY[gen_random_uuid(), NULL, (SELECT id FROM post_purchase.outbox WHERE aggregateid = 'm1')]);
SELECT post_purchase.outbox_ack('{}');
-- acknowledged messages are never claimed again, even when their claim ends
SELECT expire('m1');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM messages;

-- failures: the error is kept, the message comes back after a backoff
-- doubled per attempt (30 s, 1 min, then capped by outbox_retry_backoff_max),
-- and is dead-lettered when it failed on its outbox_max_attempts-th claim
SELECT * FROM fail('m3', 'smtp 421 try later');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT expire('m3');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM fail('m3', 'smtp 421 still busy');
UPDATE post_purchase.settings SET value = '90 seconds' WHERE name = 'outbox_retry_backoff_max';
SELECT expire('m3');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM fail('m3', 'timeout');
UPDATE post_purchase.settings SET value = '1 hour' WHERE name = 'outbox_retry_backoff_max';
SELECT expire('m3');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM fail('m3', 'timeout');
SELECT expire('m3');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM fail('m3', 'mailbox full');
-- dead: not claimed again
SELECT expire('m3');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim();
SELECT * FROM messages;

-- failing it again, or failing an acknowledged message, is refused
\set ON_ERROR_STOP 0
SELECT post_purchase.outbox_fail((SELECT id FROM post_purchase.outbox WHERE aggregateid = 'm3'), 'again');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_fail((SELECT id FROM post_purchase.outbox WHERE aggregateid = 'm1'), 'late');
\echo :LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP 1

-- an operator puts the dead letter back: attempts start over, the last error
-- stays until the next failure
SELECT post_purchase.outbox_retry((SELECT id FROM post_purchase.outbox WHERE aggregateid = 'm3'));
SELECT * FROM messages WHERE aggregateid = 'm3';
SELECT aggregateid, attempts, last_error FROM post_purchase.outbox_claim(10, '1 hour');

-- a lower outbox_max_attempts dead-letters m4 (claimed twice) at once; a
-- dead letter that was sent after all may still be acknowledged
UPDATE post_purchase.settings SET value = '2' WHERE name = 'outbox_max_attempts';
SELECT * FROM fail('m4', 'webhook 500');
UPDATE post_purchase.settings SET value = '5' WHERE name = 'outbox_max_attempts';
SELECT post_purchase.outbox_ack(ARRAY(SELECT id FROM post_purchase.outbox WHERE aggregateid = 'm4'));
SELECT * FROM messages;

-- purge: nothing is older than the 7 days of retention yet ...
SELECT post_purchase.outbox_purge();
-- ... with no retention, the acknowledged messages go (m1, m2 and m4, the
-- acknowledged dead letter); unacknowledged ones and dead letters stay
SELECT fire('m5', 5);
SELECT aggregateid, attempts FROM post_purchase.outbox_claim(1, '1 hour');
SELECT * FROM fail('m5', 'bounced');
UPDATE post_purchase.settings SET value = '2' WHERE name = 'outbox_max_attempts';
SELECT expire('m5');
SELECT aggregateid, attempts FROM post_purchase.outbox_claim(1, '1 hour');
SELECT * FROM fail('m5', 'bounced again');
UPDATE post_purchase.settings SET value = '5' WHERE name = 'outbox_max_attempts';
UPDATE post_purchase.settings SET value = '0 seconds' WHERE name = 'outbox_retention';
SELECT post_purchase.outbox_purge();
UPDATE post_purchase.settings SET value = '7 days' WHERE name = 'outbox_retention';
SELECT * FROM messages;

-- message events: each kind, with a copy of the message's journey fields
SELECT fire('e1', 11);
SELECT fire('e2', 12);
SELECT id AS e1 FROM post_purchase.outbox WHERE aggregateid = 'e1' \gset
SELECT id AS e2 FROM post_purchase.outbox WHERE aggregateid = 'e2' \gset
SELECT post_purchase.record_event(:'e1', 'delivered', '2024-03-01 10:00+00');
SELECT post_purchase.record_event(:'e1', 'opened', '2024-03-01 11:00+00');
SELECT post_purchase.record_event(:'e1', 'opened', '2024-03-02 09:00+00');
SELECT post_purchase.record_event(:'e1', 'clicked', '2024-03-02 09:01+00');
SELECT post_purchase.record_event(:'e2', 'bounced');
SELECT outbox_id = :'e1' AS of_e1, event,
	   CASE WHEN occurred_at > now() - interval '1 minute' THEN 'now' ELSE (occurred_at AT TIME ZONE 'UTC')::text END AS occurred_utc,
	   customer_id, journey, step, variant, channel
FROM post_purchase.message_events ORDER BY id;

-- an unsubscribe opts the customer out of the message's channel: an
-- existing consent row is updated, a missing one is created opted out.
-- customer_channels comes from journeys.sql; create it if that is not there.
DO $$
BEGIN
	IF to_regclass('post_purchase.customer_channels') IS NULL THEN
		CREATE TABLE post_purchase.customer_channels (customer_id text, channel text, address text,
			opted_in boolean NOT NULL, preferred boolean NOT NULL DEFAULT false, updated_at timestamptz,
			PRIMARY KEY (customer_id, channel));
	END IF;
END
$$;
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred, updated_at) VALUES
	('e1', 'email', 'e1@example.com', true, true, '2024-01-01'),
	('e1', 'sms', '+15550100', true, false, '2024-01-01');
SELECT post_purchase.record_event(:'e1', 'unsubscribed');
SELECT post_purchase.record_event(:'e2', 'unsubscribed');
SELECT customer_id, channel, address, opted_in, preferred, updated_at > now() - interval '1 minute' AS updated_now
FROM post_purchase.customer_channels WHERE customer_id IN ('e1', 'e2') ORDER BY customer_id, channel;
SELECT event, count(*) FROM post_purchase.message_events GROUP BY event ORDER BY event;

-- events of a purged message still count: its journey fields come from its
-- earlier events
SELECT post_purchase.outbox_ack(ARRAY[:'e1'::uuid]);
UPDATE post_purchase.settings SET value = '0 seconds' WHERE name = 'outbox_retention';
SELECT post_purchase.outbox_purge();
UPDATE post_purchase.settings SET value = '7 days' WHERE name = 'outbox_retention';
SELECT post_purchase.record_event(:'e1', 'clicked');
SELECT customer_id, journey, step, variant, channel FROM post_purchase.message_events
WHERE outbox_id = :'e1' AND event = 'clicked' ORDER BY id DESC LIMIT 1;

-- bad input
\set ON_ERROR_STOP 0
SELECT * FROM post_purchase.outbox_claim(0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.outbox_claim(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.outbox_claim(10001);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.outbox_claim(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.outbox_claim(10, '0 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.outbox_claim(10, '-5 minutes');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM post_purchase.outbox_claim(10, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_ack(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_fail(NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_fail(:'e2', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_fail('00000000-0000-0000-0000-000000000000', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_retry(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_retry('00000000-0000-0000-0000-000000000000');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_retry(:'e2');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.record_event(NULL, 'opened');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.record_event(:'e2', 'read');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.record_event(:'e2', 'Opened');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.record_event(:'e2', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.record_event(:'e2', 'opened', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.record_event('00000000-0000-0000-0000-000000000000', 'opened');
\echo :LAST_ERROR_SQLSTATE
-- the table's own checks stand behind the functions
\set VERBOSITY terse
INSERT INTO post_purchase.message_events (outbox_id, event, customer_id, journey, step, channel)
VALUES (:'e2', 'read', 'e2', 'thank_you', 'thank_you', 'email');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
\set ON_ERROR_STOP 1
-- no bad call left a trace
SELECT count(*) AS events FROM post_purchase.message_events;
SELECT * FROM messages;

-- the sender role holds exactly the four functions, in this database
SELECT pg_describe_object(classid, objid, objsubid) AS granted
FROM pg_shdepend
WHERE refobjid = 'post_purchase_sender'::regrole
  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1;
SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'post_purchase_sender';

-- a sender's login role: it claims, fails, acknowledges and records events
CREATE ROLE regress_outbox_sender LOGIN IN ROLE post_purchase_sender;
SELECT fire('s1', 21);
SELECT fire('s2', 22);
SELECT id AS s1 FROM post_purchase.outbox WHERE aggregateid = 's1' \gset
SELECT id AS s2 FROM post_purchase.outbox WHERE aggregateid = 's2' \gset
SET ROLE regress_outbox_sender;
SELECT aggregateid, attempts, payload FROM post_purchase.outbox_claim(10, '1 minute');
SELECT post_purchase.outbox_ack(ARRAY[:'s1'::uuid]);
SELECT post_purchase.outbox_fail(:'s2', 'sms gateway down');
SELECT post_purchase.record_event(:'s1', 'delivered');
SELECT post_purchase.record_event(:'s1', 'unsubscribed');
-- ... and nothing else
\set ON_ERROR_STOP 0
SELECT count(*) FROM post_purchase.outbox;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO post_purchase.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
VALUES ('x', 'x', '{}', 'email', 'x', 'x', 99);
\echo :LAST_ERROR_SQLSTATE
UPDATE post_purchase.outbox SET visible_at = now();
\echo :LAST_ERROR_SQLSTATE
DELETE FROM post_purchase.outbox;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM post_purchase.message_events;
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_purge();
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.outbox_retry(:'s2');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.refresh_segments();
\echo :LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP 1
RESET ROLE;
SELECT * FROM messages WHERE aggregateid IN ('s1', 's2');
SELECT event, customer_id FROM post_purchase.message_events WHERE outbox_id = :'s1' ORDER BY id;
SELECT customer_id, channel, opted_in FROM post_purchase.customer_channels WHERE customer_id = 's1';
DROP ROLE regress_outbox_sender;

-- roles are cluster-wide: another database installs the extension while the
-- role exists, and DROP EXTENSION there leaves the role no privileges there
-- and the role's grants here intact
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_outbox_other;
\c regress_outbox_other
SET client_min_messages = warning;
CREATE EXTENSION post_purchase;
SELECT count(*) AS grants_here FROM pg_shdepend
WHERE refobjid = 'post_purchase_sender'::regrole
  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database());
DROP EXTENSION post_purchase;
SELECT count(*) AS grants_here FROM pg_shdepend
WHERE refobjid = 'post_purchase_sender'::regrole
  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database());
\c :regress_db
SET client_min_messages = warning;
DROP DATABASE regress_outbox_other;
SELECT count(*) AS grants_here FROM pg_shdepend
WHERE refobjid = 'post_purchase_sender'::regrole
  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database());

DELETE FROM post_purchase.customer_channels WHERE customer_id IN ('e1', 'e2', 's1');
DELETE FROM post_purchase.message_events;
DELETE FROM post_purchase.outbox;
DROP VIEW messages;
DROP FUNCTION fire(text, bigint, text);
DROP FUNCTION expire(text);
DROP FUNCTION fail(text, text);

-- message ids: UUIDs of version 7 (RFC 9562), the first 48 bits the Unix
-- time in ms, so ids made later sort later (the primary key grows at its
-- right edge); version nibble 7, variant bits 10, and no two alike
CREATE TEMP TABLE ids AS
SELECT i, clock_timestamp() AS before, post_purchase.uuid_v7() AS id, clock_timestamp() AS after
FROM generate_series(1, 2000) i;
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids,
	   bool_and(substr(id::text, 15, 1) = '7') AS version_7,
	   bool_and(substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS variant_10
FROM ids;
-- the time in the id: the millisecond in which it was made
SELECT bool_and(t.ms BETWEEN floor(extract(epoch FROM before) * 1000) AND floor(extract(epoch FROM after) * 1000))
	   AS time_in_id
FROM ids CROSS JOIN LATERAL (
	SELECT ('x' || lpad(replace(left(id::text, 13), '-', ''), 16, '0'))::bit(64)::bigint AS ms) t;
-- made in order, the ids sort in order (the ms and its 12-bit fraction lead)
SELECT count(*) FILTER (WHERE a.id >= b.id) AS out_of_order
FROM ids a JOIN ids b ON b.i = a.i + 1
WHERE date_trunc('milliseconds', a.after) < date_trunc('milliseconds', b.before);
-- the outbox takes them by default
SELECT pg_get_expr(d.adbin, d.adrelid) AS outbox_id_default
FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = 'post_purchase.outbox'::regclass AND a.attname = 'id';
DROP TABLE ids;
