/* SPDX-License-Identifier: ISC */
/*
 * sender_policy.h - who may send as whom: the sender addresses an
 * authenticated user owns ([auth] senders), the sender domains a client
 * relaying by relay_networks may use ([server] relay_sender_domains), and
 * who may use the null sender <>.
 *
 * DESIGN. The senders file holds `NAME: PATTERN PATTERN ...` lines
 * (patterns separated by blanks or commas; a user may have several
 * lines; `#` starts a comment line). A pattern is an exact address
 * (`alice@example.org`), every address of a domain (`*@example.org` or
 * `@example.org`), or `*` (any address: a trusted gateway account).
 * Addresses compare without regard to case. The file is read once per
 * configuration snapshot into an immutable table, so the receive threads
 * read it without a lock; a reload builds a new one.
 *
 * The policy, as Postfix's reject_sender_login_mismatch and
 * smtpd_sender_restrictions would apply it:
 *   - an authenticated user, when a senders file is set, may use only
 *     the addresses it owns (a user without a line owns none);
 *   - a client allowed by relay_networks (and not authenticated) may use
 *     only the relay_sender_domains, when that list is not empty;
 *   - <> is allowed to an authenticated user when [auth] null_sender =
 *     yes, to a relay client when [server] relay_null_sender = yes;
 *   - any other client is not checked here (it may not relay anyway).
 * The same judgement applies to the From: header address when
 * [server] check_from_header = yes (a From: without an address is not
 * owned).
 *
 * Pure: no I/O but sender_policy_load(), no lock, no global. Thread: any,
 * on a policy nobody modifies.
 */
#ifndef MTA_SENDER_POLICY_H
#define MTA_SENDER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/compat.h"

#define SENDER_FILE_MAX (64 * 1024 * 1024) /* bytes of a senders file */

/* What the policy is built from (borrowed during sender_policy_new). */
struct sender_policy_cfg {
	const char *senders_text; /* the senders file's text; NULL: none */
	size_t senders_len;
	const char *senders_name;  /* for errors: "PATH" */
	const char *relay_domains; /* "a.example b.example"; "" or NULL: any */
	bool auth_null;            /* authenticated users may use <> */
	bool relay_null;           /* relay_networks clients may use <> */
	bool check_from;           /* the From: header must match too */
};

enum sender_verdict {
	SENDER_OK,
	SENDER_NOT_OWNED,   /* authenticated: not the user's address */
	SENDER_NOT_ALLOWED, /* relay client: not an allowed domain */
};

struct sender_policy;

/*
 * sender_policy_new - build a policy. Returns 0 and *out (the caller's,
 * sender_policy_free it), or -EINVAL with "NAME:LINE: reason" in err for
 * a bad senders line (no colon, a bad user name, a pattern without an
 * '@', too long) or "relay_sender_domains: reason".
 */
int sender_policy_new(const struct sender_policy_cfg *c,
    struct sender_policy **out, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * sender_policy_load - as sender_policy_new, with the senders text read
 * from path (NULL or "": none). -errno and "PATH: reason" when it cannot
 * be read. Blocking file I/O: startup, reload and check-config only.
 */
int sender_policy_load(const char *path, const struct sender_policy_cfg *c,
    struct sender_policy **out, char *err, size_t errlen) MTA_MUST_CHECK;

/* Free p (takes NULL). */
void sender_policy_free(struct sender_policy *p);

/* Does any check apply to this client (so a session must ask)? user: the
 * authenticated name, or NULL; relay: the client is in relay_networks. */
bool sender_policy_active(
    const struct sender_policy *p, const char *user, bool relay);

/*
 * sender_policy_check - may this client use the sender (addr, len)
 * (len 0: the null sender <>)? user and relay as above. p may be NULL
 * (no policy: always SENDER_OK).
 */
enum sender_verdict sender_policy_check(const struct sender_policy *p,
    const char *user, bool relay, const char *addr, size_t len);

/* Must the From: header match as well ([server] check_from_header)? */
bool sender_policy_check_from(const struct sender_policy *p);

#endif
