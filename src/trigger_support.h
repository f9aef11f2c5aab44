/*
 * trigger_support.h
 *	  What the order and item triggers share: plans kept for the backend's
 *	  life, tracked columns found by name, values turned into the text the
 *	  state keys on; and the statement triggers that tell every backend a
 *	  table it keeps copies of changed.
 */
#ifndef POST_PURCHASE_TRIGGER_SUPPORT_H
#define POST_PURCHASE_TRIGGER_SUPPORT_H

#include "executor/spi.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/relcache.h"

extern SPIPlanPtr kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);
extern int	tracked_column(Relation rel, const char *name, const char *retrack_hint);
extern Datum value_as_text(Datum value, Oid type);
extern void invalidate_trigger_table(FunctionCallInfo fcinfo, const char *function);
extern TriggerEvent check_tracking_trigger(FunctionCallInfo fcinfo, const char *function, const char *creator,
										   int nargs);

#endif							/* POST_PURCHASE_TRIGGER_SUPPORT_H */
