/* SPDX-License-Identifier: ISC */
/*
 * file.h - read a whole small file (users files, certificates, keys),
 * bounded, so that a missing or unreadable file gets its errno text
 * rather than a library's error stack.
 */
#ifndef MTA_BASE_FILE_H
#define MTA_BASE_FILE_H

#include <stddef.h>
#include <sys/stat.h>

#include "compat.h"

/*
 * file_read - the whole regular file at path, at most max bytes, into a
 * new NUL-terminated allocation: *out (the caller frees it) and *len
 * (bytes, without the NUL). st, when not NULL, gets the file's fstat.
 * Returns 0, or negative errno: -EINVAL (not a regular file), -EFBIG
 * (over max), or what open, fstat or read said. Any thread.
 */
int file_read(const char *path, size_t max, char **out, size_t *len,
    struct stat *st) MTA_MUST_CHECK;

/* Text for a file_read() error: "not a regular file", "file too large",
 * or strerror(). Static or thread-safe strings. */
const char *file_strerror(int rc);

#endif
