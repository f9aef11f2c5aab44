-- Customer state kept current by a trigger on the shop's orders table
-- (src/tracking.c).  One orders table is tracked at a time.

CREATE TABLE post_purchase.settings (
	name text PRIMARY KEY,
	value text NOT NULL,
	description text NOT NULL
);
COMMENT ON TABLE post_purchase.settings IS 'post_purchase configuration, one row per setting';
INSERT INTO post_purchase.settings VALUES
	('time_zone', 'UTC', 'the shop''s time zone: orders on one calendar day of this zone are one purchase');

CREATE TABLE post_purchase.tracked_orders (
	orders regclass PRIMARY KEY,
	customer_column name NOT NULL,
	ordered_at_column name NOT NULL,
	amount_column name NOT NULL,
	time_zone text NOT NULL,
	backfilled boolean NOT NULL,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.tracked_orders IS 'the shop''s orders table that track_orders attached its trigger to';

CREATE TABLE post_purchase.customer_state (
	customer_id text PRIMARY KEY,
	orders bigint NOT NULL,
	revenue numeric NOT NULL,
	first_order_at timestamptz NOT NULL,
	last_order_at timestamptz NOT NULL,
	purchase_days bigint NOT NULL,
	first_day date NOT NULL,
	last_day date NOT NULL,
	first_day_revenue numeric NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- the latest NPS and CSAT answer and when it was given, kept by the
	-- survey answers trigger (src/answers.c), never by the order trigger
	last_nps integer,
	last_nps_at timestamptz,
	last_csat integer,
	last_csat_at timestamptz,
	-- the change mark (src/decisions.c): since when the customer has
	-- changed without a decision (NULL: decided), how many orders were ever
	-- inserted for them, and how many of those were decided
	changed_at timestamptz,
	order_seq bigint NOT NULL DEFAULT 0,
	decided_seq bigint NOT NULL DEFAULT 0,
	-- the customer's scores, stored (src/scores.c): the customer_metrics
	-- columns that depend on the models, RFM cuts, settings and today, as
	-- computed for day scored_on under metrics context version
	-- scored_context.  They count only while both match (customer_metrics
	-- computes the rest live), and every change of the state above sets
	-- scored_on to NULL in the same write.
	scored_on date,
	scored_context bigint,
	average_order_value numeric,
	monetary_value numeric,
	p_alive double precision,
	expected_purchases_90d double precision,
	clv_12m double precision,
	r_score integer,
	f_score integer,
	m_score integer,
	rfm_segment text,
	lifecycle_stage text
);
COMMENT ON TABLE post_purchase.customer_state IS 'per customer: orders, revenue, first and last order, purchase days; kept by the order trigger';
-- the workers take the oldest marks first
CREATE INDEX customer_state_changed ON post_purchase.customer_state (changed_at) WHERE changed_at IS NOT NULL;

CREATE FUNCTION post_purchase.track_orders_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.track_orders_trigger() FROM PUBLIC;

-- TRUNCATE of the orders table empties the state with it.
CREATE FUNCTION post_purchase.track_orders_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_state;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.track_orders_truncate() FROM PUBLIC;

-- The keyword before a tracked table in a FROM clause: the rows the
-- trigger tracks are a partitioned table's (in its partitions), or else
-- the table's own, ONLY (an inheritance child's are not tracked: the
-- trigger is the parent's).  The backfill, the survey answers' refresh and
-- the backfill's error path read through it.
CREATE FUNCTION post_purchase.tracked_rows_keyword(rel regclass)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY' END
	FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel
$$;
REVOKE ALL ON FUNCTION post_purchase.tracked_rows_keyword(regclass) FROM PUBLIC;

-- The query of every customer's state, recomputed from the orders table,
-- with every order decided: what the trigger keeps incrementally, and what
-- its rare paths recompute for one customer (src/tracking.c, with the same
-- aggregates).  Shared by the backfill, which runs it directly, and by
-- verify_state().  The orders are grouped by customer (a string by its
-- bytes, the equality the trigger keys on); purchase_totals()
-- merges a customer's orders into purchase days in the tracked zone, as
-- the trigger does, so no sort or hash table ever holds a row per day.
-- The customers come out sorted, and the backfill inserts in primary key
-- order, each index entry going to the rightmost leaf instead of to a
-- random page (the random inserts cost three times the rest of the load).
-- The rows of a partitioned table are in its partitions; an inheritance
-- child's are not tracked (the trigger is the parent's).  With report, the
-- backfill's progress (src/progress.c): each order read, then each
-- customer's state written, counts one (a C call per row: a few percent of
-- the backfill); verify_state() does not count, so its plan may stay
-- parallel.
CREATE FUNCTION post_purchase.recomputed_state_query(t post_purchase.tracked_orders, report boolean DEFAULT false)
	RETURNS text
	LANGUAGE sql STABLE
	AS $$
	SELECT pg_catalog.format(
		'SELECT c.customer::pg_catalog.text COLLATE pg_catalog."C", c.orders, (c.totals).revenue, c.first_at,
				c.last_at, (c.totals).purchase_days, (c.totals).first_day, (c.totals).last_day,
				(c.totals).first_day_revenue, pg_catalog.now(), NULL::pg_catalog.timestamptz, c.orders, c.orders
		 FROM (SELECT %1$s AS customer, pg_catalog.count(*) AS orders,
					  pg_catalog.min(%2$I) AS first_at, pg_catalog.max(%2$I) AS last_at,
					  post_purchase.purchase_totals(%2$I, coalesce(%3$I::pg_catalog.numeric, 0), %4$L) AS totals
			   FROM %5$s %6$s
			   WHERE %9$I IS NOT NULL AND %2$I IS NOT NULL%7$s
			   GROUP BY 1%8$s) c
		 ORDER BY 1',
		-- integers and uuids are equal exactly when their texts are, the
		-- equality the trigger keys on: grouped as they are, the text is
		-- made once per customer instead of once per order; anything else
		-- (a string) groups by its text's bytes, since a nondeterministic
		-- collation would merge customers
		CASE WHEN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
				   WHERE a.attrelid OPERATOR(pg_catalog.=) t.orders
					 AND a.attname OPERATOR(pg_catalog.=) t.customer_column)
				  OPERATOR(pg_catalog.=) ANY ('{bigint,integer,uuid}'::pg_catalog.regtype[])
			 THEN pg_catalog.quote_ident(t.customer_column)
			 ELSE pg_catalog.format('%I::pg_catalog.text COLLATE pg_catalog."C"', t.customer_column) END,
		t.ordered_at_column, t.amount_column, t.time_zone,
		post_purchase.tracked_rows_keyword(t.orders),
		t.orders,
		CASE WHEN report THEN ' AND post_purchase.progress_advance()' ELSE '' END,
		CASE WHEN report THEN ' HAVING post_purchase.progress_advance(1, ''writing customer state'', ''customers'')'
			 ELSE '' END,
		t.customer_column)
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_state_query(post_purchase.tracked_orders, boolean) FROM PUBLIC;

-- The state of every customer, recomputed from the orders table.  Used by
-- verify_state().
CREATE FUNCTION post_purchase.recomputed_state()
	RETURNS SETOF post_purchase.customer_state
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t post_purchase.tracked_orders;
BEGIN
	SELECT * INTO t FROM post_purchase.tracked_orders;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	-- the answers' columns and the stored scores are not the orders'
	-- (verify_state() compares the orders')
	RETURN QUERY EXECUTE 'SELECT q.c1, q.c2, q.c3, q.c4, q.c5, q.c6, q.c7, q.c8, q.c9, q.c10, '
		|| 'NULL::pg_catalog.int4, NULL::pg_catalog.timestamptz, NULL::pg_catalog.int4, NULL::pg_catalog.timestamptz, '
		|| 'q.c11, q.c12, q.c13, NULL::pg_catalog.date, NULL::pg_catalog.int8, NULL::pg_catalog.numeric, '
		|| 'NULL::pg_catalog.numeric, NULL::pg_catalog.float8, NULL::pg_catalog.float8, NULL::pg_catalog.float8, '
		|| 'NULL::pg_catalog.int4, NULL::pg_catalog.int4, NULL::pg_catalog.int4, NULL::pg_catalog.text, '
		|| 'NULL::pg_catalog.text FROM (' || post_purchase.recomputed_state_query(t)
		|| ') q(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13)';
END
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_state() FROM PUBLIC;

-- An index whose first key is the customer column, for the trigger's rare
-- paths (a late order, an update, a delete), which recompute one customer
-- from the orders table: through it they read that customer's orders, not
-- the table.  NULL when the table has none.
CREATE FUNCTION post_purchase.customer_index(orders regclass, customer_column name)
	RETURNS regclass
	LANGUAGE sql STABLE
	AS $$
	SELECT i.indexrelid::pg_catalog.regclass
	FROM pg_catalog.pg_index i
	JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
	JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) ic.relam
	JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
		AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]
	WHERE i.indrelid OPERATOR(pg_catalog.=) orders AND a.attname OPERATOR(pg_catalog.=) customer_column
	  AND i.indisvalid AND i.indpred IS NULL AND am.amname OPERATOR(pg_catalog.=) ANY (ARRAY['btree', 'hash'])
	ORDER BY i.indnkeyatts, ic.relname
	LIMIT 1
$$;
REVOKE ALL ON FUNCTION post_purchase.customer_index(regclass, name) FROM PUBLIC;

-- The customer index of a tracked table (the orders, or the survey
-- answers), created when there is none, or an error with a hint when the
-- caller may not create it; for_trigger ('order' or 'survey answers') says
-- whose trigger needs it, in the NOTICE and the error.
CREATE FUNCTION post_purchase.ensure_customer_index(orders regclass, customer_column name, for_trigger text)
	RETURNS regclass
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	found regclass := post_purchase.customer_index(orders, customer_column);
BEGIN
	IF found IS NOT NULL THEN
		RETURN found;
	END IF;
	BEGIN
		EXECUTE format('CREATE INDEX ON %s (%I)', orders, customer_column);
	EXCEPTION WHEN insufficient_privilege THEN
		RAISE EXCEPTION '% has no index on its column "%"', orders, customer_column
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = CASE for_trigger
							   WHEN 'survey answers' THEN 'An updated or deleted answer that was the customer''s latest makes the survey answers trigger find the customer''s latest answer again, through such an index.'
							   ELSE 'A late, updated or deleted order makes the trigger recompute its customer from the orders table, through such an index.' END,
				  HINT = format('Have the table''s owner run: CREATE INDEX ON %s (%I);', orders, customer_column);
	END;
	found := post_purchase.customer_index(orders, customer_column);
	RAISE NOTICE 'created index % on %(%) for the % trigger', found, orders, customer_column, for_trigger;
	RETURN found;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.ensure_customer_index(regclass, name, text) FROM PUBLIC;

-- Citus (README, "Citus"): a table Citus manages (distributed, reference,
-- or a Citus local table) cannot be tracked.  Citus refuses triggers on
-- distributed tables, and with citus.enable_unsafe_triggers it creates them
-- on the shards, where the trigger runs on the node holding each shard and
-- writes that node's customer_state: the coordinator's state, filled by the
-- backfill, would never follow a new order.  Detected without depending on
-- Citus: its catalog pg_dist_partition exists in a database only once the
-- citus extension is created there (pg_catalog takes no table without
-- allow_system_table_mods), and it lists every table Citus manages,
-- partitions of a distributed partitioned table included.
CREATE FUNCTION post_purchase.check_not_distributed(tab regclass, caller text)
	RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	method "char";
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN;
	END IF;
	-- dynamic: the catalog is not there to plan against without Citus
	EXECUTE 'SELECT p.partmethod FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1'
		INTO method USING tab;
	IF method IS NOT NULL THEN
		RAISE EXCEPTION '%() cannot track %, a table managed by Citus', caller, tab
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'Citus does not support triggers on distributed tables; with citus.enable_unsafe_triggers the trigger would run on the shards of the worker nodes, and the customer state on this node would not follow new orders.',
				  HINT = 'Track an undistributed orders table; the metric aggregates work over distributed tables (README, section "Citus").';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.check_not_distributed(regclass, text) FROM PUBLIC;

CREATE FUNCTION post_purchase.track_orders(orders regclass,
										   customer_column name DEFAULT 'customer_id',
										   ordered_at_column name DEFAULT 'ordered_at',
										   amount_column name DEFAULT 'amount',
										   backfill boolean DEFAULT true)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	tracked regclass;
	zone text;
	column_type regtype;
	bad_customer text;
BEGIN
	-- the backfill must see every order committed before the lock: a
	-- transaction snapshot taken before it would miss some
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_orders() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT t.orders INTO tracked FROM post_purchase.tracked_orders t;
	IF FOUND THEN
		RAISE EXCEPTION 'post_purchase already tracks %', tracked
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_orders() first; one orders table is tracked at a time.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = orders) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', orders USING ERRCODE = 'wrong_object_type';
	END IF;
	PERFORM post_purchase.check_not_distributed(orders, 'track_orders');

	-- every column must exist with a type the trigger understands
	column_type := post_purchase.tracked_column_type(orders, customer_column, 'customer',
		ARRAY['bigint', 'integer', 'uuid', 'text', 'character varying']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, ordered_at_column, 'ordered_at',
		ARRAY['timestamp with time zone']::regtype[]);
	column_type := post_purchase.tracked_column_type(orders, amount_column, 'amount',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);

	SELECT s.value INTO zone FROM post_purchase.settings s WHERE s.name = 'time_zone';
	PERFORM now() AT TIME ZONE zone;	-- a valid zone name, or an error here

	-- what takes long (the lock, the index, the backfill) shows in the
	-- progress view and NOTICEs (src/progress.c)
	PERFORM post_purchase.progress_start('track_orders');
	-- no order may change between the backfill and the trigger taking over
	PERFORM post_purchase.progress_phase('waiting for a lock on the orders table');
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', orders);
	PERFORM post_purchase.progress_phase('attaching the triggers');
	INSERT INTO post_purchase.tracked_orders
		VALUES (orders, customer_column, ordered_at_column, amount_column, zone, backfill);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L)',
				   orders, customer_column, ordered_at_column, amount_column, zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_orders_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_orders_truncate()', orders);

	PERFORM post_purchase.progress_phase('ensuring the customer index');
	PERFORM post_purchase.ensure_customer_index(orders, customer_column, 'order');

	IF backfill THEN
		-- the orders read count against the planner's estimate (no scan
		-- to count them first); orders without a customer or time are
		-- not counted, so done may end below the estimate, or above it
		PERFORM post_purchase.progress_count(post_purchase.progress_estimated_rows(orders), 'orders');
		PERFORM post_purchase.progress_phase('reading orders');
		-- set-based and executed directly: a set-returning function in
		-- between would first copy every row into a tuplestore
		-- (the backfilled orders count as decided: they enroll no one)
		BEGIN
			EXECUTE 'INSERT INTO post_purchase.customer_state (customer_id, orders, revenue, first_order_at, '
				|| 'last_order_at, purchase_days, first_day, last_day, first_day_revenue, updated_at, changed_at, '
				|| 'order_seq, decided_seq) '
				|| post_purchase.recomputed_state_query((SELECT t FROM post_purchase.tracked_orders t), true);
		EXCEPTION WHEN invalid_parameter_value THEN
			-- purchase_totals() refuses a NaN or infinite amount without
			-- knowing whose it is: name a customer who has one (this scan
			-- runs only on the way to the error)
			-- the rows the backfill read
			EXECUTE format('SELECT %1$I::text FROM %5$s %2$s WHERE %1$I IS NOT NULL AND %3$I IS NOT NULL '
						   'AND %4$I::numeric IN (''NaN'', ''Infinity'', ''-Infinity'') LIMIT 1',
						   customer_column, orders, ordered_at_column, amount_column,
						   post_purchase.tracked_rows_keyword(orders))
				INTO bad_customer;
			IF bad_customer IS NULL THEN
				RAISE;
			END IF;
			RAISE EXCEPTION 'orders of customer % have a NaN or infinite amount', bad_customer
				USING ERRCODE = 'invalid_parameter_value';
		END;
		-- the state is new: the tracked survey answers go back into it
		IF EXISTS (SELECT FROM post_purchase.tracked_survey_answers) THEN
			PERFORM post_purchase.refresh_survey_answers();
		END IF;
	END IF;
	PERFORM post_purchase.progress_finish();
END
$$;
COMMENT ON FUNCTION post_purchase.track_orders(regclass, name, name, name, boolean) IS
	'attach the order trigger to the shop''s orders table and backfill the customer state from it';
REVOKE ALL ON FUNCTION post_purchase.track_orders(regclass, name, name, name, boolean) FROM PUBLIC;

-- The type of a tracked column, checked against the types allowed for it.
CREATE FUNCTION post_purchase.tracked_column_type(orders regclass, column_name name, role text,
												  allowed regtype[])
	RETURNS regtype
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	found_type regtype;
BEGIN
	SELECT a.atttypid INTO found_type FROM pg_attribute a
	WHERE a.attrelid = orders AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of % does not exist', column_name, orders
			USING ERRCODE = 'undefined_column',
				  HINT = format('Name the %s column in the call: %s_column => ...', role, role);
	END IF;
	IF allowed IS NOT NULL AND NOT found_type = ANY (allowed) THEN
		RAISE EXCEPTION 'column "%" of % has type %, which cannot be the % column', column_name, orders, found_type, role
			USING ERRCODE = 'datatype_mismatch',
				  DETAIL = format('The %s column must be one of: %s.', role, array_to_string(allowed, ', '));
	END IF;
	RETURN found_type;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.tracked_column_type(regclass, name, text, regtype[]) FROM PUBLIC;

CREATE FUNCTION post_purchase.untrack_orders(orders regclass)
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	items regclass;
BEGIN
	-- items cannot be tracked without their orders
	SELECT i.items INTO items FROM post_purchase.tracked_order_items i;
	IF FOUND AND EXISTS (SELECT FROM post_purchase.tracked_orders t WHERE t.orders = untrack_orders.orders) THEN
		PERFORM post_purchase.untrack_order_items(items);
	END IF;
	DELETE FROM post_purchase.tracked_orders t WHERE t.orders = untrack_orders.orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase does not track %', orders
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('DROP TRIGGER post_purchase_track_orders ON %s', orders);
	EXECUTE format('DROP TRIGGER post_purchase_track_orders_truncate ON %s', orders);
	-- state nobody keeps current any more would mislead
	DELETE FROM post_purchase.customer_state;
	UPDATE post_purchase.segment_memberships m SET exited_at = GREATEST(now(), m.entered_at) WHERE m.exited_at IS NULL;
END
$$;
COMMENT ON FUNCTION post_purchase.untrack_orders(regclass) IS
	'remove the order trigger and the customer state built from the table';
REVOKE ALL ON FUNCTION post_purchase.untrack_orders(regclass) FROM PUBLIC;

-- Every difference between the state the trigger kept and the state
-- recomputed from the orders table; empty when all is well.
CREATE FUNCTION post_purchase.verify_state()
	RETURNS TABLE (customer_id text, day date, field text, expected text, actual text)
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	-- one statement: its progress is its phase (src/progress.c)
	PERFORM post_purchase.progress_start('verify_state');
	PERFORM post_purchase.progress_phase('recomputing the state from the orders and comparing');
	RETURN QUERY
	SELECT coalesce(e.customer_id, a.customer_id), NULL::date, f.field, f.expected, f.actual
	FROM post_purchase.recomputed_state() e
	FULL JOIN post_purchase.customer_state a ON a.customer_id = e.customer_id
	CROSS JOIN LATERAL (VALUES
		('orders', e.orders::text, a.orders::text),
		('revenue', e.revenue::text, a.revenue::text),
		('first_order_at', e.first_order_at::text, a.first_order_at::text),
		('last_order_at', e.last_order_at::text, a.last_order_at::text),
		('purchase_days', e.purchase_days::text, a.purchase_days::text),
		('first_day', e.first_day::text, a.first_day::text),
		('last_day', e.last_day::text, a.last_day::text),
		('first_day_revenue', e.first_day_revenue::text, a.first_day_revenue::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	UNION ALL
	SELECT coalesce(e.customer_id, a.customer_id), coalesce(e.day, a.day),
		   format('order %s product %s: %s', coalesce(e.order_key, a.order_key),
				  coalesce(e.product_id, a.product_id), f.field),
		   f.expected, f.actual
	FROM post_purchase.recomputed_product_orders() e
	FULL JOIN post_purchase.customer_product_orders a ON a.order_key = e.order_key AND a.product_id = e.product_id
	CROSS JOIN LATERAL (VALUES
		('customer_id', e.customer_id, a.customer_id),
		('ordered_at', e.ordered_at::text, a.ordered_at::text),
		('quantity', e.quantity::text, a.quantity::text),
		('items', e.items::text, a.items::text)) f(field, expected, actual)
	WHERE f.expected IS DISTINCT FROM f.actual
	ORDER BY 1, 2, 3;
	PERFORM post_purchase.progress_finish();
END
$$;
COMMENT ON FUNCTION post_purchase.verify_state() IS
	'every difference between the tracked customer state and the state recomputed from the orders; empty when exact';
REVOKE ALL ON FUNCTION post_purchase.verify_state() FROM PUBLIC;
