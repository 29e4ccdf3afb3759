# SPDX-License-Identifier: ISC
"""
The privilege drop (issue 13 item 2): `mta serve` started as root with
`[server] user = U` binds and reads its keys as root, then every thread
runs as U (checked in /proc/PID/task/*/status) and it still serves,
delivers and reloads; started as root without a user it refuses unless
`run_as_root = yes`; `mta queue list` works for a member of U's group
and tells a non-member plainly why it cannot.

The test user is made here (useradd) and removed at the end; files the
dropped relay reads live under a fresh world-searchable directory in
/tmp, since pytest's own temporary directories are root's alone.
"""
import grp
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import (MTA, Relay, base_sections, free_port, make_cert,
                      queued_id, run_mta, send_message, write_config)
from smtp_servers import SMTPServer, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which(
    "useradd"), reason="needs root and useradd")

NOBODY = 65534


@pytest.fixture(scope="module")
def user():
    name = f"mtat{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell",
                    "/usr/sbin/nologin", "--user-group", name],
                   check=True, capture_output=True, timeout=60)
    try:
        pw = pwd.getpwnam(name)
        yield name, pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)
        try:  # older useradd setups leave the group
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], capture_output=True,
                           timeout=60)
        except KeyError:
            pass


@pytest.fixture
def world_dir():
    d = pathlib.Path(tempfile.mkdtemp(prefix="mta-priv-", dir="/tmp"))
    d.chmod(0o755)
    made = []
    yield d, made
    problems = []
    for r in made:
        r.stop()
        problems += r.problems()
    shutil.rmtree(d, ignore_errors=True)
    if problems:
        pytest.fail("relay problems:\n" + "\n".join(problems), pytrace=False)


def ids_of(pid):
    """{tid: (Uid line, Gid line, Groups line, CapEff)} of every thread."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            text = pathlib.Path(f"/proc/{pid}/task/{t}/status").read_text()
        except OSError:
            continue  # a thread that just ended
        f = dict(line.split(":", 1) for line in text.splitlines()
                 if ":" in line)
        out[t] = (f["Uid"].split(), f["Gid"].split(), f["Groups"].split(),
                  f["CapEff"].strip())
    return out


def assert_runs_as(pid, uid, gid):
    ids = ids_of(pid)
    assert len(ids) > 3, ids  # receive, delivery, queue, dns threads...
    for tid, (u, g, groups, cap) in ids.items():
        assert u == [str(uid)] * 4, (tid, u)
        assert g == [str(gid)] * 4, (tid, g)
        assert groups == [str(gid)], (tid, groups)
        assert int(cap, 16) == 0, (tid, cap)


def priv_relay(world, user, overrides=None, name="relay"):
    d, made = world
    ov = {"server": {"user": user[0], "run_as_root": None}}
    for sec, kv in (overrides or {}).items():
        ov.setdefault(sec, {}).update(kv)
    r = Relay(d, ov, name=name)
    made.append(r)
    return r


def submit(relay, rcpt):
    with relay.client() as c:
        c.ehlo()
        qid = queued_id(send_message(c, b"Subject: t\r\n\r\nhello\r\n",
                                     sender="a@client.test",
                                     rcpts=[rcpt]), c)
        c.cmd("QUIT")
    return qid


def test_refuses_root_without_user(tmp_path):
    conf = write_config(tmp_path / "r.conf", base_sections(
        tmp_path / "q", free_port()))
    text = conf.read_text().replace("run_as_root = yes\n", "")
    assert "run_as_root" not in text and "user =" not in text
    conf.write_text(text)
    for cmd in ("serve", "check-config"):
        p = run_mta(cmd, conf=conf, check=False, timeout=30)
        assert p.returncode == 1, cmd
        assert (b"refusing to run as root: set [server] user (e.g. user = "
                b"mta), or run_as_root = yes") in p.stderr, (cmd, p.stderr)
    assert not (tmp_path / "q" / "data.mdb").exists()


def test_unknown_user_refused(tmp_path):
    conf = write_config(tmp_path / "r.conf", base_sections(
        tmp_path / "q", free_port()), "")
    conf.write_text(conf.read_text().replace(
        "run_as_root = yes", "user = no-such-user-here"))
    for cmd in ("serve", "check-config"):
        p = run_mta(cmd, conf=conf, check=False, timeout=30)
        assert p.returncode == 1, cmd
        assert b"user = no-such-user-here: no such user" in p.stderr, (
            cmd, p.stderr)


def test_runs_as_user_serves_delivers_reloads(world_dir, user):
    name, uid, gid = user
    d = world_dir[0]
    mx_port = free_port()
    mx = SMTPServer("127.0.0.1", mx_port).start()
    try:
        # a key only the group may read: loaded at start, and again on
        # SIGHUP by the dropped relay
        cert, key = make_cert(d / "tls")
        os.chown(key, 0, gid)
        os.chmod(key, 0o640)
        relay = priv_relay(world_dir, user, {
            "route *": {"host": f"[127.0.0.1]:{mx_port}"},
            "tls": {"certificate": cert, "private_key": key}})
        relay.start()
        pid = relay.proc.pid
        assert_runs_as(pid, uid, gid)
        log = relay.stderr_text()
        assert f"event=privileges-dropped user={name} uid={uid} gid={gid}" \
            in log, log
        assert "reload-warning" not in log, log
        st = os.stat(relay.queue_path)
        assert (st.st_uid, st.st_gid) == (uid, gid)
        for f in ("data.mdb", "lock.mdb"):
            assert os.stat(relay.queue_path / f).st_uid == uid, f

        # serves and delivers
        submit(relay, "x@dest.test")
        wait_until(lambda: mx.message_count() == 1, 30, "delivery")
        wait_until(lambda: "event=delivered" in relay.stderr_text(), 20,
                   "the delivered line")

        # reloads: a new hostname in the greeting of a new connection
        relay.conf.write_text(relay.conf.read_text().replace(
            "hostname = relay.test", "hostname = reloaded.test"))
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: "event=reloaded" in relay.stderr_text(), 20,
                   "event=reloaded:\n" + relay.stderr_text()[-2000:])
        assert "reload-failed" not in relay.stderr_text()
        c = relay.client(greet=False)
        assert "reloaded.test" in c.expect(220).text
        c.close()
        submit(relay, "y@dest.test")
        wait_until(lambda: mx.message_count() == 2, 30, "second delivery")
        assert_runs_as(pid, uid, gid)
    finally:
        mx.stop()


def test_root_only_key_read_at_start_reload_says_why(world_dir, user):
    """A key only root can read: the start reads it (as root); the relay
    says at once that a SIGHUP cannot reload it, and a SIGHUP fails with
    that reason and changes nothing, while the relay keeps serving."""
    d = world_dir[0]
    cert, key = make_cert(d / "tls")
    os.chown(key, 0, 0)
    os.chmod(key, 0o600)
    relay = priv_relay(world_dir, user, {
        "tls": {"certificate": cert, "private_key": key}})
    relay.start()
    log = relay.stderr_text()
    assert "event=reload-warning key=tls.private_key" in log, log
    assert f"not readable by user {user[0]}" in log, log
    with relay.client() as c:
        assert b"STARTTLS" in c.ehlo().raw
    os.kill(relay.proc.pid, signal.SIGHUP)
    wait_until(lambda: "event=reload-failed" in relay.stderr_text(), 20,
               "event=reload-failed")
    assert "Permission denied" in relay.stderr_text().split(
        "event=reload-failed", 1)[1].splitlines()[0]
    with relay.client() as c:
        assert b"STARTTLS" in c.ehlo().raw


def test_queue_list_group_member_and_not(world_dir, user):
    name, uid, gid = user
    relay = priv_relay(world_dir, user)  # delivery: a closed port
    relay.start()
    qid = submit(relay, "x@dest.test")
    member = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
              f"--groups={gid}"]
    p = run_mta("queue", "list", conf=relay.conf, prefix=member)
    assert qid in p.stdout.decode(), p.stdout
    outsider = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                "--clear-groups"]
    p = run_mta("queue", "list", conf=relay.conf, prefix=outsider,
                check=False)
    assert p.returncode != 0
    want = (f"mta queue: permission denied on {relay.queue_path} (run as "
            f"root or a member of group {name})")
    assert want in p.stderr.decode(), p.stderr
    # root still can
    p = run_mta("queue", "list", conf=relay.conf)
    assert qid in p.stdout.decode()


def test_maildrop_of_a_local_user_imported_by_dropped_relay(world_dir, user):
    """`mta sendmail` by an ordinary user while the relay is down writes
    into the maildrop; the relay, which is neither root nor that user,
    can read the file and imports it at its next start."""
    relay = priv_relay(world_dir, user)
    relay.start()
    relay.stop()
    p = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                        "--clear-groups", MTA, "sendmail", "-c",
                        str(relay.conf), "-i", "zed@z.test"],
                       input=b"Subject: dropped\n\nhi\n", capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    drop = relay.queue_path / "maildrop"
    files = [f for f in drop.iterdir() if f.name != "refused"]
    assert len(files) == 1 and files[0].stat().st_uid == NOBODY
    relay.start()
    wait_until(lambda: [f for f in drop.iterdir() if f.name != "refused"]
               == [], 20, "maildrop emptied:\n" + relay.stderr_text())
    assert list((drop / "refused").iterdir()) == [], relay.stderr_text()
    rows = relay.queue_list()
    assert len(rows) == 1, rows


def test_root_owned_queue_given_to_user_with_its_mail(world_dir, user):
    """A queue a relay made as root (run_as_root) is the user's after a
    start with `user`: the directory and its LMDB files change owner and
    the queued message is still there."""
    name, uid, gid = user
    relay = priv_relay(world_dir, user)
    relay.sections["server"].pop("user")
    relay.sections["server"]["run_as_root"] = "yes"
    write_config(relay.conf, relay.sections)
    relay.start()
    qid = submit(relay, "x@dest.test")
    relay.stop()
    assert os.stat(relay.queue_path / "data.mdb").st_uid == 0
    relay.sections["server"]["user"] = name
    relay.sections["server"].pop("run_as_root")
    write_config(relay.conf, relay.sections)
    relay.start()
    assert_runs_as(relay.proc.pid, uid, gid)
    for f in ("", "data.mdb", "lock.mdb", "maildrop", "maildrop/refused"):
        st = os.stat(relay.queue_path / f)
        assert (st.st_uid, st.st_gid) == (uid, gid), f
    assert [r["id"] for r in relay.queue_list()] == [qid]
