# SPDX-License-Identifier: ISC
"""
Operator control of a live relay: `mta queue hold|release|delete|retry`
through the control socket (control.sock in the queue directory), and
configuration reload on SIGHUP.

Destinations are mta-sink processes on loopback ports named by
`[route *]`. A message is made to sit in the queue by routing it to a
port where nothing listens yet (connection refused: deferred) and
starting the sink on that port afterwards. Every wait is a poll with a
deadline; sinks are stopped at teardown; relays are checked for a clean
exit and sanitizer reports (conftest).
"""
import base64
import os
import re
import signal
import socket
import ssl
import stat
import threading
import time

import pytest

from conftest import (BUILD, add_user, free_port, make_cert, make_message,
                      merge_sections, queued_id, run_mta, send_message,
                      write_config)
from smtp_servers import MtaSink, SMTPServer, wait_until

WAIT = 30.0  # seconds: the bound of every wait for a delivery outcome
SENDER = "sender@origin.test"

LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    out = {}
    for k, v in LOGFMT.findall(line):
        if v.startswith('"'):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        out[k] = v
    return out


def events(relay, kind):
    return [e for e in (parse_logfmt(l) for l in relay.stderr_text().splitlines()
                        if "event=" in l) if e.get("event") == kind]


def wait_event(relay, kind, pred=lambda e: True, timeout=WAIT):
    return wait_until(lambda: [e for e in events(relay, kind) if pred(e)],
                      timeout, f"event={kind} in the relay's log")


@pytest.fixture
def sinks(tmp_path):
    """make(port, args=()) -> a started MtaSink on 127.0.0.1:port,
    recording to its own file; all stopped at teardown. Tests name this
    fixture before relay_factory, so relays stop before their sinks (a
    remote closing an idle delivery connection is not what is tested
    here)."""
    made = []

    def make(port, args=()):
        s = MtaSink(BUILD, "127.0.0.1", port,
                    tmp_path / f"sink{len(made) + 1}.jsonl", args)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


def route_to(port, retry="1h"):
    return {"route *": {"host": f"[127.0.0.1]:{port}"},
            "queue": {"retry": retry}}


def delivered_rcpts(*sinks_):
    out = set()
    for s in sinks_:
        for r in s.records():
            out.update(a.lower() for a in r.get("rcpts", []))
    return out


def submit(relay, rcpts, n_per_conn=None):
    """One message per recipient, on one connection; returns {rcpt: id}."""
    ids = {}
    with relay.client(timeout=30) as c:
        c.ehlo()
        for r in rcpts:
            ids[r] = queued_id(send_message(c, make_message(rcpt=r),
                                            sender=SENDER, rcpts=(r,)), c)
        c.cmd("QUIT")
    return ids


def wait_deferred(relay, rcpts):
    want = {r.lower() for r in rcpts}

    def seen():
        got = {e.get("rcpt", "").strip("<>").lower()
               for e in events(relay, "deferred")}
        return want <= got
    wait_until(seen, WAIT, f"deferrals of {sorted(want)}")


def ctl(relay, *args):
    """`mta queue ARGS` against the relay; never asserts the exit."""
    return relay.mta("queue", *args, check=False, timeout=60)


def out(p):
    return p.stdout.decode(), p.stderr.decode()


def held_in_list(relay):
    return {r["id"]: r["held"] for r in relay.queue_list()}


# ---------------------------------------------------------------- socket

def test_control_socket_mode_stale_and_second_relay(relay_factory, tmp_path):
    relay = relay_factory()
    sock = relay.queue_path / "control.sock"
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode), "control.sock is not a socket"
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)

    # A second relay on the same queue is refused (the first answers).
    other = relay_factory(overrides={"queue": {"path": str(relay.queue_path)}},
                          start=False, name="second")
    p = run_mta("serve", conf=other.conf, check=False, timeout=30)
    assert p.returncode == 1
    assert b"another relay is running on this queue" in p.stderr, p.stderr
    assert relay.alive()
    assert os.path.exists(sock)

    # Stopped: the socket is gone and commands say the relay is not running.
    relay.stop()
    assert not os.path.exists(sock)
    for verb in ("hold", "release", "delete", "retry"):
        p = ctl(relay, verb, "0123456789abcdef")
        assert p.returncode == 1
        o, e = out(p)
        assert e.strip() == (f"mta: queue {verb}: the relay is not running "
                             f"(no control socket at {sock})"), e
    # A stale socket file (its relay was killed) reads the same way and is
    # replaced at the next start.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()
    p = ctl(relay, "retry", "--all")
    assert p.returncode == 1 and b"the relay is not running" in p.stderr
    relay.start()
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    p = ctl(relay, "retry", "--all")
    assert p.returncode == 0, p.stderr
    assert out(p)[0] == "retry: selected=0 ok=0 gone=0 error=0\n"


def test_kill9_leaves_stale_socket_restart_works(relay_factory):
    relay = relay_factory()
    sock = relay.queue_path / "control.sock"
    relay.kill9()
    assert os.path.exists(sock)  # nobody removed it
    p = ctl(relay, "hold", "0123456789abcdef")
    assert p.returncode == 1 and b"the relay is not running" in p.stderr
    relay.start()
    p = ctl(relay, "hold", "0123456789abcdef")
    assert p.returncode == 1
    assert out(p)[1] == ("mta: queue hold: 0123456789abcdef: "
                         "no such message\n")


def test_bad_arguments(relay):
    p = ctl(relay, "hold", "not-an-id")
    assert p.returncode == 1
    assert "not-an-id: not a queue id" in out(p)[1]
    p = ctl(relay, "delete")
    assert p.returncode == 2
    p = ctl(relay, "retry", "--all", "0123456789abcdef")
    assert p.returncode == 2  # ids or selectors, not both
    # The raw protocol: garbage gets an error and a done line, no crash.
    path = str(relay.queue_path / "control.sock")
    for req in (b"frobnicate 1\n", b"hold\n", b"\n", b"hold " + b"a" * 40000,
                b"retry --all --all\n", b"hold \x00\xff\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(req)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"error"), (req[:40], data)
        assert data.endswith(b"error=1\n"), (req[:40], data)
    assert relay.alive()


# ---------------------------------------------------------------- actions

def test_hold_then_release(sinks, relay_factory, tmp_path):
    """A held message is not delivered while held, and is after release."""
    port = free_port()
    relay = relay_factory(overrides=route_to(port, retry="2s"))
    rcpts = ["held@dest.test", "free@dest.test"]
    ids = submit(relay, rcpts)
    wait_deferred(relay, rcpts)

    p = ctl(relay, "hold", ids["held@dest.test"])
    assert p.returncode == 0, out(p)
    assert out(p)[0] == f"ok {ids['held@dest.test']}\n"
    wait_event(relay, "operator",
               lambda e: e.get("action") == "hold"
               and e.get("id") == ids["held@dest.test"])
    assert held_in_list(relay) == {ids["held@dest.test"]: True,
                                   ids["free@dest.test"]: False}
    text = ctl(relay, "list").stdout.decode()
    line = [l for l in text.splitlines() if l.startswith(ids["held@dest.test"])]
    assert line and "next=held" in line[0], text
    show = ctl(relay, "show", ids["held@dest.test"]).stdout.decode()
    assert re.search(r"^held:\s+yes$", show, re.M), show

    sink = sinks(port)
    wait_until(lambda: "free@dest.test" in delivered_rcpts(sink), WAIT,
               "the message that is not held to be delivered")
    time.sleep(5)  # more than two retry intervals
    assert "held@dest.test" not in delivered_rcpts(sink)
    assert ids["held@dest.test"] in relay.queue_ids()

    p = ctl(relay, "release", ids["held@dest.test"])
    assert p.returncode == 0, out(p)
    assert out(p)[0] == f"ok {ids['held@dest.test']}\n"
    wait_until(lambda: "held@dest.test" in delivered_rcpts(sink), WAIT,
               "the released message to be delivered")
    wait_until(lambda: relay.queue_ids() == [], WAIT, "an empty queue")


def test_hold_survives_restart_and_release_reschedules(sinks, relay_factory):
    """The hold is on disk: after a restart the message is still held (not
    scheduled), and release puts it back into the schedule."""
    port = free_port()
    relay = relay_factory(overrides=route_to(port, retry="1h"))
    ids = submit(relay, ["a@dest.test"])
    wait_deferred(relay, ["a@dest.test"])
    assert ctl(relay, "hold", ids["a@dest.test"]).returncode == 0
    relay.stop()
    sink = sinks(port)
    relay.start()
    assert held_in_list(relay) == {ids["a@dest.test"]: True}
    # --all leaves held messages out of a retry
    p = ctl(relay, "retry", "--all")
    assert p.returncode == 0, out(p)
    assert out(p)[0] == "retry: selected=0 ok=0 gone=0 error=0\n", out(p)
    time.sleep(2)
    assert delivered_rcpts(sink) == set()
    # retry of a held message that is not scheduled: ok, nothing sent
    assert ctl(relay, "retry", ids["a@dest.test"]).returncode == 0
    p = ctl(relay, "release", ids["a@dest.test"])
    assert p.returncode == 0, out(p)
    assert held_in_list(relay) == {ids["a@dest.test"]: False}
    # its next attempt is an hour away: retry makes it due now
    p = ctl(relay, "retry", ids["a@dest.test"])
    assert p.returncode == 0 and out(p)[0] == f"ok {ids['a@dest.test']}\n"
    wait_until(lambda: "a@dest.test" in delivered_rcpts(sink), WAIT,
               "delivery after release and retry")


def test_retry_delete_under_load(sinks, relay_factory):
    port = free_port()
    relay = relay_factory(overrides=route_to(port, retry="1h"))
    rcpts = [f"m{i}@dest.test" for i in range(30)]
    ids = submit(relay, rcpts)
    wait_deferred(relay, rcpts)
    sink = sinks(port)

    # Load: more mail keeps coming in while the operator works.
    stop = threading.Event()
    extra = []
    errors = []

    def pump():
        try:
            with relay.client(timeout=30) as c:
                c.ehlo()
                i = 0
                while not stop.is_set():
                    r = f"load{i}@dest.test"
                    queued_id(send_message(c, make_message(rcpt=r),
                                           sender=SENDER, rcpts=(r,)), c)
                    extra.append(r)
                    i += 1
        except Exception as e:  # reported below
            errors.append(e)
    th = threading.Thread(target=pump)
    th.start()
    try:
        # retry one id: it goes now; the others wait their hour
        p = ctl(relay, "retry", ids["m0@dest.test"])
        assert p.returncode == 0, out(p)
        wait_until(lambda: "m0@dest.test" in delivered_rcpts(sink), WAIT,
                   "the retried message")
        assert not any(r in delivered_rcpts(sink) for r in rcpts[1:])

        # delete several, plus one that is not there
        gone = [ids[r] for r in rcpts[1:6]]
        p = ctl(relay, "delete", *gone, "0000000000000001")
        assert p.returncode == 1
        o, e = out(p)
        assert o.splitlines() == [f"ok {i}" for i in gone], o
        assert e == "mta: queue delete: 0000000000000001: no such message\n"
        for i in gone:
            wait_event(relay, "operator",
                       lambda ev, i=i: ev.get("action") == "delete"
                       and ev.get("id") == i)
        left = set(relay.queue_ids())
        assert not (set(gone) & left)
        p = ctl(relay, "delete", gone[0])
        assert p.returncode == 1 and "no such message" in out(p)[1]

        # hold one, then retry --all: all but the held and deleted go
        held = ids["m6@dest.test"]
        assert ctl(relay, "hold", held).returncode == 0
        p = ctl(relay, "retry", "--all")
        assert p.returncode == 0, out(p)
        # by selection: counts; a message delivered between the read
        # and the action is "gone", not an error
        m = re.fullmatch(r"retry: selected=(\d+) ok=(\d+) gone=(\d+) "
                         r"error=0\n", out(p)[0])
        assert m and int(m[1]) == int(m[2]) + int(m[3]), out(p)
    finally:
        stop.set()
        th.join(60)
    assert not errors, errors
    want = set(rcpts[6 + 1:]) | set(extra)
    wait_until(lambda: want <= delivered_rcpts(sink), WAIT,
               "every message not held or deleted")
    got = delivered_rcpts(sink)
    assert not (set(rcpts[1:6]) & got), "a deleted message was delivered"
    assert "m6@dest.test" not in got, "a held message was delivered"
    assert relay.queue_ids() == [held]
    # the log names every action
    acts = {(e.get("action"), e.get("id")) for e in events(relay, "operator")}
    assert ("retry", ids["m0@dest.test"]) in acts
    assert ("hold", held) in acts
    assert {("retry", ids[r]) for r in rcpts[7:]} <= acts


# ---------------------------------------------------------------- reload

def test_sighup_bad_file_keeps_old_config(sinks, relay_factory):
    port = free_port()
    sink = sinks(port)
    relay = relay_factory(overrides=route_to(port))
    good = relay.conf.read_text()
    relay.conf.write_text(good + "\n[server]\nbogus_key = 1\n")
    relay.proc.send_signal(signal.SIGHUP)
    ev = wait_event(relay, "reload-failed")[0]
    assert re.match(rf"^{re.escape(str(relay.conf))}:\d+: bogus_key: ",
                    ev["error"]), ev
    assert not events(relay, "reloaded")
    # still running, still accepting, still delivering with the old routes
    ids = submit(relay, ["after@dest.test"])
    wait_until(lambda: "after@dest.test" in delivered_rcpts(sink), WAIT,
               "delivery after a failed reload")
    assert ids
    relay.conf.write_text(good)


def test_sighup_new_route_keeps_open_session(sinks, relay_factory, tmp_path):
    p1, p2 = free_port(), free_port()
    s1, s2 = sinks(p1), sinks(p2)
    relay = relay_factory(overrides=route_to(p1))
    old = relay.client(timeout=30)
    old.ehlo()
    r = send_message(old, make_message(rcpt="one@dest.test"), sender=SENDER,
                     rcpts=("one@dest.test",))
    queued_id(r, old)
    wait_until(lambda: "one@dest.test" in delivered_rcpts(s1), WAIT,
               "delivery to the first route")

    sections = merge_sections(relay.sections, {
        "route *": {"host": f"[127.0.0.1]:{p2}"},
        "server": {"max_message_size": "1M", "threads": "3"},
        # connections made under this snapshot close soon after their job,
        # dropping the last references to it once it is retired
        "delivery": {"idle_timeout": "1s"},
    })
    write_config(relay.conf, sections)
    relay.proc.send_signal(signal.SIGHUP)
    wait_event(relay, "reloaded")
    ign = {e.get("key") for e in events(relay, "reload-ignored")}
    assert "server.threads" in ign, ign
    assert "server.listen" not in ign

    # the session opened before the reload goes on, and keeps its limits
    ehlo = old.ehlo()
    assert any(l == "SIZE 36700160" for l in ehlo.lines), ehlo
    r = send_message(old, make_message(rcpt="two@dest.test"), sender=SENDER,
                     rcpts=("two@dest.test",))
    queued_id(r, old)
    old.cmd("QUIT")
    old.close()
    # a new session gets the new limits
    with relay.client() as c:
        ehlo = c.ehlo()
        assert any(l == "SIZE 1048576" for l in ehlo.lines), ehlo
        c.cmd("QUIT")
    # new mail follows the new route
    wait_until(lambda: "two@dest.test" in delivered_rcpts(s2), WAIT,
               "delivery to the new route")
    assert "two@dest.test" not in delivered_rcpts(s1)

    # reload again (the second snapshot retires) and back
    write_config(relay.conf, merge_sections(sections,
                                            {"route *": {"host": f"[127.0.0.1]:{p1}"}}))
    relay.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(events(relay, "reloaded")) == 2, WAIT,
               "the second reload")
    submit(relay, ["three@dest.test"])
    wait_until(lambda: "three@dest.test" in delivered_rcpts(s1), WAIT,
               "delivery to the first route again")
    time.sleep(3)  # the second snapshot's idle connections closed: freed
    submit(relay, ["four@dest.test"])
    wait_until(lambda: "four@dest.test" in delivered_rcpts(s1), WAIT,
               "delivery after the old snapshots were freed")


def _received_by(data):
    m = re.search(rb"^Received: .*?\bby ([^\s;]+)", data, re.M | re.S)
    return m.group(1).decode() if m else None


def test_sighup_reaches_receive_and_delivery(relay_factory):
    """One snapshot for every thread: a [server] hostname changed by
    SIGHUP is what new sessions greet with and stamp, and what the next
    delivery says in EHLO (the default helo_name), while a session opened
    before the reload keeps its own."""
    port = free_port()
    with SMTPServer("127.0.0.1", port) as mx:
        relay = relay_factory(overrides={
            **route_to(port),
            "server": {"hostname": "before.test"},
            # a fresh connection per message: its EHLO is the one to see
            "delivery": {"max_messages_per_connection": "1"},
        })
        old = relay.client(timeout=30)
        assert old.ehlo().lines[0].startswith("before.test"), old.show()
        send_message(old, make_message(rcpt="one@dest.test"),
                     sender=SENDER, rcpts=("one@dest.test",))
        wait_until(lambda: len(mx.messages) == 1, WAIT, "the first delivery")
        assert mx.transactions[-1]["helo"] == "before.test"
        assert _received_by(mx.messages[0]["data"]) == "before.test"

        write_config(relay.conf, merge_sections(relay.sections, {
            "server": {"hostname": "after.test"}}))
        relay.proc.send_signal(signal.SIGHUP)
        wait_event(relay, "reloaded")
        assert not [e for e in events(relay, "reload-ignored")
                    if e.get("key", "").startswith("server.hostname")]

        with relay.client(timeout=30) as c:
            assert c.ehlo().lines[0].startswith("after.test"), c.show()
            queued_id(send_message(c, make_message(rcpt="two@dest.test"),
                                   sender=SENDER, rcpts=("two@dest.test",)), c)
            c.cmd("QUIT")
        wait_until(lambda: len(mx.messages) == 2, WAIT, "the second delivery")
        assert mx.transactions[-1]["helo"] == "after.test"
        assert _received_by(mx.messages[1]["data"]) == "after.test"

        # the session from before keeps its name; delivery is the new one
        assert old.ehlo().lines[0].startswith("before.test"), old.show()
        queued_id(send_message(old, make_message(rcpt="three@dest.test"),
                               sender=SENDER, rcpts=("three@dest.test",)), old)
        old.cmd("QUIT")
        old.close()
        wait_until(lambda: len(mx.messages) == 3, WAIT, "the third delivery")
        assert _received_by(mx.messages[2]["data"]) == "before.test"
        assert mx.transactions[-1]["helo"] == "after.test"


def _peer_cert_der(c):
    return c.sock.getpeercert(binary_form=True)


def _starttls(c):
    c.ehlo()
    c.cmd("STARTTLS")
    c.starttls()
    return c.ehlo()


def test_sighup_reloads_certificate_and_users(relay_factory, tmp_path):
    cert1, key1 = make_cert(tmp_path / "tls1")
    cert2, key2 = make_cert(tmp_path / "tls2")
    der1 = ssl.PEM_cert_to_DER_cert(open(cert1).read())
    der2 = ssl.PEM_cert_to_DER_cert(open(cert2).read())
    assert der1 != der2
    users = tmp_path / "users"
    users.write_text("")
    users.chmod(0o600)
    relay = relay_factory({
        "server": {"relay_networks": "10.0.0.0/8"},
        "tls": {"certificate": cert1, "private_key": key1},
        "auth": {"users": str(users), "require_tls": "yes"},
    }, start=False)
    add_user(relay.conf, "alice", "pw-alice")
    relay.start()
    bob = base64.b64encode(b"\0bob\0pw-bob").decode()

    old = relay.client(timeout=30)
    _starttls(old)
    assert _peer_cert_der(old) == der1

    add_user(relay.conf, "bob", "pw-bob")  # the users file changes
    good = merge_sections(relay.sections, {
        "tls": {"certificate": cert2, "private_key": key2}})
    write_config(relay.conf, good)
    relay.proc.send_signal(signal.SIGHUP)
    wait_event(relay, "reloaded")

    with relay.client(timeout=30) as c:
        _starttls(c)
        assert _peer_cert_der(c) == der2, "new sessions get the new cert"
        r = c.cmd(f"AUTH PLAIN {bob}")
        assert r.code == 235, f"the reloaded users file: {r}"
        c.cmd("QUIT")
    # the session from before the reload is still up, on its old TLS
    r = old.cmd("NOOP")
    assert r.code == 250, r
    assert _peer_cert_der(old) == der1
    old.cmd("QUIT")
    old.close()

    # a certificate that does not load: nothing changes
    write_config(relay.conf, merge_sections(good, {
        "tls": {"certificate": str(tmp_path / "missing.pem")}}))
    relay.proc.send_signal(signal.SIGHUP)
    ev = wait_event(relay, "reload-failed")[0]
    assert "missing.pem" in ev["error"], ev
    with relay.client(timeout=30) as c:
        _starttls(c)
        assert _peer_cert_der(c) == der2
        c.cmd("QUIT")


def test_mta_reload_through_the_control_socket(relay_factory):
    """`mta reload` asks the running relay, as SIGHUP does: a changed
    file is applied (a new route is logged), a bad one is refused."""
    relay = relay_factory()
    n0 = len(events(relay, "reloaded"))
    relay.sections["route new.test"] = {"host": "[127.0.0.1]:9"}
    write_config(relay.conf, relay.sections)
    p = relay.mta("reload", check=False)
    assert p.returncode == 0 and p.stdout == b"ok reload\n", out(p)
    ev = wait_until(lambda: events(relay, "reloaded")[n0:], WAIT,
                    "event=reloaded")
    assert ev[-1]["routes"] == "2", ev
    assert ("reload", None) in {(e.get("action"), e.get("id"))
                                for e in events(relay, "operator")}
    # a file that loads but whose certificate does not: refused by the
    # relay (a file that does not load is refused by `mta reload` itself)
    relay.sections["tls"] = {"certificate": "/nonexistent/cert.pem",
                             "private_key": "/nonexistent/key.pem"}
    write_config(relay.conf, relay.sections)
    p = relay.mta("reload", check=False)
    assert p.returncode == 0, out(p)
    wait_until(lambda: events(relay, "reload-failed"), WAIT,
               "event=reload-failed")
    assert relay.alive()
