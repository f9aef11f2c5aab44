/*
 * metrics_context.h
 *	  What customer_metrics computes with, kept in the backend between
 *	  orders for the order trigger's segment rules (metrics_context.c).
 */
#ifndef POST_PURCHASE_METRICS_CONTEXT_H
#define POST_PURCHASE_METRICS_CONTEXT_H

/*
 * The values, in the order of the parameters of
 * metrics_of(state, today_in_zone(pinned_today, time_zone), lapsed_after_days,
 * at_risk_after_days, monthly_discount, model, cuts, NULL).
 */
#define METRICS_CONTEXT_VALUES 7

extern bool metrics_context_exists(void);
extern void metrics_context_types(Oid *types);
extern void get_metrics_context(Datum *values, char *nulls);

#endif							/* POST_PURCHASE_METRICS_CONTEXT_H */
