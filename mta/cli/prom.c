/* SPDX-License-Identifier: ISC */
/*
 * prom.c - the Prometheus text format (0.0.4) into samples, strictly: a
 * line that is not a comment, blank or a well-formed sample is an error,
 * so that a relay answering something else (an HTML page, a truncated
 * body) is reported rather than shown as zeros. Pure; one thread.
 */
#include "cli/prom.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

struct prom_cursor {
	const char *p, *end; /* the current line, without its \n */
};

static bool
prom_name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || (!first && c >= '0' && c <= '9');
}

/* A metric or label name (label names have no ':'; not checked). */
static char *
prom_take_name(struct prom_cursor *c)
{
	const char *s = c->p;

	if (c->p >= c->end || !prom_name_char(*c->p, true))
		return NULL;
	while (c->p < c->end && prom_name_char(*c->p, false))
		c->p++;
	return xstrndup(s, (size_t)(c->p - s));
}

/* `"..."` with \\ \" \n escapes; c->p at the opening quote. */
static char *
prom_take_quoted(struct prom_cursor *c)
{
	char *out, *o;

	if (c->p >= c->end || *c->p != '"')
		return NULL;
	out = o = xmalloc((size_t)(c->end - c->p));
	for (c->p++; c->p < c->end && *c->p != '"'; c->p++) {
		if (*c->p != '\\') {
			*o++ = *c->p;
			continue;
		}
		if (++c->p >= c->end)
			break;
		if (*c->p == 'n')
			*o++ = '\n';
		else if (*c->p == '\\' || *c->p == '"')
			*o++ = *c->p;
		else
			break;
	}
	if (c->p >= c->end || *c->p != '"') {
		free(out);
		return NULL;
	}
	c->p++;
	*o = '\0';
	return out;
}

/* `{k="v",...}` (a trailing comma allowed); c->p after the '{'. */
static int
prom_take_labels(struct prom_cursor *c, struct prom_sample *s)
{
	while (c->p < c->end && *c->p != '}') {
		struct prom_label *l;

		if (s->nlabels == PROM_LABELS_MAX)
			return -EINVAL;
		l = &s->labels[s->nlabels];
		if ((l->key = prom_take_name(c)) == NULL)
			return -EINVAL;
		s->nlabels++;
		if (c->p >= c->end || *c->p++ != '=' ||
		    (l->value = prom_take_quoted(c)) == NULL)
			return -EINVAL;
		if (c->p < c->end && *c->p == ',')
			c->p++;
		else if (c->p >= c->end || *c->p != '}')
			return -EINVAL;
	}
	if (c->p >= c->end)
		return -EINVAL;
	c->p++;
	return 0;
}

/* The value, then an optional integer timestamp, then the end. */
static int
prom_take_value(struct prom_cursor *c, double *out)
{
	char buf[64], *end;
	size_t n = 0;

	while (c->p < c->end && *c->p == ' ')
		c->p++;
	while (c->p + n < c->end && c->p[n] != ' ')
		n++;
	if (n == 0 || n >= sizeof(buf) || memchr(c->p, '\0', n) != NULL)
		return -EINVAL;
	memcpy(buf, c->p, n);
	buf[n] = '\0';
	c->p += n;
	if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "Inf") == 0)
		*out = INFINITY;
	else if (strcmp(buf, "-Inf") == 0)
		*out = -INFINITY;
	else if (strcmp(buf, "NaN") == 0)
		*out = NAN;
	else {
		*out = strtod(buf, &end);
		if (*end != '\0' || end == buf)
			return -EINVAL;
	}
	while (c->p < c->end && *c->p == ' ')
		c->p++;
	if (c->p < c->end && *c->p == '-')
		c->p++;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p == c->end ? 0 : -EINVAL;
}

static void
prom_sample_fini(struct prom_sample *s)
{
	free(s->name);
	for (size_t i = 0; i < s->nlabels; i++) {
		free(s->labels[i].key);
		free(s->labels[i].value);
	}
	memset(s, 0, sizeof(*s));
}

/* One sample line into s; -EINVAL when it is not one. */
static int
prom_line(struct prom_cursor *c, struct prom_sample *s)
{
	if ((s->name = prom_take_name(c)) == NULL)
		return -EINVAL;
	if (c->p < c->end && *c->p == '{') {
		c->p++;
		if (prom_take_labels(c, s) < 0)
			return -EINVAL;
	}
	if (c->p >= c->end || *c->p != ' ')
		return -EINVAL;
	return prom_take_value(c, &s->value);
}

int
prom_parse(const char *text, size_t len, struct prom_set *set, size_t *line)
{
	const char *p = text, *end = text + len;
	size_t no = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		struct prom_cursor c = {p, nl ? nl : end};
		struct prom_sample s = {0};

		no++;
		p = nl ? nl + 1 : end;
		if (c.end > c.p && c.end[-1] == '\r')
			c.end--;
		if (c.p == c.end || *c.p == '#')
			continue;
		if (prom_line(&c, &s) < 0) {
			prom_sample_fini(&s);
			if (line != NULL)
				*line = no;
			return -EINVAL;
		}
		if (set->n == set->cap) {
			set->cap = set->cap ? set->cap * 2 : 64;
			set->v =
			    xreallocarray(set->v, set->cap, sizeof(*set->v));
		}
		set->v[set->n++] = s;
	}
	return 0;
}

void
prom_set_fini(struct prom_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		prom_sample_fini(&set->v[i]);
	free(set->v);
	memset(set, 0, sizeof(*set));
}

const char *
prom_label(const struct prom_sample *s, const char *key)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->labels[i].key, key) == 0)
			return s->labels[i].value;
	return NULL;
}

static bool
prom_match(const struct prom_sample *s, const char *k, const char *v)
{
	const char *have;

	if (k == NULL)
		return true;
	have = prom_label(s, k);
	return have != NULL && strcmp(have, v) == 0;
}

double
prom_sum2(const struct prom_set *set, const char *name, const char *k1,
    const char *v1, const char *k2, const char *v2)
{
	double sum = 0;

	for (size_t i = 0; i < set->n; i++) {
		const struct prom_sample *s = &set->v[i];

		if (strcmp(s->name, name) == 0 && prom_match(s, k1, v1) &&
		    prom_match(s, k2, v2) && !isnan(s->value))
			sum += s->value;
	}
	return sum;
}

double
prom_sum(const struct prom_set *set, const char *name, const char *key,
    const char *value, bool *found)
{
	if (found != NULL) {
		*found = false;
		for (size_t i = 0; i < set->n; i++)
			if (strcmp(set->v[i].name, name) == 0 &&
			    prom_match(&set->v[i], key, value))
				*found = true;
	}
	return prom_sum2(set, name, key, value, NULL, NULL);
}
