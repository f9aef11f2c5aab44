/*
 * order_journeys.h
 *	  The order trigger's entry point into journeys (order_journeys.c).
 */
#ifndef POST_PURCHASE_ORDER_JOURNEYS_H
#define POST_PURCHASE_ORDER_JOURNEYS_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"

/*
 * A new order of customer (text), its orders-th: conversions, exits on
 * purchase and enrollments in the order journeys.  Inside the trigger's SPI
 * connection; amount is numeric.
 */
extern void enroll_for_order(HeapTuple tuple, TupleDesc desc, Datum customer, int64 orders,
							 TimestampTz ordered_at, Datum amount);

#endif							/* POST_PURCHASE_ORDER_JOURNEYS_H */
