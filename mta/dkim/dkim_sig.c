/* SPDX-License-Identifier: ISC */
/*
 * dkim_sig.c - the DKIM-Signature field (RFC 6376 3.5, 3.7): its tags,
 * folded at 78 columns, the hash of the signed header fields and of the
 * field itself with an empty b=, and the signature put into b=.
 *
 * Folding is where the two canonicalizations differ: relaxed unfolds,
 * simple signs the field as written, so the field is folded once, signed
 * with "b=" last and empty, and the signature is appended after "b="
 * (a verifier deletes the b= value, folds and all, before it hashes).
 *
 * Runs on the caller's thread.
 */
#include "dkim/dkim_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define FOLD_COL 78
#define B64_LINE 64 /* signature characters per folded line */

struct fold {
	struct buf *b;
	size_t col;
	int err;
};

static void
fold_raw(struct fold *f, const char *s, size_t n)
{
	if (f->err == 0 && buf_append(f->b, s, n) != 0)
		f->err = -ENOBUFS;
	f->col += n;
}

/* A new line, indented by a tab (eight columns). */
static void
fold_break(struct fold *f)
{
	fold_raw(f, "\r\n\t", 3);
	f->col = 8;
}

/* sep then s, on a new line when it would pass FOLD_COL. */
static void
fold_word(struct fold *f, const char *sep, const char *s, size_t n)
{
	if (f->col + strlen(sep) + n > FOLD_COL && f->col > 8)
		fold_break(f);
	else
		fold_raw(f, sep, strlen(sep));
	fold_raw(f, s, n);
}

/* " h=from:to:..." folded between names. */
static void
fold_hlist(struct fold *f, const char *h)
{
	const char *p = h, *e;
	bool first = true;

	while (*p != '\0') {
		e = strchr(p, ':');
		if (e == NULL)
			e = p + strlen(p);
		if (first) {
			char t[96];
			size_t n = (size_t)(e - p) < 80 ? (size_t)(e - p) : 80;

			memcpy(t, "h=", 2);
			memcpy(t + 2, p, n);
			fold_word(f, " ", t, n + 2);
			first = false;
		} else {
			fold_word(f, "", ":", 1);
			fold_word(f, "", p, (size_t)(e - p));
		}
		p = *e == ':' ? e + 1 : e;
	}
	fold_raw(f, ";", 1);
}

static const char *
canon_name(enum dkim_canon c)
{
	return c == DKIM_RELAXED ? "relaxed" : "simple";
}

/* Every tag but the b= value, into f. */
static void
sig_tags(struct fold *f, const struct dkim_sig_params *sp)
{
	char t[320];
	struct buf bh;

	fold_raw(f, "DKIM-Signature: v=1;", 20);
	snprintf(t, sizeof(t), "a=%s;",
	    dkim_key_alg(sp->key) == DKIM_RSA_SHA256 ? "rsa-sha256"
	                                             : "ed25519-sha256");
	fold_word(f, " ", t, strlen(t));
	snprintf(t, sizeof(t), "c=%s/%s;", canon_name(sp->hcanon),
	    canon_name(sp->bcanon));
	fold_word(f, " ", t, strlen(t));
	snprintf(t, sizeof(t), "d=%s;", sp->domain);
	fold_word(f, " ", t, strlen(t));
	snprintf(t, sizeof(t), "s=%s;", sp->selector);
	fold_word(f, " ", t, strlen(t));
	snprintf(t, sizeof(t), "t=%" PRIu64 ";", sp->t);
	fold_word(f, " ", t, strlen(t));
	if (sp->x != 0) {
		snprintf(t, sizeof(t), "x=%" PRIu64 ";", sp->x);
		fold_word(f, " ", t, strlen(t));
	}
	fold_hlist(f, sp->hlist);
	buf_init(&bh, 128);
	if (buf_append(&bh, "bh=", 3) != 0 ||
	    dkim_b64(sp->bh, DKIM_HASH_LEN, &bh) != 0 ||
	    buf_append(&bh, ";", 1) != 0)
		f->err = -ENOBUFS;
	else
		fold_word(f, " ", (const char *)buf_peek(&bh), buf_avail(&bh));
	buf_fini(&bh);
	fold_break(f);
	fold_raw(f, "b=", 2);
}

/* The signed data: selected fields, then the field with an empty b=. */
static int
sig_data(const struct dkim_sig_params *sp, const struct dkim_field *const *sel,
    size_t nsel, const struct buf *field, struct buf *data)
{
	struct dkim_field self;

	for (size_t i = 0; i < nsel; i++)
		if (sel[i] != NULL &&
		    dkim_hdr_canon(sel[i], sp->hcanon, true, data) != 0)
			return -ENOBUFS;
	self.p = (const char *)buf_peek(field);
	self.len = buf_avail(field);
	self.namelen = strlen("DKIM-Signature");
	return dkim_hdr_canon(&self, sp->hcanon, false, data);
}

/* The signature, base64, after "b=": B64_LINE characters a line. */
static void
sig_value(struct fold *f, const uint8_t *sig, size_t siglen)
{
	struct buf v;
	size_t n, len;

	buf_init(&v, 4 * DKIM_SIG_MAX);
	if (dkim_b64(sig, siglen, &v) != 0) {
		f->err = -ENOBUFS;
		buf_fini(&v);
		return;
	}
	len = buf_avail(&v);
	for (size_t i = 0; i < len; i += n) {
		n = len - i < B64_LINE ? len - i : B64_LINE;
		if (i > 0)
			fold_break(f);
		fold_raw(f, (const char *)buf_peek(&v) + i, n);
	}
	fold_raw(f, "\r\n", 2);
	buf_fini(&v);
}

int
dkim_sig_make(const struct dkim_sig_params *sp,
    const struct dkim_field *const *sel, size_t nsel, struct buf *out)
{
	struct buf field, data;
	struct fold f;
	uint8_t sig[DKIM_SIG_MAX];
	size_t siglen;
	int res;

	buf_init(&field, 64 * 1024);
	buf_init(&data, SIZE_MAX);
	f.b = &field;
	f.col = 0;
	f.err = 0;
	sig_tags(&f, sp);
	res = f.err;
	if (res == 0)
		res = sig_data(sp, sel, nsel, &field, &data);
	if (res == 0)
		res = dkim_key_sign(
		    sp->key, buf_peek(&data), buf_avail(&data), sig, &siglen);
	if (res == 0) {
		sig_value(&f, sig, siglen);
		res = f.err;
	}
	if (res == 0 && buf_append(out, buf_peek(&field), buf_avail(&field)))
		res = -ENOBUFS;
	buf_fini(&field);
	buf_fini(&data);
	return res;
}
