/* SPDX-License-Identifier: ISC */
/*
 * schedule.c - the in-memory delivery schedule (see schedule.h for the design).
 *
 * Three structures, all owned by one thread:
 *   - msgs: a chained hash of id -> struct smsg with its recipients and
 *     one unit per destination;
 *   - heap: a binary min-heap of units by due time; each unit knows its
 *     slot (hpos) so hold, retry and forget can move or remove it;
 *   - dests: a chained hash of domain -> struct sdest with its window,
 *     jobs in flight and a FIFO of due units waiting for a free slot.
 * A unit is in at most one of: the heap, its destination's FIFO, a job in
 * flight, or nowhere (held, or nothing pending).
 */
#include "deliver/schedule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define NOWHERE  ((size_t)-1)
#define REST_MAX (5 * 60 * 1000) /* ms a failed destination rests, at most */

struct sdest;
struct smsg;

struct srcpt {
	char *addr;
	char *orcpt; /* DSN ORCPT, or NULL */
	uint8_t notify;
	uint32_t idx;
	uint16_t attempts;
	uint64_t next_ms;
	bool pending;
	struct sunit *unit;
};

struct sunit {
	struct smsg *msg;
	struct sdest *dest;
	uint64_t due;                /* wall ms */
	size_t hpos;                 /* slot in the heap, or NOWHERE */
	bool waiting;                /* in dest->fifo */
	bool inflight;               /* a job is out (or deciding) */
	uint64_t not_before;         /* wall ms: after a failed commit */
	struct sunit *wnext, *wprev; /* dest->fifo links: O(1) removal */
};

struct smsg {
	uint64_t id;
	char *from;
	char *envid; /* DSN ENVID, or NULL */
	uint8_t ret;
	uint64_t received_ms;
	size_t nrcpts;
	struct srcpt *rcpts;
	size_t nunits;
	struct sunit *units;
	size_t npending;
	bool held;
	bool forgotten; /* forget requested while a job was out */
	struct smsg *hnext;
};

struct sdest {
	char *domain;
	unsigned inflight; /* jobs at workers: connections' worth */
	unsigned deciding; /* jobs back, their result not yet on disk */
	unsigned window;
	uint64_t dead_until;   /* wall ms: a failed destination rests */
	char dead_reason[200]; /* why, for the suspended deferrals */
	uint64_t outcomes[3];  /* metrics: delivered, deferred, failed */
	uint64_t reasons[METRICS_REASONS]; /* metrics: deferrals by class */
	uint64_t queued;                   /* scratch of sched_dest_each */
	struct sunit *whead, *wtail;
	struct sdest *hnext;
	/* shaped (cfg.admit refused): its due units wait in its line until
	 * then; linked in sched->shaped while in_shaped */
	uint64_t shaped_until;
	bool in_shaped;
	struct sdest *snext;
};

struct sched {
	struct sched_cfg cfg;
	struct smsg **mtab; /* buckets */
	size_t mcap, nmsgs;
	struct sdest **dtab;
	size_t dcap, ndests;
	struct sunit **heap;
	size_t hlen, hcap;
	size_t nunits;
	unsigned inflight; /* jobs out, deciding ones included */
	unsigned deciding;
	struct sdest *shaped; /* destinations waiting on cfg.admit */
};

static uint64_t
hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* --- heap ------------------------------------------------------------ */

static void
heap_set(struct sched *s, size_t i, struct sunit *u)
{
	s->heap[i] = u;
	u->hpos = i;
}

static void
heap_up(struct sched *s, size_t i)
{
	struct sunit *u = s->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (s->heap[p]->due <= u->due)
			break;
		heap_set(s, i, s->heap[p]);
		i = p;
	}
	heap_set(s, i, u);
}

static void
heap_down(struct sched *s, size_t i)
{
	struct sunit *u = s->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->hlen)
			break;
		if (c + 1 < s->hlen && s->heap[c + 1]->due < s->heap[c]->due)
			c++;
		if (u->due <= s->heap[c]->due)
			break;
		heap_set(s, i, s->heap[c]);
		i = c;
	}
	heap_set(s, i, u);
}

static void
heap_push(struct sched *s, struct sunit *u)
{
	if (s->hlen == s->hcap) {
		s->hcap = s->hcap ? s->hcap * 2 : 64;
		s->heap = xreallocarray(s->heap, s->hcap, sizeof(*s->heap));
	}
	s->heap[s->hlen] = u;
	u->hpos = s->hlen++;
	heap_up(s, u->hpos);
}

static void
heap_remove(struct sched *s, struct sunit *u)
{
	size_t i = u->hpos;
	struct sunit *last;

	if (i == NOWHERE)
		return;
	u->hpos = NOWHERE;
	last = s->heap[--s->hlen];
	if (i == s->hlen)
		return;
	heap_set(s, i, last);
	heap_up(s, i);
	heap_down(s, last->hpos);
}

/* --- messages and destinations ---------------------------------------- */

static struct smsg **
msg_slot(struct sched *s, uint64_t id)
{
	struct smsg **pp = &s->mtab[hash64(id) & (s->mcap - 1)];

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->hnext;
	return pp;
}

static void
msg_grow(struct sched *s)
{
	struct smsg **old = s->mtab;
	size_t ocap = s->mcap;

	s->mcap = ocap ? ocap * 2 : 1024;
	s->mtab = xcalloc(s->mcap, sizeof(*s->mtab));
	for (size_t i = 0; i < ocap; i++) {
		struct smsg *m = old[i], *next;

		for (; m; m = next) {
			struct smsg **pp =
			    &s->mtab[hash64(m->id) & (s->mcap - 1)];

			next = m->hnext;
			m->hnext = *pp;
			*pp = m;
		}
	}
	free(old);
}

static struct sdest *
dest_get(struct sched *s, const char *domain)
{
	struct sdest **pp, *d;

	if (s->ndests >= s->dcap) {
		struct sdest **old = s->dtab;
		size_t ocap = s->dcap;

		s->dcap = ocap ? ocap * 2 : 256;
		s->dtab = xcalloc(s->dcap, sizeof(*s->dtab));
		for (size_t i = 0; i < ocap; i++) {
			struct sdest *n;

			for (d = old[i]; d; d = n) {
				pp = &s->dtab[str_hash(d->domain) &
				              (s->dcap - 1)];
				n = d->hnext;
				d->hnext = *pp;
				*pp = d;
			}
		}
		free(old);
	}
	pp = &s->dtab[str_hash(domain) & (s->dcap - 1)];
	for (d = *pp; d; d = d->hnext)
		if (strcmp(d->domain, domain) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->domain = xstrdup(domain);
	d->window = s->cfg.max_per_dest;
	d->hnext = *pp;
	*pp = d;
	s->ndests++;
	return d;
}

static struct sdest *
dest_find(const struct sched *s, const char *domain)
{
	struct sdest *d;

	if (s->dcap == 0)
		return NULL;
	for (d = s->dtab[str_hash(domain) & (s->dcap - 1)]; d; d = d->hnext)
		if (strcmp(d->domain, domain) == 0)
			return d;
	return NULL;
}

/* The destination of an address: its domain, lowercased. */
static void
addr_domain(const char *addr, char *out, size_t len)
{
	const char *at = strrchr(addr, '@');

	str_copy(out, len, at ? at + 1 : "");
	str_lower(out);
}

static void
fifo_remove(struct sunit *u)
{
	struct sdest *d = u->dest;

	if (!u->waiting)
		return;
	if (u->wprev)
		u->wprev->wnext = u->wnext;
	else
		d->whead = u->wnext;
	if (u->wnext)
		u->wnext->wprev = u->wprev;
	else
		d->wtail = u->wprev;
	u->wnext = u->wprev = NULL;
	u->waiting = false;
}

static void
fifo_push(struct sunit *u)
{
	struct sdest *d = u->dest;

	u->waiting = true;
	u->wnext = NULL;
	u->wprev = d->wtail;
	if (d->wtail)
		d->wtail->wnext = u;
	else
		d->whead = u;
	d->wtail = u;
}

/* Put a unit where it belongs: in the heap at the earliest next_ms of its
 * pending recipients (not before its not_before), or nowhere when it has
 * none or its message is held. */
static void
unit_place(struct sched *s, struct sunit *u)
{
	struct smsg *m = u->msg;
	uint64_t due = UINT64_MAX;

	heap_remove(s, u);
	if (u->waiting)
		fifo_remove(u);
	if (u->inflight || m->held)
		return;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].unit == u && m->rcpts[i].pending &&
		    m->rcpts[i].next_ms < due)
			due = m->rcpts[i].next_ms;
	if (due == UINT64_MAX)
		return;
	u->due = due > u->not_before ? due : u->not_before;
	heap_push(s, u);
}

static void
msg_free(struct sched *s, struct smsg *m)
{
	for (size_t i = 0; i < m->nunits; i++) {
		heap_remove(s, &m->units[i]);
		if (m->units[i].waiting)
			fifo_remove(&m->units[i]);
	}
	s->nunits -= m->nunits;
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m->units);
	free(m->from);
	free(m->envid);
	free(m);
}

static void
msg_unlink(struct sched *s, struct smsg *m)
{
	struct smsg **pp = msg_slot(s, m->id);

	if (*pp == m) {
		*pp = m->hnext;
		s->nmsgs--;
	}
}

/* --- public ------------------------------------------------------------ */

struct sched *
sched_new(const struct sched_cfg *cfg)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->cfg = *cfg;
	if (s->cfg.max_per_dest == 0)
		s->cfg.max_per_dest = 1;
	if (s->cfg.max_jobs == 0)
		s->cfg.max_jobs = 1;
	msg_grow(s);
	return s;
}

void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->mcap; i++) {
		struct smsg *m = s->mtab[i], *n;

		for (; m; m = n) {
			n = m->hnext;
			msg_free(s, m);
		}
	}
	for (size_t i = 0; i < s->dcap; i++) {
		struct sdest *d = s->dtab[i], *n;

		for (; d; d = n) {
			n = d->hnext;
			free(d->domain);
			free(d);
		}
	}
	free(s->mtab);
	free(s->dtab);
	free(s->heap);
	free(s);
}

int
sched_msg_add(struct sched *s, uint64_t id, const char *from,
    uint64_t received_ms, const struct sched_rcpt_in *rcpts, size_t n,
    uint64_t now_ms)
{
	char dom[256];
	struct smsg *m;

	if (*msg_slot(s, id) != NULL)
		return -EEXIST;
	if (n == 0)
		return 0;
	if (s->nmsgs >= s->mcap)
		msg_grow(s);
	m = xcalloc(1, sizeof(*m));
	m->id = id;
	m->from = xstrdup(from);
	m->received_ms = received_ms;
	m->rcpts = xcalloc(n, sizeof(*m->rcpts));
	m->units = xcalloc(n, sizeof(*m->units));
	for (size_t i = 0; i < n; i++) {
		struct srcpt *r = &m->rcpts[m->nrcpts++];
		struct sdest *d;
		size_t k;

		r->addr = xstrdup(rcpts[i].addr);
		r->idx = rcpts[i].idx;
		r->attempts = rcpts[i].attempts;
		r->next_ms = rcpts[i].next_ms ? rcpts[i].next_ms : now_ms;
		r->pending = true;
		addr_domain(r->addr, dom, sizeof(dom));
		d = dest_get(s, dom);
		for (k = 0; k < m->nunits; k++)
			if (m->units[k].dest == d)
				break;
		if (k == m->nunits) {
			m->units[k].msg = m;
			m->units[k].dest = d;
			m->units[k].hpos = NOWHERE;
			m->nunits++;
		}
		r->unit = &m->units[k];
	}
	m->npending = m->nrcpts;
	s->nunits += m->nunits;
	*msg_slot(s, id) = m;
	s->nmsgs++;
	for (size_t k = 0; k < m->nunits; k++)
		unit_place(s, &m->units[k]);
	return 0;
}

static char *
dsn_dup(const char *s)
{
	return s != NULL && s[0] != '\0' ? xstrdup(s) : NULL;
}

int
sched_msg_dsn(struct sched *s, uint64_t id, const char *envid, uint8_t ret,
    const uint8_t *notify, const char *const *orcpts, size_t n)
{
	struct smsg *m = *msg_slot(s, id);

	if (m == NULL)
		return -ENOENT;
	free(m->envid);
	m->envid = dsn_dup(envid);
	m->ret = ret;
	for (size_t i = 0; i < n && i < m->nrcpts; i++) {
		m->rcpts[i].notify = notify != NULL ? notify[i] : 0;
		free(m->rcpts[i].orcpt);
		m->rcpts[i].orcpt = orcpts != NULL ? dsn_dup(orcpts[i]) : NULL;
	}
	return 0;
}

static struct sched_job *
job_make(struct sched *s, struct sunit *u, uint64_t now_ms)
{
	struct smsg *m = u->msg;
	struct sched_job *j = xcalloc(1, sizeof(*j));

	j->id = m->id;
	j->from = xstrdup(m->from);
	j->domain = xstrdup(u->dest->domain);
	j->received_ms = m->received_ms;
	j->envid = dsn_dup(m->envid);
	j->ret = m->ret;
	j->rcpts = xcalloc(m->nrcpts, sizeof(*j->rcpts));
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct srcpt *r = &m->rcpts[i];

		if (r->unit != u || !r->pending || r->next_ms > now_ms)
			continue;
		j->rcpts[j->nrcpts].idx = r->idx;
		j->rcpts[j->nrcpts].addr = xstrdup(r->addr);
		j->rcpts[j->nrcpts].notify = r->notify;
		j->rcpts[j->nrcpts].orcpt = dsn_dup(r->orcpt);
		j->nrcpts++;
	}
	u->inflight = true;
	u->dest->inflight++;
	s->inflight++;
	return j;
}

/*
 * Results of a destination's jobs that may be in the committer at once,
 * per slot of its window. A job holds a connection slot (one of
 * `window`) while at a worker, and a commit slot from its return until
 * its result is on disk. The connection is free for the next job while
 * the result is committed: a group commit costs a sync shared with the
 * receive stage, and one commit slot per connection slot idled the
 * connections for that long (it halved delivery on the benchmark). The
 * cost is the crash window: fewer than (1 + COMMIT_SLOTS) * window of a
 * destination's deliveries can be unrecorded, and repeated after a crash.
 */
#define COMMIT_SLOTS 4

/* How many more jobs the destination may take now. */
static unsigned
dest_room(const struct sdest *d)
{
	if (d->inflight >= d->window || d->deciding >= COMMIT_SLOTS * d->window)
		return 0;
	return d->window - d->inflight;
}

/* Units waiting in line for d go next, as many as it has room for (a
 * shaped destination is asked again: a job's end may have freed what
 * held it back). */
static void
dest_wake(struct sched *s, struct sdest *d, uint64_t now_ms)
{
	d->shaped_until = 0;
	for (unsigned n = dest_room(d); n > 0 && d->whead; n--) {
		struct sunit *w = d->whead;

		fifo_remove(w);
		w->due = now_ms;
		heap_push(s, w);
	}
}

/* A due unit of a resting destination: decided without a connection. */
static struct sched_job *
job_suspended(struct sched *s, struct sunit *u, uint64_t now_ms)
{
	struct sched_job *j = job_make(s, u, now_ms);

	j->suspended = true;
	for (size_t i = 0; i < j->nrcpts; i++) {
		j->rcpts[i].outcome = SCHED_OUTCOME_TEMPFAIL;
		str_copy(j->rcpts[i].dsn, sizeof(j->rcpts[i].dsn), "4.4.1");
		str_fmt(j->rcpts[i].reply, sizeof(j->rcpts[i].reply),
		    "delivery temporarily suspended: %s",
		    u->dest->dead_reason[0] ? u->dest->dead_reason
		                            : "the destination failed");
	}
	return j;
}

/* Destinations whose shaping wait is over: their line goes next. */
static void
shaped_wake(struct sched *s, uint64_t now_ms)
{
	for (struct sdest **pp = &s->shaped; *pp != NULL;) {
		struct sdest *d = *pp;

		if (d->shaped_until > now_ms) {
			pp = &d->snext;
			continue;
		}
		*pp = d->snext;
		d->in_shaped = false;
		dest_wake(s, d, now_ms);
	}
}

/* A due unit that shaping holds back: in its destination's line until
 * the destination may take a job again (no state changes). */
static void
shaped_wait(struct sched *s, struct sunit *u, uint64_t until)
{
	struct sdest *d = u->dest;

	fifo_push(u);
	if (until > d->shaped_until)
		d->shaped_until = until;
	if (!d->in_shaped) {
		d->in_shaped = true;
		d->snext = s->shaped;
		s->shaped = d;
	}
}

struct sched_job *
sched_job_next(struct sched *s, uint64_t now_ms)
{
	uint64_t wait;

	shaped_wake(s, now_ms);
	while (s->inflight < s->cfg.max_jobs && s->hlen > 0) {
		struct sunit *u = s->heap[0];
		struct sdest *d = u->dest;

		if (u->due > now_ms)
			return NULL;
		heap_remove(s, u);
		if (d->dead_until > now_ms)
			return job_suspended(s, u, now_ms);
		if (dest_room(d) == 0) {
			/* due, but its destination is busy: wait in line */
			fifo_push(u);
			continue;
		}
		if (d->shaped_until > now_ms) {
			/* refused already: no need to ask again yet */
			fifo_push(u);
			continue;
		}
		if (s->cfg.admit != NULL &&
		    (wait = s->cfg.admit(
		         s->cfg.admit_arg, d->domain, now_ms)) != 0) {
			/* shaped: it goes when the limit allows */
			shaped_wait(s, u, now_ms + wait);
			continue;
		}
		return job_make(s, u, now_ms);
	}
	return NULL;
}

/* Retry delay after the n-th attempt (n >= 1), with +-10% jitter. */
static uint64_t
retry_delay(const struct sched *s, uint16_t attempts)
{
	size_t i = attempts ? (size_t)attempts - 1 : 0;
	uint64_t base, span;
	uint32_t r;

	if (s->cfg.nretry == 0)
		return 60000;
	if (i >= s->cfg.nretry)
		i = s->cfg.nretry - 1;
	base = s->cfg.retry[i];
	span = base / 5;
	if (span == 0)
		return base;
	r = s->cfg.rand ? s->cfg.rand(s->cfg.rand_arg) : (uint32_t)random();
	return base - span / 2 + (uint64_t)r % (span + 1);
}

static struct srcpt *
rcpt_find(struct smsg *m, uint32_t idx)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].idx == idx)
			return &m->rcpts[i];
	return NULL;
}

/* Decide one recipient's fate from its outcome. */
static void
rcpt_decide(const struct sched *s, const struct smsg *m,
    struct sched_job_rcpt *jr, struct srcpt *r, uint64_t now_ms)
{
	uint64_t deadline = m->received_ms + s->cfg.max_age;

	jr->attempts = r ? r->attempts + 1 : 1;
	switch (jr->outcome) {
	case SCHED_OUTCOME_OK:
		jr->state = SCHED_RCPT_DELIVERED;
		break;
	case SCHED_OUTCOME_PERMFAIL:
		jr->state = SCHED_RCPT_FAILED;
		break;
	case SCHED_OUTCOME_TEMPFAIL:
		if (now_ms >= deadline) {
			jr->state = SCHED_RCPT_EXPIRED;
			break;
		}
		jr->state = SCHED_RCPT_PENDING;
		jr->next_ms = now_ms + retry_delay(s, jr->attempts);
		/* the last attempt happens at max_age, not a retry later */
		if (jr->next_ms > deadline)
			jr->next_ms = deadline;
		break;
	}
}

/* The unit a job came from: the one of its message for its destination. */
static struct sunit *
job_unit(struct smsg *m, const struct sdest *d)
{
	if (m == NULL)
		return NULL;
	for (size_t k = 0; k < m->nunits; k++)
		if (m->units[k].dest == d)
			return &m->units[k];
	return NULL;
}

void
sched_job_decide(struct sched *s, struct sched_job *job, uint64_t now_ms)
{
	struct smsg *m = *msg_slot(s, job->id);
	struct smsg gone = {.received_ms = job->received_ms};
	struct sdest *d;

	MTA_ASSERT(!job->deciding);
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct sched_job_rcpt *jr = &job->rcpts[i];

		rcpt_decide(s, m ? m : &gone, jr,
		    m ? rcpt_find(m, jr->idx) : NULL, now_ms);
	}
	job->deciding = true;
	s->deciding++;
	if (!job->suspended && (d = dest_find(s, job->domain)) != NULL) {
		/* its connection slot becomes a commit slot */
		MTA_ASSERT(d->inflight > 0);
		d->inflight--;
		d->deciding++;
		/* after a connection-level failure the window is about to
		 * shrink: nothing new goes before sched_job_apply() */
		if (!job->dest_failed)
			dest_wake(s, d, now_ms);
	}
}

/* What the job says about its destination: a connection-level failure
 * shrinks the window to one and rests it; a success widens it again. */
static void
dest_learn(struct sched *s, struct sdest *d, const struct sched_job *job,
    uint64_t now_ms)
{
	uint64_t rest;

	if (job->suspended) {
		/* decided here: says nothing new about the host */
	} else if (job->dest_failed) {
		rest = retry_delay(s, 1);
		d->window = 1;
		d->dead_until = now_ms + (rest < REST_MAX ? rest : REST_MAX);
		str_copy(d->dead_reason, sizeof(d->dead_reason),
		    job->nrcpts ? job->rcpts[0].reply : "");
	} else {
		if (d->window < s->cfg.max_per_dest)
			d->window++;
		d->dead_until = 0;
	}
}

/* A job's slots are free: its destination's (the commit slot, or the
 * connection slot of a suspended job) and the global one. Units waiting
 * in line for the destination go next, as many as it now has room for. */
static void
job_release(
    struct sched *s, struct sched_job *job, struct sdest *d, uint64_t now_ms)
{
	MTA_ASSERT(job->deciding && s->inflight > 0 && s->deciding > 0);
	job->deciding = false;
	s->inflight--;
	s->deciding--;
	if (d == NULL)
		return;
	if (job->suspended) {
		MTA_ASSERT(d->inflight > 0);
		d->inflight--;
	} else {
		MTA_ASSERT(d->deciding > 0);
		d->deciding--;
	}
	dest_wake(s, d, now_ms);
}

/* The unit's job is over: free the message if it was forgotten or has
 * nothing pending and no other job is out, else place the unit again.
 * Returns true when the message left the schedule with nothing pending. */
static bool
unit_settle(struct sched *s, struct smsg *m, struct sunit *u)
{
	bool busy = false, done;

	if (u != NULL)
		u->inflight = false;
	if (m->forgotten || m->npending == 0) {
		done = m->npending == 0;
		for (size_t k = 0; k < m->nunits; k++)
			busy |= m->units[k].inflight;
		if (!busy) {
			msg_unlink(s, m);
			msg_free(s, m);
		}
		return done;
	}
	if (u != NULL)
		unit_place(s, u);
	return false;
}

/* The destination's running totals (metrics), once a result is on disk. */
static void
dest_count(struct sdest *d, const struct sched_job *job,
    const struct sched_job_rcpt *jr)
{
	switch (jr->state) {
	case SCHED_RCPT_DELIVERED:
		d->outcomes[0]++;
		break;
	case SCHED_RCPT_PENDING:
		d->outcomes[1]++;
		d->reasons[metrics_reason_of(
		    jr->dsn, jr->reply, job->suspended)]++;
		break;
	case SCHED_RCPT_FAILED:
	case SCHED_RCPT_EXPIRED:
		d->outcomes[2]++;
		break;
	}
}

bool
sched_job_apply(struct sched *s, struct sched_job *job, uint64_t now_ms)
{
	struct smsg *m = *msg_slot(s, job->id);
	struct sdest *d = dest_find(s, job->domain);
	struct sunit *u;

	if (d != NULL)
		dest_learn(s, d, job, now_ms);
	job_release(s, job, d, now_ms);
	if (m == NULL)
		return false;
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct sched_job_rcpt *jr = &job->rcpts[i];
		struct srcpt *r = rcpt_find(m, jr->idx);

		if (d != NULL)
			dest_count(d, job, jr);
		if (r == NULL)
			continue;
		r->attempts = jr->attempts;
		if (jr->state == SCHED_RCPT_PENDING) {
			r->next_ms = jr->next_ms;
		} else if (r->pending) {
			r->pending = false;
			m->npending--;
		}
	}
	u = job_unit(m, d);
	if (u != NULL)
		u->not_before = 0; /* the disk has fresh retry times */
	return unit_settle(s, m, u);
}

void
sched_job_revert(struct sched *s, struct sched_job *job, uint64_t now_ms)
{
	struct smsg *m = *msg_slot(s, job->id);
	struct sdest *d = dest_find(s, job->domain);
	struct sunit *u = job_unit(m, d);
	uint64_t rest = retry_delay(s, 1);

	job_release(s, job, d, now_ms);
	if (m == NULL)
		return;
	if (u != NULL)
		u->not_before = now_ms + (rest < REST_MAX ? rest : REST_MAX);
	(void)unit_settle(s, m, u);
}

void
sched_job_free(struct sched_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->nrcpts; i++) {
		free(job->rcpts[i].addr);
		free(job->rcpts[i].orcpt);
	}
	free(job->rcpts);
	free(job->from);
	free(job->envid);
	free(job->domain);
	free(job);
}

int64_t
sched_timeout(const struct sched *s, uint64_t now_ms)
{
	uint64_t next = s->hlen > 0 ? s->heap[0]->due : UINT64_MAX;

	if (s->inflight >= s->cfg.max_jobs)
		return -1;
	for (const struct sdest *d = s->shaped; d != NULL; d = d->snext)
		if (d->shaped_until < next)
			next = d->shaped_until;
	if (next == UINT64_MAX)
		return -1;
	return next <= now_ms ? 0 : (int64_t)(next - now_ms);
}

int
sched_msg_retry(struct sched *s, uint64_t id, uint64_t now_ms)
{
	struct smsg *m = *msg_slot(s, id);

	if (m == NULL || m->forgotten)
		return -ENOENT;
	if (m->held)
		return 0; /* not due while held, as on disk */
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].pending && m->rcpts[i].next_ms > now_ms)
			m->rcpts[i].next_ms = now_ms;
	for (size_t k = 0; k < m->nunits; k++) {
		/* an operator's retry is a probe: it ends the rest */
		m->units[k].dest->dead_until = 0;
		m->units[k].not_before = 0;
		unit_place(s, &m->units[k]);
	}
	return 0;
}

bool
sched_msg_busy(struct sched *s, uint64_t id)
{
	const struct smsg *m = *msg_slot(s, id);

	for (size_t k = 0; m != NULL && k < m->nunits; k++)
		if (m->units[k].inflight)
			return true;
	return false;
}

size_t
sched_msg_ids(const struct sched *s, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < s->mcap; i++)
		for (struct smsg *m = s->mtab[i]; m && n < max; m = m->hnext)
			if (!m->forgotten)
				out[n++] = m->id;
	return n;
}

int
sched_msg_hold(struct sched *s, uint64_t id, bool hold, uint64_t now_ms)
{
	struct smsg *m = *msg_slot(s, id);

	(void)now_ms;
	if (m == NULL || m->forgotten)
		return -ENOENT;
	m->held = hold;
	for (size_t k = 0; k < m->nunits; k++)
		unit_place(s, &m->units[k]);
	return 0;
}

int
sched_msg_forget(struct sched *s, uint64_t id)
{
	struct smsg *m = *msg_slot(s, id);

	if (m == NULL || m->forgotten)
		return -ENOENT;
	for (size_t k = 0; k < m->nunits; k++)
		if (m->units[k].inflight) {
			/* freed when the job comes back */
			m->forgotten = true;
			m->held = true;
			for (size_t j = 0; j < m->nunits; j++)
				unit_place(s, &m->units[j]);
			return 0;
		}
	msg_unlink(s, m);
	msg_free(s, m);
	return 0;
}

void
sched_stats_get(const struct sched *s, struct sched_stats *st)
{
	st->msgs = s->nmsgs;
	st->units = s->nunits;
	st->inflight = s->inflight;
	st->deciding = s->deciding;
}

void
sched_dest_each(struct sched *s, uint64_t now_ms, sched_dest_fn *fn, void *arg)
{
	for (size_t i = 0; i < s->dcap; i++)
		for (struct sdest *d = s->dtab[i]; d; d = d->hnext)
			d->queued = 0;
	for (size_t i = 0; i < s->mcap; i++)
		for (struct smsg *m = s->mtab[i]; m; m = m->hnext)
			for (size_t k = 0; k < m->nrcpts; k++)
				if (m->rcpts[k].pending && m->rcpts[k].unit)
					m->rcpts[k].unit->dest->queued++;
	for (size_t i = 0; i < s->dcap; i++)
		for (struct sdest *d = s->dtab[i]; d; d = d->hnext) {
			struct sched_dest_view v = {
			    .domain = d->domain,
			    .queued = d->queued,
			    .inflight = d->inflight,
			    .resting = d->dead_until > now_ms,
			    .outcomes = d->outcomes,
			    .reasons = d->reasons,
			};

			fn(arg, &v);
		}
}

/* A pending recipient's state for the metrics. */
static enum metrics_qstate
rcpt_qstate(const struct smsg *m, const struct srcpt *r)
{
	if (m->held)
		return METRICS_Q_HELD;
	if (r->unit != NULL && r->unit->inflight)
		return METRICS_Q_ACTIVE;
	return r->attempts > 0 ? METRICS_Q_DEFERRED : METRICS_Q_QUEUED;
}

void
sched_queue_view(const struct sched *s, struct sched_queue_view *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < s->mcap; i++)
		for (const struct smsg *m = s->mtab[i]; m; m = m->hnext) {
			enum metrics_qstate ms = METRICS_QSTATES;

			if (m->forgotten || m->npending == 0)
				continue;
			for (size_t k = 0; k < m->nrcpts; k++) {
				enum metrics_qstate q;

				if (!m->rcpts[k].pending)
					continue;
				q = rcpt_qstate(m, &m->rcpts[k]);
				out->rcpts[q]++;
				/* the enum's order is the message's priority */
				if (q < ms)
					ms = q;
			}
			if (ms < METRICS_QSTATES)
				out->msgs[ms]++;
			if (out->oldest_ms == 0 ||
			    m->received_ms < out->oldest_ms)
				out->oldest_ms = m->received_ms;
		}
}

int
sched_dest_resume(struct sched *s, const char *domain, uint64_t now_ms)
{
	struct sdest *d = dest_find(s, domain);

	if (d == NULL)
		return -ENOENT;
	d->dead_until = 0;
	/* its line (what the suspension held back) goes at once */
	dest_wake(s, d, now_ms);
	return 0;
}

void
sched_dest_get(const struct sched *s, const char *domain, unsigned *inflight,
    unsigned *window)
{
	const struct sdest *d = dest_find(s, domain);

	*inflight = d ? d->inflight + d->deciding : 0;
	*window = d ? d->window : s->cfg.max_per_dest;
}
