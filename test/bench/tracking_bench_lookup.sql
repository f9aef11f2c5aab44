-- One customer's row of customer_metrics, as a BI client reads it (the
-- tracking benchmark's client lookups, run_tracking_bench.sh).
\set id random(1, :customers)
SELECT count(x.*) FROM post_purchase.customer_metrics x WHERE x.customer_id = (:id)::text;
