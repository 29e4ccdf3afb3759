# SPDX-License-Identifier: ISC
"""
Sender identity (issue 12 item 1), driven with smtplib: which envelope
senders and From: headers an authenticated user ([auth] senders) and a
relay_networks client ([server] relay_sender_domains) may use, and who may
use the null sender <> ([auth] null_sender, [server] relay_null_sender).
Also: a bad senders file fails check-config and serve with FILE:LINE.
"""
import smtplib
import subprocess

import pytest

from conftest import (base_sections, make_message, merge_sections,
                      run_mta, write_config)

PW = "s3cret-pw"
REMOTE = "rcpt@remote.example"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("senders")
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=PW.encode(), check=True, capture_output=True,
                       timeout=60).stdout.decode().strip()
    users = d / "users"
    users.write_text(f"alice:{h}\nbob:{h}\n")
    senders = d / "senders"
    senders.write_text("# who may send as whom\n"
                       "alice: alice@example.org, *@alice.example\n"
                       "bob: bob@example.org\n")
    return {"users": str(users), "senders": str(senders), "dir": d}


def auth_overrides(files, server=None, auth=None):
    ov = {
        # 127.0.0.1 is not a relay client here: only AUTH relays
        "server": {"relay_networks": "192.0.2.0/24"},
        "auth": {"users": files["users"], "senders": files["senders"],
                 "require_tls": "no"},
    }
    ov["server"].update(server or {})
    ov["auth"].update(auth or {})
    return ov


def send(relay, sender, user=None, from_hdr=None):
    """One message by smtplib (AUTH PLAIN as user when given). Returns
    (code, text) of the refusal, or (250, queue id text) when accepted."""
    msg = make_message(sender=from_hdr or sender or "nobody@example.org",
                       rcpt=REMOTE)
    with smtplib.SMTP(relay.host, relay.port, timeout=20) as s:
        s.ehlo("client.test")
        if user:
            s.login(user, PW)
        try:
            s.sendmail(sender, [REMOTE], msg)
        except smtplib.SMTPSenderRefused as e:
            return e.smtp_code, e.smtp_error.decode()
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
    return 250, ""


def test_owned_address(relay_factory, files):
    r = relay_factory(auth_overrides(files))
    assert send(r, "alice@example.org", "alice") == (250, "")
    assert send(r, "ALICE@Example.org", "alice") == (250, "")
    assert send(r, "bob@example.org", "bob") == (250, "")
    rows = r.queue_list()
    assert sorted(x["user"] for x in rows) == ["alice", "alice", "bob"]


def test_wildcard_domain(relay_factory, files):
    r = relay_factory(auth_overrides(files))
    assert send(r, "anyone@alice.example", "alice") == (250, "")
    code, text = send(r, "anyone@sub.alice.example", "alice")
    assert code == 553, text
    assert len(r.queue_list()) == 1


def test_not_owned(relay_factory, files):
    r = relay_factory(auth_overrides(files))
    code, text = send(r, "bob@example.org", "alice")
    assert (code, text) == (
        553, "5.7.1 <bob@example.org>: sender not owned by user alice")
    code, text = send(r, "ceo@example.org", "bob")
    assert (code, text) == (
        553, "5.7.1 <ceo@example.org>: sender not owned by user bob")
    assert r.queue_list() == []
    log = r.stderr_text()
    assert ("event=rejected client=127.0.0.1 reason=sender_not_owned "
            "from=<bob@example.org> user=alice") in log, log


def test_no_senders_file_any_sender(relay_factory, files):
    """Without [auth] senders nothing changes: any sender is taken."""
    r = relay_factory(auth_overrides(files, auth={"senders": ""}))
    assert send(r, "ceo@example.org", "alice") == (250, "")


@pytest.mark.parametrize("check", ["no", "yes"])
def test_from_header_mismatch(relay_factory, files, check):
    r = relay_factory(auth_overrides(
        files, server={"check_from_header": check}))
    code, text = send(r, "alice@example.org", "alice",
                      from_hdr="ceo@example.org")
    if check == "no":
        assert code == 250, text
        assert len(r.queue_list()) == 1
        return
    assert (code, text) == (
        550, "5.7.1 <ceo@example.org>: From: header not owned by user alice")
    assert r.queue_list() == []
    assert "reason=from_header" in r.stderr_text()
    # an owned From (a wildcard one) passes
    assert send(r, "alice@example.org", "alice",
                from_hdr="team@alice.example") == (250, "")
    assert len(r.queue_list()) == 1


def test_from_header_missing_refused(relay_factory, files):
    """check_from_header = yes: a message without From: is nobody's."""
    r = relay_factory(auth_overrides(
        files, server={"check_from_header": "yes"}))
    with smtplib.SMTP(r.host, r.port, timeout=20) as s:
        s.login("alice", PW)
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("alice@example.org", [REMOTE],
                       b"Subject: no from\r\n\r\nbody\r\n")
        assert e.value.smtp_code == 550
    assert r.queue_list() == []


def relay_overrides(server=None):
    ov = {"server": {"relay_networks": "127.0.0.0/8",
                     "relay_sender_domains": "example.org, corp.example"}}
    ov["server"].update(server or {})
    return ov


def test_relay_network_restricted(relay_factory):
    r = relay_factory(relay_overrides())
    assert send(r, "app@example.org") == (250, "")
    assert send(r, "app@Corp.Example") == (250, "")
    code, text = send(r, "app@evil.example")
    assert (code, text) == (
        553, "5.7.1 <app@evil.example>: sender not allowed from this client")
    assert len(r.queue_list()) == 2
    assert "reason=sender_not_allowed from=<app@evil.example>" in \
        r.stderr_text()


def test_relay_network_from_header(relay_factory):
    r = relay_factory(relay_overrides({"check_from_header": "yes"}))
    code, text = send(r, "app@example.org", from_hdr="ceo@evil.example")
    assert (code, text) == (
        550, "5.7.1 <ceo@evil.example>: From: header not allowed from this "
        "client")
    assert send(r, "app@example.org", from_hdr="x@corp.example") == (250, "")


def test_relay_network_unrestricted_by_default(relay):
    assert send(relay, "app@anywhere.example") == (250, "")


@pytest.mark.parametrize("allowed", ["yes", "no"])
def test_null_sender_auth(relay_factory, files, allowed):
    r = relay_factory(auth_overrides(files, auth={"null_sender": allowed}))
    code, text = send(r, "", "alice", from_hdr="alice@example.org")
    if allowed == "yes":
        assert code == 250, text
    else:
        assert (code, text) == (
            553, "5.7.1 <>: sender not owned by user alice")


@pytest.mark.parametrize("allowed", ["yes", "no"])
def test_null_sender_relay(relay_factory, allowed):
    r = relay_factory(relay_overrides({"relay_null_sender": allowed}))
    code, text = send(r, "", from_hdr="mailer-daemon@example.org")
    if allowed == "yes":
        assert code == 250, text
    else:
        assert (code, text) == (
            553, "5.7.1 <>: sender not allowed from this client")


def test_bad_senders_file(tmp_path, files):
    bad = tmp_path / "senders"
    bad.write_text("alice: alice@example.org\nbob example.org\n")
    sections = merge_sections(base_sections(tmp_path / "q", 2525), {
        "auth": {"users": files["users"], "senders": str(bad)}})
    conf = write_config(tmp_path / "mta.conf", sections)
    p = run_mta("check-config", conf=conf, check=False)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f"{bad}:2: no colon" in err, err


def test_bad_relay_sender_domains(tmp_path):
    sections = merge_sections(base_sections(tmp_path / "q", 2525), {
        "server": {"relay_sender_domains": "user@example.org"}})
    conf = write_config(tmp_path / "mta.conf", sections)
    p = run_mta("check-config", conf=conf, check=False)
    err = p.stderr.decode()
    assert p.returncode == 1 and "relay_sender_domains" in err, err


def test_passwd_keeps_working(relay_factory, files, tmp_path):
    """`mta passwd` rewrites the users file; the senders file is its own
    and the new user's senders apply at once after a restart."""
    import shutil
    users = tmp_path / "users"
    shutil.copy(files["users"], users)
    r = relay_factory(auth_overrides(files, auth={"users": str(users)}),
                      start=False)
    run_mta("passwd", "alice", conf=r.conf, input=b"newpw-123\n",
            timeout=60)
    r.start()
    with smtplib.SMTP(r.host, r.port, timeout=20) as s:
        s.login("alice", "newpw-123")
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("bob@example.org", [REMOTE], make_message())
        assert e.value.smtp_code == 553



def test_from_header_bdat(relay_factory, files):
    """The From: check runs on BDAT messages too (the same body machine),
    and a message that is all header (no empty line) is judged as well."""
    import base64
    r = relay_factory(auth_overrides(
        files, server={"check_from_header": "yes"}))
    plain = base64.b64encode(b"\0alice\0" + PW.encode()).decode()
    with r.client() as c:
        c.cmd("EHLO client.test")
        c.cmd(f"AUTH PLAIN {plain}")
        for msg, code in ((b"From: <ceo@example.org>\r\n\r\nhi\r\n", 550),
                          (b"From: <alice@example.org>\r\n\r\nhi\r\n", 250),
                          (b"From: <ceo@example.org>\r\n", 550)):
            c.send(f"MAIL FROM:<alice@example.org>\r\nRCPT TO:<{REMOTE}>\r\n"
                   f"BDAT {len(msg)} LAST\r\n".encode() + msg)
            c.expect(250)
            c.expect(250)
            c.expect(code, "5.7.1" if code == 550 else "2.0.0")
    assert len(r.queue_list()) == 1


def _wait_log(relay, text, timeout=20.0):
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in relay.stderr_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in the log")


def test_senders_file_reload(relay_factory, files, tmp_path):
    """SIGHUP reads the senders file again; a bad one refuses the reload
    and the running policy stays."""
    import signal
    senders = tmp_path / "senders"
    senders.write_text("alice: alice@example.org\n")
    r = relay_factory(auth_overrides(files, auth={"senders": str(senders)}))
    assert send(r, "team@alice.example", "alice")[0] == 553
    senders.write_text("alice: *@alice.example\n")
    r.proc.send_signal(signal.SIGHUP)
    _wait_log(r, "event=reloaded")
    assert send(r, "team@alice.example", "alice") == (250, "")
    senders.write_text("alice *@alice.example\n")
    r.proc.send_signal(signal.SIGHUP)
    _wait_log(r, "event=reload-failed")
    assert f"{senders}:1: no colon" in r.stderr_text()
    assert send(r, "team@alice.example", "alice") == (250, "")
