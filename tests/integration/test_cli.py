# SPDX-License-Identifier: ISC
"""
The `mta` command line as an administrator meets it: help on every command
and subcommand without a configuration, --version, the man pages (render
without warnings; mta.conf(5) lists every key of the key table).

The commands come from `mta help` itself, checked against a list of those
that must be there, so a command added to the table is covered at once.
"""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import BUILD, REPO, run_mta

NOCONF = "/nonexistent/mta.conf"
MUST = {"serve", "check-config", "queue list", "queue show", "queue stats",
        "queue delete", "queue retry", "queue hold", "queue release",
        "passwd", "resolve", "version", "help"}


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
