/* SPDX-License-Identifier: ISC */
/*
 * receive.h - the receive stage: R threads, each with its own io_uring
 * loop, its own SO_REUSEPORT listener on every listen address, and the
 * SMTP sessions (smtp_in) of the connections it accepted.
 *
 * DESIGN. The kernel spreads accepts over the R listeners of an address,
 * so threads share no lock on the hot path. A connection lives on its
 * thread from accept to close, on a net/stream: recv into the thread's
 * provided buffers, smtp_in_feed(), one send of every reply of the
 * batch. At end of DATA the session's commit request goes to the queue
 * with the thread's chan as its reply address; the answer wakes the loop
 * through the chan's eventfd. AUTH credentials go the same way to the
 * auth worker pool. TLS (STARTTLS, implicit TLS) runs in the stream on
 * the same ring over memory buffers (tls.h): no extra thread, nothing
 * blocks. What threads share: the connection counts (an atomic total,
 * and a mutex-protected per-address table), the in-flight body budget
 * (an atomic), the read-only TLS context and the auth pool.
 *
 * Lifecycle (main thread): receive_new() (binds: startup errors surface
 * here) -> receive_start() -> ... -> receive_shutdown() -> poll
 * receive_done() -> receive_free().
 */
#ifndef MTA_RECEIVE_H
#define MTA_RECEIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/compat.h"
#include "config/config.h"

struct dkim_table;

struct queue;
struct receive;

/* chan message type of this module (main thread -> receive threads). */
enum receive_msg_type {
	RECEIVE_MSG_SHUTDOWN = 0x500, /* reqid 1: now, 0: graceful */
	RECEIVE_MSG_RELOAD,           /* new settings (receive_reload) */
};

/* Seconds a transaction in progress gets to finish after shutdown. */
#define RECEIVE_SHUTDOWN_GRACE_MS 10000

/*
 * receive_limits - the [limit] sections of the startup snapshot c
 * (borrowed: it must outlive the stage), for the sessions made before a
 * reload. After receive_new, before receive_start. Main thread.
 */
void receive_limits(struct receive *r, const struct config *c);

/*
 * receive_check - what receive_new checks and loads besides the ports,
 * for `mta check-config`: a listen_tls without a certificate, the [tls]
 * certificate and key (load, match), the [auth] users file (parses).
 * Loads and frees; binds nothing. 0, or negative errno with the line
 * receive_new would give in err. Main thread.
 */
int receive_check(const struct config_server *server,
    const struct config_tls *tls, const struct config_auth *auth, char *err,
    size_t errlen) MTA_MUST_CHECK;

/*
 * receive_new - create the listening sockets, R per address (R =
 * server->threads) of listen and listen_tls, non-blocking and
 * close-on-exec; build the server TLS context from tls when a
 * certificate is set (STARTTLS on listen, implicit TLS on listen_tls) and
 * load the auth users file when one is set (AUTH PLAIN and LOGIN). No
 * thread runs yet, and nothing else is touched, so call it first: a busy
 * port or a bad file fails fast. A port in use is retried for up to 5 s
 * (one warning line): a relay killed a moment ago may still hold it.
 * server, tls, auth: the [server], [tls] and [auth] sections, borrowed;
 * delivery: the [delivery] section, read for allow_address_literals;
 * they must outlive the receive stage (listeners, threads and
 * max_inflight keep these values; sessions get them until a reload).
 * dkim: the signing table attached to the startup snapshot
 * (dkim_table_attach; NULL: none), borrowed like the sections. A reload
 * uses the one attached to its snapshot.
 * Returns 0 and *out, or negative errno with one line in err, e.g.
 * "listen 127.0.0.1:587: Address already in use",
 * "tls: private key does not match certificate",
 * "auth: /etc/mta/users:3: malformed hash". Main thread.
 */
int receive_new(const struct config_server *server,
    const struct config_tls *tls, const struct config_auth *auth,
    const struct config_delivery *delivery, const struct dkim_table *dkim,
    struct receive **out, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * receive_local - serve SMTP on the local submission socket too
 * (local.h): binds lc->socket, resolves the allow lists, and gives every
 * thread a listener on it. lc: borrowed, outlives the stage. Between
 * receive_new() and receive_start(), after control_new() (a socket file
 * found there is taken as stale). Returns 0, or negative errno with one
 * line in err (then call receive_free).
 */
int receive_local(struct receive *r, const struct config_local *lc, char *err,
    size_t errlen) MTA_MUST_CHECK;

/*
 * receive_start - start the auth worker pool (when AUTH is configured) and
 * the R threads; returns once each has its ring set up and is accepting.
 * q: the started queue that messages are submitted to; borrowed, must
 * outlive the receive stage. Signals must already be blocked in the
 * caller (the threads inherit the mask). Returns 0, or negative errno
 * with one line in err (then every thread has been stopped again; call
 * receive_free).
 */
int receive_start(struct receive *r, struct queue *q, char *err,
    size_t errlen) MTA_MUST_CHECK;

/*
 * receive_shutdown - stop accepting; sessions without a transaction get
 * 421 4.3.2 and are closed; those in a transaction get
 * RECEIVE_SHUTDOWN_GRACE_MS to finish (now = true: no grace). Returns at
 * once; may be called again with now = true. Main thread.
 */
void receive_shutdown(struct receive *r, bool now);

/*
 * receive_reload - apply a reloaded snapshot to new sessions; reads its
 * [server], [tls] and [auth] sections and [delivery]
 * allow_address_literals only:
 * limits (max_message_size, max_recipients, max_errors, idle and session
 * timeouts, connection caps), relay_networks, hostname, the [tls]
 * certificate (a new server context; open connections keep theirs) and
 * the [auth] users file (auth_pool_users_swap). Sessions already open
 * keep the settings they started with. Each thread switches when it
 * reads its RECEIVE_MSG_RELOAD (each thread, and each session from
 * then on, holds a reference to snap). Listen addresses, threads and
 * max_inflight stay as they were at start (the key table marks them;
 * serve.c logs them as reload-ignored); so does AUTH when no users file
 * was set at start.
 * snap: the caller keeps its reference. Not yet shared with another
 * thread: the stage attaches the state it derives (the TLS context) to
 * it (config_attach). Returns 0, or negative errno with one line in err
 * (a certificate or users file that does not load) and then nothing has
 * changed. Main thread, after receive_start().
 */
int receive_reload(struct receive *r, struct config *snap, char *err,
    size_t errlen) MTA_MUST_CHECK;

/* True when every thread has finished (after receive_shutdown). */
bool receive_done(const struct receive *r);

/* Join the threads and free everything (takes NULL). Main thread, after
 * receive_done() or when receive_start() failed or was never called. */
void receive_free(struct receive *r);

#endif
