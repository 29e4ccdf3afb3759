# SPDX-License-Identifier: ISC
"""
Integration-test helpers: a live `mta serve` on 127.0.0.1 with an ephemeral
port and a temp queue, a raw SMTP client, and `mta` command runners.

Everything here is bounded: every socket read has a deadline, every process
wait has a timeout. Only loopback addresses are ever used (tests/run.sh also
runs the suite in a network namespace that has nothing else).

Generic pieces other test files can use:
  free_port()                  a free loopback TCP port (never reused in a run)
  Config / write_config()      an INI file per SPEC, base keys + overrides
  Relay                        start/stop/kill -9/restart `mta serve`,
                               sanitizer and exit-status checks at teardown
  relay_factory (fixture)      Relay(...) with automatic teardown checks
  relay (fixture)              one relay with the default config
  SMTPClient                   raw socket client: send bytes, read replies
  run_mta(...)                 run `mta ARGS`; fails on sanitizer reports
  strip_received(raw)          remove the one Received: header mta prepends
"""
import ctypes
import ipaddress
import json
import os
import pathlib
import re
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _default_build():
    for cand in ("build/san", "build"):
        if (REPO / cand / "mta").exists():
            return str(REPO / cand)
    return str(REPO / "build/san")


BUILD = os.path.abspath(os.environ.get("MTA_BUILD") or _default_build())
MTA = os.path.join(BUILD, "mta")
HOSTNAME = "relay.test"
LOOPBACK = "127.0.0.1"

# ThreadSanitizer reports a race or a lock-order inversion as
# "WARNING: ThreadSanitizer: ..." (and dies with "FATAL: ThreadSanitizer"),
# so any line naming it counts.
SAN_PATTERNS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "ThreadSanitizer:",
)

# Sanitizer reports on stderr, not in log files; keep an existing setting.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
os.environ.setdefault("TSAN_OPTIONS", "halt_on_error=0:second_deadlock_stack=1")


def raise_nofile(want=65536):
    """Raise RLIMIT_NOFILE (soft up to hard) in this process; children
    started afterwards inherit it. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


raise_nofile()


def anon_kib(pid):
    """What pid has resident in anonymous memory now, in KiB: Anonymous
    from /proc/PID/smaps_rollup (heap, stacks, sanitizer shadow). Not the
    file-backed pages: the queue's map grows resident with every message
    stored, which is the page cache's business, not a session's; nor the
    sockets' kernel buffers."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    raise AssertionError(f"no Anonymous in /proc/{pid}/smaps_rollup")


def san_problems(text):
    """Lines of text that show a sanitizer report."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [l for l in text.splitlines() if any(p in l for p in SAN_PATTERNS)]


def assert_loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise AssertionError(f"tests must only use loopback, not {host}")


# ---------------------------------------------------------------- ports

_ports_lock = threading.Lock()
_ports_given = set()


def free_port(host=LOOPBACK, kind=socket.SOCK_STREAM):
    """A port that is free on host now and was not handed out before in
    this run. kind=SOCK_DGRAM for UDP (e.g. a DNS server)."""
    assert_loopback(host)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        with socket.socket(fam, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        # A port free for TCP and UDP both, so callers may use either.
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(fam, other) as s2:
                s2.bind((host, port))
        except OSError:
            continue
        with _ports_lock:
            if port in _ports_given:
                continue
            _ports_given.add(port)
        return port
    raise RuntimeError("no free loopback port found")


def wait_port(host, port, timeout=20.0, proc=None):
    """Wait until host:port accepts a TCP connection. Raises on timeout or
    when proc (a Popen) exits first."""
    assert_loopback(host)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before "
                               f"{host}:{port} accepted connections")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not accept within {timeout}s ({last})")


# ---------------------------------------------------------------- config

def base_sections(queue_path, port, host=LOOPBACK):
    """The default test configuration: hermetic (DNS and every delivery go
    to closed loopback ports, so queued mail stays queued, deferred).
    [delivery] allow_loopback = yes: MX hosts on 127.0.0.x are reachable
    (test_dest_policy.py turns it off to test the policy)."""
    dead = free_port()
    return {
        "server": {
            "hostname": HOSTNAME,
            "listen": f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
            "threads": "2",
            "max_message_size": "35M",
            "max_recipients": "1000",
            "max_connections": "10000",
            "max_connections_per_ip": "200",
            "idle_timeout": "30s",
            "relay_networks": "127.0.0.0/8, ::1/128",
            # the suite runs as root; test_privdrop.py sets user instead
            "run_as_root": "yes",
        },
        "queue": {
            "path": str(queue_path),
        },
        "dns": {
            "servers": f"127.0.0.1:{dead}",
        },
        "delivery": {
            "port": str(dead),
            # test destinations are 127.0.0.x, found through DNS MX; the
            # destination policy refuses loopback without this (README)
            "allow_loopback": "yes",
        },
        "route *": {
            "host": f"[127.0.0.1]:{dead}",
        },
    }


def merge_sections(base, overrides):
    """overrides: {section: {key: value or None (remove)} or None (remove
    the whole section)}. Returns a new dict; order: base, then new ones."""
    out = {s: dict(kv) for s, kv in base.items()}
    for sec, kv in (overrides or {}).items():
        if kv is None:
            out.pop(sec, None)
            continue
        cur = out.setdefault(sec, {})
        for k, v in kv.items():
            if v is None:
                cur.pop(k, None)
            else:
                cur[k] = str(v)
    return out


def render_config(sections, extra=""):
    lines = ["; written by tests/integration/conftest.py"]
    for sec, kv in sections.items():
        lines.append(f"[{sec}]")
        for k, v in kv.items():
            lines.append(f"{k} = {v}")
        lines.append("")
    text = "\n".join(lines) + "\n"
    if extra:
        text += extra.rstrip("\n") + "\n"
    return text


def write_config(path, sections, extra=""):
    path = pathlib.Path(path)
    path.write_text(render_config(sections, extra))
    return path


# ---------------------------------------------------------------- mta commands

def run_mta(*args, conf=None, timeout=60, env=None, check=True, input=None,
            prefix=()):
    """Run `mta [-c conf] ARGS` (after prefix: a wrapper such as setpriv);
    stdout/stderr as bytes. check=True asserts exit 0. A sanitizer report
    on stderr always fails."""
    cmd = list(prefix) + [MTA]
    if conf is not None:
        cmd += ["-c", str(conf)]
    cmd += [str(a) for a in args]
    e = dict(os.environ)
    if env:
        e.update(env)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=e,
                           input=input)
    except subprocess.TimeoutExpired as ex:
        raise AssertionError(f"{' '.join(cmd)}: no exit within {timeout}s") from ex
    san = san_problems(p.stderr)
    assert not san, (f"{' '.join(cmd)}: sanitizer report:\n"
                     + p.stderr.decode("utf-8", "replace")[-4000:])
    if check:
        assert p.returncode == 0, (
            f"{' '.join(cmd)}: exit {p.returncode}, stderr: "
            + p.stderr.decode("utf-8", "replace")[-2000:])
    return p


def parse_json_lines(data, what="output"):
    """Every non-empty line must be one JSON value."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError(f"{what}: line {n} is not JSON: {line!r} ({e})") from None
    return out


ID_RE = re.compile(r"^[0-9a-f]{16}$")


def strip_received(raw):
    """raw stored message -> (received_header_bytes, rest). The first
    header must be the Received: mta added (folded lines included)."""
    assert raw[:9].lower() == b"received:", (
        f"stored message does not start with a Received: header: {raw[:200]!r}")
    pos = 0
    while True:
        nl = raw.find(b"\r\n", pos)
        assert nl >= 0, f"unterminated Received header: {raw[:300]!r}"
        pos = nl + 2
        if raw[pos:pos + 1] not in (b" ", b"\t"):
            break
    return raw[:pos], raw[pos:]


def make_cert(dirpath, cn=HOSTNAME):
    """A self-signed RSA certificate + key (PEM) in dirpath; returns
    (cert_path, key_path). Reuses existing files."""
    d = pathlib.Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    if not (cert.exists() and key.exists()):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                        "-addext", f"subjectAltName=DNS:{cn}",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def add_user(conf, name, password, timeout=60):
    """`mta -c conf passwd NAME` with the password on stdin."""
    return run_mta("passwd", name, conf=conf, input=(password + "\n").encode(),
                   timeout=timeout)


# ---------------------------------------------------------------- relay

_live = []  # every Relay process started, for the end-of-session sweep
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # PR_SET_PDEATHSIG: a relay dies with pytest. Only for relays started
    # from the main thread: the signal follows the forking *thread*.
    _libc.prctl(1, signal.SIGKILL)


class Relay:
    """A `mta serve -c CONF` process on a free loopback port.

    Each start writes stderr to its own file (tmp/relay-N.stderr). stop()
    sends SIGTERM and waits (bounded); kill9() is `kill -9`; start() again
    reuses the config and the queue directory. problems() lists what must
    fail the test: a non-zero exit after SIGTERM, a shutdown that needed
    SIGKILL, or a sanitizer report in any run's stderr.
    """

    def __init__(self, tmp, overrides=None, extra="", env=None, port=None,
                 host=LOOPBACK, name="relay"):
        assert_loopback(host)
        self.tmp = pathlib.Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self.queue_path = self.tmp / f"{name}-queue"
        self.queue_path.mkdir(exist_ok=True)
        self.sections = merge_sections(
            base_sections(self.queue_path, self.port, host), overrides)
        self.conf = write_config(self.tmp / f"{name}.conf", self.sections, extra)
        self.env = dict(env or {})
        self.proc = None
        self.runs = []        # (stderr path, how it ended, returncode)
        self._problems = []

    @property
    def addr(self):
        return (self.host, self.port)

    def start(self, timeout=30.0, env=None):
        assert self.proc is None, "relay already running"
        e = dict(os.environ)
        e.update(self.env)
        if env:
            e.update(env)
        n = len(self.runs) + 1
        errp = self.tmp / f"{self.name}-{n}.stderr"
        outp = self.tmp / f"{self.name}-{n}.stdout"
        self._err = open(errp, "wb")
        self._out = open(outp, "wb")
        self.proc = subprocess.Popen([MTA, "serve", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=e,
                                     preexec_fn=_die_with_parent if
                                     threading.current_thread() is
                                     threading.main_thread() else None)
        _live.append(self.proc)
        self._errpath = errp
        try:
            # The port accepts as soon as it is bound, a little before the
            # relay is fully up (control socket, threads): wait for the
            # line that says it is.
            wait_port(self.host, self.port, timeout, self.proc)
            self._wait_started(n, timeout)
        except Exception as ex:
            self._end("failed start", signal.SIGKILL, 5)
            raise AssertionError(f"relay did not start: {ex}\nstderr:\n"
                                 + self.stderr_text(n)[-3000:]) from None
        return self

    def _wait_started(self, run, timeout):
        deadline = time.monotonic() + timeout
        while "event=started" not in self.stderr_text(run):
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no event=started within {timeout}s")
            time.sleep(0.02)

    def _end(self, how, sig, timeout):
        p = self.proc
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            self._problems.append(
                f"run {len(self.runs) + 1}: no exit {timeout}s after "
                f"{signal.Signals(sig).name}; killed with SIGKILL")
            p.kill()
            p.wait(10)
        self._err.close()
        self._out.close()
        self.runs.append((self._errpath, how, p.returncode))
        if p in _live:
            _live.remove(p)
        self.proc = None
        return p.returncode

    def stop(self, timeout=20.0):
        """SIGTERM, wait; returns the exit status. Non-zero is a problem."""
        if self.proc is None:
            return None
        already = self.proc.poll()
        rc = self._end("SIGTERM", signal.SIGTERM, timeout)
        if already is not None:
            self._problems.append(
                f"run {len(self.runs)}: relay had already exited with "
                f"{already} before it was stopped")
        elif rc != 0:
            self._problems.append(
                f"run {len(self.runs)}: exit status {rc} after SIGTERM")
        return rc

    def kill9(self):
        """kill -9 the relay (simulated crash); not a problem by itself."""
        if self.proc is None:
            return None
        already = self.proc.poll()
        rc = self._end("SIGKILL", signal.SIGKILL, 10)
        if already is not None:
            self._problems.append(
                f"run {len(self.runs)}: relay had already exited with "
                f"{already} before kill -9")
        return rc

    def restart(self, **kw):
        if self.proc is not None:
            self.stop()
        return self.start(**kw)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, run=None):
        if run is None:
            path = self._errpath if self.proc else self.runs[-1][0]
        else:
            path = self.tmp / f"{self.name}-{run}.stderr"
        try:
            return path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def problems(self):
        out = list(self._problems)
        for i, (path, how, rc) in enumerate(self.runs, 1):
            san = san_problems(path.read_bytes())
            if san:
                out.append(f"run {i} ({how}): sanitizer report in {path}:\n"
                           + self.stderr_text(i)[-6000:])
        return out

    # -- helpers bound to this relay's config
    def mta(self, *args, **kw):
        return run_mta(*args, conf=self.conf, **kw)

    def queue_list(self):
        """`mta queue list --json` parsed: a list of dicts."""
        p = self.mta("queue", "list", "--json")
        rows = parse_json_lines(p.stdout, "mta queue list --json")
        for r in rows:
            assert isinstance(r, dict) and "id" in r, (
                f"queue list --json row without an id: {r!r}")
        return rows

    def queue_ids(self):
        return [str(r["id"]) for r in self.queue_list()]

    def queue_raw(self, qid):
        return self.mta("queue", "show", "--raw", qid, timeout=120).stdout

    def client(self, timeout=10.0, greet=True):
        c = SMTPClient(self.host, self.port, timeout=timeout)
        if greet:
            c.expect(220)
        return c


@pytest.fixture
def relay_factory(tmp_path):
    """make(overrides=None, extra="", env=None, start=True, name=...) ->
    Relay. At teardown each is stopped with SIGTERM and the test fails on a
    non-zero exit status or a sanitizer report."""
    made = []

    def make(overrides=None, extra="", env=None, start=True, name=None, **kw):
        r = Relay(tmp_path, overrides, extra, env,
                  name=name or f"relay{len(made) + 1}", **kw)
        made.append(r)
        if start:
            r.start()
        return r

    yield make
    problems = []
    for r in made:
        r.stop()
        problems += [f"{r.name}: {p}" for p in r.problems()]
    if problems:
        pytest.fail("relay problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def relay(relay_factory):
    return relay_factory()


def pytest_sessionfinish(session, exitstatus):
    for p in list(_live):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------- SMTP client

class ConnectionClosed(Exception):
    pass


class Reply:
    """One SMTP reply: code, lines (text after "NNN-"/"NNN "), raw bytes."""

    def __init__(self, lines, raw):
        self.code = int(lines[-1][:3])
        self.lines = [l[4:] for l in lines]
        self.raw = raw

    @property
    def text(self):
        return self.lines[-1]

    @property
    def enh(self):
        m = re.match(r"^([245]\.\d{1,3}\.\d{1,3})\b", self.lines[-1])
        return m.group(1) if m else None

    def __repr__(self):
        return f"Reply({self.raw!r})"

    def __str__(self):
        return self.raw.decode("utf-8", "replace").rstrip("\r\n")


REPLY_LINE = re.compile(rb"^[2-5]\d\d([ -].*)?$", re.S)


class SMTPClient:
    """Raw SMTP over a socket; every read has a deadline."""

    def __init__(self, host, port, timeout=10.0, connect_timeout=10.0,
                 source=None):
        """source: local address to bind, e.g. "127.0.0.2" to look like
        another client (all of 127/8 is loopback on Linux)."""
        assert_loopback(host)
        if source is not None:
            assert_loopback(source)
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=connect_timeout,
            source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False
        self.transcript = []  # ("C"/"S", bytes)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(("C", data[:300]))
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise TimeoutError(f"send of {len(data)} bytes did not finish within "
                               f"{self.timeout}s") from None

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out waiting for the server; "
                               f"buffered {self.buf[-300:]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for the server; "
                               f"buffered {self.buf[-300:]!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise ConnectionClosed(f"connection closed; buffered {self.buf!r}")
        self.buf += chunk

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if len(self.buf) > 100000:
                raise AssertionError(f"reply line without CRLF: {self.buf[:200]!r}")
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self, timeout=None):
        """One full reply (multi-line aware)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines, raw = [], b""
        while True:
            line = self.read_line(max(0.001, deadline - time.monotonic()))
            raw += line + b"\r\n"
            if not REPLY_LINE.match(line):
                raise AssertionError(f"malformed reply line {line!r} after {raw!r}")
            if lines and line[:3] != lines[0][:3].encode():
                raise AssertionError(f"multi-line reply changes code: {raw!r}")
            lines.append(line.decode("utf-8", "replace"))
            if len(line) == 3 or line[3:4] == b" ":
                break
        r = Reply(lines, raw)
        self.transcript.append(("S", raw))
        return r

    def read_replies(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        return [self.read_reply(max(0.001, deadline - time.monotonic()))
                for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def expect(self, code, enh=None, text=None, timeout=None):
        """Read a reply; assert its code (and enhanced code / text regex)."""
        r = self.read_reply(timeout)
        check_reply(r, code, enh, text, self)
        return r

    def expect_closed(self, timeout=5.0):
        """Assert the server closes the connection (no further replies)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                if self.buf.strip():
                    raise AssertionError(f"unexpected data before close: {self.buf!r}")
        except ConnectionClosed:
            return
        except TimeoutError:
            raise AssertionError(f"server did not close within {timeout}s") from None

    def drain(self, timeout=1.0):
        """Every reply that arrives within timeout, then stop (no error)."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                out.append(self.read_reply(max(0.001, deadline - time.monotonic())))
            except (TimeoutError, ConnectionClosed):
                break
        return out

    def starttls(self, timeout=None):
        """Wrap the socket in TLS (after a 220 to STARTTLS, or at once for
        an implicit-TLS listener). No certificate check: test certs."""
        assert not self.buf, f"plaintext buffered before TLS: {self.buf!r}"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(timeout or self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=HOSTNAME)
        self.transcript.append(("C", b"<TLS handshake done>"))

    def ehlo(self, name="client.test"):
        r = self.cmd(f"EHLO {name}")
        check_reply(r, 250, None, None, self)
        return r

    def show(self):
        return "\n".join(f"{d}: {b!r}" for d, b in self.transcript[-40:])


def check_reply(r, code, enh=None, text=None, client=None):
    ctx = ("\ntranscript:\n" + client.show()) if client else ""
    assert r.code == code, f"expected {code}, got {r}{ctx}"
    if enh is not None:
        assert r.enh == enh, f"expected enhanced code {enh}, got {r}{ctx}"
    if text is not None:
        assert re.search(text, r.text), f"expected /{text}/ in {r}{ctx}"


QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as ([0-9a-f]{16})$")


def queued_id(reply, client=None):
    """Assert `250 2.0.0 Ok: queued as ID`; return ID."""
    check_reply(reply, 250, "2.0.0", None, client)
    m = QUEUED_RE.match(reply.text)
    assert m, f"expected '250 2.0.0 Ok: queued as <16 hex>', got {reply}"
    return m.group(1)


def dot_stuff(msg):
    """Message bytes (CRLF lines, ending with CRLF) -> DATA payload with
    the terminating CRLF.CRLF."""
    assert msg.endswith(b"\r\n")
    out = msg.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    return out + b".\r\n"


def make_message(subject="test", body_lines=None, extra_headers=(),
                 sender="a@example.org", rcpt="x@example.com"):
    """A small RFC 5322 message with CRLF line ends."""
    hdr = [f"From: <{sender}>", f"To: <{rcpt}>", f"Subject: {subject}",
           "Message-ID: <%d.%d@client.test>" % (time.time_ns(), os.getpid())]
    hdr += list(extra_headers)
    body = body_lines if body_lines is not None else ["hello", "world"]
    text = "\r\n".join(hdr) + "\r\n\r\n" + "\r\n".join(body) + "\r\n"
    return text.encode("utf-8")


def send_message(c, msg, sender="a@example.org", rcpts=("x@example.com",),
                 mail_params=""):
    """One transaction on an open, greeted+EHLO'd client, MAIL+RCPT+DATA
    pipelined; returns the final reply (not checked)."""
    cmds = f"MAIL FROM:<{sender}>{(' ' + mail_params) if mail_params else ''}\r\n"
    cmds += "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts)
    cmds += "DATA\r\n"
    c.send(cmds)
    c.expect(250)
    for _ in rcpts:
        c.expect(250)
    c.expect(354)
    c.send(dot_stuff(msg))
    return c.read_reply(timeout=max(c.timeout, 60))
