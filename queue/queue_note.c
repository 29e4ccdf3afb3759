/* SPDX-License-Identifier: ISC */
/*
 * queue_note.c - the new-message notes the committer sends to its
 * listener (the scheduler): one QUEUE_NOTE_NEW per message that reached
 * the disk, sent from the committer thread after the commit and before
 * the request goes back, so delivery hears of a message before its
 * client hears 250.
 */
#include "queue_int.h"

#include <stdlib.h>

#include "base/chan.h"
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
queue_note_new(struct queue *q, const struct queue_submit *s)
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
	n->env.envid = xstrdup(s->envid ? s->envid : "");
	n->env.ret = s->ret;
	n->env.nrcpts = s->nrcpts;
	n->env.rcpts =
	    xcalloc(s->nrcpts ? s->nrcpts : 1, sizeof(*n->env.rcpts));
	for (size_t i = 0; i < s->nrcpts; i++) {
		n->env.rcpts[i].addr = xstrdup(s->rcpts[i]);
		n->env.rcpts[i].reply = xstrdup("");
		n->env.rcpts[i].notify = s->notify ? s->notify[i] : 0;
		n->env.rcpts[i].orcpt =
		    xstrdup(s->orcpts && s->orcpts[i] ? s->orcpts[i] : "");
	}
	chan_send(q->listener, &n->msg);
}
