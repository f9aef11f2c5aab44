/*
 * worker.h
 *	  The background workers that fire journey steps (worker.c and the files
 *	  worker_internal.h lists).
 */
#ifndef POST_PURCHASE_WORKER_H
#define POST_PURCHASE_WORKER_H

/*
 * Defines the post_purchase.* worker settings and, when loaded through
 * shared_preload_libraries, registers the launcher and the hooks.  Call it
 * from _PG_init before MarkGUCPrefixReserved, which would otherwise drop the
 * values postgresql.conf gave these settings.
 */
extern void post_purchase_worker_init(void);

/* Wake this database's workers when the current transaction commits. */
extern void wake_workers_at_commit_of_xact(void);
extern bool workers_serve_database(void);

#endif							/* POST_PURCHASE_WORKER_H */
