/* SPDX-License-Identifier: ISC */
/*
 * metrics_text.c - the text format writer (see metrics_text.h). Label
 * values escape backslash, double quote and newline; HELP text escapes
 * backslash and newline, as the 0.0.4 format says.
 */
#include "metrics/metrics_text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void
metrics_text_init(struct metrics_text *t, struct buf *out)
{
	t->out = out;
	t->err = 0;
}

int
metrics_text_err(const struct metrics_text *t)
{
	return t->err;
}

static void
put(struct metrics_text *t, const char *s, size_t n)
{
	if (t->err == 0)
		t->err = buf_append(t->out, s, n);
}

static void
puts_(struct metrics_text *t, const char *s)
{
	put(t, s, strlen(s));
}

/* s with the escapes of a label value (quote = true) or of HELP. */
static void
put_escaped(struct metrics_text *t, const char *s, bool quote)
{
	const char *p = s;

	for (; *p; p++) {
		const char *e = NULL;

		if (*p == '\\')
			e = "\\\\";
		else if (*p == '\n')
			e = "\\n";
		else if (*p == '"' && quote)
			e = "\\\"";
		if (e == NULL)
			continue;
		put(t, s, (size_t)(p - s));
		puts_(t, e);
		s = p + 1;
	}
	put(t, s, (size_t)(p - s));
}

void
metrics_text_family(struct metrics_text *t, const char *name, const char *type,
    const char *help)
{
	puts_(t, "# HELP ");
	puts_(t, name);
	puts_(t, " ");
	put_escaped(t, help, false);
	puts_(t, "\n# TYPE ");
	puts_(t, name);
	puts_(t, " ");
	puts_(t, type);
	puts_(t, "\n");
}

/* name{labels, extra} with a trailing space, ready for the value. */
static void
head(struct metrics_text *t, const char *name, const struct metrics_label *l,
    size_t n, const struct metrics_label *extra)
{
	bool first = true;

	puts_(t, name);
	if (n == 0 && extra == NULL) {
		puts_(t, " ");
		return;
	}
	puts_(t, "{");
	for (size_t i = 0; i <= n; i++) {
		const struct metrics_label *x = i < n ? &l[i] : extra;

		if (x == NULL)
			break;
		if (!first)
			puts_(t, ",");
		first = false;
		puts_(t, x->name);
		puts_(t, "=\"");
		put_escaped(t, x->value, true);
		puts_(t, "\"");
	}
	puts_(t, "} ");
}

static void
value_f64(struct metrics_text *t, double v)
{
	char num[64];
	int k = snprintf(num, sizeof(num), "%.9g\n", v);

	put(t, num, (size_t)k);
}

void
metrics_text_u64(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, uint64_t v)
{
	char num[32];
	int k = snprintf(num, sizeof(num), "%" PRIu64 "\n", v);

	head(t, name, l, n, NULL);
	put(t, num, (size_t)k);
}

void
metrics_text_i64(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, int64_t v)
{
	char num[32];
	int k = snprintf(num, sizeof(num), "%" PRId64 "\n", v);

	head(t, name, l, n, NULL);
	put(t, num, (size_t)k);
}

void
metrics_text_f64(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, double v)
{
	head(t, name, l, n, NULL);
	value_f64(t, v);
}

void
metrics_text_hist(struct metrics_text *t, const char *name,
    const struct metrics_label *l, size_t n, const uint64_t *bounds, size_t nb,
    const uint64_t *counts, uint64_t sum, double scale)
{
	char metric[128], le[48], num[32];
	struct metrics_label x = {"le", le};
	uint64_t cum = 0;
	int k;

	snprintf(metric, sizeof(metric), "%s_bucket", name);
	for (size_t i = 0; i <= nb; i++) {
		cum += counts[i];
		if (i < nb)
			snprintf(
			    le, sizeof(le), "%g", (double)bounds[i] / scale);
		else
			snprintf(le, sizeof(le), "+Inf");
		head(t, metric, l, n, &x);
		k = snprintf(num, sizeof(num), "%" PRIu64 "\n", cum);
		put(t, num, (size_t)k);
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	metrics_text_f64(t, metric, l, n, (double)sum / scale);
	snprintf(metric, sizeof(metric), "%s_count", name);
	metrics_text_u64(t, metric, l, n, cum);
}
