/* SPDX-License-Identifier: ISC */
/*
 * top_view.c - one frame of `mta top` from two scrapes of the relay's
 * metrics (the names are the relay's, mta/metrics/): counters become
 * rates over the interval (a counter that went down means the relay
 * restarted: its value is then the increase), gauges are shown as they
 * are. Pure; one thread.
 */
#include "cli/top_view.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define TOP_DEST_COL 36 /* the destination column's width */

/* The last error class shown for a destination. */
struct top_memo {
	char *dest, *reason;
};

struct top_view {
	char *source;
	struct top_memo *m;
	size_t nm, cap;
};

/* One destination row. */
struct top_dest {
	const char *name; /* borrowed from the current set */
	double queued;
};

struct top_view *
top_view_new(const char *source)
{
	struct top_view *v = xcalloc(1, sizeof(*v));

	v->source = xstrdup(source);
	return v;
}

void
top_view_free(struct top_view *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nm; i++) {
		free(v->m[i].dest);
		free(v->m[i].reason);
	}
	free(v->m);
	free(v->source);
	free(v);
}

static struct top_memo *
top_memo_find(struct top_view *v, const char *dest, bool make)
{
	for (size_t i = 0; i < v->nm; i++)
		if (strcmp(v->m[i].dest, dest) == 0)
			return &v->m[i];
	if (!make)
		return NULL;
	if (v->nm == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 16;
		v->m = xreallocarray(v->m, v->cap, sizeof(*v->m));
	}
	v->m[v->nm].dest = xstrdup(dest);
	v->m[v->nm].reason = NULL;
	return &v->m[v->nm++];
}

/* The increase of a counter between the scrapes: a decrease means the
 * relay restarted, and the current value is then the increase. */
static double
top_delta(double before, double now)
{
	return now >= before ? now - before : now;
}

/* A rate as text into buf: "-" without two scrapes. */
static const char *
top_rate(const struct prom_set *prev, const struct prom_set *cur, double dt,
    const char *name, const char *k, const char *val, char *buf, size_t len)
{
	if (prev == NULL || dt <= 0)
		return "-";
	str_fmt(buf, len, "%.1f",
	    top_delta(prom_sum(prev, name, k, val, NULL),
	        prom_sum(cur, name, k, val, NULL)) /
	        dt);
	return buf;
}

/* Seconds as "42s", "5m12s", "3h05m", "2d04h". */
static const char *
top_age(double sec, char *buf, size_t len)
{
	unsigned long s = sec > 0 && isfinite(sec) ? (unsigned long)sec : 0;

	if (s < 60)
		str_fmt(buf, len, "%lus", s);
	else if (s < 3600)
		str_fmt(buf, len, "%lum%02lus", s / 60, s % 60);
	else if (s < 86400)
		str_fmt(buf, len, "%luh%02lum", s / 3600, s / 60 % 60);
	else
		str_fmt(buf, len, "%lud%02luh", s / 86400, s / 3600 % 24);
	return buf;
}

/* A name for a terminal: control bytes as \xHH; returns its width. */
static size_t
top_put_name(FILE *fp, const char *s)
{
	size_t w = 0;

	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c < 0x20 || *c == 0x7f) {
			w += (size_t)fprintf(fp, "\\x%02x", *c);
			continue;
		}
		fputc(*c, fp);
		w += (*c & 0xc0) != 0x80;
	}
	return w;
}

static void
top_render_rates(FILE *fp, const struct prom_set *prev,
    const struct prom_set *cur, double dt)
{
	char a[32], b[32], c[32];

	fprintf(fp, "in    %7s msg/s   refused %s/s   connections %.0f\n",
	    top_rate(prev, cur, dt, "mta_messages_accepted_total", NULL, NULL,
	        a, sizeof(a)),
	    top_rate(prev, cur, dt, "mta_messages_refused_total", NULL, NULL, b,
	        sizeof(b)),
	    prom_sum(cur, "mta_connections_current", NULL, NULL, NULL));
	fprintf(fp, "out   %7s msg/s   deferred %s/s   failed %s/s\n",
	    top_rate(prev, cur, dt, "mta_deliveries_total", "outcome",
	        "delivered", a, sizeof(a)),
	    top_rate(prev, cur, dt, "mta_deliveries_total", "outcome",
	        "deferred", b, sizeof(b)),
	    top_rate(prev, cur, dt, "mta_deliveries_total", "outcome", "failed",
	        c, sizeof(c)));
}

/* "queue N messages (state=n ...)  N recipients  oldest AGE". */
static void
top_render_queue(FILE *fp, const struct prom_set *cur)
{
	size_t nstates = 0;
	char age[32];

	fprintf(fp, "queue %.0f messages",
	    prom_sum(cur, "mta_queue_messages", NULL, NULL, NULL));
	for (size_t i = 0; i < cur->n; i++) {
		const struct prom_sample *s = &cur->v[i];
		const char *st = prom_label(s, "state");

		if (strcmp(s->name, "mta_queue_messages") != 0 || st == NULL)
			continue;
		fprintf(fp, "%s", nstates++ ? " " : " (");
		top_put_name(fp, st);
		fprintf(fp, "=%.0f", s->value);
	}
	fprintf(fp, "%s   %.0f recipients   oldest %s\n", nstates ? ")" : "",
	    prom_sum(cur, "mta_queue_recipients", NULL, NULL, NULL),
	    top_age(
	        prom_sum(cur, "mta_queue_oldest_age_seconds", NULL, NULL, NULL),
	        age, sizeof(age)));
}

/* Commit latency: the mean over the interval (since start without a
 * previous scrape), and commits a second. */
static void
top_render_commit(FILE *fp, const struct prom_set *prev,
    const struct prom_set *cur, double dt)
{
	double sum = prom_sum(cur, "mta_commit_seconds_sum", NULL, NULL, NULL);
	double n = prom_sum(cur, "mta_commit_seconds_count", NULL, NULL, NULL);
	char rate[32];

	if (prev != NULL && dt > 0) {
		sum = top_delta(
		    prom_sum(prev, "mta_commit_seconds_sum", NULL, NULL, NULL),
		    sum);
		n = top_delta(prom_sum(prev, "mta_commit_seconds_count", NULL,
		                  NULL, NULL),
		    n);
	}
	if (n > 0)
		fprintf(fp, "commit %.2f ms avg", sum / n * 1000);
	else
		fprintf(fp, "commit - ms avg");
	fprintf(fp, "   %s commits/s\n",
	    top_rate(prev, cur, dt, "mta_commit_seconds_count", NULL, NULL,
	        rate, sizeof(rate)));
}

static int
top_dest_cmp(const void *a, const void *b)
{
	const struct top_dest *x = a, *y = b;

	if (x->queued != y->queued)
		return x->queued > y->queued ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The deferral reason of dest that grew most in the interval, else the
 * one shown last time, else the most frequent; NULL: none yet. */
static const char *
top_last_error(struct top_view *v, const struct prom_set *prev,
    const struct prom_set *cur, const char *dest)
{
	const char *grew = NULL, *most = NULL;
	double grew_by = 0, most_n = 0;
	struct top_memo *m;

	for (size_t i = 0; i < cur->n; i++) {
		const struct prom_sample *s = &cur->v[i];
		const char *d = prom_label(s, "destination");
		const char *r = prom_label(s, "reason");
		double by;

		if (strcmp(s->name, "mta_destination_deferrals_total") != 0 ||
		    d == NULL || r == NULL || strcmp(d, dest) != 0)
			continue;
		by = prev ? top_delta(prom_sum2(prev, s->name, "destination", d,
		                          "reason", r),
		                s->value)
		          : 0;
		if (by > grew_by)
			grew = r, grew_by = by;
		if (s->value > most_n)
			most = r, most_n = s->value;
	}
	m = top_memo_find(v, dest, grew != NULL);
	if (grew != NULL) {
		free(m->reason);
		m->reason = xstrdup(grew);
	}
	if (m != NULL && m->reason != NULL)
		return m->reason;
	return most;
}

static void
top_render_dest(struct top_view *v, FILE *fp, const struct prom_set *prev,
    const struct prom_set *cur, double dt, const struct top_dest *d)
{
	const char *err = top_last_error(v, prev, cur, d->name);
	size_t w = top_put_name(fp, d->name);
	char rate[32] = "-";

	if (prev != NULL && dt > 0)
		str_fmt(rate, sizeof(rate), "%.1f",
		    top_delta(
		        prom_sum2(prev, "mta_destination_deliveries_total",
		            "destination", d->name, "outcome", "delivered"),
		        prom_sum2(cur, "mta_destination_deliveries_total",
		            "destination", d->name, "outcome", "delivered")) /
		        dt);
	fprintf(fp, "%*s %8.0f %6.0f %8s  ",
	    w < TOP_DEST_COL ? (int)(TOP_DEST_COL - w) : 0, "", d->queued,
	    prom_sum(cur, "mta_destination_connections", "destination", d->name,
	        NULL),
	    rate);
	if (err != NULL)
		top_put_name(fp, err);
	else
		fputc('-', fp);
	if (prom_sum(cur, "mta_destination_suspended", "destination", d->name,
	        NULL) > 0)
		fprintf(fp, " (suspended)");
	fputc('\n', fp);
}

void
top_view_render(struct top_view *v, FILE *fp, const struct prom_set *prev,
    const struct prom_set *cur, double dt, size_t rows)
{
	struct top_dest *d = xcalloc(cur->n + 1, sizeof(*d));
	size_t n = 0;

	fprintf(fp, "mta top - ");
	top_put_name(fp, v->source);
	fprintf(fp, "\n\n");
	top_render_rates(fp, prev, cur, dt);
	top_render_queue(fp, cur);
	top_render_commit(fp, prev, cur, dt);
	for (size_t i = 0; i < cur->n; i++) {
		const char *name = prom_label(&cur->v[i], "destination");

		if (strcmp(cur->v[i].name, "mta_destination_queued") == 0 &&
		    name != NULL)
			d[n++] = (struct top_dest){name, cur->v[i].value};
	}
	qsort(d, n, sizeof(*d), top_dest_cmp);
	fprintf(fp, "\n%-*s %8s %6s %8s  %s\n", TOP_DEST_COL, "DESTINATION",
	    "QUEUED", "CONNS", "DELIV/s", "LAST ERROR");
	for (size_t i = 0; i < n && i < rows; i++)
		top_render_dest(v, fp, prev, cur, dt, &d[i]);
	free(d);
}
