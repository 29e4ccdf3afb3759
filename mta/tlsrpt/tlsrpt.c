/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt.c - the TLS-RPT thread (tlsrpt.h): it counts the sessions
 * delivery reports, writes the counts at most once a second, and after
 * each period hands the periods that are due to tlsrpt_send.c. It waits
 * in curl_multi_poll() on curl's sockets and its chan's eventfd at once.
 * Thread: its own; tlsrpt_record() any thread.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "tlsrpt/tlsrpt_int.h"

#define TLSRPT_FLUSH_MS     1000
#define TLSRPT_DOMAINS_MAX  1024 /* domains in a period (~30 KiB each) */
#define TLSRPT_KEEP_PERIODS 8    /* a period is kept this long after */

struct rec_msg {
	struct chan_msg msg; /* first */
	struct tlsrpt_rec r;
};

void
tlsrpt_record(struct tlsrpt *t, const struct tlsrpt_rec *r)
{
	struct rec_msg *m;

	if (t == NULL)
		return;
	if (atomic_fetch_add(&t->inflight, 1) >= TLSRPT_INFLIGHT_MAX) {
		atomic_fetch_sub(&t->inflight, 1);
		atomic_fetch_add(&t->dropped, 1);
		return;
	}
	m = xmalloc(sizeof(*m));
	m->msg.type = TLSRPT_MSG_REC;
	m->msg.reqid = 0;
	m->r = *r;
	chan_send(t->chan, &m->msg);
}

/* Write every changed domain of the current period (one transaction). */
static void
cur_flush(struct tlsrpt *t)
{
	struct tlsrpt_entry **w = xcalloc(t->ncur ? t->ncur : 1, sizeof(*w));
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < t->ncur; i++)
		if (t->dirty[i])
			w[n++] = t->cur[i];
	if (n > 0 && (rc = tlsrpt_store_put(t->store, w, n)) != 0)
		log_warnx(
		    "event=tlsrpt-store-failed error=\"%s\"", strerror(-rc));
	else if (t->ncur > 0)
		memset(t->dirty, 0, t->ncur * sizeof(*t->dirty));
	free(w);
	t->next_flush = clock_mono_ms() + TLSRPT_FLUSH_MS;
}

/* The current period is over: written, then forgotten. */
static void
cur_close(struct tlsrpt *t)
{
	cur_flush(t);
	for (size_t i = 0; i < t->ncur; i++)
		free(t->cur[i]);
	t->ncur = 0;
}

/* The entry of domain in the current period: from disk, or new. */
static size_t
cur_find(struct tlsrpt *t, const char *domain)
{
	struct tlsrpt_entry *e;

	for (size_t i = 0; i < t->ncur; i++)
		if (strcmp(t->cur[i]->agg.domain, domain) == 0)
			return i;
	if (t->ncur == TLSRPT_DOMAINS_MAX)
		return SIZE_MAX;
	if (t->ncur == t->capcur) {
		t->capcur = t->capcur ? t->capcur * 2 : 16;
		t->cur = xreallocarray(t->cur, t->capcur, sizeof(*t->cur));
		t->dirty =
		    xreallocarray(t->dirty, t->capcur, sizeof(*t->dirty));
	}
	e = xcalloc(1, sizeof(*e));
	e->agg.start = t->cur_start;
	str_copy(e->agg.domain, sizeof(e->agg.domain), domain);
	if (tlsrpt_store_get(t->store, e) != 0) {
		memset(e, 0, sizeof(*e));
		e->agg.start = t->cur_start;
		str_copy(e->agg.domain, sizeof(e->agg.domain), domain);
	}
	t->cur[t->ncur] = e;
	t->dirty[t->ncur] = false;
	return t->ncur++;
}

static void
on_record(struct tlsrpt *t, struct tlsrpt_rec *r)
{
	uint64_t now = clock_wall_ms() / 1000;
	uint64_t start = now - now % t->interval;
	size_t i;

	if (start != t->cur_start) {
		cur_close(t);
		t->cur_start = start;
	}
	str_lower(r->domain);
	tlsrpt_clean(r->domain, false);
	tlsrpt_clean(r->strings, true);
	tlsrpt_clean(r->mx, false);
	tlsrpt_clean(r->send_ip, false);
	tlsrpt_clean(r->recv_ip, false);
	tlsrpt_clean(r->result, false);
	if (r->domain[0] == '\0' || (i = cur_find(t, r->domain)) == SIZE_MAX) {
		atomic_fetch_add(&t->dropped, 1);
		return;
	}
	tlsrpt_agg_add(&t->cur[i]->agg, r);
	t->dirty[i] = true;
}

static void
due_one(void *arg, const struct tlsrpt_entry *e)
{
	struct tlsrpt *t = arg;

	if (t->njobs < TLSRPT_JOBS_MAX &&
	    !tlsrpt_send_busy(t, e->agg.start, e->agg.domain))
		tlsrpt_send_start(t, e);
}

/* The schedule: a finished period is written and its reports start. */
static void
tick(struct tlsrpt *t)
{
	uint64_t now = clock_wall_ms() / 1000;
	unsigned long dropped = atomic_exchange(&t->dropped, 0);

	if (dropped > 0)
		log_warnx("event=tlsrpt-dropped records=%lu", dropped);
	if (t->ncur > 0 && t->cur_start + t->interval <= now)
		cur_close(t);
	if (!t->stopping)
		tlsrpt_store_due(t->store, now, t->interval,
		    TLSRPT_KEEP_PERIODS * t->interval, due_one, t);
}

static void
on_msgs(struct tlsrpt *t, struct chan_msg *m)
{
	while (m != NULL) {
		struct chan_msg *next = m->next;

		switch (m->type) {
		case TLSRPT_MSG_REC:
			atomic_fetch_sub(&t->inflight, 1);
			on_record(t, &((struct rec_msg *)m)->r);
			free(m);
			break;
		case TLSRPT_MSG_STOP:
			t->stopping = true;
			free(m);
			break;
		default:
			tlsrpt_send_msg(t, m);
			break;
		}
		m = next;
	}
}

static void
curl_done(struct tlsrpt *t)
{
	CURLMsg *cm;
	int left;

	while ((cm = curl_multi_info_read(t->multi, &left)) != NULL)
		if (cm->msg == CURLMSG_DONE)
			tlsrpt_send_posted(t, cm->easy_handle, cm->data.result);
}

/* The tick's period: a tenth of a period, 1 s to 60 s. */
static uint64_t
tick_ms(const struct tlsrpt *t)
{
	uint64_t ms = t->interval * 100;

	return ms < 1000 ? 1000 : ms > 60000 ? 60000 : ms;
}

static void
loop_once(struct tlsrpt *t)
{
	struct curl_waitfd w = {chan_fd(t->chan), CURL_WAIT_POLLIN, 0};
	uint64_t now = clock_mono_ms();
	uint64_t until =
	    t->next_tick < t->next_flush ? t->next_tick : t->next_flush;
	int running;

	if (curl_multi_poll(t->multi, &w, 1,
	        until > now ? (int)(until - now) : 0, NULL) != CURLM_OK)
		fatalx("tlsrpt: curl_multi_poll failed");
	chan_ack(t->chan);
	on_msgs(t, chan_take(t->chan));
	curl_multi_perform(t->multi, &running);
	curl_done(t);
	now = clock_mono_ms();
	if (now >= t->next_flush)
		cur_flush(t);
	if (now >= t->next_tick) {
		tick(t);
		t->next_tick = now + tick_ms(t);
	}
}

static void *
tlsrpt_main(void *arg)
{
	struct tlsrpt *t = arg;
	uint64_t deadline;

	t->next_tick = clock_mono_ms() + tick_ms(t);
	t->next_flush = clock_mono_ms() + TLSRPT_FLUSH_MS;
	while (!t->stopping)
		loop_once(t);
	cur_close(t);
	tlsrpt_send_abort(t);
	/* what the resolver and the queue were asked comes home first */
	deadline = clock_mono_ms() + 30000;
	while (t->pending > 0 && clock_mono_ms() < deadline) {
		struct chan_msg *m = chan_wait(t->chan, 200);

		on_msgs(t, m);
		tlsrpt_send_abort(t); /* posts a late answer started */
	}
	return NULL;
}

struct tlsrpt *
tlsrpt_new(const struct tlsrpt_settings *s, struct queue *q, struct dns *dns,
    char *err, size_t errlen)
{
	struct tlsrpt *t = xcalloc(1, sizeof(*t));

	str_copy(t->dir, sizeof(t->dir), s->dir);
	t->interval = s->interval ? s->interval : 86400;
	str_copy(t->org, sizeof(t->org), s->org);
	str_copy(t->contact, sizeof(t->contact), s->contact);
	str_copy(t->from, sizeof(t->from), s->from);
	str_copy(t->hostname, sizeof(t->hostname), s->hostname);
	str_copy(t->ca_file, sizeof(t->ca_file), s->ca_file ? s->ca_file : "");
	str_copy(t->ca_path, sizeof(t->ca_path), s->ca_path ? s->ca_path : "");
	t->dkim = s->dkim;
	t->dest = (struct dest_policy){
	    .allow_private = s->allow_private,
	    .allow_loopback = s->allow_loopback,
	    .self = s->self,
	};
	t->q = q;
	t->dns = dns;
	if (tlsrpt_store_open(s->dir, &t->store, err, errlen) != 0) {
		free(t);
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (t->multi = curl_multi_init()) == NULL) {
		str_copy(err, errlen, "tlsrpt: cannot set up libcurl");
		tlsrpt_store_close(t->store);
		free(t);
		return NULL;
	}
	t->chan = chan_new();
	return t;
}

int
tlsrpt_start(struct tlsrpt *t)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&t->tid, NULL, tlsrpt_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	t->started = true;
	return 0;
}

void
tlsrpt_free(struct tlsrpt *t)
{
	struct chan_msg *m;

	if (t == NULL)
		return;
	if (t->started) {
		m = xcalloc(1, sizeof(*m));
		m->type = TLSRPT_MSG_STOP;
		chan_send(t->chan, m);
		pthread_join(t->tid, NULL);
	} else {
		cur_close(t);
	}
	/* records sent after the stop */
	for (m = chan_take(t->chan); m != NULL;) {
		struct chan_msg *next = m->next;

		if (m->type == TLSRPT_MSG_REC || m->type == TLSRPT_MSG_STOP)
			free(m);
		m = next;
	}
	chan_free(t->chan);
	for (size_t i = 0; i < t->ncur; i++)
		free(t->cur[i]);
	free(t->cur);
	free(t->dirty);
	curl_multi_cleanup(t->multi);
	curl_global_cleanup();
	tlsrpt_store_close(t->store);
	free(t);
}
