/* SPDX-License-Identifier: ISC */
/*
 * cli_shape_test.c - the qshape table: bucket bounds, parsing of
 * --buckets, counting per domain and the printed table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "cli/shape.h"

#define MIN (60 * 1000ULL)

static void
test_default_buckets(void)
{
	struct shape_buckets b;

	shape_buckets_default(&b);
	CHECK(b.n == 9);
	CHECK(b.bound[0] == 5 && b.bound[8] == 1280);
	CHECK(shape_bucket(&b, 0) == 0);
	CHECK(shape_bucket(&b, 5 * MIN - 1) == 0);
	CHECK(shape_bucket(&b, 5 * MIN) == 1); /* 5 minutes: the "10" column */
	CHECK(shape_bucket(&b, 9 * MIN) == 1);
	CHECK(shape_bucket(&b, 10 * MIN) == 2);
	CHECK(shape_bucket(&b, 1279 * MIN) == 8);
	CHECK(shape_bucket(&b, 1280 * MIN) == 9); /* "1280+" */
	CHECK(shape_bucket(&b, 100000 * MIN) == 9);
}

static void
test_parse(void)
{
	struct shape_buckets b;

	CHECK(shape_buckets_parse("3", &b) == 0);
	CHECK(b.n == 3 && b.bound[0] == 5 && b.bound[2] == 20);
	CHECK(shape_buckets_parse("1,5,60,1440", &b) == 0);
	CHECK(b.n == 4 && b.bound[0] == 1 && b.bound[3] == 1440);
	CHECK(shape_bucket(&b, 30 * MIN) == 2);
	CHECK(shape_bucket(&b, 1440 * MIN) == 4);
	CHECK(shape_buckets_parse("0", &b) < 0);
	CHECK(shape_buckets_parse("25", &b) < 0); /* over SHAPE_BUCKETS_MAX */
	CHECK(shape_buckets_parse("", &b) < 0);
	CHECK(shape_buckets_parse("x", &b) < 0);
	CHECK(shape_buckets_parse("5,5", &b) < 0); /* not ascending */
	CHECK(shape_buckets_parse("10,5", &b) < 0);
	CHECK(shape_buckets_parse("5,,10", &b) < 0);
	CHECK(shape_buckets_parse("5,10,", &b) < 0);
	CHECK(shape_buckets_parse("0,10", &b) < 0);
	CHECK(shape_buckets_parse("-1", &b) < 0);
}

/* The table printed into a string (freed by the caller). The stream's
 * pointer and size are static: gcc -O2 cannot see that fclose() ends the
 * stream's use of them and calls locals dangling. */
static char *
printed(const struct shape *s, size_t top)
{
	static char *text;
	static size_t len;
	FILE *fp;

	text = NULL;
	len = 0;
	fp = open_memstream(&text, &len);

	shape_print(s, fp, top);
	fclose(fp);
	return text;
}

static void
test_table(void)
{
	struct shape_buckets b;
	struct shape *s;
	char *t;

	CHECK(shape_buckets_parse("5,10", &b) == 0);
	s = shape_new(&b);
	shape_add(s, "a@Big.Example", 1 * MIN);
	shape_add(s, "b@big.example", 7 * MIN);
	shape_add(s, "c@big.example", 60 * MIN);
	shape_add(s, "d@small.example", 60 * MIN);
	shape_add(s, "nodomain", 0);
	t = printed(s, 0);
	CHECK(strstr(t, "T     5    10   10+\n") != NULL);
	CHECK(
	    strstr(t, "TOTAL                         5     2     1     2\n") !=
	    NULL);
	CHECK(
	    strstr(t, "big.example                   3     1     1     1\n") !=
	    NULL);
	CHECK(
	    strstr(t, "small.example                 1     0     0     1\n") !=
	    NULL);
	CHECK(strstr(t, "(none)") != NULL);
	/* most first: big before small */
	CHECK(strstr(t, "big.example") < strstr(t, "small.example"));
	free(t);
	t = printed(s, 1); /* the top one only; TOTAL still counts all */
	CHECK(strstr(t, "big.example") != NULL);
	CHECK(strstr(t, "small.example") == NULL);
	CHECK(strstr(t, "TOTAL                         5") != NULL);
	free(t);
	shape_free(s);
}

static void
test_many_domains(void)
{
	struct shape_buckets b;
	struct shape *s;
	char addr[64], *t;

	shape_buckets_default(&b);
	s = shape_new(&b);
	for (int i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "u@d%d.test", i % 1000);
		shape_add(s, addr, (uint64_t)i * MIN);
	}
	t = printed(s, 3);
	CHECK(strstr(t, "TOTAL                      5000") != NULL);
	/* each domain 5 times; ties by name */
	CHECK(strstr(t, "d0.test                       5") != NULL);
	CHECK(strstr(t, "d1.test ") != NULL && strstr(t, "d10.test ") != NULL);
	CHECK(strstr(t, "d100.test ") == NULL); /* 4th by name */
	free(t);
	shape_free(s);
	shape_free(NULL);
}

static void
test_control_bytes_escaped(void)
{
	struct shape_buckets b;
	struct shape *s;
	char *t;

	shape_buckets_default(&b);
	s = shape_new(&b);
	shape_add(s, "x@bad\x1b[2J.test", 0);
	t = printed(s, 0);
	CHECK(strchr(t, '\x1b') == NULL);
	CHECK(strstr(t, "bad\\x1b[2j.test") != NULL);
	free(t);
	shape_free(s);
}

static const struct harness_case cases[] = {
    {"default_buckets", test_default_buckets},
    {"parse", test_parse},
    {"table", test_table},
    {"many_domains", test_many_domains},
    {"control_bytes_escaped", test_control_bytes_escaped},
};

HARNESS_MAIN(cases)
