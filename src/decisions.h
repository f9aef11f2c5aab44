/*
 * decisions.h
 *	  What a change of a customer decides: segment entries and exits, and
 *	  the order journeys (decisions.c).
 */
#ifndef POST_PURCHASE_DECISIONS_H
#define POST_PURCHASE_DECISIONS_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"

/* post_purchase.decide_in: where the decisions of an order are made */
typedef enum DecideIn
{
	DECIDE_IN_AUTO,				/* the workers if they serve the database, else the order */
	DECIDE_IN_ORDER,			/* the order's transaction, as its trigger runs */
	DECIDE_IN_WORKER			/* a worker, after the order commits */
} DecideIn;

extern int	decide_in;

/*
 * The newest order of a decision made in the order's trigger: orders is the
 * customer's order count with it, new_orders 1 for an inserted order (0 for
 * an update or delete), and the order row itself.
 */
typedef struct TriggerOrder
{
	int64		orders;
	int64		new_orders;
	TimestampTz ordered_at;
	Datum		amount;			/* numeric */
	HeapTuple	tuple;
	TupleDesc	desc;
} TriggerOrder;

extern bool decide_in_order_transaction(void);
extern void decide_customer(Datum customer, const TriggerOrder *order);

#endif							/* POST_PURCHASE_DECISIONS_H */
