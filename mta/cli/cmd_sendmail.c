/* SPDX-License-Identifier: ISC */
/*
 * cmd_sendmail.c - `mta sendmail`: sendmail_run() with -bp read from the
 * queue directly, and -bs without a relay served by the relay's own SMTP
 * state machine (smtp_in) whose commits go to the maildrop, as Postfix's
 * sendmail -bs works without its daemons. The lean mta-sendmail runs
 * `mta sendmail` for both.
 *
 * Thread: the process's only one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cmd.h"
#include "cli/sendmail.h"
#include "config/config.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"

#define SM_BS_OUT_MAX (256 * 1024) /* replies waiting to be written */

/* -bp: the queue, as mailq shows it. */
static int
sm_mailq(const char *config_path, const struct config *cfg)
{
	char *args[] = {"queue", "list", NULL};
	struct queue *q;
	uint64_t n = 0;
	char err[512];
	int rc;

	rc = queue_open(&cfg->queue, true, &q, err, sizeof(err));
	if (rc == -ENOENT) {
		printf("Mail queue is empty\n");
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "mailq: %s\n", err);
		return EX_TEMPFAIL;
	}
	rc = queue_count(q, &n);
	queue_close(q);
	if (rc == 0 && n == 0) {
		printf("Mail queue is empty\n");
		return 0;
	}
	return cmd_dispatch(config_path, 2, args) == 0 ? 0 : EX_TEMPFAIL;
}

/* ---- -bs without a relay ---- */

static uint64_t
sm_bs_id(void *arg)
{
	(void)arg;
	return clock_wall_us();
}

/* Write out to stdout and empty it; false when stdout is gone. */
static bool
sm_bs_flush(struct buf *out)
{
	const uint8_t *p = buf_peek(out);
	size_t n = buf_avail(out);

	while (n > 0) {
		ssize_t w = write(1, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	buf_reset(out);
	return true;
}

/* A commit: the message into the maildrop; the session says 250 or 451. */
static enum smtp_in_action
sm_bs_commit(const struct config *cfg, struct smtp_in *s, struct buf *out)
{
	struct queue_submit *req = smtp_in_commit_take(s);
	struct sendmail_msg m = {
	    req->from, req->rcpts, req->nrcpts, &req->body};

	req->status = sendmail_drop(cfg, &m) == 0 ? 0 : -EIO;
	return smtp_in_commit_done(s, req, out);
}

static int
sm_bs_offline(const char *config_path, const struct config *cfg)
{
	struct smtp_in_cfg sc = {.hostname = cfg->server.hostname,
	    .max_message_size = cfg->server.max_message_size,
	    .max_recipients = cfg->server.max_recipients,
	    .max_errors = cfg->server.max_errors,
	    .id_new = sm_bs_id};
	struct smtp_in_peer peer = {.local = true, .relay_allowed = true};
	enum smtp_in_action a = SMTP_IN_READ;
	struct smtp_in *s;
	struct buf out;
	uint8_t in[16384];
	ssize_t r;

	(void)config_path;
	signal(SIGPIPE, SIG_IGN);
	peer.uid = (uint32_t)getuid();
	(void)snprintf(peer.addr, sizeof(peer.addr), "local:%u", peer.uid);
	buf_init(&out, SM_BS_OUT_MAX);
	s = smtp_in_new(&sc, &peer, &out);
	while (a != SMTP_IN_CLOSE && sm_bs_flush(&out)) {
		if (a == SMTP_IN_COMMIT) {
			a = sm_bs_commit(cfg, s, &out);
			continue;
		}
		if (a != SMTP_IN_READ) /* STARTTLS, AUTH: never offered */
			break;
		if ((r = read(0, in, sizeof(in))) < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		a = smtp_in_feed(s, in, (size_t)r, &out);
	}
	(void)sm_bs_flush(&out);
	smtp_in_free(s);
	buf_fini(&out);
	return 0;
}

int
cmd_sendmail(const char *config_path, int argc, char **argv)
{
	static const struct sendmail_hooks hooks = {sm_mailq, sm_bs_offline};

	return sendmail_run(config_path, argc, argv, &hooks);
}
