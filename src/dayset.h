/*
 * dayset.h
 *	  A set of calendar days, the shared state of the purchase aggregates.
 *
 * The BTYD conventions count purchase *days*, not orders: several orders on
 * one calendar day are one purchase.  Aggregates therefore need the distinct
 * days of each group.  Orders usually arrive in time order, so days are
 * appended and the array is sorted and de-duplicated lazily, only when it
 * fills up or when the final function needs it: O(n log n) in the worst case,
 * O(1) per order in the common one, and memory of 4 bytes per distinct day.
 */
#ifndef POST_PURCHASE_DAYSET_H
#define POST_PURCHASE_DAYSET_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "pgtime.h"

/* days since the PostgreSQL epoch (2000-01-01), like DateADT */
typedef int32 PurchaseDay;

/* most customers buy on few days: those fit in the state itself */
#define DAYSET_INLINE_DAYS 6

typedef struct DaySet
{
	PurchaseDay *days;			/* inline_days, or an allocation in cxt */
	int32		count;			/* entries used */
	int32		capacity;		/* entries available */
	bool		compact;		/* sorted and free of duplicates */
	MemoryContext cxt;
	PurchaseDay inline_days[DAYSET_INLINE_DAYS];
} DaySet;

extern void check_purchase_timestamp(TimestampTz ts);
extern PurchaseDay timestamptz_to_day(TimestampTz ts);
extern PurchaseDay timestamptz_to_day_in(TimestampTz ts, pg_tz *tz);

/*
 * The time zone calendar days are counted in.  Given as an argument, it is
 * a zone name (IANA, as in pg_timezone_names); by default it is the
 * post_purchase.shop_time_zone setting when that has a value, else the
 * session's TimeZone.  A distributed engine need not send the session's
 * TimeZone to its nodes (Citus does not), so only a zone given as an
 * argument, or the setting set alike on every node, gives the same days
 * everywhere.
 */
#define SHOP_TIME_ZONE_SETTING "post_purchase.shop_time_zone"

#include "fmgr.h"

/*
 * A zone's last resolution, kept per call site: a transition runs once per
 * row with the same zone, and a flat state names its zone.
 */
typedef struct ZoneCache
{
	pg_tz	   *zone;			/* NULL: nothing cached */
	int			len;			/* of name; -1 for the default zone */
	char		name[TZ_STRLEN_MAX + 1];
} ZoneCache;

extern pg_tz *purchase_zone_default(void);
extern pg_tz *purchase_zone_named(const char *name, int len);
extern pg_tz *purchase_zone_arg(FunctionCallInfo fcinfo, int argno, const char *function,
								ZoneCache *cache);
extern pg_tz *purchase_zone_cached(ZoneCache *cache, const char *name, int len);
extern bool purchase_zones_equal(pg_tz *a, pg_tz *b);
extern bool purchase_zone_names_equal(const char *a, int alen, const char *b, int blen);
extern void purchase_zone_write(StringInfo buf, pg_tz *zone);
extern pg_tz *purchase_zone_read(StringInfo buf);
extern bool purchase_day_is_valid(int64 day);
extern void dayset_init(DaySet *set, MemoryContext cxt);
extern void dayset_add(DaySet *set, PurchaseDay day);
extern void dayset_add_all(DaySet *set, const DaySet *other);
extern void dayset_compact(DaySet *set);
extern void dayset_serialize(StringInfo buf, DaySet *set);
extern void dayset_deserialize(StringInfo buf, DaySet *set, MemoryContext cxt);

/*
 * The days of a flat aggregate state (state_type.h): an array inside the
 * value, "capacity" entries long, "count" of them used, kept as DaySet
 * keeps its own.  Adding returns 0 when there was room, else the capacity
 * the state must grow to before it adds again.
 */
extern int32 flat_days_compact(PurchaseDay *days, int32 count);
extern int32 flat_days_add(PurchaseDay *days, int32 *count, int32 capacity, bool *compact,
						   PurchaseDay day);
extern int32 flat_days_add_all(PurchaseDay *days, int32 *count, int32 capacity, bool *compact,
							   const PurchaseDay *other, int32 other_count, bool other_compact);
extern void flat_days_view(DaySet *set, const PurchaseDay *days, int32 count, bool compact);

#endif							/* POST_PURCHASE_DAYSET_H */
