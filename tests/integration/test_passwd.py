# SPDX-License-Identifier: ISC
"""
`mta passwd NAME`: adds or updates a user in the [auth] users file, with a
yescrypt hash, atomically (temp file + rename), keeping every other line.

The binary comes from $MTA_BUILD (default: build). Hashes are checked
with Python's crypt module (libcrypt underneath, so $y$ works even though
crypt.methods does not list it).
"""
import os
import pathlib
import stat
import subprocess
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated, present in Python 3.11

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MTA_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
MTA = str(BUILD / "mta")

SAN_PATTERNS = ("Sanitizer", "runtime error:")


def write_config(tmp_path, users=True, users_path=None):
    queue = tmp_path / "queue"
    queue.mkdir(exist_ok=True)
    conf = tmp_path / "mta.conf"
    text = "[server]\nhostname = relay.test\n\n[queue]\npath = %s\n" % queue
    if users:
        text += "\n[auth]\nusers = %s\n" % (users_path or tmp_path / "users")
    conf.write_text(text)
    return conf


def passwd(conf, name, stdin):
    """Run `mta -c CONF passwd NAME` with stdin; (rc, stdout, stderr)."""
    p = subprocess.run(
        [MTA, "-c", str(conf), "passwd", name],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    out, err = p.stdout.decode(), p.stderr.decode()
    for pat in SAN_PATTERNS:
        assert pat not in err, err
    return p.returncode, out, err


def users_of(path):
    """NAME -> HASH for the user lines of a users file."""
    users = {}
    for line in pathlib.Path(path).read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            name, _, h = s.partition(":")
            users[name] = h
    return users


def crypt_ok(pw, h):
    return crypt.crypt(pw, h) == h


def one_line(err):
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("mta passwd: ")


@pytest.fixture(autouse=True)
def _need_binary():
    if not os.access(MTA, os.X_OK):
        pytest.skip("no %s (set MTA_BUILD)" % MTA)


def test_add_then_update(tmp_path):
    conf = write_config(tmp_path)
    users = tmp_path / "users"

    rc, out, err = passwd(conf, "alice", "first secret\n")
    assert rc == 0, err
    assert "added" in out
    u = users_of(users)
    assert list(u) == ["alice"]
    assert u["alice"].startswith("$y$")
    assert crypt_ok("first secret", u["alice"])
    assert stat.S_IMODE(users.stat().st_mode) == 0o600

    rc, _, err = passwd(conf, "bob@example.org", "bob pw")  # no newline
    assert rc == 0, err
    bob = users_of(users)["bob@example.org"]
    assert crypt_ok("bob pw", bob)

    rc, out, err = passwd(conf, "alice", "second secret\r\n")
    assert rc == 0, err
    assert "updated" in out
    u = users_of(users)
    assert list(u) == ["alice", "bob@example.org"]
    assert u["alice"].startswith("$y$")
    assert crypt_ok("second secret", u["alice"])
    assert not crypt_ok("first secret", u["alice"])
    assert u["bob@example.org"] == bob
    # Nothing left behind by the temp-file-and-rename.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mta.conf", "queue", "users"]


def test_keeps_other_lines_and_mode(tmp_path):
    conf = write_config(tmp_path)
    users = tmp_path / "users"
    sha = crypt.crypt("carol pw", crypt.mksalt(crypt.METHOD_SHA512))
    original = (
        "# submission users\n"
        "\n"
        "carol:%s\n"
        "  alice:$y$j9T$old$oldoldoldoldoldoldoldoldoldoldoldoldoldold\n"
        "# trailing comment" % sha  # no final newline
    )
    users.write_text(original)
    os.chmod(users, 0o640)

    rc, _, err = passwd(conf, "alice", "new pw\n")
    assert rc == 0, err
    text = users.read_text()
    lines = text.splitlines()
    assert lines[0] == "# submission users"
    assert lines[1] == ""
    assert lines[2] == "carol:" + sha
    assert lines[3].startswith("alice:$y$")
    assert lines[4] == "# trailing comment"
    assert crypt_ok("new pw", users_of(users)["alice"])
    assert crypt_ok("carol pw", users_of(users)["carol"])
    assert stat.S_IMODE(users.stat().st_mode) == 0o640

    # A new user goes at the end, after a newline the file lacked.
    rc, _, err = passwd(conf, "dave", "dave pw\n")
    assert rc == 0, err
    lines = users.read_text().splitlines()
    assert lines[4] == "# trailing comment"
    assert lines[5].startswith("dave:$y$")
    assert stat.S_IMODE(users.stat().st_mode) == 0o640


def test_symlink_target_updated(tmp_path):
    real = tmp_path / "real-users"
    real.write_text("")
    link = tmp_path / "users"
    link.symlink_to(real)
    conf = write_config(tmp_path)
    rc, _, err = passwd(conf, "erin", "erin pw\n")
    assert rc == 0, err
    assert link.is_symlink()
    assert crypt_ok("erin pw", users_of(real)["erin"])


@pytest.mark.parametrize("name", ["", "a:b", "a b", "tab\tname", "new\nline"])
def test_bad_names(tmp_path, name):
    conf = write_config(tmp_path)
    users = tmp_path / "users"
    users.write_text("# keep me\n")
    rc, _, err = passwd(conf, name, "pw\n")
    assert rc == 1
    assert one_line(err), err
    assert users.read_text() == "# keep me\n"


def test_no_users_file_configured(tmp_path):
    conf = write_config(tmp_path, users=False)
    rc, _, err = passwd(conf, "alice", "pw\n")
    assert rc == 1
    assert one_line(err), err
    assert "users" in err


def test_users_path_unusable(tmp_path):
    d = tmp_path / "users.d"
    d.mkdir()
    conf = write_config(tmp_path, users_path=d)
    rc, _, err = passwd(conf, "alice", "pw\n")
    assert rc == 1
    assert one_line(err), err
    assert str(d) in err

    conf = write_config(tmp_path, users_path=tmp_path / "no" / "users")
    rc, _, err = passwd(conf, "alice", "pw\n")
    assert rc == 1
    assert one_line(err), err


def test_bad_passwords(tmp_path):
    conf = write_config(tmp_path)
    for stdin in ("", "\n", "x" * 300 + "\n"):
        rc, _, err = passwd(conf, "alice", stdin)
        assert rc == 1
        assert one_line(err), err
    assert not (tmp_path / "users").exists()


def test_bad_config(tmp_path):
    conf = tmp_path / "mta.conf"
    conf.write_text("[auth]\nno_such_key = 1\n")
    rc, _, err = passwd(conf, "alice", "pw\n")
    assert rc == 1
    assert one_line(err), err
    rc, _, err = passwd(tmp_path / "missing.conf", "alice", "pw\n")
    assert rc == 1
    assert one_line(err), err


def passwd_args(conf, *args):
    """`mta -c CONF passwd ARGS`, stdin empty; (rc, stdout, stderr)."""
    p = subprocess.run([MTA, "-c", str(conf), "passwd", *args],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode()
    for pat in SAN_PATTERNS:
        assert pat not in err, err
    return p.returncode, out, err


def test_delete_and_list(tmp_path):
    conf = write_config(tmp_path)
    users = tmp_path / "users"
    users.write_text("# the users\n")
    for name in ("carol", "alice", "bob"):
        assert passwd(conf, name, name + " secret\n")[0] == 0
    rc, out, err = passwd_args(conf, "-l")
    assert rc == 0 and out == "alice\nbob\ncarol\n", (out, err)

    rc, out, err = passwd_args(conf, "-d", "bob")
    assert rc == 0 and "deleted user bob" in out, err
    assert list(users_of(users)) == ["carol", "alice"]
    assert users.read_text().startswith("# the users\n")  # kept
    assert crypt_ok("alice secret", users_of(users)["alice"])
    assert stat.S_IMODE(users.stat().st_mode) == 0o644  # kept
    assert passwd_args(conf, "-l")[1] == "alice\ncarol\n"

    # deleting nobody changes nothing and says so
    before = users.read_bytes()
    rc, out, err = passwd_args(conf, "-d", "bob")
    assert rc == 1 and one_line(err) and "no user bob" in err, err
    assert users.read_bytes() == before
    # a file the relay would refuse is refused by -l too
    users.write_text("alice\n")
    rc, out, err = passwd_args(conf, "-l")
    assert rc == 1 and f"{users}:1:" in err and out == "", err
    assert passwd_args(conf, "-d")[0] == 2
    assert passwd_args(conf, "-x", "a")[0] == 2
