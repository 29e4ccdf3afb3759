/* SPDX-License-Identifier: ISC */
/*
 * backoff.h - adaptive backoff: rules that recognise a receiver's
 * "slow down" replies, and the rate ramp that follows them.
 *
 * DESIGN. A rule matches a deferral by its reply code (0: any), its
 * enhanced status code (a prefix such as "4.7.28"; NULL: any) and a
 * POSIX extended regex over the reply text (case-insensitive; NULL:
 * any); all three must hold. A match suspends the destination (the
 * scheduler keeps its mail queued and makes no connection until the
 * suspension ends) and, for a rule that says so, cuts its shaped rates
 * in half; every BACKOFF_RAMP_EVERY successful transactions then give
 * back 10 points, up to the configured rate (100%). The built-in rules
 * are the throttling replies of the large receivers (README "Adaptive
 * backoff"); [delivery] backoff_defaults = no turns them off.
 *
 * Pure: no I/O, no clock. Thread: the owner of a struct backoff (the
 * scheduler).
 */
#ifndef MTA_BACKOFF_H
#define MTA_BACKOFF_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#define BACKOFF_PCT_MIN    5  /* a cut rate never goes below this */
#define BACKOFF_RAMP_EVERY 10 /* successes per +10 points */

struct backoff_rule {
	const char *name;
	int code;             /* 421, 451, ...; 0: any */
	const char *enhanced; /* prefix of the enhanced code; NULL: any */
	const char *regex;    /* ERE over the reply, icase; NULL: any */
	bool cut;             /* also halve the destination's rates */
};

struct backoff {
	const struct backoff_rule *rules; /* borrowed */
	regex_t *re;                      /* [n], compiled */
	size_t n;
};

/* The built-in rules, and how many. */
extern const struct backoff_rule backoff_default_rules[];
extern const size_t backoff_ndefault;

/* Compile n rules (borrowed: they must outlive b). 0, or -1 when a regex
 * does not compile (nothing is held then). */
int backoff_init(struct backoff *b, const struct backoff_rule *rules, size_t n);
void backoff_fini(struct backoff *b);

/*
 * backoff_match - the first rule that a deferral matches, or NULL.
 * reply: the text as recorded ("421 4.7.0 ..." or "HOST[IP]:25: 421
 * 4.7.0 ..."): its code is the first "NNN " at its start or after ": ".
 * enhanced: the enhanced code ("4.7.0"; "" or NULL: none).
 */
const struct backoff_rule *backoff_match(
    const struct backoff *b, const char *reply, const char *enhanced);

/* The reply code in reply as backoff_match reads it, or 0. */
int backoff_reply_code(const char *reply);

/* The rate ramp: a match halves pct (not below BACKOFF_PCT_MIN); a
 * success counts, and every BACKOFF_RAMP_EVERY of them add 10 points up
 * to 100. pct in 1..100; *ok the successes counted since the last step. */
unsigned backoff_cut(unsigned pct);
unsigned backoff_success(unsigned pct, unsigned *ok);

#endif
