/*
 * rfm_segment.c
 *	  The standard named RFM segments, from recency and frequency scores.
 *
 * Scores are quintiles from 1 (worst) to 5 (best); recency is scored so that
 * 5 is the most recent.  The map is the R x F grid used across the RFM
 * literature and marketing tools; see README.md for the picture.
 */
#include "postgres.h"

#include "fmgr.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#define RFM_MIN_SCORE 1
#define RFM_MAX_SCORE 5

PG_FUNCTION_INFO_V1(rfm_segment);

/* rows: recency score 1..5; columns: frequency score 1..5 */
static const char *const rfm_segment_grid[RFM_MAX_SCORE][RFM_MAX_SCORE] = {
	/* R=1 */ {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
	/* R=2 */ {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
	/* R=3 */ {"About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"},
	/* R=4 */ {"Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"},
	/* R=5 */ {"New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"},
};

static void
check_score(const char *name, int32 score)
{
	if (score < RFM_MIN_SCORE || score > RFM_MAX_SCORE)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("RFM %s score %d is out of range", name, score),
				 errdetail("RFM scores are quintiles from %d to %d.", RFM_MIN_SCORE, RFM_MAX_SCORE)));
}

Datum
rfm_segment(PG_FUNCTION_ARGS)
{
	int32		r_score = PG_GETARG_INT32(0);
	int32		f_score = PG_GETARG_INT32(1);

	check_score("recency", r_score);
	check_score("frequency", f_score);
	PG_RETURN_TEXT_P(cstring_to_text(rfm_segment_grid[r_score - 1][f_score - 1]));
}

PG_FUNCTION_INFO_V1(rfm_score);

/*
 * rfm_score(value, cuts): the quintile score 1..5 of a value, given the four
 * cut points between the quintiles (ascending): 1 + the number of cuts below
 * the value.  Ties stay together: with many one-time buyers the lower cuts
 * are equal, and every one-time buyer scores 1.
 */
Datum
rfm_score(PG_FUNCTION_ARGS)
{
	float8		value = PG_GETARG_FLOAT8(0);
	ArrayType  *cuts = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elements;
	bool	   *nulls;
	int			count;
	int32		score = 1;

	deconstruct_array(cuts, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elements, &nulls, &count);
	if (count != RFM_MAX_SCORE - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rfm_score needs %d cut points, got %d", RFM_MAX_SCORE - 1, count)));
	for (int i = 0; i < count; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("rfm_score cut points must not be null")));
		if (DatumGetFloat8(elements[i]) < value)
			score++;
	}
	PG_RETURN_INT32(score);
}
