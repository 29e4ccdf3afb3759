# SPDX-License-Identifier: ISC
"""SPEC.md "Guarantees": no message answered 250 is lost by kill -9, and
a failed sync never produces a 250 nor a half-written message."""
import os
import threading
import time

from conftest import (BUILD, ConnectionClosed, make_message,
                      queued_id, send_message, strip_received)


def _varied_message(k):
    """Message k: sizes from a few bytes to ~200 KB, lines that need
    dot-stuffing, 8-bit text, a 998-octet line, an empty body."""
    lines = [f"message {k}"]
    if k % 5 == 0:
        lines += [".leading dot", "..two dots", "."]
    if k % 7 == 0:
        lines += ["\u00e9t\u00e9 \u2603 8-bit"]
    if k % 11 == 0:
        lines += ["z" * 998]
    if k % 13 == 0:
        lines += [f"{k:06d} filler line for size " + "q" * 50] * (200 * (k % 17 + 1))
    if k % 19 == 0:
        lines = []
    return make_message(f"durable {k}", lines)


def _send_many(relay, ks, msgs, results, errors):
    """Send messages ks on one connection; results[k] = id for each 250."""
    try:
        with relay.client(timeout=60) as c:
            c.ehlo()
            for k in ks:
                r = send_message(c, msgs[k], mail_params="BODY=8BITMIME")
                results[k] = queued_id(r, c)
            c.cmd("QUIT")
    except Exception as e:  # reported by the caller
        errors.append(f"connection for {ks[0]}..{ks[-1]}: {e!r}")


def test_kill9_loses_nothing_answered_250(relay_factory):
    n, nconn = 200, 5
    relay = relay_factory()
    msgs = {k: _varied_message(k) for k in range(n)}
    results, errors = {}, []
    threads = [threading.Thread(target=_send_many,
                                args=(relay, list(range(j, n, nconn)), msgs,
                                      results, errors))
               for j in range(nconn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "senders still running after 300s"
    assert not errors, errors
    assert len(results) == n
    assert len(set(results.values())) == n, "duplicate queue ids"

    relay.kill9()
    relay.start()

    listed = relay.queue_ids()
    missing = set(results.values()) - set(listed)
    assert not missing, f"{len(missing)} of {n} messages answered 250 are gone after kill -9: {sorted(missing)[:10]}"
    assert len(listed) == n, f"{len(listed)} listed, {n} sent"
    for k, qid in results.items():
        raw = relay.queue_raw(qid)
        _, rest = strip_received(raw)
        assert rest == msgs[k], f"message {k} ({qid}) differs after restart"


def test_kill9_during_load(relay_factory):
    """kill -9 while 4 clients are sending: every id answered 250 before
    the kill is listed after the restart with its exact bytes; any other
    message in the queue is one of the messages sent, whole."""
    relay = relay_factory()
    stop = threading.Event()
    lock = threading.Lock()
    acked = {}   # id -> message
    sent = set()  # every message handed to DATA

    def client(j):
        k = 0
        try:
            with relay.client(timeout=30) as c:
                c.ehlo()
                while not stop.is_set() and k < 10000:
                    msg = make_message(f"load {j}-{k}", [f"client {j} msg {k}"] * (k % 50 + 1))
                    with lock:
                        sent.add(msg)
                    r = send_message(c, msg)
                    qid = queued_id(r, c)
                    with lock:
                        acked[qid] = msg
                    k += 1
        except (ConnectionClosed, OSError, TimeoutError, AssertionError):
            pass  # the relay was killed under us

    threads = [threading.Thread(target=client, args=(j,)) for j in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 50:
                break
        time.sleep(0.05)
    time.sleep(0.2)
    relay.kill9()
    stop.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    with lock:
        acked = dict(acked)
    assert len(acked) >= 50, f"only {len(acked)} messages accepted in 30s"

    relay.start()
    listed = relay.queue_ids()
    missing = set(acked) - set(listed)
    assert not missing, f"{len(missing)} of {len(acked)} acked messages lost: {sorted(missing)[:10]}"
    for qid in listed:
        _, rest = strip_received(relay.queue_raw(qid))
        if qid in acked:
            assert rest == acked[qid], f"{qid} differs after restart"
        else:
            assert rest in sent, f"{qid} is not any message sent (half-written?)"


def test_failed_sync_never_answers_250(relay_factory, tmp_path):
    shim = os.path.join(BUILD, "tests", "failsync.so")
    assert os.path.exists(shim), f"{shim} not built (tests/shim/failsync.c)"
    flag = tmp_path / "failsync.flag"
    env = {
        "LD_PRELOAD": shim,
        "MTA_FAILSYNC_FLAG": str(flag),
        # ASan must come first in the library list; a preloaded shim is
        # ahead of it, which is fine here.
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
                        + ":verify_asan_link_order=0",
    }
    relay = relay_factory(env=env)
    first = make_message("before the fault")
    second = make_message("during the fault")
    with relay.client(timeout=30) as c:
        c.ehlo()
        id1 = queued_id(send_message(c, first), c)
        flag.write_text("fail\n")
        r = send_message(c, second)
        assert r.code != 250, f"250 although the sync failed: {r}"
        assert (r.code, r.enh) == (451, "4.3.0"), f"expected 451 4.3.0, got {r}"
    flag.unlink()
    relay.kill9()
    relay.env = {}  # restart without the shim
    relay.start()
    listed = relay.queue_ids()
    assert listed == [id1], f"queue after the failed sync: {listed} (want only {id1})"
    _, rest = strip_received(relay.queue_raw(id1))
    assert rest == first
