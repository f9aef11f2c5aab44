/*
 * tracking.c
 *	  The trigger that keeps post_purchase.customer_days and customer_state
 *	  current as the shop's orders table changes, one order at a time.
 *
 * An insert adds the order to its customer's purchase day and to the
 * customer's totals with two upserts, in constant time.  A delete takes it
 * away again: the day's counters go down, the day's first and last order
 * times are looked up again only when the deleted order was one of them, and
 * the customer's totals are recomputed from the customer's purchase days.
 * An update is a delete of the old row and an insert of the new one.  So the
 * state always equals what verify_state() recomputes from scratch.  After
 * the state, the trigger re-evaluates the customer's segments (segments.c)
 * and, when order items are tracked, carries them along (order_items.c).
 *
 * Concurrency.  Every path takes the customer's state row first and its
 * day rows after, so paths cannot deadlock on one customer, and an order
 * moving between customers locks both state rows in customer order first.
 * Inserts only add to counters in upserts, which PostgreSQL re-evaluates on
 * the newest row version.  A delete recomputes from a snapshot, so it reads
 * only once it holds the state row: every insert for the customer has then
 * committed or waits for it.  Under REPEATABLE READ a conflicting change is a
 * serialization failure instead, including a transaction whose snapshot
 * predates the tracking itself (check_state_visible) and an order of a
 * customer whose state a concurrent delete removed (check_no_deleted_state).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "dayset.h"
#include "order_journeys.h"
#include "order_items.h"
#include "segments.h"
#include "trigger_support.h"

PG_FUNCTION_INFO_V1(track_orders_trigger);

/* An order as the state sees it. */
typedef struct TrackedOrder
{
	bool		tracked;		/* false for guest orders and orders without a time */
	Datum		customer_key;	/* in the column's own type, for lookups */
	Datum		customer;		/* as text */
	TimestampTz ordered_at;
	DateADT		day;
	Datum		amount;			/* numeric */
	Datum		key;			/* the order key as text, when items are tracked */
} TrackedOrder;

/* The tracked columns and the shop's time zone, from the trigger's arguments. */
typedef struct TrackedColumns
{
	int			customer;
	int			ordered_at;
	int			amount;
	pg_tz	   *zone;
	int			key;			/* the order key column when items are tracked, else 0 */
} TrackedColumns;

static SPIPlanPtr add_day_plan;
static SPIPlanPtr add_day_between_plan;
static SPIPlanPtr add_state_plan;
static SPIPlanPtr remove_day_plan;
static SPIPlanPtr delete_day_plan;
static SPIPlanPtr set_day_bounds_plan;
static SPIPlanPtr lock_state_plan;
static SPIPlanPtr delete_state_plan;
static SPIPlanPtr recompute_state_plan;
static SPIPlanPtr lock_two_states_plan;
static SPIPlanPtr count_states_plan;

#define RETRACK_ORDERS_HINT \
	"Call post_purchase.untrack_orders() and post_purchase.track_orders() with the new column names."

static void
read_columns(TriggerData *trigdata, TrackedColumns *cols)
{
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;

	if (trigger->tgnargs != 4 && trigger->tgnargs != 5)
		elog(ERROR, "track_orders_trigger needs 4 or 5 arguments, got %d", trigger->tgnargs);
	/* track_order_items adds the order key column as a fifth argument */
	cols->key = trigger->tgnargs == 5 ? tracked_column(rel, trigger->tgargs[4], RETRACK_ORDERS_HINT) : 0;
	cols->customer = tracked_column(rel, trigger->tgargs[0], RETRACK_ORDERS_HINT);
	cols->ordered_at = tracked_column(rel, trigger->tgargs[1], RETRACK_ORDERS_HINT);
	cols->amount = tracked_column(rel, trigger->tgargs[2], RETRACK_ORDERS_HINT);
	cols->zone = pg_tzset(trigger->tgargs[3]);
	if (cols->zone == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", trigger->tgargs[3])));
}

/* The amount column as numeric; NULL counts as 0, NaN and infinity are errors. */
static Datum
amount_as_numeric(Datum value, bool isnull, Oid type)
{
	Numeric		amount;

	if (isnull)
		return NumericGetDatum(int64_to_numeric(0));
	switch (type)
	{
		case NUMERICOID:
			amount = DatumGetNumeric(value);
			break;
		case INT4OID:
			return DirectFunctionCall1(int4_numeric, value);
		case INT8OID:
			return DirectFunctionCall1(int8_numeric, value);
		case FLOAT8OID:
			amount = DatumGetNumeric(DirectFunctionCall1(float8_numeric, value));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("the tracked amount column has unsupported type %s", format_type_be(type))));
	}
	if (numeric_is_nan(amount) || numeric_is_inf(amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order amount must be a finite number"),
				 errdetail("post_purchase tracks this table, and NaN or infinite amounts cannot be summed.")));
	return NumericGetDatum(amount);
}

static void
read_order(HeapTuple tuple, TupleDesc desc, const TrackedColumns *cols, TrackedOrder *order)
{
	bool		customer_null,
				at_null,
				amount_null;
	Datum		amount;
	Oid			customer_type = TupleDescAttr(desc, cols->customer - 1)->atttypid;

	order->customer_key = heap_getattr(tuple, cols->customer, desc, &customer_null);
	order->ordered_at = DatumGetTimestampTz(heap_getattr(tuple, cols->ordered_at, desc, &at_null));
	amount = heap_getattr(tuple, cols->amount, desc, &amount_null);

	order->key = (Datum) 0;
	if (cols->key > 0)
	{
		bool		key_null;
		Datum		key = heap_getattr(tuple, cols->key, desc, &key_null);

		if (!key_null)
			order->key = value_as_text(key, TupleDescAttr(desc, cols->key - 1)->atttypid);
	}

	/* guest checkouts and orders without a time have no place in the state */
	order->tracked = !customer_null && !at_null;
	if (!order->tracked)
		return;
	order->customer = value_as_text(order->customer_key, customer_type);
	order->day = timestamptz_to_day_in(order->ordered_at, cols->zone);
	order->amount = amount_as_numeric(amount, amount_null, TupleDescAttr(desc, cols->amount - 1)->atttypid);
}

/* The order's purchase day, added to ($1 customer, $2 day, $3 amount, $4 time). */
#define DAY_UPSERT \
	"INSERT INTO post_purchase.customer_days AS d " \
	"VALUES ($1, $2, 1, $3, $4, $4) " \
	"ON CONFLICT (customer_id, day) DO UPDATE SET " \
	"orders = d.orders OPERATOR(pg_catalog.+) 1, " \
	"revenue = d.revenue OPERATOR(pg_catalog.+) $3, " \
	"first_at = LEAST(d.first_at, $4), last_at = GREATEST(d.last_at, $4)"

/*
 * Under a transaction snapshot, an order that starts a customer afresh may
 * do so because a concurrent transaction, committed after the snapshot,
 * deleted the customer's last order and with it the state row: ON CONFLICT
 * does not see a deleted row, but the snapshot still does, and the segment
 * rules would then read two state rows of the customer.  Retry instead.
 */
static void
check_no_deleted_state(Datum customer)
{
	Oid			types[1] = {TEXTOID};

	if (SPI_execute_plan(kept_plan(&count_states_plan,
								   "SELECT FROM post_purchase.customer_state s "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) $1",
								   1, types),
						 &customer, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customer state");
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access to the customer state"),
				 errdetail("A concurrent transaction removed the customer's last order after this transaction's snapshot."),
				 errhint("Retry the transaction.")));
}

/*
 * Add an order: the customer's totals first, which takes the state row lock
 * every path takes first, then the purchase day.  Returns the customer's
 * order count with it.
 *
 * Whether the order's day is a new purchase day follows from the state in
 * most cases, since first_day and last_day are the customer's earliest and
 * latest day with orders: a day after the last or before the first is new,
 * and those two days are not.  So the state upsert counts the day itself,
 * and the day upsert is a plain one; only an order dated strictly between
 * the two (a late entry) needs the day's upsert to say whether the day was
 * new, and counts it with a second state update.  Live orders come after
 * the last day, and writing the state row a second time for each new day
 * cost 5-10% of the tracked insert rate.
 */
static int64
add_order(const TrackedOrder *order)
{
	Oid			types[4] = {TEXTOID, DATEOID, NUMERICOID, TIMESTAMPTZOID};
	Datum		values[4];
	int64		orders;
	bool		between_days;
	bool		isnull;

	values[0] = order->customer;
	values[1] = DateADTGetDatum(order->day);
	values[2] = order->amount;
	values[3] = TimestampTzGetDatum(order->ordered_at);
	if (SPI_execute_plan(kept_plan(&add_state_plan,
								   "INSERT INTO post_purchase.customer_state AS s "
								   "VALUES ($1, 1, $3, $4, $4, 1, $2, $2, $3, pg_catalog.now()) "
								   "ON CONFLICT (customer_id) DO UPDATE SET "
								   "orders = s.orders OPERATOR(pg_catalog.+) 1, "
								   "revenue = s.revenue OPERATOR(pg_catalog.+) $3, "
								   "first_order_at = LEAST(s.first_order_at, $4), "
								   "last_order_at = GREATEST(s.last_order_at, $4), "
								   "purchase_days = s.purchase_days OPERATOR(pg_catalog.+) CASE "
								   "WHEN $2 OPERATOR(pg_catalog.>) s.last_day "
								   "OR $2 OPERATOR(pg_catalog.<) s.first_day THEN 1 ELSE 0 END, "
								   "first_day = LEAST(s.first_day, $2), last_day = GREATEST(s.last_day, $2), "
								   "first_day_revenue = CASE "
								   "WHEN $2 OPERATOR(pg_catalog.<) s.first_day THEN $3 "
								   "WHEN $2 OPERATOR(pg_catalog.=) s.first_day "
								   "THEN s.first_day_revenue OPERATOR(pg_catalog.+) $3 "
								   "ELSE s.first_day_revenue END, "
								   "updated_at = pg_catalog.now() "
								   "RETURNING s.orders, $2 OPERATOR(pg_catalog.>) s.first_day "
								   "AND $2 OPERATOR(pg_catalog.<) s.last_day",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not record the order in the customer state");
	orders = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	between_days = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (orders == 1 && IsolationUsesXactSnapshot())
		check_no_deleted_state(order->customer);

	if (!between_days)
	{
		if (SPI_execute_plan(kept_plan(&add_day_plan, DAY_UPSERT, 4, types),
							 values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the order's purchase day");
		return orders;
	}
	if (SPI_execute_plan(kept_plan(&add_day_between_plan,
								   "WITH d AS (" DAY_UPSERT " "
								   "RETURNING d.orders OPERATOR(pg_catalog.=) 1 AS new_day) "
								   "UPDATE post_purchase.customer_state s "
								   "SET purchase_days = s.purchase_days OPERATOR(pg_catalog.+) 1 "
								   "FROM d WHERE s.customer_id OPERATOR(pg_catalog.=) $1 AND d.new_day",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the order's purchase day");
	return orders;
}

/*
 * The state holds nothing of an order that tracking should have seen: under
 * a transaction snapshot taken before tracking began (its backfill is
 * invisible to us), acting on that would corrupt the state; retry instead.
 */
static void
check_state_visible(void)
{
	if (!IsolationUsesXactSnapshot())
		return;
	if (SPI_execute("SELECT FROM post_purchase.tracked_orders", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read post_purchase.tracked_orders");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access to the customer state"),
				 errdetail("Order tracking started after this transaction's snapshot."),
				 errhint("Retry the transaction.")));
}

/*
 * The first and last order times of a customer's day, looked up in the
 * orders table itself, which no longer holds the deleted order.
 */
static void
refresh_day_bounds(Relation rel, const TrackedColumns *cols, const TrackedOrder *order)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			key_type = TupleDescAttr(desc, cols->customer - 1)->atttypid;
	const char *customer = quote_identifier(NameStr(TupleDescAttr(desc, cols->customer - 1)->attname));
	const char *at = quote_identifier(NameStr(TupleDescAttr(desc, cols->ordered_at - 1)->attname));
	char	   *table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												   RelationGetRelationName(rel));
	Oid			types[3] = {key_type, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Oid			bound_types[4] = {TEXTOID, DATEOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[4];
	bool		first_null,
				last_null;
	TimestampTz day_start = day_start_in(order->day, cols->zone);
	TimestampTz next_day_start = day_start_in(order->day + 1, cols->zone);
	char	   *sql = psprintf("SELECT pg_catalog.min(%s), pg_catalog.max(%s) FROM ONLY %s "
							   "WHERE %s OPERATOR(pg_catalog.=) $1 "
							   "AND %s OPERATOR(pg_catalog.>=) $2 AND %s OPERATOR(pg_catalog.<) $3",
							   at, at, table, customer, at, at);

	values[0] = order->customer_key;
	values[1] = TimestampTzGetDatum(day_start);
	values[2] = TimestampTzGetDatum(next_day_start);
	/* not read-only: the query must see the delete that fired us */
	if (SPI_execute_with_args(sql, 3, types, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up the purchase day's orders");
	values[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &first_null);
	values[3] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &last_null);
	if (first_null || last_null)
		return;					/* the day is empty; the caller deletes it */
	values[0] = order->customer;
	values[1] = DateADTGetDatum(order->day);
	if (SPI_execute_plan(kept_plan(&set_day_bounds_plan,
								 "UPDATE post_purchase.customer_days SET first_at = $3, last_at = $4 "
								 "WHERE customer_id OPERATOR(pg_catalog.=) $1 AND day OPERATOR(pg_catalog.=) $2",
								 4, bound_types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update the purchase day");
}

static void
remove_order(Relation rel, const TrackedColumns *cols, const TrackedOrder *order)
{
	Oid			day_types[3] = {TEXTOID, DATEOID, NUMERICOID};
	Datum		values[3];
	bool		isnull;
	int64		orders_left;
	TimestampTz first_at,
				last_at;

	values[0] = order->customer;
	values[1] = DateADTGetDatum(order->day);
	values[2] = order->amount;

	/* the customer's state row first, as every path; then read and write */
	if (SPI_execute_plan(kept_plan(&lock_state_plan,
								   "SELECT FROM post_purchase.customer_state s "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
								   1, day_types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the customer state");
	if (SPI_processed == 0)
	{
		/* an order the state never saw (tracked without backfill) */
		check_state_visible();
		return;
	}

	if (SPI_execute_plan(kept_plan(&remove_day_plan,
								   "UPDATE post_purchase.customer_days d SET "
								   "orders = d.orders OPERATOR(pg_catalog.-) 1, "
								   "revenue = d.revenue OPERATOR(pg_catalog.-) $3 "
								   "WHERE d.customer_id OPERATOR(pg_catalog.=) $1 AND d.day OPERATOR(pg_catalog.=) $2 "
								   "RETURNING d.orders, d.first_at, d.last_at",
								   3, day_types),
						 values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not remove the order from its purchase day");
	if (SPI_processed == 0)
	{
		check_state_visible();
		return;
	}
	orders_left = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	first_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	last_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));

	if (orders_left <= 0)
	{
		if (SPI_execute_plan(kept_plan(&delete_day_plan,
									 "DELETE FROM post_purchase.customer_days "
									 "WHERE customer_id OPERATOR(pg_catalog.=) $1 AND day OPERATOR(pg_catalog.=) $2",
									 2, day_types),
							 values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete the purchase day");
	}
	else if (order->ordered_at == first_at || order->ordered_at == last_at)
		refresh_day_bounds(rel, cols, order);

	/* the customer's totals, from the purchase days that are left */
	if (SPI_execute_plan(kept_plan(&delete_state_plan,
								 "DELETE FROM post_purchase.customer_state s "
								 "WHERE s.customer_id OPERATOR(pg_catalog.=) $1 AND NOT EXISTS "
								 "(SELECT FROM post_purchase.customer_days d "
								 "WHERE d.customer_id OPERATOR(pg_catalog.=) $1)",
								 1, day_types),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete the customer state");
	if (SPI_execute_plan(kept_plan(&recompute_state_plan,
								 "UPDATE post_purchase.customer_state s SET "
								 "(orders, revenue, first_order_at, last_order_at, purchase_days, "
								 "first_day, last_day, first_day_revenue, updated_at) = "
								 "(SELECT pg_catalog.sum(d.orders)::pg_catalog.int8, pg_catalog.sum(d.revenue), "
								 "pg_catalog.min(d.first_at), pg_catalog.max(d.last_at), pg_catalog.count(*), "
								 "pg_catalog.min(d.day), pg_catalog.max(d.day), "
								 "(pg_catalog.array_agg(d.revenue ORDER BY d.day))[1], pg_catalog.now() "
								 "FROM post_purchase.customer_days d "
								 "WHERE d.customer_id OPERATOR(pg_catalog.=) $1) "
								 "WHERE s.customer_id OPERATOR(pg_catalog.=) $1",
								 1, day_types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not recompute the customer state");
}

/*
 * An order moving between customers locks both state rows, in customer
 * order, before touching either: two moves in opposite directions then wait
 * for each other instead of deadlocking.
 */
static void
lock_both_customers(Datum a, Datum b)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {a, b};

	if (SPI_execute_plan(kept_plan(&lock_two_states_plan,
								   "SELECT FROM post_purchase.customer_state s "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) ANY (ARRAY[$1, $2]) "
								   "ORDER BY s.customer_id FOR UPDATE",
								   2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the customers' state");
}

static bool
same_text(Datum a, Datum b)
{
	if (a == (Datum) 0 || b == (Datum) 0)
		return a == b;
	return DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, a, b));
}

/* Whether an update changed anything the state depends on. */
static bool
same_order(const TrackedOrder *a, const TrackedOrder *b)
{
	if (a->tracked != b->tracked || !same_text(a->key, b->key))
		return false;
	if (!a->tracked)
		return true;
	return a->ordered_at == b->ordered_at &&
		same_text(a->customer, b->customer) &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, a->amount, b->amount)) == 0;
}

/* The rows of the order's items follow the order (order_items.c). */
static void
follow_items(const TrackedColumns *cols, TriggerEvent event, const TrackedOrder *old_order,
			 const TrackedOrder *new_order)
{
	if (cols->key == 0 || TRIGGER_FIRED_BY_INSERT(event))
		return;
	if (TRIGGER_FIRED_BY_DELETE(event) || !new_order->tracked || new_order->key == (Datum) 0)
	{
		if (old_order->key != (Datum) 0)
			order_items_forget_order(old_order->key);
	}
	else if (old_order->tracked && same_text(old_order->key, new_order->key))
		order_items_move_order(old_order->key, new_order->customer, new_order->ordered_at,
							   new_order->day);
	else
	{
		/*
		 * A new key, or an order that just became tracked: derive its rows
		 * from the items table.  Whether a cascaded update of the items'
		 * order key runs before or after this, the item trigger then finds
		 * nothing left under the old key and this finds the items wherever
		 * they are, so nothing is counted twice.
		 */
		if (old_order->key != (Datum) 0)
			order_items_forget_order(old_order->key);
		order_items_rebuild_order(new_order->key);
	}
}

Datum
track_orders_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	TrackedColumns cols;
	TrackedOrder old_order = {false},
				new_order = {false};
	TriggerEvent event;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("track_orders_trigger can only be called as a trigger")));
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(event) || !TRIGGER_FIRED_FOR_ROW(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("track_orders_trigger must be an AFTER ... FOR EACH ROW trigger")));

	desc = RelationGetDescr(trigdata->tg_relation);
	read_columns(trigdata, &cols);
	if (TRIGGER_FIRED_BY_INSERT(event))
		read_order(trigdata->tg_trigtuple, desc, &cols, &new_order);
	else if (TRIGGER_FIRED_BY_DELETE(event))
		read_order(trigdata->tg_trigtuple, desc, &cols, &old_order);
	else
	{
		read_order(trigdata->tg_trigtuple, desc, &cols, &old_order);
		read_order(trigdata->tg_newtuple, desc, &cols, &new_order);
		if (same_order(&old_order, &new_order))
			return PointerGetDatum(NULL);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (old_order.tracked && new_order.tracked && !same_text(old_order.customer, new_order.customer))
		lock_both_customers(old_order.customer, new_order.customer);
	/*
	 * Segments are evaluated on the customer's final state: an update that
	 * keeps the customer is evaluated once, after the order is added back,
	 * and an order moved between customers changes both.
	 */
	if (old_order.tracked)
	{
		remove_order(trigdata->tg_relation, &cols, &old_order);
		if (!new_order.tracked || !same_text(old_order.customer, new_order.customer))
			update_customer_segments(old_order.customer);
	}
	if (new_order.tracked)
	{
		int64		orders = add_order(&new_order);

		if (TRIGGER_FIRED_BY_INSERT(event))
			enroll_for_order(trigdata->tg_trigtuple, desc, new_order.customer, orders,
							 new_order.ordered_at, new_order.amount);
		update_customer_segments(new_order.customer);
	}
	follow_items(&cols, event, &old_order, &new_order);
	SPI_finish();
	return PointerGetDatum(NULL);
}
