/* SPDX-License-Identifier: ISC */
/*
 * local_msg.c - the message of a local submission: line ends, the header
 * section, recipients from headers, Bcc removal, the maildrop format.
 * Pure; any thread. See local_msg.h.
 *
 * Every loop is bounded by its input; the only allocations are the
 * decoded maildrop envelope (bounded by the caller's max_rcpts and the
 * file's size).
 */
#include "smtp/local_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define DROP_MAGIC "MTA-MAILDROP 1\n"

/* ---- line ends ---- */

static int
crlf_line(struct buf *out, const uint8_t *p, size_t len)
{
	if (buf_append(out, p, len) != 0 || buf_append(out, "\r\n", 2) != 0)
		return -ENOBUFS;
	return 0;
}

int
local_msg_crlf(
    const uint8_t *in, size_t n, bool dot_ends, struct buf *out, size_t *used)
{
	size_t i = 0, start, len;

	while (i < n) {
		start = i;
		while (i < n && in[i] != '\n' && in[i] != '\r')
			i++;
		len = i - start;
		if (i < n && in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
			i += 2;
		else if (i < n)
			i++;
		if (dot_ends && len == 1 && in[start] == '.')
			break;
		if (crlf_line(out, in + start, len) != 0)
			return -ENOBUFS;
	}
	if (used != NULL)
		*used = i;
	return 0;
}

/* ---- the header section ---- */

/* Length of the line at m[i..n), with its CR LF (or to the end). */
static size_t
line_len(const uint8_t *m, size_t n, size_t i)
{
	const uint8_t *nl = memchr(m + i, '\n', n - i);

	return nl ? (size_t)(nl - (m + i)) + 1 : n - i;
}

/* "NAME:" with NAME printable ASCII without ':' (RFC 5322 ftext). */
static bool
is_field(const uint8_t *l, size_t len)
{
	size_t i;

	for (i = 0; i < len && l[i] != ':'; i++)
		if (l[i] < 33 || l[i] > 126)
			return false;
	return i > 0 && i < len;
}

static bool
field_is(const uint8_t *l, size_t len, const char *name)
{
	size_t nl = strlen(name);

	return len > nl && l[nl] == ':' &&
	       str_iprefix((const char *)l, len, name);
}

static void
note_field(struct local_msg_hdrs *h, const uint8_t *l, size_t len)
{
	if (field_is(l, len, "From"))
		h->from = true;
	else if (field_is(l, len, "Date"))
		h->date = true;
	else if (field_is(l, len, "Message-ID"))
		h->msgid = true;
	else if (field_is(l, len, "Received"))
		h->rcvd++;
}

/* Line lengths of the whole message. */
static int
scan_lines(const uint8_t *m, size_t n, char *why, size_t whylen)
{
	size_t i = 0, len, no = 0;

	while (i < n) {
		len = line_len(m, n, i);
		no++;
		if (len > LOCAL_MSG_LINE_MAX) {
			(void)str_fmt(why, whylen,
			    "line %zu is longer than %d characters", no,
			    LOCAL_MSG_LINE_MAX - 2);
			return -EINVAL;
		}
		i += len;
	}
	return 0;
}

int
local_msg_scan(const uint8_t *m, size_t n, struct local_msg_hdrs *h, char *why,
    size_t whylen)
{
	size_t i = 0, len, no = 0;

	memset(h, 0, sizeof(*h));
	if (scan_lines(m, n, why, whylen) != 0)
		return -EINVAL;
	/* An mbox separator ("From sender date") is not a field. */
	if (n > 5 && memcmp(m, "From ", 5) == 0) {
		h->skip = line_len(m, n, 0);
		i = h->skip;
		no++;
	}
	while (i < n) {
		const uint8_t *l = m + i;

		len = line_len(m, n, i);
		no++;
		if (len == 2 && l[0] == '\r') {
			h->blank = true;
			break;
		}
		if (is_field(l, len))
			note_field(h, l, len);
		else if (i > h->skip && (l[0] == ' ' || l[0] == '\t'))
			; /* a continuation */
		else if (i == h->skip)
			break; /* no header section: all body */
		else {
			(void)str_fmt(why, whylen,
			    "line %zu: malformed header field (NAME: VALUE; "
			    "a blank line ends the headers)",
			    no);
			return -EINVAL;
		}
		i += len;
	}
	h->end = i;
	return 0;
}

/* ---- recipients from To, Cc, Bcc ---- */

/* An address list being parsed (RFC 5322 3.4, obsolete forms too). */
struct alist {
	char cur[LOCAL_MSG_ADDR_MAX]; /* text outside <>, comments dropped */
	size_t cl;
	char ang[LOCAL_MSG_ADDR_MAX]; /* inside the last <> */
	size_t al;
	bool in_ang, have_ang, inq, esc;
	int depth; /* comment nesting */
	int (*cb)(void *, const char *);
	void *arg;
};

static int
alist_put(struct alist *a, char c)
{
	char *dst = a->in_ang ? a->ang : a->cur;
	size_t *l = a->in_ang ? &a->al : &a->cl;

	if (*l + 1 >= LOCAL_MSG_ADDR_MAX)
		return -ENAMETOOLONG;
	dst[(*l)++] = c;
	return 0;
}

/* One element ended (",", ";" or the end). */
static int
alist_flush(struct alist *a)
{
	const char *addr = a->have_ang ? a->ang : a->cur;
	size_t len = a->have_ang ? a->al : a->cl;
	int rc = 0;

	if (len > 0) {
		char tmp[LOCAL_MSG_ADDR_MAX];

		memcpy(tmp, addr, len);
		tmp[len] = '\0';
		rc = a->cb(a->arg, tmp);
	}
	a->cl = a->al = 0;
	a->have_ang = a->in_ang = false;
	return rc;
}

/* Inside a comment or a quoted string: true when c was taken. */
static bool
alist_nested(struct alist *a, char c, int *rc)
{
	if (a->depth > 0) {
		if (a->esc)
			a->esc = false;
		else if (c == '\\')
			a->esc = true;
		else if (c == '(')
			a->depth++;
		else if (c == ')')
			a->depth--;
		return true;
	}
	if (!a->inq)
		return false;
	*rc = alist_put(a, c);
	if (a->esc)
		a->esc = false;
	else if (c == '\\')
		a->esc = true;
	else if (c == '"')
		a->inq = false;
	return true;
}

static int
alist_char(struct alist *a, char c)
{
	int rc = 0;

	if (alist_nested(a, c, &rc))
		return rc;
	switch (c) {
	case '(':
		a->depth = 1;
		return 0;
	case '"':
		a->inq = true;
		return alist_put(a, c);
	case '<':
		a->in_ang = a->have_ang = true;
		a->al = 0;
		return 0;
	case '>':
		a->in_ang = false;
		return 0;
	case ':': /* a group's name, or the end of a source route */
		if (a->in_ang)
			a->al = 0;
		else
			a->cl = 0;
		return 0;
	case ',':
	case ';':
		return a->in_ang ? 0 : alist_flush(a);
	case ' ':
	case '\t':
	case '\r':
	case '\n':
		return 0;
	default:
		return alist_put(a, c);
	}
}

int
local_msg_rcpts(const uint8_t *m, size_t end,
    int (*cb)(void *arg, const char *addr), void *arg)
{
	struct alist *a = xcalloc(1, sizeof(*a));
	size_t i = 0, len;
	bool on = false;
	int rc = 0;

	a->cb = cb;
	a->arg = arg;
	while (i < end && rc == 0) {
		const uint8_t *l = m + i;
		size_t j = 0;

		len = line_len(m, end, i);
		i += len;
		if (l[0] != ' ' && l[0] != '\t') {
			if (on && (rc = alist_flush(a)) != 0)
				break;
			on = field_is(l, len, "To") || field_is(l, len, "Cc") ||
			     field_is(l, len, "Bcc");
			memset(a, 0, offsetof(struct alist, cb));
			if (!on)
				continue;
			j = (size_t)((const uint8_t *)memchr(l, ':', len) - l) +
			    1;
		} else if (!on)
			continue;
		for (; j < len && rc == 0; j++)
			rc = alist_char(a, (char)l[j]);
	}
	if (rc == 0 && on)
		rc = alist_flush(a);
	free(a);
	return rc;
}

/* ---- rewriting ---- */

int
local_msg_rewrite(const uint8_t *m, size_t n, const struct local_msg_hdrs *h,
    const char *add, struct buf *out)
{
	size_t i = h->skip, len;
	bool drop = false;

	while (i < h->end) {
		const uint8_t *l = m + i;

		len = line_len(m, h->end, i);
		if (l[0] != ' ' && l[0] != '\t')
			drop = field_is(l, len, "Bcc");
		if (!drop && buf_append(out, l, len) != 0)
			return -ENOBUFS;
		i += len;
	}
	if (buf_append(out, add, strlen(add)) != 0)
		return -ENOBUFS;
	if (!h->blank && buf_append(out, "\r\n", 2) != 0)
		return -ENOBUFS;
	if (buf_append(out, m + h->end, n - h->end) != 0)
		return -ENOBUFS;
	return 0;
}

/* ---- the maildrop file ---- */

static bool
addr_clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return false;
	return true;
}

int
local_msg_drop_encode(const char *from, char *const *rcpts, size_t n,
    const uint8_t *msg, size_t len, struct buf *out)
{
	if (!addr_clean(from))
		return -EINVAL;
	if (buf_appendf(out, DROP_MAGIC "F <%s>\n", from) != 0)
		return -ENOBUFS;
	for (size_t i = 0; i < n; i++) {
		if (!addr_clean(rcpts[i]))
			return -EINVAL;
		if (buf_appendf(out, "R <%s>\n", rcpts[i]) != 0)
			return -ENOBUFS;
	}
	if (buf_append(out, "\n", 1) != 0 || buf_append(out, msg, len) != 0)
		return -ENOBUFS;
	return 0;
}

/* "X <addr>\n" at p[0..len) (len without the LF): a new string. */
static char *
drop_addr(const uint8_t *p, size_t len)
{
	if (len < 4 || p[1] != ' ' || p[2] != '<' || p[len - 1] != '>')
		return NULL;
	for (size_t i = 3; i < len - 1; i++)
		if (p[i] < 32 || p[i] == 127 || p[i] == '<' || p[i] == '>')
			return NULL;
	return xstrndup((const char *)p + 3, len - 4);
}

static int
drop_fail(char *why, size_t whylen, const char *reason)
{
	(void)str_copy(why, whylen, reason);
	return -EINVAL;
}

int
local_msg_drop_decode(const uint8_t *p, size_t n, size_t max_rcpts,
    struct local_msg_drop *d, char *why, size_t whylen)
{
	size_t i = sizeof(DROP_MAGIC) - 1, len;
	const uint8_t *nl;

	memset(d, 0, sizeof(*d));
	if (n < i || memcmp(p, DROP_MAGIC, i) != 0)
		return drop_fail(why, whylen, "not a maildrop file");
	while ((nl = memchr(p + i, '\n', n - i)) != NULL) {
		len = (size_t)(nl - (p + i));
		if (len == 0) {
			i++;
			break;
		}
		if (p[i] == 'F' && d->from == NULL && d->nrcpts == 0) {
			if ((d->from = drop_addr(p + i, len)) == NULL)
				return drop_fail(
				    why, whylen, "bad sender line");
		} else if (p[i] == 'R' && d->from != NULL) {
			if (d->nrcpts >= max_rcpts)
				return drop_fail(
				    why, whylen, "too many recipients");
			d->rcpts = xreallocarray(
			    d->rcpts, d->nrcpts + 1, sizeof(*d->rcpts));
			if ((d->rcpts[d->nrcpts] = drop_addr(p + i, len)) ==
			    NULL)
				return drop_fail(
				    why, whylen, "bad recipient line");
			d->nrcpts++;
		} else
			return drop_fail(why, whylen, "bad envelope line");
		i += len + 1;
	}
	if (nl == NULL || d->from == NULL || d->nrcpts == 0)
		return drop_fail(why, whylen, "incomplete envelope");
	d->msg = p + i;
	d->len = n - i;
	return 0;
}

void
local_msg_drop_fini(struct local_msg_drop *d)
{
	free(d->from);
	for (size_t i = 0; i < d->nrcpts; i++)
		free(d->rcpts[i]);
	free(d->rcpts);
	memset(d, 0, sizeof(*d));
}
