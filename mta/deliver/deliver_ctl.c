/* SPDX-License-Identifier: ISC */
/*
 * deliver_ctl.c - operator actions on the live queue, as the scheduler
 * thread carries them out for the control socket (control.c). Scheduler
 * thread only.
 *
 * Commit, then apply, like job outcomes (deliver_outcome.c): each action
 * goes to the committer first (hold and release: QUEUE_REQ_FLAGS with
 * QUEUE_FLAG_HELD; retry: QUEUE_REQ_FLAGS with due_ms; delete:
 * QUEUE_REQ_DELETE), and the schedule changes only for the ids whose
 * commit returned 0. A failed commit is that id's answer and changes
 * nothing in memory, so the schedule stays equal to the disk. Until the
 * commit is back the action is not in effect: a job dispatched meanwhile
 * goes out, and a hold or delete of a message with a job out takes
 * effect when the job comes back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
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
	deliver_env_add(ds, &env, now);
	queue_envelope_fini(&env);
}

/* One id's action is on disk: carry it out in the schedule. A message
 * the schedule does not hold (held since before the start, or not yet
 * announced) has nothing to change there, except for a release. */
static void
ctl_apply(struct dsched *ds, enum deliver_ctl_op op, uint64_t id, uint64_t now)
{
	switch (op) {
	case DELIVER_CTL_RETRY:
	case DELIVER_CTL_RETRY_ALL:
		(void)sched_msg_retry(ds->s, id, now);
		break;
	case DELIVER_CTL_HOLD:
		(void)sched_msg_hold(ds->s, id, true, now);
		break;
	case DELIVER_CTL_RELEASE:
		ctl_release(ds, id, now);
		break;
	case DELIVER_CTL_DELETE:
		(void)sched_msg_forget(ds->s, id);
		deliver_bounce_warned(ds, id, false);
		break;
	}
}

/* retry --all: the ids are every message the schedule holds now; the
 * request owns the arrays until it is answered. */
static void
ctl_list_all(struct dsched *ds, struct deliver_ctl *c)
{
	struct sched_stats st;

	sched_stats_get(ds->s, &st);
	c->ids = xcalloc(st.msgs ? st.msgs : 1, sizeof(*c->ids));
	c->n = sched_msg_ids(ds->s, c->ids, st.msgs);
	c->status = xcalloc(c->n ? c->n : 1, sizeof(*c->status));
}

static void
ctl_all_done(struct deliver_ctl *c)
{
	c->count = 0;
	c->error = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (c->status[i] == 0)
			c->count++;
		else if (c->status[i] != -ENOENT) /* gone meanwhile: fine */
			c->error = c->status[i];
	}
	if (c->error == 0)
		log_event("event=operator action=retry id=all messages=%zu",
		    c->count);
	else
		log_event("event=operator action=retry id=all messages=%zu "
		          "error=\"%s\"",
		    c->count, strerror(-c->error));
	free(c->ids);
	free(c->status);
	c->ids = NULL;
	c->status = NULL;
	c->n = 0;
}

void
deliver_ctl_request(struct dsched *ds, struct deliver_ctl *c)
{
	struct queue_ctl *qc;

	if (c->op == DELIVER_CTL_RETRY_ALL)
		ctl_list_all(ds, c);
	if (c->n == 0) {
		/* nothing to commit (retry --all of an empty schedule) */
		if (c->op == DELIVER_CTL_RETRY_ALL)
			ctl_all_done(c);
		ctl_answer(c);
		return;
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
	else if (c->op != DELIVER_CTL_DELETE)
		qc->due_ms = clock_wall_ms();
	ds->ctl_out++;
	queue_submit_ctl(ds->d->q, qc,
	    c->op == DELIVER_CTL_DELETE ? QUEUE_REQ_DELETE : QUEUE_REQ_FLAGS);
}

void
deliver_ctl_committed(struct dsched *ds, struct queue_ctl *qc)
{
	struct deliver_ctl *c = qc->arg;
	uint64_t now = clock_wall_ms();

	ds->ctl_out--;
	if (qc->due_ms != 0)
		now = qc->due_ms; /* a retry: due when the disk says */
	for (size_t i = 0; i < c->n; i++) {
		if (c->status[i] == 0)
			ctl_apply(ds, c->op, c->ids[i], now);
		if (c->op != DELIVER_CTL_RETRY_ALL)
			ctl_log(c->op, c->ids[i], c->status[i]);
	}
	if (c->op == DELIVER_CTL_RETRY_ALL)
		ctl_all_done(c);
	free(qc);
	ctl_answer(c);
}
