/* SPDX-License-Identifier: ISC */
/*
 * mime_7bit.c - the 8-bit to 7-bit downgrade (see mime_7bit.h): a header
 * scanner, a multipart walker and a quoted-printable encoder, all over
 * (ptr, len) with line ends CRLF or LF.
 *
 * Thread: any (pure; the delivery worker calls it).
 */
#include "smtp/mime_7bit.h"

#include <stdbool.h>
#include <string.h>

#include "base/str.h"

#define QP_LINE      76  /* RFC 2045 6.7 (5): encoded line, soft break in */
#define VALUE_MAX    998 /* bytes of an unfolded header value we look at */
#define BOUNDARY_MAX 200

#define CTE_QP   "Content-Transfer-Encoding: quoted-printable\r\n"
#define CTE_7BIT "Content-Transfer-Encoding: 7bit\r\n"

struct conv {
	struct buf *out;
	bool full; /* an append failed: out->max reached */
};

/* One header field: [start, end) with its line end(s); the value runs
 * from vstart (after the colon) to vend (before the last line end). */
struct field {
	size_t start, end, vstart, vend;
};

/* What an entity's header says. Offsets are from the entity's start. */
struct head {
	size_t fields_end; /* the header fields end here */
	size_t body;       /* the body starts here (after the empty line) */
	bool eight;        /* 8-bit bytes in the header */
	bool mime_version;
	bool has_ctype, has_cte;
	struct field ctype, cte;
};

static void
emit(struct conv *c, const void *p, size_t n)
{
	if (!c->full && n > 0 && buf_append(c->out, p, n) != 0)
		c->full = true;
}

static void
emit_str(struct conv *c, const char *s)
{
	emit(c, s, strlen(s));
}

/* The line at p: its length without the line end; *eol = 2 (CRLF), 1
 * (LF) or 0 (the last line, unended). */
static size_t
line_len(const uint8_t *p, size_t n, size_t *eol)
{
	const uint8_t *lf = memchr(p, '\n', n);
	size_t k;

	if (lf == NULL) {
		*eol = 0;
		return n;
	}
	k = (size_t)(lf - p);
	if (k > 0 && p[k - 1] == '\r') {
		*eol = 2;
		return k - 1;
	}
	*eol = 1;
	return k;
}

/* Does the line start a header field ("name:", name printable)? */
static bool
field_start(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != ':'; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return false;
	return i > 0 && i < n;
}

static bool
name_is(const uint8_t *p, const struct field *f, const char *name)
{
	size_t k = strlen(name);

	return f->vstart - f->start == k + 1 &&
	       str_iprefix((const char *)p + f->start, k, name);
}

/* The field starting at *pos (before lim), continuation lines included. */
static void
field_next(const uint8_t *p, size_t lim, size_t *pos, struct field *f)
{
	size_t l, eol;

	f->start = *pos;
	l = line_len(p + *pos, lim - *pos, &eol);
	f->vstart =
	    *pos +
	    (size_t)((const uint8_t *)memchr(p + *pos, ':', l) - (p + *pos)) +
	    1;
	f->vend = *pos + l;
	*pos += l + eol;
	while (*pos < lim && (p[*pos] == ' ' || p[*pos] == '\t')) {
		l = line_len(p + *pos, lim - *pos, &eol);
		f->vend = *pos + l;
		*pos += l + eol;
	}
	f->end = *pos;
}

/*
 * Find where the header ends: at an empty line (the body follows it), or
 * at the first line that is neither a field nor a continuation (the body
 * starts there: RFC 5322 allows no such line, some senders write one).
 */
static void
head_bounds(const uint8_t *p, size_t n, struct head *h)
{
	size_t pos = 0, l, eol;

	while (pos < n) {
		l = line_len(p + pos, n - pos, &eol);
		if (l == 0) {
			h->fields_end = pos;
			h->body = pos + eol;
			return;
		}
		if (!field_start(p + pos, l) &&
		    !(pos > 0 && (p[pos] == ' ' || p[pos] == '\t')))
			break;
		pos += l + eol;
	}
	h->fields_end = h->body = pos;
}

static void
head_parse(const uint8_t *p, size_t n, struct head *h)
{
	struct field f;
	size_t pos = 0;

	memset(h, 0, sizeof(*h));
	head_bounds(p, n, h);
	h->eight = mem_has_8bit(p, h->fields_end);
	while (pos < h->fields_end) {
		field_next(p, h->fields_end, &pos, &f);
		if (name_is(p, &f, "Content-Type") && !h->has_ctype) {
			h->ctype = f;
			h->has_ctype = true;
		} else if (name_is(p, &f, "Content-Transfer-Encoding") &&
		           !h->has_cte) {
			h->cte = f;
			h->has_cte = true;
		} else if (name_is(p, &f, "MIME-Version"))
			h->mime_version = true;
	}
}

/* A field's value unfolded (line ends dropped), without leading white
 * space, as a C string (truncated to size). */
static void
value_get(const uint8_t *p, const struct field *f, char *v, size_t size)
{
	size_t i = f->vstart, k = 0;

	while (i < f->vend && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (; i < f->vend && k + 1 < size; i++)
		if (p[i] != '\r' && p[i] != '\n')
			v[k++] = (char)p[i];
	v[k] = '\0';
}

/* The token at s (up to white space, ';', '(' or end), lowercased into
 * t. */
static void
token_get(const char *s, char *t, size_t size)
{
	size_t k = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s && !strchr(" \t;(", *s) && k + 1 < size; s++)
		t[k++] = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
	t[k] = '\0';
}

/*
 * The value of parameter name in a Content-Type value (token or quoted
 * string), into v; false when absent or empty. Comments and RFC 2231
 * continuations are not understood (a boundary never needs them).
 */
static bool
param_get(const char *ct, const char *name, char *v, size_t size)
{
	size_t nl = strlen(name), k = 0;
	const char *s = ct;

	while ((s = strchr(s, ';')) != NULL) {
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!str_iprefix(s, strlen(s), name))
			continue;
		s += nl;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s++ != '=')
			continue;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '"') {
			for (s++; *s && *s != '"' && k + 1 < size; s++) {
				if (*s == '\\' && s[1] != '\0')
					s++;
				v[k++] = *s;
			}
		} else {
			for (; *s && !strchr(" \t;", *s) && k + 1 < size; s++)
				v[k++] = *s;
		}
		v[k] = '\0';
		return k > 0;
	}
	return false;
}

/* --- quoted-printable ------------------------------------------------------ */

/* One line's content (no line end), encoded; soft breaks keep every
 * encoded line within QP_LINE characters, the '=' included. */
static void
qp_line(struct conv *c, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char tok[3];
	size_t col = 0, t;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = p[i];
		bool last = i + 1 == n;

		if ((b > ' ' && b <= '~' && b != '=') ||
		    ((b == ' ' || b == '\t') && !last)) {
			tok[0] = (char)b;
			t = 1;
		} else {
			tok[0] = '=';
			tok[1] = hex[b >> 4];
			tok[2] = hex[b & 15];
			t = 3;
		}
		/* room for the soft break's '=' unless this ends the line */
		if (col + t > (last ? QP_LINE : QP_LINE - 1)) {
			emit_str(c, "=\r\n");
			col = 0;
		}
		emit(c, tok, t);
		col += t;
	}
}

static void
qp_body(struct conv *c, const uint8_t *p, size_t n)
{
	size_t pos = 0, l, eol;

	while (pos < n) {
		l = line_len(p + pos, n - pos, &eol);
		qp_line(c, p + pos, l);
		if (eol > 0)
			emit_str(c, "\r\n");
		pos += l + eol;
	}
}

/* --- entities -------------------------------------------------------------- */

/* The header fields with the one at skip (if any) replaced by repl, then
 * the empty line. */
static void
head_emit(struct conv *c, const uint8_t *p, const struct head *h,
    const struct field *skip, const char *repl)
{
	if (skip != NULL) {
		emit(c, p, skip->start);
		emit_str(c, repl);
		emit(c, p + skip->end, h->fields_end - skip->end);
	} else {
		emit(c, p, h->fields_end);
		emit_str(c, repl);
	}
	emit_str(c, "\r\n");
}

static enum mime_7bit_status entity(
    struct conv *c, const uint8_t *p, size_t n, bool digest, int depth);

/* Is the line a delimiter of boundary b? *close: it is the last one. */
static bool
delimiter(const uint8_t *p, size_t l, const char *b, size_t bl, bool *close)
{
	size_t i = bl + 2;

	if (l < i || p[0] != '-' || p[1] != '-' || memcmp(p + 2, b, bl) != 0)
		return false;
	*close = l >= i + 2 && p[i] == '-' && p[i + 1] == '-';
	if (*close)
		i += 2;
	for (; i < l; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return false;
	return true;
}

/* The body part [s, e) before a delimiter line at e: the line end before
 * the delimiter belongs to the delimiter (RFC 2046 5.1.1). */
static size_t
part_end(const uint8_t *p, size_t s, size_t e)
{
	if (e > s && p[e - 1] == '\n')
		e--;
	if (e > s && p[e - 1] == '\r')
		e--;
	return e;
}

/*
 * The body of a multipart from off: the preamble and epilogue as they
 * are (they must be 7-bit), each part through entity(), delimiters as
 * they are.
 */
static enum mime_7bit_status
multipart_body(struct conv *c, const uint8_t *p, size_t n, size_t off,
    const char *b, bool digest, int depth)
{
	size_t bl = strlen(b), seg = off, pos = off, l, eol, e;
	bool in_part = false, close = false;
	enum mime_7bit_status st;

	while (pos < n) {
		l = line_len(p + pos, n - pos, &eol);
		if (!delimiter(p + pos, l, b, bl, &close)) {
			pos += l + eol;
			continue;
		}
		e = part_end(p, seg, pos);
		if (!in_part && mem_has_8bit(p + seg, e - seg))
			return MIME_7BIT_STRUCTURE;
		if (!in_part)
			emit(c, p + seg, e - seg);
		else if ((st = entity(c, p + seg, e - seg, digest, depth)) !=
		         MIME_7BIT_OK)
			return st;
		emit(c, p + e, pos + l + eol - e);
		pos += l + eol;
		seg = pos;
		in_part = true;
		if (close)
			break;
	}
	if (!in_part || close) {
		/* the epilogue, or a body without any delimiter */
		if (mem_has_8bit(p + seg, n - seg))
			return MIME_7BIT_STRUCTURE;
		emit(c, p + seg, n - seg);
		return MIME_7BIT_OK;
	}
	/* no close delimiter: the last part runs to the end */
	return entity(c, p + seg, n - seg, digest, depth);
}

static enum mime_7bit_status
multipart(struct conv *c, const uint8_t *p, size_t n, const struct head *h,
    const char *type, int depth)
{
	char ct[VALUE_MAX + 1], b[BOUNDARY_MAX + 1], cte[32];

	value_get(p, &h->ctype, ct, sizeof(ct));
	if (!param_get(ct, "boundary", b, sizeof(b)))
		return MIME_7BIT_STRUCTURE;
	cte[0] = '\0';
	if (h->has_cte) {
		value_get(p, &h->cte, ct, sizeof(ct));
		token_get(ct, cte, sizeof(cte));
	}
	if (strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0)
		head_emit(c, p, h, &h->cte, CTE_7BIT);
	else
		emit(c, p, h->body);
	return multipart_body(c, p, n, h->body, b,
	    strcmp(type, "multipart/digest") == 0, depth + 1);
}

/* A leaf part with 8-bit bytes in its body: quoted-printable. */
static enum mime_7bit_status
leaf(struct conv *c, const uint8_t *p, size_t n, const struct head *h)
{
	char v[VALUE_MAX + 1], cte[32] = "";

	if (h->has_cte) {
		value_get(p, &h->cte, v, sizeof(v));
		token_get(v, cte, sizeof(cte));
	}
	if (cte[0] != '\0' && strcmp(cte, "7bit") != 0 &&
	    strcmp(cte, "8bit") != 0 && strcmp(cte, "binary") != 0)
		return MIME_7BIT_ENCODED;
	head_emit(c, p, h, h->has_cte ? &h->cte : NULL, CTE_QP);
	qp_body(c, p + h->body, n - h->body);
	return MIME_7BIT_OK;
}

/* Is [p, p + n) well-formed UTF-8 (RFC 3629: no overlongs, surrogates
 * or code points past U+10FFFF)? */
static bool
utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0, k;
	uint32_t cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			k = 1, cp = p[i] & 0x1f, min = 0x80;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			k = 2, cp = p[i] & 0x0f, min = 0x800;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			k = 3, cp = p[i] & 0x07, min = 0x10000;
		else
			return false;
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/*
 * A message without MIME-Version (RFC 6152 leaves it to us): make it a
 * text/plain MIME message. Any Content-Type or -Transfer-Encoding field
 * it carried meant nothing without MIME-Version and is dropped.
 */
static enum mime_7bit_status
plain(struct conv *c, const uint8_t *p, size_t n, const struct head *h)
{
	struct field f;
	size_t pos = 0;

	while (pos < h->fields_end) {
		field_next(p, h->fields_end, &pos, &f);
		if (!name_is(p, &f, "Content-Type") &&
		    !name_is(p, &f, "Content-Transfer-Encoding"))
			emit(c, p + f.start, f.end - f.start);
	}
	emit_str(c, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=");
	emit_str(
	    c, utf8_valid(p + h->body, n - h->body) ? "utf-8" : "unknown-8bit");
	emit_str(c, "\r\n" CTE_QP "\r\n");
	qp_body(c, p + h->body, n - h->body);
	return MIME_7BIT_OK;
}

/*
 * One entity: a 7-bit one as it is, else by its type. depth < 0 marks
 * the message itself (MIME-Version is looked for there only); digest:
 * the default type is message/rfc822 (RFC 2046 5.1.5).
 */
static enum mime_7bit_status
entity(struct conv *c, const uint8_t *p, size_t n, bool digest, int depth)
{
	char v[VALUE_MAX + 1], type[128];
	struct head h;

	if (!mem_has_8bit(p, n)) {
		emit(c, p, n);
		return MIME_7BIT_OK;
	}
	if (depth > MIME_7BIT_DEPTH)
		return MIME_7BIT_STRUCTURE;
	head_parse(p, n, &h);
	if (h.eight)
		return MIME_7BIT_HEADER;
	if (depth < 0 && !h.mime_version)
		return plain(c, p, n, &h);
	str_copy(type, sizeof(type), digest ? "message/rfc822" : "text/plain");
	if (h.has_ctype) {
		value_get(p, &h.ctype, v, sizeof(v));
		token_get(v, type, sizeof(type));
	}
	if (str_iprefix(type, strlen(type), "multipart/"))
		return multipart(c, p, n, &h, type, depth < 0 ? 0 : depth);
	if (str_iprefix(type, strlen(type), "message/"))
		return MIME_7BIT_MESSAGE;
	return leaf(c, p, n, &h);
}

enum mime_7bit_status
mime_7bit_convert(const uint8_t *in, size_t len, struct buf *out)
{
	struct conv c = {.out = out};
	enum mime_7bit_status st;

	st = entity(&c, in, len, false, -1);
	if (st == MIME_7BIT_OK && c.full)
		return MIME_7BIT_TOO_BIG;
	/* every path above emits only 7-bit bytes; this keeps it so */
	if (st == MIME_7BIT_OK && mem_has_8bit(buf_peek(out), buf_avail(out)))
		return MIME_7BIT_STRUCTURE;
	return st;
}

size_t
mime_7bit_bound(size_t len)
{
	/* QP costs at most 3 bytes a byte plus a soft break a 25 bytes; a
	 * rewritten part (5 bytes at least: delimiter and one byte) gains
	 * at most one field and an empty line (50 bytes). */
	if (len > (SIZE_MAX - 4096) / 14)
		return SIZE_MAX;
	return len * 14 + 4096;
}

const char *
mime_7bit_reason(enum mime_7bit_status st)
{
	switch (st) {
	case MIME_7BIT_OK:
		return "converted";
	case MIME_7BIT_HEADER:
		return "8-bit bytes in a header field";
	case MIME_7BIT_MESSAGE:
		return "8-bit bytes in a message (message/...) body part";
	case MIME_7BIT_ENCODED:
		return "8-bit bytes in a base64 or quoted-printable body part";
	case MIME_7BIT_STRUCTURE:
		return "8-bit bytes where the MIME structure allows no "
		       "conversion";
	case MIME_7BIT_TOO_BIG:
		return "the converted message is too large";
	}
	return "conversion failed";
}
