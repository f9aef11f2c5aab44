/*
 * answers.c
 *	  The trigger that keeps each customer's latest NPS and CSAT answer in
 *	  post_purchase.customer_state as the shop's survey answers table
 *	  changes (track_survey_answers(), src/answers.sql).
 *
 * An answer is one UPDATE of the customer's state row: the answer replaces
 * the kept one of its kind when it is later (by answered_at; at the same
 * time, the lower score wins, so that the order in which answers arrive
 * does not matter and a recomputation agrees), and the same write leaves
 * the change mark the workers decide from (decisions.c), as an order's does.
 * The latest of a set is a maximum, so adding an answer twice changes
 * nothing: unlike the order trigger's counters, no statement bookkeeping is
 * needed.  Only a delete, or an update, of the very answer that is kept
 * recomputes the customer's latest answers from the answers table, through
 * the index on its customer column that track_survey_answers() ensures.
 *
 * A customer without a state row (no tracked order) has no customer_metrics
 * row for the rules to read: the answer is not kept (the README says how it
 * comes back: refresh_survey_answers()).  Answers of another kind than nps
 * or csat (case-insensitive) are ignored; a score outside its scale, or a
 * NULL score, is ignored with a WARNING: the shop's insert always succeeds.
 *
 * An answer that carries a message's token (the outbox id the NPS survey's
 * payload carries as {{message_id}}) and the same customer as the message
 * records the response on the step's outcome, for journey_stats.
 *
 * Concurrency.  Every write goes through the customer's state row, as the
 * order trigger's do, and names only the answer columns and the mark: an
 * order and an answer for one customer wait for each other and neither
 * loses the other's columns (isolation spec answers_order_race).  A
 * recomputation first locks the row, then reads the answers table in a new
 * statement, so it sees every answer committed before it holds the row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "decisions.h"
#include "segments.h"
#include "trigger_support.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(track_answers_trigger);

/* The scales of the two kinds: NPS is 0..10, CSAT 1..csat_scale. */
#define NPS_MIN 0
#define NPS_MAX 10

typedef enum AnswerKind
{
	KIND_OTHER,
	KIND_NPS,
	KIND_CSAT
} AnswerKind;

/* The tracked columns, from the trigger's arguments. */
typedef struct AnswerColumns
{
	int			customer;
	int			answered_at;
	int			score;
	int			kind;
	int			token;			/* 0 when answers carry no token */
	int			csat_scale;
	bool		mark;			/* leave the decision to a worker */
} AnswerColumns;

/* An answer as the state sees it. */
typedef struct Answer
{
	bool		kept;			/* a kind, customer, time and score in range */
	AnswerKind	kind;
	Datum		customer_key;	/* in the column's own type */
	Datum		customer;		/* as text */
	TimestampTz answered_at;
	int32		score;
	Datum		token;			/* as text, or 0 */
} Answer;

static SPIPlanPtr add_answer_plan;
static SPIPlanPtr held_answer_plan;
static SPIPlanPtr respond_plan;

#define RETRACK_ANSWERS_HINT \
	"Call post_purchase.untrack_survey_answers() and post_purchase.track_survey_answers() with the new column names."

static void
read_columns(TriggerData *trigdata, AnswerColumns *cols)
{
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;

	if (trigger->tgnargs != 6)
		elog(ERROR, "track_answers_trigger needs 6 arguments, got %d", trigger->tgnargs);
	cols->customer = tracked_column(rel, trigger->tgargs[0], RETRACK_ANSWERS_HINT);
	cols->answered_at = tracked_column(rel, trigger->tgargs[1], RETRACK_ANSWERS_HINT);
	cols->score = tracked_column(rel, trigger->tgargs[2], RETRACK_ANSWERS_HINT);
	cols->kind = tracked_column(rel, trigger->tgargs[3], RETRACK_ANSWERS_HINT);
	cols->token = trigger->tgargs[4][0] == '\0' ? 0 :
		tracked_column(rel, trigger->tgargs[4], RETRACK_ANSWERS_HINT);
	cols->csat_scale = pg_strtoint32(trigger->tgargs[5]);
}

/* The kind of an answer: nps or csat in any case, else another kind. */
static AnswerKind
kind_of(Datum value, Oid type)
{
	char	   *kind = TextDatumGetCString(value_as_text(value, type));

	if (pg_strcasecmp(kind, "nps") == 0)
		return KIND_NPS;
	if (pg_strcasecmp(kind, "csat") == 0)
		return KIND_CSAT;
	return KIND_OTHER;
}

/* The score as an int64, from the integer types track_survey_answers() allows. */
static int64
score_of(Datum value, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(value);
		case INT4OID:
			return DatumGetInt32(value);
		case INT8OID:
			return DatumGetInt64(value);
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("the tracked score column has unsupported type %s", format_type_be(type)),
					 errhint("%s", RETRACK_ANSWERS_HINT)));
	}
	return 0;					/* keep the compiler quiet */
}

static void
read_answer(HeapTuple tuple, TupleDesc desc, const AnswerColumns *cols, Answer *answer)
{
	bool		customer_null,
				at_null,
				score_null,
				kind_null;
	Datum		kind = heap_getattr(tuple, cols->kind, desc, &kind_null);
	Datum		score;
	int64		value;
	int			low,
				high;

	memset(answer, 0, sizeof(Answer));
	answer->kind = kind_null ? KIND_OTHER : kind_of(kind, TupleDescAttr(desc, cols->kind - 1)->atttypid);
	answer->customer_key = heap_getattr(tuple, cols->customer, desc, &customer_null);
	answer->answered_at = DatumGetTimestampTz(heap_getattr(tuple, cols->answered_at, desc, &at_null));
	score = heap_getattr(tuple, cols->score, desc, &score_null);
	/* other kinds (a CES question, a free text) are the shop's own business */
	if (answer->kind == KIND_OTHER || customer_null || at_null)
		return;
	answer->customer = value_as_text(answer->customer_key, TupleDescAttr(desc, cols->customer - 1)->atttypid);
	if (cols->token > 0)
	{
		bool		token_null;
		Datum		token = heap_getattr(tuple, cols->token, desc, &token_null);

		if (!token_null)
			answer->token = value_as_text(token, TupleDescAttr(desc, cols->token - 1)->atttypid);
	}

	low = answer->kind == KIND_NPS ? NPS_MIN : 1;
	high = answer->kind == KIND_NPS ? NPS_MAX : cols->csat_scale;
	if (score_null)
	{
		ereport(WARNING,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("survey answer of customer %s has no score; it is not kept in the customer state",
						TextDatumGetCString(answer->customer))));
		return;
	}
	value = score_of(score, TupleDescAttr(desc, cols->score - 1)->atttypid);
	if (value < low || value > high)
	{
		/* the shop's insert stands: refusing it would lose the answer itself */
		ereport(WARNING,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s score %lld of customer %s is outside %d..%d; it is not kept in the customer state",
						answer->kind == KIND_NPS ? "NPS" : "CSAT", (long long) value,
						TextDatumGetCString(answer->customer), low, high)));
		return;
	}
	answer->score = (int32) value;
	answer->kept = true;
}

/*
 * The customer's state after an answer: the answer replaces the kept one of
 * its kind if it is later, or as late with a lower score, and marks the
 * customer ($6) in the same write.  Returns whether the state changed.
 * No state row: nothing to do.
 */
static bool
add_answer(const Answer *answer, bool mark)
{
	Oid			types[5] = {TEXTOID, BOOLOID, INT4OID, TIMESTAMPTZOID, BOOLOID};
	Datum		values[5] = {answer->customer, BoolGetDatum(answer->kind == KIND_NPS),
		Int32GetDatum(answer->score), TimestampTzGetDatum(answer->answered_at), BoolGetDatum(mark)};

	if (SPI_execute_plan(kept_plan(&add_answer_plan,
								   "UPDATE post_purchase.customer_state s SET "
								   "last_nps = CASE WHEN $2 THEN $3 ELSE s.last_nps END, "
								   "last_nps_at = CASE WHEN $2 THEN $4 ELSE s.last_nps_at END, "
								   "last_csat = CASE WHEN $2 THEN s.last_csat ELSE $3 END, "
								   "last_csat_at = CASE WHEN $2 THEN s.last_csat_at ELSE $4 END, "
								   "changed_at = CASE WHEN $5 THEN coalesce(s.changed_at, pg_catalog.now()) "
								   "ELSE s.changed_at END "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) $1 AND CASE WHEN $2 "
								   "THEN s.last_nps_at IS NULL OR $4 OPERATOR(pg_catalog.>) s.last_nps_at "
								   "OR ($4 OPERATOR(pg_catalog.=) s.last_nps_at "
								   "AND $3 OPERATOR(pg_catalog.<) s.last_nps) "
								   "ELSE s.last_csat_at IS NULL OR $4 OPERATOR(pg_catalog.>) s.last_csat_at "
								   "OR ($4 OPERATOR(pg_catalog.=) s.last_csat_at "
								   "AND $3 OPERATOR(pg_catalog.<) s.last_csat) END",
								   5, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the survey answer in the customer state");
	return SPI_processed > 0;
}

/*
 * Whether the answer is the one the state keeps for its customer, locking
 * the state row if so (the first step of a recomputation).
 */
static bool
hold_if_kept(const Answer *answer)
{
	Oid			types[4] = {TEXTOID, BOOLOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[4] = {answer->customer, BoolGetDatum(answer->kind == KIND_NPS),
		Int32GetDatum(answer->score), TimestampTzGetDatum(answer->answered_at)};

	if (SPI_execute_plan(kept_plan(&held_answer_plan,
								   "SELECT FROM post_purchase.customer_state s "
								   "WHERE s.customer_id OPERATOR(pg_catalog.=) $1 AND CASE WHEN $2 "
								   "THEN s.last_nps_at OPERATOR(pg_catalog.=) $4 "
								   "AND s.last_nps OPERATOR(pg_catalog.=) $3 "
								   "ELSE s.last_csat_at OPERATOR(pg_catalog.=) $4 "
								   "AND s.last_csat OPERATOR(pg_catalog.=) $3 END FOR UPDATE",
								   4, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the customer state");
	return SPI_processed > 0;
}

/*
 * The statement that recomputes one customer's latest answers from the
 * answers table, through its customer index: $1 the customer in the
 * column's type, $2 as text, $3 whether to mark.  The same selection and
 * order as refresh_survey_answers() (src/answers.sql).  Writes only if
 * something changed.
 */
static char *
recompute_sql(Relation rel, const AnswerColumns *cols)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *customer = quote_identifier(NameStr(TupleDescAttr(desc, cols->customer - 1)->attname));
	const char *at = quote_identifier(NameStr(TupleDescAttr(desc, cols->answered_at - 1)->attname));
	const char *score = quote_identifier(NameStr(TupleDescAttr(desc, cols->score - 1)->attname));
	const char *kind = quote_identifier(NameStr(TupleDescAttr(desc, cols->kind - 1)->attname));
	/* a partition's trigger: the customer's answers are in every partition */
	Oid			tracked = rel->rd_rel->relispartition ?
		llast_oid(get_partition_ancestors(RelationGetRelid(rel))) : RelationGetRelid(rel);
	char	   *table = psprintf("%s%s", rel->rd_rel->relispartition ? "" : "ONLY ",
								 quote_qualified_identifier(get_namespace_name(get_rel_namespace(tracked)),
															get_rel_name(tracked)));
	const char *latest =
		"LEFT JOIN LATERAL (SELECT a.%3$s::pg_catalog.int4 AS score, a.%2$s AS at FROM %5$s a "
		"WHERE a.%1$s OPERATOR(pg_catalog.=) $1 AND a.%2$s IS NOT NULL "
		"AND pg_catalog.lower(a.%4$s::pg_catalog.text) OPERATOR(pg_catalog.=) '%6$s' "
		"AND a.%3$s OPERATOR(pg_catalog.>=) %7$d AND a.%3$s OPERATOR(pg_catalog.<=) %8$d "
		"ORDER BY a.%2$s DESC, a.%3$s LIMIT 1) %6$s ON true ";

	return psprintf("UPDATE post_purchase.customer_state s SET "
					"last_nps = l.nps_score, last_nps_at = l.nps_at, "
					"last_csat = l.csat_score, last_csat_at = l.csat_at, "
					"changed_at = CASE WHEN $3 THEN coalesce(s.changed_at, pg_catalog.now()) "
					"ELSE s.changed_at END "
					"FROM (SELECT nps.score AS nps_score, nps.at AS nps_at, "
					"csat.score AS csat_score, csat.at AS csat_at FROM (SELECT) one %s%s) l "
					"WHERE s.customer_id OPERATOR(pg_catalog.=) $2 AND "
					"(s.last_nps, s.last_nps_at, s.last_csat, s.last_csat_at) IS DISTINCT FROM "
					"(l.nps_score, l.nps_at, l.csat_score, l.csat_at)",
					psprintf(latest, customer, at, score, kind, table, "nps", NPS_MIN, NPS_MAX),
					psprintf(latest, customer, at, score, kind, table, "csat", 1, cols->csat_scale));
}

/* The recompute plan, kept for its text: the answers table and its columns, the CSAT scale. */
static SPIPlanPtr
recompute_plan(Relation rel, const AnswerColumns *cols)
{
	static TextPlan kept;
	Oid			types[3] = {TupleDescAttr(RelationGetDescr(rel), cols->customer - 1)->atttypid, TEXTOID,
	BOOLOID};

	return text_plan(&kept, recompute_sql(rel, cols), 3, types, "the latest answers' recomputation");
}

/*
 * An answer went away or changed: if it is the one kept, recompute the
 * customer's latest answers.  Returns whether the state changed.
 */
static bool
remove_answer(Relation rel, const AnswerColumns *cols, const Answer *answer)
{
	Datum		values[3] = {answer->customer_key, answer->customer, BoolGetDatum(cols->mark)};

	if (!hold_if_kept(answer))
		return false;
	/* not read-only: a fresh snapshot, taken now that the row is held */
	if (SPI_execute_plan(recompute_plan(rel, cols), values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not recompute the customer's latest answers");
	return SPI_processed > 0;
}

/*
 * The answer carries the token of a message sent to the same customer: the
 * step's outcome records the first response.  The token is the message's
 * outbox id, as text; the customer's outcomes are found through their index,
 * so no index on the token is kept for every fired step.
 */
static void
record_response(const Answer *answer)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3] = {answer->customer, answer->token, TimestampTzGetDatum(answer->answered_at)};

	if (SPI_execute_plan(kept_plan(&respond_plan,
								   "UPDATE post_purchase.step_outcomes o SET responded_at = $3 "
								   "WHERE o.customer_id OPERATOR(pg_catalog.=) $1 "
								   "AND o.outbox_id::pg_catalog.text OPERATOR(pg_catalog.=) "
								   "pg_catalog.lower(pg_catalog.btrim($2)) "
								   "AND o.outcome OPERATOR(pg_catalog.=) 'fired' AND o.responded_at IS NULL",
								   3, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the survey response");
}

static bool
same_customer(const Answer *a, const Answer *b)
{
	return DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, a->customer, b->customer));
}

/* Whether two versions of an answer mean the same to the state. */
static bool
same_answer(const Answer *a, const Answer *b)
{
	if (a->kept != b->kept)
		return false;
	if (!a->kept)
		return true;
	return a->kind == b->kind && a->score == b->score && a->answered_at == b->answered_at &&
		same_customer(a, b);
}

Datum
track_answers_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	AnswerColumns cols;
	Answer		old_answer = {false},
				new_answer = {false};
	TriggerEvent event;
	bool		decide_now;
	bool		old_changed = false,
				new_changed = false;

	event = check_tracking_trigger(fcinfo, "track_answers_trigger", "track_survey_answers", -1);

	desc = RelationGetDescr(trigdata->tg_relation);
	read_columns(trigdata, &cols);
	if (TRIGGER_FIRED_BY_INSERT(event))
		read_answer(trigdata->tg_trigtuple, desc, &cols, &new_answer);
	else if (TRIGGER_FIRED_BY_DELETE(event))
		read_answer(trigdata->tg_trigtuple, desc, &cols, &old_answer);
	else
	{
		read_answer(trigdata->tg_trigtuple, desc, &cols, &old_answer);
		read_answer(trigdata->tg_newtuple, desc, &cols, &new_answer);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	decide_now = decide_in_order_transaction();
	cols.mark = !decide_now;

	if (!same_answer(&old_answer, &new_answer))
	{
		/* the old version first: a recomputation sees the new one in the table */
		if (old_answer.kept)
			old_changed = remove_answer(trigdata->tg_relation, &cols, &old_answer);
		if (new_answer.kept)
			new_changed = add_answer(&new_answer, cols.mark);
	}
	/* a response counts once, from the first answer that carries the token */
	if (new_answer.kept && new_answer.token != (Datum) 0 &&
		(old_answer.token == (Datum) 0 ||
		 !DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, old_answer.token, new_answer.token))))
		record_response(&new_answer);

	/* the same decision as after an order, without new orders */
	if (decide_now)
	{
		if (old_changed)
			update_customer_segments(old_answer.customer);
		if (new_changed && !(old_changed && same_customer(&old_answer, &new_answer)))
			update_customer_segments(new_answer.customer);
	}
	else if (old_changed || new_changed)
		wake_workers_at_commit_of_xact();
	SPI_finish();
	return PointerGetDatum(NULL);
}
