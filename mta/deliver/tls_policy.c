/* SPDX-License-Identifier: ISC */
/*
 * tls_policy.c - the TLS policy of a delivery target: route, DANE,
 * MTA-STS, default, in that order (tls_policy.h). Pure; any thread (the
 * delivery workers and `mta resolve` call it).
 */
#include "deliver/tls_policy.h"

#include <string.h>
#include <strings.h>

#include "base/str.h"

bool
tls_policy_tlsa_usable(const struct dns_tlsa *t)
{
	/* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP */
	if (t->usage != 2 && t->usage != 3)
		return false;
	if (t->selector > 1)
		return false;
	/* RFC 6698 2.1.3: a digest must have its digest's length */
	switch (t->mtype) {
	case 0:
		return t->len > 0;
	case 1:
		return t->len == 32;
	case 2:
		return t->len == 64;
	default:
		return false;
	}
}

bool
tls_policy_mx_match(const char *pattern, const char *host)
{
	const char *dot;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, host) == 0;
	/* the wildcard stands for exactly one whole label */
	if ((dot = strchr(host, '.')) == NULL || dot == host)
		return false;
	return strcasecmp(pattern + 1, dot) == 0;
}

/* Validated TLSA records: DANE, authenticated by the usable ones, or
 * mandatory TLS without authentication when none is (RFC 7672 2.2). */
static void
tls_policy_dane(const struct dns_target *t, struct tls_policy *out)
{
	out->source = TLS_POLICY_DANE;
	out->unusable = t->tlsa_dropped;
	out->tlsa_base = t->tlsa_base;
	for (size_t i = 0; i < t->ntlsa; i++) {
		const struct dns_tlsa *r = &t->tlsa[i];

		if (!tls_policy_tlsa_usable(r)) {
			out->unusable++;
			continue;
		}
		out->tlsa[out->ntlsa++] = (struct tls_policy_tlsa){
		    r->usage, r->selector, r->mtype, r->data, r->len};
	}
	if (out->ntlsa > 0) {
		out->level = CONFIG_TLS_VERIFY;
		out->dane = true;
		return;
	}
	out->level = CONFIG_TLS_ENCRYPT;
	out->result = TLS_RESULT_TLSA_INVALID; /* reported, not fatal */
}

static void
tls_policy_sts(
    const struct tls_sts_policy *sts, const char *host, struct tls_policy *out)
{
	bool match = false;

	out->source = TLS_POLICY_MTA_STS;
	for (size_t i = 0; i < sts->nmx && !match; i++)
		match = tls_policy_mx_match(sts->mx[i], host);
	if (sts->mode == TLS_STS_TESTING) {
		out->sts_testing = true;
		return; /* level stays the default: only reported */
	}
	out->level = CONFIG_TLS_VERIFY;
	if (!match) {
		out->skip = true;
		out->result = TLS_RESULT_VALIDATION_FAILURE;
		str_fmt(out->reason, sizeof(out->reason),
		    "MX %s does not match the MTA-STS policy (result=%s)", host,
		    tls_result_name(out->result));
	}
}

void
tls_policy_decide(const struct tls_policy_in *in, struct tls_policy *out)
{
	const struct dns_target *t = in->target;

	memset(out, 0, sizeof(*out));
	out->tlsa_base = "";
	out->source = TLS_POLICY_DEFAULT;
	out->level = in->delivery;
	if (in->route != NULL && in->route->tls_set) {
		out->source = TLS_POLICY_ROUTE;
		out->level = in->route->tls;
		return;
	}
	if (t != NULL && t->dane == DNS_DANE_FAIL) {
		/* RFC 7672 2.2.3: not this host, and never in plaintext */
		out->source = TLS_POLICY_DANE;
		out->level = CONFIG_TLS_VERIFY;
		out->skip = true;
		out->result = TLS_RESULT_DNSSEC_INVALID;
		str_fmt(out->reason, sizeof(out->reason), "%s (result=%s)",
		    t->dane_reason, tls_result_name(out->result));
		return;
	}
	if (t != NULL && t->dane == DNS_DANE_RECORDS) {
		tls_policy_dane(t, out);
		return;
	}
	if (in->sts != NULL && in->sts->mode != TLS_STS_NONE) {
		tls_policy_sts(in->sts, t != NULL ? t->name : "", out);
		return;
	}
}

const char *
tls_policy_source_name(enum tls_policy_source s)
{
	switch (s) {
	case TLS_POLICY_DEFAULT:
		return "default";
	case TLS_POLICY_ROUTE:
		return "route";
	case TLS_POLICY_DANE:
		return "dane";
	case TLS_POLICY_MTA_STS:
		return "mta-sts";
	}
	return "?";
}

const char *
tls_result_name(enum tls_result r)
{
	static const char *const names[] = {
	    [TLS_RESULT_NONE] = "",
	    [TLS_RESULT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	    [TLS_RESULT_CERT_HOST_MISMATCH] = "certificate-host-mismatch",
	    [TLS_RESULT_CERT_NOT_TRUSTED] = "certificate-not-trusted",
	    [TLS_RESULT_CERT_EXPIRED] = "certificate-expired",
	    [TLS_RESULT_VALIDATION_FAILURE] = "validation-failure",
	    [TLS_RESULT_TLSA_INVALID] = "tlsa-invalid",
	    [TLS_RESULT_DNSSEC_INVALID] = "dnssec-invalid",
	    [TLS_RESULT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	    [TLS_RESULT_STS_POLICY_INVALID] = "sts-policy-invalid",
	    [TLS_RESULT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
	};

	if ((size_t)r >= sizeof(names) / sizeof(names[0]))
		return "";
	return names[r];
}

enum tls_result
tls_result_of_error(const struct tls_policy *p, const char *err)
{
	if (strstr(err, "hostname mismatch") != NULL ||
	    strstr(err, "IP address mismatch") != NULL)
		return TLS_RESULT_CERT_HOST_MISMATCH;
	if (strstr(err, "certificate has expired") != NULL)
		return TLS_RESULT_CERT_EXPIRED;
	/* no TLSA record matched: the chain was not checked otherwise */
	if (p->dane)
		return TLS_RESULT_VALIDATION_FAILURE;
	if (strstr(err, "unable to get local issuer") != NULL ||
	    strstr(err, "self-signed") != NULL ||
	    strstr(err, "self signed") != NULL ||
	    strstr(err, "unable to get issuer") != NULL)
		return TLS_RESULT_CERT_NOT_TRUSTED;
	return TLS_RESULT_VALIDATION_FAILURE;
}
