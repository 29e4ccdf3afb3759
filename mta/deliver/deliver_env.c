/* SPDX-License-Identifier: ISC */
/*
 * deliver_env.c - the schedule's intake: a queued envelope, as the queue
 * holds it, into the schedule. Used for every envelope recovered at
 * start, every newly committed one (a QUEUE_NOTE_NEW) and one released
 * by an operator that was held since before the start. Reading the
 * envelope as it is on disk is what keeps the schedule equal to the
 * disk. Scheduler thread only.
 */
#include <stdlib.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "deliver/deliver_int.h"
#include "queue/queue.h"

/* Does the envelope carry any DSN parameter (RFC 3461)? Most do not,
 * and then the schedule is spared them. */
static bool
deliver_env_has_dsn(const struct queue_envelope *env)
{
	if ((env->envid != NULL && env->envid[0] != '\0') || env->ret != 0)
		return true;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].notify != 0 ||
		    (env->rcpts[i].orcpt != NULL &&
		        env->rcpts[i].orcpt[0] != '\0'))
			return true;
	return false;
}

/* Hand the schedule the DSN parameters of the recipients in (the
 * pending ones, in order). */
static void
deliver_env_dsn(struct dsched *ds, const struct queue_envelope *env,
    const struct sched_rcpt_in *in, size_t n)
{
	uint8_t *notify = xcalloc(n ? n : 1, sizeof(*notify));
	const char **orcpts = xcalloc(n ? n : 1, sizeof(*orcpts));

	for (size_t k = 0; k < n; k++) {
		notify[k] = env->rcpts[in[k].idx].notify;
		orcpts[k] = env->rcpts[in[k].idx].orcpt;
	}
	(void)sched_msg_dsn(
	    ds->s, env->id, env->envid, env->ret, notify, orcpts, n);
	free(notify);
	free(orcpts);
}

void
deliver_env_add(
    struct dsched *ds, const struct queue_envelope *env, uint64_t now)
{
	struct sched_rcpt_in *in;
	size_t n = 0;

	if (env->flags & QUEUE_FLAG_WARNED)
		deliver_bounce_warned(ds, env->id, true);
	if (env->flags & QUEUE_FLAG_HELD)
		return; /* held: release (deliver_ctl.c) schedules it again */
	in = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(*in));
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		in[n].addr = env->rcpts[i].addr;
		in[n].idx = (uint32_t)i;
		in[n].attempts = (uint16_t)env->rcpts[i].attempts;
		in[n].next_ms = env->rcpts[i].next_ms;
		n++;
	}
	if (sched_msg_add(
	        ds->s, env->id, env->from, env->received_ms, in, n, now) != 0)
		log_debug("event=sched-duplicate id=%016llx",
		    (unsigned long long)env->id);
	else if (deliver_env_has_dsn(env))
		deliver_env_dsn(ds, env, in, n);
	free(in);
}
