/* SPDX-License-Identifier: ISC */
/*
 * dest_policy.h - where delivery may connect: the destination policy.
 *
 * A relay that connects wherever DNS (or a sender's address literal)
 * points it is a way into the networks behind it. So the address a
 * worker is about to connect to, after resolution (no DNS-rebinding gap:
 * nothing is resolved after the check), is judged here first:
 *
 *  - the relay's own listener (address and port; a wildcard listener
 *    counts for every local address) is never a destination: a best MX
 *    that is this relay, by address or by [server] hostname, fails the
 *    mail with 5.4.6 "loops back to myself", and MX hosts at or after its
 *    preference are dropped (as Postfix does);
 *  - unspecified, link-local, multicast, broadcast and reserved addresses
 *    are never connected to;
 *  - private ones only under [delivery] allow_private or through a route
 *    (the admin named that host), loopback ones only under
 *    [delivery] allow_loopback (tests, benchmarks) or through a route.
 *
 * Everything but dest_self_init is pure. dest_self is built once at
 * startup (listeners cannot change live) and then only read, by every
 * worker at once.
 */
#ifndef MTA_DEST_POLICY_H
#define MTA_DEST_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deliver/dest_addr.h"

struct config_server;
struct dns_target;

/* The relay's own listening endpoints. */
struct dest_self {
	struct sockaddr_storage *addrs; /* with ports; v4-mapped unmapped */
	size_t naddrs;
	uint16_t *wild4, *wild6; /* ports of 0.0.0.0 and [::] listeners */
	size_t nwild4, nwild6;
};

/*
 * dest_self_init - s from the listeners of cs (listen and listen_tls):
 * each specific address as it is; a wildcard one as its port, plus every
 * address of this host's interfaces (getifaddrs) with that port. cs is
 * borrowed for the call. Startup, main thread. An interface list that
 * cannot be read is logged; loopback and unspecified addresses still
 * count for a wildcard port. dest_self_fini frees (s zeroed: a no-op).
 */
void dest_self_init(struct dest_self *s, const struct config_server *cs);
void dest_self_fini(struct dest_self *s);

/* Add one endpoint (sa with its port; 0.0.0.0 or :: = a wildcard port). */
void dest_self_add(struct dest_self *s, const struct sockaddr *sa);

/*
 * dest_self_match - would a connection to sa (with its port) reach the
 * relay itself? An exact listener, or a wildcard listener's port on a
 * loopback, unspecified or interface address. Pure.
 */
bool dest_self_match(const struct dest_self *s, const struct sockaddr *sa);

/* What a job may reach. */
struct dest_policy {
	bool allow_private;  /* [delivery] allow_private */
	bool allow_loopback; /* [delivery] allow_loopback */
	bool route;          /* the address is a route's host */
	const struct dest_self *self;
};

enum dest_verdict {
	DEST_OK,
	DEST_SELF,    /* the relay itself: a mail loop */
	DEST_REFUSED, /* the class is not allowed: *cls says which */
};

/*
 * dest_policy_check - may a delivery connect to sa (with its port)?
 * *cls (out) is sa's class in every case. Pure.
 */
enum dest_verdict dest_policy_check(const struct dest_policy *p,
    const struct sockaddr *sa, enum dest_addr_class *cls);

/*
 * dest_policy_prune_self - drop the targets (MX hosts, best first) that
 * are the relay itself, and every one at or after the lowest preference
 * such a target has: one named hostname (any case, trailing dot
 * ignored), or with an address that is self at port. t[0..n) is
 * compacted in place, order kept; returns how many remain: 0 when the
 * best one is this relay (the mail loops back), n when none is. Pure.
 */
size_t dest_policy_prune_self(const struct dest_self *self,
    const char *hostname, uint16_t port, struct dns_target *t, size_t n);

#endif
