/* SPDX-License-Identifier: ISC */
/*
 * dns_msg_test.c - the DNS reply parser on hand-built replies: MX with
 * (nested) compression, null MX, NXDOMAIN and NODATA with SOA TTLs,
 * SERVFAIL, REFUSED, truncation, CNAME chains and loops, A and AAAA, and
 * hostile input (pointer loops, forward pointers, lengths past the end,
 * over-long names, every truncation and many byte flips of valid replies).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/dns_int.h"
#include "../harness.h"

#define HDR(flags_lo, qd, an, ns) \
	0x12, 0x34, 0x81, (flags_lo), 0, (qd), 0, (an), 0, (ns), 0, 0
#define EXAMPLE_COM 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0
#define TTL(a, b)   0, 0, (a), (b)

/* example.com MX: 10 mx1.example.com (ttl 3600), 5 mx2.example.com
 * (ttl 300), 20 b.mx1.example.com (a pointer to a name that itself ends
 * in a pointer). The question name is at offset 12. */
static const uint8_t r_mx[] = {
    HDR(0x80, 1, 3, 0),
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
    /* @29 */ 0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0x0e, 0x10),
    0,
    8,
    /* @41 */ 0,
    10,
    /* @43 */ 3,
    'm',
    'x',
    '1',
    0xc0,
    12,
    /* @49 */ 0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0x01, 0x2c),
    0,
    8,
    0,
    5,
    3,
    'M',
    'X',
    '2',
    0xc0,
    12,
    0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0x0e, 0x10),
    0,
    6,
    0,
    20,
    1,
    'b',
    0xc0,
    43,
};

/* example.com MX 0 "." */
static const uint8_t r_nullmx[] = {
    HDR(0x80, 1, 1, 0),
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
    0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0x0e, 0x10),
    0,
    3,
    0,
    0,
    0,
};

/* nope.example MX: NXDOMAIN, SOA ttl 3600 minimum 300 */
static const uint8_t r_nxdomain[] = {
    HDR(0x83, 1, 0, 1),
    4,
    'n',
    'o',
    'p',
    'e',
    7,
    'e',
    'x',
    'a',
    'm',
    'p',
    'l',
    'e',
    0,
    0,
    15,
    0,
    1,
    0xc0,
    17,
    0,
    6,
    0,
    1,
    TTL(0x0e, 0x10),
    0,
    32,
    2,
    'n',
    's',
    0xc0,
    17,
    4,
    'r',
    'o',
    'o',
    't',
    0xc0,
    17,
    0,
    0,
    0,
    1,
    0,
    0,
    0x0e,
    0x10,
    0,
    0,
    0x0e,
    0x10,
    0,
    1,
    0,
    0,
    0,
    0,
    0x01,
    0x2c,
};

/* example.com MX: NOERROR, no answer, SOA ttl 120 minimum 900 */
static const uint8_t r_nodata[] = {
    HDR(0x80, 1, 0, 1),
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
    0xc0,
    12,
    0,
    6,
    0,
    1,
    TTL(0, 120),
    0,
    26,
    2,
    'n',
    's',
    0xc0,
    12,
    0,
    0,
    0,
    0,
    1,
    0,
    0,
    0x0e,
    0x10,
    0,
    0,
    0x0e,
    0x10,
    0,
    1,
    0,
    0,
    0,
    0,
    0x03,
    0x84,
};

static const uint8_t r_servfail[] = {
    HDR(0x82, 1, 0, 0),
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
};

static const uint8_t r_refused[] = {
    HDR(0x85, 1, 0, 0),
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
};

/* TC set (0x83 0x80): a truncated UDP reply with one MX. */
static const uint8_t r_truncated[] = {
    0x12,
    0x34,
    0x83,
    0x80,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    0,
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
    0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0, 60),
    0,
    8,
    0,
    10,
    3,
    'm',
    'x',
    '1',
    0xc0,
    12,
};

/* www.example.com A: the A record first, then the CNAME to it:
 * www.example.com CNAME host.example.com (ttl 60), host A 192.0.2.7. */
static const uint8_t r_cname[] = {
    HDR(0x80, 1, 2, 0),
    3,
    'w',
    'w',
    'w',
    EXAMPLE_COM,
    0,
    1,
    0,
    1,
    /* @33 */ 4,
    'h',
    'o',
    's',
    't',
    0xc0,
    16,
    0,
    1,
    0,
    1,
    TTL(0x0e, 0x10),
    0,
    4,
    192,
    0,
    2,
    7,
    0xc0,
    12,
    0,
    5,
    0,
    1,
    TTL(0, 60),
    0,
    2,
    0xc0,
    33,
};

/* a.example A: a CNAME b.example, b CNAME a.example. */
static const uint8_t r_cname_loop[] = {
    HDR(0x80, 1, 2, 0),
    1,
    'a',
    7,
    'e',
    'x',
    'a',
    'm',
    'p',
    'l',
    'e',
    0,
    0,
    1,
    0,
    1,
    /* @27 */ 0xc0,
    12,
    0,
    5,
    0,
    1,
    TTL(0, 60),
    0,
    4,
    1,
    'b',
    0xc0,
    14,
    0xc0,
    39,
    0,
    5,
    0,
    1,
    TTL(0, 60),
    0,
    2,
    0xc0,
    12,
};

/* localhost.example AAAA ::1 and 2001:db8::25 */
static const uint8_t r_aaaa[] = {
    HDR(0x80, 1, 2, 0),
    2,
    'l',
    'h',
    7,
    'e',
    'x',
    'a',
    'm',
    'p',
    'l',
    'e',
    0,
    0,
    28,
    0,
    1,
    0xc0,
    12,
    0,
    28,
    0,
    1,
    TTL(0, 30),
    0,
    16,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    1,
    0xc0,
    12,
    0,
    28,
    0,
    1,
    TTL(0, 30),
    0,
    16,
    0x20,
    0x01,
    0x0d,
    0xb8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x25,
};

/* example.com MX 10 [192.0.2.1] and MX 20 192.0.2.2 (as labels). */
static const uint8_t r_mx_ip[] = {
    HDR(0x80, 1, 2, 0),
    EXAMPLE_COM,
    0,
    15,
    0,
    1,
    0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0, 60),
    0,
    15,
    0,
    10,
    4,
    '[',
    '1',
    '9',
    '2',
    1,
    '0',
    1,
    '2',
    2,
    '1',
    ']',
    0,
    0xc0,
    12,
    0,
    15,
    0,
    1,
    TTL(0, 60),
    0,
    13,
    0,
    20,
    3,
    '1',
    '9',
    '2',
    1,
    '0',
    1,
    '2',
    1,
    '2',
    0,
};

static int
parse(
    const uint8_t *b, size_t n, const char *q, uint16_t t, struct dns_answer *a)
{
	return dns_msg_parse(b, n, q, t, a);
}

static void
test_mx_compression(void)
{
	struct dns_answer a;

	CHECK(parse(r_mx, sizeof(r_mx), "example.com", DNS_T_MX, &a) == 0);
	CHECK(a.status == DNS_OK && !a.nodata && a.rcode == 0);
	CHECK(a.nmx == 3);
	CHECK(
	    a.mx[0].pref == 10 && strcmp(a.mx[0].host, "mx1.example.com") == 0);
	/* Lowercased. */
	CHECK(
	    a.mx[1].pref == 5 && strcmp(a.mx[1].host, "mx2.example.com") == 0);
	CHECK(a.mx[2].pref == 20 &&
	      strcmp(a.mx[2].host, "b.mx1.example.com") == 0);
	CHECK(a.ttl == 300);
	CHECK(a.ncname == 0);
}

static void
test_question_mismatch(void)
{
	struct dns_answer a;

	CHECK(
	    parse(r_mx, sizeof(r_mx), "example.org", DNS_T_MX, &a) == -EBADMSG);
	CHECK(a.status == DNS_TEMPFAIL);
	CHECK(
	    parse(r_mx, sizeof(r_mx), "example.com", DNS_T_A, &a) == -EBADMSG);
}

static void
test_null_mx(void)
{
	struct dns_answer a;

	CHECK(parse(r_nullmx, sizeof(r_nullmx), "example.com", DNS_T_MX, &a) ==
	      0);
	CHECK(a.status == DNS_OK && a.nmx == 1);
	CHECK(a.mx[0].pref == 0 && strcmp(a.mx[0].host, ".") == 0);
}

static void
test_nxdomain(void)
{
	struct dns_answer a;

	CHECK(parse(r_nxdomain, sizeof(r_nxdomain), "nope.example", DNS_T_MX,
	          &a) == 0);
	CHECK(a.status == DNS_NOTFOUND && a.rcode == 3);
	CHECK(a.ttl == 300); /* min(SOA ttl 3600, minimum 300) */
	CHECK(strstr(a.reason, "NXDOMAIN") != NULL);
}

static void
test_nodata(void)
{
	struct dns_answer a;

	CHECK(parse(r_nodata, sizeof(r_nodata), "example.com", DNS_T_MX, &a) ==
	      0);
	CHECK(a.status == DNS_OK && a.nodata && a.nmx == 0);
	CHECK(a.ttl == 120); /* min(SOA ttl 120, minimum 900) */
}

static void
test_servfail_refused(void)
{
	struct dns_answer a;

	CHECK(parse(r_servfail, sizeof(r_servfail), "example.com", DNS_T_MX,
	          &a) == 0);
	CHECK(a.status == DNS_TEMPFAIL && a.rcode == 2);
	CHECK(strstr(a.reason, "SERVFAIL") != NULL);
	CHECK(parse(r_refused, sizeof(r_refused), "example.com", DNS_T_MX,
	          &a) == 0);
	CHECK(a.status == DNS_TEMPFAIL && a.rcode == 5);
}

static void
test_truncated_flag(void)
{
	struct dns_answer a;

	CHECK(parse(r_truncated, sizeof(r_truncated), "example.com", DNS_T_MX,
	          &a) == 0);
	CHECK(a.status == DNS_TEMPFAIL && a.nmx == 0);
	CHECK(strstr(a.reason, "truncated") != NULL);
}

static void
test_cname_chain(void)
{
	struct dns_answer a;

	CHECK(parse(r_cname, sizeof(r_cname), "www.example.com", DNS_T_A, &a) ==
	      0);
	CHECK(a.status == DNS_OK && a.ncname == 1);
	CHECK(strcmp(a.cname, "host.example.com") == 0);
	CHECK(a.naddrs == 1 && a.addrs[0].family == AF_INET);
	CHECK(memcmp(a.addrs[0].a, "\xc0\x00\x02\x07", 4) == 0);
	CHECK(a.ttl == 60); /* the CNAME's TTL bounds the whole answer */
	/* Asking for the target directly works too. */
	CHECK(parse(r_cname, sizeof(r_cname), "www.example.com", DNS_T_AAAA,
	          &a) == -EBADMSG); /* question is A, not AAAA */
}

static void
test_cname_loop(void)
{
	struct dns_answer a;

	CHECK(parse(r_cname_loop, sizeof(r_cname_loop), "a.example", DNS_T_A,
	          &a) == -EBADMSG);
	CHECK(a.status == DNS_TEMPFAIL);
	CHECK(strstr(a.reason, "CNAME") != NULL);
}

static void
test_aaaa(void)
{
	struct dns_answer a;
	char txt[64];

	CHECK(parse(r_aaaa, sizeof(r_aaaa), "lh.example", DNS_T_AAAA, &a) == 0);
	CHECK(a.status == DNS_OK && a.naddrs == 2 && a.ttl == 30);
	CHECK(a.addrs[0].family == AF_INET6);
	CHECK(inet_ntop(AF_INET6, a.addrs[0].a, txt, sizeof(txt)) != NULL);
	CHECK(strcmp(txt, "::1") == 0);
	CHECK(inet_ntop(AF_INET6, a.addrs[1].a, txt, sizeof(txt)) != NULL);
	CHECK(strcmp(txt, "2001:db8::25") == 0);
}

static void
test_mx_ip_exchange(void)
{
	struct dns_answer a;

	CHECK(
	    parse(r_mx_ip, sizeof(r_mx_ip), "example.com", DNS_T_MX, &a) == 0);
	CHECK(a.nmx == 2);
	CHECK(strcmp(a.mx[0].host, "[192.0.2.1]") == 0);
	CHECK(strcmp(a.mx[1].host, "192.0.2.2") == 0);
}

/* An odd exchange that is not an address is skipped, not fatal. */
static void
test_mx_odd_name_skipped(void)
{
	uint8_t b[sizeof(r_mx)];
	struct dns_answer a;

	memcpy(b, r_mx, sizeof(b));
	b[44] = ' '; /* "m x1" */
	CHECK(parse(b, sizeof(b), "example.com", DNS_T_MX, &a) == 0);
	/* mx1 and b.mx1 (which points into it) are both gone. */
	CHECK(a.nmx == 1 && strcmp(a.mx[0].host, "mx2.example.com") == 0);
}

static void
test_pointer_loops(void)
{
	/* Question name is a pointer to itself. */
	static const uint8_t self[] = {
	    HDR(0x80, 1, 0, 0), 0xc0, 12, 0, 15, 0, 1};
	/* Label then a pointer back to its own start. */
	static const uint8_t own[] = {
	    HDR(0x80, 1, 0, 0), 1, 'a', 0xc0, 12, 0, 15, 0, 1};
	/* A pointer forward (to the answer section). */
	static const uint8_t fwd[] = {HDR(0x80, 1, 1, 0), 0xc0, 18, 0, 15, 0, 1,
	    1, 'a', 0, 0, 15, 0, 1, TTL(0, 1), 0, 0};
	/* Two names pointing at each other: answer owner at 29 points to
	 * 31, which points back to 29. */
	static const uint8_t pair[] = {HDR(0x80, 1, 1, 0), EXAMPLE_COM, 0, 15,
	    0, 1, 0xc0, 31, 0xc0, 29, 0, 15, 0, 1, TTL(0, 1), 0, 0};
	/* Reserved label types 0x40 and 0x80. */
	static const uint8_t rsv[] = {
	    HDR(0x80, 1, 0, 0), 0x41, 'a', 0, 0, 15, 0, 1};
	struct dns_answer a;

	CHECK(parse(self, sizeof(self), "a", DNS_T_MX, &a) == -EBADMSG);
	CHECK(parse(own, sizeof(own), "a", DNS_T_MX, &a) == -EBADMSG);
	CHECK(parse(fwd, sizeof(fwd), "a", DNS_T_MX, &a) == -EBADMSG);
	CHECK(
	    parse(pair, sizeof(pair), "example.com", DNS_T_MX, &a) == -EBADMSG);
	CHECK(parse(rsv, sizeof(rsv), "a", DNS_T_MX, &a) == -EBADMSG);
	CHECK(a.status == DNS_TEMPFAIL);
}

static void
test_lengths_past_end(void)
{
	/* A label longer than what is left. */
	static const uint8_t label[] = {HDR(0x80, 1, 0, 0), 50, 'a', 'b', 'c'};
	uint8_t b[sizeof(r_mx)];
	struct dns_answer a;

	CHECK(parse(label, sizeof(label), "abc", DNS_T_MX, &a) == -EBADMSG);
	/* rdlength past the end. */
	memcpy(b, r_mx, sizeof(b));
	b[39] = 0x40;
	CHECK(parse(b, sizeof(b), "example.com", DNS_T_MX, &a) == -EBADMSG);
	/* More answers claimed than present. */
	memcpy(b, r_mx, sizeof(b));
	b[7] = 9;
	CHECK(parse(b, sizeof(b), "example.com", DNS_T_MX, &a) == -EBADMSG);
	/* An MX rdata whose name runs past its rdlength. */
	memcpy(b, r_mx, sizeof(b));
	b[40] = 5;
	CHECK(parse(b, sizeof(b), "example.com", DNS_T_MX, &a) == -EBADMSG);
	/* An A record of the wrong size. */
	{
		static const uint8_t c[] = {HDR(0x80, 1, 1, 0), 1, 'a', 0, 0, 1,
		    0, 1, 0xc0, 12, 0, 1, 0, 1, TTL(0, 1), 0, 3, 192, 0, 2};

		CHECK(parse(c, sizeof(c), "a", DNS_T_A, &a) == -EBADMSG);
		CHECK(parse(c, sizeof(c) - 1, "a", DNS_T_A, &a) == -EBADMSG);
	}
	/* Short header; not a response; two questions. */
	CHECK(parse(r_mx, 11, "example.com", DNS_T_MX, &a) == -EBADMSG);
	memcpy(b, r_mx, sizeof(b));
	b[2] = 0x01;
	CHECK(parse(b, sizeof(b), "example.com", DNS_T_MX, &a) == -EBADMSG);
	memcpy(b, r_mx, sizeof(b));
	b[5] = 2;
	CHECK(parse(b, sizeof(b), "example.com", DNS_T_MX, &a) == -EBADMSG);
	CHECK(parse(NULL, 0, "example.com", DNS_T_MX, &a) == -EBADMSG);
}

/* A 63-octet label repeated: 4 of them make a 257-octet wire name. */
static void
test_name_too_long(void)
{
	uint8_t b[512];
	char q[300];
	size_t n = 0, qn = 0;
	struct dns_answer a;

	memcpy(b, (const uint8_t[]){HDR(0x80, 1, 0, 0)}, 12);
	n = 12;
	for (int l = 0; l < 4; l++) {
		b[n++] = 63;
		memset(b + n, 'a', 63);
		n += 63;
		memset(q + qn, 'a', 63);
		qn += 63;
		q[qn++] = '.';
	}
	q[qn - 1] = '\0';
	b[n++] = 0;
	memcpy(b + n, (const uint8_t[]){0, 15, 0, 1}, 4);
	n += 4;
	CHECK(parse(b, n, q, DNS_T_MX, &a) == -EBADMSG);
	/* Three labels and a short one fit (253 octets of text). */
	b[12 + 3 * 64] = 61;
	memmove(b + 12 + 3 * 64 + 1 + 61, b + 12 + 4 * 64, 5);
	n = 12 + 3 * 64 + 1 + 61 + 5;
	q[3 * 64 + 61] = '\0';
	CHECK(parse(b, n, q, DNS_T_MX, &a) == 0);
	CHECK(a.nodata);
}

/* 40 MX records, worst preference first: the 32 kept are the best. */
static void
test_many_mx_keeps_best(void)
{
	uint8_t b[2048];
	size_t n = 0;
	struct dns_answer a;
	bool seen[41] = {false};

	memcpy(b,
	    (const uint8_t[]){HDR(0x80, 1, 40, 0), 1, 'x', 0, 0, 15, 0, 1}, 19);
	n = 19;
	for (int pref = 40; pref >= 1; pref--) {
		const uint8_t rr[] = {0xc0, 12, 0, 15, 0, 1, TTL(0, 60), 0, 8,
		    0, (uint8_t)pref, 3, 'm', (uint8_t)('0' + pref / 10),
		    (uint8_t)('0' + pref % 10), 0xc0, 12};

		memcpy(b + n, rr, sizeof(rr));
		n += sizeof(rr);
	}
	CHECK(parse(b, n, "x", DNS_T_MX, &a) == 0);
	CHECK(a.nmx == DNS_ANSWER_MAX);
	for (size_t i = 0; i < a.nmx; i++) {
		CHECK(a.mx[i].pref >= 1 && a.mx[i].pref <= DNS_ANSWER_MAX);
		CHECK(!seen[a.mx[i].pref]);
		seen[a.mx[i].pref] = true;
	}
}

static const struct {
	const uint8_t *b;
	size_t n;
	const char *q;
	uint16_t t;
} valid[] = {
    {r_mx, sizeof(r_mx), "example.com", DNS_T_MX},
    {r_nullmx, sizeof(r_nullmx), "example.com", DNS_T_MX},
    {r_nxdomain, sizeof(r_nxdomain), "nope.example", DNS_T_MX},
    {r_nodata, sizeof(r_nodata), "example.com", DNS_T_MX},
    {r_cname, sizeof(r_cname), "www.example.com", DNS_T_A},
    {r_aaaa, sizeof(r_aaaa), "lh.example", DNS_T_AAAA},
    {r_mx_ip, sizeof(r_mx_ip), "example.com", DNS_T_MX},
};

/* Every prefix of a valid reply is rejected or parsed, never overread
 * (run under ASan: the copy is exactly n bytes on the heap). */
static void
test_every_truncation(void)
{
	struct dns_answer a;

	for (size_t v = 0; v < MTA_ARRAY_LEN(valid); v++)
		for (size_t n = 0; n < valid[v].n; n++) {
			uint8_t *b = malloc(n ? n : 1);
			int rc;

			memcpy(b, valid[v].b, n);
			rc = parse(b, n, valid[v].q, valid[v].t, &a);
			free(b);
			/* The header counts every record, so any cut shows. */
			CHECK(rc == -EBADMSG);
			CHECK(a.status == DNS_TEMPFAIL);
		}
}

/* Flip every byte of each valid reply to a few values; nothing crashes
 * and whatever parses is self-consistent. */
static void
test_byte_flips(void)
{
	static const uint8_t vals[] = {
	    0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xc1, 0xff};
	struct dns_answer a;

	for (size_t v = 0; v < MTA_ARRAY_LEN(valid); v++)
		for (size_t i = 0; i < valid[v].n; i++)
			for (size_t k = 0; k < sizeof(vals); k++) {
				uint8_t *b = malloc(valid[v].n);
				int rc;

				memcpy(b, valid[v].b, valid[v].n);
				b[i] = vals[k];
				rc = parse(
				    b, valid[v].n, valid[v].q, valid[v].t, &a);
				free(b);
				CHECK(rc == 0 || rc == -EBADMSG);
				CHECK(a.nmx <= DNS_ANSWER_MAX &&
				      a.naddrs <= DNS_ANSWER_MAX);
				CHECK(a.reason != NULL);
				for (size_t m = 0; m < a.nmx; m++)
					CHECK(strlen(a.mx[m].host) <
					      DNS_NAME_MAX);
			}
}

static void
test_name_norm(void)
{
	char out[DNS_NAME_MAX];

	CHECK(dns_name_norm("Example.COM.", out, sizeof(out)));
	CHECK(strcmp(out, "example.com") == 0);
	CHECK(dns_name_norm("_dmarc.x-y.example", out, sizeof(out)));
	CHECK(!dns_name_norm("", out, sizeof(out)));
	CHECK(!dns_name_norm(".", out, sizeof(out)));
	CHECK(!dns_name_norm("a..b", out, sizeof(out)));
	CHECK(!dns_name_norm(".a", out, sizeof(out)));
	CHECK(!dns_name_norm("a b", out, sizeof(out)));
	CHECK(!dns_name_norm("a\\.b", out, sizeof(out)));
	CHECK(!dns_name_norm("b\xc3\xbc.example", out, sizeof(out)));
	CHECK(!dns_name_norm("[192.0.2.1]", out, sizeof(out)));
	CHECK(!dns_name_norm(
	    "a234567890123456789012345678901234567890123456789012345678901234",
	    out, sizeof(out))); /* 64-octet label */
}

static void
test_addr_parse(void)
{
	struct dns_addr a;

	CHECK(dns_addr_parse("192.0.2.1", &a) && a.family == AF_INET);
	CHECK(dns_addr_parse("[192.0.2.1]", &a) && a.family == AF_INET);
	CHECK(dns_addr_parse("[IPv6:2001:db8::1]", &a) && a.family == AF_INET6);
	CHECK(dns_addr_parse("[ipv6:::1]", &a) && a.family == AF_INET6);
	CHECK(dns_addr_parse("::1", &a) && a.family == AF_INET6);
	CHECK(dns_addr_parse("[::1]", &a) && a.family == AF_INET6);
	CHECK(!dns_addr_parse("mx.example.com", &a));
	CHECK(!dns_addr_parse("192.0.2", &a));
	CHECK(!dns_addr_parse("[192.0.2.1", &a));
	CHECK(!dns_addr_parse("[]", &a));
	CHECK(!dns_addr_parse("", &a));
}

static const struct harness_case cases[] = {
    {"mx_compression", test_mx_compression},
    {"question_mismatch", test_question_mismatch},
    {"null_mx", test_null_mx},
    {"nxdomain", test_nxdomain},
    {"nodata", test_nodata},
    {"servfail_refused", test_servfail_refused},
    {"truncated_flag", test_truncated_flag},
    {"cname_chain", test_cname_chain},
    {"cname_loop", test_cname_loop},
    {"aaaa", test_aaaa},
    {"mx_ip_exchange", test_mx_ip_exchange},
    {"mx_odd_name_skipped", test_mx_odd_name_skipped},
    {"pointer_loops", test_pointer_loops},
    {"lengths_past_end", test_lengths_past_end},
    {"name_too_long", test_name_too_long},
    {"many_mx_keeps_best", test_many_mx_keeps_best},
    {"every_truncation", test_every_truncation},
    {"byte_flips", test_byte_flips},
    {"name_norm", test_name_norm},
    {"addr_parse", test_addr_parse},
};

HARNESS_MAIN(cases)
