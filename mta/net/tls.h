/* SPDX-License-Identifier: ISC */
/*
 * tls.h - TLS over memory buffers: OpenSSL 3 with no I/O of its own.
 *
 * DESIGN. The connection stream (net/stream.c) owns the socket and the
 * io_uring ops; this module only transforms bytes. Ciphertext read from the
 * socket goes in with tls_conn_feed(); plaintext comes out of
 * tls_conn_read() and goes in with tls_conn_write(); ciphertext to send is
 * taken with tls_conn_pending_out()/tls_conn_consume_out() (or moved into
 * the loop's own send buffer with tls_conn_out_to_buf()). Any call may
 * produce ciphertext to send, including reads (TLS 1.3 session tickets,
 * key updates, alerts), so a loop checks for pending output after every
 * call. Every buffer is bounded (TLS_IN_MAX, TLS_OUT_MAX).
 *
 * A loop drives a connection like this:
 *
 *	on socket data:  tls_conn_feed(c, p, n);
 *	                 if (!tls_conn_handshake_done(c)) {
 *	                         r = tls_conn_handshake(c);   (0, -EAGAIN, -EPROTO)
 *	                         if (r == -EPROTO) log tls_conn_error(c), close
 *	                 }
 *	                 if done: while ((r = tls_conn_read(c, in)) > 0) hand
 *	                         `in` to the protocol; r == 0: peer closed;
 *	                         -EAGAIN: wait for socket data; -ENOBUFS: `in`
 *	                         is full, stop reading the socket until the
 *	                         protocol consumed it, then call read again
 *	                         (plaintext may already be buffered here)
 *	to send plaintext: tls_conn_write() until all taken; -ENOBUFS: flush
 *	                 first and continue when the send completes
 *	always, last:    tls_conn_out_to_buf(c, sendbuf) and send it
 *
 * Note: a successful handshake may leave application data already fed
 * (pipelined after the client's Finished); call tls_conn_read() at once,
 * without waiting for the socket.
 *
 * Errors are negative errno: -EAGAIN (need more ciphertext from the peer),
 * -ENOBUFS (a bound is reached; drain and retry), -EPIPE (the connection
 * was closed), -EPROTO (fatal TLS error; tls_conn_error() says why; the
 * connection can only be freed, after sending any pending alert).
 *
 * Threads: a tls_ctx is built once at startup (or reload) and is read-only
 * afterwards, so every thread may create connections from it at once. A
 * tls_conn belongs to the thread that created it. The OpenSSL error queue
 * is per thread and is cleared before every SSL call.
 *
 * Only this module includes OpenSSL headers.
 */
#ifndef MTA_TLS_H
#define MTA_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/compat.h"
#include "config/config.h"

/* Bytes of ciphertext fed but not yet read, and bytes of ciphertext
 * waiting to go out (tls_conn_write() stops at this mark). */
#define TLS_IN_MAX  (256 * 1024)
#define TLS_OUT_MAX (256 * 1024)
#define TLS_ERR_MAX 256 /* tls_conn_error(), with NUL */

struct tls_ctx;
struct tls_conn;
struct tls_session;

/* Protocol versions, for tls_ctx_set_versions(). */
enum tls_version {
	TLS_VERSION_1_0 = 10,
	TLS_VERSION_1_1 = 11,
	TLS_VERSION_1_2 = 12,
	TLS_VERSION_1_3 = 13,
};

/* What a finished handshake negotiated: for logs and Received headers,
 * e.g. "(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256)". */
struct tls_info {
	char version[16]; /* "TLSv1.2", "TLSv1.3" */
	char cipher[64];  /* OpenSSL name, "ECDHE-RSA-AES128-GCM-SHA256" */
	int bits;         /* symmetric key bits */
	bool reused;      /* session resumed (ticket or cache) */
	bool verified;    /* client: peer chain and host name verified */
	bool dane;        /* client: authenticated by a TLSA record */
	/* server: the name the client asked for (SNI), or ""; peer-supplied:
	 * log_quote() it */
	char sni[CONFIG_HOST_MAX];
};

/*
 * tls_ctx_server_new - the server context for the receive listeners.
 * Loads cfg->certificate (PEM: the leaf certificate, then any chain
 * certificates) and cfg->private_key (PEM, unencrypted; empty: the key is
 * in the certificate file), and checks that they match. TLS 1.2 minimum,
 * forward-secret AEAD ciphers with server preference, no renegotiation,
 * no compression; session resumption by server-side cache and by tickets
 * (keys live in the context, shared by every thread).
 * cfg: borrowed, read during the call only.
 * Returns 0 and *out, or negative errno with one line in err, e.g.
 * "tls: /etc/mta/cert.pem: No such file or directory",
 * "tls: /etc/mta/key.pem: not a PEM private key",
 * "tls: private key does not match certificate".
 * Startup/reload thread; the result is read-only afterwards.
 */
int tls_ctx_server_new(const struct config_tls *cfg, struct tls_ctx **out,
    char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * tls_ctx_client_new - the client context for outbound delivery. TLS 1.2
 * minimum. ca_file: PEM file of trust anchors, or NULL for the system
 * store (used by the verify policy only). Returns 0 and *out, or negative
 * errno with one line in err ("tls: FILE: ..."). Startup thread.
 */
int tls_ctx_client_new(const char *ca_file, struct tls_ctx **out, char *err,
    size_t errlen) MTA_MUST_CHECK;

/*
 * tls_ctx_client_new_ca - the same, trusting what [delivery] ca_file and
 * ca_path name: a PEM bundle (loaded now) and a directory of hashed
 * certificates (c_rehash; read per handshake), either NULL or "". Both
 * unset: the system store. Either set: only those, as Postfix does
 * without tls_append_default_CA. Errors as above ("tls: PATH: reason"):
 * -errno when PATH cannot be read, -EINVAL when it holds no usable
 * certificate (a file) or is not a directory (a path).
 */
int tls_ctx_client_new_ca(const char *ca_file, const char *ca_path,
    struct tls_ctx **out, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * tls_ctx_set_versions - restrict the protocol range to [min, max]. Only
 * before the first connection is made from ctx. Allowing versions below
 * 1.2 also lowers the security level so they can be negotiated at all;
 * that exists for interoperability tests, never for the server.
 * Returns 0, or -EINVAL for an empty or unknown range.
 */
int tls_ctx_set_versions(struct tls_ctx *ctx, enum tls_version min,
    enum tls_version max) MTA_MUST_CHECK;

/* Free a context (takes NULL). Connections made from it stay valid: each
 * holds its own reference to the OpenSSL context, so a reload can drop
 * the old one at once. */
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * tls_conn_server_new - a server-side connection (STARTTLS or implicit
 * TLS). ctx: borrowed, a server context. Never fails (aborts on OOM).
 */
struct tls_conn *tls_conn_server_new(struct tls_ctx *ctx);

/*
 * tls_conn_client_new - a client-side connection to host (the MX name,
 * or an IP literal). host: borrowed, copied. Sets SNI unless host is an
 * IP literal. policy: CONFIG_TLS_MAY and _ENCRYPT do not authenticate
 * the peer (tls_info.verified reports whether it would have passed);
 * CONFIG_TLS_VERIFY makes the handshake fail unless the chain verifies
 * against the trust anchors and host matches the certificate
 * (SSL_set1_host, no partial wildcards). CONFIG_TLS_NONE is a bug.
 * resume: a session from tls_conn_session_take() of an earlier
 * connection to the same destination, or NULL; borrowed.
 * Never fails (aborts on OOM).
 */
struct tls_conn *tls_conn_client_new(struct tls_ctx *ctx, const char *host,
    enum config_tls_policy policy, const struct tls_session *resume);

/* One TLSA record for tls_conn_dane() (RFC 6698 2.1); data borrowed. */
struct tls_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

/*
 * tls_conn_dane - authenticate the peer of client connection c by DANE
 * (RFC 7672) with OpenSSL's DANE verifier, instead of the trust store:
 * DANE-EE(3) records match the leaf with no name check; DANE-TA(2)
 * records name a trust anchor, and the chain must then match host (the
 * MX name, also the TLSA base domain) or one of the n_extra names. Before
 * the handshake, after tls_conn_client_new(). recs: borrowed for the
 * call. Returns how many records OpenSSL took (> 0), or -EINVAL when it
 * took none: the caller must not connect (the policy said authenticate).
 */
int tls_conn_dane(struct tls_conn *c, const char *host,
    const char *const *extra, size_t n_extra, const struct tls_tlsa *recs,
    size_t n) MTA_MUST_CHECK;

/* Free a connection (takes NULL). Nothing is sent: call tls_conn_close()
 * first for a clean close_notify; without it OpenSSL treats the session
 * as broken and drops it from the server cache (tickets and sessions
 * already taken with tls_conn_session_take stay usable). */
void tls_conn_free(struct tls_conn *c);

/*
 * tls_conn_feed - append n bytes of ciphertext received from the socket;
 * p is borrowed and copied, the caller may reuse it at once.
 * Returns 0, or -ENOBUFS (nothing taken) when the fed-but-unread
 * ciphertext would exceed TLS_IN_MAX: read plaintext first. A loop that
 * feeds each recv and then reads until -EAGAIN stays far below it.
 */
int tls_conn_feed(struct tls_conn *c, const void *p, size_t n) MTA_MUST_CHECK;

/*
 * tls_conn_handshake - advance the handshake with the ciphertext fed so
 * far. Returns 0 when it is complete (also on later calls), -EAGAIN when
 * more input from the peer is needed (send pending output first), or
 * -EPROTO when it failed: tls_conn_error() has the reason and an alert
 * for the peer may be pending.
 */
int tls_conn_handshake(struct tls_conn *c) MTA_MUST_CHECK;

bool tls_conn_handshake_done(const struct tls_conn *c);

/*
 * tls_conn_read - decrypt as much as is available into dst, up to its
 * max. Returns the number of bytes appended (> 0), 0 when the peer sent
 * close_notify (and on every later call), -EAGAIN when no plaintext can
 * be produced until more ciphertext is fed, -ENOBUFS when dst is already
 * full, -EPROTO on a fatal error (plaintext decrypted before it is
 * returned first; the next call reports it). Completes the handshake
 * implicitly when it is not done yet. May leave ciphertext to send.
 */
ssize_t tls_conn_read(struct tls_conn *c, struct buf *dst) MTA_MUST_CHECK;

/*
 * tls_conn_write - encrypt up to n bytes of plaintext from p (borrowed).
 * Returns the number of bytes taken (> 0; may be fewer than n: call again
 * with the rest), -ENOBUFS when TLS_OUT_MAX bytes of ciphertext are
 * already waiting (send them, then retry), -EAGAIN when the peer must be
 * heard first (handshake not complete), -EPIPE after close, -EPROTO on a
 * fatal error. n == 0 returns 0.
 */
ssize_t tls_conn_write(
    struct tls_conn *c, const void *p, size_t n) MTA_MUST_CHECK;

/*
 * tls_conn_pending_out - the ciphertext waiting to be sent, as one
 * contiguous run; *len gets its length (0: nothing). The pointer is valid
 * until the next tls_conn_* call on c other than tls_conn_pending_out;
 * a loop that keeps a send in flight across other calls must copy the
 * bytes into its own send buffer (tls_conn_out_to_buf does both steps).
 */
const uint8_t *tls_conn_pending_out(struct tls_conn *c, size_t *len);

/* Drop n bytes (n <= *len of tls_conn_pending_out) after sending them. */
void tls_conn_consume_out(struct tls_conn *c, size_t n);

/* Move pending ciphertext into dst, as much as fits under its max.
 * Returns the number of bytes moved (0 when none or dst is full). */
size_t tls_conn_out_to_buf(struct tls_conn *c, struct buf *dst);

/*
 * tls_conn_close - queue a close_notify alert (send it with the pending
 * output, then close the socket). Returns 0, or -EPROTO when the
 * connection is already broken. Writes fail with -EPIPE afterwards.
 */
int tls_conn_close(struct tls_conn *c) MTA_MUST_CHECK;

/*
 * tls_conn_key_update - TLS 1.3: queue a KeyUpdate that also asks the
 * peer to update its keys (send the pending output). For long-lived
 * connections and tests. Returns 0, -EAGAIN before the handshake is
 * done, -EPIPE after close, -EOPNOTSUPP below TLS 1.3, -EPROTO when the
 * connection is broken.
 */
int tls_conn_key_update(struct tls_conn *c) MTA_MUST_CHECK;

/* The reason for the last -EPROTO, e.g. "handshake failed: unsupported
 * protocol" or "handshake failed: certificate verify failed: hostname
 * mismatch"; "" when none. Valid until the connection is freed. */
const char *tls_conn_error(const struct tls_conn *c);

/* Fill *out with what the handshake negotiated; zeroes before it is
 * done. */
void tls_conn_info(const struct tls_conn *c, struct tls_info *out);

/*
 * tls_conn_session_take - a resumable session of this (client)
 * connection for a later tls_conn_client_new(), or NULL when there is
 * none yet (TLS 1.3 tickets arrive after the handshake, with the first
 * reads). The caller owns it (tls_session_free). A session is read-only
 * and may be used from any thread.
 */
struct tls_session *tls_conn_session_take(struct tls_conn *c);
void tls_session_free(struct tls_session *s);

/* The OpenSSL version linked, for `mta version`. Static string. */
const char *tls_library_version(void);

#endif
