/* SPDX-License-Identifier: ISC */
#include "chan.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

struct chan {
	pthread_mutex_t lock;
	struct chan_msg *head; /* lock */
	struct chan_msg *tail; /* lock */
	bool armed;            /* lock: consumer may be asleep; signal it */
	int efd;
};

struct chan *
chan_new(void)
{
	struct chan *c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->lock, NULL);
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0)
		fatal("eventfd");
	c->armed = true;
	return c;
}

void
chan_free(struct chan *c)
{
	if (c == NULL)
		return;
	close(c->efd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int
chan_fd(const struct chan *c)
{
	return c->efd;
}

void
chan_send(struct chan *c, struct chan_msg *m)
{
	uint64_t one = 1;
	bool wake;

	m->next = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
	/* Only the first message after a take needs a wakeup: saves a
	 * syscall per message when a batch builds up. The write happens
	 * under the lock: once unlocked, the consumer may take the message
	 * and free the chan, so touching c afterwards would be a race. */
	wake = c->armed;
	c->armed = false;
	if (wake && write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("chan eventfd write");
	pthread_mutex_unlock(&c->lock);
}

struct chan_msg *
chan_take(struct chan *c)
{
	struct chan_msg *m;

	pthread_mutex_lock(&c->lock);
	m = c->head;
	c->head = c->tail = NULL;
	c->armed = true;
	pthread_mutex_unlock(&c->lock);
	return m;
}

void
chan_ack(struct chan *c)
{
	uint64_t v;

	if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("chan eventfd read");
}

struct chan_msg *
chan_wait(struct chan *c, int timeout_ms)
{
	struct pollfd pfd = {.fd = c->efd, .events = POLLIN};
	struct chan_msg *m;

	if ((m = chan_take(c)) != NULL)
		return m;
	if (poll(&pfd, 1, timeout_ms) > 0)
		chan_ack(c);
	return chan_take(c);
}
