/* SPDX-License-Identifier: ISC */
/*
 * dest_addr.c - the class of an address a delivery would connect to.
 *
 * An IPv6 address that embeds an IPv4 one and leads to it is judged by
 * that IPv4 address: a v4-mapped ::ffff:127.0.0.1 on a dual-stack socket
 * is 127.0.0.1, and a NAT64 64:ff9b::a9fe:a9fe is the gateway's way to
 * 169.254.169.254. Without that a DNS answer could dress any refused
 * address up as "IPv6". Pure; any thread.
 */
#include "deliver/dest_addr.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "base/compat.h"

static enum dest_addr_class
class_v4(const uint8_t a[4])
{
	if (a[0] == 0)
		return DEST_ADDR_UNSPECIFIED;
	if (a[0] == 127)
		return DEST_ADDR_LOOPBACK;
	if (a[0] == 169 && a[1] == 254)
		return DEST_ADDR_LINKLOCAL;
	if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
	    (a[0] == 192 && a[1] == 168) ||
	    (a[0] == 100 && (a[1] & 0xc0) == 64))
		return DEST_ADDR_PRIVATE;
	if ((a[0] & 0xf0) == 224)
		return DEST_ADDR_MULTICAST;
	if (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255)
		return DEST_ADDR_BROADCAST;
	if ((a[0] & 0xf0) == 240)
		return DEST_ADDR_RESERVED;
	return DEST_ADDR_PUBLIC;
}

static bool
zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static enum dest_addr_class
class_v6(const uint8_t a[16])
{
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};

	if (zero(a, 10) && a[10] == 0xff && a[11] == 0xff)
		return class_v4(a + 12); /* ::ffff:a.b.c.d */
	if (memcmp(a, nat64, sizeof(nat64)) == 0)
		return class_v4(a + 12); /* 64:ff9b::a.b.c.d */
	if (zero(a, 12)) {
		if (zero(a + 12, 3) && a[15] <= 1)
			return a[15] ? DEST_ADDR_LOOPBACK
			             : DEST_ADDR_UNSPECIFIED;
		return DEST_ADDR_RESERVED; /* IPv4-compatible, deprecated */
	}
	if (a[0] == 0xff)
		return DEST_ADDR_MULTICAST;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return DEST_ADDR_LINKLOCAL;
	if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0))
		return DEST_ADDR_PRIVATE; /* ULA, and the old site-local */
	return DEST_ADDR_PUBLIC;
}

enum dest_addr_class
dest_addr_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return class_v4((const uint8_t *)&in->sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		return class_v6(in6->sin6_addr.s6_addr);
	}
	return DEST_ADDR_RESERVED;
}

const char *
dest_addr_class_name(enum dest_addr_class c)
{
	static const char *const names[] = {
	    [DEST_ADDR_PUBLIC] = "public",
	    [DEST_ADDR_PRIVATE] = "private",
	    [DEST_ADDR_LOOPBACK] = "loopback",
	    [DEST_ADDR_UNSPECIFIED] = "unspecified",
	    [DEST_ADDR_LINKLOCAL] = "link-local",
	    [DEST_ADDR_MULTICAST] = "multicast",
	    [DEST_ADDR_BROADCAST] = "broadcast",
	    [DEST_ADDR_RESERVED] = "reserved",
	};

	MTA_ASSERT((size_t)c < MTA_ARRAY_LEN(names));
	return names[c];
}

bool
dest_addr_unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	const uint8_t *a;

	memset(out, 0, sizeof(*out));
	if (sa->sa_family != AF_INET6) {
		memcpy(out, sa, sizeof(struct sockaddr_in));
		return false;
	}
	a = in6->sin6_addr.s6_addr;
	if (!zero(a, 10) || a[10] != 0xff || a[11] != 0xff) {
		memcpy(out, sa, sizeof(struct sockaddr_in6));
		return false;
	}
	v4->sin_family = AF_INET;
	v4->sin_port = in6->sin6_port;
	memcpy(&v4->sin_addr, a + 12, 4);
	return true;
}
