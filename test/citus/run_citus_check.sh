#!/bin/bash
# The Citus layer (`make citus-check`, README "Citus"): test/citus/t/*.pl
# start a coordinator and two workers on the loopback, with citus and
# post_purchase preloaded, and check the aggregates and the tracking over
# distributed tables against an undistributed copy of the same shop.
#
# Citus is not in Debian's archive, so CI cannot install it; without it the
# layer reports itself skipped, with the reason, and succeeds.  To run it,
# build Citus by hand (test/citus/build_citus.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg_config=${PG_CONFIG:-pg_config}
pkglibdir=$("$pg_config" --pkglibdir)
if [ ! -f "$pkglibdir/citus.so" ]; then
	# test/run_tests.sh reads this line
	echo "skipped: Citus is not installed (no citus.so in $pkglibdir)"
	exit 0
fi

bindir=$("$pg_config" --bindir)
pgxs=$(dirname "$(dirname "$("$pg_config" --pgxs)")")
perl_modules=$pgxs/test/perl
pg_regress=$pgxs/test/regress/pg_regress

# PostgreSQL::Test::Cluster keeps the three data directories and their logs
# under $TESTDIR/tmp_check, and stops the servers when the test ends; the
# directory goes at exit, whatever happened.
testdir=$(mktemp -d /tmp/post_purchase_citus.XXXXXX)
trap '[ -n "${KEEP_TAP:-}" ] || rm -rf "$testdir"' EXIT

# a copy, so the servers' user need not read the checkout; with the shop
# generator the test loads
mkdir "$testdir/t"
cp "$here"/t/*.pl "$testdir/t/"
cp "$here/../bench/generate_shop.sql" "$testdir/"

cmd=(env "PATH=$bindir:$PATH" "PG_REGRESS=$pg_regress" "TESTDIR=$testdir"
	prove --timer -I "$perl_modules" "$testdir"/t/*.pl)

status=0
if [ "$(id -u)" -eq 0 ]; then
	# PostgreSQL refuses to run as root: the servers run as postgres
	chown -R postgres: "$testdir"
	chmod 700 "$testdir"
	cd "$testdir"
	runuser -u postgres -- "${cmd[@]}" || status=$?
else
	cd "$testdir"
	"${cmd[@]}" || status=$?
fi

if [ "$status" -ne 0 ]; then
	for log in "$testdir"/tmp_check/log/*; do
		[ -f "$log" ] || continue
		echo "=== $log (last 50 lines)"
		tail -n 50 "$log"
	done
fi
exit "$status"
