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
 * Transport: conn_input(), conn_flush() and conn_want_read() are the
 * only places that know whether the bytes on the socket are the bytes
 * smtp_in sees. With TLS (implicit on listen_tls, or after STARTTLS) a
 * tls_conn sits in between: every recv goes to tls_conn_feed(), the
 * plaintext comes out of tls_conn_read() into the thread's scratch buffer
 * and goes to the session one record at a time, and only while the
 * session takes input (the rest waits as ciphertext, as unread bytes wait
 * in the socket without TLS: the same backpressure). Replies go through
 * tls_conn_write() and the ciphertext through the usual single send. Any
 * TLS call may want to send (tickets, alerts), so the output is flushed
 * after each. STARTTLS (CVE-2011-0411): smtp_in drops whatever plaintext
 * followed the command, nothing is read until the 220 has been sent, and
 * from then on every byte read is ciphertext, so injected plaintext can
 * only ever break the handshake.
 *
 * AUTH: the credentials go to the auth worker pool as a struct auth_req
 * with this thread's chan as the reply address and (slot, generation) as
 * reqid, like commits. A failed check is answered only after
 * AUTH_FAIL_DELAY_MS (a timer on the connection, never a sleeping worker),
 * which slows password guessing; smtp_in counts failures and closes.
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
#include "auth.h"
#include "queue/queue.h"
#include "smtp_in.h"
#include "tls.h"
#include "uring.h"

#define OUT_MAX      (256 * 1024) /* bytes of replies waiting, hard cap */
#define OUT_HIWAT    (16 * 1024)  /* stop reading above this much unsent */
#define OUT_KEEP     4096         /* shrink send buffers bigger than this */
#define LINGER_MS    5000         /* last replies after close, at most */
#define ACCEPT_RETRY_MS 100       /* after EMFILE and friends */
#define IPTAB_BUCKETS 4096
#define PLAIN_CHUNK  16384        /* plaintext handed to smtp_in at once */
#define AUTH_FAIL_DELAY_MS 1000   /* before a failed AUTH is answered */

enum xport {
	XPORT_PLAIN,    /* bytes on the socket are the SMTP stream */
	XPORT_STARTTLS, /* 220 to STARTTLS going out in plaintext; no reads */
	XPORT_TLS,      /* tls_conn between the socket and smtp_in */
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
	bool authing;          /* a password check, or its failure delay */
	bool implicit;         /* accepted on a listen_tls listener */
	bool tls_shut;         /* close_notify queued */
	bool pumping;          /* inside conn_tls_pump(): no re-entry */
	const char *reason;    /* why it closed, for the log */
	struct smtp_in *s;
	struct tls_conn *tls;  /* XPORT_TLS only */
	struct rsnap *snap;    /* settings it started with; NULL = startup */
	struct uring_op rd, wr, tmo;
	struct uring_op dly;   /* delay of a failed AUTH answer */
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
	bool tls;              /* implicit TLS (RFC 8314) */
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
	size_t auths;          /* requests with the auth pool */
	uint64_t stale;        /* answers for connections that had gone */
	struct buf pin;        /* scratch: plaintext out of TLS, PLAIN_CHUNK */
	bool shutting;         /* no accepts; sessions closed when idle */
	bool deadline;         /* grace over: close the rest when possible */
	bool finishing;        /* loop is being wound down */
	struct uring_op sdt;   /* shutdown grace timer */
	struct rsnap *snap;    /* reloaded settings for new sessions, or
				  NULL: the startup ones (RECEIVE_MSG_RELOAD) */
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
	struct tls_ctx *tls;         /* NULL: no certificate, no TLS */
	struct auth_users *users;    /* loaded, until the pool takes it */
	struct auth_pool *auth;      /* NULL: no users file, no AUTH */
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
static void conn_want_read(struct conn *c);
static void thread_check_done(struct rthread *t);

/*
 * Reloaded settings (SIGHUP, receive_reload): an immutable snapshot of
 * what a new session uses, reference-counted because smtp_in borrows
 * its smtp_in_cfg for the session's life. Each thread holds one for new
 * sessions, each connection the one it started with; the last unref
 * frees it, with its TLS context (connections made from it keep their
 * own reference to the OpenSSL context). NULL stands for the startup
 * settings in struct receive, which live as long as the stage.
 */
struct rsnap {
	atomic_uint refs;
	struct config_server server; /* copy; relay_networks owned, no listen */
	struct smtp_in_cfg scfg;     /* hostname points into server */
	struct tls_ctx *tls;         /* owned; NULL: no STARTTLS */
};

static struct rsnap *
rsnap_ref(struct rsnap *sn)
{
	if (sn != NULL)
		atomic_fetch_add(&sn->refs, 1);
	return sn;
}

static void
rsnap_unref(struct rsnap *sn)
{
	if (sn == NULL || atomic_fetch_sub(&sn->refs, 1) != 1)
		return;
	tls_ctx_free(sn->tls);
	free(sn->server.relay_networks);
	free(sn);
}

/* RECEIVE_MSG_RELOAD: a reference to the new snapshot, for one thread. */
struct receive_reload_msg {
	struct chan_msg msg;
	struct rsnap *snap;
};

/* What a new session on t gets. */
static const struct config_server *
rs_server(const struct rthread *t)
{
	return t->snap ? &t->snap->server : &t->r->cfg->server;
}

/* What c started with. */
static const struct smtp_in_cfg *
rs_scfg(const struct conn *c)
{
	return c->snap ? &c->snap->scfg : &c->t->r->scfg;
}

static struct tls_ctx *
rs_tls(const struct conn *c)
{
	return c->snap ? c->snap->tls : c->t->r->tls;
}

static uint64_t
rs_idle(const struct conn *c)
{
	return c->snap ? c->snap->server.idle_timeout :
	    c->t->r->cfg->server.idle_timeout;
}

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

/* The reqid of a request on behalf of c: (slot, generation). */
static uint64_t
conn_reqid(const struct conn *c)
{
	return (uint64_t)c->slot << 32 | c->gen;
}

static uint64_t
conn_deadline(const struct conn *c)
{
	return c->idle_dl < c->sess_dl ? c->idle_dl : c->sess_dl;
}

static void
conn_log_disconnect(const struct conn *c)
{
	if (log_debug_enabled()) {
		log_event("event=disconnect client=%s reason=%s", c->addr,
		    c->reason ? c->reason : "unknown");
		/* out before close() shows the peer the end (log.h batch) */
		log_batch_flush();
	}
}

static void
conn_free(struct conn *c)
{
	struct rthread *t = c->t;

	conn_log_disconnect(c);
	smtp_in_free(c->s);
	c->s = NULL;
	tls_conn_free(c->tls);
	c->tls = NULL;
	rsnap_unref(c->snap);
	c->snap = NULL;
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
	    !uring_op_busy(&c->wr) && !uring_op_busy(&c->tmo) &&
	    !uring_op_busy(&c->dly))
		conn_free(c);
}

static size_t
conn_unsent(const struct conn *c)
{
	return buf_avail(&c->out) + buf_avail(&c->wbuf);
}

/*
 * Replies into the TLS layer, as much as it takes (TLS_OUT_MAX of
 * ciphertext at most; the rest goes after the next send). Before the
 * handshake is done nothing can be encrypted, so the greeting of an
 * implicit-TLS session waits here. Once closing and everything is
 * encrypted, queue the close_notify.
 */
static void
conn_tls_encrypt(struct conn *c)
{
	ssize_t n;
	int rc;

	if (!tls_conn_handshake_done(c->tls))
		return;
	while (buf_avail(&c->out) > 0) {
		n = tls_conn_write(c->tls, buf_peek(&c->out),
		    buf_avail(&c->out));
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n != -ENOBUFS) /* broken or shut: nothing more goes */
			buf_reset(&c->out);
		break;
	}
	if (buf_avail(&c->out) == 0)
		buf_reset(&c->out);
	if (c->closing && !c->discard && !c->tls_shut &&
	    buf_avail(&c->out) == 0) {
		c->tls_shut = true;
		if ((rc = tls_conn_close(c->tls)) < 0)
			log_debug("receive: client=%s close_notify: %s",
			    c->addr, strerror(-rc));
	}
}

/* Transport out: hand every reply built so far to one send. */
static void
conn_flush(struct conn *c)
{
	struct buf tmp;

	if (uring_op_busy(&c->wr))
		return;
	switch (c->xport) {
	case XPORT_PLAIN:
	case XPORT_STARTTLS:
		if (buf_avail(&c->out) == 0)
			return;
		tmp = c->wbuf;
		c->wbuf = c->out;
		c->out = tmp;
		buf_reset(&c->out);
		break;
	case XPORT_TLS:
		/* wbuf is empty while wr is idle (conn_wr_cb resets it). */
		conn_tls_encrypt(c);
		if (tls_conn_out_to_buf(c->tls, &c->wbuf) == 0)
			return;
		break;
	}
	uring_send(c->t->l, &c->wr, c->fd, buf_peek(&c->wbuf),
	    buf_avail(&c->wbuf));
}

static void
conn_tls_failed(struct conn *c)
{
	char why[TLS_ERR_MAX + 16];
	const char *e = tls_conn_error(c->tls);

	log_event("event=tls_failed client=%s reason=%s", c->addr,
	    log_quote(why, sizeof(why), e, strlen(e)));
	c->reason = "tls";
	/* Nothing more can be encrypted: replies are dropped, a pending
	 * alert still goes out (conn_begin_close flushes). */
	buf_reset(&c->out);
	if (!c->implicit && !tls_conn_handshake_done(c->tls))
		(void)smtp_in_tls_done(c->s, false, &c->out);
	conn_begin_close(c, "tls", false);
}

/* The handshake has just completed. */
static void
conn_tls_up(struct conn *c)
{
	struct tls_info ti;

	if (log_debug_enabled()) {
		tls_conn_info(c->tls, &ti);
		log_event("event=tls client=%s mode=%s version=%s cipher=%s "
		    "bits=%d reused=%s", c->addr,
		    c->implicit ? "implicit" : "starttls", ti.version,
		    ti.cipher, ti.bits, ti.reused ? "yes" : "no");
	}
	if (c->implicit)
		conn_flush(c); /* the greeting, held until now */
	else
		conn_act(c, smtp_in_tls_done(c->s, true, &c->out));
}

/*
 * Drive the TLS layer after ciphertext came in, or when the session is
 * ready for input again: finish the handshake, then decrypt at most
 * PLAIN_CHUNK at a time and feed it to the session, only while the
 * session takes input and the peer reads its replies. Returns true when
 * everything fed so far is used up and the socket must be read for more.
 * conn_act() calls back in here through conn_want_read(); `pumping` turns
 * that into a no-op and this loop goes on instead.
 */
static bool
conn_tls_pump(struct conn *c)
{
	struct buf *pin = &c->t->pin;
	bool need = false;
	ssize_t r;

	if (c->pumping)
		return false;
	c->pumping = true;
	if (!tls_conn_handshake_done(c->tls)) {
		r = tls_conn_handshake(c->tls);
		if (r == -EAGAIN) {
			need = true;
			goto out;
		}
		if (r < 0) {
			conn_tls_failed(c);
			goto out;
		}
		conn_tls_up(c);
	}
	while (!c->closing && smtp_in_want_read(c->s) &&
	    conn_unsent(c) <= OUT_HIWAT) {
		buf_reset(pin);
		r = tls_conn_read(c->tls, pin);
		if (r > 0) {
			/* smtp_in copies what it cannot use now; pin is
			 * free again when it returns. */
			conn_act(c, smtp_in_feed(c->s, buf_peek(pin),
			    buf_avail(pin), &c->out));
			continue;
		}
		if (r == -EAGAIN)
			need = true;
		else if (r == 0)
			conn_begin_close(c, "eof", true); /* close_notify */
		else
			conn_tls_failed(c);
		break;
	}
out:
	buf_reset(pin);
	c->pumping = false;
	if (!c->closing)
		conn_flush(c); /* handshake records, tickets, alerts */
	return need;
}

/* Set up TLS once the 220 to STARTTLS is on the wire. */
static void
conn_tls_start(struct conn *c)
{
	MTA_ASSERT(rs_tls(c) != NULL && c->tls == NULL);
	c->tls = tls_conn_server_new(rs_tls(c));
	c->xport = XPORT_TLS;
}

/* Read more when the session wants input and the peer reads its replies. */
static void
conn_want_read(struct conn *c)
{
	if (c->closing || uring_op_busy(&c->rd))
		return;
	switch (c->xport) {
	case XPORT_PLAIN:
		if (!smtp_in_want_read(c->s) || conn_unsent(c) > OUT_HIWAT)
			return;
		break;
	case XPORT_STARTTLS:
		/* The 220 must be on the wire before the first TLS byte. */
		if (uring_op_busy(&c->wr) || buf_avail(&c->out) > 0)
			return;
		conn_tls_start(c);
		/* FALLTHROUGH */
	case XPORT_TLS:
		if (!conn_tls_pump(c) || c->closing)
			return;
		break;
	}
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
	case XPORT_STARTTLS:
		/* Never read in this state (conn_want_read). */
		MTA_ASSERT(0);
		break;
	case XPORT_TLS:
		/* We only read once the TLS layer has used up what it had,
		 * so this stays far below TLS_IN_MAX. */
		if (tls_conn_feed(c->tls, data, len) < 0) {
			conn_begin_close(c, "tls input overflow", true);
			return;
		}
		conn_want_read(c);
		break;
	}
}

/* Hand the session's credentials to the auth pool. */
static void
conn_auth(struct conn *c)
{
	struct rthread *t = c->t;
	struct auth_req *req;
	const char *user, *pass;

	MTA_ASSERT(t->r->auth != NULL);
	req = xcalloc(1, sizeof(*req));
	smtp_in_auth_peek(c->s, &user, &pass);
	/* smtp_in bounds both below the request's fields; should that ever
	 * change, a cut name can only fail the check. */
	if (!str_copy(req->user, sizeof(req->user), user) ||
	    !str_copy(req->pass, sizeof(req->pass), pass))
		req->user[0] = '\0';
	req->reply = t->chan;
	req->msg.reqid = conn_reqid(c);
	c->authing = true;
	t->auths++;
	auth_pool_submit(t->r->auth, req);
}

static void
conn_commit(struct conn *c)
{
	struct rthread *t = c->t;
	struct queue_submit *req = smtp_in_commit_take(c->s);

	MTA_ASSERT(req != NULL);
	req->reply = t->chan;
	req->msg.reqid = conn_reqid(c);
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
		/* smtp_in dropped what followed the command; the 220 goes
		 * out in plaintext, then conn_want_read() starts TLS. */
		MTA_ASSERT(c->xport == XPORT_PLAIN);
		c->xport = XPORT_STARTTLS;
		break;
	case SMTP_IN_AUTH:
		conn_auth(c);
		break;
	case SMTP_IN_CLOSE:
		break;
	}
	if (a == SMTP_IN_READ && t->shutting && !c->committing &&
	    !c->authing && (t->deadline || !smtp_in_busy(c->s))) {
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
	uring_cancel(l, &c->dly);
	if (discard)
		uring_cancel(l, &c->wr);
	else if (c->xport == XPORT_TLS)
		conn_flush(c); /* a pending alert, or our close_notify */
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
	c->idle_dl = clock_mono_ms() + rs_idle(c);
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
	if (res != 0 || c->committing || c->authing || now < dl) {
		/* Early (activity moved the deadline), or waiting for the
		 * queue or the auth pool, which is not the client's
		 * idleness. */
		uring_timeout(l, &c->tmo, now < dl ? dl - now :
		    rs_idle(c));
		return;
	}
	c->reason = "timeout";
	conn_act(c, smtp_in_timeout(c->s, &c->out));
}

/* A failed AUTH has waited its delay: answer it now. */
static void
conn_dly_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, dly);

	(void)res, (void)flags, (void)data, (void)len;
	c->authing = false;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	conn_act(c, smtp_in_auth_done(c->s, false, &c->out));
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
 * empty, then close. No session, no ops. On an implicit-TLS listener a
 * plaintext line would be garbage to the client: just close. */
static void
reject(struct rthread *t, int fd, const char *addr, bool tls)
{
	char line[CONFIG_HOST_MAX + 64];
	int n;

	n = snprintf(line, sizeof(line), "421 4.7.0 %s Too many connections\r\n",
	    rs_server(t)->hostname);
	if (n > 0 && !tls)
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
	const struct config_server *cs = rs_server(t);
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
		reject(t, fd, peer.addr, ls->tls);
		return;
	}
	ip_key(&ss, key);
	if (!ip_acquire(&r->ip, key, cs->max_connections_per_ip)) {
		atomic_fetch_sub(&r->nconns, 1);
		reject(t, fd, peer.addr, ls->tls);
		return;
	}
	peer.relay_allowed = config_net_match(cs->relay_networks,
	    cs->nrelay_networks, (const struct sockaddr *)&ss);
	peer.tls = ls->tls;

	c = conn_alloc(t);
	c->fd = fd;
	c->snap = rsnap_ref(t->snap);
	c->live = true;
	c->closing = c->discard = c->lingering = c->committing = false;
	c->authing = c->tls_shut = c->pumping = false;
	c->implicit = ls->tls;
	/* RFC 8314: the session starts TLS before the greeting, which
	 * waits in out until the handshake is done. */
	c->xport = ls->tls ? XPORT_TLS : XPORT_PLAIN;
	c->tls = ls->tls ? tls_conn_server_new(rs_tls(c)) : NULL;
	c->reason = NULL;
	memcpy(c->ipkey, key, sizeof(key));
	str_copy(c->addr, sizeof(c->addr), peer.addr);
	buf_init(&c->out, OUT_MAX);
	buf_init(&c->wbuf, OUT_MAX);
	uring_op_init(&c->rd, conn_rd_cb);
	uring_op_init(&c->wr, conn_wr_cb);
	uring_op_init(&c->tmo, conn_tmo_cb);
	uring_op_init(&c->dly, conn_dly_cb);
	now = clock_mono_ms();
	c->idle_dl = now + cs->idle_timeout;
	c->sess_dl = now + cs->session_timeout;
	t->nconns++;
	if (log_debug_enabled())
		log_event("event=connect client=%s", c->addr);
	c->s = smtp_in_new(rs_scfg(c), &peer, &c->out);
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

		if (!c->live || c->closing || c->committing || c->authing)
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
 * owed by the queue or the auth pool (it would be sent to our chan). */
static void
thread_check_done(struct rthread *t)
{
	if (!t->shutting || t->nconns || t->nls_open || t->commits ||
	    t->auths)
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
	case AUTH_DONE_CHECK: {
		struct auth_req *req = (struct auth_req *)m;
		struct conn *c = conn_lookup(t, m->reqid);
		bool ok = req->ok;

		auth_req_free(req);
		t->auths--;
		if (c == NULL || !c->authing || c->closing) {
			t->stale++;
			if (c)
				c->authing = false;
			break;
		}
		if (ok) {
			c->authing = false;
			conn_act(c, smtp_in_auth_done(c->s, true, &c->out));
		} else {
			/* authing stays set: conn_dly_cb answers. */
			uring_timeout(t->l, &c->dly, AUTH_FAIL_DELAY_MS);
		}
		break;
	}
	case RECEIVE_MSG_RELOAD: {
		struct receive_reload_msg *rm = (struct receive_reload_msg *)m;

		/* the safe point: sessions already open keep theirs */
		rsnap_unref(t->snap);
		t->snap = rm->snap;
		free(rm);
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
	/* The last answer owed (for a connection gone meanwhile) may be
	 * what shutdown was waiting for. */
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
		log_debug("receive thread %u: %" PRIu64 " stale commit or "
		    "auth answers", t->idx, t->stale);
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

/* Listener j of a thread: the listen addresses, then the listen_tls ones
 * (*tls = true). */
static const struct config_addr *
listen_addr(const struct config_server *cs, size_t j, bool *tls)
{
	*tls = j >= cs->nlisten;
	return *tls ? &cs->listen_tls[j - cs->nlisten] : &cs->listen[j];
}

int
receive_new(const struct config *cfg, struct receive **out, char *err,
    size_t errlen)
{
	const struct config_server *cs = &cfg->server;
	struct receive *r;
	unsigned nth = cs->threads ? cs->threads : 1;
	size_t nls = cs->nlisten + cs->nlisten_tls;
	struct tls_ctx *tls = NULL;
	struct auth_users *users = NULL;
	char e2[512];
	int res, fd;
	bool ltls;

	if (nls == 0) {
		snprintf(err, errlen, "listen: no address configured");
		return -EINVAL;
	}
	if (cs->nlisten_tls > 0 && cfg->tls.certificate[0] == '\0') {
		snprintf(err, errlen, "listen_tls %s: needs [tls] certificate",
		    cs->listen_tls[0].text);
		return -EINVAL;
	}
	/* SO_REUSEPORT would let us share a port with another process of
	 * the same user (another mta): probe each address exclusively
	 * first, so a busy port is an error, not a silent split. */
	for (size_t i = 0; i < nls; i++) {
		if ((res = listen_one(listen_addr(cs, i, &ltls), false, &fd,
		    err, errlen)) < 0)
			return res;
		close(fd);
	}
	/* The TLS context and the users snapshot are built once here and
	 * are read-only afterwards: every thread uses them at once. */
	if (cfg->tls.certificate[0] != '\0' &&
	    (res = tls_ctx_server_new(&cfg->tls, &tls, err, errlen)) < 0)
		return res;
	if (cfg->auth.users[0] != '\0' &&
	    (res = auth_users_load(cfg->auth.users, &users, e2,
	    sizeof(e2))) < 0) {
		snprintf(err, errlen, "auth: %s", e2);
		tls_ctx_free(tls);
		return res;
	}
	if (users != NULL && tls == NULL && cfg->auth.require_tls)
		log_warnx("auth: require_tls = yes and no [tls] certificate: "
		    "AUTH is never offered");
	r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->nth = nth;
	r->tls = tls;
	r->users = users;
	pthread_mutex_init(&r->ip.lock, NULL);
	sem_init(&r->start_sem, 0, 0);
	r->scfg.hostname = cs->hostname;
	r->scfg.max_message_size = cs->max_message_size;
	r->scfg.max_recipients = cs->max_recipients;
	r->scfg.max_errors = cs->max_errors;
	r->scfg.tls_available = tls != NULL;
	r->scfg.auth_available = users != NULL;
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
		buf_init(&t->pin, PLAIN_CHUNK);
		t->ls = xcalloc(nls, sizeof(*t->ls));
		for (size_t j = 0; j < nls; j++) {
			struct listener *ls = &t->ls[j];
			const struct config_addr *a = listen_addr(cs, j,
			    &ls->tls);

			ls->t = t;
			ls->text = a->text;
			if ((res = listen_one(a, true, &ls->fd, err,
			    errlen)) < 0) {
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
	/* Checks cost CPU, not waiting: as many workers as receive threads
	 * (one per CPU by default). */
	if (r->users != NULL) {
		r->auth = auth_pool_new(r->users, r->nth);
		r->users = NULL;
	}
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
	for (unsigned i = 0; i < r->nth; i++)
		if (r->th[i].started)
			pthread_join(r->th[i].th, NULL);
	/* After the threads, before their chans: requests still in the
	 * pool are answered to those chans and freed below. */
	auth_pool_free(r->auth);
	auth_users_unref(r->users);
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];
		struct chan_msg *m, *next;

		buf_fini(&t->pin);
		rsnap_unref(t->snap);
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
				else if (m->type == AUTH_DONE_CHECK)
					auth_req_free((struct auth_req *)m);
				else if (m->type == RECEIVE_MSG_RELOAD) {
					rsnap_unref(((struct receive_reload_msg
					    *)m)->snap);
					free(m);
				}
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
	tls_ctx_free(r->tls);
	free(r);
}

/* ---- reload (SIGHUP; main thread) ---- */

int
receive_reload(struct receive *r, const struct config *cfg, char *err,
    size_t errlen)
{
	const struct config_server *cs = &cfg->server;
	struct tls_ctx *tls = NULL;
	struct auth_users *users = NULL;
	struct rsnap *sn;
	char e2[512];
	int res;

	/* What can fail comes first: on failure nothing has changed. The
	 * listeners are the startup ones (they cannot change live). */
	if (r->cfg->server.nlisten_tls > 0 && cfg->tls.certificate[0] == '\0') {
		snprintf(err, errlen, "listen_tls %s: needs [tls] certificate",
		    r->cfg->server.listen_tls[0].text);
		return -EINVAL;
	}
	if (cfg->tls.certificate[0] != '\0' &&
	    (res = tls_ctx_server_new(&cfg->tls, &tls, err, errlen)) < 0)
		return res;
	if (cfg->auth.users[0] != '\0' && r->auth != NULL &&
	    (res = auth_users_load(cfg->auth.users, &users, e2,
	    sizeof(e2))) < 0) {
		snprintf(err, errlen, "auth: %s", e2);
		tls_ctx_free(tls);
		return res;
	}
	/* XXX the auth pool is started with the stage, only when a users
	 * file was set then */
	if (cfg->auth.users[0] != '\0' && r->auth == NULL)
		log_event("event=reload-ignored key=auth.users reason=\"AUTH "
		    "was off at start; restart to enable it\"");
	sn = xcalloc(1, sizeof(*sn));
	atomic_init(&sn->refs, 1); /* ours, until each thread has one */
	sn->server = *cs;
	sn->server.listen = sn->server.listen_tls = NULL;
	sn->server.nlisten = sn->server.nlisten_tls = 0;
	sn->server.relay_networks = NULL;
	if (cs->nrelay_networks > 0)
		sn->server.relay_networks = (struct config_net *)xmemdup(
		    cs->relay_networks,
		    cs->nrelay_networks * sizeof(*cs->relay_networks));
	sn->scfg = r->scfg; /* the callbacks stay */
	sn->scfg.hostname = sn->server.hostname;
	sn->scfg.max_message_size = cs->max_message_size;
	sn->scfg.max_recipients = cs->max_recipients;
	sn->scfg.max_errors = cs->max_errors;
	sn->scfg.tls_available = tls != NULL;
	sn->scfg.auth_available = r->auth != NULL && cfg->auth.users[0];
	sn->scfg.auth_require_tls = cfg->auth.require_tls;
	sn->scfg.auth_max_failures = cfg->auth.max_failures;
	sn->tls = tls;
	/* checks in progress finish with the old users */
	if (users != NULL)
		auth_pool_users_swap(r->auth, users);
	for (unsigned i = 0; i < r->nth; i++) {
		struct receive_reload_msg *m;

		if (!r->th[i].started || r->th[i].start_res < 0)
			continue;
		m = xcalloc(1, sizeof(*m));
		m->msg.type = RECEIVE_MSG_RELOAD;
		m->snap = rsnap_ref(sn);
		chan_send(r->th[i].chan, &m->msg);
	}
	rsnap_unref(sn);
	return 0;
}
