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
 * Configuration: the stage reads only its part of a snapshot (struct
 * deliver_settings). A reload (deliver_reload) sends a reference to the
 * new snapshot to the scheduler and to each worker; each swaps it in
 * when its loop takes the message. A job holds the snapshot its worker
 * had when it took the job, a connection the one of the job that opened
 * it, so the routes and names they borrowed stay valid for their whole
 * life; the last reference frees a retired snapshot.
 *
 * This header is the stage's whole public API (deliver_int.h is private
 * to mta/deliver/).
 *
 * Thread: deliver_new/start/stop/reload from the main thread;
 * deliver_ctl_submit from any thread.
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

/* What the delivery stage reads of a configuration: pointers into one
 * snapshot. */
struct dkim_table;

struct deliver_settings {
	const struct config_delivery *delivery;
	const struct config_route *routes;
	size_t nroutes;
	const struct config_queue *queue; /* retry, max_age, delay_warning */
	const char *hostname; /* [server]: default HELO name, bounces */
	/* [server] listen, listen_tls: the relay's own endpoints, never a
	 * destination (read at startup only) */
	const struct config_server *server;
	/* signs bounces and delay notices (From MAILER-DAEMON@hostname),
	 * the table attached to the snapshot; NULL: none */
	const struct dkim_table *dkim;
	const struct config_tlsrpt *tlsrpt; /* TLS reports (mta/tlsrpt/) */
	/* the whole snapshot: [limit] sections for delivery shaping */
	const struct config *config;
};

/* Point out at the parts of c the stage reads (c borrowed). */
void deliver_settings_of(const struct config *c, struct deliver_settings *out);

/*
 * deliver_check - what deliver_new would refuse in c, without starting
 * anything (for check-config): the [delivery] ca_file and ca_path load.
 * 0, or a negative errno with "FILE:LINE: key: reason" in err.
 */
int deliver_check(
    const struct config *c, char *err, size_t errlen) MTA_MUST_CHECK;

/*
 * deliver_new - build the stage (no threads yet). What s points to, q and
 * dns are borrowed and must outlive the stage (s itself is copied);
 * workers, the scheduler's caps and retry intervals keep these startup
 * values. Subscribes to the queue's new-message notes, so call it before
 * queue_start(). NULL and one line in err on failure (e.g. no usable TLS
 * client context).
 */
struct deliver *deliver_new(const struct deliver_settings *s, struct queue *q,
    struct dns *dns, char *err, size_t errlen);

/* Recover the schedule from the queue and start the threads. */
int deliver_start(struct deliver *d) MTA_MUST_CHECK;

/* Stop dispatching, wait (up to grace_ms) for jobs in flight to come back
 * and their results to be committed, stop the threads, free everything.
 * Must run before queue_close(). Takes NULL. */
void deliver_stop(struct deliver *d, uint64_t grace_ms);

/*
 * deliver_reload - hand a reloaded snapshot to the scheduler and every
 * worker: each takes its own reference (the caller keeps its own) and
 * swaps it in at its loop boundary. New jobs use its routes, limits and
 * timeouts; jobs and connections under way keep theirs. Main thread,
 * after deliver_start().
 */
void deliver_reload(struct deliver *d, struct config *snap);

/*
 * Operator actions (the control socket, control.c). The scheduler thread,
 * the owner of the schedule, has each one committed to the queue first
 * and changes the schedule only once the commit returned 0: hold and
 * release set and clear the envelope's QUEUE_FLAG_HELD, delete removes
 * the message, retry makes every pending recipient of a message that is
 * not held due now on disk (a held one is left as it is), bounce removes
 * the message and queues, in the same commit, a DSN failing its pending
 * recipients ("delivery cancelled by the operator"). A failed
 * commit changes nothing in memory and is that id's status, so "0" means
 * "on disk and in effect".
 */
enum deliver_ctl_op {
	DELIVER_CTL_DELETE,
	DELIVER_CTL_RETRY,
	DELIVER_CTL_RETRY_ALL, /* no ids: every message scheduled */
	DELIVER_CTL_HOLD,
	DELIVER_CTL_RELEASE,
	DELIVER_CTL_BOUNCE, /* delete, with a DSN to the sender (5.0.0) */
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

/* deliver_shape.c: delivery shaping for operators, any thread. The
 * report the scheduler last published (at most a second old: limits,
 * their use, suspended destinations; deliver/dest_shape.h), caller frees;
 * and a request to lift a destination's suspension, which returns once
 * the scheduler has applied it (at most about 2 s; not on the scheduler
 * thread). */
char *deliver_shape_report(struct deliver *d);
void deliver_shape_resume(struct deliver *d, const char *domain);

#endif
