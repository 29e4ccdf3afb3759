/* SPDX-License-Identifier: ISC */
/*
 * dest_policy_test.c - the destination policy: the relay's own endpoints
 * (exact, wildcard, v4-mapped), the verdict on each address class under
 * allow_private, allow_loopback and routes, and the MX hosts dropped as
 * this relay (by name, by address, by preference).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "deliver/dest_policy.h"
#include "dns/dns.h"
#include "../harness.h"

static struct sockaddr_storage
sa(const char *text, uint16_t p)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(p);
	} else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(p);
	}
	return ss;
}

/* sa() as a pointer, valid for the next few calls (a small ring). */
static const struct sockaddr *
addr(const char *text, uint16_t p)
{
	static struct sockaddr_storage ring[8];
	static unsigned n;
	struct sockaddr_storage *s = &ring[n++ % 8];

	*s = sa(text, p);
	return (const struct sockaddr *)s;
}

static void
test_self_exact(void)
{
	struct dest_self s = {0};
	bool ok = true;

	dest_self_add(&s, addr("127.0.0.1", 2587));
	dest_self_add(&s, addr("::ffff:192.0.2.7", 587));
	dest_self_add(&s, addr("127.0.0.1", 2587)); /* once is enough */
	STEP(ok, s.naddrs == 2);
	STEP(ok, dest_self_match(&s, addr("127.0.0.1", 2587)));
	STEP(ok, dest_self_match(&s, addr("::ffff:127.0.0.1", 2587)));
	STEP(ok, !dest_self_match(&s, addr("127.0.0.1", 25)));
	STEP(ok, !dest_self_match(&s, addr("127.0.0.2", 2587)));
	STEP(ok, !dest_self_match(&s, addr("::1", 2587)));
	STEP(ok, dest_self_match(&s, addr("192.0.2.7", 587)));
	STEP(ok, !dest_self_match(&s, addr("192.0.2.8", 587)));
	STEP(ok, !dest_self_match(&s, addr("0.0.0.0", 2587)));
	dest_self_fini(&s);
}

static void
test_self_wild(void)
{
	struct dest_self s = {0};
	bool ok = true;

	dest_self_add(&s, addr("0.0.0.0", 587));
	dest_self_add(&s, addr("::", 465));
	STEP(ok, s.naddrs == 0 && s.nwild4 == 1 && s.nwild6 == 1);
	/* whatever reaches this host at that port */
	STEP(ok, dest_self_match(&s, addr("127.0.0.1", 587)));
	STEP(ok, dest_self_match(&s, addr("127.3.4.5", 587)));
	STEP(ok, dest_self_match(&s, addr("0.0.0.0", 587)));
	STEP(ok, dest_self_match(&s, addr("::ffff:127.0.0.1", 587)));
	STEP(ok, !dest_self_match(&s, addr("127.0.0.1", 25)));
	STEP(ok, !dest_self_match(&s, addr("::1", 587))); /* v6only */
	STEP(ok, dest_self_match(&s, addr("::1", 465)));
	STEP(ok, dest_self_match(&s, addr("::", 465)));
	STEP(ok, !dest_self_match(&s, addr("127.0.0.1", 465)));
	/* another host's address: only if an interface has it */
	STEP(ok, !dest_self_match(&s, addr("192.0.2.1", 587)));
	dest_self_fini(&s);
}

/* From a config: listeners, wildcard ones with this host's interfaces
 * (loopback's 127.0.0.1 at least). */
static void
test_self_init(void)
{
	struct config *c = config_defaults(); /* listen = 0.0.0.0:587 */
	struct dest_self s;
	bool ok = true;

	dest_self_init(&s, &c->server);
	STEP(ok, s.nwild4 == 1 && s.wild4[0] == 587);
	STEP(ok, dest_self_match(&s, addr("127.0.0.1", 587)));
	STEP(ok, !dest_self_match(&s, addr("127.0.0.1", 25)));
	dest_self_fini(&s);
	dest_self_fini(&s); /* zeroed: harmless */
	config_unref(c);
}

static void
test_verdicts(void)
{
	struct dest_self self = {0};
	struct dest_policy p = {.self = &self};
	enum dest_addr_class c;
	bool ok = true;

	dest_self_add(&self, addr("127.0.0.1", 2587));
	/* default: the Internet only */
	STEP(ok, dest_policy_check(&p, addr("192.0.2.1", 25), &c) == DEST_OK &&
	             c == DEST_ADDR_PUBLIC);
	STEP(ok,
	    dest_policy_check(&p, addr("127.0.0.1", 25), &c) == DEST_REFUSED &&
	        c == DEST_ADDR_LOOPBACK);
	STEP(ok,
	    dest_policy_check(&p, addr("10.1.2.3", 25), &c) == DEST_REFUSED &&
	        c == DEST_ADDR_PRIVATE);
	STEP(ok, dest_policy_check(&p, addr("169.254.169.254", 25), &c) ==
	             DEST_REFUSED);
	STEP(ok, dest_policy_check(&p, addr("::1", 25), &c) == DEST_REFUSED);
	STEP(
	    ok, dest_policy_check(&p, addr("0.0.0.0", 25), &c) == DEST_REFUSED);
	STEP(ok, dest_policy_check(&p, addr("::ffff:127.0.0.1", 25), &c) ==
	             DEST_REFUSED);
	STEP(ok,
	    dest_policy_check(&p, addr("127.0.0.1", 2587), &c) == DEST_SELF);
	/* allow_private: private only */
	p.allow_private = true;
	STEP(ok, dest_policy_check(&p, addr("10.1.2.3", 25), &c) == DEST_OK);
	STEP(ok, dest_policy_check(&p, addr("fd00::1", 25), &c) == DEST_OK);
	STEP(ok,
	    dest_policy_check(&p, addr("127.0.0.1", 25), &c) == DEST_REFUSED);
	/* allow_loopback: loopback too, never the rest */
	p.allow_private = false;
	p.allow_loopback = true;
	STEP(ok, dest_policy_check(&p, addr("127.0.0.1", 25), &c) == DEST_OK);
	STEP(ok, dest_policy_check(&p, addr("::1", 25), &c) == DEST_OK);
	STEP(ok,
	    dest_policy_check(&p, addr("10.1.2.3", 25), &c) == DEST_REFUSED);
	STEP(
	    ok, dest_policy_check(&p, addr("0.0.0.0", 25), &c) == DEST_REFUSED);
	STEP(ok,
	    dest_policy_check(&p, addr("127.0.0.1", 2587), &c) == DEST_SELF);
	/* a route's host: private and loopback; never link-local, never
	 * this relay */
	p.allow_loopback = false;
	p.route = true;
	STEP(ok, dest_policy_check(&p, addr("10.1.2.3", 25), &c) == DEST_OK);
	STEP(ok, dest_policy_check(&p, addr("127.0.0.1", 25), &c) == DEST_OK);
	STEP(ok, dest_policy_check(&p, addr("169.254.169.254", 25), &c) ==
	             DEST_REFUSED);
	STEP(ok,
	    dest_policy_check(&p, addr("224.0.0.1", 25), &c) == DEST_REFUSED &&
	        c == DEST_ADDR_MULTICAST);
	STEP(ok,
	    dest_policy_check(&p, addr("127.0.0.1", 2587), &c) == DEST_SELF);
	dest_self_fini(&self);
}

static struct dns_target
target(const char *name, uint16_t pref, const char *a1, const char *a2)
{
	struct dns_target t;

	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.pref = pref;
	t.addrs[t.naddrs++] = sa(a1, 0);
	if (a2 != NULL)
		t.addrs[t.naddrs++] = sa(a2, 0);
	return t;
}

static void
test_prune(void)
{
	struct dest_self self = {0};
	struct dns_target t[4];
	bool ok = true;

	dest_self_add(&self, addr("127.0.0.1", 2525));
	/* no self: all kept */
	t[0] = target("a.test", 10, "192.0.2.1", NULL);
	t[1] = target("b.test", 20, "192.0.2.2", NULL);
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 2525, t, 2) == 2);
	/* this relay's listener at 20: 20 and after go, 10 stays */
	t[1] = target("b.test", 20, "192.0.2.2", "127.0.0.1");
	t[2] = target("c.test", 20, "192.0.2.3", NULL);
	t[3] = target("d.test", 30, "192.0.2.4", NULL);
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 2525, t, 4) == 1);
	STEP(ok, strcmp(t[0].name, "a.test") == 0);
	/* the same address at another port is not this relay */
	t[0] = target("a.test", 10, "127.0.0.1", NULL);
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 25, t, 1) == 1);
	/* best MX is this relay: nothing left (5.4.6) */
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 2525, t, 1) == 0);
	/* by name, any case, trailing dot */
	t[0] = target("mx1.test", 5, "192.0.2.1", NULL);
	t[1] = target("Relay.Test.", 10, "192.0.2.9", NULL);
	t[2] = target("mx3.test", 15, "192.0.2.3", NULL);
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 25, t, 3) == 1);
	t[0] = target("relay.test", 0, "192.0.2.9", NULL); /* implicit MX */
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 25, t, 1) == 0);
	/* equal preferences: ahead or behind, all of them go; order kept */
	t[0] = target("x.test", 10, "192.0.2.1", NULL);
	t[1] = target("y.test", 10, "127.0.0.1", NULL);
	t[2] = target("z.test", 5, "192.0.2.3", NULL);
	t[3] = target("w.test", 7, "192.0.2.4", NULL);
	STEP(ok, dest_policy_prune_self(&self, "relay.test", 2525, t, 4) == 2);
	STEP(ok, strcmp(t[0].name, "z.test") == 0);
	STEP(ok, strcmp(t[1].name, "w.test") == 0);
	/* no hostname: addresses only */
	t[0] = target("relay.test", 0, "192.0.2.9", NULL);
	STEP(ok, dest_policy_prune_self(&self, NULL, 25, t, 1) == 1);
	dest_self_fini(&self);
}

static const struct harness_case cases[] = {
    {"self_exact", test_self_exact},
    {"self_wild", test_self_wild},
    {"self_init", test_self_init},
    {"verdicts", test_verdicts},
    {"prune", test_prune},
};

HARNESS_MAIN(cases)
