-- Customer x product state from the shop's order items (src/order_items.c),
-- and the per-product replenishment due dates it gives.

CREATE TABLE post_purchase.products (
	product_id text PRIMARY KEY,
	name text,
	days_per_unit numeric CHECK (days_per_unit > 0 AND days_per_unit < 'Infinity')
);
COMMENT ON TABLE post_purchase.products IS
	'the shop''s products that run out: days_per_unit is how long one unit lasts (optional)';

CREATE TABLE post_purchase.tracked_order_items (
	items regclass PRIMARY KEY,
	order_column name NOT NULL,
	product_column name NOT NULL,
	quantity_column name NOT NULL,
	orders_key_column name NOT NULL,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE post_purchase.tracked_order_items IS 'the order items table that track_order_items attached its trigger to';

-- Per order and product: the quantity bought (items: how many item rows),
-- with the order's customer, time and calendar day.
CREATE TABLE post_purchase.customer_product_orders (
	order_key text NOT NULL,
	product_id text NOT NULL,
	customer_id text NOT NULL,
	ordered_at timestamptz NOT NULL,
	day date NOT NULL,
	quantity numeric NOT NULL,
	items bigint NOT NULL,
	PRIMARY KEY (order_key, product_id)
);
CREATE INDEX customer_product_orders_customer ON post_purchase.customer_product_orders (customer_id, product_id, day);

-- The median repurchase gap of each product across customers, computed by
-- refresh_product_cycles(): the cycle of last resort.
CREATE TABLE post_purchase.product_cycles (
	product_id text PRIMARY KEY,
	median_gap_days double precision NOT NULL,
	repurchases bigint NOT NULL,
	computed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE FUNCTION post_purchase.track_items_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION post_purchase.track_items_trigger() FROM PUBLIC;

CREATE FUNCTION post_purchase.track_items_truncate() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_product_orders;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.track_items_truncate() FROM PUBLIC;

-- customer_product_orders recomputed from the items and orders tables,
-- optionally for one order: the backfill, verify_state() and the repair of
-- an order that becomes tracked (a guest order given a customer).
CREATE FUNCTION post_purchase.recomputed_product_orders(only_order text DEFAULT NULL)
	RETURNS SETOF post_purchase.customer_product_orders
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	o post_purchase.tracked_orders;
	i post_purchase.tracked_order_items;
BEGIN
	SELECT * INTO o FROM post_purchase.tracked_orders;
	SELECT * INTO i FROM post_purchase.tracked_order_items;
	IF o.orders IS NULL OR i.items IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format(
		'SELECT i.%1$I::text, i.%2$I::text, min(o.%5$I::text), min(o.%6$I),
				min((o.%6$I AT TIME ZONE %8$L)::date), sum(coalesce(i.%3$I::numeric, 0)), count(*)
		 FROM ONLY %4$s i JOIN ONLY %7$s o ON o.%9$I = i.%1$I
		 WHERE i.%2$I IS NOT NULL AND o.%5$I IS NOT NULL AND o.%6$I IS NOT NULL
		   AND ($1 IS NULL OR i.%1$I::text = $1)
		 GROUP BY 1, 2',
		i.order_column, i.product_column, i.quantity_column, i.items,
		o.customer_column, o.ordered_at_column, o.orders, o.time_zone, i.orders_key_column)
	USING only_order;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.recomputed_product_orders(text) FROM PUBLIC;

-- Re-derive one order's item rows (called by the order trigger when an
-- untracked order becomes tracked).
CREATE FUNCTION post_purchase.rebuild_order_items(order_key text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.customer_product_orders p WHERE p.order_key = rebuild_order_items.order_key;
	INSERT INTO post_purchase.customer_product_orders
	SELECT * FROM post_purchase.recomputed_product_orders(rebuild_order_items.order_key);
END
$$;
REVOKE ALL ON FUNCTION post_purchase.rebuild_order_items(text) FROM PUBLIC;

-- The tracked orders' trigger, with the order key column when items are tracked.
CREATE FUNCTION post_purchase.attach_orders_trigger(key_column name) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t post_purchase.tracked_orders;
BEGIN
	SELECT * INTO STRICT t FROM post_purchase.tracked_orders;
	EXECUTE format('DROP TRIGGER post_purchase_track_orders ON %s', t.orders);
	IF key_column IS NULL THEN
		EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
						FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L)',
					   t.orders, t.customer_column, t.ordered_at_column, t.amount_column, t.time_zone);
	ELSE
		EXECUTE format('CREATE TRIGGER post_purchase_track_orders AFTER INSERT OR UPDATE OR DELETE ON %s
						FOR EACH ROW EXECUTE FUNCTION post_purchase.track_orders_trigger(%L, %L, %L, %L, %L)',
					   t.orders, t.customer_column, t.ordered_at_column, t.amount_column, t.time_zone, key_column);
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.attach_orders_trigger(name) FROM PUBLIC;

CREATE FUNCTION post_purchase.track_order_items(items regclass,
												order_column name DEFAULT 'order_id',
												product_column name DEFAULT 'product_id',
												quantity_column name DEFAULT 'quantity',
												orders_key_column name DEFAULT 'order_id')
	RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	o post_purchase.tracked_orders;
	column_type regtype;
BEGIN
	-- the backfill must see every order committed before the lock: a
	-- transaction snapshot taken before it would miss some
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'track_order_items() must run in a READ COMMITTED transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call it outside an explicit transaction, or in one begun with the default isolation level.';
	END IF;
	SELECT * INTO o FROM post_purchase.tracked_orders;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'track the orders table first' USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Call post_purchase.track_orders() before post_purchase.track_order_items().';
	END IF;
	IF EXISTS (SELECT FROM post_purchase.tracked_order_items) THEN
		RAISE EXCEPTION 'post_purchase already tracks %', (SELECT t.items FROM post_purchase.tracked_order_items t)
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call post_purchase.untrack_order_items() first.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = items) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', items USING ERRCODE = 'wrong_object_type';
	END IF;
	PERFORM post_purchase.check_not_distributed(items, 'track_order_items');
	column_type := post_purchase.tracked_column_type(items, order_column, 'order', NULL);
	column_type := post_purchase.tracked_column_type(items, product_column, 'product', NULL);
	column_type := post_purchase.tracked_column_type(items, quantity_column, 'quantity',
		ARRAY['numeric', 'integer', 'bigint', 'double precision']::regtype[]);
	column_type := post_purchase.tracked_column_type(o.orders, orders_key_column, 'orders_key', NULL);

	-- progress (src/progress.c): the phases, then the rows written (the
	-- reading, before the first row, shows as its phase)
	PERFORM post_purchase.progress_start('track_order_items');
	PERFORM post_purchase.progress_phase('waiting for locks on the orders and items tables');
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', o.orders);
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', items);
	PERFORM post_purchase.progress_phase('attaching the triggers');
	INSERT INTO post_purchase.tracked_order_items
		VALUES (items, order_column, product_column, quantity_column, orders_key_column);
	EXECUTE format('CREATE TRIGGER post_purchase_track_items AFTER INSERT OR UPDATE OR DELETE ON %s
					FOR EACH ROW EXECUTE FUNCTION post_purchase.track_items_trigger(%L, %L, %L, %L, %L, %L, %L, %L)',
				   items, order_column, product_column, quantity_column, o.orders::oid,
				   orders_key_column, o.customer_column, o.ordered_at_column, o.time_zone);
	EXECUTE format('CREATE TRIGGER post_purchase_track_items_truncate AFTER TRUNCATE ON %s
					FOR EACH STATEMENT EXECUTE FUNCTION post_purchase.track_items_truncate()', items);
	PERFORM post_purchase.attach_orders_trigger(orders_key_column);
	PERFORM post_purchase.progress_phase('reading order items');
	INSERT INTO post_purchase.customer_product_orders SELECT * FROM post_purchase.recomputed_product_orders()
	WHERE post_purchase.progress_advance(1, 'writing customer product orders', 'rows');
	PERFORM post_purchase.progress_finish();
END
$$;
COMMENT ON FUNCTION post_purchase.track_order_items(regclass, name, name, name, name) IS
	'attach the item trigger to the shop''s order items table (order, product, quantity) and backfill';
REVOKE ALL ON FUNCTION post_purchase.track_order_items(regclass, name, name, name, name) FROM PUBLIC;

CREATE FUNCTION post_purchase.untrack_order_items(items regclass) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM post_purchase.tracked_order_items t WHERE t.items = untrack_order_items.items;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'post_purchase does not track %', items USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('DROP TRIGGER post_purchase_track_items ON %s', items);
	EXECUTE format('DROP TRIGGER post_purchase_track_items_truncate ON %s', items);
	IF EXISTS (SELECT FROM post_purchase.tracked_orders) THEN
		PERFORM post_purchase.attach_orders_trigger(NULL);
	END IF;
	DELETE FROM post_purchase.customer_product_orders;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.untrack_order_items(regclass) FROM PUBLIC;

CREATE FUNCTION post_purchase.refresh_product_cycles() RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	products bigint;
BEGIN
	-- progress (src/progress.c): the rows read, against their estimate;
	-- the sorts and the medians after the last one show as that phase
	PERFORM post_purchase.progress_start('refresh_product_cycles');
	PERFORM post_purchase.progress_count(
		post_purchase.progress_estimated_rows('post_purchase.customer_product_orders'), 'rows');
	PERFORM post_purchase.progress_phase('reading customer product orders');
	DELETE FROM post_purchase.product_cycles;
	INSERT INTO post_purchase.product_cycles (product_id, median_gap_days, repurchases)
	SELECT g.product_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gap), count(*)
	FROM (SELECT d.product_id, d.day - lag(d.day) OVER (PARTITION BY d.customer_id, d.product_id ORDER BY d.day) AS gap
		  FROM (SELECT DISTINCT p.customer_id, p.product_id, p.day FROM post_purchase.customer_product_orders p
				WHERE post_purchase.progress_advance()) d) g
	WHERE g.gap IS NOT NULL
	GROUP BY g.product_id;
	GET DIAGNOSTICS products = ROW_COUNT;
	PERFORM post_purchase.progress_finish();
	RETURN products;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_product_cycles() IS
	'recompute every product''s median repurchase gap across customers';
REVOKE ALL ON FUNCTION post_purchase.refresh_product_cycles() FROM PUBLIC;

-- When each customer's products run out: the customer's own cycle (median
-- gap between the days they bought the product) when they bought it twice,
-- else the consumption cycle (last quantity x days_per_unit), else the
-- product's median repurchase gap across customers.
CREATE VIEW post_purchase.customer_product_replenishment AS
SELECT c.customer_id, c.product_id, c.purchase_days, c.last_purchase, c.last_quantity,
	   x.cycle_source, x.cycle_days,
	   c.last_purchase + x.cycle_days * interval '1 day' AS next_due
FROM (SELECT d.customer_id, d.product_id, count(*) AS purchase_days, max(d.last_at) AS last_purchase,
			 (array_agg(d.quantity ORDER BY d.day DESC))[1] AS last_quantity,
			 percentile_cont(0.5) WITHIN GROUP (ORDER BY d.gap) AS own_gap
	  FROM (SELECT p.customer_id, p.product_id, p.day, sum(p.quantity) AS quantity, max(p.ordered_at) AS last_at,
				   p.day - lag(p.day) OVER (PARTITION BY p.customer_id, p.product_id ORDER BY p.day) AS gap
			FROM post_purchase.customer_product_orders p
			GROUP BY p.customer_id, p.product_id, p.day) d
	  GROUP BY d.customer_id, d.product_id) c
LEFT JOIN post_purchase.products pr ON pr.product_id = c.product_id
LEFT JOIN post_purchase.product_cycles pc ON pc.product_id = c.product_id
CROSS JOIN LATERAL (
	SELECT CASE WHEN c.own_gap IS NOT NULL THEN 'own'
				WHEN pr.days_per_unit IS NOT NULL AND c.last_quantity > 0 THEN 'consumption'
				WHEN pc.median_gap_days IS NOT NULL THEN 'product' END AS cycle_source,
		   CASE WHEN c.own_gap IS NOT NULL THEN c.own_gap
				WHEN pr.days_per_unit IS NOT NULL AND c.last_quantity > 0
				THEN (c.last_quantity * pr.days_per_unit)::double precision
				ELSE pc.median_gap_days END AS cycle_days) x;
COMMENT ON VIEW post_purchase.customer_product_replenishment IS
	'per customer and product: the cycle (own, consumption or product median) and when the product runs out';
