#!/bin/bash
# The one runner behind `make test` (which has already built and installed
# the extension): every test layer, in order, then a summary.  It exits
# non-zero if any layer failed.
#
#   regress, isolation, pgtap   one throwaway server (pg_virtualenv) with
#                               post_purchase in shared_preload_libraries
#   tap                         Perl TAP tests, which start servers of their own
#   sender                      post_purchase_sender against SMTP and webhook
#                               receivers (test/sender), its own throwaway server
#   citus                       a Citus coordinator and two workers of its own
#                               (test/citus); SKIPPED, with the reason, when
#                               Citus is not installed
#
# Works as root on a fresh Debian machine: pg_virtualenv runs the server as
# postgres, and test/t/run_tap.sh runs the TAP tests as postgres.
set -euo pipefail

cd "$(dirname "$0")/.."
make=${MAKE:-make}
layers=(regress isolation pgtap tap sender citus)

# Run one layer: its output goes to the terminal and to $logdir/LAYER.log,
# its result to $logdir/LAYER.status.
run_layer()
{
	local layer=$1
	shift
	echo
	echo "=== $layer: $*"
	local status=0
	"$@" 2>&1 | tee "$logdir/$layer.log" || status=$?
	if [ "$status" -eq 0 ] && grep -q '^skipped: ' "$logdir/$layer.log"; then
		# a layer that cannot run here says why (citus: not installed)
		echo SKIPPED > "$logdir/$layer.status"
	elif [ "$status" -eq 0 ]; then
		echo PASS > "$logdir/$layer.status"
	else
		echo FAIL > "$logdir/$layer.status"
	fi
	return 0
}

# Inside pg_virtualenv: the layers that use its server.
if [ "${1:-}" = "--in-virtualenv" ]; then
	logdir=$2
	# make's command-line variables split installcheck into its two suites,
	# so each gets its own result
	run_layer regress "$make" installcheck ISOLATION=
	if [ "$(cat "$logdir/regress.status")" = FAIL ] && [ -f regression.diffs ]; then
		echo "=== regress: regression.diffs"
		cat regression.diffs
	fi
	run_layer isolation "$make" installcheck REGRESS=
	if [ "$(cat "$logdir/isolation.status")" = FAIL ] && [ -f output_iso/regression.diffs ]; then
		echo "=== isolation: output_iso/regression.diffs"
		cat output_iso/regression.diffs
	fi
	run_layer pgtap "$make" pgtapcheck
	# a failure makes pg_virtualenv show the tail of the server log
	! grep -q FAIL "$logdir"/regress.status "$logdir"/isolation.status "$logdir"/pgtap.status
	exit
fi

logdir=$(mktemp -d /tmp/post_purchase_tests.XXXXXX)
trap 'rm -rf "$logdir"' EXIT
# a layer that never ran (the server did not start, say) counts as failed
for layer in "${layers[@]}"; do
	echo "FAIL (did not run)" > "$logdir/$layer.status"
done
# stale results would be mistaken for this run's
rm -f regression.diffs regression.out output_iso/regression.diffs

pg_virtualenv -t -o shared_preload_libraries=post_purchase \
	"$PWD/test/run_tests.sh" --in-virtualenv "$logdir" ||
	echo "=== pg_virtualenv: a layer failed, or the server did not start (exit $?)"

run_layer tap "$make" tapcheck
run_layer sender test/sender/run_sender_tests.sh
run_layer citus "$make" citus-check

# the summary is printed whatever a log looks like
set +e

# "tests passed" and "tests failed" of one layer, from its runner's output
count_tests()
{
	local log=$1 n
	[ -f "$log" ] || { echo "0 0"; return; }
	# pg_regress and pg_isolation_regress: "All 6 tests passed." / "2 of 6 tests failed."
	if n=$(grep -oE 'All [0-9]+ tests passed' "$log" | tail -1) && [ -n "$n" ]; then
		echo "$(echo "$n" | grep -oE '[0-9]+') 0"
		return
	fi
	if n=$(grep -oE '[0-9]+ of [0-9]+ tests failed' "$log" | tail -1) && [ -n "$n" ]; then
		set -- $n
		echo "$(($3 - $1)) $1"
		return
	fi
	# prove and pg_prove: "Files=2, Tests=119, ..." and "Failed: 4" per file
	if n=$(grep -oE 'Files=[0-9]+, Tests=[0-9]+' "$log" | tail -1) && [ -n "$n" ]; then
		local total failed
		total=${n##*=}
		failed=$(awk '{ while (match($0, /Tests: [0-9]+ Failed: [0-9]+/)) {
				split(substr($0, RSTART, RLENGTH), w, " "); s += w[4]; $0 = substr($0, RSTART + RLENGTH) } }
			END { print s + 0 }' "$log")
		echo "$((total - failed)) $failed"
		return
	fi
	echo "0 0"
}

passed_total=0
failed_total=0
any_failed=0
summary=""
for layer in "${layers[@]}"; do
	status=$(cat "$logdir/$layer.status")
	read -r passed failed < <(count_tests "$logdir/$layer.log")
	# a failed layer with no failed test (a crash, a bad plan) still fails
	if [ "$status" != PASS ] && [ "$status" != SKIPPED ] && [ "$failed" -eq 0 ]; then
		failed=1
	fi
	[ "$status" = PASS ] || [ "$status" = SKIPPED ] || any_failed=1
	passed_total=$((passed_total + passed))
	failed_total=$((failed_total + failed))
	summary+=$(printf '%-10s %-20s %4d passed, %d failed' "$layer" "$status" "$passed" "$failed")
	if [ "$status" = SKIPPED ]; then
		summary+="  ($(grep -m1 '^skipped: ' "$logdir/$layer.log" | sed 's/^skipped: //'))"
	fi
	summary+=$'\n'
done

echo
echo "==================== post_purchase test summary ===================="
printf '%s' "$summary"
echo "===================================================================="
echo "tests: $passed_total passed, $failed_total failed"
exit "$any_failed"
