-- Purchase cycles and replenishment due dates (src/purchase_cycle.c).

CREATE TYPE post_purchase.purchase_cycle_result AS (
	purchases bigint,
	median_interval interval,
	mean_interval interval,
	last_purchase timestamptz,
	next_due timestamptz
);
COMMENT ON TYPE post_purchase.purchase_cycle_result IS
	'purchase_cycle: purchase days, median and mean gap between them, last purchase, last + median gap';

CREATE FUNCTION post_purchase.purchase_cycle_accum(internal, timestamptz) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_final(internal) RETURNS post_purchase.purchase_cycle_result
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.purchase_cycle(ordered_at timestamptz) (
	SFUNC = post_purchase.purchase_cycle_accum,
	STYPE = internal,
	SSPACE = 64,
	FINALFUNC = post_purchase.purchase_cycle_final,
	COMBINEFUNC = post_purchase.purchase_cycle_combine,
	SERIALFUNC = post_purchase.purchase_cycle_serialize,
	DESERIALFUNC = post_purchase.purchase_cycle_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.purchase_cycle(timestamptz) IS
	'a customer''s purchase cycle: median and mean days between purchase days, and the next due date';

CREATE FUNCTION post_purchase.replenishment_due(last_purchase timestamptz, quantity numeric,
												days_per_unit numeric)
	RETURNS timestamptz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.replenishment_due(timestamptz, numeric, numeric) IS
	'when a purchase runs out: last_purchase + quantity * days_per_unit days of 24 hours';
