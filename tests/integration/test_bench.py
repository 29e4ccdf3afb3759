# SPDX-License-Identifier: ISC
"""The bundled load tools and the end-to-end benchmark: mta-load against
mta-sink with small counts (every message accepted and recorded exactly
once, injected failures counted by reply code on both sides, --json,
--new-conn, --rate), and `bench/relay-bench --quick` end to end through
`mta serve` (without Postfix).

Binaries come from $MTA_BUILD (default: build/). Everything runs on free
127.0.0.1 ports; every subprocess has a timeout."""
import json
import os
import pathlib
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, san_problems

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MTA_BUILD") or "build")
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
SINK = BUILD / "mta-sink"
LOAD = BUILD / "mta-load"
RELAY_BENCH = REPO / "bench" / "relay-bench"
HOST = "127.0.0.1"


class Sink:
    """mta-sink on a free loopback port, recording to tmp/NAME.record."""

    def __init__(self, tmp, *args, name="sink"):
        self.port = free_port()
        self.record = pathlib.Path(tmp) / f"{name}.record"
        self.outp = pathlib.Path(tmp) / f"{name}.stdout"
        self.errp = pathlib.Path(tmp) / f"{name}.stderr"
        self.cmd = [str(SINK), "--listen", f"{HOST}:{self.port}", "--record",
                    str(self.record), "--quiet"] + [str(a) for a in args]
        self.proc = None
        self.totals = None

    def __enter__(self):
        with open(self.outp, "wb") as out, open(self.errp, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        # "ready" is printed once every listener is bound; waiting for it
        # (not probing the port) keeps the connection count exact
        deadline = time.monotonic() + 20
        while b"mta-sink: ready" not in self.errp.read_bytes():
            if self.proc.poll() is not None:
                raise AssertionError(f"mta-sink exited {self.proc.returncode}: "
                                     + self.errp.read_text(errors="replace"))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("mta-sink: no 'ready' within 20s")
            time.sleep(0.02)
        return self

    def stop(self):
        """SIGTERM; returns the totals line as a dict of ints."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("mta-sink did not exit within 15s of SIGTERM")
        assert self.proc.returncode == 0, f"mta-sink exited {self.proc.returncode}"
        err = self.errp.read_bytes()
        assert not san_problems(err), err.decode(errors="replace")[-4000:]
        out = self.outp.read_text()
        m = re.search(r"^mta-sink: total (.*)$", out, re.M)
        assert m, f"no totals line in mta-sink's output: {out!r}"
        self.totals = {k: int(v) for k, v in
                       (kv.split("=", 1) for kv in m.group(1).split())}
        return self.totals

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def records(self):
        if not self.record.exists():
            return []
        out = []
        for n, line in enumerate(self.record.read_text().splitlines(), 1):
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"record line {n} is not JSON: {line!r}")
        return out


def load(port, *args, timeout=60):
    """Run mta-load --json; returns the parsed report."""
    cmd = [str(LOAD), "--server", f"{HOST}:{port}", "--json", "--quiet"] + \
        [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(cmd)}: no exit within {timeout}s")
    err = p.stderr.decode(errors="replace")
    assert not san_problems(err), err[-4000:]
    assert p.returncode == 0, f"mta-load exited {p.returncode}: {err[-2000:]}"
    lines = p.stdout.decode().strip().splitlines()
    assert len(lines) == 1, f"--json must print one line, got {p.stdout!r}"
    rep = json.loads(lines[0])
    check_report_shape(rep)
    return rep


def check_report_shape(rep):
    for k in ("attempted", "accepted", "refused", "errors"):
        assert isinstance(rep[k], int) and rep[k] >= 0, (k, rep)
    for k in ("elapsed_s", "msgs_per_s", "msgs_per_hour"):
        assert isinstance(rep[k], (int, float)) and rep[k] >= 0, (k, rep)
    lat = rep["latency_ms"]
    keys = ["p50", "p90", "p99", "p99.9", "max"]
    assert set(lat) == set(keys), lat
    vals = [lat[k] for k in keys]
    assert vals == sorted(vals), f"percentiles not monotonic: {lat}"
    assert isinstance(rep["codes"], dict)
    for code, n in rep["codes"].items():
        assert re.fullmatch(r"[2-5]\d\d", code) and isinstance(n, int), rep
    # every attempted transaction ended with one reply code
    assert sum(rep["codes"].values()) == rep["attempted"], rep
    assert rep["accepted"] + rep["refused"] == rep["attempted"], rep
    assert rep["accepted"] == sum(n for c, n in rep["codes"].items()
                                  if c.startswith("2")), rep


def check_records(recs, n, rcpts=1):
    ids = [r["message_id"] for r in recs]
    assert len(recs) == n, f"{len(recs)} records for {n} messages"
    assert len(set(ids)) == n, "a Message-ID was recorded twice"
    for r in recs:
        assert re.fullmatch(r"<[0-9a-f]+\.\d+@mta-load>", r["message_id"]), r
        assert len(r["rcpts"]) == rcpts, r
        assert r["from"] == "load@mta-load.test", r
        assert isinstance(r["sent"], float) and isinstance(r["time"], float), r
        assert 0 <= r["time"] - r["sent"] < 60, r
        assert re.fullmatch(r"[0-9a-f]{64}", r["sha256"]), r


@pytest.fixture(autouse=True)
def _tools():
    for p in (SINK, LOAD):
        assert os.access(p, os.X_OK), f"{p} is missing (MTA_BUILD={BUILD})"


# ------------------------------------------------------------ clean runs

def test_every_message_accepted_and_recorded_once(tmp_path):
    n = 600
    with Sink(tmp_path) as s:
        rep = load(s.port, "--messages", n, "--connections", 10, "--rcpts", 3,
                   "--size", 2048)
        tot = s.stop()
        recs = s.records()
    assert rep["attempted"] == rep["accepted"] == n, rep
    assert rep["refused"] == 0 and rep["errors"] == 0, rep
    assert rep["codes"] == {"250": n}, rep
    assert rep["elapsed_s"] > 0 and rep["msgs_per_s"] > 0
    check_records(recs, n, rcpts=3)
    assert tot["messages"] == n and tot["recipients"] == 3 * n, tot
    assert tot["tempfail"] == tot["permfail"] == tot["dropped"] == 0, tot
    # connections reused: one per --connections
    assert tot["connections"] == 10, tot
    assert tot["bytes"] == sum(r["size"] for r in recs), tot
    # --size is approximate (headers are added to a filler body)
    sizes = {r["size"] for r in recs}
    assert all(1500 <= z <= 2600 for z in sizes), sizes


class RoundTripServer:
    """A minimal SMTP server on a free loopback port that tells whether
    the client waits for each reply: after each command (a line, or a
    message up to its final dot) it holds the reply for HOLD seconds, and
    when more input has arrived by then the client sent a command before
    it had the reply to the one before. Such commands are listed in
    early; every command seen is in commands."""

    HOLD = 0.03

    def __init__(self, pipelining):
        self.pipelining = pipelining
        self.port = free_port()
        self.commands = []
        self.early = []
        self.errors = []
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, self.port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.stopping = threading.Event()
        self.threads = []

    def __enter__(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(10)
        self.lsock.close()
        assert not self.errors, self.errors

    def _accept(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self._serve, args=(sock,),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, sock):
        try:
            with sock:
                sock.settimeout(20)
                self._session(sock)
        except Exception as e:  # reported at __exit__
            self.errors.append(repr(e))

    def _next(self, sock, buf, end):
        """(command, rest of buf): input up to and including end."""
        while end not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None, buf
            buf += chunk
        i = buf.index(end) + len(end)
        return buf[:i], buf[i:]

    def _reply(self, sock, cmd, buf, text):
        """Hold, note whether more input came meanwhile, then answer."""
        time.sleep(self.HOLD)
        if select.select([sock], [], [], 0)[0]:
            buf += sock.recv(65536)
        with self.lock:
            self.commands.append(cmd[:40])
            if buf:
                self.early.append((cmd[:40], buf[:80]))
        sock.sendall(text)
        return buf

    def _session(self, sock):
        sock.sendall(b"220 roundtrip.test ESMTP\r\n")
        buf, in_data = b"", False
        while True:
            cmd, buf = self._next(sock, buf, b"\r\n.\r\n" if in_data
                                  else b"\r\n")
            if cmd is None:
                return
            verb = cmd[:4].upper()
            if in_data:
                text, in_data = b"250 2.0.0 Ok: queued\r\n", False
            elif verb == b"EHLO":
                text = (b"250-roundtrip.test\r\n"
                        + (b"250-PIPELINING\r\n" if self.pipelining else b"")
                        + b"250 8BITMIME\r\n")
            elif verb == b"DATA":
                text, in_data = b"354 go ahead\r\n", True
            elif verb == b"QUIT":
                self._reply(sock, cmd, buf, b"221 2.0.0 Bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                text = b"250 2.0.0 Ok\r\n"
            buf = self._reply(sock, cmd, buf, text)


def _round_trips(pipelining, *load_args):
    """mta-load (4 messages, 2 RCPT each, 2 connections) against a
    RoundTripServer; returns the server after it stopped."""
    with RoundTripServer(pipelining) as srv:
        rep = load(srv.port, "--messages", 4, "--connections", 2,
                   "--rcpts", 2, "--size", 512, *load_args)
    assert rep["accepted"] == 4, rep
    assert rep["codes"] == {"250": 4}, rep
    # per message MAIL, 2 RCPT, DATA, the message; per connection EHLO, QUIT
    assert len(srv.commands) == 4 * 5 + 2 * 2, srv.commands
    return srv


def test_no_pipelining_one_command_per_round_trip(tmp_path):
    """Without PIPELINING on either side, mta-load sends each command only
    once the reply to the one before it arrived; mta-sink --no-pipelining
    does not offer it, and the counts still add up."""
    srv = _round_trips(False)
    assert not srv.early, (
        "commands sent before the previous reply although the server does "
        f"not offer PIPELINING: {srv.early[:5]}")
    srv = _round_trips(True, "--no-pipelining")
    assert not srv.early, (
        f"commands sent before the previous reply with --no-pipelining: "
        f"{srv.early[:5]}")
    # The control: offered and not refused, mta-load batches RCPT and DATA
    # behind MAIL, and the server sees it (so the checks above can fail).
    srv = _round_trips(True)
    batched = [c for c, _ in srv.early if c.upper().startswith(b"MAIL")]
    assert len(batched) == 4, f"MAIL not pipelined when offered: {srv.early}"

    n = 100
    with Sink(tmp_path, "--no-pipelining") as s:
        with socket.create_connection((HOST, s.port), timeout=10) as c:
            f = c.makefile("rb")
            assert f.readline().startswith(b"220")
            c.sendall(b"EHLO x.test\r\n")
            ehlo = []
            while not ehlo or ehlo[-1][3:4] == b"-":
                ehlo.append(f.readline())
            assert ehlo[0].startswith(b"250"), ehlo
            assert not any(b"PIPELINING" in l.upper() for l in ehlo), ehlo
            c.sendall(b"QUIT\r\n")
            assert f.readline().startswith(b"221")
        rep = load(s.port, "--messages", n, "--connections", 4, "--rcpts", 2)
        tot = s.stop()
        recs = s.records()
    assert rep["accepted"] == n, rep
    assert rep["codes"] == {"250": n}, rep
    check_records(recs, n, rcpts=2)
    assert tot["messages"] == n, tot
    assert tot["recipients"] == 2 * n, tot


# ------------------------------------------------------------ injected failures

def test_tempfail_at_rcpt_counted_by_code(tmp_path):
    n = 1000
    with Sink(tmp_path, "--tempfail", 30) as s:
        rep = load(s.port, "--messages", n, "--connections", 10)
        tot = s.stop()
        recs = s.records()
    codes = rep["codes"]
    assert set(codes) == {"250", "451"}, rep
    assert rep["attempted"] == n and rep["errors"] == 0, rep
    assert rep["refused"] == codes["451"] and rep["accepted"] == codes["250"]
    assert 200 <= codes["451"] <= 400, f"not about 30% tempfail: {codes}"
    # the sink agrees
    assert tot["tempfail"] == codes["451"], (tot, rep)
    assert tot["permfail"] == 0 and tot["messages"] == codes["250"], (tot, rep)
    check_records(recs, codes["250"])


def test_permfail_at_rcpt_counted_by_code(tmp_path):
    n = 1000
    with Sink(tmp_path, "--permfail", 20) as s:
        rep = load(s.port, "--messages", n, "--connections", 10)
        tot = s.stop()
        recs = s.records()
    codes = rep["codes"]
    assert set(codes) == {"250", "550"}, rep
    assert rep["attempted"] == n and rep["errors"] == 0, rep
    assert rep["refused"] == codes["550"] and rep["accepted"] == codes["250"]
    assert 120 <= codes["550"] <= 280, f"not about 20% permfail: {codes}"
    assert tot["permfail"] == codes["550"] and tot["tempfail"] == 0, (tot, rep)
    assert tot["messages"] == codes["250"], (tot, rep)
    check_records(recs, codes["250"])


def test_failures_at_end_of_data_counted_by_code(tmp_path):
    """--fail-at data: 554 (20%) or 451 (30% of the rest) after the dot;
    nothing refused there is recorded."""
    n = 1000
    with Sink(tmp_path, "--fail-at", "data", "--tempfail", 30,
              "--permfail", 20) as s:
        rep = load(s.port, "--messages", n, "--connections", 10, "--rcpts", 2)
        tot = s.stop()
        recs = s.records()
    codes = rep["codes"]
    assert set(codes) == {"250", "451", "554"}, rep
    assert rep["attempted"] == n and rep["errors"] == 0, rep
    assert rep["refused"] == codes["451"] + codes["554"], rep
    assert 120 <= codes["554"] <= 280, codes
    assert 160 <= codes["451"] <= 330, codes
    assert tot["permfail"] == codes["554"], (tot, rep)
    assert tot["tempfail"] == codes["451"], (tot, rep)
    assert tot["messages"] == rep["accepted"], (tot, rep)
    assert tot["recipients"] == 2 * rep["accepted"], (tot, rep)
    check_records(recs, rep["accepted"], rcpts=2)


def test_partial_recipient_failure_still_delivers(tmp_path):
    """Three recipients, 50% tempfail per RCPT: a message is accepted when
    any recipient was; the record lists exactly the accepted recipients."""
    n = 300
    with Sink(tmp_path, "--tempfail", 50) as s:
        rep = load(s.port, "--messages", n, "--connections", 5, "--rcpts", 3)
        tot = s.stop()
        recs = s.records()
    codes = rep["codes"]
    assert set(codes) <= {"250", "451"}, rep
    assert rep["accepted"] == codes.get("250", 0) and rep["errors"] == 0
    # all three refused: about 1/8 of the messages
    assert 10 <= codes.get("451", 0) <= 80, codes
    assert tot["messages"] == rep["accepted"] == len(recs), (tot, rep)
    assert tot["recipients"] == sum(len(r["rcpts"]) for r in recs), tot
    assert tot["tempfail"] + tot["recipients"] == 3 * n, tot


# ------------------------------------------------------------ modes

def test_new_conn_one_connection_per_message(tmp_path):
    n, conns = 200, 5
    with Sink(tmp_path) as s:
        rep = load(s.port, "--messages", n, "--connections", conns,
                   "--new-conn")
        tot = s.stop()
        recs = s.records()
    assert rep["accepted"] == n and rep["codes"] == {"250": n}, rep
    assert rep["errors"] == 0, rep
    check_records(recs, n)
    # one per message; a connection opened as the quota ran out may carry
    # none
    assert n <= tot["connections"] <= n + conns, tot


def test_rate_open_loop_finishes_and_reports(tmp_path):
    n, rate = 150, 300.0
    with Sink(tmp_path) as s:
        t0 = time.monotonic()
        rep = load(s.port, "--messages", n, "--connections", 5, "--rate", rate,
                   timeout=60)
        wall = time.monotonic() - t0
        tot = s.stop()
        recs = s.records()
    assert rep["attempted"] == rep["accepted"] == n, rep
    assert rep["codes"] == {"250": n}, rep
    check_records(recs, n)
    assert tot["messages"] == n, tot
    # paced: n messages at rate/s take about n/rate seconds, not less
    assert rep["elapsed_s"] >= 0.8 * n / rate, rep
    assert rep["msgs_per_s"] <= 1.25 * rate, rep
    assert wall < 30, wall


def test_duration_mode_stops(tmp_path):
    with Sink(tmp_path) as s:
        rep = load(s.port, "--duration", 1, "--connections", 4,
                   "--rate", 100, timeout=60)
        tot = s.stop()
    assert 0.9 <= rep["elapsed_s"] <= 10, rep
    assert rep["accepted"] >= 50 and rep["errors"] == 0, rep
    assert tot["messages"] == rep["accepted"], (tot, rep)


# ------------------------------------------------------------ relay-bench

def test_relay_bench_quick(tmp_path):
    """relay-bench --quick: mta-load -> mta serve ([route *] to mta-sink),
    and the raw ceiling; one run per workload, Markdown table on stdout."""
    mta = BUILD / "mta"
    assert os.access(mta, os.X_OK), f"{mta} is missing"
    cmd = ["/usr/bin/python3", str(RELAY_BENCH), "--quick",
           "--build", str(BUILD)]
    out = None
    if shutil.which("gnuplot"):
        out = tmp_path / "out"
        cmd += ["--out", str(out)]
    env = dict(os.environ, RELAY_BENCH_TMP=str(tmp_path))
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=900, cwd=REPO,
                           env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("relay-bench --quick did not finish within 900s")
    stdout = p.stdout.decode(errors="replace")
    stderr = p.stderr.decode(errors="replace")
    ctx = f"\nstdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-6000:]}"
    assert not san_problems(stderr), ctx
    assert p.returncode == 0, f"relay-bench exited {p.returncode}{ctx}"
    rows = [l for l in stdout.splitlines() if l.startswith("|")]
    assert rows and rows[0].startswith("| workload | system |"), ctx
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    body = [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]
    col = {h: i for i, h in enumerate(header)}
    systems = {(r[0], r[1]) for r in body}
    workloads = {r[0] for r in body}
    assert len(workloads) == 8, f"expected 8 workloads{ctx}"
    for wl in workloads:
        assert (wl, "mta") in systems, f"no mta row for {wl}{ctx}"
        assert (wl, "raw (load → sink)") in systems, ctx
    assert not any(s == "postfix" for _, s in systems), ctx
    for r in body:
        assert r[col["complete runs"]] == "1/1", f"incomplete: {r}{ctx}"
        for h in ("accepted msg/s", "delivered msg/s", "latency p50 ms"):
            assert float(r[col[h]]) > 0, f"{h} in {r}{ctx}"
        if r[1] == "mta":
            assert float(r[col["CPU s / 1k msgs"]]) >= 0, r
            assert float(r[col["peak RSS MiB"]]) > 0, r
    if out is not None:
        data = json.loads((out / "results.json").read_text())
        assert set(data["medians"]) == workloads
        for run in data["runs"]:
            assert run["delivered"] == run["accepted"] == run["messages"], run
            assert run["problems"] == [], run
        assert (out / "results.md").read_text().count("| mta |") == 8
        assert list(out.glob("delivery-*.png")), "no plot written"


# ------------------------------------------------------------ STARTTLS

@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory):
    """A throwaway P-256 certificate and key (CN=localhost)."""
    d = tmp_path_factory.mktemp("benchtls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def starttls_arg(tls_cert):
    return ["--starttls", f"{tls_cert[0]}:{tls_cert[1]}"]


def load_raw(port, *args, timeout=60):
    """mta-load --json without the success assertions: (exit status,
    report or None, stderr)."""
    cmd = [str(LOAD), "--server", f"{HOST}:{port}", "--json", "--quiet"] + \
        [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(cmd)}: no exit within {timeout}s")
    err = p.stderr.decode(errors="replace")
    assert not san_problems(err), err[-4000:]
    lines = p.stdout.decode().strip().splitlines()
    rep = json.loads(lines[-1]) if lines else None
    return p.returncode, rep, err


@pytest.mark.parametrize("sink_args", [[], ["--no-pipelining"]],
                         ids=["pipelining", "no-pipelining"])
def test_starttls_every_message_accepted_and_recorded_once(tmp_path, tls_cert,
                                                           sink_args):
    n, conns = 400, 8
    with Sink(tmp_path, *starttls_arg(tls_cert), *sink_args) as s:
        rep = load(s.port, "--starttls", "--messages", n, "--connections",
                   conns, "--rcpts", 2, "--size", 4096)
        tot = s.stop()
        recs = s.records()
    assert rep["attempted"] == rep["accepted"] == n, rep
    assert rep["errors"] == 0 and rep["codes"] == {"250": n}, rep
    # connections reused: one handshake each
    assert rep["tls"]["handshakes"] == conns, rep
    check_records(recs, n, rcpts=2)
    assert all(r["tls"] is True for r in recs), recs[:3]
    assert tot["messages"] == n and tot["connections"] == conns, tot
    assert tot["tls"] == conns and tot["tlsfail"] == 0, tot


def test_starttls_new_conn_handshake_per_message(tmp_path, tls_cert):
    """--new-conn: a handshake per message, resumed from the thread's last
    session by default, full with --no-tls-resume."""
    n, conns = 150, 5
    with Sink(tmp_path, *starttls_arg(tls_cert)) as s:
        rep = load(s.port, "--starttls", "--new-conn", "--messages", n,
                   "--connections", conns)
        full = load(s.port, "--starttls", "--new-conn", "--no-tls-resume",
                    "--messages", n, "--connections", conns)
        tot = s.stop()
        recs = s.records()
    for r in (rep, full):
        assert r["attempted"] == r["accepted"] == n, r
        assert r["errors"] == 0 and r["codes"] == {"250": n}, r
        # a connection opened as the quota ran out may carry none
        assert n <= r["tls"]["handshakes"] <= n + conns, r
    assert rep["tls"]["resumed"] >= n // 2, rep
    assert full["tls"]["resumed"] == 0, full
    check_records(recs, 2 * n)
    assert all(r["tls"] is True for r in recs), recs[:3]
    assert tot["tls"] == rep["tls"]["handshakes"] + full["tls"]["handshakes"]
    assert tot["tlsfail"] == 0, tot
    assert 2 * n <= tot["connections"] <= 2 * (n + conns), tot


def test_starttls_not_offered_is_an_error(tmp_path):
    """A sink without --starttls: every connection fails before its first
    message; mta-load counts errors and gives up instead of spinning."""
    with Sink(tmp_path) as s:
        t0 = time.monotonic()
        rc, rep, err = load_raw(s.port, "--starttls", "--messages", 100,
                                "--connections", 4, timeout=60)
        wall = time.monotonic() - t0
        tot = s.stop()
        recs = s.records()
    assert rc != 0, f"exit 0 with every connection failed: {rep} {err}"
    assert rep is not None and rep["errors"] >= 4, rep
    assert rep["accepted"] == 0 and rep["attempted"] == 0, rep
    assert "tls" in rep and rep["tls"]["handshakes"] == 0, rep
    assert "STARTTLS not offered" in err, err
    assert wall < 30, wall
    assert tot["messages"] == 0 and recs == [], tot


def test_sink_starttls_protocol(tmp_path, tls_cert):
    """The sink's side: STARTTLS advertised only before TLS; plaintext
    pipelined after STARTTLS is dropped, never run; EHLO required again;
    records say whether the message came over TLS."""
    from conftest import SMTPClient

    msg = b"Message-ID: <1.2@mta-load>\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
    with Sink(tmp_path, *starttls_arg(tls_cert)) as s:
        with SMTPClient(HOST, s.port) as c:
            c.expect(220)
            assert "STARTTLS" in c.ehlo().lines
            # an injected command after STARTTLS, in the same packet
            c.send(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")
            c.expect(220, "2.0.0")
            c.starttls()
            # the session starts over: EHLO first (and the injected MAIL
            # never ran: its 250 would have broken the handshake)
            c.send(b"MAIL FROM:<a@x.test>\r\n")
            c.expect(503)
            r = c.ehlo()
            assert "STARTTLS" not in r.lines, r
            c.send(b"STARTTLS\r\n")
            c.expect(502)
            for line, code in ((b"MAIL FROM:<tls@x.test>", 250),
                               (b"RCPT TO:<r@y.test>", 250),
                               (b"DATA", 354)):
                c.send(line + b"\r\n")
                c.expect(code)
            c.send(msg)
            c.expect(250)
            c.send(b"QUIT\r\n")
            c.expect(221)
        with SMTPClient(HOST, s.port) as c:
            c.expect(220)
            c.ehlo()
            for line, code in ((b"MAIL FROM:<plain@x.test>", 250),
                               (b"RCPT TO:<r@y.test>", 250),
                               (b"DATA", 354)):
                c.send(line + b"\r\n")
                c.expect(code)
            c.send(msg)
            c.expect(250)
            c.send(b"QUIT\r\n")
            c.expect(221)
        tot = s.stop()
        recs = s.records()
    assert [(r["from"], r["tls"]) for r in recs] == \
        [("tls@x.test", True), ("plain@x.test", False)], recs
    assert tot["messages"] == 2 and tot["tls"] == 1, tot


def test_sink_without_starttls_unchanged(tmp_path):
    from conftest import SMTPClient

    with Sink(tmp_path) as s:
        with SMTPClient(HOST, s.port) as c:
            c.expect(220)
            r = c.ehlo()
            assert "STARTTLS" not in r.lines, r
            c.send(b"STARTTLS\r\n")
            c.expect(502)
        tot = s.stop()
    assert "tls" not in tot, tot


def test_starttls_auth_through_relay(tmp_path, tls_cert, relay_factory):
    """mta-load --starttls --auth against `mta serve`: 127.0.0.1 may not
    relay, so AUTH (only offered over TLS) is needed; every message is
    accepted and delivered to a sink, itself over STARTTLS."""
    n, user, pw = 200, "loaduser", "load-pass-7"
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=pw.encode(), check=True, capture_output=True,
                       timeout=60).stdout.decode().strip()
    users = tmp_path / "users"
    users.write_text(f"{user}:{h}\n")
    with Sink(tmp_path, *starttls_arg(tls_cert)) as s:
        relay = relay_factory({
            "server": {"relay_networks": "192.0.2.0/24"},
            "tls": {"certificate": tls_cert[0], "private_key": tls_cert[1]},
            "auth": {"users": str(users), "require_tls": "yes"},
            "route *": {"host": f"[{HOST}]:{s.port}"},
        })
        # without AUTH the relay refuses every recipient
        rc, bad, _ = load_raw(relay.port, "--starttls", "--messages", 5,
                              "--connections", 1)
        assert bad["accepted"] == 0 and bad["refused"] == 5, bad
        assert all(c.startswith("5") for c in bad["codes"]), bad
        rep = load(relay.port, "--starttls", "--auth", f"{user}:{pw}",
                   "--messages", n, "--connections", 4, "--rcpts", 2,
                   timeout=120)
        assert rep["attempted"] == rep["accepted"] == n, rep
        assert rep["errors"] == 0 and rep["codes"] == {"250": n}, rep
        assert rep["tls"]["handshakes"] == 4, rep
        deadline = time.monotonic() + 60
        while len(s.records()) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        recs = s.records()
        relay.stop()
        s.stop()
    check_records(recs, n, rcpts=2)
    assert all(r["tls"] is True for r in recs), recs[:3]


class CloseAfterEhlo:
    """A server that greets, reads EHLO and closes: every connection ends
    before its first message (found crashing mta-load: a reconnect from
    inside the read callback re-armed a read that was still armed)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            with c:
                c.settimeout(5)
                try:
                    c.sendall(b"220 close-after-ehlo ESMTP\r\n")
                    c.recv(4096)  # the EHLO
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def test_load_server_closes_after_ehlo():
    srv = CloseAfterEhlo()
    try:
        t0 = time.monotonic()
        rc, rep, err = load_raw(srv.port, "--messages", 50,
                                "--connections", 4, timeout=60)
        wall = time.monotonic() - t0
    finally:
        srv.stop()
    assert "panic" not in err and not san_problems(err), err[-4000:]
    assert rc == 1, f"mta-load exited {rc}: {err[-2000:]}"
    assert rep is not None and rep["accepted"] == 0, rep
    assert rep["errors"] >= 4, rep
    assert srv.conns >= 4, srv.conns
    assert wall < 30, wall
