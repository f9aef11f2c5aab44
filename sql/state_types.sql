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

-- Flat states (rfm_summary_state, purchase_cycle_state) keep their days in
-- room at the end of the value and grow it when full; amounts that do not
-- fit the fixed-point sums go to numerics inside the value.  Three
-- customers with 600 orders each on 187 distinct days (day (i*37 mod 200)^2
-- / 50 repeats and collides), in shuffled order, several orders a day:
-- amounts 1.25, of 10 decimals (past the fixed point; every hundredth fits
-- it), and over 10^30; against plain SQL over the distinct days.
CREATE TABLE many_days AS
SELECT c, i, timestamptz '2020-01-01 00:00+00' + (((i * 37) % 200) ^ 2 / 50)::int * interval '1 day'
			 + (i % 3) * interval '1 hour' AS ordered_at,
	   CASE c WHEN 1 THEN 1.25 WHEN 2 THEN 0.0000000001 * i ELSE 1e30 + i END AS amount
FROM generate_series(1, 3) c, generate_series(1, 600) i;
CREATE VIEW many_days_reference AS
WITH d AS (SELECT c, (ordered_at AT TIME ZONE 'UTC')::date AS day, sum(amount) AS spend
		   FROM many_days GROUP BY c, day),
	 f AS (SELECT c, min(day) AS first_day FROM d GROUP BY c),
	 g AS (SELECT c, day - lag(day) OVER (PARTITION BY c ORDER BY day) AS gap FROM d)
SELECT f.c, count(*) AS days, count(*) - 1 AS frequency, max(day) - min(day) AS recency,
	   date '2023-01-01' - min(day) AS t,
	   (sum(spend) - sum(spend) FILTER (WHERE day = f.first_day)) / (count(*) - 1) AS monetary_value,
	   (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) FROM g WHERE g.c = f.c) AS median_gap,
	   (max(day) - min(day))::numeric / (count(*) - 1) AS mean_gap
FROM d JOIN f USING (c) GROUP BY f.c;
SELECT r.c, r.days, (s).monetary_value AS m, (s).frequency = r.frequency AS frequency, (s).recency = r.recency AS recency, (s).t = r.t AS t,
	   (s).monetary_value = r.monetary_value AS monetary_value,
	   (p).purchases = r.days AS purchases, (p).median_interval = r.median_gap * interval '1 day' AS median,
	   abs(extract(epoch FROM (p).mean_interval) - r.mean_gap * 86400) < 1e-3 AS mean,
	   (p).last_purchase = (SELECT max(ordered_at) FROM many_days m WHERE m.c = r.c) AS last_purchase
FROM many_days_reference r
JOIN (SELECT c, post_purchase.rfm_summary(ordered_at, amount, '2023-01-01') AS s,
			 post_purchase.purchase_cycle(ordered_at) AS p
	  FROM many_days GROUP BY c) a USING (c)
ORDER BY c;
-- split in two partial states (odd and even orders) and combined, and
-- through the text form: the same answers, and the same state's text as in
-- one pass (the text form is canonical: sorted days, exact sums)
CREATE TABLE many_days_partial AS
SELECT c, i % 2 AS half, rfm_partial(ordered_at, amount, '2023-01-01', '1 day', 'UTC') AS r,
	   cycle_partial(ordered_at, 'UTC') AS p
FROM many_days GROUP BY c, i % 2;
SELECT a.c, post_purchase.rfm_summary_state_final(post_purchase.rfm_summary_state_combine(a.r, b.r))
			= (SELECT post_purchase.rfm_summary(ordered_at, amount, '2023-01-01') FROM many_days m WHERE m.c = a.c) AS rfm,
	   post_purchase.purchase_cycle_state_final(post_purchase.purchase_cycle_state_combine(a.p::text::post_purchase.purchase_cycle_state, b.p))
			= (SELECT post_purchase.purchase_cycle(ordered_at) FROM many_days m WHERE m.c = a.c) AS cycle,
	   post_purchase.rfm_summary_state_combine(a.r, b.r)::text
			= (SELECT rfm_partial(ordered_at, amount, '2023-01-01', '1 day', 'UTC') FROM many_days m WHERE m.c = a.c)::text AS rfm_text,
	   post_purchase.purchase_cycle_state_combine(b.p, a.p)::text
			= (SELECT cycle_partial(ordered_at, 'UTC') FROM many_days m WHERE m.c = a.c)::text AS cycle_text
FROM many_days_partial a JOIN many_days_partial b ON b.c = a.c AND b.half = 1
WHERE a.half = 0 ORDER BY a.c;
-- calling a transition or combine function directly leaves its arguments
-- alone (only an aggregate's own state is updated in place)
SELECT a.r::text = a2.r::text AS rfm_accum_kept, a.p::text = a2.p::text AS cycle_accum_kept,
	   b.r::text = b2.r::text AS rfm_combine_kept, b.p::text = b2.p::text AS cycle_combine_kept
FROM many_days_partial a, many_days_partial a2, many_days_partial b, many_days_partial b2,
	 LATERAL (SELECT post_purchase.rfm_summary_state_accum(a.r, '2022-12-31', 1, '2023-01-01', '1 day', 'UTC'),
					 post_purchase.purchase_cycle_state_accum(a.p, '2022-12-31', 'UTC'),
					 post_purchase.rfm_summary_state_combine(a.r, b.r),
					 post_purchase.purchase_cycle_state_combine(a.p, b.p)) calls
WHERE a.c = 3 AND a.half = 0 AND a2.c = 3 AND a2.half = 0 AND b.c = 3 AND b.half = 1 AND b2.c = 3 AND b2.half = 1;
-- a running window aggregate finalizes the state after every row and goes
-- on updating it: each row's summary is that of the orders up to it
SELECT count(*) AS rows, count(*) FILTER (WHERE w.s = (SELECT post_purchase.rfm_summary(ordered_at, amount, '2023-01-01')
													  FROM many_days m WHERE m.c = 2 AND m.i <= w.i)
											 AND w.p = (SELECT post_purchase.purchase_cycle(ordered_at)
														FROM many_days m WHERE m.c = 2 AND m.i <= w.i)) AS same
FROM (SELECT i, post_purchase.rfm_summary(ordered_at, amount, '2023-01-01') OVER (ORDER BY i) AS s,
			 post_purchase.purchase_cycle(ordered_at) OVER (ORDER BY i) AS p
	  FROM many_days WHERE c = 2 AND i <= 120) w;
