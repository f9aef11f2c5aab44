/*
 * segments.h
 *	  What journeys share with segments: user-written SQL expressions are
 *	  checked the same way.
 */
#ifndef POST_PURCHASE_SEGMENTS_H
#define POST_PURCHASE_SEGMENTS_H

extern void check_rule_is_expression(const char *rule, const char *what);

#endif							/* POST_PURCHASE_SEGMENTS_H */
