-- CSAT and customer effort (CES) aggregates (src/survey.c).
-- A scale is the number of answer points, 3, 5, 7 or 10, answered from 1.
-- The one-argument forms take the usual scale (5 for CSAT, 7 for CES 2.0):
-- an aggregate's argument cannot usefully default, so each has two forms.

CREATE TYPE post_purchase.csat_result AS (
	responses bigint,
	satisfied bigint,
	csat numeric,
	mean numeric,
	ci_low numeric,
	ci_high numeric
);
COMMENT ON TYPE post_purchase.csat_result IS
	'csat_summary: answers, satisfied (top-2 box) answers, CSAT in percent, mean answer, 95% Wilson interval of CSAT in percent';

CREATE TYPE post_purchase.ces_result AS (
	responses bigint,
	low_effort bigint,
	low_effort_percent numeric,
	mean numeric,
	ci_low numeric,
	ci_high numeric
);
COMMENT ON TYPE post_purchase.ces_result IS
	'ces_summary: answers, low-effort answers (above the midpoint) and their percent, mean answer (the CES), 95% t interval of the mean';

-- The aggregates' state is a type of its own, not "internal", so that Citus
-- splits them into a partial aggregate per shard and a combine on the
-- coordinator (src/state_type.h says what it requires).
CREATE TYPE post_purchase.survey_state;
CREATE FUNCTION post_purchase.survey_state_in(cstring) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.survey_state_out(post_purchase.survey_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.survey_state_recv(internal) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.survey_state_send(post_purchase.survey_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.survey_state (
	INPUT = post_purchase.survey_state_in,
	OUTPUT = post_purchase.survey_state_out,
	RECEIVE = post_purchase.survey_state_recv,
	SEND = post_purchase.survey_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE post_purchase.survey_state IS
	'the state of csat, csat_summary and ces_summary: the scale and the count of each answer; text form \x and hex';

CREATE FUNCTION post_purchase.csat_state_accum(post_purchase.survey_state, integer) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_state_accum(post_purchase.survey_state, integer, integer)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_state_accum(post_purchase.survey_state, integer) RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_state_accum(post_purchase.survey_state, integer, integer)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_state_combine(post_purchase.survey_state, post_purchase.survey_state)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_state_combine(post_purchase.survey_state, post_purchase.survey_state)
	RETURNS post_purchase.survey_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_state_final(post_purchase.survey_state) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.csat_summary_state_final(post_purchase.survey_state) RETURNS post_purchase.csat_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.ces_summary_state_final(post_purchase.survey_state) RETURNS post_purchase.ces_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.csat(score integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat(integer) IS
	'CSAT in percent of 1-5 answers: the share of satisfied answers (4-5)';

CREATE AGGREGATE post_purchase.csat(score integer, scale integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat(integer, integer) IS
	'CSAT in percent of answers on a 3, 5, 7 or 10-point scale: the share of the top-2 box (the top box of 3)';

CREATE AGGREGATE post_purchase.csat_summary(score integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_summary_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat_summary(integer) IS
	'CSAT of 1-5 answers with responses, satisfied, mean and the 95% Wilson interval';

CREATE AGGREGATE post_purchase.csat_summary(score integer, scale integer) (
	SFUNC = post_purchase.csat_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.csat_summary_state_final,
	COMBINEFUNC = post_purchase.csat_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.csat_summary(integer, integer) IS
	'CSAT on a 3, 5, 7 or 10-point scale with responses, satisfied, mean and the 95% Wilson interval';

CREATE AGGREGATE post_purchase.ces_summary(score integer) (
	SFUNC = post_purchase.ces_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.ces_summary_state_final,
	COMBINEFUNC = post_purchase.ces_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.ces_summary(integer) IS
	'customer effort of 1-7 CES 2.0 answers (7: strongly agree it was easy): mean, low-effort (5-7) share, 95% t interval of the mean';

CREATE AGGREGATE post_purchase.ces_summary(score integer, scale integer) (
	SFUNC = post_purchase.ces_state_accum,
	STYPE = post_purchase.survey_state,
	SSPACE = 96,
	INITCOND = '\x00000000',
	FINALFUNC = post_purchase.ces_summary_state_final,
	COMBINEFUNC = post_purchase.ces_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.ces_summary(integer, integer) IS
	'customer effort on a 3, 5, 7 or 10-point scale (higher is easier): mean, low-effort share, 95% t interval of the mean';
