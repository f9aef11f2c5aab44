#!/bin/bash
# make deb: build the Debian packages with Debian's own tooling
# (dpkg-buildpackage, debhelper and pg_buildext; debian/) into the directory
# given (default build/deb): postgresql-15-post-purchase, and
# post-purchase-sender when sender/ holds the sender and its systemd unit.
# The build runs on a copy of the checkout, so the working tree's own build
# is left alone; it needs no network, only the Build-Depends of
# debian/control (debhelper, postgresql-server-dev-all, libgsl-dev).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
out=$(realpath -m "${1:-build/deb}")

# One version, one place: the package carries the extension's version, and
# a changelog that lags behind the control file is an error, not a
# mislabelled package.
extversion=$(sed -n "s/^default_version = '\([^']*\)'/\1/p" post_purchase.control)
debversion=$(dpkg-parsechangelog -S Version)
if [ "${debversion%%[-+~]*}" != "$extversion" ]; then
	echo "debian/changelog is at version $debversion, post_purchase.control at $extversion:" >&2
	echo "add a changelog entry for $extversion (dch -v $extversion)" >&2
	exit 1
fi

# name the missing build dependencies before copying anything
dpkg-checkbuilddeps

profiles=
if [ ! -f sender/post_purchase_sender.py ] || [ ! -f sender/post-purchase-sender.service ]; then
	echo "sender/ has no sender yet: building postgresql-15-post-purchase only"
	profiles=pkg.post-purchase.nosender
fi

src=$out/post-purchase-$debversion
rm -rf "$src"
mkdir -p "$src"
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
# the checkout without its history, earlier packages or benchmark data; the
# copy is cleaned so nothing built here (a UBSAN build, say) gets packaged
tar -c --exclude=./.git --exclude=./build --exclude=./test/bench/data . | tar -x -C "$src"
make -s -C "$src" clean >/dev/null 2>&1
# dpkg-buildpackage writes the packages next to the source directory
(cd "$src" && dpkg-buildpackage -us -uc -b ${profiles:+-P$profiles})
rm -rf "$src"

echo "packages in $out:"
ls -1 "$out"/*.deb
