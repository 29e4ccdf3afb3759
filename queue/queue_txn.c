/* SPDX-License-Identifier: ISC */
/*
 * queue_txn.c - the committer: the one thread that writes LMDB.
 *
 * DESIGN. Any thread hands a request to queue_submit(); it is linked onto
 * the committer's chan. The committer wakes, takes everything queued at
 * once, applies it all in ONE write transaction and commits: one
 * fdatasync for the whole batch (group commit). While that sync runs, new
 * requests pile up in the chan and become the next batch, so the number
 * of syncs per second stays bounded while throughput grows with load.
 * Only after mdb_txn_commit() has returned does each request go back on
 * its own reply chan with its status: the caller may then say 250.
 *
 * Failure. A failed write aborts the transaction whole. A short write
 * on a full filesystem is -ENOSPC, not -EIO (queue_room_io_err). A
 * failed sync (-EIO) fails the whole batch: its data may or may not have reached the
 * disk, and nothing of it is visible. Any other failure (the map or the
 * disk is full) is retried one request per transaction, so one message
 * too big for what is left does not fail the small ones batched with it.
 *
 * Space. New mail (QUEUE_REQ_SUBMIT) is refused with -ENOSPC, without
 * writing, once the map is within its headroom (queue_space.c); other
 * request types may use the map to its end, so the queue can drain.
 *
 * Request types are rows of queue_txn_ops: apply (inside the write txn)
 * and done (after the commit, hands the request back), each in the file
 * that owns the request (queue_submit.c, queue_update.c, queue_ctl.c);
 * this loop calls them and they never call back into it.
 *
 * This file also starts and stops the thread, so queue_close() is here:
 * the committer stops before the environment closes (queue_env.c).
 *
 * The committer never blocks on anything but LMDB and its chan, and calls
 * out of this module only through chan_send() to reply.
 */
#include "queue_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/xalloc.h"

struct queue_txn_op {
	uint16_t type;
	/*
	 * Apply m inside txn. Returns 0 while txn is still good, with the
	 * request's own outcome in *status (0, or e.g. -EEXIST, which
	 * fails that request but not the batch); or a negative errno when
	 * txn is broken and must be aborted (-ENOSPC map full, -EIO).
	 */
	int (*apply)(
	    struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status);
	/* After the commit (or its failure): record status, hand m back. */
	void (*done)(struct queue *q, struct chan_msg *m, int status);
};

static const struct queue_txn_op queue_txn_ops[] = {
    {QUEUE_REQ_SUBMIT, queue_submit_apply, queue_submit_done},
    {QUEUE_REQ_UPDATE, queue_update_apply, queue_update_done},
    {QUEUE_REQ_DELETE, queue_ctl_apply, queue_ctl_done},
    {QUEUE_REQ_FLAGS, queue_ctl_apply, queue_ctl_done},
};

static const struct queue_txn_op *
queue_txn_op_find(uint16_t type)
{
	for (size_t i = 0; i < MTA_ARRAY_LEN(queue_txn_ops); i++)
		if (queue_txn_ops[i].type == type)
			return &queue_txn_ops[i];
	/* Only this module's types reach its chan: anything else is a bug. */
	MTA_ASSERT(!"unknown queue request type");
}

void
queue_stats_get(struct queue *q, struct queue_stats *st)
{
	st->commits = atomic_load(&q->st_commits);
	st->done = atomic_load(&q->st_done);
	st->failed = atomic_load(&q->st_failed);
}

/*
 * One write transaction over reqs[0..n). Returns 0 when it committed
 * (each request's own outcome in status[]), or the negative errno that
 * aborted it, in which case nothing of it is on disk.
 */
static int
queue_txn_run(struct queue *q, struct chan_msg **reqs, size_t n, int *status)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
		return queue_env_err(rc);
	memset(&q->space, 0, sizeof(q->space)); /* measured on first use */
	for (size_t i = 0; i < n; i++) {
		const struct queue_txn_op *op;

		op = queue_txn_op_find(reqs[i]->type);
		if ((rc = op->apply(q, txn, reqs[i], &status[i])) != 0) {
			mdb_txn_abort(txn);
			/* a put may spill pages to disk: a short write too */
			return queue_room_io_err(q, rc);
		}
	}
	/* Syncs (fdatasync, then the O_DSYNC meta page) before it returns. */
	if ((rc = mdb_txn_commit(txn)) != 0)
		return queue_room_io_err(q, queue_env_err(rc));
	atomic_fetch_add(&q->st_commits, 1);
	return 0;
}

/* Commit one batch and hand every request back. */
static void
queue_txn_batch(struct queue *q, struct chan_msg **reqs, size_t n)
{
	int *status = xcalloc(n, sizeof(*status));
	uint64_t t0 = clock_mono_us();
	int rc;

	rc = queue_txn_run(q, reqs, n, status);
	metrics_observe(METRICS_H_COMMIT_BATCH, n);
	metrics_observe(METRICS_H_COMMIT_SECONDS, clock_mono_us() - t0);
	if (rc != 0 && rc != -EIO && n > 1) {
		log_warnx("event=commit-failed requests=%zu error=\"%s\" "
		          "retry=one-at-a-time",
		    n, strerror(-rc));
		for (size_t i = 0; i < n; i++) {
			if ((rc = queue_txn_run(q, &reqs[i], 1, &status[i])) !=
			    0)
				status[i] = rc;
		}
	} else if (rc != 0) {
		log_warnx("event=commit-failed requests=%zu error=\"%s\"", n,
		    strerror(-rc));
		for (size_t i = 0; i < n; i++)
			status[i] = rc;
	}
	for (size_t i = 0; i < n; i++) {
		/* refused for space: the check at MAIL must know at once */
		if (status[i] == -ENOSPC)
			queue_room_stale(q);
		atomic_fetch_add(
		    status[i] == 0 ? &q->st_done : &q->st_failed, 1);
		queue_txn_op_find(reqs[i]->type)->done(q, reqs[i], status[i]);
	}
	free(status);
}

/* Turn the chan's list into an array (done() relinks ->next), dropping
 * the stop marker. Returns whether it was there. */
static bool
queue_txn_collect(struct chan_msg *list, struct chan_msg ***reqs, size_t *n)
{
	struct chan_msg *m;
	size_t cnt = 0, i = 0;
	bool stop = false;

	for (m = list; m != NULL; m = m->next)
		cnt++;
	*reqs = xcalloc(cnt ? cnt : 1, sizeof(**reqs));
	for (m = list; m != NULL; m = m->next) {
		if (m->type == QUEUE_REQ_STOP)
			stop = true;
		else
			(*reqs)[i++] = m;
	}
	*n = i;
	return stop;
}

static void *
queue_txn_main(void *arg)
{
	struct queue *q = arg;
	struct chan_msg *list, **reqs;
	size_t n;
	bool stop = false;

	while (!stop) {
		if ((list = chan_wait(q->chan, -1)) == NULL)
			continue;
		/* Everything sent before the stop marker is in this list or
		 * an earlier one (the chan is FIFO), so it all commits. */
		stop = queue_txn_collect(list, &reqs, &n);
		if (n > 0)
			queue_txn_batch(q, reqs, n);
		free(reqs);
	}
	return NULL;
}

int
queue_start(struct queue *q)
{
	int rc;

	MTA_ASSERT(!q->readonly && !q->started);
	if ((rc = pthread_create(&q->thread, NULL, queue_txn_main, q)) != 0)
		return -rc;
	pthread_setname_np(q->thread, "mta-queue");
	q->started = true;
	return 0;
}

/* Commit what was sent, join, and fail anything that raced in behind the
 * stop marker. */
static void
queue_txn_stop(struct queue *q)
{
	struct chan_msg *m, *next;

	if (!q->started)
		return;
	q->stop.type = QUEUE_REQ_STOP;
	chan_send(q->chan, &q->stop);
	pthread_join(q->thread, NULL);
	q->started = false;
	for (m = chan_take(q->chan); m != NULL; m = next) {
		next = m->next;
		atomic_fetch_add(&q->st_failed, 1);
		queue_txn_op_find(m->type)->done(q, m, -ESHUTDOWN);
	}
}

/* The committer stops before the environment it writes closes. */
void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	queue_txn_stop(q);
	queue_env_close(q);
}
