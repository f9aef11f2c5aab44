/*
 * summary_set.c
 *	  Weighted customer summaries; see summary_set.h.
 */
#include "postgres.h"

#include <math.h>

#include "libpq/pqformat.h"
#include "utils/memutils.h"

#include "summary_set.h"

#define SUMMARY_SET_INITIAL_CAPACITY 64

void
summary_set_init(SummarySet *set, MemoryContext cxt)
{
	set->items = MemoryContextAlloc(cxt, SUMMARY_SET_INITIAL_CAPACITY * sizeof(CustomerSummary));
	set->count = 0;
	set->capacity = SUMMARY_SET_INITIAL_CAPACITY;
	set->compact = true;
}

static int
summary_cmp(const void *a, const void *b)
{
	const CustomerSummary *x = a;
	const CustomerSummary *y = b;

	if (x->frequency != y->frequency)
		return x->frequency < y->frequency ? -1 : 1;
	if (x->recency != y->recency)
		return x->recency < y->recency ? -1 : 1;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return 0;
}

/*
 * The sum of two weights; a sum past the float8 range is an error, not an
 * infinite weight that would make the fit's likelihood NaN.
 */
static double
add_weights(double a, double b)
{
	double		sum = a + b;

	if (isinf(sum))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("customer summary weights sum past the range of double precision")));
	return sum;
}

/*
 * A summary an accumulator could have stored: finite, non-negative, a
 * positive weight.  Only what both models' summaries share: Gamma-Gamma
 * keeps the mean spend in recency and 0 in t, so recency <= t is BG/NBD's
 * alone (a crafted BG/NBD state that breaks it fits to a non-finite
 * likelihood, which model_fit_result refuses).
 */
static bool
summary_is_valid(const CustomerSummary *s)
{
	return isfinite(s->frequency) && isfinite(s->recency) && isfinite(s->t) && isfinite(s->weight) &&
		s->frequency >= 0 && s->recency >= 0 && s->t >= 0 && s->weight > 0;
}

/* Sort the summaries and merge equal ones, summing their weights. */
void
summary_set_compact(SummarySet *set)
{
	int64		kept = 0;

	if (set->compact)
		return;
	qsort(set->items, set->count, sizeof(CustomerSummary), summary_cmp);
	for (int64 i = 0; i < set->count; i++)
	{
		if (kept > 0 && summary_cmp(&set->items[kept - 1], &set->items[i]) == 0)
			set->items[kept - 1].weight = add_weights(set->items[kept - 1].weight, set->items[i].weight);
		else
			set->items[kept++] = set->items[i];
	}
	set->count = kept;
	set->compact = true;
}

/* Make room for "needed" more summaries, compacting before growing. */
static void
summary_set_reserve(SummarySet *set, int64 needed)
{
	int64		want;

	if (set->count + needed <= set->capacity)
		return;
	summary_set_compact(set);
	if (set->count + needed <= set->capacity && set->count <= set->capacity / 2)
		return;
	want = Max(set->capacity * 2, set->count + needed);
	if (want > (int64) (MaxAllocHugeSize / sizeof(CustomerSummary)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct customer summaries to fit a model")));
	set->items = repalloc_huge(set->items, want * sizeof(CustomerSummary));
	set->capacity = want;
}

void
summary_set_add(SummarySet *set, double frequency, double recency, double t, double weight)
{
	CustomerSummary *item;

	/* consecutive equal summaries, common in sorted input, merge at once */
	if (set->count > 0)
	{
		item = &set->items[set->count - 1];
		if (item->frequency == frequency && item->recency == recency && item->t == t)
		{
			item->weight = add_weights(item->weight, weight);
			return;
		}
	}
	summary_set_reserve(set, 1);
	item = &set->items[set->count++];
	item->frequency = frequency;
	item->recency = recency;
	item->t = t;
	item->weight = weight;
	set->compact = false;
}

void
summary_set_add_all(SummarySet *set, const SummarySet *other)
{
	if (other->count == 0)
		return;
	summary_set_reserve(set, other->count);
	memcpy(set->items + set->count, other->items, other->count * sizeof(CustomerSummary));
	set->count += other->count;
	set->compact = false;
}

double
summary_set_total_weight(const SummarySet *set)
{
	double		total = 0;

	for (int64 i = 0; i < set->count; i++)
		total = add_weights(total, set->items[i].weight);
	return total;
}

void
summary_set_serialize(StringInfo buf, SummarySet *set)
{
	summary_set_compact(set);
	pq_sendint64(buf, set->count);
	for (int64 i = 0; i < set->count; i++)
	{
		pq_sendfloat8(buf, set->items[i].frequency);
		pq_sendfloat8(buf, set->items[i].recency);
		pq_sendfloat8(buf, set->items[i].t);
		pq_sendfloat8(buf, set->items[i].weight);
	}
}

void
summary_set_deserialize(StringInfo buf, SummarySet *set, MemoryContext cxt)
{
	int64		count = pq_getmsgint64(buf);

	if (count < 0 || count > (buf->len - buf->cursor) / (4 * (int64) sizeof(double)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid customer summary count %lld in aggregate state",
						(long long) count)));
	set->capacity = Max(count, SUMMARY_SET_INITIAL_CAPACITY);
	set->items = MemoryContextAllocHuge(cxt, set->capacity * sizeof(CustomerSummary));
	set->count = count;
	set->compact = false;
	for (int64 i = 0; i < count; i++)
	{
		set->items[i].frequency = pq_getmsgfloat8(buf);
		set->items[i].recency = pq_getmsgfloat8(buf);
		set->items[i].t = pq_getmsgfloat8(buf);
		set->items[i].weight = pq_getmsgfloat8(buf);
		if (!summary_is_valid(&set->items[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid customer summary in aggregate state"),
					 errdetail("Frequency, recency, t and weight are finite and not negative, and the weight is positive.")));
	}
}
