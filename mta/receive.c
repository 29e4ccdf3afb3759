/* SPDX-License-Identifier: ISC */
/*
 * receive.c - the receive threads: accept, read, drive smtp_in, send,
 * hand finished messages to the queue.
 *
 * Threads: receive_new/start/shutdown/done/free run on the main thread;
 * everything else runs on one receive thread and touches only that
 * thread's objects. Shared between threads: struct receive's atomics and
 * the per-address table (iptab, under its own mutex).
 *
 * A connection (struct conn) has three ops on the thread's loop: rd
 * (single-shot recv, re-armed only while the session wants input and the
 * unsent output is small: that is the backpressure), wr (one send of all
 * the replies built so far; replies that arrive meanwhile wait in `out`
 * and go with the next send), tmo (one lazy timer: activity only moves
 * the deadline; when the timer fires early it re-arms for the rest).
 * Closing: stop reading, let the last replies go (bounded by a linger
 * timer), cancel what is left, and free the connection only once all
 * three ops have delivered their final callback.
 *
 * Connections live in a per-thread slot table and go back to a free list
 * on close; each reuse bumps the slot's generation. A commit request
 * carries (slot, generation) as reqid, so an answer for a connection that
 * has gone meanwhile is recognised, freed and counted.
 *
 * Transport: conn_input() and conn_flush() are the only places that know
 * the bytes on the socket are the bytes smtp_in sees. A TLS layer goes
 * there (XPORT_TLS; mta/tls.h works over memory buffers); until then
 * STARTTLS and AUTH cannot be offered (tls_available = false) and are
 * treated as CLOSE if they ever show up.
 */
#include "receive.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "queue/queue.h"
#include "smtp_in.h"
#include "uring.h"

#define OUT_MAX      (256 * 1024) /* bytes of replies waiting, hard cap */
#define OUT_HIWAT    (16 * 1024)  /* stop reading above this much unsent */
#define OUT_KEEP     4096         /* shrink send buffers bigger than this */
#define LINGER_MS    5000         /* last replies after close, at most */
#define ACCEPT_RETRY_MS 100       /* after EMFILE and friends */
#define IPTAB_BUCKETS 4096

enum xport {
	XPORT_PLAIN, /* bytes on the socket are the SMTP stream */
	/* XPORT_TLS: tls_conn between socket and smtp_in (later) */
};

struct rthread;

struct conn {
	struct rthread *t;
	struct conn *next_free;
	uint32_t slot;
	uint32_t gen;          /* bumped at each reuse of the slot */
	int fd;
	enum xport xport;
	bool live;             /* between accept and free */
	bool closing;          /* no more input; finishing the last send */
	bool discard;          /* closing on error: drop unsent replies */
	bool lingering;        /* tmo is the linger timer */
	bool committing;       /* a commit request is with the queue */
	const char *reason;    /* why it closed, for the log */
	struct smtp_in *s;
	struct uring_op rd, wr, tmo;
	struct buf out;        /* replies not yet handed to send */
	struct buf wbuf;       /* the replies being sent (wr busy) */
	uint64_t idle_dl;      /* ms, monotonic: next idle deadline */
	uint64_t sess_dl;      /* ms, monotonic: whole-session deadline */
	uint8_t ipkey[17];     /* per-address table key */
	char addr[64];         /* numeric client address */
};

struct listener {
	struct rthread *t;
	int fd;
	bool open;
	struct uring_op acc;   /* multishot accept */
	struct uring_op retry; /* timer before re-arming after an error */
	const char *text;      /* borrowed from the config */
};

struct rthread {
	struct receive *r;
	unsigned idx;
	pthread_t th;
	bool started;          /* pthread_create succeeded */
	struct uring_loop *l;
	struct chan *chan;     /* queue answers and control messages */
	struct uring_op chan_rd;
	uint64_t chan_val;
	struct listener *ls;
	size_t nls, nls_open;
	struct conn **slots;   /* index = slot */
	uint32_t nslots, capslots;
	struct conn *free;     /* free list of closed conns */
	size_t nconns;         /* live */
	size_t commits;        /* requests with the queue */
	uint64_t stale;        /* answers for connections that had gone */
	bool shutting;         /* no accepts; sessions closed when idle */
	bool deadline;         /* grace over: close the rest when possible */
	bool finishing;        /* loop is being wound down */
	struct uring_op sdt;   /* shutdown grace timer */
	int start_res;         /* 0 or -errno, set before start_sem post */
	char start_err[256];
};

/* Per client address counts, shared by every receive thread. */
struct ipent {
	struct ipent *next;    /* iptab.lock */
	uint8_t key[17];       /* family byte + address; immutable */
	unsigned count;        /* iptab.lock: live connections */
};

struct iptab {
	pthread_mutex_t lock;  /* protects every bucket and entry below */
	struct ipent *b[IPTAB_BUCKETS];
};

struct receive {
	const struct config *cfg;
	struct queue *q;
	struct smtp_in_cfg scfg;
	struct rthread *th;
	unsigned nth;
	sem_t start_sem;
	atomic_uint nconns;       /* live connections, all threads */
	atomic_uint_fast64_t inflight; /* body bytes reserved */
	atomic_uint running;      /* threads not yet finished */
	struct iptab ip;
};

static void conn_act(struct conn *c, enum smtp_in_action a);
static void conn_begin_close(struct conn *c, const char *reason,
    bool discard);
static void thread_check_done(struct rthread *t);

/* ---- per-address table ---- */

static void
ip_key(const struct sockaddr_storage *ss, uint8_t key[17])
{
	memset(key, 0, 17);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		key[0] = 4;
		memcpy(key + 1, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, &sin6->sin6_addr, 16);
		}
	}
}

static size_t
ip_hash(const uint8_t key[17])
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % IPTAB_BUCKETS;
}

/* Count one more connection from key; false (nothing counted) when that
 * would exceed max. */
static bool
ip_acquire(struct iptab *tab, const uint8_t key[17], unsigned max)
{
	size_t h = ip_hash(key);
	struct ipent *e;
	bool ok = true;

	pthread_mutex_lock(&tab->lock);
	for (e = tab->b[h]; e; e = e->next)
		if (memcmp(e->key, key, 17) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, 17);
		e->next = tab->b[h];
		tab->b[h] = e;
	}
	if (e->count >= max)
		ok = false;
	else
		e->count++;
	pthread_mutex_unlock(&tab->lock);
	return ok;
}

static void
ip_release(struct iptab *tab, const uint8_t key[17])
{
	size_t h = ip_hash(key);
	struct ipent **pp, *e;

	pthread_mutex_lock(&tab->lock);
	for (pp = &tab->b[h]; (e = *pp) != NULL; pp = &e->next)
		if (memcmp(e->key, key, 17) == 0) {
			if (--e->count == 0) {
				*pp = e->next;
				free(e);
			}
			break;
		}
	pthread_mutex_unlock(&tab->lock);
}

/* ---- smtp_in callbacks (any thread) ---- */

static uint64_t
cb_id_new(void *arg)
{
	struct receive *r = arg;

	return queue_id_new(r->q);
}

static bool
cb_inflight_reserve(void *arg, size_t n)
{
	struct receive *r = arg;
	uint64_t max = r->cfg->server.max_inflight;
	uint64_t old = atomic_fetch_add(&r->inflight, n);

	if (old + n > max) {
		atomic_fetch_sub(&r->inflight, n);
		return false;
	}
	return true;
}

static void
cb_inflight_release(void *arg, size_t n)
{
	struct receive *r = arg;

	atomic_fetch_sub(&r->inflight, n);
}

/* ---- connections ---- */

static struct conn *
conn_lookup(struct rthread *t, uint64_t reqid)
{
	uint32_t slot = (uint32_t)(reqid >> 32), gen = (uint32_t)reqid;
	struct conn *c;

	if (slot >= t->nslots)
		return NULL;
	c = t->slots[slot];
	if (!c->live || c->gen != gen)
		return NULL;
	return c;
}

static uint64_t
conn_deadline(const struct conn *c)
{
	return c->idle_dl < c->sess_dl ? c->idle_dl : c->sess_dl;
}

static void
conn_log_disconnect(const struct conn *c)
{
	if (log_debug_enabled())
		log_event("event=disconnect client=%s reason=%s", c->addr,
		    c->reason ? c->reason : "unknown");
}

static void
conn_free(struct conn *c)
{
	struct rthread *t = c->t;

	conn_log_disconnect(c);
	smtp_in_free(c->s);
	c->s = NULL;
	close(c->fd);
	c->fd = -1;
	buf_fini(&c->out);
	buf_fini(&c->wbuf);
	ip_release(&t->r->ip, c->ipkey);
	atomic_fetch_sub(&t->r->nconns, 1);
	c->live = false;
	c->gen++;
	c->next_free = t->free;
	t->free = c;
	t->nconns--;
	thread_check_done(t);
}

static void
conn_maybe_free(struct conn *c)
{
	if (c->live && c->closing && !uring_op_busy(&c->rd) &&
	    !uring_op_busy(&c->wr) && !uring_op_busy(&c->tmo))
		conn_free(c);
}

static size_t
conn_unsent(const struct conn *c)
{
	return buf_avail(&c->out) + buf_avail(&c->wbuf);
}

/* Transport out: hand every reply built so far to one send. */
static void
conn_flush(struct conn *c)
{
	struct buf tmp;

	if (uring_op_busy(&c->wr) || buf_avail(&c->out) == 0)
		return;
	switch (c->xport) {
	case XPORT_PLAIN:
		tmp = c->wbuf;
		c->wbuf = c->out;
		c->out = tmp;
		buf_reset(&c->out);
		break;
	}
	uring_send(c->t->l, &c->wr, c->fd, buf_peek(&c->wbuf),
	    buf_avail(&c->wbuf));
}

/* Read more when the session wants input and the peer reads its replies. */
static void
conn_want_read(struct conn *c)
{
	if (c->closing || uring_op_busy(&c->rd) || !smtp_in_want_read(c->s) ||
	    conn_unsent(c) > OUT_HIWAT)
		return;
	uring_recv(c->t->l, &c->rd, c->fd, false);
}

/* Transport in: bytes from the socket to the session. */
static void
conn_input(struct conn *c, const uint8_t *data, size_t len)
{
	switch (c->xport) {
	case XPORT_PLAIN:
		conn_act(c, smtp_in_feed(c->s, data, len, &c->out));
		break;
	}
}

static void
conn_commit(struct conn *c)
{
	struct rthread *t = c->t;
	struct queue_submit *req = smtp_in_commit_take(c->s);

	MTA_ASSERT(req != NULL);
	req->reply = t->chan;
	req->msg.reqid = (uint64_t)c->slot << 32 | c->gen;
	c->committing = true;
	t->commits++;
	queue_submit(t->r->q, req);
}

/* Do what the session asked, send its replies, read on if it wants. */
static void
conn_act(struct conn *c, enum smtp_in_action a)
{
	struct rthread *t = c->t;

	switch (a) {
	case SMTP_IN_READ:
		break;
	case SMTP_IN_COMMIT:
		conn_commit(c);
		break;
	case SMTP_IN_STARTTLS:
	case SMTP_IN_AUTH:
		/* XXX TLS and AUTH are not wired yet (they are never
		 * offered: tls_available and auth_available are false). */
		log_warnx("receive: client=%s unexpected %s; closing", c->addr,
		    a == SMTP_IN_AUTH ? "AUTH" : "STARTTLS");
		a = SMTP_IN_CLOSE;
		c->reason = "unsupported";
		break;
	case SMTP_IN_CLOSE:
		break;
	}
	if (a == SMTP_IN_READ && t->shutting && !c->committing &&
	    (t->deadline || !smtp_in_busy(c->s))) {
		a = smtp_in_shutdown(c->s, &c->out);
		c->reason = "shutdown";
	}
	conn_flush(c);
	if (a == SMTP_IN_CLOSE) {
		conn_begin_close(c, c->reason ? c->reason : "closed", false);
		return;
	}
	conn_want_read(c);
}

static void
conn_begin_close(struct conn *c, const char *reason, bool discard)
{
	struct uring_loop *l = c->t->l;

	if (c->closing)
		return;
	c->closing = true;
	c->discard = discard;
	if (c->reason == NULL)
		c->reason = reason;
	uring_cancel(l, &c->rd);
	uring_cancel(l, &c->tmo); /* its final callback arms the linger */
	if (discard)
		uring_cancel(l, &c->wr);
	conn_maybe_free(c);
}

static void
conn_rd_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, rd);

	(void)flags;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (res == 0) {
		conn_begin_close(c, "eof", true);
		return;
	}
	if (res < 0) {
		conn_begin_close(c, res == -ECONNRESET ? "reset" : "read error",
		    true);
		return;
	}
	c->idle_dl = clock_mono_ms() + c->t->r->cfg->server.idle_timeout;
	conn_input(c, data, len);
}

static void
conn_wr_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, wr);

	(void)flags, (void)data, (void)len;
	if (c->wbuf.cap > OUT_KEEP)
		buf_fini(&c->wbuf);
	else
		buf_reset(&c->wbuf);
	if (res < 0) {
		if (!c->closing)
			conn_begin_close(c, res == -ECONNRESET || res == -EPIPE ?
			    "reset" : "write error", true);
		else {
			c->discard = true;
			conn_maybe_free(c);
		}
		return;
	}
	if (c->closing) {
		if (!c->discard)
			conn_flush(c);
		if (!uring_op_busy(&c->wr))
			uring_cancel(c->t->l, &c->tmo); /* linger no more */
		conn_maybe_free(c);
		return;
	}
	conn_flush(c);
	conn_want_read(c);
}

static void
conn_tmo_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, tmo);
	struct uring_loop *l = c->t->l;
	uint64_t now, dl;

	(void)flags, (void)data, (void)len;
	if (c->closing) {
		if (uring_op_busy(&c->wr)) {
			if (!c->lingering) {
				c->lingering = true;
				uring_timeout(l, &c->tmo, LINGER_MS);
				return;
			}
			/* The peer does not read its last replies. */
			uring_cancel(l, &c->wr);
		}
		conn_maybe_free(c);
		return;
	}
	now = clock_mono_ms();
	dl = conn_deadline(c);
	if (res != 0 || c->committing || now < dl) {
		/* Early (activity moved the deadline), or waiting for the
		 * queue, which is not the client's idleness. */
		uring_timeout(l, &c->tmo, now < dl ? dl - now :
		    c->t->r->cfg->server.idle_timeout);
		return;
	}
	c->reason = "timeout";
	conn_act(c, smtp_in_timeout(c->s, &c->out));
}

static struct conn *
conn_alloc(struct rthread *t)
{
	struct conn *c = t->free;

	if (c != NULL) {
		t->free = c->next_free;
		c->next_free = NULL;
		return c;
	}
	if (t->nslots == t->capslots) {
		t->capslots = t->capslots ? t->capslots * 2 : 64;
		t->slots = xreallocarray(t->slots, t->capslots,
		    sizeof(*t->slots));
	}
	c = xcalloc(1, sizeof(*c));
	c->t = t;
	c->slot = t->nslots;
	t->slots[t->nslots++] = c;
	return c;
}

/* Over a limit: one line, written while the socket buffer is surely
 * empty, then close. No session, no ops. */
static void
reject(struct rthread *t, int fd, const char *addr)
{
	char line[CONFIG_HOST_MAX + 64];
	int n;

	n = snprintf(line, sizeof(line), "421 4.7.0 %s Too many connections\r\n",
	    t->r->cfg->server.hostname);
	if (n > 0)
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (log_debug_enabled())
		log_event("event=disconnect client=%s reason=limit", addr);
}

static void
conn_new(struct listener *ls, int fd)
{
	struct rthread *t = ls->t;
	struct receive *r = t->r;
	const struct config_server *cs = &r->cfg->server;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct smtp_in_peer peer;
	uint8_t key[17];
	struct conn *c;
	uint64_t now;

	memset(&peer, 0, sizeof(peer));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(fd); /* reset before we looked at it */
		return;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, peer.addr, sizeof(peer.addr));
		peer.port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, peer.addr,
		    sizeof(peer.addr));
		peer.port = ntohs(sin6->sin6_port);
	}
	if (atomic_fetch_add(&r->nconns, 1) >= cs->max_connections) {
		atomic_fetch_sub(&r->nconns, 1);
		reject(t, fd, peer.addr);
		return;
	}
	ip_key(&ss, key);
	if (!ip_acquire(&r->ip, key, cs->max_connections_per_ip)) {
		atomic_fetch_sub(&r->nconns, 1);
		reject(t, fd, peer.addr);
		return;
	}
	peer.relay_allowed = config_net_match(cs->relay_networks,
	    cs->nrelay_networks, (const struct sockaddr *)&ss);
	peer.tls = false;

	c = conn_alloc(t);
	c->fd = fd;
	c->xport = XPORT_PLAIN;
	c->live = true;
	c->closing = c->discard = c->lingering = c->committing = false;
	c->reason = NULL;
	memcpy(c->ipkey, key, sizeof(key));
	str_copy(c->addr, sizeof(c->addr), peer.addr);
	buf_init(&c->out, OUT_MAX);
	buf_init(&c->wbuf, OUT_MAX);
	uring_op_init(&c->rd, conn_rd_cb);
	uring_op_init(&c->wr, conn_wr_cb);
	uring_op_init(&c->tmo, conn_tmo_cb);
	now = clock_mono_ms();
	c->idle_dl = now + cs->idle_timeout;
	c->sess_dl = now + cs->session_timeout;
	t->nconns++;
	if (log_debug_enabled())
		log_event("event=connect client=%s", c->addr);
	c->s = smtp_in_new(&r->scfg, &peer, &c->out);
	uring_timeout(t->l, &c->tmo, conn_deadline(c) - now);
	conn_act(c, SMTP_IN_READ);
}

/* ---- listeners ---- */

static void listener_arm(struct listener *ls);

static void
listener_acc_cb(struct uring_op *op, int res, unsigned flags,
    const uint8_t *data, size_t len)
{
	struct listener *ls = uring_container_of(op, struct listener, acc);
	struct rthread *t = ls->t;

	(void)data, (void)len;
	if (res >= 0) {
		if (t->shutting)
			close(res);
		else
			conn_new(ls, res);
	}
	if (flags & URING_F_MORE)
		return;
	if (t->shutting) {
		if (ls->open) {
			close(ls->fd);
			ls->open = false;
			t->nls_open--;
		}
		thread_check_done(t);
		return;
	}
	if (res < 0) {
		log_warnx("receive: accept on %s: %s", ls->text,
		    strerror(-res));
		uring_timeout(t->l, &ls->retry, ACCEPT_RETRY_MS);
	} else
		listener_arm(ls);
}

static void
listener_retry_cb(struct uring_op *op, int res, unsigned flags,
    const uint8_t *data, size_t len)
{
	struct listener *ls = uring_container_of(op, struct listener, retry);

	(void)res, (void)flags, (void)data, (void)len;
	if (ls->t->shutting) {
		if (ls->open && !uring_op_busy(&ls->acc)) {
			close(ls->fd);
			ls->open = false;
			ls->t->nls_open--;
		}
		thread_check_done(ls->t);
		return;
	}
	listener_arm(ls);
}

static void
listener_arm(struct listener *ls)
{
	uring_accept(ls->t->l, &ls->acc, ls->fd);
}

/* ---- the thread ---- */

static void
shutdown_sweep(struct rthread *t)
{
	for (uint32_t i = 0; i < t->nslots; i++) {
		struct conn *c = t->slots[i];

		if (!c->live || c->closing || c->committing)
			continue;
		if (t->deadline || !smtp_in_busy(c->s)) {
			c->reason = "shutdown";
			conn_act(c, smtp_in_shutdown(c->s, &c->out));
		}
	}
}

static void
sdt_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct rthread *t = uring_container_of(op, struct rthread, sdt);

	(void)flags, (void)data, (void)len;
	if (res == 0) {
		t->deadline = true;
		shutdown_sweep(t);
	}
	thread_check_done(t);
}

static void
thread_shutdown(struct rthread *t, bool now)
{
	if (!t->shutting) {
		t->shutting = true;
		for (size_t i = 0; i < t->nls; i++) {
			struct listener *ls = &t->ls[i];

			uring_cancel(t->l, &ls->acc);
			uring_cancel(t->l, &ls->retry);
			if (ls->open && !uring_op_busy(&ls->acc) &&
			    !uring_op_busy(&ls->retry)) {
				close(ls->fd);
				ls->open = false;
				t->nls_open--;
			}
		}
		if (!now)
			uring_timeout(t->l, &t->sdt, RECEIVE_SHUTDOWN_GRACE_MS);
	}
	if (now) {
		t->deadline = true;
		uring_cancel(t->l, &t->sdt);
	}
	shutdown_sweep(t);
	thread_check_done(t);
}

/* Wind down once nothing is left: no connection, no listener, no answer
 * owed by the queue (it would be sent to our chan). */
static void
thread_check_done(struct rthread *t)
{
	if (!t->shutting || t->nconns || t->nls_open || t->commits)
		return;
	if (!t->finishing) {
		t->finishing = true;
		uring_cancel(t->l, &t->chan_rd);
		uring_cancel(t->l, &t->sdt);
	}
	if (uring_loop_busy(t->l) == 0)
		uring_loop_stop(t->l);
}

static void
handle_msg(struct rthread *t, struct chan_msg *m)
{
	switch (m->type) {
	case QUEUE_DONE_SUBMIT: {
		struct queue_submit *req = (struct queue_submit *)m;
		struct conn *c = conn_lookup(t, m->reqid);

		t->commits--;
		if (c == NULL || !c->committing || c->closing) {
			t->stale++;
			if (c)
				c->committing = false;
			queue_submit_free(req);
			break;
		}
		c->committing = false;
		conn_act(c, smtp_in_commit_done(c->s, req, &c->out));
		break;
	}
	case RECEIVE_MSG_SHUTDOWN: {
		bool now = m->reqid != 0;

		free(m);
		thread_shutdown(t, now);
		break;
	}
	default:
		log_warnx("receive: unexpected message type %#x", m->type);
		free(m);
		break;
	}
}

static void
chan_rd_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct rthread *t = uring_container_of(op, struct rthread, chan_rd);
	struct chan_msg *m, *next;

	(void)flags, (void)data, (void)len;
	/* Drain even when cancelled: the queue may have answered. */
	for (m = chan_take(t->chan); m; m = next) {
		next = m->next;
		handle_msg(t, m);
	}
	if (res < 0 && res != -ECANCELED)
		log_warnx("receive: chan read: %s", strerror(-res));
	if (!t->finishing)
		uring_read(t->l, &t->chan_rd, chan_fd(t->chan), &t->chan_val,
		    sizeof(t->chan_val));
	else
		thread_check_done(t);
}

static void *
thread_main(void *arg)
{
	struct rthread *t = arg;
	struct receive *r = t->r;
	struct uring_loop_opts o = { 0 };
	int res;

	res = uring_loop_new(&o, &t->l, t->start_err, sizeof(t->start_err));
	t->start_res = res;
	sem_post(&r->start_sem);
	if (res < 0) {
		atomic_fetch_sub(&r->running, 1);
		return NULL;
	}
	uring_op_init(&t->chan_rd, chan_rd_cb);
	uring_op_init(&t->sdt, sdt_cb);
	uring_read(t->l, &t->chan_rd, chan_fd(t->chan), &t->chan_val,
	    sizeof(t->chan_val));
	for (size_t i = 0; i < t->nls; i++) {
		uring_op_init(&t->ls[i].acc, listener_acc_cb);
		uring_op_init(&t->ls[i].retry, listener_retry_cb);
		listener_arm(&t->ls[i]);
	}
	if ((res = uring_loop_run(t->l)) < 0)
		fatalx("receive thread %u: io_uring: %s", t->idx,
		    strerror(-res));
	if (t->stale)
		log_debug("receive thread %u: %" PRIu64 " stale commit "
		    "answers", t->idx, t->stale);
	uring_loop_free(t->l);
	t->l = NULL;
	atomic_fetch_sub(&r->running, 1);
	return NULL;
}

/* ---- main-thread API ---- */

static int
listen_one(const struct config_addr *a, bool reuseport, int *out, char *err,
    size_t errlen)
{
	int fd, one = 1, e;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) < 0)
		goto fail;
	if (reuseport && listen(fd, 1024) < 0)
		goto fail;
	*out = fd;
	return 0;
fail:
	e = errno;
	snprintf(err, errlen, "listen %s: %s", a->text, strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

int
receive_new(const struct config *cfg, struct receive **out, char *err,
    size_t errlen)
{
	const struct config_server *cs = &cfg->server;
	struct receive *r;
	unsigned nth = cs->threads ? cs->threads : 1;
	int res, fd;

	if (cs->nlisten_tls > 0) {
		snprintf(err, errlen, "listen_tls %s: implicit TLS is not "
		    "supported yet", cs->listen_tls[0].text);
		return -ENOTSUP;
	}
	if (cs->nlisten == 0) {
		snprintf(err, errlen, "listen: no address configured");
		return -EINVAL;
	}
	/* SO_REUSEPORT would let us share a port with another process of
	 * the same user (another mta): probe each address exclusively
	 * first, so a busy port is an error, not a silent split. */
	for (size_t i = 0; i < cs->nlisten; i++) {
		if ((res = listen_one(&cs->listen[i], false, &fd, err,
		    errlen)) < 0)
			return res;
		close(fd);
	}
	r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->nth = nth;
	pthread_mutex_init(&r->ip.lock, NULL);
	sem_init(&r->start_sem, 0, 0);
	r->scfg.hostname = cs->hostname;
	r->scfg.max_message_size = cs->max_message_size;
	r->scfg.max_recipients = cs->max_recipients;
	r->scfg.max_errors = cs->max_errors;
	r->scfg.tls_available = false;
	r->scfg.auth_available = false;
	r->scfg.auth_require_tls = cfg->auth.require_tls;
	r->scfg.auth_max_failures = cfg->auth.max_failures;
	r->scfg.id_new = cb_id_new;
	r->scfg.id_arg = r;
	r->scfg.inflight_reserve = cb_inflight_reserve;
	r->scfg.inflight_release = cb_inflight_release;
	r->scfg.inflight_arg = r;
	r->th = xcalloc(nth, sizeof(*r->th));
	for (unsigned i = 0; i < nth; i++) {
		struct rthread *t = &r->th[i];

		t->r = r;
		t->idx = i;
		t->chan = chan_new();
		t->ls = xcalloc(cs->nlisten, sizeof(*t->ls));
		for (size_t j = 0; j < cs->nlisten; j++) {
			struct listener *ls = &t->ls[j];

			ls->t = t;
			ls->text = cs->listen[j].text;
			if ((res = listen_one(&cs->listen[j], true, &ls->fd,
			    err, errlen)) < 0) {
				receive_free(r);
				return res;
			}
			ls->open = true;
			t->nls++;
			t->nls_open++;
		}
	}
	*out = r;
	return 0;
}

int
receive_start(struct receive *r, struct queue *q, char *err, size_t errlen)
{
	int res = 0;

	r->q = q;
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];

		atomic_fetch_add(&r->running, 1);
		if ((res = pthread_create(&t->th, NULL, thread_main, t)) != 0) {
			atomic_fetch_sub(&r->running, 1);
			snprintf(err, errlen, "receive thread: %s",
			    strerror(res));
			res = -res;
			break;
		}
		t->started = true;
	}
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];

		if (!t->started)
			continue;
		while (sem_wait(&r->start_sem) < 0 && errno == EINTR)
			;
	}
	for (unsigned i = 0; res == 0 && i < r->nth; i++)
		if (r->th[i].started && r->th[i].start_res < 0) {
			snprintf(err, errlen, "receive thread: %s",
			    r->th[i].start_err);
			res = r->th[i].start_res;
		}
	if (res < 0)
		receive_shutdown(r, true);
	return res;
}

void
receive_shutdown(struct receive *r, bool now)
{
	for (unsigned i = 0; i < r->nth; i++) {
		struct chan_msg *m;

		if (!r->th[i].started || r->th[i].start_res < 0)
			continue;
		m = xcalloc(1, sizeof(*m));
		m->type = RECEIVE_MSG_SHUTDOWN;
		m->reqid = now;
		chan_send(r->th[i].chan, m);
	}
}

bool
receive_done(const struct receive *r)
{
	return atomic_load(&r->running) == 0;
}

void
receive_free(struct receive *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];
		struct chan_msg *m, *next;

		if (t->started)
			pthread_join(t->th, NULL);
		for (size_t j = 0; j < t->nls; j++)
			if (t->ls[j].open)
				close(t->ls[j].fd);
		free(t->ls);
		for (uint32_t j = 0; j < t->nslots; j++)
			free(t->slots[j]);
		free(t->slots);
		if (t->chan) {
			for (m = chan_take(t->chan); m; m = next) {
				next = m->next;
				if (m->type == QUEUE_DONE_SUBMIT)
					queue_submit_free(
					    (struct queue_submit *)m);
				else
					free(m);
			}
			chan_free(t->chan);
		}
	}
	free(r->th);
	for (size_t i = 0; i < IPTAB_BUCKETS; i++) {
		struct ipent *e, *next;

		for (e = r->ip.b[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&r->ip.lock);
	sem_destroy(&r->start_sem);
	free(r);
}
