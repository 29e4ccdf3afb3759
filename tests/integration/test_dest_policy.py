# SPDX-License-Identifier: ISC
"""
The destination policy (issue 16, item 1), end to end: a sender must not
be able to aim the relay at internal addresses, and mail must not loop
through the relay itself.

  - RCPT to an address literal is refused 550 5.7.1 unless
    [delivery] allow_address_literals = yes (and then delivery still
    applies the policy to the literal's address);
  - an MX or A record pointing at loopback, 0.0.0.0, 10/8, 169.254/16,
    ::1 (or a v4-mapped ::ffff:127.0.0.1) fails the recipient at once,
    5.4.4 "... is a <class> address", and no connection is made: counting
    listeners sit on 127.0.0.1 and ::1 at the delivery port (a connection
    to 0.0.0.0 would land on 127.0.0.1; 10/8 and 169.254/16 cannot be
    bound here, so for them the refusal itself is what is checked);
  - a best MX that is this relay (its listener, or its hostname as MX
    name) fails 5.4.6 "mail for DOMAIN loops back to myself" without a
    connection; as a backup MX the relay delivers to the better one;
  - a route to a loopback smarthost, and allow_loopback, still deliver.

DNS comes from tests/integration/dns_server.py on 127.0.0.1; run inside a
network namespace with only loopback (tests/run.sh does `unshare -n`).
"""
import re
import socket
import threading
import time

import pytest

from conftest import HOSTNAME, free_port, queued_id, send_message
from dns_server import DNSServer
from smtp_servers import SMTPServer, wait_until

WAIT = 25.0
SENDER = "sender@origin.test"


def _can_bind(host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


if not _can_bind("127.0.0.2"):
    pytest.skip("127.0.0.x other than 127.0.0.1 is not usable here (run "
                "inside `unshare -n` with lo up, as tests/run.sh does)",
                allow_module_level=True)

HAVE_V6 = _can_bind("::1")


class Counter:
    """A listener that only counts the connections it accepts (and closes
    them): where the relay must never connect."""

    def __init__(self, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.count += 1
            c.close()

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.sock.close()


class World:
    def __init__(self, tmp_path, relay_factory):
        self.relay_factory = relay_factory
        self.port = free_port()  # [delivery] port: every destination
        self.dns = None
        self.closers = []

    def zone(self, records):
        self.dns = DNSServer({"ttl": 300, "neg_ttl": 60, "soa": "test",
                              "records": records}).start()
        self.closers.append(self.dns.stop)

    def server(self, host):
        s = SMTPServer(host, self.port).start()
        self.closers.append(s.stop)
        return s

    def counter(self, host):
        c = Counter(host, self.port)
        self.closers.append(c.stop)
        return c

    def relay(self, delivery=None, routes=None, **kw):
        dl = {"port": str(self.port), "workers": "2",
              "connect_timeout": "5s", "allow_loopback": "no"}
        dl.update(delivery or {})
        overrides = {
            "route *": None,
            "dns": {"servers": f"127.0.0.1:{self.dns.port}",
                    "timeout": "2s", "tries": "2"},
            "delivery": dl,
            "queue": {"retry": "2s"},
        }
        overrides.update(routes or {})
        r = self.relay_factory(overrides, **kw)
        self.closers.insert(0, r.stop)
        return r


@pytest.fixture
def world(tmp_path, relay_factory):
    w = World(tmp_path, relay_factory)
    yield w
    for c in w.closers:
        c()


LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def rcpt_of(line):
    for k, v in LOGFMT.findall(line):
        if k == "rcpt":
            return v.strip('"').strip("<>")
    return None


def events(relay, kind, rcpt=None):
    """Log lines of event=kind (for rcpt, when given)."""
    out = []
    for line in relay.stderr_text().splitlines():
        if f"event={kind} " not in line + " ":
            continue
        if rcpt is not None and rcpt_of(line) != rcpt:
            continue
        out.append(line)
    return out


def wait_event(relay, kind, rcpt):
    return wait_until(lambda: events(relay, kind, rcpt), WAIT,
                      f"event={kind} rcpt={rcpt}:\n"
                      + relay.stderr_text()[-3000:])[0]


def submit(relay, rcpts):
    with relay.client() as c:
        c.ehlo()
        msg = (f"From: <{SENDER}>\r\nSubject: policy\r\n\r\nhello\r\n"
               ).encode()
        qid = queued_id(send_message(c, msg, sender=SENDER, rcpts=rcpts), c)
        c.cmd("QUIT")
    return qid


def probe_connects(relay):
    """Connections the start-up probe made. The relay may log the probe's
    event=connect after it logged event=started, so wait for it."""
    return len(wait_until(lambda: events(relay, "connect"), WAIT,
                          "the start-up probe's event=connect"))


def no_submission_but_ours(relay, before):
    """Since `before` connections (the start-up probe), the relay's own
    listener saw only our one submission (MTA_DEBUG=1 logs each accepted
    connection as event=connect) and queued only our one message."""
    n = len(events(relay, "connect")) - before
    assert n == 1, (f"{n} connections at the relay's listener, 1 was "
                    "ours:\n" + relay.stderr_text()[-3000:])
    assert len(events(relay, "queued")) == 1


DEBUG = {"MTA_DEBUG": "1"}  # event=connect for every accepted connection


# ---------------------------------------------------------------- RCPT

LITERALS = ["x@[127.0.0.1]", "x@[10.1.2.3]", "x@[169.254.169.254]",
            "x@[IPv6:::1]"]


def test_rcpt_address_literals_refused(world):
    world.zone({"ok.test": {"A": ["192.0.2.1"]}})
    relay = world.relay()
    with relay.client() as c:
        c.ehlo()
        c.cmd(f"MAIL FROM:<{SENDER}>")
        for lit in LITERALS:
            r = c.cmd(f"RCPT TO:<{lit}>")
            assert (r.code, r.enh) == (550, "5.7.1"), (lit, r)
            assert "literal" in r.text, r
        # a domain still works in the same transaction
        assert c.cmd("RCPT TO:<x@ok.test>").code == 250
        c.cmd("RSET")
        c.cmd("QUIT")
    assert len(events(relay, "rejected")) == len(LITERALS)


def test_rcpt_address_literal_allowed_still_policed(world):
    """allow_address_literals accepts the RCPT; delivery still refuses
    the loopback literal (no route, allow_loopback = no)."""
    world.zone({"ok.test": {"A": ["192.0.2.1"]}})
    lo = world.counter("127.0.0.1")
    relay = world.relay({"allow_address_literals": "yes"})
    submit(relay, ["x@[127.0.0.1]"])
    ev = wait_event(relay, "failed", "x@[127.0.0.1]")
    assert "dsn=5.4.4" in ev and "is a loopback address" in ev, ev
    time.sleep(0.5)
    assert lo.count == 0


def test_rcpt_address_literal_delivered_when_allowed(world):
    world.zone({"ok.test": {"A": ["192.0.2.1"]}})
    srv = world.server("127.0.0.3")
    relay = world.relay({"allow_address_literals": "yes",
                         "allow_loopback": "yes"})
    submit(relay, ["x@[127.0.0.3]"])
    wait_event(relay, "delivered", "x@[127.0.0.3]")
    assert srv.message_count() == 1


# ---------------------------------------------------------------- MX / A

REFUSED = [
    # domain, records, class named in the reason
    ("lo.test", {"lo.test": {"MX": [[10, "mx.lo.test"]]},
                 "mx.lo.test": {"A": ["127.0.0.1"]}}, "loopback"),
    ("zero.test", {"zero.test": {"A": ["0.0.0.0"]}}, "unspecified"),
    ("ten.test", {"ten.test": {"MX": [[10, "mx.ten.test"]]},
                  "mx.ten.test": {"A": ["10.1.2.3"]}}, "private"),
    ("meta.test", {"meta.test": {"MX": [[10, "mx.meta.test"]]},
                   "mx.meta.test": {"A": ["169.254.169.254"]}},
     "link-local"),
    ("v6.test", {"v6.test": {"MX": [[10, "mx.v6.test"]]},
                 "mx.v6.test": {"AAAA": ["::1"]}}, "loopback"),
    ("mapped.test", {"mapped.test": {"AAAA": ["::ffff:7f00:1"]}},
     "loopback"),
    ("mcast.test", {"mcast.test": {"A": ["224.0.0.1"]}}, "multicast"),
]


@pytest.mark.parametrize("domain,records,cls", REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_mx_to_internal_address_refused(world, domain, records, cls):
    world.zone(records)
    lo = world.counter("127.0.0.1")
    lo6 = world.counter("::1") if HAVE_V6 else None
    relay = world.relay()
    rcpt = f"nobody@{domain}"
    submit(relay, [rcpt])
    ev = wait_event(relay, "failed", rcpt)
    article = "an" if cls[0] in "aeiou" else "a"
    assert "dsn=5.4.4" in ev, ev
    assert f"mail for {domain} refused" in ev, ev
    assert f"is {article} {cls} address" in ev, ev
    assert events(relay, "deferred") == []
    # the sender is told: a bounce to origin.test is queued (no DNS for
    # it: it stays deferred, which is fine here)
    wait_until(lambda: events(relay, "bounced"), WAIT, "a bounce")
    time.sleep(0.5)
    assert lo.count == 0, "connected to 127.0.0.1"
    if lo6 is not None:
        assert lo6.count == 0, "connected to ::1"


def test_refused_and_good_address_mixed(world):
    """One MX host refused, the next one reachable: delivered there."""
    world.zone({"mix.test": {"MX": [[10, "a.mix.test"], [20, "b.mix.test"]]},
                "a.mix.test": {"A": ["169.254.169.254"]},
                "b.mix.test": {"A": ["127.0.0.4"]}})
    srv = world.server("127.0.0.4")
    relay = world.relay({"allow_loopback": "yes"})
    submit(relay, ["x@mix.test"])
    wait_event(relay, "delivered", "x@mix.test")
    assert srv.message_count() == 1
    assert any("class=link-local" in l
               for l in events(relay, "dest-refused"))


def _isolated():
    """Only loopback here (tests/run.sh's network namespace): a connection
    to a private address cannot leave the host."""
    return [n for _, n in socket.if_nameindex()] == ["lo"]


@pytest.mark.skipif(not _isolated(), reason="needs a namespace with only lo")
def test_allow_private_lets_private_through(world):
    """allow_private: a 10/8 MX is tried (and, with no route there, is
    deferred as unreachable) instead of refused."""
    world.zone({"ten.test": {"MX": [[10, "mx.ten.test"]]},
                "mx.ten.test": {"A": ["10.1.2.3"]}})
    relay = world.relay({"allow_private": "yes"})
    submit(relay, ["x@ten.test"])
    ev = wait_event(relay, "deferred", "x@ten.test")
    assert "10.1.2.3" in ev and "refused:" not in ev, ev
    assert events(relay, "failed") == []
    assert events(relay, "dest-refused") == []


# ---------------------------------------------------------------- loops

def test_mx_is_own_listener_loops(world):
    """MX -> the relay's own address and port: 5.4.6, no connection, even
    with loopback allowed."""
    port = free_port()
    world.zone({"self.test": {"MX": [[10, "mx.self.test"]]},
                "mx.self.test": {"A": ["127.0.0.1"]}})
    world.port = port
    relay = world.relay({"allow_loopback": "yes"}, port=port, env=DEBUG)
    before = probe_connects(relay)
    submit(relay, ["x@self.test"])
    ev = wait_event(relay, "failed", "x@self.test")
    assert "dsn=5.4.6" in ev, ev
    assert "mail for self.test loops back to myself" in ev, ev
    time.sleep(0.5)
    # our submission, and nothing from the relay to itself (the bounce to
    # origin.test has no DNS and stays queued)
    no_submission_but_ours(relay, before)


def test_mx_named_after_relay_loops(world):
    """MX host = our [server] hostname: 5.4.6 before any connection, and
    MX hosts after ours are not tried either (as Postfix)."""
    world.zone({"named.test": {"MX": [[10, HOSTNAME], [20, "mx2.named.test"]]},
                HOSTNAME: {"A": ["127.0.0.5"]},
                "mx2.named.test": {"A": ["127.0.0.6"]}})
    s5 = world.server("127.0.0.5")
    s6 = world.server("127.0.0.6")
    relay = world.relay({"allow_loopback": "yes"})
    submit(relay, ["x@named.test"])
    ev = wait_event(relay, "failed", "x@named.test")
    assert "dsn=5.4.6" in ev and "loops back to myself" in ev, ev
    time.sleep(0.5)
    assert s5.snapshot()["connections"] == 0
    assert s6.snapshot()["connections"] == 0


def test_backup_mx_delivers_to_better(world):
    """The relay as a backup MX (pref 20): the pref-10 host gets it."""
    world.zone({"backup.test": {"MX": [[20, HOSTNAME], [10, "mx.backup.test"],
                                       [30, "mx3.backup.test"]]},
                HOSTNAME: {"A": ["127.0.0.7"]},
                "mx.backup.test": {"A": ["127.0.0.8"]},
                "mx3.backup.test": {"A": ["127.0.0.9"]}})
    s8 = world.server("127.0.0.8")
    relay = world.relay({"allow_loopback": "yes"})
    submit(relay, ["x@backup.test"])
    wait_event(relay, "delivered", "x@backup.test")
    assert s8.message_count() == 1


# ---------------------------------------------------------------- routes

def test_route_to_loopback_smarthost_delivers(world):
    """A route names its host: loopback (and private) smarthosts work with
    allow_loopback = no; a domain without the route is refused."""
    world.zone({"other.test": {"MX": [[10, "mx.other.test"]]},
                "mx.other.test": {"A": ["127.0.0.10"]}})
    srv = world.server("127.0.0.10")
    relay = world.relay(routes={"route routed.test": {
        "host": f"[127.0.0.10]:{world.port}"}})
    submit(relay, ["x@routed.test"])
    wait_event(relay, "delivered", "x@routed.test")
    assert srv.message_count() == 1
    submit(relay, ["x@other.test"])
    ev = wait_event(relay, "failed", "x@other.test")
    assert "is a loopback address" in ev, ev
    assert srv.snapshot()["connections"] == 1


def test_route_to_own_listener_loops(world):
    port = free_port()
    world.zone({"ok.test": {"A": ["192.0.2.1"]}})
    world.port = port
    relay = world.relay(routes={"route loop.test": {
        "host": f"[127.0.0.1]:{port}"}}, port=port, env=DEBUG)
    before = probe_connects(relay)
    submit(relay, ["x@loop.test"])
    ev = wait_event(relay, "failed", "x@loop.test")
    assert "dsn=5.4.6" in ev and "loop.test loops back to myself" in ev, ev
    time.sleep(0.5)
    no_submission_but_ours(relay, before)
