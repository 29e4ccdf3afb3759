/* SPDX-License-Identifier: ISC */
/*
 * sts_policy_fuzz.c - libFuzzer target for the MTA-STS policy and TXT
 * parsers. Not built by default:
 *
 *	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *	    -I. -Imta tests/fuzz/sts_policy_fuzz.c mta/sts/sts_policy.c
 *	    mta/base/str.c -o build/sts_policy_fuzz
 *	build/sts_policy_fuzz -max_len=4096
 *
 * The input is a policy file, then a TXT record. Invariants: no crash or
 * sanitizer report; a parsed policy keeps its bounds (nmx, max_age) and
 * each of its mx patterns matches some host built from it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts/sts_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_policy p;
	char err[128], id[STS_ID_MAX];

	if (sts_policy_parse((const char *)data, size, &p, err, sizeof(err)) ==
	    0) {
		if (p.nmx > STS_MX_MAX || p.max_age > STS_MAX_AGE_MAX)
			abort();
		for (size_t i = 0; i < p.nmx; i++) {
			char host[STS_NAME_MAX + 2];

			strcpy(host, p.mx[i]);
			if (host[0] == '*')
				host[0] = 'x';
			if (!sts_mx_match(&p, host))
				abort();
		}
	}
	if (sts_txt_parse((const char *)data, size, id, sizeof(id)) == 0 &&
	    strlen(id) > 32)
		abort();
	return 0;
}
