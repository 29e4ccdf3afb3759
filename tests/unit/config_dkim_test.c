/* SPDX-License-Identifier: ISC */
/*
 * config_dkim_test.c - [dkim DOMAIN] sections: parsing (several per
 * domain, [dkim *], headers on continuation lines, defaults), every
 * error with its FILE:LINE, the dump round trip, and the signing table
 * built from them (keys loaded; a missing or bad key refused with
 * FILE:LINE and its path).
 */
#include "config/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/str.h"
#include "dkim/dkim.h"
#include "dkim/dkim_int.h"
#include "../harness.h"

static char dir[64];

static bool
fixture(void)
{
	static int state;

	if (state)
		return state > 0;
	state = -1;
	if (harness_tmpdir() == NULL)
		return false;
	str_copy(dir, sizeof(dir), harness_tmpdir());
	state = 1;
	return true;
}

/* Write text to DIR/name and load it. */
static int
load(const char *name, const char *text, struct config **c, char *err,
    size_t errlen, char *path)
{
	FILE *fp;

	snprintf(path, 128, "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL)
		return -2;
	fputs(text, fp);
	fclose(fp);
	return config_load(path, c, err, errlen);
}

static const char good[] = "[dkim Example.COM.]\n"
                           "selector = rsa1\n"
                           "key = k1.pem\n"
                           "headers = from to subject\n"
                           "  date message-id\n"
                           "[dkim example.com]\n"
                           "selector = ed1\n"
                           "key = k2.pem\n"
                           "canonicalization = simple/relaxed\n"
                           "expire = 7d\n"
                           "subdomains = yes\n"
                           "[dkim *]\n"
                           "selector = any\n"
                           "key = k3.pem\n";

static void
test_parse(void)
{
	struct config *c;
	char err[512], path[128];
	const struct config_dkim *d;

	CHECK(fixture());
	CHECK(load("good.conf", good, &c, err, sizeof(err), path) == 0);
	CHECK(c->ndkims == 3);
	d = &c->dkims[0];
	CHECK(strcmp(d->domain, "example.com") == 0);
	CHECK(
	    strcmp(d->selector, "rsa1") == 0 && strcmp(d->key, "k1.pem") == 0);
	CHECK(strcmp(d->headers, "from to subject date message-id") == 0);
	CHECK(d->canon == CONFIG_DKIM_RELAXED_RELAXED && d->expire == 0);
	CHECK(!d->subdomains && d->line == 1 && d->key_line == 3);
	d = &c->dkims[1];
	CHECK(d->canon == CONFIG_DKIM_SIMPLE_RELAXED);
	CHECK(d->expire == 7ull * 86400 * 1000 && d->subdomains);
	CHECK(d->headers[0] == '\0' && d->line == 6);
	CHECK(strcmp(c->dkims[2].domain, "*") == 0);
	config_unref(c);
}

static void
test_round_trip(void)
{
	struct config *c, *c2;
	char err[512], path[128], *a = NULL, *b = NULL;
	size_t alen, blen;
	FILE *fp;

	CHECK(fixture());
	CHECK(load("rt.conf", good, &c, err, sizeof(err), path) == 0);
	fp = open_memstream(&a, &alen);
	config_dump(c, fp);
	fclose(fp);
	CHECK(strstr(a, "[dkim example.com]\nselector = rsa1\n") != NULL);
	CHECK(load("rt2.conf", a, &c2, err, sizeof(err), path) == 0);
	fp = open_memstream(&b, &blen);
	config_dump(c2, fp);
	fclose(fp);
	/* the first line names the file */
	CHECK(strcmp(strchr(a, '\n'), strchr(b, '\n')) == 0);
	free(a);
	free(b);
	config_unref(c);
	config_unref(c2);
}

static void
test_errors(void)
{
	static const struct {
		const char *conf, *want;
	} bad[] = {
	    {"[dkim example.com]\nkey = k.pem\n",
	        ":1: selector: missing in [dkim example.com]"},
	    {"[dkim example.com]\nselector = s\n",
	        ":1: key: missing in [dkim example.com]"},
	    {"[dkim a.example]\nselector = s\nkey = k\n"
	     "[dkim a.example]\nselector = s\nkey = k2\n",
	        ":4: selector: duplicate [dkim a.example] selector s "
	        "(first on line 1)"},
	    {"[dkim a.example]\nselector = s\nkey = k\nhost = x\n",
	        ":4: host: unknown key in [dkim a.example]"},
	    {"[dkim]\n", ":1: [dkim]: missing domain ([dkim DOMAIN] or "
	                 "[dkim *])"},
	    {"[dkim bad_domain!]\n", ":1: [dkim bad_domain!]: invalid domain"},
	    {"[dkim a.example]\nselector = s\nkey = k\n"
	     "canonicalization = loose\n",
	        ":4: canonicalization: "},
	    {"[dkim a.example]\nselector = s/x\nkey = k\n",
	        ":1: selector: invalid selector \"s/x\""},
	};
	struct config *c;
	char err[512], path[128];

	CHECK(fixture());
	for (size_t i = 0; i < MTA_ARRAY_LEN(bad); i++) {
		int rc =
		    load("bad.conf", bad[i].conf, &c, err, sizeof(err), path);

		if (rc == 0 || strstr(err, bad[i].want) == NULL)
			fprintf(stderr, "case %zu: rc %d: %s\n", i, rc, err);
		CHECK(rc < 0 && strstr(err, bad[i].want) != NULL);
	}
}

static void
test_table_keys(void)
{
	struct config *c;
	struct dkim_table *t;
	char err[512], path[128], conf[512], key[160], want[300];

	CHECK(fixture());
	snprintf(key, sizeof(key), "%s/ed.pem", dir);
	CHECK(dkim_key_generate(
	          DKIM_ED25519_SHA256, 0, key, err, sizeof(err)) == 0);
	snprintf(conf, sizeof(conf),
	    "[dkim a.example]\nselector = s\nkey = %s\n", key);
	CHECK(load("t1.conf", conf, &c, err, sizeof(err), path) == 0);
	CHECK(dkim_table_new(c, &t, err, sizeof(err)) == 0 && t != NULL);
	/* the default list, From first */
	CHECK(t->n == 1 && t->s[0].nnames == 13);
	CHECK(strcmp(t->s[0].names[0], "from") == 0);
	CHECK(strcmp(t->s[0].names[12], "list-*") == 0);
	dkim_table_free(t);
	config_unref(c);
	/* a list without From still signs it, first and once */
	snprintf(conf, sizeof(conf),
	    "[dkim a.example]\nselector = s\nkey = %s\n"
	    "headers = Subject, TO:date\n  FROM x-y\n",
	    key);
	CHECK(load("t3.conf", conf, &c, err, sizeof(err), path) == 0);
	CHECK(dkim_table_new(c, &t, err, sizeof(err)) == 0 && t != NULL);
	CHECK(t->s[0].nnames == 5);
	CHECK(strcmp(t->s[0].names[0], "from") == 0);
	CHECK(strcmp(t->s[0].names[1], "subject") == 0);
	CHECK(strcmp(t->s[0].names[2], "to") == 0);
	CHECK(strcmp(t->s[0].names[3], "date") == 0);
	CHECK(strcmp(t->s[0].names[4], "x-y") == 0);
	dkim_table_free(t);
	config_unref(c);
	/* no [dkim]: no table */
	CHECK(load("t0.conf", "", &c, err, sizeof(err), path) == 0);
	CHECK(dkim_table_new(c, &t, err, sizeof(err)) == 0 && t == NULL);
	config_unref(c);
	/* a missing key: FILE:LINE and the path */
	snprintf(conf, sizeof(conf),
	    "[dkim a.example]\nselector = s\nkey = %s\n"
	    "[dkim b.example]\nselector = s\n\nkey = %s/none.pem\n",
	    key, dir);
	CHECK(load("t2.conf", conf, &c, err, sizeof(err), path) == 0);
	CHECK(dkim_table_new(c, &t, err, sizeof(err)) == -ENOENT);
	snprintf(want, sizeof(want),
	    "%s:7: key: cannot load %s/none.pem: ", path, dir);
	if (strncmp(err, want, strlen(want)) != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	config_unref(c);
}

static void
test_cleanup(void)
{
	char cmd[128];

	if (dir[0] && str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", dir))
		CHECK(system(cmd) == 0);
}

static const struct harness_case cases[] = {
    {"parse", test_parse},
    {"round_trip", test_round_trip},
    {"errors", test_errors},
    {"table_keys", test_table_keys},
    {"cleanup", test_cleanup},
};

HARNESS_MAIN(cases)
