/* SPDX-License-Identifier: ISC */
/*
 * serve_priv.h - who `mta serve` runs as: the privilege drop.
 *
 * Started as root, the relay binds its ports and reads its certificate,
 * keys and users file as root (serve.c), then becomes [server] user (and
 * group) for good, before the first thread exists. Main thread only.
 */
#ifndef MTA_SERVE_PRIV_H
#define MTA_SERVE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/compat.h"
#include "config/config.h"

struct serve_priv {
	bool drop; /* started as root with a user: serve_priv_drop() */
	uid_t uid;
	gid_t gid;
	char user[64];
	char group[64];
};

/*
 * serve_priv_plan - decide who serve runs as, before anything is opened.
 * Returns 0 with *p filled (p->drop says whether to drop), or -1 with
 * one line in err: started as root without [server] user (and without
 * run_as_root = yes); an unknown user or group; a user other than the
 * one running, without root to become it.
 */
int serve_priv_plan(const struct config_server *s, struct serve_priv *p,
    char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * serve_priv_check - for check-config: what serve_priv_plan() refuses,
 * except a user other than the caller (serve starts as root to become
 * it). Returns 0, or -1 with one line in err.
 */
int serve_priv_check(
    const struct config_server *s, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * serve_priv_queue - as root, before the drop: make the queue directory
 * when it is missing (mode 0750) and, when it is not already the user's,
 * give it and what the relay keeps in it (data.mdb, lock.mdb, the
 * maildrop directories) to user:group. Nothing when !p->drop.
 * Returns 0, or -1 with one line in err.
 */
int serve_priv_queue(const struct serve_priv *p, const struct config *cfg,
    char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * serve_priv_drop - become p->uid:p->gid with no supplementary group
 * but p->gid, in every thread, then check that it holds: real, effective
 * and saved ids are the user's and setuid(0) fails. Nothing when
 * !p->drop. Returns 0, or -1 with one line in err (the caller exits: a
 * half-dropped relay must not serve).
 */
int serve_priv_drop(
    const struct serve_priv *p, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * serve_priv_reload_check - after the drop: a warning line for each file
 * a SIGHUP reads again (the configuration, certificate, key, users file,
 * DKIM keys) that this user cannot read: such a reload fails, and only
 * a restart picks up a change to it.
 */
void serve_priv_reload_check(
    const struct serve_priv *p, const struct config *cfg);

#endif
