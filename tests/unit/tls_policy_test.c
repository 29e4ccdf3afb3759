/* SPDX-License-Identifier: ISC */
/*
 * tls_policy_test.c - the TLS policy precedence (route > DANE > MTA-STS >
 * [delivery] tls), usable and unusable TLSA records (RFC 7672 3.1), a
 * failed TLSA lookup, MTA-STS MX patterns (RFC 8461 4.1), and the RFC
 * 8460 result types of handshake errors.
 */
#include <string.h>

#include "deliver/tls_policy.h"
#include "../harness.h"

static struct dns_target tgt;

static void
target(enum dns_dane d)
{
	memset(&tgt, 0, sizeof(tgt));
	strcpy(tgt.name, "mx1.example.com");
	tgt.naddrs = 1;
	tgt.secure = d != DNS_DANE_NONE;
	tgt.dane = d;
}

static void
add_tlsa(uint8_t u, uint8_t s, uint8_t m, uint16_t len)
{
	struct dns_tlsa *t = &tgt.tlsa[tgt.ntlsa++];

	t->usage = u;
	t->selector = s;
	t->mtype = m;
	t->len = len;
	memset(t->data, 0x5a, len);
}

static void
test_default(void)
{
	struct tls_policy_in in = {.delivery = CONFIG_TLS_MAY, .target = &tgt};
	struct tls_policy p;

	target(DNS_DANE_NONE);
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DEFAULT && p.level == CONFIG_TLS_MAY);
	CHECK(!p.dane && !p.skip);
	/* validated, but no TLSA records: still the default */
	target(DNS_DANE_NODATA);
	in.delivery = CONFIG_TLS_VERIFY;
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DEFAULT && p.level == CONFIG_TLS_VERIFY);
	CHECK(strcmp(tls_policy_source_name(p.source), "default") == 0);
}

static void
test_route_first(void)
{
	struct config_route r = {.tls = CONFIG_TLS_NONE, .tls_set = true};
	struct tls_policy_in in = {
	    .route = &r, .delivery = CONFIG_TLS_MAY, .target = &tgt};
	struct tls_policy p;

	target(DNS_DANE_RECORDS);
	add_tlsa(3, 1, 1, 32);
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_ROUTE && p.level == CONFIG_TLS_NONE);
	CHECK(!p.dane);
	/* a route without tls = ...: DANE applies */
	r.tls_set = false;
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DANE && p.dane);
	/* even a failed TLSA lookup: the route wins */
	r.tls_set = true;
	target(DNS_DANE_FAIL);
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_ROUTE && !p.skip);
}

static void
test_dane_usable(void)
{
	struct tls_policy_in in = {.delivery = CONFIG_TLS_MAY, .target = &tgt};
	struct tls_policy p;

	target(DNS_DANE_RECORDS);
	add_tlsa(0, 0, 1, 32); /* PKIX-TA: unusable */
	add_tlsa(3, 1, 1, 32); /* DANE-EE SPKI SHA-256 */
	add_tlsa(2, 0, 2, 64); /* DANE-TA cert SHA-512 */
	add_tlsa(3, 1, 1, 31); /* wrong digest length */
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DANE && p.dane);
	CHECK(p.level == CONFIG_TLS_VERIFY && !p.skip);
	CHECK(p.ntlsa == 2 && p.unusable == 2);
	CHECK(p.tlsa[0].usage == 3 && p.tlsa[0].len == 32);
	CHECK(p.tlsa[1].usage == 2 && p.tlsa[1].mtype == 2);
	CHECK(p.tlsa[0].data == tgt.tlsa[1].data);
	CHECK(strcmp(tls_policy_source_name(p.source), "dane") == 0);
}

static void
test_dane_all_unusable(void)
{
	struct tls_policy_in in = {.delivery = CONFIG_TLS_NONE, .target = &tgt};
	struct tls_policy p;

	/* RFC 7672 2.2: TLS is still mandatory, just not authenticated */
	target(DNS_DANE_RECORDS);
	add_tlsa(1, 0, 1, 32); /* PKIX-EE */
	add_tlsa(3, 2, 1, 32); /* selector 2 */
	add_tlsa(3, 1, 3, 32); /* matching type 3 */
	add_tlsa(4, 1, 1, 32); /* usage 4 */
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DANE && !p.dane && !p.skip);
	CHECK(p.level == CONFIG_TLS_ENCRYPT && p.ntlsa == 0);
	CHECK(p.unusable == 4 && p.result == TLS_RESULT_TLSA_INVALID);
	/* records dropped for size count as unusable too */
	target(DNS_DANE_RECORDS);
	tgt.tlsa_dropped = 1;
	tls_policy_decide(&in, &p);
	CHECK(p.level == CONFIG_TLS_ENCRYPT && p.unusable == 1);
}

static void
test_dane_fail_skips(void)
{
	struct tls_policy_in in = {.delivery = CONFIG_TLS_MAY, .target = &tgt};
	struct tls_policy p;

	target(DNS_DANE_FAIL);
	strcpy(tgt.dane_reason, "TLSA lookup for mx1.example.com failed");
	tls_policy_decide(&in, &p);
	CHECK(p.skip && p.source == TLS_POLICY_DANE);
	CHECK(p.result == TLS_RESULT_DNSSEC_INVALID);
	CHECK(strstr(p.reason, "TLSA lookup") != NULL);
	CHECK(strstr(p.reason, "result=dnssec-invalid") != NULL);
}

static void
test_sts(void)
{
	static struct tls_sts_policy sts;
	struct tls_policy_in in = {
	    .delivery = CONFIG_TLS_MAY, .target = &tgt, .sts = &sts};
	struct tls_policy p;

	memset(&sts, 0, sizeof(sts));
	sts.mode = TLS_STS_ENFORCE;
	sts.nmx = 1;
	strcpy(sts.mx[0], "*.example.com");
	target(DNS_DANE_NONE);
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_MTA_STS && p.level == CONFIG_TLS_VERIFY);
	CHECK(!p.skip && !p.sts_testing);
	/* DANE goes before MTA-STS */
	target(DNS_DANE_RECORDS);
	add_tlsa(3, 1, 1, 32);
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DANE);
	/* an MX the policy does not list, under enforce: not used */
	target(DNS_DANE_NODATA);
	strcpy(sts.mx[0], "mail.example.org");
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_MTA_STS && p.skip);
	CHECK(strstr(p.reason, "MTA-STS") != NULL);
	/* testing: the default level, failures only reported */
	sts.mode = TLS_STS_TESTING;
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_MTA_STS && p.sts_testing && !p.skip);
	CHECK(p.level == CONFIG_TLS_MAY);
	/* mode none: as if there were no policy */
	sts.mode = TLS_STS_NONE;
	tls_policy_decide(&in, &p);
	CHECK(p.source == TLS_POLICY_DEFAULT);
}

static void
test_mx_match(void)
{
	CHECK(tls_policy_mx_match("mx1.example.com", "mx1.example.com"));
	CHECK(tls_policy_mx_match("MX1.Example.com", "mx1.example.COM"));
	CHECK(!tls_policy_mx_match("mx1.example.com", "mx2.example.com"));
	CHECK(tls_policy_mx_match("*.example.com", "mx1.example.com"));
	/* exactly one label */
	CHECK(!tls_policy_mx_match("*.example.com", "a.b.example.com"));
	CHECK(!tls_policy_mx_match("*.example.com", "example.com"));
	CHECK(!tls_policy_mx_match("*.example.com", ".example.com"));
	CHECK(!tls_policy_mx_match("*.example.com", "mx1example.com"));
}

static void
test_results(void)
{
	struct tls_policy dane = {.dane = true}, pkix = {.dane = false};

	CHECK(tls_result_of_error(&dane,
	          "handshake failed: certificate verify failed: no matching "
	          "DANE TLSA records") == TLS_RESULT_VALIDATION_FAILURE);
	CHECK(tls_result_of_error(
	          &dane, "certificate verify failed: hostname mismatch") ==
	      TLS_RESULT_CERT_HOST_MISMATCH);
	CHECK(tls_result_of_error(&pkix,
	          "certificate verify failed: certificate has expired") ==
	      TLS_RESULT_CERT_EXPIRED);
	CHECK(tls_result_of_error(&pkix,
	          "certificate verify failed: self-signed certificate") ==
	      TLS_RESULT_CERT_NOT_TRUSTED);
	CHECK(tls_result_of_error(&pkix, "unexpected eof") ==
	      TLS_RESULT_VALIDATION_FAILURE);
	CHECK(strcmp(tls_result_name(TLS_RESULT_STARTTLS_NOT_SUPPORTED),
	          "starttls-not-supported") == 0);
	CHECK(strcmp(tls_result_name(TLS_RESULT_TLSA_INVALID),
	          "tlsa-invalid") == 0);
	/* every type has its name; no dane-required (no mandatory DANE) */
	for (int r = TLS_RESULT_NONE + 1; r <= TLS_RESULT_STS_WEBPKI_INVALID;
	     r++) {
		CHECK(tls_result_name((enum tls_result)r)[0] != '\0');
		CHECK(strcmp(tls_result_name((enum tls_result)r),
		          "dane-required") != 0);
	}
	CHECK(strcmp(tls_result_name(TLS_RESULT_NONE), "") == 0);
	CHECK(strcmp(tls_result_name((enum tls_result)99), "") == 0);
}

static const struct harness_case cases[] = {
    {"default", test_default},
    {"route_first", test_route_first},
    {"dane_usable", test_dane_usable},
    {"dane_all_unusable", test_dane_all_unusable},
    {"dane_fail_skips", test_dane_fail_skips},
    {"sts", test_sts},
    {"mx_match", test_mx_match},
    {"results", test_results},
};

HARNESS_MAIN(cases)
