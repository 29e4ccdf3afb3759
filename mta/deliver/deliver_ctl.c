/* SPDX-License-Identifier: ISC */
/*
 * deliver_ctl.c - operator actions on the live queue, as the scheduler
 * thread carries them out for the control socket (control.c). Scheduler
 * thread only.
 *
 * Commit, then apply, like job outcomes (deliver_outcome.c): each action
 * goes to the committer first (hold and release: QUEUE_REQ_FLAGS with
 * QUEUE_FLAG_HELD; retry: QUEUE_REQ_FLAGS with due_ms; delete:
 * QUEUE_REQ_DELETE; bounce: QUEUE_REQ_DELETE with a DSN per id, built
 * here before the commit and inserted in its transaction), and the
 * schedule changes only for the ids whose commit returned 0. A failed commit is that id's answer and changes
 * nothing in memory, so the schedule stays equal to the disk. Until the
 * commit is back the action is not in effect: a job dispatched meanwhile
 * goes out, and a hold or delete of a message with a job out takes
 * effect when the job comes back; a bounce of one is refused (-EBUSY):
 * its DSN could call failed a recipient that job delivers.
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
	case DELIVER_CTL_BOUNCE:
		return "bounce";
	}
	return "?";
}

/* dsn: the bounce's DSN, or NULL */
static void
ctl_log(enum deliver_ctl_op op, uint64_t id, int status,
    const struct queue_submit *dsn)
{
	char hex[QUEUE_ID_HEX + 1], dsn_hex[QUEUE_ID_HEX + 1];

	queue_id_fmt(id, hex);
	if (status == 0 && dsn != NULL) {
		queue_id_fmt(dsn->id, dsn_hex);
		log_event("event=operator action=%s id=%s dsn_id=%s",
		    ctl_name(op), hex, dsn_hex);
	} else if (status == 0)
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
	case DELIVER_CTL_BOUNCE:
		(void)sched_msg_forget(ds->s, id);
		deliver_bounce_warned(ds, id, false);
		break;
	}
}

/* A request with the committer. retry --all names every message the
 * schedule holds when it arrives, in arrays of its own (the sender's
 * hold no ids); the others borrow the sender's. */
struct ctl_pending {
	struct queue_ctl qc; /* first: what comes back is this */
	struct deliver_ctl *c;
	uint64_t *ids; /* qc.ids */
	int *status;   /* qc.status */
	bool own;      /* ids and status are ours (retry --all) */
	struct queue_submit **bounces; /* bounce: qc.bounces, ours */
	size_t *map; /* bounce: qc index -> c index (busy ids left out) */
};

/*
 * A bounce reports every pending recipient as failed, so a message with
 * a job out, whose recipients may be delivered meanwhile, is left out
 * and answered -EBUSY (the operator tries again in a moment). The DSNs
 * of the rest are built before the commit, from the queue as it is: a
 * message gone meanwhile is answered by the delete. Returns the ids to
 * commit.
 */
static size_t
ctl_bounce_pick(struct dsched *ds, struct ctl_pending *p)
{
	struct deliver_ctl *c = p->c;
	size_t cap = c->n ? c->n : 1, n = 0;
	uint64_t now = clock_wall_ms();

	p->own = true;
	p->ids = xcalloc(cap, sizeof(*p->ids));
	p->status = xcalloc(cap, sizeof(*p->status));
	p->map = xcalloc(cap, sizeof(*p->map));
	p->bounces = xcalloc(cap, sizeof(*p->bounces));
	for (size_t i = 0; i < c->n; i++) {
		if (sched_msg_busy(ds->s, c->ids[i])) {
			c->status[i] = -EBUSY;
			ctl_log(c->op, c->ids[i], -EBUSY, NULL);
			continue;
		}
		p->map[n] = i;
		p->ids[n] = c->ids[i];
		p->bounces[n] = deliver_bounce_operator(ds, c->ids[i], now);
		n++;
	}
	p->qc.bounces = p->bounces;
	return n;
}

static struct ctl_pending *
ctl_pending_new(struct dsched *ds, struct deliver_ctl *c)
{
	struct ctl_pending *p = xcalloc(1, sizeof(*p));
	struct sched_stats st;
	size_t n = c->n;

	p->c = c;
	p->ids = c->ids;
	p->status = c->status;
	if (c->op == DELIVER_CTL_RETRY_ALL) {
		sched_stats_get(ds->s, &st);
		p->own = true;
		p->ids = xcalloc(st.msgs ? st.msgs : 1, sizeof(*p->ids));
		n = sched_msg_ids(ds->s, p->ids, st.msgs);
		p->status = xcalloc(n ? n : 1, sizeof(*p->status));
	}
	if (c->op == DELIVER_CTL_BOUNCE)
		n = ctl_bounce_pick(ds, p);
	p->qc.reply = ds->d->sched_chan;
	p->qc.arg = p;
	p->qc.ids = p->ids;
	p->qc.n = n;
	p->qc.status = p->status;
	if (c->op == DELIVER_CTL_HOLD)
		p->qc.set = QUEUE_FLAG_HELD;
	else if (c->op == DELIVER_CTL_RELEASE)
		p->qc.clear = QUEUE_FLAG_HELD;
	else if (c->op != DELIVER_CTL_DELETE && c->op != DELIVER_CTL_BOUNCE)
		p->qc.due_ms = clock_wall_ms();
	return p;
}

static void
ctl_pending_free(struct ctl_pending *p)
{
	if (p->own) {
		free(p->ids);
		free(p->status);
	}
	for (size_t i = 0; p->bounces != NULL && i < p->qc.n; i++)
		queue_submit_free(p->bounces[i]);
	free(p->bounces);
	free(p->map);
	free(p);
}

/* retry --all is answered with a count, and the first error (an id gone
 * meanwhile is none: it was delivered or deleted). */
static void
ctl_all_done(struct deliver_ctl *c, const struct queue_ctl *qc)
{
	c->count = 0;
	c->error = 0;
	for (size_t i = 0; i < qc->n; i++) {
		if (qc->status[i] == 0)
			c->count++;
		else if (qc->status[i] != -ENOENT && c->error == 0)
			c->error = qc->status[i];
	}
	if (c->error == 0)
		log_event("event=operator action=retry id=all messages=%zu",
		    c->count);
	else
		log_event("event=operator action=retry id=all messages=%zu "
		          "error=\"%s\"",
		    c->count, strerror(-c->error));
}

void
deliver_ctl_request(struct dsched *ds, struct deliver_ctl *c)
{
	struct ctl_pending *p = ctl_pending_new(ds, c);

	if (p->qc.n == 0) {
		/* nothing to commit (retry --all of an empty schedule) */
		if (c->op == DELIVER_CTL_RETRY_ALL)
			ctl_all_done(c, &p->qc);
		ctl_pending_free(p);
		ctl_answer(c);
		return;
	}
	ds->ctl_out++;
	queue_submit_ctl(ds->d->q, &p->qc,
	    c->op == DELIVER_CTL_DELETE || c->op == DELIVER_CTL_BOUNCE
	        ? QUEUE_REQ_DELETE
	        : QUEUE_REQ_FLAGS);
}

void
deliver_ctl_committed(struct dsched *ds, struct queue_ctl *qc)
{
	struct ctl_pending *p = qc->arg;
	struct deliver_ctl *c = p->c;
	/* a retry: due when the disk says */
	uint64_t now = qc->due_ms ? qc->due_ms : clock_wall_ms();

	ds->ctl_out--;
	for (size_t i = 0; i < qc->n; i++) {
		if (qc->status[i] == 0)
			ctl_apply(ds, c->op, qc->ids[i], now);
		if (c->op != DELIVER_CTL_RETRY_ALL)
			ctl_log(c->op, qc->ids[i], qc->status[i],
			    p->bounces ? p->bounces[i] : NULL);
	}
	for (size_t i = 0; p->map != NULL && i < qc->n; i++)
		c->status[p->map[i]] = qc->status[i];
	if (c->op == DELIVER_CTL_RETRY_ALL)
		ctl_all_done(c, qc);
	ctl_pending_free(p);
	ctl_answer(c);
}
