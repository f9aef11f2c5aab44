/*
 * order_journeys.h
 *	  A decision's entry point into the order journeys (order_journeys.c).
 */
#ifndef POST_PURCHASE_ORDER_JOURNEYS_H
#define POST_PURCHASE_ORDER_JOURNEYS_H

#include "datatype/timestamp.h"

/*
 * The new_orders newest orders of customer (text), who has orders now: the
 * newest one's conversions (at ordered_at, amount numeric), exits on
 * purchase, and enrollments in the order journeys, whose context order_row
 * (the order's row, a composite) gives when one is entered.  Inside an SPI
 * connection.
 */
extern void enroll_for_orders(Datum customer, int64 orders, int64 new_orders, TimestampTz ordered_at,
							  Datum amount, Datum (*order_row) (void *arg), void *arg);

#endif							/* POST_PURCHASE_ORDER_JOURNEYS_H */
