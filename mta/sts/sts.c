/* SPDX-License-Identifier: ISC */
/*
 * sts.c - the MTA-STS policy thread: requests, the policies in memory,
 * and each refresh (TXT record, address of mta-sts.DOMAIN, HTTPS fetch,
 * parse, store). See sts.h for the design.
 *
 * Thread: sts_new/sts_free on the caller's (startup, shutdown); the rest
 * on the policy thread, which alone touches the entries, the LMDB cache
 * and the curl handles. It waits in curl_multi_poll() on curl's sockets
 * and its chan's eventfd together, so a fetch that hangs holds only the
 * requests for its own domain, and only until its timeout.
 */
#include "sts/sts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/dest_policy.h"
#include "dns/dns.h"
#include "sts/sts_cache.h"
#include "sts/sts_fetch.h"

#define STS_MSG_STOP    0x55ff
#define STS_MSG_QUIESCE 0x55fe
#define STS_BUCKETS     1024
#define STS_TXT_MAX     4096  /* bytes of _mta-sts TXT records kept */
#define STS_ENTRIES_MAX 65536 /* domains in memory (sts.mdb keeps more) */

struct sts_refresh;

/* What the thread knows of one domain. */
struct sts_entry {
	struct sts_entry *next; /* bucket chain */
	char domain[STS_NAME_MAX];
	bool have;              /* pol and id are a policy (maybe expired) */
	struct sts_policy *pol; /* set when have: most domains have none */
	char id[STS_ID_MAX];
	uint64_t fetched;   /* unix s */
	uint64_t checked;   /* mono ms of the last TXT check; 0: never */
	uint64_t neg_until; /* mono ms: no policy until then */
	char failure[32];   /* of the last refresh */
	char reason[200];
	struct sts_req *waiters; /* linked by msg.next */
	struct sts_refresh *busy;
};

struct sts_refresh {
	struct sts *t;
	struct sts_entry *e;
	struct dns_txt_req txt;
	struct dns_req *host;
	struct sts_fetch fetch;
	char id[STS_ID_MAX]; /* the TXT's */
	bool in_multi;
	struct sts_refresh *next; /* the thread's list */
};

struct sts {
	struct sts_settings set; /* strings point at the copies below */
	char dir[4096], ca_file[4096], ca_path[4096];
	struct dns *dns;
	struct sts_cache *cache;
	struct chan *in;
	pthread_t tid;
	bool started;
	CURLM *multi;
	bool quiesced, stopping; /* policy thread */
	unsigned ndns;           /* requests with the resolver */
	size_t nentries;
	struct sts_refresh *refreshes;
	struct sts_entry *tab[STS_BUCKETS];
	struct chan_msg stop, quiesce;
};

static void refresh_end(struct sts_refresh *r, const char *failure,
    const char *reason, bool fetched);

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static bool
entry_valid(const struct sts_entry *e)
{
	return e->have && now_s() < e->fetched + e->pol->max_age;
}

/* The entry's answer to req, sent; e NULL: the stage is stopping. */
static void
answer(struct sts_req *req, const struct sts_entry *e, bool cached)
{
	req->stopping = e == NULL;
	req->have =
	    e != NULL && entry_valid(e) && e->pol->mode != STS_MODE_NONE;
	if (req->have) {
		req->pol = *e->pol;
		str_copy(req->id, sizeof(req->id), e->id);
		req->expires = e->fetched + e->pol->max_age;
	}
	req->cached = cached;
	str_copy(req->failure, sizeof(req->failure), e ? e->failure : "");
	str_copy(
	    req->reason, sizeof(req->reason), e ? e->reason : "shutting down");
	chan_send(req->reply, &req->msg);
}

/* A cached record becomes the entry's policy, if it still parses. */
static void
entry_load(struct sts *t, struct sts_entry *e)
{
	struct sts_cached c = {0};
	struct sts_policy p;
	char err[128];

	buf_init(&c.text, STS_POLICY_MAX);
	if (sts_cache_get(t->cache, e->domain, &c) == 0 &&
	    sts_policy_parse((const char *)buf_peek(&c.text),
	        buf_avail(&c.text), &p, err, sizeof(err)) == 0) {
		e->pol = (struct sts_policy *)(void *)xmemdup(&p, sizeof(p));
		e->have = true;
		e->fetched = c.fetched;
		str_copy(e->id, sizeof(e->id), c.id);
	}
	buf_fini(&c.text);
}

/* Memory is full: forget every domain not in use (a policy is still
 * in sts.mdb, a domain without one is asked again). Rare: one sweep
 * makes room for many. */
static void
entries_sweep(struct sts *t)
{
	for (size_t b = 0; b < STS_BUCKETS; b++)
		for (struct sts_entry **pp = &t->tab[b], *e; (e = *pp);) {
			if (e->busy != NULL || e->waiters != NULL) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e->pol);
			free(e);
			t->nentries--;
		}
}

static struct sts_entry *
entry_get(struct sts *t, const char *domain)
{
	size_t b = str_hash(domain) % STS_BUCKETS;
	struct sts_entry *e;

	for (e = t->tab[b]; e != NULL; e = e->next)
		if (strcmp(e->domain, domain) == 0)
			return e;
	if (t->nentries >= STS_ENTRIES_MAX)
		entries_sweep(t);
	t->nentries++;
	e = xcalloc(1, sizeof(*e));
	str_copy(e->domain, sizeof(e->domain), domain);
	entry_load(t, e);
	e->next = t->tab[b];
	t->tab[b] = e;
	return e;
}

static void
refresh_start(struct sts *t, struct sts_entry *e)
{
	struct sts_refresh *r = xcalloc(1, sizeof(*r));

	r->t = t;
	r->e = e;
	e->busy = r;
	r->next = t->refreshes;
	t->refreshes = r;
	buf_init(&r->txt.txt, STS_TXT_MAX);
	r->txt.reply = t->in;
	r->txt.arg = r;
	str_fmt(r->txt.name, sizeof(r->txt.name), "_mta-sts.%s", e->domain);
	t->ndns++;
	dns_resolve_txt(t->dns, &r->txt);
}

static bool
refresh_due(const struct sts *t, const struct sts_entry *e)
{
	uint64_t now = clock_mono_ms();

	if (e->busy != NULL)
		return false;
	return e->checked == 0 || now - e->checked >= t->set.recheck ||
	       now_s() >= e->fetched + e->pol->max_age / 2;
}

static void
on_lookup(struct sts *t, struct sts_req *req)
{
	char name[STS_NAME_MAX];
	struct sts_entry *e;

	str_copy(name, sizeof(name), req->domain);
	str_lower(name);
	if (t->quiesced) {
		answer(req, NULL, false);
		return;
	}
	e = entry_get(t, name);
	if (entry_valid(e)) {
		answer(req, e, true);
		if (refresh_due(t, e))
			refresh_start(t, e);
		return;
	}
	if (e->checked != 0 && clock_mono_ms() < e->neg_until) {
		answer(req, e, true);
		return;
	}
	req->msg.next = (struct chan_msg *)e->waiters;
	e->waiters = req;
	if (e->busy == NULL)
		refresh_start(t, e);
}

/* The one v=STSv1 record's id, or false: no policy (RFC 8461 3.1). */
static bool
txt_id(const struct dns_txt_req *q, char *id, size_t idlen)
{
	const char *p = (const char *)buf_peek(&q->txt);
	size_t left = buf_avail(&q->txt);
	int found = 0, bad = 0;

	for (int i = 0; i < q->nrecords && left > 0; i++) {
		size_t n = strnlen(p, left);
		int rc = sts_txt_parse(p, n, id, idlen);

		found += rc != -ENOENT;
		bad += rc == -EINVAL;
		p += n + 1;
		left -= n < left ? n + 1 : left;
	}
	return found == 1 && bad == 0;
}

static void
on_txt(struct sts *t, struct sts_refresh *r)
{
	struct sts_entry *e = r->e;

	t->ndns--;
	if (t->stopping || t->quiesced) {
		refresh_end(r, "", "shutting down", false);
		return;
	}
	if (r->txt.status == DNS_TEMPFAIL) {
		refresh_end(r, "", r->txt.reason, false);
		return;
	}
	e->checked = clock_mono_ms();
	if (r->txt.status != DNS_OK || !txt_id(&r->txt, r->id, sizeof(r->id))) {
		/* no (single, valid) record: no policy, but a cached one
		 * stays until it expires */
		refresh_end(r, "", "", false);
		return;
	}
	if (entry_valid(e) && strcmp(r->id, e->id) == 0 &&
	    now_s() < e->fetched + e->pol->max_age / 2) {
		refresh_end(r, "", "", false);
		return;
	}
	r->host = xcalloc(1, sizeof(*r->host));
	r->host->reply = t->in;
	r->host->arg = r;
	str_fmt(
	    r->host->domain, sizeof(r->host->domain), "mta-sts.%s", e->domain);
	t->ndns++;
	dns_resolve_host(t->dns, r->host);
}

/* The addresses of the policy host the destination policy allows, as
 * CURLOPT_RESOLVE wants them; false when none is. */
static bool
host_addrs(struct sts *t, const struct dns_req *q, char *out, size_t len)
{
	const struct dest_policy p = {
	    .allow_private = t->set.allow_private,
	    .allow_loopback = t->set.allow_loopback,
	    .self = t->set.self,
	};
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < q->ntargets; i++)
		for (size_t j = 0; j < q->targets[i].naddrs; j++) {
			const struct sockaddr_storage *ss =
			    &q->targets[i].addrs[j];
			char ip[INET6_ADDRSTRLEN];
			enum dest_addr_class cls;
			bool v6 = ss->ss_family == AF_INET6;
			const void *a =
			    v6 ? (const void *)&(
			             (const struct sockaddr_in6 *)ss)
			             ->sin6_addr
			       : (const void *)&((const struct sockaddr_in *)ss)
			             ->sin_addr;

			if (dest_policy_check(&p, (const struct sockaddr *)ss,
			        &cls) != DEST_OK ||
			    inet_ntop(ss->ss_family, a, ip, sizeof(ip)) ==
			        NULL ||
			    used >= len)
				continue;
			used += (size_t)snprintf(out + used,
			    used < len ? len - used : 0, "%s%s%s%s",
			    used ? "," : "", v6 ? "[" : "", ip, v6 ? "]" : "");
		}
	return used > 0 && used < len;
}

static void
on_host(struct sts *t, struct sts_refresh *r)
{
	char addrs[DNS_MAX_TARGETS * DNS_MAX_ADDRS * 50], why[300];

	t->ndns--;
	if (t->stopping || t->quiesced) {
		refresh_end(r, "", "shutting down", false);
		return;
	}
	if (r->host->status != DNS_OK) {
		str_fmt(why, sizeof(why), "%s: %s", r->host->domain,
		    r->host->reason);
		refresh_end(r, "sts-policy-fetch-error", why, false);
		return;
	}
	if (!host_addrs(t, r->host, addrs, sizeof(addrs))) {
		str_fmt(why, sizeof(why),
		    "%s: no address the destination policy allows",
		    r->host->domain);
		refresh_end(r, "sts-policy-fetch-error", why, false);
		return;
	}
	if (sts_fetch_init(&r->fetch, r->e->domain, addrs, &t->set) < 0 ||
	    curl_multi_add_handle(t->multi, r->fetch.easy) != CURLM_OK) {
		refresh_end(
		    r, "sts-policy-fetch-error", "cannot start a fetch", false);
		return;
	}
	r->in_multi = true;
}

/* A good fetch: the entry's new policy, in memory and on disk. */
static void
fetch_store(struct sts *t, struct sts_refresh *r, const struct sts_policy *p)
{
	struct sts_entry *e = r->e;
	struct sts_cached c = {.fetched = now_s()};
	int rc;

	e->have = true;
	if (e->pol == NULL)
		e->pol = xmalloc(sizeof(*e->pol));
	*e->pol = *p;
	e->fetched = c.fetched;
	str_copy(e->id, sizeof(e->id), r->id);
	str_copy(c.id, sizeof(c.id), r->id);
	c.text = r->fetch.body;
	if ((rc = sts_cache_put(t->cache, e->domain, &c)) < 0)
		log_warnx("sts: cannot cache the policy of %s: %s", e->domain,
		    strerror(-rc));
	log_event("event=sts-fetched domain=%s mode=%s max_age=%" PRIu32
	          " id=%s mx=%zu",
	    e->domain, sts_mode_name(p->mode), p->max_age, e->id, p->nmx);
}

static void
on_fetched(struct sts *t, struct sts_refresh *r, CURLcode rc)
{
	const char *failure;
	char why[400], err[128];
	struct sts_policy p;

	curl_multi_remove_handle(t->multi, r->fetch.easy);
	r->in_multi = false;
	if (sts_fetch_result(&r->fetch, rc, &failure, why, sizeof(why)) < 0) {
		refresh_end(r, failure, why, false);
		return;
	}
	if (sts_policy_parse((const char *)buf_peek(&r->fetch.body),
	        buf_avail(&r->fetch.body), &p, err, sizeof(err)) < 0) {
		str_fmt(why, sizeof(why), "%s: %s", r->fetch.url, err);
		refresh_end(r, "sts-policy-invalid", why, false);
		return;
	}
	fetch_store(t, r, &p);
	refresh_end(r, "", "", true);
}

static void
refresh_end(struct sts_refresh *r, const char *failure, const char *reason,
    bool fetched)
{
	struct sts *t = r->t;
	struct sts_entry *e = r->e;
	struct sts_refresh **pp;
	struct sts_req *q, *next;

	if (failure[0] != '\0' || reason[0] != '\0') {
		char quoted[sizeof(e->reason) * 2];

		log_event("event=sts-refresh-failed domain=%s result=%s "
		          "reason=%s%s",
		    e->domain, failure[0] ? failure : "none",
		    log_quote(quoted, sizeof(quoted), reason, strlen(reason)),
		    entry_valid(e) ? " note=\"the cached policy stays\"" : "");
	}
	str_copy(e->failure, sizeof(e->failure), failure);
	str_copy(e->reason, sizeof(e->reason), reason);
	if (!entry_valid(e))
		e->neg_until = clock_mono_ms() + (uint64_t)STS_NEG_S * 1000;
	if (e->checked == 0)
		e->checked = clock_mono_ms(); /* tried: do not try at once */
	for (q = e->waiters; q != NULL; q = next) {
		next = (struct sts_req *)q->msg.next;
		answer(q, t->quiesced ? NULL : e, !fetched && entry_valid(e));
	}
	e->waiters = NULL;
	e->busy = NULL;
	for (pp = &t->refreshes; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	if (r->in_multi)
		curl_multi_remove_handle(t->multi, r->fetch.easy);
	sts_fetch_fini(&r->fetch);
	buf_fini(&r->txt.txt);
	free(r->host);
	free(r);
}

/* Quiesce: every waiter is answered now, without a policy. */
static void
on_quiesce(struct sts *t)
{
	t->quiesced = true;
	for (size_t b = 0; b < STS_BUCKETS; b++)
		for (struct sts_entry *e = t->tab[b]; e != NULL; e = e->next) {
			struct sts_req *q, *next;

			for (q = e->waiters; q != NULL; q = next) {
				next = (struct sts_req *)q->msg.next;
				answer(q, NULL, false);
			}
			e->waiters = NULL;
		}
	/* fetches end now; DNS answers end theirs when they come */
	for (struct sts_refresh *r = t->refreshes, *n; r != NULL; r = n) {
		n = r->next;
		if (r->in_multi)
			refresh_end(r, "", "shutting down", false);
	}
}

static void
on_chan(struct sts *t)
{
	struct chan_msg *m, *n;

	chan_ack(t->in);
	for (m = chan_take(t->in); m != NULL; m = n) {
		n = m->next;
		switch (m->type) {
		case STS_MSG_LOOKUP:
			on_lookup(t, (struct sts_req *)m);
			break;
		case DNS_MSG_TXT:
			on_txt(t, ((struct dns_txt_req *)m)->arg);
			break;
		case DNS_MSG_HOST:
			on_host(t, ((struct dns_req *)m)->arg);
			break;
		case STS_MSG_QUIESCE:
			on_quiesce(t);
			break;
		case STS_MSG_STOP:
			on_quiesce(t);
			t->stopping = true;
			break;
		default:
			MTA_ASSERT(!"unknown message for the policy thread");
		}
	}
}

static void
on_curl(struct sts *t)
{
	CURLMsg *cm;
	int left, running;

	curl_multi_perform(t->multi, &running);
	while ((cm = curl_multi_info_read(t->multi, &left)) != NULL) {
		struct sts_fetch *f = NULL;

		if (cm->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, &f);
		for (struct sts_refresh *r = t->refreshes; r; r = r->next)
			if (&r->fetch == f) {
				on_fetched(t, r, cm->data.result);
				break;
			}
	}
}

static void *
sts_thread(void *arg)
{
	struct sts *t = arg;

	while (!t->stopping || t->ndns > 0) {
		struct curl_waitfd w = {
		    .fd = chan_fd(t->in), .events = CURL_WAIT_POLLIN};

		if (curl_multi_poll(t->multi, &w, 1, 1000, NULL) != CURLM_OK)
			fatalx("sts: curl_multi_poll failed");
		if (w.revents != 0)
			on_chan(t);
		on_curl(t);
	}
	return NULL;
}

struct sts *
sts_new(const struct sts_settings *s, struct dns *dns, char *err, size_t errlen)
{
	struct sts *t = xcalloc(1, sizeof(*t));

	t->set = *s;
	str_copy(t->dir, sizeof(t->dir), s->dir);
	t->set.dir = t->dir;
	if (s->ca_file != NULL && s->ca_file[0] != '\0') {
		str_copy(t->ca_file, sizeof(t->ca_file), s->ca_file);
		t->set.ca_file = t->ca_file;
	} else {
		t->set.ca_file = NULL;
	}
	if (s->ca_path != NULL && s->ca_path[0] != '\0') {
		str_copy(t->ca_path, sizeof(t->ca_path), s->ca_path);
		t->set.ca_path = t->ca_path;
	} else {
		t->set.ca_path = NULL;
	}
	t->dns = dns;
	if (sts_cache_open(t->dir, &t->cache, err, errlen) < 0) {
		free(t);
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (t->multi = curl_multi_init()) == NULL) {
		str_copy(err, errlen, "sts: cannot initialise libcurl");
		sts_cache_close(t->cache);
		free(t);
		return NULL;
	}
	t->in = chan_new();
	t->stop.type = STS_MSG_STOP;
	t->quiesce.type = STS_MSG_QUIESCE;
	return t;
}

int
sts_start(struct sts *t)
{
	int rc = pthread_create(&t->tid, NULL, sts_thread, t);

	if (rc != 0)
		return -rc;
	t->started = true;
	return 0;
}

void
sts_quiesce(struct sts *t)
{
	if (t != NULL && t->started)
		chan_send(t->in, &t->quiesce);
}

void
sts_free(struct sts *t)
{
	if (t == NULL)
		return;
	if (t->started) {
		chan_send(t->in, &t->stop);
		pthread_join(t->tid, NULL);
	}
	/* requests that came after the stop (or without a thread) */
	for (struct chan_msg *m = chan_take(t->in), *n; m != NULL; m = n) {
		n = m->next;
		if (m->type == STS_MSG_LOOKUP)
			answer((struct sts_req *)m, NULL, false);
	}
	while (t->refreshes != NULL)
		refresh_end(t->refreshes, "", "shutting down", false);
	for (size_t b = 0; b < STS_BUCKETS; b++)
		while (t->tab[b] != NULL) {
			struct sts_entry *e = t->tab[b];

			t->tab[b] = e->next;
			free(e->pol);
			free(e);
		}
	curl_multi_cleanup(t->multi);
	curl_global_cleanup();
	chan_free(t->in);
	sts_cache_close(t->cache);
	free(t);
}

void
sts_lookup(struct sts *t, struct sts_req *req)
{
	MTA_ASSERT(req->reply != NULL);
	req->msg.type = STS_MSG_LOOKUP;
	req->have = false;
	req->failure[0] = req->reason[0] = '\0';
	chan_send(t->in, &req->msg);
}
