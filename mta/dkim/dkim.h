/* SPDX-License-Identifier: ISC */
/*
 * dkim.h - DKIM signing (RFC 6376; Ed25519 per RFC 8463): keys, the
 * signing table built from a configuration snapshot, and the signing of
 * one message as it streams in.
 *
 * DESIGN. A message is signed in one pass: when its header section is
 * complete, dkim_msg_start() picks the keys by the domain of From: (what
 * DMARC aligns on); every body byte then goes through dkim_msg_body(),
 * which canonicalizes and hashes as it goes (no second pass over the
 * body); dkim_msg_finish() hashes the chosen header fields and signs.
 * The DKIM-Signature fields are prepended to the stored message by the
 * caller, before the commit, so every retry sends the same bytes.
 *
 * Threads: a dkim_table is read-only once built and may be used by any
 * number of threads at once (OpenSSL keys are safe to share for
 * signing). A dkim_msg belongs to one thread at a time.
 *
 * Only mta/dkim/ includes OpenSSL's EVP headers for DKIM.
 */
#ifndef MTA_DKIM_H
#define MTA_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/compat.h"

struct config;

enum dkim_alg {
	DKIM_RSA_SHA256,
	DKIM_ED25519_SHA256,
};

enum dkim_canon {
	DKIM_SIMPLE,
	DKIM_RELAXED,
};

#define DKIM_RSA_MIN_BITS  1024 /* below: refused */
#define DKIM_RSA_WARN_BITS 2048 /* below: a warning */
#define DKIM_ERR_MAX       512

/* ---- keys (dkim_key.c) ---- */

struct dkim_key;

/*
 * dkim_key_load - read a PEM private key: RSA of DKIM_RSA_MIN_BITS bits
 * or more, or Ed25519. On success 0 and *out (dkim_key_free it); a
 * warning is logged for RSA under DKIM_RSA_WARN_BITS. On failure a
 * negative errno and one line in err naming the path.
 */
int dkim_key_load(const char *path, struct dkim_key **out, char *err,
    size_t errlen) MTA_MUST_CHECK;
void dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
/* RSA modulus bits; 256 for Ed25519. */
unsigned dkim_key_bits(const struct dkim_key *k);

/*
 * dkim_key_generate - make a new key (RSA of bits bits, or Ed25519) and
 * write it as PEM to path, created with mode 0600; an existing file is
 * never overwritten (-EEXIST). 0 or a negative errno, with err set.
 */
int dkim_key_generate(enum dkim_alg alg, unsigned bits, const char *path,
    char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * dkim_key_record - the DNS TXT record of k's public key,
 * "v=DKIM1; k=rsa; p=BASE64" (k=ed25519: the raw 32-byte key, RFC 8463),
 * NUL-terminated, appended to out. 0 or -ENOBUFS.
 */
int dkim_key_record(const struct dkim_key *k, struct buf *out) MTA_MUST_CHECK;

/* ---- the signing table (dkim_table.c) ---- */

struct dkim_table;

/*
 * dkim_table_new - the signers of c's [dkim] sections, their keys
 * loaded. *out is NULL when c has none. On failure a negative errno and
 * "FILE:LINE: key: cannot load PATH: reason" in err.
 */
int dkim_table_new(const struct config *c, struct dkim_table **out, char *err,
    size_t errlen) MTA_MUST_CHECK;
void dkim_table_free(struct dkim_table *t);

/*
 * dkim_table_attach - build c's table and attach it to c (config_attach:
 * it lives as long as the snapshot), so every stage that holds c finds
 * the same keys with dkim_table_of(). Only before c is shared. 0 (also
 * when c has no [dkim]), or as dkim_table_new.
 */
int dkim_table_attach(
    struct config *c, char *err, size_t errlen) MTA_MUST_CHECK;
/* The table attached to c, or NULL (no [dkim]). Any thread. */
const struct dkim_table *dkim_table_of(const struct config *c);

/* ---- one message (dkim_msg.c) ---- */

struct dkim_msg;

/*
 * dkim_msg_start - begin signing a message whose header section (the
 * header fields, each ending in CRLF, without the empty line) is
 * (hdr, len); it is copied. NULL when the message is not signed: why
 * then says so in one word ("none": no key for the From domain;
 * "no_from", "multiple_from", "from_no_domain"). t may be NULL.
 */
struct dkim_msg *dkim_msg_start(const struct dkim_table *t, const void *hdr,
    size_t len, char *why, size_t whylen);

/*
 * dkim_from_address - the address of the one From: field of the header
 * section (hdr, len) (as dkim_msg_start reads it), into addr: 0, or
 * -ENOENT no From, -EMLINK several, -EINVAL no address in it (or longer
 * than addrlen). For the sender identity check; any thread.
 */
int dkim_from_address(
    const void *hdr, size_t len, char *addr, size_t addrlen) MTA_MUST_CHECK;

/* Body bytes as stored (after the empty line), in any slices. */
void dkim_msg_body(struct dkim_msg *m, const void *p, size_t n);

/*
 * dkim_msg_finish - sign: append one "DKIM-Signature: ...\r\n" field per
 * key to out, and "DOMAIN/SELECTOR" per key (comma-separated) to label.
 * now is the signing time in seconds since the epoch. 0, or a negative
 * errno when signing failed (out then holds no partial field; why says
 * what).
 */
int dkim_msg_finish(struct dkim_msg *m, uint64_t now, struct buf *out,
    char *label, size_t labellen, char *why, size_t whylen) MTA_MUST_CHECK;
void dkim_msg_free(struct dkim_msg *m);

/*
 * dkim_sign_message - sign a whole message in msg (header section, empty
 * line, body; as the relay writes its own reports) and put the fields in
 * front of it. 1: signed, label says with what; 0: not signed (no key,
 * why says so); negative errno: signing failed, msg unchanged.
 */
int dkim_sign_message(const struct dkim_table *t, struct buf *msg, uint64_t now,
    char *label, size_t labellen, char *why, size_t whylen);

/* ---- signing off the event loops (dkim_pool.c) ---- */

/* chan message types of this module. */
enum dkim_msg_type {
	DKIM_JOB_SIGN = 0x600, /* struct dkim_job, to the pool */
	DKIM_JOB_DONE,         /* the same struct, back on job->reply */
};

#define DKIM_LABEL_MAX 600 /* "DOMAIN/SELECTOR,..." of DKIM_KEYS_MAX keys */

/*
 * The end of one message's signing: the receive thread moves the stored
 * message into body and hands the job over; the pool finishes m, puts
 * the DKIM-Signature fields in front of body and sends the job back.
 * While the job is out, only the pool touches it.
 */
struct dkim_job {
	struct chan_msg msg; /* first: type DKIM_JOB_SIGN, reqid = caller's */
	struct chan *reply;  /* borrowed: where the job comes back */
	struct dkim_msg *m;  /* owned; freed once signed */
	/* The table m's keys come from (borrowed: whoever submits keeps it
	 * alive until the job is back), to sign anew after a 7-bit
	 * conversion. */
	const struct dkim_table *t;
	struct buf body; /* in: the message; out: signed (or as it was) */
	uint64_t now;    /* signing time, s */
	int status;      /* out: 0, or negative errno (body unsigned) */
	char label[DKIM_LABEL_MAX]; /* out: "DOMAIN/SELECTOR,..." */
	char why[32];               /* out: when status < 0 */
};

/* Sign on the calling thread (what a pool worker does). */
void dkim_job_run(struct dkim_job *j);
/* Free a job and what it owns. Takes NULL. */
void dkim_job_free(struct dkim_job *j);

struct dkim_pool;

/* Start nthreads (>= 1) signing threads (signals blocked in them). */
struct dkim_pool *dkim_pool_new(unsigned nthreads);
/* Hand j over (j->reply set); it comes back as DKIM_JOB_DONE. Any
 * thread. */
void dkim_pool_submit(struct dkim_pool *p, struct dkim_job *j);
/* Stop and join the threads; jobs still queued are signed and sent back
 * first. Takes NULL. */
void dkim_pool_free(struct dkim_pool *p);

#endif
