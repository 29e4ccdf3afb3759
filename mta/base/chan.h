/* SPDX-License-Identifier: ISC */
/*
 * chan.h - the one way stages talk: a multi-producer, single-consumer queue
 * of messages, with an eventfd to wake the consumer.
 *
 * DESIGN. Messages are intrusive: a module embeds struct chan_msg as the
 * first member of its request struct and declares its message types in its
 * own header. chan_send() transfers ownership of the message to the
 * consumer and never fails: the bound is the producers' (a session has at
 * most one request outstanding; a stage that produces freely must count
 * its own in-flight messages and push back on its source). A short mutex
 * protects the list; it is held only to link or unlink, never across a
 * call out of this file.
 *
 * The consumer waits on chan_fd() (an eventfd: read it in its io_uring, or
 * poll it), then takes the whole batch with chan_take(). A consumer that
 * is a plain thread can use chan_wait() instead.
 */
#ifndef MTA_BASE_CHAN_H
#define MTA_BASE_CHAN_H

#include <stdint.h>

#include "compat.h"

struct chan_msg {
	struct chan_msg *next; /* owned by chan while queued */
	uint16_t type;         /* module-defined */
	uint64_t reqid;        /* correlates a reply with its request */
};

struct chan;

/* Create a channel with its eventfd (EFD_NONBLOCK|EFD_CLOEXEC). Aborts on
 * failure (startup only). */
struct chan *chan_new(void);
/* Frees the channel; messages still queued are returned to the caller
 * through chan_take() first, so call that and dispose of them. */
void chan_free(struct chan *c);

/* The eventfd that becomes readable when messages arrive. The consumer
 * must read (drain) it before calling chan_take() to avoid lost wakeups. */
int chan_fd(const struct chan *c);

/* Append m; any thread. Ownership of m passes to the consumer. */
void chan_send(struct chan *c, struct chan_msg *m);

/* Take every queued message, oldest first, as a list linked by ->next;
 * NULL when empty. Consumer thread only. */
struct chan_msg *chan_take(struct chan *c);

/* Block up to timeout_ms (-1: forever) until a message is queued, then
 * take them all as chan_take() does. NULL on timeout, and also after a
 * spurious wakeup (a wakeup left on the eventfd by an earlier batch):
 * callers loop on their own deadline, never on one NULL. */
struct chan_msg *chan_wait(struct chan *c, int timeout_ms);

/* Drain the eventfd counter (after a wakeup). */
void chan_ack(struct chan *c);

#endif
