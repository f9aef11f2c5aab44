-- What pg_dump keeps.  Every table of the extension holds configuration
-- (settings, segments, journeys, products, channels) or state the shop
-- cannot recompute without loss (customer state, memberships with their
-- history, models, enrollments with their progress, decided steps, the
-- outbox and its events), so every table and sequence is marked for
-- pg_dump: a dump and restore keeps all of it, and a restored enrollment
-- goes on from the step it had reached.  pg_dump restores the tables in
-- the order of their foreign keys.
--
-- During the restore (post_purchase.restoring(), src/worker.sql) the
-- workers pause and the segment triggers enroll no one: the enrollments
-- those memberships made are restored themselves.

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
CREATE TRIGGER restore_replaces_row BEFORE INSERT ON post_purchase.metrics_context_version
	FOR EACH ROW EXECUTE FUNCTION post_purchase.restore_replaces_row();

-- The version of the metrics context (customer_metrics.sql): one more for
-- every change of the settings, models or RFM cut points, but for those a
-- restore makes, which bring back the context the restored version stands
-- for.  Created here, after the seeds, and after restoring().
CREATE FUNCTION post_purchase.next_metrics_context_version() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	-- a restore brings back the settings, models and cut points the dumped
	-- version stands for, and that version with them
	IF NOT post_purchase.restoring() THEN
		UPDATE post_purchase.metrics_context_version v SET version = v.version + 1;
	END IF;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.next_metrics_context_version() FROM PUBLIC;
CREATE TRIGGER metrics_context_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.settings
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.next_metrics_context_version();
CREATE TRIGGER metrics_context_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.models
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.next_metrics_context_version();
CREATE TRIGGER metrics_context_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.rfm_cuts
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.next_metrics_context_version();

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
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_state', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.customer_product_orders', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.product_cycles', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.models', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.metrics_context_version', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.rfm_cuts', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.segment_memberships', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollments', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollments_enrollment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.step_outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.enrollment_sweeps', '');
-- the outbox, its events and their sequence are marked in src/outbox.sql
