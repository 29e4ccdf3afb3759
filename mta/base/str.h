/* SPDX-License-Identifier: ISC */
/*
 * str.h - bounded string helpers (glibc 2.36 has no strlcpy).
 */
#ifndef MTA_BASE_STR_H
#define MTA_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"

/* Copy with truncation; always NUL-terminates when size > 0. Returns
 * false when src did not fit. */
bool str_copy(char *dst, size_t size, const char *src);
/* Same for (ptr, len) input. */
bool str_ncopy(char *dst, size_t size, const char *src, size_t len);
/* snprintf that reports truncation as false. */
bool str_fmt(char *dst, size_t size, const char *fmt, ...) MTA_PRINTF(3, 4);
/* ASCII case-insensitive compare of (a, alen) with NUL-terminated b. */
bool str_ieq(const char *a, size_t alen, const char *b);
/* Does (s, len) start with prefix, ignoring ASCII case? */
bool str_iprefix(const char *s, size_t len, const char *prefix);
/* FNV-1a of a NUL-terminated string: for hash tables, not for security
 * (keys an attacker picks can collide). */
uint64_t str_hash(const char *s);
/* Lowercase ASCII in place. */
void str_lower(char *s);
/* Does (p, n) hold a byte >= 0x80? Word at a time: for message bodies. */
bool mem_has_8bit(const void *p, size_t n);

#endif
