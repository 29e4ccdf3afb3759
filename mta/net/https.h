/* SPDX-License-Identifier: ISC */
/*
 * https.h - the one setup of an outbound HTTPS request (libcurl) that
 * the MTA-STS policy fetch and the TLS-RPT report POST share. Any thread.
 */
#ifndef MTA_NET_HTTPS_H
#define MTA_NET_HTTPS_H

#include <curl/curl.h>

/*
 * https_easy_new - a curl easy handle for url that speaks https only,
 * follows no redirect, uses no proxy from the environment, never raises
 * signals, and verifies the peer as `tls = verify` does: against ca_file
 * and ca_path when either is set (NULL or "" is unset), else the system
 * store. The caller adds the rest and frees it. NULL: out of memory.
 */
CURL *https_easy_new(const char *url, const char *ca_file, const char *ca_path);

#endif
