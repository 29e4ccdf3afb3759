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
#include "deliver.h"
#include "schedule.h"

/* chan message types of this module. A struct sched_job travels as
 * DELIVER_MSG_JOB to a worker and comes back as DELIVER_MSG_DONE. */
enum deliver_msg_type {
	DELIVER_MSG_JOB = 0x5301,
	DELIVER_MSG_DONE,
	DELIVER_MSG_STOP, /* a bare struct chan_msg: stop the thread */
};

struct tls_ctx;
struct deliver_worker;

struct deliver {
	const struct config *cfg;
	struct queue *q;
	struct dns *dns;
	struct tls_ctx *tls;        /* client context, system CA store */
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

#endif
