#!/bin/bash
# Run the pgTAP suites (test/pgtap/*.sql) with pg_prove against the server in
# the environment (PGHOST, PGPORT, PGUSER), in a database of their own that is
# created fresh and dropped afterwards.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
db=${PGTAP_DATABASE:-post_purchase_pgtap}

# a database left over by an interrupted run would hide a broken install
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" || true' EXIT

psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c 'CREATE EXTENSION pgtap' \
	-c 'CREATE EXTENSION post_purchase'

# --failures shows the diagnostics of a failed test; --ext .sql picks the suites
pg_prove --dbname "$db" --failures --ext .sql "$here"/*.sql
