/*
 * worker.c
 *	  The background workers that fire journey steps: a launcher, registered
 *	  when the library is in shared_preload_libraries, and per-database
 *	  workers that it starts.
 *
 * Which databases: the ones named in post_purchase.databases.  Discovering
 * every database that has the extension was considered, but it needs a
 * connection to each database (pg_extension is not a shared catalog), so a
 * server with many databases would hold a worker in every one of them and
 * block DROP DATABASE, CREATE DATABASE ... TEMPLATE and renames of databases
 * that never use post_purchase.  An explicit list costs one setting.
 *
 * The launcher is a static worker; the per-database workers are dynamic
 * workers it registers.  The postmaster restarts either, bgw_restart_time
 * later, when it exits with code 1 (an error, SIGTERM from
 * pg_terminate_backend).  A worker exits with code 0, which ends its
 * registration, only when it must not run again: the launcher or DROP
 * DATABASE asked it to stop, or its registration is stale.  Registrations
 * outlive a crash-and-restart cycle of the whole server (SIGKILL of any
 * process), while the shared memory that says which worker is which does
 * not: each registration carries its slot's generation, which includes a
 * count of shared memory initializations, so a registration from before the
 * cycle finds no slot of its own and exits for good, and the new launcher
 * starts the workers again.  The launcher is told when a worker exits
 * (bgw_notify_pid); it registers again one that is wanted but ended for
 * good (a DROP DATABASE that failed, say), at most every RESTART_DELAY_MS.
 * When the launcher exits, the registrations of its workers end with it.
 *
 * Worker 1 of a database also runs enroll_due() and the scheduled
 * refresh_segments(), refresh_models() and outbox_purge(): those work on the
 * whole database, and running them in every worker would only repeat the
 * work.  Every worker fires due steps; fire_due_steps() claims them with
 * FOR UPDATE SKIP LOCKED, so more workers fire more steps at once.
 *
 * Shared memory holds one slot per worker: who it is, its latch, and what
 * worker_status() shows.  It is sized by max_worker_processes, which bounds
 * the number of workers anyway, so workers_per_database can change on reload.
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "utils/backend_status.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "segments.h"
#include "decisions.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(post_purchase_worker_status);
PG_FUNCTION_INFO_V1(post_purchase_wake_workers);
PG_FUNCTION_INFO_V1(post_purchase_check_workers_serve);

PGDLLEXPORT void post_purchase_launcher_main(Datum main_arg);
PGDLLEXPORT void post_purchase_worker_main(Datum main_arg);

#define LOCK_TRANCHE "post_purchase workers"
#define LAST_ERROR_LEN 256
#define MAX_PAUSED_DATABASES 8

/* the postmaster restarts a launcher or worker that crashed this late */
#define RESTART_SECONDS 5
/* the launcher registers a worker at most this often */
#define RESTART_DELAY_MS 5000
/* how late a restart by the postmaster may be before the launcher steps in */
#define RESTART_GRACE_MS 2000
/* a worker asked to stop gets this long before it is sent SIGTERM */
#define STOP_GRACE_MS 1000
/* DROP DATABASE waits at most this long for the database's workers */
#define STOP_TIMEOUT_MS 5000
/* between two looks, when something is still due but was not fired */
#define MIN_WAIT_MS 10

/* What a worker is doing, for the wake-ups at commit (wake_database_workers). */
typedef enum WorkerState
{
	WORKER_BUSY,				/* in a loop: may have looked for due steps already */
	WORKER_SLEEPING,			/* waiting for its latch or its timer */
	WORKER_GATHERING			/* woken; waits out wake_interval, then looks */
} WorkerState;

/*
 * One worker: set up by the launcher, filled in by the worker.  The
 * statistics stay when the worker restarts; they go with the slot when its
 * database leaves post_purchase.databases.
 */
typedef struct WorkerSlot
{
	bool		in_use;
	bool		stop_requested; /* exit at the next loop */
	uint64		generation;		/* the registration that may use the slot */
	Oid			dboid;
	NameData	dbname;
	int			worker_num;		/* 1 .. workers_per_database */
	pid_t		pid;			/* 0 when not running */
	Latch	   *latch;
	WorkerState state;
	bool		restart_pending;	/* exited with an error: the postmaster
									 * restarts it */
	TimestampTz exited_at;
	TimestampTz started_at;
	TimestampTz last_run_at;
	int64		steps_fired;
	char		last_error[LAST_ERROR_LEN];
	TimestampTz last_error_at;
	/* when worker 1 last ran its scheduled functions */
	TimestampTz segments_refreshed_at;
	TimestampTz models_refreshed_at;
	TimestampTz outbox_purged_at;
} WorkerSlot;

/* A database whose workers must stay stopped: DROP DATABASE is running. */
typedef struct PausedDatabase
{
	Oid			dboid;
	TimestampTz until;
} PausedDatabase;

typedef struct WorkerShared
{
	LWLock	   *lock;			/* protects everything here */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	uint64		next_generation;
	PausedDatabase paused[MAX_PAUSED_DATABASES];
	int			nslots;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} WorkerShared;

/* NULL unless the library was preloaded */
static WorkerShared *shared = NULL;

/* settings */
static char *databases_setting = NULL;
static int	workers_per_database = 1;
static int	naptime_ms = 1000;
static int	wake_interval_ms = 10;
static int	batch_size = 500;
static int	decision_batch_size = 100;
static bool workers_enabled = true;
static int	segments_refresh_interval = 3600;
static int	models_refresh_interval = 86400;
static int	outbox_purge_interval = 600;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* this backend's wake-ups, sent when its transaction commits */
static bool xact_callback_registered = false;
static bool wake_workers_at_commit = false;
static bool wake_launcher_at_commit = false;

/* in a worker: its slot */
static WorkerSlot *my_slot = NULL;
static int	my_worker_num = 0;
static NameData my_dbname;

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

/* ---------------------------------------------------------------------
 * Settings and registration
 * ---------------------------------------------------------------------
 */

static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *rawstring = pstrdup(*newval);
	List	   *names;
	ListCell   *lc;
	bool		ok = true;

	if (!SplitGUCList(rawstring, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		ok = false;
	}
	else
	{
		foreach(lc, names)
		{
			if (strlen((char *) lfirst(lc)) >= NAMEDATALEN)
			{
				GUC_check_errdetail("Database name \"%s\" is too long.", (char *) lfirst(lc));
				ok = false;
				break;
			}
		}
	}
	list_free(names);
	pfree(rawstring);
	return ok;
}

static void define_settings(void);
static void worker_shmem_request(void);
static void worker_shmem_startup(void);
static void worker_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree, ProcessUtilityContext context,
								  ParamListInfo params, QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);

void
post_purchase_worker_init(void)
{
	BackgroundWorker bgw;

	define_settings();

	if (!process_shared_preload_libraries_in_progress)
		return;

	/* pg_upgrade's server must run nothing of ours */
	if (IsBinaryUpgrade)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = worker_ProcessUtility;

	/*
	 * The launcher starts once recovery has finished, so a standby never runs
	 * one; a promoted standby does.
	 */
	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = RESTART_SECONDS;
	strlcpy(bgw.bgw_library_name, "post_purchase", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "post_purchase_launcher_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "post_purchase launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "post_purchase launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

static const struct config_enum_entry decide_in_options[] = {
	{"auto", DECIDE_IN_AUTO, false},
	{"order", DECIDE_IN_ORDER, false},
	{"worker", DECIDE_IN_WORKER, false},
	{NULL, 0, false}
};

static void
define_settings(void)
{
	DefineCustomStringVariable("post_purchase.databases",
							   "Databases in which post_purchase background workers fire journey steps.",
							   "A comma-separated list of database names; empty starts no worker.",
							   &databases_setting,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, NULL, NULL);
	DefineCustomIntVariable("post_purchase.workers_per_database",
							"Number of post_purchase background workers in each database.",
							NULL,
							&workers_per_database,
							1, 1, 8,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.naptime",
							"Longest sleep of a post_purchase worker between two looks for due steps.",
							"The launcher looks for new or dropped databases every ten naptimes.",
							&naptime_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.wake_interval",
							"Shortest time between two looks of a post_purchase worker for due steps.",
							"Orders wake a worker at commit; in a busy shop it fires what arrived "
							"within this time in one batch instead of one transaction per order.",
							&wake_interval_ms,
							10, 0, 10 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.batch_size",
							"Number of due steps a post_purchase worker fires in one transaction.",
							NULL,
							&batch_size,
							500, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.decision_batch_size",
							"Number of changed customers a post_purchase worker decides in one transaction.",
							"Their state rows stay locked until it commits: a new order of one of them waits.",
							&decision_batch_size,
							100, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("post_purchase.enabled",
							 "Whether post_purchase background workers fire steps; off leaves them idle.",
							 NULL,
							 &workers_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.segments_refresh_interval",
							"Time between two refresh_segments() calls of the background worker.",
							"0 never calls it.",
							&segments_refresh_interval,
							3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.models_refresh_interval",
							"Time between two refresh_models() calls of the background worker.",
							"0 never calls it.",
							&models_refresh_interval,
							86400, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("post_purchase.decide_in",
							 "Where an order's segment changes and journey enrollments are decided.",
							 "order: in the order's transaction, by its trigger; worker: by a background "
							 "worker, after the order commits; auto: a worker where one serves the "
							 "database, else the order.",
							 &decide_in,
							 DECIDE_IN_AUTO,
							 decide_in_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.outbox_purge_interval",
							"Time between two outbox_purge() calls of the background worker.",
							"0 never calls it.",
							&outbox_purge_interval,
							600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

static Size
worker_shmem_size(void)
{
	return add_size(offsetof(WorkerShared, slots),
					mul_size(max_worker_processes, sizeof(WorkerSlot)));
}

static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(worker_shmem_size());
	RequestNamedLWLockTranche(LOCK_TRANCHE, 1);
}

/*
 * Also runs when the postmaster reinitializes after a crash: all is new, and
 * generations start from a new high word, so that no registration from
 * before the crash matches a slot.
 */
static void
worker_shmem_startup(void)
{
	static uint32 initializations = 0;	/* in the postmaster */
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("post_purchase workers", worker_shmem_size(), &found);
	if (!found)
	{
		memset(shared, 0, worker_shmem_size());
		shared->lock = &(GetNamedLWLockTranche(LOCK_TRANCHE))->lock;
		shared->nslots = max_worker_processes;
		shared->next_generation = (uint64) ++initializations << 32;
	}
	LWLockRelease(AddinShmemInitLock);
}

static bool
database_paused(Oid dboid, TimestampTz now)
{
	int			i;

	for (i = 0; i < MAX_PAUSED_DATABASES; i++)
		if (shared->paused[i].dboid == dboid && shared->paused[i].until > now)
			return true;
	return false;
}

/* Keep the launcher from starting dboid's workers until "until" (0: unpause). */
static void
pause_database(Oid dboid, TimestampTz until)
{
	TimestampTz now = GetCurrentTimestamp();
	int			free_entry = -1;
	int			i;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < MAX_PAUSED_DATABASES; i++)
	{
		if (shared->paused[i].dboid == dboid)
		{
			free_entry = i;
			break;
		}
		if (free_entry < 0 && shared->paused[i].until <= now)
			free_entry = i;
	}
	/* all entries busy: the workers may come back, DROP DATABASE may fail */
	if (free_entry >= 0)
	{
		shared->paused[free_entry].dboid = until > now ? dboid : InvalidOid;
		shared->paused[free_entry].until = until;
	}
	LWLockRelease(shared->lock);
}

/*
 * Ask the workers of dboid (of every database if InvalidOid) to exit, send
 * them SIGTERM after STOP_GRACE_MS, and wait for them at most timeout_ms.
 * Runs in a backend or in the launcher; interrupts are served while waiting.
 */
static void
stop_workers(Oid dboid, int timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		sigterm_sent = false;

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		escalate = !sigterm_sent &&
			TimestampDifferenceExceeds(start, now, STOP_GRACE_MS);
		int			running = 0;
		int			i;

		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < shared->nslots; i++)
		{
			WorkerSlot *slot = &shared->slots[i];

			if (!slot->in_use || (OidIsValid(dboid) && slot->dboid != dboid))
				continue;
			/* also one the postmaster is about to restart */
			slot->stop_requested = true;
			if (slot->pid == 0)
				continue;
			running++;
			if (slot->latch)
				SetLatch(slot->latch);
			if (escalate)
				(void) kill(slot->pid, SIGTERM);
		}
		LWLockRelease(shared->lock);
		sigterm_sent |= escalate;

		if (running == 0 || TimestampDifferenceExceeds(start, now, timeout_ms))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* ---------------------------------------------------------------------
 * Wake-ups at commit
 * ---------------------------------------------------------------------
 */

#define STATE_BIT(state) (1 << (state))
#define ANY_STATE (STATE_BIT(WORKER_BUSY) | STATE_BIT(WORKER_SLEEPING) | STATE_BIT(WORKER_GATHERING))

/* Whether the slot's worker runs in dboid and can be woken; under shared->lock. */
static bool
wakeable_in(const WorkerSlot *slot, Oid dboid)
{
	return slot->in_use && slot->dboid == dboid && slot->latch != NULL;
}

/* Set the latches of dboid's workers in the states given, but one; under shared->lock. */
static void
set_latches(Oid dboid, int states, WorkerSlot *except)
{
	int			i;

	for (i = 0; i < shared->nslots; i++)
	{
		WorkerSlot *slot = &shared->slots[i];

		if (wakeable_in(slot, dboid) && (states & STATE_BIT(slot->state)) != 0 && slot != except)
			SetLatch(slot->latch);
	}
}

/*
 * A step became due at this commit, and one worker must look for it.  A
 * worker about to look (gathering) will find it; else one sleeping worker
 * is woken.  When all are busy, each may have looked before the commit:
 * all latches are set, so each looks once more after its loop.  Waking
 * one, not all, keeps a busy shop's orders from running every worker's
 * loop for every order.
 */
static void
wake_database_workers(Oid dboid)
{
	WorkerSlot *sleeping = NULL;
	int			i;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots; i++)
	{
		WorkerSlot *slot = &shared->slots[i];

		if (!wakeable_in(slot, dboid))
			continue;
		if (slot->state == WORKER_GATHERING)
		{
			LWLockRelease(shared->lock);
			return;
		}
		if (slot->state == WORKER_SLEEPING && sleeping == NULL)
			sleeping = slot;
	}
	if (sleeping != NULL)
		SetLatch(sleeping->latch);
	else
		set_latches(dboid, STATE_BIT(WORKER_BUSY), NULL);
	LWLockRelease(shared->lock);
}

static void
wake_launcher(void)
{
	LWLockAcquire(shared->lock, LW_SHARED);
	if (shared->launcher_latch != NULL)
		SetLatch(shared->launcher_latch);
	LWLockRelease(shared->lock);
}

/*
 * The wake-ups wait for the commit: before it, what the worker should find
 * is not visible to it yet.
 */
static void
worker_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wake_workers_at_commit)
				wake_database_workers(MyDatabaseId);
			if (wake_launcher_at_commit)
				wake_launcher();
			wake_workers_at_commit = wake_launcher_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction's steps are found within naptime */
			wake_workers_at_commit = wake_launcher_at_commit = false;
			break;
		default:
			break;
	}
}

static void
register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(worker_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * Wake this database's workers when the transaction commits, so a step due
 * now fires at once instead of within naptime.  Without preloaded workers
 * it does nothing.
 */
void
wake_workers_at_commit_of_xact(void)
{
	if (shared != NULL && !wake_workers_at_commit)
	{
		register_xact_callback();
		wake_workers_at_commit = true;
	}
}

/* wake_workers(): the same, from SQL. */
Datum
post_purchase_wake_workers(PG_FUNCTION_ARGS)
{
	wake_workers_at_commit_of_xact();
	PG_RETURN_VOID();
}

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
	if (shared == NULL)
		return (Datum) 0;

	/* copy under the lock, build the rows without it */
	copy = palloc(sizeof(WorkerSlot) * shared->nslots);
	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots; i++)
		if (shared->slots[i].in_use)
			copy[n++] = shared->slots[i];
	LWLockRelease(shared->lock);

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

/* ---------------------------------------------------------------------
 * Commands that need a database without other connections
 * ---------------------------------------------------------------------
 */

static bool
database_has_workers(Oid dboid)
{
	bool		found = false;
	int			i;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots && !found; i++)
		found = shared->slots[i].in_use && shared->slots[i].dboid == dboid;
	LWLockRelease(shared->lock);
	return found;
}

static const char *
database_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, name) == 0 && def->arg != NULL)
			return defGetString(def);
	}
	return NULL;
}

/*
 * DROP DATABASE, ALTER DATABASE ... RENAME TO / SET TABLESPACE and CREATE
 * DATABASE ... TEMPLATE fail while another session is connected to the
 * database.  Before them, stop the database's workers and keep the launcher
 * from starting them again; after a failure, let it.  Only the owner of the
 * database (or a superuser) may do so: anyone else's command fails anyway,
 * and must not be a way to stop the workers.
 */
static void
worker_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	const char *dbname = NULL;
	bool		gone_after = false; /* the database leaves under its name */
	Oid			dboid = InvalidOid;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			/* in a transaction block it fails without looking at sessions */
			if (!IsTransactionBlock())
				dbname = ((DropdbStmt *) parsetree)->dbname;
			gone_after = true;
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
			{
				dbname = ((RenameStmt *) parsetree)->subname;
				gone_after = true;
			}
			break;
		case T_AlterDatabaseStmt:
			if (database_option(((AlterDatabaseStmt *) parsetree)->options, "tablespace"))
				dbname = ((AlterDatabaseStmt *) parsetree)->dbname;
			break;
		case T_CreatedbStmt:
			if (!IsTransactionBlock())
				dbname = database_option(((CreatedbStmt *) parsetree)->options, "template");
			/* the new database may be one the launcher waits for */
			if (shared != NULL)
			{
				register_xact_callback();
				wake_launcher_at_commit = true;
			}
			break;
		default:
			break;
	}

	if (dbname != NULL && shared != NULL)
	{
		dboid = get_database_oid(dbname, true);
		if (!OidIsValid(dboid) || !database_has_workers(dboid) ||
			!pg_database_ownercheck(dboid, GetUserId()))
			dboid = InvalidOid;
	}

	PG_TRY();
	{
		if (OidIsValid(dboid))
		{
			/* long enough for the command; ended below */
			pause_database(dboid, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000));
			stop_workers(dboid, STOP_TIMEOUT_MS);
		}

		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dboid))
			pause_database(dboid, 0);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (OidIsValid(dboid))
	{
		/*
		 * A dropped or renamed database is still there under its old name
		 * until the command's transaction commits: keep the launcher away a
		 * little longer.
		 */
		if (gone_after)
			pause_database(dboid, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10 * 1000));
		else
			pause_database(dboid, 0);
		register_xact_callback();
		wake_launcher_at_commit = true;
	}
}

/* ---------------------------------------------------------------------
 * The per-database worker
 * ---------------------------------------------------------------------
 */

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
static const WorkerCall call_outbox_purge =
{"outbox_purge", 0, "SELECT post_purchase.outbox_purge()"};
static const WorkerCall call_process_changes =
{"process_changes", 1, "SELECT post_purchase.process_changes($1)::pg_catalog.int8"};

static void
worker_shmem_exit(int code, Datum arg)
{
	/* an error outside a transaction may have left our lock held */
	LWLockReleaseAll();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->restart_pending = code != 0;
	my_slot->exited_at = GetCurrentTimestamp();
	/* a wake-up left to this worker (wake_database_workers) goes to the others */
	set_latches(my_slot->dboid, ANY_STATE, my_slot);
	LWLockRelease(shared->lock);
}

static bool
worker_stop_requested(void)
{
	bool		stop;

	LWLockAcquire(shared->lock, LW_SHARED);
	stop = my_slot->stop_requested;
	LWLockRelease(shared->lock);
	return stop;
}

/* Like to_regprocedure('post_purchase.name(...)') IS NOT NULL. */
static bool
function_exists(const WorkerCall *call)
{
	Oid			argtypes[1] = {INT4OID};
	List	   *name = list_make2(makeString("post_purchase"),
								  makeString(pstrdup(call->name)));

	return OidIsValid(LookupFuncName(name, call->nargs, argtypes, true));
}

static void
record_error(const char *function, const char *message)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	snprintf(my_slot->last_error, LAST_ERROR_LEN, "%s: %s", function, message);
	my_slot->last_error_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
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
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		*last = now;
		LWLockRelease(shared->lock);
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
	long		wait_ms = naptime_ms;

	if (!workers_enabled || RecoveryInProgress() || paused_for_restore())
		return naptime_ms;

	if (my_worker_num == 1)
	{
		result = worker_call(&call_enroll_due, (Datum) 0, NULL, NULL);
		if (result == CALL_NOT_INSTALLED)
			return naptime_ms;
		failed |= result == CALL_FAILED;
	}

	/* the orders' decisions first: the thank-yous they enroll are due now */
	for (;;)
	{
		result = worker_call(&call_process_changes, Int32GetDatum(decision_batch_size), &value, &isnull);
		if (result == CALL_NOT_INSTALLED)
			return naptime_ms;
		if (result != CALL_OK)
		{
			/* CALL_MISSING: a schema from before the decisions moved here */
			failed |= result == CALL_FAILED;
			break;
		}
		if (isnull || value < decision_batch_size)
			break;
		/* a full batch: more customers changed than one worker decides at once */
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		set_latches(my_slot->dboid, STATE_BIT(WORKER_SLEEPING), my_slot);
		LWLockRelease(shared->lock);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending || worker_stop_requested() || !workers_enabled)
			break;
	}

	for (;;)
	{
		int			batch = batch_size;

		result = worker_call(&call_fire_due_steps, Int32GetDatum(batch), &value, &isnull);
		if (result == CALL_NOT_INSTALLED)
			return naptime_ms;
		if (result != CALL_OK)
		{
			failed |= result == CALL_FAILED;
			break;
		}
		if (isnull || value <= 0)
			break;
		fired_any = true;
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		my_slot->steps_fired += value;
		/* a full batch: more is due than one worker fires at once */
		if (value >= batch)
			set_latches(my_slot->dboid, STATE_BIT(WORKER_SLEEPING), my_slot);
		LWLockRelease(shared->lock);
		if (value < batch)
			break;
		/* a long drain still heeds SIGTERM, reloads and stop requests */
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending || worker_stop_requested() || !workers_enabled)
			break;
	}

	if (my_worker_num == 1)
	{
		failed |= worker_call_scheduled(&call_refresh_segments, segments_refresh_interval,
										&my_slot->segments_refreshed_at);
		failed |= worker_call_scheduled(&call_refresh_models, models_refresh_interval,
										&my_slot->models_refreshed_at);
		failed |= worker_call_scheduled(&call_outbox_purge, outbox_purge_interval,
										&my_slot->outbox_purged_at);
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

	/* after an error, wait a whole naptime before trying again */
	if (failed)
		wait_ms = naptime_ms;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	my_slot->last_run_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);

	return wait_ms;
}

static void
set_my_state(WorkerState state)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	my_slot->state = state;
	LWLockRelease(shared->lock);
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
	TimestampTz until = TimestampTzPlusMilliseconds(last_look, wake_interval_ms);

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
	if (shared == NULL || slotno < 0 || slotno >= shared->nslots)
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
	slot = &shared->slots[slotno];
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (!slot->in_use || slot->generation != generation || slot->pid != 0)
	{
		LWLockRelease(shared->lock);
		proc_exit(0);
	}
	if (slot->stop_requested)
	{
		slot->restart_pending = false;
		LWLockRelease(shared->lock);
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
	LWLockRelease(shared->lock);
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

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

/* Its workers go with it: a new launcher starts its own. */
static void
launcher_shmem_exit(int code, Datum arg)
{
	int			i;

	LWLockReleaseAll();
	for (i = 0; i < shared->nslots; i++)
		if (launcher_slots[i].handle != NULL)
			TerminateBackgroundWorker(launcher_slots[i].handle);

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (shared->launcher_pid == MyProcPid)
	{
		shared->launcher_pid = 0;
		shared->launcher_latch = NULL;
	}
	LWLockRelease(shared->lock);
}

/*
 * Whether slot i has a worker, or will have one without the launcher: one
 * that exited with an error shows as stopped to GetBackgroundWorkerPid()
 * until the postmaster restarts it, bgw_restart_time later.
 */
static bool
launcher_worker_running(int i)
{
	WorkerSlot *slot = &shared->slots[i];
	pid_t		pid;
	bool		running;

	if (launcher_slots[i].handle != NULL &&
		GetBackgroundWorkerPid(launcher_slots[i].handle, &pid) != BGWH_STOPPED)
		return true;
	LWLockAcquire(shared->lock, LW_SHARED);
	running = slot->pid != 0 ||
		(launcher_slots[i].handle != NULL && slot->restart_pending &&
		 !TimestampDifferenceExceeds(slot->exited_at, GetCurrentTimestamp(),
									 RESTART_SECONDS * 1000 + RESTART_GRACE_MS));
	LWLockRelease(shared->lock);
	return running;
}

/* End the registration of slot i's worker: the postmaster stops it. */
static void
launcher_terminate_worker(int i)
{
	WorkerSlot *slot = &shared->slots[i];
	pid_t		pid;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	pid = slot->pid;
	slot->restart_pending = false;
	LWLockRelease(shared->lock);
	if (launcher_slots[i].handle != NULL)
		TerminateBackgroundWorker(launcher_slots[i].handle);
	else if (pid != 0)
		(void) kill(pid, SIGTERM);
}

/*
 * The database names of a post_purchase.databases value, read as the
 * launcher reads them (SplitGUCList: double quotes stripped, no case
 * folding, compared with datname as they are); NIL when the value is empty,
 * or malformed (the check hook refuses that).  The names point into a copy
 * of the value.
 */
static List *
database_names(const char *value)
{
	char	   *rawstring = pstrdup(value ? value : "");
	List	   *names;

	if (!SplitGUCList(rawstring, ',', &names))
		return NIL;
	return names;
}

static bool
name_in_list(List *list, const char *name)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
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

	if (shared == NULL || !workers_enabled)
		return false;
	if (read_value == NULL || read_for != MyDatabaseId ||
		strcmp(read_value, databases_setting ? databases_setting : "") != 0)
	{
		char	   *dbname = get_database_name(MyDatabaseId);

		named = dbname != NULL && name_in_list(database_names(databases_setting), dbname);
		if (read_value != NULL)
			pfree(read_value);
		read_value = MemoryContextStrdup(TopMemoryContext, databases_setting ? databases_setting : "");
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
	bool		preloaded = PG_ARGISNULL(1) ? shared != NULL : PG_GETARG_BOOL(1);
	char	   *databases = PG_ARGISNULL(2) ? pstrdup(databases_setting ? databases_setting : "") :
		text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		enabled = PG_ARGISNULL(3) ? workers_enabled : PG_GETARG_BOOL(3);
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

/*
 * The databases of post_purchase.databases that exist and take connections.
 * Each missing one is logged once, until it appears.
 */
static Target *
launcher_targets(int *ntargets)
{
	static List *reported_missing = NIL;	/* in TopMemoryContext */
	static bool reported_empty = false;
	List	   *names = database_names(databases_setting);
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

	if (slot->worker_num > workers_per_database)
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

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nslots; i++)
	{
		WorkerSlot *slot = &shared->slots[i];

		if (slot->in_use && slot->dboid == target->oid && slot->worker_num == worker_num)
		{
			LWLockRelease(shared->lock);
			return i;
		}
		if (!slot->in_use && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0)
	{
		WorkerSlot *slot = &shared->slots[free_slot];

		memset(slot, 0, sizeof(WorkerSlot));
		slot->in_use = true;
		slot->generation = ++shared->next_generation;
		slot->dboid = target->oid;
		slot->dbname = target->name;
		slot->worker_num = worker_num;
		memset(&launcher_slots[free_slot], 0, sizeof(LauncherSlot));
	}
	LWLockRelease(shared->lock);
	return free_slot;
}

static void
launcher_free_slot(int i)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->slots[i].in_use = false;
	LWLockRelease(shared->lock);
	if (launcher_slots[i].handle != NULL)
		pfree(launcher_slots[i].handle);
	memset(&launcher_slots[i], 0, sizeof(LauncherSlot));
}

/* Register the dynamic worker of slot i; false if no bgworker slot is free. */
static bool
launcher_start_worker(int i)
{
	WorkerSlot *slot = &shared->slots[i];
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	bool		ok;

	memset(&bgw, 0, sizeof(bgw));
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	slot->stop_requested = false;
	slot->restart_pending = false;
	snprintf(bgw.bgw_name, BGW_MAXLEN, "post_purchase worker %d for database %s",
			 slot->worker_num, NameStr(slot->dbname));
	memcpy(bgw.bgw_extra, &slot->generation, sizeof(slot->generation));
	LWLockRelease(shared->lock);

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
	long		timeout = Min(Max(naptime_ms * 10L, 1000L), 60 * 1000L);
	bool		short_of_slots = false;
	Target	   *targets;
	int			ntargets;
	int			t;
	int			i;

	targets = launcher_targets(&ntargets);

	/* stop the workers nobody wants any more, and free their slots */
	for (i = 0; i < shared->nslots; i++)
	{
		WorkerSlot *slot = &shared->slots[i];
		bool		wanted;
		bool		in_use;

		LWLockAcquire(shared->lock, LW_SHARED);
		in_use = slot->in_use;
		wanted = in_use && slot_wanted(slot, targets, ntargets);
		LWLockRelease(shared->lock);
		if (!in_use || wanted)
			continue;

		if (!launcher_worker_running(i))
			launcher_free_slot(i);
		else if (launcher_slots[i].stop_requested_at == 0)
		{
			LWLockAcquire(shared->lock, LW_EXCLUSIVE);
			slot->stop_requested = true;
			if (slot->latch)
				SetLatch(slot->latch);
			LWLockRelease(shared->lock);
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

		LWLockAcquire(shared->lock, LW_SHARED);
		paused = database_paused(targets[t].oid, now);
		LWLockRelease(shared->lock);
		if (paused)
			continue;

		for (n = 1; n <= workers_per_database; n++)
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

	if (shared == NULL)
		elog(FATAL, "post_purchase launcher started without its shared memory");

	launcher_slots = MemoryContextAllocZero(TopMemoryContext,
											sizeof(LauncherSlot) * shared->nslots);
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
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->launcher_pid = MyProcPid;
	shared->launcher_latch = MyLatch;
	for (i = 0; i < shared->nslots; i++)
		if (shared->slots[i].in_use)
			shared->slots[i].generation = ++shared->next_generation;
	LWLockRelease(shared->lock);
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
			timeout = naptime_ms;
		else
			timeout = launcher_reconcile();
		MemoryContextSwitchTo(TopMemoryContext);

		/* a worker that starts or exits sets the latch (bgw_notify_pid) */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
