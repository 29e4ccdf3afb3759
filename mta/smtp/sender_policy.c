/* SPDX-License-Identifier: ISC */
/*
 * sender_policy.c - the sender ownership table and its judgement (see
 * sender_policy.h).
 *
 * Owns: one immutable table per configuration snapshot: (user, pattern)
 * rows sorted by user, so a check is a binary search and a short scan of
 * that user's rows, and the relay domains as one lowercase word list.
 * Built on the thread that loads the snapshot; read by any thread.
 */
#include "smtp/sender_policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/file.h"
#include "base/str.h"
#include "base/xalloc.h"

#define SENDER_PAT_MAX  512 /* bytes of a pattern, with NUL */
#define SENDER_USER_MAX 256 /* as AUTH_USER_MAX */

struct sender_row {
	char *user; /* into pool */
	char *pat;  /* into pool, lowercase: "a@b", "@b" or "*" */
};

struct sender_policy {
	struct sender_row *rows; /* sorted by user */
	size_t nrows;
	char *pool;     /* the senders text, split in place */
	char **domains; /* relay_sender_domains, lowercase; into dpool */
	size_t ndomains;
	char *dpool;
	bool auth_null, relay_null, check_from;
	bool has_senders; /* a senders file is set (maybe empty) */
};

static int
row_cmp(const void *a, const void *b)
{
	const struct sender_row *x = a, *y = b;

	return strcmp(x->user, y->user);
}

static bool
user_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= SENDER_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return false;
	return true;
}

/* One pattern, lowercased in place into its stored form; NULL if bad. */
static char *
pat_norm(char *w)
{
	char *at;

	str_lower(w);
	if (strcmp(w, "*") == 0)
		return w;
	if (strlen(w) >= SENDER_PAT_MAX || (at = strrchr(w, '@')) == NULL ||
	    at[1] == '\0' || strchr(at + 1, '*') != NULL)
		return NULL;
	if (at == w + 1 && w[0] == '*') /* "*@dom" is stored as "@dom" */
		return at;
	if (strchr(w, '*') != NULL)
		return NULL;
	return w;
}

static void
row_add(struct sender_policy *p, char *user, char *pat)
{
	p->rows = xreallocarray(p->rows, p->nrows + 1, sizeof(*p->rows));
	p->rows[p->nrows].user = user;
	p->rows[p->nrows].pat = pat;
	p->nrows++;
}

/* Parse one line in place. 0 or -1 with *why set. */
static int
line_parse(struct sender_policy *p, char *line, const char **why)
{
	char *colon, *user = line, *w, *save = NULL, *pat;

	while (*user == ' ' || *user == '\t')
		user++;
	if (*user == '\0' || *user == '#' || *user == '\r')
		return 0;
	if ((colon = strchr(user, ':')) == NULL) {
		*why = "no colon (NAME: PATTERN ...)";
		return -1;
	}
	*colon = '\0';
	for (char *e = colon; e > user && isspace((unsigned char)e[-1]);)
		*--e = '\0';
	if (!user_valid(user)) {
		*why = "bad user name";
		return -1;
	}
	for (w = strtok_r(colon + 1, " \t\r,", &save); w != NULL;
	     w = strtok_r(NULL, " \t\r,", &save)) {
		if ((pat = pat_norm(w)) == NULL) {
			*why = "bad pattern (ADDRESS, *@DOMAIN or *)";
			return -1;
		}
		row_add(p, user, pat);
	}
	return 0;
}

static int
senders_parse(struct sender_policy *p, const struct sender_policy_cfg *c,
    char *err, size_t errlen)
{
	char *line = p->pool, *nl;
	const char *why = NULL;
	size_t lineno = 0;

	for (; line != NULL; line = nl) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl++ = '\0';
		if (line_parse(p, line, &why) < 0) {
			str_fmt(err, errlen, "%s:%zu: %s", c->senders_name,
			    lineno, why);
			return -EINVAL;
		}
	}
	if (p->nrows > 0)
		qsort(p->rows, p->nrows, sizeof(*p->rows), row_cmp);
	return 0;
}

static int
domains_parse(
    struct sender_policy *p, const char *list, char *err, size_t errlen)
{
	char *w, *save = NULL;

	p->dpool = xstrdup(list);
	str_lower(p->dpool);
	for (w = strtok_r(p->dpool, " \t,", &save); w != NULL;
	     w = strtok_r(NULL, " \t,", &save)) {
		if (strchr(w, '@') != NULL || w[0] == '.') {
			str_fmt(err, errlen,
			    "relay_sender_domains: %s: a domain, not an "
			    "address",
			    w);
			return -EINVAL;
		}
		p->domains = xreallocarray(
		    p->domains, p->ndomains + 1, sizeof(*p->domains));
		p->domains[p->ndomains++] = w;
	}
	return 0;
}

int
sender_policy_new(const struct sender_policy_cfg *c, struct sender_policy **out,
    char *err, size_t errlen)
{
	struct sender_policy *p = xcalloc(1, sizeof(*p));
	int res = 0;

	p->auth_null = c->auth_null;
	p->relay_null = c->relay_null;
	p->check_from = c->check_from;
	if (c->senders_text != NULL) {
		p->has_senders = true;
		p->pool = xmalloc(c->senders_len + 1);
		memcpy(p->pool, c->senders_text, c->senders_len);
		p->pool[c->senders_len] = '\0';
		res = senders_parse(p, c, err, errlen);
	}
	if (res == 0 && c->relay_domains != NULL)
		res = domains_parse(p, c->relay_domains, err, errlen);
	if (res < 0) {
		sender_policy_free(p);
		return res;
	}
	*out = p;
	return 0;
}

int
sender_policy_load(const char *path, const struct sender_policy_cfg *c,
    struct sender_policy **out, char *err, size_t errlen)
{
	struct sender_policy_cfg c2 = *c;
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (path != NULL && path[0] != '\0') {
		if ((rc = file_read(path, SENDER_FILE_MAX, &text, &len, NULL)) <
		    0) {
			str_fmt(err, errlen, "%s: %s", path, file_strerror(rc));
			return rc;
		}
		c2.senders_text = text;
		c2.senders_len = len;
		c2.senders_name = path;
	}
	rc = sender_policy_new(&c2, out, err, errlen);
	free(text);
	return rc;
}

void
sender_policy_free(struct sender_policy *p)
{
	if (p == NULL)
		return;
	free(p->rows);
	free(p->pool);
	free(p->domains);
	free(p->dpool);
	free(p);
}

/* The sender's domain: after its last '@', or NULL. */
static const char *
addr_domain(const char *addr, size_t len, size_t *dlen)
{
	const char *at = NULL;

	for (size_t i = 0; i < len; i++)
		if (addr[i] == '@')
			at = addr + i;
	if (at == NULL)
		return NULL;
	*dlen = len - (size_t)(at + 1 - addr);
	return at + 1;
}

static bool
pat_match(const char *pat, const char *addr, size_t len)
{
	size_t plen = strlen(pat);

	if (strcmp(pat, "*") == 0)
		return true;
	/* "@dom" holds one '@', so a match is the address's last one */
	if (pat[0] == '@')
		return len > plen && str_ieq(addr + len - plen, plen, pat);
	return str_ieq(addr, len, pat);
}

static bool
user_owns(const struct sender_policy *p, const char *user, const char *addr,
    size_t len)
{
	struct sender_row key = {.user = (char *)(uintptr_t)user};
	const struct sender_row *r;

	if (p->nrows == 0)
		return false;
	r = bsearch(&key, p->rows, p->nrows, sizeof(*r), row_cmp);
	if (r == NULL)
		return false;
	while (r > p->rows && strcmp(r[-1].user, user) == 0)
		r--;
	for (; r < p->rows + p->nrows && strcmp(r->user, user) == 0; r++)
		if (pat_match(r->pat, addr, len))
			return true;
	return false;
}

static bool
relay_allows(const struct sender_policy *p, const char *addr, size_t len)
{
	const char *dom;
	size_t dlen = 0;

	if ((dom = addr_domain(addr, len, &dlen)) == NULL)
		return false;
	for (size_t i = 0; i < p->ndomains; i++)
		if (str_ieq(dom, dlen, p->domains[i]))
			return true;
	return false;
}

bool
sender_policy_active(
    const struct sender_policy *p, const char *user, bool relay)
{
	if (p == NULL)
		return false;
	if (user != NULL)
		return p->has_senders || !p->auth_null;
	if (relay)
		return p->ndomains > 0 || !p->relay_null;
	return false;
}

enum sender_verdict
sender_policy_check(const struct sender_policy *p, const char *user, bool relay,
    const char *addr, size_t len)
{
	if (!sender_policy_active(p, user, relay))
		return SENDER_OK;
	if (user != NULL) {
		if (len == 0)
			return p->auth_null ? SENDER_OK : SENDER_NOT_OWNED;
		if (!p->has_senders || user_owns(p, user, addr, len))
			return SENDER_OK;
		return SENDER_NOT_OWNED;
	}
	if (len == 0)
		return p->relay_null ? SENDER_OK : SENDER_NOT_ALLOWED;
	if (p->ndomains == 0 || relay_allows(p, addr, len))
		return SENDER_OK;
	return SENDER_NOT_ALLOWED;
}

bool
sender_policy_check_from(const struct sender_policy *p)
{
	return p != NULL && p->check_from;
}
