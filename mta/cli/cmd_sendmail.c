/* SPDX-License-Identifier: ISC */
/*
 * cmd_sendmail.c - `mta sendmail`: sendmail_run() with -bp read from the
 * queue directly (the lean mta-sendmail runs `mta sendmail -bp` for it).
 *
 * Thread: the process's only one.
 */
#include <errno.h>
#include <stdio.h>
#include <sysexits.h>

#include "cli/cmd.h"
#include "cli/sendmail.h"
#include "config/config.h"
#include "queue/queue.h"

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
	return cmd_queue(config_path, 2, args) == 0 ? 0 : EX_TEMPFAIL;
}

int
cmd_sendmail(const char *config_path, int argc, char **argv)
{
	return sendmail_run(config_path, argc, argv, sm_mailq);
}
