/* SPDX-License-Identifier: ISC */
/*
 * harness.h - table-driven unit tests: { "label", fn } rows, RUN/PASS/FAIL
 * lines, exit 0 pass / 1 fail / 77 skip. A test function returns nothing;
 * CHECK() records a failure with file and line and returns from it;
 * STEP() records one and lets the test clean up.
 *
 *	static void test_x(void) { CHECK(1 + 1 == 2); }
 *	static const struct harness_case cases[] = { { "x", test_x }, };
 *	HARNESS_MAIN(cases)
 */
#ifndef MTA_TESTS_HARNESS_H
#define MTA_TESTS_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct harness_case {
	const char *label;
	void (*fn)(void);
};

static int harness_failed;

#define CHECK(e)                                                               \
	do {                                                                   \
		if (!(e)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			    __LINE__, #e);                                     \
			harness_failed = 1;                                    \
			return;                                                \
		}                                                              \
	} while (0)

/*
 * STEP(ok, e): a check that does not return, for the steps of a test
 * that must clean up before it ends. When ok is still true and e is
 * false, reports file, line and e as CHECK does, fails the test and sets
 * ok false; once ok is false, later steps are skipped (they would fail
 * for the first one's reason). Clean up, then return when !ok.
 */
#define STEP(ok, e)                                                           \
	do {                                                                  \
		if ((ok) && !(e)) {                                           \
			fprintf(stderr, "%s:%d: STEP(%s) failed\n", __FILE__, \
			    __LINE__, #e);                                    \
			harness_failed = 1;                                   \
			(ok) = 0;                                             \
		}                                                             \
	} while (0)

/* The directory of harness_tmpdir(); empty until made. */
static inline char *
harness_dir_(void)
{
	static char d[64];

	return d;
}

static inline void
harness_tmpdir_remove(void)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", harness_dir_());
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", harness_dir_());
}

/*
 * harness_tmpdir - a private directory under /tmp for this test program:
 * made on the first call, removed with all it holds at exit. NULL when it
 * cannot be made.
 */
static inline const char *
harness_tmpdir(void)
{
	char *d = harness_dir_();

	if (d[0] == '\0') {
		snprintf(d, 64, "/tmp/mta-unit.XXXXXX");
		if (mkdtemp(d) == NULL) {
			d[0] = '\0';
			return NULL;
		}
		atexit(harness_tmpdir_remove);
	}
	return d;
}

/* Compare (ptr,len) to a string literal or C string. */
#define CHECK_MEM(p, n, s) CHECK((n) == strlen(s) && memcmp((p), (s), (n)) == 0)

#define HARNESS_MAIN(cases)                                                 \
	int main(int argc, char **argv)                                     \
	{                                                                   \
		int pass = 0, fail = 0;                                     \
		for (size_t i_ = 0; i_ < sizeof(cases) / sizeof(cases[0]);  \
		     i_++) {                                                \
			if (argc > 1 && strcmp(argv[1], cases[i_].label))   \
				continue;                                   \
			harness_failed = 0;                                 \
			printf("RUN  %s\n", cases[i_].label);               \
			fflush(stdout);                                     \
			cases[i_].fn();                                     \
			printf("%s %s\n", harness_failed ? "FAIL" : "PASS", \
			    cases[i_].label);                               \
			if (harness_failed)                                 \
				fail++;                                     \
			else                                                \
				pass++;                                     \
		}                                                           \
		printf("%d passed, %d failed\n", pass, fail);               \
		return fail ? 1 : 0;                                        \
	}

#endif
