/* SPDX-License-Identifier: ISC */
/*
 * stream_test.c - the connection stream over a real uring loop and real
 * sockets (socketpairs, loopback TCP): partial writes to a slow reader,
 * pause/resume with pipelined input, TLS with the ciphertext relayed one
 * byte at a time (every WANT_READ/WANT_WRITE point of the handshake, of
 * the TLS 1.3 tickets after it and of key updates both ways), close during a handshake, orderly and
 * abortive close with writes pending, linger, peer reset while reading
 * and while writing, STARTTLS dropping pipelined plaintext, timeouts and
 * their hold, connect. Exit 77 when io_uring is unavailable.
 */
#include "net/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "base/buf.h"
#include "base/str.h"
#include "net/tls.h"
#include "net/uring.h"

#define BIG (200 * 1024) /* bytes written to slow readers */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- certificate fixture (as tls_mem_test.c) ---- */

static char dir[64], cert[128], key[128];
static struct tls_ctx *sctx, *cctx;

static void
fixture_cleanup(void)
{
	char cmd[128];

	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
	if (dir[0] && str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", dir) &&
	    system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static bool
fixture(void)
{
	static int state;
	struct config_tls cfg;
	char cmd[1024], err[256];

	if (state)
		return state > 0;
	state = -1;
	str_copy(dir, sizeof(dir), "/tmp/stream_test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return false;
	atexit(fixture_cleanup);
	str_fmt(cert, sizeof(cert), "%s/cert.pem", dir);
	str_fmt(key, sizeof(key), "%s/key.pem", dir);
	str_fmt(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost "
	    "-days 1 -keyout %s -out %s 2>/dev/null",
	    key, cert);
	if (system(cmd) != 0)
		return false;
	memset(&cfg, 0, sizeof(cfg));
	str_copy(cfg.certificate, sizeof(cfg.certificate), cert);
	str_copy(cfg.private_key, sizeof(cfg.private_key), key);
	if (tls_ctx_server_new(&cfg, &sctx, err, sizeof(err)) < 0 ||
	    tls_ctx_client_new(cert, &cctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "ctx: %s\n", err);
		return false;
	}
	state = 1;
	return true;
}

/* ---- the loop, run until a condition ---- */

static struct uring_loop *L;
static struct uring_op tick;
static bool (*until)(void);
static uint64_t until_dl;

static void
tick_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	(void)res, (void)flags, (void)d, (void)n;
	if ((until && until()) || now_ms() >= until_dl) {
		uring_loop_stop(L);
		return;
	}
	uring_timeout(L, op, 2);
}

/* Run the loop until cond() holds or ms pass; returns cond(). */
static bool
run_until(bool (*cond)(void), uint64_t ms)
{
	until = cond;
	until_dl = now_ms() + ms;
	uring_op_init(&tick, tick_cb);
	uring_timeout(L, &tick, 1);
	if (uring_loop_run(L) < 0)
		return false;
	return cond ? cond() : true;
}

static bool
loop_open(void)
{
	struct uring_loop_opts o = {0};
	char err[128];

	if (uring_loop_new(&o, &L, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return false;
	}
	return true;
}

static void
loop_close(void)
{
	uring_loop_free(L);
	L = NULL;
}

/* ---- an endpoint: records what its stream reports ---- */

struct ep {
	struct stream s;
	struct buf got;     /* plaintext taken */
	size_t take_max;    /* per input call, 0 = all */
	bool pause_each;    /* pause after each input call */
	bool echo;          /* write back what was taken */
	bool starttls_srv;  /* answer STARTTLS with 220 and switch */
	bool starttls_cli;  /* on 220, switch as a client */
	const char *on_tls; /* write this once the handshake is done */
	int closed, tls_ok, tls_fail, drained, conn_res, connected;
	int tmo[4];
	size_t got_at_timer; /* bytes taken when STREAM_TMO_TIMER fired */
	uint64_t closed_at;
	char reason[64];
	char tls_err[TLS_ERR_MAX];
};

static size_t
ep_input(struct stream *s, void *user, const uint8_t *p, size_t n)
{
	struct ep *e = user;
	struct stream_tls t = {.ctx = sctx};

	if (e->starttls_srv && !stream_tls_on(s) && n >= 10 &&
	    memcmp(p, "STARTTLS\r\n", 10) == 0) {
		/* take the command only: what follows must be dropped by
		 * the stream, not by us */
		if (stream_write(s, "220 go\r\n", 8) < 0)
			abort();
		stream_start_tls(s, &t);
		return 10;
	}
	if (e->starttls_cli && !stream_tls_on(s) && n >= 8 &&
	    memcmp(p, "220 go\r\n", 8) == 0) {
		t.ctx = cctx;
		t.client = true;
		t.host = "localhost";
		t.policy = CONFIG_TLS_VERIFY;
		stream_start_tls(s, &t);
		return 8;
	}
	if (e->take_max && n > e->take_max)
		n = e->take_max;
	if (buf_append(&e->got, p, n) < 0)
		abort();
	if (e->echo && stream_write(s, p, n) < 0)
		abort();
	if (e->pause_each)
		stream_pause(s);
	return n;
}

static void
ep_drained(struct stream *s, void *user)
{
	(void)s;
	((struct ep *)user)->drained++;
}

static void
ep_tls_done(struct stream *s, void *user, const char *err)
{
	struct ep *e = user;

	if (err != NULL) {
		e->tls_fail++;
		str_copy(e->tls_err, sizeof(e->tls_err), err);
		return;
	}
	e->tls_ok++;
	if (e->on_tls && stream_write(s, e->on_tls, strlen(e->on_tls)) < 0)
		abort();
}

static void
ep_connected(struct stream *s, void *user, int res)
{
	struct ep *e = user;

	(void)s;
	e->connected++;
	e->conn_res = res;
}

static void
ep_timeout(struct stream *s, void *user, enum stream_timer which)
{
	struct ep *e = user;

	(void)s;
	e->tmo[which]++;
	if (which == STREAM_TMO_TIMER)
		e->got_at_timer = buf_avail(&e->got);
}

static void
ep_closed(struct stream *s, void *user, const char *reason)
{
	struct ep *e = user;

	(void)s;
	e->closed++;
	e->closed_at = now_ms();
	str_copy(e->reason, sizeof(e->reason), reason);
	buf_fini(&e->got);
}

static const struct stream_cbs ep_cbs = {
    .input = ep_input,
    .drained = ep_drained,
    .tls_done = ep_tls_done,
    .connected = ep_connected,
    .timeout = ep_timeout,
    .closed = ep_closed,
};

static void
ep_open(struct ep *e, int fd)
{
	memset(e, 0, sizeof(*e));
	buf_init(&e->got, 4 * 1024 * 1024);
	stream_open(&e->s, L, fd, &ep_cbs, e);
}

static struct ep A, B; /* the endpoints of the current test */

static bool
a_closed(void)
{
	return A.closed > 0;
}

static bool
both_closed(void)
{
	return A.closed > 0 && B.closed > 0;
}

/* Close A how, wait for `closed`; true when it came exactly once, with
 * reason. Then the peer's end (peer >= 0) and the loop go. */
static bool
end_a(enum stream_close_how how, const char *reason, int peer)
{
	bool ok;

	stream_close(&A.s, reason, how);
	ok = run_until(a_closed, 3000);
	run_until(NULL, 10); /* a second `closed` would show here */
	ok = ok && A.closed == 1 && strcmp(A.reason, reason) == 0;
	if (peer >= 0)
		close(peer);
	loop_close();
	return ok;
}

/* A socketpair, both ends non-blocking (the stream's end must be). */
static bool
pair(int sv[2])
{
	if (socketpair(
	        AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	return true;
}

/* A socketpair with small buffers: a big write is stuck at once. */
static bool
pair_small(int sv[2])
{
	int small = 4096;

	if (!pair(sv))
		return false;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	return true;
}

static void
set_blocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

/* Queue BIG bytes of pattern on A. */
static bool
queue_big(struct ep *e)
{
	uint8_t chunk[4096];

	for (size_t i = 0; i < BIG; i += sizeof(chunk)) {
		for (size_t j = 0; j < sizeof(chunk); j++)
			chunk[j] = pattern(i + j);
		if (stream_write(&e->s, chunk, sizeof(chunk)) < 0)
			return false;
	}
	stream_flush(&e->s);
	return true;
}

/* ---- a slow reader thread ---- */

struct reader {
	pthread_t th;
	int fd;
	unsigned delay_us; /* between reads */
	size_t got;
	bool bad, eof;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t b[1024];
	ssize_t n;

	set_blocking(r->fd);
	for (;;) {
		n = read(r->fd, b, sizeof(b));
		if (n <= 0) {
			r->eof = n == 0;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (b[i] != pattern(r->got + (size_t)i))
				r->bad = true;
		r->got += (size_t)n;
		if (r->delay_us)
			usleep(r->delay_us);
	}
	return NULL;
}

/* ---- plain ---- */

static bool
a_has_all(void)
{
	return buf_avail(&A.got) >= 9;
}

static void
test_pause_resume_pipelined(void)
{
	int sv[2];

	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	A.take_max = 3; /* one line a call */
	A.pause_each = true;
	CHECK(write(sv[1], "L1\r\nL2\r\nL3\r\n", 12) == 12);
	/* pipelined input: one line, then nothing while paused */
	run_until(NULL, 100);
	CHECK(buf_avail(&A.got) == 3);
	CHECK_MEM(buf_peek(&A.got), 3, "L1\r");
	for (int i = 0; i < 3; i++) {
		stream_resume(&A.s);
		run_until(NULL, 20);
	}
	CHECK(run_until(a_has_all, 1000));
	CHECK_MEM(buf_peek(&A.got), 9, "L1\r\nL2\r\nL");
	CHECK(end_a(STREAM_CLOSE_ORDERLY, "test", sv[1]));
}

/* A half-close behind pipelined lines while paused: every line is
 * still offered (after resume), the replies go out, then EOF. */
static void
test_eof_while_paused(void)
{
	char rep[64];
	ssize_t n;
	size_t got = 0;
	int sv[2];

	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	A.take_max = 4;
	A.pause_each = true;
	A.echo = true;
	CHECK(write(sv[1], "L1\r\nL2\r\n", 8) == 8);
	CHECK(shutdown(sv[1], SHUT_WR) == 0);
	run_until(NULL, 100);
	CHECK(A.closed == 0); /* paused: the EOF waits */
	CHECK(buf_avail(&A.got) == 4);
	stream_resume(&A.s);
	run_until(NULL, 50);
	CHECK(A.closed == 0);
	stream_resume(&A.s);
	CHECK(run_until(a_closed, 1000));
	CHECK(strcmp(A.reason, "eof") == 0);
	set_blocking(sv[1]);
	while ((n = read(sv[1], rep + got, sizeof(rep) - got)) > 0)
		got += (size_t)n;
	CHECK(n == 0);
	CHECK_MEM(rep, got, "L1\r\nL2\r\n");
	close(sv[1]);
	loop_close();
}

struct writer {
	pthread_t th;
	int fd;
	size_t n;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t b[4096];
	size_t off = 0;
	ssize_t k;

	set_blocking(w->fd);
	while (off < w->n) {
		for (size_t j = 0; j < sizeof(b); j++)
			b[j] = pattern(off + j);
		k = write(
		    w->fd, b, sizeof(b) < w->n - off ? sizeof(b) : w->n - off);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	return NULL;
}

static bool
a_got_big(void)
{
	return buf_avail(&A.got) >= BIG;
}

/* Paused past the high-water mark: everything arrives after resume, in
 * order, nothing lost or doubled. */
static void
test_pause_big_input(void)
{
	struct writer w;
	int sv[2];
	bool ok = true;

	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	stream_pause(&A.s);
	w.fd = sv[1];
	w.n = BIG;
	CHECK(pthread_create(&w.th, NULL, writer_main, &w) == 0);
	run_until(NULL, 300);
	CHECK(buf_avail(&A.got) == 0);
	stream_resume(&A.s);
	run_until(a_got_big, 5000);
	pthread_join(w.th, NULL);
	CHECK(buf_avail(&A.got) == BIG);
	for (size_t i = 0; i < BIG; i++)
		if (buf_peek(&A.got)[i] != pattern(i))
			ok = false;
	CHECK(ok);
	CHECK(end_a(STREAM_CLOSE_ABORT, "test", sv[1]));
}

static bool
a_drained(void)
{
	return A.drained > 0;
}

static void
test_partial_writes(void)
{
	struct reader r = {0};
	int sv[2];
	static uint8_t over[STREAM_OUT_MAX + 1];

	CHECK(loop_open());
	CHECK(pair_small(sv));
	ep_open(&A, sv[0]);
	CHECK(queue_big(&A));
	/* over the cap: the caller sees it, nothing is taken */
	CHECK(stream_write(&A.s, over, sizeof(over)) == -ENOBUFS);
	run_until(NULL, 50);
	CHECK(stream_unsent(&A.s) > 0);
	CHECK(A.drained == 0);
	r.fd = sv[1];
	r.delay_us = 200;
	CHECK(pthread_create(&r.th, NULL, reader_main, &r) == 0);
	CHECK(run_until(a_drained, 10000));
	CHECK(stream_unsent(&A.s) == 0);
	stream_close(&A.s, "test", STREAM_CLOSE_ORDERLY);
	CHECK(run_until(a_closed, 2000));
	pthread_join(r.th, NULL);
	CHECK(r.got == BIG);
	CHECK(!r.bad);
	CHECK(r.eof);
	CHECK(A.drained == 1);
	close(sv[1]);
	loop_close();
}

/* Orderly close right after queueing: the peer gets everything, then
 * EOF; closed once. */
static void
test_close_orderly_pending(void)
{
	struct reader r = {0};
	int sv[2];

	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	CHECK(queue_big(&A));
	stream_close(&A.s, "test", STREAM_CLOSE_ORDERLY);
	CHECK(stream_write(&A.s, "x", 1) == -EPIPE);
	CHECK(A.closed == 0); /* never from inside the call */
	r.fd = sv[1];
	r.delay_us = 100;
	CHECK(pthread_create(&r.th, NULL, reader_main, &r) == 0);
	CHECK(run_until(a_closed, 10000));
	pthread_join(r.th, NULL);
	CHECK(r.got == BIG);
	CHECK(r.eof);
	CHECK(!r.bad);
	run_until(NULL, 20);
	CHECK(A.closed == 1);
	close(sv[1]);
	loop_close();
}

/* Abortive close with writes stuck: no hang, closed once. */
static void
test_close_abort_pending(void)
{
	int sv[2];
	uint64_t t0;

	CHECK(loop_open());
	CHECK(pair_small(sv));
	ep_open(&A, sv[0]);
	CHECK(queue_big(&A));
	run_until(NULL, 20);
	CHECK(stream_unsent(&A.s) > 0);
	t0 = now_ms();
	stream_close(&A.s, "abort", STREAM_CLOSE_ABORT);
	CHECK(run_until(a_closed, 2000));
	CHECK(now_ms() - t0 < 1000);
	run_until(NULL, 20);
	CHECK(A.closed == 1);
	CHECK(strcmp(A.reason, "abort") == 0);
	close(sv[1]);
	loop_close();
}

/* Orderly close to a peer that never reads: the linger bounds it. */
static void
test_close_linger(void)
{
	int sv[2];
	uint64_t t0;

	CHECK(loop_open());
	CHECK(pair_small(sv));
	ep_open(&A, sv[0]);
	stream_set_linger(&A.s, 200);
	CHECK(queue_big(&A));
	t0 = now_ms();
	stream_close(&A.s, "linger", STREAM_CLOSE_ORDERLY);
	CHECK(run_until(a_closed, 3000));
	CHECK(A.closed_at - t0 >= 190);
	CHECK(A.closed_at - t0 < 2000);
	close(sv[1]);
	loop_close();
}

/* ---- loopback TCP: connect, reset ---- */

static int
listener(struct sockaddr_in *sin)
{
	socklen_t sl = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)sin, sizeof(*sin)) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)sin, &sl) < 0)
		return -1;
	return fd;
}

static bool
a_connected(void)
{
	return A.connected > 0;
}

static void
rst_close(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Connect A to a fresh listener; returns the accepted peer fd. */
static int
connect_pair(int *lfd)
{
	struct sockaddr_in sin;
	int pfd;

	int small = 4096;

	if ((*lfd = listener(&sin)) < 0)
		return -1;
	setsockopt(*lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	memset(&A, 0, sizeof(A));
	buf_init(&A.got, 1 << 20);
	if (stream_connect(&A.s, L, (struct sockaddr *)&sin, sizeof(sin), 2000,
	        &ep_cbs, &A) < 0)
		return -1;
	if (!run_until(a_connected, 2000) || A.conn_res != 0)
		return -1;
	pfd = accept(*lfd, NULL, NULL);
	return pfd;
}

/* The peer resets: A closes once, reason "reset"; then the rest goes. */
static bool
reset_ends(int pfd, int lfd)
{
	bool ok;

	rst_close(pfd);
	ok = run_until(a_closed, 2000);
	run_until(NULL, 20);
	ok = ok && A.closed == 1 && strcmp(A.reason, "reset") == 0;
	close(lfd);
	loop_close();
	return ok;
}

static void
test_reset_while_reading(void)
{
	int lfd, pfd;

	CHECK(loop_open());
	CHECK((pfd = connect_pair(&lfd)) >= 0);
	CHECK(write(pfd, "hi\r\n", 4) == 4);
	run_until(NULL, 30);
	CHECK_MEM(buf_peek(&A.got), buf_avail(&A.got), "hi\r\n");
	CHECK(reset_ends(pfd, lfd));
}

static void
test_reset_while_writing(void)
{
	int lfd, pfd;

	CHECK(loop_open());
	CHECK((pfd = connect_pair(&lfd)) >= 0);
	for (int i = 0; i < 40 && stream_unsent(&A.s) == 0; i++) {
		CHECK(queue_big(&A));
		run_until(NULL, 20);
	}
	CHECK(stream_unsent(&A.s) > 0); /* a send is stuck */
	CHECK(reset_ends(pfd, lfd));
}

static void
test_connect_refused(void)
{
	struct sockaddr_in sin;
	int lfd;

	CHECK(loop_open());
	CHECK((lfd = listener(&sin)) >= 0);
	close(lfd); /* nobody listens there now */
	memset(&A, 0, sizeof(A));
	CHECK(stream_connect(&A.s, L, (struct sockaddr *)&sin, sizeof(sin),
	          2000, &ep_cbs, &A) == 0);
	CHECK(run_until(a_closed, 2000));
	CHECK(A.connected == 1);
	CHECK(A.conn_res == -ECONNREFUSED);
	CHECK(strcmp(A.reason, "connect") == 0);
	loop_close();
}

/* A listener whose accept queue is full drops the SYN: the connect
 * times out. */
static void
test_connect_timeout(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int lfd, fill[4];
	uint64_t t0;

	CHECK(loop_open());
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(lfd, 0) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(50000);
	memset(&A, 0, sizeof(A));
	t0 = now_ms();
	CHECK(stream_connect(&A.s, L, (struct sockaddr *)&sin, sizeof(sin), 200,
	          &ep_cbs, &A) == 0);
	CHECK(run_until(a_closed, 5000));
	CHECK(A.connected == 1);
	CHECK(A.conn_res == -ETIMEDOUT);
	CHECK(strcmp(A.reason, "connect") == 0);
	CHECK(now_ms() - t0 >= 190);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	loop_close();
}

/* ---- timers ---- */

static int want_read_tmo;

static bool
a_read_tmo(void)
{
	return A.tmo[STREAM_TMO_READ] >= want_read_tmo;
}

static void
test_timeouts(void)
{
	int sv[2];
	uint64_t t0;

	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	t0 = now_ms();
	stream_set_timeouts(&A.s, 100, 0);
	/* input restarts the read deadline */
	run_until(NULL, 60);
	CHECK(write(sv[1], "x", 1) == 1);
	want_read_tmo = 1;
	CHECK(run_until(a_read_tmo, 1000));
	CHECK(now_ms() - t0 >= 150);
	CHECK(A.tmo[STREAM_TMO_READ] == 1);
	/* held: not waiting on the peer, nothing fires */
	stream_hold_timers(&A.s, true);
	stream_set_timeouts(&A.s, 100, 0);
	stream_set_deadline(&A.s, 50);
	run_until(NULL, 300);
	CHECK(A.tmo[STREAM_TMO_READ] == 1);
	CHECK(A.tmo[STREAM_TMO_DEADLINE] == 0);
	/* released: the passed deadline at once, the read one anew */
	t0 = now_ms();
	stream_hold_timers(&A.s, false);
	run_until(NULL, 40);
	CHECK(A.tmo[STREAM_TMO_DEADLINE] == 1);
	CHECK(A.tmo[STREAM_TMO_READ] == 1);
	want_read_tmo = 2;
	CHECK(run_until(a_read_tmo, 1000));
	CHECK(A.tmo[STREAM_TMO_READ] == 2);
	CHECK(now_ms() - t0 >= 90);
	/* the user timer is not held */
	stream_hold_timers(&A.s, true);
	stream_timer(&A.s, 30);
	run_until(NULL, 100);
	CHECK(A.tmo[STREAM_TMO_TIMER] == 1);
	CHECK(end_a(STREAM_CLOSE_ABORT, "test", sv[1]));
}

static bool
a_timer(void)
{
	return A.tmo[STREAM_TMO_TIMER] > 0;
}

static bool
a_timer_2(void)
{
	return A.tmo[STREAM_TMO_TIMER] > 1;
}

/* stream_input_waiting(), and stream_timer_next(): at once, but after
 * input already waiting (what the receive side's greeting relies on to
 * see early talkers). */
static void
test_timer_next(void)
{
	int sv[2];
	uint64_t t0;

	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	CHECK(!stream_input_waiting(&A.s));
	CHECK(end_a(STREAM_CLOSE_ABORT, "test", sv[1]));
	CHECK(loop_open());
	CHECK(pair(sv));
	CHECK(write(sv[1], "early", 5) == 5);
	ep_open(&A, sv[0]);
	CHECK(stream_input_waiting(&A.s)); /* in the socket, not yet read */
	stream_set_timeouts(&A.s, 5000, 0);
	stream_timer_next(&A.s);
	t0 = now_ms();
	CHECK(run_until(a_timer, 1000));
	CHECK(now_ms() - t0 < 500);
	CHECK(A.got_at_timer == 5);
	CHECK(!stream_input_waiting(&A.s)); /* taken */
	/* again, with nothing waiting: fires all the same */
	stream_timer_next(&A.s);
	CHECK(run_until(a_timer_2, 1000));
	CHECK(A.tmo[STREAM_TMO_READ] == 0);
	CHECK(end_a(STREAM_CLOSE_ABORT, "test", sv[1]));
}

static bool
a_write_tmo(void)
{
	return A.tmo[STREAM_TMO_WRITE] > 0;
}

static void
test_write_timeout(void)
{
	int sv[2];

	CHECK(loop_open());
	CHECK(pair_small(sv));
	ep_open(&A, sv[0]);
	stream_set_timeouts(&A.s, 0, 100);
	CHECK(queue_big(&A));
	CHECK(run_until(a_write_tmo, 2000));
	CHECK(A.tmo[STREAM_TMO_READ] == 0);
	CHECK(end_a(STREAM_CLOSE_ABORT, "test", sv[1]));
}

/* ---- TLS through a one-byte relay ---- */

struct relay {
	struct uring_op rd, wr;
	int from, to;
	uint8_t byte;
	size_t moved;
	size_t stop_at; /* close the server when this many have moved */
	bool done;
};

static struct relay R1, R2; /* client to server, server to client */

static void relay_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n);

static void
relay_wr_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct relay *r = uring_container_of(op, struct relay, wr);

	(void)flags, (void)d, (void)n;
	if (res < 0) {
		r->done = true;
		shutdown(r->from, SHUT_RD);
		return;
	}
	r->moved++;
	if (r->stop_at && r->moved == r->stop_at && !stream_closing(&A.s))
		stream_close(&A.s, "mid-handshake", STREAM_CLOSE_ORDERLY);
	uring_read(L, &r->rd, r->from, &r->byte, 1);
}

static void
relay_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct relay *r = uring_container_of(op, struct relay, rd);

	(void)flags, (void)d, (void)n;
	if (res <= 0) {
		r->done = true;
		shutdown(r->to, SHUT_WR);
		return;
	}
	uring_send(L, &r->wr, r->to, &r->byte, 1);
}

static void
relay_start(struct relay *r, int from, int to)
{
	memset(r, 0, sizeof(*r));
	r->from = from;
	r->to = to;
	uring_op_init(&r->rd, relay_rd_cb);
	uring_op_init(&r->wr, relay_wr_cb);
	uring_read(L, &r->rd, from, &r->byte, 1);
}

static bool
relays_done(void)
{
	return both_closed() && R1.done && R2.done;
}

/* A (server, fds sa) <-> relay <-> B (client, fds cb). */
static bool
tls_setup(int sa[2], int cb[2], bool implicit)
{
	struct stream_tls st = {.ctx = sctx};
	struct stream_tls ct = {.ctx = cctx,
	    .client = true,
	    .host = "localhost",
	    .policy = CONFIG_TLS_VERIFY};

	if (!pair(sa) || !pair(cb))
		return false;
	ep_open(&A, sa[0]);
	ep_open(&B, cb[0]);
	relay_start(&R1, cb[1], sa[1]);
	relay_start(&R2, sa[1], cb[1]);
	if (implicit) {
		stream_start_tls(&A.s, &st);
		stream_start_tls(&B.s, &ct);
	}
	return true;
}

static void
tls_teardown(int sa[2], int cb[2])
{
	close(sa[1]);
	close(cb[1]);
	loop_close();
}

static bool
exchanged(void)
{
	return buf_avail(&A.got) >= 7 && buf_avail(&B.got) >= 4;
}

static size_t want_a, want_b;

static bool
a_has(void)
{
	return buf_avail(&A.got) >= want_a;
}

static bool
b_has(void)
{
	return buf_avail(&B.got) >= want_b;
}

static void
test_tls_byte_relay(void)
{
	int sa[2], cb[2];
	struct tls_session *sess;
	struct tls_info ti;

	if (!fixture()) {
		printf("SKIP no openssl CLI\n");
		return;
	}
	CHECK(loop_open());
	CHECK(tls_setup(sa, cb, true));
	/* the greeting waits for the handshake */
	CHECK(stream_write(&A.s, "hi\r\n", 4) == 0);
	B.on_tls = "hello\r\n";
	CHECK(run_until(exchanged, 20000));
	CHECK(A.tls_ok == 1 && B.tls_ok == 1);
	CHECK(A.tls_fail == 0 && B.tls_fail == 0);
	CHECK_MEM(buf_peek(&A.got), buf_avail(&A.got), "hello\r\n");
	CHECK_MEM(buf_peek(&B.got), buf_avail(&B.got), "hi\r\n");
	CHECK(R1.moved > 100 && R2.moved > 100);
	stream_tls_info(&B.s, &ti);
	CHECK(strcmp(ti.version, "TLSv1.3") == 0);
	CHECK(ti.verified);
	/* the tickets (post-handshake messages) came through byte by byte */
	sess = stream_tls_session_take(&B.s);
	CHECK(sess != NULL);
	tls_session_free(sess);
	/* key updates both ways, each answered by the peer, byte by byte */
	CHECK(stream_tls_key_update(&B.s) == 0);
	CHECK(stream_write(&B.s, "again\r\n", 7) == 0);
	stream_flush(&B.s);
	want_a = 14;
	CHECK(run_until(a_has, 20000));
	CHECK(stream_tls_key_update(&A.s) == 0);
	CHECK(stream_write(&A.s, "ok\r\n", 4) == 0);
	stream_flush(&A.s);
	want_b = 8;
	CHECK(run_until(b_has, 20000));
	CHECK(stream_write(&B.s, "z\r\n", 3) == 0);
	stream_flush(&B.s);
	want_a = 17;
	CHECK(run_until(a_has, 20000));
	CHECK_MEM(
	    buf_peek(&A.got), buf_avail(&A.got), "hello\r\nagain\r\nz\r\n");
	CHECK_MEM(buf_peek(&B.got), buf_avail(&B.got), "hi\r\nok\r\n");
	CHECK(A.tls_fail == 0 && B.tls_fail == 0);
	/* orderly: close_notify both ways, then EOF */
	stream_close(&B.s, "bye", STREAM_CLOSE_ORDERLY);
	CHECK(run_until(relays_done, 20000));
	CHECK(A.closed == 1 && B.closed == 1);
	CHECK(strcmp(A.reason, "eof") == 0);
	CHECK(strcmp(B.reason, "bye") == 0);
	tls_teardown(sa, cb);
}

/* Close the server at points through the handshake: both sides end,
 * each closed once, the client never reports success. */
static void
test_tls_close_mid_handshake(void)
{
	static const size_t at[] = {1, 50, 200, 400, 700};
	int sa[2], cb[2];

	if (!fixture()) {
		printf("SKIP no openssl CLI\n");
		return;
	}
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		CHECK(loop_open());
		CHECK(tls_setup(sa, cb, true));
		R2.stop_at = at[i];
		CHECK(run_until(relays_done, 20000));
		CHECK(A.closed == 1 && B.closed == 1);
		/* TLS 1.3: the client may finish before the server does */
		CHECK(B.tls_ok + B.tls_fail <= 1);
		CHECK(buf_avail(&A.got) == 0);
		CHECK(strcmp(A.reason, "mid-handshake") == 0);
		CHECK(strcmp(B.reason, "eof") == 0 ||
		      strcmp(B.reason, "tls") == 0);
		tls_teardown(sa, cb);
	}
}

/* A (TLS server) and B (TLS client to host) on a socketpair, implicit
 * TLS from the start; small socket buffers when small. */
static bool
tls_direct(const char *host, bool small)
{
	struct stream_tls st = {.ctx = sctx};
	struct stream_tls ct = {.ctx = cctx,
	    .client = true,
	    .host = host,
	    .policy = CONFIG_TLS_VERIFY};
	int sv[2];

	if (!(small ? pair_small(sv) : pair(sv)))
		return false;
	ep_open(&A, sv[0]);
	ep_open(&B, sv[1]);
	stream_start_tls(&A.s, &st);
	stream_start_tls(&B.s, &ct);
	return true;
}

static void
test_tls_verify_fails(void)
{
	if (!fixture()) {
		printf("SKIP no openssl CLI\n");
		return;
	}
	CHECK(loop_open());
	CHECK(tls_direct("wrong.example", false));
	CHECK(run_until(both_closed, 5000));
	CHECK(B.tls_fail == 1 && B.tls_ok == 0);
	CHECK(strstr(B.tls_err, "verify") != NULL);
	CHECK(strcmp(B.reason, "tls") == 0);
	CHECK(A.tls_ok == 0);
	loop_close();
}

static bool
a_has_after(void)
{
	return buf_avail(&A.got) >= 7;
}

/* STARTTLS: the plaintext pipelined behind the command never reaches
 * the session, before or after the switch. */
static void
test_starttls_drops_pipelined(void)
{
	int sv[2];

	if (!fixture()) {
		printf("SKIP no openssl CLI\n");
		return;
	}
	CHECK(loop_open());
	CHECK(pair(sv));
	ep_open(&A, sv[0]);
	ep_open(&B, sv[1]);
	A.starttls_srv = true;
	B.starttls_cli = true;
	B.on_tls = "AFTER\r\n";
	CHECK(stream_write(&B.s, "STARTTLS\r\nINJECT\r\n", 18) == 0);
	stream_flush(&B.s);
	CHECK(run_until(a_has_after, 5000));
	run_until(NULL, 50);
	CHECK(A.tls_ok == 1 && B.tls_ok == 1);
	CHECK_MEM(buf_peek(&A.got), buf_avail(&A.got), "AFTER\r\n");
	stream_close(&A.s, "test", STREAM_CLOSE_ORDERLY);
	CHECK(run_until(both_closed, 5000));
	CHECK(A.closed == 1 && B.closed == 1);
	loop_close();
}

static bool
b_got_big(void)
{
	return buf_avail(&B.got) >= BIG;
}

/* TLS with flow control: the client is paused while a big reply
 * arrives (ciphertext kept, recv stopped above the high-water mark),
 * then everything is decrypted in order after resume; small socket
 * buffers make the server's sends partial. */
static void
test_tls_pause_big(void)
{
	bool ok = true;

	if (!fixture()) {
		printf("SKIP no openssl CLI\n");
		return;
	}
	CHECK(loop_open());
	CHECK(tls_direct("localhost", true));
	stream_pause(&B.s);
	CHECK(queue_big(&A));
	run_until(NULL, 300);
	CHECK(buf_avail(&B.got) == 0);
	CHECK(B.tls_ok == 1);
	CHECK(stream_unsent(&A.s) > 0); /* the client stopped reading */
	stream_resume(&B.s);
	CHECK(run_until(b_got_big, 10000));
	CHECK(buf_avail(&B.got) == BIG);
	for (size_t i = 0; i < BIG; i++)
		if (buf_peek(&B.got)[i] != pattern(i))
			ok = false;
	CHECK(ok);
	stream_close(&A.s, "test", STREAM_CLOSE_ORDERLY);
	CHECK(run_until(both_closed, 5000));
	CHECK(strcmp(B.reason, "eof") == 0);
	loop_close();
}

static const struct harness_case cases[] = {
    {"pause_resume_pipelined", test_pause_resume_pipelined},
    {"pause_big_input", test_pause_big_input},
    {"eof_while_paused", test_eof_while_paused},
    {"partial_writes", test_partial_writes},
    {"close_orderly_pending", test_close_orderly_pending},
    {"close_abort_pending", test_close_abort_pending},
    {"close_linger", test_close_linger},
    {"reset_while_reading", test_reset_while_reading},
    {"reset_while_writing", test_reset_while_writing},
    {"connect_refused", test_connect_refused},
    {"connect_timeout", test_connect_timeout},
    {"timeouts", test_timeouts},
    {"timer_next", test_timer_next},
    {"write_timeout", test_write_timeout},
    {"tls_byte_relay", test_tls_byte_relay},
    {"tls_close_mid_handshake", test_tls_close_mid_handshake},
    {"tls_verify_fails", test_tls_verify_fails},
    {"starttls_drops_pipelined", test_starttls_drops_pipelined},
    {"tls_pause_big", test_tls_pause_big},
};

int harness_main_(int argc, char **argv);
#define main harness_main_
HARNESS_MAIN(cases)
#undef main

int
main(int argc, char **argv)
{
	int r = uring_available();

	if (r < 0) {
		printf("SKIP io_uring unavailable: %s\n", strerror(-r));
		return 77;
	}
	return harness_main_(argc, argv);
}
