/* SPDX-License-Identifier: ISC */
/*
 * schedule.h - the delivery schedule: what is due, when, and for whom.
 *
 * DESIGN. The scheduler owns, in memory, every message that still has
 * pending recipients: rebuilt from the queue at start (sched_msg_add for
 * each recovered envelope), then fed with each newly committed message.
 * A message's recipients are grouped by destination (their domain,
 * lowercased); one (message, destination) pair is a unit, and a due unit
 * becomes one job: one SMTP transaction carrying every due recipient of
 * that message for that destination.
 *
 * Units wait in a min-heap ordered by due time. A due unit whose
 * destination is at its concurrency window waits in that destination's
 * FIFO instead, and is released when one of the destination's jobs ends.
 * The window starts at max_per_dest; a connection-level failure drops it
 * to 1 and each success widens it by one again (slow start, after
 * Postfix's qmgr). A failure also rests the destination for the first
 * retry interval: units that come due meanwhile are deferred at once with
 * "delivery temporarily suspended" rather than tried (Postfix does the
 * same), so a dead host costs one connection attempt, not one per
 * message. A global cap bounds jobs in flight.
 *
 * Results decide each recipient's fate here and nowhere else: delivered
 * and failed recipients are done; deferred ones get the next retry time
 * (the [queue] retry list, last entry repeating, with +-10% jitter) or,
 * past max_age, fail as expired (4.4.7).
 *
 * Commit, then apply. A job that comes back is first only decided
 * (sched_job_decide): the decisions are written into the job and the
 * schedule does not change; the job keeps a slot ("deciding": its
 * connection slot becomes a commit slot, so the destination's next job
 * can use the connection while the result is committed). The
 * caller commits the decisions to the queue, then either applies them
 * (sched_job_apply: recipients, retry times, removal, the destination's
 * window and rest, slots) or, when the commit failed, reverts
 * (sched_job_revert: slots only; the recipients stay as they are on
 * disk). So the schedule never runs ahead of the disk, and a job's slot
 * stays taken until its result is on disk, which bounds the deliveries
 * a crash can repeat: a destination has at most `window` jobs at workers
 * and takes none while 4 * window results are being committed, so fewer
 * than 5 * window. Operator actions are
 * likewise called only once their commit has returned.
 *
 * This file does no I/O and takes time as an argument, so it is unit
 * tested with a fake clock. Thread: one owner (the scheduler thread).
 */
#ifndef MTA_SCHEDULE_H
#define MTA_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/chan.h"
#include "base/compat.h"
#include "base/metrics.h"

enum sched_rcpt_state {
	SCHED_RCPT_PENDING,
	SCHED_RCPT_DELIVERED,
	SCHED_RCPT_FAILED,  /* permanent failure (5xx, null MX, ...) */
	SCHED_RCPT_EXPIRED, /* max_age reached while deferred */
};

/* What a worker reports for one recipient. */
enum sched_outcome {
	SCHED_OUTCOME_OK,
	SCHED_OUTCOME_TEMPFAIL,
	SCHED_OUTCOME_PERMFAIL,
};

struct sched_cfg {
	const uint64_t *retry; /* ms; the last repeats */
	size_t nretry;
	uint64_t max_age;            /* ms since the message was received */
	unsigned max_jobs;           /* jobs in flight, all destinations */
	unsigned max_per_dest;       /* jobs in flight per destination */
	uint32_t (*rand)(void *arg); /* jitter source; NULL = random() */
	void *rand_arg;
	/* delivery shaping (deliver/dest_shape.h; NULL: none): 0 when a job of
	 * domain may start at now_ms (and is counted), else ms until the
	 * unit is due again; it waits in memory, its recipients as they are */
	uint64_t (*admit)(void *arg, const char *domain, uint64_t now_ms);
	void *admit_arg;
};

/* A recipient as recovered from the queue or received. */
struct sched_rcpt_in {
	const char *addr;  /* local@domain, copied */
	uint32_t idx;      /* position in the queue record */
	uint16_t attempts; /* attempts so far */
	uint64_t next_ms;  /* wall ms of the next attempt; 0 = now */
};

struct sched_job_rcpt {
	uint32_t idx;
	char *addr; /* owned by the job */
	/* set by the worker: */
	enum sched_outcome outcome;
	char dsn[16];    /* enhanced status, e.g. "5.1.1" */
	char reply[512]; /* remote reply or local reason */
	bool peer_dsn;   /* delivered to a host that offers DSN, which was
			    handed NOTIFY (no "relayed" notice from us) */
	/* DSN (RFC 3461), from sched_msg_dsn(): */
	uint8_t notify; /* QUEUE_NOTIFY_* bits; 0 = not given */
	char *orcpt;    /* ORCPT as given, or NULL; owned by the job */
	/* set by sched_job_decide(): */
	enum sched_rcpt_state state;
	uint16_t attempts;
	uint64_t next_ms; /* when deferred */
};

/* One transaction's worth of work, handed to a delivery worker and
 * handed back with the outcomes filled in. */
struct sched_job {
	struct chan_msg msg;  /* first */
	uint64_t id;          /* message id */
	char *from;           /* envelope sender, "" for <> */
	char *domain;         /* destination, lowercase */
	uint64_t received_ms; /* wall ms */
	size_t nrcpts;
	struct sched_job_rcpt *rcpts;
	char *envid; /* DSN ENVID as given, or NULL; owned by the job */
	uint8_t ret; /* DSN RET: QUEUE_RET_* */
	/* set by the worker: */
	char relay[300];        /* "mx.example[192.0.2.1]:25", or "" */
	char tls[128];          /* log fields: dconn_report.tls, or "" */
	char site[256];         /* its MX host set (dest_site.h), or "" */
	const char *tls_policy; /* static: the relay's TLS policy source
				   (tls_policy_source_name), or NULL */
	bool dest_failed;       /* connection-level failure: slow start */
	/* set by sched_job_next() instead: the destination is resting after
	 * a failure, so the job is already decided (every recipient
	 * TEMPFAIL, "delivery temporarily suspended: ..."); hand it straight
	 * to sched_job_decide() without a worker. */
	bool suspended;
	/* set by sched_job_decide(), until sched_job_apply/revert(): its
	 * decisions are being committed and it still holds its slots */
	bool deciding;
};

struct sched;

struct sched *sched_new(const struct sched_cfg *cfg);
/* Frees every message; jobs still out must have come back first. */
void sched_free(struct sched *s);

/* Add a message with its pending recipients (recovery or a new commit).
 * Strings are copied. Adding an id twice is ignored (returns -EEXIST). */
int sched_msg_add(struct sched *s, uint64_t id, const char *from,
    uint64_t received_ms, const struct sched_rcpt_in *rcpts, size_t n,
    uint64_t now_ms) MTA_MUST_CHECK;

/* The DSN parameters (RFC 3461) of message id, just added: envid (NULL
 * or "" = none) and ret, and notify[i], orcpts[i] (NULL or "" = none)
 * for the i-th recipient given to sched_msg_add() (notify and orcpts may
 * be NULL: none). Copied into every job of the message. 0 or -ENOENT. */
int sched_msg_dsn(struct sched *s, uint64_t id, const char *envid, uint8_t ret,
    const uint8_t *notify, const char *const *orcpts, size_t n);

/* The next job due at now_ms that the caps allow, or NULL. The job is
 * the caller's; the schedule counts it in flight until sched_job_apply()
 * or sched_job_revert(). */
struct sched_job *sched_job_next(struct sched *s, uint64_t now_ms);

/* A job came back with its outcomes: decide each recipient's state,
 * attempts and next_ms (written into job->rcpts[]) from the schedule as
 * it is, and change nothing else: the job is "deciding" and keeps its
 * slots until sched_job_apply() or sched_job_revert(). The caller owns
 * the job throughout. */
void sched_job_decide(struct sched *s, struct sched_job *job, uint64_t now_ms);

/* The decisions of a deciding job are on disk: apply them (recipients'
 * attempts and retry times, delivered and failed ones done, the
 * destination's window and rest after a connection-level failure or a
 * success) and release its slots. Returns true when the message has no
 * pending recipient left and so left the schedule. The caller still owns
 * the job (log it, then sched_job_free()). */
bool sched_job_apply(struct sched *s, struct sched_job *job, uint64_t now_ms);

/* The decisions of a deciding job could not be committed: release its
 * slots and leave its recipients as they are on disk (pending, with their
 * old attempts and retry times: due), but make the unit wait until
 * now_ms plus the first retry interval (at most 5 minutes) before it is
 * due again, so a failing disk does not repeat deliveries in a loop. A
 * message deleted meanwhile (sched_msg_forget) leaves the schedule. The
 * caller still owns the job. */
void sched_job_revert(struct sched *s, struct sched_job *job, uint64_t now_ms);

void sched_job_free(struct sched_job *job);

/* Milliseconds until the next unit is due (0 = now), or -1 when nothing
 * is waiting on time. */
int64_t sched_timeout(const struct sched *s, uint64_t now_ms);

/* Operator actions (the control socket), each called once its change is
 * on disk: make every pending recipient of id due now (it also ends the
 * rest of the message's destinations and a wait after a failed commit;
 * a held message is left as it is, as the queue leaves it);
 * hold (never dispatch) or release; forget the message. Return 0 or
 * -ENOENT. A held or forgotten message with a job in flight takes effect
 * when the job returns. */
int sched_msg_retry(struct sched *s, uint64_t id, uint64_t now_ms);
int sched_msg_hold(struct sched *s, uint64_t id, bool hold, uint64_t now_ms);
int sched_msg_forget(struct sched *s, uint64_t id);

/* Whether a job of the message is out at a worker or deciding: its
 * recipients may change state when it comes back. */
bool sched_msg_busy(struct sched *s, uint64_t id);

/* The ids of the messages in the schedule (not forgotten), at most max,
 * into out; returns how many (a retry of every message). */
size_t sched_msg_ids(const struct sched *s, uint64_t *out, size_t max);

/* Counters for logs and tests. */
struct sched_stats {
	size_t msgs;     /* messages with pending recipients */
	size_t units;    /* (message, destination) units */
	size_t inflight; /* jobs out, deciding ones included */
	size_t deciding; /* jobs whose decisions are being committed */
};
void sched_stats_get(const struct sched *s, struct sched_stats *st);
/* What the metrics show of one destination (sched_dest_each); the
 * pointers are borrowed for the callback. */
struct sched_dest_view {
	const char *domain;
	uint64_t queued;   /* pending recipients */
	unsigned inflight; /* jobs at workers */
	bool resting;      /* suspended after a failure */
	/* recipients since start: delivered, deferred, failed (expired
	 * included), and deferrals by reason class */
	const uint64_t *outcomes;
	const uint64_t *reasons; /* [METRICS_REASONS] */
};
typedef void sched_dest_fn(void *arg, const struct sched_dest_view *v);

/* Call fn for every destination the schedule has known (O(recipients +
 * destinations): a walk, for a metrics snapshot once a second). */
void sched_dest_each(
    struct sched *s, uint64_t now_ms, sched_dest_fn *fn, void *arg);

/* Messages and pending recipients by state (enum metrics_qstate: held;
 * active: a job is out; deferred: tried before; queued: not yet), and
 * the wall ms the oldest message was received (0: none). */
struct sched_queue_view {
	uint64_t msgs[METRICS_QSTATES], rcpts[METRICS_QSTATES];
	uint64_t oldest_ms;
};
void sched_queue_view(const struct sched *s, struct sched_queue_view *out);

/* An operator lifted domain's suspension: the units cfg.admit held back
 * are due at now_ms (and its rest after a failure ends). 0 or -ENOENT. */
int sched_dest_resume(struct sched *s, const char *domain, uint64_t now_ms);

/* Jobs in flight and the current window for one destination. */
void sched_dest_get(const struct sched *s, const char *domain,
    unsigned *inflight, unsigned *window);

#endif
