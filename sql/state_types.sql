-- Issue 22: the aggregates' states are types of their own (src/state_type.h),
-- calendar days are counted in an explicit time zone, and composite results
-- expand without computing the aggregate again.
SET TimeZone = 'UTC';

-- A partial aggregate as Citus runs it on a worker: the transition function
-- over the rows, the state out as text; the coordinator reads the text back,
-- combines and finalizes.  Hand-computed: scores 0..10 are 2 promoters,
-- 2 passives, 7 detractors; the text is \x and the three counts as
-- big-endian int64.
CREATE AGGREGATE nps_partial(integer) (SFUNC = post_purchase.nps_state_accum,
	STYPE = post_purchase.nps_state, COMBINEFUNC = post_purchase.nps_state_combine, PARALLEL = SAFE);
SELECT nps_partial(s)::text AS partial FROM generate_series(0, 10) s;
SELECT post_purchase.nps_summary_state_final(
	post_purchase.nps_state_combine('\x000000000000000200000000000000020000000000000007'::post_purchase.nps_state,
									'\x000000000000000a00000000000000000000000000000000'::post_purchase.nps_state));
-- NPS of 12 promoters, 2 passives, 7 detractors: 100 * 5 / 21
SELECT post_purchase.nps_state_final(nps_partial(s)) = 100 * 5 / 21.0 AS combined
FROM (SELECT s FROM generate_series(0, 10) s UNION ALL SELECT 10 FROM generate_series(1, 10)) t;
-- calling a transition directly leaves its argument alone
SELECT x::text AS before, post_purchase.nps_state_accum(x, 10)::text AS after, x::text AS still
FROM (SELECT '\x000000000000000100000000000000000000000000000000'::post_purchase.nps_state AS x) v;

-- binary form: send and receive through COPY
CREATE TABLE states (s post_purchase.nps_state, c post_purchase.survey_state, r post_purchase.rfm_summary_state,
					 p post_purchase.purchase_cycle_state, m post_purchase.model_fit_state);
CREATE AGGREGATE survey_partial(integer) (SFUNC = post_purchase.csat_state_accum, STYPE = post_purchase.survey_state);
CREATE AGGREGATE rfm_partial(timestamptz, numeric, timestamptz, interval, text) (
	SFUNC = post_purchase.rfm_summary_state_accum, STYPE = post_purchase.rfm_summary_state);
CREATE AGGREGATE cycle_partial(timestamptz, text) (
	SFUNC = post_purchase.purchase_cycle_state_accum, STYPE = post_purchase.purchase_cycle_state);
CREATE AGGREGATE fit_partial(float8, float8, float8) (
	SFUNC = post_purchase.bgnbd_fit_state_accum, STYPE = post_purchase.model_fit_state);
INSERT INTO states
SELECT (SELECT nps_partial(s) FROM generate_series(0, 10) s),
	   (SELECT survey_partial(s) FROM generate_series(1, 5) s),
	   (SELECT rfm_partial(o, 10.5, '2024-03-20', '1 day', 'Pacific/Auckland')
		FROM unnest(ARRAY[timestamptz '2024-03-10 23:30+00', '2024-03-11 00:30+00', '2024-03-15 12:00+00']) o),
	   (SELECT cycle_partial(o, 'America/Los_Angeles')
		FROM unnest(ARRAY[timestamptz '2024-03-08 12:00-08', '2024-03-09 12:00-08']) o),
	   (SELECT fit_partial(f, f, 10) FROM generate_series(0, 3) f);
SELECT '/tmp/post_purchase_states_' || pg_backend_pid() || '.bin' AS states_file \gset
COPY states TO :'states_file' WITH (FORMAT binary);
CREATE TABLE states_back (LIKE states);
COPY states_back FROM :'states_file' WITH (FORMAT binary);
SELECT a.s::text = b.s::text AS nps, a.c::text = b.c::text AS survey, a.r::text = b.r::text AS rfm,
	   a.p::text = b.p::text AS cycle, a.m::text = b.m::text AS fit
FROM states a, states_back b;
SELECT post_purchase.csat_summary_state_final(c), post_purchase.rfm_summary_state_final(r),
	   post_purchase.purchase_cycle_state_final(p) FROM states_back;
-- the text form, read back, gives the same answers
SELECT post_purchase.rfm_summary_state_final(r::text::post_purchase.rfm_summary_state),
	   post_purchase.purchase_cycle_state_final(p::text::post_purchase.purchase_cycle_state),
	   (post_purchase.bgnbd_fit_state_final(m::text::post_purchase.model_fit_state)).customers
FROM states_back;

-- states that no aggregate wrote are refused
SELECT 'abc'::post_purchase.nps_state;
SELECT '\x0g'::post_purchase.nps_state;
SELECT '\x00'::post_purchase.nps_state;
SELECT '\xffffffffffffffff00000000000000000000000000000000'::post_purchase.nps_state;
SELECT '\x000000000000000000000000000000000000000000000000ff'::post_purchase.nps_state;
SELECT '\x00000004'::post_purchase.survey_state;
SELECT post_purchase.rfm_summary_state_final(overlay(r::text placing '4e6f2f5a6f6e65' from 43 for 14)::post_purchase.rfm_summary_state)
FROM states_back;

-- Calendar days in an explicit zone.  Orders at 23:30 and 00:30 UTC on
-- 10/11 March 2024 are two days in UTC, one in Auckland (NZDT, +13: 12:30
-- and 13:30 on the 11th) and one in Los Angeles (PDT since that morning,
-- -7: 16:30 and 17:30 on the 10th).
CREATE TABLE near_midnight (customer_id int, ordered_at timestamptz, amount numeric);
INSERT INTO near_midnight VALUES (1, '2024-03-10 23:30+00', 10), (1, '2024-03-11 00:30+00', 20);
-- with the zone given, the session's zone changes nothing: frequency 1,
-- recency 1, T from 10 to 20 March = 10, monetary 20
SET TimeZone = 'Pacific/Auckland';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-20 00:00+00', '1 day', 'UTC')).* FROM near_midnight;
SELECT (post_purchase.purchase_cycle(ordered_at, 'UTC')).* FROM near_midnight;
SET TimeZone = 'America/Los_Angeles';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-20 00:00+00', '1 day', 'UTC')).* FROM near_midnight;
SELECT (post_purchase.purchase_cycle(ordered_at, 'UTC')).* FROM near_midnight;
-- without it, the session's zone counts: one day in either zone; T to
-- 20 March 00:00 UTC, which is 13:00 on the 20th in Auckland (first day the
-- 11th: T 9) and 17:00 on the 19th in Los Angeles (first day the 10th: T 9)
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-20 00:00+00')).* FROM near_midnight;
SET TimeZone = 'Pacific/Auckland';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-20 00:00+00')).* FROM near_midnight;
SELECT (post_purchase.purchase_cycle(ordered_at)).purchases FROM near_midnight;
-- the due date is a calendar day of the zone: noon on 8 and 9 March in Los
-- Angeles (PST, 20:00 UTC), a day apart; the next noon there is on 10
-- March, in PDT: 19:00 UTC, 23 hours later.  In UTC it is 20:00 UTC.
SET TimeZone = 'UTC';
SELECT (c).purchases, (c).median_interval, (c).next_due
FROM (SELECT post_purchase.purchase_cycle(o, 'America/Los_Angeles') AS c
	  FROM unnest(ARRAY[timestamptz '2024-03-08 12:00-08', '2024-03-09 12:00-08']) o) q;
SELECT (c).purchases, (c).median_interval, (c).next_due
FROM (SELECT post_purchase.purchase_cycle(o, 'UTC') AS c
	  FROM unnest(ARRAY[timestamptz '2024-03-08 12:00-08', '2024-03-09 12:00-08']) o) q;
-- a state carries its zone: a final function on another node (a Citus
-- coordinator whose session has another TimeZone) counts the same days
SET TimeZone = 'Asia/Tokyo';
SELECT post_purchase.rfm_summary_state_final(r), (post_purchase.purchase_cycle_state_final(p)).next_due FROM states_back;
SET TimeZone = 'UTC';
-- post_purchase.shop_time_zone is the default zone: set to Auckland, a UTC
-- session counts Auckland's days (one day: frequency 0, T 9 as above); an
-- unknown zone is refused when set
SET post_purchase.shop_time_zone = 'Pacific/Auckland';
SELECT (post_purchase.rfm_summary(ordered_at, amount, '2024-03-20 00:00+00')).* FROM near_midnight;
SELECT (post_purchase.purchase_cycle(ordered_at)).purchases FROM near_midnight;
SET post_purchase.shop_time_zone = 'Mars/Olympus_Mons';
RESET post_purchase.shop_time_zone;
-- bad zones
SELECT post_purchase.rfm_summary(ordered_at, amount, '2024-03-20', '1 day', 'Mars/Olympus_Mons') FROM near_midnight;
SELECT post_purchase.purchase_cycle(ordered_at, '') FROM near_midnight;
SELECT post_purchase.purchase_cycle(ordered_at, NULL) FROM near_midnight;
SELECT post_purchase.purchase_cycle(ordered_at, CASE WHEN amount > 10 THEN 'UTC' ELSE 'Europe/Berlin' END)
FROM near_midnight;
-- states of two zones do not combine
SELECT post_purchase.purchase_cycle_state_combine(a.p, b.p)
FROM states_back a, (SELECT cycle_partial(o, 'UTC') AS p FROM unnest(ARRAY[timestamptz '2024-01-01']) o) b;

-- Composite results: (aggregate(...)).* expands to one call per column.
-- PostgreSQL computes identical calls once, but not when an argument is
-- volatile, and Citus ships and combines each column's partial state on
-- its own; the form with a subquery computes the aggregate once always.
-- Counted here by a sequence in the argument: six columns, three rows.
CREATE SEQUENCE calls;
SELECT (post_purchase.nps_summary(s + 0 * nextval('calls')::int)).* FROM generate_series(8, 10) s;
SELECT last_value AS calls_expanded FROM calls;
SELECT setval('calls', 1, false);
SELECT (n).* FROM (SELECT post_purchase.nps_summary(s + 0 * nextval('calls')::int) AS n FROM generate_series(8, 10) s) q;
SELECT last_value AS calls_once FROM calls;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT (n).* FROM (SELECT post_purchase.nps_summary(s) AS n FROM generate_series(8, 10) s) q;
