/*
 * simulate.c
 *	  bgnbd_simulate: customers drawn from a BG/NBD model, as rfm_summary
 *	  would report them.  For parameter-recovery tests, synthetic shops and
 *	  "how much data do I need" questions.
 *
 * Each customer draws a purchase rate lambda ~ Gamma(r, alpha) and a dropout
 * probability p ~ Beta(a, b), makes a first purchase at time 0, buys again
 * after exponential waits, and after each repeat purchase drops out with
 * probability p (Fader, Hardie & Lee 2005, assumptions i-v).  GSL's Mersenne
 * Twister, seeded by the caller, makes the output reproducible.
 */
#include "postgres.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "btyd.h"

/*
 * No shop has customers with this many purchases; a model that simulates
 * them (a huge purchase rate, a dropout probability of about 0) would
 * otherwise keep one call busy for hours, or forever once the waits between
 * purchases fall below the precision of the clock.
 */
#define SIMULATE_MAX_PURCHASES 10000000

PG_FUNCTION_INFO_V1(bgnbd_simulate);

/* One customer's (frequency, recency) over an observation of length t. */
static void
simulate_customer(gsl_rng *rng, const BgnbdParams *m, double t, double *x, double *tx)
{
	double		lambda = gsl_ran_gamma(rng, m->r, 1.0 / m->alpha);
	double		p = gsl_ran_beta(rng, m->a, m->b);
	double		now = 0;

	*x = 0;
	*tx = 0;
	if (!(lambda > 0))
		return;
	for (;;)
	{
		now += gsl_ran_exponential(rng, 1.0 / lambda);
		if (now > t)
			return;
		*x += 1;
		*tx = now;
		if (gsl_rng_uniform(rng) < p)
			return;
		if (*x >= SIMULATE_MAX_PURCHASES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a simulated customer made more than %d purchases", SIMULATE_MAX_PURCHASES),
					 errdetail("The model's purchase rate is too high, or its dropout probability too low, for an observation of %g time units.", t),
					 errhint("Simulate a shorter observation, or check the model's parameters.")));
		/* long-lived heavy buyers take a while: stay cancellable */
		if ((int64) *x % 65536 == 0)
			CHECK_FOR_INTERRUPTS();
	}
}

Datum
bgnbd_simulate(PG_FUNCTION_ARGS)
{
	BgnbdParams m = bgnbd_params_arg(fcinfo, 0);
	int32		customers = PG_GETARG_INT32(1);
	double		t = PG_GETARG_FLOAT8(2);
	int64		seed = PG_GETARG_INT64(3);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	gsl_rng    *rng;

	check_finite(t, "t");
	if (t < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("t must not be negative, not %g", t)));
	if (customers < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("customers must not be negative, not %d", customers)));

	InitMaterializedSRF(fcinfo, 0);
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (rng == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	gsl_rng_set(rng, (unsigned long) seed);

	PG_TRY();
	{
		/* int64: the loop must end when customers is INT_MAX */
		for (int64 i = 1; i <= customers; i++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};
			double		x,
						tx;

			CHECK_FOR_INTERRUPTS();
			simulate_customer(rng, &m, t, &x, &tx);
			values[0] = Int32GetDatum((int32) i);
			values[1] = Float8GetDatum(x);
			values[2] = Float8GetDatum(tx);
			values[3] = Float8GetDatum(t);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		gsl_rng_free(rng);
	}
	PG_END_TRY();
	return (Datum) 0;
}
