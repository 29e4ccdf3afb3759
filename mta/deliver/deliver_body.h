/* SPDX-License-Identifier: ISC */
/*
 * deliver_body.h - private to mta/deliver/: a job's message body, read
 * from the queue in chunks, under delivery's global budget of body bytes
 * ([delivery] max_inflight, all workers). A job holds one chunk buffer of
 * at most DELIVER_BODY_CHUNK bytes, whatever the message size.
 *
 * Thread: the delivery worker thread that runs the job (the budget is
 * an atomic in struct deliver).
 */
#ifndef MTA_DELIVER_BODY_H
#define MTA_DELIVER_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compat.h"

struct deliver;

/* The caller embeds it; zeroed = closed. */
struct dbody {
	struct deliver *d;
	uint64_t id;
	uint64_t total; /* bytes of the stored message */
	uint8_t *chunk; /* cap bytes, reserved from the budget */
	size_t cap;
	uint64_t off; /* where chunk's len bytes start */
	size_t len;
	int err; /* the last read error, 0 = none */
};

/*
 * dbody_open - find message id's body and reserve its chunk buffer
 * against the budget, which is max bytes (the caller's [delivery]
 * max_inflight: a reload changes it for the next reservation). Returns 0
 * (dbody_close() it), -EAGAIN when the budget is spent (try again after
 * some is released; b stays closed), or -ENOENT / -EIO (b stays closed).
 */
int dbody_open(struct dbody *b, struct deliver *d, uint64_t id,
    uint64_t max) MTA_MUST_CHECK;

/* Does the body hold a byte over 127 (BODY=8BITMIME)? Reads it chunk by
 * chunk, up to the first such byte. 0 or a read error. */
int dbody_has_8bit(struct dbody *b, bool *yes) MTA_MUST_CHECK;

/* The smtp_out_job body_peek for arg = the struct dbody: the bytes at
 * off, from the chunk at hand or read into it. NULL on a read error
 * (then in b->err). */
const uint8_t *dbody_peek(void *arg, size_t off, size_t *n);

/* Free the chunk and give its bytes back to the budget. Takes a closed
 * one. */
void dbody_close(struct dbody *b);

#endif
