/* SPDX-License-Identifier: ISC */
/*
 * local_msg.h - the message of a local submission (`mta sendmail`, the
 * maildrop): pure functions over buffers, no I/O, so tests drive them
 * without a relay.
 *
 * A local program hands sendmail text with LF line ends, a header
 * section it may have left incomplete, and (with -t) its recipients in
 * To/Cc/Bcc. These turn that into what SMTP would carry: CR LF lines,
 * the header section checked as SMTP's limits check it (line length,
 * field syntax), Bcc removed, From/Date/Message-ID added when missing
 * (Postfix does the same for local submissions). The maildrop file
 * format (envelope + message) is encoded and decoded here too, so the
 * writer (cli/cmd_sendmail.c) and the importer (receive/maildrop.c)
 * share one definition of it.
 *
 * Thread: any; nothing here has state.
 */
#ifndef MTA_SMTP_LOCAL_MSG_H
#define MTA_SMTP_LOCAL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"

#define LOCAL_MSG_LINE_MAX 1000 /* a line with its CR LF, as SMTP's DATA */
#define LOCAL_MSG_ADDR_MAX 512  /* an address from a header, bytes */

/*
 * local_msg_crlf - append the text (in, n) to out as CR LF lines: LF,
 * CR LF and a lone CR each end one line (a lone CR is never passed on:
 * SMTP forbids it). A last line without an end gets one. dot_ends
 * (sendmail without -i): a line of a single "." ends the text; *used
 * (may be NULL) says how many input bytes were taken. Returns 0, or
 * -ENOBUFS when out's max is reached (out then holds a prefix).
 */
int local_msg_crlf(const uint8_t *in, size_t n, bool dot_ends, struct buf *out,
    size_t *used) MTA_MUST_CHECK;

/* What local_msg_scan found in a CR LF message. */
struct local_msg_hdrs {
	size_t skip;   /* bytes of a leading mbox "From " line, dropped */
	size_t end;    /* offset just past the header fields (the blank line
			 that follows them, if any, is not counted) */
	bool blank;    /* a blank line follows the fields */
	bool from;     /* a From: field is present */
	bool date;     /* Date: */
	bool msgid;    /* Message-ID: */
	unsigned rcvd; /* Received: fields (the hop count) */
};

/*
 * local_msg_scan - check a CR LF message (m, n) as SMTP would take it,
 * and find its header section: every line at most LOCAL_MSG_LINE_MAX
 * bytes with its CR LF; the header section is the lines from the start
 * to the first blank line, each a field "NAME:" (NAME printable ASCII
 * without ':') or a continuation (starting with a blank). A first line
 * that is not a field means the message has no header section (end 0):
 * it is all body. A later line that is neither is refused. Returns 0, or
 * -EINVAL with the reason in why ("line 3 is longer than 998
 * characters", "line 2: malformed header field").
 */
int local_msg_scan(const uint8_t *m, size_t n, struct local_msg_hdrs *h,
    char *why, size_t whylen) MTA_MUST_CHECK;

/*
 * local_msg_rcpts - each address of the To:, Cc: and Bcc: fields of the
 * header section m[0..end) (from local_msg_scan): address lists with
 * display names, comments, quoted strings and groups (RFC 5322 3.4).
 * cb(arg, addr) gets the addr-spec as written, NUL-terminated, borrowed
 * for the call; it returns 0 to go on, or non-zero to stop (that value is
 * returned). Returns 0, or -ENAMETOOLONG for an address over
 * LOCAL_MSG_ADDR_MAX bytes.
 */
int local_msg_rcpts(const uint8_t *m, size_t end,
    int (*cb)(void *arg, const char *addr), void *arg) MTA_MUST_CHECK;

/*
 * local_msg_rewrite - append to out the message m (n bytes, scanned into
 * h) without its Bcc: fields (with their continuation lines) and its
 * mbox "From " line, with add (CR LF header lines, may be "") appended to
 * the header section and a blank line after it when it had none.
 * Returns 0, or -ENOBUFS (out's max).
 */
int local_msg_rewrite(const uint8_t *m, size_t n,
    const struct local_msg_hdrs *h, const char *add,
    struct buf *out) MTA_MUST_CHECK;

/*
 * The maildrop file: "MTA-MAILDROP 1\n", "F <sender>\n" (<> for the null
 * sender), one "R <rcpt>\n" per recipient, "\n", then the CR LF message,
 * not dot-stuffed. Addresses must hold no control character.
 */
int local_msg_drop_encode(const char *from, char *const *rcpts, size_t n,
    const uint8_t *msg, size_t len, struct buf *out) MTA_MUST_CHECK;

struct local_msg_drop {
	char *from;   /* owned; "" for <> */
	char **rcpts; /* owned */
	size_t nrcpts;
	const uint8_t *msg; /* borrowed from the decoded bytes */
	size_t len;
};

/*
 * local_msg_drop_decode - parse a maildrop file (p, n) into d (the
 * caller finis it, also on failure). At most max_rcpts recipients.
 * Addresses are only split here; the caller validates them. Returns 0,
 * or -EINVAL with the reason in why.
 */
int local_msg_drop_decode(const uint8_t *p, size_t n, size_t max_rcpts,
    struct local_msg_drop *d, char *why, size_t whylen) MTA_MUST_CHECK;
void local_msg_drop_fini(struct local_msg_drop *d);

#endif
