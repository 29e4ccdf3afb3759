/* SPDX-License-Identifier: ISC */
/*
 * smtp_body.c - message content behind smtp_body.h: the line machine for
 * DATA and BDAT bytes, line-end normalisation, NUL handling, the size
 * limit and the in-flight budget of the body held.
 *
 * Runs on the receive thread that owns the session; no I/O, no lock.
 *
 * DESIGN. A byte machine rather than a line reader: lines of any length
 * stream into the body without being held, and a CR at the end of one read
 * with its LF at the start of the next is one CR LF (the state is kept
 * between calls). Past the header section, whole plain CR LF lines are
 * copied many at once (smtp_parse_plain_lines); the rest goes byte by
 * byte. Every line end is stored as CR LF: for a bare one this is the
 * normalisation, and it is also what reject mode stores before it refuses.
 * "soft" marks a line that began after a bare line end: a "." there never
 * ends DATA (SMTP smuggling), whatever ends the "." line.
 */
#include "smtp/smtp_body.h"

#include <string.h>

#include "base/str.h"
#include "smtp/smtp_parse.h"

#define SMTP_BODY_RESERVE_STEP (64 * 1024) /* budget granularity */
#define SMTP_BODY_FIRST        (16 * 1024) /* buffer at the start */

static const uint8_t crlf[] = "\r\n";

static void
smtp_body_release(struct smtp_body *b)
{
	if (b->reserved > 0 && b->release != NULL)
		b->release(b->arg, b->reserved);
	b->reserved = 0;
}

static bool
smtp_body_reserve(struct smtp_body *b, size_t n)
{
	if (b->reserve != NULL && !b->reserve(b->arg, n))
		return false;
	b->reserved += n;
	return true;
}

void
smtp_body_reset(struct smtp_body *b)
{
	buf_fini(&b->buf);
	smtp_body_release(b);
	b->st = SMTP_BODY_BOL;
	b->soft = b->headers = b->bare = b->nul = false;
	b->longline = b->toobig = b->nobudget = false;
	b->hops = 0;
	b->linelen = b->linestart = b->msgstart = 0;
	b->size = 0;
}

bool
smtp_body_begin(struct smtp_body *b, size_t hdrmax)
{
	smtp_body_reset(b);
	/* Hold a first slice of the budget; the rest grows with the body. */
	if (!smtp_body_reserve(b, SMTP_BODY_RESERVE_STEP))
		return false;
	buf_init(&b->buf,
	    b->max > SIZE_MAX - hdrmax ? SIZE_MAX : (size_t)b->max + hdrmax);
	/* Room for a typical message at once, inside the slice just
	 * reserved: growing from nothing by doubling costs a realloc and a
	 * copy per step. */
	(void)buf_reserve(&b->buf, SMTP_BODY_FIRST);
	return true;
}

void
smtp_body_open(struct smtp_body *b)
{
	size_t hdrlen = buf_avail(&b->buf);

	b->buf.max =
	    b->max > SIZE_MAX - hdrlen ? SIZE_MAX : (size_t)b->max + hdrlen;
	b->linestart = b->msgstart = hdrlen;
	b->headers = true;
	b->st = SMTP_BODY_BOL;
}

/* Drop the body when it cannot be kept; keep counting to the end. */
static void
smtp_body_drop(struct smtp_body *b)
{
	buf_fini(&b->buf);
	smtp_body_release(b);
}

static void
smtp_body_put(struct smtp_body *b, const uint8_t *p, size_t n)
{
	size_t need, grow;

	if (n == 0)
		return;
	if (b->toobig || b->nobudget) {
		b->size += n;
		return;
	}
	if (n > b->max - b->size) {
		b->toobig = true;
		b->size += n;
		smtp_body_drop(b);
		return;
	}
	need = buf_avail(&b->buf) + n;
	if (need > b->reserved) {
		grow = need - b->reserved;
		if (grow < SMTP_BODY_RESERVE_STEP)
			grow = SMTP_BODY_RESERVE_STEP;
		if (!smtp_body_reserve(b, grow)) {
			b->nobudget = true;
			smtp_body_drop(b);
			return;
		}
	}
	if (buf_append(&b->buf, p, n) != 0) {
		b->toobig = true;
		smtp_body_drop(b);
		return;
	}
	b->size += n;
	if (!b->headers && b->tap_body != NULL)
		b->tap_body(b->tap_arg, p, n);
}

/* Message bytes (no line end among them): NULs are noted, or dropped. */
static void
smtp_body_add(struct smtp_body *b, const uint8_t *p, size_t n)
{
	const uint8_t *z;

	while (n > 0 && (z = memchr(p, '\0', n)) != NULL) {
		b->nul = true;
		if (!b->nul_strip)
			break;
		smtp_body_put(b, p, (size_t)(z - p));
		n -= (size_t)(z - p) + 1;
		p = z + 1;
	}
	smtp_body_put(b, p, n);
}

/* A line ended (soft: by a bare LF or CR): store CR LF, check the line
 * and the header section, start the next line. */
static void
smtp_body_eol(struct smtp_body *b, bool soft)
{
	const char *l;
	size_t len;

	if (soft)
		b->bare = true;
	smtp_body_put(b, crlf, 2);
	if (b->linelen + 2 > SMTP_BODY_TEXT_MAX)
		b->longline = true;
	b->linelen = 0;
	b->st = SMTP_BODY_BOL;
	b->soft = soft;
	if (b->toobig || b->nobudget)
		return;
	if (b->headers) {
		l = (const char *)buf_peek(&b->buf) + b->linestart;
		len = buf_avail(&b->buf) - b->linestart;
		if (len == 2) {
			b->headers = false;
			if (b->tap_headers != NULL)
				b->tap_headers(
				    b->tap_arg, b->msgstart, b->linestart);
		} else if (str_iprefix(l, len, "Received:"))
			b->hops++;
	}
	b->linestart = buf_avail(&b->buf);
}

/* Inside a line: text up to a CR or LF, then that line end. */
static size_t
smtp_body_mid(struct smtp_body *b, const uint8_t *p, size_t n)
{
	size_t j;

	for (j = 0; j < n && p[j] != '\r' && p[j] != '\n'; j++)
		;
	smtp_body_add(b, p, j);
	b->linelen += j;
	if (j == n)
		return j;
	if (p[j] == '\r')
		b->st = SMTP_BODY_CR;
	else
		smtp_body_eol(b, true);
	return j + 1;
}

/* At the start of a line; dots: DATA (a leading "." is special). */
static size_t
smtp_body_bol(struct smtp_body *b, const uint8_t *p, size_t n, bool dots)
{
	size_t j;

	/* Past the headers, whole plain lines go in as they are. */
	if (!b->headers &&
	    (j = smtp_parse_plain_lines(p, n, SMTP_BODY_TEXT_MAX)) > 0) {
		smtp_body_add(b, p, j);
		if (!b->toobig && !b->nobudget)
			b->linestart = buf_avail(&b->buf);
		b->soft = false;
		return j;
	}
	if (dots && p[0] == '.') {
		/* Leading dot: stuffing, the end, or a "." line. */
		b->linelen++;
		b->st = SMTP_BODY_DOT;
		return 1;
	}
	b->st = SMTP_BODY_MID;
	return 0;
}

/* A "." line that does not end DATA: it is content. */
static void
smtp_body_dot_line(struct smtp_body *b, bool soft)
{
	smtp_body_add(b, (const uint8_t *)".", 1);
	smtp_body_eol(b, soft);
}

/* One step of the machine at p[0]; returns the bytes used (0: the state
 * changed and p[0] is looked at again). *end: CR LF "." CR LF. */
static size_t
smtp_body_step(
    struct smtp_body *b, const uint8_t *p, size_t n, bool dots, bool *end)
{
	switch (b->st) {
	case SMTP_BODY_BOL:
		return smtp_body_bol(b, p, n, dots);
	case SMTP_BODY_MID:
		return smtp_body_mid(b, p, n);
	case SMTP_BODY_CR:
		if (p[0] == '\n') {
			smtp_body_eol(b, false);
			return 1;
		}
		smtp_body_eol(b, true); /* a lone CR */
		return 0;
	case SMTP_BODY_DOT:
		if (p[0] == '\r') {
			b->st = SMTP_BODY_DOT_CR;
			return 1;
		}
		if (p[0] == '\n') {
			smtp_body_dot_line(b, true);
			return 1;
		}
		b->st = SMTP_BODY_MID; /* the stuffing dot is dropped */
		return 0;
	case SMTP_BODY_DOT_CR:
		if (p[0] != '\n') {
			smtp_body_dot_line(b, true); /* ".\r" + other */
			return 0;
		}
		if (!b->soft) {
			*end = true;
			return 1;
		}
		smtp_body_dot_line(b, false);
		return 1;
	}
	return 0;
}

size_t
smtp_body_data(struct smtp_body *b, const uint8_t *p, size_t n, bool *end)
{
	size_t i = 0;
	bool done = false;

	while (i < n && !done)
		i += smtp_body_step(b, p + i, n - i, true, &done);
	if (done)
		*end = true;
	return i;
}

void
smtp_body_chunk(struct smtp_body *b, const uint8_t *p, size_t n)
{
	size_t i = 0;
	bool done = false;

	while (i < n)
		i += smtp_body_step(b, p + i, n - i, false, &done);
}

void
smtp_body_last(struct smtp_body *b)
{
	if (b->st == SMTP_BODY_CR)
		smtp_body_eol(b, true);
	else if (b->st == SMTP_BODY_MID)
		smtp_body_eol(b, false);
}

enum smtp_body_fault
smtp_body_fault(const struct smtp_body *b)
{
	if (b->bare && b->bare_reject)
		return SMTP_BODY_BARE;
	if (b->nul && !b->nul_strip)
		return SMTP_BODY_NUL;
	if (b->longline)
		return SMTP_BODY_LONGLINE;
	if (b->toobig)
		return SMTP_BODY_TOOBIG;
	if (b->nobudget)
		return SMTP_BODY_NOBUDGET;
	if (b->hops > SMTP_BODY_MAX_HOPS)
		return SMTP_BODY_LOOP;
	return SMTP_BODY_OK;
}
