/* SPDX-License-Identifier: ISC */
/*
 * tls_mem_test.c - a server and a client tls_conn talking through memory:
 * the test moves ciphertext between them as a loop would move it between
 * sockets, in chunks as small as one byte. The certificate is a throwaway
 * made with `openssl req` in a temp dir at start.
 */
#include "net/tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/str.h"
#include "../harness.h"

static char dir[64];
static char cert[128], key[128], key2[128], notpem[128];
static struct tls_ctx *sctx, *cctx;

static void
fixture_cleanup(void)
{
	char cmd[128];

	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
	if (dir[0] && str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", dir) &&
	    system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* Make the files and contexts once; false when that failed. */
static bool
fixture(void)
{
	static int state; /* 0 not yet, 1 ok, -1 failed */
	struct config_tls cfg;
	char cmd[1024], err[256];
	FILE *fp;

	if (state)
		return state > 0;
	state = -1;
	str_copy(dir, sizeof(dir), "/tmp/tls_mem_test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return false;
	atexit(fixture_cleanup);
	str_fmt(cert, sizeof(cert), "%s/cert.pem", dir);
	str_fmt(key, sizeof(key), "%s/key.pem", dir);
	str_fmt(key2, sizeof(key2), "%s/key2.pem", dir);
	str_fmt(notpem, sizeof(notpem), "%s/notpem.txt", dir);
	/* EC keys: fast to make, and ECDSA suites are in our list. */
	str_fmt(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost "
	    "-days 1 -keyout %s -out %s 2>/dev/null && "
	    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
	    "-out %s 2>/dev/null",
	    key, cert, key2);
	if (system(cmd) != 0)
		return false;
	if ((fp = fopen(notpem, "w")) == NULL)
		return false;
	fputs("this is not a certificate\n", fp);
	fclose(fp);
	memset(&cfg, 0, sizeof(cfg));
	str_copy(cfg.certificate, sizeof(cfg.certificate), cert);
	str_copy(cfg.private_key, sizeof(cfg.private_key), key);
	if (tls_ctx_server_new(&cfg, &sctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "server ctx: %s\n", err);
		return false;
	}
	/* Trust the throwaway certificate as if it were a CA. */
	if (tls_ctx_client_new(cert, &cctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "client ctx: %s\n", err);
		return false;
	}
	state = 1;
	return true;
}

/* Move up to chunk bytes of pending ciphertext from one side to the
 * other; alternate the two ways of taking output. Returns bytes moved,
 * or -1 when the receiver refused them. */
static long
shuttle(struct tls_conn *from, struct tls_conn *to, size_t chunk, bool viabuf)
{
	const uint8_t *p;
	struct buf b;
	size_t n;
	long r;

	if (viabuf) {
		buf_init(&b, chunk);
		n = tls_conn_out_to_buf(from, &b);
		r = n && tls_conn_feed(to, buf_peek(&b), n) < 0 ? -1 : (long)n;
		buf_fini(&b);
		return r;
	}
	p = tls_conn_pending_out(from, &n);
	if (n > chunk)
		n = chunk;
	if (n == 0)
		return 0;
	if (tls_conn_feed(to, p, n) < 0)
		return -1;
	tls_conn_consume_out(from, n);
	return (long)n;
}

/* Drive both handshakes to the end. Returns 0, or the first failure
 * (-EPROTO) with *who = 's' or 'c'. */
static int
handshake(struct tls_conn *s, struct tls_conn *c, size_t chunk, char *who)
{
	int rs = -EAGAIN, rc = -EAGAIN;
	long moved;

	for (long i = 0; i < 2000000; i++) {
		if (rc != 0 && (rc = tls_conn_handshake(c)) == -EPROTO) {
			*who = 'c';
			/* Let the server see the alert, as it would. */
			while (shuttle(c, s, chunk, false) > 0)
				if (tls_conn_handshake(s) == 0)
					break;
			return rc;
		}
		if (rs != 0 && (rs = tls_conn_handshake(s)) == -EPROTO) {
			*who = 's';
			while (shuttle(s, c, chunk, true) > 0)
				if (tls_conn_handshake(c) == 0)
					break;
			return rs;
		}
		if (rs == 0 && rc == 0)
			return 0;
		moved = shuttle(c, s, chunk, false);
		moved += shuttle(s, c, chunk, true);
		if (moved == 0)
			return -EDEADLK;
	}
	return -ETIMEDOUT;
}

static void
pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 31 + seed) ^ (i >> 11));
}

/*
 * Send n bytes from `from` to `to` with every bound in play: writes stop
 * at TLS_OUT_MAX, ciphertext moves chunk bytes at a time, the reader's
 * plaintext buffer holds 8 KiB. Output of the reader (tickets, key
 * updates) flows back too. Returns true when every byte arrived intact.
 */
static bool
transfer(struct tls_conn *from, struct tls_conn *to, size_t n, size_t chunk)
{
	uint8_t *src = malloc(n), *dst = malloc(n);
	size_t sent = 0, got = 0;
	struct buf in;
	ssize_t r;
	bool ok = false;

	pattern(src, n, (unsigned)n);
	buf_init(&in, 8192);
	for (long i = 0; i < 100000000 && got < n; i++) {
		if (sent < n) {
			r = tls_conn_write(from, src + sent, n - sent);
			if (r > 0)
				sent += (size_t)r;
			else if (r != -ENOBUFS)
				goto out;
		}
		if (shuttle(from, to, chunk, i & 1) < 0)
			goto out;
		for (;;) {
			r = tls_conn_read(to, &in);
			if (r == -EAGAIN)
				break;
			if (r <= 0 && r != -ENOBUFS)
				goto out;
			if (got + buf_avail(&in) > n)
				goto out;
			memcpy(dst + got, buf_peek(&in), buf_avail(&in));
			got += buf_avail(&in);
			buf_consume(&in, buf_avail(&in));
		}
		if (shuttle(to, from, 1 << 20, false) < 0)
			goto out;
		/* The writer may have post-handshake input now. */
		if (tls_conn_read(from, &in) > 0)
			goto out; /* nobody sent it application data */
	}
	ok = got == n && memcmp(src, dst, n) == 0;
out:
	buf_fini(&in);
	free(src);
	free(dst);
	return ok;
}

struct pair {
	struct tls_conn *s, *c;
};

static bool
pair_open(
    struct pair *p, const char *host, enum config_tls_policy pol, size_t chunk)
{
	char who = 0;

	p->s = tls_conn_server_new(sctx);
	p->c = tls_conn_client_new(cctx, host, pol, NULL);
	if (handshake(p->s, p->c, chunk, &who) != 0) {
		fprintf(stderr, "handshake (%c): s=%s c=%s\n", who,
		    tls_conn_error(p->s), tls_conn_error(p->c));
		return false;
	}
	return true;
}

static void
pair_close(struct pair *p)
{
	tls_conn_free(p->s);
	tls_conn_free(p->c);
}

static void
test_handshake(void)
{
	struct tls_info si, ci;
	struct pair p;
	bool ok;

	CHECK(fixture());
	ok = pair_open(&p, "localhost", CONFIG_TLS_MAY, 1 << 20);
	if (ok) {
		tls_conn_info(p.s, &si);
		tls_conn_info(p.c, &ci);
	}
	pair_close(&p);
	CHECK(ok);
	CHECK(strcmp(si.version, "TLSv1.3") == 0);
	CHECK(strcmp(ci.version, "TLSv1.3") == 0);
	CHECK(si.cipher[0] != '\0' && strcmp(si.cipher, ci.cipher) == 0);
	CHECK(si.bits >= 128);
	CHECK(!si.reused && !ci.reused);
	CHECK(ci.verified); /* trusted CA and matching name */
	CHECK(strcmp(si.sni, "localhost") == 0);
}

static void
test_data_both_ways(void)
{
	struct pair p;
	bool ok = true;

	CHECK(fixture());
	STEP(ok, pair_open(&p, "localhost", CONFIG_TLS_ENCRYPT, 1 << 20));
	STEP(ok, transfer(p.c, p.s, 17, 1 << 20));
	STEP(ok, transfer(p.s, p.c, 33, 1 << 20));
	STEP(ok, transfer(p.c, p.s, 1 << 20, 64 * 1024));
	STEP(ok, transfer(p.s, p.c, 1 << 20, 5000));
	pair_close(&p);
}

static void
test_byte_by_byte(void)
{
	struct pair p;
	bool ok = true;

	CHECK(fixture());
	STEP(ok, pair_open(&p, "localhost", CONFIG_TLS_VERIFY, 1));
	STEP(ok, transfer(p.c, p.s, 4096, 1));
	STEP(ok, transfer(p.s, p.c, 4096, 1));
	pair_close(&p);
}

static void
test_tls12(void)
{
	char err[256], who = 0;
	struct tls_ctx *old;
	struct tls_info ci;
	struct pair p;
	int r;

	CHECK(fixture());
	CHECK(tls_ctx_client_new(cert, &old, err, sizeof(err)) == 0);
	CHECK(tls_ctx_set_versions(old, TLS_VERSION_1_2, TLS_VERSION_1_2) == 0);
	p.s = tls_conn_server_new(sctx);
	p.c = tls_conn_client_new(old, "localhost", CONFIG_TLS_VERIFY, NULL);
	r = handshake(p.s, p.c, 1 << 20, &who);
	tls_conn_info(p.c, &ci);
	r = r == 0 && transfer(p.c, p.s, 100000, 3000) ? 0 : -1;
	pair_close(&p);
	tls_ctx_free(old);
	CHECK(r == 0);
	CHECK(strcmp(ci.version, "TLSv1.2") == 0);
	/* Server preference picks an ECDHE-ECDSA AEAD suite. */
	CHECK(strstr(ci.cipher, "ECDHE-ECDSA-") == ci.cipher);
}

static void
test_tls11_refused(void)
{
	char err[256], who = 0;
	struct tls_ctx *old;
	struct pair p;
	int r;
	bool sfail, cfail;

	CHECK(fixture());
	CHECK(tls_ctx_client_new(cert, &old, err, sizeof(err)) == 0);
	CHECK(tls_ctx_set_versions(old, TLS_VERSION_1_1, TLS_VERSION_1_1) == 0);
	CHECK(tls_ctx_set_versions(old, TLS_VERSION_1_3, TLS_VERSION_1_1) ==
	      -EINVAL);
	p.s = tls_conn_server_new(sctx);
	p.c = tls_conn_client_new(old, "localhost", CONFIG_TLS_MAY, NULL);
	r = handshake(p.s, p.c, 1 << 20, &who);
	sfail = strstr(tls_conn_error(p.s), "unsupported protocol") != NULL;
	cfail = tls_conn_handshake(p.c) == -EPROTO &&
	        strstr(tls_conn_error(p.c), "protocol version") != NULL;
	if (!sfail || !cfail)
		fprintf(stderr, "s=%s c=%s\n", tls_conn_error(p.s),
		    tls_conn_error(p.c));
	pair_close(&p);
	tls_ctx_free(old);
	CHECK(r == -EPROTO && who == 's');
	CHECK(sfail);
	CHECK(cfail);
}

/* Connect, move some data (TLS 1.3 tickets arrive with it), take the
 * session; then connect again offering it. */
static void
resume_with(struct tls_ctx *ctx, bool *reused_s, bool *reused_c, bool *had)
{
	struct tls_session *sess = NULL;
	struct tls_info si, ci;
	char who;
	struct pair p;

	*reused_s = *reused_c = *had = false;
	p.s = tls_conn_server_new(sctx);
	p.c = tls_conn_client_new(ctx, "localhost", CONFIG_TLS_VERIFY, NULL);
	if (handshake(p.s, p.c, 1 << 20, &who) == 0 &&
	    transfer(p.s, p.c, 100, 1 << 20))
		sess = tls_conn_session_take(p.c);
	pair_close(&p);
	if (sess == NULL)
		return;
	*had = true;
	p.s = tls_conn_server_new(sctx);
	p.c = tls_conn_client_new(ctx, "localhost", CONFIG_TLS_VERIFY, sess);
	tls_session_free(sess); /* the conn holds its own reference */
	if (handshake(p.s, p.c, 1 << 20, &who) == 0 &&
	    transfer(p.c, p.s, 100, 1 << 20)) {
		tls_conn_info(p.s, &si);
		tls_conn_info(p.c, &ci);
		*reused_s = si.reused;
		*reused_c = ci.reused && ci.verified;
	}
	pair_close(&p);
}

static void
test_resumption(void)
{
	bool rs, rc, had;
	char err[256];
	struct tls_ctx *c12;

	CHECK(fixture());
	resume_with(cctx, &rs, &rc, &had);
	CHECK(had);
	CHECK(rs && rc);
	CHECK(tls_ctx_client_new(cert, &c12, err, sizeof(err)) == 0);
	CHECK(tls_ctx_set_versions(c12, TLS_VERSION_1_2, TLS_VERSION_1_2) == 0);
	resume_with(c12, &rs, &rc, &had);
	tls_ctx_free(c12);
	CHECK(had);
	CHECK(rs && rc);
}

static void
test_load_errors(void)
{
	struct config_tls cfg;
	struct tls_ctx *ctx = NULL;
	char err[256], want[256];

	CHECK(fixture());
	memset(&cfg, 0, sizeof(cfg));
	str_fmt(cfg.certificate, sizeof(cfg.certificate), "%s/nope.pem", dir);
	str_copy(cfg.private_key, sizeof(cfg.private_key), key);
	CHECK(tls_ctx_server_new(&cfg, &ctx, err, sizeof(err)) == -ENOENT);
	str_fmt(want, sizeof(want),
	    "tls: %s/nope.pem: No such file or directory", dir);
	CHECK(strcmp(err, want) == 0);

	str_copy(cfg.certificate, sizeof(cfg.certificate), cert);
	str_copy(cfg.private_key, sizeof(cfg.private_key), key2);
	CHECK(tls_ctx_server_new(&cfg, &ctx, err, sizeof(err)) == -EINVAL);
	CHECK(strcmp(err, "tls: private key does not match certificate") == 0);

	str_copy(cfg.certificate, sizeof(cfg.certificate), notpem);
	CHECK(tls_ctx_server_new(&cfg, &ctx, err, sizeof(err)) == -EINVAL);
	str_fmt(want, sizeof(want), "tls: %s: not a PEM certificate", notpem);
	CHECK(strcmp(err, want) == 0);

	str_copy(cfg.certificate, sizeof(cfg.certificate), cert);
	str_copy(cfg.private_key, sizeof(cfg.private_key), cert);
	CHECK(tls_ctx_server_new(&cfg, &ctx, err, sizeof(err)) == -EINVAL);
	str_fmt(want, sizeof(want), "tls: %s: not a PEM private key", cert);
	CHECK(strcmp(err, want) == 0);

	str_copy(cfg.certificate, sizeof(cfg.certificate), dir);
	CHECK(tls_ctx_server_new(&cfg, &ctx, err, sizeof(err)) == -EINVAL);
	str_fmt(want, sizeof(want), "tls: %s: not a regular file", dir);
	CHECK(strcmp(err, want) == 0);

	str_fmt(want, sizeof(want), "%s/none.pem", dir);
	CHECK(tls_ctx_client_new(want, &ctx, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "No such file or directory") != NULL);
	CHECK(ctx == NULL);
}

static void
test_verify_wrong_host(void)
{
	char err[256], who = 0;
	struct tls_ctx *sys;
	struct tls_info ci;
	struct pair p;
	int r;
	bool named, untrusted;

	CHECK(fixture());
	/* verify: a name the certificate does not carry is fatal. */
	p.s = tls_conn_server_new(sctx);
	p.c =
	    tls_conn_client_new(cctx, "wrong.example", CONFIG_TLS_VERIFY, NULL);
	r = handshake(p.s, p.c, 1 << 20, &who);
	named = strstr(tls_conn_error(p.c), "certificate verify failed") &&
	        strstr(tls_conn_error(p.c), "hostname mismatch");
	if (!named)
		fprintf(stderr, "c=%s\n", tls_conn_error(p.c));
	pair_close(&p);
	CHECK(r == -EPROTO && who == 'c');
	CHECK(named);

	/* may: the same peer is accepted, reported unverified. */
	p.s = tls_conn_server_new(sctx);
	p.c = tls_conn_client_new(cctx, "wrong.example", CONFIG_TLS_MAY, NULL);
	r = handshake(p.s, p.c, 1 << 20, &who);
	tls_conn_info(p.c, &ci);
	pair_close(&p);
	CHECK(r == 0);
	CHECK(!ci.verified);

	/* verify against the system store: a self-signed cert fails. */
	CHECK(tls_ctx_client_new(NULL, &sys, err, sizeof(err)) == 0);
	p.s = tls_conn_server_new(sctx);
	p.c = tls_conn_client_new(sys, "localhost", CONFIG_TLS_VERIFY, NULL);
	r = handshake(p.s, p.c, 1 << 20, &who);
	untrusted = strstr(tls_conn_error(p.c), "self-signed") != NULL;
	if (!untrusted)
		fprintf(stderr, "c=%s\n", tls_conn_error(p.c));
	pair_close(&p);
	tls_ctx_free(sys);
	CHECK(r == -EPROTO && who == 'c');
	CHECK(untrusted);
}

static void
test_bounds(void)
{
	static uint8_t big[TLS_IN_MAX + 1];
	size_t held = 0, n;
	struct pair p;
	ssize_t r;
	bool ok = true;

	CHECK(fixture());
	STEP(ok, pair_open(&p, "localhost", CONFIG_TLS_MAY, 1 << 20));
	/* Feeding past TLS_IN_MAX is refused whole. */
	STEP(ok, tls_conn_feed(p.s, big, sizeof(big)) == -ENOBUFS);
	/* A writer whose output is not drained stops near TLS_OUT_MAX. */
	while (ok && (r = tls_conn_write(p.c, big, sizeof(big) - 1)) > 0)
		held += (size_t)r;
	(void)tls_conn_pending_out(p.c, &n);
	STEP(ok, held >= TLS_OUT_MAX / 2);
	STEP(ok, n >= held);
	STEP(ok, n < TLS_OUT_MAX + TLS_OUT_MAX / 8);
	STEP(ok, tls_conn_write(p.c, big, 1) == -ENOBUFS);
	pair_close(&p);
}

static void
test_close(void)
{
	struct buf in;
	struct pair p;
	bool ok = true;

	CHECK(fixture());
	STEP(ok, pair_open(&p, "localhost", CONFIG_TLS_MAY, 1 << 20));
	STEP(ok, transfer(p.c, p.s, 1000, 1 << 20));
	/* close_notify reaches the peer as end of stream, after the data
	 * sent before it. */
	STEP(ok, tls_conn_write(p.c, "bye", 3) == 3);
	STEP(ok, tls_conn_close(p.c) == 0);
	STEP(ok, tls_conn_write(p.c, "x", 1) == -EPIPE);
	STEP(ok, shuttle(p.c, p.s, 1 << 20, false) > 0);
	buf_init(&in, 1024);
	STEP(ok, tls_conn_read(p.s, &in) == 3);
	STEP(ok, tls_conn_read(p.s, &in) == 0);
	STEP(ok, buf_avail(&in) == 3);
	STEP(ok, tls_conn_read(p.s, &in) == 0);
	buf_fini(&in);
	pair_close(&p);
}

static void
test_garbage(void)
{
	static const char junk[] = "EHLO not-tls.example\r\n";
	struct tls_conn *s;
	bool ok = true;

	CHECK(fixture());
	s = tls_conn_server_new(sctx);
	STEP(ok, tls_conn_feed(s, junk, sizeof(junk) - 1) == 0);
	STEP(ok, tls_conn_handshake(s) == -EPROTO);
	STEP(ok, strncmp(tls_conn_error(s), "handshake failed: ", 18) == 0);
	STEP(ok, tls_conn_handshake(s) == -EPROTO);
	if (!ok)
		fprintf(stderr, "s=%s\n", tls_conn_error(s));
	tls_conn_free(s);
}

static const struct harness_case cases[] = {
    {"handshake", test_handshake},
    {"data_both_ways", test_data_both_ways},
    {"byte_by_byte", test_byte_by_byte},
    {"tls12", test_tls12},
    {"tls11_refused", test_tls11_refused},
    {"resumption", test_resumption},
    {"load_errors", test_load_errors},
    {"verify_wrong_host", test_verify_wrong_host},
    {"bounds", test_bounds},
    {"close", test_close},
    {"garbage", test_garbage},
};

HARNESS_MAIN(cases)
