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

-- The aggregates' state is a type of its own, not "internal", so that Citus
-- splits them into a partial aggregate per shard and a combine on the
-- coordinator (src/state_type.h says what it requires).
CREATE TYPE post_purchase.model_fit_state;
CREATE FUNCTION post_purchase.model_fit_state_in(cstring) RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_state_out(post_purchase.model_fit_state) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_state_recv(internal) RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION post_purchase.model_fit_state_send(post_purchase.model_fit_state) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE post_purchase.model_fit_state (
	INPUT = post_purchase.model_fit_state_in,
	OUTPUT = post_purchase.model_fit_state_out,
	RECEIVE = post_purchase.model_fit_state_recv,
	SEND = post_purchase.model_fit_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);
COMMENT ON TYPE post_purchase.model_fit_state IS
	'the state of bgnbd_fit and gamma_gamma_fit: the weighted distinct customer summaries; text form \x and hex';

CREATE FUNCTION post_purchase.model_fit_state_combine(post_purchase.model_fit_state, post_purchase.model_fit_state) RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION post_purchase.bgnbd_fit_state_accum(post_purchase.model_fit_state, double precision, double precision, double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.bgnbd_fit_state_accum(post_purchase.model_fit_state, double precision, double precision, double precision,
													double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.bgnbd_fit_state_final(post_purchase.model_fit_state) RETURNS post_purchase.bgnbd_model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.bgnbd_fit(frequency double precision, recency double precision,
										 t double precision) (
	SFUNC = post_purchase.bgnbd_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.bgnbd_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
	PARALLEL = SAFE
);
CREATE AGGREGATE post_purchase.bgnbd_fit(frequency double precision, recency double precision,
										 t double precision, weight double precision) (
	SFUNC = post_purchase.bgnbd_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.bgnbd_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
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

CREATE FUNCTION post_purchase.gamma_gamma_fit_state_accum(post_purchase.model_fit_state, double precision, double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.gamma_gamma_fit_state_accum(post_purchase.model_fit_state, double precision, double precision,
														  double precision)
	RETURNS post_purchase.model_fit_state
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION post_purchase.gamma_gamma_fit_state_final(post_purchase.model_fit_state) RETURNS post_purchase.gamma_gamma_model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE post_purchase.gamma_gamma_fit(frequency double precision, monetary_value double precision) (
	SFUNC = post_purchase.gamma_gamma_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.gamma_gamma_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
	PARALLEL = SAFE
);
CREATE AGGREGATE post_purchase.gamma_gamma_fit(frequency double precision, monetary_value double precision,
											   weight double precision) (
	SFUNC = post_purchase.gamma_gamma_fit_state_accum,
	STYPE = post_purchase.model_fit_state,
	FINALFUNC = post_purchase.gamma_gamma_fit_state_final,
	COMBINEFUNC = post_purchase.model_fit_state_combine,
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
