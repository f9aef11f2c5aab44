#!/bin/bash
# make test-ubsan: every test layer (test/run_tests.sh) against the extension
# built with UndefinedBehaviorSanitizer, -fno-sanitize-recover=all: the first
# undefined behaviour (a misaligned or null access, a shift or a conversion
# out of range, an out-of-bounds index of a known array, ...) aborts the
# process, which the tests see as a crashed backend.  Signed overflow is not
# reported: PostgreSQL builds with -fwrapv, and the extension checks its
# arithmetic with pg_add_s64_overflow and friends instead.
#
# The build happens in a scratch copy of the tree, so the checkout's objects
# are not touched; the sanitized library is installed for the run, and the
# checkout's normal build is installed again afterwards, pass or fail.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
make=${MAKE:-make}
work=$(mktemp -d /tmp/post_purchase_ubsan.XXXXXX)
restore_normal_build()
{
	"$make" -s -C "$root" install >/dev/null || echo "== could not reinstall the normal build" >&2
	rm -rf "$work"
}
trap restore_normal_build EXIT

tar -C "$root" --exclude=./.git -cf - . | tar -C "$work" -xf -
"$make" -s -C "$work" clean
echo "== building in $work"
"$make" -s -C "$work" UBSAN=1 all
# the sanitizer really is compiled in (an empty UBSAN would pass for nothing)
if [ "$(nm -D "$work/post_purchase.so" | grep -c '__ubsan_handle')" -eq 0 ]; then
	echo "== post_purchase.so has no UndefinedBehaviorSanitizer calls" >&2
	exit 1
fi
"$make" -s -C "$work" UBSAN=1 install
echo "== post_purchase built with -fsanitize=undefined -fno-sanitize-recover=all is installed"

# the server processes inherit this: a report names the source line
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$work/test/run_tests.sh"
