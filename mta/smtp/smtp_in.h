/* SPDX-License-Identifier: ISC */
/*
 * smtp_in.h - the receive-side SMTP state machine: bytes in, replies and
 * requests out. It does no I/O, so tests and fuzzers drive it without
 * sockets; the receive connection (receive/receive_conn.c, on a
 * net/stream) owns the socket, TLS and timers.
 *
 * DESIGN. The loop hands every byte it reads to smtp_in_feed(). The
 * session appends them to its bounded input buffer and consumes every
 * complete line it holds before it returns, so a pipelined batch produces
 * one run of replies in `out`, sent with one send. It stops early when it
 * needs the loop to act (commit a message, start TLS, check a password,
 * close) and says so in the returned action; the loop acts, then calls the
 * matching *_done() function, which resumes with the input still buffered.
 * While an action is outstanding the session takes no input: the loop must
 * not read (smtp_in_want_read() is false), which is the backpressure that
 * bounds memory.
 *
 * Thread: a session belongs to the receive thread that created it.
 */
#ifndef MTA_SMTP_IN_H
#define MTA_SMTP_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/compat.h"

struct queue_submit;
struct dkim_job;
struct dkim_table;
struct sender_policy;
struct limits;
struct limits_subject;

/* What the loop must do after feed/done returns. Replies in `out` are
 * always sent first, in every case. */
enum smtp_in_action {
	SMTP_IN_READ,     /* keep reading */
	SMTP_IN_COMMIT,   /* take smtp_in_commit_take(), queue it, then
			     smtp_in_commit_done() */
	SMTP_IN_STARTTLS, /* after sending out: start the TLS handshake,
			     then smtp_in_tls_done() */
	SMTP_IN_AUTH,     /* check smtp_in_auth_peek() off the loop, then
			     smtp_in_auth_done() */
	SMTP_IN_CLOSE,    /* send out, then close the connection */
	SMTP_IN_SIGN,     /* take smtp_in_sign_take(), sign it (off the
			     loop: dkim_pool), then smtp_in_sign_done() */
	SMTP_IN_LIMIT,    /* ask the shared limits store about
			     smtp_in_limit_peek(), then smtp_in_limit_done() */
};

/* Per-listener settings, shared read-only by every session of a thread.
 * Strings are borrowed; they outlive the sessions. */
struct smtp_in_cfg {
	const char *hostname;      /* greeting, EHLO, Received */
	uint64_t max_message_size; /* bytes */
	unsigned max_recipients;
	unsigned max_errors; /* bad commands before 421 */
	bool bare_reject;    /* bare_newline = reject (else normalize) */
	bool nul_strip;      /* nul_in_body = strip (else reject) */
	bool tls_available;  /* a certificate is loaded (STARTTLS) */
	bool auth_available; /* a users file is loaded */
	bool auth_require_tls;
	unsigned auth_max_failures;
	bool allow_address_literals; /* RCPT x@[1.2.3.4]: else 550 5.7.1 */
	/* The loop calls smtp_in_greet() after the greeting pause: until
	 * then no 220 is sent, and input is an early talker's (554 5.5.0,
	 * close). false: smtp_in_new() greets at once. */
	bool greet_wait;
	/* New message id; called once per accepted DATA. */
	uint64_t (*id_new)(void *arg);
	void *id_arg;
	/* Global budget of body bytes being received by all sessions:
	 * inflight_reserve(n) returns false when over it (-> 452 4.3.1);
	 * may be NULL (no budget). inflight_release(n) gives bytes back.
	 * Any thread. */
	bool (*inflight_reserve)(void *arg, size_t n);
	void (*inflight_release)(void *arg, size_t n);
	void *inflight_arg;
	/* Room in the queue for a message of size bytes (0: undeclared)?
	 * Asked at MAIL and before 354; false -> 452 4.3.1. May be NULL
	 * (always room). Any thread. */
	bool (*room)(void *arg, uint64_t size, uint64_t max_size);
	void *room_arg;
	/* DKIM keys by From domain (borrowed; NULL: none): a message is
	 * signed as it streams in, the fields prepended before the commit. */
	const struct dkim_table *dkim;
	/* Who may send as whom (borrowed; NULL: anyone as anyone). */
	const struct sender_policy *senders;
	/* [limit] sections (borrowed; NULL: none, and no call at all):
	 * messages are counted at MAIL, recipients at RCPT; over a limit
	 * 450 4.7.1. */
	struct limits *limits;
	/* The message limits live in a shared store ([limits] backend =
	 * redis): MAIL asks the loop (SMTP_IN_LIMIT) instead of limits. */
	bool limits_shared;
};

/* The connection, as the loop knows it. */
struct smtp_in_peer {
	char addr[64]; /* numeric client address, "127.0.0.1" / "::1" */
	uint16_t port;
	bool relay_allowed; /* address is in relay_networks */
	bool tls;           /* implicit TLS listener (already encrypted) */
	bool local;         /* the local submission socket: uid is set */
	uint32_t uid;       /* local: the client's uid (SO_PEERCRED) */
};

struct smtp_in;

/* Create a session; cfg and peer are copied or borrowed as stated above.
 * Appends the 220 greeting to out, unless cfg->greet_wait. */
struct smtp_in *smtp_in_new(const struct smtp_in_cfg *cfg,
    const struct smtp_in_peer *peer, struct buf *out);
/* Free the session, any message in progress, and any outstanding request
 * it still owns. Takes NULL. */
void smtp_in_free(struct smtp_in *s);

/* Consume len bytes (all of them are copied; the caller's buffer may be
 * reused at once), append replies to out, return what to do next. */
enum smtp_in_action smtp_in_feed(
    struct smtp_in *s, const uint8_t *data, size_t len, struct buf *out);

/* False while an action is outstanding or the input buffer is full. */
bool smtp_in_want_read(const struct smtp_in *s);

/* After SMTP_IN_COMMIT: the finished message (ownership moves to the
 * caller; its msg.type is QUEUE_REQ_SUBMIT). */
struct queue_submit *smtp_in_commit_take(struct smtp_in *s);
/* The committer's answer: req comes back (ownership returns; the session
 * frees it). Appends 250/451/452, then resumes buffered input. */
enum smtp_in_action smtp_in_commit_done(
    struct smtp_in *s, struct queue_submit *req, struct buf *out);

/* After SMTP_IN_SIGN: the message to sign (ownership moves to the
 * caller, who signs it with dkim_job_run or a dkim_pool). */
struct dkim_job *smtp_in_sign_take(struct smtp_in *s);
/* The job back, signed (or not, which is logged): the session keeps the
 * message, then asks for its commit (returns SMTP_IN_COMMIT). */
enum smtp_in_action smtp_in_sign_done(
    struct smtp_in *s, struct dkim_job *j, struct buf *out);

/* After SMTP_IN_STARTTLS: the handshake finished (ok) or failed. The
 * session has already dropped input buffered after the STARTTLS line. */
enum smtp_in_action smtp_in_tls_done(
    struct smtp_in *s, bool ok, struct buf *out);

/* After SMTP_IN_AUTH: the credentials to check, borrowed until
 * smtp_in_auth_done(). */
void smtp_in_auth_peek(
    const struct smtp_in *s, const char **user, const char **pass);
enum smtp_in_action smtp_in_auth_done(
    struct smtp_in *s, bool ok, struct buf *out);

/* After SMTP_IN_LIMIT: the MAIL's subject (borrowed until
 * smtp_in_limit_done) whose messages limits to charge one unit. */
void smtp_in_limit_peek(const struct smtp_in *s, struct limits_subject *subj);
/* The answer: ok, or refused by limit name (copied). The MAIL goes on
 * (250, or 450 4.7.1), then buffered input. */
enum smtp_in_action smtp_in_limit_done(
    struct smtp_in *s, bool ok, const char *name, struct buf *out);

/* cfg->greet_wait: the pause is over and no input came; appends the 220.
 * Once, before any other input; later calls do nothing. */
enum smtp_in_action smtp_in_greet(struct smtp_in *s, struct buf *out);

/* What the session waits for from the client, for request deadlines. */
enum smtp_in_wait {
	SMTP_IN_WAIT_NONE,    /* nothing: not greeted, an action is out,
				 closing */
	SMTP_IN_WAIT_COMMAND, /* the next command; none of it has come */
	SMTP_IN_WAIT_LINE,    /* the rest of a command or AUTH line */
	SMTP_IN_WAIT_DATA,    /* message content, after the 354 */
};

struct smtp_in_progress {
	enum smtp_in_wait wait;
	uint64_t seq;   /* changes when a line completes or DATA starts: a
			   LINE or DATA with a new seq is a new request */
	uint64_t bytes; /* DATA: message octets received so far */
};

/* Where the session is (see struct smtp_in_progress); after feed/done. */
void smtp_in_progress(const struct smtp_in *s, struct smtp_in_progress *p);

/* A request deadline passed: a command line not complete within the
 * command timeout of its first byte, or content below the minimum data
 * rate. Logs it, appends 421 4.4.2 "Error: timeout exceeded", returns
 * CLOSE. */
enum smtp_in_action smtp_in_deadline(struct smtp_in *s, struct buf *out);

/* The idle or session timer fired: appends 421 4.4.2, returns CLOSE. */
enum smtp_in_action smtp_in_timeout(struct smtp_in *s, struct buf *out);
/* The server is shutting down: appends 421 4.3.2, returns CLOSE. Only
 * called when no transaction is in progress or at the shutdown deadline. */
enum smtp_in_action smtp_in_shutdown(struct smtp_in *s, struct buf *out);
/* True while a transaction (MAIL..end of DATA) is in progress. */
bool smtp_in_busy(const struct smtp_in *s);

#endif
