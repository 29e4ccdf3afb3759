/* SPDX-License-Identifier: ISC */
/*
 * sts_fetch.c - one MTA-STS policy fetch over HTTPS (RFC 8461 3.3) with
 * libcurl. Thread: the policy thread.
 *
 * curl never resolves a name: the address the relay's resolver gave (and
 * the destination policy allowed) is pinned with CURLOPT_RESOLVE, proxies
 * from the environment are turned off, and only https is allowed, with
 * no redirects. The certificate must verify for mta-sts.DOMAIN against
 * [delivery] ca_file or the system store. A body over STS_POLICY_MAX, a
 * status other than 200 or a type other than text/plain is a fetch
 * error, as the RFC says; a body that does not parse is sts.c's to judge.
 */
#include "sts/sts_fetch.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "base/compat.h"
#include "base/str.h"
#include "net/https.h"

static size_t
sts_fetch_write(char *p, size_t size, size_t n, void *arg)
{
	struct sts_fetch *f = arg;

	(void)size; /* always 1 (curl's documented contract) */
	if (buf_append(&f->body, p, n) < 0) {
		f->oversize = true;
		return 0; /* curl aborts with CURLE_WRITE_ERROR */
	}
	return n;
}

int
sts_fetch_init(struct sts_fetch *f, const char *domain, const char *addrs,
    const struct sts_settings *s)
{
	char pin[STS_NAME_MAX + 512];
	CURL *e;

	buf_init(&f->body, STS_POLICY_MAX);
	str_fmt(f->url, sizeof(f->url),
	    "https://mta-sts.%s/.well-known/mta-sts.txt", domain);
	str_fmt(pin, sizeof(pin), "mta-sts.%s:%u:%s", domain, STS_PORT, addrs);
	if ((f->resolve = curl_slist_append(NULL, pin)) == NULL ||
	    (f->easy = e = https_easy_new(f->url, s->ca_file, s->ca_path)) ==
	        NULL)
		return -ENOMEM;
	curl_easy_setopt(e, CURLOPT_RESOLVE, f->resolve);
	curl_easy_setopt(
	    e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->timeout);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE, (long)STS_POLICY_MAX);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sts_fetch_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	return 0;
}

/* A TLS failure of the policy host's certificate, rather than of the
 * connection: sts-webpki-invalid (RFC 8460 4.3.2.2). */
static bool
sts_fetch_webpki(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION ||
	       rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
	       rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

int
sts_fetch_result(struct sts_fetch *f, CURLcode rc, const char **failure,
    char *reason, size_t len)
{
	const char *type = NULL;
	long code = 0;

	*failure = "sts-policy-fetch-error";
	if (rc != CURLE_OK) {
		if (sts_fetch_webpki(rc))
			*failure = "sts-webpki-invalid";
		str_fmt(reason, len, "%s: %s", f->url,
		    f->oversize || rc == CURLE_FILESIZE_EXCEEDED
		        ? "policy larger than 64 KiB"
		    : f->errbuf[0] ? f->errbuf
		                   : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &type);
	if (code != 200) {
		str_fmt(reason, len, "%s: HTTP status %ld%s", f->url, code,
		    code / 100 == 3 ? " (redirects are not followed)" : "");
		return -1;
	}
	if (type == NULL || strncasecmp(type, "text/plain", 10) != 0 ||
	    (type[10] != '\0' && type[10] != ';' && type[10] != ' ')) {
		str_fmt(reason, len, "%s: Content-Type is %s, not text/plain",
		    f->url, type ? type : "missing");
		return -1;
	}
	*failure = "";
	return 0;
}

void
sts_fetch_fini(struct sts_fetch *f)
{
	if (f->easy)
		curl_easy_cleanup(f->easy);
	curl_slist_free_all(f->resolve);
	buf_fini(&f->body);
}
