#!/bin/sh
# Run every test against the binaries in build dir $1 (default build/san).
# Unit tests first, then the pytest integration suite inside a private
# network namespace that has only loopback. Closing line:
# "N passed, N failed" (", N skipped" when some were); exit 1 when any
# test failed or could not run.
#
# Counting: each unit test binary prints PASS/FAIL lines; a binary that
# exits non-zero without a FAIL line (crash, sanitizer report) counts one
# failure; exit 77 is one skip. Integration tests are counted from pytest's
# JUnit XML, one per test (a test that fails and also errors in teardown
# counts once): failure or error = failed, skipped = skipped. pytest
# exiting non-zero with no failed test in the XML (no tests collected,
# usage error, crash, global timeout) counts one failure.
BUILD=${1:-build/san}
cd "$(dirname "$0")/.." || exit 1

# Sanitizer reports go to stderr (the default log_path); the caller's own
# settings come last so they win.
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# ThreadSanitizer (build/tsan): report every race, exit 66 at the end of a
# process that had one; its reports start "WARNING: ThreadSanitizer:".
TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
SAN_RE='ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer\|ThreadSanitizer:'

pass=0
fail=0
skip=0

# ---- unit tests
for t in "$BUILD"/tests/*_test; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1)
	rc=$?
	if [ "$rc" = 77 ]; then
		echo "SKIP $t"
		skip=$((skip + 1))
		continue
	fi
	p=$(printf '%s\n' "$out" | grep -c '^PASS ')
	f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
	if [ "$f" = 0 ] && { [ "$rc" != 0 ] ||
	    printf '%s\n' "$out" | grep -q "$SAN_RE"; }; then
		f=1 # crashed or sanitizer report outside a case
	fi
	[ "$f" != 0 ] && printf '%s\n' "$out" | grep -v '^PASS\|^RUN' >&2
	echo "unit $(basename "$t"): $p passed, $f failed"
	pass=$((pass + p))
	fail=$((fail + f))
done

# ---- integration tests (pytest) in a network namespace with only lo
ip=0
ifail=0
iskip=0
if [ ! -d tests/integration ]; then
	echo "integration: tests/integration is missing" >&2
	ifail=1
else
	MTA_BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || MTA_BUILD=$BUILD
	JUNIT=$MTA_BUILD/integration-junit.xml # kept for CI and for a look
	rm -f "$JUNIT"
	MTA_TEST_TIMEOUT=${MTA_TEST_TIMEOUT:-1800}
	export MTA_BUILD JUNIT MTA_TEST_TIMEOUT
	if [ "$(id -u)" = 0 ]; then ns="unshare -n"; else ns="unshare -rn"; fi
	# timeout(1) signals its whole process group: pytest and any relay
	# it started.
	$ns sh -c 'ip link set lo up || exit 90
		exec timeout -k 30 "$MTA_TEST_TIMEOUT" /usr/bin/python3 -m pytest \
		    tests/integration -q -p no:cacheprovider --tb=short \
		    --junitxml="$JUNIT"'
	rc=$?
	if [ -s "$JUNIT" ]; then
		set -- $(/usr/bin/python3 - "$JUNIT" <<-'EOF'
		import sys
		import xml.etree.ElementTree as ET
		tests = {}
		for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
		    key = (tc.get("classname"), tc.get("name"))
		    tags = {c.tag for c in tc}
		    st = ("failed" if tags & {"failure", "error"} else
		          "skipped" if "skipped" in tags else "passed")
		    prev = tests.get(key)
		    if prev != "failed":
		        tests[key] = st if prev != "skipped" or st == "failed" else prev
		v = list(tests.values())
		print(v.count("passed"), v.count("failed"), v.count("skipped"))
		EOF
		) || set -- 0 0 0
		ip=${1:-0}
		ifail=${2:-0}
		iskip=${3:-0}
	fi
	case $rc in
	0) ;;
	5) echo "integration: pytest collected no tests" >&2 ;;
	90) echo "integration: could not bring up lo in the namespace" >&2 ;;
	124 | 137) echo "integration: killed after ${MTA_TEST_TIMEOUT}s" >&2 ;;
	*) [ "$ifail" = 0 ] &&
	    echo "integration: pytest exited $rc without a failed test" >&2 ;;
	esac
	if [ "$rc" != 0 ] && [ "$ifail" = 0 ]; then
		ifail=1
	fi
	if [ "$rc" = 0 ] && [ "$((ip + iskip))" = 0 ]; then
		echo "integration: no test result in $JUNIT" >&2
		ifail=1
	fi
	echo "integration: $ip passed, $ifail failed, $iskip skipped"
fi
pass=$((pass + ip))
fail=$((fail + ifail))
skip=$((skip + iskip))

if [ "$skip" != 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" = 0 ]
