/* SPDX-License-Identifier: ISC */
/*
 * tls.c - OpenSSL 3 over a pair of memory BIOs.
 *
 * Each connection's SSL reads ciphertext from rbio (filled by
 * tls_conn_feed) and writes ciphertext to wbio (drained by the loop). Both
 * BIOs return "retry" when empty instead of EOF, so OpenSSL reports
 * WANT_READ and the loop decides what end-of-stream means. Nothing here
 * blocks or touches a file descriptor after the context is built.
 *
 * Bounds: rbio holds at most TLS_IN_MAX bytes (feed refuses more), and
 * tls_conn_write() encrypts only while wbio holds less than TLS_OUT_MAX,
 * so a peer that stops reading cannot make us buffer without limit. What
 * reads and handshakes write (alerts, tickets, key updates) is small and
 * proportional to the input, which is itself bounded.
 *
 * Threads: SSL_CTX is configured here once and only read afterwards; the
 * session cache inside it is shared by all receive threads under
 * OpenSSL's own lock. An SSL object is used by one thread only, and the
 * error queue (per thread) is cleared before every SSL call so a stale
 * error from another connection can never be reported for this one.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/file.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"

#define TLS_FILE_MAX (1024 * 1024) /* bytes: a PEM file larger is refused */

/*
 * Mozilla "intermediate" for TLS 1.2: forward secrecy and AEAD only.
 * TLS 1.3 suites are OpenSSL's defaults (all AEAD).
 */
#define TLS_CIPHERS_12                                               \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"       \
	"DHE-RSA-CHACHA20-POLY1305"

#define TLS_SESSION_CACHE   20480 /* server cache entries */
#define TLS_SESSION_TIMEOUT 3600  /* seconds a session may be resumed */

struct tls_ctx {
	SSL_CTX *ssl;
	bool server;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio; /* owned by ssl: ciphertext from the peer */
	BIO *wbio; /* owned by ssl: ciphertext to the peer */
	bool server;
	bool hs_done;     /* sticky: post-handshake messages do not reset it */
	bool peer_closed; /* close_notify received */
	bool shut;        /* we sent close_notify */
	bool failed;      /* fatal error; err says why */
	char err[TLS_ERR_MAX];
};

struct tls_session {
	SSL_SESSION *sess;
};

/* OpenSSL would prompt on the terminal for an encrypted key; refuse. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* The most specific text OpenSSL left for the first queued error. */
static const char *
tls_err_reason(char *tmp, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r;

	if (e == 0)
		return "unknown error";
	if ((r = ERR_reason_error_string(e)) != NULL)
		return r;
	ERR_error_string_n(e, tmp, len);
	return tmp;
}

/*
 * Read a whole file (bounded) so that a missing or unreadable file gets
 * the errno text, not an OpenSSL error stack.
 */
static int
tls_file_read(
    const char *path, char **data, size_t *len, char *err, size_t errlen)
{
	int rc = file_read(path, TLS_FILE_MAX, data, len, NULL);

	if (rc < 0)
		str_fmt(err, errlen, "tls: %s: %s", path, file_strerror(rc));
	return rc;
}

/* Leaf certificate, then chain certificates, from one PEM file. */
static int
tls_load_cert(
    SSL_CTX *ctx, const char *path, X509 **leafp, char *err, size_t errlen)
{
	char *data, tmp[128];
	X509 *leaf, *x;
	size_t len;
	BIO *bio;
	int rc;

	if ((rc = tls_file_read(path, &data, &len, err, errlen)) < 0)
		return rc;
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL)
		fatalx("tls: out of memory");
	ERR_clear_error();
	leaf = PEM_read_bio_X509_AUX(bio, NULL, tls_no_passphrase, NULL);
	if (leaf == NULL) {
		str_fmt(err, errlen, "tls: %s: not a PEM certificate", path);
		rc = -EINVAL;
		goto out;
	}
	if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
		str_fmt(err, errlen, "tls: %s: %s", path,
		    tls_err_reason(tmp, sizeof(tmp)));
		X509_free(leaf);
		rc = -EINVAL;
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)) !=
	       NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			str_fmt(err, errlen, "tls: %s: chain: %s", path,
			    tls_err_reason(tmp, sizeof(tmp)));
			X509_free(leaf);
			rc = -EINVAL;
			goto out;
		}
	}
	/* The loop ends at the first non-certificate: expected at EOF, or
	 * at a private key kept in the same file. Anything else is a
	 * damaged certificate. */
	if (ERR_peek_last_error() != 0 &&
	    ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		str_fmt(err, errlen, "tls: %s: bad chain certificate: %s", path,
		    tls_err_reason(tmp, sizeof(tmp)));
		X509_free(leaf);
		rc = -EINVAL;
		goto out;
	}
	ERR_clear_error();
	*leafp = leaf;
	rc = 0;
out:
	BIO_free(bio);
	free(data);
	return rc;
}

static int
tls_load_key(
    SSL_CTX *ctx, const char *path, X509 *leaf, char *err, size_t errlen)
{
	char *data, tmp[128];
	EVP_PKEY *pkey;
	size_t len;
	BIO *bio;
	int rc;

	if ((rc = tls_file_read(path, &data, &len, err, errlen)) < 0)
		return rc;
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL)
		fatalx("tls: out of memory");
	ERR_clear_error();
	pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
	BIO_free(bio);
	/* OpenSSL's decoder errors do not tell "no key here" from "a key
	 * we cannot read": look at the PEM labels ourselves. */
	if (pkey == NULL) {
		if (strstr(data, "PRIVATE KEY-----") == NULL)
			str_fmt(err, errlen, "tls: %s: not a PEM private key",
			    path);
		else if (strstr(data, "ENCRYPTED") != NULL)
			str_fmt(err, errlen,
			    "tls: %s: encrypted private keys "
			    "are not supported",
			    path);
		else
			str_fmt(err, errlen, "tls: %s: bad private key: %s",
			    path, tls_err_reason(tmp, sizeof(tmp)));
		ERR_clear_error();
	}
	explicit_bzero(data, len);
	free(data);
	if (pkey == NULL)
		return -EINVAL;
	/* Check before SSL_CTX_use_PrivateKey: on a mismatch it quietly
	 * drops the certificate instead of failing. */
	if (X509_check_private_key(leaf, pkey) != 1) {
		str_fmt(
		    err, errlen, "tls: private key does not match certificate");
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		str_fmt(err, errlen, "tls: %s: %s", path,
		    tls_err_reason(tmp, sizeof(tmp)));
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		return -EINVAL;
	}
	EVP_PKEY_free(pkey);
	return 0;
}

/* Settings both sides share. */
static SSL_CTX *
tls_ctx_base(const SSL_METHOD *method)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(method)) == NULL)
		fatalx("tls: SSL_CTX_new failed");
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1)
		fatalx("tls: cannot set protocol defaults");
	SSL_CTX_set_options(
	    ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* RELEASE_BUFFERS: an idle session keeps no 34 KiB record
	 * buffers; we may hold thousands. MOVING_WRITE_BUFFER: a retried
	 * write may come from another address. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_ENABLE_PARTIAL_WRITE);
	return ctx;
}

int
tls_ctx_server_new(const struct config_tls *cfg, struct tls_ctx **out,
    char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "mta-smtp";
	const char *keypath;
	X509 *leaf = NULL;
	SSL_CTX *ctx;
	int rc;

	if (cfg->certificate[0] == '\0') {
		str_fmt(err, errlen, "tls: no certificate configured");
		return -EINVAL;
	}
	/* An empty private_key means the key is in the certificate file. */
	keypath = cfg->private_key[0] ? cfg->private_key : cfg->certificate;
	ctx = tls_ctx_base(TLS_server_method());
	rc = tls_load_cert(ctx, cfg->certificate, &leaf, err, errlen);
	if (rc == 0)
		rc = tls_load_key(ctx, keypath, leaf, err, errlen);
	X509_free(leaf);
	if (rc < 0) {
		SSL_CTX_free(ctx);
		return rc;
	}
	SSL_CTX_set_options(
	    ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE);
	SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT);
	rc = SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (rc != 1)
		fatalx("tls: cannot set session id context");
	/* One ticket per handshake is enough for SMTP clients. */
	SSL_CTX_set_num_tickets(ctx, 1);
	ERR_clear_error();

	*out = xcalloc(1, sizeof(**out));
	(*out)->ssl = ctx;
	(*out)->server = true;
	return 0;
}

/* Trust what the administrator named: a bundle, a hashed directory. */
static int
tls_ctx_load_ca(
    SSL_CTX *ctx, const char *file, const char *dir, char *err, size_t errlen)
{
	const char *what = file ? file : dir;
	char tmp[128];
	struct stat st;
	int e;

	if (access(what, R_OK) < 0 || stat(what, &st) < 0) {
		e = errno;
		str_fmt(err, errlen, "tls: %s: %s", what, strerror(e));
		return -e;
	}
	if (dir != NULL && !S_ISDIR(st.st_mode)) {
		str_fmt(err, errlen, "tls: %s: not a directory", dir);
		return -EINVAL;
	}
	if (file != NULL && S_ISDIR(st.st_mode)) {
		str_fmt(
		    err, errlen, "tls: %s: is a directory (use ca_path)", file);
		return -EINVAL;
	}
	if (SSL_CTX_load_verify_locations(ctx, file, dir) != 1) {
		str_fmt(err, errlen, "tls: %s: %s", what,
		    tls_err_reason(tmp, sizeof(tmp)));
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

int
tls_ctx_client_new_ca(const char *ca_file, const char *ca_path,
    struct tls_ctx **out, char *err, size_t errlen)
{
	char tmp[128];
	SSL_CTX *ctx;
	int rc = 0;

	if (ca_file != NULL && ca_file[0] == '\0')
		ca_file = NULL;
	if (ca_path != NULL && ca_path[0] == '\0')
		ca_path = NULL;
	ctx = tls_ctx_base(TLS_client_method());
	ERR_clear_error();
	if (ca_file != NULL)
		rc = tls_ctx_load_ca(ctx, ca_file, NULL, err, errlen);
	if (rc == 0 && ca_path != NULL)
		rc = tls_ctx_load_ca(ctx, NULL, ca_path, err, errlen);
	if (rc < 0) {
		SSL_CTX_free(ctx);
		return rc;
	}
	if (ca_file == NULL && ca_path == NULL &&
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		/* XXX a host without a CA store can still deliver with
		 * may/encrypt; verify will then fail per connection. */
		log_warnx("tls: no system CA store: %s",
		    tls_err_reason(tmp, sizeof(tmp)));
	}
	/* DANE per connection (tls_conn_dane) needs it on the context */
	if (SSL_CTX_dane_enable(ctx) <= 0)
		log_warnx("tls: DANE unavailable: %s",
		    tls_err_reason(tmp, sizeof(tmp)));
	ERR_clear_error();
	*out = xcalloc(1, sizeof(**out));
	(*out)->ssl = ctx;
	(*out)->server = false;
	return 0;
}

int
tls_ctx_client_new(
    const char *ca_file, struct tls_ctx **out, char *err, size_t errlen)
{
	return tls_ctx_client_new_ca(ca_file, NULL, out, err, errlen);
}

static int
tls_version_code(enum tls_version v)
{
	switch (v) {
	case TLS_VERSION_1_0:
		return TLS1_VERSION;
	case TLS_VERSION_1_1:
		return TLS1_1_VERSION;
	case TLS_VERSION_1_2:
		return TLS1_2_VERSION;
	case TLS_VERSION_1_3:
		return TLS1_3_VERSION;
	}
	return -1;
}

int
tls_ctx_set_versions(
    struct tls_ctx *ctx, enum tls_version min, enum tls_version max)
{
	int lo = tls_version_code(min), hi = tls_version_code(max);

	if (lo < 0 || hi < 0 || lo > hi)
		return -EINVAL;
	ERR_clear_error();
	if (SSL_CTX_set_min_proto_version(ctx->ssl, lo) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx->ssl, hi) != 1) {
		ERR_clear_error();
		return -EINVAL;
	}
	/* TLS < 1.2 signs with SHA-1/MD5, which security level 1 and up
	 * forbid: the version could never be negotiated otherwise. */
	if (lo < TLS1_2_VERSION) {
		SSL_CTX_set_security_level(ctx->ssl, 0);
		if (SSL_CTX_set_cipher_list(ctx->ssl, "DEFAULT:@SECLEVEL=0") !=
		    1) {
			ERR_clear_error();
			return -EINVAL;
		}
	}
	return 0;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl);
	free(ctx);
}

static struct tls_conn *
tls_conn_new(struct tls_ctx *ctx)
{
	struct tls_conn *c = xcalloc(1, sizeof(*c));

	ERR_clear_error();
	c->ssl = SSL_new(ctx->ssl);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL)
		fatalx("tls: out of memory");
	/* Empty means "no data yet", not EOF: WANT_READ, never an error. */
	BIO_set_mem_eof_return(c->rbio, -1);
	BIO_set_mem_eof_return(c->wbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	c->server = ctx->server;
	return c;
}

struct tls_conn *
tls_conn_server_new(struct tls_ctx *ctx)
{
	struct tls_conn *c;

	MTA_ASSERT(ctx->server);
	c = tls_conn_new(ctx);
	SSL_set_accept_state(c->ssl);
	return c;
}

static bool
tls_ip_literal(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

struct tls_conn *
tls_conn_client_new(struct tls_ctx *ctx, const char *host,
    enum config_tls_policy policy, const struct tls_session *resume)
{
	X509_VERIFY_PARAM *param;
	struct tls_conn *c;
	bool ip;

	MTA_ASSERT(!ctx->server);
	MTA_ASSERT(policy != CONFIG_TLS_NONE);
	c = tls_conn_new(ctx);
	SSL_set_connect_state(c->ssl);
	ip = tls_ip_literal(host);
	/* RFC 6066: SNI carries host names only. */
	if (!ip && SSL_set_tlsext_host_name(c->ssl, host) != 1)
		log_warnx("event=tls-sni-unset host_bytes=%zu", strlen(host));
	/* The name is checked under every policy so that tls_info can
	 * report it; only verify makes a mismatch fatal. */
	param = SSL_get0_param(c->ssl);
	X509_VERIFY_PARAM_set_hostflags(
	    param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1
	       : SSL_set1_host(c->ssl, host) != 1)
		log_warnx("event=tls-verify-name-unset");
	SSL_set_verify(c->ssl,
	    policy == CONFIG_TLS_VERIFY ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	if (resume != NULL && SSL_set_session(c->ssl, resume->sess) != 1)
		log_warnx("event=tls-resume-failed");
	ERR_clear_error();
	return c;
}

int
tls_conn_dane(struct tls_conn *c, const char *host, const char *const *extra,
    size_t n_extra, const struct tls_tlsa *recs, size_t n)
{
	int taken = 0;

	MTA_ASSERT(!c->server && !c->hs_done);
	ERR_clear_error();
	/* host: the reference identifier of DANE-TA chains (and SNI) */
	if (SSL_dane_enable(c->ssl, host) <= 0) {
		ERR_clear_error();
		return -EINVAL;
	}
	for (size_t i = 0; i < n_extra; i++)
		(void)SSL_add1_host(c->ssl, extra[i]);
	/* RFC 7672 3.1.1: DANE-EE(3) authenticates the key, not a name */
	SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (size_t i = 0; i < n; i++) {
		const struct tls_tlsa *r = &recs[i];

		/* OpenSSL rejects what it cannot use (0), or what is
		 * malformed (< 0): either is just not taken */
		if (SSL_dane_tlsa_add(c->ssl, r->usage, r->selector, r->mtype,
		        r->data, r->len) > 0)
			taken++;
	}
	ERR_clear_error();
	if (taken == 0)
		return -EINVAL;
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	return taken;
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl); /* frees both BIOs */
	free(c);
}

/* Record why the connection failed, from the error queue and, for a
 * client, the certificate verification result. */
static void
tls_conn_fail(struct tls_conn *c, const char *what, int sslerr)
{
	char tmp[128];
	unsigned long e = ERR_peek_error();
	long vr;

	c->failed = true;
	if (e == 0) {
		str_fmt(c->err, sizeof(c->err), "%s: %s", what,
		    sslerr == SSL_ERROR_SYSCALL ? "unexpected end of stream"
		                                : "internal error");
	} else if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	           (vr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		str_fmt(c->err, sizeof(c->err), "%s: %s: %s", what,
		    tls_err_reason(tmp, sizeof(tmp)),
		    X509_verify_cert_error_string(vr));
	} else {
		str_fmt(c->err, sizeof(c->err), "%s: %s", what,
		    tls_err_reason(tmp, sizeof(tmp)));
	}
	ERR_clear_error();
}

/* Map the result of an SSL call that did not succeed. */
static int
tls_conn_status(struct tls_conn *c, int r, const char *what)
{
	int e = SSL_get_error(c->ssl, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		/* Memory BIOs always take writes; only our own cap could
		 * stop one. */
		return -ENOBUFS;
	case SSL_ERROR_ZERO_RETURN:
		c->peer_closed = true;
		return -EPIPE;
	default:
		tls_conn_fail(c, what, e);
		return -EPROTO;
	}
}

int
tls_conn_feed(struct tls_conn *c, const void *p, size_t n)
{
	size_t held = BIO_ctrl_pending(c->rbio);

	if (n == 0)
		return 0;
	if (n > TLS_IN_MAX || held > TLS_IN_MAX - n)
		return -ENOBUFS;
	if (BIO_write(c->rbio, p, (int)n) != (int)n)
		fatalx("tls: out of memory");
	return 0;
}

int
tls_conn_handshake(struct tls_conn *c)
{
	int r;

	if (c->failed)
		return -EPROTO;
	if (c->hs_done)
		return 0;
	ERR_clear_error();
	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		c->hs_done = true;
		return 0;
	}
	r = tls_conn_status(c, r, "handshake failed");
	if (r == -EPIPE) {
		str_fmt(
		    c->err, sizeof(c->err), "handshake failed: closed by peer");
		c->failed = true;
		return -EPROTO;
	}
	return r == -ENOBUFS ? -EAGAIN : r;
}

bool
tls_conn_handshake_done(const struct tls_conn *c)
{
	return c->hs_done;
}

ssize_t
tls_conn_read(struct tls_conn *c, struct buf *dst)
{
	size_t total = 0, room, got;
	uint8_t *p;
	int r;

	if (c->failed)
		return -EPROTO;
	if (c->peer_closed)
		return 0;
	for (;;) {
		room = dst->max - buf_avail(dst);
		if (room == 0)
			return total ? (ssize_t)total : -ENOBUFS;
		if (room > 16384)
			room = 16384;
		if ((p = buf_reserve(dst, room)) == NULL)
			return total ? (ssize_t)total : -ENOBUFS;
		ERR_clear_error();
		if (SSL_read_ex(c->ssl, p, room, &got) == 1) {
			buf_commit(dst, got);
			total += got;
			c->hs_done = true;
			continue;
		}
		r = tls_conn_status(
		    c, 0, c->hs_done ? "read failed" : "handshake failed");
		if (SSL_is_init_finished(c->ssl))
			c->hs_done = true;
		/* Plaintext already appended is delivered; a failure is
		 * sticky and is reported by the next call. */
		if (total > 0)
			return (ssize_t)total;
		if (r == -EPIPE)
			return 0;
		return r == -ENOBUFS ? -EAGAIN : r;
	}
}

ssize_t
tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
	size_t held, k, done;
	int r;

	if (c->failed)
		return -EPROTO;
	if (c->shut)
		return -EPIPE;
	if (n == 0)
		return 0;
	if (!c->hs_done)
		return -EAGAIN;
	held = BIO_ctrl_pending(c->wbio);
	if (held >= TLS_OUT_MAX)
		return -ENOBUFS;
	k = n < TLS_OUT_MAX - held ? n : TLS_OUT_MAX - held;
	ERR_clear_error();
	if (SSL_write_ex(c->ssl, p, k, &done) == 1)
		return (ssize_t)done;
	r = tls_conn_status(c, 0, "write failed");
	return r;
}

const uint8_t *
tls_conn_pending_out(struct tls_conn *c, size_t *len)
{
	char *p = NULL;
	long n = BIO_get_mem_data(c->wbio, &p);

	*len = n > 0 ? (size_t)n : 0;
	return (const uint8_t *)p;
}

void
tls_conn_consume_out(struct tls_conn *c, size_t n)
{
	uint8_t scratch[4096];
	int k;

	/* A memory BIO has no "skip": read into scratch. */
	while (n > 0) {
		k = BIO_read(c->wbio, scratch,
		    (int)(n < sizeof(scratch) ? n : sizeof(scratch)));
		MTA_ASSERT(k > 0);
		n -= (size_t)k;
	}
}

size_t
tls_conn_out_to_buf(struct tls_conn *c, struct buf *dst)
{
	size_t held = BIO_ctrl_pending(c->wbio);
	size_t room = dst->max - buf_avail(dst);
	uint8_t *p;
	int k;

	if (held < room)
		room = held;
	if (room == 0 || (p = buf_reserve(dst, room)) == NULL)
		return 0;
	k = BIO_read(c->wbio, p, (int)room);
	MTA_ASSERT(k == (int)room);
	buf_commit(dst, room);
	return room;
}

int
tls_conn_close(struct tls_conn *c)
{
	int r;

	if (c->failed)
		return -EPROTO;
	if (c->shut)
		return 0;
	c->shut = true;
	if (!c->hs_done)
		return 0; /* nothing to close politely */
	ERR_clear_error();
	r = SSL_shutdown(c->ssl);
	if (r >= 0)
		return 0;
	r = tls_conn_status(c, r, "close failed");
	return r == -EPROTO ? -EPROTO : 0;
}

int
tls_conn_key_update(struct tls_conn *c)
{
	int r;

	if (c->failed)
		return -EPROTO;
	if (!c->hs_done)
		return -EAGAIN;
	if (c->shut)
		return -EPIPE;
	if (SSL_version(c->ssl) != TLS1_3_VERSION)
		return -EOPNOTSUPP;
	ERR_clear_error();
	if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
		tls_conn_fail(c, "key update", SSL_ERROR_SSL);
		return -EPROTO;
	}
	/* writes the KeyUpdate record now rather than with the next data */
	if ((r = SSL_do_handshake(c->ssl)) == 1)
		return 0;
	r = tls_conn_status(c, r, "key update");
	return r == -EAGAIN || r == -ENOBUFS ? 0 : r;
}

const char *
tls_conn_error(const struct tls_conn *c)
{
	return c->err;
}

void
tls_conn_info(const struct tls_conn *c, struct tls_info *out)
{
	const SSL_CIPHER *cipher;
	const char *sni;

	memset(out, 0, sizeof(*out));
	if (!c->hs_done)
		return;
	str_copy(out->version, sizeof(out->version), SSL_get_version(c->ssl));
	if ((cipher = SSL_get_current_cipher(c->ssl)) != NULL) {
		str_copy(out->cipher, sizeof(out->cipher),
		    SSL_CIPHER_get_name(cipher));
		out->bits = SSL_CIPHER_get_bits(cipher, NULL);
	}
	out->reused = SSL_session_reused(c->ssl) == 1;
	if (!c->server) {
		out->verified = SSL_get0_peer_certificate(c->ssl) != NULL &&
		                SSL_get_verify_result(c->ssl) == X509_V_OK;
		out->dane = out->verified &&
		            SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0;
	} else if ((sni = SSL_get_servername(
	                c->ssl, TLSEXT_NAMETYPE_host_name)) != NULL)
		str_copy(out->sni, sizeof(out->sni), sni);
}

struct tls_session *
tls_conn_session_take(struct tls_conn *c)
{
	struct tls_session *s;
	SSL_SESSION *sess;

	if (c->server || !c->hs_done)
		return NULL;
	/* A copy: freeing an SSL that was not shut down cleanly marks its
	 * own session object not resumable, and the loop may well free
	 * the connection before it is done with the session. */
	if ((sess = SSL_get0_session(c->ssl)) == NULL ||
	    SSL_SESSION_is_resumable(sess) != 1 ||
	    (sess = SSL_SESSION_dup(sess)) == NULL)
		return NULL;
	s = xmalloc(sizeof(*s));
	s->sess = sess;
	return s;
}

void
tls_session_free(struct tls_session *s)
{
	if (s == NULL)
		return;
	SSL_SESSION_free(s->sess);
	free(s);
}

const char *
tls_library_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}
