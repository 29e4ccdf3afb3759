/* SPDX-License-Identifier: ISC */
/*
 * deliver_tlsrpt.c - a delivery session's TLS-RPT record
 * (deliver_tlsrpt.h). Thread: a delivery worker.
 */
#include "deliver/deliver_tlsrpt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/str.h"
#include "deliver/deliver_int.h"
#include "tlsrpt/tlsrpt.h"

void
dtlsrpt_sts(struct tlsrpt_rec *r, const char *domain, const char *mode,
    const char (*mxs)[256], size_t nmx, uint32_t max_age, const char *mx)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	r->ptype = TLSRPT_STS;
	str_copy(r->domain, sizeof(r->domain), domain);
	str_copy(r->mx, sizeof(r->mx), mx);
	str_fmt(
	    r->strings, sizeof(r->strings), "version: STSv1\nmode: %s", mode);
	for (size_t i = 0; i < nmx; i++) {
		n = strlen(r->strings);
		snprintf(
		    r->strings + n, sizeof(r->strings) - n, "\nmx: %s", mxs[i]);
	}
	n = strlen(r->strings);
	snprintf(r->strings + n, sizeof(r->strings) - n, "\nmax_age: %u",
	    (unsigned)max_age);
}

void
dtlsrpt_dane(struct tlsrpt_rec *r, const char *mx, const struct dtlsrpt_tlsa *t,
    size_t n)
{
	char *p = r->strings, *end = r->strings + sizeof(r->strings);

	memset(r, 0, sizeof(*r));
	r->ptype = TLSRPT_TLSA;
	str_copy(r->domain, sizeof(r->domain), mx);
	str_copy(r->mx, sizeof(r->mx), mx);
	for (size_t i = 0; i < n; i++) {
		/* a record that does not fit whole is left out */
		size_t need = (i ? 1 : 0) + 12 + 2 * t[i].len + 1;

		if ((size_t)(end - p) < need)
			break;
		p += snprintf(p, (size_t)(end - p), "%s%u %u %u ",
		    i ? "\n" : "", t[i].usage, t[i].selector, t[i].mtype);
		for (size_t k = 0; k < t[i].len; k++)
			p += snprintf(
			    p, (size_t)(end - p), "%02X", t[i].data[k]);
	}
}

static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	const void *a = NULL;

	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
	if (a == NULL ||
	    inet_ntop(ss->ss_family, a, out, (socklen_t)len) == NULL)
		out[0] = '\0';
}

void
dtlsrpt_session(struct deliver *d, const struct tlsrpt_rec *tmpl, int fd,
    const char *result)
{
	struct tlsrpt_rec r;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (d->tlsrpt == NULL || tmpl == NULL)
		return;
	r = *tmpl;
	str_copy(r.result, sizeof(r.result), result ? result : "");
	if (fd >= 0) {
		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			addr_text(&ss, r.send_ip, sizeof(r.send_ip));
		sl = sizeof(ss);
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
			addr_text(&ss, r.recv_ip, sizeof(r.recv_ip));
	}
	tlsrpt_record(d->tlsrpt, &r);
}

void
dtlsrpt_result_of(const char *reason, char *out, size_t len)
{
	const char *p = reason ? strstr(reason, "result=") : NULL;
	size_t n = 0;

	out[0] = '\0';
	if (p == NULL)
		return;
	p += 7;
	while (p[n] == '-' || (p[n] >= 'a' && p[n] <= 'z'))
		n++;
	str_ncopy(out, len, p, n);
}

void
dtlsrpt_tls_result(const struct tlsrpt_rec *r, const char *tls_err,
    const char *smtp_err, char *out, size_t len)
{
	const char *e = tls_err ? tls_err : smtp_err ? smtp_err : "";
	const char *type = "";

	dtlsrpt_result_of(e, out, len);
	if (out[0] != '\0')
		return;
	if (tls_err != NULL) {
		if (strstr(e, "hostname mismatch") ||
		    strstr(e, "IP address mismatch"))
			type = "certificate-host-mismatch";
		else if (strstr(e, "expired") || strstr(e, "not yet valid"))
			type = "certificate-expired";
		else if (r->ptype == TLSRPT_TLSA)
			type = "validation-failure";
		else if (strstr(e, "verify failed") ||
		         strstr(e, "unable to get") ||
		         strstr(e, "self-signed") || strstr(e, "self signed"))
			type = "certificate-not-trusted";
		else
			type = "validation-failure";
	} else if (strstr(e, "STARTTLS") || strstr(e, "not offered")) {
		type = "starttls-not-supported";
	}
	str_copy(out, len, type);
}
