/* SPDX-License-Identifier: ISC */
/*
 * deliver_conn.c - the outbound SMTP connections of one delivery worker:
 * a stream each, one smtp_out session on it.
 *
 * The stream does the I/O, TLS, flow control and closing; this file only
 * turns the session's actions into stream calls: WRITE waits until what
 * is queued has moved on (one chunk queued while the previous is on the
 * wire), STARTTLS starts a client handshake under the policy, JOB_DONE
 * reports the job and keeps the connection idle (for reuse, up to
 * max_msgs transactions) or quits. One stream timer carries whichever
 * deadline applies: the RFC 5321 reply timeout while the session waits,
 * the idle timer while nobody uses the connection.
 *
 * A connection is settled once: either the session reported its job
 * (JOB_DONE) or the connection failed first (the session then defers
 * what it left open). The struct is freed in the stream's `closed`.
 *
 * Thread: the delivery worker thread of the pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_conn.h"
#include "deliver/deliver_int.h"
#include "deliver/deliver_tlsrpt.h"
#include "dns/dns.h"
#include "net/stream.h"
#include "net/tls.h"

struct dconn {
	struct stream st;
	struct dconn_pool *pool;
	char key[80];            /* "ip:port": the per-host cap */
	char host[DNS_NAME_MAX]; /* MX or route host name */
	char relay[300];         /* "host[ip]:port", for logs */
	struct smtp_out *so;     /* NULL until connected */
	struct smtp_out_cfg socfg;
	struct deliver_cfg cfg; /* its opening job's: socfg points into it */
	uint64_t trace_id;
	uint64_t idle_ms;
	unsigned max_msgs, nmsgs; /* transactions: cap, carried */
	void *job;                /* NULL when idle */
	const struct smtp_out_job *sj;
	bool want_flushed; /* smtp_out said WRITE */
	bool reporting;    /* inside `done`: not to be reused from there */
	bool settled;      /* failed or closing: no more session calls */
	bool tls_up;
	bool tls_failed; /* the handshake failed under tls=may */
	enum tls_policy_source tls_source; /* the policy it was opened under */
	enum config_tls_policy tls_level;  /* (socfg.tls may be none since) */
	bool dane;                         /* authenticate by tlsa[] */
	size_t ntlsa;
	struct dns_tlsa tlsa[DNS_TLSA_MAX]; /* copies: the job may go */
	char tlsa_base[DNS_NAME_MAX];       /* dane: "" or the CNAME target */
	struct tlsrpt_rec *rpt; /* TLS-RPT template until counted, or NULL */
	struct dconn *next;
};

static void conn_act(struct dconn *c, enum smtp_out_action a);

static struct buf *
conn_out(struct dconn *c)
{
	return stream_outbuf(&c->st);
}

/* TLS-RPT: one record a session, once its TLS is settled: tls_err ""
 * a success, else a failed handshake; or smtp_err, the session's error
 * when it ended without a handshake (STARTTLS missing or refused). */
static void
conn_tlsrpt(struct dconn *c, const char *tls_err, const char *smtp_err)
{
	char type[TLSRPT_RESULT_MAX];

	if (c->rpt == NULL)
		return;
	if (tls_err != NULL && tls_err[0] == '\0') {
		struct tls_info ti;

		/* a policy that only reports (STS testing) let an unverified
		 * peer through; a result the worker set (tlsa-invalid) stands */
		stream_tls_info(&c->st, &ti);
		dtlsrpt_session(c->pool->d, c->rpt, c->st.fd,
		    c->rpt->result[0] ? c->rpt->result
		    : !ti.verified && c->rpt->ptype == TLSRPT_STS
		        ? "validation-failure"
		        : NULL);
	} else if (tls_err != NULL) {
		/* the handshake's result type, as the policy code names it */
		struct tls_policy p = {.dane = c->dane};

		str_copy(type, sizeof(type),
		    tls_result_name(tls_result_of_error(&p, tls_err)));
		dtlsrpt_session(c->pool->d, c->rpt, c->st.fd, type);
	} else {
		dtlsrpt_tls_result(c->rpt, NULL, smtp_err, type, sizeof(type));
		if (type[0] == '\0')
			return; /* not a TLS failure: kept for later */
		dtlsrpt_session(c->pool->d, c->rpt, c->st.fd, type);
	}
	free(c->rpt);
	c->rpt = NULL;
}

/* Hand the job back to its owner. reason: see struct dconn_report. */
static void
conn_report(struct dconn *c, const char *reason)
{
	char tls[128] = "tls=none";
	struct tls_info ti;
	struct dconn_report r = {
	    .relay = c->relay,
	    .reason = reason,
	    .host_failed = reason != NULL || smtp_out_host_failed(c->so),
	    .tls_failed = c->tls_failed,
	    .tls = tls,
	};
	void *job = c->job;

	if (c->so != NULL && smtp_out_error(c->so) != NULL)
		conn_tlsrpt(c, NULL, smtp_out_error(c->so)->text);
	if (job == NULL)
		return;
	if (stream_tls_ready(&c->st)) {
		stream_tls_info(&c->st, &ti);
		str_fmt(tls, sizeof(tls), "tls=%s cipher=%s verified=%s",
		    ti.version, ti.cipher, ti.verified ? "yes" : "no");
	}
	c->job = NULL;
	c->sj = NULL;
	c->reporting = true;
	c->pool->cbs->done(c->pool->owner, job, &r);
	c->reporting = false;
}

/* The connection failed: settle its job (the session defers what it left
 * open); the stream is closing or closed. */
static void
conn_settle(struct dconn *c, enum smtp_out_abort why, const char *reason)
{
	if (c->settled)
		return;
	c->settled = true;
	if (c->so == NULL)
		conn_report(c, reason); /* never got as far as SMTP */
	else if (smtp_out_abort(c->so, why) == SMTP_OUT_JOB_DONE)
		conn_report(c, NULL);
}

static void
conn_fail(struct dconn *c, enum smtp_out_abort why, const char *reason)
{
	conn_settle(c, why, reason);
	stream_close(&c->st, reason, STREAM_CLOSE_ABORT);
}

/* The one timer: the reply timeout, or the idle time, or none. */
static void
conn_timer(struct dconn *c)
{
	uint64_t t = c->so ? smtp_out_timeout(c->so) : 0;

	if (t == 0 && c->so != NULL && c->job == NULL)
		t = c->idle_ms;
	stream_timer(&c->st, t);
}

static void
conn_idle(struct dconn *c)
{
	c->job = NULL;
	c->sj = NULL;
	conn_timer(c);
	/* a parked job for this host may take the connection at once */
	c->pool->cbs->slot(c->pool->owner);
}

static void
conn_assign(struct dconn *c, void *job, const struct smtp_out_job *sj)
{
	c->job = job;
	c->sj = sj;
	conn_act(c, smtp_out_job_set(c->so, sj, conn_out(c)));
}

static void
conn_starttls(struct dconn *c)
{
	struct tls_tlsa recs[DNS_TLSA_MAX];
	struct stream_tls t = {
	    .ctx = c->pool->d->tls,
	    .client = true,
	    .host = c->host,
	    .policy = c->socfg.tls == CONFIG_TLS_VERIFY ? CONFIG_TLS_VERIFY
	                                                : CONFIG_TLS_MAY,
	    .tlsa = recs,
	    .ntlsa = c->dane ? c->ntlsa : 0,
	    .dane_name = c->tlsa_base[0] != '\0' ? c->tlsa_base : NULL,
	};

	for (size_t i = 0; i < t.ntlsa; i++)
		recs[i] =
		    (struct tls_tlsa){c->tlsa[i].usage, c->tlsa[i].selector,
		        c->tlsa[i].mtype, c->tlsa[i].data, c->tlsa[i].len};
	stream_start_tls(&c->st, &t);
}

/* The same policy, so a connection may carry another job: same source,
 * level and, under DANE, the same records. */
static bool
conn_same_policy(const struct dconn *c, const struct tls_policy *p)
{
	if (c->tls_source != p->source || c->tls_level != p->level ||
	    c->dane != p->dane || (c->dane && c->ntlsa != p->ntlsa))
		return false;
	for (size_t i = 0; c->dane && i < c->ntlsa; i++)
		if (c->tlsa[i].len != p->tlsa[i].len ||
		    memcmp(c->tlsa[i].data, p->tlsa[i].data, c->tlsa[i].len))
			return false;
	return true;
}

static void
conn_job_done(struct dconn *c)
{
	conn_report(c, NULL);
	if (c->settled)
		return;
	c->nmsgs++;
	/* [delivery] max_messages_per_connection: a fresh connection now
	 * and then spreads load over a host's addresses and bounds what one
	 * long session can go wrong with */
	if (smtp_out_reusable(c->so) && !c->pool->stopping &&
	    c->nmsgs < c->max_msgs && c->job == NULL)
		conn_idle(c);
	else if (c->job == NULL)
		conn_act(c, smtp_out_quit(c->so, conn_out(c)));
}

/* Send what is queued; when the session waits for room and its chunk has
 * moved on to the wire, let it produce the next one now. */
static void
conn_pump(struct dconn *c)
{
	stream_flush(&c->st);
	if (c->want_flushed && !c->settled && buf_avail(conn_out(c)) == 0) {
		c->want_flushed = false;
		conn_act(c, smtp_out_flushed(c->so, conn_out(c)));
	}
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
		conn_starttls(c);
		break;
	case SMTP_OUT_JOB_DONE:
		conn_job_done(c);
		return;
	case SMTP_OUT_IDLE:
		conn_idle(c);
		break;
	case SMTP_OUT_CLOSE:
		c->settled = true;
		stream_close(&c->st, "quit", STREAM_CLOSE_ORDERLY);
		return;
	}
	if (!c->settled && !stream_closing(&c->st)) {
		conn_timer(c);
		conn_pump(c);
	}
}

/* ---- stream callbacks ---- */

static size_t
on_input(struct stream *s, void *user, const uint8_t *p, size_t n)
{
	struct dconn *c = user;

	(void)s;
	if (c->settled)
		return n;
	conn_act(c, smtp_out_feed(c->so, p, n, conn_out(c)));
	return n;
}

static void
on_drained(struct stream *s, void *user)
{
	struct dconn *c = user;

	(void)s;
	if (c->want_flushed && !c->settled) {
		c->want_flushed = false;
		conn_act(c, smtp_out_flushed(c->so, conn_out(c)));
	}
}

static void
on_tls_done(struct stream *s, void *user, const char *err)
{
	struct dconn *c = user;
	char relay[340], why[512];
	struct tls_info ti;

	if (c->settled)
		return;
	conn_tlsrpt(c, err != NULL ? err : "", NULL);
	if (err == NULL) {
		stream_tls_info(s, &ti);
		metrics_tls(true, ti.version, ti.verified);
		c->tls_up = true;
		conn_act(c, smtp_out_tls_done(c->so, true, conn_out(c)));
		return;
	}
	if (c->tls_up) {
		conn_fail(c, SMTP_OUT_ABORT_IO, err);
		return;
	}
	if (c->tls_source == TLS_POLICY_DANE ||
	    c->tls_source == TLS_POLICY_MTA_STS) {
		/* a policy failure: 4.7.5, never plaintext; say why */
		struct tls_policy p = {.dane = c->dane};
		const char *res = tls_result_name(tls_result_of_error(&p, err));
		const char *src = tls_policy_source_name(c->tls_source);
		char text[200];

		log_event("event=tls-failed relay=%s tls_policy=%s result=%s "
		          "reason=%s",
		    log_quote(relay, sizeof(relay), c->relay, strlen(c->relay)),
		    src, res, log_quote(why, sizeof(why), err, strlen(err)));
		str_fmt(text, sizeof(text),
		    "TLS handshake failed under %s policy: %s (result=%s)", src,
		    err, res);
		smtp_out_tls_reason(c->so, text);
		conn_act(c, smtp_out_tls_done(c->so, false, conn_out(c)));
		return;
	}
	log_event("event=tls-failed relay=%s reason=%s",
	    log_quote(relay, sizeof(relay), c->relay, strlen(c->relay)),
	    log_quote(why, sizeof(why), err, strlen(err)));
	/* opportunistic TLS must not cost the delivery: the same host is
	 * tried again without it (as Postfix) */
	c->tls_failed = c->socfg.tls == CONFIG_TLS_MAY;
	conn_act(c, smtp_out_tls_done(c->so, false, conn_out(c)));
}

static void
on_connected(struct stream *s, void *user, int res)
{
	struct dconn *c = user;

	(void)s;
	if (c->settled)
		return;
	if (res < 0) {
		conn_settle(c, SMTP_OUT_ABORT_IO,
		    res == -ETIMEDOUT ? "timed out" : strerror(-res));
		return; /* the stream closes itself */
	}
	/* a pipelined group or a body chunk goes out whole: no Nagle */
	(void)stream_set_nodelay(&c->st);
	/* messages back to back: buffers stay allocated, as they did
	 * before the stream (bounded by the chunk size) */
	stream_set_keep(&c->st, SMTP_OUT_CHUNK);
	c->so = smtp_out_new(&c->socfg, c->trace_id);
	if (c->job)
		conn_assign(c, c->job, c->sj);
	else
		conn_timer(c);
}

static void
on_timeout(struct stream *s, void *user, enum stream_timer which)
{
	struct dconn *c = user;

	(void)s;
	(void)which; /* only the user timer is armed */
	if (c->settled)
		return;
	if (c->job == NULL && c->so != NULL && smtp_out_timeout(c->so) == 0)
		conn_act(c, smtp_out_quit(c->so, conn_out(c))); /* idle */
	else
		conn_fail(c, SMTP_OUT_ABORT_TIMEOUT, "timed out");
}

static void
conn_free(struct dconn *c)
{
	struct dconn_pool *pool = c->pool;
	struct dconn **pp;

	for (pp = &pool->conns; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = c->next;
	deliver_host_release(pool->d, c->key);
	smtp_out_free(c->so);
	deliver_cfg_drop(&c->cfg);
	free(c->rpt);
	free(c);
	/* a slot opened: the oldest parked job may take it */
	pool->cbs->slot(pool->owner);
}

static void
on_closed(struct stream *s, void *user, const char *reason)
{
	struct dconn *c = user;

	(void)s;
	if (strcmp(reason, "eof") == 0)
		conn_settle(c, SMTP_OUT_ABORT_EOF, "connection closed");
	else
		conn_settle(c, SMTP_OUT_ABORT_IO, reason);
	conn_free(c);
}

static const struct stream_cbs conn_cbs = {
    .input = on_input,
    .drained = on_drained,
    .tls_done = on_tls_done,
    .connected = on_connected,
    .timeout = on_timeout,
    .closed = on_closed,
};

/* ---- the pool ---- */

int
dconn_open(struct dconn_pool *pool, const struct dconn_params *p, void *job,
    const struct smtp_out_job *sj)
{
	struct dconn *c;
	int rc;

	if (!deliver_host_acquire(pool->d, p->key, p->cfg->set.delivery))
		return -EBUSY;
	c = xcalloc(1, sizeof(*c));
	c->pool = pool;
	deliver_cfg_copy(&c->cfg, p->cfg);
	str_copy(c->key, sizeof(c->key), p->key);
	str_copy(c->host, sizeof(c->host), p->host);
	str_copy(c->relay, sizeof(c->relay), p->relay);
	c->socfg = p->so;
	c->trace_id = p->trace_id;
	c->idle_ms = p->idle_timeout;
	c->max_msgs = p->max_msgs;
	if (p->tls != NULL) {
		c->tls_source = p->tls->source;
		c->tls_level = p->tls->level;
		c->dane = p->tls->dane;
		c->ntlsa = p->tls->ntlsa;
		str_copy(c->tlsa_base, sizeof(c->tlsa_base),
		    p->tls->tlsa_base != NULL ? p->tls->tlsa_base : "");
		for (size_t i = 0; i < c->ntlsa; i++) {
			const struct tls_policy_tlsa *r = &p->tls->tlsa[i];

			c->tlsa[i] = (struct dns_tlsa){.usage = r->usage,
			    .selector = r->selector,
			    .mtype = r->mtype,
			    .len = (uint16_t)r->len};
			memcpy(c->tlsa[i].data, r->data, r->len);
		}
	}
	c->rpt = p->rpt ? (struct tlsrpt_rec *)(void *)xmemdup(
	                      p->rpt, sizeof(*p->rpt))
	                : NULL;
	c->job = job;
	c->sj = sj;
	c->next = pool->conns;
	pool->conns = c;
	rc = stream_connect(&c->st, pool->loop, p->sa, p->salen,
	    p->connect_timeout, &conn_cbs, c);
	if (rc < 0) {
		/* no stream: nothing will call back, settle and free here */
		conn_settle(c, SMTP_OUT_ABORT_IO, strerror(-rc));
		conn_free(c);
	}
	return 0;
}

static bool
str_same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool
socfg_same(const struct smtp_out_cfg *a, const struct smtp_out_cfg *b)
{
	return a->tls == b->tls && a->auth_plaintext == b->auth_plaintext &&
	       str_same(a->helo_name, b->helo_name) &&
	       str_same(a->auth_user, b->auth_user) &&
	       str_same(a->auth_pass, b->auth_pass);
}

bool
dconn_reuse(struct dconn_pool *pool, const char *key,
    const struct smtp_out_cfg *so, const struct tls_policy *tls, void *job,
    const struct smtp_out_job *sj)
{
	if (pool->stopping)
		return false;
	for (struct dconn *c = pool->conns; c; c = c->next)
		if (!c->settled && !c->reporting && c->job == NULL &&
		    c->so != NULL && !stream_closing(&c->st) &&
		    strcmp(c->key, key) == 0 && smtp_out_reusable(c->so) &&
		    socfg_same(&c->socfg, so) &&
		    (tls == NULL || conn_same_policy(c, tls))) {
			conn_assign(c, job, sj);
			stream_flush(&c->st);
			return true;
		}
	return false;
}

void
dconn_stop_all(struct dconn_pool *pool)
{
	pool->stopping = true;
	/* `closed` never comes from inside stream_close(): the list holds */
	for (struct dconn *c = pool->conns; c; c = c->next)
		conn_fail(c, SMTP_OUT_ABORT_IO, "shutting down");
}

bool
dconn_pool_empty(const struct dconn_pool *pool)
{
	return pool->conns == NULL;
}
