/* SPDX-License-Identifier: ISC */
/*
 * metrics_text_test.c - the Prometheus text writer (escapes, samples,
 * histograms with cumulative buckets), the per-thread counters summed
 * across threads, the fixed histogram buckets, the deferral reason
 * classes, and the scheduler snapshot's publish/get.
 */
#include <pthread.h>
#include <string.h>

#include "base/buf.h"
#include "base/metrics.h"
#include "metrics/metrics_page.h"
#include "metrics/metrics_text.h"
#include "../harness.h"

static bool
text_is(struct buf *b, const char *want)
{
	bool ok = buf_avail(b) == strlen(want) &&
	          memcmp(buf_peek(b), want, strlen(want)) == 0;

	if (!ok)
		fprintf(stderr, "got:\n%.*s\nwant:\n%s\n", (int)buf_avail(b),
		    (const char *)buf_peek(b), want);
	return ok;
}

static bool
has(const struct buf *b, const char *s)
{
	return memmem(buf_peek(b), buf_avail(b), s, strlen(s)) != NULL;
}

static void
test_family_and_escapes(void)
{
	struct buf b;
	struct metrics_text t;
	struct metrics_label l[2] = {{"a", "x\"y\\z\nw"}, {"b", ""}};

	buf_init(&b, 4096);
	metrics_text_init(&t, &b);
	metrics_text_family(&t, "m_total", "counter", "help \\ with\nnewline");
	metrics_text_u64(&t, "m_total", l, 2, 18446744073709551615ULL);
	metrics_text_i64(&t, "g", NULL, 0, -3);
	metrics_text_f64(&t, "f", l + 1, 1, 0.25);
	CHECK(metrics_text_err(&t) == 0);
	CHECK(text_is(&b, "# HELP m_total help \\\\ with\\nnewline\n"
	                  "# TYPE m_total counter\n"
	                  "m_total{a=\"x\\\"y\\\\z\\nw\",b=\"\"} "
	                  "18446744073709551615\n"
	                  "g -3\n"
	                  "f{b=\"\"} 0.25\n"));
	buf_fini(&b);
}

static void
test_hist_cumulative(void)
{
	static const uint64_t bounds[] = {250, 1000};
	const uint64_t counts[] = {1, 2, 3};
	struct buf b;
	struct metrics_text t;
	struct metrics_label l = {"k", "v"};

	buf_init(&b, 4096);
	metrics_text_init(&t, &b);
	metrics_text_hist(&t, "h", &l, 1, bounds, 2, counts, 5000, 1e6);
	CHECK(text_is(&b, "h_bucket{k=\"v\",le=\"0.00025\"} 1\n"
	                  "h_bucket{k=\"v\",le=\"0.001\"} 3\n"
	                  "h_bucket{k=\"v\",le=\"+Inf\"} 6\n"
	                  "h_sum{k=\"v\"} 0.005\n"
	                  "h_count{k=\"v\"} 6\n"));
	buf_fini(&b);
}

static void
test_cap_is_sticky(void)
{
	struct buf b;
	struct metrics_text t;

	buf_init(&b, 10);
	metrics_text_init(&t, &b);
	metrics_text_u64(&t, "a_long_name", NULL, 0, 1);
	metrics_text_u64(&t, "b", NULL, 0, 1);
	CHECK(metrics_text_err(&t) < 0);
	buf_fini(&b);
}

static void *
count_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++)
		metrics_inc(METRICS_DNS_QUERIES);
	metrics_observe(METRICS_H_COMMIT_BATCH, 1);    /* le 1 */
	metrics_observe(METRICS_H_COMMIT_BATCH, 3);    /* le 4 */
	metrics_observe(METRICS_H_COMMIT_BATCH, 5000); /* +Inf */
	metrics_conn_open(1);
	return NULL;
}

/* Counts from several threads (each its own block) add up, also after
 * the threads have ended; buckets take a value at their upper bound. */
static void
test_threads_sum(void)
{
	const struct metrics_hist_def *d =
	    metrics_hist_def(METRICS_H_COMMIT_BATCH);
	struct metrics_sums s;
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&th[i], NULL, count_thread, NULL) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	metrics_conn_close(1); /* another thread than the opens */
	metrics_sum(&s);
	CHECK(s.c[METRICS_DNS_QUERIES] == 4000);
	CHECK(s.conn_total[1] == 4 && s.conn_current[1] == 3);
	CHECK(d->bounds[0] == 1 && d->bounds[2] == 4);
	CHECK(s.h[METRICS_H_COMMIT_BATCH].b[0] == 4);
	CHECK(s.h[METRICS_H_COMMIT_BATCH].b[2] == 4);
	CHECK(s.h[METRICS_H_COMMIT_BATCH].b[d->nbounds] == 4);
	CHECK(s.h[METRICS_H_COMMIT_BATCH].count == 12);
	CHECK(s.h[METRICS_H_COMMIT_BATCH].sum == 4 * 5004);
}

static void
test_reasons(void)
{
	CHECK(metrics_reason_of("4.2.0", "451 4.2.0 try later", false) ==
	      METRICS_R_4XX);
	CHECK(
	    metrics_reason_of("5.1.1", "550 5.1.1 no", false) == METRICS_R_5XX);
	CHECK(metrics_reason_of("4.4.1",
	          "connect to 192.0.2.1:25: "
	          "Connection refused",
	          false) == METRICS_R_CONNECT);
	CHECK(metrics_reason_of("4.4.3", "SERVFAIL", false) == METRICS_R_DNS);
	CHECK(metrics_reason_of("4.4.2", "read timed out", false) ==
	      METRICS_R_TIMEOUT);
	CHECK(metrics_reason_of("4.7.5", "TLS handshake failed", false) ==
	      METRICS_R_TLS);
	CHECK(metrics_reason_of("4.4.1", "anything", true) ==
	      METRICS_R_SUSPENDED);
	CHECK(metrics_reason_of(NULL, NULL, false) == METRICS_R_OTHER);
}

/* The page is well formed with and without a snapshot; the snapshot's
 * named destinations and other appear. */
static void
test_page_snapshot(void)
{
	struct metrics_sched *q = metrics_sched_new(1);
	struct buf b;
	bool ok = true;

	buf_init(&b, 1 << 20);
	STEP(ok, metrics_page(&b) == 0);
	STEP(ok, has(&b, "# TYPE mta_commit_seconds histogram\n"));
	buf_reset(&b);
	q->ndests = 1;
	strcpy(q->dests[0].domain, "a.test");
	q->dests[0].queued = 7;
	q->other.queued = 5;
	metrics_sched_publish(q);
	STEP(ok, metrics_page(&b) == 0);
	STEP(ok, has(&b, "mta_destination_queued{destination=\"a.test\"} 7\n"));
	STEP(ok, has(&b, "mta_destination_queued{destination=\"other\"} 5\n"));
	buf_fini(&b);
	metrics_sched_publish(NULL);
}

static const struct harness_case cases[] = {
    {"family_and_escapes", test_family_and_escapes},
    {"hist_cumulative", test_hist_cumulative},
    {"cap_is_sticky", test_cap_is_sticky},
    {"threads_sum", test_threads_sum},
    {"reasons", test_reasons},
    {"page_snapshot", test_page_snapshot},
};

HARNESS_MAIN(cases)
