/* SPDX-License-Identifier: ISC */
/*
 * sts_policy.h - MTA-STS (RFC 8461) as pure functions: the policy file
 * and the `_mta-sts` TXT record parsed, and MX names matched against a
 * policy's patterns. No I/O, no threads: any thread may call these, and
 * the unit tests and the fuzzer do.
 */
#ifndef MTA_STS_POLICY_H
#define MTA_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compat.h"

#define STS_MX_MAX      16          /* mx lines kept; more is invalid */
#define STS_NAME_MAX    256         /* a pattern or host name, with NUL */
#define STS_ID_MAX      33          /* TXT id: 1..32 alphanumerics, NUL */
#define STS_MAX_AGE_MAX 31557600    /* s, RFC 8461 3.2 */
#define STS_POLICY_MAX  (64 * 1024) /* bytes of a policy file, a cap */

enum sts_mode {
	STS_MODE_NONE,
	STS_MODE_TESTING,
	STS_MODE_ENFORCE,
};

struct sts_policy {
	enum sts_mode mode;
	uint32_t max_age; /* s, at most STS_MAX_AGE_MAX */
	size_t nmx;
	char mx[STS_MX_MAX][STS_NAME_MAX]; /* lowercase, "*." prefix kept */
};

/*
 * sts_policy_parse - parse a policy file (text, len): "key: value" lines
 * ended by CRLF or LF, the last one optionally unterminated. version must
 * be STSv1, mode one of enforce|testing|none, max_age 1..10 digits and
 * at most STS_MAX_AGE_MAX, and at least one mx line unless mode is none.
 * Unknown keys are ignored; a repeated key other than mx keeps its first
 * value. Fills *out. Returns 0, or -EINVAL with why in err.
 */
int sts_policy_parse(const char *text, size_t len, struct sts_policy *out,
    char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * sts_txt_parse - the id of one `_mta-sts` TXT record "v=STSv1; id=...;"
 * (v first, then fields separated by ';' with optional blanks). Returns
 * 0 and the id in id (idlen >= STS_ID_MAX), -ENOENT when the record does
 * not start with "v=STSv1" (not ours: to be discarded), -EINVAL when it
 * does but is malformed.
 */
int sts_txt_parse(
    const char *txt, size_t len, char *id, size_t idlen) MTA_MUST_CHECK;

/*
 * sts_pattern_match - does host (a name, trailing dot allowed, any case)
 * match pattern (an mx value)? "*.example.com" matches exactly one more
 * label to the left ("mx.example.com", not "example.com" nor
 * "a.b.example.com"); any other pattern matches the name exactly
 * (RFC 8461 4.1).
 */
bool sts_pattern_match(const char *pattern, const char *host);

/* Does host match any of the policy's mx patterns? */
bool sts_mx_match(const struct sts_policy *p, const char *host);

/*
 * sts_result_type - the RFC 8460 result type of a delivery attempt that
 * failed under a policy: tls_error is why the TLS handshake failed (or
 * NULL), smtp_error the session's own error text (or NULL). Returns a
 * static string, or NULL when neither is a TLS failure (a refused
 * connection, a timeout: not the policy's business).
 */
const char *sts_result_type(const char *tls_error, const char *smtp_error);

/* "none", "testing", "enforce". */
const char *sts_mode_name(enum sts_mode m);

#endif
