-- The outbox: one row per message fired by a journey step (fire_due_steps() in
-- journeys.sql writes it, exactly once per enrollment and step).  Senders
-- take messages with a claim / acknowledge / fail protocol; CDC tools
-- (Debezium's outbox event router) read the Debezium columns.  Delivery is
-- at least once: a claim that is neither acknowledged nor failed before its
-- visibility timeout ends comes back to the next claim, so senders
-- deduplicate on id.

INSERT INTO post_purchase.settings VALUES
	('outbox_max_attempts', '5', 'outbox_fail(): a message is dead-lettered once it has been claimed this many times'),
	('outbox_retry_backoff', '30 seconds', 'outbox_fail(): a failed message is claimable again after this interval, doubled per attempt ...'),
	('outbox_retry_backoff_max', '1 hour', '... up to this one'),
	('outbox_retention', '7 days', 'outbox_purge(): acknowledged messages are deleted this long after their acknowledgement');

-- Message ids: time-ordered UUIDs of version 7 (src/message_id.c), so the
-- outbox's primary key grows at its right edge instead of at random pages.
CREATE FUNCTION post_purchase.uuid_v7() RETURNS uuid
	AS 'MODULE_PATHNAME', 'post_purchase_uuid_v7' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.uuid_v7() IS
	'a UUID of version 7 (RFC 9562): Unix time in ms and its fraction, then 62 random bits';

CREATE TABLE post_purchase.outbox (
	id uuid PRIMARY KEY DEFAULT post_purchase.uuid_v7(),
	aggregatetype text NOT NULL DEFAULT 'customer',
	aggregateid text NOT NULL,
	type text NOT NULL,
	payload jsonb NOT NULL,
	channel text NOT NULL,
	address text,
	journey text NOT NULL,
	step text NOT NULL,
	variant text,
	enrollment_id bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	visible_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	attempts integer NOT NULL DEFAULT 0,
	acknowledged_at timestamptz,
	last_error text,
	dead_lettered_at timestamptz,
	CONSTRAINT outbox_idempotency UNIQUE (enrollment_id, step)
)
-- a queue: each message's claim and acknowledgement leave two dead
-- versions within seconds, and outbox_purge() deletes it later (README,
-- Maintenance); vacuum at 5% dead, not PostgreSQL's default of 20%
WITH (autovacuum_vacuum_scale_factor = 0.05);
-- The claim's queue, in its order: only what may still be sent, so it stays
-- small however long acknowledged rows are kept.
CREATE INDEX outbox_claimable ON post_purchase.outbox (visible_at, created_at)
	WHERE acknowledged_at IS NULL AND dead_lettered_at IS NULL;
-- outbox_purge() deletes by acknowledgement time
CREATE INDEX outbox_acknowledged ON post_purchase.outbox (acknowledged_at)
	WHERE acknowledged_at IS NOT NULL;
-- operators list the dead letters
CREATE INDEX outbox_dead_letters ON post_purchase.outbox (dead_lettered_at)
	WHERE dead_lettered_at IS NOT NULL AND acknowledged_at IS NULL;
COMMENT ON TABLE post_purchase.outbox IS
	'messages to send, one per (enrollment_id, step): Debezium outbox columns (id, aggregatetype, aggregateid, type, payload) plus claim columns; take them with outbox_claim/outbox_ack/outbox_fail';
COMMENT ON COLUMN post_purchase.outbox.id IS 'the message id (a UUIDv7, time-ordered): stable across retries, senders deduplicate on it';
COMMENT ON COLUMN post_purchase.outbox.aggregateid IS 'the customer_id';
COMMENT ON COLUMN post_purchase.outbox.type IS 'the step''s message_type';
COMMENT ON COLUMN post_purchase.outbox.address IS 'the customer''s address on the channel (customer_channels), NULL if unknown';
COMMENT ON COLUMN post_purchase.outbox.visible_at IS 'claimable from then on: a claim or a failure moves it into the future';
COMMENT ON COLUMN post_purchase.outbox.attempts IS 'how many times the message was claimed';
COMMENT ON COLUMN post_purchase.outbox.acknowledged_at IS 'when a sender acknowledged it (sent); outbox_purge() deletes it outbox_retention later';
COMMENT ON COLUMN post_purchase.outbox.last_error IS 'the error of the last outbox_fail()';
COMMENT ON COLUMN post_purchase.outbox.dead_lettered_at IS 'set when the last attempt failed: no more claims until outbox_retry()';

-- Events senders report about messages.  The message's customer, journey,
-- step, variant and channel are copied so journey statistics survive the
-- purge of the outbox row (hence no foreign key either).
CREATE TABLE post_purchase.message_events (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	outbox_id uuid NOT NULL,
	event text NOT NULL CHECK (event IN ('delivered', 'opened', 'clicked', 'bounced', 'unsubscribed')),
	occurred_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	customer_id text NOT NULL,
	journey text NOT NULL,
	step text NOT NULL,
	variant text,
	channel text NOT NULL
);
CREATE INDEX message_events_outbox_id ON post_purchase.message_events (outbox_id);
COMMENT ON TABLE post_purchase.message_events IS
	'what became of sent messages (delivered, opened, clicked, bounced, unsubscribed), reported with record_event()';

-- Both tables hold data, not configuration the script recreates: pg_dump
-- must dump their rows (and the identity's position).
SELECT pg_catalog.pg_extension_config_dump('post_purchase.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.message_events', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.message_events_id_seq', '');

-- Wake LISTENing senders when new messages commit.  pg_notify() queues the
-- notification until commit (none on rollback) and folds identical ones of
-- one transaction into one, so a batch of messages wakes each listener once.
-- A statement that inserts nothing (ON CONFLICT DO NOTHING) also notifies:
-- a harmless extra wake-up, cheaper than a transition table of every row.
CREATE FUNCTION post_purchase.outbox_notify() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	PERFORM pg_notify('post_purchase_outbox', '');
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.outbox_notify() FROM PUBLIC;
CREATE TRIGGER outbox_notify AFTER INSERT ON post_purchase.outbox
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.outbox_notify();

-- Claim up to batch_size claimable messages, oldest first: each becomes
-- invisible to other claims for the visibility interval and counts an
-- attempt.  SKIP LOCKED lets consumers share the queue without waiting for
-- each other, and one statement both picks and marks, so a message is handed
-- to one consumer per visibility window.  The candidates are an ARRAY()
-- init plan, not an IN (subquery): it runs once, so a re-check of a
-- concurrently changed row cannot pick (and lock) further rows.
CREATE FUNCTION post_purchase.outbox_claim(batch_size integer DEFAULT 100, visibility interval DEFAULT '5 minutes')
	RETURNS SETOF post_purchase.outbox
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 10000, not %', coalesce(batch_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF visibility IS NULL OR visibility <= interval '0' THEN
		RAISE EXCEPTION 'visibility must be a positive interval, not %', coalesce(visibility::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'It is how long claimed messages stay invisible to other consumers; choose it longer than a send takes.';
	END IF;
	RETURN QUERY
	WITH claimed AS (
		UPDATE post_purchase.outbox o
		SET visible_at = now() + visibility, attempts = o.attempts + 1
		WHERE o.id = ANY (ARRAY(
			SELECT c.id FROM post_purchase.outbox c
			WHERE c.acknowledged_at IS NULL AND c.dead_lettered_at IS NULL AND c.visible_at <= now()
			ORDER BY c.visible_at, c.created_at
			LIMIT batch_size
			FOR UPDATE SKIP LOCKED))
		RETURNING o.*)
	SELECT * FROM claimed c ORDER BY c.created_at, c.id;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_claim(integer, interval) IS
	'claim up to batch_size messages (oldest first) for visibility: other consumers do not see them until then; acknowledge or fail each';
REVOKE ALL ON FUNCTION post_purchase.outbox_claim(integer, interval) FROM PUBLIC;

-- Acknowledge sent messages.  Ids that are unknown (or purged), already
-- acknowledged, or NULL are ignored, so a retried acknowledgement is
-- harmless; a dead-lettered message may still be acknowledged (it was sent
-- after all).  Returns how many messages this call acknowledged.  A message
-- another consumer's claim holds (its claim not yet committed) waits for
-- that commit.
CREATE FUNCTION post_purchase.outbox_ack(ids uuid[]) RETURNS integer
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	acknowledged integer;
BEGIN
	IF ids IS NULL THEN
		RAISE EXCEPTION 'ids must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE post_purchase.outbox o SET acknowledged_at = now()
	WHERE o.id = ANY (ids) AND o.acknowledged_at IS NULL;
	GET DIAGNOSTICS acknowledged = ROW_COUNT;
	RETURN acknowledged;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_ack(uuid[]) IS
	'acknowledge sent messages; returns how many were acknowledged by this call (unknown and already acknowledged ids are ignored)';
REVOKE ALL ON FUNCTION post_purchase.outbox_ack(uuid[]) FROM PUBLIC;

-- A send failed: keep the error and make the message claimable again after
-- an exponential backoff (outbox_retry_backoff * 2^(attempts - 1), at most
-- outbox_retry_backoff_max), or dead-letter it once it has been claimed
-- outbox_max_attempts times.
CREATE FUNCTION post_purchase.outbox_fail(id uuid, error text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m post_purchase.outbox;
	backoff interval;
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF error IS NULL THEN
		RAISE EXCEPTION 'error must not be NULL' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass the reason the send failed: it is kept in last_error.';
	END IF;
	SELECT * INTO m FROM post_purchase.outbox o WHERE o.id = outbox_fail.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'outbox message % does not exist', id USING ERRCODE = 'undefined_object';
	END IF;
	IF m.acknowledged_at IS NOT NULL THEN
		RAISE EXCEPTION 'outbox message % is already acknowledged', id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF m.dead_lettered_at IS NOT NULL THEN
		RAISE EXCEPTION 'outbox message % is already dead-lettered', id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'An operator can make it claimable again with post_purchase.outbox_retry().';
	END IF;
	IF m.attempts >= post_purchase.setting('outbox_max_attempts')::integer THEN
		UPDATE post_purchase.outbox o SET last_error = error, dead_lettered_at = now()
		WHERE o.id = outbox_fail.id;
	ELSE
		-- attempts is 0 only if failed without a claim: no shorter wait then;
		-- the exponent is capped, the maximum applies long before
		backoff := least(post_purchase.setting('outbox_retry_backoff')::interval
						 * power(2, least(greatest(m.attempts, 1) - 1, 30)),
						 post_purchase.setting('outbox_retry_backoff_max')::interval);
		UPDATE post_purchase.outbox o SET last_error = error, visible_at = now() + backoff
		WHERE o.id = outbox_fail.id;
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_fail(uuid, text) IS
	'a send failed: keep the error, retry after an exponential backoff, dead-letter after outbox_max_attempts claims';
REVOKE ALL ON FUNCTION post_purchase.outbox_fail(uuid, text) FROM PUBLIC;

-- For operators: put a dead-lettered message back in the queue, with a
-- fresh count of attempts (its last error stays until the next failure).
CREATE FUNCTION post_purchase.outbox_retry(id uuid) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE post_purchase.outbox o SET dead_lettered_at = NULL, attempts = 0, visible_at = now()
	WHERE o.id = outbox_retry.id AND o.dead_lettered_at IS NOT NULL AND o.acknowledged_at IS NULL;
	IF NOT FOUND THEN
		IF EXISTS (SELECT FROM post_purchase.outbox o WHERE o.id = outbox_retry.id) THEN
			RAISE EXCEPTION 'outbox message % is not dead-lettered', id
				USING ERRCODE = 'object_not_in_prerequisite_state';
		END IF;
		RAISE EXCEPTION 'outbox message % does not exist', id USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_retry(uuid) IS
	'make a dead-lettered message claimable again, with attempts reset to 0';
REVOKE ALL ON FUNCTION post_purchase.outbox_retry(uuid) FROM PUBLIC;

-- Delete acknowledged messages outbox_retention after their acknowledgement
-- (the workers call it on a schedule).  Dead letters are kept until an
-- operator retries or deletes them: they are the messages nobody received.
-- message_events keeps its copy of each message's journey and step.
CREATE FUNCTION post_purchase.outbox_purge() RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	purged bigint;
BEGIN
	DELETE FROM post_purchase.outbox o
	WHERE o.acknowledged_at <= now() - post_purchase.setting('outbox_retention')::interval;
	GET DIAGNOSTICS purged = ROW_COUNT;
	RETURN purged;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_purge() IS
	'delete messages acknowledged more than outbox_retention ago; returns how many';
REVOKE ALL ON FUNCTION post_purchase.outbox_purge() FROM PUBLIC;

-- Record what became of a sent message.  The message's customer, journey,
-- step, variant and channel come from the outbox row or, once that is
-- purged, from an earlier event of the message: a late open is still
-- counted.  Every call records a row (two opens are two events).  An
-- unsubscribe withdraws the customer's consent on the message's channel.
CREATE FUNCTION post_purchase.record_event(outbox_id uuid, event text, occurred_at timestamptz DEFAULT now())
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m record;
BEGIN
	IF outbox_id IS NULL THEN
		RAISE EXCEPTION 'outbox_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF event IS NULL OR event NOT IN ('delivered', 'opened', 'clicked', 'bounced', 'unsubscribed') THEN
		RAISE EXCEPTION 'unknown message event %', coalesce(quote_literal(event), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'The events are delivered, opened, clicked, bounced and unsubscribed.';
	END IF;
	IF occurred_at IS NULL THEN
		RAISE EXCEPTION 'occurred_at must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT o.aggregateid AS customer_id, o.journey, o.step, o.variant, o.channel, o.address INTO m
	FROM post_purchase.outbox o WHERE o.id = record_event.outbox_id;
	IF NOT FOUND THEN
		SELECT e.customer_id, e.journey, e.step, e.variant, e.channel, NULL::text AS address INTO m
		FROM post_purchase.message_events e WHERE e.outbox_id = record_event.outbox_id
		LIMIT 1;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'outbox message % does not exist', outbox_id USING ERRCODE = 'undefined_object';
		END IF;
	END IF;
	INSERT INTO post_purchase.message_events (outbox_id, event, occurred_at, customer_id, journey, step, variant, channel)
	VALUES (record_event.outbox_id, record_event.event, record_event.occurred_at,
			m.customer_id, m.journey, m.step, m.variant, m.channel);
	IF event = 'unsubscribed' THEN
		INSERT INTO post_purchase.customer_channels AS c (customer_id, channel, address, opted_in, updated_at)
		VALUES (m.customer_id, m.channel, m.address, false, now())
		ON CONFLICT (customer_id, channel) DO UPDATE SET opted_in = false, updated_at = now();
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.record_event(uuid, text, timestamptz) IS
	'record an event of a sent message: delivered, opened, clicked, bounced or unsubscribed (which opts the customer out of the channel)';
REVOKE ALL ON FUNCTION post_purchase.record_event(uuid, text, timestamptz) FROM PUBLIC;

-- The senders' role: claim, acknowledge, fail and report events, nothing
-- else (no table privileges: the four functions are SECURITY DEFINER).
-- Roles are cluster-wide and outlive the extension, so the role may exist
-- already (the extension is, or was, installed in another database); create
-- it only if missing.  This is the one object created conditionally; a role
-- of that name made in advance by someone else would get these four
-- functions, so check its members (\du) when you did not create it.  It
-- needs no schema grant: PUBLIC has USAGE on post_purchase
-- (post_purchase.sql), and a grant of its own would outlive DROP EXTENSION
-- on the schema, which is not an extension member, and block DROP ROLE.
-- DROP EXTENSION drops the function grants with the functions and leaves
-- the role; DROP ROLE works once no database has the extension.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'post_purchase_sender') THEN
		CREATE ROLE post_purchase_sender NOLOGIN;
	END IF;
END
$$;
GRANT EXECUTE ON FUNCTION post_purchase.outbox_claim(integer, interval) TO post_purchase_sender;
GRANT EXECUTE ON FUNCTION post_purchase.outbox_ack(uuid[]) TO post_purchase_sender;
GRANT EXECUTE ON FUNCTION post_purchase.outbox_fail(uuid, text) TO post_purchase_sender;
GRANT EXECUTE ON FUNCTION post_purchase.record_event(uuid, text, timestamptz) TO post_purchase_sender;
