/* SPDX-License-Identifier: ISC */
/*
 * cli_top_test.c - `mta top` without a relay: the Prometheus text parser
 * (well-formed and malformed lines) and frames rendered from canned
 * scrapes (rates between two, gauges, destinations, last error class).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "cli/prom.h"
#include "cli/top_view.h"

static int
parse(const char *text, struct prom_set *set, size_t *line)
{
	return prom_parse(text, strlen(text), set, line);
}

static void
test_parse_samples(void)
{
	static const char text[] =
	    "# HELP mta_x a counter\n"
	    "# TYPE mta_x counter\n"
	    "mta_x 12\n"
	    "\n"
	    "mta_y{a=\"1\",b=\"q\\\"x\\\\y\\nz\"} 1.5e3 1700000000000\n"
	    "mta_z{a=\"2\",} +Inf\r\n"
	    "mta_z{a=\"3\"} NaN\n"
	    "mta_w{} -Inf\n"
	    "mta_v -4";
	struct prom_set s = {0};
	bool found;

	CHECK(parse(text, &s, NULL) == 0);
	CHECK(s.n == 6);
	CHECK(strcmp(s.v[0].name, "mta_x") == 0 && s.v[0].value == 12);
	CHECK(s.v[1].nlabels == 2 && s.v[1].value == 1500);
	CHECK(strcmp(prom_label(&s.v[1], "b"), "q\"x\\y\nz") == 0);
	CHECK(prom_label(&s.v[1], "c") == NULL);
	CHECK(isinf(s.v[2].value) && s.v[2].value > 0);
	CHECK(isnan(s.v[3].value));
	CHECK(isinf(s.v[4].value) && s.v[4].value < 0);
	CHECK(s.v[5].value == -4);
	/* NaN does not poison a sum */
	CHECK(isinf(prom_sum(&s, "mta_z", NULL, NULL, &found)) && found);
	CHECK(prom_sum(&s, "mta_z", "a", "3", &found) == 0 && found);
	CHECK(prom_sum(&s, "mta_q", NULL, NULL, &found) == 0 && !found);
	CHECK(prom_sum2(&s, "mta_y", "a", "1", "b", "q\"x\\y\nz") == 1500);
	CHECK(prom_sum2(&s, "mta_y", "a", "1", "b", "other") == 0);
	prom_set_fini(&s);
	CHECK(s.n == 0 && s.v == NULL);
}

static void
test_parse_malformed(void)
{
	static const struct {
		const char *text;
		size_t line;
	} bad[] = {
	    {"mta_x\n", 1},
	    {"mta_x 1\nmta_y\n", 2},
	    {"mta_x one\n", 1},
	    {"mta_x{a=1} 2\n", 1},
	    {"mta_x{a=\"1\" 2\n", 1},
	    {"mta_x{a=\"1\"b=\"2\"} 2\n", 1},
	    {"mta_x{a=\"\\q\"} 2\n", 1},
	    {"mta_x 1 2 3\n", 1},
	    {"9x 1\n", 1},
	    {"<html><body>Not found</body></html>\n", 1},
	    {"mta_x{a=\"1\",b=\"1\",c=\"1\",d=\"1\",e=\"1\",f=\"1\",g=\"1\","
	     "h=\"1\",i=\"1\"} 1\n",
	        1},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct prom_set s = {0};
		size_t line = 0;

		if (parse(bad[i].text, &s, &line) != -EINVAL ||
		    line != bad[i].line)
			fprintf(
			    stderr, "accepted or wrong line: %s", bad[i].text);
		CHECK(parse(bad[i].text, &s, &line) == -EINVAL);
		CHECK(line == bad[i].line);
		prom_set_fini(&s);
	}
}

/* Two scrapes of a relay, 2 seconds apart. */
static const char scrape1[] =
    "mta_connections_current{listener=\"127.0.0.1:587\"} 3\n"
    "mta_messages_accepted_total 100\n"
    "mta_messages_refused_total{class=\"4xx\"} 1\n"
    "mta_deliveries_total{outcome=\"delivered\"} 50\n"
    "mta_deliveries_total{outcome=\"deferred\"} 4\n"
    "mta_deliveries_total{outcome=\"failed\"} 0\n"
    "mta_commit_seconds_sum 0.5\n"
    "mta_commit_seconds_count 100\n"
    "mta_queue_messages{state=\"active\"} 40\n"
    "mta_queue_messages{state=\"held\"} 2\n"
    "mta_queue_recipients{state=\"pending\"} 60\n"
    "mta_queue_oldest_age_seconds 312\n"
    "mta_destination_queued{destination=\"slow.test\"} 30\n"
    "mta_destination_queued{destination=\"fast.test\"} 5\n"
    "mta_destination_queued{destination=\"other\"} 1\n"
    "mta_destination_connections{destination=\"slow.test\"} 2\n"
    "mta_destination_deliveries_total{destination=\"fast.test\","
    "outcome=\"delivered\"} 40\n"
    "mta_destination_deferrals_total{destination=\"slow.test\","
    "reason=\"timeout\"} 9\n"
    "mta_destination_deferrals_total{destination=\"slow.test\","
    "reason=\"4xx\"} 1\n"
    "mta_destination_suspended{destination=\"slow.test\"} 0\n";

static const char scrape2[] =
    "mta_connections_current{listener=\"127.0.0.1:587\"} 1\n"
    "mta_connections_current{listener=\"127.0.0.1:465\"} 1\n"
    "mta_messages_accepted_total 120\n"
    "mta_messages_refused_total{class=\"4xx\"} 1\n"
    "mta_messages_refused_total{class=\"5xx\"} 2\n"
    "mta_deliveries_total{outcome=\"delivered\"} 70\n"
    "mta_deliveries_total{outcome=\"deferred\"} 5\n"
    "mta_deliveries_total{outcome=\"failed\"} 1\n"
    "mta_commit_seconds_sum 0.52\n"
    "mta_commit_seconds_count 110\n"
    "mta_queue_messages{state=\"active\"} 41\n"
    "mta_queue_messages{state=\"held\"} 2\n"
    "mta_queue_recipients{state=\"pending\"} 61\n"
    "mta_queue_oldest_age_seconds 3725\n"
    "mta_destination_queued{destination=\"slow.test\"} 31\n"
    "mta_destination_queued{destination=\"fast.test\"} 2\n"
    "mta_destination_queued{destination=\"bad\033.test\"} 1\n"
    "mta_destination_connections{destination=\"slow.test\"} 2\n"
    "mta_destination_connections{destination=\"fast.test\"} 1\n"
    "mta_destination_deliveries_total{destination=\"fast.test\","
    "outcome=\"delivered\"} 50\n"
    "mta_destination_deferrals_total{destination=\"slow.test\","
    "reason=\"timeout\"} 9\n"
    "mta_destination_deferrals_total{destination=\"slow.test\","
    "reason=\"4xx\"} 3\n"
    "mta_destination_suspended{destination=\"slow.test\"} 1\n";

static char *
render(struct top_view *v, const struct prom_set *a, const struct prom_set *b,
    double dt, size_t rows)
{
	/* static: see printed() in cli_shape_test.c (gcc -O2's false
	 * dangling-pointer warning) */
	static char *text;
	static size_t len;
	FILE *fp;

	text = NULL;
	len = 0;
	fp = open_memstream(&text, &len);
	top_view_render(v, fp, a, b, dt, rows);
	fclose(fp);
	return text;
}

static void
test_view_two_scrapes(void)
{
	struct prom_set a = {0}, b = {0};
	struct top_view *v = top_view_new("127.0.0.1:9725");
	char *t;

	CHECK(parse(scrape1, &a, NULL) == 0);
	CHECK(parse(scrape2, &b, NULL) == 0);
	t = render(v, &a, &b, 2.0, 10);
	CHECK(strstr(t, "mta top - 127.0.0.1:9725\n") != NULL);
	/* (120 - 100) / 2 in, (70 - 50) / 2 out; refused 2 / 2 */
	CHECK(
	    strstr(t, "in       10.0 msg/s   refused 1.0/s   connections 2\n"));
	CHECK(
	    strstr(t, "out      10.0 msg/s   deferred 0.5/s   failed 0.5/s\n"));
	CHECK(strstr(t, "queue 43 messages (active=41 held=2)   61 recipients"
	                "   oldest 1h02m\n"));
	/* 0.02 s over 10 commits: 2 ms each, 5 a second */
	CHECK(strstr(t, "commit 2.00 ms avg   5.0 commits/s\n"));
	/* most queued first; slow.test's 4xx grew, timeout did not */
	CHECK(strstr(t, "slow.test                                  31      2"
	                "      0.0  4xx (suspended)\n"));
	CHECK(strstr(t, "fast.test                                   2      1"
	                "      5.0  -\n"));
	CHECK(strstr(t, "slow.test") < strstr(t, "fast.test"));
	/* the ESC of a hostile label is escaped: no raw control byte */
	CHECK(strchr(t, '\033') == NULL);
	free(t);
	/* rows: only the first */
	t = render(v, &a, &b, 2.0, 1);
	CHECK(strstr(t, "slow.test") != NULL && strstr(t, "fast.test") == NULL);
	free(t);
	/* no growth now (same scrape twice): the last class shown stays */
	t = render(v, &b, &b, 2.0, 1);
	CHECK(strstr(t, "0.0  4xx (suspended)\n") != NULL);
	free(t);
	top_view_free(v);
	prom_set_fini(&a);
	prom_set_fini(&b);
}

static void
test_view_first_scrape(void)
{
	struct prom_set a = {0};
	struct top_view *v = top_view_new("x");
	char *t;

	CHECK(parse(scrape1, &a, NULL) == 0);
	t = render(v, NULL, &a, 0, 10);
	/* no rates from one scrape; commit: the mean since start */
	CHECK(strstr(t, "in          - msg/s   refused -/s   connections 3\n"));
	CHECK(strstr(t, "commit 5.00 ms avg   - commits/s\n"));
	/* no growth seen: the most frequent class */
	CHECK(strstr(t, "      -  timeout\n") != NULL);
	CHECK(strstr(t, "(suspended)") == NULL);
	free(t);
	top_view_free(v);
	prom_set_fini(&a);
}

static void
test_view_counter_reset(void)
{
	struct prom_set a = {0}, b = {0};
	struct top_view *v = top_view_new("x");
	char *t;

	/* the relay restarted between the scrapes: 120 -> 6 means 6 new */
	CHECK(parse("mta_messages_accepted_total 120\n", &a, NULL) == 0);
	CHECK(parse("mta_messages_accepted_total 6\n", &b, NULL) == 0);
	t = render(v, &a, &b, 2.0, 10);
	CHECK(strstr(t, "in        3.0 msg/s") != NULL);
	CHECK(strstr(t, "queue 0 messages   0 recipients   oldest 0s\n"));
	free(t);
	top_view_free(v);
	prom_set_fini(&a);
	prom_set_fini(&b);
}

static const struct harness_case cases[] = {
    {"parse_samples", test_parse_samples},
    {"parse_malformed", test_parse_malformed},
    {"view_two_scrapes", test_view_two_scrapes},
    {"view_first_scrape", test_view_first_scrape},
    {"view_counter_reset", test_view_counter_reset},
};

HARNESS_MAIN(cases)
