/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_test.c - TLS-RPT's pure parts: the `_smtp._tls` TXT parser, the
 * per-domain aggregation and its text form, the JSON report (escaping
 * included), gzip and the report mail.
 */
#include <string.h>
#include <zlib.h>

#include "../harness.h"
#include "deliver/deliver_tlsrpt.h"
#include "tlsrpt/tlsrpt_agg.h"
#include "tlsrpt/tlsrpt_report.h"

static void
test_txt_ok(void)
{
	struct tlsrpt_rua r;
	const char *t = "v=TLSRPTv1; rua=mailto:rpt@example.net?subject=x,"
	                " https://r.example/tls ;x=y";

	CHECK(tlsrpt_txt_parse(t, strlen(t), &r) == 0);
	CHECK(r.n == 2);
	CHECK(strcmp(r.uri[0], "mailto:rpt@example.net") == 0);
	CHECK(strcmp(r.uri[1], "https://r.example/tls") == 0);
	t = "v=TLSRPTv1;rua=mailto:a@b";
	CHECK(tlsrpt_txt_parse(t, strlen(t), &r) == 0 && r.n == 1);
}

static void
test_txt_bad(void)
{
	static const char *bad[] = {
	    "",
	    "v=TLSRPTv2; rua=mailto:a@b",
	    "rua=mailto:a@b; v=TLSRPTv1",
	    "v=TLSRPTv1",
	    "v=TLSRPTv1; rua=http://insecure.example/",
	    "v=TLSRPTv1; rua=mailto:nobody",
	    "v=spf1 -all",
	};
	struct tlsrpt_rua r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(tlsrpt_txt_parse(bad[i], strlen(bad[i]), &r) != 0);
}

static void
rec(struct tlsrpt_rec *r, enum tlsrpt_ptype t, const char *strings,
    const char *mx, const char *result)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->domain, "example.com");
	r->ptype = t;
	strcpy(r->strings, strings);
	strcpy(r->mx, mx);
	strcpy(r->send_ip, "192.0.2.1");
	strcpy(r->recv_ip, "198.51.100.7");
	strcpy(r->result, result);
}

static const char *sts_text =
    "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400";

static void
fill(struct tlsrpt_agg *a)
{
	struct tlsrpt_rec r;

	memset(a, 0, sizeof(*a));
	a->start = 1764720000; /* 2025-12-03T00:00:00Z */
	strcpy(a->domain, "example.com");
	rec(&r, TLSRPT_STS, sts_text, "mx.example.com", "");
	tlsrpt_agg_add(a, &r);
	tlsrpt_agg_add(a, &r);
	rec(&r, TLSRPT_STS, sts_text, "mx.example.com", "certificate-expired");
	tlsrpt_agg_add(a, &r);
	tlsrpt_agg_add(a, &r);
	tlsrpt_agg_add(a, &r);
	rec(&r, TLSRPT_STS, sts_text, "mx.example.com",
	    "starttls-not-supported");
	tlsrpt_agg_add(a, &r);
	rec(&r, TLSRPT_TLSA, "3 1 1 AB\"CD", "mx2.example.com",
	    "validation-failure");
	tlsrpt_agg_add(a, &r);
}

static void
test_agg(void)
{
	struct tlsrpt_agg a, b;
	uint64_t ok, failed;
	struct buf enc;

	fill(&a);
	CHECK(a.npol == 2);
	CHECK(a.pol[0].ok == 2 && a.pol[0].failed == 4);
	CHECK(a.pol[0].nfail == 2 && a.pol[0].fail[0].count == 3);
	CHECK(a.pol[1].failed == 1 &&
	      strcmp(a.pol[1].mx, "mx2.example.com") == 0);
	tlsrpt_agg_totals(&a, &ok, &failed);
	CHECK(ok == 2 && failed == 5);
	buf_init(&enc, 1 << 20);
	CHECK(tlsrpt_agg_encode(&a, &enc) == 0);
	memset(&b, 0, sizeof(b));
	CHECK(tlsrpt_agg_decode(
	          &b, (const char *)buf_peek(&enc), buf_avail(&enc)) == 0);
	buf_fini(&enc);
	CHECK(b.npol == 2 && strcmp(b.pol[0].strings, sts_text) == 0);
	CHECK(b.pol[0].fail[0].count == 3 && b.pol[0].ok == 2);
	CHECK(strcmp(b.pol[0].fail[1].result, "starttls-not-supported") == 0);
	CHECK(strcmp(b.pol[1].fail[0].recv_ip, "198.51.100.7") == 0);
	CHECK(tlsrpt_agg_decode(&b, "v1\nX\n", 5) != 0);
	CHECK(tlsrpt_agg_decode(&b, "v1\nF\ta\tb\tc\td\t1\n", 15) != 0);
	CHECK(tlsrpt_agg_decode(&b, "v2\n", 3) != 0);
}

static void
test_agg_caps(void)
{
	static struct tlsrpt_agg a;
	struct tlsrpt_rec r;
	uint64_t ok, failed;

	memset(&a, 0, sizeof(a));
	for (int i = 0; i < TLSRPT_FAIL_MAX + 10; i++) {
		rec(&r, TLSRPT_TLSA, "3 1 1 00", "mx.example.com",
		    "validation-failure");
		snprintf(r.recv_ip, sizeof(r.recv_ip), "10.0.0.%d", i);
		tlsrpt_agg_add(&a, &r);
	}
	CHECK(a.pol[0].nfail == TLSRPT_FAIL_MAX);
	tlsrpt_agg_totals(&a, &ok, &failed);
	CHECK(failed == TLSRPT_FAIL_MAX + 10);
}

static void
test_clean(void)
{
	char s[] = "a\tb\r\nc\x01";

	tlsrpt_clean(s, true);
	CHECK(strcmp(s, "a b \nc ") == 0);
	tlsrpt_clean(s, false);
	CHECK(strcmp(s, "a b  c ") == 0);
}

static void
test_json(void)
{
	struct tlsrpt_agg a;
	struct tlsrpt_who w = {
	    "Org \"Q\"\\", "mailto:tls@example.org", "relay.example.org"};
	struct buf j;
	const char *s;

	fill(&a);
	buf_init(&j, 1 << 20);
	CHECK(tlsrpt_json(&a, 86400, &w, &j) == 0);
	CHECK(buf_append(&j, "", 1) == 0);
	s = (const char *)buf_peek(&j);
	CHECK(strstr(s, "\"organization-name\":\"Org \\\"Q\\\"\\\\\"") != NULL);
	CHECK(strstr(s, "\"start-datetime\":\"2025-12-03T00:00:00Z\"") != NULL);
	CHECK(strstr(s, "\"end-datetime\":\"2025-12-03T23:59:59Z\"") != NULL);
	CHECK(strstr(s, "\"report-id\":\"2025-12-03T00:00:00Z_example.com@"
	                "relay.example.org\"") != NULL);
	CHECK(
	    strstr(s, "\"policy-string\":[\"version: STSv1\",\"mode: "
	              "enforce\",\"mx: mx.example.com\",\"max_age: 86400\"]") !=
	    NULL);
	CHECK(strstr(s, "\"mx-host\":[\"mx.example.com\"]") != NULL);
	CHECK(strstr(s, "\"policy-string\":[\"3 1 1 AB\\\"CD\"]") != NULL);
	CHECK(strstr(s, "\"total-successful-session-count\":2,"
	                "\"total-failure-session-count\":4") != NULL);
	CHECK(strstr(s, "{\"result-type\":\"certificate-expired\","
	                "\"sending-mta-ip\":\"192.0.2.1\","
	                "\"receiving-mx-hostname\":\"mx.example.com\","
	                "\"receiving-ip\":\"198.51.100.7\","
	                "\"failed-session-count\":3}") != NULL);
	CHECK(s[0] == '{' && s[strlen(s) - 1] == '}');
	buf_fini(&j);
}

static void
test_gzip_mail(void)
{
	struct tlsrpt_agg a;
	struct tlsrpt_who w = {"Org", "c", "relay.example.org"};
	const char *text = "{\"x\":1}";
	struct buf gz, mail;
	uint8_t back[64];
	uLongf n = sizeof(back);
	z_stream z;
	const char *s;

	fill(&a);
	buf_init(&gz, 1 << 20);
	CHECK(tlsrpt_gzip(text, strlen(text), &gz) == 0);
	CHECK(buf_avail(&gz) > 18 && buf_peek(&gz)[0] == 0x1f &&
	      buf_peek(&gz)[1] == 0x8b);
	memset(&z, 0, sizeof(z));
	CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
	z.next_in = (Bytef *)(uintptr_t)buf_peek(&gz);
	z.avail_in = (uInt)buf_avail(&gz);
	z.next_out = back;
	z.avail_out = (uInt)n;
	CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
	CHECK(z.total_out == strlen(text) &&
	      memcmp(back, text, z.total_out) == 0);
	inflateEnd(&z);
	buf_init(&mail, 1 << 20);
	struct tlsrpt_mail m = {"tlsrpt@relay.example.org", "rpt@example.com",
	    "abc@relay.example.org", 1764720000000ULL, 86400, buf_peek(&gz),
	    buf_avail(&gz)};
	CHECK(tlsrpt_mail(&a, &w, &m, &mail) == 0);
	CHECK(buf_append(&mail, "", 1) == 0);
	s = (const char *)buf_peek(&mail);
	CHECK(strstr(s, "Subject: Report Domain: example.com Submitter: Org "
	                "Report-ID: <2025-12-03T00:00:00Z_example.com@"
	                "relay.example.org>\r\n") != NULL);
	CHECK(strstr(s, "TLS-Report-Domain: example.com\r\n") != NULL);
	CHECK(strstr(s, "TLS-Report-Submitter: Org\r\n") != NULL);
	CHECK(strstr(s, "multipart/report; report-type=\"tlsrpt\"") != NULL);
	CHECK(strstr(s, "Content-Type: application/tlsrpt+gzip\r\n") != NULL);
	CHECK(strstr(s, "relay.example.org!example.com!1764720000!1764806400"
	                ".json.gz") != NULL);
	buf_fini(&mail);
	buf_fini(&gz);
}

static void
test_templates(void)
{
	static const char mxs[2][256] = {"mx1.example.com", "*.example.com"};
	static const uint8_t h[3] = {0xab, 0x01, 0xff};
	struct dtlsrpt_tlsa t[2] = {{3, 1, 1, h, 3}, {2, 0, 2, h, 1}};
	struct tlsrpt_rec r;

	dtlsrpt_sts(
	    &r, "example.com", "enforce", mxs, 2, 604800, "mx1.example.com");
	CHECK(r.ptype == TLSRPT_STS && strcmp(r.domain, "example.com") == 0);
	CHECK(strcmp(r.strings, "version: STSv1\nmode: enforce\nmx: "
	                        "mx1.example.com\nmx: *.example.com\n"
	                        "max_age: 604800") == 0);
	CHECK(strcmp(r.mx, "mx1.example.com") == 0);
	dtlsrpt_dane(&r, "mx.example.net", t, 2);
	CHECK(
	    r.ptype == TLSRPT_TLSA && strcmp(r.domain, "mx.example.net") == 0);
	CHECK(strcmp(r.strings, "3 1 1 AB01FF\n2 0 2 AB") == 0);
}

static void
test_result_types(void)
{
	struct tlsrpt_rec sts = {.ptype = TLSRPT_STS};
	struct tlsrpt_rec dane = {.ptype = TLSRPT_TLSA};
	char out[TLSRPT_RESULT_MAX];

	dtlsrpt_result_of("x (result=tlsa-invalid)", out, sizeof(out));
	CHECK(strcmp(out, "tlsa-invalid") == 0);
	dtlsrpt_result_of("no type here", out, sizeof(out));
	CHECK(out[0] == '\0');
	dtlsrpt_tls_result(&sts,
	    "handshake failed: certificate verify "
	    "failed: hostname mismatch",
	    NULL, out, sizeof(out));
	CHECK(strcmp(out, "certificate-host-mismatch") == 0);
	dtlsrpt_tls_result(&sts,
	    "certificate verify failed: certificate has "
	    "expired",
	    NULL, out, sizeof(out));
	CHECK(strcmp(out, "certificate-expired") == 0);
	dtlsrpt_tls_result(&sts,
	    "certificate verify failed: unable to get "
	    "local issuer certificate",
	    NULL, out, sizeof(out));
	CHECK(strcmp(out, "certificate-not-trusted") == 0);
	dtlsrpt_tls_result(&dane,
	    "certificate verify failed: unable to get "
	    "local issuer certificate",
	    NULL, out, sizeof(out));
	CHECK(strcmp(out, "validation-failure") == 0);
	dtlsrpt_tls_result(&sts, NULL,
	    "TLS is required, but was not offered "
	    "by host",
	    out, sizeof(out));
	CHECK(strcmp(out, "starttls-not-supported") == 0);
	dtlsrpt_tls_result(&sts, NULL, "421 busy", out, sizeof(out));
	CHECK(out[0] == '\0');
}

static const struct harness_case cases[] = {
    {"txt record parsed", test_txt_ok},
    {"txt record refused", test_txt_bad},
    {"aggregation and its text form", test_agg},
    {"aggregation caps", test_agg_caps},
    {"strings cleaned", test_clean},
    {"json report", test_json},
    {"gzip and mail", test_gzip_mail},
    {"session templates", test_templates},
    {"result types", test_result_types},
};

HARNESS_MAIN(cases)
