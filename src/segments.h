/*
 * segments.h
 *	  What journeys share with segments: user-written SQL expressions are
 *	  checked the same way and run as the role that owns them.  And the
 *	  order trigger's entry point: a customer's memberships after an order.
 */
#ifndef POST_PURCHASE_SEGMENTS_H
#define POST_PURCHASE_SEGMENTS_H

extern void check_rule_is_expression(const char *rule, const char *what);
extern void update_customer_segments(Datum customer);
extern void update_segments_of(int n, const Datum *customers, const Datum *states);

/* Running user-written SQL as the role that owns it, search_path locked. */
typedef struct OwnerContext
{
	Oid			user;
	int			sec_context;
} OwnerContext;

extern void check_may_act_as(Oid owner, const char *what);
extern void become_owner(Oid owner, OwnerContext *saved);
extern void restore_user(const OwnerContext *saved);
extern int	lock_search_path(void);

#endif							/* POST_PURCHASE_SEGMENTS_H */
