/* SPDX-License-Identifier: ISC */
/*
 * dkim_msg.c - signing one message: keys chosen by the From domain when
 * the header section is complete, the body hashed as it streams in (one
 * hash per body canonicalization in use, shared by the keys that use it),
 * the signatures made at the end.
 *
 * A dkim_msg belongs to the thread that feeds it; it borrows the table,
 * which must outlive it (the session holds the snapshot the table is
 * attached to).
 */
#include "dkim/dkim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "smtp/mime_7bit.h"

struct dkim_msg {
	char *hdr;
	size_t hdrlen;
	char domain[256]; /* of From */
	const struct dkim_signer *sig[DKIM_KEYS_MAX];
	size_t nsig;
	EVP_MD_CTX *md[2]; /* [enum dkim_canon]; NULL: not in use */
	struct dkim_body body[2];
};

static void
sink_md(void *arg, const void *p, size_t n)
{
	(void)EVP_DigestUpdate(arg, p, n);
}

static const char *
from_why(int res)
{
	switch (res) {
	case -ENOENT:
		return "no_from";
	case -EMLINK:
		return "multiple_from";
	default:
		return "from_no_domain";
	}
}

/* The From domain of the header section, or why there is none. */
static const char *
msg_domain(const char *hdr, size_t len, char *dom, size_t domlen)
{
	struct dkim_field *f;
	size_t nf = dkim_hdr_split(hdr, len, NULL, 0);
	int res;

	f = xcalloc(nf + 1, sizeof(*f));
	(void)dkim_hdr_split(hdr, len, f, nf);
	res = dkim_hdr_from_domain(f, nf, dom, domlen);
	free(f);
	return res < 0 ? from_why(res) : NULL;
}

int
dkim_from_address(const void *hdr, size_t len, char *addr, size_t addrlen)
{
	struct dkim_field *f;
	size_t nf = dkim_hdr_split(hdr, len, NULL, 0);
	int res;

	f = xcalloc(nf + 1, sizeof(*f));
	(void)dkim_hdr_split(hdr, len, f, nf);
	res = dkim_hdr_from_addr(f, nf, addr, addrlen);
	free(f);
	return res;
}

struct dkim_msg *
dkim_msg_start(const struct dkim_table *t, const void *hdr, size_t len,
    char *why, size_t whylen)
{
	const struct dkim_signer *sig[DKIM_KEYS_MAX];
	struct dkim_msg *m;
	char dom[256];
	const char *no;
	size_t n;

	if (t == NULL) {
		str_copy(why, whylen, "none");
		return NULL;
	}
	if ((no = msg_domain(hdr, len, dom, sizeof(dom))) != NULL) {
		metrics_inc(METRICS_DKIM_UNSIGNED_FROM);
		str_copy(why, whylen, no);
		return NULL;
	}
	if ((n = dkim_table_find(t, dom, sig)) == 0) {
		str_copy(why, whylen, "none");
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->hdr = xmalloc(len + 1);
	memcpy(m->hdr, hdr, len);
	m->hdrlen = len;
	str_copy(m->domain, sizeof(m->domain), dom);
	memcpy(m->sig, sig, n * sizeof(*sig));
	m->nsig = n;
	for (size_t i = 0; i < n; i++) {
		enum dkim_canon c = sig[i]->bcanon;

		if (m->md[c] != NULL)
			continue;
		if ((m->md[c] = EVP_MD_CTX_new()) == NULL ||
		    !EVP_DigestInit_ex(m->md[c], dkim_sha256(), NULL))
			fatalx("dkim: cannot start SHA-256");
		dkim_body_init(&m->body[c], c, sink_md, m->md[c]);
	}
	return m;
}

void
dkim_msg_body(struct dkim_msg *m, const void *p, size_t n)
{
	for (int c = 0; c < 2; c++)
		if (m->md[c] != NULL)
			dkim_body_update(&m->body[c], p, n);
}

/* One signature of signer s into out. */
static int
msg_sign_one(struct dkim_msg *m, const struct dkim_signer *s,
    const struct dkim_field *f, size_t nf, const uint8_t *bh, uint64_t now,
    struct buf *out)
{
	const struct dkim_field **sel;
	struct dkim_sig_params sp;
	struct buf hlist;
	size_t max = nf + s->nnames + 1, nsel;
	int res;

	sel = xcalloc(max, sizeof(*sel));
	buf_init(&hlist, 64 * 1024);
	nsel = dkim_hdr_select(
	    f, nf, (const char *const *)s->names, s->nnames, sel, max, &hlist);
	memset(&sp, 0, sizeof(sp));
	sp.key = s->key;
	sp.domain = strcmp(s->domain, "*") == 0 ? m->domain : s->domain;
	sp.selector = s->selector;
	sp.hcanon = s->hcanon;
	sp.bcanon = s->bcanon;
	sp.t = now;
	sp.x = s->expire != 0 ? now + s->expire : 0;
	sp.hlist =
	    buf_avail(&hlist) > 0 ? (const char *)buf_peek(&hlist) : "from";
	sp.bh = bh;
	res = dkim_sig_make(&sp, sel, nsel, out);
	buf_fini(&hlist);
	free(sel);
	return res;
}

int
dkim_msg_finish(struct dkim_msg *m, uint64_t now, struct buf *out, char *label,
    size_t labellen, char *why, size_t whylen)
{
	uint8_t bh[2][DKIM_HASH_LEN];
	struct dkim_field *f;
	size_t nf, mark = buf_avail(out), col = 0;
	int res = 0;

	for (int c = 0; c < 2; c++)
		if (m->md[c] != NULL) {
			dkim_body_final(&m->body[c]);
			if (!EVP_DigestFinal_ex(m->md[c], bh[c], NULL))
				res = -EIO;
		}
	nf = dkim_hdr_split(m->hdr, m->hdrlen, NULL, 0);
	f = xcalloc(nf + 1, sizeof(*f));
	(void)dkim_hdr_split(m->hdr, m->hdrlen, f, nf);
	label[0] = '\0';
	for (size_t i = 0; i < m->nsig && res == 0; i++) {
		const struct dkim_signer *s = m->sig[i];

		res = msg_sign_one(m, s, f, nf, bh[s->bcanon], now, out);
		if (res == 0)
			metrics_inc(dkim_key_alg(s->key) == DKIM_ED25519_SHA256
			                ? METRICS_DKIM_SIGNED_ED25519
			                : METRICS_DKIM_SIGNED_RSA);
		if (res == 0)
			col += (size_t)snprintf(label + col,
			    col < labellen ? labellen - col : 0, "%s%s/%s",
			    i > 0 ? "," : "",
			    strcmp(s->domain, "*") == 0 ? m->domain : s->domain,
			    s->selector);
	}
	free(f);
	if (res < 0) {
		out->len = out->off + mark; /* no partial field */
		metrics_inc(METRICS_DKIM_UNSIGNED_ERROR);
		str_copy(why, whylen, "sign_failed");
	}
	return res;
}

void
dkim_prepend(struct buf *msg, const struct buf *fields)
{
	struct buf out;

	/* the fields on top: one copy of the message */
	buf_init(&out, SIZE_MAX);
	if (buf_append(&out, buf_peek(fields), buf_avail(fields)) != 0 ||
	    buf_append(&out, buf_peek(msg), buf_avail(msg)) != 0)
		fatalx("dkim: unbounded buffer refused");
	out.max = msg->max > SIZE_MAX - buf_avail(fields)
	              ? SIZE_MAX
	              : msg->max + buf_avail(fields);
	buf_fini(msg);
	*msg = out;
}

/*
 * Mail we sign leaves 7-bit: a next hop without 8BITMIME would otherwise
 * get it converted at delivery (mime_7bit.h), after signing, and the
 * signature would no longer verify. So an 8-bit message is converted
 * here, once, before its signature is made, and every next hop gets the
 * same signed bytes. 7-bit mail, most of it, is only scanned. What cannot
 * be converted (8-bit header fields...) is signed as it is; delivery
 * bounces it 5.6.3 to a host without 8BITMIME.
 */
bool
dkim_7bit(struct buf *msg)
{
	const uint8_t *p = buf_peek(msg);
	size_t len = buf_avail(msg), i = 0;
	struct buf out;

	while (i < len && p[i] < 0x80)
		i++;
	if (i == len)
		return false;
	buf_init(&out, mime_7bit_bound(len));
	if (mime_7bit_convert(p, len, &out) != MIME_7BIT_OK) {
		buf_fini(&out);
		return false;
	}
	buf_fini(msg);
	*msg = out;
	return true;
}

int
dkim_sign_message(const struct dkim_table *t, struct buf *msg, uint64_t now,
    char *label, size_t labellen, char *why, size_t whylen)
{
	const uint8_t *p = buf_peek(msg);
	size_t len = buf_avail(msg), hlen = len, blen = 0;
	struct dkim_msg *m;
	struct buf sig;
	int res;

	if (dkim_7bit(msg)) {
		p = buf_peek(msg);
		len = hlen = buf_avail(msg);
	}
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
			hlen = i + 2;
			blen = len - (i + 4);
			break;
		}
	if ((m = dkim_msg_start(t, p, hlen, why, whylen)) == NULL)
		return 0;
	dkim_msg_body(m, p + len - blen, blen);
	buf_init(&sig, SIZE_MAX);
	res = dkim_msg_finish(m, now, &sig, label, labellen, why, whylen);
	dkim_msg_free(m);
	if (res == 0)
		dkim_prepend(msg, &sig);
	buf_fini(&sig);
	return res < 0 ? res : 1;
}

void
dkim_msg_free(struct dkim_msg *m)
{
	if (m == NULL)
		return;
	for (int c = 0; c < 2; c++)
		EVP_MD_CTX_free(m->md[c]);
	free(m->hdr);
	free(m);
}
