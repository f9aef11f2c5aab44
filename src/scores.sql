-- Stored scores (src/scores.c): customer_metrics' columns that are computed
-- from the state under the models, RFM cuts, settings and today, stored in
-- customer_state so that customer_metrics over all customers reads one
-- table.  The workers store them for each customer they decide and, after
-- the context changes (a new model or cut points, a setting, a new day),
-- for every customer, a batch a transaction.

-- Store the scores of up to batch customers whose stored scores do not
-- count (changed since, or computed under another context), going on from
-- where the session's last call stopped; returns how many.  Skips customers
-- another transaction holds (an order being written, a worker's batch).
CREATE FUNCTION post_purchase.store_scores(batch integer DEFAULT 1000) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION post_purchase.store_scores(integer) IS
	'store the scores of up to batch customers whose stored scores do not count; returns how many';
REVOKE ALL ON FUNCTION post_purchase.store_scores(integer) FROM PUBLIC;

-- Store every customer's scores, committing after each batch, for a
-- database that no worker serves (CALL, outside a transaction block).  No
-- SET search_path: a procedure with one cannot commit; every name is
-- qualified instead.
CREATE PROCEDURE post_purchase.store_all_scores(batch integer DEFAULT 10000)
	LANGUAGE plpgsql
	AS $$
DECLARE
	stored bigint;
BEGIN
	LOOP
		stored := post_purchase.store_scores(batch);
		COMMIT;
		EXIT WHEN stored IS NULL OR stored OPERATOR(pg_catalog.<) batch;
	END LOOP;
END
$$;
COMMENT ON PROCEDURE post_purchase.store_all_scores(integer) IS
	'store every customer''s scores whose stored scores do not count, committing after each batch';
REVOKE ALL ON PROCEDURE post_purchase.store_all_scores(integer) FROM PUBLIC;
