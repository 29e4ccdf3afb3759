/* SPDX-License-Identifier: ISC */
/*
 * receive.c - the receive threads: their loops, listeners and limits;
 * the main-thread API and reload; routing of chan messages to the
 * connections.
 *
 * Threads: receive_new/start/shutdown/done/free/reload run on the main
 * thread; everything else runs on one receive thread and touches only
 * that thread's objects. Shared between threads: struct receive's
 * atomics and the per-address table (iptab, under its own mutex).
 *
 * Each thread has its listeners (multishot accept), its chan (queue and
 * auth answers, reload, shutdown) and its connection table
 * (receive_conn.c, which owns the connections and their pending
 * requests). An accepted socket is checked against the global and
 * per-address limits here, then handed to the table with the settings it
 * starts with; when the connection is gone the table tells us through
 * rconn_env.gone and we release its limits and settings. Answers are
 * routed by their reqid; the table knows which connection asked.
 *
 * Shutdown: stop accepting; sessions get a 421 when idle (at once after
 * RECEIVE_SHUTDOWN_GRACE_MS); the thread ends once no connection, no
 * listener and no answer owed by the queue or the auth pool is left.
 */
#include "receive/receive.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/xalloc.h"
#include "auth/auth.h"
#include "dkim/dkim.h"
#include "smtp/sender_policy.h"
#include "limits/limits.h"
#include "limits/limits_redis.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"
#include "net/tls.h"
#include "net/uring.h"
#include "receive/local.h"
#include "receive/receive_conn.h"

#define ACCEPT_RETRY_MS 100  /* after EMFILE and friends */
#define ACCEPT_LOG_MS   1000 /* at most one accept error line per this */
#define ACCEPT_SHED_MAX 64   /* clients refused per round at EMFILE */
#define BIND_WAIT_MS    5000 /* for a dead relay's listener to go */
#define BIND_STEP_MS    50
#define IPTAB_BUCKETS   4096

struct rthread;

struct listener {
	struct rthread *t;
	int fd;
	bool open;
	struct uring_op acc;   /* multishot accept */
	struct uring_op retry; /* timer before re-arming after an error */
	const char *text;      /* borrowed from the config */
	bool tls;              /* implicit TLS (RFC 8314) */
	bool local;            /* the local submission socket (local.h) */
	unsigned idx;          /* metrics: the listener label's index */
};

struct rthread {
	struct receive *r;
	unsigned idx;
	pthread_t th;
	bool started; /* pthread_create succeeded */
	struct uring_loop *l;
	struct chan *chan; /* queue answers and control messages */
	struct uring_op chan_rd;
	uint64_t chan_val;
	struct listener *ls;
	size_t nls, nls_open;
	int spare; /* a descriptor given back at EMFILE (accept_shed) */
	struct rconn_env env;       /* shutting/deadline flags live here */
	struct rconns *conns;       /* receive_conn.c */
	bool finishing;             /* loop is being wound down */
	struct uring_op sdt;        /* shutdown grace timer */
	struct limits_redis *redis; /* [limits] backend = redis; else NULL */
	struct rsnap *snap;         /* for new sessions (a reference); swapped
				 on RECEIVE_MSG_RELOAD only */
	int start_res;              /* 0 or -errno, set before start_sem post */
	char start_err[256];
};

/* Per client address counts, shared by every receive thread. */
struct ipent {
	struct ipent *next;       /* iptab.lock */
	uint8_t key[RCONN_IPKEY]; /* family byte + address; immutable */
	unsigned count;           /* iptab.lock: live connections */
};

struct iptab {
	pthread_mutex_t lock; /* protects every bucket and entry below */
	struct ipent *b[IPTAB_BUCKETS];
};

/*
 * What a new session gets, derived once per configuration snapshot: its
 * smtp_in_cfg (smtp_in borrows it for the session's life) and the server
 * TLS context. The startup one is r->boot (cfg NULL), which lives as long
 * as the stage. A reloaded one is attached to its snapshot
 * (config_attach) and lives exactly as long as that: whoever holds an
 * rsnap (a thread for new sessions, a connection for its own) holds a
 * reference to its snapshot (snap_ref/snap_unref), so the snapshot's
 * count is the only one. Connections made from a TLS context keep their
 * own reference to the OpenSSL context.
 */
struct rsnap {
	struct config *cfg;                 /* the snapshot; NULL: startup */
	const struct config_server *server; /* in cfg, or the startup one */
	struct smtp_in_cfg scfg;            /* hostname points into server */
	struct tls_ctx *tls;                /* owned; NULL: no STARTTLS */
	const struct dkim_table *dkim; /* the snapshot's; NULL: no signing */
	struct sender_policy *senders; /* owned; who may send as whom */
	struct limits *limits;         /* owned; NULL: no [limit] */
};

struct receive {
	/* the startup sections (borrowed): listeners, threads, inflight */
	const struct config_server *server;
	struct queue *q;
	struct rsnap boot;        /* the startup settings for sessions */
	struct auth_users *users; /* loaded, until the pool takes it */
	struct auth_pool *auth;   /* NULL: no users file, no AUTH */
	/* signing threads, when [dkim] keys were configured at start (a
	 * reload that adds the first keys signs on the receive threads) */
	struct dkim_pool *dkim_pool;
	/* the state of every [limit]: kept across reloads, shared by the
	 * threads (sharded locks, limits.h) */
	struct limits_store *limits;
	struct config_shared shared; /* [limits], from the startup config */
	struct rthread *th;
	unsigned nth;
	sem_t start_sem;
	atomic_uint nconns;            /* live connections, all threads */
	atomic_uint_fast64_t inflight; /* body bytes reserved */
	atomic_uint running;           /* threads not yet finished */
	_Atomic uint64_t acc_log_ms; /* mono ms of the last accept error line */
	atomic_ulong acc_errs;       /* accept errors since that line */
	atomic_ulong acc_shed;       /* clients refused since that line */
	struct iptab ip;
	struct local_acl *acl; /* NULL: no local socket (receive_local) */
};

/* RECEIVE_MSG_RELOAD: the new settings, for one thread (a reference). */
struct receive_reload_msg {
	struct chan_msg msg;
	struct rsnap *snap;
};

/* What a new session on t gets. */
static const struct config_server *
rs_server(const struct rthread *t)
{
	return t->snap->server;
}

static void thread_check_done(struct rthread *t);

/* A reference to sn is one to its snapshot (the startup one: none). */
static struct rsnap *
snap_ref(struct rsnap *sn)
{
	if (sn != NULL)
		(void)config_ref(sn->cfg);
	return sn;
}

static void
snap_unref(struct rsnap *sn)
{
	if (sn != NULL)
		config_unref(sn->cfg);
}

/* Run by the last config_unref of the snapshot sn is attached to. */
static void
snap_free(void *p)
{
	struct rsnap *sn = p;

	tls_ctx_free(sn->tls);
	sender_policy_free(sn->senders);
	limits_free(sn->limits);
	free(sn);
}

/* ---- per-address table ---- */

static void
ip_key(const struct sockaddr_storage *ss, uint8_t key[RCONN_IPKEY])
{
	memset(key, 0, RCONN_IPKEY);
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
ip_hash(const uint8_t key[RCONN_IPKEY])
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < RCONN_IPKEY; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % IPTAB_BUCKETS;
}

/* Count one more connection from key; false (nothing counted) when that
 * would exceed max. */
static bool
ip_acquire(struct iptab *tab, const uint8_t key[RCONN_IPKEY], unsigned max)
{
	size_t h = ip_hash(key);
	struct ipent *e;
	bool ok = true;

	pthread_mutex_lock(&tab->lock);
	for (e = tab->b[h]; e; e = e->next)
		if (memcmp(e->key, key, RCONN_IPKEY) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, RCONN_IPKEY);
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
ip_release(struct iptab *tab, const uint8_t key[RCONN_IPKEY])
{
	size_t h = ip_hash(key);
	struct ipent **pp, *e;

	pthread_mutex_lock(&tab->lock);
	for (pp = &tab->b[h]; (e = *pp) != NULL; pp = &e->next)
		if (memcmp(e->key, key, RCONN_IPKEY) == 0) {
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
	uint64_t max = r->server->max_inflight;
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

static bool
cb_room(void *arg, uint64_t size, uint64_t max_size)
{
	struct receive *r = arg;

	return queue_room_check(r->q, size, max_size) == 0;
}

/* ---- accepting ---- */

/* Over a limit: one line, written while the socket buffer is surely
 * empty, then close. No session, no stream. On an implicit-TLS listener
 * a plaintext line would be garbage to the client: just close. */
static void
reject(struct rthread *t, int fd, const char *addr, bool tls)
{
	char line[CONFIG_HOST_MAX + 64];
	int n;

	n = snprintf(line, sizeof(line),
	    "421 4.7.0 %s Too many connections\r\n", rs_server(t)->hostname);
	if (n > 0 && !tls)
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (log_debug_enabled())
		log_event("event=disconnect client=%s reason=limit", addr);
}

/*
 * Out of descriptors (EMFILE, ENFILE): the kernel cannot hand us the
 * clients waiting in the backlog, so they would hang until their own
 * timeout. Give back the spare descriptor kept for this, accept them one
 * by one into its slot, tell each 421 4.3.2 and close it, then take the
 * spare again. Another thread may grab the slot meanwhile: then the
 * accept fails too and we try again on the next round (the retry timer).
 * Returns the clients refused.
 */
static unsigned long
accept_shed(struct listener *ls)
{
	struct rthread *t = ls->t;
	char line[CONFIG_HOST_MAX + 80];
	unsigned long n = 0;
	int fd, len;

	len = snprintf(line, sizeof(line),
	    "421 4.3.2 %s Service temporarily unavailable, try again later\r\n",
	    rs_server(t)->hostname);
	if (t->spare >= 0)
		close(t->spare);
	while (
	    n < ACCEPT_SHED_MAX && (fd = accept4(ls->fd, NULL, NULL,
	                                SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (len > 0 && !ls->tls)
			(void)send(
			    fd, line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		n++;
	}
	t->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return n;
}

/* An accept failed: at most one line per ACCEPT_LOG_MS for all threads,
 * saying how many failed and how many clients got a 421 since the last
 * one (a line every retry would flood the log while out of fds). */
static void
accept_error_log(struct listener *ls, int res, unsigned long shed)
{
	struct receive *r = ls->t->r;
	uint64_t now = clock_mono_ms(), last;

	atomic_fetch_add(&r->acc_errs, 1);
	atomic_fetch_add(&r->acc_shed, shed);
	last = atomic_load(&r->acc_log_ms);
	if (last != 0 && now - last < ACCEPT_LOG_MS)
		return;
	if (!atomic_compare_exchange_strong(
	        &r->acc_log_ms, &last, now ? now : 1))
		return;
	log_warnx("event=accept-failed listen=%s error=\"%s\" errors=%lu "
	          "refused_421=%lu retry_ms=%d",
	    ls->text, strerror(-res), atomic_exchange(&r->acc_errs, 0),
	    atomic_exchange(&r->acc_shed, 0), ACCEPT_RETRY_MS);
}

/* The numeric address and port of the peer of fd; false when it has
 * gone already. */
static bool
peer_of(int fd, struct sockaddr_storage *ss, struct smtp_in_peer *peer)
{
	socklen_t sl = sizeof(*ss);

	memset(peer, 0, sizeof(*peer));
	if (getpeername(fd, (struct sockaddr *)ss, &sl) < 0)
		return false;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(
		    AF_INET, &sin->sin_addr, peer->addr, sizeof(peer->addr));
		peer->port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(
		    AF_INET6, &sin6->sin6_addr, peer->addr, sizeof(peer->addr));
		peer->port = ntohs(sin6->sin6_port);
	}
	return true;
}

/* The client address of a per-address key, as the leases know it (one
 * text for a v4-mapped address and its IPv4 form); false: not an IP. */
static bool
ipkey_text(const uint8_t key[RCONN_IPKEY], char *out, size_t len)
{
	if (key[0] != 4 && key[0] != 6)
		return false;
	return inet_ntop(key[0] == 4 ? AF_INET : AF_INET6, key + 1, out,
	           (socklen_t)len) != NULL;
}

/* [limit] max: one lease per connection of the client, for as long as a
 * session may last (then it expires by itself). false: refused, logged. */
static bool
conn_lease(struct rsnap *sn, const uint8_t key[RCONN_IPKEY], uint64_t ttl_ms)
{
	char addr[INET6_ADDRSTRLEN];
	struct limits_subject subj = {.client = addr};
	const char *name = "?";

	/* shared leases are taken by the connection (receive_conn.c) */
	if (!limits_leases(sn->limits) || sn->scfg.limits_shared ||
	    !ipkey_text(key, addr, sizeof(addr)))
		return true;
	if (limits_lease(sn->limits, &subj, limits_now(),
	        (ttl_ms + 60000) * 1000, &name))
		return true;
	log_event("event=rejected client=%s reason=connection_limit limit=%s",
	    addr, name);
	return false;
}

/* The connection's leases go back (with the snapshot it took them of). */
static void
conn_unlease(struct rsnap *sn, const uint8_t key[RCONN_IPKEY])
{
	char addr[INET6_ADDRSTRLEN];
	struct limits_subject subj = {.client = addr};

	if (limits_leases(sn->limits) && !sn->scfg.limits_shared &&
	    ipkey_text(key, addr, sizeof(addr)))
		limits_unlease(sn->limits, &subj, limits_now());
}

/* Count the connection fd from peer (per-address key) against the
 * limits, then hand it to the thread's connections with the settings of
 * now. */
static void
accept_open(struct listener *ls, int fd, struct smtp_in_peer *peer,
    const uint8_t key[RCONN_IPKEY])
{
	struct rthread *t = ls->t;
	struct receive *r = t->r;
	const struct config_server *cs = rs_server(t);
	struct rconn_start st;

	if (atomic_fetch_add(&r->nconns, 1) >= cs->max_connections) {
		atomic_fetch_sub(&r->nconns, 1);
		metrics_conn_refused(
		    ls->idx, METRICS_REFUSED_MAX_CONNECTIONS, 1);
		reject(t, fd, peer->addr, ls->tls);
		return;
	}
	if (!ip_acquire(&r->ip, key, cs->max_connections_per_ip)) {
		atomic_fetch_sub(&r->nconns, 1);
		metrics_conn_refused(ls->idx, METRICS_REFUSED_PER_IP, 1);
		reject(t, fd, peer->addr, ls->tls);
		return;
	}
	if (!conn_lease(t->snap, key, cs->session_timeout)) {
		ip_release(&r->ip, key);
		atomic_fetch_sub(&r->nconns, 1);
		metrics_conn_refused(ls->idx, METRICS_REFUSED_LIMIT, 1);
		reject(t, fd, peer->addr, ls->tls);
		return;
	}
	metrics_conn_open(ls->idx);
	st.listener = ls->idx;
	peer->tls = ls->tls;
	st.peer = peer;
	st.ipkey = key;
	st.scfg = &t->snap->scfg;
	st.tls = t->snap->tls;
	st.idle_ms = cs->idle_timeout;
	st.session_ms = cs->session_timeout;
	st.command_ms = cs->command_timeout;
	st.data_rate = cs->min_data_rate;
	/* the pause is for remote spam senders; a local one is not */
	st.greet_ms = peer->local ? 0 : cs->greet_pause;
	st.implicit = ls->tls;
	st.ref = snap_ref(t->snap);
	rconn_open(t->conns, fd, &st);
}

/* [limit] sections counting connections (by client or network): false
 * when one refuses this one, which is logged with its name. */
static bool
conn_limit_ok(struct rthread *t, const struct smtp_in_peer *peer)
{
	struct limits_subject subj = {.client = peer->addr};
	const char *name = "?";

	if (!limits_counts(t->snap->limits, CONFIG_LIMIT_CONNECTIONS) ||
	    limits_take(t->snap->limits, CONFIG_LIMIT_CONNECTIONS, &subj, 1,
	        limits_now(), &name))
		return true;
	log_event("event=rejected client=%s reason=rate_limit limit=%s "
	          "count=connections",
	    peer->addr, name);
	return false;
}

/* A TCP connection was accepted on ls. */
static void
accept_one(struct listener *ls, int fd)
{
	const struct config_server *cs = rs_server(ls->t);
	struct sockaddr_storage ss;
	struct smtp_in_peer peer;
	uint8_t key[RCONN_IPKEY];

	if (!peer_of(fd, &ss, &peer)) {
		close(fd); /* reset before we looked at it */
		return;
	}
	ip_key(&ss, key);
	peer.relay_allowed = config_net_match(cs->relay_networks,
	    cs->nrelay_networks, (const struct sockaddr *)&ss);
	if (!conn_limit_ok(ls->t, &peer)) {
		reject(ls->t, fd, peer.addr, ls->tls);
		return;
	}
	accept_open(ls, fd, &peer, key);
}

/* A local client: its uid is its "address" for the per-address cap. */
static void
accept_local(struct listener *ls, int fd)
{
	struct smtp_in_peer peer;
	uint8_t key[RCONN_IPKEY] = {1};

	if (!local_peer(fd, ls->t->r->acl, rs_server(ls->t)->hostname, &peer)) {
		close(fd);
		return;
	}
	memcpy(key + 1, &peer.uid, sizeof(peer.uid));
	accept_open(ls, fd, &peer, key);
}

/* rconn_env.unref: a reference kept for a signing job is let go. */
static void
conn_unref(void *arg, void *ref)
{
	(void)arg;
	snap_unref(ref);
}

/* rconn_env.gone: a connection was freed. */
static void
conn_gone(void *arg, const uint8_t ipkey[RCONN_IPKEY], void *ref)
{
	struct rthread *t = arg;

	ip_release(&t->r->ip, ipkey);
	conn_unlease(ref, ipkey);
	snap_unref(ref);
	atomic_fetch_sub(&t->r->nconns, 1);
	thread_check_done(t);
}

/* ---- listeners ---- */

static void listener_arm(struct listener *ls);

/* Close a listener once none of its ops is busy. */
static void
listener_close(struct listener *ls)
{
	if (ls->open && !uring_op_busy(&ls->acc) &&
	    !uring_op_busy(&ls->retry)) {
		close(ls->fd);
		ls->open = false;
		ls->t->nls_open--;
	}
}

static void
listener_acc_cb(struct uring_op *op, int res, unsigned flags,
    const uint8_t *data, size_t len)
{
	struct listener *ls = uring_container_of(op, struct listener, acc);
	struct rthread *t = ls->t;
	unsigned long shed;

	(void)data, (void)len;
	if (res >= 0) {
		if (t->env.shutting)
			close(res);
		else if (ls->local)
			accept_local(ls, res);
		else
			accept_one(ls, res);
	}
	if (flags & URING_F_MORE)
		return;
	if (t->env.shutting) {
		listener_close(ls);
		thread_check_done(t);
		return;
	}
	if (res < 0) {
		shed = res == -EMFILE || res == -ENFILE ? accept_shed(ls) : 0;
		metrics_conn_refused(ls->idx, METRICS_REFUSED_NO_FD, shed);
		accept_error_log(ls, res, shed);
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
	if (ls->t->env.shutting) {
		listener_close(ls);
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
sdt_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct rthread *t = uring_container_of(op, struct rthread, sdt);

	(void)flags, (void)data, (void)len;
	if (res == 0) {
		t->env.deadline = true;
		rconns_shutdown(t->conns);
	}
	thread_check_done(t);
}

static void
thread_shutdown(struct rthread *t, bool now)
{
	if (!t->env.shutting) {
		t->env.shutting = true;
		for (size_t i = 0; i < t->nls; i++) {
			uring_cancel(t->l, &t->ls[i].acc);
			uring_cancel(t->l, &t->ls[i].retry);
			listener_close(&t->ls[i]);
		}
		if (!now)
			uring_timeout(t->l, &t->sdt, RECEIVE_SHUTDOWN_GRACE_MS);
	}
	if (now) {
		t->env.deadline = true;
		uring_cancel(t->l, &t->sdt);
	}
	rconns_shutdown(t->conns);
	thread_check_done(t);
}

/* Wind down once nothing is left: no connection, no listener, no answer
 * owed by the queue or the auth pool (it would be sent to our chan). */
static void
thread_check_done(struct rthread *t)
{
	if (!t->env.shutting || rconns_live(t->conns) || t->nls_open ||
	    rconns_pending(t->conns))
		return;
	if (!t->finishing) {
		t->finishing = true;
		uring_cancel(t->l, &t->chan_rd);
		uring_cancel(t->l, &t->sdt);
		if (t->redis != NULL)
			limits_redis_stop(t->redis);
	}
	if (uring_loop_busy(t->l) == 0)
		uring_loop_stop(t->l);
}

static void
handle_msg(struct rthread *t, struct chan_msg *m)
{
	switch (m->type) {
	case QUEUE_DONE_SUBMIT:
		rconns_commit_done(t->conns, (struct queue_submit *)m);
		break;
	case AUTH_DONE_CHECK:
		rconns_auth_done(t->conns, (struct auth_req *)m);
		break;
	case DKIM_JOB_DONE:
		rconns_sign_done(t->conns, (struct dkim_job *)m);
		break;
	case RECEIVE_MSG_RELOAD: {
		struct receive_reload_msg *rm = (struct receive_reload_msg *)m;

		/* the safe point: sessions already open keep theirs */
		snap_unref(t->snap);
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

/* The shared limits' answers (limits_redis.h), on this thread. */
static bool
redis_answer(void *arg, uint64_t cookie, int res)
{
	struct rthread *t = arg;

	return rconns_redis_answer(t->conns, cookie, res);
}

static void
redis_stopped(void *arg)
{
	thread_check_done(arg);
}

static const struct limits_redis_cbs redis_cbs = {
    .answer = redis_answer, .stopped = redis_stopped};

static void *
thread_main(void *arg)
{
	struct rthread *t = arg;
	struct receive *r = t->r;
	struct uring_loop_opts o = {0};
	int res;

	res = uring_loop_new(&o, &t->l, t->start_err, sizeof(t->start_err));
	t->start_res = res;
	sem_post(&r->start_sem);
	if (res < 0) {
		atomic_fetch_sub(&r->running, 1);
		return NULL;
	}
	t->env.l = t->l;
	t->env.chan = t->chan;
	t->env.q = r->q;
	t->env.auth = r->auth;
	t->env.dkim = r->dkim_pool;
	t->env.gone = conn_gone;
	t->env.unref = conn_unref;
	t->env.arg = t;
	t->conns = rconns_new(&t->env);
	if (r->shared.backend == CONFIG_LIMITS_REDIS) {
		t->redis = limits_redis_new(t->l, &r->shared, &redis_cbs, t);
		t->env.redis = t->redis;
		t->env.nodes = r->shared.nodes;
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
		fatalx(
		    "receive thread %u: io_uring: %s", t->idx, strerror(-res));
	if (rconns_stale(t->conns))
		log_debug("receive thread %u: %" PRIu64 " stale commit or "
		          "auth answers",
		    t->idx, rconns_stale(t->conns));
	limits_redis_free(t->redis);
	t->redis = NULL;
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

	fd = socket(
	    a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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

/* The session settings of sn from [server], [auth] and [delivery]
 * allow_address_literals; sn->tls is set. */
static void
snap_fill(struct receive *r, struct rsnap *sn, const struct config_server *cs,
    const struct config_auth *ca, bool literals, bool auth_on)
{
	sn->server = cs;
	sn->scfg.hostname = cs->hostname;
	sn->scfg.max_message_size = cs->max_message_size;
	sn->scfg.max_recipients = cs->max_recipients;
	sn->scfg.max_errors = cs->max_errors;
	sn->scfg.bare_reject = cs->bare_newline == CONFIG_BARE_REJECT;
	sn->scfg.nul_strip = cs->nul_in_body == CONFIG_NUL_STRIP;
	sn->scfg.tls_available = sn->tls != NULL;
	sn->scfg.auth_available = auth_on;
	sn->scfg.auth_require_tls = ca->require_tls;
	sn->scfg.auth_max_failures = ca->max_failures;
	sn->scfg.allow_address_literals = literals;
	/* the connection greets (receive_conn.c): after greet_pause, or
	 * at once when no early talker's input is there yet */
	sn->scfg.greet_wait = true;
	sn->scfg.id_new = cb_id_new;
	sn->scfg.id_arg = r;
	sn->scfg.inflight_reserve = cb_inflight_reserve;
	sn->scfg.inflight_release = cb_inflight_release;
	sn->scfg.inflight_arg = r;
	sn->scfg.room = cb_room;
	sn->scfg.room_arg = r;
	sn->scfg.dkim = sn->dkim;
	sn->scfg.senders = sn->senders;
	sn->scfg.limits = sn->limits;
	sn->scfg.limits_shared = r->shared.backend == CONFIG_LIMITS_REDIS;
}

/*
 * One address, bound exclusively. A relay killed a moment ago may still
 * hold it: the kernel releases a dead process's io_uring, and the
 * listeners its requests hold, asynchronously, some milliseconds after
 * the process is gone. So EADDRINUSE is retried every BIND_STEP_MS for
 * BIND_WAIT_MS, with one line saying so; a port held by a live process
 * still fails, BIND_WAIT_MS later.
 *
 * Why not bind beside the lingering socket with SO_REUSEPORT: the kernel
 * would spread new connections over both, and those queued on the dead
 * one are reset when it is released: lost, not delayed.
 */
static int
listen_probe_one(const struct config_addr *a, char *err, size_t errlen)
{
	const struct timespec step = {0, BIND_STEP_MS * 1000000L};
	uint64_t start = clock_mono_ms();
	bool said = false;
	int res, fd;

	while ((res = listen_one(a, false, &fd, err, errlen)) == -EADDRINUSE &&
	       clock_mono_ms() - start < BIND_WAIT_MS) {
		if (!said)
			log_warnx("event=listen-busy listen=%s wait_ms=%d "
			          "note=\"address in use; a relay that just "
			          "died may still hold it\"",
			    a->text, BIND_WAIT_MS);
		said = true;
		(void)nanosleep(&step, NULL);
	}
	if (res == 0)
		close(fd);
	return res;
}

/* SO_REUSEPORT would let us share a port with another process of the
 * same user (another mta): probe each address exclusively first, so a
 * busy port is an error, not a silent split. */
static int
listen_probe(const struct config_server *cs, char *err, size_t errlen)
{
	size_t nls = cs->nlisten + cs->nlisten_tls;
	bool ltls;
	int res;

	if (nls == 0) {
		snprintf(err, errlen, "listen: no address configured");
		return -EINVAL;
	}
	for (size_t i = 0; i < nls; i++)
		if ((res = listen_probe_one(
		         listen_addr(cs, i, &ltls), err, errlen)) < 0)
			return res;
	return 0;
}

/* Thread i's chan and listeners (one per address). */
static int
thread_init(struct receive *r, unsigned i, char *err, size_t errlen)
{
	const struct config_server *cs = r->server;
	struct rthread *t = &r->th[i];
	size_t nls = cs->nlisten + cs->nlisten_tls;
	int res;

	t->r = r;
	t->idx = i;
	t->snap = &r->boot;
	t->chan = chan_new();
	/* no descriptor is left for it at EMFILE: taken now */
	if ((t->spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		res = -errno;
		snprintf(err, errlen, "/dev/null: %s", strerror(-res));
		return res;
	}
	t->ls = xcalloc(nls, sizeof(*t->ls));
	for (size_t j = 0; j < nls; j++) {
		struct listener *ls = &t->ls[j];
		const struct config_addr *a = listen_addr(cs, j, &ls->tls);

		ls->t = t;
		ls->text = a->text;
		ls->idx = (unsigned)j;
		metrics_listener_name(ls->idx, a->text);
		if ((res = listen_one(a, true, &ls->fd, err, errlen)) < 0)
			return res;
		ls->open = true;
		t->nls++;
		t->nls_open++;
	}
	return 0;
}

/* The [tls] context and the [auth] users, when configured; on failure
 * neither (and one line in err). */
static int
load_tls_users(const struct config_tls *ct, const struct config_auth *ca,
    bool want_users, struct tls_ctx **tls, struct auth_users **users, char *err,
    size_t errlen)
{
	char e2[512];
	int res;

	*tls = NULL;
	*users = NULL;
	if (ct->certificate[0] != '\0' &&
	    (res = tls_ctx_server_new(ct, tls, err, errlen)) < 0)
		return res;
	if (want_users && ca->users[0] != '\0' &&
	    (res = auth_users_load(ca->users, users, e2, sizeof(e2))) < 0) {
		snprintf(err, errlen, "auth: %s", e2);
		tls_ctx_free(*tls);
		*tls = NULL;
		return res;
	}
	return 0;
}

/* The sender policy of [server] and [auth]; one line in err if bad. */
static int
senders_load(const struct config_server *cs, const struct config_auth *ca,
    struct sender_policy **out, char *err, size_t errlen)
{
	struct sender_policy_cfg c = {
	    .relay_domains = cs->relay_sender_domains,
	    .auth_null = ca->null_sender,
	    .relay_null = cs->relay_null_sender,
	    .check_from = cs->check_from_header,
	};
	char e2[512];
	int res;

	if ((res = sender_policy_load(ca->senders, &c, out, e2, sizeof(e2))) <
	    0)
		snprintf(err, errlen, "senders: %s", e2);
	return res;
}

static int
listen_tls_check(const struct config_server *cs, const struct config_tls *ct,
    char *err, size_t errlen)
{
	if (cs->nlisten_tls > 0 && ct->certificate[0] == '\0') {
		snprintf(err, errlen, "listen_tls %s: needs [tls] certificate",
		    cs->listen_tls[0].text);
		return -EINVAL;
	}
	return 0;
}

int
receive_check(const struct config_server *cs, const struct config_tls *ct,
    const struct config_auth *ca, char *err, size_t errlen)
{
	struct tls_ctx *tls;
	struct auth_users *users;
	int res;

	struct sender_policy *sp;

	if ((res = listen_tls_check(cs, ct, err, errlen)) < 0 ||
	    (res = senders_load(cs, ca, &sp, err, errlen)) < 0)
		return res;
	sender_policy_free(sp);
	if ((res = load_tls_users(ct, ca, true, &tls, &users, err, errlen)) < 0)
		return res;
	tls_ctx_free(tls);
	if (users != NULL)
		auth_users_unref(users);
	return 0;
}

int
receive_new(const struct config_server *cs, const struct config_tls *ct,
    const struct config_auth *ca, const struct config_delivery *dl,
    const struct dkim_table *dkim, struct receive **out, char *err,
    size_t errlen)
{
	struct receive *r;
	struct tls_ctx *tls;
	struct auth_users *users;
	struct sender_policy *sp;
	int res;

	if ((res = listen_tls_check(cs, ct, err, errlen)) < 0 ||
	    (res = listen_probe(cs, err, errlen)) < 0 ||
	    (res = senders_load(cs, ca, &sp, err, errlen)) < 0)
		return res;
	/* The TLS context and the users snapshot are built once here and
	 * are read-only afterwards: every thread uses them at once. */
	if ((res = load_tls_users(ct, ca, true, &tls, &users, err, errlen)) <
	    0) {
		sender_policy_free(sp);
		return res;
	}
	if (users != NULL && tls == NULL && ca->require_tls)
		log_warnx("auth: require_tls = yes and no [tls] certificate: "
		          "AUTH is never offered");
	r = xcalloc(1, sizeof(*r));
	r->server = cs;
	r->nth = cs->threads ? cs->threads : 1;
	r->boot.tls = tls;
	r->boot.dkim = dkim;
	r->boot.senders = sp;
	r->limits = limits_store_new();
	r->users = users;
	pthread_mutex_init(&r->ip.lock, NULL);
	sem_init(&r->start_sem, 0, 0);
	snap_fill(
	    r, &r->boot, cs, ca, dl->allow_address_literals, users != NULL);
	r->th = xcalloc(r->nth, sizeof(*r->th));
	for (unsigned i = 0; i < r->nth; i++)
		r->th[i].spare = -1;
	for (unsigned i = 0; i < r->nth; i++)
		if ((res = thread_init(r, i, err, errlen)) < 0) {
			receive_free(r);
			return res;
		}
	*out = r;
	return 0;
}

/* The signing pool's size: the CPUs we may run on, at least nth. */
static unsigned
signer_threads(unsigned nth)
{
	cpu_set_t set;
	unsigned n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	if (n > 64)
		n = 64;
	return n > nth ? n : nth;
}

int
receive_local(
    struct receive *r, const struct config_local *lc, char *err, size_t errlen)
{
	int fd, res;

	if ((res = local_acl_new(lc, &r->acl, err, errlen)) < 0)
		return res;
	if ((res = local_listen(lc->socket, &fd, err, errlen)) < 0)
		return res;
	/* One socket, a descriptor of it per thread: each thread arms and
	 * closes its own, and the kernel hands each connection to one. */
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];
		struct listener *ls;
		int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (dfd < 0) {
			res = -errno;
			(void)snprintf(err, errlen, "local socket %s: %s",
			    lc->socket, strerror(errno));
			break;
		}
		t->ls = xreallocarray(t->ls, t->nls + 1, sizeof(*t->ls));
		ls = &t->ls[t->nls++];
		memset(ls, 0, sizeof(*ls));
		ls->t = t;
		ls->fd = dfd;
		ls->open = true;
		ls->text = lc->socket;
		ls->local = true;
		ls->idx =
		    (unsigned)(r->server->nlisten + r->server->nlisten_tls);
		metrics_listener_name(ls->idx, "local");
		t->nls_open++;
	}
	close(fd);
	return res;
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
	/* So is signing: RSA-2048 is hundreds of microseconds a message,
	 * which must not stall a loop's other sessions. One thread per CPU,
	 * not per receive thread: with RSA, signing is what limits the
	 * rate, and it may use every core (idle workers cost nothing). */
	if (r->boot.dkim != NULL)
		r->dkim_pool = dkim_pool_new(signer_threads(r->nth));
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];

		atomic_fetch_add(&r->running, 1);
		if ((res = pthread_create(&t->th, NULL, thread_main, t)) != 0) {
			atomic_fetch_sub(&r->running, 1);
			snprintf(
			    err, errlen, "receive thread: %s", strerror(res));
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
	dkim_pool_free(r->dkim_pool); /* before the chans it answers on */
	auth_users_unref(r->users);
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];
		struct chan_msg *m, *next;

		rconns_free(t->conns);
		snap_unref(t->snap);
		if (t->spare >= 0)
			close(t->spare);
		for (size_t j = 0; j < t->nls; j++)
			if (t->ls[j].open)
				close(t->ls[j].fd);
		free(t->ls);
		if (t->chan) {
			for (m = chan_take(t->chan); m; m = next) {
				next = m->next;
				if (m->type == QUEUE_DONE_SUBMIT)
					queue_submit_free(
					    (struct queue_submit *)m);
				else if (m->type == AUTH_DONE_CHECK)
					auth_req_free((struct auth_req *)m);
				else if (m->type == DKIM_JOB_DONE)
					dkim_job_free((struct dkim_job *)m);
				else if (m->type == RECEIVE_MSG_RELOAD) {
					snap_unref(
					    ((struct receive_reload_msg *)m)
					        ->snap);
					free(m);
				} else
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
	local_acl_free(r->acl);
	tls_ctx_free(r->boot.tls);
	sender_policy_free(r->boot.senders);
	limits_free(r->boot.limits);
	limits_store_free(r->limits);
	free(r);
}

void
receive_limits(struct receive *r, const struct config *c)
{
	MTA_ASSERT(r->boot.limits == NULL);
	r->boot.limits = limits_new(c, r->limits);
	r->boot.scfg.limits = r->boot.limits;
	r->shared = c->shared;
	r->boot.scfg.limits_shared = c->shared.backend == CONFIG_LIMITS_REDIS;
}

/* ---- reload (SIGHUP; main thread) ---- */

int
receive_reload(struct receive *r, struct config *snap, char *err, size_t errlen)
{
	const struct config_server *cs = &snap->server;
	const struct config_auth *ca = &snap->auth;
	struct tls_ctx *tls;
	struct auth_users *users;
	struct rsnap *sn;
	int res;

	/* What can fail comes first: on failure nothing has changed. The
	 * listeners are the startup ones (they cannot change live). */
	if (r->server->nlisten_tls > 0 && snap->tls.certificate[0] == '\0') {
		snprintf(err, errlen, "listen_tls %s: needs [tls] certificate",
		    r->server->listen_tls[0].text);
		return -EINVAL;
	}
	struct sender_policy *sp;

	if ((res = senders_load(cs, ca, &sp, err, errlen)) < 0)
		return res;
	if ((res = load_tls_users(&snap->tls, ca, r->auth != NULL, &tls, &users,
	         err, errlen)) < 0) {
		sender_policy_free(sp);
		return res;
	}
	/* XXX the auth pool is started with the stage, only when a users
	 * file was set then */
	if (ca->users[0] != '\0' && r->auth == NULL)
		log_event("event=reload-ignored key=auth.users reason=\"AUTH "
		          "was off at start; restart to enable it\"");
	sn = xcalloc(1, sizeof(*sn));
	sn->cfg = snap;
	sn->tls = tls;
	sn->dkim = dkim_table_of(snap); /* serve.c attached it */
	sn->senders = sp;
	sn->limits = limits_new(snap, r->limits);
	snap_fill(r, sn, cs, ca, snap->delivery.allow_address_literals,
	    r->auth != NULL && ca->users[0] != '\0');
	/* not shared yet (serve.c hands it here first): it may still be
	 * written to; from here on sn lives as long as snap */
	config_attach(snap, sn, snap_free);
	/* checks in progress finish with the old users */
	if (users != NULL)
		auth_pool_users_swap(r->auth, users);
	for (unsigned i = 0; i < r->nth; i++) {
		struct receive_reload_msg *m;

		if (!r->th[i].started || r->th[i].start_res < 0)
			continue;
		m = xcalloc(1, sizeof(*m));
		m->msg.type = RECEIVE_MSG_RELOAD;
		m->snap = snap_ref(sn);
		chan_send(r->th[i].chan, &m->msg);
	}
	return 0;
}
