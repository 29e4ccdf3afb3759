/* SPDX-License-Identifier: ISC */
/*
 * serve_priv.c - the privilege drop of `mta serve` ([server] user, group,
 * run_as_root).
 *
 * Runs on the main thread, before any other thread exists. Root is
 * needed only to bind ports below 1024 and to read files kept from the
 * relay's user (TLS key, users file, DKIM keys): serve.c does those
 * first, then serve_priv_drop() makes the process the user for good,
 * with the user's group as its only group. Everything after that (the
 * queue, delivery, every client session) runs unprivileged. Like
 * Postfix's set_ugid(): setgroups to the one group, setgid, setuid, and
 * then a check that root cannot be had back, because a drop that half
 * happened must stop the start, not serve.
 *
 * The queue directory must be the user's (LMDB opens its files read and
 * write): serve_priv_queue() makes it, or gives an existing root-owned
 * one to the user, before the drop; the systemd unit therefore keeps
 * CAP_CHOWN. An existing directory that is already the user's is not
 * walked (root without CAP_DAC_READ_SEARCH could not enter it anyway).
 */
#include "serve_priv.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"

/* The user's uid and primary group. */
static bool
priv_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *pp = NULL;
	char buf[4096];

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &pp) != 0 || pp == NULL)
		return false;
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return true;
}

static bool
priv_group(const char *name, gid_t *gid)
{
	struct group gr, *gp = NULL;
	char buf[8192];

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &gp) != 0 || gp == NULL)
		return false;
	*gid = gr.gr_gid;
	return true;
}

/* serve_priv_plan() but for who runs it: see serve_priv_check(). */
static int
priv_resolve(const struct config_server *s, struct serve_priv *p, char *err,
    size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (s->user[0] == '\0') {
		if (geteuid() == 0 && !s->run_as_root) {
			(void)str_fmt(err, errlen,
			    "refusing to run as root: set [server] user "
			    "(e.g. user = mta), or run_as_root = yes");
			return -1;
		}
		return 0;
	}
	str_copy(p->user, sizeof(p->user), s->user);
	if (!priv_user(s->user, &p->uid, &p->gid)) {
		(void)str_fmt(
		    err, errlen, "[server] user = %s: no such user", s->user);
		return -1;
	}
	str_copy(p->group, sizeof(p->group), s->group);
	if (s->group[0] != '\0' && !priv_group(s->group, &p->gid)) {
		(void)str_fmt(err, errlen, "[server] group = %s: no such group",
		    s->group);
		return -1;
	}
	if (p->uid == 0 && !s->run_as_root) {
		(void)str_fmt(err, errlen,
		    "[server] user = %s is root: name an unprivileged user, "
		    "or set run_as_root = yes",
		    s->user);
		return -1;
	}
	return 0;
}

int
serve_priv_check(const struct config_server *s, char *err, size_t errlen)
{
	struct serve_priv p;

	return priv_resolve(s, &p, err, errlen);
}

int
serve_priv_plan(const struct config_server *s, struct serve_priv *p, char *err,
    size_t errlen)
{
	if (priv_resolve(s, p, err, errlen) < 0)
		return -1;
	if (s->user[0] == '\0')
		return 0;
	if (geteuid() == 0)
		p->drop = p->uid != 0;
	else if (geteuid() != p->uid || getegid() != p->gid) {
		(void)str_fmt(err, errlen,
		    "[server] user = %s: running as uid %u gid %u, and only "
		    "root can become uid %u gid %u",
		    s->user, (unsigned)geteuid(), (unsigned)getegid(),
		    (unsigned)p->uid, (unsigned)p->gid);
		return -1;
	}
	return 0;
}

/* mkdir -p: parents 0755 (root's), the last one 0750. */
static int
priv_mkdir(const char *path)
{
	char tmp[CONFIG_PATH_MAX];

	str_copy(tmp, sizeof(tmp), path);
	for (char *s = tmp + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* Give path to the user; a missing one is fine. */
static int
priv_give(const struct serve_priv *p, const char *dir, const char *name)
{
	char path[CONFIG_PATH_MAX + 64];

	if (!str_fmt(
	        path, sizeof(path), "%s%s%s", dir, name[0] ? "/" : "", name)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* the directory itself may be a link to where the queue is */
	if ((name[0] ? lchown(path, p->uid, p->gid)
	             : chown(path, p->uid, p->gid)) != 0 &&
	    errno != ENOENT)
		return -1;
	return 0;
}

int
serve_priv_queue(const struct serve_priv *p, const struct config *cfg,
    char *err, size_t errlen)
{
	const char *q = cfg->queue.path;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (!p->drop)
		return 0;
	if (priv_mkdir(q) != 0 || stat(q, &st) != 0)
		goto fail;
	if (st.st_uid == p->uid)
		return 0;
	/* the directory and every entry the stages keep in it (the queue's
	 * data.mdb and lock.mdb, the MTA-STS and TLS-RPT stores, ...): not
	 * a list of names, which a store added later would miss */
	if (priv_give(p, q, "") != 0 || (d = opendir(q)) == NULL)
		goto fail;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    priv_give(p, q, de->d_name) != 0) {
			closedir(d);
			goto fail;
		}
	closedir(d);
	/* the maildrop and its refused/ stay where [local] says; their
	 * files keep their owners (the submitting users) */
	if (priv_give(p, cfg->local.maildrop, "") != 0 ||
	    priv_give(p, cfg->local.maildrop, "refused") != 0)
		goto fail;
	return 0;
fail:
	(void)str_fmt(err, errlen, "queue %s: giving it to %s: %s", q, p->user,
	    strerror(errno));
	return -1;
}

int
serve_priv_drop(const struct serve_priv *p, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (!p->drop)
		return 0;
	/* glibc applies each of these to every thread of the process */
	if (setgroups(1, &p->gid) != 0 || setgid(p->gid) != 0 ||
	    setuid(p->uid) != 0) {
		(void)str_fmt(err, errlen, "becoming %s (uid %u gid %u): %s",
		    p->user, (unsigned)p->uid, (unsigned)p->gid,
		    strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid ||
	    eg != p->gid || sg != p->gid || setuid(0) == 0 || seteuid(0) == 0) {
		(void)str_fmt(err, errlen,
		    "becoming %s: the drop did not hold (root is still "
		    "reachable)",
		    p->user);
		return -1;
	}
	log_event("event=privileges-dropped user=%s uid=%u gid=%u", p->user,
	    (unsigned)p->uid, (unsigned)p->gid);
	return 0;
}

static void
priv_readable(const char *what, const char *path, const struct serve_priv *p)
{
	char q[CONFIG_PATH_MAX * 2 + 8];

	if (path[0] == '\0' || access(path, R_OK) == 0)
		return;
	log_event("event=reload-warning key=%s file=%s reason=\"not readable "
	          "by user %s (%s): a SIGHUP cannot reload it, a restart can\"",
	    what, log_quote(q, sizeof(q), path, strlen(path)), p->user,
	    strerror(errno));
}

void
serve_priv_reload_check(const struct serve_priv *p, const struct config *cfg)
{
	if (!p->drop)
		return;
	priv_readable("config", cfg->file, p);
	priv_readable("tls.certificate", cfg->tls.certificate, p);
	priv_readable("tls.private_key", cfg->tls.private_key, p);
	priv_readable("auth.users", cfg->auth.users, p);
	for (size_t i = 0; i < cfg->ndkims; i++)
		priv_readable("dkim.key", cfg->dkims[i].key, p);
}
