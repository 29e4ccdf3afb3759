/* SPDX-License-Identifier: ISC */
/*
 * dns_mx.c - MX records to the ordered list of delivery targets. Pure.
 *
 * Rules (RFC 5321 5.1, RFC 7505), in the order they apply:
 *  - NXDOMAIN is permanent (DNS_NOTFOUND); any other failed MX lookup is
 *    DNS_TEMPFAIL, never a reason to fall back to A records.
 *  - NODATA (the domain exists, has no MX): the domain itself, pref 0.
 *  - One MX with preference 0 and exchange "." is a null MX: DNS_NULLMX.
 *    A "." among other exchanges is skipped; only "." left is null MX too.
 *  - Ascending preference; equal preferences in random order, so load
 *    spreads as the domain's owner intended; a host listed twice is kept
 *    once, at its best preference; at most DNS_MAX_TARGETS hosts.
 *  - An exchange that is an IP address (bare or [bracketed]) is used as
 *    that address: RFC 5321 says it must be a name, Postfix accepts it.
 *  - A host whose lookups found no address is skipped; none left is
 *    DNS_TEMPFAIL, except for the implicit MX or a route host whose name
 *    definitely has no address (NXDOMAIN or NODATA for A and AAAA), which
 *    is DNS_NOTFOUND.
 * Randomness comes from the caller's rng, so tests are deterministic.
 */
#include "dns/dns_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "base/str.h"

static void
dns_shuffle(size_t *idx, size_t n, dns_rng_fn *rng, void *arg)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rng(arg) % i, t = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}

static void
dns_host_init(struct dns_mx_host *h, const char *name, uint16_t pref)
{
	memset(h, 0, sizeof(*h));
	str_copy(h->name, sizeof(h->name), name);
	h->pref = pref;
	h->a_status = h->aaaa_status = DNS_TEMPFAIL;
	h->a_reason = h->aaaa_reason = "not looked up";
	h->addr_secure = true; /* until a reply without AD */
}

/* Add host `name`; an IP address becomes a literal host. */
static void
dns_plan_add(struct dns_mx_plan *plan, const char *name, uint16_t pref)
{
	struct dns_mx_host *h;
	struct dns_addr a;

	for (size_t i = 0; i < plan->nhosts; i++)
		if (strcmp(plan->hosts[i].name, name) == 0)
			return;
	if (plan->nhosts == DNS_MAX_TARGETS)
		return;
	h = &plan->hosts[plan->nhosts++];
	dns_host_init(h, name, pref);
	if (!dns_addr_parse(name, &a))
		return;
	h->literal = true;
	h->a_status = h->aaaa_status = DNS_OK;
	h->a_reason = h->aaaa_reason = "IP address";
	if (a.family == AF_INET)
		h->v4[h->nv4++] = a;
	else
		h->v6[h->nv6++] = a;
}

static void
dns_plan_records(struct dns_mx_plan *plan, const struct dns_answer *mx,
    dns_rng_fn *rng, void *arg)
{
	size_t idx[DNS_ANSWER_MAX], n = 0;

	for (size_t i = 0; i < mx->nmx && i < DNS_ANSWER_MAX; i++)
		if (strcmp(mx->mx[i].host, ".") != 0)
			idx[n++] = i;
	/* Insertion sort: stable, and n <= DNS_ANSWER_MAX. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i;
		     j > 0 && mx->mx[idx[j - 1]].pref > mx->mx[idx[j]].pref;
		     j--) {
			size_t t = idx[j];

			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1;
		     j < n && mx->mx[idx[j]].pref == mx->mx[idx[i]].pref; j++)
			;
		dns_shuffle(idx + i, j - i, rng, arg);
	}
	for (size_t i = 0; i < n; i++)
		dns_plan_add(plan, mx->mx[idx[i]].host, mx->mx[idx[i]].pref);
}

void
dns_mx_plan(struct dns_mx_plan *plan, const char *domain,
    const struct dns_answer *mx, dns_rng_fn *rng, void *rngarg)
{
	memset(plan, 0, sizeof(*plan));
	switch (mx->status) {
	case DNS_OK:
		break;
	case DNS_NOTFOUND:
		plan->status = DNS_NOTFOUND;
		str_fmt(plan->reason, sizeof(plan->reason),
		    "domain %s does not exist (NXDOMAIN)", domain);
		return;
	default:
		plan->status = mx->status;
		str_fmt(plan->reason, sizeof(plan->reason),
		    "MX lookup for %s failed: %s", domain, mx->reason);
		return;
	}
	plan->mx_secure = mx->ad;
	if (mx->nmx == 0) {
		plan->implicit = true;
		dns_plan_add(plan, domain, 0);
		return;
	}
	dns_plan_records(plan, mx, rng, rngarg);
	if (plan->nhosts == 0) {
		/* The single "." of RFC 7505, or only "." exchanges. */
		plan->status = DNS_NULLMX;
		str_fmt(plan->reason, sizeof(plan->reason),
		    "domain %s does not accept mail (null MX, RFC 7505)",
		    domain);
	}
}

void
dns_mx_plan_host(struct dns_mx_plan *plan, const char *name)
{
	memset(plan, 0, sizeof(*plan));
	plan->implicit = true;
	plan->host = true;
	plan->mx_secure = true; /* no MX: only the addresses count */
	dns_plan_add(plan, name, 0);
}

void
dns_mx_host_add(
    struct dns_mx_host *h, uint16_t qtype, const struct dns_answer *ans)
{
	if (qtype == DNS_T_A) {
		h->a_status = ans->status;
		h->a_reason = ans->reason;
	} else {
		h->aaaa_status = ans->status;
		h->aaaa_reason = ans->reason;
	}
	if (ans->ncname > 0)
		h->cname = true;
	if (ans->ncname > 0 && ans->naddrs > 0 && h->expanded[0] == '\0')
		str_copy(h->expanded, sizeof(h->expanded), ans->cname);
	h->answered++;
	if (!ans->ad)
		h->addr_secure = false;
	if (!ans->ad && ans->status != DNS_TEMPFAIL)
		h->addr_insecure = true; /* an answer: the zone is unsigned */
	for (size_t i = 0; i < ans->naddrs; i++) {
		const struct dns_addr *a = &ans->addrs[i];

		if (a->family == AF_INET && h->nv4 < DNS_ANSWER_MAX)
			h->v4[h->nv4++] = *a;
		else if (a->family == AF_INET6 && h->nv6 < DNS_ANSWER_MAX)
			h->v6[h->nv6++] = *a;
	}
}

bool
dns_mx_host_secure(const struct dns_mx_plan *plan, size_t i)
{
	const struct dns_mx_host *h = &plan->hosts[i];

	return plan->mx_secure && !h->literal && h->answered == 2 &&
	       h->addr_secure && h->nv4 + h->nv6 > 0;
}

bool
dns_mx_host_addr_fail(struct dns_mx_plan *plan, size_t i)
{
	struct dns_mx_host *h = &plan->hosts[i];
	const char *why;

	if (!plan->mx_secure || plan->host || h->literal || h->answered != 2 ||
	    h->addr_insecure)
		return false;
	if (h->a_status == DNS_TEMPFAIL)
		why = h->a_reason;
	else if (h->aaaa_status == DNS_TEMPFAIL)
		why = h->aaaa_reason;
	else
		return false;
	h->dane = DNS_DANE_FAIL;
	str_fmt(h->dane_reason, sizeof(h->dane_reason),
	    "address lookup for %s failed under a validated MX: %s", h->name,
	    why);
	return true;
}

const char *
dns_mx_host_tlsa_first(struct dns_mx_host *h)
{
	h->tlsa_expanded =
	    h->expanded[0] != '\0' && strcmp(h->expanded, h->name) != 0;
	return h->tlsa_expanded ? h->expanded : h->name;
}

bool
dns_mx_host_tlsa(struct dns_mx_host *h, const struct dns_answer *ans)
{
	const char *base = h->tlsa_expanded ? h->expanded : h->name;
	bool again = h->tlsa_expanded;

	h->tlsa_expanded = false;
	h->ntlsa = h->tlsa_dropped = 0;
	h->tlsa_base[0] = '\0';
	if (ans->status != DNS_OK && ans->status != DNS_NOTFOUND) {
		/* RFC 7672 2.2.3: a failed TLSA lookup makes the host
		 * unusable (a validating resolver says SERVFAIL for bogus
		 * data: an attacker could be behind it) */
		h->dane = DNS_DANE_FAIL;
		str_fmt(h->dane_reason, sizeof(h->dane_reason),
		    "TLSA lookup for %s failed: %s", base, ans->reason);
		return false;
	}
	if (!ans->ad) {
		h->dane = DNS_DANE_NONE; /* insecure: DANE does not apply */
		return again;
	}
	if (ans->status == DNS_NOTFOUND || ans->nodata) {
		h->dane = DNS_DANE_NODATA;
		return again;
	}
	h->dane = DNS_DANE_RECORDS;
	if (again)
		str_copy(h->tlsa_base, sizeof(h->tlsa_base), base);
	h->ntlsa = (uint8_t)ans->ntlsa;
	h->tlsa_dropped =
	    (uint8_t)(ans->tlsa_dropped > 255 ? 255 : ans->tlsa_dropped);
	memcpy(h->tlsa, ans->tlsa, ans->ntlsa * sizeof(ans->tlsa[0]));
	return false;
}

static void
dns_sockaddr(struct sockaddr_storage *ss, const struct dns_addr *a)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a->a, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a->a, 16);
	}
}

/* Up to max addresses of one family, in random order. */
static size_t
dns_target_fill(struct dns_target *t, const struct dns_addr *addrs, size_t n,
    size_t max, dns_rng_fn *rng, void *arg)
{
	size_t idx[DNS_ANSWER_MAX];

	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	dns_shuffle(idx, n, rng, arg);
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		dns_sockaddr(&t->addrs[t->naddrs++], &addrs[idx[i]]);
	return n;
}

static void
dns_target_set(struct dns_target *t, const struct dns_mx_host *h,
    dns_rng_fn *rng, void *arg)
{
	size_t n6 = h->nv6 < DNS_MAX_ADDRS / 2 ? h->nv6 : DNS_MAX_ADDRS / 2;
	size_t n4;

	memset(t, 0, sizeof(*t));
	str_copy(t->name, sizeof(t->name), h->name);
	t->pref = h->pref;
	/* Both families get room when both exist; IPv4 first. */
	n4 = dns_target_fill(t, h->v4, h->nv4, DNS_MAX_ADDRS - n6, rng, arg);
	dns_target_fill(t, h->v6, h->nv6, DNS_MAX_ADDRS - n4, rng, arg);
	t->dane = h->dane;
	str_copy(t->dane_reason, sizeof(t->dane_reason), h->dane_reason);
	t->ntlsa = h->ntlsa;
	t->tlsa_dropped = h->tlsa_dropped;
	memcpy(t->tlsa, h->tlsa, h->ntlsa * sizeof(h->tlsa[0]));
	str_copy(t->tlsa_base, sizeof(t->tlsa_base), h->tlsa_base);
}

bool
dns_literal_target(const char *host, struct dns_target *t)
{
	struct dns_mx_host h;
	struct dns_addr a;

	/* what dns_mx_plan_host() makes of it, without the whole plan */
	if (!dns_addr_parse(host, &a))
		return false;
	dns_host_init(&h, host, 0);
	if (a.family == AF_INET)
		h.v4[h.nv4++] = a;
	else
		h.v6[h.nv6++] = a;
	dns_target_set(t, &h, NULL, NULL); /* one address: no shuffle */
	return true;
}

/* Did every lookup say the name has no address, rather than fail? */
static bool
dns_plan_definite(const struct dns_mx_plan *plan)
{
	for (size_t i = 0; i < plan->nhosts; i++) {
		const struct dns_mx_host *h = &plan->hosts[i];

		if (h->a_status == DNS_TEMPFAIL ||
		    h->aaaa_status == DNS_TEMPFAIL)
			return false;
	}
	return true;
}

static void
dns_finish_none(const struct dns_mx_plan *plan, struct dns_req *req)
{
	const struct dns_mx_host *h = &plan->hosts[0];
	const char *why =
	    h->a_status == DNS_TEMPFAIL || h->aaaa_status != DNS_TEMPFAIL
	        ? h->a_reason
	        : h->aaaa_reason;

	if (plan->implicit && dns_plan_definite(plan)) {
		req->status = DNS_NOTFOUND;
		str_fmt(req->reason, sizeof(req->reason),
		    plan->host ? "host %s has no address: %s"
		               : "domain %s has no MX and no address: %s",
		    h->name, why);
		return;
	}
	req->status = DNS_TEMPFAIL;
	if (plan->host || plan->implicit)
		str_fmt(req->reason, sizeof(req->reason),
		    "address lookup for %s failed: %s", h->name, why);
	else
		str_fmt(req->reason, sizeof(req->reason),
		    "no MX host has an address (%zu tried; %s: %s)",
		    plan->nhosts, h->name, why);
}

void
dns_mx_finish(const struct dns_mx_plan *plan, dns_rng_fn *rng, void *rngarg,
    struct dns_req *req)
{
	req->ntargets = 0;
	if (plan->status != DNS_OK) {
		req->status = plan->status;
		str_copy(req->reason, sizeof(req->reason), plan->reason);
		return;
	}
	for (size_t i = 0; i < plan->nhosts; i++) {
		const struct dns_mx_host *h = &plan->hosts[i];

		if (h->nv4 + h->nv6 == 0)
			continue;
		dns_target_set(&req->targets[req->ntargets], h, rng, rngarg);
		req->targets[req->ntargets++].secure =
		    plan->mx_secure && h->addr_secure && !h->literal;
	}
	if (req->ntargets == 0) {
		dns_finish_none(plan, req);
		return;
	}
	req->status = DNS_OK;
	str_copy(req->reason, sizeof(req->reason), "ok");
}
