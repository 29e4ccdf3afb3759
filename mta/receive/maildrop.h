/* SPDX-License-Identifier: ISC */
/*
 * maildrop.h - the importer of the maildrop directory: messages that
 * `mta sendmail` wrote there durably because the relay was not running
 * (or refused them for a while) are moved into the queue.
 *
 * DESIGN. One thread of its own (it blocks on the directory, on name
 * lookups and on the committer's answers; no ring thread may). It scans
 * the directory at start, then every MAILDROP_POLL_MS: a readdir of a
 * directory that is empty while the relay runs. (With an inotify
 * instance, a relay killed with -9 and restarted at once found the dead
 * one's control socket still answering: test_resources.py.) Each pass
 * takes a bounded batch (MAILDROP_BATCH files, MAILDROP_BATCH_BYTES bytes),
 * checks each file (a regular file with one link, owned by the
 * submitter: its uid is the one recorded; the allow list; the same
 * limits as SMTP: size, recipients, address and header syntax, hops),
 * submits the good ones to the queue together (one group commit) and
 * removes each file only after its commit returned. A file that fails a
 * check is moved to the "refused" subdirectory, never deleted, and
 * logged (event=maildrop-refused). A crash between a commit and the
 * removal imports that file again at the next start: at least once,
 * never lost (SMTP's own window).
 *
 * Lifecycle (main thread): maildrop_new() after local_dirs(), before
 * queue_start(); maildrop_start() after it; maildrop_free() before the
 * queue closes (it waits for the answers it is owed).
 */
#ifndef MTA_RECEIVE_MAILDROP_H
#define MTA_RECEIVE_MAILDROP_H

#include <stddef.h>

#include "base/compat.h"
#include "config/config.h"

#define MAILDROP_POLL_MS     1000 /* between scans of the directory */
#define MAILDROP_BATCH       64   /* files per pass */
#define MAILDROP_BATCH_BYTES (64u << 20)

struct maildrop;
struct queue;

/*
 * maildrop_new - open the maildrop directory of cfg (local.maildrop, made
 * by local_dirs()) and resolve its allow list. cfg: borrowed, outlives
 * the importer ([server] hostname and limits, [local]). q: the queue
 * messages go to, borrowed. Returns 0 and *out, or negative errno with
 * one line in err.
 */
int maildrop_new(const struct config *cfg, struct queue *q,
    struct maildrop **out, char *err, size_t errlen) MTA_MUST_CHECK;

/* Start the thread (the first scan runs at once). 0 or negative errno. */
int maildrop_start(struct maildrop *m) MTA_MUST_CHECK;

/* Stop the thread after the pass under way (its commits are waited for)
 * and free everything. Takes NULL. */
void maildrop_free(struct maildrop *m);

#endif
