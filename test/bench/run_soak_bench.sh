#!/bin/bash
# The soak benchmark (README_soak.md): half an hour of a shop's mixed load on
# one server: pgbench placing orders at a steady rate, the background workers
# firing the eight seed journeys, a sender claiming and acknowledging the
# outbox, and the workers' scheduled refresh_segments(), refresh_models() and
# outbox_purge().  Every minute it samples throughput, outbox lag, table
# bloat and the memory of the worker processes; at the end it compares the
# first minutes with the last.  It starts a throwaway server of its own and
# appends its report to RESULTS_soak.md.  Not part of make test.
#
#   test/bench/run_soak_bench.sh
#
#   SOAK_MINUTES          length of the measured run (30)
#   SOAK_CUSTOMERS        customers of the shop before the run (100000)
#   SOAK_ORDERS           their orders (500000), moved to end now
#   SOAK_RATE             orders per second placed by pgbench (150)
#   SOAK_SENDER_RATE      sender claims per second, 100 messages each (5)
#   SOAK_WORKERS          post_purchase.workers_per_database (2)
#   SOAK_RECORD           0: do not append to RESULTS_soak.md
#   SOAK_NOTE             a sentence recorded with the results
# A missed target is reported, not fatal; a doubled message is fatal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${SOAK_MINUTES:=30}" "${SOAK_CUSTOMERS:=100000}" "${SOAK_ORDERS:=500000}" "${SOAK_RATE:=150}"
: "${SOAK_SENDER_RATE:=5}" "${SOAK_WORKERS:=2}" "${SOAK_RECORD:=1}" "${SOAK_NOTE:=}"
: "${SOAK_RESULTS:=$here/RESULTS_soak.md}"
db=post_purchase_soak
segments_interval=300 models_interval=600

# Production-like: autovacuum on with PostgreSQL's defaults (the extension
# sets the storage parameters of its queue tables itself), durable commits
# off only to keep the 2-core machine's disk out of the measurement.
settings=(shared_buffers=2GB work_mem=64MB maintenance_work_mem=512MB jit=off
	synchronous_commit=off max_wal_size=8GB TimeZone=UTC
	shared_preload_libraries=post_purchase post_purchase.databases=$db
	post_purchase.workers_per_database=$SOAK_WORKERS post_purchase.naptime=1000
	post_purchase.segments_refresh_interval=$segments_interval post_purchase.models_refresh_interval=$models_interval
	post_purchase.outbox_purge_interval=60)

. "$here/bench_server.sh"
run_in_throwaway_server SOAK_INSIDE "${settings[@]}"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
open_bench_database "$db"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
report=$work/report

echo "== a shop of $SOAK_CUSTOMERS customers and $SOAK_ORDERS orders, the last one now" >&2
"${psql[@]}" -v customers="$SOAK_CUSTOMERS" -v orders="$SOAK_ORDERS" -v answers=0 \
	-f "$here/generate_shop.sql" >/dev/null
"${psql[@]}" <<'EOF'
UPDATE shop.orders SET ordered_at = ordered_at + (now() - (SELECT max(ordered_at) FROM shop.orders));
CREATE SEQUENCE shop.order_ids;
SELECT setval('shop.order_ids', max(order_id)) FROM shop.orders;
ALTER TABLE shop.orders ALTER order_id SET DEFAULT nextval('shop.order_ids');
VACUUM ANALYZE shop.orders;
CREATE EXTENSION post_purchase;
SELECT post_purchase.track_orders('shop.orders');
-- every customer can be mailed; no quiet hours, so the time of day does not matter
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred)
SELECT customer_id, 'email', 'customer' || customer_id || '@example.com', true, true
FROM post_purchase.customer_state;
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');
UPDATE post_purchase.settings SET value = '5 minutes' WHERE name = 'outbox_retention';
SELECT post_purchase.refresh_models();
SELECT post_purchase.refresh_segments();
SELECT post_purchase.enable_journey(name) FROM post_purchase.journeys WHERE NOT enabled;
EOF

echo "== warm-up: the workers fire what is due already" >&2
for _ in $(seq 600); do
	[ "$(sql "SELECT count(*) FROM post_purchase.enrollments WHERE status = 'active' AND next_fire_at <= now()")" = 0 ] && break
	sleep 1
done

# Orders: mostly returning customers, about one in six new; a sender that
# claims 100 messages at a time and acknowledges them.
cat >"$work/order.sql" <<EOF
\set customer random(1, $((SOAK_CUSTOMERS * 6 / 5)))
\set cents random(500, 20000)
INSERT INTO shop.orders (customer_id, ordered_at, quantity, amount) VALUES (:customer, clock_timestamp(), 1, :cents / 100.0);
EOF
cat >"$work/sender.sql" <<'EOF'
SELECT post_purchase.outbox_ack(coalesce(array_agg(id), '{}')) FROM post_purchase.outbox_claim(100, '1 minute');
EOF
chmod a+r "$work"/*.sql
seconds=$((SOAK_MINUTES * 60))

# One row per minute: orders and messages of the minute, the lag of the
# oldest due step and of the oldest unacknowledged message, live and dead
# tuples of the queue tables, and the workers' private memory (RssAnon).
sample() {
	local workers_kb
	workers_kb=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'post_purchase worker' ORDER BY pid" |
		while read -r pid; do awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0; done |
		awk '{ s += $1; n++ } END { printf "%d|%d", n, s }')
	sql "SELECT pg_stat_clear_snapshot()" >/dev/null
	"${psql[@]}" -At -c "SELECT $1,
		(SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'shop.orders'::regclass),
		(SELECT count(*) FROM post_purchase.step_outcomes),
		(SELECT count(*) FROM post_purchase.step_outcomes WHERE outcome = 'fired'),
		(SELECT count(*) FROM post_purchase.outbox WHERE acknowledged_at > to_timestamp($2)),
		(SELECT n_tup_del FROM pg_stat_user_tables WHERE relid = 'post_purchase.outbox'::regclass),
		coalesce((SELECT round(extract(epoch FROM now() - min(next_fire_at))::numeric, 1)
				  FROM post_purchase.enrollments WHERE status = 'active' AND next_fire_at <= now()), 0),
		coalesce((SELECT round(extract(epoch FROM now() - min(created_at))::numeric, 1)
				  FROM post_purchase.outbox WHERE acknowledged_at IS NULL AND dead_lettered_at IS NULL), 0),
		(SELECT string_agg(n_live_tup || '/' || n_dead_tup, '|' ORDER BY relname) FROM pg_stat_user_tables
		 WHERE schemaname = 'post_purchase' AND relname IN ('outbox', 'enrollments', 'step_outcomes',
			'segment_memberships', 'customer_state', 'enrollment_sweeps')),
		(SELECT pg_total_relation_size('post_purchase.outbox') / 1048576),
		'$workers_kb'"
}

echo "== soak: $SOAK_MINUTES minutes at $SOAK_RATE orders/s, a sender at $SOAK_SENDER_RATE claims/s" >&2
start_epoch=$(date +%s)
pgbench -n -c 2 -j 2 -R "$SOAK_RATE" -T "$((seconds + 10))" -P 60 -f "$work/order.sql" >"$work/orders.out" 2>&1 &
orders_pid=$!
pgbench -n -c 1 -j 1 -R "$SOAK_SENDER_RATE" -T "$((seconds + 10))" -f "$work/sender.sql" >"$work/sender.out" 2>&1 &
sender_pid=$!
sample 0 "$start_epoch" >"$work/samples"
for minute in $(seq "$SOAK_MINUTES"); do
	sleep $((start_epoch + minute * 60 - $(date +%s)))
	sample "$minute" "$((start_epoch + (minute - 1) * 60))" >>"$work/samples"
	tail -1 "$work/samples" >&2
done
for pid in "$orders_pid" "$sender_pid"; do
	wait "$pid" || { echo "FAIL: a pgbench run ended in an error:" >&2; cat "$work/orders.out" "$work/sender.out" >&2; exit 1; }
done
doubled=$(sql "SELECT count(*) FROM (SELECT FROM post_purchase.outbox GROUP BY enrollment_id, step HAVING count(*) > 1) d")
[ "$doubled" = 0 ] || { echo "FAIL: $doubled steps are in the outbox twice" >&2; exit 1; }
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/orders.out")
sender_failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/sender.out")
errors=$(sql "SELECT count(*) || coalesce(' (' || string_agg(last_error, '; ') || ')', '')
	FROM post_purchase.worker_status WHERE last_error IS NOT NULL")
outcomes=$(sql "SELECT string_agg(coalesce(reason, outcome) || ' ' || n, ', ' ORDER BY n DESC)
	FROM (SELECT outcome, reason, count(*) n FROM post_purchase.step_outcomes GROUP BY 1, 2) o")

# The per-minute table from the cumulative samples.  Fields of a sample:
# minute, orders inserted, steps decided, steps fired, messages acknowledged
# since the last sample (none is purged that soon), outbox rows deleted, due lag, unacknowledged lag, live/dead of
# customer_state, enrollment_sweeps, enrollments, outbox,
# segment_memberships and step_outcomes, outbox MB, workers, their RssAnon kB.
# The orders' mean latency per minute comes from pgbench's progress lines.
sed -n 's/^progress: .* lat \([0-9.]*\) ms.*/\1/p' "$work/orders.out" >"$work/latency"
awk -F'|' -v latency_file="$work/latency" '
	BEGIN { while ((getline line < latency_file) > 0) latency[++n] = line }
	NR > 1 {
		printf "| %d | %d | %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %.1f |\n",
			$1, $2 - p2, latency[$1], $3 - p3, $4 - p4, $5, $6 - p6, $7, $8, $9, $10, $11, $12, $13, $14,
			$15, $16, ($16 > 0 ? $17 / $16 / 1024 : 0)
	}
	{ p2 = $2; p3 = $3; p4 = $4; p6 = $6 }' "$work/samples" >"$work/table"

# The verdicts, from the table alone (so a recorded table can be judged
# again): the first window of minutes against the last for throughput and
# lag; worker memory from the first minute after both scheduled refreshes
# have run once (a high-water mark reached once is not a leak; growth after
# it is) to the last; dead shares after the first window, since autovacuum
# first visits a new database a naptime after it appears.
window=$((SOAK_MINUTES >= 10 ? 5 : (SOAK_MINUTES + 1) / 2))
mem_base=$(((segments_interval > models_interval ? segments_interval : models_interval) / 60 + 1))
[ "$SOAK_MINUTES" -ge $((mem_base + 5)) ] || mem_base=1
summary=$(awk -F'|' -v minutes="$SOAK_MINUTES" -v w="$window" -v mem_base="$mem_base" '
	function dead_share(pair, e) { split(pair, e, "/"); return e[1] + e[2] > 0 ? e[2] / (e[1] + e[2]) : 0 }
	{
		m = $2 + 0; orders[m] = $3; latency[m] = $4; decided[m] = $5; msgs[m] = $6
		lag[m] = $9 + 0 > $10 + 0 ? $9 + 0 : $10 + 0; mem[m] = $19
		if (m > w && dead_share($14) > od) od = dead_share($14)
		if (m > w && dead_share($13) > ed) ed = dead_share($13)
	}
	END {
		for (i = 1; i <= w; i++) {
			j = minutes - w + i
			of += orders[i]; tf += latency[i]; df += decided[i]; mf += msgs[i]; if (lag[i] > lf) lf = lag[i]
			ol += orders[j]; tl += latency[j]; dl += decided[j]; ml += msgs[j]; if (lag[j] > ll) ll = lag[j]
		}
		printf "%.1f|%.1f|%.2f|%.2f|%.1f|%.1f|%.1f|%.1f|%.1f|%.1f|%.1f|%.1f|%.1f|%.2f|%.2f\n", of / w, ol / w, tf / w, tl / w,
			df / w, dl / w, mf / w, ml / w, lf, ll, mem[1], mem[mem_base], mem[minutes], od, ed
	}' "$work/table")
IFS='|' read -r orders_first orders_last latency_first latency_last decided_first decided_last msgs_first msgs_last \
	lag_first lag_last mem_start mem_first mem_last outbox_dead enroll_dead <<<"$summary"

orders_ratio=$(ratio "$orders_last" "$orders_first")
msgs_ratio=$(ratio "$msgs_last" "$msgs_first")
decided_ratio=$(ratio "$decided_last" "$decided_first")
latency_ratio=$(ratio "$latency_last" "$latency_first")
mem_ratio=$(ratio "$mem_last" "$mem_first")
lag_growth=$(awk -v a="$lag_last" -v b="$lag_first" 'BEGIN { printf "%.1f", a - b }')

{
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo "- server: $(sql 'SELECT version()' | cut -d, -f1), settings: ${settings[*]}; autovacuum on with PostgreSQL's defaults, the extension's storage parameters"
	echo "- load: $SOAK_MINUTES minutes; $SOAK_CUSTOMERS customers with $SOAK_ORDERS orders before; pgbench orders at $SOAK_RATE/s (2 clients, 1 in 6 a new customer); a sender claiming 100 and acknowledging them $SOAK_SENDER_RATE times a second; outbox_retention 5 minutes; the 8 seed journeys enabled"
	echo "- note: ${SOAK_NOTE:-none}"
	echo
	echo "| minute | orders | order latency ms | steps decided | messages | acknowledged | purged (statistics: may show a minute late) | due step lag s | unacknowledged lag s | customer_state live/dead | enrollment_sweeps live/dead | enrollments live/dead | outbox live/dead | segment_memberships live/dead | step_outcomes live/dead | outbox MB | workers | worker RssAnon MB (mean) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|---:|---:|---:|"
	cat "$work/table"
	echo
	echo "| target (mean of the first $window minutes against the last $window) | first | last | ratio | goal | result |"
	echo "|---|---:|---:|---:|---:|---|"
	echo "| orders per minute | $orders_first | $orders_last | $orders_ratio | >= 0.90 | $(verdict "$orders_ratio" 0.9 min) |"
	echo "| mean latency of an order insert (pgbench), ms | $latency_first | $latency_last | $latency_ratio | <= 1.50 | $(verdict "$latency_ratio" 1.5 max) |"
	echo "| info: steps decided (fired or suppressed) per minute (follows demand: fewer second orders, so fewer loyalty invites, as the run goes on; the workers keep up when the due-step lag stays near 0) | $decided_first | $decided_last | $decided_ratio | | |"
	echo "| info: messages into the outbox per minute (falls as repeat buyers reach the frequency cap) | $msgs_first | $msgs_last | $msgs_ratio | | |"
	echo "| worst lag (due step or unacknowledged message), s | $lag_first | $lag_last | +$lag_growth s | <= +5 s | $(verdict "$lag_growth" 5 max) |"
	echo "| worker private memory (RssAnon), MB per worker, minute $mem_base (both refreshes ran once) to the last | $mem_first | $mem_last | $mem_ratio | <= 1.20 | $(verdict "$mem_ratio" 1.2 max) |"
	echo "| info: worker private memory at minute 1, MB | | $mem_start | | | |"
	echo "| worst dead share of the outbox (dead / (live + dead)) after minute $window | | $outbox_dead | | <= 0.50 | $(verdict "$outbox_dead" 0.5 max) |"
	echo "| worst dead share of enrollments after minute $window | | $enroll_dead | | <= 0.20 | $(verdict "$enroll_dead" 0.2 max) |"
	echo
	echo "Checks: no step in the outbox twice; failed transactions: ${failed:-0} of pgbench placing orders, ${sender_failed:-0} of the sender; workers with a last_error: $errors; step outcomes: $outcomes."
} | tee "$report"

if [ "$SOAK_RECORD" = 1 ]; then
	cat "$report" >>"$SOAK_RESULTS"
	echo "(appended to $SOAK_RESULTS)" >&2
fi
