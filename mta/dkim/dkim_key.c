/* SPDX-License-Identifier: ISC */
/*
 * dkim_key.c - DKIM keys with OpenSSL 3 EVP: loading a PEM private key
 * (RSA of 1024 bits or more, or Ed25519), generating one, its DNS TXT
 * record, and the sign primitive of both algorithms.
 *
 * RSA signs with EVP_DigestSign over SHA-256 (PKCS#1 v1.5). Ed25519 in
 * DKIM (RFC 8463) signs the SHA-256 hash of the data, not the data, with
 * PureEdDSA: EVP_DigestSign with a NULL digest over those 32 bytes.
 *
 * A loaded key is read-only: any thread may sign with it at once. An RSA
 * key keeps the contexts it signed with, ready for the next signature:
 * setting one up (EVP_DigestSignInit) looks the algorithms up by name in
 * OpenSSL's provider store, under its lock, at every message; a context
 * taken from the key's stack (one per signer thread at most) only signs.
 */
#include "dkim/dkim_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "base/log.h"
#include "base/xalloc.h"

#define KEY_CTX_MAX 64 /* idle contexts kept: one per signer thread */

/* RSA contexts set up for PKCS#1 v1.5 over SHA-256, idle. Apart from the
 * key so that a signer may take one from a const key. */
struct key_ctxs {
	pthread_mutex_t lock; /* protects ctx, n */
	EVP_PKEY_CTX *ctx[KEY_CTX_MAX];
	size_t n;
};

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
	unsigned bits;
	struct key_ctxs *idle; /* RSA only */
};

/* The OpenSSL reason of the last error, or what. */
static const char *
ssl_reason(const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : what;
}

static int
key_check(EVP_PKEY *pkey, const char *path, struct dkim_key **out, char *err,
    size_t errlen)
{
	struct dkim_key *k;
	int id = EVP_PKEY_get_base_id(pkey);
	int bits = EVP_PKEY_get_bits(pkey);

	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "%s: not an RSA or Ed25519 key", path);
		return -EINVAL;
	}
	if (id == EVP_PKEY_RSA && bits < DKIM_RSA_MIN_BITS) {
		snprintf(err, errlen, "%s: RSA key of %d bits (at least %d)",
		    path, bits, DKIM_RSA_MIN_BITS);
		return -EINVAL;
	}
	if (id == EVP_PKEY_RSA && bits < DKIM_RSA_WARN_BITS)
		log_warnx("dkim: %s: RSA key of %d bits; %d or more are "
		          "recommended",
		    path, bits, DKIM_RSA_WARN_BITS);
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->alg = id == EVP_PKEY_RSA ? DKIM_RSA_SHA256 : DKIM_ED25519_SHA256;
	k->bits = (unsigned)bits;
	if (k->alg == DKIM_RSA_SHA256) {
		k->idle = xcalloc(1, sizeof(*k->idle));
		pthread_mutex_init(&k->idle->lock, NULL);
	}
	*out = k;
	return 0;
}

int
dkim_key_load(const char *path, struct dkim_key **out, char *err, size_t errlen)
{
	EVP_PKEY *pkey;
	FILE *fp;
	int res;

	*out = NULL;
	if ((fp = fopen(path, "re")) == NULL) {
		res = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return res;
	}
	pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key (%s)", path,
		    ssl_reason("unreadable"));
		return -EINVAL;
	}
	if ((res = key_check(pkey, path, out, err, errlen)) < 0)
		EVP_PKEY_free(pkey);
	return res;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	if (k->idle != NULL) {
		for (size_t i = 0; i < k->idle->n; i++)
			EVP_PKEY_CTX_free(k->idle->ctx[i]);
		pthread_mutex_destroy(&k->idle->lock);
		free(k->idle);
	}
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

unsigned
dkim_key_bits(const struct dkim_key *k)
{
	return k->bits;
}

static EVP_PKEY *
key_make(enum dkim_alg alg, unsigned bits)
{
	if (alg == DKIM_ED25519_SHA256)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

int
dkim_key_generate(enum dkim_alg alg, unsigned bits, const char *path, char *err,
    size_t errlen)
{
	EVP_PKEY *pkey;
	FILE *fp;
	int fd, res = 0;

	if (alg == DKIM_RSA_SHA256 &&
	    (bits < DKIM_RSA_MIN_BITS || bits > 8192)) {
		snprintf(err, errlen, "RSA bits must be %d to 8192",
		    DKIM_RSA_MIN_BITS);
		return -EINVAL;
	}
	if ((pkey = key_make(alg, bits)) == NULL) {
		snprintf(err, errlen, "key generation failed: %s",
		    ssl_reason("unknown error"));
		return -EIO;
	}
	/* O_EXCL: an existing key is never replaced */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		res = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		EVP_PKEY_free(pkey);
		return res;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		res = -errno;
		close(fd);
	} else {
		if (!PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL))
			res = -EIO;
		if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
			res = -errno;
		if (fclose(fp) != 0 && res == 0)
			res = -errno;
	}
	if (res < 0) {
		snprintf(
		    err, errlen, "%s: cannot write: %s", path, strerror(-res));
		unlink(path);
	}
	EVP_PKEY_free(pkey);
	return res;
}

int
dkim_b64(const void *p, size_t n, struct buf *out)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	uint8_t *d;
	int w;

	if (n > SIZE_MAX / 2 || (d = buf_reserve(out, need)) == NULL)
		return -ENOBUFS;
	w = EVP_EncodeBlock(d, p, (int)n);
	buf_commit(out, (size_t)w);
	return 0;
}

int
dkim_key_record(const struct dkim_key *k, struct buf *out)
{
	uint8_t raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	int len, res;

	if (k->alg == DKIM_ED25519_SHA256) {
		if (!EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen))
			return -EIO;
		res = buf_appendf(out, "v=DKIM1; k=ed25519; p=");
		if (res == 0)
			res = dkim_b64(raw, rawlen, out);
	} else {
		/* SubjectPublicKeyInfo, what every verifier reads */
		if ((len = i2d_PUBKEY(k->pkey, &der)) <= 0)
			return -EIO;
		res = buf_appendf(out, "v=DKIM1; k=rsa; p=");
		if (res == 0)
			res = dkim_b64(der, (size_t)len, out);
		OPENSSL_free(der);
	}
	if (res == 0 && buf_append(out, "", 1) != 0)
		res = -ENOBUFS;
	return res;
}

static EVP_MD *sha256_md;

static void
sha256_fetch(void)
{
	if ((sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		fatalx("dkim: OpenSSL has no SHA-256");
}

/* OpenSSL 3 looks EVP_sha256() up in its provider store at every use;
 * fetched once, the digest is used directly (and never freed: it lives
 * as long as the process). */
const EVP_MD *
dkim_sha256(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, sha256_fetch);
	return sha256_md;
}

/* An idle RSA signing context of k, or a new one; NULL on failure. */
static EVP_PKEY_CTX *
rsa_ctx_take(const struct dkim_key *k)
{
	EVP_PKEY_CTX *ctx = NULL;

	pthread_mutex_lock(&k->idle->lock);
	if (k->idle->n > 0)
		ctx = k->idle->ctx[--k->idle->n];
	pthread_mutex_unlock(&k->idle->lock);
	if (ctx != NULL)
		return ctx;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (ctx == NULL || EVP_PKEY_sign_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, dkim_sha256()) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ctx back to k's idle stack (freed when the stack is full). */
static void
rsa_ctx_put(const struct dkim_key *k, EVP_PKEY_CTX *ctx)
{
	pthread_mutex_lock(&k->idle->lock);
	if (k->idle->n < KEY_CTX_MAX) {
		k->idle->ctx[k->idle->n++] = ctx;
		ctx = NULL;
	}
	pthread_mutex_unlock(&k->idle->lock);
	EVP_PKEY_CTX_free(ctx);
}

/* RSA: the SHA-256 of data, signed as PKCS#1 v1.5 (the DigestInfo of
 * SHA-256 around it), what EVP_DigestSign would make. */
static int
rsa_sign(const struct dkim_key *k, const void *data, size_t len, uint8_t *sig,
    size_t *siglen)
{
	uint8_t h[DKIM_HASH_LEN];
	EVP_PKEY_CTX *ctx;

	if (EVP_PKEY_get_size(k->pkey) > DKIM_SIG_MAX ||
	    !EVP_Digest(data, len, h, NULL, dkim_sha256(), NULL) ||
	    (ctx = rsa_ctx_take(k)) == NULL)
		return -EIO;
	if (EVP_PKEY_sign(ctx, sig, siglen, h, sizeof(h)) <= 0) {
		EVP_PKEY_CTX_free(ctx); /* in an unknown state: not kept */
		return -EIO;
	}
	rsa_ctx_put(k, ctx);
	return 0;
}

int
dkim_key_sign(const struct dkim_key *k, const void *data, size_t len,
    uint8_t *sig, size_t *siglen)
{
	EVP_MD_CTX *ctx;
	uint8_t h[DKIM_HASH_LEN];
	int ok;

	*siglen = DKIM_SIG_MAX;
	if (k->alg == DKIM_RSA_SHA256) {
		if (rsa_sign(k, data, len, sig, siglen) == 0)
			return 0;
		ERR_clear_error();
		return -EIO;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	ok = EVP_Digest(data, len, h, NULL, dkim_sha256(), NULL) &&
	     EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) &&
	     EVP_DigestSign(ctx, sig, siglen, h, sizeof(h));
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}
