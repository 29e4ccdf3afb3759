/* SPDX-License-Identifier: ISC */
/*
 * queue_int.h - private to the .c files in queue/: the queue handle and
 * the helpers they share. Includes lmdb.h, so nothing outside queue/ may
 * include this file (tests use queue.h only).
 *
 * Threads: the handle is shared by every thread of the process. The env
 * and dbi handles are immutable after queue_open(); last_id and the stats
 * are atomics; the chan is the only way into the committer, which alone
 * runs write transactions.
 */
#ifndef MTA_QUEUE_INT_H
#define MTA_QUEUE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>

#include "queue.h"

/* Private chan message type: queue_close() asks the committer to finish. */
#define QUEUE_REQ_STOP 0x1ff

struct queue {
	MDB_env *env;
	MDB_dbi msgs;                /* id -> encoded envelope */
	MDB_dbi bodies;              /* id -> raw message bytes */
	bool readonly;
	char path[CONFIG_PATH_MAX];

	_Atomic uint64_t last_id;    /* largest id handed out or stored */

	struct chan *chan;           /* requests to the committer */
	struct chan *listener;       /* new-message notes, or NULL */
	pthread_t thread;
	bool started;                /* committer running; owner thread only */
	struct chan_msg stop;        /* QUEUE_REQ_STOP, sent by queue_close */

	_Atomic uint64_t st_commits; /* see struct queue_stats */
	_Atomic uint64_t st_done;
	_Atomic uint64_t st_failed;
};

/* queue_env.c */
int queue_env_err(int rc);
int queue_env_read_begin(struct queue *q, MDB_txn **txn);

/* queue_txn.c */
void queue_txn_stop(struct queue *q);

/* queue_update.c */
int queue_update_apply(struct queue *q, MDB_txn *txn, struct chan_msg *m,
    int *status);
void queue_update_done(struct queue *q, struct chan_msg *m, int status);
void queue_note_send(struct queue *q, const struct queue_submit *s);

#endif
