-- The CDNOW master file, read from standard input, into shop.orders, and
-- deterministic synthetic NPS answers into shop.survey_answers.
--
--   psql -v ON_ERROR_STOP=1 -f test/demo/load_cdnow.sql < CDNOW_master.txt
--
-- Days are read in the session's TimeZone (run_demo.sh sets UTC), the same
-- zone in which the aggregates merge same-day orders.

CREATE SCHEMA shop;

CREATE TABLE shop.orders (
	order_id bigint PRIMARY KEY,
	customer_id bigint NOT NULL,
	ordered_at timestamptz NOT NULL,
	quantity integer NOT NULL,
	amount numeric(12,2) NOT NULL
);

CREATE TABLE shop.survey_answers (
	answer_id bigint PRIMARY KEY,
	customer_id bigint NOT NULL,
	answered_at timestamptz NOT NULL,
	score integer NOT NULL
);

-- One line a row: the fields are padded with runs of spaces, which COPY
-- cannot split, so the split happens below.  The identity keeps file order.
CREATE TEMP TABLE cdnow_raw (
	line_no bigint GENERATED ALWAYS AS IDENTITY,
	line text NOT NULL
);
\copy cdnow_raw (line) FROM pstdin

-- customer_id date(YYYYMMDD) number_of_cds dollar_value; the header line and
-- any blank line do not start with a digit.
INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
SELECT row_number() OVER (ORDER BY r.line_no),
	   f[1]::bigint,
	   to_date(f[2], 'YYYYMMDD')::timestamptz,
	   f[3]::integer,
	   f[4]::numeric
FROM cdnow_raw AS r,
	 regexp_split_to_array(btrim(r.line), '\s+') AS f
WHERE r.line ~ '^\s*[0-9]';

-- Synthetic survey: about 30% of orders get an answer 2 to 7 days later.
-- md5 of the order id stands in for chance, so every run and platform gets
-- the same answers.  Satisfaction slides a little every month: detractors
-- start at 22% and gain half a point a month, passives stay at 30%.
-- Answers that would come after the last day of the data are not in yet.
WITH draws AS (
	SELECT o.order_id, o.customer_id, o.ordered_at,
		   ('x' || substr(md5(o.order_id::text), 1, 8))::bit(32)::bigint / 4294967296.0 AS u_answer,
		   ('x' || substr(md5(o.order_id::text), 9, 8))::bit(32)::bigint / 4294967296.0 AS u_kind,
		   ('x' || substr(md5(o.order_id::text), 17, 8))::bit(32)::bigint AS pick,
		   ('x' || substr(md5(o.order_id::text), 25, 8))::bit(32)::bigint AS delay
	FROM shop.orders AS o
), answered AS (
	SELECT d.*,
		   d.ordered_at + make_interval(days => 2 + (d.delay % 6)::int,
										secs => (d.delay / 8) % 86400) AS answered_at
	FROM draws AS d
	WHERE d.u_answer < 0.30
), dated AS (
	SELECT a.*,
		   (extract(year FROM a.answered_at) * 12 + extract(month FROM a.answered_at))
		   - (SELECT extract(year FROM min(ordered_at)) * 12 + extract(month FROM min(ordered_at))
			  FROM shop.orders) AS month_no
	FROM answered AS a
	WHERE a.answered_at < (SELECT date_trunc('day', max(ordered_at)) + interval '1 day' FROM shop.orders)
)
INSERT INTO shop.survey_answers (answer_id, customer_id, answered_at, score)
SELECT row_number() OVER (ORDER BY answered_at, order_id),
	   customer_id,
	   answered_at,
	   CASE
		   WHEN u_kind < 0.22 + 0.005 * month_no THEN (pick % 7)::int			-- detractor, 0..6
		   WHEN u_kind < 0.52 + 0.005 * month_no THEN 7 + (pick % 2)::int		-- passive, 7..8
		   ELSE 9 + (pick % 2)::int												-- promoter, 9..10
	   END
FROM dated;

ANALYZE shop.orders;
ANALYZE shop.survey_answers;
