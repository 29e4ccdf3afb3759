/* SPDX-License-Identifier: ISC */
/*
 * deliver_conn.h - private to mta/deliver/: the outbound SMTP connections
 * of one delivery worker. Each is a stream (net/stream.h) driving one
 * smtp_out session; this file owns the session's life (connect, STARTTLS,
 * reply timers, reuse, the idle timer, quit) and the per-host cap of each
 * connection it opens. It knows nothing of routes, DNS or recipients: a
 * job is an opaque pointer with an smtp_out_job, and what happened goes
 * back through struct dconn_cbs. The worker (deliver_worker.c) calls in;
 * this file only calls back through those pointers.
 *
 * Thread: the delivery worker thread that owns the pool.
 */
#ifndef MTA_DELIVER_CONN_H
#define MTA_DELIVER_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deliver/tls_policy.h"
#include "smtp/smtp_out.h"

struct deliver;
struct tlsrpt_rec;
struct deliver_cfg;
struct dconn;
struct uring_loop;

/* How a job's turn on a connection ended. */
struct dconn_report {
	const char *relay;  /* "host[ip]:port", for logs and the result */
	const char *reason; /* no SMTP session was reached (connect failed,
			       shutdown): why; NULL when smtp_out decided
			       (results are in the job's results array) */
	bool host_failed;   /* the host failed as a whole: the unresolved
			       recipients may go to the next address */
	bool tls_failed;    /* the handshake failed under tls=may: the same
			       address may be tried again in plaintext */
	/* log fields of the session's TLS, "tls=TLSv1.3 cipher=NAME
	   verified=yes|no" or "tls=none" */
	const char *tls;
};

struct dconn_cbs {
	/* The job's turn is over; r is borrowed for the call. The owner
	 * may hand the job to another connection from here. */
	void (*done)(void *owner, void *job, const struct dconn_report *r);
	/* A connection closed (a per-host slot freed) or became idle:
	 * a parked job may go now. */
	void (*slot)(void *owner);
};

/* The connections of one worker; the worker embeds it. */
struct dconn_pool {
	struct uring_loop *loop;
	struct deliver *d; /* per-host caps and the TLS client context */
	const struct dconn_cbs *cbs;
	void *owner;
	struct dconn *conns; /* open, closing ones included */
	bool stopping;       /* no reuse, no idle keeping */
};

/* A new connection: where to, and the session's settings. */
struct dconn_params {
	const char *host;  /* MX or route host name: SNI, verify name */
	const char *relay; /* "host[ip]:port" */
	const char *key;   /* "ip:port": the per-host cap */
	const struct sockaddr *sa;
	socklen_t salen;
	struct smtp_out_cfg so; /* strings borrowed from cfg's snapshot */
	const struct deliver_cfg *cfg; /* the connection takes a reference
					  of its own (so's strings, the
					  host cap's settings) */
	uint64_t trace_id;             /* for smtp_out trace lines */
	uint64_t connect_timeout, idle_timeout; /* ms */
	unsigned max_msgs;            /* transactions per connection, at most */
	const struct tls_policy *tls; /* the target's (tls_policy.h);
					 borrowed, its records copied */
	/* TLS-RPT: the session is under a DANE or MTA-STS policy and is
	 * counted (deliver_tlsrpt.h); borrowed, copied; NULL: not counted */
	const struct tlsrpt_rec *rpt;
};

/*
 * dconn_open - take a slot of p->key's cap and connect; the job (opaque)
 * runs its transaction job (borrowed until its `done`) once the session
 * is ready. Returns 0 (`done` comes later, or from inside this call when
 * no socket can be made) or -EBUSY: the host is at its cap, nothing
 * happened (park the job).
 */
int dconn_open(struct dconn_pool *pool, const struct dconn_params *p, void *job,
    const struct smtp_out_job *sj) MTA_MUST_CHECK;

/* Give the job to an idle connection to key opened with the same session
 * settings so (TLS policy, AUTH identity: a connection authenticated as
 * one user, or not at all, never carries another route's mail) and under
 * the same TLS policy tls (tls_policy.h: source, level, DANE records;
 * borrowed; NULL: not compared), if there is one (true); `done` may come
 * from inside this call. */
bool dconn_reuse(struct dconn_pool *pool, const char *key,
    const struct smtp_out_cfg *so, const struct tls_policy *tls, void *job,
    const struct smtp_out_job *sj);

/* Shutdown: every connection is abandoned (its job's `done` comes from
 * inside this call) and no connection is kept or reused afterwards. */
void dconn_stop_all(struct dconn_pool *pool);

/* No connection left, closing ones included. */
bool dconn_pool_empty(const struct dconn_pool *pool);

#endif
