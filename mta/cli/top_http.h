/* SPDX-License-Identifier: ISC */
/*
 * top_http.h - one HTTP/1.1 GET of the relay's /metrics, for `mta top`.
 * Blocking, bounded in time and size; the command's own thread.
 */
#ifndef MTA_CLI_TOP_HTTP_H
#define MTA_CLI_TOP_HTTP_H

#include <stddef.h>

#include "base/compat.h"
#include "config/config.h"

#define TOP_HTTP_MAX (64u << 20) /* bytes of a response */

/*
 * top_http_get - GET path from a (a wildcard address means this host's
 * loopback), within timeout_ms in all. Returns 0 and the body in *body
 * (NUL-terminated, *len bytes; the caller frees it), or negative errno
 * with one line in err: connection refused, timeout, a status other
 * than 200, a response over TOP_HTTP_MAX or malformed.
 */
MTA_MUST_CHECK int top_http_get(const struct config_addr *a, const char *path,
    unsigned timeout_ms, char **body, size_t *len, char *err, size_t errlen);

#endif
