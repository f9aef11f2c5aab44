/*
 * summary_set.h
 *	  Weighted customer summaries, the state of the model-fitting aggregates.
 *
 * A likelihood only depends on each customer's summary, so customers with the
 * same (frequency, recency, T) carry the same information: the set keeps each
 * distinct summary once with the sum of its weights.  On CDNOW's 2,357
 * customers that leaves about 1,400 points; on a shop with a day unit and a
 * few years of history, at most a few points per customer.  Summaries are
 * appended and merged lazily, like DaySet: sorted and de-duplicated when the
 * array fills up, so memory follows the distinct summaries, not the rows.
 */
#ifndef POST_PURCHASE_SUMMARY_SET_H
#define POST_PURCHASE_SUMMARY_SET_H

#include "lib/stringinfo.h"

typedef struct CustomerSummary
{
	double		frequency;
	double		recency;		/* Gamma-Gamma: the mean spend */
	double		t;				/* Gamma-Gamma: unused, 0 */
	double		weight;
} CustomerSummary;

typedef struct SummarySet
{
	CustomerSummary *items;
	int64		count;
	int64		capacity;
	bool		compact;
} SummarySet;

extern void summary_set_init(SummarySet *set, MemoryContext cxt);
extern void summary_set_add(SummarySet *set, double frequency, double recency, double t, double weight);
extern void summary_set_add_all(SummarySet *set, const SummarySet *other);
extern void summary_set_compact(SummarySet *set);
extern double summary_set_total_weight(const SummarySet *set);
extern void summary_set_serialize(StringInfo buf, SummarySet *set);
extern void summary_set_deserialize(StringInfo buf, SummarySet *set, MemoryContext cxt);

#endif							/* POST_PURCHASE_SUMMARY_SET_H */
