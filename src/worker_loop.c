/*
 * worker_loop.c
 *	  The per-database worker: its loop (decide changed customers, fire due
 *	  steps, the scheduled functions of worker 1), each call in a
 *	  transaction of its own, and its sleep until the next step is due or a
 *	  commit wakes it.  What it calls is SQL of schema post_purchase:
 *	  process_changes() (decisions.c), fire_due_steps() (journeys.sql).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "segments.h"
#include "worker_internal.h"

PGDLLEXPORT void post_purchase_worker_main(Datum main_arg);

/* between two looks, when something is still due but was not fired */
#define MIN_WAIT_MS 10

/* in the first worker: whether some stored scores may not count, and when a pass last found none */
static bool scores_pending = true;
static TimestampTz scores_looked_at = 0;

/* in a worker: its slot */
static WorkerSlot *my_slot = NULL;
static int	my_worker_num = 0;
static NameData my_dbname;


typedef enum CallResult
{
	CALL_OK,
	CALL_MISSING,				/* the function does not exist (yet) */
	CALL_NOT_INSTALLED,			/* the extension is not in this database */
	CALL_FAILED					/* it raised an error, now in last_error */
} CallResult;

/* a function of schema post_purchase that the worker calls */
typedef struct WorkerCall
{
	const char *name;
	int			nargs;			/* 0, or 1: an integer */
	const char *sql;			/* its first column, if any, as int8 or timestamptz */
	/* the signature that must exist, when the call leaves arguments to their defaults */
	int			signature_nargs;
	Oid			signature[3];
} WorkerCall;

static const WorkerCall call_enroll_due =
{"enroll_due", 0, "SELECT post_purchase.enroll_due()"};
static const WorkerCall call_fire_due_steps =
{"fire_due_steps", 1, "SELECT post_purchase.fire_due_steps($1)::pg_catalog.int8"};
static const WorkerCall call_next_due_at =
{"next_due_at", 0, "SELECT post_purchase.next_due_at()::pg_catalog.timestamptz"};
static const WorkerCall call_refresh_segments =
{"refresh_segments", 0, "SELECT post_purchase.refresh_segments()"};
static const WorkerCall call_refresh_models =
{"refresh_models", 0, "SELECT post_purchase.refresh_models()"};
static const WorkerCall call_refresh_product_affinity =
{"refresh_product_affinity", 0, "SELECT post_purchase.refresh_product_affinity()",
3, {INTERVALOID, FLOAT8OID, FLOAT8OID}};
static const WorkerCall call_outbox_purge =
{"outbox_purge", 0, "SELECT post_purchase.outbox_purge()"};
static const WorkerCall call_process_changes =
{"process_changes", 1, "SELECT post_purchase.process_changes($1)::pg_catalog.int8"};
static const WorkerCall call_store_scores =
{"store_scores", 1, "SELECT post_purchase.store_scores($1)::pg_catalog.int8"};

/*
 * The stored scores (scores.c): customers scored in a transaction, and how
 * long after a pass found none left the first worker looks again (a new
 * day, a changed setting, model or cut points make every score stop
 * counting).  One batch holds its customers' orders for some 20 ms.
 */
#define SCORES_BATCH 1000
#define SCORES_LOOK_AGAIN_S 60

static void
worker_shmem_exit(int code, Datum arg)
{
	/* an error outside a transaction may have left our lock held */
	LWLockReleaseAll();
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->restart_pending = code != 0;
	my_slot->exited_at = GetCurrentTimestamp();
	/* a wake-up left to this worker (wake_database_workers) goes to the others */
	set_latches(my_slot->dboid, ANY_STATE, my_slot);
	LWLockRelease(worker_shared->lock);
}

static bool
worker_stop_requested(void)
{
	bool		stop;

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	stop = my_slot->stop_requested;
	LWLockRelease(worker_shared->lock);
	return stop;
}

/* Like to_regprocedure('post_purchase.name(...)') IS NOT NULL. */
static bool
function_exists(const WorkerCall *call)
{
	Oid			argtypes[1] = {INT4OID};
	List	   *name = list_make2(makeString("post_purchase"),
								  makeString(pstrdup(call->name)));

	if (call->signature_nargs > 0)
		return OidIsValid(LookupFuncName(name, call->signature_nargs, call->signature, true));
	return OidIsValid(LookupFuncName(name, call->nargs, argtypes, true));
}

static void
record_error(const char *function, const char *message)
{
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	snprintf(my_slot->last_error, LAST_ERROR_LEN, "%s: %s", function, message);
	my_slot->last_error_at = GetCurrentTimestamp();
	LWLockRelease(worker_shared->lock);
}

/*
 * Call one function in a transaction of its own, with search_path locked to
 * pg_catalog, pg_temp.  An error is logged, recorded in the slot and
 * swallowed: one failing function must not stop the worker, nor the others.
 * *value gets the first column of the first row as int64, if asked for.
 */
static CallResult
worker_call(const WorkerCall *call, Datum arg, int64 *value, bool *isnull)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	volatile CallResult result = CALL_OK;

	if (isnull)
		*isnull = true;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());

		/*
		 * Not installed, or being created by a transaction that has not
		 * committed: nothing to do.  A DROP EXTENSION in progress makes the
		 * call fail at worst; the next loop sees the extension gone.
		 */
		if (!OidIsValid(get_extension_oid("post_purchase", true)))
			result = CALL_NOT_INSTALLED;
		else if (!function_exists(call))
			result = CALL_MISSING;
		else
		{
			Oid			argtypes[1] = {INT4OID};
			int			nestlevel;
			int			ret;

			pgstat_report_activity(STATE_RUNNING, call->sql);
			debug_query_string = call->sql;

			nestlevel = lock_search_path();

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			ret = SPI_execute_with_args(call->sql, call->nargs, argtypes, &arg,
										NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "%s failed: %s", call->sql, SPI_result_code_string(ret));
			if (value != NULL && SPI_processed > 0 &&
				SPI_tuptable->tupdesc->natts == 1)
			{
				bool		null;
				Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &null);

				/* int8 and timestamptz alike; read before SPI_finish frees it */
				if (!null)
					*value = DatumGetInt64(d);
				if (isnull)
					*isnull = null;
			}
			SPI_finish();

			AtEOXact_GUC(true, nestlevel);
			debug_query_string = NULL;
		}

		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller_cxt);
		EmitErrorReport();
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		debug_query_string = NULL;

		record_error(call->name, edata->message);
		FreeErrorData(edata);
		result = CALL_FAILED;
	}
	PG_END_TRY();

	MemoryContextSwitchTo(caller_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);

	/*
	 * A background worker's table statistics reach the cumulative
	 * statistics only when it reports them.  Without this, autovacuum never
	 * learns of the dead tuples that firing steps leaves in enrollments and
	 * the outbox.  Flushes at most once a second.
	 */
	pgstat_report_stat(false);
	return result;
}

/* Call a scheduled function if its interval has passed; true on an error. */
static bool
worker_call_scheduled(const WorkerCall *call, int interval_s, TimestampTz *last)
{
	TimestampTz now = GetCurrentTimestamp();
	CallResult	result;

	if (interval_s <= 0 ||
		(*last != 0 && now < *last + (int64) interval_s * USECS_PER_SEC))
		return false;

	result = worker_call(call, (Datum) 0, NULL, NULL);

	/* a missing function is called as soon as it appears */
	if (result == CALL_OK || result == CALL_FAILED)
	{
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		*last = now;
		LWLockRelease(worker_shared->lock);
	}
	return result == CALL_FAILED;
}

/*
 * Whether pg_restore is connected to this database (post_purchase.restoring()
 * in src/worker.sql): it restores journeys, enrollments and the outbox table
 * by table, and a step fired in between would be fired a second time.
 */
static bool
restore_running(void)
{
	int			nbackends = pgstat_fetch_stat_numbackends();
	bool		running = false;

	for (int i = 1; i <= nbackends && !running; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *backend;

		if (local == NULL)
			continue;
		backend = &local->backendStatus;
		running = backend->st_databaseid == MyDatabaseId &&
			backend->st_backendType == B_BACKEND &&
			strcmp(backend->st_appname, "pg_restore") == 0;
	}
	/* the next look reads the backends afresh */
	pgstat_clear_backend_activity_snapshot();
	return running;
}

/* Log when the workers pause for a restore and when they go on. */
static bool
paused_for_restore(void)
{
	static bool paused = false;
	bool		restoring = restore_running();

	if (restoring != paused)
		ereport(LOG,
				(errmsg(restoring ? "post_purchase worker %d pauses: pg_restore is connected to database \"%s\""
						: "post_purchase worker %d goes on: no pg_restore is connected to database \"%s\"",
						my_worker_num, NameStr(my_dbname))));
	paused = restoring;
	return restoring;
}

/*
 * One loop of the worker: enroll, fire due steps while batches come back
 * full, the scheduled functions; returns how long to sleep, in ms.
 */
static long
worker_iteration(void)
{
	CallResult	result;
	bool		failed = false;
	bool		fired_any = false;
	int64		value = 0;
	bool		isnull;
	long		wait_ms = worker_settings.naptime_ms;

	if (!worker_settings.workers_enabled || RecoveryInProgress() || paused_for_restore())
		return worker_settings.naptime_ms;

	if (my_worker_num == 1)
	{
		result = worker_call(&call_enroll_due, (Datum) 0, NULL, NULL);
		if (result == CALL_NOT_INSTALLED)
			return worker_settings.naptime_ms;
		failed |= result == CALL_FAILED;
	}

	/* the orders' decisions first: the thank-yous they enroll are due now */
	for (;;)
	{
		result = worker_call(&call_process_changes, Int32GetDatum(worker_settings.decision_batch_size), &value, &isnull);
		if (result == CALL_NOT_INSTALLED)
			return worker_settings.naptime_ms;
		if (result != CALL_OK)
		{
			/* CALL_MISSING: a schema from before the decisions moved here */
			failed |= result == CALL_FAILED;
			break;
		}
		if (isnull || value < worker_settings.decision_batch_size)
			break;
		/* a full batch: more customers changed than one worker decides at once */
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		set_latches(my_slot->dboid, STATE_BIT(WORKER_SLEEPING), my_slot);
		LWLockRelease(worker_shared->lock);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending || worker_stop_requested() || !worker_settings.workers_enabled)
			break;
	}

	for (;;)
	{
		int			batch = worker_settings.batch_size;

		result = worker_call(&call_fire_due_steps, Int32GetDatum(batch), &value, &isnull);
		if (result == CALL_NOT_INSTALLED)
			return worker_settings.naptime_ms;
		if (result != CALL_OK)
		{
			failed |= result == CALL_FAILED;
			break;
		}
		if (isnull || value <= 0)
			break;
		fired_any = true;
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		my_slot->steps_fired += value;
		/* a full batch: more is due than one worker fires at once */
		if (value >= batch)
			set_latches(my_slot->dboid, STATE_BIT(WORKER_SLEEPING), my_slot);
		LWLockRelease(worker_shared->lock);
		if (value < batch)
			break;
		/* a long drain still heeds SIGTERM, reloads and stop requests */
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending || worker_stop_requested() || !worker_settings.workers_enabled)
			break;
	}

	if (my_worker_num == 1)
	{
		TimestampTz models_before = my_slot->models_refreshed_at;

		/*
		 * The models first, and the segments at once after they ran: rules
		 * that read predictions (the lifecycle stages, CLV) would otherwise
		 * keep the memberships of every customer not changed since under
		 * the old model until the next segment refresh, up to its interval
		 * later.  Only this worker writes its slot's times.
		 */
		failed |= worker_call_scheduled(&call_refresh_models, worker_settings.models_refresh_interval,
										&my_slot->models_refreshed_at);
		if (my_slot->models_refreshed_at != models_before)
		{
			LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
			my_slot->segments_refreshed_at = 0;
			LWLockRelease(worker_shared->lock);
		}
		failed |= worker_call_scheduled(&call_refresh_segments, worker_settings.segments_refresh_interval,
										&my_slot->segments_refreshed_at);
		failed |= worker_call_scheduled(&call_refresh_product_affinity,
										worker_settings.affinity_refresh_interval,
										&my_slot->affinity_refreshed_at);
		failed |= worker_call_scheduled(&call_outbox_purge, worker_settings.outbox_purge_interval,
										&my_slot->outbox_purged_at);
	}

	/*
	 * One batch of scores a loop, after the decisions and due steps: a full
	 * batch means more are left, and the next loop comes at once.
	 */
	if (my_worker_num == 1 &&
		(scores_pending ||
		 GetCurrentTimestamp() >= scores_looked_at + (int64) SCORES_LOOK_AGAIN_S * USECS_PER_SEC))
	{
		result = worker_call(&call_store_scores, Int32GetDatum(SCORES_BATCH), &value, &isnull);
		failed |= result == CALL_FAILED;
		scores_pending = result == CALL_OK && !isnull && value >= SCORES_BATCH;
		if (!scores_pending)
			scores_looked_at = GetCurrentTimestamp();
	}

	result = worker_call(&call_next_due_at, (Datum) 0, &value, &isnull);
	if (result == CALL_OK && !isnull)
	{
		long		secs;
		int			usecs;
		long		due_ms;

		TimestampDifference(GetCurrentTimestamp(), (TimestampTz) value, &secs, &usecs);
		due_ms = secs * 1000 + usecs / 1000;
		/*
		 * Something due now that was not fired (locked by another worker,
		 * say) is looked at again soon, but not in a busy loop.
		 */
		if (!fired_any)
			due_ms = Max(due_ms, MIN_WAIT_MS);
		wait_ms = Min(wait_ms, due_ms);
	}
	failed |= result == CALL_FAILED;

	if (scores_pending)
		wait_ms = 0;
	/* after an error, wait a whole naptime before trying again */
	if (failed)
		wait_ms = worker_settings.naptime_ms;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	my_slot->last_run_at = GetCurrentTimestamp();
	LWLockRelease(worker_shared->lock);

	return wait_ms;
}

static void
set_my_state(WorkerState state)
{
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	my_slot->state = state;
	LWLockRelease(worker_shared->lock);
}

/*
 * Woken again (by a commit or a timer) soon after the last look: wait out
 * wake_interval first, so a busy shop's orders, each waking a worker at
 * commit, are fired in batches instead of a transaction each.  Commits leave
 * a gathering worker's latch alone; what sets it is SIGTERM, a reload or a
 * stop request, which end the wait.
 */
static void
gather_wake_ups(TimestampTz last_look)
{
	TimestampTz until = TimestampTzPlusMilliseconds(last_look, worker_settings.wake_interval_ms);

	/* the usual case: the last look is long past, and the worker looks now */
	if (GetCurrentTimestamp() >= until)
		return;
	set_my_state(WORKER_GATHERING);
	for (;;)
	{
		long		wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (wait_ms <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending || worker_stop_requested())
			break;
	}
}

void
post_purchase_worker_main(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	uint64		generation;
	WorkerSlot *slot;
	Oid			dboid;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(generation));
	if (worker_shared == NULL || slotno < 0 || slotno >= worker_shared->nslots)
	{
		elog(LOG, "post_purchase worker started without its slot");
		proc_exit(0);
	}

	/*
	 * A slot given to another worker, a new launcher, a crash restart of the
	 * server: each changes the generation, and this registration is stale.
	 * A stop requested before a restart by the postmaster still holds.  In
	 * either case, exit for good; the launcher decides what runs.
	 */
	slot = &worker_shared->slots[slotno];
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	if (!slot->in_use || slot->generation != generation || slot->pid != 0)
	{
		LWLockRelease(worker_shared->lock);
		proc_exit(0);
	}
	if (slot->stop_requested)
	{
		slot->restart_pending = false;
		LWLockRelease(worker_shared->lock);
		proc_exit(0);
	}
	slot->pid = MyProcPid;
	slot->latch = MyLatch;
	slot->state = WORKER_BUSY;
	slot->started_at = GetCurrentTimestamp();
	dboid = slot->dboid;
	my_worker_num = slot->worker_num;
	my_dbname = slot->dbname;
	my_slot = slot;
	LWLockRelease(worker_shared->lock);
	before_shmem_exit(worker_shmem_exit, (Datum) 0);

	/*
	 * As the bootstrap superuser.  The functions it calls run users' SQL
	 * (conditions, templates, segment rules) as the role that owns them.
	 * A database dropped since the launcher looked makes this FATAL; the
	 * launcher then finds it gone and ends the registration.
	 */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	SetConfigOption("application_name", MyBgworkerEntry->bgw_name,
					PGC_USERSET, PGC_S_SESSION);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "post_purchase worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		wait_ms;
		TimestampTz looked_at;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (worker_stop_requested())
		{
			ereport(LOG,
					(errmsg("post_purchase worker %d for database \"%s\" stopping on request",
							my_worker_num, NameStr(my_dbname))));
			proc_exit(0);
		}

		set_my_state(WORKER_BUSY);
		looked_at = GetCurrentTimestamp();
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		wait_ms = worker_iteration();
		MemoryContextSwitchTo(TopMemoryContext);

		set_my_state(WORKER_SLEEPING);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		gather_wake_ups(looked_at);
	}
}
