/* SPDX-License-Identifier: ISC */
/*
 * dns_msg.c - a pure, bounds-checked parser of DNS replies (RFC 1035).
 *
 * We parse the raw reply ourselves, rather than with ares_parse_*_reply,
 * to keep TTLs (the cache needs them, negative ones from the SOA too), to
 * see a null MX for what it is, to tell NXDOMAIN from NODATA, to read the
 * AD bit (DNSSEC) and TLSA records (RFC 6698), which c-ares 1.18 cannot.
 *
 * Every read is checked against the end of the buffer before it happens
 * (`len - pos < need`, never `pos + need > len`). A compression pointer
 * must point before the start of the name segment that contains it, so a
 * name is read in strictly decreasing segments and cannot loop; the 255
 * octet limit on names bounds the work as well. Pure: no I/O, no state.
 */
#include "dns/dns_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/str.h"

#define DNS_HDR_LEN       12
#define DNS_WIRE_NAME_MAX 255

struct dns_rr {
	char owner[DNS_NAME_MAX];
	bool odd; /* owner has bytes no host name may contain */
	uint16_t type;
	uint16_t class;
	uint32_t ttl; /* s, with RFC 2181's top bit rule applied */
	size_t rdpos; /* rdata offset in the reply */
	size_t rdlen;
};

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static bool
dns_host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Read the name at *pos into out (lowercase, dot separated, "." for the
 * root) and move *pos past it. *odd is set when a label holds a byte that
 * no host name may contain; the name is still returned, so that callers
 * can skip the record rather than the whole reply. out has room for
 * DNS_NAME_MAX bytes, which always fits a 255 octet wire name.
 */
static int
dns_msg_name(const uint8_t *buf, size_t len, size_t *pos, char *out, bool *odd)
{
	size_t p = *pos, seg = *pos, wire = 0, o = 0;
	bool jumped = false;

	*odd = false;
	for (;;) {
		uint8_t c;

		if (p >= len)
			return -EBADMSG;
		c = buf[p];
		if (c == 0) {
			if (!jumped)
				*pos = p + 1;
			break;
		}
		if ((c & 0xc0) == 0xc0) {
			size_t off;

			if (len - p < 2)
				return -EBADMSG;
			off = (size_t)(c & 0x3f) << 8 | buf[p + 1];
			if (off >= seg)
				return -EBADMSG; /* forward or loop */
			if (!jumped)
				*pos = p + 2;
			jumped = true;
			p = seg = off;
			continue;
		}
		if (c & 0xc0)
			return -EBADMSG; /* 0x40, 0x80: obsolete label types */
		if (len - p - 1 < c)
			return -EBADMSG;
		wire += (size_t)c + 1;
		if (wire + 1 > DNS_WIRE_NAME_MAX)
			return -EBADMSG;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < c; i++) {
			uint8_t b = buf[p + 1 + i];

			if (!dns_host_char(b))
				*odd = true;
			if (b >= 'A' && b <= 'Z')
				b = (uint8_t)(b - 'A' + 'a');
			/* Never a NUL inside the C string. */
			out[o++] = b ? (char)b : '?';
		}
		p += (size_t)c + 1;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return 0;
}

static int
dns_msg_rr(const uint8_t *buf, size_t len, size_t *pos, struct dns_rr *rr)
{
	int rc;

	if ((rc = dns_msg_name(buf, len, pos, rr->owner, &rr->odd)) < 0)
		return rc;
	if (len - *pos < 10)
		return -EBADMSG;
	rr->type = get16(buf + *pos);
	rr->class = get16(buf + *pos + 2);
	rr->ttl = get32(buf + *pos + 4);
	if (rr->ttl > 0x7fffffffu)
		rr->ttl = 0; /* RFC 2181 8 */
	rr->rdlen = get16(buf + *pos + 8);
	rr->rdpos = *pos + 10;
	if (len - rr->rdpos < rr->rdlen)
		return -EBADMSG;
	*pos = rr->rdpos + rr->rdlen;
	return 0;
}

/* A name that must fill the rest of the rdata exactly. */
static int
dns_msg_rdname(const uint8_t *buf, const struct dns_rr *rr, size_t at,
    char *out, bool *odd)
{
	size_t end = rr->rdpos + rr->rdlen, pos = at;
	int rc;

	/* Read within the reply; pointers may leave the rdata, labels not. */
	if ((rc = dns_msg_name(buf, end, &pos, out, odd)) < 0)
		return rc;
	return pos == end ? 0 : -EBADMSG;
}

static const char *
dns_rcode_str(int rcode)
{
	switch (rcode) {
	case 1:
		return "FORMERR from server";
	case 2:
		return "SERVFAIL from server";
	case 3:
		return "NXDOMAIN: no such domain";
	case 4:
		return "NOTIMP from server";
	case 5:
		return "REFUSED by server";
	default:
		return "error rcode from server";
	}
}

void
dns_answer_fail(struct dns_answer *out, enum dns_status st, const char *reason)
{
	memset(out, 0, sizeof(*out));
	out->status = st;
	out->reason = reason;
	out->rcode = -1;
}

struct dns_msg {
	const uint8_t *buf;
	size_t len;
	size_t an; /* offset of the answer section */
	uint16_t ancount;
	uint16_t nscount;
	size_t ns; /* offset of the authority section */
};

/* Header and question; check the question is ours. */
static int
dns_msg_head(struct dns_msg *m, const char *qname, uint16_t qtype, int *rcode,
    bool *tc, bool *ad)
{
	char name[DNS_NAME_MAX];
	size_t pos = DNS_HDR_LEN;
	uint16_t flags;
	bool odd;
	int rc;

	if (m->len < DNS_HDR_LEN)
		return -EBADMSG;
	flags = get16(m->buf + 2);
	if (!(flags & 0x8000) || (flags >> 11 & 0xf) != 0)
		return -EBADMSG; /* not a response, or not a QUERY */
	*tc = (flags & 0x0200) != 0;
	*ad = (flags & 0x0020) != 0;
	*rcode = flags & 0xf;
	if (get16(m->buf + 4) != 1)
		return -EBADMSG;
	m->ancount = get16(m->buf + 6);
	m->nscount = get16(m->buf + 8);
	if ((rc = dns_msg_name(m->buf, m->len, &pos, name, &odd)) < 0)
		return rc;
	if (m->len - pos < 4)
		return -EBADMSG;
	if (strcmp(name, qname) != 0 || get16(m->buf + pos) != qtype ||
	    get16(m->buf + pos + 2) != DNS_C_IN)
		return -EBADMSG;
	m->an = pos + 4;
	return 0;
}

/* RFC 2308 5: a negative answer lives for the lesser of the SOA's TTL
 * and its MINIMUM field. */
static int
dns_msg_soa(const struct dns_msg *m, const struct dns_rr *rr, uint32_t *ttl)
{
	size_t end = rr->rdpos + rr->rdlen, p = rr->rdpos;
	char skip[DNS_NAME_MAX];
	uint32_t min;
	bool odd;

	/* MNAME and RNAME, then five 32-bit fields. */
	if (dns_msg_name(m->buf, end, &p, skip, &odd) < 0 ||
	    dns_msg_name(m->buf, end, &p, skip, &odd) < 0 || end - p != 20)
		return -EBADMSG;
	min = get32(m->buf + p + 16);
	*ttl = rr->ttl < min ? rr->ttl : min;
	return 0;
}

/* Walk the answer section once to prove it well formed, then the
 * authority section for the SOA that bounds negative caching. */
static int
dns_msg_sections(struct dns_msg *m, uint32_t *negttl)
{
	struct dns_rr rr;
	size_t pos = m->an;
	int rc;

	for (unsigned i = 0; i < m->ancount; i++)
		if ((rc = dns_msg_rr(m->buf, m->len, &pos, &rr)) < 0)
			return rc;
	m->ns = pos;
	*negttl = 0;
	for (unsigned i = 0; i < m->nscount; i++) {
		if ((rc = dns_msg_rr(m->buf, m->len, &pos, &rr)) < 0)
			return rc;
		if (rr.type != DNS_T_SOA || rr.class != DNS_C_IN)
			continue;
		if ((rc = dns_msg_soa(m, &rr, negttl)) < 0)
			return rc;
	}
	return 0;
}

/* Follow the CNAME chain from qname inside the answer section. */
static int
dns_msg_cnames(const struct dns_msg *m, char *cur, struct dns_answer *out)
{
	for (;;) {
		struct dns_rr rr;
		size_t pos = m->an;
		bool found = false, odd;
		int rc;

		for (unsigned i = 0; i < m->ancount && !found; i++) {
			if ((rc = dns_msg_rr(m->buf, m->len, &pos, &rr)) < 0)
				return rc;
			if (rr.type != DNS_T_CNAME || rr.class != DNS_C_IN ||
			    strcmp(rr.owner, cur) != 0)
				continue;
			if (out->ncname == DNS_CNAME_MAX)
				return -ELOOP;
			rc = dns_msg_rdname(m->buf, &rr, rr.rdpos, cur, &odd);
			if (rc < 0 || odd || strcmp(cur, ".") == 0)
				return -EBADMSG;
			if (rr.ttl < out->ttl)
				out->ttl = rr.ttl;
			out->ncname++;
			found = true;
		}
		if (!found)
			return 0;
	}
}

/* One MX record; *used is false when it is skipped. */
static int
dns_msg_mx(const struct dns_msg *m, const struct dns_rr *rr,
    struct dns_answer *out, bool *used)
{
	struct dns_mx_rr mx;
	struct dns_addr lit;
	bool odd;

	*used = false;
	if (rr->rdlen < 3 ||
	    dns_msg_rdname(m->buf, rr, rr->rdpos + 2, mx.host, &odd) < 0)
		return -EBADMSG;
	/* An IP literal ("[192.0.2.1]") is odd but usable: dns_mx.c
	 * decides what to do with it. Other odd names are skipped. */
	if (odd && !dns_addr_parse(mx.host, &lit))
		return 0;
	mx.pref = get16(m->buf + rr->rdpos);
	if (out->nmx < DNS_ANSWER_MAX) {
		out->mx[out->nmx++] = mx;
	} else {
		/* Full: keep the best preferences, whatever the wire order. */
		size_t worst = 0;

		for (size_t i = 1; i < out->nmx; i++)
			if (out->mx[i].pref > out->mx[worst].pref)
				worst = i;
		if (out->mx[worst].pref <= mx.pref)
			return 0;
		out->mx[worst] = mx;
	}
	*used = true;
	return 0;
}

static int
dns_msg_addr(const struct dns_msg *m, const struct dns_rr *rr,
    struct dns_answer *out, bool *used)
{
	size_t alen = rr->type == DNS_T_A ? 4 : 16;
	struct dns_addr *a;

	*used = false;
	if (rr->rdlen != alen)
		return -EBADMSG;
	if (out->naddrs == DNS_ANSWER_MAX)
		return 0;
	a = &out->addrs[out->naddrs++];
	memset(a, 0, sizeof(*a));
	a->family = rr->type == DNS_T_A ? AF_INET : AF_INET6;
	memcpy(a->a, m->buf + rr->rdpos, alen);
	*used = true;
	return 0;
}

/* One TLSA record (RFC 6698 2.1): usage, selector, matching type and
 * the association data; too long or one too many is counted, not kept. */
static int
dns_msg_tlsa(const struct dns_msg *m, const struct dns_rr *rr,
    struct dns_answer *out, bool *used)
{
	const uint8_t *p = m->buf + rr->rdpos;
	struct dns_tlsa *t;

	*used = false;
	if (rr->rdlen < 4)
		return -EBADMSG; /* RFC 6698 2.1: data is never empty */
	if (rr->rdlen - 3 > DNS_TLSA_DATA || out->ntlsa == DNS_TLSA_MAX) {
		out->tlsa_dropped++;
		*used = true;
		return 0;
	}
	t = &out->tlsa[out->ntlsa++];
	t->usage = p[0];
	t->selector = p[1];
	t->mtype = p[2];
	t->len = (uint16_t)(rr->rdlen - 3);
	memcpy(t->data, p + 3, t->len);
	*used = true;
	return 0;
}

/* The records of qtype owned by `owner`, the end of any CNAME chain. */
static int
dns_msg_data(const struct dns_msg *m, const char *owner, uint16_t qtype,
    struct dns_answer *out)
{
	struct dns_rr rr;
	size_t pos = m->an;
	bool used;
	int rc;

	if (qtype != DNS_T_MX && qtype != DNS_T_A && qtype != DNS_T_AAAA &&
	    qtype != DNS_T_TLSA)
		return -EINVAL;
	for (unsigned i = 0; i < m->ancount; i++) {
		if ((rc = dns_msg_rr(m->buf, m->len, &pos, &rr)) < 0)
			return rc;
		if (rr.type != qtype || rr.class != DNS_C_IN ||
		    strcmp(rr.owner, owner) != 0)
			continue;
		rc = qtype == DNS_T_MX     ? dns_msg_mx(m, &rr, out, &used)
		     : qtype == DNS_T_TLSA ? dns_msg_tlsa(m, &rr, out, &used)
		                           : dns_msg_addr(m, &rr, out, &used);
		if (rc < 0)
			return rc;
		if (used && rr.ttl < out->ttl)
			out->ttl = rr.ttl;
	}
	return 0;
}

static int
dns_msg_bad(struct dns_answer *out, int rc)
{
	dns_answer_fail(out, DNS_TEMPFAIL,
	    rc == -ELOOP ? "CNAME chain too long" : "malformed DNS reply");
	return -EBADMSG;
}

int
dns_msg_parse(const uint8_t *buf, size_t len, const char *qname, uint16_t qtype,
    struct dns_answer *out)
{
	struct dns_msg m = {.buf = buf, .len = len};
	char cur[DNS_NAME_MAX];
	uint32_t negttl;
	bool tc, ad;
	int rc, rcode;

	dns_answer_fail(out, DNS_TEMPFAIL, "malformed DNS reply");
	if (!str_copy(cur, sizeof(cur), qname))
		return dns_msg_bad(out, -EINVAL);
	if ((rc = dns_msg_head(&m, qname, qtype, &rcode, &tc, &ad)) < 0 ||
	    (rc = dns_msg_sections(&m, &negttl)) < 0)
		return dns_msg_bad(out, rc);
	out->rcode = rcode;
	out->ad = ad;
	if (tc) {
		/* c-ares retries over TCP; a truncated reply that still
		 * reaches us may lack the best MX, so never use it. */
		out->reason = "truncated DNS reply";
		return 0;
	}
	if (rcode != 0 && rcode != 3) {
		out->reason = dns_rcode_str(rcode);
		return 0;
	}
	out->ttl = UINT32_MAX;
	if ((rc = dns_msg_cnames(&m, cur, out)) < 0 ||
	    (rc = dns_msg_data(&m, cur, qtype, out)) < 0)
		return dns_msg_bad(out, rc);
	if (out->ncname > 0)
		str_copy(out->cname, sizeof(out->cname), cur);
	if (rcode == 3) {
		out->status = DNS_NOTFOUND;
		out->reason = dns_rcode_str(rcode);
		out->ttl = negttl;
		out->nmx = out->naddrs = out->ntlsa = 0;
		out->tlsa_dropped = 0;
		return 0;
	}
	out->status = DNS_OK;
	if (out->nmx == 0 && out->naddrs == 0 && out->ntlsa == 0 &&
	    out->tlsa_dropped == 0) {
		out->nodata = true;
		out->reason = "no records of that type (NODATA)";
		/* The negative TTL, but no longer than a CNAME on the way. */
		if (negttl < out->ttl)
			out->ttl = negttl;
	} else {
		out->reason = "ok";
	}
	return 0;
}

bool
dns_name_norm(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in), label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			out[i] = '.';
			continue;
		}
		if (!dns_host_char(c) || ++label > 63)
			return false;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[n] = '\0';
	return true;
}

bool
dns_addr_parse(const char *s, struct dns_addr *out)
{
	char tmp[64];
	size_t n = strlen(s);

	memset(out, 0, sizeof(*out));
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
		if (n > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
			if (!str_ncopy(tmp, sizeof(tmp), s + 5, n - 5))
				return false;
			out->family = AF_INET6;
			return inet_pton(AF_INET6, tmp, out->a) == 1;
		}
	}
	if (!str_ncopy(tmp, sizeof(tmp), s, n))
		return false;
	if (inet_pton(AF_INET, tmp, out->a) == 1) {
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, tmp, out->a) == 1) {
		out->family = AF_INET6;
		return true;
	}
	return false;
}
