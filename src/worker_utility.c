/*
 * worker_utility.c
 *	  Commands that need a database without other connections: the
 *	  ProcessUtility hook that stops a database's workers before them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lwlock.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "worker_internal.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void worker_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree, ProcessUtilityContext context,
								  ParamListInfo params, QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);

/* From _PG_init, when the library is preloaded. */
void
install_worker_utility_hook(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = worker_ProcessUtility;
}

static bool
database_has_workers(Oid dboid)
{
	bool		found = false;
	int			i;

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	for (i = 0; i < worker_shared->nslots && !found; i++)
		found = worker_shared->slots[i].in_use && worker_shared->slots[i].dboid == dboid;
	LWLockRelease(worker_shared->lock);
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
			wake_launcher_at_commit_of_xact();
			break;
		default:
			break;
	}

	if (dbname != NULL && worker_shared != NULL)
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
		wake_launcher_at_commit_of_xact();
	}
}
