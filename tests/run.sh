#!/bin/sh
# Run every test against the binaries in build dir $1 (default build/san).
# Unit tests first, then the pytest integration suite inside a private
# network namespace that has only loopback. Closing line: N passed, N failed.
BUILD=${1:-build/san}
cd "$(dirname "$0")/.." || exit 1
pass=0
fail=0
for t in "$BUILD"/tests/*_test; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1)
	rc=$?
	p=$(printf '%s\n' "$out" | grep -c '^PASS ')
	f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
	if [ "$rc" = 77 ]; then
		echo "SKIP $t"
		continue
	fi
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		f=1 # crashed or sanitizer report outside a case
	fi
	[ "$f" != 0 ] && printf '%s\n' "$out" | grep -v '^PASS\|^RUN' >&2
	echo "unit $(basename "$t"): $p passed, $f failed"
	pass=$((pass + p))
	fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
