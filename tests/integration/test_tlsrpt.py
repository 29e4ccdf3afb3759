# SPDX-License-Identifier: ISC
"""
TLS reporting (RFC 8460; issue 11, item 4) end to end, on loopback only.

Sessions are made under MTA-STS enforce policies with the MTA-STS tests'
world (test_mta_sts.py: the scripted DNS server, the HTTPS policy server
and MX hosts with a test CA): a good certificate (delivered), an expired
one, a wrong name and STARTTLS stripped (each deferred). Each policy
domain publishes `_smtp._tls` with a mailto: rua (a recording SMTP
server, reached by MX like any mail the relay sends) and an https: rua
(a recording HTTPS server on localhost with a certificate from the same
CA, which the relay trusts through [delivery] ca_file). With a period of
a few seconds, the reports that arrive are parsed (MIME, base64, gunzip,
json.loads) and their RFC 8460 fields and counts checked against the
sessions the MX hosts saw. The counts survive a restart.
"""
import email
import email.policy
import gzip
import http.server
import json
import re
import ssl
import threading
import time

import pytest

from conftest import free_port, run_mta, write_config
from dkim_verify import verify_each
from smtp_servers import SMTPServer, wait_until

try:  # the MTA-STS tests' world: test CA, policy server, MX hosts
    from test_mta_sts import World, submit, wait_event
except ImportError:  # pragma: no cover (before MTA-STS was merged)
    World = None
    from conftest import queued_id, send_message

    def submit(relay, rcpts):
        with relay.client() as c:
            c.ehlo()
            qid = queued_id(send_message(
                c, b"Subject: tlsrpt\r\n\r\nhello\r\n",
                sender="sender@origin.test", rcpts=rcpts), c)
            c.cmd("QUIT")
        return qid

    def wait_event(relay, kind, rcpt):
        return wait_until(
            lambda: f'event={kind} ' in relay.stderr_text() and
            f'rcpt="{rcpt}"' in relay.stderr_text(), 30,
            f"event={kind} rcpt={rcpt}")

INTERVAL = 3  # s, a report period
REPORTS_IP = "127.0.0.40"


class RuaServer:
    """HTTPS on localhost: records each POST (headers and body)."""

    def __init__(self, cert, port=None):
        srv = self
        self.posts = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with srv.lock:
                    srv.posts.append({"path": self.path,
                                      "type": self.headers.get(
                                          "Content-Type"),
                                      "body": body})
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.port = port or free_port()
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                     Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def reports(self):
        with self.lock:
            return [(p, json.loads(gzip.decompress(p["body"])))
                    for p in self.posts]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def mail_reports(srv):
    """(message, report) for each report mail the recording server got."""
    out = []
    for m in list(srv.messages):
        msg = email.message_from_bytes(m["data"], policy=email.policy.default)
        part = None
        for p in msg.walk():
            if p.get_content_type() == "application/tlsrpt+gzip":
                part = p
        assert part is not None, m["data"][:2000]
        out.append((msg, json.loads(gzip.decompress(
            part.get_payload(decode=True)))))
    return out


@pytest.fixture
def world(tmp_path, relay_factory):
    if World is None:
        pytest.skip("needs the MTA-STS tests (test_mta_sts.py)")
    w = World(tmp_path, relay_factory)
    yield w
    for c in w.closers:
        c()


# name, MX certificate name, expired, STARTTLS offered, result type
CASES = [
    ("good", "mx.good.test", False, True, None),
    ("expired", "mx.expired.test", True, True, "certificate-expired"),
    ("name", "other.test", False, True, "certificate-host-mismatch"),
    ("strip", None, False, False, "starttls-not-supported"),
]


def setup_world(world, https_host="localhost"):
    rua = RuaServer(world.ca.leaf("localhost"))
    world.closers.append(rua.stop)
    mxs = {}
    for i, (name, cn, expired, tls, _) in enumerate(CASES):
        dom = f"{name}.test"
        world.sts_domain(dom, f"127.0.0.{21 + i}", f"127.0.0.{31 + i}")
        world.records[f"_smtp._tls.{dom}"] = {"TXT": [
            f"v=TLSRPTv1; rua=mailto:tls@reports.test,"
            f"https://{https_host}:{rua.port}/rua/{name}"]}
    world.records["reports.test"] = {"MX": [[10, "mx.reports.test"]]}
    world.records["mx.reports.test"] = {"A": [REPORTS_IP]}
    world.start_dns()
    for i, (name, cn, expired, tls, _) in enumerate(CASES):
        world.policy(f"{name}.test", f"127.0.0.{31 + i}")
        mxs[name] = world.mx(f"127.0.0.{21 + i}", cn, expired=expired,
                             tls=tls)
    reports = SMTPServer(REPORTS_IP, world.port).start()
    world.closers.append(reports.stop)
    return rua, mxs, reports


def relay_conf(world):
    return {"tlsrpt": {"enabled": "yes", "interval": f"{INTERVAL}s",
                       "org_name": "Test \"Org\"",
                       "contact": "mailto:tls-admin@origin.test",
                       "from": "tlsrpt@origin.test"},
            # one try a message: the sessions made are the ones counted
            "queue": {"retry": "1h"}}


def relay_with(world, extra, text=""):
    # World.relay sets [queue] itself: replace it after
    r = world.relay(start=False)
    for sect, kv in extra.items():
        r.sections.setdefault(sect, {}).update(kv)
    write_config(r.conf, r.sections, text)
    r.start()
    return r


def totals(reps, domain):
    """Sessions reported for domain over every report: (ok, {type: n})."""
    ok, fail = 0, {}
    for _, j in reps:
        for p in j["policies"]:
            if p["policy"]["policy-domain"] != domain:
                continue
            ok += p["summary"]["total-successful-session-count"]
            for f in p.get("failure-details", []):
                fail[f["result-type"]] = (fail.get(f["result-type"], 0)
                                          + f["failed-session-count"])
    return ok, fail


def expected(mxs):
    out = {}
    for name, _, _, _, result in CASES:
        n = mxs[name].connections
        out[f"{name}.test"] = (n, {}) if result is None else (0, {result: n})
    return out


def check_report(j, domain):
    assert j["organization-name"] == 'Test "Org"'
    assert j["contact-info"] == "mailto:tls-admin@origin.test"
    assert j["report-id"].endswith(f"_{domain}@" + j["report-id"].split("@")[1])
    dr = j["date-range"]
    assert dr["start-datetime"].endswith("Z") and dr["end-datetime"] > \
        dr["start-datetime"]
    (p,) = j["policies"]
    assert p["policy"]["policy-type"] == "sts"
    assert p["policy"]["policy-domain"] == domain
    assert "mode: enforce" in p["policy"]["policy-string"]
    assert f"mx: mx.{domain}" in p["policy"]["policy-string"]
    assert p["policy"]["mx-host"] == [f"mx.{domain}"]
    s = p["summary"]
    assert s["total-failure-session-count"] == sum(
        f["failed-session-count"] for f in p.get("failure-details", []))
    for f in p.get("failure-details", []):
        assert f["receiving-mx-hostname"] == f"mx.{domain}"
        assert f["receiving-ip"].startswith("127.0.0.")
        assert f["sending-mta-ip"] == "127.0.0.1"


def wait_counts(world, rua, reports, want):
    def done():
        got_http = {d: totals(rua.reports(), d) for d in want}
        got_mail = {d: totals(mail_reports(reports), d) for d in want}
        return got_http == want and got_mail == want
    wait_until(done, 40, f"reports matching {want}: https "
               f"{[j for _, j in rua.reports()]} mail "
               f"{[j for _, j in mail_reports(reports)]}")


def test_reports_count_sessions(world):
    rua, mxs, reports = setup_world(world)
    relay = relay_with(world, relay_conf(world))
    for name, _, _, _, result in CASES:
        submit(relay, [f"a@{name}.test"])
        wait_event(relay, "delivered" if result is None else "deferred",
                   f"a@{name}.test")
    # a second message to the good domain: another session or a reused
    # one, as the MX saw it
    submit(relay, ["b@good.test"])
    wait_event(relay, "delivered", "b@good.test")
    want = expected(mxs)
    assert all(mxs[n].connections >= 1 for n in mxs), want
    wait_counts(world, rua, reports, want)
    # a period is reported once: nothing more comes
    time.sleep(2 * INTERVAL + 1)
    assert {d: totals(rua.reports(), d) for d in want} == want
    for p, j in rua.reports():
        assert p["type"] == "application/tlsrpt+gzip"
        domain = j["policies"][0]["policy"]["policy-domain"]
        assert p["path"] == "/rua/" + domain.split(".")[0]
        check_report(j, domain)
    for msg, j in mail_reports(reports):
        domain = j["policies"][0]["policy"]["policy-domain"]
        check_report(j, domain)
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "tlsrpt"
        assert msg["TLS-Report-Domain"] == domain
        assert msg["TLS-Report-Submitter"] == 'Test "Org"'
        assert msg["Subject"] == (f'Report Domain: {domain} Submitter: '
                                  f'Test "Org" Report-ID: '
                                  f'<{j["report-id"]}>')
        assert msg["From"].addresses[0].addr_spec == "tlsrpt@origin.test"
    for m in reports.messages:
        assert m["from"] == "tlsrpt@origin.test"
        assert m["rcpts"] == ["tls@reports.test"]
    good = [j for _, j in rua.reports()
            if j["policies"][0]["policy"]["policy-domain"] == "good.test"]
    assert all("failure-details" not in j["policies"][0] for j in good)
    # the report events are strict logfmt lines (test_logs.py)
    from test_logs import strict_parse
    text = relay.stderr_text()
    assert "event=tlsrpt-sent " in text and "event=tlsrpt-queued " in text
    for line in text.splitlines():
        if "event=tlsrpt" in line:
            strict_parse(line)


def test_counts_survive_restart_and_failed_post_retried(world):
    rua, mxs, reports = setup_world(world)
    port = rua.port
    rua.stop()  # the https rua is down at first
    conf = relay_conf(world)
    conf["tlsrpt"]["interval"] = "10s"
    # a key for the from domain: the report mail is DKIM-signed
    key = world.tmp / "origin.pem"
    out = run_mta("dkim", "keygen", "origin.test", "rpt", "--type",
                  "ed25519", "--out", key).stdout.decode()
    record = "".join(re.findall(r'"([^"]*)"', out)).encode()
    relay = relay_with(world, conf, f"[dkim origin.test]\nselector = rpt\n"
                                    f"key = {key}\n")
    # early in a period, so the restart below falls inside it
    wait_until(lambda: time.time() % 10 < 2, 12, "a period's start")
    submit(relay, ["a@expired.test"])
    wait_event(relay, "deferred", "a@expired.test")
    relay.stop()  # the counts are written on the way out
    assert "event=tlsrpt-" not in relay.stderr_text(1)
    relay.start()
    want = {"expired.test": (0, {"certificate-expired":
                                 mxs["expired"].connections})}
    wait_until(lambda: {d: totals(mail_reports(reports), d)
                        for d in want} == want, 40,
               "the mail report after a restart")
    wait_until(lambda: "event=tlsrpt-send-failed" in relay.stderr_text(),
               20, "a failed POST")
    # the rua comes back: an interval later the POST is sent again, and
    # the mail (already sent) is not
    rua2 = RuaServer(world.ca.leaf("localhost"), port)
    world.closers.append(rua2.stop)
    wait_until(lambda: {d: totals(rua2.reports(), d) for d in want} == want,
               40, "the POST retried")
    time.sleep(2)
    assert len(rua2.posts) == 1
    assert len(reports.messages) == 1
    sigs = verify_each(reports.messages[0]["data"],
                       {"rpt._domainkey.origin.test": record})
    assert [(d, ok) for d, _, _, _, ok in sigs] == [("origin.test", True)]


# ------------------------------------------------------------ DANE

def test_dane_sessions_reported_per_mx_host(tmp_path, relay_factory):
    """DANE through a validating resolver (test_dane.py's unbound + nsd):
    the policy domain is the TLSA base domain, the MX host (RFC 8460
    4.3), so each MX host's `_smtp._tls` record says where its report
    goes; a matching DANE-EE record is a success, a wrong one a
    validation-failure."""
    dnssec = pytest.importorskip("dnssec_server")
    import shutil
    for tool in ("unbound", "nsd", "ldns-signzone", "ldns-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/deps.sh)")
    from smtp_servers import make_cert
    port = free_port()
    ee_cert = make_cert(tmp_path / "ee", "mx-ee.dane.test")
    ee = dnssec.tlsa_digest(ee_cert[0], 1)
    tl = f"_{port}._tcp"
    rua = '"v=TLSRPTv1; rua=mailto:tls@reports.plain.test"'
    recs = {"ee.dane.test": [("MX", "10 mx-ee.dane.test.")],
            "bad.dane.test": [("MX", "10 mx-bad.dane.test.")],
            "mx-ee.dane.test": [("A", "127.0.0.2")],
            "mx-bad.dane.test": [("A", "127.0.0.3")],
            f"{tl}.mx-ee.dane.test": [("TLSA", f"3 1 1 {ee}")],
            f"{tl}.mx-bad.dane.test": [("TLSA", f"3 1 1 {'ab' * 32}")],
            "_smtp._tls.mx-ee.dane.test": [("TXT", rua)],
            "_smtp._tls.mx-bad.dane.test": [("TXT", rua)]}
    plain = {"reports.plain.test": [("MX", "10 mx.plain.test.")],
             "mx.plain.test": [("A", "127.0.0.7")]}
    dns = dnssec.ValidatingDNS(tmp_path / "dns",
                               {"dane.test": recs, "plain.test": plain},
                               signed={"dane.test"}).start()
    tls = (str(ee_cert[0]), str(ee_cert[1]))
    good = SMTPServer("127.0.0.2", port, tls_cert=tls).start()
    bad = SMTPServer("127.0.0.3", port, tls_cert=tls).start()
    reports = SMTPServer("127.0.0.7", port).start()
    try:
        relay = relay_factory({
            "route *": None,
            "dns": {"servers": f"127.0.0.1:{dns.port}", "timeout": "3s",
                    "tries": "2", "dnssec": "yes"},
            "delivery": {"port": port, "workers": "2", "tls": "may",
                         "connect_timeout": "5s"},
            "queue": {"retry": "1h"},
            "tlsrpt": {"enabled": "yes", "interval": f"{INTERVAL}s",
                       "from": "tlsrpt@origin.test"}})
        submit(relay, ["a@ee.dane.test"])
        wait_event(relay, "delivered", "a@ee.dane.test")
        submit(relay, ["a@bad.dane.test"])
        wait_event(relay, "deferred", "a@bad.dane.test")
        want = {"mx-ee.dane.test": (good.connections, {}),
                "mx-bad.dane.test": (0, {"validation-failure":
                                         bad.connections})}
        wait_until(lambda: {d: totals(mail_reports(reports), d)
                            for d in want} == want, 40,
                   f"DANE reports matching {want}")
        for _, j in mail_reports(reports):
            (p,) = j["policies"]
            host = p["policy"]["policy-domain"]
            assert p["policy"]["policy-type"] == "tlsa"
            assert p["policy"]["mx-host"] == [host]
            assert len(p["policy"]["policy-string"]) == 1
            assert p["policy"]["policy-string"][0].startswith("3 1 1 ")
            if host == "mx-ee.dane.test":
                assert p["policy"]["policy-string"][0] == \
                    f"3 1 1 {ee.upper()}"
    finally:
        for s in (good, bad, reports):
            s.stop()
        dns.stop()


def test_https_rua_kept_from_internal_addresses(world):
    """An rua names any host: its address passes delivery's destination
    policy as a delivery's would. 0.0.0.0 (unspecified, which Linux
    connects to this machine) is never connected to, whatever the
    allow_* keys say; the mail report still goes."""
    rua, mxs, reports = setup_world(world, https_host="0.0.0.0")
    relay = relay_with(world, relay_conf(world))
    submit(relay, ["a@good.test"])
    wait_event(relay, "delivered", "a@good.test")
    wait_until(lambda: "event=tlsrpt-address-refused class=unspecified"
               in relay.stderr_text(), 10 * INTERVAL + 20,
               "the https: rua refused by the destination policy")
    wait_until(lambda: mail_reports(reports), 10 * INTERVAL + 20,
               "the mailto: report")
    assert rua.reports() == [] and rua.posts == [], rua.posts
