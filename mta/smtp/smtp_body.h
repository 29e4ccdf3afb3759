/* SPDX-License-Identifier: ISC */
/*
 * smtp_body.h - the message content of one receive-side transaction: the
 * bytes of DATA (dot-stuffed, ended by CR LF "." CR LF) or of BDAT chunks
 * (raw, counted), turned into the one form the queue stores.
 *
 * DESIGN. Both paths go through one line machine, so a message sent by
 * DATA and the same message sent by BDAT store the same bytes: every line
 * ends in CR LF in the store. A bare LF, or a CR not followed by LF, ends a
 * line too and is stored as CR LF (bare_newline = normalize, as Postfix's
 * smtpd_forbid_bare_newline = normalize for LF; a lone CR is treated the
 * same way, never kept), or is remembered and the message refused at its
 * end (reject). Only CR LF "." CR LF ends DATA: a "." line that begins or
 * ends with a bare line end is content, stored as "." (and stuffed again
 * on the way out). A NUL is remembered (reject) or dropped (strip). Limits
 * are judged after the whole message was read, so the session stays in
 * step with the client; over the size limit or the in-flight budget the
 * bytes are counted and dropped instead of held.
 *
 * This file knows nothing of the session: smtp_in.c calls it, never the
 * other way. Thread: the receive thread that owns the session.
 */
#ifndef MTA_SMTP_BODY_H
#define MTA_SMTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"

#define SMTP_BODY_TEXT_MAX 1000 /* line octets with CRLF, 4.5.3.1.6 */
#define SMTP_BODY_MAX_HOPS 50   /* Received: headers, as Postfix */

/* Where the line machine is within a line. */
enum smtp_body_state {
	SMTP_BODY_BOL,    /* at the start of a line */
	SMTP_BODY_DOT,    /* DATA: "." at the start of a line */
	SMTP_BODY_DOT_CR, /* DATA: ".\r" at the start of a line */
	SMTP_BODY_MID,    /* inside a line */
	SMTP_BODY_CR,     /* after a CR inside a line */
};

/* Why a finished message is refused; in the order they are judged. */
enum smtp_body_fault {
	SMTP_BODY_OK = 0,
	SMTP_BODY_BARE,     /* bare LF/CR with bare_reject: 550 5.5.2 */
	SMTP_BODY_NUL,      /* NUL, not stripped: 554 5.6.0 */
	SMTP_BODY_LONGLINE, /* a line over SMTP_BODY_TEXT_MAX: 500 5.5.2 */
	SMTP_BODY_TOOBIG,   /* over max: 552 5.3.4 */
	SMTP_BODY_NOBUDGET, /* in-flight budget refused: 452 4.3.1 */
	SMTP_BODY_LOOP,     /* too many Received: 554 5.4.6 */
};

struct smtp_body {
	/* Settings, kept by smtp_body_reset(). */
	uint64_t max;     /* message octets, stored form */
	bool bare_reject; /* bare_newline = reject */
	bool nul_strip;   /* nul_in_body = strip */
	/* Global budget of held body bytes (smtp_in_cfg); may be NULL. */
	bool (*reserve)(void *arg, size_t n);
	void (*release)(void *arg, size_t n);
	void *arg;
	/* A tap on the stored message (NULL: none), for a signer that hashes
	 * the body as it streams in: told where the header section is once
	 * its empty line is stored (offsets in buf; not called when the
	 * message has none), then given every stored body byte. */
	void (*tap_headers)(void *arg, size_t start, size_t end);
	void (*tap_body)(void *arg, const uint8_t *p, size_t n);
	void *tap_arg;

	/* The message. */
	struct buf buf;  /* our Received header, then the message */
	size_t reserved; /* budget held, bytes */
	enum smtp_body_state st;
	bool soft;        /* this line began after a bare line end */
	bool headers;     /* still in the header section */
	bool bare;        /* a bare LF or CR was seen */
	bool nul;         /* a NUL was seen */
	bool longline;    /* a line was over SMTP_BODY_TEXT_MAX */
	bool toobig;      /* over max: the rest is dropped */
	bool nobudget;    /* the budget refused: the rest is dropped */
	unsigned hops;    /* Received: headers in the header section */
	size_t linelen;   /* octets of the current line, without its end */
	size_t linestart; /* offset of the current line in buf */
	size_t msgstart;  /* offset of the message in buf (after our header) */
	uint64_t size;    /* message octets, stored form */
};

/*
 * Start a message: take a first slice of the budget and make buf ready
 * for our header (at most hdrmax octets) plus max. False when the budget
 * refuses (nothing is then held). Then the caller appends its header to
 * buf and calls smtp_body_open().
 */
bool smtp_body_begin(struct smtp_body *b, size_t hdrmax) MTA_MUST_CHECK;

/* The header is in buf: the message starts here, its cap is max. */
void smtp_body_open(struct smtp_body *b);

/* Free the message and its budget; the settings stay. Safe to repeat. */
void smtp_body_reset(struct smtp_body *b);

/*
 * DATA bytes: feed (p, n) through the dot-stuffed machine. Returns the
 * bytes used: all of them, or fewer when CR LF "." CR LF ended the
 * message inside (p, n), and then *end is set (it is left alone
 * otherwise).
 */
size_t smtp_body_data(
    struct smtp_body *b, const uint8_t *p, size_t n, bool *end);

/* BDAT chunk bytes: all of (p, n), raw (no dot handling). */
void smtp_body_chunk(struct smtp_body *b, const uint8_t *p, size_t n);

/* After BDAT LAST: a CR or a partial last line at the very end is ended
 * with CR LF, as the DATA path would have stored it. */
void smtp_body_last(struct smtp_body *b);

/* What to refuse the message for, or SMTP_BODY_OK. Faults that drop the
 * body (TOOBIG, NOBUDGET) are known as soon as they happen. */
enum smtp_body_fault smtp_body_fault(const struct smtp_body *b);

#endif
