#!/bin/bash
# The journeys benchmark (README_journeys.md): how fast the background
# workers drain due steps into the outbox, how soon a thank-you follows its
# order, and what enabled journeys cost an order insert.  It starts a
# throwaway server of its own, prints a report and appends it to
# RESULTS_journeys.md.
#
#   test/bench/run_journey_bench.sh
#
#   JOURNEY_BENCH_STEPS     due steps drained (1000000)
#   JOURNEY_BENCH_WORKERS   post_purchase.workers_per_database (2: one per core)
#   JOURNEY_BENCH_RATE      orders per second in the latency run (100)
#   JOURNEY_BENCH_DURATION  seconds per pgbench run (20)
#   JOURNEY_BENCH_CLIENTS   pgbench client counts of the insert runs ("2 8")
#   JOURNEY_BENCH_RECORD    0: do not append to RESULTS_journeys.md
#   JOURNEY_BENCH_NOTE      a sentence recorded with the results
# A missed target is reported, not fatal; a lost or doubled message is fatal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${JOURNEY_BENCH_STEPS:=1000000}" "${JOURNEY_BENCH_WORKERS:=2}" "${JOURNEY_BENCH_RATE:=100}"
: "${JOURNEY_BENCH_DURATION:=20}" "${JOURNEY_BENCH_CLIENTS:=2 8}" "${JOURNEY_BENCH_RECORD:=1}"
: "${JOURNEY_BENCH_NOTE:=}" "${JOURNEY_BENCH_RESULTS:=$here/RESULTS_journeys.md}"
db=post_purchase_journey_bench

# the settings of the other benchmarks, and workers for the benchmark database
settings=(shared_buffers=4GB work_mem=256MB maintenance_work_mem=1GB jit=off max_parallel_workers_per_gather=0
	autovacuum=off fsync=off synchronous_commit=off full_page_writes=off max_wal_size=20GB
	checkpoint_timeout=1h TimeZone=UTC shared_preload_libraries=post_purchase
	post_purchase.databases=$db post_purchase.workers_per_database=$JOURNEY_BENCH_WORKERS
	post_purchase.naptime=100 post_purchase.batch_size=1000
	post_purchase.segments_refresh_interval=0 post_purchase.models_refresh_interval=0)

. "$here/bench_server.sh"
run_in_throwaway_server JOURNEY_BENCH_INSIDE "${settings[@]}"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
open_bench_database "$db"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
say() { echo "$*" | tee -a "$report"; }

"${psql[@]}" <<'EOF'
CREATE EXTENSION post_purchase;
CREATE TABLE orders (order_id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
					 ordered_at timestamptz NOT NULL, amount numeric NOT NULL);
CREATE TABLE plain_orders (LIKE orders INCLUDING ALL);
SELECT post_purchase.track_orders('orders');
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');
UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages';
SELECT post_purchase.create_journey('drain', 'every_order');
SELECT post_purchase.add_step('drain', 'hello', '0', 'webhook', 'hello',
	payload => '{"customer_id": "{{customer_id}}", "order": "{{order}}", "subject": "Thank you"}');
EOF

steps=$JOURNEY_BENCH_STEPS
# the rows a worker would write, as a bare INSERT ... SELECT: the baseline
baseline_sql="INSERT INTO post_purchase.outbox (aggregateid, type, payload, channel, journey, step, enrollment_id)
SELECT i::text, 'hello', jsonb_build_object('customer_id', i::text, 'order',
	jsonb_build_object('order_id', i, 'customer_id', i, 'amount', 10), 'subject', 'Thank you'),
	'webhook', 'drain', 'hello', -i FROM generate_series(1, $steps) i"

echo "== baseline: bare INSERT ... SELECT of $steps outbox rows" >&2
base_ms=$(sql "SELECT extract(epoch FROM clock_timestamp()) * 1000" )
sql "$baseline_sql" >/dev/null
base_ms=$(sql "SELECT round(extract(epoch FROM clock_timestamp()) * 1000 - $base_ms)")
sql "DELETE FROM post_purchase.outbox" "VACUUM post_purchase.outbox" >/dev/null

echo "== $steps due steps (enrolled while the journey is disabled)" >&2
sql "INSERT INTO post_purchase.enrollments (journey, customer_id, anchor_at, context, holdout, next_position, next_fire_at)
	 SELECT 'drain', i::text, now(), jsonb_build_object('order', jsonb_build_object('order_id', i, 'customer_id', i, 'amount', 10)),
			false, 1, now() - interval '1 second'
	 FROM generate_series(1, $steps) i" "VACUUM ANALYZE post_purchase.enrollments" >/dev/null

# a paused journey's waiting steps must not cost the workers' loop: one
# next_due_at() and one fire_due_steps() while the 1M steps wait (ms)
paused_ms=$("${psql[@]}" -At -c '\timing on' -c 'SELECT post_purchase.next_due_at()' \
	-c 'SELECT post_purchase.fire_due_steps(1000)' | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | paste -sd/ -)

echo "== drain: enable the journey, wake the workers, wait until no step is due" >&2
# polled through worker_status (shared memory): a count(*) of the growing
# outbox every 0.2 s took a good part of the two cores the workers drain on
fired_before=$(sql "SELECT coalesce(sum(steps_fired), 0) FROM post_purchase.worker_status")
start=$(sql "SELECT extract(epoch FROM clock_timestamp())")
sql "BEGIN" "SELECT post_purchase.enable_journey('drain')" "SELECT post_purchase.wake_workers()" "COMMIT" >/dev/null
while [ "$(sql "SELECT coalesce(sum(steps_fired), 0) - $fired_before FROM post_purchase.worker_status")" -lt "$steps" ]; do
	sleep 0.2
done
drain_ms=$(sql "SELECT round((extract(epoch FROM clock_timestamp()) - $start) * 1000)")
check=$(sql "SELECT count(*) = $steps AND count(DISTINCT (enrollment_id, step)) = $steps FROM post_purchase.outbox")
[ "$check" = t ] || { echo "FAIL: the outbox does not hold each step exactly once" >&2; exit 1; }
sql "SELECT post_purchase.disable_journey('drain')" >/dev/null

echo "== latency: $JOURNEY_BENCH_RATE orders/s for ${JOURNEY_BENCH_DURATION}s, thank-you fired by the workers" >&2
sql "SELECT post_purchase.enable_journey('thank_you')" "UPDATE post_purchase.journey_steps SET channel = 'webhook' WHERE journey = 'thank_you'" \
	"CREATE SEQUENCE customers START 10000000" >/dev/null
cat > "$report.order.sql" <<'EOF'
INSERT INTO :table (customer_id, ordered_at, amount) VALUES (nextval('customers'), clock_timestamp(), 10);
EOF
pgbench -n -c 2 -j 2 -R "$JOURNEY_BENCH_RATE" -T "$JOURNEY_BENCH_DURATION" -D table=orders -f "$report.order.sql" >/dev/null 2>&1
sleep 2
read -r p50 p99 nlat <<<"$(sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), count(*)
	FROM (SELECT extract(epoch FROM x.created_at - o.ordered_at) * 1000 AS ms
		  FROM post_purchase.outbox x JOIN orders o ON o.customer_id::text = x.aggregateid
		  WHERE x.journey = 'thank_you') l" | tr '|' ' ')"
# order commit to its decision: a new customer's lifecycle_new entry,
# recorded by the worker's decision in the transaction that enrolls
read -r m50 m99 nmem <<<"$(sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), count(*)
	FROM (SELECT extract(epoch FROM m.entered_at - o.ordered_at) * 1000 AS ms
		  FROM post_purchase.segment_memberships m JOIN orders o ON o.customer_id::text = m.customer_id
		  WHERE m.segment = 'lifecycle_new') l" | tr '|' ' ')"
missing=$(sql "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT FROM post_purchase.outbox x
	WHERE x.journey = 'thank_you' AND x.aggregateid = o.customer_id::text)")
[ "$missing" = 0 ] || { echo "FAIL: $missing orders have no thank-you" >&2; exit 1; }

echo "== inserts: TPS untracked / tracked with the seed journeys enabled / untracked" >&2
sql "SELECT post_purchase.enable_journey(name) FROM post_purchase.journeys WHERE name <> 'drain' AND NOT enabled" >/dev/null
"${psql[@]}" -f "$here/journey_floor.sql"
echo 'SELECT floor.order_write();' > "$report.floor.sql"
echo 'SELECT floor.first_order();' > "$report.first.sql"
echo 'SELECT floor.decide_batch(100);' > "$report.decide.sql"
# pgbench_tps CLIENTS ARGS...: one pgbench run of the insert clients, its TPS
pgbench_tps() {
	local clients=$1
	shift
	pgbench -n -c "$clients" -j "$clients" -T "$JOURNEY_BENCH_DURATION" "$@" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}
# tps CLIENTS TABLE: orders inserted into TABLE
tps() {
	pgbench_tps "$1" -D table="$2" -f "$report.order.sql"
}
# the untracked rate around a run: the mean of the runs before and after it
mean() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + b) / 2 }'; }
rows=()
for clients in $JOURNEY_BENCH_CLIENTS; do
	tps_before=$(tps "$clients" plain_orders)
	orders_before=$(sql "SELECT count(*) FROM orders")
	tps_tracked=$(tps "$clients" orders)
	# the workers keep up when the backlog at the end of the run is what
	# arrived in the last moments, and drains at once
	read -r backlog lag_ms <<<"$(sql "SELECT customers, round(coalesce(extract(epoch FROM lag) * 1000, 0)) FROM post_purchase.decision_backlog" | tr '|' ' ')"
	drain_start=$(sql "SELECT extract(epoch FROM clock_timestamp())")
	until [ "$(sql "SELECT customers FROM post_purchase.decision_backlog")" = 0 ]; do sleep 0.1; done
	backlog_drain_ms=$(sql "SELECT round((extract(epoch FROM clock_timestamp()) - $drain_start) * 1000)")
	decided=$(sql "SELECT count(*) - $orders_before FROM orders")
	tps_after=$(tps "$clients" plain_orders)
	floor_before=$(tps "$clients" plain_orders)
	tps_floor=$(pgbench_tps "$clients" -M prepared -f "$report.floor.sql")
	tps_first=$(pgbench_tps "$clients" -M prepared -f "$report.first.sql")
	# customers per second whose decisions' rows plain SQL writes, 100 a transaction
	decide_floor=$(awk -v t="$(pgbench_tps "$clients" -M prepared -f "$report.decide.sql")" 'BEGIN { printf "%.0f", t * 100 }')
	floor_after=$(tps "$clients" plain_orders)
	tps_ratio=$(ratio "$tps_tracked" "$(mean "$tps_before" "$tps_after")")
	floor_ratio=$(ratio "$tps_floor" "$(mean "$floor_before" "$floor_after")")
	first_ratio=$(ratio "$tps_first" "$(mean "$floor_before" "$floor_after")")
	# the most orders per second the machine can take while deciding as many:
	# each costs an order's own writes plus its share of a decision batch
	ceiling=$(awk -v o="$tps_floor" -v d="$decide_floor" 'BEGIN { printf "%.0f", 1 / (1 / o + 1 / d) }')
	ceiling_ratio=$(ratio "$ceiling" "$(mean "$floor_before" "$floor_after")")
	decide_rate=$(awk -v n="$decided" -v s="$JOURNEY_BENCH_DURATION" -v ms="$backlog_drain_ms" 'BEGIN { printf "%.0f", n / (s + ms / 1000) }')
	rows+=("| insert TPS tracked with the built-in segments and seed journeys, workers deciding / untracked ($clients clients) | $tps_ratio | >= 0.70 | $(verdict "$tps_ratio" 0.7 min) |"
		"| backlog at the end of the $clients-client run: customers / oldest change ms / drained in ms | $backlog / $lag_ms / $backlog_drain_ms | drained < 1000 | $(verdict "$backlog_drain_ms" 1000 max) |"
		"| info ($clients clients): TPS untracked before / tracked / untracked after | $tps_before / $tps_tracked / $tps_after | | |"
		"| info ($clients clients): the order's own writes by plain SQL (floor.order_write) / untracked | $floor_ratio ($floor_before / $tps_floor / $floor_after) | | |"
		"| info ($clients clients): the order and every row its decision writes, by plain SQL in one transaction (floor.first_order) / untracked | $first_ratio ($tps_first) | | |"
		"| info ($clients clients): the rows of the decisions alone, by plain SQL 100 customers a transaction (floor.decide_batch): customers/s | $decide_floor | | |"
		"| info ($clients clients): the ceiling of orders/s with every order decided, 1 / (1 / order_write + 1 / decide_batch), / untracked | $ceiling_ratio ($ceiling) | | |"
		"| info ($clients clients): customers decided per second by the workers, while following the orders | $decide_rate | | |")
done
rm -f "$report.order.sql" "$report.floor.sql" "$report.first.sql" "$report.decide.sql"

rate=$(awk -v n="$steps" -v ms="$drain_ms" 'BEGIN { printf "%.0f", n / ms * 1000 }')
drain_ratio=$(ratio "$drain_ms" "$base_ms")

{
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo "- server: $(sql 'SELECT version()' | cut -d, -f1), settings: ${settings[*]}"
	echo "- note: ${JOURNEY_BENCH_NOTE:-none}"
	echo
	echo "| target | measured | goal | result |"
	echo "|---|---:|---:|---|"
	echo "| drain $steps due steps, $JOURNEY_BENCH_WORKERS workers: steps/s | $rate | >= 20000 | $(verdict "$rate" 20000 min) |"
	echo "| drain time / bare INSERT ... SELECT of the same rows into the outbox | ${drain_ratio}x | <= 3.00x | $(verdict "$drain_ratio" 3 max) |"
	echo "| order commit to thank-you in the outbox, p99 ms ($nlat orders at $JOURNEY_BENCH_RATE/s) | $p99 | < 50 | $(verdict "$p99" 50 max) |"
	echo "| order commit to its decision (lifecycle_new entered), p99 ms ($nmem orders at $JOURNEY_BENCH_RATE/s) | $m99 | < 1000 | $(verdict "$m99" 1000 max) |"
	printf '%s\n' "${rows[@]}"
	echo "| info: drain ms / baseline ms | $drain_ms / $base_ms | | |"
	echo "| info: while the $steps steps wait in a disabled journey: next_due_at() ms / fire_due_steps(1000) ms | $paused_ms | | |"
	echo "| info: latency p50 ms: thank-you / decision | $p50 / $m50 | | |"
	echo
	echo "Checks: every drained step is in the outbox exactly once; every order of the latency run has its thank-you."
} | tee -a "$report"

if [ "$JOURNEY_BENCH_RECORD" = 1 ]; then
	cat "$report" >> "$JOURNEY_BENCH_RESULTS"
	echo "appended to $JOURNEY_BENCH_RESULTS" >&2
fi
