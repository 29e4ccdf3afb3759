# SPDX-License-Identifier: ISC
"""The load tools fail fast and measure honestly (issue 14, item 4).

mta-load: every failure mode ends in seconds with the right exit status
(a closed port, a connect that hangs, a silent server, an implicit-TLS port without --tls,
every message refused); --tls, host names, --template and --header (as
they arrive at mta-sink --dump), AUTH LOGIN, the open-loop rate check
and the --interval time series. mta-sink: --auth (accept any, a users
file) and --dump. relay-bench: its CPU source and its parser, the
raw row flagged when it is no ceiling, its DKIM checks of delivered
messages (signatures of the expected keys that verify, OpenDKIM's mark
for Postfix), its openssl speed parser and the sign share it reports.

Binaries come from $MTA_BUILD (default: build/). Loopback only; every
subprocess has a timeout."""
import email
import email.utils
import importlib.machinery
import importlib.util
import json
import os
import re
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import free_port, san_problems
from test_bench import (BUILD, HOST, LOAD, REPO, Sink,  # noqa: F401
                        starttls_arg, tls_cert)


def run_load(args, timeout=30):
    """mta-load with args: (exit status, last stdout line as JSON or None,
    every stdout line, stderr, seconds taken)."""
    cmd = [str(LOAD)] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(cmd)}: no exit within {timeout}s")
    took = time.monotonic() - t0
    err = p.stderr.decode(errors="replace")
    assert not san_problems(err), err[-4000:]
    lines = p.stdout.decode().strip().splitlines()
    rep = None
    if lines and lines[-1].startswith("{"):
        rep = json.loads(lines[-1])
    return p.returncode, rep, lines, err, took


def srv(port, host=HOST):
    return ["--server", f"{host}:{port}", "--quiet"]


# ------------------------------------------------------------ fail fast

def test_closed_port_stops_at_once_with_exit_1():
    """Nothing listens: the run stops after the first round of connects,
    says why, exits 1 (it used to retry at ~75,000 errors/s forever)."""
    port = free_port()
    rc, rep, _, err, took = run_load(
        srv(port) + ["--messages", 100000, "--connections", 20, "--json"])
    assert rc == 1, err
    assert took < 5, f"took {took:.1f}s"
    assert "Connection refused" in err and "stopping" in err, err
    assert rep["accepted"] == 0 and rep["errors"] <= 40, rep


def test_connect_timeout():
    """A listener whose accept queue is full drops new SYNs: the connect
    would hang for minutes; --connect-timeout ends it, exit 1."""
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fill = []
    try:
        for _ in range(3):  # the queue (1 with backlog 0) and a spare
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect((HOST, port))
            except BlockingIOError:
                pass
            fill.append(c)
        time.sleep(0.3)
        rc, rep, _, err, took = run_load(
            srv(port) + ["--messages", 5, "--connections", 2,
                         "--connect-timeout", "0.5", "--json"])
    finally:
        for c in fill:
            c.close()
        lsock.close()
    assert rc == 1, err
    assert took < 5, f"took {took:.1f}s"
    assert "connect: Connection timed out" in err, err
    assert rep["accepted"] == 0, rep


class Silent:
    """Accepts connections (the kernel's backlog does) and never says a
    word: a server that hangs before its greeting."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_silent_server_greeting_timeout():
    with Silent() as s:
        rc, rep, _, err, took = run_load(
            srv(s.port) + ["--messages", 10, "--connections", 3,
                           "--greeting-timeout", "0.5", "--json"])
    assert rc == 1, err
    assert took < 5, f"took {took:.1f}s"
    assert "no greeting within 0.5 s" in err, err
    assert rep["accepted"] == 0, rep


@pytest.fixture
def tls_relay(tmp_path, tls_cert, relay_factory):
    """A relay with an implicit-TLS listener, delivering to a sink."""
    sink = Sink(tmp_path)
    sink.__enter__()
    tls_port = free_port()
    relay = relay_factory({
        "server": {"listen_tls": f"{HOST}:{tls_port}"},
        "tls": {"certificate": tls_cert[0], "private_key": tls_cert[1]},
        "route *": {"host": f"[{HOST}]:{sink.port}"},
    })
    yield relay, tls_port, sink
    sink.__exit__()


def test_implicit_tls(tls_relay):
    """--tls against an implicit-TLS port: handshake, then the greeting,
    every message accepted. Without --tls the same port answers nothing
    in plaintext: the run ends at the greeting timeout, exit 1 (it used
    to hang)."""
    relay, tls_port, sink = tls_relay
    rc, rep, _, err, _ = run_load(
        srv(tls_port) + ["--tls", "--messages", 20, "--connections", 2,
                         "--json"], timeout=60)
    assert rc == 0, err
    assert rep["accepted"] == 20 and rep["errors"] == 0, rep
    assert rep["tls"]["handshakes"] == 2, rep
    rc, rep, _, err, took = run_load(
        srv(tls_port) + ["--messages", 5, "--connections", 2,
                         "--greeting-timeout", "1", "--json"])
    assert rc == 1, err
    assert took < 8, f"took {took:.1f}s"
    assert rep["accepted"] == 0, rep
    assert "stopping" in err, err


def test_every_message_refused_exits_1(tmp_path):
    with Sink(tmp_path, "--permfail", 100) as s:
        rc, rep, _, err, _ = run_load(
            srv(s.port) + ["--messages", 20, "--connections", 2, "--json"])
        s.stop()
    assert rc == 1, err
    assert rep["refused"] == 20 and rep["accepted"] == 0, rep
    assert "every message was refused" in err, err


def test_mostly_refused_says_so(tmp_path):
    with Sink(tmp_path, "--permfail", 90) as s:
        rc, rep, _, err, _ = run_load(
            srv(s.port) + ["--messages", 200, "--connections", 2, "--json"])
        s.stop()
    assert rep["refused"] > 100, rep
    assert rc == (0 if rep["accepted"] else 1), err
    assert "most messages were refused" in err or rep["accepted"] == 0, err


def test_host_name(tmp_path):
    """localhost is looked up; of its addresses the one that answers is
    used (the sink listens on 127.0.0.1 only, localhost may be ::1 first)."""
    with Sink(tmp_path) as s:
        rc, rep, _, err, _ = run_load(
            srv(s.port, "localhost") + ["--messages", 30, "--json"])
        s.stop()
    assert rc == 0, err
    assert rep["accepted"] == 30, rep
    assert len(s.records()) == 30


def test_unknown_host_name_fails_at_once():
    rc, _, _, err, took = run_load(
        ["--server", "no-such-host.invalid:25", "--quiet"], timeout=60)
    assert rc == 1 and "no-such-host.invalid" in err, err


# ------------------------------------------------------------ the message

TEMPLATE = (
    "From: Load <{from}>\n"
    "To: <{rcpt}>\n"
    "Subject: message {n} of the run\n"
    "Date: {date}\n"
    "Message-ID: {msgid}\n"
    "\n"
    "Hello {n}, {unknown} stays.\n"
    ".a line that starts with a dot\n"
)


def dumped(d):
    out = []
    for p in sorted(d.iterdir()):
        assert p.suffix == ".eml", p
        out.append(email.message_from_bytes(p.read_bytes()))
    return out


def test_template_and_headers_arrive(tmp_path):
    tmpl = tmp_path / "tmpl.eml"
    tmpl.write_text(TEMPLATE)
    dump = tmp_path / "dump"
    dump.mkdir()
    n = 5
    with Sink(tmp_path, "--dump", dump) as s:
        rc, rep, _, err, _ = run_load(
            srv(s.port) + ["--messages", n, "--connections", 2, "--json",
                           "--template", tmpl, "--header", "X-Campaign: c1",
                           "--header", "X-Tag: t2"])
        s.stop()
    assert rc == 0 and rep["accepted"] == n, err
    recs = {r["message_id"]: r for r in s.records()}
    msgs = dumped(dump)
    assert len(msgs) == n
    numbers = set()
    for m in msgs:
        assert m["X-Campaign"] == "c1" and m["X-Tag"] == "t2", m
        assert m["From"] == "Load <load@mta-load.test>", m["From"]
        assert m["To"] == f"<{m['X-Mta-Sink-Rcpt'].strip('<>')}>", m
        assert m["X-Mta-Sink-From"] == "<load@mta-load.test>"
        sub = re.fullmatch(r"message (\d+) of the run", m["Subject"])
        assert sub, m["Subject"]
        numbers.add(int(sub.group(1)))
        assert email.utils.parsedate_to_datetime(m["Date"]) is not None
        assert re.fullmatch(r"<[0-9a-f]+\.\d+@mta-load>", m["Message-ID"])
        assert m["Message-ID"] in recs, (m["Message-ID"], list(recs))
        assert m["X-Mta-Load-Sent"], m
        body = m.get_payload()
        assert f"Hello {sub.group(1)}, {{unknown}} stays.\r\n" in body, body
        # dot-stuffed on the way, unstuffed by the sink
        assert "\r\n.a line that starts with a dot\r\n" in "\r\n" + body, body
    assert numbers == set(range(1, n + 1)), numbers


def test_dump_keeps_only_accepted(tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    with Sink(tmp_path, "--dump", dump, "--permfail", 50, "--fail-at",
              "data") as s:
        rc, rep, _, err, _ = run_load(
            srv(s.port) + ["--messages", 40, "--connections", 2, "--json"])
        s.stop()
    assert rep["accepted"] + rep["refused"] == 40, rep
    files = list(dump.iterdir())
    assert len(files) == rep["accepted"] == len(s.records()), files
    assert not [f for f in files if f.name.endswith(".tmp")]


def test_bad_header_is_a_usage_error():
    rc, _, _, err, _ = run_load(srv(free_port()) + ["--header", "NoColon"])
    assert rc == 2 and "bad --header" in err, err


# ------------------------------------------------------------ AUTH

def smtp(port):
    c = smtplib.SMTP(HOST, port, timeout=10)
    c.ehlo("test")
    return c


def test_sink_auth_users_file(tmp_path):
    users = tmp_path / "users"
    users.write_text("# test users\nalice:s3cret\nbob:other:colon\n")
    with Sink(tmp_path, "--auth", users) as s:
        c = smtp(s.port)
        assert "PLAIN" in c.esmtp_features["auth"]
        assert "LOGIN" in c.esmtp_features["auth"]
        # MAIL needs AUTH
        code, _ = c.mail("a@b.test")
        assert code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as ex:
            c.login("alice", "wrong")
        assert ex.value.smtp_code == 535
        c.quit()
        c = smtp(s.port)
        c.login("bob", "other:colon")
        assert c.mail("a@b.test")[0] == 250
        c.quit()
        # AUTH LOGIN, by mta-load, and AUTH PLAIN
        for extra in (["--auth-login"], []):
            rc, rep, _, err, _ = run_load(
                srv(s.port) + ["--auth", "alice:s3cret", "--messages", 5,
                               "--json"] + extra)
            assert rc == 0 and rep["accepted"] == 5, err
        rc, rep, _, err, took = run_load(
            srv(s.port) + ["--auth", "alice:nope", "--auth-login",
                           "--messages", 5, "--json"])
        assert rc == 1 and "AUTH refused" in err, err
        assert rep["codes"].get("535"), rep
        totals = s.stop()
    # bob, then 10 connections of each of the two good runs
    assert totals["auth"] == 1 + 2 * 10, totals
    # smtplib's (it tries each mechanism), then the bad run's 10
    assert totals["authfail"] >= 1 + 10, totals
    recs = s.records()
    assert len(recs) == 10 and {r.get("auth") for r in recs} == {"alice"}


def test_sink_auth_any(tmp_path):
    with Sink(tmp_path, "--auth", "any") as s:
        c = smtp(s.port)
        c.login("anyone", "anything")
        assert c.mail("a@b.test")[0] == 250
        c.quit()
        s.stop()


def test_sink_without_auth_offers_none(tmp_path):
    with Sink(tmp_path) as s:
        c = smtp(s.port)
        assert "auth" not in c.esmtp_features
        c.quit()
        s.stop()


# ------------------------------------------------------------ measuring

def test_open_loop_rate_missed_is_reported(tmp_path):
    """A rate one connection cannot reach: the report says missed, with
    the target and what was achieved; a rate that is reached is not."""
    with Sink(tmp_path, "--delay", 2, "--delay-cmds", "dot") as s:
        rc, rep, _, err, _ = run_load(
            srv(s.port) + ["--rate", 5000, "--messages", 400,
                           "--connections", 1, "--json"])
        assert rc == 0, err
        r = rep["rate"]
        assert r["target"] == 5000 and r["missed"] is True, rep
        assert 0 < r["achieved"] < 4000, rep
        assert "target rate was missed" in err, err
        rc, rep, _, err, _ = run_load(
            srv(s.port) + ["--rate", 40, "--messages", 40,
                           "--connections", 4, "--json"])
        s.stop()
    assert rc == 0, err
    assert rep["rate"]["target"] == 40 and rep["rate"]["missed"] is False
    assert 36 <= rep["rate"]["achieved"] <= 44, rep
    assert "missed" not in err, err


def test_interval_time_series(tmp_path):
    with Sink(tmp_path) as s:
        rc, rep, lines, err, _ = run_load(
            srv(s.port) + ["--rate", 200, "--duration", 2, "--interval",
                           "0.5", "--json", "--connections", 2])
        s.stop()
    assert rc == 0, err
    series = [json.loads(l) for l in lines[:-1]]
    assert 3 <= len(series) <= 4, lines
    ts = [p["t"] for p in series]
    assert ts == sorted(ts) and abs(ts[0] - 0.5) < 0.3, ts
    for p in series:
        assert 60 <= p["msgs_per_s"] <= 340, p
        assert p["p50_ms"] <= p["p99_ms"] <= p["max_ms"] < 1000, p
    assert sum(p["accepted"] for p in series) <= rep["accepted"]


# ------------------------------------------------------------ relay-bench

def relay_bench_module():
    path = str(REPO / "bench" / "relay-bench")
    loader = importlib.machinery.SourceFileLoader("relay_bench", path)
    spec = importlib.util.spec_from_loader("relay_bench", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_relay_bench_cpu_source():
    rb = relay_bench_module()
    # the parsers
    assert rb.parse_schedstat("123456789 4242 17\n") == 123456789
    stat = ("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
            "7 3 11 13 20 0 1 0 100 1000 10 18446744073709551615")
    assert rb.parse_stat(stat) == (1, 24)
    # nanoseconds, not clock ticks: about 4 ms of CPU shows as such
    me = os.getpid()
    c0 = rb.cpu_seconds([me])
    p0 = time.process_time()
    while time.process_time() - p0 < 0.004:
        pass
    d = rb.cpu_seconds([me]) - c0
    assert 0.003 < d < 0.0095, f"{d:.6f}s is not the 4 ms spent"
    assert "schedstat" in rb.CPU_SOURCE


def test_relay_bench_flags_raw_below_relay():
    rb = relay_bench_module()
    summary = {
        "w1": {"raw": {"delivered_per_s": 900.0}, "mta": {"delivered_per_s":
                                                           1200.0}},
        "w2": {"raw": {"delivered_per_s": 5000.0}, "mta": {"delivered_per_s":
                                                            1200.0}},
    }
    for per in summary.values():
        for v in per.values():
            v.update({k: None for k, _, _ in rb.METRICS
                      if k != "delivered_per_s"}, runs=1, complete=1)
    below = rb.flag_raw(summary, ["raw", "mta"])
    assert below == [("w1", "mta")]
    table = rb.markdown_table(summary, ["raw", "mta"], ["w1", "w2"])
    rows = [l for l in table.splitlines() if "raw" in l]
    assert "not a ceiling" in rows[0] and "not a ceiling" not in rows[1]


def test_relay_bench_dkim_checks(tmp_path):
    """What relay-bench accepts as a signed delivery: one signature per
    key of the system, verifying against the keys' records; OpenDKIM's
    DKIM-Filter field for Postfix; a changed byte fails."""
    dkim = pytest.importorskip("dkim")
    rb = relay_bench_module()
    rb.make_dkim_keys(str(BUILD / "mta"), str(tmp_path))
    assert rb.DKIM_KEYS["rsa"]["txt"].startswith("v=DKIM1; k=rsa; p=MII")
    msg = (b"From: <a@mta-load.test>\r\nTo: <b@x.test>\r\n"
           b"Subject: hi\r\n\r\nbody\r\n")
    with open(rb.DKIM_KEYS["rsa"]["key"], "rb") as f:
        key = f.read()
    sig = dkim.sign(msg, b"srsa", rb.DKIM_DOMAIN.encode(), key,
                    include_headers=[b"from", b"to", b"subject"])
    signed = sig + msg
    assert rb.check_message("mta+rsa", signed) is None
    assert "expected" in rb.check_message("mta+both", signed)
    assert "expected" in rb.check_message("mta+rsa", msg)
    assert "OpenDKIM" in rb.check_message("postfix+opendkim", signed)
    assert rb.check_message(
        "postfix+opendkim", b"DKIM-Filter: OpenDKIM Filter v2\r\n"
        + signed) is None
    changed = signed.replace(b"body", b"bodY")
    assert "verify" in rb.check_message("mta+rsa", changed)


def test_relay_bench_openssl_speed_and_share():
    """openssl speed's rates parsed; the sign share is the signatures'
    time over the CPU per message (1 ms of 1.25 ms: 80%)."""
    rb = relay_bench_module()
    rates, cmd = rb.openssl_speed(1)
    assert cmd == "openssl speed -seconds 1 rsa2048 ed25519"
    assert rates["rsa"] > 50 and rates["ed25519"] > rates["rsa"], rates
    summary = {"w": {"mta": {"delivered_per_s": 4000.0},
                     "mta+rsa": {"delivered_per_s": 1600.0,
                                 "cpu_s_per_1k": 1.25},
                     "postfix+opendkim": {"delivered_per_s": 100.0,
                                          "cpu_s_per_1k": 10.0}}}
    md = rb.dkim_report(summary, ["mta", "mta+rsa", "postfix+opendkim"],
                        ["w"], {"rsa": 1000.0, "ed25519": 20000.0},
                        "openssl speed", {})
    rows = {r.split("|")[2].strip(): [c.strip() for c in r.split("|")[3:-1]]
            for r in md.splitlines() if r.startswith("| w |")}
    # signed msg/s, CPUs used, CPU ms, openssl ms, share, ÷ unsigned, ÷
    assert rows["mta, DKIM RSA-2048"] == [
        "1600", "2.00", "1.250", "1.000", "80%", "40%", "—"], rows
    assert rows["postfix + OpenDKIM, RSA-2048"][4] == "10%", rows
    assert rows["postfix + OpenDKIM, RSA-2048"][6] == "16.0×", rows
