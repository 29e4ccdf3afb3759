/* SPDX-License-Identifier: ISC */
/*
 * auth_test.c - users file parsing, crypt verification of hashes made by
 * other tools (`openssl passwd -6`, `mkpasswd -m yescrypt`, generated at
 * test time), and the worker pool answering through chans.
 */
#include "auth/auth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "../harness.h"

static char dir[64];
static char hash6[AUTH_HASH_MAX], hashy[AUTH_HASH_MAX];

/* First line of a command's output. */
static bool
run(const char *cmd, char *out, size_t len)
{
	FILE *fp = popen(cmd, "r");
	bool ok;

	if (fp == NULL)
		return false;
	ok = fgets(out, (int)len, fp) != NULL;
	if (pclose(fp) != 0)
		ok = false;
	out[strcspn(out, "\n")] = '\0';
	return ok && out[0] == '$';
}

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
	if (!run("openssl passwd -6 'sha-secret'", hash6, sizeof(hash6)) ||
	    !run("echo 'yes secret' | mkpasswd -m yescrypt --stdin", hashy,
	        sizeof(hashy))) {
		fprintf(stderr, "cannot make test hashes\n");
		return false;
	}
	state = 1;
	return true;
}

/* Write text to DIR/name; returns the path (static buffer per call
 * site is enough for these tests). */
static const char *
put(const char *name, const char *text, char *path, size_t len)
{
	FILE *fp;

	str_fmt(path, len, "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL)
		return NULL;
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* A users file with both hashes, comments, blank lines and odd spacing. */
static struct auth_users *
load_good(void)
{
	char text[2048], path[256], err[256];
	struct auth_users *u;

	str_fmt(text, sizeof(text),
	    "# submission users\n"
	    "\n"
	    "alice:%s\n"
	    "   # indented comment\n"
	    "  bob:%s  \r\n"
	    "carol:!%s\n"
	    "\t\n"
	    "dave:%s", /* no final newline */
	    hash6, hashy, hash6, hashy);
	if (put("users", text, path, sizeof(path)) == NULL)
		return NULL;
	if (auth_users_load(path, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "load: %s\n", err);
		return NULL;
	}
	return u;
}

static void
test_parse_good(void)
{
	struct auth_users *u;
	bool ok = true;

	CHECK(fixture());
	CHECK((u = load_good()) != NULL);
	STEP(ok, auth_users_count(u) == 4);
	STEP(ok, strcmp(auth_users_lookup(u, "alice"), hash6) == 0);
	STEP(ok, strcmp(auth_users_lookup(u, "bob"), hashy) == 0);
	STEP(ok, auth_users_lookup(u, "carol")[0] == '!');
	STEP(ok, strcmp(auth_users_lookup(u, "dave"), hashy) == 0);
	STEP(ok, auth_users_lookup(u, "eve") == NULL);
	STEP(ok, auth_users_lookup(u, "Alice") == NULL);
	auth_users_unref(u);
}

static void
test_parse_empty(void)
{
	char path[256], err[256];
	struct auth_users *u;
	bool ok = true;

	CHECK(fixture());
	CHECK(put("empty", "# nobody yet\n", path, sizeof(path)) != NULL);
	CHECK(auth_users_load(path, &u, err, sizeof(err)) == 0);
	STEP(ok, auth_users_count(u) == 0);
	STEP(ok, !auth_verify(u, "x", "y"));
	auth_users_unref(u);
}

static void
test_parse_bad(void)
{
	static const struct {
		const char *text;
		const char *why; /* expected after "PATH:" */
	} rows[] = {
	    {"alice:H\nnocolon\n", "2: expected NAME:HASH"},
	    {"# c\n:H\n", "2: bad user name"},
	    {"bad name:H\n", "1: bad user name"},
	    {"alice:\n", "1: bad password hash (expected NAME:HASH)"},
	    {"alice:H:extra\n", "1: bad password hash (expected NAME:HASH)"},
	    {"\n\nalice:notahash\n",
	        "3: malformed or unsupported password hash"},
	    {"alice:$zz$abc\n", "1: malformed or unsupported password hash"},
	    {"alice:H\nbob:H\nalice:H\n", "3: duplicate user alice"},
	};
	char text[1024], path[256], err[256], want[512], *t, *longline;
	struct auth_users *u;
	const char *lp;

	CHECK(fixture());
	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++) {
		/* H stands for a real hash. */
		text[0] = '\0';
		for (const char *s = rows[i].text; *s; s++) {
			t = text + strlen(text);
			if (*s == 'H')
				str_copy(t, sizeof(text) - (size_t)(t - text),
				    hash6);
			else
				str_ncopy(
				    t, sizeof(text) - (size_t)(t - text), s, 1);
		}
		CHECK(put("bad", text, path, sizeof(path)) != NULL);
		u = NULL;
		if (auth_users_load(path, &u, err, sizeof(err)) != -EINVAL) {
			fprintf(stderr, "row %zu: loaded\n", i);
			auth_users_unref(u);
			CHECK(0);
		}
		CHECK(u == NULL);
		str_fmt(want, sizeof(want), "%s:%s", path, rows[i].why);
		if (strcmp(err, want) != 0)
			fprintf(stderr, "row %zu: got \"%s\"\n", i, err);
		CHECK(strcmp(err, want) == 0);
	}
	str_fmt(path, sizeof(path), "%s/missing", dir);
	CHECK(auth_users_load(path, &u, err, sizeof(err)) == -ENOENT);
	str_fmt(want, sizeof(want), "%s: No such file or directory", path);
	CHECK(strcmp(err, want) == 0);
	/* Over-long line. */
	longline = xmalloc(AUTH_LINE_MAX + 16);
	memset(longline, 'a', AUTH_LINE_MAX + 10);
	longline[AUTH_LINE_MAX + 10] = '\0';
	lp = put("long", longline, path, sizeof(path));
	free(longline);
	CHECK(lp != NULL);
	CHECK(auth_users_load(path, &u, err, sizeof(err)) == -EINVAL);
	str_fmt(want, sizeof(want), "%s:1: line too long", path);
	CHECK(strcmp(err, want) == 0);
}

static void
test_verify(void)
{
	struct auth_users *u;
	bool r[9];

	CHECK(fixture());
	CHECK((u = load_good()) != NULL);
	r[0] = auth_verify(u, "alice", "sha-secret"); /* $6$ from openssl */
	r[1] = auth_verify(u, "bob", "yes secret");   /* $y$ from mkpasswd */
	r[2] = auth_verify(u, "dave", "yes secret");
	r[3] = auth_verify(u, "alice", "sha-secreT");
	r[4] = auth_verify(u, "alice", "");
	r[5] = auth_verify(u, "bob", "yes secret ");
	r[6] = auth_verify(u, "eve", "yes secret");   /* unknown */
	r[7] = auth_verify(u, "carol", "sha-secret"); /* locked */
	r[8] = auth_verify(u, "", "sha-secret");
	auth_users_unref(u);
	CHECK(r[0] && r[1] && r[2]);
	CHECK(!r[3] && !r[4] && !r[5]);
	CHECK(!r[6] && !r[7] && !r[8]);
}

static void
test_hash_new(void)
{
	char h[AUTH_HASH_MAX], h2[AUTH_HASH_MAX], text[1024], path[256],
	    err[256];
	struct auth_users *u;
	bool ok = true;

	CHECK(fixture());
	CHECK(auth_hash_new("fresh pw", h, sizeof(h)) == 0);
	CHECK(strncmp(h, "$y$", 3) == 0);
	CHECK(auth_hash_new("fresh pw", h2, sizeof(h2)) == 0);
	CHECK(strcmp(h, h2) != 0); /* fresh salt each time */
	CHECK(auth_hash_new("x", h2, 10) == -ENAMETOOLONG);
	str_fmt(text, sizeof(text), "frank:%s\n", h);
	CHECK(put("fresh", text, path, sizeof(path)) != NULL);
	CHECK(auth_users_load(path, &u, err, sizeof(err)) == 0);
	STEP(ok, auth_verify(u, "frank", "fresh pw"));
	STEP(ok, !auth_verify(u, "frank", "fresh pW"));
	auth_users_unref(u);
	if (!ok)
		return;
	CHECK(auth_name_valid("a"));
	CHECK(auth_name_valid("user@example.org"));
	CHECK(!auth_name_valid(""));
	CHECK(!auth_name_valid("a:b"));
	CHECK(!auth_name_valid("a b"));
	CHECK(!auth_name_valid("a\tb"));
	CHECK(!auth_name_valid("a\nb"));
}

static struct auth_req *
req_new(struct chan *reply, uint64_t id, const char *user, const char *pass)
{
	struct auth_req *r = xcalloc(1, sizeof(*r));

	r->reply = reply;
	r->msg.reqid = id;
	str_copy(r->user, sizeof(r->user), user);
	str_copy(r->pass, sizeof(r->pass), pass);
	r->ok = !r->ok; /* garbage the worker must overwrite */
	return r;
}

/* Collect n answers from reply into got[reqid] (1 ok, 0 not); false on
 * a timeout, a bad type or a password left in memory. */
static bool
collect(struct chan *reply, size_t n, int *got, size_t ngot)
{
	static const char zero[AUTH_PASS_MAX];
	struct chan_msg *m, *next;
	uint64_t deadline = clock_mono_ms() + 30000;
	size_t seen = 0;
	bool ok = true;

	while (seen < n) {
		/* NULL may also be a spurious wakeup: go by the clock. */
		if ((m = chan_wait(reply, 1000)) == NULL) {
			if (clock_mono_ms() > deadline)
				return false;
			continue;
		}
		for (; m != NULL; m = next) {
			struct auth_req *r = (struct auth_req *)m;

			next = m->next;
			if (m->type != AUTH_DONE_CHECK || m->reqid >= ngot ||
			    memcmp(r->pass, zero, sizeof(zero)) != 0)
				ok = false;
			else
				got[m->reqid] = r->ok;
			auth_req_free(r);
			seen++;
		}
	}
	return ok;
}

static void
test_pool(void)
{
	static const struct {
		const char *user, *pass;
		int want;
	} rows[] = {
	    {"alice", "sha-secret", 1},
	    {"bob", "yes secret", 1},
	    {"alice", "wrong", 0},
	    {"eve", "yes secret", 0},
	    {"dave", "yes secret", 1},
	    {"carol", "sha-secret", 0},
	    {"bob", "", 0},
	    {"alice", "sha-secret", 1},
	};
	char text[1024], path[256], err[256];
	int got[MTA_ARRAY_LEN(rows) + 1];
	struct auth_users *u, *u2;
	struct auth_pool *pool;
	struct chan *reply;
	bool ok = true;

	CHECK(fixture());
	CHECK((u = load_good()) != NULL);
	pool = auth_pool_new(u, 3);
	reply = chan_new();
	memset(got, 0xff, sizeof(got));
	for (size_t i = 0; i < MTA_ARRAY_LEN(rows); i++)
		auth_pool_submit(
		    pool, req_new(reply, i, rows[i].user, rows[i].pass));
	STEP(ok, collect(reply, MTA_ARRAY_LEN(rows), got, MTA_ARRAY_LEN(got)));
	for (size_t i = 0; ok && i < MTA_ARRAY_LEN(rows); i++) {
		if (got[i] != rows[i].want)
			fprintf(stderr, "row %zu: got %d\n", i, got[i]);
		STEP(ok, got[i] == rows[i].want);
	}

	/* Reload: alice now has only the yescrypt password. */
	str_fmt(text, sizeof(text), "alice:%s\n", hashy);
	STEP(ok, put("reload", text, path, sizeof(path)) != NULL);
	STEP(ok, auth_users_load(path, &u2, err, sizeof(err)) == 0);
	if (ok) {
		auth_pool_users_swap(pool, u2);
		memset(got, 0xff, sizeof(got));
		auth_pool_submit(
		    pool, req_new(reply, 0, "alice", "yes secret"));
		auth_pool_submit(
		    pool, req_new(reply, 1, "alice", "sha-secret"));
		auth_pool_submit(pool, req_new(reply, 2, "bob", "yes secret"));
		STEP(ok, collect(reply, 3, got, MTA_ARRAY_LEN(got)));
		STEP(ok, got[0] == 1);
		STEP(ok, got[1] == 0);
		STEP(ok, got[2] == 0);
	}

	/* Freeing answers what was already submitted. */
	auth_pool_submit(pool, req_new(reply, 0, "alice", "yes secret"));
	auth_pool_free(pool);
	memset(got, 0xff, sizeof(got));
	STEP(ok, collect(reply, 1, got, MTA_ARRAY_LEN(got)));
	STEP(ok, got[0] == 1);
	chan_free(reply);
}

static const struct harness_case cases[] = {
    {"parse_good", test_parse_good},
    {"parse_empty", test_parse_empty},
    {"parse_bad", test_parse_bad},
    {"verify", test_verify},
    {"hash_new", test_hash_new},
    {"pool", test_pool},
};

HARNESS_MAIN(cases)
