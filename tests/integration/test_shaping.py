# SPDX-License-Identifier: ISC
"""
Delivery shaping and adaptive backoff (README "Delivery shaping and
adaptive backoff"): [limit] sections with key = destination_domain hold
mail queued, in memory, until the limit allows; a remote reply that a
backoff rule matches (Yahoo's 421 4.7.0 [TSS04]) suspends the destination:
no new connection until the suspension ends (the test server records each
connection's time), then delivery; `mta queue resume` lifts it early;
`mta queue stats` and `mta limits` show it; bad values fail check-config
with FILE:LINE.

Destinations are tests/integration/smtp_servers.py servers on 127.0.0.x,
reached through [route DOMAIN] sections. Runs inside `unshare -n`.
"""
import re
import smtplib
import socket
import time
import urllib.request

import pytest

from conftest import base_sections, free_port, run_mta, write_config
from dns_server import DNSServer
from smtp_servers import SMTPServer, wait_until

TSS04 = ("421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred "
         "due to unexpected volume or user complaints - 4.16.55.1")


def _can_bind(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


if not _can_bind("127.0.0.2"):
    pytest.skip("127.0.0.x other than 127.0.0.1 is not usable here (run "
                "inside `unshare -n` with lo up, as tests/run.sh does)",
                allow_module_level=True)


class Recorder(SMTPServer):
    """An SMTPServer that records each connection's time and answers the
    first `throttle` connections with a Yahoo-style 421 greeting."""

    def __init__(self, host, port, throttle=0, **kw):
        super().__init__(host, port, **kw)
        self.throttle = throttle
        self.conn_times = []

    def _session(self, c):
        with self.lock:
            self.conn_times.append(time.monotonic())
            n = len(self.conn_times)
        if n <= self.throttle:
            c.send(TSS04)
            return
        super()._session(c)


def route(domain, host, port):
    return {f"route {domain}": {"host": f"[{host}]:{port}"}}


def send(relay, domain, n, sender="s@origin.test"):
    with smtplib.SMTP(relay.host, relay.port, timeout=30) as s:
        for i in range(n):
            s.sendmail(sender, [f"r{i}@{domain}"],
                       f"Subject: m{i}\r\n\r\nbody {i}\r\n")


@pytest.fixture
def server():
    made = []

    def make(host, **kw):
        srv = Recorder(host, free_port(host), **kw).start()
        made.append(srv)
        return srv

    yield make
    for s in made:
        s.stop()
        assert not s.errors, s.errors


def stats(relay):
    return relay.mta("queue", "stats").stdout.decode()


def test_tss04_suspends_then_delivers(relay_factory, server):
    srv = server("127.0.0.2", throttle=1)
    relay = relay_factory(overrides={
        "queue": {"retry": "1s"},
        "delivery": {"backoff_suspend": "4s"},
        **route("yahoo.test", srv.host, srv.port)})
    send(relay, "yahoo.test", 1)
    wait_until(lambda: len(srv.conn_times) >= 1, 20, "the first connection")
    wait_until(lambda: "suspended yahoo.test" in stats(relay), 5,
               "the suspension in queue stats")
    assert "yahoo-tss04" in stats(relay)
    wait_until(lambda: srv.message_count() == 1, 20, "the delivery")
    gap = srv.conn_times[1] - srv.conn_times[0]
    # the retry (1s) came due during the suspension: no connection for it
    assert gap >= 3.5, f"reconnected after {gap:.2f}s, within the suspension"
    assert len(srv.conn_times) == 2
    assert re.search(r"event=destination-suspended .*domain=yahoo\.test "
                     r"rule=yahoo-tss04", relay.stderr_text())
    # the report is at most a second old
    wait_until(lambda: "suspended yahoo.test" not in stats(relay), 5,
               "the suspension's end in queue stats")


def suspended_gauge(port):
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^mta_destination_suspended\{destination="yahoo\.test"\} '
                  r'(\S+)$', text, re.M)
    return m.group(1) if m else None


def test_resume_lifts_a_suspension(relay_factory, server):
    srv = server("127.0.0.3", throttle=1)
    mport = free_port()
    relay = relay_factory(overrides={
        "queue": {"retry": "1s"},
        "delivery": {"backoff_suspend": "10m"},
        "metrics": {"listen": f"127.0.0.1:{mport}"},
        **route("yahoo.test", srv.host, srv.port)})
    send(relay, "yahoo.test", 2)
    wait_until(lambda: "suspended yahoo.test" in stats(relay), 20,
               "the suspension")
    wait_until(lambda: suspended_gauge(mport) == "1", 10,
               "mta_destination_suspended 1")
    time.sleep(2)
    assert srv.message_count() == 0
    n = len(srv.conn_times)
    p = relay.mta("queue", "resume", "yahoo.test")
    assert "ok resume yahoo.test" in p.stdout.decode()
    wait_until(lambda: srv.message_count() == 2, 20, "delivery after resume")
    assert len(srv.conn_times) > n
    assert "suspended yahoo.test" not in stats(relay)
    wait_until(lambda: suspended_gauge(mport) == "0", 10,
               "mta_destination_suspended 0")
    bad = relay.mta("queue", "resume", "a b", check=False)
    assert bad.returncode != 0


def test_backoff_defaults_off(relay_factory, server):
    srv = server("127.0.0.4", throttle=1)
    relay = relay_factory(overrides={
        "queue": {"retry": "1s"},
        "delivery": {"backoff_defaults": "no", "backoff_suspend": "1h"},
        **route("yahoo.test", srv.host, srv.port)})
    send(relay, "yahoo.test", 1)
    # no rule: the scheduler's own retry (1s), no suspension
    wait_until(lambda: srv.message_count() == 1, 20, "the delivery")
    assert "destination-suspended" not in relay.stderr_text()


def test_rate_limit_10_per_second(relay_factory, server):
    srv = server("127.0.0.5")
    relay = relay_factory(
        overrides=route("rate.test", srv.host, srv.port),
        extra="[limit to-rate]\ncount = messages\n"
              "key = destination_domain\nrate = 10/s\n")
    send(relay, "rate.test", 60)
    seen = []

    def binding():
        out = relay.mta("limits").stdout.decode()
        seen.append(out)
        return re.search(r"^  rate\.test .*binding=yes", out, re.M)

    wait_until(binding, 10, "mta limits to show the binding limit")
    assert re.search(r"^limit to-rate count=messages "
                     r"key=destination_domain rate=10/s", seen[-1], re.M)
    wait_until(lambda: srv.message_count() == 60, 40, "60 deliveries")
    times = sorted(m["time"] for m in srv.snapshot()["messages"])
    span = times[-1] - times[0]
    # burst 10 at once, then 10 a second: 50 more take 5 s
    assert span >= 4.5, f"60 messages in {span:.2f}s: over 10/s"
    for i, t in enumerate(times):
        window = sum(1 for u in times[i:] if u < t + 1.0)
        assert window <= 10 + 10 + 1, f"{window} messages in 1 s"


def test_max_connections_per_destination(relay_factory, server):
    srv = server("127.0.0.6", delay={"dot": 0.3})
    relay = relay_factory(
        overrides=route("conn.test", srv.host, srv.port),
        extra="[limit conns]\ncount = connections\n"
              "key = destination_domain\nmax = 2\n")
    send(relay, "conn.test", 12)
    wait_until(lambda: srv.message_count() == 12, 40, "12 deliveries")
    assert srv.max_concurrent <= 2, srv.max_concurrent
    assert srv.max_concurrent >= 1


def test_site_limit_shared_by_domains_with_one_mx_set(relay_factory):
    """a.test and b.test have the same MX hosts (in another order and
    case): one site, one 10/s limit for both."""
    port = free_port("127.0.0.8")
    srv = Recorder("127.0.0.8", port).start()
    dns = DNSServer({"ttl": 300, "neg_ttl": 60, "soa": "test", "records": {
        "a.test": {"MX": [[10, "mx1.shared.test"], [20, "mx2.shared.test"]]},
        "b.test": {"MX": [[5, "MX2.shared.test"], [10, "mx1.shared.test"]]},
        "mx1.shared.test": {"A": ["127.0.0.8"]},
        "mx2.shared.test": {"A": ["127.0.0.8"]},
    }}).start()
    try:
        relay = relay_factory(overrides={
            "route *": None,
            "dns": {"servers": f"127.0.0.1:{dns.port}", "timeout": "2s"},
            "delivery": {"port": str(port)}},
            extra="[limit site]\ncount = messages\n"
                  "key = destination_site\nrate = 10/s\n")
        # one message each first: the relay learns each domain's site
        send(relay, "a.test", 1)
        send(relay, "b.test", 1)
        wait_until(lambda: srv.message_count() == 2, 20, "first deliveries")
        time.sleep(1.5)  # the burst back
        with smtplib.SMTP(relay.host, relay.port, timeout=30) as s:
            for i in range(30):
                for d in ("a.test", "b.test"):
                    s.sendmail("s@origin.test", [f"r{i}@{d}"],
                               f"Subject: {i}\r\n\r\nx\r\n")
        wait_until(lambda: srv.message_count() == 62, 40, "62 deliveries")
        out = relay.mta("limits").stdout.decode()
        assert "site=mx1.shared.test,mx2.shared.test" in out, out
        times = sorted(m["time"] for m in srv.snapshot()["messages"][2:])
        span = times[-1] - times[0]
        # 60 messages, burst 10 then 10/s: 5 s; each domain alone: 2 s
        assert span >= 4.0, f"60 messages in {span:.2f}s: not one site"
    finally:
        srv.stop()
        dns.stop()


@pytest.mark.parametrize("extra,line,why", [
    ("[limit x]\ncount = messages\nkey = destination_dommain\nrate = 1/s\n",
     "key", "unknown key type"),
    ("[limit x]\ncount = messages\nkey = destination_domain\nrate = 0/s\n",
     "rate", "a rate of zero"),
    ("[limit x]\ncount = bytes\nkey = destination_site\nrate = 1/s\n",
     "key", "destination_site counts messages or connections only"),
])
def test_bad_config(tmp_path, extra, line, why):
    q = tmp_path / "q"
    q.mkdir()
    conf = write_config(tmp_path / "mta.conf", base_sections(q, free_port()),
                        extra)
    lines = conf.read_text().splitlines()
    want = next(i + 1 for i, l in enumerate(lines)
                if l.startswith(line + " =") and i > len(lines) - 5)
    p = run_mta("check-config", conf=conf, check=False)
    assert p.returncode == 1
    assert f"{conf}:{want}: {line}: {why}" in p.stderr.decode(), p.stderr


def test_bad_backoff_suspend(tmp_path):
    q = tmp_path / "q"
    q.mkdir()
    sec = base_sections(q, free_port())
    sec["delivery"]["backoff_suspend"] = "0s"
    conf = write_config(tmp_path / "mta.conf", sec)
    lines = conf.read_text().splitlines()
    want = next(i + 1 for i, l in enumerate(lines)
                if l.startswith("backoff_suspend"))
    p = run_mta("check-config", conf=conf, check=False)
    assert p.returncode == 1
    assert f"{conf}:{want}: backoff_suspend" in p.stderr.decode(), p.stderr
