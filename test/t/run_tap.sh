#!/bin/bash
# Run the Perl TAP tests (test/t/*.pl) with prove; arguments name a subset
# (test/t/run_tap.sh 005_mutation 007_hostile_tenant).  The tests start servers
# of their own through PostgreSQL::Test::Cluster, from the server-dev package.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg_config=${PG_CONFIG:-pg_config}
bindir=$("$pg_config" --bindir)
# --pgxs names .../lib/pgxs/src/makefiles/pgxs.mk; the test tools are in .../src
pgxs=$(dirname "$(dirname "$("$pg_config" --pgxs)")")
perl_modules=$pgxs/test/perl
pg_regress=$pgxs/test/regress/pg_regress

# PostgreSQL::Test::Utils writes tmp_check (data directories, logs) under
# $TESTDIR; a fresh directory per run keeps runs apart.
testdir=$(mktemp -d /tmp/post_purchase_tap.XXXXXX)
trap '[ -n "${KEEP_TAP:-}" ] || rm -rf "$testdir"' EXIT

# the tests run from a copy, so the server's user need not read the checkout
mkdir "$testdir/t"
if [ $# -gt 0 ]; then
	for name in "$@"; do cp "$here/${name%.pl}.pl" "$testdir/t/"; done
else
	cp "$here"/*.pl "$testdir/t/"
fi
# with the reference scripts that some of them run (008_survey_reference)
cp -r "$here/../reference" "$testdir/reference"

cmd=(env "PATH=$bindir:$PATH" "PG_REGRESS=$pg_regress" "TESTDIR=$testdir"
	prove --timer -I "$perl_modules" "$testdir"/t/*.pl)

if [ "$(id -u)" -eq 0 ]; then
	# PostgreSQL refuses to run as root: run the tests as postgres, which
	# owns the temporary directory.
	chown -R postgres: "$testdir"
	chmod 700 "$testdir"
	cd "$testdir"
	status=0
	runuser -u postgres -- "${cmd[@]}" || status=$?
else
	cd "$testdir"
	status=0
	"${cmd[@]}" || status=$?
fi

# the server logs explain a failure; they go with the temporary directory
if [ "$status" -ne 0 ]; then
	for log in "$testdir"/tmp_check/log/*; do
		[ -f "$log" ] || continue
		echo "=== $log (last 50 lines)"
		tail -n 50 "$log"
	done
fi
exit "$status"
