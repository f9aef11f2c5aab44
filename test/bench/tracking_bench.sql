-- tracking_bench.sql: the tables that keep run_tracking_bench.sh's numbers
-- (schema "bench" of the throwaway database; tracking_bench_report.sql reads
-- them) and the functions that time things inside the server, so that no
-- row reaches the client and psql adds nothing.
--
--   psql -v label=large -f test/bench/tracking_bench.sql   (forgets that label's numbers)

\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.timings (
	label text NOT NULL,
	name text NOT NULL,
	run integer NOT NULL,
	ms float8 NOT NULL
);
-- one pgbench run: stage is the configuration of the tracked side
CREATE TABLE IF NOT EXISTS bench.tps (
	label text NOT NULL,
	stage text NOT NULL,
	clients integer NOT NULL,
	seq integer NOT NULL,			-- order of the runs within the stage
	tracked boolean NOT NULL,		-- inserted into shop.orders (else bench.orders_copy)
	tps float8 NOT NULL,
	transactions bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS bench.facts (
	label text NOT NULL,
	name text NOT NULL,
	value numeric,
	PRIMARY KEY (label, name)
);
DELETE FROM bench.timings WHERE label = :'label';
DELETE FROM bench.tps WHERE label = :'label';
DELETE FROM bench.facts WHERE label = :'label';

CREATE OR REPLACE FUNCTION bench.fact(label text, name text, value numeric) RETURNS void
	LANGUAGE sql AS $$
	INSERT INTO bench.facts VALUES (label, name, value)
	ON CONFLICT (label, name) DO UPDATE SET value = excluded.value
$$;

-- Milliseconds one statement takes, its rows discarded.
CREATE OR REPLACE FUNCTION bench.elapsed_ms(statement text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
	started timestamptz := clock_timestamp();
BEGIN
	EXECUTE statement;
	RETURN 1000 * extract(epoch FROM clock_timestamp() - started);
END
$$;

-- n customers of the generated ones (1..customers), the same on every run.
CREATE OR REPLACE FUNCTION bench.sample_customers(n integer, customers bigint) RETURNS text[]
	LANGUAGE sql IMMUTABLE
	RETURN (SELECT array_agg(((hashint8extended(i, 7) & 9007199254740991) % customers + 1)::text ORDER BY i)
			FROM generate_series(1, n) AS i);

-- The milliseconds of reading each customer's row of customer_metrics (every
-- column computed: count(x.*)).  adhoc: the query is parsed and planned for
-- each customer, as for a client that does not prepare it; otherwise
-- PL/pgSQL's cached plan is used, as with a prepared statement.
CREATE OR REPLACE FUNCTION bench.lookups(ids text[], adhoc boolean) RETURNS float8[]
LANGUAGE plpgsql AS $$
DECLARE
	id text;
	started timestamptz;
	found bigint;
	ms float8[] := '{}';
BEGIN
	FOREACH id IN ARRAY ids LOOP
		started := clock_timestamp();
		IF adhoc THEN
			EXECUTE 'SELECT count(x.*) FROM post_purchase.customer_metrics x WHERE x.customer_id = $1'
				INTO found USING id;
		ELSE
			SELECT count(x.*) INTO found FROM post_purchase.customer_metrics x WHERE x.customer_id = id;
		END IF;
		ms := ms || 1000 * extract(epoch FROM clock_timestamp() - started);
		IF found <> 1 THEN
			RAISE EXCEPTION 'customer % has % rows in customer_metrics', id, found;
		END IF;
	END LOOP;
	RETURN ms;
END
$$;

-- The batch of lookups with the lowest mean of runs batches, as the full
-- scans keep their best run: the first batch after the bulk writes before
-- it measured up to three times the later ones on 2026-12-07.
CREATE OR REPLACE FUNCTION bench.best_lookups(ids text[], adhoc boolean, runs integer) RETURNS float8[]
	LANGUAGE sql AS $$
	SELECT b.ms FROM (SELECT bench.lookups(ids, adhoc) AS ms FROM generate_series(1, runs)) b
	ORDER BY (SELECT avg(m) FROM unnest(b.ms) m) LIMIT 1
$$;

-- Record mean, median, 99th percentile and maximum of some timings as facts.
CREATE OR REPLACE FUNCTION bench.record_spread(label text, name text, ms float8[]) RETURNS void
	LANGUAGE sql AS $$
	INSERT INTO bench.facts
	SELECT label, name || '_' || s.stat, s.value::numeric
	FROM (SELECT avg(m) AS mean,
				 percentile_cont(0.5) WITHIN GROUP (ORDER BY m) AS p50,
				 percentile_cont(0.99) WITHIN GROUP (ORDER BY m) AS p99,
				 max(m) AS max,
				 count(*)::float8 AS n
		  FROM unnest(ms) AS m) AS t,
		 LATERAL (VALUES ('mean', t.mean), ('p50', t.p50), ('p99', t.p99), ('max', t.max), ('n', t.n)) AS s(stat, value)
	ON CONFLICT (label, name) DO UPDATE SET value = excluded.value
$$;

-- For some customers: how many (customer, segment) pairs have an open
-- membership that disagrees with the segment's rule evaluated now.
CREATE OR REPLACE FUNCTION bench.segment_disagreements(ids text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	seg record;
	n bigint;
	total bigint := 0;
BEGIN
	CREATE TEMPORARY TABLE checked ON COMMIT DROP AS
	SELECT c.* FROM unnest(ids) AS i(id)
		 CROSS JOIN LATERAL (SELECT * FROM post_purchase.customer_metrics x WHERE x.customer_id = i.id) AS c;
	FOR seg IN SELECT s.name, s.rule FROM post_purchase.segments s LOOP
		EXECUTE format('SELECT count(*) FROM pg_temp.checked c
						WHERE ((%s) IS TRUE) IS DISTINCT FROM post_purchase.in_segment(c.customer_id, $1)',
					   seg.rule)
			INTO n USING seg.name;
		total := total + n;
	END LOOP;
	DROP TABLE pg_temp.checked;
	RETURN total;
END
$$;
