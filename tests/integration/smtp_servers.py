# SPDX-License-Identifier: ISC
"""
Controllable destination SMTP servers for delivery tests, loopback only.

  SMTPServer(host, port, ...)   a threaded SMTP server on one 127.0.0.x
                                address: per-recipient replies (250/451/550,
                                changing with the attempt), a 421 greeting or
                                a dropped connection, STARTTLS with a given
                                certificate, optional reply delays; it counts
                                connections and concurrent connections and
                                records every transaction and message.
  make_cert(dir, cn)            a throwaway self-signed certificate made with
                                `openssl req` (returns (cert, key) paths).
  MtaSink(build, host, port)    `mta-sink --record FILE` as a subprocess, with
                                its records parsed.

Every socket has a timeout and every wait a deadline; stop() closes the
listener and every client connection and joins the threads.
"""
import base64
import ipaddress
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import threading
import time

from conftest import san_problems

__all__ = ["SMTPServer", "make_cert", "MtaSink", "wait_until", "rcpt_table"]


def _loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address")


def wait_until(pred, timeout=20.0, what="condition", interval=0.05):
    """Poll pred() until it returns a true value (returned) or fail with
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def make_cert(directory, cn="mx.test"):
    """Self-signed RSA certificate and key for cn, made with openssl req."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{cn}.crt", d / f"{cn}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def rcpt_table(table, default="250 2.1.5 Ok"):
    """A rcpt policy from {address: reply or [reply for attempt 1, 2, ...]}
    (the last entry of a list repeats). Addresses compare lowercase."""
    t = {k.lower(): v for k, v in table.items()}

    def policy(addr, attempt):
        v = t.get(addr.lower(), default)
        if isinstance(v, (list, tuple)):
            return v[min(attempt, len(v)) - 1]
        return v
    return policy


class _Closed(Exception):
    pass


class _Conn:
    def __init__(self, srv, sock, peer, no):
        self.srv = srv
        self.sock = sock
        self.peer = peer
        self.no = no
        self.buf = b""
        self.tls = False
        self.tls_version = None
        self.helo = None

    def recv_line(self, limit=65536):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise _Closed("line too long")
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, OSError, ssl.SSLError):
                raise _Closed("read failed") from None
            if not chunk:
                raise _Closed("eof")
            with self.srv.lock:
                self.srv.wire += chunk
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        if not text.endswith(b"\r\n"):
            text += b"\r\n"
        try:
            self.sock.sendall(text)
        except (OSError, ssl.SSLError):
            raise _Closed("write failed") from None


class SMTPServer:
    """One SMTP server on host:port (a 127.0.0.x address).

    greeting   "220" (normal), "421" (answer 421 and close), "drop" (accept
               and close at once without a word)
    rcpt       callable(addr, attempt) -> reply line, where attempt counts
               the RCPTs for that address seen so far (1 = first); None =
               250 for everyone
    data_reply reply line to the final dot (default 250)
    tls_cert   (cert, key): offer STARTTLS with that certificate
    delay      {"mail"|"rcpt"|"data"|"dot": seconds} before those replies
               (a message is recorded before the delayed reply to its dot)
    pipelining advertise PIPELINING
    eightbitmime, smtputf8  advertise 8BITMIME (default) and SMTPUTF8
    dsn        advertise DSN (RFC 3461); RCPT parameters are recorded either
               way (transactions: rcpts_params, [(addr, params)])
    auth       mechanisms to advertise and accept, e.g. ["LOGIN"] or
               ["PLAIN", "LOGIN"] (with or without TLS); credentials is the
               (user, password) that gets 235, anything else 535. auths
               records each attempt: mech, user, password, ok, tls

    Counters: connections, max_concurrent, concurrent (now); records:
    transactions (every MAIL: from, rcpts with their replies, whether
    DATA completed, conn no, tls, the client's EHLO/HELO name, params = the
    MAIL parameters as sent), messages (each accepted message: from,
    rcpts accepted, data = the unstuffed body bytes, wire = the bytes as
    sent (dot-stuffed, without the final dot), params, tls, conn, time);
    wire = every byte the clients sent, as read (after STARTTLS: decrypted).
    """

    def __init__(self, host, port, name=None, greeting="220", rcpt=None,
                 data_reply="250 2.0.0 Ok: queued", tls_cert=None, delay=None,
                 pipelining=True, timeout=30.0, eightbitmime=True,
                 smtputf8=False, dsn=False, auth=None, credentials=None):
        _loopback(host)
        self.host = host
        self.port = port
        self.name = name or f"mx-{host}"
        self.greeting = greeting
        self.rcpt = rcpt
        self.data_reply = data_reply
        self.delay = dict(delay or {})
        self.pipelining = pipelining
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.dsn = dsn
        self.auth = [m.upper() for m in (auth or [])]
        self.credentials = credentials
        self.auths = []
        self.wire = b""
        self.timeout = timeout
        self.ssl_ctx = None
        if tls_cert:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(*tls_cert)
        self.lock = threading.Lock()
        self.connections = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.transactions = []
        self.messages = []
        self.rcpt_seen = {}
        self.errors = []
        self._lsock = None
        self._threads = []
        self._socks = set()
        self._stop = threading.Event()

    # -- life cycle
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.2)
        self._lsock = s
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name=f"{self.name}-accept")
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        if self._lsock is None:
            return
        self._stop.set()
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=10)
        self._lsock.close()
        self._lsock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- queries
    def snapshot(self):
        with self.lock:
            return {"connections": self.connections,
                    "max_concurrent": self.max_concurrent,
                    "messages": list(self.messages),
                    "transactions": list(self.transactions)}

    def message_count(self):
        with self.lock:
            return len(self.messages)

    def rcpts_received(self):
        """Every accepted recipient of every message, in order."""
        with self.lock:
            return [r for m in self.messages for r in m["rcpts"]]

    # -- serving
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, peer = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.concurrent += 1
                self.max_concurrent = max(self.max_concurrent, self.concurrent)
                no = self.connections
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, peer, no),
                                 daemon=True, name=f"{self.name}-conn{no}")
            self._threads.append(t)
            t.start()

    def _sleep(self, what):
        d = self.delay.get(what)
        if d:
            self._stop.wait(d)

    def _serve(self, sock, peer, no):
        sock.settimeout(self.timeout)
        c = _Conn(self, sock, peer, no)
        try:
            self._session(c)
        except _Closed:
            pass
        except Exception as e:  # a bug in the test server: report it
            with self.lock:
                self.errors.append(f"conn {no}: {e!r}")
        finally:
            with self.lock:
                self.concurrent -= 1
                self._socks.discard(sock)
            try:
                c.sock.close()
            except OSError:
                pass

    def _ehlo_lines(self, c, name):
        caps = [f"{self.name} greets {name}"]
        if self.pipelining:
            caps.append("PIPELINING")
        if self.eightbitmime:
            caps.append("8BITMIME")
        if self.smtputf8:
            caps.append("SMTPUTF8")
        caps += ["SIZE 104857600", "ENHANCEDSTATUSCODES"]
        if self.dsn:
            caps.append("DSN")
        if self.ssl_ctx is not None and not c.tls:
            caps.append("STARTTLS")
        if self.auth:
            caps.append("AUTH " + " ".join(self.auth))
        return "\r\n".join(
            f"250{'-' if i < len(caps) - 1 else ' '}{cap}"
            for i, cap in enumerate(caps))

    def _session(self, c):
        if self.greeting == "drop":
            return
        if self.greeting == "421":
            c.send(f"421 4.3.2 {self.name} not accepting mail now")
            return
        c.send(f"220 {self.name} ESMTP test server")
        txn = None
        while not self._stop.is_set():
            line = c.recv_line()
            verb = line[:4].upper().decode("ascii", "replace")
            arg = line[5:].decode("utf-8", "replace") if len(line) > 5 else ""
            if verb in ("EHLO", "HELO"):
                txn = None
                c.helo = arg
                if verb == "HELO":
                    c.send(f"250 {self.name}")
                else:
                    c.send(self._ehlo_lines(c, arg))
            elif line.upper() == b"STARTTLS":
                if self.ssl_ctx is None or c.tls:
                    c.send("502 5.5.1 not offered")
                    continue
                c.send("220 2.0.0 go ahead")
                if c.buf:  # pipelined after STARTTLS: refuse (RFC 3207)
                    raise _Closed("data after STARTTLS")
                try:
                    c.sock = self.ssl_ctx.wrap_socket(c.sock, server_side=True)
                except (ssl.SSLError, OSError):
                    raise _Closed("handshake failed") from None
                with self.lock:
                    self._socks.add(c.sock)
                c.tls = True
                c.tls_version = c.sock.version()
                txn = None
            elif verb == "MAIL":
                self._sleep("mail")
                addr = _path(arg[5:]) if arg.upper().startswith("FROM:") else None
                if addr is None or txn is not None:
                    c.send("503 5.5.1 bad sequence" if txn is not None
                           else "501 5.5.4 syntax")
                    continue
                txn = {"from": addr, "rcpts": [], "accepted": [],
                       "rcpts_params": [],
                       "conn": c.no, "tls": c.tls, "data": False,
                       "helo": c.helo, "time": time.time(),
                       "params": arg[5:].partition(">")[2].strip()}
                with self.lock:
                    self.transactions.append(txn)
                c.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                self._sleep("rcpt")
                if txn is None:
                    c.send("503 5.5.1 need MAIL")
                    continue
                addr = _path(arg[3:]) if arg.upper().startswith("TO:") else None
                if addr is None:
                    c.send("501 5.5.4 syntax")
                    continue
                with self.lock:
                    n = self.rcpt_seen.get(addr.lower(), 0) + 1
                    self.rcpt_seen[addr.lower()] = n
                reply = self.rcpt(addr, n) if self.rcpt else "250 2.1.5 Ok"
                txn["rcpts"].append((addr, int(reply[:3])))
                txn["rcpts_params"].append((addr, _params(arg[3:])))
                if reply.startswith("2"):
                    txn["accepted"].append(addr)
                c.send(reply)
            elif verb == "DATA":
                self._sleep("data")
                if txn is None or not txn["accepted"]:
                    c.send("554 5.5.1 no valid recipients")
                    continue
                c.send("354 End data with <CR><LF>.<CR><LF>")
                body, wire = [], []
                while True:
                    l = c.recv_line(limit=10 << 20)
                    if l == b".":
                        break
                    wire.append(l + b"\r\n")
                    if l.startswith(b"."):
                        l = l[1:]
                    body.append(l + b"\r\n")
                reply = self.data_reply
                txn["data"] = True
                # Recorded when the body is complete, before the (delayed)
                # reply: a client that dies during the delay has still
                # handed the message over (the RFC 1047 duplicate window).
                if reply.startswith("2"):
                    with self.lock:
                        self.messages.append({
                            "from": txn["from"], "rcpts": list(txn["accepted"]),
                            "data": b"".join(body), "tls": c.tls,
                            "wire": b"".join(wire), "params": txn["params"],
                            "tls_version": c.tls_version, "conn": c.no,
                            "time": time.time()})
                self._sleep("dot")
                c.send(reply)
                txn = None
            elif verb == "AUTH" and self.auth:
                self._auth(c, arg)
            elif verb == "RSET":
                txn = None
                c.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                c.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                c.send("221 2.0.0 Bye")
                return
            else:
                c.send("500 5.5.2 unknown command")


    def _auth_item(self, c, prompt, initial):
        """The client's base64 answer (initial response, or after a 334
        with prompt), decoded; None when it cancelled or sent garbage."""
        if initial is None:
            c.send("334 " + base64.b64encode(prompt).decode())
            initial = c.recv_line().decode("ascii", "replace")
        if initial == "*":
            return None
        try:
            return base64.b64decode(initial, validate=True)
        except ValueError:
            return None

    def _auth(self, c, arg):
        """AUTH PLAIN (RFC 4616) or LOGIN, with or without an initial
        response; 235 for self.credentials, else 535."""
        mech, _, initial = arg.partition(" ")
        mech, initial = mech.upper(), (initial.strip() or None)
        if mech not in self.auth:
            c.send("504 5.5.4 mechanism not supported")
            return
        if mech == "PLAIN":
            raw = self._auth_item(c, b"", initial)
            parts = raw.split(b"\0") if raw is not None else []
            user, pw = (parts[1], parts[2]) if len(parts) == 3 else (None, None)
        else:
            user = self._auth_item(c, b"Username:", initial)
            pw = (self._auth_item(c, b"Password:", None)
                  if user is not None else None)
        if user is None or pw is None:
            c.send("501 5.5.2 cannot decode response")
            return
        user, pw = user.decode("utf-8", "replace"), pw.decode("utf-8", "replace")
        ok = self.credentials is not None and (user, pw) == tuple(self.credentials)
        with self.lock:
            self.auths.append({"mech": mech, "user": user, "password": pw,
                               "ok": ok, "tls": c.tls})
        c.send("235 2.7.0 Authentication successful" if ok else
               "535 5.7.8 Error: authentication failed: bad password")


def _path(s):
    """'<a@b> PARAMS' -> 'a@b' ('' for <>), None when malformed."""
    s = s.strip()
    if not s.startswith("<"):
        return None
    end = s.find(">")
    if end < 0:
        return None
    return s[1:end]


def _params(s):
    """'<a@b> K=V K2' -> 'K=V K2' (what follows the path)."""
    s = s.strip()
    end = s.find(">")
    return s[end + 1:].strip() if end >= 0 else ""


class MtaSink:
    """`mta-sink` on host:port recording to a file; extra args passed on
    (e.g. ["--delay", "300", "--delay-cmds", "dot"])."""

    def __init__(self, build, host, port, record, args=()):
        _loopback(host)
        self.host, self.port = host, port
        self.record = pathlib.Path(record)
        self.errpath = self.record.with_suffix(".stderr")
        self.cmd = [os.path.join(build, "mta-sink"), "--listen",
                    f"{host}:{port}", "--record", str(self.record),
                    "--quiet", *[str(a) for a in args]]
        self.proc = None

    def start(self, timeout=20.0):
        self._err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mta-sink exited {self.proc.returncode}: "
                                     + self.errpath.read_text(errors="replace"))
            try:
                with socket.create_connection((self.host, self.port), 1.0) as s:
                    s.settimeout(2.0)
                    s.recv(100)  # greeting; then close
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mta-sink did not start listening")

    def stop(self):
        """SIGTERM and wait. Fails when mta-sink needed SIGKILL, exited
        non-zero (ThreadSanitizer exits 66 after a report) or wrote a
        sanitizer report."""
        if self.proc is None:
            return
        problem = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                problem = "no exit within 10s of SIGTERM"
        rc = self.proc.returncode
        self._err.close()
        self.proc = None
        err = self.errpath.read_bytes()
        if problem is None and rc != 0:
            problem = f"exit status {rc}"
        if problem is None and san_problems(err):
            problem = "sanitizer report"
        if problem is not None:
            raise AssertionError(f"mta-sink: {problem}; stderr:\n"
                                 + err.decode(errors="replace")[-6000:])

    def records(self):
        try:
            data = self.record.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in data.splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line being written right now
        return out
