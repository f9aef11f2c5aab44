/*
 * purchase_cycle.c
 *	  How often a customer buys, and when the next purchase is due:
 *	  the purchase_cycle aggregate and replenishment_due.
 *
 * purchase_cycle looks at purchase days (orders on one calendar day of the
 * session TimeZone are one purchase, as in rfm_summary) and reports the
 * median and mean gap between consecutive purchase days.  The median is the
 * customer's cycle: a single stock-up or a skipped month does not move it.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregate.h"
#include "dayset.h"

typedef struct CycleState
{
	TimestampTz last_purchase;	/* exact time of the latest order */
	DaySet		days;
} CycleState;

PG_FUNCTION_INFO_V1(purchase_cycle_accum);
PG_FUNCTION_INFO_V1(purchase_cycle_combine);
PG_FUNCTION_INFO_V1(purchase_cycle_serialize);
PG_FUNCTION_INFO_V1(purchase_cycle_deserialize);
PG_FUNCTION_INFO_V1(purchase_cycle_final);
PG_FUNCTION_INFO_V1(replenishment_due);

static bool
numeric_is_negative(Numeric value)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(value),
											 NumericGetDatum(int64_to_numeric(0)))) < 0;
}

static CycleState *
cycle_state_new(MemoryContext cxt)
{
	CycleState *state = MemoryContextAllocZero(cxt, sizeof(CycleState));

	dayset_init(&state->days, cxt);
	return state;
}

Datum
purchase_cycle_accum(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "purchase_cycle_accum");
	CycleState *state = PG_ARGISNULL(0) ? cycle_state_new(cxt) : (CycleState *) PG_GETARG_POINTER(0);
	TimestampTz ordered_at;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(state);
	ordered_at = PG_GETARG_TIMESTAMPTZ(1);
	if (state->days.count == 0 || ordered_at > state->last_purchase)
		state->last_purchase = ordered_at;
	dayset_add(&state->days, timestamptz_to_day(ordered_at));
	PG_RETURN_POINTER(state);
}

Datum
purchase_cycle_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "purchase_cycle_combine");
	CycleState *left = PG_ARGISNULL(0) ? NULL : (CycleState *) PG_GETARG_POINTER(0);
	CycleState *right = PG_ARGISNULL(1) ? NULL : (CycleState *) PG_GETARG_POINTER(1);

	/* a NULL pointer is no state: return SQL NULL, not a pointer to nothing */
	if (right == NULL || right->days.count == 0)
	{
		if (left == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(left);
	}
	if (left == NULL)
		left = cycle_state_new(cxt);
	if (left->days.count == 0 || right->last_purchase > left->last_purchase)
		left->last_purchase = right->last_purchase;
	dayset_add_all(&left->days, &right->days);
	PG_RETURN_POINTER(left);
}

Datum
purchase_cycle_serialize(PG_FUNCTION_ARGS)
{
	CycleState *state = (CycleState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, state->last_purchase);
	dayset_serialize(&buf, &state->days);
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

Datum
purchase_cycle_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "purchase_cycle_deserialize");
	CycleState *state = MemoryContextAllocZero(cxt, sizeof(CycleState));
	StringInfoData buf;

	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	state->last_purchase = pq_getmsgint64(&buf);
	dayset_deserialize(&buf, &state->days, cxt);
	finish_deserializing_state(&buf);
	/* the accumulator refuses infinite order times */
	if (state->days.count > 0 && !IS_VALID_TIMESTAMP(state->last_purchase))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid purchase_cycle aggregate state"),
				 errdetail("The last purchase is not a finite timestamp.")));
	PG_RETURN_POINTER(state);
}

/* A number of days, possibly fractional, as an interval of days and time. */
static Interval *
days_to_interval(double days)
{
	Interval   *result = palloc0(sizeof(Interval));
	double		whole = floor(days);

	result->day = (int32) whole;
	result->time = (TimeOffset) rint((days - whole) * USECS_PER_DAY);
	return result;
}

static int
int32_cmp(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/* The median of n >= 1 gaps; sorts them in place. */
static double
median_gap(int32 *gaps, int32 n)
{
	qsort(gaps, n, sizeof(int32), int32_cmp);
	if (n % 2 == 1)
		return gaps[n / 2];
	return (gaps[n / 2 - 1] + (double) gaps[n / 2]) / 2.0;
}

Datum
purchase_cycle_final(PG_FUNCTION_ARGS)
{
	CycleState *state = PG_ARGISNULL(0) ? NULL : (CycleState *) PG_GETARG_POINTER(0);
	DaySet	   *days;
	int32		ngaps;
	int32	   *gaps;
	Interval   *median;
	Datum		values[5];
	bool		nulls[5] = {false, true, true, false, true};

	if (state == NULL || state->days.count == 0)
		PG_RETURN_NULL();

	days = &state->days;
	dayset_compact(days);
	values[0] = Int64GetDatum(days->count);
	values[3] = TimestampTzGetDatum(state->last_purchase);

	/* a cycle needs at least two purchase days */
	ngaps = days->count - 1;
	if (ngaps > 0)
	{
		gaps = palloc(ngaps * sizeof(int32));
		for (int32 i = 0; i < ngaps; i++)
			gaps[i] = days->days[i + 1] - days->days[i];
		/* the span over the number of gaps is the mean gap */
		values[2] = IntervalPGetDatum(days_to_interval((days->days[ngaps] - (double) days->days[0]) / ngaps));
		median = days_to_interval(median_gap(gaps, ngaps));
		values[1] = IntervalPGetDatum(median);
		values[4] = DirectFunctionCall2(timestamptz_pl_interval, values[3], IntervalPGetDatum(median));
		nulls[1] = nulls[2] = nulls[4] = false;
	}
	PG_RETURN_DATUM(form_result_row(fcinfo, values, nulls));
}

/*
 * replenishment_due(last_purchase, quantity, days_per_unit): when a purchase
 * of "quantity" units, each lasting "days_per_unit" days, runs out.  Days are
 * 24 hours, so the result does not depend on the session's time zone and the
 * function is IMMUTABLE (usable in indexes and generated columns).
 */
Datum
replenishment_due(PG_FUNCTION_ARGS)
{
	TimestampTz last_purchase = PG_GETARG_TIMESTAMPTZ(0);
	Numeric		quantity = PG_GETARG_NUMERIC(1);
	Numeric		days_per_unit = PG_GETARG_NUMERIC(2);
	double		days;
	double		usecs;
	TimestampTz due;

	if (numeric_is_nan(quantity) || numeric_is_inf(quantity) ||
		numeric_is_nan(days_per_unit) || numeric_is_inf(days_per_unit))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replenishment_due quantity and days_per_unit must be finite")));
	if (numeric_is_negative(quantity) || numeric_is_negative(days_per_unit))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replenishment_due quantity and days_per_unit must not be negative")));

	/* an infinite purchase time stays infinite, as in timestamp arithmetic */
	if (TIMESTAMP_NOT_FINITE(last_purchase))
		PG_RETURN_TIMESTAMPTZ(last_purchase);

	days = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											  NumericGetDatum(numeric_mul_opt_error(quantity, days_per_unit, NULL))));
	usecs = rint(days * USECS_PER_DAY);
	/* both bounds keep the cast and the addition inside int64 */
	if (!(usecs < (double) END_TIMESTAMP - (double) MIN_TIMESTAMP) ||
		pg_add_s64_overflow(last_purchase, (int64) usecs, &due) ||
		!IS_VALID_TIMESTAMP(due))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 errdetail("The replenishment due date is past the end of the timestamp range.")));
	PG_RETURN_TIMESTAMPTZ(due);
}
