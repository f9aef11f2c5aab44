-- generate_shop.sql: a deterministic synthetic shop in schema "shop".
--
--   psql -v customers=1000000 -v orders=10000000 -v answers=2000000 -f test/bench/generate_shop.sql
--
-- Every variable is optional (defaults below).  The same parameters give the
-- same rows on every run and every machine: all randomness comes from
-- hashint8extended() of (customer, order number, purpose), never from
-- random(), whose sequence would depend on the plan.
--
-- The shape, for benchmarks and the demo to be meaningful:
--   * every customer orders at least once; about half never come back, the
--     rest share the remaining orders by a capped Lomax (Pareto II) weight,
--     so many order a few times and a few heavy buyers hundreds of times;
--   * a customer's next order follows the previous one after
--     quantity x days_per_unit (a per-customer consumption cycle) x noise,
--     with occasional long pauses and about 3% same-day second orders, so
--     purchase_cycle and replenishment_due have something to find;
--   * amounts are quantity x a log-normal unit price around a per-customer level;
--   * orders lie in [2021-01-01, 2024-01-01) UTC and order_id follows time,
--     like a table that was filled as orders came in;
--   * order_id runs 1..orders and answer_id 1..answers;
--   * survey answers follow a random order by 2 hours to 2 weeks (never
--     after the end of the data); the score is
--     a rounded normal around a mean that trends up and swings with the season
--     (NPS drifts by month), plus a per-customer bias.
--   * with fewer orders than customers, only the first "orders" customers
--     exist, with one order each.

\set ON_ERROR_STOP on
\if :{?customers}
\else
\set customers 1000000
\endif
\if :{?orders}
\else
\set orders 10000000
\endif
\if :{?answers}
\else
\set answers 2000000
\endif

SET client_min_messages = warning;
-- sorts of every order: at least 256MB of work_mem for this session (more
-- if the server has it), so that small servers sort in a few runs on disk
SELECT set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')) / 1024, 262144) || 'kB', false),
	   set_config('maintenance_work_mem',
				  greatest(pg_size_bytes(current_setting('maintenance_work_mem')) / 1024, 524288) || 'kB', false)
\g /dev/null
-- the time arithmetic below is done in UTC
SET TimeZone = 'UTC';

DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;

-- A uniform number in [0, 1) from a key and a purpose (53 random bits).
CREATE FUNCTION shop.u(key bigint, purpose bigint) RETURNS float8
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (hashint8extended(key, purpose) & 9007199254740991)::float8 / 9007199254740992.0;

-- A standard normal number (Box-Muller) from a key and a purpose.
CREATE FUNCTION shop.z(key bigint, purpose bigint) RETURNS float8
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN sqrt(-2.0 * ln(1.0 - shop.u(key, purpose)))
		* cos(2.0 * pi() * shop.u(key, purpose + 1000003));

-- The key of order number k (0-based) of customer c.
CREATE FUNCTION shop.ok(c bigint, k bigint) RETURNS bigint
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN c * 1048576 + k;

-- Units in order k of customer c: mostly 1, sometimes up to 6.
CREATE FUNCTION shop.quantity(c bigint, k bigint) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE
		WHEN shop.u(shop.ok(c, k), 11) < 0.70 THEN 1
		WHEN shop.u(shop.ok(c, k), 11) < 0.88 THEN 2
		WHEN shop.u(shop.ok(c, k), 11) < 0.95 THEN 3
		ELSE 4 + floor(3 * shop.u(shop.ok(c, k), 12))::integer
	END;

-- Whether order k (k > 0) is a second order on the same day as order k-1.
CREATE FUNCTION shop.same_day(c bigint, k bigint) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN k > 0 AND shop.u(shop.ok(c, k), 13) < 0.03;

-- The base time of day of an order, in seconds: 07:00 to 21:00.
CREATE FUNCTION shop.time_of_day(c bigint, k bigint) RETURNS float8
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN 25200 + floor(50400 * shop.u(shop.ok(c, k), 14));

-- Customers: order counts that add up to exactly :orders, and habits.
CREATE TEMPORARY TABLE gen_customers AS
WITH p AS (
	SELECT least(:customers::bigint, :orders::bigint) AS customers,
		   :orders::bigint - least(:customers::bigint, :orders::bigint) AS extra
), w AS (
	SELECT c,
		   -- 40% of the customers never come back; the others get a
		   -- Lomax(1.3) share of the extra orders (many get one or two, a few
		   -- hundreds), capped so that nobody buys several times a day
		   CASE WHEN shop.u(c, 1) < 0.4 THEN 0.0
				ELSE least(power(1.0 - shop.u(c, 2), -1.0 / 1.3) - 1.0, 250.0) END AS weight
	FROM p, generate_series(1, p.customers) AS c
), cum AS (
	SELECT c, sum(weight) OVER (ORDER BY c) AS upto, sum(weight) OVER () AS total
	FROM w
), bounds AS (
	-- the extra orders of customer c are [floor(extra*W(c-1)/W), floor(extra*W(c)/W))
	SELECT c,
		   CASE WHEN c = p.customers OR total = 0 THEN
				CASE WHEN c = p.customers THEN p.extra ELSE 0 END
				ELSE floor(p.extra * upto / total)::bigint END AS upto_extra
	FROM cum, p
)
SELECT c AS customer_id,
	   1 + upto_extra - coalesce(lag(upto_extra) OVER (ORDER BY c), 0) AS n_orders,
	   -- days one unit lasts: log-normal around 30 days, 5 to 180
	   least(greatest(30.0 * exp(0.6 * shop.z(c, 3)), 5.0), 180.0) AS days_per_unit,
	   -- the customer's price level: log-normal around 25
	   ln(25.0) + 0.4 * shop.z(c, 5) AS price_level
FROM bounds;

-- Orders, positioned along each customer's own consumption cycle.
CREATE TABLE shop.orders (
	order_id bigint PRIMARY KEY,
	customer_id bigint NOT NULL,
	ordered_at timestamptz NOT NULL,
	quantity integer NOT NULL,
	amount numeric(12,2) NOT NULL
);

-- The primary key index is dropped during the load and rebuilt after it.
ALTER TABLE shop.orders DROP CONSTRAINT orders_pkey;

INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
WITH steps AS (
	SELECT g.customer_id, g.days_per_unit, g.price_level, k,
		   -- the gap before order k, in units of days_per_unit: the previous
		   -- order's quantity, stretched by noise; 0 for a same-day order
		   CASE
			   WHEN k = 0 OR shop.same_day(g.customer_id, k) THEN 0.0
			   WHEN shop.u(shop.ok(g.customer_id, k), 15) < 0.05
				   THEN shop.quantity(g.customer_id, k - 1) * (2.0 + 3.0 * shop.u(shop.ok(g.customer_id, k), 16))
			   ELSE shop.quantity(g.customer_id, k - 1) * (0.75 + 0.5 * shop.u(shop.ok(g.customer_id, k), 16))
		   END AS gap
	FROM gen_customers AS g
		 CROSS JOIN LATERAL generate_series(0, g.n_orders - 1) AS k
), cumulated AS (
	SELECT *,
		   sum(gap) OVER (PARTITION BY customer_id ORDER BY k) AS position,
		   sum(gap) OVER (PARTITION BY customer_id) AS span
	FROM steps
), scaled AS (
	SELECT customer_id, k, price_level,
		   -- shrink the cycle of heavy buyers so that all their orders fit in
		   -- the 1095 days; then start somewhere that leaves room for them
		   position * cycle AS offset_days,
		   shop.u(customer_id, 4) * greatest(1090.0 - span * cycle, 0.0) AS start_day
	FROM (SELECT *, CASE WHEN span * days_per_unit > 1090.0 THEN 1090.0 / span
						 ELSE days_per_unit END AS cycle
		  FROM cumulated) AS c
), timed AS (
	SELECT customer_id, k,
		   timestamptz '2021-01-01 00:00:00+00'
		   + make_interval(days => floor(start_day + offset_days)::integer)
		   + make_interval(secs => CASE
				 WHEN shop.same_day(customer_id, k)
					 THEN shop.time_of_day(customer_id, k - 1)
						  + 600 + floor(10200 * shop.u(shop.ok(customer_id, k), 17))
				 ELSE shop.time_of_day(customer_id, k) END) AS ordered_at,
		   shop.quantity(customer_id, k) AS quantity,
		   price_level
	FROM scaled
)
SELECT row_number() OVER (ORDER BY ordered_at, customer_id, k),
	   customer_id,
	   ordered_at,
	   quantity,
	   round((quantity * greatest(exp(price_level + 0.5 * shop.z(shop.ok(customer_id, k), 18)), 0.5))::numeric, 2)
FROM timed
ORDER BY ordered_at, customer_id, k;

ALTER TABLE shop.orders ADD PRIMARY KEY (order_id);

-- Survey answers: each follows a pseudo-random order, after 2 hours to 2 weeks.
CREATE TABLE shop.survey_answers (
	answer_id bigint PRIMARY KEY,
	customer_id bigint NOT NULL,
	answered_at timestamptz NOT NULL,
	score integer NOT NULL CHECK (score BETWEEN 0 AND 10)
);

ALTER TABLE shop.survey_answers DROP CONSTRAINT survey_answers_pkey;

INSERT INTO shop.survey_answers (answer_id, customer_id, answered_at, score)
WITH picked AS (
	SELECT a AS answer_id,
		   1 + floor(shop.u(a, 21) * (SELECT count(*) FROM shop.orders))::bigint AS order_id
	FROM generate_series(1, :answers::bigint) AS a
), answered AS (
	SELECT p.answer_id, o.customer_id,
		   o.ordered_at + make_interval(secs => CASE
			   WHEN o.ordered_at + make_interval(secs => delay) < timestamptz '2024-01-01 00:00:00+00'
				   THEN delay
			   -- answers come in before the end of the data, like the orders
			   ELSE floor(extract(epoch FROM timestamptz '2024-01-01 00:00:00+00' - o.ordered_at)
						  * shop.u(p.answer_id, 25)) END) AS answered_at
	FROM picked AS p JOIN shop.orders AS o USING (order_id),
		 LATERAL (SELECT 7200 + floor(1202400 * shop.u(p.answer_id, 22)) AS delay) AS d
), scored AS (
	SELECT answer_id, customer_id, answered_at,
		   -- months since January 2021: a slow upward trend and a season
		   7.7
		   + 0.6 * ((extract(year FROM answered_at) - 2021) * 12 + extract(month FROM answered_at) - 1)::float8 / 36.0
		   + 0.4 * sin(2.0 * pi() * extract(month FROM answered_at)::float8 / 12.0)
		   + 0.8 * shop.z(customer_id, 23)
		   + 1.8 * shop.z(answer_id, 24) AS satisfaction
	FROM answered
)
SELECT answer_id, customer_id, answered_at,
	   least(greatest(round(satisfaction), 0), 10)::integer
FROM scored
ORDER BY answered_at, answer_id;

ALTER TABLE shop.survey_answers ADD PRIMARY KEY (answer_id);

DROP TABLE gen_customers;
DROP FUNCTION shop.time_of_day(bigint, bigint), shop.same_day(bigint, bigint),
	shop.quantity(bigint, bigint), shop.ok(bigint, bigint), shop.z(bigint, bigint),
	shop.u(bigint, bigint);

-- hint bits and the visibility map set now, so the first benchmark run does not pay for them
VACUUM (ANALYZE) shop.orders;
VACUUM (ANALYZE) shop.survey_answers;
