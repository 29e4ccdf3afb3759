/* SPDX-License-Identifier: ISC */
/*
 * load_stats.c - mta-load's latencies and its report: exact per-thread
 * samples for the final percentiles, and a histogram of atomics that the
 * progress line and the --interval time series read while the threads
 * run. The samples are the owning thread's until it has been joined;
 * the time series' previous snapshot is the main thread's.
 */
#include "bench/load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/xalloc.h"

/* Live latency for the progress line: a histogram of atomics, 8 buckets
 * per power of two of microseconds (within 9% of the true value), that
 * every thread adds to and the display reads without stopping anyone.
 * The final report uses the exact per-thread samples instead. */
#define HIST_SUB 8
#define HIST_N   (64 * HIST_SUB)
static atomic_ulong g_hist[HIST_N];

static unsigned
hist_bucket(uint64_t us)
{
	unsigned e, sub;

	if (us < HIST_SUB)
		return (unsigned)us;
	e = 63u - (unsigned)__builtin_clzll(us);
	sub = (unsigned)((us >> (e - 3)) & (HIST_SUB - 1));
	return (e - 2) * HIST_SUB + sub;
}

/* The upper edge of a bucket, in microseconds. */
static double
hist_edge(unsigned b)
{
	unsigned e = b / HIST_SUB + 2, sub = b % HIST_SUB;

	if (b < HIST_SUB)
		return b + 1;
	return (double)(HIST_SUB + sub + 1) * (double)(1ull << (e - 3));
}

/* Approximate percentile p of everything so far, in ms; 0 when empty. */
double
load_hist_pct(double p)
{
	unsigned long n = 0, seen = 0, want;

	for (unsigned b = 0; b < HIST_N; b++)
		n += atomic_load_explicit(&g_hist[b], memory_order_relaxed);
	if (n == 0)
		return 0;
	want = (unsigned long)((double)n * p / 100.0);
	for (unsigned b = 0; b < HIST_N; b++) {
		seen += atomic_load_explicit(&g_hist[b], memory_order_relaxed);
		if (seen > want)
			return hist_edge(b) / 1000.0;
	}
	return hist_edge(HIST_N - 1) / 1000.0;
}

/* Percentile p (ms) of the counts in h (n of them); 0 when empty. */
static double
hist_pct_of(const unsigned long *h, unsigned long n, double p)
{
	unsigned long seen = 0, want = (unsigned long)((double)n * p / 100.0);

	if (n == 0)
		return 0;
	if (want >= n) /* the max: the last count */
		want = n - 1;
	for (unsigned b = 0; b < HIST_N; b++) {
		seen += h[b];
		if (seen > want)
			return hist_edge(b) / 1000.0;
	}
	return hist_edge(HIST_N - 1) / 1000.0;
}

/* The previous time-series line's counters (main thread). */
static struct {
	double t;
	unsigned long acc, ref, err, started;
	unsigned long hist[HIST_N];
} g_prev;

void
load_series_line(double t)
{
	unsigned long h[HIST_N], n = 0, acc, ref, err, started;
	double dt = t - g_prev.t;

	for (unsigned b = 0; b < HIST_N; b++) {
		unsigned long v =
		    atomic_load_explicit(&g_hist[b], memory_order_relaxed);

		h[b] = v - g_prev.hist[b];
		g_prev.hist[b] = v;
		n += h[b];
	}
	acc = atomic_load(&load_accepted);
	ref = atomic_load(&load_refused);
	err = atomic_load(&load_errors);
	started = atomic_load(&load_started);
	printf(load_opt.json
	           ? "{\"t\":%.3f,\"accepted\":%lu,\"msgs_per_s\":%.1f,"
	             "\"started\":%lu,\"refused\":%lu,\"errors\":%lu,"
	             "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n"
	           : "series t=%.3f accepted=%lu msgs_per_s=%.1f started=%lu "
	             "refused=%lu errors=%lu p50_ms=%.3f p99_ms=%.3f "
	             "max_ms=%.3f\n",
	    t, acc - g_prev.acc, dt > 0 ? (double)(acc - g_prev.acc) / dt : 0,
	    started - g_prev.started, ref - g_prev.ref, err - g_prev.err,
	    hist_pct_of(h, n, 50), hist_pct_of(h, n, 99),
	    hist_pct_of(h, n, 100));
	fflush(stdout);
	g_prev.t = t;
	g_prev.acc = acc;
	g_prev.ref = ref;
	g_prev.err = err;
	g_prev.started = started;
}

void
load_lat_add(struct load_thread *t, uint64_t us)
{
	atomic_fetch_add_explicit(
	    &g_hist[hist_bucket(us)], 1, memory_order_relaxed);
	if (t->nlat == t->caplat) {
		t->caplat = t->caplat ? t->caplat * 2 : 4096;
		t->lat = xreallocarray(t->lat, t->caplat, sizeof(*t->lat));
	}
	t->lat[t->nlat++] = us;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)ceil(p / 100.0 * (double)n);
	return (double)v[i ? i - 1 : 0] / 1000.0; /* ms */
}

/* Open loop: what the run achieved against --rate. */
struct rate_check {
	double target, achieved;
	unsigned long due, started;
	bool missed;
};

/* Messages started over the time they should have taken (or, when they
 * started later than that, the time they did take); missed when under
 * 95% of the target. */
static void
rate_check(struct rate_check *rc)
{
	double intended = load_opt.duration > 0
	                      ? load_opt.duration
	                      : (double)load_opt.messages / load_opt.rate;
	uint64_t last = atomic_load(&load_last_start_us);
	double took = last > load_t0_us ? (double)(last - load_t0_us) / 1e6 : 0;
	double window = took > intended ? took : intended;

	rc->target = load_opt.rate;
	rc->due = atomic_load(&load_due);
	rc->started = atomic_load(&load_started);
	rc->achieved = window > 0 ? (double)rc->started / window : 0;
	rc->missed = rc->achieved < 0.95 * rc->target;
}

static void
report_rate_json(const struct rate_check *rc)
{
	printf(",\"rate\":{\"target\":%.1f,\"achieved\":%.1f,\"due\":%lu,"
	       "\"started\":%lu,\"missed\":%s}",
	    rc->target, rc->achieved, rc->due, rc->started,
	    rc->missed ? "true" : "false");
}

void
load_report(struct load_thread *ts, double elapsed)
{
	struct rate_check rc = {0};
	unsigned long codes[LOAD_CODES] = {0};
	uint64_t *all = NULL;
	size_t n = 0;
	unsigned long acc = atomic_load(&load_accepted);
	double rate = elapsed > 0 ? (double)acc / elapsed : 0;
	bool first = true;

	for (unsigned i = 0; i < load_opt.threads; i++) {
		all = xreallocarray(all, n + ts[i].nlat + 1, sizeof(*all));
		if (ts[i].nlat) /* lat is NULL until a message is accepted */
			memcpy(all + n, ts[i].lat, ts[i].nlat * sizeof(*all));
		n += ts[i].nlat;
		for (int k = 0; k < LOAD_CODES; k++)
			codes[k] += ts[i].codes[k];
	}
	qsort(all, n, sizeof(*all), cmp_u64);
	if (load_opt.rate > 0)
		rate_check(&rc);
	if (load_opt.json) {
		printf("{\"attempted\":%lu,\"accepted\":%lu,\"refused\":%lu,"
		       "\"errors\":%lu,\"elapsed_s\":%.3f,\"msgs_per_s\":%.1f,"
		       "\"msgs_per_hour\":%.0f,\"latency_ms\":{\"p50\":%.3f,"
		       "\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f},"
		       "\"codes\":{",
		    atomic_load(&load_started), acc, atomic_load(&load_refused),
		    atomic_load(&load_errors), elapsed, rate, rate * 3600,
		    pct(all, n, 50), pct(all, n, 90), pct(all, n, 99),
		    pct(all, n, 99.9), n ? (double)all[n - 1] / 1000.0 : 0);
		for (int k = 0; k < LOAD_CODES; k++)
			if (codes[k]) {
				printf("%s\"%d\":%lu", first ? "" : ",", k,
				    codes[k]);
				first = false;
			}
		printf("}");
		if (load_opt.rate > 0)
			report_rate_json(&rc);
		if (load_opt.starttls || load_opt.tls)
			printf(",\"tls\":{\"handshakes\":%lu,\"resumed\":%lu}",
			    atomic_load(&load_tls),
			    atomic_load(&load_tls_resumed));
		printf("}\n");
	} else {
		printf("attempted   %lu\naccepted    %lu\nrefused     %lu\n"
		       "errors      %lu\nelapsed     %.3f s\n"
		       "rate        %.1f msgs/s (%.0f msgs/hour)\n"
		       "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
		       "max %.3f\n",
		    atomic_load(&load_started), acc, atomic_load(&load_refused),
		    atomic_load(&load_errors), elapsed, rate, rate * 3600,
		    pct(all, n, 50), pct(all, n, 90), pct(all, n, 99),
		    pct(all, n, 99.9), n ? (double)all[n - 1] / 1000.0 : 0);
		if (load_opt.rate > 0)
			printf("rate        target %.1f msgs/s, achieved %.1f "
			       "(%lu due, %lu started)%s\n",
			    rc.target, rc.achieved, rc.due, rc.started,
			    rc.missed ? "  MISSED" : "");
		if (load_opt.starttls || load_opt.tls)
			printf("tls         %lu handshakes, %lu resumed\n",
			    atomic_load(&load_tls),
			    atomic_load(&load_tls_resumed));
		printf("replies    ");
		for (int k = 0; k < LOAD_CODES; k++)
			if (codes[k])
				printf(" %d:%lu", k, codes[k]);
		printf("\n");
	}
	fflush(stdout);
	if (rc.missed)
		fprintf(stderr,
		    "mta-load: the target rate was missed: %.1f of %.1f "
		    "msgs/s\n",
		    rc.achieved, rc.target);
	free(all);
}
