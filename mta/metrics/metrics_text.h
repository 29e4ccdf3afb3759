/* SPDX-License-Identifier: ISC */
/*
 * metrics_text.h - the Prometheus text exposition format, version 0.0.4:
 * a writer of families (# HELP, # TYPE), samples with escaped label
 * values, and histograms from fixed buckets. Pure: it appends to a
 * struct buf and does no I/O; any thread (the metrics thread uses it).
 *
 * Errors are sticky: once an append fails (the page's cap), every later
 * call does nothing and metrics_text_err() says -ENOBUFS.
 */
#ifndef MTA_METRICS_TEXT_H
#define MTA_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* A label: name (a valid label name, written as is) and value (any
 * bytes; escaped). */
struct metrics_label {
	const char *name;
	const char *value;
};

struct metrics_text {
	struct buf *out; /* borrowed */
	int err;         /* 0, or the first append's error */
};

void metrics_text_init(struct metrics_text *t, struct buf *out);

/* "# HELP name help\n# TYPE name type\n"; type: counter, gauge,
 * histogram. help is escaped (backslash, newline). */
void metrics_text_family(struct metrics_text *t, const char *name,
    const char *type, const char *help);

/* One sample "name{l1="v1",...} value\n"; n labels (0: no braces). */
void metrics_text_u64(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, uint64_t v);
void metrics_text_i64(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, int64_t v);
void metrics_text_f64(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, double v);

/*
 * One histogram's samples (the family line is the caller's): per bound
 * name_bucket{...,le="B"} with cumulative counts, then le="+Inf" (=
 * count), name_sum and name_count. bounds[nb] ascending in observed
 * units, counts[nb + 1] per bucket (not cumulative; the last is above
 * every bound), sum in observed units; scale = observed units per
 * exposed unit (bounds and sum are divided by it).
 */
void metrics_text_hist(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, const uint64_t *bounds, size_t nb,
    const uint64_t *counts, uint64_t sum, double scale);

/* 0, or -ENOBUFS when something did not fit. */
int metrics_text_err(const struct metrics_text *t);

#endif
