/*
 * segments.c
 *	  Segment rules: checking that a rule is one expression, and evaluating
 *	  every rule for the customer an order changed, in the order's
 *	  transaction, with a plan cached until the segments change.
 *
 * Rules are SQL written by the shop's marketers.  They are pasted into a
 * query, so a rule must be exactly one expression: anything that closes the
 * parenthesis and adds clauses or statements is refused by parsing it first.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/varlena.h"

#include "metrics_context.h"
#include "segments.h"
#include "trigger_support.h"

PG_FUNCTION_INFO_V1(parse_segment_rule);
PG_FUNCTION_INFO_V1(segments_changed);
PG_FUNCTION_INFO_V1(refresh_customer_segments);
PG_FUNCTION_INFO_V1(segment_rule_members);

/*
 * The evaluation plans of the rules, one per role that owns segments (a
 * rule runs as its segment's owner), valid until the segments table
 * changes.  The names of all rules (rule_cstrings), group after group, in
 * TopMemoryContext.
 */
typedef struct RuleGroup
{
	Oid			owner;
	int			count;
	SPIPlanPtr	plan;
} RuleGroup;

static RuleGroup *rule_groups = NULL;
static int	group_count = 0;
static bool rules_planned = false;
static char **rule_cstrings = NULL;
static int	rule_count = 0;
static bool callback_registered = false;
static bool rules_stale = false;
/* whether the rules run over metrics_of() (1.1), or over customer_metrics (a 1.0 schema) */
static bool rules_over_state = false;
static Oid	segments_relid = InvalidOid;
/* customer_state's row type, which the rules' state arrays are made of (1.1) */
static Oid	state_type = InvalidOid;
static SPIPlanPtr state_plan = NULL;
static SPIPlanPtr open_memberships_plan = NULL;
static SPIPlanPtr exit_plan = NULL;
static SPIPlanPtr enter_plan = NULL;

/*
 * An error unless the rule is exactly one SQL expression; what names the
 * rule in the messages ("segment rule", "step condition").
 */
void
check_rule_is_expression(const char *rule, const char *what)
{
	char	   *sql = psprintf("SELECT (%s)", rule);
	MemoryContext cxt = CurrentMemoryContext;
	List	   *statements = NIL;
	RawStmt    *raw;
	SelectStmt *select;

	/* report syntax errors against the rule, not against our query */
	PG_TRY();
	{
		statements = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(cxt);
		error = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid %s: %s", what, error->message),
				 errdetail("The rule was: %s", rule)));
	}
	PG_END_TRY();

	if (list_length(statements) != 1)
		goto not_an_expression;
	raw = linitial_node(RawStmt, statements);
	if (!IsA(raw->stmt, SelectStmt))
		goto not_an_expression;
	select = (SelectStmt *) raw->stmt;
	if (select->op != SETOP_NONE || list_length(select->targetList) != 1 ||
		select->fromClause != NIL || select->whereClause != NULL || select->groupClause != NIL ||
		select->havingClause != NULL || select->windowClause != NIL || select->sortClause != NIL ||
		select->limitCount != NULL || select->limitOffset != NULL || select->lockingClause != NIL ||
		select->withClause != NULL || select->intoClause != NULL || select->distinctClause != NIL ||
		select->valuesLists != NIL)
		goto not_an_expression;
	return;

not_an_expression:
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("a %s must be a single SQL expression", what),
			 errdetail("The rule was: %s", rule)));
}

/* parse_segment_rule(rule, what): an error unless the rule is one expression. */
Datum
parse_segment_rule(PG_FUNCTION_ARGS)
{
	check_rule_is_expression(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/* An error unless the current user can act as owner already. */
void
check_may_act_as(Oid owner, const char *what)
{
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to evaluate a %s as role \"%s\"",
						what, GetUserNameFromId(owner, false))));
}

/*
 * From here on, run as owner in a security-restricted operation (no SET
 * ROLE, no changes to session state).  An error unwinds the switch with the
 * (sub)transaction; restore_user() undoes it on success.
 */
void
become_owner(Oid owner, OwnerContext *saved)
{
	GetUserIdAndSecContext(&saved->user, &saved->sec_context);
	SetUserIdAndSecContext(owner, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
restore_user(const OwnerContext *saved)
{
	SetUserIdAndSecContext(saved->user, saved->sec_context);
}

/*
 * From here on, search_path is pg_catalog, pg_temp, so a function or
 * operator someone planted in a schema on the caller's path is never what
 * runs.  Returns the GUC level to end with AtEOXact_GUC(true, level) on
 * success; an error unwinds it with the (sub)transaction.
 */
int
lock_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Relcache callback: the segments changed (or every cache was reset, which
 * InvalidOid means).  The plan is only marked here and freed at next use,
 * since invalidations arrive at times when freeing it would not be safe.
 */
static void
forget_rules(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == segments_relid)
		rules_stale = true;
}

/* Statement trigger on post_purchase.segments: every backend re-plans. */
Datum
segments_changed(PG_FUNCTION_ARGS)
{
	invalidate_trigger_table(fcinfo, "segments_changed");
	return PointerGetDatum(NULL);
}

/* Forget the plans, at the next use after the segments changed. */
static void
free_rules(void)
{
	for (int i = 0; i < group_count; i++)
		SPI_freeplan(rule_groups[i].plan);
	if (rule_groups != NULL)
		pfree(rule_groups);
	for (int i = 0; i < rule_count; i++)
		pfree(rule_cstrings[i]);
	if (rule_cstrings != NULL)
		pfree(rule_cstrings);
	rule_groups = NULL;
	rule_cstrings = NULL;
	group_count = rule_count = 0;
	rules_planned = false;
}

/*
 * The parameters of a rules query: the customers' states (an array of
 * customer_state rows; in a 1.0 schema, one customer id), then the metrics
 * context.
 */
#define RULE_PARAMS (1 + METRICS_CONTEXT_VALUES)

/*
 * Plan "SELECT customer_id, ARRAY[(rule), ...]::bool[]" for the rules of
 * one owner: over metrics_of() of each state row of the array given, with
 * the metrics context given as parameters, which reads no table, one row
 * per state in the array's order; or, in a 1.0 schema, over the view's row
 * for the one customer given by id.
 */
static SPIPlanPtr
plan_rules(Datum rules)
{
	StringInfoData sql;
	Oid			types[RULE_PARAMS];
	Datum	   *texts;
	int			n;
	SPIPlanPtr	plan;

	deconstruct_array(DatumGetArrayTypeP(rules), TEXTOID, -1, false, TYPALIGN_INT, &texts, NULL, &n);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT c.customer_id, ARRAY[");
	for (int i = 0; i < n; i++)
	{
		char	   *rule = TextDatumGetCString(texts[i]);

		/* rules were checked when created; check again, they are pasted */
		check_rule_is_expression(rule, "segment rule");
		appendStringInfo(&sql, "%s(%s)", i > 0 ? ", " : "", rule);
	}
	/* OFFSET 0 keeps the metrics computed once, however many rules use them */
	appendStringInfoString(&sql, "]::pg_catalog.bool[] ");
	if (rules_over_state)
	{
		/* computed: the change being decided made any stored scores stop counting */
		appendStringInfoString(&sql, "FROM (SELECT m.* FROM pg_catalog.unnest($1) u "
							   "CROSS JOIN LATERAL post_purchase.metrics_of(u, "
							   "post_purchase.today_in_zone($2, $3), $4, $5, $6, $7, $8) m OFFSET 0) c");
		types[0] = get_array_type(state_type);
		metrics_context_types(types + 1);
	}
	else
	{
		appendStringInfoString(&sql, "FROM (SELECT * FROM post_purchase.customer_metrics c "
							   "WHERE c.customer_id OPERATOR(pg_catalog.=) $1 OFFSET 0) c");
		types[0] = TEXTOID;
	}

	/* a generic plan: planning this for every order would dominate */
	plan = SPI_prepare_cursor(sql.data, rules_over_state ? RULE_PARAMS : 1, types, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "could not plan the segment rules: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* Plan every owner's rules, and keep all names in evaluation order. */
static void
prepare_rules(void)
{
	MemoryContext old;
	Datum	   *names = NULL;
	int			groups;
	SPITupleTable *table;

	segments_relid = get_relname_relid("segments", get_namespace_oid("post_purchase", false));
	rules_stale = false;
	rules_over_state = metrics_context_exists();
	state_type = get_rel_type_id(get_relname_relid("customer_state", get_namespace_oid("post_purchase", false)));
	/* not read-only: a fresh snapshot, which sees a rule committed while a batch waited for it */
	if (SPI_execute("SELECT s.owner, pg_catalog.array_agg(s.name ORDER BY s.name), "
					"pg_catalog.array_agg(s.rule ORDER BY s.name) "
					"FROM post_purchase.segments s GROUP BY s.owner ORDER BY s.owner",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the segments");
	table = SPI_tuptable;
	groups = (int) SPI_processed;

	rule_groups = MemoryContextAllocZero(TopMemoryContext, Max(groups, 1) * sizeof(RuleGroup));
	for (int g = 0; g < groups; g++)
	{
		bool		isnull;
		Datum	   *group_names;
		int			n;

		rule_groups[g].owner = DatumGetObjectId(SPI_getbinval(table->vals[g], table->tupdesc, 1, &isnull));
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(table->vals[g], table->tupdesc, 2, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &group_names, NULL, &n);
		rule_groups[g].count = n;
		rule_groups[g].plan = plan_rules(SPI_getbinval(table->vals[g], table->tupdesc, 3, &isnull));
		group_count = g + 1;
		names = names == NULL ? palloc(n * sizeof(Datum)) : repalloc(names, (rule_count + n) * sizeof(Datum));
		memcpy(names + rule_count, group_names, n * sizeof(Datum));
		rule_count += n;
	}
	if (rule_count > 0)
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		rule_cstrings = palloc(rule_count * sizeof(char *));
		for (int i = 0; i < rule_count; i++)
			rule_cstrings[i] = TextDatumGetCString(names[i]);
		MemoryContextSwitchTo(old);
	}
	rules_planned = true;
}

/*
 * The customers of a batch whose memberships follow their states: customer
 * k (text) and its state row (0 for a customer without one: no order left,
 * and no rule holds).  member is the verdicts, rule_count per customer, in
 * the order of rule_cstrings.
 */
typedef struct SegmentBatch
{
	int			n;
	const Datum *customers;
	const Datum *states;
	bool	   *member;
} SegmentBatch;

/* The verdicts of customer k. */
#define MEMBER_ROW(batch, k) ((batch)->member + (size_t) (k) * rule_count)

/* One row of a rules query into member: its flags, a NULL rule (or row) holding for nobody. */
static void
read_verdicts(HeapTuple row, TupleDesc desc, const RuleGroup *group, bool *member)
{
	bool		isnull;
	Datum		result = SPI_getbinval(row, desc, 2, &isnull);
	Datum	   *values;
	bool	   *value_nulls;
	int			n;

	if (isnull)
		return;
	deconstruct_array(DatumGetArrayTypeP(result), BOOLOID, 1, true, TYPALIGN_CHAR, &values, &value_nulls, &n);
	if (n != group->count)
		elog(ERROR, "segment rules returned %d flags, expected %d", n, group->count);
	for (int i = 0; i < n; i++)
		member[i] = !value_nulls[i] && DatumGetBool(values[i]);
}

/* Whether two texts are the same bytes. */
static bool
same_text(Datum a, Datum b)
{
	text	   *x = DatumGetTextPP(a);
	text	   *y = DatumGetTextPP(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/*
 * One owner's rules over the batch's states, run as that owner in a
 * security-restricted operation, into each customer's verdicts from
 * column "done" on: one statement for the whole batch (states, the
 * customers in the batch with a state, and where each is in the batch).
 * The query's rows come in the array's order; each is checked against
 * the customer it must be.  An error unwinds the user switch with the
 * subtransaction.
 */
static void
evaluate_group(const RuleGroup *group, SegmentBatch *batch, Datum states, const int *with_state,
			   int nstates, Datum *context, const char *context_nulls, int done)
{
	OwnerContext saved;
	Datum		params[RULE_PARAMS];
	char		nulls[RULE_PARAMS];

	params[0] = states;
	nulls[0] = ' ';
	memcpy(params + 1, context, METRICS_CONTEXT_VALUES * sizeof(Datum));
	memcpy(nulls + 1, context_nulls, METRICS_CONTEXT_VALUES);

	become_owner(group->owner, &saved);
	/* not read-only: the snapshot must see the state the order just wrote */
	if (SPI_execute_plan(group->plan, params, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not evaluate the segment rules");
	restore_user(&saved);
	if (SPI_processed != (uint64) nstates)
		elog(ERROR, "segment rules returned %llu rows for %d customers",
			 (unsigned long long) SPI_processed, nstates);
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		int			k = with_state[row];
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull || !same_text(id, batch->customers[k]))
			elog(ERROR, "segment rules returned their rows out of order");
		read_verdicts(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, group, MEMBER_ROW(batch, k) + done);
	}
}

/* A 1.0 schema's rules: the view's row of one customer at a time. */
static void
evaluate_group_by_id(const RuleGroup *group, SegmentBatch *batch, int done)
{
	for (int k = 0; k < batch->n; k++)
	{
		OwnerContext saved;

		become_owner(group->owner, &saved);
		if (SPI_execute_plan(group->plan, (Datum *) &batch->customers[k], NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not evaluate the segment rules");
		restore_user(&saved);
		if (SPI_processed == 1)
			read_verdicts(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, group, MEMBER_ROW(batch, k) + done);
	}
}

/* Every rule for every customer of the batch. */
static void
evaluate_rules(SegmentBatch *batch)
{
	Datum		context[METRICS_CONTEXT_VALUES];
	char		context_nulls[METRICS_CONTEXT_VALUES];
	Datum	   *states = palloc(Max(batch->n, 1) * sizeof(Datum));
	int		   *with_state = palloc(Max(batch->n, 1) * sizeof(int));
	int			nstates = 0;
	Datum		state_array = (Datum) 0;
	int			done = 0;

	memset(batch->member, 0, (size_t) batch->n * rule_count * sizeof(bool));
	if (rules_over_state)
	{
		for (int k = 0; k < batch->n; k++)
		{
			if (batch->states[k] == (Datum) 0)
				continue;
			with_state[nstates] = k;
			states[nstates++] = batch->states[k];
		}
		if (nstates == 0)
			return;
		state_array = PointerGetDatum(construct_array(states, nstates, state_type, -1, false, TYPALIGN_DOUBLE));
		get_metrics_context(context, context_nulls);
	}

	for (int g = 0; g < group_count; g++)
	{
		if (rules_over_state)
			evaluate_group(&rule_groups[g], batch, state_array, with_state, nstates, context, context_nulls, done);
		else
			evaluate_group_by_id(&rule_groups[g], batch, done);
		done += rule_groups[g].count;
	}
}

/* The index of a segment among the rules, or -1. */
static int
rule_index(const char *segment)
{
	for (int i = 0; i < rule_count; i++)
		if (strcmp(rule_cstrings[i], segment) == 0)
			return i;
	return -1;
}

/*
 * A membership a decision changes: customer k enters or leaves a segment;
 * leaving, row_id is the open membership's ctid.
 */
typedef struct MembershipChange
{
	const char *segment;
	int			k;
	bool		entering;
	Datum		row_id;
	const SegmentBatch *batch;
} MembershipChange;

static int
compare_texts(const char *x, const char *y)
{
	return varstr_cmp(x, strlen(x), y, strlen(y), DEFAULT_COLLATION_OID);
}

/*
 * Segment name order, as refresh_segments() goes through the segments
 * (ORDER BY name); then exits before entries, then the customers' order.
 */
static int
compare_changes(const void *a, const void *b)
{
	const MembershipChange *x = a;
	const MembershipChange *y = b;
	int			c = compare_texts(x->segment, y->segment);

	if (c != 0)
		return c;
	if (x->entering != y->entering)
		return x->entering ? 1 : -1;
	return varstr_cmp(VARDATA_ANY(x->batch->customers[x->k]), VARSIZE_ANY_EXHDR(x->batch->customers[x->k]),
					  VARDATA_ANY(y->batch->customers[y->k]), VARSIZE_ANY_EXHDR(y->batch->customers[y->k]),
					  DEFAULT_COLLATION_OID);
}

/*
 * Open the memberships of the customers given (text) in one segment, or
 * close the open memberships given by their ctids (entering false).  By
 * ctid, the exits are a TID scan whatever the plan cache holds: by
 * customer_id = ANY, a generic plan made while the table was small read
 * every open membership of the segment for each batch.  The tests of
 * segment and exited_at are for a membership another transaction changed
 * since it was read (refresh_segments() closing it): the update rechecks
 * them on the newest version, and leaves a closed one alone.
 */
static void
write_changes(const char *segment, Datum *rows, int n, bool entering)
{
	Oid			types[2] = {TEXTOID, entering ? TEXTARRAYOID : TIDARRAYOID};
	Datum		values[2] = {CStringGetTextDatum(segment),
							 PointerGetDatum(entering ?
											 construct_array(rows, n, TEXTOID, -1, false, TYPALIGN_INT) :
											 construct_array(rows, n, TIDOID, sizeof(ItemPointerData), false,
															 TYPALIGN_SHORT))};
	SPIPlanPtr	plan = entering ?
		kept_plan(&enter_plan,
				  "INSERT INTO post_purchase.segment_memberships (customer_id, segment) "
				  "SELECT pg_catalog.unnest($2), $1 "
				  "ON CONFLICT (segment, customer_id) WHERE exited_at IS NULL DO NOTHING",
				  2, types) :
		kept_plan(&exit_plan,
				  "UPDATE post_purchase.segment_memberships m "
				  "SET exited_at = GREATEST(pg_catalog.now(), m.entered_at) "
				  "WHERE m.ctid OPERATOR(pg_catalog.=) ANY ($2) "
				  "AND m.segment OPERATOR(pg_catalog.=) $1 AND m.exited_at IS NULL",
				  2, types);

	if (SPI_execute_plan(plan, values, NULL, false, 0) != (entering ? SPI_OK_INSERT : SPI_OK_UPDATE))
		elog(ERROR, "could not record the customers' segment %s", entering ? "entries" : "exits");
}

/* What write_changes() takes for a change: the customer entering, the membership left. */
static Datum
change_row(const MembershipChange *change)
{
	return change->entering ? change->batch->customers[change->k] : change->row_id;
}

/*
 * Compare the rules' verdicts with the customers' open memberships and
 * write only the difference: most orders change no membership, and then
 * nothing is written at all (no index entries, no statement triggers).
 * The customers' state rows, locked by the orders or by the worker's
 * claim, keep other decisions for them out until this commits;
 * refresh_segments() may race with it, and ON CONFLICT and the exited_at
 * test keep the outcome consistent then.
 *
 * The changes are written segment by segment, in name order, the order in
 * which refresh_segments() writes each segment's, so that the two never
 * hold one membership while waiting for another the other holds (isolation
 * spec segments_refresh_deadlock); within a segment, exits then entries,
 * one statement each for the whole batch.
 */
static void
record_memberships(const SegmentBatch *batch)
{
	Oid			types[1] = {TEXTARRAYOID};
	Datum		ids = PointerGetDatum(construct_array((Datum *) batch->customers, batch->n, TEXTOID, -1, false,
													  TYPALIGN_INT));
	bool	   *open = palloc0((size_t) batch->n * Max(rule_count, 1) * sizeof(bool));
	List	   *changes = NIL;
	MembershipChange *sorted;
	Datum	   *run;
	int			n;
	int			start;

	/*
	 * Not read-only: a fresh snapshot, which sees orders committed
	 * meanwhile.  LATERAL, and OFFSET 0 so that the planner keeps it so: an
	 * index lookup per customer.  Pulled up into a join, planned for the
	 * array's default 10 rows (and, in a generic plan made early, a small
	 * table), it hashed every open membership of the shop for each batch.
	 */
	if (SPI_execute_plan(kept_plan(&open_memberships_plan,
								   "SELECT c.i, m.segment, m.ctid FROM pg_catalog.unnest($1) WITH ORDINALITY c(id, i) "
								   "CROSS JOIN LATERAL (SELECT m.segment, m.ctid "
								   "FROM post_purchase.segment_memberships m "
								   "WHERE m.customer_id OPERATOR(pg_catalog.=) c.id AND m.exited_at IS NULL "
								   "OFFSET 0) m",
								   1, types),
						 &ids, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customers' segment memberships");
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int			k = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1,
														  &isnull)) - 1;
		char	   *segment = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 2);
		int			i = rule_index(segment);
		MembershipChange *change;

		if (i >= 0 && MEMBER_ROW(batch, k)[i])
		{
			open[(size_t) k * rule_count + i] = true;
			continue;
		}
		change = palloc(sizeof(MembershipChange));
		*change = (MembershipChange) {segment, k, false,
			SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 3, &isnull),
							  false, sizeof(ItemPointerData)), batch};
		changes = lappend(changes, change);
	}
	for (int k = 0; k < batch->n; k++)
	{
		for (int i = 0; i < rule_count; i++)
		{
			MembershipChange *change;

			if (!MEMBER_ROW(batch, k)[i] || open[(size_t) k * rule_count + i])
				continue;
			change = palloc(sizeof(MembershipChange));
			*change = (MembershipChange) {rule_cstrings[i], k, true, (Datum) 0, batch};
			changes = lappend(changes, change);
		}
	}
	n = list_length(changes);
	if (n == 0)
		return;

	sorted = palloc(n * sizeof(MembershipChange));
	for (int i = 0; i < n; i++)
		sorted[i] = *(MembershipChange *) list_nth(changes, i);
	qsort(sorted, n, sizeof(MembershipChange), compare_changes);
	/* one statement per run of the same segment and direction */
	run = palloc(n * sizeof(Datum));
	start = 0;
	for (int i = 0; i <= n; i++)
	{
		if (i < n && (i == start || (strcmp(sorted[i].segment, sorted[start].segment) == 0 &&
									 sorted[i].entering == sorted[start].entering)))
		{
			run[i - start] = change_row(&sorted[i]);
			continue;
		}
		write_changes(sorted[start].segment, run, i - start, sorted[start].entering);
		if (i < n)
		{
			start = i;
			run[0] = change_row(&sorted[i]);
		}
	}
}

/* Plan the rules if the segments changed since; false when there is none. */
static bool
rules_ready(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_rules, (Datum) 0);
		callback_registered = true;
	}
	if (rules_stale && rules_planned)
		free_rules();
	if (!rules_planned)
		prepare_rules();
	return rule_count > 0;
}

/*
 * Evaluate and record a batch in a subtransaction (which takes no
 * transaction id when nothing changes); false when it failed, with a
 * warning naming the customer if the batch is one.
 */
static bool
decide_in_subtransaction(SegmentBatch *batch)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		evaluate_rules(batch);
		record_memberships(batch);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(caller);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		if (batch->n == 1)
			ereport(WARNING,
					(errmsg("segment rules failed for customer %s: %s",
							TextDatumGetCString(batch->customers[0]), error->message),
					 errhint("Run post_purchase.refresh_segments() to see which rule fails.")));
		FreeErrorData(error);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* The customer's state row, read as the trigger's user; 0 if none. */
static Datum
read_state(Datum customer)
{
	Oid			types[1] = {TEXTOID};
	bool		isnull;

	if (SPI_execute_plan(kept_plan(&state_plan,
								   "SELECT s FROM post_purchase.customer_state s "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) $1",
								   1, types),
						 &customer, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customer's state");
	if (SPI_processed == 0)
		return (Datum) 0;
	return SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), false, -1);
}

/*
 * The memberships of n customers after their states changed, inside an
 * SPI connection: from the order trigger (a batch of one) or a worker's
 * batch.  states[k] is customer k's customer_state row, 0 if it has none;
 * states NULL reads them (a 1.0 schema's rules read the view by id
 * instead).  A rule that fails for a customer must not fail the shop's
 * order, nor the other customers of a batch: a failed batch is decided
 * again one customer at a time, and each failure is reported as a warning
 * (refresh_segments() shows the error).  The rules are planned and run
 * with search_path locked to pg_catalog, pg_temp, whatever the path of the
 * session that inserted the order.
 */
void
update_segments_of(int n, const Datum *customers, const Datum *states)
{
	int			guc_level = lock_search_path();

	if (n > 0 && rules_ready())
	{
		SegmentBatch batch = {n, customers, states, palloc((size_t) n * rule_count * sizeof(bool))};

		if (states == NULL)
		{
			Datum	   *read = palloc0(n * sizeof(Datum));

			for (int k = 0; k < n && rules_over_state; k++)
				read[k] = read_state(customers[k]);
			batch.states = read;
		}
		if (!decide_in_subtransaction(&batch) && n > 1)
		{
			for (int k = 0; k < n; k++)
			{
				SegmentBatch one = {1, &customers[k], &batch.states[k], batch.member};

				(void) decide_in_subtransaction(&one);
			}
		}
	}
	AtEOXact_GUC(true, guc_level);
}

/* One customer's memberships after its state changed. */
void
update_customer_segments(Datum customer)
{
	update_segments_of(1, &customer, NULL);
}

/* refresh_customer_segments(customer): update_customer_segments() from SQL. */
Datum
refresh_customer_segments(PG_FUNCTION_ARGS)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	update_customer_segments(PG_GETARG_DATUM(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * segment_rule_members(owner, rule): the customers of the session's
 * temporary customer_metrics table (prepare_segment_metrics() fills it and
 * grants it to the owner, for refresh_segment()) for whom the rule holds, evaluated as the segment's
 * owner in a security-restricted operation.  The caller must be able to act
 * as the owner already.
 */
Datum
segment_rule_members(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			owner = PG_GETARG_OID(0);
	char	   *rule = text_to_cstring(PG_GETARG_TEXT_PP(1));
	OwnerContext saved;
	char	   *sql;

	check_may_act_as(owner, "segment rule");
	check_rule_is_expression(rule, "segment rule");
	sql = psprintf("SELECT c.customer_id FROM pg_temp.customer_metrics c WHERE (%s)", rule);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	become_owner(owner, &saved);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not evaluate the segment rule");
	restore_user(&saved);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	SPI_finish();
	return (Datum) 0;
}
