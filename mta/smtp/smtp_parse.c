/* SPDX-License-Identifier: ISC */
/*
 * smtp_parse.c - pure SMTP receive-side parsers; see smtp_parse.h.
 *
 * Strict where looseness has bitten MTAs (brackets required around paths,
 * base64 canonical, no bytes past a path other than " params"), tolerant
 * where real clients differ harmlessly (verb case, spaces after "FROM:",
 * trailing blanks, source routes). Every index is checked against len
 * before it is read: the input is a peer's bytes.
 */
#include "smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "base/str.h"

#define SMTP_PARSE_VERB_MAX  16
#define SMTP_PARSE_LABEL_MAX 63 /* RFC 1035 2.3.4 */

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5322 atext. */
static bool
is_atext(unsigned char c)
{
	return is_alnum(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * Length of the well-formed UTF-8 sequence (2..4 bytes) at p, or 0.
 * Rejects overlong forms, surrogates and code points past U+10FFFF, so
 * that one address has one spelling.
 */
static size_t
utf8_seq(const unsigned char *p, size_t len)
{
	unsigned char c = p[0];
	size_t n, i;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

bool
smtp_parse_command(const char *line, size_t len, struct smtp_parse_cmd *out)
{
	size_t i = 0, end;

	while (i < len && line[i] != ' ')
		i++;
	if (i == 0 || i > SMTP_PARSE_VERB_MAX ||
	    !is_alpha((unsigned char)line[0]))
		return false;
	for (size_t k = 1; k < i; k++)
		if (!is_alnum((unsigned char)line[k]))
			return false;
	out->verb = line;
	out->verblen = i;
	while (i < len && line[i] == ' ')
		i++;
	end = len;
	while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
		end--;
	out->arg = line + i;
	out->arglen = end - i;
	return true;
}

bool
smtp_parse_verb_is(const struct smtp_parse_cmd *cmd, const char *name)
{
	return str_ieq(cmd->verb, cmd->verblen, name);
}

/* sub-domain *("." sub-domain), each Let-dig [Ldh-str]; U-labels as
 * UTF-8 when utf8. */
static enum smtp_parse_status
parse_domain(const unsigned char *p, size_t len, bool utf8)
{
	size_t i = 0, label = 0, n;
	bool hyphen = false; /* last character of the label was '-' */

	if (len == 0)
		return SMTP_PARSE_ADDRESS;
	if (len > SMTP_PARSE_DOMAIN_MAX)
		return SMTP_PARSE_TOOLONG;
	while (i < len) {
		if (p[i] == '.') {
			if (label == 0 || hyphen)
				return SMTP_PARSE_ADDRESS;
			label = 0;
			i++;
			continue;
		}
		if (is_alnum(p[i])) {
			n = 1;
			hyphen = false;
		} else if (p[i] == '-') {
			if (label == 0)
				return SMTP_PARSE_ADDRESS;
			n = 1;
			hyphen = true;
		} else if (utf8 && p[i] >= 0x80 &&
		           (n = utf8_seq(p + i, len - i)) != 0) {
			hyphen = false;
		} else {
			return SMTP_PARSE_ADDRESS;
		}
		label += n;
		if (label > SMTP_PARSE_LABEL_MAX)
			return SMTP_PARSE_ADDRESS;
		i += n;
	}
	if (label == 0 || hyphen)
		return SMTP_PARSE_ADDRESS;
	return SMTP_PARSE_OK;
}

/* "[" (IPv4 / "IPv6:" IPv6) "]"; general literals are refused. */
static enum smtp_parse_status
parse_literal(const char *p, size_t len)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	unsigned char sa[16];
	int af = AF_INET;

	if (len < 3 || p[0] != '[' || p[len - 1] != ']')
		return SMTP_PARSE_ADDRESS;
	p++;
	len -= 2;
	if (str_iprefix(p, len, "IPv6:")) {
		af = AF_INET6;
		p += 5;
		len -= 5;
	}
	if (len == 0 || len >= sizeof(tmp) || memchr(p, '\0', len) != NULL)
		return SMTP_PARSE_ADDRESS;
	memcpy(tmp, p, len);
	tmp[len] = '\0';
	if (inet_pton(af, tmp, sa) != 1)
		return SMTP_PARSE_ADDRESS;
	return SMTP_PARSE_OK;
}

/* Length of the quoted-string at p (with both quotes), or 0. */
static size_t
quoted_len(const unsigned char *p, size_t len, bool utf8)
{
	size_t i = 1, n;

	while (i < len) {
		unsigned char c = p[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= len || p[i + 1] < 32 || p[i + 1] > 126)
				return 0;
			i += 2;
		} else if (c >= 32 && c <= 126) {
			i++;
		} else if (utf8 && c >= 0x80 &&
		           (n = utf8_seq(p + i, len - i)) != 0) {
			i += n;
		} else {
			return 0;
		}
	}
	return 0;
}

/* Dot-string up to the first '@' (exclusive); returns its length or 0. */
static size_t
dotstring_len(const unsigned char *p, size_t len, bool utf8)
{
	size_t i = 0, n;
	bool atom = false; /* inside an atom (last char was not '.') */

	while (i < len && p[i] != '@') {
		if (p[i] == '.') {
			if (!atom)
				return 0;
			atom = false;
			i++;
		} else if (is_atext(p[i])) {
			atom = true;
			i++;
		} else if (utf8 && p[i] >= 0x80 &&
		           (n = utf8_seq(p + i, len - i)) != 0) {
			atom = true;
			i += n;
		} else {
			return 0;
		}
	}
	return atom ? i : 0;
}

enum smtp_parse_status
smtp_parse_mailbox(const char *s, size_t len, bool utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t local;

	if (len == 0)
		return SMTP_PARSE_ADDRESS;
	if (p[0] == '"')
		local = quoted_len(p, len, utf8);
	else
		local = dotstring_len(p, len, utf8);
	if (local == 0 || local >= len || p[local] != '@')
		return SMTP_PARSE_ADDRESS;
	if (local > SMTP_PARSE_LOCAL_MAX)
		return SMTP_PARSE_TOOLONG;
	p += local + 1;
	len -= local + 1;
	if (len > 0 && p[0] == '[')
		return parse_literal((const char *)p, len);
	return parse_domain(p, len, utf8);
}

/*
 * Find "<...>" at the start of p, honouring quoted strings (a quoted
 * local part may hold '>'). On success (*inner, *innerlen) is the text
 * between the brackets and *used the bytes through '>'.
 */
static enum smtp_parse_status
parse_brackets(const char *p, size_t len, const char **inner, size_t *innerlen,
    size_t *used)
{
	size_t i = 1;
	bool quoted = false;

	if (len == 0 || p[0] != '<')
		return SMTP_PARSE_SYNTAX;
	for (; i < len; i++) {
		if (quoted) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				quoted = false;
		} else if (p[i] == '"') {
			quoted = true;
		} else if (p[i] == '>') {
			break;
		}
	}
	if (i >= len)
		return SMTP_PARSE_SYNTAX;
	if (i + 1 > SMTP_PARSE_PATH_MAX)
		return SMTP_PARSE_TOOLONG;
	*inner = p + 1;
	*innerlen = i - 1;
	*used = i + 1;
	return SMTP_PARSE_OK;
}

/* Drop an RFC 5321 A-d-l source route "@a,@b:" from the front. */
static enum smtp_parse_status
strip_route(const char **p, size_t *len)
{
	const char *colon;
	size_t i, start;

	if (*len == 0 || (*p)[0] != '@')
		return SMTP_PARSE_OK;
	if ((colon = memchr(*p, ':', *len)) == NULL)
		return SMTP_PARSE_ADDRESS;
	/* Each hop is "@domain", separated by commas. */
	for (i = 0; *p + i < colon;) {
		if ((*p)[i] != '@')
			return SMTP_PARSE_ADDRESS;
		start = ++i;
		while (*p + i < colon && (*p)[i] != ',')
			i++;
		if (parse_domain((const unsigned char *)*p + start, i - start,
		        false) != SMTP_PARSE_OK)
			return SMTP_PARSE_ADDRESS;
		if (*p + i < colon)
			i++; /* ',' */
	}
	i = (size_t)(colon - *p) + 1;
	*p += i;
	*len -= i;
	return SMTP_PARSE_OK;
}

static bool
parse_size(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit((unsigned char)v[i]))
			return false;
		d = (unsigned)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*out = x;
	return true;
}

/* One "KEYWORD[=value]" for MAIL. */
static enum smtp_parse_status
parse_mail_param(const char *kw, size_t kwlen, const char *v, size_t vlen,
    bool hasv, struct smtp_parse_path *out)
{
	if (str_ieq(kw, kwlen, "SIZE")) {
		if (out->has_size || !hasv || !parse_size(v, vlen, &out->size))
			return SMTP_PARSE_PARAM_BAD;
		out->has_size = true;
	} else if (str_ieq(kw, kwlen, "BODY")) {
		if (out->body != SMTP_PARSE_BODY_NONE || !hasv)
			return SMTP_PARSE_PARAM_BAD;
		if (str_ieq(v, vlen, "7BIT"))
			out->body = SMTP_PARSE_BODY_7BIT;
		else if (str_ieq(v, vlen, "8BITMIME"))
			out->body = SMTP_PARSE_BODY_8BITMIME;
		else
			return SMTP_PARSE_PARAM_BAD;
	} else if (str_ieq(kw, kwlen, "SMTPUTF8")) {
		if (out->smtputf8 || hasv)
			return SMTP_PARSE_PARAM_BAD;
		out->smtputf8 = true;
	} else if (str_ieq(kw, kwlen, "RET")) {
		if (out->ret != SMTP_PARSE_RET_NONE || !hasv)
			return SMTP_PARSE_PARAM_BAD;
		if (str_ieq(v, vlen, "FULL"))
			out->ret = SMTP_PARSE_RET_FULL;
		else if (str_ieq(v, vlen, "HDRS"))
			out->ret = SMTP_PARSE_RET_HDRS;
		else
			return SMTP_PARSE_PARAM_BAD;
	} else if (str_ieq(kw, kwlen, "ENVID")) {
		if (out->envid != NULL || !hasv ||
		    vlen > SMTP_PARSE_ENVID_MAX || !smtp_parse_xtext(v, vlen))
			return SMTP_PARSE_PARAM_BAD;
		out->envid = v;
		out->envidlen = vlen;
	} else if (str_ieq(kw, kwlen, "AUTH")) {
		if (out->has_auth || !hasv)
			return SMTP_PARSE_PARAM_BAD;
		if (!(vlen == 2 && v[0] == '<' && v[1] == '>') &&
		    !smtp_parse_xtext(v, vlen))
			return SMTP_PARSE_PARAM_BAD;
		out->has_auth = true;
	} else {
		return SMTP_PARSE_PARAM_UNKNOWN;
	}
	return SMTP_PARSE_OK;
}

/* NOTIFY=NEVER, or SUCCESS, FAILURE and DELAY in a comma list, each at
 * most once (RFC 3461 4.1); keywords in any case. */
static bool
parse_notify(const char *v, size_t vlen, uint8_t *out)
{
	static const struct {
		const char *name;
		uint8_t bit;
	} kw[] = {
	    {"SUCCESS", SMTP_PARSE_NOTIFY_SUCCESS},
	    {"FAILURE", SMTP_PARSE_NOTIFY_FAILURE},
	    {"DELAY", SMTP_PARSE_NOTIFY_DELAY},
	    {"NEVER", SMTP_PARSE_NOTIFY_NEVER},
	};
	uint8_t bits = 0;
	size_t i = 0;

	while (i <= vlen) {
		const char *c = memchr(v + i, ',', vlen - i);
		size_t n = c ? (size_t)(c - (v + i)) : vlen - i, k;

		for (k = 0; k < MTA_ARRAY_LEN(kw); k++)
			if (str_ieq(v + i, n, kw[k].name))
				break;
		if (k == MTA_ARRAY_LEN(kw) || (bits & kw[k].bit))
			return false;
		bits |= kw[k].bit;
		i += n + 1;
	}
	if ((bits & SMTP_PARSE_NOTIFY_NEVER) && bits != SMTP_PARSE_NOTIFY_NEVER)
		return false;
	*out = bits;
	return true;
}

/* ORCPT=addr-type;xtext (RFC 3461 4.2): addr-type is an atom. */
static bool
parse_orcpt(const char *v, size_t vlen)
{
	const char *semi = memchr(v, ';', vlen);
	size_t tlen;

	if (vlen > SMTP_PARSE_ORCPT_MAX || semi == NULL || semi == v)
		return false;
	tlen = (size_t)(semi - v);
	for (size_t i = 0; i < tlen; i++)
		if (!is_atext((unsigned char)v[i]))
			return false;
	return tlen + 1 < vlen && smtp_parse_xtext(semi + 1, vlen - tlen - 1);
}

/* One "KEYWORD[=value]" for RCPT. */
static enum smtp_parse_status
parse_rcpt_param(const char *kw, size_t kwlen, const char *v, size_t vlen,
    bool hasv, struct smtp_parse_path *out)
{
	if (str_ieq(kw, kwlen, "NOTIFY")) {
		if (out->notify != 0 || !hasv ||
		    !parse_notify(v, vlen, &out->notify))
			return SMTP_PARSE_PARAM_BAD;
	} else if (str_ieq(kw, kwlen, "ORCPT")) {
		if (out->orcpt != NULL || !hasv || !parse_orcpt(v, vlen))
			return SMTP_PARSE_PARAM_BAD;
		out->orcpt = v;
		out->orcptlen = vlen;
	} else {
		return SMTP_PARSE_PARAM_UNKNOWN;
	}
	return SMTP_PARSE_OK;
}

/* Walk " kw[=v] kw[=v]..." after the path: MAIL's or RCPT's. */
static enum smtp_parse_status
parse_params(const char *p, size_t len, bool mail, struct smtp_parse_path *out)
{
	enum smtp_parse_status st;
	size_t i = 0;

	if (len > 0 && p[0] != ' ')
		return SMTP_PARSE_SYNTAX;
	while (i < len) {
		size_t kw, kwlen, v = 0, vlen = 0;
		bool hasv = false;

		while (i < len && p[i] == ' ')
			i++;
		if (i == len)
			break;
		kw = i;
		if (!is_alnum((unsigned char)p[i]))
			return SMTP_PARSE_SYNTAX;
		while (
		    i < len && (is_alnum((unsigned char)p[i]) || p[i] == '-'))
			i++;
		kwlen = i - kw;
		if (i < len && p[i] == '=') {
			hasv = true;
			v = ++i;
			while (i < len && p[i] != ' ') {
				unsigned char c = (unsigned char)p[i];

				/* esmtp-value: %d33-60 / %d62-126 */
				if (c < 33 || c > 126 || c == '=')
					return SMTP_PARSE_PARAM_BAD;
				i++;
			}
			vlen = i - v;
			if (vlen == 0)
				return SMTP_PARSE_PARAM_BAD;
		}
		if (i < len && p[i] != ' ')
			return SMTP_PARSE_SYNTAX;
		st = mail ? parse_mail_param(
		                p + kw, kwlen, p + v, vlen, hasv, out)
		          : parse_rcpt_param(
		                p + kw, kwlen, p + v, vlen, hasv, out);
		if (st != SMTP_PARSE_OK)
			return st;
	}
	return SMTP_PARSE_OK;
}

/* Shared by MAIL and RCPT: prefix, path, parameters, mailbox. */
static enum smtp_parse_status
parse_path_cmd(const char *arg, size_t len, const char *prefix, bool mail,
    bool utf8, struct smtp_parse_path *out)
{
	enum smtp_parse_status st;
	const char *inner;
	size_t plen = strlen(prefix), innerlen, used;

	memset(out, 0, sizeof(*out));
	if (!str_iprefix(arg, len, prefix))
		return SMTP_PARSE_SYNTAX;
	arg += plen;
	len -= plen;
	/* Tolerated although RFC 5321 has none: "MAIL FROM: <a@b>". */
	while (len > 0 && arg[0] == ' ') {
		arg++;
		len--;
	}
	st = parse_brackets(arg, len, &inner, &innerlen, &used);
	if (st != SMTP_PARSE_OK)
		return st;
	st = parse_params(arg + used, len - used, mail, out);
	if (st != SMTP_PARSE_OK)
		return st;
	if (mail && out->smtputf8)
		utf8 = true;
	if (innerlen == 0) {
		if (!mail)
			return SMTP_PARSE_ADDRESS;
		out->addr = inner;
		return SMTP_PARSE_OK;
	}
	if ((st = strip_route(&inner, &innerlen)) != SMTP_PARSE_OK)
		return st;
	st = smtp_parse_mailbox(inner, innerlen, utf8);
	if (st != SMTP_PARSE_OK)
		return st;
	out->addr = inner;
	out->addrlen = innerlen;
	return SMTP_PARSE_OK;
}

enum smtp_parse_status
smtp_parse_mail(const char *arg, size_t len, struct smtp_parse_path *out)
{
	return parse_path_cmd(arg, len, "FROM:", true, false, out);
}

enum smtp_parse_status
smtp_parse_rcpt(
    const char *arg, size_t len, bool utf8, struct smtp_parse_path *out)
{
	return parse_path_cmd(arg, len, "TO:", false, utf8, out);
}

static int
hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
smtp_parse_addr_literal(const char *p, size_t len)
{
	const char *at = memrchr(p, '@', len);

	return at != NULL && at + 1 < p + len && at[1] == '[';
}

bool
smtp_parse_xtext(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '+') {
			if (len - i < 3 ||
			    hexval((unsigned char)p[i + 1]) < 0 ||
			    hexval((unsigned char)p[i + 2]) < 0)
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (is_digit(c))
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
smtp_parse_base64(const char *in, size_t len, uint8_t *out, size_t outmax)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		uint32_t w;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* Data after padding ("A=B=") is malformed. */
			if (pad > 0 || (v[k] = b64val(c)) < 0)
				return -EINVAL;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Non-canonical: bits the padding says are unused are set. */
		if ((pad == 1 && (w & 0xff) != 0) ||
		    (pad == 2 && (w & 0xffff) != 0))
			return -EINVAL;
		if (outmax - o < (size_t)(3 - pad))
			return -ENOBUFS;
		out[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)w;
	}
	if (o > INT32_MAX)
		return -ENOBUFS;
	return (int)o;
}

size_t
smtp_parse_base64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void
smtp_parse_base64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		             in[i + 2];

		out[o++] = b64chars[w >> 18 & 63];
		out[o++] = b64chars[w >> 12 & 63];
		out[o++] = b64chars[w >> 6 & 63];
		out[o++] = b64chars[w & 63];
	}
	if (i < n) {
		uint32_t w = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			w |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64chars[w >> 18 & 63];
		out[o++] = b64chars[w >> 12 & 63];
		out[o++] = i + 1 < n ? b64chars[w >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

bool
smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, bool *last)
{
	uint64_t v = 0;
	size_t i = 0;

	for (; i < len && arg[i] >= '0' && arg[i] <= '9'; i++) {
		unsigned d = (unsigned)(arg[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (i == 0)
		return false;
	*size = v;
	*last = false;
	if (i == len)
		return true;
	if (arg[i] != ' ')
		return false;
	while (i < len && arg[i] == ' ')
		i++;
	if (len - i != 4 || strncasecmp(arg + i, "LAST", 4) != 0)
		return false;
	*last = true;
	return true;
}

size_t
smtp_parse_plain_lines(const uint8_t *p, size_t n, size_t maxline)
{
	size_t done = 0;

	while (done < n && p[done] != '.') {
		const uint8_t *lf = memchr(p + done, '\n', n - done);
		size_t len;

		if (lf == NULL)
			break;
		len = (size_t)(lf - (p + done)) + 1;
		if (len < 2 || len > maxline || lf[-1] != '\r' ||
		    memchr(p + done, '\r', len - 2) != NULL)
			break;
		done += len;
	}
	return done;
}
