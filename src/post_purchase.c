/*
 * post_purchase.c
 *	  Module entry point and helpers shared by the aggregates.
 */
#include "postgres.h"

#include <gsl/gsl_errno.h>

#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/guc.h"

#include "aggregate.h"
#include "progress.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/* settings first: reserving the prefix drops the values of undefined ones */
	post_purchase_worker_init();
	/* the progress setting, and its shared memory when preloaded */
	post_purchase_progress_init();

	/* keep typos in post_purchase.* settings from passing silently */
	MarkGUCPrefixReserved("post_purchase");

	/*
	 * GSL's default error handler aborts the process, which would take a
	 * backend down; we check the status GSL returns instead.
	 */
	gsl_set_error_handler_off();
}

/* Build the composite a final function returns, from its declared type. */
Datum
form_result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc;
	HeapTuple	tuple;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	tuple = heap_form_tuple(tupdesc, values, nulls);
	return HeapTupleGetDatum(tuple);
}

/*
 * The same, with the descriptor kept in *cache, which lives as long as the
 * call site (in fn_mcxt): for a final function called once per group.
 */
Datum
form_result_row_cached(FunctionCallInfo fcinfo, TupleDesc *cache, Datum *values, bool *nulls)
{
	if (*cache == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		TupleDesc	tupdesc;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		*cache = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
	}
	return HeapTupleGetDatum(heap_form_tuple(*cache, values, nulls));
}

bytea *
finish_serialized_state(StringInfo buf)
{
	return pq_endtypsend(buf);
}

void
start_deserializing_state(StringInfo buf, bytea *state)
{
	buf->data = VARDATA_ANY(state);
	buf->len = VARSIZE_ANY_EXHDR(state);
	buf->maxlen = buf->len;
	buf->cursor = 0;
}

/* A state with bytes left over was not written by our serialize function. */
void
finish_deserializing_state(StringInfo buf)
{
	if (buf->cursor != buf->len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid aggregate state: %d trailing bytes", buf->len - buf->cursor)));
}
