#!/usr/bin/python3
"""Verify every DKIM-Signature of a message with dkimpy (Debian's
python3-dkim), nobody's code here. Usage: dkim_verify.py MSG RECORDS
where RECORDS holds lines "SELECTOR._domainkey.DOMAIN TXT-VALUE".
Prints one line per signature ("ok d=... s=..." / "fail ...") and exits
0 only when there is at least one signature and all of them verify."""
import re
import sys

import dkim


def load_records(path):
    recs = {}
    with open(path) as fp:
        for line in fp:
            line = line.rstrip("\n")
            if line:
                name, txt = line.split(" ", 1)
                recs[name.lower().rstrip(".")] = txt.encode()
    return recs


def verify_each(msg, recs):
    """[(d, s, a, c, ok)] for every signature, top first."""
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return recs.get(n.lower().rstrip("."))

    head = msg.split(b"\r\n\r\n", 1)[0]
    nsig = len(re.findall(rb"(?im)^dkim-signature:", head))
    d = dkim.DKIM(msg)
    out = []
    for i in range(nsig):
        try:
            good = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            print("fail: %s" % e)
            good = False
        sig = dict(d.signature_fields) if d.signature_fields else {}
        out.append(tuple(sig.get(t, b"?").decode() for t in
                         (b"d", b"s", b"a", b"c")) + (bool(good),))
    return out


def verify_all(msg, recs):
    res = verify_each(msg, recs)
    for d, s, a, c, good in res:
        print("%s d=%s s=%s a=%s c=%s" % ("ok" if good else "fail", d, s,
                                           a, c))
    return len(res) > 0 and all(r[-1] for r in res)


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as fp:
        m = fp.read()
    sys.exit(0 if verify_all(m, load_records(sys.argv[2])) else 1)
