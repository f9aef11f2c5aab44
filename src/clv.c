/*
 * clv.c
 *	  Predicted customer lifetime value from BG/NBD and Gamma-Gamma.
 *
 * clv = sum over months k = 1..months of
 *   E[spend] * (E[purchases by month k] - E[purchases by month k - 1]) / (1 + d)^k
 * the discounted cash flow of lifetimes' customer_lifetime_value.  A month is
 * 30 days; "unit" states the time unit the BG/NBD model was fitted in (that of
 * rfm_summary's unit), so months convert to model time.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/timestamp.h"

#include "btyd.h"

#define CLV_DAYS_PER_MONTH 30.0
#define CLV_MAX_MONTHS 1200

PG_FUNCTION_INFO_V1(clv);

Datum
clv(PG_FUNCTION_ARGS)
{
	BgnbdParams bg = bgnbd_params_arg(fcinfo, 0);
	GammaGammaParams gg = gamma_gamma_params_arg(fcinfo, 1);
	double		x = PG_GETARG_FLOAT8(2),
				tx = PG_GETARG_FLOAT8(3),
				T = PG_GETARG_FLOAT8(4),
				monetary_value = PG_GETARG_FLOAT8(5);
	int32		months = PG_GETARG_INT32(6);
	double		discount_rate = PG_GETARG_FLOAT8(7);
	Interval   *unit = PG_GETARG_INTERVAL_P(8);
	double		unit_days = (double) unit->month * DAYS_PER_MONTH + unit->day +
		(double) unit->time / USECS_PER_DAY;
	double		month_in_units,
				spend,
				previous = 0,
				value = 0;

	check_customer(x, tx, T);
	check_spend(x, monetary_value);
	check_finite(discount_rate, "discount_rate");
	if (months < 0 || months > CLV_MAX_MONTHS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("months must be between 0 and %d, not %d", CLV_MAX_MONTHS, months)));
	if (discount_rate <= -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("discount_rate must be greater than -1, not %g", discount_rate)));
	if (!(unit_days > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unit must be a positive interval")));

	month_in_units = CLV_DAYS_PER_MONTH / unit_days;
	spend = gamma_gamma_expected_of(&gg, x, monetary_value);
	for (int32 k = 1; k <= months; k++)
	{
		double		cumulative = bgnbd_conditional_expected(&bg, x, tx, T, k * month_in_units);

		value += spend * (cumulative - previous) / pow(1 + discount_rate, k);
		previous = cumulative;
	}
	PG_RETURN_FLOAT8(finite_result(value, "clv"));
}
