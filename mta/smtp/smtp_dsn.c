/* SPDX-License-Identifier: ISC */
/*
 * smtp_dsn.c - a transaction's DSN parameters, from MAIL and RCPT to
 * the queue request (see smtp_dsn.h). Receive thread of the session.
 */
#include "smtp/smtp_dsn.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "queue/queue.h"
#include "smtp/smtp_parse.h"

/* The parser's values are the queue record's: no translation. */
_Static_assert(SMTP_PARSE_RET_FULL == QUEUE_RET_FULL &&
                   SMTP_PARSE_RET_HDRS == QUEUE_RET_HDRS,
    "RET values");
_Static_assert(SMTP_PARSE_NOTIFY_SUCCESS == QUEUE_NOTIFY_SUCCESS &&
                   SMTP_PARSE_NOTIFY_FAILURE == QUEUE_NOTIFY_FAILURE &&
                   SMTP_PARSE_NOTIFY_DELAY == QUEUE_NOTIFY_DELAY &&
                   SMTP_PARSE_NOTIFY_NEVER == QUEUE_NOTIFY_NEVER,
    "NOTIFY bits");

void
smtp_dsn_tx_reset(struct smtp_dsn_tx *tx)
{
	free(tx->envid);
	for (size_t i = 0; tx->orcpts != NULL && i < tx->cap; i++)
		free(tx->orcpts[i]);
	free(tx->orcpts);
	free(tx->notify);
	memset(tx, 0, sizeof(*tx));
}

void
smtp_dsn_tx_mail(struct smtp_dsn_tx *tx, const struct smtp_parse_path *p)
{
	smtp_dsn_tx_reset(tx);
	tx->ret = (uint8_t)p->ret;
	if (p->envid != NULL)
		tx->envid = xstrndup(p->envid, p->envidlen);
}

/* Room for recipient idx in both arrays, new entries zeroed. */
static void
smtp_dsn_tx_grow(struct smtp_dsn_tx *tx, size_t idx)
{
	size_t cap = tx->cap ? tx->cap : 8;

	if (idx < tx->cap)
		return;
	while (cap <= idx)
		cap *= 2;
	tx->notify = xreallocarray(tx->notify, cap, sizeof(*tx->notify));
	tx->orcpts = xreallocarray(tx->orcpts, cap, sizeof(*tx->orcpts));
	memset(tx->notify + tx->cap, 0, (cap - tx->cap) * sizeof(*tx->notify));
	memset(tx->orcpts + tx->cap, 0, (cap - tx->cap) * sizeof(*tx->orcpts));
	tx->cap = cap;
}

void
smtp_dsn_tx_rcpt(
    struct smtp_dsn_tx *tx, size_t idx, const struct smtp_parse_path *p)
{
	if (p->notify == 0 && p->orcpt == NULL)
		return; /* zero/NULL already, or no arrays at all */
	smtp_dsn_tx_grow(tx, idx);
	tx->notify[idx] = p->notify;
	free(tx->orcpts[idx]);
	tx->orcpts[idx] =
	    p->orcpt != NULL ? xstrndup(p->orcpt, p->orcptlen) : NULL;
}

void
smtp_dsn_tx_take(struct smtp_dsn_tx *tx, struct queue_submit *req)
{
	req->ret = tx->ret;
	req->envid = tx->envid;
	tx->envid = NULL;
	if (tx->cap > 0 && req->nrcpts > 0) {
		smtp_dsn_tx_grow(tx, req->nrcpts - 1);
		req->notify = tx->notify;
		req->orcpts = tx->orcpts;
		/* entries past nrcpts (none are set) are not the request's */
		for (size_t i = req->nrcpts; i < tx->cap; i++)
			free(tx->orcpts[i]);
		tx->notify = NULL;
		tx->orcpts = NULL;
		tx->cap = 0;
	}
	smtp_dsn_tx_reset(tx);
}
