/* SPDX-License-Identifier: ISC */
/*
 * queue_update.c - delivery's requests to the committer: recipient
 * outcomes (QUEUE_REQ_UPDATE), and the new-message notes the committer
 * sends to the scheduler. Runs on the committer thread, inside its write
 * transaction, like every other request (queue_txn.c).
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
queue_listen(struct queue *q, struct chan *c)
{
	q->listener = c;
}

void
queue_note_free(struct queue_note *n)
{
	if (n == NULL)
		return;
	queue_envelope_fini(&n->env);
	free(n);
}

void
queue_note_send(struct queue *q, const struct queue_submit *s)
{
	struct queue_note *n;

	if (q->listener == NULL)
		return;
	n = xcalloc(1, sizeof(*n));
	n->msg.type = QUEUE_NOTE_NEW;
	n->env.id = s->id;
	n->env.received_ms = s->received_ms;
	n->env.size = buf_avail(&s->body);
	n->env.from = xstrdup(s->from ? s->from : "");
	n->env.user = xstrdup(s->user ? s->user : "");
	n->env.client = xstrdup(s->client ? s->client : "");
	n->env.helo = xstrdup(s->helo ? s->helo : "");
	n->env.nrcpts = s->nrcpts;
	n->env.rcpts = xcalloc(s->nrcpts ? s->nrcpts : 1,
	    sizeof(*n->env.rcpts));
	for (size_t i = 0; i < s->nrcpts; i++) {
		n->env.rcpts[i].addr = xstrdup(s->rcpts[i]);
		n->env.rcpts[i].reply = xstrdup("");
	}
	chan_send(q->listener, &n->msg);
}

void
queue_submit_update(struct queue *q, struct queue_update *u)
{
	u->msg.type = QUEUE_REQ_UPDATE;
	u->status = 0;
	u->removed = false;
	chan_send(q->chan, &u->msg);
}

/* Apply the outcomes to the stored envelope; remove the message when no
 * recipient is left pending. */
int
queue_update_apply(struct queue *q, MDB_txn *txn, struct chan_msg *m,
    int *status)
{
	struct queue_update *u = (struct queue_update *)m;
	struct queue_envelope env;
	uint8_t key[8];
	MDB_val k = { sizeof(key), key }, v;
	struct buf rec;
	bool pending = false;
	char **old;
	int rc;

	*status = 0;
	queue_key_put(key, u->id);
	rc = mdb_get(txn, q->msgs, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0; /* deleted meanwhile: nothing to record */
	if (rc != 0)
		return queue_env_err(rc);
	if (queue_envelope_decode(v.mv_data, v.mv_size, &env) != 0) {
		log_warnx("queue: id %016llx: corrupt record left as it is",
		    (unsigned long long)u->id);
		*status = -EBADMSG;
		return 0;
	}
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
		r->reply = (char *)(uintptr_t)(u->rcpts[i].reply ?
		    u->rcpts[i].reply : "");
	}
	for (size_t i = 0; i < env.nrcpts; i++)
		pending |= env.rcpts[i].state == QUEUE_RCPT_PENDING;
	if (!pending) {
		u->removed = true;
		rc = mdb_del(txn, q->msgs, &k, NULL);
		if (rc == 0)
			rc = mdb_del(txn, q->bodies, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
		rc = rc ? queue_env_err(rc) : 0;
	} else {
		buf_init(&rec, QUEUE_RECORD_MAX);
		rc = queue_envelope_encode(&env, &rec);
		if (rc == 0) {
			v.mv_size = buf_avail(&rec);
			v.mv_data = rec.data + rec.off;
			rc = mdb_put(txn, q->msgs, &k, &v, 0);
			rc = rc ? queue_env_err(rc) : 0;
		} else {
			*status = rc;
			rc = 0;
		}
		buf_fini(&rec);
	}
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

	(void)q;
	u->status = status;
	if (status != 0)
		u->removed = false;
	u->msg.type = QUEUE_DONE_UPDATE;
	chan_send(u->reply, &u->msg);
}
