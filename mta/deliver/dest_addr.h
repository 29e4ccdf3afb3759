/* SPDX-License-Identifier: ISC */
/*
 * dest_addr.h - what kind of address a delivery would connect to: the
 * classifier behind the destination policy (dest_policy.h). Pure
 * functions over a sockaddr; no I/O, no state. Any thread.
 */
#ifndef MTA_DEST_ADDR_H
#define MTA_DEST_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

/* Address classes, the ones a relay must not reach first. */
enum dest_addr_class {
	DEST_ADDR_PUBLIC,      /* everything else: the Internet */
	DEST_ADDR_PRIVATE,     /* 10/8 172.16/12 192.168/16 100.64/10
				  fc00::/7 fec0::/10 */
	DEST_ADDR_LOOPBACK,    /* 127/8 ::1 */
	DEST_ADDR_UNSPECIFIED, /* 0/8 (0.0.0.0 reaches this host) :: */
	DEST_ADDR_LINKLOCAL,   /* 169.254/16 (cloud metadata) fe80::/10 */
	DEST_ADDR_MULTICAST,   /* 224/4 ff00::/8 */
	DEST_ADDR_BROADCAST,   /* 255.255.255.255 */
	DEST_ADDR_RESERVED,    /* 240/4; IPv4-compatible ::/96; not
				  AF_INET/AF_INET6 */
};

/*
 * dest_addr_classify - the class of sa (AF_INET or AF_INET6; the port is
 * ignored). An IPv6 address that carries an IPv4 one and reaches it
 * (v4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96) is the class of that
 * IPv4 address: ::ffff:127.0.0.1 is loopback. sa is borrowed.
 */
enum dest_addr_class dest_addr_classify(const struct sockaddr *sa);

/* "public", "private", "loopback", ...: a static string, for logs and
 * bounce texts. */
const char *dest_addr_class_name(enum dest_addr_class c);

/*
 * dest_addr_unmap - a v4-mapped IPv6 sa (::ffff:a.b.c.d) as the AF_INET
 * address it reaches, port kept, in *out (true); any other sa is copied
 * to *out unchanged (false). So two forms of one destination compare
 * equal. sa (AF_INET or AF_INET6) borrowed; out (out) may not alias it.
 */
bool dest_addr_unmap(const struct sockaddr *sa, struct sockaddr_storage *out);

#endif
