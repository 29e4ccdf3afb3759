# SPDX-License-Identifier: ISC
"""
A real validating resolver for DANE tests, all on loopback, all in one
temporary directory, no system service:

  nsd       serves the test zones (authoritative), on a free port;
  unbound   a validating recursive resolver whose only trust anchor is the
            signed test zone's key, forwarding each zone to nsd through a
            stub-zone, on another free port: the relay's [dns] servers.

Zones are signed with ldns-signzone (keys from ldns-keygen, ECDSA P-256),
so answers from a signed zone carry AD and an unsigned zone's do not
(no trust anchor covers it: "insecure"). A record may be made bogus: its
rdata is changed after signing, so unbound answers SERVFAIL for it.

    with ValidatingDNS(tmp, {"dane.test": recs}, signed={"dane.test"},
                       bogus={("_25._tcp.mx.dane.test", "TLSA")}) as dns:
        dns.port   # unbound's port on 127.0.0.1

recs: {owner (absolute, no trailing dot): [(type, rdata text), ...]}.
Python standard library only (bench/relay-bench uses it too).
"""
import hashlib
import os
import pathlib
import signal
import socket
import subprocess
import time


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (both servers use
    both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port

SOA = "ns.{o}. hostmaster.{o}. 1 3600 600 86400 60"


def _zone_text(origin, recs):
    lines = [f"$ORIGIN {origin}.", "$TTL 300",
             f"@ IN SOA {SOA.format(o=origin)}",
             f"@ IN NS ns.{origin}.", f"ns.{origin}. IN A 127.0.0.1"]
    for owner, rrs in recs.items():
        for rtype, rdata in rrs:
            lines.append(f"{owner}. IN {rtype} {rdata}")
    return "\n".join(lines) + "\n"


def _wait_udp(port, timeout=15.0, proc=None):
    """Until something answers a DNS query on 127.0.0.1:port."""
    q = bytes.fromhex("abcd01000001000000000000") + b"\x00\x00\x06\x00\x01"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", port))
                s.recvfrom(512)
                return
            except OSError:
                time.sleep(0.1)
    raise AssertionError(f"nothing answers DNS on 127.0.0.1:{port}")


class ValidatingDNS:
    def __init__(self, tmp, zones, signed=(), bogus=()):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones = zones
        self.signed = set(signed)
        self.bogus = set(bogus)
        self.nsd_port = free_port()
        self.port = free_port()
        self.procs = []
        self.anchors = []

    def _run(self, *cmd):
        subprocess.run(cmd, cwd=self.dir, check=True, capture_output=True,
                       timeout=60)

    def _sign(self, origin, path):
        out = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k",
                              origin], cwd=self.dir, check=True,
                             capture_output=True, text=True, timeout=60)
        base = out.stdout.strip()
        self._run("ldns-signzone", "-o", origin, "-f", f"{path}.signed",
                  str(path), base)
        anchor = self.dir / f"{origin}.anchor"
        anchor.write_text((self.dir / f"{base}.ds").read_text())
        self.anchors.append(anchor)
        signed = pathlib.Path(f"{path}.signed")
        if self.bogus:
            signed.write_text(self._spoil(signed.read_text()))
        return signed

    def _spoil(self, text):
        """The bogus records: a changed rdata under the old signature."""
        out = []
        for line in text.splitlines():
            f = line.split()
            if len(f) >= 5 and (f[0].rstrip("."), f[3]) in self.bogus:
                f[-1] = "00" * 32 if f[3] == "TLSA" else f[-1]
                if f[3] == "A":
                    f[-1] = "127.0.0.254"
                if f[3] == "AAAA":
                    f[-1] = "::254"
                line = "\t".join(f)
            out.append(line)
        return "\n".join(out) + "\n"

    def _nsd_conf(self, files):
        d = self.dir
        conf = [
            "server:", f"  ip-address: 127.0.0.1@{self.nsd_port}",
            "  do-ip6: no", '  username: ""', '  chroot: ""',
            f'  zonesdir: "{d}"', f'  pidfile: "{d}/nsd.pid"',
            f'  logfile: "{d}/nsd.log"', f'  xfrdfile: "{d}/xfrd.state"',
            f'  zonelistfile: "{d}/zone.list"', '  database: ""',
            "  verbosity: 1",
            "remote-control:", "  control-enable: no",
        ]
        for origin, path in files.items():
            conf += ["zone:", f"  name: {origin}", f'  zonefile: "{path}"']
        p = d / "nsd.conf"
        p.write_text("\n".join(conf) + "\n")
        return p

    def _unbound_conf(self):
        d = self.dir
        conf = [
            "server:", "  interface: 127.0.0.1", f"  port: {self.port}",
            "  do-ip6: no", "  do-not-query-localhost: no",
            # the stub zones on loopback only: nothing else is reachable
            "  outgoing-interface: 127.0.0.1",
            '  username: ""', '  chroot: ""', f'  directory: "{d}"',
            f'  pidfile: "{d}/unbound.pid"', f'  logfile: "{d}/unbound.log"',
            "  use-syslog: no", "  verbosity: 1", "  val-log-level: 2",
            "  num-threads: 1", "  qname-minimisation: no",
            "  access-control: 127.0.0.0/8 allow",
            '  module-config: "validator iterator"',
            "  so-reuseport: no", "  outgoing-range: 64",
            "  cache-max-ttl: 0", "  cache-max-negative-ttl: 0",
            # RFC 6761 names are answered NXDOMAIN locally by default
            '  local-zone: "test." nodefault',
        ]
        conf += [f'  trust-anchor-file: "{a}"' for a in self.anchors]
        conf += ["remote-control:", "  control-enable: no"]
        for origin in self.zones:
            conf += ["stub-zone:", f'  name: "{origin}"',
                     f"  stub-addr: 127.0.0.1@{self.nsd_port}"]
        p = d / "unbound.conf"
        p.write_text("\n".join(conf) + "\n")
        return p

    def start(self):
        files = {}
        for origin, recs in self.zones.items():
            path = self.dir / f"{origin}.zone"
            path.write_text(_zone_text(origin, recs))
            files[origin] = (self._sign(origin, path)
                             if origin in self.signed else path)
        nsd = self._nsd_conf(files)
        self.procs.append(subprocess.Popen(
            ["nsd", "-d", "-c", str(nsd)], cwd=self.dir,
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "nsd.err", "w")))
        _wait_udp(self.nsd_port, proc=self.procs[-1])
        ub = self._unbound_conf()
        self.procs.append(subprocess.Popen(
            ["unbound", "-d", "-c", str(ub)], cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "unbound.err", "w")))
        _wait_udp(self.port, proc=self.procs[-1])
        return self

    def log(self):
        return "".join((self.dir / f).read_text(errors="replace")
                       for f in ("unbound.log", "unbound.err", "nsd.log",
                                 "nsd.err") if (self.dir / f).exists())

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()


def tlsa_digest(cert_pem_path, selector=1, ca=False):
    """SHA-256 of the certificate (selector 0) or of its SPKI (1), hex,
    with the openssl command."""
    if selector == 0:
        der = subprocess.run(["openssl", "x509", "-in", str(cert_pem_path),
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
    else:
        pub = subprocess.run(["openssl", "x509", "-in", str(cert_pem_path),
                              "-noout", "-pubkey"], check=True,
                             capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                             input=pub, check=True,
                             capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def make_ca_chain(directory, host):
    """A test CA and a leaf for host signed by it. Returns (chain file:
    leaf then CA, key, CA cert)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca, cakey = d / "ca.crt", d / "ca.key"
    leaf, key, csr = d / f"{host}.crt", d / f"{host}.key", d / f"{host}.csr"
    ext = d / "leaf.ext"

    def run(*a):
        subprocess.run(a, check=True, capture_output=True, timeout=60)

    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(cakey),
        "-out", str(ca), "-days", "2", "-subj", "/CN=DANE test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
        "-out", str(csr), "-subj", f"/CN={host}")
    ext.write_text(f"subjectAltName=DNS:{host}\n"
                   "basicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca),
        "-CAkey", str(cakey), "-CAcreateserial", "-out", str(leaf),
        "-days", "2", "-extfile", str(ext))
    chain = d / f"{host}.chain.pem"
    chain.write_text(leaf.read_text() + ca.read_text())
    os.chmod(key, 0o600)
    return chain, key, ca
