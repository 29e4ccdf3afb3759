/* SPDX-License-Identifier: ISC */
/*
 * dkim_pool.c - signing off the event loops: a few threads that finish
 * signatures (RSA-2048 costs hundreds of microseconds) and put them in
 * front of the stored message, so a receive thread never stalls its
 * other sessions on one message's signing.
 *
 * DESIGN. As Redis's bio.c: one FIFO of jobs under a mutex and a
 * condition variable; any free worker takes the oldest. A job comes back
 * to the thread that sent it on its reply chan (DKIM_JOB_DONE); that
 * thread then commits the message, so the 250 still follows the commit.
 * A job owns everything it touches (its dkim_msg, the message bytes), so
 * workers share nothing but the queue and the read-only signing table.
 * Workers block every signal: signals go to the main thread's signalfd.
 */
#include "dkim/dkim_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/xalloc.h"

struct dkim_pool {
	pthread_mutex_t lock; /* protects head, tail, stop */
	pthread_cond_t cond;  /* a job was queued, or stop was set */
	struct chan_msg *head, *tail;
	bool stop;
	pthread_t *threads;
	unsigned nthreads;
};

void
dkim_job_run(struct dkim_job *j)
{
	struct buf sig;
	int res;

	if (j->t != NULL && dkim_7bit(&j->body)) {
		/* the streamed hash was of the 8-bit form: sign anew */
		res = dkim_sign_message(j->t, &j->body, j->now, j->label,
		    sizeof(j->label), j->why, sizeof(j->why));
		j->status = res == 1 ? 0 : res < 0 ? res : -ENOENT;
		dkim_msg_free(j->m);
		j->m = NULL;
		return;
	}
	buf_init(&sig, SIZE_MAX);
	j->status = dkim_msg_finish(j->m, j->now, &sig, j->label,
	    sizeof(j->label), j->why, sizeof(j->why));
	if (j->status == 0)
		dkim_prepend(&j->body, &sig);
	buf_fini(&sig);
	dkim_msg_free(j->m);
	j->m = NULL;
}

void
dkim_job_free(struct dkim_job *j)
{
	if (j == NULL)
		return;
	dkim_msg_free(j->m);
	buf_fini(&j->body);
	free(j);
}

static void *
pool_worker(void *arg)
{
	struct dkim_pool *p = arg;
	struct chan_msg *m;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if ((m = p->head) != NULL) {
			if ((p->head = m->next) == NULL)
				p->tail = NULL;
			pthread_mutex_unlock(&p->lock);
			dkim_job_run((struct dkim_job *)m);
			m->type = DKIM_JOB_DONE;
			chan_send(((struct dkim_job *)m)->reply, m);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->stop)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct dkim_pool *
dkim_pool_new(unsigned nthreads)
{
	struct dkim_pool *p;
	sigset_t all, old;
	int rc;

	MTA_ASSERT(nthreads >= 1);
	p = xcalloc(1, sizeof(*p));
	p->nthreads = nthreads;
	p->threads = xcalloc(nthreads, sizeof(*p->threads));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < nthreads; i++)
		if ((rc = pthread_create(
		         &p->threads[i], NULL, pool_worker, p)) != 0) {
			errno = rc;
			fatal("dkim: pthread_create");
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p;
}

void
dkim_pool_submit(struct dkim_pool *p, struct dkim_job *j)
{
	MTA_ASSERT(j->reply != NULL && j->m != NULL);
	j->msg.type = DKIM_JOB_SIGN;
	j->msg.next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->tail != NULL)
		p->tail->next = &j->msg;
	else
		p->head = &j->msg;
	p->tail = &j->msg;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void
dkim_pool_free(struct dkim_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true; /* workers empty the queue before they stop */
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}
