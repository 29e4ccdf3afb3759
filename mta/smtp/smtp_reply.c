/* SPDX-License-Identifier: ISC */
/*
 * smtp_reply.c - incremental SMTP reply parser and EHLO keyword reader.
 *
 * Each LF-terminated line is handled as soon as it is complete: straight
 * from the caller's bytes when the line is whole in them (the common
 * case, no copy), from the carried partial-line buffer otherwise. Lines
 * accumulate into the reply text until the last line ("DDD " or "DDD"),
 * and the parse stops there so the caller sees replies one at a time.
 */
#include "smtp/smtp_reply.h"

#include <errno.h>
#include <string.h>

#include "base/str.h"

void
smtp_reply_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
	/* + 1: the CR of a CRLF that has not been seen whole yet. */
	buf_init(&p->line, SMTP_REPLY_LINE_MAX + 1);
	/* + 1: the terminating NUL. */
	buf_init(&p->text, SMTP_REPLY_MAX + 1);
}

void
smtp_reply_fini(struct smtp_reply_parser *p)
{
	buf_fini(&p->line);
	buf_fini(&p->text);
}

static void
reply_clear(struct smtp_reply_parser *p)
{
	buf_reset(&p->text);
	memset(&p->reply, 0, sizeof(p->reply));
	p->done = false;
}

void
smtp_reply_reset(struct smtp_reply_parser *p)
{
	buf_reset(&p->line);
	reply_clear(p);
	p->err = 0;
}

const struct smtp_reply *
smtp_reply_peek(const struct smtp_reply_parser *p)
{
	return p->done ? &p->reply : NULL;
}

static bool
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Digits run of 1..3 at p[*i]; advances *i. */
static bool
digits13(const char *p, size_t len, size_t *i)
{
	size_t start = *i;

	while (*i < len && *i - start < 4 && is_digit((uint8_t)p[*i]))
		(*i)++;
	return *i - start >= 1 && *i - start <= 3;
}

bool
smtp_reply_enhanced_valid(const char *p, size_t len)
{
	size_t i;

	if (len < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') ||
	    p[1] != '.')
		return false;
	i = 2;
	if (!digits13(p, len, &i) || i >= len || p[i] != '.')
		return false;
	i++;
	if (!digits13(p, len, &i))
		return false;
	return i == len;
}

/* The enhanced code at the start of the first line's text, if any. */
static void
reply_enhanced(struct smtp_reply *r, const uint8_t *t, size_t tl)
{
	size_t n = 0;

	r->enhanced[0] = '\0';
	while (n < tl && n < SMTP_REPLY_ENH_MAX && t[n] != ' ')
		n++;
	if (n >= SMTP_REPLY_ENH_MAX ||
	    !smtp_reply_enhanced_valid((const char *)t, n))
		return;
	/* RFC 3463: the class must agree with the reply code. */
	if (t[0] - '0' != r->code / 100)
		return;
	memcpy(r->enhanced, t, n);
	r->enhanced[n] = '\0';
}

static int
reply_fail(struct smtp_reply_parser *p, int err)
{
	p->err = err;
	buf_reset(&p->line);
	reply_clear(p);
	return err;
}

/* One complete line (CRLF stripped): 1 when it ended the reply. */
static int
reply_line(struct smtp_reply_parser *p, const uint8_t *l, size_t ll)
{
	struct smtp_reply *r = &p->reply;
	const uint8_t *t;
	size_t tl;
	bool last;
	int code;

	if (ll < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]))
		return reply_fail(p, -EPROTO);
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (code < 200 || code > 599)
		return reply_fail(p, -EPROTO);
	if (ll == 3)
		last = true;
	else if (l[3] == ' ')
		last = true;
	else if (l[3] == '-')
		last = false;
	else
		return reply_fail(p, -EPROTO);
	if (r->nlines > 0 && code != r->code)
		return reply_fail(p, -EPROTO);
	t = ll > 4 ? l + 4 : l + ll;
	tl = ll > 4 ? ll - 4 : 0;
	if (r->nlines == 0) {
		r->code = code;
		reply_enhanced(r, t, tl);
	} else if (buf_append(&p->text, "\n", 1) < 0)
		return reply_fail(p, -EMSGSIZE);
	/* Keep one byte for the NUL. */
	if (buf_avail(&p->text) > SMTP_REPLY_MAX ||
	    tl > SMTP_REPLY_MAX - buf_avail(&p->text) ||
	    buf_append(&p->text, t, tl) < 0)
		return reply_fail(p, -EMSGSIZE);
	r->nlines++;
	if (!last)
		return 0;
	if (buf_append(&p->text, "", 1) < 0)
		return reply_fail(p, -EMSGSIZE);
	r->text = (const char *)buf_peek(&p->text);
	r->len = buf_avail(&p->text) - 1;
	p->done = true;
	return 1;
}

int
smtp_reply_parse(
    struct smtp_reply_parser *p, const uint8_t *data, size_t len, size_t *used)
{
	const uint8_t *s, *lf, *l;
	size_t n, take, ll;
	int rc;

	*used = 0;
	if (p->err)
		return p->err;
	if (p->done)
		reply_clear(p);
	while (*used < len) {
		s = data + *used;
		n = len - *used;
		if ((lf = memchr(s, '\n', n)) == NULL) {
			if (buf_append(&p->line, s, n) < 0)
				return reply_fail(p, -EMSGSIZE);
			*used = len;
			return 0;
		}
		take = (size_t)(lf - s) + 1;
		*used += take;
		if (buf_avail(&p->line) == 0) {
			l = s;
			ll = take - 1;
		} else {
			if (buf_append(&p->line, s, take - 1) < 0)
				return reply_fail(p, -EMSGSIZE);
			l = buf_peek(&p->line);
			ll = buf_avail(&p->line);
		}
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		if (ll > SMTP_REPLY_LINE_MAX)
			return reply_fail(p, -EMSGSIZE);
		rc = reply_line(p, l, ll);
		buf_reset(&p->line);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Parse a decimal without overflow; false when not all digits. */
static bool
parse_u64(const char *p, size_t len, uint64_t *v)
{
	size_t i;

	*v = 0;
	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		if (!is_digit((uint8_t)p[i]) || *v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(p[i] - '0');
	}
	return true;
}

static const struct {
	const char *name;
	unsigned bit;
} auth_mechs[] = {
    {"PLAIN", SMTP_AUTH_PLAIN},
    {"LOGIN", SMTP_AUTH_LOGIN},
    {"CRAM-MD5", SMTP_AUTH_CRAM_MD5},
    {"XOAUTH2", SMTP_AUTH_XOAUTH2},
};

static void
ehlo_auth(struct smtp_ehlo *e, const char *a, size_t alen)
{
	size_t i = 0, j, k;

	while (i < alen) {
		while (i < alen && a[i] == ' ')
			i++;
		for (j = i; j < alen && a[j] != ' '; j++)
			;
		for (k = 0; k < MTA_ARRAY_LEN(auth_mechs); k++)
			if (str_ieq(a + i, j - i, auth_mechs[k].name))
				e->auth |= auth_mechs[k].bit;
		i = j;
	}
}

/* One keyword line: "KEYWORD", "KEYWORD args", "AUTH=args". */
static void
ehlo_line(struct smtp_ehlo *e, const char *l, size_t ll)
{
	size_t kl = 0;
	const char *a;
	size_t alen;

	while (kl < ll && l[kl] != ' ' && l[kl] != '=')
		kl++;
	a = kl < ll ? l + kl + 1 : l + ll;
	alen = kl < ll ? ll - kl - 1 : 0;
	while (alen > 0 && (a[alen - 1] == ' ' || a[alen - 1] == '\r'))
		alen--;
	if (str_ieq(l, kl, "PIPELINING"))
		e->pipelining = true;
	else if (str_ieq(l, kl, "STARTTLS"))
		e->starttls = true;
	else if (str_ieq(l, kl, "8BITMIME"))
		e->eightbitmime = true;
	else if (str_ieq(l, kl, "SMTPUTF8"))
		e->smtputf8 = true;
	else if (str_ieq(l, kl, "ENHANCEDSTATUSCODES"))
		e->enhancedstatuscodes = true;
	else if (str_ieq(l, kl, "DSN"))
		e->dsn = true;
	else if (str_ieq(l, kl, "CHUNKING"))
		e->chunking = true;
	else if (str_ieq(l, kl, "SIZE")) {
		e->size = true;
		if (!parse_u64(a, alen, &e->size_max))
			e->size_max = 0;
	} else if (str_ieq(l, kl, "AUTH"))
		ehlo_auth(e, a, alen);
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	const char *p = r->text, *end = r->text + r->len, *nl;

	memset(e, 0, sizeof(*e));
	/* The first line names the server. */
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return;
	for (p = nl + 1; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		ehlo_line(e, p, (size_t)(nl - p));
	}
}
