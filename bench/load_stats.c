/* SPDX-License-Identifier: ISC */
/*
 * load_stats.c - mta-load's latencies and its report: exact per-thread
 * samples for the final percentiles, and a histogram of atomics that the
 * progress line reads while the threads run. The samples are the
 * owning thread's until it has been joined.
 */
#include "bench/load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void
load_report(struct load_thread *ts, double elapsed)
{
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
		if (load_opt.starttls)
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
		if (load_opt.starttls)
			printf("tls         %lu handshakes, %lu resumed\n",
			    atomic_load(&load_tls),
			    atomic_load(&load_tls_resumed));
		printf("replies    ");
		for (int k = 0; k < LOAD_CODES; k++)
			if (codes[k])
				printf(" %d:%lu", k, codes[k]);
		printf("\n");
	}
	free(all);
}
