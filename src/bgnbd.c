/*
 * bgnbd.c
 *	  The BG/NBD model of Fader, Hardie & Lee (2005), "Counting your customers
 *	  the easy way": customers buy at Poisson rate lambda ~ Gamma(r, alpha)
 *	  and after each purchase drop out with probability p ~ Beta(a, b).
 *
 * bgnbd_fit finds the maximum-likelihood (r, alpha, a, b) over weighted
 * customer summaries; the scoring functions evaluate the paper's formulas.
 */
#include "postgres.h"

#include <math.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_psi.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "aggregate.h"
#include "btyd.h"

/* the hypergeometric series gives up after this many terms ... */
#define SERIES_MAX_TERMS 5000
/* ... or when cancellation would leave fewer than about 8 good digits */
#define SERIES_MAX_CANCELLATION 1e8
#define INTEGRATION_WORKSPACE 200
#define INTEGRATION_REL_TOLERANCE 1e-10

PG_FUNCTION_INFO_V1(bgnbd_fit_accum);
PG_FUNCTION_INFO_V1(bgnbd_fit_final);
PG_FUNCTION_INFO_V1(bgnbd_fit_state_accum);
PG_FUNCTION_INFO_V1(bgnbd_fit_state_final);
PG_FUNCTION_INFO_V1(bgnbd_p_alive);
PG_FUNCTION_INFO_V1(bgnbd_expected_purchases);
PG_FUNCTION_INFO_V1(bgnbd_expected_purchases_population);
PG_FUNCTION_INFO_V1(bgnbd_probability_of_purchases);

/*
 * Minus the mean log-likelihood per customer, and its gradient, at
 * log-parameters theta = (log r, log alpha, log a, log b).  Summaries are
 * sorted by frequency, so the gamma and digamma terms, which depend on the
 * frequency alone, are computed once per distinct frequency.
 */
static double
bgnbd_objective(const double *theta, double *gradient, void *arg)
{
	const SummarySet *set = arg;
	double		r = exp(theta[0]),
				alpha = exp(theta[1]),
				a = exp(theta[2]),
				b = exp(theta[3]);
	double		ll = 0,
				dr = 0,
				dalpha = 0,
				da = 0,
				db = 0,
				total_weight = 0;
	double		log_alpha = log(alpha);
	double		x_prev = -1;
	double		gamma_part = 0,
				dgamma_r = 0,
				dgamma_a = 0,
				dgamma_b = 0,
				log_dropout = 0;	/* ln[a / (b + x - 1)] */

	if (!isfinite(r) || !isfinite(alpha) || !isfinite(a) || !isfinite(b) ||
		r == 0 || alpha == 0 || a == 0 || b == 0)
		return INFINITY;

	for (int64 i = 0; i < set->count; i++)
	{
		const CustomerSummary *c = &set->items[i];
		double		x = c->frequency;
		double		log_alpha_t = log(alpha + c->t);
		double		a3 = -(r + x) * log_alpha_t;
		double		w3 = 1,
					w4 = 0,
					log_alpha_tx = 0,
					term;

		if (x != x_prev)
		{
			/* ln[Gamma(r+x) alpha^r / Gamma(r)] + ln[B(a, b+x) / B(a, b)] */
			gamma_part = gsl_sf_lngamma(r + x) - gsl_sf_lngamma(r) + r * log_alpha +
				gsl_sf_lngamma(a + b) + gsl_sf_lngamma(b + x) - gsl_sf_lngamma(b) - gsl_sf_lngamma(a + b + x);
			if (gradient)
			{
				dgamma_r = gsl_sf_psi(r + x) - gsl_sf_psi(r) + log_alpha;
				dgamma_a = gsl_sf_psi(a + b) - gsl_sf_psi(a + b + x);
				dgamma_b = dgamma_a + gsl_sf_psi(b + x) - gsl_sf_psi(b);
			}
			if (x > 0)
				log_dropout = log(a) - log(b + x - 1);
			x_prev = x;
		}

		if (x > 0)
		{
			/*
			 * A dropout right after the last purchase, at t_x: the likelihood
			 * adds exp(a3) and exp(a4), in logs, and the gradient weighs the
			 * two by their shares; one exp serves all three.
			 */
			double		a4;
			double		e;

			log_alpha_tx = log(alpha + c->recency);
			a4 = log_dropout - (r + x) * log_alpha_tx;
			e = exp(-fabs(a4 - a3));
			term = Max(a3, a4) + log1p(e);
			w3 = (a3 >= a4 ? 1.0 : e) / (1.0 + e);
			w4 = 1.0 - w3;
		}
		else
			term = a3;

		ll += c->weight * (gamma_part + term);
		total_weight += c->weight;
		if (gradient)
		{
			dr += c->weight * (dgamma_r - w3 * log_alpha_t - w4 * log_alpha_tx);
			dalpha += c->weight * (r / alpha - w3 * (r + x) / (alpha + c->t) -
								   (x > 0 ? w4 * (r + x) / (alpha + c->recency) : 0));
			da += c->weight * (dgamma_a + w4 / a);
			db += c->weight * (dgamma_b - (x > 0 ? w4 / (b + x - 1) : 0));
		}
	}

	if (!isfinite(ll))
		return INFINITY;
	if (gradient)
	{
		/* d/d(log theta) = theta * d/d(theta); minimizing -ll / N */
		gradient[0] = -r * dr / total_weight;
		gradient[1] = -alpha * dalpha / total_weight;
		gradient[2] = -a * da / total_weight;
		gradient[3] = -b * db / total_weight;
	}
	return -ll / total_weight;
}

static void
bgnbd_fit_add_row(FunctionCallInfo fcinfo, ModelFitState *state)
{
	double		weight;

	/* a customer with an unknown summary tells nothing */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		return;
	check_customer(PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(3));
	weight = model_fit_weight(fcinfo, 4);
	if (weight > 0)
		summary_set_add(&state->customers, PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2),
						PG_GETARG_FLOAT8(3), weight);
}

Datum
bgnbd_fit_accum(PG_FUNCTION_ARGS)
{
	ModelFitState *state = model_fit_state(fcinfo, "bgnbd_fit_accum");

	bgnbd_fit_add_row(fcinfo, state);
	PG_RETURN_POINTER(state);
}

/* 1.1: the state is a model_fit_state, updated in place (state_type.h) */
Datum
bgnbd_fit_state_accum(PG_FUNCTION_ARGS)
{
	ExpandedAggState *e = agg_state_for_update(fcinfo, 0, &model_fit_kind);

	bgnbd_fit_add_row(fcinfo, (ModelFitState *) EXPANDED_AGG_STATE_DATA(e));
	return agg_state_result(fcinfo, e);
}

/*
 * Start where the data points: r / alpha is roughly the purchase rate of the
 * repeat buyers, and a = b = 1 is a uniform prior on the dropout probability.
 */
static void
bgnbd_start(const SummarySet *set, double *theta)
{
	double		purchases = 0,
				exposure = 0;

	for (int64 i = 0; i < set->count; i++)
	{
		purchases += set->items[i].weight * set->items[i].frequency;
		exposure += set->items[i].weight * set->items[i].t;
	}
	theta[0] = 0;
	theta[1] = log(Max(exposure, 1e-6) / Max(purchases, 1e-6));
	theta[2] = 0;
	theta[3] = 0;
}

static Datum bgnbd_fit_of(FunctionCallInfo fcinfo, ModelFitState *state);

Datum
bgnbd_fit_final(PG_FUNCTION_ARGS)
{
	return bgnbd_fit_of(fcinfo, PG_ARGISNULL(0) ? NULL : (ModelFitState *) PG_GETARG_POINTER(0));
}

Datum
bgnbd_fit_state_final(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return bgnbd_fit_of(fcinfo, (ModelFitState *) agg_state_read(fcinfo, 0, &model_fit_kind));
}

/* The fit of a state: NULL when it holds no customer. */
static Datum
bgnbd_fit_of(FunctionCallInfo fcinfo, ModelFitState *state)
{
	SummarySet *set;
	double		theta[4];
	double		customers = 0,
				repeat_buyers = 0;
	OptimizeResult fit;

	if (state == NULL || state->customers.count == 0)
		PG_RETURN_NULL();
	set = &state->customers;
	summary_set_compact(set);
	for (int64 i = 0; i < set->count; i++)
	{
		customers += set->items[i].weight;
		if (set->items[i].frequency > 0)
			repeat_buyers += set->items[i].weight;
	}
	/* with no repeat purchase the likelihood has no maximum (r / alpha -> 0) */
	if (repeat_buyers == 0 || set->count < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too few customers to fit a BG/NBD model"),
				 errdetail("The fit needs at least two distinct customer summaries and one repeat buyer; it got %g customers, %g of them repeat buyers.",
						   customers, repeat_buyers)));

	bgnbd_start(set, theta);
	fit = minimize(bgnbd_objective, set, 4, theta);

	PG_RETURN_DATUM(model_fit_result(fcinfo, theta, 4, &fit, customers));
}

/* a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x), in logs; -inf for x = 0 */
static double
log_dropout_odds(const BgnbdParams *m, double x, double tx, double T)
{
	if (x == 0)
		return -INFINITY;
	return log(m->a) - log(m->b + x - 1) + (m->r + x) * (log(m->alpha + T) - log(m->alpha + tx));
}

double
bgnbd_p_alive_of(const BgnbdParams *m, double x, double tx, double T)
{
	/* 1 / (1 + odds), which is 0, not NaN, when the odds overflow */
	return 1.0 / (1.0 + exp(log_dropout_odds(m, x, tx, T)));
}

/*
 * E[(1 - (beta / (beta + p t))^k) / p] for p ~ Beta(a, b): the expected
 * purchases in the next t of a customer alive now, with posterior
 * lambda ~ Gamma(k, beta) and p ~ Beta(a, b) (Fader, Hardie & Lee 2005,
 * eq. 10 and its derivation).  This equals
 *   (a + b - 1) / (a - 1) * [1 - (beta / (beta + t))^k 2F1(k, b; a + b - 1; z)]
 * with z = t / (beta + t).  The paper's form overflows for heavy buyers and
 * divides by zero at a = 1, so it is rewritten with Euler's transformation
 *   (1 - z)^k 2F1(k, b; c; z) = (1 - z)^(a - 1) 2F1(a - 1, c - k; c; z)
 * and the factor (a - 1) cancelled out of every term:
 *   c * { [1 - (1 - z)^(a - 1)] / (a - 1)
 *         - (1 - z)^(a - 1) * sum_{n >= 1} (a)_{n-1} (c - k)_n z^n / ((c)_n n!) }
 * with c = a + b - 1.  Every term is then small, and the series converges
 * fast unless t is long compared with beta.  When it does not converge within
 * SERIES_MAX_TERMS, or loses too many digits to cancellation, the expectation
 * is integrated numerically instead, with the Beta density as the weight of
 * GSL's QAWS rule, which handles its endpoint singularities exactly.
 */
typedef struct AliveIntegrand
{
	double		k;
	double		beta;
	double		t;
} AliveIntegrand;

static double
alive_integrand(double p, void *arg)
{
	const AliveIntegrand *f = arg;

	if (p <= 0)
		return f->k * f->t / f->beta;
	return -expm1(-f->k * log1p(p * f->t / f->beta)) / p;
}

static double
alive_expected_by_integration(double k, double beta, double a, double b, double t)
{
	AliveIntegrand params = {k, beta, t};
	gsl_function f = {alive_integrand, &params};
	gsl_integration_qaws_table *table = gsl_integration_qaws_table_alloc(a - 1, b - 1, 0, 0);
	gsl_integration_workspace *workspace = gsl_integration_workspace_alloc(INTEGRATION_WORKSPACE);
	double		integral = NAN,
				error;
	int			status = GSL_FAILURE;

	if (table && workspace)
		status = gsl_integration_qaws(&f, 0, 1, table, 0, INTEGRATION_REL_TOLERANCE,
									  INTEGRATION_WORKSPACE, workspace, &integral, &error);
	if (table)
		gsl_integration_qaws_table_free(table);
	if (workspace)
		gsl_integration_workspace_free(workspace);
	if (status != GSL_SUCCESS || !isfinite(integral))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("BG/NBD expected purchases could not be computed accurately"),
				 errdetail("k = %g, beta = %g, a = %g, b = %g, t = %g.", k, beta, a, b, t)));
	return exp(log(integral) - gsl_sf_lnbeta(a, b));
}

static double
alive_expected(double k, double beta, double a, double b, double t)
{
	double		c = a + b - 1;
	double		z = t / (beta + t);
	double		log_1mz = -log1p(t / beta);
	double		pow_1mz = exp((a - 1) * log_1mz);
	double		first = (a == 1) ? -log_1mz : -expm1((a - 1) * log_1mz) / (a - 1);
	double		term = 1,
				sum = 0,
				abs_sum = 0,
				result;
	int			n;

	if (t == 0)
		return 0;
	for (n = 1; n <= SERIES_MAX_TERMS; n++)
	{
		/* term_n = (a)_{n-1} (c - k)_n z^n / ((c)_n n!) */
		double		denominator = (c + n - 1) * n;

		if (denominator == 0)
			break;
		term *= (n == 1 ? 1 : (a + n - 2)) * (c - k + n - 1) * z / denominator;
		sum += term;
		abs_sum += fabs(term);
		if (fabs(term) <= 1e-17 * fabs(sum) || term == 0)
			break;
	}
	result = first - pow_1mz * sum;
	if (n > SERIES_MAX_TERMS || !isfinite(result) || result <= 0 ||
		fabs(first) + pow_1mz * abs_sum > SERIES_MAX_CANCELLATION * fabs(result))
		return alive_expected_by_integration(k, beta, a, b, t);
	return c * result;
}

/*
 * E[Y(horizon) | x, t_x, T]: expected repeat purchases in (T, T + horizon].
 * The posterior of a customer who is alive is lambda ~ Gamma(r + x, alpha + T),
 * p ~ Beta(a, b + x).
 */
double
bgnbd_conditional_expected(const BgnbdParams *m, double x, double tx, double T, double horizon)
{
	return bgnbd_p_alive_of(m, x, tx, T) *
		alive_expected(m->r + x, m->alpha + T, m->a, m->b + x, horizon);
}

static void
check_horizon(double horizon)
{
	check_finite(horizon, "horizon");
	if (horizon < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("horizon must not be negative, not %g", horizon)));
}

Datum
bgnbd_p_alive(PG_FUNCTION_ARGS)
{
	BgnbdParams m = bgnbd_params_arg(fcinfo, 0);
	double		x = PG_GETARG_FLOAT8(1),
				tx = PG_GETARG_FLOAT8(2),
				T = PG_GETARG_FLOAT8(3);

	check_customer(x, tx, T);
	PG_RETURN_FLOAT8(finite_result(bgnbd_p_alive_of(&m, x, tx, T), "bgnbd_p_alive"));
}

Datum
bgnbd_expected_purchases(PG_FUNCTION_ARGS)
{
	BgnbdParams m = bgnbd_params_arg(fcinfo, 0);
	double		x = PG_GETARG_FLOAT8(1),
				tx = PG_GETARG_FLOAT8(2),
				T = PG_GETARG_FLOAT8(3),
				horizon = PG_GETARG_FLOAT8(4);

	check_customer(x, tx, T);
	check_horizon(horizon);
	PG_RETURN_FLOAT8(finite_result(bgnbd_conditional_expected(&m, x, tx, T, horizon), "bgnbd_expected_purchases"));
}

/* E[X(t)] for a new customer: alive at 0, with the prior as posterior. */
Datum
bgnbd_expected_purchases_population(PG_FUNCTION_ARGS)
{
	BgnbdParams m = bgnbd_params_arg(fcinfo, 0);
	double		horizon = PG_GETARG_FLOAT8(1);

	check_horizon(horizon);
	PG_RETURN_FLOAT8(finite_result(alive_expected(m.r, m.alpha, m.a, m.b, horizon), "bgnbd_expected_purchases"));
}

/*
 * P(X(t) = n) (Fader, Hardie & Lee 2005, eq. 8):
 *   B(a, b + n) / B(a, b) * NB(n; r, alpha / (alpha + t))
 *   + [n > 0] B(a + 1, b + n - 1) / B(a, b) * P(NB(r, alpha / (alpha + t)) >= n)
 * where the negative binomial tail is a regularized incomplete beta function.
 */
Datum
bgnbd_probability_of_purchases(PG_FUNCTION_ARGS)
{
	BgnbdParams m = bgnbd_params_arg(fcinfo, 0);
	double		t = PG_GETARG_FLOAT8(1);
	int32		n = PG_GETARG_INT32(2);
	double		log_q,
				log_p,
				lnb_ab,
				result;

	check_horizon(t);
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of purchases must not be negative, not %d", n)));
	if (t == 0)
		PG_RETURN_FLOAT8(n == 0 ? 1.0 : 0.0);

	log_q = log(m.alpha) - log(m.alpha + t);	/* log(alpha / (alpha + t)) */
	log_p = log(t) - log(m.alpha + t);	/* log(t / (alpha + t)) */
	lnb_ab = gsl_sf_lnbeta(m.a, m.b);
	result = exp(gsl_sf_lnbeta(m.a, m.b + n) - lnb_ab +
				 gsl_sf_lngamma(m.r + n) - gsl_sf_lngamma(m.r) - gsl_sf_lngamma(n + 1.0) +
				 m.r * log_q + n * log_p);
	if (n > 0)
		result += exp(gsl_sf_lnbeta(m.a + 1, m.b + n - 1) - lnb_ab) *
			gsl_sf_beta_inc(n, m.r, t / (m.alpha + t));
	PG_RETURN_FLOAT8(finite_result(result, "bgnbd_probability_of_purchases"));
}
