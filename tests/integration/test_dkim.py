# SPDX-License-Identifier: ISC
"""
DKIM signing (issue 10), end to end: keys made by `mta dkim keygen`,
messages relayed through mta to a recording destination, and the
delivered bytes checked by verifiers nobody here wrote: dkimpy (Debian's
python3-dkim; Ed25519 with python3-nacl), fed the TXT records keygen
printed, and OpenDKIM's opendkim-testmsg (RSA), which asks the tests' DNS
server. A message changed by one byte must fail, so the verifier is shown
to check. Also: dual signing, both canonicalizations, subdomains and the
[dkim *] fallback, the bad inputs (each relayed, signed or unsigned with a
logged reason), a redelivery after 451 (identical bytes), keys refused at
start and reload, and `mta dkim check`.
"""
import email
import email.policy
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import queued_id, run_mta, send_message
from dkim_verify import verify_each
from smtp_servers import rcpt_table, wait_until
from test_delivery import World, events, submit, wait_event

SENDER = "sender@example.com"


# ---------------------------------------------------------------- helpers

def keygen(tmp, domain, sel, typ="rsa", bits=None):
    """A key by `mta dkim keygen`: (path, dns name, [TXT strings])."""
    out = tmp / f"{domain}.{sel}.pem"
    args = ["dkim", "keygen", domain, sel, "--type", typ, "--out", out]
    if bits:
        args += ["--bits", bits]
    p = run_mta(*args)
    text = p.stdout.decode()
    m = re.search(r"^(\S+)\. IN TXT \((.*)\)$", text, re.M)
    assert m, text
    strings = re.findall(r'"([^"]*)"', m.group(2))
    return out, m.group(1), strings


class Keys:
    """Keys by name, their TXT records (a dict for dkimpy's dnsfunc)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.path = {}
        self.records = {}
        self.strings = {}

    def make(self, domain, sel, typ="rsa"):
        path, name, strings = keygen(self.tmp, domain, sel, typ)
        self.path[(domain, sel)] = path
        self.records[name] = "".join(strings).encode()
        self.strings[name] = strings
        return path

    def section(self, domain, sel, extra="", keyof=None):
        return (f"[dkim {domain}]\nselector = {sel}\n"
                f"key = {self.path[keyof or (domain, sel)]}\n{extra}\n")


def msg(frm="Joe <joe@example.com>", subject="dkim test", body=None,
        headers=(), raw_body=None):
    hdr = []
    if frm is not None:
        hdr.append(f"From: {frm}")
    hdr += ["To: <rcpt@dest.test>", f"Subject: {subject}",
            "Date: Thu, 03 Dec 2026 12:00:00 +0000",
            f"Message-ID: <{time.time_ns()}@example.com>"]
    hdr += list(headers)
    if raw_body is not None:
        return ("\r\n".join(hdr) + "\r\n").encode() + raw_body
    lines = body if body is not None else ["Hello  world ", "", "bye"]
    return ("\r\n".join(hdr) + "\r\n\r\n" + "\r\n".join(lines)
            + "\r\n").encode()


def our_sigs(raw):
    """The DKIM-Signature fields mta put on top (above its Received)."""
    out = []
    pos = 0
    while raw.startswith(b"DKIM-Signature:", pos):
        m = re.compile(rb"\r\n(?![ \t])").search(raw, pos)
        out.append(raw[pos:m.end()])
        pos = m.end()
    assert raw[pos:pos + 9] == b"Received:", raw[:3000]
    return out


def verdicts(raw, keys):
    return [(d, s, ok) for d, s, a, c, ok in verify_each(raw, keys.records)]


def queued(relay, qid):
    ev = [e for e in events(relay, "queued") if e.get("id") == qid]
    assert len(ev) == 1, relay.stderr_text()[-3000:]
    return ev[0]


def delivered(world, srv, relay, qid, rcpt="rcpt@dest.test", count=1):
    wait_event(relay, "delivered", rcpt, count=count)
    msgs = srv.snapshot()["messages"]
    assert msgs, "nothing delivered"
    return msgs[-1]["data"]


@pytest.fixture
def world(tmp_path, relay_factory):
    w = World(tmp_path, relay_factory)
    yield w
    problems = w.close()
    assert not problems, "test server errors:\n" + "\n".join(problems)


def dest(world, records=None):
    zone = {"dest.test": {"MX": [[10, "mx.dest.test"]]},
            "mx.dest.test": {"A": ["127.0.0.30"]}}
    zone.update(records or {})
    world.zone(zone)
    return world.server("127.0.0.30", rcpt=rcpt_table(
        {"later@dest.test": ["451 4.7.1 greylisted", "250 2.1.5 Ok"]}))


# ---------------------------------------------------------------- keygen

def test_keygen_writes_0600_never_overwrites_and_splits_record(tmp_path):
    path, name, strings = keygen(tmp_path, "example.com", "r", "rsa")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert name == "r._domainkey.example.com"
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings), strings
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=MII")
    before = path.read_bytes()
    p = run_mta("dkim", "keygen", "example.com", "r", "--out", path,
                check=False)
    assert p.returncode == 1 and b"File exists" in p.stderr, p
    assert path.read_bytes() == before
    _, _, ed = keygen(tmp_path, "example.com", "e", "ed25519")
    assert len(ed) == 1 and re.fullmatch(
        r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", ed[0]), ed
    p = run_mta("dkim", "keygen", "example.com", "x", "--bits", "512",
                "--out", tmp_path / "small.pem", check=False)
    assert p.returncode == 1 and not (tmp_path / "small.pem").exists()


# ---------------------------------------------------------------- signing

def test_dual_rsa_ed25519_both_canonicalizations(world):
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    keys.make("example.com", "e", "ed25519")
    srv = dest(world)
    relay = world.relay(extra=keys.section("example.com", "r") +
                        keys.section("example.com", "e",
                                     "canonicalization = simple/simple"))
    m = msg(body=["Hello  world \t", "", ".dot line", "", "", ""])
    qid, _ = submit(relay, ["rcpt@dest.test"], m, sender=SENDER)
    assert queued(relay, qid)["dkim"] == "example.com/r,example.com/e"
    raw = delivered(world, srv, relay, qid)
    sigs = our_sigs(raw)
    assert len(sigs) == 2, raw[:2000]
    assert b"a=rsa-sha256;" in sigs[0] and b"c=relaxed/relaxed;" in sigs[0]
    assert b"a=ed25519-sha256;" in sigs[1] and b"c=simple/simple;" in sigs[1]
    # the message as submitted follows our fields and our Received
    assert raw.endswith(m)
    assert verdicts(raw, keys) == [("example.com", "r", True),
                                   ("example.com", "e", True)]
    # one byte changed in transit: both must fail
    i = raw.rindex(b".dot line")
    bad = raw[:i] + b".Dot line" + raw[i + 9:]
    assert verdicts(bad, keys) == [("example.com", "r", False),
                                   ("example.com", "e", False)]
    # a header byte: the Subject
    bad = raw.replace(b"Subject: dkim test", b"Subject: dkim Test")
    assert [v[2] for v in verdicts(bad, keys)] == [False, False]
    # lines are folded: none longer than 78 columns
    for s in sigs:
        assert max(len(line) for line in s.split(b"\r\n")) <= 80, s


def test_subdomains_fallback_and_no_key(world):
    keys = Keys(world.tmp)
    keys.make("parent.test", "p", "ed25519")
    keys.make("example.com", "r", "rsa")
    srv = dest(world)
    extra = (keys.section("parent.test", "p", "subdomains = yes\n"
                          "canonicalization = relaxed/simple") +
             keys.section("example.com", "r"))
    relay = world.relay(extra=extra)
    q1, _ = submit(relay, ["rcpt@dest.test"],
                   msg(frm="a@mail.Parent.TEST"), sender=SENDER)
    raw = delivered(world, srv, relay, q1)
    assert queued(relay, q1)["dkim"] == "parent.test/p"
    assert verdicts(raw, keys) == [("parent.test", "p", True)]
    # no key for the From domain: relayed unsigned, dkim=none
    q2, m2 = submit(relay, ["rcpt@dest.test"], msg(frm="x@other.test"),
                    sender=SENDER)
    raw = delivered(world, srv, relay, q2, count=2)
    assert queued(relay, q2)["dkim"] == "none"
    assert b"DKIM-Signature" not in raw and raw.endswith(m2)
    relay.stop()
    # [dkim *]: d= the From domain, the shared selector
    keys.make("other.test", "any", "rsa")
    relay2 = world.relay(extra=keys.section("*", "any",
                                            keyof=("other.test", "any")))
    q3, _ = submit(relay2, ["rcpt@dest.test"], msg(frm="x@other.test"),
                   sender=SENDER)
    wait_event(relay2, "delivered", "rcpt@dest.test")
    raw = srv.snapshot()["messages"][-1]["data"]
    assert queued(relay2, q3)["dkim"] == "other.test/any"
    assert verdicts(raw, keys) == [("other.test", "any", True)]


BAD_INPUTS = [
    # (label, message, expected dkim= value, logged reason or None)
    ("no_from", lambda: msg(frm=None), "none", "no_from"),
    ("multiple_from", lambda: msg(headers=["From: b@example.com"]), "none",
     "multiple_from"),
    ("from_no_domain", lambda: msg(frm="undisclosed-recipients:;"), "none",
     "from_no_domain"),
    ("empty_body", lambda: msg(raw_body=b"\r\n"), "example.com/r", None),
    ("headers_only", lambda: msg(raw_body=b""), "example.com/r", None),
    ("trailing_blank_lines", lambda: msg(body=["x", "", "", "  ", ""]),
     "example.com/r", None),
    ("eight_bit_header", lambda: msg(subject="caf\u00e9 \u2603"),
     "example.com/r", None),
    ("folded_long_header", lambda: msg(headers=[
        "X-Long: " + "\r\n ".join(["word" * 40] * 30)]), "example.com/r",
     None),
    ("signed_by_someone_else", lambda: msg(headers=[
        "DKIM-Signature: v=1; a=rsa-sha256; d=elsewhere.test; s=x;\r\n"
        "\tc=relaxed/relaxed; h=from; bh=AAAA; b=AAAA"]),
     "example.com/r", None),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_never_refused(world, case):
    label, make, want, reason = case
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    srv = dest(world)
    relay = world.relay(extra=keys.section("example.com", "r"))
    m = make()
    qid, _ = submit(relay, ["rcpt@dest.test"], m, sender=SENDER)
    assert queued(relay, qid)["dkim"] == want
    raw = delivered(world, srv, relay, qid)
    assert raw.endswith(m)
    if reason is not None:
        ev = [e for e in events(relay, "dkim-unsigned") if e["id"] == qid]
        assert ev and ev[0]["reason"] == reason, relay.stderr_text()[-2000:]
        assert not raw.startswith(b"DKIM-Signature")
        return
    v = verdicts(raw, keys)
    assert v[0] == ("example.com", "r", True), v
    if label == "signed_by_someone_else":
        assert v[1][:2] == ("elsewhere.test", "x") and not v[1][2]


def test_redelivery_after_451_sends_identical_bytes(world):
    keys = Keys(world.tmp)
    keys.make("example.com", "e", "ed25519")
    srv = dest(world)
    relay = world.relay(extra=keys.section("example.com", "e"))
    qid, m = submit(relay, ["now@dest.test", "later@dest.test"], msg(),
                    sender=SENDER)
    wait_event(relay, "deferred", "later@dest.test")
    wait_event(relay, "delivered", "later@dest.test", timeout=30)
    got = srv.snapshot()["messages"]
    assert len(got) == 2, got
    assert got[0]["data"] == got[1]["data"]
    assert got[0]["rcpts"] == ["now@dest.test"]
    assert got[1]["rcpts"] == ["later@dest.test"]
    assert verdicts(got[1]["data"], keys) == [("example.com", "e", True)]


# ------------------------------------------------------ keys at start/reload

def test_bad_key_refuses_start_and_reload(world, tmp_path):
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    dest(world)
    missing = tmp_path / "missing.pem"
    r = world.relay(extra=f"[dkim example.com]\nselector = s\n"
                          f"key = {missing}\n", start=False)
    p = run_mta("serve", conf=r.conf, check=False, timeout=30)
    text = p.stderr.decode()
    assert p.returncode != 0, text
    m = re.search(re.escape(str(r.conf)) + r":(\d+): key: cannot load "
                  + re.escape(str(missing)) + ": No such file", text)
    assert m, text[-2000:]
    lines = r.conf.read_text().splitlines()
    assert lines[int(m.group(1)) - 1].startswith("key = "), lines
    # a running relay keeps its keys when a reload names a bad one
    relay = world.relay(extra=keys.section("example.com", "r"))
    conf = relay.conf.read_text()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    relay.conf.write_text(conf.replace(str(keys.path[("example.com", "r")]),
                                       str(junk)))
    relay.proc.send_signal(signal.SIGHUP)
    ev = wait_event(relay, "reload-failed", None)[0]
    assert "junk.pem: not a PEM private key" in ev["error"], ev
    qid, _ = submit(relay, ["rcpt@dest.test"], msg(), sender=SENDER)
    assert queued(relay, qid)["dkim"] == "example.com/r"


def test_check_config_loads_keys(world, tmp_path):
    dest(world)
    relay = world.relay(extra=f"[dkim example.com]\nselector = s\n"
                              f"key = {tmp_path}/none.pem\n", start=False)
    p = run_mta("check-config", conf=relay.conf, check=False)
    assert p.returncode == 1
    assert re.search(rb":\d+: key: cannot load .*none.pem: No such file",
                     p.stderr), p.stderr


# ------------------------------------------------------------ dkim check

def test_dkim_check_compares_published_key(world):
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    keys.make("example.com", "e", "ed25519")
    other = Keys(world.tmp / "o")
    (world.tmp / "o").mkdir()
    other.make("example.com", "e", "ed25519")
    dest(world, {"r._domainkey.example.com":
                 {"TXT": [keys.strings["r._domainkey.example.com"]]},
                 "e._domainkey.example.com":
                 {"TXT": other.strings["e._domainkey.example.com"]}})
    relay = world.relay(extra=keys.section("example.com", "r") +
                        keys.section("example.com", "e"), start=False)
    p = run_mta("dkim", "check", "example.com", conf=relay.conf,
                check=False)
    out = p.stdout.decode()
    assert p.returncode == 1, out
    assert re.search(r"^r\._domainkey\.example\.com: ok.*rsa, 2048 bits",
                     out, re.M), out
    assert re.search(r"^e\._domainkey\.example\.com: MISMATCH", out,
                     re.M), out
    p = run_mta("dkim", "check", "nokey.test", conf=relay.conf, check=False)
    assert p.returncode == 1 and b"no [dkim nokey.test]" in p.stderr


# ------------------------------------------------------------ OpenDKIM

def test_opendkim_verifies_rsa(world, tmp_path):
    """opendkim-testmsg asks the system resolver: in a private mount
    namespace /etc/resolv.conf names 127.0.0.1, where the tests' DNS
    server answers on port 53 (this network namespace is the test's)."""
    if shutil.which("opendkim-testmsg") is None:
        pytest.skip("opendkim-tools is not installed")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private resolv.conf")
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    keys.make("example.com", "e", "ed25519")
    srv = dest(world)
    from dns_server import DNSServer
    try:
        dns53 = DNSServer({"ttl": 300, "soa": "test", "records": {
            "r._domainkey.example.com":
            {"TXT": [keys.strings["r._domainkey.example.com"]]}}},
            port=53).start()
    except OSError as e:
        pytest.skip(f"cannot serve DNS on 127.0.0.1:53 here: {e}")
    try:
        relay = world.relay(extra=keys.section("example.com", "r"))
        qid, _ = submit(relay, ["rcpt@dest.test"], msg(), sender=SENDER)
        raw = delivered(world, srv, relay, qid)
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")

        def testmsg(data):
            return subprocess.run(
                ["unshare", "-m", "sh", "-c",
                 f"mount --bind {resolv} /etc/resolv.conf && "
                 "exec opendkim-testmsg"],
                input=data, capture_output=True, timeout=60)
        p = testmsg(raw)
        if b"mount" in p.stderr and p.returncode != 0:
            pytest.skip(f"no private mount namespace: {p.stderr!r}")
        assert p.returncode == 0, p.stderr
        assert dns53.count("r._domainkey.example.com") >= 1
        i = raw.rindex(b"bye")
        p = testmsg(raw[:i] + b"Bye" + raw[i + 3:])
        assert p.returncode != 0, "opendkim-testmsg accepted a changed body"
    finally:
        dns53.stop()


def test_reload_adds_and_changes_keys(world):
    """Keys come with SIGHUP: a relay started without [dkim] signs after a
    reload adds one (on its receive threads: no pool was started), and a
    reload to another key signs with that one."""
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    keys.make("example.com", "e", "ed25519")
    srv = dest(world)
    relay = world.relay()
    q1, _ = submit(relay, ["rcpt@dest.test"], msg(), sender=SENDER)
    assert queued(relay, q1)["dkim"] == "none"
    base = relay.conf.read_text()
    for n, sel in enumerate(("r", "e"), 1):
        relay.conf.write_text(base + "\n" + keys.section("example.com", sel))
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(events(relay, "reloaded")) >= n, 10,
                   "event=reloaded")
        q, _ = submit(relay, ["rcpt@dest.test"], msg(), sender=SENDER)
        assert queued(relay, q)["dkim"] == f"example.com/{sel}"
        raw = delivered(world, srv, relay, q, count=n + 1)
        assert verdicts(raw, keys) == [("example.com", sel, True)]


def test_bounce_signed_for_relay_domain(world):
    """A DSN comes from MAILER-DAEMON@[server] hostname (relay.test): with a
    key for that domain it is signed like any message, and verifies."""
    keys = Keys(world.tmp)
    keys.make("relay.test", "b", "ed25519")
    keys.make("example.com", "r", "rsa")
    zone = {"example.com": {"MX": [[10, "mx.dest.test"]]}}
    world.zone({"dest.test": {"MX": [[10, "mx.dest.test"]]},
                "mx.dest.test": {"A": ["127.0.0.31"]}, **zone})
    srv = world.server("127.0.0.31", rcpt=rcpt_table(
        {"gone@dest.test": "550 5.1.1 no such user"}))
    relay = world.relay(extra=keys.section("relay.test", "b") +
                        keys.section("example.com", "r"))
    qid, _ = submit(relay, ["gone@dest.test"], msg(), sender=SENDER)
    wait_event(relay, "delivered", SENDER)
    dsn = [m for m in srv.snapshot()["messages"] if m["rcpts"] == [SENDER]]
    assert len(dsn) == 1, srv.snapshot()["messages"]
    raw = dsn[0]["data"]
    assert b"MAILER-DAEMON@relay.test" in raw
    assert verdicts(raw, keys) == [("relay.test", "b", True)]
    ev = events(relay, "dkim-signed")
    assert ev and ev[0]["dkim"] == "relay.test/b", relay.stderr_text()[-2000:]
    bad = raw.replace(b"no such user", b"no such usEr")
    assert bad != raw and verdicts(bad, keys) == [("relay.test", "b", False)]


def test_sendmail_signed_via_socket_and_maildrop(world):
    """Local submission is signed too: `mta sendmail` to the running relay
    (its local socket, a session like any other), and a message left in
    the maildrop while the relay was down, signed when it is imported."""
    from test_sendmail import sendmail as run_sendmail
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    srv = dest(world)
    relay = world.relay(extra=keys.section("example.com", "r"))
    relay.conf.chmod(0o644)
    text = (b"From: App <app@example.com>\nTo: rcpt@dest.test\n"
            b"Subject: local\n\nfrom a script\n")
    p = run_sendmail(relay, "-t", "-i", input=text)
    assert p.returncode == 0, p.stderr
    raw = delivered(world, srv, relay, None)
    assert verdicts(raw, keys) == [("example.com", "r", True)]
    relay.stop()
    p = run_sendmail(relay, "-t", "-i", input=text.replace(b"local",
                                                           b"dropped"))
    assert p.returncode == 0, p.stderr
    relay.start()
    wait_until(lambda: srv.message_count() >= 2, 30, "the maildrop message")
    raw = srv.snapshot()["messages"][-1]["data"]
    assert b"Subject: dropped" in raw
    assert verdicts(raw, keys) == [("example.com", "r", True)]
    ev = events(relay, "dkim-signed")
    assert ev and ev[0]["dkim"] == "example.com/r", relay.stderr_text()[-2000:]


def test_bare_lf_and_bdat_signed_over_stored_bytes(world):
    """The hand-written client's bare-LF message (DATA) and the same
    message in BDAT chunks cut mid-line and between CR and LF: the body is
    hashed as it streams in, over the normalised bytes the queue stores,
    so both verify, and both carry the same bh= (same stored body)."""
    keys = Keys(world.tmp)
    keys.make("example.com", "r", "rsa")
    keys.make("example.com", "e", "ed25519")
    srv = dest(world)
    relay = world.relay(extra=keys.section("example.com", "r") +
                        keys.section("example.com", "e"))
    head = (b"From: Joe <joe@example.com>\nTo: <rcpt@dest.test>\n"
            b"Subject: bare lf\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=us-ascii\n")
    # no line end at the very end: the CR LF before "." ends that line
    body = b"Hello  world \t\nsecond line\n.\n\nlast"
    with relay.client() as c:
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<rcpt@dest.test>\r\n"
               "DATA\r\n".encode())
        assert [r.code for r in c.read_replies(3)] == [250, 250, 354]
        c.send(head + b"\n" + body + b"\r\n.\r\n")
        r = c.read_reply()
        assert r.code == 250, r
        q1 = r.text.split()[-1]
        # the same message, CRLF, in BDAT chunks cut at awkward places
        crlf = (head + b"\n" + body).replace(b"\n", b"\r\n") + b"\r\n"
        cuts = [0, 7, crlf.index(b"\r\n\r\n") + 1, len(crlf) - 3,
                len(crlf) - 1, len(crlf)]
        chunks = [crlf[a:b] for a, b in zip(cuts, cuts[1:])]
        wire = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<rcpt@dest.test>\r\n".encode()
        for i, ch in enumerate(chunks):
            last = " LAST" if i == len(chunks) - 1 else ""
            wire += f"BDAT {len(ch)}{last}\r\n".encode() + ch
        c.send(wire)
        rs = c.read_replies(2 + len(chunks))
        assert [r.code for r in rs] == [250] * len(rs), rs
        q2 = rs[-1].text.split()[-1]
    assert queued(relay, q1)["dkim"] == "example.com/r,example.com/e"
    assert queued(relay, q2)["dkim"] == "example.com/r,example.com/e"
    wait_event(relay, "delivered", "rcpt@dest.test", count=2)
    got = [m["data"] for m in srv.snapshot()["messages"]]
    assert len(got) == 2
    bhs = []
    for raw in got:
        assert b"\n" not in raw.replace(b"\r\n", b""), raw
        assert raw.endswith(crlf), raw[-200:]
        assert verdicts(raw, keys) == [("example.com", "r", True),
                                       ("example.com", "e", True)]
        bhs.append(re.findall(rb"bh=([^;]+);", raw))
    assert bhs[0] == bhs[1], bhs


@pytest.mark.parametrize("eightbit_peer", [False, True])
def test_8bit_message_leaves_7bit_and_verifies(world, eightbit_peer):
    """An 8-bit body is made 7-bit (quoted-printable) before it is signed,
    so the signature survives a next hop without 8BITMIME (which would
    otherwise get a copy converted after signing) and every next hop
    gets the same bytes; the text still decodes to the original."""
    keys = Keys(world.tmp)
    keys.make("example.com", "e", "ed25519")
    world.zone({"dest.test": {"MX": [[10, "mx.dest.test"]]},
                "mx.dest.test": {"A": ["127.0.0.30"]}})
    srv = world.server("127.0.0.30", eightbitmime=eightbit_peer)
    relay = world.relay(extra=keys.section("example.com", "e"))
    text = "Grüße aus Köln, naïve café — ünïcödé\r\n"
    m = msg(headers=["MIME-Version: 1.0",
                     "Content-Type: text/plain; charset=utf-8",
                     "Content-Transfer-Encoding: 8bit"],
            raw_body=b"\r\n" + text.encode() * 3)
    with relay.client() as c:
        c.ehlo()
        r = send_message(c, m, sender=SENDER, rcpts=("rcpt@dest.test",),
                         mail_params="BODY=8BITMIME")
        qid = queued_id(r, c)
    assert queued(relay, qid)["dkim"] == "example.com/e"
    raw = delivered(world, srv, relay, qid)
    assert all(b < 0x80 for b in raw), "8-bit bytes on the wire"
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    assert verdicts(raw, keys) == [("example.com", "e", True)]
    body = email.message_from_bytes(raw, policy=email.policy.default)
    got = body.get_content().replace("\r\n", "\n")
    assert got == (text * 3).replace("\r\n", "\n"), got
