/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_agg.c - one domain's TLS-RPT counts for one period, and their
 * text form on disk (tlsrpt_agg.h). Pure; any thread.
 */
#include "tlsrpt/tlsrpt_agg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"

void
tlsrpt_clean(char *s, bool keep_nl)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && !(keep_nl && *s == '\n'))
			*s = ' ';
		else if (*s == 0x7f)
			*s = ' ';
}

const char *
tlsrpt_ptype_name(enum tlsrpt_ptype t)
{
	switch (t) {
	case TLSRPT_STS:
		return "sts";
	case TLSRPT_TLSA:
		return "tlsa";
	case TLSRPT_NO_POLICY:
		break;
	}
	return "no-policy-found";
}

static struct tlsrpt_pol *
agg_policy(struct tlsrpt_agg *a, const struct tlsrpt_rec *r)
{
	const char *mx = r->ptype == TLSRPT_TLSA ? r->mx : "";
	struct tlsrpt_pol *p;

	for (size_t i = 0; i < a->npol; i++) {
		p = &a->pol[i];
		if (p->ptype == r->ptype &&
		    strcmp(p->strings, r->strings) == 0 &&
		    strcmp(p->mx, mx) == 0)
			return p;
	}
	if (a->npol == TLSRPT_POL_MAX)
		return &a->pol[a->npol - 1]; /* counted, not told apart */
	p = &a->pol[a->npol++];
	memset(p, 0, sizeof(*p));
	p->ptype = r->ptype;
	str_copy(p->strings, sizeof(p->strings), r->strings);
	str_copy(p->mx, sizeof(p->mx), mx);
	return p;
}

void
tlsrpt_agg_add(struct tlsrpt_agg *a, const struct tlsrpt_rec *r)
{
	struct tlsrpt_pol *p = agg_policy(a, r);
	struct tlsrpt_fail *f;

	if (r->result[0] == '\0') {
		p->ok++;
		return;
	}
	p->failed++;
	for (size_t i = 0; i < p->nfail; i++) {
		f = &p->fail[i];
		if (strcmp(f->result, r->result) == 0 &&
		    strcmp(f->send_ip, r->send_ip) == 0 &&
		    strcmp(f->mx, r->mx) == 0 &&
		    strcmp(f->recv_ip, r->recv_ip) == 0) {
			f->count++;
			return;
		}
	}
	if (p->nfail == TLSRPT_FAIL_MAX)
		return; /* in the summary only */
	f = &p->fail[p->nfail++];
	str_copy(f->result, sizeof(f->result), r->result);
	str_copy(f->send_ip, sizeof(f->send_ip), r->send_ip);
	str_copy(f->mx, sizeof(f->mx), r->mx);
	str_copy(f->recv_ip, sizeof(f->recv_ip), r->recv_ip);
	f->count = 1;
}

void
tlsrpt_agg_totals(const struct tlsrpt_agg *a, uint64_t *ok, uint64_t *failed)
{
	*ok = *failed = 0;
	for (size_t i = 0; i < a->npol; i++) {
		*ok += a->pol[i].ok;
		*failed += a->pol[i].failed;
	}
}

int
tlsrpt_agg_encode(const struct tlsrpt_agg *a, struct buf *out)
{
	int rc = buf_appendf(out, "v1\n");

	for (size_t i = 0; rc == 0 && i < a->npol; i++) {
		const struct tlsrpt_pol *p = &a->pol[i];
		char s[TLSRPT_STRINGS_MAX];

		/* '\n' between strings becomes '\v' on disk: one line */
		str_copy(s, sizeof(s), p->strings);
		for (char *c = s; *c; c++)
			if (*c == '\n')
				*c = '\v';
		rc = buf_appendf(out,
		    "P\t%d\t%s\t%" PRIu64 "\t%" PRIu64 "\t%s\n", (int)p->ptype,
		    p->mx, p->ok, p->failed, s);
		for (size_t k = 0; rc == 0 && k < p->nfail; k++) {
			const struct tlsrpt_fail *f = &p->fail[k];

			rc = buf_appendf(out,
			    "F\t%s\t%s\t%s\t%s\t%" PRIu64 "\n", f->result,
			    f->send_ip, f->mx, f->recv_ip, f->count);
		}
	}
	return rc;
}

/* Split line (NUL-terminated, modified) at tabs into want fields. */
static bool
split(char *line, char **f, size_t want)
{
	size_t n = 0;

	f[n++] = line;
	for (char *c = line; *c && n <= want; c++)
		if (*c == '\t') {
			*c = '\0';
			if (n < want)
				f[n] = c + 1;
			n++;
		}
	return n == want;
}

static bool
num(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static int
decode_policy(struct tlsrpt_agg *a, char **f)
{
	struct tlsrpt_pol *p;
	uint64_t t;

	if (a->npol == TLSRPT_POL_MAX || !num(f[1], &t) || t > TLSRPT_NO_POLICY)
		return -EBADMSG;
	p = &a->pol[a->npol++];
	memset(p, 0, sizeof(*p));
	p->ptype = (enum tlsrpt_ptype)t;
	if (!str_copy(p->mx, sizeof(p->mx), f[2]) || !num(f[3], &p->ok) ||
	    !num(f[4], &p->failed) ||
	    !str_copy(p->strings, sizeof(p->strings), f[5]))
		return -EBADMSG;
	for (char *c = p->strings; *c; c++)
		if (*c == '\v')
			*c = '\n';
	return 0;
}

static int
decode_fail(struct tlsrpt_agg *a, char **f)
{
	struct tlsrpt_pol *p;
	struct tlsrpt_fail *x;

	if (a->npol == 0)
		return -EBADMSG;
	p = &a->pol[a->npol - 1];
	if (p->nfail == TLSRPT_FAIL_MAX)
		return -EBADMSG;
	x = &p->fail[p->nfail++];
	if (!str_copy(x->result, sizeof(x->result), f[1]) ||
	    !str_copy(x->send_ip, sizeof(x->send_ip), f[2]) ||
	    !str_copy(x->mx, sizeof(x->mx), f[3]) ||
	    !str_copy(x->recv_ip, sizeof(x->recv_ip), f[4]) ||
	    !num(f[5], &x->count))
		return -EBADMSG;
	return 0;
}

int
tlsrpt_agg_decode(struct tlsrpt_agg *a, const char *p, size_t len)
{
	char *copy = malloc(len + 1), *line, *next, *f[6];
	int rc = 0;

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, p, len);
	copy[len] = '\0';
	a->npol = 0;
	if (strlen(copy) != len || strncmp(copy, "v1\n", 3) != 0) {
		free(copy);
		return -EBADMSG;
	}
	for (line = copy + 3; rc == 0 && *line; line = next) {
		if ((next = strchr(line, '\n')) == NULL) {
			rc = -EBADMSG;
			break;
		}
		*next++ = '\0';
		if (line[0] == 'P' && split(line, f, 6))
			rc = decode_policy(a, f);
		else if (line[0] == 'F' && split(line, f, 6))
			rc = decode_fail(a, f);
		else
			rc = -EBADMSG;
	}
	free(copy);
	return rc;
}
