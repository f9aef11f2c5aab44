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
 * LOCKED (process_changes()), decide the batch set-based (each step one
 * statement over the batch: order_journeys.c, then segments.c), and clear
 * the marks in the same transaction: the rows stay locked until then, so
 * the states cannot change between the decision and the clearing, and two
 * workers never decide one customer at once.  An order of a customer being decided waits for that
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
#include "scores.h"
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

/* The order of a decision in the trigger, as jsonb: the context of what it enters. */
static Datum
trigger_order_context(void *arg, int i)
{
	static SPIPlanPtr plan = NULL;
	const TriggerOrder *order = arg;
	Oid			types[1] = {RECORDOID};
	Datum		row = heap_copy_tuple_as_datum(order->tuple, order->desc);
	bool		isnull;

	if (SPI_execute_plan(kept_plan(&plan, "SELECT pg_catalog.to_jsonb($1)", 1, types),
						 &row, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not turn the order into jsonb");
	return SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 false, -1);
}

/*
 * The plan that reads the newest order of each customer of a text[] ($1)
 * from the tracked orders table, through its customer index, with its
 * position in the array: (i, ordered_at, amount, the row as jsonb).  Kept
 * for its text, that is for the table and columns it was made for (one
 * table is tracked at a time).
 */
static SPIPlanPtr
newest_orders_plan(void)
{
	static TextPlan kept;
	Oid			types[1] = {TEXTARRAYOID};
	char	   *sql;
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.format('SELECT c.i, o.%2$I, "
					"coalesce(o.%3$I::pg_catalog.numeric, 0), pg_catalog.to_jsonb(o) "
					"FROM pg_catalog.unnest($1) WITH ORDINALITY c(id, i) "
					"CROSS JOIN LATERAL (SELECT * FROM %5$s %4$s o "
					"WHERE o.%1$I OPERATOR(pg_catalog.=) c.id::%6$s AND o.%2$I IS NOT NULL "
					"ORDER BY o.%2$I DESC LIMIT 1) o', t.customer_column, t.ordered_at_column, "
					"t.amount_column, t.orders, "
					"CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY' END, "
					"pg_catalog.format_type((SELECT a.atttypid FROM pg_catalog.pg_attribute a "
					"WHERE a.attrelid OPERATOR(pg_catalog.=) t.orders "
					"AND a.attname OPERATOR(pg_catalog.=) t.customer_column), NULL)) "
					"FROM post_purchase.tracked_orders t "
					"JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.orders",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the tracked orders table");
	if (SPI_processed == 0)
		return NULL;
	sql = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return text_plan(&kept, sql, 1, types, "the newest orders' lookup");
}

/* The batch of a worker: the marked customers as the claim found them. */
typedef struct MarkedBatch
{
	int			n;
	Datum	   *customers;		/* text */
	Datum	   *states;			/* their customer_state rows */
	int64	   *orders;
	int64	   *new_orders;		/* inserted since the last decision */
	Datum	   *row_ids;		/* their state rows' ctids, locked by the claim */
} MarkedBatch;

/* The newest orders of the customers with new orders, as enroll_for_orders() takes them. */
typedef struct NewestOrders
{
	Datum	   *customers;
	int64	   *orders;
	int64	   *new_orders;
	TimestampTz *ordered_at;
	Datum	   *amounts;
	Datum	   *contexts;		/* jsonb */
} NewestOrders;

static Datum
newest_order_context(void *arg, int i)
{
	return ((const NewestOrders *) arg)->contexts[i];
}

/*
 * The order journeys of the batch's customers with new orders: their
 * newest orders read in one statement, then enroll_for_orders() for them
 * all.
 */
static void
decide_new_orders(const MarkedBatch *marked)
{
	SPIPlanPtr	plan;
	Datum	   *with_new = palloc(marked->n * sizeof(Datum));
	int		   *index = palloc(marked->n * sizeof(int));
	int			n = 0;
	Datum		ids;
	NewestOrders newest;
	OrderBatch	batch;

	for (int i = 0; i < marked->n; i++)
	{
		/* deletes may leave fewer orders than were inserted since */
		if (Min(marked->new_orders[i], marked->orders[i]) > 0)
		{
			index[n] = i;
			with_new[n++] = marked->customers[i];
		}
	}
	if (n == 0 || (plan = newest_orders_plan()) == NULL)
		return;
	ids = PointerGetDatum(construct_array(with_new, n, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(plan, &ids, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customers' newest orders");

	newest.customers = palloc(n * sizeof(Datum));
	newest.orders = palloc(n * sizeof(int64));
	newest.new_orders = palloc(n * sizeof(int64));
	newest.ordered_at = palloc(n * sizeof(TimestampTz));
	newest.amounts = palloc(n * sizeof(Datum));
	newest.contexts = palloc(n * sizeof(Datum));
	batch.n = 0;
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			i = index[DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull)) - 1];
		int			k = batch.n++;

		newest.customers[k] = marked->customers[i];
		newest.orders[k] = marked->orders[i];
		newest.new_orders[k] = Min(marked->new_orders[i], marked->orders[i]);
		newest.ordered_at[k] = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 2, &isnull));
		newest.amounts[k] = SPI_datumTransfer(SPI_getbinval(tuple, desc, 3, &isnull), false, -1);
		newest.contexts[k] = SPI_datumTransfer(SPI_getbinval(tuple, desc, 4, &isnull), false, -1);
	}
	batch.customers = newest.customers;
	batch.orders = newest.orders;
	batch.new_orders = newest.new_orders;
	batch.ordered_at = newest.ordered_at;
	batch.amounts = newest.amounts;
	batch.context = newest_order_context;
	batch.context_arg = &newest;
	enroll_for_orders(&batch);
}

/*
 * Decide in the order's trigger for the customer the order changed, inside
 * its SPI connection: what a worker decides for a batch of marked
 * customers, for a batch of one, with the order at hand.
 */
void
decide_customer(Datum customer, const TriggerOrder *order)
{
	if (order->new_orders > 0)
	{
		OrderBatch	batch = {
			.n = 1,
			.customers = &customer,
			.orders = &order->orders,
			.new_orders = &order->new_orders,
			.ordered_at = &order->ordered_at,
			.amounts = &order->amount,
			.context = trigger_order_context,
			.context_arg = (void *) order,
		};

		enroll_for_orders(&batch);
	}
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
	MarkedBatch marked;
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
								   "SELECT s.customer_id, s.orders, s.order_seq OPERATOR(pg_catalog.-) s.decided_seq, s, "
								   "s.ctid "
								   "FROM post_purchase.customer_state s "
								   "WHERE s.changed_at IS NOT NULL ORDER BY s.changed_at "
								   "LIMIT $1 FOR UPDATE SKIP LOCKED",
								   1, types),
						 &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim the changed customers");
	n = SPI_processed;
	/* the claim's result is freed by the next statement: copy it out */
	marked.n = (int) n;
	marked.customers = palloc(Max(n, 1) * sizeof(Datum));
	marked.states = palloc(Max(n, 1) * sizeof(Datum));
	marked.orders = palloc(Max(n, 1) * sizeof(int64));
	marked.new_orders = palloc(Max(n, 1) * sizeof(int64));
	marked.row_ids = palloc(Max(n, 1) * sizeof(Datum));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;

		marked.customers[i] = SPI_datumTransfer(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull),
												false, -1);
		marked.orders[i] = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
		marked.new_orders[i] = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
		marked.states[i] = SPI_datumTransfer(SPI_getbinval(row, SPI_tuptable->tupdesc, 4, &isnull),
											 false, -1);
		marked.row_ids[i] = SPI_datumTransfer(SPI_getbinval(row, SPI_tuptable->tupdesc, 5, &isnull),
											  false, sizeof(ItemPointerData));
	}
	if (n > 0)
	{
		Oid			clear_types[1] = {TIDARRAYOID};
		Datum		row_ids = PointerGetDatum(construct_array(marked.row_ids, (int) n, TIDOID,
															  sizeof(ItemPointerData), false, TYPALIGN_SHORT));

		decide_new_orders(&marked);
		update_segments_of(marked.n, marked.customers, marked.states);

		/*
		 * The rows stayed locked, so nothing moved them since the claim:
		 * cleared by their ctids, a TID scan whatever the plan cache holds.
		 * By customer_id = ANY, a generic plan made while the state was
		 * small (autovacuum had not analyzed it yet) stayed a sequential
		 * scan comparing every state row with every customer of the batch:
		 * at 70,000 customers most of a worker's time.  The same write
		 * stores the customers' scores (scores.c), which the order's write
		 * of the state made stop counting.
		 */
		if (SPI_execute_plan(kept_plan(&clear_marks_plan,
									   "UPDATE post_purchase.customer_state s "
									   "SET changed_at = NULL, decided_seq = s.order_seq, " STORE_SCORES_SET " "
									   "FROM " SCORING_CONTEXT " "
									   "WHERE s.ctid OPERATOR(pg_catalog.=) ANY ($1)",
									   1, clear_types),
							 &row_ids, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != n)
			elog(ERROR, "could not clear the change marks");
	}
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
