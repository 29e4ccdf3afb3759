/* SPDX-License-Identifier: ISC */
/*
 * dest_site.h - a destination's "site": the set of its MX hosts, so that
 * domains served by the same hosts share their shaping limits (key =
 * destination_site; the MX rollup of large senders). Pure; any thread.
 */
#ifndef MTA_DEST_SITE_H
#define MTA_DEST_SITE_H

#include <stdbool.h>
#include <stddef.h>

struct dns_target;

/*
 * dest_site_key - the site of targets t[0..n): their host names,
 * lowercased, without a trailing dot, sorted, duplicates dropped, joined
 * by ','. false (out "") when there is none or it does not fit in len.
 */
bool dest_site_key(const struct dns_target *t, size_t n, char *out, size_t len);

#endif
