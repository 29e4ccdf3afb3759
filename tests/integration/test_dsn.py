# SPDX-License-Identifier: ISC
"""
DSN (RFC 3461) end to end: a live `mta serve` takes RET, ENVID, NOTIFY
and ORCPT, passes them on to a next hop that offers DSN (a recording
SMTPServer with dsn=True), leaves them out for one that does not, and
honours them in the notices it sends back to the sender's own MX: no
bounce for NOTIFY=NEVER, a "relayed" notice for NOTIFY=SUCCESS to a host
without DSN, headers only for RET=HDRS and the whole message for
RET=FULL, ENVID and ORCPT in the report. Bad parameters get 501 5.5.4.

Uses test_bounce.py's world (DNS, destination servers, relay); run
inside a network namespace with only loopback, as tests/run.sh does.
"""
import email
import email.policy
import time

import pytest

from conftest import queued_id
from smtp_servers import rcpt_table, wait_until
from test_bounce import (DEST_MX, ORIGIN_MX, SENDER, WAIT, check_raw, dsns,
                         events, message, unfold, wait_dsns, world)

assert world  # the fixture, imported for pytest

BODY_MARK = b"the body"


def submit_dsn(relay, mail_params, rcpts, msg):
    """One message with DSN parameters: rcpts is [(addr, params)]."""
    with relay.client() as c:
        ehlo = c.ehlo()
        assert "DSN" in ehlo.lines, ehlo
        c.cmd(f"MAIL FROM:<{SENDER}> {mail_params}".rstrip())
        for addr, params in rcpts:
            r = c.cmd(f"RCPT TO:<{addr}> {params}".rstrip())
            assert r.code == 250, (addr, params, r)
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(msg + b".\r\n")
        qid = queued_id(c.read_reply(timeout=60), c)
        c.cmd("QUIT")
    return qid


def dsn_params(params):
    """The DSN parameters among MAIL/RCPT parameters, upper-cased keys."""
    out = []
    for p in params.split():
        k, _, v = p.partition("=")
        if k.upper() in ("RET", "ENVID", "NOTIFY", "ORCPT"):
            out.append(f"{k.upper()}={v}")
    return " ".join(out)


def parts_of(dsn):
    """(text, per-message block, per-recipient blocks, third part)."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = dsn.get_payload()
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    return parts[0].get_payload(), blocks[0], blocks[1:], parts[2]


def test_params_round_trip_to_dsn_peer(world):
    dest = world.server(DEST_MX, dsn=True)
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("dsn round trip")
    submit_dsn(relay, "RET=HDRS ENVID=QQ+2B1", [
        ("a@dest.test", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40orig.test"),
        ("b@dest.test", ""),
        ("c@dest.test", "NOTIFY=NEVER"),
        ("d@dest.test", "notify=delay"),
    ], msg)

    wait_until(lambda: dest.message_count() == 1, WAIT, "the delivery")
    (txn,) = dest.snapshot()["transactions"]
    assert dsn_params(txn["params"]) == "RET=HDRS ENVID=QQ+2B1"
    got = {a: dsn_params(p) for a, p in txn["rcpts_params"]}
    assert got == {
        "a@dest.test": "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40orig.test",
        "b@dest.test": "",
        "c@dest.test": "NOTIFY=NEVER",
        "d@dest.test": "NOTIFY=DELAY",
    }
    # the next hop offers DSN and was handed NOTIFY=SUCCESS: it reports
    # the delivery itself, so nothing comes from us
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    time.sleep(1.5)
    assert dsns(origin) == []
    assert events(relay, "relay-notified") == []


def test_params_left_out_for_peer_without_dsn(world):
    dest = world.server(DEST_MX)  # no DSN
    world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("no dsn here")
    submit_dsn(relay, "RET=FULL ENVID=e1",
               [("a@dest.test", "NOTIFY=FAILURE ORCPT=rfc822;a@dest.test")],
               msg)
    wait_until(lambda: dest.message_count() == 1, WAIT, "the delivery")
    (txn,) = dest.snapshot()["transactions"]
    assert txn["params"].startswith("SIZE=")  # parameters go out...
    assert dsn_params(txn["params"]) == ""  # ...but not these
    assert txn["rcpts_params"] == [("a@dest.test", "")]


def test_success_to_peer_without_dsn_gives_relayed_notice(world):
    world.server(DEST_MX)  # no DSN
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("tell me it went")
    qid = submit_dsn(relay, "ENVID=env+2Bid+0D+0AX-Evil:1", [
        ("ok@dest.test", "NOTIFY=SUCCESS ORCPT=rfc822;orig+2Bx@orig.test"),
        ("quiet@dest.test", ""),
    ], msg)

    (rec, dsn), = wait_dsns(origin, 1, relay)
    check_raw(rec["data"])
    assert rec["from"] == "" and rec["rcpts"] == [SENDER]
    assert dsn["Subject"] == "Successful Mail Delivery Report"
    assert dsn["X-Evil"] is None
    text, per_msg, rcpts, third = parts_of(dsn)
    # "+2B" decodes to "+"; CR LF stay encoded: no field injection
    assert per_msg["Original-Envelope-Id"] == "env+id+0D+0AX-Evil:1"
    assert per_msg["X-Evil"] is None
    (r,) = rcpts  # only the one that asked
    assert unfold(r["Final-Recipient"]) == "rfc822; ok@dest.test"
    assert r["Original-Recipient"] == "rfc822;orig+x@orig.test"
    assert r["Action"] == "relayed"
    assert r["Status"].startswith("2.")
    assert r["Remote-MTA"] == "dns; mx.dest.test"
    assert "ok@dest.test" in text and "quiet@dest.test" not in text
    assert third.get_content_type() == "text/rfc822-headers"
    ev = events(relay, "relay-notified")
    assert len(ev) == 1 and ev[0]["id"] == qid and ev[0]["rcpts"] == "1"
    assert events(relay, "bounced") == []
    time.sleep(1.5)
    assert len(dsns(origin)) == 1


def test_notify_never_sends_no_bounce(world):
    dest = world.server(DEST_MX, rcpt=rcpt_table({
        "never@dest.test": "550 5.1.1 no such user never",
        "dflt@dest.test": "550 5.1.1 no such user dflt",
        "succ@dest.test": "550 5.1.1 no such user succ"}))
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    _, msg = message("never tell")
    qid = submit_dsn(relay, "", [("never@dest.test", "NOTIFY=NEVER")], msg)
    wait_until(lambda: relay.queue_list() == [], WAIT, "an empty queue",
               interval=0.25)
    ev = events(relay, "bounce-suppressed")
    assert any(e["id"] == qid and e["reason"] == "notify" for e in ev), ev
    assert events(relay, "bounced") == []

    # one message, three failed recipients: only the one without NOTIFY
    # (default FAILURE) is reported; NOTIFY=SUCCESS alone does not ask
    # for failures either
    _, msg = message("some tell")
    submit_dsn(relay, "", [("never@dest.test", "NOTIFY=NEVER"),
                           ("dflt@dest.test", ""),
                           ("succ@dest.test", "NOTIFY=SUCCESS")], msg)
    (rec, dsn), = wait_dsns(origin, 1, relay)
    _, _, rcpts, _ = parts_of(dsn)
    assert [unfold(r["Final-Recipient"]) for r in rcpts] == [
        "rfc822; dflt@dest.test"]
    time.sleep(1.5)
    assert len(dsns(origin)) == 1
    assert len(dest.snapshot()["transactions"]) == 2


def test_ret_hdrs_and_full(world):
    world.server(DEST_MX, rcpt=rcpt_table(
        {"gone@dest.test": "550 5.1.1 no such user"}))
    origin = world.server(ORIGIN_MX)
    relay = world.start()
    head, msg = message("return headers")
    submit_dsn(relay, "RET=HDRS ENVID=hdrs-1",
               [("gone@dest.test", "ORCPT=rfc822;Gone+40Orig.test")], msg)
    (rec, dsn), = wait_dsns(origin, 1, relay)
    check_raw(rec["data"])
    _, per_msg, (r,), third = parts_of(dsn)
    assert third.get_content_type() == "text/rfc822-headers"
    assert third.get_payload().encode().endswith(head)
    assert BODY_MARK not in rec["data"]
    assert per_msg["Original-Envelope-Id"] == "hdrs-1"
    assert r["Original-Recipient"] == "rfc822;Gone@Orig.test"
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"

    head, msg = message("return it all")
    submit_dsn(relay, "RET=FULL", [("gone@dest.test", "")], msg)
    wait_dsns(origin, 2, relay)
    rec, dsn = [d for d in dsns(origin) if b"return it all" in d[0]["data"]][0]
    check_raw(rec["data"])
    _, per_msg, (r,), third = parts_of(dsn)
    assert per_msg["Original-Envelope-Id"] is None
    assert r["Original-Recipient"] is None
    assert third.get_content_type() == "message/rfc822"
    (inner,) = third.get_payload()
    assert inner["Subject"] == "return it all"
    assert BODY_MARK in rec["data"]


def test_notify_failure_only_gets_no_delay_warning(world):
    world.server(DEST_MX, rcpt=rcpt_table(
        {"slow@dest.test": "451 4.7.1 not now",
         "slow2@dest.test": "451 4.7.1 not now"}))
    origin = world.server(ORIGIN_MX)
    relay = world.start(queue={"delay_warning": "2s", "max_age": "1h"})
    _, msg = message("no delay notice")
    qid = submit_dsn(relay, "", [("slow@dest.test", "NOTIFY=FAILURE")], msg)
    # the default (no NOTIFY) gets its warning: the control
    _, msg = message("delay notice")
    qid2 = submit_dsn(relay, "", [("slow2@dest.test", "")], msg)
    (rec, dsn), = wait_dsns(origin, 1, relay)
    assert b"delay notice" in rec["data"]
    ev = events(relay, "delay-warned")
    assert [e["id"] for e in ev] == [qid2]
    time.sleep(2.5)
    assert len(dsns(origin)) == 1
    assert qid in relay.queue_ids()


@pytest.mark.parametrize("mail,rcpt", [
    ("RET=NONE", ""),
    ("RET=FULL RET=HDRS", ""),
    ("ENVID=a+2", ""),
    ("ENVID=" + "e" * 101, ""),
    ("", "NOTIFY=NEVER,SUCCESS"),
    ("", "NOTIFY=SUCCESS,SUCCESS"),
    ("", "NOTIFY=SOMETIMES"),
    ("", "NOTIFY=FAILURE NOTIFY=DELAY"),
    ("", "ORCPT=rfc822"),
    ("", "ORCPT=rfc822;a+zz"),
    ("", "ORCPT=rfc822;" + "o" * 494),
])
def test_bad_parameters_501(relay, mail, rcpt):
    with relay.client() as c:
        c.ehlo()
        if mail:
            c.send(f"MAIL FROM:<a@example.org> {mail}\r\n".encode())
            c.expect(501, "5.5.4")
            return
        c.cmd("MAIL FROM:<a@example.org>")
        c.send(f"RCPT TO:<x@example.com> {rcpt}\r\n".encode())
        c.expect(501, "5.5.4")
        # the limits themselves are fine
        r = c.cmd("RCPT TO:<y@example.com> ORCPT=rfc822;" + "o" * 493)
        assert r.code == 250, r
        c.cmd("QUIT")
