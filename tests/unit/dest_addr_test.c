/* SPDX-License-Identifier: ISC */
/*
 * dest_addr_test.c - the address classifier of the destination policy:
 * every class at its edges, IPv4 and IPv6, and the IPv6 forms that lead
 * to an IPv4 address (v4-mapped, NAT64).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "deliver/dest_addr.h"
#include "../harness.h"

/* text -> sockaddr (port p); false when it does not parse */
static bool
sa_of(const char *text, uint16_t p, struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(p);
		return true;
	}
	if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(p);
		return true;
	}
	return false;
}

static const struct {
	const char *addr;
	enum dest_addr_class c;
} rows[] = {
    {"127.0.0.1", DEST_ADDR_LOOPBACK},
    {"127.255.255.254", DEST_ADDR_LOOPBACK},
    {"126.255.255.255", DEST_ADDR_PUBLIC},
    {"128.0.0.1", DEST_ADDR_PUBLIC},
    {"0.0.0.0", DEST_ADDR_UNSPECIFIED},
    {"0.1.2.3", DEST_ADDR_UNSPECIFIED},
    {"10.0.0.0", DEST_ADDR_PRIVATE},
    {"10.1.2.3", DEST_ADDR_PRIVATE},
    {"10.255.255.255", DEST_ADDR_PRIVATE},
    {"11.0.0.1", DEST_ADDR_PUBLIC},
    {"9.255.255.255", DEST_ADDR_PUBLIC},
    {"172.15.255.255", DEST_ADDR_PUBLIC},
    {"172.16.0.1", DEST_ADDR_PRIVATE},
    {"172.31.255.255", DEST_ADDR_PRIVATE},
    {"172.32.0.0", DEST_ADDR_PUBLIC},
    {"192.168.0.1", DEST_ADDR_PRIVATE},
    {"192.169.0.1", DEST_ADDR_PUBLIC},
    {"100.63.255.255", DEST_ADDR_PUBLIC},
    {"100.64.0.1", DEST_ADDR_PRIVATE},
    {"100.127.255.255", DEST_ADDR_PRIVATE},
    {"100.128.0.0", DEST_ADDR_PUBLIC},
    {"169.254.169.254", DEST_ADDR_LINKLOCAL},
    {"169.254.0.0", DEST_ADDR_LINKLOCAL},
    {"169.253.255.255", DEST_ADDR_PUBLIC},
    {"169.255.0.0", DEST_ADDR_PUBLIC},
    {"224.0.0.1", DEST_ADDR_MULTICAST},
    {"239.255.255.255", DEST_ADDR_MULTICAST},
    {"223.255.255.255", DEST_ADDR_PUBLIC},
    {"240.0.0.1", DEST_ADDR_RESERVED},
    {"255.255.255.254", DEST_ADDR_RESERVED},
    {"255.255.255.255", DEST_ADDR_BROADCAST},
    {"192.0.2.1", DEST_ADDR_PUBLIC},
    {"8.8.8.8", DEST_ADDR_PUBLIC},
    {"::1", DEST_ADDR_LOOPBACK},
    {"::", DEST_ADDR_UNSPECIFIED},
    {"::2", DEST_ADDR_RESERVED},
    {"::127.0.0.1", DEST_ADDR_RESERVED},
    {"::ffff:127.0.0.1", DEST_ADDR_LOOPBACK},
    {"::ffff:0.0.0.0", DEST_ADDR_UNSPECIFIED},
    {"::ffff:10.1.2.3", DEST_ADDR_PRIVATE},
    {"::ffff:169.254.169.254", DEST_ADDR_LINKLOCAL},
    {"::ffff:224.0.0.1", DEST_ADDR_MULTICAST},
    {"::ffff:255.255.255.255", DEST_ADDR_BROADCAST},
    {"::ffff:192.0.2.1", DEST_ADDR_PUBLIC},
    {"64:ff9b::a9fe:a9fe", DEST_ADDR_LINKLOCAL},
    {"64:ff9b::7f00:1", DEST_ADDR_LOOPBACK},
    {"64:ff9b::c000:201", DEST_ADDR_PUBLIC},
    {"fe80::1", DEST_ADDR_LINKLOCAL},
    {"febf:ffff::1", DEST_ADDR_LINKLOCAL},
    {"fec0::1", DEST_ADDR_PRIVATE},
    {"fc00::1", DEST_ADDR_PRIVATE},
    {"fdff:ffff::1", DEST_ADDR_PRIVATE},
    {"fbff::1", DEST_ADDR_PUBLIC},
    {"ff02::1", DEST_ADDR_MULTICAST},
    {"ff05::2", DEST_ADDR_MULTICAST},
    {"2001:db8::1", DEST_ADDR_PUBLIC},
    {"2a00:1450:4001:80b::200e", DEST_ADDR_PUBLIC},
};

static void
test_classes(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss;
		enum dest_addr_class c;

		CHECK(sa_of(rows[i].addr, 25, &ss));
		c = dest_addr_classify((const struct sockaddr *)&ss);
		if (c != rows[i].c)
			fprintf(stderr, "%s: %s, want %s\n", rows[i].addr,
			    dest_addr_class_name(c),
			    dest_addr_class_name(rows[i].c));
		CHECK(c == rows[i].c);
	}
}

static void
test_other_family(void)
{
	struct sockaddr sa = {.sa_family = AF_UNIX};

	CHECK(dest_addr_classify(&sa) == DEST_ADDR_RESERVED);
}

static void
test_names(void)
{
	CHECK(strcmp(dest_addr_class_name(DEST_ADDR_PUBLIC), "public") == 0);
	CHECK(
	    strcmp(dest_addr_class_name(DEST_ADDR_LOOPBACK), "loopback") == 0);
	CHECK(strcmp(dest_addr_class_name(DEST_ADDR_LINKLOCAL), "link-local") ==
	      0);
	CHECK(
	    strcmp(dest_addr_class_name(DEST_ADDR_RESERVED), "reserved") == 0);
}

static void
test_unmap(void)
{
	struct sockaddr_storage ss, out;
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)&out;

	CHECK(sa_of("::ffff:127.0.0.1", 2525, &ss));
	CHECK(dest_addr_unmap((const struct sockaddr *)&ss, &out));
	CHECK(out.ss_family == AF_INET);
	CHECK(ntohs(v4->sin_port) == 2525);
	CHECK(ntohl(v4->sin_addr.s_addr) == 0x7f000001);

	CHECK(sa_of("::1", 25, &ss));
	CHECK(!dest_addr_unmap((const struct sockaddr *)&ss, &out));
	CHECK(memcmp(&ss, &out, sizeof(struct sockaddr_in6)) == 0);

	CHECK(sa_of("10.1.2.3", 25, &ss));
	CHECK(!dest_addr_unmap((const struct sockaddr *)&ss, &out));
	CHECK(memcmp(&ss, &out, sizeof(struct sockaddr_in)) == 0);
}

static const struct harness_case cases[] = {
    {"classes", test_classes},
    {"other_family", test_other_family},
    {"names", test_names},
    {"unmap", test_unmap},
};

HARNESS_MAIN(cases)
