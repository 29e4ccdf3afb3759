/* SPDX-License-Identifier: ISC */
/*
 * limits_redis_test.c - the pure parts of shared limits: the fallback
 * share (gcra_share, limits_take_share), the steps a check sends
 * (limits_steps), the Redis keys and the reading of a check's reply, and
 * the [limits] redis address (no host names).
 */
#include "limits/gcra.h"
#include "limits/limits.h"
#include "limits/limits_redis.h"

#include <hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "../harness.h"

#define S 1000000ULL /* us */

static struct config *
load(const char *text)
{
	static unsigned n;
	const char *d = harness_tmpdir();
	char path[256], err[512];
	struct config *c = NULL;
	FILE *fp;

	if (d == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/r%u.conf", d, n++);
	if ((fp = fopen(path, "w")) == NULL)
		return NULL;
	fputs(text, fp);
	fclose(fp);
	if (config_load(path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	return c;
}

static void
test_share_arithmetic(void)
{
	struct gcra g, h;

	CHECK(gcra_init(&g, 10, 60 * S, 0)); /* 10/m: 6 s apart, burst 10 */
	gcra_share(&g, 2, &h);
	CHECK(h.interval == 12 * S && h.burst == 5);
	gcra_share(&g, 1, &h);
	CHECK(h.interval == g.interval && h.burst == 10);
	gcra_share(&g, 0, &h); /* never divides by zero */
	CHECK(h.interval == g.interval && h.burst == 10);
	gcra_share(&g, 30, &h); /* burst at least one */
	CHECK(h.interval == 180 * S && h.burst == 1);
	/* the nodes together admit about the shared limit over time */
	CHECK(gcra_init(&g, 60, 60 * S, 6));
	gcra_share(&g, 3, &h);
	CHECK(h.interval == 3 * S && h.burst == 2);
}

static void
test_take_share(void)
{
	struct config *c = load("[server]\nlisten = 127.0.0.1:2525\n"
	                        "[limit u]\nkey = user\nrate = 4/m\n");
	struct limits_store *st = limits_store_new();
	struct limits_subject a = {"alice", "192.0.2.1", "a.example"};
	const char *name = NULL;
	struct limits *l;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	l = limits_new(c, st);
	CHECK(limits_take_share(l, CONFIG_LIMIT_MESSAGES, &a, 1, S, 2, &name));
	CHECK(limits_take_share(l, CONFIG_LIMIT_MESSAGES, &a, 1, S, 2, &name));
	CHECK(!limits_take_share(l, CONFIG_LIMIT_MESSAGES, &a, 1, S, 2, &name));
	CHECK(name != NULL && strcmp(name, "u") == 0);
	/* one unit every 30 s (15 s each for the whole limit, times 2) */
	CHECK(!limits_take_share(
	    l, CONFIG_LIMIT_MESSAGES, &a, 1, 20 * S, 2, &name));
	CHECK(limits_take_share(
	    l, CONFIG_LIMIT_MESSAGES, &a, 1, 31 * S, 2, &name));
	limits_free(l);
	config_unref(c);
	limits_store_free(st);
}

static void
test_steps_and_keys(void)
{
	struct config *c = load("[server]\nlisten = 127.0.0.1:2525\n"
	                        "[limit u]\nkey = user\nrate = 4/m\n"
	                        "[limit r]\ncount = recipients\nkey = user\n"
	                        "rate = 9/m\n"
	                        "[limit d]\nkey = sender_domain\n"
	                        "rate = 2/s\nburst = 7\n");
	struct limits_store *st = limits_store_new();
	struct limits_subject a = {"alice", "192.0.2.1", "a.example"};
	struct limits_subject anon = {NULL, "192.0.2.1", NULL};
	struct limits_step steps[LIMITS_STEPS_MAX];
	char key[LIMITS_KEY_MAX + 16];
	struct limits *l;
	size_t n;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	l = limits_new(c, st);
	n = limits_steps(l, CONFIG_LIMIT_MESSAGES, &a, steps, LIMITS_STEPS_MAX);
	CHECK(n == 2);
	CHECK(strcmp(steps[0].name, "u") == 0);
	CHECK(steps[0].g.interval == 15 * S && steps[0].g.burst == 4);
	CHECK(strcmp(steps[1].name, "d") == 0);
	CHECK(steps[1].g.interval == S / 2 && steps[1].g.burst == 7);
	CHECK(limits_redis_key(&steps[0], key, sizeof(key)) ==
	      strlen("mta:limit:u:alice"));
	CHECK(strcmp(key, "mta:limit:u:alice") == 0);
	CHECK(limits_redis_key(&steps[1], key, sizeof(key)) > 0);
	CHECK(strcmp(key, "mta:limit:d:a.example") == 0);
	CHECK(limits_redis_key(&steps[1], key, 10) == 0); /* does not fit */
	/* no AUTH, no sender domain: nothing to ask */
	CHECK(limits_steps(l, CONFIG_LIMIT_MESSAGES, &anon, steps,
	          LIMITS_STEPS_MAX) == 0);
	CHECK(limits_steps(l, CONFIG_LIMIT_MESSAGES, &a, steps, 1) == 1);
	limits_free(l);
	config_unref(c);
	limits_store_free(st);
}

static void
test_reply(void)
{
	bool ns;

	CHECK(limits_redis_result(REDIS_REPLY_INTEGER, 0, NULL, 2, &ns) == 0);
	CHECK(!ns);
	CHECK(limits_redis_result(REDIS_REPLY_INTEGER, 2, NULL, 2, &ns) == 2);
	CHECK(limits_redis_result(REDIS_REPLY_INTEGER, 3, NULL, 2, &ns) ==
	      LIMITS_REDIS_FALLBACK);
	CHECK(limits_redis_result(REDIS_REPLY_INTEGER, -1, NULL, 2, &ns) ==
	      LIMITS_REDIS_FALLBACK);
	CHECK(limits_redis_result(REDIS_REPLY_ERROR, 0,
	          "NOSCRIPT No matching script.", 2,
	          &ns) == LIMITS_REDIS_FALLBACK);
	CHECK(ns);
	CHECK(limits_redis_result(REDIS_REPLY_ERROR, 0, "ERR busy", 2, &ns) ==
	      LIMITS_REDIS_FALLBACK);
	CHECK(!ns);
	CHECK(limits_redis_result(REDIS_REPLY_NIL, 0, NULL, 2, &ns) ==
	      LIMITS_REDIS_FALLBACK);
}

static void
test_address(void)
{
	struct config_shared sh = {0};
	char why[200];

	snprintf(sh.redis, sizeof(sh.redis), "127.0.0.1:6379");
	CHECK(config_shared_parse_redis(&sh, why, sizeof(why)) == 0);
	CHECK(sh.ss.ss_family == AF_INET);
	snprintf(sh.redis, sizeof(sh.redis), "[::1]:6380");
	CHECK(config_shared_parse_redis(&sh, why, sizeof(why)) == 0);
	CHECK(sh.ss.ss_family == AF_INET6);
	snprintf(sh.redis, sizeof(sh.redis), "/run/redis/redis.sock");
	CHECK(config_shared_parse_redis(&sh, why, sizeof(why)) == 0);
	CHECK(sh.ss.ss_family == AF_UNIX);
	CHECK(strcmp(((struct sockaddr_un *)&sh.ss)->sun_path,
	          "/run/redis/redis.sock") == 0);
	snprintf(sh.redis, sizeof(sh.redis), "redis.example:6379");
	CHECK(config_shared_parse_redis(&sh, why, sizeof(why)) < 0);
	CHECK(strstr(why, "no host names") != NULL);
	snprintf(sh.redis, sizeof(sh.redis), "127.0.0.1");
	CHECK(config_shared_parse_redis(&sh, why, sizeof(why)) < 0);
}

static const struct harness_case cases[] = {
    {"share_arithmetic", test_share_arithmetic},
    {"take_share", test_take_share},
    {"steps_and_keys", test_steps_and_keys},
    {"reply", test_reply},
    {"address", test_address},
};
HARNESS_MAIN(cases)
