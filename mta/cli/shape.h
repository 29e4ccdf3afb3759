/* SPDX-License-Identifier: ISC */
/*
 * shape.h - the queue's shape (`mta queue shape`, as Postfix's qshape):
 * recipients counted per destination domain and per age bucket.
 *
 * Pure: no I/O but the FILE the table is printed to, no queue access
 * (cmd_queue_shape.c feeds it from a read-only scan). One thread.
 */
#ifndef MTA_CLI_SHAPE_H
#define MTA_CLI_SHAPE_H

#include <stdint.h>
#include <stdio.h>

#include "base/compat.h"

#define SHAPE_BUCKETS_MAX 24

/* Bucket upper bounds in minutes, ascending: column i counts ages in
 * [bound[i-1], bound[i]) (from 0 for i = 0); one more column, "LAST+",
 * counts ages >= bound[n-1]. */
struct shape_buckets {
	size_t n; /* 1..SHAPE_BUCKETS_MAX */
	uint64_t bound[SHAPE_BUCKETS_MAX];
};

/*
 * shape_buckets_parse - text to bounds: "N" is N bounds doubling from 5
 * minutes (qshape's default, N = 9: 5 10 ... 1280), "A,B,C" explicit
 * strictly ascending minutes (each > 0). Returns 0, or -EINVAL.
 */
MTA_MUST_CHECK int shape_buckets_parse(
    const char *text, struct shape_buckets *out);

/* The default: 9 bounds, 5 to 1280 minutes. */
void shape_buckets_default(struct shape_buckets *out);

/* The column of an age (ms): 0..b->n (n = the last, open column). */
size_t shape_bucket(const struct shape_buckets *b, uint64_t age_ms);

struct shape;

/* A new, empty table over b (copied). shape_free takes NULL. */
struct shape *shape_new(const struct shape_buckets *b);
void shape_free(struct shape *s);

/* Count one recipient: its address (the domain is what follows the last
 * '@', lowercased; "(none)" without one) and the age of its message. */
void shape_add(struct shape *s, const char *addr, uint64_t age_ms);

/*
 * shape_print - the table on fp: a header (domain, T, one column per
 * bucket), a TOTAL row, then the top domains (by count, then name; all
 * of them when top is 0). Control bytes of domains print as \xHH.
 */
void shape_print(const struct shape *s, FILE *fp, size_t top);

#endif
