/* SPDX-License-Identifier: ISC */
/*
 * dsn.c - RFC 3464 delivery status notifications (see dsn.h).
 *
 * The three parts are rendered into scratch buffers first; only then is a
 * boundary chosen, by trying candidates until one occurs in no part. The
 * boundary is derived from the DSN's own id, so the output stays a pure
 * function of the input.
 *
 * Every line holding variable text goes through dsn_fold(), which owns
 * the two line-length rules: break at spaces near 78 columns (RFC 5322
 * 2.1.1 SHOULD) and never exceed 998 octets (MUST), cutting a word that
 * has no space to break at. Fixed-shape lines use dsn_addf().
 */
#include "deliver/dsn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/str.h"

#define DSN_SOFT_WIDTH 78
#define DSN_PART_MAX   ((size_t)16 << 20) /* bytes, scratch cap per part */

/* A buffer with a sticky error, so a renderer checks once at the end. */
struct dsn_out {
	struct buf *b;
	int rc;
};

static void
dsn_add(struct dsn_out *o, const void *p, size_t n)
{
	if (o->rc == 0)
		o->rc = buf_append(o->b, p, n);
}

static void
dsn_adds(struct dsn_out *o, const char *s)
{
	dsn_add(o, s, strlen(s));
}

static void dsn_addf(struct dsn_out *o, const char *fmt, ...) MTA_PRINTF(2, 3);

/* Short fixed-shape lines only (dates, ids, codes): a line that would not
 * fit is an internal error, reported as -ENOBUFS. */
static void
dsn_addf(struct dsn_out *o, const char *fmt, ...)
{
	char line[DSN_LINE_MAX + 3];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		if (o->rc == 0)
			o->rc = -ENOBUFS;
		return;
	}
	dsn_add(o, line, (size_t)n);
}

bool
dsn_reply_is_smtp(const char *t)
{
	if (t == NULL || t[0] < '2' || t[0] > '5' || t[1] < '0' || t[1] > '9' ||
	    t[2] < '0' || t[2] > '9')
		return false;
	return t[3] == '\0' || t[3] == ' ' || t[3] == '-';
}

size_t
dsn_headers_len(const uint8_t *body, size_t len, size_t max)
{
	size_t lim = len < max ? len : max;
	size_t end = 0; /* just past the last complete line seen */

	for (size_t i = 0; i < lim; i++) {
		if (body[i] != '\n')
			continue;
		/* an empty line (LF or CRLF alone) ends the header section */
		if (i == end || (i == end + 1 && body[end] == '\r'))
			return end;
		end = i + 1;
	}
	/* no empty line: all of it is headers if it fits, else whole lines */
	return len <= max ? len : end;
}

/* RFC 3463: class.subject.detail, 1-3 digits each, class 2, 4 or 5. */
static bool
dsn_status_valid(const char *s)
{
	int part = 0, digits = 0;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	for (s += 2; *s; s++) {
		if (*s >= '0' && *s <= '9') {
			if (++digits > 3)
				return false;
		} else if (*s == '.' && digits > 0 && part == 0) {
			part++;
			digits = 0;
		} else {
			return false;
		}
	}
	return part == 1 && digits > 0;
}

/* The Status to report: failed is 5.x.x or 4.x.x (expiry keeps the last
 * temporary code's class, as 4.4.7 does), delayed is always 4.x.x. */
static const char *
dsn_status(const struct dsn_rcpt *r)
{
	if (r->action == DSN_ACTION_RELAYED)
		return dsn_status_valid(r->status) && r->status[0] == '2'
		           ? r->status
		           : "2.0.0";
	if (r->action == DSN_ACTION_DELAYED)
		return dsn_status_valid(r->status) && r->status[0] == '4'
		           ? r->status
		           : "4.0.0";
	return dsn_status_valid(r->status) && r->status[0] != '2' ? r->status
	                                                          : "5.0.0";
}

/* Peer text made safe for a header field or a text line: every control
 * byte (CR and LF included) becomes a space. Bytes >= 0x80 stay (UTF-8
 * replies under SMTPUTF8); the part then says 8bit. */
static void
dsn_clean(const char *src, char *dst, size_t dstlen)
{
	size_t i;

	for (i = 0; src != NULL && src[i] != '\0' && i + 1 < dstlen; i++) {
		bool ctl = (unsigned char)src[i] < 0x20 || src[i] == 0x7f;

		dst[i] = ctl ? ' ' : src[i];
	}
	if (dstlen > 0)
		dst[i] = '\0';
}

/*
 * xtext (RFC 3461 4) decoded for a report field: "+HH" becomes its byte
 * when that is printable ASCII (a space included) and stays "+HH" otherwise
 * (a CR, LF or NUL never reaches the field); other bytes are copied, and
 * control bytes (which valid xtext never holds) become spaces. Cut to
 * fit dst.
 */
static int
dsn_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
dsn_xtext(const char *x, char *dst, size_t dstlen)
{
	size_t o = 0;

	for (size_t i = 0; x != NULL && x[i] != '\0' && o + 4 < dstlen; i++) {
		int hi = x[i] == '+' ? dsn_hex(x[i + 1]) : -1;
		int lo = hi >= 0 ? dsn_hex(x[i + 2]) : -1;
		int v = hi * 16 + lo;

		if (lo >= 0 && v >= 0x20 && v < 0x7f) {
			dst[o++] = (char)v;
			i += 2;
		} else {
			bool ctl = (unsigned char)x[i] < 0x20 || x[i] == 0x7f;

			dst[o++] = ctl ? ' ' : x[i];
		}
	}
	if (dstlen > 0)
		dst[o] = '\0';
}

/*
 * Append prefix then text as lines: text is split at spaces to keep lines
 * near DSN_SOFT_WIDTH, each continuation line starts with cont (a space
 * or tab for header fields: unfolding then restores the text; spaces for
 * the text part), and a word too long for DSN_LINE_MAX is cut across
 * lines. Ends with CRLF. prefix and cont must be short.
 */
static void
dsn_fold(
    struct dsn_out *o, const char *prefix, const char *text, const char *cont)
{
	size_t col = strlen(prefix), base = col, clen = strlen(cont);
	const char *p = text;

	dsn_adds(o, prefix);
	for (;;) {
		size_t w, room;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (w = 0; p[w] != '\0' && p[w] != ' '; w++)
			;
		/* a space before the word, unless the line is still empty */
		if (col > base && col + 1 + w > DSN_SOFT_WIDTH) {
			dsn_add(o, "\r\n", 2);
			dsn_adds(o, cont);
			col = base = clen;
		} else if (col > base) {
			dsn_add(o, " ", 1);
			col++;
		}
		/* a word that no line can hold is cut at the hard limit */
		while (w > (room = DSN_LINE_MAX - col)) {
			dsn_add(o, p, room);
			dsn_add(o, "\r\n", 2);
			dsn_adds(o, cont);
			p += room;
			w -= room;
			col = base = clen;
		}
		dsn_add(o, p, w);
		p += w;
		col += w;
	}
	dsn_add(o, "\r\n", 2);
}

/* "mx.example[192.0.2.1]:25" -> "mx.example" in host[hostlen]. */
static void
dsn_relay_host(const char *relay, char *host, size_t hostlen)
{
	const char *b = strchr(relay, '[');

	str_ncopy(
	    host, hostlen, relay, b ? (size_t)(b - relay) : strlen(relay));
}

static bool
dsn_any(const struct dsn_msg *m, enum dsn_action a)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].action == a)
			return true;
	return false;
}

static bool
dsn_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] & 0x80)
			return true;
	return false;
}

/* Part 1: what happened, for a person. */
static void
dsn_render_text(const struct dsn_msg *m, struct dsn_out *o)
{
	char date[64], id[32], addr[1024], reply[2048], host[300], line[3000];
	bool failed = dsn_any(m, DSN_ACTION_FAILED);
	bool delayed = dsn_any(m, DSN_ACTION_DELAYED);
	bool relayed = dsn_any(m, DSN_ACTION_RELAYED);

	clock_rfc5322(m->received_ms, date, sizeof(date));
	(void)str_fmt(id, sizeof(id), "%016" PRIx64, m->orig_id);
	dsn_addf(
	    o, "This is the mail delivery system at %s.\r\n\r\n", m->hostname);
	if (failed) {
		dsn_adds(o, "Your message could not be delivered to the "
		            "recipients listed below.\r\n");
		dsn_adds(o, "This is a permanent error: the mail system "
		            "has given up on them.\r\n");
	}
	if (delayed) {
		if (failed)
			dsn_add(o, "\r\n", 2);
		dsn_adds(o,
		    "Your message has not yet been delivered to "
		    "the recipients listed below\r\nas delayed. The mail "
		    "system keeps trying; you do not need to send it\r\n"
		    "again. You will be told if it finally fails.\r\n");
	}
	if (relayed) {
		if (failed || delayed)
			dsn_add(o, "\r\n", 2);
		dsn_adds(o, "Your message was delivered to the mail system "
		            "named below for the recipients\r\nlisted below. "
		            "That system does not report delivery, so this is "
		            "the\r\nlast notice you will get about them.\r\n");
	}
	dsn_add(o, "\r\n", 2);
	dsn_addf(o, "The message was received on %s\r\n", date);
	dsn_addf(o, "with queue id %s. %s attached.\r\n", id,
	    m->full ? "It is" : "Its headers are");
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct dsn_rcpt *r = &m->rcpts[i];
		const char *what;

		if (r->action == DSN_ACTION_RELAYED)
			what =
			    "relayed to a host that does not report delivery";
		else if (r->action == DSN_ACTION_DELAYED)
			what = "delivery delayed, still trying";
		else if (dsn_status(r)[0] == '4')
			what = "delivery time expired, given up";
		else
			what = "delivery failed";
		dsn_clean(r->addr, addr, sizeof(addr));
		dsn_clean(r->reply, reply, sizeof(reply));
		dsn_add(o, "\r\n", 2);
		(void)str_fmt(line, sizeof(line), "<%s>: %s (%s)", addr, what,
		    dsn_status(r));
		dsn_fold(o, "", line, "    ");
		if (r->relay != NULL && r->relay[0] != '\0' &&
		    dsn_reply_is_smtp(r->reply)) {
			dsn_clean(r->relay, host, sizeof(host));
			(void)str_fmt(line, sizeof(line), "host %s said: %s",
			    host, reply);
		} else if (reply[0] != '\0') {
			str_copy(line, sizeof(line), reply);
		} else {
			str_copy(line, sizeof(line), "(no reason recorded)");
		}
		dsn_fold(o, "    ", line, "    ");
	}
}

/* Part 2: RFC 3464 section 2, one block per message, one per recipient;
 * blocks are separated by an empty line. */
static void
dsn_render_status(const struct dsn_msg *m, struct dsn_out *o)
{
	static const char *const action[] = {
	    [DSN_ACTION_FAILED] = "failed",
	    [DSN_ACTION_DELAYED] = "delayed",
	    [DSN_ACTION_RELAYED] = "relayed",
	};
	char date[64], buf[2048], host[300];

	if (m->envid != NULL && m->envid[0] != '\0') {
		dsn_xtext(m->envid, buf, sizeof(buf));
		dsn_fold(o, "Original-Envelope-Id: ", buf, " ");
	}
	dsn_addf(o, "Reporting-MTA: dns; %s\r\n", m->hostname);
	dsn_addf(o, "X-Mta-Queue-ID: %016" PRIx64 "\r\n", m->orig_id);
	clock_rfc5322(m->received_ms, date, sizeof(date));
	dsn_addf(o, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct dsn_rcpt *r = &m->rcpts[i];

		dsn_add(o, "\r\n", 2);
		if (r->orcpt != NULL && r->orcpt[0] != '\0') {
			dsn_xtext(r->orcpt, buf, sizeof(buf));
			dsn_fold(o, "Original-Recipient: ", buf, " ");
		}
		dsn_clean(r->addr, buf, sizeof(buf));
		dsn_fold(o, "Final-Recipient: rfc822; ", buf, " ");
		dsn_addf(o, "Action: %s\r\n", action[r->action]);
		dsn_addf(o, "Status: %s\r\n", dsn_status(r));
		if (r->relay != NULL && r->relay[0] != '\0') {
			dsn_relay_host(r->relay, buf, sizeof(buf));
			dsn_clean(buf, host, sizeof(host));
			if (host[0] != '\0')
				dsn_fold(o, "Remote-MTA: dns; ", host, " ");
		}
		if (dsn_reply_is_smtp(r->reply)) {
			dsn_clean(r->reply, buf, sizeof(buf));
			dsn_fold(o, "Diagnostic-Code: smtp; ", buf, " ");
		}
		if (r->last_attempt_ms) {
			clock_rfc5322(r->last_attempt_ms, date, sizeof(date));
			dsn_addf(o, "Last-Attempt-Date: %s\r\n", date);
		}
		if (r->action == DSN_ACTION_DELAYED && r->retry_until_ms) {
			clock_rfc5322(r->retry_until_ms, date, sizeof(date));
			dsn_addf(o, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

/* Part 3: the original header lines, each ending in CRLF; a stray bare
 * LF ends a line too and an over-long line is cut, so the part is valid
 * whatever was stored. */
static void
dsn_render_headers(const struct dsn_msg *m, struct dsn_out *o)
{
	const uint8_t *p = m->headers;
	size_t n = m->headers ? m->headers_len : 0;

	while (n > 0) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t line = nl ? (size_t)(nl - p) : n;
		size_t eat = nl ? line + 1 : n;

		if (line > 0 && p[line - 1] == '\r')
			line--;
		if (line > DSN_LINE_MAX)
			line = DSN_LINE_MAX;
		/* a bare CR inside a line becomes a space */
		for (size_t i = 0, j; i < line; i = j + 1) {
			const uint8_t *cr = memchr(p + i, '\r', line - i);

			j = cr ? (size_t)(cr - p) : line;
			dsn_add(o, p + i, j - i);
			if (j < line)
				dsn_add(o, " ", 1);
		}
		dsn_add(o, "\r\n", 2);
		p += eat;
		n -= eat;
	}
}

static bool
dsn_contains(const struct buf *b, const char *s)
{
	return buf_avail(b) > 0 &&
	       memmem(buf_peek(b), buf_avail(b), s, strlen(s)) != NULL;
}

static void
dsn_part(struct dsn_out *o, const char *boundary, const char *desc,
    const char *type, const struct buf *body)
{
	dsn_addf(o, "\r\n--%s\r\n", boundary);
	dsn_addf(o, "Content-Description: %s\r\n", desc);
	dsn_addf(o, "Content-Type: %s\r\n", type);
	dsn_addf(o, "Content-Transfer-Encoding: %s\r\n\r\n",
	    dsn_8bit(buf_peek(body), buf_avail(body)) ? "8bit" : "7bit");
	dsn_add(o, buf_peek(body), buf_avail(body));
}

static int
dsn_assemble(const struct dsn_msg *m, struct buf *parts, struct buf *out)
{
	struct dsn_out o = {out, 0};
	char boundary[80], delim[90], date[64], to[1024];
	bool any8 = false;
	unsigned n = 0;

	/* "=_" cannot start a line of quoted-printable or base64 text, and
	 * the loop makes sure it is in no part whatever they contain. */
	for (;;) {
		bool clash = false;

		(void)str_fmt(boundary, sizeof(boundary),
		    "=_mta-dsn-%016" PRIx64 "-%u", m->dsn_id, n++);
		(void)str_fmt(delim, sizeof(delim), "--%s", boundary);
		for (int i = 0; i < 3; i++)
			clash |= dsn_contains(&parts[i], delim);
		if (!clash)
			break;
	}
	for (int i = 0; i < 3; i++)
		any8 |= dsn_8bit(buf_peek(&parts[i]), buf_avail(&parts[i]));
	clock_rfc5322(m->now_ms, date, sizeof(date));
	dsn_clean(m->orig_from, to, sizeof(to));
	dsn_addf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    m->hostname);
	dsn_addf(&o, "To: <%s>\r\n", to);
	dsn_addf(&o, "Subject: %s\r\n",
	    dsn_any(m, DSN_ACTION_FAILED)
	        ? "Undelivered Mail Returned to Sender"
	    : dsn_any(m, DSN_ACTION_DELAYED)
	        ? "Delayed Mail (still being retried)"
	        : "Successful Mail Delivery Report");
	dsn_addf(&o, "Date: %s\r\n", date);
	dsn_addf(&o, "Message-ID: <%016" PRIx64 ".%016" PRIx64 ".dsn@%s>\r\n",
	    m->dsn_id, m->orig_id, m->hostname);
	dsn_adds(&o, "Auto-Submitted: auto-replied\r\n");
	dsn_adds(&o, "MIME-Version: 1.0\r\n");
	dsn_adds(&o, "Content-Type: multipart/report; "
	             "report-type=delivery-status;\r\n");
	dsn_addf(&o, "\tboundary=\"%s\"\r\n", boundary);
	dsn_addf(
	    &o, "Content-Transfer-Encoding: %s\r\n", any8 ? "8bit" : "7bit");
	dsn_adds(&o, "\r\nThis is a MIME-encapsulated message.\r\n");
	dsn_part(&o, boundary, "Notification", "text/plain; charset=utf-8",
	    &parts[0]);
	dsn_part(&o, boundary, "Delivery report", "message/delivery-status",
	    &parts[1]);
	if (m->full)
		dsn_part(&o, boundary, "Message", "message/rfc822", &parts[2]);
	else
		dsn_part(&o, boundary, "Undelivered Message Headers",
		    "text/rfc822-headers", &parts[2]);
	dsn_addf(&o, "\r\n--%s--\r\n", boundary);
	return o.rc;
}

/* The hostname goes into several fields unfolded: it must be a plain
 * token (configuration validates it; this keeps dsn_build safe alone). */
static bool
dsn_hostname_valid(const char *h)
{
	size_t n;

	if (h == NULL || (n = strlen(h)) == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f ||
		    h[i] == '>' || h[i] == '<' || h[i] == '"')
			return false;
	return true;
}

int
dsn_build(const struct dsn_msg *m, struct buf *out)
{
	struct buf parts[3];
	int rc = 0;

	if (m->nrcpts == 0 || m->rcpts == NULL || m->orig_from == NULL ||
	    !dsn_hostname_valid(m->hostname))
		return -EINVAL;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].addr == NULL)
			return -EINVAL;
	for (int i = 0; i < 3; i++)
		buf_init(&parts[i], DSN_PART_MAX);
	{
		struct dsn_out t = {&parts[0], 0}, s = {&parts[1], 0},
		               h = {&parts[2], 0};

		dsn_render_text(m, &t);
		dsn_render_status(m, &s);
		dsn_render_headers(m, &h);
		rc = t.rc ? t.rc : s.rc ? s.rc : h.rc;
	}
	if (rc == 0)
		rc = dsn_assemble(m, parts, out);
	for (int i = 0; i < 3; i++)
		buf_fini(&parts[i]);
	return rc;
}
