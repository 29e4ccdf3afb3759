/* SPDX-License-Identifier: ISC */
/*
 * smtp_in_test.c - the receive-side state machine, driven without
 * sockets: every reply row of SPEC's receive-side table, the limits at
 * the limit and one past, SMTP smuggling, STARTTLS injection, AUTH, the
 * commit flow, and a pipelined transcript split at every byte offset.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"
#include "smtp/smtp_parse.h"
#include "../harness.h"

#define HOST "mx.test"

struct budget {
	size_t used, limit;
};

static bool
budget_reserve(void *arg, size_t n)
{
	struct budget *b = arg;

	if (n > b->limit - b->used)
		return false;
	b->used += n;
	return true;
}

static void
budget_release(void *arg, size_t n)
{
	struct budget *b = arg;

	b->used -= n;
}

static uint64_t
fake_id_new(void *arg)
{
	return ++*(uint64_t *)arg;
}

/* One session under test and what the fake loop saw. */
struct t {
	struct smtp_in_cfg cfg;
	struct smtp_in_peer peer;
	struct smtp_in *s;
	struct buf out;
	enum smtp_in_action act;
	uint64_t ids;
	struct budget budget;
	unsigned commits;          /* messages handed to the queue */
	struct queue_submit *last; /* the last one, kept for checks */
};

static void
t_cfg(struct t *t)
{
	memset(t, 0, sizeof(*t));
	t->cfg.hostname = HOST;
	t->cfg.max_message_size = 10000;
	t->cfg.max_recipients = 3;
	t->cfg.max_errors = 10;
	t->cfg.tls_available = true;
	t->cfg.auth_available = true;
	t->cfg.auth_require_tls = true;
	t->cfg.auth_max_failures = 3;
	t->cfg.id_new = fake_id_new;
	t->cfg.id_arg = &t->ids;
	t->budget.limit = SIZE_MAX;
	t->cfg.inflight_reserve = budget_reserve;
	t->cfg.inflight_release = budget_release;
	t->cfg.inflight_arg = &t->budget;
	strcpy(t->peer.addr, "192.0.2.1");
	t->peer.port = 40000;
	t->peer.relay_allowed = true;
	buf_init(&t->out, 1 << 20);
}

static void
t_start(struct t *t)
{
	t->s = smtp_in_new(&t->cfg, &t->peer, &t->out);
	t->act = SMTP_IN_READ;
}

static void
t_open(struct t *t)
{
	t_cfg(t);
	t_start(t);
	buf_reset(&t->out);
}

static void
t_close(struct t *t)
{
	smtp_in_free(t->s);
	queue_submit_free(t->last);
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

/* A deep copy of what was queued, kept after the session frees its own. */
static struct queue_submit *
submit_copy(const struct queue_submit *q)
{
	struct queue_submit *c = calloc(1, sizeof(*c));

	*c = *q;
	c->from = strdup(q->from);
	c->rcpts = calloc(q->nrcpts ? q->nrcpts : 1, sizeof(*c->rcpts));
	for (size_t i = 0; i < q->nrcpts; i++)
		c->rcpts[i] = strdup(q->rcpts[i]);
	c->user = q->user != NULL ? strdup(q->user) : NULL;
	c->client = strdup(q->client);
	c->helo = strdup(q->helo);
	c->envid = q->envid != NULL ? strdup(q->envid) : NULL;
	c->notify = NULL;
	c->orcpts = NULL;
	if (q->notify != NULL) {
		c->notify = calloc(q->nrcpts, 1);
		c->orcpts = calloc(q->nrcpts, sizeof(*c->orcpts));
		memcpy(c->notify, q->notify, q->nrcpts);
		for (size_t i = 0; i < q->nrcpts; i++)
			c->orcpts[i] =
			    q->orcpts[i] ? strdup(q->orcpts[i]) : NULL;
	}
	buf_init(&c->body, SIZE_MAX);
	if (buf_append(&c->body, buf_peek(&q->body), buf_avail(&q->body)))
		abort();
	return c;
}

/* The loop's side of SMTP_IN_COMMIT: take, "commit" with status, done. */
static void
t_commit(struct t *t, int status)
{
	struct queue_submit *req = smtp_in_commit_take(t->s);

	req->status = status;
	if (status == 0)
		t->commits++;
	/* Keep a copy of what was queued for the checks. */
	queue_submit_free(t->last);
	t->last = submit_copy(req);
	t->act = smtp_in_commit_done(t->s, req, &t->out);
}

/* Does out hold exactly `want`? Print both when not. Resets out. */
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

/* Feed, then compare the replies. */
static bool
t_x(struct t *t, const char *in, const char *want)
{
	t_feed(t, in);
	return t_out_is(t, want);
}

/* Does out start with `want`? Resets out. */
static bool
t_out_starts(struct t *t, const char *want)
{
	size_t n = buf_avail(&t->out);
	bool ok = n >= strlen(want) &&
	          memcmp(buf_peek(&t->out), want, strlen(want)) == 0;

	if (!ok)
		fprintf(stderr, "want prefix: [%s]\ngot: [%.*s]\n", want,
		    (int)n, (const char *)buf_peek(&t->out));
	buf_reset(&t->out);
	return ok;
}

#define EHLO_REPLY_BASE                                                        \
	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n" \
	"250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n"

/* EHLO, MAIL, one RCPT, DATA: ready for the body. */
static bool
t_to_data(struct t *t)
{
	t_feed(t, "EHLO client.example\r\n");
	buf_reset(&t->out);
	return t_x(t, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n") &&
	       t_x(t, "RCPT TO:<r@x.example>\r\n", "250 2.1.5 Ok\r\n") &&
	       t_x(t, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
}

static void
test_greeting(void)
{
	struct t t;

	t_cfg(&t);
	t_start(&t);
	CHECK(t_out_is(&t, "220 " HOST " ESMTP\r\n"));
	CHECK(smtp_in_want_read(t.s));
	CHECK(!smtp_in_busy(t.s));
	t_close(&t);
}

static void
test_ehlo_advertise(void)
{
	struct t t;

	t_open(&t);
	CHECK(t_x(&t, "EHLO client.example\r\n",
	    EHLO_REPLY_BASE "250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"));
	CHECK(t_x(&t, "HELO client.example\r\n", "250 " HOST "\r\n"));
	t_close(&t);

	/* AUTH before TLS only when TLS is not required for it. */
	t_cfg(&t);
	t.cfg.auth_require_tls = false;
	t_start(&t);
	buf_reset(&t.out);
	CHECK(t_x(&t, "ehlo client.example\r\n",
	    EHLO_REPLY_BASE "250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n"
	                    "250 ENHANCEDSTATUSCODES\r\n"));
	t_close(&t);

	/* Implicit TLS: no STARTTLS, AUTH offered. */
	t_cfg(&t);
	t.peer.tls = true;
	t_start(&t);
	buf_reset(&t.out);
	CHECK(t_x(&t, "EHLO client.example\r\n",
	    EHLO_REPLY_BASE
	    "250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n"));
	CHECK(
	    t_x(&t, "STARTTLS\r\n", "503 5.5.1 Error: TLS already active\r\n"));
	t_close(&t);

	/* Neither a certificate nor a users file. */
	t_cfg(&t);
	t.cfg.tls_available = false;
	t.cfg.auth_available = false;
	t.peer.tls = true;
	t_start(&t);
	buf_reset(&t.out);
	CHECK(t_x(&t, "EHLO client.example\r\n",
	    EHLO_REPLY_BASE "250 ENHANCEDSTATUSCODES\r\n"));
	CHECK(t_x(&t, "STARTTLS\r\n",
	    "502 5.5.1 Error: command not implemented\r\n"));
	CHECK(t_x(&t, "AUTH PLAIN\r\n",
	    "503 5.5.1 Error: authentication not enabled\r\n"));
	t_close(&t);
}

/* Rows of "send one line, expect this reply" from a fresh session. */
struct row {
	const char *setup; /* fed first, replies ignored */
	const char *in;
	const char *want;
};

static void
run_rows(const struct row *rows, size_t n, bool relay)
{
	for (size_t i = 0; i < n; i++) {
		struct t t;

		t_cfg(&t);
		t.peer.relay_allowed = relay;
		t_start(&t);
		if (rows[i].setup != NULL)
			t_feed(&t, rows[i].setup);
		buf_reset(&t.out);
		if (!t_x(&t, rows[i].in, rows[i].want)) {
			fprintf(stderr, "row %zu: %s", i, rows[i].in);
			harness_failed = 1;
		}
		t_close(&t);
	}
}

#define EH "EHLO c.example\r\n"
#define MF "MAIL FROM:<a@b.example>\r\n"
#define RT "RCPT TO:<r@x.example>\r\n"

static void
test_reply_rows(void)
{
	static const struct row rows[] = {
	    {NULL, "HELO\r\n", "501 5.5.4 Syntax: HELO hostname\r\n"},
	    {NULL, "EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n"},
	    {NULL, "EHLO   \r\n", "501 5.5.4 Syntax: EHLO hostname\r\n"},
	    {NULL,
	        "EHLO a\x01"
	        "b\r\n",
	        "501 5.5.4 Syntax: EHLO hostname\r\n"},
	    {NULL, "MAIL FROM:<a@b.example>\r\n",
	        "503 5.5.1 Error: send HELO/EHLO first\r\n"},
	    {EH, "RCPT TO:<r@x.example>\r\n",
	        "503 5.5.1 Error: need MAIL command\r\n"},
	    {EH, "DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n"},
	    {EH MF, "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n"},
	    {EH MF, MF, "503 5.5.1 Error: nested MAIL command\r\n"},
	    {EH MF RT, "DATA x\r\n", "501 5.5.4 Syntax: DATA\r\n"},
	    {NULL, "AUTH PLAIN\r\n",
	        "503 5.5.1 Error: send HELO/EHLO first\r\n"},
	    /* after HELO, AUTH is taken (here: refused only for want of TLS) */
	    {"HELO c.example\r\n", "AUTH PLAIN\r\n",
	        "538 5.7.11 Encryption required for "
	        "requested authentication mechanism\r\n"},
	    {EH, "AUTH PLAIN\r\n",
	        "538 5.7.11 Encryption required for "
	        "requested authentication mechanism\r\n"},
	    {EH MF, "STARTTLS\r\n",
	        "503 5.5.1 Error: MAIL transaction in progress\r\n"},
	    {NULL, "STARTTLS\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n"},
	    {EH, "STARTTLS now\r\n", "501 5.5.4 Syntax: STARTTLS\r\n"},
	    {NULL, "FOO\r\n", "500 5.5.1 Error: command not recognized\r\n"},
	    {NULL, "\r\n", "500 5.5.1 Error: command not recognized\r\n"},
	    {NULL, "BDAT 10 LAST\r\n",
	        "503 5.5.1 Error: send HELO/EHLO first\r\n"},
	    {NULL, "NOOP\r\n", "250 2.0.0 Ok\r\n"},
	    {NULL, "noop hello\r\n", "250 2.0.0 Ok\r\n"},
	    {EH MF, "RSET\r\n", "250 2.0.0 Ok\r\n"},
	    {NULL, "VRFY root\r\n",
	        "252 2.0.0 Cannot VRFY user, but will accept message\r\n"},
	    {NULL, "VRFY\r\n",
	        "252 2.0.0 Cannot VRFY user, but will accept message\r\n"},
	    {NULL, "HELP\r\n",
	        "214 2.0.0 Commands: EHLO HELO MAIL RCPT "
	        "DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS "
	        "AUTH\r\n"},
	    {NULL, "QUIT\r\n", "221 2.0.0 Bye\r\n"},
	    {EH, "MAIL FROM:<a@b.example> SIZE=10000\r\n", "250 2.1.0 Ok\r\n"},
	    {EH, "MAIL FROM:<a@b.example> SIZE=10001\r\n",
	        "552 5.3.4 Error: message size exceeds fixed limit\r\n"},
	    {EH, "MAIL FROM:<a@b.example> FOO=1\r\n",
	        "555 5.5.4 Error: unsupported parameter\r\n"},
	    {EH, "MAIL FROM:<a@b.example> BODY=9BIT\r\n",
	        "501 5.5.4 Error: bad parameter\r\n"},
	    {EH, "MAIL FROM:<a@b.example> AUTH=<>\r\n", "250 2.1.0 Ok\r\n"},
	    {EH, "MAIL FROM:<a@b.example> BODY=8BITMIME SMTPUTF8\r\n",
	        "250 2.1.0 Ok\r\n"},
	    {EH, "MAIL FROM:<>\r\n", "250 2.1.0 Ok\r\n"},
	    {EH, "mail from: <a@b.example>\r\n", "250 2.1.0 Ok\r\n"},
	    {EH, "MAIL FROM:a@b.example\r\n",
	        "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
	    {EH, "MAIL FROM:<a..b@b.example>\r\n",
	        "501 5.1.7 Error: bad sender address syntax\r\n"},
	    {EH MF, "RCPT TO:<>\r\n",
	        "501 5.1.3 Error: bad recipient address syntax\r\n"},
	    {EH MF, "RCPT TO:<r@x.example> XFOO=1\r\n",
	        "555 5.5.4 Error: unsupported parameter\r\n"},
	    {EH MF, "RCPT TO:<\xc3\xbc@x.example>\r\n",
	        "501 5.1.3 Error: bad recipient address syntax\r\n"},
	    {EH "MAIL FROM:<a@b.example> SMTPUTF8\r\n",
	        "RCPT TO:<\xc3\xbc@x.example>\r\n", "250 2.1.5 Ok\r\n"},
	    {EH MF RT, RT, "250 2.1.5 Ok\r\n"}, /* duplicate, kept once */
	    /* bare LF ends a command line; a bare CR is refused */
	    {NULL, "NOOP\n", "250 2.0.0 Ok\r\n"},
	    {NULL, "NO\rOP\r\n", "500 5.5.2 Error: bare <CR> received\r\n"},
	    {NULL, "NOOP\r\r\n", "500 5.5.2 Error: bare <CR> received\r\n"},
	    {EH, "MAIL FROM:<a@b.example>\n", "250 2.1.0 Ok\r\n"},
	    {EH, "MAIL FROM: <a@b.example>\n", "250 2.1.0 Ok\r\n"},
	};

	run_rows(rows, MTA_ARRAY_LEN(rows), true);
}

static void
test_nul_command(void)
{
	struct t t;

	t_open(&t);
	t_feed_n(&t, "NO\0OP\r\n", 7);
	CHECK(t_out_is(&t, "500 5.5.2 Error: NUL character received\r\n"));
	t_close(&t);
}

/* RCPT to an address literal: 550 5.7.1 unless allowed (issue 16). */
static void
test_address_literal(void)
{
	static const char *const lits[] = {"x@[127.0.0.1]", "x@[10.1.2.3]",
	    "x@[169.254.169.254]", "x@[IPv6:::1]", "\"a@b\"@[192.0.2.1]"};
	struct t t;
	char line[128];

	t_open(&t);
	t_feed(&t, EH MF);
	buf_reset(&t.out);
	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", lits[i]);
		CHECK(t_x(&t, line,
		    "550 5.7.1 Address literals are not accepted here\r\n"));
	}
	CHECK(t_x(&t, "RCPT TO:<x@example.com>\r\n", "250 2.1.5 Ok\r\n"));
	t_close(&t);

	t_cfg(&t);
	t.cfg.allow_address_literals = true;
	t_start(&t);
	t_feed(&t, EH MF);
	buf_reset(&t.out);
	CHECK(t_x(&t, "RCPT TO:<x@[127.0.0.1]>\r\n", "250 2.1.5 Ok\r\n"));
	t_close(&t);
}

static void
test_relay_denied(void)
{
	struct t t;

	t_cfg(&t);
	t.peer.relay_allowed = false;
	t_start(&t);
	buf_reset(&t.out);
	t_feed(&t, EH MF);
	buf_reset(&t.out);
	CHECK(t_x(&t, RT, "554 5.7.1 Relay access denied\r\n"));
	CHECK(t_x(&t, "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n"));
	CHECK(t.act == SMTP_IN_READ && t.commits == 0);
	t_close(&t);
}

static void
test_too_many_recipients(void)
{
	struct t t;

	t_open(&t);
	t_feed(&t, EH MF);
	buf_reset(&t.out);
	CHECK(t_x(&t,
	    "RCPT TO:<r1@x.example>\r\nRCPT TO:<r2@x.example>\r\n"
	    "RCPT TO:<r3@x.example>\r\n",
	    "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"));
	CHECK(t_x(&t, "RCPT TO:<r4@x.example>\r\n",
	    "452 4.5.3 Error: too many recipients\r\n"));
	CHECK(t_x(&t, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n"));
	CHECK(t_x(&t, "hi\r\n.\r\n", ""));
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t.last->nrcpts == 3);
	CHECK(strcmp(t.last->rcpts[2], "r3@x.example") == 0);
	CHECK(t_out_is(&t, "250 2.0.0 Ok: queued as 0000000000000001\r\n"));
	t_close(&t);
}

/* A command line of n octets including CRLF. */
static void
make_cmd(char *dst, size_t n)
{
	memcpy(dst, "NOOP ", 5);
	memset(dst + 5, 'x', n - 7);
	memcpy(dst + n - 2, "\r\n", 3);
}

static void
test_command_line_limit(void)
{
	char line[600];
	struct t t;

	t_open(&t);
	make_cmd(line, 512);
	CHECK(strlen(line) == 512);
	CHECK(t_x(&t, line, "250 2.0.0 Ok\r\n"));
	make_cmd(line, 513);
	CHECK(t_x(&t, line, "500 5.5.2 Error: line too long\r\n"));
	/* The same, a byte at a time: the partial line is held, then cut. */
	make_cmd(line, 512);
	for (size_t i = 0; i < 512; i++)
		t_feed_n(&t, line + i, 1);
	CHECK(t_out_is(&t, "250 2.0.0 Ok\r\n"));
	make_cmd(line, 513);
	for (size_t i = 0; i < 513; i++)
		t_feed_n(&t, line + i, 1);
	CHECK(t_out_is(&t, "500 5.5.2 Error: line too long\r\n"));
	CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
	t_close(&t);
}

/* 1 MiB without LF: nothing held, one error at the end of it. */
static void
test_endless_line(void)
{
	char chunk[4096];
	struct t t;

	memset(chunk, 'A', sizeof(chunk));
	t_open(&t);
	for (int i = 0; i < 256; i++) {
		t_feed_n(&t, chunk, sizeof(chunk));
		CHECK(smtp_in_want_read(t.s));
		CHECK(buf_avail(&t.out) == 0);
	}
	CHECK(t_x(&t, "\r\nNOOP\r\n",
	    "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"));
	t_close(&t);
}

static void
test_max_errors(void)
{
	struct t t;

	t_cfg(&t);
	t.cfg.max_errors = 2;
	t_start(&t);
	buf_reset(&t.out);
	CHECK(t_x(&t, "FOO\r\nBAR\r\n",
	    "500 5.5.1 Error: command not "
	    "recognized\r\n500 5.5.1 Error: "
	    "command not recognized\r\n"));
	CHECK(t.act == SMTP_IN_READ);
	CHECK(t_x(&t, "BAZ\r\nNOOP\r\n",
	    "500 5.5.1 Error: command not recognized\r\n"
	    "421 4.7.0 " HOST " Error: too many errors\r\n"));
	CHECK(t.act == SMTP_IN_CLOSE && !smtp_in_want_read(t.s));
	CHECK(t_x(&t, "NOOP\r\n", ""));
	t_close(&t);
}

static void
test_timeout_shutdown_quit(void)
{
	struct t t;

	t_open(&t);
	CHECK(smtp_in_timeout(t.s, &t.out) == SMTP_IN_CLOSE);
	CHECK(t_out_is(
	    &t, "421 4.4.2 " HOST " Timeout - closing connection\r\n"));
	t_close(&t);

	t_open(&t);
	CHECK(smtp_in_shutdown(t.s, &t.out) == SMTP_IN_CLOSE);
	CHECK(t_out_is(&t, "421 4.3.2 " HOST " Service shutting down\r\n"));
	t_close(&t);

	/* Nothing after QUIT runs. */
	t_open(&t);
	CHECK(t_x(&t, "QUIT\r\nNOOP\r\n", "221 2.0.0 Bye\r\n"));
	CHECK(t.act == SMTP_IN_CLOSE);
	t_close(&t);
}

/* Send body, expect a rejection reply, nothing queued, and the session
 * still usable. */
static bool
t_reject_body(struct t *t, const void *body, size_t n, const char *want)
{
	unsigned before = t->commits;

	t_feed_n(t, body, n);
	return t->act == SMTP_IN_READ && t_out_is(t, want) &&
	       t->commits == before;
}

static void
test_commit_flow(void)
{
	static const char body[] = "Subject: hi\r\n\r\nline one\r\n..dotted\r\n"
	                           ".\r\n";
	const uint8_t *b;
	const char *tail;
	struct t t;
	size_t n;

	t_open(&t);
	CHECK(t_to_data(&t));
	CHECK(smtp_in_busy(t.s));
	/* End of data plus a pipelined next transaction in one read. */
	t_feed(&t, body);
	t_feed(&t, "MAIL FROM:<c@d.example>\r\nRCPT TO:<e@f.example>\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	CHECK(buf_avail(&t.out) == 0); /* no 250 before the commit */
	CHECK(!smtp_in_want_read(t.s));
	CHECK(smtp_in_busy(t.s));
	t_commit(&t, 0);
	CHECK(t.act == SMTP_IN_READ);
	CHECK(t_out_is(&t, "250 2.0.0 Ok: queued as 0000000000000001\r\n"
	                   "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"));
	CHECK(t.last->msg.type == QUEUE_REQ_SUBMIT);
	CHECK(t.last->id == 1);
	CHECK(strcmp(t.last->from, "a@b.example") == 0);
	CHECK(t.last->nrcpts == 1 &&
	      strcmp(t.last->rcpts[0], "r@x.example") == 0);
	CHECK(t.last->user == NULL);
	CHECK(strcmp(t.last->client, "192.0.2.1") == 0);
	CHECK(strcmp(t.last->helo, "client.example") == 0);
	CHECK(t.last->received_ms > 0);
	b = buf_peek(&t.last->body);
	n = buf_avail(&t.last->body);
	CHECK(n > 9 && memcmp(b, "Received: ", 10) == 0);
	/* Unstuffed, CRLF kept, the final "." line gone. */
	tail = "\r\nSubject: hi\r\n\r\nline one\r\n.dotted\r\n";
	CHECK(n > strlen(tail) &&
	      memcmp(b + n - strlen(tail), tail, strlen(tail)) == 0);
	CHECK(t.budget.used == 0);

	/* The committer's failures: map/disk full, other error. */
	CHECK(t_x(&t, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n"));
	t_feed(&t, "x\r\n.\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, -ENOSPC);
	CHECK(t_out_is(&t, "452 4.3.1 Insufficient system storage\r\n"));
	CHECK(!smtp_in_busy(t.s));
	CHECK(t_x(&t, "DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n"));
	CHECK(t_to_data(&t));
	t_feed(&t, "x\r\n.\r\n");
	t_commit(&t, -EIO);
	CHECK(t_out_is(&t, "451 4.3.0 Error: queue file write error\r\n"));
	CHECK(t.commits == 1 && t.ids == 3 && t.budget.used == 0);
	t_close(&t);
}

/* DSN (RFC 3461): advertised; RET, ENVID, NOTIFY and ORCPT reach the
 * queue request as sent; bad values are 501 5.5.4; RSET forgets them. */
static void
test_dsn_params(void)
{
	struct t t;

	t_open(&t);
	t_feed(&t, "EHLO client.example\r\n");
	buf_reset(&t.out);
	CHECK(t_x(&t, "MAIL FROM:<a@b.example> RET=FULL ENVID=old\r\n",
	    "250 2.1.0 Ok\r\n"));
	CHECK(t_x(&t, "RCPT TO:<z@x.example> NOTIFY=SUCCESS\r\n",
	    "250 2.1.5 Ok\r\n"));
	{
		/* RFC 3461 5: RCPT may be 500 octets longer for them */
		char line[700];

		memset(line, 0, sizeof(line));
		strcpy(line,
		    "RCPT TO:<o@x.example> NOTIFY=SUCCESS,FAILURE,DELAY "
		    "ORCPT=rfc822;");
		memset(line + strlen(line), 'o', 493);
		strcat(line, "\r\n");
		CHECK(strlen(line) > 512 && strlen(line) <= 1012);
		CHECK(t_x(&t, line, "250 2.1.5 Ok\r\n"));
	}
	CHECK(t_x(&t, "RSET\r\n", "250 2.0.0 Ok\r\n"));
	CHECK(t_x(&t, "MAIL FROM:<a@b.example> RET=FULL RET=HDRS\r\n",
	    "501 5.5.4 Error: bad parameter\r\n"));
	CHECK(t_x(&t, "MAIL FROM:<a@b.example> ENVID=a+2\r\n",
	    "501 5.5.4 Error: bad parameter\r\n"));
	CHECK(t_x(&t, "MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ+2B1\r\n",
	    "250 2.1.0 Ok\r\n"));
	CHECK(t_x(&t, "RCPT TO:<r@x.example> NOTIFY=NEVER,DELAY\r\n",
	    "501 5.5.4 Error: bad parameter\r\n"));
	CHECK(t_x(&t, "RCPT TO:<r@x.example> ORCPT=rfc822\r\n",
	    "501 5.5.4 Error: bad parameter\r\n"));
	CHECK(t_x(&t, "RCPT TO:<p@x.example>\r\n", "250 2.1.5 Ok\r\n"));
	CHECK(t_x(&t,
	    "RCPT TO:<r@x.example> NOTIFY=SUCCESS,FAILURE "
	    "ORCPT=rfc822;o+40x.example\r\n",
	    "250 2.1.5 Ok\r\n"));
	CHECK(t_x(
	    &t, "RCPT TO:<n@x.example> NOTIFY=NEVER\r\n", "250 2.1.5 Ok\r\n"));
	CHECK(t_x(&t, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n"));
	t_feed(&t, "x\r\n.\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t.last->nrcpts == 3);
	CHECK(t.last->ret == QUEUE_RET_HDRS);
	CHECK(t.last->envid != NULL && strcmp(t.last->envid, "QQ+2B1") == 0);
	CHECK(t.last->notify != NULL && t.last->orcpts != NULL);
	if (t.last->notify != NULL && t.last->orcpts != NULL) {
		CHECK(t.last->notify[0] == 0 && t.last->orcpts[0] == NULL);
		CHECK(t.last->notify[1] ==
		      (QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE));
		CHECK(t.last->orcpts[1] != NULL &&
		      strcmp(t.last->orcpts[1], "rfc822;o+40x.example") == 0);
		CHECK(t.last->notify[2] == QUEUE_NOTIFY_NEVER &&
		      t.last->orcpts[2] == NULL);
	}
	/* the next transaction starts without any */
	CHECK(t_to_data(&t));
	t_feed(&t, "x\r\n.\r\n");
	t_commit(&t, 0);
	CHECK(t.last->ret == 0 && t.last->envid == NULL &&
	      t.last->notify == NULL && t.last->orcpts == NULL);
	t_close(&t);
}

/* The loop frees a session with a message still in its hands. */
static void
test_free_while_committing(void)
{
	struct t t;

	t_open(&t);
	CHECK(t_to_data(&t));
	t_feed(&t, "x\r\n.\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	smtp_in_free(t.s);
	t.s = NULL;
	CHECK(t.budget.used == 0);
	t_close(&t);
}

static void
test_data_before_354(void)
{
	struct t t;

	t_open(&t);
	t_feed(&t, EH MF RT);
	buf_reset(&t.out);
	CHECK(t_x(&t, "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
	    "554 5.5.0 Error: SMTP protocol synchronization\r\n"));
	CHECK(t.act == SMTP_IN_CLOSE && t.commits == 0);
	t_close(&t);
}

static void
test_text_line_limit(void)
{
	char line[1100];
	struct t t;

	/* 1000 octets with CRLF: accepted. */
	memset(line, 'a', 998);
	memcpy(line + 998, "\r\n.\r\n", 6);
	t_open(&t);
	CHECK(t_to_data(&t));
	t_feed(&t, line);
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
	/* 1001: refused at the end, nothing queued. */
	memset(line, 'a', 999);
	memcpy(line + 999, "\r\n.\r\n", 6);
	CHECK(t_to_data(&t));
	CHECK(t_reject_body(&t, line, strlen(line),
	    "500 5.5.2 Error: message line too long\r\n"));
	CHECK(t.commits == 1);
	/* A dot-stuffed line counts its dot (wire octets). */
	line[0] = '.';
	memset(line + 1, 'a', 998);
	memcpy(line + 999, "\r\n.\r\n", 6);
	CHECK(t_to_data(&t));
	t_feed(&t, line);
	CHECK(t_out_is(&t, "500 5.5.2 Error: message line too long\r\n"));
	CHECK(t.commits == 1 && t.act == SMTP_IN_READ);
	t_close(&t);
}

static bool received_is(
    const struct queue_submit *q, const char *head, const char *tail);

/* The message as queued, after our Received header. */
static const char *
t_msg(const struct queue_submit *q, size_t *n)
{
	const char *b = (const char *)buf_peek(&q->body);
	size_t len = buf_avail(&q->body);

	for (size_t i = 0; i + 2 <= len; i++)
		if (b[i] == '\r' && b[i + 1] == '\n' &&
		    (i + 2 == len || b[i + 2] != '\t')) {
			*n = len - i - 2;
			return b + i + 2;
		}
	*n = 0;
	return b + len;
}

/* Is the last queued message exactly want (after our header)? */
static bool
t_msg_is(struct t *t, const char *want, size_t wlen)
{
	size_t n;
	const char *m;

	if (t->last == NULL)
		return false;
	m = t_msg(t->last, &n);
	if (n == wlen && memcmp(m, want, n) == 0)
		return true;
	fprintf(stderr, "message: [%.*s]\n", (int)n, m);
	return false;
}

/* bare_newline = reject: today's 550 5.5.2, commands too. */
static void
test_bare_reject(void)
{
	static const char *bodies[] = {
	    "a\nb\r\n.\r\n",
	    "a\rb\r\n.\r\n",
	    "a\r\r\n.\r\n",
	    "a\r\n\n.\r\n.\r\n", /* "\n.\r\n" is not an end */
	    ".\n\r\n.\r\n",
	    "x\r\n.\rx\r\n.\r\n",
	};

	for (size_t i = 0; i < MTA_ARRAY_LEN(bodies); i++) {
		struct t t;

		t_cfg(&t);
		t.cfg.bare_reject = true;
		t_start(&t);
		buf_reset(&t.out);
		CHECK(t_to_data(&t));
		t_feed(&t, bodies[i]);
		CHECK(t.act == SMTP_IN_READ && t.commits == 0);
		CHECK(t_out_is(&t, "550 5.5.2 Error: bare <CR> or <LF> in "
		                   "message\r\n"));
		CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
		CHECK(t_x(
		    &t, "NOOP\n", "500 5.5.2 Error: bare <LF> received\r\n"));
		CHECK(t_x(&t, "MAIL FROM:<a@b.example>\n",
		    "500 5.5.2 Error: bare <LF> received\r\n"));
		t_close(&t);
	}
}

/* bare_newline = normalize: every bare line end is stored as CR LF, and a
 * "." line next to a bare line end is content. Whole, and cut at every
 * offset into two reads. */
static void
test_bare_normalize(void)
{
	static const struct {
		const char *wire, *stored;
	} rows[] = {
	    {"a\nb\r\n.\r\n", "a\r\nb\r\n"},
	    {"a\rb\r\n.\r\n", "a\r\nb\r\n"},
	    {"a\r\r\n.\r\n", "a\r\n\r\n"},
	    {"a\r\n\n.\r\n.\r\n", "a\r\n\r\n.\r\n"},
	    {".\n\r\n.\r\n", ".\r\n\r\n"},
	    {"x\r\n.\rx\r\n.\r\n", "x\r\n.\r\nx\r\n"},
	    {"x\n..y\n.\r\n.\r\n", "x\r\n.y\r\n.\r\n"},
	    {"S: 1\nR: 2\n\nline\n\r\n.\r\n",
	        "S: 1\r\nR: 2\r\n\r\nline\r\n\r\n"},
	    {"a\r\n\r.\r\n.\r\n", "a\r\n\r\n.\r\n"},
	};

	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		size_t n = strlen(rows[i].wire);

		for (size_t cut = 0; cut < n; cut++) {
			struct t t;

			t_open(&t);
			CHECK(t_to_data(&t));
			t_feed_n(&t, rows[i].wire, cut);
			t_feed_n(&t, rows[i].wire + cut, n - cut);
			CHECK(t.act == SMTP_IN_COMMIT);
			t_commit(&t, 0);
			CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
			if (!t_msg_is(
			        &t, rows[i].stored, strlen(rows[i].stored))) {
				fprintf(stderr, "row %zu cut %zu\n", i, cut);
				harness_failed = 1;
			}
			t_close(&t);
		}
	}
}

/*
 * SMTP smuggling: a fake end of data, then a whole second transaction,
 * then the real end. The fake end must be content and nothing behind it
 * may run as a command: exactly one message, holding all of it, the fake
 * end stored as a "." line (stuffed again on the way out). In reject mode
 * the message is refused instead. Whole and byte by byte.
 */
static void
test_smuggling(void)
{
	static const char *fake[] = {"\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n",
	    "\r.\r\n", "\n.\r", "\r\n.\r", "\r.\n"};
	static const char rest[] = "MAIL FROM:<evil@e.example>\r\n"
	                           "RCPT TO:<victim@v.example>\r\n"
	                           "DATA\r\n"
	                           "Subject: smuggled\r\n\r\nevil\r\n";
	char body[512], want[512];

	for (size_t i = 0; i < 3 * MTA_ARRAY_LEN(fake); i++) {
		size_t k = i % MTA_ARRAY_LEN(fake),
		       mode = i / MTA_ARRAY_LEN(fake);
		struct t t;

		snprintf(body, sizeof(body),
		    "Subject: one\r\n\r\nhello%s%s.\r\n", fake[k], rest);
		snprintf(want, sizeof(want),
		    "Subject: one\r\n\r\nhello\r\n.\r\n%s", rest);
		t_cfg(&t);
		t.cfg.bare_reject = mode == 2;
		t_start(&t);
		buf_reset(&t.out);
		CHECK(t_to_data(&t));
		if (mode == 1) /* byte by byte */
			for (size_t j = 0; body[j] != '\0'; j++)
				t_feed_n(&t, body + j, 1);
		else
			t_feed(&t, body);
		if (mode == 2) {
			CHECK(t.act == SMTP_IN_READ && t.commits == 0);
			CHECK(t_out_is(&t,
			    "550 5.5.2 Error: bare <CR> or <LF> in "
			    "message\r\n"));
		} else {
			CHECK(t.act == SMTP_IN_COMMIT);
			CHECK(buf_avail(&t.out) == 0);
			t_commit(&t, 0);
			CHECK(t_out_is(&t, "250 2.0.0 Ok: queued as "
			                   "0000000000000001\r\n"));
			CHECK(t_msg_is(&t, want, strlen(want)));
		}
		CHECK(t_x(&t, MF, "250 2.1.0 Ok\r\n"));
		CHECK(t.commits == (mode == 2 ? 0 : 1) && t.ids == 1);
		t_close(&t);
	}
}

/* NUL in content: refused 554 5.6.0 after the whole body (the session
 * stays in step), or stripped with nul_in_body = strip. */
static void
test_nul_body(void)
{
	static const struct {
		const char *wire;
		size_t n;
		const char *stripped;
	} rows[] = {
	    {"a\0b\r\n.\r\n", 8, "ab\r\n"},
	    {"S: x\r\n\r\nl\r\n\0.\r\n.\r\n", 18, "S: x\r\n\r\nl\r\n.\r\n"},
	    {"S: x\r\n\r\nplain\0line\r\nmore\r\n.\r\n", 29,
	        "S: x\r\n\r\nplainline\r\nmore\r\n"},
	    {"\0\0\0\r\n.\r\n", 8, "\r\n"},
	};

	for (size_t i = 0; i < 2 * MTA_ARRAY_LEN(rows); i++) {
		size_t r = i % MTA_ARRAY_LEN(rows);
		struct t t;

		t_cfg(&t);
		t.cfg.nul_strip = i >= MTA_ARRAY_LEN(rows);
		t_start(&t);
		buf_reset(&t.out);
		CHECK(t_to_data(&t));
		t_feed_n(&t, rows[r].wire, rows[r].n);
		if (!t.cfg.nul_strip) {
			CHECK(t.act == SMTP_IN_READ && t.commits == 0);
			CHECK(t_out_is(&t, "554 5.6.0 Error: NUL character in "
			                   "message\r\n"));
			CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
		} else {
			CHECK(t.act == SMTP_IN_COMMIT);
			t_commit(&t, 0);
			CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
			CHECK(t_msg_is(
			    &t, rows[r].stripped, strlen(rows[r].stripped)));
		}
		CHECK(t.budget.used == 0);
		t_close(&t);
	}
}

/* EHLO, MAIL, RCPT: ready for BDAT. */
static bool
t_to_rcpt(struct t *t)
{
	t_feed(t, EH MF RT);
	return t_out_is(t,
	    EHLO_REPLY_BASE "250-STARTTLS\r\n"
	                    "250 ENHANCEDSTATUSCODES\r\n250 2.1.0 Ok\r\n"
	                    "250 2.1.5 Ok\r\n");
}

/* BDAT: chunks pipelined in one read, 250 per chunk at once, the LAST
 * one only after the commit; raw bytes (no dots); BDAT 0 LAST. */
static void
test_bdat(void)
{
	static const char wire[] =
	    "BDAT 5\r\nab\r\ncBDAT 8\r\nd\r\n..\r\n.BDAT 5 LAST\r\n\r\nxyz";
	struct t t;

	t_open(&t);
	CHECK(t_to_rcpt(&t));
	t_feed(&t, wire);
	CHECK(t.act == SMTP_IN_COMMIT);
	CHECK(t_out_is(&t, "250 2.0.0 Ok: 5 octets received\r\n"
	                   "250 2.0.0 Ok: 8 octets received\r\n"));
	t_commit(&t, 0);
	CHECK(t_out_is(&t, "250 2.0.0 Ok: queued as 0000000000000001\r\n"));
	CHECK(t_msg_is(&t, "ab\r\ncd\r\n..\r\n.\r\nxyz\r\n", 20));
	CHECK(!smtp_in_busy(t.s) && t.budget.used == 0);
	/* BDAT 0 LAST alone: an empty message. */
	t_feed(&t, MF RT "BDAT 0 LAST\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_is(&t, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	                   "250 2.0.0 Ok: queued as 0000000000000002\r\n"));
	CHECK(t_msg_is(&t, "", 0));
	/* A chunk then BDAT 0 LAST; the Received header is ours. */
	t_feed(&t, MF RT "BDAT 3\r\nhi\nBDAT 0 LAST\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_is(&t, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	                   "250 2.0.0 Ok: 3 octets received\r\n"
	                   "250 2.0.0 Ok: queued as 0000000000000003\r\n"));
	CHECK(t_msg_is(&t, "hi\r\n", 4));
	CHECK(received_is(t.last,
	    "Received: from c.example (rdns-less [192.0.2.1])\r\n"
	    "\tby " HOST " (mta) with ESMTP id 0000000000000003\r\n"
	    "\tfor <r@x.example>; ",
	    "\r\nhi\r\n"));
	t_close(&t);
}

/* The RFC 3030 refusals; every chunk is still read to its end, so its
 * octets never run as commands. */
static void
test_bdat_refused(void)
{
	char big[10100];
	struct t t;
	size_t n;

	t_open(&t);
	CHECK(t_x(&t, "BDAT 6\r\nQUIT\r\n",
	    "503 5.5.1 Error: send HELO/EHLO first\r\n"));
	CHECK(t_x(&t, EH,
	    EHLO_REPLY_BASE "250-STARTTLS\r\n"
	                    "250 ENHANCEDSTATUSCODES\r\n"));
	CHECK(t_x(&t, "BDAT 6 LAST\r\nQUIT\r\n",
	    "503 5.5.1 Error: need MAIL command\r\n"));
	CHECK(t_x(&t, MF "BDAT 6\r\nQUIT\r\n",
	    "250 2.1.0 Ok\r\n503 5.5.1 Error: need RCPT command\r\n"));
	CHECK(t_x(&t, RT "BDAT 2\r\nabDATA\r\n",
	    "250 2.1.5 Ok\r\n250 2.0.0 Ok: 2 octets received\r\n"
	    "503 5.5.1 Error: DATA after BDAT\r\n"));
	CHECK(t_x(&t, "RSET\r\n", "250 2.0.0 Ok\r\n"));
	/* DATA, then BDAT in the next transaction only. */
	CHECK(t_x(&t, MF RT "DATA\r\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "354 End data with <CR><LF>.<CR><LF>\r\n"));
	t_feed(&t, "BDAT 4 LAST\r\nQUIT\r\n.\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
	CHECK(t_msg_is(&t, "BDAT 4 LAST\r\nQUIT\r\n", 19));
	CHECK(t_x(&t, "BDAT 6 LAST\r\nQUIT\r\n",
	    "503 5.5.1 Error: need MAIL command\r\n"));
	/* Over the size limit: 552 at that chunk, later chunks 503. */
	memset(big, 'a', sizeof(big));
	n = (size_t)snprintf(big, 64, "BDAT 10001\r\n");
	big[n] = 'a';
	t_feed(&t, MF RT);
	buf_reset(&t.out);
	t_feed_n(&t, big, n + 10001);
	CHECK(t_out_is(&t, "552 5.3.4 Error: message size exceeds fixed "
	                   "limit\r\n"));
	CHECK(t_x(&t, "BDAT 6 LAST\r\nQUIT\r\n",
	    "503 5.5.1 Error: need MAIL command\r\n"));
	/* Exactly at the limit: taken. */
	t_feed(&t, MF RT);
	buf_reset(&t.out);
	n = strlen("BDAT 10000 LAST\r\n");
	memset(big, 'a', 10000 + n);
	memcpy(big, "BDAT 10000 LAST\r\n", n);
	for (size_t i = 0; i < 10000; i += 100)
		memcpy(big + n + i + 98, "\r\n", 2);
	t_feed_n(&t, big, n + 10000);
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
	CHECK(t.commits == 2 && t.budget.used == 0);
	/* A count that cannot be read: the session cannot stay in step. */
	CHECK(t_x(&t, "BDAT x\r\n", "501 5.5.4 Syntax: BDAT count [LAST]\r\n"));
	CHECK(t.act == SMTP_IN_CLOSE);
	t_close(&t);
}

/* The same message by DATA and by BDAT: the same bytes stored, in both
 * bare_newline modes' accepting one and with NULs stripped. */
static void
test_bdat_same_as_data(void)
{
	static const char data[] =
	    "Subject: x\r\n\r\na\nb\rc\r\n..d\r\n\0e\r\n.\r\n";
	static const char bdat[] =
	    "BDAT 29 LAST\r\nSubject: x\r\n\r\na\nb\rc\r\n.d\r\n\0e\r\n";
	static const char want[] =
	    "Subject: x\r\n\r\na\r\nb\r\nc\r\n.d\r\ne\r\n";
	struct t t;

	t_cfg(&t);
	t.cfg.nul_strip = true;
	t_start(&t);
	buf_reset(&t.out);
	CHECK(t_to_data(&t));
	t_feed_n(&t, data, sizeof(data) - 1);
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_msg_is(&t, want, sizeof(want) - 1));
	buf_reset(&t.out);
	t_feed(&t, MF RT);
	t_feed_n(&t, bdat, sizeof(bdat) - 1);
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_msg_is(&t, want, sizeof(want) - 1));
	CHECK(t.commits == 2);
	t_close(&t);
}

static bool room_ok;

static bool
fake_room(void *arg, uint64_t size, uint64_t max_size)
{
	(void)arg;
	(void)size;
	(void)max_size;
	return room_ok;
}

/* The queue fills between MAIL and the body: DATA and the first BDAT get
 * 452 4.3.1, and the BDAT chunk is still read to its end. */
static void
test_bdat_no_room(void)
{
	struct t t;

	t_cfg(&t);
	t.cfg.room = fake_room;
	room_ok = true;
	t_start(&t);
	buf_reset(&t.out);
	CHECK(t_to_rcpt(&t));
	room_ok = false;
	CHECK(t_x(&t, "BDAT 6 LAST\r\nQUIT\r\n",
	    "452 4.3.1 Insufficient system storage\r\n"));
	CHECK(t_x(&t, "DATA\r\n", "452 4.3.1 Insufficient system storage\r\n"));
	room_ok = true;
	t_feed(&t, "BDAT 6 LAST\r\nQUIT\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
	CHECK(t_msg_is(&t, "QUIT\r\n", 6));
	CHECK(t.budget.used == 0);
	t_close(&t);
}

/* A BDAT chunk is content for the request deadlines: its octets count
 * toward the data rate, each chunk a new request. */
static void
test_bdat_progress(void)
{
	struct smtp_in_progress p;
	char fill[100];
	uint64_t seq;
	struct t t;

	memset(fill, 'x', sizeof(fill));
	t_open(&t);
	CHECK(t_to_rcpt(&t));
	t_feed(&t, "BDAT 100\r\nabc");
	smtp_in_progress(t.s, &p);
	CHECK(p.wait == SMTP_IN_WAIT_DATA && p.bytes == 3);
	seq = p.seq;
	t_feed(&t, "de");
	smtp_in_progress(t.s, &p);
	CHECK(p.wait == SMTP_IN_WAIT_DATA && p.bytes == 5 && p.seq == seq);
	t_feed_n(&t, fill, 95);
	CHECK(t_out_is(&t, "250 2.0.0 Ok: 100 octets received\r\n"));
	smtp_in_progress(t.s, &p);
	CHECK(p.wait == SMTP_IN_WAIT_COMMAND);
	t_feed(&t, "BDAT 10 LAST\r\nab");
	smtp_in_progress(t.s, &p);
	CHECK(p.wait == SMTP_IN_WAIT_DATA && p.bytes == 2 && p.seq != seq);
	t.act = smtp_in_deadline(t.s, &t.out);
	CHECK(t.act == SMTP_IN_CLOSE);
	CHECK(t_out_is(&t, "421 4.4.2 " HOST " Error: timeout exceeded\r\n"));
	t_close(&t);
}

/*
 * A BDAT pipeline cut at every offset into two reads: the same replies and
 * the same stored message each time. Chunk 1 ends in a CR whose LF starts
 * chunk 2; NULs are stripped; the next transaction follows LAST.
 */
static void
test_bdat_every_split(void)
{
	static const char wire[] =
	    "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n"
	    "RCPT TO:<r@x.example>\r\nBDAT 12\r\nSubject: a\r\r"
	    "BDAT 9\r\n\n\nb\0ody\n.BDAT 4 LAST\r\n\r\nx\n"
	    "MAIL FROM:<a@b.example>\r\nQUIT\r\n";
	static const char want_msg[] =
	    "Subject: a\r\n\r\n\r\nbody\r\n.\r\nx\r\n";
	static const char tail[] =
	    "250 2.1.5 Ok\r\n"
	    "250 2.0.0 Ok: 12 octets received\r\n"
	    "250 2.0.0 Ok: 9 octets received\r\n"
	    "250 2.0.0 Ok: queued as 0000000000000001\r\n"
	    "250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n";
	struct buf ref;
	size_t n = sizeof(wire) - 1;

	buf_init(&ref, 1 << 16);
	for (size_t cut = 0; cut <= n; cut++) {
		struct t t;
		size_t parts[2] = {cut, n - cut}, off = 0;

		t_cfg(&t);
		t.cfg.nul_strip = true;
		t_start(&t);
		for (size_t k = 0; k < 2; k++) {
			t_feed_n(&t, wire + off, parts[k]);
			off += parts[k];
			if (t.act == SMTP_IN_COMMIT)
				t_commit(&t, 0);
		}
		if (cut == 0 &&
		    buf_append(&ref, buf_peek(&t.out), buf_avail(&t.out)) != 0)
			abort();
		if (t.commits != 1 || t.act != SMTP_IN_CLOSE ||
		    !t_msg_is(&t, want_msg, sizeof(want_msg) - 1) ||
		    buf_avail(&t.out) != buf_avail(&ref) ||
		    memcmp(buf_peek(&t.out), buf_peek(&ref), buf_avail(&ref)) !=
		        0) {
			fprintf(stderr, "cut %zu: [%.*s]\n", cut,
			    (int)buf_avail(&t.out),
			    (const char *)buf_peek(&t.out));
			harness_failed = 1;
		}
		t_close(&t);
	}
	CHECK(memmem(buf_peek(&ref), buf_avail(&ref), tail, strlen(tail)) !=
	      NULL);
	buf_fini(&ref);
}

/* A body of n octets (unstuffed), with CRLF lines of 80. */
static char *
make_body(size_t n, size_t *wire)
{
	char *b = malloc(n + 8);
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'b';
	/* end on a line end so the size is exact, with no bare CR */
	if (n >= 3 && b[n - 3] == '\r')
		b[n - 3] = 'b';
	if (n >= 2) {
		b[n - 2] = '\r';
		b[n - 1] = '\n';
	}
	memcpy(b + n, ".\r\n", 4);
	*wire = n + 3;
	return b;
}

static void
test_message_size(void)
{
	size_t wire;
	char *b;
	struct t t;

	t_open(&t);
	b = make_body(10000, &wire);
	CHECK(t_to_data(&t));
	t_feed_n(&t, b, wire);
	free(b);
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as 0000000000000001"));
	b = make_body(10001, &wire);
	CHECK(t_to_data(&t));
	for (size_t k = 0; k < wire; k += 700)
		t_feed_n(&t, b + k, wire - k < 700 ? wire - k : 700);
	free(b);
	CHECK(t.act == SMTP_IN_READ && t.commits == 1);
	CHECK(t_out_is(
	    &t, "552 5.3.4 Error: message size exceeds fixed limit\r\n"));
	CHECK(t.budget.used == 0);
	CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
	t_close(&t);
}

static void
test_inflight_budget(void)
{
	size_t wire;
	char *b;
	struct t t;

	/* No budget at all: DATA itself is refused. */
	t_cfg(&t);
	t.budget.limit = 1000;
	t_start(&t);
	t_feed(&t, EH MF RT);
	buf_reset(&t.out);
	CHECK(t_x(&t, "DATA\r\n", "452 4.3.1 Insufficient system storage\r\n"));
	CHECK(t.ids == 0 && t.budget.used == 0);
	t_close(&t);

	/* Budget runs out mid-body: 452 at the end, budget returned. */
	t_cfg(&t);
	t.cfg.max_message_size = 1000000;
	t.budget.limit = 100 * 1024;
	t_start(&t);
	t_feed(&t, EH MF RT);
	buf_reset(&t.out);
	CHECK(t_x(&t, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n"));
	CHECK(t.budget.used > 0);
	b = make_body(300000, &wire);
	t_feed_n(&t, b, wire);
	free(b);
	CHECK(t_out_is(&t, "452 4.3.1 Insufficient system storage\r\n"));
	CHECK(t.budget.used == 0 && t.commits == 0);
	t_close(&t);
}

/* n Received: headers, then a body with 60 more that must not count. */
static char *
make_hops(unsigned n)
{
	char *b = malloc(64 * (n + 70) + 64), *p = b;

	for (unsigned i = 0; i < n; i++)
		p += sprintf(p, "%s: from h%u by h%u; x\r\n",
		    i % 2 ? "received" : "Received", i, i + 1);
	p += sprintf(p, "Subject: hops\r\n\r\n");
	for (unsigned i = 0; i < 60; i++)
		p += sprintf(p, "Received: in the body %u\r\n", i);
	strcpy(p, ".\r\n");
	return b;
}

static void
test_hop_limit(void)
{
	struct t t;
	char *b;

	t_cfg(&t);
	t.cfg.max_message_size = 100000;
	t_start(&t);
	buf_reset(&t.out);
	b = make_hops(50);
	CHECK(t_to_data(&t));
	t_feed(&t, b);
	free(b);
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t_out_starts(&t, "250 2.0.0 Ok: queued as"));
	b = make_hops(51);
	CHECK(t_to_data(&t));
	t_feed(&t, b);
	free(b);
	CHECK(t.act == SMTP_IN_READ && t.commits == 1);
	CHECK(t_out_is(&t, "554 5.4.6 Error: too many hops (mail loop)\r\n"));
	t_close(&t);
}

/* Check "Received: ..." up to the date, then the date's shape. */
static bool
received_is(const struct queue_submit *q, const char *head, const char *tail)
{
	const char *b = (const char *)buf_peek(&q->body), *d;
	size_t hl = strlen(head), n = buf_avail(&q->body);
	static const char shape[] = "Www, D Mmm YYYY HH:MM:SS +0000";

	if (n < hl || memcmp(b, head, hl) != 0) {
		fprintf(
		    stderr, "received: [%.*s]\n", (int)(n < 300 ? n : 300), b);
		return false;
	}
	d = b + hl;
	/* day of month has one or two digits */
	if (memchr(d, '\r', n - hl) == NULL)
		return false;
	n = (size_t)((const char *)memchr(d, '\r', n - hl) - d);
	if (n != sizeof(shape) - 1 && n != sizeof(shape))
		return false;
	if (d[3] != ',' || memcmp(d + n - 6, " +0000", 6) != 0)
		return false;
	return buf_avail(&q->body) - hl - n >= strlen(tail) &&
	       memcmp(d + n, tail, strlen(tail)) == 0;
}

static void
test_received_header(void)
{
	struct t t;
	char ir[128];
	uint8_t plain[] = "\0alice\0secret";

	t_open(&t);
	CHECK(t_to_data(&t));
	t_feed(&t, "x\r\n.\r\n");
	t_commit(&t, 0);
	CHECK(received_is(t.last,
	    "Received: from client.example (rdns-less "
	    "[192.0.2.1])\r\n\tby " HOST " (mta) with "
	    "ESMTP id 0000000000000001\r\n\tfor "
	    "<r@x.example>; ",
	    "\r\nx\r\n"));
	/* Two recipients: no "for". */
	buf_reset(&t.out);
	t_feed(&t, MF RT "RCPT TO:<s@x.example>\r\nDATA\r\n");
	CHECK(t_out_starts(&t, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250"));
	t_feed(&t, "y\r\n.\r\n");
	t_commit(&t, 0);
	CHECK(received_is(t.last,
	    "Received: from client.example (rdns-less "
	    "[192.0.2.1])\r\n\tby " HOST " (mta) with "
	    "ESMTP id 0000000000000002;\r\n\t",
	    "\r\ny\r\n"));
	/* HELO: plain SMTP. */
	t_feed(&t, "HELO old.example\r\n" MF RT "DATA\r\n");
	buf_reset(&t.out);
	t_feed(&t, "z\r\n.\r\n");
	t_commit(&t, 0);
	CHECK(received_is(t.last,
	    "Received: from old.example (rdns-less "
	    "[192.0.2.1])\r\n\tby " HOST " (mta) with "
	    "SMTP id 0000000000000003\r\n\tfor "
	    "<r@x.example>; ",
	    "\r\nz\r\n"));
	t_close(&t);

	/* TLS + AUTH over IPv6: ESMTPSA and an IPv6 address literal; the
	 * credentials appear nowhere in the message. */
	t_cfg(&t);
	t.peer.tls = true;
	t.peer.relay_allowed = false;
	strcpy(t.peer.addr, "2001:db8::7");
	t_start(&t);
	smtp_parse_base64_encode(plain, sizeof(plain) - 1, ir);
	t_feed(&t, EH);
	t_feed(&t, "AUTH PLAIN ");
	t_feed(&t, ir);
	t_feed(&t, "\r\n");
	CHECK(t.act == SMTP_IN_AUTH);
	t.act = smtp_in_auth_done(t.s, true, &t.out);
	buf_reset(&t.out);
	CHECK(t_x(&t, MF RT "DATA\r\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "354 End data with <CR><LF>.<CR><LF>"
	    "\r\n"));
	t_feed(&t, "w\r\n.\r\n");
	t_commit(&t, 0);
	CHECK(received_is(t.last,
	    "Received: from c.example (rdns-less "
	    "[IPv6:2001:db8::7])\r\n\tby " HOST
	    " (mta) with ESMTPSA id 0000000000000001"
	    "\r\n\tfor <r@x.example>; ",
	    "\r\nw\r\n"));
	CHECK(strcmp(t.last->user, "alice") == 0);
	CHECK(memmem(buf_peek(&t.last->body), buf_avail(&t.last->body),
	          "secret", 6) == NULL);
	t_close(&t);
}

/* ---- AUTH ---- */

static void
b64(const char *raw, size_t n, char *out)
{
	smtp_parse_base64_encode((const uint8_t *)raw, n, out);
}

/* A TLS session after EHLO, relay not allowed (AUTH is the way in). */
static void
t_open_tls(struct t *t)
{
	t_cfg(t);
	t->peer.tls = true;
	t->peer.relay_allowed = false;
	t_start(t);
	t_feed(t, EH);
	buf_reset(&t->out);
}

static bool
t_creds(struct t *t, const char *user, const char *pass)
{
	const char *u, *p;

	if (t->act != SMTP_IN_AUTH || smtp_in_want_read(t->s)) {
		fprintf(stderr, "act %d\n", (int)t->act);
		return false;
	}
	smtp_in_auth_peek(t->s, &u, &p);
	return strcmp(u, user) == 0 && strcmp(p, pass) == 0;
}

static void
test_auth_plain(void)
{
	char line[256], enc[128];
	struct t t;

	/* With an initial response. */
	t_open_tls(&t);
	b64("\0alice\0s3cret", 13, enc);
	snprintf(line, sizeof(line),
	    "AUTH PLAIN %s\r\nMAIL FROM:<a@b."
	    "example>\r\n",
	    enc);
	CHECK(t_x(&t, line, ""));
	CHECK(t_creds(&t, "alice", "s3cret"));
	t.act = smtp_in_auth_done(t.s, true, &t.out);
	/* The pipelined MAIL runs after the verdict. */
	CHECK(t_out_is(&t, "235 2.7.0 Authentication successful\r\n"
	                   "250 2.1.0 Ok\r\n"));
	CHECK(t_x(&t, RT, "250 2.1.5 Ok\r\n"));
	CHECK(t_x(&t, "RSET\r\nAUTH PLAIN\r\n",
	    "250 2.0.0 Ok\r\n"
	    "503 5.5.1 Error: already "
	    "authenticated\r\n"));
	t_close(&t);

	/* Without: an empty 334, then the response. authzid = authcid. */
	t_open_tls(&t);
	CHECK(t_x(&t, "auth plain\r\n", "334 \r\n"));
	b64("bob\0bob\0pw", 10, enc);
	snprintf(line, sizeof(line), "%s\r\n", enc);
	CHECK(t_x(&t, line, ""));
	CHECK(t_creds(&t, "bob", "pw"));
	t.act = smtp_in_auth_done(t.s, true, &t.out);
	CHECK(t_out_is(&t, "235 2.7.0 Authentication successful\r\n"));
	t_close(&t);

	/* Cancel, bad base64, proxy authzid, empty "=". */
	t_open_tls(&t);
	CHECK(t_x(&t, "AUTH PLAIN\r\n*\r\n",
	    "334 \r\n501 5.7.0 Authentication cancelled\r\n"));
	CHECK(t_x(&t, "AUTH PLAIN\r\nnot base64!\r\n",
	    "334 \r\n501 5.5.2 Error: invalid base64 data\r\n"));
	CHECK(t_x(&t, "AUTH PLAIN AGFsaWNlAHB3PQ\r\n",
	    "501 5.5.2 Error: invalid base64 data\r\n"));
	b64("root\0alice\0pw", 13, enc);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
	CHECK(t_x(&t, line, "535 5.7.8 Error: authentication failed\r\n"));
	CHECK(t_x(&t, "AUTH PLAIN =\r\n",
	    "535 5.7.8 Error: authentication failed\r\n"));
	CHECK(t.act == SMTP_IN_READ);
	CHECK(t_x(&t, "AUTH CRAM-MD5\r\n",
	    "504 5.5.4 Error: unrecognized authentication type\r\n"));
	CHECK(t_x(
	    &t, "AUTH\r\n", "501 5.5.4 Syntax: AUTH mechanism [response]\r\n"));
	/* MAIL before AUTH is not relayed. */
	CHECK(t_x(&t, MF RT,
	    "250 2.1.0 Ok\r\n554 5.7.1 Relay access "
	    "denied\r\n"));
	CHECK(t_x(&t, "AUTH PLAIN\r\n",
	    "503 5.5.1 Error: MAIL transaction in progress\r\n"));
	t_close(&t);
}

static void
test_auth_login(void)
{
	char line[256], enc[128];
	struct t t;

	t_open_tls(&t);
	CHECK(t_x(&t, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n"));
	b64("carol", 5, enc);
	snprintf(line, sizeof(line), "%s\r\n", enc);
	CHECK(t_x(&t, line, "334 UGFzc3dvcmQ6\r\n"));
	b64("pa ss", 5, enc);
	snprintf(line, sizeof(line), "%s\r\n", enc);
	CHECK(t_x(&t, line, ""));
	CHECK(t_creds(&t, "carol", "pa ss"));
	t.act = smtp_in_auth_done(t.s, true, &t.out);
	CHECK(t_out_is(&t, "235 2.7.0 Authentication successful\r\n"));
	t_close(&t);

	/* Initial response carries the user name. */
	t_open_tls(&t);
	b64("dave", 4, enc);
	snprintf(line, sizeof(line), "AUTH LOGIN %s\r\n", enc);
	CHECK(t_x(&t, line, "334 UGFzc3dvcmQ6\r\n"));
	CHECK(t_x(&t, "*\r\n", "501 5.7.0 Authentication cancelled\r\n"));
	CHECK(t_x(&t, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n"));
	CHECK(t_x(&t, "@@@@\r\n", "501 5.5.2 Error: invalid base64 data\r\n"));
	CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
	t_close(&t);
}

static void
test_auth_failures(void)
{
	char line[256], enc[128];
	struct t t;

	t_open_tls(&t);
	b64("\0eve\0guess", 10, enc);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
	for (int i = 0; i < 3; i++) {
		CHECK(t_x(&t, line, ""));
		CHECK(t_creds(&t, "eve", "guess"));
		t.act = smtp_in_auth_done(t.s, false, &t.out);
		if (i < 2) {
			CHECK(t.act == SMTP_IN_READ);
			CHECK(t_out_is(&t, "535 5.7.8 Error: authentication "
			                   "failed\r\n"));
		}
	}
	CHECK(t.act == SMTP_IN_CLOSE);
	CHECK(t_out_is(&t, "535 5.7.8 Error: authentication failed\r\n"
	                   "421 4.7.0 " HOST " Error: too many authentication "
	                   "failures\r\n"));
	t_close(&t);
}

/* Upgrade with STARTTLS: anything behind it in plaintext is dropped. */
static void
test_starttls(void)
{
	struct t t;

	t_open(&t);
	CHECK(t_x(&t,
	    "EHLO c.example\r\nSTARTTLS\r\nMAIL FROM:<evil@x."
	    "example>\r\nRCPT TO:<r@x.example>\r\n",
	    EHLO_REPLY_BASE "250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"
	                    "220 2.0.0 Ready to start TLS\r\n"));
	CHECK(t.act == SMTP_IN_STARTTLS && !smtp_in_want_read(t.s));
	/* A loop that reads anyway: still dropped. */
	CHECK(t_x(&t, "NOOP\r\n", ""));
	t.act = smtp_in_tls_done(t.s, true, &t.out);
	CHECK(t.act == SMTP_IN_READ);
	CHECK(t_out_is(&t, ""));
	/* State reset: EHLO again, and STARTTLS is gone. */
	CHECK(t_x(&t, MF, "503 5.5.1 Error: send HELO/EHLO first\r\n"));
	CHECK(t_x(&t, EH,
	    EHLO_REPLY_BASE "250-AUTH PLAIN LOGIN\r\n"
	                    "250 ENHANCEDSTATUSCODES\r\n"));
	CHECK(
	    t_x(&t, "STARTTLS\r\n", "503 5.5.1 Error: TLS already active\r\n"));
	t_close(&t);

	/* The partial line case: STARTTLS completes inside a held line. */
	t_open(&t);
	t_feed(&t, EH "START");
	buf_reset(&t.out);
	CHECK(t_x(&t, "TLS\r\nNOOP\r\n", "220 2.0.0 Ready to start TLS\r\n"));
	t.act = smtp_in_tls_done(t.s, true, &t.out);
	CHECK(t_x(&t, "NOOP\r\n", "250 2.0.0 Ok\r\n"));
	t_close(&t);

	/* Failed handshake: close. */
	t_open(&t);
	t_feed(&t, EH "STARTTLS\r\n");
	CHECK(t.act == SMTP_IN_STARTTLS);
	CHECK(smtp_in_tls_done(t.s, false, &t.out) == SMTP_IN_CLOSE);
	t_close(&t);
}

/*
 * The transcript a PIPELINING client sends, as the groups it sends
 * before waiting for a reply (it waits for 354 after each DATA).
 */
static const char *const transcript[] = {
    "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
    "RCPT TO:<r@x.example>\r\nDATA\r\n",
    "Subject: one\r\n\r\nbody one\r\n..dotted\r\n.\r\n"
    "MAIL FROM:<a@b.example> SIZE=100\r\nRCPT TO:<s@x.example>\r\n"
    "RCPT TO:<t@x.example>\r\nDATA\r\n",
    "Subject: two\r\n\r\nbody two\r\n.\r\nQUIT\r\n",
};

struct run {
	struct buf replies;
	struct buf bodies; /* queued messages after our Received header */
	unsigned commits;
	bool closed;
};

static void
run_collect(struct t *t, struct run *r)
{
	while (t->act == SMTP_IN_COMMIT) {
		const uint8_t *b, *s;
		size_t n;

		t_commit(t, 0);
		b = buf_peek(&t->last->body);
		n = buf_avail(&t->last->body);
		s = memmem(b, n, "Subject:", 8);
		if (s != NULL &&
		    buf_append(&r->bodies, s, n - (size_t)(s - b)) != 0)
			abort();
		r->commits++;
	}
	if (buf_append(&r->replies, buf_peek(&t->out), buf_avail(&t->out)) != 0)
		abort();
	buf_reset(&t->out);
	if (t->act == SMTP_IN_CLOSE)
		r->closed = true;
}

/* Feed the transcript; each group is cut at `cut` (an absolute offset)
 * or, with step > 0, into pieces of step bytes. */
static void
run_transcript(struct run *r, size_t cut, size_t step)
{
	struct t t;
	size_t base = 0;

	buf_init(&r->replies, 1 << 16);
	buf_init(&r->bodies, 1 << 16);
	r->commits = 0;
	r->closed = false;
	t_cfg(&t);
	t_start(&t);
	run_collect(&t, r);
	for (size_t g = 0; g < MTA_ARRAY_LEN(transcript); g++) {
		const char *p = transcript[g];
		size_t n = strlen(p), off = 0;

		while (off < n) {
			size_t end = n;

			if (step > 0)
				end = off + step < n ? off + step : n;
			else if (cut > base + off && cut < base + n)
				end = cut - base;
			t_feed_n(&t, p + off, end - off);
			run_collect(&t, r);
			off = end;
		}
		base += n;
	}
	t_close(&t);
}

static void
run_free(struct run *r)
{
	buf_fini(&r->replies);
	buf_fini(&r->bodies);
}

static void
test_pipelined_every_split(void)
{
	static const char want[] =
	    "220 " HOST " ESMTP\r\n" EHLO_REPLY_BASE
	    "250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "354 End data with <CR><LF>.<CR><LF>\r\n"
	    "250 2.0.0 Ok: queued as 0000000000000001\r\n"
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	    "354 End data with <CR><LF>.<CR><LF>\r\n"
	    "250 2.0.0 Ok: queued as 0000000000000002\r\n"
	    "221 2.0.0 Bye\r\n";
	static const char bodies[] =
	    "Subject: one\r\n\r\nbody one\r\n.dotted\r\n"
	    "Subject: two\r\n\r\nbody two\r\n";
	struct run ref, r;
	size_t total = 0;

	for (size_t g = 0; g < MTA_ARRAY_LEN(transcript); g++)
		total += strlen(transcript[g]);
	run_transcript(&ref, 0, 0);
	CHECK_MEM(buf_peek(&ref.replies), buf_avail(&ref.replies), want);
	CHECK_MEM(buf_peek(&ref.bodies), buf_avail(&ref.bodies), bodies);
	CHECK(ref.commits == 2 && ref.closed);
	for (size_t cut = 1; cut < total; cut++) {
		run_transcript(&r, cut, 0);
		if (r.commits != 2 || !r.closed ||
		    buf_avail(&r.replies) != buf_avail(&ref.replies) ||
		    memcmp(buf_peek(&r.replies), buf_peek(&ref.replies),
		        buf_avail(&r.replies)) != 0 ||
		    buf_avail(&r.bodies) != buf_avail(&ref.bodies) ||
		    memcmp(buf_peek(&r.bodies), buf_peek(&ref.bodies),
		        buf_avail(&r.bodies)) != 0) {
			fprintf(stderr, "split at %zu differs: [%.*s]\n", cut,
			    (int)buf_avail(&r.replies),
			    (const char *)buf_peek(&r.replies));
			run_free(&r);
			run_free(&ref);
			CHECK(0);
		}
		run_free(&r);
	}
	for (size_t step = 1; step <= 3; step++) {
		run_transcript(&r, 0, step);
		CHECK(r.commits == 2);
		CHECK(buf_avail(&r.replies) == buf_avail(&ref.replies) &&
		      memcmp(buf_peek(&r.replies), buf_peek(&ref.replies),
		          buf_avail(&r.replies)) == 0);
		run_free(&r);
	}
	run_free(&ref);
}

/* More input behind a pending commit than the session holds: after the
 * verdict, the client is told and dropped. */
static void
test_pipelined_overflow(void)
{
	static char junk[70 * 1024];
	struct t t;

	memset(junk, 'N', sizeof(junk));
	t_open(&t);
	CHECK(t_to_data(&t));
	t_feed(&t, "x\r\n.\r\n");
	CHECK(t.act == SMTP_IN_COMMIT);
	t_feed_n(&t, junk, sizeof(junk));
	CHECK(t.act == SMTP_IN_COMMIT);
	t_commit(&t, 0);
	CHECK(t.act == SMTP_IN_CLOSE);
	CHECK(t_out_is(&t, "250 2.0.0 Ok: queued as 0000000000000001\r\n"
	                   "421 4.7.0 " HOST " Error: too much pipelined "
	                   "input\r\n"));
	t_close(&t);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizers' allocators are not glibc's (mallinfo2 never moves
 * under them): ask theirs. */
size_t __sanitizer_get_current_allocated_bytes(void);

static size_t
heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t
heap_in_use(void)
{
	return mallinfo2().uordblks;
}
#endif

/* An idle session, even after a large message, costs little memory. */
static void
test_idle_memory(void)
{
	size_t a, b, wire;
	char *body;
	struct t t;

	t_cfg(&t);
	t.cfg.max_message_size = 1 << 20;
	a = heap_in_use();
	t_start(&t);
	t_feed(&t, EH);
	b = heap_in_use();
	CHECK(b < a + 20 * 1024);
	CHECK(t_to_data(&t));
	body = make_body(500000, &wire);
	t_feed_n(&t, body, wire);
	free(body);
	/* The check can see: the session holds the message now. */
	CHECK(heap_in_use() > a + 400000);
	t_commit(&t, 0);
	queue_submit_free(t.last);
	t.last = NULL;
	buf_fini(&t.out);
	t_feed(&t, "RSET\r\n");
	b = heap_in_use();
	CHECK(b < a + 20 * 1024);
	t_close(&t);
}

/* After HELO no extension was offered: 8BITMIME and SMTPUTF8 get 555. */
static void
test_helo_no_extensions(void)
{
	struct t t;

	t_open(&t);
	CHECK(t_x(&t, "HELO client.example\r\n", "250 " HOST "\r\n"));
	CHECK(t_x(&t, "MAIL FROM:<a@b.example> BODY=8BITMIME\r\n",
	    "555 5.5.4 Unsupported option: BODY=8BITMIME\r\n"));
	CHECK(t_x(&t, "MAIL FROM:<a@b.example> SMTPUTF8\r\n",
	    "555 5.5.4 Unsupported option: SMTPUTF8\r\n"));
	CHECK(t_x(
	    &t, "MAIL FROM:<a@b.example> BODY=7BIT\r\n", "250 2.1.0 Ok\r\n"));
	t_close(&t);
}

static const struct harness_case cases[] = {
    {"greeting", test_greeting},
    {"ehlo_advertise", test_ehlo_advertise},
    {"helo_no_extensions", test_helo_no_extensions},
    {"reply_rows", test_reply_rows},
    {"nul_command", test_nul_command},
    {"relay_denied", test_relay_denied},
    {"address_literal", test_address_literal},
    {"too_many_recipients", test_too_many_recipients},
    {"command_line_limit", test_command_line_limit},
    {"endless_line", test_endless_line},
    {"max_errors", test_max_errors},
    {"timeout_shutdown_quit", test_timeout_shutdown_quit},
    {"commit_flow", test_commit_flow},
    {"dsn_params", test_dsn_params},
    {"free_while_committing", test_free_while_committing},
    {"data_before_354", test_data_before_354},
    {"text_line_limit", test_text_line_limit},
    {"bare_reject", test_bare_reject},
    {"bare_normalize", test_bare_normalize},
    {"smuggling", test_smuggling},
    {"nul_body", test_nul_body},
    {"bdat", test_bdat},
    {"bdat_refused", test_bdat_refused},
    {"bdat_same_as_data", test_bdat_same_as_data},
    {"bdat_every_split", test_bdat_every_split},
    {"bdat_no_room", test_bdat_no_room},
    {"bdat_progress", test_bdat_progress},
    {"message_size", test_message_size},
    {"inflight_budget", test_inflight_budget},
    {"hop_limit", test_hop_limit},
    {"received_header", test_received_header},
    {"auth_plain", test_auth_plain},
    {"auth_login", test_auth_login},
    {"auth_failures", test_auth_failures},
    {"starttls", test_starttls},
    {"pipelined_every_split", test_pipelined_every_split},
    {"pipelined_overflow", test_pipelined_overflow},
    {"idle_memory", test_idle_memory},
};

HARNESS_MAIN(cases)
