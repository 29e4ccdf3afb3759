/* SPDX-License-Identifier: ISC */
/*
 * local.h - local submission, relay side: the unix SMTP socket that
 * `mta sendmail` talks to, who is on its other end (SO_PEERCRED) and
 * whether that local user may submit ([local] allow_users,
 * allow_groups; both empty: everyone, as Postfix's
 * authorized_submit_users).
 *
 * The socket is served by the receive threads as one more listener
 * (receive_local() in receive.h): one SMTP implementation, the same
 * limits, 250 only after the commit. A local client is trusted to relay,
 * as an authenticated one is, and its uid is recorded in the Received
 * header and the log.
 *
 * Threads: local_acl_new, local_listen and local_dirs run on the main
 * thread at startup (name lookups may block); local_peer on a receive
 * thread (no lookup: the peer's groups come from SO_PEERGROUPS);
 * local_acl_allows_uid on the maildrop thread (it looks the user's
 * groups up).
 */
#ifndef MTA_RECEIVE_LOCAL_H
#define MTA_RECEIVE_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/compat.h"
#include "config/config.h"

struct local_acl;
struct smtp_in_peer;

/*
 * local_acl_new - resolve allow_users and allow_groups of lc (names or
 * numbers, separated by commas or blanks) to ids, once. Returns 0 and
 * *out (local_acl_free it), or -EINVAL with "local: allow_users: no such
 * user: bob" in err.
 */
int local_acl_new(const struct config_local *lc, struct local_acl **out,
    char *err, size_t errlen) MTA_MUST_CHECK;
void local_acl_free(struct local_acl *a);

/* May uid, whose groups are gids[0..n), submit? Pure. */
bool local_acl_allows(
    const struct local_acl *a, uid_t uid, const gid_t *gids, size_t n);

/* The same for a file's owner uid and group gid: looks up the user's
 * other groups (getgrouplist). Blocking: not on a ring thread. */
bool local_acl_allows_uid(const struct local_acl *a, uid_t uid, gid_t gid);

/*
 * local_dirs - make the queue directory traversable by local users
 * (0711: they can reach the socket and the maildrop by name, not list
 * anything) and create the maildrop directory (1733: anyone may add a
 * file, nobody but the relay can list or read, the sticky bit keeps
 * users from removing each other's files) with its "refused"
 * subdirectory (0700) for files the importer would not take. Returns 0,
 * or negative errno with one line in err.
 */
int local_dirs(
    const struct config *cfg, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * local_listen - bind and listen on the unix socket at path (a stale
 * socket file is replaced; another kind of file is an error), mode 0666:
 * the allow list, not the file mode, decides who may submit. Returns 0
 * and the socket (non-blocking, close-on-exec) in *fd, or negative errno
 * with one line in err. Call after control_new(), which refuses to start
 * a second relay on the same queue.
 */
int local_listen(
    const char *path, int *fd, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * local_peer - who connected on an accepted local socket fd: fills peer
 * (addr "local:UID", local, uid, relay_allowed) and returns true; or,
 * for a user the acl refuses, writes one "554 5.7.1" line to fd, logs
 * event=rejected reason=local_user and returns false (the caller closes
 * fd). hostname: for the 554 line. Receive thread; never blocks.
 */
bool local_peer(int fd, const struct local_acl *a, const char *hostname,
    struct smtp_in_peer *peer);

#endif
