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

/* The parameters of a rules query: the customer's state, then the metrics context. */
#define RULE_PARAMS (1 + METRICS_CONTEXT_VALUES)

/*
 * Plan "SELECT ARRAY[(rule), ...]::bool[]" for the rules of one owner, over
 * the customer's customer_metrics row: metrics_of() the state row and the
 * metrics context given as parameters, which reads no table; or, in a 1.0
 * schema, the view for the customer given by id.
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
	appendStringInfoString(&sql, "SELECT ARRAY[");
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
		/* no stored prediction counts: the order changed the customer after any */
		appendStringInfoString(&sql, "FROM (SELECT * FROM post_purchase.metrics_of($1, "
							   "post_purchase.today_in_zone($2, $3), $4, $5, $6, $7, $8, NULL) OFFSET 0) c");
		types[0] = get_rel_type_id(get_relname_relid("customer_state",
													 get_namespace_oid("post_purchase", false)));
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
 * One owner's rules over the parameters, run as that owner in a
 * security-restricted operation, into member; all false when the customer
 * has no orders.  An error unwinds the user switch with the subtransaction.
 */
static void
evaluate_group(const RuleGroup *group, Datum *params, const char *nulls, bool *member)
{
	OwnerContext saved;
	bool		isnull = true;
	Datum		result = (Datum) 0;
	Datum	   *values;
	bool	   *value_nulls;
	int			n;

	become_owner(group->owner, &saved);
	/* not read-only: the snapshot must see the state the order just wrote */
	if (SPI_execute_plan(group->plan, params, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not evaluate the segment rules");
	if (SPI_processed == 1)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	restore_user(&saved);

	memset(member, 0, group->count * sizeof(bool));
	if (isnull)
		return;
	deconstruct_array(DatumGetArrayTypeP(result), BOOLOID, 1, true, TYPALIGN_CHAR, &values, &value_nulls, &n);
	if (n != group->count)
		elog(ERROR, "segment rules returned %d flags, expected %d", n, group->count);
	/* a rule that is NULL for the customer does not hold */
	for (int i = 0; i < n; i++)
		member[i] = !value_nulls[i] && DatumGetBool(values[i]);
}

/* The customer's state row into *state, read as the trigger's user; false if none. */
static bool
read_state(Datum customer, Datum *state)
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
		return false;
	*state = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return true;
}

/* Every rule for the customer, in the order of rule_cstrings. */
static void
evaluate_rules(Datum customer, bool *member)
{
	Datum		params[RULE_PARAMS];
	char		nulls[RULE_PARAMS];
	int			done = 0;

	nulls[0] = ' ';
	if (!rules_over_state)
		params[0] = customer;
	else if (read_state(customer, &params[0]))
		get_metrics_context(params + 1, nulls + 1);
	else
	{
		/* no state: the customer has no order left, and no rule holds */
		memset(member, 0, rule_count * sizeof(bool));
		return;
	}

	for (int g = 0; g < group_count; g++)
	{
		evaluate_group(&rule_groups[g], params, nulls, member + done);
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

/* A text[] of the segment names in list. */
static Datum
names_array(List *names)
{
	Datum	   *texts = palloc(list_length(names) * sizeof(Datum));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, names)
		texts[n++] = CStringGetTextDatum((const char *) lfirst(lc));
	return PointerGetDatum(construct_array(texts, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* A membership the order changes: a segment entered or left. */
typedef struct MembershipChange
{
	const char *segment;
	bool		entering;
} MembershipChange;

/* Segment name order, as refresh_segments() goes through the segments (ORDER BY name). */
static int
compare_changes(const void *a, const void *b)
{
	const char *x = ((const MembershipChange *) a)->segment;
	const char *y = ((const MembershipChange *) b)->segment;

	return varstr_cmp(x, strlen(x), y, strlen(y), DEFAULT_COLLATION_OID);
}

/*
 * Open the customer's memberships of the segments in names, inserted in the
 * array's order, or close them (entering false).
 */
static void
write_changes(Datum customer, List *names, bool entering)
{
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2] = {customer, names_array(names)};
	SPIPlanPtr	plan = entering ?
		kept_plan(&enter_plan,
				  "INSERT INTO post_purchase.segment_memberships (customer_id, segment) "
				  "SELECT $1, pg_catalog.unnest($2) "
				  "ON CONFLICT (segment, customer_id) WHERE exited_at IS NULL DO NOTHING",
				  2, types) :
		kept_plan(&exit_plan,
				  "UPDATE post_purchase.segment_memberships m "
				  "SET exited_at = GREATEST(pg_catalog.now(), m.entered_at) "
				  "WHERE m.customer_id OPERATOR(pg_catalog.=) $1 "
				  "AND m.segment OPERATOR(pg_catalog.=) ANY ($2) AND m.exited_at IS NULL",
				  2, types);

	if (SPI_execute_plan(plan, values, NULL, false, 0) != (entering ? SPI_OK_INSERT : SPI_OK_UPDATE))
		elog(ERROR, "could not record the customer's segment %s", entering ? "entries" : "exits");
}

/*
 * Compare the rules' verdicts with the customer's open memberships and write
 * only the difference: most orders change no membership, and then nothing
 * is written at all (no index entries, no statement triggers).  The
 * customer's state row, locked by the order, keeps other orders of the
 * customer out until this commits; refresh_segments() may race with it, and
 * ON CONFLICT and the exited_at test keep the outcome consistent then.
 *
 * The changes are written in segment name order, the order in which
 * refresh_segments() writes each segment's, so that the two never hold one
 * of the customer's memberships while waiting for another the other holds
 * (isolation spec segments_refresh_deadlock).  Each exit is a statement of
 * its own (an UPDATE's row order is its plan's); a run of entries is one,
 * inserted in the array's order.
 */
static void
record_memberships(Datum customer, const bool *member)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {customer};
	bool	   *open = palloc0(rule_count * sizeof(bool));
	MembershipChange *changes;
	int			n = 0;
	List	   *entering = NIL;

	/* not read-only: a fresh snapshot, which sees orders committed meanwhile */
	if (SPI_execute_plan(kept_plan(&open_memberships_plan,
								   "SELECT m.segment FROM post_purchase.segment_memberships m "
								   "WHERE m.customer_id OPERATOR(pg_catalog.=) $1 AND m.exited_at IS NULL",
								   1, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customer's segment memberships");
	changes = palloc((SPI_processed + rule_count) * sizeof(MembershipChange));
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		char	   *segment = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1);
		int			i = rule_index(segment);

		if (i >= 0 && member[i])
			open[i] = true;
		else
			changes[n++] = (MembershipChange) {segment, false};
	}
	for (int i = 0; i < rule_count; i++)
		if (member[i] && !open[i])
			changes[n++] = (MembershipChange) {rule_cstrings[i], true};
	if (n == 0)
		return;

	qsort(changes, n, sizeof(MembershipChange), compare_changes);
	for (int i = 0; i < n; i++)
	{
		if (changes[i].entering)
		{
			entering = lappend(entering, (void *) changes[i].segment);
			continue;
		}
		if (entering != NIL)
			write_changes(customer, entering, true);
		entering = NIL;
		write_changes(customer, list_make1((void *) changes[i].segment), false);
	}
	if (entering != NIL)
		write_changes(customer, entering, true);
}

/*
 * The customer's memberships after an order changed the customer, for the
 * order trigger, inside its SPI connection.  A rule that fails for this
 * customer must not fail the shop's order, so the evaluation runs in a
 * subtransaction (which takes no transaction id when nothing changes); a
 * failure is reported as a warning and refresh_segments() shows the error.
 * The rules are planned and run with search_path locked to pg_catalog,
 * pg_temp, whatever the path of the session that inserted the order.
 */
void
update_customer_segments(Datum customer)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	int			guc_level;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_rules, (Datum) 0);
		callback_registered = true;
	}
	guc_level = lock_search_path();
	if (rules_stale && rules_planned)
		free_rules();
	if (!rules_planned)
		prepare_rules();
	if (rule_count == 0)
	{
		AtEOXact_GUC(true, guc_level);
		return;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		bool	   *member = palloc(rule_count * sizeof(bool));

		evaluate_rules(customer, member);
		record_memberships(customer, member);
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
		ereport(WARNING,
				(errmsg("segment rules failed for customer %s: %s",
						TextDatumGetCString(customer), error->message),
				 errhint("Run post_purchase.refresh_segments() to see which rule fails.")));
	}
	PG_END_TRY();
	AtEOXact_GUC(true, guc_level);
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
