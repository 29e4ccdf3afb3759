/* SPDX-License-Identifier: ISC */
/*
 * stream.c - one connection over the thread's uring loop: the fd, the
 * multishot recv and its flow control, one send in flight, TLS over
 * memory buffers, the STARTTLS switch, timers, and the one close path.
 * The design and the contract are in stream.h. Runs on the thread of the
 * stream's loop.
 *
 * Three ops: rd (multishot recv), wr (the connect, then one send at a
 * time), tmo (one lazy timer for every deadline: moving a deadline does
 * not touch it; when it fires early it re-arms for the rest). Every way
 * out goes through stream_begin_close(), and the stream is released only
 * from an op's final callback once none is busy, so `closed` never runs
 * inside a call from the user.
 */
#include "net/stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "net/tls.h"
#include "net/uring.h"

#define FEED_CHUNK 16384 /* ciphertext handed to the TLS layer at once */
#define BUF_KEEP   4096  /* default: shrink idle buffers bigger than this */

static void stream_kick(struct stream *s);
static void stream_begin_close(
    struct stream *s, const char *reason, bool discard);
static void timer_arm(struct stream *s);

static uint64_t
min_dl(uint64_t a, uint64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

static void
buf_release(const struct stream *s, struct buf *b)
{
	if (buf_avail(b) > 0)
		return;
	if (b->cap > s->keep)
		buf_fini(b);
	else
		buf_reset(b);
}

size_t
stream_unsent(const struct stream *s)
{
	size_t t = 0;

	if (s->tls != NULL)
		(void)tls_conn_pending_out(s->tls, &t);
	return buf_avail(&s->out) + buf_avail(&s->wbuf) + t;
}

/* Input is not offered to the user now. */
static bool
in_held(const struct stream *s)
{
	return s->paused || s->closing || s->tls_wait || s->connecting ||
	       stream_unsent(s) > STREAM_OUT_HIWAT;
}

/* Ciphertext may go into the TLS layer: always for the handshake, then
 * only while input is taken, so that what a held stream keeps stays in
 * `in` where check_end() sees it. */
static bool
tls_may_feed(const struct stream *s)
{
	return !s->tls_up || !in_held(s);
}

/* ---- release ---- */

static void
stream_maybe_free(struct stream *s)
{
	const struct stream_cbs *cbs = s->cbs;
	void *user = s->user;
	int fd = s->fd;

	if (!s->open || !s->closing || uring_op_busy(&s->rd) ||
	    uring_op_busy(&s->wr) || uring_op_busy(&s->tmo))
		return;
	s->open = false;
	tls_conn_free(s->tls);
	s->tls = NULL;
	buf_fini(&s->in);
	buf_fini(&s->pin);
	buf_fini(&s->out);
	buf_fini(&s->wbuf);
	s->fd = -1;
	cbs->closed(s, user, s->reason ? s->reason : "closed");
	/* s may be gone now */
	if (fd >= 0)
		close(fd);
}

/* ---- output ---- */

/*
 * Plaintext into the TLS layer, as much as it takes (the rest goes after
 * the next send). Nothing can be encrypted before the handshake is done:
 * an implicit-TLS greeting waits here. Once closing and everything is
 * encrypted, queue the close_notify.
 */
static void
tls_encrypt(struct stream *s)
{
	ssize_t n;
	int rc;

	if (!tls_conn_handshake_done(s->tls))
		return;
	while (buf_avail(&s->out) > 0) {
		n = tls_conn_write(
		    s->tls, buf_peek(&s->out), buf_avail(&s->out));
		if (n > 0) {
			buf_consume(&s->out, (size_t)n);
			continue;
		}
		if (n != -ENOBUFS) /* broken or shut: nothing more goes */
			buf_reset(&s->out);
		break;
	}
	if (buf_avail(&s->out) == 0)
		buf_reset(&s->out);
	if (s->closing && !s->discard && !s->tls_shut &&
	    buf_avail(&s->out) == 0) {
		s->tls_shut = true;
		rc = tls_conn_close(s->tls);
		(void)rc; /* broken already: nothing more to say */
	}
}

/* STARTTLS: the plaintext reply is on the wire; from here every byte
 * read is ciphertext and whatever came before is dropped. */
static void
tls_switch(struct stream *s)
{
	int r;

	s->tls_wait = false;
	buf_reset(&s->in);
	buf_release(s, &s->in);
	if (!s->tls_client)
		return;
	/* the ClientHello; a failure here is reported by tls_progress()
	 * at the next turn, never from inside the user's call */
	r = tls_conn_handshake(s->tls);
	(void)r;
}

/* The next plaintext part of out (STARTTLS): copied, it is small. */
static bool
plain_stage(struct stream *s)
{
	size_t n = s->plain_left;

	if (n > buf_avail(&s->out))
		n = buf_avail(&s->out);
	s->plain_left = 0;
	if (n == 0 || buf_append(&s->wbuf, buf_peek(&s->out), n) < 0)
		return false;
	buf_consume(&s->out, n);
	return true;
}

/* Stage the next send into wbuf; false when there is nothing to send. */
static bool
stage(struct stream *s)
{
	struct buf tmp;

	if (s->tls_wait) {
		if (s->plain_left > 0)
			return plain_stage(s);
		tls_switch(s);
		if (s->closing)
			return false;
	}
	if (s->tls != NULL) {
		tls_encrypt(s);
		return tls_conn_out_to_buf(s->tls, &s->wbuf) > 0;
	}
	if (buf_avail(&s->out) == 0)
		return false;
	/* swap the storage, keep each cap */
	tmp = s->wbuf;
	s->wbuf = s->out;
	s->out = tmp;
	s->out.max = s->wbuf.max;
	s->wbuf.max = tmp.max;
	buf_reset(&s->out);
	return true;
}

void
stream_flush(struct stream *s)
{
	if (!s->open || s->connecting || uring_op_busy(&s->wr) ||
	    (s->closing && s->discard))
		return;
	if (!stage(s))
		return;
	uring_send(
	    s->l, &s->wr, s->fd, buf_peek(&s->wbuf), buf_avail(&s->wbuf));
	if (s->write_ms) {
		s->write_dl = clock_mono_ms() + s->write_ms;
		timer_arm(s);
	}
}

struct buf *
stream_outbuf(struct stream *s)
{
	return &s->out;
}

int
stream_write(struct stream *s, const void *p, size_t n)
{
	if (s->closing)
		return -EPIPE;
	return buf_append(&s->out, p, n);
}

/* ---- input ---- */

static void
tls_failed(struct stream *s)
{
	if (!s->tls_failed) {
		s->tls_failed = true;
		if (s->cbs->tls_done != NULL)
			s->cbs->tls_done(s, s->user, tls_conn_error(s->tls));
	}
	/* Nothing more can be encrypted: queued plaintext is dropped, a
	 * pending alert still goes out. */
	buf_reset(&s->out);
	stream_begin_close(s, "tls", false);
}

/* Move kept ciphertext into the TLS layer, as much as it takes. */
static void
tls_feed_in(struct stream *s)
{
	size_t n;

	while ((n = buf_avail(&s->in)) > 0) {
		if (n > FEED_CHUNK)
			n = FEED_CHUNK;
		if (tls_conn_feed(s->tls, buf_peek(&s->in), n) < 0)
			break;
		buf_consume(&s->in, n);
	}
	buf_release(s, &s->in);
}

/* Advance the handshake; false when the stream cannot go on now. */
static bool
tls_progress(struct stream *s)
{
	int r;

	if (tls_may_feed(s))
		tls_feed_in(s);
	if (s->tls_up)
		return true;
	r = tls_conn_handshake(s->tls);
	if (r == -EAGAIN)
		return false;
	if (r < 0) {
		tls_failed(s);
		return false;
	}
	s->tls_up = true;
	if (s->cbs->tls_done != NULL)
		s->cbs->tls_done(s, s->user, NULL);
	return !s->closing;
}

/* Decrypt more into pin. Returns > 0 when bytes were added, 0 when none
 * can be now, < 0 when the stream ended (peer close_notify or error). */
static int
tls_decrypt(struct stream *s)
{
	size_t before;
	ssize_t r;

	if (buf_avail(&s->pin) == 0)
		buf_reset(&s->pin);
	if (s->pin.max == 0)
		buf_init(&s->pin, STREAM_PLAIN_MAX);
	for (;;) {
		r = tls_conn_read(s->tls, &s->pin);
		if (r > 0)
			return 1;
		if (r == -ENOBUFS) /* pin is full: the user takes first */
			return 0;
		if (r == -EAGAIN) {
			/* more ciphertext kept, now that there is room */
			before = buf_avail(&s->in);
			tls_feed_in(s);
			if (buf_avail(&s->in) == before)
				return 0;
			continue;
		}
		if (r == 0) {
			s->rd_end = "eof"; /* close_notify */
			return -1;
		}
		tls_failed(s);
		return -1;
	}
}

/* Offer what is kept to the user while input is not held. */
static void
deliver(struct stream *s)
{
	struct buf *src;
	size_t c;
	int got;

	if (s->delivering)
		return;
	s->delivering = true;
	for (;;) {
		if (s->closing || s->tls_wait)
			break;
		if (s->tls != NULL && !tls_progress(s))
			break;
		if (in_held(s))
			break;
		got = 0;
		if (s->tls != NULL && (got = tls_decrypt(s)) < 0)
			break;
		src = s->tls != NULL ? &s->pin : &s->in;
		if (buf_avail(src) == 0)
			break;
		c = s->cbs->input(s, s->user, buf_peek(src), buf_avail(src));
		if (s->closing)
			break;
		buf_consume(src, c);
		if (c == 0 && got == 0)
			break;
	}
	s->delivering = false;
	buf_release(s, &s->in);
	buf_release(s, &s->pin);
}

/*
 * The recv ended. An error closes at once, dropping what is queued. An
 * EOF may be a half-close after pipelined commands: the user takes what
 * is kept first (after stream_resume() when paused), then the stream
 * closes in order, so replies already queued still go (bounded by the
 * linger).
 */
static void
check_end(struct stream *s)
{
	bool eof;

	if (s->rd_end == NULL || s->closing)
		return;
	eof = strcmp(s->rd_end, "eof") == 0;
	if (eof && !s->tls_wait && in_held(s))
		return;
	stream_begin_close(s, s->rd_end, !eof);
}

static void
rd_arm(struct stream *s)
{
	if (!s->open || s->closing || s->connecting || s->rd_end != NULL ||
	    uring_op_busy(&s->rd) || buf_avail(&s->in) >= STREAM_IN_HIWAT)
		return;
	uring_recv(s->l, &s->rd, s->fd, true);
}

/* Bytes from the socket. */
static void
on_bytes(struct stream *s, const uint8_t *p, size_t n)
{
	size_t c;

	if (s->tls_wait)
		return; /* plaintext behind STARTTLS: dropped */
	if (buf_avail(&s->in) == 0 && !s->delivering) {
		if (s->tls == NULL && !in_held(s)) {
			/* the fast path: straight from the provided buffer */
			s->delivering = true;
			c = s->cbs->input(s, s->user, p, n);
			s->delivering = false;
			if (s->closing || s->tls != NULL || c >= n)
				return;
			p += c, n -= c;
		} else if (s->tls != NULL && tls_may_feed(s) &&
		           tls_conn_feed(s->tls, p, n) == 0)
			return;
	}
	if (buf_append(&s->in, p, n) < 0) {
		stream_begin_close(s, "input overflow", true);
		return;
	}
	if (buf_avail(&s->in) >= STREAM_IN_HIWAT && uring_op_busy(&s->rd)) {
		s->rd_cancel = true;
		uring_cancel(s->l, &s->rd);
	}
}

static void
rd_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct stream *s = uring_container_of(op, struct stream, rd);

	if (s->closing) {
		stream_maybe_free(s);
		return;
	}
	if (res > 0) {
		if (s->read_ms && !s->hold) {
			s->read_dl = clock_mono_ms() + s->read_ms;
			timer_arm(s);
		}
		on_bytes(s, data, len);
	}
	if (!(flags & URING_F_MORE)) {
		if (res == 0)
			s->rd_end = "eof";
		else if (res == -ECANCELED && s->rd_cancel)
			; /* our backpressure: re-armed when taken */
		else if (res < 0)
			s->rd_end = res == -ECONNRESET ? "reset" : "read error";
		s->rd_cancel = false;
	}
	if (s->closing) {
		stream_maybe_free(s);
		return;
	}
	stream_kick(s);
}

/* ---- progress ---- */

/* After anything happened: offer input, send, read on, or finish. */
static void
stream_kick(struct stream *s)
{
	if (s->closing || !s->open)
		return;
	deliver(s);
	if (s->closing)
		return;
	stream_flush(s);
	check_end(s);
	if (!s->closing)
		rd_arm(s);
}

static void
wr_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct stream *s = uring_container_of(op, struct stream, wr);

	(void)flags, (void)data, (void)len;
	buf_reset(&s->wbuf);
	buf_release(s, &s->wbuf);
	s->write_dl = 0;
	if (res < 0) {
		if (!s->closing) {
			stream_begin_close(s,
			    res == -ECONNRESET || res == -EPIPE ? "reset"
			                                        : "write error",
			    true);
			return;
		}
		s->discard = true;
		uring_cancel(s->l, &s->tmo);
		stream_maybe_free(s);
		return;
	}
	if (s->closing) {
		stream_flush(s);
		if (!uring_op_busy(&s->wr))
			uring_cancel(s->l, &s->tmo); /* linger no more */
		stream_maybe_free(s);
		return;
	}
	stream_flush(s);
	if (!uring_op_busy(&s->wr) && stream_unsent(s) == 0 &&
	    s->cbs->drained != NULL)
		s->cbs->drained(s, s->user);
	stream_kick(s);
}

static void
conn_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct stream *s = uring_container_of(op, struct stream, wr);

	(void)flags, (void)data, (void)len;
	s->connecting = false;
	s->conn_dl = 0;
	uring_op_init(&s->wr, wr_cb);
	if (s->closing) {
		stream_maybe_free(s);
		return;
	}
	if (res == -ECANCELED && s->conn_timed_out)
		res = -ETIMEDOUT;
	if (s->cbs->connected != NULL)
		s->cbs->connected(s, s->user, res);
	if (res < 0) {
		stream_begin_close(s, "connect", true);
		return;
	}
	if (s->read_ms)
		s->read_dl = clock_mono_ms() + s->read_ms;
	stream_kick(s);
}

/* ---- timers ---- */

static uint64_t
next_deadline(const struct stream *s)
{
	uint64_t dl = 0;

	if (s->connecting)
		dl = min_dl(dl, s->conn_dl);
	if (!s->hold) {
		dl = min_dl(dl, s->read_dl);
		dl = min_dl(dl, s->sess_dl);
	}
	if (uring_op_busy(&s->wr) && !s->connecting)
		dl = min_dl(dl, s->write_dl);
	return min_dl(dl, s->user_dl);
}

static void
timer_arm(struct stream *s)
{
	uint64_t dl, now;

	if (!s->open || s->closing || (dl = next_deadline(s)) == 0)
		return;
	if (uring_op_busy(&s->tmo)) {
		if (s->tmo_at > dl) /* its callback re-arms earlier */
			uring_cancel(s->l, &s->tmo);
		return;
	}
	now = clock_mono_ms();
	s->tmo_at = dl;
	uring_timeout(s->l, &s->tmo, dl > now ? dl - now : 0);
}

static void
fire(struct stream *s, enum stream_timer which)
{
	if (!s->closing && s->cbs->timeout != NULL)
		s->cbs->timeout(s, s->user, which);
}

/* Fire every expired deadline, each once. */
static void
timers_expire(struct stream *s)
{
	uint64_t now = clock_mono_ms();

	if (s->connecting && s->conn_dl && now >= s->conn_dl) {
		s->conn_dl = 0;
		s->conn_timed_out = true;
		uring_cancel(s->l, &s->wr);
	}
	if (!s->hold && s->sess_dl && now >= s->sess_dl) {
		s->sess_dl = 0;
		fire(s, STREAM_TMO_DEADLINE);
	}
	if (!s->hold && s->read_dl && now >= s->read_dl) {
		s->read_dl = 0;
		fire(s, STREAM_TMO_READ);
	}
	if (s->write_dl && now >= s->write_dl && uring_op_busy(&s->wr) &&
	    !s->connecting) {
		s->write_dl = 0;
		fire(s, STREAM_TMO_WRITE);
	}
	if (s->user_dl && now >= s->user_dl) {
		s->user_dl = 0;
		fire(s, STREAM_TMO_TIMER);
	}
}

/* Closing: the linger, or the deferral of the release to a callback. */
static void
tmo_closing(struct stream *s)
{
	if (uring_op_busy(&s->wr)) {
		if (!s->lingering) {
			s->lingering = true;
			uring_timeout(s->l, &s->tmo, s->linger_ms);
			return;
		}
		/* The peer does not read what is left. */
		s->discard = true;
		uring_cancel(s->l, &s->wr);
	}
	stream_maybe_free(s);
}

static void
tmo_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct stream *s = uring_container_of(op, struct stream, tmo);

	(void)res, (void)flags, (void)data, (void)len;
	s->tmo_at = 0;
	if (s->closing) {
		tmo_closing(s);
		return;
	}
	timers_expire(s);
	if (s->closing)
		return; /* a callback closed it: its timer is armed */
	timer_arm(s);
	stream_kick(s);
}

void
stream_set_timeouts(struct stream *s, uint64_t read_ms, uint64_t write_ms)
{
	uint64_t now = clock_mono_ms();

	s->read_ms = read_ms;
	s->write_ms = write_ms;
	s->read_dl = read_ms ? now + read_ms : 0;
	s->write_dl = write_ms && uring_op_busy(&s->wr) ? now + write_ms : 0;
	timer_arm(s);
}

void
stream_set_deadline(struct stream *s, uint64_t ms)
{
	s->sess_dl = ms ? clock_mono_ms() + ms : 0;
	timer_arm(s);
}

void
stream_timer(struct stream *s, uint64_t ms)
{
	s->user_dl = ms ? clock_mono_ms() + ms : 0;
	timer_arm(s);
}

bool
stream_input_waiting(const struct stream *s)
{
	int n = 0;

	if (!s->open || s->closing || s->fd < 0)
		return false;
	if (buf_avail(&s->in) > 0 || buf_avail(&s->pin) > 0)
		return true;
	return ioctl(s->fd, FIONREAD, &n) == 0 && n > 0;
}

void
stream_timer_next(struct stream *s)
{
	uint64_t now = clock_mono_ms();

	s->user_dl = now > 0 ? now : 1; /* 0 means off */
	timer_arm(s);
}

void
stream_hold_timers(struct stream *s, bool hold)
{
	s->hold = hold;
	if (!hold && s->read_ms)
		s->read_dl = clock_mono_ms() + s->read_ms;
	timer_arm(s);
}

void
stream_set_linger(struct stream *s, uint64_t ms)
{
	s->linger_ms = ms;
}

void
stream_set_keep(struct stream *s, size_t bytes)
{
	s->keep = bytes > BUF_KEEP ? bytes : BUF_KEEP;
}

int
stream_set_nodelay(struct stream *s)
{
	int one = 1;

	if (!s->open || s->fd < 0)
		return -EBADF;
	if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

/* ---- open, flow control, TLS, close ---- */

static void
stream_init(struct stream *s, struct uring_loop *l,
    const struct stream_cbs *cbs, void *user)
{
	memset(s, 0, sizeof(*s));
	s->l = l;
	s->cbs = cbs;
	s->user = user;
	s->fd = -1;
	s->linger_ms = STREAM_LINGER_MS;
	s->keep = BUF_KEEP;
	buf_init(&s->in, STREAM_IN_MAX);
	buf_init(&s->out, STREAM_OUT_MAX);
	buf_init(&s->wbuf, STREAM_OUT_MAX + TLS_OUT_MAX);
	uring_op_init(&s->rd, rd_cb);
	uring_op_init(&s->wr, wr_cb);
	uring_op_init(&s->tmo, tmo_cb);
	s->open = true;
}

void
stream_open(struct stream *s, struct uring_loop *l, int fd,
    const struct stream_cbs *cbs, void *user)
{
	stream_init(s, l, cbs, user);
	s->fd = fd;
	rd_arm(s);
}

int
stream_connect(struct stream *s, struct uring_loop *l,
    const struct sockaddr *to, socklen_t tolen, uint64_t timeout_ms,
    const struct stream_cbs *cbs, void *user)
{
	int fd;

	if (tolen > sizeof(s->to))
		return -EINVAL;
	fd = socket(
	    to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	stream_init(s, l, cbs, user);
	s->fd = fd;
	memcpy(&s->to, to, tolen);
	s->tolen = tolen;
	s->connecting = true;
	uring_op_init(&s->wr, conn_cb);
	if (timeout_ms) {
		s->conn_dl = clock_mono_ms() + timeout_ms;
		timer_arm(s);
	}
	uring_connect(l, &s->wr, fd, (const struct sockaddr *)&s->to, tolen);
	return 0;
}

void
stream_pause(struct stream *s)
{
	s->paused = true;
}

void
stream_resume(struct stream *s)
{
	s->paused = false;
	if (!s->delivering)
		stream_kick(s);
}

void
stream_start_tls(struct stream *s, const struct stream_tls *t)
{
	MTA_ASSERT(s->tls == NULL && t->ctx != NULL);
	if (s->closing)
		return;
	s->tls = t->client ? tls_conn_client_new(
	                         t->ctx, t->host, t->policy, t->resume)
	                   : tls_conn_server_new(t->ctx);
	if (t->client && t->ntlsa > 0 &&
	    tls_conn_dane(s->tls, t->host, &t->dane_name,
	        t->dane_name != NULL ? 1 : 0, t->tlsa, t->ntlsa) < 0)
		log_warnx("event=tls-dane-unusable host=%s note=\"no TLSA "
		          "record usable by the TLS library: the peer is "
		          "verified by the trust store\"",
		    t->host);
	s->tls_client = t->client;
	s->tls_wait = true;
	s->plain_left = buf_avail(&s->out);
	if (s->plain_left == 0 && !uring_op_busy(&s->wr) && !s->connecting) {
		/* nothing plaintext to wait for: switch now */
		tls_switch(s);
		stream_flush(s);
	}
}

bool
stream_tls_on(const struct stream *s)
{
	return s->tls != NULL;
}

bool
stream_tls_ready(const struct stream *s)
{
	return s->tls_up;
}

void
stream_tls_info(const struct stream *s, struct tls_info *out)
{
	if (s->tls != NULL)
		tls_conn_info(s->tls, out);
	else
		memset(out, 0, sizeof(*out));
}

struct tls_session *
stream_tls_session_take(struct stream *s)
{
	return s->tls != NULL ? tls_conn_session_take(s->tls) : NULL;
}

int
stream_tls_key_update(struct stream *s)
{
	int r;

	if (s->tls == NULL || s->closing)
		return -EPIPE;
	if (!s->tls_up)
		return -EAGAIN;
	if ((r = tls_conn_key_update(s->tls)) == -EPROTO)
		tls_failed(s);
	else if (r == 0)
		stream_flush(s);
	return r;
}

static void
stream_begin_close(struct stream *s, const char *reason, bool discard)
{
	if (!s->open)
		return;
	if (s->closing) {
		if (discard && !s->discard) {
			s->discard = true;
			uring_cancel(s->l, &s->wr);
		}
		return;
	}
	s->closing = true;
	s->discard = discard;
	if (s->reason == NULL)
		s->reason = reason;
	uring_cancel(s->l, &s->rd);
	if (discard || s->connecting)
		uring_cancel(s->l, &s->wr);
	else
		stream_flush(s); /* the rest, an alert, our close_notify */
	if (uring_op_busy(&s->tmo)) {
		uring_cancel(s->l, &s->tmo); /* its callback lingers */
	} else if (uring_op_busy(&s->wr)) {
		s->lingering = true;
		uring_timeout(s->l, &s->tmo, s->linger_ms);
	} else if (!uring_op_busy(&s->rd)) {
		/* no op will call back: defer the release to a callback */
		uring_timeout(s->l, &s->tmo, 0);
	}
	/* else the cancelled recv's last callback releases it, with no
	 * timer (an hrtimer per close costs a connection-per-message
	 * client several percent) */
}

void
stream_close(struct stream *s, const char *reason, enum stream_close_how how)
{
	stream_begin_close(s, reason, how == STREAM_CLOSE_ABORT);
}

bool
stream_closing(const struct stream *s)
{
	return s->closing;
}
