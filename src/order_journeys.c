/*
 * order_journeys.c
 *	  What new orders do to the customer's journeys, for a decision
 *	  (decisions.c): the newest converts the steps decided for the customer
 *	  within the attribution window, ends the enrollments waiting for a
 *	  purchase, and enrolls the customer in the order journeys (first_order,
 *	  every_order, and nth_order for each order number the new orders reach).
 *
 * This runs for every order, so it is kept plans run from C, not a PL/pgSQL
 * function, and one statement that only reads first finds what there is to
 * do: most orders convert nothing, end nothing and enter no journey, and
 * stop there.  Each statement's executor start-up (an update's opens every
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
#include "utils/timestamp.h"

#include "order_journeys.h"
#include "trigger_support.h"
#include "worker.h"

static SPIPlanPtr order_effects_plan;
static SPIPlanPtr convert_plan;
static SPIPlanPtr exit_plan;
static SPIPlanPtr reentry_plan;
static SPIPlanPtr enroll_plan;

/* What an order does to its customer's journeys, as far as one read tells. */
typedef struct OrderEffects
{
	bool		may_convert;	/* steps were decided for the customer before the order */
	bool		exits;			/* enrollments that end on a purchase are active */
	bool		enrolled;		/* any enrollment of the customer is active */
	Datum		entering;		/* text[] of the order journeys to enter, or 0 for none */
} OrderEffects;

/*
 * One statement that only reads finds what the order does: the statements
 * that write (an update's executor start-up alone opens every index of its
 * table) then run only when they have something to do.  The conversion's
 * lower bound, the attribution window, is left to its update: as an index
 * condition here it would call setting() for every order.
 */
static void
read_order_effects(Datum customer, int64 orders, int64 new_orders, TimestampTz ordered_at,
				   OrderEffects *effects)
{
	Oid			types[4] = {TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[4] = {customer, Int64GetDatum(orders), TimestampTzGetDatum(ordered_at),
							 Int64GetDatum(orders - new_orders + 1)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		entering;

	if (SPI_execute_plan(kept_plan(&order_effects_plan,
								   "SELECT EXISTS (SELECT FROM post_purchase.step_outcomes o "
								   "WHERE o.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND o.decided_at OPERATOR(pg_catalog.<) $3), "
								   "EXISTS (SELECT FROM post_purchase.enrollments e "
								   "JOIN post_purchase.journeys x ON x.name OPERATOR(pg_catalog.=) e.journey "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND e.status OPERATOR(pg_catalog.=) 'active' AND x.exit_on_purchase), "
								   "EXISTS (SELECT FROM post_purchase.enrollments e "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND e.status OPERATOR(pg_catalog.=) 'active'), "
								   "ARRAY(SELECT j.name FROM post_purchase.journeys j "
								   "WHERE j.enabled "
								   "AND (j.trigger OPERATOR(pg_catalog.=) 'every_order' "
								   "OR (j.trigger OPERATOR(pg_catalog.=) 'first_order' "
								   "AND 1 BETWEEN $4 AND $2) "
								   "OR (j.trigger OPERATOR(pg_catalog.=) 'nth_order' "
								   "AND j.nth_order BETWEEN $4 AND $2)) "
								   "AND EXISTS (SELECT FROM post_purchase.journey_steps s "
								   "WHERE s.journey OPERATOR(pg_catalog.=) j.name) "
								   "AND NOT EXISTS (SELECT FROM post_purchase.enrollments e "
								   "WHERE j.reentry OPERATOR(pg_catalog.<>) 'every_time' "
								   "AND e.journey OPERATOR(pg_catalog.=) j.name "
								   "AND e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND (j.reentry OPERATOR(pg_catalog.=) 'once' OR e.enrolled_at "
								   "OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) j.reentry_interval))))",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read what the order does to the customer's journeys");
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	effects->may_convert = DatumGetBool(SPI_getbinval(row, desc, 1, &isnull));
	effects->exits = DatumGetBool(SPI_getbinval(row, desc, 2, &isnull));
	effects->enrolled = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
	entering = SPI_getbinval(row, desc, 4, &isnull);
	/* ARRAY() of no rows is an empty array, of no dimensions */
	effects->entering = ARR_NDIM(DatumGetArrayTypeP(entering)) > 0 ? entering : (Datum) 0;
}

/*
 * The order converts the steps decided for the customer within the
 * attribution window before it (holdout steps too: the uplift's baseline),
 * and ends the enrollments that wait for a purchase.
 */
static void
convert_and_exit(const OrderEffects *effects, Datum customer, TimestampTz ordered_at, Datum amount)
{
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, NUMERICOID};
	Datum		values[3] = {customer, TimestampTzGetDatum(ordered_at), amount};

	if (effects->may_convert &&
		SPI_execute_plan(kept_plan(&convert_plan,
								   "UPDATE post_purchase.step_outcomes o "
								   "SET converted_at = coalesce(o.converted_at, $2), "
								   "attributed_revenue = o.attributed_revenue OPERATOR(pg_catalog.+) $3 "
								   "WHERE o.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND o.decided_at OPERATOR(pg_catalog.<) $2 "
								   "AND o.decided_at OPERATOR(pg_catalog.>=) ($2 OPERATOR(pg_catalog.-) "
								   "post_purchase.setting('attribution_window')::pg_catalog.interval)",
								   3, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the order's conversions");
	if (effects->exits &&
		SPI_execute_plan(kept_plan(&exit_plan,
								   "UPDATE post_purchase.enrollments e "
								   "SET status = 'exited', ended_at = pg_catalog.now(), end_reason = 'purchased', "
								   "next_position = NULL, next_fire_at = NULL "
								   "FROM post_purchase.journeys x "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND e.status OPERATOR(pg_catalog.=) 'active' "
								   "AND x.name OPERATOR(pg_catalog.=) e.journey AND x.exit_on_purchase",
								   1, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not end the enrollments waiting for a purchase");
}

/*
 * Enroll the customer in the journeys named in entering, ending the active
 * enrollments in them first (the reentry policy allowed it), if the
 * customer has any: a first order has none.  The order row (a composite)
 * becomes the enrollments' context.  True when a first step is due now.
 */
static bool
enroll_in(const OrderEffects *effects, Datum customer, Datum order_row)
{
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, RECORDOID};
	Datum		values[3] = {customer, effects->entering, order_row};
	bool		due_now = false;

	if (effects->enrolled &&
		SPI_execute_plan(kept_plan(&reentry_plan,
								   "UPDATE post_purchase.enrollments e "
								   "SET status = 'exited', ended_at = pg_catalog.now(), end_reason = 'reentered', "
								   "next_position = NULL, next_fire_at = NULL "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND e.journey OPERATOR(pg_catalog.=) ANY ($2) "
								   "AND e.status OPERATOR(pg_catalog.=) 'active'",
								   2, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not end the customer's earlier enrollments");
	if (SPI_execute_plan(kept_plan(&enroll_plan,
								   "INSERT INTO post_purchase.enrollments (journey, customer_id, anchor_at, context, "
								   "holdout, variant, next_position, next_fire_at) "
								   "SELECT j.name, $1, pg_catalog.now(), "
								   "pg_catalog.jsonb_build_object('order', pg_catalog.to_jsonb($3)), "
								   "post_purchase.in_holdout(j.name, $1, j.holdout_percent), "
								   "post_purchase.pick_variant(j.name, $1, j.variants), "
								   "f.position, pg_catalog.now() OPERATOR(pg_catalog.+) f.delay "
								   "FROM post_purchase.journeys j "
								   "CROSS JOIN LATERAL (SELECT s.position, s.delay FROM post_purchase.journey_steps s "
								   "WHERE s.journey OPERATOR(pg_catalog.=) j.name ORDER BY s.position LIMIT 1) f "
								   "WHERE j.name OPERATOR(pg_catalog.=) ANY ($2) ORDER BY j.name "
								   "RETURNING next_fire_at OPERATOR(pg_catalog.<=) pg_catalog.now()",
								   3, types),
						 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not enroll the customer in the order journeys");
	for (uint64 i = 0; i < SPI_processed && !due_now; i++)
	{
		bool		isnull;

		due_now = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	return due_now;
}

void
enroll_for_orders(Datum customer, int64 orders, int64 new_orders, TimestampTz ordered_at, Datum amount,
				  Datum (*order_row) (void *arg), void *arg)
{
	OrderEffects effects;

	read_order_effects(customer, orders, new_orders, ordered_at, &effects);
	convert_and_exit(&effects, customer, ordered_at, amount);
	if (effects.entering == (Datum) 0)
		return;
	/* a thank-you reaches the outbox right after the order commits */
	if (enroll_in(&effects, customer, order_row(arg)))
		wake_workers_at_commit_of_xact();
}
