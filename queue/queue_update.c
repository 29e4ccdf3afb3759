/* SPDX-License-Identifier: ISC */
/*
 * queue_update.c - delivery's requests to the committer: recipient
 * outcomes (QUEUE_REQ_UPDATE) with the bounce they cause, if any (written
 * as new mail is, queue_submit.c, and noted to the scheduler the same
 * way, queue_note.c). Runs on the committer thread, inside its write
 * transaction, like every other request (queue_txn.c); queue_body_head()
 * is a reader, any thread.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "queue_int.h"

#include "base/log.h"
#include "base/xalloc.h"

void
queue_submit_update(struct queue *q, struct queue_update *u)
{
	u->msg.type = QUEUE_REQ_UPDATE;
	u->status = 0;
	u->removed = false;
	u->bounce_status = u->bounce ? -ENOENT : 0;
	chan_send(q->chan, &u->msg);
}

int
queue_body_head(struct queue *q, uint64_t id, struct buf *out, size_t max)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, v;
	MDB_txn *txn;
	int rc;

	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	queue_key_put(key, id);
	/* v points into the map until the txn ends: copy before that. */
	if ((rc = mdb_get(txn, q->bodies, &k, &v)) == 0)
		rc = buf_append(
		    out, v.mv_data, v.mv_size < max ? v.mv_size : max);
	else
		rc = rc == MDB_NOTFOUND ? -ENOENT : queue_env_err(rc);
	mdb_txn_abort(txn);
	return rc;
}

/* The bounce goes in first: if it cannot, the outcomes it reports are
 * not written either (the caller gets the error and nothing changed). */
static int
queue_update_bounce(
    struct queue *q, MDB_txn *txn, struct queue_update *u, int *status)
{
	int rc;

	if (u->bounce == NULL)
		return 0;
	rc = queue_submit_put(q, txn, u->bounce, false, status);
	if (rc == 0 && *status == 0)
		u->bounce_status = 0;
	return rc;
}

/* Store the updated envelope under key k: removed with its body when no
 * recipient is left pending, else written back. Returns 0, or the txn is
 * broken (map full, I/O); a record that cannot be encoded fails only
 * this request (*status), unless a bounce shares the txn. */
static int
queue_update_store(struct queue *q, MDB_txn *txn, struct queue_update *u,
    const struct queue_envelope *env, MDB_val *k, int *status)
{
	bool pending = false;
	struct buf rec;
	MDB_val v;
	int rc;

	for (size_t i = 0; i < env->nrcpts; i++)
		pending |= env->rcpts[i].state == QUEUE_RCPT_PENDING;
	if (!pending) {
		u->removed = true;
		rc = mdb_del(txn, q->msgs, k, NULL);
		if (rc == 0)
			rc = mdb_del(txn, q->bodies, k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
		return rc ? queue_env_err(rc) : 0;
	}
	buf_init(&rec, QUEUE_RECORD_MAX);
	rc = queue_envelope_encode(env, &rec);
	if (rc == 0) {
		v.mv_size = buf_avail(&rec);
		v.mv_data = rec.data + rec.off;
		rc = mdb_put(txn, q->msgs, k, &v, 0);
		rc = rc ? queue_env_err(rc) : 0;
	} else if (u->bounce != NULL) {
		/* the bounce is in this txn already: abort it all (the
		 * batch is then retried one request at a time, and only
		 * this one fails) */
	} else {
		*status = rc;
		rc = 0;
	}
	buf_fini(&rec);
	return rc;
}

/* Apply the outcomes to the stored envelope; remove the message when no
 * recipient is left pending. */
int
queue_update_apply(
    struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status)
{
	struct queue_update *u = (struct queue_update *)m;
	struct queue_envelope env;
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, v;
	char **old;
	int rc;

	*status = 0;
	u->bounce_status = u->bounce ? -ENOENT : 0; /* a retried batch */
	queue_key_put(key, u->id);
	rc = mdb_get(txn, q->msgs, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0; /* deleted meanwhile: nothing to record */
	if (rc != 0)
		return queue_env_err(rc);
	if (queue_envelope_decode(v.mv_data, v.mv_size, &env) != 0) {
		log_warnx("event=record-corrupt id=%016llx action=kept",
		    (unsigned long long)u->id);
		*status = -EBADMSG;
		return 0;
	}
	/* after the decode: a put may move what v points to */
	if ((rc = queue_update_bounce(q, txn, u, status)) != 0 ||
	    *status != 0) {
		queue_envelope_fini(&env);
		return rc;
	}
	env.flags |= u->set_flags;
	old = xcalloc(env.nrcpts ? env.nrcpts : 1, sizeof(*old));
	for (size_t i = 0; i < u->n; i++) {
		struct queue_rcpt *r;

		if (u->rcpts[i].idx >= env.nrcpts)
			continue;
		r = &env.rcpts[u->rcpts[i].idx];
		r->state = u->rcpts[i].state;
		r->attempts = u->rcpts[i].attempts;
		r->next_ms = u->rcpts[i].next_ms;
		/* keep the decoded string to free; borrow the new one */
		if (old[u->rcpts[i].idx] == NULL)
			old[u->rcpts[i].idx] = r->reply;
		r->reply =
		    (char *)(uintptr_t)(u->rcpts[i].reply ? u->rcpts[i].reply
		                                          : "");
	}
	rc = queue_update_store(q, txn, u, &env, &k, status);
	/* give the envelope its own strings back before freeing it */
	for (size_t i = 0; i < env.nrcpts; i++)
		if (old[i])
			env.rcpts[i].reply = old[i];
	free(old);
	queue_envelope_fini(&env);
	return rc; /* 0, or the txn is broken (map full, I/O) */
}

void
queue_update_done(struct queue *q, struct chan_msg *m, int status)
{
	struct queue_update *u = (struct queue_update *)m;

	u->status = status;
	if (status != 0) {
		u->removed = false;
		if (u->bounce)
			u->bounce_status = status;
	}
	/* the scheduler learns of the bounce before the update comes back,
	 * on the same chan, as it learns of any new message */
	if (status == 0 && u->bounce && u->bounce_status == 0)
		queue_note_new(q, u->bounce);
	u->msg.type = QUEUE_DONE_UPDATE;
	chan_send(u->reply, &u->msg);
}
