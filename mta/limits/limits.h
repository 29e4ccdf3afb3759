/* SPDX-License-Identifier: ISC */
/*
 * limits.h - the throttle engine: [limit NAME] sections applied to what
 * clients submit (messages, recipients, bytes, connections), each limit a
 * GCRA (gcra.h) per key (user, client, client network, sender domain).
 *
 * DESIGN. Two objects, because they live differently:
 *   - struct limits_store is the state: one TAT per (limit name, key
 *     value). It outlives configuration snapshots (a reload that keeps a
 *     limit's name keeps its state), and every receive thread uses the
 *     one store of the stage. It is sharded: 64 shards each behind its own
 *     mutex, chosen by the key's hash, so threads checking different keys
 *     rarely meet, and a check is a hash, a lock and a few compares. Idle
 *     keys (TAT in the past, which GCRA treats as fresh) are swept when a
 *     shard grows, so memory follows the number of keys active within one
 *     burst, and a shard never holds more than LIMITS_SHARD_MAX keys (past
 *     that a new key is let through and counted in limits_store_stats:
 *     an attacker with millions of addresses must not exhaust memory).
 *   - struct limits is the definitions of one snapshot (rates parsed,
 *     which counts have limits), immutable, borrowing the store. NULL
 *     when the snapshot has no [limit]: then nothing is called at all, so
 *     an unlimited relay pays nothing.
 * Delivery shaping can use the same store with its own limits (keys by
 * destination); connection limits use the GCRA on new connections.
 *
 * Each limit that applies is charged on its own: when one of two limits
 * refuses, the other keeps the units it counted (as Postfix's anvil
 * counts each rate independently).
 *
 * Thread: limits_take on any thread holding the snapshot; the store is
 * thread-safe.
 */
#ifndef MTA_LIMITS_H
#define MTA_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "limits/gcra.h"

#define LIMITS_SHARDS    64
#define LIMITS_SHARD_MAX 65536 /* keys per shard, then new keys pass */
#define LIMITS_KEY_MAX   320   /* "NAME\0value" bytes */

/* Who is asking: the keys a limit may use. Borrowed. */
struct limits_subject {
	const char *user;          /* authenticated name; NULL: none */
	const char *client;        /* numeric address; NULL: local socket */
	const char *sender_domain; /* MAIL FROM domain; NULL: <> or none */
};

struct limits_store;

/* A new, empty local store. */
struct limits_store *limits_store_new(void);
/* Free it (takes NULL). No limits using it may remain. */
void limits_store_free(struct limits_store *st);

/*
 * limits_store_take - the GCRA step for one key: may n units pass at now
 * (us, monotonic) under g? Creates the key's state when new. force: count
 * them anyway (gcra_charge) and return true. Thread-safe.
 */
bool limits_store_take(struct limits_store *st, const char *key, size_t keylen,
    const struct gcra *g, uint64_t now, uint64_t n, bool force);

struct limits_store_stats {
	uint64_t keys;      /* live keys, all shards */
	uint64_t overflows; /* new keys let through: a shard was full */
};
void limits_store_stats(struct limits_store *st, struct limits_store_stats *s);

struct limits;

/*
 * limits_new - the limits of c over store st (borrowed; must outlive the
 * result). NULL when c has no [limit] section. Any thread.
 */
struct limits *limits_new(const struct config *c, struct limits_store *st);
/* Free (takes NULL). */
void limits_free(struct limits *l);

/* Is any limit counting what? (false for l NULL) */
bool limits_counts(const struct limits *l, enum config_limit_count what);

/*
 * limits_take - charge n units of what for s against every limit that
 * counts it and whose key s has (a user limit ignores a session without
 * AUTH). true: every one let them through. false: *name is the first
 * limit that refused (borrowed from l). now: us, monotonic.
 */
bool limits_take(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now,
    const char **name);

/*
 * Shared limits ([limits] backend = redis, limits_redis.h). A step is one
 * limit a check must ask the shared store about: its key text and GCRA.
 * limits_steps fills at most max steps for what and s (the same limits
 * limits_take would charge) and returns how many.
 */
struct limits_step {
	const char *name; /* the limit's, borrowed from l */
	struct gcra g;
	uint64_t max;  /* limits_lease_steps: leases held at once */
	size_t keylen; /* key: "NAME\0VALUE", keylen bytes */
	char key[LIMITS_KEY_MAX];
};
#define LIMITS_STEPS_MAX 16
size_t limits_steps(const struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, struct limits_step *out, size_t max);

/* The limits capping connections held (max) that s has a key for. */
size_t limits_lease_steps(const struct limits *l,
    const struct limits_subject *s, struct limits_step *out, size_t max);

/* limits_lease with every max cut to its share of nodes (at least 1). */
bool limits_lease_share(struct limits *l, const struct limits_subject *s,
    uint64_t now, uint64_t ttl, unsigned nodes, const char **name);

/* limits_take with every limit cut to its share of nodes (gcra_share),
 * in the local store: what a node admits while the shared store is
 * down. */
bool limits_take_share(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now, unsigned nodes,
    const char **name);

/* As limits_take, but the units are counted whether they fit or not
 * (count = bytes: a message's size once it is queued; its MAIL asked
 * limits_take with n = 0, which refuses while a key is in debt). */
void limits_charge(struct limits *l, enum config_limit_count what,
    const struct limits_subject *s, uint64_t n, uint64_t now);

/*
 * Connection leases (count = connections with max = N): at most N held
 * at once per key. A lease expires by itself ttl after it was taken, so
 * one never freed (a node that died, in a shared store) frees itself;
 * the receive stage uses the session timeout, which no session outlives.
 */
/* Does any limit cap connections held? (false for l NULL) */
bool limits_leases(const struct limits *l);
/* Take one lease of every such limit s has a key for. false: *name
 * refused, and none is held. */
bool limits_lease(struct limits *l, const struct limits_subject *s,
    uint64_t now, uint64_t ttl, const char **name);
/* Give back the leases limits_lease took for s (the same l). */
void limits_unlease(
    struct limits *l, const struct limits_subject *s, uint64_t now);

/* Store level: hold one of at most max leases of key, until deadline.
 * Expired ones are dropped first. false: max are held. */
bool limits_store_lease(struct limits_store *st, const char *key, size_t keylen,
    uint64_t max, uint64_t deadline, uint64_t now);
/* Give one lease of key back (the one that expires first). */
void limits_store_unlease(
    struct limits_store *st, const char *key, size_t keylen, uint64_t now);

/* A monotonic clock in us, for callers of limits_take. */
uint64_t limits_now(void);

#endif
