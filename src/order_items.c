/*
 * order_items.c
 *	  The trigger that keeps post_purchase.customer_product_orders current
 *	  from the shop's order items: per order and product, the quantity
 *	  bought, with the order's customer, time and calendar day copied in.
 *	  Per-product replenishment (customer_product_replenishment) reads it.
 *
 * An item change recomputes its (order, product) row from the items and
 * orders tables, an index lookup when the items table has an index on the
 * order column; the order trigger keeps the rows right when an order changes
 * customer, time or key, or goes away.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#include "order_items.h"
#include "trigger_support.h"

PG_FUNCTION_INFO_V1(track_items_trigger);

/* trigger arguments */
enum
{
	ITEM_ORDER_COLUMN,
	ITEM_PRODUCT_COLUMN,
	ITEM_QUANTITY_COLUMN,
	ORDERS_TABLE,
	ORDERS_KEY_COLUMN,
	ORDERS_CUSTOMER_COLUMN,
	ORDERS_AT_COLUMN,
	ORDERS_TIME_ZONE,
	ITEM_TRIGGER_ARGS
};

typedef struct TrackedItem
{
	bool		tracked;		/* has an order key and a product */
	Datum		order_key;		/* in the column's own type */
	Oid			order_key_type;
	Datum		order_text;
	Datum		product;		/* text */
	Datum		quantity;		/* numeric */
} TrackedItem;

static SPIPlanPtr delete_item_plan;
static SPIPlanPtr forget_order_plan;
static SPIPlanPtr move_order_plan;

/* The recomputation, planned once per trigger (its tables and columns are fixed). */
static Oid	rebuild_trigger = InvalidOid;
static SPIPlanPtr rebuild_plan;

#define RETRACK_ITEMS_HINT \
	"Call post_purchase.untrack_order_items() and post_purchase.track_order_items() again."

static void
read_item(TriggerData *trigdata, HeapTuple tuple, TrackedItem *item)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	char	  **args = trigdata->tg_trigger->tgargs;
	int			order_col = tracked_column(rel, args[ITEM_ORDER_COLUMN], RETRACK_ITEMS_HINT);
	int			product_col = tracked_column(rel, args[ITEM_PRODUCT_COLUMN], RETRACK_ITEMS_HINT);
	int			quantity_col = tracked_column(rel, args[ITEM_QUANTITY_COLUMN], RETRACK_ITEMS_HINT);
	bool		order_null,
				product_null,
				quantity_null;
	Datum		product = heap_getattr(tuple, product_col, desc, &product_null);
	Datum		quantity = heap_getattr(tuple, quantity_col, desc, &quantity_null);
	Oid			quantity_type = TupleDescAttr(desc, quantity_col - 1)->atttypid;

	item->order_key = heap_getattr(tuple, order_col, desc, &order_null);
	item->order_key_type = TupleDescAttr(desc, order_col - 1)->atttypid;
	item->tracked = !order_null && !product_null;
	if (!item->tracked)
		return;
	item->order_text = value_as_text(item->order_key, item->order_key_type);
	item->product = value_as_text(product, TupleDescAttr(desc, product_col - 1)->atttypid);
	if (quantity_null)
		item->quantity = NumericGetDatum(int64_to_numeric(0));
	else if (quantity_type == NUMERICOID)
		item->quantity = quantity;
	else if (quantity_type == INT4OID)
		item->quantity = DirectFunctionCall1(int4_numeric, quantity);
	else if (quantity_type == INT8OID)
		item->quantity = DirectFunctionCall1(int8_numeric, quantity);
	else if (quantity_type == FLOAT8OID)
		item->quantity = DirectFunctionCall1(float8_numeric, quantity);
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the tracked quantity column has unsupported type %s", format_type_be(quantity_type))));
	if (numeric_is_nan(DatumGetNumeric(item->quantity)) || numeric_is_inf(DatumGetNumeric(item->quantity)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("item quantity must be a finite number")));
}

/*
 * Recompute the row of one order and product from the items and orders
 * tables.  Recomputing, rather than adding and subtracting, makes the result
 * independent of the order in which the item and order triggers fire (a
 * cascaded change of an order's key fires both).
 */
static void
rebuild_pair(TriggerData *trigdata, const TrackedItem *item)
{
	char	  **args = trigdata->tg_trigger->tgargs;
	Oid			delete_types[2] = {TEXTOID, TEXTOID};
	Datum		delete_values[2] = {item->order_text, item->product};
	Datum		values[2] = {item->order_key, item->product};

	if (SPI_execute_plan(kept_plan(&delete_item_plan,
								   "DELETE FROM post_purchase.customer_product_orders p "
								   "WHERE p.order_key OPERATOR(pg_catalog.=) $1 "
								   "AND p.product_id OPERATOR(pg_catalog.=) $2",
								   2, delete_types),
						 delete_values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not remove the order item");

	if (rebuild_plan == NULL || rebuild_trigger != trigdata->tg_trigger->tgoid)
	{
		Relation	items = trigdata->tg_relation;
		Oid			orders = DatumGetObjectId(DirectFunctionCall1(oidin, CStringGetDatum(args[ORDERS_TABLE])));
		const char *order_col = quote_identifier(args[ITEM_ORDER_COLUMN]);
		const char *product_col = quote_identifier(args[ITEM_PRODUCT_COLUMN]);
		const char *customer_col = quote_identifier(args[ORDERS_CUSTOMER_COLUMN]);
		const char *at_col = quote_identifier(args[ORDERS_AT_COLUMN]);
		char	   *sql = psprintf(
			"INSERT INTO post_purchase.customer_product_orders "
			"SELECT i.%s::pg_catalog.text, i.%s::pg_catalog.text, o.%s::pg_catalog.text, o.%s, "
			"(o.%s AT TIME ZONE %s)::pg_catalog.date, "
			"pg_catalog.sum(COALESCE(i.%s::pg_catalog.numeric, 0)), pg_catalog.count(*) "
			"FROM ONLY %s i JOIN ONLY %s o ON o.%s OPERATOR(pg_catalog.=) i.%s "
			"WHERE i.%s OPERATOR(pg_catalog.=) $1 AND i.%s::pg_catalog.text OPERATOR(pg_catalog.=) $2 "
			"AND o.%s IS NOT NULL AND o.%s IS NOT NULL "
			"GROUP BY 1, 2, 3, 4, 5",
			order_col, product_col, customer_col, at_col, at_col,
			quote_literal_cstr(args[ORDERS_TIME_ZONE]), quote_identifier(args[ITEM_QUANTITY_COLUMN]),
			quote_qualified_identifier(get_namespace_name(RelationGetNamespace(items)),
									   RelationGetRelationName(items)),
			quote_qualified_identifier(get_namespace_name(get_rel_namespace(orders)), get_rel_name(orders)),
			quote_identifier(args[ORDERS_KEY_COLUMN]), order_col, order_col, product_col,
			customer_col, at_col);
		Oid			types[2] = {item->order_key_type, TEXTOID};

		if (rebuild_plan != NULL)
			SPI_freeplan(rebuild_plan);
		rebuild_plan = NULL;
		kept_plan(&rebuild_plan, sql, 2, types);
		rebuild_trigger = trigdata->tg_trigger->tgoid;
	}
	if (SPI_execute_plan(rebuild_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the order item");
}

static bool
same_pair(const TrackedItem *a, const TrackedItem *b)
{
	return a->tracked && b->tracked &&
		DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, a->order_text, b->order_text)) &&
		DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, a->product, b->product));
}

/* The order is gone or no longer tracked: so are its items' rows. */
void
order_items_forget_order(Datum order_key)
{
	Oid			types[1] = {TEXTOID};

	if (SPI_execute_plan(kept_plan(&forget_order_plan,
								   "DELETE FROM post_purchase.customer_product_orders p "
								   "WHERE p.order_key OPERATOR(pg_catalog.=) $1",
								   1, types),
						 &order_key, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget the order's items");
}

/* An order that was not tracked now is: derive its items' rows afresh. */
void
order_items_rebuild_order(Datum order_key)
{
	Oid			types[1] = {TEXTOID};

	if (SPI_execute_with_args("SELECT post_purchase.rebuild_order_items($1)", 1, types, &order_key,
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not rebuild the order's items");
}

/* The order changed customer or time: its items' rows follow. */
void
order_items_move_order(Datum key, Datum customer, TimestampTz ordered_at, int32 day)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, DATEOID};
	Datum		values[4] = {key, customer, TimestampTzGetDatum(ordered_at), DateADTGetDatum(day)};

	if (SPI_execute_plan(kept_plan(&move_order_plan,
								   "UPDATE post_purchase.customer_product_orders p SET "
								   "customer_id = $2, ordered_at = $3, day = $4 "
								   "WHERE p.order_key OPERATOR(pg_catalog.=) $1",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not move the order's items");
}

Datum
track_items_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TrackedItem old_item = {false},
				new_item = {false};
	TriggerEvent event;

	event = check_tracking_trigger(fcinfo, "track_items_trigger", "track_order_items", ITEM_TRIGGER_ARGS);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!TRIGGER_FIRED_BY_INSERT(event))
		read_item(trigdata, trigdata->tg_trigtuple, &old_item);
	if (TRIGGER_FIRED_BY_INSERT(event))
		read_item(trigdata, trigdata->tg_trigtuple, &new_item);
	else if (TRIGGER_FIRED_BY_UPDATE(event))
		read_item(trigdata, trigdata->tg_newtuple, &new_item);

	if (old_item.tracked)
		rebuild_pair(trigdata, &old_item);
	if (new_item.tracked && !same_pair(&old_item, &new_item))
		rebuild_pair(trigdata, &new_item);
	SPI_finish();
	return PointerGetDatum(NULL);
}
