/* SPDX-License-Identifier: ISC */
/*
 * deliver_sched.c - the scheduler thread: the only owner of the schedule.
 *
 * It wakes for three kinds of message on its chan and for time:
 *   QUEUE_NOTE_NEW     a message was committed: add it to the schedule;
 *   DELIVER_MSG_DONE   a worker finished a job: decide each recipient's
 *                      fate (sched_job_done) and send the decisions to the
 *                      committer as one QUEUE_REQ_UPDATE;
 *   QUEUE_DONE_UPDATE  those decisions are on disk: log them, free the job.
 * A job whose recipients failed or expired also gets one DSN
 * (deliver_bounce.c), queued in the same transaction as the outcomes;
 * operator requests from the control socket are deliver_ctl.c's.
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
#include "queue/queue.h"

void
deliver_sched_add_env(
    struct dsched *ds, const struct queue_envelope *env, uint64_t now)
{
	struct sched_rcpt_in *in;
	size_t n = 0;

	if (env->flags & QUEUE_FLAG_WARNED)
		deliver_bounce_warned(ds, env->id, true);
	if (env->flags & QUEUE_FLAG_HELD)
		return; /* held: release (deliver_ctl.c) schedules it again */
	in = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(*in));
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		in[n].addr = env->rcpts[i].addr;
		in[n].idx = (uint32_t)i;
		in[n].attempts = (uint16_t)env->rcpts[i].attempts;
		in[n].next_ms = env->rcpts[i].next_ms;
		n++;
	}
	if (sched_msg_add(
	        ds->s, env->id, env->from, env->received_ms, in, n, now) != 0)
		log_debug("event=sched-duplicate id=%016llx",
		    (unsigned long long)env->id);
	free(in);
}

static int
recover_one(void *arg, const struct queue_envelope *env)
{
	struct dsched *ds = arg;

	deliver_sched_add_env(ds, env, clock_wall_ms());
	return 0;
}

static uint8_t
queue_state(enum sched_rcpt_state st)
{
	switch (st) {
	case SCHED_RCPT_PENDING:
		return QUEUE_RCPT_PENDING;
	case SCHED_RCPT_DELIVERED:
		return QUEUE_RCPT_DELIVERED;
	case SCHED_RCPT_FAILED:
	case SCHED_RCPT_EXPIRED:
		break;
	}
	return QUEUE_RCPT_FAILED;
}

/* A job is back: decide, then have the decisions committed. */
static void
job_done(struct dsched *ds, struct sched_job *job)
{
	uint64_t now = clock_wall_ms();
	struct queue_update *u = xcalloc(1, sizeof(*u));

	sched_job_done(ds->s, job, now);
	u->msg.type = QUEUE_REQ_UPDATE;
	u->reply = ds->d->sched_chan;
	u->arg = job;
	u->id = job->id;
	u->n = job->nrcpts;
	u->rcpts = xcalloc(job->nrcpts ? job->nrcpts : 1, sizeof(*u->rcpts));
	deliver_bounce_attach(ds, job, u, now);
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct sched_job_rcpt *r = &job->rcpts[i];

		if (r->state == SCHED_RCPT_EXPIRED) {
			/* RFC 3463 4.4.7: delivery time expired */
			char why[sizeof(r->reply)];

			str_fmt(
			    why, sizeof(why), "message expired: %s", r->reply);
			str_copy(r->reply, sizeof(r->reply), why);
			str_copy(r->dsn, sizeof(r->dsn), "4.4.7");
		}
		u->rcpts[i].idx = r->idx;
		u->rcpts[i].state = queue_state(r->state);
		u->rcpts[i].attempts = r->attempts;
		u->rcpts[i].next_ms = r->next_ms;
		u->rcpts[i].reply = r->reply;
	}
	ds->updates_out++;
	queue_submit_update(ds->d->q, u);
}

static const char *
event_name(enum sched_rcpt_state st)
{
	switch (st) {
	case SCHED_RCPT_DELIVERED:
		return "delivered";
	case SCHED_RCPT_PENDING:
		return "deferred";
	case SCHED_RCPT_FAILED:
		return "failed";
	case SCHED_RCPT_EXPIRED:
		return "expired";
	}
	return "?";
}

/* The decisions are on disk (or could not be written): log them. */
static void
update_done(struct dsched *ds, struct queue_update *u)
{
	struct sched_job *job = u->arg;
	uint64_t now = clock_wall_ms();
	char id[QUEUE_ID_HEX + 1];

	ds->updates_out--;
	queue_id_fmt(job->id, id);
	if (u->status != 0)
		log_warnx("event=update-failed id=%s error=\"%s\" "
		          "(outcomes will be retried after a restart)",
		    id, strerror(-u->status));
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct sched_job_rcpt *r = &job->rcpts[i];
		char rcpt[300], reply[700], relay[340];
		uint64_t delay =
		    now > job->received_ms ? now - job->received_ms : 0;

		log_quote(rcpt, sizeof(rcpt), r->addr, strlen(r->addr));
		log_quote(reply, sizeof(reply), r->reply, strlen(r->reply));
		log_quote(relay, sizeof(relay), job->relay, strlen(job->relay));
		if (r->state == SCHED_RCPT_PENDING) {
			log_event("event=deferred id=%s rcpt=%s relay=%s "
			          "delay=%.2fs dsn=%s attempts=%u next=%llus "
			          "reply=%s",
			    id, rcpt, relay, (double)delay / 1000,
			    r->dsn[0] ? r->dsn : "4.0.0", r->attempts,
			    (unsigned long long)(r->next_ms > now
			                             ? (r->next_ms - now) / 1000
			                             : 0),
			    reply);
		} else {
			log_event("event=%s id=%s rcpt=%s relay=%s "
			          "delay=%.2fs dsn=%s reply=%s",
			    event_name(r->state), id, rcpt, relay,
			    (double)delay / 1000, r->dsn[0] ? r->dsn : "5.0.0",
			    reply);
		}
	}
	deliver_bounce_done(ds, u, job, id);
	if (u->removed) {
		deliver_bounce_warned(ds, job->id, false);
		log_event("event=removed id=%s", id);
	}
	sched_job_free(job);
	free(u->rcpts);
	free(u);
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
			job_done(ds, job);
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

		deliver_sched_add_env(ds, &note->env, clock_wall_ms());
		queue_note_free(note);
		return 0;
	}
	case DELIVER_MSG_DONE:
		job_done(ds, (struct sched_job *)m);
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
		return 0;
	case QUEUE_DONE_UPDATE:
		update_done(ds, (struct queue_update *)m);
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
	struct dsched ds = {.d = d};
	struct sched_stats st;
	uint64_t deadline = 0;
	int rc;

	deliver_cfg_init(&ds.cfg, boot);
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
		log_info(
		    "event=delivery-stopped jobs_abandoned=%zu", st.inflight);
	sched_free(ds.s);
	/* XXX ids of messages deleted by an operator stay in it till here */
	deliver_bounce_fini(&ds);
	deliver_cfg_drop(&ds.cfg);
	return NULL;
}
