# SPDX-License-Identifier: ISC
"""
Bounces, expiry and delay warnings end to end: a live `mta serve` delivers
to destination SMTP servers found through a loopback DNS server
(dns_server.py), and the DSNs it sends back go, like any other mail, to
the MX of the sender's own domain: another recording SMTP server
(smtp_servers.py). Each DSN is parsed back with Python's `email` package.

Every destination listens on its own 127.0.0.x address and the one
[delivery] port, so run inside a network namespace with only loopback
(`unshare -n`, as tests/run.sh does). Every wait is a poll with a
deadline; relays are stopped and checked for sanitizer reports at
teardown (conftest).
"""
import email
import email.policy
import re
import socket
import time

import pytest

from conftest import HOSTNAME, free_port, queued_id, send_message
from dns_server import DNSServer
from smtp_servers import SMTPServer, rcpt_table, wait_until

WAIT = 25.0  # seconds: the bound of every wait for an outcome
SENDER = "sender@origin.test"
ORIGIN_MX = "127.0.0.3"
DEST_MX = "127.0.0.2"
BOUNCER_MX = "127.0.0.4"


def _can_bind(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


if not _can_bind(DEST_MX):
    pytest.skip("127.0.0.x other than 127.0.0.1 is not usable here (run "
                "inside `unshare -n` with lo up, as tests/run.sh does)",
                allow_module_level=True)


ZONE = {
    "origin.test": {"MX": [[10, "mx.origin.test"]]},
    "mx.origin.test": {"A": [ORIGIN_MX]},
    "dest.test": {"MX": [[10, "mx.dest.test"]]},
    "mx.dest.test": {"A": [DEST_MX]},
    # a sender domain whose MX rejects everyone: where DSNs die
    "bouncer.test": {"MX": [[10, "mx.bouncer.test"]]},
    "mx.bouncer.test": {"A": [BOUNCER_MX]},
}

LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def events(relay, kind):
    out = []
    for line in relay.stderr_text().splitlines():
        if f"event={kind}" not in line:
            continue
        ev = {k: (re.sub(r'\\(.)', r'\1', v[1:-1]) if v.startswith('"')
                  else v) for k, v in LOGFMT.findall(line)}
        if ev.get("event") == kind:
            out.append(ev)
    return out


class World:
    """DNS, the destination servers and the relay of one test."""

    def __init__(self, relay_factory):
        self.relay_factory = relay_factory
        self.port = free_port()
        self.dns = DNSServer({"ttl": 300, "neg_ttl": 60, "soa": "test",
                              "records": ZONE}).start()
        self.servers = []
        self.relay = None

    def server(self, host, **kw):
        s = SMTPServer(host, self.port, name=f"mx-{host}", **kw).start()
        self.servers.append(s)
        return s

    def start(self, queue=None):
        q = {"retry": "1s"}
        q.update(queue or {})
        self.relay = self.relay_factory({
            "route *": None,  # conftest's default sends everything nowhere
            "dns": {"servers": f"127.0.0.1:{self.dns.port}",
                    "timeout": "2s", "tries": "2"},
            "delivery": {"port": self.port, "workers": "2",
                         "connect_timeout": "5s"},
            "queue": q,
        })
        return self.relay

    def close(self):
        problems = []
        if self.relay is not None:
            self.relay.stop()
        for s in self.servers:
            s.stop()
            problems += [f"{s.name}: {e}" for e in s.errors]
        self.dns.stop()
        return problems


@pytest.fixture
def world(relay_factory):
    w = World(relay_factory)
    yield w
    problems = w.close()
    assert not problems, "test server errors:\n" + "\n".join(problems)


def message(subject):
    hdrs = [f"From: <{SENDER}>", "To: <someone@dest.test>",
            f"Subject: {subject}",
            f"Message-ID: <{time.time_ns()}@client.test>"]
    head = "\r\n".join(hdrs) + "\r\n"
    return head.encode(), (head + "\r\nthe body\r\n").encode()


def submit(relay, rcpts, msg, sender=SENDER):
    with relay.client() as c:
        c.ehlo()
        qid = queued_id(send_message(c, msg, sender=sender, rcpts=rcpts), c)
        c.cmd("QUIT")
    return qid


def dsns(server):
    """Every message server got from <>, parsed."""
    return [(m, email.message_from_bytes(m["data"],
                                         policy=email.policy.compat32))
            for m in server.snapshot()["messages"] if m["from"] == ""]


def wait_dsns(server, n, relay):
    return wait_until(lambda: len(dsns(server)) >= n and dsns(server), WAIT,
                      f"{n} DSN(s) at {server.name}; relay log:\n"
                      + relay.stderr_text()[-3000:])


def report(msg):
    """The parts of a DSN, checked for RFC 3464/6522 shape:
    (text, per-message fields, [per-recipient fields], headers bytes)."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["From"] == f"Mail Delivery System <MAILER-DAEMON@{HOSTNAME}>"
    assert msg["To"] == f"<{SENDER}>" or msg["To"].startswith("<")
    assert msg["Date"] and msg["Message-ID"] and msg["Subject"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    blocks = parts[1].get_payload()
    per_msg, per_rcpt = blocks[0], blocks[1:]
    assert per_msg["Reporting-MTA"] == f"dns; {HOSTNAME}"
    assert per_msg["Arrival-Date"]
    return (parts[0].get_payload(), per_msg, per_rcpt,
            parts[2].get_payload().encode())


def unfold(v):
    return re.sub(r"\r?\n[ \t]", " ", v)


def check_raw(data):
    """CRLF only, no line over 998 octets."""
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in a DSN"
    assert b"\r" not in data.replace(b"\r\n", b""), "bare CR in a DSN"
    assert max(len(l) for l in data.split(b"\r\n")) <= 998


# ---------------------------------------------------------------- tests

def test_permanent_failure_one_dsn(world):
    dest = world.server(DEST_MX, rcpt=rcpt_table(
        {"nobody@dest.test": "550 5.1.1 <nobody@dest.test>: no such user"}))
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    head, msg = message("bounce me")
    qid = submit(relay, ["nobody@dest.test"], msg)

    (rec, dsn), = wait_dsns(origin, 1, relay)
    # the DSN's envelope: from <> to the original sender only
    assert rec["from"] == "" and rec["rcpts"] == [SENDER]
    check_raw(rec["data"])
    text, per_msg, (r,), headers = report(dsn)
    assert dsn["To"] == f"<{SENDER}>"
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert unfold(r["Final-Recipient"]) == "rfc822; nobody@dest.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert unfold(r["Diagnostic-Code"]) == (
        "smtp; 550 5.1.1 <nobody@dest.test>: no such user")
    assert r["Remote-MTA"] == "dns; mx.dest.test"
    assert r["Last-Attempt-Date"]
    assert per_msg["X-Mta-Queue-ID"] == qid
    # the headers part: our Received header, then the submitted headers
    assert headers.startswith(b"Received: ")
    assert headers.endswith(head), headers
    assert b"the body" not in rec["data"]
    assert "nobody@dest.test" in text and "550 5.1.1" in text
    # the original is gone; the DSN was delivered and is gone too
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    ev = events(relay, "bounced")
    assert len(ev) == 1 and ev[0]["id"] == qid and ev[0]["rcpts"] == "1"
    assert re.fullmatch(r"[0-9a-f]{16}", ev[0]["dsn_id"])
    assert ev[0]["dsn_id"] != qid
    # and nothing more comes: exactly one DSN, one delivery attempt
    time.sleep(2.5)
    assert len(dsns(origin)) == 1
    assert len(dest.snapshot()["transactions"]) == 1


def test_two_rcpts_one_dsn(world):
    world.server(DEST_MX, rcpt=rcpt_table(
        {"a@dest.test": "550 5.1.1 no such user a",
         "b@dest.test": "552 5.2.2 mailbox full"}))
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("two failures")
    qid = submit(relay, ["a@dest.test", "b@dest.test"], msg)

    (rec, dsn), = wait_dsns(origin, 1, relay)
    _, _, rcpts, _ = report(dsn)
    got = {unfold(r["Final-Recipient"]): (r["Action"], r["Status"],
                                          unfold(r["Diagnostic-Code"]))
           for r in rcpts}
    assert got == {
        "rfc822; a@dest.test": ("failed", "5.1.1",
                                "smtp; 550 5.1.1 no such user a"),
        "rfc822; b@dest.test": ("failed", "5.2.2",
                                "smtp; 552 5.2.2 mailbox full"),
    }
    wait_until(lambda: events(relay, "bounced"), WAIT, "event=bounced")
    time.sleep(2)
    assert len(dsns(origin)) == 1
    ev = events(relay, "bounced")
    assert len(ev) == 1 and ev[0]["id"] == qid and ev[0]["rcpts"] == "2"


def test_no_bounce_of_a_bounce(world):
    world.server(DEST_MX, rcpt=rcpt_table({}, default="550 5.1.1 no such user"))
    bouncer = world.server(BOUNCER_MX, rcpt=rcpt_table(
        {}, default="550 5.7.1 we take nothing"))
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("loop bait")
    qid = submit(relay, ["nobody@dest.test"], msg,
                 sender="sender@bouncer.test")

    # the DSN goes to bouncer.test, is refused there, and dies
    ev = wait_until(lambda: events(relay, "bounce-suppressed"), WAIT,
                    "event=bounce-suppressed; log:\n"
                    + relay.stderr_text()[-3000:])
    bounced = events(relay, "bounced")
    assert len(bounced) == 1 and bounced[0]["id"] == qid
    assert ev[0]["id"] == bounced[0]["dsn_id"]
    assert ev[0]["reason"] == "null-sender"
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    time.sleep(2.5)
    txns = bouncer.snapshot()["transactions"]
    assert [(t["from"], [a for a, _ in t["rcpts"]]) for t in txns] == [
        ("", ["sender@bouncer.test"])]
    assert len(events(relay, "bounced")) == 1
    assert len(events(relay, "bounce-suppressed")) == 1
    assert origin.snapshot()["transactions"] == []


def test_null_sender_never_bounces(world):
    world.server(DEST_MX, rcpt=rcpt_table({}, default="550 5.1.1 no such user"))
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("from <>")
    qid = submit(relay, ["nobody@dest.test"], msg, sender="")
    ev = wait_until(lambda: events(relay, "bounce-suppressed"), WAIT,
                    "event=bounce-suppressed")
    assert ev[0]["id"] == qid and ev[0]["reason"] == "null-sender"
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    assert events(relay, "bounced") == []
    assert origin.snapshot()["transactions"] == []


def test_expiry_bounces_with_4_4_7(world):
    world.server(DEST_MX, rcpt=rcpt_table(
        {}, default="451 4.7.1 greylisted, try later"))
    origin = world.server(ORIGIN_MX)
    relay = world.start(queue={"max_age": "3s"})
    _, msg = message("expire me")
    t0 = time.monotonic()
    qid = submit(relay, ["slow@dest.test"], msg)

    (rec, dsn), = wait_dsns(origin, 1, relay)
    assert time.monotonic() - t0 >= 2.5, "bounced before max_age"
    check_raw(rec["data"])
    _, _, (r,), _ = report(dsn)
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert unfold(r["Final-Recipient"]) == "rfc822; slow@dest.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "4.4.7"
    assert unfold(r["Diagnostic-Code"]) == (
        "smtp; 451 4.7.1 greylisted, try later")
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    ev = events(relay, "bounced")
    assert len(ev) == 1 and ev[0]["id"] == qid
    assert len(events(relay, "expired")) == 1
    time.sleep(1.5)
    assert len(dsns(origin)) == 1


def test_delay_warning_once_then_delivered(world):
    # deferred for the first 6 attempts (about 5 s at retry = 1s), then
    # accepted; the warning is due after 2 s
    dest = world.server(DEST_MX, rcpt=rcpt_table(
        {"late@dest.test": ["451 4.7.1 not now"] * 6 + ["250 2.1.5 Ok"]}))
    origin = world.server(ORIGIN_MX)
    relay = world.start(queue={"delay_warning": "2s", "max_age": "1h"})
    _, msg = message("warn me")
    qid = submit(relay, ["late@dest.test"], msg)

    (rec, dsn), = wait_dsns(origin, 1, relay)
    check_raw(rec["data"])
    assert rec["from"] == "" and rec["rcpts"] == [SENDER]
    _, _, (r,), _ = report(dsn)
    assert dsn["Subject"] == "Delayed Mail (still being retried)"
    assert unfold(r["Final-Recipient"]) == "rfc822; late@dest.test"
    assert r["Action"] == "delayed"
    assert r["Status"] == "4.7.1"
    assert unfold(r["Diagnostic-Code"]) == "smtp; 451 4.7.1 not now"
    assert r["Will-Retry-Until"]
    ev = events(relay, "delay-warned")
    assert len(ev) == 1 and ev[0]["id"] == qid

    # the flag is on disk: a restart does not warn again
    relay.restart()
    wait_until(lambda: any(b"warn me" in m["data"]
                           for m in dest.snapshot()["messages"]),
               WAIT, "the delivery after the deferrals")
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    time.sleep(1.5)
    assert len(dsns(origin)) == 1
    assert events(relay, "delay-warned") == []  # this run's log
    assert events(relay, "bounced") == []


def test_operator_bounce_of_a_message_in_delivery_is_refused(world):
    """`mta queue bounce` of a message whose delivery is under way is
    refused ("being delivered now"): its DSN would call failed the
    recipient that delivery is about to deliver. The delivery finishes,
    the message leaves the queue, and no DSN is ever sent."""
    origin = world.server(ORIGIN_MX)
    dest = world.server(DEST_MX, delay={"dot": 3})
    relay = world.start()
    _, msg = message("bounced while in delivery")
    qid = submit(relay, ["someone@dest.test"], msg)
    wait_until(lambda: dest.snapshot()["messages"], WAIT,
               "the body at the destination (its 250 held back)")
    p = relay.mta("queue", "bounce", qid, check=False)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode != 0, out
    assert f"{qid}: being delivered now; try again" in out, out
    wait_until(lambda: not relay.queue_list(), WAIT, "the message delivered")
    assert re.search(rf"event=operator action=bounce id={qid} error=",
                     relay.stderr_text())
    time.sleep(2)  # a DSN would be on its way by now
    assert dsns(origin) == []
    assert len(dest.snapshot()["messages"]) == 1
