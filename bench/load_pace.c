/* SPDX-License-Identifier: ISC */
/*
 * load_pace.c - mta-load's pacing: which message a thread's connections
 * may start, and when. Closed loop: the next one at once, up to the
 * thread's quota. Open loop: the times messages came due (pushed by the
 * thread's ticker in load.c), taken first in, first out, by whichever
 * connection is free. load.c and load_conn.c call this file; it calls
 * neither.
 *
 * Thread: one load thread; each works on its own struct load_thread.
 */
#include "bench/load.h"

#include <stdlib.h>

#include "base/clock.h"
#include "base/xalloc.h"

/* No more messages will be started by this thread. */
bool
load_thread_finished(const struct load_thread *t)
{
	if (atomic_load(&load_stop))
		return true;
	if (load_opt.rate > 0)
		return load_opt.messages && t->started >= t->quota &&
		       t->blen == 0;
	return t->quota && t->started >= t->quota;
}

/* Take the next message if one may start now; *due_us is when it was
 * due (open loop) or now (closed loop). */
bool
load_take_message(struct load_thread *t, uint64_t *due_us)
{
	if (atomic_load(&load_stop))
		return false;
	if (load_opt.rate > 0) {
		if (t->blen == 0)
			return false;
		*due_us = t->backlog[t->bhead];
		t->bhead = (t->bhead + 1) % t->bcap;
		t->blen--;
		return true;
	}
	if (t->quota && t->started >= t->quota)
		return false;
	t->started++;
	*due_us = clock_wall_us();
	return true;
}

/* Open loop: a message came due; it waits for a free connection. */
void
load_pace_due(struct load_thread *t, uint64_t due)
{
	if (t->blen == t->bcap) {
		size_t ncap = t->bcap ? t->bcap * 2 : 1024;
		uint64_t *nb = xcalloc(ncap, sizeof(*nb));

		for (size_t i = 0; i < t->blen; i++)
			nb[i] = t->backlog[(t->bhead + i) % t->bcap];
		free(t->backlog);
		t->backlog = nb;
		t->bcap = ncap;
		t->bhead = 0;
	}
	t->backlog[(t->bhead + t->blen++) % t->bcap] = due;
}
