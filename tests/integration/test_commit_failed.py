# SPDX-License-Identifier: ISC
"""
Commit, then apply: the scheduler changes its in-memory schedule only
after the queue commit that records the change has returned, so a failed
commit leaves memory equal to the disk.

The disk is made to fail with the failsync LD_PRELOAD shim
(tests/shim/failsync.c): while its flag file exists, fdatasync/msync fail
with EIO, so every LMDB commit fails. Readers (`mta queue list`) run in
their own processes, without the shim, and show what is on disk; what the
relay does next (deliver again, or not) shows what it holds in memory.
"""
import os
import time

import socket

from conftest import BUILD, LOOPBACK, free_port
from smtp_servers import wait_until
from test_control import (WAIT, ctl, delivered_rcpts, events, out,
                          parse_logfmt, route_to, sinks, submit,
                          wait_deferred, wait_event)

assert sinks  # a fixture, used by name below


def failsync_env(flag):
    shim = os.path.join(BUILD, "tests", "failsync.so")
    assert os.path.exists(shim), f"{shim} not built (tests/shim/failsync.c)"
    return {
        "LD_PRELOAD": shim,
        "MTA_FAILSYNC_FLAG": str(flag),
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS",
                                       "detect_leaks=1:abort_on_error=0")
                        + ":verify_asan_link_order=0",
    }


def update_failures(relay, qid):
    """event=update-failed warnings for qid (top-level fields, level=warn
    among them)."""
    out_ = []
    for line in relay.stderr_text().splitlines():
        e = parse_logfmt(line)
        if e.get("event") == "update-failed" and e.get("id") == qid:
            out_.append(e)
    return out_


def listed(relay):
    return {r["id"]: r for r in relay.queue_list()}


def records_of(sink, rcpt):
    return [r for r in sink.records()
            if rcpt in (a.lower() for a in r.get("rcpts", []))]


def test_failed_outcome_commit_keeps_message_and_delivers_again(
        sinks, relay_factory, tmp_path):
    """The remote accepts, the commit of that outcome fails: the message
    is not removed (on disk or in memory), its delivery is not logged,
    and once the disk works again it is delivered again, a retry interval
    later, not at once; then it leaves the queue."""
    flag = tmp_path / "failsync.flag"
    port = free_port()
    # the sink holds its reply to the final dot: time to break the disk
    # between the message reaching it and its outcome being committed
    sink = sinks(port, ["--delay", "1500", "--delay-cmds", "dot"])
    relay = relay_factory(overrides=route_to(port, retry="4s"),
                          env=failsync_env(flag))
    rcpt = "once@dest.test"
    ids = submit(relay, [rcpt])
    qid = ids[rcpt]
    wait_until(lambda: records_of(sink, rcpt), WAIT, "the first attempt")
    flag.write_text("fail\n")
    failed = wait_until(lambda: update_failures(relay, qid), WAIT,
                        "event=update-failed in the relay's log")
    assert failed[0].get("rcpts") == "1", failed
    assert "Input/output error" in failed[0].get("error", ""), failed

    # Disk and memory agree: still queued, pending, attempts as before.
    on_disk = listed(relay)
    assert qid in on_disk, on_disk
    assert on_disk[qid]["pending"] == 1
    assert on_disk[qid]["rcpts"][0]["attempts"] == 0, on_disk[qid]
    assert not [e for e in events(relay, "delivered") if e.get("id") == qid]
    assert not [e for e in events(relay, "removed") if e.get("id") == qid]
    # Not tried again at once (the unit waits a retry interval, 3.6 s at
    # least here).
    time.sleep(1.0)
    assert len(records_of(sink, rcpt)) == 1, sink.records()

    flag.unlink()
    wait_until(lambda: len(records_of(sink, rcpt)) >= 2, WAIT,
               "the message delivered again")
    wait_event(relay, "delivered", lambda e: e.get("id") == qid)
    wait_until(lambda: qid not in listed(relay), WAIT, "the message removed")
    delivered = [e for e in events(relay, "delivered") if e.get("id") == qid]
    assert len(delivered) == 1, delivered
    text = relay.stderr_text()
    assert text.index("event=update-failed") < text.index(
        f"event=delivered id={qid}"), text[-3000:]


def test_failed_operator_commits_change_nothing(sinks, relay_factory,
                                                tmp_path):
    """hold, delete, retry and retry --all whose commit fails are answered
    with an error and change nothing in memory: the message is neither
    held nor forgotten nor made due; a working retry afterwards delivers
    it."""
    flag = tmp_path / "failsync.flag"
    port = free_port()
    relay = relay_factory(overrides=route_to(port, retry="1h"),
                          env=failsync_env(flag))
    rcpt = "kept@dest.test"
    qid = submit(relay, [rcpt])[rcpt]
    wait_deferred(relay, [rcpt])
    next_ms = listed(relay)[qid]["next_attempt_ms"]

    flag.write_text("fail\n")
    for args in (("hold", qid), ("delete", qid), ("retry", qid)):
        p = ctl(relay, *args)
        o, e = out(p)
        assert p.returncode == 1, (args, o, e)
        assert e == (f"mta: queue {args[0]}: {qid}: Input/output error\n"), (
            args, e)
    p = ctl(relay, "retry", "--all")
    o, e = out(p)
    assert p.returncode == 1, (o, e)
    # by selection: each id's error, then the counts
    assert e == f"mta: queue retry: {qid}: Input/output error\n", e
    assert o == "retry: selected=1 ok=0 gone=0 error=1\n", o
    flag.unlink()

    on_disk = listed(relay)
    assert qid in on_disk and on_disk[qid]["held"] is False, on_disk
    assert on_disk[qid]["next_attempt_ms"] == next_ms, on_disk[qid]
    # The failed retry made nothing due: with the destination up, nothing
    # is tried for a while.
    sink = sinks(port)
    time.sleep(3)
    assert rcpt not in delivered_rcpts(sink)
    # Neither held nor forgotten in memory: a retry that works delivers.
    p = ctl(relay, "retry", qid)
    assert p.returncode == 0, out(p)
    wait_until(lambda: rcpt in delivered_rcpts(sink), WAIT,
               "the message delivered after a working retry")
    wait_until(lambda: qid not in listed(relay), WAIT, "the message removed")


def test_failed_release_stays_held(sinks, relay_factory, tmp_path):
    """A release whose commit fails leaves the message held, on disk and
    in memory: a retry (which leaves a held message as it is) does not
    deliver it; after a working release it does."""
    flag = tmp_path / "failsync.flag"
    port = free_port()
    relay = relay_factory(overrides=route_to(port, retry="1h"),
                          env=failsync_env(flag))
    rcpt = "held@dest.test"
    qid = submit(relay, [rcpt])[rcpt]
    wait_deferred(relay, [rcpt])
    assert ctl(relay, "hold", qid).returncode == 0

    flag.write_text("fail\n")
    p = ctl(relay, "release", qid)
    o, e = out(p)
    assert p.returncode == 1 and "Input/output error" in e, (o, e)
    flag.unlink()
    assert listed(relay)[qid]["held"] is True

    sink = sinks(port)
    p = ctl(relay, "retry", qid)
    assert p.returncode == 0, out(p)
    time.sleep(3)
    assert rcpt not in delivered_rcpts(sink), "a held message was delivered"
    p = ctl(relay, "release", qid)
    assert p.returncode == 0, out(p)
    assert listed(relay)[qid]["held"] is False
    p = ctl(relay, "retry", qid)
    assert p.returncode == 0, out(p)
    wait_until(lambda: rcpt in delivered_rcpts(sink), WAIT,
               "the released message delivered")
    wait_until(lambda: qid not in listed(relay), WAIT, "the message removed")


def test_retry_is_on_disk(relay_factory, tmp_path):
    """An operator's retry is committed: the recipient is due now on disk
    too, so a restart would not undo it. The destination then accepts TCP
    but never greets, so the attempt the retry starts stays in flight and
    what is listed is the retry's own write."""
    port = free_port()
    relay = relay_factory(overrides=route_to(port, retry="1h"))
    rcpt = "later@dest.test"
    qid = submit(relay, [rcpt])[rcpt]
    wait_deferred(relay, [rcpt])
    before = listed(relay)[qid]
    assert before["next_attempt_ms"] > time.time() * 1000 + 600_000, before
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as mute:
        mute.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        mute.bind((LOOPBACK, port))
        mute.listen(8)  # never accepted: no greeting
        p = ctl(relay, "retry", qid)
        assert p.returncode == 0, out(p)
        after = listed(relay)[qid]
        assert after["next_attempt_ms"] <= time.time() * 1000, (before, after)
        assert after["rcpts"][0]["attempts"] == 1, after
        relay.kill9()
