# SPDX-License-Identifier: ISC
"""
Submission security: STARTTLS on the `listen` port, implicit TLS (RFC 8314)
on `listen_tls`, AUTH PLAIN and LOGIN (RFC 4954) against an [auth] users
file, and relaying for authenticated clients only.

Real clients drive a live relay: Python's smtplib (starttls, SMTP_SSL,
auth with a chosen mechanism), swaks, `openssl s_client` (STARTTLS
transcripts, protocol versions), asyncio+ssl for many concurrent sessions,
plus the raw SMTPClient of conftest for exact reply codes and abuse
(plaintext injected behind STARTTLS, stalled handshakes).

Each test module run makes a throwaway P-256 certificate with
`openssl req` and a users file with `mkpasswd -m yescrypt` (alice) and
`openssl passwd -6` (bob, cheaper to check, for the load test).
"""
import asyncio
import base64
import re
import selectors
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (HOSTNAME, LOOPBACK, MTA, SMTPClient, free_port,
                      make_message, queued_id, raise_nofile, san_problems,
                      send_message, strip_received)

ALICE, ALICE_PW = "alice", "correct horse 1"
BOB, BOB_PW = "bob@example.org", "b0b-Secret!"
REMOTE = "rcpt@remote.example"
SENDER = "sender@example.org"


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def plain_ir(user, pw):
    return b64(b"\0" + user.encode() + b"\0" + pw.encode())


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    """cert/key (P-256, self-signed), an unrelated key, a users file."""
    d = tmp_path_factory.mktemp("tlsauth")
    cert, key, other = d / "cert.pem", d / "key.pem", d / "other-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other",
                    "-days", "1", "-keyout", str(other),
                    "-out", str(d / "other-cert.pem")],
                   check=True, capture_output=True, timeout=60)
    if shutil.which("mkpasswd"):
        h_alice = subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"],
                                 input=ALICE_PW.encode(), check=True,
                                 capture_output=True, timeout=60).stdout
    else:  # whois not installed: sha512-crypt does as well here
        h_alice = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                                 input=ALICE_PW.encode(), check=True,
                                 capture_output=True, timeout=60).stdout
    h_bob = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                           input=BOB_PW.encode(), check=True,
                           capture_output=True, timeout=60).stdout
    users = d / "users"
    users.write_text("# test users\n%s:%s\n%s:%s\n" % (
        ALICE, h_alice.decode().strip(), BOB, h_bob.decode().strip()))
    return {"cert": str(cert), "key": str(key), "other_key": str(other),
            "users": str(users), "dir": d}


def tls_overrides(creds, tls_port, server=None, auth=None, tls=None):
    ov = {
        "server": {"listen_tls": f"{LOOPBACK}:{tls_port}",
                   # 127.0.0.1 is NOT allowed to relay: AUTH is needed
                   "relay_networks": "192.0.2.0/24"},
        "tls": {"certificate": creds["cert"], "private_key": creds["key"]},
        "auth": {"users": creds["users"], "require_tls": "yes",
                 "max_failures": "3"},
    }
    for sec, extra in (("server", server), ("auth", auth), ("tls", tls)):
        if extra:
            ov[sec].update(extra)
    return ov


@pytest.fixture
def make_tls_relay(relay_factory, creds):
    def make(server=None, auth=None, **kw):
        tls_port = free_port()
        r = relay_factory(tls_overrides(creds, tls_port, server, auth), **kw)
        r.tls_port = tls_port
        return r
    return make


@pytest.fixture
def trelay(make_tls_relay):
    return make_tls_relay()


def starttls_client(relay, timeout=10.0):
    """Greeted, EHLO, STARTTLS, handshake, EHLO again: ready for AUTH."""
    c = relay.client(timeout=timeout)
    r = c.ehlo()
    assert "STARTTLS" in r.lines, c.show()
    c.cmd("STARTTLS")
    c.starttls()
    r = c.ehlo()
    assert "STARTTLS" not in r.lines, c.show()
    assert "AUTH PLAIN LOGIN" in r.lines, c.show()
    return c


def implicit_client(relay, timeout=10.0):
    c = SMTPClient(relay.host, relay.tls_port, timeout=timeout)
    c.starttls()
    c.expect(220, text=re.escape(HOSTNAME) + " ESMTP")
    return c


# ---------------------------------------------------------------- real clients

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_auth(trelay, mech):
    with smtplib.SMTP(trelay.host, trelay.port, timeout=20) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), "AUTH advertised before TLS"
        code, _ = s.starttls(context=client_ctx())
        assert code == 220
        s.ehlo("client.test")
        assert not s.has_extn("starttls"), "STARTTLS advertised after TLS"
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.user, s.password = ALICE, ALICE_PW
        obj = s.auth_plain if mech == "PLAIN" else s.auth_login
        code, msg = s.auth(mech, obj)
        assert (code, msg[:5]) == (235, b"2.7.0")
        refused = s.sendmail(SENDER, [REMOTE], make_message(rcpt=REMOTE))
        assert refused == {}
    rows = trelay.queue_list()
    assert len(rows) == 1 and rows[0]["user"] == ALICE


def test_smtp_ssl_implicit(trelay):
    with smtplib.SMTP_SSL(trelay.host, trelay.tls_port, timeout=20,
                          context=client_ctx()) as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        s.login(ALICE, ALICE_PW)
        assert s.sendmail(SENDER, [REMOTE], make_message(rcpt=REMOTE)) == {}
    rows = trelay.queue_list()
    assert [r["user"] for r in rows] == [ALICE]
    hdr, _ = strip_received(trelay.queue_raw(rows[0]["id"]))
    assert b" with ESMTPSA " in hdr


def test_auth_after_helo_implicit_tls(trelay):
    """A hand-written client: implicit TLS, HELO (not EHLO), AUTH LOGIN
    answered to the 334 prompts, one message (SPEC: AUTH after HELO is
    accepted, as Postfix does)."""
    with smtplib.SMTP_SSL(trelay.host, trelay.tls_port, timeout=20,
                          context=client_ctx()) as s:
        code, _ = s.helo("client.test")
        assert code == 250
        code, msg = s.docmd("AUTH", "LOGIN")
        assert code == 334, msg
        code, msg = s.docmd(b64(ALICE))
        assert code == 334, msg
        code, msg = s.docmd(b64(ALICE_PW))
        assert code == 235, msg
        assert s.sendmail(SENDER, [REMOTE], make_message(rcpt=REMOTE)) == {}
    rows = trelay.queue_list()
    assert [r["user"] for r in rows] == [ALICE]


def test_auth_before_helo_503(trelay):
    with smtplib.SMTP_SSL(trelay.host, trelay.tls_port, timeout=20,
                          context=client_ctx()) as s:
        code, msg = s.docmd("AUTH", f"PLAIN {plain_ir(ALICE, ALICE_PW)}")
        assert (code, msg) == (503, b"5.5.1 Error: send HELO/EHLO first")


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks(trelay, mech):
    p = subprocess.run(["swaks", "--server", f"{trelay.host}:{trelay.port}",
                        "--tls", "--auth", mech, "--auth-user", ALICE,
                        "--auth-password", ALICE_PW, "--from", SENDER,
                        "--to", REMOTE, "--helo", "client.test",
                        "--timeout", "30"],
                       capture_output=True, timeout=90)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out + p.stderr.decode()
    assert "<-  220 2.0.0 Ready to start TLS" in out
    assert "235 2.7.0" in out
    if mech == "LOGIN":
        assert "334 VXNlcm5hbWU6" in out and "334 UGFzc3dvcmQ6" in out
    assert re.search(r"250 2\.0\.0 Ok: queued as [0-9a-f]{16}", out), out
    assert [r["user"] for r in trelay.queue_list()] == [ALICE]


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")
def test_swaks_implicit_tls(trelay):
    p = subprocess.run(["swaks", "--server", f"{trelay.host}:{trelay.tls_port}",
                        "--tlsc", "--auth", "PLAIN", "--auth-user", BOB,
                        "--auth-password", BOB_PW, "--from", SENDER,
                        "--to", REMOTE, "--timeout", "30"],
                       capture_output=True, timeout=90)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out + p.stderr.decode()
    assert "235 2.7.0" in out and "250 2.0.0 Ok: queued as" in out


def s_client(args, stdin, timeout=60):
    p = subprocess.run(["openssl", "s_client", *args], input=stdin,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")


def test_s_client_starttls_auth_login_transcript(trelay):
    # -quiet implies -ign_eof: s_client reads until the server closes
    # after QUIT. Lines are pipelined; the relay answers them in order.
    stdin = "\n".join(["EHLO client.test", "AUTH LOGIN", b64(ALICE),
                       b64(ALICE_PW), f"MAIL FROM:<{SENDER}>",
                       f"RCPT TO:<{REMOTE}>", "QUIT", ""]).encode()
    rc, out, err = s_client(["-starttls", "smtp", "-connect",
                             f"{trelay.host}:{trelay.port}", "-crlf",
                             "-quiet"], stdin)
    lines = [l.rstrip("\r") for l in out.splitlines()]
    seq = ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
           "235 2.7.0 Authentication successful", "250 2.1.0 Ok",
           "250 2.1.5 Ok", "221 2.0.0 Bye"]
    got = [l for l in lines if l in seq]
    assert got == seq, f"stdout:\n{out}\nstderr:\n{err}"
    assert "250-AUTH PLAIN LOGIN" in lines
    assert "250-STARTTLS" not in lines


def test_s_client_implicit_auth_plain(trelay):
    stdin = "\n".join(["EHLO client.test", "AUTH PLAIN",
                       plain_ir(ALICE, ALICE_PW), "QUIT", ""]).encode()
    # The commands go once the 220 is in: sent before it, they would be
    # an early talker's (554, test_session_limits.py).
    p = subprocess.Popen(["openssl", "s_client", "-connect",
                          f"{trelay.host}:{trelay.tls_port}", "-crlf",
                          "-quiet"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=30):
        p.kill()
        raise AssertionError("no greeting within 30s")
    first = p.stdout.readline()
    try:
        rest, err = p.communicate(stdin, timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    out = (first + rest).decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    lines = [l.rstrip("\r") for l in out.splitlines()]
    assert lines[0] == f"220 {HOSTNAME} ESMTP", out + err
    assert "334 " in lines and "235 2.7.0 Authentication successful" in lines
    assert lines[-1] == "221 2.0.0 Bye"


# ---------------------------------------------------------------- reply codes

def test_auth_before_starttls_538(trelay):
    with trelay.client() as c:
        r = c.ehlo()
        assert "STARTTLS" in r.lines
        assert not any(l.startswith("AUTH") for l in r.lines), \
            "AUTH advertised before TLS with require_tls = yes"
        c.send(f"AUTH PLAIN {plain_ir(ALICE, ALICE_PW)}\r\n")
        c.expect(538, "5.7.11")
        # The session goes on; TLS then AUTH works.
        c.cmd("STARTTLS")
        c.starttls()
        c.ehlo()
        r = c.cmd(f"AUTH PLAIN {plain_ir(ALICE, ALICE_PW)}")
        assert (r.code, r.enh) == (235, "2.7.0"), c.show()


def test_auth_reply_codes(trelay):
    with starttls_client(trelay) as c:
        # malformed base64, initial response and continuation line
        c.send("AUTH PLAIN !!!notbase64\r\n")
        c.expect(501, "5.5.2")
        c.send("AUTH LOGIN\r\n")
        c.expect(334, text="^VXNlcm5hbWU6$")
        c.send("%%%\r\n")
        c.expect(501, "5.5.2")
        # cancel at each step
        c.send("AUTH PLAIN\r\n")
        r = c.expect(334)
        assert r.raw == b"334 \r\n"
        c.send("*\r\n")
        c.expect(501, "5.7.0")
        c.send("AUTH LOGIN\r\n")
        c.expect(334, text="^VXNlcm5hbWU6$")
        c.send(b64(ALICE) + "\r\n")
        c.expect(334, text="^UGFzc3dvcmQ6$")
        c.send("*\r\n")
        c.expect(501, "5.7.0")
        # bad credentials: answered only after the delay
        t0 = time.monotonic()
        c.send(f"AUTH PLAIN {plain_ir(ALICE, 'wrong')}\r\n")
        c.expect(535, "5.7.8")
        assert time.monotonic() - t0 >= 0.9, "failed AUTH answered at once"
        # unknown mechanism
        c.send("AUTH CRAM-MD5\r\n")
        c.expect(504)
        # good
        c.send("AUTH LOGIN\r\n")
        c.expect(334)
        c.send(b64(ALICE) + "\r\n")
        c.expect(334)
        c.send(b64(ALICE_PW) + "\r\n")
        c.expect(235, "2.7.0")
        # twice
        c.send(f"AUTH PLAIN {plain_ir(ALICE, ALICE_PW)}\r\n")
        c.expect(503, "5.5.1")
        c.send("QUIT\r\n")
        c.expect(221)
    log = trelay.stderr_text()
    assert ALICE_PW not in log and "wrong" not in log
    assert "event=auth_failed client=127.0.0.1 user=alice" in log


def test_auth_too_many_failures_421(trelay):
    with starttls_client(trelay, timeout=15) as c:
        for i in range(2):
            c.send(f"AUTH PLAIN {plain_ir(ALICE, 'bad%d' % i)}\r\n")
            c.expect(535, "5.7.8")
        c.send("AUTH LOGIN\r\n")
        c.expect(334)
        c.send(b64(ALICE) + "\r\n")
        c.expect(334)
        c.send(b64("bad3") + "\r\n")
        c.expect(535, "5.7.8")
        c.expect(421, "4.7.0")
        c.expect_closed()


def test_failure_delay_does_not_block_others(trelay):
    """The delay is a timer on one connection: other sessions
    authenticate meanwhile without waiting."""
    with starttls_client(trelay) as bad, starttls_client(trelay) as good:
        t0 = time.monotonic()
        bad.send(f"AUTH PLAIN {plain_ir(BOB, 'nope')}\r\n")
        time.sleep(0.1)
        good.send(f"AUTH PLAIN {plain_ir(BOB, BOB_PW)}\r\n")
        good.expect(235, "2.7.0")
        t_good = time.monotonic() - t0
        bad.expect(535, "5.7.8")
        t_bad = time.monotonic() - t0
        assert t_good < t_bad, (t_good, t_bad)
        assert t_bad >= 0.9


def test_auth_require_tls_no_plaintext_esmtpa(make_tls_relay):
    r = make_tls_relay(auth={"require_tls": "no"})
    with r.client() as c:
        e = c.ehlo()
        assert "AUTH PLAIN LOGIN" in e.lines and "STARTTLS" in e.lines
        c.send(f"AUTH PLAIN {plain_ir(ALICE, ALICE_PW)}\r\n")
        c.expect(235, "2.7.0")
        qid = queued_id(send_message(c, make_message(rcpt=REMOTE),
                                     rcpts=[REMOTE]), c)
    hdr, _ = strip_received(r.queue_raw(qid))
    assert b" with ESMTPA " in hdr


# ---------------------------------------------------------------- relay policy

def test_relay_needs_auth(trelay):
    with starttls_client(trelay) as c:
        c.send(f"MAIL FROM:<{SENDER}>\r\n")
        c.expect(250)
        c.send(f"RCPT TO:<{REMOTE}>\r\n")
        c.expect(554, "5.7.1", text="Relay access denied")
        c.send("RSET\r\n")
        c.expect(250)
        assert trelay.queue_list() == []
        c.send(f"AUTH PLAIN {plain_ir(ALICE, ALICE_PW)}\r\n")
        c.expect(235, "2.7.0")
        qid = queued_id(send_message(c, make_message(rcpt=REMOTE),
                                     rcpts=[REMOTE]), c)
    rows = trelay.queue_list()
    assert [(r["id"], r["user"]) for r in rows] == [(qid, ALICE)]
    show = trelay.mta("queue", "show", qid).stdout.decode()
    assert re.search(r"^user:\s+alice$", show, re.M), show
    raw = trelay.queue_raw(qid)
    hdr, _ = strip_received(raw)
    assert b" with ESMTPSA " in hdr, hdr
    for secret in (ALICE_PW, b64(ALICE_PW), plain_ir(ALICE, ALICE_PW)):
        assert secret.encode() not in raw
    log = trelay.stderr_text()
    assert re.search(r"event=queued id=%s .*client=127\.0\.0\.1 user=alice\b"
                     % qid, log), log
    assert "event=rejected client=127.0.0.1 reason=relay_denied" in log
    assert ALICE_PW not in log


def test_unauthenticated_starttls_cannot_relay(trelay):
    with implicit_client(trelay) as c:
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE}>\r\n")
        c.expect(250)
        c.expect(554, "5.7.1")


# ---------------------------------------------------------------- STARTTLS

def _no_plaintext(sock, wait=0.5):
    """No SMTP reply arrives in plaintext within wait seconds: nothing, or
    the end of the connection, or a TLS alert record (0x15)."""
    sock.settimeout(wait)
    try:
        data = sock.recv(4096, socket.MSG_PEEK)
    except socket.timeout:
        return
    except ConnectionResetError:
        return
    assert data == b"" or data[0] == 0x15, (
        f"plaintext after the STARTTLS reply: {data!r}")


def test_starttls_injection_same_packet(trelay):
    with trelay.client() as c:
        c.ehlo()
        c.send("STARTTLS\r\nRSET\r\n")  # one packet (TCP_NODELAY, one send)
        c.expect(220, "2.0.0", text="Ready to start TLS")
        assert c.buf == b"", f"reply to injected RSET: {c.buf!r}"
        _no_plaintext(c.sock)
        c.starttls()
        # The first reply after the handshake is EHLO's, never RSET's.
        r = c.cmd("EHLO client.test")
        assert r.code == 250 and r.lines[0] == HOSTNAME, c.show()
        r = c.cmd("NOOP")
        assert (r.code, r.enh) == (250, "2.0.0")
        assert c.drain(0.5) == [], c.show()
        assert c.buf == b""


def test_starttls_injection_after_reply(trelay):
    """Plaintext that arrives after the 220 (in its own packet) reaches
    the TLS layer as garbage: the handshake fails, RSET is never run."""
    with trelay.client() as c:
        c.ehlo()
        c.send("STARTTLS\r\n")
        c.expect(220, "2.0.0")
        c.send("RSET\r\n")
        assert c.buf == b""
        _no_plaintext(c.sock)
        try:
            c.starttls(timeout=5)
        except (ssl.SSLError, OSError):
            pass  # the injected bytes broke the handshake: fine
        else:
            pytest.fail("handshake after injected plaintext succeeded")
    with trelay.client() as c:  # the relay is fine
        c.ehlo()


def test_tls_resets_session(trelay):
    with trelay.client() as c:
        c.ehlo()
        c.cmd("STARTTLS")
        c.starttls()
        # RFC 3207 4.2: the state from before TLS is forgotten.
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert (r.code, r.enh) == (503, "5.5.1"), c.show()
        r = c.cmd("EHLO client.test")
        assert "STARTTLS" not in r.lines and "AUTH PLAIN LOGIN" in r.lines
        r = c.cmd("STARTTLS")
        assert (r.code, r.enh) == (503, "5.5.1"), c.show()


def test_starttls_in_transaction_refused(trelay):
    with trelay.client() as c:
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\n")
        c.expect(250)
        r = c.cmd("STARTTLS")
        assert (r.code, r.enh) == (503, "5.5.1")


def test_old_tls_versions_refused(trelay):
    for args in (["-connect", f"{trelay.host}:{trelay.tls_port}"],
                 ["-starttls", "smtp", "-connect",
                  f"{trelay.host}:{trelay.port}"]):
        rc, out, err = s_client(args + ["-tls1_1", "-cipher",
                                        "DEFAULT@SECLEVEL=0"],
                                b"QUIT\n", timeout=30)
        assert rc != 0, out + err
        assert f"220 {HOSTNAME} ESMTP" not in out.split("---")[-1]
        assert "Cipher is (NONE)" in out or "alert" in err, out + err
        # TLS 1.2 works, so the refusal is about the version.
        rc, out, err = s_client(args + ["-tls1_2", "-crlf", "-quiet"],
                                b"QUIT\n", timeout=30)
        assert "221 2.0.0 Bye" in out, out + err
    log = trelay.stderr_text()
    assert len(re.findall(r"event=tls_failed client=127\.0\.0\.1 reason=",
                          log)) >= 2, log


def _client_hello():
    """The first flight of a real TLS client, from a memory BIO."""
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, outg, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outg.read()
    assert len(hello) > 100
    return hello


def test_stalled_handshake_times_out(make_tls_relay):
    r = make_tls_relay(server={"idle_timeout": "2s"},
                       env={"MTA_DEBUG": "1"})  # disconnect lines
    hello = _client_hello()
    stalled = []
    # implicit TLS, half a ClientHello
    s1 = socket.create_connection((r.host, r.tls_port), timeout=10)
    s1.sendall(hello[:len(hello) // 2])
    stalled.append(s1)
    # implicit TLS, nothing at all
    stalled.append(socket.create_connection((r.host, r.tls_port), timeout=10))
    # STARTTLS, then nothing
    c = r.client()
    c.ehlo()
    c.cmd("STARTTLS")
    stalled.append(c.sock)
    # STARTTLS, then half a ClientHello
    c2 = r.client()
    c2.ehlo()
    c2.cmd("STARTTLS")
    c2.sock.sendall(hello[:40])
    stalled.append(c2.sock)
    t0 = time.monotonic()

    # Meanwhile a normal session works, with no delay.
    with smtplib.SMTP(r.host, r.port, timeout=10) as s:
        s.starttls(context=client_ctx())
        s.login(BOB, BOB_PW)
        assert s.sendmail(SENDER, [REMOTE], make_message(rcpt=REMOTE)) == {}
    assert time.monotonic() - t0 < 1.8, "normal session was held up"

    for sock in stalled:
        sock.settimeout(10)
        try:
            while sock.recv(4096):
                pass  # a TLS alert or a plaintext 421 may come first
        except ConnectionResetError:
            pass
    waited = time.monotonic() - t0
    assert 1.0 < waited < 8.0, waited
    for sock in stalled:
        sock.close()
    assert r.stderr_text().count(
        "event=disconnect client=127.0.0.1 reason=timeout") == 4


def test_handshake_failure_closes_only_that_connection(trelay):
    with starttls_client(trelay) as ok:
        bad = socket.create_connection((trelay.host, trelay.tls_port),
                                       timeout=10)
        bad.sendall(b"\x16\x03\x01\x00\x05garbage-that-is-no-hello" * 4)
        bad.settimeout(10)
        try:
            while bad.recv(4096):
                pass
        except ConnectionResetError:
            pass
        bad.close()
        r = ok.cmd("NOOP")
        assert r.code == 250
        ok.send(f"AUTH PLAIN {plain_ir(BOB, BOB_PW)}\r\n")
        ok.expect(235)
    assert "event=tls_failed client=127.0.0.1" in trelay.stderr_text()


def test_pipelined_after_tls(trelay):
    """A whole pipelined transaction through TLS in one write, then a
    large body over many TLS records."""
    with starttls_client(trelay) as c:
        c.send(f"AUTH PLAIN {plain_ir(BOB, BOB_PW)}\r\n")
        c.expect(235)
        msg = make_message(rcpt=REMOTE,
                           body_lines=["x" * 998] * 3000)  # ~3 MB
        qid = queued_id(send_message(c, msg, rcpts=[REMOTE]), c)
        c.send("RSET\r\nNOOP\r\nQUIT\r\n")
        for code in (250, 250, 221):
            c.expect(code)
    _, body = strip_received(trelay.queue_raw(qid))
    assert body == msg


# ---------------------------------------------------------------- load

async def _one_session(i, relay, ctx, state, n):
    implicit = i % 2 == 0
    port = relay.tls_port if implicit else relay.port
    if implicit:
        rd, wr = await asyncio.open_connection(relay.host, port, ssl=ctx,
                                               server_hostname="localhost")
    else:
        rd, wr = await asyncio.open_connection(relay.host, port)

    async def reply():
        while True:
            line = await rd.readline()
            if not line:
                raise ConnectionError(f"session {i}: closed")
            if line[3:4] != b"-":
                return line

    try:
        assert (await reply()).startswith(b"220 ")
        if not implicit:
            wr.write(b"EHLO c.test\r\n")
            assert (await reply()).startswith(b"250 ")
            wr.write(b"STARTTLS\r\n")
            assert (await reply()).startswith(b"220 2.0.0")
            await wr.start_tls(ctx, server_hostname="localhost")
        wr.write(b"EHLO c.test\r\n")
        assert (await reply()).startswith(b"250 ")
        if i % 20 == 0:
            wr.write(b"AUTH PLAIN " + plain_ir(BOB, BOB_PW).encode() + b"\r\n")
            assert (await reply()).startswith(b"235 2.7.0")
        wr.write(b"NOOP\r\n")
        assert (await reply()).startswith(b"250 2.0.0")
        state["open"] += 1
        if state["open"] == n:
            state["all"].set()
        await state["all"].wait()  # every session open at once
        wr.write(b"QUIT\r\n")
        assert (await reply()).startswith(b"221 ")
    finally:
        wr.close()
        try:
            await wr.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


def test_500_concurrent_tls_sessions(make_tls_relay):
    n = 500
    assert raise_nofile(4096) >= n + 100
    r = make_tls_relay(server={"max_connections_per_ip": "2000"})
    ctx = client_ctx()

    async def main():
        state = {"open": 0, "all": asyncio.Event()}
        await asyncio.wait_for(asyncio.gather(
            *(_one_session(i, r, ctx, state, n) for i in range(n))), 240)
        return state["open"]

    t0 = time.monotonic()
    assert asyncio.run(main()) == n
    dt = time.monotonic() - t0
    log = r.stderr_text()
    assert "event=tls_failed" not in log, log[-3000:]
    print(f"{n} concurrent TLS sessions in {dt:.1f}s")
    with r.client() as c:  # still serving
        c.ehlo()


# ---------------------------------------------------------------- startup

def _serve_fails(relay):
    p = subprocess.run([MTA, "serve", "-c", str(relay.conf)],
                       capture_output=True, timeout=60)
    err = p.stderr.decode("utf-8", "replace")
    assert not san_problems(err), err
    assert p.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_startup_missing_cert(relay_factory, creds, tmp_path):
    ov = tls_overrides(creds, free_port())
    ov["tls"]["certificate"] = str(tmp_path / "nope.pem")
    r = relay_factory(ov, start=False)
    line = _serve_fails(r)
    assert "nope.pem" in line and "No such file or directory" in line, line
    assert line.startswith("mta: tls: ")


def test_startup_mismatched_key(relay_factory, creds):
    ov = tls_overrides(creds, free_port())
    ov["tls"]["private_key"] = creds["other_key"]
    r = relay_factory(ov, start=False)
    line = _serve_fails(r)
    assert line == "mta: tls: private key does not match certificate", line


def test_startup_missing_users_file(relay_factory, creds, tmp_path):
    ov = tls_overrides(creds, free_port())
    ov["auth"]["users"] = str(tmp_path / "no-users")
    r = relay_factory(ov, start=False)
    line = _serve_fails(r)
    assert line.startswith("mta: auth: ") and "no-users" in line, line
