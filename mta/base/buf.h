/* SPDX-License-Identifier: ISC */
/*
 * buf.h - a growable byte buffer with a hard cap.
 *
 * Every buffer gets its maximum at construction; growth past it fails with
 * -ENOBUFS and leaves the buffer unchanged. Data is (ptr, len): it may hold
 * NUL. Consumed bytes are dropped from the front lazily (off), so consuming
 * a line is O(1); buf_compact() moves the rest down when convenient.
 *
 * Pointers into data are valid until the next call that may grow or
 * compact the buffer (append, reserve, compact, fini).
 */
#ifndef MTA_BASE_BUF_H
#define MTA_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

struct buf {
	uint8_t *data;
	size_t off; /* bytes consumed from the front */
	size_t len; /* bytes stored, including consumed ones */
	size_t cap; /* bytes allocated */
	size_t max; /* hard cap on len - off + appended, bytes */
};

void buf_init(struct buf *b, size_t max);
void buf_fini(struct buf *b);
/* Forget everything; keeps the allocation. */
void buf_reset(struct buf *b);

static inline const uint8_t *
buf_peek(const struct buf *b)
{
	return b->data + b->off;
}

static inline size_t
buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

/* 0, or -ENOBUFS when the result would exceed max. */
int buf_append(struct buf *b, const void *p, size_t n) MTA_MUST_CHECK;
int buf_appendf(struct buf *b, const char *fmt, ...)
    MTA_PRINTF(2, 3) MTA_MUST_CHECK;
/* Make room for n more bytes; returns a pointer to write them, then
 * buf_commit(b, n). NULL when over max. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
/* Drop n bytes from the front (n <= buf_avail). */
void buf_consume(struct buf *b, size_t n);
void buf_compact(struct buf *b);
/* Move the storage out: *data owns it (caller frees); b is left empty. */
uint8_t *buf_take(struct buf *b, size_t *len);

#endif
