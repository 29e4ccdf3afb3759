/* SPDX-License-Identifier: ISC */
/*
 * dns_ares.c - the resolver thread: the c-ares channel, its sockets and
 * timers, the cache, and the lookups that make up each request.
 *
 * Thread: dns_new() and dns_free() run on the caller's (startup and
 * shutdown) thread; everything else here runs on the resolver thread,
 * which alone touches the channel (c-ares 1.18 is not thread-safe) and
 * the cache. Requests arrive on r->in and go back on req->reply.
 *
 * DESIGN. One poll() loop waits on the request chan's eventfd and on the
 * sockets c-ares reports through ARES_OPT_SOCK_STATE_CB; its timeout is
 * ares_timeout(), so there is no fixed polling interval. Each request is
 * a job: an MX lookup, then A and AAAA lookups for each chosen host, all
 * in flight at once; the job answers when its last lookup lands. Each
 * lookup goes to the cache first; replies that say something definite
 * (records, NODATA, NXDOMAIN) are cached raw and parsed again on a hit,
 * failures are never cached. We use ares_query() for the raw reply and
 * parse it in dns_msg.c; with [dns] dnssec the query itself is ours too
 * (dns_query.c: AD and DO set), sent with ares_send(), and a host whose
 * MX and address replies carried AD gets a TLSA lookup (RFC 7672 2.2)
 * as one more lookup of its job. TCP fallback on truncation is c-ares's
 * default; we never set ARES_FLAG_IGNTC.
 *
 * Shutdown: dns_free() sends a stop message; the thread cancels every
 * query (each job then answers DNS_TEMPFAIL), answers whatever is still
 * queued the same way, and exits.
 */
#include "dns/dns.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ares.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "dns/dns_int.h"

#define DNS_MSG_STOP        0x44ff
#define DNS_CACHE_ENTRIES   10000
#define DNS_CACHE_BYTES     (8u << 20)
#define DNS_EDNS_SIZE       1232 /* DNS flag day 2020 */
#define DNS_DEFAULT_TIMEOUT 5000 /* ms per try */
#define DNS_DEFAULT_TRIES   2

struct dns_sock {
	int fd;
	short events; /* POLLIN, POLLOUT as c-ares asked */
};

struct dns {
	struct chan *in;         /* requests; consumed by the thread */
	ares_channel ch;         /* resolver thread once started */
	struct dns_cache *cache; /* resolver thread */
	pthread_t thread;
	bool started;
	bool stopping;          /* resolver thread */
	struct chan_msg stop;   /* sent once by dns_free() */
	struct dns_sock *socks; /* resolver thread: c-ares sockets */
	size_t nsocks, capsocks;
	struct pollfd *pfds; /* resolver thread: poll set scratch */
	size_t cappfds;
	uint64_t rng;  /* resolver thread: xorshift64* state */
	unsigned jobs; /* resolver thread: requests in flight */
	bool dnssec;   /* [dns] dnssec: raw queries with AD and DO */
};

struct dns_job {
	struct dns *r;
	struct dns_req *req;
	unsigned pending;        /* lookups in flight, +1 while starting */
	char name[DNS_NAME_MAX]; /* req->domain, normalised */
	struct dns_mx_plan plan;
};

/* One query in flight. */
struct dns_lookup {
	struct dns_job *job;
	size_t host; /* index in plan.hosts; SIZE_MAX: the MX */
	uint16_t type;
	char name[DNS_NAME_MAX];
};

#define DNS_HOST_MX SIZE_MAX

static void dns_lookup_start(
    struct dns_job *job, size_t host, uint16_t type, const char *name);

const char *
dns_status_str(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_NOTFOUND:
		return "notfound";
	case DNS_NULLMX:
		return "nullmx";
	case DNS_PERMFAIL:
		return "permfail";
	}
	return "unknown";
}

bool
dns_status_permanent(enum dns_status s)
{
	return s == DNS_NOTFOUND || s == DNS_NULLMX || s == DNS_PERMFAIL;
}

static uint32_t
dns_rng(void *arg)
{
	struct dns *r = arg;

	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return (uint32_t)((r->rng * 2685821657736338717ull) >> 32);
}

/*
 * Sockets.
 */

static void
dns_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns *r = arg;
	short ev = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
	size_t i;

	for (i = 0; i < r->nsocks; i++)
		if (r->socks[i].fd == fd)
			break;
	if (ev == 0) {
		if (i < r->nsocks)
			r->socks[i] = r->socks[--r->nsocks];
		return;
	}
	if (i == r->nsocks) {
		if (r->nsocks == r->capsocks) {
			r->capsocks = r->capsocks ? r->capsocks * 2 : 8;
			r->socks = xreallocarray(
			    r->socks, r->capsocks, sizeof(*r->socks));
		}
		r->socks[r->nsocks++].fd = fd;
	}
	r->socks[i].events = ev;
}

/*
 * Jobs.
 */

static void
dns_reply(struct dns_req *req)
{
	if (req->status != DNS_OK)
		metrics_inc(METRICS_DNS_FAILURES);
	chan_send(req->reply, &req->msg);
}

static void
dns_reply_status(struct dns_req *req, enum dns_status st, const char *why)
{
	req->status = st;
	req->ntargets = 0;
	str_copy(req->reason, sizeof(req->reason), why);
	dns_reply(req);
}

static void
dns_job_log(const struct dns_job *job)
{
	const struct dns_req *req = job->req;
	char q[DNS_NAME_MAX + 8], r[256];

	for (size_t i = 0; i < job->plan.nhosts; i++) {
		const struct dns_mx_host *h = &job->plan.hosts[i];

		if (h->literal && !job->plan.host && !job->plan.implicit)
			log_info("event=mx-literal domain=%s mx=%s "
			         "note=\"an IP address, not a name (RFC 5321 "
			         "5.1); used\"",
			    job->name, h->name);
		if (h->cname && !job->plan.host && !job->plan.implicit)
			log_info("event=mx-cname mx=%s domain=%s "
			         "note=\"a CNAME (RFC 2181 10.3); followed\"",
			    h->name, job->name);
	}
	if (log_debug_enabled())
		log_debug(
		    "event=dns-answer type=%s name=%s status=%s targets=%zu "
		    "reason=%s",
		    req->msg.type == DNS_MSG_MX ? "mx" : "host",
		    log_quote(q, sizeof(q), job->name, strlen(job->name)),
		    dns_status_str(req->status), req->ntargets,
		    log_quote(r, sizeof(r), req->reason, strlen(req->reason)));
}

static void
dns_job_put(struct dns_job *job)
{
	MTA_ASSERT(job->pending > 0);
	if (--job->pending > 0)
		return;
	dns_mx_finish(&job->plan, dns_rng, job->r, job->req);
	dns_job_log(job);
	dns_reply(job->req);
	job->r->jobs--;
	free(job);
}

/* The MX reply is in: plan the hosts, then look up their addresses. */
static void
dns_job_mx(struct dns_job *job, const struct dns_answer *ans)
{
	struct dns_mx_plan *plan = &job->plan;

	dns_mx_plan(plan, job->name, ans, dns_rng, job->r);
	if (plan->status != DNS_OK)
		return;
	for (size_t i = 0; i < plan->nhosts; i++) {
		if (plan->hosts[i].literal)
			continue;
		dns_lookup_start(job, i, DNS_T_A, plan->hosts[i].name);
		dns_lookup_start(job, i, DNS_T_AAAA, plan->hosts[i].name);
	}
}

/* Ask for the TLSA records of host at _PORT._tcp.base. */
static void
dns_tlsa_start(struct dns_job *job, size_t host, const char *base)
{
	char name[DNS_NAME_MAX];

	if (!str_fmt(name, sizeof(name), "_%u._tcp.%s",
	        (unsigned)job->req->tlsa_port, base) ||
	    strlen(name) > 253) {
		struct dns_answer ans;

		dns_answer_fail(&ans, DNS_TEMPFAIL, "TLSA name too long");
		(void)dns_mx_host_tlsa(&job->plan.hosts[host], &ans);
		return;
	}
	dns_lookup_start(job, host, DNS_T_TLSA, name);
}

/* Both address replies of a validated host are in: its TLSA records
 * (RFC 7672 2.2), when the request wants them. */
static void
dns_job_tlsa(struct dns_job *job, size_t host)
{
	if (!job->r->dnssec || job->req->tlsa_port == 0 ||
	    job->plan.hosts[host].answered != 2)
		return;
	/* RFC 7672 2.2: a failed (not insecure) address lookup under a
	 * validated MX must not downgrade the host to no DANE */
	if (dns_mx_host_addr_fail(&job->plan, host) ||
	    !dns_mx_host_secure(&job->plan, host))
		return;
	dns_tlsa_start(
	    job, host, dns_mx_host_tlsa_first(&job->plan.hosts[host]));
}

static void
dns_job_answer(struct dns_job *job, size_t host, uint16_t type,
    const struct dns_answer *ans)
{
	if (host == DNS_HOST_MX) {
		dns_job_mx(job, ans);
	} else if (type == DNS_T_TLSA) {
		/* RFC 7672 2.2.3: the expanded name first, then the MX name */
		if (dns_mx_host_tlsa(&job->plan.hosts[host], ans))
			dns_tlsa_start(job, host, job->plan.hosts[host].name);
	} else {
		dns_mx_host_add(&job->plan.hosts[host], type, ans);
		dns_job_tlsa(job, host);
	}
	dns_job_put(job);
}

/*
 * Lookups.
 */

static bool
dns_cacheable(const struct dns_answer *ans)
{
	return ans->status == DNS_OK || ans->status == DNS_NOTFOUND;
}

static void
dns_ares_answer(struct dns_answer *ans, int status, const uint8_t *abuf,
    int alen, const char *name, uint16_t type)
{
	switch (status) {
	case ARES_SUCCESS:
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
	case ARES_EFORMERR:
	case ARES_ESERVFAIL:
	case ARES_ENOTIMP:
	case ARES_EREFUSED:
		if (abuf != NULL && alen > 0) {
			/* The reply itself says what happened. */
			int rc =
			    dns_msg_parse(abuf, (size_t)alen, name, type, ans);

			if (rc < 0)
				log_warnx("dns: malformed reply for %s type %u",
				    name, type);
			return;
		}
		break;
	case ARES_EBADNAME:
		dns_answer_fail(ans, DNS_PERMFAIL, "invalid name");
		return;
	case ARES_ECONNREFUSED:
		/* What c-ares 1.18 reports once every server answered
		 * SERVFAIL or REFUSED (it moves on to the next server rather
		 * than hand us those replies), or could not be reached. */
		dns_answer_fail(ans, DNS_TEMPFAIL,
		    "no usable answer from any "
		    "DNS server (SERVFAIL, REFUSED or unreachable)");
		return;
	default:
		break;
	}
	/* c-ares gave up without a reply we can read: timeouts, every
	 * server refused or failed, cancelled at shutdown. */
	dns_answer_fail(ans, DNS_TEMPFAIL, ares_strerror(status));
}

static void
dns_ares_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup *lk = arg;
	struct dns_job *job = lk->job;
	struct dns *r = job->r;
	struct dns_answer *ans = xmalloc(sizeof(*ans));

	(void)timeouts;
	dns_ares_answer(ans, status, abuf, alen, lk->name, lk->type);
	if (dns_cacheable(ans))
		dns_cache_put(r->cache, lk->type, lk->name, abuf, (size_t)alen,
		    ans->ttl, clock_mono_ms());
	dns_job_answer(job, lk->host, lk->type, ans);
	free(ans);
	free(lk);
}

/* DNSSEC: the query with AD and DO, built here; c-ares sets its id. */
static void
dns_send_raw(struct dns *r, struct dns_lookup *lk)
{
	uint8_t q[DNS_QUERY_MAX];
	int n = dns_query_build(
	    q, sizeof(q), 0, lk->name, lk->type, DNS_EDNS_SIZE, true);

	if (n < 0) {
		/* names reach here normalised: never happens */
		dns_ares_cb(lk, ARES_EBADNAME, 0, NULL, 0);
		return;
	}
	ares_send(r->ch, q, n, dns_ares_cb, lk);
}

/* From the cache when it can, else a query; the answer arrives through
 * dns_job_answer(), possibly before this returns. */
static void
dns_lookup_start(
    struct dns_job *job, size_t host, uint16_t type, const char *name)
{
	struct dns *r = job->r;
	struct dns_lookup *lk;
	const void *data;
	size_t len;

	job->pending++;
	if (dns_cache_get(r->cache, type, name, clock_mono_ms(), &data, &len)) {
		struct dns_answer *ans = xmalloc(sizeof(*ans));

		metrics_inc(METRICS_DNS_CACHE_HITS);
		int rc = dns_msg_parse(data, len, name, type, ans);

		MTA_ASSERT(rc == 0); /* it parsed before it was stored */
		dns_job_answer(job, host, type, ans);
		free(ans);
		return;
	}
	if (r->stopping) {
		struct dns_answer ans;

		dns_answer_fail(&ans, DNS_TEMPFAIL, "resolver stopped");
		dns_job_answer(job, host, type, &ans);
		return;
	}
	lk = xcalloc(1, sizeof(*lk));
	lk->job = job;
	lk->host = host;
	lk->type = type;
	str_copy(lk->name, sizeof(lk->name), name);
	metrics_inc(METRICS_DNS_QUERIES);
	if (r->dnssec)
		dns_send_raw(r, lk);
	else
		ares_query(r->ch, name, DNS_C_IN, type, dns_ares_cb, lk);
}

/*
 * Requests.
 */

static void
dns_req_start(struct dns *r, struct dns_req *req)
{
	char name[DNS_NAME_MAX];
	struct dns_job *job;
	struct dns_addr a;
	bool literal;

	req->ntargets = 0;
	if (strnlen(req->domain, sizeof(req->domain)) == sizeof(req->domain)) {
		dns_reply_status(req, DNS_PERMFAIL, "domain name too long");
		return;
	}
	/* A domain literal ("[192.0.2.1]") for mail, or an IP for a host. */
	literal = (req->msg.type == DNS_MSG_HOST || req->domain[0] == '[') &&
	          dns_addr_parse(req->domain, &a);
	if (literal) {
		str_copy(name, sizeof(name), req->domain);
	} else if (!dns_name_norm(req->domain, name, sizeof(name))) {
		char q[DNS_NAME_MAX + 8], why[DNS_REASON_MAX];

		str_fmt(why, sizeof(why), "invalid domain name %s",
		    log_quote(q, sizeof(q), req->domain, strlen(req->domain)));
		dns_reply_status(req, DNS_PERMFAIL, why);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->r = r;
	job->req = req;
	job->pending = 1; /* ours, until every lookup is started */
	str_copy(job->name, sizeof(job->name), name);
	r->jobs++;
	if (literal) {
		dns_mx_plan_host(&job->plan, name);
	} else if (req->msg.type == DNS_MSG_HOST) {
		dns_mx_plan_host(&job->plan, name);
		dns_lookup_start(job, 0, DNS_T_A, name);
		dns_lookup_start(job, 0, DNS_T_AAAA, name);
	} else {
		dns_lookup_start(job, DNS_HOST_MX, DNS_T_MX, name);
	}
	dns_job_put(job);
}

static void
dns_txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_txt_req *req = arg;
	struct dns *r = req->txt_r;

	(void)timeouts;
	if (status == ARES_SUCCESS)
		status = dns_txt_records(abuf, alen, &req->txt, &req->nrecords);
	req->status = status == ARES_SUCCESS || status == ARES_ENODATA ? DNS_OK
	              : status == ARES_ENOTFOUND ? DNS_NOTFOUND
	                                         : DNS_TEMPFAIL;
	str_copy(req->reason, sizeof(req->reason), ares_strerror(status));
	r->jobs--;
	chan_send(req->reply, &req->msg);
}

/* A TXT request: one query, never cached here, answered from the
 * callback (at shutdown too: ares_cancel runs it). */
static void
dns_txt_start(struct dns *r, struct dns_txt_req *req)
{
	char name[DNS_NAME_MAX];

	if (r->stopping || !dns_name_norm(req->name, name, sizeof(name))) {
		req->status = r->stopping ? DNS_TEMPFAIL : DNS_PERMFAIL;
		str_copy(req->reason, sizeof(req->reason),
		    r->stopping ? "resolver stopped" : "invalid name");
		chan_send(req->reply, &req->msg);
		return;
	}
	req->txt_r = r;
	r->jobs++;
	ares_query(r->ch, name, DNS_C_IN, DNS_T_TXT, dns_txt_cb, req);
}

/* Returns false when told to stop. */
static bool
dns_take(struct dns *r)
{
	struct chan_msg *m, *next;
	bool stop = false;

	chan_ack(r->in);
	for (m = chan_take(r->in); m; m = next) {
		next = m->next;
		if (m->type == DNS_MSG_STOP) {
			stop = true;
			r->stopping = true;
		} else if (m->type == DNS_MSG_TXT) {
			dns_txt_start(r, (struct dns_txt_req *)m);
		} else if (r->stopping) {
			dns_reply_status((struct dns_req *)m, DNS_TEMPFAIL,
			    "resolver stopped");
		} else {
			dns_req_start(r, (struct dns_req *)m);
		}
	}
	return !stop;
}

/*
 * The thread.
 */

static int
dns_poll_timeout(struct dns *r)
{
	struct timeval tv, *tvp;
	uint64_t ms;

	if ((tvp = ares_timeout(r->ch, NULL, &tv)) == NULL)
		return -1;
	ms = (uint64_t)tvp->tv_sec * 1000 +
	     ((uint64_t)tvp->tv_usec + 999) / 1000;
	return ms > 60000 ? 60000 : (int)ms;
}

static void
dns_poll_once(struct dns *r)
{
	size_t n = r->nsocks + 1;
	int rc;

	if (n > r->cappfds) {
		r->cappfds = n * 2;
		r->pfds = xreallocarray(r->pfds, r->cappfds, sizeof(*r->pfds));
	}
	r->pfds[0] = (struct pollfd){.fd = chan_fd(r->in), .events = POLLIN};
	for (size_t i = 0; i < r->nsocks; i++)
		r->pfds[i + 1] = (struct pollfd){
		    .fd = r->socks[i].fd, .events = r->socks[i].events};
	rc = poll(r->pfds, (nfds_t)n, dns_poll_timeout(r));
	if (rc < 0 && errno != EINTR)
		fatal("dns: poll");
	if (rc <= 0)
		r->pfds[0].revents = 0;
	/* The poll set is a copy: callbacks may change r->socks. */
	for (size_t i = 1; rc > 0 && i < n; i++) {
		short ev = r->pfds[i].revents;

		if (ev == 0)
			continue;
		ares_process_fd(r->ch,
		    ev & (POLLIN | POLLERR | POLLHUP) ? r->pfds[i].fd
		                                      : ARES_SOCKET_BAD,
		    ev & POLLOUT ? r->pfds[i].fd : ARES_SOCKET_BAD);
	}
	/* Expire timed-out queries (retry or give up). */
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void *
dns_thread(void *arg)
{
	struct dns *r = arg;

	for (;;) {
		dns_poll_once(r);
		if ((r->pfds[0].revents & POLLIN) && !dns_take(r))
			break;
	}
	/* Every job in flight answers DNS_TEMPFAIL, synchronously. */
	ares_cancel(r->ch);
	MTA_ASSERT(r->jobs == 0);
	return NULL;
}

/*
 * Setup.
 */

static int
dns_servers(
    struct dns *r, const struct config_dns *cfg, char *err, size_t errlen)
{
	struct ares_addr_port_node *nodes;
	int rc;

	if (cfg->nservers == 0)
		return 0;
	nodes = xcalloc(cfg->nservers, sizeof(*nodes));
	for (size_t i = 0; i < cfg->nservers; i++) {
		const struct sockaddr_storage *ss = &cfg->servers[i].ss;
		struct ares_addr_port_node *n = &nodes[i];
		int port;

		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ss;

			n->family = AF_INET;
			memcpy(&n->addr.addr4, &sin->sin_addr, 4);
			port = ntohs(sin->sin_port);
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ss;

			n->family = AF_INET6;
			memcpy(&n->addr.addr6, &sin6->sin6_addr, 16);
			port = ntohs(sin6->sin6_port);
		} else {
			snprintf(err, errlen, "dns: server %s: bad address",
			    cfg->servers[i].text);
			free(nodes);
			return -EINVAL;
		}
		n->udp_port = n->tcp_port = port ? port : 53;
		n->next = i + 1 < cfg->nservers ? &nodes[i + 1] : NULL;
	}
	rc = ares_set_servers_ports(r->ch, nodes);
	free(nodes);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: servers: %s", ares_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

static int
dns_channel(
    struct dns *r, const struct config_dns *cfg, char *err, size_t errlen)
{
	struct ares_options o;
	int rc, mask;

	memset(&o, 0, sizeof(o));
	/* Names are absolute: no search list, no HOSTALIASES. EDNS0 makes
	 * truncation rare; when it happens c-ares retries over TCP, because
	 * ARES_FLAG_IGNTC is not set. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS;
	MTA_ASSERT(!(o.flags & (ARES_FLAG_IGNTC | ARES_FLAG_NOCHECKRESP)));
	o.ednspsz = DNS_EDNS_SIZE;
	o.timeout = cfg->timeout
	                ? (int)(cfg->timeout > 600000 ? 600000 : cfg->timeout)
	                : DNS_DEFAULT_TIMEOUT;
	o.tries = cfg->tries ? (int)(cfg->tries > 20 ? 20 : cfg->tries)
	                     : DNS_DEFAULT_TRIES;
	o.ndots = 1;
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = r;
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	       ARES_OPT_NDOTS | ARES_OPT_EDNSPSZ | ARES_OPT_SOCK_STATE_CB;
	if (cfg->nservers > 0)
		mask |= ARES_OPT_NOROTATE; /* servers in the order given */
	if ((rc = ares_init_options(&r->ch, &o, mask)) != ARES_SUCCESS) {
		snprintf(
		    err, errlen, "dns: c-ares init: %s", ares_strerror(rc));
		r->ch = NULL;
		return -EIO;
	}
	return dns_servers(r, cfg, err, errlen);
}

struct dns *
dns_new(const struct config_dns *cfg, char *err, size_t errlen)
{
	struct dns *r;
	int rc;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	if (dns_channel(r, cfg, err, errlen) < 0) {
		dns_free(r);
		return NULL;
	}
	if (getrandom(&r->rng, sizeof(r->rng), 0) != sizeof(r->rng))
		r->rng = clock_wall_us();
	r->rng |= 1; /* xorshift state must not be 0 */
	/* config_load() fills both; max_ttl 0 turns the cache off. */
	r->cache = dns_cache_new(
	    DNS_CACHE_ENTRIES, DNS_CACHE_BYTES, cfg->min_ttl, cfg->max_ttl);
	r->in = chan_new();
	r->stop.type = DNS_MSG_STOP;
	r->dnssec = cfg->dnssec;
	return r;
}

int
dns_start(struct dns *r)
{
	sigset_t all, old;
	int rc;

	MTA_ASSERT(!r->started);
	/* Signals belong to the main thread's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&r->thread, NULL, dns_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	r->started = true;
	return 0;
}

void
dns_free(struct dns *r)
{
	if (r == NULL)
		return;
	if (r->in != NULL) {
		if (r->started) {
			chan_send(r->in, &r->stop);
			pthread_join(r->thread, NULL);
		} else {
			/* Requests queued before a start that never came. */
			r->stopping = true;
			(void)dns_take(r);
		}
	}
	if (r->ch != NULL)
		ares_destroy(r->ch);
	dns_cache_free(r->cache);
	chan_free(r->in);
	free(r->socks);
	free(r->pfds);
	free(r);
	ares_library_cleanup();
}

static void
dns_send(struct dns *r, struct dns_req *req, uint16_t type)
{
	MTA_ASSERT(req->reply != NULL);
	req->msg.type = type;
	req->status = DNS_TEMPFAIL;
	req->ntargets = 0;
	req->reason[0] = '\0';
	chan_send(r->in, &req->msg);
}

void
dns_resolve_mx(struct dns *r, struct dns_req *req)
{
	dns_send(r, req, DNS_MSG_MX);
}

void
dns_resolve_host(struct dns *r, struct dns_req *req)
{
	dns_send(r, req, DNS_MSG_HOST);
}

void
dns_resolve_txt(struct dns *r, struct dns_txt_req *req)
{
	MTA_ASSERT(req->reply != NULL);
	req->msg.type = DNS_MSG_TXT;
	req->status = DNS_TEMPFAIL;
	req->nrecords = 0;
	req->reason[0] = '\0';
	chan_send(r->in, &req->msg);
}

const char *
dns_library_version(void)
{
	return ares_version(NULL);
}
