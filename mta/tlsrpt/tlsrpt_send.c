/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_send.c - one period's report of one domain (tlsrpt.h): its
 * `_smtp._tls` TXT record through the resolver thread, the JSON
 * gzipped, and each rua: mailto: a mail submitted to the relay's own
 * queue, https: a POST on the thread's curl multi handle. When every
 * rua has answered, what was sent is written to the store. Thread: the
 * TLS-RPT thread (tlsrpt.c calls here).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/dest_addr.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "net/https.h"
#include "queue/queue.h"
#include "tlsrpt/tlsrpt_int.h"

#define TXT_MAX         4096
#define POST_TIMEOUT_MS 60000L

static struct rjob *
job_by_seq(struct tlsrpt *t, uint64_t seq)
{
	for (struct rjob *j = t->jobs; j != NULL; j = j->next)
		if (j->seq == seq)
			return j;
	return NULL;
}

bool
tlsrpt_send_busy(const struct tlsrpt *t, uint64_t start, const char *domain)
{
	for (const struct rjob *j = t->jobs; j != NULL; j = j->next)
		if (j->e.agg.start == start &&
		    strcmp(j->e.agg.domain, domain) == 0)
			return true;
	return false;
}

void
tlsrpt_send_start(struct tlsrpt *t, const struct tlsrpt_entry *e)
{
	struct rjob *j = xcalloc(1, sizeof(*j));
	struct dns_txt_req *q = xcalloc(1, sizeof(*q));

	j->t = t;
	j->seq = ++t->seq;
	j->e = *e;
	buf_init(&j->gz, TLSRPT_REPORT_MAX);
	j->next = t->jobs;
	t->jobs = j;
	t->njobs++;
	q->reply = t->chan;
	q->arg = j;
	q->msg.reqid = j->seq;
	str_fmt(q->name, sizeof(q->name), "_smtp._tls.%s", e->agg.domain);
	buf_init(&q->txt, TXT_MAX);
	j->dns = q;
	t->pending++;
	dns_resolve_txt(t->dns, q);
}

/* Every rua has answered: write what was sent, forget the job. */
static void
job_end(struct rjob *j)
{
	struct tlsrpt *t = j->t;
	struct tlsrpt_entry *e = &j->e;
	uint32_t all = j->rua.n ? (1u << j->rua.n) - 1 : 0;
	int rc;

	e->sent = !j->retry && (e->done & all) == all;
	if (!e->sent)
		e->next = clock_wall_ms() / 1000 + t->interval;
	if ((rc = tlsrpt_store_put(t->store, &e, 1)) != 0)
		log_warnx("event=tlsrpt-store-failed domain=%s error=\"%s\"",
		    e->agg.domain, strerror(-rc));
	for (struct rjob **p = &t->jobs; *p != NULL; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	t->njobs--;
	buf_fini(&j->gz);
	free(j);
}

static void
job_sent(struct rjob *j, unsigned idx, bool ok, const char *why)
{
	char q[TLSRPT_URI_MAX + 16], w[400];
	const char *u = j->rua.uri[idx];

	log_event("event=tlsrpt-%s domain=%s rua=%s%s%s",
	    ok ? "sent" : "send-failed", j->e.agg.domain,
	    log_quote(q, sizeof(q), u, strlen(u)), why ? " reason=" : "",
	    why ? log_quote(w, sizeof(w), why, strlen(why)) : "");
	if (ok)
		j->e.done |= 1u << idx;
	else
		j->retry = true;
	if (--j->out == 0)
		job_end(j);
}

/* The report mail to a mailto: rua, into the queue. */
static void
send_mail(struct rjob *j, unsigned idx, const struct tlsrpt_who *w)
{
	struct tlsrpt *t = j->t;
	struct queue_submit *s = xcalloc(1, sizeof(*s));
	const char *to = j->rua.uri[idx] + 7; /* after "mailto:" */
	char msgid[TLSRPT_NAME_MAX + 64], why[32], label[DKIM_LABEL_MAX];
	uint64_t now = clock_wall_ms();
	struct tlsrpt_mail m = {t->from, to, msgid, now, t->interval,
	    buf_peek(&j->gz), buf_avail(&j->gz)};

	s->id = queue_id_new(t->q);
	str_fmt(msgid, sizeof(msgid), "tlsrpt.%016" PRIx64 "@%s", s->id,
	    t->hostname);
	s->msg.type = QUEUE_REQ_SUBMIT;
	s->msg.reqid = (j->seq << 8) | idx;
	s->reply = t->chan;
	s->from = xstrdup(t->from);
	s->rcpts = xcalloc(1, sizeof(*s->rcpts));
	s->rcpts[0] = xstrdup(to);
	s->nrcpts = 1;
	s->client = xstrdup("");
	s->helo = xstrdup(t->hostname);
	s->received_ms = now;
	buf_init(&s->body, TLSRPT_MAIL_MAX);
	if (tlsrpt_mail(&j->e.agg, w, &m, &s->body) != 0) {
		queue_submit_free(s);
		job_sent(j, idx, false, "report too large");
		return;
	}
	if (t->dkim != NULL && dkim_sign_message(t->dkim, &s->body, now / 1000,
	                           label, sizeof(label), why, sizeof(why)) == 1)
		log_event("event=dkim-signed id=%016" PRIx64 " dkim=%s", s->id,
		    label);
	t->pending++;
	queue_submit(t->q, s);
}

/*
 * The socket for a POST's connection, when delivery's destination policy
 * allows its address: an rua names any host, and curl resolves it itself,
 * so this is where a report is kept from internal addresses (as the
 * MTA-STS fetch is, by the addresses it hands curl).
 */
static curl_socket_t
post_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	const struct tlsrpt *t = arg;
	enum dest_addr_class cls;

	if (purpose != CURLSOCKTYPE_IPCXN ||
	    dest_policy_check(&t->dest, &a->addr, &cls) != DEST_OK) {
		log_event("event=tlsrpt-address-refused class=%s",
		    purpose == CURLSOCKTYPE_IPCXN ? dest_addr_class_name(cls)
		                                  : "not-ip");
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The report to an https: rua, as a POST. */
static void
send_post(struct rjob *j, unsigned idx)
{
	struct tlsrpt *t = j->t;
	struct rpost *p = xcalloc(1, sizeof(*p));
	CURL *e;

	p->job = j;
	p->idx = idx;
	p->hdr =
	    curl_slist_append(NULL, "Content-Type: application/tlsrpt+gzip");
	if (p->hdr == NULL || (p->easy = e = https_easy_new(j->rua.uri[idx],
	                           t->ca_file, t->ca_path)) == NULL) {
		curl_slist_free_all(p->hdr);
		free(p);
		job_sent(j, idx, false, "libcurl: out of memory");
		return;
	}
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, post_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, POST_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdr);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, buf_peek(&j->gz));
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)buf_avail(&j->gz));
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->err);
	curl_easy_setopt(e, CURLOPT_PRIVATE, p);
	p->next = t->posts;
	t->posts = p;
	curl_multi_add_handle(t->multi, e);
}

/* The TXT answer: the report is built and sent to each rua not yet
 * sent to; no record, nothing to send (the period is done). */
static void
job_txt(struct rjob *j, struct dns_txt_req *q)
{
	struct tlsrpt *t = j->t;
	struct tlsrpt_who w = {t->org, t->contact, t->hostname};
	const char *p = (const char *)buf_peek(&q->txt);
	size_t n = buf_avail(&q->txt), len;
	struct buf json;
	bool found = false;

	for (; n > 0 && !found; p += len + 1, n -= len + 1) {
		len = strnlen(p, n);
		found = tlsrpt_txt_parse(p, len, &j->rua) == 0;
		if (len == n)
			break;
	}
	if (q->status == DNS_TEMPFAIL) {
		char why[DNS_REASON_MAX + 16];

		log_event("event=tlsrpt-lookup-failed domain=%s reason=%s",
		    j->e.agg.domain,
		    log_quote(why, sizeof(why), q->reason, strlen(q->reason)));
		j->retry = true;
		j->rua.n = 0;
		job_end(j);
		return;
	}
	if (!found) {
		log_event("event=tlsrpt-no-record domain=%s", j->e.agg.domain);
		j->rua.n = 0;
		job_end(j);
		return;
	}
	buf_init(&json, TLSRPT_REPORT_MAX);
	if (tlsrpt_json(&j->e.agg, t->interval, &w, &json) != 0 ||
	    tlsrpt_gzip(buf_peek(&json), buf_avail(&json), &j->gz) != 0) {
		log_warnx(
		    "event=tlsrpt-build-failed domain=%s", j->e.agg.domain);
		j->rua.n = 0;
		j->retry = true;
		buf_fini(&json);
		job_end(j);
		return;
	}
	buf_fini(&json);
	j->out = 1; /* held until every send is started */
	for (unsigned i = 0; i < j->rua.n; i++) {
		if (j->e.done & (1u << i))
			continue;
		j->out++;
		if (strncasecmp(j->rua.uri[i], "mailto:", 7) == 0)
			send_mail(j, i, &w);
		else
			send_post(j, i);
	}
	if (--j->out == 0)
		job_end(j);
}

void
tlsrpt_send_msg(struct tlsrpt *t, struct chan_msg *m)
{
	struct rjob *j;

	if (m->type == DNS_MSG_TXT) {
		struct dns_txt_req *q = (struct dns_txt_req *)(void *)m;

		t->pending--;
		j = q->arg;
		j->dns = NULL;
		job_txt(j, q);
		buf_fini(&q->txt);
		free(q);
	} else if (m->type == QUEUE_DONE_SUBMIT) {
		struct queue_submit *s = (struct queue_submit *)(void *)m;
		char id[QUEUE_ID_HEX + 1];

		t->pending--;
		queue_id_fmt(s->id, id);
		if ((j = job_by_seq(t, s->msg.reqid >> 8)) != NULL) {
			if (s->status == 0)
				log_event("event=tlsrpt-queued id=%s domain=%s",
				    id, j->e.agg.domain);
			job_sent(j, (unsigned)(s->msg.reqid & 0xff),
			    s->status == 0,
			    s->status ? strerror(-s->status) : NULL);
		}
		queue_submit_free(s);
	} else {
		log_warnx("event=tlsrpt-unexpected-message type=%u",
		    (unsigned)m->type);
		free(m);
	}
}

void
tlsrpt_send_posted(struct tlsrpt *t, CURL *easy, CURLcode rc)
{
	struct rpost *p = NULL;
	long code = 0;
	char why[CURL_ERROR_SIZE + 32];

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&p);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(t->multi, easy);
	for (struct rpost **q = &t->posts; *q != NULL; q = &(*q)->next)
		if (*q == p) {
			*q = p->next;
			break;
		}
	if (rc != CURLE_OK)
		str_fmt(why, sizeof(why), "%s",
		    p->err[0] ? p->err : curl_easy_strerror(rc));
	else if (code < 200 || code > 299)
		str_fmt(why, sizeof(why), "HTTP status %ld", code);
	job_sent(p->job, p->idx, rc == CURLE_OK && code >= 200 && code <= 299,
	    rc == CURLE_OK && code >= 200 && code <= 299 ? NULL : why);
	curl_easy_cleanup(easy);
	curl_slist_free_all(p->hdr);
	free(p);
}

void
tlsrpt_send_abort(struct tlsrpt *t)
{
	while (t->posts != NULL) {
		struct rpost *p = t->posts;

		t->posts = p->next;
		curl_multi_remove_handle(t->multi, p->easy);
		curl_easy_cleanup(p->easy);
		curl_slist_free_all(p->hdr);
		job_sent(p->job, p->idx, false, "shutting down");
		free(p);
	}
}
