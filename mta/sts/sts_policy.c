/* SPDX-License-Identifier: ISC */
/*
 * sts_policy.c - the MTA-STS policy file, the TXT record and MX pattern
 * matching (RFC 8461 3.1, 3.2, 4.1). Pure; any thread.
 *
 * Strict where the RFC is (version, mode, max_age, the mx syntax), lenient
 * where it says so (unknown keys ignored, CRLF or LF). A policy that is
 * not valid is no policy: the caller treats it as sts-policy-invalid.
 */
#include "sts/sts_policy.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "base/str.h"

const char *
sts_mode_name(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	case STS_MODE_NONE:
		break;
	}
	return "none";
}

/* A host name or an mx pattern: labels of LDH (and '_'), 1..63 each,
 * at most 253 in all; "*." allowed only in front when star is set. */
static bool
sts_name_ok(const char *s, size_t len, bool star)
{
	size_t label = 0;

	if (star && len > 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

struct sts_seen {
	bool version, mode, max_age;
};

static int
sts_field(struct sts_policy *out, struct sts_seen *seen, const char *key,
    size_t klen, const char *val, size_t vlen, char *err, size_t errlen)
{
	if (str_ieq(key, klen, "version")) {
		if (seen->version)
			return 0;
		seen->version = true;
		if (vlen != 5 || memcmp(val, "STSv1", 5) != 0) {
			str_copy(err, errlen, "version is not STSv1");
			return -EINVAL;
		}
	} else if (str_ieq(key, klen, "mode")) {
		if (seen->mode)
			return 0;
		seen->mode = true;
		if (vlen == 7 && memcmp(val, "enforce", 7) == 0)
			out->mode = STS_MODE_ENFORCE;
		else if (vlen == 7 && memcmp(val, "testing", 7) == 0)
			out->mode = STS_MODE_TESTING;
		else if (vlen == 4 && memcmp(val, "none", 4) == 0)
			out->mode = STS_MODE_NONE;
		else {
			str_copy(err, errlen, "unknown mode");
			return -EINVAL;
		}
	} else if (str_ieq(key, klen, "max_age")) {
		uint64_t v = 0;

		if (seen->max_age)
			return 0;
		seen->max_age = true;
		if (vlen == 0 || vlen > 10) {
			str_copy(err, errlen, "bad max_age");
			return -EINVAL;
		}
		for (size_t i = 0; i < vlen; i++) {
			if (!isdigit((unsigned char)val[i])) {
				str_copy(err, errlen, "bad max_age");
				return -EINVAL;
			}
			v = v * 10 + (uint64_t)(val[i] - '0');
		}
		if (v > STS_MAX_AGE_MAX) {
			str_copy(err, errlen, "max_age over 31557600");
			return -EINVAL;
		}
		out->max_age = (uint32_t)v;
	} else if (str_ieq(key, klen, "mx")) {
		if (out->nmx >= STS_MX_MAX || !sts_name_ok(val, vlen, true)) {
			str_copy(err, errlen,
			    out->nmx >= STS_MX_MAX ? "too many mx lines"
			                           : "bad mx pattern");
			return -EINVAL;
		}
		str_ncopy(out->mx[out->nmx], sizeof(out->mx[0]), val, vlen);
		str_lower(out->mx[out->nmx++]);
	}
	return 0;
}

/* One line (without its terminator): "key:" *WSP value *WSP. */
static int
sts_line(struct sts_policy *out, struct sts_seen *seen, const char *p, size_t n,
    char *err, size_t errlen)
{
	const char *colon = memchr(p, ':', n);
	size_t klen, vlen;
	const char *val;

	if (colon == NULL || colon == p || colon - p > 32) {
		str_copy(err, errlen, "a line is not \"key: value\"");
		return -EINVAL;
	}
	klen = (size_t)(colon - p);
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
			str_copy(err, errlen, "bad key");
			return -EINVAL;
		}
	}
	val = colon + 1;
	vlen = n - klen - 1;
	while (vlen > 0 && (*val == ' ' || *val == '\t')) {
		val++;
		vlen--;
	}
	while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
		vlen--;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)val[i];

		if ((c < 0x21 || c > 0x7e) && c != ' ') {
			str_copy(err, errlen, "bad character in a value");
			return -EINVAL;
		}
	}
	return sts_field(out, seen, p, klen, val, vlen, err, errlen);
}

int
sts_policy_parse(const char *text, size_t len, struct sts_policy *out,
    char *err, size_t errlen)
{
	struct sts_seen seen = {0};
	size_t pos = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > STS_POLICY_MAX) {
		str_copy(err, errlen, "policy too large");
		return -EINVAL;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t n = end - pos;

		if (n > 0 && text[pos + n - 1] == '\r')
			n--;
		/* blank lines (a trailing one above all) are tolerated */
		if (n > 0 &&
		    (rc = sts_line(out, &seen, text + pos, n, err, errlen)) < 0)
			return rc;
		pos = end + 1;
	}
	if (!seen.version || !seen.mode || !seen.max_age) {
		str_copy(err, errlen,
		    !seen.version ? "no version"
		    : !seen.mode  ? "no mode"
		                  : "no max_age");
		return -EINVAL;
	}
	if (out->mode != STS_MODE_NONE && out->nmx == 0) {
		str_copy(err, errlen, "no mx");
		return -EINVAL;
	}
	return 0;
}

int
sts_txt_parse(const char *txt, size_t len, char *id, size_t idlen)
{
	size_t pos;
	bool have = false;

	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return -ENOENT;
	pos = 7;
	if (pos < len && txt[pos] != ';' && txt[pos] != ' ' && txt[pos] != '\t')
		return -ENOENT; /* "v=STSv10" */
	while (pos < len) {
		size_t start, end;

		while (pos < len && (txt[pos] == ' ' || txt[pos] == '\t'))
			pos++;
		if (pos < len && txt[pos] == ';')
			pos++;
		while (pos < len && (txt[pos] == ' ' || txt[pos] == '\t'))
			pos++;
		if (pos >= len)
			break;
		start = pos;
		while (pos < len && txt[pos] != ';')
			pos++;
		end = pos;
		while (end > start &&
		       (txt[end - 1] == ' ' || txt[end - 1] == '\t'))
			end--;
		if (end - start > 3 && memcmp(txt + start, "id=", 3) == 0 &&
		    !have) {
			size_t n = end - start - 3;

			if (n == 0 || n > 32 || n >= idlen)
				return -EINVAL;
			for (size_t i = 0; i < n; i++)
				if (!isalnum((unsigned char)txt[start + 3 + i]))
					return -EINVAL;
			str_ncopy(id, idlen, txt + start + 3, n);
			have = true;
		} else if (memchr(txt + start, '=', end - start) == NULL) {
			return -EINVAL;
		}
	}
	return have ? 0 : -EINVAL;
}

bool
sts_pattern_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host), pl = strlen(pattern);

	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (pl > 0 && pattern[pl - 1] == '.')
		pl--;
	if (pl > 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', hl);
		size_t first;

		/* exactly one label in place of the star */
		if (dot == NULL)
			return false;
		first = (size_t)(dot - host);
		if (first == 0 || hl - first != pl - 1)
			return false;
		return strncasecmp(dot, pattern + 1, pl - 1) == 0;
	}
	return hl == pl && hl > 0 && strncasecmp(host, pattern, hl) == 0;
}

bool
sts_mx_match(const struct sts_policy *p, const char *host)
{
	for (size_t i = 0; i < p->nmx; i++)
		if (sts_pattern_match(p->mx[i], host))
			return true;
	return false;
}

const char *
sts_result_type(const char *tls_error, const char *smtp_error)
{
	if (tls_error != NULL && tls_error[0] != '\0') {
		if (strstr(tls_error, "hostname mismatch") ||
		    strstr(tls_error, "IP address mismatch"))
			return "certificate-host-mismatch";
		if (strstr(tls_error, "certificate has expired") ||
		    strstr(tls_error, "not yet valid"))
			return "certificate-expired";
		if (strstr(tls_error, "certificate verify failed"))
			return "certificate-not-trusted";
		return "validation-failure";
	}
	if (smtp_error != NULL && (strstr(smtp_error, "not offered") ||
	                              strstr(smtp_error, "refused STARTTLS")))
		return "starttls-not-supported";
	return NULL;
}
