/*
 * affinity.c
 *	  The counting behind refresh_product_affinity() (src/affinity.sql):
 *	  affinity_pairs() walks the tracked order items once per customer, in
 *	  time order, and counts the same-order and the "B follows A within the
 *	  window" pairs, with the per-product counts and the totals, in one read
 *	  of post_purchase.customer_product_orders.
 *
 * Why C: the pairs within the window are the customer's later items up to
 * tA + window.  In SQL they cost a moving window frame, an array per item,
 * an unnest, a DISTINCT per customer and a text GROUP BY (3.65 times the
 * bare self-join in the benchmark).  Walked here with two pointers over the
 * customer's items they cost one integer hash increment each, on product
 * numbers instead of product texts.
 *
 * Passes:
 *	 read	the items sorted by customer, time and order (the executor's sort,
 *			which spills past work_mem), streamed to a DestReceiver: products
 *			get numbers (a hash on their text), each product's orders and
 *			customers are counted, the orders and customers, and an upper bound
 *			of each product's distinct pairs; each item is written, as 16
 *			bytes, to a temporary file (BufFile: 8 kB in memory).
 *	 count	per partition of the products A (below): the temporary file read
 *			back, one customer at a time; same-order pairs (A < B by number,
 *			both above min_support) and follow pairs (customer-distinct)
 *			counted in one hash table of 64-bit keys; the kept pairs (support
 *			and confidence at least their minimums, computed as the SQL would)
 *			go to the result tuplestore (which spills past work_mem).
 *
 * Memory: the products (text, counts, bound: O(products)), one customer's
 * items (16 bytes each) and their distinct follow pairs, and the pair hash
 * table of one partition.  The products A are split into partitions whose
 * bound of distinct pairs fits in work_mem x hash_mem_multiplier (a
 * product's bound: its pair occurrences in the read pass, at most the
 * number of frequent products); so no pass holds all pairs of all products
 * at once, and when they do not fit, the items are read again from the
 * temporary file once per partition.  One product whose bound alone is
 * above the limit is a partition of its own (its pairs are at most two per
 * frequent product).
 *
 * Cost per order item: O(1) in the read pass besides the sort (O(log
 * items) comparisons) and the product lookup; then per partition a read of
 * its 16 bytes, plus (o - 1) / 2 same-order pairs (o items in its order)
 * and w follow pairs (w of the customer's items within the window after
 * it), a hash increment each, and a sort of the customer's follow pairs to
 * make them distinct.
 *
 * It relies on what the triggers keep: an order's rows of
 * customer_product_orders share its customer and time, so an order's items
 * are adjacent in that sort.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/buffile.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(affinity_pairs);

/* one order item as the count passes read it back */
typedef struct AffinityItem
{
	TimestampTz at;
	int32		product;		/* the product's number */
	uint32		flags;
} AffinityItem;

#define ITEM_NEW_CUSTOMER	0x1
#define ITEM_NEW_ORDER		0x2

/* products by their text */
typedef struct ProductKey
{
	const char *data;
	int			len;
} ProductKey;

typedef struct ProductEntry
{
	ProductKey	key;
	int32		number;
	uint32		hash;
	char		status;
} ProductEntry;

#define SH_PREFIX		products
#define SH_ELEMENT_TYPE ProductEntry
#define SH_KEY_TYPE		ProductKey
#define SH_KEY			key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k).data, (k).len)
#define SH_EQUAL(tb, a, b) ((a).len == (b).len && memcmp((a).data, (b).data, (a).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* pair counts: kind << 63 | a << 32 | b */
typedef struct PairEntry
{
	uint64		key;
	int64		count;
	char		status;
} PairEntry;

static inline uint32
pair_hash(uint64 k)
{
	/* the murmur3 64-bit finalizer: the keys differ in few low bits */
	k ^= k >> 33;
	k *= UINT64CONST(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64CONST(0xc4ceb9fe1a85ec53);
	k ^= k >> 33;
	return (uint32) k;
}

#define SH_PREFIX		pairs
#define SH_ELEMENT_TYPE PairEntry
#define SH_KEY_TYPE		uint64
#define SH_KEY			key
#define SH_HASH_KEY(tb, k) pair_hash(k)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

#define KIND_SEQUENCE	(UINT64CONST(1) << 63)
#define PAIR_KEY(kind, a, b) ((kind) | ((uint64) (a) << 32) | (uint64) (uint32) (b))

/*
 * Bytes a pair may take in the hash table: the entry, at worst a table
 * doubled just past its 0.9 fill factor.
 */
#define PAIR_BYTES		(sizeof(PairEntry) * 2 / 0.9 + 1)

typedef struct AffinityState
{
	DestReceiver pub;			/* first: the executor calls it as a DestReceiver */
	MemoryContext cxt;
	MemoryContext row_cxt;		/* reset every row: detoasted keys */

	/* parameters */
	Interval   *window;
	double		min_support;
	double		min_confidence;

	/* products, by number */
	products_hash *by_text;
	int32		n_products;
	int32		products_allocated;
	char	  **product_text;
	int		   *product_len;
	int64	   *orders_with;	/* orders containing the product */
	int64	   *customers_with; /* customers who bought it */
	int64	   *last_customer;	/* the customer that last counted it */
	int64	   *bound_same;		/* same-order pair occurrences, as the lower number */
	int64	   *bound_follow;	/* follow pair occurrences, as A */
	bool	   *frequent_same;
	bool	   *frequent_follow;
	int32	   *partition;

	int64		n_orders;
	int64		n_customers;
	int64		n_items;

	/* the row before, to see a new customer or order */
	StringInfoData last_customer_text;
	StringInfoData last_order_text;

	/* one customer's items */
	AffinityItem *buffer;
	int			buffered;
	int			buffer_allocated;

	/* one customer's follow pairs, made distinct before they are counted */
	uint64	   *follows;
	int			n_follows;
	int			follows_allocated;

	BufFile    *items;

	/* the count pass */
	bool		counting;
	int32		current_partition;
	pairs_hash *pairs;
} AffinityState;

/* tA + window, in UTC (the caller runs with TimeZone UTC), at the end of time when past it */
static TimestampTz
window_end(AffinityState *state, TimestampTz at)
{
	Interval   *w = state->window;

	if (TIMESTAMP_NOT_FINITE(at))
		return at;
	if (w->month == 0)
	{
		/* in UTC a day is 24 hours: plain arithmetic, no calendar */
		int64		span = w->day * USECS_PER_DAY + w->time;

		if (at > END_TIMESTAMP - span)
			return DT_NOEND;
		return at + span;
	}
	/* months need the calendar; the window is at most 100 years */
	if (at > END_TIMESTAMP - INT64CONST(101) * DAYS_PER_YEAR * USECS_PER_DAY)
		return DT_NOEND;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(at),
												   IntervalPGetDatum(w)));
}

/* the number of a product, a new one for a text not seen before */
static int32
product_number(AffinityState *state, const char *data, int len)
{
	ProductKey	key = {data, len};
	ProductEntry *entry;
	bool		found;

	entry = products_insert(state->by_text, key, &found);
	if (!found)
	{
		int32		n = state->n_products;
		char	   *copy;

		if (n == PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many distinct products in the order items for refresh_product_affinity")));
		if (n == state->products_allocated)
		{
			int			more = state->products_allocated * 2;

			state->product_text = repalloc_huge(state->product_text, sizeof(char *) * more);
			state->product_len = repalloc_huge(state->product_len, sizeof(int) * more);
			state->orders_with = repalloc_huge(state->orders_with, sizeof(int64) * more);
			state->customers_with = repalloc_huge(state->customers_with, sizeof(int64) * more);
			state->last_customer = repalloc_huge(state->last_customer, sizeof(int64) * more);
			state->bound_same = repalloc_huge(state->bound_same, sizeof(int64) * more);
			state->bound_follow = repalloc_huge(state->bound_follow, sizeof(int64) * more);
			state->products_allocated = more;
		}
		copy = palloc(len + 1);
		memcpy(copy, data, len);
		copy[len] = '\0';
		entry->key.data = copy;
		entry->number = n;
		state->product_text[n] = copy;
		state->product_len[n] = len;
		state->orders_with[n] = 0;
		state->customers_with[n] = 0;
		state->last_customer[n] = -1;
		state->bound_same[n] = 0;
		state->bound_follow[n] = 0;
		state->n_products++;
	}
	return entry->number;
}

static int
compare_keys(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static void
add_follow(AffinityState *state, uint64 key)
{
	if (state->n_follows == state->follows_allocated)
	{
		int			kept;

		/* make them distinct first: a customer's distinct pairs are bounded, their repeats not */
		qsort(state->follows, state->n_follows, sizeof(uint64), compare_keys);
		kept = 0;
		for (int i = 0; i < state->n_follows; i++)
			if (kept == 0 || state->follows[kept - 1] != state->follows[i])
				state->follows[kept++] = state->follows[i];
		state->n_follows = kept;
		if (kept > state->follows_allocated / 2)
		{
			state->follows_allocated *= 2;
			state->follows = repalloc_huge(state->follows, sizeof(uint64) * state->follows_allocated);
		}
	}
	state->follows[state->n_follows++] = key;
}

static inline void
count_pair(AffinityState *state, uint64 key)
{
	bool		found;
	PairEntry  *entry = pairs_insert(state->pairs, key, &found);

	if (!found)
		entry->count = 0;
	entry->count++;
}

/*
 * The buffered customer's pairs: in the read pass their occurrences per
 * product (the bounds), in a count pass the pairs of the current partition.
 */
static void
walk_customer(AffinityState *state)
{
	AffinityItem *items = state->buffer;
	int			n = state->buffered;
	bool		counting = state->counting;
	int			order_start = 0;
	int			later = 0;		/* the first item after items[i] in time */
	int			last = 0;		/* one past the last item within its window */
	TimestampTz end = 0;
	TimestampTz end_of = 0;
	bool		have_end = false;

	/* same order: the items between two order starts */
	for (int i = 1; i <= n; i++)
	{
		if (i < n && !(items[i].flags & ITEM_NEW_ORDER))
			continue;
		for (int x = order_start; x < i; x++)
		{
			int32		px = items[x].product;

			if (counting && !state->frequent_same[px])
				continue;
			for (int y = x + 1; y < i; y++)
			{
				int32		py = items[y].product;
				int32		lo = Min(px, py),
							hi = Max(px, py);

				if (!counting)
					state->bound_same[lo]++;
				else if (state->frequent_same[py] && state->partition[lo] == state->current_partition)
					count_pair(state, PAIR_KEY(0, lo, hi));
			}
		}
		order_start = i;
	}

	/* B follows A: the items in (tA, tA + window], by two pointers moving forward */
	state->n_follows = 0;
	for (int i = 0; i < n; i++)
	{
		int32		a = items[i].product;
		TimestampTz at = items[i].at;

		if (!have_end || at != end_of)
		{
			end = window_end(state, at);
			end_of = at;
			have_end = true;
		}
		while (later < n && items[later].at <= at)
			later++;
		if (last < later)
			last = later;
		while (last < n && items[last].at <= end)
			last++;
		if (counting && (!state->frequent_follow[a] || state->partition[a] != state->current_partition))
			continue;
		for (int j = later; j < last; j++)
		{
			int32		b = items[j].product;

			if (b == a)
				continue;
			if (!counting)
				state->bound_follow[a]++;
			else if (state->frequent_follow[b])
				add_follow(state, PAIR_KEY(KIND_SEQUENCE, a, b));
		}
	}
	if (counting && state->n_follows > 0)
	{
		uint64		previous = 0;

		qsort(state->follows, state->n_follows, sizeof(uint64), compare_keys);
		for (int i = 0; i < state->n_follows; i++)
		{
			if (i > 0 && state->follows[i] == previous)
				continue;
			previous = state->follows[i];
			count_pair(state, previous);
		}
	}
	state->buffered = 0;
}

static void
buffer_item(AffinityState *state, const AffinityItem *item)
{
	if ((item->flags & ITEM_NEW_CUSTOMER) && state->buffered > 0)
		walk_customer(state);
	if (state->buffered == state->buffer_allocated)
	{
		state->buffer_allocated *= 2;
		state->buffer = repalloc_huge(state->buffer, sizeof(AffinityItem) * state->buffer_allocated);
	}
	state->buffer[state->buffered++] = *item;
}

static bool
same_text(StringInfo last, const char *data, int len)
{
	return last->len == len && memcmp(last->data, data, len) == 0;
}

static void
remember_text(StringInfo last, const char *data, int len)
{
	resetStringInfo(last);
	appendBinaryStringInfo(last, data, len);
}

/* The read pass: one row of (customer_id, order_key, product_id, ordered_at), in that sort. */
static bool
affinity_receive(TupleTableSlot *slot, DestReceiver *self)
{
	AffinityState *state = (AffinityState *) self;
	MemoryContext old;
	text	   *customer,
			   *order,
			   *product;
	AffinityItem item;

	MemoryContextReset(state->row_cxt);
	old = MemoryContextSwitchTo(state->row_cxt);
	slot_getallattrs(slot);
	if (slot->tts_isnull[0] || slot->tts_isnull[1] || slot->tts_isnull[2] || slot->tts_isnull[3])
		elog(ERROR, "customer_product_orders has a NULL key");
	customer = DatumGetTextPP(slot->tts_values[0]);
	order = DatumGetTextPP(slot->tts_values[1]);
	product = DatumGetTextPP(slot->tts_values[2]);
	item.at = DatumGetTimestampTz(slot->tts_values[3]);
	item.flags = 0;
	MemoryContextSwitchTo(state->cxt);

	if (state->n_items == 0 ||
		!same_text(&state->last_customer_text, VARDATA_ANY(customer), VARSIZE_ANY_EXHDR(customer)))
	{
		item.flags |= ITEM_NEW_CUSTOMER | ITEM_NEW_ORDER;
		remember_text(&state->last_customer_text, VARDATA_ANY(customer), VARSIZE_ANY_EXHDR(customer));
		state->n_customers++;
	}
	if (!(item.flags & ITEM_NEW_ORDER) &&
		!same_text(&state->last_order_text, VARDATA_ANY(order), VARSIZE_ANY_EXHDR(order)))
		item.flags |= ITEM_NEW_ORDER;
	if (item.flags & ITEM_NEW_ORDER)
	{
		remember_text(&state->last_order_text, VARDATA_ANY(order), VARSIZE_ANY_EXHDR(order));
		state->n_orders++;
	}
	item.product = product_number(state, VARDATA_ANY(product), VARSIZE_ANY_EXHDR(product));
	/* a row is one order with the product (the key is order and product) */
	state->orders_with[item.product]++;
	if (state->last_customer[item.product] != state->n_customers)
	{
		state->last_customer[item.product] = state->n_customers;
		state->customers_with[item.product]++;
	}
	state->n_items++;
	BufFileWrite(state->items, &item, sizeof(item));
	buffer_item(state, &item);

	MemoryContextSwitchTo(old);
	return true;
}

static void
affinity_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
affinity_shutdown(DestReceiver *self)
{
}

static void
affinity_destroy(DestReceiver *self)
{
}

/* the partitions of the products A: contiguous numbers whose bounds fit in the hash memory */
static int32
plan_partitions(AffinityState *state)
{
	int64		frequent_same = 0,
				frequent_follow = 0;
	double		limit = (double) get_hash_memory_limit() / PAIR_BYTES;
	double		filled = 0;
	int32		partitions = 1;

	for (int32 p = 0; p < state->n_products; p++)
	{
		state->frequent_same[p] = (double) state->orders_with[p] / (double) state->n_orders >= state->min_support;
		state->frequent_follow[p] =
			(double) state->customers_with[p] / (double) state->n_customers >= state->min_support;
		frequent_same += state->frequent_same[p];
		frequent_follow += state->frequent_follow[p];
	}
	for (int32 p = 0; p < state->n_products; p++)
	{
		double		bound = 0;

		if (state->frequent_same[p])
			bound += Min(state->bound_same[p], frequent_same - 1);
		if (state->frequent_follow[p])
			bound += Min(state->bound_follow[p], frequent_follow - 1);
		if (filled > 0 && filled + bound > limit)
		{
			partitions++;
			filled = 0;
		}
		filled += bound;
		state->partition[p] = partitions - 1;
	}
	return partitions;
}

static void
emit_row(AffinityState *state, Tuplestorestate *store, TupleDesc desc, int32 a, const char *kind, int32 b,
		 int64 count, int64 a_count, int64 b_count, int64 total)
{
	Datum		values[7];
	bool		nulls[7] = {false};

	values[0] = PointerGetDatum(cstring_to_text_with_len(state->product_text[a], state->product_len[a]));
	values[1] = CStringGetTextDatum(kind);
	values[2] = PointerGetDatum(cstring_to_text_with_len(state->product_text[b], state->product_len[b]));
	values[3] = Int64GetDatum(count);
	values[4] = Int64GetDatum(a_count);
	values[5] = Int64GetDatum(b_count);
	values[6] = Int64GetDatum(total);
	tuplestore_putvalues(store, desc, values, nulls);
}

/* A pair is kept on the float8 values the SQL stores: count / total, count / a_count. */
static inline bool
kept(AffinityState *state, int64 count, int64 a_count, int64 total)
{
	return (double) count / (double) total >= state->min_support &&
		(double) count / (double) a_count >= state->min_confidence;
}

static void
emit_partition(AffinityState *state, Tuplestorestate *store, TupleDesc desc)
{
	pairs_iterator it;
	PairEntry  *entry;
	MemoryContext rows = AllocSetContextCreate(CurrentMemoryContext, "affinity rows", ALLOCSET_SMALL_SIZES);

	pairs_start_iterate(state->pairs, &it);
	while ((entry = pairs_iterate(state->pairs, &it)) != NULL)
	{
		int32		a = (int32) ((entry->key >> 32) & 0x7fffffff);
		int32		b = (int32) (entry->key & 0xffffffff);
		MemoryContext old = MemoryContextSwitchTo(rows);

		if (entry->key & KIND_SEQUENCE)
		{
			if (kept(state, entry->count, state->customers_with[a], state->n_customers))
				emit_row(state, store, desc, a, "sequence", b, entry->count, state->customers_with[a],
						 state->customers_with[b], state->n_customers);
		}
		else
		{
			/* counted once as (lower, higher), stored both ways */
			if (kept(state, entry->count, state->orders_with[a], state->n_orders))
				emit_row(state, store, desc, a, "same_order", b, entry->count, state->orders_with[a],
						 state->orders_with[b], state->n_orders);
			if (kept(state, entry->count, state->orders_with[b], state->n_orders))
				emit_row(state, store, desc, b, "same_order", a, entry->count, state->orders_with[b],
						 state->orders_with[a], state->n_orders);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(rows);
	}
	MemoryContextDelete(rows);
}

/*
 * affinity_pairs(affinity_window interval, min_support float8, min_confidence float8)
 *	 RETURNS TABLE (product_a, kind, product_b, pair_count, a_count, b_count, total)
 *
 * The kept pairs of both kinds, same-order pairs in both directions; the
 * caller (refresh_product_affinity, which validated the arguments) computes
 * the ratios and stores them.  Run with TimeZone UTC (its SET clause).
 */
Datum
affinity_pairs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AffinityState *state;
	MemoryContext cxt;
	MemoryContext old;
	SPIExecuteOptions options;
	int32		partitions;
	Interval	zero = {0, 0, 0};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("affinity_pairs needs a window and both thresholds")));
	InitMaterializedSRF(fcinfo, 0);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "affinity_pairs", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	state = palloc0(sizeof(AffinityState));
	state->cxt = cxt;
	state->row_cxt = AllocSetContextCreate(cxt, "affinity_pairs row", ALLOCSET_SMALL_SIZES);
	state->window = PG_GETARG_INTERVAL_P(0);
	state->min_support = PG_GETARG_FLOAT8(1);
	state->min_confidence = PG_GETARG_FLOAT8(2);
	/* refresh_product_affinity() checked it; the two pointers need a window after tA */
	if (DatumGetBool(DirectFunctionCall2(interval_le, IntervalPGetDatum(state->window),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the affinity window must be more than 0")));
	state->pub.receiveSlot = affinity_receive;
	state->pub.rStartup = affinity_startup;
	state->pub.rShutdown = affinity_shutdown;
	state->pub.rDestroy = affinity_destroy;
	state->pub.mydest = DestNone;
	state->by_text = products_create(cxt, 1024, NULL);
	state->products_allocated = 1024;
	state->product_text = palloc(sizeof(char *) * state->products_allocated);
	state->product_len = palloc(sizeof(int) * state->products_allocated);
	state->orders_with = palloc(sizeof(int64) * state->products_allocated);
	state->customers_with = palloc(sizeof(int64) * state->products_allocated);
	state->last_customer = palloc(sizeof(int64) * state->products_allocated);
	state->bound_same = palloc(sizeof(int64) * state->products_allocated);
	state->bound_follow = palloc(sizeof(int64) * state->products_allocated);
	state->buffer_allocated = 64;
	state->buffer = palloc(sizeof(AffinityItem) * state->buffer_allocated);
	state->follows_allocated = 256;
	state->follows = palloc(sizeof(uint64) * state->follows_allocated);
	initStringInfo(&state->last_customer_text);
	initStringInfo(&state->last_order_text);
	state->items = BufFileCreateTemp(false);
	MemoryContextSwitchTo(old);

	/* the read pass */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	memset(&options, 0, sizeof(options));
	options.read_only = true;
	options.dest = &state->pub;	/* DestNone: SPI keeps no rows (and says SPI_OK_UTILITY) */
	if (SPI_execute_extended("SELECT i.customer_id, i.order_key, i.product_id, i.ordered_at"
							 " FROM post_purchase.customer_product_orders i"
							 " ORDER BY i.customer_id, i.ordered_at, i.order_key",
							 &options) < 0)
		elog(ERROR, "could not read post_purchase.customer_product_orders");
	SPI_finish();

	old = MemoryContextSwitchTo(cxt);
	if (state->buffered > 0)
		walk_customer(state);
	if (state->n_items == 0)
	{
		BufFileClose(state->items);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return (Datum) 0;
	}

	state->frequent_same = palloc(sizeof(bool) * state->n_products);
	state->frequent_follow = palloc(sizeof(bool) * state->n_products);
	state->partition = palloc(sizeof(int32) * state->n_products);
	partitions = plan_partitions(state);
	/* at DEBUG1, for the tests that force partitions with a small work_mem */
	ereport(DEBUG1,
			(errmsg_internal("affinity_pairs: %lld items, %lld orders, %lld customers, %d products, %d partitions",
							 (long long) state->n_items, (long long) state->n_orders,
							 (long long) state->n_customers, state->n_products, partitions)));

	/* the count passes, one per partition of the products A */
	state->counting = true;
	for (int32 part = 0; part < partitions; part++)
	{
		AffinityItem chunk[512];
		size_t		got;

		CHECK_FOR_INTERRUPTS();
		state->current_partition = part;
		state->pairs = pairs_create(cxt, 1024, NULL);
		if (BufFileSeek(state->items, 0, 0, SEEK_SET) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not rewind the temporary file of refresh_product_affinity")));
		while ((got = BufFileRead(state->items, chunk, sizeof(chunk))) > 0)
		{
			if (got % sizeof(AffinityItem) != 0)
				elog(ERROR, "the temporary file of refresh_product_affinity is short");
			for (size_t k = 0; k < got / sizeof(AffinityItem); k++)
				buffer_item(state, &chunk[k]);
			CHECK_FOR_INTERRUPTS();
		}
		if (state->buffered > 0)
			walk_customer(state);
		emit_partition(state, rsinfo->setResult, rsinfo->setDesc);
		pairs_destroy(state->pairs);
		state->pairs = NULL;
	}
	BufFileClose(state->items);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
