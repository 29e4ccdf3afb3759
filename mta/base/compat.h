/* SPDX-License-Identifier: ISC */
/*
 * compat.h - attributes and feature probes, in one place.
 *
 * Every module includes this instead of scattering #ifdefs. Debian 12 is
 * the baseline: glibc 2.36 (no strlcpy), liburing 2.3, c-ares 1.18.
 */
#ifndef MTA_BASE_COMPAT_H
#define MTA_BASE_COMPAT_H

#define MTA_MUST_CHECK   __attribute__((warn_unused_result))
#define MTA_NORETURN     __attribute__((noreturn))
#define MTA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MTA_UNUSED       __attribute__((unused))

#define MTA_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Stays on in release builds: a broken invariant is a bug, not an input. */
#define MTA_ASSERT(e) ((e) ? (void)0 : mta_assert_fail(#e, __FILE__, __LINE__))
MTA_NORETURN void mta_assert_fail(const char *expr, const char *file, int line);

#define MTA_VERSION "0.1.0"

#endif
