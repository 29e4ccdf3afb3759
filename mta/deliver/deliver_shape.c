/* SPDX-License-Identifier: ISC */
/*
 * deliver_shape.c - delivery shaping as operators see it: the scheduler
 * publishes dest_shape_report()'s text here once a second (a copy under a
 * mutex, so the control thread reads a snapshot and never waits on the
 * scheduler's loop), and an operator's resume travels to the scheduler
 * as a DELIVER_MSG_RESUME. deliver_shape_report and deliver_shape_resume
 * run on any thread; the rest on the scheduler's.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_int.h"
#include "deliver/dest_shape.h"

#define SHAPE_REPORT_MS 1000

char *
deliver_shape_report(struct deliver *d)
{
	char *t;

	pthread_mutex_lock(&d->shape_lock);
	t = xstrdup(d->shape_text ? d->shape_text : "");
	pthread_mutex_unlock(&d->shape_lock);
	return t;
}

void
deliver_shape_resume(struct deliver *d, const char *domain)
{
	struct deliver_resume *r = xcalloc(1, sizeof(*r));
	uint64_t gen, now;

	pthread_mutex_lock(&d->shape_lock);
	gen = d->shape_gen;
	pthread_mutex_unlock(&d->shape_lock);
	r->msg.type = DELIVER_MSG_RESUME;
	str_copy(r->domain, sizeof(r->domain), domain);
	chan_send(d->sched_chan, &r->msg);
	/* the scheduler publishes a report once it has applied it (or at
	 * its next second's report: then it is applied too, chan order) */
	for (int i = 0; i < 200; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		pthread_mutex_lock(&d->shape_lock);
		now = d->shape_gen;
		pthread_mutex_unlock(&d->shape_lock);
		if (now != gen)
			return;
		nanosleep(&ts, NULL);
	}
}

void
deliver_shape_publish(struct dsched *ds, bool force)
{
	uint64_t mono = clock_mono_ms();
	char *t, *old;

	if (!force && mono < ds->shape_ms)
		return;
	ds->shape_ms = mono + SHAPE_REPORT_MS;
	t = dest_shape_report(ds->shape, clock_wall_ms());
	pthread_mutex_lock(&ds->d->shape_lock);
	old = ds->d->shape_text;
	ds->d->shape_text = t;
	ds->d->shape_gen++;
	pthread_mutex_unlock(&ds->d->shape_lock);
	free(old);
}

void
deliver_shape_resume_apply(struct dsched *ds, struct deliver_resume *r)
{
	bool was = dest_shape_resume(ds->shape, r->domain);

	/* the units of a suspended destination wait in the heap until the
	 * suspension's end: make them due */
	(void)sched_dest_resume(ds->s, r->domain, clock_wall_ms());
	log_event("event=operator action=resume domain=%s suspended=%s",
	    r->domain, was ? "yes" : "no");
	free(r);
	deliver_shape_publish(ds, true);
}
