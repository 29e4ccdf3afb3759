/* SPDX-License-Identifier: ISC */
/*
 * dns_int.h - private to the dns module files and their white-box unit tests.
 *
 * The pure parts of the resolver live here, with no c-ares and no I/O, so
 * they are unit tested on hand-built replies: the reply parser
 * (dns_msg.c), MX selection (dns_mx.c) and the TTL cache (dns_cache.c).
 * dns_ares.c glues them to the c-ares channel on the resolver thread.
 */
#ifndef MTA_DNS_INT_H
#define MTA_DNS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compat.h"
#include "base/buf.h"
#include "dns/dns.h"

#define DNS_T_A     1
#define DNS_T_NS    2
#define DNS_T_CNAME 5
#define DNS_T_SOA   6
#define DNS_T_MX    15
#define DNS_T_TXT   16
#define DNS_T_AAAA  28
#define DNS_T_OPT   41
#define DNS_T_TLSA  52
#define DNS_C_IN    1

#define DNS_ANSWER_MAX 32 /* records of the asked type kept per reply */
#define DNS_CNAME_MAX  8  /* CNAME hops followed in one reply */

/* An address as found in a reply: no port, no sockaddr padding. */
struct dns_addr {
	int family;    /* AF_INET or AF_INET6 */
	uint8_t a[16]; /* network order; IPv4 in the first 4 bytes */
};

struct dns_mx_rr {
	uint16_t pref;
	char host[DNS_NAME_MAX]; /* lowercase, no trailing dot; "." = root */
};

/*
 * One reply, reduced to what the resolver needs. status is DNS_OK for
 * data and for NODATA (nodata set), DNS_NOTFOUND for NXDOMAIN, and
 * DNS_TEMPFAIL for every other rcode, a truncated or malformed reply, or
 * a transport error (set by dns_ares.c). reason is a static string.
 */
struct dns_answer {
	enum dns_status status;
	const char *reason;       /* static text, never NULL once filled */
	int rcode;                /* header RCODE; -1 when there was no reply */
	bool nodata;              /* NOERROR without records of the type */
	uint32_t ttl;             /* s: least TTL of the records used (CNAMEs
				   * included); negative answers: SOA based,
				   * 0 when there was no SOA */
	unsigned ncname;          /* CNAME hops followed */
	char cname[DNS_NAME_MAX]; /* the name the data belongs to, when
				   * ncname > 0 */
	size_t nmx;               /* qtype MX */
	struct dns_mx_rr mx[DNS_ANSWER_MAX];
	size_t naddrs; /* qtype A or AAAA */
	struct dns_addr addrs[DNS_ANSWER_MAX];
	bool ad;               /* header AD: the resolver validated it */
	size_t ntlsa;          /* qtype TLSA */
	unsigned tlsa_dropped; /* longer than DNS_TLSA_DATA, or too many */
	struct dns_tlsa tlsa[DNS_TLSA_MAX];
};

/* dns_msg.c */

/*
 * dns_msg_parse - parse the raw reply (buf, len) to a query for
 * (qname, qtype), class IN. Everything is bounds checked: compression
 * pointers must point before the name that uses them, so loops are
 * impossible. Fills *out in every case. Returns 0, or -EBADMSG when the
 * reply is malformed or does not answer that question (out->status is
 * then DNS_TEMPFAIL). Pure; any thread.
 */
int dns_msg_parse(const uint8_t *buf, size_t len, const char *qname,
    uint16_t qtype, struct dns_answer *out) MTA_MUST_CHECK;

/* dns_query.c */

#define DNS_QUERY_MAX 300 /* a query's bytes, always enough */

/*
 * dns_query_build - the wire form of a query for (name, qtype), class IN,
 * with id, RD and an EDNS0 OPT record (payload size edns); dnssec adds
 * the AD bit (RFC 6840 5.7: tell us what was validated) and the DO bit
 * (RFC 3225). name: a normalised name (dns_name_norm). Writes at most
 * cap bytes to buf. Returns the length, or -EINVAL for a name that is
 * not one, -ENOBUFS when cap is too small. Pure; any thread.
 */
int dns_query_build(uint8_t *buf, size_t cap, uint16_t id, const char *name,
    uint16_t qtype, uint16_t edns, bool dnssec) MTA_MUST_CHECK;

/* A reply that is not a reply: out says DNS_TEMPFAIL with reason. */
void dns_answer_fail(
    struct dns_answer *out, enum dns_status st, const char *reason);

/*
 * dns_name_norm - validate a host or domain name (LDH and '_', labels of
 * 1..63, at most 253 octets, one optional trailing dot) and write it
 * lowercase without the trailing dot. Returns false for anything else,
 * including IDNs that were not converted to A-labels.
 */
bool dns_name_norm(const char *in, char *out, size_t outlen) MTA_MUST_CHECK;

/* Parse "192.0.2.1", "2001:db8::1", "[192.0.2.1]", "[IPv6:2001:db8::1]"
 * or "[2001:db8::1]". Returns false when s is not an address. */
bool dns_addr_parse(const char *s, struct dns_addr *out) MTA_MUST_CHECK;

/* dns_mx.c */

/* Uniform 32-bit random numbers; tests pass a fixed sequence. */
typedef uint32_t dns_rng_fn(void *arg);

/* One MX host while its addresses are being looked up. */
struct dns_mx_host {
	char name[DNS_NAME_MAX];
	uint16_t pref;
	bool literal;             /* exchange was an IP: no lookup */
	bool cname;               /* an address lookup followed a CNAME */
	enum dns_status a_status; /* of each lookup; DNS_OK also for NODATA */
	enum dns_status aaaa_status;
	const char *a_reason; /* static: what each lookup said */
	const char *aaaa_reason;
	size_t nv4, nv6;
	struct dns_addr v4[DNS_ANSWER_MAX];
	struct dns_addr v6[DNS_ANSWER_MAX];
	unsigned answered;            /* address replies merged (A, AAAA: 2) */
	bool addr_secure;             /* every address reply had AD (so far) */
	bool addr_insecure;           /* an address reply answered without AD */
	enum dns_dane dane;           /* dns_mx_host_tlsa() */
	char expanded[DNS_NAME_MAX];  /* the address lookups' CNAME target */
	bool tlsa_expanded;           /* TLSA asked at expanded, not name */
	char tlsa_base[DNS_NAME_MAX]; /* records found at expanded */
	char dane_reason[DNS_REASON_MAX];
	uint8_t ntlsa, tlsa_dropped;
	struct dns_tlsa tlsa[DNS_TLSA_MAX];
};

struct dns_mx_plan {
	enum dns_status status; /* DNS_OK: look up the hosts' addresses */
	char reason[DNS_REASON_MAX];
	bool implicit;  /* no MX: the domain (or host) itself */
	bool host;      /* dns_resolve_host: no MX involved */
	bool mx_secure; /* the MX reply had AD (a host plan: true) */
	size_t nhosts;  /* DNS_OK: 1..DNS_MAX_TARGETS */
	struct dns_mx_host hosts[DNS_MAX_TARGETS]; /* in the order to try */
};

/*
 * dns_mx_plan - decide from the MX reply for domain (normalised) which
 * hosts to try and in which order: ascending preference, equal ones
 * shuffled with rng, duplicates dropped, at most DNS_MAX_TARGETS. NODATA
 * gives the implicit MX; one "." exchange gives DNS_NULLMX; NXDOMAIN
 * gives DNS_NOTFOUND; an IP exchange becomes a literal host. Pure.
 */
void dns_mx_plan(struct dns_mx_plan *plan, const char *domain,
    const struct dns_answer *mx, dns_rng_fn *rng, void *rngarg);

/* A plan of one host (pref 0) for dns_resolve_host and for domain
 * literals: literal when name is an IP address. */
void dns_mx_plan_host(struct dns_mx_plan *plan, const char *name);

/* Merge the A or AAAA reply (qtype) for host h. Pure. */
void dns_mx_host_add(
    struct dns_mx_host *h, uint16_t qtype, const struct dns_answer *ans);

/* Is host i of the plan (both address replies in) one whose TLSA records
 * count (RFC 7672 2.2.2): MX and addresses validated, not a literal? */
bool dns_mx_host_secure(const struct dns_mx_plan *plan, size_t i);

/*
 * dns_mx_host_addr_fail - RFC 7672 2.2: the MX lookup of the plan was
 * validated (not a route host, not a literal), both address replies of
 * host i are in, one of them failed (SERVFAIL, timeout: possibly bogus)
 * and none answered insecurely. Then the host's DANE status is unknown
 * and it must not be used without DANE: marks it DNS_DANE_FAIL with a
 * reason and returns true. Otherwise false, the host untouched. Pure.
 */
bool dns_mx_host_addr_fail(struct dns_mx_plan *plan, size_t i);

/* The name to ask TLSA at first: the CNAME-expanded name of the host's
 * addresses, when they were reached through one (RFC 7672 2.2.3), else
 * its name. Notes which one in h. Pure. */
const char *dns_mx_host_tlsa_first(struct dns_mx_host *h);

/* Merge the TLSA reply for host h (ans borrowed): validated records,
 * validated NODATA/NXDOMAIN, insecure (no DANE) or a failure. Returns
 * true when the reply was for the expanded name and found no validated
 * records (RFC 7672 2.2.3): ask again at h->name. Pure. */
bool dns_mx_host_tlsa(struct dns_mx_host *h, const struct dns_answer *ans);

/*
 * dns_mx_finish - the answer from a plan whose address lookups are done:
 * hosts without addresses are skipped, each host's addresses shuffled
 * (IPv4 first, then IPv6) and capped to DNS_MAX_ADDRS. No host left gives
 * DNS_NOTFOUND when the plan is implicit and every lookup said the name
 * has no address, else DNS_TEMPFAIL. Fills status, reason and targets of
 * req; touches nothing else. Pure.
 */
void dns_mx_finish(const struct dns_mx_plan *plan, dns_rng_fn *rng,
    void *rngarg, struct dns_req *req);

/* dns_cache.c */

struct dns_cache;

/*
 * dns_cache_new - a cache of at most max_entries entries and max_bytes
 * of data, whose TTLs are clamped to [min_ttl_ms, max_ttl_ms]
 * (max_ttl_ms == 0: nothing is cached). Least recently used entries are
 * evicted first. One owning thread.
 */
struct dns_cache *dns_cache_new(size_t max_entries, size_t max_bytes,
    uint64_t min_ttl_ms, uint64_t max_ttl_ms);
void dns_cache_free(struct dns_cache *c);

/* Store a copy of (data, len) under (type, name), replacing any entry,
 * for ttl_s seconds (clamped) from now_ms (monotonic ms). Positive and
 * negative replies alike. */
void dns_cache_put(struct dns_cache *c, uint16_t type, const char *name,
    const void *data, size_t len, uint32_t ttl_s, uint64_t now_ms);

/* Find a live entry. *data is borrowed: valid until the next call on c
 * other than dns_cache_count(). Expired entries are dropped. */
bool dns_cache_get(struct dns_cache *c, uint16_t type, const char *name,
    uint64_t now_ms, const void **data, size_t *len) MTA_MUST_CHECK;

size_t dns_cache_count(const struct dns_cache *c);

/* dns_txt.c: the TXT records of a raw reply (abuf, alen), each one's
 * strings joined and a NUL after it, appended to out; *n counts them.
 * Returns an ARES_* status (ARES_SUCCESS for NODATA too). */
int dns_txt_records(
    const unsigned char *abuf, int alen, struct buf *out, int *n);

#endif
