-- rfm_summary: BTYD purchase summaries (src/rfm.c).
-- Calendar days are those of the zone given as the last argument, else of the
-- post_purchase.shop_time_zone setting, else of the session's TimeZone
-- (src/dayset.h): STABLE, not IMMUTABLE, for the two defaults.

CREATE TYPE post_purchase.rfm_result AS (
	frequency bigint,
	recency double precision,
	t double precision,
	monetary_value numeric
);
COMMENT ON TYPE post_purchase.rfm_result IS
	'rfm_summary: repeat purchase days, recency and age (T) in units, mean repeat purchase value';

-- The aggregates' state is a type of its own, not "internal", so that Citus
-- splits them into a partial aggregate per shard and a combine on the
-- coordinator (src/state_type.h says what it requires).
CREATE TYPE post_purchase.rfm_summary_state;
CREATE FUNCTION post_purchase.rfm_summary_state_in(cstring) RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_out(post_purchase.rfm_summary_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_recv(internal) RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_send(post_purchase.rfm_summary_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.rfm_summary_state (
	INPUT = post_purchase.rfm_summary_state_in,
	OUTPUT = post_purchase.rfm_summary_state_out,
	RECEIVE = post_purchase.rfm_summary_state_recv,
	SEND = post_purchase.rfm_summary_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE post_purchase.rfm_summary_state IS
	'the state of rfm_summary: parameters, time zone, purchase days and spend; text form \x and hex';

CREATE FUNCTION post_purchase.rfm_summary_state_accum(post_purchase.rfm_summary_state, timestamptz, numeric, timestamptz)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_accum(post_purchase.rfm_summary_state, timestamptz, numeric, timestamptz, interval)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_accum(post_purchase.rfm_summary_state, timestamptz, numeric, timestamptz, interval,
													  text)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.rfm_summary_state_combine(post_purchase.rfm_summary_state, post_purchase.rfm_summary_state)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- the state's time zone decides T's day: nothing of the session's
CREATE FUNCTION post_purchase.rfm_summary_state_final(post_purchase.rfm_summary_state) RETURNS post_purchase.rfm_result
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz) (
	SFUNC = post_purchase.rfm_summary_state_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.rfm_summary_state_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.rfm_summary(timestamptz, numeric, timestamptz) IS
	'BTYD summary (frequency, recency, T in days, monetary_value) of the orders up to observed_until';

CREATE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz, unit interval) (
	SFUNC = post_purchase.rfm_summary_state_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.rfm_summary_state_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.rfm_summary(timestamptz, numeric, timestamptz, interval) IS
	'BTYD summary (frequency, recency, T in units, monetary_value) of the orders up to observed_until';

CREATE AGGREGATE post_purchase.rfm_summary(ordered_at timestamptz, amount numeric,
										   observed_until timestamptz, unit interval, time_zone text) (
	SFUNC = post_purchase.rfm_summary_state_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.rfm_summary_state_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.rfm_summary(timestamptz, numeric, timestamptz, interval, text) IS
	'BTYD summary in units, with purchase days counted in the given time zone (an IANA name)';

-- purchase_totals: what the customer state keeps of a customer's orders
-- beyond their count and times, on rfm_summary's state with every order
-- counting (src/rfm.c).  The backfill, verify_state() and the order
-- trigger's recompute use it: one definition of these columns.
CREATE TYPE post_purchase.purchase_totals AS (
	purchase_days bigint,
	first_day date,
	last_day date,
	revenue numeric,
	first_day_revenue numeric
);
COMMENT ON TYPE post_purchase.purchase_totals IS
	'purchase_totals: distinct purchase days, the first and last of them, revenue, the first day''s revenue';

-- the zone is an argument, never a default: nothing of the session's
CREATE FUNCTION post_purchase.purchase_totals_accum(post_purchase.rfm_summary_state, timestamptz, numeric, text)
	RETURNS post_purchase.rfm_summary_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.purchase_totals_final(post_purchase.rfm_summary_state) RETURNS post_purchase.purchase_totals
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.purchase_totals(ordered_at timestamptz, amount numeric, time_zone text) (
	SFUNC = post_purchase.purchase_totals_accum,
	STYPE = post_purchase.rfm_summary_state,
	SSPACE = 136,
	FINALFUNC = post_purchase.purchase_totals_final,
	COMBINEFUNC = post_purchase.rfm_summary_state_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.purchase_totals(timestamptz, numeric, text) IS
	'a customer''s purchase days (orders on one day of the zone are one), first and last day, revenue and first day''s revenue';
