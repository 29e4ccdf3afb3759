/* SPDX-License-Identifier: ISC */
/*
 * receive_conn.c - the connections of one receive thread: struct conn
 * (an smtp_in session on a stream), its pending requests, and the table
 * that maps request ids back to connections. Runs on that thread.
 *
 * A connection is a stream (net/stream.h: socket, TLS, flow control,
 * timers, closing) with an smtp_in session on top. Input goes to
 * smtp_in_feed(), which copies it and appends the replies of a whole
 * pipelined batch to the stream's output, sent with one send. When the
 * session stops taking input (an action is outstanding), the stream is
 * paused: that is the backpressure.
 *
 * Requests: a commit goes to the queue, a password check to the auth
 * pool and the signing of a message to the DKIM pool (or inline when
 * there is none; its commit follows), each carrying this thread's chan as reply address and (slot,
 * generation) of the connection as reqid, as OpenSMTPD's smtp_session.c
 * correlates its lookups. Connections live in a slot table and go back
 * to a free list when closed; each reuse bumps the slot's generation, so
 * an answer for a connection gone meanwhile is recognised, freed and
 * counted. While a request is out the session is not waiting on the
 * client: the stream's idle and session timers are held. A failed
 * password check is answered only after AUTH_FAIL_DELAY_MS (the stream's
 * timer, never a sleeping worker), which slows guessing.
 *
 * Time: the stream's idle and session timers bound the waits for a
 * command and the session. Its one user timer serves, one at a time, the
 * greeting pause (the 220 waits greet_ms after the accept or the implicit
 * TLS handshake; input before it is an early talker's; with no pause,
 * input already there at the accept, or after the handshake until the
 * next loop turn, is), the request deadlines (a command line whole within
 * command_ms of its first byte; DATA at data_rate bytes/s on average from
 * the 354 after command_ms of grace; a TLS handshake whole within
 * command_ms: Postfix's smtpd_per_request_deadline and
 * smtpd_min_data_rate), and the delay of a failed AUTH. A trickling
 * client no longer resets the clock with each byte.
 *
 * TLS: implicit on listen_tls listeners (the greeting pause starts when
 * the handshake is done), or STARTTLS: smtp_in drops what
 * followed the command, the stream sends the 220 in plaintext, drops any
 * input received until then and starts the handshake (CVE-2011-0411).
 */
#include "receive/receive_conn.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "auth/auth.h"
#include "dkim/dkim.h"
#include "limits/limits.h"
#include "limits/limits_redis.h"
#include "net/stream.h"
#include "net/tls.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"

#define AUTH_FAIL_DELAY_MS 1000 /* before a failed AUTH is answered */

/* The request a connection has out, at most one at a time. */
enum pending {
	PEND_NONE,
	PEND_COMMIT,     /* a struct queue_submit with the queue */
	PEND_AUTH,       /* a struct auth_req with the auth pool */
	PEND_AUTH_DELAY, /* failed check: the answer waits for the timer */
	PEND_SIGN,       /* a struct dkim_job with the signing pool */
	PEND_LIMIT,      /* a check with the shared limits (Redis) */
};

/* [limit] max with the shared store: where this connection's leases are. */
enum lease {
	LEASE_NONE,   /* none held (no such limit, or the local socket) */
	LEASE_ASKING, /* asked of Redis; the greeting waits for the answer */
	LEASE_REDIS,  /* held in Redis as lease_id */
	LEASE_LOCAL,  /* Redis was away: the local share, in the store */
};
#define LEASE_COOKIE (1ULL << 63) /* a lease answer, not a MAIL's check */

struct conn {
	struct stream st; /* first: the stream's storage */
	struct rconns *cs;
	struct conn *next_free;
	uint32_t slot;
	uint32_t gen; /* bumped at each reuse of the slot */
	bool live;    /* between open and closed */
	bool implicit;
	bool lease_local; /* the local socket: no address, no lease */
	bool held;        /* the stream is paused */

	bool greet_due;            /* the user timer is the greeting pause */
	bool dl_on;                /* the user timer is a request deadline */
	bool dl_tls;               /* ... for a TLS handshake */
	enum smtp_in_wait dl_wait; /* what it was armed for */
	uint64_t dl_seq;           /* and that request's smtp_in seq */
	uint64_t dl_start;         /* DATA: when the 354 went, mono ms */
	uint64_t command_ms, greet_ms;
	unsigned data_rate; /* bytes/s; 0: none */

	enum pending pend;
	enum lease lease;
	bool greet_held; /* the greeting is due, but the lease is not in */
	uint64_t lease_ttl_ms;
	char lease_id[LIMITS_REDIS_ID_MAX];
	const char *reason; /* why it closes, when we decided */
	struct smtp_in *s;
	const struct smtp_in_cfg *scfg;
	struct tls_ctx *tls;
	void *ref; /* settings reference, back to env->gone */
	uint8_t ipkey[RCONN_IPKEY];
	unsigned listener; /* metrics label index */
	char addr[64];     /* numeric client address */
};

struct rconns {
	struct rconn_env *env;
	struct conn **slots; /* index = slot */
	uint32_t nslots, capslots;
	struct conn *free; /* closed, for reuse */
	size_t live;
	size_t pending; /* answers owed to env->chan */
	uint64_t stale;
	/* settings references of closed connections whose signing job is
	 * still out, by the job's reqid (env->unref) */
	struct held {
		uint64_t reqid;
		void *ref;
	} * held;
	size_t nheld, capheld;
};

static const struct stream_cbs conn_cbs;

struct rconns *
rconns_new(struct rconn_env *env)
{
	struct rconns *cs = xcalloc(1, sizeof(*cs));

	cs->env = env;
	return cs;
}

void
rconns_free(struct rconns *cs)
{
	if (cs == NULL)
		return;
	for (uint32_t i = 0; i < cs->nslots; i++)
		free(cs->slots[i]);
	free(cs->slots);
	for (size_t i = 0; i < cs->nheld; i++) /* jobs dropped unanswered */
		cs->env->unref(cs->env->arg, cs->held[i].ref);
	free(cs->held);
	free(cs);
}

size_t
rconns_live(const struct rconns *cs)
{
	return cs->live;
}

size_t
rconns_pending(const struct rconns *cs)
{
	return cs->pending;
}

uint64_t
rconns_stale(const struct rconns *cs)
{
	return cs->stale;
}

/* ---- the table ---- */

static struct conn *
conn_alloc(struct rconns *cs)
{
	struct conn *c = cs->free;

	if (c != NULL) {
		cs->free = c->next_free;
		c->next_free = NULL;
		return c;
	}
	if (cs->nslots == cs->capslots) {
		cs->capslots = cs->capslots ? cs->capslots * 2 : 64;
		cs->slots =
		    xreallocarray(cs->slots, cs->capslots, sizeof(*cs->slots));
	}
	c = xcalloc(1, sizeof(*c));
	c->cs = cs;
	c->slot = cs->nslots;
	cs->slots[cs->nslots++] = c;
	return c;
}

/* The reqid of a request on behalf of c: (slot, generation). */
static uint64_t
conn_reqid(const struct conn *c)
{
	return (uint64_t)c->slot << 32 | c->gen;
}

/* The connection a request was made for, if it is still there and
 * waiting for that kind of answer. */
static struct conn *
conn_lookup(struct rconns *cs, uint64_t reqid, enum pending kind)
{
	uint32_t slot = (uint32_t)(reqid >> 32), gen = (uint32_t)reqid;
	struct conn *c;

	if (slot >= cs->nslots)
		return NULL;
	c = cs->slots[slot];
	if (!c->live || c->gen != gen || c->pend != kind ||
	    stream_closing(&c->st))
		return NULL;
	return c;
}

/* A closed connection's settings reference, kept for its signing job
 * (struct rconns.held). */
static void
held_add(struct rconns *cs, uint64_t reqid, void *ref)
{
	if (cs->nheld == cs->capheld) {
		cs->capheld = cs->capheld ? cs->capheld * 2 : 4;
		cs->held =
		    xreallocarray(cs->held, cs->capheld, sizeof(*cs->held));
	}
	cs->held[cs->nheld++] = (struct held){reqid, ref};
}

/* The job of reqid is back and nobody waits for it: let its reference
 * go if one was kept, and if its connection is still closing, nothing is
 * owed it any more (conn_free must not keep a reference for it). */
static void
held_drop(struct rconns *cs, uint64_t reqid)
{
	uint32_t slot = (uint32_t)(reqid >> 32), gen = (uint32_t)reqid;
	struct conn *c = slot < cs->nslots ? cs->slots[slot] : NULL;

	if (c != NULL && c->live && c->gen == gen && c->pend == PEND_SIGN)
		c->pend = PEND_NONE;
	for (size_t i = 0; i < cs->nheld; i++)
		if (cs->held[i].reqid == reqid) {
			cs->env->unref(cs->env->arg, cs->held[i].ref);
			cs->held[i] = cs->held[--cs->nheld];
			return;
		}
}

/* ---- acting on the session ---- */

static void conn_act(struct conn *c, enum smtp_in_action a);

/* Hand the session's credentials to the auth pool. */
static void
conn_auth(struct conn *c)
{
	struct rconns *cs = c->cs;
	struct auth_req *req;
	const char *user, *pass;

	MTA_ASSERT(cs->env->auth != NULL);
	req = xcalloc(1, sizeof(*req));
	smtp_in_auth_peek(c->s, &user, &pass);
	/* smtp_in bounds both below the request's fields; should that ever
	 * change, a cut name can only fail the check. */
	if (!str_copy(req->user, sizeof(req->user), user) ||
	    !str_copy(req->pass, sizeof(req->pass), pass))
		req->user[0] = '\0';
	req->reply = cs->env->chan;
	req->msg.reqid = conn_reqid(c);
	c->pend = PEND_AUTH;
	cs->pending++;
	stream_hold_timers(&c->st, true);
	auth_pool_submit(cs->env->auth, req);
}

static void
conn_commit(struct conn *c)
{
	struct rconns *cs = c->cs;
	struct queue_submit *req = smtp_in_commit_take(c->s);

	MTA_ASSERT(req != NULL);
	req->reply = cs->env->chan;
	req->msg.reqid = conn_reqid(c);
	c->pend = PEND_COMMIT;
	cs->pending++;
	stream_hold_timers(&c->st, true);
	queue_submit(cs->env->q, req);
}

/* DKIM: the message is signed off the loop, then committed. */
static void
conn_sign(struct conn *c)
{
	struct rconns *cs = c->cs;
	struct dkim_job *j = smtp_in_sign_take(c->s);
	enum smtp_in_action a;

	MTA_ASSERT(j != NULL);
	if (cs->env->dkim == NULL) { /* no pool: here and now */
		dkim_job_run(j);
		a = smtp_in_sign_done(c->s, j, stream_outbuf(&c->st));
		MTA_ASSERT(a == SMTP_IN_COMMIT);
		conn_commit(c);
		return;
	}
	j->reply = cs->env->chan;
	j->msg.reqid = conn_reqid(c);
	c->pend = PEND_SIGN;
	cs->pending++;
	stream_hold_timers(&c->st, true);
	dkim_pool_submit(cs->env->dkim, j);
}

/* The request is answered: the session waits on the client again. */
static void
conn_answered(struct conn *c)
{
	c->pend = PEND_NONE;
	stream_hold_timers(&c->st, false);
}

static void
conn_starttls(struct conn *c)
{
	struct stream_tls t = {.ctx = c->tls};

	/* smtp_in dropped what followed the command and queued the 220 */
	MTA_ASSERT(c->tls != NULL && !stream_tls_on(&c->st));
	stream_start_tls(&c->st, &t);
}

/* Take input while the session wants it. */
static void
conn_flow(struct conn *c)
{
	bool want = smtp_in_want_read(c->s);

	if (want && c->held) {
		c->held = false;
		stream_resume(&c->st);
	} else if (!want && !c->held) {
		c->held = true;
		stream_pause(&c->st);
	}
}

/* Arm, move or drop the request deadline for what the session now
 * waits for (see the file comment). */
static void
conn_deadline(struct conn *c)
{
	struct smtp_in_progress p;
	uint64_t now = clock_mono_ms(), dl;
	bool fresh;

	if (c->greet_due || c->pend == PEND_AUTH_DELAY)
		return; /* the timer is theirs */
	/* a handshake is a request too: trickled, it must not hold the slot
	 * (Postfix's deadline covers TLS records as well) */
	if (stream_tls_on(&c->st) && !stream_tls_ready(&c->st)) {
		if (!c->dl_tls) {
			c->dl_tls = c->dl_on = true;
			stream_timer(&c->st, c->command_ms);
		}
		return;
	}
	c->dl_tls = false;
	smtp_in_progress(c->s, &p);
	fresh = p.wait != c->dl_wait || p.seq != c->dl_seq;
	c->dl_wait = p.wait;
	c->dl_seq = p.seq;
	if (p.wait == SMTP_IN_WAIT_LINE) {
		if (fresh) { /* its first byte came in this input */
			c->dl_on = true;
			stream_timer(&c->st, c->command_ms);
		}
		return;
	}
	if (p.wait == SMTP_IN_WAIT_DATA && c->data_rate > 0) {
		if (fresh)
			c->dl_start = now;
		dl =
		    c->dl_start + c->command_ms + p.bytes * 1000 / c->data_rate;
		c->dl_on = true;
		stream_timer(&c->st, dl > now ? dl - now : 1);
		return;
	}
	if (c->dl_on) {
		c->dl_on = false;
		stream_timer(&c->st, 0);
	}
}

/* The greeting waits greet_ms, or the loop's next turn. */
static void
conn_greet_later(struct conn *c)
{
	c->greet_due = true;
	c->dl_on = c->dl_tls = false; /* the timer is the pause's now */
	if (c->greet_ms > 0)
		stream_timer(&c->st, c->greet_ms);
	else
		stream_timer_next(&c->st);
}

/*
 * SMTP_IN_LIMIT: ask Redis about the MAIL's message limits. true: the
 * answer comes in rconns_limit_done. false: Redis is not usable, the
 * local share answered, and *a is what the session does next.
 */
static bool
conn_limit(struct conn *c, enum smtp_in_action *a)
{
	const struct rconn_env *env = c->cs->env;
	struct limits_step steps[LIMITS_STEPS_MAX];
	struct limits_subject subj;
	const char *name = NULL;
	size_t ns;
	bool ok;

	smtp_in_limit_peek(c->s, &subj);
	ns = limits_steps(c->scfg->limits, CONFIG_LIMIT_MESSAGES, &subj, steps,
	    LIMITS_STEPS_MAX);
	if (ns == 0) {
		*a =
		    smtp_in_limit_done(c->s, true, NULL, stream_outbuf(&c->st));
		return false;
	}
	if (env->redis != NULL &&
	    limits_redis_check(env->redis, steps, ns, 1, conn_reqid(c))) {
		c->pend = PEND_LIMIT;
		stream_hold_timers(&c->st, true);
		return true;
	}
	ok = limits_take_share(c->scfg->limits, CONFIG_LIMIT_MESSAGES, &subj, 1,
	    limits_now(), env->nodes, &name);
	*a = smtp_in_limit_done(c->s, ok, name, stream_outbuf(&c->st));
	return false;
}

/* Do what the session asked, send its replies, read on if it wants. */
static void
conn_act(struct conn *c, enum smtp_in_action a)
{
	const struct rconn_env *env = c->cs->env;

	while (a == SMTP_IN_LIMIT && !conn_limit(c, &a))
		;
	switch (a) {
	case SMTP_IN_READ:
	case SMTP_IN_CLOSE:
	case SMTP_IN_LIMIT: /* waiting for Redis */
		break;
	case SMTP_IN_COMMIT:
		conn_commit(c);
		break;
	case SMTP_IN_STARTTLS:
		conn_starttls(c);
		break;
	case SMTP_IN_AUTH:
		conn_auth(c);
		break;
	case SMTP_IN_SIGN:
		conn_sign(c);
		break;
	}
	if (a == SMTP_IN_READ && env->shutting && c->pend == PEND_NONE &&
	    (env->deadline || !smtp_in_busy(c->s))) {
		a = smtp_in_shutdown(c->s, stream_outbuf(&c->st));
		c->reason = "shutdown";
	}
	if (a == SMTP_IN_CLOSE) {
		stream_close(&c->st, c->reason ? c->reason : "closed",
		    STREAM_CLOSE_ORDERLY);
		return;
	}
	stream_flush(&c->st);
	conn_flow(c);
	conn_deadline(c);
}

/* ---- stream callbacks ---- */

static size_t
conn_input(struct stream *st, void *user, const uint8_t *p, size_t n)
{
	struct conn *c = user;

	(void)st;
	metrics_add(METRICS_RECEIVED_BYTES, n);
	/* smtp_in copies what it cannot use now */
	conn_act(c, smtp_in_feed(c->s, p, n, stream_outbuf(&c->st)));
	return n;
}

static void
conn_tls_done(struct stream *st, void *user, const char *err)
{
	struct conn *c = user;
	struct tls_info ti;
	char why[TLS_ERR_MAX + 16];

	if (err != NULL) {
		log_event("event=tls_failed client=%s reason=%s", c->addr,
		    log_quote(why, sizeof(why), err, strlen(err)));
		c->reason = "tls";
		/* the stream drops it: nothing can be encrypted any more */
		if (!c->implicit && !stream_tls_ready(st))
			(void)smtp_in_tls_done(c->s, false, stream_outbuf(st));
		return;
	}
	stream_tls_info(st, &ti);
	metrics_tls(false, ti.version, false); /* no client certificates */
	if (log_debug_enabled()) {
		log_event("event=tls client=%s mode=%s version=%s cipher=%s "
		          "bits=%d reused=%s",
		    c->addr, c->implicit ? "implicit" : "starttls", ti.version,
		    ti.cipher, ti.bits, ti.reused ? "yes" : "no");
	}
	/* implicit: the greeting pause starts now */
	if (c->implicit) {
		if (c->scfg->greet_wait)
			conn_greet_later(c);
	} else
		conn_act(c, smtp_in_tls_done(c->s, true, stream_outbuf(st)));
}

static void
conn_timeout(struct stream *st, void *user, enum stream_timer which)
{
	struct conn *c = user;

	if (which == STREAM_TMO_TIMER && c->greet_due) {
		c->greet_due = false;
		if (c->lease == LEASE_ASKING) { /* greet once it is in */
			c->greet_held = true;
			return;
		}
		conn_act(c, smtp_in_greet(c->s, stream_outbuf(st)));
		return;
	}
	if (which == STREAM_TMO_TIMER && c->pend == PEND_AUTH_DELAY) {
		/* a failed AUTH has waited its delay: answer it now */
		conn_answered(c);
		conn_act(c, smtp_in_auth_done(c->s, false, stream_outbuf(st)));
		return;
	}
	if (which == STREAM_TMO_TIMER) {
		MTA_ASSERT(c->dl_on);
		c->dl_on = false;
		c->reason = "deadline";
		conn_act(c, smtp_in_deadline(c->s, stream_outbuf(st)));
		return;
	}
	c->reason = "timeout";
	conn_act(c, smtp_in_timeout(c->s, stream_outbuf(st)));
}

/* The client's [limit] max steps (its address; none for the local
 * socket, which has no address). */
static size_t
conn_lease_steps(const struct conn *c, struct limits_step *steps)
{
	struct limits_subject subj = {.client = c->addr};

	if (c->lease_local)
		return 0;
	return limits_lease_steps(
	    c->scfg->limits, &subj, steps, LIMITS_STEPS_MAX);
}

/* Over a connection cap: 421, logged, closed. */
static void
conn_lease_refuse(struct conn *c, const char *name)
{
	log_event("event=rejected client=%s reason=connection_limit limit=%s",
	    c->addr, name);
	if (buf_appendf(stream_outbuf(&c->st),
	        "421 4.7.0 %s Too many connections\r\n", c->scfg->hostname) < 0)
		c->reason = "limit"; /* no room: closed all the same */
	c->reason = "limit";
	stream_close(&c->st, c->reason, STREAM_CLOSE_ORDERLY);
}

/* Redis is away: the local share of every cap. false: refused. */
static bool
conn_lease_local(struct conn *c)
{
	struct limits_subject subj = {.client = c->addr};
	const char *name = "?";

	if (limits_lease_share(c->scfg->limits, &subj, limits_now(),
	        c->lease_ttl_ms * 1000, c->cs->env->nodes, &name)) {
		c->lease = LEASE_LOCAL;
		return true;
	}
	c->lease = LEASE_NONE;
	conn_lease_refuse(c, name);
	return false;
}

/* At open, with the shared store: ask for the leases. false: refused at
 * once (the local share), and the connection is closing. */
static bool
conn_lease_ask(struct conn *c)
{
	struct limits_redis *lr = c->cs->env->redis;
	struct limits_step steps[LIMITS_STEPS_MAX];
	size_t ns;

	c->lease = LEASE_NONE;
	c->greet_held = false;
	if (lr == NULL || (ns = conn_lease_steps(c, steps)) == 0)
		return true;
	if (limits_redis_lease(lr, steps, ns, c->lease_ttl_ms, c->lease_id,
	        conn_reqid(c) | LEASE_COOKIE)) {
		c->lease = LEASE_ASKING;
		return true;
	}
	return conn_lease_local(c);
}

/* The connection ends: its leases go back. */
static void
conn_lease_drop(struct conn *c)
{
	struct limits_step steps[LIMITS_STEPS_MAX];
	struct limits_subject subj = {.client = c->addr};
	size_t ns;

	if (c->lease == LEASE_REDIS && (ns = conn_lease_steps(c, steps)) > 0)
		limits_redis_unlease(c->cs->env->redis, steps, ns, c->lease_id);
	else if (c->lease == LEASE_LOCAL)
		limits_unlease(c->scfg->limits, &subj, limits_now());
	c->lease = LEASE_NONE;
}

static void
conn_closed(struct stream *st, void *user, const char *reason)
{
	struct conn *c = user;
	struct rconns *cs = c->cs;

	(void)st;
	if (c->reason == NULL)
		c->reason = reason;
	if (log_debug_enabled()) {
		log_event(
		    "event=disconnect client=%s reason=%s", c->addr, c->reason);
		/* out before the fd closes shows the peer the end (log.h) */
		log_batch_flush();
	}
	conn_lease_drop(c);
	smtp_in_free(c->s);
	c->s = NULL;
	if (c->pend == PEND_AUTH_DELAY) /* its answer came; none is owed */
		c->pend = PEND_NONE;
	if (c->pend == PEND_SIGN) { /* its keys must outlive the job */
		held_add(cs, conn_reqid(c), c->ref);
		c->ref = NULL;
	}
	c->live = false;
	c->gen++;
	c->next_free = cs->free;
	cs->free = c;
	cs->live--;
	metrics_conn_close(c->listener);
	cs->env->gone(cs->env->arg, c->ipkey, c->ref);
}

static const struct stream_cbs conn_cbs = {
    .input = conn_input,
    .tls_done = conn_tls_done,
    .timeout = conn_timeout,
    .closed = conn_closed,
};

/* ---- from receive.c ---- */

void
rconn_open(struct rconns *cs, int fd, const struct rconn_start *st)
{
	struct conn *c = conn_alloc(cs);
	struct stream_tls t = {.ctx = st->tls};
	bool greet = false;

	c->live = true;
	c->implicit = st->implicit;
	c->held = false;
	c->greet_due = false;
	c->dl_on = false;
	c->dl_tls = false;
	c->dl_wait = SMTP_IN_WAIT_NONE;
	c->dl_seq = 0;
	c->command_ms = st->command_ms;
	c->greet_ms = st->greet_ms;
	c->data_rate = st->data_rate;
	c->pend = PEND_NONE;
	c->reason = NULL;
	c->scfg = st->scfg;
	c->tls = st->tls;
	c->ref = st->ref;
	c->listener = st->listener;
	c->lease_local = st->peer->local;
	c->lease_ttl_ms = st->session_ms + 60000; /* no session outlives it */
	memcpy(c->ipkey, st->ipkey, RCONN_IPKEY);
	str_copy(c->addr, sizeof(c->addr), st->peer->addr);
	cs->live++;
	if (log_debug_enabled())
		log_event("event=connect client=%s", c->addr);
	stream_open(&c->st, cs->env->l, fd, &conn_cbs, c);
	/* No pause: greet now unless input is already there, which is an
	 * early talker's (Exim's check at the greeting); it is offered
	 * before the next turn's greeting. The timer goes before the longer
	 * ones: the lazy timer is armed for the nearest, then moves on. */
	if (!conn_lease_ask(c))
		return; /* closing: no session */
	if (c->scfg->greet_wait && !st->implicit) {
		if (c->greet_ms == 0 && !stream_input_waiting(&c->st) &&
		    c->lease != LEASE_ASKING)
			greet = true;
		else if (c->greet_ms == 0 && c->lease == LEASE_ASKING)
			c->greet_held = true;
		else
			conn_greet_later(c);
	}
	stream_set_timeouts(&c->st, st->idle_ms, 0);
	stream_set_deadline(&c->st, st->session_ms);
	/* Replies go out as the session makes them: a pipelined BDAT gets
	 * its MAIL/RCPT replies, then the 250 after the commit; under Nagle
	 * that second write waits on the client's delayed ACK (40 ms). */
	(void)stream_set_nodelay(&c->st);
	/* RFC 8314: TLS before the greeting, whose pause starts when the
	 * handshake is done (conn_tls_done) */
	if (st->implicit)
		stream_start_tls(&c->st, &t);
	c->s = smtp_in_new(c->scfg, st->peer, stream_outbuf(&c->st));
	conn_act(c,
	    greet ? smtp_in_greet(c->s, stream_outbuf(&c->st)) : SMTP_IN_READ);
}

void
rconns_commit_done(struct rconns *cs, struct queue_submit *req)
{
	struct conn *c = conn_lookup(cs, req->msg.reqid, PEND_COMMIT);

	cs->pending--;
	if (c == NULL) {
		cs->stale++;
		queue_submit_free(req);
		return;
	}
	conn_answered(c);
	conn_act(c, smtp_in_commit_done(c->s, req, stream_outbuf(&c->st)));
}

void
rconns_sign_done(struct rconns *cs, struct dkim_job *j)
{
	struct conn *c = conn_lookup(cs, j->msg.reqid, PEND_SIGN);

	cs->pending--;
	if (c == NULL) {
		cs->stale++;
		held_drop(cs, j->msg.reqid);
		dkim_job_free(j);
		return;
	}
	conn_answered(c);
	conn_act(c, smtp_in_sign_done(c->s, j, stream_outbuf(&c->st)));
}

void
rconns_auth_done(struct rconns *cs, struct auth_req *req)
{
	struct conn *c = conn_lookup(cs, req->msg.reqid, PEND_AUTH);
	bool ok = req->ok;

	auth_req_free(req);
	cs->pending--;
	if (c == NULL) {
		cs->stale++;
		return;
	}
	if (!ok) {
		/* still not waiting on the client until the delay is over */
		c->pend = PEND_AUTH_DELAY;
		stream_timer(&c->st, AUTH_FAIL_DELAY_MS);
		return;
	}
	conn_answered(c);
	conn_act(c, smtp_in_auth_done(c->s, true, stream_outbuf(&c->st)));
}

/* The answer to a connection's lease request. false: nobody wants it. */
static bool
rconns_lease_done(struct rconns *cs, uint64_t reqid, int res)
{
	uint32_t slot = (uint32_t)(reqid >> 32), gen = (uint32_t)reqid;
	struct limits_step steps[LIMITS_STEPS_MAX];
	struct conn *c = slot < cs->nslots ? cs->slots[slot] : NULL;
	size_t ns;

	if (c == NULL || !c->live || c->gen != gen ||
	    c->lease != LEASE_ASKING || stream_closing(&c->st))
		return false;
	if (res == 0) {
		c->lease = LEASE_REDIS;
	} else if (res == LIMITS_REDIS_FALLBACK) {
		if (!conn_lease_local(c))
			return true;
	} else {
		c->lease = LEASE_NONE;
		ns = conn_lease_steps(c, steps);
		conn_lease_refuse(
		    c, (size_t)res <= ns ? steps[res - 1].name : "?");
		return true;
	}
	if (c->greet_held) {
		c->greet_held = false;
		conn_act(c, smtp_in_greet(c->s, stream_outbuf(&c->st)));
	}
	return true;
}

bool
rconns_redis_answer(struct rconns *cs, uint64_t cookie, int res)
{
	if (cookie & LEASE_COOKIE)
		return rconns_lease_done(cs, cookie & ~LEASE_COOKIE, res);
	rconns_limit_done(cs, cookie, res);
	return true;
}

void
rconns_limit_done(struct rconns *cs, uint64_t reqid, int res)
{
	struct conn *c = conn_lookup(cs, reqid, PEND_LIMIT);
	struct limits_step steps[LIMITS_STEPS_MAX];
	struct limits_subject subj;
	const char *name = NULL;
	bool ok = res == 0;
	size_t ns;

	if (c == NULL)
		return;
	conn_answered(c);
	smtp_in_limit_peek(c->s, &subj);
	if (res == LIMITS_REDIS_FALLBACK) {
		ok = limits_take_share(c->scfg->limits, CONFIG_LIMIT_MESSAGES,
		    &subj, 1, limits_now(), cs->env->nodes, &name);
	} else if (res > 0) {
		ns = limits_steps(c->scfg->limits, CONFIG_LIMIT_MESSAGES, &subj,
		    steps, LIMITS_STEPS_MAX);
		name = (size_t)res <= ns ? steps[res - 1].name : "?";
	}
	conn_act(c, smtp_in_limit_done(c->s, ok, name, stream_outbuf(&c->st)));
}

void
rconns_shutdown(struct rconns *cs)
{
	const struct rconn_env *env = cs->env;

	for (uint32_t i = 0; i < cs->nslots; i++) {
		struct conn *c = cs->slots[i];

		if (!c->live || stream_closing(&c->st) || c->pend != PEND_NONE)
			continue;
		if (env->deadline || !smtp_in_busy(c->s)) {
			c->reason = "shutdown";
			conn_act(
			    c, smtp_in_shutdown(c->s, stream_outbuf(&c->st)));
		}
	}
}
