/*
 * tracking.c
 *	  The trigger that keeps post_purchase.customer_state current as the
 *	  shop's orders table changes, one order at a time.
 *
 * An order dated on or after its customer's last purchase day, which is
 * every live order, or on or before the first, is added to the customer's
 * totals by one upsert, in constant time: the same-day merge, the purchase
 * day count and the first day's revenue follow from the row's first_day and
 * last_day.  The rare paths the counters cannot follow (an order dated
 * between the two, an update that changes a tracked column, a delete)
 * recompute the customer's state from the orders table itself, through the
 * index on the customer column that track_orders() ensures.  So the state
 * always equals what verify_state() recomputes from scratch.  After the
 * state, the trigger re-evaluates the customer's segments (segments.c) and,
 * when order items are tracked, carries them along (order_items.c).
 *
 * Concurrency.  Every path takes the customer's state row first, and an
 * order moving between customers locks both state rows in customer order
 * first, so paths cannot deadlock on customers.  Inserts only add to
 * counters in upserts, which PostgreSQL re-evaluates on the newest row
 * version.  A recomputation reads a snapshot, so it reads only once it
 * holds the state row: every order of the customer has then committed or
 * waits to add itself on top.  Under REPEATABLE READ a conflicting change
 * is a serialization failure instead, including a transaction whose
 * snapshot predates the tracking itself (check_state_visible) and an order
 * of a customer whose state a concurrent delete removed
 * (check_no_deleted_state).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "dayset.h"
#include "decisions.h"
#include "order_items.h"
#include "trigger_support.h"
#include "worker.h"

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
	CommandId	statement;		/* the command that wrote or deleted this row version */
} TrackedOrder;

/* The tracked columns and the shop's time zone, from the trigger's arguments. */
typedef struct TrackedColumns
{
	int			customer;
	int			ordered_at;
	int			amount;
	pg_tz	   *zone;
	int			key;			/* the order key column when items are tracked, else 0 */
	/* how this call writes the state */
	bool		marks;			/* the state has change marks (a 1.0 schema has none) */
	bool		mark;			/* mark the customer for a worker's decision */
} TrackedColumns;

static SPIPlanPtr add_state_plan;
static SPIPlanPtr add_marked_state_plan;
static SPIPlanPtr lock_state_plan;
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

/*
 * The customer's totals with an order added ($1 customer, $2 day, $3
 * amount, $4 time), as a new row and as the update of an existing one,
 * which applies only to an order dated on or after the last purchase day or
 * on or before the first (add_order()).
 */
#define STATE_COLUMNS \
	"customer_id, orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day, " \
	"first_day_revenue, updated_at"
#define STATE_VALUES "$1, 1, $3, $4, $4, 1, $2, $2, $3, pg_catalog.now()"
#define STATE_ADD_SET \
	"orders = s.orders OPERATOR(pg_catalog.+) 1, " \
	"revenue = s.revenue OPERATOR(pg_catalog.+) $3, " \
	"first_order_at = LEAST(s.first_order_at, $4), " \
	"last_order_at = GREATEST(s.last_order_at, $4), " \
	"purchase_days = s.purchase_days OPERATOR(pg_catalog.+) CASE " \
	"WHEN $2 OPERATOR(pg_catalog.>) s.last_day " \
	"OR $2 OPERATOR(pg_catalog.<) s.first_day THEN 1 ELSE 0 END, " \
	"first_day = LEAST(s.first_day, $2), last_day = GREATEST(s.last_day, $2), " \
	"first_day_revenue = CASE " \
	"WHEN $2 OPERATOR(pg_catalog.<) s.first_day THEN $3 " \
	"WHEN $2 OPERATOR(pg_catalog.=) s.first_day " \
	"THEN s.first_day_revenue OPERATOR(pg_catalog.+) $3 " \
	"ELSE s.first_day_revenue END, " \
	"updated_at = pg_catalog.now()"
#define STATE_ADD_WHERE \
	"WHERE $2 OPERATOR(pg_catalog.>=) s.last_day OR $2 OPERATOR(pg_catalog.<=) s.first_day " \
	"RETURNING s.orders"

/*
 * The change mark, in the same write as the state (decisions.c): mark is a
 * boolean parameter, whether a worker decides (else the trigger decides at
 * once and the customer stays decided), and inserted an int8, 1 for a new
 * order.  changed_at keeps the oldest undecided change; order_seq counts
 * every inserted order, decided_seq those decided.  The customer's stored
 * scores stop counting (scores.c).
 */
#define MARK_SET(mark, inserted) \
	"scored_on = NULL, " \
	"changed_at = CASE WHEN " mark " THEN coalesce(s.changed_at, pg_catalog.now()) " \
	"ELSE s.changed_at END, " \
	"order_seq = s.order_seq OPERATOR(pg_catalog.+) " inserted ", " \
	"decided_seq = s.decided_seq OPERATOR(pg_catalog.+) CASE WHEN " mark " THEN 0 ELSE " inserted " END"

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
 * The customers whose state a statement recomputed from the orders table.
 * A statement's row triggers fire after all of its rows are in the table,
 * so a recomputation already counts the statement's rows whose triggers
 * have not fired yet: those must not add themselves to the counters again,
 * and recompute instead (which counts each row once, however often it
 * runs).  The statement is the command id that wrote the row, which all its
 * rows share.  Kept per transaction as a set of hashes of (customer,
 * command): a collision only turns an increment into a recomputation, which
 * is as right and slower.
 */
static HTAB *recomputed = NULL;
static LocalTransactionId recomputed_lxid = InvalidLocalTransactionId;

static uint64
recompute_signature(Datum customer, CommandId statement)
{
	text	   *t = DatumGetTextPP(customer);

	return ((uint64) hash_any((unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) << 32) | statement;
}

/* Whether the statement recomputed the customer already; remember it when remember. */
static bool
statement_recomputed(Datum customer, CommandId statement, bool remember)
{
	uint64		key = recompute_signature(customer, statement);
	bool		found;

	if (recomputed == NULL || recomputed_lxid != MyProc->lxid)
	{
		HASHCTL		ctl;

		if (!remember)
			return false;
		/* the table lives and dies with the transaction's memory */
		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(uint64);
		ctl.hcxt = TopTransactionContext;
		recomputed = hash_create("post_purchase recomputed customers", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		recomputed_lxid = MyProc->lxid;
	}
	(void) hash_search(recomputed, &key, remember ? HASH_ENTER : HASH_FIND, &found);
	return found;
}

/*
 * The statement that recomputes one customer's state from the orders table
 * itself, through the index on the customer column that track_orders()
 * made sure of: $1 is the customer in the column's own type, $2 as the text
 * the state keys on.  It runs only once the caller holds the customer's
 * state row, so every order of the customer committed before is in its
 * snapshot and every later one waits to add itself to what it writes.  It
 * deletes the state row when no order of the customer is left.  Its
 * aggregates are those of recomputed_state_query() (src/tracking.sql),
 * which verify_state() and the backfill run: purchase_totals() says what
 * the purchase days and revenues are for all three.
 */
static char *
recompute_sql(Relation rel, const TrackedColumns *cols)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *customer = quote_identifier(NameStr(TupleDescAttr(desc, cols->customer - 1)->attname));
	const char *at = quote_identifier(NameStr(TupleDescAttr(desc, cols->ordered_at - 1)->attname));
	const char *amount = quote_identifier(NameStr(TupleDescAttr(desc, cols->amount - 1)->attname));
	/*
	 * The trigger of a partitioned table fires on the partition: the
	 * customer's orders are in every partition of the tracked table.  An
	 * inheritance child's rows are not tracked (the trigger is the parent's).
	 */
	Oid			tracked = rel->rd_rel->relispartition ?
		llast_oid(get_partition_ancestors(RelationGetRelid(rel))) : RelationGetRelid(rel);
	char	   *table = psprintf("%s%s", rel->rd_rel->relispartition ? "" : "ONLY ",
								 quote_qualified_identifier(get_namespace_name(get_rel_namespace(tracked)),
															get_rel_name(tracked)));

	return psprintf("WITH c AS (SELECT pg_catalog.count(*) AS orders, "
					"pg_catalog.min(o.%2$s) AS first_at, pg_catalog.max(o.%2$s) AS last_at, "
					"post_purchase.purchase_totals(o.%2$s, coalesce(o.%3$s::pg_catalog.numeric, 0), %4$s) "
					"AS totals "
					"FROM %5$s o WHERE o.%1$s OPERATOR(pg_catalog.=) $1 AND o.%2$s IS NOT NULL), "
					"t AS (SELECT CASE WHEN c.orders OPERATOR(pg_catalog.>) 0 THEN c.orders END AS orders, "
					"(c.totals).revenue AS revenue, c.first_at, c.last_at, (c.totals).purchase_days AS days, "
					"(c.totals).first_day, (c.totals).last_day, "
					"(c.totals).first_day_revenue FROM c), "
					"gone AS (DELETE FROM post_purchase.customer_state s "
					"WHERE s.customer_id OPERATOR(pg_catalog.=) $2 AND (SELECT t.orders FROM t) IS NULL) "
					"UPDATE post_purchase.customer_state s SET "
					"(orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day, "
					"first_day_revenue, updated_at) = (t.orders, t.revenue, t.first_at, t.last_at, t.days, "
					"t.first_day, t.last_day, t.first_day_revenue, pg_catalog.now())%6$s "
					"FROM t WHERE s.customer_id OPERATOR(pg_catalog.=) $2 AND t.orders IS NOT NULL "
					"RETURNING s.orders",
					customer, at, amount, quote_literal_cstr(pg_get_timezone_name(cols->zone)), table,
					cols->marks ? ", " MARK_SET("$3", "$4") : "");
}

/*
 * The recompute plan, kept for its text: the tracked table, its columns,
 * the zone and the marks (one orders table is tracked at a time, and every
 * partition's trigger reads the whole table through it; the plan cache
 * re-plans it when the table changes).
 */
static SPIPlanPtr
recompute_plan(Relation rel, const TrackedColumns *cols)
{
	static TextPlan kept;
	Oid			types[4] = {TupleDescAttr(RelationGetDescr(rel), cols->customer - 1)->atttypid, TEXTOID,
	BOOLOID, INT8OID};

	return text_plan(&kept, recompute_sql(rel, cols), cols->marks ? 4 : 2, types,
					 "the customer state's recomputation");
}

/*
 * Recompute the customer's state from their orders, for the paths the
 * state's counters cannot follow (a late order between the first and last
 * purchase day, an update, a delete), and mark it as MARK_SET says;
 * inserted is 1 when the change is a new order.  The caller holds the state
 * row.  Returns the customer's order count, 0 when the state row is gone.
 */
static int64
recompute_customer(Relation rel, const TrackedColumns *cols, const TrackedOrder *order, int64 inserted)
{
	Datum		values[4] = {order->customer_key, order->customer, BoolGetDatum(cols->mark),
	Int64GetDatum(inserted)};
	bool		isnull;

	/* not read-only: a fresh snapshot, taken now that the row is held */
	if (SPI_execute_plan(recompute_plan(rel, cols), values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not recompute the customer state");
	(void) statement_recomputed(order->customer, order->statement, true);
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Lock the customer's state row, as every path takes it first; false if there is none. */
static bool
lock_state(Datum customer)
{
	Oid			types[1] = {TEXTOID};

	if (SPI_execute_plan(kept_plan(&lock_state_plan,
								   "SELECT FROM post_purchase.customer_state s "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
								   1, types),
						 &customer, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the customer state");
	return SPI_processed > 0;
}

/*
 * Add an order with one upsert of the customer's state, in constant time,
 * and return the customer's order count.  The counters follow any order
 * dated on or after the customer's last purchase day (every live order) or
 * on or before the first: whether its day is a new purchase day follows
 * from first_day and last_day, the customer's earliest and latest day with
 * orders.  An order dated strictly between the two cannot tell; for it the
 * upsert's WHERE fails, which still locks the row, and the state is
 * recomputed from the orders table.  The same write marks the customer
 * (MARK_SET); inserted is 1 for an inserted order, 0 for an updated one.
 */
static int64
add_order(Relation rel, const TrackedColumns *cols, const TrackedOrder *order, int64 inserted)
{
	Oid			types[6] = {TEXTOID, DATEOID, NUMERICOID, TIMESTAMPTZOID, BOOLOID, INT8OID};
	Datum		values[6];
	int64		orders;
	bool		isnull;
	SPIPlanPtr	plan;

	/* the statement's recomputation counted this order already */
	if (statement_recomputed(order->customer, order->statement, false) && lock_state(order->customer))
		return recompute_customer(rel, cols, order, inserted);

	values[0] = order->customer;
	values[1] = DateADTGetDatum(order->day);
	values[2] = order->amount;
	values[3] = TimestampTzGetDatum(order->ordered_at);
	values[4] = BoolGetDatum(cols->mark);
	values[5] = Int64GetDatum(inserted);
	if (cols->marks)
		plan = kept_plan(&add_marked_state_plan,
						 "INSERT INTO post_purchase.customer_state AS s (" STATE_COLUMNS ", "
						 "changed_at, order_seq, decided_seq) "
						 "VALUES (" STATE_VALUES ", CASE WHEN $5 THEN pg_catalog.now() END, $6, "
						 "CASE WHEN $5 THEN 0 ELSE $6 END) "
						 "ON CONFLICT (customer_id) DO UPDATE SET " STATE_ADD_SET ", "
						 MARK_SET("$5", "$6") " " STATE_ADD_WHERE,
						 6, types);
	else
		plan = kept_plan(&add_state_plan,
						 "INSERT INTO post_purchase.customer_state AS s (" STATE_COLUMNS ") "
						 "VALUES (" STATE_VALUES ") "
						 "ON CONFLICT (customer_id) DO UPDATE SET " STATE_ADD_SET " " STATE_ADD_WHERE,
						 4, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the order in the customer state");
	if (SPI_processed == 0)
		return recompute_customer(rel, cols, order, inserted);
	orders = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (orders == 1 && IsolationUsesXactSnapshot())
		check_no_deleted_state(order->customer);
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
 * The customer's state after one of their orders changed or went away,
 * recomputed from the orders table, which already shows the change: the
 * customer's orders left, 0 when the state row went with the last.  A
 * customer without a state row had no order the state saw (tracked without
 * backfill): -1 then, and nothing is done.
 */
static int64
remove_order(Relation rel, const TrackedColumns *cols, const TrackedOrder *order)
{
	if (!lock_state(order->customer))
	{
		check_state_visible();
		return -1;
	}
	return recompute_customer(rel, cols, order, 0);
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

/*
 * Whether customer_state has the change marks: a 1.0 schema, before ALTER
 * EXTENSION UPDATE, has none, and its orders are decided in their own
 * transaction as 1.0 did.
 */
static bool
state_has_marks(void)
{
	Oid			state = get_relname_relid("customer_state", get_namespace_oid("post_purchase", false));

	return OidIsValid(state) && get_attnum(state, "changed_at") != InvalidAttrNumber;
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
	bool		same_customer;
	bool		counted = false;	/* the new version is in the state already */
	bool		decide_now;

	event = check_tracking_trigger(fcinfo, "track_orders_trigger", "track_orders", -1);

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

	/* the statement's command id, which all rows it wrote or deleted carry */
	old_order.statement = new_order.statement = TRIGGER_FIRED_BY_DELETE(event) ?
		HeapTupleHeaderGetCmax(trigdata->tg_trigtuple->t_data) :
		HeapTupleHeaderGetCmin((TRIGGER_FIRED_BY_INSERT(event) ? trigdata->tg_trigtuple :
								trigdata->tg_newtuple)->t_data);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cols.marks = state_has_marks();
	decide_now = !cols.marks || decide_in_order_transaction();
	cols.mark = !decide_now;
	same_customer = old_order.tracked && new_order.tracked && same_text(old_order.customer, new_order.customer);
	if (old_order.tracked && new_order.tracked && !same_customer)
		lock_both_customers(old_order.customer, new_order.customer);

	/*
	 * Decisions are made on the customer's final state: an update that
	 * keeps the customer recomputes it once, with the order's new version
	 * already in the table, and an order moved between customers changes
	 * both.  A customer whose last order went has no state row left to mark,
	 * and is decided at once (the segments it leaves; a rare path).
	 */
	if (old_order.tracked)
	{
		int64		left = remove_order(trigdata->tg_relation, &cols, &old_order);

		counted = left >= 0 && same_customer;
		if (!same_customer && (decide_now || left == 0))
		{
			TriggerOrder changed = {Max(left, 0), 0};

			decide_customer(old_order.customer, &changed);
		}
	}
	if (new_order.tracked)
	{
		int64		inserted = TRIGGER_FIRED_BY_INSERT(event) ? 1 : 0;
		TriggerOrder changed = {0, counted ? 0 : inserted, new_order.ordered_at, new_order.amount,
		trigdata->tg_trigtuple, desc};

		if (!counted)
			changed.orders = add_order(trigdata->tg_relation, &cols, &new_order, inserted);
		if (decide_now)
			decide_customer(new_order.customer, &changed);
	}
	/* a worker decides soon after the commit: the thank-you is due now */
	if (!decide_now && (old_order.tracked || new_order.tracked))
		wake_workers_at_commit_of_xact();
	follow_items(&cols, event, &old_order, &new_order);
	SPI_finish();
	return PointerGetDatum(NULL);
}
