# SPDX-License-Identifier: ISC
"""
AUTH to a smarthost is never silently skipped (issue 13 item 5).

A [route] with username/password authenticates to its host (AUTH PLAIN,
else LOGIN) or defers every recipient with the reason: no usable AUTH
(4.7.0), a plaintext session without `auth_without_tls = yes` (4.7.0, the
password never on the wire), a refused AUTH (the server's reply, deferred
as Postfix's smtp_sasl_auth_soft_bounce does). `tls = verify` trusts an
internal CA through [delivery] ca_file or ca_path. `mta resolve` shows a
route's port, TLS policy and AUTH; check-config loads the CA keys.

The smarthosts are tests/integration/smtp_servers.py servers, which record
every AUTH attempt and every byte the relay sent them.
"""
import base64
import subprocess

import pytest

from conftest import base_sections, merge_sections, run_mta, write_config
from smtp_servers import make_cert
from test_delivery import World, events, submit, wait_event

USER, PASSWORD = "relay-user", "Sm4rt-h0st-secret"


@pytest.fixture
def world(tmp_path, relay_factory):
    w = World(tmp_path, relay_factory)
    w.zone({})
    yield w
    problems = w.close()
    assert not problems, "test server errors:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def selfsigned(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"), "smarthost.test")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   timeout=60, cwd=cwd)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """An internal CA and a certificate it signed for 127.0.0.31 (IP SAN,
    as a [bracketed] route host is verified). (ca_cert, (cert, key))."""
    d = tmp_path_factory.mktemp("ca")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=mta test internal CA", "-keyout", "ca.key",
             "-out", "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
             "/CN=smarthost.test", "-keyout", "host.key", "-out", "host.csr",
             cwd=d)
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.31,DNS:smarthost.test\n"
        "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "host.csr", "-CA", "ca.crt", "-CAkey",
             "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf",
             "-out", "host.crt", cwd=d)
    return str(d / "ca.crt"), (str(d / "host.crt"), str(d / "host.key"))


def route(host, **kw):
    """A [route auth.test] section to [host], with our credentials."""
    kv = {"host": f"[{host}]", "username": USER, "password": PASSWORD}
    kv.update(kw)
    return "[route auth.test]\n" + "".join(
        f"{k} = {v}\n" for k, v in kv.items() if v is not None)


def secret_forms():
    """The password as it would cross the wire: clear, LOGIN's base64 and
    PLAIN's base64 (authzid empty)."""
    return [PASSWORD.encode(), base64.b64encode(PASSWORD.encode()),
            base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())]


def deferred(relay, rcpt):
    ev = wait_event(relay, "deferred", rcpt)[0]
    assert events(relay, "delivered", rcpt) == [], "delivered anyway"
    assert events(relay, "failed", rcpt) == [], "bounced, not deferred"
    return ev


def queued_reply(relay, rcpt):
    (row,) = relay.queue_list()
    (rc,) = [r for r in row["rcpts"] if r["addr"].strip("<>") == rcpt]
    assert rc["state"] == "pending", rc
    return rc


# ---------------------------------------------------------------- AUTH

def test_auth_login_only_authenticates(world, selfsigned):
    """A smarthost that offers only AUTH LOGIN (after STARTTLS) gets the
    username and password, then the message."""
    srv = world.server("127.0.0.30", tls_cert=selfsigned, auth=["LOGIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(extra=route("127.0.0.30", tls="encrypt"))
    submit(relay, ["to@auth.test"])
    wait_event(relay, "delivered", "to@auth.test")
    assert srv.auths == [{"mech": "LOGIN", "user": USER,
                          "password": PASSWORD, "ok": True, "tls": True}]
    (m,) = srv.snapshot()["messages"]
    assert m["tls"] is True and m["rcpts"] == ["to@auth.test"]


def test_auth_plain_verify_with_ca_file(world, ca):
    """tls = verify to a host whose certificate an internal CA signed:
    trusted through [delivery] ca_file. PLAIN is preferred to LOGIN."""
    ca_cert, host_cert = ca
    srv = world.server("127.0.0.31", tls_cert=host_cert,
                       auth=["LOGIN", "PLAIN"], credentials=(USER, PASSWORD))
    relay = world.relay(delivery={"ca_file": ca_cert},
                        extra=route("127.0.0.31", tls="verify"))
    submit(relay, ["to@auth.test"])
    wait_event(relay, "delivered", "to@auth.test")
    assert [(a["mech"], a["ok"], a["tls"]) for a in srv.auths] == [
        ("PLAIN", True, True)]
    assert srv.snapshot()["messages"][0]["tls"] is True


def test_verify_with_ca_path(world, ca, tmp_path):
    """The same CA from a hashed directory ([delivery] ca_path)."""
    ca_cert, host_cert = ca
    d = tmp_path / "certs"
    d.mkdir()
    (d / "internal.pem").write_bytes(open(ca_cert, "rb").read())
    subprocess.run(["openssl", "rehash", str(d)], check=True,
                   capture_output=True, timeout=60)
    srv = world.server("127.0.0.31", tls_cert=host_cert, auth=["PLAIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(delivery={"ca_path": d},
                        extra=route("127.0.0.31", tls="verify"))
    submit(relay, ["to@auth.test"])
    wait_event(relay, "delivered", "to@auth.test")
    assert len(srv.auths) == 1 and srv.auths[0]["ok"]


def test_verify_without_ca_file_deferred(world, ca):
    """Without ca_file the system store does not know the internal CA:
    the handshake fails, nothing is sent, the mail waits."""
    _, host_cert = ca
    srv = world.server("127.0.0.31", tls_cert=host_cert, auth=["PLAIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(extra=route("127.0.0.31", tls="verify"))
    submit(relay, ["to@auth.test"])
    ev = deferred(relay, "to@auth.test")
    assert ev["dsn"] == "4.7.5" and "TLS handshake failed" in ev["reply"], ev
    assert "certificate verify failed" in relay.stderr_text()
    assert srv.auths == [] and srv.snapshot()["messages"] == []
    for form in secret_forms():
        assert form not in srv.wire


def test_auth_only_without_tls_deferred(world):
    """A smarthost that offers AUTH but no STARTTLS: the password is never
    sent (not in any form, on any byte the server read); deferred 4.7.0."""
    srv = world.server("127.0.0.33", auth=["PLAIN", "LOGIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(extra=route("127.0.0.33"))
    submit(relay, ["to@auth.test"])
    ev = deferred(relay, "to@auth.test")
    assert ev["dsn"] == "4.7.0", ev
    assert "not sent without TLS" in ev["reply"], ev
    assert srv.auths == [] and srv.snapshot()["messages"] == []
    assert srv.snapshot()["connections"] >= 1
    assert b"EHLO" in srv.wire and b"AUTH" not in srv.wire.upper()
    for form in secret_forms():
        assert form not in srv.wire, f"{form!r} crossed the wire in clear"
    assert "not sent without TLS" in queued_reply(relay, "to@auth.test")[
        "reply"]


def test_tls_none_route_deferred(world):
    """tls = none on the route: the same, even if STARTTLS were offered."""
    srv = world.server("127.0.0.33", auth=["PLAIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(extra=route("127.0.0.33", tls="none"))
    submit(relay, ["to@auth.test"])
    assert deferred(relay, "to@auth.test")["dsn"] == "4.7.0"
    for form in secret_forms():
        assert form not in srv.wire


def test_auth_without_tls_allowed_explicitly(world):
    """[route] auth_without_tls = yes: AUTH in plaintext, as asked."""
    srv = world.server("127.0.0.34", auth=["PLAIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(extra=route("127.0.0.34", auth_without_tls="yes"))
    submit(relay, ["to@auth.test"])
    wait_event(relay, "delivered", "to@auth.test")
    assert srv.auths == [{"mech": "PLAIN", "user": USER,
                          "password": PASSWORD, "ok": True, "tls": False}]
    assert srv.snapshot()["messages"][0]["tls"] is False


def test_no_auth_offered_deferred(world, selfsigned):
    srv = world.server("127.0.0.35", tls_cert=selfsigned)
    relay = world.relay(extra=route("127.0.0.35", tls="encrypt"))
    submit(relay, ["to@auth.test"])
    ev = deferred(relay, "to@auth.test")
    assert ev["dsn"] == "4.7.0", ev
    assert ev["reply"].endswith(": smarthost offered no usable AUTH"), ev
    assert srv.snapshot()["messages"] == [] and srv.transactions == []


def test_unsupported_mechanism_deferred(world, selfsigned):
    srv = world.server("127.0.0.35", tls_cert=selfsigned, auth=["CRAM-MD5"])
    relay = world.relay(extra=route("127.0.0.35", tls="encrypt"))
    submit(relay, ["to@auth.test"])
    ev = deferred(relay, "to@auth.test")
    assert ev["dsn"] == "4.7.0", ev
    assert ev["reply"].endswith(": smarthost offered no usable AUTH"), ev
    assert srv.transactions == []


def test_wrong_password_deferred_with_reply(world, selfsigned):
    """535: deferred (soft bounce, as Postfix by default), the server's
    reply in the log and in the queue; no transaction attempted."""
    srv = world.server("127.0.0.36", tls_cert=selfsigned, auth=["LOGIN"],
                       credentials=(USER, "another-password"))
    relay = world.relay(extra=route("127.0.0.36", tls="encrypt"))
    submit(relay, ["to@auth.test"])
    ev = deferred(relay, "to@auth.test")
    assert ev["dsn"] == "4.7.8", ev
    assert "535 5.7.8 Error: authentication failed" in ev["reply"], ev
    assert [a["ok"] for a in srv.auths] == [False]
    assert srv.transactions == []
    assert "authentication failed" in queued_reply(relay, "to@auth.test")[
        "reply"]


def test_connection_without_auth_not_reused_for_auth_route(world,
                                                         selfsigned):
    """Two routes to one host, one with credentials: the idle connection
    the other route left (never authenticated) must not carry the mail of
    the route that authenticates."""
    srv = world.server("127.0.0.37", tls_cert=selfsigned, auth=["PLAIN"],
                       credentials=(USER, PASSWORD))
    relay = world.relay(
        delivery={"workers": "1", "idle_timeout": "60s"},
        extra="[route plain.test]\nhost = [127.0.0.37]\n"
              + route("127.0.0.37"))
    submit(relay, ["first@plain.test"])
    wait_event(relay, "delivered", "first@plain.test")
    submit(relay, ["second@auth.test"], n=1)
    wait_event(relay, "delivered", "second@auth.test")
    assert [(a["user"], a["ok"]) for a in srv.auths] == [(USER, True)]
    assert srv.snapshot()["connections"] == 2


# ---------------------------------------------------------------- commands

def _conf(tmp_path, extra, delivery=None):
    sections = merge_sections(base_sections(tmp_path / "q", 2525),
                              {"delivery": delivery or {}})
    return write_config(tmp_path / "mta.conf", sections, extra)


def test_resolve_shows_route_port_tls_auth(tmp_path):
    conf = _conf(tmp_path, "[route auth.test]\nhost = [192.0.2.10]:587\n"
                 f"tls = verify\nusername = {USER}\npassword = {PASSWORD}\n"
                 "[route open.test]\nhost = [192.0.2.11]\n"
                 "[route clear.test]\nhost = [192.0.2.12]\n"
                 f"username = {USER}\npassword = {PASSWORD}\n"
                 "auth_without_tls = yes\n",
                 delivery={"port": "2526", "tls": "may"})
    p = run_mta("resolve", "auth.test", "open.test", "clear.test", conf=conf)
    out = p.stdout.decode()
    assert PASSWORD not in out + p.stderr.decode()
    lines = [l for l in out.splitlines() if l.startswith("status=")]
    assert len(lines) == 3, out
    assert (f'route="192.0.2.10" port=587 tls=verify auth="{USER}" '
            "password=*** auth_without_tls=no") in lines[0], lines[0]
    assert 'route="192.0.2.11" port=2526 tls=may auth=none' in lines[1], lines
    assert (f'port=2526 tls=may auth="{USER}" password=*** '
            "auth_without_tls=yes") in lines[2], lines[2]


def _line_of(conf, key):
    for n, l in enumerate(conf.read_text().splitlines(), 1):
        if l.startswith(f"{key} ="):
            return n
    raise AssertionError(key)


@pytest.mark.parametrize("key,make,why", [
    ("ca_file", lambda d: d / "missing.pem", "No such file or directory"),
    ("ca_file", lambda d: (d / "junk.pem").write_text("not a cert\n")
     and d / "junk.pem", ""),
    ("ca_file", lambda d: d, "is a directory"),
    ("ca_path", lambda d: d / "missing", "No such file or directory"),
    ("ca_path", lambda d: (d / "f").write_text("x") and d / "f",
     "not a directory"),
])
def test_check_config_ca_unusable(tmp_path, key, make, why):
    d = tmp_path / "tls"
    d.mkdir()
    conf = _conf(tmp_path, "", delivery={key: make(d)})
    p = run_mta("check-config", conf=conf, check=False)
    err = p.stderr.decode()
    assert p.returncode == 1, (p.returncode, err)
    assert err.startswith(f"{conf}:{_line_of(conf, key)}: {key}: "), err
    assert why in err, err
    # serve refuses the same file at start
    s = run_mta("serve", conf=conf, check=False, timeout=30)
    assert s.returncode != 0, s.stderr
    assert str(make(d)) in s.stderr.decode(), s.stderr


def test_check_config_ca_ok(tmp_path, ca):
    ca_cert, _ = ca
    conf = _conf(tmp_path, "", delivery={"ca_file": ca_cert,
                                         "ca_path": tmp_path})
    p = run_mta("check-config", conf=conf)
    out = p.stdout.decode()
    assert f"ca_file = {ca_cert}" in out and f"ca_path = {tmp_path}" in out


def test_check_config_warns_auth_without_tls(tmp_path):
    conf = _conf(tmp_path, route("192.0.2.10", tls="may",
                                 auth_without_tls="yes"))
    p = run_mta("check-config", conf=conf)
    err = p.stderr.decode()
    assert ("[route auth.test] password with tls = may: auth_without_tls = "
            "yes, it may be sent without TLS") in err, err
    assert PASSWORD not in err + p.stdout.decode()
    assert "auth_without_tls = yes" in p.stdout.decode()
