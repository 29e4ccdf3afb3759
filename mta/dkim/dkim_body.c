/* SPDX-License-Identifier: ISC */
/*
 * dkim_body.c - body canonicalization as a stream (RFC 6376 3.4.3 simple,
 * 3.4.4 relaxed), feeding a sink (the body hash) in 4 KiB runs.
 *
 * Both forms drop the empty lines at the end of the body, which a stream
 * cannot see until it ends: an empty line is only counted, and the count
 * is written out as CRLFs when a line with content follows. Relaxed also
 * turns every run of blanks into one SP and drops blanks at the end of a
 * line, so blanks are held as one flag until a non-blank follows. A CR
 * at the end of a slice waits for the next slice to say whether it ends
 * a line. A body without a final CRLF gets one; an empty body is CRLF
 * in simple and nothing in relaxed (RFC 6376 errata 3133).
 *
 * Runs on the caller's thread; no state outside struct dkim_body.
 */
#include "dkim/dkim_int.h"

#include <string.h>

void
dkim_body_init(
    struct dkim_body *b, enum dkim_canon c, dkim_sink_fn *sink, void *arg)
{
	memset(b, 0, offsetof(struct dkim_body, out));
	b->canon = c;
	b->sink = sink;
	b->arg = arg;
}

static void
body_flush(struct dkim_body *b)
{
	if (b->n > 0)
		b->sink(b->arg, b->out, b->n);
	b->n = 0;
}

static inline void
body_put(struct dkim_body *b, uint8_t c)
{
	if (b->n == sizeof(b->out))
		body_flush(b);
	b->out[b->n++] = c;
	b->any = true;
}

/* The held empty lines were not trailing after all. */
static void
body_release(struct dkim_body *b)
{
	for (; b->crlfs > 0; b->crlfs--) {
		body_put(b, '\r');
		body_put(b, '\n');
	}
}

/* One byte of line content (not the CR LF that ends a line). */
static inline void
body_char(struct dkim_body *b, uint8_t c)
{
	if (b->canon == DKIM_RELAXED && (c == ' ' || c == '\t')) {
		b->wsp = true;
		return;
	}
	if (!b->inline_) {
		body_release(b);
		b->inline_ = true;
	}
	if (b->wsp) {
		body_put(b, ' ');
		b->wsp = false;
	}
	body_put(b, c);
}

static void
body_eol(struct dkim_body *b)
{
	b->wsp = false; /* relaxed: blanks at the end of a line go */
	if (b->inline_) {
		body_put(b, '\r');
		body_put(b, '\n');
		b->inline_ = false;
	} else {
		b->crlfs++;
	}
}

void
dkim_body_update(struct dkim_body *b, const void *p, size_t n)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (b->cr) {
			b->cr = false;
			if (c == '\n') {
				body_eol(b);
				continue;
			}
			body_char(b, '\r'); /* a bare CR is content */
		}
		if (c == '\r')
			b->cr = true;
		else
			body_char(b, c);
	}
}

void
dkim_body_final(struct dkim_body *b)
{
	if (b->cr) {
		b->cr = false;
		body_char(b, '\r');
	}
	b->wsp = false;
	if (b->inline_) { /* no final CRLF: one is added */
		body_put(b, '\r');
		body_put(b, '\n');
		b->inline_ = false;
	}
	b->crlfs = 0;
	if (b->canon == DKIM_SIMPLE && !b->any) {
		body_put(b, '\r');
		body_put(b, '\n');
	}
	body_flush(b);
}
