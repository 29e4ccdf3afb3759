/* SPDX-License-Identifier: ISC */
/*
 * queue_space.c - headroom in the LMDB map: new mail is refused before
 * the map is full, so that what drains the queue still has room.
 *
 * Why. Every write in LMDB is copy-on-write: recording a delivery,
 * removing a delivered message or deferring one all need free pages
 * before they free any. If new mail were allowed to fill the map to the
 * last page, every request would then fail with MDB_MAP_FULL and the
 * queue could never drain. So new messages (QUEUE_REQ_SUBMIT) are held
 * to a limit below the map size; every other request (updates, removals,
 * operator actions) may use the map up to its end.
 *
 * The limit. headroom = min(10% of the map, QUEUE_SPACE_RESERVE), and
 * new mail may bring the map to map_pages - headroom. Put the other way:
 * the limit is the larger of 90% of the map and map_size minus a fixed
 * 128 MiB reserve. Small maps (tests) keep 10%; large ones keep 128 MiB,
 * which is far more than one group-commit batch of updates touches
 * (each updated message copies a leaf and its branch pages: about 32k
 * messages' worth of pages).
 *
 * Growth. Updates do not only copy pages: a deferral stores the remote
 * reply (up to 511 bytes) in the envelope, so a full queue of deferred
 * mail grows with no new message at all. A constant headroom cannot
 * cover growth proportional to the queue, so the limit for new mail is
 * also lowered by QUEUE_SPACE_MSG_SLACK bytes per queued message
 * (mdb_stat of "msgs", O(1)): room for each envelope to take a typical
 * reply. A message with many recipients, each deferred with a long reply,
 * can still outgrow it; then that update fails with -ENOSPC and is
 * retried (the scheduler keeps its decision in memory), while removals,
 * which need only a few pages, go on.
 *
 * Counting "used". LMDB never shrinks the file: me_last_pgno is a high
 * water mark, and pages freed by deletions go on its freelist (FREE_DBI)
 * to be reused. Used pages are therefore last_pgno + 1 minus the pages on
 * the freelist. The freelist is only counted when the high water mark
 * alone would refuse a message, at most once per transaction, so a queue
 * far from full pays nothing; when it is counted it costs one short read
 * transaction and one pass over the freelist records (one per past write
 * transaction whose freed pages are not reused yet).
 *
 * Approximations, all on the safe side but one: (1) the count is taken
 * from the last committed state at the first submit of a batch; each
 * submit accepted in the batch then adds its own estimate (its bytes in
 * pages, plus two for leaf and branch splits); updates earlier in the
 * same batch are not counted (the headroom covers them). (2) Pages freed
 * while an old reader still sees them count as free though LMDB cannot
 * reuse them yet; readers here are short (queue_scan batches), and if a
 * submit then hits MDB_MAP_FULL it still fails cleanly with -ENOSPC.
 *
 * Thread: the committer only (inside queue_txn_run), but for
 * queue_space_room(), which any thread may call (queue_room.c: the check
 * at MAIL).
 */
#include "queue_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "base/log.h"

/* Pages on the freelist in the last committed state, or a negative errno. */
static int
queue_space_free_pages(struct queue *q, uint64_t *pages)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n;
	int rc;

	*pages = 0;
	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	/* dbi 0 is LMDB's FREE_DBI: txnid -> IDL, whose first word is the
	 * number of page numbers that follow (as mdb_stat -f counts). */
	if ((rc = mdb_cursor_open(txn, 0, &cur)) == 0) {
		while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
			if (v.mv_size < sizeof(n))
				continue;
			memcpy(&n, v.mv_data, sizeof(n));
			*pages += n;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : queue_env_err(rc);
}

uint64_t
queue_space_limit(uint64_t map_pages, uint64_t psize)
{
	uint64_t headroom = map_pages / 10;
	uint64_t reserve = QUEUE_SPACE_RESERVE / (psize ? psize : 4096);

	if (reserve < headroom)
		headroom = reserve;
	return map_pages - headroom;
}

/* Fill sp from the committed state: the limit and the high water mark.
 * The freelist is counted later, and only if the mark is in the way. */
static int
queue_space_measure(struct queue *q, MDB_txn *txn, struct queue_space *sp)
{
	MDB_envinfo info;
	MDB_stat st, msgs;
	uint64_t slack;
	int rc;

	if ((rc = mdb_env_info(q->env, &info)) != 0 ||
	    (rc = mdb_env_stat(q->env, &st)) != 0 ||
	    (rc = mdb_stat(txn, q->msgs, &msgs)) != 0)
		return queue_env_err(rc);
	sp->psize = st.ms_psize;
	sp->map_pages = info.me_mapsize / st.ms_psize;
	sp->limit = queue_space_limit(sp->map_pages, st.ms_psize);
	/* Room for every queued envelope to grow by a deferral reply. */
	slack = ((uint64_t)msgs.ms_entries * QUEUE_SPACE_MSG_SLACK +
	            st.ms_psize - 1) /
	        st.ms_psize;
	sp->limit = slack < sp->limit ? sp->limit - slack : 0;
	sp->used = (uint64_t)info.me_last_pgno + 1;
	sp->counted = false;
	sp->known = true;
	return 0;
}

/* Log when the state flips, not per message. */
static void
queue_space_report(struct queue *q, const struct queue_space *sp, bool full)
{
	if (full == q->space_full)
		return;
	q->space_full = full;
	if (full)
		log_warnx(
		    "event=queue-full used_pages=%" PRIu64
		    " limit_pages=%" PRIu64 " map_pages=%" PRIu64
		    " note=\"new mail gets 452 4.3.1 until deliveries free "
		    "space\"",
		    sp->used, sp->limit, sp->map_pages);
	else
		log_event("event=queue-space-ok used_pages=%" PRIu64
		          " limit_pages=%" PRIu64 " map_pages=%" PRIu64,
		    sp->used, sp->limit, sp->map_pages);
}

int
queue_space_take(
    struct queue *q, MDB_txn *txn, struct queue_space *sp, size_t bytes)
{
	uint64_t need, freep;
	int rc;

	if (!sp->known && (rc = queue_space_measure(q, txn, sp)) != 0)
		return rc;
	/* Whole pages for the bytes (overflow pages for a large body), plus
	 * a leaf and a branch page that an insertion may split. */
	need = ((uint64_t)bytes + sp->psize - 1) / sp->psize + 2;
	if (sp->used + need > sp->limit && !sp->counted) {
		/* The high water mark is in the way: subtract the pages LMDB
		 * will reuse, once per transaction. */
		if ((rc = queue_space_free_pages(q, &freep)) != 0)
			return rc;
		sp->used = freep < sp->used ? sp->used - freep : 0;
		sp->counted = true;
	}
	if (sp->used + need > sp->limit) {
		/* Full, or only this message too big for what is left: only
		 * the first is worth a warning. */
		if (sp->used + 3 > sp->limit)
			queue_space_report(q, sp, true);
		return -ENOSPC;
	}
	sp->used += need;
	queue_space_report(q, sp, false);
	return 0;
}

int
queue_space_room(struct queue *q, uint64_t *bytes)
{
	struct queue_space sp = {0};
	MDB_txn *txn;
	uint64_t freep;
	int rc;

	*bytes = 0;
	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	rc = queue_space_measure(q, txn, &sp);
	mdb_txn_abort(txn);
	if (rc != 0)
		return rc;
	/* The freelist always: this runs about once a second at most. */
	if ((rc = queue_space_free_pages(q, &freep)) != 0)
		return rc;
	sp.used = freep < sp.used ? sp.used - freep : 0;
	if (sp.used < sp.limit)
		*bytes = (sp.limit - sp.used) * sp.psize;
	return 0;
}
