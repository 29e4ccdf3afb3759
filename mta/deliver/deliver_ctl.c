/* SPDX-License-Identifier: ISC */
/*
 * deliver_ctl.c - operator actions on the live schedule, as the scheduler
 * thread carries them out for the control socket (control.c): hold,
 * release and delete are committed to the queue before they are answered;
 * retry only moves recipients in the schedule. Scheduler thread only.
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

static const char *
ctl_name(enum deliver_ctl_op op)
{
	switch (op) {
	case DELIVER_CTL_DELETE:
		return "delete";
	case DELIVER_CTL_RETRY:
	case DELIVER_CTL_RETRY_ALL:
		return "retry";
	case DELIVER_CTL_HOLD:
		return "hold";
	case DELIVER_CTL_RELEASE:
		return "release";
	}
	return "?";
}

static void
ctl_log(enum deliver_ctl_op op, uint64_t id, int status)
{
	char hex[QUEUE_ID_HEX + 1];

	queue_id_fmt(id, hex);
	if (status == 0)
		log_event("event=operator action=%s id=%s", ctl_name(op), hex);
	else
		log_event("event=operator action=%s id=%s error=\"%s\"",
		    ctl_name(op), hex,
		    status == -ENOENT ? "no such message" : strerror(-status));
}

static void
ctl_answer(struct deliver_ctl *c)
{
	/* the operator reads the log once answered: no line held back */
	log_batch_flush();
	c->msg.type = DELIVER_MSG_CTL_DONE;
	chan_send(c->reply, &c->msg);
}

/* For a message the schedule does not hold (held when the relay started:
 * recovery leaves those out): is it queued? 0, -ENOENT, or the read
 * error. */
static int
ctl_queued(struct dsched *ds, uint64_t id)
{
	struct queue_envelope env;
	int rc = queue_envelope_get(ds->d->q, id, &env);

	if (rc == 0)
		queue_envelope_fini(&env);
	return rc;
}

/* The release is on disk: schedule the message again. */
static void
ctl_release(struct dsched *ds, uint64_t id, uint64_t now)
{
	struct queue_envelope env;

	if (sched_msg_hold(ds->s, id, false, now) == 0)
		return;
	/* Held since before this start, so never scheduled: add it now,
	 * from the envelope as it is on disk (the flag is clear). */
	if (queue_envelope_get(ds->d->q, id, &env) != 0)
		return;
	deliver_sched_add_env(ds, &env, now);
	queue_envelope_fini(&env);
}

/*
 * retry: the schedule only, answered at once. hold and delete stop
 * dispatching at once (a job already out takes effect when it comes
 * back), then go to disk; release goes to disk first and only then back
 * into the schedule. Those three are answered once committed.
 */
void
deliver_ctl_request(struct dsched *ds, struct deliver_ctl *c)
{
	uint64_t now = clock_wall_ms();
	struct queue_ctl *qc;
	struct sched_stats st;

	switch (c->op) {
	case DELIVER_CTL_RETRY_ALL:
		sched_retry_all(ds->s, now);
		sched_stats_get(ds->s, &st);
		c->count = st.msgs;
		log_event(
		    "event=operator action=retry id=all messages=%zu", st.msgs);
		ctl_answer(c);
		return;
	case DELIVER_CTL_RETRY:
		for (size_t i = 0; i < c->n; i++) {
			c->status[i] = sched_msg_retry(ds->s, c->ids[i], now);
			if (c->status[i] == -ENOENT)
				c->status[i] = ctl_queued(ds, c->ids[i]);
			ctl_log(c->op, c->ids[i], c->status[i]);
		}
		ctl_answer(c);
		return;
	case DELIVER_CTL_HOLD:
		for (size_t i = 0; i < c->n; i++)
			(void)sched_msg_hold(ds->s, c->ids[i], true, now);
		break;
	case DELIVER_CTL_DELETE:
		for (size_t i = 0; i < c->n; i++)
			(void)sched_msg_forget(ds->s, c->ids[i]);
		break;
	case DELIVER_CTL_RELEASE:
		break;
	}
	qc = xcalloc(1, sizeof(*qc));
	qc->reply = ds->d->sched_chan;
	qc->arg = c;
	qc->ids = c->ids;
	qc->n = c->n;
	qc->status = c->status;
	if (c->op == DELIVER_CTL_HOLD)
		qc->set = QUEUE_FLAG_HELD;
	else if (c->op == DELIVER_CTL_RELEASE)
		qc->clear = QUEUE_FLAG_HELD;
	ds->ctl_out++;
	queue_submit_ctl(ds->d->q, qc,
	    c->op == DELIVER_CTL_DELETE ? QUEUE_REQ_DELETE : QUEUE_REQ_FLAGS);
}

/* XXX a hold or delete whose commit failed stays in effect in memory
 * until the next start (the safe direction: nothing is sent); the
 * operator was told it failed. */
void
deliver_ctl_committed(struct dsched *ds, struct queue_ctl *qc)
{
	struct deliver_ctl *c = qc->arg;
	uint64_t now = clock_wall_ms();

	ds->ctl_out--;
	for (size_t i = 0; i < c->n; i++) {
		if (c->status[i] == 0 && c->op == DELIVER_CTL_RELEASE)
			ctl_release(ds, c->ids[i], now);
		ctl_log(c->op, c->ids[i], c->status[i]);
	}
	free(qc);
	ctl_answer(c);
}
