/*
 * state_type.h
 *	  Aggregate transition states as types of their own, so that a
 *	  distributed engine can ship a partial aggregate between nodes.
 *
 * What Citus requires (citus 13.2, src/backend/distributed/planner/
 * multi_logical_optimizer.c, AggregateEnabledCustom; and utils/
 * aggregate_utils.c): an aggregate that is not one of its built-in names is
 * split into worker_partial_agg() on each shard and coord_combine_agg() on
 * the coordinator only if it has a COMBINEFUNC and its transition type is
 * not a pseudo-type (pg_type.typtype <> 'p': "internal" is one).  The worker
 * runs our transition function with Citus' own aggregate call context, turns
 * the state into text with the transition type's output function, and the
 * coordinator reads it back with the type's input function and folds it in
 * with the combine function; the final function runs on the coordinator.
 * Otherwise every raw row goes to the coordinator, or with
 * citus.coordinator_aggregation_strategy = 'disabled' the query fails with
 * "unsupported aggregate function".  (Citus' master branch of March 2026
 * also accepts "internal" with SERIALFUNC/DESERIALFUNC, but no release
 * does.)  So every state type here has input/output functions (hex of the
 * binary form), and send/receive for binary transfer.
 *
 * PostgreSQL itself only passes a non-internal state between processes of a
 * parallel plan as a value of the type: no SERIALFUNC or DESERIALFUNC is
 * allowed, the state goes into the Partial Aggregate's output tuple as is.
 * A state therefore must be a flat value, or an expanded object that
 * flattens itself: a varlena holding a C pointer would reach the leader as
 * a pointer into another process.
 *
 * Two kinds of state, for speed (an "internal" state is fast because the
 * transition updates a struct in place; these do too):
 *
 * - flat states (nps, csat/ces, rfm_summary, purchase_cycle): a plain
 *   varlena holding the C struct, updated in place when the function runs
 *   as an aggregate's transition or combine step, as PostgreSQL's
 *   float8_accum does with its array; the aggregate owns that copy.  The
 *   counters of nps and the survey metrics are of fixed size, and their
 *   aggregates give an INITCOND (the empty state), so the executor makes
 *   each group's state in the aggregate's memory, with one allocation as
 *   before; without it, the first row's new state would be copied again.
 *   The growing states (rfm_summary, purchase_cycle) keep their purchase
 *   days in room at the end of the value, whose size counts the room, so
 *   that the executor's copy of it keeps the room; the rare transition
 *   that needs more returns a bigger value, which the executor copies into
 *   the aggregate's memory in place of the old (freeing that one: the old
 *   value is never freed or reallocated here).  Their time zone travels by
 *   name, resolved through a per-call-site cache (ZonedCallSite).  No
 *   expanded-object header sits in front of the struct: with 200,000
 *   groups that header's cache line per row had cost about 20% (test/bench/
 *   RESULTS_state_types.md).  The type's binary and text forms are not the
 *   struct but the forms the "internal" states serialized to, written and
 *   read by the same code, so the struct may change without changing them.
 *
 * - the model fits' states: an expanded object (utils/expandeddatum.h)
 *   wrapping the same C structs as before; transitions receive a
 *   read-write pointer and update in place.  Its flat form is the binary
 *   form the internal states serialized to.  The executor (and Citus) keep
 *   a returned read-write object without copying it only if its memory
 *   context is a child of the aggregate context; one such child holds
 *   every group's states (a context per group would cost a kilobyte per
 *   group), which is safe because a state's transition returns the very
 *   pointer it was given, so nothing ever deletes one group's object
 *   (DeleteExpandedObject would delete the shared context).  A fit is one
 *   group over many rows, where the header costs nothing measurable.
 */
#ifndef POST_PURCHASE_STATE_TYPE_H
#define POST_PURCHASE_STATE_TYPE_H

#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/expandeddatum.h"

#include "dayset.h"

/*
 * A growing state's kind: how its C struct reads and writes its flat form.
 * Its expanded objects' methods come first, so that an object's
 * eoh_methods says its kind.
 */
typedef struct AggStateKind
{
	ExpandedObjectMethods methods;	/* filled in by agg_state_kind_init */
	const char *name;			/* the SQL type, for messages */
	Size		size;			/* of the C struct */
	/* fill a zeroed struct as an empty state, allocating in cxt */
	void		(*init) (void *state, MemoryContext cxt);
	/* the binary form, appended to buf */
	void		(*write) (StringInfo buf, void *state);
	/* the struct from the binary form, checked, allocating in cxt */
	void		(*read) (StringInfo buf, void *state, MemoryContext cxt);
} AggStateKind;

/*
 * An expanded state: the header, then at once the kind's struct, so that a
 * transition touches the memory of one small allocation, as with an
 * "internal" state (a million groups do not fit in the CPU caches: every
 * extra cache line a row touches shows).
 */
typedef struct ExpandedAggState
{
	ExpandedObjectHeader hdr;
	/* the kind's struct follows, MAXALIGNed */
} ExpandedAggState;

#define EXPANDED_AGG_STATE_DATA(e) \
	((void *) ((char *) (e) + MAXALIGN(sizeof(ExpandedAggState))))

/* the methods of a kind's expanded objects, for its static definition */
#define AGG_STATE_METHODS {agg_state_get_flat_size, agg_state_flatten_into}
extern Size agg_state_get_flat_size(ExpandedObjectHeader *eohptr);
extern void agg_state_flatten_into(ExpandedObjectHeader *eohptr, void *result, Size allocated_size);

/* Whether the function runs as an aggregate's transition or combine step. */
extern bool in_aggregate(FunctionCallInfo fcinfo, MemoryContext *aggcxt);

/*
 * Whether argument 0, a flat state, is the aggregate's own transition value
 * that this call may update in place; remembered per call site, since a
 * transition runs once per row.  Inline: for a counter like nps's, a
 * function call per row cost a measurable share (test/bench/
 * RESULTS_state_types.md).
 */
extern const char flat_state_aggregate_call_site;
extern bool flat_state_updatable_first(FunctionCallInfo fcinfo);

static inline bool
flat_state_updatable(FunctionCallInfo fcinfo)
{
	if (likely(fcinfo->flinfo != NULL &&
			   fcinfo->flinfo->fn_extra == &flat_state_aggregate_call_site))
		return true;
	return flat_state_updatable_first(fcinfo);
}

/*
 * What the support functions of a flat state with a time zone keep per call
 * site (fn_extra): the zone argument's last resolution, the zone the last
 * state named, and a final function's row descriptor (form_result_row_cached).
 */
typedef struct ZonedCallSite
{
	ZoneCache	arg;
	ZoneCache	state;
	TupleDesc	result;
} ZonedCallSite;

extern ZonedCallSite *zoned_call_site(FunctionCallInfo fcinfo);

/*
 * The size to allocate for a flat state that needs "need" bytes: small
 * chunks come in powers of two anyway, so the room is free.
 */
extern Size flat_state_size(Size need);

/*
 * A copy of a flat state, for a call outside an aggregate: a caller's value
 * must not change.
 */
extern void *flat_state_copy(const void *state);

/* expanded states */
extern ExpandedAggState *agg_state_new(FunctionCallInfo fcinfo, const AggStateKind *kind);
extern ExpandedAggState *agg_state_for_update(FunctionCallInfo fcinfo, int argno,
											  const AggStateKind *kind);
extern void *agg_state_read(FunctionCallInfo fcinfo, int argno, const AggStateKind *kind);
extern Datum agg_state_result(FunctionCallInfo fcinfo, ExpandedAggState *e);
extern MemoryContext agg_state_context(ExpandedAggState *e);

/* the type's I/O functions for a growing state */
extern Datum agg_state_in(FunctionCallInfo fcinfo, const AggStateKind *kind);
extern Datum agg_state_out(FunctionCallInfo fcinfo, const AggStateKind *kind);
extern Datum agg_state_recv(FunctionCallInfo fcinfo, const AggStateKind *kind);
extern Datum agg_state_send(FunctionCallInfo fcinfo, const AggStateKind *kind);

/* the text form of any state: \x and the hex of its binary form */
extern char *state_bytes_to_text(const char *bytes, int len);
extern void state_text_to_bytes(const char *text, StringInfo buf, const char *type_name);

#endif							/* POST_PURCHASE_STATE_TYPE_H */
