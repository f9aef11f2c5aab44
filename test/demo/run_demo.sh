#!/bin/bash
# make demo: load a shop's orders and NPS answers into a fresh database and
# print what an analyst looks at first.
#
#   test/demo/run_demo.sh          on a throwaway server (pg_virtualenv)
#   test/demo/run_demo.sh --here   on the server in PGHOST/PGPORT/PGUSER;
#                                  (re)creates the database post_purchase_demo
#
# Data: the real CDNOW orders from $CDNOW_DIR/CDNOW_master.txt when present,
# else the synthetic shop of test/bench/generate_shop.sql.  The steps are
# test/demo/NN_*.sql, run in name order in one psql session: later parts of
# the demo (journeys, outbox, workers) add a numbered file.
set -euo pipefail

demo_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$demo_dir/../.." && pwd)

if [ "${1:-}" != --here ]; then
	# the background workers of later steps need the library preloaded
	exec pg_virtualenv -t -o shared_preload_libraries=post_purchase "$0" --here
fi

CDNOW_DIR=${CDNOW_DIR:-$root/../shared/data/cdnow}
master=$(realpath -m "$CDNOW_DIR/CDNOW_master.txt")

# Days are calendar days in the session's zone: fix it, so every run and
# every machine shows the same output.
export PGTZ=UTC
db=post_purchase_demo
psql=(psql -X -q -v ON_ERROR_STOP=1)

"${psql[@]}" -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE template0"
export PGDATABASE=$db
# 70_journeys.sql runs the installed post_purchase_sender (make install puts
# it into pg_config's bindir) against an SMTP sink (test/demo/sender_demo.py)
export PP_DEMO_DIR=$demo_dir
export PP_SENDER=${PP_SENDER:-$(pg_config --bindir)/post_purchase_sender.py}
export PP_DEMO_MAILER_PASSWORD=demo-$RANDOM$RANDOM
"${psql[@]}" -c 'CREATE EXTENSION post_purchase'

echo "=================================================================="
if [ -f "$master" ]; then
	echo " post_purchase demo on the real CDNOW orders: $master"
	echo " (Bruce Hardie's CDNOW data set, as shipped by the lifetimes Python"
	echo " library; NPS answers are synthetic and deterministic)"
	"${psql[@]}" -f "$demo_dir/load_cdnow.sql" <"$master"
	# the calibration period of the BG/NBD and Gamma-Gamma papers
	vars=(-v calibration_end=1997-09-30)
else
	echo " post_purchase demo on a synthetic shop (test/bench/generate_shop.sql):"
	echo " no CDNOW_master.txt in $CDNOW_DIR.  For the real orders, get"
	echo " Bruce Hardie's CDNOW data set (shipped by the lifetimes Python"
	echo " library) and run: make demo CDNOW_DIR=/path/to/it"
	"${psql[@]}" -v customers=20000 -v orders=100000 -v answers=20000 \
		-f "$root/test/bench/generate_shop.sql" >/dev/null
	vars=()
fi
echo "=================================================================="

steps=()
for f in "$demo_dir"/[0-9][0-9]_*.sql; do
	steps+=(-f "$f")
done
"${psql[@]}" "${vars[@]}" "${steps[@]}"
