/* SPDX-License-Identifier: ISC */
/*
 * config_load_test.c - config/: value parsers at their edges, good files
 * (the shipped example and dev config, an empty file, routes, a dump
 * round trip), every error text byte for byte, route lookup and network
 * matching. Files are written under one mkdtemp directory, removed at
 * exit. Run from the repository root (as tests/run.sh does) so the
 * shipped config files are found.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "tests/harness.h"

#define KB  1024ULL
#define MB  (1024ULL * KB)
#define GB  (1024ULL * MB)
#define SEC 1000ULL
#define MIN (60 * SEC)
#define HR  (60 * MIN)
#define DAY (24 * HR)

static char tmpdir[64];
static unsigned nfiles;

static void
tmp_cleanup(void)
{
	char path[128];
	unsigned i;

	for (i = 0; i < nfiles; i++) {
		snprintf(path, sizeof(path), "%s/%u.conf", tmpdir, i);
		unlink(path);
	}
	if (tmpdir[0] != '\0')
		rmdir(tmpdir);
}

/* Write content to a new file; its path goes to path (>= 128 bytes). */
static int
tmp_write(const char *content, char *path)
{
	FILE *fp;

	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/config_test.XXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			return -1;
		atexit(tmp_cleanup);
	}
	snprintf(path, 128, "%s/%u.conf", tmpdir, nfiles++);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs(content, fp);
	return fclose(fp) == 0 ? 0 : -1;
}

static int
load_text(const char *content, struct config **c, char *err, size_t errlen,
    char *path)
{
	if (tmp_write(content, path) < 0) {
		snprintf(err, errlen, "cannot write temp file");
		return -2;
	}
	return config_load(path, c, err, errlen);
}

/* The shipped files, from the repository root or a build subdirectory. */
static const char *
repo_file(const char *name, char *buf, size_t len)
{
	static const char *const up[] = {"", "../", "../../", "../../../"};
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(up); i++) {
		snprintf(buf, len, "%s%s", up[i], name);
		if (access(buf, R_OK) == 0)
			return buf;
	}
	return name;
}

/* config_dump into a malloc'd string, without its first (comment) line. */
static char *
dump_string(const struct config *c)
{
	char *s = NULL, *body;
	size_t len = 0;
	FILE *fp = open_memstream(&s, &len);

	if (fp == NULL)
		return NULL;
	config_dump(c, fp);
	fclose(fp);
	if ((body = strchr(s, '\n')) != NULL)
		memmove(s, body + 1, strlen(body + 1) + 1);
	return s;
}

/*
 * Parsers.
 */

static void
test_parse_size(void)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t v;
	} t[] = {
	    {"0", 0, 0},
	    {"1", 0, 1},
	    {"512K", 0, 512 * KB},
	    {"1k", 0, KB},
	    {"35M", 0, 35 * MB},
	    {"1G", 0, GB},
	    {"2T", 0, 2 * 1024 * GB},
	    {"18446744073709551615", 0, UINT64_MAX},
	    {"18446744073709551616", -ERANGE, 0},
	    {"16777215T", 0, 16777215ULL << 40},
	    {"16777216T", -ERANGE, 0},
	    {"17179869183G", 0, 17179869183ULL << 30},
	    {"17179869184G", -ERANGE, 0},
	    {"99999999999999999999G", -ERANGE, 0},
	    {"99999999999999999999Q", -EINVAL, 0},
	    {"35Q", -EINVAL, 0},
	    {"", -EINVAL, 0},
	    {"M", -EINVAL, 0},
	    {"-1", -EINVAL, 0},
	    {"+1", -EINVAL, 0},
	    {" 1", -EINVAL, 0},
	    {"1 ", -EINVAL, 0},
	    {"1KB", -EINVAL, 0},
	    {"0x10", -EINVAL, 0},
	    {"1.5M", -EINVAL, 0},
	};
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(t); i++) {
		uint64_t v = 12345;
		int rc = config_parse_size(t[i].in, &v);

		if (rc != t[i].rc || (rc == 0 && v != t[i].v))
			fprintf(stderr, "size \"%s\": rc %d v %llu\n", t[i].in,
			    rc, (unsigned long long)v);
		CHECK(rc == t[i].rc);
		CHECK(rc == 0 ? v == t[i].v : v == 12345);
	}
}

static void
test_parse_duration(void)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t v;
	} t[] = {
	    {"0", 0, 0},
	    {"0s", 0, 0},
	    {"30", 0, 30 * SEC},
	    {"30s", 0, 30 * SEC},
	    {"500ms", 0, 500},
	    {"5m", 0, 5 * MIN},
	    {"4h", 0, 4 * HR},
	    {"5d", 0, 5 * DAY},
	    {"18446744073709551615ms", 0, UINT64_MAX},
	    {"18446744073709551616ms", -ERANGE, 0},
	    {"18446744073709551615s", -ERANGE, 0},
	    {"213503982334d", 0, 213503982334ULL * DAY},
	    {"213503982335d", -ERANGE, 0},
	    {"99999999999999999999d", -ERANGE, 0},
	    {"5x", -EINVAL, 0},
	    {"5M", -EINVAL, 0},
	    {"5 m", -EINVAL, 0},
	    {"m", -EINVAL, 0},
	    {"", -EINVAL, 0},
	    {"-5s", -EINVAL, 0},
	    {"5sm", -EINVAL, 0},
	    {"1.5h", -EINVAL, 0},
	};
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(t); i++) {
		uint64_t v = 12345;
		int rc = config_parse_duration(t[i].in, &v);

		if (rc != t[i].rc || (rc == 0 && v != t[i].v))
			fprintf(stderr, "duration \"%s\": rc %d v %llu\n",
			    t[i].in, rc, (unsigned long long)v);
		CHECK(rc == t[i].rc);
		CHECK(rc == 0 ? v == t[i].v : v == 12345);
	}
}

static void
test_format(void)
{
	char b[CONFIG_FMT_MAX];
	uint64_t v;

	CHECK(strcmp(config_format_size(0, b, sizeof(b)), "0") == 0);
	CHECK(strcmp(config_format_size(35 * MB, b, sizeof(b)), "35M") == 0);
	CHECK(strcmp(config_format_size(1536, b, sizeof(b)), "1536") == 0);
	CHECK(
	    strcmp(config_format_size(1536 * KB, b, sizeof(b)), "1536K") == 0);
	CHECK(strcmp(config_format_size(8 * GB, b, sizeof(b)), "8G") == 0);
	CHECK(strcmp(config_format_size(UINT64_MAX, b, sizeof(b)),
	          "18446744073709551615") == 0);
	CHECK(strcmp(config_format_duration(0, b, sizeof(b)), "0s") == 0);
	CHECK(
	    strcmp(config_format_duration(1500, b, sizeof(b)), "1500ms") == 0);
	CHECK(
	    strcmp(config_format_duration(90 * SEC, b, sizeof(b)), "90s") == 0);
	CHECK(
	    strcmp(config_format_duration(60 * SEC, b, sizeof(b)), "1m") == 0);
	CHECK(strcmp(config_format_duration(DAY, b, sizeof(b)), "1d") == 0);
	/* Whatever is printed parses back to the same value. */
	config_format_duration(UINT64_MAX, b, sizeof(b));
	CHECK(config_parse_duration(b, &v) == 0 && v == UINT64_MAX);
	config_format_size(UINT64_MAX - 1023, b, sizeof(b));
	CHECK(config_parse_size(b, &v) == 0 && v == UINT64_MAX - 1023);
}

static void
test_parse_addr(void)
{
	static const struct {
		const char *in;
		int rc;
		int family;
		const char *text;
	} t[] = {
	    {"1.2.3.4:587", 0, AF_INET, "1.2.3.4:587"},
	    {"127.0.0.1", 0, AF_INET, "127.0.0.1:99"},
	    {"0.0.0.0:65535", 0, AF_INET, "0.0.0.0:65535"},
	    {"[::1]:587", 0, AF_INET6, "[::1]:587"},
	    {"[::1]", 0, AF_INET6, "[::1]:99"},
	    {"::1", 0, AF_INET6, "[::1]:99"},
	    {"[2001:DB8:0::1]:25", 0, AF_INET6, "[2001:db8::1]:25"},
	    {"1.2.3.4:0", -EINVAL, 0, NULL},
	    {"1.2.3.4:65536", -EINVAL, 0, NULL},
	    {"1.2.3.4:", -EINVAL, 0, NULL},
	    {"1.2.3.4:+25", -EINVAL, 0, NULL},
	    {"1.2.3:25", -EINVAL, 0, NULL},
	    {"localhost:25", -EINVAL, 0, NULL},
	    {"[1.2.3.4]:25", -EINVAL, 0, NULL},
	    {"[::1]x", -EINVAL, 0, NULL},
	    {"[::1", -EINVAL, 0, NULL},
	    {"[]:25", -EINVAL, 0, NULL},
	    {"", -EINVAL, 0, NULL},
	};
	struct config_addr a;
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(t); i++) {
		int rc = config_parse_addr(t[i].in, 99, &a);

		if (rc != t[i].rc)
			fprintf(stderr, "addr \"%s\": rc %d\n", t[i].in, rc);
		CHECK(rc == t[i].rc);
		if (rc != 0)
			continue;
		CHECK(a.ss.ss_family == t[i].family);
		CHECK(strcmp(a.text, t[i].text) == 0);
		CHECK(a.sslen == (t[i].family == AF_INET
		                         ? sizeof(struct sockaddr_in)
		                         : sizeof(struct sockaddr_in6)));
	}
	CHECK(config_parse_addr("10.0.0.1:2525", 1, &a) == 0);
	CHECK(ntohs(((struct sockaddr_in *)&a.ss)->sin_port) == 2525);
}

static void
test_parse_net(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *text;
	} t[] = {
	    {"10.0.0.0/8", 0, "10.0.0.0/8"},
	    {"192.0.2.1", 0, "192.0.2.1/32"},
	    {"0.0.0.0/0", 0, "0.0.0.0/0"},
	    {"::1/128", 0, "::1/128"},
	    {"[::1]/128", 0, "::1/128"},
	    {"::1", 0, "::1/128"},
	    {"::/0", 0, "::/0"},
	    {"2001:db8::/32", 0, "2001:db8::/32"},
	    {"10.0.0.0/33", -EINVAL, NULL},
	    {"10.0.0.1/8", -EINVAL, NULL},
	    {"10.0.0.0/", -EINVAL, NULL},
	    {"10.0.0.0/a", -EINVAL, NULL},
	    {"10.0.0.0/-1", -EINVAL, NULL},
	    {"10.0.0/8", -EINVAL, NULL},
	    {"::1/129", -EINVAL, NULL},
	    {"2001:db8::1/32", -EINVAL, NULL},
	    {"[::1/128", -EINVAL, NULL},
	    {"", -EINVAL, NULL},
	};
	struct config_net n;
	char b[64];
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(t); i++) {
		int rc = config_parse_net(t[i].in, &n);

		if (rc != t[i].rc)
			fprintf(stderr, "net \"%s\": rc %d\n", t[i].in, rc);
		CHECK(rc == t[i].rc);
		if (rc == 0)
			CHECK(strcmp(config_format_net(&n, b, sizeof(b)),
			          t[i].text) == 0);
	}
}

/*
 * Good files.
 */

static void
test_empty_is_defaults(void)
{
	struct config *c, *d;
	char err[512], path[128];
	char *a, *b;

	CHECK(load_text("", &c, err, sizeof(err), path) == 0);
	CHECK(strcmp(c->file, path) == 0);
	CHECK(c->server.hostname[0] != '\0');
	CHECK(c->server.nlisten == 1);
	CHECK(strcmp(c->server.listen[0].text, "0.0.0.0:587") == 0);
	CHECK(c->server.nlisten_tls == 0);
	CHECK(c->server.threads >= 1);
	CHECK(c->server.max_message_size == 35 * MB);
	CHECK(c->server.max_recipients == 1000);
	CHECK(c->server.max_connections == 10000);
	CHECK(c->server.max_connections_per_ip == 200);
	CHECK(c->server.idle_timeout == 5 * MIN);
	CHECK(c->server.session_timeout == HR);
	CHECK(c->server.command_timeout == 5 * MIN);
	CHECK(c->server.min_data_rate == 500);
	CHECK(c->server.greet_pause == 0);
	CHECK(c->server.max_inflight == 512 * MB);
	CHECK(c->server.max_errors == 20);
	CHECK(c->server.nrelay_networks == 2);
	CHECK(c->server.relay_networks[0].family == AF_INET);
	CHECK(c->server.relay_networks[0].prefix == 8);
	CHECK(c->server.relay_networks[1].family == AF_INET6);
	CHECK(c->server.relay_networks[1].prefix == 128);
	CHECK(c->tls.certificate[0] == '\0' && c->tls.private_key[0] == '\0');
	CHECK(c->auth.users[0] == '\0');
	CHECK(c->auth.require_tls);
	CHECK(c->auth.max_failures == 3);
	CHECK(strcmp(c->queue.path, "/var/spool/mta") == 0);
	CHECK(c->queue.nretry == 7);
	CHECK(c->queue.retry[0] == MIN && c->queue.retry[1] == 5 * MIN &&
	      c->queue.retry[2] == 15 * MIN && c->queue.retry[3] == 30 * MIN &&
	      c->queue.retry[4] == HR && c->queue.retry[5] == 2 * HR &&
	      c->queue.retry[6] == 4 * HR);
	CHECK(c->queue.max_age == 5 * DAY);
	CHECK(c->queue.delay_warning == 0);
	CHECK(c->queue.sync == CONFIG_SYNC_FULL);
	CHECK(c->queue.map_size == 8 * GB);
	CHECK(c->dns.nservers == 0 && c->dns.servers == NULL);
	CHECK(c->dns.timeout == 5 * SEC);
	CHECK(c->dns.tries == 2);
	CHECK(c->dns.min_ttl == 60 * SEC);
	CHECK(c->dns.max_ttl == DAY);
	CHECK(c->delivery.workers >= 1);
	CHECK(c->delivery.port == 25);
	CHECK(c->delivery.max_connections == 1000);
	CHECK(c->delivery.max_connections_per_host == 20);
	CHECK(c->delivery.max_messages_per_connection == 100);
	CHECK(c->delivery.tls == CONFIG_TLS_MAY);
	CHECK(c->delivery.connect_timeout == 30 * SEC);
	CHECK(c->delivery.command_timeout == 5 * MIN);
	CHECK(c->delivery.data_timeout == 10 * MIN);
	CHECK(c->delivery.idle_timeout == 30 * SEC);
	CHECK(c->delivery.helo_name[0] == '\0');
	CHECK(c->delivery.max_inflight == 64 * MB);
	CHECK(c->nroutes == 0 && c->routes == NULL);

	/* config_defaults() is the same thing without a file. */
	d = config_defaults();
	a = dump_string(c);
	b = dump_string(d);
	CHECK(a != NULL && b != NULL);
	if (strcmp(a, b) != 0)
		fprintf(stderr, "--- empty file\n%s--- defaults\n%s", a, b);
	CHECK(strcmp(a, b) == 0);
	free(a);
	free(b);
	config_unref(c);
	config_unref(d);
}

/* The example sets every key to its default: it must load to defaults. */
static void
test_example_loads(void)
{
	struct config *c, *d;
	char err[512], buf[256];
	const char *path =
	    repo_file("config/mta.conf.example", buf, sizeof(buf));
	char *a, *b;
	int rc;

	rc = config_load(path, &c, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(rc == 0);
	d = config_defaults();
	a = dump_string(c);
	b = dump_string(d);
	if (strcmp(a, b) != 0)
		fprintf(stderr, "--- example\n%s--- defaults\n%s", a, b);
	CHECK(strcmp(a, b) == 0);
	free(a);
	free(b);
	config_unref(c);
	config_unref(d);
}

/* Every key of the table appears in the example, in its own section (the
 * route keys in the commented-out sample routes). */
static void
test_example_documents_every_key(void)
{
	char buf[256], line[512], sect[64] = "";
	const char *path =
	    repo_file("config/mta.conf.example", buf, sizeof(buf));
	bool *seen = calloc(config_nkeys, sizeof(*seen));
	FILE *fp = fopen(path, "r");
	size_t i, missing = 0;

	CHECK(fp != NULL && seen != NULL);
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *p = line, name[64];

		if (*p == ';')
			p++;
		if (*p == '[') {
			sscanf(p + 1, "%63[a-z]", sect);
			continue;
		}
		if (sscanf(p, "%63[a-z_] =", name) != 1 ||
		    strstr(p, " =") == NULL)
			continue;
		for (i = 0; i < config_nkeys; i++)
			if (strcmp(config_keys[i].name, name) == 0 &&
			    strcmp(config_section_name(config_keys[i].section),
			        sect) == 0)
				seen[i] = true;
	}
	fclose(fp);
	for (i = 0; i < config_nkeys; i++)
		if (!seen[i]) {
			fprintf(stderr, "example lacks [%s] %s\n",
			    config_section_name(config_keys[i].section),
			    config_keys[i].name);
			missing++;
		}
	free(seen);
	CHECK(missing == 0);
}

/* The commented-out sample routes of the example are valid too. */
static void
test_example_routes_load(void)
{
	char buf[256], line[512], path[128], err[512];
	const char *ex = repo_file("config/mta.conf.example", buf, sizeof(buf));
	FILE *in = fopen(ex, "r");
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct config *c;
	const struct config_route *r;
	int rc;

	CHECK(in != NULL && out != NULL);
	while (fgets(line, sizeof(line), in) != NULL)
		fputs(line[0] == ';' ? line + 1 : line, out);
	fclose(in);
	fclose(out);
	/* "username =" alone is fine; give the pair values to test them. */
	rc = load_text(text, &c, err, sizeof(err), path);
	free(text);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(rc == 0);
	CHECK(c->nroutes == 2);
	r = config_route_find(c->routes, c->nroutes, "example.com");
	CHECK(r != NULL && r->literal && strcmp(r->host, "192.0.2.10") == 0);
	CHECK(r->port == 25 && r->tls_set && r->tls == CONFIG_TLS_VERIFY);
	r = config_route_find(c->routes, c->nroutes, "other.example");
	CHECK(r != NULL && strcmp(r->domain, "*") == 0 && !r->literal);
	CHECK(strcmp(r->host, "smarthost.example.net") == 0 && r->port == 587);
	CHECK(!r->tls_set && r->tls == CONFIG_TLS_MAY);
	config_unref(c);
}

static void
test_dev_conf(void)
{
	struct config *c;
	const struct config_route *r;
	char err[512], buf[256];
	const char *path = repo_file("config/dev.conf", buf, sizeof(buf));
	int rc;

	rc = config_load(path, &c, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(rc == 0);
	CHECK(strcmp(c->server.hostname, "mta.localhost") == 0);
	CHECK(c->server.nlisten >= 1);
	CHECK(strcmp(c->server.listen[0].text, "127.0.0.1:2587") == 0);
	CHECK(strcmp(c->queue.path, "run/queue") == 0);
	CHECK(c->dns.nservers == 1);
	CHECK(strcmp(c->dns.servers[0].text, "127.0.0.1:2553") == 0);
	CHECK(c->delivery.port == 2525);
	r = config_route_find(c->routes, c->nroutes, "anything.example");
	CHECK(r != NULL && r->literal && strcmp(r->host, "127.0.0.1") == 0);
	CHECK(r->port == 2525);
	config_unref(c);
}

static const char routes_conf[] = "[delivery]\n"
                                  "tls = encrypt\n"
                                  "\n"
                                  "[route Example.COM.]\n"
                                  "host = [192.0.2.10]:25\n"
                                  "tls = none\n"
                                  "[route ipv6.example]\n"
                                  "host = [2001:db8::1]\n"
                                  "[route ipv6b.example]\n"
                                  "host = [IPv6:2001:db8::2]:2525\n"
                                  "[route bare-ip.example]\n"
                                  "host = 192.0.2.20\n"
                                  "[route mx.example]\n"
                                  "host = relay.mx.example:2525\n"
                                  "username = alice\n"
                                  "password = s3cret:with=chars\n"
                                  "[route name.example]\n"
                                  "host = [smtp.name.example]\n"
                                  "[route *]\n"
                                  "host = smarthost.example.net\n";

static void
test_routes(void)
{
	struct config *c;
	const struct config_route *r;
	char err[512], path[128];
	int rc;

	rc = load_text(routes_conf, &c, err, sizeof(err), path);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(rc == 0);
	CHECK(c->nroutes == 7);

	r = config_route_find(c->routes, c->nroutes, "example.com");
	CHECK(r != NULL && strcmp(r->domain, "example.com") == 0);
	CHECK(r->literal && strcmp(r->host, "192.0.2.10") == 0);
	CHECK(r->port == 25 && r->tls_set && r->tls == CONFIG_TLS_NONE);
	CHECK(config_route_find(c->routes, c->nroutes, "EXAMPLE.com") == r);
	CHECK(config_route_find(c->routes, c->nroutes, "example.com.") == r);

	r = config_route_find(c->routes, c->nroutes, "ipv6.example");
	CHECK(r != NULL && r->literal && strcmp(r->host, "2001:db8::1") == 0);
	CHECK(r->port == 0);
	CHECK(!r->tls_set && r->tls == CONFIG_TLS_ENCRYPT);
	r = config_route_find(c->routes, c->nroutes, "ipv6b.example");
	CHECK(r != NULL && r->literal && strcmp(r->host, "2001:db8::2") == 0);
	CHECK(r->port == 2525);
	r = config_route_find(c->routes, c->nroutes, "bare-ip.example");
	CHECK(r != NULL && r->literal && strcmp(r->host, "192.0.2.20") == 0);
	r = config_route_find(c->routes, c->nroutes, "mx.example");
	CHECK(r != NULL && !r->literal && r->port == 2525);
	CHECK(strcmp(r->host, "relay.mx.example") == 0);
	CHECK(strcmp(r->username, "alice") == 0);
	CHECK(strcmp(r->password, "s3cret:with=chars") == 0);
	r = config_route_find(c->routes, c->nroutes, "name.example");
	CHECK(r != NULL && r->literal);
	CHECK(strcmp(r->host, "smtp.name.example") == 0);

	/* No exact match: the wildcard; a subdomain is not its parent. */
	r = config_route_find(c->routes, c->nroutes, "sub.example.com");
	CHECK(r != NULL && strcmp(r->domain, "*") == 0);
	CHECK(!r->literal && strcmp(r->host, "smarthost.example.net") == 0);
	CHECK(r->port == 0);
	CHECK(config_route_find(c->routes, c->nroutes, "") == r);
	config_unref(c);

	/* No wildcard: no route. */
	rc = load_text("[route a.example]\nhost = b.example\n", &c, err,
	    sizeof(err), path);
	CHECK(rc == 0);
	CHECK(config_route_find(c->routes, c->nroutes, "a.example") != NULL);
	CHECK(config_route_find(c->routes, c->nroutes, "b.example") == NULL);
	config_unref(c);
}

/* Indented keys and headers are a style, not continuations; list items
 * on indented lines are. */
static void
test_indented(void)
{
	static const char conf[] =
	    "  [server]\n"
	    "\tthreads = 2\n"
	    "\trelay_networks = 10.0.0.0/8,\n"
	    "\t    [::1]/128   ; a continuation that starts with \"[\"\n"
	    "\tmax_errors = 3\n"
	    "    [ route * ]\n"
	    "\thost = [::1]:2525\n"
	    "  [dns]\n"
	    "\tservers = [::1]:2553,\n"
	    "\t\t127.0.0.1\n";
	struct config *c;
	char err[512], path[128];
	int rc;

	rc = load_text(conf, &c, err, sizeof(err), path);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(rc == 0);
	CHECK(c->server.threads == 2 && c->server.max_errors == 3);
	CHECK(c->server.nrelay_networks == 2);
	CHECK(c->server.relay_networks[1].family == AF_INET6);
	CHECK(c->nroutes == 1 && strcmp(c->routes[0].domain, "*") == 0);
	CHECK(strcmp(c->routes[0].host, "::1") == 0 && c->routes[0].literal);
	CHECK(c->dns.nservers == 2);
	CHECK(strcmp(c->dns.servers[0].text, "[::1]:2553") == 0);
	CHECK(strcmp(c->dns.servers[1].text, "127.0.0.1:53") == 0);
	config_unref(c);
}

/* Dump, load the dump, dump again: identical, for a non-default file. */
static void
test_dump_round_trip(void)
{
	static const char conf[] =
	    "\xEF\xBB\xBF; a BOM, comments and CRLF line ends\r\n"
	    "[server]\r\n"
	    "hostname = relay.example.org  ; inline comment\r\n"
	    "listen = 127.0.0.1:2587, [::1]:2587\r\n"
	    "listen_tls = 127.0.0.1\r\n"
	    "threads = 3\r\n"
	    "max_message_size = 1536K\r\n"
	    "idle_timeout = 90\r\n"
	    "session_timeout = 1500ms\r\n"
	    "relay_networks = 10.0.0.0/8, 192.168.0.0/16, 172.16.0.0/12,\r\n"
	    "    100.64.0.0/10, 2001:db8::/32, fd00::/8, 127.0.0.0/8,\r\n"
	    "\t::1/128, 198.51.100.0/24, 203.0.113.0/24, 192.0.2.0/24\r\n"
	    "[tls]\n"
	    "certificate = /etc/mta/cert.pem\n"
	    "private_key = key.pem\n"
	    "[auth]\n"
	    "users = /etc/mta/users\n"
	    "require_tls = NO\n"
	    "[queue]\n"
	    "path = run/queue\n"
	    "retry = 1s, 2s\n"
	    "  3s\n"
	    "delay_warning = 4h\n"
	    "map_size = 1048576\n"
	    "[dns]\n"
	    "servers = 127.0.0.1:2553, [::1]\n"
	    "timeout = 250ms\n"
	    "min_ttl = 5m\n"
	    "max_ttl = 0s  ; no cache, whatever min_ttl is\n"
	    "[delivery]\n"
	    "workers = 2\n"
	    "port = 2525\n"
	    "tls = verify\n"
	    "idle_timeout = 0\n"
	    "helo_name = out.example.org\n"
	    "max_inflight = 192k\n"
	    "[route example.com]\n"
	    "host = [192.0.2.10]:25\n"
	    "tls = none\n"
	    "[route *]\n"
	    "host = smart.example.net:587\n"
	    "username = u\n"
	    "password = p\n";
	struct config *c, *c2;
	char err[512], path[128], path2[128];
	char *a, *b;
	int rc;

	rc = load_text(conf, &c, err, sizeof(err), path);
	if (rc != 0)
		fprintf(stderr, "%s\n", err);
	CHECK(rc == 0);
	CHECK(strcmp(c->server.hostname, "relay.example.org") == 0);
	CHECK(c->server.nlisten_tls == 1);
	CHECK(strcmp(c->server.listen_tls[0].text, "127.0.0.1:465") == 0);
	CHECK(c->server.threads == 3);
	CHECK(c->server.idle_timeout == 90 * SEC);
	CHECK(c->server.session_timeout == 1500);
	CHECK(c->server.nrelay_networks == 11);
	CHECK(!c->auth.require_tls);
	CHECK(c->queue.nretry == 3 && c->queue.retry[2] == 3 * SEC);
	CHECK(c->dns.nservers == 2);
	CHECK(strcmp(c->dns.servers[1].text, "[::1]:53") == 0);
	CHECK(c->dns.timeout == 250 && c->dns.min_ttl == 5 * MIN);
	CHECK(c->dns.max_ttl == 0);
	CHECK(c->delivery.tls == CONFIG_TLS_VERIFY);
	CHECK(c->delivery.workers == 2);
	CHECK(c->delivery.max_inflight == 192 * KB);

	a = dump_string(c);
	CHECK(a != NULL);
	/* The long list was wrapped to stay under inih's line limit. */
	CHECK(strstr(a, ",\n\t") != NULL);
	rc = load_text(a, &c2, err, sizeof(err), path2);
	if (rc != 0)
		fprintf(stderr, "%s\n--- dump\n%s", err, a);
	CHECK(rc == 0);
	b = dump_string(c2);
	if (strcmp(a, b) != 0)
		fprintf(stderr, "--- first\n%s--- second\n%s", a, b);
	CHECK(strcmp(a, b) == 0);
	free(a);
	free(b);
	config_unref(c);
	config_unref(c2);
}

/* [delivery] max_inflight: a size in any unit, down to one body chunk
 * (64K) and up to 1T; the bounds themselves load. */
static void
test_delivery_inflight(void)
{
	static const struct {
		const char *value;
		uint64_t want;
	} t[] = {
	    {"64K", 64 * KB},
	    {"65536", 64 * KB},
	    {"1m", MB},
	    {"3G", 3 * GB},
	    {"1T", 1024 * GB},
	};
	char conf[128], err[512], path[128];
	struct config *c;
	size_t i;
	int rc;

	for (i = 0; i < MTA_ARRAY_LEN(t); i++) {
		snprintf(conf, sizeof(conf), "[delivery]\nmax_inflight = %s\n",
		    t[i].value);
		rc = load_text(conf, &c, err, sizeof(err), path);
		if (rc != 0)
			fprintf(stderr, "%s: %s\n", t[i].value, err);
		CHECK(rc == 0);
		if (rc != 0)
			continue;
		CHECK(c->delivery.max_inflight == t[i].want);
		config_unref(c);
	}
}

/*
 * Bad files: the exact line, after "FILE:".
 */

static const struct {
	const char *label;
	const char *conf;
	const char *err;
} bad[] = {
    {"unknown key", "[server]\nfoo = 1\n", "2: foo: unknown key in [server]"},
    {"unknown route key", "[route *]\nhost = a.example\nport = 25\n",
        "3: port: unknown key in [route *]"},
    {"unknown section", "[server]\nthreads = 1\n\n[bogus]\n",
        "4: [bogus]: unknown section"},
    {"key outside section", "; hi\nthreads = 1\n",
        "2: threads: outside any [section]"},
    {"bad size", "[server]\n\nmax_message_size = 35Q\n",
        "3: max_message_size: invalid size \"35Q\""},
    {"size overflow", "[server]\nmax_message_size = 99999999999999999999G\n",
        "2: max_message_size: out of range \"99999999999999999999G\" "
        "(1K..2G)"},
    {"size over max", "[server]\nmax_message_size = 3G\n",
        "2: max_message_size: out of range \"3G\" (1K..2G)"},
    {"size under min", "[queue]\nmap_size = 0\n",
        "2: map_size: out of range \"0\" (64K..1T)"},
    {"bad duration", "[server]\nidle_timeout = 5x\n",
        "2: idle_timeout: invalid duration \"5x\""},
    {"duration out of range", "[server]\nidle_timeout = 0\n",
        "2: idle_timeout: out of range \"0\" (1s..1d)"},
    {"duration list item", "[queue]\nretry = 1m, 5q\n",
        "2: retry: invalid duration \"5q\""},
    {"duration list range", "[queue]\nretry = 1m, 500ms\n",
        "2: retry: out of range \"500ms\" (1s..30d)"},
    {"empty list", "[queue]\nretry =\n", "2: retry: must not be empty"},
    {"empty path", "[queue]\npath =\n", "2: path: must not be empty"},
    {"uint out of range", "[server]\nmax_recipients = 0\n",
        "2: max_recipients: out of range \"0\" (1..100000)"},
    {"uint overflow", "[server]\nthreads = 99999999999999999999\n",
        "2: threads: out of range \"99999999999999999999\" (0..1024)"},
    {"uint negative", "[server]\nthreads = -1\n",
        "2: threads: invalid number \"-1\""},
    {"uint empty", "[server]\nthreads =\n", "2: threads: invalid number \"\""},
    {"port out of range", "[delivery]\nport = 65536\n",
        "2: port: out of range \"65536\" (1..65535)"},
    {"bad address", "[server]\nlisten = 1.2.3.4:99999\n",
        "2: listen: invalid address \"1.2.3.4:99999\""},
    {"host name address", "[dns]\nservers = ns.example\n",
        "2: servers: invalid address \"ns.example\""},
    {"duplicate address", "[server]\nlisten = 127.0.0.1:25, 127.0.0.1:25\n",
        "2: listen: duplicate address \"127.0.0.1:25\""},
    {"bad cidr", "[server]\nrelay_networks = 127.0.0.0/8, 10.0.0.0/33\n",
        "2: relay_networks: invalid network \"10.0.0.0/33\""},
    {"cidr host bits", "[server]\nrelay_networks = 10.0.0.1/8\n",
        "2: relay_networks: invalid network \"10.0.0.1/8\" "
        "(host bits set; use 10.0.0.0/8)"},
    {"bad bool", "[auth]\nrequire_tls = maybe\n",
        "2: require_tls: invalid boolean \"maybe\" (yes or no)"},
    {"bad enum", "[delivery]\ntls = sometimes\n",
        "2: tls: invalid value \"sometimes\" (none, may, encrypt, "
        "verify)"},
    {"sync not full", "[queue]\nsync = none\n",
        "2: sync: invalid value \"none\" (full)"},
    {"bad host name", "[server]\nhostname = relay..example\n",
        "2: hostname: invalid host name \"relay..example\""},
    {"duplicate key", "[server]\nthreads = 1\nthreads = 2\n",
        "3: threads: duplicate key (first on line 2)"},
    {"duplicate key across reopened section",
        "[server]\nthreads = 1\n[tls]\n[server]\nthreads = 2\n",
        "5: threads: duplicate key (first on line 2)"},
    {"duplicate route",
        "[route a.example]\nhost = x.example\n[route A.example.]\n"
        "host = y.example\n",
        "3: [route A.example.]: duplicate route (first on line 1)"},
    {"route without host", "[route a.example]\ntls = may\n[server]\n",
        "1: host: missing in [route a.example]"},
    {"route without host at end", "[server]\n\n[route *]\n",
        "3: host: missing in [route *]"},
    {"route without domain", "[route]\nhost = a.example\n",
        "1: [route]: missing domain ([route DOMAIN] or [route *])"},
    {"route bad domain", "[route exa mple.com]\nhost = a.example\n",
        "1: [route exa mple.com]: invalid domain \"exa mple.com\""},
    {"route bad host", "[route *]\nhost = [192.0.2.1\n",
        "2: host: invalid host \"[192.0.2.1\""},
    {"route bad port", "[route *]\nhost = [192.0.2.1]:0\n",
        "2: host: invalid host \"[192.0.2.1]:0\""},
    {"route unbracketed ipv6", "[route *]\nhost = 2001:db8::1\n",
        "2: host: invalid host \"2001:db8::1\""},
    {"route username alone", "[route *]\nhost = a.example\nusername = u\n",
        "3: username: set without password"},
    {"syntax error", "[server]\nthreads\nfoo = 1\n",
        "2: syntax error: expected \"key = value\""},
    {"unterminated header", "[server\nthreads = 1\n",
        "1: syntax error: section header without \"]\""},
    {"line too long",
        "[server]\nhostname = "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "\n",
        "2: line too long (max 198 bytes)"},
    {"continuation of a scalar", "[server]\nthreads = 1\n  2\n",
        "3: threads: unexpected indented line (only lists may continue "
        "on indented lines)"},
    {"indented unknown section", "[server]\n  threads = 1\n  [bogus]\n",
        "3: threads: unexpected indented line (only lists may continue "
        "on indented lines)"},
    {"indented junk in a list",
        "[server]\nrelay_networks = 10.0.0.0/8\n  10.1.0.0/16 = x\n",
        "3: relay_networks: unexpected indented line (only lists may "
        "continue on indented lines)"},
    {"nothing to listen on", "[server]\nlisten =\n",
        "2: listen: no address to listen on (listen and listen_tls are "
        "both empty)"},
    {"listen_tls without tls", "[server]\nlisten_tls = 0.0.0.0:465\n",
        "2: listen_tls: needs [tls] certificate and private_key"},
    {"certificate without key", "[tls]\ncertificate = /c.pem\n",
        "2: certificate: set without private_key"},
    {"max_ttl below min_ttl", "[dns]\nmax_ttl = 30s\n",
        "2: max_ttl: less than min_ttl (1m)"},
    {"min_ttl above max_ttl", "[dns]\nmax_ttl = 2m\nmin_ttl = 5m\n",
        "3: min_ttl: greater than max_ttl (2m)"},
    {"max_ttl out of range", "[dns]\nmax_ttl = 31d\n",
        "2: max_ttl: out of range \"31d\" (0s..30d)"},
    {"inflight below message size", "[server]\nmax_inflight = 10M\n",
        "2: max_inflight: less than max_message_size (35M)"},
    {"delivery inflight under one chunk",
        "[delivery]\nport = 25\n\nmax_inflight = 65535\n",
        "4: max_inflight: out of range \"65535\" (64K..1T)"},
    {"delivery inflight over max", "[delivery]\nmax_inflight = 2T\n",
        "2: max_inflight: out of range \"2T\" (64K..1T)"},
    {"delivery inflight bad unit", "[delivery]\nmax_inflight = 64KB\n",
        "2: max_inflight: invalid size \"64KB\""},
    {"per-host above total", "[delivery]\nmax_connections_per_host = 2000\n",
        "2: max_connections_per_host: greater than max_connections "
        "(1000)"},
};

static void
test_bad_files(void)
{
	static struct config dummy;
	char err[512], path[128], want[512];
	struct config *c;
	size_t i;
	int rc;

	for (i = 0; i < MTA_ARRAY_LEN(bad); i++) {
		c = &dummy; /* config_load must reset it to NULL */
		rc = load_text(bad[i].conf, &c, err, sizeof(err), path);
		snprintf(want, sizeof(want), "%s:%s", path, bad[i].err);
		if (rc != -1 || strcmp(err, want) != 0)
			fprintf(stderr, "%s:\n  got  %s\n  want %s\n",
			    bad[i].label, rc == -1 ? err : "(success)", want);
		CHECK(rc == -1);
		CHECK(c == NULL);
		CHECK(strcmp(err, want) == 0);
	}
}

static void
test_unreadable(void)
{
	char err[512], want[512], path[128];
	struct config *c;

	CHECK(config_load("/nonexistent/mta.conf", &c, err, sizeof(err)) == -1);
	CHECK(strcmp(err, "/nonexistent/mta.conf: cannot open: "
	                  "No such file or directory") == 0);
	/* A directory opens but does not read. */
	CHECK(tmp_write("", path) == 0);
	CHECK(config_load(tmpdir, &c, err, sizeof(err)) == -1);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	CHECK(strcmp(err, want) == 0);
	/* A short error buffer truncates, never overflows. */
	CHECK(config_load("/nonexistent/mta.conf", &c, err, 8) == -1);
	CHECK(strcmp(err, "/nonexi") == 0);
}

/*
 * Network matching.
 */

static bool
match(const struct config_net *nets, size_t n, const char *ip)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return config_net_match(nets, n, (struct sockaddr *)&sin);
	}
	if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		return config_net_match(nets, n, (struct sockaddr *)&sin6);
	}
	abort();
}

static void
test_net_match(void)
{
	static const char *const specs[] = {"127.0.0.0/8", "::1/128",
	    "10.1.0.0/16", "2001:db8::/32", "192.0.2.128/25", "198.51.100.7"};
	static const struct {
		const char *ip;
		bool want;
	} t[] = {
	    {"127.0.0.1", true},
	    {"127.255.255.255", true},
	    {"128.0.0.1", false},
	    {"10.1.255.255", true},
	    {"10.2.0.0", false},
	    {"192.0.2.129", true},
	    {"192.0.2.127", false},
	    {"198.51.100.7", true},
	    {"198.51.100.8", false},
	    {"::1", true},
	    {"::2", false},
	    {"2001:db8:ffff::1", true},
	    {"2001:db9::", false},
	    /* v4-mapped peers of a dual-stack socket match v4 nets */
	    {"::ffff:127.0.0.1", true},
	    {"::ffff:10.1.2.3", true},
	    {"::ffff:10.2.0.0", false},
	    {"::ffff:192.0.2.200", true},
	    /* but an IPv4-compatible or NAT64 address does not */
	    {"64:ff9b::7f00:1", false},
	};
	struct config_net nets[MTA_ARRAY_LEN(specs)], any4, any6;
	struct sockaddr_storage un;
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(specs); i++)
		CHECK(config_parse_net(specs[i], &nets[i]) == 0);
	for (i = 0; i < MTA_ARRAY_LEN(t); i++) {
		if (match(nets, MTA_ARRAY_LEN(nets), t[i].ip) != t[i].want)
			fprintf(
			    stderr, "match %s: want %d\n", t[i].ip, t[i].want);
		CHECK(match(nets, MTA_ARRAY_LEN(nets), t[i].ip) == t[i].want);
	}
	CHECK(config_parse_net("0.0.0.0/0", &any4) == 0);
	CHECK(match(&any4, 1, "203.0.113.9"));
	CHECK(match(&any4, 1, "::ffff:203.0.113.9"));
	CHECK(!match(&any4, 1, "2001:db8::1"));
	CHECK(config_parse_net("::/0", &any6) == 0);
	CHECK(match(&any6, 1, "2001:db8::1"));
	CHECK(!match(&any6, 1, "203.0.113.9"));
	CHECK(!match(nets, 0, "127.0.0.1"));
	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	CHECK(!config_net_match(
	    nets, MTA_ARRAY_LEN(nets), (struct sockaddr *)&un));
}

static const struct harness_case cases[] = {
    {"parse_size", test_parse_size},
    {"parse_duration", test_parse_duration},
    {"format", test_format},
    {"parse_addr", test_parse_addr},
    {"parse_net", test_parse_net},
    {"empty_is_defaults", test_empty_is_defaults},
    {"example_loads", test_example_loads},
    {"example_documents_every_key", test_example_documents_every_key},
    {"example_routes_load", test_example_routes_load},
    {"dev_conf", test_dev_conf},
    {"routes", test_routes},
    {"indented", test_indented},
    {"dump_round_trip", test_dump_round_trip},
    {"delivery_inflight", test_delivery_inflight},
    {"bad_files", test_bad_files},
    {"unreadable", test_unreadable},
    {"net_match", test_net_match},
};

HARNESS_MAIN(cases)
