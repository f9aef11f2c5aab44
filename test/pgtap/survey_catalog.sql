-- The catalog contract of the survey metrics (src/survey.sql): csat,
-- csat_summary and ces_summary with and without a scale, their result types,
-- parallel labels, volatility, and that an unprivileged role may call them.
-- catalog.sql lists them among the extension's aggregates; behaviour is in
-- sql/survey.sql and test/t/008_survey_reference.pl.
BEGIN;
SELECT plan(41);

-- each aggregate in its two forms: (score) with the usual scale, (score, scale)
SELECT has_function('post_purchase', f, a, f || '(' || array_to_string(a, ', ') || ') exists')
FROM (VALUES ('csat'), ('csat_summary'), ('ces_summary')) v(f),
	 (VALUES (ARRAY['integer']), (ARRAY['integer', 'integer'])) w(a)
ORDER BY f, cardinality(a);
SELECT is_aggregate('post_purchase', f, a, f || '(' || array_to_string(a, ', ') || ') is an aggregate')
FROM (VALUES ('csat'), ('csat_summary'), ('ces_summary')) v(f),
	 (VALUES (ARRAY['integer']), (ARRAY['integer', 'integer'])) w(a)
ORDER BY f, cardinality(a);
SELECT function_returns('post_purchase', f, a, r, f || '(' || array_to_string(a, ', ') || ') returns ' || r)
FROM (VALUES ('csat', 'numeric'), ('csat_summary', 'post_purchase.csat_result'),
			 ('ces_summary', 'post_purchase.ces_result')) v(f, r),
	 (VALUES (ARRAY['integer']), (ARRAY['integer', 'integer'])) w(a)
ORDER BY f, cardinality(a);

-- argument names are part of the contract
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = p::regprocedure), n, p || ' argument names')
FROM (VALUES ('post_purchase.csat(integer)', ARRAY['score']),
			 ('post_purchase.csat(integer, integer)', ARRAY['score', 'scale']),
			 ('post_purchase.csat_summary(integer)', ARRAY['score']),
			 ('post_purchase.csat_summary(integer, integer)', ARRAY['score', 'scale']),
			 ('post_purchase.ces_summary(integer)', ARRAY['score']),
			 ('post_purchase.ces_summary(integer, integer)', ARRAY['score', 'scale'])) v(p, n);

-- the result types' columns, in order
CREATE TEMP VIEW survey_result_column AS
	SELECT attrelid::regclass::text AS type_name,
		   array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) AS columns
	FROM pg_attribute
	WHERE attrelid IN ('post_purchase.csat_result'::regclass, 'post_purchase.ces_result'::regclass)
		AND attnum > 0 AND NOT attisdropped
	GROUP BY attrelid;
SELECT is((SELECT columns FROM survey_result_column WHERE type_name = 'post_purchase.csat_result'),
	ARRAY['responses bigint', 'satisfied bigint', 'csat numeric', 'mean numeric', 'ci_low numeric', 'ci_high numeric'],
	'csat_result columns');
SELECT is((SELECT columns FROM survey_result_column WHERE type_name = 'post_purchase.ces_result'),
	ARRAY['responses bigint', 'low_effort bigint', 'low_effort_percent numeric', 'mean numeric',
		  'ci_low numeric', 'ci_high numeric'],
	'ces_result columns');

-- parallel plans need every part: combine, serialize, deserialize, all
-- PARALLEL SAFE; pure functions are IMMUTABLE
CREATE TEMP VIEW survey_aggregate AS
	SELECT a.*, p.proparallel
	FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
	WHERE p.pronamespace = 'post_purchase'::regnamespace AND p.proname IN ('csat', 'csat_summary', 'ces_summary');
SELECT is((SELECT count(*)::int FROM survey_aggregate), 6, 'six survey aggregates');
SELECT is_empty($$SELECT aggfnoid FROM survey_aggregate WHERE proparallel <> 's'$$,
	'every survey aggregate is PARALLEL SAFE');
SELECT is_empty(
	$$SELECT aggfnoid FROM survey_aggregate
	  WHERE aggcombinefn = 0 OR aggserialfn <> 0 OR aggdeserialfn <> 0
		 OR aggtranstype <> 'post_purchase.survey_state'::regtype$$,
	'every survey aggregate has a survey_state state (not internal: issue 22) and a combine function');
SELECT is_empty(
	$$SELECT s.oid::regprocedure FROM survey_aggregate a
	  JOIN pg_proc s ON s.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn)
	  WHERE s.proparallel <> 's' OR s.provolatile <> 'i'$$,
	'every survey support function is IMMUTABLE and PARALLEL SAFE');
SELECT is(
	(SELECT array_agg(DISTINCT aggtranstype::regtype::text) FROM survey_aggregate),
	ARRAY['post_purchase.survey_state'],
	'the survey aggregates share one state format');
SELECT is(
	(SELECT array_agg(DISTINCT aggfnoid::regproc::text || ' ' || aggcombinefn::regproc::text
					  ORDER BY aggfnoid::regproc::text || ' ' || aggcombinefn::regproc::text) FROM survey_aggregate),
	ARRAY['post_purchase.ces_summary post_purchase.ces_state_combine', 'post_purchase.csat post_purchase.csat_state_combine',
		  'post_purchase.csat_summary post_purchase.csat_state_combine'],
	'CSAT and CES combine with their own functions (their errors name the metric)');
SELECT is_empty($$SELECT aggfnoid FROM survey_aggregate WHERE aggfinalmodify <> 'r'$$,
	'the final functions leave the state read-only (window use)');

-- Every form is callable by a role with no privileges of its own.  The role
-- records what each call raised in a table, checked after RESET ROLE.
CREATE ROLE post_purchase_pgtap_survey NOLOGIN NOSUPERUSER NOINHERIT;
CREATE FUNCTION pg_temp.survey_sqlstate_of(query text) RETURNS text
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE query;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE TEMP TABLE survey_call (metric text PRIMARY KEY, query text NOT NULL, error text);
INSERT INTO survey_call (metric, query) VALUES
	('csat', $$SELECT post_purchase.csat(s) FROM (VALUES (5), (3)) v(s)$$),
	('csat scale', $$SELECT post_purchase.csat(s, 7) FROM (VALUES (7), (3)) v(s)$$),
	('csat_summary', $$SELECT post_purchase.csat_summary(s) FROM (VALUES (5), (3)) v(s)$$),
	('csat_summary scale', $$SELECT post_purchase.csat_summary(s, 10) FROM (VALUES (10), (3)) v(s)$$),
	('ces_summary', $$SELECT post_purchase.ces_summary(s) FROM (VALUES (7), (3)) v(s)$$),
	('ces_summary scale', $$SELECT post_purchase.ces_summary(s, 5) FROM (VALUES (5), (3)) v(s)$$),
	('result types', $$SELECT NULL::post_purchase.csat_result, NULL::post_purchase.ces_result$$),
	('planted', $$CREATE FUNCTION post_purchase.survey_planted() RETURNS int LANGUAGE sql AS 'SELECT 1'$$);
GRANT SELECT, UPDATE ON survey_call TO post_purchase_pgtap_survey;
SET LOCAL ROLE post_purchase_pgtap_survey;
UPDATE survey_call SET error = pg_temp.survey_sqlstate_of(query);
RESET ROLE;
SELECT is((SELECT error FROM survey_call WHERE metric = m), NULL, 'an unprivileged role can call ' || m)
FROM unnest(ARRAY['csat', 'csat scale', 'csat_summary', 'csat_summary scale', 'ces_summary', 'ces_summary scale',
				  'result types']) AS m;
-- the checks above would pass if nothing had run as that role
SELECT matches((SELECT error FROM survey_call WHERE metric = 'planted'), '^42501',
	'the same role is refused CREATE in schema post_purchase (the calls above really ran as it)');

SELECT * FROM finish();
ROLLBACK;
