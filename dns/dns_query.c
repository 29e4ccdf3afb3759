/* SPDX-License-Identifier: ISC */
/*
 * dns_query.c - the wire form of one query (RFC 1035 4.1, EDNS0 RFC 6891).
 *
 * c-ares 1.18 builds queries without the AD and DO bits, so a resolver
 * would never tell it what it validated; with [dns] dnssec the resolver
 * thread (dns_ares.c) builds every query here and sends it raw. Pure: no
 * I/O, no state; any thread.
 */
#include "dns/dns_int.h"

#include <errno.h>
#include <string.h>

#define DNS_HDR_RD  0x0100
#define DNS_HDR_AD  0x0020
#define DNS_EDNS_DO 0x8000

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* name as labels; returns the bytes written or a negative errno */
static int
dns_query_name(uint8_t *p, size_t cap, const char *name)
{
	size_t o = 0, n = strlen(name);

	if (n == 0 || n > 253 || name[0] == '.' || name[n - 1] == '.')
		return -EINVAL;
	if (cap < n + 2)
		return -ENOBUFS;
	for (const char *s = name; *s != '\0';) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);

		if (l == 0 || l > 63)
			return -EINVAL;
		p[o++] = (uint8_t)l;
		memcpy(p + o, s, l);
		o += l;
		s += l + (dot ? 1 : 0);
	}
	p[o++] = 0;
	return (int)o;
}

int
dns_query_build(uint8_t *buf, size_t cap, uint16_t id, const char *name,
    uint16_t qtype, uint16_t edns, bool dnssec)
{
	size_t o = 12;
	int n;

	if (cap < 12)
		return -ENOBUFS;
	memset(buf, 0, 12);
	put16(buf, id);
	put16(buf + 2, (uint16_t)(DNS_HDR_RD | (dnssec ? DNS_HDR_AD : 0)));
	put16(buf + 4, 1);  /* QDCOUNT */
	put16(buf + 10, 1); /* ARCOUNT: the OPT record */
	if ((n = dns_query_name(buf + o, cap - o, name)) < 0)
		return n;
	o += (size_t)n;
	/* QTYPE, QCLASS, then OPT: root owner, type, payload size as its
	 * class, extended rcode/version/flags as its TTL, no options */
	if (cap - o < 4 + 11)
		return -ENOBUFS;
	put16(buf + o, qtype);
	put16(buf + o + 2, DNS_C_IN);
	o += 4;
	buf[o] = 0;
	put16(buf + o + 1, DNS_T_OPT);
	put16(buf + o + 3, edns);
	buf[o + 5] = 0; /* extended RCODE */
	buf[o + 6] = 0; /* version 0 */
	put16(buf + o + 7, dnssec ? DNS_EDNS_DO : 0);
	put16(buf + o + 9, 0); /* RDLEN */
	o += 11;
	return (int)o;
}
