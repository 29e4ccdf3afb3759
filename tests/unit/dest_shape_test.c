/* SPDX-License-Identifier: ISC */
/*
 * dest_shape_test.c - adaptive backoff and delivery shaping: the built-in
 * rules against real throttling replies (and ordinary deferrals they
 * must leave alone), the reply code as recorded, the rate ramp, and the
 * scheduler's admission (dest_shape.c) over a loaded configuration: a
 * destination rate, a connection cap, a suspension and its resume.
 */
#include "deliver/backoff.h"
#include "deliver/dest_site.h"
#include "deliver/dest_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "dns/dns.h"
#include "../harness.h"

static const struct {
	const char *reply, *dsn, *rule; /* rule NULL: no match */
} replies[] = {
    {"mx.yahoo[1.2.3.4]:25: 421 4.7.0 [TSS04] Messages from 192.0.2.1 "
     "temporarily deferred due to unexpected volume or user complaints",
        "4.7.0", "yahoo-tss04"},
    {"421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred", "4.7.0",
        "yahoo-ts0x"},
    {"450 4.7.28 The IP you're using to send mail has an unusual rate",
        "4.7.28", "gmail-4.7.28"},
    {"421 4.7.0 Try again later, closing connection. (rate limited)", "4.7.0",
        "gmail-rate"},
    {"451 4.7.650 The mail server [192.0.2.1] has been temporarily rate "
     "limited due to IP reputation.",
        "4.7.650", "microsoft-4.7.650"},
    {"451 4.7.500 Server busy. Please try again later from [192.0.2.1].",
        "4.7.500", "microsoft-451-4.7.5xx"},
    {"421 4.7.0 Too many connections from your IP, throttled", "4.7.0",
        "throttled"},
    {"452 4.5.3 Too many messages in this connection", "4.5.3", NULL},
    {"450 4.2.1 The user you are trying to contact is receiving mail too "
     "quickly",
        "4.2.1", NULL},
    {"451 4.3.0 Temporary local problem", "4.3.0", NULL},
    {"mx[1.2.3.4]:25: connection refused", "4.4.1", NULL},
    {"421 4.7.0 TLS required", "4.7.0", NULL},
};

static void
test_default_rules(void)
{
	struct backoff b;

	CHECK(backoff_init(&b, backoff_default_rules, backoff_ndefault) == 0);
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		const struct backoff_rule *r =
		    backoff_match(&b, replies[i].reply, replies[i].dsn);

		if (replies[i].rule == NULL) {
			CHECK(r == NULL);
		} else {
			CHECK(
			    r != NULL && strcmp(r->name, replies[i].rule) == 0);
		}
		if ((r == NULL) != (replies[i].rule == NULL) ||
		    (r && strcmp(r->name, replies[i].rule) != 0))
			printf("  reply %zu matched %s\n", i,
			    r ? r->name : "nothing");
	}
	backoff_fini(&b);
}

static void
test_rule_fields(void)
{
	static const struct backoff_rule rules[] = {
	    {"code-only", 452, NULL, NULL, false},
	    {"enh", 0, "4.7.1", "slow down", true},
	};
	static const struct backoff_rule bad[] = {
	    {"bad", 0, NULL, "([unclosed", false},
	};
	struct backoff b;

	CHECK(backoff_init(&b, rules, 2) == 0);
	CHECK(
	    backoff_match(&b, "452 4.2.2 mailbox full", "4.2.2") == &rules[0]);
	CHECK(backoff_match(&b, "h[1.1.1.1]:25: 452-x", "") == &rules[0]);
	CHECK(backoff_match(&b, "451 4.7.1 please SLOW DOWN", "4.7.1") ==
	      &rules[1]);
	CHECK(backoff_match(&b, "451 4.7.1 please slow down", "4.7.2") == NULL);
	CHECK(backoff_match(&b, "451 4.7.1 go away", "4.7.1") == NULL);
	backoff_fini(&b);
	CHECK(backoff_init(&b, bad, 1) == -1);
	CHECK(backoff_reply_code("421 x") == 421);
	CHECK(backoff_reply_code("host: 550 x") == 550);
	CHECK(backoff_reply_code("host: 55 x") == 0);
	CHECK(backoff_reply_code("4211 x") == 0);
}

static void
test_ramp(void)
{
	unsigned pct = 100, ok = 0;

	pct = backoff_cut(pct);
	CHECK(pct == 50);
	CHECK(backoff_cut(backoff_cut(backoff_cut(backoff_cut(pct)))) ==
	      BACKOFF_PCT_MIN);
	for (int i = 0; i < BACKOFF_RAMP_EVERY - 1; i++)
		pct = backoff_success(pct, &ok);
	CHECK(pct == 50);
	pct = backoff_success(pct, &ok);
	CHECK(pct == 60 && ok == 0);
	for (int i = 0; i < 10 * BACKOFF_RAMP_EVERY; i++)
		pct = backoff_success(pct, &ok);
	CHECK(pct == 100); /* never past the configured rate */
}

static struct config *
load(const char *text)
{
	const char *d = harness_tmpdir();
	struct config *c = NULL;
	char path[256], err[512];
	FILE *fp;

	if (d == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/shape.conf", d);
	if ((fp = fopen(path, "w")) == NULL)
		return NULL;
	fputs(text, fp);
	fclose(fp);
	if (config_load(path, &c, err, sizeof(err)) != 0) {
		printf("  %s\n", err);
		return NULL;
	}
	return c;
}

static struct sched_job *
job_of(const char *domain, const char *reply, const char *dsn,
    enum sched_outcome o)
{
	struct sched_job *j = calloc(1, sizeof(*j));

	j->domain = strdup(domain);
	j->nrcpts = 1;
	j->rcpts = calloc(1, sizeof(*j->rcpts));
	j->rcpts[0].outcome = o;
	snprintf(j->rcpts[0].reply, sizeof(j->rcpts[0].reply), "%s", reply);
	snprintf(j->rcpts[0].dsn, sizeof(j->rcpts[0].dsn), "%s", dsn);
	j->dest_failed = true;
	return j;
}

/* Admission over a configuration, with the clock the scheduler passes
 * (wall ms) for suspensions; rates use the engine's monotonic clock, so
 * the rate test only asks for what a burst allows. */
static void
test_admit(void)
{
	struct config *c = load("[delivery]\nbackoff_suspend = 30s\n"
	                        "[limit r]\nkey = destination_domain\n"
	                        "rate = 3/h\n"
	                        "[limit k]\ncount = connections\n"
	                        "key = destination_domain\nmax = 2\n");
	struct dest_shape *sh = dest_shape_new();
	struct sched_job *j;
	uint64_t now = 1000000;
	char *rep;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	dest_shape_config(sh, c);
	CHECK(dest_shape_admit(sh, "a.test", now) == 0);
	CHECK(dest_shape_admit(sh, "a.test", now) == 0);
	/* two in flight: the cap */
	CHECK(dest_shape_admit(sh, "a.test", now) != 0);
	CHECK(dest_shape_admit(sh, "b.test", now) == 0); /* each domain apart */
	j = job_of("a.test", "250 ok", "2.0.0", SCHED_OUTCOME_OK);
	dest_shape_done(sh, j, now);
	sched_job_free(j);
	/* a lease back; the rate's burst (3) is the last one */
	CHECK(dest_shape_admit(sh, "a.test", now) == 0);
	j = job_of("a.test", "250 ok", "2.0.0", SCHED_OUTCOME_OK);
	dest_shape_done(sh, j, now);
	sched_job_free(j);
	CHECK(dest_shape_admit(sh, "a.test", now) >= 1000); /* 3/h: long */
	rep = dest_shape_report(sh, now);
	CHECK(strstr(rep, "limit r count=messages key=destination_domain "
	                  "rate=3/h") != NULL);
	CHECK(strstr(rep, "  a.test in_flight=1 admitted=3 refused=1 "
	                  "binding=yes") != NULL);
	free(rep);
	/* a throttling reply: suspended for 30 s, rates halved */
	j = job_of("b.test", "421 4.7.0 [TSS04] deferred", "4.7.0",
	    SCHED_OUTCOME_TEMPFAIL);
	dest_shape_done(sh, j, now);
	CHECK(!j->dest_failed);
	sched_job_free(j);
	CHECK(dest_shape_suspended(sh, "b.test", now + 29999));
	CHECK(!dest_shape_suspended(sh, "b.test", now + 30000));
	CHECK(dest_shape_admit(sh, "b.test", now + 1000) == 29000);
	rep = dest_shape_report(sh, now);
	CHECK(strstr(rep, "suspended b.test for_s=30 reason=\"yahoo-tss04: "
	                  "421 4.7.0 [TSS04] deferred\"") != NULL);
	CHECK(strstr(rep, "rate b.test pct=50") != NULL);
	free(rep);
	CHECK(dest_shape_resume(sh, "b.test"));
	CHECK(!dest_shape_suspended(sh, "b.test", now + 1000));
	CHECK(!dest_shape_resume(sh, "b.test"));
	CHECK(!dest_shape_resume(sh, "none.test"));
	/* an ordinary deferral suspends nothing */
	j = job_of(
	    "b.test", "451 4.3.0 try later", "4.3.0", SCHED_OUTCOME_TEMPFAIL);
	dest_shape_done(sh, j, now);
	CHECK(j->dest_failed);
	sched_job_free(j);
	CHECK(!dest_shape_suspended(sh, "b.test", now + 1));
	dest_shape_free(sh);
	config_unref(c);
}

/* backoff_defaults = no: the same reply suspends nothing. */
static void
test_defaults_off(void)
{
	struct config *c = load("[delivery]\nbackoff_defaults = no\n");
	struct dest_shape *sh = dest_shape_new();
	struct sched_job *j;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	dest_shape_config(sh, c);
	j = job_of("y.test", "421 4.7.0 [TSS04] deferred", "4.7.0",
	    SCHED_OUTCOME_TEMPFAIL);
	dest_shape_done(sh, j, 5000);
	sched_job_free(j);
	CHECK(!dest_shape_suspended(sh, "y.test", 5001));
	CHECK(dest_shape_admit(sh, "y.test", 5001) == 0);
	dest_shape_free(sh);
	config_unref(c);
}

/* The site key: MX names, lowercased, sorted, each once. */
static void
test_site_key(void)
{
	struct dns_target t[3];
	char out[64];

	memset(t, 0, sizeof(t));
	snprintf(t[0].name, sizeof(t[0].name), "MX2.Example.");
	snprintf(t[1].name, sizeof(t[1].name), "mx1.example");
	snprintf(t[2].name, sizeof(t[2].name), "mx2.example");
	CHECK(dest_site_key(t, 3, out, sizeof(out)));
	CHECK(strcmp(out, "mx1.example,mx2.example") == 0);
	CHECK(dest_site_key(t + 1, 1, out, sizeof(out)));
	CHECK(strcmp(out, "mx1.example") == 0);
	CHECK(!dest_site_key(t, 3, out, 12)); /* does not fit */
	CHECK(out[0] == '\0');
	CHECK(!dest_site_key(t, 0, out, sizeof(out)));
}

/* Two domains whose jobs reported the same MX set share a site limit;
 * a domain's first job (its site unknown) is not counted by it. */
static void
test_site_shared(void)
{
	struct config *c = load("[limit s]\nkey = destination_site\n"
	                        "rate = 2/h\n");
	struct dest_shape *sh = dest_shape_new();
	struct sched_job *j;
	char *rep;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	dest_shape_config(sh, c);
	CHECK(dest_shape_admit(sh, "a.test", 1000) == 0); /* site unknown */
	CHECK(dest_shape_admit(sh, "b.test", 1000) == 0);
	j = job_of("a.test", "250 ok", "2.0.0", SCHED_OUTCOME_OK);
	snprintf(j->site, sizeof(j->site), "mx.shared");
	dest_shape_done(sh, j, 1000);
	sched_job_free(j);
	j = job_of("b.test", "250 ok", "2.0.0", SCHED_OUTCOME_OK);
	snprintf(j->site, sizeof(j->site), "mx.shared");
	dest_shape_done(sh, j, 1000);
	sched_job_free(j);
	CHECK(dest_shape_admit(sh, "a.test", 1000) == 0);
	CHECK(dest_shape_admit(sh, "b.test", 1000) == 0);
	/* the site's burst of 2 is spent, by either domain */
	CHECK(dest_shape_admit(sh, "a.test", 1000) != 0);
	CHECK(dest_shape_admit(sh, "b.test", 1000) != 0);
	CHECK(dest_shape_admit(sh, "c.test", 1000) == 0); /* another site */
	rep = dest_shape_report(sh, 1000);
	CHECK(strstr(rep, "  a.test site=mx.shared in_flight=1") != NULL);
	free(rep);
	dest_shape_free(sh);
	config_unref(c);
}

static const struct harness_case cases[] = {
    {"site_key", test_site_key},
    {"site_shared", test_site_shared},
    {"default_rules", test_default_rules},
    {"rule_fields", test_rule_fields},
    {"ramp", test_ramp},
    {"admit", test_admit},
    {"defaults_off", test_defaults_off},
};
HARNESS_MAIN(cases)
