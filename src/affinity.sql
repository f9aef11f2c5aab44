-- Complementary products: which products are bought together, or after one
-- another, from the tracked order items (customer_product_orders), and what
-- to recommend a customer from what they bought.
--
-- The definitions (README "Complementary products"; the Python reference
-- test/reference/affinity_reference.py computes the same numbers and must
-- agree exactly):
--
-- same_order: a transaction is an order with at least one tracked item
--   (a distinct order_key of customer_product_orders); total = N, the
--   number of such orders.  a_count = orders containing A, b_count = orders
--   containing B, pair_count = orders containing both (A <> B).
-- sequence: per customer, B follows A when the customer bought B at some
--   time in (tA, tA + window] after some purchase of A at tA (ordered_at,
--   microseconds; the same order, or another at the same instant, is not
--   "after"; tA + window is computed in UTC, so a day is 24 hours whatever
--   the session's TimeZone).  total = C, the customers with at least one tracked item;
--   a_count = customers who bought A, b_count = customers who bought B,
--   pair_count = customers in whom B followed A.
-- For both: support = pair_count / total, confidence(A -> B) = pair_count /
--   a_count, lift = confidence / (b_count / total) = pair_count * total /
--   (a_count * b_count).  Each is the float8 nearest the exact fraction:
--   the counts and the products pair_count * total and a_count * b_count
--   are exact in float8 below 2^53, and one IEEE division rounds correctly.
--   A pair is kept when support >= min_support and confidence >=
--   min_confidence, both compared as those float8 values.  Same-order pairs
--   are symmetric in support and lift, and stored in both directions, so
--   the pairs of A are an index scan on (product_a, ...).

INSERT INTO post_purchase.settings VALUES
	('affinity_window', '90 days', 'refresh_product_affinity: B follows A when the same customer buys B within this long after A (more than 0, at most 100 years); recommend_products skips what the customer bought this recently'),
	('affinity_min_support', '0.0001', 'refresh_product_affinity keeps a pair when its support (share of orders, or of customers for sequences) is at least this (0..1)'),
	('affinity_min_confidence', '0.01', 'refresh_product_affinity keeps a pair A -> B when the share of A''s orders (or customers) that also have B is at least this (0..1)');

CREATE TABLE post_purchase.product_affinity (
	product_a text NOT NULL,
	kind text NOT NULL CHECK (kind IN ('same_order', 'sequence')),
	product_b text NOT NULL CHECK (product_b <> product_a),
	pair_count bigint NOT NULL CHECK (pair_count > 0),
	a_count bigint NOT NULL CHECK (a_count >= pair_count),
	b_count bigint NOT NULL CHECK (b_count >= pair_count),
	total bigint NOT NULL CHECK (total >= a_count AND total >= b_count),
	support double precision NOT NULL,
	confidence double precision NOT NULL,
	lift double precision NOT NULL,
	window_length interval,
	computed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (product_a, kind, product_b),
	CHECK ((kind = 'sequence') = (window_length IS NOT NULL))
);
COMMENT ON TABLE post_purchase.product_affinity IS
	'product pairs bought in the same order (same_order) or B after A by the same customer within window_length (sequence): counts, support, confidence, lift; from refresh_product_affinity()';

-- An affinity setting, typed, or a clear error naming it.
CREATE FUNCTION post_purchase.affinity_setting(setting_name text) RETURNS text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	value text := post_purchase.setting(setting_name);
BEGIN
	IF value IS NULL THEN
		RAISE EXCEPTION 'setting % is missing', setting_name USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Insert it into post_purchase.settings again (README, "Complementary products").';
	END IF;
	RETURN value;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.affinity_setting(text) FROM PUBLIC;

-- The window and thresholds refresh_product_affinity() and
-- recommend_products() work with: the arguments, else the settings;
-- validated here, once, with the name of whatever is wrong.
CREATE FUNCTION post_purchase.affinity_parameters(given_window interval, given_min_support double precision,
												  given_min_confidence double precision,
												  OUT affinity_window interval, OUT min_support double precision,
												  OUT min_confidence double precision)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	source text;
BEGIN
	source := 'affinity_window';
	BEGIN
		affinity_window := coalesce(given_window, post_purchase.affinity_setting('affinity_window')::interval);
		source := 'affinity_min_support';
		min_support := coalesce(given_min_support, post_purchase.affinity_setting('affinity_min_support')::double precision);
		source := 'affinity_min_confidence';
		min_confidence := coalesce(given_min_confidence, post_purchase.affinity_setting('affinity_min_confidence')::double precision);
	EXCEPTION WHEN invalid_datetime_format OR invalid_text_representation OR datetime_field_overflow
				   OR interval_field_overflow OR numeric_value_out_of_range THEN
		RAISE EXCEPTION 'setting % is not valid: %', source, SQLERRM USING ERRCODE = 'invalid_parameter_value';
	END;
	-- a window of 0 or less has no "after"; beyond 100 years every purchase
	-- follows every other, and tA + window may leave the timestamp range
	IF affinity_window <= interval '0' OR affinity_window > interval '100 years' THEN
		RAISE EXCEPTION 'the affinity window must be more than 0 and at most 100 years, not %', affinity_window
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass affinity_window => interval ''90 days'', or set affinity_window in post_purchase.settings.';
	END IF;
	IF NOT (min_support >= 0 AND min_support <= 1) THEN		-- NaN fails both
		RAISE EXCEPTION 'min_support must be between 0 and 1, not %', min_support
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT (min_confidence >= 0 AND min_confidence <= 1) THEN
		RAISE EXCEPTION 'min_confidence must be between 0 and 1, not %', min_confidence
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION post_purchase.affinity_parameters(interval, double precision, double precision) FROM PUBLIC;

-- The kept pairs of both kinds with their counts (src/affinity.c): one
-- read of customer_product_orders sorted by customer, time and order, each
-- customer's items walked once in time order; the pairs counted on product
-- numbers in a hash table per partition of the products A, each partition
-- sized to fit in work_mem x hash_mem_multiplier.  Same-order pairs come in
-- both directions.
CREATE FUNCTION post_purchase.affinity_pairs(affinity_window interval, min_support double precision,
											 min_confidence double precision)
	RETURNS TABLE (product_a text, kind text, product_b text, pair_count bigint, a_count bigint, b_count bigint,
				   total bigint)
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 10000 SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC';
REVOKE ALL ON FUNCTION post_purchase.affinity_pairs(interval, double precision, double precision) FROM PUBLIC;

-- Recompute product_affinity from customer_product_orders, in one
-- transaction (readers see the old pairs until it commits).  Returns the
-- number of pairs kept (both kinds, both directions).
--
-- Cost, per order item (src/affinity.c): its share of one sort of the
-- items by customer, time and order (O(log items) comparisons; the
-- executor's sort, spilling past work_mem), a product lookup, 16 bytes
-- written to a temporary file and read back once per partition, and a hash
-- increment per pair it is in: (o - 1) / 2 same-order pairs (o items in its
-- order) and w follow pairs (w of its customer's items within the window
-- after it, made distinct per customer by a sort of the customer's pairs).
-- So O(items x (log items + o + w)); nothing is per pair of all products.
--
-- Memory: the products (their text and counts), one customer's items and
-- distinct follow pairs, and one partition's pair hash table.  The
-- products A are split into partitions whose upper bound of distinct pairs
-- (a product's pair occurrences, at most the number of frequent products)
-- fits in work_mem x hash_mem_multiplier, and the items are read again
-- from the temporary file for each: no pass needs all pairs of all
-- products in memory at once.  The kept rows go through a tuplestore
-- (spilling past work_mem).
--
-- Products below min_support cannot be in a kept pair (a pair's count is
-- at most either product's), so their pairs are never counted.
CREATE FUNCTION post_purchase.refresh_product_affinity(affinity_window interval DEFAULT NULL,
													   min_support double precision DEFAULT NULL,
													   min_confidence double precision DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'
	AS $$
DECLARE
	p record;
	kept bigint;
BEGIN
	SELECT * INTO p FROM post_purchase.affinity_parameters(affinity_window, min_support, min_confidence);
	-- one refresh at a time: a second would only delete the first's rows
	LOCK TABLE post_purchase.product_affinity IN SHARE ROW EXCLUSIVE MODE;
	DELETE FROM post_purchase.product_affinity;
	-- the ratios as the float8 division of the exact counts; affinity_pairs
	-- kept the pairs on the same two divisions
	INSERT INTO post_purchase.product_affinity (product_a, kind, product_b, pair_count, a_count, b_count, total,
												support, confidence, lift, window_length)
	SELECT x.product_a, x.kind, x.product_b, x.pair_count, x.a_count, x.b_count, x.total,
		   x.pair_count::double precision / x.total::double precision,
		   x.pair_count::double precision / x.a_count::double precision,
		   (x.pair_count::double precision * x.total::double precision)
			   / (x.a_count::double precision * x.b_count::double precision),
		   CASE WHEN x.kind OPERATOR(pg_catalog.=) 'sequence' THEN p.affinity_window END
	FROM post_purchase.affinity_pairs(p.affinity_window, p.min_support, p.min_confidence) x;
	GET DIAGNOSTICS kept = ROW_COUNT;
	RETURN kept;
END
$$;
COMMENT ON FUNCTION post_purchase.refresh_product_affinity(interval, double precision, double precision) IS
	'recompute product_affinity (same-order and within-window pairs with support, confidence, lift) from the tracked order items';
REVOKE ALL ON FUNCTION post_purchase.refresh_product_affinity(interval, double precision, double precision) FROM PUBLIC;

-- The best complementary products for a customer: for every product they
-- bought (A), the pairs A -> B of product_affinity, scored lift x
-- confidence; per B the best of them (its reason: which purchase it
-- complements).  B is left out when the customer bought it within the
-- affinity_window, or bought it before and it is not due for replenishment
-- yet (customer_product_replenishment.next_due after now).  Highest score
-- first, ties by product id (byte order).  A customer with no tracked
-- purchase (or none with a kept pair) gets no rows; n above the candidates
-- gives them all.
CREATE FUNCTION post_purchase.recommend_products(customer_id text, n integer DEFAULT 3)
	RETURNS TABLE (product_id text, name text, score double precision, because_of text, reason text)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres'
	AS $$
#variable_conflict use_column
DECLARE
	recent interval;
BEGIN
	IF n IS NULL OR n < 1 THEN
		RAISE EXCEPTION 'n must be at least 1, not %', coalesce(n::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	recent := (post_purchase.affinity_parameters(NULL, NULL, NULL)).affinity_window;
	RETURN QUERY
	WITH bought AS (
		SELECT o.product_id, max(o.ordered_at) AS last_at
		FROM post_purchase.customer_product_orders o
		WHERE o.customer_id = recommend_products.customer_id
		GROUP BY o.product_id
	), best AS (
		SELECT DISTINCT ON (a.product_b) a.product_b, a.product_a, a.kind, a.lift * a.confidence AS score
		FROM bought b
		JOIN post_purchase.product_affinity a ON a.product_a = b.product_id
		ORDER BY a.product_b, a.lift * a.confidence DESC, a.kind, a.product_a COLLATE "C"
	)
	SELECT x.product_b, pb.name, x.score, x.product_a,
		   CASE x.kind WHEN 'same_order' THEN 'often bought together with '
					   ELSE 'often bought within ' || recent::text || ' after ' END
		   || coalesce(pa.name, x.product_a)
	FROM best x
	LEFT JOIN bought o ON o.product_id = x.product_b
	LEFT JOIN post_purchase.products pa ON pa.product_id = x.product_a
	LEFT JOIN post_purchase.products pb ON pb.product_id = x.product_b
	WHERE o.product_id IS NULL
	   OR (o.last_at <= now() - recent
		   AND NOT EXISTS (SELECT FROM post_purchase.customer_product_replenishment r
						   WHERE r.customer_id = recommend_products.customer_id
							 AND r.product_id = x.product_b AND r.next_due > now()))
	ORDER BY x.score DESC, x.product_b COLLATE "C"
	LIMIT n;
END
$$;
COMMENT ON FUNCTION post_purchase.recommend_products(text, integer) IS
	'the n best complementary products for a customer (lift x confidence from product_affinity), with the purchase each complements';
REVOKE ALL ON FUNCTION post_purchase.recommend_products(text, integer) FROM PUBLIC;

-- {{recommendations}} in payload templates (render_message, src/payload.c):
-- recommend_products() as a JSON array of {"product_id", "name", "reason",
-- "because_of"} in rank order; [] when there are none; "name" is null for
-- a product without a name (or not in products).
CREATE FUNCTION post_purchase.recommendations_json(customer_id text, n integer DEFAULT 3) RETURNS jsonb
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT coalesce(jsonb_agg(jsonb_build_object('product_id', r.product_id, 'name', r.name, 'reason', r.reason,
												 'because_of', r.because_of) ORDER BY r.rank), '[]')
	FROM post_purchase.recommend_products(customer_id, n) WITH ORDINALITY r(product_id, name, score, because_of,
																			 reason, rank)
$$;
COMMENT ON FUNCTION post_purchase.recommendations_json(text, integer) IS
	'recommend_products() as the JSON array payload templates get as {{recommendations}}';
REVOKE ALL ON FUNCTION post_purchase.recommendations_json(text, integer) FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('post_purchase.product_affinity', '');
