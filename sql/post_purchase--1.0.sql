-- post_purchase 1.0 install script, as released: frozen, never edited (changes
-- go to the upgrade scripts, sql/post_purchase--1.0--*.sql, and src/*.sql).
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION post_purchase" to load this file. \quit

-- The metrics are for every role; the schema is created by CREATE EXTENSION
-- (from the control file) and owned by the installing superuser.
GRANT USAGE ON SCHEMA post_purchase TO PUBLIC;
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
-- Named RFM segments (src/rfm_segment.c).

CREATE FUNCTION post_purchase.rfm_segment(r_score integer, f_score integer) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.rfm_segment(integer, integer) IS
	'the standard RFM segment (Champions ... Hibernating) of recency and frequency quintile scores 1-5';

CREATE FUNCTION post_purchase.rfm_score(value double precision, cuts double precision[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.rfm_score(double precision, double precision[]) IS
	'quintile score 1..5 of a value given the four ascending cut points between quintiles';
-- BG/NBD, Gamma-Gamma and CLV (src/bgnbd.c, src/gamma_gamma.c, src/clv.c,
-- src/model_fit.c).

CREATE TYPE post_purchase.bgnbd_model AS (
	r double precision,
	alpha double precision,
	a double precision,
	b double precision,
	log_likelihood double precision,
	customers double precision,
	converged boolean
);
COMMENT ON TYPE post_purchase.bgnbd_model IS
	'a fitted BG/NBD model: purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b), in the time unit of its data';

CREATE TYPE post_purchase.gamma_gamma_model AS (
	p double precision,
	q double precision,
	v double precision,
	log_likelihood double precision,
	customers double precision,
	converged boolean
);
COMMENT ON TYPE post_purchase.gamma_gamma_model IS
	'a fitted Gamma-Gamma spend model (shape p, population q and v)';

CREATE FUNCTION post_purchase.model_fit_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION post_purchase.bgnbd_fit_accum(internal, double precision, double precision, double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.bgnbd_fit_accum(internal, double precision, double precision, double precision,
											  double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.bgnbd_fit_final(internal) RETURNS post_purchase.bgnbd_model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.bgnbd_fit(frequency double precision, recency double precision,
										 t double precision) (
	SFUNC = post_purchase.bgnbd_fit_accum,
	STYPE = internal,
	FINALFUNC = post_purchase.bgnbd_fit_final,
	COMBINEFUNC = post_purchase.model_fit_combine,
	SERIALFUNC = post_purchase.model_fit_serialize,
	DESERIALFUNC = post_purchase.model_fit_deserialize,
	PARALLEL = SAFE
);
CREATE AGGREGATE post_purchase.bgnbd_fit(frequency double precision, recency double precision,
										 t double precision, weight double precision) (
	SFUNC = post_purchase.bgnbd_fit_accum,
	STYPE = internal,
	FINALFUNC = post_purchase.bgnbd_fit_final,
	COMBINEFUNC = post_purchase.model_fit_combine,
	SERIALFUNC = post_purchase.model_fit_serialize,
	DESERIALFUNC = post_purchase.model_fit_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.bgnbd_fit(double precision, double precision, double precision) IS
	'maximum-likelihood BG/NBD fit over customer summaries (frequency, recency, t)';
COMMENT ON AGGREGATE post_purchase.bgnbd_fit(double precision, double precision, double precision, double precision) IS
	'maximum-likelihood BG/NBD fit over weighted customer summaries';

CREATE FUNCTION post_purchase.bgnbd_p_alive(model post_purchase.bgnbd_model, frequency double precision,
											recency double precision, t double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.bgnbd_p_alive(post_purchase.bgnbd_model, double precision, double precision, double precision) IS
	'probability that the customer is still active at t';

CREATE FUNCTION post_purchase.bgnbd_expected_purchases(model post_purchase.bgnbd_model, frequency double precision,
													   recency double precision, t double precision,
													   horizon double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.bgnbd_expected_purchases(post_purchase.bgnbd_model, double precision, double precision, double precision, double precision) IS
	'expected repeat purchases of the customer in (t, t + horizon]';

CREATE FUNCTION post_purchase.bgnbd_expected_purchases(model post_purchase.bgnbd_model, horizon double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME', 'bgnbd_expected_purchases_population' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.bgnbd_expected_purchases(post_purchase.bgnbd_model, double precision) IS
	'expected repeat purchases of a new customer in its first horizon time units, E[X(t)]';

CREATE FUNCTION post_purchase.bgnbd_probability_of_purchases(model post_purchase.bgnbd_model, t double precision,
															 n integer)
	RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.bgnbd_probability_of_purchases(post_purchase.bgnbd_model, double precision, integer) IS
	'probability that a new customer makes exactly n repeat purchases in t time units, P(X(t) = n)';

CREATE FUNCTION post_purchase.gamma_gamma_fit_accum(internal, double precision, double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.gamma_gamma_fit_accum(internal, double precision, double precision, double precision)
	RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.gamma_gamma_fit_final(internal) RETURNS post_purchase.gamma_gamma_model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.gamma_gamma_fit(frequency double precision, monetary_value double precision) (
	SFUNC = post_purchase.gamma_gamma_fit_accum,
	STYPE = internal,
	FINALFUNC = post_purchase.gamma_gamma_fit_final,
	COMBINEFUNC = post_purchase.model_fit_combine,
	SERIALFUNC = post_purchase.model_fit_serialize,
	DESERIALFUNC = post_purchase.model_fit_deserialize,
	PARALLEL = SAFE
);
CREATE AGGREGATE post_purchase.gamma_gamma_fit(frequency double precision, monetary_value double precision,
											   weight double precision) (
	SFUNC = post_purchase.gamma_gamma_fit_accum,
	STYPE = internal,
	FINALFUNC = post_purchase.gamma_gamma_fit_final,
	COMBINEFUNC = post_purchase.model_fit_combine,
	SERIALFUNC = post_purchase.model_fit_serialize,
	DESERIALFUNC = post_purchase.model_fit_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE post_purchase.gamma_gamma_fit(double precision, double precision) IS
	'maximum-likelihood Gamma-Gamma fit over the repeat buyers (frequency > 0) and their mean repeat spend';
COMMENT ON AGGREGATE post_purchase.gamma_gamma_fit(double precision, double precision, double precision) IS
	'maximum-likelihood Gamma-Gamma fit over weighted repeat buyers';

CREATE FUNCTION post_purchase.gamma_gamma_expected_value(model post_purchase.gamma_gamma_model,
														 frequency double precision,
														 monetary_value double precision)
	RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.gamma_gamma_expected_value(post_purchase.gamma_gamma_model, double precision, double precision) IS
	'expected mean spend per purchase of the customer';

CREATE FUNCTION post_purchase.clv(bgnbd post_purchase.bgnbd_model, gamma_gamma post_purchase.gamma_gamma_model,
								  frequency double precision, recency double precision, t double precision,
								  monetary_value double precision, months integer, discount_rate double precision,
								  unit interval DEFAULT '1 day')
	RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.clv(post_purchase.bgnbd_model, post_purchase.gamma_gamma_model, double precision, double precision, double precision, double precision, integer, double precision, interval) IS
	'discounted expected spend over the next months (30 days each); unit is the time unit of recency and t';

CREATE FUNCTION post_purchase.bgnbd_simulate(model post_purchase.bgnbd_model, customers integer,
											 t double precision, seed bigint DEFAULT 0)
	RETURNS TABLE (customer integer, frequency double precision, recency double precision,
				   t double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION post_purchase.bgnbd_simulate(post_purchase.bgnbd_model, integer, double precision, bigint) IS
	'customers drawn from a BG/NBD model and observed for t time units, reproducible by seed';
-- Customer state kept current by a trigger on the shop's orders table
-- (src/tracking.c).  One orders table is tracked at a time.

CREATE TABLE post_purchase.settings (
	name text PRIMARY KEY,
	value text NOT NULL,
	description text NOT NULL
);
COMMENT ON TABLE post_purchase.settings IS 'post_purchase configuration, one row per setting';
INSERT INTO post_purchase.settings VALUES
	('time_zone', 'UTC', 'the shop''s time zone: orders on one calendar day of this zone are one purchase');

CREATE TABLE post_purchase.tracked_orders (
	orders regclass PRIMARY KEY,
	customer_column name NOT NULL,
	ordered_at_column name NOT NULL,
	amount_column name NOT NULL,
	time_zone text NOT NULL,
	backfilled boolean NOT NULL,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.tracked_orders IS 'the shop''s orders table that track_orders attached its trigger to';

-- One row per customer and purchase day: the state the trigger can update and
-- undo exactly, whatever order inserts, updates and deletes come in.
CREATE TABLE post_purchase.customer_days (
	customer_id text NOT NULL,
	day date NOT NULL,
	orders bigint NOT NULL,
	revenue numeric NOT NULL,
	first_at timestamptz NOT NULL,
	last_at timestamptz NOT NULL,
	PRIMARY KEY (customer_id, day)
);
COMMENT ON TABLE post_purchase.customer_days IS 'tracked orders per customer and calendar day (in the shop''s time zone)';

CREATE TABLE post_purchase.customer_state (
	customer_id text PRIMARY KEY,
	orders bigint NOT NULL,
	revenue numeric NOT NULL,
	first_order_at timestamptz NOT NULL,
	last_order_at timestamptz NOT NULL,
	purchase_days bigint NOT NULL,
	first_day date NOT NULL,
	last_day date NOT NULL,
	first_day_revenue numeric NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.customer_state IS 'per customer: orders, revenue, first and last order, purchase days; kept by the order trigger';

CREATE FUNCTION post_purchase.track_orders_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.track_orders_trigger() FROM PUBLIC;

-- TRUNCATE of the orders table empties the state with it.
CREATE FUNCTION post_purchase.track_orders_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_days;
	DELETE FROM post_purchase.customer_state;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.track_orders_truncate() FROM PUBLIC;

-- The query of every customer's purchase days, recomputed from the orders
-- table: what the trigger keeps incrementally in customer_days.  Shared by
-- the backfill, which runs it directly, and by verify_state().  Grouped by
-- the customer's text in the "C" collation, the byte equality the trigger
-- keys on, and sorted that way: the backfill then inserts in primary key
-- order, each index entry going to the rightmost leaf instead of to a
-- random page (the random inserts cost three times the rest of the load).
CREATE FUNCTION post_purchase.recomputed_days_query(t post_purchase.tracked_orders)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT pg_catalog.format(
		'SELECT %1$I::pg_catalog.text COLLATE pg_catalog."C", (%2$I AT TIME ZONE %4$L)::pg_catalog.date,
				pg_catalog.count(*), pg_catalog.sum(coalesce(%3$I::pg_catalog.numeric, 0)),
				pg_catalog.min(%2$I), pg_catalog.max(%2$I)
		 FROM ONLY %5$s
		 WHERE %1$I IS NOT NULL AND %2$I IS NOT NULL
		 GROUP BY 1, 2 ORDER BY 1, 2',
		t.customer_column, t.ordered_at_column, t.amount_column, t.time_zone, t.orders)
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_days_query(post_purchase.tracked_orders) FROM PUBLIC;

-- The state of every customer, recomputed from the orders table: what the
-- trigger keeps incrementally.  Used by verify_state().
CREATE FUNCTION post_purchase.recomputed_days()
	RETURNS TABLE (customer_id text, day date, orders bigint, revenue numeric,
				   first_at timestamptz, last_at timestamptz)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t post_purchase.tracked_orders;
BEGIN
	SELECT * INTO t FROM post_purchase.tracked_orders;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE post_purchase.recomputed_days_query(t);
END
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_days() FROM PUBLIC;

-- The customer_state query over a table of customer_days rows, one row per
-- customer, in customer order.  Shared by the backfill and verify_state().
CREATE FUNCTION post_purchase.state_from_days_query(days regclass)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT pg_catalog.format(
		'SELECT d.customer_id, pg_catalog.sum(d.orders)::pg_catalog.int8, pg_catalog.sum(d.revenue),
				pg_catalog.min(d.first_at), pg_catalog.max(d.last_at), pg_catalog.count(*),
				pg_catalog.min(d.day), pg_catalog.max(d.day),
				(pg_catalog.array_agg(d.revenue ORDER BY d.day))[1], pg_catalog.now()
		 FROM %s d GROUP BY d.customer_id ORDER BY d.customer_id', days)
$$;
REVOKE ALL ON FUNCTION post_purchase.state_from_days_query(regclass) FROM PUBLIC;

-- customer_state rows from a table of customer_days rows, one per customer.
CREATE FUNCTION post_purchase.state_from_days(days regclass)
	RETURNS SETOF post_purchase.customer_state
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN QUERY EXECUTE post_purchase.state_from_days_query(days);
END
$$;
REVOKE ALL ON FUNCTION post_purchase.state_from_days(regclass) FROM PUBLIC;

CREATE FUNCTION post_purchase.track_orders(orders regclass,
										   customer_column name DEFAULT 'customer_id',
										   ordered_at_column name DEFAULT 'ordered_at',
										   amount_column name DEFAULT 'amount',
										   backfill boolean DEFAULT true)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	-- the backfill groups a million orders in a sort, not a hash table of
	-- a million groups: its output is sorted as the inserts want it anyway
	SET enable_hashagg = off
	AS $$
DECLARE
	tracked regclass;
	zone text;
	column_type regtype;
	bad_customer text;
BEGIN
	-- the backfill must see every order committed before the lock: a
	-- transaction snapshot taken before it would miss some
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_orders() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT t.orders INTO tracked FROM post_purchase.tracked_orders t;
	IF FOUND THEN
		RAISE EXCEPTION 'post_purchase already tracks %', tracked
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_orders() first; one orders table is tracked at a time.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = orders) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', orders USING ERRCODE = 'wrong_object_type';
	END IF;

	-- every column must exist with a type the trigger understands
	column_type := post_purchase.tracked_column_type(orders, customer_column, 'customer',
		ARRAY['bigint', 'integer', 'uuid', 'text', 'character varying']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, ordered_at_column, 'ordered_at',
		ARRAY['timestamp with time zone']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, amount_column, 'amount',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);

	SELECT s.value INTO zone FROM post_purchase.settings s WHERE s.name = 'time_zone';
	PERFORM now() AT TIME ZONE zone;	-- a valid zone name, or an error here

	-- no order may change between the backfill and the trigger taking over
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', orders);
	INSERT INTO post_purchase.tracked_orders
		VALUES (orders, customer_column, ordered_at_column, amount_column, zone, backfill);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L)',
				   orders, customer_column, ordered_at_column, amount_column, zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_orders_truncate()', orders);

	IF backfill THEN
		-- set-based and executed directly: a set-returning function in
		-- between would first copy every row into a tuplestore
		EXECUTE 'INSERT INTO post_purchase.customer_days '
			|| post_purchase.recomputed_days_query((SELECT t FROM post_purchase.tracked_orders t));
		-- the days come out in primary key order: the customers' totals
		-- aggregate them as they are read, and go in in key order too
		EXECUTE 'INSERT INTO post_purchase.customer_state '
			|| post_purchase.state_from_days_query('post_purchase.customer_days');
		-- a NaN or infinite day makes its customer's revenue one as well:
		-- checking the customers reads a tenth of the rows
		SELECT s.customer_id INTO bad_customer FROM post_purchase.customer_state s
		WHERE s.revenue IN ('NaN', 'Infinity', '-Infinity') LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'orders of customer % have a NaN or infinite amount', bad_customer
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.track_orders(regclass, name, name, name, boolean) IS
	'attach the order trigger to the shop''s orders table and backfill the customer state from it';
REVOKE ALL ON FUNCTION post_purchase.track_orders(regclass, name, name, name, boolean) FROM PUBLIC;

-- The type of a tracked column, checked against the types allowed for it.
CREATE FUNCTION post_purchase.tracked_column_type(orders regclass, column_name name, role text,
												  allowed regtype[])
	RETURNS regtype
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	found_type regtype;
BEGIN
	SELECT a.atttypid INTO found_type FROM pg_attribute a
	WHERE a.attrelid = orders AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of % does not exist', column_name, orders
			USING ERRCODE = 'undefined_column',
				  HINT = format('Name the %s column in the call: %s_column => ...', role, role);
	END IF;
	IF allowed IS NOT NULL AND NOT found_type = ANY (allowed) THEN
		RAISE EXCEPTION 'column "%" of % has type %, which cannot be the % column', column_name, orders, found_type, role
			USING ERRCODE = 'datatype_mismatch',
				  DETAIL = format('The %s column must be one of: %s.', role, array_to_string(allowed, ', '));
	END IF;
	RETURN found_type;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.tracked_column_type(regclass, name, text, regtype[]) FROM PUBLIC;

CREATE FUNCTION post_purchase.untrack_orders(orders regclass)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	items regclass;
BEGIN
	-- items cannot be tracked without their orders
	SELECT i.items INTO items FROM post_purchase.tracked_order_items i;
	IF FOUND AND EXISTS (SELECT FROM post_purchase.tracked_orders t WHERE t.orders = untrack_orders.orders) THEN
		PERFORM post_purchase.untrack_order_items(items);
	END IF;
	DELETE FROM post_purchase.tracked_orders t WHERE t.orders = untrack_orders.orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase does not track %', orders
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('DROP TRIGGER post_purchase_track_orders ON %s', orders);
	EXECUTE format('DROP TRIGGER post_purchase_track_orders_truncate ON %s', orders);
	-- state nobody keeps current any more would mislead
	DELETE FROM post_purchase.customer_days;
	DELETE FROM post_purchase.customer_state;
	UPDATE post_purchase.segment_memberships m SET exited_at = GREATEST(now(), m.entered_at) WHERE m.exited_at IS NULL;
END
$$;
COMMENT ON FUNCTION post_purchase.untrack_orders(regclass) IS
	'remove the order trigger and the customer state built from the table';
REVOKE ALL ON FUNCTION post_purchase.untrack_orders(regclass) FROM PUBLIC;

-- Every difference between the state the trigger kept and the state
-- recomputed from the orders table; empty when all is well.
CREATE FUNCTION post_purchase.verify_state()
	RETURNS TABLE (customer_id text, day date, field text, expected text, actual text)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS pg_temp.post_purchase_expected_days
		(LIKE post_purchase.customer_days) ON COMMIT DROP;
	TRUNCATE pg_temp.post_purchase_expected_days;
	INSERT INTO pg_temp.post_purchase_expected_days SELECT * FROM post_purchase.recomputed_days();

	RETURN QUERY
	SELECT coalesce(e.customer_id, a.customer_id), coalesce(e.day, a.day), f.field, f.expected, f.actual
	FROM pg_temp.post_purchase_expected_days e
	FULL JOIN post_purchase.customer_days a ON a.customer_id = e.customer_id AND a.day = e.day
	CROSS JOIN LATERAL (VALUES
		('orders', e.orders::text, a.orders::text),
		('revenue', e.revenue::text, a.revenue::text),
		('first_at', e.first_at::text, a.first_at::text),
		('last_at', e.last_at::text, a.last_at::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	UNION ALL
	SELECT coalesce(e.customer_id, a.customer_id), NULL::date, f.field, f.expected, f.actual
	FROM post_purchase.state_from_days('pg_temp.post_purchase_expected_days') e
	FULL JOIN post_purchase.customer_state a ON a.customer_id = e.customer_id
	CROSS JOIN LATERAL (VALUES
		('orders', e.orders::text, a.orders::text),
		('revenue', e.revenue::text, a.revenue::text),
		('first_order_at', e.first_order_at::text, a.first_order_at::text),
		('last_order_at', e.last_order_at::text, a.last_order_at::text),
		('purchase_days', e.purchase_days::text, a.purchase_days::text),
		('first_day', e.first_day::text, a.first_day::text),
		('last_day', e.last_day::text, a.last_day::text),
		('first_day_revenue', e.first_day_revenue::text, a.first_day_revenue::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	UNION ALL
	SELECT coalesce(e.customer_id, a.customer_id), coalesce(e.day, a.day),
		   format('order %s product %s: %s', coalesce(e.order_key, a.order_key),
				  coalesce(e.product_id, a.product_id), f.field),
		   f.expected, f.actual
	FROM post_purchase.recomputed_product_orders() e
	FULL JOIN post_purchase.customer_product_orders a ON a.order_key = e.order_key AND a.product_id = e.product_id
	CROSS JOIN LATERAL (VALUES
		('customer_id', e.customer_id, a.customer_id),
		('ordered_at', e.ordered_at::text, a.ordered_at::text),
		('quantity', e.quantity::text, a.quantity::text),
		('items', e.items::text, a.items::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION post_purchase.verify_state() IS
	'every difference between the tracked customer state and the state recomputed from the orders; empty when exact';
REVOKE ALL ON FUNCTION post_purchase.verify_state() FROM PUBLIC;
-- The customer_metrics view, the models it scores with, and the RFM cut
-- points its scores use.  Reading one customer is an index lookup on
-- customer_state; predictions are stored by refresh_models() and computed
-- live only for customers whose state changed since.

INSERT INTO post_purchase.settings VALUES
	('at_risk_after_days', '90', 'lifecycle: a customer with no order for this many days is at_risk'),
	('lapsed_after_days', '180', 'lifecycle: a customer with no order for this many days is lapsed'),
	('vip_share', '0.10', 'lifecycle and the vip segment: the top share of customers by predicted clv_12m'),
	('clv_monthly_discount', '0.01', 'monthly discount rate of clv_12m'),
	('today', '', 'if set (YYYY-MM-DD), the date metrics are computed as of, instead of today: for replays and tests');

-- A setting's value.  These small SQL functions qualify every name instead
-- of setting search_path, so that the planner can inline them: with constant
-- arguments they then run once per query, not once per row.
CREATE FUNCTION post_purchase.setting(setting_name text) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT s.value FROM post_purchase.settings s WHERE s.name OPERATOR(pg_catalog.=) setting_name$$;

-- Today in the shop's time zone, or the "today" setting when it is set.
CREATE FUNCTION post_purchase.shop_today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT COALESCE(NULLIF(post_purchase.setting('today'), '')::pg_catalog.date,
								   (pg_catalog.now() AT TIME ZONE post_purchase.setting('time_zone'))::pg_catalog.date)$$;

CREATE TABLE post_purchase.models (
	model_id bigserial PRIMARY KEY,
	fitted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	customers bigint NOT NULL,
	bgnbd post_purchase.bgnbd_model NOT NULL,
	gamma_gamma post_purchase.gamma_gamma_model,
	vip_clv_cut double precision
);
COMMENT ON TABLE post_purchase.models IS
	'BG/NBD and Gamma-Gamma models fitted by refresh_models(), in days; customer_metrics uses the newest converged one';

CREATE TABLE post_purchase.customer_predictions (
	customer_id text PRIMARY KEY,
	model_id bigint NOT NULL REFERENCES post_purchase.models ON DELETE CASCADE,
	predicted_at timestamptz NOT NULL,
	p_alive double precision,
	expected_purchases_90d double precision,
	clv_12m double precision
);
COMMENT ON TABLE post_purchase.customer_predictions IS
	'predictions of every customer under a model, stored by refresh_models()';

CREATE TABLE post_purchase.rfm_cuts (
	computed_at timestamptz PRIMARY KEY DEFAULT pg_catalog.now(),
	recency_cuts double precision[] NOT NULL,
	frequency_cuts double precision[] NOT NULL,
	monetary_cuts double precision[] NOT NULL
);
COMMENT ON TABLE post_purchase.rfm_cuts IS
	'quintile cut points of days since the last order, purchase days and revenue, computed by refresh_segments()';

-- Each customer in the BTYD conventions, in days, as of today: the inputs of
-- the models.  An order dated in the future counts from its own day.
CREATE VIEW post_purchase.customer_summaries AS
SELECT s.customer_id,
	   (s.purchase_days - 1)::double precision AS frequency,
	   (s.last_day - s.first_day)::double precision AS recency,
	   (GREATEST(today.day, s.last_day) - s.first_day)::double precision AS t,
	   CASE WHEN s.purchase_days > 1
			THEN pg_catalog.trim_scale((s.revenue - s.first_day_revenue) / (s.purchase_days - 1)) ELSE 0 END
		   AS monetary_value,
	   today.day - s.last_day AS days_since_last_order
FROM post_purchase.customer_state s
CROSS JOIN (SELECT post_purchase.shop_today() AS day) today;

-- clv_12m under a model, NULL where Gamma-Gamma does not apply (no model, or
-- a repeat buyer whose refunds outweigh the purchases).  Inlinable.
CREATE FUNCTION post_purchase.predicted_clv_12m(m post_purchase.models, frequency double precision,
												recency double precision, t double precision,
												monetary_value numeric, monthly_discount double precision)
	RETURNS double precision
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT CASE WHEN m.gamma_gamma IS NOT NULL
				 AND (frequency OPERATOR(pg_catalog.=) 0 OR monetary_value OPERATOR(pg_catalog.>) 0)
			THEN post_purchase.clv(m.bgnbd, m.gamma_gamma, frequency, recency, t,
								   monetary_value::pg_catalog.float8, 12, monthly_discount, '1 day') END
$$;

CREATE VIEW post_purchase.customer_metrics AS
SELECT s.customer_id,
	   s.orders,
	   s.first_order_at,
	   s.last_order_at,
	   s.revenue,
	   round(s.revenue / s.orders, 2) AS average_order_value,
	   b.frequency::bigint AS frequency,
	   b.recency::integer AS recency_days,
	   b.t::integer AS t_days,
	   b.monetary_value,
	   b.days_since_last_order,
	   pr.p_alive,
	   pr.expected_purchases_90d,
	   pr.clv_12m,
	   sc.r_score,
	   sc.f_score,
	   sc.m_score,
	   post_purchase.rfm_segment(sc.r_score, sc.f_score) AS rfm_segment,
	   CASE WHEN b.days_since_last_order > ctx.lapsed_after_days THEN 'lapsed'
			WHEN b.days_since_last_order > ctx.at_risk_after_days THEN 'at_risk'
			WHEN pr.clv_12m >= m.vip_clv_cut THEN 'vip'
			WHEN s.purchase_days = 1 THEN 'new'
			ELSE 'returning' END AS lifecycle_stage,
	   -- the customer's own cycle: the mean gap between purchase days
	   CASE WHEN s.purchase_days > 1
			THEN s.last_order_at + (s.last_day - s.first_day) * interval '1 day' / (s.purchase_days - 1) END
		   AS next_replenishment_due,
	   m.model_id
FROM post_purchase.customer_state s
JOIN post_purchase.customer_summaries b ON b.customer_id = s.customer_id
CROSS JOIN (SELECT post_purchase.setting('lapsed_after_days')::integer AS lapsed_after_days,
				   post_purchase.setting('at_risk_after_days')::integer AS at_risk_after_days,
				   post_purchase.setting('clv_monthly_discount')::float8 AS monthly_discount) ctx
LEFT JOIN LATERAL (SELECT * FROM post_purchase.models m WHERE (m.bgnbd).converged
				   ORDER BY m.model_id DESC LIMIT 1) m ON true
-- stored predictions count only when made after the customer's last change
LEFT JOIN post_purchase.customer_predictions p
	   ON p.customer_id = s.customer_id AND p.model_id = m.model_id AND p.predicted_at >= s.updated_at
LEFT JOIN LATERAL (SELECT c.* FROM post_purchase.rfm_cuts c ORDER BY c.computed_at DESC LIMIT 1) c ON true
CROSS JOIN LATERAL (
	SELECT CASE WHEN p.customer_id IS NOT NULL THEN p.p_alive
				WHEN m.model_id IS NOT NULL THEN post_purchase.bgnbd_p_alive(m.bgnbd, b.frequency, b.recency, b.t)
		   END AS p_alive,
		   CASE WHEN p.customer_id IS NOT NULL THEN p.expected_purchases_90d
				WHEN m.model_id IS NOT NULL
				THEN post_purchase.bgnbd_expected_purchases(m.bgnbd, b.frequency, b.recency, b.t, 90)
		   END AS expected_purchases_90d,
		   CASE WHEN p.customer_id IS NOT NULL THEN p.clv_12m
				WHEN m.model_id IS NOT NULL
				THEN post_purchase.predicted_clv_12m(m, b.frequency, b.recency, b.t, b.monetary_value,
													 ctx.monthly_discount)
		   END AS clv_12m
	OFFSET 0) pr	-- computed once per customer, though clv_12m is used twice
CROSS JOIN LATERAL (
	SELECT 6 - post_purchase.rfm_score(b.days_since_last_order, c.recency_cuts) AS r_score,
		   post_purchase.rfm_score(s.purchase_days, c.frequency_cuts) AS f_score,
		   post_purchase.rfm_score(s.revenue::float8, c.monetary_cuts) AS m_score) sc;
COMMENT ON VIEW post_purchase.customer_metrics IS
	'one row per tracked customer: totals, BTYD summary in days, predictions of the newest model, RFM scores and segment, lifecycle stage';

-- Fit both models on the current state and store every customer's predictions.
CREATE FUNCTION post_purchase.refresh_models() RETURNS post_purchase.models
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fitted post_purchase.models;
BEGIN
	INSERT INTO post_purchase.models (customers, bgnbd, gamma_gamma)
	SELECT count(*),
		   post_purchase.bgnbd_fit(s.frequency, s.recency, s.t),
		   post_purchase.gamma_gamma_fit(s.frequency, s.monetary_value::float8)
			   FILTER (WHERE s.monetary_value > 0)
	FROM post_purchase.customer_summaries s
	HAVING count(*) > 0
	RETURNING * INTO fitted;
	IF NOT FOUND THEN
		RETURN NULL;			-- no customer yet: nothing to fit (the workers call this on a schedule)
	END IF;
	IF NOT (fitted.bgnbd).converged THEN
		RAISE WARNING 'the BG/NBD fit did not converge; customer_metrics keeps using the previous model';
		RETURN fitted;
	END IF;
	IF fitted.gamma_gamma IS NOT NULL AND NOT (fitted.gamma_gamma).converged THEN
		RAISE WARNING 'the Gamma-Gamma fit did not converge; clv_12m stays empty under this model';
		UPDATE post_purchase.models m SET gamma_gamma = NULL WHERE m.model_id = fitted.model_id;
		fitted.gamma_gamma := NULL;
	END IF;

	INSERT INTO post_purchase.customer_predictions AS p
	SELECT s.customer_id, fitted.model_id, now(),
		   post_purchase.bgnbd_p_alive(fitted.bgnbd, s.frequency, s.recency, s.t),
		   post_purchase.bgnbd_expected_purchases(fitted.bgnbd, s.frequency, s.recency, s.t, 90),
		   post_purchase.predicted_clv_12m(fitted, s.frequency, s.recency, s.t, s.monetary_value,
										   post_purchase.setting('clv_monthly_discount')::float8)
	FROM post_purchase.customer_summaries s
	ON CONFLICT (customer_id) DO UPDATE SET
		model_id = excluded.model_id, predicted_at = excluded.predicted_at, p_alive = excluded.p_alive,
		expected_purchases_90d = excluded.expected_purchases_90d, clv_12m = excluded.clv_12m;

	UPDATE post_purchase.models m
	SET vip_clv_cut = (SELECT percentile_cont(1 - post_purchase.setting('vip_share')::float8)
							  WITHIN GROUP (ORDER BY p.clv_12m)
					   FROM post_purchase.customer_predictions p WHERE p.clv_12m IS NOT NULL)
	WHERE m.model_id = fitted.model_id
	RETURNING * INTO fitted;
	RETURN fitted;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_models() IS
	'fit BG/NBD and Gamma-Gamma (in days) on the current customer state, store the model and every customer''s predictions';
REVOKE ALL ON FUNCTION post_purchase.refresh_models() FROM PUBLIC;

-- Recompute the RFM quintile cut points (time moves customers between them).
CREATE FUNCTION post_purchase.refresh_rfm_cuts() RETURNS post_purchase.rfm_cuts
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	cuts post_purchase.rfm_cuts;
BEGIN
	INSERT INTO post_purchase.rfm_cuts (computed_at, recency_cuts, frequency_cuts, monetary_cuts)
	SELECT now(),
		   percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY s.days_since_last_order::float8),
		   percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY s.frequency + 1),
		   percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY c.revenue::float8)
	FROM post_purchase.customer_summaries s JOIN post_purchase.customer_state c USING (customer_id)
	HAVING count(*) > 0
	ON CONFLICT (computed_at) DO UPDATE SET recency_cuts = excluded.recency_cuts,
		frequency_cuts = excluded.frequency_cuts, monetary_cuts = excluded.monetary_cuts
	RETURNING * INTO cuts;
	RETURN cuts;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.refresh_rfm_cuts() FROM PUBLIC;
-- Segments: named rules over customer_metrics, with a membership history
-- that journeys react to.  Orders change memberships in their own
-- transaction (the order trigger calls refresh_customer_segments); the
-- passage of time changes them through refresh_segments().

CREATE TABLE post_purchase.segments (
	name text PRIMARY KEY CHECK (name <> '' AND length(name) <= 100),
	rule text NOT NULL,
	builtin boolean NOT NULL DEFAULT false,
	owner regrole NOT NULL DEFAULT current_user::regrole,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.segments IS
	'segments: a boolean SQL expression over the columns of customer_metrics';

CREATE TABLE post_purchase.segment_memberships (
	customer_id text NOT NULL,
	segment text NOT NULL REFERENCES post_purchase.segments ON DELETE CASCADE ON UPDATE CASCADE,
	entered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	exited_at timestamptz,
	CHECK (exited_at >= entered_at)
);
-- one open membership per customer and segment, found by customer (the
-- order trigger, in_segment) or by segment (segment_members, refreshes)
CREATE UNIQUE INDEX segment_memberships_open ON post_purchase.segment_memberships (customer_id, segment)
	WHERE exited_at IS NULL;
CREATE INDEX segment_memberships_open_by_segment ON post_purchase.segment_memberships (segment)
	WHERE exited_at IS NULL;
COMMENT ON TABLE post_purchase.segment_memberships IS
	'who entered and left each segment when; an open membership has no exited_at';

CREATE FUNCTION post_purchase.parse_segment_rule(rule text, what text) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION post_purchase.parse_segment_rule(text, text) FROM PUBLIC;

-- A rule must be one boolean expression over customer_metrics: parse it (no
-- second statement or clause may ride along), then plan it, so typos and
-- unknown columns fail at creation.  Journey step conditions are checked
-- the same way; what names the rule in messages.
CREATE FUNCTION post_purchase.check_segment_rule(rule text, what text DEFAULT 'segment rule') RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF rule IS NULL OR btrim(rule) = '' THEN
		RAISE EXCEPTION 'a % must not be empty', what USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM post_purchase.parse_segment_rule(rule, what);
	BEGIN
		EXECUTE format('SELECT (%s)::boolean FROM post_purchase.customer_metrics LIMIT 0', rule);
	EXCEPTION WHEN syntax_error OR undefined_column OR undefined_function OR datatype_mismatch
			  OR cannot_coerce OR undefined_table OR ambiguous_column THEN
		RAISE EXCEPTION 'invalid %: %', what, SQLERRM
			USING ERRCODE = SQLSTATE,
				  DETAIL = format('The rule was: %s', rule),
				  HINT = format('A %s is a boolean SQL expression over the columns of post_purchase.customer_metrics.', what);
	END;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_segment_rule(text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.create_segment(name text, rule text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF EXISTS (SELECT FROM post_purchase.segments s WHERE s.name = create_segment.name) THEN
		RAISE EXCEPTION 'segment "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Use post_purchase.set_segment_rule() to change its rule.';
	END IF;
	PERFORM post_purchase.check_segment_rule(rule);
	INSERT INTO post_purchase.segments (name, rule) VALUES (name, rule);
END
$$;
COMMENT ON FUNCTION post_purchase.create_segment(text, text) IS
	'create a segment from a boolean SQL expression over customer_metrics; refresh_segments() fills it';
REVOKE ALL ON FUNCTION post_purchase.create_segment(text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.set_segment_rule(name text, rule text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	PERFORM post_purchase.check_segment_rule(rule);
	UPDATE post_purchase.segments s SET rule = set_segment_rule.rule WHERE s.name = set_segment_rule.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'segment "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.set_segment_rule(text, text) IS
	'change the rule of a segment (built-in ones too); refresh_segments() applies it';
REVOKE ALL ON FUNCTION post_purchase.set_segment_rule(text, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.drop_segment(name text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	journey text;
BEGIN
	SELECT j.name INTO journey FROM post_purchase.journeys j WHERE j.segment = drop_segment.name
	UNION ALL
	SELECT s.journey FROM post_purchase.journey_steps s WHERE s.segment = drop_segment.name
	LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'segment "%" is used by journey "%"', name, journey
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Drop the journey first, or change it to use another segment.';
	END IF;
	DELETE FROM post_purchase.segments s WHERE s.name = drop_segment.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'segment "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.drop_segment(text) IS 'drop a segment and its membership history';
REVOKE ALL ON FUNCTION post_purchase.drop_segment(text) FROM PUBLIC;

-- Inlinable: an index lookup on the open memberships.
CREATE FUNCTION post_purchase.in_segment(customer_id text, segment text) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT EXISTS (SELECT FROM post_purchase.segment_memberships m
				   WHERE m.segment OPERATOR(pg_catalog.=) in_segment.segment
					 AND m.customer_id OPERATOR(pg_catalog.=) in_segment.customer_id
					 AND m.exited_at IS NULL)
$$;
COMMENT ON FUNCTION post_purchase.in_segment(text, text) IS 'whether the customer is in the segment now';

CREATE FUNCTION post_purchase.segment_members(segment text) RETURNS SETOF text
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT m.customer_id FROM post_purchase.segment_memberships m
	WHERE m.segment OPERATOR(pg_catalog.=) segment_members.segment AND m.exited_at IS NULL
$$;
COMMENT ON FUNCTION post_purchase.segment_members(text) IS 'the customers in the segment now';

-- Bring every segment's memberships up to date (time moves customers), and
-- the RFM cut points first.  Returns the entries and exits per segment.
CREATE FUNCTION post_purchase.refresh_segments()
	RETURNS TABLE (segment text, entered bigint, exited bigint)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	seg post_purchase.segments;
BEGIN
	PERFORM post_purchase.refresh_rfm_cuts();
	-- every rule reads the same customer_metrics: compute it once
	CREATE TEMP TABLE customer_metrics ON COMMIT DROP AS SELECT * FROM post_purchase.customer_metrics;
	-- statistics that lag behind a freshly filled membership table make the
	-- planner loop over the members for every membership: minutes, not seconds
	ANALYZE pg_temp.customer_metrics;
	ANALYZE post_purchase.segment_memberships;
	-- each rule runs as its segment's owner, who reads this table only
	FOR seg IN SELECT DISTINCT ON (s.owner) * FROM post_purchase.segments s LOOP
		-- a regrole's text is already a quoted identifier
		EXECUTE format('GRANT SELECT ON pg_temp.customer_metrics TO %s', seg.owner);
	END LOOP;
	FOR seg IN SELECT * FROM post_purchase.segments s ORDER BY s.name LOOP
		segment := seg.name;
		-- EXECUTE: planned for each segment with the statistics just taken
		EXECUTE
			'WITH members AS MATERIALIZED (SELECT x.customer_id
										  FROM post_purchase.segment_rule_members($2, $3) x(customer_id)),
			 exits AS (UPDATE post_purchase.segment_memberships m SET exited_at = GREATEST(now(), m.entered_at)
					   WHERE m.segment = $1 AND m.exited_at IS NULL
						 AND NOT EXISTS (SELECT FROM members x WHERE x.customer_id = m.customer_id)
					   RETURNING 1),
			 entries AS (INSERT INTO post_purchase.segment_memberships (customer_id, segment)
						 SELECT x.customer_id, $1 FROM members x
						 WHERE NOT EXISTS (SELECT FROM post_purchase.segment_memberships m
										   WHERE m.segment = $1 AND m.customer_id = x.customer_id
											 AND m.exited_at IS NULL)
						 RETURNING 1)
			 SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM exits)'
		INTO entered, exited USING seg.name, seg.owner, seg.rule;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.customer_metrics;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_segments() IS
	'recompute RFM cut points and every segment''s members, recording entries and exits';
REVOKE ALL ON FUNCTION post_purchase.refresh_segments() FROM PUBLIC;

-- One customer's memberships after an order changed the customer, in the
-- order's transaction (src/segments.c); called by the order trigger.
CREATE FUNCTION post_purchase.refresh_customer_segments(customer text) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.refresh_customer_segments(text) FROM PUBLIC;

-- The customers of refresh_segments()' temporary metrics for whom a rule
-- holds, evaluated as the segment's owner (src/segments.c).
CREATE FUNCTION post_purchase.segment_rule_members(owner regrole, rule text) RETURNS SETOF text
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.segment_rule_members(regrole, text) FROM PUBLIC;

-- Any change to the segments makes every backend re-plan the rules.
CREATE FUNCTION post_purchase.segments_changed() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C;
REVOKE ALL ON FUNCTION post_purchase.segments_changed() FROM PUBLIC;
CREATE TRIGGER segments_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON post_purchase.segments
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.segments_changed();

-- The built-in segments, adjustable with set_segment_rule().
INSERT INTO post_purchase.segments (name, rule, builtin) VALUES
	('lifecycle_new', 'lifecycle_stage = ''new''', true),
	('lifecycle_returning', 'lifecycle_stage = ''returning''', true),
	('lifecycle_vip', 'lifecycle_stage = ''vip''', true),
	('lifecycle_at_risk', 'lifecycle_stage = ''at_risk''', true),
	('lifecycle_lapsed', 'lifecycle_stage = ''lapsed''', true),
	('Champions', 'rfm_segment = ''Champions''', true),
	('Loyal Customers', 'rfm_segment = ''Loyal Customers''', true),
	('Potential Loyalists', 'rfm_segment = ''Potential Loyalists''', true),
	('New Customers', 'rfm_segment = ''New Customers''', true),
	('Promising', 'rfm_segment = ''Promising''', true),
	('Need Attention', 'rfm_segment = ''Need Attention''', true),
	('About to Sleep', 'rfm_segment = ''About to Sleep''', true),
	('At Risk', 'rfm_segment = ''At Risk''', true),
	('Can''t Lose Them', 'rfm_segment = ''Can''''t Lose Them''', true),
	('Hibernating', 'rfm_segment = ''Hibernating''', true),
	('vip', 'clv_12m >= (SELECT m.vip_clv_cut FROM post_purchase.models m WHERE (m.bgnbd).converged ORDER BY m.model_id DESC LIMIT 1)', true),
	('win_back', 'orders >= 2 AND days_since_last_order >= 180', true);
-- Customer x product state from the shop's order items (src/order_items.c),
-- and the per-product replenishment due dates it gives.

CREATE TABLE post_purchase.products (
	product_id text PRIMARY KEY,
	name text,
	days_per_unit numeric CHECK (days_per_unit > 0 AND days_per_unit < 'Infinity')
);
COMMENT ON TABLE post_purchase.products IS
	'the shop''s products that run out: days_per_unit is how long one unit lasts (optional)';

CREATE TABLE post_purchase.tracked_order_items (
	items regclass PRIMARY KEY,
	order_column name NOT NULL,
	product_column name NOT NULL,
	quantity_column name NOT NULL,
	orders_key_column name NOT NULL,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.tracked_order_items IS 'the order items table that track_order_items attached its trigger to';

-- Per order and product: the quantity bought (items: how many item rows),
-- with the order's customer, time and calendar day.
CREATE TABLE post_purchase.customer_product_orders (
	order_key text NOT NULL,
	product_id text NOT NULL,
	customer_id text NOT NULL,
	ordered_at timestamptz NOT NULL,
	day date NOT NULL,
	quantity numeric NOT NULL,
	items bigint NOT NULL,
	PRIMARY KEY (order_key, product_id)
);
CREATE INDEX customer_product_orders_customer ON post_purchase.customer_product_orders (customer_id, product_id, day);

-- The median repurchase gap of each product across customers, computed by
-- refresh_product_cycles(): the cycle of last resort.
CREATE TABLE post_purchase.product_cycles (
	product_id text PRIMARY KEY,
	median_gap_days double precision NOT NULL,
	repurchases bigint NOT NULL,
	computed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE FUNCTION post_purchase.track_items_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.track_items_trigger() FROM PUBLIC;

CREATE FUNCTION post_purchase.track_items_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_product_orders;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.track_items_truncate() FROM PUBLIC;

-- customer_product_orders recomputed from the items and orders tables,
-- optionally for one order: the backfill, verify_state() and the repair of
-- an order that becomes tracked (a guest order given a customer).
CREATE FUNCTION post_purchase.recomputed_product_orders(only_order text DEFAULT NULL)
	RETURNS SETOF post_purchase.customer_product_orders
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	o post_purchase.tracked_orders;
	i post_purchase.tracked_order_items;
BEGIN
	SELECT * INTO o FROM post_purchase.tracked_orders;
	SELECT * INTO i FROM post_purchase.tracked_order_items;
	IF o.orders IS NULL OR i.items IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format(
		'SELECT i.%1$I::text, i.%2$I::text, min(o.%5$I::text), min(o.%6$I),
				min((o.%6$I AT TIME ZONE %8$L)::date), sum(coalesce(i.%3$I::numeric, 0)), count(*)
		 FROM ONLY %4$s i JOIN ONLY %7$s o ON o.%9$I = i.%1$I
		 WHERE i.%2$I IS NOT NULL AND o.%5$I IS NOT NULL AND o.%6$I IS NOT NULL
		   AND ($1 IS NULL OR i.%1$I::text = $1)
		 GROUP BY 1, 2',
		i.order_column, i.product_column, i.quantity_column, i.items,
		o.customer_column, o.ordered_at_column, o.orders, o.time_zone, i.orders_key_column)
	USING only_order;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_product_orders(text) FROM PUBLIC;

-- Re-derive one order's item rows (called by the order trigger when an
-- untracked order becomes tracked).
CREATE FUNCTION post_purchase.rebuild_order_items(order_key text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_product_orders p WHERE p.order_key = rebuild_order_items.order_key;
	INSERT INTO post_purchase.customer_product_orders
	SELECT * FROM post_purchase.recomputed_product_orders(rebuild_order_items.order_key);
END
$$;
REVOKE ALL ON FUNCTION post_purchase.rebuild_order_items(text) FROM PUBLIC;

-- The tracked orders' trigger, with the order key column when items are tracked.
CREATE FUNCTION post_purchase.attach_orders_trigger(key_column name) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t post_purchase.tracked_orders;
BEGIN
	SELECT * INTO STRICT t FROM post_purchase.tracked_orders;
	EXECUTE format('DROP TRIGGER post_purchase_track_orders ON %s', t.orders);
	IF key_column IS NULL THEN
		EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
						FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L)',
					   t.orders, t.customer_column, t.ordered_at_column, t.amount_column, t.time_zone);
	ELSE
		EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
						FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L, %L)',
					   t.orders, t.customer_column, t.ordered_at_column, t.amount_column, t.time_zone, key_column);
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.attach_orders_trigger(name) FROM PUBLIC;

CREATE FUNCTION post_purchase.track_order_items(items regclass,
												order_column name DEFAULT 'order_id',
												product_column name DEFAULT 'product_id',
												quantity_column name DEFAULT 'quantity',
												orders_key_column name DEFAULT 'order_id')
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	o post_purchase.tracked_orders;
	column_type regtype;
BEGIN
	-- the backfill must see every order committed before the lock: a
	-- transaction snapshot taken before it would miss some
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_order_items() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT * INTO o FROM post_purchase.tracked_orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'track the orders table first' USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Call post_purchase.track_orders() before post_purchase.track_order_items().';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.tracked_order_items) THEN
		RAISE EXCEPTION 'post_purchase already tracks %', (SELECT t.items FROM post_purchase.tracked_order_items t)
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_order_items() first.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = items) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', items USING ERRCODE = 'wrong_object_type';
	END IF;
	column_type := post_purchase.tracked_column_type(items, order_column, 'order', NULL);
	column_type := post_purchase.tracked_column_type(items, product_column, 'product', NULL);
	column_type := post_purchase.tracked_column_type(items, quantity_column, 'quantity',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);
	column_type := post_purchase.tracked_column_type(o.orders, orders_key_column, 'orders_key', NULL);

	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', o.orders);
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', items);
	INSERT INTO post_purchase.tracked_order_items
		VALUES (items, order_column, product_column, quantity_column, orders_key_column);
	EXECUTE format('CREATE TRIGGER post_purchase_track_items AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_items_trigger(%L, %L, %L, %L, %L, %L, %L, %L)',
				   items, order_column, product_column, quantity_column, o.orders::oid,
				   orders_key_column, o.customer_column, o.ordered_at_column, o.time_zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_items_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_items_truncate()', items);
	PERFORM post_purchase.attach_orders_trigger(orders_key_column);
	INSERT INTO post_purchase.customer_product_orders SELECT * FROM post_purchase.recomputed_product_orders();
END
$$;
COMMENT ON FUNCTION post_purchase.track_order_items(regclass, name, name, name, name) IS
	'attach the item trigger to the shop''s order items table (order, product, quantity) and backfill';
REVOKE ALL ON FUNCTION post_purchase.track_order_items(regclass, name, name, name, name) FROM PUBLIC;

CREATE FUNCTION post_purchase.untrack_order_items(items regclass) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.tracked_order_items t WHERE t.items = untrack_order_items.items;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase does not track %', items USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('DROP TRIGGER post_purchase_track_items ON %s', items);
	EXECUTE format('DROP TRIGGER post_purchase_track_items_truncate ON %s', items);
	IF EXISTS (SELECT FROM post_purchase.tracked_orders) THEN
		PERFORM post_purchase.attach_orders_trigger(NULL);
	END IF;
	DELETE FROM post_purchase.customer_product_orders;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.untrack_order_items(regclass) FROM PUBLIC;

CREATE FUNCTION post_purchase.refresh_product_cycles() RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	products bigint;
BEGIN
	DELETE FROM post_purchase.product_cycles;
	INSERT INTO post_purchase.product_cycles (product_id, median_gap_days, repurchases)
	SELECT g.product_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gap), count(*)
	FROM (SELECT d.product_id, d.day - lag(d.day) OVER (PARTITION BY d.customer_id, d.product_id ORDER BY d.day) AS gap
		  FROM (SELECT DISTINCT p.customer_id, p.product_id, p.day FROM post_purchase.customer_product_orders p) d) g
	WHERE g.gap IS NOT NULL
	GROUP BY g.product_id;
	GET DIAGNOSTICS products = ROW_COUNT;
	RETURN products;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_product_cycles() IS
	'recompute every product''s median repurchase gap across customers';
REVOKE ALL ON FUNCTION post_purchase.refresh_product_cycles() FROM PUBLIC;

-- When each customer's products run out: the customer's own cycle (median
-- gap between the days they bought the product) when they bought it twice,
-- else the consumption cycle (last quantity x days_per_unit), else the
-- product's median repurchase gap across customers.
CREATE VIEW post_purchase.customer_product_replenishment AS
SELECT c.customer_id, c.product_id, c.purchase_days, c.last_purchase, c.last_quantity,
	   x.cycle_source, x.cycle_days,
	   c.last_purchase + x.cycle_days * interval '1 day' AS next_due
FROM (SELECT d.customer_id, d.product_id, count(*) AS purchase_days, max(d.last_at) AS last_purchase,
			 (array_agg(d.quantity ORDER BY d.day DESC))[1] AS last_quantity,
			 percentile_cont(0.5) WITHIN GROUP (ORDER BY d.gap) AS own_gap
	  FROM (SELECT p.customer_id, p.product_id, p.day, sum(p.quantity) AS quantity, max(p.ordered_at) AS last_at,
				   p.day - lag(p.day) OVER (PARTITION BY p.customer_id, p.product_id ORDER BY p.day) AS gap
			FROM post_purchase.customer_product_orders p
			GROUP BY p.customer_id, p.product_id, p.day) d
	  GROUP BY d.customer_id, d.product_id) c
LEFT JOIN post_purchase.products pr ON pr.product_id = c.product_id
LEFT JOIN post_purchase.product_cycles pc ON pc.product_id = c.product_id
CROSS JOIN LATERAL (
	SELECT CASE WHEN c.own_gap IS NOT NULL THEN 'own'
				WHEN pr.days_per_unit IS NOT NULL AND c.last_quantity > 0 THEN 'consumption'
				WHEN pc.median_gap_days IS NOT NULL THEN 'product' END AS cycle_source,
		   CASE WHEN c.own_gap IS NOT NULL THEN c.own_gap
				WHEN pr.days_per_unit IS NOT NULL AND c.last_quantity > 0
				THEN (c.last_quantity * pr.days_per_unit)::double precision
				ELSE pc.median_gap_days END AS cycle_days) x;
COMMENT ON VIEW post_purchase.customer_product_replenishment IS
	'per customer and product: the cycle (own, consumption or product median) and when the product runs out';
-- Background workers (src/worker.c): a launcher started from
-- shared_preload_libraries runs workers in the databases listed in
-- post_purchase.databases; they fire due journey steps.

-- One row per worker, of every database; no rows unless post_purchase is in
-- shared_preload_libraries.
CREATE FUNCTION post_purchase.worker_status(
	OUT database name,
	OUT worker integer,
	OUT pid integer,
	OUT started_at timestamptz,
	OUT last_run_at timestamptz,
	OUT steps_fired bigint,
	OUT last_error text,
	OUT last_error_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'post_purchase_worker_status'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION post_purchase.worker_status() IS
	'the background workers of every database: pid (NULL when not running), when each started and last ran, the steps it fired and its last error';
-- error messages may show customers' data
REVOKE ALL ON FUNCTION post_purchase.worker_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION post_purchase.worker_status() TO pg_read_all_stats;

CREATE VIEW post_purchase.worker_status AS
	SELECT s.database, s.worker, s.pid, s.started_at, s.last_run_at,
		   s.steps_fired, s.last_error, s.last_error_at
	FROM post_purchase.worker_status() s
	ORDER BY s.database, s.worker;
COMMENT ON VIEW post_purchase.worker_status IS
	'the background workers of every database: pid (NULL when not running), when each started and last ran, the steps it fired and its last error';
REVOKE ALL ON post_purchase.worker_status FROM PUBLIC;
GRANT SELECT ON post_purchase.worker_status TO pg_read_all_stats;

-- Wake this database's workers when the calling transaction commits, so a
-- step due now is fired at once; does nothing without preloaded workers.
-- Called by the extension's own triggers and functions.
CREATE FUNCTION post_purchase.wake_workers() RETURNS void
	AS 'MODULE_PATHNAME', 'post_purchase_wake_workers'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION post_purchase.wake_workers() IS
	'wake this database''s post_purchase workers when the transaction commits';
REVOKE ALL ON FUNCTION post_purchase.wake_workers() FROM PUBLIC;
-- The outbox: one row per message fired by a journey step (fire_due_steps() in
-- journeys.sql writes it, exactly once per enrollment and step).  Senders
-- take messages with a claim / acknowledge / fail protocol; CDC tools
-- (Debezium's outbox event router) read the Debezium columns.  Delivery is
-- at least once: a claim that is neither acknowledged nor failed before its
-- visibility timeout ends comes back to the next claim, so senders
-- deduplicate on id.

INSERT INTO post_purchase.settings VALUES
	('outbox_max_attempts', '5', 'outbox_fail(): a message is dead-lettered once it has been claimed this many times'),
	('outbox_retry_backoff', '30 seconds', 'outbox_fail(): a failed message is claimable again after this interval, doubled per attempt ...'),
	('outbox_retry_backoff_max', '1 hour', '... up to this one'),
	('outbox_retention', '7 days', 'outbox_purge(): acknowledged messages are deleted this long after their acknowledgement');

CREATE TABLE post_purchase.outbox (
	id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
	aggregatetype text NOT NULL DEFAULT 'customer',
	aggregateid text NOT NULL,
	type text NOT NULL,
	payload jsonb NOT NULL,
	channel text NOT NULL,
	address text,
	journey text NOT NULL,
	step text NOT NULL,
	variant text,
	enrollment_id bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	visible_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	attempts integer NOT NULL DEFAULT 0,
	acknowledged_at timestamptz,
	last_error text,
	dead_lettered_at timestamptz,
	CONSTRAINT outbox_idempotency UNIQUE (enrollment_id, step)
);
-- The claim's queue, in its order: only what may still be sent, so it stays
-- small however long acknowledged rows are kept.
CREATE INDEX outbox_claimable ON post_purchase.outbox (visible_at, created_at)
	WHERE acknowledged_at IS NULL AND dead_lettered_at IS NULL;
-- outbox_purge() deletes by acknowledgement time
CREATE INDEX outbox_acknowledged ON post_purchase.outbox (acknowledged_at)
	WHERE acknowledged_at IS NOT NULL;
-- operators list the dead letters
CREATE INDEX outbox_dead_letters ON post_purchase.outbox (dead_lettered_at)
	WHERE dead_lettered_at IS NOT NULL AND acknowledged_at IS NULL;
COMMENT ON TABLE post_purchase.outbox IS
	'messages to send, one per (enrollment_id, step): Debezium outbox columns (id, aggregatetype, aggregateid, type, payload) plus claim columns; take them with outbox_claim/outbox_ack/outbox_fail';
COMMENT ON COLUMN post_purchase.outbox.id IS 'the message id: stable across retries, senders deduplicate on it';
COMMENT ON COLUMN post_purchase.outbox.aggregateid IS 'the customer_id';
COMMENT ON COLUMN post_purchase.outbox.type IS 'the step''s message_type';
COMMENT ON COLUMN post_purchase.outbox.address IS 'the customer''s address on the channel (customer_channels), NULL if unknown';
COMMENT ON COLUMN post_purchase.outbox.visible_at IS 'claimable from then on: a claim or a failure moves it into the future';
COMMENT ON COLUMN post_purchase.outbox.attempts IS 'how many times the message was claimed';
COMMENT ON COLUMN post_purchase.outbox.acknowledged_at IS 'when a sender acknowledged it (sent); outbox_purge() deletes it outbox_retention later';
COMMENT ON COLUMN post_purchase.outbox.last_error IS 'the error of the last outbox_fail()';
COMMENT ON COLUMN post_purchase.outbox.dead_lettered_at IS 'set when the last attempt failed: no more claims until outbox_retry()';

-- Events senders report about messages.  The message's customer, journey,
-- step, variant and channel are copied so journey statistics survive the
-- purge of the outbox row (hence no foreign key either).
CREATE TABLE post_purchase.message_events (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	outbox_id uuid NOT NULL,
	event text NOT NULL CHECK (event IN ('delivered', 'opened', 'clicked', 'bounced', 'unsubscribed')),
	occurred_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	customer_id text NOT NULL,
	journey text NOT NULL,
	step text NOT NULL,
	variant text,
	channel text NOT NULL
);
CREATE INDEX message_events_outbox_id ON post_purchase.message_events (outbox_id);
COMMENT ON TABLE post_purchase.message_events IS
	'what became of sent messages (delivered, opened, clicked, bounced, unsubscribed), reported with record_event()';

-- Both tables hold data, not configuration the script recreates: pg_dump
-- must dump their rows (and the identity's position).
SELECT pg_catalog.pg_extension_config_dump('post_purchase.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.message_events', '');
SELECT pg_catalog.pg_extension_config_dump('post_purchase.message_events_id_seq', '');

-- Wake LISTENing senders when new messages commit.  pg_notify() queues the
-- notification until commit (none on rollback) and folds identical ones of
-- one transaction into one, so a batch of messages wakes each listener once.
-- A statement that inserts nothing (ON CONFLICT DO NOTHING) also notifies:
-- a harmless extra wake-up, cheaper than a transition table of every row.
CREATE FUNCTION post_purchase.outbox_notify() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	PERFORM pg_notify('post_purchase_outbox', '');
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.outbox_notify() FROM PUBLIC;
CREATE TRIGGER outbox_notify AFTER INSERT ON post_purchase.outbox
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.outbox_notify();

-- Claim up to batch_size claimable messages, oldest first: each becomes
-- invisible to other claims for the visibility interval and counts an
-- attempt.  SKIP LOCKED lets consumers share the queue without waiting for
-- each other, and one statement both picks and marks, so a message is handed
-- to one consumer per visibility window.  The candidates are an ARRAY()
-- init plan, not an IN (subquery): it runs once, so a re-check of a
-- concurrently changed row cannot pick (and lock) further rows.
CREATE FUNCTION post_purchase.outbox_claim(batch_size integer DEFAULT 100, visibility interval DEFAULT '5 minutes')
	RETURNS SETOF post_purchase.outbox
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 10000, not %', coalesce(batch_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF visibility IS NULL OR visibility <= interval '0' THEN
		RAISE EXCEPTION 'visibility must be a positive interval, not %', coalesce(visibility::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'It is how long claimed messages stay invisible to other consumers; choose it longer than a send takes.';
	END IF;
	RETURN QUERY
	WITH claimed AS (
		UPDATE post_purchase.outbox o
		SET visible_at = now() + visibility, attempts = o.attempts + 1
		WHERE o.id = ANY (ARRAY(
			SELECT c.id FROM post_purchase.outbox c
			WHERE c.acknowledged_at IS NULL AND c.dead_lettered_at IS NULL AND c.visible_at <= now()
			ORDER BY c.visible_at, c.created_at
			LIMIT batch_size
			FOR UPDATE SKIP LOCKED))
		RETURNING o.*)
	SELECT * FROM claimed c ORDER BY c.created_at, c.id;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_claim(integer, interval) IS
	'claim up to batch_size messages (oldest first) for visibility: other consumers do not see them until then; acknowledge or fail each';
REVOKE ALL ON FUNCTION post_purchase.outbox_claim(integer, interval) FROM PUBLIC;

-- Acknowledge sent messages.  Ids that are unknown (or purged), already
-- acknowledged, or NULL are ignored, so a retried acknowledgement is
-- harmless; a dead-lettered message may still be acknowledged (it was sent
-- after all).  Returns how many messages this call acknowledged.  A message
-- another consumer's claim holds (its claim not yet committed) waits for
-- that commit.
CREATE FUNCTION post_purchase.outbox_ack(ids uuid[]) RETURNS integer
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	acknowledged integer;
BEGIN
	IF ids IS NULL THEN
		RAISE EXCEPTION 'ids must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE post_purchase.outbox o SET acknowledged_at = now()
	WHERE o.id = ANY (ids) AND o.acknowledged_at IS NULL;
	GET DIAGNOSTICS acknowledged = ROW_COUNT;
	RETURN acknowledged;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_ack(uuid[]) IS
	'acknowledge sent messages; returns how many were acknowledged by this call (unknown and already acknowledged ids are ignored)';
REVOKE ALL ON FUNCTION post_purchase.outbox_ack(uuid[]) FROM PUBLIC;

-- A send failed: keep the error and make the message claimable again after
-- an exponential backoff (outbox_retry_backoff * 2^(attempts - 1), at most
-- outbox_retry_backoff_max), or dead-letter it once it has been claimed
-- outbox_max_attempts times.
CREATE FUNCTION post_purchase.outbox_fail(id uuid, error text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m post_purchase.outbox;
	backoff interval;
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF error IS NULL THEN
		RAISE EXCEPTION 'error must not be NULL' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass the reason the send failed: it is kept in last_error.';
	END IF;
	SELECT * INTO m FROM post_purchase.outbox o WHERE o.id = outbox_fail.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'outbox message % does not exist', id USING ERRCODE = 'undefined_object';
	END IF;
	IF m.acknowledged_at IS NOT NULL THEN
		RAISE EXCEPTION 'outbox message % is already acknowledged', id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF m.dead_lettered_at IS NOT NULL THEN
		RAISE EXCEPTION 'outbox message % is already dead-lettered', id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'An operator can make it claimable again with post_purchase.outbox_retry().';
	END IF;
	IF m.attempts >= post_purchase.setting('outbox_max_attempts')::integer THEN
		UPDATE post_purchase.outbox o SET last_error = error, dead_lettered_at = now()
		WHERE o.id = outbox_fail.id;
	ELSE
		-- attempts is 0 only if failed without a claim: no shorter wait then;
		-- the exponent is capped, the maximum applies long before
		backoff := least(post_purchase.setting('outbox_retry_backoff')::interval
						 * power(2, least(greatest(m.attempts, 1) - 1, 30)),
						 post_purchase.setting('outbox_retry_backoff_max')::interval);
		UPDATE post_purchase.outbox o SET last_error = error, visible_at = now() + backoff
		WHERE o.id = outbox_fail.id;
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_fail(uuid, text) IS
	'a send failed: keep the error, retry after an exponential backoff, dead-letter after outbox_max_attempts claims';
REVOKE ALL ON FUNCTION post_purchase.outbox_fail(uuid, text) FROM PUBLIC;

-- For operators: put a dead-lettered message back in the queue, with a
-- fresh count of attempts (its last error stays until the next failure).
CREATE FUNCTION post_purchase.outbox_retry(id uuid) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE post_purchase.outbox o SET dead_lettered_at = NULL, attempts = 0, visible_at = now()
	WHERE o.id = outbox_retry.id AND o.dead_lettered_at IS NOT NULL AND o.acknowledged_at IS NULL;
	IF NOT FOUND THEN
		IF EXISTS (SELECT FROM post_purchase.outbox o WHERE o.id = outbox_retry.id) THEN
			RAISE EXCEPTION 'outbox message % is not dead-lettered', id
				USING ERRCODE = 'object_not_in_prerequisite_state';
		END IF;
		RAISE EXCEPTION 'outbox message % does not exist', id USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_retry(uuid) IS
	'make a dead-lettered message claimable again, with attempts reset to 0';
REVOKE ALL ON FUNCTION post_purchase.outbox_retry(uuid) FROM PUBLIC;

-- Delete acknowledged messages outbox_retention after their acknowledgement
-- (the workers call it on a schedule).  Dead letters are kept until an
-- operator retries or deletes them: they are the messages nobody received.
-- message_events keeps its copy of each message's journey and step.
CREATE FUNCTION post_purchase.outbox_purge() RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	purged bigint;
BEGIN
	DELETE FROM post_purchase.outbox o
	WHERE o.acknowledged_at <= now() - post_purchase.setting('outbox_retention')::interval;
	GET DIAGNOSTICS purged = ROW_COUNT;
	RETURN purged;
END
$$;
COMMENT ON FUNCTION post_purchase.outbox_purge() IS
	'delete messages acknowledged more than outbox_retention ago; returns how many';
REVOKE ALL ON FUNCTION post_purchase.outbox_purge() FROM PUBLIC;

-- Record what became of a sent message.  The message's customer, journey,
-- step, variant and channel come from the outbox row or, once that is
-- purged, from an earlier event of the message: a late open is still
-- counted.  Every call records a row (two opens are two events).  An
-- unsubscribe withdraws the customer's consent on the message's channel.
CREATE FUNCTION post_purchase.record_event(outbox_id uuid, event text, occurred_at timestamptz DEFAULT now())
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m record;
BEGIN
	IF outbox_id IS NULL THEN
		RAISE EXCEPTION 'outbox_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF event IS NULL OR event NOT IN ('delivered', 'opened', 'clicked', 'bounced', 'unsubscribed') THEN
		RAISE EXCEPTION 'unknown message event %', coalesce(quote_literal(event), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'The events are delivered, opened, clicked, bounced and unsubscribed.';
	END IF;
	IF occurred_at IS NULL THEN
		RAISE EXCEPTION 'occurred_at must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT o.aggregateid AS customer_id, o.journey, o.step, o.variant, o.channel, o.address INTO m
	FROM post_purchase.outbox o WHERE o.id = record_event.outbox_id;
	IF NOT FOUND THEN
		SELECT e.customer_id, e.journey, e.step, e.variant, e.channel, NULL::text AS address INTO m
		FROM post_purchase.message_events e WHERE e.outbox_id = record_event.outbox_id
		LIMIT 1;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'outbox message % does not exist', outbox_id USING ERRCODE = 'undefined_object';
		END IF;
	END IF;
	INSERT INTO post_purchase.message_events (outbox_id, event, occurred_at, customer_id, journey, step, variant, channel)
	VALUES (record_event.outbox_id, record_event.event, record_event.occurred_at,
			m.customer_id, m.journey, m.step, m.variant, m.channel);
	IF event = 'unsubscribed' THEN
		INSERT INTO post_purchase.customer_channels AS c (customer_id, channel, address, opted_in, updated_at)
		VALUES (m.customer_id, m.channel, m.address, false, now())
		ON CONFLICT (customer_id, channel) DO UPDATE SET opted_in = false, updated_at = now();
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.record_event(uuid, text, timestamptz) IS
	'record an event of a sent message: delivered, opened, clicked, bounced or unsubscribed (which opts the customer out of the channel)';
REVOKE ALL ON FUNCTION post_purchase.record_event(uuid, text, timestamptz) FROM PUBLIC;

-- The senders' role: claim, acknowledge, fail and report events, nothing
-- else (no table privileges: the four functions are SECURITY DEFINER).
-- Roles are cluster-wide and outlive the extension, so the role may exist
-- already (the extension is, or was, installed in another database); create
-- it only if missing.  This is the one object created conditionally; a role
-- of that name made in advance by someone else would get these four
-- functions, so check its members (\du) when you did not create it.  It
-- needs no schema grant: PUBLIC has USAGE on post_purchase
-- (post_purchase.sql), and a grant of its own would outlive DROP EXTENSION
-- on the schema, which is not an extension member, and block DROP ROLE.
-- DROP EXTENSION drops the function grants with the functions and leaves
-- the role; DROP ROLE works once no database has the extension.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'post_purchase_sender') THEN
		CREATE ROLE post_purchase_sender NOLOGIN;
	END IF;
END
$$;
GRANT EXECUTE ON FUNCTION post_purchase.outbox_claim(integer, interval) TO post_purchase_sender;
GRANT EXECUTE ON FUNCTION post_purchase.outbox_ack(uuid[]) TO post_purchase_sender;
GRANT EXECUTE ON FUNCTION post_purchase.outbox_fail(uuid, text) TO post_purchase_sender;
GRANT EXECUTE ON FUNCTION post_purchase.record_event(uuid, text, timestamptz) TO post_purchase_sender;
-- Journeys: a marketer's post-purchase program as rows.  A journey has a
-- trigger that enrolls customers and ordered steps that fire at the
-- enrollment's anchor time plus each step's delay.  Orders enroll in their
-- own transaction (the order trigger), segment changes through triggers on
-- segment_memberships, the passage of time through enroll_due(); the
-- background workers (worker.c) drain due steps with fire_due_steps(), which
-- writes each fired step to the outbox exactly once per (enrollment, step).

INSERT INTO post_purchase.settings VALUES
	('frequency_cap_messages', '3', 'at most this many messages per customer and channel in frequency_cap_window, across all journeys (0: no cap)'),
	('frequency_cap_window', '7 days', 'the window of the frequency cap'),
	('quiet_hours_start', '21:00', 'no message on a quiet_hours_channels channel from this local time of the customer ...'),
	('quiet_hours_end', '08:00', '... until this one; the message waits for the end, it is not dropped (equal times: no quiet hours)'),
	('quiet_hours_channels', 'sms,push', 'the channels that keep quiet hours, comma-separated'),
	('channel_fallback', 'email,push,sms', 'for steps on channel ''preferred'': the channels tried, in order, when the customer has no preferred opted-in one'),
	('channels', 'email,sms,push,webhook', 'the channels steps may use (besides ''preferred''), comma-separated'),
	('consent_exempt_channels', 'webhook', 'channels that need no opt-in (internal systems), comma-separated'),
	('attribution_window', '7 days', 'journey_stats: an order this soon after a step counts as its conversion'),
	('enroll_due_interval', '1 minute', 'enroll_due() sweeps for lapsed, anniversary and replenishment enrollments at most this often');

-- A comma-separated setting as an array of trimmed names.
CREATE FUNCTION post_purchase.setting_list(setting_name text) RETURNS text[]
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$SELECT coalesce(pg_catalog.array_agg(pg_catalog.btrim(x)), '{}')
		 FROM pg_catalog.unnest(pg_catalog.string_to_array(post_purchase.setting(setting_name), ',')) x
		 WHERE pg_catalog.btrim(x) OPERATOR(pg_catalog.<>) ''$$;

-- How to reach a customer, and whether they agreed to it.
CREATE TABLE post_purchase.customer_channels (
	customer_id text NOT NULL,
	channel text NOT NULL CHECK (channel ~ '^[a-z][a-z0-9_]*$' AND channel <> 'preferred'),
	address text,
	opted_in boolean NOT NULL,
	preferred boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (customer_id, channel)
);
CREATE UNIQUE INDEX customer_channels_one_preferred ON post_purchase.customer_channels (customer_id) WHERE preferred;
COMMENT ON TABLE post_purchase.customer_channels IS
	'per customer and channel: the address and the consent (opted_in); at most one preferred channel';

CREATE TABLE post_purchase.customer_profiles (
	customer_id text PRIMARY KEY,
	time_zone text NOT NULL CHECK (pg_catalog.now() AT TIME ZONE time_zone IS NOT NULL)
);
COMMENT ON TABLE post_purchase.customer_profiles IS
	'per customer: the time zone quiet hours are kept in (else the shop''s time_zone setting)';

CREATE TABLE post_purchase.journeys (
	name text PRIMARY KEY CHECK (name <> '' AND length(name) <= 100),
	trigger text NOT NULL CHECK (trigger IN ('first_order', 'every_order', 'nth_order', 'segment_entered',
											 'segment_exited', 'replenishment_due', 'lapsed', 'anniversary')),
	segment text REFERENCES post_purchase.segments ON UPDATE CASCADE,
	nth_order integer CHECK (nth_order >= 1),
	lapsed_days integer CHECK (lapsed_days >= 1),
	lead_time interval CHECK (lead_time >= interval '0'),
	exit_on_purchase boolean NOT NULL,
	reentry text NOT NULL CHECK (reentry IN ('once', 'every_time', 'after_interval')),
	reentry_interval interval CHECK (reentry_interval > interval '0'),
	holdout_percent numeric NOT NULL CHECK (holdout_percent >= 0 AND holdout_percent <= 100),
	variants jsonb,
	enabled boolean NOT NULL DEFAULT false,
	enabled_at timestamptz,
	owner regrole NOT NULL DEFAULT current_user::regrole,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CHECK ((trigger IN ('segment_entered', 'segment_exited')) = (segment IS NOT NULL)),
	CHECK ((trigger = 'nth_order') = (nth_order IS NOT NULL)),
	CHECK ((trigger = 'lapsed') = (lapsed_days IS NOT NULL)),
	CHECK ((trigger = 'replenishment_due') = (lead_time IS NOT NULL)),
	CHECK ((reentry = 'after_interval') = (reentry_interval IS NOT NULL))
);
COMMENT ON TABLE post_purchase.journeys IS
	'journeys: what enrolls a customer (trigger), the guards, holdout and A/B variants; steps in journey_steps';

CREATE TABLE post_purchase.journey_steps (
	journey text NOT NULL REFERENCES post_purchase.journeys ON DELETE CASCADE ON UPDATE CASCADE,
	step text NOT NULL CHECK (step <> '' AND length(step) <= 100),
	position integer NOT NULL,
	delay interval NOT NULL,
	channel text NOT NULL CHECK (channel ~ '^[a-z][a-z0-9_]*$'),
	message_type text NOT NULL CHECK (message_type <> ''),
	condition text,
	segment text REFERENCES post_purchase.segments ON UPDATE CASCADE,
	payload jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(payload) = 'object'),
	variant_payloads jsonb CHECK (pg_catalog.jsonb_typeof(variant_payloads) = 'object'),
	-- whether the templates use {{customer...}}: only then is customer_metrics read at fire time
	uses_customer boolean GENERATED ALWAYS AS (
		(payload::text OPERATOR(pg_catalog.||) coalesce(variant_payloads::text, ''))
		OPERATOR(pg_catalog.~) '\{\{\s*customer(\.|\s|\})') STORED,
	PRIMARY KEY (journey, step),
	UNIQUE (journey, position)
);
COMMENT ON TABLE post_purchase.journey_steps IS
	'the steps of each journey, fired in position order at the enrollment''s anchor time plus delay';

CREATE TABLE post_purchase.enrollments (
	enrollment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	journey text NOT NULL REFERENCES post_purchase.journeys ON DELETE CASCADE ON UPDATE CASCADE,
	customer_id text NOT NULL,
	enrolled_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	anchor_at timestamptz NOT NULL,
	context jsonb NOT NULL DEFAULT '{}',
	holdout boolean NOT NULL,
	variant text,
	status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'exited')),
	next_position integer,
	next_fire_at timestamptz,
	ended_at timestamptz,
	end_reason text,
	CHECK ((status = 'active') = (next_fire_at IS NOT NULL))
);
-- the workers' queue: the due steps, in fire time order
CREATE INDEX enrollments_due ON post_purchase.enrollments (next_fire_at) WHERE status = 'active';
-- one active enrollment per customer and journey
CREATE UNIQUE INDEX enrollments_active ON post_purchase.enrollments (customer_id, journey) WHERE status = 'active';
CREATE INDEX enrollments_customer ON post_purchase.enrollments (journey, customer_id, enrolled_at);
COMMENT ON TABLE post_purchase.enrollments IS
	'one customer''s way through a journey: the next step and when it fires; context holds the order or product that enrolled';

-- What became of every step of every enrollment: fired (with its outbox
-- message) or suppressed (with the reason).  The primary key is the second
-- half of exactly-once: a step is decided once.
CREATE TABLE post_purchase.step_outcomes (
	enrollment_id bigint NOT NULL REFERENCES post_purchase.enrollments ON DELETE CASCADE,
	step text NOT NULL,
	journey text NOT NULL,
	customer_id text NOT NULL,
	variant text,
	holdout boolean NOT NULL,
	outcome text NOT NULL CHECK (outcome IN ('fired', 'suppressed')),
	reason text CHECK ((outcome = 'suppressed') = (reason IS NOT NULL)),
	detail text,
	channel text,
	outbox_id uuid,
	decided_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	converted_at timestamptz,
	attributed_revenue numeric NOT NULL DEFAULT 0,
	PRIMARY KEY (enrollment_id, step)
);
-- a customer's recent steps: the frequency cap, and orders converting them
CREATE INDEX step_outcomes_customer ON post_purchase.step_outcomes (customer_id, decided_at);
COMMENT ON TABLE post_purchase.step_outcomes IS
	'each decided step: fired into the outbox, or suppressed with a reason (holdout, condition, condition_error, segment, no_consent, frequency_cap); the orders within attribution_window after it convert it';

-- When enroll_due() last swept, so the workers may call it every loop.
CREATE TABLE post_purchase.enrollment_sweeps (
	swept_at timestamptz NOT NULL
);
INSERT INTO post_purchase.enrollment_sweeps VALUES ('-infinity');

-- A value from 0 to 9999, the same for the same key every time: holdout and
-- variant assignment must not change when a step is retried.
CREATE FUNCTION post_purchase.stable_bucket(key text, seed bigint) RETURNS integer
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$SELECT ((pg_catalog.hashtextextended(key, seed) OPERATOR(pg_catalog.%) 10000)
				 OPERATOR(pg_catalog.+) 10000)::integer OPERATOR(pg_catalog.%) 10000$$;

CREATE FUNCTION post_purchase.in_holdout(journey text, customer_id text, holdout_percent numeric)
	RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$SELECT post_purchase.stable_bucket(journey OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) customer_id, 1)
				OPERATOR(pg_catalog.<) (holdout_percent OPERATOR(pg_catalog.*) 100)$$;

-- The variant for a customer: variants is {"name": weight, ...}; buckets
-- are handed out by weight, in name order.
CREATE FUNCTION post_purchase.pick_variant(journey text, customer_id text, variants jsonb) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	total numeric;
	point numeric;
	v record;
BEGIN
	IF variants IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT sum(w.value::numeric) INTO total FROM jsonb_each_text(variants) w;
	point := post_purchase.stable_bucket(journey || '/' || customer_id, 2) * total / 10000;
	FOR v IN SELECT w.key, w.value::numeric AS weight FROM jsonb_each_text(variants) w ORDER BY w.key LOOP
		point := point - v.weight;
		IF point < 0 THEN
			RETURN v.key;
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;

CREATE FUNCTION post_purchase.check_variants(variants jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF variants IS NULL THEN
		RETURN;
	END IF;
	IF jsonb_typeof(variants) <> 'object' OR variants = '{}'
	   OR EXISTS (SELECT FROM jsonb_each(variants) w
				  WHERE jsonb_typeof(w.value) <> 'number' OR w.value::text::numeric <= 0) THEN
		RAISE EXCEPTION 'invalid variants: %', variants
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give variants as a JSON object of names and positive weights, like {"A": 50, "B": 50}.';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_variants(jsonb) FROM PUBLIC;

CREATE FUNCTION post_purchase.create_journey(name text, trigger text,
											 segment text DEFAULT NULL,
											 nth_order integer DEFAULT NULL,
											 lapsed_days integer DEFAULT NULL,
											 lead_time interval DEFAULT NULL,
											 exit_on_purchase boolean DEFAULT NULL,
											 reentry text DEFAULT 'every_time',
											 reentry_interval interval DEFAULT NULL,
											 holdout_percent numeric DEFAULT 0,
											 variants jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF name IS NULL OR trigger IS NULL THEN
		RAISE EXCEPTION 'a journey needs a name and a trigger' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name = '' OR length(name) > 100 THEN
		RAISE EXCEPTION 'a journey name must have 1 to 100 characters' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF holdout_percent < 0 OR holdout_percent > 100 THEN
		RAISE EXCEPTION 'holdout_percent must be between 0 and 100, not %', holdout_percent
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.journeys j WHERE j.name = create_journey.name) THEN
		RAISE EXCEPTION 'journey "%" already exists', name USING ERRCODE = 'duplicate_object';
	END IF;
	IF trigger NOT IN ('first_order', 'every_order', 'nth_order', 'segment_entered', 'segment_exited',
					   'replenishment_due', 'lapsed', 'anniversary') THEN
		RAISE EXCEPTION 'unknown journey trigger "%"', trigger
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use first_order, every_order, nth_order, segment_entered, segment_exited, replenishment_due, lapsed or anniversary.';
	END IF;
	IF (trigger IN ('segment_entered', 'segment_exited')) <> (segment IS NOT NULL)
	   OR (trigger = 'nth_order') <> (nth_order IS NOT NULL)
	   OR (trigger = 'lapsed') <> (lapsed_days IS NOT NULL)
	   OR (trigger = 'replenishment_due') <> (lead_time IS NOT NULL) THEN
		RAISE EXCEPTION 'trigger % takes %', trigger,
			CASE WHEN trigger IN ('segment_entered', 'segment_exited') THEN 'segment => name, and no other trigger argument'
				 WHEN trigger = 'nth_order' THEN 'nth_order => n, and no other trigger argument'
				 WHEN trigger = 'lapsed' THEN 'lapsed_days => n, and no other trigger argument'
				 WHEN trigger = 'replenishment_due' THEN 'lead_time => interval, and no other trigger argument'
				 ELSE 'no trigger argument' END
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF segment IS NOT NULL AND NOT EXISTS (SELECT FROM post_purchase.segments s WHERE s.name = segment) THEN
		RAISE EXCEPTION 'segment "%" does not exist', segment USING ERRCODE = 'undefined_object';
	END IF;
	IF reentry IS NULL OR reentry NOT IN ('once', 'every_time', 'after_interval')
	   OR (reentry = 'after_interval') <> (reentry_interval IS NOT NULL) THEN
		RAISE EXCEPTION 'invalid re-entry policy %', coalesce(reentry, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use once, every_time, or after_interval with reentry_interval => interval.';
	END IF;
	PERFORM post_purchase.check_variants(variants);
	INSERT INTO post_purchase.journeys (name, trigger, segment, nth_order, lapsed_days, lead_time,
										exit_on_purchase, reentry, reentry_interval, holdout_percent, variants)
	VALUES (name, trigger, segment, nth_order, lapsed_days, lead_time,
			-- a purchase is what win-back and replenishment journeys wait for
			coalesce(exit_on_purchase, trigger IN ('lapsed', 'replenishment_due')),
			reentry, reentry_interval, coalesce(holdout_percent, 0), variants);
END
$$;
COMMENT ON FUNCTION post_purchase.create_journey(text, text, text, integer, integer, interval, boolean, text, interval, numeric, jsonb) IS
	'create a disabled journey; add steps with add_step() and start it with enable_journey()';
REVOKE ALL ON FUNCTION post_purchase.create_journey(text, text, text, integer, integer, interval, boolean, text, interval, numeric, jsonb) FROM PUBLIC;

CREATE FUNCTION post_purchase.add_step(journey text, step text, delay interval, channel text, message_type text,
									   condition text DEFAULT NULL,
									   payload jsonb DEFAULT '{}',
									   segment text DEFAULT NULL,
									   variant_payloads jsonb DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	last post_purchase.journey_steps;
BEGIN
	IF step IS NULL OR delay IS NULL OR channel IS NULL OR message_type IS NULL THEN
		RAISE EXCEPTION 'a step needs a name, a delay, a channel and a message type'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM FROM post_purchase.journeys j WHERE j.name = add_step.journey FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', journey USING ERRCODE = 'undefined_object';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.journey_steps s WHERE s.journey = add_step.journey AND s.step = add_step.step) THEN
		RAISE EXCEPTION 'journey "%" already has a step "%"', journey, step USING ERRCODE = 'duplicate_object';
	END IF;
	SELECT * INTO last FROM post_purchase.journey_steps s WHERE s.journey = add_step.journey
	ORDER BY s.position DESC LIMIT 1;
	IF FOUND AND delay < last.delay THEN
		RAISE EXCEPTION 'step "%" would fire before step "%"', step, last.step
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Its delay %s is shorter than the previous step''s %s.', delay, last.delay),
				  HINT = 'Steps fire in the order they are added: add them in order of their delays.';
	END IF;
	IF delay < interval '0' THEN
		RAISE EXCEPTION 'step "%" has a negative delay %', step, delay
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Delays count from the enrollment (for replenishment_due journeys, from the due date minus the journey''s lead_time).';
	END IF;
	IF channel <> 'preferred' AND NOT channel = ANY (post_purchase.setting_list('channels')) THEN
		RAISE EXCEPTION 'unknown channel "%"', channel
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('Use "preferred" or one of the channels setting: %s.', post_purchase.setting('channels'));
	END IF;
	IF segment IS NOT NULL AND NOT EXISTS (SELECT FROM post_purchase.segments s WHERE s.name = segment) THEN
		RAISE EXCEPTION 'segment "%" does not exist', segment USING ERRCODE = 'undefined_object';
	END IF;
	IF payload IS NULL OR jsonb_typeof(payload) <> 'object'
	   OR (variant_payloads IS NOT NULL AND (jsonb_typeof(variant_payloads) <> 'object'
			OR EXISTS (SELECT FROM jsonb_each(variant_payloads) v WHERE jsonb_typeof(v.value) <> 'object'))) THEN
		RAISE EXCEPTION 'a payload template must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'variant_payloads maps variant names to objects merged over the payload.';
	END IF;
	IF condition IS NOT NULL THEN
		-- the same checks as a segment rule: one boolean expression over customer_metrics
		PERFORM post_purchase.check_segment_rule(condition, 'step condition');
	END IF;
	INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, condition,
											 segment, payload, variant_payloads)
	VALUES (journey, step, coalesce(last.position, 0) + 1, delay, channel, message_type, condition, segment,
			payload, variant_payloads);
END
$$;
COMMENT ON FUNCTION post_purchase.add_step(text, text, interval, text, text, text, jsonb, text, jsonb) IS
	'append a step to a journey: it fires delay after the enrollment''s anchor, if its condition and segment hold';
REVOKE ALL ON FUNCTION post_purchase.add_step(text, text, interval, text, text, text, jsonb, text, jsonb) FROM PUBLIC;

CREATE FUNCTION post_purchase.set_journey_enabled(name text, enabled boolean) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	UPDATE post_purchase.journeys j
	SET enabled = set_journey_enabled.enabled,
		enabled_at = CASE WHEN set_journey_enabled.enabled AND NOT j.enabled THEN now() ELSE j.enabled_at END
	WHERE j.name = set_journey_enabled.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	IF enabled AND NOT EXISTS (SELECT FROM post_purchase.journey_steps s WHERE s.journey = set_journey_enabled.name) THEN
		RAISE EXCEPTION 'journey "%" has no steps', name
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add steps with post_purchase.add_step().';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.set_journey_enabled(text, boolean) FROM PUBLIC;

CREATE FUNCTION post_purchase.enable_journey(name text) RETURNS void
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	AS $$SELECT post_purchase.set_journey_enabled(name, true)$$;
COMMENT ON FUNCTION post_purchase.enable_journey(text) IS
	'start enrolling customers; enrollments of a disabled journey wait, and go on when it is enabled again';
REVOKE ALL ON FUNCTION post_purchase.enable_journey(text) FROM PUBLIC;

CREATE FUNCTION post_purchase.disable_journey(name text) RETURNS void
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	AS $$SELECT post_purchase.set_journey_enabled(name, false)$$;
COMMENT ON FUNCTION post_purchase.disable_journey(text) IS 'stop enrolling and firing; pending steps wait';
REVOKE ALL ON FUNCTION post_purchase.disable_journey(text) FROM PUBLIC;

CREATE FUNCTION post_purchase.drop_journey(name text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.journeys j WHERE j.name = drop_journey.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'journey "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION post_purchase.drop_journey(text) IS
	'drop a journey with its steps, enrollments and outcomes (messages already in the outbox stay)';
REVOKE ALL ON FUNCTION post_purchase.drop_journey(text) FROM PUBLIC;

-- Enroll customers in an enabled journey, each at an anchor time (the
-- steps' delays count from it), with a context the payloads can use.  The
-- re-entry policy decides who may enter again; a new enrollment replaces an
-- active one.  Returns how many entered.
CREATE FUNCTION post_purchase.enroll(journey text, customers text[], anchors timestamptz[], contexts jsonb[])
	RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j post_purchase.journeys;
	first post_purchase.journey_steps;
	admitted_customers text[];
	admitted_anchors timestamptz[];
	admitted_contexts jsonb[];
	entered integer;
	due_now boolean;
BEGIN
	SELECT * INTO j FROM post_purchase.journeys x WHERE x.name = enroll.journey AND x.enabled;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	SELECT * INTO first FROM post_purchase.journey_steps s WHERE s.journey = j.name ORDER BY s.position LIMIT 1;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;

	-- one per customer (the earliest anchor), if the re-entry policy lets
	-- them in: one NOT EXISTS, an anti-join on the index (a sub-select per
	-- policy lets the planner hash every enrollment of the journey instead)
	SELECT array_agg(a.customer_id), array_agg(a.anchor_at), array_agg(a.context)
	INTO admitted_customers, admitted_anchors, admitted_contexts
	FROM (SELECT DISTINCT ON (c.customer_id) c.customer_id, c.anchor_at, coalesce(c.context, '{}') AS context
		  FROM unnest(customers, anchors, contexts) c(customer_id, anchor_at, context)
		  WHERE c.customer_id IS NOT NULL AND c.anchor_at IS NOT NULL
			AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
							WHERE j.reentry <> 'every_time' AND e.journey = j.name AND e.customer_id = c.customer_id
							  AND (j.reentry = 'once' OR e.enrolled_at > now() - j.reentry_interval))
		  ORDER BY c.customer_id, c.anchor_at) a;
	IF admitted_customers IS NULL THEN
		RETURN 0;
	END IF;

	-- two statements: one would check the new row against the old one's
	-- entry in the one-active-enrollment index before the old one ended
	UPDATE post_purchase.enrollments e
	SET status = 'exited', ended_at = now(), end_reason = 'reentered', next_position = NULL, next_fire_at = NULL
	WHERE e.customer_id = ANY (admitted_customers) AND e.journey = j.name AND e.status = 'active';

	INSERT INTO post_purchase.enrollments (journey, customer_id, anchor_at, context, holdout, variant,
										   next_position, next_fire_at)
	SELECT j.name, c.customer_id, c.anchor_at, c.context,
		   post_purchase.in_holdout(j.name, c.customer_id, j.holdout_percent),
		   post_purchase.pick_variant(j.name, c.customer_id, j.variants),
		   first.position, c.anchor_at + first.delay
	FROM unnest(admitted_customers, admitted_anchors, admitted_contexts) c(customer_id, anchor_at, context);
	GET DIAGNOSTICS entered = ROW_COUNT;

	-- a step due now reaches the outbox right after this transaction commits
	SELECT bool_or(a + first.delay <= now()) INTO due_now FROM unnest(admitted_anchors) a;
	IF entered > 0 AND due_now THEN
		PERFORM post_purchase.wake_workers();
	END IF;
	RETURN entered;
END
$$;
COMMENT ON FUNCTION post_purchase.enroll(text, text[], timestamptz[], jsonb[]) IS
	'enroll customers in an enabled journey at anchor times (step delays count from them); used by the triggers and enroll_due()';
REVOKE ALL ON FUNCTION post_purchase.enroll(text, text[], timestamptz[], jsonb[]) FROM PUBLIC;

-- An order was inserted (the order trigger, in the order's transaction): a
-- purchase ends the enrollments that wait for one, then the order journeys
-- enroll the customer.  orders is the customer's order count with it.
-- Generic plans: this runs for every order, and planning its statements
-- afresh for each one (custom plans) would cost more than running them.
CREATE FUNCTION post_purchase.enroll_for_order(customer text, orders bigint, order_row jsonb)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
	AS $$
DECLARE
	tracked post_purchase.tracked_orders;
	order_at timestamptz;
	entering text[];
BEGIN
	-- the order converts the steps decided for the customer within the
	-- attribution window before it (holdout steps too: the uplift's baseline)
	SELECT * INTO tracked FROM post_purchase.tracked_orders;
	order_at := (order_row ->> tracked.ordered_at_column)::timestamptz;
	UPDATE post_purchase.step_outcomes o
	SET converted_at = coalesce(o.converted_at, order_at),
		attributed_revenue = o.attributed_revenue + coalesce((order_row ->> tracked.amount_column)::numeric, 0)
	WHERE o.customer_id = customer AND o.decided_at < order_at
	  AND o.decided_at >= order_at - post_purchase.setting('attribution_window')::interval;

	UPDATE post_purchase.enrollments e
	SET status = 'exited', ended_at = now(), end_reason = 'purchased', next_position = NULL, next_fire_at = NULL
	FROM post_purchase.journeys x
	WHERE e.customer_id = customer AND e.status = 'active' AND x.name = e.journey AND x.exit_on_purchase;

	-- the order journeys the customer enters: enroll() for all of them at
	-- once, in three statements instead of a dozen per journey, since this
	-- runs for every order
	SELECT array_agg(j.name) INTO entering
	FROM post_purchase.journeys j
	WHERE j.enabled
	  AND (j.trigger = 'every_order' OR (j.trigger = 'first_order' AND orders = 1)
		   OR (j.trigger = 'nth_order' AND j.nth_order = orders))
	  AND EXISTS (SELECT FROM post_purchase.journey_steps s WHERE s.journey = j.name)
	  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
					  WHERE j.reentry <> 'every_time' AND e.journey = j.name AND e.customer_id = customer
						AND (j.reentry = 'once' OR e.enrolled_at > now() - j.reentry_interval));
	IF entering IS NULL THEN
		RETURN;
	END IF;
	UPDATE post_purchase.enrollments e
	SET status = 'exited', ended_at = now(), end_reason = 'reentered', next_position = NULL, next_fire_at = NULL
	WHERE e.customer_id = customer AND e.journey = ANY (entering) AND e.status = 'active';
	INSERT INTO post_purchase.enrollments (journey, customer_id, anchor_at, context, holdout, variant,
										   next_position, next_fire_at)
	SELECT j.name, customer, now(), jsonb_build_object('order', order_row),
		   post_purchase.in_holdout(j.name, customer, j.holdout_percent),
		   post_purchase.pick_variant(j.name, customer, j.variants), f.position, now() + f.delay
	FROM post_purchase.journeys j
	CROSS JOIN LATERAL (SELECT s.position, s.delay FROM post_purchase.journey_steps s
						WHERE s.journey = j.name ORDER BY s.position LIMIT 1) f
	WHERE j.name = ANY (entering)
	ORDER BY j.name;
	-- a thank-you reaches the outbox right after the order commits
	IF EXISTS (SELECT FROM post_purchase.enrollments e
			   WHERE e.customer_id = customer AND e.journey = ANY (entering) AND e.status = 'active'
				 AND e.next_fire_at <= now()) THEN
		PERFORM post_purchase.wake_workers();
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.enroll_for_order(text, bigint, jsonb) FROM PUBLIC;

-- Segment entries and exits enroll the segment journeys: statement triggers
-- on the membership history, so refresh_segments() enrolls set-based.
CREATE FUNCTION post_purchase.enroll_segment_changes() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j record;
	wanted text := CASE TG_OP WHEN 'INSERT' THEN 'segment_entered' ELSE 'segment_exited' END;
BEGIN
	FOR j IN SELECT x.name, x.segment FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger = wanted ORDER BY x.name LOOP
		PERFORM post_purchase.enroll(j.name, array_agg(m.customer_id),
									 array_agg(coalesce(m.exited_at, m.entered_at)),
									 array_agg(jsonb_build_object('segment', m.segment)))
		FROM changed m
		WHERE m.segment = j.segment AND (TG_OP = 'INSERT') = (m.exited_at IS NULL)
		HAVING count(*) > 0;
	END LOOP;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.enroll_segment_changes() FROM PUBLIC;
CREATE TRIGGER enroll_on_segment_entry AFTER INSERT ON post_purchase.segment_memberships
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.enroll_segment_changes();
CREATE TRIGGER enroll_on_segment_exit AFTER UPDATE ON post_purchase.segment_memberships
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.enroll_segment_changes();

-- The journeys time triggers: customers who lapsed, whose first order has an
-- anniversary today, or whose product runs out within the lead time.  Only
-- what happened since the journey was enabled enrolls: enabling a win-back
-- journey does not message every customer who lapsed years ago.  Step
-- delays count from the sweep (lapsed, anniversary) or from the due date
-- minus the lead time (replenishment).  Sweeps run at most every
-- enroll_due_interval; returns the enrollments made.
CREATE FUNCTION post_purchase.enroll_due() RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	j post_purchase.journeys;
	entered integer := 0;
	today date := (now() AT TIME ZONE post_purchase.setting('time_zone'))::date;
BEGIN
	UPDATE post_purchase.enrollment_sweeps s SET swept_at = now()
	WHERE s.swept_at <= now() - post_purchase.setting('enroll_due_interval')::interval;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	FOR j IN SELECT * FROM post_purchase.journeys x
			 WHERE x.enabled AND x.trigger IN ('lapsed', 'anniversary', 'replenishment_due') ORDER BY x.name LOOP
		IF j.trigger = 'lapsed' THEN
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(s.customer_id), array_agg(now()),
											array_agg(jsonb_build_object('last_order_at', s.last_order_at)))
				FROM post_purchase.customer_state s
				WHERE s.last_order_at + make_interval(days => j.lapsed_days) <= now()
				  AND s.last_order_at + make_interval(days => j.lapsed_days) > j.enabled_at
				  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = s.customer_id
									AND e.anchor_at >= s.last_order_at + make_interval(days => j.lapsed_days))
				HAVING count(*) > 0), 0);
		ELSIF j.trigger = 'anniversary' THEN
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(s.customer_id), array_agg(now()),
											array_agg(jsonb_build_object('years', y.years, 'first_order_at', s.first_order_at)))
				FROM post_purchase.customer_state s
				CROSS JOIN LATERAL (SELECT (extract(year FROM today) - extract(year FROM s.first_day))::integer AS years) y
				WHERE y.years >= 1 AND (s.first_day + make_interval(years => y.years))::date = today
				  AND NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = s.customer_id
									AND (e.enrolled_at AT TIME ZONE post_purchase.setting('time_zone'))::date = today)
				HAVING count(*) > 0), 0);
		ELSE
			-- one enrollment per customer, for the product due first
			entered := entered + coalesce((
				SELECT post_purchase.enroll(j.name, array_agg(r.customer_id), array_agg(r.next_due - j.lead_time),
											array_agg(jsonb_build_object('product_id', r.product_id, 'due_at', r.next_due,
																		 'last_purchase', r.last_purchase)))
				FROM (SELECT DISTINCT ON (p.customer_id) p.*
					  FROM post_purchase.customer_product_replenishment p
					  WHERE p.next_due - j.lead_time <= now() AND p.next_due - j.lead_time > j.enabled_at
					  ORDER BY p.customer_id, p.next_due) r
				WHERE NOT EXISTS (SELECT FROM post_purchase.enrollments e
								  WHERE e.journey = j.name AND e.customer_id = r.customer_id
									AND e.anchor_at >= r.next_due - j.lead_time)
				HAVING count(*) > 0), 0);
		END IF;
	END LOOP;
	RETURN entered;
END
$$;
COMMENT ON FUNCTION post_purchase.enroll_due() IS
	'enroll customers in the lapsed, anniversary and replenishment_due journeys; the workers call it';
REVOKE ALL ON FUNCTION post_purchase.enroll_due() FROM PUBLIC;

-- Whether a user-written condition holds for a customer, evaluated as the
-- journey's owner with search_path locked down (src/journeys.c).
CREATE FUNCTION post_purchase.evaluate_condition(owner regrole, condition text, customer_id text)
	RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION post_purchase.evaluate_condition(regrole, text, text) FROM PUBLIC;

-- A payload template with its {{placeholders}} filled from the context:
-- a string that is exactly one placeholder takes the value with its JSON
-- type, placeholders inside longer strings are replaced by text; a path
-- with dots walks into objects ({{customer.clv_12m}}); a path that leads
-- nowhere gives null, or "" inside text (src/payload.c).
CREATE FUNCTION post_purchase.render_payload(template jsonb, context jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.render_payload(jsonb, jsonb) IS
	'fill a payload template''s {{placeholders}} from a context object';

-- When a message on this channel may go to the customer: now, or the end
-- of the customer's quiet hours (in their time zone) if now is inside them.
CREATE FUNCTION post_purchase.quiet_hours_end(customer text, channel text, at timestamptz) RETURNS timestamptz
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	zone text := coalesce((SELECT p.time_zone FROM post_purchase.customer_profiles p WHERE p.customer_id = customer),
						  post_purchase.setting('time_zone'));
	quiet_from time := post_purchase.setting('quiet_hours_start')::time;
	quiet_until time := post_purchase.setting('quiet_hours_end')::time;
	local timestamp := at AT TIME ZONE zone;
	t time := local::time;
BEGIN
	IF quiet_from = quiet_until OR NOT channel = ANY (post_purchase.setting_list('quiet_hours_channels')) THEN
		RETURN at;
	END IF;
	IF quiet_from < quiet_until THEN
		IF t >= quiet_from AND t < quiet_until THEN
			RETURN (local::date + quiet_until) AT TIME ZONE zone;
		END IF;
	ELSIF t >= quiet_from THEN			-- overnight window, evening part
		RETURN (local::date + 1 + quiet_until) AT TIME ZONE zone;
	ELSIF t < quiet_until THEN			-- overnight window, morning part
		RETURN (local::date + quiet_until) AT TIME ZONE zone;
	END IF;
	RETURN at;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.quiet_hours_end(text, text, timestamptz) FROM PUBLIC;

-- The user-written conditions of claimed steps, evaluated one at a time as
-- each journey's owner: a condition that fails suppresses its own step with
-- the error, and never the batch.  Holdout steps are decided without one.
CREATE FUNCTION post_purchase.evaluate_step_conditions(enrollment_ids bigint[])
	RETURNS TABLE (enrollment_id bigint, reason text, detail text)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	c record;
	holds boolean;
BEGIN
	FOR c IN SELECT e.enrollment_id, e.customer_id, j.owner, s.condition
			 FROM post_purchase.enrollments e
			 JOIN post_purchase.journeys j ON j.name = e.journey
			 JOIN post_purchase.journey_steps s ON s.journey = e.journey AND s.position = e.next_position
			 WHERE e.enrollment_id = ANY (enrollment_ids) AND s.condition IS NOT NULL AND NOT e.holdout LOOP
		enrollment_id := c.enrollment_id;
		detail := NULL;
		BEGIN
			holds := post_purchase.evaluate_condition(c.owner, c.condition, c.customer_id);
			reason := CASE WHEN holds IS TRUE THEN NULL ELSE 'condition' END;
		EXCEPTION WHEN OTHERS THEN
			reason := 'condition_error';
			detail := SQLERRM;
		END;
		RETURN NEXT;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.evaluate_step_conditions(bigint[]) FROM PUBLIC;

-- Claim up to batch_size due steps and decide them all (the workers' unit of
-- work; callable by hand): suppress a step with a reason, defer it past
-- quiet hours, or write its message to the outbox; then move each
-- enrollment to its next step.  The claim is FOR UPDATE SKIP LOCKED, so
-- workers share the queue; the share lock on the journey makes
-- disable_journey() wait for batches in flight, after which no step of it
-- fires.  The outbox rows, the outcomes and the moves commit together: a
-- crash before the commit leaves the steps due, and they fire again, once.
-- Set-based but for the conditions.  (Generic plans were tried: they join
-- the batch's CTEs by nested loops, quadratic in the batch size.)  Returns
-- the number of steps decided.
CREATE FUNCTION post_purchase.fire_due_steps(batch_size integer DEFAULT 100) RETURNS integer
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	ids bigint[];
	checked record;
	failed_ids bigint[] := '{}';
	failed_reasons text[] := '{}';
	failed_details text[] := '{}';
	cap integer := coalesce(nullif(post_purchase.setting('frequency_cap_messages'), ''), '0')::integer;
	cap_window interval := post_purchase.setting('frequency_cap_window')::interval;
	fallback text[] := post_purchase.setting_list('channel_fallback');
	exempt text[] := post_purchase.setting_list('consent_exempt_channels');
	quiet text[] := CASE WHEN post_purchase.setting('quiet_hours_start')::time
							  <> post_purchase.setting('quiet_hours_end')::time
						 THEN post_purchase.setting_list('quiet_hours_channels') ELSE '{}' END;
	decided integer;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 OR batch_size > 100000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 100000, not %', coalesce(batch_size::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT array_agg(c.enrollment_id) INTO ids
	FROM (SELECT x.enrollment_id
		  FROM post_purchase.enrollments x
		  JOIN post_purchase.journeys j ON j.name = x.journey
		  WHERE x.status = 'active' AND x.next_fire_at <= now() AND j.enabled
		  ORDER BY x.next_fire_at
		  LIMIT batch_size
		  FOR UPDATE OF x SKIP LOCKED
		  FOR SHARE OF j SKIP LOCKED) c;
	IF ids IS NULL THEN
		RETURN 0;
	END IF;

	FOR checked IN SELECT * FROM post_purchase.evaluate_step_conditions(ids) x WHERE x.reason IS NOT NULL LOOP
		failed_ids := failed_ids || checked.enrollment_id;
		failed_reasons := failed_reasons || checked.reason;
		failed_details := failed_details || checked.detail;
	END LOOP;

	WITH due AS (
		SELECT e.enrollment_id, e.customer_id, e.journey, e.next_position, e.anchor_at, e.holdout, e.variant,
			   e.context, e.enrolled_at, s.step, s.channel AS wanted, s.message_type, s.segment,
			   s.payload || coalesce(s.variant_payloads -> e.variant, '{}') AS template, s.uses_customer,
			   f.reason AS condition_reason, f.detail
		FROM post_purchase.enrollments e
		JOIN post_purchase.journey_steps s ON s.journey = e.journey AND s.position = e.next_position
		LEFT JOIN unnest(failed_ids, failed_reasons, failed_details) f(enrollment_id, reason, detail)
			ON f.enrollment_id = e.enrollment_id
		WHERE e.enrollment_id = ANY (ids)
	), routed AS (
		-- the channel: the step's own if the customer opted in (or it needs no
		-- consent); for 'preferred', the customer's preferred opted-in channel,
		-- else the first opted-in one in the channel_fallback order
		SELECT d.*, coalesce(r.channel, x.channel) AS channel, coalesce(r.address, x.address) AS address,
			   CASE WHEN d.holdout THEN 'holdout'
					WHEN d.segment IS NOT NULL AND NOT post_purchase.in_segment(d.customer_id, d.segment) THEN 'segment'
					WHEN d.condition_reason IS NOT NULL THEN d.condition_reason
					WHEN r.channel IS NULL AND x.channel IS NULL THEN 'no_consent'
			   END AS early_reason
		FROM due d
		LEFT JOIN LATERAL (
			SELECT c.channel, c.address FROM post_purchase.customer_channels c
			WHERE c.customer_id = d.customer_id AND c.opted_in
			  AND (c.channel = d.wanted OR (d.wanted = 'preferred' AND (c.preferred OR c.channel = ANY (fallback))))
			ORDER BY CASE WHEN c.channel = d.wanted OR c.preferred THEN 0 ELSE array_position(fallback, c.channel) END
			LIMIT 1) r ON true
		LEFT JOIN LATERAL (
			SELECT d.wanted AS channel, (SELECT c.address FROM post_purchase.customer_channels c
										 WHERE c.customer_id = d.customer_id AND c.channel = d.wanted) AS address
			WHERE d.wanted = ANY (exempt)) x ON true
	), capped AS (
		-- the cap counts earlier messages and the ones this batch sends first
		SELECT r.*,
			   CASE WHEN r.early_reason IS NOT NULL THEN r.early_reason
					WHEN cap > 0 AND
						 (SELECT count(*) FROM post_purchase.step_outcomes o
						  WHERE o.customer_id = r.customer_id AND o.channel = r.channel AND o.outcome = 'fired'
							AND o.decided_at > now() - cap_window)
						 + count(*) FILTER (WHERE r.early_reason IS NULL)
							 OVER (PARTITION BY r.customer_id, r.channel ORDER BY r.enrollment_id) > cap
					THEN 'frequency_cap'
			   END AS reason
		FROM routed r
	), timed AS (
		SELECT c.*,
			   CASE WHEN c.reason IS NOT NULL THEN NULL
					WHEN c.channel = ANY (quiet) THEN post_purchase.quiet_hours_end(c.customer_id, c.channel, now())
					ELSE now() END AS send_at
		FROM capped c
	), decided AS (
		-- the message's id up front: the outcome refers to it without a join
		SELECT t.*, CASE WHEN t.reason IS NULL AND t.send_at <= now() THEN gen_random_uuid() END AS message_id
		FROM timed t
	), sent AS (
		INSERT INTO post_purchase.outbox (id, aggregateid, type, payload, channel, address, journey, step, variant,
										  enrollment_id)
		SELECT d.message_id, d.customer_id, d.message_type,
			   post_purchase.render_payload(d.template,
				   jsonb_build_object(
					   'customer', CASE WHEN d.uses_customer THEN
						   (SELECT to_jsonb(m) FROM post_purchase.customer_metrics m WHERE m.customer_id = d.customer_id) END,
					   'customer_id', d.customer_id, 'journey', d.journey, 'step', d.step, 'variant', d.variant,
					   'channel', d.channel, 'address', d.address, 'enrollment_id', d.enrollment_id,
					   'enrolled_at', d.enrolled_at) || d.context),
			   d.channel, d.address, d.journey, d.step, d.variant, d.enrollment_id
		FROM decided d
		WHERE d.message_id IS NOT NULL
		-- a step decided again finds its message (and its outcome) in place
		ON CONFLICT ON CONSTRAINT outbox_idempotency DO NOTHING
	), recorded AS (
		INSERT INTO post_purchase.step_outcomes (enrollment_id, step, journey, customer_id, variant, holdout,
												 outcome, reason, detail, channel, outbox_id)
		SELECT d.enrollment_id, d.step, d.journey, d.customer_id, d.variant, d.holdout,
			   CASE WHEN d.reason IS NULL THEN 'fired' ELSE 'suppressed' END, d.reason,
			   CASE WHEN d.reason = 'condition_error' THEN d.detail END, d.channel, d.message_id
		FROM decided d
		WHERE d.reason IS NOT NULL OR d.send_at <= now()
		ON CONFLICT DO NOTHING
	), moved AS (
		-- quiet hours defer the step; otherwise on to the next step, or done
		UPDATE post_purchase.enrollments e
		SET next_fire_at = CASE WHEN d.send_at > now() THEN d.send_at WHEN n.position IS NOT NULL
								THEN e.anchor_at + n.delay END,
			next_position = CASE WHEN d.send_at > now() THEN e.next_position ELSE n.position END,
			status = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN 'active' ELSE 'completed' END,
			ended_at = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN NULL ELSE now() END,
			end_reason = CASE WHEN d.send_at > now() OR n.position IS NOT NULL THEN NULL ELSE 'completed' END
		FROM decided d
		LEFT JOIN LATERAL (SELECT x.position, x.delay FROM post_purchase.journey_steps x
						   WHERE x.journey = d.journey AND x.position > d.next_position
						   ORDER BY x.position LIMIT 1) n ON true
		WHERE e.enrollment_id = d.enrollment_id
	)
	SELECT count(*) INTO decided FROM decided d WHERE d.reason IS NOT NULL OR d.send_at <= now();
	RETURN decided;
END
$$;
COMMENT ON FUNCTION post_purchase.fire_due_steps(integer) IS
	'decide up to batch_size due journey steps: fire them into the outbox or record why not; the workers call it';
REVOKE ALL ON FUNCTION post_purchase.fire_due_steps(integer) FROM PUBLIC;

-- When the next step is due, for the workers' sleep.
CREATE FUNCTION post_purchase.next_due_at() RETURNS timestamptz
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT x.next_fire_at FROM post_purchase.enrollments x
	WHERE x.status = 'active'
	  AND EXISTS (SELECT FROM post_purchase.journeys j WHERE j.name = x.journey AND j.enabled)
	ORDER BY x.next_fire_at LIMIT 1
$$;
REVOKE ALL ON FUNCTION post_purchase.next_due_at() FROM PUBLIC;

-- Per journey, step and A/B variant: how many entered, what became of the
-- steps, what the senders reported, and what it earned.  A step converts
-- when its customer orders within attribution_window after it was decided
-- (recorded by the order trigger); the holdout's steps are decided at the
-- same time without a message, so the uplift compares like with like.
CREATE VIEW post_purchase.journey_stats AS
WITH enrolled AS (
	SELECT e.journey, e.variant, count(*) FILTER (WHERE NOT e.holdout) AS enrolled,
		   count(*) FILTER (WHERE e.holdout) AS holdout_enrolled
	FROM post_purchase.enrollments e GROUP BY e.journey, e.variant
), events AS (
	SELECT v.journey, v.step, v.variant,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'delivered') AS delivered,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'opened') AS opened,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'clicked') AS clicked,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'bounced') AS bounced,
		   count(DISTINCT v.outbox_id) FILTER (WHERE v.event = 'unsubscribed') AS unsubscribed
	FROM post_purchase.message_events v GROUP BY v.journey, v.step, v.variant
), steps AS (
	SELECT o.journey, o.step, o.variant,
		   count(*) FILTER (WHERE o.outcome = 'fired') AS fired,
		   count(*) FILTER (WHERE o.reason = 'holdout') AS held_out,
		   count(*) FILTER (WHERE o.reason = 'condition') AS suppressed_condition,
		   count(*) FILTER (WHERE o.reason = 'condition_error') AS suppressed_condition_error,
		   count(*) FILTER (WHERE o.reason = 'segment') AS suppressed_segment,
		   count(*) FILTER (WHERE o.reason = 'no_consent') AS suppressed_no_consent,
		   count(*) FILTER (WHERE o.reason = 'frequency_cap') AS suppressed_frequency_cap,
		   count(*) FILTER (WHERE o.outcome = 'fired' AND o.converted_at IS NOT NULL) AS converted,
		   coalesce(sum(o.attributed_revenue) FILTER (WHERE o.outcome = 'fired'), 0) AS attributed_revenue,
		   count(*) FILTER (WHERE o.reason = 'holdout' AND o.converted_at IS NOT NULL) AS holdout_converted
	FROM post_purchase.step_outcomes o GROUP BY o.journey, o.step, o.variant
)
SELECT s.journey, s.step, s.variant, coalesce(n.enrolled, 0) AS enrolled,
	   coalesce(n.holdout_enrolled, 0) AS holdout_enrolled, s.fired, s.held_out,
	   s.suppressed_condition, s.suppressed_condition_error, s.suppressed_segment, s.suppressed_no_consent,
	   s.suppressed_frequency_cap,
	   coalesce(v.delivered, 0) AS delivered, coalesce(v.opened, 0) AS opened, coalesce(v.clicked, 0) AS clicked,
	   coalesce(v.bounced, 0) AS bounced, coalesce(v.unsubscribed, 0) AS unsubscribed,
	   s.converted, s.attributed_revenue,
	   round(s.converted::numeric / nullif(s.fired, 0), 4) AS conversion_rate,
	   s.holdout_converted,
	   round(s.holdout_converted::numeric / nullif(s.held_out, 0), 4) AS holdout_conversion_rate,
	   round(s.converted::numeric / nullif(s.fired, 0) - s.holdout_converted::numeric / nullif(s.held_out, 0), 4)
		   AS uplift
FROM steps s
LEFT JOIN enrolled n ON n.journey = s.journey AND n.variant IS NOT DISTINCT FROM s.variant
LEFT JOIN events v ON v.journey = s.journey AND v.step = s.step AND v.variant IS NOT DISTINCT FROM s.variant;
COMMENT ON VIEW post_purchase.journey_stats IS
	'per journey, step and variant: enrolled, fired, suppressed by reason, delivered, opened, clicked, converted, attributed revenue, holdout conversion and uplift';

-- The seed programs: ready, disabled; enable_journey(name) starts one.
INSERT INTO post_purchase.journeys (name, trigger, nth_order, lapsed_days, lead_time, exit_on_purchase,
									reentry, reentry_interval, holdout_percent) VALUES
	('thank_you', 'every_order', NULL, NULL, NULL, false, 'every_time', NULL, 0),
	('how_to_guide', 'first_order', NULL, NULL, NULL, false, 'once', NULL, 0),
	('nps_survey', 'every_order', NULL, NULL, NULL, false, 'after_interval', '90 days', 0),
	('review_request', 'every_order', NULL, NULL, NULL, false, 'every_time', NULL, 0),
	('cross_sell', 'every_order', NULL, NULL, NULL, true, 'every_time', NULL, 10),
	('loyalty_invite', 'nth_order', 2, NULL, NULL, false, 'once', NULL, 0),
	('replenishment_reminder', 'replenishment_due', NULL, NULL, '3 days', true, 'every_time', NULL, 0),
	('win_back', 'lapsed', NULL, 180, NULL, true, 'every_time', NULL, 10);
INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, payload) VALUES
	('thank_you', 'thank_you', 1, '0', 'preferred', 'thank_you',
	 '{"subject": "Thank you for your order", "customer_id": "{{customer_id}}", "order": "{{order}}"}'),
	('how_to_guide', 'how_to_guide', 1, '2 days', 'email', 'how_to_guide',
	 '{"subject": "Getting the most out of your purchase", "order": "{{order}}"}'),
	('nps_survey', 'nps_survey', 1, '7 days', 'email', 'nps_survey',
	 '{"subject": "How likely are you to recommend us?", "scale": "0-10", "customer_id": "{{customer_id}}"}'),
	('review_request', 'review_request', 1, '14 days', 'email', 'review_request',
	 '{"subject": "How do you like it?", "order": "{{order}}"}'),
	('cross_sell', 'cross_sell', 1, '30 days', 'preferred', 'cross_sell',
	 '{"subject": "Picked for you", "customer_id": "{{customer_id}}", "rfm_segment": "{{customer.rfm_segment}}"}'),
	('loyalty_invite', 'loyalty_invite', 1, '0', 'email', 'loyalty_invite',
	 '{"subject": "Join our loyalty program", "orders": "{{customer.orders}}"}'),
	('replenishment_reminder', 'replenishment_reminder', 1, '0', 'preferred', 'replenishment_reminder',
	 '{"subject": "Running low?", "product_id": "{{product_id}}", "due_at": "{{due_at}}"}'),
	('win_back', 'win_back_offer', 1, '0', 'email', 'win_back',
	 '{"subject": "We miss you: 15% off your next order", "discount_code": "COMEBACK15", "discount_percent": 15, "last_order_at": "{{last_order_at}}"}'),
	('win_back', 'win_back_reminder', 2, '14 days', 'email', 'win_back_reminder',
	 '{"subject": "Your 15% off ends soon", "discount_code": "COMEBACK15", "discount_percent": 15}');
