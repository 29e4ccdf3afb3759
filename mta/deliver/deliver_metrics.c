/* SPDX-License-Identifier: ISC */
/*
 * deliver_metrics.c - what the scheduler thread tells the metrics: the
 * delivery counters as each result is on disk, and, once a second while
 * metrics are on, a snapshot of the queue and of the destinations
 * (base/metrics.h) that the scrape reads without touching the schedule.
 *
 * The snapshot is bounded: the top N destinations by queued recipients
 * (then by recipients handled, so that busy ones show when the queue is
 * empty), picked with a min-heap of N while walking them all, and the
 * rest summed into destination="other". N is [metrics] destinations.
 * The walk is O(recipients + destinations) on this thread (about 100 ms
 * of CPU for 100,000 destinations and messages), so it runs once a
 * second, or less often when it costs more than 2% of the thread;
 * publishing is one pointer swap under a mutex.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/str.h"
#include "deliver/deliver_int.h"
#include "deliver/dest_shape.h"

#define PUBLISH_MS 1000 /* snapshot interval, at least */
#define COST_SHARE 50   /* the interval is at least 50 times its cost */

struct pick {
	struct metrics_sched *q;
	size_t cap; /* N */
	const struct dest_shape *shape;
	uint64_t now; /* wall ms */
};

static uint64_t
activity(const struct metrics_dest *d)
{
	return d->delivered + d->deferred + d->failed;
}

/* a ranks below b */
static bool
below(const struct metrics_dest *a, const struct metrics_dest *b)
{
	if (a->queued != b->queued)
		return a->queued < b->queued;
	return activity(a) < activity(b);
}

static void
heap_down(struct metrics_dest *h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		struct metrics_dest t;

		if (c >= n)
			return;
		if (c + 1 < n && below(&h[c + 1], &h[c]))
			c++;
		if (!below(&h[c], &h[i]))
			return;
		t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

static void
heap_up(struct metrics_dest *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		struct metrics_dest t;

		if (!below(&h[i], &h[p]))
			return;
		t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

static void
other_add(struct metrics_sched *q, const struct metrics_dest *d)
{
	q->nother++;
	q->other.queued += d->queued;
	q->other.connections += d->connections;
	q->other.suspended += d->suspended;
	q->other.delivered += d->delivered;
	q->other.deferred += d->deferred;
	q->other.failed += d->failed;
	for (size_t r = 0; r < METRICS_REASONS; r++)
		q->other.reasons[r] += d->reasons[r];
}

static void
pick_one(void *arg, const struct sched_dest_view *v)
{
	struct pick *p = arg;
	struct metrics_sched *q = p->q;
	struct metrics_dest d = {0};

	str_copy(d.domain, sizeof(d.domain), v->domain);
	d.queued = v->queued;
	d.connections = v->inflight;
	/* resting after a failure, or suspended by a backoff rule */
	d.suspended =
	    v->resting || dest_shape_suspended(p->shape, v->domain, p->now);
	d.delivered = v->outcomes[0];
	d.deferred = v->outcomes[1];
	d.failed = v->outcomes[2];
	memcpy(d.reasons, v->reasons, sizeof(d.reasons));
	if (q->ndests < p->cap) {
		q->dests[q->ndests] = d;
		heap_up(q->dests, q->ndests++);
		return;
	}
	if (p->cap == 0 || !below(&q->dests[0], &d)) {
		other_add(q, &d);
		return;
	}
	other_add(q, &q->dests[0]);
	q->dests[0] = d;
	heap_down(q->dests, q->ndests, 0);
}

static int
by_rank(const void *a, const void *b)
{
	const struct metrics_dest *x = a, *y = b;

	if (below(x, y))
		return 1;
	if (below(y, x))
		return -1;
	return strcmp(x->domain, y->domain);
}

void
deliver_metrics_tick(struct dsched *ds)
{
	uint64_t t0 = clock_mono_us(), now, cost;
	struct sched_queue_view qv;
	struct pick p;

	if (!metrics_enabled() || t0 / 1000 < ds->metrics_ms)
		return;
	now = clock_wall_ms();
	p.cap = metrics_destinations();
	p.q = metrics_sched_new(p.cap);
	p.q->made_ms = now;
	p.shape = ds->shape;
	p.now = now;
	sched_queue_view(ds->s, &qv);
	memcpy(p.q->msgs, qv.msgs, sizeof(qv.msgs));
	memcpy(p.q->rcpts, qv.rcpts, sizeof(qv.rcpts));
	p.q->oldest_ms = qv.oldest_ms;
	sched_dest_each(ds->s, now, pick_one, &p);
	qsort(p.q->dests, p.q->ndests, sizeof(p.q->dests[0]), by_rank);
	metrics_sched_publish(p.q);
	/* at most 1/COST_SHARE of this thread: a huge schedule is
	 * snapshotted less often (100,000 destinations: every few s) */
	cost = (clock_mono_us() - t0) / 1000 * COST_SHARE;
	ds->metrics_ms = t0 / 1000 + (cost > PUBLISH_MS ? cost : PUBLISH_MS);
}

void
deliver_metrics_outcome(const struct sched_job *job, uint64_t now)
{
	for (size_t i = 0; i < job->nrcpts; i++)
		switch (job->rcpts[i].state) {
		case SCHED_RCPT_DELIVERED:
			metrics_inc(METRICS_DELIVERED);
			metrics_observe(METRICS_H_DELIVERY_SECONDS,
			    now > job->received_ms ? now - job->received_ms
			                           : 0);
			break;
		case SCHED_RCPT_PENDING:
			metrics_inc(METRICS_DEFERRED);
			break;
		case SCHED_RCPT_FAILED:
		case SCHED_RCPT_EXPIRED:
			metrics_inc(METRICS_FAILED);
			break;
		}
}
