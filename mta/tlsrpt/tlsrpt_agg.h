/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_agg.h - TLS-RPT (RFC 8460) counts of one policy domain over one
 * period: its policies, each with its successful and failed sessions and
 * the failures grouped by result type and addresses. Pure: no I/O, no
 * clock; any thread (the TLS-RPT thread is its only user).
 *
 * A period is [start, start + interval): with the default interval of
 * one day, a UTC day. Every bound is fixed: past TLSRPT_POL_MAX policies
 * or TLSRPT_FAIL_MAX failure rows a session still counts in its
 * policy's summary (the last policy, for a policy past the cap) and
 * only its details are dropped, as RFC 8460 4.4 allows.
 *
 * On disk a period is text, one line each, tab-separated ("v1" first;
 * "P" a policy, "F" a failure row of the P before it): the strings
 * never hold a tab or a line break (tlsrpt_clean).
 */
#ifndef MTA_TLSRPT_AGG_H
#define MTA_TLSRPT_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"

#define TLSRPT_NAME_MAX    256  /* a host or domain name, with NUL */
#define TLSRPT_IP_MAX      48   /* an IPv6 address text, with NUL */
#define TLSRPT_RESULT_MAX  32   /* "certificate-host-mismatch", ... */
#define TLSRPT_STRINGS_MAX 1024 /* policy strings, '\n' between them */
#define TLSRPT_POL_MAX     4    /* policies of a domain in a period */
#define TLSRPT_FAIL_MAX    16   /* failure rows of a policy */

enum tlsrpt_ptype {
	TLSRPT_STS,       /* "sts": an MTA-STS policy */
	TLSRPT_TLSA,      /* "tlsa": DANE TLSA records */
	TLSRPT_NO_POLICY, /* "no-policy-found" */
};

/* One session's outcome, as delivery reports it (all copied). */
struct tlsrpt_rec {
	char domain[TLSRPT_NAME_MAX]; /* the policy domain */
	enum tlsrpt_ptype ptype;
	char strings[TLSRPT_STRINGS_MAX]; /* the policy's lines ('\n'
					     between), or "" */
	char mx[TLSRPT_NAME_MAX];         /* the MX host, or "" */
	char send_ip[TLSRPT_IP_MAX];      /* ours, or "" */
	char recv_ip[TLSRPT_IP_MAX];      /* the MX's, or "" */
	char result[TLSRPT_RESULT_MAX];   /* "" = success, else the RFC 8460
					     result type */
};

struct tlsrpt_fail {
	char result[TLSRPT_RESULT_MAX];
	char send_ip[TLSRPT_IP_MAX];
	char mx[TLSRPT_NAME_MAX];
	char recv_ip[TLSRPT_IP_MAX];
	uint64_t count;
};

struct tlsrpt_pol {
	enum tlsrpt_ptype ptype;
	char strings[TLSRPT_STRINGS_MAX];
	char mx[TLSRPT_NAME_MAX]; /* tlsa: the host the records are for */
	uint64_t ok, failed;
	size_t nfail;
	struct tlsrpt_fail fail[TLSRPT_FAIL_MAX];
};

struct tlsrpt_agg {
	uint64_t start;               /* unix s */
	char domain[TLSRPT_NAME_MAX]; /* lowercase */
	size_t npol;
	struct tlsrpt_pol pol[TLSRPT_POL_MAX];
};

/* Replace tabs, line breaks (except '\n' when keep_nl) and other control
 * bytes of s by spaces, in place: what makes a string safe to store. */
void tlsrpt_clean(char *s, bool keep_nl);

/* Count r in a (whose domain and start the caller set). */
void tlsrpt_agg_add(struct tlsrpt_agg *a, const struct tlsrpt_rec *r);

/* Sessions in a: successful and failed, over every policy. */
void tlsrpt_agg_totals(
    const struct tlsrpt_agg *a, uint64_t *ok, uint64_t *failed);

/* "sts", "tlsa", "no-policy-found". */
const char *tlsrpt_ptype_name(enum tlsrpt_ptype t);

/* Append a's text form to out. 0 or -ENOBUFS. */
int tlsrpt_agg_encode(
    const struct tlsrpt_agg *a, struct buf *out) MTA_MUST_CHECK;

/* Parse (p, len) into a (domain and start are left as they are). 0, or
 * -EBADMSG for anything but what encode writes. */
int tlsrpt_agg_decode(
    struct tlsrpt_agg *a, const char *p, size_t len) MTA_MUST_CHECK;

#endif
