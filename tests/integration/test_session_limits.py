# SPDX-License-Identifier: ISC
"""Hostile clients at the receive side (issue 16, items 4 and 7): request
deadlines ([server] command_timeout, min_data_rate) that a trickling
client cannot stretch, the greeting pause and early talkers
([server] greet_pause), HTTP spoken to the SMTP port, an over-long AUTH
line, and the HELO name as it goes into Received:.

Timeouts are seconds here so that the file stays fast. Every test of a
new limit fails on a relay without it (checked against the tree before
the change); the others (pieces of a line, a steady DATA, HTTP words
inside SMTP commands) show the limits leave honest clients alone."""
import email
import email.policy
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (BUILD, HOSTNAME, LOOPBACK, SMTPClient, add_user,
                      check_reply, dot_stuff, free_port, make_cert,
                      make_message, queued_id, raise_nofile, send_message,
                      strip_received)

LOAD = os.path.join(BUILD, "mta-load")

# command_timeout 2s: a line must be whole 2 s after its first byte;
# DATA must average 500 bytes/s after 2 s of grace. The idle timer is
# long, so only the new deadlines can cut a client within a test.
LIMITS = {"command_timeout": "2s", "min_data_rate": "500",
          "idle_timeout": "60s", "max_connections_per_ip": "1000"}

TIMEOUT_RE = rf"^4\.4\.2 {re.escape(HOSTNAME)} Error: timeout exceeded$"


@pytest.fixture
def lrelay(relay_factory):
    return relay_factory({"server": dict(LIMITS)})


def qcount(relay):
    return len(relay.queue_list())


# ------------------------------------------------------------ tricklers

def trickle(c, data, every, limit):
    """Send data one byte every `every` seconds until the server answers;
    return (reply or None, seconds from the first byte, bytes sent)."""
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < limit:
        if sent < len(data):
            try:
                c.sock.sendall(data[sent:sent + 1])
            except OSError:
                break
            sent += 1
        try:
            return c.read_reply(timeout=every), time.monotonic() - t0, sent
        except TimeoutError:
            continue
        except Exception:
            break
    return None, time.monotonic() - t0, sent


def test_trickled_command_cut_at_deadline(lrelay):
    """A byte a second: each byte used to restart the idle timer, so one
    command could hold the slot for the whole session."""
    with lrelay.client() as c:
        r, took, sent = trickle(c, b"EHLO " + b"a" * 60 + b"\r\n", 1.0, 12)
        assert r is not None, f"no reply within {took:.1f}s, {sent} bytes"
        check_reply(r, 421, "4.4.2", TIMEOUT_RE, c)
        assert 1.5 <= took <= 4.5, f"cut after {took:.2f}s (deadline 2s)"
        c.expect_closed()
    assert "event=rejected client=127.0.0.1 reason=command_deadline" in \
        lrelay.stderr_text()


def test_deadline_frees_the_slot(relay_factory):
    """One connection allowed per address: a trickler holds it only until
    its deadline; then the next client from that address is served."""
    relay = relay_factory({"server": dict(LIMITS,
                                          max_connections_per_ip="1")})
    with SMTPClient(LOOPBACK, relay.port, source="127.0.0.2") as c:
        c.expect(220)
        c.send(b"EH")
        with SMTPClient(LOOPBACK, relay.port, source="127.0.0.2") as d:
            d.expect(421, "4.7.0", text="Too many connections")
        r, took, sent = trickle(c, b"LO x\r\n", 1.0, 10)
        assert r is not None and r.code == 421, (r, took)
        c.expect_closed()
    deadline = time.monotonic() + 5
    while True:  # the slot is given back as the close completes
        with SMTPClient(LOOPBACK, relay.port, source="127.0.0.2") as d:
            r = d.read_reply()
            if r.code == 220 or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert r.code == 220, r


def test_line_in_pieces_and_many_lines_within_deadline(lrelay):
    """The deadline is per line, from its first byte: a line in three
    pieces is fine, and so are lines that together take longer."""
    with lrelay.client() as c:
        c.ehlo()
        t0 = time.monotonic()
        for _ in range(3):
            for piece in (b"NO", b"O", b"P\r\n"):
                c.send(piece)
                time.sleep(0.4)
            c.expect(250)
        assert time.monotonic() - t0 > 3.0  # more than one deadline
        c.cmd("QUIT")


def slow_data(c, every, limit, body=b"Subject: slow\r\n\r\n" + b"x" * 200):
    c.ehlo()
    c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\n"
           "DATA\r\n")
    c.expect(250)
    c.expect(250)
    c.expect(354)
    return trickle(c, body, every, limit)


def test_slow_data_cut_below_min_rate(lrelay):
    with lrelay.client() as c:
        r, took, sent = slow_data(c, 0.25, 12)
        assert r is not None, f"no reply within {took:.1f}s"
        check_reply(r, 421, "4.4.2", TIMEOUT_RE, c)
        # 2 s of grace plus a few bytes' worth at 500/s
        assert 1.5 <= took <= 4.5, f"cut after {took:.2f}s"
        c.expect_closed()
    assert qcount(lrelay) == 0
    assert "reason=data_rate" in lrelay.stderr_text()


def test_data_above_min_rate_may_take_longer(lrelay):
    """The rate is measured over the transfer: 1000 bytes/s for 4 s (twice
    the grace) is accepted."""
    msg = make_message("steady", body_lines=["y" * 98] * 40)
    payload = dot_stuff(msg)
    with lrelay.client(timeout=20) as c:
        c.ehlo()
        c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.com>\r\n"
               "DATA\r\n")
        c.expect(250)
        c.expect(250)
        c.expect(354)
        t0 = time.monotonic()
        step = 250
        for i in range(0, len(payload), step):
            c.send(payload[i:i + step])
            time.sleep(0.25)
        qid = queued_id(c.read_reply(timeout=20), c)
        assert time.monotonic() - t0 > 3.0
    assert qid in lrelay.queue_ids()


def run_load(port, connections, *args, timeout=240):
    cmd = [str(LOAD), "--server", f"{LOOPBACK}:{port}", "--json", "--quiet",
           "--connections", str(connections)] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def test_slow_clients_cut_while_200_sessions_work(lrelay):
    """Ten one-byte-a-second command clients and ten slow DATA clients are
    cut at their deadlines with 421 while mta-load runs 200 concurrent
    sessions that all succeed."""
    raise_nofile()
    results = []
    lock = threading.Lock()

    def cmd_trickler():
        with SMTPClient(LOOPBACK, lrelay.port, timeout=15) as c:
            c.expect(220)
            out = trickle(c, b"HELO " + b"b" * 60 + b"\r\n", 1.0, 15)
        with lock:
            results.append(("cmd",) + out)

    def data_trickler():
        with SMTPClient(LOOPBACK, lrelay.port, timeout=15) as c:
            c.expect(220)
            out = slow_data(c, 0.5, 15)
        with lock:
            results.append(("data",) + out)

    threads = [threading.Thread(target=f) for f in
               [cmd_trickler] * 10 + [data_trickler] * 10]
    for t in threads:
        t.start()
    rep = run_load(lrelay.port, 200, "--duration", 5)
    for t in threads:
        t.join(30)
    assert rep["errors"] == 0 and rep["refused"] == 0, rep
    assert rep["accepted"] == rep["attempted"] >= 1000, rep
    assert len(results) == 20, results
    for kind, r, took, sent in results:
        assert r is not None and r.code == 421 and r.enh == "4.4.2", \
            (kind, r, took, sent)
        assert took <= 6.0, (kind, took)


def client_hello():
    """The first flight of a real TLS client, from a memory BIO."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outg.read()


def trickle_until_closed(sock, data, every, limit):
    """Send data a byte at a time; seconds until the server closed (or
    None after limit)."""
    t0 = time.monotonic()
    for i in range(len(data)):
        if time.monotonic() - t0 > limit:
            return None
        try:
            sock.sendall(data[i:i + 1])
            sock.settimeout(every)
            while sock.recv(4096):
                pass  # an alert or a 421 may come before the close
            return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:  # reset
            return time.monotonic() - t0
    return None


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_trickled_tls_handshake_cut(relay_factory, tmp_path, mode):
    cert, key = make_cert(tmp_path / "tls")
    tls_port = free_port()
    relay = relay_factory({
        "server": dict(LIMITS, listen_tls=f"{LOOPBACK}:{tls_port}"),
        "tls": {"certificate": cert, "private_key": key}})
    if mode == "implicit":
        c = SMTPClient(LOOPBACK, tls_port)
    else:
        c = relay.client()
        c.ehlo()
        c.cmd("STARTTLS")
    with c:
        took = trickle_until_closed(c.sock, client_hello(), 0.5, 10)
    assert took is not None, "trickled handshake still open after 10s"
    assert 1.5 <= took <= 4.5, f"cut after {took:.2f}s (deadline 2s)"


# ------------------------------------------------------------ early talkers

def test_early_talker_554_nothing_queued(relay_factory):
    """A whole pipelined transaction sent before the 220: 554, closed, not
    one command run."""
    relay = relay_factory({"server": {"greet_pause": "1s"}})
    msg = make_message("early")
    with SMTPClient(LOOPBACK, relay.port) as c:
        c.send(b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n"
               b"RCPT TO:<x@example.com>\r\nDATA\r\n" + dot_stuff(msg) +
               b"QUIT\r\n")
        r = c.read_reply(timeout=5)
        check_reply(r, 554, "5.5.0", "protocol synchronization", c)
        c.expect_closed()
    assert qcount(relay) == 0
    assert "event=rejected client=127.0.0.1 reason=early_talker" in \
        relay.stderr_text()


def test_early_talker_default_no_pause(relay):
    """greet_pause 0 (the default): the 220 goes at once, but input already
    there at the accept is an early talker's. The relay is stopped while
    the client connects and talks, so that its bytes are waiting."""
    pid = relay.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        early = SMTPClient(LOOPBACK, relay.port)  # the kernel accepts
        early.send(b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n"
                   b"RCPT TO:<x@example.com>\r\nDATA\r\n")
        quiet = SMTPClient(LOOPBACK, relay.port)
        time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    with early:
        r = early.read_reply(timeout=10)
        check_reply(r, 554, "5.5.0", "protocol synchronization", early)
        early.expect_closed()
    with quiet:  # waited: served as ever
        quiet.expect(220)
        quiet.ehlo()
    assert qcount(relay) == 0


def test_greet_pause_then_normal_session(relay_factory):
    relay = relay_factory({"server": {"greet_pause": "1s"}})
    with SMTPClient(LOOPBACK, relay.port) as c:
        t0 = time.monotonic()
        c.expect(220)
        assert time.monotonic() - t0 >= 0.9, "220 before the pause"
        c.ehlo()
        queued_id(send_message(c, make_message("after pause")), c)


def test_early_talker_after_implicit_tls_handshake(relay_factory, tmp_path):
    """On the implicit-TLS port the pause starts after the handshake;
    talking inside it is the same offence."""
    cert, key = make_cert(tmp_path / "tls")
    tls_port = free_port()
    relay = relay_factory({
        "server": {"greet_pause": "1s",
                   "listen_tls": f"{LOOPBACK}:{tls_port}"},
        "tls": {"certificate": cert, "private_key": key}})
    with SMTPClient(LOOPBACK, tls_port) as c:
        c.starttls()
        t0 = time.monotonic()
        c.expect(220)
        assert time.monotonic() - t0 >= 0.9, "220 before the pause"
        c.ehlo()
    with SMTPClient(LOOPBACK, tls_port) as c:
        c.starttls()
        c.send(b"EHLO client.test\r\n")
        c.expect(554, "5.5.0")
        c.expect_closed()
    assert "reason=early_talker" in relay.stderr_text()


# ------------------------------------------------------------ HTTP

@pytest.mark.parametrize("line", [
    b"GET / HTTP/1.1", b"POST /x HTTP/1.0", b"HEAD / HTTP/1.1",
    b"PUT /x HTTP/1.1", b"CONNECT mx.example.com:25 HTTP/1.1",
    b"OPTIONS * HTTP/1.1", b"BREW /pot HTTP/1.1", b"Host: example.com"])
def test_http_closed_at_once(relay, line):
    with relay.client() as c:
        c.send(line + b"\r\nHost: example.com\r\nUser-Agent: x\r\n\r\n")
        r = c.read_reply(timeout=5)
        check_reply(r, 221, "2.7.0", "I can break rules, too", c)
        c.expect_closed()
    assert "reason=http_command" in relay.stderr_text()


def test_http_words_elsewhere_are_not_http(relay):
    with relay.client() as c:
        c.ehlo()
        r = c.cmd("VRFY GET")
        assert r.code == 252, r
        r = c.cmd("NOOP HTTP/1.1")
        assert r.code == 250, r


# ------------------------------------------------------------ AUTH

@pytest.fixture
def arelay(relay_factory, tmp_path):
    users = tmp_path / "users"
    users.write_text("")
    users.chmod(0o600)
    relay = relay_factory({"auth": {"users": str(users),
                                    "require_tls": "no"}}, start=False)
    add_user(relay.conf, "alice", "s3cret pass")
    relay.start()
    return relay


def test_auth_response_over_12288_is_5_5_6(arelay):
    with arelay.client() as c:
        c.ehlo()
        c.send(b"AUTH PLAIN\r\n")
        c.expect(334)
        c.send(b"A" * 12289 + b"\r\n")
        r = c.expect(500, "5.5.6")
        assert r.text == "5.5.6 Authentication Exchange line is too long", r
        # the exchange is over, the session goes on
        r = c.cmd("NOOP")
        assert r.code == 250, r
        # an initial response over the limit on the command line too
        c.send(b"AUTH PLAIN " + b"A" * 12289 + b"\r\n")
        c.expect(500, "5.5.6")
        r = c.cmd("NOOP")
        assert r.code == 250, r
        # within RFC 4954's 12288 octets: decoded and judged (no user)
        c.send(b"AUTH PLAIN\r\n")
        c.expect(334)
        c.send(b"A" * 12000 + b"\r\n")
        c.expect(535, "5.7.8", timeout=10)


# ------------------------------------------------------------ Received:

def comment_ok(value):
    """value of a header: parentheses nest and balance, backslash quotes
    one character (RFC 5322 3.2.2)."""
    depth, i = 0, 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


@pytest.mark.parametrize("helo", [
    "evil(host", "evil)host", "evil\\host", "a(b)c)", "x\"y;z@w<v>"])
def test_helo_neutered_in_received(relay, helo):
    msg = make_message("helo")
    with relay.client() as c:
        r = c.cmd(f"HELO {helo}")
        assert r.code == 250, r
        qid = queued_id(send_message(c, msg), c)
    raw = relay.queue_raw(qid)
    rcvd, rest = strip_received(raw)
    assert rest == msg
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    value = m["Received"]
    assert comment_ok(value), value
    first = " ".join(value.split())
    want = re.sub(r"[ <>()\\\";@]", "?", helo)
    assert first.startswith(f"from {want} (rdns-less [127.0.0.1]) by "), \
        first
