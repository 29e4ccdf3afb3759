/* SPDX-License-Identifier: ISC */
/*
 * dsn.h - RFC 3464 delivery status notifications (bounces and delay
 * warnings), built as complete RFC 5322 messages.
 *
 * DESIGN. A DSN is a multipart/report (RFC 6522) with three parts: a
 * human-readable text/plain explanation, the machine-readable
 * message/delivery-status (one per-message block, then one block per
 * recipient), and the original message's header section as
 * text/rfc822-headers (not the body: a bounce does not carry a copy of
 * the mail back, and it keeps DSNs small), or the whole message as
 * message/rfc822 when the sender asked for it (RET=FULL, RFC 3461 4.3).
 * The sender's ENVID and ORCPT (RFC 3461, xtext) are decoded into
 * Original-Envelope-Id and Original-Recipient; a decoded byte that is not
 * printable ASCII stays encoded, so they cannot break a field either.
 * The notification is from the
 * null sender (<> in the envelope, which the caller sets), so it can never
 * cause another one; it is marked Auto-Submitted: auto-replied (RFC 3834).
 *
 * Everything here is pure: no I/O, no clock, no allocation beyond the
 * output buffer and scratch memory; time, ids and the hostname come in
 * as arguments, so every byte of the output is unit tested. Output lines
 * end in CRLF and are at most 998 octets (RFC 5322 2.1.1): long
 * diagnostic text is folded, and anything that cannot be folded is cut.
 * Peer-supplied text (remote replies) has its control characters replaced
 * by spaces, so a reply cannot inject header fields or MIME structure.
 * Any thread.
 */
#ifndef MTA_DSN_H
#define MTA_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"

#define DSN_HEADERS_MAX (64u * 1024) /* bytes of original headers kept */
#define DSN_LINE_MAX    998          /* octets per line, without CRLF */

enum dsn_action {
	DSN_ACTION_FAILED,  /* permanent failure or expiry: given up */
	DSN_ACTION_DELAYED, /* still being retried (delay warning) */
	DSN_ACTION_RELAYED, /* handed to a host that does not offer DSN
			       (NOTIFY=SUCCESS, RFC 3464 2.3.3) */
};

struct dsn_rcpt {
	const char *addr; /* final recipient, without <> */
	enum dsn_action action;
	const char *status;       /* RFC 3463 code, e.g. "5.1.1"; replaced by
				     X.0.0 when missing or malformed */
	const char *reply;        /* remote reply ("550 5.1.1 ...") or local
				     reason; NULL or "" = none */
	const char *relay;        /* "host[ip]:port" as logged, or NULL/"" */
	uint64_t last_attempt_ms; /* wall ms; 0 = omit Last-Attempt-Date */
	uint64_t retry_until_ms;  /* wall ms, delayed only; 0 = omit */
	const char *orcpt;        /* DSN ORCPT "type;xtext", or NULL/"" */
};

struct dsn_msg {
	const char *hostname;   /* Reporting-MTA and MAILER-DAEMON@ */
	uint64_t orig_id;       /* the original message's queue id */
	const char *orig_from;  /* its envelope sender: the DSN's To */
	uint64_t received_ms;   /* its arrival, wall ms */
	uint64_t dsn_id;        /* the DSN's own queue id (Message-ID) */
	uint64_t now_ms;        /* Date */
	const uint8_t *headers; /* original header section, or NULL */
	size_t headers_len;     /* bytes; see dsn_headers_len() */
	bool full;              /* headers is the whole message (RET=FULL) */
	const char *envid;      /* DSN ENVID (xtext), or NULL/"" */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts; /* >= 1 */
};

/*
 * dsn_build - append the complete DSN message (header section and body,
 * CRLF line ends) for m to out. Every pointer in m is borrowed for the
 * call. A recipient list mixing failed and delayed entries gives one
 * report with each recipient's own Action. The MIME boundary is checked
 * against every part and changed until it occurs in none. Returns 0,
 * -EINVAL (no recipients, or a NULL hostname/address), or -ENOBUFS (over
 * out's max; out may then hold a partial message and must be discarded).
 * Pure; any thread.
 */
int dsn_build(const struct dsn_msg *m, struct buf *out) MTA_MUST_CHECK;

/*
 * dsn_headers_len - the length of the header section at the start of a
 * stored message (body, len): every complete header line up to, not
 * including, the empty line that ends it (or up to the end when there is
 * no empty line), cut back to the last complete line within max bytes.
 * Returns a length <= min(len, max). Pure.
 */
size_t dsn_headers_len(const uint8_t *body, size_t len, size_t max);

/*
 * dsn_reply_is_smtp - does text start with an SMTP reply code ("550 ...",
 * "451-...", "421")? True for remote replies as the delivery workers
 * record them, false for local reasons (DNS errors, timeouts). Decides
 * Diagnostic-Code (RFC 3464 2.3.6, type "smtp"). Pure.
 */
bool dsn_reply_is_smtp(const char *text);

#endif
