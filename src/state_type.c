/*
 * state_type.c
 *	  Aggregate states as types of their own; see state_type.h for why and
 *	  for what Citus requires of them.
 */
#include "postgres.h"

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "nodes/memnodes.h"
#include "utils/memutils.h"

#include "aggregate.h"
#include "state_type.h"

/*
 * The child of an aggregate context that holds the growing states of its
 * groups; recognized by the address of its name.
 */
static const char states_context_name[] = "post_purchase aggregate states";

/* children of an aggregate context looked at before making another one */
#define STATES_CONTEXT_SEARCH 8


bool
in_aggregate(FunctionCallInfo fcinfo, MemoryContext *aggcxt)
{
	return AggCheckCallContext(fcinfo, aggcxt) != 0;
}

/* fn_extra of a transition's call site once it was seen in an aggregate */
const char	flat_state_aggregate_call_site = 0;

/* flat_state_updatable's answer when the call site is not known yet */
bool
flat_state_updatable_first(FunctionCallInfo fcinfo)
{
	if (!AggCheckCallContext(fcinfo, NULL))
		return false;
	/* Citus makes a new FmgrInfo for every call: it is asked again then */
	if (fcinfo->flinfo != NULL && fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = (void *) &flat_state_aggregate_call_site;
	return true;
}

ZonedCallSite *
zoned_call_site(FunctionCallInfo fcinfo)
{
	ZonedCallSite *site = (ZonedCallSite *) fcinfo->flinfo->fn_extra;

	/* Citus makes a new FmgrInfo for every call: one per call then */
	if (site == NULL)
	{
		site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ZonedCallSite));
		fcinfo->flinfo->fn_extra = site;
	}
	return site;
}

/* the largest chunk aset.c rounds up to a power of two */
#define FLAT_STATE_POWER_OF_TWO_LIMIT 8192

Size
flat_state_size(Size need)
{
	Size		size = 64;

	if (need > FLAT_STATE_POWER_OF_TWO_LIMIT)
		return MAXALIGN(need);
	while (size < need)
		size *= 2;
	return size;
}

void *
flat_state_copy(const void *state)
{
	Size		size = VARSIZE(state);
	void	   *copy = palloc(size);

	memcpy(copy, state, size);
	return copy;
}

/*
 * The context for new states of groups of the aggregate context aggcxt.
 * Resetting the aggregate context (the end of a sorted group, a hash batch,
 * a window frame restart) deletes it with the states, so it is looked up
 * among the context's children rather than remembered.  Our context is
 * normally the newest child; should other aggregates of the same node keep
 * making children, a new one is made after a few, which bounds the search.
 */
static MemoryContext
states_context(MemoryContext aggcxt)
{
	MemoryContext child = aggcxt->firstchild;

	for (int i = 0; child != NULL && i < STATES_CONTEXT_SEARCH; i++, child = child->nextchild)
	{
		if (child->name == states_context_name)
			return child;
	}
	/* the Internal form: the name is a static array, not a literal */
	return AllocSetContextCreateInternal(aggcxt, states_context_name, ALLOCSET_DEFAULT_SIZES);
}

static ExpandedAggState *
agg_state_alloc(FunctionCallInfo fcinfo, const AggStateKind *kind)
{
	MemoryContext aggcxt;
	MemoryContext cxt = in_aggregate(fcinfo, &aggcxt) ? states_context(aggcxt) : CurrentMemoryContext;
	ExpandedAggState *e = MemoryContextAllocZero(cxt, MAXALIGN(sizeof(ExpandedAggState)) + kind->size);

	EOH_init_header(&e->hdr, &kind->methods, cxt);
	return e;
}

MemoryContext
agg_state_context(ExpandedAggState *e)
{
	return e->hdr.eoh_context;
}

/* An empty state. */
ExpandedAggState *
agg_state_new(FunctionCallInfo fcinfo, const AggStateKind *kind)
{
	ExpandedAggState *e = agg_state_alloc(fcinfo, kind);

	kind->init(EXPANDED_AGG_STATE_DATA(e), e->hdr.eoh_context);
	return e;
}

/* Read a flat state (any varlena form) into a zeroed struct. */
static void
read_flat(Datum value, const AggStateKind *kind, void *state, MemoryContext cxt)
{
	struct varlena *flat = PG_DETOAST_DATUM(value);
	StringInfoData buf;

	start_deserializing_state(&buf, (bytea *) flat);
	kind->read(&buf, state, cxt);
	finish_deserializing_state(&buf);
}

static ExpandedAggState *
our_expanded(Datum value, const AggStateKind *kind)
{
	ExpandedAggState *e;

	if (!VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(value)))
		return NULL;
	e = (ExpandedAggState *) DatumGetEOHP(value);
	if (e->hdr.eoh_methods != &kind->methods)
		return NULL;
	return e;
}

/*
 * The state in argument argno, to be updated: a read-write object is the
 * caller's to let us change (the aggregate's own transition value); any
 * other value, NULL included, gives a new state, which the caller returns.
 */
ExpandedAggState *
agg_state_for_update(FunctionCallInfo fcinfo, int argno, const AggStateKind *kind)
{
	Datum		value;
	ExpandedAggState *e;

	if (PG_ARGISNULL(argno))
		return agg_state_new(fcinfo, kind);
	value = PG_GETARG_DATUM(argno);
	if (VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(value)) &&
		(e = our_expanded(value, kind)) != NULL)
		return e;
	e = agg_state_alloc(fcinfo, kind);
	read_flat(value, kind, EXPANDED_AGG_STATE_DATA(e), e->hdr.eoh_context);
	return e;
}

/*
 * The state in argument argno, to read (a final function, the right side
 * of a combine): the object itself, or a flat value read into this call's
 * memory.  Reading may compact the state, which changes nothing it means.
 */
void *
agg_state_read(FunctionCallInfo fcinfo, int argno, const AggStateKind *kind)
{
	Datum		value = PG_GETARG_DATUM(argno);
	ExpandedAggState *e = our_expanded(value, kind);
	void	   *state;

	if (e != NULL)
		return EXPANDED_AGG_STATE_DATA(e);
	state = palloc0(kind->size);
	read_flat(value, kind, state, CurrentMemoryContext);
	return state;
}

/*
 * What a transition or combine function returns: in an aggregate, the
 * read-write object, which the executor keeps as is (its context is a child
 * of the aggregate's); called as a plain function, a flat value, since no
 * one would own the object.
 */
Datum
agg_state_result(FunctionCallInfo fcinfo, ExpandedAggState *e)
{
	Size		size;
	void	   *flat;

	if (likely(e->hdr.eoh_context->name == states_context_name))
		return EOHPGetRWDatum(&e->hdr);
	size = EOH_get_flat_size(&e->hdr);
	flat = palloc(size);
	EOH_flatten_into(&e->hdr, flat, size);
	return PointerGetDatum(flat);
}

/*
 * The flat form: a varlena of the kind's binary form.  The executor asks
 * for the size, then for the bytes (forming the Partial Aggregate's output
 * tuple, or a copy); the form is written for each, not kept in the object,
 * whose every byte is paid for per group.
 */
static const AggStateKind *
kind_of(ExpandedAggState *e)
{
	/* the methods are the kind's first member */
	return (const AggStateKind *) e->hdr.eoh_methods;
}

Size
agg_state_get_flat_size(ExpandedObjectHeader *eohptr)
{
	ExpandedAggState *e = (ExpandedAggState *) eohptr;
	StringInfoData buf;
	Size		size;

	pq_begintypsend(&buf);
	kind_of(e)->write(&buf, EXPANDED_AGG_STATE_DATA(e));
	size = buf.len;
	pfree(buf.data);
	return size;
}

void
agg_state_flatten_into(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	ExpandedAggState *e = (ExpandedAggState *) eohptr;
	StringInfoData buf;

	pq_begintypsend(&buf);
	kind_of(e)->write(&buf, EXPANDED_AGG_STATE_DATA(e));
	if ((Size) buf.len != allocated_size)
		elog(ERROR, "aggregate state changed size while flattened");
	memcpy(result, buf.data, buf.len);
	SET_VARSIZE(result, buf.len);
	pfree(buf.data);
}

/* A flat state from its binary form, checked by reading it. */
static Datum
flat_from_bytes(const char *bytes, int len, const AggStateKind *kind)
{
	struct varlena *flat = palloc(VARHDRSZ + len);
	void	   *state = palloc0(kind->size);
	StringInfoData buf;

	SET_VARSIZE(flat, VARHDRSZ + len);
	memcpy(VARDATA(flat), bytes, len);
	start_deserializing_state(&buf, (bytea *) flat);
	kind->read(&buf, state, CurrentMemoryContext);
	finish_deserializing_state(&buf);
	return PointerGetDatum(flat);
}

Datum
agg_state_in(FunctionCallInfo fcinfo, const AggStateKind *kind)
{
	StringInfoData bytes;

	initStringInfo(&bytes);
	state_text_to_bytes(PG_GETARG_CSTRING(0), &bytes, kind->name);
	return flat_from_bytes(bytes.data, bytes.len, kind);
}

Datum
agg_state_out(FunctionCallInfo fcinfo, const AggStateKind *kind)
{
	struct varlena *flat = PG_DETOAST_DATUM(PG_GETARG_DATUM(0));

	PG_RETURN_CSTRING(state_bytes_to_text(VARDATA(flat), VARSIZE(flat) - VARHDRSZ));
}

Datum
agg_state_recv(FunctionCallInfo fcinfo, const AggStateKind *kind)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	const char *bytes = pq_getmsgbytes(buf, len);

	return flat_from_bytes(bytes, len, kind);
}

Datum
agg_state_send(FunctionCallInfo fcinfo, const AggStateKind *kind)
{
	struct varlena *flat = PG_DETOAST_DATUM(PG_GETARG_DATUM(0));
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbytes(&buf, VARDATA(flat), VARSIZE(flat) - VARHDRSZ);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static const char hex_digits[] = "0123456789abcdef";

char *
state_bytes_to_text(const char *bytes, int len)
{
	char	   *text = palloc(2 + (Size) len * 2 + 1);
	char	   *p = text;

	*p++ = '\\';
	*p++ = 'x';
	for (int i = 0; i < len; i++)
	{
		*p++ = hex_digits[(unsigned char) bytes[i] >> 4];
		*p++ = hex_digits[(unsigned char) bytes[i] & 0xF];
	}
	*p = '\0';
	return text;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The binary form from the text form; what it says is checked by the caller. */
void
state_text_to_bytes(const char *text, StringInfo buf, const char *type_name)
{
	const char *p = text + 2;
	size_t		len = strlen(text);

	if (len < 2 || text[0] != '\\' || text[1] != 'x' || len % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"", type_name, text),
				 errdetail("A state is written as \\x and an even number of hexadecimal digits.")));
	for (; *p != '\0'; p += 2)
	{
		int			high = hex_value(p[0]);
		int			low = hex_value(p[1]);

		if (high < 0 || low < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: \"%s\"", type_name, text),
					 errdetail("A state is written as \\x and an even number of hexadecimal digits.")));
		appendStringInfoChar(buf, (char) ((high << 4) | low));
	}
}
