/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_json.c - the JSON of one TLS-RPT report (RFC 8460 4.4) from a
 * period's counts. Pure; any thread.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "base/str.h"
#include "tlsrpt/tlsrpt_report.h"

/* A JSON string: quotes, backslashes and control bytes escaped. */
static int
jstr(struct buf *out, const char *s, size_t n)
{
	int rc = buf_append(out, "\"", 1);

	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			rc = buf_appendf(out, "\\%c", c);
		else if (c == '\n')
			rc = buf_append(out, "\\n", 2);
		else if (c < 0x20 || c == 0x7f)
			rc = buf_appendf(out, "\\u%04x", c);
		else
			rc = buf_append(out, &s[i], 1);
	}
	return rc ? rc : buf_append(out, "\"", 1);
}

static int
jkey(struct buf *out, const char *key, const char *val, bool comma)
{
	int rc = buf_appendf(out, "%s\"%s\":", comma ? "," : "", key);

	return rc ? rc : jstr(out, val, strlen(val));
}

static void
iso8601(uint64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
tlsrpt_report_id(
    const struct tlsrpt_agg *a, const char *hostname, char *out, size_t len)
{
	char when[32];

	iso8601(a->start, when, sizeof(when));
	str_fmt(out, len, "%s_%s@%s", when, a->domain, hostname);
}

/* The policy strings as an array, one per line; and, with only_mx, the
 * values of its "mx:" lines (an STS policy's MX patterns). */
static int
jlines(struct buf *out, const char *s, bool only_mx)
{
	int rc = buf_append(out, "[", 1);
	bool first = true;

	while (rc == 0 && *s) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		const char *v = s;
		size_t vn = n;

		if (only_mx && n >= 3 && strncmp(s, "mx:", 3) == 0) {
			for (v = s + 3, vn = n - 3;
			     vn > 0 && (*v == ' ' || *v == '\t'); v++)
				vn--;
		} else if (only_mx) {
			vn = 0;
		}
		if (vn > 0 || (!only_mx && n > 0)) {
			if (!first)
				rc = buf_append(out, ",", 1);
			rc = rc ? rc : jstr(out, v, vn);
			first = false;
		}
		s += n + (e != NULL);
	}
	return rc ? rc : buf_append(out, "]", 1);
}

static int
jpolicy_desc(
    struct buf *out, const struct tlsrpt_agg *a, const struct tlsrpt_pol *p)
{
	int rc = buf_append(out, "{\"policy\":{", 11);

	rc = rc ? rc
	        : jkey(out, "policy-type", tlsrpt_ptype_name(p->ptype), false);
	if (rc == 0 && p->ptype != TLSRPT_NO_POLICY) {
		rc = buf_append(out, ",\"policy-string\":", 17);
		rc = rc ? rc : jlines(out, p->strings, false);
	}
	rc = rc ? rc : jkey(out, "policy-domain", a->domain, true);
	if (rc == 0 && p->ptype == TLSRPT_STS) {
		rc = buf_append(out, ",\"mx-host\":", 11);
		rc = rc ? rc : jlines(out, p->strings, true);
	} else if (rc == 0 && p->ptype == TLSRPT_TLSA && p->mx[0]) {
		rc = buf_append(out, ",\"mx-host\":[", 12);
		rc = rc ? rc : jstr(out, p->mx, strlen(p->mx));
		rc = rc ? rc : buf_append(out, "]", 1);
	}
	return rc ? rc : buf_append(out, "}", 1);
}

static int
jfailure(struct buf *out, const struct tlsrpt_fail *f, bool comma)
{
	int rc = buf_appendf(out, "%s{", comma ? "," : "");

	rc = rc ? rc : jkey(out, "result-type", f->result, false);
	if (rc == 0 && f->send_ip[0])
		rc = jkey(out, "sending-mta-ip", f->send_ip, true);
	if (rc == 0 && f->mx[0])
		rc = jkey(out, "receiving-mx-hostname", f->mx, true);
	if (rc == 0 && f->recv_ip[0])
		rc = jkey(out, "receiving-ip", f->recv_ip, true);
	return rc ? rc
	          : buf_appendf(out, ",\"failed-session-count\":%" PRIu64 "}",
	                f->count);
}

static int
jpolicy(struct buf *out, const struct tlsrpt_agg *a, const struct tlsrpt_pol *p,
    bool comma)
{
	int rc = comma ? buf_append(out, ",", 1) : 0;

	rc = rc ? rc : jpolicy_desc(out, a, p);
	rc =
	    rc ? rc
	       : buf_appendf(out,
	             ",\"summary\":{\"total-successful-session-count\":%" PRIu64
	             ",\"total-failure-session-count\":%" PRIu64 "}",
	             p->ok, p->failed);
	if (rc == 0 && p->nfail > 0) {
		rc = buf_append(out, ",\"failure-details\":[", 20);
		for (size_t i = 0; rc == 0 && i < p->nfail; i++)
			rc = jfailure(out, &p->fail[i], i > 0);
		rc = rc ? rc : buf_append(out, "]", 1);
	}
	return rc ? rc : buf_append(out, "}", 1);
}

int
tlsrpt_json(const struct tlsrpt_agg *a, uint64_t interval,
    const struct tlsrpt_who *w, struct buf *out)
{
	char from[32], to[32], id[TLSRPT_NAME_MAX + 80];
	int rc;

	iso8601(a->start, from, sizeof(from));
	iso8601(a->start + (interval ? interval - 1 : 0), to, sizeof(to));
	tlsrpt_report_id(a, w->hostname, id, sizeof(id));
	rc = buf_append(out, "{", 1);
	rc = rc ? rc : jkey(out, "organization-name", w->org, false);
	rc = rc ? rc : buf_append(out, ",\"date-range\":{", 15);
	rc = rc ? rc : jkey(out, "start-datetime", from, false);
	rc = rc ? rc : jkey(out, "end-datetime", to, true);
	rc = rc ? rc : buf_append(out, "}", 1);
	rc = rc ? rc : jkey(out, "contact-info", w->contact, true);
	rc = rc ? rc : jkey(out, "report-id", id, true);
	rc = rc ? rc : buf_append(out, ",\"policies\":[", 13);
	for (size_t i = 0; rc == 0 && i < a->npol; i++)
		rc = jpolicy(out, a, &a->pol[i], i > 0);
	return rc ? rc : buf_append(out, "]}", 2);
}
