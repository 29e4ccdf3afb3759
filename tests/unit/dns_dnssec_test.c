/* SPDX-License-Identifier: ISC */
/*
 * dns_dnssec_test.c - what DANE needs from the resolver, on hand-built
 * messages: the raw query (RD, AD, EDNS0 OPT with DO), the AD bit and
 * TLSA records of replies (with RRSIGs beside them, through a CNAME,
 * NODATA, NXDOMAIN, SERVFAIL, over-long and malformed records), and how
 * a host's validated addresses and TLSA reply become a target's DANE
 * state (RFC 7672 2.2).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/dns_int.h"
#include "../harness.h"

#define QNAME "_25._tcp.mx.example"

struct msg {
	uint8_t b[2048];
	size_t n;
};

static void
put(struct msg *m, const void *p, size_t n)
{
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void
put16(struct msg *m, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(m, b, 2);
}

/* A reply to the query for (name, qtype): the question of the query,
 * flags, no OPT; records are added with rr(). */
static void
reply(struct msg *m, const char *name, uint16_t qtype, bool ad, int rcode)
{
	uint8_t q[DNS_QUERY_MAX];
	int n = dns_query_build(q, sizeof(q), 0x1234, name, qtype, 1232, true);

	m->n = 0;
	put(m, q, (size_t)n - 11); /* without the OPT record */
	m->b[2] = 0x81;            /* QR, RD */
	m->b[3] = (uint8_t)(0x80 | (ad ? 0x20 : 0) | rcode); /* RA */
	m->b[10] = m->b[11] = 0;                             /* ARCOUNT */
}

/* One answer record owned by the question name (a pointer to 12), or by
 * owner (wire form) when given. */
static void
rr(struct msg *m, const uint8_t *owner, size_t olen, uint16_t type,
    const uint8_t *rdata, size_t rdlen)
{
	static const uint8_t ptr[] = {0xc0, 12};

	if (owner != NULL)
		put(m, owner, olen);
	else
		put(m, ptr, 2);
	put16(m, type);
	put16(m, DNS_C_IN);
	put16(m, 0);
	put16(m, 300);
	put16(m, (uint16_t)rdlen);
	put(m, rdata, rdlen);
	m->b[7]++; /* ANCOUNT */
}

static void
tlsa_rdata(
    uint8_t *out, uint8_t u, uint8_t s, uint8_t t, uint8_t fill, size_t n)
{
	out[0] = u;
	out[1] = s;
	out[2] = t;
	memset(out + 3, fill, n);
}

static void
test_query_bytes(void)
{
	static const uint8_t want[] = {0xbe, 0xef, 0x01, 0x20, 0, 1, 0, 0, 0, 0,
	    0, 1, 2, 'm', 'x', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 52,
	    0, 1, 0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0};
	uint8_t q[DNS_QUERY_MAX];
	int n =
	    dns_query_build(q, sizeof(q), 0xbeef, "mx.example", 52, 1232, true);

	CHECK(n == (int)sizeof(want));
	CHECK(memcmp(q, want, sizeof(want)) == 0);
	/* without DNSSEC: RD only, DO clear */
	n = dns_query_build(q, sizeof(q), 1, "mx.example", 15, 1232, false);
	CHECK(n == (int)sizeof(want));
	CHECK(q[2] == 0x01 && q[3] == 0x00);
	CHECK(q[n - 4] == 0 && q[n - 3] == 0);
}

static void
test_query_errors(void)
{
	char long_label[80];
	uint8_t q[DNS_QUERY_MAX];

	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".x");
	CHECK(dns_query_build(q, sizeof(q), 1, "", 1, 512, true) == -EINVAL);
	CHECK(
	    dns_query_build(q, sizeof(q), 1, "a..b", 1, 512, true) == -EINVAL);
	CHECK(dns_query_build(q, sizeof(q), 1, ".a", 1, 512, true) == -EINVAL);
	CHECK(dns_query_build(q, sizeof(q), 1, long_label, 1, 512, true) ==
	      -EINVAL);
	CHECK(
	    dns_query_build(q, 20, 1, "mx.example", 1, 512, true) == -ENOBUFS);
	CHECK(
	    dns_query_build(q, 11, 1, "mx.example", 1, 512, true) == -ENOBUFS);
	/* the smallest buffer that fits is enough */
	CHECK(dns_query_build(q, 39, 1, "mx.example", 1, 512, true) == 39);
}

static void
test_tlsa_records(void)
{
	static struct msg m;
	static struct dns_answer a;
	uint8_t rd[80], sig[20] = {0, 52};

	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	tlsa_rdata(rd, 3, 1, 1, 0xab, 32);
	rr(&m, NULL, 0, DNS_T_TLSA, rd, 35);
	rr(&m, NULL, 0, 46, sig, sizeof(sig)); /* RRSIG: not ours */
	tlsa_rdata(rd, 2, 0, 2, 0xcd, 64);
	rr(&m, NULL, 0, DNS_T_TLSA, rd, 67);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_OK && !a.nodata && a.ad);
	CHECK(a.ntlsa == 2 && a.tlsa_dropped == 0);
	CHECK(a.tlsa[0].usage == 3 && a.tlsa[0].selector == 1 &&
	      a.tlsa[0].mtype == 1 && a.tlsa[0].len == 32);
	CHECK(a.tlsa[0].data[0] == 0xab && a.tlsa[0].data[31] == 0xab);
	CHECK(a.tlsa[1].usage == 2 && a.tlsa[1].mtype == 2 &&
	      a.tlsa[1].len == 64 && a.tlsa[1].data[63] == 0xcd);
	CHECK(a.ttl == 300);
	/* the same without AD: parsed, but not validated */
	m.b[3] &= (uint8_t)~0x20;
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_OK && !a.ad && a.ntlsa == 2);
}

static void
test_tlsa_cname(void)
{
	static const uint8_t other[] = {3, '_', '2', '5', 4, '_', 't', 'c', 'p',
	    5, 'o', 't', 'h', 'e', 'r', 2, 'e', 'x', 0};
	static struct msg m;
	static struct dns_answer a;
	uint8_t rd[40];

	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	rr(&m, NULL, 0, DNS_T_CNAME, other, sizeof(other));
	tlsa_rdata(rd, 3, 0, 1, 0x11, 32);
	rr(&m, other, sizeof(other), DNS_T_TLSA, rd, 35);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_OK && a.ad && a.ncname == 1);
	CHECK(strcmp(a.cname, "_25._tcp.other.ex") == 0);
	CHECK(a.ntlsa == 1 && a.tlsa[0].data[0] == 0x11);
}

static void
test_tlsa_negative(void)
{
	static struct msg m;
	static struct dns_answer a;

	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_OK && a.nodata && a.ad && a.ntlsa == 0);
	reply(&m, QNAME, DNS_T_TLSA, true, 3);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_NOTFOUND && a.ad);
	reply(&m, QNAME, DNS_T_TLSA, false, 2);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_TEMPFAIL && a.rcode == 2);
}

static void
test_tlsa_bounds(void)
{
	static struct msg m;
	static struct dns_answer a;
	static uint8_t rd[700];

	/* longer than DNS_TLSA_DATA: dropped and counted, not NODATA */
	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	tlsa_rdata(rd, 3, 0, 0, 0x22, DNS_TLSA_DATA + 1);
	rr(&m, NULL, 0, DNS_T_TLSA, rd, DNS_TLSA_DATA + 4);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.status == DNS_OK && !a.nodata);
	CHECK(a.ntlsa == 0 && a.tlsa_dropped == 1);
	/* more than DNS_TLSA_MAX: the rest counted */
	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	for (int i = 0; i < DNS_TLSA_MAX + 2; i++) {
		tlsa_rdata(rd, 3, 1, 1, (uint8_t)i, 32);
		rr(&m, NULL, 0, DNS_T_TLSA, rd, 35);
	}
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == 0);
	CHECK(a.ntlsa == DNS_TLSA_MAX && a.tlsa_dropped == 2);
	/* no association data at all: malformed */
	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	rr(&m, NULL, 0, DNS_T_TLSA, rd, 3);
	CHECK(dns_msg_parse(m.b, m.n, QNAME, DNS_T_TLSA, &a) == -EBADMSG);
	CHECK(a.status == DNS_TEMPFAIL);
	/* every truncation of a good reply fails cleanly */
	reply(&m, QNAME, DNS_T_TLSA, true, 0);
	tlsa_rdata(rd, 3, 1, 1, 0x33, 32);
	rr(&m, NULL, 0, DNS_T_TLSA, rd, 35);
	for (size_t n = 0; n < m.n; n++)
		CHECK(dns_msg_parse(m.b, n, QNAME, DNS_T_TLSA, &a) < 0);
}

static void
answer_ok(struct dns_answer *a, bool ad, int family)
{
	memset(a, 0, sizeof(*a));
	a->status = DNS_OK;
	a->reason = "ok";
	a->ad = ad;
	if (family != 0) {
		a->naddrs = 1;
		a->addrs[0].family = family;
		a->addrs[0].a[0] = family == AF_INET ? 127 : 0;
	} else {
		a->nodata = true;
	}
}

static void
test_host_secure(void)
{
	static struct dns_mx_plan plan;
	static struct dns_answer mx, a4, a6;

	answer_ok(&mx, true, 0);
	mx.nodata = false;
	mx.nmx = 1;
	mx.mx[0].pref = 10;
	strcpy(mx.mx[0].host, "mx.example");
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	CHECK(plan.status == DNS_OK && plan.mx_secure && plan.nhosts == 1);
	answer_ok(&a4, true, AF_INET);
	answer_ok(&a6, true, 0); /* validated NODATA for AAAA */
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	CHECK(!dns_mx_host_secure(&plan, 0)); /* AAAA not in yet */
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(dns_mx_host_secure(&plan, 0));
	/* one address reply without AD spoils it */
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	a6.ad = false;
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(!dns_mx_host_secure(&plan, 0));
	/* so does an MX reply without AD */
	mx.ad = false;
	a6.ad = true;
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(!plan.mx_secure && !dns_mx_host_secure(&plan, 0));
	/* a route host has no MX: its addresses alone count */
	dns_mx_plan_host(&plan, "relay.example");
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(dns_mx_host_secure(&plan, 0));
	/* an IP literal never is */
	dns_mx_plan_host(&plan, "192.0.2.1");
	CHECK(!dns_mx_host_secure(&plan, 0));
}

static uint32_t
rng_zero(void *arg)
{
	(void)arg;
	return 0;
}

static void
test_host_tlsa(void)
{
	static struct dns_mx_plan plan;
	static struct dns_answer t, a4;
	static struct dns_req req;

	dns_mx_plan_host(&plan, "mx.example");
	answer_ok(&a4, true, AF_INET);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a4);
	/* records with AD */
	answer_ok(&t, true, 0);
	t.nodata = false;
	t.ntlsa = 1;
	t.tlsa[0] = (struct dns_tlsa){3, 1, 1, 32, {0x44}};
	dns_mx_host_tlsa(&plan.hosts[0], &t);
	CHECK(plan.hosts[0].dane == DNS_DANE_RECORDS);
	dns_mx_finish(&plan, rng_zero, NULL, &req);
	CHECK(req.status == DNS_OK && req.ntargets == 1);
	CHECK(req.targets[0].secure && req.targets[0].dane == DNS_DANE_RECORDS);
	CHECK(req.targets[0].ntlsa == 1 &&
	      req.targets[0].tlsa[0].data[0] == 0x44);
	/* insecure: DANE does not apply */
	t.ad = false;
	dns_mx_host_tlsa(&plan.hosts[0], &t);
	CHECK(plan.hosts[0].dane == DNS_DANE_NONE && plan.hosts[0].ntlsa == 0);
	/* validated NODATA and NXDOMAIN */
	answer_ok(&t, true, 0);
	dns_mx_host_tlsa(&plan.hosts[0], &t);
	CHECK(plan.hosts[0].dane == DNS_DANE_NODATA);
	t.status = DNS_NOTFOUND;
	dns_mx_host_tlsa(&plan.hosts[0], &t);
	CHECK(plan.hosts[0].dane == DNS_DANE_NODATA);
	/* a failure: the host must not be used */
	dns_answer_fail(&t, DNS_TEMPFAIL, "SERVFAIL from server");
	dns_mx_host_tlsa(&plan.hosts[0], &t);
	CHECK(plan.hosts[0].dane == DNS_DANE_FAIL);
	CHECK(strstr(plan.hosts[0].dane_reason, "SERVFAIL") != NULL);
	dns_mx_finish(&plan, rng_zero, NULL, &req);
	CHECK(req.targets[0].dane == DNS_DANE_FAIL);
	CHECK(strstr(req.targets[0].dane_reason, "mx.example") != NULL);
}

static void
test_host_addr_fail(void)
{
	static struct dns_mx_plan plan;
	static struct dns_answer mx, a4, a6;
	static struct dns_req req;

	answer_ok(&mx, true, 0);
	mx.nodata = false;
	mx.nmx = 1;
	mx.mx[0].pref = 10;
	strcpy(mx.mx[0].host, "mx.example");
	answer_ok(&a4, true, AF_INET);
	dns_answer_fail(&a6, DNS_TEMPFAIL, "SERVFAIL from server");
	/* validated MX, validated A, AAAA SERVFAIL: no downgrade */
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	CHECK(!dns_mx_host_addr_fail(&plan, 0)); /* AAAA not in yet */
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(dns_mx_host_addr_fail(&plan, 0));
	CHECK(plan.hosts[0].dane == DNS_DANE_FAIL);
	CHECK(strstr(plan.hosts[0].dane_reason, "mx.example") != NULL);
	CHECK(strstr(plan.hosts[0].dane_reason, "SERVFAIL") != NULL);
	dns_mx_finish(&plan, rng_zero, NULL, &req);
	CHECK(req.status == DNS_OK && req.ntargets == 1);
	CHECK(req.targets[0].dane == DNS_DANE_FAIL);
	/* the other family answered without AD: insecure, DANE not owed */
	a4.ad = false;
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	CHECK(!dns_mx_host_addr_fail(&plan, 0));
	CHECK(plan.hosts[0].dane == DNS_DANE_NONE);
	/* an MX without AD: DANE never applied */
	a4.ad = true;
	mx.ad = false;
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(!dns_mx_host_addr_fail(&plan, 0));
	/* both validated: nothing failed */
	mx.ad = true;
	answer_ok(&a6, true, 0);
	dns_mx_plan(&plan, "example", &mx, NULL, NULL);
	dns_mx_host_add(&plan.hosts[0], DNS_T_A, &a4);
	dns_mx_host_add(&plan.hosts[0], DNS_T_AAAA, &a6);
	CHECK(!dns_mx_host_addr_fail(&plan, 0));
}

static void
test_host_tlsa_cname(void)
{
	static struct dns_mx_plan plan;
	static struct dns_answer t, a4;
	static struct dns_req req;
	struct dns_mx_host *h = &plan.hosts[0];

	dns_mx_plan_host(&plan, "mx.example");
	answer_ok(&a4, true, AF_INET);
	a4.ncname = 1;
	strcpy(a4.cname, "real.example");
	dns_mx_host_add(h, DNS_T_A, &a4);
	dns_mx_host_add(h, DNS_T_AAAA, &a4);
	/* RFC 7672 2.2.3: the expanded name first */
	CHECK(strcmp(dns_mx_host_tlsa_first(h), "real.example") == 0);
	answer_ok(&t, true, 0);
	t.nodata = false;
	t.ntlsa = 1;
	t.tlsa[0] = (struct dns_tlsa){3, 1, 1, 32, {0x55}};
	CHECK(!dns_mx_host_tlsa(h, &t));
	CHECK(h->dane == DNS_DANE_RECORDS);
	CHECK(strcmp(h->tlsa_base, "real.example") == 0);
	dns_mx_finish(&plan, rng_zero, NULL, &req);
	CHECK(strcmp(req.targets[0].tlsa_base, "real.example") == 0);
	/* none there (validated NODATA, or insecure): ask the MX name */
	(void)dns_mx_host_tlsa_first(h);
	answer_ok(&t, true, 0);
	CHECK(dns_mx_host_tlsa(h, &t));
	t.nodata = false;
	t.ntlsa = 1;
	CHECK(!dns_mx_host_tlsa(h, &t)); /* the answer for the MX name */
	CHECK(h->dane == DNS_DANE_RECORDS && h->tlsa_base[0] == '\0');
	(void)dns_mx_host_tlsa_first(h);
	t.ad = false;
	CHECK(dns_mx_host_tlsa(h, &t));
	/* a failure at the expanded name is final */
	(void)dns_mx_host_tlsa_first(h);
	dns_answer_fail(&t, DNS_TEMPFAIL, "SERVFAIL from server");
	CHECK(!dns_mx_host_tlsa(h, &t));
	CHECK(h->dane == DNS_DANE_FAIL);
	CHECK(strstr(h->dane_reason, "real.example") != NULL);
	/* no CNAME: the name itself, once */
	dns_mx_plan_host(&plan, "mx.example");
	a4.ncname = 0;
	dns_mx_host_add(h, DNS_T_A, &a4);
	CHECK(strcmp(dns_mx_host_tlsa_first(h), "mx.example") == 0);
	answer_ok(&t, true, 0);
	CHECK(!dns_mx_host_tlsa(h, &t) && h->dane == DNS_DANE_NODATA);
}

static const struct harness_case cases[] = {
    {"query_bytes", test_query_bytes},
    {"query_errors", test_query_errors},
    {"tlsa_records", test_tlsa_records},
    {"tlsa_cname", test_tlsa_cname},
    {"tlsa_negative", test_tlsa_negative},
    {"tlsa_bounds", test_tlsa_bounds},
    {"host_secure", test_host_secure},
    {"host_tlsa", test_host_tlsa},
    {"host_addr_fail", test_host_addr_fail},
    {"host_tlsa_cname", test_host_tlsa_cname},
};

HARNESS_MAIN(cases)
