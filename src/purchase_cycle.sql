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

-- The aggregates' state is a type of its own, not "internal", so that Citus
-- splits them into a partial aggregate per shard and a combine on the
-- coordinator (src/state_type.h says what it requires).
CREATE TYPE post_purchase.purchase_cycle_state;
CREATE FUNCTION post_purchase.purchase_cycle_state_in(cstring) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_out(post_purchase.purchase_cycle_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_recv(internal) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_send(post_purchase.purchase_cycle_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.purchase_cycle_state (
	INPUT = post_purchase.purchase_cycle_state_in,
	OUTPUT = post_purchase.purchase_cycle_state_out,
	RECEIVE = post_purchase.purchase_cycle_state_recv,
	SEND = post_purchase.purchase_cycle_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE post_purchase.purchase_cycle_state IS
	'the state of purchase_cycle: time zone, last purchase and purchase days; text form \x and hex';

CREATE FUNCTION post_purchase.purchase_cycle_state_accum(post_purchase.purchase_cycle_state, timestamptz) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_accum(post_purchase.purchase_cycle_state, timestamptz, text) RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_cycle_state_combine(post_purchase.purchase_cycle_state, post_purchase.purchase_cycle_state)
	RETURNS post_purchase.purchase_cycle_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- the state's time zone decides the due date's day: nothing of the session's
CREATE FUNCTION post_purchase.purchase_cycle_state_final(post_purchase.purchase_cycle_state) RETURNS post_purchase.purchase_cycle_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.purchase_cycle(ordered_at timestamptz) (
	SFUNC = post_purchase.purchase_cycle_state_accum,
	STYPE = post_purchase.purchase_cycle_state,
	SSPACE = 72,
	FINALFUNC = post_purchase.purchase_cycle_state_final,
	COMBINEFUNC = post_purchase.purchase_cycle_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.purchase_cycle(timestamptz) IS
	'a customer''s purchase cycle: median and mean days between purchase days, and the next due date';

CREATE AGGREGATE post_purchase.purchase_cycle(ordered_at timestamptz, time_zone text) (
	SFUNC = post_purchase.purchase_cycle_state_accum,
	STYPE = post_purchase.purchase_cycle_state,
	SSPACE = 72,
	FINALFUNC = post_purchase.purchase_cycle_state_final,
	COMBINEFUNC = post_purchase.purchase_cycle_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.purchase_cycle(timestamptz, text) IS
	'a customer''s purchase cycle, with purchase days counted in the given time zone (an IANA name)';

CREATE FUNCTION post_purchase.replenishment_due(last_purchase timestamptz, quantity numeric,
												days_per_unit numeric)
	RETURNS timestamptz
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.replenishment_due(timestamptz, numeric, numeric) IS
	'when a purchase runs out: last_purchase + quantity * days_per_unit days of 24 hours';
