-- report.sql: the tables of RESULTS.md from what bench.sql recorded, in
-- Markdown, with PASS/MISS per target.  Ratios use each query's best run
-- (other processes only ever make a run slower); medians are shown too.
--
--   psql -X -q -v small=small -v large=large -f test/bench/report.sql

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

CREATE TEMPORARY VIEW best AS
SELECT q.label, q.name, q.ord, q.input_rows,
	   min(t.ms) AS best,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms) AS median,
	   count(t.ms) AS runs
FROM bench.queries AS q JOIN bench.timings AS t USING (label, name)
GROUP BY q.label, q.name, q.ord, q.input_rows;

-- best time of a query at a size, and a fact at a size
CREATE FUNCTION pg_temp.ms(label text, name text) RETURNS float8
	LANGUAGE sql STABLE RETURN (SELECT best FROM best AS b WHERE b.label = $1 AND b.name = $2);
CREATE FUNCTION pg_temp.fact(label text, name text) RETURNS numeric
	LANGUAGE sql STABLE RETURN (SELECT value FROM bench.facts AS f WHERE f.label = $1 AND f.name = $2);
-- per-row time at the large size over that at the small size
CREATE FUNCTION pg_temp.growth(name text) RETURNS float8
	LANGUAGE sql STABLE RETURN (
		SELECT (l.best / l.input_rows) / (s.best / s.input_rows)
		FROM best AS l JOIN best AS s USING (name)
		WHERE l.label = :'large' AND s.label = :'small' AND name = $1);

SELECT '| query | reads | ' || :'small' || ' best ms | median | ' || :'large' || ' best ms | median | ns per row (' || :'large' || ') | per-row growth |';
SELECT '|---|---:|---:|---:|---:|---:|---:|---:|';
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s |',
			  l.name,
			  CASE WHEN l.name LIKE 'nps%' THEN 'answers' ELSE 'orders' END,
			  coalesce(round(s.best::numeric, 1)::text, 'n/a'), coalesce(round(s.median::numeric, 1)::text, 'n/a'),
			  round(l.best::numeric, 1), round(l.median::numeric, 1),
			  round((1e6 * l.best / l.input_rows)::numeric, 1),
			  coalesce(round(pg_temp.growth(l.name)::numeric, 2) || 'x', 'n/a'))
FROM best AS l LEFT JOIN best AS s ON s.name = l.name AND s.label = :'small'
WHERE l.label = :'large'
ORDER BY l.ord;

\echo
SELECT '| target (' || :'large' || ' size unless said) | measured | goal | result |';
SELECT '|---|---:|---:|---|';
WITH t(ord, target, measured, goal, pass) AS (VALUES
	(1, 'nps / count(score)',
		pg_temp.ms(:'large', 'nps_c') / pg_temp.ms(:'large', 'nps_count_score'), '<= 1.10x', 'le 1.10'),
	(2, 'rfm_summary / GROUP BY count(*)',
		pg_temp.ms(:'large', 'rfm_c') / pg_temp.ms(:'large', 'group_count'), '<= 1.30x', 'le 1.30'),
	(3, 'rfm SQL equivalent / rfm_summary (speed-up)',
		pg_temp.ms(:'large', 'rfm_sql') / pg_temp.ms(:'large', 'rfm_c'), '>= 2.00x', 'ge 2.00'),
	(4, 'nps per-row time, ' || :'large' || ' / ' || :'small',
		pg_temp.growth('nps_c'), '<= 1.25x (linear)', 'le 1.25'),
	(5, 'rfm_summary per-row time, ' || :'large' || ' / ' || :'small',
		pg_temp.growth('rfm_c'), '<= 1.25x (linear)', 'le 1.25'),
	(6, 'info: FILTER formula / count(score)',
		pg_temp.ms(:'large', 'nps_filter_sql') / pg_temp.ms(:'large', 'nps_count_score'), '(issue: 1.25x)', NULL),
	(7, 'info: FILTER formula / nps (speed-up)',
		pg_temp.ms(:'large', 'nps_filter_sql') / pg_temp.ms(:'large', 'nps_c'), '', NULL),
	(8, 'info: rfm_summary / GROUP BY count(amount) (same columns read)',
		pg_temp.ms(:'large', 'rfm_c') / pg_temp.ms(:'large', 'group_count_amount'), '', NULL),
	(9, 'info: purchase_cycle / GROUP BY count(*)',
		pg_temp.ms(:'large', 'cycle_c') / pg_temp.ms(:'large', 'group_count'), '', NULL),
	(10, 'info: GROUP BY count(*) per-row time, ' || :'large' || ' / ' || :'small',
		pg_temp.growth('group_count'), '(the baseline''s own growth)', NULL),
	(10.5, 'info: rfm_summary growth / GROUP BY count(*) growth',
		pg_temp.growth('rfm_c') / pg_temp.growth('group_count'), '(1.00x: grows like the baseline)', NULL),
	(11, 'rfm_summary / GROUP BY count(*) at ' || :'small' || ' size',
		pg_temp.ms(:'small', 'rfm_c') / pg_temp.ms(:'small', 'group_count'), '<= 1.30x', 'le 1.30'),
	(12, 'rfm SQL equivalent / rfm_summary at ' || :'small' || ' size',
		pg_temp.ms(:'small', 'rfm_sql') / pg_temp.ms(:'small', 'rfm_c'), '>= 2.00x', 'ge 2.00'))
SELECT format('| %s | %s | %s | %s |', target,
			  coalesce(round(measured::numeric, 2) || 'x', 'n/a'), goal,
			  CASE WHEN pass IS NULL THEN ''
				   WHEN measured IS NULL THEN 'n/a'
				   WHEN split_part(pass, ' ', 1) = 'le' AND measured <= split_part(pass, ' ', 2)::float8 THEN 'PASS'
				   WHEN split_part(pass, ' ', 1) = 'ge' AND measured >= split_part(pass, ' ', 2)::float8 THEN 'PASS'
				   ELSE 'MISS' END)
FROM t ORDER BY ord;

\echo
SELECT '| hash aggregate (' || :'large' || ') | groups | peak memory | bytes per group | more than count(*) | batches |';
SELECT '|---|---:|---:|---:|---:|---:|';
SELECT format('| %s | %s | %s MB | %s | %s | %s |', a.what, g.value,
			  round(m.value / 1024, 1), round(m.value * 1024 / g.value),
			  round((m.value - pg_temp.fact(:'large', 'group_count_hash_peak_kb')) * 1024 / g.value),
			  b.value)
FROM (VALUES (1, 'group_count', 'GROUP BY count(*)'), (2, 'rfm_c', 'rfm_summary'),
			 (3, 'cycle_c', 'purchase_cycle')) AS a(ord, name, what)
	 JOIN bench.facts AS g ON g.label = :'large' AND g.name = a.name || '_groups'
	 JOIN bench.facts AS m ON m.label = :'large' AND m.name = a.name || '_hash_peak_kb'
	 JOIN bench.facts AS b ON b.label = :'large' AND b.name = a.name || '_hash_batches'
ORDER BY a.ord;

\echo
SELECT format('Checks: rfm_summary equals its SQL equivalent for all %s customers (%s with repeat purchases) at %s size, %s at %s size; nps equals the FILTER formula at both sizes.',
			  pg_temp.fact(:'large', 'rfm_customers'), pg_temp.fact(:'large', 'rfm_repeat_customers'), :'large',
			  coalesce(pg_temp.fact(:'small', 'rfm_customers')::text, 'n/a'), :'small')
WHERE pg_temp.fact(:'large', 'rfm_mismatch') = 0 AND pg_temp.fact(:'large', 'nps_mismatch') = 0
  AND coalesce(pg_temp.fact(:'small', 'rfm_mismatch'), 0) = 0
  AND coalesce(pg_temp.fact(:'small', 'nps_mismatch'), 0) = 0;
