/*
 * launcher.c
 *	  The launcher: a static background worker that starts, for each
 *	  database of post_purchase.databases, its workers (worker_loop.c),
 *	  restarts those that ended for good, and stops those no longer wanted.
 *	  worker.c's header says how registrations survive crashes.
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "worker_internal.h"

PGDLLEXPORT void post_purchase_launcher_main(Datum main_arg);

/* the launcher registers a worker at most this often */
#define RESTART_DELAY_MS 5000
/* how late a restart by the postmaster may be before the launcher steps in */
#define RESTART_GRACE_MS 2000

/* in the launcher: what it knows of each slot's worker */
typedef struct LauncherSlot
{
	BackgroundWorkerHandle *handle;
	TimestampTz registered_at;
	TimestampTz stop_requested_at;
} LauncherSlot;

static LauncherSlot *launcher_slots = NULL;

/* a database the launcher should have workers in */
typedef struct Target
{
	NameData	name;
	Oid			oid;
} Target;


/* Its workers go with it: a new launcher starts its own. */
static void
launcher_shmem_exit(int code, Datum arg)
{
	int			i;

	LWLockReleaseAll();
	for (i = 0; i < worker_shared->nslots; i++)
		if (launcher_slots[i].handle != NULL)
			TerminateBackgroundWorker(launcher_slots[i].handle);

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	if (worker_shared->launcher_pid == MyProcPid)
	{
		worker_shared->launcher_pid = 0;
		worker_shared->launcher_latch = NULL;
	}
	LWLockRelease(worker_shared->lock);
}

/*
 * Whether slot i has a worker, or will have one without the launcher: one
 * that exited with an error shows as stopped to GetBackgroundWorkerPid()
 * until the postmaster restarts it, bgw_restart_time later.
 */
static bool
launcher_worker_running(int i)
{
	WorkerSlot *slot = &worker_shared->slots[i];
	pid_t		pid;
	bool		running;

	if (launcher_slots[i].handle != NULL &&
		GetBackgroundWorkerPid(launcher_slots[i].handle, &pid) != BGWH_STOPPED)
		return true;
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	running = slot->pid != 0 ||
		(launcher_slots[i].handle != NULL && slot->restart_pending &&
		 !TimestampDifferenceExceeds(slot->exited_at, GetCurrentTimestamp(),
									 RESTART_SECONDS * 1000 + RESTART_GRACE_MS));
	LWLockRelease(worker_shared->lock);
	return running;
}

/* End the registration of slot i's worker: the postmaster stops it. */
static void
launcher_terminate_worker(int i)
{
	WorkerSlot *slot = &worker_shared->slots[i];
	pid_t		pid;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	pid = slot->pid;
	slot->restart_pending = false;
	LWLockRelease(worker_shared->lock);
	if (launcher_slots[i].handle != NULL)
		TerminateBackgroundWorker(launcher_slots[i].handle);
	else if (pid != 0)
		(void) kill(pid, SIGTERM);
}

/*
 * The databases of post_purchase.databases that exist and take connections.
 * Each missing one is logged once, until it appears.
 */
static Target *
launcher_targets(int *ntargets)
{
	static List *reported_missing = NIL;	/* in TopMemoryContext */
	static bool reported_empty = false;
	List	   *names = database_names(worker_settings.databases_setting);
	List	   *seen = NIL;
	List	   *databases = NIL;	/* the usable ones, and their oids */
	List	   *oids = NIL;
	ListCell   *lc;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	Target	   *targets;
	int			n = 0;

	if (names == NIL)
	{
		if (!reported_empty)
			ereport(LOG,
					(errmsg("post_purchase.databases is empty: no post_purchase worker runs"),
					 errhint("Set post_purchase.databases to the databases that use post_purchase and reload the configuration.")));
		reported_empty = true;
	}
	else
		reported_empty = false;

	targets = palloc0(sizeof(Target) * (list_length(names) + 1));

	/*
	 * A heap scan, as the autovacuum launcher does: without a database the
	 * indexes of pg_database may not be in the relation cache yet.
	 */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database form = (Form_pg_database) GETSTRUCT(tuple);

		if (form->datallowconn && !database_is_invalid_form(form) &&
			name_in_list(names, NameStr(form->datname)))
		{
			databases = lappend(databases, pstrdup(NameStr(form->datname)));
			oids = lappend_oid(oids, form->oid);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		ListCell   *cell;
		ListCell   *oidcell;
		Oid			oid = InvalidOid;

		if (name_in_list(seen, name))
			continue;
		seen = lappend(seen, name);

		forboth(cell, databases, oidcell, oids)
		{
			if (strcmp((char *) lfirst(cell), name) == 0)
				oid = lfirst_oid(oidcell);
		}

		if (OidIsValid(oid))
		{
			namestrcpy(&targets[n].name, name);
			targets[n].oid = oid;
			n++;
			foreach(cell, reported_missing)
			{
				if (strcmp((char *) lfirst(cell), name) == 0)
				{
					reported_missing = foreach_delete_current(reported_missing, cell);
					break;
				}
			}
		}
		else if (!name_in_list(reported_missing, name))
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			ereport(LOG,
					(errmsg("database \"%s\" of post_purchase.databases does not exist or does not allow connections",
							name),
					 errdetail("Its post_purchase workers start when it does.")));
			reported_missing = lappend(reported_missing, pstrdup(name));
			MemoryContextSwitchTo(old);
		}
	}
	CommitTransactionCommand();

	*ntargets = n;
	return targets;
}

static bool
slot_wanted(WorkerSlot *slot, Target *targets, int ntargets)
{
	int			i;

	if (slot->worker_num > worker_settings.workers_per_database)
		return false;
	for (i = 0; i < ntargets; i++)
		if (targets[i].oid == slot->dboid &&
			strcmp(NameStr(targets[i].name), NameStr(slot->dbname)) == 0)
			return true;
	return false;
}

/* The slot of (database, worker number); a new one if it has none. */
static int
launcher_slot_for(Target *target, int worker_num)
{
	int			free_slot = -1;
	int			i;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->in_use && slot->dboid == target->oid && slot->worker_num == worker_num)
		{
			LWLockRelease(worker_shared->lock);
			return i;
		}
		if (!slot->in_use && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0)
	{
		WorkerSlot *slot = &worker_shared->slots[free_slot];

		memset(slot, 0, sizeof(WorkerSlot));
		slot->in_use = true;
		slot->generation = ++worker_shared->next_generation;
		slot->dboid = target->oid;
		slot->dbname = target->name;
		slot->worker_num = worker_num;
		memset(&launcher_slots[free_slot], 0, sizeof(LauncherSlot));
	}
	LWLockRelease(worker_shared->lock);
	return free_slot;
}

static void
launcher_free_slot(int i)
{
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	worker_shared->slots[i].in_use = false;
	LWLockRelease(worker_shared->lock);
	if (launcher_slots[i].handle != NULL)
		pfree(launcher_slots[i].handle);
	memset(&launcher_slots[i], 0, sizeof(LauncherSlot));
}

/* Register the dynamic worker of slot i; false if no bgworker slot is free. */
static bool
launcher_start_worker(int i)
{
	WorkerSlot *slot = &worker_shared->slots[i];
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	bool		ok;

	memset(&bgw, 0, sizeof(bgw));
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	slot->stop_requested = false;
	slot->restart_pending = false;
	snprintf(bgw.bgw_name, BGW_MAXLEN, "post_purchase worker %d for database %s",
			 slot->worker_num, NameStr(slot->dbname));
	memcpy(bgw.bgw_extra, &slot->generation, sizeof(slot->generation));
	LWLockRelease(worker_shared->lock);

	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = RESTART_SECONDS;
	strlcpy(bgw.bgw_library_name, "post_purchase", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "post_purchase_worker_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "post_purchase worker", BGW_MAXLEN);
	bgw.bgw_main_arg = Int32GetDatum(i);
	bgw.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&bgw, &handle);
	MemoryContextSwitchTo(old);

	launcher_slots[i].registered_at = GetCurrentTimestamp();
	launcher_slots[i].stop_requested_at = 0;
	if (launcher_slots[i].handle != NULL)
		pfree(launcher_slots[i].handle);
	launcher_slots[i].handle = ok ? handle : NULL;
	return ok;
}

/*
 * Make the running workers match the settings and the databases; returns
 * how long the launcher may sleep, in ms.
 */
static long
launcher_reconcile(void)
{
	static bool reported_no_slot = false;
	TimestampTz now = GetCurrentTimestamp();
	long		timeout = Min(Max(worker_settings.naptime_ms * 10L, 1000L), 60 * 1000L);
	bool		short_of_slots = false;
	Target	   *targets;
	int			ntargets;
	int			t;
	int			i;

	targets = launcher_targets(&ntargets);

	/* stop the workers nobody wants any more, and free their slots */
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];
		bool		wanted;
		bool		in_use;

		LWLockAcquire(worker_shared->lock, LW_SHARED);
		in_use = slot->in_use;
		wanted = in_use && slot_wanted(slot, targets, ntargets);
		LWLockRelease(worker_shared->lock);
		if (!in_use || wanted)
			continue;

		if (!launcher_worker_running(i))
			launcher_free_slot(i);
		else if (launcher_slots[i].stop_requested_at == 0)
		{
			LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
			slot->stop_requested = true;
			if (slot->latch)
				SetLatch(slot->latch);
			LWLockRelease(worker_shared->lock);
			launcher_slots[i].stop_requested_at = now;
			timeout = Min(timeout, STOP_GRACE_MS);
		}
		else if (TimestampDifferenceExceeds(launcher_slots[i].stop_requested_at, now,
											STOP_GRACE_MS))
		{
			launcher_terminate_worker(i);
			timeout = Min(timeout, 100);
		}
		else
			timeout = Min(timeout, STOP_GRACE_MS);
	}

	/* start the missing ones */
	for (t = 0; t < ntargets; t++)
	{
		int			n;
		bool		paused;

		LWLockAcquire(worker_shared->lock, LW_SHARED);
		paused = database_paused(targets[t].oid, now);
		LWLockRelease(worker_shared->lock);
		if (paused)
			continue;

		for (n = 1; n <= worker_settings.workers_per_database; n++)
		{
			i = launcher_slot_for(&targets[t], n);
			if (i < 0)
			{
				short_of_slots = true;
				continue;
			}
			if (launcher_worker_running(i))
				continue;
			if (launcher_slots[i].registered_at != 0 &&
				!TimestampDifferenceExceeds(launcher_slots[i].registered_at, now,
											RESTART_DELAY_MS))
			{
				long		secs;
				int			usecs;

				TimestampDifference(now,
									TimestampTzPlusMilliseconds(launcher_slots[i].registered_at,
																RESTART_DELAY_MS),
									&secs, &usecs);
				timeout = Min(timeout, secs * 1000 + usecs / 1000 + 1);
				continue;
			}
			if (!launcher_start_worker(i))
				short_of_slots = true;
		}
	}

	if (short_of_slots && !reported_no_slot)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("out of background worker slots for post_purchase workers"),
				 errhint("You might need to increase max_worker_processes.")));
	reported_no_slot = short_of_slots;

	return timeout;
}

void
post_purchase_launcher_main(Datum main_arg)
{
	MemoryContext loop_cxt;
	int			i;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (worker_shared == NULL)
		elog(FATAL, "post_purchase launcher started without its shared memory");

	launcher_slots = MemoryContextAllocZero(TopMemoryContext,
											sizeof(LauncherSlot) * worker_shared->nslots);
	before_shmem_exit(launcher_shmem_exit, (Datum) 0);

	/* shared catalogs only: pg_database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	SetConfigOption("application_name", MyBgworkerEntry->bgw_name,
					PGC_USERSET, PGC_S_SESSION);

	/*
	 * A previous launcher's workers were told to exit when it did; a
	 * registration of its that has not started yet must not take a slot, so
	 * every slot gets a new generation.  The statistics stay.
	 */
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	worker_shared->launcher_pid = MyProcPid;
	worker_shared->launcher_latch = MyLatch;
	for (i = 0; i < worker_shared->nslots; i++)
		if (worker_shared->slots[i].in_use)
			worker_shared->slots[i].generation = ++worker_shared->next_generation;
	LWLockRelease(worker_shared->lock);
	stop_workers(InvalidOid, STOP_TIMEOUT_MS);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "post_purchase launcher loop",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		/* BgWorkerStart_RecoveryFinished: only if the check is ever needed */
		if (RecoveryInProgress())
			timeout = worker_settings.naptime_ms;
		else
			timeout = launcher_reconcile();
		MemoryContextSwitchTo(TopMemoryContext);

		/* a worker that starts or exits sets the latch (bgw_notify_pid) */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
