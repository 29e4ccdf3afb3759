/* SPDX-License-Identifier: ISC */
/*
 * shape.c - recipients per destination domain and age bucket, and the
 * qshape-like table of them. Domains live in an open-addressing table
 * (few next to recipients); printing sorts a copy. Pure; one thread.
 */
#include "cli/shape.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define SHAPE_DOMAIN_MAX 255
#define SHAPE_NAME_COL   24 /* the domain column's minimum width */

struct shape_row {
	char *name; /* NULL: empty slot */
	uint64_t total;
	uint64_t n[SHAPE_BUCKETS_MAX + 1];
};

struct shape {
	struct shape_buckets b;
	struct shape_row all; /* TOTAL */
	struct shape_row *tab;
	size_t nrows, cap; /* cap: a power of two */
};

void
shape_buckets_default(struct shape_buckets *out)
{
	out->n = 9;
	for (size_t i = 0; i < out->n; i++)
		out->bound[i] = (uint64_t)5 << i;
}

/* One unsigned decimal number, whole: -EINVAL for anything else. */
static int
shape_number(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 9)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

int
shape_buckets_parse(const char *text, struct shape_buckets *out)
{
	struct shape_buckets b = {0};
	const char *p = text;
	uint64_t v;

	if (strchr(text, ',') == NULL) {
		if (shape_number(text, strlen(text), &v) < 0 || v == 0 ||
		    v > SHAPE_BUCKETS_MAX)
			return -EINVAL;
		b.n = (size_t)v;
		for (size_t i = 0; i < b.n; i++)
			b.bound[i] = (uint64_t)5 << i;
		*out = b;
		return 0;
	}
	for (;;) {
		size_t len = strcspn(p, ",");

		if (b.n == SHAPE_BUCKETS_MAX || shape_number(p, len, &v) < 0 ||
		    v == 0 || (b.n > 0 && v <= b.bound[b.n - 1]))
			return -EINVAL;
		b.bound[b.n++] = v;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	*out = b;
	return 0;
}

size_t
shape_bucket(const struct shape_buckets *b, uint64_t age_ms)
{
	uint64_t min = age_ms / 60000;
	size_t i;

	for (i = 0; i < b->n; i++)
		if (min < b->bound[i])
			return i;
	return b->n;
}

struct shape *
shape_new(const struct shape_buckets *b)
{
	struct shape *s = xcalloc(1, sizeof(*s));

	MTA_ASSERT(b->n >= 1 && b->n <= SHAPE_BUCKETS_MAX);
	s->b = *b;
	s->cap = 64;
	s->tab = xcalloc(s->cap, sizeof(*s->tab));
	return s;
}

void
shape_free(struct shape *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++)
		free(s->tab[i].name);
	free(s->tab);
	free(s);
}

static struct shape_row *
shape_slot(struct shape_row *tab, size_t cap, const char *name)
{
	size_t i = (size_t)str_hash(name) & (cap - 1);

	while (tab[i].name != NULL && strcmp(tab[i].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static void
shape_grow(struct shape *s)
{
	size_t ncap = s->cap * 2;
	struct shape_row *tab = xcalloc(ncap, sizeof(*tab));

	for (size_t i = 0; i < s->cap; i++)
		if (s->tab[i].name != NULL)
			*shape_slot(tab, ncap, s->tab[i].name) = s->tab[i];
	free(s->tab);
	s->tab = tab;
	s->cap = ncap;
}

void
shape_add(struct shape *s, const char *addr, uint64_t age_ms)
{
	const char *at = strrchr(addr, '@');
	char name[SHAPE_DOMAIN_MAX + 1];
	struct shape_row *r;
	size_t col = shape_bucket(&s->b, age_ms);

	str_copy(name, sizeof(name), at && at[1] ? at + 1 : "(none)");
	for (char *p = name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if ((s->nrows + 1) * 10 > s->cap * 7)
		shape_grow(s);
	r = shape_slot(s->tab, s->cap, name);
	if (r->name == NULL) {
		r->name = xstrdup(name);
		s->nrows++;
	}
	r->total++;
	r->n[col]++;
	s->all.total++;
	s->all.n[col]++;
}

/* Most recipients first, then by name. */
static int
shape_row_cmp(const void *a, const void *b)
{
	const struct shape_row *x = a, *y = b;

	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The name, escaped, left in a column of width w (by characters). */
static void
shape_put_name(FILE *fp, const char *name, size_t w)
{
	size_t len = 0;

	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		if (*c < 0x20 || *c == 0x7f) {
			fprintf(fp, "\\x%02x", *c);
			len += 4;
			continue;
		}
		fputc(*c, fp);
		len += (*c & 0xc0) != 0x80;
	}
	fprintf(fp, "%*s", len < w ? (int)(w - len) : 0, "");
}

static void
shape_put_row(const struct shape *s, FILE *fp, const struct shape_row *r,
    const char *name, size_t w)
{
	shape_put_name(fp, name, w);
	fprintf(fp, " %6" PRIu64, r->total);
	for (size_t i = 0; i <= s->b.n; i++)
		fprintf(fp, " %5" PRIu64, r->n[i]);
	fputc('\n', fp);
}

void
shape_print(const struct shape *s, FILE *fp, size_t top)
{
	struct shape_row *rows = xcalloc(s->nrows + 1, sizeof(*rows));
	size_t n = 0, w = SHAPE_NAME_COL;
	char last[24];

	for (size_t i = 0; i < s->cap; i++)
		if (s->tab[i].name != NULL)
			rows[n++] = s->tab[i];
	qsort(rows, n, sizeof(*rows), shape_row_cmp);
	if (top > 0 && n > top)
		n = top;
	for (size_t i = 0; i < n; i++)
		if (strlen(rows[i].name) > w)
			w = strlen(rows[i].name) > 64 ? 64
			                              : strlen(rows[i].name);
	fprintf(fp, "%*s %6s", (int)w, "", "T");
	for (size_t i = 0; i < s->b.n; i++)
		fprintf(fp, " %5" PRIu64, s->b.bound[i]);
	snprintf(last, sizeof(last), "%" PRIu64 "+", s->b.bound[s->b.n - 1]);
	fprintf(fp, " %5s\n", last);
	shape_put_row(s, fp, &s->all, "TOTAL", w);
	for (size_t i = 0; i < n; i++)
		shape_put_row(s, fp, &rows[i], rows[i].name, w);
	free(rows);
}
