/* SPDX-License-Identifier: ISC */
/*
 * sts_policy_test.c - the MTA-STS pure parts: the policy file (RFC 8461
 * 3.2), the _mta-sts TXT record (3.1) and MX pattern matching (4.1).
 */
#include <errno.h>
#include <string.h>

#include "sts/sts_policy.h"
#include "../harness.h"

static int
parse(const char *s, struct sts_policy *p)
{
	char err[128];

	return sts_policy_parse(s, strlen(s), p, err, sizeof(err));
}

static void
test_policy_good(void)
{
	struct sts_policy p;

	CHECK(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com"
	            "\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
	          &p) == 0);
	CHECK(p.mode == STS_MODE_ENFORCE);
	CHECK(p.max_age == 604800);
	CHECK(p.nmx == 2);
	CHECK(strcmp(p.mx[0], "mail.example.com") == 0);
	CHECK(strcmp(p.mx[1], "*.example.net") == 0);
	/* LF lines, no final terminator, blanks, unknown keys, case */
	CHECK(parse("version: STSv1\nmode:testing\nfoo: bar baz\n"
	            "mx:  MX.Example.COM  \nmax_age: 86400",
	          &p) == 0);
	CHECK(p.mode == STS_MODE_TESTING);
	CHECK(strcmp(p.mx[0], "mx.example.com") == 0);
	/* none needs no mx */
	CHECK(parse("version: STSv1\nmode: none\nmax_age: 0\n", &p) == 0);
	CHECK(p.mode == STS_MODE_NONE && p.nmx == 0 && p.max_age == 0);
	/* the first of a repeated key wins */
	CHECK(parse("version: STSv1\nmode: testing\nmode: enforce\n"
	            "mx: a.example\nmax_age: 31557600\n",
	          &p) == 0);
	CHECK(p.mode == STS_MODE_TESTING && p.max_age == 31557600);
}

static void
test_policy_bad(void)
{
	static const char *const bad[] = {
	    "",
	    "mode: enforce\nmx: a.example\nmax_age: 10\n",
	    "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 10\n",
	    "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 10\n",
	    "version: STSv1\nmode: enforce\nmax_age: 10\n",
	    "version: STSv1\nmode: enforce\nmx: a.example\n",
	    "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
	    "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: "
	    "12345678901\n",
	    "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
	    "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
	    "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n",
	    "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n",
	    "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n",
	    "<html><body>not a policy</body></html>",
	};
	struct sts_policy p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(parse(bad[i], &p) == -EINVAL);
}

static void
test_policy_limits(void)
{
	char text[4096] = "version: STSv1\nmode: enforce\nmax_age: 1\n";
	struct sts_policy p;
	char err[64];

	for (int i = 0; i < STS_MX_MAX; i++)
		strcat(text, "mx: a.example\n");
	CHECK(parse(text, &p) == 0 && p.nmx == STS_MX_MAX);
	strcat(text, "mx: a.example\n");
	CHECK(parse(text, &p) == -EINVAL);
	CHECK(sts_policy_parse(
	          text, STS_POLICY_MAX + 1, &p, err, sizeof(err)) == -EINVAL);
}

static void
test_txt(void)
{
	char id[STS_ID_MAX];

	CHECK(sts_txt_parse(
	          "v=STSv1; id=20160831085700Z;", 28, id, sizeof(id)) == 0);
	CHECK(strcmp(id, "20160831085700Z") == 0);
	CHECK(sts_txt_parse("v=STSv1;id=abc", 14, id, sizeof(id)) == 0);
	CHECK(strcmp(id, "abc") == 0);
	CHECK(sts_txt_parse("v=STSv1; ext=1; id=x1 ", 22, id, sizeof(id)) == 0);
	CHECK(strcmp(id, "x1") == 0);
	CHECK(sts_txt_parse("v=spf1 -all", 11, id, sizeof(id)) == -ENOENT);
	CHECK(sts_txt_parse("v=STSv10; id=1", 14, id, sizeof(id)) == -ENOENT);
	CHECK(sts_txt_parse("v=STSv1;", 8, id, sizeof(id)) == -EINVAL);
	CHECK(sts_txt_parse("v=STSv1; id=a-b", 15, id, sizeof(id)) == -EINVAL);
	CHECK(sts_txt_parse("v=STSv1; id=", 12, id, sizeof(id)) == -EINVAL);
	CHECK(sts_txt_parse("v=STSv1; id=012345678901234567890123456789012", 45,
	          id, sizeof(id)) == -EINVAL);
}

static void
test_match(void)
{
	struct sts_policy p = {.nmx = 2};

	CHECK(sts_pattern_match("mail.example.com", "mail.example.com"));
	CHECK(sts_pattern_match("mail.example.com", "MAIL.Example.com."));
	CHECK(!sts_pattern_match("mail.example.com", "mail.example.co"));
	CHECK(!sts_pattern_match("mail.example.com", "xmail.example.com"));
	CHECK(sts_pattern_match("*.example.com", "mx1.example.com"));
	CHECK(sts_pattern_match("*.example.com", "MX1.EXAMPLE.COM."));
	CHECK(!sts_pattern_match("*.example.com", "example.com"));
	CHECK(!sts_pattern_match("*.example.com", "a.b.example.com"));
	CHECK(!sts_pattern_match("*.example.com", ".example.com"));
	CHECK(!sts_pattern_match("*.example.com", "mx1.example.org"));
	CHECK(!sts_pattern_match("*.example.com", "mx1xexample.com"));
	strcpy(p.mx[0], "mx.a.example");
	strcpy(p.mx[1], "*.b.example");
	CHECK(sts_mx_match(&p, "mx.a.example"));
	CHECK(sts_mx_match(&p, "x.b.example"));
	CHECK(!sts_mx_match(&p, "mx.c.example"));
	CHECK(strcmp(sts_mode_name(STS_MODE_ENFORCE), "enforce") == 0);
}

static void
test_result_type(void)
{
	CHECK(strcmp(sts_result_type("handshake failed: certificate verify "
	                             "failed: hostname mismatch",
	                 NULL),
	          "certificate-host-mismatch") == 0);
	CHECK(strcmp(sts_result_type("handshake failed: certificate verify "
	                             "failed: certificate has expired",
	                 NULL),
	          "certificate-expired") == 0);
	CHECK(strcmp(sts_result_type("handshake failed: certificate verify "
	                             "failed: self-signed certificate",
	                 NULL),
	          "certificate-not-trusted") == 0);
	CHECK(strcmp(sts_result_type(
	                 NULL, "TLS is required, but was not offered by host"),
	          "starttls-not-supported") == 0);
	CHECK(sts_result_type(NULL, "connection refused") == NULL);
	CHECK(sts_result_type(NULL, NULL) == NULL);
}

static const struct harness_case cases[] = {
    {"result_type", test_result_type},
    {"policy_good", test_policy_good},
    {"policy_bad", test_policy_bad},
    {"policy_limits", test_policy_limits},
    {"txt", test_txt},
    {"match", test_match},
};

HARNESS_MAIN(cases)
