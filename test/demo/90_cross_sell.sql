-- Complementary products and the cross-sell message.  CDNOW has orders but
-- no order items, so the items here are SYNTHETIC and deterministic: a small
-- named catalog of a CD shop, every order given items by arithmetic on its
-- order and customer numbers, with complementary patterns built in so that
-- affinities exist:
--   every order has a CD of the customer's favourite genre (customer mod 5),
--   one in four a second genre;
--   one customer in seven buys a portable CD player in their first order,
--   with batteries in 8 orders of 10 (bought together), and headphones in
--   their second order (bought after: within 90 days for most of them);
--   classical fans (customer mod 5 = 3) add a box set to one order in six,
--   with a CD case to half of those; one order in 50 has a gift card.
-- The items are tracked (track_order_items), product_affinity refreshed,
-- and the cross_sell seed journey enabled: its step, made due now, fires a
-- message whose payload carries {{recommendations}}.

\echo
\echo '== Synthetic order items (a named 12-product catalog, deterministic) for every order =='
CREATE TABLE shop.products (product_id text PRIMARY KEY, name text NOT NULL);
INSERT INTO shop.products VALUES
	('cd-rock', 'Rock CD'), ('cd-pop', 'Pop CD'), ('cd-jazz', 'Jazz CD'), ('cd-classical', 'Classical CD'),
	('cd-soundtrack', 'Soundtrack CD'), ('cd-player', 'Portable CD player'), ('batteries', 'AA batteries (4)'),
	('headphones', 'Headphones'), ('box-set', 'Box set (5 CDs)'), ('cd-case', 'CD carrying case'),
	('gift-card', 'Gift card'), ('cleaning-kit', 'Lens cleaning kit');
INSERT INTO post_purchase.products (product_id, name) SELECT product_id, name FROM shop.products;

CREATE TABLE shop.order_items (
	order_id bigint NOT NULL REFERENCES shop.orders,
	product_id text NOT NULL REFERENCES shop.products,
	quantity integer NOT NULL
);
CREATE INDEX ON shop.order_items (order_id);
-- h: a number 0..999 per order, the same on every run
INSERT INTO shop.order_items
WITH o AS (
	SELECT order_id, customer_id, quantity,
		   row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at, order_id) AS nth,
		   (order_id * 2654435761) % 1000 AS h
	FROM shop.orders),
genres AS (SELECT ARRAY['cd-rock', 'cd-pop', 'cd-jazz', 'cd-classical', 'cd-soundtrack'] AS g)
SELECT order_id, g[1 + (customer_id % 5)::int], quantity FROM o, genres
UNION ALL
SELECT order_id, g[1 + ((customer_id + 1 + h % 4) % 5)::int], 1 FROM o, genres WHERE h % 4 = 0
UNION ALL
SELECT order_id, 'cd-player', 1 FROM o WHERE customer_id % 7 = 0 AND nth = 1
UNION ALL
SELECT order_id, 'batteries', 1 FROM o WHERE customer_id % 7 = 0 AND nth = 1 AND h % 10 < 8
UNION ALL
SELECT order_id, 'headphones', 1 FROM o WHERE customer_id % 7 = 0 AND nth = 2
UNION ALL
SELECT order_id, 'box-set', 1 FROM o WHERE customer_id % 5 = 3 AND h % 6 = 1
UNION ALL
SELECT order_id, 'cd-case', 1 FROM o WHERE customer_id % 5 = 3 AND h % 12 = 1
UNION ALL
SELECT order_id, 'gift-card', 1 FROM o WHERE h % 50 = 7;
SELECT p.name, count(*) AS items, sum(i.quantity) AS units
FROM shop.order_items i JOIN shop.products p USING (product_id)
GROUP BY p.name ORDER BY items DESC, p.name;

\echo
\echo '== The items tracked, and the complementary products (refresh_product_affinity, the settings: 90 days) =='
SELECT post_purchase.track_order_items('shop.order_items');
SELECT post_purchase.refresh_product_affinity() AS pairs_kept;
SELECT pa.name AS product_a, a.kind, pb.name AS product_b, a.pair_count, a.a_count, a.total,
	   round(a.support::numeric, 4) AS support, round(a.confidence::numeric, 3) AS confidence,
	   round(a.lift::numeric, 2) AS lift
FROM post_purchase.product_affinity a
JOIN post_purchase.products pa ON pa.product_id = a.product_a
JOIN post_purchase.products pb ON pb.product_id = a.product_b
ORDER BY a.lift DESC, a.product_a, a.kind, a.product_b LIMIT 10;

\echo
\echo '== A customer who bought a CD player, without batteries: what recommend_products() suggests =='
-- opted in to email, not in the cross-sell holdout, never messaged (so no
-- frequency cap), a player bought in their first and only order, no
-- batteries with it
SELECT s.customer_id AS shopper
FROM post_purchase.customer_state s
JOIN post_purchase.customer_channels c ON c.customer_id = s.customer_id AND c.channel = 'email' AND c.opted_in
WHERE s.orders = 1
  AND EXISTS (SELECT FROM post_purchase.customer_product_orders p
			  WHERE p.customer_id = s.customer_id AND p.product_id = 'cd-player')
  AND NOT EXISTS (SELECT FROM post_purchase.customer_product_orders p
				  WHERE p.customer_id = s.customer_id AND p.product_id = 'batteries')
  AND NOT post_purchase.in_holdout('cross_sell', s.customer_id, 10)
  AND NOT EXISTS (SELECT FROM post_purchase.outbox x WHERE x.aggregateid = s.customer_id)
ORDER BY s.customer_id::bigint LIMIT 1 \gset
SELECT product_id, name, round(score::numeric, 3) AS score, reason
FROM post_purchase.recommend_products(:'shopper', 3);

\echo
\echo '== The cross_sell seed journey enabled; the shopper orders a CD now; its step (30 days on) made due now =='
SELECT post_purchase.enable_journey('cross_sell');
-- decided in the order's own transaction, so the enrollment is there at once
SET post_purchase.decide_in = 'order';
BEGIN;
INSERT INTO shop.orders (order_id, customer_id, ordered_at, quantity, amount)
SELECT max(order_id) + 1, :shopper, now(), 1, 12.99 FROM shop.orders
RETURNING order_id AS new_order \gset
INSERT INTO shop.order_items VALUES (:new_order, 'cd-jazz', 1);
COMMIT;
RESET post_purchase.decide_in;
-- for the demo, the 30 days have passed: the worker fires the step
UPDATE post_purchase.enrollments SET next_fire_at = clock_timestamp()
WHERE journey = 'cross_sell' AND customer_id = :'shopper' AND status = 'active';
SELECT post_purchase.wake_workers();
-- wait (at most 30 s) for the worker; nothing here calls fire_due_steps()
DO $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXIT WHEN EXISTS (SELECT FROM post_purchase.outbox WHERE journey = 'cross_sell');
		PERFORM pg_sleep(0.1);
	END LOOP;
	IF NOT EXISTS (SELECT FROM post_purchase.outbox WHERE journey = 'cross_sell') THEN
		RAISE EXCEPTION 'no cross-sell message reached the outbox in 30 s';
	END IF;
END
$$;
SELECT journey, step, channel, aggregateid = :'shopper' AS to_the_shopper,
	   jsonb_array_length(payload -> 'recommendations') AS recommendations
FROM post_purchase.outbox WHERE journey = 'cross_sell';
\echo '-- its payload, as a sender sees it:'
SELECT jsonb_pretty(payload) AS payload FROM post_purchase.outbox WHERE journey = 'cross_sell';
