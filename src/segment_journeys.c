/*
 * segment_journeys.c
 *	  Whether a change of segment memberships can enroll anyone: the
 *	  statement triggers on segment_memberships run
 *	  enroll_segment_changes() only when an enabled journey enrolls on
 *	  segment entries or exits.
 *
 * An order that moves its customer between segments writes its exits and
 * entries in a few statements, and every one of them fired the PL/pgSQL
 * trigger, which found no journey to enroll in most shops.  This check is
 * one kept plan.  It reads the journeys every time, with the statement's
 * snapshot rules, rather than keeping the answer: a kept answer could miss
 * a journey enabled just before, and a missed enrollment is a lost message.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

#include "trigger_support.h"

PG_FUNCTION_INFO_V1(journeys_follow_segments);

static SPIPlanPtr follow_plan = NULL;

/* journeys_follow_segments(): whether an enabled journey triggers on segment entries or exits. */
Datum
journeys_follow_segments(PG_FUNCTION_ARGS)
{
	bool		follow;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(kept_plan(&follow_plan,
								   "SELECT FROM post_purchase.journeys j WHERE j.enabled "
								   "AND j.trigger OPERATOR(pg_catalog.=) ANY "
								   "('{segment_entered,segment_exited}'::pg_catalog.text[]) LIMIT 1",
								   0, NULL),
						 NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read post_purchase.journeys");
	follow = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(follow);
}
