#!/bin/sh
# Install the Debian packages that building and testing need, when missing.
# As root this runs apt-get; otherwise it names what to install and fails.
set -eu

packages="postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap libgsl-dev
libtap-parser-sourcehandler-pgtap-perl libipc-run-perl make gcc
python3-psycopg python3-aiosmtpd postgresql-15-wal2json"
# test/t/008_survey_reference.pl runs test/reference/survey_reference.py (standard library only)
packages="$packages python3"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q $missing >/dev/null ||
	{ apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
