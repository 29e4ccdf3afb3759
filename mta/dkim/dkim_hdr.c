/* SPDX-License-Identifier: ISC */
/*
 * dkim_hdr.c - header fields for DKIM: splitting a header section into
 * fields, their canonical forms (RFC 6376 3.4.1 simple, 3.4.2 relaxed),
 * which fields a signature covers (5.4.2: bottom-up, From over-signed)
 * and the From domain the key is chosen by.
 *
 * Pure functions over the caller's bytes; runs on the caller's thread.
 */
#include "dkim/dkim_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The name of a field: up to the colon, blanks before it dropped. */
static size_t
field_namelen(const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len);
	size_t n;

	if (colon == NULL)
		return 0;
	n = (size_t)(colon - p);
	while (n > 0 && is_wsp(p[n - 1]))
		n--;
	return n;
}

size_t
dkim_hdr_split(const char *p, size_t len, struct dkim_field *f, size_t max)
{
	size_t i = 0, n = 0, start = 0;
	const char *nl;

	while (i < len) {
		nl = memchr(p + i, '\n', len - i);
		i = nl != NULL ? (size_t)(nl - p) + 1 : len;
		/* The field goes on while the next line starts with a blank. */
		if (i < len && is_wsp(p[i]))
			continue;
		if (n < max) {
			f[n].p = p + start;
			f[n].len = i - start;
			f[n].namelen = field_namelen(p + start, i - start);
		}
		n++;
		start = i;
	}
	return n;
}

/* The field's text without its final CRLF (or LF). */
static size_t
field_body_end(const struct dkim_field *f)
{
	size_t n = f->len;

	if (n > 0 && f->p[n - 1] == '\n')
		n--;
	if (n > 0 && f->p[n - 1] == '\r')
		n--;
	return n;
}

static int
canon_relaxed(const struct dkim_field *f, bool crlf, struct buf *out)
{
	size_t end = field_body_end(f), i;
	const char *colon = memchr(f->p, ':', f->len);
	bool wsp = false, started = false;
	uint8_t *d, *d0;

	/* the result is never longer than the field plus CRLF */
	if ((d = buf_reserve(out, f->len + 3)) == NULL)
		return -ENOBUFS;
	d0 = d;
	for (i = 0; i < f->namelen; i++)
		*d++ = (uint8_t)tolower((unsigned char)f->p[i]);
	*d++ = ':';
	for (i = (size_t)(colon - f->p) + 1; i < end; i++) {
		char c = f->p[i];

		if (c == '\r' || c == '\n' || is_wsp(c)) {
			wsp = true; /* unfolding: CRLF goes, its blank stays */
			continue;
		}
		if (wsp && started)
			*d++ = ' ';
		wsp = false;
		started = true;
		*d++ = (uint8_t)c;
	}
	if (crlf) {
		*d++ = '\r';
		*d++ = '\n';
	}
	buf_commit(out, (size_t)(d - d0));
	return 0;
}

int
dkim_hdr_canon(
    const struct dkim_field *f, enum dkim_canon c, bool crlf, struct buf *out)
{
	size_t end = field_body_end(f);

	if (c == DKIM_RELAXED && f->namelen > 0)
		return canon_relaxed(f, crlf, out);
	if (buf_append(out, f->p, end) != 0)
		return -ENOBUFS;
	return crlf ? buf_append(out, "\r\n", 2) : 0;
}

bool
dkim_hdr_is(const struct dkim_field *f, const char *name)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '*')
		return f->namelen >= n - 1 &&
		       strncasecmp(f->p, name, n - 1) == 0;
	return f->namelen == n && strncasecmp(f->p, name, n) == 0;
}

static bool
same_name(const struct dkim_field *a, const struct dkim_field *b)
{
	return a->namelen == b->namelen &&
	       strncasecmp(a->p, b->p, a->namelen) == 0;
}

/* List the name (lowercase) in hlist, ':' between names. */
static void
hlist_add(struct buf *hlist, const char *name, size_t n)
{
	uint8_t *d;

	if ((d = buf_reserve(hlist, n + 2)) == NULL)
		return;
	if (buf_avail(hlist) > 0)
		*d++ = ':', hlist->len++;
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)tolower((unsigned char)name[i]);
	hlist->len += n;
}

/* Every unused instance of name (or, when like is set, of the name of
 * the field like: name was a pattern), bottom-up. */
static size_t
select_name(const struct dkim_field *f, size_t nf, const char *name,
    const struct dkim_field *like, bool *used, const struct dkim_field **sel,
    size_t nsel, size_t max, struct buf *hlist)
{
	for (size_t i = nf; i-- > 0 && nsel < max;) {
		if (used[i] || f[i].namelen == 0)
			continue;
		if (like != NULL ? !same_name(&f[i], like)
		                 : !dkim_hdr_is(&f[i], name))
			continue;
		used[i] = true;
		sel[nsel++] = &f[i];
		if (like != NULL)
			hlist_add(hlist, like->p, like->namelen);
		else
			hlist_add(hlist, name, strlen(name));
	}
	return nsel;
}

size_t
dkim_hdr_select(const struct dkim_field *f, size_t nf, const char *const *names,
    size_t nnames, const struct dkim_field **sel, size_t max, struct buf *hlist)
{
	bool *used = calloc(nf + 1, sizeof(*used));
	size_t nsel = 0, n;

	if (used == NULL)
		return 0;
	for (size_t k = 0; k < nnames; k++) {
		n = strlen(names[k]);
		if (n > 0 && names[k][n - 1] == '*') {
			/* each name the pattern matches, bottom-up */
			for (size_t i = nf; i-- > 0;)
				if (!used[i] && dkim_hdr_is(&f[i], names[k]))
					nsel = select_name(f, nf, names[k],
					    &f[i], used, sel, nsel, max, hlist);
			continue;
		}
		nsel = select_name(
		    f, nf, names[k], NULL, used, sel, nsel, max, hlist);
		if (strcasecmp(names[k], "from") == 0 && nsel < max) {
			sel[nsel++] = NULL; /* over-signed: none may be added */
			hlist_add(hlist, "from", 4);
		}
	}
	free(used);
	if (buf_reserve(hlist, 1) != NULL)
		hlist->data[hlist->len] = '\0';
	return nsel;
}

/* The value of f without comments and quoted strings (where an '@' or a
 * '<' means nothing), into out (size f->len + 1). */
static void
from_strip(const struct dkim_field *f, char *out)
{
	const char *colon = memchr(f->p, ':', f->len);
	size_t i = (size_t)(colon - f->p) + 1, end = field_body_end(f);
	unsigned depth = 0;
	bool quote = false;
	char *o = out;

	for (; i < end; i++) {
		char c = f->p[i];

		if ((depth > 0 || quote) && c == '\\') {
			i++;
			continue;
		}
		if (quote) {
			quote = c != '"';
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && c == '"')
			quote = true;
		else if (depth == 0)
			*o++ = c;
	}
	*o = '\0';
}

static int
from_parse(char *v, char *dom, size_t domlen)
{
	char *a = v, *at, *e;
	size_t n;

	if ((e = strchr(v, '<')) != NULL) {
		a = e + 1;
		if ((e = strchr(a, '>')) != NULL)
			*e = '\0';
	} else if ((e = strchr(v, ',')) != NULL) {
		*e = '\0'; /* a mailbox list: the first one */
	}
	if ((at = strrchr(a, '@')) == NULL)
		return -EINVAL;
	at++;
	while (is_wsp(*at) || *at == '\r' || *at == '\n')
		at++;
	n = strcspn(at, " \t\r\n>,;");
	if (n > 0 && at[n - 1] == '.')
		n--;
	if (n == 0 || n >= domlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)at[i];

		if (!isalnum(c) && c != '-' && c != '.' && c < 0x80)
			return -EINVAL;
		dom[i] = (char)tolower(c);
	}
	dom[n] = '\0';
	return 0;
}

/* The one From field's value, stripped (malloc'd, the caller frees):
 * 0, or -ENOENT none, -EMLINK several, -ENOMEM. */
static int
from_value(const struct dkim_field *f, size_t nf, char **out)
{
	const struct dkim_field *from = NULL;

	for (size_t i = 0; i < nf; i++)
		if (dkim_hdr_is(&f[i], "from")) {
			if (from != NULL)
				return -EMLINK;
			from = &f[i];
		}
	if (from == NULL)
		return -ENOENT;
	if ((*out = malloc(from->len + 1)) == NULL)
		return -ENOMEM;
	from_strip(from, *out);
	return 0;
}

int
dkim_hdr_from_domain(
    const struct dkim_field *f, size_t nf, char *dom, size_t domlen)
{
	char *v;
	int res;

	if ((res = from_value(f, nf, &v)) < 0)
		return res;
	res = from_parse(v, dom, domlen);
	free(v);
	return res;
}

/* The address of a stripped From value: inside <>, else the first of a
 * list, without blanks; it must hold an '@'. */
static int
from_addr(char *v, char *addr, size_t addrlen)
{
	char *a = v, *e;
	size_t n;

	if ((e = strchr(v, '<')) != NULL) {
		a = e + 1;
		if ((e = strchr(a, '>')) != NULL)
			*e = '\0';
	} else if ((e = strchr(v, ',')) != NULL) {
		*e = '\0';
	}
	while (is_wsp(*a) || *a == '\r' || *a == '\n')
		a++;
	n = strcspn(a, " \t\r\n");
	if (n == 0 || n >= addrlen || memchr(a, '@', n) == NULL)
		return -EINVAL;
	memcpy(addr, a, n);
	addr[n] = '\0';
	return 0;
}

int
dkim_hdr_from_addr(
    const struct dkim_field *f, size_t nf, char *addr, size_t addrlen)
{
	char *v;
	int res;

	if ((res = from_value(f, nf, &v)) < 0)
		return res;
	res = from_addr(v, addr, addrlen);
	free(v);
	return res;
}
