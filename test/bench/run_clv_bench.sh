#!/bin/bash
# make bench-clv: predictive CLV in C (post_purchase) against a vectorised
# NumPy/SciPy baseline (test/bench/clv_baseline.py), on the same rows in the
# same run; see test/bench/README_clv.md.
#
#   test/bench/run_clv_bench.sh          on a throwaway server (pg_virtualenv)
#   test/bench/run_clv_bench.sh --here   on the server in PGHOST/PGPORT/PGUSER
#                                        (creates the database post_purchase_clv_bench)
#
# Sizes (environment): CLV_BENCH_SIZES (fit sizes, the largest is generated;
# default "1000000 3000000 10000000"), CLV_BENCH_SCORE (customers scored,
# default 1000000), CLV_BENCH_BASELINE_LIMIT (seconds: the baseline's largest
# fit is extrapolated, not run, when it would take longer; default 900).
# Results are appended to test/bench/RESULTS_clv.md unless CLV_BENCH_RECORD=0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ "${1:-}" != --here ]; then
	# Both sides single-threaded (no parallel workers: the baseline uses one
	# core too), no JIT compile time in the C timings, a work_mem and
	# shared_buffers that keep the 10M-row tables and sorts in memory.
	exec pg_virtualenv -t -o shared_preload_libraries=post_purchase \
		-o jit=off -o max_parallel_workers_per_gather=0 -o work_mem=1GB \
		-o shared_buffers=2GB -o max_wal_size=8GB \
		"$0" --here
fi

sizes=(${CLV_BENCH_SIZES:-1000000 3000000 10000000})
score_n=${CLV_BENCH_SCORE:-1000000}
baseline_limit=${CLV_BENCH_BASELINE_LIMIT:-900}
CDNOW_DIR=${CDNOW_DIR:-$root/../shared/data/cdnow}
python=/usr/bin/python3		# Debian's, with python3-numpy and python3-scipy
baseline=("$python" "$here/clv_baseline.py")
work=$(mktemp -d /tmp/clv_bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
results=$work/results	# one row per comparison, fields split by \x1f
# other work on the machine distorts the ratios: record how busy it was
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

db=post_purchase_clv_bench
psql=(psql -X -q -v ON_ERROR_STOP=1)
"${psql[@]}" -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE template0"
export PGDATABASE=$db
"${psql[@]}" -c 'CREATE EXTENSION post_purchase'

# --- helpers ----------------------------------------------------------------

# The smaller of two numbers, either may be empty
least() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a == "" || (b != "" && b + 0 < a + 0)) ? b : a) }'; }

# Best of $1 runs of the query $2: "WALL CPU", in seconds.  WALL is the
# server's Execution Time from EXPLAIN ANALYZE: the plan inside the server,
# aggregates' final functions included, no transfer to the client.  CPU is
# the backend's user + system time over the same run (log_executor_stats),
# which other work on the machine does not inflate.
server_times()
{
	local n=$1 query=$2 out wall="" cpu=""
	for ((i = 0; i < n; i++)); do
		out=$(PGOPTIONS="${PGOPTIONS:-} -c log_executor_stats=on -c client_min_messages=log" \
			"${psql[@]}" -At -c "EXPLAIN (ANALYZE, TIMING OFF) $query" 2>&1)
		wall=$(least "$wall" "$(sed -n 's/^Execution Time: \(.*\) ms$/\1/p' <<<"$out")")
		cpu=$(least "$cpu" "$(sed -n 's/^!\t\([0-9.]*\) s user, \([0-9.]*\) s system, .*/\1 \2/p' <<<"$out" |
			awk '{ print $1 + $2 }')")
	done
	awk -v ms="$wall" -v cpu="$cpu" 'BEGIN { printf "%.6f %.6f\n", ms / 1000, cpu }'
}

# The peak private memory, in bytes, of a backend running the query $1 once:
# its peak resident size (reset first) less the shared memory it has mapped
# at the end, i.e. less the shared buffers the scan touched.  Empty when
# /proc does not let us (not root, old kernel).
server_peak_rss()
{
	"${psql[@]}" -At <<-EOF 2>/dev/null | tail -1 || true
	SELECT pg_backend_pid() AS pid \gset
	\setenv BACKEND_PID :pid
	\! echo 5 > /proc/\$BACKEND_PID/clear_refs
	\o /dev/null
	$1;
	\o
	\! awk '/^VmHWM:/ { p = \$2 } /^RssShmem:/ { s = \$2 } END { print (p - s) * 1024 }' /proc/\$BACKEND_PID/status
	EOF
}

# A field of a JSON file: json FILE key [key ...]
json()
{
	"$python" -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v if not isinstance(v, float) else repr(v))' "$@"
}

# The baseline's "WALL CPU" seconds: py_times FILE [key]
py_times() { echo "$(json "$@" seconds) $(json "$@" cpu_seconds)"; }

# calc EXPRESSION [PRINTF-FORMAT]
calc() { awk "BEGIN { printf \"${2:-%.6g}\n\", $1 }"; }

# One line of the results table: name, C "WALL CPU" seconds, the same for the
# baseline, the speed-up the issue asks for, a note.
record()
{
	# not a tab: read would merge empty fields
	printf '%s\x1f%s\x1f%s\x1f%s\x1f%s\n' "$1" "$2" "$3" "$4" "$5" >>"$results"
}

# A model composite as a literal, every digit kept
model_literal() { "${psql[@]}" -At -c "SELECT ($1)::text"; }

# --- (a) CDNOW ----------------------------------------------------------------

summary=$CDNOW_DIR/cdnow_customers_summary.csv
with_spend=$CDNOW_DIR/cdnow_customers_summary_with_transactions.csv
echo "== (a) CDNOW: BG/NBD fit on the 2,357 customers of $summary"
if [ -f "$summary" ] && [ -f "$with_spend" ]; then
	"${psql[@]}" <<-EOF
	CREATE TABLE cdnow (id int PRIMARY KEY, frequency float8, recency float8, t float8);
	\copy cdnow FROM '$summary' WITH (FORMAT csv, HEADER)
	CREATE TABLE cdnow_spend (id int PRIMARY KEY, frequency float8, recency float8, t float8,
	                          monetary_value float8);
	\copy cdnow_spend FROM '$with_spend' WITH (FORMAT csv, HEADER)
	VACUUM ANALYZE cdnow, cdnow_spend;
	\copy (SELECT frequency, recency, t FROM cdnow ORDER BY id) TO '$work/cdnow.csv' WITH (FORMAT csv, HEADER)
	\copy (SELECT frequency, monetary_value FROM cdnow_spend ORDER BY id) TO '$work/cdnow_spend.csv' WITH (FORMAT csv, HEADER)
	EOF
	q="SELECT post_purchase.bgnbd_fit(frequency, recency, t) FROM cdnow"
	c_t=$(server_times 5 "$q")
	c_ll=$("${psql[@]}" -At -c "SELECT (m).log_likelihood FROM ($q) f(m)")
	"${baseline[@]}" fit-bgnbd "$work/cdnow.csv" --repeat 5 >"$work/cdnow.json"
	py_ll=$(json "$work/cdnow.json" log_likelihood)
	same=$(awk -v a="$c_ll" -v b="$py_ll" 'BEGIN { d = a - b; print (((d < 0 ? -d : d) <= 0.01) ? "same LL" : "LL DIFFERS") }')
	echo "C LL $c_ll, baseline LL $py_ll: $same"
	record "CDNOW BG/NBD fit (2,357 customers)" "$c_t" "$(py_times "$work/cdnow.json")" 5 "$same: C $c_ll, baseline $py_ll"

	# Gamma-Gamma: no target, but it checks the baseline's second model
	q="SELECT post_purchase.gamma_gamma_fit(frequency, monetary_value) FROM cdnow_spend"
	c_t=$(server_times 5 "$q")
	c_ll=$("${psql[@]}" -At -c "SELECT (m).log_likelihood FROM ($q) f(m)")
	"${baseline[@]}" fit-gamma-gamma "$work/cdnow_spend.csv" --repeat 5 >"$work/cdnow_gg.json"
	py_ll=$(json "$work/cdnow_gg.json" log_likelihood)
	same=$(awk -v a="$c_ll" -v b="$py_ll" 'BEGIN { d = a - b; print (((d < 0 ? -d : d) <= 0.01) ? "same LL" : "LL DIFFERS") }')
	record "CDNOW Gamma-Gamma fit (946 repeat buyers)" "$c_t" "$(py_times "$work/cdnow_gg.json")" - \
		"$same: C $c_ll, baseline $py_ll"
else
	echo "no CDNOW data in $CDNOW_DIR: part (a) skipped"
	record "CDNOW BG/NBD fit" "" "" 5 "SKIPPED: no data in $CDNOW_DIR"
fi

# --- (b) synthetic shop: fits at growing sizes ------------------------------

largest=${sizes[-1]}
echo "== (b) $largest synthetic customers, 1 day unit, 3 years of daily cohorts"
# Customers first buy on each of the 1,066 days from 3 years ago to 30 days
# ago (t = 30 .. 1095 days), in equal cohorts, drawn from BG/NBD with daily
# parameters (mean rate 1 per 120 days, mean dropout 21% per purchase).
# Recency is rounded up to whole days and t is whole, as rfm_summary reports
# them with a 1 day unit.  Ids go to the oldest cohort first.  Repeat buyers
# get a mean spend: log-normal across customers, with noise shrinking as
# 1/sqrt(frequency), from hashes of the id (deterministic, no random()).
"${psql[@]}" -v n="$largest" <<-'EOF'
\set truth '(0.5,60,0.8,3,,,true)'
CREATE UNLOGGED TABLE synth AS
WITH cohort AS (
	SELECT t, customers,
	       sum(customers) OVER (ORDER BY t DESC) - customers AS first_id
	FROM (SELECT t, :n / 1066 + (t - 30 < :n % 1066)::int AS customers
	      FROM generate_series(30, 1095) t) c
), customer AS (
	SELECT (c.first_id + s.customer)::int AS id, s.frequency, ceil(s.recency) AS recency, s.t
	FROM cohort c,
	     LATERAL post_purchase.bgnbd_simulate(:'truth'::post_purchase.bgnbd_model,
	                                          c.customers::int, c.t, c.t) s
), uniform AS (
	SELECT *, (((hashint8extended(id, 1) & 9007199254740991) + 0.5) / 9007199254740992)::float8 AS u1,
	          (((hashint8extended(id, 2) & 9007199254740991) + 0.5) / 9007199254740992)::float8 AS u2
	FROM customer
)
SELECT id, frequency, recency, t,
       CASE WHEN frequency = 0 THEN 0
       ELSE greatest(0.01, round(exp(3.5 + sqrt(-2 * ln(u1)) * (0.5 * cos(2 * pi() * u2) +
                                       0.6 * sin(2 * pi() * u2) / sqrt(frequency)))::numeric, 2))
       END::float8 AS monetary_value
FROM uniform;
-- a fixed pseudo-random order picks nested subsets spread over all cohorts
CREATE UNLOGGED TABLE synth_order AS
SELECT id, row_number() OVER (ORDER BY hashint4(id), id) AS pick FROM synth;
EOF

for n in "${sizes[@]}"; do
	"${psql[@]}" -v n="$n" <<-'EOF'
	CREATE UNLOGGED TABLE fit_:n AS
	SELECT s.id, s.frequency, s.recency, s.t, s.monetary_value
	FROM synth s JOIN synth_order o USING (id) WHERE o.pick <= :n ORDER BY s.id;
	EOF
done
"${psql[@]}" -v n="$score_n" <<-'EOF'
CREATE UNLOGGED TABLE score AS
SELECT s.id, s.frequency, s.recency, s.t, s.monetary_value
FROM synth s JOIN synth_order o USING (id) WHERE o.pick <= :n ORDER BY s.id;
DROP TABLE synth_order;
EOF
# hint bits and visibility set now, not during the first timed scan
"${psql[@]}" -c "VACUUM (FREEZE, ANALYZE)"

first_c="" prev_py="" prev_n=""
for n in "${sizes[@]}"; do
	"${psql[@]}" -c "\\copy (SELECT frequency, recency, t FROM fit_$n ORDER BY id) TO '$work/fit_$n.csv' WITH (FORMAT csv, HEADER)"
	q="SELECT post_purchase.bgnbd_fit(frequency, recency, t) FROM fit_$n"
	c_t=$(server_times 3 "$q")
	c_cpu=${c_t#* }
	c_rss=$(server_peak_rss "$q")
	c_model=$(model_literal "$q")
	distinct=$("${psql[@]}" -At -c "SELECT count(*) FROM (SELECT DISTINCT frequency, recency, t FROM fit_$n) d")
	# the baseline's time grows about linearly with the rows (every
	# evaluation reads all of them; how many evaluations its finite-difference
	# BFGS needs varies, 170 to 300 here): past the limit, extrapolate from
	# the largest size measured, per customer
	if [ -n "$prev_py" ] && awk -v s="${prev_py% *}" -v a="$prev_n" -v b="$n" -v l="$baseline_limit" \
		'BEGIN { exit !(s * b / a > l) }'; then
		py_t="$(calc "${prev_py% *} * $n / $prev_n") $(calc "${prev_py#* } * $n / $prev_n")"
		py_note="EXTRAPOLATED linearly from $prev_n customers ($(calc "${prev_py#* }" %.4g) s CPU)"
		py_ll="" py_rss=""
	else
		"${baseline[@]}" fit-bgnbd "$work/fit_$n.csv" >"$work/fit_$n.json"
		py_t=$(py_times "$work/fit_$n.json")
		py_ll=$(json "$work/fit_$n.json" log_likelihood)
		py_rss=$(json "$work/fit_$n.json" peak_rss_bytes)
		py_note="measured, $(json "$work/fit_$n.json" function_evaluations) evaluations"
		prev_py=$py_t prev_n=$n
	fi
	py_cpu=${py_t#* }
	rm -f "$work/fit_$n.csv"
	c_ll=$("${psql[@]}" -At -c "SELECT ('$c_model'::post_purchase.bgnbd_model).log_likelihood")
	echo "$n customers: C model $c_model"
	note="$distinct distinct summaries ($(calc "$distinct * 32 / 1048576" %.3g) MiB of state);"
	note+=" CPU per customer: C $(calc "$c_cpu * 1e9 / $n" %.0f) ns, baseline $(calc "$py_cpu * 1e9 / $n" %.0f) ns ($py_note);"
	[ -n "$c_rss" ] && note+=" backend peak private memory $(calc "$c_rss / 1048576" %.0f) MiB;"
	[ -n "$py_rss" ] && note+=" baseline peak RSS $(calc "$py_rss / 1048576" %.0f) MiB (with its input arrays);"
	[ -n "$py_ll" ] && note+=" LL C $c_ll, baseline $py_ll"
	note=${note%;}
	target=-
	[ "$n" = "$largest" ] && target=5
	record "BG/NBD fit, $n synthetic customers" "$c_t" "$py_t" "$target" "$note"
	if [ -n "$first_c" ]; then
		# "no worse than linear": CPU time per customer may not grow (10% for noise)
		growth=$(calc "($c_cpu / $n) / ($first_c / ${sizes[0]})" %.3f)
		verdict=$(awk -v g="$growth" 'BEGIN { print ((g + 0 <= 1.1) ? "PASS" : "MISS") }')
		record "  C CPU time per customer vs ${sizes[0]} customers" "" "" "<= 1.1" \
			"$verdict: x$growth"
	else
		first_c=$c_cpu
	fi
	[ "$n" = "$largest" ] && bg_model=$c_model
done

# --- (c) scoring ----------------------------------------------------------------

echo "== (c) scoring $score_n customers"
gg_model=$(model_literal "SELECT post_purchase.gamma_gamma_fit(frequency, monetary_value) FROM score")
echo "Gamma-Gamma on the scored customers: $gg_model"
"${psql[@]}" -c "\\copy (SELECT frequency, recency, t, monetary_value FROM score ORDER BY id) TO '$work/score.csv' WITH (FORMAT csv, HEADER)"
params()
{
	"${psql[@]}" -At -F, -c "SELECT $2 FROM (SELECT '$1'::$3 AS m) s"
}
bg_params=$(params "$bg_model" "(m).r, (m).alpha, (m).a, (m).b" post_purchase.bgnbd_model)
gg_params=$(params "$gg_model" "(m).p, (m).q, (m).v" post_purchase.gamma_gamma_model)
"${baseline[@]}" score "$work/score.csv" --bgnbd "$bg_params" --gamma-gamma "$gg_params" \
	--horizon 365 --months 12 --discount-rate 0.01 --unit-days 1 --repeat 3 >"$work/score.json"
bg="'$bg_model'::post_purchase.bgnbd_model"
gg="'$gg_model'::post_purchase.gamma_gamma_model"
declare -A score_sql=(
	[p_alive]="post_purchase.bgnbd_p_alive($bg, frequency, recency, t)"
	[expected_purchases]="post_purchase.bgnbd_expected_purchases($bg, frequency, recency, t, 365)"
	[clv]="post_purchase.clv($bg, $gg, frequency, recency, t, monetary_value, 12, 0.01, '1 day')"
)
for f in p_alive expected_purchases clv; do
	q="SELECT sum(${score_sql[$f]}) FROM score"
	c_t=$(server_times 3 "$q")
	c_sum=$("${psql[@]}" -At -c "$q")
	py_sum=$(json "$work/score.json" "$f" sum)
	agree=$(awk -v a="$c_sum" -v b="$py_sum" 'BEGIN { d = (a - b) / (b == 0 ? 1 : b); if (d < 0) d = -d;
		v = (d <= 1e-6) ? "sums agree" : "SUMS DIFFER"; printf("%s (relative difference %.2g)\n", v, d) }')
	record "score $f, $score_n customers" "$c_t" "$(py_times "$work/score.json" "$f")" 10 \
		"$agree: C $c_sum, baseline $py_sum"
done
# the targets are judged against the faster clv baseline above; lifetimes'
# own loop evaluates eq. 10 twice a month
record "  clv against lifetimes' loop (both ends of every month)" "$c_t" \
	"$(py_times "$work/score.json" clv_lifetimes_loop)" - \
	"baseline sum $(json "$work/score.json" clv_lifetimes_loop sum)"

# --- the table ----------------------------------------------------------------

report=$work/report.md
{
	echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "Machine: $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
		"$("${psql[@]}" -At -c 'SHOW server_version');" \
		"numpy $(json "$work/score.json" versions numpy), scipy $(json "$work/score.json" versions scipy)."
	echo "Server: jit=off, max_parallel_workers_per_gather=0, work_mem=$("${psql[@]}" -At -c 'SHOW work_mem')," \
		"shared_buffers=$("${psql[@]}" -At -c 'SHOW shared_buffers')."
	echo "Times: best of 5 runs (CDNOW), of 3 (C synthetic fits, scoring) or 1 run (baseline synthetic fits)." \
		"CPU: the backend's user + system time (log_executor_stats) and the Python process's (time.process_time);" \
		"wall: EXPLAIN ANALYZE Execution Time and time.perf_counter.  Targets are judged on CPU time."
	echo "Load average (1, 5, 15 min): $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
	echo
	echo "| benchmark | C CPU (s) | baseline CPU (s) | speed-up | target | result | wall: C, baseline (s), speed-up | notes |"
	echo "|---|---:|---:|---:|---:|---|---|---|"
	while IFS=$'\x1f' read -r name c_t py_t target note; do
		c="" py="" ratio="" verdict="" wall=""
		if [ -n "$c_t" ] && [ -n "$py_t" ]; then
			c=$(calc "${c_t#* }" %.4g) py=$(calc "${py_t#* }" %.4g)
			ratio=$(calc "${py_t#* } / ${c_t#* }" %.2f)
			wall="$(calc "${c_t% *}" %.4g), $(calc "${py_t% *}" %.4g), $(calc "${py_t% *} / ${c_t% *}" %.2f)x"
			[ "$target" != - ] && verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print ((r + 0 >= t + 0) ? "PASS" : "MISS") }')
		fi
		case $note in
		PASS:* | MISS:* | SKIPPED:*) verdict=${note%%:*} note=${note#*: } ;;
		esac
		case $note in *DIFFER*) verdict="$verdict (results differ)" ;; esac
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$py" "${ratio:+${ratio}x}" \
			"$([ "$target" = - ] || echo "$target${ratio:+x}")" "$verdict" "$wall" "$note"
	done <"$results"
	echo
} >"$report"
cat "$report"
if [ "${CLV_BENCH_RECORD:-1}" != 0 ]; then
	if [ ! -f "$here/RESULTS_clv.md" ]; then
		printf '# CLV benchmark results\n\nAppended by test/bench/run_clv_bench.sh (make bench-clv); see README_clv.md.\n\n' \
			>"$here/RESULTS_clv.md"
	fi
	cat "$report" >>"$here/RESULTS_clv.md"
	echo "(appended to test/bench/RESULTS_clv.md)"
fi
# a miss is a result; two implementations disagreeing is a failure
if grep -q DIFFER "$results"; then
	echo "the C code and the baseline disagree: see the notes above" >&2
	exit 1
fi
