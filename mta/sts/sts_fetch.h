/* SPDX-License-Identifier: ISC */
/*
 * sts_fetch.h - private to mta/sts/: one policy fetch as a libcurl easy
 * handle, set up the way RFC 8461 3.3 asks (HTTPS only, the certificate
 * checked against the trust store for mta-sts.DOMAIN, no redirects, a size
 * cap, a timeout), and its result judged. sts.c adds the handle to its
 * multi handle and calls back here when curl is done with it.
 * Thread: the policy thread.
 */
#ifndef MTA_STS_FETCH_H
#define MTA_STS_FETCH_H

#include <curl/curl.h>

#include "base/buf.h"
#include "sts/sts.h"

struct sts_fetch {
	CURL *easy;
	struct curl_slist *resolve; /* "mta-sts.DOMAIN:443:ADDR,..." */
	struct buf body;            /* at most STS_POLICY_MAX bytes */
	bool oversize;              /* the body went over: aborted */
	char errbuf[CURL_ERROR_SIZE];
	char url[STS_NAME_MAX + 64];
};

/* Set up f (zeroed by the caller) to fetch domain's policy from addrs
 * (comma-separated IP addresses, IPv6 in brackets). 0 or -ENOMEM. */
int sts_fetch_init(struct sts_fetch *f, const char *domain, const char *addrs,
    const struct sts_settings *s) MTA_MUST_CHECK;

/* curl finished f with rc: 0 when the body is a policy to parse;
 * otherwise -1 with *failure the RFC 8460 result type and why in reason. */
int sts_fetch_result(struct sts_fetch *f, CURLcode rc, const char **failure,
    char *reason, size_t len) MTA_MUST_CHECK;

/* Free what f holds (not f); the handle must be out of any multi. */
void sts_fetch_fini(struct sts_fetch *f);

#endif
