/* SPDX-License-Identifier: ISC */
/*
 * dns_mx_test.c - MX selection: preference order, shuffle among equals
 * with a fixed rng, implicit MX, null MX, NXDOMAIN and SERVFAIL, IP
 * exchanges, duplicates and caps, hosts without addresses, and the
 * address order and cap of each target.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/dns_int.h"
#include "../harness.h"

/* Returns seq[0], seq[1], ... then zeros. */
struct seq {
	const uint32_t *v;
	size_t n, i;
};

static uint32_t
seq_rng(void *arg)
{
	struct seq *s = arg;

	return s->i < s->n ? s->v[s->i++] : 0;
}

static uint32_t
xs_rng(void *arg)
{
	uint64_t *x = arg;

	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return (uint32_t)(*x >> 16);
}

static void
mx_answer(struct dns_answer *a, const char *const *hosts, const uint16_t *prefs,
    size_t n)
{
	memset(a, 0, sizeof(*a));
	a->status = DNS_OK;
	a->reason = "ok";
	a->nmx = n;
	for (size_t i = 0; i < n; i++) {
		a->mx[i].pref = prefs[i];
		strcpy(a->mx[i].host, hosts[i]);
	}
}

static void
addr_answer(struct dns_answer *a, int family, const char *const *ips, size_t n)
{
	memset(a, 0, sizeof(*a));
	a->status = DNS_OK;
	a->reason = n ? "ok" : "no records of that type (NODATA)";
	a->nodata = n == 0;
	a->naddrs = n;
	for (size_t i = 0; i < n; i++) {
		a->addrs[i].family = family;
		if (inet_pton(family, ips[i], a->addrs[i].a) != 1)
			abort();
	}
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET)
		return inet_ntop(AF_INET,
		    &((const struct sockaddr_in *)ss)->sin_addr, buf,
		    (socklen_t)len);
	return inet_ntop(AF_INET6,
	    &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)len);
}

static void
test_preference_order(void)
{
	static const char *const h[] = {
	    "c.example", "a.example", "d.example", "b.example"};
	static const uint16_t p[] = {20, 10, 30, 10};
	static const uint32_t keep[] = {1}, swap[] = {0};
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct seq s = {keep, 1, 0};

	mx_answer(&a, h, p, 4);
	dns_mx_plan(&plan, "example", &a, seq_rng, &s);
	CHECK(plan.status == DNS_OK && !plan.implicit && plan.nhosts == 4);
	CHECK(strcmp(plan.hosts[0].name, "a.example") == 0);
	CHECK(strcmp(plan.hosts[1].name, "b.example") == 0);
	CHECK(strcmp(plan.hosts[2].name, "c.example") == 0);
	CHECK(strcmp(plan.hosts[3].name, "d.example") == 0);
	CHECK(plan.hosts[0].pref == 10 && plan.hosts[2].pref == 20 &&
	      plan.hosts[3].pref == 30);
	/* rng 0 for the pair swaps it; the singletons draw nothing. */
	s = (struct seq){swap, 1, 0};
	dns_mx_plan(&plan, "example", &a, seq_rng, &s);
	CHECK(s.i == 1);
	CHECK(strcmp(plan.hosts[0].name, "b.example") == 0);
	CHECK(strcmp(plan.hosts[1].name, "a.example") == 0);
	CHECK(strcmp(plan.hosts[2].name, "c.example") == 0);
}

/* Fisher-Yates over 3 equals with a fixed sequence, by hand:
 * [x y z], i=3 j=2%3=2 keep, i=2 j=5%2=1 keep -> x y z;
 * [x y z], i=3 j=0 -> z y x, i=2 j=0 -> y z x. */
static void
test_shuffle_fixed(void)
{
	static const char *const h[] = {"x", "y", "z", "w"};
	static const uint16_t p[] = {5, 5, 5, 1};
	static const uint32_t s1[] = {2, 5}, s2[] = {0, 0};
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct seq s = {s1, 2, 0};

	mx_answer(&a, h, p, 4);
	dns_mx_plan(&plan, "example", &a, seq_rng, &s);
	CHECK(plan.nhosts == 4 && strcmp(plan.hosts[0].name, "w") == 0);
	CHECK(strcmp(plan.hosts[1].name, "x") == 0 &&
	      strcmp(plan.hosts[2].name, "y") == 0 &&
	      strcmp(plan.hosts[3].name, "z") == 0);
	s = (struct seq){s2, 2, 0};
	dns_mx_plan(&plan, "example", &a, seq_rng, &s);
	CHECK(strcmp(plan.hosts[1].name, "y") == 0 &&
	      strcmp(plan.hosts[2].name, "z") == 0 &&
	      strcmp(plan.hosts[3].name, "x") == 0);
}

/* Each of three equal hosts comes first about a third of the time, and
 * the better preference always comes first. */
static void
test_shuffle_spread(void)
{
	static const char *const h[] = {"a", "b", "c", "best"};
	static const uint16_t p[] = {10, 10, 10, 0};
	struct dns_mx_plan plan;
	struct dns_answer a;
	uint64_t x = 88172645463325252ull;
	unsigned first[3] = {0};

	mx_answer(&a, h, p, 4);
	for (int i = 0; i < 3000; i++) {
		dns_mx_plan(&plan, "example", &a, xs_rng, &x);
		CHECK(plan.nhosts == 4);
		CHECK(strcmp(plan.hosts[0].name, "best") == 0);
		first[plan.hosts[1].name[0] - 'a']++;
	}
	for (int i = 0; i < 3; i++)
		CHECK(first[i] > 850 && first[i] < 1150);
}

static void
test_implicit_mx(void)
{
	struct dns_mx_plan plan;
	struct dns_answer a;
	uint64_t x = 1;

	addr_answer(&a, AF_INET, NULL, 0); /* NODATA for MX */
	dns_mx_plan(&plan, "example.org", &a, xs_rng, &x);
	CHECK(plan.status == DNS_OK && plan.implicit && !plan.host);
	CHECK(plan.nhosts == 1 && plan.hosts[0].pref == 0);
	CHECK(strcmp(plan.hosts[0].name, "example.org") == 0);
	CHECK(!plan.hosts[0].literal);
}

static void
test_null_mx(void)
{
	static const char *const dot[] = {"."}, *const mixed[] = {
	                                            ".", "mx.example"};
	static const uint16_t p0[] = {0}, p10[] = {10}, pm[] = {0, 10};
	struct dns_mx_plan plan;
	struct dns_answer a;
	uint64_t x = 1;

	mx_answer(&a, dot, p0, 1);
	dns_mx_plan(&plan, "example.org", &a, xs_rng, &x);
	CHECK(plan.status == DNS_NULLMX && plan.nhosts == 0);
	CHECK(strstr(plan.reason, "null MX") != NULL);
	CHECK(strstr(plan.reason, "example.org") != NULL);
	/* Only root exchanges, even at another preference: no mail. */
	mx_answer(&a, dot, p10, 1);
	dns_mx_plan(&plan, "example.org", &a, xs_rng, &x);
	CHECK(plan.status == DNS_NULLMX);
	/* A "." beside a real exchange is skipped. */
	mx_answer(&a, mixed, pm, 2);
	dns_mx_plan(&plan, "example.org", &a, xs_rng, &x);
	CHECK(plan.status == DNS_OK && plan.nhosts == 1);
	CHECK(strcmp(plan.hosts[0].name, "mx.example") == 0);
}

static void
test_mx_failures(void)
{
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct dns_req *req = calloc(1, sizeof(*req));
	uint64_t x = 1;

	dns_answer_fail(&a, DNS_NOTFOUND, "NXDOMAIN: no such domain");
	dns_mx_plan(&plan, "nope.example", &a, xs_rng, &x);
	CHECK(plan.status == DNS_NOTFOUND);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_NOTFOUND && req->ntargets == 0);
	CHECK(strstr(req->reason, "nope.example") != NULL);
	dns_answer_fail(&a, DNS_TEMPFAIL, "SERVFAIL from server");
	dns_mx_plan(&plan, "sf.example", &a, xs_rng, &x);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_TEMPFAIL);
	CHECK(strstr(req->reason, "SERVFAIL") != NULL);
	CHECK(dns_status_permanent(DNS_NOTFOUND) &&
	      dns_status_permanent(DNS_NULLMX) &&
	      !dns_status_permanent(DNS_TEMPFAIL));
	free(req);
}

static void
test_ip_exchange(void)
{
	static const char *const h[] = {
	    "[192.0.2.1]", "192.0.2.2", "2001:db8::3", "mx.example"};
	static const uint16_t p[] = {10, 20, 30, 40};
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct dns_req *req = calloc(1, sizeof(*req));
	uint64_t x = 1;
	char buf[64];

	mx_answer(&a, h, p, 4);
	dns_mx_plan(&plan, "example", &a, xs_rng, &x);
	CHECK(plan.nhosts == 4);
	CHECK(plan.hosts[0].literal && plan.hosts[0].nv4 == 1);
	CHECK(plan.hosts[1].literal && plan.hosts[1].nv4 == 1);
	CHECK(plan.hosts[2].literal && plan.hosts[2].nv6 == 1);
	CHECK(!plan.hosts[3].literal);
	/* mx.example's lookups fail: the literals still make targets. */
	dns_answer_fail(&a, DNS_TEMPFAIL, "timeout");
	dns_mx_host_add(&plan.hosts[3], DNS_T_A, &a);
	dns_mx_host_add(&plan.hosts[3], DNS_T_AAAA, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_OK && req->ntargets == 3);
	CHECK(strcmp(addr_str(&req->targets[0].addrs[0], buf, sizeof(buf)),
	          "192.0.2.1") == 0);
	CHECK(strcmp(addr_str(&req->targets[1].addrs[0], buf, sizeof(buf)),
	          "192.0.2.2") == 0);
	CHECK(strcmp(addr_str(&req->targets[2].addrs[0], buf, sizeof(buf)),
	          "2001:db8::3") == 0);
	CHECK(req->targets[2].pref == 30);
	free(req);
}

static void
test_duplicates_and_cap(void)
{
	static const char *const dup[] = {"b", "a", "a", "b"};
	static const uint16_t pd[] = {20, 30, 10, 5};
	struct dns_mx_plan plan;
	struct dns_answer a;
	uint64_t x = 1;

	mx_answer(&a, dup, pd, 4);
	dns_mx_plan(&plan, "example", &a, xs_rng, &x);
	CHECK(plan.nhosts == 2);
	CHECK(strcmp(plan.hosts[0].name, "b") == 0 && plan.hosts[0].pref == 5);
	CHECK(strcmp(plan.hosts[1].name, "a") == 0 && plan.hosts[1].pref == 10);
	/* 32 distinct hosts: the best DNS_MAX_TARGETS are kept. */
	memset(&a, 0, sizeof(a));
	a.status = DNS_OK;
	a.nmx = DNS_ANSWER_MAX;
	for (size_t i = 0; i < DNS_ANSWER_MAX; i++) {
		a.mx[i].pref = (uint16_t)(100 - i);
		snprintf(a.mx[i].host, sizeof(a.mx[i].host), "mx%zu", i);
	}
	dns_mx_plan(&plan, "example", &a, xs_rng, &x);
	CHECK(plan.nhosts == DNS_MAX_TARGETS);
	CHECK(plan.hosts[0].pref == 100 - (DNS_ANSWER_MAX - 1));
	for (size_t i = 1; i < plan.nhosts; i++)
		CHECK(plan.hosts[i].pref > plan.hosts[i - 1].pref);
}

/* Lookups for two MX hosts: the first has none, the second has some. */
static void
test_finish_skips_hosts(void)
{
	static const char *const h[] = {"mx1.example", "mx2.example"};
	static const uint16_t p[] = {10, 20};
	static const char *const v4[] = {"127.0.0.2"};
	static const char *const v6[] = {"::1"};
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct dns_req *req = calloc(1, sizeof(*req));
	uint64_t x = 1;
	char buf[64];

	mx_answer(&a, h, p, 2);
	dns_mx_plan(&plan, "example", &a, xs_rng, &x);
	dns_answer_fail(&a, DNS_NOTFOUND, "NXDOMAIN: no such domain");
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a);
	addr_answer(&a, AF_INET6, v6, 1);
	dns_mx_host_add(&plan.hosts[1], DNS_T_AAAA, &a);
	addr_answer(&a, AF_INET, v4, 1);
	dns_mx_host_add(&plan.hosts[1], DNS_T_A, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_OK && req->ntargets == 1);
	CHECK(strcmp(req->targets[0].name, "mx2.example") == 0);
	CHECK(req->targets[0].pref == 20 && req->targets[0].naddrs == 2);
	/* IPv4 first, then IPv6, whatever order the lookups landed in. */
	CHECK(strcmp(addr_str(&req->targets[0].addrs[0], buf, sizeof(buf)),
	          "127.0.0.2") == 0);
	CHECK(strcmp(addr_str(&req->targets[0].addrs[1], buf, sizeof(buf)),
	          "::1") == 0);
	CHECK(((struct sockaddr_in *)&req->targets[0].addrs[0])->sin_port == 0);

	/* No MX host has an address: retry later, even if NXDOMAIN. */
	mx_answer(&a, h, p, 2);
	dns_mx_plan(&plan, "example", &a, xs_rng, &x);
	dns_answer_fail(&a, DNS_NOTFOUND, "NXDOMAIN: no such domain");
	for (int i = 0; i < 2; i++) {
		dns_mx_host_add(&plan.hosts[i], DNS_T_A, &a);
		dns_mx_host_add(&plan.hosts[i], DNS_T_AAAA, &a);
	}
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_TEMPFAIL && req->ntargets == 0);
	CHECK(strstr(req->reason, "no MX host has an address") != NULL);
	free(req);
}

static void
test_finish_implicit(void)
{
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct dns_req *req = calloc(1, sizeof(*req));
	uint64_t x = 1;

	/* No MX, no A, no AAAA: permanent. */
	addr_answer(&a, AF_INET, NULL, 0);
	dns_mx_plan(&plan, "example.org", &a, xs_rng, &x);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_NOTFOUND);
	CHECK(strstr(req->reason, "no MX and no address") != NULL);
	/* ... but a failed AAAA lookup makes it transient. */
	addr_answer(&a, AF_INET, NULL, 0);
	dns_mx_plan(&plan, "example.org", &a, xs_rng, &x);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	dns_answer_fail(&a, DNS_TEMPFAIL,
	    "Timeout while contacting DNS "
	    "servers");
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_TEMPFAIL);
	CHECK(strstr(req->reason, "Timeout") != NULL);
	free(req);
}

static void
test_address_cap(void)
{
	static const char *const v4[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3",
	    "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8",
	    "10.0.0.9", "10.0.0.10"};
	static const char *const v6[] = {"::1", "::2", "::3"};
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct dns_req *req = calloc(1, sizeof(*req));
	uint64_t x = 7;
	size_t n4 = 0, n6 = 0;
	bool seen[10] = {false};

	dns_mx_plan_host(&plan, "relay.example");
	CHECK(plan.host && plan.implicit && plan.nhosts == 1);
	addr_answer(&a, AF_INET, v4, 10);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	addr_answer(&a, AF_INET6, v6, 3);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_OK && req->ntargets == 1);
	CHECK(req->targets[0].naddrs == DNS_MAX_ADDRS);
	for (size_t i = 0; i < req->targets[0].naddrs; i++) {
		const struct sockaddr_storage *ss = &req->targets[0].addrs[i];

		if (ss->ss_family == AF_INET) {
			uint8_t last =
			    ((const uint8_t *)&((const struct sockaddr_in *)ss)
			            ->sin_addr)[3];

			CHECK(n6 == 0); /* IPv4 first */
			CHECK(last >= 1 && last <= 10 && !seen[last - 1]);
			seen[last - 1] = true;
			n4++;
		} else {
			n6++;
		}
	}
	CHECK(n4 == DNS_MAX_ADDRS - 3 && n6 == 3);
	/* IPv4 only: all of the cap. */
	dns_mx_plan_host(&plan, "relay.example");
	addr_answer(&a, AF_INET, v4, 10);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	addr_answer(&a, AF_INET6, NULL, 0);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->targets[0].naddrs == DNS_MAX_ADDRS);
	free(req);
}

static void
test_host_plan(void)
{
	struct dns_mx_plan plan;
	struct dns_answer a;
	struct dns_req *req = calloc(1, sizeof(*req));
	uint64_t x = 1;

	dns_mx_plan_host(&plan, "[IPv6:::1]");
	CHECK(plan.hosts[0].literal && plan.hosts[0].nv6 == 1);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_OK && req->ntargets == 1);
	CHECK(req->targets[0].addrs[0].ss_family == AF_INET6);
	/* A host that does not exist: permanent, named in the reason. */
	dns_mx_plan_host(&plan, "gone.example");
	dns_answer_fail(&a, DNS_NOTFOUND, "NXDOMAIN: no such domain");
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a);
	dns_mx_finish(&plan, xs_rng, &x, req);
	CHECK(req->status == DNS_NOTFOUND);
	CHECK(strstr(req->reason, "host gone.example") != NULL);
	/* A CNAME on the way is noted. */
	dns_mx_plan_host(&plan, "alias.example");
	addr_answer(&a, AF_INET, (const char *const[]){"192.0.2.9"}, 1);
	a.ncname = 1;
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a);
	CHECK(plan.hosts[0].cname);
	free(req);
}

static const struct harness_case cases[] = {
    {"preference_order", test_preference_order},
    {"shuffle_fixed", test_shuffle_fixed},
    {"shuffle_spread", test_shuffle_spread},
    {"implicit_mx", test_implicit_mx},
    {"null_mx", test_null_mx},
    {"mx_failures", test_mx_failures},
    {"ip_exchange", test_ip_exchange},
    {"duplicates_and_cap", test_duplicates_and_cap},
    {"finish_skips_hosts", test_finish_skips_hosts},
    {"finish_implicit", test_finish_implicit},
    {"address_cap", test_address_cap},
    {"host_plan", test_host_plan},
};

HARNESS_MAIN(cases)
