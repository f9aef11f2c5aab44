-- Background workers (src/worker.c): a launcher started from
-- shared_preload_libraries runs workers in the databases listed in
-- post_purchase.databases; they fire due journey steps.

-- One row per worker, of every database; no rows unless post_purchase is in
-- shared_preload_libraries.
CREATE FUNCTION post_purchase.worker_status(
	OUT database name,
	OUT worker integer,
	OUT pid integer,
	OUT started_at timestamptz,
	OUT last_run_at timestamptz,
	OUT steps_fired bigint,
	OUT last_error text,
	OUT last_error_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'post_purchase_worker_status'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION post_purchase.worker_status() IS
	'the background workers of every database: pid (NULL when not running), when each started and last ran, the steps it fired and its last error';
-- error messages may show customers' data
REVOKE ALL ON FUNCTION post_purchase.worker_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION post_purchase.worker_status() TO pg_read_all_stats;

CREATE VIEW post_purchase.worker_status AS
	SELECT s.database, s.worker, s.pid, s.started_at, s.last_run_at,
		   s.steps_fired, s.last_error, s.last_error_at
	FROM post_purchase.worker_status() s
	ORDER BY s.database, s.worker;
COMMENT ON VIEW post_purchase.worker_status IS
	'the background workers of every database: pid (NULL when not running), when each started and last ran, the steps it fired and its last error';
REVOKE ALL ON post_purchase.worker_status FROM PUBLIC;
GRANT SELECT ON post_purchase.worker_status TO pg_read_all_stats;

-- Wake this database's workers when the calling transaction commits, so a
-- step due now is fired at once; does nothing without preloaded workers.
-- Called by the extension's own triggers and functions.
CREATE FUNCTION post_purchase.wake_workers() RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_wake_workers'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION post_purchase.wake_workers() IS
	'wake this database''s post_purchase workers when the transaction commits';
REVOKE ALL ON FUNCTION post_purchase.wake_workers() FROM PUBLIC;

-- Whether background workers fire this database's journey steps, with a
-- WARNING naming the setting to change when they do not: enable_journey()
-- asks, so a journey enabled where no worker runs does not wait silently.
-- A NULL argument stands for this server's own value (the current
-- database, whether the library was preloaded, post_purchase.databases,
-- post_purchase.enabled), so the decision can be tested for other servers.
CREATE FUNCTION post_purchase.check_workers_serve(database name DEFAULT NULL, preloaded boolean DEFAULT NULL,
												  databases text DEFAULT NULL, enabled boolean DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'post_purchase_check_workers_serve'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.check_workers_serve(name, boolean, text, boolean) FROM PUBLIC;

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
