/* SPDX-License-Identifier: ISC */
/*
 * smtp_in_shared_test.c - MAIL with the limits in a shared store
 * ([limits] backend = redis): the session asks the loop (SMTP_IN_LIMIT)
 * with the MAIL's subject, holds what was pipelined behind it, and goes
 * on with 250 or 450 4.7.1 from the answer. Without sockets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "config/config.h"
#include "limits/limits.h"
#include "smtp/smtp_in.h"
#include "../harness.h"

#define HOST "mx.test"

static struct config *
load(const char *text)
{
	const char *d = harness_tmpdir();
	char path[256], err[512];
	struct config *c = NULL;
	FILE *fp;

	if (d == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/shared.conf", d);
	if ((fp = fopen(path, "w")) == NULL)
		return NULL;
	fputs(text, fp);
	fclose(fp);
	if (config_load(path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	return c;
}

static bool
out_is(struct buf *out, const char *want)
{
	size_t n = buf_avail(out);
	bool ok = n == strlen(want) && memcmp(buf_peek(out), want, n) == 0;

	if (!ok)
		fprintf(stderr, "want: [%s]\ngot:  [%.*s]\n", want, (int)n,
		    (const char *)buf_peek(out));
	buf_reset(out);
	return ok;
}

static enum smtp_in_action
feed(struct smtp_in *s, const char *str, struct buf *out)
{
	return smtp_in_feed(s, (const uint8_t *)str, strlen(str), out);
}

static void
test_mail_waits_for_the_answer(void)
{
	struct config *c = load("[server]\nlisten = 127.0.0.1:2525\n"
	                        "[limit dom]\nkey = sender_domain\n"
	                        "rate = 1/h\n");
	struct limits_store *st = limits_store_new();
	struct smtp_in_cfg cfg = {0};
	struct smtp_in_peer peer = {0};
	struct limits_subject subj;
	struct smtp_in *s;
	struct buf out;
	enum smtp_in_action a;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	cfg.hostname = HOST;
	cfg.max_message_size = 100000;
	cfg.max_recipients = 3;
	cfg.max_errors = 10;
	cfg.limits = limits_new(c, st);
	cfg.limits_shared = true;
	strcpy(peer.addr, "192.0.2.1");
	peer.relay_allowed = true;
	buf_init(&out, 1 << 20);
	s = smtp_in_new(&cfg, &peer, &out);
	CHECK(out_is(&out, "220 " HOST " ESMTP\r\n"));
	CHECK(feed(s, "HELO c.test\r\n", &out) == SMTP_IN_READ);
	CHECK(out_is(&out, "250 " HOST "\r\n"));
	/* MAIL and a pipelined RCPT: the RCPT waits behind the answer */
	a = feed(s, "MAIL FROM:<a@D.example>\r\nRCPT TO:<r@remote.example>\r\n",
	    &out);
	CHECK(a == SMTP_IN_LIMIT);
	CHECK(out_is(&out, ""));
	CHECK(!smtp_in_want_read(s));
	smtp_in_limit_peek(s, &subj);
	CHECK(subj.sender_domain != NULL &&
	      strcmp(subj.sender_domain, "d.example") == 0);
	CHECK(subj.client != NULL && strcmp(subj.client, "192.0.2.1") == 0);
	CHECK(subj.user == NULL);
	a = smtp_in_limit_done(s, true, NULL, &out);
	CHECK(a == SMTP_IN_READ);
	CHECK(out_is(&out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"));
	/* refused: 450, and the transaction never began */
	CHECK(feed(s, "RSET\r\n", &out) == SMTP_IN_READ);
	CHECK(out_is(&out, "250 2.0.0 Ok\r\n"));
	CHECK(feed(s, "MAIL FROM:<b@d.example>\r\n", &out) == SMTP_IN_LIMIT);
	a = smtp_in_limit_done(s, false, "dom", &out);
	CHECK(a == SMTP_IN_READ);
	CHECK(
	    out_is(&out, "450 4.7.1 Error: too many messages, slow down\r\n"));
	CHECK(feed(s, "RCPT TO:<r@remote.example>\r\n", &out) == SMTP_IN_READ);
	CHECK(out_is(&out, "503 5.5.1 Error: need MAIL command\r\n"));
	/* an answer nobody asked for changes nothing */
	CHECK(smtp_in_limit_done(s, true, NULL, &out) == SMTP_IN_READ);
	CHECK(out_is(&out, ""));
	/* no sender domain: no key, still asked (the loop finds no step) */
	CHECK(feed(s, "MAIL FROM:<>\r\n", &out) == SMTP_IN_LIMIT);
	CHECK(smtp_in_limit_done(s, true, NULL, &out) == SMTP_IN_READ);
	CHECK(out_is(&out, "250 2.1.0 Ok\r\n"));
	/* the session freed while asking leaks nothing */
	CHECK(feed(s, "RSET\r\nMAIL FROM:<c@e.example>\r\n", &out) ==
	      SMTP_IN_LIMIT);
	smtp_in_free(s);
	buf_fini(&out);
	limits_free(cfg.limits);
	config_unref(c);
	limits_store_free(st);
}

static void
test_local_store_unchanged(void)
{
	struct config *c = load("[server]\nlisten = 127.0.0.1:2525\n"
	                        "[limit dom]\nkey = sender_domain\n"
	                        "rate = 1/h\n");
	struct limits_store *st = limits_store_new();
	struct smtp_in_cfg cfg = {0};
	struct smtp_in_peer peer = {0};
	struct smtp_in *s;
	struct buf out;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	cfg.hostname = HOST;
	cfg.max_message_size = 100000;
	cfg.max_recipients = 3;
	cfg.max_errors = 10;
	cfg.limits = limits_new(c, st);
	strcpy(peer.addr, "192.0.2.1");
	peer.relay_allowed = true;
	buf_init(&out, 1 << 20);
	s = smtp_in_new(&cfg, &peer, &out);
	buf_reset(&out);
	CHECK(feed(s,
	          "HELO c.test\r\nMAIL FROM:<a@d.example>\r\nRSET\r\n"
	          "MAIL FROM:<a@d.example>\r\n",
	          &out) == SMTP_IN_READ);
	CHECK(
	    out_is(&out, "250 " HOST "\r\n250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n"
	                 "450 4.7.1 Error: too many messages, slow down\r\n"));
	smtp_in_free(s);
	buf_fini(&out);
	limits_free(cfg.limits);
	config_unref(c);
	limits_store_free(st);
}

static const struct harness_case cases[] = {
    {"mail_waits_for_the_answer", test_mail_waits_for_the_answer},
    {"local_store_unchanged", test_local_store_unchanged},
};
HARNESS_MAIN(cases)
