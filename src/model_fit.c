/*
 * model_fit.c
 *	  What bgnbd_fit and gamma_gamma_fit share: their aggregate state (a
 *	  SummarySet of weighted customer summaries), its combine, serialize and
 *	  deserialize functions, and the reading and checking of model composites.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "libpq/pqformat.h"

#include "aggregate.h"
#include "btyd.h"

PG_FUNCTION_INFO_V1(model_fit_combine);
PG_FUNCTION_INFO_V1(model_fit_serialize);
PG_FUNCTION_INFO_V1(model_fit_deserialize);
PG_FUNCTION_INFO_V1(model_fit_state_in);
PG_FUNCTION_INFO_V1(model_fit_state_out);
PG_FUNCTION_INFO_V1(model_fit_state_recv);
PG_FUNCTION_INFO_V1(model_fit_state_send);
PG_FUNCTION_INFO_V1(model_fit_state_combine);

static void
model_fit_kind_init(void *arg, MemoryContext cxt)
{
	ModelFitState *state = (ModelFitState *) arg;

	state->cxt = cxt;
	summary_set_init(&state->customers, cxt);
}

static void
model_fit_write(StringInfo buf, void *arg)
{
	summary_set_serialize(buf, &((ModelFitState *) arg)->customers);
}

static void
model_fit_read(StringInfo buf, void *arg, MemoryContext cxt)
{
	ModelFitState *state = (ModelFitState *) arg;

	state->cxt = cxt;
	summary_set_deserialize(buf, &state->customers, cxt);
}

/*
 * An expanded object over ModelFitState; its flat form is what
 * model_fit_serialize writes for the "internal" state of 1.0.
 */
const AggStateKind model_fit_kind = {
	AGG_STATE_METHODS, "model_fit_state", sizeof(ModelFitState), model_fit_kind_init, model_fit_write, model_fit_read
};

static ModelFitState *
model_fit_state_new(MemoryContext cxt)
{
	ModelFitState *state = MemoryContextAllocZero(cxt, sizeof(ModelFitState));

	state->cxt = cxt;
	summary_set_init(&state->customers, cxt);
	return state;
}

/* The transition state in argument 0, created on a group's first row. */
ModelFitState *
model_fit_state(FunctionCallInfo fcinfo, const char *function)
{
	if (PG_ARGISNULL(0))
		return model_fit_state_new(aggregate_context(fcinfo, function));
	return (ModelFitState *) PG_GETARG_POINTER(0);
}

void
check_finite(double value, const char *what)
{
	if (isnan(value) || isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what)));
}

/* The optional weight argument: 1 when absent; never negative. */
double
model_fit_weight(FunctionCallInfo fcinfo, int argno)
{
	double		weight;

	if (PG_NARGS() <= argno)
		return 1.0;
	if (PG_ARGISNULL(argno))
		return 0.0;
	weight = PG_GETARG_FLOAT8(argno);
	check_finite(weight, "weight");
	if (weight < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weight must not be negative")));
	return weight;
}

/*
 * A customer summary in the BTYD conventions: a whole number of repeat
 * purchases, 0 <= recency <= t, and recency 0 for customers who never came
 * back.  A customer first seen today has t = 0, which is valid.
 */
void
check_customer(double frequency, double recency, double t)
{
	check_finite(frequency, "frequency");
	check_finite(recency, "recency");
	check_finite(t, "t");
	if (frequency < 0 || frequency != floor(frequency))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("frequency must be a non-negative whole number, not %g", frequency),
				 errdetail("frequency counts repeat purchase days, as rfm_summary reports them.")));
	if (t < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("t must not be negative, not %g", t)));
	if (recency < 0 || recency > t)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recency %g is outside [0, t] for t = %g", recency, t),
				 errdetail("recency runs from the first to the last purchase, t from the first purchase to the end of observation.")));
	if (frequency == 0 && recency != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recency must be 0 when frequency is 0, not %g", recency)));
}

Datum
model_fit_combine(PG_FUNCTION_ARGS)
{
	ModelFitState *left = PG_ARGISNULL(0) ? NULL : (ModelFitState *) PG_GETARG_POINTER(0);
	ModelFitState *right = PG_ARGISNULL(1) ? NULL : (ModelFitState *) PG_GETARG_POINTER(1);

	/* a NULL pointer is no state: return SQL NULL, not a pointer to nothing */
	if (right == NULL)
	{
		if (left == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(left);
	}
	if (left == NULL)
		left = model_fit_state_new(aggregate_context(fcinfo, "model_fit_combine"));
	summary_set_add_all(&left->customers, &right->customers);
	PG_RETURN_POINTER(left);
}

Datum
model_fit_serialize(PG_FUNCTION_ARGS)
{
	ModelFitState *state = (ModelFitState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	model_fit_write(&buf, state);
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

Datum
model_fit_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "model_fit_deserialize");
	ModelFitState *state = MemoryContextAllocZero(cxt, sizeof(ModelFitState));
	StringInfoData buf;

	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	model_fit_read(&buf, state, cxt);
	finish_deserializing_state(&buf);
	PG_RETURN_POINTER(state);
}

Datum
model_fit_state_in(PG_FUNCTION_ARGS)
{
	return agg_state_in(fcinfo, &model_fit_kind);
}

Datum
model_fit_state_out(PG_FUNCTION_ARGS)
{
	return agg_state_out(fcinfo, &model_fit_kind);
}

Datum
model_fit_state_recv(PG_FUNCTION_ARGS)
{
	return agg_state_recv(fcinfo, &model_fit_kind);
}

Datum
model_fit_state_send(PG_FUNCTION_ARGS)
{
	return agg_state_send(fcinfo, &model_fit_kind);
}

Datum
model_fit_state_combine(PG_FUNCTION_ARGS)
{
	ModelFitState *right;
	ExpandedAggState *e;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	right = (ModelFitState *) agg_state_read(fcinfo, 1, &model_fit_kind);
	e = agg_state_for_update(fcinfo, 0, &model_fit_kind);
	summary_set_add_all(&((ModelFitState *) EXPANDED_AGG_STATE_DATA(e))->customers, &right->customers);
	return agg_state_result(fcinfo, e);
}

/*
 * A score to return: extreme parameters or spend values (a rate of 1e300, a
 * spend of 1e308) can overflow the formulas to infinity or NaN, which no
 * caller could use.  Those are range errors.
 */
double
finite_result(double value, const char *function)
{
	if (!isfinite(value))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range for these arguments", function),
				 errdetail("The model's parameters or the customer's values are too extreme for double precision.")));
	return value;
}

/*
 * The model composite a fit returns: the parameters (fitted as logs), the
 * summed log-likelihood, the number of customers and the convergence flag.
 */
Datum
model_fit_result(FunctionCallInfo fcinfo, const double *theta, int nparams,
				 const OptimizeResult *fit, double customers)
{
	Datum		values[MODEL_MAX_PARAMS + 3];
	bool		nulls[MODEL_MAX_PARAMS + 3] = {0};
	double		log_likelihood = -fit->value * customers;

	Assert(nparams <= MODEL_MAX_PARAMS);
	for (int i = 0; i < nparams; i++)
	{
		double		param = exp(theta[i]);

		/* a model no scoring function accepts is no result */
		if (!(param > 0) || isinf(param))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the model fit diverged: a parameter left the range of double precision"),
					 errhint("The summaries or spend values are too extreme to fit; check them for outliers.")));
		values[i] = Float8GetDatum(param);
	}
	if (!isfinite(log_likelihood))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the model fit diverged: its log-likelihood is not finite"),
				 errhint("The summaries or spend values are too extreme to fit; check them for outliers.")));
	values[nparams] = Float8GetDatum(log_likelihood);
	values[nparams + 1] = Float8GetDatum(customers);
	values[nparams + 2] = BoolGetDatum(fit->converged);
	return form_result_row(fcinfo, values, nulls);
}

/* A positive, finite model parameter from a model composite. */
static double
model_param(HeapTupleHeader model, const char *name)
{
	bool		isnull;
	Datum		value = GetAttributeByName(model, name, &isnull);
	double		param;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model parameter %s must not be null", name)));
	param = DatumGetFloat8(value);
	if (!(param > 0) || isinf(param))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model parameter %s must be positive and finite, not %g", name, param)));
	return param;
}

/* Scoring with a fit that did not converge would give confident nonsense. */
static void
check_converged(HeapTupleHeader model, const char *model_name)
{
	bool		isnull;
	Datum		converged = GetAttributeByName(model, "converged", &isnull);

	if (!isnull && !DatumGetBool(converged))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s model did not converge", model_name),
				 errhint("Refit with more customers, or check the summaries it was fitted on.")));
}

static BgnbdParams
bgnbd_params_from_datum(Datum datum)
{
	HeapTupleHeader model = DatumGetHeapTupleHeader(datum);
	BgnbdParams params;

	check_converged(model, "BG/NBD");
	params.r = model_param(model, "r");
	params.alpha = model_param(model, "alpha");
	params.a = model_param(model, "a");
	params.b = model_param(model, "b");
	return params;
}

static GammaGammaParams
gamma_gamma_params_from_datum(Datum datum)
{
	HeapTupleHeader model = DatumGetHeapTupleHeader(datum);
	GammaGammaParams params;

	check_converged(model, "Gamma-Gamma");
	params.p = model_param(model, "p");
	params.q = model_param(model, "q");
	params.v = model_param(model, "v");
	if (params.q <= 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Gamma-Gamma parameter q must be greater than 1, not %g", params.q),
				 errdetail("The expected spend p * v / (q - 1) is infinite otherwise.")));
	return params;
}

/*
 * Scoring a million customers with one model decodes the same composite a
 * million times; keep the last decoded model of each argument in fn_extra
 * and decode again only when the bytes differ.
 */
typedef struct ModelArgCache
{
	struct varlena *datum[2];	/* copies of the last model of arguments 0, 1 */
	BgnbdParams bgnbd;
	GammaGammaParams gamma_gamma;
} ModelArgCache;

static bool
cached_model(FunctionCallInfo fcinfo, int argno, ModelArgCache **cache_out)
{
	ModelArgCache *cache = (ModelArgCache *) fcinfo->flinfo->fn_extra;
	struct varlena *datum = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno)));
	struct varlena *cached;

	Assert(argno >= 0 && argno < 2);
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ModelArgCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	*cache_out = cache;
	cached = cache->datum[argno];
	return cached != NULL && VARSIZE_ANY(cached) == VARSIZE_ANY(datum) &&
		memcmp(cached, datum, VARSIZE_ANY(datum)) == 0;
}

static void
remember_model(FunctionCallInfo fcinfo, int argno, ModelArgCache *cache)
{
	struct varlena *datum = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno)));

	if (cache->datum[argno] != NULL)
		pfree(cache->datum[argno]);
	cache->datum[argno] = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARSIZE_ANY(datum));
	memcpy(cache->datum[argno], datum, VARSIZE_ANY(datum));
}

/* The BG/NBD model in argument argno, checked; decoded once per model. */
BgnbdParams
bgnbd_params_arg(FunctionCallInfo fcinfo, int argno)
{
	ModelArgCache *cache;

	if (!cached_model(fcinfo, argno, &cache))
	{
		cache->bgnbd = bgnbd_params_from_datum(PG_GETARG_DATUM(argno));
		remember_model(fcinfo, argno, cache);
	}
	return cache->bgnbd;
}

/* The Gamma-Gamma model in argument argno, checked; decoded once per model. */
GammaGammaParams
gamma_gamma_params_arg(FunctionCallInfo fcinfo, int argno)
{
	ModelArgCache *cache;

	if (!cached_model(fcinfo, argno, &cache))
	{
		cache->gamma_gamma = gamma_gamma_params_from_datum(PG_GETARG_DATUM(argno));
		remember_model(fcinfo, argno, cache);
	}
	return cache->gamma_gamma;
}
