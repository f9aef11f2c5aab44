/*
 * decisions.c
 *	  What a change of a customer decides: the new orders' journeys (the
 *	  order journeys, conversions, exits on purchase; order_journeys.c) and
 *	  the customer's segment entries and exits (segments.c), which enroll the
 *	  segment journeys in turn.
 *
 * The order trigger (tracking.c) keeps the customer's state with one write,
 * which also marks the customer as changed (customer_state.changed_at, and
 * order_seq past decided_seq for each inserted order).  The mark commits
 * with the order, so no committed order loses its decision.  The workers
 * take marked customers in batches, oldest mark first, with FOR UPDATE SKIP
 * LOCKED (process_changes()), decide each, and clear the mark in the same
 * transaction: the row stays locked until then, so the state cannot change
 * between the decision and the clearing, and two workers never decide one
 * customer at once.  An order of a customer being decided waits for that
 * transaction, then marks the customer again.
 *
 * post_purchase.decide_in = order keeps the decisions in the order's own
 * transaction, as the trigger made them before; auto (the default) does so
 * only where no worker serves the database.  Both paths run
 * decide_customer(), so the rules and journeys are the same code.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "decisions.h"
#include "order_journeys.h"
#include "segments.h"
#include "trigger_support.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(process_changes);

int			decide_in = DECIDE_IN_AUTO;

static SPIPlanPtr claim_plan;
static SPIPlanPtr rules_lock_plan;
static SPIPlanPtr clear_marks_plan;

/* Whether the order trigger decides for its customer itself. */
bool
decide_in_order_transaction(void)
{
	switch (decide_in)
	{
		case DECIDE_IN_ORDER:
			return true;
		case DECIDE_IN_WORKER:
			return false;
		default:
			return !workers_serve_database();
	}
}

/* The order row of a decision in the trigger. */
static Datum
trigger_order_row(void *arg)
{
	const TriggerOrder *order = arg;

	return heap_copy_tuple_as_datum(order->tuple, order->desc);
}

/* The newest order of a decision in a worker, read before its journeys are decided. */
typedef struct NewestOrder
{
	Datum		row;			/* the order's row, a composite */
	TimestampTz ordered_at;
	Datum		amount;			/* numeric */
} NewestOrder;

static Datum
newest_order_row(void *arg)
{
	return ((const NewestOrder *) arg)->row;
}

/*
 * The plan that reads a customer's newest order from the tracked orders
 * table, through its customer index: $1 is the customer as text.  Kept for
 * the table it was made for (one is tracked at a time).
 */
static SPIPlanPtr
newest_order_plan(void)
{
	static SPIPlanPtr plan = NULL;
	static char *plan_sql = NULL;
	Oid			types[1] = {TEXTOID};
	char	   *sql;
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.format('SELECT o, o.%2$I, "
					"coalesce(o.%3$I::pg_catalog.numeric, 0) FROM %5$s %4$s o "
					"WHERE o.%1$I OPERATOR(pg_catalog.=) $1::%6$s AND o.%2$I IS NOT NULL "
					"ORDER BY o.%2$I DESC LIMIT 1', t.customer_column, t.ordered_at_column, "
					"t.amount_column, t.orders, "
					"CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY' END, "
					"pg_catalog.format_type(a.atttypid, NULL)) "
					"FROM post_purchase.tracked_orders t "
					"JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.orders "
					"JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.orders "
					"AND a.attname OPERATOR(pg_catalog.=) t.customer_column",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the tracked orders table");
	if (SPI_processed == 0)
		return NULL;
	sql = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (plan != NULL && strcmp(sql, plan_sql) == 0)
		return plan;
	if (plan != NULL)
	{
		SPI_freeplan(plan);
		pfree(plan_sql);
		plan = NULL;
	}
	plan = SPI_prepare(sql, 1, types);
	if (plan == NULL)
		elog(ERROR, "could not plan the newest order's lookup: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	plan_sql = MemoryContextStrdup(TopMemoryContext, sql);
	return plan;
}

/* The customer's newest tracked order into *order, by plan; false if there is none. */
static bool
read_newest_order(SPIPlanPtr plan, Datum customer, NewestOrder *order)
{
	bool		isnull;

	if (plan == NULL)
		return false;
	if (SPI_execute_plan(plan, &customer, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customer's newest order");
	if (SPI_processed == 0)
		return false;
	order->row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	order->ordered_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
														   &isnull));
	order->amount = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	return true;
}

/* A marked customer as the claim found it: its orders, and how many are undecided. */
typedef struct MarkedCustomer
{
	Datum		customer;
	int64		orders;
	int64		new_orders;
} MarkedCustomer;

/*
 * A worker's decision for a marked customer, whose state row it holds:
 * the orders inserted since the last decision enter the order journeys
 * (their newest order read by newest_plan), and the segments follow the
 * state.  The caller clears the marks of the whole batch.
 */
static void
decide_marked_customer(const MarkedCustomer *marked, SPIPlanPtr newest_plan)
{
	NewestOrder newest;
	/* deletes may leave fewer orders than were inserted since */
	int64		new_orders = Min(marked->new_orders, marked->orders);

	if (new_orders > 0 && newest_plan != NULL && read_newest_order(newest_plan, marked->customer, &newest))
		enroll_for_orders(marked->customer, marked->orders, new_orders, newest.ordered_at, newest.amount,
						  newest_order_row, &newest);
	update_customer_segments(marked->customer);
}

/*
 * Decide in the order's trigger for the customer the order changed, inside
 * its SPI connection: what a worker decides for a marked customer
 * (decide_marked_customer()), with the order at hand.
 */
void
decide_customer(Datum customer, const TriggerOrder *order)
{
	if (order->new_orders > 0)
		enroll_for_orders(customer, order->orders, order->new_orders, order->ordered_at, order->amount,
						  trigger_order_row, (void *) order);
	update_customer_segments(customer);
}

/*
 * process_changes(batch): decide for up to batch marked customers, oldest
 * mark first, skipping those another transaction holds (an order still
 * open, or another worker's batch); returns how many were decided.  The
 * workers call it in a loop; a session may too.
 */
Datum
process_changes(PG_FUNCTION_ARGS)
{
	int32		batch = PG_GETARG_INT32(0);
	Oid			types[1] = {INT4OID};
	Datum		arg = Int32GetDatum(batch);
	MarkedCustomer *marked;
	Datum	   *ids;
	uint64		n;

	if (batch <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size must be positive, got %d", batch)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * The batch decides with the segment rules as committed: a rule being
	 * changed (set_segment_rule() re-evaluates its segment at once) is
	 * waited for, and a change waits for the batch.  Without this, a batch
	 * planned with the old rule could undo the new one's entries it reads
	 * once they commit (isolation spec decisions_rule_change).  The wait
	 * took no new table lock, so the rules' invalidation is taken in here.
	 */
	if (SPI_execute_plan(kept_plan(&rules_lock_plan, "SELECT FROM post_purchase.segments FOR SHARE", 0, NULL),
						 NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the segment rules");
	AcceptInvalidationMessages();

	if (SPI_execute_plan(kept_plan(&claim_plan,
								   "SELECT s.customer_id, s.orders, s.order_seq OPERATOR(pg_catalog.-) s.decided_seq "
								   "FROM post_purchase.customer_state s "
								   "WHERE s.changed_at IS NOT NULL ORDER BY s.changed_at "
								   "LIMIT $1 FOR UPDATE SKIP LOCKED",
								   1, types),
						 &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim the changed customers");
	n = SPI_processed;
	/* the claim's result is freed by the next statement: copy it out */
	marked = palloc(Max(n, 1) * sizeof(MarkedCustomer));
	ids = palloc(Max(n, 1) * sizeof(Datum));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;

		ids[i] = marked[i].customer = SPI_datumTransfer(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull),
														false, -1);
		marked[i].orders = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
		marked[i].new_orders = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
	}
	if (n > 0)
	{
		SPIPlanPtr	newest_plan = newest_order_plan();
		Oid			clear_types[1] = {TEXTARRAYOID};
		Datum		batch_ids = PointerGetDatum(construct_array(ids, (int) n, TEXTOID, -1, false, TYPALIGN_INT));

		for (uint64 i = 0; i < n; i++)
			decide_marked_customer(&marked[i], newest_plan);
		/* the rows stayed locked: nothing changed them since the claim */
		if (SPI_execute_plan(kept_plan(&clear_marks_plan,
									   "UPDATE post_purchase.customer_state s "
									   "SET changed_at = NULL, decided_seq = s.order_seq "
									   "WHERE s.customer_id OPERATOR(pg_catalog.=) ANY ($1)",
									   1, clear_types),
							 &batch_ids, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not clear the change marks");
	}
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
