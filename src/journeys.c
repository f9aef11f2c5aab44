/*
 * journeys.c
 *	  Evaluating a journey step's condition, SQL a marketer wrote, as the
 *	  role that owns the journey.
 *
 * The workers that fire steps connect as a superuser.  A condition runs with
 * the rights of the journey's owner instead, in a security-restricted
 * operation (no SET ROLE, no changes to session state), and with
 * search_path locked to pg_catalog, pg_temp, so a function or operator that
 * someone planted in a schema on the caller's path is never what runs.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "segments.h"

PG_FUNCTION_INFO_V1(evaluate_condition);

/*
 * evaluate_condition(owner, condition, customer_id): the condition over the
 * customer's customer_metrics row, as owner; NULL when the customer has no
 * row.  The caller must be able to act as owner already: this function
 * never gives anyone more rights than they have.
 */
Datum
evaluate_condition(PG_FUNCTION_ARGS)
{
	Oid			owner = PG_GETARG_OID(0);
	char	   *condition = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Datum		customer = PG_GETARG_DATUM(2);
	Oid			types[1] = {TEXTOID};
	OwnerContext saved;
	int			guc_level;
	char	   *sql;
	bool		isnull = true;
	Datum		result = (Datum) 0;

	check_may_act_as(owner, "condition");

	/* conditions were checked when added; check again, they are pasted */
	check_rule_is_expression(condition, "step condition");
	sql = psprintf("SELECT (%s)::pg_catalog.bool FROM post_purchase.customer_metrics c "
				   "WHERE c.customer_id OPERATOR(pg_catalog.=) $1", condition);

	/*
	 * An error unwinds both the user switch and the GUC level through the
	 * (sub)transaction abort, so they are only restored by hand on success.
	 */
	become_owner(owner, &saved);
	guc_level = lock_search_path();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 1, types, &customer, NULL, true, 2) != SPI_OK_SELECT)
		elog(ERROR, "could not evaluate the step condition");
	if (SPI_processed == 1)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();

	AtEOXact_GUC(true, guc_level);
	restore_user(&saved);

	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
