/* SPDX-License-Identifier: ISC */
/*
 * config_keys.c - every configuration key, and the value parsers.
 *
 * DESIGN
 * The table below is the only list of keys: the loader (config_load.c)
 * looks each name up here and applies the `def` column through the same
 * parser a file value takes (so a default can never be out of its own
 * range), the dumper (config_dump.c) walks it to print, the snapshot code
 * (config_snap.c) reads its restart column, and the unit test checks that
 * mta.conf.example mentions every row. Defaults are written in file
 * syntax ("35M", "5m") so the table reads like the documentation. This
 * file is the bottom of config/: it calls only the formatters
 * (config_format.c), never up.
 *
 * Parsers are pure functions on C strings with no locale dependence
 * (no strtoul: it accepts "-1", leading spaces and "0x"). They run on the
 * loading thread only; nothing here keeps state.
 */
#include "config/config_keys.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/compat.h"
#include "base/str.h"
#include "base/xalloc.h"

#define KB  1024ULL
#define MB  (1024ULL * KB)
#define GB  (1024ULL * MB)
#define TB  (1024ULL * GB)
#define SEC 1000ULL
#define MIN (60 * SEC)
#define HR  (60 * MIN)
#define DAY (24 * HR)

static const char *const tls_policy_names[] = {
    "none", "may", "encrypt", "verify", NULL};
static const char *const sync_names[] = {"full", NULL};

/* Enums are stored through an int; the table relies on this. */
_Static_assert(sizeof(enum config_tls_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_sync) == sizeof(int), "enum size");

#define FIELD(f)                           \
	.off = offsetof(struct config, f), \
	.size = sizeof(((struct config *)0)->f)
#define RFIELD(f)                                \
	.off = offsetof(struct config_route, f), \
	.size = sizeof(((struct config_route *)0)->f)
#define COUNT(f) .count_off = offsetof(struct config, f)

#define KEY(sect, nm, ty, df, lo, hi, ...)                              \
	{                                                               \
		.section = CONFIG_SECT_##sect, .name = nm,              \
		.type = CONFIG_T_##ty, .def = df, .min = lo, .max = hi, \
		__VA_ARGS__                                             \
	}

/* The restart column: why a reload keeps the running value. */
#define RESTART .restart = "needs a restart"
#define SCHED_START                                        \
	.restart = "the scheduler keeps its start value; " \
	           "needs a restart"

/* clang-format off */
const struct config_key config_keys[] = {
	KEY(SERVER, "hostname", HOST, "", 0, 0, FIELD(server.hostname)),
	KEY(SERVER, "listen", ADDRS, "0.0.0.0:587", 0, 0,
	    FIELD(server.listen), COUNT(server.nlisten), .port = 587,
	    RESTART),
	KEY(SERVER, "listen_tls", ADDRS, "", 0, 0,
	    FIELD(server.listen_tls), COUNT(server.nlisten_tls), .port = 465,
	    RESTART),
	KEY(SERVER, "threads", UINT, "0", 0, 1024, FIELD(server.threads),
	    RESTART),
	KEY(SERVER, "max_message_size", SIZE, "35M", 1 * KB, 2 * GB,
	    FIELD(server.max_message_size)),
	KEY(SERVER, "max_recipients", UINT, "1000", 1, 100000,
	    FIELD(server.max_recipients)),
	KEY(SERVER, "max_connections", UINT, "10000", 1, 1000000,
	    FIELD(server.max_connections)),
	KEY(SERVER, "max_connections_per_ip", UINT, "200", 1, 1000000,
	    FIELD(server.max_connections_per_ip)),
	KEY(SERVER, "idle_timeout", DURATION, "5m", 1 * SEC, 1 * DAY,
	    FIELD(server.idle_timeout)),
	KEY(SERVER, "session_timeout", DURATION, "1h", 1 * SEC, 7 * DAY,
	    FIELD(server.session_timeout)),
	KEY(SERVER, "max_inflight", SIZE, "512M", 1 * MB, 1 * TB,
	    FIELD(server.max_inflight), RESTART),
	KEY(SERVER, "max_errors", UINT, "20", 1, 1000,
	    FIELD(server.max_errors)),
	KEY(SERVER, "relay_networks", NETS, "127.0.0.0/8, ::1/128", 0, 0,
	    FIELD(server.relay_networks), COUNT(server.nrelay_networks)),

	KEY(TLS, "certificate", PATH, "", 0, 0, FIELD(tls.certificate)),
	KEY(TLS, "private_key", PATH, "", 0, 0, FIELD(tls.private_key)),

	KEY(AUTH, "users", PATH, "", 0, 0, FIELD(auth.users)),
	KEY(AUTH, "require_tls", BOOL, "yes", 0, 0, FIELD(auth.require_tls)),
	KEY(AUTH, "max_failures", UINT, "3", 1, 100,
	    FIELD(auth.max_failures)),

	KEY(QUEUE, "path", PATH, "/var/spool/mta", 0, 0, FIELD(queue.path),
	    .flags = CONFIG_F_REQUIRED, RESTART),
	KEY(QUEUE, "retry", DURATIONS, "1m, 5m, 15m, 30m, 1h, 2h, 4h",
	    1 * SEC, 30 * DAY, FIELD(queue.retry), COUNT(queue.nretry),
	    .flags = CONFIG_F_REQUIRED, SCHED_START),
	KEY(QUEUE, "max_age", DURATION, "5d", 1 * SEC, 365 * DAY,
	    FIELD(queue.max_age), SCHED_START),
	KEY(QUEUE, "delay_warning", DURATION, "0s", 0, 30 * DAY,
	    FIELD(queue.delay_warning)),
	KEY(QUEUE, "sync", ENUM, "full", 0, 0, FIELD(queue.sync),
	    .names = sync_names, RESTART),
	KEY(QUEUE, "map_size", SIZE, "8G", 64 * KB, 1 * TB,
	    FIELD(queue.map_size), RESTART),

	KEY(DNS, "servers", ADDRS, "", 0, 0, FIELD(dns.servers),
	    COUNT(dns.nservers), .port = 53, RESTART),
	KEY(DNS, "timeout", DURATION, "5s", 100, 60 * SEC, FIELD(dns.timeout),
	    RESTART),
	KEY(DNS, "tries", UINT, "2", 1, 10, FIELD(dns.tries),
	    RESTART),
	KEY(DNS, "min_ttl", DURATION, "60s", 0, 1 * DAY, FIELD(dns.min_ttl),
	    RESTART),
	KEY(DNS, "max_ttl", DURATION, "1d", 0, 30 * DAY, /* 0: no cache */
	    FIELD(dns.max_ttl), RESTART),

	KEY(DELIVERY, "workers", UINT, "0", 0, 4096, FIELD(delivery.workers),
	    RESTART),
	KEY(DELIVERY, "port", UINT, "25", 1, 65535, FIELD(delivery.port)),
	KEY(DELIVERY, "max_connections", UINT, "1000", 1, 1000000,
	    FIELD(delivery.max_connections),
	    .restart = "applies to connections; the scheduler's job cap "
	               "keeps its start value until a restart"),
	KEY(DELIVERY, "max_connections_per_host", UINT, "20", 1, 10000,
	    FIELD(delivery.max_connections_per_host),
	    .restart = "applies to connections; the scheduler's "
	               "per-destination window keeps its start value "
	               "until a restart"),
	KEY(DELIVERY, "max_messages_per_connection", UINT, "100", 1, 100000,
	    FIELD(delivery.max_messages_per_connection)),
	KEY(DELIVERY, "tls", ENUM, "may", 0, 0, FIELD(delivery.tls),
	    .names = tls_policy_names),
	KEY(DELIVERY, "connect_timeout", DURATION, "30s", 1 * SEC, 10 * MIN,
	    FIELD(delivery.connect_timeout)),
	KEY(DELIVERY, "command_timeout", DURATION, "5m", 1 * SEC, 1 * HR,
	    FIELD(delivery.command_timeout)),
	KEY(DELIVERY, "data_timeout", DURATION, "10m", 1 * SEC, 1 * HR,
	    FIELD(delivery.data_timeout)),
	KEY(DELIVERY, "idle_timeout", DURATION, "30s", 0, 1 * HR,
	    FIELD(delivery.idle_timeout)),
	KEY(DELIVERY, "helo_name", HOST, "", 0, 0, FIELD(delivery.helo_name)),

	/* No default host: a route without one is an error. No default tls:
	 * unset means [delivery] tls applies (tls_set stays false). */
	KEY(ROUTE, "host", ROUTE_HOST, NULL, 0, 0, RFIELD(host)),
	KEY(ROUTE, "tls", ROUTE_TLS, NULL, 0, 0, RFIELD(tls),
	    .names = tls_policy_names),
	KEY(ROUTE, "username", STRING, "", 0, 0, RFIELD(username)),
	KEY(ROUTE, "password", STRING, "", 0, 0, RFIELD(password)),
};
/* clang-format on */

const size_t config_nkeys = MTA_ARRAY_LEN(config_keys);

static const char *const section_names[] = {
    [CONFIG_SECT_NONE] = "",
    [CONFIG_SECT_SERVER] = "server",
    [CONFIG_SECT_TLS] = "tls",
    [CONFIG_SECT_AUTH] = "auth",
    [CONFIG_SECT_QUEUE] = "queue",
    [CONFIG_SECT_DNS] = "dns",
    [CONFIG_SECT_DELIVERY] = "delivery",
    [CONFIG_SECT_ROUTE] = "route",
};

const char *
config_section_name(enum config_section s)
{
	MTA_ASSERT((size_t)s < MTA_ARRAY_LEN(section_names));
	return section_names[s];
}

const struct config_key *
config_key_find(enum config_section s, const char *name)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].section == s &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

const char *
config_tls_policy_name(enum config_tls_policy p)
{
	MTA_ASSERT((size_t)p < MTA_ARRAY_LEN(tls_policy_names) - 1);
	return tls_policy_names[p];
}

/*
 * Pure parsers.
 */

/*
 * Digits only. Overflow is remembered, not fatal, so "99999999999999999999G"
 * is reported as out of range while "99999999999999999999Q" is still
 * reported as a syntax error.
 */
static int
parse_digits(const char **sp, uint64_t *out, bool *overflow)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	*overflow = false;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			*overflow = true;
		else
			v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

static int
scale(uint64_t v, bool overflow, uint64_t unit, uint64_t *out)
{
	if (overflow || (v != 0 && v > UINT64_MAX / unit))
		return -ERANGE;
	*out = v * unit;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, unit;
	bool overflow;

	if (parse_digits(&s, &v, &overflow) < 0)
		return -EINVAL;
	switch (*s) {
	case '\0':
		unit = 1;
		break;
	case 'k':
	case 'K':
		unit = KB;
		break;
	case 'm':
	case 'M':
		unit = MB;
		break;
	case 'g':
	case 'G':
		unit = GB;
		break;
	case 't':
	case 'T':
		unit = TB;
		break;
	default:
		return -EINVAL;
	}
	if (*s != '\0' && s[1] != '\0')
		return -EINVAL;
	return scale(v, overflow, unit, out);
}

int
config_parse_duration(const char *s, uint64_t *out)
{
	uint64_t v, unit;
	bool overflow;

	if (parse_digits(&s, &v, &overflow) < 0)
		return -EINVAL;
	if (strcmp(s, "") == 0 || strcmp(s, "s") == 0)
		unit = SEC;
	else if (strcmp(s, "ms") == 0)
		unit = 1;
	else if (strcmp(s, "m") == 0)
		unit = MIN;
	else if (strcmp(s, "h") == 0)
		unit = HR;
	else if (strcmp(s, "d") == 0)
		unit = DAY;
	else
		return -EINVAL;
	return scale(v, overflow, unit, out);
}

/* 1..65535, decimal, no sign. */
static int
parse_port(const char *s, uint16_t *out)
{
	uint64_t v;
	bool overflow;

	if (parse_digits(&s, &v, &overflow) < 0 || *s != '\0' || overflow ||
	    v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int
config_parse_addr(const char *s, uint16_t default_port, struct config_addr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *h, *end, *port = NULL;
	struct config_addr a;
	size_t hlen;
	uint16_t pnum = default_port;

	if (*s == '[') {
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL)
			return -EINVAL;
		hlen = (size_t)(end - h);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		h = s;
		end = strchr(s, ':');
		/* Two colons or more: a bare IPv6 address, no port. */
		if (end != NULL && strchr(end + 1, ':') == NULL) {
			hlen = (size_t)(end - h);
			port = end + 1;
		} else
			hlen = strlen(h);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (port != NULL && parse_port(port, &pnum) < 0)
		return -EINVAL;
	if (pnum == 0)
		return -EINVAL;

	memset(&a, 0, sizeof(a));
	if (*s != '[' && inet_pton(AF_INET, host,
	                     &((struct sockaddr_in *)&a.ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(pnum);
		a.sslen = sizeof(*sin);
		if (!str_fmt(a.text, sizeof(a.text), "%s:%u", host, pnum))
			return -EINVAL;
	} else if (inet_pton(AF_INET6, host,
	               &((struct sockaddr_in6 *)&a.ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
		char norm[INET6_ADDRSTRLEN];

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(pnum);
		a.sslen = sizeof(*sin6);
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, norm, sizeof(norm)) ==
		        NULL ||
		    !str_fmt(a.text, sizeof(a.text), "[%s]:%u", norm, pnum))
			return -EINVAL;
	} else
		return -EINVAL;
	*out = a;
	return 0;
}

/*
 * strict: refuse host bits below the prefix. The loader parses a second
 * time without it only to say what the admin probably meant.
 */
static int
net_parse(const char *s, struct config_net *out, bool strict)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *addr = buf;
	struct config_net n;
	unsigned maxbits, bits, i;
	uint64_t v;
	bool overflow;

	if (!str_copy(buf, sizeof(buf), s))
		return -EINVAL;
	memset(&n, 0, sizeof(n));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (*addr == '[') {
		size_t len = strlen(addr);

		if (len < 2 || addr[len - 1] != ']')
			return -EINVAL;
		addr[len - 1] = '\0';
		addr++;
	}
	if (inet_pton(AF_INET, addr, n.addr) == 1) {
		n.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, n.addr) == 1) {
		n.family = AF_INET6;
		maxbits = 128;
	} else
		return -EINVAL;
	bits = maxbits;
	if (slash != NULL) {
		const char *p = slash + 1;

		if (parse_digits(&p, &v, &overflow) < 0 || *p != '\0' ||
		    overflow || v > maxbits)
			return -EINVAL;
		bits = (unsigned)v;
	}
	n.prefix = (uint8_t)bits;
	for (i = 0; i < maxbits / 8; i++) {
		unsigned keep = bits >= (i + 1) * 8 ? 8
		                : bits > i * 8      ? bits - i * 8
		                                    : 0;
		uint8_t mask = (uint8_t)(0xff00u >> keep);

		if (strict && (n.addr[i] & (uint8_t)~mask) != 0)
			return -EINVAL;
		n.addr[i] &= mask;
	}
	*out = n;
	return 0;
}

int
config_parse_net(const char *s, struct config_net *out)
{
	return net_parse(s, out, true);
}

/* Letters, digits, '-', '_' and '.', no empty label, at most 253. */
bool
config_valid_hostname(const char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else
			return false;
	}
	return label != 0;
}

/*
 * "[192.0.2.10]:25", "[2001:db8::1]", "[ipv6:2001:db8::1]", "[mx.example]"
 * (bracketed: literal, no MX lookup, as in Postfix); "mx.example:2525",
 * "mx.example". An unbracketed IP address is literal too: there is no MX
 * to look up for it.
 */
static int
route_host_parse(const char *s, struct config_route *r)
{
	char host[CONFIG_HOST_MAX];
	const char *h, *end, *port = NULL;
	struct in6_addr a6;
	struct in_addr a4;
	size_t hlen;
	uint16_t pnum = 0;
	bool literal = false;

	if (*s == '[') {
		literal = true;
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL)
			return -EINVAL;
		hlen = (size_t)(end - h);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
		if (hlen > 5 && strncasecmp(h, "ipv6:", 5) == 0) {
			h += 5;
			hlen -= 5;
		}
	} else {
		h = s;
		if ((end = strchr(s, ':')) != NULL) {
			hlen = (size_t)(end - h);
			port = end + 1;
		} else
			hlen = strlen(s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (port != NULL && parse_port(port, &pnum) < 0)
		return -EINVAL;
	if (inet_pton(AF_INET, host, &a4) == 1)
		literal = true;
	else if (!(literal && inet_pton(AF_INET6, host, &a6) == 1) &&
	         !config_valid_hostname(host))
		return -EINVAL;
	str_copy(r->host, sizeof(r->host), host);
	r->literal = literal;
	r->port = pnum;
	return 0;
}

/*
 * Setting fields.
 */

static void *
field(const struct config_key *k, void *base)
{
	return (char *)base + k->off;
}

static void
why_value(char *why, size_t whylen, const char *what, const char *value)
{
	/* Long values are cut: the line number already finds them. */
	snprintf(why, whylen, "%s \"%.64s%s\"", what, value,
	    strlen(value) > 64 ? "..." : "");
}

static void
why_range(
    const struct config_key *k, char *why, size_t whylen, const char *value)
{
	char lo[CONFIG_FMT_MAX], hi[CONFIG_FMT_MAX], v[96];

	switch (k->type) {
	case CONFIG_T_SIZE:
		config_format_size(k->min, lo, sizeof(lo));
		config_format_size(k->max, hi, sizeof(hi));
		break;
	case CONFIG_T_DURATION:
	case CONFIG_T_DURATIONS:
		config_format_duration(k->min, lo, sizeof(lo));
		config_format_duration(k->max, hi, sizeof(hi));
		break;
	default:
		snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
		snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
		break;
	}
	why_value(v, sizeof(v), "out of range", value);
	snprintf(why, whylen, "%s (%s..%s)", v, lo, hi);
}

/* Parse one number-like value of k's type and check its bounds. */
static int
number_parse(const struct config_key *k, const char *value, uint64_t *out,
    char *why, size_t whylen)
{
	const char *what, *p = value;
	bool overflow;
	int rc;

	switch (k->type) {
	case CONFIG_T_SIZE:
		what = "invalid size";
		rc = config_parse_size(value, out);
		break;
	case CONFIG_T_DURATION:
	case CONFIG_T_DURATIONS:
		what = "invalid duration";
		rc = config_parse_duration(value, out);
		break;
	default:
		what = "invalid number";
		rc = parse_digits(&p, out, &overflow);
		if (rc == 0 && *p != '\0')
			rc = -EINVAL;
		else if (rc == 0 && overflow)
			rc = -ERANGE;
		break;
	}
	if (rc == -EINVAL) {
		why_value(why, whylen, what, value);
		return -1;
	}
	if (rc < 0 || *out < k->min || *out > k->max) {
		why_range(k, why, whylen, value);
		return -1;
	}
	return 0;
}

static int
enum_parse(const struct config_key *k, const char *value, int *out, char *why,
    size_t whylen)
{
	char v[96], list[128] = "";
	int i;

	for (i = 0; k->names[i] != NULL; i++)
		if (strcasecmp(value, k->names[i]) == 0) {
			*out = i;
			return 0;
		}
	for (i = 0; k->names[i] != NULL; i++) {
		size_t used = strlen(list);

		snprintf(list + used, sizeof(list) - used, "%s%s",
		    i ? ", " : "", k->names[i]);
	}
	why_value(v, sizeof(v), "invalid value", value);
	snprintf(why, whylen, "%s (%s)", v, list);
	return -1;
}

static int
string_set(const struct config_key *k, void *base, const char *value, char *why,
    size_t whylen)
{
	const char *p;

	if (*value == '\0' && (k->flags & CONFIG_F_REQUIRED)) {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	if (strlen(value) >= k->size) {
		snprintf(why, whylen, "too long (max %zu bytes)", k->size - 1);
		return -1;
	}
	if (k->type == CONFIG_T_HOST && *value != '\0' &&
	    !config_valid_hostname(value)) {
		why_value(why, whylen, "invalid host name", value);
		return -1;
	}
	for (p = value; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p)) {
			why_value(why, whylen, "control character in", value);
			return -1;
		}
	str_copy(field(k, base), k->size, value);
	return 0;
}

static size_t
item_size(const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_T_DURATIONS:
		return sizeof(uint64_t);
	case CONFIG_T_ADDRS:
		return sizeof(struct config_addr);
	case CONFIG_T_NETS:
		return sizeof(struct config_net);
	default:
		MTA_ASSERT(!"not a list");
	}
}

static int
item_parse(const struct config_key *k, const char *item, void *out, char *why,
    size_t whylen)
{
	struct config_net lax;
	char v[96];

	switch (k->type) {
	case CONFIG_T_DURATIONS:
		return number_parse(k, item, out, why, whylen);
	case CONFIG_T_ADDRS:
		if (config_parse_addr(item, k->port, out) == 0)
			return 0;
		why_value(why, whylen, "invalid address", item);
		return -1;
	case CONFIG_T_NETS:
		if (config_parse_net(item, out) == 0)
			return 0;
		why_value(v, sizeof(v), "invalid network", item);
		if (net_parse(item, &lax, false) == 0) {
			char net[INET6_ADDRSTRLEN + 8];

			snprintf(why, whylen, "%s (host bits set; use %s)", v,
			    config_format_net(&lax, net, sizeof(net)));
		} else
			snprintf(why, whylen, "%s", v);
		return -1;
	default:
		MTA_ASSERT(!"not a list");
	}
}

static bool
item_dup(
    const struct config_key *k, const void *items, size_t n, const void *item)
{
	const struct config_addr *a = items, *b = item;
	size_t i;

	/* Binding one address twice fails only at startup; say it now. */
	if (k->type != CONFIG_T_ADDRS)
		return false;
	for (i = 0; i < n; i++)
		if (strcmp(a[i].text, b->text) == 0)
			return true;
	return false;
}

/*
 * A comma-separated list; empty items are skipped so a continued line may
 * end with a comma. Builds a new array and swaps it in only when every
 * item parsed, so a failed set leaves the old list intact.
 */
static int
list_set(const struct config_key *k, void *base, const char *value, bool append,
    char *why, size_t whylen)
{
	size_t isz = item_size(k), n = 0, cap, oldn;
	char *items, *copy, *p, *item, *save = NULL;
	void *old;

	memcpy(&old, field(k, base), sizeof(old));
	memcpy(&oldn, (char *)base + k->count_off, sizeof(oldn));
	cap = CONFIG_LIST_MAX;
	items = xcalloc(cap, isz);
	if (append && oldn > 0) {
		memcpy(items, old, oldn * isz);
		n = oldn;
	}
	copy = xstrdup(value);
	for (p = copy; (item = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		char *end;

		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*item == '\0')
			continue;
		if (n == cap) {
			snprintf(why, whylen, "too many items (max %d)",
			    CONFIG_LIST_MAX);
			goto fail;
		}
		if (item_parse(k, item, items + n * isz, why, whylen) < 0)
			goto fail;
		if (item_dup(k, items, n, items + n * isz)) {
			why_value(why, whylen, "duplicate address", item);
			goto fail;
		}
		n++;
	}
	if (n == 0 && (k->flags & CONFIG_F_REQUIRED)) {
		snprintf(why, whylen, "must not be empty");
		goto fail;
	}
	free(copy);
	free(old);
	if (n == 0) {
		free(items);
		items = NULL;
	}
	memcpy(field(k, base), &items, sizeof(items));
	memcpy((char *)base + k->count_off, &n, sizeof(n));
	return 0;
fail:
	free(copy);
	free(items);
	return -1;
}

int
config_key_set(const struct config_key *k, void *base, const char *value,
    bool append, char *why, size_t whylen)
{
	uint64_t v;
	bool b;
	int e;

	if (append && k->type != CONFIG_T_DURATIONS &&
	    k->type != CONFIG_T_ADDRS && k->type != CONFIG_T_NETS) {
		snprintf(why, whylen,
		    "unexpected indented line (only lists "
		    "may continue on indented lines)");
		return -1;
	}
	switch (k->type) {
	case CONFIG_T_STRING:
	case CONFIG_T_PATH:
	case CONFIG_T_HOST:
		return string_set(k, base, value, why, whylen);
	case CONFIG_T_BOOL:
		if (strcasecmp(value, "yes") == 0)
			b = true;
		else if (strcasecmp(value, "no") == 0)
			b = false;
		else {
			char v2[96];

			why_value(v2, sizeof(v2), "invalid boolean", value);
			snprintf(why, whylen, "%s (yes or no)", v2);
			return -1;
		}
		memcpy(field(k, base), &b, sizeof(b));
		return 0;
	case CONFIG_T_UINT:
		if (number_parse(k, value, &v, why, whylen) < 0)
			return -1;
		if (k->size == sizeof(uint16_t)) {
			uint16_t v16 = (uint16_t)v;

			MTA_ASSERT(k->max <= UINT16_MAX);
			memcpy(field(k, base), &v16, sizeof(v16));
		} else {
			unsigned u = (unsigned)v;

			MTA_ASSERT(k->size == sizeof(unsigned) &&
			           k->max <= UINT32_MAX);
			memcpy(field(k, base), &u, sizeof(u));
		}
		return 0;
	case CONFIG_T_SIZE:
	case CONFIG_T_DURATION:
		if (number_parse(k, value, &v, why, whylen) < 0)
			return -1;
		memcpy(field(k, base), &v, sizeof(v));
		return 0;
	case CONFIG_T_DURATIONS:
	case CONFIG_T_ADDRS:
	case CONFIG_T_NETS:
		return list_set(k, base, value, append, why, whylen);
	case CONFIG_T_ENUM:
	case CONFIG_T_ROUTE_TLS:
		if (enum_parse(k, value, &e, why, whylen) < 0)
			return -1;
		memcpy(field(k, base), &e, sizeof(e));
		if (k->type == CONFIG_T_ROUTE_TLS)
			((struct config_route *)base)->tls_set = true;
		return 0;
	case CONFIG_T_ROUTE_HOST:
		if (route_host_parse(value, base) < 0) {
			why_value(why, whylen, "invalid host", value);
			return -1;
		}
		return 0;
	}
	MTA_ASSERT(!"unknown key type");
}

void
config_key_free(const struct config_key *k, void *base)
{
	size_t zero = 0;
	void *p;

	if (k->type != CONFIG_T_DURATIONS && k->type != CONFIG_T_ADDRS &&
	    k->type != CONFIG_T_NETS)
		return;
	memcpy(&p, field(k, base), sizeof(p));
	free(p);
	p = NULL;
	memcpy(field(k, base), &p, sizeof(p));
	memcpy((char *)base + k->count_off, &zero, sizeof(zero));
}

int
config_parse_endpoint(const char *s, struct config_addr *out)
{
	int rc = config_parse_addr(s, 0, out);

	if (rc != 0)
		return rc;
	if ((out->ss.ss_family == AF_INET
	            ? ((struct sockaddr_in *)&out->ss)->sin_port
	            : ((struct sockaddr_in6 *)&out->ss)->sin6_port) == 0)
		return -EINVAL;
	return 0;
}
