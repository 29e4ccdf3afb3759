/* SPDX-License-Identifier: ISC */
/*
 * local_msg_test.c - the message of a local submission: line ends, the
 * header section check, recipients from To/Cc/Bcc, Bcc removal, and the
 * maildrop format round trip and its refusals.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/local_msg.h"
#include "../harness.h"

static void
test_crlf(void)
{
	static const struct {
		const char *in;
		bool dot;
		const char *out;
	} t[] = {
	    {"a\nb\n", false, "a\r\nb\r\n"},
	    {"a\r\nb", false, "a\r\nb\r\n"},
	    {"a\rb\r\n", false, "a\r\nb\r\n"},
	    {"a\n.\nb\n", false, "a\r\n.\r\nb\r\n"},
	    {"a\n.\nb\n", true, "a\r\n"},
	    {"a\n.\r\nb\n", true, "a\r\n"},
	    {"a\n..\nb\n", true, "a\r\n..\r\nb\r\n"},
	    {"\n\n", false, "\r\n\r\n"},
	    {"", false, ""},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct buf b;
		int rc;

		buf_init(&b, 1024);
		rc = local_msg_crlf((const uint8_t *)t[i].in, strlen(t[i].in),
		    t[i].dot, &b, NULL);
		if (rc != 0 || buf_avail(&b) != strlen(t[i].out))
			fprintf(stderr, "case %zu\n", i);
		CHECK(rc == 0);
		if (t[i].out[0] != '\0')
			CHECK_MEM(buf_peek(&b), buf_avail(&b), t[i].out);
		else
			CHECK(buf_avail(&b) == 0);
		buf_fini(&b);
	}
}

static void
test_crlf_limit(void)
{
	struct buf b;

	buf_init(&b, 5);
	CHECK(local_msg_crlf((const uint8_t *)"abc\nd\n", 6, false, &b, NULL) ==
	      -ENOBUFS);
	buf_fini(&b);
}

static int
scan(const char *m, struct local_msg_hdrs *h)
{
	char why[256];

	return local_msg_scan(
	    (const uint8_t *)m, strlen(m), h, why, sizeof(why));
}

static void
test_scan(void)
{
	struct local_msg_hdrs h;
	const char *m = "From: a@b\r\nSubject: x\r\n y\r\n\r\nbody\r\n";
	char long_line[1100];

	CHECK(scan(m, &h) == 0);
	CHECK(h.from && !h.date && !h.msgid && h.blank);
	CHECK(h.end == strlen("From: a@b\r\nSubject: x\r\n y\r\n"));
	/* no header section at all: all body */
	CHECK(scan("just text\r\nmore\r\n", &h) == 0);
	CHECK(h.end == 0 && !h.blank);
	/* a broken line inside the header section */
	CHECK(scan("Subject: x\r\nnot a field\r\n\r\n", &h) == -EINVAL);
	CHECK(scan("Sub ject: x\r\n\r\n", &h) == 0 && h.end == 0);
	/* mbox separator dropped; Received counted */
	CHECK(scan("From me Mon\r\nReceived: x\r\nReceived: y\r\n\r\nb\r\n",
	          &h) == 0);
	CHECK(h.skip == strlen("From me Mon\r\n") && h.rcvd == 2);
	/* 998 characters is the limit */
	memset(long_line, 'x', sizeof(long_line));
	memcpy(long_line, "Subject: ", 9);
	memcpy(long_line + 998, "\r\n", 3);
	CHECK(scan(long_line, &h) == 0);
	memcpy(long_line + 999, "\r\n", 3);
	CHECK(scan(long_line, &h) == -EINVAL);
}

struct got {
	char all[1024];
};

static int
collect(void *arg, const char *addr)
{
	struct got *g = arg;

	strcat(g->all, addr);
	strcat(g->all, "|");
	return 0;
}

static void
test_rcpts(void)
{
	const char *m =
	    "To: Alice <alice@a>, bob@b (Bob), \"Smith, J\" <js@c>\r\n"
	    "Subject: To: not@me\r\n"
	    "Cc: team: x@d, <y@e>;, (c) z@f\r\n"
	    "Bcc: hidden@g,\r\n"
	    "\t\"q u\"@h\r\n"
	    "Resent-To: no@i\r\n"
	    "cc: undisclosed-recipients:;\r\n"
	    "To: <@route.x:routed@j>\r\n";
	struct got g = {{0}};

	CHECK(local_msg_rcpts((const uint8_t *)m, strlen(m), collect, &g) == 0);
	CHECK(strcmp(g.all, "alice@a|bob@b|js@c|x@d|y@e|z@f|hidden@g|"
	                    "\"q u\"@h|routed@j|") == 0);
}

static void
test_rewrite(void)
{
	const char *m = "From x\r\nTo: a@b\r\nBcc: s@c,\r\n t@d\r\n"
	                "Subject: s\r\n\r\nBcc: body\r\n";
	const char *want = "To: a@b\r\nSubject: s\r\nDate: d\r\n\r\n"
	                   "Bcc: body\r\n";
	struct local_msg_hdrs h;
	struct buf b;

	CHECK(scan(m, &h) == 0);
	buf_init(&b, 4096);
	CHECK(local_msg_rewrite(
	          (const uint8_t *)m, strlen(m), &h, "Date: d\r\n", &b) == 0);
	CHECK_MEM(buf_peek(&b), buf_avail(&b), want);
	buf_reset(&b);
	/* no header section: the fields and a blank line go first */
	CHECK(scan("body only\r\n", &h) == 0);
	CHECK(local_msg_rewrite((const uint8_t *)"body only\r\n", 11, &h,
	          "From: f\r\n", &b) == 0);
	CHECK_MEM(buf_peek(&b), buf_avail(&b), "From: f\r\n\r\nbody only\r\n");
	buf_fini(&b);
}

static void
test_drop_roundtrip(void)
{
	char *rcpts[] = {"a@b", "c@d"};
	struct local_msg_drop d;
	struct buf b;
	char why[128];

	buf_init(&b, 4096);
	CHECK(local_msg_drop_encode(
	          "", rcpts, 2, (const uint8_t *)"M\r\n", 3, &b) == 0);
	CHECK(local_msg_drop_decode(
	          buf_peek(&b), buf_avail(&b), 10, &d, why, sizeof(why)) == 0);
	CHECK(strcmp(d.from, "") == 0 && d.nrcpts == 2);
	CHECK(strcmp(d.rcpts[1], "c@d") == 0);
	CHECK_MEM(d.msg, d.len, "M\r\n");
	local_msg_drop_fini(&d);
	/* the recipient cap */
	CHECK(local_msg_drop_decode(buf_peek(&b), buf_avail(&b), 1, &d, why,
	          sizeof(why)) == -EINVAL);
	local_msg_drop_fini(&d);
	buf_fini(&b);
	/* a control character never gets into the file */
	buf_init(&b, 4096);
	rcpts[0] = "a\n@b";
	CHECK(local_msg_drop_encode("", rcpts, 1, (const uint8_t *)"", 0, &b) ==
	      -EINVAL);
	buf_fini(&b);
}

static void
test_drop_refusals(void)
{
	static const char *const bad[] = {
	    "",
	    "MTA-MAILDROP 2\nF <a@b>\nR <c@d>\n\nx",
	    "MTA-MAILDROP 1\nR <c@d>\n\nx",
	    "MTA-MAILDROP 1\nF <a@b>\n\nx",
	    "MTA-MAILDROP 1\nF <a@b>\nR <c@d>\n",
	    "MTA-MAILDROP 1\nF <a@b>\nR c@d\n\nx",
	    "MTA-MAILDROP 1\nF <a@b>\nR <c<@d>\n\nx",
	    "MTA-MAILDROP 1\nF <a@b>\nF <a@b>\nR <c@d>\n\nx",
	    "MTA-MAILDROP 1\nF <a@b>\nX <c@d>\n\nx",
	};
	struct local_msg_drop d;
	char why[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = local_msg_drop_decode((const uint8_t *)bad[i],
		    strlen(bad[i]), 10, &d, why, sizeof(why));

		local_msg_drop_fini(&d);
		if (rc != -EINVAL)
			fprintf(stderr, "case %zu decoded\n", i);
		CHECK(rc == -EINVAL);
	}
}

static const struct harness_case cases[] = {
    {"crlf", test_crlf},
    {"crlf_limit", test_crlf_limit},
    {"scan", test_scan},
    {"rcpts", test_rcpts},
    {"rewrite", test_rewrite},
    {"drop_roundtrip", test_drop_roundtrip},
    {"drop_refusals", test_drop_refusals},
};

HARNESS_MAIN(cases)
