/* SPDX-License-Identifier: ISC */
/*
 * tool.h - the little both bench tools (mta-sink, mta-load) need alike:
 * a cheap per-thread random sequence and an event loop that exits the
 * process when it cannot be made. Static inline: each tool links only
 * what it uses, with no object of its own.
 */
#ifndef MTA_BENCH_TOOL_H
#define MTA_BENCH_TOOL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "net/uring.h"

/* xorshift32: the next value of the sequence in *s (never stuck at 0).
 * For fault injection and recipient choice, not for secrets. */
static inline uint32_t
tool_rng_next(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x ? x : 0x9e3779b9u;
}

/* The calling thread's uring loop; on failure one line on stderr,
 * prefixed with prog, and exit(1). */
static inline struct uring_loop *
tool_loop_new(const char *prog)
{
	struct uring_loop *l;
	char err[256];

	if (uring_loop_new(NULL, &l, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		exit(1);
	}
	return l;
}

#endif
