-- rfm_summary: BTYD purchase summaries (src/rfm.c).
-- STABLE, not IMMUTABLE: calendar days are those of the session TimeZone.

CREATE TYPE post_purchase.rfm_result AS (
	frequency bigint,
	recency double precision,
	t double precision,
	monetary_value numeric
);
COMMENT ON TYPE post_purchase.rfm_result IS
	'rfm_summary: repeat purchase days, recency and age (T) in units, mean repeat purchase value';

CREATE FUNCTION post_purchase.rfm_summary_accum(internal, timestamptz, numeric, timestamptz)
	RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_accum(internal, timestamptz, numeric, timestamptz, interval)
	RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_final(internal) RETURNS post_purchase.rfm_result
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz) (
	SFUNC = post_purchase.rfm_summary_accum,
	STYPE = internal,
	SSPACE = 128,
	FINALFUNC = post_purchase.rfm_summary_final,
	COMBINEFUNC = post_purchase.rfm_summary_combine,
	SERIALFUNC = post_purchase.rfm_summary_serialize,
	DESERIALFUNC = post_purchase.rfm_summary_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.rfm_summary(timestamptz, numeric, timestamptz) IS
	'BTYD summary (frequency, recency, T in days, monetary_value) of the orders up to observed_until';

CREATE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz, unit interval) (
	SFUNC = post_purchase.rfm_summary_accum,
	STYPE = internal,
	SSPACE = 128,
	FINALFUNC = post_purchase.rfm_summary_final,
	COMBINEFUNC = post_purchase.rfm_summary_combine,
	SERIALFUNC = post_purchase.rfm_summary_serialize,
	DESERIALFUNC = post_purchase.rfm_summary_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.rfm_summary(timestamptz, numeric, timestamptz, interval) IS
	'BTYD summary (frequency, recency, T in units, monetary_value) of the orders up to observed_until';
