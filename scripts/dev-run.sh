#!/bin/sh
# dev-run.sh BUILD_DIR - what `make run` does: start the relay on
# config/dev.conf in the foreground, with mta-sink on 127.0.0.1:2525 as the
# destination of every message. Ctrl-C stops both.
#
# mta runs as a child rather than through exec: exec would drop the EXIT
# trap, and the sink would outlive the relay.
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 1
mkdir -p run/queue || exit 1

sink_pid=
cleanup() {
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null
		wait "$sink_pid" 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -x "$BUILD/mta-sink" ]; then
	"$BUILD/mta-sink" --listen 127.0.0.1:2525 &
	sink_pid=$!
	# A sink that cannot start (or is still a placeholder) exits at once.
	sleep 0.3
	if ! kill -0 "$sink_pid" 2>/dev/null; then
		wait "$sink_pid" 2>/dev/null
		sink_pid=
		echo "dev-run: note: $BUILD/mta-sink did not start; deliveries" \
		    "to 127.0.0.1:2525 will be deferred" >&2
	fi
else
	echo "dev-run: note: no $BUILD/mta-sink; deliveries to" \
	    "127.0.0.1:2525 will be deferred" >&2
fi

"$BUILD/mta" serve -c config/dev.conf
