/* SPDX-License-Identifier: ISC */
/*
 * mime_7bit_fuzz.c - libFuzzer target for the 8-bit to 7-bit downgrade.
 * Not built by default:
 *
 *	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *	    -I. -Imta tests/fuzz/mime_7bit_fuzz.c mta/deliver/mime_7bit.c
 *	    mta/base/str.c mta/base/buf.c mta/base/xalloc.c mta/base/log.c
 *	    mta/base/clock.c -o build/mime_7bit_fuzz
 *	build/mime_7bit_fuzz -max_len=4096
 *
 * The input is the message. Invariants: no crash or sanitizer report, a
 * result within mime_7bit_bound(), and a converted message has no 8-bit
 * byte.
 */
#include <stdint.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/str.h"
#include "smtp/mime_7bit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out;

	buf_init(&out, mime_7bit_bound(size));
	if (mime_7bit_convert(data, size, &out) == MIME_7BIT_OK &&
	    mem_has_8bit(buf_peek(&out), buf_avail(&out)))
		abort();
	buf_fini(&out);
	return 0;
}
