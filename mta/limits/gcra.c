/* SPDX-License-Identifier: ISC */
/*
 * gcra.c - the GCRA arithmetic of gcra.h. Pure; any thread.
 *
 * Products saturate instead of wrapping: a huge n or burst then means
 * "very far in the future", which is the right answer for a throttle.
 */
#include "limits/gcra.h"

#include <stddef.h>

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;

	if (__builtin_mul_overflow(a, b, &r))
		return UINT64_MAX;
	return r;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return UINT64_MAX;
	return r;
}

bool
gcra_init(struct gcra *g, uint64_t rate, uint64_t period_us, uint64_t burst)
{
	if (rate == 0 || period_us == 0)
		return false;
	g->interval = period_us / rate;
	if (g->interval == 0)
		g->interval = 1;
	g->burst = burst != 0 ? burst : rate;
	return true;
}

bool
gcra_take(const struct gcra *g, uint64_t *tat, uint64_t now, uint64_t n,
    uint64_t *wait)
{
	uint64_t base = *tat > now ? *tat : now;
	uint64_t next = sat_add(base, sat_mul(n, g->interval));
	uint64_t tol = sat_mul(g->burst, g->interval);

	/* a request over the burst passes only on an idle key */
	if (next - now <= tol || (*tat <= now && n > g->burst)) {
		*tat = next;
		return true;
	}
	if (wait != NULL)
		*wait = next - now - tol;
	return false;
}

void
gcra_charge(const struct gcra *g, uint64_t *tat, uint64_t now, uint64_t n)
{
	uint64_t base = *tat > now ? *tat : now;

	*tat = sat_add(base, sat_mul(n, g->interval));
}

bool
gcra_idle(uint64_t tat, uint64_t now)
{
	return tat <= now;
}

void
gcra_share(const struct gcra *g, unsigned nodes, struct gcra *out)
{
	if (nodes == 0)
		nodes = 1;
	out->interval = sat_mul(g->interval, nodes);
	out->burst = g->burst / nodes;
	if (out->burst == 0)
		out->burst = 1;
}
