#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""
A small authoritative DNS server for tests, on python3-dnslib: UDP and TCP
on one loopback port, answers from a zone given as a dict (or a JSON file).

As a library (the pytest fixture way):

    from dns_server import DNSServer, DEFAULT_ZONE
    with DNSServer(DEFAULT_ZONE) as dns:         # port=0: pick a free one
        conf = f"[dns]\\nservers = 127.0.0.1:{dns.port}\\n"
        ...
        dns.queries        # [(name, qtype, "udp"|"tcp"), ...] as received

From the shell:

    dns_server.py [--zone FILE.json] [--port N] [--host 127.0.0.1]

prints `port=N` on stdout once both sockets are bound, logs each query on
stderr, and serves until SIGTERM/SIGINT.

Zone format: {"ttl": 300, "soa": "test", "records": {NAME: {TYPE: VALUE}}}
with NAME lowercase without a trailing dot and TYPE one of
  "A": ["127.0.0.2", ...]          "AAAA": ["::1", ...]
  "MX": [[PREF, "host"], ...]      ("." is the null MX exchange)
  "CNAME": "target"                (followed inside the zone, as a
                                    recursive resolver would)
  "TXT": ["text", ...]
and these behaviours instead of data (for the name and every type):
  "rcode": "SERVFAIL" | "REFUSED" | "FORMERR" | "NOTIMP" | "NXDOMAIN"
  "drop": true                     never answer (client times out)
  "delay": SECONDS                 answer late
  "tc": true                       over UDP answer empty with TC set
                                   (the client must retry over TCP)
  "ttl": SECONDS                   TTL for this name's records
A zone with "ad": true sets the AD bit on every answer that is not an
error rcode, as a validating resolver does for signed data (the DANE
tests that need no real validator use it).
A name not in the zone is NXDOMAIN; a name with no record of the asked
type is NODATA. Both carry the SOA in the authority section (negative TTL
= "neg_ttl", default 60). Replies larger than the client's UDP size (512,
or its EDNS0 size) are truncated (TC) over UDP, as real servers do.
Loopback only: the server refuses to bind anything else.
"""
import argparse
import ipaddress
import json
import signal
import socket
import struct
import sys
import threading
import time

from dnslib import (AAAA, CNAME, EDNS0, MX, QTYPE, RCODE, RR, SOA, TXT, A,
                    DNSLabel, DNSRecord)

# The zone the DNS tests use; other tests may extend a copy of it.
# 127.0.0.x addresses so a test can also listen on them (all of 127/8 is
# loopback on Linux).
DEFAULT_ZONE = {
    "ttl": 300,
    "neg_ttl": 60,
    "soa": "test",
    "records": {
        # Three MX hosts, two at the same preference.
        "multi.test": {"MX": [[20, "mx3.multi.test"], [10, "mx1.multi.test"],
                              [10, "mx2.multi.test"]]},
        "mx1.multi.test": {"A": ["127.0.0.11"]},
        "mx2.multi.test": {"A": ["127.0.0.12"], "AAAA": ["::1"]},
        "mx3.multi.test": {"A": ["127.0.0.13"]},
        # Ordered by preference, no ties.
        "ordered.test": {"MX": [[30, "c.ordered.test"], [10, "a.ordered.test"],
                                [20, "b.ordered.test"]]},
        "a.ordered.test": {"A": ["127.0.0.21"]},
        "b.ordered.test": {"A": ["127.0.0.22"]},
        "c.ordered.test": {"A": ["127.0.0.23"]},
        # Many equal preferences: the order must vary between lookups.
        "equal.test": {"MX": [[10, f"e{i}.equal.test"] for i in range(1, 6)]},
        **{f"e{i}.equal.test": {"A": [f"127.0.0.{30 + i}"]}
           for i in range(1, 6)},
        # RFC 7505 null MX.
        "nullmx.test": {"MX": [[0, "."]], "A": ["127.0.0.99"]},
        # No MX: mail goes to the domain's own A/AAAA (RFC 5321 5.1).
        "aonly.test": {"A": ["127.0.0.41"]},
        "v6only.test": {"AAAA": ["::1"]},
        # Exists (has TXT) but no MX and no address.
        "noaddr.test": {"TXT": ["v=spf1 -all"]},
        # SERVFAIL for every query.
        "servfail.test": {"rcode": "SERVFAIL"},
        "refused.test": {"rcode": "REFUSED"},
        # The MX exchange is a CNAME (lenient: followed).
        "cnamemx.test": {"MX": [[10, "alias.cnamemx.test"]]},
        "alias.cnamemx.test": {"CNAME": "real.cnamemx.test"},
        "real.cnamemx.test": {"A": ["127.0.0.51"]},
        # The domain itself is a CNAME to a domain with MX.
        "cnamedom.test": {"CNAME": "multi.test"},
        # MX exchanges that are IP addresses (lenient: used as such).
        "ipmx.test": {"MX": [[10, "127.0.0.61"], [20, "mx.ipmx.test"]]},
        "mx.ipmx.test": {"A": ["127.0.0.62"]},
        # One MX host does not exist, the other has an address.
        "halfbroken.test": {"MX": [[10, "gone.halfbroken.test"],
                                   [20, "ok.halfbroken.test"]]},
        "ok.halfbroken.test": {"A": ["127.0.0.71"]},
        # Every MX host is missing or failing: temporary.
        "allbroken.test": {"MX": [[10, "gone.allbroken.test"],
                                  [20, "servfail.test"]]},
        # MX host whose A lookup fails, AAAA fine.
        "mxfail.test": {"MX": [[10, "servfail.test"],
                               [20, "ok.mxfail.test"]]},
        "ok.mxfail.test": {"AAAA": ["::1"]},
        # Truncated over UDP: needs the TCP retry.
        "tcp.test": {"tc": True, "MX": [[10, "mx.tcp.test"]]},
        "mx.tcp.test": {"A": ["127.0.0.81"]},
        # Too big for 512 (and for 1232) bytes over UDP: TC by size.
        # Worst preference first on the wire: the best must still win.
        "big.test": {"MX": [[i, f"mx-with-a-rather-long-name-{i:02d}.big.test"]
                            for i in range(40, 0, -1)]},
        **{f"mx-with-a-rather-long-name-{i:02d}.big.test":
           {"A": [f"127.0.1.{i}"]} for i in range(1, 41)},
        # Never answered.
        "timeout.test": {"drop": True},
        # A host for routes / dns_resolve_host.
        "smarthost.test": {"A": ["127.0.0.91"], "AAAA": ["::1"]},
        # Short TTL, for cache tests.
        "shortttl.test": {"ttl": 1, "MX": [[10, "mx1.multi.test"]]},
    },
}

_RCODES = {"NOERROR": RCODE.NOERROR, "FORMERR": RCODE.FORMERR,
           "SERVFAIL": RCODE.SERVFAIL, "NXDOMAIN": RCODE.NXDOMAIN,
           "NOTIMP": RCODE.NOTIMP, "REFUSED": RCODE.REFUSED}


def _norm(name):
    return str(name).rstrip(".").lower()


class Zone:
    def __init__(self, zone):
        self.ttl = int(zone.get("ttl", 300))
        self.neg_ttl = int(zone.get("neg_ttl", 60))
        self.soa_name = _norm(zone.get("soa", "test"))
        self.records = {_norm(k): v for k, v in zone.get("records", {}).items()}
        self.ad = bool(zone.get("ad", False))

    def soa(self):
        return RR(self.soa_name + ".", QTYPE.SOA, ttl=self.neg_ttl,
                  rdata=SOA(f"ns.{self.soa_name}.", f"hostmaster.{self.soa_name}.",
                            (1, 3600, 600, 86400, self.neg_ttl)))

    def rrs(self, name, node, qtype):
        ttl = int(node.get("ttl", self.ttl))
        fqdn = name + "."
        out = []
        if qtype in ("A", "ANY"):
            out += [RR(fqdn, QTYPE.A, ttl=ttl, rdata=A(a)) for a in node.get("A", [])]
        if qtype in ("AAAA", "ANY"):
            out += [RR(fqdn, QTYPE.AAAA, ttl=ttl, rdata=AAAA(a))
                    for a in node.get("AAAA", [])]
        if qtype in ("MX", "ANY"):
            for pref, host in node.get("MX", []):
                host = "." if host == "." else host.rstrip(".") + "."
                out.append(RR(fqdn, QTYPE.MX, ttl=ttl,
                              rdata=MX(DNSLabel(host), int(pref))))
        if qtype in ("TXT", "ANY"):
            out += [RR(fqdn, QTYPE.TXT, ttl=ttl, rdata=TXT(t))
                    for t in node.get("TXT", [])]
        return out

    def answer(self, request, proto):
        """(reply DNSRecord or None to drop, delay seconds)."""
        q = request.q
        name = _norm(q.qname)
        qtype = QTYPE.get(q.qtype)
        reply = request.reply()
        reply.header.ra = 0
        reply.header.ad = 1 if self.ad else 0
        node = self.records.get(name)
        delay = float(node.get("delay", 0)) if node else 0.0
        if node is not None and node.get("drop"):
            return None, 0.0
        if node is not None and "rcode" in node:
            reply.header.aa = 0
            reply.header.ad = 0
            reply.header.rcode = _RCODES[node["rcode"]]
            return reply, delay
        if node is not None and node.get("tc") and proto == "udp":
            reply.header.tc = 1
            return reply, delay
        # Follow CNAMEs inside the zone, as a recursive resolver would.
        hops = 0
        while node is not None and "CNAME" in node and qtype != "CNAME" and hops < 8:
            target = _norm(node["CNAME"])
            reply.add_answer(RR(name + ".", QTYPE.CNAME,
                                ttl=int(node.get("ttl", self.ttl)),
                                rdata=CNAME(target + ".")))
            name, node, hops = target, self.records.get(target), hops + 1
            if node is not None and ("rcode" in node or node.get("drop")):
                reply.header.rcode = RCODE.SERVFAIL
                return reply, delay
        if node is None:
            if hops == 0 or name.endswith("." + self.soa_name) or name == self.soa_name:
                reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(self.soa())
            return reply, delay
        rrs = self.rrs(name, node, qtype)
        if qtype == "CNAME" and "CNAME" in node:
            rrs = [RR(name + ".", QTYPE.CNAME, ttl=int(node.get("ttl", self.ttl)),
                      rdata=CNAME(_norm(node["CNAME"]) + "."))]
        for rr in rrs:
            reply.add_answer(rr)
        if not rrs:
            reply.add_auth(self.soa())
        return reply, delay


def _udp_limit(request):
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, min(int(rr.rclass), 4096))
    return 512


class DNSServer:
    """Serve zone on host:port (port 0: choose one free for UDP and TCP)."""

    def __init__(self, zone=None, port=0, host="127.0.0.1", log=None):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address")
        if isinstance(zone, str):
            with open(zone) as f:
                zone = json.load(f)
        self.zone = Zone(zone if zone is not None else DEFAULT_ZONE)
        self.host = host
        self.port = port
        self.log = log
        self.queries = []
        self._lock = threading.Lock()
        self._udp = self._tcp = None
        self._threads = []

    # -- life cycle
    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(100):
            udp = socket.socket(fam, socket.SOCK_DGRAM)
            tcp = socket.socket(fam, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, self.port))
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue
            break
        else:
            raise RuntimeError("no free port for UDP and TCP")
        self.port = udp.getsockname()[1]
        tcp.listen(64)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        self._udp, self._tcp = udp, tcp
        self._stop = threading.Event()
        for fn in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        if self._udp is None:
            return
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._udp.close()
        self._tcp.close()
        self._udp = self._tcp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def count(self, name, qtype=None, proto=None):
        """How many queries for name (and qtype, proto) arrived."""
        name = _norm(name)
        with self._lock:
            return sum(1 for n, t, p in self.queries
                       if n == name and qtype in (None, t) and proto in (None, p))

    def clear(self):
        with self._lock:
            self.queries.clear()

    # -- serving
    def _handle(self, data, proto):
        try:
            request = DNSRecord.parse(data)
        except Exception:  # garbage: no reply, like a real server
            return None
        if not request.questions:
            return None
        q = request.q
        entry = (_norm(q.qname), QTYPE.get(q.qtype), proto)
        with self._lock:
            self.queries.append(entry)
        if self.log:
            self.log(f"query {entry[0]} {entry[1]} {proto}")
        reply, delay = self.zone.answer(request, proto)
        if reply is None:
            return None
        if delay:
            time.sleep(delay)
        has_edns = any(rr.rtype == QTYPE.OPT for rr in request.ar)
        if has_edns:
            reply.add_ar(EDNS0(udp_len=1232))
        out = reply.pack()
        if proto == "udp" and len(out) > _udp_limit(request):
            trunc = request.reply()
            trunc.header.ra = 0
            trunc.header.tc = 1
            if has_edns:
                trunc.add_ar(EDNS0(udp_len=1232))
            out = trunc.pack()
        return out

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            # One thread per query, so a delayed answer blocks no other.
            threading.Thread(target=self._udp_reply, args=(data, peer),
                             daemon=True).start()

    def _udp_reply(self, data, peer):
        out = self._handle(data, "udp")
        if out is not None:
            try:
                self._udp.sendto(out, peer)
            except OSError:
                pass

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _tcp_conn(self, conn):
        conn.settimeout(10)
        with conn:
            try:
                while not self._stop.is_set():
                    hdr = self._recv_exact(conn, 2)
                    if hdr is None:
                        return
                    data = self._recv_exact(conn, struct.unpack("!H", hdr)[0])
                    if data is None:
                        return
                    out = self._handle(data, "tcp")
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                return


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zone", help="zone as a JSON file (default: the built-in test zone)")
    ap.add_argument("--port", type=int, default=0, help="port (0: choose and print)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dump-zone", action="store_true",
                    help="print the built-in zone as JSON and exit")
    args = ap.parse_args(argv)
    if args.dump_zone:
        json.dump(DEFAULT_ZONE, sys.stdout, indent=1)
        print()
        return 0
    srv = DNSServer(args.zone, port=args.port, host=args.host,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
    srv.start()
    print(f"port={srv.port}", flush=True)
    done = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
