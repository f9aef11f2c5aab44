#!/bin/bash
# The benchmark of order tracking and customer_metrics (README_tracking.md):
# pgbench TPS of single-order inserts with and without tracking, the backfill
# against a plain copy of the same rows, and customer_metrics against a plain
# scan of the state.  It starts a throwaway server of its own, runs at a
# tenth of the size and at full size, prints the report and appends it to
# RESULTS_tracking.md.
#
#   test/bench/run_tracking_bench.sh          on a throwaway server (pg_virtualenv)
#   test/bench/run_tracking_bench.sh --here   on the server in PGHOST/PGPORT/PGUSER
#                                             (database post_purchase_tracking_bench, dropped first)
#
#   TRACK_BENCH_CUSTOMERS, TRACK_BENCH_ORDERS  full size (1000000, 10000000)
#   TRACK_BENCH_SCALE_DOWN    the small size is the full one divided by this (10; 0: skip it)
#   TRACK_BENCH_CLIENTS       pgbench client counts ("2 8")
#   TRACK_BENCH_DURATION      seconds per pgbench run (30)
#   TRACK_BENCH_BACKFILL_RUNS timed runs of the copy and of the backfill (2)
#   TRACK_BENCH_RUNS          timed full scans of customer_metrics and of the state (3)
#   TRACK_BENCH_LOOKUPS       single-customer lookups timed, a batch of the best of TRACK_BENCH_RUNS (1000)
#   TRACK_BENCH_RESULTS       the file the report is appended to (RESULTS_tracking.md here)
#   TRACK_BENCH_RECORD        0: do not append
#   TRACK_BENCH_NOTE          a sentence recorded with the results
# A missed target is reported, not fatal; a wrong state or a failed order is fatal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${TRACK_BENCH_CUSTOMERS:=1000000}" "${TRACK_BENCH_ORDERS:=10000000}" "${TRACK_BENCH_SCALE_DOWN:=10}"
: "${TRACK_BENCH_CLIENTS:=2 8}" "${TRACK_BENCH_DURATION:=30}" "${TRACK_BENCH_BACKFILL_RUNS:=2}"
: "${TRACK_BENCH_RUNS:=3}" "${TRACK_BENCH_LOOKUPS:=1000}" "${TRACK_BENCH_RECORD:=1}" "${TRACK_BENCH_NOTE:=}"
: "${TRACK_BENCH_RESULTS:=$here/RESULTS_tracking.md}"

# The settings of run_bench.sh: the tables stay in shared_buffers, sorts and
# hashes in work_mem, serial plans and no JIT, nothing in the background
# (autovacuum, checkpoints) during the timings, durability off since the
# server is thrown away.
settings=(shared_buffers=4GB work_mem=1GB hash_mem_multiplier=2 maintenance_work_mem=1GB
	jit=off max_parallel_workers_per_gather=0 autovacuum=off fsync=off synchronous_commit=off
	full_page_writes=off max_wal_size=20GB checkpoint_timeout=1h TimeZone=UTC)

if [ "${1:-}" = --here ]; then
	export PGDATABASE=post_purchase_tracking_bench
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE"
elif [ -z "${TRACK_BENCH_INSIDE:-}" ]; then
	# a server from the caller's environment must not be the one measured
	unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE
	opts=(-o shared_preload_libraries=post_purchase)
	for s in "${settings[@]}"; do opts+=(-o "$s"); done
	TRACK_BENCH_INSIDE=1 exec pg_virtualenv -t "${opts[@]}" "$0"
fi

export PGOPTIONS="-c client_min_messages=warning"
psql=(psql -X -q -v ON_ERROR_STOP=1)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
threads=$(nproc)

# sql SQL...: run statements, print the unaligned result
sql() {
	"${psql[@]}" -At "${@/#/-c}"
}

# run SQL...: the same, the output dropped
run() {
	sql "$@" >/dev/null
}

# timed LABEL NAME RUN STATEMENT: time a statement in the server, keep it
timed() {
	local ms
	ms=$(sql "SELECT bench.elapsed_ms(\$stmt\$$4\$stmt\$)")
	run "INSERT INTO bench.timings VALUES ('$1', '$2', $3, $ms)"
	printf '%s %s run %s: %.0f ms\n' "$1" "$2" "$3" "$ms" >&2
}

# timed_call LABEL NAME RUN STATEMENT: the same for a statement that commits
# on its own (a CALL), which a function cannot run: timed here, with
# psql's start (some milliseconds) in it
timed_call() {
	local start end ms
	start=$(date +%s%N)
	run "$4"
	end=$(date +%s%N)
	ms=$(((end - start) / 1000000))
	run "INSERT INTO bench.timings VALUES ('$1', '$2', $3, $ms)"
	printf '%s %s run %s: %s ms\n' "$1" "$2" "$3" "$ms" >&2
}

# pgbench_run LABEL STAGE CLIENTS SEQ TRACKED SEED: one run, its TPS kept
pgbench_run() {
	local out tps processed failed
	if ! out=$(pgbench -n -M prepared -c "$3" -j "$((threads < $3 ? threads : $3))" -T "$TRACK_BENCH_DURATION" \
		--random-seed="$6" -D customers="$customers" -D tracked="$5" -f "$here/tracking_bench_order.sql" 2>&1); then
		echo "$out" >&2
		echo "FAIL: pgbench ($1, $2, $3 clients, tracked=$5) failed" >&2
		exit 1
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	if [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then
		echo "$out" >&2
		echo "FAIL: pgbench ($1, $2, $3 clients, tracked=$5): orders failed" >&2
		exit 1
	fi
	run "INSERT INTO bench.tps VALUES ('$1', '$2', $3, $4, $5 <> 0, $tps, $processed)"
	printf '%s %s %s clients %s: %.0f TPS\n' "$1" "$2" "$3" "$([ "$5" != 0 ] && echo tracked || echo untracked)" \
		"$tps" >&2
}

# lookup_client LABEL MODE: one client's mean latency of one customer's
# row of customer_metrics, round trip included, with pgbench's query mode
# MODE, kept as the fact lookup_client_MODE_ms
lookup_client() {
	local out ms
	if ! out=$(pgbench -n -M "$2" -c 1 -T "$TRACK_BENCH_DURATION" -D customers="$customers" \
		-f "$here/tracking_bench_lookup.sql" 2>&1); then
		echo "$out" >&2
		echo "FAIL: pgbench lookups ($1, -M $2) failed" >&2
		exit 1
	fi
	ms=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' <<<"$out")
	[ -n "$ms" ] || { echo "$out" >&2; echo "FAIL: no latency from pgbench lookups" >&2; exit 1; }
	run "SELECT bench.fact('$1', 'lookup_client_$2_ms', $ms)"
	printf '%s one customer from a client, -M %s: %s ms\n' "$1" "$2" "$ms" >&2
}

# stage LABEL STAGE SEED [MODE]: for each client count, untracked / tracked /
# untracked, so that a change of load shows in the two untracked runs around
# the tracked one; both sides get the same random orders (the same seed).
# MODE 2: the floor (tracking_bench_order.sql) on the tracked side.
stage() {
	local c seed
	for c in $TRACK_BENCH_CLIENTS; do
		seed=$(($3 * 1000 + c))
		pgbench_run "$1" "$2" "$c" 1 0 "$seed"
		pgbench_run "$1" "$2" "$c" 2 "${4:-1}" "$seed"
		pgbench_run "$1" "$2" "$c" 3 0 "$seed"
	done
}

# measure LABEL CUSTOMERS ORDERS: everything at one size
measure() {
	local label=$1 i start
	customers=$2
	echo "== $label: $2 customers, $3 orders" >&2
	run "DROP EXTENSION IF EXISTS post_purchase CASCADE" "DROP TABLE IF EXISTS bench.orders_copy" \
		"DROP SEQUENCE IF EXISTS bench.order_id"
	start=$SECONDS
	"${psql[@]}" -v customers="$2" -v orders="$3" -v answers=0 -f "$here/generate_shop.sql"
	"${psql[@]}" -v label="$label" -f "$here/tracking_bench.sql"
	run "SELECT bench.fact('$label', 'generate_s', $((SECONDS - start)))"
	# the index a shop has for its customers' orders; the trigger's delete path uses it
	run "CREATE INDEX orders_customer_ordered_at ON shop.orders (customer_id, ordered_at)" \
		"CREATE SEQUENCE bench.order_id START $(($3 + 1))" \
		"CREATE EXTENSION post_purchase" \
		"UPDATE post_purchase.settings SET value = '2024-01-01' WHERE name = 'today'" \
		"VACUUM ANALYZE shop.orders"

	# the backfill against a plain copy of the same rows, in turns
	for i in $(seq 1 "$TRACK_BENCH_BACKFILL_RUNS"); do
		run "DROP TABLE IF EXISTS bench.orders_copy" "CREATE TABLE bench.orders_copy (LIKE shop.orders)" "CHECKPOINT"
		timed "$label" copy "$i" "INSERT INTO bench.orders_copy SELECT * FROM shop.orders"
		if [ "$i" -gt 1 ]; then
			run "SELECT post_purchase.untrack_orders('shop.orders')" \
				"TRUNCATE post_purchase.customer_state"
		fi
		run "CHECKPOINT"
		timed "$label" backfill "$i" "SELECT post_purchase.track_orders('shop.orders')"
		# the floor: the backfill's query alone (the orders grouped by
		# customer, purchase_totals() merging their days), into a table
		# without the primary key
		run "DROP TABLE IF EXISTS bench.floor_state_load" \
			"CREATE TABLE bench.floor_state_load (LIKE post_purchase.customer_state)" "CHECKPOINT"
		timed "$label" floor_state_load "$i" \
			"INSERT INTO bench.floor_state_load (customer_id, orders, revenue, first_order_at, last_order_at, purchase_days, first_day, last_day, first_day_revenue, updated_at, changed_at, order_seq, decided_seq) $(sql "SELECT post_purchase.recomputed_state_query(t)
				FROM post_purchase.tracked_orders t")"
	done
	run "DROP TABLE bench.floor_state_load"
	# the copy is the untracked side of pgbench: same rows, same indexes
	run "ALTER TABLE bench.orders_copy ADD PRIMARY KEY (order_id)" \
		"CREATE INDEX orders_copy_customer_ordered_at ON bench.orders_copy (customer_id, ordered_at)" \
		"VACUUM ANALYZE" "CHECKPOINT"
	run "SELECT bench.fact('$label', 'purchase_days', sum(purchase_days)) FROM post_purchase.customer_state" \
		"SELECT bench.fact('$label', 'customers', count(*)) FROM post_purchase.customer_state"

	# orders right after track_orders: the 17 built-in segments, no model yet
	stage "$label" segments 1

	# the planner needs statistics of the memberships the orders made (autovacuum
	# is off here; a refresh_segments() without them can take hours: README_tracking.md)
	run "ANALYZE"
	timed "$label" refresh_models 1 "SELECT post_purchase.refresh_models()"
	timed "$label" refresh_segments 1 "SELECT post_purchase.refresh_segments()"
	run "ANALYZE"
	timed "$label" refresh_segments_again 1 "SELECT post_purchase.refresh_segments()"
	# all customers while no stored score counts (the new model made them
	# stop, and no worker runs here): everything computed
	run "SELECT bench.elapsed_ms('SELECT count(x.*) FROM post_purchase.customer_metrics x')"
	timed "$label" metrics_unscored_all 1 "SELECT count(x.*) FROM post_purchase.customer_metrics x"
	# every customer's scores stored, as the first worker stores them after
	# the refreshes, a batch a transaction
	timed_call "$label" store_all_scores 1 "CALL post_purchase.store_all_scores()"
	run "SELECT bench.fact('$label', 'model_converged', ((bgnbd).converged AND (gamma_gamma).converged)::int)
		 FROM post_purchase.models ORDER BY model_id DESC LIMIT 1" \
		"SELECT bench.fact('$label', 'open_memberships', count(*))
		 FROM post_purchase.segment_memberships WHERE exited_at IS NULL" \
		"SELECT bench.fact('$label', 'scored_at_lookups', count(*) FILTER (WHERE b.scored))
		 FROM post_purchase.customer_summaries_in_context b" \
		"VACUUM ANALYZE" "CHECKPOINT"

	# customer_metrics with every customer's scores stored: one customer, then all
	# each kind in a session of its own: after a thousand runs of the
	# cached plan, the same function's EXECUTEs took four times as long
	# (2.2 against 0.55 ms, 2026-12-07; a client's own queries do not)
	run "SELECT bench.lookups(bench.sample_customers($TRACK_BENCH_LOOKUPS, $customers), false)"
	run "SELECT bench.record_spread('$label', 'lookup_adhoc',
			bench.best_lookups(bench.sample_customers($TRACK_BENCH_LOOKUPS, $customers), true, $TRACK_BENCH_RUNS))"
	run "SELECT bench.record_spread('$label', 'lookup_prepared',
			bench.best_lookups(bench.sample_customers($TRACK_BENCH_LOOKUPS, $customers), false, $TRACK_BENCH_RUNS))"
	# the same from a client: one pgbench client, a random customer a
	# query, parsed and planned for each (-M simple) and prepared
	lookup_client "$label" simple
	lookup_client "$label" prepared
	run "SELECT bench.elapsed_ms('SELECT count(x.*) FROM post_purchase.customer_metrics x')" \
		"SELECT bench.elapsed_ms('SELECT count(x.*) FROM post_purchase.customer_state x')"
	for i in $(seq 1 "$TRACK_BENCH_RUNS"); do
		timed "$label" metrics_all "$i" "SELECT count(x.*) FROM post_purchase.customer_metrics x"
		timed "$label" state_all "$i" "SELECT count(x.*) FROM post_purchase.customer_state x"
		# the state's own columns, without the stored scores (the state
		# table before it stored them)
		timed "$label" state_unscored_all "$i" "SELECT count(x.*) FROM (SELECT s.customer_id, s.orders,
			s.revenue, s.first_order_at, s.last_order_at, s.purchase_days, s.first_day, s.last_day,
			s.first_day_revenue, s.updated_at, s.last_nps, s.last_nps_at, s.last_csat, s.last_csat_at,
			s.changed_at, s.order_seq, s.decided_seq FROM post_purchase.customer_state s) x"
	done

	# orders with the models and the refreshed segments: every order
	# evaluates the 17 rules over the customer's live metrics
	stage "$label" models 2
	# the customers these orders changed: their stored scores stopped
	# counting, the view computes them, and their memberships must agree
	# with the rules
	run "CREATE TABLE bench.changed AS
		 SELECT s.customer_id FROM post_purchase.customer_state s
		 WHERE s.scored_on IS NULL
		 ORDER BY hashtext(s.customer_id), s.customer_id LIMIT $TRACK_BENCH_LOOKUPS" \
		"SELECT bench.record_spread('$label', 'lookup_live_adhoc',
			bench.best_lookups(ARRAY(SELECT customer_id FROM bench.changed), true, $TRACK_BENCH_RUNS))" \
		"SELECT bench.fact('$label', 'segment_disagreements',
			bench.segment_disagreements(ARRAY(SELECT customer_id FROM bench.changed)))" \
		"DROP TABLE bench.changed"

	# the trigger alone, without segments to evaluate
	run "DELETE FROM post_purchase.journeys WHERE segment IS NOT NULL; DELETE FROM post_purchase.segments"
	stage "$label" trigger 3

	# the floor: the trigger's own rows by plain SQL, into copies of the state
	run "DROP TABLE IF EXISTS bench.floor_state" \
		"CREATE TABLE bench.floor_state (LIKE post_purchase.customer_state INCLUDING ALL)" \
		"INSERT INTO bench.floor_state SELECT * FROM post_purchase.customer_state" \
		"VACUUM ANALYZE bench.floor_state" "CHECKPOINT"
	stage "$label" floor 4 2

	# a fast wrong state is no result
	run "SELECT bench.fact('$label', 'verify_differences', count(*)) FROM post_purchase.verify_state()"
	if [ "$(sql "SELECT value FROM bench.facts WHERE label = '$label' AND name = 'verify_differences'")" != 0 ]; then
		sql "SELECT * FROM post_purchase.verify_state() LIMIT 20" >&2
		echo "FAIL: $label: the tracked state differs from the orders (verify_state)" >&2
		exit 1
	fi
	if [ "$(sql "SELECT value FROM bench.facts WHERE label = '$label' AND name = 'segment_disagreements'")" != 0 ]; then
		echo "FAIL: $label: segment memberships disagree with the rules after orders" >&2
		exit 1
	fi
}

small_label=none
if [ "$TRACK_BENCH_SCALE_DOWN" -gt 0 ]; then
	small_label=small
	measure small "$((TRACK_BENCH_CUSTOMERS / TRACK_BENCH_SCALE_DOWN))" "$((TRACK_BENCH_ORDERS / TRACK_BENCH_SCALE_DOWN))"
fi
measure large "$TRACK_BENCH_CUSTOMERS" "$TRACK_BENCH_ORDERS"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(mktemp)
trap 'rm -f "$report"' EXIT
{
	echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "- sizes: large = $TRACK_BENCH_CUSTOMERS customers, $TRACK_BENCH_ORDERS orders (generate_shop.sql)"
	if [ "$small_label" = small ]; then
		echo "  small = $((TRACK_BENCH_CUSTOMERS / TRACK_BENCH_SCALE_DOWN)) customers," \
			"$((TRACK_BENCH_ORDERS / TRACK_BENCH_SCALE_DOWN)) orders"
	fi
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
		"$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory;" \
		"load average $load_before at the start, $load_after at the end"
	echo "- server: $(sql 'SELECT version()'), extension $(sql \
		"SELECT extversion FROM pg_extension WHERE extname = 'post_purchase'")"
	echo "- settings: $(sql "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY ord)
		FROM unnest(ARRAY['shared_buffers', 'work_mem', 'hash_mem_multiplier', 'maintenance_work_mem', 'jit',
			'max_parallel_workers_per_gather', 'autovacuum', 'fsync', 'synchronous_commit', 'full_page_writes',
			'max_wal_size', 'checkpoint_timeout', 'TimeZone']) WITH ORDINALITY AS s(name, ord)")"
	echo "- pgbench: test/bench/tracking_bench_order.sql, one order per transaction, -M prepared," \
		"$TRACK_BENCH_DURATION s per run, clients $TRACK_BENCH_CLIENTS (threads: at most $threads);" \
		"post_purchase.settings today = 2024-01-01; index shop.orders (customer_id, ordered_at)"
	if [ -n "$TRACK_BENCH_NOTE" ]; then echo "- note: $TRACK_BENCH_NOTE"; fi
	echo
	"${psql[@]}" -v small="$small_label" -v large=large -f "$here/tracking_bench_report.sql"
	echo
} >"$report"
cat "$report"
if [ "$TRACK_BENCH_RECORD" != 0 ]; then
	if [ ! -f "$TRACK_BENCH_RESULTS" ]; then
		printf '# Tracking benchmark results\n\nAppended by test/bench/run_tracking_bench.sh; see README_tracking.md.\n\n' \
			>"$TRACK_BENCH_RESULTS"
	fi
	cat "$report" >>"$TRACK_BENCH_RESULTS"
	echo "appended to $TRACK_BENCH_RESULTS"
fi
