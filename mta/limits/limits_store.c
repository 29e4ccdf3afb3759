/* SPDX-License-Identifier: ISC */
/*
 * limits_store.c - the local state of every limit: (key -> TAT) in 64
 * mutex-protected shards (see limits.h for why). Any thread.
 *
 * A shard is a chained hash table that doubles when it gets full, and is
 * swept of idle keys first: a key whose TAT is past is the same as no
 * key, so dropping it changes no answer.
 */
#include "limits/limits.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define SHARD_BUCKETS0 64

struct lent {
	struct lent *next;
	uint64_t hash;
	uint64_t tat;
	uint64_t *leases; /* deadlines of the leases held; NULL: none */
	uint32_t nleases, capleases;
	size_t keylen;
	char key[]; /* keylen bytes, not NUL-terminated */
};

struct lshard {
	pthread_mutex_t lock;
	struct lent **b; /* nb buckets, a power of two */
	size_t nb;
	size_t n; /* keys */
	uint64_t overflows;
} __attribute__((aligned(64))); /* one cache line each: no false sharing */

struct limits_store {
	struct lshard sh[LIMITS_SHARDS];
};

/* FNV-1a: keys are short; any thread. */
static uint64_t
key_hash(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	/* a final mix: FNV's high bits (the shard) vary little over short
	 * keys that differ in their last bytes */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct limits_store *
limits_store_new(void)
{
	struct limits_store *st = xcalloc(1, sizeof(*st));

	for (size_t i = 0; i < LIMITS_SHARDS; i++) {
		pthread_mutex_init(&st->sh[i].lock, NULL);
		st->sh[i].nb = SHARD_BUCKETS0;
		st->sh[i].b = xcalloc(SHARD_BUCKETS0, sizeof(*st->sh[i].b));
	}
	return st;
}

void
limits_store_free(struct limits_store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < LIMITS_SHARDS; i++) {
		struct lshard *sh = &st->sh[i];

		for (size_t j = 0; j < sh->nb; j++)
			for (struct lent *e = sh->b[j], *nx; e != NULL;
			     e = nx) {
				nx = e->next;
				free(e->leases);
				free(e);
			}
		free(sh->b);
		pthread_mutex_destroy(&sh->lock);
	}
	free(st);
}

/* Forget the leases of e that have expired. Its shard's lock held. */
static void
lent_expire(struct lent *e, uint64_t now)
{
	for (uint32_t i = 0; i < e->nleases;)
		if (e->leases[i] <= now)
			e->leases[i] = e->leases[--e->nleases];
		else
			i++;
}

/* Drop idle keys of sh. sh->lock held. */
static void
shard_sweep(struct lshard *sh, uint64_t now)
{
	for (size_t j = 0; j < sh->nb; j++)
		for (struct lent **pp = &sh->b[j]; *pp != NULL;) {
			struct lent *e = *pp;

			lent_expire(e, now);
			if (gcra_idle(e->tat, now) && e->nleases == 0) {
				*pp = e->next;
				free(e->leases);
				free(e);
				sh->n--;
			} else {
				pp = &e->next;
			}
		}
}

/* Double the buckets of sh. sh->lock held. */
static void
shard_grow(struct lshard *sh)
{
	size_t nb = sh->nb * 2;
	struct lent **b = xcalloc(nb, sizeof(*b));

	for (size_t j = 0; j < sh->nb; j++)
		for (struct lent *e = sh->b[j], *nx; e != NULL; e = nx) {
			nx = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(sh->b);
	sh->b = b;
	sh->nb = nb;
}

/* The entry of key in sh, made when new; NULL when sh is full. */
static struct lent *
shard_get(struct lshard *sh, const char *key, size_t keylen, uint64_t hash,
    uint64_t now)
{
	struct lent *e;

	for (e = sh->b[hash & (sh->nb - 1)]; e != NULL; e = e->next)
		if (e->hash == hash && e->keylen == keylen &&
		    memcmp(e->key, key, keylen) == 0)
			return e;
	if (sh->n >= sh->nb) {
		shard_sweep(sh, now);
		if (sh->n >= sh->nb / 2 && sh->nb < LIMITS_SHARD_MAX)
			shard_grow(sh);
		if (sh->n >= LIMITS_SHARD_MAX) {
			sh->overflows++;
			return NULL;
		}
	}
	e = xmalloc(sizeof(*e) + keylen);
	e->hash = hash;
	e->tat = 0;
	e->leases = NULL;
	e->nleases = e->capleases = 0;
	e->keylen = keylen;
	memcpy(e->key, key, keylen);
	e->next = sh->b[hash & (sh->nb - 1)];
	sh->b[hash & (sh->nb - 1)] = e;
	sh->n++;
	return e;
}

bool
limits_store_take(struct limits_store *st, const char *key, size_t keylen,
    const struct gcra *g, uint64_t now, uint64_t n, bool force)
{
	uint64_t hash = key_hash(key, keylen);
	struct lshard *sh = &st->sh[(hash >> 32) % LIMITS_SHARDS];
	struct lent *e;
	bool ok = true;

	pthread_mutex_lock(&sh->lock);
	if ((e = shard_get(sh, key, keylen, hash, now)) == NULL)
		; /* full: let it through (counted in overflows) */
	else if (force)
		gcra_charge(g, &e->tat, now, n);
	else
		ok = gcra_take(g, &e->tat, now, n, NULL);
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

void
limits_store_stats(struct limits_store *st, struct limits_store_stats *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < LIMITS_SHARDS; i++) {
		pthread_mutex_lock(&st->sh[i].lock);
		s->keys += st->sh[i].n;
		s->overflows += st->sh[i].overflows;
		pthread_mutex_unlock(&st->sh[i].lock);
	}
}

/* The shard of key and its hash. */
static struct lshard *
shard_of(
    struct limits_store *st, const char *key, size_t keylen, uint64_t *hash)
{
	*hash = key_hash(key, keylen);
	return &st->sh[(*hash >> 32) % LIMITS_SHARDS];
}

bool
limits_store_lease(struct limits_store *st, const char *key, size_t keylen,
    uint64_t max, uint64_t deadline, uint64_t now)
{
	uint64_t hash;
	struct lshard *sh = shard_of(st, key, keylen, &hash);
	struct lent *e;
	bool ok = true;

	pthread_mutex_lock(&sh->lock);
	if ((e = shard_get(sh, key, keylen, hash, now)) != NULL) {
		lent_expire(e, now);
		if (e->nleases >= max) {
			ok = false;
		} else {
			if (e->nleases == e->capleases) {
				e->capleases =
				    e->capleases ? e->capleases * 2 : 4;
				e->leases = xreallocarray(e->leases,
				    e->capleases, sizeof(*e->leases));
			}
			e->leases[e->nleases++] = deadline;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

void
limits_store_unlease(
    struct limits_store *st, const char *key, size_t keylen, uint64_t now)
{
	uint64_t hash;
	struct lshard *sh = shard_of(st, key, keylen, &hash);
	struct lent *e;

	pthread_mutex_lock(&sh->lock);
	if ((e = shard_get(sh, key, keylen, hash, now)) != NULL &&
	    e->nleases > 0) {
		uint32_t first = 0;

		for (uint32_t i = 1; i < e->nleases; i++)
			if (e->leases[i] < e->leases[first])
				first = i;
		e->leases[first] = e->leases[--e->nleases];
	}
	pthread_mutex_unlock(&sh->lock);
}
