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

/*
 * The fast-path part of a sum, in units of 1e-8.  Without a 128-bit integer
 * type every amount takes the exact numeric path; the field keeps its size
 * so that flat aggregate states have one layout.
 */
#ifdef HAVE_INT128
typedef int128 AmountFixed;
#else
typedef struct AmountFixed
{
	int64		unused[2];
} AmountFixed;
#endif

typedef struct AmountSum
{
	AmountFixed fixed;			/* sum of the fast-path amounts */
	Numeric		overflow;		/* sum of the other amounts, or NULL */
	int32		dscale;			/* largest display scale seen */
} AmountSum;

extern void amount_sum_init(AmountSum *sum);

/*
 * The parts for a state that keeps its overflow numeric itself (a flat
 * aggregate state, src/state_type.h): add to the fixed part and the scale,
 * false when the amount or sum does not fit there, which the caller then adds
 * to its numeric exactly.
 */
extern void amount_fixed_zero(AmountFixed *fixed);
extern bool amount_fixed_add(AmountFixed *fixed, int32 *dscale, Datum amount);
extern bool amount_fixed_add_fixed(AmountFixed *fixed, const AmountFixed *other);
extern Numeric amount_fixed_numeric(const AmountFixed *fixed);

extern void amount_sum_add(AmountSum *sum, MemoryContext cxt, Datum amount);
extern void amount_sum_add_sum(AmountSum *sum, MemoryContext cxt, const AmountSum *other);
extern Numeric amount_sum_value(const AmountSum *sum);
extern void amount_sum_serialize(StringInfo buf, const AmountSum *sum);
extern void amount_sum_deserialize(StringInfo buf, AmountSum *sum, MemoryContext cxt);

#endif							/* POST_PURCHASE_AMOUNT_H */
