/* SPDX-License-Identifier: ISC */
/*
 * https.c - the one setup of an outbound HTTPS request. Thread: the
 * caller's (the MTA-STS policy thread, the TLS-RPT thread).
 */
#include "net/https.h"

#include "base/compat.h"

static const char *
set_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

CURL *
https_easy_new(const char *url, const char *ca_file, const char *ca_path)
{
	CURL *e = curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	ca_file = set_or_null(ca_file);
	ca_path = set_or_null(ca_path);
	if (ca_file != NULL || ca_path != NULL) {
		curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, ca_path);
	}
	curl_easy_setopt(e, CURLOPT_USERAGENT, "mta/" MTA_VERSION);
	return e;
}
