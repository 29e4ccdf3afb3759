/* SPDX-License-Identifier: ISC */
/*
 * metrics_http.c - the metrics thread: its loop, listeners and clients
 * (see metrics_http.h for the design and the bounds).
 *
 * A client's life: accepted (or closed at once over METRICS_CONNS_MAX),
 * a deadline of METRICS_REQ_MS for its request header, which is parsed
 * once complete; the answer (status line, headers, then the page) is
 * queued in pieces that fit the stream's output cap, the next piece when
 * the last has drained; then an orderly close. Stopping: the main thread
 * writes the eventfd; accepts are cancelled, clients aborted, and the
 * loop ends once every op is final.
 */
#include "metrics/metrics_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "metrics/metrics_page.h"
#include "net/stream.h"
#include "net/uring.h"

#define PIECE (128 * 1024) /* bytes of the page queued at once */

struct mlistener {
	struct metrics_server *m;
	struct uring_op acc;
	struct uring_op retry; /* after an accept error */
	int fd;
	char text[64];
};

struct mconn {
	struct stream st;
	struct metrics_server *m;
	struct buf page; /* the answer's body, then sent from off */
	bool answered;
	struct mconn *next, *prev; /* metrics_server.conns */
};

struct metrics_server {
	struct mlistener *ls;
	size_t nls;
	int efd; /* stop: written by the main thread */
	uint64_t eval;
	struct uring_op stop_rd;
	struct uring_loop *l;
	pthread_t th;
	bool started;
	bool stopping;
	struct mconn *conns; /* open clients */
	unsigned nconns;
	char start_err[256]; /* the loop could not be made: why */
};

/* ---- the end ---- */

static void
maybe_done(struct metrics_server *m)
{
	if (!m->stopping || m->nconns > 0 || uring_op_busy(&m->stop_rd))
		return;
	for (size_t i = 0; i < m->nls; i++)
		if (uring_op_busy(&m->ls[i].acc) ||
		    uring_op_busy(&m->ls[i].retry))
			return;
	uring_loop_stop(m->l);
}

/* ---- answers ---- */

/* Queue the next piece of the body; close once it is all out. */
static void
conn_more(struct mconn *c)
{
	size_t n = buf_avail(&c->page);

	if (n > PIECE)
		n = PIECE;
	if (n > 0) {
		if (stream_write(&c->st, buf_peek(&c->page), n) < 0) {
			stream_close(
			    &c->st, "metrics: write", STREAM_CLOSE_ABORT);
			return;
		}
		buf_consume(&c->page, n);
		return;
	}
	stream_close(&c->st, "done", STREAM_CLOSE_ORDERLY);
}

static void
conn_answer(
    struct mconn *c, const char *status, const char *extra, bool head_only)
{
	struct buf *out = stream_outbuf(&c->st);
	const char *type = "text/plain; charset=utf-8";

	c->answered = true;
	if (strncmp(status, "200", 3) == 0)
		type = "text/plain; version=0.0.4; charset=utf-8";
	else if (buf_avail(&c->page) == 0 &&
	         buf_appendf(&c->page, "%s\n", status) < 0)
		buf_reset(&c->page);
	if (buf_appendf(out,
	        "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	        "%sConnection: close\r\n\r\n",
	        status, type, buf_avail(&c->page), extra) < 0) {
		stream_close(&c->st, "metrics: write", STREAM_CLOSE_ABORT);
		return;
	}
	if (head_only)
		buf_reset(&c->page);
	stream_set_timeouts(&c->st, 0, METRICS_SEND_MS);
	stream_set_deadline(&c->st, METRICS_SEND_MS);
	conn_more(c);
}

/* The request line of a complete header: answer it. */
static void
conn_request(struct mconn *c, const char *line, size_t len)
{
	char method[16], path[256], ver[16];
	char req[300];
	bool get, head;
	int rc;

	str_ncopy(req, sizeof(req), line, len < sizeof(req) ? len : 0);
	if (len >= sizeof(req) ||
	    sscanf(req, "%15s %255s %15s", method, path, ver) != 3 ||
	    strncmp(ver, "HTTP/1.", 7) != 0) {
		conn_answer(c, "400 Bad Request", "", false);
		return;
	}
	get = strcmp(method, "GET") == 0;
	head = strcmp(method, "HEAD") == 0;
	if (!get && !head) {
		conn_answer(
		    c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", false);
		return;
	}
	if (strcmp(path, "/metrics") != 0 &&
	    strncmp(path, "/metrics?", 9) != 0) {
		conn_answer(c, "404 Not Found", "", head);
		return;
	}
	if ((rc = metrics_page(&c->page)) < 0) {
		log_warnx(
		    "event=metrics-page-failed error=\"%s\"", strerror(-rc));
		buf_reset(&c->page);
		conn_answer(c, "500 Internal Server Error", "", head);
		return;
	}
	conn_answer(c, "200 OK", "", head);
}

/* ---- stream callbacks ---- */

static size_t
conn_input(struct stream *s, void *user, const uint8_t *p, size_t n)
{
	struct mconn *c = user;
	const uint8_t *end;

	(void)s;
	if (c->answered)
		return n; /* after the request: ignored */
	end = memmem(p, n, "\r\n\r\n", 4);
	if (end == NULL)
		end = memmem(p, n, "\n\n", 2);
	if (end == NULL) {
		if (n > METRICS_REQ_MAX)
			conn_answer(c, "431 Request Header Fields Too Large",
			    "", false);
		return 0; /* kept: offered again with more */
	}
	if ((size_t)(end - p) > METRICS_REQ_MAX) {
		conn_answer(
		    c, "431 Request Header Fields Too Large", "", false);
		return n;
	}
	{
		/* found: a blank line follows the request line */
		const uint8_t *eol = memchr(p, '\n', n);
		size_t len = (size_t)(eol - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		conn_request(c, (const char *)p, len);
	}
	return n;
}

static void
conn_drained(struct stream *s, void *user)
{
	struct mconn *c = user;

	if (c->answered && !stream_closing(s))
		conn_more(c);
}

static void
conn_timeout(struct stream *s, void *user, enum stream_timer which)
{
	(void)user, (void)which;
	/* a slow client: the request or the answer took too long */
	stream_close(s, "timeout", STREAM_CLOSE_ABORT);
}

static void
conn_closed(struct stream *s, void *user, const char *reason)
{
	struct mconn *c = user;
	struct metrics_server *m = c->m;

	(void)s;
	if (log_debug_enabled())
		log_debug("event=metrics-client-closed reason=%s", reason);
	buf_fini(&c->page);
	if (c->prev)
		c->prev->next = c->next;
	else
		m->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	m->nconns--;
	maybe_done(m);
}

static const struct stream_cbs conn_cbs = {
    .input = conn_input,
    .drained = conn_drained,
    .timeout = conn_timeout,
    .closed = conn_closed,
};

/* ---- accepting ---- */

static void
conn_new(struct metrics_server *m, int fd)
{
	struct mconn *c;

	if (m->stopping || m->nconns >= METRICS_CONNS_MAX) {
		close(fd); /* a flood: the ones open are served first */
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->m = m;
	buf_init(&c->page, METRICS_PAGE_MAX);
	c->next = m->conns;
	if (c->next)
		c->next->prev = c;
	m->conns = c;
	m->nconns++;
	stream_open(&c->st, m->l, fd, &conn_cbs, c);
	stream_set_timeouts(&c->st, METRICS_REQ_MS, 0);
	stream_set_deadline(&c->st, METRICS_REQ_MS);
	stream_set_linger(&c->st, 1000);
}

static void
acc_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct mlistener *ls = uring_container_of(op, struct mlistener, acc);
	struct metrics_server *m = ls->m;

	(void)data, (void)len;
	if (res >= 0)
		conn_new(m, res);
	if (flags & URING_F_MORE)
		return;
	if (m->stopping) {
		maybe_done(m);
		return;
	}
	if (res < 0) {
		/* EMFILE and the like: try again later, not in a loop */
		log_warnx("event=accept-failed listen=%s error=\"%s\" "
		          "listener=metrics",
		    ls->text, strerror(-res));
		uring_timeout(m->l, &ls->retry, 100);
		return;
	}
	uring_accept(m->l, &ls->acc, ls->fd);
}

static void
retry_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct mlistener *ls = uring_container_of(op, struct mlistener, retry);

	(void)res, (void)flags, (void)data, (void)len;
	if (ls->m->stopping)
		maybe_done(ls->m);
	else
		uring_accept(ls->m->l, &ls->acc, ls->fd);
}

static void
stop_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct metrics_server *m =
	    uring_container_of(op, struct metrics_server, stop_rd);

	(void)res, (void)flags, (void)data, (void)len;
	m->stopping = true;
	for (size_t i = 0; i < m->nls; i++) {
		uring_cancel(m->l, &m->ls[i].acc);
		uring_cancel(m->l, &m->ls[i].retry);
	}
	/* `closed` never comes from inside stream_close: the list holds */
	for (struct mconn *c = m->conns; c; c = c->next)
		stream_close(&c->st, "stopping", STREAM_CLOSE_ABORT);
	maybe_done(m);
}

/* ---- the thread ---- */

static void *
thread_main(void *arg)
{
	struct metrics_server *m = arg;
	struct uring_loop_opts o = {
	    .entries = 64, .nbufs = 64, .bufsize = 4096};
	int res;

	res = uring_loop_new(&o, &m->l, m->start_err, sizeof(m->start_err));
	if (res < 0) {
		log_warnx("metrics: %s", m->start_err);
		return NULL;
	}
	uring_op_init(&m->stop_rd, stop_cb);
	uring_read(m->l, &m->stop_rd, m->efd, &m->eval, sizeof(m->eval));
	for (size_t i = 0; i < m->nls; i++) {
		uring_op_init(&m->ls[i].acc, acc_cb);
		uring_op_init(&m->ls[i].retry, retry_cb);
		uring_accept(m->l, &m->ls[i].acc, m->ls[i].fd);
	}
	if ((res = uring_loop_run(m->l)) < 0)
		fatalx("metrics thread: io_uring: %s", strerror(-res));
	uring_loop_free(m->l);
	m->l = NULL;
	return NULL;
}

/* ---- main-thread API ---- */

static int
bind_one(const struct config_addr *a, int *out, char *err, size_t errlen)
{
	int fd, one = 1, e;

	fd = socket(
	    a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) < 0 ||
	    listen(fd, 128) < 0)
		goto fail;
	*out = fd;
	return 0;
fail:
	e = -errno;
	snprintf(err, errlen, "metrics listen %s: %s", a->text, strerror(-e));
	if (fd >= 0)
		close(fd);
	return e;
}

int
metrics_server_new(const struct config_metrics *cfg,
    struct metrics_server **out, char *err, size_t errlen)
{
	struct metrics_server *m;
	int res;

	*out = NULL;
	if (cfg->nlisten == 0)
		return 0;
	m = xcalloc(1, sizeof(*m));
	m->ls = xcalloc(cfg->nlisten, sizeof(*m->ls));
	m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->efd < 0) {
		res = -errno;
		snprintf(err, errlen, "metrics: eventfd: %s", strerror(-res));
		metrics_server_free(m);
		return res;
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct mlistener *ls = &m->ls[i];

		ls->m = m;
		str_copy(ls->text, sizeof(ls->text), cfg->listen[i].text);
		if ((res = bind_one(&cfg->listen[i], &ls->fd, err, errlen)) <
		    0) {
			metrics_server_free(m);
			return res;
		}
		m->nls++;
	}
	*out = m;
	return 0;
}

int
metrics_server_start(struct metrics_server *m)
{
	int res;

	if (m == NULL)
		return 0;
	if ((res = pthread_create(&m->th, NULL, thread_main, m)) != 0)
		return -res;
	m->started = true;
	return 0;
}

void
metrics_server_free(struct metrics_server *m)
{
	uint64_t one = 1;

	if (m == NULL)
		return;
	if (m->started) {
		if (write(m->efd, &one, sizeof(one)) < 0)
			log_warnx("metrics: stop: %s", strerror(errno));
		pthread_join(m->th, NULL);
	}
	for (size_t i = 0; i < m->nls; i++)
		close(m->ls[i].fd);
	if (m->efd >= 0)
		close(m->efd);
	free(m->ls);
	free(m);
}
