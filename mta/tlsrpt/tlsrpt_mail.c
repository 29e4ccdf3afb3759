/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_mail.c - a TLS-RPT report gzipped, and the mail that carries
 * it to a mailto: rua (RFC 8460 5.3). Pure; any thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/clock.h"
#include "base/str.h"
#include "smtp/smtp_parse.h"
#include "tlsrpt/tlsrpt_report.h"

int
tlsrpt_gzip(const void *p, size_t n, struct buf *out)
{
	z_stream z;
	uLong bound;
	uint8_t *dst;
	int rc;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip header and trailer, not zlib's */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	        Z_DEFAULT_STRATEGY) != Z_OK)
		return -EIO;
	bound = deflateBound(&z, (uLong)n) + 32;
	if ((dst = buf_reserve(out, bound)) == NULL) {
		deflateEnd(&z);
		return -ENOBUFS;
	}
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	z.next_out = dst;
	z.avail_out = (uInt)bound;
	rc = deflate(&z, Z_FINISH);
	if (rc == Z_STREAM_END)
		buf_commit(out, z.total_out);
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

/* The attachment: base64 in lines of 76. */
static int
mail_base64(const void *p, size_t n, struct buf *out)
{
	char *b64 = malloc(smtp_parse_base64_len(n) + 1);
	size_t len;
	int rc = 0;

	if (b64 == NULL)
		return -ENOBUFS;
	smtp_parse_base64_encode(p, n, b64);
	len = strlen(b64);
	for (size_t i = 0; rc == 0 && i < len; i += 76) {
		rc = buf_append(out, b64 + i, len - i < 76 ? len - i : 76);
		rc = rc ? rc : buf_append(out, "\r\n", 2);
	}
	free(b64);
	return rc;
}

static int
mail_headers(const struct tlsrpt_agg *a, const struct tlsrpt_who *w,
    const struct tlsrpt_mail *m, const char *boundary, struct buf *out)
{
	char date[64], id[TLSRPT_NAME_MAX + 80];

	clock_rfc5322(m->now_ms, date, sizeof(date));
	tlsrpt_report_id(a, w->hostname, id, sizeof(id));
	return buf_appendf(out,
	    "From: <%s>\r\n"
	    "To: <%s>\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s>\r\n"
	    "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n"
	    "TLS-Report-Domain: %s\r\n"
	    "TLS-Report-Submitter: %s\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    "\tboundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a MIME-formatted message.\r\n",
	    m->from, m->to, date, m->msgid, a->domain, w->org, id, a->domain,
	    w->org, boundary);
}

int
tlsrpt_mail(const struct tlsrpt_agg *a, const struct tlsrpt_who *w,
    const struct tlsrpt_mail *m, struct buf *out)
{
	char boundary[128], name[TLSRPT_NAME_MAX * 2 + 64];
	uint64_t end = a->start + m->interval;
	int rc;

	str_fmt(boundary, sizeof(boundary), "=_tlsrpt_%s", m->msgid);
	for (char *c = boundary; *c; c++)
		if (*c == '@')
			*c = '.';
	/* RFC 8460 5.3: submitter!domain!begin!end.json.gz */
	str_fmt(name, sizeof(name), "%s!%s!%llu!%llu.json.gz", w->hostname,
	    a->domain, (unsigned long long)a->start, (unsigned long long)end);
	rc = mail_headers(a, w, m, boundary, out);
	rc = rc ? rc
	        : buf_appendf(out,
	              "\r\n--%s\r\n"
	              "Content-Type: text/plain; charset=us-ascii\r\n"
	              "\r\n"
	              "This is an aggregate TLS report from %s.\r\n"
	              "\r\n--%s\r\n"
	              "Content-Type: application/tlsrpt+gzip\r\n"
	              "Content-Transfer-Encoding: base64\r\n"
	              "Content-Disposition: attachment;\r\n"
	              "\tfilename=\"%s\"\r\n"
	              "\r\n",
	              boundary, w->org, boundary, name);
	rc = rc ? rc : mail_base64(m->gz, m->gzlen, out);
	return rc ? rc : buf_appendf(out, "\r\n--%s--\r\n", boundary);
}
