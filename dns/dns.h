/* SPDX-License-Identifier: ISC */
/*
 * dns.h - the DNS resolver stage: MX and address lookups for delivery.
 *
 * DESIGN. c-ares 1.18 channels are not thread-safe, so one resolver thread
 * owns the channel, the TTL cache and every lookup in flight. Callers on
 * any thread fill a struct dns_req and send it with dns_resolve_mx() or
 * dns_resolve_host(); the resolver answers exactly once by sending the
 * same struct back on req->reply, filled in. Nothing else is shared.
 *
 * An MX answer is the ordered list of delivery targets, exactly as
 * delivery must try them: MX hosts by ascending preference, equal
 * preferences shuffled, each with its addresses (IPv4 first, then IPv6,
 * each family shuffled). No MX records means the domain itself (implicit
 * MX, RFC 5321 5.1). A null MX (RFC 7505) is DNS_NULLMX. Transient versus
 * permanent is decided here (pitfall 10): NXDOMAIN is permanent, SERVFAIL,
 * REFUSED and timeouts are DNS_TEMPFAIL.
 *
 * Lenient, like Postfix: an MX exchange that is an IP address (bare or
 * [bracketed]) is used as that address, and an exchange that is a CNAME
 * is followed; both are logged. An MX host without addresses is skipped;
 * if every host is skipped the answer is DNS_TEMPFAIL. A domain with no
 * MX and no A/AAAA (a definite answer, not a failed lookup) is
 * DNS_NOTFOUND, as is a route host that has no address.
 *
 * Answers (positive, NXDOMAIN, NODATA) are cached by the resolver thread
 * for their TTL clamped to [dns] min_ttl..max_ttl; failures never are.
 *
 * Names are always absolute: no search list, no HOSTALIASES.
 *
 * DNSSEC ([dns] dnssec = yes): every query is built here (dns_query.c)
 * with the DO and AD bits, sent raw, and the AD bit of each reply is
 * trusted, which is only sound with a local validating resolver. A target
 * whose MX and address answers were all validated gets its TLSA records
 * looked up (RFC 7672 2.2) when the request asks for them.
 */
#ifndef MTA_DNS_H
#define MTA_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/chan.h"
#include "base/buf.h"
#include "base/compat.h"

struct config_dns;

#define DNS_NAME_MAX    256 /* text host name with NUL (RFC 1035: 253) */
#define DNS_REASON_MAX  160 /* text reason with NUL */
#define DNS_MAX_TARGETS 10  /* MX hosts kept per answer, best first */
#define DNS_MAX_ADDRS   8   /* addresses kept per host */
#define DNS_TLSA_MAX    4   /* TLSA records kept per host */
#define DNS_TLSA_DATA   512 /* bytes of one record's association data */

/* chan_msg.type of a request and of its answer (same struct both ways). */
#define DNS_MSG_MX   0x4401
#define DNS_MSG_HOST 0x4402
#define DNS_MSG_TXT  0x4403 /* struct dns_txt_req */

enum dns_status {
	DNS_OK,       /* targets[] holds at least one address */
	DNS_TEMPFAIL, /* try again later: SERVFAIL, timeout, no usable MX host */
	DNS_NOTFOUND, /* permanent: NXDOMAIN, or no MX and no address */
	DNS_NULLMX,   /* permanent: the domain accepts no mail (RFC 7505) */
	DNS_PERMFAIL, /* permanent: the name itself is invalid */
};

/*
 * What DNSSEC says about a target's TLSA records (RFC 7672 2.2), only
 * with [dns] dnssec = yes and a request that asked (tlsa_port != 0).
 */
enum dns_dane {
	DNS_DANE_NONE,    /* no TLSA lookup: DNSSEC off, or the MX or the
			     host's address lookups were not validated, or
			     the TLSA answer itself was insecure */
	DNS_DANE_NODATA,  /* validated: the host has no TLSA records */
	DNS_DANE_RECORDS, /* validated TLSA records (tlsa[], possibly none
			     usable: see tls_policy.h) */
	DNS_DANE_FAIL,    /* the TLSA lookup failed (SERVFAIL, timeout, an
			     unvalidated answer to a validated question):
			     the host must not be used now */
};

/* One TLSA record (RFC 6698 2.1). */
struct dns_tlsa {
	uint8_t usage, selector, mtype;
	uint16_t len; /* of data; records longer than DNS_TLSA_DATA are
			 dropped and counted in tlsa_dropped */
	uint8_t data[DNS_TLSA_DATA];
};

/* One host to connect to. Ports in addrs[] are 0: delivery sets them. */
struct dns_target {
	char name[DNS_NAME_MAX]; /* MX exchange as published (or the domain) */
	uint16_t pref; /* MX preference; 0 for implicit MX and hosts */
	size_t naddrs; /* 1..DNS_MAX_ADDRS */
	struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* AF_INET, AF_INET6 */
	bool secure; /* the MX (if any) and address lookups validated */
	enum dns_dane dane;
	char dane_reason[DNS_REASON_MAX]; /* DNS_DANE_FAIL: why */
	uint8_t ntlsa, tlsa_dropped;
	struct dns_tlsa tlsa[DNS_TLSA_MAX];
	char tlsa_base[DNS_NAME_MAX]; /* RECORDS found at a CNAME-expanded
					 name (RFC 7672 2.2.3): it, also a
					 DANE-TA reference id; else "" */
};

/*
 * A request and, once sent back, its answer. The caller owns the struct
 * except between dns_resolve_*() and its arrival on `reply`, when the
 * resolver does. Size: about 13 KiB; do not put many on a stack.
 */
struct dns_req {
	struct chan_msg msg;       /* first; type set by dns_resolve_*(),
				  * reqid is the caller's and kept */
	struct chan *reply;        /* in: where the answer is sent */
	void *arg;                 /* in: caller's cookie, untouched */
	char domain[DNS_NAME_MAX]; /* in: mail domain, or host for HOST */
	uint16_t tlsa_port;        /* in: look up _PORT._tcp TLSA of each
				      secure target ([dns] dnssec); 0: no */

	enum dns_status status;      /* out */
	char reason[DNS_REASON_MAX]; /* out: why, for logs and DSNs */
	size_t ntargets;             /* out: 0 unless DNS_OK */
	struct dns_target targets[DNS_MAX_TARGETS]; /* out: try in order */
};

struct dns;

/*
 * dns_new - create a resolver (no thread yet) from its config section.
 * cfg is borrowed for this call only. Servers: cfg->servers, or
 * /etc/resolv.conf when there are none. Startup only, any one thread.
 * Returns NULL and one line in err on failure.
 */
struct dns *dns_new(const struct config_dns *cfg, char *err, size_t errlen);

/* Start the resolver thread. 0, or -errno from pthread_create. */
int dns_start(struct dns *r) MTA_MUST_CHECK;

/*
 * dns_free - stop the thread (if started) and free everything. Lookups in
 * flight and requests still queued are answered DNS_TEMPFAIL first.
 * Requests sent after dns_free() has begun are a bug. NULL is a no-op.
 */
void dns_free(struct dns *r);

/*
 * dns_resolve_mx - look up the delivery targets of mail domain
 * req->domain (trailing dot optional). Any thread; never blocks. Ownership
 * of req passes to the resolver until the answer arrives on req->reply
 * with msg.type DNS_MSG_MX. Before dns_start() requests just wait.
 */
void dns_resolve_mx(struct dns *r, struct dns_req *req);

/*
 * dns_resolve_host - the addresses of host req->domain (a route's host):
 * one target named after the host, pref 0. An IP address (bare or
 * [bracketed]) is answered without a query. Same contract as
 * dns_resolve_mx(); the answer's msg.type is DNS_MSG_HOST.
 */
void dns_resolve_host(struct dns *r, struct dns_req *req);

/*
 * dns_literal_target - the answer dns_resolve_host() gives for an IP
 * address (bare or [bracketed], [IPv6:...] too), without the trip to the
 * resolver thread: when host is one, fills *t (out) with one target named
 * host, pref 0, that address (port 0) and returns true; returns false for
 * a name (*t untouched: ask the resolver). Pure; any thread.
 */
bool dns_literal_target(const char *host, struct dns_target *t);

/*
 * A TXT lookup through the resolver thread (MTA-STS's _mta-sts record):
 * the same contract as struct dns_req, answered on reply with msg.type
 * DNS_MSG_TXT. Not cached by the resolver (its caller caches what it
 * makes of the answer).
 */
struct dns_txt_req {
	struct chan_msg msg;         /* first; reqid is the caller's */
	struct chan *reply;          /* in */
	void *arg;                   /* in: caller's cookie */
	char name[DNS_NAME_MAX];     /* in: the name to query */
	enum dns_status status;      /* out: DNS_OK (records or NODATA),
				    DNS_NOTFOUND (NXDOMAIN), DNS_TEMPFAIL */
	char reason[DNS_REASON_MAX]; /* out */
	int nrecords;                /* out */
	struct buf txt;    /* in: initialised with its max by the caller, who
			   frees it; out: each record's strings joined,
			   a NUL after each */
	struct dns *txt_r; /* the resolver's while in flight */
};

/* dns_resolve_txt - send req (ownership passes until its answer). */
void dns_resolve_txt(struct dns *r, struct dns_txt_req *req);

/*
 * dns_txt_lookup - the TXT records of name, looked up once through cfg's
 * servers (or /etc/resolv.conf), blocking up to cfg's timeout and tries:
 * for command-line tools only, never on a relay thread (dns_txt.c).
 * Each record's strings are joined (RFC 6376 3.6.2.2) and the records
 * appended to out, each ending in NUL. Returns how many (0: NODATA),
 * -ENOENT for NXDOMAIN, -EAGAIN for SERVFAIL or timeout; err says why.
 */
int dns_txt_lookup(const struct config_dns *cfg, const char *name,
    struct buf *out, char *err, size_t errlen) MTA_MUST_CHECK;

/* "ok", "tempfail", "notfound", "nullmx", "permfail". */
const char *dns_status_str(enum dns_status s);

/* Is this status permanent (5xx) rather than transient (4xx)? */
bool dns_status_permanent(enum dns_status s);

/* The c-ares version linked, for `mta version`. Static string. */
const char *dns_library_version(void);

#endif
