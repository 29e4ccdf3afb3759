/* SPDX-License-Identifier: ISC */
/*
 * deliver_worker.c - a delivery worker: one thread, one uring loop, many
 * outbound SMTP connections.
 *
 * A job (one message, one destination) goes through: route lookup, DNS
 * (MX, or the route's host) through the resolver thread, the body read
 * from the queue, then the targets in order: an idle connection to the
 * address is reused, otherwise a new one is opened if the per-host cap
 * allows, otherwise the job is parked until a connection frees up. When
 * a host fails as a whole (refused, 421, timeout, TLS required and
 * missing) the recipients it left unresolved move on to the next address
 * and MX host; every other reply is final for its recipient. The job then
 * goes back to the scheduler with an outcome per recipient.
 *
 * A connection's bytes: smtp_out appends plaintext to `out`; conn_flush
 * moves it to `wire` (through TLS once STARTTLS is up) and keeps one
 * send in flight. Deadlines (connect, RFC 5321 reply timeouts, idle) are
 * checked by a ticker rather than a timer per connection.
 *
 * Everything here belongs to the worker thread; jobs, DNS answers and
 * reloaded snapshots arrive on its chan, and the per-host cap is the only
 * shared state (deliver.c). Configuration: the worker's current snapshot
 * changes only in on_chan; a job takes a reference to it at start (its
 * route points into it) and a connection one to its opening job's (its
 * HELO name and credentials do), each dropped when it is freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_int.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "smtp/smtp_out.h"
#include "net/tls.h"
#include "net/uring.h"

#define WORKER_TICK_MS 200
#define BODY_MAX       ((size_t)2 << 30)

struct djob;

struct dconn {
	struct deliver_worker *w;
	int fd;
	struct uring_op rd, wr, cn;
	char key[80];            /* "ip:port": the per-host cap */
	char host[DNS_NAME_MAX]; /* MX or route host name */
	char relay[300];         /* "host[ip]:port", for logs */
	struct sockaddr_storage sa;
	socklen_t salen;
	struct smtp_out *so;
	struct smtp_out_cfg socfg;
	struct deliver_cfg cfg; /* its opening job's: socfg points into it */
	struct tls_conn *tls;
	bool handshaking;
	struct buf out;    /* plaintext from smtp_out */
	struct buf wire;   /* the bytes of the send in flight */
	struct buf tin;    /* decrypted input */
	bool want_flushed; /* smtp_out said WRITE */
	bool after_send_close;
	bool closing;
	bool in_recv;        /* inside on_recv: freeing waits for it */
	unsigned nmsgs;      /* transactions carried, for the cap */
	struct djob *job;    /* NULL when idle */
	uint64_t deadline;   /* mono ms, 0 = none */
	uint64_t idle_since; /* mono ms */
	struct dconn *next;
};

struct djob {
	struct deliver_worker *w;
	struct sched_job *sj;
	struct dns_req *dns;
	struct dns_target *targets;
	size_t ntargets, ti, ai; /* the next address to try */
	uint16_t port;
	enum config_tls_policy tls;
	struct deliver_cfg cfg; /* the worker's at start: route points in */
	const struct config_route *route;
	struct buf body;
	const char **addrs; /* unresolved recipients, for smtp_out */
	size_t *map;        /* addrs[i] is sj->rcpts[map[i]] */
	size_t nleft;
	struct smtp_out_result *results;
	struct smtp_out_job job;
	bool any_reply;  /* a host answered: not a dest failure */
	bool tls_failed; /* the last handshake failed under may */
	bool tls_off;    /* so this address goes again in plain */
	char last_err[400];
	struct djob *next; /* parked list */
};

struct deliver_worker {
	struct deliver *d;
	unsigned idx;
	pthread_t tid;
	bool started;
	struct chan *chan;
	struct deliver_cfg cfg; /* for new jobs; swapped in on_chan only */
	struct uring_loop *loop;
	struct uring_op chan_op, tick;
	uint64_t chan_val;
	struct dconn *conns;
	struct djob *parked;
	unsigned ndns; /* DNS requests out: wait for them before exit */
	bool stopping; /* finish what is held, take nothing new */
	bool exiting;  /* all done: chan_op cancelled, not re-armed */
};

static void conn_act(struct dconn *c, enum smtp_out_action a);
static void conn_flush(struct dconn *c);
static void conn_close(struct dconn *c);
static void job_try(struct djob *dj);
static void job_next_host(struct djob *dj);
static void job_targets_ready(struct djob *dj);

/* Give the oldest parked job another try (it parks again if it must). */
static void
job_unpark(struct deliver_worker *w)
{
	struct djob **pp = &w->parked, *dj;

	if (*pp == NULL)
		return;
	while ((*pp)->next)
		pp = &(*pp)->next;
	dj = *pp;
	*pp = NULL;
	job_try(dj);
}

/* --- jobs ---------------------------------------------------------------- */

static void
rcpt_set(struct sched_job_rcpt *r, enum sched_outcome o, const char *dsn,
    const char *text)
{
	r->outcome = o;
	str_copy(r->dsn, sizeof(r->dsn), dsn);
	str_copy(r->reply, sizeof(r->reply), text);
}

/* Every recipient is final: hand the job back to the scheduler. */
static void
job_finish(struct djob *dj)
{
	struct sched_job *sj = dj->sj;

	for (size_t i = 0; i < dj->nleft; i++)
		rcpt_set(&sj->rcpts[dj->map[i]], SCHED_OUTCOME_TEMPFAIL,
		    "4.4.1",
		    dj->last_err[0] ? dj->last_err
		                    : "no host could be reached");
	sj->dest_failed = !dj->any_reply;
	sj->msg.type = DELIVER_MSG_DONE;
	chan_send(dj->w->d->sched_chan, &sj->msg);
	deliver_cfg_drop(&dj->cfg);
	free(dj->dns);
	free(dj->targets);
	buf_fini(&dj->body);
	free(dj->addrs);
	free(dj->map);
	free(dj->results);
	free(dj);
}

/* The whole destination failed before any connection: DNS said so. */
static void
job_fail_dns(struct djob *dj, const struct dns_req *req)
{
	bool perm = dns_status_permanent(req->status);
	const char *dsn = req->status == DNS_NULLMX ? "5.1.10"
	                  : perm                    ? "5.1.2"
	                                            : "4.4.3";

	for (size_t i = 0; i < dj->nleft; i++)
		rcpt_set(&dj->sj->rcpts[dj->map[i]],
		    perm ? SCHED_OUTCOME_PERMFAIL : SCHED_OUTCOME_TEMPFAIL, dsn,
		    req->reason);
	dj->nleft = 0;
	/* a permanent answer is an answer; a DNS outage is a dest failure */
	dj->any_reply = perm;
	job_finish(dj);
}

static void
job_prepare(struct djob *dj)
{
	struct sched_job *sj = dj->sj;

	dj->addrs = xcalloc(sj->nrcpts, sizeof(*dj->addrs));
	dj->map = xcalloc(sj->nrcpts, sizeof(*dj->map));
	dj->results = xcalloc(sj->nrcpts, sizeof(*dj->results));
	for (size_t i = 0; i < sj->nrcpts; i++) {
		dj->addrs[i] = sj->rcpts[i].addr;
		dj->map[i] = i;
	}
	dj->nleft = sj->nrcpts;
}

static void
job_start(struct deliver_worker *w, struct sched_job *sj)
{
	const struct deliver_settings *cfg = &w->cfg.set;
	struct djob *dj = xcalloc(1, sizeof(*dj));

	dj->w = w;
	dj->sj = sj;
	deliver_cfg_copy(&dj->cfg, &w->cfg);
	buf_init(&dj->body, BODY_MAX);
	job_prepare(dj);
	dj->route = config_route_find(cfg->routes, cfg->nroutes, sj->domain);
	dj->port = dj->route && dj->route->port ? dj->route->port
	                                        : cfg->delivery->port;
	dj->tls = dj->route && dj->route->tls_set ? dj->route->tls
	                                          : cfg->delivery->tls;
	if (w->stopping) {
		str_copy(dj->last_err, sizeof(dj->last_err),
		    "delivery is shutting down");
		job_finish(dj);
		return;
	}
	if (dj->route) {
		struct dns_target t;

		/* An IP address (the usual smarthost route) needs no trip to
		 * the resolver thread: two thread wakeups per job saved. */
		if (dns_literal_target(dj->route->host, &t)) {
			dj->ntargets = 1;
			dj->targets =
			    (struct dns_target *)(void *)xmemdup(&t, sizeof(t));
			job_targets_ready(dj);
			return;
		}
	}
	dj->dns = xcalloc(1, sizeof(*dj->dns));
	dj->dns->reply = w->chan;
	dj->dns->arg = dj;
	if (dj->route) {
		str_copy(
		    dj->dns->domain, sizeof(dj->dns->domain), dj->route->host);
		/* literal or name: the resolver answers an IP itself */
		dns_resolve_host(w->d->dns, dj->dns);
	} else {
		str_copy(dj->dns->domain, sizeof(dj->dns->domain), sj->domain);
		dns_resolve_mx(w->d->dns, dj->dns);
	}
	w->ndns++;
}

static void
job_dns_done(struct djob *dj)
{
	struct dns_req *req = dj->dns;

	if (dj->w->stopping) {
		str_copy(dj->last_err, sizeof(dj->last_err),
		    "delivery is shutting down");
		job_finish(dj);
		return;
	}
	if (req->status != DNS_OK) {
		job_fail_dns(dj, req);
		return;
	}
	dj->ntargets = req->ntargets;
	dj->targets = (struct dns_target *)(void *)xmemdup(
	    req->targets, req->ntargets * sizeof(*req->targets));
	free(dj->dns);
	dj->dns = NULL;
	job_targets_ready(dj);
}

/* The targets are known: read the body, then go. */
static void
job_targets_ready(struct djob *dj)
{
	int rc;

	rc = queue_body_get(dj->w->d->q, dj->sj->id, &dj->body);
	if (rc != 0) {
		str_fmt(dj->last_err, sizeof(dj->last_err),
		    "cannot read the message from the queue: %s",
		    strerror(-rc));
		dj->any_reply = true; /* not the destination's fault */
		job_finish(dj);
		return;
	}
	dj->job.from = dj->sj->from;
	dj->job.body = buf_peek(&dj->body);
	dj->job.body_len = buf_avail(&dj->body);
	dj->job.need_8bitmime = mem_has_8bit(dj->job.body, dj->job.body_len);
	job_try(dj);
}

/* Collect a finished transaction's results; recipients left unresolved by
 * a failed host go on to the next address. */
static void
job_results(struct djob *dj, struct dconn *c)
{
	bool host_failed = smtp_out_host_failed(c->so);
	size_t left = 0;

	str_copy(dj->sj->relay, sizeof(dj->sj->relay), c->relay);
	for (size_t i = 0; i < dj->nleft; i++) {
		const struct smtp_out_result *r = &dj->results[i];
		struct sched_job_rcpt *jr = &dj->sj->rcpts[dj->map[i]];
		char text[SMTP_OUT_TEXT_MAX + 64];

		/* the server's text already starts with its enhanced code,
		 * if it sent one; dsn= carries ours */
		if (r->code)
			str_fmt(text, sizeof(text), "%d %s", r->code,
			    r->text ? r->text : "");
		else
			str_copy(text, sizeof(text), r->text ? r->text : "");
		if (r->outcome == SMTP_OUT_TEMPFAIL && host_failed) {
			/* not this recipient's verdict: try the next host */
			str_fmt(dj->last_err, sizeof(dj->last_err), "%s: %s",
			    c->relay, text);
			dj->addrs[left] = dj->addrs[i];
			dj->map[left++] = dj->map[i];
			continue;
		}
		dj->any_reply = true;
		rcpt_set(jr,
		    r->outcome == SMTP_OUT_OK         ? SCHED_OUTCOME_OK
		    : r->outcome == SMTP_OUT_PERMFAIL ? SCHED_OUTCOME_PERMFAIL
		                                      : SCHED_OUTCOME_TEMPFAIL,
		    r->enhanced, text);
	}
	dj->nleft = left;
	c->job = NULL;
	if (left == 0)
		job_finish(dj);
	else
		job_next_host(dj);
}

/* --- connections ---------------------------------------------------------- */

static void
conn_deadline(struct dconn *c)
{
	uint64_t t = c->so ? smtp_out_timeout(c->so) : 0;

	c->deadline = t ? clock_mono_ms() + t : 0;
}

static void
conn_maybe_free(struct dconn *c)
{
	struct deliver_worker *w = c->w;
	struct dconn **pp;

	/* In its final callback the recv op no longer counts as busy, yet
	 * on_recv still uses c after the session closed it: it frees c
	 * itself on the way out. */
	if (c->in_recv || uring_op_busy(&c->rd) || uring_op_busy(&c->wr) ||
	    uring_op_busy(&c->cn))
		return;
	for (pp = &w->conns; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = c->next;
	if (c->fd >= 0)
		uring_close(w->loop, c->fd);
	deliver_host_release(w->d, c->key);
	smtp_out_free(c->so);
	deliver_cfg_drop(&c->cfg);
	tls_conn_free(c->tls);
	buf_fini(&c->out);
	buf_fini(&c->wire);
	buf_fini(&c->tin);
	free(c);
	/* a slot opened: the oldest parked job may take it */
	job_unpark(w);
}

static void
conn_close(struct dconn *c)
{
	if (!c->closing) {
		c->closing = true;
		uring_cancel(c->w->loop, &c->rd);
		uring_cancel(c->w->loop, &c->cn);
	}
	conn_maybe_free(c);
}

/* The connection is gone or hopeless: settle its job, then close. */
static void
conn_fail(struct dconn *c, enum smtp_out_abort why, const char *reason)
{
	struct djob *dj = c->job;

	if (c->closing)
		return;
	if (c->so == NULL) {
		/* never got as far as SMTP */
		if (dj) {
			str_fmt(dj->last_err, sizeof(dj->last_err), "%s: %s",
			    c->relay, reason);
			c->job = NULL;
			job_next_host(dj);
		}
	} else if (smtp_out_abort(c->so, why) == SMTP_OUT_JOB_DONE && dj) {
		job_results(dj, c);
	}
	conn_close(c);
}

static void
conn_assign(struct dconn *c, struct djob *dj)
{
	c->job = dj;
	dj->job.rcpts = dj->addrs;
	dj->job.nrcpts = dj->nleft;
	dj->job.results = dj->results;
	memset(dj->results, 0, dj->sj->nrcpts * sizeof(*dj->results));
	conn_act(c, smtp_out_job_set(c->so, &dj->job, &c->out));
}

static void
conn_idle(struct dconn *c)
{
	struct deliver_worker *w = c->w;

	c->job = NULL;
	c->idle_since = clock_mono_ms();
	c->deadline = 0;
	/* a parked job for this host takes the connection at once */
	job_unpark(w);
}

static void
conn_act(struct dconn *c, enum smtp_out_action a)
{
	switch (a) {
	case SMTP_OUT_READ:
		break;
	case SMTP_OUT_WRITE:
		c->want_flushed = true;
		break;
	case SMTP_OUT_STARTTLS:
		c->tls = tls_conn_client_new(c->w->d->tls, c->host,
		    c->socfg.tls == CONFIG_TLS_VERIFY ? CONFIG_TLS_VERIFY
		                                      : CONFIG_TLS_MAY,
		    NULL);
		c->handshaking = true;
		if (tls_conn_handshake(c->tls) == -EPROTO) {
			c->handshaking = false;
			conn_act(c, smtp_out_tls_done(c->so, false, &c->out));
			return;
		}
		break;
	case SMTP_OUT_JOB_DONE:
		if (c->job)
			job_results(c->job, c);
		if (c->closing)
			return;
		c->nmsgs++;
		/* [delivery] max_messages_per_connection: a fresh connection
		 * now and then spreads load over a host's addresses and
		 * bounds what one long session can go wrong with */
		if (smtp_out_reusable(c->so) && !c->w->stopping &&
		    c->nmsgs <
		        c->cfg.set.delivery->max_messages_per_connection) {
			conn_idle(c);
		} else {
			conn_act(c, smtp_out_quit(c->so, &c->out));
			return;
		}
		break;
	case SMTP_OUT_IDLE:
		conn_idle(c);
		break;
	case SMTP_OUT_CLOSE:
		c->after_send_close = true;
		break;
	}
	if (!c->closing) {
		conn_deadline(c);
		conn_flush(c);
	}
}

static void
on_sent(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct dconn *c = uring_container_of(op, struct dconn, wr);

	(void)flags;
	(void)data;
	(void)len;
	buf_reset(&c->wire);
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (res < 0) {
		conn_fail(c, SMTP_OUT_ABORT_IO, strerror(-res));
		return;
	}
	conn_flush(c);
}

/* Move queued output to the wire and keep one send in flight. */
static void
conn_flush(struct dconn *c)
{
	if (c->closing || uring_op_busy(&c->wr))
		return;
	if (c->tls) {
		while (!c->handshaking && buf_avail(&c->out)) {
			ssize_t n = tls_conn_write(
			    c->tls, buf_peek(&c->out), buf_avail(&c->out));

			if (n == -ENOBUFS)
				break;
			if (n < 0) {
				conn_fail(c, SMTP_OUT_ABORT_IO,
				    tls_conn_error(c->tls));
				return;
			}
			buf_consume(&c->out, (size_t)n);
		}
		tls_conn_out_to_buf(c->tls, &c->wire);
	} else if (buf_avail(&c->out)) {
		if (buf_append(
		        &c->wire, buf_peek(&c->out), buf_avail(&c->out)) == 0)
			buf_reset(&c->out);
	}
	if (buf_avail(&c->wire)) {
		uring_send(c->w->loop, &c->wr, c->fd, buf_peek(&c->wire),
		    buf_avail(&c->wire));
		return;
	}
	if (c->want_flushed && buf_avail(&c->out) == 0) {
		c->want_flushed = false;
		conn_act(c, smtp_out_flushed(c->so, &c->out));
		return;
	}
	if (c->after_send_close && buf_avail(&c->out) == 0)
		conn_close(c);
}

/* Plaintext from the server (decrypted or not) into the session. */
static void
conn_input(struct dconn *c, const uint8_t *p, size_t n)
{
	conn_act(c, smtp_out_feed(c->so, p, n, &c->out));
}

static void
conn_tls_input(struct dconn *c, const uint8_t *p, size_t n)
{
	ssize_t r = -EAGAIN;

	if (tls_conn_feed(c->tls, p, n) != 0) {
		conn_fail(c, SMTP_OUT_ABORT_IO, "TLS input overflow");
		return;
	}
	if (c->handshaking) {
		int hs = tls_conn_handshake(c->tls);

		if (hs == -EAGAIN) {
			conn_flush(c);
			return;
		}
		c->handshaking = false;
		if (hs != 0) {
			log_info("event=tls-failed relay=%s reason=\"%s\"",
			    c->relay, tls_conn_error(c->tls));
			/* opportunistic TLS must not cost the delivery: the
			 * same host is tried again without it (as Postfix) */
			if (c->job && c->socfg.tls == CONFIG_TLS_MAY)
				c->job->tls_failed = true;
			conn_act(c, smtp_out_tls_done(c->so, false, &c->out));
			return;
		}
		conn_act(c, smtp_out_tls_done(c->so, true, &c->out));
		if (c->closing)
			return;
	}
	while (!c->closing && (r = tls_conn_read(c->tls, &c->tin)) > 0) {
		conn_input(c, buf_peek(&c->tin), buf_avail(&c->tin));
		buf_reset(&c->tin);
	}
	if (!c->closing && r != -EAGAIN && r != -ENOBUFS)
		conn_fail(c, r == 0 ? SMTP_OUT_ABORT_EOF : SMTP_OUT_ABORT_IO,
		    r == 0 ? "TLS closed" : tls_conn_error(c->tls));
	else if (!c->closing)
		conn_flush(c); /* TLS may have produced output to send */
}

static void
on_recv(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct dconn *c = uring_container_of(op, struct dconn, rd);

	if (c->closing) {
		if (!(flags & URING_F_MORE))
			conn_maybe_free(c);
		return;
	}
	c->in_recv = true;
	if (res > 0) {
		if (c->tls)
			conn_tls_input(c, data, len);
		else
			conn_input(c, data, len);
	} else {
		conn_fail(c, res == 0 ? SMTP_OUT_ABORT_EOF : SMTP_OUT_ABORT_IO,
		    res == 0 ? "connection closed" : strerror(-res));
	}
	c->in_recv = false;
	if (flags & URING_F_MORE)
		return;
	if (c->closing)
		conn_maybe_free(c);
	else
		uring_recv(c->w->loop, &c->rd, c->fd, true);
}

static void
on_connect(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct dconn *c = uring_container_of(op, struct dconn, cn);
	const struct deliver_settings *cfg = &c->cfg.set;
	const struct djob *dj = c->job;

	(void)flags;
	(void)data;
	(void)len;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (res < 0) {
		conn_fail(c, SMTP_OUT_ABORT_IO, strerror(-res));
		return;
	}
	c->socfg.helo_name = cfg->delivery->helo_name[0]
	                         ? cfg->delivery->helo_name
	                         : cfg->hostname;
	c->socfg.tls = dj ? dj->tls : cfg->delivery->tls;
	if (dj && dj->tls_off)
		c->socfg.tls = CONFIG_TLS_NONE;
	if (dj && dj->route && dj->route->username[0]) {
		c->socfg.auth_user = dj->route->username;
		c->socfg.auth_pass = dj->route->password;
	}
	c->socfg.command_timeout = cfg->delivery->command_timeout;
	c->socfg.data_timeout = cfg->delivery->data_timeout;
	c->so = smtp_out_new(&c->socfg, dj ? dj->sj->id : 0);
	uring_recv(c->w->loop, &c->rd, c->fd, true);
	if (c->job)
		conn_assign(c, c->job);
	conn_deadline(c);
}

static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	const void *a =
	    ss->ss_family == AF_INET
	        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
	        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (inet_ntop(ss->ss_family, a, out, (socklen_t)len) == NULL)
		str_copy(out, len, "?");
}

static void
conn_open(struct djob *dj, const struct dns_target *t,
    const struct sockaddr_storage *sa, const char *key, const char *ip)
{
	struct deliver_worker *w = dj->w;
	struct dconn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	c->w = w;
	c->job = dj;
	deliver_cfg_copy(&c->cfg, &dj->cfg);
	str_copy(c->key, sizeof(c->key), key);
	str_copy(c->host, sizeof(c->host), t->name);
	str_fmt(c->relay, sizeof(c->relay), "%s[%s]:%u", t->name, ip, dj->port);
	c->sa = *sa;
	c->salen = sa->ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                    : sizeof(struct sockaddr_in6);
	buf_init(&c->out, SMTP_OUT_CHUNK);
	buf_init(&c->wire, SMTP_OUT_CHUNK + TLS_OUT_MAX);
	buf_init(&c->tin, 64 * 1024);
	uring_op_init(&c->rd, on_recv);
	uring_op_init(&c->wr, on_sent);
	uring_op_init(&c->cn, on_connect);
	c->next = w->conns;
	w->conns = c;
	c->fd = socket(
	    sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail(c, SMTP_OUT_ABORT_IO, strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->deadline = clock_mono_ms() + c->cfg.set.delivery->connect_timeout;
	uring_connect(
	    w->loop, &c->cn, c->fd, (const struct sockaddr *)&c->sa, c->salen);
}

/* Try the current address: reuse, open, or park. */
static void
job_try(struct djob *dj)
{
	struct deliver_worker *w = dj->w;

	while (dj->ti < dj->ntargets) {
		const struct dns_target *t = &dj->targets[dj->ti];
		struct sockaddr_storage sa = t->addrs[dj->ai];
		char ip[INET6_ADDRSTRLEN], key[80];

		if (sa.ss_family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_port = htons(dj->port);
		else
			((struct sockaddr_in6 *)&sa)->sin6_port =
			    htons(dj->port);
		addr_text(&sa, ip, sizeof(ip));
		str_fmt(key, sizeof(key), "%s:%u", ip, dj->port);
		for (struct dconn *c = w->conns; c; c = c->next)
			if (!c->closing && c->job == NULL && c->so &&
			    strcmp(c->key, key) == 0 &&
			    smtp_out_reusable(c->so)) {
				conn_assign(c, dj);
				return;
			}
		if (w->stopping) {
			str_copy(dj->last_err, sizeof(dj->last_err),
			    "delivery is shutting down");
			break;
		}
		if (deliver_host_acquire(w->d, key, dj->cfg.set.delivery)) {
			conn_open(dj, t, &sa, key, ip);
			return;
		}
		/* at the cap: wait for one of this host's connections */
		dj->next = w->parked;
		w->parked = dj;
		return;
	}
	job_finish(dj);
}

static void
job_next_host(struct djob *dj)
{
	if (dj->tls_failed && !dj->tls_off) {
		dj->tls_failed = false;
		dj->tls_off = true;
		job_try(dj);
		return;
	}
	dj->tls_failed = dj->tls_off = false;
	if (dj->ti < dj->ntargets && ++dj->ai >= dj->targets[dj->ti].naddrs) {
		dj->ti++;
		dj->ai = 0;
	}
	job_try(dj);
}

/* --- the thread ----------------------------------------------------------- */

static void
on_tick(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct deliver_worker *w =
	    uring_container_of(op, struct deliver_worker, tick);
	uint64_t now = clock_mono_ms();
	struct djob *parked = w->parked;

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	for (struct dconn *c = w->conns, *n; c; c = n) {
		n = c->next;
		if (c->closing)
			continue;
		if (c->deadline && now >= c->deadline)
			conn_fail(c, SMTP_OUT_ABORT_TIMEOUT, "timed out");
		else if (c->job == NULL && c->so &&
		         (w->stopping || now - c->idle_since >=
		                             c->cfg.set.delivery->idle_timeout))
			conn_act(c, smtp_out_quit(c->so, &c->out));
	}
	/* parked jobs retry: a cap elsewhere may have opened */
	w->parked = NULL;
	while (parked) {
		struct djob *dj = parked;

		parked = dj->next;
		dj->next = NULL;
		job_try(dj);
	}
	if (w->exiting || (w->stopping && w->conns == NULL &&
	                      w->parked == NULL && w->ndns == 0)) {
		/* the tick is not re-armed; the chan read is cancelled and
		 * on_chan stops the loop once it is the last op */
		w->exiting = true;
		uring_cancel(w->loop, &w->chan_op);
		if (uring_loop_busy(w->loop) == 0)
			uring_loop_stop(w->loop);
		return;
	}
	uring_timeout(w->loop, &w->tick, WORKER_TICK_MS);
}

/* Shutdown: every connection is abandoned (its recipients deferred; the
 * scheduler is no longer listening, so they are simply retried after the
 * restart) and parked jobs end. */
static void
worker_stopping(struct deliver_worker *w)
{
	struct djob *dj;

	w->stopping = true;
	for (struct dconn *c = w->conns, *n; c; c = n) {
		n = c->next;
		conn_fail(c, SMTP_OUT_ABORT_IO, "shutting down");
	}
	while ((dj = w->parked) != NULL) {
		w->parked = dj->next;
		str_copy(dj->last_err, sizeof(dj->last_err),
		    "delivery is shutting down");
		job_finish(dj);
	}
}

static void
on_chan(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct deliver_worker *w =
	    uring_container_of(op, struct deliver_worker, chan_op);
	struct chan_msg *m, *n;

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	for (m = chan_take(w->chan); m; m = n) {
		n = m->next;
		switch (m->type) {
		case DELIVER_MSG_JOB:
			job_start(w, (struct sched_job *)m);
			break;
		case DNS_MSG_MX:
		case DNS_MSG_HOST:
			w->ndns--;
			job_dns_done(((struct dns_req *)m)->arg);
			break;
		case DELIVER_MSG_STOP:
			free(m);
			worker_stopping(w);
			break;
		case DELIVER_MSG_CONFIG:
			/* the loop boundary: jobs and connections under way
			 * hold references of their own */
			deliver_cfg_take(&w->cfg, (struct deliver_config *)m);
			break;
		default:
			MTA_ASSERT(!"unknown message for a delivery worker");
		}
	}
	if (w->exiting) {
		if (uring_loop_busy(w->loop) == 0)
			uring_loop_stop(w->loop);
		return;
	}
	/* read on while stopping: DNS answers must still come home */
	uring_read(w->loop, &w->chan_op, chan_fd(w->chan), &w->chan_val,
	    sizeof(w->chan_val));
}

static void *
worker_main(void *arg)
{
	struct deliver_worker *w = arg;
	char err[256];

	if (uring_loop_new(NULL, &w->loop, err, sizeof(err)) != 0)
		fatalx("delivery worker %u: %s", w->idx, err);
	uring_op_init(&w->chan_op, on_chan);
	uring_op_init(&w->tick, on_tick);
	uring_read(w->loop, &w->chan_op, chan_fd(w->chan), &w->chan_val,
	    sizeof(w->chan_val));
	uring_timeout(w->loop, &w->tick, WORKER_TICK_MS);
	if (uring_loop_run(w->loop) != 0)
		fatalx("delivery worker %u: event loop failed", w->idx);
	/* stopped: every op is done once the loop drains */
	w->exiting = true;
	while (uring_loop_busy(w->loop) > 0) {
		uring_cancel(w->loop, &w->chan_op);
		uring_cancel(w->loop, &w->tick);
		if (uring_loop_run(w->loop) != 0)
			break;
	}
	uring_loop_free(w->loop);
	return NULL;
}

struct deliver_worker *
deliver_worker_new(struct deliver *d, unsigned idx)
{
	struct deliver_worker *w = xcalloc(1, sizeof(*w));

	w->d = d;
	w->idx = idx;
	w->chan = chan_new();
	deliver_cfg_init(&w->cfg, &d->boot);
	return w;
}

int
deliver_worker_start(struct deliver_worker *w)
{
	int rc = pthread_create(&w->tid, NULL, worker_main, w);

	if (rc != 0)
		return -rc;
	w->started = true;
	return 0;
}

void
deliver_worker_send(struct deliver_worker *w, struct sched_job *job)
{
	job->msg.type = DELIVER_MSG_JOB;
	chan_send(w->chan, &job->msg);
}

void
deliver_worker_config(struct deliver_worker *w, struct deliver_config *m)
{
	chan_send(w->chan, &m->msg);
}

void
deliver_worker_stop(struct deliver_worker *w)
{
	struct chan_msg *stop = xcalloc(1, sizeof(*stop));

	stop->type = DELIVER_MSG_STOP;
	chan_send(w->chan, stop);
	if (w->started)
		pthread_join(w->tid, NULL);
	for (struct chan_msg *m = chan_take(w->chan), *n; m; m = n) {
		n = m->next;
		if (m->type == DELIVER_MSG_JOB)
			sched_job_free((struct sched_job *)m);
		else if (m->type == DELIVER_MSG_CONFIG)
			deliver_cfg_msg_free((struct deliver_config *)m);
		else
			free(m);
	}
	chan_free(w->chan);
	deliver_cfg_drop(&w->cfg);
	free(w);
}
