/*
 * worker_status.c
 *	  What the background workers do and where they serve: worker_status(),
 *	  and whether a database has workers (for decide_in = auto and for
 *	  enable_journey()'s warning).
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"
#include "worker_internal.h"

PG_FUNCTION_INFO_V1(post_purchase_worker_status);
PG_FUNCTION_INFO_V1(post_purchase_check_workers_serve);

/* ---------------------------------------------------------------------
 * worker_status()
 * ---------------------------------------------------------------------
 */

#define WORKER_STATUS_COLS 8

/* One row per worker slot; no rows when the library was not preloaded. */
Datum
post_purchase_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerSlot *copy;
	int			n = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (worker_shared == NULL)
		return (Datum) 0;

	/* copy under the lock, build the rows without it */
	copy = palloc(sizeof(WorkerSlot) * worker_shared->nslots);
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	for (i = 0; i < worker_shared->nslots; i++)
		if (worker_shared->slots[i].in_use)
			copy[n++] = worker_shared->slots[i];
	LWLockRelease(worker_shared->lock);

	for (i = 0; i < n; i++)
	{
		WorkerSlot *slot = &copy[i];
		Datum		values[WORKER_STATUS_COLS];
		bool		nulls[WORKER_STATUS_COLS];

		memset(nulls, 0, sizeof(nulls));
		values[0] = NameGetDatum(&slot->dbname);
		values[1] = Int32GetDatum(slot->worker_num);
		values[2] = Int32GetDatum(slot->pid);
		nulls[2] = slot->pid == 0;
		values[3] = TimestampTzGetDatum(slot->started_at);
		nulls[3] = slot->started_at == 0;
		values[4] = TimestampTzGetDatum(slot->last_run_at);
		nulls[4] = slot->last_run_at == 0;
		values[5] = Int64GetDatum(slot->steps_fired);
		slot->last_error[LAST_ERROR_LEN - 1] = '\0';
		values[6] = CStringGetTextDatum(slot->last_error);
		nulls[6] = slot->last_error[0] == '\0';
		values[7] = TimestampTzGetDatum(slot->last_error_at);
		nulls[7] = slot->last_error_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Whether background workers serve this database, as check_workers_serve()
 * decides it for this server: the order trigger asks for every order
 * (post_purchase.decide_in = auto), so the list is read again only when the
 * setting's value changed.
 */
bool
workers_serve_database(void)
{
	static char *read_value = NULL;
	static Oid	read_for = InvalidOid;
	static bool named = false;

	if (worker_shared == NULL || !worker_settings.workers_enabled)
		return false;
	if (read_value == NULL || read_for != MyDatabaseId ||
		strcmp(read_value, worker_settings.databases_setting ? worker_settings.databases_setting : "") != 0)
	{
		char	   *dbname = get_database_name(MyDatabaseId);

		named = dbname != NULL && name_in_list(database_names(worker_settings.databases_setting), dbname);
		if (read_value != NULL)
			pfree(read_value);
		read_value = MemoryContextStrdup(TopMemoryContext, worker_settings.databases_setting ? worker_settings.databases_setting : "");
		read_for = MyDatabaseId;
	}
	return named;
}

/*
 * check_workers_serve(database, preloaded, databases, enabled): whether
 * background workers fire the database's journey steps, with a WARNING
 * that names the setting to change when they do not.  enable_journey()
 * calls it: a journey enabled where no worker runs would wait, silently,
 * for ever.  The decision is the launcher's: workers run only when the
 * library was preloaded, only in the databases that post_purchase.databases
 * names as launcher_targets() reads them (empty by default: none), and fire
 * only while post_purchase.enabled is on.  A NULL argument stands for this
 * server's own value (the current database, whether this library was
 * preloaded, the two settings), so a test can ask about other servers.
 */
Datum
post_purchase_check_workers_serve(PG_FUNCTION_ARGS)
{
	char	   *dbname = PG_ARGISNULL(0) ? get_database_name(MyDatabaseId) : NameStr(*PG_GETARG_NAME(0));
	bool		preloaded = PG_ARGISNULL(1) ? worker_shared != NULL : PG_GETARG_BOOL(1);
	char	   *databases = PG_ARGISNULL(2) ? pstrdup(worker_settings.databases_setting ? worker_settings.databases_setting : "") :
		text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		enabled = PG_ARGISNULL(3) ? worker_settings.workers_enabled : PG_GETARG_BOOL(3);
	List	   *names = database_names(databases);

	if (!preloaded)
	{
		ereport(WARNING,
				(errmsg("no post_purchase background worker runs on this server, so enabled journeys do not fire"),
				 errdetail("post_purchase is not in shared_preload_libraries."),
				 errhint("Add post_purchase to shared_preload_libraries and \"%s\" to post_purchase.databases, then restart the server.",
						 dbname)));
		PG_RETURN_BOOL(false);
	}
	if (!name_in_list(names, dbname))
	{
		/* the value to set: the list as it is, and this database */
		char	   *wanted = names == NIL ? pstrdup(quote_identifier(dbname)) :
			psprintf("%s, %s", databases, quote_identifier(dbname));

		/* the message names no database, so that tests read the same anywhere */
		ereport(WARNING,
				(errmsg("no post_purchase background worker serves this database, so enabled journeys do not fire"),
				 names == NIL ?
				 errdetail("Database \"%s\" is not in post_purchase.databases, which is empty.", dbname) :
				 errdetail("Database \"%s\" is not in post_purchase.databases, which is %s.",
						   dbname, quote_literal_cstr(databases)),
				 errhint("Set post_purchase.databases = %s (in postgresql.conf or with ALTER SYSTEM) and reload the configuration.",
						 quote_literal_cstr(wanted))));
		PG_RETURN_BOOL(false);
	}
	if (!enabled)
	{
		ereport(WARNING,
				(errmsg("post_purchase background workers are paused, so enabled journeys do not fire"),
				 errdetail("post_purchase.enabled is off."),
				 errhint("Set post_purchase.enabled = on (in postgresql.conf or with ALTER SYSTEM) and reload the configuration.")));
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}
