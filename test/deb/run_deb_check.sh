#!/bin/bash
# CI's package check: build the Debian packages (make deb), install the
# extension's package with apt-get as a user would, prove that the files
# PostgreSQL loads are the package's, and run the installcheck and pgTAP
# suites against them (debian/tests/installcheck, the autopkgtest).
#
# It installs system files (replacing what `make install` put there): run it
# as root, and on a shared machine under pp-locked.  A package this script
# installed is purged again at the end (KEEP_DEB=1 keeps it), so the machine
# is left without the extension's files: `make install` brings a source
# build back.
set -euo pipefail

cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: this installs the package" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# the build dependencies of debian/control, and what the tests need
test/install_deps.sh
build_deps="debhelper dpkg-dev postgresql-server-dev-all libgsl-dev"
missing=""
for p in $build_deps; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	apt-get install -y -q $missing >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
fi

packages="postgresql-15-post-purchase post-purchase-sender"
installed_before=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && installed_before="$installed_before $p"
done
cleanup()
{
	[ -z "${KEEP_DEB:-}" ] || return 0
	for p in $packages; do
		case " $installed_before " in *" $p "*) continue ;; esac
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			echo "purging $p again (KEEP_DEB=1 keeps it)"
			dpkg --purge "$p" >/dev/null
		fi
	done
}
trap cleanup EXIT

echo "=== make deb"
make -s deb DEB_DIR=build/deb

echo "=== apt-get install"
debs=(build/deb/postgresql-15-post-purchase_*.deb)
[ -f "${debs[0]}" ] || { echo "make deb built no postgresql-15-post-purchase package" >&2; exit 1; }
sender_debs=(build/deb/post-purchase-sender_*.deb)
[ -f "${sender_debs[0]}" ] && debs+=("${sender_debs[0]}")
# --reinstall: the same version may be installed already, with a later
# `make install` written over its files
apt-get install -y -q --reinstall "${debs[@]/#/./}"

echo "=== the installed files are the package's"
# every file of the package is on disk as the package has it (md5sums)
dpkg --verify postgresql-15-post-purchase
pkglibdir=$(pg_config --pkglibdir)
sharedir=$(pg_config --sharedir)
for f in "$pkglibdir/post_purchase.so" "$sharedir/extension/post_purchase.control" \
	"$sharedir/extension/post_purchase--$(sed -n "s/^default_version = '\([^']*\)'/\1/p" post_purchase.control).sql"; do
	owner=$(dpkg-query -S "$f" | cut -d: -f1)
	[ "$owner" = postgresql-15-post-purchase ] || { echo "$f belongs to '$owner'" >&2; exit 1; }
	echo "$f: $owner"
done
if [ -f "${sender_debs[0]}" ]; then
	dpkg --verify post-purchase-sender
	test -x /usr/bin/post-purchase-sender
	test -f /lib/systemd/system/post-purchase-sender.service
	# it parses as Python (py_compile would write a __pycache__ into /usr/bin)
	python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" /usr/bin/post-purchase-sender
	echo "post-purchase-sender: /usr/bin/post-purchase-sender, post-purchase-sender.service"
fi

echo "=== installcheck against the installed package"
debian/tests/installcheck
echo "=== package check: PASS"
