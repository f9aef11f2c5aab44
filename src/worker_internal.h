/*
 * worker_internal.h
 *	  What the files of the background workers share: the shared memory
 *	  with one slot per worker, the settings, and the calls between them.
 *
 * worker.c defines the settings, registers the launcher and sets up the
 * shared memory; worker_wake.c wakes and stops workers; worker_status.c
 * answers what runs where; worker_utility.c keeps DROP DATABASE and its
 * kin from failing on our connections; worker_loop.c is the per-database
 * worker; launcher.c starts and stops the workers.
 */
#ifndef POST_PURCHASE_WORKER_INTERNAL_H
#define POST_PURCHASE_WORKER_INTERNAL_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define LAST_ERROR_LEN 256
#define MAX_PAUSED_DATABASES 8

/* the postmaster restarts a launcher or worker that crashed this late */
#define RESTART_SECONDS 5
/* a worker asked to stop gets this long before it is sent SIGTERM */
#define STOP_GRACE_MS 1000
/* DROP DATABASE waits at most this long for the database's workers */
#define STOP_TIMEOUT_MS 5000

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
	TimestampTz affinity_refreshed_at;
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
extern WorkerShared *worker_shared;

/* The settings of worker.c: one struct, so one symbol of ours in the server's namespace. */
typedef struct WorkerSettings
{
	char	   *databases_setting;
	int			workers_per_database;
	int			naptime_ms;
	int			wake_interval_ms;
	int			batch_size;
	int			decision_batch_size;
	bool		workers_enabled;
	int			segments_refresh_interval;
	int			models_refresh_interval;
	int			outbox_purge_interval;
	int			affinity_refresh_interval;
} WorkerSettings;

extern WorkerSettings worker_settings;

/* worker.c */
extern List *database_names(const char *value);
extern bool name_in_list(List *list, const char *name);

/* worker_wake.c */
#define STATE_BIT(state) (1 << (state))
#define ANY_STATE (STATE_BIT(WORKER_BUSY) | STATE_BIT(WORKER_SLEEPING) | STATE_BIT(WORKER_GATHERING))

extern bool database_paused(Oid dboid, TimestampTz now);
extern void pause_database(Oid dboid, TimestampTz until);
extern void stop_workers(Oid dboid, int timeout_ms);
extern void set_latches(Oid dboid, int states, WorkerSlot *except);
extern void wake_launcher_at_commit_of_xact(void);

/* worker_utility.c */
extern void install_worker_utility_hook(void);

#endif							/* POST_PURCHASE_WORKER_INTERNAL_H */
