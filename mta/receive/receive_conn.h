/* SPDX-License-Identifier: ISC */
/*
 * receive_conn.h - the connections of one receive thread, private to
 * mta/receive/. receive.c (threads, listeners, limits, routing) calls
 * these; receive_conn.c never calls receive.c: what it must tell the
 * thread (a connection is gone) goes through the `gone` callback in
 * struct rconn_env.
 *
 * Thread: one receive thread; every function here runs on it.
 */
#ifndef MTA_RECEIVE_CONN_H
#define MTA_RECEIVE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp_in.h"

struct auth_pool;
struct auth_req;
struct dkim_job;
struct dkim_pool;
struct limits_redis;
struct chan;
struct queue;
struct queue_submit;
struct rconns;
struct tls_ctx;
struct uring_loop;

#define RCONN_IPKEY 17 /* bytes of a per-address table key */

/* What the connections of a thread share; owned by receive.c, which
 * may change the flags at any time on the thread. */
struct rconn_env {
	struct uring_loop *l;
	struct chan *chan;          /* reply address of our requests */
	struct queue *q;            /* commits go here */
	struct auth_pool *auth;     /* NULL: no AUTH */
	struct dkim_pool *dkim;     /* signing threads; NULL: sign inline */
	struct limits_redis *redis; /* shared limits; NULL: local only */
	unsigned nodes;             /* [limits] nodes: the fallback share */
	bool shutting;              /* say 421 to sessions when they are idle */
	bool deadline;              /* grace over: say it at the next chance */
	/* A connection was freed: release its address key and its
	 * settings reference (ref from struct rconn_start). */
	void (*gone)(void *arg, const uint8_t ipkey[RCONN_IPKEY], void *ref);
	/* A settings reference kept past its connection is let go: a
	 * signing job was out when the connection closed, and the keys it
	 * signs with live in those settings, so ref was kept (not given to
	 * gone, which got NULL) until the job came back. */
	void (*unref)(void *arg, void *ref);
	void *arg;
};

/* One accepted connection's settings; all borrowed until `gone`. */
struct rconn_start {
	const struct smtp_in_peer *peer; /* read during the call */
	const uint8_t *ipkey;            /* RCONN_IPKEY bytes, copied */
	const struct smtp_in_cfg *scfg;  /* borrowed by the session */
	struct tls_ctx *tls;             /* STARTTLS/implicit; NULL: none */
	uint64_t idle_ms, session_ms;    /* timeouts */
	uint64_t command_ms;             /* first byte to end of a line, or a
					    TLS handshake */
	unsigned data_rate;              /* DATA bytes/s after command_ms;
					    0: no rate */
	uint64_t greet_ms;               /* before the 220 (scfg->greet_wait);
					    0: the next loop turn */
	bool implicit;                   /* TLS before the greeting */
	unsigned listener;               /* metrics: counted closed at free */
	void *ref;                       /* handed back to `gone` */
};

/* The connection table of one thread. env: borrowed for its life. */
struct rconns *rconns_new(struct rconn_env *env);

/* Free the table once the loop has ended (every connection gone). */
void rconns_free(struct rconns *cs);

/* Connections not yet freed. */
size_t rconns_live(const struct rconns *cs);

/* Requests (commits, password checks) whose answer is still owed to
 * env->chan, including those of connections gone meanwhile. */
size_t rconns_pending(const struct rconns *cs);

/* Answers for connections that had gone (for the thread's last log). */
uint64_t rconns_stale(const struct rconns *cs);

/* Start a session on an accepted socket (owned from here). */
void rconn_open(struct rconns *cs, int fd, const struct rconn_start *st);

/* Route answers by reqid; the request is taken (freed or handed to the
 * session). */
void rconns_commit_done(struct rconns *cs, struct queue_submit *req);
void rconns_auth_done(struct rconns *cs, struct auth_req *req);
/* The shared limits' answer res (limits_redis.h) to the check of reqid. */
void rconns_limit_done(struct rconns *cs, uint64_t reqid, int res);
/* Any answer of the shared limits (a check, or a connection's leases);
 * false: nobody waits for it (limits_redis_cbs.answer). */
bool rconns_redis_answer(struct rconns *cs, uint64_t cookie, int res);
void rconns_sign_done(struct rconns *cs, struct dkim_job *j);

/* Shutdown (env->shutting or env->deadline just set): say 421 to every
 * session that is idle now, or to every one at the deadline. */
void rconns_shutdown(struct rconns *cs);

#endif
