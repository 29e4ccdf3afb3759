/* SPDX-License-Identifier: ISC */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "deliver/schedule.h"
#include "../harness.h"

static const uint64_t retry[] = {1000, 5000, 60000};

static uint32_t
mid_rand(void *arg)
{
	(void)arg;
	return 0x7fffffff; /* jitter: a fixed point in the range */
}

static struct sched *
mk(unsigned max_jobs, unsigned per_dest)
{
	struct sched_cfg cfg = {
	    .retry = retry,
	    .nretry = 3,
	    .max_age = 100000,
	    .max_jobs = max_jobs,
	    .max_per_dest = per_dest,
	    .rand = mid_rand,
	};

	return sched_new(&cfg);
}

static void
set_all(struct sched_job *j, enum sched_outcome o)
{
	for (size_t i = 0; i < j->nrcpts; i++)
		j->rcpts[i].outcome = o;
}

/* A job back whose decisions were committed: decide, then apply. */
static bool
done(struct sched *s, struct sched_job *j, uint64_t now)
{
	sched_job_decide(s, j, now);
	return sched_job_apply(s, j, now);
}

/* Recipients of one message are grouped by domain, one job per domain. */
static void
test_group_by_domain(void)
{
	struct sched *s = mk(10, 10);
	struct sched_rcpt_in r[] = {
	    {"a@x.org", 0, 0, 0},
	    {"b@Y.org", 1, 0, 0},
	    {"c@X.ORG", 2, 0, 0},
	};
	struct sched_job *j1, *j2;

	CHECK(sched_msg_add(s, 7, "s@z", 0, r, 3, 1000) == 0);
	CHECK(sched_msg_add(s, 7, "s@z", 0, r, 3, 1000) == -EEXIST);
	j1 = sched_job_next(s, 1000);
	j2 = sched_job_next(s, 1000);
	CHECK(j1 && j2 && sched_job_next(s, 1000) == NULL);
	if (strcmp(j1->domain, "x.org") != 0) {
		struct sched_job *t = j1;
		j1 = j2;
		j2 = t;
	}
	CHECK(strcmp(j1->domain, "x.org") == 0 && j1->nrcpts == 2);
	CHECK(strcmp(j2->domain, "y.org") == 0 && j2->nrcpts == 1);
	set_all(j1, SCHED_OUTCOME_OK);
	set_all(j2, SCHED_OUTCOME_OK);
	CHECK(!done(s, j1, 1100));
	CHECK(done(s, j2, 1100));
	CHECK(j2->rcpts[0].state == SCHED_RCPT_DELIVERED);
	sched_job_free(j1);
	sched_job_free(j2);
	sched_free(s);
}

/* Deferred recipients come back on the retry schedule, last repeating,
 * and expire at max_age. */
static void
test_retry_and_expiry(void)
{
	struct sched *s = mk(10, 10);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *j;
	uint64_t now = 0;
	int64_t t;

	CHECK(sched_msg_add(s, 1, "", 0, r, 1, 0) == 0);
	for (int k = 0; k < 3; k++) {
		j = sched_job_next(s, now);
		CHECK(j != NULL);
		set_all(j, SCHED_OUTCOME_TEMPFAIL);
		CHECK(!done(s, j, now));
		CHECK(j->rcpts[0].state == SCHED_RCPT_PENDING);
		CHECK(j->rcpts[0].attempts == k + 1);
		/* within +-10% of the schedule entry */
		t = sched_timeout(s, now);
		CHECK(t >= (int64_t)(retry[k] * 9 / 10) &&
		      t <= (int64_t)(retry[k] * 11 / 10));
		CHECK(sched_job_next(s, now + (uint64_t)t - 1) == NULL);
		now += (uint64_t)t;
		sched_job_free(j);
	}
	/* the last entry repeats, clamped to the deadline */
	j = sched_job_next(s, now);
	CHECK(j != NULL);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	done(s, j, 99000);
	CHECK(j->rcpts[0].next_ms == 100000);
	sched_job_free(j);
	j = sched_job_next(s, 100000);
	CHECK(j != NULL);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	CHECK(done(s, j, 100000));
	CHECK(j->rcpts[0].state == SCHED_RCPT_EXPIRED);
	sched_job_free(j);
	CHECK(sched_timeout(s, 100000) == -1);
	sched_free(s);
}

/* DSN parameters (RFC 3461) reach every job of the message, per
 * recipient, and survive a retry. */
static void
test_dsn_params(void)
{
	static const uint8_t notify[] = {0, 0x8, 0x3};
	static const char *const orcpts[] = {NULL, "", "rfc822;c+40o.org"};
	struct sched *s = mk(10, 10);
	struct sched_rcpt_in r[] = {
	    {"a@x.org", 0, 0, 0}, {"b@y.org", 1, 0, 0}, {"c@x.org", 2, 0, 0}};
	struct sched_job *j, *k;

	CHECK(sched_msg_add(s, 1, "f@o.org", 0, r, 3, 0) == 0);
	CHECK(sched_msg_dsn(s, 2, "E", 1, notify, orcpts, 3) == -ENOENT);
	CHECK(sched_msg_dsn(s, 1, "E+2B", 2, notify, orcpts, 3) == 0);
	j = sched_job_next(s, 0);
	k = sched_job_next(s, 0);
	CHECK(j != NULL && k != NULL);
	if (j == NULL || k == NULL)
		return;
	if (strcmp(j->domain, "x.org") != 0) {
		struct sched_job *t = j;

		j = k;
		k = t;
	}
	CHECK(j->nrcpts == 2 && k->nrcpts == 1);
	CHECK(strcmp(j->envid, "E+2B") == 0 && j->ret == 2);
	CHECK(strcmp(k->envid, "E+2B") == 0 && k->ret == 2);
	CHECK(j->rcpts[0].notify == 0 && j->rcpts[0].orcpt == NULL);
	CHECK(j->rcpts[1].notify == 0x3 &&
	      strcmp(j->rcpts[1].orcpt, "rfc822;c+40o.org") == 0);
	CHECK(k->rcpts[0].notify == 0x8 && k->rcpts[0].orcpt == NULL);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	CHECK(!done(s, j, 0));
	sched_job_free(j);
	j = sched_job_next(s, 50000);
	CHECK(j != NULL && j->nrcpts == 2);
	if (j != NULL) {
		CHECK(j->rcpts[1].notify == 0x3 && j->rcpts[1].orcpt != NULL);
		set_all(j, SCHED_OUTCOME_OK);
		CHECK(!done(s, j, 50000));
	}
	set_all(k, SCHED_OUTCOME_OK);
	CHECK(done(s, k, 50000));
	sched_job_free(j);
	sched_job_free(k);
	sched_free(s);
}

/* Never more jobs to one destination than its window; a connection
 * failure drops the window to one, successes widen it again. */
static void
test_dest_cap_and_slow_start(void)
{
	struct sched *s = mk(100, 3);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *out[10];
	unsigned inflight, window;
	size_t n = 0;

	for (uint64_t id = 1; id <= 10; id++)
		CHECK(sched_msg_add(s, id, "s@z", 0, r, 1, 0) == 0);
	while ((out[n] = sched_job_next(s, 0)) != NULL)
		n++;
	CHECK(n == 3);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(inflight == 3 && window == 3);
	set_all(out[0], SCHED_OUTCOME_TEMPFAIL);
	out[0]->dest_failed = true;
	done(s, out[0], 0);
	sched_job_free(out[0]);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(window == 1 && inflight == 2);
	CHECK(sched_job_next(s, 0) == NULL);
	set_all(out[1], SCHED_OUTCOME_OK);
	done(s, out[1], 0);
	sched_job_free(out[1]);
	set_all(out[2], SCHED_OUTCOME_OK);
	done(s, out[2], 0);
	sched_job_free(out[2]);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(window == 3 && inflight == 0);
	n = 0;
	while ((out[n] = sched_job_next(s, 0)) != NULL)
		n++;
	CHECK(n == 3);
	for (size_t i = 0; i < n; i++) {
		set_all(out[i], SCHED_OUTCOME_PERMFAIL);
		CHECK(done(s, out[i], 0));
		sched_job_free(out[i]);
	}
	sched_free(s);
}

static void
test_global_cap(void)
{
	struct sched *s = mk(2, 10);
	struct sched_rcpt_in r[] = {
	    {"a@x.org", 0, 0, 0}, {"a@y.org", 1, 0, 0}, {"a@z.org", 2, 0, 0}};
	struct sched_job *a, *b;

	CHECK(sched_msg_add(s, 1, "s@z", 0, r, 3, 0) == 0);
	a = sched_job_next(s, 0);
	b = sched_job_next(s, 0);
	CHECK(a && b && sched_job_next(s, 0) == NULL);
	CHECK(sched_timeout(s, 0) == -1);
	set_all(a, SCHED_OUTCOME_OK);
	done(s, a, 0);
	sched_job_free(a);
	a = sched_job_next(s, 0);
	CHECK(a != NULL);
	set_all(a, SCHED_OUTCOME_OK);
	set_all(b, SCHED_OUTCOME_OK);
	CHECK(!done(s, a, 0));
	CHECK(done(s, b, 0));
	sched_job_free(a);
	sched_job_free(b);
	sched_free(s);
}

/* Hold keeps a message back, release and retry make it due now, forget
 * drops it (after its job returns, if one is out). */
static void
test_operator_actions(void)
{
	struct sched *s = mk(10, 10);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 2, 50000}};
	struct sched_job *j;
	struct sched_stats st;

	CHECK(sched_msg_add(s, 1, "s@z", 0, r, 1, 0) == 0);
	CHECK(sched_job_next(s, 0) == NULL);
	CHECK(sched_msg_retry(s, 1, 10) == 0);
	CHECK(sched_msg_hold(s, 1, true, 10) == 0);
	CHECK(sched_job_next(s, 10) == NULL);
	CHECK(sched_msg_hold(s, 1, false, 10) == 0);
	j = sched_job_next(s, 10);
	CHECK(j != NULL && j->nrcpts == 1);
	CHECK(sched_msg_forget(s, 1) == 0);
	sched_stats_get(s, &st);
	CHECK(st.msgs == 1 && st.inflight == 1);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	CHECK(!done(s, j, 20));
	CHECK(j->rcpts[0].attempts == 3);
	sched_job_free(j);
	sched_stats_get(s, &st);
	CHECK(st.msgs == 0 && st.inflight == 0 && st.units == 0);
	CHECK(sched_msg_retry(s, 1, 0) == -ENOENT);
	CHECK(sched_msg_forget(s, 2) == -ENOENT);
	sched_free(s);
}

/* Many messages come out in due order. */
static void
test_due_order(void)
{
	struct sched *s = mk(1000, 1000);
	uint64_t last = 0;

	for (uint64_t id = 1; id <= 500; id++) {
		struct sched_rcpt_in r = {
		    "a@x.org", 0, 0, (id * 7919) % 1000 + 1};
		CHECK(sched_msg_add(s, id, "", 0, &r, 1, 0) == 0);
	}
	for (int k = 0; k < 500; k++) {
		int64_t t = sched_timeout(s, last);
		struct sched_job *j;

		CHECK(t >= 0);
		j = sched_job_next(s, last + (uint64_t)t);
		CHECK(j != NULL);
		last += (uint64_t)t;
		set_all(j, SCHED_OUTCOME_OK);
		done(s, j, last);
		sched_job_free(j);
	}
	CHECK(sched_timeout(s, last) == -1);
	sched_free(s);
}

/* A destination that failed as a whole rests until its first retry
 * interval: messages that come due meanwhile are deferred at once as
 * "suspended" jobs, without a worker, and nothing is tried until the rest
 * is over; then one probe at a time. */
static void
test_dead_destination_rests(void)
{
	struct sched *s = mk(100, 1);
	struct sched_rcpt_in r[] = {{"a@dead.org", 0, 0, 0}};
	struct sched_job *j;
	unsigned n = 0;

	for (uint64_t id = 1; id <= 50; id++)
		CHECK(sched_msg_add(s, id, "s@z", 0, r, 1, 0) == 0);
	j = sched_job_next(s, 0);
	CHECK(j != NULL && !j->suspended);
	CHECK(sched_job_next(s, 0) == NULL); /* window 1: the rest wait */
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	str_copy(j->rcpts[0].reply, sizeof(j->rcpts[0].reply),
	    "connect: Connection refused");
	j->dest_failed = true;
	done(s, j, 0);
	sched_job_free(j);
	while ((j = sched_job_next(s, 10)) != NULL) {
		CHECK(j->suspended);
		CHECK(j->rcpts[0].outcome == SCHED_OUTCOME_TEMPFAIL);
		CHECK(strstr(j->rcpts[0].reply, "suspended: connect: "
		                                "Connection refused") != NULL);
		CHECK(!done(s, j, 10));
		CHECK(j->rcpts[0].state == SCHED_RCPT_PENDING);
		CHECK(j->rcpts[0].attempts == 1);
		sched_job_free(j);
		n++;
	}
	CHECK(n == 49);
	/* after the rest: one real probe, then the others follow it */
	j = sched_job_next(s, 1200);
	CHECK(j != NULL && !j->suspended);
	CHECK(sched_job_next(s, 1200) == NULL);
	set_all(j, SCHED_OUTCOME_OK);
	done(s, j, 1200);
	sched_job_free(j);
	j = sched_job_next(s, 1200);
	CHECK(j != NULL && !j->suspended);
	sched_job_free(j);
	sched_free(s);
}

/* An operator's retry is a probe: it lifts the destination's rest. */
static void
test_retry_lifts_rest(void)
{
	struct sched *s = mk(100, 1);
	struct sched_rcpt_in r[] = {{"a@dead.org", 0, 0, 0}};
	struct sched_job *j;

	CHECK(sched_msg_add(s, 1, "s@z", 0, r, 1, 0) == 0);
	CHECK(sched_msg_add(s, 2, "s@z", 0, r, 1, 0) == 0);
	j = sched_job_next(s, 0);
	CHECK(j != NULL);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	j->dest_failed = true;
	done(s, j, 0);
	sched_job_free(j);
	j = sched_job_next(s, 5);
	CHECK(j != NULL && j->suspended);
	done(s, j, 5);
	sched_job_free(j);
	CHECK(sched_msg_retry(s, 2, 10) == 0);
	j = sched_job_next(s, 10);
	CHECK(j != NULL && !j->suspended && j->id == 2);
	sched_job_free(j);
	sched_free(s);
}

/* A decided job changes nothing until it is applied: the message stays
 * (even with every recipient delivered), and the job keeps a slot (a
 * commit slot, while its connection takes the next message). */
static void
test_decide_changes_nothing(void)
{
	struct sched *s = mk(10, 1);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *j, *k;
	struct sched_stats st;
	unsigned inflight, window;

	CHECK(sched_msg_add(s, 1, "s@z", 0, r, 1, 0) == 0);
	CHECK(sched_msg_add(s, 2, "s@z", 0, r, 1, 0) == 0);
	j = sched_job_next(s, 0);
	CHECK(j != NULL && j->id == 1);
	CHECK(sched_job_next(s, 0) == NULL); /* window 1: 2 waits */
	set_all(j, SCHED_OUTCOME_OK);
	sched_job_decide(s, j, 10);
	CHECK(j->rcpts[0].state == SCHED_RCPT_DELIVERED);
	CHECK(j->rcpts[0].attempts == 1);
	sched_stats_get(s, &st);
	CHECK(st.msgs == 2 && st.inflight == 1 && st.deciding == 1);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(inflight == 1 && window == 1);
	/* the connection slot is free: message 2 goes, j keeps a commit
	 * slot (test_commit_slots) */
	k = sched_job_next(s, 10);
	CHECK(k != NULL && k->id == 2);
	CHECK(sched_job_apply(s, j, 10));
	sched_stats_get(s, &st);
	CHECK(st.msgs == 1 && st.inflight == 1 && st.deciding == 0);
	sched_job_free(j);
	sched_job_free(k);
	sched_free(s);
}

/* A commit that failed: the schedule stays as the disk is. The message is
 * not removed although its recipient was delivered, its attempts do not
 * count the attempt, a connection failure does not shrink the window or
 * rest the destination, the slot is released (the next in line goes),
 * and the unit is due again only after the first retry interval. */
static void
test_revert_keeps_disk_state(void)
{
	struct sched *s = mk(10, 1);
	struct sched_rcpt_in r1[] = {{"a@x.org", 0, 2, 0}};
	struct sched_rcpt_in r2[] = {{"b@x.org", 0, 0, 0}};
	struct sched_job *j, *k;
	struct sched_stats st;
	unsigned inflight, window;

	CHECK(sched_msg_add(s, 1, "s@z", 0, r1, 1, 0) == 0);
	CHECK(sched_msg_add(s, 2, "s@z", 0, r2, 1, 0) == 0);
	j = sched_job_next(s, 0);
	CHECK(j != NULL && j->id == 1);
	set_all(j, SCHED_OUTCOME_OK);
	sched_job_decide(s, j, 100);
	CHECK(j->rcpts[0].state == SCHED_RCPT_DELIVERED);
	sched_job_revert(s, j, 100);
	sched_job_free(j);
	sched_stats_get(s, &st);
	CHECK(st.msgs == 2 && st.inflight == 0 && st.deciding == 0);
	/* the released slot goes to the one in line */
	k = sched_job_next(s, 100);
	CHECK(k != NULL && k->id == 2);
	set_all(k, SCHED_OUTCOME_TEMPFAIL);
	k->dest_failed = true;
	sched_job_decide(s, k, 100);
	sched_job_revert(s, k, 100);
	sched_job_free(k);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(inflight == 0 && window == 1);
	/* not resting: nothing is "suspended"; 1 waits about 1000 ms */
	CHECK(sched_job_next(s, 100 + 899) == NULL);
	j = sched_job_next(s, 100 + 1101);
	CHECK(j != NULL && !j->suspended && j->id == 1);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	CHECK(!done(s, j, 1201));
	CHECK(j->rcpts[0].attempts == 3); /* 2 on disk, then this one */
	sched_job_free(j);
	sched_free(s);
}

/* The window is only learnt from an applied job. */
static void
test_revert_keeps_window(void)
{
	struct sched *s = mk(10, 3);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *j;
	unsigned inflight, window;

	CHECK(sched_msg_add(s, 1, "s@z", 0, r, 1, 0) == 0);
	j = sched_job_next(s, 0);
	CHECK(j != NULL);
	set_all(j, SCHED_OUTCOME_TEMPFAIL);
	j->dest_failed = true;
	sched_job_decide(s, j, 0);
	sched_job_revert(s, j, 0);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(inflight == 0 && window == 3);
	sched_job_free(j);
	sched_free(s);
}

/* An operator's retry ends the wait after a failed commit; a message
 * forgotten (deleted) while its job was deciding leaves at the revert. */
static void
test_revert_then_retry_or_forget(void)
{
	struct sched *s = mk(10, 10);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *j;
	struct sched_stats st;
	uint64_t ids[4];

	CHECK(sched_msg_add(s, 1, "s@z", 0, r, 1, 0) == 0);
	j = sched_job_next(s, 0);
	set_all(j, SCHED_OUTCOME_OK);
	sched_job_decide(s, j, 0);
	sched_job_revert(s, j, 0);
	sched_job_free(j);
	CHECK(sched_job_next(s, 10) == NULL);
	CHECK(sched_msg_ids(s, ids, 4) == 1 && ids[0] == 1);
	CHECK(sched_msg_retry(s, 1, 10) == 0);
	j = sched_job_next(s, 10);
	CHECK(j != NULL && j->id == 1);
	set_all(j, SCHED_OUTCOME_OK);
	sched_job_decide(s, j, 20);
	CHECK(sched_msg_forget(s, 1) == 0);
	CHECK(sched_msg_ids(s, ids, 4) == 0);
	sched_stats_get(s, &st);
	CHECK(st.msgs == 1 && st.deciding == 1);
	sched_job_revert(s, j, 20);
	sched_job_free(j);
	sched_stats_get(s, &st);
	CHECK(st.msgs == 0 && st.inflight == 0 && st.units == 0);
	sched_free(s);
}

/* Freeing a schedule with a long line of waiting units is linear: this
 * took minutes with a singly linked line. */
static void
test_free_long_fifo(void)
{
	struct sched *s = mk(1000000, 1);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *j;

	for (uint64_t id = 1; id <= 200000; id++)
		CHECK(sched_msg_add(s, id, "s@z", 0, r, 1, 0) == 0);
	j = sched_job_next(s, 0); /* the rest queue behind it */
	CHECK(j != NULL);
	CHECK(sched_job_next(s, 0) == NULL);
	sched_job_free(j);
	sched_free(s);
}

/* While a job's result is committed its connection is free for the next
 * job, but a destination has at most `window` jobs at workers and takes
 * no new one while 4 * window results are being committed
 * (COMMIT_SLOTS): fewer than 5 * window of its deliveries are ever
 * unrecorded. A failed commit frees its slot too. */
static void
test_commit_slots(void)
{
	struct sched *s = mk(100, 1);
	struct sched_rcpt_in r[] = {{"a@x.org", 0, 0, 0}};
	struct sched_job *j[6];
	unsigned inflight, window;

	for (uint64_t id = 1; id <= 8; id++)
		CHECK(sched_msg_add(s, id, "s@z", 0, r, 1, 0) == 0);
	for (size_t i = 0; i < 4; i++) {
		j[i] = sched_job_next(s, 1);
		CHECK(j[i] != NULL);
		CHECK(sched_job_next(s, 1) == NULL); /* window 1 */
		set_all(j[i], SCHED_OUTCOME_OK);
		sched_job_decide(s, j[i], 1); /* its connection is free */
	}
	/* none at a worker, four results unrecorded: no new job */
	CHECK(sched_job_next(s, 1) == NULL);
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(inflight == 4 && window == 1);
	CHECK(sched_job_apply(s, j[0], 1));
	j[4] = sched_job_next(s, 1);
	CHECK(j[4] != NULL);
	set_all(j[4], SCHED_OUTCOME_OK);
	sched_job_decide(s, j[4], 1);
	CHECK(sched_job_next(s, 1) == NULL);
	sched_job_revert(s, j[1], 1);
	j[5] = sched_job_next(s, 1);
	CHECK(j[5] != NULL);
	for (size_t i = 2; i < 5; i++)
		CHECK(sched_job_apply(s, j[i], 1));
	set_all(j[5], SCHED_OUTCOME_OK);
	CHECK(done(s, j[5], 1));
	sched_dest_get(s, "x.org", &inflight, &window);
	CHECK(inflight == 0);
	for (size_t i = 0; i < 6; i++)
		sched_job_free(j[i]);
	sched_free(s);
}

/* A fake shaper: x.org may start a job only at or after `open`. */
struct gate {
	uint64_t open;
	unsigned asked;
};

static uint64_t
gate_admit(void *arg, const char *domain, uint64_t now)
{
	struct gate *g = arg;

	g->asked++;
	if (strcmp(domain, "x.org") != 0 || now >= g->open)
		return 0;
	return g->open - now;
}

/* Units shaping holds back wait in memory (no attempt counted, no retry
 * time moved), are asked about once per wait, go when it allows, and an
 * operator's resume makes them due at once. */
static void
test_admit_holds_units(void)
{
	struct gate g = {5000, 0};
	struct sched_cfg cfg = {
	    .retry = retry,
	    .nretry = 3,
	    .max_age = 100000,
	    .max_jobs = 10,
	    .max_per_dest = 10,
	    .rand = mid_rand,
	    .admit = gate_admit,
	    .admit_arg = &g,
	};
	struct sched *s = sched_new(&cfg);
	struct sched_rcpt_in a = {"a@x.org", 0, 0, 0}, b = {"b@y.org", 0, 0, 0};
	struct sched_job *j;

	for (uint64_t id = 1; id <= 3; id++)
		CHECK(sched_msg_add(s, id, "s@z", 0, &a, 1, 1000) == 0);
	CHECK(sched_msg_add(s, 4, "s@z", 0, &b, 1, 1000) == 0);
	j = sched_job_next(s, 1000);
	CHECK(j != NULL && strcmp(j->domain, "y.org") == 0);
	CHECK(sched_job_next(s, 1000) == NULL);
	CHECK(g.asked == 2); /* x.org once, y.org once */
	CHECK(sched_timeout(s, 1000) == 4000);
	CHECK(sched_job_next(s, 4999) == NULL);
	CHECK(g.asked == 2); /* not asked again before its time */
	for (int i = 0; i < 3; i++) {
		struct sched_job *x = sched_job_next(s, 5000);

		CHECK(x != NULL && strcmp(x->domain, "x.org") == 0);
		if (x != NULL) {
			/* nothing was counted while it waited */
			CHECK(x->nrcpts == 1);
			set_all(x, SCHED_OUTCOME_OK);
			CHECK(done(s, x, 5000));
			sched_job_free(x);
		}
	}
	set_all(j, SCHED_OUTCOME_OK);
	CHECK(done(s, j, 5000));
	sched_job_free(j);
	/* held back for long; the operator lifts it */
	g.open = 1000000;
	CHECK(sched_msg_add(s, 5, "s@z", 0, &a, 1, 6000) == 0);
	CHECK(sched_job_next(s, 6000) == NULL);
	CHECK(sched_dest_resume(s, "x.org", 7000) == 0);
	CHECK(sched_dest_resume(s, "none.org", 7000) == -ENOENT);
	g.open = 0;
	j = sched_job_next(s, 7000);
	CHECK(j != NULL && j->id == 5);
	if (j != NULL) {
		set_all(j, SCHED_OUTCOME_OK);
		CHECK(done(s, j, 7000));
		sched_job_free(j);
	}
	sched_free(s);
}

static const struct harness_case cases[] = {
    {"admit_holds_units", test_admit_holds_units},
    {"group_by_domain", test_group_by_domain},
    {"retry_and_expiry", test_retry_and_expiry},
    {"dsn_params", test_dsn_params},
    {"dest_cap_and_slow_start", test_dest_cap_and_slow_start},
    {"global_cap", test_global_cap},
    {"operator_actions", test_operator_actions},
    {"due_order", test_due_order},
    {"dead_destination_rests", test_dead_destination_rests},
    {"retry_lifts_rest", test_retry_lifts_rest},
    {"free_long_fifo", test_free_long_fifo},
    {"decide_changes_nothing", test_decide_changes_nothing},
    {"commit_slots", test_commit_slots},
    {"revert_keeps_disk_state", test_revert_keeps_disk_state},
    {"revert_keeps_window", test_revert_keeps_window},
    {"revert_then_retry_or_forget", test_revert_then_retry_or_forget},
};

HARNESS_MAIN(cases)
