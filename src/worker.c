/*
 * worker.c
 *	  The background workers that fire journey steps: a launcher, registered
 *	  when the library is in shared_preload_libraries, and per-database
 *	  workers that it starts.  This file holds their settings, the
 *	  registration and the shared memory; worker_internal.h says where the
 *	  rest lives.
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
 * refresh_segments(), refresh_models(), refresh_product_affinity() and
 * outbox_purge(): those work on the
 * whole database, and running them in every worker would only repeat the
 * work.  Every worker fires due steps; fire_due_steps() claims them with
 * FOR UPDATE SKIP LOCKED, so more workers fire more steps at once.
 *
 * Shared memory holds one slot per worker: who it is, its latch, and what
 * worker_status() shows.  It is sized by max_worker_processes, which bounds
 * the number of workers anyway, so workers_per_database can change on reload.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgtime.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "decisions.h"
#include "worker.h"
#include "worker_internal.h"

#define LOCK_TRANCHE "post_purchase workers"

WorkerShared *worker_shared = NULL;

WorkerSettings worker_settings = {
	.databases_setting = NULL,
	.workers_per_database = 1,
	.naptime_ms = 1000,
	.wake_interval_ms = 10,
	.batch_size = 500,
	.decision_batch_size = 100,
	.workers_enabled = true,
	.segments_refresh_interval = 3600,
	.models_refresh_interval = 86400,
	.outbox_purge_interval = 600,
	.affinity_refresh_interval = 86400,
};

/* read by the day-bucketing aggregates with GetConfigOption (dayset.h) */
static char *shop_time_zone = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

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

/* An empty zone (the session's) or one the server knows. */
static bool
check_shop_time_zone(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || pg_tzset(*newval) != NULL)
		return true;
	GUC_check_errdetail("Time zone \"%s\" is not known.", *newval);
	return false;
}

static void define_settings(void);
static void worker_shmem_request(void);
static void worker_shmem_startup(void);

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
	install_worker_utility_hook();

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
							   &worker_settings.databases_setting,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, NULL, NULL);
	DefineCustomIntVariable("post_purchase.workers_per_database",
							"Number of post_purchase background workers in each database.",
							NULL,
							&worker_settings.workers_per_database,
							1, 1, 8,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.naptime",
							"Longest sleep of a post_purchase worker between two looks for due steps.",
							"The launcher looks for new or dropped databases every ten naptimes.",
							&worker_settings.naptime_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.wake_interval",
							"Shortest time between two looks of a post_purchase worker for due steps.",
							"Orders wake a worker at commit; in a busy shop it fires what arrived "
							"within this time in one batch instead of one transaction per order.",
							&worker_settings.wake_interval_ms,
							10, 0, 10 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.batch_size",
							"Number of due steps a post_purchase worker fires in one transaction.",
							NULL,
							&worker_settings.batch_size,
							500, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.decision_batch_size",
							"Number of changed customers a post_purchase worker decides in one transaction.",
							"Their state rows stay locked until it commits: a new order of one of them waits.",
							&worker_settings.decision_batch_size,
							100, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("post_purchase.enabled",
							 "Whether post_purchase background workers fire steps; off leaves them idle.",
							 NULL,
							 &worker_settings.workers_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.segments_refresh_interval",
							"Time between two refresh_segments() calls of the background worker.",
							"0 never calls it.",
							&worker_settings.segments_refresh_interval,
							3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("post_purchase.models_refresh_interval",
							"Time between two refresh_models() calls of the background worker.",
							"0 never calls it.",
							&worker_settings.models_refresh_interval,
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
	DefineCustomIntVariable("post_purchase.affinity_refresh_interval",
							"Time between two refresh_product_affinity() calls of the background worker.",
							"0 never calls it.",
							&worker_settings.affinity_refresh_interval,
							86400, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("post_purchase.shop_time_zone",
							   "Time zone in which rfm_summary and purchase_cycle count calendar days when not given one.",
							   "Empty: the session's TimeZone.  Set it alike on every node of a distributed shop.",
							   &shop_time_zone,
							   "",
							   PGC_USERSET,
							   0,
							   check_shop_time_zone, NULL, NULL);
	DefineCustomIntVariable("post_purchase.outbox_purge_interval",
							"Time between two outbox_purge() calls of the background worker.",
							"0 never calls it.",
							&worker_settings.outbox_purge_interval,
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
	worker_shared = ShmemInitStruct("post_purchase workers", worker_shmem_size(), &found);
	if (!found)
	{
		memset(worker_shared, 0, worker_shmem_size());
		worker_shared->lock = &(GetNamedLWLockTranche(LOCK_TRANCHE))->lock;
		worker_shared->nslots = max_worker_processes;
		worker_shared->next_generation = (uint64) ++initializations << 32;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The database names of a post_purchase.databases value, read as the
 * launcher reads them (SplitGUCList: double quotes stripped, no case
 * folding, compared with datname as they are); NIL when the value is empty,
 * or malformed (the check hook refuses that).  The names point into a copy
 * of the value.
 */
List *
database_names(const char *value)
{
	char	   *rawstring = pstrdup(value ? value : "");
	List	   *names;

	if (!SplitGUCList(rawstring, ',', &names))
		return NIL;
	return names;
}

bool
name_in_list(List *list, const char *name)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
}
