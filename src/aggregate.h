/*
 * aggregate.h
 *	  Helpers every aggregate support function of the extension shares.
 */
#ifndef POST_PURCHASE_AGGREGATE_H
#define POST_PURCHASE_AGGREGATE_H

#include "fmgr.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"

/*
 * The memory context an aggregate's state lives in.  Support functions that
 * take "internal" can only be reached through an aggregate, but say so
 * plainly if someone manages to call one otherwise.
 */
static inline MemoryContext
aggregate_context(FunctionCallInfo fcinfo, const char *function)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", function);
	return cxt;
}

extern Datum form_result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls);
/* the same, its descriptor kept in *cache, a slot of the call site's fn_extra */
extern Datum form_result_row_cached(FunctionCallInfo fcinfo, TupleDesc *cache, Datum *values, bool *nulls);
extern bytea *finish_serialized_state(StringInfo buf);
extern void start_deserializing_state(StringInfo buf, bytea *state);
extern void finish_deserializing_state(StringInfo buf);

#endif							/* POST_PURCHASE_AGGREGATE_H */
