-- Net Promoter Score aggregates (src/nps.c).

CREATE TYPE post_purchase.nps_result AS (
	responses bigint,
	promoters bigint,
	passives bigint,
	detractors bigint,
	nps numeric,
	margin_of_error numeric
);
COMMENT ON TYPE post_purchase.nps_result IS
	'nps_summary: answer counts, NPS in points and its 95% margin of error';

-- The aggregates' state is a type of its own, not "internal", so that Citus
-- splits them into a partial aggregate per shard and a combine on the
-- coordinator (src/state_type.h says what it requires).
CREATE TYPE post_purchase.nps_state;
CREATE FUNCTION post_purchase.nps_state_in(cstring) RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_out(post_purchase.nps_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_recv(internal) RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_send(post_purchase.nps_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.nps_state (
	INPUT = post_purchase.nps_state_in,
	OUTPUT = post_purchase.nps_state_out,
	RECEIVE = post_purchase.nps_state_recv,
	SEND = post_purchase.nps_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE post_purchase.nps_state IS
	'the state of nps and nps_summary: promoter, passive and detractor counts; text form \x and hex';

CREATE FUNCTION post_purchase.nps_state_accum(post_purchase.nps_state, integer) RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_combine(post_purchase.nps_state, post_purchase.nps_state)
	RETURNS post_purchase.nps_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_state_final(post_purchase.nps_state) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_summary_state_final(post_purchase.nps_state) RETURNS post_purchase.nps_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.nps(score integer) (
	SFUNC = post_purchase.nps_state_accum,
	STYPE = post_purchase.nps_state,
	SSPACE = 32,
	INITCOND = '\x000000000000000000000000000000000000000000000000',
	FINALFUNC = post_purchase.nps_state_final,
	COMBINEFUNC = post_purchase.nps_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.nps(integer) IS
	'Net Promoter Score in [-100, 100] of 0-10 answers: % promoters (9-10) minus % detractors (0-6)';

CREATE AGGREGATE post_purchase.nps_summary(score integer) (
	SFUNC = post_purchase.nps_state_accum,
	STYPE = post_purchase.nps_state,
	SSPACE = 32,
	INITCOND = '\x000000000000000000000000000000000000000000000000',
	FINALFUNC = post_purchase.nps_summary_state_final,
	COMBINEFUNC = post_purchase.nps_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.nps_summary(integer) IS
	'NPS with responses, promoters, passives, detractors and the 95% margin of error';
