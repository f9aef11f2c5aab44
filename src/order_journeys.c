/*
 * order_journeys.c
 *	  What a new order does to the customer's journeys, for the order
 *	  trigger: it converts the steps decided for the customer within the
 *	  attribution window, ends the enrollments waiting for a purchase, and
 *	  enrolls the customer in the order journeys (first_order, every_order,
 *	  nth_order).
 *
 * This runs for every order, so it is a few kept plans run from C, not a
 * PL/pgSQL function: the conversion, the exits and the choice of journeys
 * are one statement, and most orders stop there, since most orders enter no
 * journey.  Each statement's executor start-up, and the order row turned
 * into jsonb for payloads that nobody reads, used to cost more than the
 * work itself.  The trigger runs with search_path pg_catalog, pg_temp, as
 * the extension's owner; the statements qualify every name anyway.
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
static SPIPlanPtr reentry_plan;
static SPIPlanPtr enroll_plan;

/*
 * Convert, exit, and return the names of the order journeys the customer
 * enters now (NULL for none), in name order.
 */
static Datum
convert_exit_and_choose(Datum customer, int64 orders, TimestampTz ordered_at, Datum amount, bool *none)
{
	Oid			types[4] = {TEXTOID, INT8OID, TIMESTAMPTZOID, NUMERICOID};
	Datum		values[4] = {customer, Int64GetDatum(orders), TimestampTzGetDatum(ordered_at), amount};

	if (SPI_execute_plan(kept_plan(&order_effects_plan,
								   /* holdout steps convert too: the uplift's baseline */
								   "WITH converted AS (UPDATE post_purchase.step_outcomes o "
								   "SET converted_at = coalesce(o.converted_at, $3), "
								   "attributed_revenue = o.attributed_revenue OPERATOR(pg_catalog.+) $4 "
								   "WHERE o.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND o.decided_at OPERATOR(pg_catalog.<) $3 "
								   "AND o.decided_at OPERATOR(pg_catalog.>=) ($3 OPERATOR(pg_catalog.-) "
								   "post_purchase.setting('attribution_window')::pg_catalog.interval)), "
								   "exited AS (UPDATE post_purchase.enrollments e "
								   "SET status = 'exited', ended_at = pg_catalog.now(), end_reason = 'purchased', "
								   "next_position = NULL, next_fire_at = NULL "
								   "FROM post_purchase.journeys x "
								   "WHERE e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND e.status OPERATOR(pg_catalog.=) 'active' "
								   "AND x.name OPERATOR(pg_catalog.=) e.journey AND x.exit_on_purchase) "
								   "SELECT pg_catalog.array_agg(j.name ORDER BY j.name) "
								   "FROM post_purchase.journeys j "
								   "WHERE j.enabled "
								   "AND (j.trigger OPERATOR(pg_catalog.=) 'every_order' "
								   "OR (j.trigger OPERATOR(pg_catalog.=) 'first_order' AND $2 OPERATOR(pg_catalog.=) 1) "
								   "OR (j.trigger OPERATOR(pg_catalog.=) 'nth_order' "
								   "AND j.nth_order OPERATOR(pg_catalog.=) $2)) "
								   "AND EXISTS (SELECT FROM post_purchase.journey_steps s "
								   "WHERE s.journey OPERATOR(pg_catalog.=) j.name) "
								   "AND NOT EXISTS (SELECT FROM post_purchase.enrollments e "
								   "WHERE j.reentry OPERATOR(pg_catalog.<>) 'every_time' "
								   "AND e.journey OPERATOR(pg_catalog.=) j.name "
								   "AND e.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND (j.reentry OPERATOR(pg_catalog.=) 'once' OR e.enrolled_at "
								   "OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) j.reentry_interval)))",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not apply the order to the customer's journeys");
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, none);
}

/*
 * Enroll the customer in the journeys named in entering, ending the active
 * enrollments in them first (the reentry policy allowed it); the order row
 * becomes the enrollments' context.  True when a first step is due now.
 */
static bool
enroll_in(Datum customer, Datum entering, HeapTuple tuple, TupleDesc desc)
{
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, RECORDOID};
	Datum		values[3] = {customer, entering, heap_copy_tuple_as_datum(tuple, desc)};
	bool		due_now = false;

	if (SPI_execute_plan(kept_plan(&reentry_plan,
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
enroll_for_order(HeapTuple tuple, TupleDesc desc, Datum customer, int64 orders, TimestampTz ordered_at,
				 Datum amount)
{
	bool		none;
	Datum		entering = convert_exit_and_choose(customer, orders, ordered_at, amount, &none);

	if (none)
		return;
	/* a thank-you reaches the outbox right after the order commits */
	if (enroll_in(customer, entering, tuple, desc))
		wake_workers_at_commit_of_xact();
}
