/* SPDX-License-Identifier: ISC */
/*
 * cmd_resolve.c - `mta resolve [--host] NAME... [-c FILE]`: what delivery
 * would do with a domain, for operators and for the DNS tests.
 *
 * Runs the real resolver (thread, c-ares, [dns] servers, MX selection),
 * applying the [route] sections first as delivery does, and prints one
 * logfmt status line, then one `PREF HOST ADDRESS` line per address in
 * the order delivery tries them:
 *
 *	status=ok domain="example.com"
 *	10 mx1.example.com 192.0.2.1
 *	10 mx1.example.com 2001:db8::1
 *	status=nullmx domain="example.net" reason="..."
 *	status=ok domain="example.org" route="192.0.2.10" port=587 tls=verify
 *	    auth="relay-user" password=*** auth_without_tls=no
 *
 * A domain with a [route] shows the route's host, the port and TLS policy
 * that apply to it, and its AUTH (auth=none without a username; the
 * password always as ***), on the status line.
 *
 * After each host's addresses, the TLS policy delivery would apply to it
 * (deliver/tls_policy.h: route, dane, mta-sts or default) and, when
 * [dns] dnssec found validated TLSA records, one line per record:
 *
 *	tls_policy=dane host=mx1.example.com level=verify
 *	(plus tlsa_base=NAME when the records were at the host's CNAME target)
 *	tlsa host=mx1.example.com usage=3 selector=1 mtype=1 usable=yes
 *	data=...
 *
 * A mail domain without a route then gets its MTA-STS policy as delivery
 * would (the relay's cache, <queue path>/sts.mdb, else a fetch), when
 * there is one or a failure to report, on one more line:
 *
 *	sts mode=enforce mx=mx1.example.com,*.example.net max_age=86400
 *	    id=20240101 expires=1735689600 source=cached
 *	sts none result=sts-policy-fetch-error reason="..."
 *
 * --host looks NAME up as a host (A and AAAA, no MX), as a route's host
 * is. Several names are resolved in turn by one resolver, so a repeated
 * name comes from its cache. Exit 0 when every status=ok, 1 otherwise,
 * 2 for bad usage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "cli/cmd.h"
#include "config/config.h"
#include "deliver/tls_policy.h"
#include "dns/dns.h"
#include "sts/sts.h"

/* A route's host, port, TLS policy and AUTH, as delivery applies them;
 * the password is never printed. */
static void
resolve_print_route(const struct config_route *r, const struct config *c)
{
	char q[CONFIG_HOST_MAX * 2], u[sizeof(r->username) * 2];

	printf(" route=%s port=%u tls=%s",
	    log_quote(q, sizeof(q), r->host, strlen(r->host)),
	    r->port ? r->port : c->delivery.port,
	    config_tls_policy_name(r->tls_set ? r->tls : c->delivery.tls));
	if (r->username[0] == '\0') {
		printf(" auth=none");
		return;
	}
	printf(" auth=%s password=*** auth_without_tls=%s",
	    log_quote(u, sizeof(u), r->username, strlen(r->username)),
	    r->auth_without_tls ? "yes" : "no");
}

/* The TLS policy of target t and the TLSA records behind it. */
static void
resolve_print_tls(const struct config *c, const struct config_route *route,
    const struct dns_target *t)
{
	const struct tls_policy_in in = {
	    .route = route, .delivery = c->delivery.tls, .target = t};
	struct tls_policy p;
	char why[sizeof(p.reason) * 2];

	tls_policy_decide(&in, &p);
	printf("tls_policy=%s host=%s level=%s",
	    tls_policy_source_name(p.source), t->name,
	    config_tls_policy_name(p.level));
	if (p.tlsa_base[0] != '\0') /* a CNAME'd host (RFC 7672 2.2.3) */
		printf(" tlsa_base=%s", p.tlsa_base);
	if (p.skip)
		printf(" skip=yes reason=%s",
		    log_quote(why, sizeof(why), p.reason, strlen(p.reason)));
	printf("\n");
	for (size_t i = 0; i < t->ntlsa; i++) {
		const struct dns_tlsa *r = &t->tlsa[i];

		printf("tlsa host=%s usage=%u selector=%u mtype=%u usable=%s "
		       "data=",
		    t->name, r->usage, r->selector, r->mtype,
		    tls_policy_tlsa_usable(r) ? "yes" : "no");
		for (size_t j = 0; j < r->len; j++)
			printf("%02x", r->data[j]);
		printf("\n");
	}
}

static void
resolve_print(const struct dns_req *req, const char *name,
    const struct config_route *route, const struct config *c)
{
	char q[DNS_NAME_MAX * 2], why[DNS_REASON_MAX * 2];

	printf("status=%s domain=%s", dns_status_str(req->status),
	    log_quote(q, sizeof(q), name, strlen(name)));
	if (route != NULL)
		resolve_print_route(route, c);
	if (req->status != DNS_OK)
		printf(" reason=%s", log_quote(why, sizeof(why), req->reason,
		                         strlen(req->reason)));
	printf("\n");
	for (size_t i = 0; i < req->ntargets; i++) {
		const struct dns_target *t = &req->targets[i];

		for (size_t j = 0; j < t->naddrs; j++) {
			const struct sockaddr_storage *ss = &t->addrs[j];
			char a[INET6_ADDRSTRLEN];
			const void *p =
			    ss->ss_family == AF_INET
			        ? (const void *)&(
			              (const struct sockaddr_in *)ss)
			              ->sin_addr
			        : (const void *)&(
			              (const struct sockaddr_in6 *)ss)
			              ->sin6_addr;

			if (inet_ntop(ss->ss_family, p, a, sizeof(a)) == NULL)
				str_copy(a, sizeof(a), "?");
			printf("%u %s %s\n", t->pref, t->name, a);
		}
		resolve_print_tls(c, route, t);
	}
}

/* Upper bound on one answer: every try of every server for an MX lookup
 * then the address lookups, with slack. The resolver always answers;
 * this only guards against a bug hanging the command. */
static int
resolve_wait_ms(const struct config_dns *d)
{
	uint64_t per = (d->timeout ? d->timeout : 5000) *
	               (d->tries ? d->tries : 2) *
	               (d->nservers ? d->nservers : 3);

	per = per * 4 + 5000;
	return per > 600000 ? 600000 : (int)per;
}

/* chan_wait() can return early after a stale wakeup: wait to a deadline. */
static bool
resolve_wait(struct chan *reply, int ms)
{
	uint64_t end = clock_mono_ms() + (uint64_t)ms, now;

	while ((now = clock_mono_ms()) < end)
		if (chan_wait(reply, (int)(end - now)) != NULL)
			return true;
	return false;
}

static void
resolve_sts_print(const struct sts_req *q)
{
	char why[sizeof(q->reason) * 2];

	if (!q->have) {
		if (q->failure[0] != '\0')
			printf("sts none result=%s reason=%s\n", q->failure,
			    log_quote(why, sizeof(why), q->reason,
			        strlen(q->reason)));
		return;
	}
	printf("sts mode=%s mx=", sts_mode_name(q->pol.mode));
	for (size_t i = 0; i < q->pol.nmx; i++)
		printf("%s%s", i ? "," : "", q->pol.mx[i]);
	printf(" max_age=%u id=%s expires=%llu source=%s\n",
	    (unsigned)q->pol.max_age, q->id, (unsigned long long)q->expires,
	    q->cached ? "cached" : "fetched");
}

/* The domain's MTA-STS policy, as delivery would see it now. */
static void
resolve_sts(struct sts *t, struct chan *reply, const char *name)
{
	struct sts_req *q = calloc(1, sizeof(*q));

	if (q == NULL || !str_copy(q->domain, sizeof(q->domain), name)) {
		free(q);
		return;
	}
	q->reply = reply;
	sts_lookup(t, q);
	/* the fetch is bounded by [delivery] mta_sts_timeout; the thread
	 * always answers (sts_free answers what is left) */
	while (chan_wait(reply, 1000) == NULL)
		;
	resolve_sts_print(q);
	free(q);
}

/* Resolve one name as delivery would; false when the resolver did not
 * answer in time (it then still owns req). */
static bool
resolve_one(struct dns *r, struct sts *t, const struct config *c,
    struct chan *reply, struct dns_req *req, const char *name, bool host)
{
	const struct config_route *route =
	    host ? NULL : config_route_find(c->routes, c->nroutes, name);

	memset(req, 0, sizeof(*req));
	req->reply = reply;
	/* DANE as delivery would look for it (tls_policy.h) */
	if (route == NULL || !route->tls_set)
		req->tlsa_port = route && route->port
		                     ? route->port
		                     : (uint16_t)c->delivery.port;
	if (!str_copy(
	        req->domain, sizeof(req->domain), route ? route->host : name)) {
		req->status = DNS_PERMFAIL;
		str_copy(req->reason, sizeof(req->reason), "name too long");
	} else {
		/* A route's host, literal ([bracketed]) or not, is a host
		 * lookup. */
		if (host || route != NULL)
			dns_resolve_host(r, req);
		else
			dns_resolve_mx(r, req);
		if (!resolve_wait(reply, resolve_wait_ms(&c->dns)))
			return false;
	}
	resolve_print(req, name, route, c);
	if (t != NULL && !host && route == NULL && c->delivery.mta_sts)
		resolve_sts(t, reply, name);
	return true;
}

/* The policy stage on the relay's cache, when the queue directory is
 * there (it is the relay's; this command does not create it). */
static struct sts *
resolve_sts_new(const struct config *c, struct dns *r)
{
	const struct config_delivery *dl = &c->delivery;
	struct sts_settings ss = {
	    .dir = c->queue.path,
	    .ca_file = dl->ca_file[0] ? dl->ca_file : NULL,
	    .ca_path = dl->ca_path[0] ? dl->ca_path : NULL,
	    .allow_private = dl->allow_private,
	    .allow_loopback = dl->allow_loopback,
	    .connect_timeout = dl->connect_timeout,
	    .timeout = dl->mta_sts_timeout,
	    .recheck = dl->mta_sts_recheck,
	};
	struct sts *t;
	char err[256];

	if (!dl->mta_sts || access(c->queue.path, W_OK) != 0)
		return NULL;
	if ((t = sts_new(&ss, r, err, sizeof(err))) == NULL ||
	    sts_start(t) != 0) {
		fprintf(stderr, "mta: resolve: no MTA-STS: %s\n",
		    t ? "cannot start its thread" : err);
		sts_free(t);
		return NULL;
	}
	return t;
}

/* One resolver for every name, so a repeated name is answered from the
 * cache, as in the relay. */
static int
resolve_run(const struct config *c, char **names, int n, bool host)
{
	struct dns_req *req = calloc(1, sizeof(*req));
	struct chan *reply = chan_new();
	char err[256];
	struct dns *r = NULL;
	struct sts *t = NULL;
	int rc = 0;

	if (req == NULL || (r = dns_new(&c->dns, err, sizeof(err))) == NULL) {
		fprintf(
		    stderr, "mta: resolve: %s\n", req ? err : "out of memory");
		rc = 1;
		goto out;
	}
	if (dns_start(r) < 0) {
		fprintf(stderr, "mta: resolve: cannot start resolver\n");
		rc = 1;
		goto out;
	}
	t = host ? NULL : resolve_sts_new(c, r);
	for (int i = 0; i < n; i++) {
		if (!resolve_one(r, t, c, reply, req, names[i], host)) {
			sts_free(t);
			t = NULL;
			dns_free(r); /* answers req, as DNS_TEMPFAIL */
			r = NULL;
			(void)resolve_wait(reply, 1000);
			str_copy(req->reason, sizeof(req->reason),
			    "resolver did not answer in time");
			resolve_print(req, names[i], NULL, c);
			rc = 1;
			break;
		}
		if (req->status != DNS_OK)
			rc = 1;
	}
out:
	sts_free(t);
	dns_free(r);
	chan_free(reply);
	free(req);
	return rc;
}

int
cmd_resolve(const char *config_path, int argc, char **argv)
{
	struct config *c;
	char err[1024];
	bool host = false;
	int i = 1, rc;

	if (i < argc && strcmp(argv[i], "--host") == 0) {
		host = true;
		i++;
	}
	if (i >= argc) {
		fprintf(
		    stderr, "usage: mta resolve [--host] NAME... [-c FILE]\n");
		return 2;
	}
	for (int j = i; j < argc; j++)
		if (argv[j][0] == '-') {
			fprintf(stderr, "mta: resolve: unknown option %s\n",
			    argv[j]);
			return 2;
		}
	if (config_load(config_path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rc = resolve_run(c, argv + i, argc - i, host);
	config_unref(c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("mta: resolve: stdout");
		return 1;
	}
	return rc;
}
