# SPDX-License-Identifier: ISC
"""
The Prometheus endpoint ([metrics] listen, README "Metrics"): GET /metrics
on a live relay, checked with `promtool check metrics` (Debian's prometheus
package) and against what the test did: messages accepted and refused,
deliveries delivered, deferred and failed, by destination; the endpoint's
bounds (a slowloris client is closed by the request deadline, a flood is
capped, delivery goes on meanwhile); the destination cap (a queue of many
domains scrapes into N named plus destination="other").

Destinations are routes to literal addresses (no DNS needed): an SMTP
server on 127.0.0.2 that takes ok.test mail and refuses some recipients,
and conftest's `route *` to a closed port for everything else (deferred).
"""
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import (free_port, make_message, queued_id, send_message)
from smtp_servers import SMTPServer, wait_until

WAIT = 30.0

if shutil.which("promtool") is None:
    pytest.skip("promtool (Debian package prometheus) is not installed",
                allow_module_level=True)


def _can_bind(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


if not _can_bind("127.0.0.2"):
    pytest.skip("127.0.0.2 is not usable here (run inside `unshare -n`)",
                allow_module_level=True)


# ---------------------------------------------------------------- helpers

def http(port, request, timeout=10.0):
    """Send raw request bytes; return (status, headers dict, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if not request.startswith(b"HEAD"):
        assert int(headers["content-length"]) == len(body), headers
    return status, headers, body


def scrape(port, timeout=10.0):
    st, hd, body = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                        timeout)
    assert st == 200, (st, body[:200])
    assert hd["content-type"].startswith("text/plain; version=0.0.4"), hd
    return body.decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels.items())): float}"""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = SAMPLE.match(ln)
        assert m, f"not a sample line: {ln!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    # lint findings go to stdout/stderr with a non-zero exit
    assert r.returncode == 0, (r.stdout.decode() + r.stderr.decode())[-3000:]


def submit(relay, rcpts, msg=None):
    with relay.client() as c:
        c.ehlo()
        reply = send_message(c, msg or make_message(), rcpts=rcpts)
        c.cmd("QUIT")
    return reply


def metrics_relay(relay_factory, mport, dest_port, extra_sections=None,
                  metrics=None, **kw):
    ov = {
        "metrics": {"listen": f"127.0.0.1:{mport}"},
        "queue": {"retry": "1h"},
        "delivery": {"allow_loopback": "yes", "connect_timeout": "3s"},
        "route ok.test": {"host": f"[127.0.0.2]:{dest_port}"},
    }
    ov["metrics"].update(metrics or {})
    ov.update(extra_sections or {})
    return relay_factory(ov, **kw)


def rcpt_policy(addr, attempt):
    a = addr.strip("<>").lower()
    if a.startswith("bad"):
        return "550 5.1.1 no such user"
    if a.startswith("later"):
        return "451 4.3.0 try later"
    return "250 2.1.5 Ok"


# ---------------------------------------------------------------- tests

def test_scrape_counts_what_happened(relay_factory):
    dport, mport = free_port(), free_port()
    srv = SMTPServer("127.0.0.2", dport, rcpt=rcpt_policy).start()
    try:
        relay = metrics_relay(relay_factory, mport, dport)
        for i in range(3):
            queued_id(submit(relay, [f"u{i}@ok.test"]))
        queued_id(submit(relay, ["bad@ok.test"]))
        queued_id(submit(relay, ["later@ok.test"]))
        queued_id(submit(relay, ["x@dead.test"]))
        # a message refused whole: NUL in the body (554)
        nul = make_message(body_lines=["a\x00b"])
        assert submit(relay, ["u9@ok.test"], nul).code == 554

        last = [""]

        def settled():
            last[0] = scrape(mport)
            s = parse(last[0])
            ok = (val(s, "mta_deliveries_total", outcome="delivered") == 3
                  and val(s, "mta_deliveries_total", outcome="failed") == 1
                  # later@, dead.test, and the bounce for bad@ to the
                  # sender's domain (example.org: the dead route too)
                  and val(s, "mta_deliveries_total", outcome="deferred") == 3
                  and val(s, "mta_destination_deliveries_total",
                          destination="ok.test", outcome="delivered") == 3)
            return ok and s
        try:
            s = wait_until(settled, WAIT, "deliveries counted")
        except AssertionError:
            raise AssertionError("deliveries not counted in the scrape:\n"
                                 + last[0] + relay.stderr_text()[-3000:])
        text = scrape(mport)
        promtool(text)
        assert val(s, "mta_messages_accepted_total") == 6
        assert val(s, "mta_messages_refused_total", **{"class": "5xx"}) == 1
        assert val(s, "mta_transactions_total", result="accepted") == 6
        assert val(s, "mta_transactions_total", result="refused") == 1
        lst = f"127.0.0.1:{relay.port}"
        # 7 submissions, and the harness's probe of the port at start
        assert val(s, "mta_connections_total", listener=lst) in (7, 8)
        assert val(s, "mta_received_bytes_total") > 7 * 100
        assert val(s, "mta_commit_batch_size_count") >= 6
        assert val(s, "mta_commit_seconds_count") >= 6
        assert val(s, "mta_delivery_latency_seconds_count") == 3
        d = dict(destination="ok.test")
        assert val(s, "mta_destination_deliveries_total", outcome="failed",
                   **d) == 1
        assert val(s, "mta_destination_deferrals_total", reason="4xx",
                   **d) == 1
        assert val(s, "mta_destination_deferrals_total", reason="connect",
                   destination="dead.test") == 1
        assert val(s, "mta_destination_queued", **d) == 1
        assert val(s, "mta_destination_queued", destination="dead.test") == 1
        assert val(s, "mta_destination_queued", destination="example.org") == 1
        assert val(s, "mta_queue_messages", state="deferred") == 3
        assert val(s, "mta_queue_recipients", state="deferred") == 3
        assert val(s, "mta_queue_oldest_age_seconds") > 0
        # connections that were closed are no longer current
        wait_until(lambda: val(parse(scrape(mport)), "mta_connections_current",
                               listener=lst) == 0, WAIT, "current back to 0")
    finally:
        srv.stop()


def test_http_errors(relay_factory):
    mport = free_port()
    metrics_relay(relay_factory, mport, free_port())
    st, _, _ = http(mport, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 404
    st, hd, _ = http(mport, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 0\r\n\r\n")
    assert st == 405 and "GET" in hd.get("allow", ""), hd
    st, _, _ = http(mport, b"garbage\r\n\r\n")
    assert st == 400
    st, _, _ = http(mport, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000
                    + b"\r\n\r\n")
    assert st == 431
    st, hd, body = http(mport, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert st == 200 and body == b"" and int(hd["content-length"]) > 1000


def test_scrape_under_load_passes_promtool(relay_factory, tmp_path):
    """promtool on scrapes taken while mta-load submits, mail delivered to
    a sink; the counters then agree with mta-load's report."""
    from conftest import BUILD
    dport, mport = free_port(), free_port()
    srv = SMTPServer("127.0.0.2", dport).start()
    try:
        relay = metrics_relay(relay_factory, mport, dport)
        load = subprocess.Popen(
            [f"{BUILD}/mta-load", "--server", f"127.0.0.1:{relay.port}",
             "--messages", "300", "--connections", "4", "--domains",
             "ok.test", "--json", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        scrapes = 0
        while load.poll() is None and scrapes < 50:
            promtool(scrape(mport))
            scrapes += 1
            time.sleep(0.1)
        out, err = load.communicate(timeout=120)
        assert load.returncode == 0, err.decode()[-2000:]
        assert scrapes >= 2, "the load ended before two scrapes"
        # the destination view is the scheduler's snapshot: up to 1 s late
        ok = wait_until(
            lambda: (s := parse(scrape(mport))) and val(
                s, "mta_destination_deliveries_total", destination="ok.test",
                outcome="delivered") == 300 and s,
            WAIT, "300 deliveries counted")
        assert val(ok, "mta_messages_accepted_total") == 300
        assert val(ok, "mta_deliveries_total", outcome="delivered") == 300
        promtool(scrape(mport))
    finally:
        srv.stop()


def test_slowloris_and_flood(relay_factory):
    """A client that trickles its request is closed by the request
    deadline (5 s); a flood of connections beyond the cap is closed at
    accept; delivery goes on meanwhile; once the flood is gone, scrapes
    work again."""
    dport, mport = free_port(), free_port()
    srv = SMTPServer("127.0.0.2", dport).start()
    socks = []
    try:
        relay = metrics_relay(relay_factory, mport, dport)
        slow = socket.create_connection(("127.0.0.1", mport), timeout=10)
        t0 = time.monotonic()
        closed = [None]

        def trickle():
            try:
                for ch in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":
                    slow.sendall(bytes([ch]))
                    time.sleep(0.5)
            except OSError:
                pass

        def watch():
            try:
                while slow.recv(4096):
                    pass
            except OSError:
                pass
            closed[0] = time.monotonic() - t0
        th = [threading.Thread(target=trickle, daemon=True),
              threading.Thread(target=watch, daemon=True)]
        for t in th:
            t.start()
        # the flood: far more idle connections than the cap (64)
        for _ in range(200):
            try:
                socks.append(socket.create_connection(("127.0.0.1", mport),
                                                      timeout=5))
            except OSError:
                break
        # delivery is not held up by any of it
        t1 = time.monotonic()
        for i in range(5):
            queued_id(submit(relay, [f"f{i}@ok.test"]))
        wait_until(lambda: len(srv.snapshot()["messages"]) == 5, WAIT,
                   "5 deliveries during the flood")
        assert time.monotonic() - t1 < 15
        th[1].join(12)
        assert closed[0] is not None, "the slow client was not closed"
        assert 3.0 < closed[0] < 9.0, closed[0]
        # the flood's connections are closed too: by the cap at once,
        # or by the deadline
        for s in socks:
            s.settimeout(10)
            try:
                assert s.recv(10) == b""
            except ConnectionResetError:
                pass
        s = parse(scrape(mport))
        assert val(s, "mta_deliveries_total", outcome="delivered") >= 5
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_many_destinations_bounded(relay_factory):
    """2,000 destinations queued (all deferred: the default route is a
    closed port) with [metrics] destinations = 10: the scrape names 10 and
    sums the rest in destination="other", and stays small and quick."""
    mport = free_port()
    relay = metrics_relay(relay_factory, mport, free_port(),
                          metrics={"destinations": "10"})
    for k in range(2):
        queued_id(submit(relay, [f"r@d{k}-{i}.test" for i in range(1000)]))
    # three recipients more for d0-0.test..d0-9.test: the top 10
    queued_id(submit(relay, [f"r{j}@d0-{j % 10}.test" for j in range(30)]))

    def snapshot_in():
        s = parse(scrape(mport))
        total = sum(v for (n, _), v in s.items()
                    if n == "mta_destination_queued")
        return total == 2030 and s
    s = wait_until(snapshot_in, WAIT, "2030 recipients in the snapshot")
    named = [dict(lb)["destination"] for (n, lb) in s
             if n == "mta_destination_queued"]
    assert len(named) == 11 and "other" in named, named
    assert sorted(d for d in named if d != "other") == sorted(
        f"d0-{j}.test" for j in range(10)), named
    assert val(s, "mta_destination_queued", destination="other") == 1990
    assert val(s, "mta_destinations", shown="other") == 1990
    t0 = time.monotonic()
    text = scrape(mport)
    took = time.monotonic() - t0
    assert len(text) < 64 * 1024, len(text)
    assert took < 0.5, took  # the sanitizer build; 100 ms is the target
    promtool(text)


def test_tls_auth_and_aborted(relay_factory, tmp_path):
    """TLS handshakes in (STARTTLS) and out (delivery to a STARTTLS
    server), AUTH successes and failures, and a transaction given up with
    RSET are counted."""
    import base64
    from conftest import make_cert
    cert, key = make_cert(tmp_path / "tls")
    pw = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                        input=b"secret", check=True, capture_output=True,
                        timeout=60).stdout.decode().strip()
    users = tmp_path / "users"
    users.write_text(f"alice:{pw}\n")
    dport, mport = free_port(), free_port()
    srv = SMTPServer("127.0.0.2", dport, tls_cert=(cert, key)).start()
    try:
        relay = metrics_relay(relay_factory, mport, dport, extra_sections={
            "tls": {"certificate": cert, "private_key": key},
            "auth": {"users": str(users), "require_tls": "yes"}})
        with relay.client() as c:
            c.ehlo()
            c.cmd("STARTTLS")
            c.starttls()
            c.ehlo()
            bad = base64.b64encode(b"\0alice\0wrong").decode()
            good = base64.b64encode(b"\0alice\0secret").decode()
            assert c.cmd(f"AUTH PLAIN {bad}", timeout=20).code == 535
            assert c.cmd(f"AUTH PLAIN {good}", timeout=20).code == 235
            assert c.cmd("MAIL FROM:<a@example.org>").code == 250
            assert c.cmd("RCPT TO:<x@ok.test>").code == 250
            assert c.cmd("RSET").code == 250
            queued_id(send_message(c, make_message(), rcpts=["t@ok.test"]))
            c.cmd("QUIT")
        wait_until(lambda: len(srv.snapshot()["messages"]) == 1, WAIT,
                   "the delivery over TLS")
        s = wait_until(
            lambda: (s := parse(scrape(mport))) and val(
                s, "mta_deliveries_total", outcome="delivered") == 1 and s,
            WAIT, "the delivery counted")
        tin = sum(v for (n, lb), v in s.items()
                  if n == "mta_tls_handshakes_total"
                  and ("direction", "in") in lb)
        assert tin == 1 and val(s, "mta_tls_handshakes_total",
                                direction="in", version="TLSv1.3",
                                verified="no") == 1
        tout = sum(v for (n, lb), v in s.items()
                   if n == "mta_tls_handshakes_total"
                   and ("direction", "out") in lb)
        assert tout == 1, s
        assert val(s, "mta_auth_total", result="success") == 1
        assert val(s, "mta_auth_total", result="failure") == 1
        assert val(s, "mta_transactions_total", result="aborted") == 1
        assert val(s, "mta_transactions_total", result="accepted") == 1
    finally:
        srv.stop()


def test_connection_limit_refusal_counted(relay_factory):
    """A [limit] on connections held refuses a second client with 421;
    the refusal is counted under reason="connection_limit"."""
    mport = free_port()
    relay = metrics_relay(relay_factory, mport, free_port(), extra_sections={
        "limit one": {"count": "connections", "key": "client", "max": "1"}})
    lst = f"127.0.0.1:{relay.port}"
    base = val(parse(scrape(mport)), "mta_connections_refused_total",
               listener=lst, reason="connection_limit")
    with relay.client() as c1:
        with relay.client(greet=False) as c2:
            c2.expect(421)
        s = parse(scrape(mport))
        assert val(s, "mta_connections_refused_total", listener=lst,
                   reason="connection_limit") == base + 1
        assert val(s, "mta_connections_current", listener=lst) == 1
        c1.cmd("QUIT")
