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
 * A job whose recipients failed or expired (or that is the first to find
 * one deferred past [queue] delay_warning) also builds one DSN (dsn.h) to
 * the envelope sender, which the committer queues in the same transaction
 * as the outcomes and announces back as a new message.
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
#include "deliver_int.h"
#include "dsn.h"
#include "queue/queue.h"

#define DSN_BODY_MAX ((size_t)8 << 20) /* bytes: headers + 1000 rcpts */

/* Ids of queued messages whose delay warning is queued (the envelope's
 * QUEUE_FLAG_WARNED): open addressing with linear probing, 0 = free slot
 * (ids are never 0). The schedule does not keep envelope flags, and the
 * check runs on every deferral, so it must not read the queue. */
struct idset {
	uint64_t *slot;
	size_t cap;  /* slots, a power of two, or 0 */
	size_t n;    /* ids stored, at most cap / 2 */
};

struct dsched {
	struct deliver *d;
	struct sched *s;
	uint64_t updates_out; /* QUEUE_REQ_UPDATEs not yet answered */
	uint64_t ctl_out;     /* operator requests with the committer */
	uint64_t cfg_gen;     /* the current config snapshot (0: startup) */
	uint64_t cfg_jobs0;   /* jobs out that were dispatched under gen 0 */
	bool draining;
	struct idset warned;  /* messages with a delay warning queued */
};

static uint64_t
dest_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

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
		struct idset big = { xcalloc(set->cap ? set->cap * 2 : 64,
		    sizeof(uint64_t)), set->cap ? set->cap * 2 : 64, 0 };

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

static void
sched_add_env(struct dsched *ds, const struct queue_envelope *env,
    uint64_t now)
{
	struct sched_rcpt_in *in;
	size_t n = 0;

	if (env->flags & QUEUE_FLAG_WARNED)
		idset_add(&ds->warned, env->id);
	if (env->flags & QUEUE_FLAG_HELD)
		return; /* XXX held messages wait for `mta queue release` */
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
	if (sched_msg_add(ds->s, env->id, env->from, env->received_ms, in, n,
		now) != 0)
		log_debug("event=sched-duplicate id=%016llx",
		    (unsigned long long)env->id);
	free(in);
}

static int
recover_one(void *arg, const struct queue_envelope *env)
{
	struct dsched *ds = arg;

	sched_add_env(ds, env, clock_wall_ms());
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

/* ---- bounces and delay warnings ------------------------------------ */

static bool
rcpt_failed(const struct sched_job_rcpt *r)
{
	return r->state == SCHED_RCPT_FAILED || r->state == SCHED_RCPT_EXPIRED;
}

/* Is this job the one to send its message's delay warning? Once per
 * message (the set here, QUEUE_FLAG_WARNED on disk), only once a
 * recipient is still deferred that long after arrival, never to <>. */
static bool
bounce_warn_due(struct dsched *ds, const struct sched_job *job, uint64_t now)
{
	uint64_t after = ds->d->cfg->queue.delay_warning;

	if (after == 0 || job->from[0] == '\0' || now < job->received_ms ||
	    now - job->received_ms < after || idset_has(&ds->warned, job->id))
		return false;
	for (size_t i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].state == SCHED_RCPT_PENDING)
			return true;
	return false;
}

/*
 * One DSN for every failed or expired recipient of the job and, when
 * warn, every deferred one: a new message from <> to the sender, or NULL
 * when it cannot or must not be sent (logged). The original headers come
 * from the queue (a short read txn, at most DSN_HEADERS_MAX bytes): the
 * worker does not have the body when DNS failed, the commonest bounce.
 * Runs before job_done() rewrites expired replies, so the DSN carries the
 * remote's own words.
 */
static struct queue_submit *
bounce_make(struct dsched *ds, const struct sched_job *job, bool warn,
    uint64_t now)
{
	const struct config *cfg = ds->d->cfg;
	struct dsn_rcpt *dr = xcalloc(job->nrcpts ? job->nrcpts : 1,
	    sizeof(*dr));
	struct queue_submit *b = NULL;
	struct dsn_msg m = { 0 };
	char id[QUEUE_ID_HEX + 1];
	struct buf head;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct sched_job_rcpt *r = &job->rcpts[i];

		if (!rcpt_failed(r) && !(warn &&
		    r->state == SCHED_RCPT_PENDING))
			continue;
		dr[n].addr = r->addr;
		dr[n].action = rcpt_failed(r) ? DSN_ACTION_FAILED :
						DSN_ACTION_DELAYED;
		/* RFC 3463 4.4.7: delivery time expired */
		dr[n].status = r->state == SCHED_RCPT_EXPIRED ? "4.4.7" :
								r->dsn;
		dr[n].reply = r->reply;
		dr[n].relay = job->relay;
		dr[n].last_attempt_ms = now;
		if (dr[n].action == DSN_ACTION_DELAYED)
			dr[n].retry_until_ms = job->received_ms +
			    cfg->queue.max_age;
		n++;
	}
	queue_id_fmt(job->id, id);
	buf_init(&head, DSN_HEADERS_MAX);
	rc = queue_body_head(ds->d->q, job->id, &head, DSN_HEADERS_MAX);
	if (rc == -ENOENT) {
		/* deleted by an operator meanwhile: that never bounces */
		log_event("event=bounce-dropped id=%s reason=message-gone", id);
		goto out;
	}
	if (rc != 0)
		log_warnx("event=bounce-without-headers id=%s error=\"%s\"",
		    id, strerror(-rc));
	b = xcalloc(1, sizeof(*b));
	b->id = queue_id_new(ds->d->q);
	b->from = xstrdup("");
	b->rcpts = xcalloc(1, sizeof(*b->rcpts));
	b->rcpts[0] = xstrdup(job->from);
	b->nrcpts = 1;
	b->client = xstrdup("");
	b->helo = xstrdup(cfg->server.hostname);
	b->received_ms = now;
	buf_init(&b->body, DSN_BODY_MAX);
	m.hostname = cfg->server.hostname;
	m.orig_id = job->id;
	m.orig_from = job->from;
	m.received_ms = job->received_ms;
	m.dsn_id = b->id;
	m.now_ms = now;
	if (buf_avail(&head) > 0) {
		m.headers = buf_peek(&head);
		m.headers_len = dsn_headers_len(m.headers, buf_avail(&head),
		    DSN_HEADERS_MAX);
	}
	m.rcpts = dr;
	m.nrcpts = n;
	if ((rc = dsn_build(&m, &b->body)) != 0) {
		/* XXX the outcomes still commit: this bounce is lost */
		log_warnx("event=bounce-failed id=%s error=\"%s\"", id,
		    strerror(-rc));
		queue_submit_free(b);
		b = NULL;
	}
out:
	buf_fini(&head);
	free(dr);
	return b;
}

/* Attach the job's DSN, if it needs one, to its update. A message from
 * <> never causes one (bounce_done logs that): that is how bounce loops
 * cannot start. */
static void
bounce_attach(struct dsched *ds, const struct sched_job *job,
    struct queue_update *u, uint64_t now)
{
	size_t nfail = 0;
	bool warn;

	for (size_t i = 0; i < job->nrcpts; i++)
		nfail += rcpt_failed(&job->rcpts[i]);
	warn = bounce_warn_due(ds, job, now);
	if ((nfail == 0 && !warn) || job->from[0] == '\0')
		return;
	u->bounce = bounce_make(ds, job, warn, now);
	if (u->bounce != NULL && warn) {
		u->set_flags |= QUEUE_FLAG_WARNED;
		idset_add(&ds->warned, job->id);
	}
}

/* The update is back (after its per-recipient lines were logged): log
 * its DSN, or why there is none, and free it. */
static void
bounce_done(struct dsched *ds, struct queue_update *u,
    const struct sched_job *job, const char *id)
{
	char dsn_id[QUEUE_ID_HEX + 1];
	size_t nfail = 0, ndelay = 0;

	for (size_t i = 0; i < job->nrcpts; i++) {
		nfail += rcpt_failed(&job->rcpts[i]);
		ndelay += (u->set_flags & QUEUE_FLAG_WARNED) &&
		    job->rcpts[i].state == SCHED_RCPT_PENDING;
	}
	if (job->from[0] == '\0' && nfail > 0 && u->status == 0)
		log_event("event=bounce-suppressed id=%s reason=null-sender "
		    "rcpts=%zu", id, nfail);
	if (u->bounce == NULL)
		return;
	queue_id_fmt(u->bounce->id, dsn_id);
	if (u->bounce_status == 0) {
		if (nfail > 0)
			log_event("event=bounced id=%s dsn_id=%s rcpts=%zu",
			    id, dsn_id, nfail);
		if (ndelay > 0)
			log_event("event=delay-warned id=%s dsn_id=%s "
			    "rcpts=%zu", id, dsn_id, ndelay);
	} else if (u->bounce_status == -ENOENT) {
		log_event("event=bounce-dropped id=%s dsn_id=%s "
		    "reason=message-gone", id, dsn_id);
	} else if (u->set_flags & QUEUE_FLAG_WARNED) {
		/* not on disk: a later attempt may warn again */
		idset_del(&ds->warned, job->id);
	}
	queue_submit_free(u->bounce);
	u->bounce = NULL;
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
	bounce_attach(ds, job, u, now);
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct sched_job_rcpt *r = &job->rcpts[i];

		if (r->state == SCHED_RCPT_EXPIRED) {
			/* RFC 3463 4.4.7: delivery time expired */
			char why[sizeof(r->reply)];

			str_fmt(why, sizeof(why), "message expired: %s",
			    r->reply);
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
		    "(outcomes will be retried after a restart)", id,
		    strerror(-u->status));
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct sched_job_rcpt *r = &job->rcpts[i];
		char rcpt[300], reply[700], relay[340];
		uint64_t delay = now > job->received_ms ?
		    now - job->received_ms : 0;

		log_quote(rcpt, sizeof(rcpt), r->addr, strlen(r->addr));
		log_quote(reply, sizeof(reply), r->reply, strlen(r->reply));
		log_quote(relay, sizeof(relay), job->relay,
		    strlen(job->relay));
		if (r->state == SCHED_RCPT_PENDING) {
			log_event("event=deferred id=%s rcpt=%s relay=%s "
			    "delay=%.2fs dsn=%s attempts=%u next=%llus "
			    "reply=%s", id, rcpt, relay, (double)delay / 1000,
			    r->dsn[0] ? r->dsn : "4.0.0", r->attempts,
			    (unsigned long long)(r->next_ms > now ?
				(r->next_ms - now) / 1000 : 0), reply);
		} else {
			log_event("event=%s id=%s rcpt=%s relay=%s "
			    "delay=%.2fs dsn=%s reply=%s",
			    event_name(r->state), id, rcpt, relay,
			    (double)delay / 1000,
			    r->dsn[0] ? r->dsn : "5.0.0", reply);
		}
	}
	bounce_done(ds, u, job, id);
	if (u->removed) {
		idset_del(&ds->warned, job->id);
		log_event("event=removed id=%s", id);
	}
	sched_job_free(job);
	free(u->rcpts);
	free(u);
}

static void cfg_job_out(struct dsched *ds, struct sched_job *job);

static void
dispatch(struct dsched *ds)
{
	uint64_t now = clock_wall_ms();
	struct sched_job *job;

	if (ds->draining)
		return;
	while ((job = sched_job_next(ds->s, now)) != NULL) {
		unsigned i = (unsigned)(dest_hash(job->domain) %
		    ds->d->nworkers);

		if (job->suspended) {
			/* its destination is resting: already decided */
			job_done(ds, job);
			continue;
		}
		cfg_job_out(ds, job);
		deliver_worker_send(ds->d->workers[i], job);
	}
}

/* ---- configuration reload ------------------------------------------- */

/* How long a retired snapshot outlives its last job: a worker reads
 * d->cfg outside jobs too (its idle ticker, a connection's setup), each
 * time for a moment. */
#define DSCHED_CFG_GRACE_MS 5000

static struct deliver_snap *
cfg_find(struct dsched *ds, uint64_t gen)
{
	for (struct deliver_snap *sn = ds->d->snaps; sn; sn = sn->next)
		if (sn->gen == gen)
			return sn;
	return NULL; /* gen 0: the startup config, never freed here */
}

/* A job uses the snapshot its worker finds when it takes the job (its
 * route, its connection's HELO name and credentials point into it):
 * the one current at dispatch or a newer one. So a job tagged g may hold
 * any snapshot >= g, and snapshot k is unused once no job tagged <= k is
 * out. */
static void
cfg_job_out(struct dsched *ds, struct sched_job *job)
{
	struct deliver_snap *sn = cfg_find(ds, ds->cfg_gen);

	job->msg.reqid = ds->cfg_gen;
	if (sn)
		sn->jobs++;
	else
		ds->cfg_jobs0++;
}

static void
cfg_job_back(struct dsched *ds, uint64_t gen)
{
	struct deliver_snap *sn = cfg_find(ds, gen);
	uint64_t *n = sn ? &sn->jobs : &ds->cfg_jobs0;

	if (*n > 0)
		(*n)--;
}

/* The safe point: nothing of this thread holds the old snapshot, and
 * workers pick the new one up at their next job. */
static void
cfg_swap(struct dsched *ds, struct deliver_config *m)
{
	struct deliver *d = ds->d;
	struct deliver_snap *sn = xcalloc(1, sizeof(*sn));

	for (struct deliver_snap *o = d->snaps; o; o = o->next)
		if (o->current) {
			o->current = false;
			o->retired_ms = clock_mono_ms();
		}
	sn->cfg = m->cfg;
	sn->gen = ++ds->cfg_gen;
	sn->current = true;
	sn->next = d->snaps;
	d->snaps = sn;
	d->cfg = sn->cfg; /* atomic store */
	free(m);
}

/* Free retired snapshots no job uses any more. */
static void
cfg_reap(struct dsched *ds)
{
	uint64_t now = clock_mono_ms(), le = ds->cfg_jobs0, mine;
	struct deliver_snap **pp = &ds->d->snaps, *sn;

	for (sn = ds->d->snaps; sn; sn = sn->next)
		le += sn->jobs;
	/* newest first: le counts the jobs out tagged <= sn->gen */
	while ((sn = *pp) != NULL) {
		mine = sn->jobs;
		if (sn->current || le > 0 ||
		    now - sn->retired_ms < DSCHED_CFG_GRACE_MS) {
			pp = &sn->next;
		} else {
			*pp = sn->next;
			config_free(sn->cfg);
			free(sn);
		}
		le -= mine;
	}
}

/* ---- operator actions (control.c) ----------------------------------- */

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
		    ctl_name(op), hex, status == -ENOENT ?
		    "no such message" : strerror(-status));
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
	sched_add_env(ds, &env, now);
	queue_envelope_fini(&env);
}

/*
 * retry: the schedule only, answered at once. hold and delete stop
 * dispatching at once (a job already out takes effect when it comes
 * back), then go to disk; release goes to disk first and only then back
 * into the schedule. Those three are answered once committed.
 */
static void
ctl_request(struct dsched *ds, struct deliver_ctl *c)
{
	uint64_t now = clock_wall_ms();
	struct queue_ctl *qc;
	struct sched_stats st;

	switch (c->op) {
	case DELIVER_CTL_RETRY_ALL:
		sched_retry_all(ds->s, now);
		sched_stats_get(ds->s, &st);
		c->count = st.msgs;
		log_event("event=operator action=retry id=all messages=%zu",
		    st.msgs);
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
	queue_submit_ctl(ds->d->q, qc, c->op == DELIVER_CTL_DELETE ?
	    QUEUE_REQ_DELETE : QUEUE_REQ_FLAGS);
}

/* XXX a hold or delete whose commit failed stays in effect in memory
 * until the next start (the safe direction: nothing is sent); the
 * operator was told it failed. */
static void
ctl_committed(struct dsched *ds, struct queue_ctl *qc)
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

/* Handle one message; returns the grace period (ms) on STOP, else 0. */
static uint64_t
handle(struct dsched *ds, struct chan_msg *m)
{
	switch (m->type) {
	case QUEUE_NOTE_NEW: {
		struct queue_note *note = (struct queue_note *)m;

		sched_add_env(ds, &note->env, clock_wall_ms());
		queue_note_free(note);
		return 0;
	}
	case DELIVER_MSG_DONE:
		cfg_job_back(ds, m->reqid);
		job_done(ds, (struct sched_job *)m);
		return 0;
	case DELIVER_MSG_CTL:
		ctl_request(ds, (struct deliver_ctl *)m);
		return 0;
	case QUEUE_DONE_DELETE:
	case QUEUE_DONE_FLAGS:
		ctl_committed(ds, (struct queue_ctl *)m);
		return 0;
	case DELIVER_MSG_CONFIG:
		cfg_swap(ds, (struct deliver_config *)m);
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
	const struct config *cfg = d->cfg;
	struct sched_cfg scfg = {
		.retry = cfg->queue.retry,
		.nretry = cfg->queue.nretry,
		.max_age = cfg->queue.max_age,
		.max_jobs = cfg->delivery.max_connections,
		.max_per_dest = cfg->delivery.max_connections_per_host,
	};
	struct dsched ds = { .d = d };
	struct sched_stats st;
	uint64_t deadline = 0;
	int rc;

	ds.s = sched_new(&scfg);
	rc = queue_scan(d->q, 0, recover_one, &ds);
	if (rc != 0)
		log_warnx("event=recovery-failed error=\"%s\"", strerror(-rc));
	sched_stats_get(ds.s, &st);
	log_event("event=scheduled messages=%zu destinations=%zu", st.msgs,
	    st.units);
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
		cfg_reap(&ds);
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
		log_info("event=delivery-stopped jobs_abandoned=%zu",
		    st.inflight);
	sched_free(ds.s);
	/* XXX ids of messages deleted by an operator stay in it till here */
	free(ds.warned.slot);
	return NULL;
}
