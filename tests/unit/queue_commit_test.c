/* SPDX-License-Identifier: ISC */
/*
 * queue_commit_test.c - the committer against a real LMDB environment in
 * a temporary directory: concurrent submits, group commit, map full,
 * id order, reopen, read-only readers, and a failed sync (through the
 * failsync LD_PRELOAD shim, in a re-executed child).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "queue/queue.h"
#include "../harness.h"

#define NTHREADS 4
#define NPER     500
#define WINDOW   32 /* requests in flight per thread, like busy sessions */

static char tmpdir[256];

static void
tmp_make(void)
{
	str_copy(tmpdir, sizeof(tmpdir), "/tmp/mta-queue-test.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
tmp_remove(void)
{
	static const char *files[] = {
	    "q/data.mdb",
	    "q/lock.mdb",
	    "q",
	    "flag",
	};
	char p[300];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
		if (unlink(p) != 0)
			rmdir(p);
	}
	rmdir(tmpdir);
}

static void
cfg_make(struct config_queue *cfg, uint64_t map_size)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->path, sizeof(cfg->path), "%s/q", tmpdir);
	cfg->map_size = map_size;
}

static struct queue *
q_open(const struct config_queue *cfg, bool readonly)
{
	struct queue *q;
	char err[256];

	if (queue_open(cfg, readonly, &q, err, sizeof(err)) != 0) {
		fprintf(stderr, "queue_open: %s\n", err);
		return NULL;
	}
	return q;
}

/* Deterministic bytes, every value 0..255 included (NUL, bare CR/LF:
 * the queue stores bytes, not text). */
static size_t
body_len(unsigned seed)
{
	return 1 + (seed * 7919u) % 6000u;
}

static void
body_fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static struct queue_submit *
sub_new(struct queue *q, struct chan *reply, unsigned seed, size_t len)
{
	struct queue_submit *s = xcalloc(1, sizeof(*s));
	char addr[64];

	s->msg.type = QUEUE_REQ_SUBMIT;
	s->msg.reqid = seed;
	s->reply = reply;
	s->id = queue_id_new(q);
	snprintf(addr, sizeof(addr), "sender%u@example.org", seed);
	s->from = xstrdup(addr);
	s->nrcpts = 2;
	s->rcpts = xcalloc(2, sizeof(char *));
	s->rcpts[0] = xstrdup("rcpt1@example.com");
	s->rcpts[1] = xstrdup("rcpt2@example.net");
	s->user = seed % 2 ? xstrdup("alice") : NULL;
	s->client = xstrdup("127.0.0.1");
	s->helo = xstrdup("client.test");
	s->received_ms = clock_wall_ms();
	buf_init(&s->body, len);
	body_fill(buf_reserve(&s->body, len), len, seed);
	buf_commit(&s->body, len);
	s->status = 1; /* must be overwritten */
	return s;
}

/*
 * The reply chan of the tests on the main thread. It lives as long as the
 * process: chan_send() may still be writing the chan's eventfd after the
 * consumer has taken the message, so a reply chan must outlive the
 * committer (freed only after queue_close()).
 */
static struct chan *
reply_chan(void)
{
	static struct chan *c;

	if (c == NULL)
		c = chan_new();
	return c;
}

/* Submit one request and wait for its answer; returns its status. */
static int
submit_wait(struct queue *q, unsigned seed, size_t len, uint64_t *id)
{
	struct chan *reply = reply_chan();
	struct queue_submit *s = sub_new(q, reply, seed, len);
	struct chan_msg *m;
	int status;

	if (id)
		*id = s->id;
	queue_submit(q, s);
	while ((m = chan_wait(reply, -1)) == NULL)
		;
	MTA_ASSERT(m == &s->msg && m->next == NULL);
	MTA_ASSERT(m->type == QUEUE_DONE_SUBMIT);
	status = s->status;
	queue_submit_free(s);
	return status;
}

static int
body_matches(struct queue *q, uint64_t id, unsigned seed, size_t len)
{
	struct buf got;
	uint8_t *want = xmalloc(len);
	int ok;

	buf_init(&got, 64 << 20);
	body_fill(want, len, seed);
	ok = queue_body_get(q, id, &got) == 0 && buf_avail(&got) == len &&
	     memcmp(buf_peek(&got), want, len) == 0;
	buf_fini(&got);
	free(want);
	return ok;
}

struct worker {
	struct queue *q;
	unsigned t;
	uint64_t ids[NPER];
	struct chan *reply; /* freed after queue_close (see reply_chan) */
	int bad;            /* replies with a nonzero status or wrong type */
	int unordered;      /* ids not increasing within this thread */
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct chan *reply = w->reply;
	struct chan_msg *m, *next;
	unsigned sent = 0, back = 0;

	while (back < NPER) {
		while (sent < NPER && sent - back < WINDOW) {
			unsigned seed = w->t * NPER + sent;
			struct queue_submit *s =
			    sub_new(w->q, reply, seed, body_len(seed));

			w->ids[sent] = s->id;
			if (sent > 0 && w->ids[sent] <= w->ids[sent - 1])
				w->unordered++;
			queue_submit(w->q, s);
			sent++;
		}
		for (m = chan_wait(reply, -1); m != NULL; m = next) {
			struct queue_submit *s = (struct queue_submit *)m;

			next = m->next;
			if (m->type != QUEUE_DONE_SUBMIT || s->status != 0)
				w->bad++;
			queue_submit_free(s);
			back++;
		}
	}
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct scan_ctx {
	uint64_t n;
	uint64_t last;
	int bad;
	uint64_t stop_at;
};

static int
scan_cb(void *arg, const struct queue_envelope *e)
{
	struct scan_ctx *c = arg;

	if (e->id <= c->last || e->nrcpts != 2 ||
	    e->rcpts[0].state != QUEUE_RCPT_PENDING ||
	    e->rcpts[0].attempts != 0 || strcmp(e->client, "127.0.0.1") ||
	    e->size != body_len((unsigned)(strtoul(e->from + 6, NULL, 10))))
		c->bad++;
	c->last = e->id;
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

static void
test_concurrent(void)
{
	struct config_queue cfg;
	struct queue *q;
	struct worker *w = xcalloc(NTHREADS, sizeof(*w));
	pthread_t th[NTHREADS];
	struct queue_stats st;
	struct queue_envelope e;
	struct scan_ctx sc = {0, 0, 0, 0};
	uint64_t *all = xcalloc(NTHREADS * NPER, sizeof(*all));
	uint64_t n, maxid = 0;

	tmp_make();
	cfg_make(&cfg, 256 << 20);
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_start(q) == 0);
	for (unsigned t = 0; t < NTHREADS; t++) {
		w[t].q = q;
		w[t].t = t;
		w[t].reply = chan_new();
		CHECK(pthread_create(&th[t], NULL, worker_main, &w[t]) == 0);
	}
	for (unsigned t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	for (unsigned t = 0; t < NTHREADS; t++) {
		CHECK(w[t].bad == 0);
		CHECK(w[t].unordered == 0);
		memcpy(all + t * NPER, w[t].ids, sizeof(w[t].ids));
	}
	/* Unique across threads. */
	qsort(all, NTHREADS * NPER, sizeof(*all), cmp_u64);
	for (size_t i = 1; i < NTHREADS * NPER; i++)
		CHECK(all[i] > all[i - 1]);
	maxid = all[NTHREADS * NPER - 1];

	CHECK(queue_count(q, &n) == 0 && n == NTHREADS * NPER);
	queue_stats_get(q, &st);
	printf("     %u messages in %llu commits\n", NTHREADS * NPER,
	    (unsigned long long)st.commits);
	CHECK(st.done == NTHREADS * NPER && st.failed == 0);
	CHECK(st.commits < NTHREADS * NPER); /* group commit happened */

	for (unsigned t = 0; t < NTHREADS; t++)
		for (unsigned i = 0; i < NPER; i++) {
			unsigned seed = t * NPER + i;

			CHECK(
			    body_matches(q, w[t].ids[i], seed, body_len(seed)));
		}
	CHECK(queue_envelope_get(q, w[1].ids[7], &e) == 0);
	CHECK(e.id == w[1].ids[7]);
	CHECK(strcmp(e.from, "sender507@example.org") == 0);
	CHECK(strcmp(e.user, "alice") == 0);
	CHECK(strcmp(e.helo, "client.test") == 0);
	CHECK(e.nrcpts == 2);
	CHECK(strcmp(e.rcpts[1].addr, "rcpt2@example.net") == 0);
	CHECK(e.rcpts[1].next_ms == e.received_ms && e.rcpts[1].reply[0] == 0);
	queue_envelope_fini(&e);

	/* Scan sees everything once, in id order, across batches. */
	CHECK(queue_scan(q, 0, scan_cb, &sc) == 0);
	CHECK(sc.n == NTHREADS * NPER && sc.bad == 0);
	sc = (struct scan_ctx){0, 0, 0, 300};
	CHECK(queue_scan(q, 0, scan_cb, &sc) == 42 && sc.n == 300);
	sc = (struct scan_ctx){0, 0, 0, 0};
	CHECK(queue_scan(q, all[1000], scan_cb, &sc) == 0 &&
	      sc.n == NTHREADS * NPER - 1000);
	queue_close(q);
	for (unsigned t = 0; t < NTHREADS; t++)
		chan_free(w[t].reply);

	/* Reopen: everything is still there; new ids are above the old. */
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_count(q, &n) == 0 && n == NTHREADS * NPER);
	CHECK(queue_id_new(q) > maxid);
	CHECK(body_matches(
	    q, w[3].ids[499], 3 * NPER + 499, body_len(3 * NPER + 499)));
	queue_close(q);

	/* A read-only reader (what `mta queue` does). */
	CHECK((q = q_open(&cfg, true)) != NULL);
	CHECK(queue_count(q, &n) == 0 && n == NTHREADS * NPER);
	CHECK(body_matches(q, w[0].ids[0], 0, body_len(0)));
	CHECK(queue_envelope_get(q, 1, &e) == -ENOENT);
	queue_close(q);
	free(all);
	free(w);
	tmp_remove();
}

static void
test_map_full(void)
{
	struct config_queue cfg;
	struct queue *q;
	struct chan *reply;
	struct queue_submit *s[3];
	struct chan_msg *m;
	struct queue_envelope e;
	struct buf b;
	uint64_t n, big, small;
	int got = 0;

	tmp_make();
	cfg_make(&cfg, 1 << 20);
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_start(q) == 0);
	CHECK(submit_wait(q, 1, 2 << 20, &big) == -ENOSPC);
	CHECK(submit_wait(q, 2, 1000, &small) == 0);
	CHECK(queue_count(q, &n) == 0 && n == 1);
	/* Nothing of the big one: no envelope, no body. */
	buf_init(&b, 4 << 20);
	CHECK(queue_envelope_get(q, big, &e) == -ENOENT);
	CHECK(queue_body_get(q, big, &b) == -ENOENT && buf_avail(&b) == 0);
	CHECK(body_matches(q, small, 2, 1000));

	/* In one batch (or not, the outcome must be the same): the big
	 * one fails alone. */
	reply = reply_chan();
	s[0] = sub_new(q, reply, 10, 500);
	s[1] = sub_new(q, reply, 11, 2 << 20);
	s[2] = sub_new(q, reply, 12, 700);
	for (int i = 0; i < 3; i++)
		queue_submit(q, s[i]);
	while (got < 3)
		for (m = chan_wait(reply, -1); m != NULL; m = m->next)
			got++;
	CHECK(
	    s[0]->status == 0 && s[1]->status == -ENOSPC && s[2]->status == 0);
	CHECK(queue_count(q, &n) == 0 && n == 3);
	CHECK(queue_body_get(q, s[1]->id, &b) == -ENOENT);
	CHECK(body_matches(q, s[2]->id, 12, 700));
	for (int i = 0; i < 3; i++)
		queue_submit_free(s[i]);
	buf_fini(&b);

	/* A body too big for the caller's buffer: -ENOBUFS, untouched. */
	buf_init(&b, 10);
	CHECK(queue_body_get(q, small, &b) == -ENOBUFS && buf_avail(&b) == 0);
	buf_fini(&b);
	queue_close(q);
	tmp_remove();
}

static void
test_duplicate_id(void)
{
	struct config_queue cfg;
	struct queue *q;
	struct chan *reply;
	struct queue_submit *s;
	uint64_t id, n;

	tmp_make();
	cfg_make(&cfg, 16 << 20);
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_start(q) == 0);
	CHECK(submit_wait(q, 1, 100, &id) == 0);
	/* A reused id never replaces a queued message. */
	reply = reply_chan();
	s = sub_new(q, reply, 2, 200);
	s->id = id;
	queue_submit(q, s);
	while (chan_wait(reply, -1) == NULL)
		;
	CHECK(s->status == -EEXIST);
	queue_submit_free(s);
	CHECK(queue_count(q, &n) == 0 && n == 1);
	CHECK(body_matches(q, id, 1, 100));
	queue_close(q);
	tmp_remove();
}

/* Ranged reads give exactly the stored bytes, in any pieces, and the
 * whole size; past the end nothing; a missing id -ENOENT. */
static void
test_body_read(void)
{
	struct config_queue cfg;
	struct queue *q;
	uint64_t id, total = 0;
	uint8_t want[5000], got[5000], one;
	size_t off, k;
	ssize_t n;

	tmp_make();
	cfg_make(&cfg, 16 << 20);
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_start(q) == 0);
	CHECK(submit_wait(q, 3, sizeof(want), &id) == 0);
	body_fill(want, sizeof(want), 3);
	CHECK(queue_body_read(q, id, 0, NULL, 0, &total) == 0);
	CHECK(total == sizeof(want));
	for (k = 1; k <= sizeof(want); k = k * 3 + 1) {
		memset(got, 0, sizeof(got));
		for (off = 0; off < sizeof(want); off += (size_t)n) {
			n = queue_body_read(q, id, off, got + off, k, NULL);
			CHECK(n > 0 && (size_t)n <= k);
			if (n <= 0)
				break;
		}
		CHECK(memcmp(got, want, sizeof(want)) == 0);
	}
	CHECK(queue_body_read(q, id, sizeof(want), &one, 1, NULL) == 0);
	CHECK(queue_body_read(q, id, 1u << 30, &one, 1, NULL) == 0);
	CHECK(queue_body_read(q, id + 12345, 0, &one, 1, &total) == -ENOENT);
	queue_close(q);
	tmp_remove();
}

static void
test_close_drains(void)
{
	struct config_queue cfg;
	struct queue *q;
	struct chan *reply = reply_chan();
	struct chan_msg *m, *next;
	uint64_t n;
	int got = 0, ok = 0;

	tmp_make();
	cfg_make(&cfg, 16 << 20);
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_start(q) == 0);
	for (unsigned i = 0; i < 100; i++)
		queue_submit(q, sub_new(q, reply, i, 300));
	/* Close at once: everything sent before it is committed and
	 * answered. */
	queue_close(q);
	while (got < 100)
		for (m = chan_wait(reply, -1); m != NULL; m = next) {
			struct queue_submit *s = (struct queue_submit *)m;

			next = m->next;
			got++;
			ok += s->status == 0;
			queue_submit_free(s);
		}
	CHECK(ok == 100);
	CHECK((q = q_open(&cfg, true)) != NULL);
	CHECK(queue_count(q, &n) == 0 && n == 100);
	queue_close(q);
	tmp_remove();
}

static void
test_open_errors(void)
{
	struct config_queue cfg;
	struct queue *q;
	char err[256];

	tmp_make();
	cfg_make(&cfg, 1 << 20);
	/* A reader never creates anything. */
	CHECK(queue_open(&cfg, true, &q, err, sizeof(err)) == -ENOENT);
	CHECK(q == NULL && strstr(err, cfg.path) != NULL);
	/* The writer creates the directory, the relay's and its group's:
	 * nothing for others; the group may read (mta queue list), and
	 * write only the lock file (an LMDB reader's slot). */
	CHECK((q = q_open(&cfg, false)) != NULL);
	queue_close(q);
	{
		struct stat st;
		char f[sizeof(cfg.path) + 16];

		CHECK(stat(cfg.path, &st) == 0 && (st.st_mode & 0777) == 0750);
		snprintf(f, sizeof(f), "%s/data.mdb", cfg.path);
		CHECK(stat(f, &st) == 0 && (st.st_mode & 0777) == 0640);
		snprintf(f, sizeof(f), "%s/lock.mdb", cfg.path);
		CHECK(stat(f, &st) == 0 && (st.st_mode & 0777) == 0660);
	}
	cfg.path[0] = '\0';
	CHECK(queue_open(&cfg, false, &q, err, sizeof(err)) == -EINVAL);
	tmp_remove();
}

/*
 * Failed sync: the parent re-executes this binary as the case
 * "failsync_child" with the shim preloaded; the child does the checks.
 * Run without the shim (a plain run of every case), the child case has
 * nothing to do.
 */
static void
test_failsync_child(void)
{
	const char *flag = getenv("MTA_FAILSYNC_FLAG");
	struct config_queue cfg;
	struct queue *q;
	struct chan *reply;
	struct chan_msg *m;
	struct queue_submit *s[3];
	uint64_t ok1, bad, ok2, n;
	FILE *fp;
	char *slash;
	int got = 0;

	if (flag == NULL)
		return;
	str_copy(tmpdir, sizeof(tmpdir), flag);
	CHECK((slash = strrchr(tmpdir, '/')) != NULL);
	*slash = '\0';
	cfg_make(&cfg, 16 << 20);
	CHECK((q = q_open(&cfg, false)) != NULL);
	CHECK(queue_start(q) == 0);
	CHECK(submit_wait(q, 1, 100, &ok1) == 0);

	CHECK((fp = fopen(flag, "w")) != NULL);
	fclose(fp);
	CHECK(submit_wait(q, 2, 100, &bad) == -EIO);
	/* A failed sync fails the whole batch, with no retry. */
	reply = reply_chan();
	for (int i = 0; i < 3; i++) {
		s[i] = sub_new(q, reply, 20 + (unsigned)i, 100);
		queue_submit(q, s[i]);
	}
	while (got < 3)
		for (m = chan_wait(reply, -1); m != NULL; m = m->next)
			got++;
	for (int i = 0; i < 3; i++) {
		CHECK(s[i]->status == -EIO);
		queue_submit_free(s[i]);
	}
	CHECK(queue_count(q, &n) == 0 && n == 1);
	CHECK(unlink(flag) == 0);

	/* The disk "recovers": the environment is still usable. */
	CHECK(submit_wait(q, 3, 100, &ok2) == 0);
	queue_close(q);
	CHECK((q = q_open(&cfg, true)) != NULL);
	CHECK(queue_count(q, &n) == 0 && n == 2);
	CHECK(body_matches(q, ok1, 1, 100));
	CHECK(body_matches(q, ok2, 3, 100));
	CHECK(!body_matches(q, bad, 2, 100));
	queue_close(q);
}

static void
test_failsync(void)
{
	char self[PATH_MAX], shim[PATH_MAX + 32], flag[PATH_MAX + 32];
	char asan[512];
	const char *old;
	ssize_t len;
	pid_t pid;
	int st;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(len > 0);
	self[len] = '\0';
	snprintf(shim, sizeof(shim), "%.*s/failsync.so",
	    (int)(strrchr(self, '/') - self), self);
	if (access(shim, R_OK) != 0) {
		fprintf(stderr, "%s missing: run `make units`\n", shim);
		CHECK(0);
	}
	tmp_make();
	snprintf(flag, sizeof(flag), "%s/flag", tmpdir);
	old = getenv("ASAN_OPTIONS");
	/* The shim is preloaded ahead of the ASan runtime. */
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0",
	    old ? old : "", old && *old ? ":" : "");
	fflush(NULL);
	CHECK((pid = fork()) >= 0);
	if (pid == 0) {
		char *argv[] = {self, (char *)"failsync_child", NULL};

		setenv("LD_PRELOAD", shim, 1);
		setenv("MTA_FAILSYNC_FLAG", flag, 1);
		setenv("ASAN_OPTIONS", asan, 1);
		/* Its RUN/PASS lines would be counted as ours. */
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(1);
		execv(self, argv);
		_exit(127);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	tmp_remove();
}

static const struct harness_case cases[] = {
    {"concurrent", test_concurrent},
    {"map_full", test_map_full},
    {"duplicate_id", test_duplicate_id},
    {"body_read", test_body_read},
    {"close_drains", test_close_drains},
    {"open_errors", test_open_errors},
    {"failsync", test_failsync},
    {"failsync_child", test_failsync_child},
};

HARNESS_MAIN(cases)
