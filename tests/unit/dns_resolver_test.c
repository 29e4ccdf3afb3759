/* SPDX-License-Identifier: ISC */
/*
 * dns_resolver_test.c - the resolver thread without a network: requests
 * answered without a query (literals, invalid names), many producer
 * threads, and shutdown with lookups in flight. The only DNS server is a
 * UDP socket this test binds on 127.0.0.1 and never answers from, so no
 * query can leave the machine. Run it under TSan too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/chan.h"
#include "base/clock.h"
#include "config/config.h"
#include "dns/dns.h"
#include "../harness.h"

static int silent_fd = -1;

/* A config whose one server is our silent socket. */
static void
silent_cfg(struct config_dns *d, struct config_addr *a, uint64_t timeout)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	socklen_t len = sizeof(*sin);

	memset(d, 0, sizeof(*d));
	memset(a, 0, sizeof(*a));
	if (silent_fd < 0) {
		struct sockaddr_in b = {.sin_family = AF_INET};

		b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (silent_fd < 0 ||
		    bind(silent_fd, (struct sockaddr *)&b, sizeof(b)) < 0)
			abort();
	}
	if (getsockname(silent_fd, (struct sockaddr *)sin, &len) < 0)
		abort();
	a->sslen = len;
	strcpy(a->text, "127.0.0.1");
	d->servers = a;
	d->nservers = 1;
	d->timeout = timeout;
	d->tries = 1;
	d->min_ttl = 1000;
	d->max_ttl = 60000;
}

static struct dns_req *
req_new(struct chan *reply, const char *domain, uintptr_t id)
{
	struct dns_req *req = calloc(1, sizeof(*req));

	req->reply = reply;
	req->arg = (void *)id;
	req->msg.reqid = id;
	strcpy(req->domain, domain);
	return req;
}

/* Collect n answers from c into out[] (by reqid), waiting up to ms.
 * chan_wait() may return NULL early after a stale wakeup: loop to the
 * deadline. */
static size_t
collect(struct chan *c, struct dns_req **out, size_t n, int ms)
{
	uint64_t end = clock_mono_ms() + (uint64_t)ms;
	size_t got = 0;

	while (got < n) {
		uint64_t now = clock_mono_ms();
		struct chan_msg *m, *next;

		if (now >= end)
			break;
		if ((m = chan_wait(c, (int)(end - now))) == NULL)
			continue;
		for (; m; m = next) {
			next = m->next;
			out[m->reqid] = (struct dns_req *)m;
			got++;
		}
	}
	return got;
}

static void
test_without_query(void)
{
	struct config_dns d;
	struct config_addr a;
	struct chan *c = chan_new();
	struct dns_req *r[4] = {0};
	char err[128];
	struct dns *dns;

	silent_cfg(&d, &a, 5000);
	CHECK((dns = dns_new(&d, err, sizeof(err))) != NULL);
	CHECK(dns_start(dns) == 0);
	dns_resolve_mx(dns, req_new(c, "[192.0.2.1]", 0));
	dns_resolve_host(dns, req_new(c, "2001:db8::1", 1));
	dns_resolve_mx(dns, req_new(c, "bad..name", 2));
	dns_resolve_mx(dns, req_new(c, "", 3));
	CHECK(collect(c, r, 4, 2000) == 4);
	CHECK(r[0]->status == DNS_OK && r[0]->ntargets == 1);
	CHECK(r[0]->msg.type == DNS_MSG_MX && r[0]->arg == (void *)0);
	CHECK(r[0]->targets[0].addrs[0].ss_family == AF_INET);
	CHECK(r[1]->status == DNS_OK && r[1]->msg.type == DNS_MSG_HOST);
	CHECK(r[1]->targets[0].addrs[0].ss_family == AF_INET6);
	CHECK(r[2]->status == DNS_PERMFAIL && r[2]->ntargets == 0);
	CHECK(strstr(r[2]->reason, "invalid") != NULL);
	CHECK(r[3]->status == DNS_PERMFAIL);
	dns_free(dns);
	for (int i = 0; i < 4; i++)
		free(r[i]);
	chan_free(c);
}

#define NPROD 4
#define NPER  200

struct prod {
	struct dns *dns;
	struct chan *c;
	int base;
};

static void *
producer(void *arg)
{
	struct prod *p = arg;

	for (int i = 0; i < NPER; i++) {
		char lit[32];

		snprintf(lit, sizeof(lit), "[10.0.%d.%d]", p->base, i);
		dns_resolve_mx(p->dns,
		    req_new(p->c, lit, (uintptr_t)(p->base * NPER + i)));
	}
	return NULL;
}

static void
test_many_producers(void)
{
	static struct dns_req *r[NPROD * NPER];
	struct config_dns d;
	struct config_addr a;
	struct chan *c = chan_new();
	struct prod p[NPROD];
	pthread_t t[NPROD];
	char err[128];
	struct dns *dns;
	size_t got;

	memset(r, 0, sizeof(r));
	silent_cfg(&d, &a, 5000);
	CHECK((dns = dns_new(&d, err, sizeof(err))) != NULL);
	CHECK(dns_start(dns) == 0);
	for (int i = 0; i < NPROD; i++) {
		p[i] = (struct prod){dns, c, i};
		CHECK(pthread_create(&t[i], NULL, producer, &p[i]) == 0);
	}
	for (int i = 0; i < NPROD; i++)
		pthread_join(t[i], NULL);
	got = collect(c, r, NPROD * NPER, 5000);
	dns_free(dns);
	CHECK(got == NPROD * NPER);
	for (int i = 0; i < NPROD * NPER; i++) {
		const struct sockaddr_in *sin;

		CHECK(r[i] != NULL && r[i]->status == DNS_OK);
		sin = (const struct sockaddr_in *)&r[i]->targets[0].addrs[0];
		CHECK(((const uint8_t *)&sin->sin_addr)[2] == i / NPER);
		CHECK(((const uint8_t *)&sin->sin_addr)[3] == i % NPER);
		free(r[i]);
	}
	chan_free(c);
}

/* Lookups in flight (the server never answers) when dns_free() comes:
 * every request is answered DNS_TEMPFAIL, none is lost or leaked. */
static void
test_shutdown_in_flight(void)
{
	enum { N = 20 };
	struct dns_req *r[N] = {0};
	struct config_dns d;
	struct config_addr a;
	struct chan *c = chan_new();
	char err[128], name[64];
	struct dns *dns;

	silent_cfg(&d, &a, 30000);
	CHECK((dns = dns_new(&d, err, sizeof(err))) != NULL);
	CHECK(dns_start(dns) == 0);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "d%d.test", i);
		if (i % 2)
			dns_resolve_mx(dns, req_new(c, name, (uintptr_t)i));
		else
			dns_resolve_host(dns, req_new(c, name, (uintptr_t)i));
	}
	CHECK(collect(c, r, N, 200) == 0); /* nothing answers yet */
	dns_free(dns);
	CHECK(collect(c, r, N, 2000) == N);
	for (int i = 0; i < N; i++) {
		CHECK(r[i]->status == DNS_TEMPFAIL && r[i]->ntargets == 0);
		CHECK(r[i]->reason[0] != '\0');
		free(r[i]);
	}
	chan_free(c);
}

/* The server never answers: c-ares's own timeout ends the lookup. */
static void
test_timeout(void)
{
	struct dns_req *r[1] = {0};
	struct config_dns d;
	struct config_addr a;
	struct chan *c = chan_new();
	char err[128];
	struct dns *dns;

	silent_cfg(&d, &a, 200);
	CHECK((dns = dns_new(&d, err, sizeof(err))) != NULL);
	CHECK(dns_start(dns) == 0);
	dns_resolve_mx(dns, req_new(c, "slow.test", 0));
	CHECK(collect(c, r, 1, 5000) == 1);
	CHECK(r[0]->status == DNS_TEMPFAIL);
	CHECK(strstr(r[0]->reason, "imeout") != NULL);
	dns_free(dns);
	free(r[0]);
	chan_free(c);
}

/* Requests sent to a resolver that is never started are answered by
 * dns_free(). */
static void
test_never_started(void)
{
	struct dns_req *r[2] = {0};
	struct config_dns d;
	struct config_addr a;
	struct chan *c = chan_new();
	char err[128];
	struct dns *dns;

	silent_cfg(&d, &a, 1000);
	CHECK((dns = dns_new(&d, err, sizeof(err))) != NULL);
	dns_resolve_mx(dns, req_new(c, "a.test", 0));
	dns_resolve_host(dns, req_new(c, "b.test", 1));
	dns_free(dns);
	CHECK(collect(c, r, 2, 1000) == 2);
	CHECK(r[0]->status == DNS_TEMPFAIL && r[1]->status == DNS_TEMPFAIL);
	free(r[0]);
	free(r[1]);
	chan_free(c);
	dns_free(NULL);
}

static const struct harness_case cases[] = {
    {"without_query", test_without_query},
    {"many_producers", test_many_producers},
    {"shutdown_in_flight", test_shutdown_in_flight},
    {"timeout", test_timeout},
    {"never_started", test_never_started},
};

HARNESS_MAIN(cases)
