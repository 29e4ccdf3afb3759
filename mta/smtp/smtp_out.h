/* SPDX-License-Identifier: ISC */
/*
 * smtp_out.h - the client side of SMTP for one outbound connection:
 * replies in, commands and the message body out, per-recipient results.
 * It does no I/O, keeps no clock and touches no socket or TLS object, so
 * tests drive it with scripted transcripts; the delivery worker's loop
 * owns the socket, TLS, timers and the queue.
 *
 * DESIGN. The loop connects, creates a session and hands it every byte it
 * reads (smtp_out_feed). The session parses replies with the shared
 * parser (smtp_reply.h), matches them in order to the commands it sent,
 * appends its next commands to the caller's `out` buffer and returns an
 * action. The sequence is greeting, EHLO (HELO when EHLO gets 5xx),
 * STARTTLS per policy (the loop does the handshake, then EHLO again),
 * AUTH when the route has credentials (PLAIN, else LOGIN; never on a
 * plaintext session unless auth_plaintext; no usable mechanism, or
 * AUTH refused, fails the host: credentials are never silently
 * skipped), then one transaction per job: [RSET] MAIL, RCPT..., DATA, body, ".".
 * With PIPELINING the whole [RSET] MAIL RCPT... DATA group is written at
 * once and the replies are matched in order (RFC 2920); without it one
 * command at a time. After a job the caller either sets the next job on
 * the same connection or quits. RSET goes first only when the last
 * transaction did not end with the reply to its final dot (MAIL or every
 * RCPT refused, DATA refused): a finished transaction needs none.
 *
 * Output is bounded: the session never puts more than
 * min(SMTP_OUT_CHUNK, out->max) bytes in `out`; a long pipelined group or
 * a body is produced in chunks (action SMTP_OUT_WRITE, then
 * smtp_out_flushed() when out has drained). The body is streamed from the
 * caller's (ptr, len), or chunk by chunk from its body_peek, with
 * dot-stuffing; CRLF line ends are guaranteed
 * (a bare LF or bare CR becomes CRLF), the final ".\r\n" is added.
 * An 8-bit body goes to a server without 8BITMIME only as the caller
 * converts it (job body_7bit, RFC 6152), in one piece.
 *
 * Outcomes are decided here, where the replies are: per recipient 2xx
 * OK, 4xx TEMPFAIL, 5xx PERMFAIL; a recipient accepted at RCPT takes the
 * reply to DATA or to the final dot. Anything that condemns the host
 * (greeting or EHLO refused, 421, TLS required and missing, AUTH refused,
 * timeout, lost connection, protocol error) defers every unresolved
 * recipient and sets smtp_out_host_failed(): the worker may try them on
 * the next MX host.
 *
 * Thread: a session belongs to the delivery worker thread that made it;
 * the configuration it borrows must be immutable while it lives.
 */
#ifndef MTA_SMTP_OUT_H
#define MTA_SMTP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"
#include "config/config.h"
#include "smtp/smtp_reply.h"

#define SMTP_OUT_CHUNK    65536 /* bytes appended to out per call, at most */
#define SMTP_OUT_OUT_MIN  4096  /* out->max must be at least this */
#define SMTP_OUT_TEXT_MAX 512   /* bytes of reply text kept per result */

/* What the loop does after any call. Bytes in `out` are always sent
 * first, in every case, and the loop keeps a read posted while the
 * connection is open (a server may send 421 at any time), except during
 * the TLS handshake. */
enum smtp_out_action {
	SMTP_OUT_READ,     /* wait for the server; feed what arrives */
	SMTP_OUT_WRITE,    /* more to send: call smtp_out_flushed() once out
			      has drained (keep feeding meanwhile) */
	SMTP_OUT_STARTTLS, /* out is empty: do the TLS client handshake, then
			      smtp_out_tls_done(); no plaintext is fed
			      after this (the session drops any) */
	SMTP_OUT_JOB_DONE, /* the job's results are final: read them, then
			      smtp_out_job_set() (when smtp_out_reusable())
			      or smtp_out_quit() */
	SMTP_OUT_IDLE,     /* ready, no job: smtp_out_job_set() or
			      smtp_out_quit() (the idle timer is the loop's) */
	SMTP_OUT_CLOSE,    /* send out, then close the connection */
};

/* Domain outcome of one recipient (STYLE 2.5 mta_outcome). */
enum smtp_out_outcome {
	SMTP_OUT_OK,       /* delivered: the server took responsibility */
	SMTP_OUT_TEMPFAIL, /* deferred: retry on the schedule */
	SMTP_OUT_PERMFAIL, /* bounced: DSN to the sender */
};

/* The command a reply answered, for logs and DSNs ("in reply to RCPT"). */
enum smtp_out_cmd {
	SMTP_OUT_CMD_NONE, /* decided locally, no reply */
	SMTP_OUT_CMD_GREETING,
	SMTP_OUT_CMD_EHLO,
	SMTP_OUT_CMD_HELO,
	SMTP_OUT_CMD_STARTTLS,
	SMTP_OUT_CMD_AUTH,
	SMTP_OUT_CMD_RSET,
	SMTP_OUT_CMD_MAIL,
	SMTP_OUT_CMD_RCPT,
	SMTP_OUT_CMD_DATA,
	SMTP_OUT_CMD_DOT, /* the end of the message data */
	SMTP_OUT_CMD_QUIT,
};

/* The result of one recipient, or of the session (smtp_out_error). */
struct smtp_out_result {
	enum smtp_out_outcome outcome;
	enum smtp_out_cmd cmd;
	int code;                          /* remote code; 0 = local */
	char enhanced[SMTP_REPLY_ENH_MAX]; /* always set: the server's, or
					      "C.0.0" from the code's class,
					      or ours for local outcomes */
	const char *text; /* the server's reply text (lines joined by '\n',
			      at most SMTP_OUT_TEXT_MAX bytes) or our reason;
			      NUL-terminated; peer data: quote before logging.
			      Borrowed: valid until the next smtp_out_job_set()
			      or smtp_out_free() */
	bool peer_dsn;    /* accepted by a host that offers DSN (so the DSN
			  parameters went with it) */
};

/* Per-connection settings. Copied, but the strings are borrowed: they
 * must outlive the session (they live in the config snapshot). */
struct smtp_out_cfg {
	const char *helo_name;      /* EHLO/HELO argument */
	enum config_tls_policy tls; /* [delivery] tls or the route's */
	bool tls_on_connect;        /* already encrypted (implicit TLS) */
	const char *tls_policy;     /* a policy that demands TLS ("dane",
				       "mta-sts"): its failures are 4.7.5 and
				       name it; NULL: none */
	const char *auth_user;      /* route username; NULL or "" = none */
	const char *auth_pass;
	bool auth_plaintext;      /* allow AUTH without TLS (else the
				     host fails 4.7.0 on plaintext) */
	uint64_t command_timeout; /* ms: greeting, EHLO, MAIL, RCPT... */
	uint64_t data_timeout;    /* ms: DATA, body, final dot */
};

/* One message for this host. Everything it points to is borrowed and must
 * stay valid and unchanged until SMTP_OUT_JOB_DONE is returned or the
 * session is freed. */
struct smtp_out_job {
	const char *from;         /* reverse-path without <>; "" = <> */
	const char *const *rcpts; /* forward-paths without <> */
	size_t nrcpts;
	const uint8_t *body; /* the stored message, CRLF lines (or NULL
				with body_peek) */
	size_t body_len;     /* bytes of the message, always */
	/* A body in chunks, instead of `body`: the session asks for the
	 * bytes at off (< body_len) and gets a pointer to *n > 0 of them,
	 * borrowed until the next call or until the job ends; or NULL when
	 * they cannot be read: the transaction is then abandoned unended
	 * (every recipient not yet final deferred with 4.3.0, the host not
	 * failed) and the session closes. Chunk edges may fall anywhere,
	 * even between CR and LF or after a line's leading dot. */
	const uint8_t *(*body_peek)(void *arg, size_t off, size_t *n);
	void *body_arg;
	bool need_8bitmime; /* 8-bit content: BODY=8BITMIME when offered,
			       else body_7bit */
	/* The message in 7 bits, for a server that did not offer 8BITMIME
	 * (RFC 6152 section 3), asked for (with body_arg) only then, before
	 * MAIL: 0 with *body and *len set (borrowed as body is; sent whole
	 * instead of body or body_peek, SIZE= included); 1 when it cannot
	 * be converted (every recipient fails 5.6.3; *why a static reason);
	 * a negative errno when it cannot be read (every recipient is
	 * deferred 4.3.0, the host not failed). NULL: never convertible. */
	int (*body_7bit)(
	    void *arg, const uint8_t **body, size_t *len, const char **why);
	bool need_smtputf8; /* SMTPUTF8 required (else 5.6.7) */
	/* DSN (RFC 3461), passed on only to a host that offers DSN:
	 * envid (xtext) NULL = none, ret QUEUE_RET_* (0 none); notify and
	 * orcpts NULL, or one entry per rcpt (0 / NULL = none). */
	const char *envid;
	uint8_t ret;
	const uint8_t *notify;
	const char *const *orcpts;
	struct smtp_out_result *results; /* out: nrcpts entries, filled in
					    by JOB_DONE */
};

struct smtp_out;

/*
 * smtp_out_new - a session for a connection just established (before the
 * greeting). cfg is copied (its strings borrowed); id is the 16-hex id
 * used in trace lines. Nothing is written: the server speaks first, so
 * the loop starts with a read. Never fails (xmalloc).
 */
struct smtp_out *smtp_out_new(const struct smtp_out_cfg *cfg, uint64_t id);
/* Free the session. A job in progress is abandoned without results. Takes
 * NULL. */
void smtp_out_free(struct smtp_out *s);

/*
 * smtp_out_feed - consume n bytes read from the server (all of them; the
 * caller's buffer may be reused at once), append commands or body to out
 * (out->max >= SMTP_OUT_OUT_MIN), return the next action. Malformed or
 * overlong replies, unexpected replies and unsolicited bytes end the
 * session as a host failure.
 */
enum smtp_out_action smtp_out_feed(
    struct smtp_out *s, const uint8_t *p, size_t n, struct buf *out);

/* After SMTP_OUT_WRITE, when out has drained: append the next chunk. */
enum smtp_out_action smtp_out_flushed(struct smtp_out *s, struct buf *out);

/*
 * smtp_out_job_set - give the session its next message. Allowed when no
 * job is held: right after smtp_out_new() (the job starts once the
 * handshake is over; returns READ), on IDLE, or after JOB_DONE (results
 * of the previous job are then forgotten; the session sends RSET before
 * MAIL when the previous transaction was left open, see DESIGN). On a
 * session that can no longer carry a job, or one refused before MAIL
 * (SIZE too big for the host, SMTPUTF8 not offered, an 8-bit body
 * neither offered 8BITMIME nor convertible, bad addresses), returns
 * JOB_DONE at once.
 */
enum smtp_out_action smtp_out_job_set(
    struct smtp_out *s, const struct smtp_out_job *job, struct buf *out);

/* The reason a failed handshake gives its recipients (4.7.5), in place
 * of "TLS handshake failed": before smtp_out_tls_done(s, false, ...).
 * why: copied (truncated to 199 bytes). */
void smtp_out_tls_reason(struct smtp_out *s, const char *why);

/*
 * smtp_out_tls_done - after SMTP_OUT_STARTTLS: the handshake succeeded
 * (ok; the session then sends EHLO again over TLS) or failed (the host
 * fails: JOB_DONE with a job, CLOSE without). The certificate check that
 * the `verify` policy asks for is the loop's (tls module) to make.
 */
enum smtp_out_action smtp_out_tls_done(
    struct smtp_out *s, bool ok, struct buf *out);

/*
 * smtp_out_quit - end the session politely: appends QUIT and returns READ
 * (the reply, or EOF, then gives CLOSE) when the dialogue is in step;
 * returns CLOSE without writing when it is not (after 421, a protocol
 * error, a failed handshake, in the middle of a transaction). Any job in
 * progress is abandoned without results.
 */
enum smtp_out_action smtp_out_quit(struct smtp_out *s, struct buf *out);

/* Why the loop gives up on the connection. */
enum smtp_out_abort {
	SMTP_OUT_ABORT_TIMEOUT, /* smtp_out_timeout() ms passed with no reply */
	SMTP_OUT_ABORT_EOF,     /* the server closed the connection */
	SMTP_OUT_ABORT_IO,      /* read/write/TLS error */
};

/*
 * smtp_out_abort - the connection is gone or hopeless: every unresolved
 * recipient is deferred (4.4.2). Returns JOB_DONE when a job was in
 * progress (then close: the session is not reusable), CLOSE otherwise. An
 * idle connection closing (EOF while IDLE or after QUIT) is not a host
 * failure.
 */
enum smtp_out_action smtp_out_abort(
    struct smtp_out *s, enum smtp_out_abort why);

/* The reply timeout that applies now, in ms (RFC 5321 4.5.3.2, from the
 * config: command_timeout or data_timeout); 0 when none does (idle, or
 * closed): the loop applies its own idle policy then. Restart the timer
 * whenever bytes arrive or are sent. */
uint64_t smtp_out_timeout(const struct smtp_out *s);

/* After JOB_DONE: may another job use this connection? */
bool smtp_out_reusable(const struct smtp_out *s);
/* Did the host itself fail (see DESIGN)? */
bool smtp_out_host_failed(const struct smtp_out *s);
/* The host failure, for logs; NULL when none. Valid until
 * smtp_out_free(). */
const struct smtp_out_result *smtp_out_error(const struct smtp_out *s);
/* The server's EHLO capabilities (all false after HELO); borrowed, valid
 * until the next call on s. */
const struct smtp_ehlo *smtp_out_ehlo(const struct smtp_out *s);
/* Is the connection encrypted (after STARTTLS or implicit TLS)? */
bool smtp_out_tls_active(const struct smtp_out *s);
/* "RCPT", "end of data" ...: for logs and DSNs. Static strings. */
const char *smtp_out_cmd_name(enum smtp_out_cmd cmd);
const char *smtp_out_outcome_name(enum smtp_out_outcome o);

#endif
