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
#include "receive/receive.h"

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
#include "auth/auth.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"
#include "net/tls.h"
#include "net/uring.h"
#include "receive/receive_int.h"

/* A reference to sn is one to its snapshot (the startup one: none). */
struct rsnap *
receive_snap_ref(struct rsnap *sn)
{
	if (sn != NULL)
		(void)config_ref(sn->cfg);
	return sn;
}

void
receive_snap_unref(struct rsnap *sn)
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
	free(sn);
}

/* ---- per-address table ---- */

void
receive_ip_key(const struct sockaddr_storage *ss, uint8_t key[17])
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
bool
receive_ip_acquire(struct iptab *tab, const uint8_t key[17], unsigned max)
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

void
receive_ip_release(struct iptab *tab, const uint8_t key[17])
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
			receive_conn_new(ls, res);
	}
	if (flags & URING_F_MORE)
		return;
	if (t->shutting) {
		if (ls->open) {
			close(ls->fd);
			ls->open = false;
			t->nls_open--;
		}
		receive_thread_check_done(t);
		return;
	}
	if (res < 0) {
		log_warnx(
		    "receive: accept on %s: %s", ls->text, strerror(-res));
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
		receive_thread_check_done(ls->t);
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
			receive_conn_act(c, smtp_in_shutdown(c->s, &c->out));
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
	receive_thread_check_done(t);
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
	receive_thread_check_done(t);
}

/* Wind down once nothing is left: no connection, no listener, no answer
 * owed by the queue or the auth pool (it would be sent to our chan). */
void
receive_thread_check_done(struct rthread *t)
{
	if (!t->shutting || t->nconns || t->nls_open || t->commits || t->auths)
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
		struct conn *c = receive_conn_lookup(t, m->reqid);

		t->commits--;
		if (c == NULL || !c->committing || c->closing) {
			t->stale++;
			if (c)
				c->committing = false;
			queue_submit_free(req);
			break;
		}
		c->committing = false;
		receive_conn_act(c, smtp_in_commit_done(c->s, req, &c->out));
		break;
	}
	case AUTH_DONE_CHECK: {
		struct auth_req *req = (struct auth_req *)m;
		struct conn *c = receive_conn_lookup(t, m->reqid);
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
			receive_conn_act(
			    c, smtp_in_auth_done(c->s, true, &c->out));
		} else {
			/* authing stays set: conn_dly_cb answers. */
			uring_timeout(t->l, &c->dly, AUTH_FAIL_DELAY_MS);
		}
		break;
	}
	case RECEIVE_MSG_RELOAD: {
		struct receive_reload_msg *rm = (struct receive_reload_msg *)m;

		/* the loop boundary: sessions already open keep theirs */
		receive_snap_unref(t->snap);
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
	receive_thread_check_done(t);
}

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
	if (t->stale)
		log_debug("receive thread %u: %" PRIu64 " stale commit or "
		          "auth answers",
		    t->idx, t->stale);
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

/* The session settings of sn from [server] and [auth]; sn->tls is set. */
static void
snap_fill(struct receive *r, struct rsnap *sn, const struct config_server *cs,
    const struct config_auth *ca, bool auth_on)
{
	sn->server = cs;
	sn->scfg.hostname = cs->hostname;
	sn->scfg.max_message_size = cs->max_message_size;
	sn->scfg.max_recipients = cs->max_recipients;
	sn->scfg.max_errors = cs->max_errors;
	sn->scfg.tls_available = sn->tls != NULL;
	sn->scfg.auth_available = auth_on;
	sn->scfg.auth_require_tls = ca->require_tls;
	sn->scfg.auth_max_failures = ca->max_failures;
	sn->scfg.id_new = cb_id_new;
	sn->scfg.id_arg = r;
	sn->scfg.inflight_reserve = cb_inflight_reserve;
	sn->scfg.inflight_release = cb_inflight_release;
	sn->scfg.inflight_arg = r;
}

/* SO_REUSEPORT would let us share a port with another process of the
 * same user (another mta): probe each address exclusively first, so a
 * busy port is an error, not a silent split. */
static int
listen_probe(const struct config_server *cs, char *err, size_t errlen)
{
	size_t nls = cs->nlisten + cs->nlisten_tls;
	bool ltls;
	int res, fd;

	if (nls == 0) {
		snprintf(err, errlen, "listen: no address configured");
		return -EINVAL;
	}
	for (size_t i = 0; i < nls; i++) {
		if ((res = listen_one(listen_addr(cs, i, &ltls), false, &fd,
		         err, errlen)) < 0)
			return res;
		close(fd);
	}
	return 0;
}

/* Thread i's chan, scratch buffer and listeners (one per address). */
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
	buf_init(&t->pin, PLAIN_CHUNK);
	t->ls = xcalloc(nls, sizeof(*t->ls));
	for (size_t j = 0; j < nls; j++) {
		struct listener *ls = &t->ls[j];
		const struct config_addr *a = listen_addr(cs, j, &ls->tls);

		ls->t = t;
		ls->text = a->text;
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

int
receive_new(const struct config_server *cs, const struct config_tls *ct,
    const struct config_auth *ca, struct receive **out, char *err,
    size_t errlen)
{
	struct receive *r;
	struct tls_ctx *tls;
	struct auth_users *users;
	int res;

	if (cs->nlisten_tls > 0 && ct->certificate[0] == '\0') {
		snprintf(err, errlen, "listen_tls %s: needs [tls] certificate",
		    cs->listen_tls[0].text);
		return -EINVAL;
	}
	if ((res = listen_probe(cs, err, errlen)) < 0)
		return res;
	/* The TLS context and the users snapshot are built once here and
	 * are read-only afterwards: every thread uses them at once. */
	if ((res = load_tls_users(ct, ca, true, &tls, &users, err, errlen)) < 0)
		return res;
	if (users != NULL && tls == NULL && ca->require_tls)
		log_warnx("auth: require_tls = yes and no [tls] certificate: "
		          "AUTH is never offered");
	r = xcalloc(1, sizeof(*r));
	r->server = cs;
	r->nth = cs->threads ? cs->threads : 1;
	r->boot.tls = tls;
	r->users = users;
	pthread_mutex_init(&r->ip.lock, NULL);
	sem_init(&r->start_sem, 0, 0);
	snap_fill(r, &r->boot, cs, ca, users != NULL);
	r->th = xcalloc(r->nth, sizeof(*r->th));
	for (unsigned i = 0; i < r->nth; i++)
		if ((res = thread_init(r, i, err, errlen)) < 0) {
			receive_free(r);
			return res;
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
	auth_users_unref(r->users);
	for (unsigned i = 0; i < r->nth; i++) {
		struct rthread *t = &r->th[i];
		struct chan_msg *m, *next;

		buf_fini(&t->pin);
		receive_snap_unref(t->snap);
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
					receive_snap_unref(
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
	tls_ctx_free(r->boot.tls);
	free(r);
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
	if ((res = load_tls_users(&snap->tls, ca, r->auth != NULL, &tls, &users,
	         err, errlen)) < 0)
		return res;
	/* XXX the auth pool is started with the stage, only when a users
	 * file was set then */
	if (ca->users[0] != '\0' && r->auth == NULL)
		log_event("event=reload-ignored key=auth.users reason=\"AUTH "
		          "was off at start; restart to enable it\"");
	sn = xcalloc(1, sizeof(*sn));
	sn->cfg = snap;
	sn->tls = tls;
	snap_fill(r, sn, cs, ca, r->auth != NULL && ca->users[0] != '\0');
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
		m->snap = receive_snap_ref(sn);
		chan_send(r->th[i].chan, &m->msg);
	}
	return 0;
}
