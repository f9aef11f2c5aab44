/*
 * nps.c
 *	  Net Promoter Score: the nps and nps_summary aggregates.
 *
 * NPS is the percentage of promoters (scores 9-10) minus the percentage of
 * detractors (0-6).  The state is three counters, so the transition costs
 * about what count() does and the aggregate parallelizes trivially.
 */
#include "postgres.h"

#include <math.h>

#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "aggregate.h"
#include "state_type.h"

#define NPS_MIN_SCORE		0
#define NPS_MAX_SCORE		10
#define NPS_MIN_PROMOTER	9
#define NPS_MAX_DETRACTOR	6
/* two-sided 95% normal quantile, the margin of error's customary z */
#define NPS_Z_95			1.96

typedef struct NpsState
{
	int64		promoters;
	int64		passives;
	int64		detractors;
} NpsState;

PG_FUNCTION_INFO_V1(nps_accum);
PG_FUNCTION_INFO_V1(nps_combine);
PG_FUNCTION_INFO_V1(nps_serialize);
PG_FUNCTION_INFO_V1(nps_deserialize);
PG_FUNCTION_INFO_V1(nps_final);
PG_FUNCTION_INFO_V1(nps_summary_final);
PG_FUNCTION_INFO_V1(nps_state_in);
PG_FUNCTION_INFO_V1(nps_state_out);
PG_FUNCTION_INFO_V1(nps_state_recv);
PG_FUNCTION_INFO_V1(nps_state_send);
PG_FUNCTION_INFO_V1(nps_state_accum);
PG_FUNCTION_INFO_V1(nps_state_combine);
PG_FUNCTION_INFO_V1(nps_state_final);
PG_FUNCTION_INFO_V1(nps_summary_state_final);

/*
 * The state as a value of the type nps_state (state_type.h): the counters
 * in a flat varlena, updated in place by the transition.  nps_accum and the
 * other functions on "internal" serve the aggregates of version 1.0.
 */
typedef struct NpsStateDatum
{
	int32		vl_len_;		/* varlena header */
	NpsState	counts;
} NpsStateDatum;

static void nps_count(NpsState *state, int32 score);
static void nps_add(NpsState *left, const NpsState *right);
static void nps_read(StringInfo buf, NpsState *state);
static Datum nps_value_of(const NpsState *state);
static Datum nps_summary_of(FunctionCallInfo fcinfo, const NpsState *state);

static NpsState *
nps_state_new(MemoryContext cxt)
{
	return (NpsState *) MemoryContextAllocZero(cxt, sizeof(NpsState));
}

Datum
nps_accum(PG_FUNCTION_ARGS)
{
	NpsState   *state;
	int32		score;

	/* this runs once per answer: check the call context only once per group */
	if (PG_ARGISNULL(0))
		state = nps_state_new(aggregate_context(fcinfo, "nps_accum"));
	else
		state = (NpsState *) PG_GETARG_POINTER(0);

	/* like every SQL aggregate, ignore NULL inputs */
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(state);

	score = PG_GETARG_INT32(1);
	nps_count(state, score);
	PG_RETURN_POINTER(state);
}

static void
nps_count(NpsState *state, int32 score)
{
	if (score >= NPS_MIN_PROMOTER && score <= NPS_MAX_SCORE)
		state->promoters++;
	else if (score > NPS_MAX_DETRACTOR && score < NPS_MIN_PROMOTER)
		state->passives++;
	else if (score >= NPS_MIN_SCORE && score <= NPS_MAX_DETRACTOR)
		state->detractors++;
	else
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("NPS score %d is out of range", score),
				 errdetail("A Net Promoter Score answer is an integer from %d to %d.",
						   NPS_MIN_SCORE, NPS_MAX_SCORE)));
}

static void
add_count(int64 *total, int64 more)
{
	if (pg_add_s64_overflow(*total, more, total))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("NPS response count out of range")));
}

Datum
nps_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "nps_combine");
	NpsState   *left = PG_ARGISNULL(0) ? NULL : (NpsState *) PG_GETARG_POINTER(0);
	NpsState   *right = PG_ARGISNULL(1) ? NULL : (NpsState *) PG_GETARG_POINTER(1);

	/* a NULL pointer is no state: return SQL NULL, not a pointer to nothing */
	if (right == NULL)
	{
		if (left == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(left);
	}
	if (left == NULL)
		left = nps_state_new(cxt);
	nps_add(left, right);
	PG_RETURN_POINTER(left);
}

static void
nps_add(NpsState *left, const NpsState *right)
{
	add_count(&left->promoters, right->promoters);
	add_count(&left->passives, right->passives);
	add_count(&left->detractors, right->detractors);
}

static void
nps_write(StringInfo buf, const NpsState *state)
{
	pq_sendint64(buf, state->promoters);
	pq_sendint64(buf, state->passives);
	pq_sendint64(buf, state->detractors);
}

/* Counters from bytes that may not have come from nps_write: checked. */
static void
nps_read(StringInfo buf, NpsState *state)
{
	state->promoters = pq_getmsgint64(buf);
	state->passives = pq_getmsgint64(buf);
	state->detractors = pq_getmsgint64(buf);
	finish_deserializing_state(buf);
	if (state->promoters < 0 || state->passives < 0 || state->detractors < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid NPS aggregate state: negative count")));
}

Datum
nps_serialize(PG_FUNCTION_ARGS)
{
	NpsState   *state = (NpsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	nps_write(&buf, state);
	PG_RETURN_BYTEA_P(finish_serialized_state(&buf));
}

Datum
nps_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "nps_deserialize");
	NpsState   *state = nps_state_new(cxt);
	StringInfoData buf;

	start_deserializing_state(&buf, PG_GETARG_BYTEA_PP(0));
	nps_read(&buf, state);
	PG_RETURN_POINTER(state);
}

static int64
nps_responses(const NpsState *state)
{
	int64		n = state->promoters;

	add_count(&n, state->passives);
	add_count(&n, state->detractors);
	return n;
}

/*
 * 100 * (promoters - detractors) / responses as numeric, without the trailing
 * zeros of numeric division, so a BI tool shows 100 and 0 rather than
 * 100.0000000000000000.
 */
static Numeric
nps_value(const NpsState *state, int64 responses)
{
	Numeric		difference = numeric_sub_opt_error(int64_to_numeric(state->promoters),
												   int64_to_numeric(state->detractors), NULL);

	Numeric		nps = numeric_div_opt_error(numeric_mul_opt_error(difference, int64_to_numeric(100), NULL),
											int64_to_numeric(responses), NULL);

	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(nps)));
}

/*
 * The 95% margin of error of NPS, in points: NPS is the mean of a variable
 * that is +1 for promoters, -1 for detractors and 0 otherwise, whose variance
 * is P + D - (P - D)^2 for the shares P and D.
 */
static Numeric
nps_margin_of_error(const NpsState *state, int64 responses)
{
	double		n = (double) responses;
	double		p = state->promoters / n;
	double		d = state->detractors / n;
	double		variance = Max(p + d - (p - d) * (p - d), 0.0);
	double		margin = NPS_Z_95 * 100.0 * sqrt(variance / n);

	return DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(margin)));
}

/* nps(): NULL when there is no answer (state NULL or empty) */
static Datum
nps_value_of(const NpsState *state)
{
	return NumericGetDatum(nps_value(state, nps_responses(state)));
}

Datum
nps_final(PG_FUNCTION_ARGS)
{
	NpsState   *state = PG_ARGISNULL(0) ? NULL : (NpsState *) PG_GETARG_POINTER(0);

	/* like avg(), no answers means no score */
	if (state == NULL || nps_responses(state) == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(nps_value_of(state));
}

Datum
nps_summary_final(PG_FUNCTION_ARGS)
{
	NpsState	empty = {0, 0, 0};

	PG_RETURN_DATUM(nps_summary_of(fcinfo, PG_ARGISNULL(0) ? &empty : (NpsState *) PG_GETARG_POINTER(0)));
}

static Datum
nps_summary_of(FunctionCallInfo fcinfo, const NpsState *state)
{
	int64		responses = nps_responses(state);
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	values[0] = Int64GetDatum(responses);
	values[1] = Int64GetDatum(state->promoters);
	values[2] = Int64GetDatum(state->passives);
	values[3] = Int64GetDatum(state->detractors);
	if (responses > 0)
	{
		values[4] = NumericGetDatum(nps_value(state, responses));
		values[5] = NumericGetDatum(nps_margin_of_error(state, responses));
	}
	else
		nulls[4] = nulls[5] = true;
	return form_result_row(fcinfo, values, nulls);
}

/* nps_state: the type */

static NpsStateDatum *
nps_datum_new(void)
{
	NpsStateDatum *state = palloc0(sizeof(NpsStateDatum));

	SET_VARSIZE(state, sizeof(NpsStateDatum));
	return state;
}

static NpsStateDatum *
nps_datum_from_bytes(StringInfo buf)
{
	NpsStateDatum *state = nps_datum_new();

	nps_read(buf, &state->counts);
	return state;
}

Datum
nps_state_in(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	state_text_to_bytes(PG_GETARG_CSTRING(0), &buf, "nps_state");
	PG_RETURN_POINTER(nps_datum_from_bytes(&buf));
}

Datum
nps_state_recv(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(nps_datum_from_bytes((StringInfo) PG_GETARG_POINTER(0)));
}

Datum
nps_state_send(PG_FUNCTION_ARGS)
{
	NpsStateDatum *state = (NpsStateDatum *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0));
	StringInfoData buf;

	pq_begintypsend(&buf);
	nps_write(&buf, &state->counts);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
nps_state_out(PG_FUNCTION_ARGS)
{
	NpsStateDatum *state = (NpsStateDatum *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0));
	StringInfoData buf;

	initStringInfo(&buf);
	nps_write(&buf, &state->counts);
	PG_RETURN_CSTRING(state_bytes_to_text(buf.data, buf.len));
}

/*
 * The state in argument 0, to update: the aggregate's own value in place,
 * else a copy (a caller's value must not change); a group's first row
 * starts one, which the executor copies into the aggregate's memory.
 */
static NpsStateDatum *
nps_datum_for_update(FunctionCallInfo fcinfo)
{
	NpsStateDatum *state;

	if (PG_ARGISNULL(0))
		return nps_datum_new();
	if (flat_state_updatable(fcinfo))
		return (NpsStateDatum *) PG_GETARG_POINTER(0);
	state = (NpsStateDatum *) PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(0));
	Assert(VARSIZE(state) == sizeof(NpsStateDatum));
	return state;
}

Datum
nps_state_accum(PG_FUNCTION_ARGS)
{
	NpsStateDatum *state = nps_datum_for_update(fcinfo);

	/* like every SQL aggregate, ignore NULL inputs */
	if (!PG_ARGISNULL(1))
		nps_count(&state->counts, PG_GETARG_INT32(1));
	PG_RETURN_POINTER(state);
}

Datum
nps_state_combine(PG_FUNCTION_ARGS)
{
	NpsStateDatum *state;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	state = nps_datum_for_update(fcinfo);
	nps_add(&state->counts, &((NpsStateDatum *) PG_DETOAST_DATUM(PG_GETARG_DATUM(1)))->counts);
	PG_RETURN_POINTER(state);
}

Datum
nps_state_final(PG_FUNCTION_ARGS)
{
	NpsStateDatum *state;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (NpsStateDatum *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0));
	/* like avg(), no answers means no score */
	if (nps_responses(&state->counts) == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(nps_value_of(&state->counts));
}

Datum
nps_summary_state_final(PG_FUNCTION_ARGS)
{
	NpsState	empty = {0, 0, 0};

	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(nps_summary_of(fcinfo, &empty));
	PG_RETURN_DATUM(nps_summary_of(fcinfo, &((NpsStateDatum *) PG_DETOAST_DATUM(PG_GETARG_DATUM(0)))->counts));
}
