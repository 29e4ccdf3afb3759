/* SPDX-License-Identifier: ISC */
/*
 * dns_cache_test.c - the TTL cache with an injected clock: TTL floor and
 * ceiling, expiry, replacement, keys by type and name, LRU eviction by
 * count and by bytes, and caching switched off.
 */
#include <stdint.h>
#include <string.h>

#include "dns/dns_int.h"
#include "../harness.h"

#define S 1000 /* ms */

static bool
get(struct dns_cache *c, uint16_t t, const char *n, uint64_t now,
    const char *want)
{
	const void *d;
	size_t len;

	if (!dns_cache_get(c, t, n, now, &d, &len))
		return false;
	return want == NULL || (len == strlen(want) && !memcmp(d, want, len));
}

static void
put(struct dns_cache *c, uint16_t t, const char *n, const char *v, uint32_t ttl,
    uint64_t now)
{
	dns_cache_put(c, t, n, v, strlen(v), ttl, now);
}

static void
test_ttl_honoured(void)
{
	struct dns_cache *c = dns_cache_new(100, 1 << 20, 10 * S, 3600 * S);
	uint64_t t0 = 5000000;

	put(c, DNS_T_MX, "example.com", "mx", 300, t0);
	CHECK(get(c, DNS_T_MX, "example.com", t0, "mx"));
	CHECK(get(c, DNS_T_MX, "example.com", t0 + 299 * S, "mx"));
	CHECK(!get(c, DNS_T_MX, "example.com", t0 + 300 * S, NULL));
	CHECK(dns_cache_count(c) == 0); /* the expired entry is gone */
	dns_cache_free(c);
}

static void
test_ttl_floor(void)
{
	struct dns_cache *c = dns_cache_new(100, 1 << 20, 60 * S, 3600 * S);

	/* TTL 0 and 5 s both live for min_ttl. */
	put(c, DNS_T_A, "a.example", "1", 0, 0);
	put(c, DNS_T_A, "b.example", "2", 5, 0);
	CHECK(get(c, DNS_T_A, "a.example", 59 * S, "1"));
	CHECK(get(c, DNS_T_A, "b.example", 59 * S, "2"));
	CHECK(!get(c, DNS_T_A, "a.example", 60 * S, NULL));
	CHECK(!get(c, DNS_T_A, "b.example", 60 * S, NULL));
	dns_cache_free(c);
}

static void
test_ttl_ceiling(void)
{
	struct dns_cache *c = dns_cache_new(100, 1 << 20, 60 * S, 3600 * S);

	put(c, DNS_T_MX, "example.com", "mx", 7 * 86400, 0);
	put(c, DNS_T_MX, "max.example", "mx", UINT32_MAX, 0);
	CHECK(get(c, DNS_T_MX, "example.com", 3599 * S, "mx"));
	CHECK(!get(c, DNS_T_MX, "example.com", 3600 * S, NULL));
	CHECK(!get(c, DNS_T_MX, "max.example", 3600 * S, NULL));
	dns_cache_free(c);
}

/* Negative replies are stored the same way; their TTL is the SOA's. */
static void
test_negative(void)
{
	struct dns_cache *c = dns_cache_new(100, 1 << 20, 30 * S, 3600 * S);

	put(c, DNS_T_MX, "nope.example", "nxdomain", 300, 0);
	CHECK(get(c, DNS_T_MX, "nope.example", 299 * S, "nxdomain"));
	CHECK(!get(c, DNS_T_MX, "nope.example", 300 * S, NULL));
	/* No SOA: the resolver stores ttl 0, which becomes min_ttl. */
	put(c, DNS_T_MX, "nosoa.example", "nxdomain", 0, 0);
	CHECK(get(c, DNS_T_MX, "nosoa.example", 29 * S, NULL));
	CHECK(!get(c, DNS_T_MX, "nosoa.example", 30 * S, NULL));
	dns_cache_free(c);
}

static void
test_keys_and_replace(void)
{
	struct dns_cache *c = dns_cache_new(100, 1 << 20, 0, 3600 * S);

	put(c, DNS_T_A, "h.example", "v4", 60, 0);
	put(c, DNS_T_AAAA, "h.example", "v6", 60, 0);
	put(c, DNS_T_A, "h2.example", "other", 60, 0);
	CHECK(get(c, DNS_T_A, "h.example", 1, "v4"));
	CHECK(get(c, DNS_T_AAAA, "h.example", 1, "v6"));
	CHECK(!get(c, DNS_T_MX, "h.example", 1, NULL));
	CHECK(dns_cache_count(c) == 3);
	/* A new reply replaces the old one and its TTL. */
	put(c, DNS_T_A, "h.example", "newer", 10, 50 * S);
	CHECK(dns_cache_count(c) == 3);
	CHECK(get(c, DNS_T_A, "h.example", 59 * S, "newer"));
	CHECK(!get(c, DNS_T_A, "h.example", 60 * S, NULL));
	dns_cache_free(c);
}

static void
test_lru_by_count(void)
{
	struct dns_cache *c = dns_cache_new(3, 1 << 20, 0, 3600 * S);

	put(c, DNS_T_A, "a", "1", 60, 0);
	put(c, DNS_T_A, "b", "2", 60, 0);
	put(c, DNS_T_A, "c", "3", 60, 0);
	CHECK(get(c, DNS_T_A, "a", 1, "1")); /* a is now the most recent */
	put(c, DNS_T_A, "d", "4", 60, 0);    /* evicts b */
	CHECK(dns_cache_count(c) == 3);
	CHECK(!get(c, DNS_T_A, "b", 1, NULL));
	CHECK(get(c, DNS_T_A, "a", 1, "1"));
	CHECK(get(c, DNS_T_A, "c", 1, "3"));
	CHECK(get(c, DNS_T_A, "d", 1, "4"));
	dns_cache_free(c);
}

static void
test_lru_by_bytes(void)
{
	struct dns_cache *c = dns_cache_new(100, 10, 0, 3600 * S);

	put(c, DNS_T_A, "a", "1234", 60, 0);
	put(c, DNS_T_A, "b", "5678", 60, 0);
	put(c, DNS_T_A, "c", "90", 60, 0); /* 10 bytes: fits */
	CHECK(dns_cache_count(c) == 3);
	put(c, DNS_T_A, "d", "x", 60, 0); /* evicts a */
	CHECK(!get(c, DNS_T_A, "a", 1, NULL));
	CHECK(get(c, DNS_T_A, "b", 1, "5678"));
	put(c, DNS_T_A, "big", "0123456789A", 60, 0); /* over the budget */
	CHECK(!get(c, DNS_T_A, "big", 1, NULL));
	CHECK(get(c, DNS_T_A, "b", 1, "5678"));
	dns_cache_free(c);
}

static void
test_many(void)
{
	struct dns_cache *c = dns_cache_new(1000, 1 << 20, 0, 3600 * S);
	char name[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		dns_cache_put(c, DNS_T_A, name, name, strlen(name), 60, 0);
	}
	CHECK(dns_cache_count(c) == 1000);
	for (int i = 4000; i < 5000; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		CHECK(get(c, DNS_T_A, name, 1, name));
	}
	snprintf(name, sizeof(name), "h%d.example", 3999);
	CHECK(!get(c, DNS_T_A, name, 1, NULL));
	dns_cache_free(c);
}

static void
test_disabled(void)
{
	struct dns_cache *c = dns_cache_new(100, 1 << 20, 0, 0);

	put(c, DNS_T_A, "a", "1", 60, 0);
	CHECK(!get(c, DNS_T_A, "a", 0, NULL));
	CHECK(dns_cache_count(c) == 0);
	dns_cache_free(c);
	dns_cache_free(NULL);
}

static const struct harness_case cases[] = {
    {"ttl_honoured", test_ttl_honoured},
    {"ttl_floor", test_ttl_floor},
    {"ttl_ceiling", test_ttl_ceiling},
    {"negative", test_negative},
    {"keys_and_replace", test_keys_and_replace},
    {"lru_by_count", test_lru_by_count},
    {"lru_by_bytes", test_lru_by_bytes},
    {"many", test_many},
    {"disabled", test_disabled},
};

HARNESS_MAIN(cases)
