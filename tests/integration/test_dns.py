# SPDX-License-Identifier: ISC
"""
DNS resolution end to end: `mta resolve` (the real resolver thread, c-ares,
[dns] servers, MX selection) against tests/integration/dns_server.py on
127.0.0.1. Never the system resolver: every config names our server.

`mta resolve NAME...` prints, per name, `status=... domain=... [reason=...]`
and then one `PREF HOST ADDRESS` line per address, in the order delivery
tries them. Several names share one resolver, so its cache shows.
"""
import re
import socket
import time

import pytest

from conftest import free_port, run_mta, write_config
from dns_server import DEFAULT_ZONE, DNSServer


@pytest.fixture(scope="module")
def dns():
    with DNSServer(DEFAULT_ZONE) as srv:
        yield srv


def dns_conf(tmp_path, servers, extra_sections=None, timeout="1s", tries="2"):
    sections = {"dns": {"servers": servers, "timeout": timeout,
                        "tries": tries}}
    sections.update(extra_sections or {})
    return write_config(tmp_path / "dns.conf", sections)


@pytest.fixture
def conf(tmp_path, dns):
    return dns_conf(tmp_path, f"127.0.0.1:{dns.port}")


class Result:
    def __init__(self, proc, lines=None):
        self.rc = proc.returncode
        self.stderr = proc.stderr.decode("utf-8", "replace")
        if lines is None:
            lines = proc.stdout.decode("utf-8", "replace").splitlines()
        assert lines, f"no output; stderr: {self.stderr}"
        self.head = lines[0]
        m = re.match(r"status=(\w+) ", self.head)
        assert m, self.head
        self.status = m.group(1)
        m = re.search(r'reason="((?:[^"\\]|\\.)*)"', self.head)
        self.reason = m.group(1) if m else ""
        self.targets = []
        for line in lines[1:]:
            if line.startswith(("tls_policy=", "tlsa ")):
                continue  # each host's TLS policy (test_dane.py)
            pref, host, addr = line.split(" ")
            self.targets.append((int(pref), host, addr))

    @property
    def hosts(self):
        """Hosts in order, each once."""
        out = []
        for _, h, _ in self.targets:
            if h not in out:
                out.append(h)
        return out

    def __repr__(self):
        return f"<{self.head} {self.targets}>"


def resolve(conf, *args, timeout=60):
    p = run_mta("resolve", *args, conf=conf, timeout=timeout, check=False)
    r = Result(p)
    assert r.rc == (0 if r.status == "ok" else 1), r
    return r


def resolve_many(conf, *names):
    """Several names, one resolver (and one cache): a Result per name."""
    p = run_mta("resolve", *names, conf=conf, check=False)
    blocks = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("status="):
            blocks.append([])
        blocks[-1].append(line)
    out = [Result(p, b) for b in blocks]
    assert len(out) == len(names), p.stdout
    assert p.returncode == (0 if all(r.status == "ok" for r in out) else 1)
    return out


# ---------------------------------------------------------------- MX order

def test_mx_preference_order(conf):
    r = resolve(conf, "ordered.test")
    assert r.status == "ok"
    assert r.targets == [(10, "a.ordered.test", "127.0.0.21"),
                         (20, "b.ordered.test", "127.0.0.22"),
                         (30, "c.ordered.test", "127.0.0.23")]


def test_mx_equal_preferences_and_ipv6(conf):
    r = resolve(conf, "multi.test")
    assert r.status == "ok"
    assert set(r.hosts[:2]) == {"mx1.multi.test", "mx2.multi.test"}
    assert r.hosts[2] == "mx3.multi.test"
    # mx2 has A and AAAA: IPv4 first, then IPv6, both listed.
    mx2 = [t for t in r.targets if t[1] == "mx2.multi.test"]
    assert mx2 == [(10, "mx2.multi.test", "127.0.0.12"),
                   (10, "mx2.multi.test", "::1")]
    assert (20, "mx3.multi.test", "127.0.0.13") == r.targets[-1]


def test_mx_equal_preferences_shuffled(conf):
    orders = set()
    for _ in range(12):
        r = resolve(conf, "equal.test")
        assert r.status == "ok"
        assert sorted(r.hosts) == [f"e{i}.equal.test" for i in range(1, 6)]
        assert all(t[0] == 10 for t in r.targets)
        orders.add(tuple(r.hosts))
    # 12 draws from 120 orders all alike: about 1e-25.
    assert len(orders) > 1


def test_name_normalised(conf):
    r = resolve(conf, "ORDERED.Test.")
    assert r.status == "ok" and r.hosts[0] == "a.ordered.test"
    # The implicit MX is the normalised domain, too.
    r = resolve(conf, "AOnly.TEST.")
    assert r.targets == [(0, "aonly.test", "127.0.0.41")]
    r = resolve(conf, "--host", "SmartHost.Test")
    assert r.targets[0] == (0, "smarthost.test", "127.0.0.91")


# ---------------------------------------------------------------- no MX

def test_implicit_mx_a(conf):
    r = resolve(conf, "aonly.test")
    assert r.status == "ok"
    assert r.targets == [(0, "aonly.test", "127.0.0.41")]


def test_implicit_mx_aaaa(conf):
    r = resolve(conf, "v6only.test")
    assert r.targets == [(0, "v6only.test", "::1")]


def test_no_mx_no_address_is_permanent(conf):
    r = resolve(conf, "noaddr.test")
    assert r.status == "notfound" and r.targets == []
    assert "no MX and no address" in r.reason


# ---------------------------------------------------------------- failures

def test_null_mx(conf):
    # nullmx.test also has an A record: it must not be used.
    r = resolve(conf, "nullmx.test")
    assert r.status == "nullmx" and r.targets == []
    assert "null MX" in r.reason


def test_nxdomain(conf):
    r = resolve(conf, "nope.test")
    assert r.status == "notfound"
    assert "NXDOMAIN" in r.reason


def test_servfail_is_temporary(conf):
    r = resolve(conf, "servfail.test")
    assert r.status == "tempfail" and r.targets == []
    assert r.reason


def test_refused_is_temporary(conf):
    assert resolve(conf, "refused.test").status == "tempfail"


def test_timeout_is_temporary(tmp_path, dns):
    c = dns_conf(tmp_path, f"127.0.0.1:{dns.port}", timeout="300ms",
                 tries="2")
    t0 = time.monotonic()
    r = resolve(c, "timeout.test")
    took = time.monotonic() - t0
    assert r.status == "tempfail"
    assert "imeout" in r.reason
    # c-ares's own timers, not a fixed poll: well under a few seconds.
    assert took < 5, took


def test_invalid_domain_is_permanent(conf):
    # A 64-octet label; an IDN not converted to an A-label (XXX: no IDNA).
    for bad in ("a..b", "bad domain.test", "x" * 64 + ".test",
                "b\u00fccher.test"):
        r = resolve(conf, bad)
        assert r.status == "permfail", (bad, r)


def test_mx_host_missing_is_skipped(conf):
    r = resolve(conf, "halfbroken.test")
    assert r.status == "ok"
    assert r.targets == [(20, "ok.halfbroken.test", "127.0.0.71")]


def test_mx_host_servfail_is_skipped(conf):
    r = resolve(conf, "mxfail.test")
    assert r.targets == [(20, "ok.mxfail.test", "::1")]


def test_all_mx_hosts_unusable_is_temporary(conf):
    r = resolve(conf, "allbroken.test")
    assert r.status == "tempfail" and r.targets == []


# ---------------------------------------------------------------- leniency

def test_mx_target_is_cname(conf):
    r = resolve(conf, "cnamemx.test")
    assert r.status == "ok"
    assert r.targets == [(10, "alias.cnamemx.test", "127.0.0.51")]
    assert "CNAME" in r.stderr


def test_domain_is_cname(conf):
    r = resolve(conf, "cnamedom.test")
    assert r.status == "ok"
    assert set(r.hosts) == {"mx1.multi.test", "mx2.multi.test",
                            "mx3.multi.test"}


def test_mx_target_is_ip(conf):
    r = resolve(conf, "ipmx.test")
    assert r.targets == [(10, "127.0.0.61", "127.0.0.61"),
                         (20, "mx.ipmx.test", "127.0.0.62")]
    assert "IP address" in r.stderr


def test_domain_literal(conf, dns):
    before = len(dns.queries)
    r = resolve(conf, "[127.0.0.5]")
    assert r.targets == [(0, "[127.0.0.5]", "127.0.0.5")]
    assert len(dns.queries) == before  # no query for a literal


# ---------------------------------------------------------------- transport

def test_truncated_udp_retried_over_tcp(conf, dns):
    r = resolve(conf, "tcp.test")
    assert r.targets == [(10, "mx.tcp.test", "127.0.0.81")]
    assert dns.count("tcp.test", "MX", "udp") >= 1
    assert dns.count("tcp.test", "MX", "tcp") >= 1


def test_large_reply_over_tcp_keeps_best(conf, dns):
    # 40 MX records, worst preference first on the wire, too big for UDP.
    r = resolve(conf, "big.test")
    assert r.status == "ok"
    assert [t[0] for t in r.targets] == list(range(1, 11))
    assert r.targets[0] == (1, "mx-with-a-rather-long-name-01.big.test",
                            "127.0.1.1")
    assert dns.count("big.test", "MX", "tcp") >= 1


def test_second_server_used_when_first_is_dead(tmp_path, dns):
    dead = free_port(kind=socket.SOCK_DGRAM)
    c = dns_conf(tmp_path, f"127.0.0.1:{dead}, 127.0.0.1:{dns.port}",
                 timeout="500ms")
    r = resolve(c, "ordered.test")
    assert r.status == "ok" and r.hosts[0] == "a.ordered.test"


def test_ipv6_server(tmp_path):
    try:
        srv = DNSServer(DEFAULT_ZONE, host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        c = dns_conf(tmp_path, f"[::1]:{srv.port}")
        r = resolve(c, "aonly.test")
        assert r.targets == [(0, "aonly.test", "127.0.0.41")]
        assert srv.count("aonly.test", "MX") >= 1
    finally:
        srv.stop()


def test_no_server_is_temporary(tmp_path):
    dead = free_port(kind=socket.SOCK_DGRAM)
    c = dns_conf(tmp_path, f"127.0.0.1:{dead}", timeout="200ms", tries="1")
    r = resolve(c, "ordered.test")
    assert r.status == "tempfail"


# ---------------------------------------------------------------- hosts, routes

def test_host_lookup(conf):
    r = resolve(conf, "--host", "smarthost.test")
    assert r.targets == [(0, "smarthost.test", "127.0.0.91"),
                         (0, "smarthost.test", "::1")]


def test_host_lookup_no_mx_used(conf, dns):
    # A host lookup asks A and AAAA, never MX.
    dns.clear()
    r = resolve(conf, "--host", "aonly.test")
    assert r.targets == [(0, "aonly.test", "127.0.0.41")]
    assert dns.count("aonly.test", "MX") == 0


def test_host_lookup_missing(conf):
    r = resolve(conf, "--host", "gone.test")
    assert r.status == "notfound"


def test_host_lookup_ip(conf):
    r = resolve(conf, "--host", "::1")
    assert r.targets == [(0, "::1", "::1")]


def test_route_host_name(tmp_path, dns):
    c = dns_conf(tmp_path, f"127.0.0.1:{dns.port}", extra_sections={
        "route routed.test": {"host": "smarthost.test"},
    })
    r = resolve(c, "routed.test")
    assert "route=" in r.head
    assert r.targets[0] == (0, "smarthost.test", "127.0.0.91")
    # Other domains still use MX.
    assert resolve(c, "ordered.test").hosts[0] == "a.ordered.test"


def test_route_literal(tmp_path, dns):
    c = dns_conf(tmp_path, f"127.0.0.1:{dns.port}", extra_sections={
        "route *": {"host": "[127.0.0.7]:2525"},
    })
    before = len(dns.queries)
    r = resolve(c, "anything.test")
    assert r.targets == [(0, "127.0.0.7", "127.0.0.7")]
    assert len(dns.queries) == before


# ---------------------------------------------------------------- cache

def test_cache_positive(conf, dns):
    dns.clear()
    a, b = resolve_many(conf, "multi.test", "multi.test")
    assert a.status == b.status == "ok"
    assert sorted(a.targets) == sorted(b.targets)
    assert dns.count("multi.test", "MX") == 1
    assert dns.count("mx1.multi.test", "A") == 1
    assert dns.count("mx2.multi.test", "AAAA") == 1


def test_cache_negative(conf, dns):
    dns.clear()
    a, b = resolve_many(conf, "nope.test", "nope.test")
    assert a.status == b.status == "notfound"
    assert dns.count("nope.test", "MX") == 1
    # NODATA (implicit MX of aonly.test, no AAAA) is cached as well.
    dns.clear()
    resolve_many(conf, "aonly.test", "aonly.test")
    assert dns.count("aonly.test", "MX") == 1
    assert dns.count("aonly.test", "AAAA") == 1


def test_failures_not_cached(conf, dns):
    dns.clear()
    resolve(conf, "servfail.test")
    once = dns.count("servfail.test", "MX")
    dns.clear()
    a, b = resolve_many(conf, "servfail.test", "servfail.test")
    assert a.status == b.status == "tempfail"
    assert dns.count("servfail.test", "MX") == 2 * once


def test_mixed_names_exit_status(conf):
    a, b = resolve_many(conf, "ordered.test", "nullmx.test")
    assert a.status == "ok" and b.status == "nullmx"


def test_usage(conf):
    p = run_mta("resolve", conf=conf, check=False)
    assert p.returncode == 2
    p = run_mta("resolve", "--bogus", "a.test", conf=conf, check=False)
    assert p.returncode == 2


def test_bad_config(tmp_path):
    c = tmp_path / "bad.conf"
    c.write_text("[dns]\nservers = not-an-address\n")
    p = run_mta("resolve", "a.test", conf=c, check=False)
    assert p.returncode == 1 and p.stderr
