/*
 * trigger_support.c
 *	  Helpers of the order and item triggers; see trigger_support.h.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "trigger_support.h"

/*
 * A plan prepared on first use and kept: generic, because planning the same
 * statement again for every order would cost more than running it.
 */
SPIPlanPtr
kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/*
 * The plan kept in kept if it was made from sql with these parameter types,
 * else a new one in its place; what names the statement in the error.
 * Prepared as SPI_prepare does: the plan cache chooses custom or generic.
 */
SPIPlanPtr
text_plan(TextPlan *kept, const char *sql, int nargs, const Oid *argtypes, const char *what)
{
	SPIPlanPtr	fresh;

	Assert(nargs <= TEXT_PLAN_MAX_ARGS);
	if (kept->plan != NULL && kept->nargs == nargs && strcmp(kept->sql, sql) == 0 &&
		memcmp(kept->argtypes, argtypes, nargs * sizeof(Oid)) == 0)
		return kept->plan;
	if (kept->plan != NULL)
	{
		SPI_freeplan(kept->plan);
		pfree(kept->sql);
		kept->plan = NULL;
	}
	fresh = SPI_prepare(sql, nargs, (Oid *) argtypes);
	if (fresh == NULL)
		elog(ERROR, "could not plan %s: %s", what, SPI_result_code_string(SPI_result));
	SPI_keepplan(fresh);
	kept->sql = MemoryContextStrdup(TopMemoryContext, sql);
	kept->nargs = nargs;
	memcpy(kept->argtypes, argtypes, nargs * sizeof(Oid));
	kept->plan = fresh;
	return fresh;
}

/* The number of a tracked column, or an error saying how to re-track. */
int
tracked_column(Relation rel, const char *name, const char *retrack_hint)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("tracked column \"%s\" of table \"%s\" no longer exists", name,
						RelationGetRelationName(rel)),
				 errhint("%s", retrack_hint)));
	return attnum;
}

/* A value as text, the way customers, orders and products are keyed. */
Datum
value_as_text(Datum value, Oid type)
{
	Oid			output;
	bool		varlena;

	getTypeOutputInfo(type, &output, &varlena);
	return CStringGetTextDatum(OidOutputFunctionCall(output, value));
}

/*
 * An error unless the call is the AFTER ... FOR EACH ROW trigger a track_*
 * function created (with nargs arguments, -1 for any): the functions are
 * callable, and a hand-made trigger must not reach their reading of the
 * row.  function names the trigger function, creator what creates it.
 */
TriggerEvent
check_tracking_trigger(FunctionCallInfo fcinfo, const char *function, const char *creator, int nargs)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s can only be called as a trigger", function)));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		(nargs >= 0 && trigdata->tg_trigger->tgnargs != nargs))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be the AFTER ... FOR EACH ROW trigger that %s creates", function, creator)));
	return trigdata->tg_event;
}

/*
 * For a statement trigger on a table whose rows backends keep copies or
 * plans of: a relcache invalidation of the table, which every backend takes
 * in once the change commits.  function names the trigger function.
 */
void
invalidate_trigger_table(FunctionCallInfo fcinfo, const char *function)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s can only be called as a trigger", function)));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
}
