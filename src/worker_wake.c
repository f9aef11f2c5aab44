/*
 * worker_wake.c
 *	  Waking the background workers when a transaction commits, and stopping
 *	  or pausing a database's workers.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "worker.h"
#include "worker_internal.h"

PG_FUNCTION_INFO_V1(post_purchase_wake_workers);

/* this backend's wake-ups, sent when its transaction commits */
static bool xact_callback_registered = false;
static bool wake_workers_at_commit = false;
static bool wake_launcher_at_commit = false;

/* ---------------------------------------------------------------------
 * Stopping and pausing
 * ---------------------------------------------------------------------
 */

bool
database_paused(Oid dboid, TimestampTz now)
{
	int			i;

	for (i = 0; i < MAX_PAUSED_DATABASES; i++)
		if (worker_shared->paused[i].dboid == dboid && worker_shared->paused[i].until > now)
			return true;
	return false;
}

/* Keep the launcher from starting dboid's workers until "until" (0: unpause). */
void
pause_database(Oid dboid, TimestampTz until)
{
	TimestampTz now = GetCurrentTimestamp();
	int			free_entry = -1;
	int			i;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < MAX_PAUSED_DATABASES; i++)
	{
		if (worker_shared->paused[i].dboid == dboid)
		{
			free_entry = i;
			break;
		}
		if (free_entry < 0 && worker_shared->paused[i].until <= now)
			free_entry = i;
	}
	/* all entries busy: the workers may come back, DROP DATABASE may fail */
	if (free_entry >= 0)
	{
		worker_shared->paused[free_entry].dboid = until > now ? dboid : InvalidOid;
		worker_shared->paused[free_entry].until = until;
	}
	LWLockRelease(worker_shared->lock);
}

/*
 * Ask the workers of dboid (of every database if InvalidOid) to exit, send
 * them SIGTERM after STOP_GRACE_MS, and wait for them at most timeout_ms.
 * Runs in a backend or in the launcher; interrupts are served while waiting.
 */
void
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

		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < worker_shared->nslots; i++)
		{
			WorkerSlot *slot = &worker_shared->slots[i];

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
		LWLockRelease(worker_shared->lock);
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

/* Whether the slot's worker runs in dboid and can be woken; under worker_shared->lock. */
static bool
wakeable_in(const WorkerSlot *slot, Oid dboid)
{
	return slot->in_use && slot->dboid == dboid && slot->latch != NULL;
}

/* Set the latches of dboid's workers in the states given, but one; under worker_shared->lock. */
void
set_latches(Oid dboid, int states, WorkerSlot *except)
{
	int			i;

	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

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

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (!wakeable_in(slot, dboid))
			continue;
		if (slot->state == WORKER_GATHERING)
		{
			LWLockRelease(worker_shared->lock);
			return;
		}
		if (slot->state == WORKER_SLEEPING && sleeping == NULL)
			sleeping = slot;
	}
	if (sleeping != NULL)
		SetLatch(sleeping->latch);
	else
		set_latches(dboid, STATE_BIT(WORKER_BUSY), NULL);
	LWLockRelease(worker_shared->lock);
}

static void
wake_launcher(void)
{
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	if (worker_shared->launcher_latch != NULL)
		SetLatch(worker_shared->launcher_latch);
	LWLockRelease(worker_shared->lock);
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
	if (worker_shared != NULL && !wake_workers_at_commit)
	{
		register_xact_callback();
		wake_workers_at_commit = true;
	}
}

/*
 * Wake the launcher when the transaction commits: the databases it serves
 * may have changed (worker_utility.c).
 */
void
wake_launcher_at_commit_of_xact(void)
{
	if (worker_shared != NULL)
	{
		register_xact_callback();
		wake_launcher_at_commit = true;
	}
}

/* wake_workers(): the same, from SQL. */
Datum
post_purchase_wake_workers(PG_FUNCTION_ARGS)
{
	wake_workers_at_commit_of_xact();
	PG_RETURN_VOID();
}
