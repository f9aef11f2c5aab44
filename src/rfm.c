/*
 * rfm.c
 *	  rfm_summary: a customer's purchase history in the conventions of the
 *	  "buy till you die" (BTYD) literature, the input of BG/NBD and Gamma-Gamma.
 *
 * Orders on one calendar day of the shop's time zone (an argument, else the
 * post_purchase.shop_time_zone setting, else the session's TimeZone: see
 * dayset.h) are one purchase.  frequency
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
#include "state_type.h"

typedef struct RfmState
{
	MemoryContext cxt;			/* the aggregate context the state lives in */
	/* the parameters, which must be the same on every row of a group */
	TimestampTz observed_until;
	double		unit_days;
	pg_tz	   *zone;			/* calendar days are this zone's */
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
PG_FUNCTION_INFO_V1(rfm_summary_state_in);
PG_FUNCTION_INFO_V1(rfm_summary_state_out);
PG_FUNCTION_INFO_V1(rfm_summary_state_recv);
PG_FUNCTION_INFO_V1(rfm_summary_state_send);
PG_FUNCTION_INFO_V1(rfm_summary_state_accum);
PG_FUNCTION_INFO_V1(rfm_summary_state_combine);
PG_FUNCTION_INFO_V1(rfm_summary_state_final);

/*
 * The parameters every row of a group must give alike.
 */
typedef struct RfmParameters
{
	TimestampTz observed_until;
	double		unit_days;
	pg_tz	   *zone;
} RfmParameters;

static void
rfm_state_init(RfmState *state, MemoryContext cxt, const RfmParameters *params)
{
	state->cxt = cxt;
	state->observed_until = params->observed_until;
	state->unit_days = params->unit_days;
	state->zone = params->zone;
	amount_sum_init(&state->total);
	amount_sum_init(&state->first);
	dayset_init(&state->days, cxt);
}

static RfmState *
rfm_state_new(MemoryContext cxt, const RfmParameters *params)
{
	RfmState   *state = MemoryContextAllocZero(cxt, sizeof(RfmState));

	rfm_state_init(state, cxt, params);
	return state;
}

static void rfm_write(StringInfo buf, void *state);
static void rfm_read(StringInfo buf, void *state, MemoryContext cxt);
static void rfm_kind_init(void *state, MemoryContext cxt);

/*
 * rfm_summary_state, the state of the 1.1 aggregates (state_type.h): an
 * expanded object over RfmState, whose flat form is what
 * rfm_summary_serialize writes for the "internal" state of 1.0.
 */
static const AggStateKind rfm_kind = {
	AGG_STATE_METHODS, "rfm_summary_state", sizeof(RfmState), rfm_kind_init, rfm_write, rfm_read
};

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

/*
 * The row's parameters.  The zone is resolved only on a group's first row
 * (state NULL) or when the row names one: the default cannot change within
 * a statement.  The 1.0 functions (zone_arg false) count in the session's
 * TimeZone, as 1.0 did.
 */
static void
check_parameters(FunctionCallInfo fcinfo, RfmParameters *params, const RfmState *state,
				 bool zone_arg)
{
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rfm_summary observed_until must not be null")));
	params->observed_until = PG_GETARG_TIMESTAMPTZ(3);
	if (TIMESTAMP_NOT_FINITE(params->observed_until))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("rfm_summary observed_until must be finite")));
	if (PG_NARGS() > 4)
	{
		if (PG_ARGISNULL(4))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("rfm_summary unit must not be null")));
		params->unit_days = unit_in_days(PG_GETARG_INTERVAL_P(4));
	}
	else
		params->unit_days = 1.0;
	if (!zone_arg)
		params->zone = session_timezone;
	else if (state == NULL || PG_NARGS() > 5)
		params->zone = purchase_zone_arg(fcinfo, 5, "rfm_summary");
	else
		params->zone = state->zone;
}

static void
check_same_parameters(const RfmState *a, const RfmParameters *params)
{
	if (a->observed_until != params->observed_until || a->unit_days != params->unit_days)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rfm_summary observed_until and unit must be the same for every row of a group")));
	if (!purchase_zones_equal(a->zone, params->zone))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rfm_summary time zone must be the same for every row of a group"),
				 errdetail("The group has days of time zone \"%s\" and of \"%s\".",
						   pg_get_timezone_name(a->zone), pg_get_timezone_name(params->zone)),
				 errhint("Give the zone as rfm_summary's last argument, or set post_purchase.shop_time_zone alike on every node.")));
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

/* One row: an order (arguments 1 and 2) unless a NULL or after the end. */
static void
rfm_add_row(FunctionCallInfo fcinfo, RfmState *state)
{
	TimestampTz ordered_at;

	/* NULL inputs are ignored, as by every SQL aggregate */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		return;
	ordered_at = PG_GETARG_TIMESTAMPTZ(1);
	if (ordered_at > state->observed_until)
		return;
	rfm_add_order(state, timestamptz_to_day_in(ordered_at, state->zone), PG_GETARG_DATUM(2));
}

Datum
rfm_summary_accum(PG_FUNCTION_ARGS)
{
	RfmState   *state = PG_ARGISNULL(0) ? NULL : (RfmState *) PG_GETARG_POINTER(0);
	RfmParameters params;

	check_parameters(fcinfo, &params, state, false);
	/* this runs once per order: check the call context only once per group */
	if (state == NULL)
		state = rfm_state_new(aggregate_context(fcinfo, "rfm_summary_accum"), &params);
	else
		check_same_parameters(state, &params);
	rfm_add_row(fcinfo, state);
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
		left = rfm_state_new(cxt, &(RfmParameters) {right->observed_until, right->unit_days, right->zone});
	else
		check_same_parameters(left, &(RfmParameters) {right->observed_until, right->unit_days, right->zone});
	rfm_merge(left, right);
	PG_RETURN_POINTER(left);
}

/* The binary form of a state: 1.0's serialized state, and 1.1's type. */
static void
rfm_write(StringInfo buf, void *arg)
{
	RfmState   *state = (RfmState *) arg;

	pq_sendint64(buf, state->observed_until);
	pq_sendfloat8(buf, state->unit_days);
	purchase_zone_write(buf, state->zone);
	pq_sendint32(buf, state->first_day);
	pq_sendint32(buf, state->last_day);
	amount_sum_serialize(buf, &state->total);
	amount_sum_serialize(buf, &state->first);
	dayset_serialize(buf, &state->days);
}

Datum
rfm_summary_serialize(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	rfm_write(&buf, PG_GETARG_POINTER(0));
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

/* A state from bytes that may not have come from rfm_write: checked. */
static void
rfm_read(StringInfo buf, void *arg, MemoryContext cxt)
{
	RfmState   *state = (RfmState *) arg;

	state->cxt = cxt;
	state->observed_until = pq_getmsgint64(buf);
	state->unit_days = pq_getmsgfloat8(buf);
	state->zone = purchase_zone_read(buf);
	state->first_day = pq_getmsgint(buf, 4);
	state->last_day = pq_getmsgint(buf, 4);
	amount_sum_deserialize(buf, &state->total, cxt);
	amount_sum_deserialize(buf, &state->first, cxt);
	dayset_deserialize(buf, &state->days, cxt);
	/* no interval is shorter than a microsecond: less would make t infinite */
	if (!(state->unit_days >= 0.5 / USECS_PER_DAY) || isinf(state->unit_days) ||
		!IS_VALID_TIMESTAMP(state->observed_until) ||
		!purchase_day_is_valid(state->first_day) || !purchase_day_is_valid(state->last_day) ||
		state->first_day > state->last_day)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid rfm_summary aggregate state")));
}

Datum
rfm_summary_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "rfm_summary_deserialize");
	RfmState   *state = MemoryContextAllocZero(cxt, sizeof(RfmState));
	StringInfoData buf;

	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	rfm_read(&buf, state, cxt);
	finish_deserializing_state(&buf);
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

static Datum rfm_summary_of(FunctionCallInfo fcinfo, RfmState *state);

Datum
rfm_summary_final(PG_FUNCTION_ARGS)
{
	return rfm_summary_of(fcinfo, PG_ARGISNULL(0) ? NULL : (RfmState *) PG_GETARG_POINTER(0));
}

/* The summary of a state: NULL when it saw no order (the state NULL too). */
static Datum
rfm_summary_of(FunctionCallInfo fcinfo, RfmState *state)
{
	PurchaseDay observed_day;
	int64		frequency;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	/* no order up to observed_until: the customer is not a customer yet */
	if (state == NULL || state->days.count == 0)
		PG_RETURN_NULL();

	dayset_compact(&state->days);
	frequency = state->days.count - 1;
	observed_day = timestamptz_to_day_in(state->observed_until, state->zone);

	values[0] = Int64GetDatum(frequency);
	values[1] = Float8GetDatum((state->last_day - state->first_day) / state->unit_days);
	values[2] = Float8GetDatum(((double) observed_day - state->first_day) / state->unit_days);
	values[3] = NumericGetDatum(repeat_purchase_mean(state, frequency));
	PG_RETURN_DATUM(form_result_row(fcinfo, values, nulls));
}

/* rfm_summary_state: the type and the 1.1 aggregates' functions */

static void
rfm_kind_init(void *state, MemoryContext cxt)
{
	RfmParameters none = {0, 1.0, NULL};

	rfm_state_init((RfmState *) state, cxt, &none);
}

Datum
rfm_summary_state_in(PG_FUNCTION_ARGS)
{
	return agg_state_in(fcinfo, &rfm_kind);
}

Datum
rfm_summary_state_out(PG_FUNCTION_ARGS)
{
	return agg_state_out(fcinfo, &rfm_kind);
}

Datum
rfm_summary_state_recv(PG_FUNCTION_ARGS)
{
	return agg_state_recv(fcinfo, &rfm_kind);
}

Datum
rfm_summary_state_send(PG_FUNCTION_ARGS)
{
	return agg_state_send(fcinfo, &rfm_kind);
}

/*
 * (state, ordered_at, amount, observed_until [, unit [, zone]]): the state,
 * updated in place in an aggregate (state_type.h).
 */
Datum
rfm_summary_state_accum(PG_FUNCTION_ARGS)
{
	bool		first = PG_ARGISNULL(0);
	ExpandedAggState *e = agg_state_for_update(fcinfo, 0, &rfm_kind);
	RfmState   *state = (RfmState *) EXPANDED_AGG_STATE_DATA(e);
	RfmParameters params;

	check_parameters(fcinfo, &params, first ? NULL : state, true);
	if (first)
		rfm_state_init(state, agg_state_context(e), &params);
	else
		check_same_parameters(state, &params);
	rfm_add_row(fcinfo, state);
	return agg_state_result(fcinfo, e);
}

Datum
rfm_summary_state_combine(PG_FUNCTION_ARGS)
{
	bool		first = PG_ARGISNULL(0);
	ExpandedAggState *e;
	RfmState   *left;
	RfmState   *right;

	if (PG_ARGISNULL(1))
	{
		if (first)
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	right = (RfmState *) agg_state_read(fcinfo, 1, &rfm_kind);
	e = agg_state_for_update(fcinfo, 0, &rfm_kind);
	left = (RfmState *) EXPANDED_AGG_STATE_DATA(e);
	if (first)
		rfm_state_init(left, agg_state_context(e), &(RfmParameters) {right->observed_until, right->unit_days, right->zone});
	else
		check_same_parameters(left, &(RfmParameters) {right->observed_until, right->unit_days, right->zone});
	rfm_merge(left, right);
	return agg_state_result(fcinfo, e);
}

Datum
rfm_summary_state_final(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	return rfm_summary_of(fcinfo, (RfmState *) agg_state_read(fcinfo, 0, &rfm_kind));
}
