/* SPDX-License-Identifier: ISC */
/*
 * tls_policy.h - which TLS policy applies to one delivery target, and
 * where it came from: the one place that decides it (issue 11).
 *
 * Precedence, first that applies wins:
 *   1. route:   an explicit `[route DOMAIN] tls = ...`;
 *   2. dane:    the target has validated TLSA records (RFC 7672): TLS is
 *               mandatory and the peer is authenticated by the usable
 *               records (DANE-TA(2), DANE-EE(3); selectors 0/1; matching
 *               types 0/1/2); when none is usable, TLS is still
 *               mandatory but not authenticated (RFC 7672 2.2);
 *   3. mta-sts: an STS policy (RFC 8461) of the domain, filled in by the
 *               MTA-STS code: `enforce` requires verified TLS to an MX
 *               that matches its patterns, `testing` only reports;
 *   4. default: `[delivery] tls`.
 * A target whose TLSA lookup failed (SERVFAIL, timeout) is not used at
 * all (defer); an insecure (unsigned) answer falls through to 3 and 4.
 *
 * A failure under dane or mta-sts enforce defers with 4.7.5 and never
 * falls back to plaintext. The reason names the RFC 8460 result type
 * (tls_result_name) so TLS reporting can count it.
 *
 * Pure: no I/O, no clock, no OpenSSL. Any thread.
 */
#ifndef MTA_TLS_POLICY_H
#define MTA_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "dns/dns.h"

enum tls_policy_source {
	TLS_POLICY_DEFAULT, /* [delivery] tls */
	TLS_POLICY_ROUTE,   /* [route DOMAIN] tls */
	TLS_POLICY_DANE,    /* validated TLSA records of the MX host */
	TLS_POLICY_MTA_STS, /* the domain's MTA-STS policy */
};

/* RFC 8460 4.3 result types (what TLS-RPT counts). Not dane-required:
 * RFC 8460 4.3.2.1 keeps it for a sender configured to require DANE for
 * every MX host (mandatory DANE, RFC 7672 6), a setting mta does not
 * have; DANE here applies only where validated TLSA records exist. */
enum tls_result {
	TLS_RESULT_NONE,
	TLS_RESULT_STARTTLS_NOT_SUPPORTED,
	TLS_RESULT_CERT_HOST_MISMATCH,
	TLS_RESULT_CERT_NOT_TRUSTED,
	TLS_RESULT_CERT_EXPIRED,
	TLS_RESULT_VALIDATION_FAILURE,
	TLS_RESULT_TLSA_INVALID,
	TLS_RESULT_DNSSEC_INVALID,
	TLS_RESULT_STS_POLICY_FETCH_ERROR,
	TLS_RESULT_STS_POLICY_INVALID,
	TLS_RESULT_STS_WEBPKI_INVALID,
};

/* An MTA-STS policy as the MTA-STS code found it (its slot here). */
enum tls_sts_mode {
	TLS_STS_NONE,    /* no policy, or mode none */
	TLS_STS_TESTING, /* report failures, deliver anyway */
	TLS_STS_ENFORCE, /* verified TLS to a matching MX, or defer */
};

#define TLS_STS_MX_MAX 16

struct tls_sts_policy {
	enum tls_sts_mode mode;
	size_t nmx;
	char mx[TLS_STS_MX_MAX][DNS_NAME_MAX]; /* "mx.example", "*.example" */
};

/* One usable TLSA record, borrowed from the target. */
struct tls_policy_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

/* What applies to one target. */
struct tls_policy {
	enum tls_policy_source source;
	enum config_tls_policy level; /* what smtp_out and the handshake
					 enforce: none, may, encrypt, verify */
	bool dane;              /* authenticate by tlsa[] (level is verify) */
	bool sts_testing;       /* STS testing: failures reported, not fatal */
	bool skip;              /* do not use this target: reason, result */
	enum tls_result result; /* skip: why, for the log and TLS-RPT */
	char reason[DNS_REASON_MAX + 64];
	size_t ntlsa; /* dane: usable records */
	struct tls_policy_tlsa tlsa[DNS_TLSA_MAX];
	size_t unusable; /* TLSA records of the target that cannot be used */
	const char *tlsa_base; /* dane: the CNAME-expanded name the records
				  were found at, another reference id for
				  DANE-TA (RFC 7672 2.2.3, 3.2.2); or "" */
};

/* The inputs; all borrowed for the call. */
struct tls_policy_in {
	const struct config_route *route; /* or NULL */
	enum config_tls_policy delivery;  /* [delivery] tls */
	const struct dns_target *target;  /* the MX host (DANE fields) */
	const struct tls_sts_policy *sts; /* or NULL: none known */
};

/*
 * tls_policy_decide - the policy for in->target, by the precedence
 * above. out->tlsa points into in->target: valid while it is. Pure.
 */
void tls_policy_decide(const struct tls_policy_in *in, struct tls_policy *out);

/* Is this record one DANE for SMTP can use (RFC 7672 3.1)? */
bool tls_policy_tlsa_usable(const struct dns_tlsa *t);

/* RFC 8461 4.1: does MX host match pattern ("mx.example" exactly, or
 * "*.example": exactly one more label on the left)? Case-insensitive. */
bool tls_policy_mx_match(const char *pattern, const char *host);

/* "route", "dane", "mta-sts", "default". */
const char *tls_policy_source_name(enum tls_policy_source s);

/* The RFC 8460 name ("starttls-not-supported", ...); "" for NONE. */
const char *tls_result_name(enum tls_result r);

/*
 * tls_result_of_error - the result type of a failed handshake, from the
 * TLS layer's error text (tls_conn_error) under policy p: a name
 * mismatch or an expired certificate says so; otherwise under DANE
 * validation-failure (no TLSA record matched), under PKIX
 * certificate-not-trusted when the chain did not verify.
 */
enum tls_result tls_result_of_error(
    const struct tls_policy *p, const char *err);

#endif
