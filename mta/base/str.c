/* SPDX-License-Identifier: ISC */
#include "str.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

bool
str_ncopy(char *dst, size_t size, const char *src, size_t len)
{
	size_t n;

	if (size == 0)
		return false;
	n = len < size - 1 ? len : size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n == len;
}

bool
str_copy(char *dst, size_t size, const char *src)
{
	return str_ncopy(dst, size, src, strlen(src));
}

bool
str_fmt(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, size, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < size;
}

static int
lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

bool
str_ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool
str_iprefix(const char *s, size_t len, const char *prefix)
{
	size_t i;

	for (i = 0; prefix[i]; i++)
		if (i >= len ||
		    lc((unsigned char)s[i]) != lc((unsigned char)prefix[i]))
			return false;
	return true;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)lc((unsigned char)*s);
}

bool
mem_has_8bit(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t acc = 0, w;
	size_t i = 0;

	/* 64 bytes between tests: the inner loop vectorises */
	for (; n - i >= 64; i += 64) {
		for (size_t k = 0; k < 64; k += 8) {
			memcpy(&w, b + i + k, 8);
			acc |= w;
		}
		if (acc & 0x8080808080808080ULL)
			return true;
	}
	for (; i < n; i++)
		acc |= b[i];
	return (acc & 0x8080808080808080ULL) != 0;
}

uint64_t
str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}
