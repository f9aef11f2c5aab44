
-- Progress of long calls (src/progress.c): the calls that take long on a
-- large shop report what they do, as a NOTICE at most once per
-- post_purchase.progress_notice_interval (1 s) and in the view
-- post_purchase.progress, which another session can watch while the call
-- runs inside its transaction.  The reporting functions are what the
-- extension's own PL/pgSQL calls; a phase or an advance outside a started
-- command does nothing.  A command ends with progress_finish() or with the
-- (sub)transaction it was started in, by commit or by error.

-- Start a command (named as the function that runs it), with a count of
-- total units when unit is given (a NULL total: not known).
CREATE FUNCTION post_purchase.progress_start(command text, total bigint DEFAULT NULL, unit text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_start'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_start(text, bigint, text) FROM PUBLIC;

-- What the command does now; the count goes on.
CREATE FUNCTION post_purchase.progress_phase(phase text) RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_phase'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_phase(text) FROM PUBLIC;

-- A new count from 0 of total units (NULL: not known).
CREATE FUNCTION post_purchase.progress_count(total bigint, unit text) RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_count'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_count(bigint, text) FROM PUBLIC;

-- n more done; true, so it can count the rows of a big statement from its
-- WHERE or HAVING clause.  With a phase, the first call switches to it and
-- to a new count of unit.  VOLATILE: evaluated for every row, never
-- folded; PARALLEL UNSAFE (the default): a parallel worker's count would
-- not reach this backend's slot, and the statements it counts (INSERT ...
-- SELECT) run without parallel workers in PostgreSQL 15 anyway.
CREATE FUNCTION post_purchase.progress_advance(n bigint DEFAULT 1, phase text DEFAULT NULL, unit text DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'post_purchase_progress_advance'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_advance(bigint, text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.progress_finish() RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_progress_finish'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION post_purchase.progress_finish() FROM PUBLIC;

-- The planner's row estimate of a table (pg_class.reltuples; a partitioned
-- table's is the sum of its partitions'), NULL when the table was never
-- vacuumed or analyzed: a progress total that costs no scan.
CREATE FUNCTION post_purchase.progress_estimated_rows(rel regclass) RETURNS bigint
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN pg_catalog.bool_and(c.reltuples OPERATOR(pg_catalog.>=) 0)
				THEN pg_catalog.sum(c.reltuples)::pg_catalog.int8 END
	FROM pg_catalog.pg_class c
	-- pg_partition_tree() has no row for a table outside any partitioning
	WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(
		SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t WHERE t.isleaf
		UNION ALL
		SELECT rel WHERE (SELECT x.relkind FROM pg_catalog.pg_class x WHERE x.oid OPERATOR(pg_catalog.=) rel)
						 OPERATOR(pg_catalog.<>) 'p'))
$$;
REVOKE ALL ON FUNCTION post_purchase.progress_estimated_rows(regclass) FROM PUBLIC;

-- One row per running command, of every database; no rows unless
-- post_purchase is in shared_preload_libraries.  Readable as worker_status
-- is: by superusers and pg_read_all_stats (pg_monitor).
CREATE FUNCTION post_purchase.progress(
	OUT pid integer,
	OUT database name,
	OUT role name,
	OUT command text,
	OUT phase text,
	OUT done bigint,
	OUT total bigint,
	OUT unit text,
	OUT percent double precision,
	OUT rate double precision,
	OUT started_at timestamptz,
	OUT counting_since timestamptz,
	OUT updated_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'post_purchase_progress'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION post_purchase.progress() IS
	'the long calls running now, in every database: command, phase, done of total units, percent, units per second';
REVOKE ALL ON FUNCTION post_purchase.progress() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION post_purchase.progress() TO pg_read_all_stats;

CREATE VIEW post_purchase.progress AS
	SELECT p.pid, p.database, p.role, p.command, p.phase, p.done, p.total, p.unit,
		   pg_catalog.round(p.percent::pg_catalog.numeric, 1) AS percent,
		   pg_catalog.round(p.rate::pg_catalog.numeric, 1) AS rate,
		   p.started_at, p.counting_since, p.updated_at
	FROM post_purchase.progress() p
	ORDER BY p.started_at, p.pid;
COMMENT ON VIEW post_purchase.progress IS
	'the long calls running now, in every database: command, phase, done of total units, percent, units per second';
REVOKE ALL ON post_purchase.progress FROM PUBLIC;
GRANT SELECT ON post_purchase.progress TO pg_read_all_stats;
