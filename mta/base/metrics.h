/* SPDX-License-Identifier: ISC */
/*
 * metrics.h - the relay's counters, gauges and histograms: where each
 * thread counts what it does, and what a scrape reads.
 *
 * DESIGN. Each thread that counts owns one block (struct metrics_block,
 * cache-line aligned, made at its first count and kept until exit so
 * that counters never go back when a thread ends; still reachable from
 * the block list then, so not a leak). Only the owning
 * thread writes its block, with relaxed atomic load + store (a plain add
 * on x86: no lock prefix, no shared cache line on the hot path). A
 * scrape (the metrics thread, mta/metrics/) walks every block and sums
 * with relaxed loads: a sum may be a few counts behind, never torn.
 *
 * Who counts what (the thread that does it):
 *   receive threads   connections per listener (current, total, refused),
 *                     transactions, messages accepted/refused, bytes
 *                     received, TLS handshakes in, AUTH results, DKIM
 *   queue committer   commit batch size and commit (fsync) latency
 *   scheduler         deliveries by outcome, delivery latency; it also
 *                     publishes the queue and per-destination snapshot
 *                     (metrics_sched_publish), once a second while
 *                     metrics are on
 *   delivery workers  TLS handshakes out
 *   DNS thread        queries, cache hits, failures
 *
 * Labels with a fixed set of values are enum indexes here; listener
 * names are set once at startup (metrics_listener_name). The per-
 * destination view is not a counter block: the scheduler owns it and
 * swaps in a bounded snapshot (top N destinations by queued recipients,
 * plus the rest summed as "other") that the scrape reads under a mutex
 * held only for the pointer swap.
 *
 * Thread: metrics_inc()/metrics_add()/metrics_observe() and friends on
 * the counting thread; the read side (metrics_sum, metrics_sched_get)
 * on any thread.
 */
#ifndef MTA_BASE_METRICS_H
#define MTA_BASE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Counters without labels, or with a small fixed label set. */
enum metrics_counter {
	METRICS_MSG_ACCEPTED,    /* 250 after the commit */
	METRICS_MSG_REFUSED_4XX, /* a whole message refused, 4xx */
	METRICS_MSG_REFUSED_5XX, /* ... 5xx */
	METRICS_TX_ACCEPTED,     /* transactions by result */
	METRICS_TX_REFUSED,
	METRICS_TX_ABORTED, /* RSET, QUIT, close or error after MAIL */
	METRICS_RECEIVED_BYTES,
	METRICS_DELIVERED, /* recipients, once on disk */
	METRICS_DEFERRED,
	METRICS_FAILED, /* permanent failures and expiries */
	METRICS_DNS_QUERIES,
	METRICS_DNS_CACHE_HITS,
	METRICS_DNS_FAILURES, /* requests answered without an address */
	METRICS_AUTH_SUCCESS,
	METRICS_AUTH_FAILURE,
	METRICS_DKIM_SIGNED_RSA,
	METRICS_DKIM_SIGNED_ED25519,
	METRICS_DKIM_UNSIGNED_FROM,  /* no usable From domain */
	METRICS_DKIM_UNSIGNED_ERROR, /* signing failed */
	METRICS_COUNTERS
};

/* mta_connections_refused_total{reason} */
enum metrics_refusal {
	METRICS_REFUSED_MAX_CONNECTIONS,
	METRICS_REFUSED_PER_IP,
	METRICS_REFUSED_NO_FD, /* EMFILE/ENFILE: told 421 from the backlog */
	METRICS_REFUSED_LIMIT, /* a [limit] on connections */
	METRICS_REFUSALS
};

/* mta_tls_handshakes_total{version}: TLSv1.3, TLSv1.2, other */
#define METRICS_TLS_VERSIONS 3

enum metrics_hist {
	METRICS_H_COMMIT_BATCH,     /* requests per commit */
	METRICS_H_COMMIT_SECONDS,   /* observed in microseconds */
	METRICS_H_DELIVERY_SECONDS, /* observed in milliseconds */
	METRICS_HISTS
};

#define METRICS_BUCKETS_MAX 20 /* finite buckets of a histogram */
#define METRICS_LISTENERS \
	16 /* listeners counted apart; more share the
				  last slot */

/* A histogram's fixed shape; METRICS_HISTS rows in metrics.c. */
struct metrics_hist_def {
	const char *name; /* "mta_commit_seconds" */
	const char *help;
	double scale; /* observed units per exposed unit (1e6 for us) */
	size_t nbounds;
	const uint64_t *bounds; /* upper bounds, observed units, ascending */
};

const struct metrics_hist_def *metrics_hist_def(enum metrics_hist h);

/* Deferral reason classes: mta_destination_deferrals_total{reason}. */
enum metrics_reason {
	METRICS_R_DNS,
	METRICS_R_CONNECT,
	METRICS_R_TLS,
	METRICS_R_4XX,
	METRICS_R_5XX,
	METRICS_R_TIMEOUT,
	METRICS_R_POLICY,
	METRICS_R_SUSPENDED, /* the destination was resting */
	METRICS_R_OTHER,
	METRICS_REASONS
};

/* "dns", "connect", ... Static. */
const char *metrics_reason_name(enum metrics_reason r);

/*
 * metrics_reason_of - the class of a deferral from what the delivery
 * worker wrote for the recipient: dsn ("4.4.3"), reply (a remote reply
 * "451 4.3.0 ..." or our own text), suspended (the destination was
 * resting: no attempt). Pure, any thread.
 */
enum metrics_reason metrics_reason_of(
    const char *dsn, const char *reply, bool suspended);

/* ---- counting (the calling thread's block) ---- */

void metrics_add(enum metrics_counter c, uint64_t n);
static inline void
metrics_inc(enum metrics_counter c)
{
	metrics_add(c, 1);
}
/* A connection accepted on listener idx (+1 total, +1 current). */
void metrics_conn_open(unsigned listener);
/* One closed (-1 current; may run on another thread than the open). */
void metrics_conn_close(unsigned listener);
/* n clients refused at accept on listener, for why. */
void metrics_conn_refused(
    unsigned listener, enum metrics_refusal why, uint64_t n);
/* A TLS handshake done: out = we were the client; version as OpenSSL
 * names it ("TLSv1.3"); verified: the peer's certificate checked. */
void metrics_tls(bool out, const char *version, bool verified);
/* Count value (in the histogram's observed units) into h. */
void metrics_observe(enum metrics_hist h, uint64_t value);

/* ---- listener names (main thread, before the threads count) ---- */

/* Name listener idx ("127.0.0.1:587", "local"); copied. */
void metrics_listener_name(unsigned idx, const char *name);
/* Listeners named so far (the scrape shows these). */
unsigned metrics_listeners(void);
const char *metrics_listener_get(unsigned idx);

/* ---- on or off ---- */

/* Set once at startup when [metrics] listen is set: the scheduler then
 * publishes its snapshot. Counting goes on either way (it is cheap). */
void metrics_set_enabled(bool on, unsigned destinations);
bool metrics_enabled(void);
/* The destinations shown by name ([metrics] destinations). */
unsigned metrics_destinations(void);

/* ---- the read side: sums over every block ---- */

struct metrics_sums {
	uint64_t c[METRICS_COUNTERS];
	int64_t conn_current[METRICS_LISTENERS];
	uint64_t conn_total[METRICS_LISTENERS];
	uint64_t conn_refused[METRICS_LISTENERS][METRICS_REFUSALS];
	uint64_t tls[2][METRICS_TLS_VERSIONS][2]; /* [out][version][verified] */
	struct {
		uint64_t b[METRICS_BUCKETS_MAX + 1]; /* per bucket, +Inf last */
		uint64_t count, sum;                 /* sum: observed units */
	} h[METRICS_HISTS];
};

/* Sum every block into *out (zeroed first). Any thread. */
void metrics_sum(struct metrics_sums *out);
/* "TLSv1.3", "TLSv1.2", "other". */
const char *metrics_tls_version_name(unsigned v);

/* ---- the scheduler's snapshot ---- */

struct metrics_dest {
	char domain[256];
	uint64_t queued;      /* pending recipients */
	uint64_t connections; /* jobs at workers */
	uint64_t suspended;   /* 1 resting after a failure; other: how many */
	uint64_t delivered, deferred, failed; /* recipients, since start */
	uint64_t reasons[METRICS_REASONS];    /* deferrals by class */
};

enum metrics_qstate {
	METRICS_Q_ACTIVE,   /* a delivery is under way */
	METRICS_Q_QUEUED,   /* not tried yet */
	METRICS_Q_DEFERRED, /* tried, waiting for its retry */
	METRICS_Q_HELD,     /* held by the operator */
	METRICS_QSTATES
};
const char *metrics_qstate_name(enum metrics_qstate s);

struct metrics_sched {
	atomic_uint refs;
	uint64_t made_ms;                /* wall ms */
	uint64_t msgs[METRICS_QSTATES];  /* messages by state */
	uint64_t rcpts[METRICS_QSTATES]; /* pending recipients by state */
	uint64_t oldest_ms;              /* wall ms received; 0: empty */
	size_t ndests;                   /* named, <= N */
	uint64_t nother;                 /* destinations summed in other */
	struct metrics_dest other;       /* the rest, summed */
	struct metrics_dest dests[];     /* by queued, descending */
};

/* A zeroed snapshot with room for n destinations, one reference. */
struct metrics_sched *metrics_sched_new(size_t n);
/* Publish snap (taken); the one it replaces is released. Scheduler. */
void metrics_sched_publish(struct metrics_sched *snap);
/* The latest snapshot with a reference of the caller's, or NULL. */
struct metrics_sched *metrics_sched_get(void);
/* Drop a reference (NULL: nothing). */
void metrics_sched_put(struct metrics_sched *snap);

#endif
