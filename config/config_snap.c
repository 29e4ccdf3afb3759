/* SPDX-License-Identifier: ISC */
/*
 * config_snap.c - a loaded configuration as a shared snapshot: its
 * references, the derived state attached to it, and what a reload of it
 * cannot change.
 *
 * DESIGN
 * One atomic count per snapshot. Whoever holds a reference may read the
 * whole struct without a lock, because nothing writes to a snapshot once
 * a second thread can see it (config_attach runs before that). The last
 * config_unref, on whichever thread drops it, frees the snapshot and
 * what was attached to it.
 *
 * config_restart_keys compares two snapshots key by key through the key
 * table, each value printed as the file syntax (config_key_dump), so a
 * key added to the table is compared without code of its own.
 */
#include <stdlib.h>
#include <string.h>

#include "base/compat.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "config/config_keys.h"

struct config_attachment {
	void *p;
	void (*free_fn)(void *);
	struct config_attachment *next;
};

struct config *
config_ref(struct config *c)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void
config_unref(struct config *c)
{
	struct config_attachment *a;

	/* acq_rel: every holder's reads happen before the free */
	if (c == NULL ||
	    atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	while ((a = c->attached) != NULL) {
		c->attached = a->next;
		a->free_fn(a->p);
		free(a);
	}
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].section != CONFIG_SECT_ROUTE &&
		    config_keys[i].section != CONFIG_SECT_DKIM &&
		    config_keys[i].section != CONFIG_SECT_LIMIT)
			config_key_free(&config_keys[i], c);
	free(c->routes);
	free(c->dkims);
	free(c->limits);
	free(c);
}

void
config_attach(struct config *c, void *p, void (*free_fn)(void *))
{
	struct config_attachment *a = xcalloc(1, sizeof(*a));

	MTA_ASSERT(config_attached(c, free_fn) == NULL);
	a->p = p;
	a->free_fn = free_fn;
	a->next = c->attached;
	c->attached = a;
}

void *
config_attached(const struct config *c, void (*free_fn)(void *))
{
	for (const struct config_attachment *a = c->attached; a; a = a->next)
		if (a->free_fn == free_fn)
			return a->p;
	return NULL;
}

/* The value of k in c as the file spells it, malloc'd; NULL on OOM. */
static char *
key_text(const struct config_key *k, const struct config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (fp == NULL)
		return NULL;
	config_key_dump(k, c, fp);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

size_t
config_restart_keys(const struct config *running, const struct config *next,
    struct config_restart_key *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		char *a, *b;
		bool differ;

		if (k->restart == NULL || k->section == CONFIG_SECT_ROUTE ||
		    k->section == CONFIG_SECT_DKIM ||
		    k->section == CONFIG_SECT_LIMIT)
			continue;
		a = key_text(k, running);
		b = key_text(k, next);
		if (a == NULL || b == NULL)
			fatalx("config: out of memory");
		differ = strcmp(a, b) != 0;
		free(a);
		free(b);
		if (!differ)
			continue;
		if (n < max) {
			str_fmt(out[n].key, sizeof(out[n].key), "%s.%s",
			    config_section_name(k->section), k->name);
			out[n].reason = k->restart;
		}
		n++;
	}
	return n;
}
