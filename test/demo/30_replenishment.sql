-- Customers due for replenishment: each customer's purchase cycle (the median
-- gap between purchase days) says when the next purchase is due; the list is
-- the customers due within 30 days either side of the end of the data.

SELECT max(ordered_at) AS data_end, max(ordered_at)::date AS data_end_day FROM shop.orders \gset

CREATE TEMP TABLE due_for_replenishment AS
SELECT customer_id,
	   (c).purchases,
	   (c).median_interval,
	   (c).last_purchase,
	   (c).next_due
FROM (
	SELECT customer_id, post_purchase.purchase_cycle(ordered_at) AS c
	FROM shop.orders
	GROUP BY customer_id
) AS cycles
WHERE (c).next_due >= :'data_end'::timestamptz - interval '30 days'
  AND (c).next_due < :'data_end'::timestamptz + interval '30 days';

\echo
\echo '== Due for replenishment: next purchase due within 30 days of' :data_end_day '=='
SELECT count(*) AS customers,
	   count(*) FILTER (WHERE next_due < :'data_end') AS overdue,
	   count(*) FILTER (WHERE next_due >= :'data_end') AS coming_up
FROM due_for_replenishment;

\echo '-- the first ten, most overdue first (days_from_end < 0: overdue)'
SELECT customer_id,
	   purchases,
	   median_interval,
	   last_purchase::date AS last_purchase_day,
	   next_due::date AS due_day,
	   next_due::date - :'data_end'::date AS days_from_end
FROM due_for_replenishment
ORDER BY next_due, customer_id
LIMIT 10;

-- The consumption cycle instead of the habit: what the first customer on the
-- list bought last, if each unit (for CDNOW a CD) keeps them busy for 30 days.
\echo '-- the consumption cycle: when the first one''s last purchase runs out, at an assumed 30 days per unit'
SELECT d.customer_id,
	   d.last_purchase::date AS last_purchase_day,
	   sum(o.quantity) AS units,
	   post_purchase.replenishment_due(d.last_purchase, sum(o.quantity), 30)::date AS runs_out_day,
	   d.next_due::date AS due_by_habit_day
FROM (SELECT * FROM due_for_replenishment ORDER BY next_due, customer_id LIMIT 1) AS d
JOIN shop.orders AS o ON o.customer_id = d.customer_id AND o.ordered_at = d.last_purchase
GROUP BY d.customer_id, d.last_purchase, d.next_due;

DROP TABLE due_for_replenishment;
