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
#include "deliver/dest_policy.h"
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
	DELIVER_MSG_CONFIG,       /* struct deliver_config, to any thread */
	DELIVER_MSG_RESUME,       /* struct deliver_resume (deliver_shape.c) */
};

/* DELIVER_MSG_RESUME: an operator lifts a destination's suspension. */
struct deliver_resume {
	struct chan_msg msg;
	char domain[256];
};

/*
 * DELIVER_MSG_CONFIG: a reloaded snapshot for one thread (the scheduler
 * or a worker), which swaps it in when its loop takes the message.
 */
struct deliver_config {
	struct chan_msg msg; /* first: DELIVER_MSG_CONFIG */
	struct config *snap; /* one reference, the receiver's */
};

/*
 * A thread's (or a job's, or a connection's) configuration: its
 * settings and the snapshot they point into, held by a reference. snap
 * NULL: the startup settings, borrowed for the stage's life.
 */
struct deliver_cfg {
	struct config *snap;
	struct deliver_settings set;
};

/* deliver_cfg.c */
void deliver_cfg_init(
    struct deliver_cfg *dc, const struct deliver_settings *boot);
/* Swap in m's snapshot (dropping the old one) and free m. */
void deliver_cfg_take(struct deliver_cfg *dc, struct deliver_config *m);
/* dst holds what src holds, with a reference of its own. */
void deliver_cfg_copy(struct deliver_cfg *dst, const struct deliver_cfg *src);
void deliver_cfg_drop(struct deliver_cfg *dc);
/* A message carrying a new reference to snap. */
struct deliver_config *deliver_cfg_msg(struct config *snap);
/* Free a message that was never taken (a thread that had stopped). */
void deliver_cfg_msg_free(struct deliver_config *m);

struct tls_ctx;
struct deliver_worker;

/* Delivery's memory for message bodies: a job reads its body in chunks
 * of at most DELIVER_BODY_CHUNK bytes into one buffer, and all workers
 * together hold at most [delivery] max_inflight bytes of such buffers
 * (at least one chunk: the key's minimum is 64K); a job that would go
 * over waits for bytes to be released (it never fails for it). */
#define DELIVER_BODY_CHUNK ((size_t)64 * 1024)

struct deliver {
	/* the startup settings (borrowed): worker count, the scheduler's
	 * caps, each thread's settings until its first reload */
	struct deliver_settings boot;
	struct queue *q;
	struct dns *dns;
	struct tls_ctx *tls; /* client context, system CA store */
	struct sts *sts;     /* the MTA-STS policy thread (mta/sts/) */
	struct tlsrpt *tlsrpt; /* TLS reports (mta/tlsrpt/); NULL: off */
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
	/* body bytes the workers hold (a chunk buffer per job), under
	 * [delivery] max_inflight */
	atomic_uint_fast64_t body_inflight;
	/* the relay's own listeners, from the startup settings; read-only
	 * once the workers run */
	struct dest_self self;
	/* the scheduler's shaping report for operators (deliver_shape.c) */
	pthread_mutex_t shape_lock;
	char *shape_text;   /* shape_lock */
	uint64_t shape_gen; /* shape_lock: reports published */
};

/* deliver_worker.c */
struct deliver_worker *deliver_worker_new(struct deliver *d, unsigned idx);
int deliver_worker_start(struct deliver_worker *w) MTA_MUST_CHECK;
/* Hand a job to the worker; any thread. */
void deliver_worker_send(struct deliver_worker *w, struct sched_job *job);
/* Hand a reloaded snapshot to the worker (m passes); main thread. */
void deliver_worker_config(struct deliver_worker *w, struct deliver_config *m);
/* Stop (jobs still held are returned as deferred first) and free. */
void deliver_worker_stop(struct deliver_worker *w);

/* deliver_sched.c */
void *deliver_sched_main(void *arg);

/* deliver.c: the shared caps (key: "ip:port"), as dl (the caller's
 * settings) sets them. */
bool deliver_host_acquire(
    struct deliver *d, const char *key, const struct config_delivery *dl);
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
	uint64_t updates_out;   /* QUEUE_REQ_UPDATEs not yet answered */
	uint64_t ctl_out;       /* operator requests with the committer */
	struct deliver_cfg cfg; /* bounces, delay warnings */
	bool draining;
	struct idset warned;  /* messages with a delay warning on disk */
	struct idset warning; /* ... with one in an update not yet back */
	uint64_t metrics_ms;  /* mono ms when the next metrics snapshot is due */
	struct dest_shape *shape;  /* delivery shaping, backoff (dest_shape.h) */
	uint64_t shape_ms;    /* mono ms when the next report is due */
};

/* deliver_shape.c: the scheduler's side: publish the shaping report
 * (each second, or now when force), apply an operator's resume. */
void deliver_shape_publish(struct dsched *ds, bool force);
void deliver_shape_resume_apply(struct dsched *ds, struct deliver_resume *r);

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
/* The reason an operator's bounce gives for each pending recipient. */
#define DELIVER_BOUNCE_OPERATOR_REPLY "delivery cancelled by the operator"
/* An operator's bounce of id: the DSN for its pending recipients (read
 * from the queue), to insert with its removal; NULL when it gets none
 * (gone, from <>, nothing pending, or it could not be built: logged). */
struct queue_submit *deliver_bounce_operator(
    struct dsched *ds, uint64_t id, uint64_t now);
/* Remember (or forget) that id's delay warning is on disk. */
void deliver_bounce_warned(struct dsched *ds, uint64_t id, bool warned);
void deliver_bounce_fini(struct dsched *ds);

/* deliver_metrics.c: publish the queue and destination snapshot when a
 * second has passed and metrics are on; count a job's outcomes (on disk
 * at now, wall ms). */
void deliver_metrics_tick(struct dsched *ds);
void deliver_metrics_outcome(const struct sched_job *job, uint64_t now);

/* deliver_ctl.c: an operator request, committed first
 * (deliver_ctl_committed applies it when the commit is back). */
void deliver_ctl_request(struct dsched *ds, struct deliver_ctl *c);
void deliver_ctl_committed(struct dsched *ds, struct queue_ctl *qc);

#endif
