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

CREATE FUNCTION post_purchase.nps_accum(internal, integer) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_final(internal) RETURNS numeric
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.nps_summary_final(internal) RETURNS post_purchase.nps_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.nps(score integer) (
	SFUNC = post_purchase.nps_accum,
	STYPE = internal,
	SSPACE = 24,
	FINALFUNC = post_purchase.nps_final,
	COMBINEFUNC = post_purchase.nps_combine,
	SERIALFUNC = post_purchase.nps_serialize,
	DESERIALFUNC = post_purchase.nps_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.nps(integer) IS
	'Net Promoter Score in [-100, 100] of 0-10 answers: % promoters (9-10) minus % detractors (0-6)';

CREATE AGGREGATE post_purchase.nps_summary(score integer) (
	SFUNC = post_purchase.nps_accum,
	STYPE = internal,
	SSPACE = 24,
	FINALFUNC = post_purchase.nps_summary_final,
	COMBINEFUNC = post_purchase.nps_combine,
	SERIALFUNC = post_purchase.nps_serialize,
	DESERIALFUNC = post_purchase.nps_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.nps_summary(integer) IS
	'NPS with responses, promoters, passives, detractors and the 95% margin of error';
