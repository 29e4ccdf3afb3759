/* SPDX-License-Identifier: ISC */
/*
 * limits_redis.c - the Redis client of limits_redis.h: one connection per
 * receive thread, a FIFO of checks waiting for their replies (Redis
 * answers in order), the timeout, fallback and reconnection. Loop thread.
 */
#include "limits/limits_redis.h"

#include <hiredis.h>
#include <inttypes.h>
#include <sys/random.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "net/stream.h"
#include "net/uring.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* FIFO entries that are not a caller's: the SCRIPT LOADs (check, then
 * lease script) and the replies nobody waits for (ZREM). */
#define COOKIE_LOAD0  UINT64_MAX
#define COOKIE_LOAD1  (UINT64_MAX - 1)
#define COOKIE_IGNORE (UINT64_MAX - 2)

enum lr_state {
	LR_DOWN,       /* no connection; the retry timer runs */
	LR_CONNECTING, /* stream_connect, then SCRIPT LOAD */
	LR_UP,         /* script loaded: checks go to Redis */
	LR_CLOSING,    /* stream_close called; `closed` will come */
};

struct lr_wait {
	uint64_t cookie;
	uint64_t sent; /* mono ms */
	size_t ns;     /* steps asked */
	char *undo;    /* a lease: the commands giving it back; else NULL */
	size_t undolen;
};

struct limits_redis {
	struct stream st;
	struct uring_loop *l;
	struct config_shared sh;
	const struct limits_redis_cbs *cbs;
	void *arg;
	enum lr_state state;
	bool open;     /* st between connect and closed */
	bool stopping; /* limits_redis_stop */
	bool stopped;  /* cbs->stopped was called */
	redisReader *rd;
	char sha[2][41]; /* the check and lease scripts' digests */
	uint64_t idpre;  /* lease ids: random per client, then a count */
	uint64_t idseq;
	struct lr_wait *q; /* FIFO ring */
	size_t qhead, qlen, qcap;
	struct uring_op retry; /* the reconnect timer */
	uint64_t backoff_ms;
	const char *why; /* why the last connection ended */
};

/* Down or up, as the whole process logs it (once per change). */
static atomic_bool lr_fallback;

static const struct stream_cbs lr_cbs;
static void lr_connect(struct limits_redis *lr);
static void lr_ignore(struct limits_redis *lr, size_t n);

size_t
limits_redis_key(const struct limits_step *st, char *out, size_t len)
{
	static const char pre[] = "mta:limit:";
	size_t n = sizeof(pre) - 1 + st->keylen;

	if (n >= len)
		return 0;
	memcpy(out, pre, sizeof(pre) - 1);
	memcpy(out + sizeof(pre) - 1, st->key, st->keylen);
	/* "NAME\0VALUE": names have no ':' (config_limit_name_valid) */
	for (size_t i = sizeof(pre) - 1; i < n; i++)
		if (out[i] == '\0')
			out[i] = ':';
	out[n] = '\0';
	return n;
}

int
limits_redis_result(
    int type, long long v, const char *str, size_t ns, bool *noscript)
{
	*noscript = false;
	if (type == REDIS_REPLY_INTEGER && v >= 0 &&
	    (unsigned long long)v <= ns)
		return (int)v;
	if (type == REDIS_REPLY_ERROR && str != NULL &&
	    strncmp(str, "NOSCRIPT", 8) == 0)
		*noscript = true;
	return LIMITS_REDIS_FALLBACK;
}

static void
lr_log_down(struct limits_redis *lr, const char *why)
{
	if (!atomic_exchange(&lr_fallback, true))
		log_event("event=limits-fallback redis=%s reason=%s nodes=%u",
		    lr->sh.redis, why, lr->sh.nodes);
}

static void
lr_log_up(struct limits_redis *lr)
{
	if (atomic_exchange(&lr_fallback, false))
		log_event("event=limits-recovered redis=%s", lr->sh.redis);
}

static void
lr_push(struct limits_redis *lr, uint64_t cookie, size_t ns, char *undo,
    size_t undolen)
{
	if (lr->qlen == lr->qcap) {
		size_t cap = lr->qcap ? lr->qcap * 2 : 16;
		struct lr_wait *q = xreallocarray(NULL, cap, sizeof(*q));

		for (size_t i = 0; i < lr->qlen; i++)
			q[i] = lr->q[(lr->qhead + i) % lr->qcap];
		free(lr->q);
		lr->q = q;
		lr->qcap = cap;
		lr->qhead = 0;
	}
	lr->q[(lr->qhead + lr->qlen) % lr->qcap] =
	    (struct lr_wait){cookie, clock_mono_ms(), ns, undo, undolen};
	if (lr->qlen++ == 0)
		stream_timer(&lr->st, lr->sh.redis_timeout);
}

static struct lr_wait
lr_pop(struct limits_redis *lr)
{
	struct lr_wait w = lr->q[lr->qhead];

	lr->qhead = (lr->qhead + 1) % lr->qcap;
	lr->qlen--;
	return w;
}

/* Append a command to the output. false: the stream refused it. */
static bool
lr_send(
    struct limits_redis *lr, int argc, const char **argv, const size_t *argvlen)
{
	char *cmd;
	int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
	bool ok;

	if (n < 0)
		return false;
	ok = stream_write(&lr->st, cmd, (size_t)n) == 0;
	redisFreeCommand(cmd);
	return ok;
}

static bool
lr_load(struct limits_redis *lr)
{
	const char *argv[] = {"SCRIPT", "LOAD", limits_redis_lua};
	size_t len[] = {6, 4, strlen(limits_redis_lua)};

	if (!lr_send(lr, 3, argv, len))
		return false;
	lr_push(lr, COOKIE_LOAD0, 0, NULL, 0);
	argv[2] = limits_redis_lease_lua;
	len[2] = strlen(limits_redis_lease_lua);
	if (!lr_send(lr, 3, argv, len))
		return false;
	lr_push(lr, COOKIE_LOAD1, 0, NULL, 0);
	return true;
}

/* Answer every check still out with the fallback. */
static void
lr_flush_waits(struct limits_redis *lr)
{
	while (lr->qlen > 0) {
		struct lr_wait w = lr_pop(lr);

		free(w.undo); /* a lease Redis took anyway expires by itself */
		if (w.cookie < COOKIE_IGNORE)
			(void)lr->cbs->answer(
			    lr->arg, w.cookie, LIMITS_REDIS_FALLBACK);
	}
}

/* Give up on this connection: why is logged (once per process). */
static void
lr_fail(struct limits_redis *lr, const char *why)
{
	if (lr->state == LR_CLOSING || lr->state == LR_DOWN)
		return;
	lr->why = why;
	lr->state = LR_CLOSING;
	if (!lr->stopping)
		lr_log_down(lr, why);
	stream_close(&lr->st, why, STREAM_CLOSE_ABORT);
	lr_flush_waits(lr);
}

static void
lr_reply(struct limits_redis *lr, redisReply *r)
{
	struct lr_wait w;
	bool noscript;
	int res;

	if (lr->qlen == 0) {
		lr_fail(lr, "unexpected reply");
		return;
	}
	w = lr_pop(lr);
	if (w.cookie == COOKIE_IGNORE)
		return;
	if (w.cookie == COOKIE_LOAD0 || w.cookie == COOKIE_LOAD1) {
		char *sha = lr->sha[w.cookie == COOKIE_LOAD1];

		if (r->type != REDIS_REPLY_STRING || r->len != 40) {
			lr_fail(lr, "script load failed");
			return;
		}
		memcpy(sha, r->str, 40);
		sha[40] = '\0';
		if (w.cookie == COOKIE_LOAD1) {
			lr->state = LR_UP;
			lr->backoff_ms = 0;
			lr_log_up(lr);
		}
		return;
	}
	res = limits_redis_result(r->type, r->integer,
	    r->type == REDIS_REPLY_ERROR ? r->str : NULL, w.ns, &noscript);
	if (noscript && lr->state == LR_UP) {
		/* SCRIPT FLUSH or a restart behind a proxy: load it again */
		lr->state = LR_CONNECTING;
		if (!lr_load(lr))
			lr_fail(lr, "write failed");
	}
	if (!lr->cbs->answer(lr->arg, w.cookie, res) && res == 0 &&
	    w.undo != NULL && lr->state != LR_CLOSING &&
	    stream_write(&lr->st, w.undo, w.undolen) == 0)
		lr_ignore(lr, w.ns);
	free(w.undo);
}

static size_t
lr_input(struct stream *st, void *user, const uint8_t *p, size_t n)
{
	struct limits_redis *lr = user;
	void *r;

	(void)st;
	if (redisReaderFeed(lr->rd, (const char *)p, n) != REDIS_OK) {
		lr_fail(lr, "protocol error");
		return n;
	}
	while (lr->state != LR_CLOSING) {
		if (redisReaderGetReply(lr->rd, &r) != REDIS_OK) {
			lr_fail(lr, "protocol error");
			break;
		}
		if (r == NULL)
			break;
		lr_reply(lr, r);
		freeReplyObject(r);
	}
	/* the oldest check still out has the rest of its time */
	if (lr->qlen > 0 && lr->state != LR_CLOSING) {
		uint64_t age = clock_mono_ms() - lr->q[lr->qhead].sent;

		stream_timer(&lr->st, age < lr->sh.redis_timeout
		                          ? lr->sh.redis_timeout - age
		                          : 1);
	}
	return n;
}

static void
lr_connected(struct stream *st, void *user, int res)
{
	struct limits_redis *lr = user;

	(void)st;
	if (res < 0) {
		lr_fail(lr, "connect failed");
		return;
	}
	if (!lr_load(lr))
		lr_fail(lr, "write failed");
}

static void
lr_timeout(struct stream *st, void *user, enum stream_timer which)
{
	struct limits_redis *lr = user;

	(void)st;
	if (which != STREAM_TMO_TIMER || lr->qlen == 0)
		return;
	if (clock_mono_ms() - lr->q[lr->qhead].sent >= lr->sh.redis_timeout)
		lr_fail(lr, "timeout");
	else
		stream_timer(&lr->st, 1);
}

static void
lr_stopped(struct limits_redis *lr)
{
	if (lr->stopping && !lr->open && !uring_op_busy(&lr->retry) &&
	    !lr->stopped) {
		lr->stopped = true;
		lr->cbs->stopped(lr->arg);
	}
}

static void
lr_closed(struct stream *st, void *user, const char *reason)
{
	struct limits_redis *lr = user;

	(void)st;
	lr->open = false;
	if (lr->state != LR_CLOSING && !lr->stopping)
		lr_log_down(lr, reason); /* Redis closed it */
	lr->state = LR_DOWN;
	lr_flush_waits(lr);
	redisReaderFree(lr->rd);
	lr->rd = NULL;
	if (lr->stopping) {
		lr_stopped(lr);
		return;
	}
	lr->backoff_ms = lr->backoff_ms ? lr->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (lr->backoff_ms > BACKOFF_MAX_MS)
		lr->backoff_ms = BACKOFF_MAX_MS;
	uring_timeout(lr->l, &lr->retry, lr->backoff_ms);
}

static void
lr_retry_cb(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct limits_redis *lr =
	    uring_container_of(op, struct limits_redis, retry);

	(void)res, (void)flags, (void)data, (void)len;
	if (lr->stopping)
		lr_stopped(lr);
	else
		lr_connect(lr);
}

static const struct stream_cbs lr_cbs = {
    .input = lr_input,
    .connected = lr_connected,
    .timeout = lr_timeout,
    .closed = lr_closed,
};

static void
lr_connect(struct limits_redis *lr)
{
	int res;

	lr->rd = redisReaderCreate();
	lr->state = LR_CONNECTING;
	res = stream_connect(&lr->st, lr->l, (struct sockaddr *)&lr->sh.ss,
	    lr->sh.sslen, lr->sh.redis_timeout, &lr_cbs, lr);
	if (res < 0) {
		redisReaderFree(lr->rd);
		lr->rd = NULL;
		lr->state = LR_DOWN;
		lr_log_down(lr, "no socket");
		uring_timeout(lr->l, &lr->retry, BACKOFF_MAX_MS);
		return;
	}
	lr->open = true;
}

struct limits_redis *
limits_redis_new(struct uring_loop *l, const struct config_shared *sh,
    const struct limits_redis_cbs *cbs, void *arg)
{
	struct limits_redis *lr = xcalloc(1, sizeof(*lr));

	lr->l = l;
	lr->sh = *sh;
	lr->cbs = cbs;
	lr->arg = arg;
	if (getrandom(&lr->idpre, sizeof(lr->idpre), 0) !=
	    (ssize_t)sizeof(lr->idpre))
		lr->idpre = clock_mono_ms() ^ (uint64_t)(uintptr_t)lr;
	uring_op_init(&lr->retry, lr_retry_cb);
	lr_connect(lr);
	return lr;
}

/* EVALSHA script `which` over the keys of steps[0..ns), with args, then
 * per step its words(), as ARGV. false: not sent. */
static bool
lr_eval(struct limits_redis *lr, int which, const struct limits_step *steps,
    size_t ns, const char *const *args, size_t nargs,
    size_t (*words)(const struct limits_step *, char (*)[24]))
{
	enum {
		KEYMAX = LIMITS_KEY_MAX + 16,
		ARGMAX = 8 + 4 * LIMITS_STEPS_MAX
	};
	const char *argv[ARGMAX];
	size_t len[ARGMAX];
	char keys[LIMITS_STEPS_MAX][KEYMAX], nums[2 * LIMITS_STEPS_MAX][24];
	char nk[8];
	size_t argc = 0, nn = 0;

	if (lr->state != LR_UP || ns == 0 || ns > LIMITS_STEPS_MAX)
		return false;
	snprintf(nk, sizeof(nk), "%zu", ns);
	argv[argc++] = "EVALSHA";
	argv[argc++] = lr->sha[which];
	argv[argc++] = nk;
	for (size_t i = 0; i < 3; i++)
		len[i] = strlen(argv[i]);
	for (size_t i = 0; i < ns; i++) {
		if ((len[argc] =
		            limits_redis_key(&steps[i], keys[i], KEYMAX)) == 0)
			return false;
		argv[argc++] = keys[i];
	}
	for (size_t i = 0; i < nargs; i++) {
		len[argc] = strlen(args[i]);
		argv[argc++] = args[i];
	}
	for (size_t i = 0; i < ns; i++) {
		size_t w = words(&steps[i], &nums[nn]);

		for (size_t j = 0; j < w; j++, nn++) {
			len[argc] = strlen(nums[nn]);
			argv[argc++] = nums[nn];
		}
	}
	return lr_send(lr, (int)argc, argv, len);
}

/* The check script's words per key: interval and burst. */
static size_t
check_words(const struct limits_step *st, char (*out)[24])
{
	snprintf(out[0], sizeof(out[0]), "%" PRIu64, st->g.interval);
	snprintf(out[1], sizeof(out[1]), "%" PRIu64, st->g.burst);
	return 2;
}

/* The lease script's: max. */
static size_t
lease_words(const struct limits_step *st, char (*out)[24])
{
	snprintf(out[0], sizeof(out[0]), "%" PRIu64, st->max);
	return 1;
}

bool
limits_redis_check(struct limits_redis *lr, const struct limits_step *steps,
    size_t ns, uint64_t n, uint64_t cookie)
{
	char num[24];
	const char *args[] = {num};

	snprintf(num, sizeof(num), "%" PRIu64, n);
	if (!lr_eval(lr, 0, steps, ns, args, 1, check_words))
		return false;
	lr_push(lr, cookie, ns, NULL, 0);
	stream_flush(&lr->st);
	return true;
}

/* "ZREM key id" for each step, formatted into *out (malloc'd). */
static bool
lr_unlease_cmds(const struct limits_step *steps, size_t ns, const char *id,
    char **out, size_t *outlen)
{
	struct buf b;
	bool ok = ns > 0;

	buf_init(&b, LIMITS_STEPS_MAX * (LIMITS_KEY_MAX + 128));
	for (size_t i = 0; i < ns && ok; i++) {
		char key[LIMITS_KEY_MAX + 16], *cmd;
		const char *argv[] = {"ZREM", key, id};
		size_t len[] = {4, 0, strlen(id)};
		int n;

		len[1] = limits_redis_key(&steps[i], key, sizeof(key));
		if (len[1] == 0 ||
		    (n = redisFormatCommandArgv(&cmd, 3, argv, len)) < 0) {
			ok = false;
			break;
		}
		ok = buf_append(&b, cmd, (size_t)n) == 0;
		redisFreeCommand(cmd);
	}
	if (ok) {
		*outlen = buf_avail(&b);
		*out = xmalloc(*outlen);
		memcpy(*out, buf_peek(&b), *outlen);
	}
	buf_fini(&b);
	return ok;
}

/* Wait for the n replies of commands nobody needs an answer to. */
static void
lr_ignore(struct limits_redis *lr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lr_push(lr, COOKIE_IGNORE, 0, NULL, 0);
}

bool
limits_redis_lease(struct limits_redis *lr, const struct limits_step *steps,
    size_t ns, uint64_t ttl_ms, char *id, uint64_t cookie)
{
	char ttl[24];
	const char *args[] = {id, ttl};
	char *undo;
	size_t undolen;

	snprintf(id, LIMITS_REDIS_ID_MAX, "%016" PRIx64 ":%" PRIu64, lr->idpre,
	    ++lr->idseq);
	snprintf(ttl, sizeof(ttl), "%" PRIu64, ttl_ms);
	if (lr->state != LR_UP ||
	    !lr_unlease_cmds(steps, ns, id, &undo, &undolen))
		return false;
	if (!lr_eval(lr, 1, steps, ns, args, 2, lease_words)) {
		free(undo);
		return false;
	}
	lr_push(lr, cookie, ns, undo, undolen);
	stream_flush(&lr->st);
	return true;
}

void
limits_redis_unlease(struct limits_redis *lr, const struct limits_step *steps,
    size_t ns, const char *id)
{
	char *cmds;
	size_t len;

	if (lr->state != LR_UP || !lr_unlease_cmds(steps, ns, id, &cmds, &len))
		return;
	if (stream_write(&lr->st, cmds, len) == 0) {
		lr_ignore(lr, ns);
		stream_flush(&lr->st);
	}
	free(cmds);
}

void
limits_redis_stop(struct limits_redis *lr)
{
	if (lr->stopping)
		return;
	lr->stopping = true;
	uring_cancel(lr->l, &lr->retry);
	if (lr->open && lr->state != LR_CLOSING) {
		lr->state = LR_CLOSING;
		stream_close(&lr->st, "shutdown", STREAM_CLOSE_ABORT);
		lr_flush_waits(lr);
	}
	/* when nothing was busy: answer now, from the loop's next turn
	 * being the caller's (limits_redis.h: stopped may come at once) */
	lr_stopped(lr);
}

void
limits_redis_free(struct limits_redis *lr)
{
	if (lr == NULL)
		return;
	if (lr->rd != NULL)
		redisReaderFree(lr->rd);
	while (lr->qlen > 0)
		free(lr_pop(lr).undo);
	free(lr->q);
	free(lr);
}

bool
limits_redis_up(const struct limits_redis *lr)
{
	return lr->state == LR_UP;
}
