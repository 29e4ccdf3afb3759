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

/* Map space new mail may not use (queue_space.c): the smaller of this and
 * 10% of the map. */
#define QUEUE_SPACE_RESERVE (128ull << 20) /* bytes */
/* ... and per queued message, for its envelope to grow on deferral. */
#define QUEUE_SPACE_MSG_SLACK 256 /* bytes */
/* queue_room_check (queue_room.c): how long a measure is reused, and
 * the map room a new transaction needs beyond its declared size. */
#define QUEUE_ROOM_MS      1000           /* ms */
#define QUEUE_ROOM_MAP_MIN (64ull << 10) /* bytes */
/* A failed write with less than this free on the filesystem ran out of
 * space (LMDB reports a short write as EIO). */
#define QUEUE_ROOM_SHORT (1ull << 20) /* bytes */

/* The committer's view of the map during one write transaction. */
struct queue_space {
	bool known;         /* measured in this transaction */
	bool counted;       /* the freelist was subtracted from used */
	uint64_t psize;     /* bytes per page */
	uint64_t map_pages; /* pages in the map */
	uint64_t limit;     /* pages new mail may bring the map to */
	uint64_t used;      /* pages in use + this txn's accepted submits */
};

struct queue {
	MDB_env *env;
	MDB_dbi msgs;   /* id -> encoded envelope */
	MDB_dbi bodies; /* id -> raw message bytes */
	bool readonly;
	char path[CONFIG_PATH_MAX];

	_Atomic uint64_t last_id; /* largest id handed out or stored */

	struct chan *chan;     /* requests to the committer */
	struct chan *listener; /* new-message notes, or NULL */
	pthread_t thread;
	bool started;             /* committer running; owner thread only */
	struct chan_msg stop;     /* QUEUE_REQ_STOP, sent by queue_close */
	struct queue_space space; /* committer thread only; per txn */
	bool space_full;          /* committer thread only; for the log */
	uint64_t min_free;        /* bytes, [queue] min_free_space */

	/* queue_room_check()'s last measure, shared by every thread */
	_Atomic uint64_t chk_ms;       /* monotonic ms taken; 0: stale */
	_Atomic uint64_t chk_fs_free;  /* bytes free on the filesystem */
	_Atomic uint64_t chk_map_room; /* bytes new mail may add to the map */
	atomic_bool chk_low;           /* refusing; for the log */

	_Atomic uint64_t st_commits; /* see struct queue_stats */
	_Atomic uint64_t st_done;
	_Atomic uint64_t st_failed;
};

/* queue_env.c */
int queue_env_err(int rc);
int queue_env_read_begin(struct queue *q, MDB_txn **txn);
/* Free the chan, close the env and free q; the committer is stopped. */
void queue_env_close(struct queue *q);

/* queue_space.c */
/* Pages new mail may fill in a map of map_pages pages of psize bytes. */
uint64_t queue_space_limit(uint64_t map_pages, uint64_t psize);
/* Room for a new message of about bytes bytes in the write transaction
 * txn (sp zeroed at its start)? 0 and counted, -ENOSPC (nothing
 * written), or another negative errno. Committer thread only. */
int queue_space_take(struct queue *q, MDB_txn *txn, struct queue_space *sp,
    size_t bytes) MTA_MUST_CHECK;
/* Bytes new mail may still add to the map, from the last committed
 * state (a read transaction and a pass over the freelist).
 * 0 or a negative errno. Any thread. */
int queue_space_room(struct queue *q, uint64_t *bytes) MTA_MUST_CHECK;

/* queue_room.c */
/* rc from a failed write transaction, with a short write on a full
 * filesystem (EIO from LMDB) told as -ENOSPC; any thread. */
int queue_room_io_err(struct queue *q, int rc);
/* The first measure, at open (writer only). */
void queue_room_init(struct queue *q, uint64_t min_free);
/* A new message of about bytes bytes was committed (committer). */
void queue_room_spent(struct queue *q, uint64_t bytes);
/* The next queue_room_check() measures again (space was refused). */
void queue_room_stale(struct queue *q);

/* queue_note.c */
/* Tell the listener, if any, of the new message s (borrowed). */
void queue_note_new(struct queue *q, const struct queue_submit *s);

/* queue_submit.c */
/* Insert a new message inside txn (the QUEUE_REQ_SUBMIT apply; also how
 * a bounce joins its update). headroom: refuse with -ENOSPC in *status
 * when the map is within its reserve (new mail only). Returns as an
 * apply does (struct queue_txn_op). */
int queue_submit_put(struct queue *q, MDB_txn *txn,
    const struct queue_submit *s, bool headroom, int *status);
int queue_submit_apply(
    struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status);
void queue_submit_done(struct queue *q, struct chan_msg *m, int status);

/* queue_update.c */
int queue_update_apply(
    struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status);
void queue_update_done(struct queue *q, struct chan_msg *m, int status);

/* queue_ctl.c: operator actions (QUEUE_REQ_DELETE, QUEUE_REQ_FLAGS) */
int queue_ctl_apply(
    struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status);
void queue_ctl_done(struct queue *q, struct chan_msg *m, int status);

#endif
