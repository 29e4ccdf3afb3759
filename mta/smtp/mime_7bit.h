/* SPDX-License-Identifier: ISC */
/*
 * mime_7bit.h - the 8-bit to 7-bit downgrade of a message (RFC 6152
 * section 3, RFC 2045), for a next hop that does not offer 8BITMIME.
 *
 * Pure code over buffers: no I/O, no allocation but the caller's output
 * buffer, so the unit test calls it directly. Two callers, each on its
 * own thread: the DKIM signer, which makes an 8-bit message 7-bit before
 * signing it, so that no next hop can break the signature; and the
 * delivery worker, once per job that needs it, for unsigned mail.
 *
 * DESIGN. MIME-aware and minimal: an entity (the message, or one body
 * part) without 8-bit bytes is copied byte for byte. A leaf part with
 * 8-bit bytes in its body and Content-Transfer-Encoding 7bit, 8bit,
 * binary or none has its body re-encoded quoted-printable (lines of at
 * most 76 characters, soft breaks, trailing white space and '=' encoded)
 * and that one header field rewritten (or added). multipart parts are
 * walked by their boundaries, nested; a composite whose encoding says
 * 8bit or binary is relabelled 7bit. A message without MIME-Version
 * becomes text/plain, charset utf-8 when its body is valid UTF-8 and
 * unknown-8bit when it is not, quoted-printable. What cannot be made
 * 7-bit this way fails, for a 5.6.3 bounce: 8-bit bytes in a header
 * field (no RFC 2047 encoding is attempted), in a message (message/...) part, in a
 * part that claims quoted-printable or base64, in a multipart's preamble
 * or epilogue, or a multipart without a boundary. Lines keep their ends
 * (CRLF; a bare LF in a re-encoded body becomes CRLF). A line that is a
 * lone "." is left as it is: dot-stuffing is the SMTP client's job.
 */
#ifndef MTA_SMTP_MIME_7BIT_H
#define MTA_SMTP_MIME_7BIT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"

enum mime_7bit_status {
	MIME_7BIT_OK,      /* out holds the 7-bit message */
	MIME_7BIT_HEADER,  /* 8-bit bytes in a header field */
	MIME_7BIT_MESSAGE, /* 8-bit bytes inside a message (message/...) part */
	MIME_7BIT_ENCODED, /* 8-bit bytes in a base64 or QP part */
	MIME_7BIT_STRUCTURE, /* multipart without boundary, 8-bit preamble
				or epilogue, nesting over MIME_7BIT_DEPTH */
	MIME_7BIT_TOO_BIG,   /* the result would not fit in out->max */
};

#define MIME_7BIT_DEPTH 32 /* nested multiparts, at most */

/*
 * mime_7bit_convert - append to out the 7-bit form of the message in
 * [in, in + len) (header, empty line, body). out is the caller's,
 * initialised (buf_init) with a max of its choice: mime_7bit_bound(len)
 * always suffices. Returns MIME_7BIT_OK, or why the message cannot be
 * converted (out then holds a partial result: discard it).
 */
enum mime_7bit_status mime_7bit_convert(
    const uint8_t *in, size_t len, struct buf *out) MTA_MUST_CHECK;

/* An out->max that any input of len bytes fits in (saturates at
 * SIZE_MAX). */
size_t mime_7bit_bound(size_t len);

/* Why, in words for a bounce ("8-bit header"...). Static strings. */
const char *mime_7bit_reason(enum mime_7bit_status st);

#endif
