/*
 * scores.c
 *	  The customer's scores stored with the state: customer_metrics' columns
 *	  that depend on the models, the RFM cut points, the settings and today
 *	  (predictions, RFM scores and segment, lifecycle stage), and the
 *	  average order value and monetary value with them, stored in
 *	  customer_state so that customer_metrics over every customer reads
 *	  that one table instead of computing them for each row.
 *
 * Stored scores count while they were computed for today (scored_on)
 * under the current version of the metrics context (scored_context; every
 * change of the settings, models or cut points adds one to it, in the
 * changing transaction: customer_metrics.sql).  Every write of the state by
 * the order trigger sets scored_on to NULL in the same write (MARK_SET,
 * tracking.c), so scores never outlive the state they were computed from.
 * Where they do not count, customer_metrics computes the columns itself
 * with the same functions; the stored ones are metrics_of() of the row.
 *
 * Who stores them: a worker deciding a changed customer, in the write that
 * clears the change mark (decisions.c), and after the context changes,
 * store_scores() in batches of a transaction each (the first worker calls
 * it, worker_loop.c; a database without workers calls store_all_scores()).
 * Writing every customer in one transaction, as refresh_models() stored
 * its predictions before, held every state row, and with them every
 * order, until it ended.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/itemptr.h"
#include "utils/array.h"

#include "scores.h"
#include "trigger_support.h"

PG_FUNCTION_INFO_V1(store_scores);

/*
 * A row whose stored scores do not count, in a statement over customer_state
 * s joined with x, today and the context's version.
 */
#define CLAIM_STALE(range) \
	"SELECT s.ctid FROM post_purchase.customer_state s, " \
	"(SELECT post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today, c.version " \
	"FROM post_purchase.metrics_context c OFFSET 0) x " \
	"WHERE s.ctid " range " $2 AND NOT coalesce(s.scored_on OPERATOR(pg_catalog.=) x.today " \
	"AND s.scored_context OPERATOR(pg_catalog.=) x.version, false) " \
	"LIMIT $1 FOR UPDATE OF s SKIP LOCKED"

static SPIPlanPtr claim_from_plan;
static SPIPlanPtr claim_before_plan;
static SPIPlanPtr store_plan;

/*
 * Where this session's next store_scores() goes on: a pass over the table
 * is spread over the calls, and each call scans on from where the last
 * one stopped instead of from the start past the rows already stored.  A
 * hint only: a table rewritten since, or rows moved back by an update, are
 * found when the scan wraps around.
 */
static ItemPointerData sweep_from = {{0, 0}, 0};

/*
 * Claim up to limit rows with scores that do not count, from or before
 * (as range says) position, into ids[*n...]; returns the position after
 * the last one claimed, or position if none was.  The scan goes in
 * physical order, so the last row is the furthest.
 */
static ItemPointerData
claim_stale(SPIPlanPtr plan, ItemPointerData position, int limit, Datum *ids, int *n)
{
	Datum		args[2] = {Int32GetDatum(limit), PointerGetDatum(&position)};
	ItemPointerData next = position;

	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim the customers to score");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		ItemPointer id = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
																	  SPI_tuptable->tupdesc, 1, &isnull));

		ids[(*n)++] = SPI_datumTransfer(PointerGetDatum(id), false, sizeof(ItemPointerData));
		if (ItemPointerCompare(id, &next) >= 0)
			ItemPointerSet(&next, ItemPointerGetBlockNumberNoCheck(id),
						   ItemPointerGetOffsetNumberNoCheck(id) + 1);
	}
	return next;
}

/*
 * store_scores(batch): store the scores of up to batch customers whose
 * stored scores do not count, skipping those another transaction holds;
 * returns how many.  Fewer than batch: none is left, but for those held.
 */
Datum
store_scores(PG_FUNCTION_ARGS)
{
	int32		batch = PG_GETARG_INT32(0);
	Oid			claim_types[2] = {INT4OID, TIDOID};
	Oid			store_types[1] = {TIDARRAYOID};
	Datum	   *ids;
	int			n = 0;
	ItemPointerData start = {{0, 0}, 0};
	ItemPointerData from;

	if (batch <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size must be positive, got %d", batch)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	ids = palloc(batch * sizeof(Datum));
	/* on from the last position to the end, then from the start up to it */
	from = sweep_from;
	sweep_from = claim_stale(kept_plan(&claim_from_plan, CLAIM_STALE("OPERATOR(pg_catalog.>=)"), 2, claim_types),
							 from, batch, ids, &n);
	if (n < batch && ItemPointerCompare(&from, &start) > 0)
	{
		int			before = n;
		ItemPointerData wrapped;

		wrapped = claim_stale(kept_plan(&claim_before_plan, CLAIM_STALE("OPERATOR(pg_catalog.<)"), 2, claim_types),
							  from, batch - n, ids, &n);
		sweep_from = n > before ? wrapped : start;
	}

	if (n > 0)
	{
		Datum		row_ids = PointerGetDatum(construct_array(ids, n, TIDOID, sizeof(ItemPointerData),
															  false, TYPALIGN_SHORT));

		/* the rows stayed locked since the claim: by their ctids, a TID scan */
		if (SPI_execute_plan(kept_plan(&store_plan,
									   "UPDATE post_purchase.customer_state s SET " STORE_SCORES_SET " "
									   "FROM " SCORING_CONTEXT " "
									   "WHERE s.ctid OPERATOR(pg_catalog.=) ANY ($1)",
									   1, store_types),
							 &row_ids, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != (uint64) n)
			elog(ERROR, "could not store the customers' scores");
	}
	SPI_finish();
	PG_RETURN_INT64(n);
}
