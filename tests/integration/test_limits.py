# SPDX-License-Identifier: ISC
"""
Submission limits ([limit NAME] sections, the local backend): over a
limit MAIL or RCPT gets 450 4.7.1 and the log names the limit; a
connection limit answers 421 and closes; each key counts apart; bad
[limit] sections fail check-config with FILE:LINE.
"""
import re
import smtplib
import subprocess
import time

import pytest

from conftest import (base_sections, make_message, merge_sections, run_mta,
                      write_config)

PW = "s3cret-pw"
REMOTE = "rcpt@remote.example"


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=PW.encode(), check=True, capture_output=True,
                       timeout=60).stdout.decode().strip()
    p = d / "users"
    p.write_text(f"alice:{h}\nbob:{h}\n")
    return str(p)


def limit(name, count, key, rate, burst=None):
    sec = {"count": count, "key": key, "rate": rate}
    if burst is not None:
        sec["burst"] = str(burst)
    return {f"limit {name}": sec}


def overrides(users, *limits):
    ov = {"server": {"relay_networks": "192.0.2.0/24"},
          "auth": {"users": users, "require_tls": "no"}}
    for lim in limits:
        ov.update(lim)
    return ov


def send_as(relay, user, n):
    """n messages in one session as user; the reply codes of each MAIL."""
    codes = []
    with smtplib.SMTP(relay.host, relay.port, timeout=20) as s:
        s.login(user, PW)
        for _ in range(n):
            code, msg = s.mail(f"{user}@example.org")
            codes.append((code, msg.decode()))
            if code == 250:
                assert s.rcpt(REMOTE)[0] == 250
                assert s.data(make_message(sender=f"{user}@example.org",
                                           rcpt=REMOTE))[0] == 250
            else:
                s.rset()
    return codes


def test_user_message_limit(relay_factory, users):
    r = relay_factory(overrides(
        users, limit("per-user", "messages", "user", "3/h")))
    codes = send_as(r, "alice", 5)
    assert [c for c, _ in codes] == [250, 250, 250, 450, 450], codes
    assert codes[3][1] == "4.7.1 Error: too many messages, slow down"
    # another user has a bucket of its own
    assert [c for c, _ in send_as(r, "bob", 3)] == [250, 250, 250]
    assert len(r.queue_list()) == 6
    log = r.stderr_text()
    assert re.search(r"event=rejected client=127\.0\.0\.1 reason=rate_limit "
                     r"limit=per-user count=messages user=alice", log), log


def test_burst(relay_factory, users):
    r = relay_factory(overrides(
        users, limit("slow", "messages", "user", "60/h", burst=2)))
    assert [c for c, _ in send_as(r, "alice", 3)] == [250, 250, 450]


def test_recipient_limit_by_client(relay_factory):
    r = relay_factory(limit("rcpts", "recipients", "client", "4/h"))
    with smtplib.SMTP(r.host, r.port, timeout=20) as s:
        s.ehlo("client.test")
        assert s.mail("app@example.org")[0] == 250
        codes = [s.rcpt(f"r{i}@remote.example") for i in range(6)]
    assert [c for c, _ in codes] == [250] * 4 + [450] * 2, codes
    assert codes[4][1] == b"4.7.1 Error: too many recipients, slow down"
    assert "limit=rcpts count=recipients" in r.stderr_text()


def test_sender_domain_limit(relay_factory):
    r = relay_factory(limit("dom", "messages", "sender_domain", "1/h"))
    with smtplib.SMTP(r.host, r.port, timeout=20) as s:
        s.ehlo("client.test")
        assert s.mail("a@one.example")[0] == 250
        s.rset()
        assert s.mail("b@ONE.example")[0] == 450
        s.rset()
        assert s.mail("a@two.example")[0] == 250
        s.rset()
        assert s.mail("<>")[0] == 250  # no domain: not counted


def test_connection_limit(relay_factory):
    """3 new connections an hour from one /24 (the start-up probe of the
    test harness is one of them): then 421 and close."""
    r = relay_factory(limit("conns", "connections", "client_network/24",
                            "3/h"))
    firsts = []
    for _ in range(4):
        c = r.client(greet=False)
        firsts.append(c.read_line(timeout=10)[:9])
        if firsts[-1].startswith(b"220"):
            c.send("QUIT\r\n")
            c.drain()
        else:
            c.expect_closed()
        c.close()
    assert firsts[-1] == b"421 4.7.0", firsts
    assert 1 <= firsts.count(b"421 4.7.0") <= 2, firsts
    assert firsts[0].startswith(b"220"), firsts
    assert "reason=rate_limit limit=conns count=connections" in \
        r.stderr_text()


def test_bytes_limit(relay_factory, users):
    """count = bytes: a queued message's size is charged after the fact;
    MAIL is refused while the key is in debt (about 1.2 KB a message,
    3000 bytes at once)."""
    r = relay_factory(overrides(
        users, limit("vol", "bytes", "user", "3000/h")))
    body = ["x" * 98] * 8
    codes = []
    with smtplib.SMTP(r.host, r.port, timeout=20) as s:
        s.login("alice", PW)
        for _ in range(5):
            code, msg = s.mail("alice@example.org")
            codes.append(code)
            if code != 250:
                assert msg == b"4.7.1 Error: too many bytes, slow down"
                s.rset()
                continue
            assert s.rcpt(REMOTE)[0] == 250
            assert s.data(make_message(body_lines=body))[0] == 250
    assert codes == [250, 250, 250, 450, 450], codes
    sizes = [int(x["size"]) for x in r.queue_list()]
    assert len(sizes) == 3 and all(1000 < n < 1500 for n in sizes), sizes
    assert "limit=vol count=bytes" in r.stderr_text()


def test_connection_leases(relay_factory):
    """max = 2: two connections of a client at once; a third is refused
    with 421 until one of the two closes."""
    r = relay_factory({"limit held": {"count": "connections",
                                      "key": "client", "max": "2"}})
    a, b = r.client(), r.client()
    c = r.client(greet=False)
    assert c.read_line(timeout=10).startswith(b"421 4.7.0")
    c.expect_closed()
    c.close()
    a.cmd("QUIT")
    a.expect_closed()
    a.close()
    ok = False
    for _ in range(50):  # the close is seen by the relay a moment later
        d = r.client(greet=False)
        line = d.read_line(timeout=10)
        d.close()
        if line.startswith(b"220"):
            ok = True
            break
        time.sleep(0.1)
    assert ok, line
    b.close()
    assert "reason=connection_limit limit=held" in r.stderr_text()


def test_no_limit_applies_without_key(relay_factory):
    """A per-user limit does not touch a relay_networks client."""
    r = relay_factory(limit("u", "messages", "user", "1/h"))
    with smtplib.SMTP(r.host, r.port, timeout=20) as s:
        s.ehlo("client.test")
        for _ in range(3):
            assert s.mail("app@example.org")[0] == 250
            s.rset()


@pytest.mark.parametrize("sec,line,why", [
    ({"count": "messages", "key": "user", "rate": "0/m"}, 4,
     "rate: a rate of zero"),
    ({"count": "messages", "key": "mailbox", "rate": "5/m"}, 3,
     'key: unknown key type "mailbox"'),
    ({"count": "parcels", "key": "user", "rate": "5/m"}, 2, "count: invalid"),
    ({"count": "messages", "key": "user"}, 1, "rate: missing in [limit x]"),
    ({"count": "messages", "key": "user", "rate": "1/s", "max": "2"}, 5,
     "max: only for count = connections"),
])
def test_check_config_errors(tmp_path, sec, line, why):
    sections = merge_sections(base_sections(tmp_path / "q", 2525), None)
    conf = write_config(tmp_path / "mta.conf", sections)
    text = conf.read_text()
    start = text.count("\n") + 1  # the [limit x] header's line
    body = "[limit x]\n" + "".join(f"{k} = {v}\n" for k, v in sec.items())
    conf.write_text(text + body)
    p = run_mta("check-config", conf=conf, check=False)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f"{conf}:{start + line - 1}: {why}" in err, (err, start)


def test_check_config_dump(tmp_path):
    sections = merge_sections(base_sections(tmp_path / "q", 2525), limit(
        "per-user", "recipients", "client_network/24/48", "100/h", 20))
    conf = write_config(tmp_path / "mta.conf", sections)
    p = run_mta("check-config", conf=conf)
    out = p.stdout.decode()
    assert ("[limit per-user]\ncount = recipients\n"
            "key = client_network/24/48\nrate = 100/h\nburst = 20\n") in out
