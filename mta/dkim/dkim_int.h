/* SPDX-License-Identifier: ISC */
/*
 * dkim_int.h - the pieces of mta/dkim/, for its own files and its unit
 * test: body canonicalization, header fields, the signature builder.
 * Everything here is pure (no I/O, no global state) and runs on the
 * caller's thread.
 */
#ifndef MTA_DKIM_INT_H
#define MTA_DKIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "dkim/dkim.h"

#define DKIM_HASH_LEN 32 /* SHA-256 */

/* Where canonical body bytes go: a hash, or a test's buffer. */
typedef void dkim_sink_fn(void *arg, const void *p, size_t n);

/* dkim_body.c */
/*
 * A streaming body canonicalizer (RFC 6376 3.4.3, 3.4.4). Trailing empty
 * lines are held (as a count of CRLFs) until a line with content proves
 * they are not trailing; a CR at the end of one slice waits for the next.
 */
struct dkim_body {
	enum dkim_canon canon;
	dkim_sink_fn *sink;
	void *arg;
	bool cr;        /* a CR waits for its LF */
	bool wsp;       /* relaxed: blanks seen, not yet written */
	bool inline_;   /* the current line has content written */
	bool any;       /* something was written */
	uint64_t crlfs; /* empty lines held back */
	size_t n;       /* bytes in out */
	uint8_t out[4096];
};

void dkim_body_init(
    struct dkim_body *b, enum dkim_canon c, dkim_sink_fn *sink, void *arg);
void dkim_body_update(struct dkim_body *b, const void *p, size_t n);
/* The end of the body: the final CRLF rules, then everything flushed. */
void dkim_body_final(struct dkim_body *b);

/* dkim_hdr.c */
/* One header field as written: name, colon, value, continuation lines
 * and its CRLF (when the section had one). */
struct dkim_field {
	const char *p;
	size_t len;     /* whole field */
	size_t namelen; /* the name, without blanks before the colon */
};

/*
 * Split a header section into at most max fields; returns how many there
 * are (possibly more than max). A line without a colon is kept as a field
 * with namelen 0 (never selected).
 */
size_t dkim_hdr_split(
    const char *p, size_t len, struct dkim_field *f, size_t max);
/* Append f canonicalized (with its CRLF; without when crlf is false) to
 * out. 0 or -ENOBUFS. */
int dkim_hdr_canon(const struct dkim_field *f, enum dkim_canon c, bool crlf,
    struct buf *out) MTA_MUST_CHECK;
/* Is f's name name (any case)? A name ending in '*' is a prefix. */
bool dkim_hdr_is(const struct dkim_field *f, const char *name);

/*
 * Choose the fields to sign (RFC 6376 5.4.2): for each name in names (in
 * order, lowercase; "list-*" takes every List- field), each present
 * instance bottom-up; "from" once more than present (over-signing, so
 * no From can be added). sel[i] is the field, or NULL for a name listed
 * but absent; hlist gets "from:to:..." (NUL-terminated). Returns the
 * count, at most max.
 */
size_t dkim_hdr_select(const struct dkim_field *f, size_t nf,
    const char *const *names, size_t nnames, const struct dkim_field **sel,
    size_t max, struct buf *hlist);

/*
 * The From domain (lowercase) into dom: 0; -ENOENT no From, -EMLINK
 * several, -EINVAL no domain in it.
 */
int dkim_hdr_from_domain(
    const struct dkim_field *f, size_t nf, char *dom, size_t domlen);
/* The From address (as written) into addr: 0, or as above. */
int dkim_hdr_from_addr(
    const struct dkim_field *f, size_t nf, char *addr, size_t addrlen);

/* dkim_sig.c */
struct dkim_sig_params {
	const struct dkim_key *key;
	const char *domain, *selector;
	enum dkim_canon hcanon, bcanon;
	uint64_t t;        /* signing time, s */
	uint64_t x;        /* expiry, s; 0 = none */
	const char *hlist; /* "from:to:..." */
	const uint8_t *bh; /* DKIM_HASH_LEN bytes */
};

/*
 * Append "DKIM-Signature: ...\r\n" to out, signing the selected fields
 * (sel[0..nsel), NULL = absent) and the field itself. 0, or a negative
 * errno with out unchanged.
 */
int dkim_sig_make(const struct dkim_sig_params *sp,
    const struct dkim_field *const *sel, size_t nsel,
    struct buf *out) MTA_MUST_CHECK;

/* dkim_key.c: the sign primitive (RSA: PKCS#1 v1.5 over SHA-256 of data;
 * Ed25519: over the SHA-256 of data, RFC 8463). Signature to sig
 * (at least 512 bytes), its length to *siglen. 0 or -EIO. */
int dkim_key_sign(const struct dkim_key *k, const void *data, size_t len,
    uint8_t *sig, size_t *siglen) MTA_MUST_CHECK;
#define DKIM_SIG_MAX 1024 /* RSA-8192 */

/* SHA-256, fetched from OpenSSL once for the process. Any thread. */
const EVP_MD *dkim_sha256(void);

/* dkim_table.c */
#define DKIM_KEYS_MAX 8 /* signatures on one message */

struct dkim_signer {
	char domain[256]; /* lowercase; "*": the From domain */
	char selector[64];
	struct dkim_key *key;
	enum dkim_canon hcanon, bcanon;
	char **names; /* header names to sign, lowercase */
	size_t nnames;
	uint64_t expire; /* s; 0 = no x= */
	bool subdomains;
};

struct dkim_table {
	struct dkim_signer *s;
	size_t n;
};

/*
 * The signers for a From domain, into out (at most DKIM_KEYS_MAX): every
 * section of the domain itself; else of its nearest parent that has
 * subdomains = yes; else the "*" ones. Returns how many.
 */
size_t dkim_table_find(const struct dkim_table *t, const char *domain,
    const struct dkim_signer **out);

/* dkim_msg.c: put fields in front of msg (one copy of it). */
void dkim_prepend(struct buf *msg, const struct buf *fields);

/* Make an 8-bit msg 7-bit (quoted-printable, smtp/mime_7bit.h) before it
 * is signed; true when it was converted. See dkim_msg.c. */
bool dkim_7bit(struct buf *msg);

/* base64 of (p, n) appended to out (no line breaks). 0 or -ENOBUFS. */
int dkim_b64(const void *p, size_t n, struct buf *out) MTA_MUST_CHECK;

#endif
