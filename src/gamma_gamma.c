/*
 * gamma_gamma.c
 *	  The Gamma-Gamma model of spend (Fader & Hardie 2013, "The Gamma-Gamma
 *	  model of monetary value"): a customer's transactions have mean
 *	  p / nu with nu ~ Gamma(q, v) across customers.  Fitted on the repeat
 *	  buyers' frequency and mean repeat spend; independent of BG/NBD.
 */
#include "postgres.h"

#include <math.h>

#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_psi.h>

#include "fmgr.h"

#include "aggregate.h"
#include "btyd.h"

PG_FUNCTION_INFO_V1(gamma_gamma_fit_accum);
PG_FUNCTION_INFO_V1(gamma_gamma_fit_final);
PG_FUNCTION_INFO_V1(gamma_gamma_fit_state_accum);
PG_FUNCTION_INFO_V1(gamma_gamma_fit_state_final);
PG_FUNCTION_INFO_V1(gamma_gamma_expected_value);

/*
 * Minus the mean log-likelihood per customer and its gradient at
 * theta = (log p, log q, log v); each summary is (x, mean spend, 0, weight).
 * ll = lnG(px + q) - lnG(px) - lnG(q) + q ln v + (px - 1) ln m + px ln x
 *      - (px + q) ln(x m + v)
 */
static double
gamma_gamma_objective(const double *theta, double *gradient, void *arg)
{
	const SummarySet *set = arg;
	double		p = exp(theta[0]),
				q = exp(theta[1]),
				v = exp(theta[2]);
	double		ll = 0,
				dp = 0,
				dq = 0,
				dv = 0,
				total_weight = 0;
	double		log_v = log(v);
	double		lngamma_q = gsl_sf_lngamma(q),
				psi_q = gsl_sf_psi(q);

	if (!isfinite(p) || !isfinite(q) || !isfinite(v) || p == 0 || q == 0 || v == 0)
		return INFINITY;

	for (int64 i = 0; i < set->count; i++)
	{
		const CustomerSummary *c = &set->items[i];
		double		x = c->frequency,
					m = c->recency;
		double		px = p * x;
		double		log_xm_v = log(x * m + v);

		ll += c->weight * (gsl_sf_lngamma(px + q) - gsl_sf_lngamma(px) - lngamma_q + q * log_v +
						   (px - 1) * log(m) + px * log(x) - (px + q) * log_xm_v);
		total_weight += c->weight;
		if (gradient)
		{
			double		psi_pxq = gsl_sf_psi(px + q);

			dp += c->weight * x * (psi_pxq - gsl_sf_psi(px) + log(m) + log(x) - log_xm_v);
			dq += c->weight * (psi_pxq - psi_q + log_v - log_xm_v);
			dv += c->weight * (q / v - (px + q) / (x * m + v));
		}
	}
	if (!isfinite(ll))
		return INFINITY;
	if (gradient)
	{
		gradient[0] = -p * dp / total_weight;
		gradient[1] = -q * dq / total_weight;
		gradient[2] = -v * dv / total_weight;
	}
	return -ll / total_weight;
}

/*
 * Only repeat buyers inform the model: customers with frequency 0 are
 * skipped, so the aggregate can run over every customer's rfm_summary.
 */
static void
gamma_gamma_fit_add_row(FunctionCallInfo fcinfo, ModelFitState *state)
{
	double		frequency,
				monetary_value,
				weight;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		return;
	frequency = PG_GETARG_FLOAT8(1);
	monetary_value = PG_GETARG_FLOAT8(2);
	check_customer(frequency, 0, 0);
	check_finite(monetary_value, "monetary_value");
	if (frequency == 0)
		return;
	if (monetary_value <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("monetary_value must be positive for a repeat buyer, not %g", monetary_value),
				 errdetail("The Gamma-Gamma model describes positive spend; leave out or correct customers whose refunds exceed their purchases.")));
	weight = model_fit_weight(fcinfo, 3);
	if (weight > 0)
		summary_set_add(&state->customers, frequency, monetary_value, 0, weight);
}

Datum
gamma_gamma_fit_accum(PG_FUNCTION_ARGS)
{
	ModelFitState *state = model_fit_state(fcinfo, "gamma_gamma_fit_accum");

	gamma_gamma_fit_add_row(fcinfo, state);
	PG_RETURN_POINTER(state);
}

/* 1.1: the state is a model_fit_state, updated in place (state_type.h) */
Datum
gamma_gamma_fit_state_accum(PG_FUNCTION_ARGS)
{
	ExpandedAggState *e = agg_state_for_update(fcinfo, 0, &model_fit_kind);

	gamma_gamma_fit_add_row(fcinfo, (ModelFitState *) EXPANDED_AGG_STATE_DATA(e));
	return agg_state_result(fcinfo, e);
}

/* Moment-style start: mean spend p / nu ~ p * v / (q - 1) with q = 2, p = 1. */
static void
gamma_gamma_start(const SummarySet *set, double *theta)
{
	double		spend = 0,
				weight = 0;

	for (int64 i = 0; i < set->count; i++)
	{
		spend += set->items[i].weight * set->items[i].recency;
		weight += set->items[i].weight;
	}
	theta[0] = 0;
	theta[1] = log(2.0);
	theta[2] = log(spend / weight);
}

static Datum gamma_gamma_fit_of(FunctionCallInfo fcinfo, ModelFitState *state);

Datum
gamma_gamma_fit_final(PG_FUNCTION_ARGS)
{
	return gamma_gamma_fit_of(fcinfo, PG_ARGISNULL(0) ? NULL : (ModelFitState *) PG_GETARG_POINTER(0));
}

Datum
gamma_gamma_fit_state_final(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return gamma_gamma_fit_of(fcinfo, (ModelFitState *) agg_state_read(fcinfo, 0, &model_fit_kind));
}

/* The fit of a state: NULL when it holds no customer. */
static Datum
gamma_gamma_fit_of(FunctionCallInfo fcinfo, ModelFitState *state)
{
	SummarySet *set;
	double		theta[3];
	double		customers;
	OptimizeResult fit;

	if (state == NULL || state->customers.count == 0)
		PG_RETURN_NULL();
	set = &state->customers;
	summary_set_compact(set);
	customers = summary_set_total_weight(set);
	if (set->count < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too few customers to fit a Gamma-Gamma model"),
				 errdetail("The fit needs at least two distinct repeat buyers.")));

	gamma_gamma_start(set, theta);
	fit = minimize(gamma_gamma_objective, set, 3, theta);

	PG_RETURN_DATUM(model_fit_result(fcinfo, theta, 3, &fit, customers));
}

/*
 * E[M | x, mean spend]: a weighted mean of the population mean p v / (q - 1)
 * and the customer's own mean, the customer's weight growing with x.  It is
 * defined at a mean spend of 0 (repeat purchases that were free, or fully
 * refunded), where it shrinks toward the population mean: p v / (p x + q - 1).
 */
double
gamma_gamma_expected_of(const GammaGammaParams *m, double x, double mbar)
{
	return m->p * (m->v + x * mbar) / (m->p * x + m->q - 1);
}

/*
 * A repeat buyer's mean spend must be finite and not negative: the model is
 * one of non-negative spend, so a mean below 0 (refunds exceeding the
 * repeat purchases) has no expectation under it.  customer_metrics counts
 * such a customer's mean as 0 before it calls the model (predicted_clv_12m);
 * a caller of the functions decides for itself.  A one-time buyer's mean
 * spend does not enter the expectation.
 */
void
check_spend(double frequency, double monetary_value)
{
	check_finite(monetary_value, "monetary_value");
	if (frequency > 0 && monetary_value < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("monetary_value must not be negative for a repeat buyer, not %g", monetary_value),
				 errdetail("The Gamma-Gamma model describes non-negative spend."),
				 errhint("Pass GREATEST(monetary_value, 0) to value customers whose refunds exceed their purchases as spending nothing, as customer_metrics does.")));
}

Datum
gamma_gamma_expected_value(PG_FUNCTION_ARGS)
{
	GammaGammaParams m = gamma_gamma_params_arg(fcinfo, 0);
	double		frequency = PG_GETARG_FLOAT8(1);
	double		monetary_value = PG_GETARG_FLOAT8(2);

	check_customer(frequency, 0, 0);
	check_spend(frequency, monetary_value);
	PG_RETURN_FLOAT8(finite_result(gamma_gamma_expected_of(&m, frequency, monetary_value), "gamma_gamma_expected_value"));
}
