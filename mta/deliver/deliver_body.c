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
 * can never wait for ever. A converted (7-bit) copy is the exception:
 * the conversion needs the whole message, so it is made in memory, only
 * for a host that does not offer 8BITMIME, and counted while held.
 *
 * Thread: the worker thread running the job; the budget is atomic.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_body.h"
#include "deliver/deliver_int.h"
#include "smtp/mime_7bit.h"
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

/* Read the whole message and convert it; only a read error fails. */
static int
conv_make(struct dbody *b)
{
	struct buf in, out;
	int rc;

	buf_init(&in, (size_t)b->total);
	if ((rc = queue_body_get(b->d->q, b->id, &in)) != 0) {
		buf_fini(&in);
		return rc == -ENOBUFS ? -EIO : rc;
	}
	buf_init(&out, mime_7bit_bound(buf_avail(&in)));
	b->conv_st = mime_7bit_convert(buf_peek(&in), buf_avail(&in), &out);
	buf_fini(&in);
	if (b->conv_st == MIME_7BIT_OK) {
		b->conv = buf_take(&out, &b->conv_len);
		atomic_fetch_add(&b->d->body_inflight, b->conv_len);
	}
	buf_fini(&out);
	b->conv_done = true;
	return 0;
}

int
dbody_7bit(void *arg, const uint8_t **body, size_t *len, const char **why)
{
	struct dbody *b = arg;
	int rc;

	if (!b->conv_done && (rc = conv_make(b)) != 0)
		return rc;
	if (b->conv_st != MIME_7BIT_OK) {
		*why = mime_7bit_reason(b->conv_st);
		return 1;
	}
	*body = b->conv;
	*len = b->conv_len;
	return 0;
}

void
dbody_close(struct dbody *b)
{
	if (b->chunk == NULL)
		return;
	atomic_fetch_sub(&b->d->body_inflight, b->cap + b->conv_len);
	free(b->conv);
	free(b->chunk);
	*b = (struct dbody){0};
}
