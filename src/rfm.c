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
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
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

/*
 * rfm_summary_state, the state of the 1.1 aggregates, in memory: a flat
 * value (state_type.h) the transition updates in place.  After the struct
 * come the zone's name and a NUL; then, once an amount did not fit the
 * fixed-point sums, the overflow area (MAXALIGNed: RfmOverflow and a slot
 * for each sum's numeric); then room for "capacity" purchase days.  The
 * type's binary and text forms are what rfm_summary_serialize writes for
 * the "internal" state of 1.0 (rfm_write), not this struct.
 */
#define RFM_FLAT_VERSION 1

typedef struct RfmFlat
{
	int32		vl_len_;		/* varlena header: the whole value, room included */
	uint8		version;		/* RFM_FLAT_VERSION */
	uint8		zone_len;		/* of the zone's name */
	bool		compact;		/* the days are sorted and distinct */
	bool		overflow;		/* the overflow area is there */
	int32		count;			/* days used */
	int32		capacity;		/* days room */
	PurchaseDay first_day;
	PurchaseDay last_day;
	int32		total_dscale;
	int32		first_dscale;
	TimestampTz observed_until;
	double		unit_days;
	AmountFixed total;			/* every order */
	AmountFixed first;			/* the orders on first_day */
} RfmFlat;

/* the sums, in the order of the overflow area's slots */
#define RFM_TOTAL	0
#define RFM_FIRST	1

typedef struct RfmOverflow
{
	uint32		slot[2];		/* bytes of each slot: a numeric, or zeros for none */
} RfmOverflow;

/* room a slot leaves for its numeric to grow: a rebuild per 16 digits or so */
#define RFM_SLOT_ROOM 8

static void rfm_write(StringInfo buf, void *state);
static void rfm_read(StringInfo buf, void *state, MemoryContext cxt);

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
 * The row's observed_until and unit (the zone is the caller's: the 1.0
 * functions count in the session's TimeZone, as 1.0 did).
 */
static void
check_parameters(FunctionCallInfo fcinfo, RfmParameters *params)
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
	params->zone = session_timezone;
}

static void
report_other_parameters(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("rfm_summary observed_until and unit must be the same for every row of a group")));
}

#define RFM_ZONE_HINT \
	"Give the zone as rfm_summary's last argument, or set post_purchase.shop_time_zone alike on every node."
#define PURCHASE_TOTALS_ZONE_HINT "Give one zone for every row of a group."

static void
report_other_zone(const char *function, const char *hint, const char *zone, const char *other)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s time zone must be the same for every row of a group", function),
			 errdetail("The group has days of time zone \"%s\" and of \"%s\".", zone, other),
			 errhint("%s", hint)));
}

static void
check_same_parameters(const RfmState *a, const RfmParameters *params)
{
	if (a->observed_until != params->observed_until || a->unit_days != params->unit_days)
		report_other_parameters();
	if (!purchase_zones_equal(a->zone, params->zone))
		report_other_zone("rfm_summary", RFM_ZONE_HINT, pg_get_timezone_name(a->zone),
						  pg_get_timezone_name(params->zone));
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

	check_parameters(fcinfo, &params);
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
	/* once per customer of a GROUP BY: the descriptor is looked up once */
	PG_RETURN_DATUM(form_result_row_cached(fcinfo, &zoned_call_site(fcinfo)->result, values, nulls));
}

/* rfm_summary_state: the type and the 1.1 aggregates' functions */

static inline char *
rfm_zone_name(const RfmFlat *s)
{
	return (char *) s + sizeof(RfmFlat);
}

static inline Size
rfm_overflow_offset(int zone_len)
{
	return MAXALIGN(sizeof(RfmFlat) + zone_len + 1);
}

static inline RfmOverflow *
rfm_overflow_area(const RfmFlat *s)
{
	return (RfmOverflow *) ((char *) s + rfm_overflow_offset(s->zone_len));
}

/* Where the days start, for a zone name's length and the slots' sizes. */
static inline Size
rfm_days_offset_for(int zone_len, uint32 slot0, uint32 slot1)
{
	if (slot0 + slot1 == 0)
		return INTALIGN(sizeof(RfmFlat) + zone_len + 1);
	return rfm_overflow_offset(zone_len) + MAXALIGN(sizeof(RfmOverflow)) + slot0 + slot1;
}

static inline PurchaseDay *
rfm_days(const RfmFlat *s)
{
	RfmOverflow *o;

	if (likely(!s->overflow))
		return (PurchaseDay *) ((char *) s + INTALIGN(sizeof(RfmFlat) + s->zone_len + 1));
	o = rfm_overflow_area(s);
	return (PurchaseDay *) ((char *) s + rfm_days_offset_for(s->zone_len, o->slot[0], o->slot[1]));
}

static inline char *
rfm_slot(const RfmFlat *s, int which)
{
	RfmOverflow *o = rfm_overflow_area(s);

	return (char *) o + MAXALIGN(sizeof(RfmOverflow)) + (which == RFM_FIRST ? o->slot[0] : 0);
}

/* A sum's overflow numeric, or NULL. */
static Numeric
rfm_overflow_sum(const RfmFlat *s, int which)
{
	char	   *slot;

	if (likely(!s->overflow) || rfm_overflow_area(s)->slot[which] == 0)
		return NULL;
	slot = rfm_slot(s, which);
	return VARSIZE(slot) == 0 ? NULL : (Numeric) slot;
}

/*
 * A new value with room for at least min_capacity days and the given slots,
 * zeroed but for its layout, in the current memory context: the executor
 * copies a new value into the aggregate's memory.
 */
static RfmFlat *
rfm_flat_alloc(int zone_len, int32 min_capacity, uint32 slot0, uint32 slot1)
{
	Size		days_offset = rfm_days_offset_for(zone_len, slot0, slot1);
	Size		size = flat_state_size(days_offset + (Size) min_capacity * sizeof(PurchaseDay));
	RfmFlat    *s;

	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct purchase days in one group")));
	s = palloc0(size);
	SET_VARSIZE(s, size);
	s->version = RFM_FLAT_VERSION;
	s->zone_len = zone_len;
	s->compact = true;
	s->capacity = (int32) ((size - days_offset) / sizeof(PurchaseDay));
	if (slot0 + slot1 > 0)
	{
		s->overflow = true;
		rfm_overflow_area(s)->slot[0] = slot0;
		rfm_overflow_area(s)->slot[1] = slot1;
	}
	return s;
}

static uint32
rfm_slot_for(Numeric sum)
{
	return sum == NULL ? 0 : MAXALIGN(VARSIZE(sum) + RFM_SLOT_ROOM);
}

/*
 * A copy of s with room for min_capacity days and the overflow sums given
 * (NULL: none), for when s has no room for them.  s stays as it was: in an
 * aggregate it is the executor's to free once the copy is returned.
 */
static RfmFlat *
rfm_flat_rebuild(const RfmFlat *s, int32 min_capacity, Numeric total, Numeric first)
{
	RfmFlat    *n = rfm_flat_alloc(s->zone_len, Max(min_capacity, s->count),
								   rfm_slot_for(total), rfm_slot_for(first));
	RfmFlat		layout = *n;

	memcpy(n, s, sizeof(RfmFlat));
	n->vl_len_ = layout.vl_len_;
	n->capacity = layout.capacity;
	n->overflow = layout.overflow;
	memcpy(rfm_zone_name(n), rfm_zone_name(s), s->zone_len + 1);
	if (total != NULL)
		memcpy(rfm_slot(n, RFM_TOTAL), total, VARSIZE(total));
	if (first != NULL)
		memcpy(rfm_slot(n, RFM_FIRST), first, VARSIZE(first));
	memcpy(rfm_days(n), rfm_days(s), s->count * sizeof(PurchaseDay));
	return n;
}

/* Set a sum's overflow numeric: in place when its slot has room. */
static RfmFlat *
rfm_set_overflow(RfmFlat *s, int which, Numeric sum)
{
	Numeric		total;
	Numeric		first;

	if (s->overflow && rfm_overflow_area(s)->slot[which] >= VARSIZE(sum))
	{
		memcpy(rfm_slot(s, which), sum, VARSIZE(sum));
		return s;
	}
	total = which == RFM_TOTAL ? sum : rfm_overflow_sum(s, RFM_TOTAL);
	first = which == RFM_FIRST ? sum : rfm_overflow_sum(s, RFM_FIRST);
	return rfm_flat_rebuild(s, s->count, total, first);
}

static AmountFixed *
rfm_fixed(RfmFlat *s, int which)
{
	return which == RFM_TOTAL ? &s->total : &s->first;
}

static int32 *
rfm_dscale(RfmFlat *s, int which)
{
	return which == RFM_TOTAL ? &s->total_dscale : &s->first_dscale;
}

/* Add one order's amount to a sum; the exact numeric path is the rare one. */
static RfmFlat *
rfm_add_amount(RfmFlat *s, int which, Datum amount)
{
	Numeric		prev;

	if (likely(amount_fixed_add(rfm_fixed(s, which), rfm_dscale(s, which), amount)))
		return s;
	prev = rfm_overflow_sum(s, which);
	return rfm_set_overflow(s, which, prev == NULL ? DatumGetNumeric(amount) :
							numeric_add_opt_error(prev, DatumGetNumeric(amount), NULL));
}

/* Add another state's sum (its fixed part, scale and overflow) to a sum. */
static RfmFlat *
rfm_add_sum(RfmFlat *s, int which, const AmountFixed *fixed, int32 dscale, Numeric overflow)
{
	Numeric		extra = NULL;
	Numeric		prev;

	if (!amount_fixed_add_fixed(rfm_fixed(s, which), fixed))
		extra = amount_fixed_numeric(fixed);
	if (overflow != NULL)
		extra = extra == NULL ? overflow : numeric_add_opt_error(extra, overflow, NULL);
	*rfm_dscale(s, which) = Max(*rfm_dscale(s, which), dscale);
	if (extra == NULL)
		return s;
	prev = rfm_overflow_sum(s, which);
	return rfm_set_overflow(s, which, prev == NULL ? extra : numeric_add_opt_error(prev, extra, NULL));
}

/* A new first purchase day: its spend starts from nothing. */
static void
rfm_reset_first(RfmFlat *s)
{
	amount_fixed_zero(&s->first);
	s->first_dscale = 0;
	if (rfm_overflow_sum(s, RFM_FIRST) != NULL)
		memset(rfm_slot(s, RFM_FIRST), 0, VARHDRSZ);
}

/* Record one purchase day and its amount, as rfm_add_order does. */
static RfmFlat *
rfm_flat_add_order(RfmFlat *s, PurchaseDay day, Datum amount)
{
	/* the first and the last day are in the set already: skip touching it */
	bool		known_day = s->count > 0 && (day == s->first_day || day == s->last_day);
	int32		want;

	if (s->count == 0 || day < s->first_day)
	{
		s->first_day = day;
		rfm_reset_first(s);
	}
	if (day == s->first_day)
		s = rfm_add_amount(s, RFM_FIRST, amount);
	if (s->count == 0 || day > s->last_day)
		s->last_day = day;
	s = rfm_add_amount(s, RFM_TOTAL, amount);
	if (known_day)
		return s;
	want = flat_days_add(rfm_days(s), &s->count, s->capacity, &s->compact, day);
	if (unlikely(want != 0))
	{
		s = rfm_flat_rebuild(s, want, rfm_overflow_sum(s, RFM_TOTAL), rfm_overflow_sum(s, RFM_FIRST));
		(void) flat_days_add(rfm_days(s), &s->count, s->capacity, &s->compact, day);
	}
	return s;
}

/* Fold "right" into "left", as rfm_merge does. */
static RfmFlat *
rfm_flat_merge(RfmFlat *left, const RfmFlat *right)
{
	int32		want;

	if (right->count == 0)
		return left;
	if (left->count == 0 || right->first_day < left->first_day)
	{
		left->first_day = right->first_day;
		rfm_reset_first(left);
	}
	if (right->first_day == left->first_day)
		left = rfm_add_sum(left, RFM_FIRST, &right->first, right->first_dscale,
						   rfm_overflow_sum(right, RFM_FIRST));
	if (left->count == 0 || right->last_day > left->last_day)
		left->last_day = right->last_day;
	left = rfm_add_sum(left, RFM_TOTAL, &right->total, right->total_dscale,
					   rfm_overflow_sum(right, RFM_TOTAL));
	want = flat_days_add_all(rfm_days(left), &left->count, left->capacity, &left->compact,
							 rfm_days(right), right->count, right->compact);
	if (want != 0)
	{
		left = rfm_flat_rebuild(left, want, rfm_overflow_sum(left, RFM_TOTAL),
								rfm_overflow_sum(left, RFM_FIRST));
		(void) flat_days_add_all(rfm_days(left), &left->count, left->capacity, &left->compact,
								 rfm_days(right), right->count, right->compact);
	}
	return left;
}

/* A group's state on its first row. */
static RfmFlat *
rfm_flat_new(const RfmParameters *params)
{
	const char *zone = pg_get_timezone_name(params->zone);
	int			zone_len = strlen(zone);
	RfmFlat    *s;

	if (zone_len < 1 || zone_len > TZ_STRLEN_MAX)
		elog(ERROR, "time zone name of unexpected length %d", zone_len);
	s = rfm_flat_alloc(zone_len, DAYSET_INLINE_DAYS, 0, 0);
	s->observed_until = params->observed_until;
	s->unit_days = params->unit_days;
	memcpy(rfm_zone_name(s), zone, zone_len + 1);
	return s;
}

/*
 * A state value made by someone else (a table's, an argument's): the
 * struct is what this code wrote, or the type's input function, so only
 * its layout's version and bounds are checked.
 */
static const RfmFlat *
rfm_flat_arg(FunctionCallInfo fcinfo, int argno)
{
	RfmFlat    *s = (RfmFlat *) PG_DETOAST_DATUM(PG_GETARG_DATUM(argno));

	if (VARSIZE(s) < sizeof(RfmFlat) || s->version != RFM_FLAT_VERSION || s->zone_len == 0 ||
		s->count < 0 || s->count > s->capacity ||
		(s->overflow && rfm_overflow_offset(s->zone_len) + sizeof(RfmOverflow) > VARSIZE(s)) ||
		(char *) (rfm_days(s) + s->capacity) > (char *) s + VARSIZE(s))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("rfm_summary_state value of an unknown layout")));
	return s;
}

/*
 * The state in argument argno, to update: in an aggregate, its own
 * transition value, in place; otherwise a copy, since a caller's value must
 * not change.
 */
static RfmFlat *
rfm_flat_for_update(FunctionCallInfo fcinfo, int argno)
{
	if (AggCheckCallContext(fcinfo, NULL))
		return (RfmFlat *) PG_GETARG_POINTER(argno);
	return flat_state_copy(rfm_flat_arg(fcinfo, argno));
}

/*
 * The state as an RfmState that reads it, for the code the "internal"
 * state shares: the binary form and the final function.
 */
static void
rfm_flat_view(FunctionCallInfo fcinfo, const RfmFlat *s, RfmState *view)
{
	memset(view, 0, sizeof(RfmState));
	view->cxt = CurrentMemoryContext;
	view->observed_until = s->observed_until;
	view->unit_days = s->unit_days;
	view->zone = purchase_zone_cached(&zoned_call_site(fcinfo)->state, rfm_zone_name(s), s->zone_len);
	view->first_day = s->first_day;
	view->last_day = s->last_day;
	view->total.fixed = s->total;
	view->total.overflow = rfm_overflow_sum(s, RFM_TOTAL);
	view->total.dscale = s->total_dscale;
	view->first.fixed = s->first;
	view->first.overflow = rfm_overflow_sum(s, RFM_FIRST);
	view->first.dscale = s->first_dscale;
	flat_days_view(&view->days, rfm_days(s), s->count, s->compact);
}

/* The state from its binary form, checked by rfm_read. */
static RfmFlat *
rfm_flat_from_bytes(StringInfo buf)
{
	RfmState	state;
	const char *zone;
	int			zone_len;
	RfmFlat    *s;

	memset(&state, 0, sizeof(RfmState));
	rfm_read(buf, &state, CurrentMemoryContext);
	finish_deserializing_state(buf);
	zone = pg_get_timezone_name(state.zone);
	zone_len = strlen(zone);
	if (zone_len < 1 || zone_len > TZ_STRLEN_MAX)
		elog(ERROR, "time zone name of unexpected length %d", zone_len);
	s = rfm_flat_alloc(zone_len, Max(state.days.count, DAYSET_INLINE_DAYS),
					   rfm_slot_for(state.total.overflow), rfm_slot_for(state.first.overflow));
	s->observed_until = state.observed_until;
	s->unit_days = state.unit_days;
	memcpy(rfm_zone_name(s), zone, zone_len + 1);
	s->first_day = state.first_day;
	s->last_day = state.last_day;
	s->total = state.total.fixed;
	s->total_dscale = state.total.dscale;
	s->first = state.first.fixed;
	s->first_dscale = state.first.dscale;
	if (state.total.overflow != NULL)
		memcpy(rfm_slot(s, RFM_TOTAL), state.total.overflow, VARSIZE(state.total.overflow));
	if (state.first.overflow != NULL)
		memcpy(rfm_slot(s, RFM_FIRST), state.first.overflow, VARSIZE(state.first.overflow));
	/* the binary form's days are distinct and in order */
	memcpy(rfm_days(s), state.days.days, state.days.count * sizeof(PurchaseDay));
	s->count = state.days.count;
	return s;
}

/* The binary form, into buf. */
static void
rfm_flat_write(FunctionCallInfo fcinfo, StringInfo buf, const RfmFlat *s)
{
	RfmState	view;

	rfm_flat_view(fcinfo, s, &view);
	rfm_write(buf, &view);
}

Datum
rfm_summary_state_in(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	state_text_to_bytes(PG_GETARG_CSTRING(0), &buf, "rfm_summary_state");
	PG_RETURN_POINTER(rfm_flat_from_bytes(&buf));
}

Datum
rfm_summary_state_out(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	rfm_flat_write(fcinfo, &buf, rfm_flat_arg(fcinfo, 0));
	PG_RETURN_CSTRING(state_bytes_to_text(buf.data, buf.len));
}

Datum
rfm_summary_state_recv(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(rfm_flat_from_bytes((StringInfo) PG_GETARG_POINTER(0)));
}

Datum
rfm_summary_state_send(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	rfm_flat_write(fcinfo, &buf, rfm_flat_arg(fcinfo, 0));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * The transition of the flat state with the row's parameters: the state,
 * updated in place in an aggregate (state_type.h).  The zone is argument
 * zone_argno, else the default; zone_hint says how to give one zone.  It
 * is resolved on a group's first row, or when the row names one (the
 * default cannot change within a statement); the other rows find the
 * state's zone by its name in the call site's cache.
 */
static Datum
rfm_flat_accum(FunctionCallInfo fcinfo, RfmParameters *params, int zone_argno, const char *function,
			   const char *zone_hint)
{
	ZonedCallSite *site = zoned_call_site(fcinfo);
	RfmFlat    *s;
	pg_tz	   *zone = NULL;
	TimestampTz ordered_at;

	if (PG_ARGISNULL(0))
	{
		params->zone = zone = purchase_zone_arg(fcinfo, zone_argno, function, &site->arg);
		s = rfm_flat_new(params);
	}
	else
	{
		s = rfm_flat_for_update(fcinfo, 0);
		if (s->observed_until != params->observed_until || s->unit_days != params->unit_days)
			report_other_parameters();
		if (PG_NARGS() > zone_argno)
		{
			const char *name;

			zone = purchase_zone_arg(fcinfo, zone_argno, function, &site->arg);
			name = pg_get_timezone_name(zone);
			if (!purchase_zone_names_equal(rfm_zone_name(s), s->zone_len, name, strlen(name)))
				report_other_zone(function, zone_hint, rfm_zone_name(s), name);
		}
	}
	/* NULL inputs are ignored, as by every SQL aggregate */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	ordered_at = PG_GETARG_TIMESTAMPTZ(1);
	if (ordered_at > s->observed_until)
		PG_RETURN_POINTER(s);
	if (zone == NULL)
		zone = purchase_zone_cached(&site->state, rfm_zone_name(s), s->zone_len);
	PG_RETURN_POINTER(rfm_flat_add_order(s, timestamptz_to_day_in(ordered_at, zone), PG_GETARG_DATUM(2)));
}

/* (state, ordered_at, amount, observed_until [, unit [, zone]]) */
Datum
rfm_summary_state_accum(PG_FUNCTION_ARGS)
{
	RfmParameters params;

	check_parameters(fcinfo, &params);
	return rfm_flat_accum(fcinfo, &params, 5, "rfm_summary", RFM_ZONE_HINT);
}

/*
 * Two partial states of different zones, in the combine function that
 * rfm_summary and purchase_totals share: named for the aggregate that
 * called it (a partition's or a worker's partial states meet here).
 */
static void
report_other_zone_combined(FunctionCallInfo fcinfo, const char *zone, const char *other)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	char	   *name = aggref != NULL ? get_func_name(aggref->aggfnoid) : NULL;

	if (name != NULL && strcmp(name, "purchase_totals") == 0)
		report_other_zone(name, PURCHASE_TOTALS_ZONE_HINT, zone, other);
	else
		report_other_zone("rfm_summary", RFM_ZONE_HINT, zone, other);
}

Datum
rfm_summary_state_combine(PG_FUNCTION_ARGS)
{
	const RfmFlat *right;
	RfmFlat    *left;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	right = rfm_flat_arg(fcinfo, 1);
	/* the executor copies a returned value that is not its own */
	if (PG_ARGISNULL(0))
		PG_RETURN_POINTER(right);
	left = rfm_flat_for_update(fcinfo, 0);
	if (left->observed_until != right->observed_until || left->unit_days != right->unit_days)
		report_other_parameters();
	if (!purchase_zone_names_equal(rfm_zone_name(left), left->zone_len, rfm_zone_name(right), right->zone_len))
		report_other_zone_combined(fcinfo, rfm_zone_name(left), rfm_zone_name(right));
	PG_RETURN_POINTER(rfm_flat_merge(left, right));
}

Datum
rfm_summary_state_final(PG_FUNCTION_ARGS)
{
	const RfmFlat *s;
	RfmState	view;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = rfm_flat_arg(fcinfo, 0);
	/* no order up to observed_until: the customer is not a customer yet */
	if (s->count == 0)
		PG_RETURN_NULL();
	rfm_flat_view(fcinfo, s, &view);
	return rfm_summary_of(fcinfo, &view);
}

/*
 * purchase_totals(ordered_at, amount, time_zone): what the customer state
 * keeps of a customer's orders beyond counts and times (purchase days,
 * first and last day, revenue, the first day's revenue), on rfm_summary's
 * state with every order counting.  The backfill, verify_state() and the
 * order trigger's recompute (src/tracking.sql, src/tracking.c) share it, so
 * that one definition says what those columns mean.
 */
PG_FUNCTION_INFO_V1(purchase_totals_accum);
PG_FUNCTION_INFO_V1(purchase_totals_final);

Datum
purchase_totals_accum(PG_FUNCTION_ARGS)
{
	/* the last valid time: no order is after it */
	RfmParameters params = {.observed_until = END_TIMESTAMP - 1, .unit_days = 1.0};

	/* an infinite time is an error, as in the order trigger, not an order after the end */
	if (!PG_ARGISNULL(1))
		check_purchase_timestamp(PG_GETARG_TIMESTAMPTZ(1));
	return rfm_flat_accum(fcinfo, &params, 3, "purchase_totals", PURCHASE_TOTALS_ZONE_HINT);
}

/*
 * The totals as a purchase_totals row; NULL for no order.  The state is
 * only read: unsorted days are counted in a copy (rfm_flat_view).  The
 * row's descriptor is kept in the call site, since a backfill calls this
 * once for each of a million customers.
 */
Datum
purchase_totals_final(PG_FUNCTION_ARGS)
{
	const RfmFlat *s;
	RfmState	view;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = rfm_flat_arg(fcinfo, 0);
	if (s->count == 0)
		PG_RETURN_NULL();
	rfm_flat_view(fcinfo, s, &view);
	dayset_compact(&view.days);
	values[0] = Int64GetDatum(view.days.count);
	values[1] = DateADTGetDatum(view.first_day);
	values[2] = DateADTGetDatum(view.last_day);
	values[3] = NumericGetDatum(amount_sum_value(&view.total));
	values[4] = NumericGetDatum(amount_sum_value(&view.first));
	PG_RETURN_DATUM(form_result_row_cached(fcinfo, &zoned_call_site(fcinfo)->result, values, nulls));
}
