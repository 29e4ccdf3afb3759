/* SPDX-License-Identifier: ISC */
/*
 * deliver_bounce.c - the scheduler thread's bounces and delay warnings.
 *
 * A job whose recipients failed or expired (or that is the first to find
 * one deferred past [queue] delay_warning, or that relayed one whose
 * sender asked for NOTIFY=SUCCESS to a host without DSN) gets one DSN
 * (dsn.h) to the envelope sender, attached to the job's queue update so that the
 * committer queues it in the same transaction as the outcomes and
 * announces it back as a new message. A message from <> never bounces.
 * What it remembers (which messages have their delay warning on disk)
 * changes only once the update is committed. Runs on the scheduler
 * thread only (deliver_outcome.c, deliver_env.c, deliver_ctl.c call it;
 * it calls none of them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_int.h"
#include "deliver/dsn.h"
#include "dkim/dkim.h"
#include "queue/queue.h"

#define DSN_BODY_MAX ((size_t)8 << 20) /* bytes: headers + 1000 rcpts */
/* RET=FULL returns a message up to this size whole, a larger one as
 * headers only (Postfix's bounce_size_limit does the same). */
#define DSN_RETURN_MAX ((size_t)256 << 10) /* bytes */

static size_t
idset_home(const struct idset *set, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 17) & (set->cap - 1);
}

static size_t
idset_find(const struct idset *set, uint64_t id)
{
	size_t i = idset_home(set, id);

	while (set->slot[i] != 0 && set->slot[i] != id)
		i = (i + 1) & (set->cap - 1);
	return i;
}

static bool
idset_has(const struct idset *set, uint64_t id)
{
	return set->cap != 0 && set->slot[idset_find(set, id)] == id;
}

static void
idset_add(struct idset *set, uint64_t id)
{
	size_t i;

	if (set->cap == 0 || (set->n + 1) * 2 > set->cap) {
		struct idset big = {
		    xcalloc(set->cap ? set->cap * 2 : 64, sizeof(uint64_t)),
		    set->cap ? set->cap * 2 : 64, 0};

		for (size_t k = 0; k < set->cap; k++)
			if (set->slot[k] != 0)
				big.slot[idset_find(&big, set->slot[k])] =
				    set->slot[k];
		big.n = set->n;
		free(set->slot);
		*set = big;
	}
	i = idset_find(set, id);
	if (set->slot[i] == 0) {
		set->slot[i] = id;
		set->n++;
	}
}

/* Backward-shift deletion: no tombstones, so lookups stay short. */
static void
idset_del(struct idset *set, uint64_t id)
{
	size_t i, j, k, mask = set->cap - 1;

	if (!idset_has(set, id))
		return;
	i = idset_find(set, id);
	set->slot[i] = 0;
	set->n--;
	for (j = (i + 1) & mask; set->slot[j] != 0; j = (j + 1) & mask) {
		k = idset_home(set, set->slot[j]);
		/* leave it when its home lies cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		set->slot[i] = set->slot[j];
		set->slot[j] = 0;
		i = j;
	}
}

static bool
rcpt_failed(const struct sched_job_rcpt *r)
{
	return r->state == SCHED_RCPT_FAILED || r->state == SCHED_RCPT_EXPIRED;
}

/* Did the sender ask for this kind of notice (RFC 3461 4.1)? Without
 * NOTIFY: failures and delays (the relay sends delay warnings), never
 * success; NOTIFY=NEVER: none. */
static bool
rcpt_wants(const struct sched_job_rcpt *r, uint8_t what)
{
	if (r->notify == 0)
		return what != QUEUE_NOTIFY_SUCCESS;
	return (r->notify & what) != 0;
}

/* The notice r gets in this job's DSN; false when none. warn: the job
 * carries its message's delay warning. */
static bool
rcpt_notice(const struct sched_job_rcpt *r, bool warn, enum dsn_action *a)
{
	if (rcpt_failed(r)) {
		*a = DSN_ACTION_FAILED;
		return rcpt_wants(r, QUEUE_NOTIFY_FAILURE);
	}
	if (r->state == SCHED_RCPT_PENDING) {
		*a = DSN_ACTION_DELAYED;
		return warn && rcpt_wants(r, QUEUE_NOTIFY_DELAY);
	}
	/* delivered: a host that offers DSN was handed NOTIFY and reports
	 * itself; one that does not gets "relayed" from us */
	*a = DSN_ACTION_RELAYED;
	return r->state == SCHED_RCPT_DELIVERED && !r->peer_dsn &&
	       rcpt_wants(r, QUEUE_NOTIFY_SUCCESS);
}

/* Recipients of the job with a notice of kind a (any kind: all). */
static size_t
rcpt_count(const struct sched_job *job, bool warn, bool any, enum dsn_action a)
{
	size_t n = 0;
	enum dsn_action got;

	for (size_t i = 0; i < job->nrcpts; i++)
		n += rcpt_notice(&job->rcpts[i], warn, &got) &&
		     (any || got == a);
	return n;
}

/* Is this job the one to send its message's delay warning? Once per
 * message (QUEUE_FLAG_WARNED on disk, mirrored in ds->warned; another
 * job of the message may carry one in an update not yet back, in
 * ds->warning), only once a recipient is still deferred that long after
 * arrival, never to <>. */
static bool
bounce_warn_due(struct dsched *ds, const struct sched_job *job, uint64_t now)
{
	uint64_t after = ds->cfg.set.queue->delay_warning;

	if (after == 0 || job->from[0] == '\0' || now < job->received_ms ||
	    now - job->received_ms < after || idset_has(&ds->warned, job->id) ||
	    idset_has(&ds->warning, job->id))
		return false;
	for (size_t i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].state == SCHED_RCPT_PENDING &&
		    rcpt_wants(&job->rcpts[i], QUEUE_NOTIFY_DELAY))
			return true;
	return false;
}

/* The report's recipients (into dr, borrowed from job): how many. *full:
 * one failed and the sender asked for RET=FULL. */
static size_t
bounce_rcpts(struct dsched *ds, const struct sched_job *job, bool warn,
    uint64_t now, struct dsn_rcpt *dr, bool *full)
{
	const struct deliver_settings *cfg = &ds->cfg.set;
	size_t n = 0;

	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct sched_job_rcpt *r = &job->rcpts[i];

		if (!rcpt_notice(r, warn, &dr[n].action))
			continue;
		dr[n].addr = r->addr;
		/* RFC 3463 4.4.7: delivery time expired */
		dr[n].status =
		    r->state == SCHED_RCPT_EXPIRED ? "4.4.7" : r->dsn;
		dr[n].reply = r->reply;
		dr[n].relay = job->relay;
		dr[n].last_attempt_ms = now;
		dr[n].orcpt = r->orcpt;
		if (dr[n].action == DSN_ACTION_DELAYED)
			dr[n].retry_until_ms =
			    job->received_ms + cfg->queue->max_age;
		*full |= dr[n].action == DSN_ACTION_FAILED &&
		         job->ret == QUEUE_RET_FULL;
		n++;
	}
	return n;
}

/*
 * The original message for a DSN into head (initialised here): all of it
 * when *full (RET=FULL on a failure) and it is at most DSN_RETURN_MAX
 * bytes, else (and *full becomes false) its first DSN_HEADERS_MAX bytes,
 * for the header section. Returns as queue_body_head() does.
 */
static int
bounce_original(struct dsched *ds, uint64_t id, bool *full, struct buf *head)
{
	int rc;

	if (*full) {
		buf_init(head, DSN_RETURN_MAX + 1);
		rc = queue_body_head(ds->d->q, id, head, DSN_RETURN_MAX + 1);
		if (rc != 0 || buf_avail(head) <= DSN_RETURN_MAX)
			return rc;
		buf_fini(head);
		*full = false;
	}
	buf_init(head, DSN_HEADERS_MAX);
	return queue_body_head(ds->d->q, id, head, DSN_HEADERS_MAX);
}

/* DKIM-sign a report for the relay's own domain (its From is
 * MAILER-DAEMON@hostname), when a key covers it. Inline: reports are
 * rare, and a failure only leaves one unsigned. */
static void
bounce_sign(const struct dkim_table *t, struct queue_submit *b, uint64_t now)
{
	char label[DKIM_LABEL_MAX], why[32], id[QUEUE_ID_HEX + 1];
	int rc = dkim_sign_message(
	    t, &b->body, now / 1000, label, sizeof(label), why, sizeof(why));

	queue_id_fmt(b->id, id);
	if (rc == 1)
		log_event("event=dkim-signed id=%s dkim=%s", id, label);
	else if (strcmp(why, "none") != 0)
		log_event("event=dkim-unsigned id=%s reason=%s", id, why);
}

/* What a DSN reports: the original message and its notices. */
struct bounce_of {
	uint64_t id;
	const char *from;
	uint64_t received_ms;
	const char *envid; /* NULL = none */
	bool full;         /* return the whole message (RET=FULL failure) */
	const struct dsn_rcpt *dr;
	size_t n;
};

/* The DSN for o: a new message from <> to o->from, or NULL when it
 * cannot or must not be sent (logged). The original (headers, or all of
 * it) comes from the queue in a short read txn. */
static struct queue_submit *
bounce_build(struct dsched *ds, const struct bounce_of *o, uint64_t now)
{
	const struct deliver_settings *cfg = &ds->cfg.set;
	struct queue_submit *b = NULL;
	struct dsn_msg m = {0};
	char id[QUEUE_ID_HEX + 1];
	struct buf head;
	bool full = o->full;
	int rc;

	queue_id_fmt(o->id, id);
	rc = bounce_original(ds, o->id, &full, &head);
	if (rc == -ENOENT) {
		/* deleted by an operator meanwhile: that never bounces */
		log_event("event=bounce-dropped id=%s reason=message-gone", id);
		goto out;
	}
	if (rc != 0)
		log_warnx("event=bounce-without-headers id=%s error=\"%s\"", id,
		    strerror(-rc));
	b = xcalloc(1, sizeof(*b));
	b->id = queue_id_new(ds->d->q);
	b->from = xstrdup("");
	b->rcpts = xcalloc(1, sizeof(*b->rcpts));
	b->rcpts[0] = xstrdup(o->from);
	b->nrcpts = 1;
	b->client = xstrdup("");
	b->helo = xstrdup(cfg->hostname);
	b->received_ms = now;
	buf_init(&b->body, DSN_BODY_MAX);
	m.hostname = cfg->hostname;
	m.orig_id = o->id;
	m.orig_from = o->from;
	m.received_ms = o->received_ms;
	m.dsn_id = b->id;
	m.now_ms = now;
	m.envid = o->envid;
	m.full = full;
	if (buf_avail(&head) > 0) {
		m.headers = buf_peek(&head);
		m.headers_len = full ? buf_avail(&head)
		                     : dsn_headers_len(m.headers,
		                           buf_avail(&head), DSN_HEADERS_MAX);
	}
	m.rcpts = o->dr;
	m.nrcpts = o->n;
	if ((rc = dsn_build(&m, &b->body)) != 0) {
		/* XXX the outcomes still commit: this bounce is lost */
		log_warnx("event=bounce-failed id=%s error=\"%s\"", id,
		    strerror(-rc));
		queue_submit_free(b);
		b = NULL;
	} else if (cfg->dkim != NULL) {
		bounce_sign(cfg->dkim, b, now);
	}
out:
	buf_fini(&head);
	return b;
}

/*
 * One DSN for every failed or expired recipient of the job and, when
 * warn, every deferred one (bounce_build). The worker does not have the
 * body when DNS failed, the commonest bounce: the original comes from
 * the queue. Runs before the outcome's submit (deliver_outcome.c)
 * rewrites expired replies, so the DSN carries the remote's own words.
 */
static struct queue_submit *
bounce_make(
    struct dsched *ds, const struct sched_job *job, bool warn, uint64_t now)
{
	struct dsn_rcpt *dr =
	    xcalloc(job->nrcpts ? job->nrcpts : 1, sizeof(*dr));
	struct bounce_of o = {
	    job->id, job->from, job->received_ms, job->envid, false, dr, 0};
	struct queue_submit *b;

	o.n = bounce_rcpts(ds, job, warn, now, dr, &o.full);
	b = bounce_build(ds, &o, now);
	free(dr);
	return b;
}

/* An operator's bounce notices: every pending recipient that did not
 * ask for no failure notice (RFC 3461 NOTIFY), failed now. */
static size_t
bounce_operator_rcpts(const struct queue_envelope *env, struct dsn_rcpt *dr)
{
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING ||
		    (r->notify != 0 && !(r->notify & QUEUE_NOTIFY_FAILURE)))
			continue;
		dr[n].addr = r->addr;
		dr[n].action = DSN_ACTION_FAILED;
		dr[n].status = "5.0.0";
		dr[n].reply = DELIVER_BOUNCE_OPERATOR_REPLY;
		dr[n].orcpt = r->orcpt;
		n++;
	}
	return n;
}

struct queue_submit *
deliver_bounce_operator(struct dsched *ds, uint64_t id, uint64_t now)
{
	struct queue_envelope env;
	struct queue_submit *b = NULL;
	struct dsn_rcpt *dr;
	struct bounce_of o;

	if (queue_envelope_get(ds->d->q, id, &env) != 0)
		return NULL; /* gone: the delete answers for it */
	dr = xcalloc(env.nrcpts ? env.nrcpts : 1, sizeof(*dr));
	o = (struct bounce_of){id, env.from, env.received_ms, env.envid,
	    env.ret == QUEUE_RET_FULL, dr, bounce_operator_rcpts(&env, dr)};
	/* never to <>: that is how bounce loops cannot start */
	if (o.n > 0 && env.from[0] != '\0')
		b = bounce_build(ds, &o, now);
	free(dr);
	queue_envelope_fini(&env);
	return b;
}

/* Attach the job's DSN, if it needs one, to its update. A message from
 * <> never causes one (deliver_bounce_done logs that): that is how
 * bounce loops cannot start. */
void
deliver_bounce_attach(struct dsched *ds, const struct sched_job *job,
    struct queue_update *u, uint64_t now)
{
	bool warn;

	warn = bounce_warn_due(ds, job, now);
	if (job->from[0] == '\0' || rcpt_count(job, warn, true, 0) == 0)
		return;
	u->bounce = bounce_make(ds, job, warn, now);
	if (u->bounce != NULL && warn) {
		/* ds->warned only once it is on disk (deliver_bounce_done) */
		u->set_flags |= QUEUE_FLAG_WARNED;
		idset_add(&ds->warning, job->id);
	}
}

/* The update is back (after its per-recipient lines were logged): log
 * its DSN, or why there is none, and free it. */
void
deliver_bounce_done(struct dsched *ds, struct queue_update *u,
    const struct sched_job *job, const char *id)
{
	char dsn_id[QUEUE_ID_HEX + 1];
	bool warn = u->set_flags & QUEUE_FLAG_WARNED;
	size_t nfail = rcpt_count(job, warn, false, DSN_ACTION_FAILED);
	size_t ndelay = rcpt_count(job, warn, false, DSN_ACTION_DELAYED);
	size_t nrelay = rcpt_count(job, warn, false, DSN_ACTION_RELAYED);
	size_t nquiet = 0;

	for (size_t i = 0; i < job->nrcpts; i++)
		nquiet += rcpt_failed(&job->rcpts[i]) &&
		          !rcpt_wants(&job->rcpts[i], QUEUE_NOTIFY_FAILURE);
	if (job->from[0] == '\0' && nfail > 0 && u->status == 0)
		log_event("event=bounce-suppressed id=%s reason=null-sender "
		          "rcpts=%zu",
		    id, nfail);
	if (job->from[0] != '\0' && nquiet > 0 && u->status == 0)
		log_event("event=bounce-suppressed id=%s reason=notify "
		          "rcpts=%zu",
		    id, nquiet);
	if (u->bounce == NULL)
		return;
	if (u->set_flags & QUEUE_FLAG_WARNED) {
		idset_del(&ds->warning, job->id);
		/* on disk now, unless the message was gone (then nothing is
		 * written and the id is not scheduled any more) */
		if (u->status == 0 && u->bounce_status == 0)
			idset_add(&ds->warned, job->id);
	}
	queue_id_fmt(u->bounce->id, dsn_id);
	if (u->bounce_status == 0) {
		if (nfail > 0)
			log_event("event=bounced id=%s dsn_id=%s rcpts=%zu", id,
			    dsn_id, nfail);
		if (ndelay > 0)
			log_event("event=delay-warned id=%s dsn_id=%s "
			          "rcpts=%zu",
			    id, dsn_id, ndelay);
		if (nrelay > 0)
			log_event("event=relay-notified id=%s dsn_id=%s "
			          "rcpts=%zu",
			    id, dsn_id, nrelay);
	} else if (u->bounce_status == -ENOENT) {
		log_event("event=bounce-dropped id=%s dsn_id=%s "
		          "reason=message-gone",
		    id, dsn_id);
	}
	queue_submit_free(u->bounce);
	u->bounce = NULL;
}

void
deliver_bounce_warned(struct dsched *ds, uint64_t id, bool warned)
{
	if (warned)
		idset_add(&ds->warned, id);
	else
		idset_del(&ds->warned, id);
}

void
deliver_bounce_fini(struct dsched *ds)
{
	free(ds->warned.slot);
	ds->warned.slot = NULL;
	free(ds->warning.slot);
	ds->warning.slot = NULL;
}
