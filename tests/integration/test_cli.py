# SPDX-License-Identifier: ISC
"""
The `mta` command line as an administrator meets it: help on every command
and subcommand without a configuration, --version, the man pages (render
without warnings; mta.conf(5) lists every key of the key table), and
`mta check-config` catching what `mta serve` would refuse.

The commands come from `mta help` itself, checked against a list of those
that must be there, so a command added to the table is covered at once.
"""
import os
import pathlib
import re
import subprocess
import time

import pytest

from conftest import (BUILD, REPO, add_user, base_sections, free_port,
                      make_cert, merge_sections, run_mta, write_config)

NOCONF = "/nonexistent/mta.conf"
MUST = {"serve", "check-config", "queue list", "queue show", "queue stats",
        "queue delete", "queue retry", "queue hold", "queue release",
        "passwd", "resolve", "version", "help", "reload", "queue bounce"}
# -h is their own option (sendmail's hop count): --help only
OWN_H = {"sendmail"}


def commands():
    """Every "NAME" or "PARENT NAME" that `mta help` lists."""
    out = run_mta("help", conf=NOCONF).stdout.decode()
    names = []
    for line in out.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*(?: [a-z][a-z-]*)?)(?: |$)", line)
        if m:
            # "queue list [--json]": a subcommand is a word without [ < |
            words = line.split()
            name = words[0]
            if len(words) > 1 and re.match(r"^[a-z][a-z-]*$", words[1]) \
                    and words[0] in ("queue",):
                name += " " + words[1]
            names.append(name)
    return names


def test_help_lists_every_command():
    names = set(commands())
    assert MUST <= names, MUST - names


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_help_without_config(flag):
    """Each command and subcommand: usage on stdout, exit 0, and no
    attempt to read the configuration (it does not exist)."""
    seen = 0
    for name in commands():
        words = name.split()
        if flag == "-h" and name in OWN_H:
            continue
        p = run_mta(*words, flag, conf=NOCONF, check=False)
        out, err = p.stdout.decode(), p.stderr.decode()
        assert p.returncode == 0, (name, p.returncode, err)
        assert out.startswith("usage: mta"), (name, out)
        assert " ".join(words) in out.splitlines()[0], (name, out)
        assert "nonexistent" not in out + err, (name, err)
        seen += 1
    assert seen >= len(MUST)


def test_help_command_and_parents():
    p = run_mta("help", "queue", "hold", conf=NOCONF)
    assert p.stdout.decode().startswith("usage: mta [-c FILE] queue hold")
    p = run_mta("queue", "--help", conf=NOCONF)
    assert "queue list" in p.stdout.decode()
    p = run_mta("help", "nosuch", conf=NOCONF, check=False)
    assert p.returncode == 2 and b"unknown command nosuch" in p.stderr
    # the option after the command: the same
    p = run_mta("queue", "list", "--json", "--help", "-c", NOCONF)
    assert p.stdout.startswith(b"usage: mta [-c FILE] queue list")
    # a bare `mta queue` is bad usage: help on stderr, exit 2
    p = run_mta("queue", conf=NOCONF, check=False)
    assert p.returncode == 2 and b"queue list" in p.stderr


def test_version():
    p = run_mta("--version")
    assert re.match(rb"^mta \d+\.\d+\.\d+\n$", p.stdout), p.stdout
    p = run_mta("version", conf=NOCONF)
    lines = p.stdout.decode().splitlines()
    assert lines[0].startswith("mta ") and len(lines) >= 4, lines


def man_pages():
    return [REPO / "man" / "mta.8", REPO / "man" / "mta-load.1",
            REPO / "man" / "mta-sink.1",
            pathlib.Path(BUILD) / "man" / "mta.conf.5"]


@pytest.mark.parametrize("page", man_pages(), ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page):
    assert page.exists(), page
    p = subprocess.run(["groff", "-ww", "-man", "-z", str(page)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    p = subprocess.run(["man", "-l", str(page)], capture_output=True,
                       timeout=60, env=env)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    assert b"NAME" in re.sub(rb".\x08", b"", p.stdout)


def table_keys():
    """(section, key) of every row of config/config_keys.c."""
    src = (REPO / "config" / "config_keys.c").read_text()
    keys = re.findall(r'KEY\(\s*([A-Z]+),\s*"([a-z_0-9]+)"', src)
    assert len(keys) > 40, keys
    return [(s.lower(), k) for s, k in keys]


def test_mta_conf_5_lists_every_key():
    """Each key is an entry (.B key) under its own [section] (routes under
    ROUTES), in the page as built."""
    text = (pathlib.Path(BUILD) / "man" / "mta.conf.5").read_text()
    sections = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^\.SS \[([a-z]+)\]$", line)
        if m:
            cur = m.group(1)
        elif line == ".SH ROUTES":
            cur = "route"
        elif line.startswith(".SH"):
            cur = None
        m = re.match(r"^\.B ([a-z_0-9]+)$", line)
        if m and cur:
            sections.setdefault(cur, set()).add(m.group(1))
    missing = [f"[{s}] {k}" for s, k in table_keys()
               if k not in sections.get(s, set())]
    assert not missing, missing


def test_mta_8_lists_every_command():
    """Each command has an entry (.B NAME ...; fonts and "|" between
    names of one entry aside)."""
    text = (REPO / "man" / "mta.8").read_text()
    entries = [re.sub(r"\\f[BIR]", "", l[3:]).replace("\\-", "-")
               for l in text.splitlines() if l.startswith(".B ")]
    for name in commands():
        words = name.split()
        assert any(e.split()[:1] == words[:1] and
                   (len(words) == 1 or words[1] in re.split(r"[ |]", e))
                   for e in entries), name


@pytest.mark.parametrize("tool", ["mta-load", "mta-sink"])
def test_tool_pages_list_every_option(tool):
    p = subprocess.run([os.path.join(BUILD, tool), "--help"],
                       capture_output=True, timeout=60)
    opts = set(re.findall(rb"(--[a-z][a-z-]*)", p.stdout + p.stderr))
    assert len(opts) > 5, p.stdout + p.stderr
    text = (REPO / "man" / (tool + ".1")).read_text()
    for o in sorted(opts):
        roff = o.decode().replace("-", "\\-")
        assert roff in text, (tool, o)


# ---------------------------------------------------------------- check-config

def check_config(tmp_path, overrides=None, extra="", prefix=()):
    """Write a configuration (base_sections + overrides) and run
    check-config on it (after prefix); (rc, stdout, stderr) as text."""
    sections = merge_sections(base_sections(tmp_path / "queue", 2525),
                              overrides)
    conf = write_config(tmp_path / "mta.conf", sections, extra)
    p = run_mta("check-config", conf=conf, check=False, prefix=prefix)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_check_config_clean(tmp_path):
    cert, key = make_cert(tmp_path / "tls")
    rc, out, err = check_config(tmp_path, {
        "tls": {"certificate": cert, "private_key": key}})
    assert rc == 0 and err == "", err
    assert out.startswith("# mta effective configuration")
    # the queue directory is not made by a check
    assert not (tmp_path / "queue").exists()


def test_check_config_missing_certificate(tmp_path):
    _, key = make_cert(tmp_path / "tls")
    missing = tmp_path / "nosuch.pem"
    rc, out, err = check_config(tmp_path, {
        "tls": {"certificate": missing, "private_key": key}})
    assert rc == 1 and out == "", (rc, out)
    assert str(missing) in err and "No such file" in err, err


def test_check_config_missing_key(tmp_path):
    cert, _ = make_cert(tmp_path / "tls")
    missing = tmp_path / "nokey.pem"
    rc, _, err = check_config(tmp_path, {
        "tls": {"certificate": cert, "private_key": missing}})
    assert rc == 1 and str(missing) in err, err


def test_check_config_mismatched_key(tmp_path):
    cert, _ = make_cert(tmp_path / "a")
    _, other = make_cert(tmp_path / "b")
    rc, _, err = check_config(tmp_path, {
        "tls": {"certificate": cert, "private_key": other}})
    assert rc == 1 and "does not match" in err, err


def test_check_config_listen_tls_without_certificate(tmp_path):
    rc, _, err = check_config(tmp_path, {
        "server": {"listen_tls": "127.0.0.1:4650"}})
    assert rc == 1 and "needs [tls] certificate" in err, err


def test_check_config_bad_users_file(tmp_path):
    users = tmp_path / "users"
    users.write_text("# users\nbob\n")
    rc, _, err = check_config(tmp_path, {"auth": {"users": users}})
    assert rc == 1 and err.startswith(f"auth: {users}:2: "), err


def test_check_config_missing_users_file(tmp_path):
    users = tmp_path / "nousers"
    rc, _, err = check_config(tmp_path, {"auth": {"users": users}})
    assert rc == 1 and str(users) in err and "No such file" in err, err


def test_check_config_good_users_file(tmp_path):
    cert, key = make_cert(tmp_path / "tls")
    users = tmp_path / "users"
    users.write_text("")
    sections = merge_sections(base_sections(tmp_path / "queue", 2525), {
        "tls": {"certificate": cert, "private_key": key},
        "auth": {"users": users}})
    conf = write_config(tmp_path / "mta.conf", sections)
    add_user(conf, "alice", "a-long-password-1")
    p = run_mta("check-config", conf=conf)
    assert p.stderr == b"", p.stderr


def test_check_config_queue_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "queue"
    rc, _, err = check_config(tmp_path, {"queue": {"path": bad}})
    assert rc == 1 and str(bad) in err and "Not a directory" in err, err


def test_check_config_queue_path_is_a_file(tmp_path):
    bad = tmp_path / "qfile"
    bad.write_text("x")
    rc, _, err = check_config(tmp_path, {"queue": {"path": bad}})
    assert rc == 1 and err.startswith(f"{bad}: Not a directory"), err


# Root without CAP_DAC_OVERRIDE (and DAC_READ_SEARCH) is bound by a
# directory's mode like any other user, so the case runs as root too.
NO_DAC = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search")


def test_check_config_queue_path_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    try:
        rc, _, err = check_config(tmp_path, {"queue": {"path": ro / "q"}},
                                  prefix=NO_DAC if os.geteuid() == 0 else ())
        assert rc == 1 and "cannot be created" in err, err
    finally:
        ro.chmod(0o700)


def test_check_config_queue_path_unusable_for_serve(tmp_path):
    """serve refuses the same path with the same reason (one check)."""
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "queue"
    sections = merge_sections(base_sections(tmp_path / "queue", 2525),
                              {"queue": {"path": bad}})
    conf = write_config(tmp_path / "mta.conf", sections)
    p = run_mta("serve", conf=conf, check=False, timeout=30)
    assert p.returncode == 1
    assert f"{bad}: Not a directory".encode() in p.stderr, p.stderr


@pytest.mark.parametrize("net,fam", [("0.0.0.0/0", "0.0.0.0/0"),
                                     ("127.0.0.0/8, ::/0", "::/0")])
def test_check_config_open_relay_warning(tmp_path, net, fam):
    rc, out, err = check_config(tmp_path, {
        "server": {"relay_networks": net}})
    assert rc == 0 and out.startswith("# mta"), (rc, err)
    assert "warning:" in err and fam in err and "open relay" in err, err


def test_check_config_auth_without_tls_warning(tmp_path):
    users = tmp_path / "users"
    users.write_text("")
    rc, _, err = check_config(tmp_path, {
        "auth": {"users": users, "require_tls": "no"}})
    assert rc == 0 and "require_tls = no" in err, err


def test_check_config_password_redacted(tmp_path):
    secret = "s3cret-Pa55"
    rc, out, err = check_config(tmp_path, {
        "route *": {"username": "u", "password": secret, "tls": "verify"}})
    assert rc == 0 and err == "", err
    assert "password = ***" in out and secret not in out + err, out


def test_check_config_password_without_tls_warning(tmp_path):
    secret = "s3cret-Pa55"
    rc, out, err = check_config(tmp_path, {
        "delivery": {"tls": "may"},
        "route *": {"username": "u", "password": secret}})
    assert rc == 0 and secret not in out + err
    assert "[route *] password with tls = may" in err, err


# ---------------------------------------------------------------- bulk

SUMMARY = re.compile(r"^(\w+): selected=(\d+) ok=(\d+) gone=(\d+) "
                     r"error=(\d+)\n$")


def bulk(relay, *args, timeout=600):
    """`mta queue VERB SELECTORS`; (selected, ok, gone, error)."""
    p = relay.mta("queue", *args, check=False, timeout=timeout)
    o, e = p.stdout.decode(), p.stderr.decode()
    m = SUMMARY.match(o)
    assert m and m.group(1) == args[0], (args, o, e)
    counts = tuple(int(x) for x in m.groups()[1:])
    assert p.returncode == (0 if counts[3] == 0 else 1), (args, o, e)
    return counts


def submit_each(relay, pairs):
    """One message per (sender, rcpt); returns the ids in order."""
    from conftest import make_message, queued_id, send_message
    ids = []
    with relay.client(timeout=30) as c:
        c.ehlo()
        for sender, rcpt in pairs:
            ids.append(queued_id(send_message(
                c, make_message(rcpt=rcpt), sender=sender,
                rcpts=(rcpt,)), c))
        c.cmd("QUIT")
    return ids


def wait_tried(relay, ids, timeout=60):
    """Every id has had one (failed) attempt: deferred, not held."""
    from smtp_servers import wait_until

    def tried():
        rows = {r["id"]: r for r in relay.queue_list()}
        return all(i in rows and any(x["attempts"] > 0
                                     for x in rows[i]["rcpts"])
                   for i in ids)
    wait_until(tried, timeout, "a first attempt of every message")


def test_bulk_selectors(relay_factory):
    relay = relay_factory(overrides={"queue": {"retry": "1h"}})
    a = submit_each(relay, [("s1@origin.test", f"x{i}@a.test")
                            for i in range(3)])
    b = submit_each(relay, [("s2@other.test", f"y{i}@b.test")
                            for i in range(2)])
    wait_tried(relay, a + b)

    assert bulk(relay, "hold", "--domain", "A.test") == (3, 3, 0, 0)
    held = {r["id"] for r in relay.queue_list() if r["held"]}
    assert held == set(a)
    # deferred: tried, pending and not held
    assert bulk(relay, "retry", "--deferred") == (2, 2, 0, 0)
    assert bulk(relay, "retry", "--all") == (2, 2, 0, 0)  # held stay held
    assert bulk(relay, "release", "--held", "--sender",
                "S1@origin.test") == (3, 3, 0, 0)
    assert not any(r["held"] for r in relay.queue_list())
    assert bulk(relay, "hold", "--older-than", "1h") == (0, 0, 0, 0)

    # bounce: gone from the queue, a DSN to the sender in its place
    assert bulk(relay, "bounce", "--sender", "@other.test") == (2, 2, 0, 0)
    rows = relay.queue_list()
    assert not set(b) & {r["id"] for r in rows}
    dsns = [r for r in rows if r["from"] == ""]
    assert len(dsns) == 2, rows
    assert all([x["addr"] for x in r["rcpts"]] == ["s2@other.test"]
               for r in dsns)
    raw = relay.queue_raw(dsns[0]["id"]).decode()
    assert "delivery cancelled by the operator" in raw, raw
    assert "Status: 5.0.0" in raw, raw
    log = relay.stderr_text()
    for i in b:
        assert re.search(rf"event=operator action=bounce id={i} dsn_id=",
                         log), log
    # a DSN from <> is never bounced itself: it is only removed
    assert bulk(relay, "bounce", "--sender", "<>") == (2, 2, 0, 0)
    assert sorted(r["id"] for r in relay.queue_list()) == sorted(a)

    # the human list: a header line, then each message and its recipients
    text = relay.mta("queue", "list").stdout.decode().splitlines()
    assert text[0].startswith("ID ") and "SENDER" in text[0], text
    assert sum(1 for line in text if line.startswith("    <x")) == 3, text

    assert bulk(relay, "delete", "--all") == (3, 3, 0, 0)
    assert relay.queue_list() == []
    assert bulk(relay, "delete", "--all") == (0, 0, 0, 0)


def test_bulk_bad_usage(relay):
    for args in (["hold"], ["hold", "--domain"], ["hold", "--all",
                 "0123456789abcdef"], ["delete", "--older-than", "soon"],
                 ["release", "--frobnicate"]):
        p = relay.mta("queue", *args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stdout == b"", (args, p.stdout)


def test_bulk_relay_not_running(relay_factory):
    relay = relay_factory(start=False)
    p = relay.mta("queue", "hold", "--all", check=False)
    assert p.returncode == 1 and b"the relay is not running" in p.stderr
    p = relay.mta("reload", check=False)
    assert p.returncode == 1 and b"the relay is not running" in p.stderr


def build_fill():
    """bench/queue_fill.c linked against BUILD/libmta.a (with the
    sanitizers the library was built with)."""
    out = os.path.join(BUILD, "tests", "queue_fill")
    base = ["cc", "-std=c11", "-D_GNU_SOURCE", "-pthread", "-O1", "-g",
            "-I.", "-Imta", "bench/queue_fill.c",
            os.path.join(BUILD, "libmta.a"), "-o", out, "-luring", "-lssl",
            "-lcrypto", "-lcares", "-llmdb", "-linih", "-lcrypt", "-lm"]
    for san in ([], ["-fsanitize=address,undefined"], ["-fsanitize=thread"]):
        p = subprocess.run(base[:1] + san + base[1:], cwd=REPO,
                           capture_output=True, timeout=300)
        if p.returncode == 0:
            return out
    raise AssertionError(p.stderr.decode())


# 100,000 in make test; MTA_BULK_MESSAGES=1000000 measures the issue's
# million (bench/results/queue-bulk.md), with the same assertions
N_BULK = int(os.environ.get("MTA_BULK_MESSAGES", "100000"))


def test_bulk_100k_while_delivering(relay_factory, tmp_path):
    """Hold, release, retry and delete 100,000 messages by selection
    while the relay delivers other mail: every count is exact and mail
    to a live destination keeps flowing during each action."""
    from smtp_servers import MtaSink, wait_until
    sink_port = free_port()
    sink = MtaSink(BUILD, "127.0.0.1", sink_port, tmp_path / "sink.jsonl",
                   ()).start()
    try:
        relay = relay_factory(start=False, overrides={
            "queue": {"retry": "1h"},
            "route live.test": {"host": f"[127.0.0.1]:{sink_port}"}})
        fill = build_fill()
        p = subprocess.run([fill, str(relay.queue_path), str(N_BULK),
                            str(8 << 30), "backlog.test"],
                           capture_output=True, timeout=600)
        assert p.returncode == 0, p.stderr.decode()
        relay.start(timeout=300)
        _bulk_while_delivering(relay, sink)
    finally:
        sink.stop()


def _live_pump(relay, stop, sent):
    from conftest import make_message, queued_id, send_message
    with relay.client(timeout=60) as c:
        c.ehlo()
        i = 0
        while not stop.is_set():
            r = f"live{i}@live.test"
            queued_id(send_message(c, make_message(rcpt=r),
                                   sender="s@origin.test", rcpts=(r,)), c)
            sent.append(r)
            i += 1
            time.sleep(0.02)
        c.cmd("QUIT")


def _delivered(sink):
    return {a for r in sink.records() for a in r.get("rcpts", [])}


def _bulk_while_delivering(relay, sink):
    import threading
    from smtp_servers import wait_until
    stop, sent, errors = threading.Event(), [], []

    def pump():
        try:
            _live_pump(relay, stop, sent)
        except Exception as e:  # reported below
            errors.append(e)
    th = threading.Thread(target=pump)
    th.start()
    try:
        for args, want in ((("hold", "--domain", "backlog.test"), N_BULK),
                           (("release", "--held"), N_BULK),
                           (("retry", "--domain", "backlog.test"), N_BULK),
                           (("hold", "--all", "--sender",
                             "bench@client.test"), N_BULK),
                           (("delete", "--held"), N_BULK)):
            before = len(_delivered(sink))
            t0 = time.monotonic()
            counts = bulk(relay, *args)
            took = time.monotonic() - t0
            assert counts == (want, want, 0, 0), (args, counts)
            # delivery went on meanwhile (a long action must not stall it)
            if took > 3:
                assert len(_delivered(sink)) > before, (args, took)
            print(f"{' '.join(args)}: {want} messages in {took:.1f}s")
    finally:
        stop.set()
        th.join(120)
    assert not errors, errors
    wait_until(lambda: set(sent) <= _delivered(sink), 120,
               "every live message delivered")
    left = [r for r in relay.queue_list() if r["from"] == "bench@client.test"]
    assert left == []
