/* SPDX-License-Identifier: ISC */
/*
 * local.c - local submission, relay side: the allow list, the unix
 * socket, the directories, and the peer credentials of a local client.
 * See local.h for which thread runs what.
 *
 * Names in the allow lists are resolved to ids once at startup, so a
 * receive thread checks a connection with integer compares only: the
 * kernel gives the peer's uid and gid (SO_PEERCRED) and its
 * supplementary groups (SO_PEERGROUPS), no name service is asked on a
 * ring thread. The credentials are those of the process at connect(),
 * which is what `mta sendmail` is when it connects.
 */
#include "receive/local.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "base/unix_path.h"
#include "base/xalloc.h"
#include "smtp/smtp_in.h"

#define LOCAL_GROUPS_MAX 256 /* supplementary groups looked at */

struct local_acl {
	bool everyone; /* both lists empty */
	uid_t *uids;
	size_t nuids;
	gid_t *gids;
	size_t ngids;
};

/* ---- the allow list ---- */

static bool
parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0' && *out < (unsigned long)-1 / 2;
}

/* One name or number of allow_users (users) or allow_groups. */
static int
acl_add(
    struct local_acl *a, bool users, const char *name, char *err, size_t errlen)
{
	unsigned long id;

	if (parse_id(name, &id)) {
		/* a number is taken as is, as Postfix does with uids */
	} else if (users) {
		struct passwd *pw = getpwnam(name);

		if (pw == NULL)
			goto unknown;
		id = pw->pw_uid;
	} else {
		struct group *gr = getgrnam(name);

		if (gr == NULL)
			goto unknown;
		id = gr->gr_gid;
	}
	if (users) {
		a->uids = xreallocarray(a->uids, a->nuids + 1, sizeof(uid_t));
		a->uids[a->nuids++] = (uid_t)id;
	} else {
		a->gids = xreallocarray(a->gids, a->ngids + 1, sizeof(gid_t));
		a->gids[a->ngids++] = (gid_t)id;
	}
	return 0;
unknown:
	(void)str_fmt(err, errlen, "local: %s: no such %s: %s",
	    users ? "allow_users" : "allow_groups", users ? "user" : "group",
	    name);
	return -EINVAL;
}

static int
acl_list(
    struct local_acl *a, bool users, const char *list, char *err, size_t errlen)
{
	char *copy = xstrdup(list), *save = NULL, *tok;
	int rc = 0;

	for (tok = strtok_r(copy, ", \t", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ", \t", &save))
		rc = acl_add(a, users, tok, err, errlen);
	free(copy);
	return rc;
}

int
local_acl_new(const struct config_local *lc, struct local_acl **out, char *err,
    size_t errlen)
{
	struct local_acl *a = xcalloc(1, sizeof(*a));

	if (acl_list(a, true, lc->allow_users, err, errlen) != 0 ||
	    acl_list(a, false, lc->allow_groups, err, errlen) != 0) {
		local_acl_free(a);
		return -EINVAL;
	}
	a->everyone = a->nuids == 0 && a->ngids == 0;
	*out = a;
	return 0;
}

void
local_acl_free(struct local_acl *a)
{
	if (a == NULL)
		return;
	free(a->uids);
	free(a->gids);
	free(a);
}

bool
local_acl_allows(
    const struct local_acl *a, uid_t uid, const gid_t *gids, size_t n)
{
	if (a->everyone)
		return true;
	for (size_t i = 0; i < a->nuids; i++)
		if (a->uids[i] == uid)
			return true;
	for (size_t i = 0; i < a->ngids; i++)
		for (size_t j = 0; j < n; j++)
			if (a->gids[i] == gids[j])
				return true;
	return false;
}

bool
local_acl_allows_uid(const struct local_acl *a, uid_t uid, gid_t gid)
{
	gid_t gids[LOCAL_GROUPS_MAX];
	int n = LOCAL_GROUPS_MAX - 1;
	struct passwd pw, *pp = NULL;
	char pwbuf[4096];

	gids[0] = gid;
	if (a->everyone || local_acl_allows(a, uid, gids, 1))
		return true;
	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &pp) != 0 || pp == NULL)
		return false;
	if (getgrouplist(pw.pw_name, pw.pw_gid, gids + 1, &n) < 0)
		n = 0; /* more than we look at: the first ones are kept */
	return local_acl_allows(a, uid, gids, (size_t)n + 1);
}

/* ---- directories and the socket ---- */

/* mkdir path with mode (exactly: umask does not apply), or check that
 * what is there is a directory, then set the mode. */
static int
dir_mode(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(path, mode) != 0 && errno != EEXIST)
		goto fail;
	if (lstat(path, &st) != 0)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	if ((st.st_mode & 07777) != mode && chmod(path, mode) != 0)
		goto fail;
	return 0;
fail:
	(void)str_fmt(err, errlen, "local: %s: %s", path, strerror(errno));
	return -errno;
}

int
local_dirs(const struct config *cfg, char *err, size_t errlen)
{
	const char *md = cfg->local.maildrop;
	char refused[CONFIG_PATH_MAX + 16];
	struct stat st;

	if (md[0] == '\0' || cfg->local.socket[0] == '\0') {
		(void)str_fmt(err, errlen,
		    "local: socket or maildrop: path "
		    "too long");
		return -ENAMETOOLONG;
	}
	/* The queue directory is made 0700; local users need to pass
	 * through it (by name only) to reach the socket and the maildrop. */
	if (stat(cfg->queue.path, &st) == 0 && (st.st_mode & 0111) != 0111 &&
	    chmod(cfg->queue.path, (st.st_mode & 07777) | 0111) != 0) {
		(void)str_fmt(err, errlen, "local: %s: %s", cfg->queue.path,
		    strerror(errno));
		return -errno;
	}
	if (!str_fmt(refused, sizeof(refused), "%s/refused", md)) {
		(void)str_fmt(err, errlen, "local: %s: path too long", md);
		return -ENAMETOOLONG;
	}
	if (dir_mode(md, 01733, err, errlen) != 0 ||
	    dir_mode(refused, 0700, err, errlen) != 0)
		return -errno;
	return 0;
}

int
local_listen(const char *path, int *out, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1, dfd = -1, e;

	/* control_new() made sure no other relay runs on this queue, so a
	 * socket file left here is stale */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			(void)str_fmt(err, errlen,
			    "local socket %s: exists "
			    "and is not a socket",
			    path);
			return -EEXIST;
		}
		(void)unlink(path);
	}
	if ((e = unix_path_addr(path, &sun, &dfd)) < 0) {
		errno = -e;
		goto fail;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, 0666) < 0 || listen(fd, 1024) < 0)
		goto fail;
	if (dfd >= 0)
		close(dfd);
	*out = fd;
	return 0;
fail:
	e = errno;
	(void)str_fmt(err, errlen, "local socket %s: %s", path, strerror(e));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return -e;
}

/* ---- a local client ---- */

bool
local_peer(int fd, const struct local_acl *a, const char *hostname,
    struct smtp_in_peer *peer)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t gids[LOCAL_GROUPS_MAX];
	socklen_t glen = sizeof(gids) - sizeof(gid_t);
	size_t n = 1;
	char line[CONFIG_HOST_MAX + 96];
	int w;

	memset(peer, 0, sizeof(*peer));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	gids[0] = cr.gid;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, gids + 1, &glen) == 0)
		n += glen / sizeof(gid_t);
	(void)str_fmt(
	    peer->addr, sizeof(peer->addr), "local:%u", (unsigned)cr.uid);
	peer->local = true;
	peer->uid = cr.uid;
	peer->relay_allowed = true;
	if (local_acl_allows(a, cr.uid, gids, n))
		return true;
	log_event("event=rejected client=%s reason=local_user", peer->addr);
	w = snprintf(line, sizeof(line),
	    "554 5.7.1 %s local user %u is not allowed to submit mail\r\n",
	    hostname, (unsigned)cr.uid);
	if (w > 0)
		(void)send(fd, line, (size_t)w, MSG_NOSIGNAL | MSG_DONTWAIT);
	return false;
}
