/* SPDX-License-Identifier: ISC */
/*
 * dns_cache.c - replies by (type, name) until their TTL runs out.
 *
 * The resolver thread owns the cache; there is no lock. An entry holds an
 * opaque copy of what the resolver stored (a raw reply, positive or
 * negative) and its expiry in monotonic ms. TTLs are clamped to
 * [min_ttl, max_ttl] so a zero TTL does not turn every delivery into a
 * query and a week-long one does not pin a stale MX. Memory is bounded by
 * an entry count and a byte budget; the least recently used entry goes
 * first. A chained hash table finds entries, a doubly linked list keeps
 * the use order.
 */
#include "dns/dns_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

struct dns_cache_ent {
	struct dns_cache_ent *hnext;       /* hash chain */
	struct dns_cache_ent *prev, *next; /* use order, most recent first */
	uint64_t expires;                  /* monotonic ms */
	uint32_t hash;
	uint16_t type;
	size_t len; /* bytes of data */
	char *name; /* points into data[] after len */
	unsigned char data[];
};

struct dns_cache {
	struct dns_cache_ent **tab;
	size_t mask; /* buckets - 1, a power of two minus one */
	struct dns_cache_ent *head, *tail;
	size_t count, max_entries;
	size_t bytes, max_bytes;   /* data bytes only */
	uint64_t min_ttl, max_ttl; /* ms */
};

static uint32_t
dns_cache_hash(uint16_t type, const char *name)
{
	uint32_t h = 2166136261u ^ type;

	/* FNV-1a; names are stored lowercase, so no case folding. */
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

struct dns_cache *
dns_cache_new(size_t max_entries, size_t max_bytes, uint64_t min_ttl_ms,
    uint64_t max_ttl_ms)
{
	struct dns_cache *c = xcalloc(1, sizeof(*c));
	size_t n = 16;

	while (n < max_entries && n < ((size_t)1 << 24))
		n <<= 1;
	c->tab = xcalloc(n, sizeof(*c->tab));
	c->mask = n - 1;
	c->max_entries = max_entries ? max_entries : 1;
	c->max_bytes = max_bytes;
	c->min_ttl = min_ttl_ms;
	c->max_ttl = max_ttl_ms;
	if (c->min_ttl > c->max_ttl)
		c->min_ttl = c->max_ttl;
	return c;
}

static void
dns_cache_unlink(struct dns_cache *c, struct dns_cache_ent *e)
{
	struct dns_cache_ent **pp = &c->tab[e->hash & c->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	c->count--;
	c->bytes -= e->len;
	free(e);
}

static void
dns_cache_front(struct dns_cache *c, struct dns_cache_ent *e)
{
	if (c->head == e)
		return;
	e->prev->next = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = NULL;
	e->next = c->head;
	c->head->prev = e;
	c->head = e;
}

void
dns_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	while (c->head)
		dns_cache_unlink(c, c->head);
	free(c->tab);
	free(c);
}

static struct dns_cache_ent *
dns_cache_find(
    struct dns_cache *c, uint16_t type, const char *name, uint32_t hash)
{
	struct dns_cache_ent *e;

	for (e = c->tab[hash & c->mask]; e; e = e->hnext)
		if (e->hash == hash && e->type == type &&
		    strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

void
dns_cache_put(struct dns_cache *c, uint16_t type, const char *name,
    const void *data, size_t len, uint32_t ttl_s, uint64_t now_ms)
{
	uint32_t hash = dns_cache_hash(type, name);
	size_t nlen = strlen(name) + 1;
	uint64_t ttl = (uint64_t)ttl_s * 1000;
	struct dns_cache_ent *e;

	if ((e = dns_cache_find(c, type, name, hash)) != NULL)
		dns_cache_unlink(c, e);
	if (c->max_ttl == 0 || len > c->max_bytes)
		return;
	if (ttl < c->min_ttl)
		ttl = c->min_ttl;
	if (ttl > c->max_ttl)
		ttl = c->max_ttl;
	while (c->tail &&
	       (c->count + 1 > c->max_entries || c->bytes + len > c->max_bytes))
		dns_cache_unlink(c, c->tail);
	e = xmalloc(sizeof(*e) + len + nlen);
	memcpy(e->data, data, len);
	e->name = (char *)e->data + len;
	memcpy(e->name, name, nlen);
	e->len = len;
	e->type = type;
	e->hash = hash;
	e->expires = now_ms + ttl;
	e->hnext = c->tab[hash & c->mask];
	c->tab[hash & c->mask] = e;
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
	c->count++;
	c->bytes += len;
}

bool
dns_cache_get(struct dns_cache *c, uint16_t type, const char *name,
    uint64_t now_ms, const void **data, size_t *len)
{
	uint32_t hash = dns_cache_hash(type, name);
	struct dns_cache_ent *e = dns_cache_find(c, type, name, hash);

	if (e == NULL)
		return false;
	if (now_ms >= e->expires) {
		dns_cache_unlink(c, e);
		return false;
	}
	dns_cache_front(c, e);
	*data = e->data;
	*len = e->len;
	return true;
}

size_t
dns_cache_count(const struct dns_cache *c)
{
	return c->count;
}
