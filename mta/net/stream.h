/* SPDX-License-Identifier: ISC */
/*
 * stream.h - one connection: a socket on the thread's uring loop, with
 * optional TLS over memory buffers, flow control, timeouts and one close
 * path. Receive sessions, delivery sessions, mta-sink and mta-load all
 * use it; protocol code above it never touches a socket, an SSL object or
 * a uring op for I/O.
 *
 * DESIGN. The caller embeds a struct stream in its own object (fields are
 * private to stream.c), opens it with stream_open() (an accepted socket)
 * or stream_connect() (an outbound one), and is told what happens through
 * a struct stream_cbs of function pointers with one user pointer. From
 * the open until the `closed` callback the stream owns the fd and its ops;
 * `closed` comes exactly once, after the last op is final, and only then
 * may the owner free the object embedding the stream.
 *
 * Input: one multishot recv into the loop's provided buffers. Plaintext
 * (decrypted when TLS is on) is offered to `input`, which consumes what it
 * can; the rest is kept and offered again with more. While input is held
 * (stream_pause(), more than STREAM_OUT_HIWAT bytes unsent because the
 * peer does not read, a STARTTLS switch in progress) arriving bytes are
 * kept in a bounded buffer; above STREAM_IN_HIWAT the recv is cancelled,
 * and it is re-armed when input is taken again. STREAM_IN_MAX is the hard
 * cap (the close reason is "input overflow").
 *
 * Output: the user appends plaintext to stream_outbuf() (or copies it in
 * with stream_write()); everything queued goes out in one send when the
 * previous one has finished, so a pipelined batch of replies costs one
 * send. The buffer is capped at STREAM_OUT_MAX: beyond it appending fails
 * with -ENOBUFS, which the caller sees. stream_unsent() and the `drained`
 * callback show backpressure.
 *
 * TLS: stream_start_tls() as a server (implicit TLS right after open, or
 * STARTTLS after the 220 is queued) or a client. What was queued before
 * the call goes out in plaintext; once that is on the wire, any input
 * received so far (plaintext pipelined behind the command: CVE-2011-0411)
 * is discarded and the handshake starts; from then on every byte read is
 * ciphertext. Output queued after the call is encrypted once the
 * handshake is done. Post-handshake messages (tickets, key updates) and
 * WANT_READ/WANT_WRITE are handled inside.
 *
 * Timeouts: a read deadline (no input for read_ms), a write deadline (a
 * send stuck for write_ms), a whole-session deadline and one user timer.
 * Each fires `timeout` once; the stream does nothing else (the protocol
 * decides: a 421, a close). stream_hold_timers() says "not waiting on the
 * peer now" (e.g. a commit is with the queue): read and session deadlines
 * do not fire while held.
 *
 * Closing: stream_close() orderly (what is queued is sent, then a TLS
 * close_notify, then close; bounded by the linger time) or abortive
 * (discard and close at once). The stream closes itself on peer EOF,
 * errors, TLS failure and input overflow; `closed` says why. After an
 * EOF (perhaps a half-close behind pipelined commands) the input kept is
 * offered first, also after a pause until stream_resume(), and the close
 * is orderly, so replies to it still go; errors close at once.
 *
 * Callbacks run on the loop thread, never from inside a stream_*() call
 * except stream_resume() (which may offer buffered input at once) and
 * stream_tls_key_update() (which may report a TLS failure); `closed`
 * never comes from inside a call. From any callback the user may call
 * any stream_*() function on the stream; queued output is flushed when
 * the callback returns.
 *
 * Thread: a stream belongs to the thread of its loop.
 */
#ifndef MTA_STREAM_H
#define MTA_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/compat.h"
#include "config/config.h"
#include "net/uring.h"

struct tls_ctx;
struct tls_conn;
struct tls_info;
struct tls_session;
struct tls_tlsa;
struct stream;

#define STREAM_OUT_MAX   (256 * 1024)      /* bytes of plaintext queued, cap */
#define STREAM_OUT_HIWAT (16 * 1024)       /* hold input above this unsent */
#define STREAM_IN_HIWAT  (64 * 1024)       /* cancel the recv above this */
#define STREAM_IN_MAX    (4 * 1024 * 1024) /* input kept, hard cap */
#define STREAM_PLAIN_MAX 16384             /* decrypted bytes offered at once */
#define STREAM_LINGER_MS 5000 /* default bound of an orderly close */

/* Which timer fired. */
enum stream_timer {
	STREAM_TMO_READ,     /* no input for read_ms */
	STREAM_TMO_WRITE,    /* a send has not completed in write_ms */
	STREAM_TMO_DEADLINE, /* the stream_set_deadline() time came */
	STREAM_TMO_TIMER,    /* the stream_timer() delay is over */
};

enum stream_close_how {
	STREAM_CLOSE_ORDERLY, /* send what is queued, close_notify, close */
	STREAM_CLOSE_ABORT,   /* drop what is queued, close now */
};

/*
 * What the stream reports. `input` and `closed` are required, the others
 * may be NULL. s is the stream, user the pointer given at open.
 */
struct stream_cbs {
	/* Plaintext from the peer, borrowed until return. Returns how many
	 * bytes were consumed (0..n); the rest is offered again, with more,
	 * when more arrives or after stream_resume(). Not called while
	 * paused, closing, or after stream_start_tls() for the plaintext
	 * that followed. */
	size_t (*input)(
	    struct stream *s, void *user, const uint8_t *p, size_t n);
	/* Everything queued is on the wire (after a send completes). */
	void (*drained)(struct stream *s, void *user);
	/* TLS: err NULL when the handshake completed; otherwise it (or TLS
	 * after it) failed, err says why (OpenSSL's text, borrowed for the
	 * call), and the stream closes itself after sending any alert
	 * (reason "tls"). At most one success and one failure. */
	void (*tls_done)(struct stream *s, void *user, const char *err);
	/* stream_connect(): res = 0 connected (input starts), or negative
	 * errno (-ETIMEDOUT after the connect timeout), after which the
	 * stream closes itself (reason "connect"). */
	void (*connected)(struct stream *s, void *user, int res);
	/* A timer fired (once per arming); see enum stream_timer. */
	void (*timeout)(struct stream *s, void *user, enum stream_timer which);
	/* The last callback: every op is final, TLS and buffers are freed.
	 * reason: the first given to stream_close(), or the stream's own
	 * ("eof", "reset", "read error", "write error", "tls", "connect",
	 * "input overflow"); static or the caller's, borrowed. The fd is
	 * closed just after this returns, so a log line written here is
	 * out before the peer sees the end. The owner may free s here. */
	void (*closed)(struct stream *s, void *user, const char *reason);
};

/* TLS role and parameters for stream_start_tls(). */
struct stream_tls {
	struct tls_ctx *ctx; /* borrowed for the call (the connection keeps
				its own reference) */
	bool client;
	/* client only: */
	const char *host; /* SNI and verify name; copied */
	enum config_tls_policy policy;
	const struct tls_session *resume; /* borrowed for the call, or NULL */
	const struct tls_tlsa *tlsa;      /* DANE (tls_conn_dane), or NULL;
					borrowed for the call */
	size_t ntlsa;
	const char *dane_name; /* DANE: a name the peer may have besides
				  host (RFC 7672 3.2.2), or NULL; copied */
};

/* Private to stream.c; embed it, never touch the fields. */
struct stream {
	struct uring_loop *l;
	const struct stream_cbs *cbs;
	void *user;
	struct tls_conn *tls; /* NULL: plaintext */
	const char *reason;   /* why it closes */
	const char *rd_end;   /* the recv ended (eof, error): close when the
	                         input kept is used up */
	struct uring_op rd, wr, tmo; /* wr also carries the connect */
	struct buf in;   /* bytes received, not yet taken (ciphertext with
	                    TLS) */
	struct buf pin;  /* TLS: decrypted, not yet consumed */
	struct buf out;  /* plaintext queued by the user */
	struct buf wbuf; /* bytes of the send in flight */
	uint64_t read_ms, write_ms, linger_ms;
	uint64_t read_dl, write_dl, sess_dl, user_dl, conn_dl; /* 0: off */
	uint64_t tmo_at;   /* when the armed tmo fires */
	size_t keep;       /* empty buffers up to this size are kept */
	size_t plain_left; /* STARTTLS: bytes of out still plaintext */
	int fd;
	bool open;       /* between open and closed */
	bool connecting; /* wr is the connect */
	bool conn_timed_out;
	bool paused;
	bool hold; /* stream_hold_timers() */
	bool tls_client;
	bool tls_wait;   /* STARTTLS: waiting for the plaintext to go */
	bool tls_up;     /* handshake done and reported */
	bool tls_failed; /* failure reported */
	bool tls_shut;   /* close_notify queued */
	bool closing;
	bool discard;
	bool lingering;
	bool delivering;            /* inside the input loop: no re-entry */
	bool rd_cancel;             /* we cancelled rd (backpressure) */
	struct sockaddr_storage to; /* connect address, borrowed by wr */
	socklen_t tolen;
};

/*
 * stream_open - take an open, non-blocking socket fd (accepted, or
 * connected by other means) and start reading. s: uninitialised storage
 * in the caller's object. cbs and user: borrowed until `closed`.
 * Never fails; `closed` comes exactly once.
 */
void stream_open(struct stream *s, struct uring_loop *l, int fd,
    const struct stream_cbs *cbs, void *user);

/*
 * stream_connect - open a non-blocking socket to `to` (copied) and
 * connect it; `connected` reports the outcome. timeout_ms: 0 = none.
 * Returns 0 (then `closed` comes exactly once), or negative errno when
 * no socket could be made (nothing to close or wait for).
 */
int stream_connect(struct stream *s, struct uring_loop *l,
    const struct sockaddr *to, socklen_t tolen, uint64_t timeout_ms,
    const struct stream_cbs *cbs, void *user) MTA_MUST_CHECK;

/*
 * stream_outbuf - the plaintext output buffer: append replies to it with
 * buf_append()/buf_appendf() (never consume or reset it); -ENOBUFS from
 * those means the cap (STREAM_OUT_MAX) is reached. Flushed when the
 * current callback returns, or by stream_flush().
 */
struct buf *stream_outbuf(struct stream *s);

/* Copy n bytes into the output buffer. 0, -ENOBUFS over the cap (nothing
 * taken), -EPIPE when closing. Does not send: see stream_flush(). */
int stream_write(struct stream *s, const void *p, size_t n) MTA_MUST_CHECK;

/* Start a send of what is queued, unless one is in flight (then it goes
 * when that finishes). Needed only outside callbacks. */
void stream_flush(struct stream *s);

/* Bytes queued or in flight, plaintext and ciphertext, not yet sent. */
size_t stream_unsent(const struct stream *s);

/* Stop offering input (bytes keep arriving into the bounded buffer, then
 * the recv stops). */
void stream_pause(struct stream *s);

/* Offer input again; buffered input may be offered before this returns
 * (not when called from inside `input`: the loop there goes on). */
void stream_resume(struct stream *s);

/*
 * stream_set_timeouts - read_ms: fire STREAM_TMO_READ after read_ms
 * without input (each byte received restarts it; after firing it is
 * off until the next input). write_ms: fire STREAM_TMO_WRITE when a send
 * (what was queued when it started) has not completed within write_ms:
 * the peer does not read. 0 turns either off. Counts from now.
 */
void stream_set_timeouts(struct stream *s, uint64_t read_ms, uint64_t write_ms);

/* Fire STREAM_TMO_DEADLINE ms from now, once (0: no deadline). */
void stream_set_deadline(struct stream *s, uint64_t ms);

/* Fire STREAM_TMO_TIMER ms from now, once (0 cancels). One at a time; a
 * new call replaces the old time. Not subject to stream_hold_timers(). */
void stream_timer(struct stream *s, uint64_t ms);

/*
 * stream_input_waiting - input has arrived that was not offered yet:
 * kept by the stream, or still in the socket (asked of the kernel, no
 * op). For a check at a protocol turn the peer must wait for, such as
 * SMTP's greeting. False when closing.
 */
bool stream_input_waiting(const struct stream *s);

/* stream_timer() with no delay, which 0 cannot say there: fire on the
 * loop's next turn, after the completions already due. Called right after
 * stream_open(), input already waiting in the socket is offered first. */
void stream_timer_next(struct stream *s);

/*
 * stream_hold_timers - hold = true: the protocol is not waiting on the
 * peer (a commit or a lookup is out); the read and session deadlines do
 * not fire. hold = false: the read deadline restarts from now, and a
 * session deadline that passed meanwhile fires at once.
 */
void stream_hold_timers(struct stream *s, bool hold);

/* How long an orderly close may wait for the peer to read (default
 * STREAM_LINGER_MS); afterwards the rest is dropped. */
void stream_set_linger(struct stream *s, uint64_t ms);

/*
 * stream_set_keep - empty buffers of up to `bytes` stay allocated for
 * the next use instead of being freed (default, and never less than,
 * 4 KiB, so that idle connections hold little). For a client that sends
 * large messages back to back: no allocation per message.
 */
void stream_set_keep(struct stream *s, size_t bytes);

/*
 * stream_set_nodelay - turn off Nagle's algorithm (TCP_NODELAY) on the
 * socket, so that a small send is not held back waiting for the ACK of
 * the one before (a request/reply protocol that writes whole batches).
 * Any time while open; after stream_connect() it applies to the socket
 * being connected. 0, or negative errno (not a TCP socket).
 */
int stream_set_nodelay(struct stream *s);

/*
 * stream_start_tls - put TLS under the stream (see DESIGN). t: borrowed
 * for the call. Once per stream; not after close. Implicit TLS: call
 * right after stream_open(), before queueing the greeting (which then
 * waits for the handshake). `tls_done` reports the handshake.
 */
void stream_start_tls(struct stream *s, const struct stream_tls *t);

/* TLS is on (started), and its handshake is done. */
bool stream_tls_on(const struct stream *s);
bool stream_tls_ready(const struct stream *s);

/* What the handshake negotiated; zeroes without TLS or before it. */
void stream_tls_info(const struct stream *s, struct tls_info *out);

/* Client: a resumable session (tls_conn_session_take()), or NULL; the
 * caller owns it. */
struct tls_session *stream_tls_session_take(struct stream *s);

/* TLS 1.3: update our keys and ask the peer to update its own (a
 * KeyUpdate; for long-lived connections and tests). 0, -EAGAIN before
 * the handshake, -EPIPE without TLS or when closing, -EOPNOTSUPP below
 * TLS 1.3, -EPROTO when broken (the stream then closes on its own). */
int stream_tls_key_update(struct stream *s) MTA_MUST_CHECK;

/*
 * stream_close - begin closing (see DESIGN); reason is reported by
 * `closed` unless the stream already had one (borrowed: static or live
 * until `closed`). A second call may turn an orderly close into an
 * abortive one, nothing else. `closed` never comes from inside this call.
 */
void stream_close(
    struct stream *s, const char *reason, enum stream_close_how how);

/* True from stream_close() (or the stream's own) until `closed`. */
bool stream_closing(const struct stream *s);

#endif
