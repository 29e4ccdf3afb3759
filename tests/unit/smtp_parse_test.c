/* SPDX-License-Identifier: ISC */
/*
 * smtp_parse_test.c - table-driven tests of the pure SMTP parsers:
 * command split, MAIL/RCPT paths and parameters, RFC 5321 limits at the
 * limit and one past, base64 and xtext.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp_parse.h"
#include "../harness.h"

static void
test_command_split(void)
{
	static const struct {
		const char *line;
		bool ok;
		const char *verb, *arg;
	} rows[] = {
	    {"MAIL FROM:<a@b.c>", true, "MAIL", "FROM:<a@b.c>"},
	    {"ehlo  client.example  ", true, "ehlo", "client.example"},
	    {"NOOP", true, "NOOP", ""},
	    {"QUIT ", true, "QUIT", ""},
	    {"STARTTLS", true, "STARTTLS", ""},
	    {"AUTH PLAIN AGEAYg==", true, "AUTH", "PLAIN AGEAYg=="},
	    {"", false, NULL, NULL},
	    {" MAIL FROM:<a@b>", false, NULL, NULL},
	    {"MA-IL x", false, NULL, NULL},
	    {"1MAIL", false, NULL, NULL},
	    {"ABCDEFGHIJKLMNOPQ", false, NULL, NULL},
	};
	struct smtp_parse_cmd c;

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		bool ok =
		    smtp_parse_command(rows[i].line, strlen(rows[i].line), &c);

		CHECK(ok == rows[i].ok);
		if (!ok)
			continue;
		CHECK_MEM(c.verb, c.verblen, rows[i].verb);
		CHECK_MEM(c.arg, c.arglen, rows[i].arg);
	}
	CHECK(smtp_parse_command("rcpt TO:<a@b>", 13, &c));
	CHECK(smtp_parse_verb_is(&c, "RCPT"));
	CHECK(!smtp_parse_verb_is(&c, "RCP"));
}

struct path_row {
	const char *arg;
	enum smtp_parse_status st;
	const char *addr; /* expected mailbox when OK */
};

static void
test_mail(void)
{
	static const struct path_row rows[] = {
	    {"FROM:<a@b.example>", SMTP_PARSE_OK, "a@b.example"},
	    {"from:<a@b.example>", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM: <a@b.example>", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<>", SMTP_PARSE_OK, ""},
	    {"FROM:<> SIZE=10", SMTP_PARSE_OK, ""},
	    {"FROM:a@b.example", SMTP_PARSE_SYNTAX, NULL},
	    {"FROM:<a@b.example", SMTP_PARSE_SYNTAX, NULL},
	    {"FROM<a@b.example>", SMTP_PARSE_SYNTAX, NULL},
	    {"TO:<a@b.example>", SMTP_PARSE_SYNTAX, NULL},
	    {"FROM:<a@b.example>x", SMTP_PARSE_SYNTAX, NULL},
	    {"FROM:<a@b.example> SIZE=100", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example>  size=100  ", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example> SIZE=", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> SIZE", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> SIZE=1x", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> SIZE=123456789012345678901",
	        SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> SIZE=1 SIZE=2", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> BODY=8BITMIME", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example> BODY=7bit", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example> BODY=BINARYMIME", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> SMTPUTF8", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example> SMTPUTF8=yes", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> AUTH=<>", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example> AUTH=user+2Bx@b.example", SMTP_PARSE_OK,
	        "a@b.example"},
	    {"FROM:<a@b.example> AUTH=us+zz", SMTP_PARSE_PARAM_BAD, NULL},
	    {"FROM:<a@b.example> FOO=bar", SMTP_PARSE_PARAM_UNKNOWN, NULL},
	    {"FROM:<a@b.example> RET=HDRS", SMTP_PARSE_OK, "a@b.example"},
	    {"FROM:<a@b.example> =x", SMTP_PARSE_SYNTAX, NULL},
	    {"FROM:<\"a b\"@b.example>", SMTP_PARSE_OK, "\"a b\"@b.example"},
	    {"FROM:<\"a>b\"@b.example>", SMTP_PARSE_OK, "\"a>b\"@b.example"},
	    {"FROM:<\"a\\\"b\"@b.example>", SMTP_PARSE_OK,
	        "\"a\\\"b\"@b.example"},
	    {"FROM:<\"ab@b.example>", SMTP_PARSE_SYNTAX, NULL},
	    {"FROM:<a.b+c@b.example>", SMTP_PARSE_OK, "a.b+c@b.example"},
	    {"FROM:<a..b@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<.a@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a.@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a b@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@b@c.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@[192.0.2.1]>", SMTP_PARSE_OK, "a@[192.0.2.1]"},
	    {"FROM:<a@[IPv6:2001:db8::1]>", SMTP_PARSE_OK,
	        "a@[IPv6:2001:db8::1]"},
	    {"FROM:<a@[192.0.2]>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@[IPv6:192.0.2.1]>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@[2001:db8::1]>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@[tag:foo]>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@-b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@b-.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@b..example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@b.example.>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@b_c.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<a@x-1.example>", SMTP_PARSE_OK, "a@x-1.example"},
	    {"FROM:<@r1.example,@r2.example:a@b.example>", SMTP_PARSE_OK,
	        "a@b.example"},
	    {"FROM:<@r1.example a@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<\xc3\xbc@b.example>", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<\xc3\xbc@b.example> SMTPUTF8", SMTP_PARSE_OK,
	        "\xc3\xbc@b.example"},
	    {"FROM:<a@b\xc3\xbc.example> SMTPUTF8", SMTP_PARSE_OK,
	        "a@b\xc3\xbc.example"},
	    /* overlong '/', a surrogate, a lone continuation byte */
	    {"FROM:<\xc0\xaf@b.example> SMTPUTF8", SMTP_PARSE_ADDRESS, NULL},
	    {"FROM:<\xed\xa0\x80@b.example> SMTPUTF8", SMTP_PARSE_ADDRESS,
	        NULL},
	    {"FROM:<\x80@b.example> SMTPUTF8", SMTP_PARSE_ADDRESS, NULL},
	};
	struct smtp_parse_path p;
	const char *all;

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		enum smtp_parse_status st =
		    smtp_parse_mail(rows[i].arg, strlen(rows[i].arg), &p);

		if (st != rows[i].st)
			fprintf(stderr, "row %zu: %s -> %d\n", i, rows[i].arg,
			    (int)st);
		CHECK(st == rows[i].st);
		if (st == SMTP_PARSE_OK)
			CHECK_MEM(p.addr, p.addrlen, rows[i].addr);
	}
	all = "FROM:<a@b.example> SIZE=12345 BODY=8BITMIME SMTPUTF8 AUTH=<>";
	CHECK(smtp_parse_mail(all, strlen(all), &p) == SMTP_PARSE_OK);
	CHECK(p.has_size && p.size == 12345);
	CHECK(p.body == SMTP_PARSE_BODY_8BITMIME && p.smtputf8 && p.has_auth);
	CHECK(smtp_parse_mail("FROM:<a@b.example>", 18, &p) == SMTP_PARSE_OK);
	CHECK(!p.has_size && p.body == SMTP_PARSE_BODY_NONE && !p.smtputf8);
	CHECK(smtp_parse_mail("FROM:<a@b.example> SIZE=18446744073709551615",
	          44, &p) == SMTP_PARSE_OK);
	CHECK(p.size == UINT64_MAX);
	/* A line may hold NUL: it is never a terminator. */
	CHECK(smtp_parse_mail("FROM:<a\0b@c.example>", 20, &p) ==
	      SMTP_PARSE_ADDRESS);
}

static void
test_rcpt(void)
{
	static const struct {
		const char *arg;
		bool utf8;
		enum smtp_parse_status st;
	} rows[] = {
	    {"TO:<r@x.example>", false, SMTP_PARSE_OK},
	    {"to: <r@x.example>", false, SMTP_PARSE_OK},
	    {"TO:<>", false, SMTP_PARSE_ADDRESS},
	    {"TO:<postmaster>", false, SMTP_PARSE_ADDRESS},
	    {"FROM:<r@x.example>", false, SMTP_PARSE_SYNTAX},
	    {"TO:<r@x.example> NOTIFY=NEVER", false, SMTP_PARSE_OK},
	    {"TO:<r@x.example> SIZE=1", false, SMTP_PARSE_PARAM_UNKNOWN},
	    {"TO:<r@x.example> SMTPUTF8", false, SMTP_PARSE_PARAM_UNKNOWN},
	    {"TO:<\xc3\xbc@x.example>", false, SMTP_PARSE_ADDRESS},
	    {"TO:<\xc3\xbc@x.example>", true, SMTP_PARSE_OK},
	};
	struct smtp_parse_path p;

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++)
		CHECK(smtp_parse_rcpt(rows[i].arg, strlen(rows[i].arg),
		          rows[i].utf8, &p) == rows[i].st);
	CHECK(smtp_parse_rcpt("TO:<r@x.example>", 16, false, &p) == 0);
	CHECK_MEM(p.addr, p.addrlen, "r@x.example");
}

static void
test_addr_literal(void)
{
	static const struct {
		const char *addr;
		bool lit;
	} rows[] = {
	    {"r@x.example", false},
	    {"r@[192.0.2.1]", true},
	    {"r@[IPv6:::1]", true},
	    {"\"a@[b]\"@x.example", false},
	    {"\"a@b\"@[10.0.0.1]", true},
	    {"r@", false},
	    {"r", false},
	};

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++)
		CHECK(smtp_parse_addr_literal(
		          rows[i].addr, strlen(rows[i].addr)) == rows[i].lit);
}

/* A domain of exactly n octets: 63-octet labels, then the remainder. */
static size_t
make_domain(char *d, size_t n)
{
	size_t i = 0, label = 0;

	while (i < n) {
		/* Never end on a dot, never make a label over 63. */
		if (label == 63 && n - i >= 2) {
			d[i++] = '.';
			label = 0;
			continue;
		}
		d[i++] = 'a';
		label++;
	}
	d[i] = '\0';
	return i;
}

static void
test_limits(void)
{
	char box[600], arg[700], dom[300];
	struct smtp_parse_path p;
	size_t n;

	/* local part: 64 ok, 65 too long */
	memset(box, 'l', 64);
	strcpy(box + 64, "@x.example");
	CHECK(smtp_parse_mailbox(box, strlen(box), false) == SMTP_PARSE_OK);
	memset(box, 'l', 65);
	strcpy(box + 65, "@x.example");
	CHECK(
	    smtp_parse_mailbox(box, strlen(box), false) == SMTP_PARSE_TOOLONG);

	/* domain: 255 ok, 256 too long */
	CHECK(make_domain(dom, 255) == 255);
	snprintf(box, sizeof(box), "a@%s", dom);
	CHECK(smtp_parse_mailbox(box, strlen(box), false) == SMTP_PARSE_OK);
	CHECK(make_domain(dom, 256) == 256);
	snprintf(box, sizeof(box), "a@%s", dom);
	CHECK(
	    smtp_parse_mailbox(box, strlen(box), false) == SMTP_PARSE_TOOLONG);
	/* a 64-octet label */
	memset(dom, 'a', 64);
	strcpy(dom + 64, ".example");
	snprintf(box, sizeof(box), "a@%s", dom);
	CHECK(
	    smtp_parse_mailbox(box, strlen(box), false) == SMTP_PARSE_ADDRESS);

	/* path with <>: 256 ok, 257 too long (local 64 + @ + domain) */
	n = make_domain(dom, 256 - 2 - 65);
	memset(box, 'l', 64);
	snprintf(box + 64, sizeof(box) - 64, "@%s", dom);
	CHECK(strlen(box) + 2 == 256);
	snprintf(arg, sizeof(arg), "FROM:<%s>", box);
	CHECK(smtp_parse_mail(arg, strlen(arg), &p) == SMTP_PARSE_OK);
	CHECK(p.addrlen == 254);
	n = make_domain(dom, n + 1);
	snprintf(box + 64, sizeof(box) - 64, "@%s", dom);
	snprintf(arg, sizeof(arg), "TO:<%s>", box);
	CHECK(
	    smtp_parse_rcpt(arg, strlen(arg), false, &p) == SMTP_PARSE_TOOLONG);
}

static void
test_base64(void)
{
	static const struct {
		const char *in;
		int ret;
		const char *out;
		size_t outlen;
	} rows[] = {
	    {"", 0, "", 0},
	    {"YQ==", 1, "a", 1},
	    {"YWI=", 2, "ab", 2},
	    {"YWJj", 3, "abc", 3},
	    {"AHVzZXIAcGFzcw==", 10, "\0user\0pass", 10},
	    {"YQ=", -EINVAL, NULL, 0},
	    {"YQ", -EINVAL, NULL, 0},
	    {"Y Q==", -EINVAL, NULL, 0},
	    {"YQ==\r\n", -EINVAL, NULL, 0},
	    {"YR==", -EINVAL, NULL, 0}, /* non-zero pad bits */
	    {"YWJ=", -EINVAL, NULL, 0},
	    {"YQ==YQ==", -EINVAL, NULL, 0},
	    {"=AAA", -EINVAL, NULL, 0},
	    {"Y=Q=", -EINVAL, NULL, 0},
	    {"YW-j", -EINVAL, NULL, 0},
	    {"YW_j", -EINVAL, NULL, 0},
	};
	uint8_t out[64], raw[256];
	char enc[400];
	int n;

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		n = smtp_parse_base64(
		    rows[i].in, strlen(rows[i].in), out, sizeof(out));
		CHECK(n == rows[i].ret);
		if (n >= 0)
			CHECK(memcmp(out, rows[i].out, rows[i].outlen) == 0);
	}
	CHECK(smtp_parse_base64("YWJj", 4, out, 2) == -ENOBUFS);
	for (size_t len = 0; len < sizeof(raw); len++) {
		for (size_t i = 0; i < len; i++)
			raw[i] = (uint8_t)(i * 37 + len);
		smtp_parse_base64_encode(raw, len, enc);
		CHECK(strlen(enc) == smtp_parse_base64_len(len));
		n = smtp_parse_base64(
		    enc, strlen(enc), (uint8_t *)enc + 350, 0);
		CHECK(len == 0 ? n == 0 : n == -ENOBUFS);
		{
			uint8_t dec[256];

			n = smtp_parse_base64(
			    enc, strlen(enc), dec, sizeof(dec));
			CHECK(n == (int)len && memcmp(dec, raw, len) == 0);
		}
	}
}

static void
test_xtext(void)
{
	CHECK(smtp_parse_xtext("abc", 3));
	CHECK(smtp_parse_xtext("a+2Bb", 5));
	CHECK(smtp_parse_xtext("", 0));
	CHECK(!smtp_parse_xtext("a+2b", 4));
	CHECK(!smtp_parse_xtext("a+2", 3));
	CHECK(!smtp_parse_xtext("a=b", 3));
	CHECK(!smtp_parse_xtext("a b", 3));
	CHECK(!smtp_parse_xtext("a\x80", 2));
}

/* DSN (RFC 3461) on MAIL: RET and ENVID, every 501 case. */
static void
test_dsn_mail(void)
{
	static const struct {
		const char *arg;
		enum smtp_parse_status st;
		enum smtp_parse_ret ret;
		const char *envid;
	} rows[] = {
	    {"FROM:<a@b.example> RET=FULL", 0, SMTP_PARSE_RET_FULL, NULL},
	    {"FROM:<a@b.example> ret=hdrs", 0, SMTP_PARSE_RET_HDRS, NULL},
	    {"FROM:<> RET=HDRS ENVID=QQ+2B1", 0, SMTP_PARSE_RET_HDRS, "QQ+2B1"},
	    {"FROM:<a@b.example> ENVID=a+20b", 0, 0, "a+20b"},
	    {"FROM:<a@b.example> RET=NONE", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> RET", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> RET=", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> RET=FULL RET=FULL", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	    {"FROM:<a@b.example> RET=FULL RET=HDRS", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	    {"FROM:<a@b.example> ENVID", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> ENVID=a+2", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> ENVID=a+2g", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> ENVID=a+2a", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> ENVID=a\x80", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"FROM:<a@b.example> ENVID=x ENVID=x", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	};
	struct smtp_parse_path p;
	char arg[300];

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		enum smtp_parse_status st =
		    smtp_parse_mail(rows[i].arg, strlen(rows[i].arg), &p);

		CHECK(st == rows[i].st);
		if (st != SMTP_PARSE_OK)
			continue;
		CHECK(p.ret == rows[i].ret);
		if (rows[i].envid != NULL)
			CHECK_MEM(p.envid, p.envidlen, rows[i].envid);
		else
			CHECK(p.envid == NULL && p.envidlen == 0);
	}
	/* ENVID: 100 characters of xtext, not 101 */
	memset(arg, 0, sizeof(arg));
	strcpy(arg, "FROM:<a@b.example> ENVID=");
	memset(arg + strlen(arg), 'e', 100);
	CHECK(smtp_parse_mail(arg, strlen(arg), &p) == SMTP_PARSE_OK);
	CHECK(p.envidlen == 100);
	arg[strlen(arg)] = 'e';
	CHECK(smtp_parse_mail(arg, strlen(arg), &p) == SMTP_PARSE_PARAM_BAD);
	/* a plain MAIL has none of them */
	CHECK(smtp_parse_mail("FROM:<a@b.example>", 18, &p) == 0);
	CHECK(p.ret == SMTP_PARSE_RET_NONE && p.envid == NULL);
}

/* DSN on RCPT: NOTIFY and ORCPT, every 501 case. */
static void
test_dsn_rcpt(void)
{
	static const struct {
		const char *arg;
		enum smtp_parse_status st;
		uint8_t notify;
		const char *orcpt;
	} rows[] = {
	    {"TO:<r@x.example> NOTIFY=NEVER", 0, SMTP_PARSE_NOTIFY_NEVER, NULL},
	    {"TO:<r@x.example> NOTIFY=success", 0, SMTP_PARSE_NOTIFY_SUCCESS,
	        NULL},
	    {"TO:<r@x.example> NOTIFY=SUCCESS,FAILURE,DELAY", 0,
	        SMTP_PARSE_NOTIFY_SUCCESS | SMTP_PARSE_NOTIFY_FAILURE |
	            SMTP_PARSE_NOTIFY_DELAY,
	        NULL},
	    {"TO:<r@x.example> NOTIFY=DELAY,FAILURE ORCPT=rfc822;r+40x.example",
	        0, SMTP_PARSE_NOTIFY_DELAY | SMTP_PARSE_NOTIFY_FAILURE,
	        "rfc822;r+40x.example"},
	    {"TO:<r@x.example> ORCPT=rfc822;o@x.example", 0, 0,
	        "rfc822;o@x.example"},
	    {"TO:<r@x.example> ORCPT=utf-8;a;b", 0, 0, "utf-8;a;b"},
	    {"TO:<r@x.example> NOTIFY", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> NOTIFY=", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> NOTIFY=NEVER,SUCCESS", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	    {"TO:<r@x.example> NOTIFY=FAILURE,NEVER", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	    {"TO:<r@x.example> NOTIFY=SUCCESS,SUCCESS", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	    {"TO:<r@x.example> NOTIFY=SUCCESS,", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> NOTIFY=,SUCCESS", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> NOTIFY=ALWAYS", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> NOTIFY=NEVER NOTIFY=NEVER", SMTP_PARSE_PARAM_BAD,
	        0, NULL},
	    {"TO:<r@x.example> ORCPT", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> ORCPT=rfc822", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> ORCPT=rfc822;", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> ORCPT=;a@b", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> ORCPT=rf(c;a@b", SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> ORCPT=rfc822;a+zz", SMTP_PARSE_PARAM_BAD, 0,
	        NULL},
	    {"TO:<r@x.example> ORCPT=rfc822;a ORCPT=rfc822;a",
	        SMTP_PARSE_PARAM_BAD, 0, NULL},
	    {"TO:<r@x.example> RET=FULL", SMTP_PARSE_PARAM_UNKNOWN, 0, NULL},
	};
	struct smtp_parse_path p;
	char arg[700];
	size_t n;

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		enum smtp_parse_status st = smtp_parse_rcpt(
		    rows[i].arg, strlen(rows[i].arg), false, &p);

		CHECK(st == rows[i].st);
		if (st != SMTP_PARSE_OK)
			continue;
		CHECK(p.notify == rows[i].notify);
		if (rows[i].orcpt != NULL)
			CHECK_MEM(p.orcpt, p.orcptlen, rows[i].orcpt);
		else
			CHECK(p.orcpt == NULL);
	}
	/* ORCPT: 500 characters, not 501 */
	memset(arg, 0, sizeof(arg));
	strcpy(arg, "TO:<r@x.example> ORCPT=rfc822;");
	n = strlen(arg);
	memset(arg + n, 'o', 500 - strlen("rfc822;"));
	CHECK(smtp_parse_rcpt(arg, strlen(arg), false, &p) == SMTP_PARSE_OK);
	CHECK(p.orcptlen == 500);
	arg[strlen(arg)] = 'o';
	CHECK(smtp_parse_rcpt(arg, strlen(arg), false, &p) ==
	      SMTP_PARSE_PARAM_BAD);
}

/* The DATA fast path: whole CRLF lines, no dot at the start, no bare CR
 * or LF, none over the limit; it stops before the first that is not. */
static void
test_plain_lines(void)
{
	static const struct {
		const char *in;
		size_t max, want;
	} t[] = {
	    {"", 1000, 0},
	    {"abc", 1000, 0}, /* no line end yet */
	    {"abc\r\n", 1000, 5},
	    {"abc\r\ndef\r\nxy", 1000, 10}, /* partial tail left */
	    {"\r\n\r\n", 1000, 4},          /* empty lines */
	    {".\r\n", 1000, 0},             /* the end, or stuffed */
	    {"a\r\n..b\r\n", 1000, 3},
	    {"a\nb\r\n", 1000, 0}, /* bare LF */
	    {"a\rb\r\n", 1000, 0}, /* bare CR */
	    {"ab\r\nc\r\r\n", 1000, 4},
	    {"\n", 1000, 0},
	    {"abc\r\n", 5, 5}, /* at the limit */
	    {"abc\r\n", 4, 0}, /* one past */
	    {"ab\r\nabcd\r\n", 5, 4},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK(smtp_parse_plain_lines((const uint8_t *)t[i].in,
		          strlen(t[i].in), t[i].max) == t[i].want);
}

/* BDAT's argument (RFC 3030): a count, then LAST or nothing. */
static void
test_bdat(void)
{
	static const struct {
		const char *in;
		bool ok;
		uint64_t size;
		bool last;
	} t[] = {
	    {"0", true, 0, false},
	    {"0 LAST", true, 0, true},
	    {"1000", true, 1000, false},
	    {"1000 last", true, 1000, true},
	    {"12  LaSt", true, 12, true},
	    {"18446744073709551615", true, UINT64_MAX, false},
	    {"18446744073709551616", false, 0, false}, /* overflow */
	    {"99999999999999999999 LAST", false, 0, false},
	    {"", false, 0, false},
	    {"LAST", false, 0, false},
	    {"-1", false, 0, false},
	    {"+1", false, 0, false},
	    {"1x", false, 0, false},
	    {"1 LASTX", false, 0, false},
	    {"1 LAS", false, 0, false},
	    {"1 LAST x", false, 0, false},
	    {"1\tLAST", false, 0, false},
	    {"0x10", false, 0, false},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t size = 7;
		bool last = false;
		bool ok =
		    smtp_parse_bdat(t[i].in, strlen(t[i].in), &size, &last);

		CHECK(ok == t[i].ok);
		if (ok)
			CHECK(size == t[i].size && last == t[i].last);
	}
}

static const struct harness_case cases[] = {
    {"command_split", test_command_split},
    {"mail", test_mail},
    {"rcpt", test_rcpt},
    {"addr_literal", test_addr_literal},
    {"limits", test_limits},
    {"base64", test_base64},
    {"xtext", test_xtext},
    {"dsn_mail", test_dsn_mail},
    {"dsn_rcpt", test_dsn_rcpt},
    {"plain_lines", test_plain_lines},
    {"bdat", test_bdat},
};

HARNESS_MAIN(cases)
