/* SPDX-License-Identifier: ISC */
/*
 * queue_ctl.c - operator actions on stored messages: delete
 * (QUEUE_REQ_DELETE) and envelope flags (QUEUE_REQ_FLAGS: hold and
 * release, and retry through due_ms). Runs on the committer thread,
 * inside its write transaction, like every other request (queue_txn.c),
 * so an operator's change is ordered with delivery results for the same
 * message and is on disk before the operator is told "ok".
 *
 * A delete may carry, per id, a DSN to insert in the same transaction
 * (an operator's bounce: the sender is told, and the message goes).
 *
 * One request carries many ids and a status per id: one id that is not
 * queued fails alone, never the others. Only a broken transaction (map
 * full, I/O error) fails the whole request, and then nothing of it is on
 * disk (queue_ctl_done overwrites every per-id success with the error).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "queue_int.h"

#include "base/log.h"

void
queue_submit_ctl(struct queue *q, struct queue_ctl *c, uint16_t type)
{
	MTA_ASSERT(type == QUEUE_REQ_DELETE || type == QUEUE_REQ_FLAGS);
	c->msg.type = type;
	chan_send(q->chan, &c->msg);
}

static int
queue_ctl_delete_one(struct queue *q, MDB_txn *txn, uint64_t id, int *status)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key};
	int rc;

	queue_key_put(key, id);
	rc = mdb_del(txn, q->msgs, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		*status = -ENOENT;
		return 0;
	}
	if (rc != 0)
		return queue_env_err(rc);
	/* A missing body is not an error: the envelope was the message. */
	rc = mdb_del(txn, q->bodies, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return queue_env_err(rc);
	*status = 0;
	return 0;
}

/* An operator's bounce: the DSN goes in first, then the message goes;
 * an id that is not queued gets neither. */
static int
queue_ctl_bounce_one(struct queue *q, MDB_txn *txn, uint64_t id,
    const struct queue_submit *b, int *status)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, v;
	int rc;

	queue_key_put(key, id);
	rc = mdb_get(txn, q->msgs, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*status = -ENOENT;
		return 0;
	}
	if (rc != 0)
		return queue_env_err(rc);
	if ((rc = queue_submit_put(q, txn, b, false, status)) != 0 ||
	    *status != 0)
		return rc;
	return queue_ctl_delete_one(q, txn, id, status);
}

/* An operator's retry: every pending recipient due by due_ms. Returns
 * whether anything changed. */
static bool
queue_ctl_due(struct queue_envelope *env, uint64_t due_ms)
{
	bool changed = false;

	for (size_t i = 0; due_ms != 0 && i < env->nrcpts; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		if (r->state == QUEUE_RCPT_PENDING && r->next_ms > due_ms) {
			r->next_ms = due_ms;
			changed = true;
		}
	}
	return changed;
}

static int
queue_ctl_flags_one(struct queue *q, MDB_txn *txn, uint64_t id,
    const struct queue_ctl *c, int *status)
{
	struct queue_envelope env;
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, v;
	struct buf rec;
	uint32_t flags;
	int rc;

	queue_key_put(key, id);
	rc = mdb_get(txn, q->msgs, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*status = -ENOENT;
		return 0;
	}
	if (rc != 0)
		return queue_env_err(rc);
	if (queue_envelope_decode(v.mv_data, v.mv_size, &env) != 0) {
		log_warnx("event=record-corrupt id=%016llx action=kept",
		    (unsigned long long)id);
		*status = -EBADMSG;
		return 0;
	}
	flags = (env.flags | c->set) & ~c->clear;
	/* a held message is not due, whatever its times say: left as is */
	if (((flags & QUEUE_FLAG_HELD) || !queue_ctl_due(&env, c->due_ms)) &&
	    flags == env.flags) {
		/* already so: nothing to write, and still a success */
		queue_envelope_fini(&env);
		*status = 0;
		return 0;
	}
	env.flags = flags;
	buf_init(&rec, QUEUE_RECORD_MAX);
	*status = queue_envelope_encode(&env, &rec);
	rc = 0;
	if (*status == 0) {
		v.mv_size = buf_avail(&rec);
		v.mv_data = rec.data + rec.off;
		if ((rc = mdb_put(txn, q->msgs, &k, &v, 0)) != 0)
			rc = queue_env_err(rc);
	}
	buf_fini(&rec);
	queue_envelope_fini(&env);
	return rc;
}

/* The request as a whole succeeds when the txn does (*status = 0): an id
 * that is not queued is that id's answer, in c->status[], not a failure
 * that would undo the others. */
int
queue_ctl_apply(struct queue *q, MDB_txn *txn, struct chan_msg *m, int *status)
{
	struct queue_ctl *c = (struct queue_ctl *)m;
	int rc = 0;

	*status = 0;
	/* A batch that failed is applied again alone: start clean. */
	for (size_t i = 0; i < c->n; i++)
		c->status[i] = 0;
	for (size_t i = 0; i < c->n && rc == 0; i++) {
		if (m->type == QUEUE_REQ_DELETE && c->bounces != NULL &&
		    c->bounces[i] != NULL)
			rc = queue_ctl_bounce_one(
			    q, txn, c->ids[i], c->bounces[i], &c->status[i]);
		else if (m->type == QUEUE_REQ_DELETE)
			rc = queue_ctl_delete_one(
			    q, txn, c->ids[i], &c->status[i]);
		else
			rc = queue_ctl_flags_one(
			    q, txn, c->ids[i], c, &c->status[i]);
	}
	return rc; /* 0, or the txn is broken (map full, I/O) */
}

void
queue_ctl_done(struct queue *q, struct chan_msg *m, int status)
{
	struct queue_ctl *c = (struct queue_ctl *)m;

	/* A failed commit wrote nothing: no id succeeded. */
	if (status != 0)
		for (size_t i = 0; i < c->n; i++)
			if (c->status[i] == 0)
				c->status[i] = status;
	/* the scheduler learns of each DSN before the request comes back,
	 * on the same chan, as it learns of any new message */
	for (size_t i = 0; c->bounces != NULL && i < c->n; i++)
		if (c->status[i] == 0 && c->bounces[i] != NULL)
			queue_note_new(q, c->bounces[i]);
	c->msg.type =
	    m->type == QUEUE_REQ_DELETE ? QUEUE_DONE_DELETE : QUEUE_DONE_FLAGS;
	chan_send(c->reply, &c->msg);
}
