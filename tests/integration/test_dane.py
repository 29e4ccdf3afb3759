# SPDX-License-Identifier: ISC
"""
DANE for outbound SMTP (issue 11, items 1 and 2), end to end through a real
validating resolver: unbound with the signed test zone's key as its only
trust anchor, the zones served by nsd (dnssec_server.py), the relay with
[dns] dnssec = yes, and recording SMTP servers (smtp_servers.py) on
127.0.0.x presenting the certificates the TLSA records describe.

- DANE-EE (3 1 1) that matches: delivered over TLS, tls_policy=dane.
- DANE-EE that does not match: deferred 4.7.5, the server never sees the
  message (no plaintext fallback), the log says why (validation-failure).
- DANE-TA (2 0 1, a test CA): delivered; the same CA for a host whose
  certificate names another host: deferred 4.7.5 (RFC 7672 name checks).
- A bogus TLSA record (unbound says SERVFAIL): deferred 4.7.5, no
  connection.
- A validated MX whose host's AAAA lookup fails (bogus: unbound says
  SERVFAIL) while its A is validated: deferred 4.7.5 dnssec-invalid, no
  connection, never the non-DANE policy (RFC 7672 2.2).
- A CNAME'd MX host (RFC 7672 2.2.3): TLSA at the CNAME-expanded name
  first (DANE-TA, the certificate names only the expanded name, which is
  then a reference id too): delivered under dane; TLSA only at the MX
  name: found there after the expanded name has none: delivered under
  dane.
- STARTTLS missing at an MX with TLSA records: deferred 4.7.5
  (starttls-not-supported), never plaintext.
- Only unusable TLSA records (PKIX-EE): TLS is required but the
  certificate is not checked: delivered over TLS, tls_policy=dane.
- An unsigned zone (no AD): [delivery] tls applies (may): delivered,
  tls_policy=default, though its TLSA record would not match.
- `mta resolve` shows the policy, its source and the TLSA records.

Run inside a network namespace with only loopback (tests/run.sh does).
"""
import re
import shutil
import socket

import pytest

from conftest import free_port, queued_id, send_message
from dnssec_server import ValidatingDNS, make_ca_chain, tlsa_digest
from smtp_servers import SMTPServer, make_cert, wait_until

WAIT = 30.0
SENDER = "sender@origin.test"

HOSTS = {  # MX host: its address
    "mx-ee": "127.0.0.2", "mx-bad": "127.0.0.3", "mx-ta": "127.0.0.4",
    "mx-sf": "127.0.0.5", "mx-strip": "127.0.0.6", "mx-taname": "127.0.0.8",
    "mx-pkix": "127.0.0.9", "mx-af": "127.0.0.10",
}
CN_MX, CN2_MX = "127.0.0.11", "127.0.0.12"  # real-cn, real-cn2
PLAIN_MX = "127.0.0.7"


def _can_bind(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


if not _can_bind("127.0.0.2"):
    pytest.skip("127.0.0.x other than 127.0.0.1 is not usable here (run "
                "inside `unshare -n` with lo up, as tests/run.sh does)",
                allow_module_level=True)
for tool in ("unbound", "nsd", "ldns-signzone", "ldns-keygen"):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/deps.sh)",
                    allow_module_level=True)


class World:
    def __init__(self, tmp):
        self.port = free_port()
        ee_cert = make_cert(tmp / "ee", "mx-ee.dane.test")
        chain, key, ca = make_ca_chain(tmp / "ca", "mx-ta.dane.test")
        ee = tlsa_digest(ee_cert[0], 1)
        ta = tlsa_digest(ca, 0)
        tl = f"_{self.port}._tcp"
        recs = {}
        for name, domain in (("mx-ee", "ee"), ("mx-bad", "bad"),
                             ("mx-ta", "ta"), ("mx-sf", "sf"),
                             ("mx-strip", "strip"),
                             ("mx-taname", "taname"), ("mx-pkix", "pkix"),
                             ("mx-af", "af")):
            recs[f"{domain}.dane.test"] = [("MX", f"10 {name}.dane.test.")]
            recs[f"{name}.dane.test"] = [("A", HOSTS[name])]
        recs["mx-af.dane.test"].append(("AAAA", "::1"))
        cn_chain, cn_key, cn_ca = make_ca_chain(tmp / "ca-cn",
                                                "real-cn.dane.test")
        for n, ip in (("cn", CN_MX), ("cn2", CN2_MX)):
            recs[f"{n}.dane.test"] = [("MX", f"10 mx-{n}.dane.test.")]
            recs[f"mx-{n}.dane.test"] = [("CNAME", f"real-{n}.dane.test.")]
            recs[f"real-{n}.dane.test"] = [("A", ip)]
        recs[f"{tl}.real-cn.dane.test"] = [
            ("TLSA", f"2 0 1 {tlsa_digest(cn_ca, 0)}")]
        recs[f"{tl}.mx-cn2.dane.test"] = [("TLSA", f"3 1 1 {ee}")]
        self.tlsa = {
            "mx-ee": f"3 1 1 {ee}", "mx-bad": f"3 1 1 {'ab' * 32}",
            "mx-ta": f"2 0 1 {ta}", "mx-sf": f"3 1 1 {ee}",
            "mx-strip": f"3 1 1 {ee}", "mx-taname": f"2 0 1 {ta}",
            # PKIX-EE: unusable for SMTP (RFC 7672 3.1.3), and wrong too
            "mx-pkix": f"1 1 1 {'ef' * 32}",
            "mx-af": f"3 1 1 {ee}",
        }
        for name, rdata in self.tlsa.items():
            recs[f"{tl}.{name}.dane.test"] = [("TLSA", rdata)]
        plain = {"plain.test": [("MX", "10 mx.plain.test.")],
                 "mx.plain.test": [("A", PLAIN_MX)],
                 f"{tl}.mx.plain.test": [("TLSA", f"3 1 1 {'cd' * 32}")]}
        self.dns = ValidatingDNS(
            tmp / "dns", {"dane.test": recs, "plain.test": plain},
            signed={"dane.test"},
            bogus={(f"{tl}.mx-sf.dane.test", "TLSA"),
                   ("mx-af.dane.test", "AAAA")}).start()
        tls_ee = (str(ee_cert[0]), str(ee_cert[1]))
        tls_ta = (str(chain), str(key))
        self.servers = {
            "ee": self._server(HOSTS["mx-ee"], tls_ee),
            "bad": self._server(HOSTS["mx-bad"], tls_ee),
            "ta": self._server(HOSTS["mx-ta"], tls_ta),
            "sf": self._server(HOSTS["mx-sf"], tls_ee),
            "strip": self._server(HOSTS["mx-strip"], None),
            "taname": self._server(HOSTS["mx-taname"], tls_ta),
            "pkix": self._server(HOSTS["mx-pkix"], tls_ee),
            "af": self._server(HOSTS["mx-af"], tls_ee),
            "cn": self._server(CN_MX, (str(cn_chain), str(cn_key))),
            "cn2": self._server(CN2_MX, tls_ee),
            "plain": self._server(PLAIN_MX, tls_ee),
        }

    def _server(self, host, tls):
        return SMTPServer(host, self.port, name=f"mx-{host}",
                          tls_cert=tls).start()

    def close(self):
        problems = []
        for s in self.servers.values():
            s.stop()
            problems += [f"{s.name}: {e}" for e in s.errors]
        self.dns.stop()
        return problems


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("dane"))
    yield w
    problems = w.close()
    assert not problems, "test server errors:\n" + "\n".join(problems)


@pytest.fixture
def relay(world, relay_factory):
    r = relay_factory({
        "route *": None,
        "dns": {"servers": f"127.0.0.1:{world.dns.port}", "timeout": "3s",
                "tries": "2", "dnssec": "yes"},
        "delivery": {"port": world.port, "workers": "2", "tls": "may",
                     "connect_timeout": "5s"},
        "queue": {"retry": "1s"},
    })
    yield r
    assert not r.problems(), r.problems()


def submit(relay, domain, local="someone"):
    with relay.client() as c:
        c.ehlo()
        qid = queued_id(send_message(
            c, b"Subject: dane\r\n\r\nhello\r\n", sender=SENDER,
            rcpts=(f"{local}@{domain}",)), c)
        c.cmd("QUIT")
    return qid


def outcome(relay, qid, event):
    pat = re.compile(rf"event={event} id={qid} .*")

    def find():
        m = pat.search(relay.stderr_text())
        return m.group(0) if m else None
    return wait_until(find, WAIT, f"event={event} for {qid}")


def got(server, local):
    return [m for m in server.messages
            if any(r.startswith(local + "@") for r in m["rcpts"])]


def test_dane_ee_match_delivered(world, relay):
    qid = submit(relay, "ee.dane.test", "ee1")
    line = outcome(relay, qid, "delivered")
    assert "tls_policy=dane" in line, line
    m = got(world.servers["ee"], "ee1")
    assert len(m) == 1 and m[0]["tls"] is True


def test_dane_ee_mismatch_deferred_never_plaintext(world, relay):
    qid = submit(relay, "bad.dane.test", "bad1")
    line = outcome(relay, qid, "deferred")
    assert "dsn=4.7.5" in line, line
    assert "result=validation-failure" in line, line
    text = relay.stderr_text()
    assert "event=tls-failed" in text and "tls_policy=dane" in text
    # a second attempt (retry 1s) goes the same way: still no plaintext
    wait_until(lambda: relay.stderr_text().count(
        f"event=deferred id={qid}") >= 2, WAIT, "a second attempt")
    assert got(world.servers["bad"], "bad1") == []
    assert all(t["tls"] or not t["rcpts"]
               for t in world.servers["bad"].transactions)


def test_dane_ta_delivered(world, relay):
    qid = submit(relay, "ta.dane.test", "ta1")
    line = outcome(relay, qid, "delivered")
    assert "tls_policy=dane" in line, line
    assert len(got(world.servers["ta"], "ta1")) == 1


def test_dane_ta_name_mismatch_deferred(world, relay):
    # the CA is the trust anchor, but the certificate names mx-ta, not
    # mx-taname: DANE-TA checks names (RFC 7672 3.2.2)
    qid = submit(relay, "taname.dane.test", "tn1")
    line = outcome(relay, qid, "deferred")
    assert "dsn=4.7.5" in line, line
    assert got(world.servers["taname"], "tn1") == []


def test_tlsa_servfail_deferred_no_connection(world, relay):
    before = world.servers["sf"].connections
    qid = submit(relay, "sf.dane.test", "sf1")
    line = outcome(relay, qid, "deferred")
    assert "dsn=4.7.5" in line and "TLSA lookup" in line, line
    assert "result=dnssec-invalid" in line, line
    assert world.servers["sf"].connections == before
    assert "event=tls-policy-failed" in relay.stderr_text()


def test_address_servfail_under_validated_mx_deferred(world, relay):
    # RFC 7672 2.2: the A record alone would pass as "no DANE" and go out
    # under tls = may; a failed (not insecure) AAAA lookup must not
    before = world.servers["af"].connections
    qid = submit(relay, "af.dane.test", "af1")
    line = outcome(relay, qid, "deferred")
    assert "dsn=4.7.5" in line and "address lookup" in line, line
    assert "result=dnssec-invalid" in line, line
    assert world.servers["af"].connections == before
    assert got(world.servers["af"], "af1") == []


def test_cname_mx_tlsa_at_expanded_name(world, relay):
    # without the expanded name the MX name has no TLSA (validated
    # NXDOMAIN): the default policy would apply
    qid = submit(relay, "cn.dane.test", "cn1")
    line = outcome(relay, qid, "delivered")
    assert "tls_policy=dane" in line, line
    m = got(world.servers["cn"], "cn1")
    assert len(m) == 1 and m[0]["tls"] is True
    out = relay.mta("resolve", "cn.dane.test").stdout.decode()
    assert "tls_policy=dane host=mx-cn.dane.test" in out, out
    assert "tlsa_base=real-cn.dane.test" in out, out


def test_cname_mx_tlsa_at_mx_name(world, relay):
    qid = submit(relay, "cn2.dane.test", "cn2")
    line = outcome(relay, qid, "delivered")
    assert "tls_policy=dane" in line, line
    assert len(got(world.servers["cn2"], "cn2")) == 1


def test_starttls_stripped_deferred(world, relay):
    qid = submit(relay, "strip.dane.test", "st1")
    line = outcome(relay, qid, "deferred")
    assert "dsn=4.7.5" in line, line
    assert "starttls-not-supported" in line, line
    assert got(world.servers["strip"], "st1") == []


def test_only_unusable_records_tls_required_unauthenticated(world, relay):
    # RFC 7672 2.2: TLS is mandatory, the certificate is not checked
    qid = submit(relay, "pkix.dane.test", "pk1")
    line = outcome(relay, qid, "delivered")
    assert "tls_policy=dane" in line, line
    m = got(world.servers["pkix"], "pk1")
    assert len(m) == 1 and m[0]["tls"] is True


def test_unsigned_zone_falls_back(world, relay):
    qid = submit(relay, "plain.test", "pl1")
    line = outcome(relay, qid, "delivered")
    assert "tls_policy=default" in line, line
    assert len(got(world.servers["plain"], "pl1")) == 1


def test_resolve_shows_policy(world, relay):
    p = relay.mta("resolve", "ee.dane.test")
    out = p.stdout.decode()
    assert "tls_policy=dane" in out, out
    assert world.tlsa["mx-ee"].split()[-1].lower() in out.lower(), out
    p = relay.mta("resolve", "plain.test")
    out = p.stdout.decode()
    assert "tls_policy=default" in out, out
