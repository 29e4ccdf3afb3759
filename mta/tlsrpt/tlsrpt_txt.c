/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_txt.c - the `_smtp._tls` TXT record (RFC 8460 3): its version
 * and its rua URIs. Pure; any thread.
 */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "tlsrpt/tlsrpt_report.h"

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* (p, n) without blanks around it. */
static void
trim(const char **p, size_t *n)
{
	while (*n > 0 && is_ws(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && is_ws((*p)[*n - 1]))
		(*n)--;
}

/* One URI of rua: mailto: (its address, no "?hfields") or https:. */
static void
rua_add(struct tlsrpt_rua *out, const char *p, size_t n)
{
	const char *q;

	trim(&p, &n);
	if (out->n == TLSRPT_RUA_MAX || n >= TLSRPT_URI_MAX)
		return;
	if (str_iprefix(p, n, "mailto:")) {
		if ((q = memchr(p, '?', n)) != NULL)
			n = (size_t)(q - p);
		if (n <= 7 || memchr(p + 7, '@', n - 7) == NULL)
			return;
	} else if (!str_iprefix(p, n, "https://") || n <= 8) {
		return;
	}
	str_ncopy(out->uri[out->n++], TLSRPT_URI_MAX, p, n);
}

static void
rua_list(struct tlsrpt_rua *out, const char *p, size_t n)
{
	while (n > 0) {
		const char *c = memchr(p, ',', n);
		size_t k = c ? (size_t)(c - p) : n;

		rua_add(out, p, k);
		p += k;
		n -= k;
		if (n > 0) {
			p++;
			n--;
		}
	}
}

int
tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out)
{
	bool first = true;

	memset(out, 0, sizeof(*out));
	while (len > 0) {
		const char *c = memchr(txt, ';', len);
		size_t k = c ? (size_t)(c - txt) : len;
		const char *f = txt;
		size_t fn = k;

		trim(&f, &fn);
		if (first && !(fn == 10 && memcmp(f, "v=TLSRPTv1", 10) == 0))
			return -EINVAL;
		if (!first && fn > 4 && memcmp(f, "rua", 3) == 0) {
			const char *v = f + 3;
			size_t vn = fn - 3;

			trim(&v, &vn);
			if (vn > 0 && *v == '=')
				rua_list(out, v + 1, vn - 1);
		}
		first = false;
		txt += k;
		len -= k;
		if (len > 0) {
			txt++;
			len--;
		}
	}
	return !first && out->n > 0 ? 0 : -EINVAL;
}
