/*
 * metrics_context.c
 *	  What customer_metrics computes with (the metrics_context view: the
 *	  settings, the newest converged model, the newest RFM cut points), kept
 *	  in the backend between orders.  The order trigger evaluates the
 *	  segment rules over metrics_of() with these values as parameters, so
 *	  that an order reads the customer's state and nothing else: reading
 *	  the three tables again for every order cost as much as the rules.
 *
 * The copy is valid until one of the three tables changes: a statement
 * trigger on each (metrics_context_changed) sends a relcache invalidation,
 * which every backend takes in at its next transaction start or lock, after
 * the change is visible to new snapshots.  Under READ COMMITTED an order
 * is thus evaluated with the context committed before its statement began
 * or, for a change committing in the same instant, just before that.  A
 * transaction snapshot (REPEATABLE READ, SERIALIZABLE) may be older than
 * the copy, so such transactions read the context afresh and keep nothing.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "metrics_context.h"
#include "trigger_support.h"

PG_FUNCTION_INFO_V1(metrics_context_changed);

/* The tables the context is read from: a change to any makes it stale. */
static const char *const context_tables[] = {"settings", "models", "rfm_cuts"};
#define CONTEXT_TABLES lengthof(context_tables)

static Oid	context_relids[CONTEXT_TABLES];
static MemoryContext kept_memory = NULL;
static Datum kept_values[METRICS_CONTEXT_VALUES];
static char kept_nulls[METRICS_CONTEXT_VALUES];
static bool kept = false;
static uint64 invalidations = 0;
static bool callback_registered = false;
static SPIPlanPtr context_plan = NULL;

/* Relcache callback: one of the tables changed, or every cache was reset (InvalidOid). */
static void
forget_context(Datum arg, Oid relid)
{
	for (int i = 0; i < CONTEXT_TABLES; i++)
		if (relid == InvalidOid || relid == context_relids[i])
		{
			kept = false;
			invalidations++;
		}
}

/* Statement trigger on settings, models and rfm_cuts: every backend reads the context again. */
Datum
metrics_context_changed(PG_FUNCTION_ARGS)
{
	invalidate_trigger_table(fcinfo, "metrics_context_changed");
	return PointerGetDatum(NULL);
}

/*
 * Whether the schema has metrics_context and its triggers (1.1): a 1.0
 * schema, before ALTER EXTENSION UPDATE, has neither.
 */
bool
metrics_context_exists(void)
{
	return OidIsValid(get_relname_relid("metrics_context", get_namespace_oid("post_purchase", false)));
}

/* The types of the values: date, text, integer, integer, float8, models, rfm_cuts. */
void
metrics_context_types(Oid *types)
{
	Oid			schema = get_namespace_oid("post_purchase", false);

	types[0] = DATEOID;
	types[1] = TEXTOID;
	types[2] = INT4OID;
	types[3] = INT4OID;
	types[4] = FLOAT8OID;
	types[5] = get_rel_type_id(get_relname_relid("models", schema));
	types[6] = get_rel_type_id(get_relname_relid("rfm_cuts", schema));
}

/* Read the context into values and nulls (SPI style), allocated in memory. */
static void
read_context(Datum *values, char *nulls, MemoryContext memory)
{
	TupleDesc	desc;
	MemoryContext old;

	if (SPI_execute_plan(kept_plan(&context_plan,
								   "SELECT c.pinned_today, c.time_zone, c.lapsed_after_days, "
								   "c.at_risk_after_days, c.clv_monthly_discount, c.model, c.cuts "
								   "FROM post_purchase.metrics_context c",
								   0, NULL),
						 NULL, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read post_purchase.metrics_context");
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(memory);
	for (int i = 0; i < METRICS_CONTEXT_VALUES; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0], desc, i + 1, &isnull);

		nulls[i] = isnull ? 'n' : ' ';
		values[i] = isnull ? (Datum) 0 : datumCopy(value, attr->attbyval, attr->attlen);
	}
	MemoryContextSwitchTo(old);
}

/*
 * The context as parameters of the rules query, inside the caller's SPI
 * connection: the kept copy, read again if a table changed since.
 */
void
get_metrics_context(Datum *values, char *nulls)
{
	if (IsolationUsesXactSnapshot())
	{
		read_context(values, nulls, CurrentMemoryContext);
		return;
	}
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_context, (Datum) 0);
		callback_registered = true;
	}
	if (!kept)
	{
		Oid			schema = get_namespace_oid("post_purchase", false);
		uint64		seen;

		/* found again each time: the extension may have been dropped and created again */
		for (int i = 0; i < CONTEXT_TABLES; i++)
			context_relids[i] = get_relname_relid(context_tables[i], schema);
		if (kept_memory == NULL)
			kept_memory = AllocSetContextCreate(TopMemoryContext, "post_purchase metrics context",
												ALLOCSET_SMALL_SIZES);
		MemoryContextReset(kept_memory);
		/*
		 * The read takes its snapshot before its locks take in pending
		 * invalidations: one taken in meanwhile may be of a change the
		 * snapshot does not see, so the copy serves this order only.
		 */
		seen = invalidations;
		read_context(kept_values, kept_nulls, kept_memory);
		kept = invalidations == seen;
	}
	memcpy(values, kept_values, sizeof(kept_values));
	memcpy(nulls, kept_nulls, sizeof(kept_nulls));
}
