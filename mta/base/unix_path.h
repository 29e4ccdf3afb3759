/* SPDX-License-Identifier: ISC */
/*
 * unix_path.h - the address of a unix socket whose path may be longer
 * than sun_path (108 bytes): such a path is reached through
 * /proc/self/fd/N/NAME, N being its directory opened O_PATH (which needs
 * only search permission on the way, as the full path does).
 */
#ifndef MTA_BASE_UNIX_PATH_H
#define MTA_BASE_UNIX_PATH_H

#include <sys/socket.h>
#include <sys/un.h>

#include "compat.h"

/*
 * unix_path_addr - fill sun for path. *dfd is -1, or the directory
 * descriptor the address goes through: keep it open until bind() or
 * connect() returned, then close it. Returns 0, or -ENAMETOOLONG, or
 * what opening the directory said (negative errno). Any thread.
 */
int unix_path_addr(
    const char *path, struct sockaddr_un *sun, int *dfd) MTA_MUST_CHECK;

#endif
