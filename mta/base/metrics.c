/* SPDX-License-Identifier: ISC */
/*
 * metrics.c - the per-thread counter blocks, their sums, the histogram
 * shapes and the scheduler's snapshot (see metrics.h for who owns what).
 *
 * A block is made at a thread's first count and linked into a global
 * list under a mutex (once per thread); the list only grows, and blocks
 * live as long as the process, so a scrape never sees one freed.
 * Writes are by the owner only: load, add, store, all relaxed, which on
 * x86-64 is an ordinary add to a line no other thread writes.
 */
#include "base/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/compat.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"

struct metrics_block {
	_Atomic uint64_t c[METRICS_COUNTERS];
	_Atomic int64_t conn_current[METRICS_LISTENERS];
	_Atomic uint64_t conn_total[METRICS_LISTENERS];
	_Atomic uint64_t conn_refused[METRICS_LISTENERS][METRICS_REFUSALS];
	_Atomic uint64_t tls[2][METRICS_TLS_VERSIONS][2];
	struct {
		_Atomic uint64_t b[METRICS_BUCKETS_MAX + 1];
		_Atomic uint64_t count, sum;
	} h[METRICS_HISTS];
	struct metrics_block *next; /* blocks_lock; never changes once linked */
} __attribute__((aligned(64)));

static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_block *_Atomic blocks; /* head; pushes under lock */
static _Thread_local struct metrics_block *mine;

static atomic_bool enabled;
static atomic_uint ndestinations = 50;

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char names[METRICS_LISTENERS][64]; /* names_lock */
static atomic_uint nnames;

static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_sched *snap; /* snap_lock: the pointer only */

/* Histogram shapes. Commit latency in microseconds, delivery latency in
 * milliseconds: integers, so a block holds no floating point. */
static const uint64_t batch_bounds[] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const uint64_t commit_bounds[] = {250, 500, 1000, 2500, 5000, 10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
static const uint64_t delivery_bounds[] = {10, 50, 100, 250, 500, 1000, 2500,
    5000, 10000, 30000, 60000, 300000, 900000, 3600000, 14400000, 86400000};

static const struct metrics_hist_def hist_defs[METRICS_HISTS] = {
    [METRICS_H_COMMIT_BATCH] = {"mta_commit_batch_size",
        "Requests committed per queue transaction (group commit).", 1,
        MTA_ARRAY_LEN(batch_bounds), batch_bounds},
    [METRICS_H_COMMIT_SECONDS] = {"mta_commit_seconds",
        "Time of one queue commit, fsync included.", 1e6,
        MTA_ARRAY_LEN(commit_bounds), commit_bounds},
    [METRICS_H_DELIVERY_SECONDS] = {"mta_delivery_latency_seconds",
        "From acceptance to the remote 250, per recipient delivered.", 1e3,
        MTA_ARRAY_LEN(delivery_bounds), delivery_bounds},
};

_Static_assert(
    MTA_ARRAY_LEN(delivery_bounds) <= METRICS_BUCKETS_MAX, "too many buckets");

const struct metrics_hist_def *
metrics_hist_def(enum metrics_hist h)
{
	return &hist_defs[h];
}

static struct metrics_block *
block(void)
{
	struct metrics_block *b = mine;

	if (b != NULL)
		return b;
	/* aligned: no other thread's block shares a cache line */
	if (posix_memalign((void **)&b, 64, sizeof(*b)) != 0)
		fatalx("metrics: out of memory");
	memset(b, 0, sizeof(*b));
	pthread_mutex_lock(&blocks_lock);
	b->next = atomic_load_explicit(&blocks, memory_order_relaxed);
	/* release: a reader that sees b sees it zeroed and linked */
	atomic_store_explicit(&blocks, b, memory_order_release);
	pthread_mutex_unlock(&blocks_lock);
	mine = b;
	return b;
}

/* The owner's add: no read-modify-write instruction is needed, as no
 * other thread writes this word. */
static inline void
bump(_Atomic uint64_t *p, uint64_t n)
{
	atomic_store_explicit(p,
	    atomic_load_explicit(p, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

void
metrics_add(enum metrics_counter c, uint64_t n)
{
	bump(&block()->c[c], n);
}

static unsigned
lslot(unsigned listener)
{
	return listener < METRICS_LISTENERS ? listener : METRICS_LISTENERS - 1;
}

void
metrics_conn_open(unsigned listener)
{
	struct metrics_block *b = block();
	unsigned i = lslot(listener);

	bump(&b->conn_total[i], 1);
	atomic_store_explicit(&b->conn_current[i],
	    atomic_load_explicit(&b->conn_current[i], memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

void
metrics_conn_close(unsigned listener)
{
	struct metrics_block *b = block();
	unsigned i = lslot(listener);

	atomic_store_explicit(&b->conn_current[i],
	    atomic_load_explicit(&b->conn_current[i], memory_order_relaxed) - 1,
	    memory_order_relaxed);
}

void
metrics_conn_refused(unsigned listener, enum metrics_refusal why, uint64_t n)
{
	if (n > 0)
		bump(&block()->conn_refused[lslot(listener)][why], n);
}

static const char *const tls_versions[METRICS_TLS_VERSIONS] = {
    "TLSv1.3", "TLSv1.2", "other"};

const char *
metrics_tls_version_name(unsigned v)
{
	return v < METRICS_TLS_VERSIONS ? tls_versions[v] : "other";
}

void
metrics_tls(bool out, const char *version, bool verified)
{
	unsigned v = METRICS_TLS_VERSIONS - 1;

	for (unsigned i = 0; version != NULL && i + 1 < METRICS_TLS_VERSIONS;
	     i++)
		if (strcmp(version, tls_versions[i]) == 0)
			v = i;
	bump(&block()->tls[out][v][verified], 1);
}

void
metrics_observe(enum metrics_hist h, uint64_t value)
{
	const struct metrics_hist_def *d = &hist_defs[h];
	struct metrics_block *b = block();
	size_t i = 0;

	while (i < d->nbounds && value > d->bounds[i])
		i++;
	bump(&b->h[h].b[i], 1);
	bump(&b->h[h].count, 1);
	bump(&b->h[h].sum, value);
}

/* ---- names and switches ---- */

void
metrics_listener_name(unsigned idx, const char *name)
{
	if (idx >= METRICS_LISTENERS)
		return;
	pthread_mutex_lock(&names_lock);
	snprintf(names[idx], sizeof(names[idx]), "%s", name);
	if (idx >= atomic_load(&nnames))
		atomic_store(&nnames, idx + 1);
	pthread_mutex_unlock(&names_lock);
}

unsigned
metrics_listeners(void)
{
	return atomic_load(&nnames);
}

const char *
metrics_listener_get(unsigned idx)
{
	/* written before the threads start, read-only after */
	return idx < METRICS_LISTENERS ? names[idx] : "";
}

void
metrics_set_enabled(bool on, unsigned destinations)
{
	atomic_store(&ndestinations, destinations);
	atomic_store(&enabled, on);
}

bool
metrics_enabled(void)
{
	return atomic_load_explicit(&enabled, memory_order_relaxed);
}

unsigned
metrics_destinations(void)
{
	return atomic_load(&ndestinations);
}

/* ---- sums ---- */

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void
sum_block(const struct metrics_block *b, struct metrics_sums *o)
{
	for (size_t i = 0; i < METRICS_COUNTERS; i++)
		o->c[i] += LD(b->c[i]);
	for (size_t l = 0; l < METRICS_LISTENERS; l++) {
		o->conn_current[l] += LD(b->conn_current[l]);
		o->conn_total[l] += LD(b->conn_total[l]);
		for (size_t r = 0; r < METRICS_REFUSALS; r++)
			o->conn_refused[l][r] += LD(b->conn_refused[l][r]);
	}
	for (size_t d = 0; d < 2; d++)
		for (size_t v = 0; v < METRICS_TLS_VERSIONS; v++)
			for (size_t k = 0; k < 2; k++)
				o->tls[d][v][k] += LD(b->tls[d][v][k]);
	for (size_t h = 0; h < METRICS_HISTS; h++) {
		for (size_t i = 0; i <= METRICS_BUCKETS_MAX; i++)
			o->h[h].b[i] += LD(b->h[h].b[i]);
		o->h[h].count += LD(b->h[h].count);
		o->h[h].sum += LD(b->h[h].sum);
	}
}

void
metrics_sum(struct metrics_sums *out)
{
	const struct metrics_block *b;

	memset(out, 0, sizeof(*out));
	b = atomic_load_explicit(&blocks, memory_order_acquire);
	for (; b != NULL; b = b->next)
		sum_block(b, out);
}

/* ---- reasons ---- */

static const char *const reason_names[METRICS_REASONS] = {
    [METRICS_R_DNS] = "dns",
    [METRICS_R_CONNECT] = "connect",
    [METRICS_R_TLS] = "tls",
    [METRICS_R_4XX] = "4xx",
    [METRICS_R_5XX] = "5xx",
    [METRICS_R_TIMEOUT] = "timeout",
    [METRICS_R_POLICY] = "policy",
    [METRICS_R_SUSPENDED] = "suspended",
    [METRICS_R_OTHER] = "other",
};

const char *
metrics_reason_name(enum metrics_reason r)
{
	return r < METRICS_REASONS ? reason_names[r] : "other";
}

static bool
has(const char *s, const char *needle)
{
	return strcasestr(s, needle) != NULL;
}

enum metrics_reason
metrics_reason_of(const char *dsn, const char *reply, bool suspended)
{
	if (suspended)
		return METRICS_R_SUSPENDED;
	if (reply == NULL)
		reply = "";
	/* a remote reply: three digits and a space or a dash */
	if ((reply[0] == '4' || reply[0] == '5') && reply[1] >= '0' &&
	    reply[1] <= '9' && reply[2] >= '0' && reply[2] <= '9' &&
	    (reply[3] == ' ' || reply[3] == '-' || reply[3] == '\0'))
		return reply[0] == '4' ? METRICS_R_4XX : METRICS_R_5XX;
	if (has(reply, "timed out") || has(reply, "timeout"))
		return METRICS_R_TIMEOUT;
	if (has(reply, "tls") || has(reply, "certificate") || has(reply, "ssl"))
		return METRICS_R_TLS;
	if (dsn == NULL)
		dsn = "";
	if (strcmp(dsn, "4.4.3") == 0 || strcmp(dsn, "5.1.2") == 0 ||
	    strcmp(dsn, "5.1.10") == 0 || has(reply, "dns") ||
	    has(reply, "mx lookup"))
		return METRICS_R_DNS;
	if (has(reply, "policy") || has(reply, "not allowed") ||
	    has(reply, "refused by"))
		return METRICS_R_POLICY;
	if (has(reply, "connect") || has(reply, "refused") ||
	    has(reply, "unreachable") || has(reply, "reach"))
		return METRICS_R_CONNECT;
	return METRICS_R_OTHER;
}

/* ---- the scheduler's snapshot ---- */

static const char *const qstate_names[METRICS_QSTATES] = {
    [METRICS_Q_ACTIVE] = "active",
    [METRICS_Q_QUEUED] = "queued",
    [METRICS_Q_DEFERRED] = "deferred",
    [METRICS_Q_HELD] = "held",
};

const char *
metrics_qstate_name(enum metrics_qstate s)
{
	return qstate_names[s];
}

struct metrics_sched *
metrics_sched_new(size_t n)
{
	struct metrics_sched *s =
	    xcalloc(1, sizeof(*s) + n * sizeof(s->dests[0]));

	atomic_init(&s->refs, 1);
	str_copy(s->other.domain, sizeof(s->other.domain), "other");
	return s;
}

void
metrics_sched_put(struct metrics_sched *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
		free(s);
}

void
metrics_sched_publish(struct metrics_sched *s)
{
	struct metrics_sched *old;

	pthread_mutex_lock(&snap_lock);
	old = snap;
	snap = s;
	pthread_mutex_unlock(&snap_lock);
	metrics_sched_put(old);
}

struct metrics_sched *
metrics_sched_get(void)
{
	struct metrics_sched *s;

	pthread_mutex_lock(&snap_lock);
	if ((s = snap) != NULL)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&snap_lock);
	return s;
}
