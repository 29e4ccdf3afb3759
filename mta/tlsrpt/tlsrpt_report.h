/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_report.h - what a TLS-RPT report is made of (RFC 8460): the
 * `_smtp._tls` TXT record's rua list, the JSON report of one period,
 * gzip, and the multipart/report mail that carries it. Pure functions
 * over buffers (zlib is the only library), any thread; the TLS-RPT
 * thread (tlsrpt.c) calls them.
 */
#ifndef MTA_TLSRPT_REPORT_H
#define MTA_TLSRPT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"
#include "tlsrpt/tlsrpt_agg.h"

#define TLSRPT_RUA_MAX    8                 /* report addresses used, at most */
#define TLSRPT_URI_MAX    512               /* one of them, with NUL */
#define TLSRPT_REPORT_MAX ((size_t)4 << 20) /* JSON bytes, at most */
#define TLSRPT_MAIL_MAX   ((size_t)8 << 20) /* the report mail */

struct tlsrpt_rua {
	size_t n;
	char uri[TLSRPT_RUA_MAX][TLSRPT_URI_MAX]; /* "mailto:a@b", "https://" */
};

/*
 * tlsrpt_txt_parse - one TXT record's text (its strings joined) as an
 * RFC 8460 3 record: "v=TLSRPTv1" first, then "rua=" with one or more
 * comma-separated mailto: or https: URIs (others are skipped), fields
 * separated by ';' with optional spaces; other fields are ignored. 0 and
 * out filled (at least one URI), or -EINVAL: not a TLSRPTv1 record, or
 * no usable URI. A mailto: URI keeps its address only (no "?...").
 */
int tlsrpt_txt_parse(
    const char *txt, size_t len, struct tlsrpt_rua *out) MTA_MUST_CHECK;

/* Who reports, for the JSON and the mail. All borrowed. */
struct tlsrpt_who {
	const char *org;      /* organization-name */
	const char *contact;  /* contact-info */
	const char *hostname; /* the submitter, in report-id and Subject */
};

/* report-id of a's report (stable: a retry sends the same id). */
void tlsrpt_report_id(
    const struct tlsrpt_agg *a, const char *hostname, char *out, size_t len);

/*
 * tlsrpt_json - append a's report (RFC 8460 4.4) to out: every string
 * escaped as JSON wants. interval: the period's length, s. 0 or -ENOBUFS.
 */
int tlsrpt_json(const struct tlsrpt_agg *a, uint64_t interval,
    const struct tlsrpt_who *w, struct buf *out) MTA_MUST_CHECK;

/* gzip (RFC 1952) of (p, n) appended to out. 0, -ENOBUFS or -EIO. */
int tlsrpt_gzip(const void *p, size_t n, struct buf *out) MTA_MUST_CHECK;

/* The report mail (RFC 8460 5.3). */
struct tlsrpt_mail {
	const char *from;  /* the reporting address */
	const char *to;    /* the rua's address */
	const char *msgid; /* Message-ID, without <> */
	uint64_t now_ms;   /* Date */
	uint64_t interval; /* s */
	const void *gz;    /* the gzipped report */
	size_t gzlen;
};

/*
 * tlsrpt_mail - append the multipart/report; report-type="tlsrpt"
 * message for a's report to out (CRLF lines): Subject "Report Domain:
 * D Submitter: S Report-ID: <ID>", TLS-Report-Domain and
 * TLS-Report-Submitter, a text part and the report as an
 * application/tlsrpt+gzip attachment in base64. 0 or -ENOBUFS.
 */
int tlsrpt_mail(const struct tlsrpt_agg *a, const struct tlsrpt_who *w,
    const struct tlsrpt_mail *m, struct buf *out) MTA_MUST_CHECK;

#endif
