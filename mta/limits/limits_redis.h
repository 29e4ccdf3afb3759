/* SPDX-License-Identifier: ISC */
/*
 * limits_redis.h - [limits] backend = redis: the limits of several nodes
 * kept in one Redis, asked from a receive thread's loop without ever
 * blocking it.
 *
 * DESIGN. One client per receive thread: one connection (a struct
 * stream on the thread's uring loop, so Redis is just another peer of the
 * one event loop), commands formatted and replies parsed by hiredis
 * (Debian's libhiredis: the protocol code, not its event adapters). The
 * GCRA of gcra.h runs in Redis as a Lua script (limits_redis_lua.c),
 * loaded once per connection (SCRIPT LOAD), then called by its digest
 * (EVALSHA; a NOSCRIPT answer reloads it), with Redis's own clock (TIME)
 * so nodes need not agree on time. One check (every limit of a MAIL) is
 * one EVALSHA with one key per limit: one round trip, pipelined behind
 * the other sessions' checks on the same connection.
 *
 * Redis down, refusing or slower than [limits] redis_timeout: each check
 * is answered LIMITS_REDIS_FALLBACK and the caller applies its local
 * share of the limit (limits_take_share: rate / nodes), so mail keeps
 * flowing and the nodes together stay near the shared limit. The client
 * reconnects with backoff (100 ms doubling to 5 s). Going down and
 * coming back are logged once per process (event=limits-fallback,
 * event=limits-recovered), not once per thread or per check.
 *
 * Thread: the loop's thread, everything.
 */
#ifndef MTA_LIMITS_REDIS_H
#define MTA_LIMITS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "limits/limits.h"

struct uring_loop;
struct limits_redis;

#define LIMITS_REDIS_FALLBACK (-1) /* no shared answer: use the share */

struct limits_redis_cbs {
	/* The answer to limits_redis_check or _lease (cookie): 0 every
	 * limit let the units through (and counted them) or every lease was
	 * taken; i > 0 step i - 1 refused (a check: the others counted
	 * theirs, as limits_take; a lease: none was taken);
	 * LIMITS_REDIS_FALLBACK. Returns false when nobody waits for it any
	 * more: leases it took are given back. Never from inside a
	 * limits_redis_*() call but limits_redis_stop. */
	bool (*answer)(void *arg, uint64_t cookie, int res);
	/* After limits_redis_stop(): nothing is left on the loop. */
	void (*stopped)(void *arg);
};

/* A client for sh's Redis (copied) on loop l, connecting now. cbs and
 * arg: borrowed until limits_redis_free. */
struct limits_redis *limits_redis_new(struct uring_loop *l,
    const struct config_shared *sh, const struct limits_redis_cbs *cbs,
    void *arg);

/*
 * limits_redis_check - ask whether n units pass every one of steps[0..ns)
 * (limits_steps). true: the answer comes later through cbs->answer with
 * cookie. false: Redis is not usable now; apply the local share at once.
 */
bool limits_redis_check(struct limits_redis *lr,
    const struct limits_step *steps, size_t ns, uint64_t n, uint64_t cookie);

/*
 * limits_redis_lease - take one lease of every step (limits_lease_steps:
 * at most step.max held per key, across every node) for ttl_ms, all or
 * none, as *id (filled here, LIMITS_REDIS_ID_MAX bytes: unique to this
 * node). As limits_redis_check: true, the answer comes later; false,
 * apply the local share (limits_lease_share) now.
 * limits_redis_unlease gives the leases of id back (no answer; when
 * Redis is away they expire by themselves).
 */
#define LIMITS_REDIS_ID_MAX 48
bool limits_redis_lease(struct limits_redis *lr,
    const struct limits_step *steps, size_t ns, uint64_t ttl_ms, char *id,
    uint64_t cookie);
void limits_redis_unlease(struct limits_redis *lr,
    const struct limits_step *steps, size_t ns, const char *id);

/* Close the connection and stop retrying; the checks still out are
 * answered LIMITS_REDIS_FALLBACK; cbs->stopped follows. */
void limits_redis_stop(struct limits_redis *lr);

/* Free a stopped client (after cbs->stopped). Takes NULL. */
void limits_redis_free(struct limits_redis *lr);

/* Is the client up (connected, script loaded)? For tests and stats. */
bool limits_redis_up(const struct limits_redis *lr);

/*
 * Pure parts, for the unit tests.
 * limits_redis_key - the Redis key of step st: "mta:limit:NAME:VALUE"
 * into out; its length, 0 when it does not fit.
 * limits_redis_result - the check's answer from a reply of type type
 * (hiredis REDIS_REPLY_*), integer v, error text str: 0..ns, or
 * LIMITS_REDIS_FALLBACK for anything else. *noscript: it was NOSCRIPT.
 */
size_t limits_redis_key(const struct limits_step *st, char *out, size_t len);
int limits_redis_result(
    int type, long long v, const char *str, size_t ns, bool *noscript);

/* The GCRA and lease scripts (limits_redis_lua.c). */
extern const char limits_redis_lua[];
extern const char limits_redis_lease_lua[];

#endif
