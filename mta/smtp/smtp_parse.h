/* SPDX-License-Identifier: ISC */
/*
 * smtp_parse.h - pure parsers for the receive side of SMTP: command lines,
 * MAIL/RCPT paths and their parameters, base64 and xtext.
 *
 * DESIGN. Every function reads (ptr, len) and writes only its out
 * arguments: no allocation, no I/O, no global state, so the session, the
 * unit tests and the fuzzer call them the same way. Input is never a C
 * string: a command line may hold any byte, so lengths are explicit and
 * out pointers point into the caller's input (valid as long as it is).
 *
 * Syntax is RFC 5321 4.1.2 (Path, Mailbox, Dot-string, Quoted-string,
 * address literals) with the limits of 4.5.3.1, widened by RFC 6531 to
 * UTF-8 when the client asked for SMTPUTF8. Source routes (<@a,@b:x@y>)
 * are accepted and dropped, as RFC 5321 4.1.2 requires of a server.
 *
 * Thread: any; the functions are reentrant.
 */
#ifndef MTA_SMTP_PARSE_H
#define MTA_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compat.h"

#define SMTP_PARSE_LOCAL_MAX  64  /* octets, RFC 5321 4.5.3.1.1 */
#define SMTP_PARSE_DOMAIN_MAX 255 /* octets, RFC 5321 4.5.3.1.2 */
#define SMTP_PARSE_PATH_MAX   256 /* octets with "<" and ">", 4.5.3.1.3 */

/* Why a parse failed; each maps to one reply in smtp_in.c. */
enum smtp_parse_status {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_SYNTAX,  /* "FROM:"/"TO:" or <...> malformed: 501 5.5.4 */
	SMTP_PARSE_ADDRESS, /* the mailbox itself is invalid: 501 5.1.x */
	SMTP_PARSE_TOOLONG, /* local part, domain or path too long */
	SMTP_PARSE_PARAM_UNKNOWN, /* 555 5.5.4 */
	SMTP_PARSE_PARAM_BAD,     /* known parameter, bad value: 501 5.5.4 */
};

/* A command line split into its verb and argument. */
struct smtp_parse_cmd {
	const char *verb; /* points into the line */
	size_t verblen;
	const char *arg; /* after the separating space(s); trailing blanks
			     trimmed; len 0 when there is none */
	size_t arglen;
};

enum smtp_parse_body {
	SMTP_PARSE_BODY_NONE = 0, /* not declared */
	SMTP_PARSE_BODY_7BIT,
	SMTP_PARSE_BODY_8BITMIME,
};

/* DSN (RFC 3461): what RET= asked for, and the NOTIFY= bits. The values
 * are those of the queue record (QUEUE_RET_*, QUEUE_NOTIFY_*). */
enum smtp_parse_ret {
	SMTP_PARSE_RET_NONE = 0, /* not given */
	SMTP_PARSE_RET_FULL,
	SMTP_PARSE_RET_HDRS,
};

#define SMTP_PARSE_NOTIFY_SUCCESS 0x1
#define SMTP_PARSE_NOTIFY_FAILURE 0x2
#define SMTP_PARSE_NOTIFY_DELAY   0x4
#define SMTP_PARSE_NOTIFY_NEVER   0x8

#define SMTP_PARSE_ENVID_MAX 100 /* characters of xtext, RFC 3461 4.4 */
#define SMTP_PARSE_ORCPT_MAX 500 /* characters, RFC 3461 4.2 */

/* MAIL FROM or RCPT TO, parsed. */
struct smtp_parse_path {
	const char *addr; /* mailbox without <> and without a source route;
			      points into the line; len 0 for <> */
	size_t addrlen;
	bool has_size; /* SIZE= given (MAIL) */
	uint64_t size; /* declared SIZE, bytes */
	enum smtp_parse_body body;
	bool smtputf8; /* SMTPUTF8 given (MAIL) */
	bool has_auth; /* AUTH= given (MAIL); the value is not kept */
	/* DSN parameters (RFC 3461), kept as sent (xtext), pointing into
	 * the line; len 0 when not given. */
	enum smtp_parse_ret ret; /* RET= (MAIL) */
	const char *envid;       /* ENVID= (MAIL) */
	size_t envidlen;
	uint8_t notify;    /* NOTIFY= (RCPT): SMTP_PARSE_NOTIFY_*; 0 none */
	const char *orcpt; /* ORCPT= (RCPT): "addr-type;xtext" */
	size_t orcptlen;
};

/*
 * smtp_parse_command - split (line, len), without its CRLF, at the first
 * space into verb and argument. The verb must be 1..16 ASCII letters (or
 * digits after the first letter). Returns false when it is not.
 */
bool smtp_parse_command(
    const char *line, size_t len, struct smtp_parse_cmd *out) MTA_MUST_CHECK;

/* Is (verb, len) equal to name, ignoring ASCII case? */
bool smtp_parse_verb_is(const struct smtp_parse_cmd *cmd, const char *name);

/*
 * smtp_parse_mail - parse the argument of MAIL: `FROM:<path> [params]`,
 * "FROM:" in any case, optionally followed by one space. Accepts the null
 * sender <>. Parameters: SIZE=digits, BODY=7BIT|8BITMIME, SMTPUTF8,
 * AUTH=xtext|<>, RET=FULL|HDRS and ENVID=xtext (at most
 * SMTP_PARSE_ENVID_MAX characters); each at most once. UTF-8 in the mailbox only when
 * SMTPUTF8 is among the parameters. Fills out on SMTP_PARSE_OK; out is
 * undefined otherwise.
 */
enum smtp_parse_status smtp_parse_mail(
    const char *arg, size_t len, struct smtp_parse_path *out) MTA_MUST_CHECK;

/*
 * smtp_parse_rcpt - parse the argument of RCPT: `TO:<path> [params]`.
 * The null path is refused (SMTP_PARSE_ADDRESS) and so is a mailbox
 * without a domain (there are no local mailboxes here). Parameters
 * (RFC 3461): NOTIFY=NEVER or a list of SUCCESS, FAILURE and DELAY
 * (each once), ORCPT=addr-type;xtext (at most SMTP_PARSE_ORCPT_MAX
 * characters); each at most once; bad values are SMTP_PARSE_PARAM_BAD,
 * any other parameter SMTP_PARSE_PARAM_UNKNOWN. utf8: the transaction
 * was opened with SMTPUTF8.
 */
enum smtp_parse_status smtp_parse_rcpt(const char *arg, size_t len, bool utf8,
    struct smtp_parse_path *out) MTA_MUST_CHECK;

/*
 * smtp_parse_mailbox - validate a bare mailbox (local@domain), without
 * brackets. Returns SMTP_PARSE_OK, SMTP_PARSE_ADDRESS or
 * SMTP_PARSE_TOOLONG.
 */
enum smtp_parse_status smtp_parse_mailbox(
    const char *p, size_t len, bool utf8) MTA_MUST_CHECK;

/* Is the domain of mailbox (p, len) (after its last '@') an address
 * literal, "[192.0.2.1]" or "[IPv6:...]"? */
bool smtp_parse_addr_literal(const char *p, size_t len);

/* Is (p, len) a valid xtext (RFC 3461 4), as in AUTH=? */
bool smtp_parse_xtext(const char *p, size_t len);

/*
 * smtp_parse_base64 - strict RFC 4648 base64 decode of (in, len) into
 * out[outmax]: length a multiple of 4, no whitespace, '=' only as final
 * padding, unused bits zero. Returns the decoded length, or -EINVAL for
 * malformed input, or -ENOBUFS when it does not fit in outmax. An empty
 * input decodes to 0 bytes.
 */
int smtp_parse_base64(
    const char *in, size_t len, uint8_t *out, size_t outmax) MTA_MUST_CHECK;

/* Encoded length of n bytes, without NUL. */
size_t smtp_parse_base64_len(size_t n);
/* Encode (in, n) into out, which holds smtp_parse_base64_len(n) + 1 bytes;
 * NUL-terminates. For tests and for AUTH prompts. */
void smtp_parse_base64_encode(const uint8_t *in, size_t n, char *out);

/*
 * smtp_parse_bdat - the argument of BDAT (RFC 3030): `1*DIGIT [SP "LAST"]`,
 * LAST in any case, one or more spaces between. Sets *size (octets of the
 * chunk) and *last. False on any other form or a count over UINT64_MAX.
 */
bool smtp_parse_bdat(
    const char *arg, size_t len, uint64_t *size, bool *last) MTA_MUST_CHECK;

/*
 * smtp_parse_plain_lines - the fast path through message data: the length
 * of the longest prefix of (p, n) made of whole lines that need no
 * care, each ending in CR LF, holding no other CR or LF, not starting with
 * "." and at most maxline bytes long with its CR LF. 0 when the first line
 * is not one (or is not complete): the caller takes it byte by byte. Such
 * lines pass through DATA unchanged in both directions, so a caller copies
 * the prefix at once. Word-sized scans (memchr), not a loop per byte.
 */
size_t smtp_parse_plain_lines(const uint8_t *p, size_t n, size_t maxline);

#endif
