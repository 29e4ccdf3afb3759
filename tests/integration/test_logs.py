"""
Logs that parse (issue 14 item 3): every line the relay writes during a
busy run is `ts=... event=NAME` followed by key=value fields only (a
strict parser below, stricter than the ones other tests use to find
their events); outcome lines carry the TLS of the delivery session; with
`[log] syslog = yes` the same lines go to a unix datagram socket as
RFC 3164 messages, facility mail, ident mta.
"""
import re
import socket
import threading

import pytest

from conftest import make_cert, queued_id, send_message
from smtp_servers import SMTPServer, rcpt_table, wait_until

WAIT = 25.0

# One line: the stamp, the event, then key=value fields; a value is a
# bare token without spaces or quotes, or a quoted string with \" \\ and
# \xHH escapes only.
LINE = re.compile(r'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z'
                  r' event=[a-z0-9][a-z0-9_-]*'
                  r'( [a-z][a-z0-9_]*=("([^"\\\x00-\x1f]|\\["\\]|\\x[0-9a-f]{2})*"'
                  r'|[^\s"]*))*')
FIELD = re.compile(r'([a-z][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
SYSLOG = re.compile(r'<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d '
                    r'mta\[(\d+)\]: (event=.*)')


def strict_parse(line):
    """{key: value} of one log line, or AssertionError saying why not."""
    assert LINE.fullmatch(line), f"log line does not parse: {line!r}"
    out = {}
    for k, v in FIELD.findall(line):
        assert k not in out, f"field {k} twice: {line!r}"
        if v.startswith('"'):
            v = re.sub(r'\\(x[0-9a-f]{2}|.)',
                       lambda m: chr(int(m.group(1)[1:], 16))
                       if len(m.group(1)) == 3 else m.group(1), v[1:-1])
        out[k] = v
    return out


def test_strict_parser_rejects_what_it_must():
    """The parser the test relies on must be able to fail."""
    good = 'ts=2026-01-01T00:00:00.000Z event=x a=1 b="c d \\" e"'
    assert strict_parse(good)["b"] == 'c d " e'
    for bad in ['ts=2026-01-01T00:00:00.000Z level=warn msg="x"',
                'ts=2026-01-01T00:00:00.000Z event=x a=1 (prose)',
                'ts=2026-01-01T00:00:00.000Z event=x a="open',
                '0123456789abcdef event=x',
                'ts=2026-01-01T00:00:00.000Z event=x a=1 a=2']:
        with pytest.raises(AssertionError):
            strict_parse(bad)


class SyslogSocket:
    """A unix datagram socket standing in for /dev/log; a thread keeps
    it drained (the kernel queues only a few datagrams)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.got = []
        self.stop_ = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_:
            try:
                self.got.append(self.sock.recv(65536).decode())
            except socket.timeout:
                continue

    def close(self):
        self.stop_ = True
        self.t.join(5)
        self.sock.close()


def lines_of(relay):
    """Every line of the relay's one run, so far."""
    return relay.stderr_text().splitlines()


def submit(relay, rcpts, n, tls=False):
    with relay.client() as c:
        c.ehlo()
        if tls:
            assert c.cmd("STARTTLS").code == 220
            c.starttls()
            c.ehlo()
        for i in range(n):
            msg = (f"From: <s@origin.test>\r\nSubject: log test {i}\r\n\r\n"
                   f"body {i}\r\n").encode()
            queued_id(send_message(c, msg, sender="s@origin.test",
                                   rcpts=rcpts), c)
        c.cmd("QUIT")


def busy_run(tmp_path, relay_factory, syslog):
    """A relay that receives over plain and STARTTLS sessions, refuses
    an HTTP client, delivers over STARTTLS to a server that takes some
    recipients, defers one and refuses one. Returns (relay, server)."""
    cert, key = make_cert(tmp_path / "certs")
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    dport = port.getsockname()[1]
    port.close()
    srv = SMTPServer("127.0.0.1", dport, tls_cert=(cert, key),
                     rcpt=rcpt_table({"later@dest.test": "451 4.2.0 later",
                                      "never@dest.test": "550 5.1.1 no"}))
    srv.start()
    relay = relay_factory({
        "route *": {"host": f"[127.0.0.1]:{dport}", "tls": "may"},
        "tls": {"certificate": cert, "private_key": key},
        "queue": {"retry": "1s"},
        "log": {"syslog": "yes", "syslog_socket": syslog.path},
    }, env={"MTA_DEBUG": "1"})
    good = ["a@dest.test", "b@dest.test"]
    submit(relay, good + ["later@dest.test", "never@dest.test"], 5)
    submit(relay, good, 5, tls=True)
    with relay.client() as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        c.drain()
    wait_until(lambda: sum(' event=delivered ' in l for l in lines_of(relay))
               >= 20 and 'event=failed' in relay.stderr_text()
               and 'event=deferred' in relay.stderr_text(), WAIT,
               "20 deliveries, a deferral and a failure:\n"
               + relay.stderr_text()[-8000:])
    return relay, srv


@pytest.fixture
def syslog(tmp_path):
    s = SyslogSocket(tmp_path / "log.sock")
    yield s
    s.close()


def test_every_line_parses_and_outcomes_say_tls(tmp_path, relay_factory,
                                                syslog):
    relay, srv = busy_run(tmp_path, relay_factory, syslog)
    try:
        relay.stop()
    finally:
        srv.stop()
    events = {}
    for line in lines_of(relay):
        e = strict_parse(line)
        events.setdefault(e["event"], []).append(e)
    for name in ("started", "connect", "queued", "tls", "delivered",
                 "deferred", "failed", "rejected", "disconnect", "stopped"):
        assert name in events, f"no event={name} in {sorted(events)}"
    for e in events["delivered"] + events["deferred"] + events["failed"]:
        assert re.fullmatch(r"TLSv1\.[23]", e.get("tls", "")), e
        assert e.get("cipher"), e
        # a self-signed certificate: encrypted, not verified
        assert e.get("verified") == "no", e
    assert any(e["reason"] == "http_command" for e in events["rejected"])


def test_syslog_gets_every_line_at_mail_priority(tmp_path, relay_factory,
                                                 syslog):
    relay, srv = busy_run(tmp_path, relay_factory, syslog)
    pid = relay.proc.pid
    try:
        relay.stop()
    finally:
        srv.stop()
    wait_until(lambda: any("event=stopped" in d for d in syslog.got), 5,
               "event=stopped at the syslog socket")
    seen = {}
    for d in syslog.got:
        m = SYSLOG.fullmatch(d)
        assert m, f"not a syslog message: {d!r}"
        assert int(m.group(2)) == pid
        e = strict_parse("ts=2026-01-01T00:00:00.000Z " + m.group(3))
        pri = int(m.group(1))
        assert pri >> 3 == 2, f"facility is not mail: {d!r}"
        seen.setdefault(e["event"], set()).add(pri)
    # events at info (mail.info = 2 * 8 + 6)
    for name in ("started", "queued", "delivered", "stopped"):
        assert seen.get(name) == {22}, (name, seen)


def test_syslog_off_by_default(tmp_path, relay_factory, syslog):
    """Without `syslog = yes` nothing reaches the socket, even with
    syslog_socket set."""
    relay = relay_factory({"log": {"syslog_socket": syslog.path}})
    with relay.client() as c:
        c.ehlo()
        c.cmd("QUIT")
    relay.stop()
    assert syslog.got == []
