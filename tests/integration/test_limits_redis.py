# SPDX-License-Identifier: ISC
"""
Limits shared across nodes ([limits] backend = redis): two relays and one
real redis-server on a free loopback port. Together the relays admit at
most the one shared limit; with Redis stopped each admits its share
(rate / nodes), logs event=limits-fallback once, and recovers by itself
when Redis is back; every message that got 250 reaches the sink. Bad
[limits] settings fail check-config with FILE:LINE.
"""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

from conftest import (BUILD, base_sections, free_port, make_message,
                      merge_sections, run_mta, wait_port, write_config)
from smtp_servers import MtaSink

PW = "s3cret-pw"
REMOTE = "rcpt@remote.example"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS),
                                reason="redis-server is not installed")


class Redis:
    """redis-server on 127.0.0.1:port, no persistence, in dirpath."""

    def __init__(self, dirpath, port=None):
        self.dir = dirpath
        self.port = port or free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def sink(tmp_path):
    s = MtaSink(BUILD, "127.0.0.1", free_port(), tmp_path / "sink.jsonl")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def users(tmp_path):
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=PW.encode(), check=True, capture_output=True,
                       timeout=60).stdout.decode().strip()
    p = tmp_path / "users"
    p.write_text(f"alice:{h}\nbob:{h}\n")
    return str(p)


def shared(users, redis, sink, rate, nodes=2):
    return {"auth": {"users": users, "require_tls": "no"},
            "limits": {"backend": "redis",
                       "redis": f"127.0.0.1:{redis.port}",
                       "nodes": str(nodes), "redis_timeout": "500ms"},
            "limit per-user": {"count": "messages", "key": "user",
                               "rate": rate},
            "route *": {"host": f"[127.0.0.1]:{sink.port}", "tls": "none"},
            "queue": {"retry": "1s"}}


def send_one(relay, user="alice"):
    """One message in its own session; the MAIL reply code."""
    with smtplib.SMTP(relay.host, relay.port, timeout=20) as s:
        s.login(user, PW)
        code, _ = s.mail(f"{user}@example.org")
        if code != 250:
            return code
        assert s.rcpt(REMOTE)[0] == 250
        assert s.data(make_message(sender=f"{user}@example.org",
                                   rcpt=REMOTE))[0] == 250
        return code


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_relays_share_one_limit(relay_factory, users, redis, sink):
    """4 messages a minute per user, shared: sessions alternating between
    the two relays get 4 250s in all (each relay alone would give 4)."""
    ov = shared(users, redis, sink, "4/m")
    a = relay_factory(ov, name="node-a")
    b = relay_factory(ov, name="node-b")
    codes = [send_one(r) for r in [a, b] * 5]
    assert codes.count(250) == 4, codes
    assert codes[:4] == [250] * 4 and set(codes[4:]) == {450}, codes
    # bob has a key of his own
    assert send_one(b, "bob") == 250
    log = a.stderr_text() + b.stderr_text()
    assert "reason=rate_limit limit=per-user count=messages" in log
    assert "limits-fallback" not in log, log
    wait_for(lambda: len(sink.records()) == 5, 30, "5 messages at the sink")


def test_redis_down_falls_back_and_recovers(relay_factory, users, redis,
                                            sink):
    """10 a minute shared by nodes = 2. Redis stopped: each relay admits
    its share (burst 5), logs the fallback once; Redis back: the relays
    go back to it by themselves. Every 250 reaches the sink."""
    ov = shared(users, redis, sink, "10/m")
    a = relay_factory(ov, name="node-a")
    b = relay_factory(ov, name="node-b")
    accepted = 0
    assert send_one(a) == 250 and send_one(b) == 250
    accepted += 2
    redis.stop()
    codes = {"a": [], "b": []}
    for _ in range(7):
        codes["a"].append(send_one(a))
        codes["b"].append(send_one(b))
    for k in codes:
        assert codes[k].count(250) == 5, codes
        assert codes[k][:5] == [250] * 5, codes
    accepted += 10
    for r in (a, b):
        n = r.stderr_text().count("event=limits-fallback")
        assert n == 1, r.stderr_text()
    redis.start()
    wait_for(lambda: all("event=limits-recovered" in r.stderr_text()
                         for r in (a, b)), 20, "limits-recovered")
    # the new Redis is empty: the shared burst of 10 again, for both
    codes = [send_one(r) for r in [a, b] * 6]
    assert codes.count(250) == 10, codes
    accepted += 10
    for r in (a, b):
        assert r.stderr_text().count("event=limits-fallback") == 1
    wait_for(lambda: len(sink.records()) == accepted, 60,
             f"{accepted} messages at the sink")


def check_config(tmp_path, limits):
    port = free_port()
    sec = merge_sections(base_sections(tmp_path / "q", port),
                         {"limits": limits})
    conf = write_config(tmp_path / "bad.conf", sec)
    p = run_mta("check-config", conf=conf, check=False)
    assert p.returncode == 1, p
    err = p.stderr.decode()
    text = conf.read_text().splitlines()
    m = re.match(re.escape(str(conf)) + r":(\d+): (\w+): ", err)
    assert m, err
    return text[int(m.group(1)) - 1], m.group(2), err


@pytest.mark.parametrize("limits,key,why", [
    ({"backend": "redis"}, "backend", "needs [limits] redis"),
    ({"backend": "redis", "redis": "localhost:6379"}, "redis",
     "not IP:PORT or a socket path"),
    ({"backend": "redis", "redis": "127.0.0.1"}, "redis",
     "not IP:PORT or a socket path"),
    ({"nodes": "0"}, "nodes", ""),
    ({"backend": "memcached"}, "backend", ""),
])
def test_bad_config(tmp_path, limits, key, why):
    line, k, err = check_config(tmp_path, limits)
    assert k == key and line.startswith(f"{key} ="), (line, err)
    assert why in err, err


def test_slow_redis_times_out(relay_factory, users, redis, sink):
    """A Redis that does not answer (SIGSTOP) is as good as down after
    redis_timeout: the MAIL is answered from the local share, not held;
    SIGCONT and the relay goes back to Redis by itself."""
    ov = shared(users, redis, sink, "4/m")
    a = relay_factory(ov, name="node-a")
    assert send_one(a) == 250
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        codes = [send_one(a) for _ in range(3)]
        took = time.monotonic() - t0
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    # share of 4/m for 2 nodes: a burst of 2, counted locally
    assert codes == [250, 250, 450], codes
    assert took < 15, took
    log = a.stderr_text()
    assert log.count("event=limits-fallback") == 1, log
    assert re.search(r"event=limits-fallback redis=127\.0\.0\.1:\d+ "
                     r"reason=timeout", log), log
    wait_for(lambda: "event=limits-recovered" in a.stderr_text(), 20,
             "limits-recovered")
    # the first receive thread is back; each retries within the longest
    # backoff (5 s)
    time.sleep(5.5)
    # Redis counted the first, and perhaps the checks that timed out (one
    # per receive thread's connection; it ran them once let go): at least
    # one more passes (the local share is spent: this is Redis again), and
    # the shared limit holds
    codes = [send_one(a) for _ in range(4)]
    assert codes[0] == 250 and codes[-1] == 450, codes
    assert codes == sorted(codes), codes
    n = 3 + codes.count(250)
    wait_for(lambda: len(sink.records()) == n, 60, f"{n} messages at the sink")


def first_line(relay):
    c = relay.client(greet=False)
    return c, c.read_line(timeout=10)


def test_connection_leases_shared(relay_factory, users, redis, sink):
    """max = 3 connections of a client, across both relays (sorted sets
    in Redis): the fourth, on either relay, gets 421 until one closes.
    Redis down: each relay holds its share (3 / 2 = 1)."""
    ov = shared(users, redis, sink, "100/m")
    ov["limit held"] = {"count": "connections", "key": "client",
                        "max": "3"}
    a = relay_factory(ov, name="node-a")
    b = relay_factory(ov, name="node-b")
    # each relay's threads connect to Redis just after the start (until
    # then the local share applies, and the start-up probe held it)
    time.sleep(1)
    held = []
    for r in (a, b, a):
        c, line = first_line(r)
        assert line.startswith(b"220"), line
        held.append(c)
    for r in (b, a):
        c, line = first_line(r)
        assert line.startswith(b"421 4.7.0"), line
        c.expect_closed()
        c.close()
    log = a.stderr_text() + b.stderr_text()
    assert "reason=connection_limit limit=held" in log, log
    held.pop(0).close()  # one of node-a's goes: node-b may take it
    line = b""
    for _ in range(50):
        c, line = first_line(b)
        if line.startswith(b"220"):
            held.append(c)
            break
        c.close()
        time.sleep(0.1)
    assert line.startswith(b"220"), line
    for c in held:
        c.close()
    # Redis away: one connection a relay (the local share of 3 by 2)
    redis.stop()
    time.sleep(0.5)
    for r in (a, b):
        got = []
        for _ in range(30):
            c, line = first_line(r)
            if line.startswith(b"220"):
                got.append(c)
                break
            c.close()
            time.sleep(0.1)
        assert got, "no connection admitted from the local share"
        c, line = first_line(r)
        assert line.startswith(b"421"), line
        c.close()
        got[0].close()


def test_script_flush_reloads(relay_factory, users, redis, sink):
    """SCRIPT FLUSH (or a Redis restarted behind a proxy): the EVALSHA
    that meets NOSCRIPT is answered from the local share and the scripts
    are loaded again; the shared limit keeps holding, nothing is logged
    as a fallback (Redis was never down)."""
    ov = shared(users, redis, sink, "3/m", nodes=2)
    a = relay_factory(ov, name="node-a")
    assert send_one(a) == 250
    subprocess.run(["redis-cli", "-p", str(redis.port), "SCRIPT", "FLUSH"],
                   check=True, capture_output=True, timeout=10)
    codes = [send_one(a) for _ in range(6)]
    # Redis counted the first and lets two more through; the local share
    # (3 / 2 nodes: 1) answered the MAILs that met NOSCRIPT (one per
    # receive thread). Without the reload only that one would pass.
    assert 2 <= codes.count(250) <= 3 and codes[-1] == 450, codes
    assert "limits-fallback" not in a.stderr_text()
