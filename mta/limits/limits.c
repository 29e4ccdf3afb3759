/* SPDX-License-Identifier: ISC */
/*
 * limits.c - the limits of one snapshot: each [limit] section as a GCRA
 * and a key type, and the key value a subject has for it. Immutable once
 * built; any thread (the store does the locking).
 */
#include "limits/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/xalloc.h"

struct limit {
	const struct config_limit *def; /* in the snapshot */
	struct gcra g;
	bool rated; /* has a rate (else only a lease cap: max) */
};

struct limits {
	struct limits_store *st; /* borrowed */
	struct limit *v;
	size_t n;
	unsigned counts; /* bit (1 << count) when a rated limit counts it */
	bool leases;     /* a limit caps connections held (max) */
};

uint64_t
limits_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct limits *
limits_new(const struct config *c, struct limits_store *st)
{
	struct limits *l;

	if (c->nlimits == 0)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->st = st;
	l->v = xcalloc(c->nlimits, sizeof(*l->v));
	for (size_t i = 0; i < c->nlimits; i++) {
		const struct config_limit *d = &c->limits[i];

		l->v[l->n].def = d;
		/* no rate (config_load refused a zero one): max alone */
		l->v[l->n].rated = gcra_init(
		    &l->v[l->n].g, d->rate_n, d->period_ms * 1000, d->burst);
		if (l->v[l->n].rated)
			l->counts |= 1u << d->count;
		if (d->max > 0)
			l->leases = true;
		l->n++;
	}
	return l;
}

void
limits_free(struct limits *l)
{
	if (l == NULL)
		return;
	free(l->v);
	free(l);
}

bool
limits_counts(const struct limits *l, enum config_limit_count what)
{
	return l != NULL && (l->counts & (1u << what)) != 0;
}

/* addr with the bits past prefix cleared, as "ADDR/PREFIX". */
static bool
net_text(const char *addr, const struct config_limit *d, char *out, size_t len)
{
	uint8_t a[16];
	char txt[INET6_ADDRSTRLEN];
	int af = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	unsigned bits = af == AF_INET ? d->prefix4 : d->prefix6;
	size_t alen = af == AF_INET ? 4 : 16;

	if (inet_pton(af, addr, a) != 1)
		return false;
	for (size_t i = 0; i < alen; i++) {
		unsigned keep = bits > i * 8 ? bits - (unsigned)i * 8 : 0;

		if (keep < 8)
			a[i] &= (uint8_t)(0xff00u >> keep);
	}
	if (inet_ntop(af, a, txt, sizeof(txt)) == NULL)
		return false;
	snprintf(out, len, "%s/%u", txt, bits);
	return true;
}

/* The store key of limit d for s: "NAME\0VALUE"; 0 when s has none. */
static size_t
key_of(const struct config_limit *d, const struct limits_subject *s, char *out,
    size_t len)
{
	char v[LIMITS_KEY_MAX];
	const char *val = NULL;
	int n;

	switch (d->key_type) {
	case CONFIG_LIMIT_KEY_USER:
		val = s->user;
		break;
	case CONFIG_LIMIT_KEY_CLIENT:
		val = s->client;
		break;
	case CONFIG_LIMIT_KEY_CLIENT_NETWORK:
		if (s->client != NULL && net_text(s->client, d, v, sizeof(v)))
			val = v;
		break;
	case CONFIG_LIMIT_KEY_SENDER_DOMAIN:
		val = s->sender_domain;
		break;
	case CONFIG_LIMIT_KEY_DEST_DOMAIN:
	case CONFIG_LIMIT_KEY_DEST_SITE:
		break; /* delivery's (deliver/shape.c), not a submission's */
	}
	if (val == NULL || val[0] == '\0')
		return 0;
	n = snprintf(out, len, "%s%c%s", d->name, '\0', val);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Every limit counting what with a key for s; see limits_take. */
static bool
limits_apply(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now, bool force,
    unsigned nodes, const char **name)
{
	char key[LIMITS_KEY_MAX];
	struct gcra share;
	bool ok = true;

	if (!limits_counts(l, what))
		return true;
	for (size_t i = 0; i < l->n; i++) {
		const struct limit *m = &l->v[i];
		size_t klen;

		if (m->def->count != what || !m->rated ||
		    (klen = key_of(m->def, s, key, sizeof(key))) == 0)
			continue;
		if (nodes > 1)
			gcra_share(&m->g, nodes, &share);
		if (!limits_store_take(l->st, key, klen,
		        nodes > 1 ? &share : &m->g, now, n, force) &&
		    ok) {
			ok = false;
			*name = m->def->name;
		}
	}
	return ok;
}

bool
limits_take(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now, const char **name)
{
	return limits_apply(l, what, s, n, now, false, 1, name);
}

bool
limits_take_share(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now, unsigned nodes,
    const char **name)
{
	return limits_apply(l, what, s, n, now, false, nodes, name);
}

size_t
limits_steps(const struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, struct limits_step *out, size_t max)
{
	size_t k = 0;

	if (!limits_counts(l, what))
		return 0;
	for (size_t i = 0; i < l->n && k < max; i++) {
		const struct limit *m = &l->v[i];

		if (m->def->count != what || !m->rated ||
		    (out[k].keylen = key_of(
		         m->def, s, out[k].key, sizeof(out[k].key))) == 0)
			continue;
		out[k].name = m->def->name;
		out[k].g = m->g;
		out[k].max = 0;
		k++;
	}
	return k;
}

void
limits_charge(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now)
{
	const char *name;

	(void)limits_apply(l, what, s, n, now, true, 1, &name);
}

bool
limits_leases(const struct limits *l)
{
	return l != NULL && l->leases;
}

/* Release the leases of limits [0, upto) that s holds. */
static void
lease_drop(
    struct limits *l, const struct limits_subject *s, size_t upto, uint64_t now)
{
	char key[LIMITS_KEY_MAX];
	size_t klen;

	for (size_t i = 0; i < upto; i++)
		if (l->v[i].def->max > 0 &&
		    (klen = key_of(l->v[i].def, s, key, sizeof(key))) != 0)
			limits_store_unlease(l->st, key, klen, now);
}

static bool
lease_apply(struct limits *l, const struct limits_subject *s, uint64_t now,
    uint64_t ttl, unsigned nodes, const char **name)
{
	char key[LIMITS_KEY_MAX];
	size_t klen;
	uint64_t max;

	if (!limits_leases(l))
		return true;
	for (size_t i = 0; i < l->n; i++) {
		const struct config_limit *d = l->v[i].def;

		if (d->max == 0 || (klen = key_of(d, s, key, sizeof(key))) == 0)
			continue;
		max = nodes > 1 ? d->max / nodes : d->max;
		if (max == 0)
			max = 1;
		if (!limits_store_lease(
		        l->st, key, klen, max, now + ttl, now)) {
			lease_drop(l, s, i, now);
			*name = d->name;
			return false;
		}
	}
	return true;
}

bool
limits_lease(struct limits *l, const struct limits_subject *s, uint64_t now,
    uint64_t ttl, const char **name)
{
	return lease_apply(l, s, now, ttl, 1, name);
}

bool
limits_lease_share(struct limits *l, const struct limits_subject *s,
    uint64_t now, uint64_t ttl, unsigned nodes, const char **name)
{
	return lease_apply(l, s, now, ttl, nodes, name);
}

size_t
limits_lease_steps(const struct limits *l, const struct limits_subject *s,
    struct limits_step *out, size_t max)
{
	size_t k = 0;

	if (!limits_leases(l))
		return 0;
	for (size_t i = 0; i < l->n && k < max; i++) {
		const struct config_limit *d = l->v[i].def;

		if (d->max == 0 || (out[k].keylen = key_of(d, s, out[k].key,
		                        sizeof(out[k].key))) == 0)
			continue;
		out[k].name = d->name;
		out[k].g = l->v[i].g;
		out[k].max = d->max;
		k++;
	}
	return k;
}

void
limits_unlease(struct limits *l, const struct limits_subject *s, uint64_t now)
{
	if (limits_leases(l))
		lease_drop(l, s, l->n, now);
}
