/* SPDX-License-Identifier: ISC */
/*
 * dsn_test.c - the RFC 3464 builder: exact output for a known input, then
 * each property on its own (fields, CRLF and line lengths, folding,
 * several recipients, the headers part, boundary collisions, hostile
 * reply text), and the small pure helpers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "deliver/dsn.h"
#include "../harness.h"

/* 2026-11-22 10:00:00 UTC and a little later */
#define T_RECV 1795341600000ull
#define T_TRY  1795341661000ull
#define T_NOW  1795341662000ull

static const char HDRS[] =
    "Received: from c.test (rdns-less [127.0.0.1])\r\n"
    "\tby relay.test (mta) with ESMTP id 00000000000000aa\r\n"
    "\tfor <b@y.test>; Sun, 22 Nov 2026 10:00:00 +0000\r\n"
    "From: <a@x.test>\r\n"
    "To: <b@y.test>\r\n"
    "Subject: hello\r\n";
static const char BODY[] = "\r\nthe body, never in a DSN\r\n";

static struct dsn_rcpt
rcpt_failed(const char *addr)
{
	struct dsn_rcpt r = {
	    .addr = addr,
	    .action = DSN_ACTION_FAILED,
	    .status = "5.1.1",
	    .reply = "550 5.1.1 no such user",
	    .relay = "mx.y.test[127.0.0.2]:25",
	    .last_attempt_ms = T_TRY,
	};

	return r;
}

static struct dsn_msg
msg_of(const struct dsn_rcpt *r, size_t n)
{
	struct dsn_msg m = {
	    .hostname = "relay.test",
	    .orig_id = 0xaa,
	    .orig_from = "a@x.test",
	    .received_ms = T_RECV,
	    .dsn_id = 0xbb,
	    .now_ms = T_NOW,
	    .headers = (const uint8_t *)HDRS,
	    .headers_len = sizeof(HDRS) - 1,
	    .rcpts = r,
	    .nrcpts = n,
	};

	return m;
}

/* Build into a NUL-terminated string (the output never holds NUL);
 * NULL on failure. The caller frees. */
static char *
build(const struct dsn_msg *m)
{
	struct buf b;
	char *s;

	buf_init(&b, 1 << 20);
	if (dsn_build(m, &b) != 0) {
		buf_fini(&b);
		return NULL;
	}
	s = calloc(1, buf_avail(&b) + 1);
	memcpy(s, buf_peek(&b), buf_avail(&b));
	buf_fini(&b);
	return s;
}

static size_t
count(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* Every line ends in CRLF, no bare CR or LF, no line over 998 octets. */
static int
lines_ok(const char *s)
{
	size_t col = 0;

	for (const char *p = s; *p; p++) {
		if (*p == '\r') {
			if (p[1] != '\n')
				return 0;
			p++;
			col = 0;
		} else if (*p == '\n') {
			return 0;
		} else if (++col > DSN_LINE_MAX) {
			return 0;
		}
	}
	return col == 0;
}

/* The whole message for one failed recipient, byte for byte. */
static void
test_exact(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *s = build(&m);
	const char *want =
	    "From: Mail Delivery System <MAILER-DAEMON@relay.test>\r\n"
	    "To: <a@x.test>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: Sun, 22 Nov 2026 10:01:02 +0000\r\n"
	    "Message-ID: <00000000000000bb.00000000000000aa.dsn@relay.test>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"=_mta-dsn-00000000000000bb-0\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n"
	    "--=_mta-dsn-00000000000000bb-0\r\n"
	    "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "This is the mail delivery system at relay.test.\r\n"
	    "\r\n"
	    "Your message could not be delivered to the recipients listed "
	    "below.\r\n"
	    "This is a permanent error: the mail system has given up on "
	    "them.\r\n"
	    "\r\n"
	    "The message was received on Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	    "with queue id 00000000000000aa. Its headers are attached.\r\n"
	    "\r\n"
	    "<b@y.test>: delivery failed (5.1.1)\r\n"
	    "    host mx.y.test[127.0.0.2]:25 said: 550 5.1.1 no such user\r\n"
	    "\r\n"
	    "--=_mta-dsn-00000000000000bb-0\r\n"
	    "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; relay.test\r\n"
	    "X-Mta-Queue-ID: 00000000000000aa\r\n"
	    "Arrival-Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	    "\r\n"
	    "Final-Recipient: rfc822; b@y.test\r\n"
	    "Action: failed\r\n"
	    "Status: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.y.test\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
	    "Last-Attempt-Date: Sun, 22 Nov 2026 10:01:01 +0000\r\n"
	    "\r\n"
	    "--=_mta-dsn-00000000000000bb-0\r\n"
	    "Content-Description: Undelivered Message Headers\r\n"
	    "Content-Type: text/rfc822-headers\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "Received: from c.test (rdns-less [127.0.0.1])\r\n"
	    "\tby relay.test (mta) with ESMTP id 00000000000000aa\r\n"
	    "\tfor <b@y.test>; Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	    "From: <a@x.test>\r\n"
	    "To: <b@y.test>\r\n"
	    "Subject: hello\r\n"
	    "\r\n"
	    "--=_mta-dsn-00000000000000bb-0--\r\n";

	CHECK(s != NULL);
	if (strcmp(s, want) != 0)
		fprintf(stderr, "got:\n%s\n", s);
	CHECK(strcmp(s, want) == 0);
	CHECK(lines_ok(s));
	free(s);
}

/* Top-level structure: headers, one boundary used three times and
 * closed once, the three parts in RFC 6522 order. */
static void
test_structure(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *s = build(&m);
	const char *text, *status, *hdrs;

	CHECK(s != NULL);
	CHECK(strncmp(s,
	          "From: Mail Delivery System "
	          "<MAILER-DAEMON@relay.test>\r\n",
	          54) == 0);
	CHECK(strstr(s, "\r\nAuto-Submitted: auto-replied\r\n") != NULL);
	CHECK(strstr(s, "\r\nMIME-Version: 1.0\r\n") != NULL);
	CHECK(strstr(s, "\r\nTo: <a@x.test>\r\n") != NULL);
	CHECK(
	    strstr(s, "\r\nContent-Type: multipart/report; "
	              "report-type=delivery-status;\r\n\tboundary=\"") != NULL);
	CHECK(count(s, "\r\n--=_mta-dsn-00000000000000bb-0\r\n") == 3);
	CHECK(count(s, "\r\n--=_mta-dsn-00000000000000bb-0--\r\n") == 1);
	text = strstr(s, "Content-Type: text/plain");
	status = strstr(s, "Content-Type: message/delivery-status");
	hdrs = strstr(s, "Content-Type: text/rfc822-headers");
	CHECK(text && status && hdrs && text < status && status < hdrs);
	/* the header section ends before the preamble */
	CHECK(strstr(s, "\r\n\r\n") < text);
	/* never the body */
	CHECK(strstr(s, "never in a DSN") == NULL);
	free(s);
}

static void
test_fields(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *s = build(&m);

	CHECK(s != NULL);
	CHECK(strstr(s, "\r\nReporting-MTA: dns; relay.test\r\n") != NULL);
	CHECK(strstr(s, "\r\nArrival-Date: Sun, 22 Nov 2026 10:00:00 "
	                "+0000\r\n") != NULL);
	CHECK(strstr(s,
	          "\r\n\r\nFinal-Recipient: rfc822; b@y.test\r\n"
	          "Action: failed\r\nStatus: 5.1.1\r\n"
	          "Remote-MTA: dns; mx.y.test\r\n"
	          "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
	          "Last-Attempt-Date: Sun, 22 Nov 2026 10:01:01 +0000\r\n") !=
	      NULL);
	CHECK(strstr(s, "\r\nDate: Sun, 22 Nov 2026 10:01:02 +0000\r\n"));
	CHECK(strstr(s, "\r\nMessage-ID: <00000000000000bb.00000000000000aa"
	                ".dsn@relay.test>\r\n"));
	CHECK(strstr(s, "Will-Retry-Until") == NULL);
	free(s);
}

/* A local reason (DNS, connection) is no SMTP reply: no Diagnostic-Code,
 * and no Remote-MTA when no host was reached; the text part says why. */
static void
test_local_reason(void)
{
	struct dsn_rcpt r = {
	    .addr = "b@nowhere.test",
	    .action = DSN_ACTION_FAILED,
	    .status = "5.1.2",
	    .reply = "domain not found",
	    .last_attempt_ms = T_TRY,
	};
	struct dsn_msg m = msg_of(&r, 1);
	char *s = build(&m);

	CHECK(s != NULL);
	CHECK(strstr(s, "Diagnostic-Code") == NULL);
	CHECK(strstr(s, "Remote-MTA") == NULL);
	CHECK(strstr(s, "\r\nStatus: 5.1.2\r\n") != NULL);
	CHECK(strstr(s, "\r\n    domain not found\r\n") != NULL);
	free(s);
}

static void
test_crlf_only(void)
{
	struct dsn_rcpt r[2] = {
	    rcpt_failed("b@y.test"), rcpt_failed("c@y.test")};
	struct dsn_msg m = msg_of(r, 2);
	/* stored headers with a bare LF and a bare CR: fixed on the way */
	static const char odd[] = "A: 1\nB: 2\rx\r\nC: 3\r\n";
	char *s;

	r[1].reply = "550 first line\r\n550 second\nline\r";
	m.headers = (const uint8_t *)odd;
	m.headers_len = sizeof(odd) - 1;
	s = build(&m);
	CHECK(s != NULL);
	CHECK(lines_ok(s));
	CHECK(strstr(s, "\r\n\r\nA: 1\r\nB: 2 x\r\nC: 3\r\n\r\n--") != NULL);
	CHECK(strstr(s, "Diagnostic-Code: smtp; 550 first line 550 second "
	                "line\r\n") != NULL);
	free(s);
}

/* Two recipients of one attempt: one report, two blocks, in order. */
static void
test_multi_rcpt(void)
{
	struct dsn_rcpt r[2] = {
	    rcpt_failed("b@y.test"), rcpt_failed("c@y.test")};
	struct dsn_msg m = msg_of(r, 2);
	char *s;
	const char *b, *c;

	r[1].status = "5.2.2";
	r[1].reply = "552 5.2.2 mailbox full";
	s = build(&m);
	CHECK(s != NULL);
	CHECK(count(s, "\r\nFinal-Recipient: ") == 2);
	CHECK(count(s, "\r\nAction: failed\r\n") == 2);
	CHECK(count(s, "\r\nReporting-MTA: ") == 1);
	b = strstr(s, "Final-Recipient: rfc822; b@y.test\r\n");
	c = strstr(s, "Final-Recipient: rfc822; c@y.test\r\n");
	CHECK(b && c && b < c);
	CHECK(strstr(c, "Status: 5.2.2\r\n") != NULL);
	CHECK(strstr(c, "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n"));
	CHECK(strstr(s, "<b@y.test>: delivery failed (5.1.1)\r\n"));
	CHECK(strstr(s, "<c@y.test>: delivery failed (5.2.2)\r\n"));
	CHECK(lines_ok(s));
	free(s);
}

/* Undo header folding: CRLF followed by whitespace -> that whitespace. */
static void
unfold(char *s)
{
	char *w = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\r' && p[1] == '\n' &&
		    (p[2] == ' ' || p[2] == '\t')) {
			p++;
			continue;
		}
		*w++ = *p;
	}
	*w = '\0';
}

static void
test_long_reply_folded(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char reply[3000], *s, *dc, *end;
	size_t n = 0;

	n += (size_t)snprintf(reply, sizeof(reply), "550 5.7.1");
	while (n < 2000)
		n += (size_t)snprintf(
		    reply + n, sizeof(reply) - n, " word%zu", n);
	r.reply = reply;
	s = build(&m);
	CHECK(s != NULL);
	CHECK(lines_ok(s));
	/* folded: the field spans lines, each short */
	dc = strstr(s, "\r\nDiagnostic-Code: smtp; 550 5.7.1 word");
	CHECK(dc != NULL);
	end = strstr(dc + 2, "\r\nLast-Attempt-Date");
	CHECK(end != NULL);
	for (char *p = dc + 2, *e; p < end; p = e + 2) {
		e = strstr(p, "\r\n");
		CHECK((size_t)(e - p) <= 78);
	}
	/* and unfolds back to the reply, exactly */
	unfold(s);
	dc = strstr(s, "\r\nDiagnostic-Code: smtp; ");
	CHECK(dc != NULL);
	dc += strlen("\r\nDiagnostic-Code: smtp; ");
	CHECK(strncmp(dc, reply, strlen(reply)) == 0);
	CHECK(strncmp(dc + strlen(reply), "\r\n", 2) == 0);
	free(s);
}

/* A word with no space to break at is cut at 998 octets. */
static void
test_long_word_cut(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *reply = malloc(5000), *s;

	memcpy(reply, "550 ", 4);
	memset(reply + 4, 'x', 4000);
	reply[4004] = '\0';
	r.reply = reply;
	s = build(&m);
	CHECK(s != NULL);
	CHECK(lines_ok(s));
	CHECK(count(s, "xxxxxxxxxx") > 0);
	free(reply);
	free(s);
}

/* The headers part holds the header section exactly, without the empty
 * line and without the body. */
static void
test_headers_exact(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char stored[1024], *s, want[1024];
	size_t hl;

	snprintf(stored, sizeof(stored), "%s%s", HDRS, BODY);
	hl = dsn_headers_len(
	    (const uint8_t *)stored, strlen(stored), DSN_HEADERS_MAX);
	CHECK(hl == sizeof(HDRS) - 1);
	m.headers = (const uint8_t *)stored;
	m.headers_len = hl;
	s = build(&m);
	CHECK(s != NULL);
	snprintf(want, sizeof(want),
	    "Content-Type: text/rfc822-headers\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n%s\r\n"
	    "--=_mta-dsn-00000000000000bb-0--\r\n",
	    HDRS);
	CHECK(strlen(s) > strlen(want));
	CHECK(strcmp(s + strlen(s) - strlen(want), want) == 0);
	free(s);
}

static void
test_no_headers(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *s;

	m.headers = NULL;
	m.headers_len = 0;
	s = build(&m);
	CHECK(s != NULL);
	CHECK(strstr(s, "Content-Type: text/rfc822-headers\r\n"
	                "Content-Transfer-Encoding: 7bit\r\n\r\n\r\n"
	                "--=_mta-dsn-00000000000000bb-0--\r\n") != NULL);
	CHECK(lines_ok(s));
	free(s);
}

/* Headers that contain the first boundary candidate: the next one. */
static void
test_boundary_collision(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	static const char evil[] = "X-A: --=_mta-dsn-00000000000000bb-0\r\n"
	                           "X-B: --=_mta-dsn-00000000000000bb-1--\r\n";
	char *s;

	m.headers = (const uint8_t *)evil;
	m.headers_len = sizeof(evil) - 1;
	s = build(&m);
	CHECK(s != NULL);
	CHECK(strstr(s, "boundary=\"=_mta-dsn-00000000000000bb-2\"\r\n"));
	CHECK(count(s, "\r\n--=_mta-dsn-00000000000000bb-2\r\n") == 3);
	free(s);
}

/* A reply cannot add fields or parts: CR/LF become spaces. */
static void
test_reply_injection(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *s;

	r.reply = "550 no\r\nX-Evil: 1\r\n\r\n--=_mta-dsn-00000000000000bb-0";
	s = build(&m);
	CHECK(s != NULL);
	CHECK(strstr(s, "\r\nX-Evil") == NULL);
	CHECK(strstr(s, "boundary=\"=_mta-dsn-00000000000000bb-1\""));
	CHECK(lines_ok(s));
	free(s);
}

/* Delay warning: Action delayed, a 4.x.x status, Will-Retry-Until, and
 * its own subject. */
static void
test_delayed(void)
{
	struct dsn_rcpt r = {
	    .addr = "b@y.test",
	    .action = DSN_ACTION_DELAYED,
	    .status = "4.7.1",
	    .reply = "451 4.7.1 try again later",
	    .relay = "mx.y.test[127.0.0.2]:25",
	    .last_attempt_ms = T_TRY,
	    .retry_until_ms = T_RECV + 5 * 86400000ull,
	};
	struct dsn_msg m = msg_of(&r, 1);
	char *s;

	s = build(&m);
	CHECK(s != NULL);
	CHECK(strstr(s, "\r\nSubject: Delayed Mail (still being retried)"
	                "\r\n"));
	CHECK(strstr(s, "\r\nAction: delayed\r\nStatus: 4.7.1\r\n"));
	CHECK(strstr(s, "\r\nWill-Retry-Until: Fri, 27 Nov 2026 10:00:00 "
	                "+0000\r\n"));
	CHECK(strstr(s, "Diagnostic-Code: smtp; 451 4.7.1 try again later"));
	CHECK(strstr(s, "Action: failed") == NULL);
	free(s);
	/* a delayed recipient never reports a 5.x.x status */
	r.status = "5.1.1";
	s = build(&m);
	CHECK(s != NULL && strstr(s, "\r\nStatus: 4.0.0\r\n"));
	free(s);
}

/* Expiry: failed, but with the 4.4.7 status the scheduler gives it. */
static void
test_expired(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	char *s;

	r.status = "4.4.7";
	r.reply = "451 4.3.0 try later";
	s = build(&m);
	CHECK(s != NULL);
	CHECK(strstr(s, "\r\nAction: failed\r\nStatus: 4.4.7\r\n"));
	CHECK(strstr(s, "\r\nSubject: Undelivered Mail Returned to Sender"));
	CHECK(strstr(s, "delivery time expired"));
	free(s);
}

static void
test_status_sanitised(void)
{
	static const struct {
		const char *in;
		enum dsn_action a;
		const char *out;
	} rows[] = {
	    {"5.1.1", DSN_ACTION_FAILED, "5.1.1"},
	    {"5.100.100", DSN_ACTION_FAILED, "5.100.100"},
	    {"", DSN_ACTION_FAILED, "5.0.0"},
	    {NULL, DSN_ACTION_FAILED, "5.0.0"},
	    {"2.0.0", DSN_ACTION_FAILED, "5.0.0"},
	    {"5.1", DSN_ACTION_FAILED, "5.0.0"},
	    {"5.1.1x", DSN_ACTION_FAILED, "5.0.0"},
	    {"5.1000.1", DSN_ACTION_FAILED, "5.0.0"},
	    {"5.1.1\r\nX: y", DSN_ACTION_FAILED, "5.0.0"},
	    {"4.4.7", DSN_ACTION_FAILED, "4.4.7"},
	    {"4.4.1", DSN_ACTION_DELAYED, "4.4.1"},
	    {"5.1.1", DSN_ACTION_DELAYED, "4.0.0"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dsn_rcpt r = rcpt_failed("b@y.test");
		struct dsn_msg m = msg_of(&r, 1);
		char want[64], *s;

		r.status = rows[i].in;
		r.action = rows[i].a;
		s = build(&m);
		snprintf(want, sizeof(want), "\r\nStatus: %s\r\n", rows[i].out);
		if (s == NULL || strstr(s, want) == NULL)
			fprintf(stderr, "row %zu\n", i);
		CHECK(s != NULL && strstr(s, want) != NULL);
		free(s);
	}
}

static void
test_errors(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	struct buf b;

	buf_init(&b, 1 << 20);
	m.nrcpts = 0;
	CHECK(dsn_build(&m, &b) == -EINVAL);
	m = msg_of(&r, 1);
	m.hostname = "bad host";
	CHECK(dsn_build(&m, &b) == -EINVAL);
	m.hostname = NULL;
	CHECK(dsn_build(&m, &b) == -EINVAL);
	m = msg_of(&r, 1);
	r.addr = NULL;
	CHECK(dsn_build(&m, &b) == -EINVAL);
	buf_fini(&b);
	/* over the output cap */
	r = rcpt_failed("b@y.test");
	m = msg_of(&r, 1);
	buf_init(&b, 200);
	CHECK(dsn_build(&m, &b) == -ENOBUFS);
	buf_fini(&b);
}

/* 8-bit bytes (SMTPUTF8 headers) make the parts say 8bit. */
/* RFC 3461: a relayed notice, ENVID and ORCPT decoded from xtext (but
 * never into a control character), and the whole message for RET=FULL. */
static void
test_dsn_params(void)
{
	static const char full[] = "From: <a@x.test>\r\nSubject: s\r\n\r\n"
	                           "the whole body\r\n";
	struct dsn_rcpt r[2] = {
	    rcpt_failed("b@y.test"), rcpt_failed("c@y.test")};
	struct dsn_msg m;
	char *s;

	r[0].action = DSN_ACTION_RELAYED;
	r[0].status = "2.0.0";
	r[0].reply = "250 2.0.0 Ok: queued";
	r[0].orcpt = "rfc822;B+40Orig.test";
	r[1].action = DSN_ACTION_RELAYED;
	r[1].status = "5.1.1"; /* not a success code: replaced */
	r[1].orcpt = "";
	m = msg_of(r, 2);
	m.envid = "id+2B1+0D+0AX-Evil:+20y";
	s = build(&m);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(lines_ok(s));
	CHECK(
	    strstr(s, "Subject: Successful Mail Delivery Report\r\n") != NULL);
	CHECK(strstr(s, "\r\nOriginal-Envelope-Id: id+1+0D+0AX-Evil: y\r\n"
	                "Reporting-MTA: dns; relay.test\r\n") != NULL);
	CHECK(strstr(s, "\r\nX-Evil") == NULL);
	CHECK(strstr(s, "\r\n\r\nOriginal-Recipient: rfc822;B@Orig.test\r\n"
	                "Final-Recipient: rfc822; b@y.test\r\n"
	                "Action: relayed\r\nStatus: 2.0.0\r\n") != NULL);
	CHECK(strstr(s, "\r\n\r\nFinal-Recipient: rfc822; c@y.test\r\n"
	                "Action: relayed\r\nStatus: 2.0.0\r\n") != NULL);
	CHECK(count(s, "Original-Recipient:") == 1);
	CHECK(strstr(s, "relayed to a host that does not report delivery") !=
	      NULL);
	CHECK(strstr(s, "Content-Type: text/rfc822-headers") != NULL);
	free(s);

	/* RET=FULL: the message as message/rfc822 */
	r[1].action = DSN_ACTION_FAILED;
	m = msg_of(r + 1, 1);
	m.headers = (const uint8_t *)full;
	m.headers_len = sizeof(full) - 1;
	m.full = true;
	s = build(&m);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK(lines_ok(s));
	CHECK(
	    strstr(s, "Subject: Undelivered Mail Returned to Sender") != NULL);
	CHECK(strstr(s, "Content-Type: message/rfc822\r\n") != NULL);
	CHECK(strstr(s, "Subject: s\r\n\r\nthe whole body\r\n") != NULL);
	CHECK(strstr(s, "text/rfc822-headers") == NULL);
	CHECK(strstr(s, "Original-Envelope-Id") == NULL);
	free(s);
}

static void
test_8bit(void)
{
	struct dsn_rcpt r = rcpt_failed("b@y.test");
	struct dsn_msg m = msg_of(&r, 1);
	static const char h[] = "Subject: caf\xc3\xa9\r\n";
	char *s;

	m.headers = (const uint8_t *)h;
	m.headers_len = sizeof(h) - 1;
	s = build(&m);
	CHECK(s != NULL);
	CHECK(strstr(s, "\r\n\tboundary=\"=_mta-dsn-00000000000000bb-0\"\r\n"
	                "Content-Transfer-Encoding: 8bit\r\n"));
	CHECK(strstr(s, "text/rfc822-headers\r\n"
	                "Content-Transfer-Encoding: 8bit\r\n"));
	free(s);
}

static void
test_headers_len(void)
{
	static const struct {
		const char *in;
		size_t max;
		size_t want;
	} rows[] = {
	    {"A: 1\r\nB: 2\r\n\r\nbody\r\n", 1000, 12},
	    {"A: 1\r\n\r\n", 1000, 6},
	    {"\r\nbody\r\n", 1000, 0},
	    {"", 1000, 0},
	    {"A: 1\nB: 2\n\nbody", 1000, 10},
	    {"A: 1\r\nB: 2\r\n", 1000, 12},  /* no empty line */
	    {"A: 1\r\nB: 2\r\n\r\n", 10, 6}, /* cut to lines */
	    {"A: 1\r\nB: 2\r\n", 12, 12},
	    {"A: 1\r\nB: 2\r\n", 11, 6},
	    {"AAAAAAAAAAAAAAAAAAAA\r\n\r\n", 5, 0}, /* nothing whole */
	    {"A: 1\r\n folded\r\n\r\n", 1000, 15},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t got = dsn_headers_len((const uint8_t *)rows[i].in,
		    strlen(rows[i].in), rows[i].max);

		if (got != rows[i].want)
			fprintf(stderr, "row %zu: %zu\n", i, got);
		CHECK(got == rows[i].want);
	}
}

static void
test_reply_is_smtp(void)
{
	CHECK(dsn_reply_is_smtp("550 5.1.1 no"));
	CHECK(dsn_reply_is_smtp("451-more"));
	CHECK(dsn_reply_is_smtp("421"));
	CHECK(!dsn_reply_is_smtp("domain not found"));
	CHECK(!dsn_reply_is_smtp("5501 x"));
	CHECK(!dsn_reply_is_smtp("650 x"));
	CHECK(!dsn_reply_is_smtp("55"));
	CHECK(!dsn_reply_is_smtp(""));
	CHECK(!dsn_reply_is_smtp(NULL));
	CHECK(!dsn_reply_is_smtp("mx[127.0.0.1]:25: 421 busy"));
}

static void
test_date(void)
{
	char d[64];

	clock_rfc5322(T_RECV, d, sizeof(d));
	CHECK(strcmp(d, "Sun, 22 Nov 2026 10:00:00 +0000") == 0);
	clock_rfc5322(0, d, sizeof(d));
	CHECK(strcmp(d, "Thu, 1 Jan 1970 00:00:00 +0000") == 0);
}

static const struct harness_case cases[] = {
    {"exact", test_exact},
    {"structure", test_structure},
    {"fields", test_fields},
    {"local_reason", test_local_reason},
    {"crlf_only", test_crlf_only},
    {"multi_rcpt", test_multi_rcpt},
    {"long_reply_folded", test_long_reply_folded},
    {"long_word_cut", test_long_word_cut},
    {"headers_exact", test_headers_exact},
    {"no_headers", test_no_headers},
    {"boundary_collision", test_boundary_collision},
    {"reply_injection", test_reply_injection},
    {"delayed", test_delayed},
    {"expired", test_expired},
    {"status_sanitised", test_status_sanitised},
    {"errors", test_errors},
    {"dsn_params", test_dsn_params},
    {"8bit", test_8bit},
    {"headers_len", test_headers_len},
    {"reply_is_smtp", test_reply_is_smtp},
    {"date", test_date},
};

HARNESS_MAIN(cases)
