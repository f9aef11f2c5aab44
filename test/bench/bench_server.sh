# Sourced by the benchmarks that start a throwaway server of their own
# (run_journey_bench.sh, run_soak_bench.sh): not a script to run.

# Run the calling script again inside a throwaway server (pg_virtualenv -t)
# started with the given settings; the variable named by $1 marks the inner
# run, where this returns.
run_in_throwaway_server() {
	local inner=$1 s
	local opts=()
	shift
	[ -n "${!inner:-}" ] && return 0
	unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE
	for s in "$@"; do opts+=(-o "$s"); done
	export "$inner=1"
	exec pg_virtualenv -t "${opts[@]}" "$0"
}

# A fresh database $1, made the default, with psql (an array) and sql()
# (each argument one command, unaligned output) to query it.
open_bench_database() {
	export PGOPTIONS="-c client_min_messages=warning"
	psql=(psql -X -q -v ON_ERROR_STOP=1)
	"${psql[@]}" -d postgres -c "CREATE DATABASE $1"
	export PGDATABASE=$1
}
sql() { "${psql[@]}" -At "${@/#/-c}"; }

# a / b to two decimals (0 when b is 0), and PASS or MISS of a value
# against a goal that is a "max" or a "min"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf("%.2f", b > 0 ? a / b : 0) }'; }
verdict() { awk -v v="$1" -v g="$2" -v dir="$3" 'BEGIN { ok = dir == "max" ? v <= g : v >= g; print ok ? "PASS" : "MISS" }'; }
