/* SPDX-License-Identifier: ISC */
/*
 * queue.h - the durable message queue: the only header other modules
 * include (only the .c files in queue/ include lmdb.h).
 *
 * DESIGN. One committer thread is the only LMDB writer. Every request
 * is a chan message sent to it: a new message (queue_submit()), a
 * delivery's outcomes (queue_submit_update()) or an operator action
 * (queue_submit_ctl()). It drains everything
 * waiting into one write transaction, commits it with one sync (group
 * commit), and only then hands each request back, with its status, on the
 * request's own reply chan. That is how "250 only after the commit is on
 * disk" stays cheap under load. Readers (mta queue list/show/stats,
 * recovery) use short read transactions and never block the committer.
 *
 * A failed commit (map full, disk full, I/O error) aborts the whole
 * transaction: nothing of it is on disk. Disk full is -ENOSPC (also when
 * LMDB saw it as a short write), an I/O error -EIO. An I/O error (a failed sync) is
 * given to every request of the batch. Any other failure (map or disk
 * full) is retried one request per transaction, so that one oversized
 * message does not fail the small ones batched with it; each request gets
 * its own status. Nothing is ever half-written.
 *
 * Databases: "msgs" (id -> versioned envelope with per-recipient state)
 * and "bodies" (id -> raw message bytes). Ids are 64-bit, unique and
 * increasing, shown as 16 lowercase hex digits.
 */
#ifndef MTA_QUEUE_H
#define MTA_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/compat.h"
#include "config/config.h"

#define QUEUE_ID_HEX 16 /* characters in a printed id */

struct queue;

/* chan message types this module sends and receives. */
enum queue_msg_type {
	QUEUE_REQ_SUBMIT = 0x100, /* struct queue_submit, to the committer */
	QUEUE_DONE_SUBMIT,        /* the same struct, back on its reply chan */
};

/* A new message, built by the receive stage. */
struct queue_submit {
	struct chan_msg
	    msg;            /* first: type QUEUE_REQ_SUBMIT, reqid = caller's */
	struct chan *reply; /* where the committer sends it back */
	uint64_t id;  /* from queue_id_new(); also in the Received header */
	char *from;   /* envelope sender, without <>; "" for <> */
	char **rcpts; /* envelope recipients, without <> */
	size_t nrcpts;
	char *user;           /* authenticated user, or NULL */
	char *client;         /* client address text, e.g. "127.0.0.1" */
	char *helo;           /* HELO/EHLO name */
	uint64_t received_ms; /* wall clock, when DATA ended */
	struct buf body;      /* Received header + message, CRLF, unstuffed */
	int status;           /* set by the committer: 0, -ENOSPC, -EIO */
	/* DSN (RFC 3461; additive): envid and each orcpts[i] as xtext as
	 * the client sent them, NULL = not given; ret QUEUE_RET_*. notify
	 * and orcpts: NULL, or nrcpts entries (QUEUE_NOTIFY_* bits). */
	char *envid;
	uint8_t ret;
	uint8_t *notify;
	char **orcpts;
};

/* Free a submit request and everything it owns. Takes NULL. */
void queue_submit_free(struct queue_submit *s);

/*
 * queue_open - open (creating if needed) the environment at cfg->path.
 * readonly: for `mta queue` readers; no committer may be started.
 * The writer creates the directory (0700) if missing, frees reader slots
 * of dead processes, checks every stored record and logs
 * `event=recovered messages=N pending_rcpts=M`; a reader creates nothing
 * (-ENOENT when there is no queue yet). One open per path per process.
 * Returns 0, or negative errno with a reason written to err.
 */
int queue_open(const struct config_queue *cfg, bool readonly,
    struct queue **out, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * queue_path_check - can a writer use cfg->path: a directory it may read,
 * write and enter (and its data.mdb, when there is one, read and write),
 * or, when missing, one its nearest existing parent lets it create.
 * Touches nothing. queue_open (writer) runs it first; `mta check-config`
 * runs it alone. 0, or negative errno with "PATH: reason" in err.
 */
int queue_path_check(
    const struct config_queue *cfg, char *err, size_t errlen) MTA_MUST_CHECK;

/* Stop the committer (after it commits what it was sent) and close. */
void queue_close(struct queue *q);

/* Start the committer thread. Startup only. */
int queue_start(struct queue *q) MTA_MUST_CHECK;

/* A new unique id; any thread. Increasing, and greater than every id
 * already in the queue. */
uint64_t queue_id_new(struct queue *q);

/* Render id as 16 lowercase hex digits + NUL into out[17]. */
void queue_id_fmt(uint64_t id, char out[QUEUE_ID_HEX + 1]);
/* Parse 16 hex digits; 0 or -EINVAL. */
int queue_id_parse(const char *s, uint64_t *id) MTA_MUST_CHECK;

/* Hand a request to the committer; any thread. Ownership passes to the
 * queue until it comes back on req->reply. Never blocks. */
void queue_submit(struct queue *q, struct queue_submit *req);

/*
 * queue_room_check - is there room for a new message of size bytes (the
 * SIZE the client declared; 0 when it did not)? The receive stage asks
 * at MAIL and again before 354. -ENOSPC (reply 452 4.3.1) when the
 * queue's filesystem would keep less than max([queue] min_free_space,
 * 1.5 x max_size) + size free, or when the map has no room for new mail
 * (its headroom, queue_space.c); else 0. max_size: the largest message
 * the caller accepts (max_message_size). Cheap: the measure behind it is
 * shared for about a second (queue_room.c). Any thread, once the queue
 * is open for writing; logs event=queue-storage-low/-ok when the answer
 * flips.
 */
int queue_room_check(
    struct queue *q, uint64_t size, uint64_t max_size) MTA_MUST_CHECK;

/* Number of messages in the queue (a read transaction). */
int queue_count(struct queue *q, uint64_t *n) MTA_MUST_CHECK;

/*
 * Stored records (added with the durable queue; additive). Plain value
 * types: delivery and the scheduler read and update them. A decoded
 * envelope owns every string and the rcpts array (queue_envelope_fini).
 */
enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0, /* not yet delivered; retried when due */
	QUEUE_RCPT_DELIVERED,   /* remote 2xx */
	QUEUE_RCPT_FAILED,      /* 5xx or expired; bounced (or not, for <>) */
	QUEUE_RCPT_NSTATES
};

/* DSN parameters (RFC 3461), as the client gave them. */
#define QUEUE_RET_NONE 0 /* RET not given: headers only, as ever */
#define QUEUE_RET_FULL 1
#define QUEUE_RET_HDRS 2

#define QUEUE_NOTIFY_SUCCESS 0x1u
#define QUEUE_NOTIFY_FAILURE 0x2u
#define QUEUE_NOTIFY_DELAY   0x4u
#define QUEUE_NOTIFY_NEVER   0x8u /* 0 = NOTIFY not given */

#define QUEUE_FLAG_HELD   0x1u /* operator hold: nothing is attempted */
#define QUEUE_FLAG_WARNED 0x2u /* the delay warning DSN was queued */

struct queue_rcpt {
	char *addr;        /* envelope recipient, without <> */
	uint8_t state;     /* enum queue_rcpt_state */
	uint32_t attempts; /* delivery attempts made */
	uint64_t next_ms;  /* wall ms of the next attempt (pending only) */
	char *reply;       /* last remote reply or local reason; "" = none */
	uint8_t notify;    /* QUEUE_NOTIFY_* bits; 0 = not given */
	char *orcpt;       /* ORCPT "type;xtext" as given; "" or NULL = none */
};

struct queue_envelope {
	uint64_t id;
	uint64_t received_ms; /* wall clock, when DATA ended */
	uint64_t size;        /* bytes of the stored body */
	uint32_t flags;       /* QUEUE_FLAG_*; unknown bits are kept */
	char *from;           /* envelope sender without <>; "" for <> */
	char *user;           /* authenticated user; "" = none */
	char *client;         /* client address text */
	char *helo;           /* HELO/EHLO name */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
	char *envid; /* DSN ENVID as given (xtext); "" or NULL = none */
	uint8_t ret; /* QUEUE_RET_* */
};

/* Version 2 adds the DSN fields; an envelope without any is still
 * written as version 1, and both versions decode. */
#define QUEUE_RECORD_VERSION 2
#define QUEUE_RECORD_MAX     (4u << 20) /* bytes, encoded envelope cap */

/* Free what a decoded envelope owns (not env itself); env is zeroed.
 * Takes NULL. */
void queue_envelope_fini(struct queue_envelope *env);

/*
 * queue_envelope_encode - append the versioned record for env to out
 * (strings must not contain NUL; they are borrowed). Returns 0, -ENOBUFS
 * when out's max (or QUEUE_RECORD_MAX) is exceeded, or -EINVAL for an
 * invalid state. Pure; any thread.
 */
int queue_envelope_encode(
    const struct queue_envelope *env, struct buf *out) MTA_MUST_CHECK;

/*
 * queue_envelope_decode - parse exactly len bytes at p into *env, which
 * then owns copies of everything (queue_envelope_fini; every string is
 * set, "" for a field version 1 did not have). Strict: an unknown
 * version, a truncated field, an embedded NUL, an unknown recipient state
 * or trailing bytes give -EBADMSG, and *env is left zeroed. Pure; any
 * thread; safe on hostile input (fuzzed).
 */
int queue_envelope_decode(
    const uint8_t *p, size_t len, struct queue_envelope *env) MTA_MUST_CHECK;

/* Keys are the id as 8 big-endian bytes, so cursor order is age order. */
void queue_key_put(uint8_t key[8], uint64_t id);
uint64_t queue_key_get(const uint8_t key[8]);

/*
 * Reading (any thread, any process: `mta queue` opens the relay's
 * environment read-only). Each call uses its own short read
 * transactions; none is held while callbacks run.
 */

/* Called once per envelope, in id (= age) order. env is borrowed for the
 * call only. Return 0 to go on; anything else stops the scan and is
 * returned by queue_scan(). */
typedef int queue_scan_fn(void *arg, const struct queue_envelope *env);

/*
 * queue_scan - visit every envelope with id >= start (0: all). Records
 * are read in batches, one short read transaction per batch, so scanning
 * a million messages never pins old pages for long; a record that fails
 * to decode is logged and skipped. Returns 0, fn's nonzero return, or a
 * negative errno.
 */
int queue_scan(struct queue *q, uint64_t start, queue_scan_fn *fn,
    void *arg) MTA_MUST_CHECK;

/* One envelope into *env (queue_envelope_fini it). 0, -ENOENT, -EBADMSG
 * (corrupt record) or -EIO. */
int queue_envelope_get(
    struct queue *q, uint64_t id, struct queue_envelope *env) MTA_MUST_CHECK;

/* Append the stored message bytes of id to out, exactly. 0, -ENOENT,
 * -ENOBUFS (over out's max; out unchanged) or -EIO. */
int queue_body_get(
    struct queue *q, uint64_t id, struct buf *out) MTA_MUST_CHECK;

/*
 * queue_body_read - copy at most len bytes of the stored message id,
 * from offset off, into dst (a ranged read, so that a reader holds a
 * chunk of a large body rather than all of it; added for delivery).
 * *total (out, may be NULL) gets the body's whole size. Returns the
 * bytes copied (0 at or past the end, or when len is 0), -ENOENT or
 * -EIO. Any thread; one short read transaction per call. A stored body
 * never changes, so successive calls see one message (or -ENOENT once
 * it is deleted).
 */
ssize_t queue_body_read(struct queue *q, uint64_t id, uint64_t off, void *dst,
    size_t len, uint64_t *total) MTA_MUST_CHECK;

/* Counters of the committer, for tests and metrics; any thread. */
struct queue_stats {
	uint64_t commits; /* write transactions committed */
	uint64_t done;    /* requests committed with status 0 */
	uint64_t failed;  /* requests answered with an error */
};

void queue_stats_get(struct queue *q, struct queue_stats *st);

/*
 * Delivery's side of the queue (added with delivery; additive).
 *
 * New-message notes: once a submitted message is committed, the committer
 * sends a struct queue_note (type QUEUE_NOTE_NEW) holding a copy of its
 * envelope to the listener chan, so the scheduler learns of it without
 * reading it back. The listener owns each note (queue_note_free).
 *
 * Updates: the scheduler's decisions for some recipients of one message
 * (delivered, failed, or pending with the next attempt time) go to the
 * committer as one struct queue_update (QUEUE_REQ_UPDATE) and come back,
 * committed, as QUEUE_DONE_UPDATE. When no recipient is left pending the
 * message and its body are removed in the same transaction (`removed`).
 * An update for a message that is gone (deleted by an operator) succeeds
 * and changes nothing.
 */
enum queue_msg_type_delivery {
	QUEUE_NOTE_NEW = 0x110,
	QUEUE_REQ_UPDATE,
	QUEUE_DONE_UPDATE,
};

struct queue_note {
	struct chan_msg msg;       /* first: QUEUE_NOTE_NEW */
	struct queue_envelope env; /* owned by the note */
};

void queue_note_free(struct queue_note *n);

/* Where notes go (NULL: nowhere). Before queue_start(), or after
 * delivery has stopped; not while the committer may be sending. */
void queue_listen(struct queue *q, struct chan *c);

struct queue_update_rcpt {
	uint32_t idx;  /* recipient index in the envelope */
	uint8_t state; /* enum queue_rcpt_state */
	uint32_t attempts;
	uint64_t next_ms;  /* wall ms, pending only */
	const char *reply; /* borrowed until the update comes back */
};

struct queue_update {
	struct chan_msg msg; /* first: type set by queue_submit_update() */
	struct chan *reply;  /* where it comes back */
	void *arg;           /* caller's, untouched */
	uint64_t id;
	size_t n;
	struct queue_update_rcpt *rcpts; /* borrowed until it comes back */
	int status;                      /* out: 0 or negative errno */
	bool removed;                    /* out: the message left the queue */
	/*
	 * Bounces (added with DSNs; additive). bounce: NULL, or a new
	 * message (a DSN: from "", one recipient) inserted in the same
	 * transaction as the outcomes it reports, so a failure is never
	 * on disk without its bounce; once committed it is announced with
	 * QUEUE_NOTE_NEW like any new message. It is inserted even when
	 * the map is near full (the submit headroom is for new mail; a
	 * bounce comes with the removal of what it reports), and not at
	 * all when the message is gone (deleted by an operator). If it
	 * cannot be inserted, the whole update fails and nothing of it is
	 * written. Owned by the sender; borrowed until the update comes
	 * back. set_flags: QUEUE_FLAG_* bits set in the envelope in the
	 * same transaction (QUEUE_FLAG_WARNED with a delay warning).
	 */
	struct queue_submit *bounce;
	uint32_t set_flags;
	int bounce_status; /* out: 0 inserted, -ENOENT message gone (not
				 inserted), or the update's error */
};

/* Hand an update to the committer; any thread, never blocks. */
void queue_submit_update(struct queue *q, struct queue_update *u);

/* Append at most max leading bytes of the stored message id to out (its
 * header section, for a DSN, without copying a large body). 0, -ENOENT,
 * -ENOBUFS (over out's max; out unchanged) or -EIO. Any thread; one
 * short read transaction. */
int queue_body_head(
    struct queue *q, uint64_t id, struct buf *out, size_t max) MTA_MUST_CHECK;

/*
 * Operator actions (added with the control socket; additive). Each
 * request names some messages and comes back, committed, with a status
 * per id. QUEUE_REQ_DELETE removes each message and its body; an id that
 * is not queued gets -ENOENT. QUEUE_REQ_FLAGS sets the bits in `set`,
 * then clears those in `clear`, in each envelope (QUEUE_FLAG_HELD: hold
 * and release), and, when due_ms is not 0, makes every pending recipient
 * of a message that is not held due by due_ms (an operator's retry);
 * -ENOENT likewise, -EBADMSG for a corrupt record (left as it is). When
 * the commit itself fails, every id that had succeeded gets the commit's
 * error instead: nothing of the request is on disk.
 */
enum queue_msg_type_ctl {
	QUEUE_REQ_DELETE = 0x120,
	QUEUE_REQ_FLAGS,
	QUEUE_DONE_DELETE,
	QUEUE_DONE_FLAGS,
};

struct queue_ctl {
	struct chan_msg msg; /* first: type set by queue_submit_ctl() */
	struct chan *reply;  /* where it comes back */
	void *arg;           /* caller's, untouched */
	const uint64_t *ids; /* borrowed until it comes back */
	size_t n;
	uint32_t set, clear; /* QUEUE_REQ_FLAGS: QUEUE_FLAG_* bits */
	uint64_t due_ms;     /* QUEUE_REQ_FLAGS: wall ms, or 0 (additive) */
	int *status;         /* n entries, out: 0 or negative errno */
	/* QUEUE_REQ_DELETE (an operator's bounce; additive): NULL, or n
	 * entries, each NULL or the DSN (a new message) that id's removal
	 * causes, inserted in the same transaction (neither without the
	 * other) and announced once committed. Owned by the sender. */
	struct queue_submit *const *bounces;
};

/* Hand an operator request (type: QUEUE_REQ_DELETE or QUEUE_REQ_FLAGS)
 * to the committer; any thread, never blocks. It comes back on c->reply
 * as QUEUE_DONE_DELETE or QUEUE_DONE_FLAGS. */
void queue_submit_ctl(struct queue *q, struct queue_ctl *c, uint16_t type);

/* The LMDB version linked, for `mta version`. Static string. */
const char *queue_library_version(void);

#endif
