/*
 * order_items.h
 *	  Customer x product state from the shop's order items (order_items.c),
 *	  and what the order trigger must tell it.
 */
#ifndef POST_PURCHASE_ORDER_ITEMS_H
#define POST_PURCHASE_ORDER_ITEMS_H

#include "postgres.h"
#include "utils/timestamp.h"

extern void order_items_forget_order(Datum order_key);
extern void order_items_rebuild_order(Datum order_key);
extern void order_items_move_order(Datum key, Datum customer, TimestampTz ordered_at, int32 day);

#endif							/* POST_PURCHASE_ORDER_ITEMS_H */
