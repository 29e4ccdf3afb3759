/* SPDX-License-Identifier: ISC */
/*
 * deliver.h - the delivery stage: the scheduler thread and W delivery
 * worker threads.
 *
 * DESIGN. The scheduler thread owns the schedule (schedule.h). It is
 * rebuilt from the queue at start, fed by the committer with every newly
 * committed message, and hands due jobs (one message, one destination) to
 * workers, always the same worker for the same destination so that its
 * connections get reused. A worker is one uring loop running many
 * outbound SMTP sessions (smtp_out.h): it resolves the destination
 * (route, MX or host, through the dns thread), connects within the
 * per-host cap, tries MX hosts in order, and sends the job back with an
 * outcome per recipient. The scheduler decides each recipient's fate,
 * has the committer record it, and only then logs it and forgets the job:
 * a crash between a remote 250 and that commit can repeat a delivery,
 * never lose one.
 *
 * Thread: deliver_new/start/stop from the main thread only.
 */
#ifndef MTA_DELIVER_H
#define MTA_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/compat.h"
#include "config/config.h"

struct queue;
struct dns;
struct deliver;

/*
 * deliver_new - build the stage (no threads yet). cfg, q and dns are
 * borrowed and must outlive it. Subscribes to the queue's new-message
 * notes, so call it before queue_start(). NULL and one line in err on
 * failure (e.g. no usable TLS client context).
 */
struct deliver *deliver_new(const struct config *cfg, struct queue *q,
    struct dns *dns, char *err, size_t errlen);

/* Recover the schedule from the queue and start the threads. */
int deliver_start(struct deliver *d) MTA_MUST_CHECK;

/* Stop dispatching, wait (up to grace_ms) for jobs in flight to come back
 * and their results to be committed, stop the threads, free everything.
 * Must run before queue_close(). Takes NULL. */
void deliver_stop(struct deliver *d, uint64_t grace_ms);

#endif
