/* SPDX-License-Identifier: ISC */
/*
 * deliver_metrics_test.c - the scheduler's metrics snapshot: the top N
 * destinations by queued recipients with the rest summed as "other",
 * queue states, and the scale case: 100,000 destinations make a
 * snapshot of N and a /metrics page that is small and built in well
 * under 100 ms (the walk itself runs on the scheduler, once a second).
 * White-box: a struct dsched around a schedule, no threads.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/metrics.h"
#include "deliver/deliver_int.h"
#include "metrics/metrics_page.h"
#include "../harness.h"

static const uint64_t retry[] = {60000};

static struct sched *
mk(void)
{
	struct sched_cfg cfg = {
	    .retry = retry,
	    .nretry = 1,
	    .max_age = 86400000,
	    .max_jobs = 100,
	    .max_per_dest = 10,
	};

	return sched_new(&cfg);
}

static double
secs(void)
{
	struct timespec ts;

	/* CPU time: the machine may be busy with other work */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ndest destinations, one recipient each; "big.test" gets 5 and
 * "mid.test" 3, in one message each. */
static bool
fill(struct sched *s, unsigned ndest)
{
	char addr[64];
	struct sched_rcpt_in r = {.addr = addr};
	struct sched_rcpt_in many[5];
	char a5[5][32];
	int bad = 0;

	for (unsigned i = 0; i < ndest; i++) {
		snprintf(addr, sizeof(addr), "u@d%u.test", i);
		bad += sched_msg_add(s, i + 1, "f@x", 1000 + i, &r, 1, 0) != 0;
	}
	for (int i = 0; i < 5; i++) {
		snprintf(a5[i], sizeof(a5[i]), "u%d@big.test", i);
		many[i] = (struct sched_rcpt_in){.addr = a5[i], .idx = i};
	}
	bad += sched_msg_add(s, ndest + 1, "f@x", 500, many, 5, 0) != 0;
	for (int i = 0; i < 3; i++) {
		snprintf(a5[i], sizeof(a5[i]), "u%d@mid.test", i);
		many[i] = (struct sched_rcpt_in){.addr = a5[i], .idx = i};
	}
	bad += sched_msg_add(s, ndest + 2, "f@x", 600, many, 3, 0) != 0;
	return bad == 0;
}

static void
test_top_and_other(void)
{
	struct dsched ds = {.s = mk()};
	struct metrics_sched *q;
	bool ok = true;

	STEP(ok, fill(ds.s, 20));
	metrics_set_enabled(true, 2);
	deliver_metrics_tick(&ds);
	q = metrics_sched_get();
	STEP(ok, q != NULL);
	STEP(ok, q->ndests == 2 && q->nother == 20);
	STEP(ok, strcmp(q->dests[0].domain, "big.test") == 0);
	STEP(ok, q->dests[0].queued == 5);
	STEP(ok, strcmp(q->dests[1].domain, "mid.test") == 0);
	STEP(ok, q->other.queued == 20);
	STEP(ok, q->msgs[METRICS_Q_QUEUED] == 22);
	STEP(ok, q->rcpts[METRICS_Q_QUEUED] == 28);
	STEP(ok, q->oldest_ms == 500);
	metrics_sched_put(q);
	metrics_sched_publish(NULL);
	sched_free(ds.s);
}

static void
test_100k_destinations(void)
{
	struct dsched ds = {.s = mk()};
	struct metrics_sched *q;
	struct buf page;
	double t0, walk, build;
	bool ok = true;

	STEP(ok, fill(ds.s, 100000));
	metrics_set_enabled(true, 50);
	t0 = secs();
	deliver_metrics_tick(&ds);
	walk = secs() - t0;
	q = metrics_sched_get();
	STEP(ok, q != NULL && q->ndests == 50 && q->nother == 100002 - 50);
	metrics_sched_put(q);
	buf_init(&page, 64 * 1024 * 1024);
	t0 = secs();
	STEP(ok, metrics_page(&page) == 0);
	build = secs() - t0;
	fprintf(stderr,
	    "100k destinations: snapshot walk %.1f ms CPU, page %zu "
	    "bytes in %.2f ms CPU\n",
	    walk * 1e3, buf_avail(&page), build * 1e3);
	STEP(ok, build < 0.1);
	STEP(ok, buf_avail(&page) < 64 * 1024);
	buf_fini(&page);
	metrics_sched_publish(NULL);
	sched_free(ds.s);
}

static const struct harness_case cases[] = {
    {"top_and_other", test_top_and_other},
    {"100k_destinations", test_100k_destinations},
};

HARNESS_MAIN(cases)
