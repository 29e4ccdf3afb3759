# SPDX-License-Identifier: ISC
"""
8-bit and UTF-8 mail to peers that did not offer 8BITMIME or SMTPUTF8
(issue 16, item 2), end to end: a live `mta serve` delivers through a
loopback DNS server (dns_server.py) to recording SMTP servers
(smtp_servers.py) that advertise or withhold 8BITMIME and SMTPUTF8.

- An 8-bit message to a peer without 8BITMIME arrives converted to 7 bits
  (quoted-printable, MIME-aware): only 7-bit bytes, short lines, and every
  MIME part, parsed with Python's `email` package, decodes to the bytes
  that were sent. A peer with 8BITMIME gets the bytes unchanged.
- What cannot be converted (raw UTF-8 in a header) bounces 5.6.3; a
  UTF-8 envelope to a peer without SMTPUTF8 bounces 5.6.7. The DSNs go to
  the MX of the sender's domain, another recording server.
- After HELO, BODY=8BITMIME and SMTPUTF8 are refused 555 5.5.4.

Every destination listens on its own 127.0.0.x address: run inside a
network namespace with only loopback (`unshare -n`, as tests/run.sh does).
"""
import base64
import email
import email.policy
import random
import re
import socket

import pytest

from conftest import check_reply, free_port, queued_id, send_message, \
    strip_received
from dns_server import DNSServer
from smtp_servers import SMTPServer, wait_until

WAIT = 25.0  # seconds: the bound of every wait for an outcome
SENDER = "sender@origin.test"
ORIGIN_MX = "127.0.0.3"
DEST_MX = "127.0.0.2"
UTF8_MX = "127.0.0.5"


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
    "utf8.test": {"MX": [[10, "mx.utf8.test"]]},
    "mx.utf8.test": {"A": [UTF8_MX]},
}


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

    def start(self):
        self.relay = self.relay_factory({
            "route *": None,  # conftest's default sends everything nowhere
            "dns": {"servers": f"127.0.0.1:{self.dns.port}",
                    "timeout": "2s", "tries": "2"},
            "delivery": {"port": self.port, "workers": "2",
                         "connect_timeout": "5s"},
            "queue": {"retry": "1s"},
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


def submit(relay, msg, rcpts=("someone@dest.test",), params="BODY=8BITMIME"):
    with relay.client() as c:
        c.ehlo()
        qid = queued_id(send_message(c, msg, sender=SENDER, rcpts=rcpts,
                                     mail_params=params), c)
        c.cmd("QUIT")
    return qid


def one_message(server, relay):
    wait_until(lambda: server.message_count() >= 1, WAIT,
               f"a message at {server.name}; relay log:\n"
               + relay.stderr_text()[-3000:])
    (m,) = server.snapshot()["messages"]
    return m


def dsn_status(server, relay):
    """The one DSN that server got from <>: (envelope rcpts, per-recipient
    Status, the human-readable part unfolded: local reasons are there)."""
    wait_until(lambda: any(m["from"] == "" for m in
                           server.snapshot()["messages"]), WAIT,
               f"a DSN at {server.name}; relay log:\n"
               + relay.stderr_text()[-3000:])
    (m,) = [m for m in server.snapshot()["messages"] if m["from"] == ""]
    dsn = email.message_from_bytes(m["data"], policy=email.policy.compat32)
    assert dsn.get_content_type() == "multipart/report"
    status = dsn.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    per_rcpt = status.get_payload()[1]
    text = dsn.get_payload()[0].get_payload()
    return (m["rcpts"], per_rcpt["Status"],
            re.sub(r"\r?\n[ \t]+", " ", text))


def check_7bit_wire(m):
    """Only 7-bit bytes on the wire, CRLF lines of at most 998 octets."""
    wire = m["wire"]
    assert all(b < 128 for b in wire), "8-bit bytes on the wire"
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert max(len(l) for l in wire.split(b"\r\n")) <= 998
    assert "BODY=8BITMIME" not in m["params"].upper()


def qp_strict(enc):
    """Quoted-printable decoding that allows nothing loose: soft breaks
    go, =XX become bytes, '=' must be one of the two."""
    out = re.sub(rb"=\r\n", b"", enc)
    assert not re.search(rb"=(?![0-9A-F]{2})", out), "malformed QP"
    return re.sub(rb"=([0-9A-F]{2})", lambda x: bytes([int(x[1], 16)]), out)


def decoded(part, original):
    """Assert part (quoted-printable now) decodes to original, with the
    email package and with a strict decoder."""
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert part.get_payload(decode=True) == original
    raw = part.get_payload().encode("ascii")
    assert max(len(l) for l in raw.split(b"\r\n")) <= 76
    assert qp_strict(raw) == original


# A body that exercises the encoder: UTF-8, a lone "." (dot-stuffed on
# the wire), trailing white space, '=', a long line, "From " at a line
# start.
TEXT = ("Grüße aus Köln — naïve café\r\n.\r\n..two dots\r\n"
        "trailing space \r\ntrailing tab\t\r\nequals = sign =3D\r\n"
        "From here\r\n" + "é" * 300 + "\r\nend").encode("utf-8")


def test_plain_8bit_converted(world):
    dest = world.server(DEST_MX, eightbitmime=False)
    relay = world.start()
    msg = (b"From: <" + SENDER.encode() + b">\r\nTo: <someone@dest.test>\r\n"
           b"Subject: plain 8-bit\r\n\r\n" + TEXT + b"\r\n")
    submit(relay, msg)

    m = one_message(dest, relay)
    check_7bit_wire(m)
    assert b"\r\n..\r\n" in m["wire"], "a lone '.' must be stuffed"
    got = email.message_from_bytes(m["data"], policy=email.policy.compat32)
    assert got["MIME-Version"] == "1.0"
    assert got.get_content_type() == "text/plain"
    assert got.get_param("charset") == "utf-8"
    assert got["Subject"] == "plain 8-bit"
    decoded(got, TEXT + b"\r\n")


def multipart_message():
    """(message bytes, {name: (content type, decoded bytes)}, 7-bit part
    bytes that must arrive as they are)."""
    rnd = random.Random(16)
    blob = bytes(rnd.randrange(256) for _ in range(3000))
    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    html = ("<p>caf\xe9 \xa9 2026 \xbd</p>\r\n.\r\n<p>=</p>").encode("latin-1")
    seven = (b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
             b"plain ascii, left alone  \r\n.\r\nend")
    b = b"=_boundary 16"
    msg = (b"From: <" + SENDER.encode() + b">\r\nTo: <someone@dest.test>\r\n"
           b"Subject: multipart 8-bit\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"This is a MIME message.\r\n"
           b"--" + b + b"\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + TEXT + b"\r\n"
           b"--" + b + b"\r\n"
           b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n"
           + html + b"\r\n"
           b"--" + b + b"\r\n" + seven + b"\r\n"
           b"--" + b + b"\r\n"
           b"Content-Type: application/octet-stream; name=blob.bin\r\n"
           b"Content-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=blob.bin\r\n\r\n"
           + b64 + b"\r\n"
           b"--" + b + b"--\r\n")
    return msg, [("text/plain", TEXT), ("text/html", html),
                 ("text/plain", None), ("application/octet-stream", blob)], \
        seven


def test_multipart_converted(world):
    dest = world.server(DEST_MX, eightbitmime=False)
    relay = world.start()
    msg, parts, seven = multipart_message()
    submit(relay, msg)

    m = one_message(dest, relay)
    check_7bit_wire(m)
    assert seven in m["data"], "a 7-bit part must arrive byte for byte"
    got = email.message_from_bytes(m["data"], policy=email.policy.compat32)
    assert got.get_content_type() == "multipart/mixed"
    assert got["Content-Transfer-Encoding"] == "7bit"
    sub = got.get_payload()
    assert [p.get_content_type() for p in sub] == [t for t, _ in parts]
    decoded(sub[0], TEXT)
    decoded(sub[1], parts[1][1])
    assert sub[1].get_param("charset") == "iso-8859-1"
    assert sub[2].get_payload() == "plain ascii, left alone  \r\n.\r\nend"
    assert sub[3]["Content-Transfer-Encoding"] == "base64"
    assert sub[3].get_payload(decode=True) == parts[3][1]


def test_8bitmime_peer_gets_bytes_unchanged(world):
    dest = world.server(DEST_MX)  # offers 8BITMIME
    relay = world.start()
    msg, _, _ = multipart_message()
    submit(relay, msg)

    m = one_message(dest, relay)
    assert "BODY=8BITMIME" in m["params"].upper()
    _, rest = strip_received(m["data"])
    assert rest == msg


def test_8bit_header_bounces_563(world):
    dest = world.server(DEST_MX, eightbitmime=False)
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    msg = ("From: <" + SENDER + ">\r\nTo: <someone@dest.test>\r\n"
           "Subject: Grüße\r\n\r\nbody é\r\n").encode("utf-8")
    submit(relay, msg)

    rcpts, status, diag = dsn_status(origin, relay)
    assert rcpts == [SENDER]
    assert status == "5.6.3"
    assert "8BITMIME" in diag and "header" in diag
    # refused before MAIL: the destination saw no transaction
    assert dest.snapshot()["transactions"] == []


def test_utf8_envelope_needs_smtputf8(world):
    dest = world.server(DEST_MX)  # 8BITMIME, no SMTPUTF8
    utf8 = world.server(UTF8_MX, smtputf8=True)
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    msg = ("From: <" + SENDER + ">\r\nTo: <jürgen@dest.test>\r\n"
           "Subject: utf-8 envelope\r\n\r\nhello\r\n").encode("utf-8")
    submit(relay, msg, rcpts=["jürgen@dest.test"], params="SMTPUTF8")
    submit(relay, msg, rcpts=["jürgen@utf8.test"], params="SMTPUTF8")

    rcpts, status, diag = dsn_status(origin, relay)
    assert rcpts == [SENDER]
    assert status == "5.6.7"
    assert "SMTPUTF8" in diag
    assert dest.snapshot()["transactions"] == []
    # the peer that offers SMTPUTF8 gets it, flagged
    m = one_message(utf8, relay)
    assert m["rcpts"] == ["jürgen@utf8.test"]
    assert "SMTPUTF8" in m["params"].upper()


def test_helo_refuses_8bitmime_and_smtputf8(relay):
    with relay.client() as c:
        check_reply(c.cmd("HELO client.test"), 250)
        check_reply(c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME"), 555,
                    "5.5.4")
        check_reply(c.cmd("MAIL FROM:<a@example.org> SMTPUTF8"), 555,
                    "5.5.4")
        check_reply(c.cmd("MAIL FROM:<a@example.org>"), 250)
        check_reply(c.cmd("RSET"), 250)
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8"),
                    250)
        c.cmd("QUIT")
