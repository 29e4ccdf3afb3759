/* SPDX-License-Identifier: ISC */
/*
 * queue_fill.c - fill a queue directory with N small messages, fast, for
 * bench/queue-scale. Not built by the Makefile: bench/queue-scale compiles
 * it against build/libmta.a (queue.h is the only interface it uses).
 *
 *	queue_fill PATH N [MAP_SIZE_BYTES] [RCPT_DOMAIN]
 *
 * Goes through the real committer (queue_submit, group commit, full
 * sync), keeping WINDOW requests in flight so each commit carries a big
 * batch. Every message: one recipient user@RCPT_DOMAIN (default
 * backlog.test), a ~200-byte body with a unique Message-ID. Prints one
 * JSON line: messages, seconds, commits, msgs_per_s.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "queue/queue.h"

#define WINDOW 8192 /* requests in flight */

static struct queue_submit *
fill_new(struct queue *q, struct chan *reply, uint64_t n, const char *dom)
{
	struct queue_submit *s = xcalloc(1, sizeof(*s));
	char id[QUEUE_ID_HEX + 1], rcpt[300];
	int len;

	s->msg.type = QUEUE_REQ_SUBMIT;
	s->reply = reply;
	s->id = queue_id_new(q);
	s->from = xstrdup("bench@client.test");
	s->nrcpts = 1;
	s->rcpts = xcalloc(1, sizeof(char *));
	snprintf(rcpt, sizeof(rcpt), "user%" PRIu64 "@%s", n % 1000, dom);
	s->rcpts[0] = xstrdup(rcpt);
	s->client = xstrdup("127.0.0.1");
	s->helo = xstrdup("client.test");
	s->received_ms = clock_wall_ms();
	queue_id_fmt(s->id, id);
	buf_init(&s->body, 4096);
	len = buf_appendf(&s->body,
	    "Received: from client.test ([127.0.0.1])"
	    "\r\n\tby queue-fill id %s\r\nFrom: <bench@client.test>\r\n"
	    "To: <%s>\r\nSubject: backlog %" PRIu64 "\r\n"
	    "Message-ID: <fill-%s@client.test>\r\n\r\nhello\r\n",
	    id, rcpt, n, id);
	if (len != 0) {
		fprintf(stderr, "queue_fill: body: %s\n", strerror(-len));
		exit(1);
	}
	return s;
}

int
main(int argc, char **argv)
{
	struct config_queue cfg;
	struct queue *q;
	struct queue_stats st;
	struct chan *reply;
	struct chan_msg *m, *next;
	uint64_t n, sent = 0, back = 0, bad = 0, t0;
	const char *dom = argc > 4 ? argv[4] : "backlog.test";
	char err[512];
	double secs;

	if (argc < 3) {
		fprintf(
		    stderr, "usage: queue_fill PATH N [MAP_SIZE] [DOMAIN]\n");
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	str_copy(cfg.path, sizeof(cfg.path), argv[1]);
	n = strtoull(argv[2], NULL, 10);
	cfg.map_size = argc > 3 ? strtoull(argv[3], NULL, 10) : 16ull << 30;
	if (queue_open(&cfg, false, &q, err, sizeof(err)) != 0) {
		fprintf(stderr, "queue_fill: %s\n", err);
		return 1;
	}
	if (queue_start(q) != 0) {
		fprintf(stderr, "queue_fill: cannot start the committer\n");
		return 1;
	}
	reply = chan_new();
	t0 = clock_mono_ms();
	while (back < n) {
		while (sent < n && sent - back < WINDOW)
			queue_submit(q, fill_new(q, reply, sent++, dom));
		for (m = chan_wait(reply, 1000); m != NULL; m = next) {
			struct queue_submit *s = (struct queue_submit *)m;

			next = m->next;
			bad += s->status != 0;
			queue_submit_free(s);
			back++;
		}
	}
	secs = (double)(clock_mono_ms() - t0) / 1000;
	queue_stats_get(q, &st);
	queue_close(q);
	chan_free(reply);
	printf("{\"messages\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"seconds\":"
	       "%.2f,\"commits\":%" PRIu64 ",\"msgs_per_s\":%.0f}\n",
	    n - bad, bad, secs, st.commits,
	    secs > 0 ? (double)(n - bad) / secs : 0);
	return bad ? 1 : 0;
}
