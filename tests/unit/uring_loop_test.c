/* SPDX-License-Identifier: ISC */
/*
 * uring_loop_test.c - the io_uring wrapper over real sockets: multishot
 * accept, recv with provided buffers (and their exhaustion), short sends,
 * connect, timeouts, cancel, eventfd reads. Exit 77 when io_uring is
 * unavailable (disabled by sysctl or a seccomp profile).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "net/uring.h"

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct uring_loop *
loop_new(unsigned nbufs, unsigned bufsize)
{
	struct uring_loop_opts o = {.nbufs = nbufs, .bufsize = bufsize};
	struct uring_loop *l = NULL;
	char err[128];

	if (uring_loop_new(&o, &l, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	return l;
}

/* A listener on 127.0.0.1, ephemeral port; returns fd and fills sin. */
static int
listener(struct sockaddr_in *sin)
{
	socklen_t sl = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)sin, sizeof(*sin)) < 0 ||
	    listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)sin, &sl) < 0)
		return -1;
	return fd;
}

/* ---- echo: accept multishot, connect, recv, send ---- */

struct echo {
	struct uring_loop *l;
	struct uring_op acc, srv_rd, srv_wr, cli_conn, cli_wr, cli_rd;
	int lfd, sfd, cfd;
	struct sockaddr_in sin;
	uint8_t sbuf[64]; /* server's echo copy */
	size_t slen;
	char got[64];
	size_t gotlen;
	int accepted, conn_res, acc_final;
};

static void echo_acc_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n);

static void
echo_srv_wr_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	(void)op, (void)res, (void)flags, (void)d, (void)n;
}

static void
echo_srv_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct echo *e = uring_container_of(op, struct echo, srv_rd);

	(void)flags;
	if (res <= 0)
		return;
	memcpy(e->sbuf, d, n);
	e->slen = n;
	uring_send(e->l, &e->srv_wr, e->sfd, e->sbuf, e->slen);
	uring_recv(e->l, &e->srv_rd, e->sfd, false);
}

static void
echo_acc_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct echo *e = uring_container_of(op, struct echo, acc);

	(void)d, (void)n;
	if (!(flags & URING_F_MORE)) {
		e->acc_final = res;
		if (res >= 0)
			close(res);
		return;
	}
	if (res < 0)
		return;
	e->accepted++;
	e->sfd = res;
	uring_recv(e->l, &e->srv_rd, e->sfd, false);
}

static void
echo_cli_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct echo *e = uring_container_of(op, struct echo, cli_rd);

	(void)flags;
	if (res > 0 && e->gotlen + n <= sizeof(e->got)) {
		memcpy(e->got + e->gotlen, d, n);
		e->gotlen += n;
	}
	if (e->gotlen >= 5 || res <= 0) {
		uring_cancel(e->l, &e->acc);
		uring_cancel(e->l, &e->srv_rd);
		uring_loop_stop(e->l);
	} else
		uring_recv(e->l, &e->cli_rd, e->cfd, false);
}

static void
echo_cli_wr_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	(void)op, (void)flags, (void)d, (void)n;
	if (res != 5)
		fprintf(stderr, "client send: %d\n", res);
}

static void
echo_conn_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct echo *e = uring_container_of(op, struct echo, cli_conn);

	(void)flags, (void)d, (void)n;
	e->conn_res = res;
	if (res < 0) {
		uring_loop_stop(e->l);
		return;
	}
	uring_send(e->l, &e->cli_wr, e->cfd, "hello", 5);
	uring_recv(e->l, &e->cli_rd, e->cfd, false);
}

/* ---- helpers: a watchdog so no test can hang, and a drain ---- */

struct timer {
	struct uring_loop *l;
	struct uring_op op;
	int res;
	int fired;
	int rounds;
};

static void
watchdog_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct timer *t = uring_container_of(op, struct timer, op);

	(void)flags, (void)d, (void)n;
	t->res = res;
	if (res == 0) {
		t->fired = 1;
		fprintf(stderr, "watchdog fired\n");
		uring_loop_stop(t->l);
	}
}

static void
watchdog(struct timer *t, struct uring_loop *l, uint64_t ms)
{
	memset(t, 0, sizeof(*t));
	t->l = l;
	uring_op_init(&t->op, watchdog_cb);
	uring_timeout(l, &t->op, ms);
}

static void
drain_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct timer *t = uring_container_of(op, struct timer, op);

	(void)res, (void)flags, (void)d, (void)n;
	if (uring_loop_busy(t->l) == 0 || ++t->rounds > 400)
		uring_loop_stop(t->l);
	else
		uring_timeout(t->l, &t->op, 5);
}

/* Run until every op has delivered its final callback (or ~2 s). */
static int
drain(struct uring_loop *l)
{
	struct timer t;

	memset(&t, 0, sizeof(t));
	t.l = l;
	uring_op_init(&t.op, drain_cb);
	uring_timeout(l, &t.op, 1);
	if (uring_loop_run(l) != 0)
		return -1;
	return uring_loop_busy(l) == 0 ? 0 : -1;
}

static void
test_echo(void)
{
	static struct echo e;
	struct timer wd;

	memset(&e, 0, sizeof(e));
	e.sfd = -1;
	CHECK((e.l = loop_new(0, 0)) != NULL);
	CHECK((e.lfd = listener(&e.sin)) >= 0);
	e.cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(e.cfd >= 0);
	uring_op_init(&e.acc, echo_acc_cb);
	uring_op_init(&e.srv_rd, echo_srv_rd_cb);
	uring_op_init(&e.srv_wr, echo_srv_wr_cb);
	uring_op_init(&e.cli_conn, echo_conn_cb);
	uring_op_init(&e.cli_wr, echo_cli_wr_cb);
	uring_op_init(&e.cli_rd, echo_cli_rd_cb);
	watchdog(&wd, e.l, 5000);
	uring_accept(e.l, &e.acc, e.lfd);
	uring_connect(
	    e.l, &e.cli_conn, e.cfd, (struct sockaddr *)&e.sin, sizeof(e.sin));
	CHECK(uring_loop_run(e.l) == 0);
	CHECK(!wd.fired);
	CHECK(e.conn_res == 0);
	CHECK(e.accepted == 1);
	CHECK_MEM(e.got, e.gotlen, "hello");
	uring_cancel(e.l, &wd.op);
	CHECK(drain(e.l) == 0);
	CHECK(wd.res == -ECANCELED);
	CHECK(e.acc_final == -ECANCELED);
	CHECK(!uring_op_busy(&e.srv_rd));
	close(e.cfd);
	close(e.sfd);
	close(e.lfd);
	uring_loop_free(e.l);
}

/* ---- a send far larger than the socket buffer: short sends ---- */

#define BIG (8u << 20)

struct big {
	struct uring_loop *l;
	struct uring_op wr, rd;
	int fds[2];
	uint8_t *out;
	size_t got;
	int send_res, rd_final, bad;
};

static void
big_wr_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct big *b = uring_container_of(op, struct big, wr);

	(void)flags, (void)d, (void)n;
	b->send_res = res;
}

static void
big_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct big *b = uring_container_of(op, struct big, rd);

	for (size_t i = 0; res > 0 && i < n; i++)
		if (d[i] != (uint8_t)((b->got + i) * 7))
			b->bad = 1;
	if (res > 0)
		b->got += n;
	if (!(flags & URING_F_MORE))
		b->rd_final = res;
	if (b->got == BIG && (flags & URING_F_MORE))
		uring_cancel(b->l, &b->rd);
	if (!(flags & URING_F_MORE))
		uring_loop_stop(b->l);
}

static void
test_short_send(void)
{
	static struct big b;
	struct timer wd;
	int small = 4096;

	memset(&b, 0, sizeof(b));
	CHECK((b.l = loop_new(8, 4096)) != NULL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	          b.fds) == 0);
	CHECK(setsockopt(
	          b.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	CHECK((b.out = malloc(BIG)) != NULL);
	for (size_t i = 0; i < BIG; i++)
		b.out[i] = (uint8_t)(i * 7);
	uring_op_init(&b.wr, big_wr_cb);
	uring_op_init(&b.rd, big_rd_cb);
	watchdog(&wd, b.l, 10000);
	uring_send(b.l, &b.wr, b.fds[0], b.out, BIG);
	uring_recv(b.l, &b.rd, b.fds[1], true);
	CHECK(uring_loop_run(b.l) == 0);
	CHECK(!wd.fired);
	uring_cancel(b.l, &wd.op);
	CHECK(drain(b.l) == 0);
	CHECK(b.send_res == (int)BIG);
	CHECK(b.got == BIG);
	CHECK(!b.bad);
	CHECK(b.rd_final == -ECANCELED || b.rd_final > 0);
	close(b.fds[0]);
	close(b.fds[1]);
	free(b.out);
	uring_loop_free(b.l);
}

/* ---- timeouts fire, and cancel ---- */

static void
stop_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct timer *t = uring_container_of(op, struct timer, op);

	(void)flags, (void)d, (void)n;
	t->res = res;
	t->fired = 1;
	uring_loop_stop(t->l);
}

static void
test_timeout_fires(void)
{
	struct uring_loop *l;
	struct timer t;
	uint64_t t0;

	CHECK((l = loop_new(0, 0)) != NULL);
	memset(&t, 0, sizeof(t));
	t.l = l;
	uring_op_init(&t.op, stop_cb);
	t0 = now_ms();
	uring_timeout(l, &t.op, 50);
	CHECK(uring_op_busy(&t.op));
	CHECK(uring_loop_run(l) == 0);
	CHECK(t.fired && t.res == 0);
	CHECK(now_ms() - t0 >= 49);
	CHECK(now_ms() - t0 < 2000);
	CHECK(!uring_op_busy(&t.op));
	CHECK(uring_loop_busy(l) == 0);
	uring_loop_free(l);
}

struct canc {
	struct uring_loop *l;
	struct uring_op tmo, rd, stopper;
	int tmo_res, rd_res, ncb;
};

static void
canc_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct canc *c = uring_container_of(op, struct canc, stopper);

	(void)res, (void)flags, (void)d, (void)n;
	uring_cancel(c->l, &c->tmo);
	uring_cancel(c->l, &c->rd);
	uring_cancel(c->l, &c->rd); /* twice: harmless */
}

static void
canc_tmo_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct canc *c = uring_container_of(op, struct canc, tmo);

	(void)flags, (void)d, (void)n;
	c->tmo_res = res;
	if (++c->ncb == 2)
		uring_loop_stop(c->l);
}

static void
canc_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct canc *c = uring_container_of(op, struct canc, rd);

	(void)flags, (void)d, (void)n;
	c->rd_res = res;
	if (++c->ncb == 2)
		uring_loop_stop(c->l);
}

static void
test_cancel(void)
{
	struct canc c;
	struct timer wd;
	int fds[2];
	uint64_t t0;

	memset(&c, 0, sizeof(c));
	CHECK((c.l = loop_new(0, 0)) != NULL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	          fds) == 0);
	uring_op_init(&c.tmo, canc_tmo_cb);
	uring_op_init(&c.rd, canc_rd_cb);
	uring_op_init(&c.stopper, canc_cb);
	watchdog(&wd, c.l, 5000);
	t0 = now_ms();
	uring_timeout(c.l, &c.tmo, 10000);
	uring_recv(c.l, &c.rd, fds[1], false);
	uring_timeout(c.l, &c.stopper, 20);
	CHECK(uring_loop_run(c.l) == 0);
	CHECK(!wd.fired);
	CHECK(c.tmo_res == -ECANCELED);
	CHECK(c.rd_res == -ECANCELED);
	CHECK(now_ms() - t0 < 2000);
	/* Cancel before the loop ever ran: the op is completed, not leaked. */
	uring_timeout(c.l, &c.tmo, 10000);
	uring_cancel(c.l, &c.tmo);
	uring_cancel(c.l, &wd.op);
	CHECK(drain(c.l) == 0);
	CHECK(c.tmo_res == -ECANCELED);
	close(fds[0]);
	close(fds[1]);
	uring_loop_free(c.l);
}

/* ---- an eventfd written from another thread (chan wakeups) ---- */

struct efd {
	struct uring_loop *l;
	struct uring_op rd;
	uint64_t val;
	int res;
	int fd;
};

static void
efd_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct efd *e = uring_container_of(op, struct efd, rd);

	(void)flags, (void)d, (void)n;
	e->res = res;
	uring_loop_stop(e->l);
}

static void *
efd_writer(void *arg)
{
	struct efd *e = arg;
	uint64_t one = 3;

	usleep(30000);
	if (write(e->fd, &one, sizeof(one)) != sizeof(one))
		perror("eventfd write");
	return NULL;
}

static void
test_eventfd(void)
{
	struct efd e;
	struct timer wd;
	pthread_t th;

	memset(&e, 0, sizeof(e));
	CHECK((e.l = loop_new(0, 0)) != NULL);
	CHECK((e.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0);
	uring_op_init(&e.rd, efd_cb);
	watchdog(&wd, e.l, 5000);
	uring_read(e.l, &e.rd, e.fd, &e.val, sizeof(e.val));
	CHECK(pthread_create(&th, NULL, efd_writer, &e) == 0);
	CHECK(uring_loop_run(e.l) == 0);
	pthread_join(th, NULL);
	CHECK(!wd.fired);
	CHECK(e.res == 8);
	CHECK(e.val == 3);
	uring_cancel(e.l, &wd.op);
	CHECK(drain(e.l) == 0);
	close(e.fd);
	uring_loop_free(e.l);
}

/* ---- more readers than provided buffers: -ENOBUFS is absorbed ---- */

#define NCONN 16
#define PER   (64u * 1024)

struct nb {
	struct uring_loop *l;
	struct nb_conn {
		struct nb *nb;
		struct uring_op rd;
		int fds[2];
		size_t got;
		int bad, eof;
	} c[NCONN];
	int done;
};

static void
nb_rd_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct nb_conn *c = uring_container_of(op, struct nb_conn, rd);

	(void)flags;
	if (res <= 0) {
		c->eof = 1;
		if (++c->nb->done == NCONN)
			uring_loop_stop(c->nb->l);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (d[i] != (uint8_t)(c->got + i))
			c->bad = 1;
	c->got += n;
	uring_recv(c->nb->l, &c->rd, c->fds[1], false);
}

static void
test_enobufs(void)
{
	static struct nb nb;
	static uint8_t data[PER];
	struct timer wd;

	memset(&nb, 0, sizeof(nb));
	for (size_t i = 0; i < PER; i++)
		data[i] = (uint8_t)i;
	CHECK((nb.l = loop_new(2, 512)) != NULL);
	for (int i = 0; i < NCONN; i++) {
		struct nb_conn *c = &nb.c[i];
		int big = 1 << 20;

		c->nb = &nb;
		CHECK(socketpair(
		          AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fds) == 0);
		(void)setsockopt(
		    c->fds[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		CHECK(write(c->fds[0], data, PER) == (ssize_t)PER);
		shutdown(c->fds[0], SHUT_WR);
		uring_op_init(&c->rd, nb_rd_cb);
		uring_recv(nb.l, &c->rd, c->fds[1], false);
	}
	watchdog(&wd, nb.l, 10000);
	CHECK(uring_loop_run(nb.l) == 0);
	CHECK(!wd.fired);
	for (int i = 0; i < NCONN; i++) {
		CHECK(nb.c[i].got == PER);
		CHECK(!nb.c[i].bad);
		close(nb.c[i].fds[0]);
		close(nb.c[i].fds[1]);
	}
	uring_cancel(nb.l, &wd.op);
	CHECK(drain(nb.l) == 0);
	uring_loop_free(nb.l);
}

/* ---- multishot accept of many connections, then connection refused ---- */

struct macc {
	struct uring_loop *l;
	struct uring_op acc;
	struct uring_op conn[8];
	int cfd[8];
	int accepted, connected, final;
};

static void
macc_acc_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	struct macc *m = uring_container_of(op, struct macc, acc);

	(void)d, (void)n;
	if (res >= 0) {
		m->accepted++;
		close(res);
	}
	if (!(flags & URING_F_MORE))
		m->final = res;
	if ((flags & URING_F_MORE) && m->accepted == 8 && m->connected == 8)
		uring_loop_stop(m->l);
}

static int refused_res;

static void
macc_conn_cb(
    struct uring_op *op, int res, unsigned flags, const uint8_t *d, size_t n)
{
	(void)op, (void)flags, (void)d, (void)n;
	refused_res = res;
}

static void
test_accept_many(void)
{
	static struct macc m;
	struct sockaddr_in sin, dead;
	struct timer wd;
	int lfd;

	memset(&m, 0, sizeof(m));
	CHECK((m.l = loop_new(0, 0)) != NULL);
	CHECK((lfd = listener(&sin)) >= 0);
	uring_op_init(&m.acc, macc_acc_cb);
	watchdog(&wd, m.l, 5000);
	uring_accept(m.l, &m.acc, lfd);
	for (int i = 0; i < 8; i++) {
		m.cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(m.cfd[i] >= 0);
		CHECK(connect(m.cfd[i], (struct sockaddr *)&sin, sizeof(sin)) ==
		      0);
		m.connected++;
	}
	CHECK(uring_loop_run(m.l) == 0);
	CHECK(!wd.fired);
	CHECK(m.accepted == 8);
	uring_cancel(m.l, &m.acc);
	uring_cancel(m.l, &wd.op);
	CHECK(drain(m.l) == 0);
	CHECK(m.final == -ECANCELED);
	for (int i = 0; i < 8; i++)
		close(m.cfd[i]);
	/* connect to the now closed port: -ECONNREFUSED via the callback */
	close(lfd);
	dead = sin;
	m.cfd[0] =
	    socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(m.cfd[0] >= 0);
	uring_op_init(&m.conn[0], macc_conn_cb);
	uring_connect(
	    m.l, &m.conn[0], m.cfd[0], (struct sockaddr *)&dead, sizeof(dead));
	refused_res = 1;
	CHECK(drain(m.l) == 0);
	CHECK(refused_res == -ECONNREFUSED);
	close(m.cfd[0]);
	uring_loop_free(m.l);
}

static const struct harness_case cases[] = {
    {"echo", test_echo},
    {"short_send", test_short_send},
    {"timeout_fires", test_timeout_fires},
    {"cancel", test_cancel},
    {"eventfd", test_eventfd},
    {"enobufs", test_enobufs},
    {"accept_many", test_accept_many},
};

static int
skip_unless_uring(void)
{
	int r = uring_available();

	if (r < 0) {
		printf("SKIP io_uring unavailable: %s\n", strerror(-r));
		return 77;
	}
	return 0;
}

int harness_main_(int argc, char **argv);
#define main harness_main_
HARNESS_MAIN(cases)
#undef main

int
main(int argc, char **argv)
{
	int r;

	if ((r = skip_unless_uring()) != 0)
		return r;
	return harness_main_(argc, argv);
}
