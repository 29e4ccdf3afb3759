/* SPDX-License-Identifier: ISC */
/*
 * deliver_body.h - private to mta/deliver/: a job's message body, read
 * from the queue in chunks, under delivery's global budget of body bytes
 * ([delivery] max_inflight, all workers). A job holds one chunk buffer of
 * at most DELIVER_BODY_CHUNK bytes, whatever the message size; the one
 * exception is a message converted to 7 bits for a host without
 * 8BITMIME (dbody_7bit), held whole in memory for that job.
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
	/* the 7-bit form (dbody_7bit), made at most once a job */
	bool conv_done;
	int conv_st;   /* enum mime_7bit_status */
	uint8_t *conv; /* conv_len bytes, counted in the budget */
	size_t conv_len;
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

/*
 * The smtp_out_job body_7bit for arg = the struct dbody: the message
 * converted to 7 bits (mime_7bit.h) for a host without 8BITMIME. The
 * first call reads the whole message into memory (bounded by the message
 * size limit it was accepted under) and converts it; the result, or why
 * it is impossible, serves every later host of the job. The converted
 * copy counts against the budget until dbody_close() (it is never
 * refused: the job holds its chunk already). 0, 1 (impossible: *why) or
 * a read error.
 */
int dbody_7bit(void *arg, const uint8_t **body, size_t *len, const char **why);

/* Free the chunk and the converted copy, and give their bytes back to
 * the budget. Takes a closed one. */
void dbody_close(struct dbody *b);

#endif
