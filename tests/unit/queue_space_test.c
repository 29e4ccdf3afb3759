/* SPDX-License-Identifier: ISC */
/*
 * queue_space_test.c - the map's headroom (queue_space.c), white-box for
 * the limit and black-box against a real 1 MiB LMDB map: new mail is
 * refused (-ENOSPC, nothing written) before the map is full, updates and
 * removals still commit, and once removals free pages (reused from the
 * freelist, while the file's high water mark stays) new mail is accepted
 * again.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "../harness.h"

#define MAX_MSGS 20000 /* far more than a 1 MiB map holds */

static char tmpdir[256];

static void
tmp_make(void)
{
	str_copy(tmpdir, sizeof(tmpdir), "/tmp/mta-space-test.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
tmp_remove(void)
{
	static const char *files[] = {"q/data.mdb", "q/lock.mdb", "q"};
	char p[300];

	for (size_t i = 0; i < MTA_ARRAY_LEN(files); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
		if (unlink(p) != 0)
			rmdir(p);
	}
	rmdir(tmpdir);
}

/* Lives as long as the process (see queue_commit_test.c reply_chan). */
static struct chan *
reply_chan(void)
{
	static struct chan *c;

	if (c == NULL)
		c = chan_new();
	return c;
}

static struct chan_msg *
wait_one(void)
{
	struct chan_msg *m;

	while ((m = chan_wait(reply_chan(), -1)) == NULL)
		;
	MTA_ASSERT(m->next == NULL);
	return m;
}

static int
submit_wait(struct queue *q, size_t len, uint64_t *id)
{
	struct queue_submit *s = xcalloc(1, sizeof(*s));
	int status;

	s->reply = reply_chan();
	s->id = queue_id_new(q);
	s->from = xstrdup("sender@example.org");
	s->nrcpts = 1;
	s->rcpts = xcalloc(1, sizeof(char *));
	s->rcpts[0] = xstrdup("rcpt@example.com");
	s->client = xstrdup("127.0.0.1");
	s->helo = xstrdup("client.test");
	s->received_ms = clock_wall_ms();
	buf_init(&s->body, len);
	memset(buf_reserve(&s->body, len), 'x', len);
	buf_commit(&s->body, len);
	*id = s->id;
	queue_submit(q, s);
	MTA_ASSERT(wait_one() == &s->msg && s->msg.type == QUEUE_DONE_SUBMIT);
	status = s->status;
	queue_submit_free(s);
	return status;
}

/* One recipient's outcome, committed; returns the status. */
static int
update_wait(struct queue *q, uint64_t id, uint8_t state, const char *reply,
    bool *removed)
{
	struct queue_update_rcpt r = {
	    .idx = 0,
	    .state = state,
	    .attempts = 1,
	    .next_ms = clock_wall_ms() + 60000,
	    .reply = reply,
	};
	struct queue_update u = {
	    .reply = reply_chan(),
	    .id = id,
	    .n = 1,
	    .rcpts = &r,
	};

	queue_submit_update(q, &u);
	MTA_ASSERT(wait_one() == &u.msg && u.msg.type == QUEUE_DONE_UPDATE);
	if (removed)
		*removed = u.removed;
	return u.status;
}

static struct queue *
q_open(uint64_t map_size)
{
	struct config_queue cfg;
	struct queue *q;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.path, sizeof(cfg.path), "%s/q", tmpdir);
	cfg.map_size = map_size;
	if (queue_open(&cfg, false, &q, err, sizeof(err)) != 0) {
		fprintf(stderr, "queue_open: %s\n", err);
		return NULL;
	}
	return q;
}

static void
test_limit(void)
{
	/* Small maps keep 10%, large ones the fixed reserve. */
	CHECK(queue_space_limit(256, 4096) == 256 - 25);
	CHECK(queue_space_limit(16, 4096) == 15);
	CHECK(queue_space_limit(10000, 4096) == 9000);
	CHECK(queue_space_limit((8ull << 30) / 4096, 4096) ==
	      (8ull << 30) / 4096 - (QUEUE_SPACE_RESERVE / 4096));
	/* The crossover: exactly where 10% == the reserve. */
	CHECK(queue_space_limit(10 * (QUEUE_SPACE_RESERVE / 4096), 4096) ==
	      9 * (QUEUE_SPACE_RESERVE / 4096));
}

static void
test_headroom(void)
{
	static char longreply[128]; /* half of QUEUE_SPACE_MSG_SLACK */
	struct queue_envelope e;
	struct queue *q;
	uint64_t *ids = xcalloc(MAX_MSGS, sizeof(*ids));
	uint64_t refused = 0, n, id;
	size_t nok = 0;
	bool removed;
	int rc = 0;

	memset(longreply, 'r', sizeof(longreply) - 1);
	tmp_make();
	CHECK((q = q_open(1 << 20)) != NULL);
	CHECK(queue_start(q) == 0);
	/* Fill until new mail is refused. */
	while (nok < MAX_MSGS && (rc = submit_wait(q, 600, &ids[nok])) == 0)
		nok++;
	CHECK(rc == -ENOSPC);
	refused = ids[nok];
	printf("     %zu messages accepted before the headroom\n", nok);
	CHECK(nok > 100);
	CHECK(queue_envelope_get(q, refused, &e) == -ENOENT);
	CHECK(queue_count(q, &n) == 0 && n == nok);
	/* Still refused: the state holds. */
	CHECK(submit_wait(q, 600, &id) == -ENOSPC);

	/* The map is not full: every message can still be rewritten with a
	 * longer record (a deferral with a long reply), which copies pages. */
	for (size_t i = 0; i < nok; i += 1) {
		rc = update_wait(
		    q, ids[i], QUEUE_RCPT_PENDING, longreply, &removed);
		if (rc != 0)
			break;
	}
	CHECK(rc == 0 && !removed);
	CHECK(queue_envelope_get(q, ids[nok / 2], &e) == 0);
	CHECK(strcmp(e.rcpts[0].reply, longreply) == 0);
	queue_envelope_fini(&e);

	/* Deliveries remove messages; their pages go to the freelist. */
	for (size_t i = 0; i < nok / 2; i++) {
		rc = update_wait(
		    q, ids[i], QUEUE_RCPT_DELIVERED, "250 ok", &removed);
		if (rc != 0 || !removed)
			break;
	}
	CHECK(rc == 0 && removed);
	CHECK(queue_count(q, &n) == 0 && n == nok - nok / 2);
	/* And new mail is accepted again (the high water mark did not go
	 * down: only the freelist says there is room). */
	CHECK(submit_wait(q, 600, &id) == 0);
	CHECK(queue_envelope_get(q, id, &e) == 0);
	queue_envelope_fini(&e);
	queue_close(q);

	/* The headroom holds across a restart, from the stored state. */
	CHECK((q = q_open(1 << 20)) != NULL);
	CHECK(queue_start(q) == 0);
	for (rc = 0, n = 0; rc == 0 && n < MAX_MSGS; n++)
		rc = submit_wait(q, 600, &id);
	CHECK(rc == -ENOSPC);
	CHECK(update_wait(q, ids[nok - 1], QUEUE_RCPT_DELIVERED, "250 ok",
	          &removed) == 0 &&
	      removed);
	queue_close(q);
	free(ids);
	tmp_remove();
}

/* A message larger than the headroom leaves fails alone; the queue is
 * not "full" for the small ones. */
static void
test_big_alone(void)
{
	struct queue *q;
	uint64_t id, n;

	tmp_make();
	CHECK((q = q_open(1 << 20)) != NULL);
	CHECK(queue_start(q) == 0);
	CHECK(submit_wait(q, 950 << 10, &id) == -ENOSPC); /* < map, > limit */
	CHECK(submit_wait(q, 500 << 10, &id) == 0);
	CHECK(submit_wait(q, 1000, &id) == 0);
	CHECK(queue_count(q, &n) == 0 && n == 2);
	queue_close(q);
	tmp_remove();
}

static const struct harness_case cases[] = {
    {"limit", test_limit},
    {"headroom", test_headroom},
    {"big_alone", test_big_alone},
};

HARNESS_MAIN(cases)
