/* SPDX-License-Identifier: ISC */
/*
 * queue.h - the durable message queue: the only header other modules
 * include (queue/*.c are the only includers of lmdb.h).
 *
 * DESIGN. One committer thread is the only LMDB writer. Every request
 * (new messages now; delivery results and operator actions later) is a
 * chan message sent to it with queue_submit(). It drains everything
 * waiting into one write transaction, commits it with one sync (group
 * commit), and only then hands each request back, with its status, on the
 * request's own reply chan. That is how "250 only after the commit is on
 * disk" stays cheap under load. Readers (mta queue list/show/stats,
 * recovery) use short read transactions and never block the committer.
 *
 * A failed commit (map full, disk full, I/O error) aborts the whole
 * transaction: every request in that batch gets the error and nothing of
 * it is on disk.
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
	struct chan_msg msg; /* first: type QUEUE_REQ_SUBMIT, reqid = caller's */
	struct chan *reply;  /* where the committer sends it back */
	uint64_t id;         /* from queue_id_new(); also in the Received header */
	char *from;          /* envelope sender, without <>; "" for <> */
	char **rcpts;        /* envelope recipients, without <> */
	size_t nrcpts;
	char *user;          /* authenticated user, or NULL */
	char *client;        /* client address text, e.g. "127.0.0.1" */
	char *helo;          /* HELO/EHLO name */
	uint64_t received_ms;/* wall clock, when DATA ended */
	struct buf body;     /* Received header + message, CRLF, unstuffed */
	int status;          /* set by the committer: 0, -ENOSPC, -EIO */
};

/* Free a submit request and everything it owns. Takes NULL. */
void queue_submit_free(struct queue_submit *s);

/*
 * queue_open - open (creating if needed) the environment at cfg->path.
 * readonly: for `mta queue` readers; no committer may be started.
 * Returns 0, or negative errno with a reason written to err.
 */
int queue_open(const struct config_queue *cfg, bool readonly,
    struct queue **out, char *err, size_t errlen) MTA_MUST_CHECK;

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

/* Number of messages in the queue (a read transaction). */
int queue_count(struct queue *q, uint64_t *n) MTA_MUST_CHECK;

#endif
