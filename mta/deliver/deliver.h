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
 * has the committer record it, and only then applies it to the schedule,
 * logs it and forgets the job (commit, then apply): a crash between a
 * remote 250 and that commit can repeat a delivery, never lose one, and
 * a failed commit leaves the schedule as the disk is. Operator actions
 * (deliver_ctl_submit) follow the same rule.
 *
 * This header is the stage's whole public API (deliver_int.h is private
 * to mta/deliver/).
 *
 * Thread: deliver_new/start/stop and deliver_config_submit from the main
 * thread; deliver_ctl_submit from any thread.
 */
#ifndef MTA_DELIVER_H
#define MTA_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/chan.h"
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

/*
 * deliver_config_submit - hand a reloaded configuration to the delivery
 * stage; ownership of cfg passes. The scheduler swaps it in at a safe
 * point and frees it once nothing uses it. Main thread, after
 * deliver_start().
 */
void deliver_config_submit(struct deliver *d, struct config *cfg);

/*
 * Operator actions (the control socket, control.c). The scheduler thread,
 * the owner of the schedule, has each one committed to the queue first
 * and changes the schedule only once the commit returned 0: hold and
 * release set and clear the envelope's QUEUE_FLAG_HELD, delete removes
 * the message, retry makes every pending recipient of a message that is
 * not held due now on disk (a held one is left as it is). A failed
 * commit changes nothing in memory and is that id's status, so "0" means
 * "on disk and in effect".
 */
enum deliver_ctl_op {
	DELIVER_CTL_DELETE,
	DELIVER_CTL_RETRY,
	DELIVER_CTL_RETRY_ALL, /* no ids: every message scheduled */
	DELIVER_CTL_HOLD,
	DELIVER_CTL_RELEASE,
};

struct deliver_ctl {
	struct chan_msg msg; /* first; its type is set by deliver_ctl_submit */
	struct chan *reply;  /* borrowed: where it comes back */
	enum deliver_ctl_op op;
	uint64_t *ids; /* owned by the sender; unused by RETRY_ALL */
	size_t n;
	int *status;  /* n entries, out: 0, -ENOENT, -EIO, ... */
	size_t count; /* out, RETRY_ALL: messages made due */
	int error;    /* out, RETRY_ALL: 0, or why some were not made due */
};

/* deliver_ctl_submit - hand an operator request to the scheduler; any
 * thread. c and what it points to are borrowed until c comes back on
 * c->reply (as its msg, chan order); the scheduler always answers, as
 * long as it runs (stop the sender before deliver_stop()). */
void deliver_ctl_submit(struct deliver *d, struct deliver_ctl *c);

#endif
