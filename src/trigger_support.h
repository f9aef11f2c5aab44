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

/*
 * A plan kept for the statement text it was made from, for statements built
 * from what is tracked (the table, its columns, the zone): made again when
 * the text or its parameters' types change.
 */
#define TEXT_PLAN_MAX_ARGS 4
typedef struct TextPlan
{
	SPIPlanPtr	plan;
	char	   *sql;			/* in TopMemoryContext */
	int			nargs;
	Oid			argtypes[TEXT_PLAN_MAX_ARGS];
} TextPlan;

extern SPIPlanPtr text_plan(TextPlan *kept, const char *sql, int nargs, const Oid *argtypes, const char *what);
extern int	tracked_column(Relation rel, const char *name, const char *retrack_hint);
extern Datum value_as_text(Datum value, Oid type);
extern void invalidate_trigger_table(FunctionCallInfo fcinfo, const char *function);
extern TriggerEvent check_tracking_trigger(FunctionCallInfo fcinfo, const char *function, const char *creator,
										   int nargs);

#endif							/* POST_PURCHASE_TRIGGER_SUPPORT_H */
