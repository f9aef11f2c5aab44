/*
 * progress.h
 *	  Progress of long calls: a NOTICE at most once per
 *	  post_purchase.progress_notice_interval, and a shared memory slot per
 *	  backend that the post_purchase.progress view shows (progress.c).
 *
 * A long call brackets its work with progress_start() and progress_finish()
 * and says what it is doing with progress_phase() and, when it can count,
 * progress_count() and progress_advance().  A phase or an advance outside a
 * started command does nothing, so helpers shared by reporting and silent
 * callers may report unconditionally.  An error needs no cleanup: the
 * (sub)transaction's abort ends what was started in it.
 */
#ifndef POST_PURCHASE_PROGRESS_H
#define POST_PURCHASE_PROGRESS_H

/* what progress_count() takes as the total when there is no estimate */
#define PROGRESS_TOTAL_UNKNOWN (-1)

/*
 * Defines post_purchase.progress_notice_interval and, when loaded through
 * shared_preload_libraries, requests the slots.  Call it from _PG_init
 * before MarkGUCPrefixReserved.
 */
extern void post_purchase_progress_init(void);

extern void progress_start(const char *command);
extern void progress_phase(const char *phase);
extern void progress_count(int64 total, const char *unit);
extern void progress_advance(int64 delta);
extern void progress_finish(void);

#endif							/* POST_PURCHASE_PROGRESS_H */
