/* SPDX-License-Identifier: ISC */
/*
 * xalloc.h - allocation that aborts instead of failing.
 *
 * Memory is bounded by design (every buffer has a cap), so running out of
 * it is a bug; as in OpenSMTPD, Postfix and Redis we abort rather than
 * thread an error through every caller.
 */
#ifndef MTA_BASE_XALLOC_H
#define MTA_BASE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xmemdup(const void *p, size_t n);

#endif
