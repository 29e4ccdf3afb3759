/* SPDX-License-Identifier: ISC */
/*
 * deliver_sched.c - the scheduler thread: the only owner of the schedule.
 *
 * It wakes for these messages on its chan and for time:
 *   QUEUE_NOTE_NEW     a message was committed: add it to the schedule
 *                      (deliver_env.c);
 *   DELIVER_MSG_DONE   a worker finished a job: decide each recipient's
 *                      fate and send the decisions to the committer as
 *                      one QUEUE_REQ_UPDATE (deliver_outcome.c);
 *   QUEUE_DONE_UPDATE  those decisions are back: apply them to the
 *                      schedule and log them if they are on disk, else
 *                      leave the schedule as the disk is;
 *   DELIVER_MSG_CTL    an operator request, committed first and applied
 *                      when QUEUE_DONE_DELETE/FLAGS is back
 *                      (deliver_ctl.c).
 * Then it hands every due job to a worker, chosen by a hash of the
 * destination so that one destination's connections live in one worker
 * and get reused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_int.h"
#include "deliver/dest_shape.h"
#include "queue/queue.h"

static int
recover_one(void *arg, const struct queue_envelope *env)
{
	struct dsched *ds = arg;

	deliver_env_add(ds, env, clock_wall_ms());
	return 0;
}

static void
dispatch(struct dsched *ds)
{
	uint64_t now = clock_wall_ms();
	struct sched_job *job;

	if (ds->draining)
		return;
	while ((job = sched_job_next(ds->s, now)) != NULL) {
		unsigned i =
		    (unsigned)(str_hash(job->domain) % ds->d->nworkers);

		if (job->suspended) {
			/* its destination is resting: already decided */
			deliver_outcome_submit(ds, job);
			continue;
		}
		deliver_worker_send(ds->d->workers[i], job);
	}
}

/* Handle one message; returns the grace period (ms) on STOP, else 0. */
static uint64_t
handle(struct dsched *ds, struct chan_msg *m)
{
	switch (m->type) {
	case QUEUE_NOTE_NEW: {
		struct queue_note *note = (struct queue_note *)m;

		deliver_env_add(ds, &note->env, clock_wall_ms());
		queue_note_free(note);
		return 0;
	}
	case DELIVER_MSG_DONE:
		dest_shape_done(
		    ds->shape, (struct sched_job *)m, clock_wall_ms());
		deliver_outcome_submit(ds, (struct sched_job *)m);
		return 0;
	case DELIVER_MSG_RESUME:
		deliver_shape_resume_apply(ds, (struct deliver_resume *)m);
		return 0;
	case DELIVER_MSG_CTL:
		deliver_ctl_request(ds, (struct deliver_ctl *)m);
		return 0;
	case QUEUE_DONE_DELETE:
	case QUEUE_DONE_FLAGS:
		deliver_ctl_committed(ds, (struct queue_ctl *)m);
		return 0;
	case DELIVER_MSG_CONFIG:
		/* the loop boundary: nothing of this thread holds the old
		 * one now (jobs carry their worker's) */
		deliver_cfg_take(&ds->cfg, (struct deliver_config *)m);
		dest_shape_config(ds->shape, ds->cfg.set.config);
		return 0;
	case QUEUE_DONE_UPDATE:
		deliver_outcome_done(ds, (struct queue_update *)m);
		return 0;
	case DELIVER_MSG_STOP: {
		uint64_t grace = m->reqid ? m->reqid : 1;

		free(m);
		return grace;
	}
	}
	MTA_ASSERT(!"unknown message for the scheduler");
	return 0;
}

void *
deliver_sched_main(void *arg)
{
	struct deliver *d = arg;
	const struct deliver_settings *boot = &d->boot;
	/* what a reload does not change (the key table says so) */
	struct sched_cfg scfg = {
	    .retry = boot->queue->retry,
	    .nretry = boot->queue->nretry,
	    .max_age = boot->queue->max_age,
	    .max_jobs = boot->delivery->max_connections,
	    .max_per_dest = boot->delivery->max_connections_per_host,
	};
	struct dsched ds = {.d = d, .shape = dest_shape_new()};
	struct sched_stats st;
	uint64_t deadline = 0;
	int rc;

	deliver_cfg_init(&ds.cfg, boot);
	dest_shape_config(ds.shape, ds.cfg.set.config);
	scfg.admit = dest_shape_admit;
	scfg.admit_arg = ds.shape;
	ds.s = sched_new(&scfg);
	rc = queue_scan(d->q, 0, recover_one, &ds);
	if (rc != 0)
		log_warnx("event=recovery-failed error=\"%s\"", strerror(-rc));
	sched_stats_get(ds.s, &st);
	log_event(
	    "event=scheduled messages=%zu destinations=%zu", st.msgs, st.units);
	for (;;) {
		int64_t t = sched_timeout(ds.s, clock_wall_ms());
		int wait = t < 0 || t > 1000 ? 1000 : (int)t;
		struct chan_msg *m, *n;

		if (ds.draining)
			wait = 50;
		m = chan_wait(d->sched_chan, wait);
		/* a line or two per recipient: one write(2) per wakeup */
		log_batch_begin();
		for (; m; m = n) {
			uint64_t grace;

			n = m->next;
			if ((grace = handle(&ds, m)) != 0) {
				ds.draining = true;
				deadline = clock_mono_ms() + grace;
			}
		}
		dispatch(&ds);
		deliver_metrics_tick(&ds);
		deliver_shape_publish(&ds, false);
		log_batch_end();
		/* An update is always answered (commits are quick) and its
		 * answer comes to this chan, so wait for every one; jobs in
		 * flight are only waited for until the deadline. */
		if (ds.draining && ds.updates_out == 0 && ds.ctl_out == 0) {
			sched_stats_get(ds.s, &st);
			if (st.inflight == 0 || clock_mono_ms() >= deadline)
				break;
		}
	}
	/* Jobs still out come back to a closed door; deliver_stop frees
	 * them. Their recipients are still pending on disk. */
	sched_stats_get(ds.s, &st);
	if (st.inflight)
		log_event(
		    "event=delivery-stopped jobs_abandoned=%zu", st.inflight);
	sched_free(ds.s);
	dest_shape_free(ds.shape);
	deliver_bounce_fini(&ds);
	deliver_cfg_drop(&ds.cfg);
	return NULL;
}
