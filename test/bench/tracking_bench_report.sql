-- tracking_bench_report.sql: the tables of RESULTS_tracking.md from what
-- run_tracking_bench.sh recorded in schema "bench", in Markdown, with
-- PASS/MISS per target.  Timings use each statement's best run (other
-- processes only ever make a run slower).
--
--   psql -X -q -v small=small -v large=large -f test/bench/tracking_bench_report.sql

\set ON_ERROR_STOP on
\if :{?small}
\else
\set small small
\endif
\if :{?large}
\else
\set large large
\endif
\pset format unaligned
\pset tuples_only on
\pset footer off

CREATE FUNCTION pg_temp.best(label text, name text) RETURNS float8
	LANGUAGE sql STABLE
	RETURN (SELECT min(t.ms) FROM bench.timings AS t WHERE t.label = $1 AND t.name = $2);
CREATE FUNCTION pg_temp.fact(label text, name text) RETURNS numeric
	LANGUAGE sql STABLE
	RETURN (SELECT f.value FROM bench.facts AS f WHERE f.label = $1 AND f.name = $2);
-- PASS or MISS of a measured value against "le x" or "lt x"
CREATE FUNCTION pg_temp.verdict(measured float8, goal text) RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN goal IS NULL THEN ''
				WHEN measured IS NULL THEN 'n/a'
				WHEN split_part(goal, ' ', 1) = 'le' AND measured <= split_part(goal, ' ', 2)::float8 THEN 'PASS'
				WHEN split_part(goal, ' ', 1) = 'lt' AND measured < split_part(goal, ' ', 2)::float8 THEN 'PASS'
				WHEN split_part(goal, ' ', 1) = 'ge' AND measured >= split_part(goal, ' ', 2)::float8 THEN 'PASS'
				ELSE 'MISS' END;

SELECT '| size | tracked side | clients | TPS untracked before | TPS tracked | TPS untracked after | tracked / untracked | goal | result |';
SELECT '|---|---|---:|---:|---:|---:|---:|---:|---|';
WITH runs AS (
	SELECT label, stage, clients,
		   max(tps) FILTER (WHERE seq = 1) AS before,
		   max(tps) FILTER (WHERE seq = 2) AS tracked,
		   max(tps) FILTER (WHERE seq = 3) AS after
	FROM bench.tps GROUP BY label, stage, clients
)
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', label,
			  CASE stage
				  WHEN 'segments' THEN 'right after track_orders: 17 built-in segments evaluated per order, no model yet'
				  WHEN 'models' THEN 'after refresh_models() and refresh_segments(): 17 segments evaluated per order, with predictions'
				  WHEN 'trigger' THEN 'no segments (DELETE FROM post_purchase.segments): the trigger alone'
				  WHEN 'floor' THEN 'info, the floor: no trigger; the order and the trigger''s upsert of the state with its change mark, by plain SQL into copies of the tables (tracking_bench_order.sql, tracked=2)'
			  END,
			  clients, round(before::numeric), round(tracked::numeric), round(after::numeric),
			  round((tracked / ((before + after) / 2))::numeric, 2),
			  CASE WHEN stage = 'floor' THEN '' ELSE '>= 0.70' END,
			  CASE WHEN stage = 'floor' THEN '' ELSE pg_temp.verdict(tracked / ((before + after) / 2), 'ge 0.70') END)
FROM runs
ORDER BY label = :'small' DESC, array_position(ARRAY['segments', 'models', 'trigger', 'floor'], stage), clients;

\echo
SELECT '| target | ' || :'small' || ' | ' || :'large' || ' | goal | result (' || :'small' || ') | result (' || :'large' || ') |';
SELECT '|---|---:|---:|---:|---|---|';
WITH t(ord, target, unit, small, large, goal, pass) AS (VALUES
	(1, 'backfill (track_orders) / INSERT INTO copy SELECT * FROM orders', 'x',
		pg_temp.best(:'small', 'backfill') / pg_temp.best(:'small', 'copy'),
		pg_temp.best(:'large', 'backfill') / pg_temp.best(:'large', 'copy'), '<= 2.00x', 'le 2.00'),
	(2, 'customer_metrics, one customer, planned per query, as a client asks (one pgbench client, -M simple, round trip included): mean ms', '',
		pg_temp.fact(:'small', 'lookup_client_simple_ms'), pg_temp.fact(:'large', 'lookup_client_simple_ms'), '< 1 ms', 'lt 1'),
	(3, 'customer_metrics, all customers / plain scan of customer_state', 'x',
		pg_temp.best(:'small', 'metrics_all') / pg_temp.best(:'small', 'state_all'),
		pg_temp.best(:'large', 'metrics_all') / pg_temp.best(:'large', 'state_all'), '<= 3.00x', 'le 3.00'),
	(4, 'info: the same inside one PL/pgSQL function, an EXECUTE per customer (row 18): median / 99th percentile ms', '',
		NULL, NULL, '', NULL),
	(5, 'info: the same function, PL/pgSQL''s cached plan: mean ms', '',
		pg_temp.fact(:'small', 'lookup_prepared_mean'), pg_temp.fact(:'large', 'lookup_prepared_mean'), '', NULL),
	(6, 'info: one customer changed since its scores were stored (computed), planned per query, the same function: mean ms', '',
		pg_temp.fact(:'small', 'lookup_live_adhoc_mean'), pg_temp.fact(:'large', 'lookup_live_adhoc_mean'), '', NULL),
	(7, 'info: INSERT INTO copy SELECT * FROM orders, ms', '',
		pg_temp.best(:'small', 'copy'), pg_temp.best(:'large', 'copy'), '', NULL),
	(8, 'info: track_orders (backfill), ms', '',
		pg_temp.best(:'small', 'backfill'), pg_temp.best(:'large', 'backfill'), '', NULL),
	(9, 'info: SELECT count(x.*) FROM customer_metrics x, ms', '',
		pg_temp.best(:'small', 'metrics_all'), pg_temp.best(:'large', 'metrics_all'), '', NULL),
	(10, 'info: SELECT count(x.*) FROM customer_state x, ms', '',
		pg_temp.best(:'small', 'state_all'), pg_temp.best(:'large', 'state_all'), '', NULL),
	(11, 'info: refresh_models(), ms', '',
		pg_temp.best(:'small', 'refresh_models'), pg_temp.best(:'large', 'refresh_models'), '', NULL),
	(12, 'info: refresh_segments(), first (fills the 17 segments), ms', '',
		pg_temp.best(:'small', 'refresh_segments'), pg_temp.best(:'large', 'refresh_segments'), '', NULL),
	(13, 'info: refresh_segments() again (no change), ms', '',
		pg_temp.best(:'small', 'refresh_segments_again'), pg_temp.best(:'large', 'refresh_segments_again'), '', NULL),
	(14, 'info, the floor of the backfill: its query alone (the orders grouped by customer, purchase_totals() merging their days, into a table without the primary key) / the copy', 'x',
		pg_temp.best(:'small', 'floor_state_load') / pg_temp.best(:'small', 'copy'),
		pg_temp.best(:'large', 'floor_state_load') / pg_temp.best(:'large', 'copy'), '', NULL),
	(15, 'info: all customers / plain scan of the state''s own columns (without the stored scores)', 'x',
		pg_temp.best(:'small', 'metrics_all') / pg_temp.best(:'small', 'state_unscored_all'),
		pg_temp.best(:'large', 'metrics_all') / pg_temp.best(:'large', 'state_unscored_all'), '', NULL),
	(16, 'info: all customers with no stored score counting (everything computed) / plain scan', 'x',
		pg_temp.best(:'small', 'metrics_unscored_all') / pg_temp.best(:'small', 'state_all'),
		pg_temp.best(:'large', 'metrics_unscored_all') / pg_temp.best(:'large', 'state_all'), '', NULL),
	(17, 'info: store_all_scores() after the refreshes, ms', '',
		pg_temp.best(:'small', 'store_all_scores'), pg_temp.best(:'large', 'store_all_scores'), '', NULL),
	(18, 'info: one customer, planned per query inside one PL/pgSQL function, an EXECUTE per customer: mean ms', '',
		pg_temp.fact(:'small', 'lookup_adhoc_mean'), pg_temp.fact(:'large', 'lookup_adhoc_mean'), '', NULL),
	(19, 'info: one customer from the pgbench client, prepared (-M prepared): mean ms', '',
		pg_temp.fact(:'small', 'lookup_client_prepared_ms'), pg_temp.fact(:'large', 'lookup_client_prepared_ms'), '', NULL))
SELECT format('| %s | %s | %s | %s | %s | %s |', target,
			  CASE WHEN ord = 4 THEN coalesce(round(pg_temp.fact(:'small', 'lookup_adhoc_p50'), 3) || ' / '
											  || round(pg_temp.fact(:'small', 'lookup_adhoc_p99'), 3), 'n/a')
				   ELSE coalesce(round(small::numeric, CASE WHEN unit = 'x' THEN 2 WHEN small < 10 THEN 3 ELSE 0 END)
								 || unit, 'n/a') END,
			  CASE WHEN ord = 4 THEN coalesce(round(pg_temp.fact(:'large', 'lookup_adhoc_p50'), 3) || ' / '
											  || round(pg_temp.fact(:'large', 'lookup_adhoc_p99'), 3), 'n/a')
				   ELSE coalesce(round(large::numeric, CASE WHEN unit = 'x' THEN 2 WHEN large < 10 THEN 3 ELSE 0 END)
								 || unit, 'n/a') END,
			  goal, pg_temp.verdict(small, pass), pg_temp.verdict(large, pass))
FROM t ORDER BY ord;

\echo
SELECT format('Checks at %s size: %s customers, %s purchase days after the backfill; '
			  'verify_state() found %s differences after all pgbench runs; the memberships of %s customers '
			  'changed by orders after the refresh agree with every rule (%s disagreements); models converged: %s; '
			  '%s open memberships after refresh_segments(); %s customers'' stored scores counting when one '
			  'customer was read; no failed transactions.',
			  l.label, pg_temp.fact(l.label, 'customers'), pg_temp.fact(l.label, 'purchase_days'),
			  pg_temp.fact(l.label, 'verify_differences'), pg_temp.fact(l.label, 'lookup_live_adhoc_n'),
			  pg_temp.fact(l.label, 'segment_disagreements'),
			  CASE pg_temp.fact(l.label, 'model_converged') WHEN 1 THEN 'yes' ELSE 'NO' END,
			  pg_temp.fact(l.label, 'open_memberships'), pg_temp.fact(l.label, 'scored_at_lookups'))
FROM (VALUES (1, :'small'), (2, :'large')) AS l(ord, label)
WHERE pg_temp.fact(l.label, 'customers') IS NOT NULL
ORDER BY l.ord;
