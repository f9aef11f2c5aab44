#!/bin/sh
# Build and install Citus from its public source, for the `make citus-check`
# layer.  Citus is not in Debian's archive, so CI never runs this; a developer
# who wants the layer to run (instead of being reported as skipped) runs it
# once by hand:
#
#   git clone https://github.com/citusdata/citus && git -C citus checkout v13.2.2
#   apt-get install liblz4-dev libzstd-dev libkrb5-dev libssl-dev libselinux1-dev \
#       libxslt1-dev libpam0g-dev libreadline-dev zlib1g-dev
#   test/citus/build_citus.sh /path/to/citus          # builds
#   make -C /path/to/citus install                    # as root, into $(pg_config --pkglibdir)
#
# Tested with tag v13.2.2 against PostgreSQL 15.20 (Debian 15.20-0+deb12u1).
#
# Why the rename: Citus 13.2 carries, for PostgreSQL < 16, its own static
# inline have_createdb_privilege() in src/include/pg_version_compat.h, because
# that function was not exported before 16.  PostgreSQL 15.x minor releases
# since then declare it in commands/dbcommands.h too, and the two clash
# ("static declaration follows non-static declaration").  Renaming Citus'
# private copy (and its one caller) to citus_have_createdb_privilege() keeps
# both; on 16+ the name maps to the server's function.
set -eu

src=${1:?usage: build_citus.sh CITUS_SOURCE_DIR [PG_CONFIG]}
pg_config=${2:-pg_config}
cd "$src"

compat=src/include/pg_version_compat.h
caller=src/backend/distributed/commands/serialize_distributed_ddls.c
if ! grep -q citus_have_createdb_privilege "$compat"; then
	sed -i \
		-e 's/^#define have_createdb_privilege() have_createdb_privilege()$/#define citus_have_createdb_privilege() have_createdb_privilege()/' \
		-e 's/^have_createdb_privilege(void)$/citus_have_createdb_privilege(void)/' \
		"$compat"
	sed -i -e 's/!have_createdb_privilege()/!citus_have_createdb_privilege()/' "$caller"
fi
# All three places must have been renamed, or the build would fail later with
# a less obvious message.
test "$(grep -c citus_have_createdb_privilege "$compat")" -eq 2
grep -q '!citus_have_createdb_privilege()' "$caller"

# libcurl is only used for Citus' anonymous usage statistics.
PG_CONFIG="$pg_config" ./configure --without-libcurl
nice make -j"${JOBS:-2}"
