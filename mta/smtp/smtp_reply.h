/* SPDX-License-Identifier: ISC */
/*
 * smtp_reply.h - the one SMTP reply parser, shared by the delivery client
 * (smtp_out), mta-load and mta-sink's own checks. Pure code: bytes in,
 * complete replies out, no I/O.
 *
 * DESIGN. A reply is one or more lines "CODE-text" ending with a line
 * "CODE text" (or a bare "CODE"). The parser is incremental: the caller
 * hands it whatever recv returned, split anywhere (inside a code, between
 * CR and LF), and it stops right after each complete reply so that
 * pipelined replies can be matched one by one to the commands that caused
 * them (RFC 2920). It keeps at most one partial line and one partial
 * reply, both bounded (SMTP_REPLY_LINE_MAX, SMTP_REPLY_MAX); anything past
 * the bounds or malformed is an error, and the parser stays in error until
 * reset: the client then drops the connection.
 *
 * Lines end in CRLF; a bare LF is tolerated (we are the client, being lax
 * about the server's line ends costs nothing). The enhanced status code
 * (RFC 3463 "class.subject.detail") is taken from the first line when its
 * class matches the reply code's first digit (RFC 2034 section 4).
 *
 * Thread: a parser belongs to the thread of the session that owns it.
 */
#ifndef MTA_SMTP_REPLY_H
#define MTA_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"

#define SMTP_REPLY_LINE_MAX 4096  /* bytes per line, CRLF excluded */
#define SMTP_REPLY_MAX      65536 /* bytes per reply, all lines' text */
#define SMTP_REPLY_ENH_MAX  12    /* "5.999.999" plus NUL, rounded up */

/* A complete reply, as returned by smtp_reply_peek(). */
struct smtp_reply {
	int code;                          /* 200..599 */
	char enhanced[SMTP_REPLY_ENH_MAX]; /* "5.1.1"; "" when none was sent */
	const char *text; /* every line's text after "CODE-"/"CODE ", joined
			      by '\n', NUL-terminated; may hold other NULs */
	size_t len;       /* bytes of text, without the final NUL */
	unsigned nlines;
};

struct smtp_reply_parser {
	struct buf line; /* partial line carried across feeds */
	struct buf text; /* the reply being assembled */
	struct smtp_reply reply;
	int err;   /* sticky: 0 or negative errno */
	bool done; /* reply holds a complete reply */
};

void smtp_reply_init(struct smtp_reply_parser *p);
void smtp_reply_fini(struct smtp_reply_parser *p);
/* Forget any partial line or reply and a sticky error (after STARTTLS,
 * the plaintext state must not leak into the encrypted one). */
void smtp_reply_reset(struct smtp_reply_parser *p);

/*
 * smtp_reply_parse - consume bytes from (data, len) up to and including
 * the end of the next complete reply; *used says how many. Bytes past it
 * are left for the next call: the caller loops until len is used up.
 *
 * Returns 1 when a reply is complete (smtp_reply_peek() has it), 0 when
 * all len bytes were consumed and the reply is not complete yet, or a
 * negative errno, sticky until smtp_reply_reset():
 *	-EMSGSIZE  a line over SMTP_REPLY_LINE_MAX, a reply over SMTP_REPLY_MAX
 *	-EPROTO    a malformed line: not "DDD", "DDD-..." or "DDD ...", a
 *		   code outside 200..599, a continuation code that differs
 */
int smtp_reply_parse(struct smtp_reply_parser *p, const uint8_t *data,
    size_t len, size_t *used) MTA_MUST_CHECK;

/* The last complete reply; borrowed, valid until the next
 * smtp_reply_parse(), smtp_reply_reset() or smtp_reply_fini(). NULL when
 * the last call did not return 1. */
const struct smtp_reply *smtp_reply_peek(const struct smtp_reply_parser *p);

/* Is (p, len) an RFC 3463 code "c.sss.ddd" with c in 2, 4, 5? */
bool smtp_reply_enhanced_valid(const char *p, size_t len);

/* AUTH mechanisms as bits of smtp_ehlo.auth. */
#define SMTP_AUTH_PLAIN    0x01
#define SMTP_AUTH_LOGIN    0x02
#define SMTP_AUTH_CRAM_MD5 0x04
#define SMTP_AUTH_XOAUTH2  0x08

/* What an EHLO reply offers. */
struct smtp_ehlo {
	bool pipelining;
	bool starttls;
	bool eightbitmime;
	bool smtputf8;
	bool enhancedstatuscodes;
	bool dsn;          /* DSN (RFC 3461) */
	bool chunking;     /* CHUNKING (RFC 3030): BDAT */
	bool size;         /* SIZE was advertised */
	uint64_t size_max; /* bytes; 0 = no fixed limit (or none given) */
	unsigned auth;     /* SMTP_AUTH_* bits */
};

/*
 * smtp_ehlo_parse - read the keywords of a 2xx EHLO reply into e (all
 * fields are set). The first line is the server's name and is skipped.
 * Keywords are case-insensitive; unknown ones are ignored; "AUTH=..."
 * (pre-RFC 4954 servers) counts as AUTH. A SIZE argument that is not a
 * number leaves size_max 0.
 */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e);

#endif
