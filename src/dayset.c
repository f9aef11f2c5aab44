/*
 * dayset.c
 *	  Sets of calendar days for the purchase aggregates; see dayset.h.
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "libpq/pqformat.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dayset.h"

/* A purchase happens at a finite time: an infinite one has no day. */
void
check_purchase_timestamp(TimestampTz ts)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("purchase timestamp must be finite")));
}

/*
 * The calendar day of a timestamp in time zone "tz", as days since
 * 2000-01-01 (a DateADT).  The fast path covers fixed-offset zones such as
 * UTC, which is what servers usually run with; other zones go through the tz
 * database.
 */
PurchaseDay
timestamptz_to_day_in(TimestampTz ts, pg_tz *tz)
{
	long		gmtoff;
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoffset;

	check_purchase_timestamp(ts);
	if (pg_get_timezone_offset(tz, &gmtoff))
	{
		int64		local = ts + (int64) gmtoff * USECS_PER_SEC;
		int64		day = local / USECS_PER_DAY;

		/* C division truncates toward zero; days before 2000 need the floor */
		if (local < 0 && day * USECS_PER_DAY != local)
			day--;
		return (PurchaseDay) day;
	}

	if (timestamp2tm(ts, &tzoffset, &tm, &fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return (PurchaseDay) (date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) - POSTGRES_EPOCH_JDATE);
}

/* The calendar day of a timestamp in the session's TimeZone. */
PurchaseDay
timestamptz_to_day(TimestampTz ts)
{
	return timestamptz_to_day_in(ts, session_timezone);
}

/* A zone by name; an unknown name is the caller's error. */
pg_tz *
purchase_zone_named(const char *name, int len)
{
	char		buf[TZ_STRLEN_MAX + 1];
	pg_tz	   *tz = NULL;

	if (len > 0 && len <= TZ_STRLEN_MAX)
	{
		memcpy(buf, name, len);
		buf[len] = '\0';
		tz = pg_tzset(buf);
	}
	/* as the TimeZone setting does, refuse zones that count leap seconds */
	if (tz == NULL || !pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%.*s\" not recognized", Min(len, TZ_STRLEN_MAX), name),
				 errhint("Give a time zone name from pg_timezone_names, such as 'Europe/Berlin' or 'UTC'.")));
	return tz;
}

pg_tz *
purchase_zone_default(void)
{
	const char *name = GetConfigOption(SHOP_TIME_ZONE_SETTING, true, false);

	if (name == NULL || name[0] == '\0')
		return session_timezone;
	return purchase_zone_named(name, strlen(name));
}

/*
 * The zone in argument argno, or the default when the function has no such
 * argument, through the call site's cache.
 */
pg_tz *
purchase_zone_arg(FunctionCallInfo fcinfo, int argno, const char *function, ZoneCache *cache)
{
	text	   *name;
	int			len;

	/*
	 * The default, looked up once per call site: a setting's lookup costs
	 * about a microsecond, which a million groups' first rows would pay,
	 * and it cannot change within a statement (the aggregates are STABLE).
	 */
	if (PG_NARGS() <= argno)
	{
		if (cache->zone == NULL || cache->len != -1)
		{
			cache->zone = purchase_zone_default();
			cache->len = -1;
		}
		return cache->zone;
	}
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s time zone must not be null", function)));
	name = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(name);
	return purchase_zone_cached(cache, VARDATA_ANY(name), len);
}

/* A zone by name through a cache of the last one. */
pg_tz *
purchase_zone_cached(ZoneCache *cache, const char *name, int len)
{
	pg_tz	   *zone;

	if (cache->zone != NULL && cache->len == len && memcmp(cache->name, name, len) == 0)
		return cache->zone;
	/* resolved first: an unknown name leaves the cache as it was */
	zone = purchase_zone_named(name, len);
	cache->zone = zone;
	cache->len = len;
	memcpy(cache->name, name, len);
	cache->name[len] = '\0';
	return zone;
}

/* Whether two zone names name one zone, as purchase_zones_equal decides. */
bool
purchase_zone_names_equal(const char *a, int alen, const char *b, int blen)
{
	return alen == blen && (memcmp(a, b, alen) == 0 || pg_strncasecmp(a, b, alen) == 0);
}

bool
purchase_zones_equal(pg_tz *a, pg_tz *b)
{
	return a == b || pg_strcasecmp(pg_get_timezone_name(a), pg_get_timezone_name(b)) == 0;
}

/* A zone in a serialized state: its name. */
void
purchase_zone_write(StringInfo buf, pg_tz *zone)
{
	const char *name = pg_get_timezone_name(zone);
	int			len = strlen(name);

	pq_sendint32(buf, len);
	pq_sendbytes(buf, name, len);
}

pg_tz *
purchase_zone_read(StringInfo buf)
{
	int			len = pq_getmsgint(buf, 4);
	pg_tz	   *tz = NULL;

	if (len > 0 && len <= TZ_STRLEN_MAX && len <= buf->len - buf->cursor)
	{
		char		name[TZ_STRLEN_MAX + 1];

		memcpy(name, pq_getmsgbytes(buf, len), len);
		name[len] = '\0';
		tz = pg_tzset(name);
	}
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid time zone in aggregate state")));
	return tz;
}

void
dayset_init(DaySet *set, MemoryContext cxt)
{
	set->days = set->inline_days;
	set->count = 0;
	set->capacity = DAYSET_INLINE_DAYS;
	set->compact = true;
	set->cxt = cxt;
}

static int
day_cmp(const void *a, const void *b)
{
	PurchaseDay da = *(const PurchaseDay *) a;
	PurchaseDay db = *(const PurchaseDay *) b;

	return (da > db) - (da < db);
}

/* Sort the days and drop duplicates, in place. */
void
dayset_compact(DaySet *set)
{
	int32		kept = 0;

	if (set->compact)
		return;
	qsort(set->days, set->count, sizeof(PurchaseDay), day_cmp);
	for (int32 i = 0; i < set->count; i++)
	{
		if (kept == 0 || set->days[kept - 1] != set->days[i])
			set->days[kept++] = set->days[i];
	}
	set->count = kept;
	set->compact = true;
}

/*
 * Make room for "needed" more days: compact first, and grow only when the
 * distinct days alone fill more than half the array, so repeated days never
 * make the array grow.
 */
static void
dayset_reserve(DaySet *set, int32 needed)
{
	int64		want;

	if ((int64) set->count + needed <= set->capacity)
		return;
	dayset_compact(set);
	if ((int64) set->count + needed <= set->capacity &&
		set->count <= set->capacity / 2)
		return;

	want = Max((int64) set->capacity * 2, (int64) set->count + needed);
	if (want > (int64) (MaxAllocSize / sizeof(PurchaseDay)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct purchase days in one group")));
	if (set->days == set->inline_days)
	{
		set->days = MemoryContextAlloc(set->cxt, want * sizeof(PurchaseDay));
		memcpy(set->days, set->inline_days, set->count * sizeof(PurchaseDay));
	}
	else
		set->days = repalloc(set->days, want * sizeof(PurchaseDay));
	set->capacity = (int32) want;
}

void
dayset_add(DaySet *set, PurchaseDay day)
{
	/* the common case: orders in time order, several on the same day */
	if (set->count > 0 && set->days[set->count - 1] == day)
		return;
	dayset_reserve(set, 1);
	/* compacting may have moved this very day to the end */
	if (set->count > 0 && set->days[set->count - 1] == day)
		return;
	if (set->count > 0 && set->days[set->count - 1] > day)
		set->compact = false;
	set->days[set->count++] = day;
}

void
dayset_add_all(DaySet *set, const DaySet *other)
{
	if (other->count == 0)
		return;
	dayset_reserve(set, other->count);
	if (set->count > 0)
		set->compact = false;
	else
		set->compact = other->compact;
	memcpy(set->days + set->count, other->days, other->count * sizeof(PurchaseDay));
	set->count += other->count;
}

/*
 * Whether a day can be a purchase day: the day of a finite timestamptz in
 * some time zone (a zone's offset moves it at most a day past UTC's range).
 * Differences of two such days fit an int32 with room to spare.
 */
bool
purchase_day_is_valid(int64 day)
{
	return day >= (int64) DATETIME_MIN_JULIAN - POSTGRES_EPOCH_JDATE - 1 &&
		day <= (int64) TIMESTAMP_END_JULIAN - POSTGRES_EPOCH_JDATE + 1;
}

void
dayset_serialize(StringInfo buf, DaySet *set)
{
	dayset_compact(set);
	pq_sendint32(buf, set->count);
	for (int32 i = 0; i < set->count; i++)
		pq_sendint32(buf, set->days[i]);
}

void
dayset_deserialize(StringInfo buf, DaySet *set, MemoryContext cxt)
{
	int32		count = pq_getmsgint(buf, 4);

	if (count < 0 || count > (buf->len - buf->cursor) / 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid purchase day count %d in aggregate state", count)));
	dayset_init(set, cxt);
	if (count > set->capacity)
	{
		set->capacity = count;
		set->days = MemoryContextAlloc(cxt, count * sizeof(PurchaseDay));
	}
	set->count = count;
	set->compact = true;
	for (int32 i = 0; i < count; i++)
	{
		set->days[i] = (PurchaseDay) pq_getmsgint(buf, 4);
		/* dayset_serialize compacts: anything else was not written by it */
		if (!purchase_day_is_valid(set->days[i]) || (i > 0 && set->days[i] <= set->days[i - 1]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid purchase day %d in aggregate state", set->days[i]),
					 errdetail("Serialized purchase days are distinct, in order, and days of the timestamp range.")));
	}
}

/* The distinct days of an array, sorted, in place; returns their count. */
int32
flat_days_compact(PurchaseDay *days, int32 count)
{
	int32		kept = 0;

	qsort(days, count, sizeof(PurchaseDay), day_cmp);
	for (int32 i = 0; i < count; i++)
	{
		if (kept == 0 || days[kept - 1] != days[i])
			days[kept++] = days[i];
	}
	return kept;
}

/*
 * Room for "needed" more days, as dayset_reserve makes it: 0 when there is
 * (perhaps after compacting), else the capacity to grow to.
 */
static int32
flat_days_room(PurchaseDay *days, int32 *count, int32 capacity, bool *compact, int32 needed)
{
	int64		want;

	if ((int64) *count + needed <= capacity)
		return 0;
	if (!*compact)
	{
		*count = flat_days_compact(days, *count);
		*compact = true;
	}
	if ((int64) *count + needed <= capacity && *count <= capacity / 2)
		return 0;
	want = Max((int64) capacity * 2, (int64) *count + needed);
	/* the state holds more than the days: keep well inside a varlena */
	if (want > (int64) (MaxAllocSize / sizeof(PurchaseDay) / 2))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct purchase days in one group")));
	return (int32) want;
}

int32
flat_days_add(PurchaseDay *days, int32 *count, int32 capacity, bool *compact, PurchaseDay day)
{
	int32		want;

	/* the common case: orders in time order, several on the same day */
	if (*count > 0 && days[*count - 1] == day)
		return 0;
	if (*count < capacity)
	{
		if (*count > 0 && days[*count - 1] > day)
			*compact = false;
		days[(*count)++] = day;
		return 0;
	}
	want = flat_days_room(days, count, capacity, compact, 1);
	if (want != 0)
		return want;
	/* compacting may have moved this very day to the end */
	if (*count > 0 && days[*count - 1] == day)
		return 0;
	if (*count > 0 && days[*count - 1] > day)
		*compact = false;
	days[(*count)++] = day;
	return 0;
}

int32
flat_days_add_all(PurchaseDay *days, int32 *count, int32 capacity, bool *compact,
				  const PurchaseDay *other, int32 other_count, bool other_compact)
{
	int32		want;

	if (other_count == 0)
		return 0;
	want = flat_days_room(days, count, capacity, compact, other_count);
	if (want != 0)
		return want;
	*compact = *count > 0 ? false : other_compact;
	memcpy(days + *count, other, other_count * sizeof(PurchaseDay));
	*count += other_count;
	return 0;
}

/*
 * A DaySet that reads a flat state's days, for the code the "internal"
 * states share (serializing, final functions), which compacts the set: the
 * days are copied first unless they are compact already, since the state
 * is not the caller's to change.
 */
void
flat_days_view(DaySet *set, const PurchaseDay *days, int32 count, bool compact)
{
	dayset_init(set, CurrentMemoryContext);
	if (compact)
		set->days = (PurchaseDay *) days;
	else if (count > 0)
	{
		set->days = palloc(count * sizeof(PurchaseDay));
		memcpy(set->days, days, count * sizeof(PurchaseDay));
	}
	if (set->days != set->inline_days)
		set->capacity = count;
	set->count = count;
	set->compact = compact;
}
