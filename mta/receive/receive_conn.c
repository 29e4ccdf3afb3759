/* SPDX-License-Identifier: ISC */
/*
 * receive_conn.c - one receive connection, on its receive thread: the
 * transport (plain or TLS), the smtp_in actions, its three ops and how it
 * closes. The thread, its listeners and the limits are receive.c's; the
 * design (ops, backpressure, slots and generations, STARTTLS and AUTH) is
 * described at the top of receive.c.
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

/* ---- connections ---- */

struct conn *
receive_conn_lookup(struct rthread *t, uint64_t reqid)
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
	receive_snap_unref(c->snap);
	c->snap = NULL;
	close(c->fd);
	c->fd = -1;
	buf_fini(&c->out);
	buf_fini(&c->wbuf);
	receive_ip_release(&t->r->ip, c->ipkey);
	atomic_fetch_sub(&t->r->nconns, 1);
	c->live = false;
	c->gen++;
	c->next_free = t->free;
	t->free = c;
	t->nconns--;
	receive_thread_check_done(t);
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
		n = tls_conn_write(
		    c->tls, buf_peek(&c->out), buf_avail(&c->out));
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
void
receive_conn_flush(struct conn *c)
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
	uring_send(
	    c->t->l, &c->wr, c->fd, buf_peek(&c->wbuf), buf_avail(&c->wbuf));
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
	receive_conn_begin_close(c, "tls", false);
}

/* The handshake has just completed. */
static void
conn_tls_up(struct conn *c)
{
	struct tls_info ti;

	if (log_debug_enabled()) {
		tls_conn_info(c->tls, &ti);
		log_event("event=tls client=%s mode=%s version=%s cipher=%s "
		          "bits=%d reused=%s",
		    c->addr, c->implicit ? "implicit" : "starttls", ti.version,
		    ti.cipher, ti.bits, ti.reused ? "yes" : "no");
	}
	if (c->implicit)
		receive_conn_flush(c); /* the greeting, held until now */
	else
		receive_conn_act(c, smtp_in_tls_done(c->s, true, &c->out));
}

/*
 * Drive the TLS layer after ciphertext came in, or when the session is
 * ready for input again: finish the handshake, then decrypt at most
 * PLAIN_CHUNK at a time and feed it to the session, only while the
 * session takes input and the peer reads its replies. Returns true when
 * everything fed so far is used up and the socket must be read for more.
 * receive_conn_act() calls back in here through
 * receive_conn_want_read(); `pumping` turns that into a no-op and this
 * loop goes on instead.
 */
bool
receive_conn_tls_pump(struct conn *c)
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
			receive_conn_act(c, smtp_in_feed(c->s, buf_peek(pin),
			                        buf_avail(pin), &c->out));
			continue;
		}
		if (r == -EAGAIN)
			need = true;
		else if (r == 0)
			receive_conn_begin_close(
			    c, "eof", true); /* close_notify */
		else
			conn_tls_failed(c);
		break;
	}
out:
	buf_reset(pin);
	c->pumping = false;
	if (!c->closing)
		receive_conn_flush(c); /* handshake records, tickets, alerts */
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
void
receive_conn_want_read(struct conn *c)
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
		if (!receive_conn_tls_pump(c) || c->closing)
			return;
		break;
	}
	uring_recv(c->t->l, &c->rd, c->fd, false);
}

/* Transport in: bytes from the socket to the session. */
void
receive_conn_input(struct conn *c, const uint8_t *data, size_t len)
{
	switch (c->xport) {
	case XPORT_PLAIN:
		receive_conn_act(c, smtp_in_feed(c->s, data, len, &c->out));
		break;
	case XPORT_STARTTLS:
		/* Never read in this state (conn_want_read). */
		MTA_ASSERT(0);
		break;
	case XPORT_TLS:
		/* We only read once the TLS layer has used up what it had,
		 * so this stays far below TLS_IN_MAX. */
		if (tls_conn_feed(c->tls, data, len) < 0) {
			receive_conn_begin_close(c, "tls input overflow", true);
			return;
		}
		receive_conn_want_read(c);
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
void
receive_conn_act(struct conn *c, enum smtp_in_action a)
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
		 * out in plaintext, then receive_conn_want_read() starts TLS. */
		MTA_ASSERT(c->xport == XPORT_PLAIN);
		c->xport = XPORT_STARTTLS;
		break;
	case SMTP_IN_AUTH:
		conn_auth(c);
		break;
	case SMTP_IN_CLOSE:
		break;
	}
	if (a == SMTP_IN_READ && t->shutting && !c->committing && !c->authing &&
	    (t->deadline || !smtp_in_busy(c->s))) {
		a = smtp_in_shutdown(c->s, &c->out);
		c->reason = "shutdown";
	}
	receive_conn_flush(c);
	if (a == SMTP_IN_CLOSE) {
		receive_conn_begin_close(
		    c, c->reason ? c->reason : "closed", false);
		return;
	}
	receive_conn_want_read(c);
}

void
receive_conn_begin_close(struct conn *c, const char *reason, bool discard)
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
		receive_conn_flush(
		    c); /* a pending alert, or our close_notify */
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
		receive_conn_begin_close(c, "eof", true);
		return;
	}
	if (res < 0) {
		receive_conn_begin_close(
		    c, res == -ECONNRESET ? "reset" : "read error", true);
		return;
	}
	c->idle_dl = clock_mono_ms() + rs_idle(c);
	receive_conn_input(c, data, len);
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
			receive_conn_begin_close(c,
			    res == -ECONNRESET || res == -EPIPE ? "reset"
			                                        : "write error",
			    true);
		else {
			c->discard = true;
			conn_maybe_free(c);
		}
		return;
	}
	if (c->closing) {
		if (!c->discard)
			receive_conn_flush(c);
		if (!uring_op_busy(&c->wr))
			uring_cancel(c->t->l, &c->tmo); /* linger no more */
		conn_maybe_free(c);
		return;
	}
	receive_conn_flush(c);
	receive_conn_want_read(c);
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
		uring_timeout(l, &c->tmo, now < dl ? dl - now : rs_idle(c));
		return;
	}
	c->reason = "timeout";
	receive_conn_act(c, smtp_in_timeout(c->s, &c->out));
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
	receive_conn_act(c, smtp_in_auth_done(c->s, false, &c->out));
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
		t->slots =
		    xreallocarray(t->slots, t->capslots, sizeof(*t->slots));
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

	n = snprintf(line, sizeof(line),
	    "421 4.7.0 %s Too many connections\r\n", rs_server(t)->hostname);
	if (n > 0 && !tls)
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (log_debug_enabled())
		log_event("event=disconnect client=%s reason=limit", addr);
}

void
receive_conn_new(struct listener *ls, int fd)
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

		inet_ntop(
		    AF_INET, &sin->sin_addr, peer.addr, sizeof(peer.addr));
		peer.port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)&ss;

		inet_ntop(
		    AF_INET6, &sin6->sin6_addr, peer.addr, sizeof(peer.addr));
		peer.port = ntohs(sin6->sin6_port);
	}
	if (atomic_fetch_add(&r->nconns, 1) >= cs->max_connections) {
		atomic_fetch_sub(&r->nconns, 1);
		reject(t, fd, peer.addr, ls->tls);
		return;
	}
	receive_ip_key(&ss, key);
	if (!receive_ip_acquire(&r->ip, key, cs->max_connections_per_ip)) {
		atomic_fetch_sub(&r->nconns, 1);
		reject(t, fd, peer.addr, ls->tls);
		return;
	}
	peer.relay_allowed = config_net_match(cs->relay_networks,
	    cs->nrelay_networks, (const struct sockaddr *)&ss);
	peer.tls = ls->tls;

	c = conn_alloc(t);
	c->fd = fd;
	c->snap = receive_snap_ref(t->snap);
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
	receive_conn_act(c, SMTP_IN_READ);
}
