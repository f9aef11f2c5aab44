/*
 * rfm.c
 *	  rfm_summary: a customer's purchase history in the conventions of the
 *	  "buy till you die" (BTYD) literature, the input of BG/NBD and Gamma-Gamma.
 *
 * Orders on one calendar day (session TimeZone) are one purchase.  frequency
 * counts repeat purchase days; recency runs from the first to the last
 * purchase day and T from the first purchase day to the day of
 * observed_until, both in units of "unit"; monetary_value is the mean value
 * of the repeat purchase days.  Orders after observed_until are ignored, so a
 * calibration/holdout split is one query.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregate.h"
#include "amount.h"
#include "dayset.h"

typedef struct RfmState
{
	MemoryContext cxt;			/* the aggregate context the state lives in */
	/* the parameters, which must be the same on every row of a group */
	TimestampTz observed_until;
	double		unit_days;
	/* the orders up to observed_until */
	PurchaseDay first_day;
	PurchaseDay last_day;
	AmountSum	total;			/* every order */
	AmountSum	first;			/* the orders on first_day */
	DaySet		days;
} RfmState;

PG_FUNCTION_INFO_V1(rfm_summary_accum);
PG_FUNCTION_INFO_V1(rfm_summary_combine);
PG_FUNCTION_INFO_V1(rfm_summary_serialize);
PG_FUNCTION_INFO_V1(rfm_summary_deserialize);
PG_FUNCTION_INFO_V1(rfm_summary_final);

static RfmState *
rfm_state_new(MemoryContext cxt, TimestampTz observed_until, double unit_days)
{
	RfmState   *state = MemoryContextAllocZero(cxt, sizeof(RfmState));

	state->cxt = cxt;
	state->observed_until = observed_until;
	state->unit_days = unit_days;
	amount_sum_init(&state->total);
	amount_sum_init(&state->first);
	dayset_init(&state->days, cxt);
	return state;
}

/* An interval as a number of days, months counted as 30 days like SQL does. */
static double
unit_in_days(const Interval *unit)
{
	double		days = (double) unit->month * DAYS_PER_MONTH + unit->day +
		(double) unit->time / USECS_PER_DAY;

	if (!(days > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rfm_summary unit must be a positive interval"),
				 errhint("Use '1 day' or '7 days' (weeks, as in the BTYD papers).")));
	return days;
}

/* The group's parameters, checked to be the same as on the first row. */
static void
check_parameters(FunctionCallInfo fcinfo, TimestampTz *observed_until, double *unit_days)
{
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rfm_summary observed_until must not be null")));
	*observed_until = PG_GETARG_TIMESTAMPTZ(3);
	if (TIMESTAMP_NOT_FINITE(*observed_until))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("rfm_summary observed_until must be finite")));
	if (PG_NARGS() > 4)
	{
		if (PG_ARGISNULL(4))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("rfm_summary unit must not be null")));
		*unit_days = unit_in_days(PG_GETARG_INTERVAL_P(4));
	}
	else
		*unit_days = 1.0;
}

static void
check_same_parameters(const RfmState *a, TimestampTz observed_until, double unit_days)
{
	if (a->observed_until != observed_until || a->unit_days != unit_days)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rfm_summary observed_until and unit must be the same for every row of a group")));
}

/* Record one purchase day and its amount. */
static void
rfm_add_order(RfmState *state, PurchaseDay day, Datum amount)
{
	MemoryContext cxt = state->cxt;
	/* the first and the last day are in the set already: skip touching it */
	bool		known_day = state->days.count > 0 &&
		(day == state->first_day || day == state->last_day);

	if (state->days.count == 0 || day < state->first_day)
	{
		state->first_day = day;
		amount_sum_init(&state->first);
	}
	if (day == state->first_day)
		amount_sum_add(&state->first, cxt, amount);
	if (state->days.count == 0 || day > state->last_day)
		state->last_day = day;
	amount_sum_add(&state->total, cxt, amount);
	if (!known_day)
		dayset_add(&state->days, day);
}

Datum
rfm_summary_accum(PG_FUNCTION_ARGS)
{
	RfmState   *state;
	TimestampTz observed_until;
	double		unit_days;
	TimestampTz ordered_at;

	/* this runs once per order: check the call context only once per group */
	check_parameters(fcinfo, &observed_until, &unit_days);
	if (PG_ARGISNULL(0))
		state = rfm_state_new(aggregate_context(fcinfo, "rfm_summary_accum"),
							  observed_until, unit_days);
	else
	{
		state = (RfmState *) PG_GETARG_POINTER(0);
		check_same_parameters(state, observed_until, unit_days);
	}

	/* NULL inputs are ignored, as by every SQL aggregate */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(state);
	ordered_at = PG_GETARG_TIMESTAMPTZ(1);
	if (ordered_at > observed_until)
		PG_RETURN_POINTER(state);

	rfm_add_order(state, timestamptz_to_day(ordered_at), PG_GETARG_DATUM(2));
	PG_RETURN_POINTER(state);
}

/* Fold "right" into "left". */
static void
rfm_merge(RfmState *left, const RfmState *right)
{
	MemoryContext cxt = left->cxt;

	if (right->days.count == 0)
		return;
	if (left->days.count == 0 || right->first_day < left->first_day)
	{
		left->first_day = right->first_day;
		amount_sum_init(&left->first);
	}
	if (right->first_day == left->first_day)
		amount_sum_add_sum(&left->first, cxt, &right->first);
	if (left->days.count == 0 || right->last_day > left->last_day)
		left->last_day = right->last_day;
	amount_sum_add_sum(&left->total, cxt, &right->total);
	dayset_add_all(&left->days, &right->days);
}

Datum
rfm_summary_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "rfm_summary_combine");
	RfmState   *left = PG_ARGISNULL(0) ? NULL : (RfmState *) PG_GETARG_POINTER(0);
	RfmState   *right = PG_ARGISNULL(1) ? NULL : (RfmState *) PG_GETARG_POINTER(1);

	/* a NULL pointer is no state: return SQL NULL, not a pointer to nothing */
	if (right == NULL)
	{
		if (left == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(left);
	}
	if (left == NULL)
		left = rfm_state_new(cxt, right->observed_until, right->unit_days);
	else
		check_same_parameters(left, right->observed_until, right->unit_days);
	rfm_merge(left, right);
	PG_RETURN_POINTER(left);
}

Datum
rfm_summary_serialize(PG_FUNCTION_ARGS)
{
	RfmState   *state = (RfmState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, state->observed_until);
	pq_sendfloat8(&buf, state->unit_days);
	pq_sendint32(&buf, state->first_day);
	pq_sendint32(&buf, state->last_day);
	amount_sum_serialize(&buf, &state->total);
	amount_sum_serialize(&buf, &state->first);
	dayset_serialize(&buf, &state->days);
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

Datum
rfm_summary_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "rfm_summary_deserialize");
	RfmState   *state = MemoryContextAllocZero(cxt, sizeof(RfmState));
	StringInfoData buf;

	state->cxt = cxt;
	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	state->observed_until = pq_getmsgint64(&buf);
	state->unit_days = pq_getmsgfloat8(&buf);
	state->first_day = pq_getmsgint(&buf, 4);
	state->last_day = pq_getmsgint(&buf, 4);
	amount_sum_deserialize(&buf, &state->total, cxt);
	amount_sum_deserialize(&buf, &state->first, cxt);
	dayset_deserialize(&buf, &state->days, cxt);
	finish_deserializing_state(&buf);
	/* no interval is shorter than a microsecond: less would make t infinite */
	if (!(state->unit_days >= 0.5 / USECS_PER_DAY) || isinf(state->unit_days) ||
		!IS_VALID_TIMESTAMP(state->observed_until) ||
		!purchase_day_is_valid(state->first_day) || !purchase_day_is_valid(state->last_day) ||
		state->first_day > state->last_day)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid rfm_summary aggregate state")));
	PG_RETURN_POINTER(state);
}

/* The mean value of the repeat purchases: every day's spend but the first's. */
static Numeric
repeat_purchase_mean(const RfmState *state, int64 frequency)
{
	Numeric		repeat_spend;

	if (frequency == 0)
		return int64_to_numeric(0);
	repeat_spend = numeric_sub_opt_error(amount_sum_value(&state->total),
										 amount_sum_value(&state->first), NULL);
	/* 22.35, not 22.3500000000000000 */
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
											   NumericGetDatum(numeric_div_opt_error(repeat_spend, int64_to_numeric(frequency), NULL))));
}

Datum
rfm_summary_final(PG_FUNCTION_ARGS)
{
	RfmState   *state = PG_ARGISNULL(0) ? NULL : (RfmState *) PG_GETARG_POINTER(0);
	PurchaseDay observed_day;
	int64		frequency;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	/* no order up to observed_until: the customer is not a customer yet */
	if (state == NULL || state->days.count == 0)
		PG_RETURN_NULL();

	dayset_compact(&state->days);
	frequency = state->days.count - 1;
	observed_day = timestamptz_to_day(state->observed_until);

	values[0] = Int64GetDatum(frequency);
	values[1] = Float8GetDatum((state->last_day - state->first_day) / state->unit_days);
	values[2] = Float8GetDatum(((double) observed_day - state->first_day) / state->unit_days);
	values[3] = NumericGetDatum(repeat_purchase_mean(state, frequency));
	PG_RETURN_DATUM(form_result_row(fcinfo, values, nulls));
}
