# SPDX-License-Identifier: ISC
"""
DANE: a TLSA lookup that never gets an answer (issue 11). The scripted DNS
server (dns_server.py) plays a validating resolver (AD on every answer)
and drops every query for the TLSA name of one MX host, so the relay's
lookup times out.

- That destination defers 4.7.5 with result=dnssec-invalid, without a
  connection to its MX (RFC 7672 2.2: a failed TLSA lookup is not
  "insecure", the host must not be used without DANE).
- Another destination, submitted right after it, is delivered while the
  first lookup still waits: one worker, and it is not held up.

Run inside a network namespace with only loopback (tests/run.sh does).
"""
import re
import socket
import time

import pytest

from conftest import free_port, queued_id, send_message
from dns_server import DNSServer
from smtp_servers import SMTPServer, wait_until

SENDER = "sender@origin.test"
SLOW_MX, FAST_MX = "127.0.0.2", "127.0.0.3"
DNS_TIMEOUT = 3  # s per try, [dns] timeout; tries = 2


def _can_bind(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


if not _can_bind(SLOW_MX):
    pytest.skip("127.0.0.x other than 127.0.0.1 is not usable here (run "
                "inside `unshare -n` with lo up, as tests/run.sh does)",
                allow_module_level=True)


@pytest.fixture
def world():
    port = free_port()
    tlsa = f"_{port}._tcp.mx.slow.test"
    zone = {"ttl": 300, "soa": "test", "ad": True, "records": {
        "slow.test": {"MX": [[10, "mx.slow.test"]]},
        "mx.slow.test": {"A": [SLOW_MX]},
        tlsa: {"drop": True},
        "fast.test": {"MX": [[10, "mx.fast.test"]]},
        "mx.fast.test": {"A": [FAST_MX]},
    }}
    servers = {"slow": SMTPServer(SLOW_MX, port, name="mx-slow").start(),
               "fast": SMTPServer(FAST_MX, port, name="mx-fast").start()}
    with DNSServer(zone) as dns:
        yield {"port": port, "dns": dns, "tlsa": tlsa, "servers": servers}
    problems = []
    for s in servers.values():
        s.stop()
        problems += [f"{s.name}: {e}" for e in s.errors]
    assert not problems, problems


@pytest.fixture
def relay(world, relay_factory):
    r = relay_factory({
        "route *": None,
        "dns": {"servers": f"127.0.0.1:{world['dns'].port}",
                "timeout": f"{DNS_TIMEOUT}s", "tries": "2", "dnssec": "yes"},
        "delivery": {"port": world["port"], "workers": "1", "tls": "may",
                     "connect_timeout": "5s"},
        "queue": {"retry": "60s"},
    })
    yield r
    assert not r.problems(), r.problems()


def submit(relay, domain, local):
    with relay.client() as c:
        c.ehlo()
        qid = queued_id(send_message(
            c, b"Subject: dane\r\n\r\nhello\r\n", sender=SENDER,
            rcpts=(f"{local}@{domain}",)), c)
        c.cmd("QUIT")
    return qid


def event(relay, qid, name, timeout=60.0):
    pat = re.compile(rf"event={name} id={qid} .*")

    def find():
        m = pat.search(relay.stderr_text())
        return m.group(0) if m else None
    return wait_until(find, timeout, f"event={name} for {qid}")


def test_tlsa_timeout_defers_and_others_go_on(world, relay):
    slow = submit(relay, "slow.test", "s1")
    t0 = time.monotonic()
    fast = submit(relay, "fast.test", "f1")
    line = event(relay, fast, "delivered")
    took = time.monotonic() - t0
    # well before the TLSA lookup of slow.test can have given up
    assert took < DNS_TIMEOUT, (took, line)
    assert f"event=deferred id={slow} " not in relay.stderr_text()
    assert len(world["servers"]["fast"].messages) == 1
    line = event(relay, slow, "deferred")
    assert "dsn=4.7.5" in line and "TLSA lookup" in line, line
    assert "result=dnssec-invalid" in line, line
    assert world["dns"].count(world["tlsa"], "TLSA") >= 1
    assert world["servers"]["slow"].connections == 0
