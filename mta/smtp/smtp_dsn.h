/* SPDX-License-Identifier: ISC */
/*
 * smtp_dsn.h - the DSN parameters (RFC 3461) of one receive-side
 * transaction: RET and ENVID from MAIL, NOTIFY and ORCPT from each
 * accepted RCPT, kept as the client sent them (xtext) until they move
 * into the queue request at the end of DATA.
 *
 * DESIGN. Most mail carries no DSN parameter, so the per-recipient
 * arrays are allocated only when the first one appears; a recipient
 * without parameters then gets zero and NULL. Parsing is smtp_parse.c's;
 * this only stores. Thread: the owning session's receive thread.
 */
#ifndef MTA_SMTP_DSN_H
#define MTA_SMTP_DSN_H

#include <stddef.h>
#include <stdint.h>

struct smtp_parse_path;
struct queue_submit;

struct smtp_dsn_tx {
	uint8_t ret;     /* QUEUE_RET_* */
	char *envid;     /* xtext, or NULL */
	uint8_t *notify; /* per recipient, or NULL when none had any */
	char **orcpts;   /* per recipient (NULL entries), or NULL */
	size_t cap;      /* entries allocated in both */
};

/* Forget everything (embedded storage: zeroed, reusable). */
void smtp_dsn_tx_reset(struct smtp_dsn_tx *tx);

/* MAIL was accepted with p's parameters: a new transaction. */
void smtp_dsn_tx_mail(struct smtp_dsn_tx *tx, const struct smtp_parse_path *p);

/* The idx-th recipient (0-based, in acceptance order) was accepted with
 * p's parameters. */
void smtp_dsn_tx_rcpt(
    struct smtp_dsn_tx *tx, size_t idx, const struct smtp_parse_path *p);

/* Move everything into req, whose nrcpts is set (arrays of nrcpts
 * entries, or NULL); tx is reset. */
void smtp_dsn_tx_take(struct smtp_dsn_tx *tx, struct queue_submit *req);

#endif
