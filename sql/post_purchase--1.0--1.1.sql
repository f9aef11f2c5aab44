-- post_purchase 1.0 -> 1.1
-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION post_purchase UPDATE TO '1.1'" to load this file. \quit

-- Dump and restore keep every table (src/dump.sql); the workers pause and
-- the segment triggers enroll no one while pg_restore runs (src/worker.sql).
-- Whether this session restores a dump: pg_restore connects with
-- application_name pg_restore (to restore a plain-format dump with psql,
-- set PGAPPNAME=pg_restore).  While any such session is connected to a
-- database, its workers pause (worker.c), and in the restoring session the
-- segment triggers enroll no one and restored seed rows replace the
-- installed ones (src/dump.sql): the dump holds the enrollments and the
-- outbox already, and firing in between would fire a step twice.
CREATE FUNCTION post_purchase.restoring() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.=) 'pg_restore'$$;
COMMENT ON FUNCTION post_purchase.restoring() IS
	'whether this session restores a dump (application_name pg_restore): workers pause, segment triggers do not enroll';

-- restored memberships come with the enrollments they made
CREATE OR REPLACE FUNCTION post_purchase.enroll_segment_changes() RETURNS trigger
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

-- The install script seeds rows (settings, built-in segments, the seed
-- journeys and their steps, the sweep mark) that the shop may since have
-- changed.  Those rows are in the dump too, and the restore finds the
-- seeds of its own CREATE EXTENSION in their place: while a restore runs,
-- an inserted row whose key a row already has replaces that row.  The key
-- columns are the trigger's arguments; without any, the table has one row.
-- Outside a restore an insert of an existing key fails as usual.
CREATE FUNCTION post_purchase.restore_replaces_row() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	assignments text;
	key_matches text;
	replaced bigint;
BEGIN
	IF NOT post_purchase.restoring() THEN
		RETURN NEW;
	END IF;
	-- every column the row may set (generated ones follow by themselves)
	SELECT string_agg(format('%I = ($1).%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
	INTO assignments
	FROM pg_attribute a
	WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
	SELECT coalesce(string_agg(format('t.%I = ($1).%I', k, k), ' AND '), 'true')
	INTO key_matches
	FROM unnest(TG_ARGV) k;
	EXECUTE format('UPDATE %I.%I t SET %s WHERE %s', TG_TABLE_SCHEMA, TG_TABLE_NAME, assignments, key_matches)
	USING NEW;
	GET DIAGNOSTICS replaced = ROW_COUNT;
	IF replaced > 0 THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.restore_replaces_row() FROM PUBLIC;

CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.settings
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('name');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.segments
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('name');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.journeys
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('name');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.journey_steps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row('journey', 'step');
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.enrollment_sweeps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row();

-- configuration
SELECT pg_catalog.pg_extension_config_dump('post_purchase.settings', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.tracked_orders', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.tracked_order_items', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.products', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.segments', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.journeys', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.journey_steps', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_channels', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_profiles', '');
-- state
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_days', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_state', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_product_orders', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.product_cycles', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.models', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_predictions', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.rfm_cuts', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.segment_memberships', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollments', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollments_enrollment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.step_outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollment_sweeps', '');
-- the outbox, its events and their sequence are marked in src/outbox.sql

-- Not NULLIF: it compares with the "=" the caller's search_path finds.
CREATE OR REPLACE FUNCTION post_purchase.shop_today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT COALESCE(CASE WHEN post_purchase.setting('today') OPERATOR(pg_catalog.<>) ''
							 THEN post_purchase.setting('today')::pg_catalog.date END,
						 (pg_catalog.now() AT TIME ZONE post_purchase.setting('time_zone'))::pg_catalog.date)$$;

-- every C function that runs SQL locks search_path in its declaration too
ALTER FUNCTION post_purchase.evaluate_condition(regrole, text, text) SET search_path = pg_catalog, pg_temp;

-- Rules and step conditions run as the role in their row's owner column
-- (src/segments.sql): only a member of that role may write such a row.
CREATE FUNCTION post_purchase.check_owner() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	owners regrole[];
	owner regrole;
	label text;
BEGIN
	IF TG_ARGV[0] = 'journey step' THEN
		label := NEW.journey || '.' || NEW.step;
		owners := ARRAY(SELECT j.owner FROM post_purchase.journeys j WHERE j.name = NEW.journey);
		IF TG_OP = 'UPDATE' THEN
			owners := owners || ARRAY(SELECT j.owner FROM post_purchase.journeys j WHERE j.name = OLD.journey);
		END IF;
	ELSE
		label := NEW.name;
		owners := ARRAY[NEW.owner];
		IF TG_OP = 'UPDATE' THEN
			owners := owners || OLD.owner;
		END IF;
	END IF;
	FOREACH owner IN ARRAY owners LOOP
		IF NOT pg_has_role(current_user, owner, 'MEMBER') THEN
			RAISE EXCEPTION 'permission denied to write % "%" as owned by role %', TG_ARGV[0], label, owner
				USING ERRCODE = 'insufficient_privilege',
					  DETAIL = format('The %s''s SQL runs as its owner; only a member of that role may write it.', TG_ARGV[0]);
		END IF;
	END LOOP;
	RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_owner() FROM PUBLIC;
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.segments
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('segment');
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.journeys
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('journey');
CREATE TRIGGER check_owner BEFORE INSERT OR UPDATE ON post_purchase.journey_steps
	FOR EACH ROW EXECUTE FUNCTION post_purchase.check_owner('journey step');

-- Queue tables vacuum at 5% dead tuples (README, Maintenance).
ALTER TABLE post_purchase.enrollments SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE post_purchase.outbox SET (autovacuum_vacuum_scale_factor = 0.05);
