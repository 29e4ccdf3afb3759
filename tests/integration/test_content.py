"""Message content on the receive side, end to end (issue 15 items 2 and 5,
issue 16 item 3): bare line ends (`[server] bare_newline`), SMTP
smuggling, NUL in content (`[server] nul_in_body`) and CHUNKING (BDAT,
RFC 3030).

A live `mta serve` is driven over real sockets; where delivery matters, it
relays to a recording server in this file that keeps the exact bytes of
each DATA on the wire, so "only CRLF line ends at the destination" and
"dot-stuffed on the way out" are checked on what a next hop really sees.
"""
import base64
import email
import email.policy
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (HOSTNAME, LOOPBACK, SMTPClient, check_reply, free_port,
                      queued_id, strip_received)

WAIT = 30.0
SENDER = "sender@example.org"
REMOTE = "rcpt@remote.example"
USER, PASSWORD = "app", "tutorial pw 1"


# ---------------------------------------------------------------- helpers

class Recorder:
    """A minimal next hop on 127.0.0.1 that records each message as the
    exact bytes between its 354 and the CRLF.CRLF that ended it (still
    dot-stuffed, line ends as sent)."""

    def __init__(self):
        self.port = free_port()
        self.messages = []
        self.errors = []
        self._lock = threading.Lock()
        self._ls = socket.socket()
        self._ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._ls.bind((LOOPBACK, self.port))
        self._ls.listen(16)
        self._ls.settimeout(0.2)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                s, _ = self._ls.accept()
            except OSError:
                continue
            threading.Thread(target=self._session, args=(s,),
                             daemon=True).start()

    def _session(self, s):
        s.settimeout(WAIT)
        buf = b""

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise EOFError
                buf += d
            l, buf = buf.split(b"\r\n", 1)
            return l

        try:
            s.sendall(b"220 rec.test ESMTP\r\n")
            while True:
                l = line()
                verb = l[:4].upper()
                if verb == b"EHLO":
                    s.sendall(b"250-rec.test\r\n250-PIPELINING\r\n"
                              b"250 8BITMIME\r\n")
                elif verb == b"DATA":
                    s.sendall(b"354 go\r\n")
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        d = s.recv(65536)
                        if not d:
                            raise EOFError
                        buf += d
                    i = (b"\r\n" + buf).index(b"\r\n.\r\n")
                    data, buf = buf[:i], buf[i + 3:]
                    with self._lock:
                        self.messages.append(data)
                    s.sendall(b"250 2.0.0 recorded\r\n")
                elif verb == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    return
                else:
                    s.sendall(b"250 ok\r\n")
        except (EOFError, OSError) as ex:
            if not isinstance(ex, EOFError):
                self.errors.append(repr(ex))
        finally:
            s.close()

    def wait(self, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {n} messages "
                             f"delivered within {timeout}s")

    def close(self):
        self._stop.set()
        self._t.join(5)
        self._ls.close()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def route_to(rec, server=None):
    """Overrides: deliver everything to the recorder, retry fast."""
    return {
        "route *": {"host": f"[{LOOPBACK}]:{rec.port}", "tls": "none"},
        "delivery": {"port": str(rec.port), "workers": "1",
                     "connect_timeout": "5s"},
        "queue": {"retry": "1s"},
        "server": dict(server or {}),
    }


def unstuff(wire):
    """DATA wire bytes (without the final CRLF.CRLF's last ".CRLF") ->
    the message, and check every line end on the way."""
    assert b"\n" not in wire.replace(b"\r\n", b""), "bare LF on the wire"
    assert b"\r" not in wire.replace(b"\r\n", b""), "bare CR on the wire"
    lines = wire.split(b"\r\n")
    assert lines[-1] == b"", "message does not end in CRLF"
    out = []
    for l in lines[:-1]:
        assert l != b".", "an unstuffed '.' line on the wire"
        out.append(l[1:] if l.startswith(b".") else l)
    return b"\r\n".join(out) + b"\r\n"


def qcount(relay):
    return len(relay.queue_list())


def transaction(c, payload, mail=f"MAIL FROM:<{SENDER}>"):
    """MAIL, RCPT, DATA, then payload as is (it carries its own end)."""
    c.send(f"{mail}\r\nRCPT TO:<{REMOTE}>\r\nDATA\r\n".encode())
    assert [r.code for r in c.read_replies(3)] == [250, 250, 354]
    c.send(payload)
    return c.read_reply()


# ------------------------------------------------ the hand-written client

MIME_PARTS = {
    "text/plain": "Hello,\nthis is the text part.\n.\nA line with only a dot above.\n",
    "text/html": "<html><body>\n<p>Hello</p>\n</body></html>\n",
    "application/octet-stream": None,  # base64 of BLOB
}
BLOB = bytes(range(256)) * 4


def tutorial_body(boundary="b0und4ry"):
    """What the tutorial's client writes: a multipart message whose every
    line ends in a bare LF."""
    b64 = base64.encodebytes(BLOB).decode()
    return (
        f"From: App <{SENDER}>\n"
        f"To: <{REMOTE}>\n"
        "Subject: tutorial client\n"
        "MIME-Version: 1.0\n"
        f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        f"{MIME_PARTS['text/plain']}"
        f"--{boundary}\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        f"{MIME_PARTS['text/html']}"
        f"--{boundary}\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{b64}"
        f"--{boundary}--\n").encode()


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    d = tmp_path_factory.mktemp("content-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=PASSWORD.encode(), check=True,
                       capture_output=True, timeout=60).stdout
    users = d / "users"
    users.write_text(f"{USER}:{h.decode().strip()}\n")
    return {"cert": str(cert), "key": str(key), "users": str(users)}


def test_tutorial_client_bare_lf_mime(relay_factory, recorder, creds):
    """Raw socket over implicit TLS: HELO, AUTH LOGIN answered to the 334
    prompts, `MAIL FROM: <a>` with a space, a multipart body with bare LF
    line ends, then CRLF.CRLF. Delivered with every MIME part intact and
    only CRLF line ends at the destination."""
    tls_port = free_port()
    ov = route_to(recorder, {"listen_tls": f"{LOOPBACK}:{tls_port}",
                             "relay_networks": "192.0.2.0/24"})
    ov["tls"] = {"certificate": creds["cert"], "private_key": creds["key"]}
    ov["auth"] = {"users": creds["users"], "require_tls": "yes"}
    relay = relay_factory(ov)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((LOOPBACK, tls_port), timeout=20)
    s = ctx.wrap_socket(raw)
    f = s.makefile("rb")

    def reply():
        line = f.readline()
        assert line.endswith(b"\r\n"), line
        return int(line[:3]), line

    def send(data):
        s.sendall(data if isinstance(data, bytes) else data.encode())

    try:
        assert reply()[0] == 220
        send("HELO tutorial.client\r\n")
        assert reply()[0] == 250
        send("AUTH LOGIN\r\n")
        code, line = reply()
        assert code == 334 and base64.b64decode(line[4:].strip()) == b"Username:"
        send(base64.b64encode(USER.encode()) + b"\r\n")
        code, line = reply()
        assert code == 334 and base64.b64decode(line[4:].strip()) == b"Password:"
        send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
        assert reply()[0] == 235
        send(f"MAIL FROM: <{SENDER}>\r\n")
        code, line = reply()
        assert code == 250, f"MAIL FROM: <a> with a space refused: {line}"
        send(f"RCPT TO: <{REMOTE}>\r\n")
        assert reply()[0] == 250
        send("DATA\r\n")
        assert reply()[0] == 354
        body = tutorial_body()
        send(body + b"\r\n.\r\n")
        code, line = reply()
        assert code == 250 and b"queued as" in line, line
        send("QUIT\r\n")
        assert reply()[0] == 221
    finally:
        s.close()

    wire = recorder.wait(1)[0]
    msg = unstuff(wire)
    # What the client meant, with CRLF line ends, then the empty line its
    # "\n" before CRLF.CRLF makes.
    want = body.replace(b"\n", b"\r\n") + b"\r\n"
    assert msg.endswith(want), msg[-300:]
    parsed = email.message_from_bytes(strip_received(msg)[1],
                                      policy=email.policy.default)
    assert parsed.is_multipart()
    parts = {p.get_content_type(): p for p in parsed.iter_parts()}
    assert set(parts) == set(MIME_PARTS)
    for ctype, text in MIME_PARTS.items():
        got = parts[ctype].get_content()
        if text is None:
            assert got == BLOB
        else:  # the line end before a boundary belongs to the boundary
            assert got.replace("\r\n", "\n") == text[:-1]
    assert not recorder.errors, recorder.errors


# ------------------------------------------------------------ smuggling

SMUGGLE = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n",
           b"\n.\r", b"\r.\n", b"\r\n.\r", b"\r\n\x00.\r\n"]
SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\n"
            b"RCPT TO:<victim@example.com>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n")


def test_smuggling_one_message_each(relay_factory, recorder):
    """bare_newline = normalize (the default): each fake end of data is
    content; exactly one message per transaction is queued and delivered,
    holding the smuggled commands as text and the fake end as a "." line,
    which goes out dot-stuffed. (The NUL variant is stripped here.)"""
    relay = relay_factory(route_to(recorder, {"nul_in_body": "strip"}))
    with relay.client() as c:
        c.ehlo()
        for fake in SMUGGLE:
            r = transaction(c, b"Subject: one\r\n\r\nhello" + fake
                            + SMUGGLED + b".\r\n")
            queued_id(r, c)
        c.send(b"QUIT\r\n")
        assert [r.code for r in c.drain(timeout=2)] == [221]
    got = recorder.wait(len(SMUGGLE))
    time.sleep(0.5)
    assert len(recorder.messages) == len(SMUGGLE), "a smuggled message"
    for wire in got:
        assert b"\r\n..\r\n" in wire, wire  # the fake end, stuffed
        msg = strip_received(unstuff(wire))[1]
        assert msg == (b"Subject: one\r\n\r\nhello\r\n.\r\n" + SMUGGLED), msg


def test_reject_mode_still_550(relay_factory):
    relay = relay_factory({"server": {"bare_newline": "reject"}})
    with relay.client() as c:
        c.ehlo()
        r = transaction(c, b"Subject: x\r\n\r\na\nb\r\n.\r\n")
        check_reply(r, 550, "5.5.2", None, c)
        r = transaction(c, b"Subject: x\r\n\r\nhello\n.\n" + SMUGGLED
                        + b".\r\n")
        check_reply(r, 550, "5.5.2", None, c)
        c.send(b"NOOP\n")
        c.expect(500, "5.5.2")
        assert c.cmd("NOOP").code == 250
    assert qcount(relay) == 0


def test_bare_lf_stored_as_crlf(relay):
    """The queue holds normalised bytes, and its size counts them."""
    with relay.client() as c:
        c.ehlo()
        r = transaction(c, b"Subject: lf\n\nl1\nl2\rl3\r\n.\r\n")
        qid = queued_id(r, c)
    hdr, msg = strip_received(relay.queue_raw(qid))
    assert msg == b"Subject: lf\r\n\r\nl1\r\nl2\r\nl3\r\n"
    rows = relay.queue_list()
    assert rows[0]["size"] == len(hdr) + len(msg), rows


# ------------------------------------------------------------------ NUL

def test_nul_refused_554(relay):
    with relay.client() as c:
        c.ehlo()
        r = transaction(c, b"Subject: nul\r\n\r\nhello\r\n\x00.\r\n"
                        + SMUGGLED + b".\r\n")
        check_reply(r, 554, "5.6.0", None, c)
        assert c.cmd("NOOP").code == 250
        r = transaction(c, b"Subject: ok\r\n\r\nfine\r\n.\r\n")
        queued_id(r, c)
    assert qcount(relay) == 1


def test_nul_stripped(relay_factory):
    relay = relay_factory({"server": {"nul_in_body": "strip"}})
    with relay.client() as c:
        c.ehlo()
        r = transaction(c, b"Subject: n\x00ul\r\n\r\nhe\x00llo\r\n\x00\r\n.\r\n")
        qid = queued_id(r, c)
    raw = relay.queue_raw(qid)
    assert b"\x00" not in raw
    assert strip_received(raw)[1] == b"Subject: nul\r\n\r\nhello\r\n\r\n"


# ------------------------------------------------------------- CHUNKING

def ehlo_keywords(c):
    r = c.ehlo()
    return {l.split()[0].upper() for l in r.lines[1:] if l}


def test_bdat_pipelined_chunks(relay):
    with relay.client() as c:
        kw = ehlo_keywords(c)
        assert "CHUNKING" in kw and "BINARYMIME" not in kw, kw
        chunks = [b"Subject: bdat\r\n\r\n", b"line one\r\n.dot\r\n",
                  b"\r\nlast line\r"]
        wire = (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE}>\r\n").encode()
        for i, ch in enumerate(chunks):
            last = " LAST" if i == len(chunks) - 1 else ""
            wire += f"BDAT {len(ch)}{last}\r\n".encode() + ch
        c.send(wire)  # one write: the whole transaction, pipelined
        rs = c.read_replies(2 + len(chunks))
        assert [r.code for r in rs] == [250] * (2 + len(chunks)), rs
        for r, ch in zip(rs[2:-1], chunks):
            assert r.text == f"2.0.0 Ok: {len(ch)} octets received", r
        qid = queued_id(rs[-1], c)
        # BDAT 0 LAST: an empty message; then DATA works again.
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE}>\r\n"
               "BDAT 0 LAST\r\n".encode())
        rs = c.read_replies(3)
        qid0 = queued_id(rs[-1], c)
        queued_id(transaction(c, b"Subject: d\r\n\r\nx\r\n.\r\n"), c)
    assert strip_received(relay.queue_raw(qid))[1] == (
        b"Subject: bdat\r\n\r\nline one\r\n.dot\r\n\r\nlast line\r\n")
    assert strip_received(relay.queue_raw(qid0))[1] == b""
    assert qcount(relay) == 3


def test_bdat_and_data_store_the_same(relay_factory):
    relay = relay_factory({"server": {"nul_in_body": "strip"}})
    msg = b"Subject: same\nX: y\r\n\r\na\nb\rc\r\n.\r\n\x00d\r\n"
    data = msg.replace(b"\r\n.\r\n", b"\r\n..\r\n") + b".\r\n"
    with relay.client() as c:
        c.ehlo()
        q1 = queued_id(transaction(c, data), c)
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE}>\r\n".encode()
               + b"BDAT 7\r\n" + msg[:7] + f"BDAT {len(msg) - 7} LAST\r\n"
               .encode() + msg[7:])
        q2 = queued_id(c.read_replies(4)[-1], c)
    m1 = strip_received(relay.queue_raw(q1))[1]
    m2 = strip_received(relay.queue_raw(q2))[1]
    assert m1 == m2 == (b"Subject: same\r\nX: y\r\n\r\na\r\nb\r\nc\r\n.\r\n"
                        b"d\r\n")


def test_bdat_refusals_stay_in_step(relay_factory):
    """RFC 3030 replies; every refused chunk is still read to its end, so
    its bytes never run as commands."""
    relay = relay_factory({"server": {"max_message_size": "1K",
                                      "max_inflight": "1M"}})
    with relay.client() as c:
        c.send(b"BDAT 6\r\nQUIT\r\n")
        c.expect(503, "5.5.1")
        c.ehlo()
        c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
        c.expect(503, "5.5.1")
        c.send(f"MAIL FROM:<{SENDER}>\r\nBDAT 6\r\nQUIT\r\n".encode())
        assert [r.code for r in c.read_replies(2)] == [250, 503]
        c.send(f"RCPT TO:<{REMOTE}>\r\nBDAT 3\r\nab\nDATA\r\n".encode())
        rs = c.read_replies(3)
        assert [r.code for r in rs] == [250, 250, 503], rs
        assert c.cmd("RSET").code == 250
        # Over the size limit: 552 at that chunk, the next chunk 503.
        big = (b"x" * 98 + b"\r\n") * 11
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE}>\r\n".encode()
               + f"BDAT {len(big)}\r\n".encode() + big
               + b"BDAT 6 LAST\r\nQUIT\r\n")
        rs = c.read_replies(4)
        assert [(r.code, r.enh) for r in rs] == [
            (250, "2.1.0"), (250, "2.1.5"), (552, "5.3.4"), (503, "5.5.1")], rs
        # At the limit: taken.
        ok = (b"x" * 98 + b"\r\n") * 10 + b"y" * 22 + b"\r\n"
        assert len(ok) == 1024
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE}>\r\n".encode()
               + f"BDAT {len(ok)} LAST\r\n".encode() + ok)
        queued_id(c.read_replies(3)[-1], c)
        # DATA after a finished DATA transaction is fine; BDAT without
        # a transaction is 503.
        c.send(b"BDAT 2 LAST\r\n\r\n")
        c.expect(503, "5.5.1")
        c.send(b"BDAT nope\r\n")
        c.expect(501, "5.5.4")
        c.expect_closed()
    assert qcount(relay) == 1


def _swaks_has_bdat():
    if shutil.which("swaks") is None:
        return False
    p = subprocess.run(["swaks", "--help"], capture_output=True, text=True,
                       timeout=60)
    return re.search(r"--?bdat|chunking", p.stdout + p.stderr, re.I) is not None


@pytest.mark.skipif(not _swaks_has_bdat(),
                    reason="this swaks has no BDAT support (added after "
                           "20201014.0); BDAT is driven raw above")
def test_swaks_bdat(relay):
    p = subprocess.run(["swaks", "--server", LOOPBACK, "--port",
                        str(relay.port), "--from", SENDER, "--to", REMOTE,
                        "--bdat", "--body", "swaks bdat body"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert qcount(relay) == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined",
                                                          "lockstep"])
def test_mta_load_bdat(relay, pipelining):
    """mta-load --bdat sends every message as one BDAT n LAST (pipelined:
    larger than the load tool's output buffer, so sent in pieces); each is
    queued."""
    import json
    import os
    load = os.path.join(os.environ.get("MTA_BUILD") or "build", "mta-load")
    args = [load, "--server", f"{LOOPBACK}:{relay.port}", "--json",
            "--quiet", "--messages", "40", "--connections", "4", "--rcpts",
            "2", "--size", "300000" if pipelining else "3000", "--bdat"]
    if not pipelining:
        args.append("--no-pipelining")
    p = subprocess.run(args, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    rep = json.loads(p.stdout)
    assert rep["accepted"] == 40 and rep["errors"] == 0, rep
    rows = relay.queue_list()
    assert len(rows) == 40
    msg = strip_received(relay.queue_raw(rows[0]["id"]))[1]
    assert b"\r\n\r\n" in msg and msg.endswith(b"\r\n")
    assert b"\n" not in msg.replace(b"\r\n", b"")
