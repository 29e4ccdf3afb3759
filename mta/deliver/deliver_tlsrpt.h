/* SPDX-License-Identifier: ISC */
/*
 * deliver_tlsrpt.h - delivery's side of TLS reporting (RFC 8460): what a
 * session under a DANE or MTA-STS policy reports to the TLS-RPT stage
 * (mta/tlsrpt/tlsrpt.h). The worker fills a template when it picks a
 * target under such a policy (the policy domain, type and strings, the
 * MX host); the connection adds the addresses and the outcome once the
 * TLS question is settled (one record a session: connection reuse is
 * not a new session). Runs on a delivery worker; never blocks.
 */
#ifndef MTA_DELIVER_TLSRPT_H
#define MTA_DELIVER_TLSRPT_H

#include <stddef.h>
#include <stdint.h>

#include "tlsrpt/tlsrpt_agg.h"

struct deliver;

/* One TLSA record as the template wants it. */
struct dtlsrpt_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

/* A template for an MTA-STS policy of domain: its lines rebuilt from
 * what was parsed (mode, each mx, max_age). mx: the MX host. */
void dtlsrpt_sts(struct tlsrpt_rec *r, const char *domain, const char *mode,
    const char (*mxs)[256], size_t nmx, uint32_t max_age, const char *mx);

/* A template for DANE: the policy domain is the TLSA base domain, the
 * MX host (RFC 8460 4.3); one string per record ("3 1 1 HEX"). */
void dtlsrpt_dane(struct tlsrpt_rec *r, const char *mx,
    const struct dtlsrpt_tlsa *t, size_t n);

/*
 * dtlsrpt_session - count one session of template r (borrowed): result
 * NULL or "" for a success, else its RFC 8460 result type; fd the
 * connected socket (both addresses read from it), or -1 when no
 * connection was made (a policy failure before one). d->tlsrpt NULL:
 * nothing.
 */
void dtlsrpt_session(
    struct deliver *d, const struct tlsrpt_rec *r, int fd, const char *result);

/* The RFC 8460 result type named in a reason ("... (result=TYPE)"), into
 * out; "" when none. */
void dtlsrpt_result_of(const char *reason, char *out, size_t len);

/*
 * dtlsrpt_tls_result - the result type of a session of template r that
 * failed: tls_err the failed handshake's reason (OpenSSL's words), or
 * else smtp_err the session's error without a handshake. A type named
 * in the text ("result=TYPE", as the policy code writes it) wins. "" in
 * out when it is no TLS failure (a lost connection, a 4xx greeting).
 */
void dtlsrpt_tls_result(const struct tlsrpt_rec *r, const char *tls_err,
    const char *smtp_err, char *out, size_t len);

#endif
