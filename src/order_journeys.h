/*
 * order_journeys.h
 *	  A decision's entry point into the order journeys (order_journeys.c).
 */
#ifndef POST_PURCHASE_ORDER_JOURNEYS_H
#define POST_PURCHASE_ORDER_JOURNEYS_H

#include "datatype/timestamp.h"

/*
 * The new orders of a batch of customers (text, each once), who have orders
 * now: customer i has orders[i] orders, the newest new_orders[i] of them
 * new since its last decision (at least one), the newest placed at
 * ordered_at[i] for amounts[i] (numeric).  context(context_arg, i) gives
 * that order as jsonb, the context of the enrollments it enters; it is
 * called only for customers who enter a journey.
 */
typedef struct OrderBatch
{
	int			n;
	const Datum *customers;
	const int64 *orders;
	const int64 *new_orders;
	const TimestampTz *ordered_at;
	const Datum *amounts;
	Datum		(*context) (void *context_arg, int i);
	void	   *context_arg;
} OrderBatch;

/*
 * The batch's conversions, exits on purchase and enrollments in the order
 * journeys.  Inside an SPI connection.
 */
extern void enroll_for_orders(const OrderBatch *batch);

#endif							/* POST_PURCHASE_ORDER_JOURNEYS_H */
