/*
 * order_journeys.c
 *	  What new orders do to their customers' journeys, for a batch of
 *	  decisions (decisions.c): each customer's newest order converts the
 *	  steps decided for the customer within the attribution window, ends the
 *	  enrollments waiting for a purchase, and enrolls the customer in the
 *	  order journeys (first_order, every_order, and nth_order for each order
 *	  number the new orders reach).
 *
 * This runs for every order, so it is kept plans run from C, not a PL/pgSQL
 * function, each over the whole batch (arrays as parameters: a worker
 * decides a hundred customers in the statements one took before), and one
 * statement that only reads first finds what there is to do: most orders
 * convert nothing, end nothing and enter few journeys.  Each statement's executor start-up (an update's opens every
 * index of its table), and the order row turned into jsonb for payloads
 * nobody reads, used to cost more than the work itself.  The statements are
 * not read-only SPI calls: they must see what this transaction's earlier
 * orders did (a multi-row insert) and, in READ COMMITTED, what committed
 * since the order's statement began.  The trigger runs with search_path
 * pg_catalog, pg_temp, as the extension's owner; the statements qualify
 * every name anyway.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "order_journeys.h"
#include "trigger_support.h"
#include "worker.h"

static SPIPlanPtr order_effects_plan;
static SPIPlanPtr convert_plan;
static SPIPlanPtr exit_plan;
static SPIPlanPtr reentry_plan;
static SPIPlanPtr enroll_plan;

/* What new orders do to one customer's journeys, as far as one read tells. */
typedef struct OrderEffects
{
	bool		may_convert;	/* steps were decided for the customer before the order */
	bool		exits;			/* enrollments that end on a purchase are active */
	bool		enrolled;		/* any enrollment of the customer is active */
	Datum	   *entering;		/* the order journeys to enter (text), by name */
	int			nentering;
} OrderEffects;

/* A one-dimensional array of n Datums of a built-in type. */
static Datum
array_of(const Datum *values, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array((Datum *) values, n, type, typlen, typbyval, typalign));
}

static Datum
int64_array(const int64 *values, int n)
{
	Datum	   *datums = palloc(Max(n, 1) * sizeof(Datum));

	for (int i = 0; i < n; i++)
		datums[i] = Int64GetDatum(values[i]);
	return array_of(datums, n, INT8OID);
}

static Datum
timestamptz_array(const TimestampTz *values, int n)
{
	Datum	   *datums = palloc(Max(n, 1) * sizeof(Datum));

	for (int i = 0; i < n; i++)
		datums[i] = TimestampTzGetDatum(values[i]);
	return array_of(datums, n, TIMESTAMPTZOID);
}

/*
 * One statement that only reads finds what the batch's orders do, for
 * every customer at once: the statements that write (an update's executor
 * start-up alone opens every index of its table) then run only when some
 * customer has something for them, once for the whole batch.  The
 * conversion's lower bound, the attribution window, is left to its update:
 * as an index condition here it would call setting() for every customer.
 * The tests are scalar subqueries, not EXISTS: the planner may hash an
 * EXISTS over the whole table (every active enrollment, once per batch,
 * a cost that grows with the shop) where an index lookup per customer is
 * what a batch needs.
 */
static void
read_order_effects(const OrderBatch *batch, OrderEffects *effects)
{
	Oid			types[4] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	int64	   *first_new = palloc(batch->n * sizeof(int64));
	Datum		values[4];

	for (int i = 0; i < batch->n; i++)
		first_new[i] = batch->orders[i] - batch->new_orders[i] + 1;
	values[0] = array_of(batch->customers, batch->n, TEXTOID);
	values[1] = int64_array(batch->orders, batch->n);
	values[2] = timestamptz_array(batch->ordered_at, batch->n);
	values[3] = int64_array(first_new, batch->n);

	if (SPI_execute_plan(kept_plan(&order_effects_plan,
								   "SELECT c.i, (SELECT true FROM post_purchase.step_outcomes o "
								   "WHERE o.customer_id OPERATOR(pg_catalog.=) c.id "
								   "AND o.decided_at OPERATOR(pg_catalog.<) c.ordered_at LIMIT 1) IS NOT NULL, "
								   "(SELECT true FROM post_purchase.enrollments e "
								   "JOIN post_purchase.journeys x ON x.name OPERATOR(pg_catalog.=) e.journey "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) c.id "
								   "AND e.status OPERATOR(pg_catalog.=) 'active' AND x.exit_on_purchase LIMIT 1) IS NOT NULL, "
								   "(SELECT true FROM post_purchase.enrollments e "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) c.id "
								   "AND e.status OPERATOR(pg_catalog.=) 'active' LIMIT 1) IS NOT NULL, "
								   "ARRAY(SELECT j.name FROM post_purchase.journeys j "
								   "WHERE j.enabled "
								   "AND (j.trigger OPERATOR(pg_catalog.=) 'every_order' "
								   "OR (j.trigger OPERATOR(pg_catalog.=) 'first_order' "
								   "AND 1 BETWEEN c.first_new AND c.orders) "
								   "OR (j.trigger OPERATOR(pg_catalog.=) 'nth_order' "
								   "AND j.nth_order BETWEEN c.first_new AND c.orders)) "
								   "AND EXISTS (SELECT FROM post_purchase.journey_steps s "
								   "WHERE s.journey OPERATOR(pg_catalog.=) j.name) "
								   "AND NOT EXISTS (SELECT FROM post_purchase.enrollments e "
								   "WHERE j.reentry OPERATOR(pg_catalog.<>) 'every_time' "
								   "AND e.journey OPERATOR(pg_catalog.=) j.name "
								   "AND e.customer_id OPERATOR(pg_catalog.=) c.id "
								   "AND (j.reentry OPERATOR(pg_catalog.=) 'once' OR e.enrolled_at "
								   "OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) j.reentry_interval))) "
								   "ORDER BY j.name) "
								   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4)) WITH ORDINALITY "
								   "c(id, orders, ordered_at, first_new, i)",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not read what the orders do to the customers' journeys");
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		i = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull)) - 1;
		OrderEffects *e = &effects[i];
		ArrayType  *entering = DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 5, &isnull));
		Datum	   *names;
		int			n;

		e->may_convert = DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull));
		e->exits = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));
		e->enrolled = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
		deconstruct_array(entering, TEXTOID, -1, false, TYPALIGN_INT, &names, NULL, &n);
		/* out of SPI's result, which the next statement frees */
		e->entering = palloc(Max(n, 1) * sizeof(Datum));
		for (int k = 0; k < n; k++)
			e->entering[k] = SPI_datumTransfer(names[k], false, -1);
		e->nentering = n;
	}
}

/*
 * The orders convert the steps decided for their customers within the
 * attribution window before the newest (holdout steps too: the uplift's
 * baseline), and end the enrollments that wait for a purchase: one
 * statement each, over the customers that have any.
 */
static void
convert_and_exit(const OrderBatch *batch, const OrderEffects *effects)
{
	Oid			convert_types[3] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, NUMERICARRAYOID};
	Oid			exit_types[1] = {TEXTARRAYOID};
	Datum	   *customers = palloc(batch->n * sizeof(Datum));
	TimestampTz *ordered_at = palloc(batch->n * sizeof(TimestampTz));
	Datum	   *amounts = palloc(batch->n * sizeof(Datum));
	Datum	   *leaving = palloc(batch->n * sizeof(Datum));
	int			nconvert = 0;
	int			nexit = 0;

	for (int i = 0; i < batch->n; i++)
	{
		if (effects[i].may_convert)
		{
			customers[nconvert] = batch->customers[i];
			ordered_at[nconvert] = batch->ordered_at[i];
			amounts[nconvert++] = batch->amounts[i];
		}
		if (effects[i].exits)
			leaving[nexit++] = batch->customers[i];
	}
	if (nconvert > 0)
	{
		Datum		values[3] = {array_of(customers, nconvert, TEXTOID),
								 timestamptz_array(ordered_at, nconvert),
								 array_of(amounts, nconvert, NUMERICOID)};

		if (SPI_execute_plan(kept_plan(&convert_plan,
									   "UPDATE post_purchase.step_outcomes o "
									   "SET converted_at = coalesce(o.converted_at, c.ordered_at), "
									   "attributed_revenue = o.attributed_revenue OPERATOR(pg_catalog.+) c.amount "
									   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) c(id, ordered_at, amount) "
									   "WHERE o.customer_id OPERATOR(pg_catalog.=) c.id "
									   "AND o.decided_at OPERATOR(pg_catalog.<) c.ordered_at "
									   "AND o.decided_at OPERATOR(pg_catalog.>=) (c.ordered_at OPERATOR(pg_catalog.-) "
									   "post_purchase.setting('attribution_window')::pg_catalog.interval)",
									   3, convert_types),
							 values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the orders' conversions");
	}
	if (nexit > 0)
	{
		Datum		values[1] = {array_of(leaving, nexit, TEXTOID)};

		if (SPI_execute_plan(kept_plan(&exit_plan,
									   "UPDATE post_purchase.enrollments e "
									   "SET status = 'exited', ended_at = pg_catalog.now(), end_reason = 'purchased', "
									   "next_position = NULL, next_fire_at = NULL "
									   "FROM post_purchase.journeys x "
									   "WHERE e.customer_id OPERATOR(pg_catalog.=) ANY ($1) "
									   "AND e.status OPERATOR(pg_catalog.=) 'active' "
									   "AND x.name OPERATOR(pg_catalog.=) e.journey AND x.exit_on_purchase",
									   1, exit_types),
							 values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not end the enrollments waiting for a purchase");
	}
}

/*
 * Enroll each customer in the journeys its effects enter, ending its active
 * enrollments in them first (the reentry policy allowed it), if it has any:
 * a first order has none.  The newest order (jsonb) becomes the
 * enrollments' context.  One statement each for the batch, pairs of
 * (customer, journey) in the batch's order; true when a first step is due
 * now.
 */
static bool
enroll_in(const OrderBatch *batch, const OrderEffects *effects)
{
	Oid			types[3] = {TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID};
	int			npairs = 0;
	int			nreentering = 0;
	Datum	   *customers;
	Datum	   *journeys;
	Datum	   *contexts;
	bool		due_now = false;

	for (int i = 0; i < batch->n; i++)
		npairs += effects[i].nentering;
	if (npairs == 0)
		return false;
	customers = palloc(npairs * sizeof(Datum));
	journeys = palloc(npairs * sizeof(Datum));
	contexts = palloc(npairs * sizeof(Datum));
	/* the customers with active enrollments first: the reentry ends theirs */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < batch->n; i++)
		{
			Datum		context;

			if (effects[i].nentering == 0 || effects[i].enrolled != (pass == 0))
				continue;
			context = batch->context(batch->context_arg, i);
			for (int k = 0; k < effects[i].nentering; k++)
			{
				customers[nreentering + k] = batch->customers[i];
				journeys[nreentering + k] = effects[i].entering[k];
				contexts[nreentering + k] = context;
			}
			nreentering += effects[i].nentering;
		}
		if (pass == 0 && nreentering > 0)
		{
			Datum		values[2] = {array_of(customers, nreentering, TEXTOID),
									 array_of(journeys, nreentering, TEXTOID)};

			if (SPI_execute_plan(kept_plan(&reentry_plan,
										   "UPDATE post_purchase.enrollments e "
										   "SET status = 'exited', ended_at = pg_catalog.now(), end_reason = 'reentered', "
										   "next_position = NULL, next_fire_at = NULL "
										   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) p(id, journey) "
										   "WHERE e.customer_id OPERATOR(pg_catalog.=) p.id "
										   "AND e.journey OPERATOR(pg_catalog.=) p.journey "
										   "AND e.status OPERATOR(pg_catalog.=) 'active'",
										   2, types),
								 values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not end the customers' earlier enrollments");
		}
	}

	{
		Datum		values[3] = {array_of(customers, npairs, TEXTOID), array_of(journeys, npairs, TEXTOID),
								 array_of(contexts, npairs, JSONBOID)};

		if (SPI_execute_plan(kept_plan(&enroll_plan,
									   "INSERT INTO post_purchase.enrollments (journey, customer_id, anchor_at, context, "
									   "holdout, variant, next_position, next_fire_at) "
									   "SELECT j.name, p.id, pg_catalog.now(), "
									   "pg_catalog.jsonb_build_object('order', p.context), "
									   "post_purchase.in_holdout(j.name, p.id, j.holdout_percent), "
									   "post_purchase.pick_variant(j.name, p.id, j.variants), "
									   "f.position, pg_catalog.now() OPERATOR(pg_catalog.+) f.delay "
									   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) WITH ORDINALITY p(id, journey, context, i) "
									   "JOIN post_purchase.journeys j ON j.name OPERATOR(pg_catalog.=) p.journey "
									   "CROSS JOIN LATERAL (SELECT s.position, s.delay FROM post_purchase.journey_steps s "
									   "WHERE s.journey OPERATOR(pg_catalog.=) j.name ORDER BY s.position LIMIT 1) f "
									   "ORDER BY p.i "
									   "RETURNING next_fire_at OPERATOR(pg_catalog.<=) pg_catalog.now()",
									   3, types),
							 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not enroll the customers in the order journeys");
	}
	for (uint64 i = 0; i < SPI_processed && !due_now; i++)
	{
		bool		isnull;

		due_now = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	return due_now;
}

void
enroll_for_orders(const OrderBatch *batch)
{
	OrderEffects *effects;

	if (batch->n == 0)
		return;
	effects = palloc0(batch->n * sizeof(OrderEffects));
	read_order_effects(batch, effects);
	convert_and_exit(batch, effects);
	/* a thank-you reaches the outbox right after the orders commit */
	if (enroll_in(batch, effects))
		wake_workers_at_commit_of_xact();
}
