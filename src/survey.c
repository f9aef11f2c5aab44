/*
 * survey.c
 *	  Customer satisfaction (CSAT) and customer effort (CES) aggregates:
 *	  csat, csat_summary and ces_summary.
 *
 * Both metrics are read from answers on a small integer scale, so the state
 * is the histogram of the answers: the count of each answer, 1 to the scale.
 * Every number they report (counts, shares, exact means, the variance behind
 * the interval of the mean) is a function of that histogram, combining two
 * states is adding counts, and the serialized state is a few integers.
 *
 * The conventions (README, "CSAT and customer effort"):
 *	- a scale is the number of answer points, 3, 5, 7 or 10, answered 1 to
 *	  the scale (a 0-10 recommendation question is NPS: use nps());
 *	- CSAT "satisfied" is the top-2 box: 4-5 of 5, 6-7 of 7, 9-10 of 10; on a
 *	  3-point scale only the top box, 3, since its top two would count the
 *	  neutral midpoint as satisfied;
 *	- CES is asked the CES 2.0 way round, agreement that "the company made it
 *	  easy", so higher is easier, and a "low effort" answer is one above the
 *	  midpoint: 3 of 3, 4-5 of 5, 5-7 of 7, 6-10 of 10;
 *	- the CSAT interval is the 95% Wilson score interval of the satisfied
 *	  share, in percent; the CES interval is the 95% Student t interval of
 *	  the mean, with n - 1 degrees of freedom, NULL for one answer.
 */
#include "postgres.h"

#include <math.h>

#include <gsl/gsl_cdf.h>

#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "aggregate.h"
#include "state_type.h"

/* the largest scale: the histogram's size */
#define SURVEY_MAX_SCALE	10
#define CSAT_DEFAULT_SCALE	5
#define CES_DEFAULT_SCALE	7
/* the two-sided 95% normal quantile, Phi^-1(0.975), to double precision */
#define SURVEY_Z_95			1.959963984540054

typedef enum SurveyMetric
{
	SURVEY_CSAT,
	SURVEY_CES
} SurveyMetric;

static const char *const survey_metric_name[] = {"CSAT", "CES"};

typedef struct SurveyState
{
	/* the group's scale; 0 until the first answer, and only then */
	int32		scale;
	/* counts[k - 1]: answers of k, for k = 1 .. scale */
	int64		counts[SURVEY_MAX_SCALE];
} SurveyState;

PG_FUNCTION_INFO_V1(csat_accum);
PG_FUNCTION_INFO_V1(ces_accum);
PG_FUNCTION_INFO_V1(csat_combine);
PG_FUNCTION_INFO_V1(ces_combine);
PG_FUNCTION_INFO_V1(survey_serialize);
PG_FUNCTION_INFO_V1(survey_deserialize);
PG_FUNCTION_INFO_V1(csat_final);
PG_FUNCTION_INFO_V1(csat_summary_final);
PG_FUNCTION_INFO_V1(ces_summary_final);
PG_FUNCTION_INFO_V1(survey_state_in);
PG_FUNCTION_INFO_V1(survey_state_out);
PG_FUNCTION_INFO_V1(survey_state_recv);
PG_FUNCTION_INFO_V1(survey_state_send);
PG_FUNCTION_INFO_V1(csat_state_accum);
PG_FUNCTION_INFO_V1(ces_state_accum);
PG_FUNCTION_INFO_V1(csat_state_combine);
PG_FUNCTION_INFO_V1(ces_state_combine);
PG_FUNCTION_INFO_V1(csat_state_final);
PG_FUNCTION_INFO_V1(csat_summary_state_final);
PG_FUNCTION_INFO_V1(ces_summary_state_final);

/*
 * The state as a value of the type survey_state (state_type.h): the
 * histogram in a flat varlena, updated in place by the transition.  The
 * functions on "internal" serve the aggregates of version 1.0.
 */
typedef struct SurveyStateDatum
{
	int32		vl_len_;		/* varlena header */
	SurveyState histogram;
} SurveyStateDatum;

static void survey_add_answer(FunctionCallInfo fcinfo, SurveyState *state, SurveyMetric metric,
							  int32 default_scale);
static void survey_merge(SurveyState *left, const SurveyState *right, SurveyMetric metric);
static void survey_read(StringInfo buf, SurveyState *state);
static void survey_write(StringInfo buf, const SurveyState *state);
static Datum csat_of(const SurveyState *state);
static Datum csat_summary_of(FunctionCallInfo fcinfo, const SurveyState *state);
static Datum ces_summary_of(FunctionCallInfo fcinfo, const SurveyState *state);

static bool
scale_supported(int32 scale)
{
	return scale == 3 || scale == 5 || scale == 7 || scale == 10;
}

/* The lowest answer that counts: satisfied for CSAT, low effort for CES. */
static int32
favourable_from(SurveyMetric metric, int32 scale)
{
	if (metric == SURVEY_CSAT)
		return scale == 3 ? 3 : scale - 1;
	/* above the midpoint (scale + 1) / 2, rounded down for an even scale */
	return (scale + 1) / 2 + 1;
}

static void
check_scale(SurveyMetric metric, int32 scale)
{
	if (!scale_supported(scale))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s scale %d is not supported", survey_metric_name[metric], scale),
				 errdetail("The scale is the number of answer points, answered from 1: 3, 5, 7 or 10."),
				 metric == SURVEY_CSAT && scale == 11 ?
				 errhint("Answers from 0 to 10 to \"how likely are you to recommend\" are NPS: use nps().") : 0));
}

static void
scales_differ(SurveyMetric metric, int32 scale, int32 other)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s answers on different scales in one group", survey_metric_name[metric]),
			 errdetail("The group has answers on a %d-point and on a %d-point scale.",
					   Min(scale, other), Max(scale, other)),
			 errhint("Group by the scale, or compute the metric once per scale.")));
}

static void
add_count(int64 *total, int64 more)
{
	if (pg_add_s64_overflow(*total, more, total))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("survey response count out of range")));
}

/*
 * One answer: (state, score) with the metric's default scale, or
 * (state, score, scale).
 */
static Datum
survey_accum(FunctionCallInfo fcinfo, SurveyMetric metric, int32 default_scale,
			 const char *function)
{
	SurveyState *state;

	/* this runs once per answer: check the call context only once per group */
	if (PG_ARGISNULL(0))
		state = (SurveyState *) MemoryContextAllocZero(aggregate_context(fcinfo, function),
														sizeof(SurveyState));
	else
		state = (SurveyState *) PG_GETARG_POINTER(0);
	survey_add_answer(fcinfo, state, metric, default_scale);
	PG_RETURN_POINTER(state);
}

/* Count the answer in arguments 1 and (if given) 2. */
static void
survey_add_answer(FunctionCallInfo fcinfo, SurveyState *state, SurveyMetric metric,
				  int32 default_scale)
{
	int32		scale = default_scale;
	int32		score;

	/*
	 * The scale is checked on every row that gives one, answered or not, so
	 * that a wrong scale is found whatever the answers are.
	 */
	if (PG_NARGS() > 2)
	{
		if (PG_ARGISNULL(2))
		{
			/* a row without an answer needs no scale */
			if (PG_ARGISNULL(1))
				return;
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s scale must not be null", survey_metric_name[metric])));
		}
		scale = PG_GETARG_INT32(2);
		check_scale(metric, scale);
	}

	/* like every SQL aggregate, ignore NULL inputs */
	if (PG_ARGISNULL(1))
		return;

	score = PG_GETARG_INT32(1);
	if (score < 1 || score > scale)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s score %d is out of range for a %d-point scale",
						survey_metric_name[metric], score, scale),
				 errdetail("An answer on a %d-point scale is an integer from 1 to %d.",
						   scale, scale)));
	if (state->scale == 0)
		state->scale = scale;
	else if (state->scale != scale)
		scales_differ(metric, state->scale, scale);
	/* one counter per row cannot pass INT64_MAX, but a combined one could */
	add_count(&state->counts[score - 1], 1);
}

Datum
csat_accum(PG_FUNCTION_ARGS)
{
	return survey_accum(fcinfo, SURVEY_CSAT, CSAT_DEFAULT_SCALE, "csat_accum");
}

Datum
ces_accum(PG_FUNCTION_ARGS)
{
	return survey_accum(fcinfo, SURVEY_CES, CES_DEFAULT_SCALE, "ces_accum");
}

static Datum
survey_combine(FunctionCallInfo fcinfo, SurveyMetric metric, const char *function)
{
	MemoryContext cxt = aggregate_context(fcinfo, function);
	SurveyState *left = PG_ARGISNULL(0) ? NULL : (SurveyState *) PG_GETARG_POINTER(0);
	SurveyState *right = PG_ARGISNULL(1) ? NULL : (SurveyState *) PG_GETARG_POINTER(1);

	/* a NULL pointer is no state: return SQL NULL, not a pointer to nothing */
	if (right == NULL)
	{
		if (left == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(left);
	}

	/*
	 * The result must live in the aggregate context: copy the right state
	 * rather than return it, since it may belong to a shorter-lived one.
	 */
	if (left == NULL)
	{
		left = (SurveyState *) MemoryContextAlloc(cxt, sizeof(SurveyState));
		memcpy(left, right, sizeof(SurveyState));
		PG_RETURN_POINTER(left);
	}
	survey_merge(left, right, metric);
	PG_RETURN_POINTER(left);
}

static void
survey_merge(SurveyState *left, const SurveyState *right, SurveyMetric metric)
{
	/* a state that saw no answer takes the other's scale */
	if (right->scale == 0)
		return;
	if (left->scale == 0)
		left->scale = right->scale;
	else if (left->scale != right->scale)
		scales_differ(metric, left->scale, right->scale);
	for (int k = 0; k < right->scale; k++)
		add_count(&left->counts[k], right->counts[k]);
}

Datum
csat_combine(PG_FUNCTION_ARGS)
{
	return survey_combine(fcinfo, SURVEY_CSAT, "csat_combine");
}

Datum
ces_combine(PG_FUNCTION_ARGS)
{
	return survey_combine(fcinfo, SURVEY_CES, "ces_combine");
}

/* The scale, then the count of each answer of the scale. */
Datum
survey_serialize(PG_FUNCTION_ARGS)
{
	SurveyState *state = (SurveyState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	survey_write(&buf, state);
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

static void
survey_write(StringInfo buf, const SurveyState *state)
{
	pq_sendint32(buf, state->scale);
	for (int k = 0; k < state->scale; k++)
		pq_sendint64(buf, state->counts[k]);
}

/*
 * A state from bytes, which may not have come from survey_serialize: the
 * code after this trusts the scale to index the histogram and the counts to
 * be non-negative, so check both.
 */
Datum
survey_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "survey_deserialize");
	SurveyState *state = (SurveyState *) MemoryContextAllocZero(cxt, sizeof(SurveyState));
	StringInfoData buf;

	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	survey_read(&buf, state);
	PG_RETURN_POINTER(state);
}

static void
survey_read(StringInfo buf, SurveyState *state)
{
	bool		answered = false;
	int			k;

	memset(state, 0, sizeof(SurveyState));
	state->scale = pq_getmsgint(buf, 4);
	if (state->scale != 0 && !scale_supported(state->scale))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid survey aggregate state: scale %d", state->scale)));
	for (k = 0; k < state->scale; k++)
	{
		state->counts[k] = pq_getmsgint64(buf);
		if (state->counts[k] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid survey aggregate state: negative count")));
		answered |= state->counts[k] > 0;
	}
	finish_deserializing_state(buf);
	/* the scale is set by the first answer: a scale without answers is forged */
	if (state->scale != 0 && !answered)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid survey aggregate state: a scale without answers")));
}

/* What the final functions report, from the histogram. */
typedef struct SurveyTotals
{
	int64		responses;
	int64		favourable;		/* satisfied (CSAT) or low effort (CES) */
	Numeric		sum;			/* of the answers, exactly */
} SurveyTotals;

static SurveyTotals
survey_totals(const SurveyState *state, SurveyMetric metric)
{
	SurveyTotals totals = {0, 0, int64_to_numeric(0)};
	int32		from = state->scale > 0 ? favourable_from(metric, state->scale) : 1;
	int			k;

	for (k = 1; k <= state->scale; k++)
	{
		int64		count = state->counts[k - 1];

		add_count(&totals.responses, count);
		if (k >= from)
			add_count(&totals.favourable, count);
		/* k * count can pass INT64_MAX: sum in numeric */
		totals.sum = numeric_add_opt_error(totals.sum,
										   numeric_mul_opt_error(int64_to_numeric(count),
																 int64_to_numeric(k), NULL),
										   NULL);
	}
	return totals;
}

/* a numeric without the trailing zeros of numeric division (100, not 100.0000) */
static Numeric
trimmed(Numeric value)
{
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(value)));
}

/* 100 * part / whole, exactly */
static Numeric
percent_of(int64 part, int64 whole)
{
	return trimmed(numeric_div_opt_error(numeric_mul_opt_error(int64_to_numeric(part),
															   int64_to_numeric(100), NULL),
										 int64_to_numeric(whole), NULL));
}

static Numeric
mean_of(const SurveyTotals *totals)
{
	return trimmed(numeric_div_opt_error(totals->sum, int64_to_numeric(totals->responses), NULL));
}

static Numeric
float8_to_numeric(double value)
{
	return DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(value)));
}

/*
 * The 95% Wilson score interval of the satisfied share, in percent.  Unlike
 * the normal (Wald) interval it stays within [0, 100] and is not empty when
 * every answer is satisfied or none is, which small groups (one agent's week)
 * often are; it is defined for a single answer.
 */
static void
wilson_interval(int64 satisfied, int64 responses, double *low, double *high)
{
	double		n = (double) responses;
	double		p = satisfied / n;
	double		z2 = SURVEY_Z_95 * SURVEY_Z_95;
	double		denominator = 1.0 + z2 / n;
	double		centre = (p + z2 / (2.0 * n)) / denominator;
	double		half = SURVEY_Z_95 / denominator * sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n));

	/* rounding must not put a bound a hair outside the share's range */
	*low = 100.0 * Max(centre - half, 0.0);
	*high = 100.0 * Min(centre + half, 1.0);
}

/* csat() of a state with answers */
static Datum
csat_of(const SurveyState *state)
{
	SurveyTotals totals = survey_totals(state, SURVEY_CSAT);

	return NumericGetDatum(percent_of(totals.favourable, totals.responses));
}

Datum
csat_final(PG_FUNCTION_ARGS)
{
	SurveyState *state = PG_ARGISNULL(0) ? NULL : (SurveyState *) PG_GETARG_POINTER(0);

	/* like avg(), no answers means no score */
	if (state == NULL || state->scale == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(csat_of(state));
}

Datum
csat_summary_final(PG_FUNCTION_ARGS)
{
	SurveyState empty = {0};

	PG_RETURN_DATUM(csat_summary_of(fcinfo, PG_ARGISNULL(0) ? &empty : (SurveyState *) PG_GETARG_POINTER(0)));
}

static Datum
csat_summary_of(FunctionCallInfo fcinfo, const SurveyState *state)
{
	SurveyTotals totals = survey_totals(state, SURVEY_CSAT);
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	values[0] = Int64GetDatum(totals.responses);
	values[1] = Int64GetDatum(totals.favourable);
	if (totals.responses > 0)
	{
		double		low,
					high;

		wilson_interval(totals.favourable, totals.responses, &low, &high);
		values[2] = NumericGetDatum(percent_of(totals.favourable, totals.responses));
		values[3] = NumericGetDatum(mean_of(&totals));
		values[4] = NumericGetDatum(float8_to_numeric(low));
		values[5] = NumericGetDatum(float8_to_numeric(high));
	}
	else
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = true;
	return form_result_row(fcinfo, values, nulls);
}

/*
 * The 95% interval of the mean answer: mean -/+ t(0.975, n - 1) * s / sqrt(n),
 * s the sample standard deviation.  Student's t rather than the normal 1.96
 * because CES is often read per agent or per week over a few dozen answers or
 * fewer, where 1.96 would claim more than the data holds (t is 2.78 for five
 * answers); for large n the two agree.  The bounds are not clipped to the
 * scale: an interval wider than the scale says the sample is too small.
 */
static void
mean_interval(const SurveyState *state, int64 responses, double *low, double *high)
{
	double		n = (double) responses;
	double		mean = 0.0;
	double		squares = 0.0;
	double		half;
	int			k;

	for (k = 1; k <= state->scale; k++)
		mean += k * ((double) state->counts[k - 1] / n);
	/* centred, from the histogram: no cancellation of large sums */
	for (k = 1; k <= state->scale; k++)
		squares += (double) state->counts[k - 1] * (k - mean) * (k - mean);
	half = gsl_cdf_tdist_Pinv(0.975, n - 1.0) * sqrt(squares / (n - 1.0) / n);
	*low = mean - half;
	*high = mean + half;
}

Datum
ces_summary_final(PG_FUNCTION_ARGS)
{
	SurveyState empty = {0};

	PG_RETURN_DATUM(ces_summary_of(fcinfo, PG_ARGISNULL(0) ? &empty : (SurveyState *) PG_GETARG_POINTER(0)));
}

static Datum
ces_summary_of(FunctionCallInfo fcinfo, const SurveyState *state)
{
	SurveyTotals totals = survey_totals(state, SURVEY_CES);
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	values[0] = Int64GetDatum(totals.responses);
	values[1] = Int64GetDatum(totals.favourable);
	if (totals.responses > 0)
	{
		values[2] = NumericGetDatum(percent_of(totals.favourable, totals.responses));
		values[3] = NumericGetDatum(mean_of(&totals));
	}
	else
		nulls[2] = nulls[3] = true;
	/* one answer has no spread to estimate: no interval */
	if (totals.responses > 1)
	{
		double		low,
					high;

		mean_interval(state, totals.responses, &low, &high);
		values[4] = NumericGetDatum(float8_to_numeric(low));
		values[5] = NumericGetDatum(float8_to_numeric(high));
	}
	else
		nulls[4] = nulls[5] = true;
	return form_result_row(fcinfo, values, nulls);
}

/* survey_state: the type */

static SurveyStateDatum *
survey_datum_new(void)
{
	SurveyStateDatum *state = palloc0(sizeof(SurveyStateDatum));

	SET_VARSIZE(state, sizeof(SurveyStateDatum));
	return state;
}

static SurveyStateDatum *
survey_datum_from_bytes(StringInfo buf)
{
	SurveyStateDatum *state = survey_datum_new();

	survey_read(buf, &state->histogram);
	return state;
}

Datum
survey_state_in(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	state_text_to_bytes(PG_GETARG_CSTRING(0), &buf, "survey_state");
	PG_RETURN_POINTER(survey_datum_from_bytes(&buf));
}

Datum
survey_state_recv(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(survey_datum_from_bytes((StringInfo) PG_GETARG_POINTER(0)));
}

static const SurveyState *
survey_datum_arg(FunctionCallInfo fcinfo, int argno)
{
	return &((SurveyStateDatum *) PG_DETOAST_DATUM(PG_GETARG_DATUM(argno)))->histogram;
}

Datum
survey_state_send(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	survey_write(&buf, survey_datum_arg(fcinfo, 0));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
survey_state_out(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	survey_write(&buf, survey_datum_arg(fcinfo, 0));
	PG_RETURN_CSTRING(state_bytes_to_text(buf.data, buf.len));
}

/*
 * The state in argument 0, to update: the aggregate's own value in place,
 * else a copy (a caller's value must not change); a group's first row
 * starts one, which the executor copies into the aggregate's memory.
 */
static SurveyStateDatum *
survey_datum_for_update(FunctionCallInfo fcinfo)
{
	SurveyStateDatum *state;

	if (PG_ARGISNULL(0))
		return survey_datum_new();
	if (flat_state_updatable(fcinfo))
		return (SurveyStateDatum *) PG_GETARG_POINTER(0);
	state = (SurveyStateDatum *) PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(0));
	Assert(VARSIZE(state) == sizeof(SurveyStateDatum));
	return state;
}

Datum
csat_state_accum(PG_FUNCTION_ARGS)
{
	SurveyStateDatum *state = survey_datum_for_update(fcinfo);

	survey_add_answer(fcinfo, &state->histogram, SURVEY_CSAT, CSAT_DEFAULT_SCALE);
	PG_RETURN_POINTER(state);
}

Datum
ces_state_accum(PG_FUNCTION_ARGS)
{
	SurveyStateDatum *state = survey_datum_for_update(fcinfo);

	survey_add_answer(fcinfo, &state->histogram, SURVEY_CES, CES_DEFAULT_SCALE);
	PG_RETURN_POINTER(state);
}

static Datum
survey_state_combine(FunctionCallInfo fcinfo, SurveyMetric metric)
{
	SurveyStateDatum *state;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	state = survey_datum_for_update(fcinfo);
	survey_merge(&state->histogram, survey_datum_arg(fcinfo, 1), metric);
	PG_RETURN_POINTER(state);
}

Datum
csat_state_combine(PG_FUNCTION_ARGS)
{
	return survey_state_combine(fcinfo, SURVEY_CSAT);
}

Datum
ces_state_combine(PG_FUNCTION_ARGS)
{
	return survey_state_combine(fcinfo, SURVEY_CES);
}

Datum
csat_state_final(PG_FUNCTION_ARGS)
{
	const SurveyState *state;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = survey_datum_arg(fcinfo, 0);
	/* like avg(), no answers means no score */
	if (state->scale == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(csat_of(state));
}

Datum
csat_summary_state_final(PG_FUNCTION_ARGS)
{
	SurveyState empty = {0};

	PG_RETURN_DATUM(csat_summary_of(fcinfo, PG_ARGISNULL(0) ? &empty : survey_datum_arg(fcinfo, 0)));
}

Datum
ces_summary_state_final(PG_FUNCTION_ARGS)
{
	SurveyState empty = {0};

	PG_RETURN_DATUM(ces_summary_of(fcinfo, PG_ARGISNULL(0) ? &empty : survey_datum_arg(fcinfo, 0)));
}
