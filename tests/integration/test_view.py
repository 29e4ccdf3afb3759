"""
The live views of issue 14: `mta queue shape` (the queue by destination
domain and age, as qshape) and `mta top` (a refreshing view read from the
relay's Prometheus endpoint), each run on a terminal under `script`
(util-linux), as an operator would.
"""
import http.server
import shlex
import socket
import subprocess
import threading

import pytest

from conftest import MTA, free_port, queued_id, send_message
from smtp_servers import wait_until

MSG = b"From: <s@origin.test>\r\nSubject: view\r\n\r\nbody\r\n"


def on_tty(args, timeout=30):
    """Run mta ARGS on a pseudo-terminal; (exit status, output text)."""
    cmd = " ".join(shlex.quote(str(a)) for a in [MTA] + list(args))
    p = subprocess.run(["script", "-qefc", cmd, "/dev/null"],
                       capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    out = p.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    assert "ERROR: AddressSanitizer" not in out, out
    assert "runtime error:" not in out, out
    return p.returncode, out


def submit(relay, rcpts, n=1):
    ids = []
    with relay.client() as c:
        c.ehlo()
        for _ in range(n):
            ids.append(queued_id(send_message(c, MSG, sender="s@origin.test",
                                              rcpts=rcpts), c))
        c.cmd("QUIT")
    return ids


def row(out, name):
    """The numbers of the table row that starts with name."""
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == name:
            return [int(x) for x in f[1:]]
    raise AssertionError(f"no row {name} in:\n{out}")


# ---------------------------------------------------------------- shape

def test_queue_shape_by_domain(relay):
    """Mail that cannot go anywhere (the test config's route is a closed
    port) stays queued; shape shows it by domain, youngest bucket."""
    submit(relay, ["a1@alpha.test", "a2@alpha.test", "b1@beta.test"], 2)
    submit(relay, ["g1@Gamma.test"])
    rc, out = on_tty(["-c", relay.conf, "queue", "shape"])
    assert rc == 0, out
    head = out.splitlines()[0].split()
    assert head == ["T", "5", "10", "20", "40", "80", "160", "320", "640",
                    "1280", "1280+"], out
    assert row(out, "TOTAL") == [7, 7] + [0] * 9
    assert row(out, "alpha.test") == [4, 4] + [0] * 9
    assert row(out, "beta.test") == [2, 2] + [0] * 9
    assert row(out, "gamma.test") == [1, 1] + [0] * 9  # lowercased
    lines = out.splitlines()
    assert [l.split()[0] for l in lines[1:]] == [
        "TOTAL", "alpha.test", "beta.test", "gamma.test"], out

    rc, out = on_tty(["-c", relay.conf, "queue", "shape", "--top", "1",
                      "--buckets", "1,60"])
    assert rc == 0, out
    assert out.splitlines()[0].split() == ["T", "1", "60", "60+"], out
    assert row(out, "TOTAL") == [7, 7, 0, 0]
    assert "beta.test" not in out


def test_queue_shape_held_and_deferred(relay):
    ids = submit(relay, ["h@held.test"], 2)
    submit(relay, ["f@free.test"])
    for i in ids:
        relay.mta("queue", "hold", i)
    rc, out = on_tty(["-c", relay.conf, "queue", "shape", "--held"])
    assert rc == 0, out
    assert row(out, "TOTAL")[0] == 2
    assert row(out, "held.test")[0] == 2
    assert "free.test" not in out
    # deferred: tried and still pending, held ones left out
    rc, out = on_tty(["-c", relay.conf, "queue", "shape", "--deferred"])
    assert rc == 0, out
    assert "held.test" not in out


def test_queue_shape_bad_usage(relay):
    for args in (["--buckets", "10,5"], ["--top"], ["--bogus"],
                 ["--buckets", "0"]):
        p = relay.mta("queue", "shape", *args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert b"usage: mta queue shape" in p.stderr


# ---------------------------------------------------------------- top

def test_top_says_how_to_enable_metrics(relay):
    """Without [metrics] listen there is nothing to read: say so, exit 2."""
    p = relay.mta("top", "--once", check=False)
    assert p.returncode == 2, p
    assert b"[metrics] listen" in p.stderr, p.stderr


class CannedMetrics:
    """An HTTP server on loopback answering GET /metrics with the next of
    the given bodies (the last repeats)."""

    def __init__(self, bodies):
        self.bodies = list(bodies)
        self.hits = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = outer.bodies[min(outer.hits, len(outer.bodies) - 1)]
                outer.hits += 1
                code = 200 if self.path == "/metrics" else 404
                self.send_response(code)
                self.send_header("Content-Type",
                                 "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def scrape(accepted, delivered, queued):
    return (f"""# TYPE mta_messages_accepted_total counter
mta_messages_accepted_total {accepted}
mta_deliveries_total{{outcome="delivered"}} {delivered}
mta_deliveries_total{{outcome="deferred"}} 0
mta_deliveries_total{{outcome="failed"}} 0
mta_connections_current{{listener="127.0.0.1:587"}} 4
mta_commit_seconds_sum {accepted / 1000}
mta_commit_seconds_count {accepted}
mta_queue_messages{{state="active"}} {queued}
mta_queue_recipients{{state="pending"}} {queued}
mta_queue_oldest_age_seconds 90
mta_destination_queued{{destination="stuck.test"}} {queued}
mta_destination_connections{{destination="stuck.test"}} 3
mta_destination_deferrals_total{{destination="stuck.test",reason="timeout"}} {accepted}
""").encode()


def test_top_on_a_terminal_against_an_endpoint():
    """Frames from a scripted endpoint: rates between scrapes, the
    destination with its connections and last error, on a terminal."""
    m = CannedMetrics([scrape(100, 50, 7)] + [scrape(100 + 10 * i, 50 + 5 * i,
                                                     7) for i in range(1, 9)])
    try:
        rc, out = on_tty(["top", "--listen", f"127.0.0.1:{m.port}", "-n",
                          "2", "--interval", "0.5"])
    finally:
        m.close()
    assert rc == 0, out
    assert m.hits == 3, m.hits  # a baseline, then one a frame
    assert out.count("mta top - 127.0.0.1:") == 2, out
    assert "\033[H\033[2J" in out, "a terminal frame replaces the last"
    assert "connections 4" in out
    assert "queue 7 messages (active=7)" in out and "oldest 1m30s" in out
    assert "commit 1.00 ms avg" in out
    dest = [l for l in out.splitlines() if l.startswith("stuck.test")]
    assert len(dest) == 2, out
    assert dest[-1].split()[:2] == ["stuck.test", "7"], dest
    assert dest[-1].split()[2] == "3" and "timeout" in dest[-1], dest
    # 10 accepted a frame over about 0.5 s: some 20 a second
    ins = [float(l.split()[1]) for l in out.splitlines()
           if l.startswith("in ")]
    assert ins and all(10 <= r <= 25 for r in ins), ins


def test_top_unreachable_or_not_metrics():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([MTA, "top", "--listen", f"127.0.0.1:{port}",
                        "--once"], capture_output=True, timeout=30)
    assert p.returncode == 1 and b"Connection refused" in p.stderr, p
    m = CannedMetrics([b"<html>hello</html>\n"])
    try:
        p = subprocess.run([MTA, "top", "--listen", f"127.0.0.1:{m.port}",
                            "--once"], capture_output=True, timeout=30)
    finally:
        m.close()
    assert p.returncode == 1, p
    assert b"line 1 is not Prometheus text" in p.stderr, p.stderr


# ---------------------------------------------------------------- live

def scrape_text(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    return data.decode("utf-8", "replace")


def test_top_and_shape_show_a_live_relays_destinations(relay_factory):
    """A relay with queued mail for the test's destinations (the test
    config routes everything to a closed port: deferred, kept): `mta top`
    (through [metrics] listen, from the same config) and `queue shape`
    both show them, most queued first."""
    mport = free_port()
    relay = relay_factory({"metrics": {"listen": f"127.0.0.1:{mport}"}})
    submit(relay, ["n1@north.test", "n2@north.test", "s@south.test"], 3)
    # the scheduler publishes destinations once a second; wait until its
    # first deferrals are in
    wait_until(lambda: 'destination="north.test"' in scrape_text(mport)
               and "mta_destination_deferrals_total{destination=\"north"
               in scrape_text(mport), 15, "north.test deferred in /metrics")
    rc, out = on_tty(["-c", relay.conf, "top", "--once", "--interval",
                      "0.5"])
    assert rc == 0, out
    assert f"mta top - 127.0.0.1:{mport}" in out, out
    lines = out.splitlines()
    dests = [l.split() for l in lines
             if l.startswith(("north.test", "south.test"))]
    assert [d[0] for d in dests] == ["north.test", "south.test"], out
    assert dests[0][1] == "6" and dests[1][1] == "3", out
    assert dests[0][4] != "-", f"no last error class for north.test:\n{out}"
    assert "queue 3 messages" in out, out
    assert "9 recipients" in out, out

    rc, out = on_tty(["-c", relay.conf, "queue", "shape", "--deferred"])
    assert rc == 0, out
    assert row(out, "TOTAL")[0] == 9, out
    assert row(out, "north.test")[0] == 6 and row(out, "south.test")[0] == 3
