/* SPDX-License-Identifier: ISC */
/*
 * deliver_outcome.c - what becomes of a job that is back: commit, then
 * apply. Scheduler thread only (deliver_sched.c calls it).
 *
 * A job back from a worker (or decided without one, its destination
 * resting) is decided (sched_job_decide: each recipient delivered,
 * failed, expired or deferred to a retry time) but the schedule does not
 * change yet: the job is "deciding" and holds a commit slot of its
 * destination (its connection slot is free for the next job). The decisions,
 * with the job's DSN if it needs one (deliver_bounce.c), go to the
 * committer as one QUEUE_REQ_UPDATE. When it comes back committed, the
 * schedule applies them (slots, windows, retry times, removal), and only
 * then are they logged. When the commit failed, nothing of it is on
 * disk, so the schedule is left as the disk is: the recipients stay
 * pending with their old attempts, the slots are released, and the job's
 * unit waits a retry interval before it is tried again
 * (sched_job_revert). Holding a commit slot until the commit returns
 * bounds the deliveries a crash can repeat (schedule.h).
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

void
deliver_outcome_submit(struct dsched *ds, struct sched_job *job)
{
	uint64_t now = clock_wall_ms();
	struct queue_update *u = xcalloc(1, sizeof(*u));

	sched_job_decide(ds->s, job, now);
	u->reply = ds->d->sched_chan;
	u->arg = job;
	u->id = job->id;
	u->n = job->nrcpts;
	u->rcpts = xcalloc(job->nrcpts ? job->nrcpts : 1, sizeof(*u->rcpts));
	/* before the expired replies are rewritten: the DSN carries the
	 * remote's own words */
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

/* One line per recipient, once its outcome is on disk. */
static void
outcome_log(const struct sched_job *job, const char *id, uint64_t now)
{
	uint64_t delay = now > job->received_ms ? now - job->received_ms : 0;
	char relay[340];

	log_quote(relay, sizeof(relay), job->relay, strlen(job->relay));
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct sched_job_rcpt *r = &job->rcpts[i];
		char rcpt[300], reply[700];

		log_quote(rcpt, sizeof(rcpt), r->addr, strlen(r->addr));
		log_quote(reply, sizeof(reply), r->reply, strlen(r->reply));
		if (r->state == SCHED_RCPT_PENDING) {
			log_event("event=deferred id=%s rcpt=%s relay=%s "
			          "delay=%.2fs dsn=%s attempts=%u next=%llus "
			          "%s reply=%s",
			    id, rcpt, relay, (double)delay / 1000,
			    r->dsn[0] ? r->dsn : "4.0.0", r->attempts,
			    (unsigned long long)(r->next_ms > now
			                             ? (r->next_ms - now) / 1000
			                             : 0),
			    job->tls[0] ? job->tls : "tls=none", reply);
		} else {
			log_event("event=%s id=%s rcpt=%s relay=%s "
			          "delay=%.2fs dsn=%s %s reply=%s%s%s",
			    event_name(r->state), id, rcpt, relay,
			    (double)delay / 1000, r->dsn[0] ? r->dsn : "5.0.0",
			    job->tls[0] ? job->tls : "tls=none", reply,
			    job->tls_policy ? " tls_policy=" : "",
			    job->tls_policy ? job->tls_policy : "");
		}
	}
}

void
deliver_outcome_done(struct dsched *ds, struct queue_update *u)
{
	struct sched_job *job = u->arg;
	uint64_t now = clock_wall_ms();
	char id[QUEUE_ID_HEX + 1];

	ds->updates_out--;
	queue_id_fmt(job->id, id);
	if (u->status == 0) {
		(void)sched_job_apply(ds->s, job, now);
		deliver_metrics_outcome(job, now);
		outcome_log(job, id, now);
	} else {
		sched_job_revert(ds->s, job, now);
		log_warnx("event=update-failed id=%s rcpts=%zu error=\"%s\" "
		          "note=\"outcomes not recorded: the recipients stay "
		          "pending as on disk and are tried again later\"",
		    id, job->nrcpts, strerror(-u->status));
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
