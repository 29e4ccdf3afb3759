/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt.h - the TLS reporting stage (RFC 8460): delivery sessions under
 * a DANE or MTA-STS policy counted per policy domain and period, and
 * after each period a report sent to the domain's rua addresses.
 *
 * DESIGN. One thread owns everything here: the counts of the current
 * period in memory, their LMDB environment (<queue dir>/tlsrpt.mdb, of
 * its own: the queue's committer must never wait for it), the report
 * jobs and their HTTPS posts, which a libcurl multi handle drives from
 * the same poll as the thread's chan. Delivery workers never wait:
 * tlsrpt_record() copies one small record onto the chan (and drops it,
 * counted, when TLSRPT_INFLIGHT_MAX are already waiting). The counts
 * are written at most once a second, so a crash loses at most that
 * much of a period's counts; a restart goes on from what is stored.
 *
 * A report: after a period ends, the `_smtp._tls.DOMAIN` TXT record
 * through the resolver thread (dns.h), the JSON (tlsrpt_report.h)
 * gzipped, then for each rua: mailto: a multipart/report mail submitted
 * to the relay's own queue (DKIM-signed when a key covers the from
 * domain), https: a POST. Each rua sent to is marked on disk; one that
 * failed is tried again an interval later; a domain without a TLSRPT
 * record is marked done.
 */
#ifndef MTA_TLSRPT_H
#define MTA_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compat.h"
#include "tlsrpt/tlsrpt_agg.h"

struct dest_self;

struct dns;
struct queue;
struct dkim_table;

#define TLSRPT_MSG_REC      0x5801 /* a struct tlsrpt_rec, to the thread */
#define TLSRPT_MSG_STOP     0x5802
#define TLSRPT_INFLIGHT_MAX 10000 /* records waiting, at most */

struct tlsrpt_settings {
	const char *dir;               /* the queue directory */
	uint64_t interval;             /* s, a period */
	const char *org;               /* organization-name */
	const char *contact;           /* contact-info */
	const char *from;              /* the reports' sender address */
	const char *hostname;          /* the submitter's name (report-id) */
	const char *ca_file;           /* https: trust anchors; NULL: system */
	const char *ca_path;           /* NULL: none */
	const struct dkim_table *dkim; /* borrowed, outlives the stage;
					  NULL: reports unsigned */
	/* what an https: rua may connect to: delivery's destination policy
	 * (self borrowed, outlives the stage) */
	bool allow_private, allow_loopback;
	const struct dest_self *self;
};

struct tlsrpt;

/*
 * tlsrpt_new - open the store and set up the stage (no thread yet). s is
 * copied (its strings too); q and dns are borrowed and must outlive the
 * stage (free it before either stops). NULL and why in err.
 */
struct tlsrpt *tlsrpt_new(const struct tlsrpt_settings *s, struct queue *q,
    struct dns *dns, char *err, size_t errlen);

/* Start the thread: 0 or -errno. */
int tlsrpt_start(struct tlsrpt *t) MTA_MUST_CHECK;

/* Write what is counted, wait for the answers of the resolver and the
 * queue it asked, stop the thread and free. NULL ok. */
void tlsrpt_free(struct tlsrpt *t);

/* tlsrpt_record - count one session (r copied). Any thread, never
 * blocks; t NULL: nothing. */
void tlsrpt_record(struct tlsrpt *t, const struct tlsrpt_rec *r);

#endif
