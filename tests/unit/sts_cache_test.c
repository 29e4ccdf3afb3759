/* SPDX-License-Identifier: ISC */
/*
 * sts_cache_test.c - the MTA-STS policy cache (its own LMDB environment):
 * a record round-trips, replaces the last one, survives closing and
 * opening again (a restart), and an unknown domain is -ENOENT.
 */
#include <errno.h>
#include <string.h>

#include "sts/sts_cache.h"
#include "../harness.h"

static const char text[] = "version: STSv1\r\nmode: enforce\r\n"
                           "mx: mx.example\r\nmax_age: 86400\r\n";

static void
put(struct sts_cache *c, const char *domain, uint64_t fetched, const char *id,
    const char *body)
{
	struct sts_cached in = {.fetched = fetched};

	strcpy(in.id, id);
	buf_init(&in.text, STS_POLICY_MAX);
	CHECK(buf_append(&in.text, body, strlen(body)) == 0);
	CHECK(sts_cache_put(c, domain, &in) == 0);
	buf_fini(&in.text);
}

static void
test_round_trip(void)
{
	const char *dir = harness_tmpdir();
	struct sts_cache *c = NULL;
	struct sts_cached out = {0};
	char err[256];

	CHECK(dir != NULL);
	CHECK(sts_cache_open(dir, &c, err, sizeof(err)) == 0);
	buf_init(&out.text, STS_POLICY_MAX);
	CHECK(sts_cache_get(c, "example.com", &out) == -ENOENT);
	put(c, "example.com", 1700000000, "id1", "old");
	put(c, "example.com", 1700000100, "20240101T0000", text);
	put(c, "other.example", 5, "x", "");
	sts_cache_close(c);

	/* a restart: opened again, the records are there */
	CHECK(sts_cache_open(dir, &c, err, sizeof(err)) == 0);
	CHECK(sts_cache_get(c, "example.com", &out) == 0);
	CHECK(out.fetched == 1700000100);
	CHECK(strcmp(out.id, "20240101T0000") == 0);
	CHECK_MEM(buf_peek(&out.text), buf_avail(&out.text), text);
	CHECK(sts_cache_get(c, "other.example", &out) == 0);
	CHECK(out.fetched == 5 && buf_avail(&out.text) == 0);
	CHECK(sts_cache_get(c, "example.co", &out) == -ENOENT);
	buf_fini(&out.text);
	sts_cache_close(c);
}

static void
test_open_fails(void)
{
	struct sts_cache *c = NULL;
	char err[256] = "";

	CHECK(sts_cache_open("/nonexistent/dir", &c, err, sizeof(err)) < 0);
	CHECK(strstr(err, "sts.mdb") != NULL);
}

static const struct harness_case cases[] = {
    {"round_trip", test_round_trip},
    {"open_fails", test_open_fails},
};

HARNESS_MAIN(cases)
