# SPDX-License-Identifier: ISC
"""
The queue's map is nearly full: new mail is refused with `452 4.3.1`
before LMDB itself runs out of pages (queue/queue_space.c keeps a
headroom; queue/queue_room.c refuses at MAIL once the map has no room
left for new mail, so it may come there), the SMTP session stays usable, and once the destination comes
back, deliveries (which need pages to record their results and remove
messages) go on, space frees, and new mail is accepted again.
"""
import re
import time

from conftest import (BUILD, LOOPBACK, check_reply, dot_stuff, free_port,
                      make_message, queued_id, send_message)
from smtp_servers import MtaSink, wait_until

MAX_SUBMITS = 5000  # far more than a 1M map holds (about 600)


def _msgid(msg):
    m = re.search(rb"^Message-ID: (<[^>]+>)\r$", msg, re.M)
    assert m, msg
    return m.group(1).decode()


def _submit(c, msg):
    """One message; the reply that ends it: a refusal at MAIL (the map
    has no room left: queue_room.c), or the final reply after DATA."""
    r = c.cmd("MAIL FROM:<a@example.org>")
    if r.code != 250:
        return r
    check_reply(c.cmd("RCPT TO:<someone@dest.test>"), 250, None, None, c)
    check_reply(c.cmd("DATA"), 354, None, None, c)
    c.send(dot_stuff(msg))
    return c.read_reply(timeout=60)


def _fill(c, accepted):
    """Submit until the relay refuses with 452 4.3.1; returns that reply.
    accepted: {queue id: Message-ID} of every 250."""
    for n in range(MAX_SUBMITS):
        msg = make_message(f"fill {n}", ["x" * 200] * 2,
                           rcpt="someone@dest.test")
        r = _submit(c, msg)
        if r.code != 250:
            return r
        accepted[queued_id(r, c)] = _msgid(msg)
    raise AssertionError(f"{MAX_SUBMITS} messages accepted by a 1M map")


def test_map_full_headroom_then_drain(relay_factory, tmp_path):
    sink_port = free_port()  # the destination: nothing listens yet (down)
    relay = relay_factory({
        "queue": {"map_size": "1M", "retry": "1s"},
        "route *": {"host": f"[{LOOPBACK}]:{sink_port}"},
        "delivery": {"connect_timeout": "2s"},
    })
    accepted = {}
    with relay.client(timeout=30) as c:
        c.ehlo()
        r = _fill(c, accepted)
        check_reply(r, 452, "4.3.1", None, c)
        assert len(accepted) > 50, f"only {len(accepted)} accepted"
        # The session is still usable after the refusal.
        check_reply(c.cmd("RSET"), 250, None, None, c)
        check_reply(c.cmd("NOOP"), 250, None, None, c)
        # Still full: the next one is refused the same way.
        r = _submit(c, make_message("still full"))
        check_reply(r, 452, "4.3.1", None, c)
        check_reply(c.cmd("QUIT"), 221, None, None, c)

    # A new session is fine too; nothing half-written: the queue holds
    # exactly the accepted messages.
    with relay.client() as c:
        c.ehlo()
        check_reply(c.cmd("QUIT"), 221, None, None, c)
    assert sorted(relay.queue_ids()) == sorted(accepted)
    log = relay.stderr_text()
    # the committer's refusal, or the one at MAIL (queue_room.c)
    assert ("event=queue-full" in log
            or "event=queue-storage-low" in log), log[-3000:]
    # Deferrals were recorded meanwhile (updates got pages past the
    # headroom); nothing failed to commit.
    wait_until(lambda: "event=deferred" in relay.stderr_text(), 20,
               "a deferral while the destination is down")
    assert "event=update-failed" not in relay.stderr_text()

    # The destination comes up: everything is delivered, the queue empties.
    sink = MtaSink(BUILD, LOOPBACK, sink_port, tmp_path / "sink.jsonl")
    sink.start()
    try:
        want = set(accepted.values())
        wait_until(lambda: want <= {r.get("message_id") for r in sink.records()},
                   90, "every accepted message at the sink")
        wait_until(lambda: not relay.queue_ids(), 30, "an empty queue")
        # Space is free again: new mail is accepted.
        with relay.client(timeout=30) as c:
            c.ehlo()
            for n in range(20):
                msg = make_message(f"after {n}", rcpt="someone@dest.test")
                queued_id(send_message(c, msg, rcpts=("someone@dest.test",)),
                          c)
            check_reply(c.cmd("QUIT"), 221, None, None, c)
        log = relay.stderr_text()
        assert ("event=queue-space-ok" in log
                or "event=queue-storage-ok" in log), log[-3000:]
        assert "event=update-failed" not in relay.stderr_text(), (
            relay.stderr_text()[-3000:])
        wait_until(lambda: not relay.queue_ids(), 30, "the new mail delivered")
    finally:
        sink.stop()
        relay.stop()
