#!/bin/bash
# make valgrind: the pg_regress suite against a PostgreSQL server running
# under valgrind memcheck, with post_purchase preloaded.  Fails when
# valgrind reports any error that test/valgrind/postgres.supp does not
# suppress, and names the logs; any report with a frame in post_purchase.so
# is an error of ours.  Takes about 15 minutes on 2 cores.
#
# Debian's server is not built with USE_VALGRIND, so errors inside palloc'd
# chunks of one memory context (a read past the end of a chunk into the
# next) are not seen; reads of unallocated or freed memory outside the
# contexts, uninitialised values reaching a branch or a system call, and
# overlapping copies are.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install valgrind" >&2; exit 1; }
bindir=$(pg_config --bindir)
pgxs=$(dirname "$(dirname "$(pg_config --pgxs)")")
# the cdnow tests read the data from CDNOW_DIR, as under make
export CDNOW_DIR=${CDNOW_DIR:-$(realpath -m "$root/../shared/data/cdnow")}
tests=${VALGRIND_TESTS:-$(make -s -C "$root" print-regress)}
work=$(mktemp -d /tmp/post_purchase_valgrind.XXXXXX)
port=${VALGRIND_PORT:-55499}
run_as=()
if [ "$(id -u)" -eq 0 ]; then
	# PostgreSQL refuses to run as root
	chown postgres: "$work"
	run_as=(runuser -u postgres --)
fi
trap '"${run_as[@]}" "$bindir/pg_ctl" -D "$work/data" stop -m immediate >/dev/null 2>&1 || true' EXIT

"${run_as[@]}" "$bindir/initdb" -D "$work/data" -A trust >/dev/null
echo "== starting postgres under valgrind (logs: $work/valgrind.<pid>.log)"
"${run_as[@]}" valgrind --quiet --trace-children=yes --leak-check=no --error-limit=no --num-callers=30 \
	--track-origins=yes --read-inline-info=yes \
	--suppressions="$root/test/valgrind/postgres.supp" --log-file="$work/valgrind.%p.log" \
	"$bindir/postgres" -D "$work/data" -p "$port" -k "$work" -c shared_preload_libraries=post_purchase \
	-c jit=off -c listen_addresses= >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
	"$bindir/pg_isready" -q -h "$work" -p "$port" && break
	kill -0 "$server" 2>/dev/null || break	# valgrind or the server gave up
	sleep 1
done
"$bindir/pg_isready" -q -h "$work" -p "$port" || { cat "$work/server.log" "$work"/valgrind.*.log; exit 1; }

status=0
# no progress NOTICE from a call that is slow under valgrind (Makefile, installcheck)
PGUSER=postgres PGOPTIONS="-c post_purchase.progress_notice_interval=-1" "$pgxs/test/regress/pg_regress" --inputdir="$root" --outputdir="$work/out" --bindir="$bindir" \
	--host="$work" --port="$port" --load-extension=post_purchase --dbname=post_purchase_valgrind $tests || status=$?
"${run_as[@]}" "$bindir/pg_ctl" -D "$work/data" stop -m fast >/dev/null
trap - EXIT

logs=("$work"/valgrind.*.log)
errors=$(cat "${logs[@]}" | grep -cE '^==[0-9]+== [A-Z]' || true)
ours=$(grep -l 'post_purchase\.so' "${logs[@]}" || true)
echo "== valgrind: ${#logs[@]} processes checked, $errors error reports after suppressions"
if [ -n "$ours" ]; then
	echo "== errors in post_purchase.so:"
	for f in $ours; do echo "--- $f"; cat "$f"; done
fi
if [ "$errors" -gt 0 ]; then
	grep -lE '^==[0-9]+== [A-Z]' "${logs[@]}" | while read -r f; do echo "--- $f"; head -40 "$f"; done
	status=1
fi
[ "$status" -eq 0 ] && rm -rf "$work"
exit "$status"
