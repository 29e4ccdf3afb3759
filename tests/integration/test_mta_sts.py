# SPDX-License-Identifier: ISC
"""
MTA-STS (RFC 8461; issue 11, item 3) end to end, on loopback only:

  - the relay's DNS is tests/integration/dns_server.py: MX, the
    `_mta-sts.DOMAIN` TXT record and the address of mta-sts.DOMAIN (a
    127.0.0.x, reached through the relay's own resolver and pinned for
    curl, so the system resolver is never asked);
  - the policy server is Python's http.server over ssl on that address,
    port 443, with a certificate from a test CA the relay trusts through
    [delivery] ca_file (the same file verifies the MX hosts);
  - MX hosts are tests/integration/smtp_servers.py, with STARTTLS and a
    certificate from the same CA (good, wrong name, expired) or none.

Cases: enforce with a good certificate (delivered, tls_policy=mta-sts), a
wrong name, an expired certificate, STARTTLS stripped (each deferred 4.7.5
with its RFC 8460 result type, nothing sent in plaintext), an MX host the
policy does not list (never connected to), testing mode (delivered), a
cached policy used after a restart with the policy
server down, a fetch that hangs (other domains delivered meanwhile), and a
wrong content type, an oversize body and a redirect (fetch errors: no
policy, delivery falls back).
"""
import datetime
import http.server
import re
import socket
import ssl
import threading
import time

import pytest

from conftest import queued_id, run_mta, send_message
from dns_server import DNSServer
from smtp_servers import SMTPServer, wait_until

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # scripts/deps.sh installs python3-cryptography
    pytest.skip("python3-cryptography is missing", allow_module_level=True)

WAIT = 30.0
SENDER = "sender@origin.test"
POLICY = ("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\n"
          "max_age: {max_age}\r\n")


def _can_bind(host, port=0):
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        return True
    except OSError:
        return False


if not _can_bind("127.0.0.2", 443):
    pytest.skip("needs 127.0.0.x and port 443 (run inside `unshare -n` "
                "with lo up, as tests/run.sh does)", allow_module_level=True)


# ------------------------------------------------------------ certificates

class CA:
    """A test CA (EC P-256) and leaf certificates it signs."""

    def __init__(self, d):
        self.dir = d
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             "mta test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = name
        self.cert = (x509.CertificateBuilder()
                     .subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True,
                                                          path_length=None),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.path = str(d / "ca.pem")
        with open(self.path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, dns_name, expired=False):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now - datetime.timedelta(days=10 if expired else 1)
        end = now - datetime.timedelta(days=2) if expired else \
            now + datetime.timedelta(days=10)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(
                    NameOID.COMMON_NAME, dns_name)]))
                .issuer_name(self.name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(dns_name)]), critical=False)
                .sign(self.key, hashes.SHA256()))
        tag = f"{dns_name}{'-expired' if expired else ''}"
        cpath, kpath = self.dir / f"{tag}.crt", self.dir / f"{tag}.key"
        cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        kpath.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return str(cpath), str(kpath)


# ------------------------------------------------------------ policy server

class PolicyServer:
    """HTTPS on ip:443 serving /.well-known/mta-sts.txt.

    how: "ok" (text/plain policy), "html" (Content-Type text/html),
    "big" (70 KiB of text/plain), "redirect" (301 to another https URL).
    """

    def __init__(self, ip, cert, body, how="ok"):
        srv = self
        self.hits = 0
        self.body = body  # may change while it runs

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.hits += 1
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                if how == "redirect":
                    self.send_response(301)
                    self.send_header("Location",
                                     f"https://{ip}/.well-known/mta-sts.txt")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = srv.body.encode()
                if how == "big":
                    data += b"# " + b"x" * (70 * 1024) + b"\r\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if how == "html"
                                 else "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = http.server.ThreadingHTTPServer((ip, 443), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class Silent:
    """Accepts on ip:443 and never says a word: a fetch that hangs."""

    def __init__(self, ip):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 443))
        self.sock.listen(16)
        self.conns = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def stop(self):
        self._stop.set()
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


# ------------------------------------------------------------ the world

class World:
    def __init__(self, tmp_path, relay_factory):
        self.tmp = tmp_path
        self.relay_factory = relay_factory
        self.ca = CA(tmp_path)
        self.port = None
        self.records = {}
        self.dns = None
        self.closers = []

    def sts_domain(self, domain, mx_ip, policy_ip, mx_name=None,
                   txt_id="1"):
        mx_name = mx_name or f"mx.{domain}"
        self.records[domain] = {"MX": [[10, mx_name]]}
        self.records[mx_name] = {"A": [mx_ip]}
        self.records[f"_mta-sts.{domain}"] = {
            "TXT": [f"v=STSv1; id={txt_id};"]}
        self.records[f"mta-sts.{domain}"] = {"A": [policy_ip]}

    def start_dns(self):
        self.dns = DNSServer({"ttl": 300, "neg_ttl": 60, "soa": "test",
                              "records": self.records}).start()
        self.closers.append(self.dns.stop)

    def policy(self, domain, ip, mode="enforce", mx=None, how="ok",
               max_age=86400):
        body = POLICY.format(mode=mode, mx=mx or f"mx.{domain}",
                             max_age=max_age)
        p = PolicyServer(ip, self.ca.leaf(f"mta-sts.{domain}"), body, how)
        self.closers.append(p.stop)
        return p

    def mx(self, ip, cert_name=None, expired=False, tls=True):
        from conftest import free_port
        if self.port is None:
            self.port = free_port()
        cert = self.ca.leaf(cert_name, expired) if tls else None
        s = SMTPServer(ip, self.port, tls_cert=cert).start()
        self.closers.append(s.stop)
        return s

    def relay(self, delivery=None, **kw):
        if self.port is None:
            from conftest import free_port
            self.port = free_port()
        dl = {"port": str(self.port), "workers": "2",
              "connect_timeout": "5s", "allow_loopback": "yes",
              "ca_file": self.ca.path, "mta_sts_timeout": "5s"}
        dl.update(delivery or {})
        overrides = {
            "route *": None,
            "dns": {"servers": f"127.0.0.1:{self.dns.port}",
                    "timeout": "2s", "tries": "2"},
            "delivery": dl,
            "queue": {"retry": "2s"},
        }
        r = self.relay_factory(overrides, **kw)
        self.closers.insert(0, r.stop)
        return r


@pytest.fixture
def world(tmp_path, relay_factory):
    w = World(tmp_path, relay_factory)
    yield w
    for c in w.closers:
        c()


LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def fields(line):
    return {k: v.strip('"') for k, v in LOGFMT.findall(line)}


def events(relay, kind, rcpt=None):
    out = []
    for line in relay.stderr_text().splitlines():
        if f"event={kind} " not in line + " ":
            continue
        if rcpt is not None and fields(line).get("rcpt", "").strip("<>") \
                != rcpt:
            continue
        out.append(line)
    return out


def wait_event(relay, kind, rcpt=None):
    return wait_until(lambda: events(relay, kind, rcpt), WAIT,
                      f"event={kind} rcpt={rcpt}:\n"
                      + relay.stderr_text()[-4000:])[0]


def submit(relay, rcpts):
    with relay.client() as c:
        c.ehlo()
        msg = (f"From: <{SENDER}>\r\nSubject: sts\r\n\r\nhello\r\n").encode()
        qid = queued_id(send_message(c, msg, sender=SENDER, rcpts=rcpts), c)
        c.cmd("QUIT")
    return qid


# ------------------------------------------------------------ enforce

def test_enforce_good_certificate_delivered(world):
    world.sts_domain("good.test", "127.0.0.21", "127.0.0.31")
    world.start_dns()
    pol = world.policy("good.test", "127.0.0.31")
    mx = world.mx("127.0.0.21", "mx.good.test")
    relay = world.relay()
    submit(relay, ["a@good.test"])
    ev = wait_event(relay, "delivered", "a@good.test")
    assert fields(ev).get("tls_policy") == "mta-sts", ev
    assert mx.message_count() == 1
    assert all(t["tls"] for t in mx.transactions), mx.transactions
    assert pol.hits == 1
    # the second message uses the policy in memory: no new fetch
    submit(relay, ["b@good.test"])
    ev = wait_event(relay, "delivered", "b@good.test")
    assert fields(ev).get("tls_policy") == "mta-sts", ev
    assert pol.hits == 1


FAILURES = [
    # MX certificate name, expired, STARTTLS offered, result type
    ("wrong-name", "other.test", False, True, "certificate-host-mismatch"),
    ("expired", "mx.bad.test", True, True, "certificate-expired"),
    ("stripped", None, False, False, "starttls-not-supported"),
]


@pytest.mark.parametrize("case,cn,expired,tls,result", FAILURES,
                         ids=[f[0] for f in FAILURES])
def test_enforce_failure_deferred_never_plaintext(world, case, cn, expired,
                                                  tls, result):
    world.sts_domain("bad.test", "127.0.0.22", "127.0.0.32")
    world.start_dns()
    world.policy("bad.test", "127.0.0.32")
    mx = world.mx("127.0.0.22", cn, expired=expired, tls=tls)
    relay = world.relay()
    submit(relay, ["a@bad.test"])
    ev = wait_event(relay, "deferred", "a@bad.test")
    f = fields(ev)
    assert f.get("dsn") == "4.7.5", ev
    assert f"result={result}" in f.get("reply", ""), ev
    assert "mta-sts policy" in f.get("reply", ""), ev
    # never in plaintext: no MAIL reached the MX, on this try or a retry
    time.sleep(3)
    assert mx.transactions == [], mx.transactions
    assert mx.message_count() == 0
    assert events(relay, "delivered") == []


def test_enforce_mx_not_in_policy_not_used(world):
    world.sts_domain("mix.test", "127.0.0.23", "127.0.0.33")
    world.records["mix.test"] = {"MX": [[10, "mx.evil.test"],
                                        [20, "mx.mix.test"]]}
    world.records["mx.evil.test"] = {"A": ["127.0.0.24"]}
    world.start_dns()
    world.policy("mix.test", "127.0.0.33")
    good = world.mx("127.0.0.23", "mx.mix.test")
    evil = world.mx("127.0.0.24", "mx.evil.test")
    relay = world.relay()
    submit(relay, ["a@mix.test"])
    wait_event(relay, "delivered", "a@mix.test")
    assert good.message_count() == 1
    assert evil.connections == 0
    assert any("host=mx.evil.test" in l and "tls_policy=mta-sts" in l
               and "result=validation-failure" in l
               for l in events(relay, "tls-policy-failed"))


def test_enforce_no_mx_matches_deferred(world):
    world.sts_domain("none.test", "127.0.0.25", "127.0.0.35")
    world.start_dns()
    world.policy("none.test", "127.0.0.35", mx="*.elsewhere.test")
    mx = world.mx("127.0.0.25", "mx.none.test")
    relay = world.relay()
    submit(relay, ["a@none.test"])
    ev = wait_event(relay, "deferred", "a@none.test")
    assert fields(ev).get("dsn") == "4.7.5", ev
    assert "result=validation-failure" in ev, ev
    assert mx.connections == 0


# ------------------------------------------------------------ testing

def test_testing_mode_delivers(world):
    """testing: failures are only reported (tls_policy.h), the message
    goes at [delivery] tls (may) to a host whose name does not match."""
    world.sts_domain("try.test", "127.0.0.26", "127.0.0.36")
    world.start_dns()
    world.policy("try.test", "127.0.0.36", mode="testing")
    mx = world.mx("127.0.0.26", "someone-else.test")
    relay = world.relay()
    submit(relay, ["a@try.test"])
    ev = wait_event(relay, "delivered", "a@try.test")
    assert fields(ev).get("tls_policy") == "mta-sts", ev
    assert mx.message_count() == 1


# ------------------------------------------------------------ cache

def test_cached_policy_survives_restart_and_server_down(world):
    world.sts_domain("keep.test", "127.0.0.27", "127.0.0.37")
    world.start_dns()
    pol = world.policy("keep.test", "127.0.0.37")
    good = world.mx("127.0.0.27", "mx.keep.test")
    relay = world.relay()
    submit(relay, ["a@keep.test"])
    wait_event(relay, "delivered", "a@keep.test")
    assert pol.hits == 1
    relay.stop()
    # the policy server goes away, and so does the good MX: one with a
    # certificate for another name takes its place
    pol.stop()
    world.closers.remove(pol.stop)
    good.stop()
    world.mx("127.0.0.27", "intruder.test")
    out = run_mta("resolve", "keep.test", conf=relay.conf).stdout.decode()
    assert re.search(r"^sts mode=enforce .*mx=mx\.keep\.test .*max_age=86400"
                     r" .*id=1 .*source=cached", out, re.M), out
    relay.start()
    submit(relay, ["b@keep.test"])
    ev = wait_event(relay, "deferred", "b@keep.test")
    # without the cached policy this would go out over unverified TLS
    assert fields(ev).get("dsn") == "4.7.5", ev
    assert "result=certificate-host-mismatch" in ev, ev
    assert events(relay, "delivered") == []


def test_refresh_on_new_txt_id(world):
    """A new id in the TXT record (checked every mta_sts_recheck) fetches
    the policy again; until then the cached one is used."""
    world.sts_domain("newid.test", "127.0.0.41", "127.0.0.42")
    world.start_dns()
    pol = world.policy("newid.test", "127.0.0.42")
    world.mx("127.0.0.41", "other-name.test")
    relay = world.relay({"mta_sts_recheck": "1s"})
    submit(relay, ["a@newid.test"])
    ev = wait_event(relay, "deferred", "a@newid.test")
    assert "result=certificate-host-mismatch" in ev, ev
    # the same id: checked, not fetched again
    time.sleep(1.5)
    submit(relay, ["b@newid.test"])
    wait_event(relay, "deferred", "b@newid.test")
    assert pol.hits == 1
    # the domain moves to testing under a new id
    pol.body = POLICY.format(mode="testing", mx="mx.newid.test",
                             max_age=86400)
    world.dns.zone.records["_mta-sts.newid.test"]["TXT"] = [
        "v=STSv1; id=2;"]
    time.sleep(1.5)
    submit(relay, ["c@newid.test"])
    wait_until(lambda: pol.hits == 2, WAIT, "a fetch for the new id")
    out = run_mta("resolve", "newid.test", conf=relay.conf).stdout.decode()
    assert re.search(r"^sts mode=testing .* id=2 ", out, re.M), out
    # a, b and c are retried under the new policy: delivered
    for r in ("a", "b", "c"):
        ev = wait_event(relay, "delivered", f"{r}@newid.test")
        assert fields(ev).get("tls_policy") == "mta-sts", ev


def test_refresh_before_expiry(world):
    """Half of max_age gone: the next use fetches again in the background
    (the cached policy still answers)."""
    world.sts_domain("age.test", "127.0.0.43", "127.0.0.44")
    world.start_dns()
    pol = world.policy("age.test", "127.0.0.44", max_age=4)
    world.mx("127.0.0.43", "mx.age.test")
    relay = world.relay()
    submit(relay, ["a@age.test"])
    wait_event(relay, "delivered", "a@age.test")
    assert pol.hits == 1
    time.sleep(2.5)
    submit(relay, ["b@age.test"])
    ev = wait_event(relay, "delivered", "b@age.test")
    assert fields(ev).get("tls_policy") == "mta-sts", ev
    wait_until(lambda: pol.hits == 2, WAIT, "a fetch before expiry")


# ------------------------------------------------------------ fetch trouble

def test_fetch_that_hangs_does_not_hold_other_domains(world):
    world.sts_domain("slow.test", "127.0.0.28", "127.0.0.38")
    world.records["plain.test"] = {"MX": [[10, "mx.plain.test"]]}
    world.records["mx.plain.test"] = {"A": ["127.0.0.29"]}
    world.start_dns()
    silent = Silent("127.0.0.38")
    world.closers.append(silent.stop)
    slow = world.mx("127.0.0.28", "mx.slow.test")
    plain = world.mx("127.0.0.29", "mx.plain.test")
    relay = world.relay({"mta_sts_timeout": "8s"})
    t0 = time.monotonic()
    submit(relay, ["a@slow.test"])
    wait_until(lambda: silent.conns, WAIT, "the policy fetch to start")
    submit(relay, ["b@plain.test"])
    wait_event(relay, "delivered", "b@plain.test")
    assert time.monotonic() - t0 < 6, "plain.test waited for slow.test"
    assert slow.message_count() == 0
    # the fetch times out: no policy, so delivery goes on as without one
    ev = wait_event(relay, "delivered", "a@slow.test")
    assert fields(ev).get("tls_policy") == "default", ev
    un = events(relay, "sts-unavailable")
    assert un and "result=sts-policy-fetch-error" in un[0], un


@pytest.mark.parametrize("how", ["html", "big", "redirect"])
def test_bad_policy_response_is_a_fetch_error(world, how):
    """A policy that must not be used: the fetch fails, there is no
    cached policy, so delivery falls back to [delivery] tls (may): the MX
    with a certificate for another name still gets the message."""
    world.sts_domain("odd.test", "127.0.0.30", "127.0.0.40")
    world.start_dns()
    world.policy("odd.test", "127.0.0.40", how=how)
    mx = world.mx("127.0.0.30", "not-the-mx.test")
    relay = world.relay()
    submit(relay, ["a@odd.test"])
    ev = wait_event(relay, "delivered", "a@odd.test")
    assert fields(ev).get("tls_policy") == "default", ev
    assert mx.message_count() == 1
    un = events(relay, "sts-unavailable")
    assert un and "result=sts-policy-fetch-error" in un[0], un
