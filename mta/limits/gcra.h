/* SPDX-License-Identifier: ISC */
/*
 * gcra.h - the generic cell rate algorithm: the one throttle every limit
 * uses (submission limits here, delivery shaping later), pure arithmetic
 * over a caller's clock and a caller's stored state.
 *
 * DESIGN. A limit of `rate` units per `period` with a burst of B units
 * has an emission interval T = period / rate. Its whole state is one
 * number per key, the theoretical arrival time (TAT): the moment the key
 * would be idle again had every unit taken so far arrived evenly. A
 * request of n units at time now fits when
 *     max(TAT, now) + n * T - now <= B * T
 * and then TAT becomes max(TAT, now) + n * T. So B units pass at once
 * after a quiet spell, then one every T; a key whose TAT is in the past
 * is exactly a fresh key, which lets a store forget it (gcra_idle). The
 * same arithmetic runs in the Redis script (limits_redis_lua.c), so a limit
 * means the same thing locally and shared.
 *
 * A request larger than the burst could never fit; it is allowed when
 * the key is idle (TAT <= now) and then counts in full, so one large
 * message passes but holds the key back for as long as it costs.
 *
 * Times are microseconds on any clock that does not go back (the
 * caller's); no I/O, no global. Thread: any.
 */
#ifndef MTA_GCRA_H
#define MTA_GCRA_H

#include <stdbool.h>
#include <stdint.h>

struct gcra {
	uint64_t interval; /* us per unit: period / rate, at least 1 */
	uint64_t burst;    /* units that may pass at once, at least 1 */
};

/* Fill g for rate units per period_us, burst units (0: rate). False when
 * rate or period is 0. */
bool gcra_init(
    struct gcra *g, uint64_t rate, uint64_t period_us, uint64_t burst);

/*
 * gcra_take - may n units pass at now, given the key's state *tat (0 for
 * a key never seen)? true: they are counted (*tat advanced). false:
 * nothing changes and *wait (if not NULL) is how long until they would
 * fit, in us.
 */
bool gcra_take(const struct gcra *g, uint64_t *tat, uint64_t now, uint64_t n,
    uint64_t *wait);

/* Count n units at now whether they fit or not: for what is known only
 * after the fact (a message's bytes). A key so charged refuses until it
 * has paid the debt back; gcra_take with n = 0 asks whether it has. */
void gcra_charge(const struct gcra *g, uint64_t *tat, uint64_t now, uint64_t n);

/* The share one of nodes nodes takes when they cannot agree (the shared
 * store is down): rate / nodes, burst / nodes but at least 1, so the
 * nodes together admit about what the one shared limit would. */
void gcra_share(const struct gcra *g, unsigned nodes, struct gcra *out);

/* Is a key with state tat idle at now (the same as a fresh key)? */
bool gcra_idle(uint64_t tat, uint64_t now);

#endif
