/* SPDX-License-Identifier: ISC */
/*
 * sts_cache.h - MTA-STS policies on disk: one LMDB environment of its own
 * (<dir>/sts.mdb, one file, with its -lock file), written and read by the
 * policy thread only (`mta resolve` opens it from its own process, which
 * LMDB allows). A record is a version byte, when the policy was fetched,
 * the TXT id and the policy text as served; it is parsed again on load,
 * so a record the parser no longer accepts is simply no policy.
 */
#ifndef MTA_STS_CACHE_H
#define MTA_STS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/compat.h"
#include "sts/sts_policy.h"

struct sts_cache;

/* Open or create <dir>/sts.mdb. 0, or negative with why in err. */
int sts_cache_open(const char *dir, struct sts_cache **out, char *err,
    size_t errlen) MTA_MUST_CHECK;
void sts_cache_close(struct sts_cache *c);

/* What is stored for a domain. */
struct sts_cached {
	uint64_t fetched;    /* unix s */
	char id[STS_ID_MAX]; /* TXT id at the fetch */
	struct buf text;     /* the policy file; the caller inits and frees */
};

/* 0 and *out filled, -ENOENT, or another negative errno (a bad record is
 * -EBADMSG). */
int sts_cache_get(struct sts_cache *c, const char *domain,
    struct sts_cached *out) MTA_MUST_CHECK;

/* Store (replace) domain's record. 0 or negative (MDB_MAP_FULL: -ENOSPC). */
int sts_cache_put(struct sts_cache *c, const char *domain,
    const struct sts_cached *in) MTA_MUST_CHECK;

#endif
