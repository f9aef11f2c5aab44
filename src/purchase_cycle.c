/*
 * purchase_cycle.c
 *	  How often a customer buys, and when the next purchase is due:
 *	  the purchase_cycle aggregate and replenishment_due.
 *
 * purchase_cycle looks at purchase days (orders on one calendar day of the
 * shop's time zone are one purchase, as in rfm_summary: the zone argument,
 * else the post_purchase.shop_time_zone setting, else the session's
 * TimeZone; see dayset.h) and reports the
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
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregate.h"
#include "dayset.h"
#include "state_type.h"

typedef struct CycleState
{
	TimestampTz last_purchase;	/* exact time of the latest order */
	pg_tz	   *zone;			/* calendar days are this zone's */
	DaySet		days;
} CycleState;

PG_FUNCTION_INFO_V1(purchase_cycle_accum);
PG_FUNCTION_INFO_V1(purchase_cycle_combine);
PG_FUNCTION_INFO_V1(purchase_cycle_serialize);
PG_FUNCTION_INFO_V1(purchase_cycle_deserialize);
PG_FUNCTION_INFO_V1(purchase_cycle_final);
PG_FUNCTION_INFO_V1(replenishment_due);
PG_FUNCTION_INFO_V1(purchase_cycle_state_in);
PG_FUNCTION_INFO_V1(purchase_cycle_state_out);
PG_FUNCTION_INFO_V1(purchase_cycle_state_recv);
PG_FUNCTION_INFO_V1(purchase_cycle_state_send);
PG_FUNCTION_INFO_V1(purchase_cycle_state_accum);
PG_FUNCTION_INFO_V1(purchase_cycle_state_combine);
PG_FUNCTION_INFO_V1(purchase_cycle_state_final);

/*
 * purchase_cycle_state, the state of the 1.1 aggregates, in memory: a flat
 * value (state_type.h) the transition updates in place.  After the struct
 * come the zone's name and a NUL, then room for "capacity" purchase days.
 * The type's binary and text forms are what purchase_cycle_serialize
 * writes for the "internal" state of 1.0 (cycle_write), not this struct.
 */
#define CYCLE_FLAT_VERSION 1

typedef struct CycleFlat
{
	int32		vl_len_;		/* varlena header: the whole value, room included */
	uint8		version;		/* CYCLE_FLAT_VERSION */
	uint8		zone_len;		/* of the zone's name */
	bool		compact;		/* the days are sorted and distinct */
	int32		count;			/* days used */
	int32		capacity;		/* days room */
	TimestampTz last_purchase;	/* exact time of the latest order */
} CycleFlat;

static void cycle_write(StringInfo buf, void *state);
static void cycle_read(StringInfo buf, void *state, MemoryContext cxt);

static bool
numeric_is_negative(Numeric value)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(value),
											 NumericGetDatum(int64_to_numeric(0)))) < 0;
}

/* 1.0's state: days of the session's TimeZone */
static CycleState *
cycle_state_new(MemoryContext cxt)
{
	CycleState *state = MemoryContextAllocZero(cxt, sizeof(CycleState));

	state->zone = session_timezone;
	dayset_init(&state->days, cxt);
	return state;
}

static void
report_other_zone(const char *zone, const char *other)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("purchase_cycle time zone must be the same for every row of a group"),
			 errdetail("The group has days of time zone \"%s\" and of \"%s\".", zone, other),
			 errhint("Give the zone as purchase_cycle's last argument, or set post_purchase.shop_time_zone alike on every node.")));
}

static void
check_same_zone(const CycleState *state, pg_tz *zone)
{
	if (!purchase_zones_equal(state->zone, zone))
		report_other_zone(pg_get_timezone_name(state->zone), pg_get_timezone_name(zone));
}

static void
cycle_add_row(FunctionCallInfo fcinfo, CycleState *state)
{
	TimestampTz ordered_at;

	if (PG_ARGISNULL(1))
		return;
	ordered_at = PG_GETARG_TIMESTAMPTZ(1);
	if (state->days.count == 0 || ordered_at > state->last_purchase)
		state->last_purchase = ordered_at;
	dayset_add(&state->days, timestamptz_to_day_in(ordered_at, state->zone));
}

/* 1.0's transition: days of the session's TimeZone */
Datum
purchase_cycle_accum(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "purchase_cycle_accum");
	CycleState *state = PG_ARGISNULL(0) ? cycle_state_new(cxt) : (CycleState *) PG_GETARG_POINTER(0);

	cycle_add_row(fcinfo, state);
	PG_RETURN_POINTER(state);
}

static void
cycle_merge(CycleState *left, const CycleState *right)
{
	if (right->days.count == 0)
		return;
	if (left->days.count == 0)
		left->zone = right->zone;
	else
		check_same_zone(left, right->zone);
	if (left->days.count == 0 || right->last_purchase > left->last_purchase)
		left->last_purchase = right->last_purchase;
	dayset_add_all(&left->days, &right->days);
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
	cycle_merge(left, right);
	PG_RETURN_POINTER(left);
}

/* The binary form of a state: 1.0's serialized state, and 1.1's type. */
static void
cycle_write(StringInfo buf, void *arg)
{
	CycleState *state = (CycleState *) arg;

	pq_sendint64(buf, state->last_purchase);
	purchase_zone_write(buf, state->zone);
	dayset_serialize(buf, &state->days);
}

Datum
purchase_cycle_serialize(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	cycle_write(&buf, PG_GETARG_POINTER(0));
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

/* A state from bytes that may not have come from cycle_write: checked. */
static void
cycle_read(StringInfo buf, void *arg, MemoryContext cxt)
{
	CycleState *state = (CycleState *) arg;

	state->last_purchase = pq_getmsgint64(buf);
	state->zone = purchase_zone_read(buf);
	dayset_deserialize(buf, &state->days, cxt);
	/* the accumulator refuses infinite order times */
	if (state->days.count > 0 && !IS_VALID_TIMESTAMP(state->last_purchase))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid purchase_cycle aggregate state"),
				 errdetail("The last purchase is not a finite timestamp.")));
}

Datum
purchase_cycle_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "purchase_cycle_deserialize");
	CycleState *state = MemoryContextAllocZero(cxt, sizeof(CycleState));
	StringInfoData buf;

	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	cycle_read(&buf, state, cxt);
	finish_deserializing_state(&buf);
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

/*
 * ts + span (days and time) in time zone tz, as timestamptz + interval is in
 * the session's: a day is a calendar day of the zone, 23 or 25 hours across
 * a daylight saving change.
 */
static TimestampTz
add_days_in_zone(TimestampTz ts, const Interval *span, pg_tz *tz)
{
	TimestampTz result = ts;

	if (span->day != 0)
	{
		struct pg_tm tm;
		fsec_t		fsec;
		int			tz_offset;
		int			julian;

		if (timestamp2tm(ts, &tz_offset, &tm, &fsec, NULL, tz) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		julian = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) + span->day;
		j2date(julian, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
		tz_offset = DetermineTimeZoneOffset(&tm, tz);
		if (tm2timestamp(&tm, fsec, &tz_offset, &result) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
	}
	if (pg_add_s64_overflow(result, span->time, &result) || !IS_VALID_TIMESTAMP(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

static Datum purchase_cycle_of(FunctionCallInfo fcinfo, CycleState *state);

Datum
purchase_cycle_final(PG_FUNCTION_ARGS)
{
	return purchase_cycle_of(fcinfo, PG_ARGISNULL(0) ? NULL : (CycleState *) PG_GETARG_POINTER(0));
}

static Datum
purchase_cycle_of(FunctionCallInfo fcinfo, CycleState *state)
{
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
		values[4] = TimestampTzGetDatum(add_days_in_zone(state->last_purchase, median, state->zone));
		nulls[1] = nulls[2] = nulls[4] = false;
	}
	/* once per customer of a GROUP BY: the descriptor is looked up once */
	PG_RETURN_DATUM(form_result_row_cached(fcinfo, &zoned_call_site(fcinfo)->result, values, nulls));
}

/* purchase_cycle_state: the type and the 1.1 aggregate's functions */

static inline char *
cycle_zone_name(const CycleFlat *s)
{
	return (char *) s + sizeof(CycleFlat);
}

static inline Size
cycle_days_offset(int zone_len)
{
	return INTALIGN(sizeof(CycleFlat) + zone_len + 1);
}

static inline PurchaseDay *
cycle_days(const CycleFlat *s)
{
	return (PurchaseDay *) ((char *) s + cycle_days_offset(s->zone_len));
}

/*
 * A new value with room for at least min_capacity days, zeroed but for its
 * layout and zone, in the current memory context: the executor copies a
 * new value into the aggregate's memory.
 */
static CycleFlat *
cycle_flat_alloc(const char *zone, int zone_len, int32 min_capacity)
{
	Size		size = flat_state_size(cycle_days_offset(zone_len) + (Size) min_capacity * sizeof(PurchaseDay));
	CycleFlat  *s;

	if (zone_len < 1 || zone_len > TZ_STRLEN_MAX)
		elog(ERROR, "time zone name of unexpected length %d", zone_len);
	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct purchase days in one group")));
	s = palloc0(size);
	SET_VARSIZE(s, size);
	s->version = CYCLE_FLAT_VERSION;
	s->zone_len = zone_len;
	s->compact = true;
	s->capacity = (int32) ((size - cycle_days_offset(zone_len)) / sizeof(PurchaseDay));
	memcpy(cycle_zone_name(s), zone, zone_len);
	return s;
}

static CycleFlat *
cycle_flat_new(pg_tz *zone)
{
	const char *name = pg_get_timezone_name(zone);

	return cycle_flat_alloc(name, strlen(name), DAYSET_INLINE_DAYS);
}

/*
 * A copy of s with room for min_capacity days.  s stays as it was: in an
 * aggregate it is the executor's to free once the copy is returned.
 */
static CycleFlat *
cycle_flat_grow(const CycleFlat *s, int32 min_capacity)
{
	CycleFlat  *n = cycle_flat_alloc(cycle_zone_name(s), s->zone_len, Max(min_capacity, s->count));

	n->compact = s->compact;
	n->count = s->count;
	n->last_purchase = s->last_purchase;
	memcpy(cycle_days(n), cycle_days(s), s->count * sizeof(PurchaseDay));
	return n;
}

/*
 * A state value made by someone else (a table's, an argument's): the
 * struct is what this code wrote, or the type's input function, so only
 * its layout's version and bounds are checked.
 */
static const CycleFlat *
cycle_flat_arg(FunctionCallInfo fcinfo, int argno)
{
	CycleFlat  *s = (CycleFlat *) PG_DETOAST_DATUM(PG_GETARG_DATUM(argno));

	if (VARSIZE(s) < sizeof(CycleFlat) || s->version != CYCLE_FLAT_VERSION || s->zone_len == 0 ||
		s->count < 0 || s->count > s->capacity ||
		cycle_days_offset(s->zone_len) + (Size) s->capacity * sizeof(PurchaseDay) > VARSIZE(s))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("purchase_cycle_state value of an unknown layout")));
	return s;
}

/*
 * The state in argument argno, to update: in an aggregate, its own
 * transition value, in place; otherwise a copy, since a caller's value must
 * not change.
 */
static CycleFlat *
cycle_flat_for_update(FunctionCallInfo fcinfo, int argno)
{
	if (AggCheckCallContext(fcinfo, NULL))
		return (CycleFlat *) PG_GETARG_POINTER(argno);
	return flat_state_copy(cycle_flat_arg(fcinfo, argno));
}

/*
 * The state as a CycleState that reads it, for the code the "internal"
 * state shares: the binary form and the final function.
 */
static void
cycle_flat_view(FunctionCallInfo fcinfo, const CycleFlat *s, CycleState *view)
{
	memset(view, 0, sizeof(CycleState));
	view->last_purchase = s->last_purchase;
	view->zone = purchase_zone_cached(&zoned_call_site(fcinfo)->state, cycle_zone_name(s), s->zone_len);
	flat_days_view(&view->days, cycle_days(s), s->count, s->compact);
}

/* The state from its binary form, checked by cycle_read. */
static CycleFlat *
cycle_flat_from_bytes(StringInfo buf)
{
	CycleState	state;
	CycleFlat  *s;
	const char *zone;

	memset(&state, 0, sizeof(CycleState));
	cycle_read(buf, &state, CurrentMemoryContext);
	finish_deserializing_state(buf);
	zone = pg_get_timezone_name(state.zone);
	s = cycle_flat_alloc(zone, strlen(zone), Max(state.days.count, DAYSET_INLINE_DAYS));
	s->last_purchase = state.last_purchase;
	/* the binary form's days are distinct and in order */
	memcpy(cycle_days(s), state.days.days, state.days.count * sizeof(PurchaseDay));
	s->count = state.days.count;
	return s;
}

static void
cycle_flat_write(FunctionCallInfo fcinfo, StringInfo buf, const CycleFlat *s)
{
	CycleState	view;

	cycle_flat_view(fcinfo, s, &view);
	cycle_write(buf, &view);
}

Datum
purchase_cycle_state_in(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	state_text_to_bytes(PG_GETARG_CSTRING(0), &buf, "purchase_cycle_state");
	PG_RETURN_POINTER(cycle_flat_from_bytes(&buf));
}

Datum
purchase_cycle_state_out(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	cycle_flat_write(fcinfo, &buf, cycle_flat_arg(fcinfo, 0));
	PG_RETURN_CSTRING(state_bytes_to_text(buf.data, buf.len));
}

Datum
purchase_cycle_state_recv(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(cycle_flat_from_bytes((StringInfo) PG_GETARG_POINTER(0)));
}

Datum
purchase_cycle_state_send(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	cycle_flat_write(fcinfo, &buf, cycle_flat_arg(fcinfo, 0));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static void
check_same_zone_name(const CycleFlat *s, const char *name, int len)
{
	if (!purchase_zone_names_equal(cycle_zone_name(s), s->zone_len, name, len))
		report_other_zone(cycle_zone_name(s), name);
}

/*
 * (state, ordered_at [, zone]): the state, updated in place in an
 * aggregate (state_type.h).  The zone is resolved on a group's first row,
 * or when the row names one; the other rows find the state's zone by its
 * name in the call site's cache.
 */
Datum
purchase_cycle_state_accum(PG_FUNCTION_ARGS)
{
	ZonedCallSite *site = zoned_call_site(fcinfo);
	CycleFlat  *s;
	pg_tz	   *zone = NULL;
	TimestampTz ordered_at;
	int32		want;
	PurchaseDay day;

	if (PG_ARGISNULL(0))
	{
		zone = purchase_zone_arg(fcinfo, 2, "purchase_cycle", &site->arg);
		s = cycle_flat_new(zone);
	}
	else
	{
		s = cycle_flat_for_update(fcinfo, 0);
		if (PG_NARGS() > 2)
		{
			const char *name;

			zone = purchase_zone_arg(fcinfo, 2, "purchase_cycle", &site->arg);
			name = pg_get_timezone_name(zone);
			check_same_zone_name(s, name, strlen(name));
		}
	}
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(s);
	ordered_at = PG_GETARG_TIMESTAMPTZ(1);
	if (s->count == 0 || ordered_at > s->last_purchase)
		s->last_purchase = ordered_at;
	if (zone == NULL)
		zone = purchase_zone_cached(&site->state, cycle_zone_name(s), s->zone_len);
	day = timestamptz_to_day_in(ordered_at, zone);
	want = flat_days_add(cycle_days(s), &s->count, s->capacity, &s->compact, day);
	if (unlikely(want != 0))
	{
		s = cycle_flat_grow(s, want);
		(void) flat_days_add(cycle_days(s), &s->count, s->capacity, &s->compact, day);
	}
	PG_RETURN_POINTER(s);
}

/* Fold the right state into the left, as cycle_merge does. */
Datum
purchase_cycle_state_combine(PG_FUNCTION_ARGS)
{
	const CycleFlat *right;
	CycleFlat  *left;
	int32		want;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	right = cycle_flat_arg(fcinfo, 1);
	/* the executor copies a returned value that is not its own */
	if (PG_ARGISNULL(0))
		PG_RETURN_POINTER(right);
	if (right->count == 0)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	/* a state without days takes the other's zone, so it becomes the other */
	if (cycle_flat_arg(fcinfo, 0)->count == 0)
		PG_RETURN_POINTER(right);
	left = cycle_flat_for_update(fcinfo, 0);
	check_same_zone_name(left, cycle_zone_name(right), right->zone_len);
	if (right->last_purchase > left->last_purchase)
		left->last_purchase = right->last_purchase;
	want = flat_days_add_all(cycle_days(left), &left->count, left->capacity, &left->compact,
							 cycle_days(right), right->count, right->compact);
	if (want != 0)
	{
		left = cycle_flat_grow(left, want);
		(void) flat_days_add_all(cycle_days(left), &left->count, left->capacity, &left->compact,
								 cycle_days(right), right->count, right->compact);
	}
	PG_RETURN_POINTER(left);
}

Datum
purchase_cycle_state_final(PG_FUNCTION_ARGS)
{
	const CycleFlat *s;
	CycleState	view;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = cycle_flat_arg(fcinfo, 0);
	if (s->count == 0)
		PG_RETURN_NULL();
	cycle_flat_view(fcinfo, s, &view);
	return purchase_cycle_of(fcinfo, &view);
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
