/* SPDX-License-Identifier: ISC */
/*
 * dns_msg_fuzz.c - libFuzzer target for the DNS reply parser, DNSSEC and
 * TLSA included (the resolver parses every reply itself). Not built by
 * default:
 *
 *	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *	    -I. -Imta tests/fuzz/dns_msg_fuzz.c dns/dns_msg.c dns/dns_query.c
 *	    mta/base/str.c -o build/dns_msg_fuzz
 *	build/dns_msg_fuzz -max_len=2048
 *
 * The first input byte picks the question type (MX, A, AAAA, TLSA); the
 * rest is the reply, with the header and question of a real query for
 * _25._tcp.mx.example laid over it, so that the fuzzer reaches the
 * sections. Invariants: no crash or sanitizer report; a reply parses to
 * at most DNS_ANSWER_MAX / DNS_TLSA_MAX records, each TLSA record's data
 * within its bound; a failed parse says DNS_TEMPFAIL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QNAME "_25._tcp.mx.example"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = {
	    DNS_T_MX, DNS_T_A, DNS_T_AAAA, DNS_T_TLSA};
	static struct dns_answer a;
	uint8_t buf[4096], q[DNS_QUERY_MAX];
	uint16_t type;
	int qn;

	if (size < 1 || size - 1 > sizeof(buf))
		return 0;
	type = types[data[0] % 4];
	memcpy(buf, data + 1, size - 1);
	size--;
	/* the question of our query, so most inputs get past it */
	qn = dns_query_build(q, sizeof(q), 0, QNAME, type, 1232, true);
	if (qn < 0)
		abort();
	qn -= 11; /* not the OPT record */
	if (size >= (size_t)qn) {
		memcpy(buf + 4, q + 4, 2); /* QDCOUNT */
		memcpy(buf + 12, q + 12, (size_t)qn - 12);
		buf[2] |= 0x80;           /* a response */
		buf[2] &= (uint8_t)~0x78; /* a QUERY */
	}
	if (dns_msg_parse(buf, size, QNAME, type, &a) < 0) {
		if (a.status != DNS_TEMPFAIL)
			abort();
		return 0;
	}
	if (a.nmx > DNS_ANSWER_MAX || a.naddrs > DNS_ANSWER_MAX ||
	    a.ntlsa > DNS_TLSA_MAX || a.reason == NULL)
		abort();
	for (size_t i = 0; i < a.ntlsa; i++)
		if (a.tlsa[i].len == 0 || a.tlsa[i].len > DNS_TLSA_DATA)
			abort();
	return 0;
}
