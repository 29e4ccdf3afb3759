/* SPDX-License-Identifier: ISC */
/*
 * deliver_worker.c - a delivery worker: one thread, one uring loop, many
 * outbound SMTP connections (deliver_conn.c owns those).
 *
 * A job (one message, one destination) goes through: route lookup, DNS
 * (MX, or the route's host) through the resolver thread, then the
 * targets in order: an idle connection to the address is reused,
 * otherwise a new one is opened if the per-host cap allows, otherwise the
 * job is parked until a connection frees up. When a host fails as a
 * whole (refused, 421, timeout, TLS required and missing) the recipients
 * it left unresolved move on to the next address and MX host (after a
 * handshake failure under tls=may, first to the same address in
 * plaintext); every other reply is final for its recipient. The job then
 * goes back to the scheduler with an outcome per recipient.
 *
 * The destination policy (dest_policy.h) sits between the answer and the
 * socket: MX hosts that are this relay are dropped once the targets are
 * known (the best one: 5.4.6, no connection), and each address is checked
 * just before it is used, so what DNS said cannot reach an address the
 * policy refuses. A refused address is skipped like a failed host; when
 * every one was refused and none tried, the recipients fail 5.4.4 (a
 * retry would resolve the same).
 *
 * Everything here belongs to the worker thread; jobs, DNS answers and
 * reloaded snapshots arrive on its chan, and the per-host cap and the
 * body budget are the only shared state (deliver.c, deliver_body.c).
 * Configuration: the worker's current snapshot changes only in on_chan;
 * a job takes a reference to it at start (its route points into it) and
 * a connection one to its opening job's (its HELO name and credentials
 * do), each dropped when it is freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_body.h"
#include "deliver/deliver_conn.h"
#include "deliver/deliver_int.h"
#include "deliver/deliver_tlsrpt.h"
#include "deliver/dest_policy.h"
#include "deliver/dest_site.h"
#include "deliver/tls_policy.h"
#include "sts/sts.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "smtp/smtp_out.h"
#include "net/uring.h"

#define WORKER_TICK_MS 200

struct djob {
	struct deliver_worker *w;
	struct sched_job *sj;
	struct dns_req *dns;
	struct dns_target *targets;
	size_t ntargets, ti, ai; /* the next address to try */
	uint16_t port;
	struct deliver_cfg cfg; /* the worker's at start: route points in */
	const struct config_route *route;
	struct dbody body;  /* a chunk of it at a time */
	const char **addrs; /* unresolved recipients, for smtp_out */
	size_t *map;        /* addrs[i] is sj->rcpts[map[i]] */
	uint8_t *notify;    /* DSN beside addrs, or NULL: none has any */
	const char **orcpts;
	size_t nleft;
	struct smtp_out_result *results;
	struct smtp_out_job job;
	bool any_reply;        /* a host answered: not a dest failure */
	bool tls_failed;       /* the last handshake failed under may */
	bool tls_off;          /* so this address goes again in plain */
	struct tls_policy pol; /* the current target's (tls_policy.h) */
	struct sts_req *sts;   /* the MTA-STS answer, while it is asked */
	struct tls_sts_policy sts_pol; /* the domain's, for tls_policy.h */
	struct tlsrpt_rec rpt; /* its TLS-RPT template (deliver_tlsrpt.h) */
	uint32_t sts_max_age;  /* s, of sts_pol (for TLS-RPT) */
	char last_err[400];
	char last_dsn[SMTP_REPLY_ENH_MAX]; /* of last_err; "" = 4.4.1 */
	bool tried;                        /* an address passed the policy */
	char refused[400]; /* the first address the policy refused */
	const char *refused_dsn;
	struct djob *next; /* parked or waiting list */
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
	struct dconn_pool pool;
	struct djob *parked;
	struct djob *waiting; /* for body budget */
	unsigned ndns;        /* DNS requests out: wait for them before exit */
	bool stopping;        /* finish what is held, take nothing new */
	bool exiting;         /* all done: chan_op cancelled, not re-armed */
};

static void job_try(struct djob *dj);
static void job_next_host(struct djob *dj);
static void job_targets_ready(struct djob *dj);
static void job_bind(struct djob *dj);
static void job_sts_ask(struct djob *dj);

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

static void job_err(struct djob *dj, const char *dsn, const char *fmt, ...)
    MTA_PRINTF(3, 4);

/* Why the recipients still unresolved would be deferred now. dsn: the
 * enhanced code a host's session gave (a refused AUTH, TLS required),
 * kept as Postfix keeps the last host's status; NULL when no session
 * decided (connect failed, shutdown): 4.4.1. */
static void
job_err(struct djob *dj, const char *dsn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dj->last_err, sizeof(dj->last_err), fmt, ap);
	va_end(ap);
	str_copy(dj->last_dsn, sizeof(dj->last_dsn), dsn ? dsn : "");
}

/* Every recipient is final: hand the job back to the scheduler. */
static void
job_finish(struct djob *dj)
{
	struct sched_job *sj = dj->sj;
	/* every address was refused by the policy, none tried: that will
	 * not change by waiting (a retry would resolve the same) */
	bool refused =
	    dj->ti >= dj->ntargets && !dj->tried && dj->refused[0] != '\0';

	for (size_t i = 0; i < dj->nleft; i++)
		if (refused)
			rcpt_set(&sj->rcpts[dj->map[i]], SCHED_OUTCOME_PERMFAIL,
			    dj->refused_dsn, dj->refused);
		else
			rcpt_set(&sj->rcpts[dj->map[i]], SCHED_OUTCOME_TEMPFAIL,
			    dj->last_dsn[0] ? dj->last_dsn : "4.4.1",
			    dj->last_err[0] ? dj->last_err
			                    : "no host could be reached");
	sj->dest_failed = !dj->any_reply && !refused;
	sj->msg.type = DELIVER_MSG_DONE;
	chan_send(dj->w->d->sched_chan, &sj->msg);
	deliver_cfg_drop(&dj->cfg);
	free(dj->dns);
	free(dj->sts);
	free(dj->targets);
	dbody_close(&dj->body);
	free(dj->addrs);
	free(dj->map);
	free(dj->notify);
	free(dj->orcpts);
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

/* Is the best target the relay itself (5.4.6, the job is finished)? If
 * not, targets at or after this relay's own preference are dropped. */
static bool
job_loops(struct djob *dj)
{
	struct sched_job *sj = dj->sj;
	char text[DNS_NAME_MAX + 40];
	size_t n = dest_policy_prune_self(&dj->w->d->self, dj->cfg.set.hostname,
	    dj->port, dj->targets, dj->ntargets);

	if (n > 0) {
		dj->ntargets = n;
		return false;
	}
	/* as Postfix: no connection, a permanent failure */
	str_fmt(
	    text, sizeof(text), "mail for %s loops back to myself", sj->domain);
	log_event("event=loop id=%016" PRIx64 " domain=%s", sj->id, sj->domain);
	for (size_t i = 0; i < dj->nleft; i++)
		rcpt_set(&sj->rcpts[dj->map[i]], SCHED_OUTCOME_PERMFAIL,
		    "5.4.6", text);
	dj->nleft = 0;
	dj->any_reply = true;
	job_finish(dj);
	return true;
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
		if (dj->notify == NULL &&
		    (sj->rcpts[i].notify != 0 || sj->rcpts[i].orcpt != NULL)) {
			dj->notify = xcalloc(sj->nrcpts, sizeof(*dj->notify));
			dj->orcpts = xcalloc(sj->nrcpts, sizeof(*dj->orcpts));
		}
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
	job_prepare(dj);
	dj->route = config_route_find(cfg->routes, cfg->nroutes, sj->domain);
	dj->port = dj->route && dj->route->port ? dj->route->port
	                                        : cfg->delivery->port;
	if (w->stopping) {
		job_err(dj, NULL, "delivery is shutting down");
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
			if (!job_loops(dj))
				job_sts_ask(dj);
			return;
		}
	}
	dj->dns = xcalloc(1, sizeof(*dj->dns));
	dj->dns->reply = w->chan;
	dj->dns->arg = dj;
	/* DANE may apply unless the route says (tls_policy.h) */
	if (dj->route == NULL || !dj->route->tls_set)
		dj->dns->tlsa_port = dj->port;
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
		job_err(dj, NULL, "delivery is shutting down");
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
	if (!job_loops(dj))
		job_sts_ask(dj);
}

/* MTA-STS (RFC 8461): the policy thread's answer (mta/sts/) becomes
 * the domain's tls_sts_policy, which tls_policy.h weighs per target. A
 * route decides alone, so it is not asked then. */
static void
job_sts_ask(struct djob *dj)
{
	struct deliver_worker *w = dj->w;

	if (dj->route != NULL || w->d->sts == NULL ||
	    !dj->cfg.set.delivery->mta_sts || dj->sj->domain[0] == '[') {
		job_targets_ready(dj);
		return;
	}
	dj->sts = xcalloc(1, sizeof(*dj->sts));
	dj->sts->reply = w->chan;
	dj->sts->arg = dj;
	str_copy(dj->sts->domain, sizeof(dj->sts->domain), dj->sj->domain);
	w->ndns++;
	sts_lookup(w->d->sts, dj->sts);
}

static void
job_sts_done(struct djob *dj)
{
	const struct sts_req *q = dj->sts;
	char why[sizeof(q->reason) + 8];

	if (dj->w->stopping || q->stopping) {
		job_err(dj, NULL, "delivery is shutting down");
		job_finish(dj);
		return;
	}
	if (q->have) {
		dj->sts_pol.mode = q->pol.mode == STS_MODE_ENFORCE
		                       ? TLS_STS_ENFORCE
		                       : TLS_STS_TESTING;
		dj->sts_pol.nmx = q->pol.nmx;
		for (size_t i = 0; i < q->pol.nmx && i < TLS_STS_MX_MAX; i++)
			str_copy(dj->sts_pol.mx[i], sizeof(dj->sts_pol.mx[i]),
			    q->pol.mx[i]);
		dj->sts_max_age = q->pol.max_age;
	} else if (!q->cached && q->failure[0] != '\0') {
		/* reported as the domain's, without a policy to show */
		memset(&dj->rpt, 0, sizeof(dj->rpt));
		dj->rpt.ptype = TLSRPT_STS;
		str_copy(
		    dj->rpt.domain, sizeof(dj->rpt.domain), dj->sj->domain);
		dtlsrpt_session(dj->w->d, &dj->rpt, -1, q->failure);
		log_event("event=sts-unavailable id=%016" PRIx64 " domain=%s "
		          "result=%s reason=%s",
		    dj->sj->id, dj->sj->domain, q->failure,
		    log_quote(why, sizeof(why), q->reason, strlen(q->reason)));
	}
	free(dj->sts);
	dj->sts = NULL;
	job_targets_ready(dj);
}

/* The body cannot be read: not the destination's fault. */
static void
job_body_failed(struct djob *dj, int rc)
{
	job_err(dj, NULL, "cannot read the message from the queue: %s",
	    strerror(-rc));
	dj->any_reply = true;
	job_finish(dj);
}

/* A UTF-8 envelope (RFC 6531): the sender or a recipient of this job
 * not in ASCII needs a host that offers SMTPUTF8, or bounces 5.6.7. */
static bool
job_utf8(const struct djob *dj)
{
	if (mem_has_8bit(dj->sj->from, strlen(dj->sj->from)))
		return true;
	for (size_t i = 0; i < dj->nleft; i++)
		if (mem_has_8bit(dj->addrs[i], strlen(dj->addrs[i])))
			return true;
	return false;
}

/* The targets are known: take the body's chunk from the budget (or wait
 * for it), learn what the body needs, then go. */
static void
job_targets_ready(struct djob *dj)
{
	struct deliver_worker *w = dj->w;
	bool eight;
	int rc;

	/* the MX host set, for the scheduler's site limits (dest_shape.h) */
	(void)dest_site_key(
	    dj->targets, dj->ntargets, dj->sj->site, sizeof(dj->sj->site));
	/* the worker's current budget, so a reload reaches waiting jobs */
	rc = dbody_open(
	    &dj->body, w->d, dj->sj->id, w->cfg.set.delivery->max_inflight);
	if (rc == -EAGAIN) {
		dj->next = w->waiting;
		w->waiting = dj;
		return;
	}
	if (rc == 0)
		rc = dbody_has_8bit(&dj->body, &eight);
	if (rc != 0) {
		job_body_failed(dj, rc);
		return;
	}
	dj->job.from = dj->sj->from;
	dj->job.body = NULL;
	dj->job.body_len = (size_t)dj->body.total;
	dj->job.body_peek = dbody_peek;
	dj->job.body_arg = &dj->body;
	dj->job.need_8bitmime = eight;
	dj->job.body_7bit = dbody_7bit;
	dj->job.need_smtputf8 = job_utf8(dj);
	job_try(dj);
}

/* Take a list of waiting jobs and give each another try with fn (which
 * may put it on a list again). */
static void
jobs_retry(struct djob **list, void (*fn)(struct djob *))
{
	struct djob *dj = *list, *next;

	*list = NULL;
	for (; dj != NULL; dj = next) {
		next = dj->next;
		dj->next = NULL;
		fn(dj);
	}
}

/* The job's recipients still unresolved go to the session, results to
 * be filled in. */
static void
job_bind(struct djob *dj)
{
	dj->job.rcpts = dj->addrs;
	dj->job.nrcpts = dj->nleft;
	dj->job.envid = dj->sj->envid;
	dj->job.ret = dj->sj->ret;
	/* DSN parameters beside the recipients still to go (RFC 3461) */
	for (size_t i = 0; dj->notify != NULL && i < dj->nleft; i++) {
		dj->notify[i] = dj->sj->rcpts[dj->map[i]].notify;
		dj->orcpts[i] = dj->sj->rcpts[dj->map[i]].orcpt;
	}
	dj->job.notify = dj->notify;
	dj->job.orcpts = dj->orcpts;
	dj->job.results = dj->results;
	memset(dj->results, 0, dj->sj->nrcpts * sizeof(*dj->results));
}

/* Collect a finished transaction's results; recipients left unresolved by
 * a failed host go on to the next address. */
static void
job_results(struct djob *dj, const struct dconn_report *rep)
{
	size_t left = 0;

	str_copy(dj->sj->relay, sizeof(dj->sj->relay), rep->relay);
	dj->sj->tls_policy = tls_policy_source_name(dj->pol.source);
	str_copy(dj->sj->tls, sizeof(dj->sj->tls), rep->tls);
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
		if (r->outcome == SMTP_OUT_TEMPFAIL && rep->host_failed) {
			/* not this recipient's verdict: try the next host */
			job_err(dj, r->enhanced, "%s: %s", rep->relay, text);
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
		jr->peer_dsn = r->outcome == SMTP_OUT_OK && r->peer_dsn;
	}
	dj->nleft = left;
	if (left == 0)
		job_finish(dj);
	else
		job_next_host(dj);
}

/* --- connections ---------------------------------------------------------- */

/* The TLS-RPT template of a session to t under a policy that is
 * reported (deliver_tlsrpt.h), else NULL. */
static const struct tlsrpt_rec *
job_tlsrpt(struct djob *dj, const struct dns_target *t)
{
	struct dtlsrpt_tlsa recs[DNS_TLSA_MAX];

	if (dj->tls_off)
		return NULL;
	if (dj->pol.source == TLS_POLICY_MTA_STS) {
		dtlsrpt_sts(&dj->rpt, dj->sj->domain,
		    dj->sts_pol.mode == TLS_STS_ENFORCE ? "enforce" : "testing",
		    dj->sts_pol.mx, dj->sts_pol.nmx, dj->sts_max_age, t->name);
		return &dj->rpt;
	}
	if (dj->pol.source != TLS_POLICY_DANE)
		return NULL;
	for (size_t i = 0; i < dj->pol.ntlsa; i++)
		recs[i] = (struct dtlsrpt_tlsa){dj->pol.tlsa[i].usage,
		    dj->pol.tlsa[i].selector, dj->pol.tlsa[i].mtype,
		    dj->pol.tlsa[i].data, dj->pol.tlsa[i].len};
	dtlsrpt_dane(&dj->rpt, t->name, recs, dj->pol.ntlsa);
	/* no usable record: TLS without authentication, reported */
	if (dj->pol.result == TLS_RESULT_TLSA_INVALID)
		str_copy(dj->rpt.result, sizeof(dj->rpt.result),
		    tls_result_name(dj->pol.result));
	return &dj->rpt;
}

/* The TLS policy of target t (tls_policy.h), kept in dj->pol. False
 * when the target must not be used (a DANE or MTA-STS failure before
 * any connection): logged, and the job's error says why (4.7.5). */
static bool
job_tls_policy(struct djob *dj, const struct dns_target *t)
{
	const struct tls_policy_in in = {
	    .route = dj->route,
	    .delivery = dj->cfg.set.delivery->tls,
	    .target = t,
	    .sts = dj->sts_pol.mode != TLS_STS_NONE ? &dj->sts_pol : NULL,
	};
	char why[DNS_REASON_MAX + 96];

	tls_policy_decide(&in, &dj->pol);
	if (!dj->pol.skip)
		return true;
	log_event("event=tls-policy-failed id=%016" PRIx64 " host=%s "
	          "tls_policy=%s result=%s reason=%s",
	    dj->sj->id, t->name, tls_policy_source_name(dj->pol.source),
	    tls_result_name(dj->pol.result),
	    log_quote(
	        why, sizeof(why), dj->pol.reason, strlen(dj->pol.reason)));
	job_err(dj, "4.7.5", "%s: %s", t->name, dj->pol.reason);
	/* a session that could not be made is reported too */
	if (job_tlsrpt(dj, t) != NULL)
		dtlsrpt_session(
		    dj->w->d, &dj->rpt, -1, tls_result_name(dj->pol.result));
	return false;
}

/* A connection's turn with the job is over (deliver_conn.c calls back). */
static void
on_conn_done(void *owner, void *job, const struct dconn_report *r)
{
	struct djob *dj = job;

	(void)owner;
	if (r->tls_failed)
		dj->tls_failed = true;
	if (r->reason != NULL) {
		job_err(dj, NULL, "%s: %s", r->relay, r->reason);
		job_next_host(dj);
		return;
	}
	job_results(dj, r);
}

static void
on_conn_slot(void *owner)
{
	job_unpark(owner);
}

static const struct dconn_cbs worker_conn_cbs = {
    .done = on_conn_done,
    .slot = on_conn_slot,
};

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

/* The session's settings for this job's next connection. */
static void
job_session_cfg(const struct djob *dj, struct smtp_out_cfg *so)
{
	const struct deliver_settings *cfg = &dj->cfg.set;

	memset(so, 0, sizeof(*so));
	so->helo_name = cfg->delivery->helo_name[0] ? cfg->delivery->helo_name
	                                            : cfg->hostname;
	so->tls = dj->tls_off ? CONFIG_TLS_NONE : dj->pol.level;
	if (dj->pol.source == TLS_POLICY_DANE ||
	    (dj->pol.source == TLS_POLICY_MTA_STS && !dj->pol.sts_testing))
		so->tls_policy = tls_policy_source_name(dj->pol.source);
	if (dj->route && dj->route->username[0]) {
		so->auth_user = dj->route->username;
		so->auth_pass = dj->route->password;
		so->auth_plaintext = dj->route->auth_without_tls;
	}
	so->command_timeout = cfg->delivery->command_timeout;
	so->data_timeout = cfg->delivery->data_timeout;
}

/* Open a connection to sa for dj; -EBUSY at the host's cap. */
static int
job_connect(struct djob *dj, const struct dns_target *t,
    const struct sockaddr_storage *sa, const char *key, const char *ip)
{
	const struct config_delivery *cfg = dj->cfg.set.delivery;
	char relay[300];
	struct dconn_params p = {
	    .host = t->name,
	    .relay = relay,
	    .key = key,
	    .sa = (const struct sockaddr *)sa,
	    .salen = sa->ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                      : sizeof(struct sockaddr_in6),
	    .trace_id = dj->sj->id,
	    .cfg = &dj->cfg,
	    .connect_timeout = cfg->connect_timeout,
	    .idle_timeout = cfg->idle_timeout,
	    .max_msgs = cfg->max_messages_per_connection,
	    .tls = &dj->pol,
	};

	str_fmt(relay, sizeof(relay), "%s[%s]:%u", t->name, ip, dj->port);
	job_session_cfg(dj, &p.so);
	p.rpt = job_tlsrpt(dj, t);
	return dconn_open(&dj->w->pool, &p, dj, &dj->job);
}

/* On to the next address: of this host, else of the next one. */
static void
job_advance(struct djob *dj)
{
	if (dj->ti < dj->ntargets && ++dj->ai >= dj->targets[dj->ti].naddrs) {
		dj->ti++;
		dj->ai = 0;
	}
}

/* May the job connect to sa (its port set)? The check is on the very
 * address about to be used, after every resolution. */
static bool
job_allowed(struct djob *dj, const struct dns_target *t,
    const struct sockaddr_storage *sa, const char *ip)
{
	const struct config_delivery *dl = dj->cfg.set.delivery;
	const struct dest_policy p = {
	    .allow_private = dl->allow_private,
	    .allow_loopback = dl->allow_loopback,
	    .route = dj->route != NULL,
	    .self = &dj->w->d->self,
	};
	enum dest_addr_class cls;
	enum dest_verdict v;
	const char *name;
	char relay[300], q[340];

	v = dest_policy_check(&p, (const struct sockaddr *)sa, &cls);
	if (v == DEST_OK)
		return true;
	name = dest_addr_class_name(cls);
	str_fmt(relay, sizeof(relay), "%s[%s]:%u", t->name, ip, dj->port);
	log_event("event=dest-refused id=%016" PRIx64 " relay=%s class=%s",
	    dj->sj->id, log_quote(q, sizeof(q), relay, strlen(relay)),
	    v == DEST_SELF ? "self" : name);
	if (dj->refused[0] != '\0')
		return false;
	dj->refused_dsn = v == DEST_SELF ? "5.4.6" : "5.4.4";
	if (v == DEST_SELF)
		str_fmt(dj->refused, sizeof(dj->refused),
		    "mail for %s loops back to myself", dj->sj->domain);
	else
		str_fmt(dj->refused, sizeof(dj->refused),
		    "mail for %s refused: %s[%s] is %s %s address",
		    dj->sj->domain, t->name[0] == '[' ? "" : t->name, ip,
		    strchr("aeiou", name[0]) ? "an" : "a", name);
	return false;
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
		struct smtp_out_cfg so;

		if (sa.ss_family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_port = htons(dj->port);
		else
			((struct sockaddr_in6 *)&sa)->sin6_port =
			    htons(dj->port);
		addr_text(&sa, ip, sizeof(ip));
		if (!job_allowed(dj, t, &sa, ip)) {
			job_advance(dj);
			continue;
		}
		if (!job_tls_policy(dj, t)) {
			dj->ai = t->naddrs - 1; /* the whole host */
			job_advance(dj);
			continue;
		}
		str_fmt(key, sizeof(key), "%s:%u", ip, dj->port);
		job_bind(dj);
		/* before the calls: `done` (even job_finish) may come from
		 * inside them */
		dj->tried = true;
		job_session_cfg(dj, &so);
		if (dconn_reuse(&w->pool, key, &so, &dj->pol, dj, &dj->job))
			return;
		if (w->stopping) {
			job_err(dj, NULL, "delivery is shutting down");
			break;
		}
		if (job_connect(dj, t, &sa, key, ip) == 0)
			return;
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
	job_advance(dj);
	job_try(dj);
}

/* --- the thread ----------------------------------------------------------- */

static void
on_tick(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct deliver_worker *w =
	    uring_container_of(op, struct deliver_worker, tick);

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	/* bytes of the body budget may have come back, from any worker */
	jobs_retry(&w->waiting, job_targets_ready);
	/* parked jobs retry: a cap elsewhere may have opened */
	jobs_retry(&w->parked, job_try);
	if (w->exiting ||
	    (w->stopping && dconn_pool_empty(&w->pool) && w->parked == NULL &&
	        w->waiting == NULL && w->ndns == 0)) {
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
 * restart) and parked and waiting jobs end. */
static void
worker_stopping(struct deliver_worker *w)
{
	struct djob *dj;

	w->stopping = true;
	dconn_stop_all(&w->pool);
	while ((dj = w->parked ? w->parked : w->waiting) != NULL) {
		if (dj == w->parked)
			w->parked = dj->next;
		else
			w->waiting = dj->next;
		job_err(dj, NULL, "delivery is shutting down");
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
		case STS_MSG_LOOKUP:
			w->ndns--;
			job_sts_done(((struct sts_req *)m)->arg);
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
	w->pool.loop = w->loop;
	w->pool.d = w->d;
	w->pool.cbs = &worker_conn_cbs;
	w->pool.owner = w;
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
