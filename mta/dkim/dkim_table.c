/* SPDX-License-Identifier: ISC */
/*
 * dkim_table.c - the signing table of a configuration snapshot: one
 * signer per [dkim] section, its key loaded, and the lookup of the
 * signers for a From domain.
 *
 * Built once by the thread that loads a snapshot (start or SIGHUP), so a
 * missing or bad key refuses that start or reload; read-only afterwards
 * and shared by every receive thread.
 */
#include "dkim/dkim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"

/* What RFC 6376 5.4.1 recommends and large senders sign. */
static const char *const default_names[] = {"from", "to", "cc", "subject",
    "date", "message-id", "reply-to", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding", "list-*"};

static void
signer_names(struct dkim_signer *s, const char *list)
{
	char *copy, *tok, *save;

	if (list[0] == '\0') {
		s->nnames = MTA_ARRAY_LEN(default_names);
		s->names = xcalloc(s->nnames, sizeof(*s->names));
		for (size_t i = 0; i < s->nnames; i++)
			s->names[i] = xstrdup(default_names[i]);
		return;
	}
	/* RFC 6376 5.4: From must be signed, whatever the list says */
	s->names = xcalloc(1, sizeof(*s->names));
	s->names[s->nnames++] = xstrdup("from");
	copy = xstrdup(list);
	for (tok = strtok_r(copy, " \t,:", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,:", &save)) {
		str_lower(tok);
		if (strcmp(tok, "from") == 0)
			continue;
		s->names =
		    xreallocarray(s->names, s->nnames + 1, sizeof(*s->names));
		s->names[s->nnames++] = xstrdup(tok);
	}
	free(copy);
}

static void
signer_fill(struct dkim_signer *s, const struct config_dkim *cd)
{
	static const enum dkim_canon hc[] = {
	    DKIM_RELAXED, DKIM_RELAXED, DKIM_SIMPLE, DKIM_SIMPLE};
	static const enum dkim_canon bc[] = {
	    DKIM_RELAXED, DKIM_SIMPLE, DKIM_RELAXED, DKIM_SIMPLE};

	str_copy(s->domain, sizeof(s->domain), cd->domain);
	str_copy(s->selector, sizeof(s->selector), cd->selector);
	s->hcanon = hc[cd->canon];
	s->bcanon = bc[cd->canon];
	s->expire = (cd->expire + 999) / 1000;
	s->subdomains = cd->subdomains;
	signer_names(s, cd->headers);
}

int
dkim_table_new(
    const struct config *c, struct dkim_table **out, char *err, size_t errlen)
{
	struct dkim_table *t;
	char e2[DKIM_ERR_MAX];
	int res;

	*out = NULL;
	if (c->ndkims == 0)
		return 0;
	t = xcalloc(1, sizeof(*t));
	t->s = xcalloc(c->ndkims, sizeof(*t->s));
	for (size_t i = 0; i < c->ndkims; i++) {
		const struct config_dkim *cd = &c->dkims[i];

		if ((res = dkim_key_load(
		         cd->key, &t->s[i].key, e2, sizeof(e2))) < 0) {
			snprintf(err, errlen, "%s:%u: key: cannot load %s",
			    c->file, cd->key_line, e2);
			dkim_table_free(t);
			return res;
		}
		t->n++;
		signer_fill(&t->s[i], cd);
	}
	*out = t;
	return 0;
}

void
dkim_table_free(struct dkim_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		dkim_key_free(t->s[i].key);
		for (size_t j = 0; j < t->s[i].nnames; j++)
			free(t->s[i].names[j]);
		free(t->s[i].names);
	}
	free(t->s);
	free(t);
}

static void
table_release(void *p)
{
	dkim_table_free(p);
}

int
dkim_table_attach(struct config *c, char *err, size_t errlen)
{
	struct dkim_table *t;
	int res;

	if ((res = dkim_table_new(c, &t, err, errlen)) < 0)
		return res;
	if (t != NULL)
		config_attach(c, t, table_release);
	return 0;
}

const struct dkim_table *
dkim_table_of(const struct config *c)
{
	return config_attached(c, table_release);
}

/* The signers of exactly domain (with subdomains = yes when sub). */
static size_t
find_exact(const struct dkim_table *t, const char *domain, bool sub,
    const struct dkim_signer **out)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n && n < DKIM_KEYS_MAX; i++)
		if (strcmp(t->s[i].domain, domain) == 0 &&
		    (!sub || t->s[i].subdomains))
			out[n++] = &t->s[i];
	return n;
}

size_t
dkim_table_find(const struct dkim_table *t, const char *domain,
    const struct dkim_signer **out)
{
	const char *p;
	size_t n;

	if (t == NULL)
		return 0;
	if ((n = find_exact(t, domain, false, out)) > 0)
		return n;
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.'))
		if ((n = find_exact(t, p + 1, true, out)) > 0)
			return n;
	return find_exact(t, "*", false, out);
}
