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
	DELIVER_MSG_CTL = 0x5340, /* struct deliver_ctl (deliver.h) */
	DELIVER_MSG_CTL_DONE,     /* the same struct, back on ->reply */
	DELIVER_MSG_CONFIG,       /* struct deliver_config, to the scheduler */
};

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
 * deliver_outcome.c, deliver_ctl.c, deliver_env.c and deliver_bounce.c
 * run on the same thread). Calls go one way: deliver_sched.c calls
 * outcome, ctl and env; those call env and bounce; bounce calls none. */
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
	struct idset warned;  /* messages with a delay warning on disk */
	struct idset warning; /* ... with one in an update not yet back */
};

struct queue_envelope;
struct queue_update;
struct queue_ctl;

/* deliver_outcome.c: a job is back (or was decided without a worker):
 * decide, and submit the decisions to the committer; the schedule
 * changes when they come back, in deliver_outcome_done(). */
void deliver_outcome_submit(struct dsched *ds, struct sched_job *job);
/* The update is back: apply it to the schedule and log it when it is on
 * disk, else leave the schedule as the disk is; free the job. */
void deliver_outcome_done(struct dsched *ds, struct queue_update *u);

/* deliver_env.c: put a queued envelope's pending recipients into the
 * schedule (recovery, a new message, a release); a held one only marks
 * its delay warning. */
void deliver_env_add(
    struct dsched *ds, const struct queue_envelope *env, uint64_t now);

/* deliver_bounce.c */
void deliver_bounce_attach(struct dsched *ds, const struct sched_job *job,
    struct queue_update *u, uint64_t now);
void deliver_bounce_done(struct dsched *ds, struct queue_update *u,
    const struct sched_job *job, const char *id);
/* Remember (or forget) that id's delay warning is on disk. */
void deliver_bounce_warned(struct dsched *ds, uint64_t id, bool warned);
void deliver_bounce_fini(struct dsched *ds);

/* deliver_ctl.c: an operator request, committed first
 * (deliver_ctl_committed applies it when the commit is back). */
void deliver_ctl_request(struct dsched *ds, struct deliver_ctl *c);
void deliver_ctl_committed(struct dsched *ds, struct queue_ctl *qc);

#endif
