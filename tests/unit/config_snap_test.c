/* SPDX-License-Identifier: ISC */
/*
 * config_snap_test.c - config/config_snap.c: a snapshot's references
 * (the last unref, on any thread, frees it and what is attached, exactly
 * once) and the restart column (a changed restart key is reported with
 * its reason, a changed reloadable key never is).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "tests/harness.h"

static atomic_int freed;

static void
count_free(void *p)
{
	(void)p;
	atomic_fetch_add(&freed, 1);
}

static int
set(struct config *c, enum config_section s, const char *name,
    const char *value)
{
	const struct config_key *k = config_key_find(s, name);
	char why[256];

	if (k == NULL)
		return -1;
	return config_key_set(k, c, value, false, why, sizeof(why));
}

static void
test_ref_unref(void)
{
	struct config *c = config_defaults();
	int tag;

	atomic_store(&freed, 0);
	config_attach(c, &tag, count_free);
	CHECK(config_attached(c, count_free) == &tag);
	CHECK(config_attached(c, (void (*)(void *))free) == NULL);
	CHECK(config_ref(c) == c);
	CHECK(config_ref(c) == c);
	config_unref(c);
	config_unref(c);
	CHECK(atomic_load(&freed) == 0); /* one reference left */
	config_unref(c);
	CHECK(atomic_load(&freed) == 1);
	/* NULL is no snapshot */
	CHECK(config_ref(NULL) == NULL);
	config_unref(NULL);
}

#define NTHREADS 8
#define NROUNDS  2000

static void *
hold_and_drop(void *arg)
{
	struct config *c = arg; /* one reference, this thread's */

	for (int i = 0; i < NROUNDS; i++)
		config_unref(config_ref(c));
	config_unref(c);
	return NULL;
}

/* References taken and dropped on many threads at once: the snapshot is
 * freed once, after the last, whoever drops it (ASan would catch a use
 * after free, and an early free shows as freed != 0 below). */
static void
test_threads(void)
{
	struct config *c = config_defaults();
	pthread_t th[NTHREADS];
	int tag;

	atomic_store(&freed, 0);
	config_attach(c, &tag, count_free);
	for (int i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(
		          &th[i], NULL, hold_and_drop, config_ref(c)) == 0);
	for (int i = 0; i < NROUNDS; i++)
		config_unref(config_ref(c));
	CHECK(atomic_load(&freed) == 0); /* ours is still held */
	config_unref(c);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	CHECK(atomic_load(&freed) == 1);
}

static void
test_restart_changed(void)
{
	struct config *a = config_defaults(), *b = config_defaults();
	struct config_restart_key k[8];

	CHECK(config_restart_keys(a, b, k, 8) == 0);
	CHECK(set(b, CONFIG_SECT_SERVER, "threads", "3") == 0);
	CHECK(set(b, CONFIG_SECT_DNS, "timeout", "2s") == 0);
	CHECK(set(b, CONFIG_SECT_QUEUE, "retry", "1m, 2m") == 0);
	CHECK(config_restart_keys(a, b, k, 8) == 3);
	/* table order */
	CHECK(strcmp(k[0].key, "server.threads") == 0);
	CHECK(strcmp(k[0].reason, "needs a restart") == 0);
	CHECK(strcmp(k[1].key, "queue.retry") == 0);
	CHECK(strstr(k[1].reason, "scheduler keeps its start value") != NULL);
	CHECK(strcmp(k[2].key, "dns.timeout") == 0);
	/* more than fit: counted, not stored */
	CHECK(config_restart_keys(a, b, k, 1) == 3);
	CHECK(strcmp(k[0].key, "server.threads") == 0);
	config_unref(a);
	config_unref(b);
}

static void
test_restart_lists(void)
{
	struct config *a = config_defaults(), *b = config_defaults();
	struct config_restart_key k[4];

	CHECK(set(b, CONFIG_SECT_SERVER, "listen", "127.0.0.1:2525") == 0);
	CHECK(config_restart_keys(a, b, k, 4) == 1);
	CHECK(strcmp(k[0].key, "server.listen") == 0);
	/* the same list again is no change */
	CHECK(set(a, CONFIG_SECT_SERVER, "listen", "127.0.0.1:2525") == 0);
	CHECK(config_restart_keys(a, b, k, 4) == 0);
	config_unref(a);
	config_unref(b);
}

static void
test_reloadable_not_reported(void)
{
	struct config *a = config_defaults(), *b = config_defaults();
	struct config_restart_key k[4];

	CHECK(set(b, CONFIG_SECT_SERVER, "max_message_size", "1M") == 0);
	CHECK(set(b, CONFIG_SECT_SERVER, "hostname", "mx.example") == 0);
	CHECK(set(b, CONFIG_SECT_SERVER, "relay_networks", "10.0.0.0/8") == 0);
	CHECK(set(b, CONFIG_SECT_TLS, "certificate", "/etc/x.pem") == 0);
	CHECK(set(b, CONFIG_SECT_AUTH, "users", "/etc/users") == 0);
	CHECK(set(b, CONFIG_SECT_DELIVERY, "connect_timeout", "5s") == 0);
	CHECK(set(b, CONFIG_SECT_QUEUE, "delay_warning", "4h") == 0);
	CHECK(config_restart_keys(a, b, k, 4) == 0);
	config_unref(a);
	config_unref(b);
}

/* Every row of the column is compared: change each restart key in turn
 * to another valid value and it alone is reported. */
static void
test_every_restart_key(void)
{
	size_t nrestart = 0;

	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		struct config *a, *b;
		struct config_restart_key out[2];
		char want[80], why[256];
		const char *v;

		if (k->restart == NULL)
			continue;
		CHECK(k->section != CONFIG_SECT_ROUTE);
		nrestart++;
		switch (k->type) {
		case CONFIG_T_ADDRS:
			v = "127.0.0.9:99";
			break;
		case CONFIG_T_PATH:
			v = "/nonexistent/elsewhere";
			break;
		case CONFIG_T_DURATIONS:
			v = "7m";
			break;
		case CONFIG_T_SIZE:
			v = "2G";
			break;
		case CONFIG_T_DURATION:
			v = "2s";
			break;
		case CONFIG_T_BOOL:
			v = "yes"; /* dnssec, syslog, run_as_root, tlsrpt: no */
			break;
		case CONFIG_T_ENUM:
			continue; /* queue.sync has one value only */
		default:
			v = "7"; /* threads, workers: not this host's CPUs */
			break;
		}
		snprintf(want, sizeof(want), "%s.%s",
		    config_section_name(k->section), k->name);
		a = config_defaults();
		b = config_defaults();
		if (config_key_set(k, b, v, false, why, sizeof(why)) != 0)
			fprintf(stderr, "%s = %s: %s\n", want, v, why);
		CHECK(config_key_set(k, b, v, false, why, sizeof(why)) == 0);
		if (config_restart_keys(a, b, out, 2) != 1)
			fprintf(stderr, "%s = %s: not reported\n", want, v);
		CHECK(config_restart_keys(a, b, out, 2) == 1);
		CHECK(strcmp(out[0].key, want) == 0);
		CHECK(out[0].reason == k->restart);
		config_unref(a);
		config_unref(b);
	}
	CHECK(nrestart >= 10);
}

static const struct harness_case cases[] = {
    {"ref_unref", test_ref_unref},
    {"threads", test_threads},
    {"restart_changed", test_restart_changed},
    {"restart_lists", test_restart_lists},
    {"reloadable_not_reported", test_reloadable_not_reported},
    {"every_restart_key", test_every_restart_key},
};

HARNESS_MAIN(cases)
