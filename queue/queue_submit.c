/* SPDX-License-Identifier: ISC */
/*
 * queue_submit.c - new mail: message ids, the QUEUE_REQ_SUBMIT request
 * and how it is written (envelope and body under one id, refused within
 * the map's headroom). The apply runs on the committer thread inside its
 * write transaction (queue_txn.c); so does queue_submit_put when a bounce
 * joins a delivery update (queue_update.c). queue_submit() and
 * queue_id_new() may be called from any thread.
 */
#include "queue_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/xalloc.h"

void
queue_submit_free(struct queue_submit *s)
{
	if (s == NULL)
		return;
	free(s->from);
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	free(s->user);
	free(s->client);
	free(s->helo);
	free(s->envid);
	free(s->notify);
	for (size_t i = 0; s->orcpts != NULL && i < s->nrcpts; i++)
		free(s->orcpts[i]);
	free(s->orcpts);
	buf_fini(&s->body);
	free(s);
}

uint64_t
queue_id_new(struct queue *q)
{
	uint64_t now = clock_wall_us();
	uint64_t old = atomic_load(&q->last_id);
	uint64_t next;

	/* Time-based ids sort by age and read well in logs; the CAS keeps
	 * them unique and increasing when the clock stalls or steps back. */
	do {
		next = now > old ? now : old + 1;
	} while (!atomic_compare_exchange_weak(&q->last_id, &old, next));
	return next;
}

void
queue_submit(struct queue *q, struct queue_submit *req)
{
	MTA_ASSERT(q->started);
	req->msg.type = QUEUE_REQ_SUBMIT;
	chan_send(q->chan, &req->msg);
}

/* The envelope of a new message: borrowed strings, every recipient
 * pending and due at once. */
static int
queue_submit_encode(const struct queue_submit *s, struct buf *out)
{
	static char none[1];
	struct queue_envelope env = {
	    .id = s->id,
	    .received_ms = s->received_ms,
	    .size = buf_avail(&s->body),
	    .from = s->from ? s->from : none,
	    .user = s->user ? s->user : none,
	    .client = s->client ? s->client : none,
	    .helo = s->helo ? s->helo : none,
	    .nrcpts = s->nrcpts,
	    .envid = s->envid,
	    .ret = s->ret,
	};
	int rc;

	env.rcpts = xcalloc(s->nrcpts ? s->nrcpts : 1, sizeof(*env.rcpts));
	for (size_t i = 0; i < s->nrcpts; i++) {
		env.rcpts[i].addr = s->rcpts[i];
		env.rcpts[i].state = QUEUE_RCPT_PENDING;
		env.rcpts[i].next_ms = s->received_ms;
		env.rcpts[i].reply = none;
		env.rcpts[i].notify = s->notify ? s->notify[i] : 0;
		env.rcpts[i].orcpt = s->orcpts ? s->orcpts[i] : NULL;
	}
	rc = queue_envelope_encode(&env, out);
	free(env.rcpts);
	return rc;
}

int
queue_submit_put(struct queue *q, MDB_txn *txn, const struct queue_submit *s,
    bool headroom, int *status)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, v;
	struct buf rec;
	int rc;

	buf_init(&rec, QUEUE_RECORD_MAX);
	if ((*status = queue_submit_encode(s, &rec)) != 0) {
		buf_fini(&rec);
		return 0;
	}
	/* Headroom (queue_space.c): new mail stops short of a full map so
	 * that deliveries and removals can still commit. Nothing written. */
	rc = !headroom ? 0
	               : queue_space_take(q, txn, &q->space,
	                     buf_avail(&rec) + buf_avail(&s->body));
	if (rc == -ENOSPC) {
		buf_fini(&rec);
		*status = rc;
		return 0;
	}
	if (rc != 0) {
		buf_fini(&rec);
		return rc;
	}
	queue_key_put(key, s->id);
	v.mv_size = buf_avail(&rec);
	v.mv_data = rec.data + rec.off;
	/* NOOVERWRITE: a reused id must never replace a queued message.
	 * It fails this request alone, before anything is written. */
	rc = mdb_put(txn, q->msgs, &k, &v, MDB_NOOVERWRITE);
	buf_fini(&rec);
	if (rc == MDB_KEYEXIST) {
		*status = -EEXIST;
		return 0;
	}
	if (rc != 0)
		return queue_env_err(rc);
	v.mv_size = buf_avail(&s->body);
	v.mv_data = s->body.data + s->body.off;
	if ((rc = mdb_put(txn, q->bodies, &k, &v, 0)) != 0)
		return queue_env_err(rc);
	*status = 0;
	return 0;
}

int
queue_submit_apply(
    struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status)
{
	return queue_submit_put(q, txn, (struct queue_submit *)m, true, status);
}

/* The receive stage logs event=queued when it answers 250: it knows the
 * session, and that the answer went out. */
void
queue_submit_done(struct queue *q, struct chan_msg *m, int status)
{
	struct queue_submit *s = (struct queue_submit *)m;

	/* the scheduler hears of it before the client does: no window in
	 * which a 250 was sent for a message delivery does not know of */
	if (status == 0) {
		queue_note_new(q, s);
		queue_room_spent(q, buf_avail(&s->body));
	}
	s->status = status;
	s->msg.type = QUEUE_DONE_SUBMIT;
	chan_send(s->reply, &s->msg);
}
