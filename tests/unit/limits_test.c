/* SPDX-License-Identifier: ISC */
/*
 * limits_test.c - the throttle engine: GCRA arithmetic (burst, steady
 * rate, oversize requests, idleness, saturation), the sharded store
 * (keys apart, sweep of idle keys, threads), key values (user, client,
 * networks, sender domain) and [limit] sections in the configuration
 * (every error with FILE:LINE).
 */
#include "limits/gcra.h"
#include "limits/limits.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "../harness.h"

#define S 1000000ULL /* us */

static void
test_gcra_burst_then_rate(void)
{
	struct gcra g;
	uint64_t tat = 0, now = 100 * S, wait = 0;

	CHECK(gcra_init(&g, 10, 60 * S, 3)); /* 10/m, burst 3 */
	CHECK(g.interval == 6 * S);
	for (int i = 0; i < 3; i++)
		CHECK(gcra_take(&g, &tat, now, 1, NULL));
	CHECK(!gcra_take(&g, &tat, now, 1, &wait));
	CHECK(wait == 6 * S);
	CHECK(!gcra_take(&g, &tat, now + 6 * S - 1, 1, NULL));
	CHECK(gcra_take(&g, &tat, now + 6 * S, 1, NULL));
	CHECK(!gcra_take(&g, &tat, now + 6 * S, 1, NULL));
	/* quiet for a while: the full burst again, never more */
	now += 3600 * S;
	CHECK(gcra_idle(tat, now));
	for (int i = 0; i < 3; i++)
		CHECK(gcra_take(&g, &tat, now, 1, NULL));
	CHECK(!gcra_take(&g, &tat, now, 1, NULL));
}

static void
test_gcra_default_burst(void)
{
	struct gcra g;
	uint64_t tat = 0, now = 5 * S;
	int n = 0;

	CHECK(gcra_init(&g, 5, S, 0)); /* 5/s, burst = 5 */
	CHECK(g.burst == 5);
	while (gcra_take(&g, &tat, now, 1, NULL) && n < 100)
		n++;
	CHECK(n == 5);
	CHECK(!gcra_init(&g, 0, S, 1));
	CHECK(!gcra_init(&g, 1, 0, 1));
}

/* Held over a long run: 10 per second, asked 1000 times a second. */
static void
test_gcra_long_run(void)
{
	struct gcra g;
	uint64_t tat = 0, now = S;
	unsigned ok = 0;

	CHECK(gcra_init(&g, 10, S, 1));
	for (unsigned i = 0; i < 60000; i++, now += 1000)
		ok += gcra_take(&g, &tat, now, 1, NULL);
	CHECK(ok >= 599 && ok <= 601);
}

static void
test_gcra_oversize(void)
{
	struct gcra g;
	uint64_t tat = 0, now = 10 * S;

	CHECK(gcra_init(&g, 1000, S, 1000)); /* bytes: 1000/s, burst 1000 */
	CHECK(gcra_take(&g, &tat, now, 5000, NULL));   /* idle: passes */
	CHECK(!gcra_take(&g, &tat, now + S, 1, NULL)); /* and costs 5 s */
	CHECK(gcra_take(&g, &tat, now + 4 * S + 1000, 1, NULL));
	/* saturation instead of wrapping */
	tat = 0;
	CHECK(!gcra_take(&g, &tat, now, UINT64_MAX, NULL) || tat != 0);
	CHECK(!gcra_take(&g, &tat, now, 1, NULL));
}

static void
test_store_keys_apart(void)
{
	struct limits_store *st = limits_store_new();
	struct limits_store_stats ss;
	struct gcra g;

	CHECK(gcra_init(&g, 1, 60 * S, 1));
	CHECK(limits_store_take(st, "a", 1, &g, S, 1, false));
	CHECK(!limits_store_take(st, "a", 1, &g, S, 1, false));
	CHECK(limits_store_take(st, "b", 1, &g, S, 1, false));
	CHECK(limits_store_take(st, "a\0x", 3, &g, S, 1, false));
	limits_store_stats(st, &ss);
	CHECK(ss.keys == 3 && ss.overflows == 0);
	limits_store_free(st);
}

/* Many keys, then time passes: idle ones are swept as new ones come. */
static void
test_store_sweep(void)
{
	struct limits_store *st = limits_store_new();
	struct limits_store_stats ss;
	struct gcra g;
	char k[32];

	CHECK(gcra_init(&g, 1, S, 1));
	for (unsigned i = 0; i < 20000; i++) {
		int n = snprintf(k, sizeof(k), "k%u", i);

		CHECK(limits_store_take(st, k, (size_t)n, &g, S, 1, false));
	}
	limits_store_stats(st, &ss);
	CHECK(ss.keys == 20000);
	/* three more rounds, each when the keys before are idle: without
	 * the sweep 80000 keys would be held */
	for (unsigned r = 1; r <= 3; r++)
		for (unsigned i = 0; i < 20000; i++) {
			int n = snprintf(k, sizeof(k), "r%u.%u", r, i);

			CHECK(limits_store_take(
			    st, k, (size_t)n, &g, r * 100 * S, 1, false));
		}
	limits_store_stats(st, &ss);
	CHECK(ss.keys < 50000);
	CHECK(ss.overflows == 0);
	limits_store_free(st);
}

struct th_arg {
	struct limits_store *st;
	struct gcra g;
	unsigned ok;
};

static void *
th_run(void *p)
{
	struct th_arg *a = p;

	for (unsigned i = 0; i < 10000; i++)
		a->ok +=
		    limits_store_take(a->st, "shared", 6, &a->g, S, 1, false);
	return NULL;
}

/* Four threads on one key at one instant: exactly the burst passes. */
static void
test_store_threads(void)
{
	struct th_arg a[4];
	pthread_t t[4];
	struct limits_store *st = limits_store_new();
	unsigned total = 0;

	for (int i = 0; i < 4; i++) {
		a[i].st = st;
		a[i].ok = 0;
		CHECK(gcra_init(&a[i].g, 100, 60 * S, 100));
		CHECK(pthread_create(&t[i], NULL, th_run, &a[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += a[i].ok;
	}
	CHECK(total == 100);
	limits_store_free(st);
}

static int
load(const char *text, struct config **c, char *err, size_t errlen, char *path,
    size_t plen)
{
	const char *d = harness_tmpdir();
	static unsigned n;
	FILE *fp;

	if (d == NULL)
		return -2;
	snprintf(path, plen, "%s/%u.conf", d, n++);
	if ((fp = fopen(path, "w")) == NULL)
		return -2;
	fputs(text, fp);
	fclose(fp);
	return config_load(path, c, err, errlen);
}

static void
test_config_limits(void)
{
	static const char text[] = "[server]\n"
	                           "listen = 127.0.0.1:2525\n"
	                           "[limit per-user]\n"
	                           "count = messages\n"
	                           "key = user\n"
	                           "rate = 100/h\n"
	                           "burst = 10\n"
	                           "[limit nets]\n"
	                           "count = connections\n"
	                           "key = client_network/24/48\n"
	                           "rate = 5/s\n";
	struct config *c = NULL;
	char err[512], path[128];

	CHECK(load(text, &c, err, sizeof(err), path, sizeof(path)) == 0);
	CHECK(c->nlimits == 2);
	CHECK(strcmp(c->limits[0].name, "per-user") == 0);
	CHECK(c->limits[0].count == CONFIG_LIMIT_MESSAGES);
	CHECK(c->limits[0].key_type == CONFIG_LIMIT_KEY_USER);
	CHECK(c->limits[0].rate_n == 100 && c->limits[0].period_ms == 3600000);
	CHECK(c->limits[0].burst == 10);
	CHECK(c->limits[1].key_type == CONFIG_LIMIT_KEY_CLIENT_NETWORK);
	CHECK(c->limits[1].prefix4 == 24 && c->limits[1].prefix6 == 48);
	CHECK(c->limits[1].burst == 0);
	config_unref(c);
}

static void
test_config_limit_errors(void)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *why;
	} rows[] = {
	    {"[limit a]\nkey = user\nrate = 0/m\n", 3, "rate: a rate of zero"},
	    {"[limit a]\nkey = user\nrate = 5/w\n", 3, "rate: invalid rate"},
	    {"[limit a]\nkey = user\nrate = x\n", 3, "rate: invalid rate"},
	    {"[limit a]\nkey = mailbox\nrate = 5/m\n", 2,
	        "key: unknown key type \"mailbox\""},
	    {"[limit a]\nkey = client_network/33\nrate = 5/m\n", 2,
	        "key: invalid network prefix"},
	    {"[limit a]\nkey = user\n", 1, "rate: missing in [limit a]"},
	    {"[limit a]\nrate = 1/s\n", 1, "key: missing in [limit a]"},
	    {"[limit a]\ncount = mails\n", 2, "count: invalid"},
	    {"[limit a]\nkey = user\nrate = 1/s\nfoo = 1\n", 4,
	        "foo: unknown key in [limit a]"},
	    {"[limit a]\nkey = user\nrate = 1/s\n[limit a]\n", 4,
	        "[limit a]: duplicate limit (first on line 1)"},
	    {"[limit]\n", 1, "[limit]: missing name"},
	    {"[limit a/b]\n", 1, "[limit a/b]: invalid limit name"},
	    {"[limit a]\nkey = user\nrate = 1/s\nmax = 3\n", 4,
	        "max: only for count = connections"},
	};
	char err[512], path[128], want[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct config *c = NULL;

		CHECK(load(rows[i].text, &c, err, sizeof(err), path,
		          sizeof(path)) == -1);
		snprintf(want, sizeof(want), "%s:%u: %s", path, rows[i].line,
		    rows[i].why);
		if (strncmp(err, want, strlen(want)) != 0) {
			fprintf(stderr, "got  %s\nwant %s\n", err, want);
			CHECK(0);
		}
	}
}

static const struct config_limit *
limit_of(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nlimits; i++)
		if (strcmp(c->limits[i].name, name) == 0)
			return &c->limits[i];
	return NULL;
}

/* The engine over a loaded configuration: which keys apply to whom. */
static void
test_limits_keys(void)
{
	static const char text[] = "[limit u]\nkey = user\nrate = 2/m\n"
	                           "[limit n]\ncount = recipients\n"
	                           "key = client_network/24\nrate = 3/m\n"
	                           "[limit d]\nkey = sender_domain\n"
	                           "rate = 1/m\n";
	struct config *c = NULL;
	struct limits_store *st = limits_store_new();
	struct limits *l;
	char err[512], path[128];
	const char *name = NULL;
	struct limits_subject alice = {"alice", "192.0.2.7", "a.example"};
	struct limits_subject bob = {"bob", "192.0.2.200", "b.example"};
	struct limits_subject anon = {NULL, "198.51.100.1", NULL};

	CHECK(load(text, &c, err, sizeof(err), path, sizeof(path)) == 0);
	CHECK(limit_of(c, "n") != NULL);
	l = limits_new(c, st);
	CHECK(l != NULL);
	CHECK(limits_counts(l, CONFIG_LIMIT_MESSAGES));
	CHECK(limits_counts(l, CONFIG_LIMIT_RECIPIENTS));
	CHECK(!limits_counts(l, CONFIG_LIMIT_CONNECTIONS));
	/* messages: u (2) and d (1) */
	CHECK(limits_take(l, CONFIG_LIMIT_MESSAGES, &alice, 1, S, &name));
	CHECK(!limits_take(l, CONFIG_LIMIT_MESSAGES, &alice, 1, S, &name));
	CHECK(strcmp(name, "d") == 0);
	/* u has counted two (each limit counts on its own) */
	alice.sender_domain = "c.example";
	CHECK(!limits_take(l, CONFIG_LIMIT_MESSAGES, &alice, 1, S, &name));
	CHECK(strcmp(name, "u") == 0);
	CHECK(limits_take(l, CONFIG_LIMIT_MESSAGES, &bob, 1, S, &name));
	/* no user, no sender domain: no limit applies */
	for (int i = 0; i < 10; i++)
		CHECK(
		    limits_take(l, CONFIG_LIMIT_MESSAGES, &anon, 1, S, &name));
	/* recipients: one /24 shared by alice and bob */
	CHECK(limits_take(l, CONFIG_LIMIT_RECIPIENTS, &alice, 1, S, &name));
	CHECK(limits_take(l, CONFIG_LIMIT_RECIPIENTS, &bob, 1, S, &name));
	CHECK(limits_take(l, CONFIG_LIMIT_RECIPIENTS, &alice, 1, S, &name));
	CHECK(!limits_take(l, CONFIG_LIMIT_RECIPIENTS, &bob, 1, S, &name));
	CHECK(strcmp(name, "n") == 0);
	CHECK(limits_take(l, CONFIG_LIMIT_RECIPIENTS, &anon, 1, S, &name));
	limits_free(l);
	/* no [limit]: no engine at all */
	config_unref(c);
	c = config_defaults();
	CHECK(limits_new(c, st) == NULL);
	CHECK(!limits_counts(NULL, CONFIG_LIMIT_MESSAGES));
	config_unref(c);
	limits_store_free(st);
}

/* Leases: at most max at once, given back, expiring by themselves. */
static void
test_leases(void)
{
	static const char text[] = "[limit c]\ncount = connections\n"
	                           "key = client\nmax = 2\n";
	struct config *c = NULL;
	struct limits_store *st = limits_store_new();
	struct limits *l;
	char err[512], path[128];
	const char *name = NULL;
	struct limits_subject a = {NULL, "192.0.2.1", NULL};
	struct limits_subject b = {NULL, "192.0.2.2", NULL};
	struct limits_store_stats ss;

	CHECK(load(text, &c, err, sizeof(err), path, sizeof(path)) == 0);
	l = limits_new(c, st);
	CHECK(limits_leases(l));
	/* no rate: new connections are not counted, only those held */
	CHECK(!limits_counts(l, CONFIG_LIMIT_CONNECTIONS));
	CHECK(limits_lease(l, &a, S, 10 * S, &name));
	CHECK(limits_lease(l, &a, S, 10 * S, &name));
	CHECK(!limits_lease(l, &a, S, 10 * S, &name));
	CHECK(strcmp(name, "c") == 0);
	CHECK(limits_lease(l, &b, S, 10 * S, &name));
	limits_unlease(l, &a, 2 * S);
	CHECK(limits_lease(l, &a, 2 * S, 10 * S, &name));
	CHECK(!limits_lease(l, &a, 2 * S, 10 * S, &name));
	/* a holder that never gave its lease back: it expires */
	CHECK(limits_lease(l, &a, 11 * S + 1, 10 * S, &name));
	limits_unlease(l, &a, 12 * S);
	limits_unlease(l, &a, 12 * S);
	limits_unlease(l, &b, 12 * S);
	limits_unlease(l, &b, 12 * S); /* more than held: nothing */
	limits_store_stats(st, &ss);
	CHECK(ss.keys == 2);
	limits_free(l);
	config_unref(c);
	limits_store_free(st);
}

static const struct harness_case cases[] = {
    {"leases", test_leases},
    {"gcra_burst_then_rate", test_gcra_burst_then_rate},
    {"gcra_default_burst", test_gcra_default_burst},
    {"gcra_long_run", test_gcra_long_run},
    {"gcra_oversize", test_gcra_oversize},
    {"store_keys_apart", test_store_keys_apart},
    {"store_sweep", test_store_sweep},
    {"store_threads", test_store_threads},
    {"config_limits", test_config_limits},
    {"config_limit_errors", test_config_limit_errors},
    {"limits_keys", test_limits_keys},
};
HARNESS_MAIN(cases)
