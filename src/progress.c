/*
 * progress.c
 *	  Progress of the calls that take long on a large shop (track_orders()'s
 *	  backfill, refresh_models(), refresh_segments(), ...): a NOTICE at most
 *	  once per post_purchase.progress_notice_interval, and a slot in shared
 *	  memory per backend that the post_purchase.progress view shows to other
 *	  sessions.
 *
 * Why shared memory and not a table: the work runs inside one transaction,
 * and nothing it writes is visible to another session before it commits.
 * Each backend owns the slot of its BackendId (1..MaxBackends, so every
 * client backend and background worker has one, and no two share one) and
 * is its only writer: a write is a few stores bracketed by a change count,
 * as pgstat's st_changecount does for pg_stat_activity, so reporting takes
 * no lock; a reader copies a slot until it sees an even count that did not
 * change while it copied.  The slots need shared_preload_libraries; without
 * it the NOTICEs still work and the view has no rows, as worker_status.
 *
 * A command ends with progress_finish(), or with the (sub)transaction in
 * which it was started: an aborted refresh, caught or not, never stays in
 * the view.  A command started inside another (refresh_rfm_cuts() inside
 * refresh_segments(), a caller's own command around a refresh) does not
 * replace the outer one: the view keeps the outer command's name and shows
 * the inner one's phases and counts, which are the work being done.
 *
 * The NOTICE's message is what can be compared (command, phase, done, total
 * and percent); the rate and elapsed time are in its DETAIL, so a test can
 * hide them with VERBOSITY terse.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "progress.h"

PG_FUNCTION_INFO_V1(post_purchase_progress);
PG_FUNCTION_INFO_V1(post_purchase_progress_start);
PG_FUNCTION_INFO_V1(post_purchase_progress_phase);
PG_FUNCTION_INFO_V1(post_purchase_progress_count);
PG_FUNCTION_INFO_V1(post_purchase_progress_advance);
PG_FUNCTION_INFO_V1(post_purchase_progress_finish);

#define PHASE_LEN 128
#define UNIT_LEN 32
/* commands nested deeper than this are a caller's bug, not work */
#define MAX_DEPTH 16
/*
 * An advance by one (a row of a big statement) reads the clock only every
 * this many calls: the clock costs as much as the rest of the advance.
 */
#define UNIT_ADVANCES_PER_CLOCK 64

typedef struct ProgressSlot
{
	uint32		changecount;	/* odd while its owner writes */
	int			pid;			/* 0: the slot is free */
	NameData	database;
	NameData	role;
	NameData	command;
	char		phase[PHASE_LEN];
	char		unit[UNIT_LEN]; /* what done counts; "" when nothing is counted */
	int64		done;
	int64		total;			/* PROGRESS_TOTAL_UNKNOWN when unknown */
	TimestampTz started_at;
	TimestampTz counting_since; /* when the count began: the rate's start */
	TimestampTz updated_at;
} ProgressSlot;

typedef struct ProgressShared
{
	int			nslots;
	ProgressSlot slots[FLEXIBLE_ARRAY_MEMBER];
} ProgressShared;

static ProgressShared *shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* post_purchase.progress_notice_interval, in ms; -1: no NOTICEs */
static int	notice_interval = 1000;

/*
 * This backend's command: what its slot shows, kept here too so that
 * the NOTICEs work without the slots.
 */
static struct
{
	int			depth;			/* 0: no command */
	int			levels[MAX_DEPTH];	/* transaction nest level of each start */
	char		command[NAMEDATALEN];
	char		phase[PHASE_LEN];
	char		unit[UNIT_LEN];
	int64		done;
	int64		total;
	TimestampTz started_at;
	TimestampTz counting_since;
	TimestampTz last_notice_at;
	uint32		unit_advances;
	bool		noticed;		/* a progress NOTICE was sent: say when it ends */
	ProgressSlot *slot;			/* NULL without shared memory */
} local;

static bool callbacks_registered = false;

static void progress_shmem_request(void);
static void progress_shmem_startup(void);
static void progress_xact_callback(XactEvent event, void *arg);
static void progress_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									  SubTransactionId parentSubid, void *arg);
static void progress_shmem_exit(int code, Datum arg);
static void clear_command(void);

#define BEGIN_SLOT_WRITE(s) \
	do { (s)->changecount++; pg_write_barrier(); } while (0)
#define END_SLOT_WRITE(s) \
	do { pg_write_barrier(); (s)->changecount++; } while (0)

void
post_purchase_progress_init(void)
{
	DefineCustomIntVariable("post_purchase.progress_notice_interval",
							"Shortest time between two progress NOTICEs of a long call.",
							"-1 sends none (the post_purchase.progress view still shows the call); "
							"0 sends one at every step, for tests.",
							&notice_interval,
							1000, -1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* as the workers' shared memory (worker.c): pg_upgrade's server runs nothing of ours */
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = progress_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = progress_shmem_startup;
}

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

/* MaxBackends is known when shmem_request_hook runs (PostgreSQL 15) */
static Size
progress_shmem_size(void)
{
	return add_size(offsetof(ProgressShared, slots), mul_size(MaxBackends, sizeof(ProgressSlot)));
}

static void
progress_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(progress_shmem_size());
}

/* Also after a crash of the server: every slot starts free. */
static void
progress_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("post_purchase progress", progress_shmem_size(), &found);
	if (!found)
	{
		memset(shared, 0, progress_shmem_size());
		shared->nslots = MaxBackends;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* This backend's slot, or NULL (no shared memory, or a process without a BackendId). */
static ProgressSlot *
my_slot(void)
{
	if (shared == NULL || MyBackendId == InvalidBackendId || MyBackendId < 1 || MyBackendId > shared->nslots)
		return NULL;
	return &shared->slots[MyBackendId - 1];
}

/* Copy the whole command into the slot (start, phase, count). */
static void
publish(void)
{
	ProgressSlot *s = local.slot;

	if (s == NULL)
		return;
	BEGIN_SLOT_WRITE(s);
	strlcpy(NameStr(s->command), local.command, NAMEDATALEN);
	strlcpy(s->phase, local.phase, PHASE_LEN);
	strlcpy(s->unit, local.unit, UNIT_LEN);
	s->done = local.done;
	s->total = local.total;
	s->started_at = local.started_at;
	s->counting_since = local.counting_since;
	END_SLOT_WRITE(s);
}

/* ---------------------------------------------------------------------
 * NOTICEs
 * ---------------------------------------------------------------------
 */

static double
seconds_between(TimestampTz from, TimestampTz to)
{
	return (double) (to - from) / USECS_PER_SEC;
}

/* "command: phase: 3 of 17 segments (17.6%)": what the NOTICE's message says */
static void
describe(StringInfo buf)
{
	appendStringInfoString(buf, local.command);
	if (local.phase[0] != '\0')
		appendStringInfo(buf, ": %s", local.phase);
	if (local.unit[0] == '\0')
		return;
	if (local.total >= 0)
	{
		double		percent = local.total == 0 ? 100.0 : Min(100.0, 100.0 * local.done / local.total);

		appendStringInfo(buf, ": " INT64_FORMAT " of " INT64_FORMAT " %s (%.1f%%)",
						 local.done, local.total, local.unit, percent);
	}
	else
		appendStringInfo(buf, ": " INT64_FORMAT " %s", local.done, local.unit);
}

/* A progress NOTICE, if the interval has passed since the last one (or the start). */
static void
maybe_notice(TimestampTz now)
{
	StringInfoData message;
	double		elapsed;
	double		counted;

	if (notice_interval < 0 || !TimestampDifferenceExceeds(local.last_notice_at, now, notice_interval))
		return;
	local.last_notice_at = now;
	local.noticed = true;

	initStringInfo(&message);
	describe(&message);
	elapsed = seconds_between(local.started_at, now);
	counted = seconds_between(local.counting_since, now);
	if (local.unit[0] != '\0' && counted > 0)
		ereport(NOTICE,
				(errmsg("%s", message.data),
				 errdetail("%.1f %s per second, %.1f s elapsed.", local.done / counted, local.unit, elapsed)));
	else
		ereport(NOTICE,
				(errmsg("%s", message.data),
				 errdetail("%.1f s elapsed.", elapsed)));
	pfree(message.data);
}

/* ---------------------------------------------------------------------
 * The C API (progress.h)
 * ---------------------------------------------------------------------
 */

void
progress_start(const char *command)
{
	TimestampTz now;

	if (command == NULL || command[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a progress command needs a name")));
	if (strlen(command) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("progress command name \"%s\" is too long", command),
				 errdetail("A command name has at most %d bytes.", NAMEDATALEN - 1)));
	if (local.depth >= MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("progress commands nested too deeply"),
				 errdetail("At most %d commands can be started inside each other.", MAX_DEPTH),
				 errhint("Call post_purchase.progress_finish() for every post_purchase.progress_start().")));

	if (!callbacks_registered)
	{
		RegisterXactCallback(progress_xact_callback, NULL);
		RegisterSubXactCallback(progress_subxact_callback, NULL);
		before_shmem_exit(progress_shmem_exit, (Datum) 0);
		callbacks_registered = true;
	}

	local.levels[local.depth++] = GetCurrentTransactionNestLevel();
	if (local.depth > 1)
		return;					/* the outer command goes on: see the file's comment */

	now = GetCurrentTimestamp();
	strlcpy(local.command, command, NAMEDATALEN);
	local.phase[0] = '\0';
	local.unit[0] = '\0';
	local.done = 0;
	local.total = PROGRESS_TOTAL_UNKNOWN;
	local.started_at = local.counting_since = local.last_notice_at = now;
	local.unit_advances = 0;
	local.noticed = false;

	local.slot = my_slot();
	if (local.slot != NULL)
	{
		ProgressSlot *s = local.slot;
		char	   *database = get_database_name(MyDatabaseId);
		char	   *role = GetUserNameFromId(GetSessionUserId(), true);

		BEGIN_SLOT_WRITE(s);
		s->pid = MyProcPid;
		namestrcpy(&s->database, database ? database : "");
		namestrcpy(&s->role, role ? role : "");
		s->updated_at = now;
		END_SLOT_WRITE(s);
		publish();
	}
}

/* What the command does now; the count goes on (progress_count() starts a new one). */
void
progress_phase(const char *phase)
{
	TimestampTz now;
	int			len;

	if (local.depth == 0)
		return;
	/* a phase may name a segment, of any length: cut, at a character boundary */
	len = pg_mbcliplen(phase, strlen(phase), PHASE_LEN - 1);
	memcpy(local.phase, phase, len);
	local.phase[len] = '\0';
	now = GetCurrentTimestamp();
	publish();
	if (local.slot != NULL)
	{
		BEGIN_SLOT_WRITE(local.slot);
		local.slot->updated_at = now;
		END_SLOT_WRITE(local.slot);
	}
	maybe_notice(now);
}

/* Count from 0 what unit names, of total (PROGRESS_TOTAL_UNKNOWN: no estimate). */
void
progress_count(int64 total, const char *unit)
{
	if (total < 0 && total != PROGRESS_TOTAL_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("progress total must not be negative: " INT64_FORMAT, total),
				 errhint("Pass NULL when the total is not known.")));
	if (unit == NULL || unit[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a progress count needs a unit"),
				 errhint("Name what is counted, in the plural: 'orders', 'customers'.")));
	if (strlen(unit) >= UNIT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("progress unit \"%s\" is too long", unit),
				 errdetail("A unit has at most %d bytes.", UNIT_LEN - 1)));
	if (local.depth == 0)
		return;
	strlcpy(local.unit, unit, UNIT_LEN);
	local.total = total;
	local.done = 0;
	local.counting_since = GetCurrentTimestamp();
	publish();
	if (local.slot != NULL)
	{
		BEGIN_SLOT_WRITE(local.slot);
		local.slot->updated_at = local.counting_since;
		END_SLOT_WRITE(local.slot);
	}
}

/*
 * delta more done.  The hot path of a per-row count: a store into the slot,
 * and the clock (the NOTICE's check, the slot's updated_at) only every
 * UNIT_ADVANCES_PER_CLOCK rows.
 */
void
progress_advance(int64 delta)
{
	TimestampTz now;

	if (delta < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("progress cannot go back: advance by " INT64_FORMAT, delta)));
	if (local.depth == 0)
		return;
	local.done += delta;
	if (local.slot != NULL)
	{
		BEGIN_SLOT_WRITE(local.slot);
		local.slot->done = local.done;
		END_SLOT_WRITE(local.slot);
	}
	if (delta == 1 && notice_interval != 0 && ++local.unit_advances % UNIT_ADVANCES_PER_CLOCK != 0)
		return;
	now = GetCurrentTimestamp();
	if (local.slot != NULL)
	{
		BEGIN_SLOT_WRITE(local.slot);
		local.slot->updated_at = now;
		END_SLOT_WRITE(local.slot);
	}
	maybe_notice(now);
}

/*
 * The end of the command: a last NOTICE when progress NOTICEs were sent (a
 * long call) or every step is reported, then the slot is freed.
 */
void
progress_finish(void)
{
	if (local.depth == 0)
		return;
	if (--local.depth > 0)
		return;
	if (notice_interval == 0 || (notice_interval > 0 && local.noticed))
		ereport(NOTICE,
				(errmsg("%s: done", local.command),
				 errdetail("%.1f s elapsed.", seconds_between(local.started_at, GetCurrentTimestamp()))));
	clear_command();
}

/* ---------------------------------------------------------------------
 * The end of a command by its transaction
 * ---------------------------------------------------------------------
 */

static void
clear_command(void)
{
	local.depth = 0;
	if (local.slot != NULL)
	{
		BEGIN_SLOT_WRITE(local.slot);
		local.slot->pid = 0;
		END_SLOT_WRITE(local.slot);
		local.slot = NULL;
	}
}

/*
 * A transaction's end ends its commands: an abort, and a commit too (a
 * function that returned without progress_finish(), say), so nothing that
 * ran stays in the view after its transaction.
 */
static void
progress_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (local.depth > 0)
				clear_command();
			break;
		default:
			break;
	}
}

/*
 * A subtransaction's abort (an EXCEPTION block that caught the error, a
 * savepoint rolled back) ends the commands started inside it; the ones
 * started before it go on.  Its commit (the block ended, the savepoint
 * released) hands its commands to its parent, so that a later sibling's
 * abort does not take them.  Both callbacks run while the subtransaction is
 * still the current one.
 */
static void
progress_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level;
	int			i;

	if (local.depth == 0)
		return;
	level = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = 0; i < local.depth; i++)
			if (local.levels[i] >= level)
				local.levels[i] = level - 1;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (local.depth > 0 && local.levels[local.depth - 1] >= level)
			local.depth--;
		if (local.depth == 0)
			clear_command();
	}
}

/* A backend that exits (FATAL, terminated) frees its slot. */
static void
progress_shmem_exit(int code, Datum arg)
{
	if (local.depth > 0)
		clear_command();
}

/* ---------------------------------------------------------------------
 * SQL
 * ---------------------------------------------------------------------
 */

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* progress_start(command, total, unit): a count when unit is given */
Datum
post_purchase_progress_start(PG_FUNCTION_ARGS)
{
	char	   *command = text_arg(fcinfo, 0, "command");

	if (!PG_ARGISNULL(1) && PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a progress total needs a unit"),
				 errhint("Name what is counted, in the plural: 'orders', 'customers'.")));
	progress_start(command);
	if (!PG_ARGISNULL(2))
		progress_count(PG_ARGISNULL(1) ? PROGRESS_TOTAL_UNKNOWN : PG_GETARG_INT64(1),
					   text_arg(fcinfo, 2, "unit"));
	PG_RETURN_VOID();
}

Datum
post_purchase_progress_phase(PG_FUNCTION_ARGS)
{
	progress_phase(text_arg(fcinfo, 0, "phase"));
	PG_RETURN_VOID();
}

/* progress_count(total, unit): NULL total, no estimate */
Datum
post_purchase_progress_count(PG_FUNCTION_ARGS)
{
	int64		total = PG_ARGISNULL(0) ? PROGRESS_TOTAL_UNKNOWN : PG_GETARG_INT64(0);

	progress_count(total, text_arg(fcinfo, 1, "unit"));
	PG_RETURN_VOID();
}

/*
 * progress_advance(n, phase, unit) -> true, so that it can stand in a
 * WHERE or HAVING clause and count the rows of one big statement.  With a
 * phase, the first call in it switches to that phase and to a new count of
 * unit (total unknown): a statement whose plan reads, then writes, counts
 * both, each in its own clause.
 */
Datum
post_purchase_progress_advance(PG_FUNCTION_ARGS)
{
	int64		n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("n must not be NULL")));
	n = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1) && local.depth > 0)
	{
		text	   *phase = PG_GETARG_TEXT_PP(1);
		int			len = VARSIZE_ANY_EXHDR(phase);

		/* the per-row path: compare in place, copy only on a switch */
		if (len != strlen(local.phase) || memcmp(VARDATA_ANY(phase), local.phase, len) != 0)
		{
			char	   *unit = text_arg(fcinfo, 2, "unit");
			char	   *name = text_to_cstring(phase);

			/* a phase cut to PHASE_LEN would compare different every time */
			if (len >= PHASE_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
						 errmsg("progress phase \"%s\" is too long to be switched to by progress_advance()", name),
						 errdetail("It has at most %d bytes.", PHASE_LEN - 1)));
			/* the count first: the phase's NOTICE shows it from 0 */
			progress_count(PROGRESS_TOTAL_UNKNOWN, unit);
			progress_phase(name);
		}
	}
	progress_advance(n);
	PG_RETURN_BOOL(true);
}

Datum
post_purchase_progress_finish(PG_FUNCTION_ARGS)
{
	progress_finish();
	PG_RETURN_VOID();
}

#define PROGRESS_COLS 13

/* One row per running command, of every database; none without the preload. */
Datum
post_purchase_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (shared == NULL)
		return (Datum) 0;

	for (i = 0; i < shared->nslots; i++)
	{
		volatile ProgressSlot *s = &shared->slots[i];
		ProgressSlot copy;
		Datum		values[PROGRESS_COLS];
		bool		nulls[PROGRESS_COLS];
		double		seconds;

		/* a copy no write overlapped: an even count, the same before and after */
		for (;;)
		{
			uint32		before = s->changecount;

			pg_read_barrier();
			memcpy(&copy, (ProgressSlot *) s, sizeof(copy));
			pg_read_barrier();
			if (before == s->changecount && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (copy.pid == 0)
			continue;
		/* strings of a torn copy cannot be, but a terminator costs nothing */
		copy.phase[PHASE_LEN - 1] = '\0';
		copy.unit[UNIT_LEN - 1] = '\0';

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(copy.pid);
		values[1] = NameGetDatum(&copy.database);
		values[2] = NameGetDatum(&copy.role);
		values[3] = CStringGetTextDatum(NameStr(copy.command));
		values[4] = CStringGetTextDatum(copy.phase);
		nulls[4] = copy.phase[0] == '\0';
		values[5] = Int64GetDatum(copy.done);
		nulls[5] = copy.unit[0] == '\0';
		values[6] = Int64GetDatum(copy.total);
		nulls[6] = copy.unit[0] == '\0' || copy.total < 0;
		values[7] = CStringGetTextDatum(copy.unit);
		nulls[7] = copy.unit[0] == '\0';
		/* an estimated total (reltuples) may be passed: percent stops at 100 */
		values[8] = Float8GetDatum(copy.total == 0 ? 100.0 : Min(100.0, 100.0 * copy.done / copy.total));
		nulls[8] = nulls[6];
		seconds = seconds_between(copy.counting_since, copy.updated_at);
		values[9] = Float8GetDatum(seconds > 0 ? copy.done / seconds : 0);
		nulls[9] = nulls[5] || seconds <= 0;
		values[10] = TimestampTzGetDatum(copy.started_at);
		values[11] = TimestampTzGetDatum(copy.counting_since);
		nulls[11] = nulls[5];
		values[12] = TimestampTzGetDatum(copy.updated_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
