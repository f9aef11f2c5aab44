-- The extension's catalog contract (ARCHITECTURE.md, "Public SQL interface"):
-- names, signatures, return types, parallel labels, volatility, privileges.
-- Behaviour is tested in metrics.sql; this file only reads the catalogs, and
-- runs each metric once as an unprivileged role.
BEGIN;
SELECT plan(73);

-- the objects the extension owns, by pg_depend, so nothing is missed
CREATE TEMP VIEW ext_proc AS
	SELECT p.*
	FROM pg_proc p
	JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
	WHERE e.extname = 'post_purchase' AND d.deptype = 'e';

-- schema and extension
SELECT has_schema('post_purchase', 'schema post_purchase exists');
SELECT has_extension('post_purchase', 'post_purchase', 'extension post_purchase lives in schema post_purchase');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'post_purchase'), false,
	'extension is not relocatable');
SELECT throws_ok('ALTER EXTENSION post_purchase SET SCHEMA public', '0A000', NULL,
	'ALTER EXTENSION ... SET SCHEMA is refused');
SELECT is((SELECT count(*)::int FROM ext_proc WHERE pronamespace <> 'post_purchase'::regnamespace), 0,
	'every function of the extension is in schema post_purchase');

-- nps(score int) -> numeric
SELECT has_function('post_purchase', 'nps', ARRAY['integer'], 'nps(integer) exists');
SELECT is_aggregate('post_purchase', 'nps', ARRAY['integer'], 'nps(integer) is an aggregate');
SELECT function_returns('post_purchase', 'nps', ARRAY['integer'], 'numeric', 'nps(integer) returns numeric');

-- nps_summary(score int) -> nps_result
SELECT has_function('post_purchase', 'nps_summary', ARRAY['integer'], 'nps_summary(integer) exists');
SELECT is_aggregate('post_purchase', 'nps_summary', ARRAY['integer'], 'nps_summary(integer) is an aggregate');
SELECT function_returns('post_purchase', 'nps_summary', ARRAY['integer'], 'post_purchase.nps_result',
	'nps_summary(integer) returns post_purchase.nps_result');

-- rfm_summary(ordered_at, amount, observed_until [, unit]) -> rfm_result
SELECT has_function('post_purchase', 'rfm_summary',
	ARRAY['timestamp with time zone', 'numeric', 'timestamp with time zone'],
	'rfm_summary(timestamptz, numeric, timestamptz) exists');
SELECT is_aggregate('post_purchase', 'rfm_summary',
	ARRAY['timestamp with time zone', 'numeric', 'timestamp with time zone'],
	'rfm_summary(timestamptz, numeric, timestamptz) is an aggregate');
SELECT function_returns('post_purchase', 'rfm_summary',
	ARRAY['timestamp with time zone', 'numeric', 'timestamp with time zone'], 'post_purchase.rfm_result',
	'rfm_summary(timestamptz, numeric, timestamptz) returns post_purchase.rfm_result');
SELECT has_function('post_purchase', 'rfm_summary',
	ARRAY['timestamp with time zone', 'numeric', 'timestamp with time zone', 'interval'],
	'rfm_summary(timestamptz, numeric, timestamptz, interval) exists');
SELECT is_aggregate('post_purchase', 'rfm_summary',
	ARRAY['timestamp with time zone', 'numeric', 'timestamp with time zone', 'interval'],
	'rfm_summary(timestamptz, numeric, timestamptz, interval) is an aggregate');
SELECT function_returns('post_purchase', 'rfm_summary',
	ARRAY['timestamp with time zone', 'numeric', 'timestamp with time zone', 'interval'], 'post_purchase.rfm_result',
	'rfm_summary(timestamptz, numeric, timestamptz, interval) returns post_purchase.rfm_result');

-- purchase_cycle(ordered_at) -> purchase_cycle_result
SELECT has_function('post_purchase', 'purchase_cycle', ARRAY['timestamp with time zone'],
	'purchase_cycle(timestamptz) exists');
SELECT is_aggregate('post_purchase', 'purchase_cycle', ARRAY['timestamp with time zone'],
	'purchase_cycle(timestamptz) is an aggregate');
SELECT function_returns('post_purchase', 'purchase_cycle', ARRAY['timestamp with time zone'],
	'post_purchase.purchase_cycle_result', 'purchase_cycle(timestamptz) returns post_purchase.purchase_cycle_result');

-- replenishment_due(last_purchase, quantity, days_per_unit) -> timestamptz: pure
SELECT has_function('post_purchase', 'replenishment_due',
	ARRAY['timestamp with time zone', 'numeric', 'numeric'], 'replenishment_due(timestamptz, numeric, numeric) exists');
SELECT is_normal_function('post_purchase', 'replenishment_due',
	ARRAY['timestamp with time zone', 'numeric', 'numeric'], 'replenishment_due is a plain function');
SELECT function_returns('post_purchase', 'replenishment_due',
	ARRAY['timestamp with time zone', 'numeric', 'numeric'], 'timestamp with time zone',
	'replenishment_due returns timestamptz');
SELECT volatility_is('post_purchase', 'replenishment_due',
	ARRAY['timestamp with time zone', 'numeric', 'numeric'], 'immutable', 'replenishment_due is IMMUTABLE');
SELECT is_strict('post_purchase', 'replenishment_due',
	ARRAY['timestamp with time zone', 'numeric', 'numeric'], 'replenishment_due is STRICT');

-- rfm_segment(r_score, f_score) -> text: pure
SELECT has_function('post_purchase', 'rfm_segment', ARRAY['integer', 'integer'], 'rfm_segment(integer, integer) exists');
SELECT is_normal_function('post_purchase', 'rfm_segment', ARRAY['integer', 'integer'], 'rfm_segment is a plain function');
SELECT function_returns('post_purchase', 'rfm_segment', ARRAY['integer', 'integer'], 'text', 'rfm_segment returns text');
SELECT volatility_is('post_purchase', 'rfm_segment', ARRAY['integer', 'integer'], 'immutable', 'rfm_segment is IMMUTABLE');
SELECT is_strict('post_purchase', 'rfm_segment', ARRAY['integer', 'integer'], 'rfm_segment is STRICT');

-- argument names are part of the contract (named notation in user SQL)
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'post_purchase.rfm_segment(integer, integer)'::regprocedure),
	ARRAY['r_score', 'f_score'], 'rfm_segment argument names');
SELECT is((SELECT proargnames FROM pg_proc
		   WHERE oid = 'post_purchase.replenishment_due(timestamptz, numeric, numeric)'::regprocedure),
	ARRAY['last_purchase', 'quantity', 'days_per_unit'], 'replenishment_due argument names');

-- the result types' columns, in order
CREATE TEMP VIEW result_column AS
	SELECT attrelid::regclass::text AS type_name,
		   array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) AS columns
	FROM pg_attribute
	WHERE attrelid IN ('post_purchase.nps_result'::regclass, 'post_purchase.rfm_result'::regclass,
					   'post_purchase.purchase_cycle_result'::regclass, 'post_purchase.purchase_totals'::regclass)
		AND attnum > 0 AND NOT attisdropped
	GROUP BY attrelid;
SELECT is((SELECT columns FROM result_column WHERE type_name = 'post_purchase.nps_result'),
	ARRAY['responses bigint', 'promoters bigint', 'passives bigint', 'detractors bigint',
		  'nps numeric', 'margin_of_error numeric'],
	'nps_result columns');
SELECT is((SELECT columns FROM result_column WHERE type_name = 'post_purchase.rfm_result'),
	ARRAY['frequency bigint', 'recency double precision', 't double precision', 'monetary_value numeric'],
	'rfm_result columns');
SELECT is((SELECT columns FROM result_column WHERE type_name = 'post_purchase.purchase_totals'),
	ARRAY['purchase_days bigint', 'first_day date', 'last_day date', 'revenue numeric', 'first_day_revenue numeric'],
	'purchase_totals columns');
SELECT is((SELECT columns FROM result_column WHERE type_name = 'post_purchase.purchase_cycle_result'),
	ARRAY['purchases bigint', 'median_interval interval', 'mean_interval interval',
		  'last_purchase timestamp with time zone', 'next_due timestamp with time zone'],
	'purchase_cycle_result columns');

-- Aggregates: every one PARALLEL SAFE with a combine function; those with an
-- internal state also serialize and deserialize (or no parallel plan works).
SELECT set_eq(
	$$SELECT oid::regprocedure::text FROM ext_proc WHERE prokind = 'a'$$,
	ARRAY['post_purchase.nps(integer)', 'post_purchase.nps_summary(integer)',
		  'post_purchase.rfm_summary(timestamp with time zone,numeric,timestamp with time zone)',
		  'post_purchase.rfm_summary(timestamp with time zone,numeric,timestamp with time zone,interval)',
		  'post_purchase.rfm_summary(timestamp with time zone,numeric,timestamp with time zone,interval,text)',
		  'post_purchase.purchase_cycle(timestamp with time zone)',
		  'post_purchase.purchase_cycle(timestamp with time zone,text)',
		  'post_purchase.purchase_totals(timestamp with time zone,numeric,text)',
		  'post_purchase.bgnbd_fit(double precision,double precision,double precision)',
		  'post_purchase.bgnbd_fit(double precision,double precision,double precision,double precision)',
		  'post_purchase.gamma_gamma_fit(double precision,double precision)',
		  'post_purchase.gamma_gamma_fit(double precision,double precision,double precision)',
		  -- the survey metrics (survey_catalog.sql)
		  'post_purchase.csat(integer)', 'post_purchase.csat(integer,integer)',
		  'post_purchase.csat_summary(integer)', 'post_purchase.csat_summary(integer,integer)',
		  'post_purchase.ces_summary(integer)', 'post_purchase.ces_summary(integer,integer)'],
	'the extension''s aggregates are the documented ones');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p WHERE p.prokind = 'a' AND p.proparallel <> 's'$$,
	'every aggregate is PARALLEL SAFE');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
	  WHERE a.aggcombinefn = 0$$,
	'every aggregate has a combine function');
-- Issue 22: Citus splits an aggregate into a partial per shard and a combine
-- only if its state type is not a pseudo-type ("internal" is one), and it
-- ships the partial as text through the type's output and input functions
-- (src/state_type.h).  Such a state needs no serialize functions: it
-- crosses processes and nodes as a value of its type.
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
	  JOIN pg_type t ON t.oid = a.aggtranstype
	  WHERE t.typtype = 'p'$$,
	'no aggregate has a pseudo-type (such as internal) as its state type');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
	  JOIN pg_type t ON t.oid = a.aggtranstype
	  WHERE t.typnamespace <> 'post_purchase'::regnamespace OR t.typtype <> 'b'
		 OR t.typinput = 0 OR t.typoutput = 0 OR t.typreceive = 0 OR t.typsend = 0
		 OR a.aggserialfn <> 0 OR a.aggdeserialfn <> 0$$,
	'every state type is a base type of the extension with text and binary I/O, and no aggregate needs serialize functions');
SELECT set_eq(
	$$SELECT DISTINCT a.aggtranstype::regtype::text FROM ext_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid$$,
	ARRAY['post_purchase.nps_state', 'post_purchase.survey_state', 'post_purchase.rfm_summary_state',
		  'post_purchase.purchase_cycle_state', 'post_purchase.model_fit_state'],
	'the aggregates'' state types');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
	  JOIN pg_proc s ON s.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn)
	  WHERE s.proparallel <> 's'$$,
	'every aggregate support function is PARALLEL SAFE');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
	  WHERE a.aggkind <> 'n' OR a.aggfinalmodify <> 'r'$$,
	'aggregates are plain (not ordered-set) and their final functions leave the state read-only');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc WHERE proparallel <> 's' AND provolatile = 'i'$$,
	'every IMMUTABLE function is PARALLEL SAFE');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc WHERE proparallel <> 's'
	  AND proname IN ('nps', 'nps_summary', 'rfm_summary', 'purchase_cycle', 'replenishment_due', 'rfm_segment',
					  'rfm_score', 'bgnbd_fit', 'bgnbd_p_alive', 'bgnbd_expected_purchases',
					  'bgnbd_probability_of_purchases', 'gamma_gamma_fit', 'gamma_gamma_expected_value', 'clv',
					  'bgnbd_simulate', 'in_segment', 'segment_members', 'setting', 'shop_today')$$,
	'every metric and read-only helper is PARALLEL SAFE');
SELECT set_eq(
	$$SELECT proname::text FROM ext_proc WHERE prosecdef$$,
	ARRAY['track_orders_trigger', 'track_orders_truncate', 'track_items_trigger', 'track_items_truncate',
		  'rebuild_order_items', 'outbox_claim', 'outbox_ack', 'outbox_fail', 'record_event', 'delete_step_outcomes',
		  'track_answers_trigger', 'track_answers_truncate'],
	'only the order, item and answer triggers (and what they call), the sender''s four functions and the outcomes'' cascade are SECURITY DEFINER');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc
	  WHERE prosecdef AND (has_function_privilege('public', oid, 'EXECUTE')
						   OR NOT coalesce(proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp'])$$,
	'SECURITY DEFINER functions are not executable by PUBLIC and lock search_path');
-- A procedure that commits cannot carry a SET clause (PostgreSQL refuses
-- transaction control under one), so store_all_scores(), the one that does,
-- qualifies every name instead and is the only exception.
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM ext_proc p JOIN pg_language l ON l.oid = p.prolang
	  WHERE l.lanname = 'plpgsql' AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']
		AND p.oid <> 'post_purchase.store_all_scores(integer)'::regprocedure$$,
	'every PL/pgSQL function but the committing procedure locks search_path');
SELECT cmp_ok((SELECT count(*)::int FROM ext_proc), '>=', 24,
	'the extension''s functions were found (the checks above are not vacuous)');

-- The internal functions of issue 19: refresh_segment() and its working
-- table (create_segment, set_segment_rule and refresh_segments use them),
-- and the workers check of enable_journey(); volatile, and not PUBLIC's.
SELECT is(ARRAY(SELECT to_regprocedure(f)::text FROM unnest(ARRAY[
			'post_purchase.prepare_segment_metrics(regrole[])',
			'post_purchase.refresh_segment(post_purchase.segments)',
			'post_purchase.check_workers_serve(name, boolean, text, boolean)']) f),
	ARRAY['post_purchase.prepare_segment_metrics(regrole[])',
		  'post_purchase.refresh_segment(post_purchase.segments)',
		  'post_purchase.check_workers_serve(name,boolean,text,boolean)'],
	'refresh_segment, prepare_segment_metrics and check_workers_serve exist with these signatures');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc
	  WHERE proname IN ('prepare_segment_metrics', 'refresh_segment', 'check_workers_serve')
		AND (provolatile <> 'v' OR has_function_privilege('public', oid, 'EXECUTE'))$$,
	'they are VOLATILE and not executable by PUBLIC');

-- Progress of long calls (issue 21, src/progress.c): the reporting
-- functions the extension's own calls use, VOLATILE and not PUBLIC's; the
-- view and its function readable as worker_status is (pg_read_all_stats).
SELECT is(ARRAY(SELECT to_regprocedure(f)::text FROM unnest(ARRAY[
			'post_purchase.progress_start(text, bigint, text)', 'post_purchase.progress_phase(text)',
			'post_purchase.progress_count(bigint, text)', 'post_purchase.progress_advance(bigint, text, text)',
			'post_purchase.progress_finish()', 'post_purchase.progress_estimated_rows(regclass)',
			'post_purchase.progress()']) f),
	ARRAY['post_purchase.progress_start(text,bigint,text)', 'post_purchase.progress_phase(text)',
		  'post_purchase.progress_count(bigint,text)', 'post_purchase.progress_advance(bigint,text,text)',
		  'post_purchase.progress_finish()', 'post_purchase.progress_estimated_rows(regclass)',
		  'post_purchase.progress()'],
	'the progress functions exist with these signatures');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc
	  WHERE proname IN ('progress_start', 'progress_phase', 'progress_count', 'progress_advance', 'progress_finish')
		AND (provolatile <> 'v' OR proparallel <> 'u' OR has_function_privilege('public', oid, 'EXECUTE'))$$,
	'the progress reporting functions are VOLATILE, PARALLEL UNSAFE and not executable by PUBLIC');
SELECT ok(NOT has_function_privilege('public', 'post_purchase.progress()', 'EXECUTE')
		  AND has_function_privilege('pg_read_all_stats', 'post_purchase.progress()', 'EXECUTE')
		  AND NOT has_function_privilege('public', 'post_purchase.progress_estimated_rows(regclass)', 'EXECUTE'),
	'progress() is for pg_read_all_stats, not PUBLIC; progress_estimated_rows() is internal');
SELECT ok(NOT has_table_privilege('public', 'post_purchase.progress', 'SELECT')
		  AND has_table_privilege('pg_read_all_stats', 'post_purchase.progress', 'SELECT'),
	'the progress view is readable by pg_read_all_stats (pg_monitor), not by PUBLIC');
-- Issue 22: the check that track_orders() and track_order_items() refuse a
-- table Citus manages (test/citus/run_citus_check.sh proves it on Citus).
SELECT is_empty(
	$$SELECT f FROM unnest(ARRAY['post_purchase.check_not_distributed(regclass, text)']) f
	  WHERE to_regprocedure(f) IS NULL
		 OR (SELECT provolatile <> 's' OR has_function_privilege('public', oid, 'EXECUTE')
			 FROM pg_proc WHERE oid = to_regprocedure(f))$$,
	'check_not_distributed(regclass, text) exists, is STABLE and not executable by PUBLIC');
-- The survey answers of issue 20 (src/answers.sql): their signatures, and
-- none of them is PUBLIC's or anything but VOLATILE.
SELECT is(ARRAY(SELECT to_regprocedure(f)::text FROM unnest(ARRAY[
			'post_purchase.track_survey_answers(regclass, name, name, name, name, name, integer)',
			'post_purchase.untrack_survey_answers(regclass)',
			'post_purchase.refresh_survey_answers()',
			'post_purchase.forget_survey_answers()',
			'post_purchase.track_answers_trigger()',
			'post_purchase.track_answers_truncate()']) f),
	ARRAY['post_purchase.track_survey_answers(regclass,name,name,name,name,name,integer)',
		  'post_purchase.untrack_survey_answers(regclass)',
		  'post_purchase.refresh_survey_answers()',
		  'post_purchase.forget_survey_answers()',
		  'post_purchase.track_answers_trigger()',
		  'post_purchase.track_answers_truncate()'],
	'the survey answers functions exist with these signatures');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc
	  WHERE proname IN ('track_survey_answers', 'untrack_survey_answers', 'refresh_survey_answers',
						'forget_survey_answers', 'track_answers_trigger', 'track_answers_truncate')
		AND (provolatile <> 'v' OR has_function_privilege('public', oid, 'EXECUTE'))$$,
	'they are VOLATILE and not executable by PUBLIC');
-- Complementary products (issue 20): the refresh and the recommendations
-- read and write customers' purchases, so none is PUBLIC's; the refresh is
-- VOLATILE, the readers STABLE (a payload renders within one snapshot).
SELECT is(ARRAY(SELECT to_regprocedure(f)::text FROM unnest(ARRAY[
			'post_purchase.refresh_product_affinity(interval, double precision, double precision)',
			'post_purchase.recommend_products(text, integer)',
			'post_purchase.recommendations_json(text, integer)']) f),
	ARRAY['post_purchase.refresh_product_affinity(interval,double precision,double precision)',
		  'post_purchase.recommend_products(text,integer)',
		  'post_purchase.recommendations_json(text,integer)'],
	'refresh_product_affinity, recommend_products and recommendations_json exist with these signatures');
SELECT is_empty(
	$$SELECT oid::regprocedure FROM ext_proc
	  WHERE proname IN ('refresh_product_affinity', 'recommend_products', 'recommendations_json',
						'affinity_setting', 'affinity_parameters', 'affinity_pairs')
		AND (has_function_privilege('public', oid, 'EXECUTE')
			 OR provolatile <> CASE WHEN proname = 'refresh_product_affinity' THEN 'v' ELSE 's' END)$$,
	'they are not executable by PUBLIC; the refresh is VOLATILE, the rest STABLE');
SELECT ok(NOT has_table_privilege('public', 'post_purchase.product_affinity', 'SELECT')
		  AND NOT has_table_privilege('public', 'post_purchase.product_affinity', 'INSERT,UPDATE,DELETE,TRUNCATE'),
	'product_affinity grants nothing to PUBLIC (readers are granted SELECT by the DBA)');

-- Every metric is callable by a role with no privileges of its own.  pgTAP's
-- bookkeeping tables belong to the test's superuser, so the role records what
-- each call raised in a table of its own, checked after RESET ROLE.
CREATE ROLE post_purchase_pgtap_nobody NOLOGIN NOSUPERUSER NOINHERIT;
SELECT ok(NOT has_schema_privilege('post_purchase_pgtap_nobody', 'post_purchase', 'CREATE'),
	'an unprivileged role cannot create objects in schema post_purchase');
SELECT ok(has_schema_privilege('post_purchase_pgtap_nobody', 'post_purchase', 'USAGE'),
	'an unprivileged role may use schema post_purchase');

CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE query;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TEMP TABLE unprivileged_call (metric text PRIMARY KEY, query text NOT NULL, error text);
INSERT INTO unprivileged_call (metric, query) VALUES
	('nps', $$SELECT post_purchase.nps(s) FROM (VALUES (10), (3)) v(s)$$),
	('nps_summary', $$SELECT post_purchase.nps_summary(s) FROM (VALUES (10), (3)) v(s)$$),
	('rfm_summary', $$SELECT post_purchase.rfm_summary(t, 1, '2024-02-01') FROM (VALUES ('2024-01-01'::timestamptz)) v(t)$$),
	('rfm_summary unit', $$SELECT post_purchase.rfm_summary(t, 1, '2024-02-01', '7 days') FROM (VALUES ('2024-01-01'::timestamptz)) v(t)$$),
	('purchase_cycle', $$SELECT post_purchase.purchase_cycle(t) FROM (VALUES ('2024-01-01'::timestamptz), ('2024-01-08')) v(t)$$),
	('replenishment_due', $$SELECT post_purchase.replenishment_due('2024-01-01', 2, 15)$$),
	('rfm_segment', $$SELECT post_purchase.rfm_segment(5, 5)$$),
	('result types', $$SELECT NULL::post_purchase.nps_result, NULL::post_purchase.rfm_result, NULL::post_purchase.purchase_cycle_result$$);
GRANT SELECT, UPDATE ON unprivileged_call TO post_purchase_pgtap_nobody;

SET LOCAL ROLE post_purchase_pgtap_nobody;
UPDATE unprivileged_call SET error = pg_temp.sqlstate_of(query);
RESET ROLE;

SELECT is((SELECT error FROM unprivileged_call WHERE metric = m), NULL, 'an unprivileged role can call ' || m)
FROM unnest(ARRAY['nps', 'nps_summary', 'rfm_summary', 'rfm_summary unit', 'purchase_cycle',
				  'replenishment_due', 'rfm_segment', 'result types']) AS m;

-- the check above would pass if nothing had run as that role
SET LOCAL ROLE post_purchase_pgtap_nobody;
UPDATE unprivileged_call SET error = pg_temp.sqlstate_of('CREATE FUNCTION post_purchase.planted() RETURNS int LANGUAGE sql AS ''SELECT 1''')
WHERE metric = 'nps';
RESET ROLE;
SELECT matches((SELECT error FROM unprivileged_call WHERE metric = 'nps'), '^42501',
	'the same role is refused CREATE in schema post_purchase (the calls above really ran as it)');

SELECT * FROM finish();
ROLLBACK;
