/* SPDX-License-Identifier: ISC */
/*
 * sts.h - the MTA-STS policy stage (RFC 8461): which policy, if any, a
 * mail domain publishes, for delivery to enforce.
 *
 * DESIGN. One policy thread owns everything here: the policies in memory,
 * their LMDB cache (its own small environment, <queue path>/sts.mdb: the
 * queue's committer is the only writer of the queue's environment and
 * must never wait for this one), and the HTTPS fetches, which a libcurl
 * multi handle drives from the same poll as the thread's chan. Delivery
 * workers ask with sts_lookup() and get their answer on their own chan,
 * as from the resolver; the `_mta-sts` TXT record and the address of
 * mta-sts.DOMAIN come from the resolver thread (dns.h), and curl is
 * handed that address (CURLOPT_RESOLVE) after the destination policy
 * allowed it, so curl never resolves a name itself.
 *
 * A cached policy that has not expired is answered at once (a refresh
 * may start behind it: the TXT id checked every s->recheck, a new
 * fetch when the id changed or half its max_age is gone); otherwise the
 * answer waits for the TXT lookup and the fetch (connect and total
 * timeouts bound it). A failed refresh keeps the cached policy; with
 * none cached the domain has no policy for STS_NEG_S and the answer says
 * which RFC 8460 result type the failure was.
 */
#ifndef MTA_STS_H
#define MTA_STS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/chan.h"
#include "base/compat.h"
#include "sts/sts_policy.h"

struct dns;
struct dest_self;

#define STS_MSG_LOOKUP 0x5501 /* struct sts_req, both ways */

#define STS_NEG_S 300 /* s a domain without a policy is not asked */
#define STS_PORT  443

struct sts_settings {
	const char *dir;     /* the queue directory: sts.mdb goes there */
	const char *ca_file; /* trust anchors for the fetch; NULL: system */
	const char *ca_path; /* hashed directory of them; NULL: none */
	bool allow_private;  /* the destination policy, as for delivery */
	bool allow_loopback;
	const struct dest_self *self; /* may be NULL */
	uint64_t connect_timeout;     /* ms */
	uint64_t timeout;             /* ms, the whole fetch */
	uint64_t recheck;             /* ms between TXT id checks */
};

/*
 * A lookup and, sent back on reply, its answer. The caller owns it
 * except between sts_lookup() and the answer's arrival.
 */
struct sts_req {
	struct chan_msg msg;       /* first; reqid is the caller's */
	struct chan *reply;        /* in */
	void *arg;                 /* in: caller's cookie */
	char domain[STS_NAME_MAX]; /* in: the mail domain */
	bool have;                 /* out: a policy applies (pol, id) */
	/* out: no answer, the stage is stopping (a policy may apply: do not
	 * deliver) */
	bool stopping;
	struct sts_policy pol; /* out */
	char id[STS_ID_MAX];   /* out: the TXT id it was fetched under */
	bool cached;           /* out: not fetched for this request */
	uint64_t expires;      /* out: unix s */
	char failure[32];      /* out: RFC 8460 result type of the last
				       failed refresh, "" */
	char reason[200];      /* out: what failed, "" */
};

struct sts;

/*
 * sts_new - open the cache and set up the thread's state (no thread
 * yet). s is copied (its strings too). dns is borrowed and must outlive
 * the stage. Returns NULL and why in err.
 */
struct sts *sts_new(
    const struct sts_settings *s, struct dns *dns, char *err, size_t errlen);

/* Start the thread: 0 or -errno. */
int sts_start(struct sts *t) MTA_MUST_CHECK;

/*
 * sts_quiesce - from now on every lookup, waiting or new, is answered at
 * once without a policy (reason "shutting down"), so the stages that
 * ask can stop. Any thread; the thread keeps running.
 */
void sts_quiesce(struct sts *t);

/* Stop the thread (after its DNS answers are home) and free. NULL ok. */
void sts_free(struct sts *t);

/* sts_lookup - ask; any thread, never blocks. req passes until answered
 * on req->reply with msg.type STS_MSG_LOOKUP. */
void sts_lookup(struct sts *t, struct sts_req *req);

#endif
