/*
 * amount.h
 *	  Exact sums of numeric amounts, fast enough for per-order aggregates.
 *
 * SQL's sum(numeric) allocates a new numeric for every row.  Shop amounts
 * nearly always have at most 8 decimal places and fit easily in 128 bits, so
 * AmountSum adds them as fixed-point integers and keeps a numeric only for
 * the rare value that does not fit.  The result is exact either way.
 */
#ifndef POST_PURCHASE_AMOUNT_H
#define POST_PURCHASE_AMOUNT_H

#include "lib/stringinfo.h"
#include "utils/numeric.h"

typedef struct AmountSum
{
#ifdef HAVE_INT128
	int128		fixed;			/* sum of the fast-path amounts, in 1e-8 units */
#endif
	Numeric		overflow;		/* sum of the other amounts, or NULL */
	int32		dscale;			/* largest display scale seen */
} AmountSum;

extern void amount_sum_init(AmountSum *sum);
extern void amount_sum_add(AmountSum *sum, MemoryContext cxt, Datum amount);
extern void amount_sum_add_sum(AmountSum *sum, MemoryContext cxt, const AmountSum *other);
extern Numeric amount_sum_value(const AmountSum *sum);
extern void amount_sum_serialize(StringInfo buf, const AmountSum *sum);
extern void amount_sum_deserialize(StringInfo buf, AmountSum *sum, MemoryContext cxt);

#endif							/* POST_PURCHASE_AMOUNT_H */
