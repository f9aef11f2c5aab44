#!/bin/bash
# The benchmark of refresh_product_affinity() (README_affinity.md): on order
# items generated in SQL straight into post_purchase.customer_product_orders
# (the tracked state the refresh reads), the best of N timings of
#   baseline  the bare same-order self-join: SELECT a.product_id,
#             b.product_id, count(*) ... JOIN ON the order key AND a < b
#             GROUP BY the pair (its rows only counted);
#   refresh   post_purchase.refresh_product_affinity() with the window and
#             thresholds below (same-order and sequence pairs, written);
#   analyst   the SQL an analyst would write for the same numbers: CTEs with
#             count(DISTINCT ...), a self-join per kind over all pairs,
#             support, confidence and lift, the same thresholds (into a
#             temporary table);
# in one run, and the ratios refresh / baseline (goal <= 2) and analyst /
# refresh (goal >= 3).  It checks that the analyst's rows equal
# product_affinity's, records the temporary files each statement wrote
# (pg_stat_database.temp_bytes: the spills that bound their memory) and
# appends the report to RESULTS_affinity.md.
#
#   test/bench/run_affinity_bench.sh    on a throwaway server (pg_virtualenv)
#
#   AFF_BENCH_ITEMS      order items (10000000)
#   AFF_BENCH_CUSTOMERS  customers (1000000)
#   AFF_BENCH_PRODUCTS   products (5000)
#   AFF_BENCH_RUNS       timed runs of each statement, the best kept (3)
#   AFF_BENCH_WINDOW, AFF_BENCH_MIN_SUPPORT, AFF_BENCH_MIN_CONFIDENCE
#                        the refresh's parameters ('90 days', 0.00002, 0.01)
#   AFF_BENCH_WORK_MEM   work_mem of the server (64MB; hash_mem_multiplier 2)
#   AFF_BENCH_SKIP_ANALYST  1: do not time the analyst SQL (it is the slowest)
#   AFF_BENCH_RESULTS    the file the report is appended to (RESULTS_affinity.md here)
#   AFF_BENCH_RECORD     0: do not append
#   AFF_BENCH_NOTE       a sentence recorded with the results
# A missed goal is reported, not fatal; rows that disagree are fatal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${AFF_BENCH_ITEMS:=10000000}" "${AFF_BENCH_CUSTOMERS:=1000000}" "${AFF_BENCH_PRODUCTS:=5000}"
: "${AFF_BENCH_RUNS:=3}" "${AFF_BENCH_WINDOW:=90 days}" "${AFF_BENCH_MIN_SUPPORT:=0.00002}"
: "${AFF_BENCH_MIN_CONFIDENCE:=0.01}" "${AFF_BENCH_WORK_MEM:=64MB}" "${AFF_BENCH_SKIP_ANALYST:=0}"
: "${AFF_BENCH_RECORD:=1}" "${AFF_BENCH_NOTE:=}" "${AFF_BENCH_RESULTS:=$here/RESULTS_affinity.md}"

# serial plans and no JIT (the ratios compare plans, not cores), nothing in
# the background, durability off since the server is thrown away; work_mem
# moderate, so the big steps spill as they would on a shop's server
settings=(shared_buffers=2GB "work_mem=$AFF_BENCH_WORK_MEM" hash_mem_multiplier=2 maintenance_work_mem=1GB
	jit=off max_parallel_workers_per_gather=0 autovacuum=off fsync=off synchronous_commit=off
	full_page_writes=off max_wal_size=20GB checkpoint_timeout=1h TimeZone=UTC)

. "$here/bench_server.sh"
run_in_throwaway_server AFF_BENCH_INSIDE shared_preload_libraries=post_purchase "${settings[@]}"
open_bench_database affinity_bench
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

sql 'CREATE EXTENSION post_purchase'
orders=$(awk -v i="$AFF_BENCH_ITEMS" 'BEGIN { printf("%d", i / 2.5) }')
echo "generating $AFF_BENCH_ITEMS items (about: $orders orders, $AFF_BENCH_CUSTOMERS customers, $AFF_BENCH_PRODUCTS products)"
# An order has 1-4 item draws (2.5 on average) from a long tail of products
# (random()^3: a few products in many orders), a product drawn twice in an
# order counted once; order o is customer o mod customers', at a random
# time in two years.  Cut at exactly AFF_BENCH_ITEMS items.
t0=$(date +%s.%N)
sql "SELECT setseed(0.42)" \
	"INSERT INTO post_purchase.customer_product_orders
	 SELECT d.o::text, 'p' || d.p, 'c' || (d.o % $AFF_BENCH_CUSTOMERS), d.t, (d.t AT TIME ZONE 'UTC')::date, 1, 1
	 FROM (SELECT DISTINCT x.o, x.t, floor($AFF_BENCH_PRODUCTS * random() ^ 3)::int + 0 * j AS p
		   FROM (SELECT o, 1 + floor(random() * 4)::int AS k,
						timestamptz '2023-01-01' + random() * interval '730 days' AS t
				 FROM generate_series(1, $orders + $orders / 5) o) x
		   CROSS JOIN LATERAL generate_series(1, x.k) j) d
	 ORDER BY d.o, d.p
	 LIMIT $AFF_BENCH_ITEMS" \
	'VACUUM ANALYZE post_purchase.customer_product_orders'
gen_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf("%.1f", b - a) }')
read -r n_items n_orders n_customers n_products <<<"$(sql "SELECT count(*), count(DISTINCT order_key),
	count(DISTINCT customer_id), count(DISTINCT product_id) FROM post_purchase.customer_product_orders" | tr '|' ' ')"
echo "generated in ${gen_s}s: $n_items items, $n_orders orders, $n_customers customers, $n_products products"

baseline_sql="SELECT count(*) FROM (SELECT a.product_id, b.product_id, count(*)
	FROM post_purchase.customer_product_orders a
	JOIN post_purchase.customer_product_orders b
	  ON b.order_key = a.order_key AND a.product_id COLLATE \"C\" < b.product_id COLLATE \"C\"
	GROUP BY a.product_id, b.product_id) x"
refresh_sql="SELECT post_purchase.refresh_product_affinity('$AFF_BENCH_WINDOW', $AFF_BENCH_MIN_SUPPORT, $AFF_BENCH_MIN_CONFIDENCE)"
# What an analyst writes: every pair, the distinct counts, the measures, a filter.
analyst_sql="DROP TABLE IF EXISTS analyst_affinity;
CREATE TABLE analyst_affinity AS
WITH n_orders AS (SELECT count(DISTINCT order_key) AS n FROM post_purchase.customer_product_orders),
n_customers AS (SELECT count(DISTINCT customer_id) AS n FROM post_purchase.customer_product_orders),
product_orders AS (SELECT product_id, count(DISTINCT order_key) AS n FROM post_purchase.customer_product_orders GROUP BY product_id),
product_customers AS (SELECT product_id, count(DISTINCT customer_id) AS n FROM post_purchase.customer_product_orders GROUP BY product_id),
together AS (
	SELECT a.product_id AS a, b.product_id AS b, count(DISTINCT a.order_key) AS n
	FROM post_purchase.customer_product_orders a
	JOIN post_purchase.customer_product_orders b ON b.order_key = a.order_key AND b.product_id <> a.product_id
	GROUP BY a.product_id, b.product_id),
followed AS (
	SELECT a.product_id AS a, b.product_id AS b, count(DISTINCT a.customer_id) AS n
	FROM post_purchase.customer_product_orders a
	JOIN post_purchase.customer_product_orders b ON b.customer_id = a.customer_id AND b.product_id <> a.product_id
	 AND b.ordered_at > a.ordered_at AND b.ordered_at <= a.ordered_at + interval '$AFF_BENCH_WINDOW'
	GROUP BY a.product_id, b.product_id),
measured AS (
	SELECT t.a, 'same_order' AS kind, t.b, t.n AS pair_count, pa.n AS a_count, pb.n AS b_count, o.n AS total,
		   t.n::float8 / o.n AS support, t.n::float8 / pa.n AS confidence,
		   (t.n::float8 * o.n) / (pa.n::float8 * pb.n) AS lift
	FROM together t, n_orders o, product_orders pa, product_orders pb
	WHERE pa.product_id = t.a AND pb.product_id = t.b
	UNION ALL
	SELECT f.a, 'sequence', f.b, f.n, pa.n, pb.n, c.n, f.n::float8 / c.n, f.n::float8 / pa.n,
		   (f.n::float8 * c.n) / (pa.n::float8 * pb.n)
	FROM followed f, n_customers c, product_customers pa, product_customers pb
	WHERE pa.product_id = f.a AND pb.product_id = f.b)
SELECT * FROM measured WHERE support >= $AFF_BENCH_MIN_SUPPORT AND confidence >= $AFF_BENCH_MIN_CONFIDENCE"

temp_bytes() { sql "SELECT pg_stat_clear_snapshot()" >/dev/null; sql "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"; }
# time_best NAME SQL: the best of AFF_BENCH_RUNS wall times (s), and the temp bytes of the last run
time_best() {
	local name=$1 q=$2 best= t0 t1 s before after
	for _ in $(seq "$AFF_BENCH_RUNS"); do
		before=$(temp_bytes)
		t0=$(date +%s.%N)
		"${psql[@]}" -At -c "$q" >/dev/null
		t1=$(date +%s.%N)
		after=$(temp_bytes)
		s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf("%.2f", b - a) }')
		echo "  $name: ${s}s, temp files $(( (after - before) / 1048576 )) MiB" >&2
		best=$(awk -v b="${best:-$s}" -v s="$s" 'BEGIN { print (s < b ? s : b) }')
	done
	echo "$best $(( (after - before) / 1048576 ))"
}

echo "timing (best of $AFF_BENCH_RUNS)"
read -r baseline_s baseline_temp <<<"$(time_best baseline "$baseline_sql")"
read -r refresh_s refresh_temp <<<"$(time_best refresh "$refresh_sql")"
kept=$(sql "SELECT count(*) FROM post_purchase.product_affinity")
kinds=$(sql "SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind) FROM (SELECT kind, count(*) AS n FROM post_purchase.product_affinity GROUP BY kind) k")
baseline_pairs=$(sql "$baseline_sql")
if [ "$AFF_BENCH_SKIP_ANALYST" = 1 ]; then
	analyst_s=0 analyst_temp=0 agree="not checked (analyst SQL skipped)"
else
	read -r analyst_s analyst_temp <<<"$(time_best analyst "$analyst_sql")"
	# the analyst's rows and the refresh's, compared exactly (counts and float8 ratios)
	differ=$(sql "SELECT count(*) FROM ((SELECT a, kind, b, pair_count, a_count, b_count, total, support, confidence, lift
										 FROM analyst_affinity
										 EXCEPT SELECT product_a, kind, product_b, pair_count, a_count, b_count, total,
													   support, confidence, lift FROM post_purchase.product_affinity)
										UNION ALL
										(SELECT product_a, kind, product_b, pair_count, a_count, b_count, total,
												support, confidence, lift FROM post_purchase.product_affinity
										 EXCEPT SELECT a, kind, b, pair_count, a_count, b_count, total, support,
													   confidence, lift FROM analyst_affinity)) d")
	if [ "$differ" != 0 ]; then
		echo "the analyst SQL and refresh_product_affinity() disagree on $differ rows" >&2
		exit 1
	fi
	agree="the analyst SQL's $kept rows equal product_affinity's exactly"
fi
# The refresh once more, untimed, for its memory: the backend's resident
# anonymous memory (RssAnon: its own, not the shared buffers it touched),
# sampled every 50 ms, and affinity_pairs' DEBUG1 line (its partitions).
probe_err=$(mktemp)
PGAPPNAME=affinity_probe "${psql[@]}" -At -c "SET client_min_messages = debug1" -c "$refresh_sql" \
	>/dev/null 2>"$probe_err" &
probe_job=$! probe_pid= peak_kb=0
while kill -0 "$probe_job" 2>/dev/null; do
	[ -n "$probe_pid" ] || probe_pid=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'affinity_probe'")
	if [ -n "$probe_pid" ] && [ -r "/proc/$probe_pid/status" ]; then
		kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$probe_pid/status" 2>/dev/null || true)
		[ -n "$kb" ] && [ "$kb" -gt "$peak_kb" ] && peak_kb=$kb
	fi
	sleep 0.05
done
wait "$probe_job"
partitions_line=$(grep -o 'affinity_pairs: .*' "$probe_err" | head -1)
rm -f "$probe_err"
hash_mib=$(sql "SELECT pg_size_bytes(current_setting('work_mem')) * current_setting('hash_mem_multiplier')::float8 / 1048576")
per_item() { awk -v s="$1" -v n="$n_items" 'BEGIN { printf("%.2f", n > 0 ? s * 1e6 / n : 0) }'; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

refresh_ratio=$(ratio "$refresh_s" "$baseline_s")
analyst_ratio=$(ratio "$analyst_s" "$refresh_s")
report=$(
	echo "## $started"
	echo
	echo "- size: $n_items order items, $n_orders orders, $n_customers customers, $n_products products (generated in ${gen_s}s)"
	echo "- refresh: window '$AFF_BENCH_WINDOW', min_support $AFF_BENCH_MIN_SUPPORT, min_confidence $AFF_BENCH_MIN_CONFIDENCE: $kept pairs kept ($kinds); the bare self-join has $baseline_pairs unordered pairs"
	echo "- check: $agree"
	echo "- memory: the refresh's backend peaked at $((peak_kb / 1024)) MiB resident anonymous memory (RssAnon sampled every 50 ms; shared buffers not counted); ${partitions_line:-no affinity_pairs line} (each partition's pairs bounded by work_mem x hash_mem_multiplier = ${hash_mib%.*} MiB); temporary files as in the table"
	echo "- cost per order item: refresh $(per_item "$refresh_s") µs, baseline $(per_item "$baseline_s") µs$([ "$AFF_BENCH_SKIP_ANALYST" = 1 ] || echo ", analyst $(per_item "$analyst_s") µs")"
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
		"$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory;" \
		"load average $load_before at the start, $load_after at the end"
	echo "- server: $(sql 'SELECT version()')"
	echo "- settings: ${settings[*]}"
	[ -n "$AFF_BENCH_NOTE" ] && echo "- note: $AFF_BENCH_NOTE"
	echo
	echo "| statement | best of $AFF_BENCH_RUNS (s) | temp files (MiB) |"
	echo "|---|---:|---:|"
	echo "| baseline: bare same-order self-join GROUP BY the pair | $baseline_s | $baseline_temp |"
	echo "| refresh_product_affinity() | $refresh_s | $refresh_temp |"
	[ "$AFF_BENCH_SKIP_ANALYST" = 1 ] || echo "| analyst SQL | $analyst_s | $analyst_temp |"
	echo
	echo "| ratio | value | goal | result |"
	echo "|---|---:|---:|---|"
	echo "| refresh / baseline | $refresh_ratio | <= 2 | $(verdict "$refresh_ratio" 2 max) |"
	[ "$AFF_BENCH_SKIP_ANALYST" = 1 ] ||
		echo "| analyst / refresh | $analyst_ratio | >= 3 | $(verdict "$analyst_ratio" 3 min) |"
	echo
)
echo "$report"
if [ "$AFF_BENCH_RECORD" != 0 ]; then
	[ -f "$AFF_BENCH_RESULTS" ] || printf '# Affinity benchmark results\n\nAppended by test/bench/run_affinity_bench.sh; see README_affinity.md.\n\n' >"$AFF_BENCH_RESULTS"
	echo "$report" >>"$AFF_BENCH_RESULTS"
fi
