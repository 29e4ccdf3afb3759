/* SPDX-License-Identifier: ISC */
/*
 * dest_shape.c - delivery shaping and adaptive backoff per destination (see
 * dest_shape.h). The scheduler thread only; the throttle state is in a
 * limits store (thread-safe, but only this thread uses this one).
 */
#include "deliver/dest_shape.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/backoff.h"
#include "limits/limits.h"

#define SHAPE_BUCKETS   1024
#define SHAPE_USES      8                   /* limits tracked a destination */
#define SHAPE_LEASE_TTL (3600ULL * 1000000) /* us: longer than any job */
#define SHAPE_BINDING   2000 /* ms: refused this recently = binding */

/* What one limit did to one destination, for the report. */
struct shape_use {
	const char *limit; /* name in the snapshot; NULL: free slot */
	uint64_t refused;
	uint64_t last_refused; /* wall ms */
};

struct shape_dest {
	char *domain;
	uint64_t until; /* wall ms: suspended until */
	char why[240];  /* rule and reply that suspended it */
	unsigned pct;   /* rates at pct% of the configured ones */
	unsigned ok;    /* successes toward the next ramp step */
	unsigned held;  /* jobs admitted, not back */
	uint64_t admitted;
	/* its site (MX host set) as the last job learned it, and the one
	 * its site limits use: the learned one, taken when no job holds
	 * leases under the old one */
	char site[256], lsite[256];
	struct shape_use use[SHAPE_USES];
	struct shape_dest *next;
};

struct dest_shape {
	const struct config *c; /* borrowed: the scheduler's snapshot */
	struct limits_store *st;
	struct backoff rules;
	bool rules_on;
	uint64_t suspend_ms;
	struct shape_dest *tab[SHAPE_BUCKETS];
};

struct dest_shape *
dest_shape_new(void)
{
	struct dest_shape *sh = xcalloc(1, sizeof(*sh));

	sh->st = limits_store_new();
	sh->suspend_ms = 5 * 60 * 1000;
	if (backoff_init(&sh->rules, backoff_default_rules, backoff_ndefault) !=
	    0)
		MTA_ASSERT(!"a built-in backoff rule does not compile");
	return sh;
}

void
dest_shape_free(struct dest_shape *sh)
{
	if (sh == NULL)
		return;
	for (size_t i = 0; i < SHAPE_BUCKETS; i++)
		for (struct shape_dest *d = sh->tab[i], *n; d; d = n) {
			n = d->next;
			free(d->domain);
			free(d);
		}
	backoff_fini(&sh->rules);
	limits_store_free(sh->st);
	free(sh);
}

void
dest_shape_config(struct dest_shape *sh, const struct config *c)
{
	sh->c = c;
	if (c == NULL)
		return; /* settings made by hand (tests): no shaping */
	sh->rules_on = c->delivery.backoff_defaults;
	sh->suspend_ms = c->delivery.backoff_suspend;
	/* the names in the uses pointed into the old snapshot */
	for (size_t i = 0; i < SHAPE_BUCKETS; i++)
		for (struct shape_dest *d = sh->tab[i]; d; d = d->next)
			memset(d->use, 0, sizeof(d->use));
}

static struct shape_dest *
dest_find(const struct dest_shape *sh, const char *domain)
{
	struct shape_dest *d = sh->tab[str_hash(domain) % SHAPE_BUCKETS];

	while (d != NULL && strcmp(d->domain, domain) != 0)
		d = d->next;
	return d;
}

static struct shape_dest *
dest_get(struct dest_shape *sh, const char *domain)
{
	struct shape_dest *d = dest_find(sh, domain), **head;

	if (d != NULL)
		return d;
	head = &sh->tab[str_hash(domain) % SHAPE_BUCKETS];
	d = xcalloc(1, sizeof(*d));
	d->domain = xstrdup(domain);
	d->pct = 100;
	d->next = *head;
	*head = d;
	return d;
}

static bool
is_dest_limit(const struct config_limit *l)
{
	return (l->key_type == CONFIG_LIMIT_KEY_DEST_DOMAIN ||
	           l->key_type == CONFIG_LIMIT_KEY_DEST_SITE) &&
	       (l->count == CONFIG_LIMIT_MESSAGES ||
	           l->count == CONFIG_LIMIT_CONNECTIONS);
}

/* The store key of limit l for d: "NAME\0domain" or "NAME\0site"; 0
 * when d has none (a site not learned yet: its first job). */
static size_t
key_of(const struct config_limit *l, const struct shape_dest *d, char *out,
    size_t len)
{
	const char *v =
	    l->key_type == CONFIG_LIMIT_KEY_DEST_SITE ? d->lsite : d->domain;
	int n;

	if (v[0] == '\0')
		return 0;
	n = snprintf(out, len, "%s%c%s", l->name, '\0', v);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static void
note_refusal(struct shape_dest *d, const char *limit, uint64_t now_ms)
{
	struct shape_use *u = NULL;

	for (size_t i = 0; i < SHAPE_USES && u == NULL; i++)
		if (d->use[i].limit == NULL || d->use[i].limit == limit)
			u = &d->use[i];
	if (u == NULL)
		return;
	u->limit = limit;
	u->refused++;
	u->last_refused = now_ms;
}

/* The rate of l at pct%: its interval stretched. */
static bool
rate_of(const struct config_limit *l, unsigned pct, struct gcra *g)
{
	if (!gcra_init(g, l->rate_n, l->period_ms * 1000, l->burst))
		return false;
	if (pct < 100)
		g->interval = g->interval * 100 / pct;
	return true;
}

/* Give back the leases of the first upto limits that d's job took. */
static void
unlease(struct dest_shape *sh, const struct shape_dest *d, size_t upto,
    uint64_t now)
{
	char key[LIMITS_KEY_MAX];
	size_t klen;

	for (size_t i = 0; sh->c != NULL && i < upto; i++) {
		const struct config_limit *l = &sh->c->limits[i];

		if (is_dest_limit(l) && l->max > 0 &&
		    (klen = key_of(l, d, key, sizeof(key))) != 0)
			limits_store_unlease(sh->st, key, klen, now);
	}
}

/* Every lease a job of d needs; 0, or ms to wait (none held then). */
static uint64_t
admit_leases(struct dest_shape *sh, struct shape_dest *d, uint64_t now_ms)
{
	char key[LIMITS_KEY_MAX];
	uint64_t now = limits_now();
	size_t klen;

	for (size_t i = 0; i < sh->c->nlimits; i++) {
		const struct config_limit *l = &sh->c->limits[i];

		if (!is_dest_limit(l) || l->max == 0 ||
		    (klen = key_of(l, d, key, sizeof(key))) == 0)
			continue;
		if (!limits_store_lease(sh->st, key, klen, l->max,
		        now + SHAPE_LEASE_TTL, now)) {
			unlease(sh, d, i, now);
			note_refusal(d, l->name, now_ms);
			/* a job's end asks again (sched: dest_wake); this is
			 * a fallback for leases that expire instead */
			return 200;
		}
	}
	return 0;
}

/* Every rate; 0 or ms to wait. Each limit is charged on its own. */
static uint64_t
admit_rates(struct dest_shape *sh, struct shape_dest *d, uint64_t now_ms)
{
	char key[LIMITS_KEY_MAX];
	uint64_t now = limits_now(), wait = 0;
	struct gcra g;
	size_t klen;

	for (size_t i = 0; i < sh->c->nlimits; i++) {
		const struct config_limit *l = &sh->c->limits[i];

		if (!is_dest_limit(l) || !rate_of(l, d->pct, &g) ||
		    (klen = key_of(l, d, key, sizeof(key))) == 0)
			continue;
		if (!limits_store_take(sh->st, key, klen, &g, now, 1, false)) {
			/* at least 1 ms: a refusal must not read as 0 */
			uint64_t w = g.interval >= 1000 ? g.interval / 1000 : 1;

			note_refusal(d, l->name, now_ms);
			wait = w > wait ? w : wait;
		}
	}
	return wait;
}

uint64_t
dest_shape_admit(void *arg, const char *domain, uint64_t now_ms)
{
	struct dest_shape *sh = arg;
	struct shape_dest *d = dest_find(sh, domain);
	uint64_t wait;

	if (d != NULL && d->until > now_ms)
		return d->until - now_ms;
	if (sh->c == NULL || sh->c->nlimits == 0)
		return 0;
	d = dest_get(sh, domain);
	if (d->held == 0)
		memcpy(d->lsite, d->site, sizeof(d->lsite));
	if ((wait = admit_leases(sh, d, now_ms)) != 0)
		return wait;
	if ((wait = admit_rates(sh, d, now_ms)) != 0) {
		unlease(sh, d, sh->c->nlimits, limits_now());
		return wait;
	}
	d->held++;
	d->admitted++;
	return 0;
}

/* A deferral of the job that a rule matches, or NULL. */
static const struct backoff_rule *
job_match(const struct dest_shape *sh, const struct sched_job *job, size_t *at)
{
	for (size_t i = 0; sh->rules_on && i < job->nrcpts; i++) {
		const struct sched_job_rcpt *r = &job->rcpts[i];
		const struct backoff_rule *rule;

		if (r->outcome != SCHED_OUTCOME_TEMPFAIL)
			continue;
		if ((rule = backoff_match(&sh->rules, r->reply, r->dsn)) !=
		    NULL) {
			*at = i;
			return rule;
		}
	}
	return NULL;
}

void
dest_shape_done(struct dest_shape *sh, struct sched_job *job, uint64_t now_ms)
{
	struct shape_dest *d = dest_find(sh, job->domain);
	const struct backoff_rule *rule;
	size_t at = 0;

	if (d != NULL && d->held > 0) {
		d->held--;
		unlease(sh, d, sh->c ? sh->c->nlimits : 0, limits_now());
	}
	if (job->site[0] != '\0' && (d != NULL || sh->c != NULL)) {
		d = d != NULL ? d : dest_get(sh, job->domain);
		str_copy(d->site, sizeof(d->site), job->site);
	}
	if ((rule = job_match(sh, job, &at)) == NULL) {
		if (d != NULL && !job->dest_failed && job->nrcpts > 0 &&
		    job->rcpts[0].outcome == SCHED_OUTCOME_OK)
			d->pct = backoff_success(d->pct, &d->ok);
		return;
	}
	d = dest_get(sh, job->domain);
	d->until = now_ms + sh->suspend_ms;
	if (rule->cut)
		d->pct = backoff_cut(d->pct);
	d->ok = 0;
	str_fmt(
	    d->why, sizeof(d->why), "%s: %s", rule->name, job->rcpts[at].reply);
	job->dest_failed = false;
	log_info("event=destination-suspended domain=%s rule=%s for_ms=%" PRIu64
	         " rate_pct=%u",
	    job->domain, rule->name, sh->suspend_ms, d->pct);
}

bool
dest_shape_resume(struct dest_shape *sh, const char *domain)
{
	struct shape_dest *d = dest_find(sh, domain);
	bool was;

	if (d == NULL)
		return false;
	was = d->until != 0 || d->pct < 100;
	d->until = 0;
	d->pct = 100;
	d->ok = 0;
	return was;
}

bool
dest_shape_suspended(
    const struct dest_shape *sh, const char *domain, uint64_t now_ms)
{
	const struct shape_dest *d;

	if (sh == NULL)
		return false; /* a scheduler without shaping (unit tests) */
	d = dest_find(sh, domain);
	return d != NULL && d->until > now_ms;
}

/* The lines of limit l: its definition, then each destination it has
 * met. */
static void
report_limit(FILE *fp, const struct dest_shape *sh,
    const struct config_limit *l, uint64_t now_ms)
{
	static const char *const counts[] = {
	    "messages", "recipients", "connections", "bytes"};

	bool site = l->key_type == CONFIG_LIMIT_KEY_DEST_SITE;

	fprintf(fp, "limit %s count=%s key=%s rate=%s burst=%u max=%u\n",
	    l->name, counts[l->count], l->key, l->rate[0] ? l->rate : "-",
	    l->burst, l->max);
	if (!is_dest_limit(l)) {
		fprintf(fp, "  (submission: its use is the receive stage's)\n");
		return;
	}
	for (size_t i = 0; i < SHAPE_BUCKETS; i++)
		for (const struct shape_dest *d = sh->tab[i]; d; d = d->next)
			for (size_t k = 0; k < SHAPE_USES; k++) {
				const struct shape_use *u = &d->use[k];

				if (u->limit == NULL ||
				    strcmp(u->limit, l->name) != 0)
					continue;
				fprintf(fp,
				    "  %s%s%s in_flight=%u admitted=%" PRIu64
				    " refused=%" PRIu64 " binding=%s\n",
				    d->domain, site ? " site=" : "",
				    site ? d->lsite : "", d->held, d->admitted,
				    u->refused,
				    now_ms < u->last_refused + SHAPE_BINDING
				        ? "yes"
				        : "no");
			}
}

char *
dest_shape_report(const struct dest_shape *sh, uint64_t now_ms)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (fp == NULL)
		return xstrdup("");
	for (size_t i = 0; sh->c != NULL && i < sh->c->nlimits; i++)
		report_limit(fp, sh, &sh->c->limits[i], now_ms);
	for (size_t i = 0; i < SHAPE_BUCKETS; i++)
		for (const struct shape_dest *d = sh->tab[i]; d; d = d->next) {
			if (d->until > now_ms)
				fprintf(fp,
				    "suspended %s for_s=%" PRIu64
				    " reason=\"%s\"\n",
				    d->domain, (d->until - now_ms + 999) / 1000,
				    d->why);
			if (d->pct < 100)
				fprintf(
				    fp, "rate %s pct=%u\n", d->domain, d->pct);
		}
	fclose(fp);
	return text;
}
