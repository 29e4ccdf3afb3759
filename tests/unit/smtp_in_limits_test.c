/* SPDX-License-Identifier: ISC */
/*
 * smtp_in_limits_test.c - the receive state machine against hostile
 * clients (issue 16): the greeting held for the loop and early talkers,
 * what smtp_in_progress() reports for the request deadlines, the 421 of
 * a missed deadline, HTTP lines, over-long AUTH lines, and the HELO name
 * neutered in Received:. Driven without sockets, as smtp_in_test.c.
 */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"
#include "../harness.h"

#define HOST "mx.test"

struct t {
	struct smtp_in_cfg cfg;
	struct smtp_in_peer peer;
	struct smtp_in *s;
	struct buf out;
	enum smtp_in_action act;
	uint64_t ids;
};

static uint64_t
fake_id_new(void *arg)
{
	return ++*(uint64_t *)arg;
}

static void
t_open(struct t *t, bool greet_wait)
{
	memset(t, 0, sizeof(*t));
	t->cfg.hostname = HOST;
	t->cfg.max_message_size = 100000;
	t->cfg.max_recipients = 3;
	t->cfg.max_errors = 10;
	t->cfg.auth_available = true;
	t->cfg.auth_max_failures = 3;
	t->cfg.greet_wait = greet_wait;
	t->cfg.id_new = fake_id_new;
	t->cfg.id_arg = &t->ids;
	strcpy(t->peer.addr, "192.0.2.1");
	t->peer.relay_allowed = true;
	buf_init(&t->out, 1 << 20);
	t->s = smtp_in_new(&t->cfg, &t->peer, &t->out);
	t->act = SMTP_IN_READ;
}

static void
t_close(struct t *t)
{
	smtp_in_free(t->s);
	buf_fini(&t->out);
}

static void
t_feed_n(struct t *t, const void *p, size_t n)
{
	t->act = smtp_in_feed(t->s, p, n, &t->out);
}

static void
t_feed(struct t *t, const char *str)
{
	t_feed_n(t, str, strlen(str));
}

/* Does out hold exactly `want`? Resets out. */
static bool
t_out_is(struct t *t, const char *want)
{
	size_t n = buf_avail(&t->out);
	bool ok = n == strlen(want) && memcmp(buf_peek(&t->out), want, n) == 0;

	if (!ok)
		fprintf(stderr, "want: [%s]\ngot:  [%.*s]\n", want, (int)n,
		    (const char *)buf_peek(&t->out));
	buf_reset(&t->out);
	return ok;
}

static bool
t_x(struct t *t, const char *in, const char *want)
{
	t_feed(t, in);
	return t_out_is(t, want);
}

static enum smtp_in_wait
t_wait(struct t *t, uint64_t *seq, uint64_t *bytes)
{
	struct smtp_in_progress p;

	smtp_in_progress(t->s, &p);
	if (seq != NULL)
		*seq = p.seq;
	if (bytes != NULL)
		*bytes = p.bytes;
	return p.wait;
}

static void
test_greet_wait(void)
{
	struct t t;

	t_open(&t, true);
	CHECK(buf_avail(&t.out) == 0); /* no 220 until the loop says */
	CHECK(t_wait(&t, NULL, NULL) == SMTP_IN_WAIT_NONE);
	t.act = smtp_in_greet(t.s, &t.out);
	CHECK(t.act == SMTP_IN_READ);
	CHECK(t_out_is(&t, "220 " HOST " ESMTP\r\n"));
	t.act = smtp_in_greet(t.s, &t.out); /* once */
	CHECK(t_out_is(&t, ""));
	CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
	t_close(&t);
	/* without greet_wait: at once, as before */
	t_open(&t, false);
	CHECK(t_out_is(&t, "220 " HOST " ESMTP\r\n"));
	t_close(&t);
}

static void
test_early_talker(void)
{
	struct t t;

	t_open(&t, true);
	CHECK(t_x(&t,
	    "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n"
	    "RCPT TO:<r@x.example>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n",
	    "554 5.5.0 " HOST " Error: SMTP protocol synchronization "
	    "(input before greeting)\r\n"));
	CHECK(t.act == SMTP_IN_CLOSE && !smtp_in_want_read(t.s));
	CHECK(t.ids == 0);                  /* no DATA was run */
	t.act = smtp_in_greet(t.s, &t.out); /* too late: nothing */
	CHECK(t.act == SMTP_IN_CLOSE && t_out_is(&t, ""));
	t_close(&t);
	/* a single byte is enough */
	t_open(&t, true);
	CHECK(t_x(&t, "\r",
	    "554 5.5.0 " HOST " Error: SMTP protocol "
	    "synchronization (input before greeting)\r\n"));
	t_close(&t);
}

static void
test_progress(void)
{
	struct t t;
	uint64_t seq, seq2, bytes;

	t_open(&t, false);
	buf_reset(&t.out);
	CHECK(t_wait(&t, &seq, NULL) == SMTP_IN_WAIT_COMMAND);
	t_feed(&t, "EH");
	CHECK(t_wait(&t, &seq2, NULL) == SMTP_IN_WAIT_LINE);
	t_feed(&t, "LO c.example\r\nNO");
	CHECK(t_wait(&t, &seq, NULL) == SMTP_IN_WAIT_LINE);
	CHECK(seq != seq2); /* a new line began */
	t_feed(&t, "O");
	CHECK(t_wait(&t, &seq2, NULL) == SMTP_IN_WAIT_LINE && seq2 == seq);
	t_feed(&t, "P\r\n");
	CHECK(t_wait(&t, NULL, NULL) == SMTP_IN_WAIT_COMMAND);
	buf_reset(&t.out);
	t_feed(&t, "MAIL FROM:<a@b.example>\r\nRCPT TO:<r@x.example>\r\n"
	           "DATA\r\n");
	CHECK(t_wait(&t, &seq, &bytes) == SMTP_IN_WAIT_DATA && bytes == 0);
	t_feed(&t, "Subject: x\r\n\r\n0123456789");
	CHECK(t_wait(&t, &seq2, &bytes) == SMTP_IN_WAIT_DATA);
	CHECK(seq2 == seq && bytes == 24);
	t_feed(&t, "\r\n.\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	CHECK(t_wait(&t, NULL, NULL) == SMTP_IN_WAIT_NONE);
	queue_submit_free(smtp_in_commit_take(t.s));
	/* a line over the limit being skipped is still a line */
	t_close(&t);
	t_open(&t, false);
	{
		char big[600];

		memset(big, 'A', sizeof(big));
		t_feed_n(&t, big, sizeof(big));
		CHECK(t_wait(&t, NULL, NULL) == SMTP_IN_WAIT_LINE);
	}
	t_close(&t);
}

static void
test_deadline_reply(void)
{
	struct t t;

	t_open(&t, false);
	buf_reset(&t.out);
	t_feed(&t, "EHLO c.exa");
	t.act = smtp_in_deadline(t.s, &t.out);
	CHECK(t.act == SMTP_IN_CLOSE);
	CHECK(t_out_is(&t, "421 4.4.2 " HOST " Error: timeout exceeded\r\n"));
	t_close(&t);
}

static void
test_http(void)
{
	static const char *const lines[] = {"GET / HTTP/1.1\r\n",
	    "post /x HTTP/1.0\r\n", "HEAD / HTTP/1.1\r\n",
	    "PUT /x HTTP/1.1\r\n", "CONNECT mx.example:25 HTTP/1.1\r\n",
	    "OPTIONS * HTTP/1.1\r\n", "BREW /pot HTTP/1.1\r\n",
	    "Host: example.com\r\n"};
	struct t t;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		t_open(&t, false);
		buf_reset(&t.out);
		CHECK(t_x(&t, lines[i],
		    "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n"));
		CHECK(t.act == SMTP_IN_CLOSE);
		t_close(&t);
	}
	/* the same words inside SMTP commands are not HTTP */
	t_open(&t, false);
	buf_reset(&t.out);
	CHECK(t_x(&t, "NOOP HTTP/1.1\r\nVRFY GET\r\n",
	    "250 2.0.0 Ok\r\n"
	    "252 2.0.0 Cannot VRFY user, but will accept message\r\n"));
	CHECK(t.act == SMTP_IN_READ);
	t_close(&t);
}

static void
test_auth_too_long(void)
{
	enum { MAX = 12288 };
	char *line = malloc(MAX + 16 + 3);
	struct t t;

	t_open(&t, false);
	t_feed(&t, "EHLO c.example\r\n");
	buf_reset(&t.out);
	/* a response one octet over RFC 4954's 12288 */
	CHECK(t_x(&t, "AUTH PLAIN\r\n", "334 \r\n"));
	memset(line, 'A', MAX + 1);
	memcpy(line + MAX + 1, "\r\n", 3);
	CHECK(t_x(&t, line,
	    "500 5.5.6 Authentication Exchange line is too long\r\n"));
	CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n")); /* exchange over */
	/* the same in two pieces: skipped, then judged */
	CHECK(t_x(&t, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n"));
	t_feed_n(&t, line, MAX / 2);
	t_feed(&t, line + MAX / 2);
	CHECK(t_out_is(
	    &t, "500 5.5.6 Authentication Exchange line is too long\r\n"));
	/* an AUTH command with an over-long initial response */
	memcpy(line, "AUTH PLAIN ", 11);
	CHECK(t_x(&t, line,
	    "500 5.5.6 Authentication Exchange line is too long\r\n"));
	/* other commands keep their 512 and 5.5.2 */
	memcpy(line, "NOOP ", 5);
	CHECK(t_x(&t, line, "500 5.5.2 Error: line too long\r\n"));
	/* 12288 octets is within the limit: decoded and judged */
	CHECK(t_x(&t, "AUTH PLAIN\r\n", "334 \r\n"));
	memset(line, 'A', MAX);
	memcpy(line + MAX, "\r\n", 3);
	t_feed(&t, line);
	CHECK(t.act == SMTP_IN_CLOSE || buf_avail(&t.out) > 0);
	CHECK(memcmp(buf_peek(&t.out), "535 5.7.8", 9) == 0);
	free(line);
	t_close(&t);
}

/* The Received header of a message after `helo`. */
static bool
received_from(const char *helo, const char *want)
{
	struct t t;
	struct queue_submit *req;
	char in[512];
	bool ok;

	t_open(&t, false);
	snprintf(in, sizeof(in),
	    "HELO %s\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@x.example>\r\n"
	    "DATA\r\n",
	    helo);
	t_feed(&t, in);
	t_feed(&t, "x\r\n.\r\n");
	if (t.act != SMTP_IN_COMMIT) {
		t_close(&t);
		return false;
	}
	req = smtp_in_commit_take(t.s);
	ok = buf_avail(&req->body) > strlen(want) &&
	     memcmp(buf_peek(&req->body), want, strlen(want)) == 0 &&
	     strcmp(req->helo, helo) == 0; /* the record keeps it as given */
	if (!ok)
		fprintf(stderr, "want: [%s]\ngot:  [%.*s]\n", want,
		    (int)buf_avail(&req->body),
		    (const char *)buf_peek(&req->body));
	queue_submit_free(req);
	t_close(&t);
	return ok;
}

static void
test_helo_neutered(void)
{
	CHECK(received_from("evil(host",
	    "Received: from evil?host (rdns-less [192.0.2.1])\r\n"));
	CHECK(received_from("a(b)c)\\d",
	    "Received: from a?b?c??d (rdns-less [192.0.2.1])\r\n"));
	CHECK(received_from("x\"y;z@w<v>",
	    "Received: from x?y?z?w?v? (rdns-less [192.0.2.1])\r\n"));
	CHECK(received_from("[192.0.2.7]",
	    "Received: from [192.0.2.7] (rdns-less [192.0.2.1])\r\n"));
}

static const struct harness_case cases[] = {
    {"greet_wait", test_greet_wait},
    {"early_talker", test_early_talker},
    {"progress", test_progress},
    {"deadline_reply", test_deadline_reply},
    {"http", test_http},
    {"auth_too_long", test_auth_too_long},
    {"helo_neutered", test_helo_neutered},
};

HARNESS_MAIN(cases)
