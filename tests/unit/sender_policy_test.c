/* SPDX-License-Identifier: ISC */
/*
 * sender_policy_test.c - the senders file syntax and every verdict of the
 * sender identity policy: owned address, wildcard domain, `*`, not owned,
 * user without a line, relay domains, the null sender for users and relay
 * clients, and unchecked clients.
 */
#include "smtp/sender_policy.h"

#include <stdbool.h>
#include <string.h>

#include "../harness.h"

static const char senders[] = "# who may send as whom\n"
                              "alice: alice@example.org, *@alice.example\n"
                              "bob:Bob@Example.ORG\n"
                              "\n"
                              "gw: *\n"
                              "alice: @second.example\n";

static struct sender_policy *
make(const char *text, const char *domains, bool anull, bool rnull)
{
	struct sender_policy_cfg c = {
	    .senders_text = text,
	    .senders_len = text ? strlen(text) : 0,
	    .senders_name = "senders",
	    .relay_domains = domains,
	    .auth_null = anull,
	    .relay_null = rnull,
	};
	struct sender_policy *p = NULL;
	char err[256];

	if (sender_policy_new(&c, &p, err, sizeof(err)) < 0)
		return NULL;
	return p;
}

static enum sender_verdict
chk(const struct sender_policy *p, const char *user, bool relay, const char *a)
{
	return sender_policy_check(p, user, relay, a, strlen(a));
}

static void
test_owned(void)
{
	struct sender_policy *p = make(senders, NULL, true, true);

	CHECK(p != NULL);
	CHECK(chk(p, "alice", false, "alice@example.org") == SENDER_OK);
	CHECK(chk(p, "alice", false, "ALICE@example.ORG") == SENDER_OK);
	CHECK(chk(p, "alice", false, "anyone@alice.example") == SENDER_OK);
	CHECK(chk(p, "alice", false, "x@second.example") == SENDER_OK);
	CHECK(chk(p, "bob", false, "bob@example.org") == SENDER_OK);
	CHECK(chk(p, "gw", false, "ceo@corp.example") == SENDER_OK);
	sender_policy_free(p);
}

static void
test_not_owned(void)
{
	struct sender_policy *p = make(senders, NULL, true, true);

	CHECK(p != NULL);
	CHECK(chk(p, "alice", false, "bob@example.org") == SENDER_NOT_OWNED);
	CHECK(chk(p, "bob", false, "alice@example.org") == SENDER_NOT_OWNED);
	/* a domain pattern is not a suffix match */
	CHECK(
	    chk(p, "alice", false, "x@evil-alice.example") == SENDER_NOT_OWNED);
	CHECK(
	    chk(p, "alice", false, "x@sub.alice.example") == SENDER_NOT_OWNED);
	CHECK(chk(p, "alice", false, "@alice.example") == SENDER_NOT_OWNED);
	CHECK(chk(p, "alice", false, "alice@example.org.evil") ==
	      SENDER_NOT_OWNED);
	/* a user without a line owns nothing */
	CHECK(chk(p, "carol", false, "carol@example.org") == SENDER_NOT_OWNED);
	sender_policy_free(p);
}

static void
test_null_sender(void)
{
	struct sender_policy *p = make(senders, "example.org", false, false);

	CHECK(p != NULL);
	CHECK(
	    sender_policy_check(p, "alice", false, "", 0) == SENDER_NOT_OWNED);
	CHECK(sender_policy_check(p, NULL, true, "", 0) == SENDER_NOT_ALLOWED);
	/* not a relay client, not authenticated: not judged here */
	CHECK(sender_policy_check(p, NULL, false, "", 0) == SENDER_OK);
	sender_policy_free(p);
	p = make(senders, "example.org", true, true);
	CHECK(p != NULL);
	CHECK(sender_policy_check(p, "alice", false, "", 0) == SENDER_OK);
	CHECK(sender_policy_check(p, NULL, true, "", 0) == SENDER_OK);
	sender_policy_free(p);
}

static void
test_relay_domains(void)
{
	struct sender_policy *p =
	    make(NULL, "example.org, Other.Example", true, true);

	CHECK(p != NULL);
	CHECK(chk(p, NULL, true, "x@example.org") == SENDER_OK);
	CHECK(chk(p, NULL, true, "x@OTHER.example") == SENDER_OK);
	CHECK(chk(p, NULL, true, "x@evil.example") == SENDER_NOT_ALLOWED);
	CHECK(chk(p, NULL, true, "x@sub.example.org") == SENDER_NOT_ALLOWED);
	CHECK(chk(p, NULL, true, "postmaster") == SENDER_NOT_ALLOWED);
	CHECK(chk(p, NULL, false, "x@evil.example") == SENDER_OK);
	/* no senders file: authenticated users are not restricted */
	CHECK(chk(p, "alice", true, "x@evil.example") == SENDER_OK);
	CHECK(!sender_policy_active(p, "alice", true));
	CHECK(sender_policy_active(p, NULL, true));
	sender_policy_free(p);
}

static void
test_no_policy(void)
{
	struct sender_policy *p = make(NULL, "", true, true);

	CHECK(p != NULL);
	CHECK(!sender_policy_active(p, "alice", false));
	CHECK(!sender_policy_active(p, NULL, true));
	CHECK(chk(p, NULL, true, "x@any.example") == SENDER_OK);
	CHECK(chk(NULL, "alice", false, "x@any.example") == SENDER_OK);
	CHECK(!sender_policy_check_from(p));
	sender_policy_free(p);
}

static void
test_bad_lines(void)
{
	static const struct {
		const char *text, *err;
	} rows[] = {
	    {"alice alice@example.org\n", "senders:1: no colon"},
	    {"ok: a@b\nalice: example.org\n", "senders:2: bad pattern"},
	    {"alice: *@\n", "senders:1: bad pattern"},
	    {"alice: a*b@example.org\n", "senders:1: bad pattern"},
	    {"alice: a@*.example\n", "senders:1: bad pattern"},
	    {": a@b\n", "senders:1: bad user name"},
	};
	struct sender_policy_cfg c = {.senders_name = "senders"};
	struct sender_policy *p;
	char err[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		c.senders_text = rows[i].text;
		c.senders_len = strlen(rows[i].text);
		err[0] = '\0';
		CHECK(sender_policy_new(&c, &p, err, sizeof(err)) < 0);
		CHECK(strncmp(err, rows[i].err, strlen(rows[i].err)) == 0);
	}
	c.senders_text = NULL;
	c.relay_domains = "user@example.org";
	CHECK(sender_policy_new(&c, &p, err, sizeof(err)) < 0);
	CHECK(strstr(err, "relay_sender_domains") != NULL);
}

static void
test_load_missing(void)
{
	struct sender_policy_cfg c = {0};
	struct sender_policy *p;
	char err[256];

	CHECK(sender_policy_load(
	          "/nonexistent/senders", &c, &p, err, sizeof(err)) < 0);
	CHECK(strncmp(err, "/nonexistent/senders: ", 22) == 0);
	CHECK(sender_policy_load("", &c, &p, err, sizeof(err)) == 0);
	sender_policy_free(p);
}

static const struct harness_case cases[] = {
    {"owned", test_owned},
    {"not_owned", test_not_owned},
    {"null_sender", test_null_sender},
    {"relay_domains", test_relay_domains},
    {"no_policy", test_no_policy},
    {"bad_lines", test_bad_lines},
    {"load_missing", test_load_missing},
};
HARNESS_MAIN(cases)
