/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_store.h - private to mta/tlsrpt/: the TLS-RPT counts on disk,
 * one LMDB environment of its own (<queue dir>/tlsrpt.mdb: the queue's
 * committer is the only writer of the queue's environment and must never
 * wait for this one). Key: "<period start, 16 hex> <domain>"; value: a
 * header line "m SENT DONE NEXT" (reported; the rua indexes already
 * sent to, a bit each; unix s before which no retry) and the counts
 * (tlsrpt_agg.h). Thread: the TLS-RPT thread only; each call is one
 * short, synced transaction.
 */
#ifndef MTA_TLSRPT_STORE_H
#define MTA_TLSRPT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compat.h"
#include "tlsrpt/tlsrpt_agg.h"

struct tlsrpt_store;

/* One stored period of one domain. */
struct tlsrpt_entry {
	struct tlsrpt_agg agg; /* with its start and domain */
	bool sent;             /* reported (or nothing to report to) */
	uint32_t done;         /* rua indexes sent to */
	uint64_t next;         /* unix s: no new try before */
};

/* Open or create <dir>/tlsrpt.mdb. 0, or negative with why in err. */
int tlsrpt_store_open(const char *dir, struct tlsrpt_store **out, char *err,
    size_t errlen) MTA_MUST_CHECK;
void tlsrpt_store_close(struct tlsrpt_store *s);

/* e's stored state (by e->agg.start and domain, which the caller sets):
 * 0, -ENOENT, or another negative errno. */
int tlsrpt_store_get(struct tlsrpt_store *s, struct tlsrpt_entry *e);

/* Store (replace) each of the n entries, in one transaction. 0 or
 * negative (map full: -ENOSPC). */
int tlsrpt_store_put(struct tlsrpt_store *s, struct tlsrpt_entry *const *e,
    size_t n) MTA_MUST_CHECK;

/*
 * tlsrpt_store_due - call fn for each entry of a period that ended by
 * now (start + interval <= now), not yet sent and not waiting for a
 * retry; and delete entries whose period ended more than keep s ago.
 * fn may keep nothing of e past its return. Returns how many were
 * given to fn.
 */
size_t tlsrpt_store_due(struct tlsrpt_store *s, uint64_t now, uint64_t interval,
    uint64_t keep, void (*fn)(void *arg, const struct tlsrpt_entry *e),
    void *arg);

#endif
