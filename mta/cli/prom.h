/* SPDX-License-Identifier: ISC */
/*
 * prom.h - a parser of the Prometheus text exposition format (0.0.4),
 * for `mta top`, which reads the relay through its /metrics endpoint.
 *
 * Pure: text in, samples out; no I/O. One thread per set.
 */
#ifndef MTA_CLI_PROM_H
#define MTA_CLI_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/compat.h"

#define PROM_LABELS_MAX 8

struct prom_label {
	char *key, *value; /* value unescaped */
};

struct prom_sample {
	char *name;
	struct prom_label labels[PROM_LABELS_MAX];
	size_t nlabels;
	double value;
};

struct prom_set {
	struct prom_sample *v;
	size_t n, cap;
};

/*
 * prom_parse - the samples of (text, len) appended to *set (zeroed or
 * from an earlier call): `name{k="v",...} value [timestamp]` lines, with
 * `# HELP`/`# TYPE` and other comment lines and blank lines skipped.
 * Label values unescape \\, \" and \n; values may be NaN, +Inf, -Inf.
 * Strict: on a malformed line returns -EINVAL with its number in *line
 * (1-based; line may be NULL) and keeps the samples before it. More
 * than PROM_LABELS_MAX labels is malformed. Returns 0.
 */
MTA_MUST_CHECK int prom_parse(
    const char *text, size_t len, struct prom_set *set, size_t *line);

/* Free what set holds; set is zeroed (ready for reuse). */
void prom_set_fini(struct prom_set *set);

/* The value of label key of s, or NULL; borrowed from s. */
const char *prom_label(const struct prom_sample *s, const char *key);

/*
 * prom_sum - the sum of the samples named name whose label key is value
 * (every sample of that name when key is NULL). *found says whether any
 * matched (may be NULL).
 */
double prom_sum(const struct prom_set *set, const char *name, const char *key,
    const char *value, bool *found);

/* As prom_sum, with two labels to match (k2 NULL: only the first). */
double prom_sum2(const struct prom_set *set, const char *name, const char *k1,
    const char *v1, const char *k2, const char *v2);

#endif
