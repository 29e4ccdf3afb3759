/* SPDX-License-Identifier: ISC */
/*
 * config_parse.c - the value parsers: numbers, sizes, durations,
 * addresses, networks, host names and route hosts, from file text.
 *
 * Pure functions on C strings with no locale dependence (no strtoul: it
 * accepts "-1", leading spaces and "0x"); they keep no state, so any
 * thread may call them. They know no key: config_value.c applies them
 * to a row of the table. Calls nothing else in config/.
 */
#include "config/config_keys.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/compat.h"
#include "base/str.h"

#define KB  1024ULL
#define MB  (1024ULL * KB)
#define GB  (1024ULL * MB)
#define TB  (1024ULL * GB)
#define SEC 1000ULL
#define MIN (60 * SEC)
#define HR  (60 * MIN)
#define DAY (24 * HR)

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
config_parse_uint(const char *s, uint64_t *out)
{
	bool overflow;
	int rc = parse_digits(&s, out, &overflow);

	if (rc == 0 && *s != '\0')
		return -EINVAL;
	if (rc == 0 && overflow)
		return -ERANGE;
	return rc;
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

int
config_parse_net_lax(const char *s, struct config_net *out)
{
	return net_parse(s, out, false);
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
int
config_parse_route_host(const char *s, struct config_route *r)
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
