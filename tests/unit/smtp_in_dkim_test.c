/* SPDX-License-Identifier: ISC */
/*
 * smtp_in_dkim_test.c - the receive state machine's DKIM hook, without
 * sockets: a message with a key for its From asks for SMTP_IN_SIGN at
 * the end of DATA (and only then for its commit), the job carries the
 * message as stored (dot-unstuffed, our Received on top) and comes back
 * with the signature in front; without a key, or with no From, the
 * commit comes at once; the session's input is cut at every byte so the
 * body hash cannot depend on how it arrives.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/str.h"
#include "dkim/dkim.h"
#include "dkim/dkim_int.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"
#include "../harness.h"

static char dir[64];
static struct dkim_signer signer;
static struct dkim_table table = {&signer, 1};
static char *names[] = {"from", "subject"};

static uint64_t
fake_id_new(void *arg)
{
	return ++*(uint64_t *)arg;
}

static bool
fixture(void)
{
	static int state;
	char p[128], err[DKIM_ERR_MAX];

	if (state)
		return state > 0;
	state = -1;
	if (harness_tmpdir() == NULL)
		return false;
	str_copy(dir, sizeof(dir), harness_tmpdir());
	snprintf(p, sizeof(p), "%s/k.pem", dir);
	if (dkim_key_generate(DKIM_ED25519_SHA256, 0, p, err, sizeof(err)) ||
	    dkim_key_load(p, &signer.key, err, sizeof(err)))
		return false;
	str_copy(signer.domain, sizeof(signer.domain), "example.com");
	str_copy(signer.selector, sizeof(signer.selector), "s");
	signer.hcanon = signer.bcanon = DKIM_RELAXED;
	signer.names = names;
	signer.nnames = 2;
	state = 1;
	return true;
}

/* Run one transaction fed in two pieces cut at cut; the stored message
 * (what the committer would get) into stored, the actions into seen. */
static bool
transact(const char *msg, size_t cut, struct buf *stored, bool *signed_)
{
	struct smtp_in_cfg cfg = {0};
	struct smtp_in_peer peer = {.relay_allowed = true};
	static const char cmds[] = "EHLO c\r\nMAIL FROM:<a@example.com>\r\n"
	                           "RCPT TO:<b@x.test>\r\nDATA\r\n";
	uint64_t ids = 0;
	struct buf out, in;
	struct smtp_in *s;
	struct queue_submit *req;
	enum smtp_in_action a;
	bool ok = true;

	cfg.hostname = "mx.test";
	cfg.max_message_size = 100000;
	cfg.max_recipients = 10;
	cfg.max_errors = 10;
	cfg.id_new = fake_id_new;
	cfg.id_arg = &ids;
	cfg.dkim = &table;
	str_copy(peer.addr, sizeof(peer.addr), "192.0.2.1");
	buf_init(&out, 1 << 20);
	buf_init(&in, 1 << 20);
	s = smtp_in_new(&cfg, &peer, &out);
	/* DATA ends a pipelined group: the text goes after the 354 */
	a = smtp_in_feed(s, (const uint8_t *)cmds, strlen(cmds), &out);
	if (a != SMTP_IN_READ || buf_appendf(&in, "%s.\r\n", msg) != 0)
		return false;
	cut = cut < buf_avail(&in) ? cut : buf_avail(&in);
	a = smtp_in_feed(s, buf_peek(&in), cut, &out);
	if (a == SMTP_IN_READ)
		a = smtp_in_feed(
		    s, buf_peek(&in) + cut, buf_avail(&in) - cut, &out);
	*signed_ = a == SMTP_IN_SIGN;
	if (a == SMTP_IN_SIGN) {
		struct dkim_job *j = smtp_in_sign_take(s);

		ok = j != NULL && smtp_in_want_read(s) == false;
		dkim_job_run(j); /* what a pool worker does */
		a = smtp_in_sign_done(s, j, &out);
	}
	ok = ok && a == SMTP_IN_COMMIT;
	req = ok ? smtp_in_commit_take(s) : NULL;
	if (req != NULL) {
		ok = buf_append(stored, buf_peek(&req->body),
		         buf_avail(&req->body)) == 0;
		req->status = 0;
		a = smtp_in_commit_done(s, req, &out);
	}
	ok = ok && req != NULL &&
	     strstr((const char *)buf_peek(&out), "250 2.0.0 Ok: queued as") !=
	         NULL;
	smtp_in_free(s);
	buf_fini(&out);
	buf_fini(&in);
	return ok;
}

static const char signed_msg[] = "From: Joe <joe@Example.com>\r\n"
                                 "Subject: hello\r\n"
                                 "\r\n"
                                 "..dot-stuffed line\r\n"
                                 "body  with   blanks \r\n"
                                 "\r\n";

static void
test_signed_at_every_cut(void)
{
	struct buf first, got;
	bool sig, ok = true;
	const char *p, *rcvd;

	CHECK(fixture());
	buf_init(&first, 1 << 20);
	CHECK(transact(signed_msg, 0, &first, &sig) && sig);
	CHECK(buf_avail(&first) > 0);
	p = (const char *)buf_peek(&first);
	CHECK(strncmp(p, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) == 0);
	rcvd = strstr(p, "\r\nReceived: from c ");
	CHECK(rcvd != NULL);
	/* the message as stored: unstuffed, after our Received */
	CHECK(strstr(rcvd, "\r\n.dot-stuffed line\r\n") != NULL);
	CHECK(strstr(p, " d=example.com;") != NULL);
	CHECK(strstr(p, "h=from:from:subject;") != NULL);
	/* the same bh= however the input is cut (t= may differ) */
	for (size_t cut = 1; cut < 200 && ok; cut += 3) {
		buf_init(&got, 1 << 20);
		STEP(ok, transact(signed_msg, cut, &got, &sig) && sig);
		STEP(ok, strstr((const char *)buf_peek(&got), "bh=") != NULL);
		STEP(ok, strncmp(strstr((const char *)buf_peek(&got), "bh="),
		             strstr(p, "bh="), 48) == 0);
		buf_fini(&got);
	}
	buf_fini(&first);
}

static void
test_unsigned_commits_at_once(void)
{
	struct buf got;
	bool sig;

	CHECK(fixture());
	buf_init(&got, 1 << 20);
	/* no key for the From domain */
	CHECK(transact("From: a@other.test\r\n\r\nx\r\n", 0, &got, &sig));
	CHECK(
	    !sig && strncmp((const char *)buf_peek(&got), "Received:", 9) == 0);
	buf_reset(&got);
	/* no From at all */
	CHECK(transact("Subject: s\r\n\r\nx\r\n", 0, &got, &sig) && !sig);
	buf_reset(&got);
	/* only a header section, no empty line: signed, empty body */
	CHECK(transact("From: j@example.com\r\n", 0, &got, &sig) && sig);
	CHECK(strstr((const char *)buf_peek(&got),
	          "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;") != NULL);
	buf_fini(&got);
}

static void
test_cleanup(void)
{
	char cmd[128];

	dkim_key_free(signer.key);
	signer.key = NULL;
	if (dir[0] && str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", dir))
		CHECK(system(cmd) == 0);
}

static const struct harness_case cases[] = {
    {"signed_at_every_cut", test_signed_at_every_cut},
    {"unsigned_commits_at_once", test_unsigned_commits_at_once},
    {"cleanup", test_cleanup},
};

HARNESS_MAIN(cases)
