-- Journeys: a marketer's post-purchase program as rows.  A journey has a
-- trigger that enrolls customers and ordered steps that fire at the
-- enrollment's anchor time plus each step's delay.  Orders enroll in their
-- own transaction (the order trigger), segment changes through triggers on
-- segment_memberships, the passage of time through enroll_due(); the
-- background workers (worker.c) drain due steps with fire_due_steps(), which
-- writes each fired step to the outbox exactly once per (enrollment, step).

INSERT INTO post_purchase.settings VALUES
	('frequency_cap_messages', '3', 'at most this many messages per customer and channel in frequency_cap_window, across all journeys (0: no cap)'),
	('frequency_cap_window', '7 days', 'the window of the frequency cap'),
	('quiet_hours_start', '21:00', 'no message on a quiet_hours_channels channel from this local time of the customer ...'),
	('quiet_hours_end', '08:00', '... until this one; the message waits for the end, it is not dropped (equal times: no quiet hours)'),
	('quiet_hours_channels', 'sms,push', 'the channels that keep quiet hours, comma-separated'),
	('channel_fallback', 'email,push,sms', 'for steps on channel ''preferred'': the channels tried, in order, when the customer has no preferred opted-in one'),
	('channels', 'email,sms,push,webhook', 'the channels steps may use (besides ''preferred''), comma-separated'),
	('consent_exempt_channels', 'webhook', 'channels that need no opt-in (internal systems), comma-separated'),
	('attribution_window', '7 days', 'journey_stats: an order this soon after a step counts as its conversion'),
	('enroll_due_interval', '1 minute', 'enroll_due() sweeps for lapsed, anniversary and replenishment enrollments at most this often');

-- A comma-separated setting as an array of trimmed names (PL/pgSQL for its
-- kept plan, as setting()).
CREATE FUNCTION post_purchase.setting_list(setting_name text) RETURNS text[]
	LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN (SELECT coalesce(array_agg(btrim(x)), '{}')
			FROM unnest(string_to_array(post_purchase.setting(setting_name), ',')) x
			WHERE btrim(x) <> '');
END
$$;

-- How to reach a customer, and whether they agreed to it.
CREATE TABLE post_purchase.customer_channels (
	customer_id text NOT NULL,
	channel text NOT NULL CHECK (channel ~ '^[a-z][a-z0-9_]*$' AND channel <> 'preferred'),
	address text,
	opted_in boolean NOT NULL,
	preferred boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (customer_id, channel)
);
CREATE UNIQUE INDEX customer_channels_one_preferred ON post_purchase.customer_channels (customer_id) WHERE preferred;
COMMENT ON TABLE post_purchase.customer_channels IS
	'per customer and channel: the address and the consent (opted_in); at most one preferred channel';

CREATE TABLE post_purchase.customer_profiles (
	customer_id text PRIMARY KEY,
	time_zone text NOT NULL CHECK (pg_catalog.now() AT TIME ZONE time_zone IS NOT NULL)
);
COMMENT ON TABLE post_purchase.customer_profiles IS
	'per customer: the time zone quiet hours are kept in (else the shop''s time_zone setting)';

CREATE TABLE post_purchase.journeys (
	name text PRIMARY KEY CHECK (name <> '' AND length(name) <= 100),
	trigger text NOT NULL CHECK (trigger IN ('first_order', 'every_order', 'nth_order', 'segment_entered',
											 'segment_exited', 'replenishment_due', 'lapsed', 'anniversary')),
	segment text REFERENCES post_purchase.segments ON UPDATE CASCADE,
	nth_order integer CHECK (nth_order >= 1),
	lapsed_days integer CHECK (lapsed_days >= 1),
	lead_time interval CHECK (lead_time >= interval '0'),
	exit_on_purchase boolean NOT NULL,
	reentry text NOT NULL CHECK (reentry IN ('once', 'every_time', 'after_interval')),
	reentry_interval interval CHECK (reentry_interval > interval '0'),
	holdout_percent numeric NOT NULL CHECK (holdout_percent >= 0 AND holdout_percent <= 100),
	variants jsonb,
	enabled boolean NOT NULL DEFAULT false,
	enabled_at timestamptz,
	owner regrole NOT NULL DEFAULT current_user::regrole,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CHECK ((trigger IN ('segment_entered', 'segment_exited')) = (segment IS NOT NULL)),
	CHECK ((trigger = 'nth_order') = (nth_order IS NOT NULL)),
	CHECK ((trigger = 'lapsed') = (lapsed_days IS NOT NULL)),
	CHECK ((trigger = 'replenishment_due') = (lead_time IS NOT NULL)),
	CHECK ((reentry = 'after_interval') = (reentry_interval IS NOT NULL))
);
COMMENT ON TABLE post_purchase.journeys IS
	'journeys: what enrolls a customer (trigger), the guards, holdout and A/B variants; steps in journey_steps';

CREATE TABLE post_purchase.journey_steps (
	journey text NOT NULL REFERENCES post_purchase.journeys ON DELETE CASCADE ON UPDATE CASCADE,
	step text NOT NULL CHECK (step <> '' AND length(step) <= 100),
	position integer NOT NULL,
	delay interval NOT NULL,
	channel text NOT NULL CHECK (channel ~ '^[a-z][a-z0-9_]*$'),
	message_type text NOT NULL CHECK (message_type <> ''),
	condition text,
	segment text REFERENCES post_purchase.segments ON UPDATE CASCADE,
	payload jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(payload) = 'object'),
	variant_payloads jsonb CHECK (pg_catalog.jsonb_typeof(variant_payloads) = 'object'),
	-- whether the templates use {{customer...}}: only then is customer_metrics read at fire time
	uses_customer boolean GENERATED ALWAYS AS (
		(payload::text OPERATOR(pg_catalog.||) coalesce(variant_payloads::text, ''))
		OPERATOR(pg_catalog.~) '\{\{\s*customer(\.|\s|\})') STORED,
	PRIMARY KEY (journey, step),
	UNIQUE (journey, position)
);
COMMENT ON TABLE post_purchase.journey_steps IS
	'the steps of each journey, fired in position order at the enrollment''s anchor time plus delay';

-- step conditions run as the journey's owner (check_owner in segments.sql)
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.journeys
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('journey');
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.journey_steps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('journey step');

CREATE TABLE post_purchase.enrollments (
	enrollment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	journey text NOT NULL REFERENCES post_purchase.journeys ON DELETE CASCADE ON UPDATE CASCADE,
	customer_id text NOT NULL,
	enrolled_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	anchor_at timestamptz NOT NULL,
	context jsonb NOT NULL DEFAULT '{}',
	holdout boolean NOT NULL,
	variant text,
	status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'exited')),
	next_position integer,
	next_fire_at timestamptz,
	ended_at timestamptz,
	end_reason text,
	CHECK ((status = 'active') = (next_fire_at IS NOT NULL))
)
-- every fired step leaves a dead version (README, Maintenance): vacuum at
-- 5% dead, not PostgreSQL's default of 20%
WITH (autovacuum_vacuum_scale_factor = 0.05);
-- the workers' queue: each journey's due steps, in fire time order.  Per
-- journey, so that the workers look only at enabled journeys: in one queue
-- for all, a paused journey's waiting steps were walked past by every claim
-- and every next_due_at(), 0.1 s per 200,000 of them in every worker loop.
CREATE INDEX enrollments_due ON post_purchase.enrollments (journey, next_fire_at) WHERE status = 'active';
-- one active enrollment per customer and journey
CREATE UNIQUE INDEX enrollments_active ON post_purchase.enrollments (customer_id, journey) WHERE status = 'active';
CREATE INDEX enrollments_customer ON post_purchase.enrollments (journey, customer_id, enrolled_at);
COMMENT ON TABLE post_purchase.enrollments IS
	'one customer''s way through a journey: the next step and when it fires; context holds the order or product that enrolled';

-- What became of every step of every enrollment: fired (with its outbox
-- message) or suppressed (with the reason).  The primary key is the second
-- half of exactly-once: a step is decided once.
-- No foreign key to enrollments: the only inserter, fire_due_steps(), inserts
-- outcomes of enrollments it holds locked, and a foreign key's per-row
-- check cost a tenth of every drained step (test/bench/RESULTS_journeys.md).
-- Deleting enrollments deletes their outcomes (enrollments_deleted below).
CREATE TABLE post_purchase.step_outcomes (
	enrollment_id bigint NOT NULL,
	step text NOT NULL,
	journey text NOT NULL,
	customer_id text NOT NULL,
	variant text,
	holdout boolean NOT NULL,
	outcome text NOT NULL CHECK (outcome IN ('fired', 'suppressed')),
	reason text CHECK ((outcome = 'suppressed') = (reason IS NOT NULL)),
	detail text,
	channel text,
	outbox_id uuid,
	decided_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	converted_at timestamptz,
	attributed_revenue numeric NOT NULL DEFAULT 0,
	-- the first survey answer that carried the message's token (src/answers.c)
	responded_at timestamptz,
	PRIMARY KEY (enrollment_id, step)
);
-- a customer's recent steps: the frequency cap, and orders converting them
CREATE INDEX step_outcomes_customer ON post_purchase.step_outcomes (customer_id, decided_at);
COMMENT ON TABLE post_purchase.step_outcomes IS
	'each decided step: fired into the outbox, or suppressed with a reason (holdout, condition, condition_error, segment, no_consent, frequency_cap); the orders within attribution_window after it convert it';

-- the cascade the foreign key would have done, once per statement: a
-- dropped journey's enrollments, or ones a DBA purges, take their outcomes
-- (as the owner, as a foreign key's cascade runs: a role that may delete
-- enrollments need not be granted the outcomes)
CREATE FUNCTION post_purchase.delete_step_outcomes() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		TRUNCATE post_purchase.step_outcomes;
	ELSE
		DELETE FROM post_purchase.step_outcomes o USING deleted d WHERE o.enrollment_id = d.enrollment_id;
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.delete_step_outcomes() FROM PUBLIC;
CREATE TRIGGER enrollments_deleted AFTER DELETE ON post_purchase.enrollments
	REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.delete_step_outcomes();
CREATE TRIGGER enrollments_truncated AFTER TRUNCATE ON post_purchase.enrollments
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.delete_step_outcomes();

-- When enroll_due() last swept, so the workers may call it every loop.
CREATE TABLE post_purchase.enrollment_sweeps (
	swept_at timestamptz NOT NULL
);
INSERT INTO post_purchase.enrollment_sweeps VALUES ('-infinity');

-- A value from 0 to 9999, the same for the same key every time: holdout and
-- variant assignment must not change when a step is retried.
CREATE FUNCTION post_purchase.stable_bucket(key text, seed bigint) RETURNS integer
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$SELECT ((pg_catalog.hashtextextended(key, seed) OPERATOR(pg_catalog.%) 10000)
				 OPERATOR(pg_catalog.+) 10000)::integer OPERATOR(pg_catalog.%) 10000$$;

CREATE FUNCTION post_purchase.in_holdout(journey text, customer_id text, holdout_percent numeric)
	RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$SELECT post_purchase.stable_bucket(journey OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) customer_id, 1)
				OPERATOR(pg_catalog.<) (holdout_percent OPERATOR(pg_catalog.*) 100)$$;

-- The variant for a customer: variants is {"name": weight, ...}; buckets
-- are handed out by weight, in name order.
CREATE FUNCTION post_purchase.pick_variant(journey text, customer_id text, variants jsonb) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	total numeric;
	point numeric;
	v record;
BEGIN
	IF variants IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT sum(w.value::numeric) INTO total FROM jsonb_each_text(variants) w;
	point := post_purchase.stable_bucket(journey || '/' || customer_id, 2) * total / 10000;
	FOR v IN SELECT w.key, w.value::numeric AS weight FROM jsonb_each_text(variants) w ORDER BY w.key LOOP
		point := point - v.weight;
		IF point < 0 THEN
			RETURN v.key;
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;

CREATE FUNCTION post_purchase.check_variants(variants jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF variants IS NULL THEN
		RETURN;
	END IF;
	IF jsonb_typeof(variants) <> 'object' OR variants = '{}'
	   OR EXISTS (SELECT FROM jsonb_each(variants) w
				  WHERE jsonb_typeof(w.value) <> 'number' OR w.value::text::numeric <= 0) THEN
		RAISE EXCEPTION 'invalid variants: %', variants
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give variants as a JSON object of names and positive weights, like {"A": 50, "B": 50}.';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_variants(jsonb) FROM PUBLIC;

CREATE FUNCTION post_purchase.create_journey(name text, trigger text,
											 segment text DEFAULT NULL,
											 nth_order integer DEFAULT NULL,
											 lapsed_days integer DEFAULT NULL,
											 lead_time interval DEFAULT NULL,
											 exit_on_purchase boolean DEFAULT NULL,
											 reentry text DEFAULT 'every_time',
											 reentry_interval interval DEFAULT NULL,
											 holdout_percent numeric DEFAULT 0,
											 variants jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF name IS NULL OR trigger IS NULL THEN
		RAISE EXCEPTION 'a journey needs a name and a trigger' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name = '' OR length(name) > 100 THEN
		RAISE EXCEPTION 'a journey name must have 1 to 100 characters' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF holdout_percent < 0 OR holdout_percent > 100 THEN
		RAISE EXCEPTION 'holdout_percent must be between 0 and 100, not %', holdout_percent
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.journeys j WHERE j.name = create_journey.name) THEN
		RAISE EXCEPTION 'journey "%" already exists', name USING ERRCODE = 'duplicate_object';
	END IF;
	IF trigger NOT IN ('first_order', 'every_order', 'nth_order', 'segment_entered', 'segment_exited',
					   'replenishment_due', 'lapsed', 'anniversary') THEN
		RAISE EXCEPTION 'unknown journey trigger "%"', trigger
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use first_order, every_order, nth_order, segment_entered, segment_exited, replenishment_due, lapsed or anniversary.';
	END IF;
	IF (trigger IN ('segment_entered', 'segment_exited')) <> (segment IS NOT NULL)
	   OR (trigger = 'nth_order') <> (nth_order IS NOT NULL)
	   OR (trigger = 'lapsed') <> (lapsed_days IS NOT NULL)
	   OR (trigger = 'replenishment_due') <> (lead_time IS NOT NULL) THEN
		RAISE EXCEPTION 'trigger % takes %', trigger,
			CASE WHEN trigger IN ('segment_entered', 'segment_exited') THEN 'segment => name, and no other trigger argument'
				 WHEN trigger = 'nth_order' THEN 'nth_order => n, and no other trigger argument'
				 WHEN trigger = 'lapsed' THEN 'lapsed_days => n, and no other trigger argument'
				 WHEN trigger = 'replenishment_due' THEN 'lead_time => interval, and no other trigger argument'
				 ELSE 'no trigger argument' END
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF segment IS NOT NULL AND NOT EXISTS (SELECT FROM post_purchase.segments s WHERE s.name = segment) THEN
		RAISE EXCEPTION 'segment "%" does not exist', segment USING ERRCODE = 'undefined_object';
	END IF;
	IF reentry IS NULL OR reentry NOT IN ('once', 'every_time', 'after_interval')
	   OR (reentry = 'after_interval') <> (reentry_interval IS NOT NULL) THEN
		RAISE EXCEPTION 'invalid re-entry policy %', coalesce(reentry, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use once, every_time, or after_interval with reentry_interval => interval.';
	END IF;
	PERFORM post_purchase.check_variants(variants);
	INSERT INTO post_purchase.journeys (name, trigger, segment, nth_order, lapsed_days, lead_time,
										exit_on_purchase, reentry, reentry_interval, holdout_percent, variants)
	VALUES (name, trigger, segment, nth_order, lapsed_days, lead_time,
			-- a purchase is what win-back and replenishment journeys wait for
			coalesce(exit_on_purchase, trigger IN ('lapsed', 'replenishment_due')),
			reentry, reentry_interval, coalesce(holdout_percent, 0), variants);
END
$$;
COMMENT ON FUNCTION post_purchase.create_journey(text, text, text, integer, integer, interval, boolean, text, interval, numeric, jsonb) IS
	'create a disabled journey; add steps with add_step() and start it with enable_journey()';
REVOKE ALL ON FUNCTION post_purchase.create_journey(text, text, text, integer, integer, interval, boolean, text, interval, numeric, jsonb) FROM PUBLIC;

CREATE FUNCTION post_purchase.add_step(journey text, step text, delay interval, channel text, message_type text,
									   condition text DEFAULT NULL,
									   payload jsonb DEFAULT '{}',
									   segment text DEFAULT NULL,
									   variant_payloads jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	last post_purchase.journey_steps;
BEGIN
	IF step IS NULL OR delay IS NULL OR channel IS NULL OR message_type IS NULL THEN
		RAISE EXCEPTION 'a step needs a name, a delay, a channel and a message type'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM FROM post_purchase.journeys j WHERE j.name = add_step.journey FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', journey USING ERRCODE = 'undefined_object';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.journey_steps s WHERE s.journey = add_step.journey AND s.step = add_step.step) THEN
		RAISE EXCEPTION 'journey "%" already has a step "%"', journey, step USING ERRCODE = 'duplicate_object';
	END IF;
	SELECT * INTO last FROM post_purchase.journey_steps s WHERE s.journey = add_step.journey
	ORDER BY s.position DESC LIMIT 1;
	IF FOUND AND delay < last.delay THEN
		RAISE EXCEPTION 'step "%" would fire before step "%"', step, last.step
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Its delay %s is shorter than the previous step''s %s.', delay, last.delay),
				  HINT = 'Steps fire in the order they are added: add them in order of their delays.';
	END IF;
	IF delay < interval '0' THEN
		RAISE EXCEPTION 'step "%" has a negative delay %', step, delay
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Delays count from the enrollment (for replenishment_due journeys, from the due date minus the journey''s lead_time).';
	END IF;
	IF channel <> 'preferred' AND NOT channel = ANY (post_purchase.setting_list('channels')) THEN
		RAISE EXCEPTION 'unknown channel "%"', channel
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('Use "preferred" or one of the channels setting: %s.', post_purchase.setting('channels'));
	END IF;
	IF segment IS NOT NULL AND NOT EXISTS (SELECT FROM post_purchase.segments s WHERE s.name = segment) THEN
		RAISE EXCEPTION 'segment "%" does not exist', segment USING ERRCODE = 'undefined_object';
	END IF;
	IF payload IS NULL OR jsonb_typeof(payload) <> 'object'
	   OR (variant_payloads IS NOT NULL AND (jsonb_typeof(variant_payloads) <> 'object'
			OR EXISTS (SELECT FROM jsonb_each(variant_payloads) v WHERE jsonb_typeof(v.value) <> 'object'))) THEN
		RAISE EXCEPTION 'a payload template must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'variant_payloads maps variant names to objects merged over the payload.';
	END IF;
	IF condition IS NOT NULL THEN
		-- the same checks as a segment rule: one boolean expression over customer_metrics
		PERFORM post_purchase.check_segment_rule(condition, 'step condition');
	END IF;
	INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, condition,
											 segment, payload, variant_payloads)
	VALUES (journey, step, coalesce(last.position, 0) + 1, delay, channel, message_type, condition, segment,
			payload, variant_payloads);
END
$$;
COMMENT ON FUNCTION post_purchase.add_step(text, text, interval, text, text, text, jsonb, text, jsonb) IS
	'append a step to a journey: it fires delay after the enrollment''s anchor, if its condition and segment hold';
REVOKE ALL ON FUNCTION post_purchase.add_step(text, text, interval, text, text, text, jsonb, text, jsonb) FROM PUBLIC;

CREATE FUNCTION post_purchase.set_journey_enabled(name text, enabled boolean) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	UPDATE post_purchase.journeys j
	SET enabled = set_journey_enabled.enabled,
		enabled_at = CASE WHEN set_journey_enabled.enabled AND NOT j.enabled THEN now() ELSE j.enabled_at END
	WHERE j.name = set_journey_enabled.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	IF enabled AND NOT EXISTS (SELECT FROM post_purchase.journey_steps s WHERE s.journey = set_journey_enabled.name) THEN
		RAISE EXCEPTION 'journey "%" has no steps', name
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add steps with post_purchase.add_step().';
	END IF;
	-- enabled, but nothing fires where no worker runs: say so, and which
	-- setting to change (the journey is enabled all the same)
	IF enabled THEN
		PERFORM post_purchase.check_workers_serve();
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.set_journey_enabled(text, boolean) FROM PUBLIC;

CREATE FUNCTION post_purchase.enable_journey(name text) RETURNS void
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	AS $$SELECT post_purchase.set_journey_enabled(name, true)$$;
COMMENT ON FUNCTION post_purchase.enable_journey(text) IS
	'start enrolling customers; enrollments of a disabled journey wait, and go on when it is enabled again';
REVOKE ALL ON FUNCTION post_purchase.enable_journey(text) FROM PUBLIC;

CREATE FUNCTION post_purchase.disable_journey(name text) RETURNS void
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	AS $$SELECT post_purchase.set_journey_enabled(name, false)$$;
COMMENT ON FUNCTION post_purchase.disable_journey(text) IS 'stop enrolling and firing; pending steps wait';
REVOKE ALL ON FUNCTION post_purchase.disable_journey(text) FROM PUBLIC;

CREATE FUNCTION post_purchase.drop_journey(name text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.journeys j WHERE j.name = drop_journey.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.drop_journey(text) IS
	'drop a journey with its steps, enrollments and outcomes (messages already in the outbox stay)';
REVOKE ALL ON FUNCTION post_purchase.drop_journey(text) FROM PUBLIC;

-- Enroll customers in an enabled journey, each at an anchor time (the
-- steps' delays count from it), with a context the payloads can use.  The
-- re-entry policy decides who may enter again; a new enrollment replaces an
-- active one.  Returns how many entered.
CREATE FUNCTION post_purchase.enroll(journey text, customers text[], anchors timestamptz[], contexts jsonb[])
	RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j post_purchase.journeys;
	first post_purchase.journey_steps;
	admitted_customers text[];
	admitted_anchors timestamptz[];
	admitted_contexts jsonb[];
	entered integer;
	due_now boolean;
BEGIN
	SELECT * INTO j FROM post_purchase.journeys x WHERE x.name = enroll.journey AND x.enabled;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	SELECT * INTO first FROM post_purchase.journey_steps s WHERE s.journey = j.name ORDER BY s.position LIMIT 1;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;

	-- one per customer (the earliest anchor), if the re-entry policy lets
	-- them in: one NOT EXISTS, an anti-join on the index (a sub-select per
	-- policy lets the planner hash every enrollment of the journey instead)
	SELECT array_agg(a.customer_id), array_agg(a.anchor_at), array_agg(a.context)
	INTO admitted_customers, admitted_anchors, admitted_contexts
	FROM (SELECT DISTINCT ON (c.customer_id) c.customer_id, c.anchor_at, coalesce(c.context, '{}') AS context
		  FROM unnest(customers, anchors, contexts) c(customer_id, anchor_at, context)
		  WHERE c.customer_id IS NOT NULL AND c.anchor_at IS NOT NULL
			AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
							WHERE j.reentry <> 'every_time' AND e.journey = j.name AND e.customer_id = c.customer_id
							  AND (j.reentry = 'once' OR e.enrolled_at > now() - j.reentry_interval))
		  ORDER BY c.customer_id, c.anchor_at) a;
	IF admitted_customers IS NULL THEN
		RETURN 0;
	END IF;

	-- two statements: one would check the new row against the old one's
	-- entry in the one-active-enrollment index before the old one ended
	UPDATE post_purchase.enrollments e
	SET status = 'exited', ended_at = now(), end_reason = 'reentered', next_position = NULL, next_fire_at = NULL
	WHERE e.customer_id = ANY (admitted_customers) AND e.journey = j.name AND e.status = 'active';

	INSERT INTO post_purchase.enrollments (journey, customer_id, anchor_at, context, holdout, variant,
										   next_position, next_fire_at)
	SELECT j.name, c.customer_id, c.anchor_at, c.context,
		   post_purchase.in_holdout(j.name, c.customer_id, j.holdout_percent),
		   post_purchase.pick_variant(j.name, c.customer_id, j.variants),
		   first.position, c.anchor_at + first.delay
	FROM unnest(admitted_customers, admitted_anchors, admitted_contexts) c(customer_id, anchor_at, context);
	GET DIAGNOSTICS entered = ROW_COUNT;

	-- a step due now reaches the outbox right after this transaction commits
	SELECT bool_or(a + first.delay <= now()) INTO due_now FROM unnest(admitted_anchors) a;
	IF entered > 0 AND due_now THEN
		PERFORM post_purchase.wake_workers();
	END IF;
	RETURN entered;
END
$$;
COMMENT ON FUNCTION post_purchase.enroll(text, text[], timestamptz[], jsonb[]) IS
	'enroll customers in an enabled journey at anchor times (step delays count from them); used by the triggers and enroll_due()';
REVOKE ALL ON FUNCTION post_purchase.enroll(text, text[], timestamptz[], jsonb[]) FROM PUBLIC;

-- An order enrolls its customer in the order journeys (first_order,
-- every_order, nth_order) from the order trigger itself, which also
-- converts the customer's recent steps and ends the enrollments that wait
-- for a purchase: src/order_journeys.c.

-- Segment entries and exits enroll the segment journeys: statement triggers
-- on the membership history, so refresh_segments() enrolls set-based.
CREATE FUNCTION post_purchase.enroll_segment_changes() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j record;
	wanted text := CASE TG_OP WHEN 'INSERT' THEN 'segment_entered' ELSE 'segment_exited' END;
BEGIN
	-- restored memberships come with the enrollments they made
	IF post_purchase.restoring() THEN
		RETURN NULL;
	END IF;
	FOR j IN SELECT x.name, x.segment FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger = wanted ORDER BY x.name LOOP
		PERFORM post_purchase.enroll(j.name, array_agg(m.customer_id),
									 array_agg(coalesce(m.exited_at, m.entered_at)),
									 array_agg(jsonb_build_object('segment', m.segment)))
		FROM changed m
		WHERE m.segment = j.segment AND (TG_OP = 'INSERT') = (m.exited_at IS NULL)
		HAVING count(*) > 0;
	END LOOP;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.enroll_segment_changes() FROM PUBLIC;
-- Whether an enabled journey enrolls on segment entries or exits
-- (src/segment_journeys.c): the triggers run enroll_segment_changes() only
-- then, since an order that moves its customer between segments fires them
-- for each of its few writes.
CREATE FUNCTION post_purchase.journeys_follow_segments() RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE;
CREATE TRIGGER enroll_on_segment_entry AFTER INSERT ON post_purchase.segment_memberships
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT WHEN (post_purchase.journeys_follow_segments())
	EXECUTE FUNCTION post_purchase.enroll_segment_changes();
CREATE TRIGGER enroll_on_segment_exit AFTER UPDATE ON post_purchase.segment_memberships
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT WHEN (post_purchase.journeys_follow_segments())
	EXECUTE FUNCTION post_purchase.enroll_segment_changes();

-- The journeys time triggers: customers who lapsed, whose first order has an
-- anniversary today, or whose product runs out within the lead time.  Only
-- what happened since the journey was enabled enrolls: enabling a win-back
-- journey does not message every customer who lapsed years ago.  Step
-- delays count from the sweep (lapsed, anniversary) or from the due date
-- minus the lead time (replenishment).  Sweeps run at most every
-- enroll_due_interval; returns the enrollments made.
CREATE FUNCTION post_purchase.enroll_due() RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j post_purchase.journeys;
	entered integer := 0;
	zone text := post_purchase.setting('time_zone');
	today date := (now() AT TIME ZONE zone)::date;
BEGIN
	UPDATE post_purchase.enrollment_sweeps s SET swept_at = now()
	WHERE s.swept_at <= now() - post_purchase.setting('enroll_due_interval')::interval;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	-- progress (src/progress.c): the journeys swept of all, the phase
	-- naming the one being swept (one statement each)
	PERFORM post_purchase.progress_start('enroll_due');
	PERFORM post_purchase.progress_count(
		(SELECT count(*) FROM post_purchase.journeys x
		 WHERE x.enabled AND x.trigger IN ('lapsed', 'anniversary', 'replenishment_due')), 'journeys');
	FOR j IN SELECT * FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger IN ('lapsed', 'anniversary', 'replenishment_due') ORDER BY x.name LOOP
		PERFORM post_purchase.progress_phase('journey ' || j.name);
		IF j.trigger = 'lapsed' THEN
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(s.customer_id), array_agg(now()),
											array_agg(jsonb_build_object('last_order_at', s.last_order_at)))
				FROM post_purchase.customer_state s
				WHERE s.last_order_at + make_interval(days => j.lapsed_days) <= now()
				  AND s.last_order_at + make_interval(days => j.lapsed_days) > j.enabled_at
				  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = s.customer_id
									AND e.anchor_at >= s.last_order_at + make_interval(days => j.lapsed_days))
				HAVING count(*) > 0), 0);
		ELSIF j.trigger = 'anniversary' THEN
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(s.customer_id), array_agg(now()),
											array_agg(jsonb_build_object('years', y.years, 'first_order_at', s.first_order_at)))
				FROM post_purchase.customer_state s
				CROSS JOIN LATERAL (SELECT (extract(year FROM today) - extract(year FROM s.first_day))::integer AS years) y
				WHERE y.years >= 1 AND (s.first_day + make_interval(years => y.years))::date = today
				  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = s.customer_id
									AND (e.enrolled_at AT TIME ZONE zone)::date = today)
				HAVING count(*) > 0), 0);
		ELSE
			-- one enrollment per customer, for the product due first
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(r.customer_id), array_agg(r.next_due - j.lead_time),
											array_agg(jsonb_build_object('product_id', r.product_id, 'due_at', r.next_due,
																		 'last_purchase', r.last_purchase)))
				FROM (SELECT DISTINCT ON (p.customer_id) p.*
					  FROM post_purchase.customer_product_replenishment p
					  WHERE p.next_due - j.lead_time <= now() AND p.next_due - j.lead_time > j.enabled_at
					  ORDER BY p.customer_id, p.next_due) r
				WHERE NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = r.customer_id
									AND e.anchor_at >= r.next_due - j.lead_time)
				HAVING count(*) > 0), 0);
		END IF;
		PERFORM post_purchase.progress_advance(1);
	END LOOP;
	PERFORM post_purchase.progress_finish();
	RETURN entered;
END
$$;
COMMENT ON FUNCTION post_purchase.enroll_due() IS
	'enroll customers in the lapsed, anniversary and replenishment_due journeys; the workers call it';
REVOKE ALL ON FUNCTION post_purchase.enroll_due() FROM PUBLIC;

-- Whether a user-written condition holds for a customer, evaluated as the
-- journey's owner with search_path locked down (src/journeys.c, and its
-- declaration too, as every C function that runs SQL).
CREATE FUNCTION post_purchase.evaluate_condition(owner regrole, condition text, customer_id text)
	RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.evaluate_condition(regrole, text, text) FROM PUBLIC;

-- A payload template with its {{placeholders}} filled from the context:
-- a string that is exactly one placeholder takes the value with its JSON
-- type, placeholders inside longer strings are replaced by text; a path
-- with dots walks into objects ({{customer.clv_12m}}); a path that leads
-- nowhere gives null, or "" inside text (src/payload.c).
CREATE FUNCTION post_purchase.render_payload(template jsonb, context jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.render_payload(jsonb, jsonb) IS
	'fill a payload template''s {{placeholders}} from a context object';

-- What the workers render a message with: for an object context (the
-- extension's enrollments are), render_payload(template, jsonb_build_object(
-- 'customer', customer, 'customer_id', customer_id, ...) || context),
-- without building that object for every message (C, in src/payload.c,
-- which lists the fields in this order).  A context that is not an object
-- offers no keys, and the fields still fill their placeholders.
CREATE FUNCTION post_purchase.render_message(template jsonb, context jsonb, customer jsonb, customer_id text,
											 journey text, step text, variant text, channel text, address text,
											 enrollment_id bigint, enrolled_at timestamptz,
											 message_id uuid DEFAULT NULL)
	RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.render_message(jsonb, jsonb, jsonb, text, text, text, text, text, text, bigint, timestamptz, uuid) IS
	'fill a step''s payload template from the enrollment''s context, then the message''s fields (the workers'' render_payload)';

-- When a message on this channel may go to the customer: now, or the end
-- of the customer's quiet hours (in their time zone) if now is inside them.
CREATE FUNCTION post_purchase.quiet_hours_end(customer text, channel text, at timestamptz) RETURNS timestamptz
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	zone text;
	quiet_from time;
	quiet_until time;
	local timestamp;
	t time;
BEGIN
	-- one query, not a setting() call each: this runs for every step fired
	-- on a quiet-hours channel
	SELECT coalesce((SELECT p.time_zone FROM post_purchase.customer_profiles p WHERE p.customer_id = customer),
					max(s.value) FILTER (WHERE s.name = 'time_zone')),
		   max(s.value) FILTER (WHERE s.name = 'quiet_hours_start'),
		   max(s.value) FILTER (WHERE s.name = 'quiet_hours_end')
	INTO zone, quiet_from, quiet_until
	FROM post_purchase.settings s;
	local := at AT TIME ZONE zone;
	t := local::time;
	IF quiet_from = quiet_until OR NOT channel = ANY (post_purchase.setting_list('quiet_hours_channels')) THEN
		RETURN at;
	END IF;
	IF quiet_from < quiet_until THEN
		IF t >= quiet_from AND t < quiet_until THEN
			RETURN (local::date + quiet_until) AT TIME ZONE zone;
		END IF;
	ELSIF t >= quiet_from THEN			-- overnight window, evening part
		RETURN (local::date + 1 + quiet_until) AT TIME ZONE zone;
	ELSIF t < quiet_until THEN			-- overnight window, morning part
		RETURN (local::date + quiet_until) AT TIME ZONE zone;
	END IF;
	RETURN at;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.quiet_hours_end(text, text, timestamptz) FROM PUBLIC;

-- The user-written conditions of claimed steps, evaluated one at a time as
-- each journey's owner: a condition that fails suppresses its own step with
-- the error, and never the batch.  Holdout steps are decided without one.
CREATE FUNCTION post_purchase.evaluate_step_conditions(enrollment_ids bigint[])
	RETURNS TABLE (enrollment_id bigint, reason text, detail text)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	c record;
	holds boolean;
BEGIN
	FOR c IN SELECT e.enrollment_id, e.customer_id, j.owner, s.condition
			 FROM post_purchase.enrollments e
			 JOIN post_purchase.journeys j ON j.name = e.journey
			 JOIN post_purchase.journey_steps s ON s.journey = e.journey AND s.position = e.next_position
			 WHERE e.enrollment_id = ANY (enrollment_ids) AND s.condition IS NOT NULL AND NOT e.holdout LOOP
		enrollment_id := c.enrollment_id;
		detail := NULL;
		BEGIN
			holds := post_purchase.evaluate_condition(c.owner, c.condition, c.customer_id);
			reason := CASE WHEN holds IS TRUE THEN NULL ELSE 'condition' END;
		EXCEPTION WHEN OTHERS THEN
			reason := 'condition_error';
			detail := SQLERRM;
		END;
		RETURN NEXT;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.evaluate_step_conditions(bigint[]) FROM PUBLIC;

-- Claim up to batch_size due steps and decide them all (the workers' unit of
-- work; callable by hand): suppress a step with a reason, defer it past
-- quiet hours, or write its message to the outbox; then move each
-- enrollment to its next step.  The claim is FOR UPDATE SKIP LOCKED, so
-- workers share the queue; the share lock on the journey makes
-- disable_journey() wait for batches in flight, after which no step of it
-- fires.  The outbox rows, the outcomes and the moves commit together: a
-- crash before the commit leaves the steps due, and they fire again, once.
-- Set-based but for the conditions.  (Generic plans were tried: they join
-- the batch's CTEs by nested loops, quadratic in the batch size.)  Returns
-- the number of steps decided.
CREATE FUNCTION post_purchase.fire_due_steps(batch_size integer DEFAULT 100) RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	ids bigint[] := '{}';
	claiming text;
	claimed_journeys text[] := '{}';
	checked record;
	failed_ids bigint[] := '{}';
	failed_reasons text[] := '{}';
	failed_details text[] := '{}';
	cap integer := coalesce(nullif(post_purchase.setting('frequency_cap_messages'), ''), '0')::integer;
	cap_window interval := post_purchase.setting('frequency_cap_window')::interval;
	fallback text[] := post_purchase.setting_list('channel_fallback');
	exempt text[] := post_purchase.setting_list('consent_exempt_channels');
	quiet text[] := CASE WHEN post_purchase.setting('quiet_hours_start')::time
							  <> post_purchase.setting('quiet_hours_end')::time
						 THEN post_purchase.setting_list('quiet_hours_channels') ELSE '{}' END;
	decided integer;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 OR batch_size > 100000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 100000, not %', coalesce(batch_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- journey by journey, the one with the earliest due step first, each
	-- one's queue in fire time order, until the batch is full: only the
	-- steps that fire are locked, and only the journeys they belong to
	FOR claiming IN SELECT j.name
					FROM post_purchase.journeys j
					CROSS JOIN LATERAL (SELECT e.next_fire_at FROM post_purchase.enrollments e
										WHERE e.journey = j.name AND e.status = 'active' AND e.next_fire_at <= now()
										ORDER BY e.next_fire_at LIMIT 1) first_due
					WHERE j.enabled
					ORDER BY first_due.next_fire_at LOOP
		-- disable_journey() waits for the batch; one being disabled is skipped
		PERFORM FROM post_purchase.journeys j WHERE j.name = claiming AND j.enabled FOR SHARE SKIP LOCKED;
		CONTINUE WHEN NOT FOUND;
		ids := ids || ARRAY(SELECT e.enrollment_id FROM post_purchase.enrollments e
							WHERE e.journey = claiming AND e.status = 'active' AND e.next_fire_at <= now()
							ORDER BY e.next_fire_at
							LIMIT batch_size - cardinality(ids)
							FOR UPDATE SKIP LOCKED);
		claimed_journeys := claimed_journeys || claiming;
		EXIT WHEN cardinality(ids) >= batch_size;
	END LOOP;
	IF cardinality(ids) = 0 THEN
		RETURN 0;
	END IF;

	-- a look at each step of the batch only if one of its journeys has a
	-- condition at all (a twentieth of a batch's time, for nothing, if not)
	IF EXISTS (SELECT FROM post_purchase.journey_steps s
			   WHERE s.journey = ANY (claimed_journeys) AND s.condition IS NOT NULL) THEN
		FOR checked IN SELECT * FROM post_purchase.evaluate_step_conditions(ids) x WHERE x.reason IS NOT NULL LOOP
			failed_ids := failed_ids || checked.enrollment_id;
			failed_reasons := failed_reasons || checked.reason;
			failed_details := failed_details || checked.detail;
		END LOOP;
	END IF;

	WITH due AS (
		SELECT e.enrollment_id, e.customer_id, e.journey, e.next_position, e.anchor_at, e.holdout, e.variant,
			   e.context, e.enrolled_at, s.step, s.channel AS wanted, s.message_type, s.segment,
			   s.payload || coalesce(s.variant_payloads -> e.variant, '{}') AS template, s.uses_customer,
			   f.reason AS condition_reason, f.detail
		FROM post_purchase.enrollments e
		JOIN post_purchase.journey_steps s ON s.journey = e.journey AND s.position = e.next_position
		LEFT JOIN unnest(failed_ids, failed_reasons, failed_details) f(enrollment_id, reason, detail)
			ON f.enrollment_id = e.enrollment_id
		WHERE e.enrollment_id = ANY (ids)
	), routed AS (
		-- the channel: the step's own if the customer opted in (or it needs no
		-- consent); for 'preferred', the customer's preferred opted-in channel,
		-- else the first opted-in one in the channel_fallback order
		SELECT d.*, coalesce(r.channel, x.channel) AS channel, coalesce(r.address, x.address) AS address,
			   CASE WHEN d.holdout THEN 'holdout'
					WHEN d.segment IS NOT NULL AND NOT post_purchase.in_segment(d.customer_id, d.segment) THEN 'segment'
					WHEN d.condition_reason IS NOT NULL THEN d.condition_reason
					WHEN r.channel IS NULL AND x.channel IS NULL THEN 'no_consent'
			   END AS early_reason
		FROM due d
		LEFT JOIN LATERAL (
			SELECT c.channel, c.address FROM post_purchase.customer_channels c
			WHERE c.customer_id = d.customer_id AND c.opted_in
			  AND (c.channel = d.wanted OR (d.wanted = 'preferred' AND (c.preferred OR c.channel = ANY (fallback))))
			ORDER BY CASE WHEN c.channel = d.wanted OR c.preferred THEN 0 ELSE array_position(fallback, c.channel) END
			LIMIT 1) r ON true
		LEFT JOIN LATERAL (
			SELECT d.wanted AS channel, (SELECT c.address FROM post_purchase.customer_channels c
										 WHERE c.customer_id = d.customer_id AND c.channel = d.wanted) AS address
			WHERE d.wanted = ANY (exempt)) x ON true
	), capped AS (
		-- the cap counts earlier messages and the ones this batch sends first
		SELECT r.*,
			   CASE WHEN r.early_reason IS NOT NULL THEN r.early_reason
					WHEN cap > 0 AND
						 (SELECT count(*) FROM post_purchase.step_outcomes o
						  WHERE o.customer_id = r.customer_id AND o.channel = r.channel AND o.outcome = 'fired'
							AND o.decided_at > now() - cap_window)
						 + count(*) FILTER (WHERE r.early_reason IS NULL)
							 OVER (PARTITION BY r.customer_id, r.channel ORDER BY r.enrollment_id) > cap
					THEN 'frequency_cap'
			   END AS reason
		FROM routed r
	), timed AS (
		SELECT c.*,
			   CASE WHEN c.reason IS NOT NULL THEN NULL
					WHEN c.channel = ANY (quiet) THEN post_purchase.quiet_hours_end(c.customer_id, c.channel, now())
					ELSE now() END AS send_at
		FROM capped c
	), decided AS (
		-- the message's id up front: the outcome refers to it without a join
		SELECT t.*, CASE WHEN t.reason IS NULL AND t.send_at <= now() THEN post_purchase.uuid_v7() END AS message_id
		FROM timed t
	), sent AS (
		INSERT INTO post_purchase.outbox (id, aggregateid, type, payload, channel, address, journey, step, variant,
										  enrollment_id)
		SELECT d.message_id, d.customer_id, d.message_type,
			   post_purchase.render_message(d.template, d.context,
				   CASE WHEN d.uses_customer THEN
					   (SELECT to_jsonb(m) FROM post_purchase.customer_metrics m WHERE m.customer_id = d.customer_id) END,
				   d.customer_id, d.journey, d.step, d.variant, d.channel, d.address, d.enrollment_id, d.enrolled_at,
				   d.message_id),
			   d.channel, d.address, d.journey, d.step, d.variant, d.enrollment_id
		FROM decided d
		WHERE d.message_id IS NOT NULL
		-- a step decided again finds its message (and its outcome) in place
		ON CONFLICT ON CONSTRAINT outbox_idempotency DO NOTHING
	), recorded AS (
		INSERT INTO post_purchase.step_outcomes (enrollment_id, step, journey, customer_id, variant, holdout,
												 outcome, reason, detail, channel, outbox_id)
		SELECT d.enrollment_id, d.step, d.journey, d.customer_id, d.variant, d.holdout,
			   CASE WHEN d.reason IS NULL THEN 'fired' ELSE 'suppressed' END, d.reason,
			   CASE WHEN d.reason = 'condition_error' THEN d.detail END, d.channel, d.message_id
		FROM decided d
		WHERE d.reason IS NOT NULL OR d.send_at <= now()
		ON CONFLICT DO NOTHING
	), moved AS (
		-- quiet hours defer the step; otherwise on to the next step, or done
		UPDATE post_purchase.enrollments e
		SET next_fire_at = CASE WHEN d.send_at > now() THEN d.send_at WHEN n.position IS NOT NULL
								THEN e.anchor_at + n.delay END,
			next_position = CASE WHEN d.send_at > now() THEN e.next_position ELSE n.position END,
			status = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN 'active' ELSE 'completed' END,
			ended_at = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN NULL ELSE now() END,
			end_reason = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN NULL ELSE 'completed' END
		FROM decided d
		LEFT JOIN LATERAL (SELECT x.position, x.delay FROM post_purchase.journey_steps x
						   WHERE x.journey = d.journey AND x.position > d.next_position
						   ORDER BY x.position LIMIT 1) n ON true
		WHERE e.enrollment_id = d.enrollment_id
	)
	SELECT count(*) INTO decided FROM decided d WHERE d.reason IS NOT NULL OR d.send_at <= now();
	RETURN decided;
END
$$;
COMMENT ON FUNCTION post_purchase.fire_due_steps(integer) IS
	'decide up to batch_size due journey steps: fire them into the outbox or record why not; the workers call it';
REVOKE ALL ON FUNCTION post_purchase.fire_due_steps(integer) FROM PUBLIC;

-- When the next step is due, for the workers' sleep: the first of each
-- enabled journey's queue.
CREATE FUNCTION post_purchase.next_due_at() RETURNS timestamptz
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT min(x.next_fire_at)
	FROM post_purchase.journeys j
	CROSS JOIN LATERAL (SELECT e.next_fire_at FROM post_purchase.enrollments e
						WHERE e.journey = j.name AND e.status = 'active'
						ORDER BY e.next_fire_at LIMIT 1) x
	WHERE j.enabled
$$;
REVOKE ALL ON FUNCTION post_purchase.next_due_at() FROM PUBLIC;

-- Per journey, step and A/B variant: how many entered, what became of the
-- steps, what the senders reported, and what it earned.  A step converts
-- when its customer orders within attribution_window after it was decided
-- (recorded by the order trigger); the holdout's steps are decided at the
-- same time without a message, so the uplift compares like with like.
CREATE VIEW post_purchase.journey_stats AS
WITH enrolled AS (
	SELECT e.journey, e.variant, count(*) FILTER (WHERE NOT e.holdout) AS enrolled,
		   count(*) FILTER (WHERE e.holdout) AS holdout_enrolled
	FROM post_purchase.enrollments e GROUP BY e.journey, e.variant
), events AS (
	SELECT v.journey, v.step, v.variant,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'delivered') AS delivered,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'opened') AS opened,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'clicked') AS clicked,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'bounced') AS bounced,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'unsubscribed') AS unsubscribed
	FROM post_purchase.message_events v GROUP BY v.journey, v.step, v.variant
), steps AS (
	SELECT o.journey, o.step, o.variant,
		   count(*) FILTER (WHERE o.outcome = 'fired') AS fired,
		   count(*) FILTER (WHERE o.reason = 'holdout') AS held_out,
		   count(*) FILTER (WHERE o.reason = 'condition') AS suppressed_condition,
		   count(*) FILTER (WHERE o.reason = 'condition_error') AS suppressed_condition_error,
		   count(*) FILTER (WHERE o.reason = 'segment') AS suppressed_segment,
		   count(*) FILTER (WHERE o.reason = 'no_consent') AS suppressed_no_consent,
		   count(*) FILTER (WHERE o.reason = 'frequency_cap') AS suppressed_frequency_cap,
		   count(*) FILTER (WHERE o.outcome = 'fired' AND o.converted_at IS NOT NULL) AS converted,
		   coalesce(sum(o.attributed_revenue) FILTER (WHERE o.outcome = 'fired'), 0) AS attributed_revenue,
		   count(*) FILTER (WHERE o.reason = 'holdout' AND o.converted_at IS NOT NULL) AS holdout_converted,
		   count(*) FILTER (WHERE o.outcome = 'fired' AND o.responded_at IS NOT NULL) AS responses
	FROM post_purchase.step_outcomes o GROUP BY o.journey, o.step, o.variant
)
SELECT s.journey, s.step, s.variant, coalesce(n.enrolled, 0) AS enrolled,
	   coalesce(n.holdout_enrolled, 0) AS holdout_enrolled, s.fired, s.held_out,
	   s.suppressed_condition, s.suppressed_condition_error, s.suppressed_segment, s.suppressed_no_consent,
	   s.suppressed_frequency_cap,
	   coalesce(v.delivered, 0) AS delivered, coalesce(v.opened, 0) AS opened, coalesce(v.clicked, 0) AS clicked,
	   coalesce(v.bounced, 0) AS bounced, coalesce(v.unsubscribed, 0) AS unsubscribed,
	   s.converted, s.attributed_revenue,
	   round(s.converted::numeric / nullif(s.fired, 0), 4) AS conversion_rate,
	   s.holdout_converted,
	   round(s.holdout_converted::numeric / nullif(s.held_out, 0), 4) AS holdout_conversion_rate,
	   round(s.converted::numeric / nullif(s.fired, 0) - s.holdout_converted::numeric / nullif(s.held_out, 0), 4)
		   AS uplift,
	   -- survey answers that carried the message's token ({{message_id}})
	   s.responses,
	   round(s.responses::numeric / nullif(s.fired, 0), 4) AS response_rate
FROM steps s
LEFT JOIN enrolled n ON n.journey = s.journey AND n.variant IS NOT DISTINCT FROM s.variant
LEFT JOIN events v ON v.journey = s.journey AND v.step = s.step AND v.variant IS NOT DISTINCT FROM s.variant;
COMMENT ON VIEW post_purchase.journey_stats IS
	'per journey, step and variant: enrolled, fired, suppressed by reason, delivered, opened, clicked, converted, attributed revenue, holdout conversion and uplift, survey responses and response rate';

-- The seed programs: ready, disabled; enable_journey(name) starts one.
INSERT INTO post_purchase.journeys (name, trigger, nth_order, lapsed_days, lead_time, exit_on_purchase,
									reentry, reentry_interval, holdout_percent) VALUES
	('thank_you', 'every_order', NULL, NULL, NULL, false, 'every_time', NULL, 0),
	('how_to_guide', 'first_order', NULL, NULL, NULL, false, 'once', NULL, 0),
	('nps_survey', 'every_order', NULL, NULL, NULL, false, 'after_interval', '90 days', 0),
	('review_request', 'every_order', NULL, NULL, NULL, false, 'every_time', NULL, 0),
	('cross_sell', 'every_order', NULL, NULL, NULL, true, 'every_time', NULL, 10),
	('loyalty_invite', 'nth_order', 2, NULL, NULL, false, 'once', NULL, 0),
	('replenishment_reminder', 'replenishment_due', NULL, NULL, '3 days', true, 'every_time', NULL, 0),
	('win_back', 'lapsed', NULL, 180, NULL, true, 'every_time', NULL, 10);
-- a detractor's answer (last_nps <= 6) enters the detractors segment
-- (src/segments.sql): ask what went wrong, once per 90 days
INSERT INTO post_purchase.journeys (name, trigger, segment, exit_on_purchase, reentry, reentry_interval,
									holdout_percent) VALUES
	('detractor_follow_up', 'segment_entered', 'detractors', false, 'after_interval', '90 days', 0);
INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, payload) VALUES
	('thank_you', 'thank_you', 1, '0', 'preferred', 'thank_you',
	 '{"subject": "Thank you for your order", "customer_id": "{{customer_id}}", "order": "{{order}}"}'),
	('how_to_guide', 'how_to_guide', 1, '2 days', 'email', 'how_to_guide',
	 '{"subject": "Getting the most out of your purchase", "order": "{{order}}"}'),
	('nps_survey', 'nps_survey', 1, '7 days', 'email', 'nps_survey',
	 '{"subject": "How likely are you to recommend us?", "scale": "0-10", "customer_id": "{{customer_id}}", "order": "{{order}}", "token": "{{message_id}}"}'),
	('review_request', 'review_request', 1, '14 days', 'email', 'review_request',
	 '{"subject": "How do you like it?", "order": "{{order}}"}'),
	('cross_sell', 'cross_sell', 1, '30 days', 'preferred', 'cross_sell',
	 '{"subject": "Picked for you", "customer_id": "{{customer_id}}", "rfm_segment": "{{customer.rfm_segment}}", "recommendations": "{{recommendations}}"}'),
	('loyalty_invite', 'loyalty_invite', 1, '0', 'email', 'loyalty_invite',
	 '{"subject": "Join our loyalty program", "orders": "{{customer.orders}}"}'),
	('replenishment_reminder', 'replenishment_reminder', 1, '0', 'preferred', 'replenishment_reminder',
	 '{"subject": "Running low?", "product_id": "{{product_id}}", "due_at": "{{due_at}}"}'),
	('win_back', 'win_back_offer', 1, '0', 'email', 'win_back',
	 '{"subject": "We miss you: 15% off your next order", "discount_code": "COMEBACK15", "discount_percent": 15, "last_order_at": "{{last_order_at}}"}'),
	('win_back', 'win_back_reminder', 2, '14 days', 'email', 'win_back_reminder',
	 '{"subject": "Your 15% off ends soon", "discount_code": "COMEBACK15", "discount_percent": 15}'),
	('detractor_follow_up', 'detractor_follow_up', 1, '0', 'preferred', 'detractor_follow_up',
	 '{"subject": "We are sorry: what went wrong?", "customer_id": "{{customer_id}}", "score": "{{customer.last_nps}}", "answered_at": "{{customer.last_nps_at}}"}');
