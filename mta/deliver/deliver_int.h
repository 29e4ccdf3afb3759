/* SPDX-License-Identifier: ISC */
/*
 * deliver_int.h - private to deliver*.c: the scheduler thread, the
 * workers, and the per-host connection caps they share.
 */
#ifndef MTA_DELIVER_INT_H
#define MTA_DELIVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/chan.h"
#include "deliver/deliver.h"
#include "deliver/schedule.h"

/* chan message types of this module. A struct sched_job travels as
 * DELIVER_MSG_JOB to a worker and comes back as DELIVER_MSG_DONE. */
enum deliver_msg_type {
	DELIVER_MSG_JOB = 0x5301,
	DELIVER_MSG_DONE,
	DELIVER_MSG_STOP, /* a bare struct chan_msg: stop the thread */
	/* operator control (control.c -> scheduler -> control.c) */
	DELIVER_MSG_CTL = 0x5340, /* struct deliver_ctl, to the scheduler */
	DELIVER_MSG_CTL_DONE,     /* the same struct, back on ->reply */
	DELIVER_MSG_CONFIG,       /* struct deliver_config, to the scheduler */
};

/*
 * An operator action from the control socket (control.c), carried out by
 * the scheduler thread, the owner of the schedule: hold, release and
 * delete are committed to the queue (QUEUE_REQ_FLAGS, QUEUE_REQ_DELETE)
 * before the request comes back, so "ok" means "on disk". control.c is
 * the only file outside deliver*.c that uses this header, for this
 * struct and deliver_ctl_submit().
 */
enum deliver_ctl_op {
	DELIVER_CTL_DELETE,
	DELIVER_CTL_RETRY,
	DELIVER_CTL_RETRY_ALL, /* no ids */
	DELIVER_CTL_HOLD,
	DELIVER_CTL_RELEASE,
};

struct deliver_ctl {
	struct chan_msg msg; /* first: DELIVER_MSG_CTL */
	struct chan *reply;  /* borrowed: where it comes back */
	enum deliver_ctl_op op;
	uint64_t *ids; /* owned by the sender */
	size_t n;
	int *status;  /* n entries, out: 0, -ENOENT, -EIO, ... */
	size_t count; /* out, RETRY_ALL: messages made due */
};

/* Hand an operator request to the scheduler; any thread. It comes back
 * on c->reply as DELIVER_MSG_CTL_DONE; the scheduler always answers,
 * as long as it runs (stop the sender before deliver_stop()). */
void deliver_ctl_submit(struct deliver *d, struct deliver_ctl *c);

/*
 * A reloaded configuration for the delivery stage (routes, timeouts,
 * connection caps). The scheduler is the safe point: it swaps d->cfg,
 * which workers read whenever they start a job or a connection, and
 * keeps the old snapshot until every job dispatched under it has come
 * back (jobs carry the snapshot's generation in msg.reqid) and a short
 * grace period has passed (a worker's ticker may be reading it).
 */
struct deliver_config {
	struct chan_msg msg; /* first: DELIVER_MSG_CONFIG */
	struct config *cfg;  /* owned: the scheduler frees it when retired */
};

/* Hand a new snapshot to the delivery stage (ownership of cfg passes);
 * main thread, after deliver_start(). */
void deliver_config_submit(struct deliver *d, struct config *cfg);

struct tls_ctx;
struct deliver_worker;

/* A configuration snapshot the delivery stage has used since a reload
 * (see struct deliver_config). Scheduler thread only, while it runs. */
struct deliver_snap {
	struct config *cfg; /* owned */
	uint64_t gen;       /* tag of the jobs dispatched under it */
	uint64_t jobs;      /* of those, not yet back */
	bool current;
	uint64_t retired_ms; /* mono ms it stopped being current */
	struct deliver_snap *next;
};

struct deliver {
	/* The current snapshot. Atomic: the scheduler swaps it on reload
	 * (DELIVER_MSG_CONFIG) while workers read it; a plain read of the
	 * field is an atomic load. */
	const struct config *_Atomic cfg;
	struct queue *q;
	struct dns *dns;
	struct tls_ctx *tls; /* client context, system CA store */
	/* the scheduler thread */
	pthread_t sched_tid;
	bool sched_started;
	struct chan *sched_chan;
	/* the workers */
	struct deliver_worker **workers;
	unsigned nworkers;
	/* per-host connection counts, all workers */
	pthread_mutex_t hosts_lock;
	struct deliver_host *hosts; /* hosts_lock */
	atomic_uint conns;          /* outbound connections, all hosts */
	/* reloaded snapshots, newest first (the startup one is borrowed
	 * and not listed): the scheduler's while it runs, then
	 * deliver_stop() frees what is left, after the workers stopped */
	struct deliver_snap *snaps;
};

/* deliver_worker.c */
struct deliver_worker *deliver_worker_new(struct deliver *d, unsigned idx);
int deliver_worker_start(struct deliver_worker *w) MTA_MUST_CHECK;
/* Hand a job to the worker; any thread. */
void deliver_worker_send(struct deliver_worker *w, struct sched_job *job);
/* Stop (jobs still held are returned as deferred first) and free. */
void deliver_worker_stop(struct deliver_worker *w);

/* deliver_sched.c */
void *deliver_sched_main(void *arg);

/* deliver.c: the shared per-host cap (key: "ip:port"). */
bool deliver_host_acquire(struct deliver *d, const char *key);
void deliver_host_release(struct deliver *d, const char *key);

/* The scheduler thread's state (deliver_sched.c owns it; the helpers in
 * deliver_bounce.c and deliver_ctl.c run on the same thread). */
/* Ids of queued messages whose delay warning is queued (the envelope's
 * QUEUE_FLAG_WARNED): open addressing with linear probing, 0 = free slot
 * (ids are never 0). The schedule does not keep envelope flags, and the
 * check runs on every deferral, so it must not read the queue. */
struct idset {
	uint64_t *slot;
	size_t cap; /* slots, a power of two, or 0 */
	size_t n;   /* ids stored, at most cap / 2 */
};

struct dsched {
	struct deliver *d;
	struct sched *s;
	uint64_t updates_out; /* QUEUE_REQ_UPDATEs not yet answered */
	uint64_t ctl_out;     /* operator requests with the committer */
	uint64_t cfg_gen;     /* the current config snapshot (0: startup) */
	uint64_t cfg_jobs0;   /* jobs out that were dispatched under gen 0 */
	bool draining;
	struct idset warned; /* messages with a delay warning queued */
};

/* deliver_sched.c, for deliver_ctl.c */
struct queue_envelope;
void deliver_sched_add_env(
    struct dsched *ds, const struct queue_envelope *env, uint64_t now);

/* deliver_bounce.c */
struct queue_update;
void deliver_bounce_attach(struct dsched *ds, const struct sched_job *job,
    struct queue_update *u, uint64_t now);
void deliver_bounce_done(struct dsched *ds, struct queue_update *u,
    const struct sched_job *job, const char *id);
/* Remember (or forget) that id's delay warning is queued. */
void deliver_bounce_warned(struct dsched *ds, uint64_t id, bool warned);
void deliver_bounce_fini(struct dsched *ds);

/* deliver_ctl.c */
struct queue_ctl;
void deliver_ctl_request(struct dsched *ds, struct deliver_ctl *c);
void deliver_ctl_committed(struct dsched *ds, struct queue_ctl *qc);

#endif
