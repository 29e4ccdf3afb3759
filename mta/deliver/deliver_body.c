/* SPDX-License-Identifier: ISC */
/*
 * deliver_body.c - a delivery job's body: ranged reads from the queue
 * into one chunk buffer, and the global budget those buffers are
 * counted against.
 *
 * The budget counts the buffers, not the messages: what a worker holds
 * for a job is one chunk (the whole body when it is smaller), so a
 * 2 GiB message costs DELIVER_BODY_CHUNK like any other. A reservation
 * over the budget fails with -EAGAIN and the worker keeps the job
 * waiting; one that finds the budget unused always succeeds, so a job
 * can never wait for ever.
 *
 * Thread: the worker thread running the job; the budget is atomic.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_body.h"
#include "deliver/deliver_int.h"
#include "queue/queue.h"

static bool
budget_take(struct deliver *d, size_t n, uint64_t max)
{
	uint64_t old = atomic_fetch_add(&d->body_inflight, n);

	if (old == 0 || old + n <= max)
		return true;
	atomic_fetch_sub(&d->body_inflight, n);
	return false;
}

int
dbody_open(struct dbody *b, struct deliver *d, uint64_t id, uint64_t max)
{
	uint64_t total = 0;
	ssize_t rc;
	size_t cap;

	rc = queue_body_read(d->q, id, 0, NULL, 0, &total);
	if (rc < 0)
		return (int)rc;
	cap = total < DELIVER_BODY_CHUNK ? (size_t)total : DELIVER_BODY_CHUNK;
	if (!budget_take(d, cap, max))
		return -EAGAIN;
	*b = (struct dbody){
	    .d = d,
	    .id = id,
	    .total = total,
	    .chunk = xmalloc(cap > 0 ? cap : 1),
	    .cap = cap,
	};
	return 0;
}

const uint8_t *
dbody_peek(void *arg, size_t off, size_t *n)
{
	struct dbody *b = arg;
	ssize_t rc;

	if (off >= b->off && off < b->off + b->len) {
		*n = (size_t)(b->off + b->len - off);
		return b->chunk + (off - b->off);
	}
	rc = queue_body_read(b->d->q, b->id, off, b->chunk, b->cap, NULL);
	if (rc <= 0) {
		/* 0: the body is shorter than it was (it cannot be) */
		b->err = rc < 0 ? (int)rc : -EIO;
		b->len = 0;
		return NULL;
	}
	b->off = off;
	b->len = (size_t)rc;
	*n = b->len;
	return b->chunk;
}

int
dbody_has_8bit(struct dbody *b, bool *yes)
{
	const uint8_t *p;
	size_t n;

	*yes = false;
	for (uint64_t off = 0; off < b->total && !*yes; off += n) {
		if ((p = dbody_peek(b, (size_t)off, &n)) == NULL)
			return b->err;
		*yes = mem_has_8bit(p, n);
	}
	return 0;
}

void
dbody_close(struct dbody *b)
{
	if (b->chunk == NULL)
		return;
	atomic_fetch_sub(&b->d->body_inflight, b->cap);
	free(b->chunk);
	*b = (struct dbody){0};
}
