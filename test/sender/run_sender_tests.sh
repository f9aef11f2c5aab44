#!/bin/bash
# The sender's tests (test/sender/t/*.py, TAP through prove): real
# receivers on the loopback (aiosmtpd, http.server), post_purchase_sender as
# a process, against a throwaway server (pg_virtualenv) whose workers fire
# the journeys of the databases the tests create.  Arguments name a subset
# (test/sender/run_sender_tests.sh 002_failures).
#
# PP_SENDER names the sender to test; default: the one in the checkout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != --in-virtualenv ]; then
	exec pg_virtualenv -t -o shared_preload_libraries=post_purchase \
		-o "post_purchase.databases=sender_delivery,sender_failures,sender_crash" \
		-o post_purchase.naptime=100ms "$0" --in-virtualenv "$@"
fi
shift

files=()
if [ $# -gt 0 ]; then
	for name in "$@"; do files+=("$here/t/${name%.py}.py"); done
else
	files=("$here"/t/*.py)
fi
# Debian's python3, which has psycopg and aiosmtpd (not a python3 of pyenv's)
prove --timer -e '/usr/bin/python3 -u' "${files[@]}"
