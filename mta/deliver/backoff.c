/* SPDX-License-Identifier: ISC */
/*
 * backoff.c - the rules that recognise throttling replies, and the rate
 * ramp (see backoff.h). Pure; the scheduler thread.
 */
#include "deliver/backoff.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

/*
 * What the large receivers say when they want a sender to slow down
 * (their postmaster pages): Yahoo's [TSS04] and [TS0x] deferrals; Gmail's
 * 4.7.28 (an unusual rate) and 4.7.0 "rate limited"; Microsoft's 4.7.650
 * (IP reputation throttling) and 451 4.7.500-699 (server busy, try
 * later); and any reply that says it is throttling, over a rate limit or
 * receiving too many connections.
 */
const struct backoff_rule backoff_default_rules[] = {
    {"yahoo-tss04", 0, NULL, "\\[TSS04\\]", true},
    {"yahoo-ts0x", 421, "4.7.0", "\\[TS0[0-9]\\]", true},
    {"gmail-4.7.28", 0, "4.7.28", NULL, true},
    {"gmail-rate", 0, "4.7.0", "rate.limit", true},
    {"microsoft-4.7.650", 0, "4.7.650", NULL, true},
    {"microsoft-451-4.7.5xx", 451, "4.7.", "^.*4\\.7\\.[56][0-9][0-9]", true},
    {"throttled", 0, NULL,
        "throttl|too many connections|rate limit|"
        "try (again )?later.*(rate|volume)",
        true},
};
const size_t backoff_ndefault =
    sizeof(backoff_default_rules) / sizeof(backoff_default_rules[0]);

int
backoff_init(struct backoff *b, const struct backoff_rule *rules, size_t n)
{
	b->rules = rules;
	b->n = n;
	b->re = xcalloc(n ? n : 1, sizeof(*b->re));
	for (size_t i = 0; i < n; i++) {
		if (rules[i].regex == NULL)
			continue;
		if (regcomp(&b->re[i], rules[i].regex,
		        REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0) {
			b->n = i;
			backoff_fini(b);
			return -1;
		}
	}
	return 0;
}

void
backoff_fini(struct backoff *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->rules[i].regex != NULL)
			regfree(&b->re[i]);
	free(b->re);
	b->re = NULL;
	b->n = 0;
}

/* "NNN" followed by a space, a dash or the end, at p. */
static int
code_at(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]))
		return 0;
	if (p[3] != ' ' && p[3] != '-' && p[3] != '\0')
		return 0;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

int
backoff_reply_code(const char *reply)
{
	const char *p;
	int c;

	if ((c = code_at(reply)) != 0)
		return c;
	for (p = strstr(reply, ": "); p != NULL; p = strstr(p + 1, ": "))
		if ((c = code_at(p + 2)) != 0)
			return c;
	return 0;
}

const struct backoff_rule *
backoff_match(const struct backoff *b, const char *reply, const char *enhanced)
{
	int code = backoff_reply_code(reply);

	if (enhanced == NULL)
		enhanced = "";
	for (size_t i = 0; i < b->n; i++) {
		const struct backoff_rule *r = &b->rules[i];

		if (r->code != 0 && r->code != code)
			continue;
		if (r->enhanced != NULL &&
		    strncmp(enhanced, r->enhanced, strlen(r->enhanced)) != 0)
			continue;
		if (r->regex != NULL &&
		    regexec(&b->re[i], reply, 0, NULL, 0) != 0)
			continue;
		return r;
	}
	return NULL;
}

unsigned
backoff_cut(unsigned pct)
{
	pct /= 2;
	return pct < BACKOFF_PCT_MIN ? BACKOFF_PCT_MIN : pct;
}

unsigned
backoff_success(unsigned pct, unsigned *ok)
{
	if (pct >= 100) {
		*ok = 0;
		return 100;
	}
	if (++*ok < BACKOFF_RAMP_EVERY)
		return pct;
	*ok = 0;
	return pct + 10 > 100 ? 100 : pct + 10;
}
