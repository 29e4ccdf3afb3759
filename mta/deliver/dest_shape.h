/* SPDX-License-Identifier: ISC */
/*
 * dest_shape.h - delivery shaping: the [limit] sections keyed by destination
 * (key = destination_domain) applied where the scheduler admits a job,
 * and the suspensions and rate cuts of adaptive backoff (backoff.h).
 *
 * DESIGN. The scheduler asks dest_shape_admit before it makes a job of a due
 * unit: a suspended destination, a rate that would be exceeded (count =
 * messages: one per job, a message's transaction; count = connections
 * with a rate: one per job, which may open a connection) or a cap on
 * connections held (count = connections, max = N: a lease per job in
 * flight, the same leases as submission's, expiring by themselves) make
 * the unit wait in memory, due again when the limit allows: no recipient
 * changes state and no connection is made. Rates use the one throttle
 * engine (limits.h) over a store of the delivery stage's own, kept across
 * reloads. A job that comes back (dest_shape_done) gives its lease back and
 * its replies are matched against the backoff rules: a match suspends
 * the destination for [delivery] backoff_suspend and halves its rates;
 * successes ramp them back up.
 *
 * Operators read dest_shape_report (a text snapshot, published by the
 * scheduler for the control socket) and lift a suspension with
 * dest_shape_resume. Thread: the scheduler.
 */
#ifndef MTA_DEST_SHAPE_H
#define MTA_DEST_SHAPE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "deliver/schedule.h"

struct dest_shape;

struct dest_shape *dest_shape_new(void);
void dest_shape_free(struct dest_shape *sh);

/* Use the limits and backoff keys of c (borrowed until the next call or
 * dest_shape_free: the caller holds the snapshot). */
void dest_shape_config(struct dest_shape *sh, const struct config *c);

/* sched_cfg.admit: 0 when a job of domain may start at now_ms (wall) and
 * is counted; else the ms to wait. arg: the struct dest_shape. */
uint64_t dest_shape_admit(void *arg, const char *domain, uint64_t now_ms);

/* A job a worker ran is back: its lease is given back; a deferral that a
 * backoff rule matches suspends its destination (and the job's
 * dest_failed is cleared: the suspension, not the scheduler's rest,
 * holds the destination back). */
void dest_shape_done(
    struct dest_shape *sh, struct sched_job *job, uint64_t now_ms);

/* Lift domain's suspension and rate cut. false: it had none. */
bool dest_shape_resume(struct dest_shape *sh, const char *domain);

/* Is domain suspended at now_ms? */
bool dest_shape_suspended(
    const struct dest_shape *sh, const char *domain, uint64_t now_ms);

/* Lines for operators (caller frees): every limit with its key, use and
 * whether it binds, then "suspended DOMAIN ..." and "rate DOMAIN ..." */
char *dest_shape_report(const struct dest_shape *sh, uint64_t now_ms);

#endif
