"""`mta sendmail`: local submission as programs do it (issue 15, item 3).

Each test runs a relay whose every route goes to a recording SMTP server
(smtp_servers.SMTPServer; the recipients of a message share one domain,
so that it arrives as one transaction) and submits with `mta sendmail` as local
programs do: from a shell script with -t -i, from PHP's mail(), with the
relay stopped (the maildrop, imported at start), with -bs driven like a
client, as a user the allow list refuses (setpriv as nobody), and -bp.

The relays live in a directory other users can traverse (the test as
nobody must read the config and reach the socket), not in pytest's
private tmp_path.
"""
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import MTA, Relay, free_port, san_problems, strip_received
from smtp_servers import SMTPServer, wait_until

MTA_SENDMAIL = os.path.join(os.path.dirname(MTA), "mta-sendmail")
DEST_HOST = "127.0.0.2"
NOBODY = 65534


@pytest.fixture
def pubdir():
    d = pathlib.Path(tempfile.mkdtemp(prefix="mta-sm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class World:
    """A recording destination and relays routed to it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.dest = SMTPServer(DEST_HOST, free_port(DEST_HOST)).start()
        self.relays = []

    def relay(self, local=None, server=None, start=True):
        ov = {"route *": {"host": f"[{DEST_HOST}]:{self.dest.port}"},
              "delivery": {"port": str(self.dest.port)}}
        if local:
            ov["local"] = local
        if server:
            ov["server"] = server
        r = Relay(self.tmp, ov, name=f"r{len(self.relays) + 1}")
        r.conf.chmod(0o644)
        self.relays.append(r)
        if start:
            r.start()
        return r

    def close(self):
        problems = []
        for r in self.relays:
            r.stop()
            problems += r.problems()
        self.dest.stop()
        return problems


@pytest.fixture
def world(pubdir):
    w = World(pubdir)
    yield w
    problems = w.close()
    if problems:
        pytest.fail("relay problems:\n" + "\n".join(problems), pytrace=False)


def sendmail(relay, *args, input=b"", user=None, argv0=None, timeout=60):
    """Run `mta sendmail -c CONF ARGS`; as another uid with setpriv."""
    cmd = [MTA, "sendmail", "-c", str(relay.conf)] + [str(a) for a in args]
    if argv0 is not None:
        cmd = [argv0, "-C", str(relay.conf)] + [str(a) for a in args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}",
               "--clear-groups"] + cmd
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    assert not san_problems(p.stderr), p.stderr.decode(errors="replace")
    return p


def delivered(world, n, timeout=30):
    wait_until(lambda: world.dest.message_count() >= n, timeout,
               f"{n} message(s) at the destination")
    time.sleep(0.3)  # a duplicate would arrive now
    return world.dest.snapshot()["messages"]


def headers_of(data):
    return data.split(b"\r\n\r\n", 1)[0]


MSG = (b"From: App <app@example.test>\n"
       b"To: Alice <alice@a.test>, bob@a.test\n"
       b"Cc: \"Carol, C.\" <carol@a.test>\n"
       b"Bcc: secret@a.test,\n"
       b"  hidden@a.test\n"
       b"Subject: report\n"
       b"\n"
       b"line one\n"
       b".\n"
       b"..two dots\n")


def test_t_i_from_shell_script(world):
    relay = world.relay()
    script = world.tmp / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"{MTA} sendmail -c {relay.conf} -t -i <<'EOF'\n"
        + MSG.decode() + "EOF\n"
        "echo \"exit=$?\"\n")
    script.chmod(0o755)
    p = subprocess.run([str(script)], capture_output=True, timeout=60)
    assert p.stdout.strip() == b"exit=0", p.stderr
    msgs = delivered(world, 1)
    assert len(msgs) == 1
    m = msgs[0]
    assert sorted(m["rcpts"]) == sorted(
        ["alice@a.test", "bob@a.test", "carol@a.test", "secret@a.test",
         "hidden@a.test"])
    rcvd, rest = strip_received(m["data"])
    assert b"from userid 0" in rcvd
    hdrs = headers_of(rest)
    assert b"Bcc" not in hdrs and b"secret@" not in rest
    assert b"hidden@" not in rest
    assert b"Subject: report" in hdrs and b"Date: " in hdrs
    assert b"Message-ID: <" in hdrs
    # -i: the lone dot is text; CR LF line ends throughout
    assert rest.endswith(b"\r\n\r\nline one\r\n.\r\n..two dots\r\n")
    assert b"\n" not in rest.replace(b"\r\n", b"")


def test_without_i_a_lone_dot_ends_the_message(world):
    relay = world.relay()
    p = sendmail(relay, "-F", "Cron Daemon", "-f", "cron", "x@a.test",
                 input=b"Subject: s\n\nbefore\n.\nafter\n")
    assert p.returncode == 0, p.stderr
    m = delivered(world, 1)[0]
    assert m["from"] == "cron@relay.test"
    _, rest = strip_received(m["data"])
    assert b'From: "Cron Daemon" <cron@relay.test>\r\n' in rest
    assert rest.endswith(b"\r\n\r\nbefore\r\n") and b"after" not in rest


def test_php_mail(world):
    php = shutil.which("php")
    if php is None:
        pytest.fail("php-cli is not installed (scripts/deps.sh)")
    relay = world.relay()
    code = ('$ok = mail("alice@a.test", "php subject", "hello\\nfrom php\\n",'
            ' "From: web@example.test\\r\\nCc: carol@a.test\\r\\n'
            'Bcc: boss@a.test");'
            'exit($ok ? 0 : 3);')
    p = subprocess.run(
        [php, "-n", "-d",
         f"sendmail_path={MTA_SENDMAIL} -C {relay.conf} -t -i", "-r", code],
        capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    m = delivered(world, 1)[0]
    assert sorted(m["rcpts"]) == ["alice@a.test", "boss@a.test",
                                  "carol@a.test"]
    _, rest = strip_received(m["data"])
    assert b"Subject: php subject" in rest and b"Bcc" not in headers_of(rest)
    assert b"hello\r\nfrom php\r\n" in rest


def maildrop_files(relay):
    d = relay.queue_path / "maildrop"
    return sorted(f.name for f in d.iterdir() if f.name != "refused")


def test_relay_stopped_goes_to_maildrop(world):
    relay = world.relay()
    relay.stop()
    p = sendmail(relay, "-t", "-i", input=MSG)
    assert p.returncode == 0, p.stderr
    files = maildrop_files(relay)
    assert len(files) == 1 and not files[0].startswith(".")
    # a second one from an ordinary user: the file is theirs
    p = sendmail(relay, "-i", "zed@z.test", user=NOBODY,
                 input=b"Subject: from nobody\n\nhi\n")
    assert p.returncode == 0, p.stderr
    files = maildrop_files(relay)
    assert len(files) == 2
    owners = sorted(
        (relay.queue_path / "maildrop" / f).stat().st_uid for f in files)
    assert owners == [0, NOBODY]
    assert world.dest.message_count() == 0
    relay.start()
    msgs = delivered(world, 2)
    assert len(msgs) == 2, "each maildrop file delivered exactly once"
    wait_until(lambda: maildrop_files(relay) == [], 10, "maildrop emptied")
    by_subject = {b"report" in m["data"]: m for m in msgs}
    rcvd, rest = strip_received(by_subject[False]["data"])
    assert f"from userid {NOBODY}".encode() in rcvd
    assert by_subject[False]["from"] == "nobody@relay.test"
    assert b"Bcc" not in headers_of(strip_received(by_subject[True]["data"])[1])
    # a restart imports nothing again
    relay.restart()
    time.sleep(1.0)
    assert world.dest.message_count() == 2
    assert "file=" in relay.stderr_text(2)  # run 2 imported them
    assert "file=" not in relay.stderr_text(3)


def test_maildrop_bad_file_is_moved_aside(world):
    relay = world.relay()
    md = relay.queue_path / "maildrop"
    (md / "garbage").write_bytes(b"not a maildrop file\n")
    big = (b"MTA-MAILDROP 1\nF <a@b.test>\nR <c@d.test>\n\n"
           + b"Subject: x\r\n\r\n" + b"y" * 3000 + b"\r\n")
    (md / "toolong").write_bytes(big)
    wait_until(lambda: sorted(
        f.name for f in (md / "refused").iterdir()) == ["garbage", "toolong"],
        15, "files moved to refused/")
    assert maildrop_files(relay) == []
    err = relay.stderr_text()
    assert "event=maildrop-refused file=\"garbage\"" in err
    assert "event=maildrop-refused file=\"toolong\"" in err
    assert world.dest.message_count() == 0


def bs_session(cmd, rcpts):
    """Drive `cmd` (a -bs command line) as an SMTP client does: one
    message to rcpts, waiting for each reply. Returns the EHLO lines."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)

    def reply():
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, f"-bs closed early after {lines}"
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def say(text):
        p.stdin.write(text.encode() + b"\r\n")
        p.stdin.flush()
        return reply()

    assert reply()[0] == 220
    code, ehlo = say("EHLO script.test")
    assert code == 250
    assert say("MAIL FROM:<script@example.test>")[0] == 250
    for r in rcpts:
        assert say(f"RCPT TO:<{r}>")[0] == 250
    assert say("DATA")[0] == 354
    assert say("Subject: bs\r\n\r\nvia -bs\r\n.")[0] == 250
    assert say("QUIT")[0] == 221
    p.stdin.close()
    assert p.wait(30) == 0
    assert not san_problems(p.stderr.read())
    return ehlo


def test_bs_driven_by_a_script(world):
    relay = world.relay()
    ehlo = bs_session([MTA, "sendmail", "-c", str(relay.conf), "-bs"],
                      ["one@a.test", "two@a.test"])
    assert any(b"PIPELINING" in x for x in ehlo)
    m = delivered(world, 1)[0]
    assert m["from"] == "script@example.test"
    assert sorted(m["rcpts"]) == ["one@a.test", "two@a.test"]
    rcvd, _ = strip_received(m["data"])
    assert b"from userid 0" in rcvd


def test_bs_without_relay_goes_to_maildrop(world):
    """-bs with the relay stopped: the same SMTP (smtp_in) answers, and
    each message goes to the maildrop; mta-sendmail hands -bs to mta."""
    relay = world.relay()
    relay.stop()
    bs_session([MTA, "sendmail", "-c", str(relay.conf), "-bs"],
               ["one@a.test"])
    bs_session([MTA_SENDMAIL, "-C", str(relay.conf), "-bs"], ["two@a.test"])
    assert len(maildrop_files(relay)) == 2
    relay.start()
    msgs = delivered(world, 2)
    assert len(msgs) == 2
    assert sorted(r for m in msgs for r in m["rcpts"]) == [
        "one@a.test", "two@a.test"]
    wait_until(lambda: maildrop_files(relay) == [], 10, "maildrop emptied")


@pytest.mark.parametrize("args,input,code,text", [
    (["-Z", "a@b.test"], b"x\n", 64, b"unknown option -Z"),
    ([], b"Subject: x\n\nbody\n", 64, b"no recipients"),
    (["-bd"], b"", 64, b"-bd is not supported"),
    (["-f"], b"", 64, b"-f needs a value"),
    (["bad@@x.test"], b"Subject: x\n\nbody\n", 67, b"bad recipient address"),
    (["-t"], b"To: ok@a.test, <no@@pe>\n\nbody\n", 67,
     b"bad recipient address"),
    (["-t"], b"Subject: none\n\nbody\n", 65, b"no recipients"),
    (["a@b.test"], b"Subject: x\nnot a header\n\nbody\n", 65,
     b"malformed header field"),
    (["a@b.test"], b"Subject: " + b"x" * 1200 + b"\n\nbody\n", 65,
     b"longer than 998"),
    (["a@b.test"], b"Subject: x\n\n" + b"y" * 900 + b"\n" * 3000, 65,
     b"message size exceeds"),
])
def test_exit_codes(world, args, input, code, text):
    relay = world.relay(server={"max_message_size": "2K"})
    p = sendmail(relay, *args, input=input)
    assert p.returncode == code, p.stderr
    assert text in p.stderr
    assert world.dest.message_count() == 0
    assert maildrop_files(relay) == []


def test_config_that_does_not_load_is_ex_config(world, pubdir):
    bad = pubdir / "bad.conf"
    bad.write_text("[server]\nnope = 1\n")
    p = subprocess.run([MTA, "sendmail", "-c", str(bad), "a@b.test"],
                       input=b"x\n", capture_output=True, timeout=30)
    assert p.returncode == 78 and b"nope" in p.stderr


def test_allow_list_refuses_a_user(world):
    relay = world.relay(local={"allow_users": "root"})
    p = sendmail(relay, "x@a.test", user=NOBODY, input=b"Subject: n\n\nx\n")
    assert p.returncode == 77, p.stderr
    assert b"not allowed to submit" in p.stderr
    assert "reason=local_user" in relay.stderr_text()
    p = sendmail(relay, "x@a.test", input=b"Subject: root\n\nx\n")
    assert p.returncode == 0, p.stderr
    assert len(delivered(world, 1)) == 1
    # the relay down: the file is refused at import, kept aside
    relay.stop()
    p = sendmail(relay, "x@a.test", user=NOBODY, input=b"Subject: n\n\nx\n")
    assert p.returncode == 0, p.stderr
    relay.start()
    refused = relay.queue_path / "maildrop" / "refused"
    wait_until(lambda: list(refused.iterdir()), 15, "file moved aside")
    assert maildrop_files(relay) == []
    assert "user is not allowed" in relay.stderr_text()
    time.sleep(0.5)
    assert world.dest.message_count() == 1


def test_allow_groups(world):
    relay = world.relay(local={"allow_groups": "nogroup"})
    p = sendmail(relay, "x@a.test", user=NOBODY, input=b"Subject: n\n\nx\n")
    assert p.returncode == 0, p.stderr
    p = sendmail(relay, "x@a.test", input=b"Subject: root\n\nx\n")
    assert p.returncode == 77, p.stderr


def test_bp_lists_the_queue(world, pubdir):
    relay = world.relay()
    world.dest.stop()  # mail stays queued
    p = sendmail(relay, "-bp")
    assert p.returncode == 0 and b"Mail queue is empty" in p.stdout
    p = sendmail(relay, "late@a.test", input=b"Subject: q\n\nx\n")
    assert p.returncode == 0, p.stderr
    ids = relay.queue_ids()
    assert len(ids) == 1
    p = sendmail(relay, "-bp")
    assert p.returncode == 0 and ids[0].encode() in p.stdout
    # run by the names sendmail and mailq through links, both mta and
    # mta-sendmail (what make install links) behave as sendmail
    for n, target in enumerate((MTA, MTA_SENDMAIL)):
        d = pubdir / f"links{n}"
        d.mkdir()
        for name in ("sendmail", "mailq"):
            (d / name).symlink_to(target)
        p = subprocess.run([str(d / "mailq"), "-C", str(relay.conf)],
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert ids[0].encode() in p.stdout
        p = sendmail(relay, "other@a.test", argv0=str(d / "sendmail"),
                     input=b"Subject: q2\n\nx\n")
        assert p.returncode == 0, p.stderr
        assert len(relay.queue_ids()) == 2 + n


def test_install_never_replaces_another_sendmail(pubdir):
    """`make install` runs scripts/install-sendmail.sh: links where there
    is nothing, another MTA's sendmail left alone."""
    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / \
        "install-sendmail.sh"
    dest = pubdir / "dest"
    other = dest / "usr/sbin/sendmail"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\necho another MTA\n")
    p = subprocess.run(["sh", str(script), str(dest), "/usr"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert other.read_text() == "#!/bin/sh\necho another MTA\n"
    assert b"/usr/sbin/sendmail exists and is not mta's" in p.stderr
    assert os.readlink(dest / "usr/bin/mailq") == "/usr/bin/mta-sendmail"
    p = subprocess.run(["sh", str(script), str(dest), "/usr/local"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert os.readlink(dest / "usr/local/sbin/sendmail") == \
        "/usr/local/bin/mta-sendmail"
    # a second run keeps our links and says nothing about them
    p = subprocess.run(["sh", str(script), str(dest), "/usr/local"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stderr == b""


def test_maildrop_file_imported_while_running(world):
    """A file renamed into the maildrop while the relay runs is imported
    within the importer's 1 s scan interval."""
    relay = world.relay()
    md = relay.queue_path / "maildrop"
    time.sleep(0.5)  # past the start-up scan
    tmp = md / ".tmp.test"
    tmp.write_bytes(b"MTA-MAILDROP 1\nF <app@example.test>\n"
                    b"R <r1@a.test>\nR <r2@a.test>\n\n"
                    b"Subject: dropped\r\n\r\nlive\r\n")
    t0 = time.monotonic()
    tmp.rename(md / "live-file")
    m = delivered(world, 1, timeout=10)[0]
    assert time.monotonic() - t0 < 3.0
    assert sorted(m["rcpts"]) == ["r1@a.test", "r2@a.test"]
    rcvd, rest = strip_received(m["data"])
    assert rcvd.startswith(b"Received: by relay.test (mta, from userid 0)")
    assert rest == b"Subject: dropped\r\n\r\nlive\r\n"
    wait_until(lambda: maildrop_files(relay) == [], 10, "file removed")
    assert "file=\"live-file\"" in relay.stderr_text()


def test_socket_path_longer_than_sun_path(pubdir):
    """A queue deep enough that submit.sock is over 108 bytes still
    works (bound and reached through /proc/self/fd)."""
    deep = pubdir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    for p in (deep, deep.parent):
        p.chmod(0o755)
    w = World(deep)
    try:
        relay = w.relay()
        assert len(str(relay.queue_path / "submit.sock")) > 108
        p = sendmail(relay, "x@a.test", user=NOBODY,
                     input=b"Subject: deep\n\nx\n")
        assert p.returncode == 0, p.stderr
        assert maildrop_files(relay) == []
        assert len(delivered(w, 1)) == 1
    finally:
        problems = w.close()
    assert not problems, problems


def test_greet_pause_does_not_apply_to_local_clients(world):
    """[server] greet_pause delays remote clients; a local submission is
    answered at once."""
    relay = world.relay(server={"greet_pause": "3s"})
    t0 = time.monotonic()
    p = sendmail(relay, "x@a.test", input=b"Subject: fast\n\nx\n")
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 2.0
    assert maildrop_files(relay) == []
