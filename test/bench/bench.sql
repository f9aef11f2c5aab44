-- bench.sql: time the aggregates against their references on the shop that
-- generate_shop.sql made, check that they agree, and keep the numbers in
-- schema "bench" under a label (report.sql reads them).
--
--   psql -v label=large -v runs=5 -f test/bench/bench.sql
--
-- Timing: each query runs inside a plpgsql function between two
-- clock_timestamp() calls, so no row reaches the client and psql adds
-- nothing.  Every GROUP BY query is wrapped alike, as
-- SELECT count(s.*) FROM (...) s: the whole-row reference makes every
-- output column be computed (a plain count(*) would let the planner drop the
-- unused aggregate altogether).  After one warm-up run of every query, the
-- queries run round-robin "runs" times, so that a burst of load from other
-- processes hits all of them alike; report.sql uses the best run.

\set ON_ERROR_STOP on
\if :{?label}
\else
\set label default
\endif
\if :{?runs}
\else
\set runs 5
\endif
\if :{?observed_until}
\else
\set observed_until '2024-01-01 00:00:00+00'
\endif

SET client_min_messages = warning;
-- serial plans, so that ratios compare the work of one process
SET max_parallel_workers_per_gather = 0;
SET jit = off;
-- the calendar days of the C code and of the SQL are those of this zone
SET TimeZone = 'UTC';

CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.queries (
	label text NOT NULL,
	name text NOT NULL,
	ord integer NOT NULL,
	input_rows bigint NOT NULL,			-- rows the query reads, for linearity
	sql text NOT NULL,
	PRIMARY KEY (label, name)
);
CREATE TABLE IF NOT EXISTS bench.timings (
	label text NOT NULL,
	name text NOT NULL,
	run integer NOT NULL,
	ms float8 NOT NULL
);
CREATE TABLE IF NOT EXISTS bench.facts (
	label text NOT NULL,
	name text NOT NULL,
	value numeric,
	PRIMARY KEY (label, name)
);
DELETE FROM bench.queries WHERE label = :'label';
DELETE FROM bench.timings WHERE label = :'label';
DELETE FROM bench.facts WHERE label = :'label';

-- Milliseconds one query takes, its single result row discarded.
CREATE OR REPLACE FUNCTION bench.elapsed_ms(query text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
	started timestamptz;
	result text;
BEGIN
	started := clock_timestamp();
	EXECUTE query INTO result;
	RETURN 1000 * extract(epoch FROM clock_timestamp() - started);
END
$$;

-- The first hash aggregate of a query's EXPLAIN ANALYZE: its memory and groups.
CREATE OR REPLACE FUNCTION bench.hash_agg(query text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ' || query INTO plan;
	RETURN jsonb_path_query_first(plan::jsonb,
								  'lax $.** ? (@."Node Type" == "Aggregate" && @."Strategy" == "Hashed")');
END
$$;

-- The per-customer queries, unwrapped; :'observed_until' is the fixed end.
SELECT format($q$
	SELECT customer_id, post_purchase.rfm_summary(ordered_at, amount, %1$L::timestamptz) AS r
	FROM shop.orders
	GROUP BY customer_id$q$, :'observed_until') AS rfm_c,
	   -- The SQL an analyst would write for the same numbers: one row per
	   -- customer and calendar day first (same-day orders are one purchase),
	   -- then per customer.  The first day's spend is taken with
	   -- array_agg(... ORDER BY day), the fastest of the plain formulations
	   -- tried (README.md).
	   format($q$
	SELECT customer_id,
		   count(*) - 1 AS frequency,
		   (max(day) - min(day))::float8 AS recency,
		   (%1$L::timestamptz::date - min(day))::float8 AS t,
		   CASE WHEN count(*) > 1
				THEN (sum(spend) - (array_agg(spend ORDER BY day))[1]) / (count(*) - 1)
				ELSE 0 END AS monetary_value
	FROM (SELECT customer_id, ordered_at::date AS day, sum(amount) AS spend
		  FROM shop.orders
		  WHERE ordered_at <= %1$L::timestamptz
		  GROUP BY customer_id, ordered_at::date) AS days
	GROUP BY customer_id$q$, :'observed_until') AS rfm_sql,
	   $q$
	SELECT customer_id, count(*) AS n
	FROM shop.orders
	GROUP BY customer_id$q$ AS group_count,
	   $q$
	SELECT customer_id, count(amount) AS n
	FROM shop.orders
	GROUP BY customer_id$q$ AS group_count_amount,
	   $q$
	SELECT customer_id, post_purchase.purchase_cycle(ordered_at) AS c
	FROM shop.orders
	GROUP BY customer_id$q$ AS cycle_c
\gset

INSERT INTO bench.queries (label, name, ord, input_rows, sql)
SELECT :'label', name, ord, input_rows, sql
FROM (SELECT count(*) FROM shop.survey_answers) AS a(answers),
	 (SELECT count(*) FROM shop.orders) AS o(orders),
	 LATERAL (VALUES
		('nps_count_score', 1, answers,
		 'SELECT count(score) FROM shop.survey_answers'),
		('nps_c', 2, answers,
		 'SELECT post_purchase.nps(score) FROM shop.survey_answers'),
		('nps_filter_sql', 3, answers,
		 'SELECT 100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6)) / count(*) FROM shop.survey_answers'),
		('group_count', 4, orders, 'SELECT count(s.*) FROM (' || :'group_count' || ') AS s'),
		('group_count_amount', 5, orders, 'SELECT count(s.*) FROM (' || :'group_count_amount' || ') AS s'),
		('rfm_c', 6, orders, 'SELECT count(s.*) FROM (' || :'rfm_c' || ') AS s'),
		('rfm_sql', 7, orders, 'SELECT count(s.*) FROM (' || :'rfm_sql' || ') AS s'),
		('cycle_c', 8, orders, 'SELECT count(s.*) FROM (' || :'cycle_c' || ') AS s')
	 ) AS q(name, ord, input_rows, sql);

-- Correctness first: a fast wrong answer is no result.  NPS of the C
-- aggregate against the FILTER formula, compared as numbers.
INSERT INTO bench.facts (label, name, value)
SELECT :'label', 'nps_mismatch', (c IS DISTINCT FROM f)::integer
FROM (SELECT post_purchase.nps(score),
			 100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6)) / count(*)
	  FROM shop.survey_answers) AS n(c, f);

-- rfm_summary against the SQL, every customer and every field.
CREATE TEMPORARY TABLE rfm_check AS
SELECT count(*) AS customers,
	   count(*) FILTER (WHERE c.customer_id IS NULL OR s.customer_id IS NULL
						OR (c.frequency, c.recency, c.t, c.monetary_value)
						   IS DISTINCT FROM (s.frequency, s.recency, s.t, s.monetary_value)) AS mismatches,
	   count(*) FILTER (WHERE c.frequency > 0) AS repeat_customers,
	   sum(c.frequency) AS repeat_days
FROM (SELECT customer_id, (r).frequency, (r).recency, (r).t, (r).monetary_value
	  FROM (:rfm_c) AS x) AS c
	 FULL JOIN (:rfm_sql) AS s USING (customer_id);

INSERT INTO bench.facts (label, name, value)
SELECT :'label', name, value
FROM rfm_check,
	 LATERAL (VALUES ('rfm_customers', customers), ('rfm_mismatch', mismatches),
					 ('rfm_repeat_customers', repeat_customers),
					 ('rfm_repeat_days', repeat_days)) AS v(name, value);

SELECT mismatches = 0 AND customers > 0 AS rfm_ok, customers, mismatches, repeat_customers
FROM rfm_check \gset
\if :rfm_ok
\else
\echo 'FAIL: rfm_summary differs from its SQL equivalent for' :mismatches 'of' :customers 'customers'
\quit 3
\endif
SELECT n.value = 0 AS nps_ok FROM bench.facts AS n WHERE label = :'label' AND name = 'nps_mismatch' \gset
\if :nps_ok
\else
\echo 'FAIL: nps differs from the FILTER formula'
\quit 3
\endif

-- Memory per group: the hash aggregates' peak memory over their groups.
INSERT INTO bench.facts (label, name, value)
SELECT :'label', q.name || '_' || v.name, v.value
FROM (VALUES ('group_count', :'group_count'), ('rfm_c', :'rfm_c'), ('cycle_c', :'cycle_c')) AS q(name, sql),
	 LATERAL bench.hash_agg(q.sql) AS h,
	 LATERAL (VALUES ('hash_peak_kb', (h->>'Peak Memory Usage')::numeric),
					 ('hash_batches', (h->>'HashAgg Batches')::numeric),
					 ('hash_disk_kb', (h->>'Disk Usage')::numeric),
					 ('groups', (h->>'Actual Rows')::numeric)) AS v(name, value);

-- Timings: one warm-up of each query, then "runs" rounds, each committed.
SET bench.label = :'label';
SET bench.runs = :runs;
SET client_min_messages = notice;
DO $$
DECLARE
	q record;
BEGIN
	FOR round IN 0 .. current_setting('bench.runs')::integer LOOP
		FOR q IN SELECT * FROM bench.queries WHERE label = current_setting('bench.label') ORDER BY ord LOOP
			IF round = 0 THEN
				PERFORM bench.elapsed_ms(q.sql);
			ELSE
				INSERT INTO bench.timings (label, name, run, ms)
				VALUES (q.label, q.name, round, bench.elapsed_ms(q.sql));
			END IF;
		END LOOP;
		RAISE NOTICE '% round % of % done', current_setting('bench.label'), round,
			current_setting('bench.runs');
		COMMIT;
	END LOOP;
END
$$;
