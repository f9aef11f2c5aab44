#!/bin/bash
# Issue 22: do the aggregates on their own state types (1.1) run as fast as
# on "internal" states (1.0, and the survey aggregates before the change)?
# A narrow comparison in one run, on one throwaway server: every aggregate
# as the extension now defines it, and the same aggregate in schema
# "legacy" defined the old way over the module's "internal"-state functions
# (the C functions 1.0's SQL still calls; the module keeps exporting them),
# over the same generated shop, serial and in forced parallel plans.  The
# queries run round-robin and the best run of each counts, so load from the
# other users of the machine hits both sides alike.  Results are checked to
# be equal first; the report is appended to RESULTS_state_types.md.
#
#   STB_CUSTOMERS, STB_ORDERS, STB_ANSWERS  shop size (200000, 2000000, 1000000)
#   STB_RUNS   timed runs per query after a warm-up (5)
#   STB_ONLY   a regular expression: only the queries whose names match it
#   STB_NOTE   a sentence recorded with the results
# Needs the build installed (make install).  A few minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${STB_CUSTOMERS:=200000}" "${STB_ORDERS:=2000000}" "${STB_ANSWERS:=1000000}" "${STB_RUNS:=5}"
: "${STB_RESULTS:=$here/RESULTS_state_types.md}" "${STB_NOTE:=}" "${STB_ONLY:=.}"
export STB_CUSTOMERS STB_ORDERS STB_ANSWERS STB_RUNS STB_RESULTS STB_NOTE STB_ONLY

# the settings of run_bench.sh, smaller memory; parallel plans are forced
# per query below
settings=(shared_buffers=1GB work_mem=512MB hash_mem_multiplier=2 jit=off
	max_parallel_workers_per_gather=0 max_worker_processes=8 max_parallel_workers=4
	autovacuum=off fsync=off synchronous_commit=off full_page_writes=off TimeZone=UTC)

if [ -z "${STB_INSIDE:-}" ]; then
	unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE
	opts=()
	for s in "${settings[@]}"; do opts+=(-o "$s"); done
	STB_INSIDE=1 STB_SETTINGS="${settings[*]}" exec pg_virtualenv -t "${opts[@]}" "$here/run_state_type_bench.sh"
fi

export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
q -c 'CREATE EXTENSION post_purchase'
start=$SECONDS
q -v customers="$STB_CUSTOMERS" -v orders="$STB_ORDERS" -v answers="$STB_ANSWERS" -f "$here/generate_shop.sql"
echo "shop generated in $((SECONDS - start)) s" >&2

q <<'SQL'
-- the old definitions: "internal" states over the module's 1.0 functions
CREATE SCHEMA legacy;
CREATE FUNCTION legacy.nps_accum(internal, integer) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.nps_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.nps_serialize(internal) RETURNS bytea AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.nps_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.nps_final(internal) RETURNS numeric AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.nps_summary_final(internal) RETURNS post_purchase.nps_result AS '$libdir/post_purchase' LANGUAGE C;
CREATE AGGREGATE legacy.nps(integer) (SFUNC = legacy.nps_accum, STYPE = internal, SSPACE = 24,
	FINALFUNC = legacy.nps_final, COMBINEFUNC = legacy.nps_combine, SERIALFUNC = legacy.nps_serialize,
	DESERIALFUNC = legacy.nps_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE legacy.nps_summary(integer) (SFUNC = legacy.nps_accum, STYPE = internal, SSPACE = 24,
	FINALFUNC = legacy.nps_summary_final, COMBINEFUNC = legacy.nps_combine, SERIALFUNC = legacy.nps_serialize,
	DESERIALFUNC = legacy.nps_deserialize, PARALLEL = SAFE);
CREATE FUNCTION legacy.csat_accum(internal, integer) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.ces_accum(internal, integer) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.csat_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.ces_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.survey_serialize(internal) RETURNS bytea AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.survey_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.csat_summary_final(internal) RETURNS post_purchase.csat_result AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.ces_summary_final(internal) RETURNS post_purchase.ces_result AS '$libdir/post_purchase' LANGUAGE C;
CREATE AGGREGATE legacy.csat_summary(integer) (SFUNC = legacy.csat_accum, STYPE = internal, SSPACE = 88,
	FINALFUNC = legacy.csat_summary_final, COMBINEFUNC = legacy.csat_combine, SERIALFUNC = legacy.survey_serialize,
	DESERIALFUNC = legacy.survey_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE legacy.ces_summary(integer) (SFUNC = legacy.ces_accum, STYPE = internal, SSPACE = 88,
	FINALFUNC = legacy.ces_summary_final, COMBINEFUNC = legacy.ces_combine, SERIALFUNC = legacy.survey_serialize,
	DESERIALFUNC = legacy.survey_deserialize, PARALLEL = SAFE);
CREATE FUNCTION legacy.rfm_summary_accum(internal, timestamptz, numeric, timestamptz) RETURNS internal
	AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.rfm_summary_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.rfm_summary_serialize(internal) RETURNS bytea AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.rfm_summary_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.rfm_summary_final(internal) RETURNS post_purchase.rfm_result AS '$libdir/post_purchase' LANGUAGE C;
CREATE AGGREGATE legacy.rfm_summary(timestamptz, numeric, timestamptz) (SFUNC = legacy.rfm_summary_accum,
	STYPE = internal, SSPACE = 128, FINALFUNC = legacy.rfm_summary_final, COMBINEFUNC = legacy.rfm_summary_combine,
	SERIALFUNC = legacy.rfm_summary_serialize, DESERIALFUNC = legacy.rfm_summary_deserialize, PARALLEL = SAFE);
CREATE FUNCTION legacy.purchase_cycle_accum(internal, timestamptz) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.purchase_cycle_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.purchase_cycle_serialize(internal) RETURNS bytea AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.purchase_cycle_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.purchase_cycle_final(internal) RETURNS post_purchase.purchase_cycle_result
	AS '$libdir/post_purchase' LANGUAGE C;
CREATE AGGREGATE legacy.purchase_cycle(timestamptz) (SFUNC = legacy.purchase_cycle_accum, STYPE = internal,
	SSPACE = 64, FINALFUNC = legacy.purchase_cycle_final, COMBINEFUNC = legacy.purchase_cycle_combine,
	SERIALFUNC = legacy.purchase_cycle_serialize, DESERIALFUNC = legacy.purchase_cycle_deserialize, PARALLEL = SAFE);
CREATE FUNCTION legacy.bgnbd_fit_accum(internal, float8, float8, float8) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.bgnbd_fit_final(internal) RETURNS post_purchase.bgnbd_model AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.gamma_gamma_fit_accum(internal, float8, float8) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.gamma_gamma_fit_final(internal) RETURNS post_purchase.gamma_gamma_model AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.model_fit_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C;
CREATE FUNCTION legacy.model_fit_serialize(internal) RETURNS bytea AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE FUNCTION legacy.model_fit_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase' LANGUAGE C STRICT;
CREATE AGGREGATE legacy.bgnbd_fit(float8, float8, float8) (SFUNC = legacy.bgnbd_fit_accum, STYPE = internal,
	FINALFUNC = legacy.bgnbd_fit_final, COMBINEFUNC = legacy.model_fit_combine,
	SERIALFUNC = legacy.model_fit_serialize, DESERIALFUNC = legacy.model_fit_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE legacy.gamma_gamma_fit(float8, float8) (SFUNC = legacy.gamma_gamma_fit_accum, STYPE = internal,
	FINALFUNC = legacy.gamma_gamma_fit_final, COMBINEFUNC = legacy.model_fit_combine,
	SERIALFUNC = legacy.model_fit_serialize, DESERIALFUNC = legacy.model_fit_deserialize, PARALLEL = SAFE);

-- the customers' summaries, the input of the model fits
CREATE TABLE shop.summaries AS
SELECT (s).frequency::float8 AS frequency, (s).recency AS recency, (s).t AS t, (s).monetary_value::float8 AS m
FROM (SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-01-01') s FROM shop.orders GROUP BY customer_id) q;
ANALYZE shop.summaries;

CREATE SCHEMA stb;
CREATE TABLE stb.query (name text PRIMARY KEY, sql text NOT NULL, parallel boolean NOT NULL);
CREATE TABLE stb.timing (name text, side text, run int, ms float8);
-- a query's two sides: "new" and "legacy" (%s is the aggregate's schema)
CREATE FUNCTION stb.side_sql(name text, side text) RETURNS text LANGUAGE sql AS $$
SELECT replace(q.sql, '%s', CASE side WHEN 'new' THEN 'post_purchase' ELSE 'legacy' END)
FROM stb.query q WHERE q.name = side_sql.name $$;
CREATE FUNCTION stb.run(name text, side text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	started timestamptz;
	result text;
	par boolean := (SELECT q.parallel FROM stb.query q WHERE q.name = run.name);
BEGIN
	PERFORM set_config('max_parallel_workers_per_gather', CASE WHEN par THEN '2' ELSE '0' END, true);
	PERFORM set_config('parallel_setup_cost', '0', true);
	PERFORM set_config('parallel_tuple_cost', '0', true);
	PERFORM set_config('min_parallel_table_scan_size', '0', true);
	started := clock_timestamp();
	EXECUTE stb.side_sql(name, side) INTO result;
	RETURN 1000 * extract(epoch FROM clock_timestamp() - started);
END
$$;
INSERT INTO stb.query VALUES
	('nps', 'SELECT %s.nps(score) FROM shop.survey_answers', false),
	('nps_summary', 'SELECT %s.nps_summary(score) FROM shop.survey_answers', false),
	('csat_summary', 'SELECT %s.csat_summary(1 + score % 5) FROM shop.survey_answers', false),
	('ces_summary', 'SELECT %s.ces_summary(1 + score % 7) FROM shop.survey_answers', false),
	('nps per customer', 'SELECT count(s.*) FROM (SELECT customer_id, %s.nps_summary(score) FROM shop.survey_answers GROUP BY customer_id) s', false),
	('rfm_summary per customer', 'SELECT count(s.*) FROM (SELECT customer_id, %s.rfm_summary(ordered_at, amount, ''2024-01-01'') FROM shop.orders GROUP BY customer_id) s', false),
	('purchase_cycle per customer', 'SELECT count(s.*) FROM (SELECT customer_id, %s.purchase_cycle(ordered_at) FROM shop.orders GROUP BY customer_id) s', false),
	('bgnbd_fit', 'SELECT %s.bgnbd_fit(frequency, recency, t) FROM shop.summaries', false),
	('gamma_gamma_fit', 'SELECT %s.gamma_gamma_fit(frequency, m) FROM shop.summaries WHERE frequency > 0', false),
	('parallel nps', 'SELECT %s.nps(score) FROM shop.survey_answers', true),
	('parallel csat_summary', 'SELECT %s.csat_summary(1 + score % 5) FROM shop.survey_answers', true),
	('parallel rfm_summary per customer', 'SELECT count(s.*) FROM (SELECT customer_id, %s.rfm_summary(ordered_at, amount, ''2024-01-01'') FROM shop.orders GROUP BY customer_id) s', true),
	('parallel purchase_cycle per customer', 'SELECT count(s.*) FROM (SELECT customer_id, %s.purchase_cycle(ordered_at) FROM shop.orders GROUP BY customer_id) s', true);
SQL
echo "DELETE FROM stb.query WHERE name !~ :'only';" | q -v only="$STB_ONLY"

# the answers first: both sides must agree on every query (group by queries
# compared group by group)
q <<'SQL'
DO $$
DECLARE
	r record;
	bad int;
BEGIN
	FOR r IN SELECT * FROM stb.query LOOP
		IF r.sql LIKE '%GROUP BY%' THEN
			EXECUTE format('SELECT count(*) FROM ((%1$s EXCEPT ALL %2$s) UNION ALL (%2$s EXCEPT ALL %1$s)) d',
						   regexp_replace(stb.side_sql(r.name, 'new'), '^SELECT count\(s\.\*\) FROM \((.*)\) s$', '\1'),
						   regexp_replace(stb.side_sql(r.name, 'legacy'), '^SELECT count\(s\.\*\) FROM \((.*)\) s$', '\1'))
				INTO bad;
		ELSE
			EXECUTE format('SELECT count(*) FROM (SELECT (%s)::text AS a, (%s)::text AS b) d WHERE a IS DISTINCT FROM b',
						   stb.side_sql(r.name, 'new'), stb.side_sql(r.name, 'legacy'))
				INTO bad;
		END IF;
		IF bad <> 0 THEN
			RAISE EXCEPTION 'query % differs between the state types and internal: % rows', r.name, bad;
		END IF;
	END LOOP;
END
$$;
SQL
echo "results agree" >&2

# a plan check: the parallel queries (those of this run) must be parallel
# on both sides
q -At -c "SELECT stb.side_sql(name, side) FROM stb.query, (VALUES ('new'), ('legacy')) s(side) WHERE parallel" |
	while IFS= read -r sql; do
		plan=$(q -At -c "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; EXPLAIN (COSTS OFF) $sql")
		grep -q 'Partial' <<<"$plan" || { echo "no partial aggregate for $sql:" >&2; echo "$plan" >&2; exit 1; }
	done

# one warm-up, then STB_RUNS rounds of every query on both sides
q -c "SELECT stb.run(name, side) FROM stb.query, (VALUES ('new'), ('legacy')) s(side)" >/dev/null
for run in $(seq 1 "$STB_RUNS"); do
	q -c "INSERT INTO stb.timing SELECT name, side, $run, stb.run(name, side)
		  FROM stb.query, (VALUES ('new'), ('legacy')) s(side) ORDER BY name, CASE WHEN $run % 2 = 0 THEN side END, side DESC"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(q -At <<SQL
SELECT format(E'\n## %s: %s\n\n%s customers, %s orders, %s answers; %s runs, best of each.  Machine: %s, %s CPUs; load average before %s, after %s.  Server: $STB_SETTINGS.  %s\n\n| query | state types (ms) | internal (ms) | ratio | within 10%% |\n|---|---:|---:|---:|---|',
			  to_char(now(), 'YYYY-MM-DD HH24:MI TZ'), version() || CASE WHEN '$STB_ONLY' <> '.' THEN ', only queries matching /$STB_ONLY/' ELSE '' END, '$STB_CUSTOMERS', '$STB_ORDERS', '$STB_ANSWERS', '$STB_RUNS',
			  '$(uname -n) $(uname -m)', '$(nproc)', '$load_before', '$load_after', '$STB_NOTE')
UNION ALL
SELECT * FROM (
	SELECT format('| %s | %s | %s | %s | %s |', name, round(n::numeric, 1), round(l::numeric, 1),
				  round((n / l)::numeric, 3), CASE WHEN n / l <= 1.10 THEN 'PASS' ELSE 'MISS' END)
	FROM (SELECT name, min(ms) FILTER (WHERE side = 'new') AS n, min(ms) FILTER (WHERE side = 'legacy') AS l
		  FROM stb.timing GROUP BY name) t
	ORDER BY name) r;
SQL
)
echo "$report"
echo "$report" >>"$STB_RESULTS"
