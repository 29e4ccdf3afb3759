/* SPDX-License-Identifier: ISC */
/*
 * metrics_page.c - every family of the /metrics page, in the order the
 * README table lists them. The counters come summed from the per-thread
 * blocks; the queue and per-destination families come from the
 * scheduler's last snapshot (at most a second old while metrics are
 * on), whose size is bounded by [metrics] destinations, so the page is
 * bounded too whatever the number of destinations.
 */
#include "metrics/metrics_page.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "metrics/metrics_text.h"

#define L(n, v) ((struct metrics_label){n, v})

static void
page_connections(struct metrics_text *t, const struct metrics_sums *s)
{
	static const char *const why[METRICS_REFUSALS] = {"max_connections",
	    "max_connections_per_ip", "no_descriptors", "connection_limit"};
	unsigned nl = metrics_listeners();

	metrics_text_family(t, "mta_connections_current", "gauge",
	    "Inbound SMTP connections open, per listener.");
	for (unsigned i = 0; i < nl; i++) {
		struct metrics_label l = L("listener", metrics_listener_get(i));

		metrics_text_i64(
		    t, "mta_connections_current", &l, 1, s->conn_current[i]);
	}
	metrics_text_family(t, "mta_connections_total", "counter",
	    "Inbound SMTP connections accepted, per listener.");
	for (unsigned i = 0; i < nl; i++) {
		struct metrics_label l = L("listener", metrics_listener_get(i));

		metrics_text_u64(
		    t, "mta_connections_total", &l, 1, s->conn_total[i]);
	}
	metrics_text_family(t, "mta_connections_refused_total", "counter",
	    "Inbound connections refused at accept (421), per listener and "
	    "reason.");
	for (unsigned i = 0; i < nl; i++)
		for (unsigned r = 0; r < METRICS_REFUSALS; r++) {
			struct metrics_label l[2] = {
			    L("listener", metrics_listener_get(i)),
			    L("reason", why[r])};

			metrics_text_u64(t, "mta_connections_refused_total", l,
			    2, s->conn_refused[i][r]);
		}
}

/* A family of one counter per value of one label. */
static void
page_labelled(struct metrics_text *t, const char *name, const char *help,
    const char *label, const char *const *values, const uint64_t *v, size_t n)
{
	metrics_text_family(t, name, "counter", help);
	for (size_t i = 0; i < n; i++) {
		struct metrics_label l = L(label, values[i]);

		metrics_text_u64(t, name, &l, 1, v[i]);
	}
}

static void
page_counter(
    struct metrics_text *t, const char *name, const char *help, uint64_t v)
{
	metrics_text_family(t, name, "counter", help);
	metrics_text_u64(t, name, NULL, 0, v);
}

static void
page_receive(struct metrics_text *t, const struct metrics_sums *s)
{
	static const char *const cls[] = {"4xx", "5xx"};
	static const char *const res[] = {"accepted", "refused", "aborted"};

	page_counter(t, "mta_messages_accepted_total",
	    "Messages accepted (250 after the commit).",
	    s->c[METRICS_MSG_ACCEPTED]);
	page_labelled(t, "mta_messages_refused_total",
	    "Messages refused whole at the end of DATA or at the commit, by "
	    "reply class.",
	    "class", cls, &s->c[METRICS_MSG_REFUSED_4XX], 2);
	page_labelled(t, "mta_transactions_total",
	    "SMTP transactions (from MAIL) by result.", "result", res,
	    &s->c[METRICS_TX_ACCEPTED], 3);
	page_counter(t, "mta_received_bytes_total",
	    "Bytes read from inbound connections (after TLS).",
	    s->c[METRICS_RECEIVED_BYTES]);
}

static void
page_hist(
    struct metrics_text *t, const struct metrics_sums *s, enum metrics_hist h)
{
	const struct metrics_hist_def *d = metrics_hist_def(h);

	metrics_text_family(t, d->name, "histogram", d->help);
	metrics_text_hist(t, d->name, NULL, 0, d->bounds, d->nbounds, s->h[h].b,
	    s->h[h].sum, d->scale);
}

static void
page_queue(struct metrics_text *t, const struct metrics_sched *q)
{
	uint64_t now = clock_wall_ms();

	metrics_text_family(t, "mta_queue_messages", "gauge",
	    "Messages in the queue with recipients pending, by state.");
	for (unsigned i = 0; q && i < METRICS_QSTATES; i++) {
		struct metrics_label l = L("state", metrics_qstate_name(i));

		metrics_text_u64(t, "mta_queue_messages", &l, 1, q->msgs[i]);
	}
	metrics_text_family(t, "mta_queue_recipients", "gauge",
	    "Recipients pending in the queue, by state.");
	for (unsigned i = 0; q && i < METRICS_QSTATES; i++) {
		struct metrics_label l = L("state", metrics_qstate_name(i));

		metrics_text_u64(t, "mta_queue_recipients", &l, 1, q->rcpts[i]);
	}
	metrics_text_family(t, "mta_queue_oldest_age_seconds", "gauge",
	    "Age of the oldest message in the queue (0: empty).");
	metrics_text_f64(t, "mta_queue_oldest_age_seconds", NULL, 0,
	    q && q->oldest_ms && q->oldest_ms < now
	        ? (double)(now - q->oldest_ms) / 1000
	        : 0);
	metrics_text_family(t, "mta_destinations", "gauge",
	    "Destinations the scheduler knows, by whether they are shown by "
	    "name or summed in destination=\"other\".");
	metrics_text_u64(
	    t, "mta_destinations", &L("shown", "named"), 1, q ? q->ndests : 0);
	metrics_text_u64(
	    t, "mta_destinations", &L("shown", "other"), 1, q ? q->nother : 0);
}

static void
page_delivery(struct metrics_text *t, const struct metrics_sums *s)
{
	static const char *const out[] = {"delivered", "deferred", "failed"};

	page_labelled(t, "mta_deliveries_total",
	    "Recipients whose delivery attempt ended, by outcome (failed: "
	    "permanent or expired).",
	    "outcome", out, &s->c[METRICS_DELIVERED], 3);
	page_hist(t, s, METRICS_H_DELIVERY_SECONDS);
}

/* One gauge per destination (named, then other). */
static void
page_dest_gauge(struct metrics_text *t, const struct metrics_sched *q,
    const char *name, const char *help, int what)
{
	metrics_text_family(t, name, "gauge", help);
	for (size_t i = 0; q && i <= q->ndests; i++) {
		const struct metrics_dest *d =
		    i < q->ndests ? &q->dests[i] : &q->other;
		struct metrics_label l = L("destination", d->domain);
		uint64_t v = what == 0   ? d->queued
		             : what == 1 ? d->connections
		                         : d->suspended;

		metrics_text_u64(t, name, &l, 1, v);
	}
}

static void
page_dest_counts(struct metrics_text *t, const struct metrics_sched *q)
{
	static const char *const out[] = {"delivered", "deferred", "failed"};

	metrics_text_family(t, "mta_destination_deliveries_total", "counter",
	    "Recipients per destination by outcome, since start.");
	for (size_t i = 0; q && i <= q->ndests; i++) {
		const struct metrics_dest *d =
		    i < q->ndests ? &q->dests[i] : &q->other;
		const uint64_t v[] = {d->delivered, d->deferred, d->failed};

		for (size_t k = 0; k < 3; k++) {
			struct metrics_label l[2] = {
			    L("destination", d->domain), L("outcome", out[k])};

			metrics_text_u64(
			    t, "mta_destination_deliveries_total", l, 2, v[k]);
		}
	}
	/* only the classes seen: most destinations defer for one reason */
	metrics_text_family(t, "mta_destination_deferrals_total", "counter",
	    "Deferred recipients per destination by reason class, since "
	    "start.");
	for (size_t i = 0; q && i <= q->ndests; i++) {
		const struct metrics_dest *d =
		    i < q->ndests ? &q->dests[i] : &q->other;

		for (size_t r = 0; r < METRICS_REASONS; r++) {
			struct metrics_label l[2] = {
			    L("destination", d->domain),
			    L("reason", metrics_reason_name(r))};

			if (d->reasons[r] != 0)
				metrics_text_u64(t,
				    "mta_destination_deferrals_total", l, 2,
				    d->reasons[r]);
		}
	}
}

static void
page_dests(struct metrics_text *t, const struct metrics_sched *q)
{
	page_dest_gauge(t, q, "mta_destination_queued",
	    "Recipients queued per destination (the top N by this, then "
	    "other).",
	    0);
	page_dest_gauge(t, q, "mta_destination_connections",
	    "Deliveries under way per destination.", 1);
	page_dest_counts(t, q);
	page_dest_gauge(t, q, "mta_destination_suspended",
	    "1 while the destination rests after a failure (other: how many "
	    "of the rest do).",
	    2);
}

static void
page_tls(struct metrics_text *t, const struct metrics_sums *s)
{
	static const char *const dir[] = {"in", "out"};
	static const char *const ver[] = {"no", "yes"};

	metrics_text_family(t, "mta_tls_handshakes_total", "counter",
	    "TLS handshakes completed, by direction, protocol version and "
	    "whether the peer's certificate was verified.");
	for (unsigned d = 0; d < 2; d++)
		for (unsigned v = 0; v < METRICS_TLS_VERSIONS; v++)
			for (unsigned k = 0; k < 2; k++) {
				struct metrics_label l[3] = {
				    L("direction", dir[d]),
				    L("version", metrics_tls_version_name(v)),
				    L("verified", ver[k])};

				metrics_text_u64(t, "mta_tls_handshakes_total",
				    l, 3, s->tls[d][v][k]);
			}
}

static void
page_misc(struct metrics_text *t, const struct metrics_sums *s)
{
	static const char *const auth[] = {"success", "failure"};
	static const char *const alg[] = {"rsa-sha256", "ed25519-sha256"};
	static const char *const why[] = {"from", "sign_failed"};

	page_counter(t, "mta_dns_queries_total",
	    "DNS queries sent to the servers (cache misses).",
	    s->c[METRICS_DNS_QUERIES]);
	page_counter(t, "mta_dns_cache_hits_total",
	    "DNS lookups answered from the cache.",
	    s->c[METRICS_DNS_CACHE_HITS]);
	page_counter(t, "mta_dns_failures_total",
	    "Destination lookups that ended without an address (temporary "
	    "or permanent).",
	    s->c[METRICS_DNS_FAILURES]);
	page_tls(t, s);
	page_labelled(t, "mta_auth_total", "SMTP AUTH attempts by result.",
	    "result", auth, &s->c[METRICS_AUTH_SUCCESS], 2);
	page_labelled(t, "mta_dkim_signed_total",
	    "DKIM signatures added, by algorithm.", "algorithm", alg,
	    &s->c[METRICS_DKIM_SIGNED_RSA], 2);
	page_labelled(t, "mta_dkim_unsigned_total",
	    "Messages left unsigned although [dkim] keys exist, by reason "
	    "(from: no usable From domain).",
	    "reason", why, &s->c[METRICS_DKIM_UNSIGNED_FROM], 2);
}

int
metrics_page(struct buf *out)
{
	struct metrics_sums *s = malloc(sizeof(*s));
	struct metrics_sched *q = metrics_sched_get();
	struct metrics_text t;

	if (s == NULL) {
		metrics_sched_put(q);
		return -ENOMEM;
	}
	metrics_sum(s);
	metrics_text_init(&t, out);
	page_connections(&t, s);
	page_receive(&t, s);
	page_hist(&t, s, METRICS_H_COMMIT_BATCH);
	page_hist(&t, s, METRICS_H_COMMIT_SECONDS);
	page_queue(&t, q);
	page_delivery(&t, s);
	page_dests(&t, q);
	page_misc(&t, s);
	metrics_sched_put(q);
	free(s);
	return metrics_text_err(&t);
}
