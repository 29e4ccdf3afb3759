/* SPDX-License-Identifier: ISC */
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static void *
xcheck(void *p, size_t size)
{
	if (p == NULL && size != 0)
		fatalx("out of memory allocating %zu bytes", size);
	return p;
}

void *
xmalloc(size_t size)
{
	return xcheck(malloc(size ? size : 1), size);
}

void *
xcalloc(size_t n, size_t size)
{
	return xcheck(calloc(n ? n : 1, size ? size : 1), n * size);
}

void *
xrealloc(void *p, size_t size)
{
	return xcheck(realloc(p, size ? size : 1), size);
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > (size_t)-1 / size)
		fatalx("allocation overflow: %zu x %zu", n, size);
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xmemdup(const void *p, size_t n)
{
	char *q = xmalloc(n);

	memcpy(q, p, n);
	return q;
}
