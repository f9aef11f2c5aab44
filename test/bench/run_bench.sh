#!/bin/bash
# The performance benchmark (test/bench/README.md), run by "make bench" after
# build and install.  It starts a throwaway server of its own, generates the
# shop at a tenth of the size and at full size (to show linearity), times
# every query at both, prints the report and appends it to RESULTS.md.
#
#   BENCH_CUSTOMERS, BENCH_ORDERS, BENCH_ANSWERS  full size (1M, 10M, 2M)
#   BENCH_SCALE_DOWN  the small size is the full one divided by this (10; 0: skip it)
#   BENCH_RUNS        timed runs per query after a warm-up (5)
#   BENCH_RESULTS     the file the report is appended to (RESULTS.md here)
#   BENCH_NOTE        a sentence recorded with the results (e.g. what else ran)
# A target missed is reported, not fatal; a wrong result is fatal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${BENCH_CUSTOMERS:=1000000}" "${BENCH_ORDERS:=10000000}" "${BENCH_ANSWERS:=2000000}"
: "${BENCH_SCALE_DOWN:=10}" "${BENCH_RUNS:=5}" "${BENCH_RESULTS:=$here/RESULTS.md}" "${BENCH_NOTE:=}"
export BENCH_CUSTOMERS BENCH_ORDERS BENCH_ANSWERS BENCH_SCALE_DOWN BENCH_RUNS BENCH_RESULTS BENCH_NOTE

# Server settings for a benchmark, stated in the results: both tables stay in
# shared_buffers; work_mem (x hash_mem_multiplier 2) holds a million-group
# hash aggregate in memory; serial plans and no JIT so that ratios compare
# the same work; nothing in the background (autovacuum, checkpoints) during
# the timings; durability off, since the server is thrown away.
settings=(shared_buffers=4GB work_mem=1GB hash_mem_multiplier=2 maintenance_work_mem=1GB
	jit=off max_parallel_workers_per_gather=0 autovacuum=off fsync=off synchronous_commit=off
	full_page_writes=off max_wal_size=20GB checkpoint_timeout=1h TimeZone=UTC)

if [ -z "${BENCH_INSIDE:-}" ]; then
	# a server from the caller's environment must not be the one measured
	unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE
	opts=(-o shared_preload_libraries=post_purchase)
	for s in "${settings[@]}"; do opts+=(-o "$s"); done
	BENCH_INSIDE=1 BENCH_SETTINGS="${settings[*]}" exec pg_virtualenv -t "${opts[@]}" "$here/run_bench.sh"
fi

export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION post_purchase'
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# generate SIZE_LABEL CUSTOMERS ORDERS ANSWERS: the shop; prints the seconds it took
generate() {
	local start=$SECONDS
	psql -X -q -v ON_ERROR_STOP=1 -v customers="$2" -v orders="$3" -v answers="$4" \
		-f "$here/generate_shop.sql" >&2
	echo "$1 shop: $2 customers, $3 orders, $4 answers, generated in $((SECONDS - start)) s" >&2
	echo "$((SECONDS - start))"
}

small_label=none
if [ "$BENCH_SCALE_DOWN" -gt 0 ]; then
	small_label=small
	small=("$((BENCH_CUSTOMERS / BENCH_SCALE_DOWN))" "$((BENCH_ORDERS / BENCH_SCALE_DOWN))"
		"$((BENCH_ANSWERS / BENCH_SCALE_DOWN))")
	small_seconds=$(generate small "${small[@]}")
	psql -X -q -v ON_ERROR_STOP=1 -v label=small -v runs="$BENCH_RUNS" -f "$here/bench.sql"
fi
large_seconds=$(generate large "$BENCH_CUSTOMERS" "$BENCH_ORDERS" "$BENCH_ANSWERS")
psql -X -q -v ON_ERROR_STOP=1 -v label=large -v runs="$BENCH_RUNS" -f "$here/bench.sql"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(mktemp)
trap 'rm -f "$report"' EXIT
{
	echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "- sizes: large = $BENCH_CUSTOMERS customers, $BENCH_ORDERS orders, $BENCH_ANSWERS answers" \
		"(generated in ${large_seconds} s)"
	if [ "$small_label" = small ]; then
		echo "  small = ${small[0]} customers, ${small[1]} orders, ${small[2]} answers (generated in ${small_seconds} s)"
	fi
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
		"$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory;" \
		"load average $load_before at the start, $load_after at the end"
	echo "- server: $(psql -X -At -c 'SELECT version()'), extension $(psql -X -At -c \
		"SELECT extversion FROM pg_extension WHERE extname = 'post_purchase'")"
	echo "- settings: $BENCH_SETTINGS; best of $BENCH_RUNS runs after a warm-up, serial plans"
	if [ -n "$BENCH_NOTE" ]; then echo "- note: $BENCH_NOTE"; fi
	echo
	psql -X -q -v ON_ERROR_STOP=1 -v small="$small_label" -v large=large -f "$here/report.sql"
	echo
} >"$report"
cat "$report"
cat "$report" >>"$BENCH_RESULTS"
echo "appended to $BENCH_RESULTS"
