/* SPDX-License-Identifier: ISC */
/*
 * dest_policy.c - the destination policy (see dest_policy.h): the
 * relay's own endpoints, the verdict on an address, and the MX hosts
 * that would loop back.
 *
 * Self is an endpoint (address and port), not an address: the relay
 * listens on submission ports and delivers to port 25, so another MTA
 * on this host's port 25 is a legitimate destination (by a route; it is
 * loopback or private anyway), while a connection to our own listener
 * is a loop whatever its address class.
 *
 * Thread: dest_self_init on the main thread at startup; the rest is pure
 * and runs on the delivery workers.
 */
#include "deliver/dest_policy.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "dns/dns.h"

static uint16_t
port_of(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET
	                 ? ((const struct sockaddr_in *)sa)->sin_port
	                 : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Same family, address and port (v4-mapped already unmapped). */
static bool
same_endpoint(
    const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family ||
	    port_of((const struct sockaddr *)a) !=
	        port_of((const struct sockaddr *)b))
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	           &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static void
add_port(uint16_t **ports, size_t *n, uint16_t port)
{
	for (size_t i = 0; i < *n; i++)
		if ((*ports)[i] == port)
			return;
	*ports = xreallocarray(*ports, *n + 1, sizeof(**ports));
	(*ports)[(*n)++] = port;
}

static void
add_addr(struct dest_self *s, const struct sockaddr *sa)
{
	struct sockaddr_storage ss;

	(void)dest_addr_unmap(sa, &ss);
	for (size_t i = 0; i < s->naddrs; i++)
		if (same_endpoint(&s->addrs[i], &ss))
			return;
	s->addrs = xreallocarray(s->addrs, s->naddrs + 1, sizeof(*s->addrs));
	s->addrs[s->naddrs++] = ss;
}

void
dest_self_add(struct dest_self *s, const struct sockaddr *sa)
{
	struct sockaddr_storage ss;

	(void)dest_addr_unmap(sa, &ss);
	if (dest_addr_classify((const struct sockaddr *)&ss) ==
	    DEST_ADDR_UNSPECIFIED) {
		if (ss.ss_family == AF_INET)
			add_port(&s->wild4, &s->nwild4, port_of(sa));
		else
			add_port(&s->wild6, &s->nwild6, port_of(sa));
		return;
	}
	add_addr(s, (const struct sockaddr *)&ss);
}

/* Every interface address of this host, at the wildcard ports of its
 * family. */
static void
add_interfaces(struct dest_self *s)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) != 0) {
		log_warn("delivery: cannot list this host's addresses; only "
		         "loopback counts as this relay's wildcard listeners");
		return;
	}
	for (i = ifa; i != NULL; i = i->ifa_next) {
		struct sockaddr_storage ss;
		int fam = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
		const uint16_t *ports = fam == AF_INET ? s->wild4 : s->wild6;
		size_t n = fam == AF_INET ? s->nwild4 : s->nwild6;

		if (fam != AF_INET && fam != AF_INET6)
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, i->ifa_addr,
		    fam == AF_INET ? sizeof(struct sockaddr_in)
		                   : sizeof(struct sockaddr_in6));
		for (size_t k = 0; k < n; k++) {
			set_port(&ss, ports[k]);
			add_addr(s, (const struct sockaddr *)&ss);
		}
	}
	freeifaddrs(ifa);
}

void
dest_self_init(struct dest_self *s, const struct config_server *cs)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < cs->nlisten; i++)
		dest_self_add(s, (const struct sockaddr *)&cs->listen[i].ss);
	for (size_t i = 0; i < cs->nlisten_tls; i++)
		dest_self_add(
		    s, (const struct sockaddr *)&cs->listen_tls[i].ss);
	if (s->nwild4 + s->nwild6 > 0)
		add_interfaces(s);
}

void
dest_self_fini(struct dest_self *s)
{
	free(s->addrs);
	free(s->wild4);
	free(s->wild6);
	memset(s, 0, sizeof(*s));
}

bool
dest_self_match(const struct dest_self *s, const struct sockaddr *sa)
{
	struct sockaddr_storage ss;
	enum dest_addr_class c;
	const uint16_t *ports;
	size_t n;

	(void)dest_addr_unmap(sa, &ss);
	for (size_t i = 0; i < s->naddrs; i++)
		if (same_endpoint(&s->addrs[i], &ss))
			return true;
	/* a wildcard listener takes whatever reaches this host */
	c = dest_addr_classify((const struct sockaddr *)&ss);
	if (c != DEST_ADDR_LOOPBACK && c != DEST_ADDR_UNSPECIFIED)
		return false;
	ports = ss.ss_family == AF_INET ? s->wild4 : s->wild6;
	n = ss.ss_family == AF_INET ? s->nwild4 : s->nwild6;
	for (size_t i = 0; i < n; i++)
		if (ports[i] == port_of((const struct sockaddr *)&ss))
			return true;
	return false;
}

enum dest_verdict
dest_policy_check(const struct dest_policy *p, const struct sockaddr *sa,
    enum dest_addr_class *cls)
{
	*cls = dest_addr_classify(sa);
	if (p->self != NULL && dest_self_match(p->self, sa))
		return DEST_SELF;
	switch (*cls) {
	case DEST_ADDR_PUBLIC:
		return DEST_OK;
	case DEST_ADDR_PRIVATE:
		return p->allow_private || p->route ? DEST_OK : DEST_REFUSED;
	case DEST_ADDR_LOOPBACK:
		return p->allow_loopback || p->route ? DEST_OK : DEST_REFUSED;
	default:
		return DEST_REFUSED;
	}
}

/* Host names equal, any case, a trailing dot on either ignored. */
static bool
same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la > 0 && la == lb && strncasecmp(a, b, la) == 0;
}

static bool
target_is_self(const struct dest_self *self, const char *hostname,
    uint16_t port, const struct dns_target *t)
{
	if (hostname != NULL && same_name(t->name, hostname))
		return true;
	for (size_t i = 0; i < t->naddrs; i++) {
		struct sockaddr_storage ss = t->addrs[i];

		set_port(&ss, port);
		if (dest_self_match(self, (const struct sockaddr *)&ss))
			return true;
	}
	return false;
}

size_t
dest_policy_prune_self(const struct dest_self *self, const char *hostname,
    uint16_t port, struct dns_target *t, size_t n)
{
	bool found = false;
	uint16_t pref = 0;
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		if ((!found || t[i].pref < pref) &&
		    target_is_self(self, hostname, port, &t[i])) {
			found = true;
			pref = t[i].pref;
		}
	if (!found)
		return n;
	for (size_t i = 0; i < n; i++)
		if (t[i].pref < pref) {
			if (kept != i)
				t[kept] = t[i];
			kept++;
		}
	return kept;
}
