/* SPDX-License-Identifier: ISC */
/*
 * smtp_reply_test.c - the shared reply parser: every case is fed whole,
 * split at every byte position, and one byte at a time, and must give
 * the same reply (or the same error) each way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_reply.h"
#include "../harness.h"

struct rcase {
	const char *in; /* server bytes: one reply, maybe more after */
	int rc;         /* 1, or the expected negative errno */
	int code;
	const char *enh;
	const char *text;
	unsigned nlines;
	size_t used; /* bytes the first reply takes; 0 = all */
};

static const struct rcase rcases[] = {
    {"250 OK\r\n", 1, 250, "", "OK", 1, 0},
    {"250 OK\n", 1, 250, "", "OK", 1, 0},
    {"220\r\n", 1, 220, "", "", 1, 0},
    {"250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 1, 250, "",
        "mx.example.com\nPIPELINING\nSIZE 1000", 3, 0},
    {"550 5.1.1 <b@y>: no such user\r\n", 1, 550, "5.1.1",
        "5.1.1 <b@y>: no such user", 1, 0},
    {"550-5.1.1 one\r\n550-5.1.1 two\r\n550 5.1.1 three\r\n", 1, 550, "5.1.1",
        "5.1.1 one\n5.1.1 two\n5.1.1 three", 3, 0},
    {"250 2.0.0\r\n", 1, 250, "2.0.0", "2.0.0", 1, 0},
    {"452 4.5.3 too many\r\n", 1, 452, "4.5.3", "4.5.3 too many", 1, 0},
    {"250 2.123.999 x\r\n", 1, 250, "2.123.999", "2.123.999 x", 1, 0},
    /* Class disagrees with the code, or malformed: no enhanced code. */
    {"451 5.1.1 x\r\n", 1, 451, "", "5.1.1 x", 1, 0},
    {"250 1.2.3 x\r\n", 1, 250, "", "1.2.3 x", 1, 0},
    {"250 2.1234.5 x\r\n", 1, 250, "", "2.1234.5 x", 1, 0},
    {"250 2.1.5x y\r\n", 1, 250, "", "2.1.5x y", 1, 0},
    {"250 2..5 y\r\n", 1, 250, "", "2..5 y", 1, 0},
    {"250 2.1. y\r\n", 1, 250, "", "2.1. y", 1, 0},
    /* Empty texts, dash lines with no text. */
    {"250-\r\n250 \r\n", 1, 250, "", "\n", 2, 0},
    {"250-a\r\n250\r\n", 1, 250, "", "a\n", 2, 0},
    /* Stops after the first reply; the rest is left. */
    {"250 one\r\n251 two\r\n", 1, 250, "", "one", 1, 9},
    {"354 go\r\n250-x", 1, 354, "", "go", 1, 8},
    /* CR inside a line is text; only the CR before LF goes. */
    {"250 a\rb\r\r\n", 1, 250, "", "a\rb\r", 1, 0},
    /* Errors. */
    {"250-a\r\n251 b\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"25 x\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"abc def\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"250x\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"199 x\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"600 x\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"2a0 x\r\n", -EPROTO, 0, NULL, NULL, 0, 0},
    {"250-ok\r\n25", 0, 0, NULL, NULL, 0, 0},
};

struct got {
	int rc;
	int code;
	char enh[SMTP_REPLY_ENH_MAX];
	char text[256];
	size_t tlen;
	unsigned nlines;
	size_t used;
};

/* Feed in pieces of `step` bytes (0 = whole) after a first piece of
 * `first` bytes; stop at the first reply or error. */
static void
feed(const char *in, size_t len, size_t first, size_t step, struct got *g)
{
	struct smtp_reply_parser p;
	const struct smtp_reply *r;
	size_t off = 0, n, used;
	int rc = 0;

	memset(g, 0, sizeof(*g));
	smtp_reply_init(&p);
	while (off < len) {
		n = off == 0 && first ? first : step ? step : len - off;
		if (n > len - off)
			n = len - off;
		rc = smtp_reply_parse(&p, (const uint8_t *)in + off, n, &used);
		off += used;
		if (rc != 0)
			break;
	}
	g->rc = rc;
	g->used = off;
	if (rc == 1 && (r = smtp_reply_peek(&p)) != NULL) {
		g->code = r->code;
		memcpy(g->enh, r->enhanced, sizeof(g->enh));
		g->tlen = r->len < sizeof(g->text) ? r->len : sizeof(g->text);
		memcpy(g->text, r->text, g->tlen);
		g->nlines = r->nlines;
		if (r->text[r->len] != '\0')
			g->rc = 99;
	}
	smtp_reply_fini(&p);
}

static int
got_ok(const struct rcase *c, const struct got *g, size_t len)
{
	if (g->rc != c->rc)
		return 0;
	if (c->rc != 1)
		return 1;
	return g->code == c->code && strcmp(g->enh, c->enh) == 0 &&
	       g->tlen == strlen(c->text) &&
	       memcmp(g->text, c->text, g->tlen) == 0 &&
	       g->nlines == c->nlines && g->used == (c->used ? c->used : len);
}

static void
test_reply_table(void)
{
	const struct rcase *c;
	struct got g;
	size_t i, len, k;

	for (i = 0; i < MTA_ARRAY_LEN(rcases); i++) {
		c = &rcases[i];
		len = strlen(c->in);
		for (k = 0; k <= len; k++) {
			feed(c->in, len, k, 0, &g);
			if (!got_ok(c, &g, len))
				fprintf(stderr,
				    "case %zu (%s) split %zu: rc %d "
				    "code %d\n",
				    i, c->in, k, g.rc, g.code);
			CHECK(got_ok(c, &g, len));
		}
		feed(c->in, len, 0, 1, &g);
		if (!got_ok(c, &g, len))
			fprintf(stderr, "case %zu bytewise: rc %d\n", i, g.rc);
		CHECK(got_ok(c, &g, len));
	}
}

/* Several replies in one buffer, one parse per reply, in order. */
static void
test_reply_sequence(void)
{
	static const char in[] =
	    "250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
	    "550-5.1.1 no\r\n550 5.1.1 such user\r\n354 go ahead\r\n";
	static const int codes[] = {250, 250, 550, 354};
	struct smtp_reply_parser p;
	const uint8_t *d = (const uint8_t *)in;
	size_t n = sizeof(in) - 1, used;
	int k = 0, rc;

	smtp_reply_init(&p);
	while (n > 0) {
		rc = smtp_reply_parse(&p, d, n, &used);
		CHECK(rc == 1);
		CHECK(smtp_reply_peek(&p)->code == codes[k]);
		k++;
		d += used;
		n -= used;
	}
	CHECK(k == 4);
	/* A zero-length feed forgets the last reply. */
	CHECK(smtp_reply_parse(&p, d, 0, &used) == 0);
	CHECK(smtp_reply_peek(&p) == NULL);
	smtp_reply_fini(&p);
}

static void
test_reply_line_limit(void)
{
	struct smtp_reply_parser p;
	char *line = malloc(SMTP_REPLY_LINE_MAX + 8);
	size_t used;

	CHECK(line != NULL);
	/* Exactly at the limit: 4 + text = SMTP_REPLY_LINE_MAX. */
	memcpy(line, "250 ", 4);
	memset(line + 4, 'x', SMTP_REPLY_LINE_MAX - 4);
	memcpy(line + SMTP_REPLY_LINE_MAX, "\r\n", 2);
	smtp_reply_init(&p);
	CHECK(smtp_reply_parse(
	          &p, (uint8_t *)line, SMTP_REPLY_LINE_MAX + 2, &used) == 1);
	CHECK(smtp_reply_peek(&p)->len == SMTP_REPLY_LINE_MAX - 4);
	/* Same, split before the CR and between CR and LF. */
	CHECK(smtp_reply_parse(
	          &p, (uint8_t *)line, SMTP_REPLY_LINE_MAX, &used) == 0);
	CHECK(smtp_reply_parse(
	          &p, (uint8_t *)line + SMTP_REPLY_LINE_MAX, 1, &used) == 0);
	CHECK(smtp_reply_parse(&p, (uint8_t *)line + SMTP_REPLY_LINE_MAX + 1, 1,
	          &used) == 1);
	/* One over. */
	line[SMTP_REPLY_LINE_MAX] = 'x';
	memcpy(line + SMTP_REPLY_LINE_MAX + 1, "\r\n", 2);
	CHECK(smtp_reply_parse(&p, (uint8_t *)line, SMTP_REPLY_LINE_MAX + 3,
	          &used) == -EMSGSIZE);
	/* Sticky until reset. */
	CHECK(smtp_reply_parse(&p, (const uint8_t *)"250 ok\r\n", 8, &used) ==
	      -EMSGSIZE);
	smtp_reply_reset(&p);
	CHECK(
	    smtp_reply_parse(&p, (const uint8_t *)"250 ok\r\n", 8, &used) == 1);
	/* One over, arriving in small pieces with no LF: refused before
	 * the line ends. */
	smtp_reply_reset(&p);
	for (size_t off = 0; off < SMTP_REPLY_LINE_MAX + 1; off += 100) {
		size_t n = SMTP_REPLY_LINE_MAX + 1 - off;
		int rc;

		rc = smtp_reply_parse(
		    &p, (uint8_t *)line + off, n < 100 ? n : 100, &used);
		if (off + 100 < SMTP_REPLY_LINE_MAX + 1)
			CHECK(rc == 0);
		else
			CHECK(rc == 0 || rc == -EMSGSIZE);
	}
	CHECK(
	    smtp_reply_parse(&p, (const uint8_t *)"xy", 2, &used) == -EMSGSIZE);
	smtp_reply_fini(&p);
	free(line);
}

static void
test_reply_total_limit(void)
{
	struct smtp_reply_parser p;
	char line[1004];
	size_t used, total = 0;
	int rc = 0;

	/* 1000-byte continuation lines until the reply passes 64 KiB. */
	memcpy(line, "250-", 4);
	memset(line + 4, 'y', 998);
	memcpy(line + 1002, "\r\n", 2);
	smtp_reply_init(&p);
	while (rc == 0 && total < 2 * SMTP_REPLY_MAX) {
		rc = smtp_reply_parse(&p, (uint8_t *)line, sizeof(line), &used);
		total += used;
	}
	CHECK(rc == -EMSGSIZE);
	CHECK(total > SMTP_REPLY_MAX - 1004 && total <= SMTP_REPLY_MAX + 1004);
	smtp_reply_fini(&p);
}

static void
test_reply_nul(void)
{
	static const uint8_t in[] = "250 a\0b\r\n";
	struct smtp_reply_parser p;
	size_t used;

	smtp_reply_init(&p);
	CHECK(smtp_reply_parse(&p, in, sizeof(in) - 1, &used) == 1);
	CHECK(smtp_reply_peek(&p)->len == 3);
	CHECK(memcmp(smtp_reply_peek(&p)->text, "a\0b", 4) == 0);
	smtp_reply_fini(&p);
}

static void
test_enhanced_valid(void)
{
	CHECK(smtp_reply_enhanced_valid("2.0.0", 5));
	CHECK(smtp_reply_enhanced_valid("5.7.27", 6));
	CHECK(smtp_reply_enhanced_valid("4.999.999", 9));
	CHECK(!smtp_reply_enhanced_valid("3.0.0", 5));
	CHECK(!smtp_reply_enhanced_valid("2.0", 3));
	CHECK(!smtp_reply_enhanced_valid("2.0.", 4));
	CHECK(!smtp_reply_enhanced_valid("2.0.0.0", 7));
	CHECK(!smtp_reply_enhanced_valid("2.0000.0", 8));
	CHECK(!smtp_reply_enhanced_valid("25.0.0", 6));
}

struct ecase {
	const char *in;
	struct smtp_ehlo want;
};

static const struct ecase ecases[] = {
    {"250 mx.example\r\n", {0}},
    {"250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
     "250-STARTTLS\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-8BITMIME\r\n"
     "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        {.pipelining = true,
            .starttls = true,
            .eightbitmime = true,
            .smtputf8 = true,
            .enhancedstatuscodes = true,
            .size = true,
            .size_max = 35882577,
            .auth = SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5}},
    {"250-mx\r\n250-pipelining\r\n250-size\r\n250-auth=login plain\r\n"
     "250 starttls\r\n",
        {.pipelining = true,
            .starttls = true,
            .size = true,
            .auth = SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN}},
    {"250-mx\r\n250-SIZE 12x\r\n250-AUTH XOAUTH2\r\n"
     "250 PIPELININGX\r\n",
        {.size = true, .auth = SMTP_AUTH_XOAUTH2}},
    {"250-mx\r\n250-SIZE 99999999999999999999999\r\n250 AUTH \r\n",
        {.size = true}},
    /* The greeting line is never a keyword. */
    {"250-PIPELINING\r\n250 8BITMIME\r\n", {.eightbitmime = true}},
};

static void
test_ehlo_parse(void)
{
	struct smtp_reply_parser p;
	struct smtp_ehlo e;
	const struct smtp_ehlo *w;
	size_t i, used;

	smtp_reply_init(&p);
	for (i = 0; i < MTA_ARRAY_LEN(ecases); i++) {
		CHECK(smtp_reply_parse(&p, (const uint8_t *)ecases[i].in,
		          strlen(ecases[i].in), &used) == 1);
		smtp_ehlo_parse(smtp_reply_peek(&p), &e);
		w = &ecases[i].want;
		if (e.pipelining != w->pipelining ||
		    e.starttls != w->starttls ||
		    e.eightbitmime != w->eightbitmime ||
		    e.smtputf8 != w->smtputf8 ||
		    e.enhancedstatuscodes != w->enhancedstatuscodes ||
		    e.size != w->size || e.size_max != w->size_max ||
		    e.auth != w->auth)
			fprintf(stderr, "ehlo case %zu\n", i);
		CHECK(e.pipelining == w->pipelining);
		CHECK(e.starttls == w->starttls);
		CHECK(e.eightbitmime == w->eightbitmime);
		CHECK(e.smtputf8 == w->smtputf8);
		CHECK(e.enhancedstatuscodes == w->enhancedstatuscodes);
		CHECK(e.size == w->size);
		CHECK(e.size_max == w->size_max);
		CHECK(e.auth == w->auth);
	}
	smtp_reply_fini(&p);
}

static const struct harness_case cases[] = {
    {"reply_table", test_reply_table},
    {"reply_sequence", test_reply_sequence},
    {"reply_line_limit", test_reply_line_limit},
    {"reply_total_limit", test_reply_total_limit},
    {"reply_nul", test_reply_nul},
    {"enhanced_valid", test_enhanced_valid},
    {"ehlo_parse", test_ehlo_parse},
};

HARNESS_MAIN(cases)
