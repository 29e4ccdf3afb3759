# SPDX-License-Identifier: ISC
"""
Running out of resources (issue 16, items 5, 6 and 7):

  - disk full: a queue on a small private tmpfs. The relay refuses at MAIL
    (and at DATA, before 354) with `452 4.3.1` while the filesystem still
    has room, rather than after the body; a disk that fills between 354
    and the end of DATA is reported as what it is ("No space left on
    device", 452 4.3.1), not as an I/O error; nothing accepted is lost,
    and once space is freed the relay accepts again and drains.
  - crash and restart: 50 cycles of load, `kill -9` and an immediate
    restart; every restart binds and serves, and every message that got a
    `250` reaches the sink.
  - EMFILE: with a low RLIMIT_NOFILE, the client that cannot be served
    gets `421 4.3.2 ... try again later` instead of hanging, the log has at
    most one accept error line a second, and accepting resumes once
    descriptors are free again.
"""
import ctypes
import os
import random
import re
import shutil
import signal
import socket
import stat
import threading
import time

import pytest

import conftest
from conftest import (BUILD, LOOPBACK, SMTPClient, check_reply, dot_stuff,
                      free_port, make_message, queued_id, send_message)
from smtp_servers import MtaSink, wait_until
from test_crash import Submitter

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
_private_ns = False


def _mount_tmpfs(path, size):
    """A tmpfs of size at path, in a mount namespace of this process's own
    (made once, private, so nothing shows outside the test run). The
    relay and `mta queue` run as children of this thread: they see it."""
    global _private_ns
    if not _private_ns:
        if _libc.unshare(CLONE_NEWNS) != 0:
            pytest.skip("unshare(CLONE_NEWNS): "
                        + os.strerror(ctypes.get_errno()))
        if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
        _private_ns = True
    if _libc.mount(b"none", str(path).encode(), b"tmpfs", 0,
                   f"size={size},mode=0755".encode()) != 0:
        e = ctypes.get_errno()
        pytest.skip(f"mount tmpfs: {os.strerror(e)}")


def _umount(path):
    _libc.umount2(str(path).encode(), 2)  # MNT_DETACH


def _fs_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill_to(filler, free_left):
    """Grow (or shrink) filler so that about free_left bytes stay free."""
    d = os.path.dirname(filler)
    have = os.path.getsize(filler) if os.path.exists(filler) else 0
    want = max(0, have + _fs_free(d) - free_left)
    with open(filler, "ab") as f:
        f.truncate(min(have, want))
        f.seek(0, os.SEEK_END)
        left = want - f.tell()
        chunk = b"\0" * 65536
        try:
            while left > 0:
                n = f.write(chunk[:min(left, len(chunk))])
                left -= n
            f.flush()
        except OSError:
            pass  # full: what was wanted


def _msgid(msg):
    m = re.search(rb"^Message-ID: (<[^>]+>)\r$", msg, re.M)
    assert m, msg
    return m.group(1).decode()


# ------------------------------------------------------------ disk full

FS_SIZE = 8 << 20      # the tmpfs
MIN_FREE = 2 << 20     # [queue] min_free_space
MAX_MSG = 256 << 10    # [server] max_message_size (1.5x: below MIN_FREE)
BODY = 40 << 10        # one test message, about


def test_disk_full_refused_at_mail_then_drains(relay_factory, tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    _mount_tmpfs(fs, FS_SIZE)
    filler = str(fs / "filler")
    sink_port = free_port()  # the destination: down until space is freed
    relay = None
    try:
        relay = relay_factory({
            "server": {"max_message_size": str(MAX_MSG)},
            "queue": {"path": str(fs / "queue"), "map_size": "64M",
                      "min_free_space": str(MIN_FREE), "retry": "1s"},
            "route *": {"host": f"[{LOOPBACK}]:{sink_port}"},
            "delivery": {"connect_timeout": "2s"},
        })
        _fill_to(filler, 4 << 20)
        time.sleep(1.2)  # the relay measures the disk once a second
        accepted = {}
        refused = None
        with relay.client(timeout=30) as c:
            c.ehlo()
            for n in range(200):
                msg = make_message(f"fill {n}", ["y" * 900] * (BODY // 902),
                                   rcpt="someone@dest.test")
                r = c.cmd("MAIL FROM:<a@example.org>")
                if r.code != 250:
                    refused = r
                    break
                check_reply(c.cmd("RCPT TO:<someone@dest.test>"), 250, None,
                            None, c)
                check_reply(c.cmd("DATA"), 354, None, None, c)
                c.send(dot_stuff(msg))
                # never refused after the body: the check came first
                accepted[queued_id(c.read_reply(timeout=30), c)] = _msgid(msg)
            assert refused is not None, "200 messages accepted by 8M"
            check_reply(refused, 452, "4.3.1", "Insufficient system storage",
                        c)
            # refused before the disk is full: at least min_free_space free
            left = _fs_free(fs)
            assert left >= MIN_FREE * 9 // 10, left
            assert len(accepted) >= 10, len(accepted)
            # A declared SIZE that does not fit what is left is refused
            # whatever the rest.
            check_reply(c.cmd("RSET"), 250, None, None, c)
            r = c.cmd("MAIL FROM:<a@example.org> SIZE=1000")
            check_reply(r, 452, "4.3.1", None, c)
            check_reply(c.cmd("QUIT"), 221, None, None, c)
        log = relay.stderr_text()
        assert "event=queue-storage-low" in log, log[-3000:]
        assert "reason=storage" in log

        # Space comes back: MAIL is accepted again (within the measure's
        # second) ...
        os.unlink(filler)
        _fill_to(filler, 6 << 20)
        time.sleep(1.2)
        with relay.client(timeout=30) as c:
            c.ehlo()
            msg = make_message("after space", rcpt="someone@dest.test")
            accepted[queued_id(send_message(c, msg,
                                            rcpts=("someone@dest.test",)),
                               c)] = _msgid(msg)
            # ... the disk fills between MAIL and DATA: DATA gets 452,
            # not 354.
            check_reply(c.cmd("MAIL FROM:<a@example.org>"), 250, None, None,
                        c)
            check_reply(c.cmd("RCPT TO:<someone@dest.test>"), 250, None,
                        None, c)
            _fill_to(filler, MIN_FREE // 2)
            time.sleep(1.2)
            check_reply(c.cmd("DATA"), 452, "4.3.1", None, c)
            check_reply(c.cmd("RSET"), 250, None, None, c)

            # ... and between 354 and the end of DATA, to less than the
            # message: the commit's write stops short (LMDB says EIO), which
            # is told as ENOSPC, 452 4.3.1, not an I/O error.
            _fill_to(filler, 3 << 20)
            time.sleep(1.2)
            check_reply(c.cmd("MAIL FROM:<a@example.org>"), 250, None, None,
                        c)
            check_reply(c.cmd("RCPT TO:<someone@dest.test>"), 250, None,
                        None, c)
            check_reply(c.cmd("DATA"), 354, None, None, c)
            _fill_to(filler, 64 << 10)
            big = make_message("too late", ["z" * 900] * 220,
                               rcpt="someone@dest.test")
            c.send(dot_stuff(big))
            check_reply(c.read_reply(timeout=30), 452, "4.3.1", None, c)
            check_reply(c.cmd("QUIT"), 221, None, None, c)
        log = relay.stderr_text()
        assert "No space left on device" in log, log[-3000:]
        assert "Input/output error" not in log, log[-3000:]

        # Nothing half-written, nothing lost: the queue holds exactly the
        # accepted messages.
        os.unlink(filler)
        assert sorted(relay.queue_ids()) == sorted(accepted)

        # Space freed, the destination up: everything drains, and new
        # mail is accepted.
        sink = MtaSink(BUILD, LOOPBACK, sink_port, tmp_path / "sink.jsonl")
        sink.start()
        try:
            want = set(accepted.values())
            wait_until(lambda: want <= {r.get("message_id")
                                        for r in sink.records()},
                       60, "every accepted message at the sink")
            wait_until(lambda: not relay.queue_ids(), 30, "an empty queue")
            with relay.client(timeout=30) as c:
                c.ehlo()
                queued_id(send_message(c, make_message("later"),
                                       rcpts=("someone@dest.test",)), c)
                check_reply(c.cmd("QUIT"), 221, None, None, c)
            wait_until(lambda: not relay.queue_ids(), 30, "drained again")
            assert "event=queue-storage-ok" in relay.stderr_text()
        finally:
            relay.stop()
            sink.stop()
    finally:
        if relay is not None:
            relay.stop()
        _umount(fs)


# ------------------------------------------------------------ kill -9

CYCLES = 50


class _Load(Submitter):
    """test_crash's submitters, without its total: the cycles decide."""

    def count(self):
        return 0

    def acked_n(self):
        with self.lock:
            return len(self.acked)


def _kill9_restart(relay, reap):
    """kill -9 and start again at once. reap: after the dead process is
    reaped (a supervisor that waits for the exit); else before it is even
    gone (one that restarts on sending the signal): the new relay starts
    while the old one still exits."""
    if reap:
        relay.kill9()
        relay.start()
        return
    old, err, out_ = relay.proc, relay._err, relay._out
    os.kill(old.pid, signal.SIGKILL)
    relay.runs.append((relay._errpath, "SIGKILL", None))
    relay.proc = None
    try:
        relay.start()  # fails the test if it does not bind and start
    finally:
        old.wait(10)
        err.close()
        out_.close()
        if old in conftest._live:
            conftest._live.remove(old)


def test_kill9_restart_50_cycles(relay_factory, tmp_path):
    rnd = random.Random()
    sink_port = free_port()
    sink = MtaSink(BUILD, LOOPBACK, sink_port, tmp_path / "sink.jsonl",
                   ["--threads", "2"])
    sink.start()
    relay = relay_factory({
        "queue": {"retry": "1s"},
        "route *": {"host": f"[{LOOPBACK}]:{sink_port}"},
        "delivery": {"connect_timeout": "5s"},
    })
    sub = _Load(LOOPBACK, relay.port)
    gaps, waited = [], 0
    t0 = time.monotonic()
    try:
        sub.start()
        for k in range(CYCLES):
            # serving: new messages accepted since the (re)start
            n0 = sub.acked_n()
            wait_until(lambda: sub.acked_n() >= n0 + 3, 30,
                       f"messages accepted after restart {k}",
                       interval=0.005)
            time.sleep(rnd.uniform(0, 0.05))
            t_kill = time.monotonic()
            _kill9_restart(relay, reap=k % 2 == 1)
            gaps.append(time.monotonic() - t_kill)
            if "waiting up to" in relay.stderr_text():
                waited += 1
        sub.stop.set()
        sub.join(30)
        elapsed = time.monotonic() - t0
        acked = set(sub.acked)
        assert not sub.errors, sub.errors[:5]
        wait_until(lambda: acked <= {r.get("message_id")
                                     for r in sink.records()}, 60,
                   "every accepted message at the sink", interval=0.2)
        print(f"\n{CYCLES} kill -9 cycles in {elapsed:.1f}s: {len(acked)} "
              f"accepted, {sub.unknown} without a final reply; a restart "
              f"waited for the old listener {waited} times; start took "
              f"{min(gaps):.2f}..{max(gaps):.2f}s")
    finally:
        sub.stop.set()
        relay.stop()
        sink.stop()


def test_restart_waits_for_a_lingering_listener(relay_factory):
    """The port is held by a listener that goes away a moment later (as a
    dead relay's does): the relay waits for it, says so once, and
    starts."""
    relay = relay_factory(start=False)
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(relay.addr)
    held.listen(8)
    timer = threading.Timer(0.5, held.close)
    timer.start()
    try:
        t0 = time.monotonic()
        relay.start()
        took = time.monotonic() - t0
    finally:
        timer.cancel()
        held.close()
    assert took >= 0.4, took
    lines = [l for l in relay.stderr_text().splitlines()
             if "event=listen-busy " in l]
    assert len(lines) == 1, relay.stderr_text()[-2000:]
    with relay.client() as c:
        c.ehlo()


# ------------------------------------------------------------ EMFILE

NOFILE = 48


def test_emfile_421_and_quiet_log(relay_factory, tmp_path, monkeypatch):
    # The relay raises its own RLIMIT_NOFILE (serve.c): as root it could
    # raise the hard limit too, so it runs without CAP_SYS_RESOURCE.
    wrapper = tmp_path / "mta-lowfd"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"ulimit -n {NOFILE} || exit 97\n"
        f"exec setpriv --bounding-set=-sys_resource --inh-caps=-sys_resource "
        f"{conftest.MTA} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    monkeypatch.setattr(conftest, "MTA", str(wrapper))
    relay = relay_factory({
        "server": {"threads": "1", "max_connections": "1000"},
        "delivery": {"workers": "1"},
    })
    held = []
    refused = None
    try:
        for _ in range(NOFILE + 10):
            c = SMTPClient(LOOPBACK, relay.port, timeout=5)
            r = c.read_reply(timeout=5)
            if r.code == 220:
                held.append(c)
                continue
            refused = (r, c)
            break
        assert refused is not None, (
            f"{len(held)} connections served under RLIMIT_NOFILE={NOFILE}")
        assert held, "not one connection served"
        r, c = refused
        check_reply(r, 421, "4.3.2", "try again later", c)
        c.expect_closed()
        c.close()
        # While out of descriptors, every new client gets its 421 at once,
        # and the log stays quiet: at most one accept line a second.
        t0 = time.monotonic()
        deadline = t0 + 3.0
        while time.monotonic() < deadline:
            with SMTPClient(LOOPBACK, relay.port, timeout=5) as c2:
                check_reply(c2.read_reply(timeout=5), 421, "4.3.2", None, c2)
            time.sleep(0.2)
        span = time.monotonic() - t0
        lines = [l for l in relay.stderr_text().splitlines()
                 if "event=accept-failed " in l]
        assert lines and "Too many open files" in lines[0], lines[:3]
        assert len(lines) <= span + 2, (
            f"{len(lines)} accept error lines in {span:.1f}s:\n"
            + "\n".join(lines[:20]))
        # Descriptors come back: accepting resumes.
        for h in held[:5]:
            h.close()
        del held[:5]

        def served():
            with SMTPClient(LOOPBACK, relay.port, timeout=5) as c3:
                return c3.read_reply(timeout=5).code == 220
        wait_until(served, 10, "a 220 once descriptors are free")
    finally:
        for h in held:
            h.close()
