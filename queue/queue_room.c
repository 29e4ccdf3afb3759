/* SPDX-License-Identifier: ISC */
/*
 * queue_room.c - is there room for new mail? The check the receive stage
 * makes at MAIL and again before 354 (queue_room_check), so that a client
 * is refused with 452 4.3.1 before it uploads a body the queue cannot
 * store; and how a failed write on a full filesystem is reported.
 *
 * Two limits. The filesystem of the queue directory must keep
 * max([queue] min_free_space, 1.5 x max_message_size) + the declared
 * SIZE free (statvfs, the space an unprivileged writer may use), the
 * rule of Postfix's queue_minfree; the LMDB map must have room for new
 * mail (queue_space.c's headroom) for the declared size plus
 * QUEUE_ROOM_MAP_MIN.
 *
 * Cost. MAIL is hot (tens of thousands a second), so a measure (one
 * statvfs; one read transaction and a pass over the freelist) is shared
 * by every thread for QUEUE_ROOM_MS. Between measures, the committer
 * takes what it stores off the shared values (queue_room_spent), so our
 * own mail is counted at once; what other processes write is seen at
 * the next measure. Within twice the limit of a full filesystem the
 * statvfs is made on every check instead, so a burst cannot overshoot by
 * a second's worth of mail; the committer makes the measure stale
 * whenever it refuses space (queue_room_stale), so the first refusal at
 * commit turns into refusals at MAIL at once.
 *
 * Short writes. LMDB reports a write that stopped short (the filesystem
 * filled up in the middle of it) as EIO, like a failed disk; a write
 * error with less than QUEUE_ROOM_SHORT left on the filesystem is told as
 * ENOSPC instead (queue_room_io_err), so the log and the reply (452 4.3.1,
 * not 451 4.3.0) say what happened.
 *
 * Threads: any. The shared measure is a set of atomics; two threads may
 * measure at once, and either result is good.
 */
#include "queue_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

/* Bytes free on the queue's filesystem: for an unprivileged writer
 * (avail), or for root (who may use the reserved blocks too). */
static int
queue_room_fs(const struct queue *q, bool root, uint64_t *bytes)
{
	struct statvfs sv;

	if (statvfs(q->path, &sv) != 0)
		return -errno;
	*bytes = (uint64_t)(root ? sv.f_bfree : sv.f_bavail) * sv.f_frsize;
	return 0;
}

int
queue_room_io_err(struct queue *q, int rc)
{
	uint64_t left = 0;

	if (rc != -EIO || queue_room_fs(q, geteuid() == 0, &left) != 0)
		return rc;
	return left < QUEUE_ROOM_SHORT ? -ENOSPC : rc;
}

/* Take bytes off a shared value, stopping at 0. */
static void
queue_room_sub(_Atomic uint64_t *v, uint64_t bytes)
{
	uint64_t old = atomic_load(v);

	while (!atomic_compare_exchange_weak(
	    v, &old, old > bytes ? old - bytes : 0))
		;
}

void
queue_room_spent(struct queue *q, uint64_t bytes)
{
	queue_room_sub(&q->chk_fs_free, bytes);
	queue_room_sub(&q->chk_map_room, bytes);
}

void
queue_room_stale(struct queue *q)
{
	atomic_store(&q->chk_ms, 0);
}

/* Measure again (everything, or the filesystem only). A failed measure
 * keeps the last values: a transient statvfs error refuses nothing. */
static void
queue_room_measure(struct queue *q, bool all)
{
	uint64_t v;

	if (queue_room_fs(q, false, &v) == 0)
		atomic_store(&q->chk_fs_free, v);
	if (all && queue_space_room(q, &v) == 0)
		atomic_store(&q->chk_map_room, v);
}

void
queue_room_init(struct queue *q, uint64_t min_free)
{
	uint64_t now = clock_mono_ms();

	q->min_free = min_free;
	queue_room_measure(q, true);
	atomic_store(&q->chk_ms, now ? now : 1);
}

/* Log when the answer flips, not per message. */
static void
queue_room_report(
    struct queue *q, bool low, uint64_t fs, uint64_t map, uint64_t floor)
{
	/* A load first: no write to the shared line on the common path. */
	if (atomic_load(&q->chk_low) == low ||
	    atomic_exchange(&q->chk_low, low) == low)
		return;
	if (low)
		log_warnx("event=queue-storage-low fs_free=%" PRIu64
		          " min_free=%" PRIu64 " map_room=%" PRIu64
		          " note=\"new mail gets 452 4.3.1 at MAIL\"",
		    fs, floor, map);
	else
		log_event("event=queue-storage-ok fs_free=%" PRIu64
		          " min_free=%" PRIu64 " map_room=%" PRIu64,
		    fs, floor, map);
}

int
queue_room_check(struct queue *q, uint64_t size, uint64_t max_size)
{
	uint64_t floor = max_size + max_size / 2, now, last, fs, map;

	if (q->min_free > floor)
		floor = q->min_free;
	now = clock_mono_ms();
	last = atomic_load(&q->chk_ms);
	if (last == 0 || now - last >= QUEUE_ROOM_MS) {
		/* One thread measures; the others use the last values. */
		if (atomic_compare_exchange_strong(
		        &q->chk_ms, &last, now ? now : 1))
			queue_room_measure(q, true);
	} else if (atomic_load(&q->chk_fs_free) < 2 * floor + size)
		queue_room_measure(q, false);
	fs = atomic_load(&q->chk_fs_free);
	map = atomic_load(&q->chk_map_room);
	if (fs < floor + size || map < size + QUEUE_ROOM_MAP_MIN) {
		queue_room_report(q, true, fs, map, floor);
		return -ENOSPC;
	}
	queue_room_report(q, false, fs, map, floor);
	return 0;
}
