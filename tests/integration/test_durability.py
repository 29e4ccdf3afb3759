# SPDX-License-Identifier: ISC
"""SPEC.md "Guarantees": no message answered 250 is lost by kill -9, and
a failed sync never produces a 250 nor a half-written message."""
import os
import threading
import time

from conftest import (BUILD, ConnectionClosed, dot_stuff, make_message,
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
    """Send messages ks on one connection; results[k] = (id, t_sent,
    t_acked) for each 250: CLOCK_MONOTONIC ns just before the message's
    data (with its final dot) was sent, and just after the 250 arrived."""
    try:
        with relay.client(timeout=60) as c:
            c.ehlo()
            for k in ks:
                c.send("MAIL FROM:<a@example.org> BODY=8BITMIME\r\n"
                       "RCPT TO:<x@example.com>\r\nDATA\r\n")
                c.expect(250)
                c.expect(250)
                c.expect(354)
                t_sent = time.monotonic_ns()
                c.send(dot_stuff(msgs[k]))
                r = c.read_reply(timeout=60)
                t_acked = time.monotonic_ns()
                results[k] = (queued_id(r, c), t_sent, t_acked)
            c.cmd("QUIT")
    except Exception as e:  # reported by the caller
        errors.append(f"connection for {ks[0]}..{ks[-1]}: {e!r}")


def _sync_record(path, data_file):
    """The syncrec shim's lines about data_file: (data syncs, synchronous
    writes), each a sorted list of (start_ns, end_ns). Only calls that
    succeeded count."""
    assert path.exists(), f"{path} missing: the syncrec shim was not loaded"
    syncs, dsync_writes = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        call, t0, t1, res, fpath = line.split(" ", 4)
        assert int(t0) <= int(t1), f"{path}:{n}: time runs backwards: {line}"
        if fpath != str(data_file) or int(res) < 0:
            continue
        if call in ("fdatasync", "fsync", "sync_file_range"):
            syncs.append((int(t0), int(t1)))
        elif call == "pwrite_dsync":
            dsync_writes.append((int(t0), int(t1)))
    return sorted(syncs), sorted(dsync_writes)


def _first_within(spans, lo, hi):
    """The first (start, end) in spans with lo <= start and end <= hi."""
    for t0, t1 in spans:
        if t0 >= lo and t1 <= hi:
            return (t0, t1)
    return None


def test_kill9_loses_nothing_answered_250(relay_factory, tmp_path):
    """Each 250 is answered only after the queue's data file was synced
    (fdatasync begun after the client sent the message's last byte, ended
    before the 250 arrived) and its meta page then written synchronously
    (LMDB's O_DSYNC write), as the syncrec shim records them; and after
    kill -9 every message answered 250 is there, byte for byte. (kill -9
    alone cannot tell: the page cache survives it.)"""
    n, nconn = 200, 5
    shim = os.path.join(BUILD, "tests", "syncrec.so")
    assert os.path.exists(shim), f"{shim} not built (tests/shim/syncrec.c)"
    log = tmp_path / "syncrec.log"
    relay = relay_factory(env={
        "LD_PRELOAD": shim,
        "MTA_SYNCREC_LOG": str(log),
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
                        + ":verify_asan_link_order=0",
    })
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
    ids = {k: r[0] for k, r in results.items()}
    assert len(set(ids.values())) == n, "duplicate queue ids"

    data_file = os.path.realpath(relay.queue_path / "data.mdb")
    syncs, dsync_writes = _sync_record(log, data_file)
    assert syncs, f"no fdatasync of {data_file} recorded at all"
    for k, (qid, t_sent, t_acked) in sorted(results.items()):
        sync = _first_within(syncs, t_sent, t_acked)
        assert sync is not None, (
            f"message {k} ({qid}) was answered 250 with no sync of "
            f"{data_file} begun after its data was sent and done before "
            f"the 250 (sent at {t_sent}, 250 at {t_acked} ns)")
        meta = _first_within(dsync_writes, sync[1], t_acked)
        assert meta is not None, (
            f"message {k} ({qid}): data synced at {sync}, but no "
            f"synchronous meta-page write of {data_file} followed before "
            f"the 250 at {t_acked} ns")

    relay.kill9()
    relay.start()

    listed = relay.queue_ids()
    missing = set(ids.values()) - set(listed)
    assert not missing, f"{len(missing)} of {n} messages answered 250 are gone after kill -9: {sorted(missing)[:10]}"
    assert len(listed) == n, f"{len(listed)} listed, {n} sent"
    for k, qid in ids.items():
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
