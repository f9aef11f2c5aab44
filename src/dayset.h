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

extern PurchaseDay timestamptz_to_day(TimestampTz ts);
extern PurchaseDay timestamptz_to_day_in(TimestampTz ts, pg_tz *tz);
extern bool purchase_day_is_valid(int64 day);
extern void dayset_init(DaySet *set, MemoryContext cxt);
extern void dayset_add(DaySet *set, PurchaseDay day);
extern void dayset_add_all(DaySet *set, const DaySet *other);
extern void dayset_compact(DaySet *set);
extern void dayset_serialize(StringInfo buf, DaySet *set);
extern void dayset_deserialize(StringInfo buf, DaySet *set, MemoryContext cxt);

#endif							/* POST_PURCHASE_DAYSET_H */
