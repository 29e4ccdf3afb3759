# SPDX-License-Identifier: ISC
"""
`make install` and `make uninstall` (issue 13 item 1): the tree under
DESTDIR, file by file (programs, sendmail/mailq links, man pages, the
systemd unit, the default configuration, the queue directory); a second
install keeps a configuration the admin changed; uninstall removes what
install put and keeps the configuration and the queue; the default
configuration passes `mta check-config`; the unit passes
`systemd-analyze verify`.

Installs what the build directory under test holds (`make -o all`: the
build is not redone, whatever flags it was made with).
"""
import os
import pathlib
import shutil
import stat
import subprocess

import pytest

from conftest import BUILD, REPO, run_mta

PROGS = ["mta", "mta-sink", "mta-load", "mta-sendmail"]
PAGES = {"share/man/man8/mta.8": REPO / "man/mta.8",
         "share/man/man5/mta.conf.5": pathlib.Path(BUILD) / "man/mta.conf.5",
         "share/man/man1/mta-load.1": REPO / "man/mta-load.1",
         "share/man/man1/mta-sink.1": REPO / "man/mta-sink.1"}
HARDENING = ["NoNewPrivileges=yes", "ProtectSystem=strict",
             "ReadWritePaths=/var/spool/mta", "PrivateTmp=yes",
             "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID "
             "CAP_SETGID CAP_CHOWN",
             "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
             "ExecStart=/usr/local/bin/mta -c /etc/mta/mta.conf serve"]


def make(*args, timeout=300):
    p = subprocess.run(["make", "-C", str(REPO), "-o", "all",
                        f"BUILD={BUILD}", *args], capture_output=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    return p.stdout.decode() + p.stderr.decode()


def tree(root):
    """{relative path: (kind, mode)} of everything under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = pathlib.Path(dirpath) / n
            st = os.lstat(p)
            kind = ("link" if stat.S_ISLNK(st.st_mode) else
                    "dir" if stat.S_ISDIR(st.st_mode) else "file")
            out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode))
    return out


def expected_tree():
    t = {}
    for d in ("etc", "etc/mta", "usr", "usr/local", "usr/local/bin",
              "usr/local/sbin", "usr/local/share", "usr/local/share/man",
              "usr/local/share/man/man1", "usr/local/share/man/man5",
              "usr/local/share/man/man8", "usr/local/lib",
              "usr/local/lib/systemd", "usr/local/lib/systemd/system",
              "var", "var/spool"):
        t[d] = ("dir", 0o755)
    for p in PROGS:
        t[f"usr/local/bin/{p}"] = ("file", 0o755)
    t["usr/local/bin/mailq"] = ("link", 0o777)
    t["usr/local/sbin/sendmail"] = ("link", 0o777)
    for p in PAGES:
        t[f"usr/local/{p}"] = ("file", 0o644)
    t["usr/local/lib/systemd/system/mta.service"] = ("file", 0o644)
    t["etc/mta/mta.conf"] = ("file", 0o644)
    t["var/spool/mta"] = ("dir", 0o750)
    return t


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "dest"
    old = os.umask(0o022)
    try:
        yield d
    finally:
        os.umask(old)


def test_install_tree_file_by_file(dest):
    make("install", f"DESTDIR={dest}")
    assert tree(dest) == expected_tree()
    for p in PROGS:
        assert (dest / "usr/local/bin" / p).read_bytes() == \
            (pathlib.Path(BUILD) / p).read_bytes(), p
    for link in ("usr/local/bin/mailq", "usr/local/sbin/sendmail"):
        assert os.readlink(dest / link) == "/usr/local/bin/mta-sendmail"
    for rel, src in PAGES.items():
        assert (dest / "usr/local" / rel).read_bytes() == src.read_bytes()
    unit = (dest / "usr/local/lib/systemd/system/mta.service").read_text()
    lines = unit.splitlines()
    for want in HARDENING:
        assert want in lines, want
    assert "@" not in unit.replace("$MAINPID", ""), "unfilled placeholder"
    conf = (dest / "etc/mta/mta.conf").read_text().splitlines()
    active = [ln for ln in conf if ln and ln[0] not in "#; \t"]
    example = (REPO / "config/mta.conf.example").read_text().splitlines()
    # the example's sections, and only user and the queue path set
    want = [ln for ln in example if ln.startswith("[")]
    want.insert(want.index("[server]") + 1, "user = mta ; started as root: "
                "bind, read keys, then run as this user; empty: refuse root")
    want.insert(want.index("[queue]") + 1,
                "path = /var/spool/mta ; LMDB queue directory")
    assert active == want, active
    # every key of the example is there, commented out at its default
    for ln in example:
        if ln[:1].isalpha() and "=" in ln and not ln.startswith(
                ("user ", "path ")):
            assert ";" + ln in conf, ln


def test_default_config_passes_check_config(dest, tmp_path):
    """As installed, with the two things a site has: its user and its
    queue path (here a test's own, since check-config tries the path)."""
    make("install", f"DESTDIR={dest}")
    text = (dest / "etc/mta/mta.conf").read_text()
    conf = tmp_path / "site.conf"
    conf.write_text(text.replace("user = mta", "user = nobody").replace(
        "path = /var/spool/mta", f"path = {tmp_path / 'q'}"))
    p = run_mta("check-config", conf=conf)
    assert b"user = nobody" in p.stdout


def test_second_install_keeps_config_uninstall_keeps_conf_and_queue(dest):
    make("install", f"DESTDIR={dest}")
    conf = dest / "etc/mta/mta.conf"
    conf.write_text(conf.read_text() + "\n; changed by the admin\n")
    mine = conf.read_bytes()
    (dest / "var/spool/mta/data.mdb").write_bytes(b"queue")
    out = make("install", f"DESTDIR={dest}")
    assert "/etc/mta/mta.conf exists: left alone" in out, out
    assert conf.read_bytes() == mine
    out = make("uninstall", f"DESTDIR={dest}")
    assert "kept /etc/mta/mta.conf and the queue /var/spool/mta" in out
    left = {p for p, (kind, _) in tree(dest).items() if kind != "dir"}
    assert left == {"etc/mta/mta.conf", "var/spool/mta/data.mdb"}, left
    assert conf.read_bytes() == mine


def test_uninstall_leaves_another_mtas_sendmail(dest):
    (dest / "usr/sbin").mkdir(parents=True)
    (dest / "usr/sbin/sendmail").write_text("#!/bin/sh\n")
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr")
    assert (dest / "usr/sbin/sendmail").read_text() == "#!/bin/sh\n"
    assert not (dest / "usr/bin/mta").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="no systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    """verify wants ExecStart's program to exist and checks the unit's
    Documentation= man pages: an install whose PREFIX is real (no
    DESTDIR), with MANPATH pointing at its pages."""
    root = tmp_path / "root"
    make("install", f"PREFIX={root}/usr", f"SYSCONFDIR={root}/etc",
         f"SPOOLDIR={root}/spool", "MTA_USER=no-such-user-mta-test")
    unit = root / "usr/lib/systemd/system/mta.service"
    env = dict(os.environ, MANPATH=str(root / "usr/share/man"),
               SYSTEMD_LOG_LEVEL="notice")
    p = subprocess.run(["systemd-analyze", "verify", str(unit)],
                       capture_output=True, timeout=60, env=env)
    assert p.returncode == 0 and p.stderr == b"" and p.stdout == b"", (
        p.returncode, p.stdout, p.stderr)
    assert f"ReadWritePaths={root}/spool" in unit.read_text()
