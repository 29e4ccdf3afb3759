/* SPDX-License-Identifier: ISC */
/*
 * dkim_test.c - DKIM signing: body and header canonicalization against
 * the examples of RFC 6376 3.4.5 and known hashes, cut at every byte;
 * header selection (bottom-up, From over-signed); the From domain; keys
 * (generate, 0600, never overwrite, too small, not a key); and whole
 * signatures (RSA, Ed25519, dual, both canonicalizations) checked by
 * dkimpy (python3-dkim), which nobody here wrote, plus a one-byte change
 * that must fail it. RSA signatures made with the contexts a key keeps
 * (reused, several threads at once) are those of a fresh EVP_DigestSign.
 */
#include "dkim/dkim.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/str.h"
#include "dkim/dkim_int.h"
#include "../harness.h"

static char dir[64];

static void
sink_buf(void *arg, const void *p, size_t n)
{
	if (buf_append(arg, p, n) != 0)
		abort();
}

/* Canonicalize in, cut in two at every offset, and byte by byte. */
static bool
body_is(enum dkim_canon c, const char *in, const char *want)
{
	size_t n = strlen(in);
	struct dkim_body b;
	struct buf out;
	bool ok = true;

	for (size_t cut = 0; cut <= n + 1 && ok; cut++) {
		buf_init(&out, 1 << 20);
		dkim_body_init(&b, c, sink_buf, &out);
		if (cut <= n) {
			dkim_body_update(&b, in, cut);
			dkim_body_update(&b, in + cut, n - cut);
		} else {
			for (size_t i = 0; i < n; i++)
				dkim_body_update(&b, in + i, 1);
		}
		dkim_body_final(&b);
		ok = buf_avail(&out) == strlen(want) &&
		     (strlen(want) == 0 ||
		         memcmp(buf_peek(&out), want, strlen(want)) == 0);
		if (!ok)
			fprintf(stderr, "cut %zu: got \"%.*s\"\n", cut,
			    (int)buf_avail(&out), (const char *)buf_peek(&out));
		buf_fini(&out);
	}
	return ok;
}

static void
test_body_simple(void)
{
	/* RFC 6376 3.4.5 */
	CHECK(body_is(
	    DKIM_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n"));
	CHECK(body_is(DKIM_SIMPLE, "", "\r\n"));
	CHECK(body_is(DKIM_SIMPLE, "\r\n\r\n", "\r\n"));
	CHECK(body_is(DKIM_SIMPLE, "abc", "abc\r\n"));
	CHECK(body_is(DKIM_SIMPLE, "a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n"));
	CHECK(body_is(DKIM_SIMPLE, "  \r\n", "  \r\n"));
	CHECK(body_is(DKIM_SIMPLE, "a\rb\r\n\r", "a\rb\r\n\r\r\n"));
}

static void
test_body_relaxed(void)
{
	CHECK(body_is(
	    DKIM_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"));
	CHECK(body_is(DKIM_RELAXED, "", ""));
	CHECK(body_is(DKIM_RELAXED, "\r\n", ""));
	CHECK(body_is(DKIM_RELAXED, "  \r\n\t\r\n", ""));
	CHECK(body_is(DKIM_RELAXED, "abc \t", "abc\r\n"));
	CHECK(body_is(DKIM_RELAXED, "a \r\n \r\nb\r\n \r\n", "a\r\n\r\nb\r\n"));
	CHECK(body_is(DKIM_RELAXED, "x\t\ty", "x y\r\n"));
}

static void
sink_md(void *arg, const void *p, size_t n)
{
	(void)EVP_DigestUpdate(arg, p, n);
}

/* base64 SHA-256 of the canonical body of in. */
static void
body_hash(enum dkim_canon c, const char *in, char *out)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t h[32];
	struct dkim_body b;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	dkim_body_init(&b, c, sink_md, md);
	dkim_body_update(&b, in, strlen(in));
	dkim_body_final(&b);
	EVP_DigestFinal_ex(md, h, NULL);
	EVP_MD_CTX_free(md);
	EVP_EncodeBlock((uint8_t *)out, h, 32);
}

/* The well-known bh= of an empty body (RFC 6376 errata 3133). */
static void
test_body_hash_empty(void)
{
	char h[64];

	body_hash(DKIM_SIMPLE, "", h);
	CHECK(strcmp(h, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=") == 0);
	body_hash(DKIM_RELAXED, "\r\n\r\n", h);
	CHECK(strcmp(h, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=") == 0);
}

static bool
hdr_is(enum dkim_canon c, const char *in, const char *want)
{
	struct dkim_field f[8];
	size_t n = dkim_hdr_split(in, strlen(in), f, 8);
	struct buf out;
	bool ok = true;

	buf_init(&out, 4096);
	for (size_t i = 0; i < n && i < 8; i++)
		ok = ok && dkim_hdr_canon(&f[i], c, true, &out) == 0;
	ok = ok && buf_avail(&out) == strlen(want) &&
	     memcmp(buf_peek(&out), want, strlen(want)) == 0;
	if (!ok)
		fprintf(stderr, "got \"%.*s\"\n", (int)buf_avail(&out),
		    (const char *)buf_peek(&out));
	buf_fini(&out);
	return ok;
}

static void
test_header_canon(void)
{
	/* RFC 6376 3.4.5 */
	CHECK(hdr_is(
	    DKIM_RELAXED, "A: X\r\nB : Y\t\r\n\tZ  \r\n", "a:X\r\nb:Y Z\r\n"));
	CHECK(hdr_is(DKIM_SIMPLE, "A: X\r\nB : Y\t\r\n\tZ  \r\n",
	    "A: X\r\nB : Y\t\r\n\tZ  \r\n"));
	CHECK(hdr_is(DKIM_RELAXED, "SUBJECT:   many   blanks  \r\n",
	    "subject:many blanks\r\n"));
	/* no final CRLF: one is written */
	CHECK(hdr_is(DKIM_RELAXED, "To: a", "to:a\r\n"));
}

static void
test_header_select(void)
{
	static const char hdr[] = "From: a@x.org\r\nTo: one@y\r\n"
	                          "Subject: s\r\nTo: two@y\r\n"
	                          "List-Id: <l.x.org>\r\nX-Other: 1\r\n"
	                          "List-Unsubscribe: <mailto:u@x.org>\r\n";
	static const char *const names[] = {
	    "from", "to", "subject", "date", "list-*", "to"};
	struct dkim_field f[16];
	const struct dkim_field *sel[32];
	size_t nf = dkim_hdr_split(hdr, strlen(hdr), f, 16), n;
	struct buf h;

	CHECK(nf == 7);
	buf_init(&h, 4096);
	n = dkim_hdr_select(f, nf, names, 6, sel, 32, &h);
	CHECK(strcmp((const char *)buf_peek(&h),
	          "from:from:to:to:subject:list-unsubscribe:list-id") == 0);
	buf_fini(&h);
	CHECK(n == 7);
	CHECK(sel[0] == &f[0] && sel[1] == NULL);
	CHECK(sel[2] == &f[3] && sel[3] == &f[1]); /* bottom-up */
	CHECK(sel[4] == &f[2] && sel[5] == &f[6] && sel[6] == &f[4]);
}

static int
from_of(const char *hdr, char *dom)
{
	struct dkim_field f[8];
	size_t nf = dkim_hdr_split(hdr, strlen(hdr), f, 8);

	return dkim_hdr_from_domain(f, nf, dom, 256);
}

static void
test_from_domain(void)
{
	char d[256];

	CHECK(from_of("From: Joe <joe@Example.COM>\r\n", d) == 0);
	CHECK(strcmp(d, "example.com") == 0);
	CHECK(from_of("from: \"a@b <c>\" <x@y.org.>\r\n", d) == 0);
	CHECK(strcmp(d, "y.org") == 0);
	CHECK(from_of("From: x@z.net (Joe <q@w.org>)\r\n", d) == 0);
	CHECK(strcmp(d, "z.net") == 0);
	CHECK(from_of("From:\r\n x@folded.example\r\n", d) == 0);
	CHECK(strcmp(d, "folded.example") == 0);
	CHECK(from_of("From: undisclosed\r\n", d) == -EINVAL);
	CHECK(from_of("From: <>\r\n", d) == -EINVAL);
	CHECK(from_of("To: a@b\r\n", d) == -ENOENT);
	CHECK(from_of("From: a@b\r\nFrom: c@d\r\n", d) == -EMLINK);
}

static bool
fixture(void)
{
	static int state;

	if (state)
		return state > 0;
	state = -1;
	if (harness_tmpdir() == NULL)
		return false;
	str_copy(dir, sizeof(dir), harness_tmpdir());
	state = 1;
	return true;
}

static void
path_of(char *p, size_t n, const char *name)
{
	snprintf(p, n, "%s/%s", dir, name);
}

static void
test_keys(void)
{
	char p[128], err[DKIM_ERR_MAX], cmd[256];
	struct dkim_key *k;
	struct stat st;
	FILE *fp;

	CHECK(fixture());
	path_of(p, sizeof(p), "ed.pem");
	CHECK(dkim_key_generate(DKIM_ED25519_SHA256, 0, p, err, sizeof(err)) ==
	      0);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(dkim_key_generate(DKIM_ED25519_SHA256, 0, p, err, sizeof(err)) ==
	      -EEXIST);
	CHECK(dkim_key_load(p, &k, err, sizeof(err)) == 0);
	CHECK(dkim_key_alg(k) == DKIM_ED25519_SHA256);
	dkim_key_free(k);
	path_of(p, sizeof(p), "small.pem");
	snprintf(cmd, sizeof(cmd),
	    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512 "
	    "-out %s 2>/dev/null",
	    p);
	CHECK(system(cmd) == 0);
	CHECK(dkim_key_load(p, &k, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "512 bits") != NULL && strstr(err, p) != NULL);
	path_of(p, sizeof(p), "junk.pem");
	CHECK((fp = fopen(p, "w")) != NULL);
	fputs("not a key\n", fp);
	fclose(fp);
	CHECK(dkim_key_load(p, &k, err, sizeof(err)) == -EINVAL);
	path_of(p, sizeof(p), "missing.pem");
	CHECK(dkim_key_load(p, &k, err, sizeof(err)) == -ENOENT);
	CHECK(dkim_key_generate(DKIM_RSA_SHA256, 512, p, err, sizeof(err)) ==
	      -EINVAL);
}

#define REUSE_THREADS 4
#define REUSE_SIGNS   8

struct reuse {
	const struct dkim_key *k;
	const uint8_t *want;
	size_t wantlen;
	int bad; /* signatures unlike want */
};

static const char reuse_data[] = "from:Joe <joe@example.com>\r\nto:x@y\r\n";

static void *
reuse_thread(void *arg)
{
	struct reuse *r = arg;
	uint8_t sig[DKIM_SIG_MAX];
	size_t len;

	for (int i = 0; i < REUSE_SIGNS; i++)
		if (dkim_key_sign(
		        r->k, reuse_data, strlen(reuse_data), sig, &len) != 0 ||
		    len != r->wantlen || memcmp(sig, r->want, len) != 0)
			r->bad++;
	return NULL;
}

/* The reference: PKCS#1 v1.5 over SHA-256 by a fresh EVP_DigestSign. */
static bool
reuse_want(const char *path, uint8_t *want, size_t *len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY *pkey;
	FILE *fp;
	bool ok;

	if ((fp = fopen(path, "r")) == NULL)
		return false;
	pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	*len = DKIM_SIG_MAX;
	ok = pkey != NULL && ctx != NULL &&
	     EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) &&
	     EVP_DigestSign(ctx, want, len, (const uint8_t *)reuse_data,
	         strlen(reuse_data));
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return ok;
}

static void
test_rsa_reuse(void)
{
	char p[128], err[DKIM_ERR_MAX];
	uint8_t want[DKIM_SIG_MAX];
	struct reuse r[REUSE_THREADS];
	pthread_t th[REUSE_THREADS];
	struct dkim_key *k;
	size_t wantlen;

	CHECK(fixture());
	path_of(p, sizeof(p), "reuse.pem");
	CHECK(
	    dkim_key_generate(DKIM_RSA_SHA256, 2048, p, err, sizeof(err)) == 0);
	CHECK(dkim_key_load(p, &k, err, sizeof(err)) == 0);
	CHECK(reuse_want(p, want, &wantlen) && wantlen == 256);
	for (int i = 0; i < REUSE_THREADS; i++) {
		r[i] = (struct reuse){.k = k, .want = want, .wantlen = wantlen};
		CHECK(pthread_create(&th[i], NULL, reuse_thread, &r[i]) == 0);
	}
	for (int i = 0; i < REUSE_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(r[i].bad == 0);
	}
	reuse_thread(&r[0]); /* once more, on contexts the threads left */
	CHECK(r[0].bad == 0);
	dkim_key_free(k);
}

static const char msg_hdr[] = "From: Joe Sender <joe@example.com>\r\n"
                              "To: rcpt@dest.example\r\n"
                              "Subject: a test   with\r\n\tfolding \r\n"
                              "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
                              "Message-ID: <1@example.com>\r\n";
static const char msg_body[] = "Hello  world \r\n\r\nsecond line\r\n\r\n\r\n";

/* A signer on a key file, with the key's TXT record added to recs. */
static bool
signer_make(struct dkim_signer *s, const char *sel, enum dkim_alg alg,
    enum dkim_canon hc, enum dkim_canon bc, FILE *recs)
{
	char p[128], err[DKIM_ERR_MAX];
	struct buf rec;
	bool ok;

	memset(s, 0, sizeof(*s));
	snprintf(p, sizeof(p), "%s/%s.pem", dir, sel);
	if (access(p, F_OK) != 0 &&
	    dkim_key_generate(alg, 2048, p, err, sizeof(err)) != 0)
		return false;
	if (dkim_key_load(p, &s->key, err, sizeof(err)) != 0)
		return false;
	str_copy(s->domain, sizeof(s->domain), "example.com");
	str_copy(s->selector, sizeof(s->selector), sel);
	s->hcanon = hc;
	s->bcanon = bc;
	s->nnames = 5;
	s->names = calloc(5, sizeof(*s->names));
	s->names[0] = strdup("from");
	s->names[1] = strdup("to");
	s->names[2] = strdup("subject");
	s->names[3] = strdup("date");
	s->names[4] = strdup("message-id");
	buf_init(&rec, 4096);
	ok = dkim_key_record(s->key, &rec) == 0;
	if (ok)
		fprintf(recs, "%s._domainkey.example.com %s\n", sel,
		    (const char *)buf_peek(&rec));
	buf_fini(&rec);
	return ok;
}

/* Sign with table t, write the message, verify with dkimpy. flip: the
 * offset from the end of one byte to change first (0: none). */
static int
sign_verify(const struct dkim_table *t, size_t flip, char *label)
{
	char why[64], p[128], rp[128], cmd[512];
	struct dkim_msg *m;
	struct buf out;
	FILE *fp;
	int rc;

	buf_init(&out, 1 << 20);
	if ((m = dkim_msg_start(
	         t, msg_hdr, strlen(msg_hdr), why, sizeof(why))) == NULL)
		return -1;
	/* the body in odd slices */
	for (size_t i = 0; i < strlen(msg_body); i += 3)
		dkim_msg_body(m, msg_body + i,
		    strlen(msg_body) - i < 3 ? strlen(msg_body) - i : 3);
	rc = dkim_msg_finish(m, 1780000000, &out, label, 256, why, sizeof(why));
	dkim_msg_free(m);
	if (rc != 0)
		return -1;
	if (buf_append(&out, msg_hdr, strlen(msg_hdr)) != 0 ||
	    buf_append(&out, "\r\n", 2) != 0 ||
	    buf_append(&out, msg_body, strlen(msg_body)) != 0)
		return -1;
	if (flip > 0)
		out.data[out.len - flip] ^= 0x01;
	path_of(p, sizeof(p), "msg.eml");
	path_of(rp, sizeof(rp), "records");
	fp = fopen(p, "w");
	fwrite(buf_peek(&out), 1, buf_avail(&out), fp);
	fclose(fp);
	buf_fini(&out);
	snprintf(cmd, sizeof(cmd),
	    "/usr/bin/python3 tests/integration/dkim_verify.py %s %s >&2", p,
	    rp);
	return system(cmd) == 0 ? 0 : 1;
}

static void
table_free(struct dkim_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		dkim_key_free(t->s[i].key);
		for (size_t j = 0; j < t->s[i].nnames; j++)
			free(t->s[i].names[j]);
		free(t->s[i].names);
	}
}

static void
test_sign_dkimpy(void)
{
	struct dkim_signer s[6];
	struct dkim_table t = {s, 0};
	char rp[128], label[256];
	FILE *recs;
	bool ok = true;

	CHECK(fixture());
	path_of(rp, sizeof(rp), "records");
	CHECK((recs = fopen(rp, "w")) != NULL);
	STEP(ok, signer_make(&s[t.n++], "rsarr", DKIM_RSA_SHA256, DKIM_RELAXED,
	             DKIM_RELAXED, recs));
	STEP(ok, signer_make(&s[t.n++], "rsass", DKIM_RSA_SHA256, DKIM_SIMPLE,
	             DKIM_SIMPLE, recs));
	STEP(ok, signer_make(&s[t.n++], "edrr", DKIM_ED25519_SHA256,
	             DKIM_RELAXED, DKIM_RELAXED, recs));
	STEP(ok, signer_make(&s[t.n++], "edss", DKIM_ED25519_SHA256,
	             DKIM_SIMPLE, DKIM_SIMPLE, recs));
	STEP(ok, signer_make(&s[t.n++], "rsars", DKIM_RSA_SHA256, DKIM_RELAXED,
	             DKIM_SIMPLE, recs));
	fclose(recs);
	/* every key at once: five signatures, two body hashes */
	STEP(ok, sign_verify(&t, 0, label) == 0);
	STEP(ok, strcmp(label, "example.com/rsarr,example.com/rsass,"
	                       "example.com/edrr,example.com/edss,"
	                       "example.com/rsars") == 0);
	/* one byte of the body changed: dkimpy must say no */
	STEP(ok, sign_verify(&t, 5, label) == 1);
	table_free(&t);
}

/* Each key alone, so one signature cannot hide a bad other. */
static void
test_sign_each(void)
{
	struct dkim_signer s[4], one;
	struct dkim_table t = {&one, 1};
	char rp[128], label[256];
	const char *names[] = {"rsarr", "rsass", "edrr", "edss"};
	FILE *recs;
	bool ok = true;

	CHECK(fixture());
	path_of(rp, sizeof(rp), "records");
	CHECK((recs = fopen(rp, "w")) != NULL);
	STEP(ok, signer_make(&s[0], names[0], DKIM_RSA_SHA256, DKIM_RELAXED,
	             DKIM_RELAXED, recs));
	STEP(ok, signer_make(&s[1], names[1], DKIM_RSA_SHA256, DKIM_SIMPLE,
	             DKIM_SIMPLE, recs));
	STEP(ok, signer_make(&s[2], names[2], DKIM_ED25519_SHA256, DKIM_RELAXED,
	             DKIM_RELAXED, recs));
	STEP(ok, signer_make(&s[3], names[3], DKIM_ED25519_SHA256, DKIM_SIMPLE,
	             DKIM_SIMPLE, recs));
	fclose(recs);
	for (int i = 0; i < 4 && ok; i++) {
		one = s[i];
		STEP(ok, sign_verify(&t, 0, label) == 0);
		/* a header byte (in Subject) changed */
		STEP(ok,
		    sign_verify(&t, strlen(msg_body) + 2 + 100, label) == 1);
	}
	t.s = s;
	t.n = 4;
	table_free(&t);
}

/* The pool: jobs from one thread, signed by others, all come back on the
 * reply chan with the fields in front of their message. */
static void
test_pool(void)
{
	struct dkim_signer s;
	struct dkim_table t = {&s, 1};
	struct dkim_pool *pool;
	struct chan *reply = chan_new();
	char rp[128], why[32];
	FILE *recs;
	int back = 0, good = 0;
	bool ok = true;

	CHECK(fixture());
	path_of(rp, sizeof(rp), "records");
	CHECK((recs = fopen(rp, "w")) != NULL);
	STEP(ok, signer_make(&s, "edrr", DKIM_ED25519_SHA256, DKIM_RELAXED,
	             DKIM_RELAXED, recs));
	fclose(recs);
	pool = dkim_pool_new(2);
	for (int i = 0; i < 32 && ok; i++) {
		struct dkim_job *j = calloc(1, sizeof(*j));

		j->m = dkim_msg_start(&t, msg_hdr, strlen(msg_hdr), why, 32);
		dkim_msg_body(j->m, msg_body, strlen(msg_body));
		buf_init(&j->body, SIZE_MAX);
		STEP(ok, buf_append(&j->body, "X: 1\r\n", 6) == 0);
		j->now = 1780000000;
		j->reply = reply;
		j->msg.reqid = (uint64_t)i;
		dkim_pool_submit(pool, j);
	}
	for (int tries = 0; back < 32 && tries < 1000 && ok; tries++) {
		struct chan_msg *m = chan_wait(reply, 100), *next;

		for (; m != NULL; m = next) {
			struct dkim_job *j = (struct dkim_job *)m;

			next = m->next;
			back++;
			if (m->type == DKIM_JOB_DONE && j->status == 0 &&
			    j->m == NULL &&
			    strcmp(j->label, "example.com/edrr") == 0 &&
			    buf_avail(&j->body) > 100 &&
			    memcmp(buf_peek(&j->body),
			        "DKIM-Signature: ", 16) == 0 &&
			    memcmp(buf_peek(&j->body) + buf_avail(&j->body) - 6,
			        "X: 1\r\n", 6) == 0)
				good++;
			dkim_job_free(j);
		}
	}
	dkim_pool_free(pool);
	chan_free(reply);
	STEP(ok, back == 32 && good == 32);
	table_free(&t);
}

static void
test_no_key(void)
{
	struct dkim_signer s;
	struct dkim_table t = {&s, 1};
	const struct dkim_signer *out[DKIM_KEYS_MAX];
	char why[32];

	memset(&s, 0, sizeof(s));
	str_copy(s.domain, sizeof(s.domain), "example.com");
	CHECK(dkim_msg_start(NULL, "From: a@b\r\n", 11, why, 32) == NULL);
	CHECK(strcmp(why, "none") == 0);
	CHECK(dkim_msg_start(&t, "From: a@b.org\r\n", 15, why, 32) == NULL);
	CHECK(strcmp(why, "none") == 0);
	CHECK(dkim_msg_start(&t, "To: a@b\r\n", 9, why, 32) == NULL);
	CHECK(strcmp(why, "no_from") == 0);
	CHECK(
	    dkim_msg_start(&t, "From: a\r\nFrom: b\r\n", 18, why, 32) == NULL);
	CHECK(strcmp(why, "multiple_from") == 0);
	CHECK(dkim_msg_start(&t, "From: joe\r\n", 11, why, 32) == NULL);
	CHECK(strcmp(why, "from_no_domain") == 0);
	/* subdomains only when asked; "*" as the fallback */
	CHECK(dkim_table_find(&t, "sub.example.com", out) == 0);
	s.subdomains = true;
	CHECK(dkim_table_find(&t, "a.sub.example.com", out) == 1);
	str_copy(s.domain, sizeof(s.domain), "*");
	CHECK(dkim_table_find(&t, "other.org", out) == 1);
}

static void
test_cleanup(void)
{
	char cmd[128];

	if (dir[0] && str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", dir))
		CHECK(system(cmd) == 0);
}

static const struct harness_case cases[] = {
    {"body_simple", test_body_simple},
    {"body_relaxed", test_body_relaxed},
    {"body_hash_empty", test_body_hash_empty},
    {"header_canon", test_header_canon},
    {"header_select", test_header_select},
    {"from_domain", test_from_domain},
    {"keys", test_keys},
    {"rsa_reuse", test_rsa_reuse},
    {"sign_dkimpy", test_sign_dkimpy},
    {"sign_each", test_sign_each},
    {"pool", test_pool},
    {"no_key", test_no_key},
    {"cleanup", test_cleanup},
};

HARNESS_MAIN(cases)
