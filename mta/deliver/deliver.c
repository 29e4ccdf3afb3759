/* SPDX-License-Identifier: ISC */
/*
 * deliver.c - the delivery stage's life cycle and the per-host connection
 * cap that its workers share (see deliver.h).
 */
#include "deliver/deliver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "deliver/deliver_int.h"
#include "sts/sts.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "net/tls.h"
#include "tlsrpt/tlsrpt.h"

/* One remote address with connections open to it. Few exist at a time
 * (bounded by [delivery] max_connections), so a list is enough. */
struct deliver_host {
	char key[80]; /* "ip:port" */
	unsigned conns;
	struct deliver_host *next;
};

bool
deliver_host_acquire(
    struct deliver *d, const char *key, const struct config_delivery *dl)
{
	struct deliver_host *h;
	bool ok = false;

	if (atomic_load(&d->conns) >= dl->max_connections)
		return false;
	pthread_mutex_lock(&d->hosts_lock);
	for (h = d->hosts; h; h = h->next)
		if (strcmp(h->key, key) == 0)
			break;
	if (h == NULL) {
		h = xcalloc(1, sizeof(*h));
		str_copy(h->key, sizeof(h->key), key);
		h->next = d->hosts;
		d->hosts = h;
	}
	if (h->conns < dl->max_connections_per_host) {
		h->conns++;
		ok = true;
	}
	pthread_mutex_unlock(&d->hosts_lock);
	if (ok)
		atomic_fetch_add(&d->conns, 1);
	return ok;
}

void
deliver_host_release(struct deliver *d, const char *key)
{
	struct deliver_host **pp, *h;

	pthread_mutex_lock(&d->hosts_lock);
	for (pp = &d->hosts; (h = *pp) != NULL; pp = &h->next)
		if (strcmp(h->key, key) == 0)
			break;
	MTA_ASSERT(h != NULL && h->conns > 0);
	if (--h->conns == 0) {
		*pp = h->next;
		free(h);
	}
	pthread_mutex_unlock(&d->hosts_lock);
	atomic_fetch_sub(&d->conns, 1);
}

/* Load one trust key alone, so that an error names its line. */
static int
ca_check(const struct config *c, const char *key, const char *file,
    const char *dir, unsigned line, char *err, size_t errlen)
{
	char terr[CONFIG_PATH_MAX + 256];
	struct tls_ctx *t;
	int rc;

	if ((rc = tls_ctx_client_new_ca(file, dir, &t, terr, sizeof(terr))) <
	    0) {
		snprintf(
		    err, errlen, "%s:%u: %s: %s", c->file, line, key, terr);
		return rc;
	}
	tls_ctx_free(t);
	return 0;
}

int
deliver_check(const struct config *c, char *err, size_t errlen)
{
	const struct config_delivery *dl = &c->delivery;
	int rc = 0;

	if (dl->ca_file[0] != '\0')
		rc = ca_check(c, "ca_file", dl->ca_file, NULL, dl->ca_file_line,
		    err, errlen);
	if (rc == 0 && dl->ca_path[0] != '\0')
		rc = ca_check(c, "ca_path", NULL, dl->ca_path, dl->ca_path_line,
		    err, errlen);
	return rc;
}

/* The MTA-STS policy thread, with delivery's trust anchors and
 * destination policy. */
static struct sts *
deliver_sts_new(struct deliver *d, const struct deliver_settings *s,
    struct dns *dns, char *err, size_t errlen)
{
	const struct config_delivery *dl = s->delivery;
	struct sts_settings ss = {
	    .dir = s->queue->path,
	    .ca_file = dl->ca_file[0] ? dl->ca_file : NULL,
	    .ca_path = dl->ca_path[0] ? dl->ca_path : NULL,
	    .allow_private = dl->allow_private,
	    .allow_loopback = dl->allow_loopback,
	    .self = &d->self,
	    .connect_timeout = dl->connect_timeout < dl->mta_sts_timeout
	                           ? dl->connect_timeout
	                           : dl->mta_sts_timeout,
	    .timeout = dl->mta_sts_timeout,
	    .recheck = dl->mta_sts_recheck,
	};

	return sts_new(&ss, dns, err, errlen);
}

/* The TLS-RPT stage, when [tlsrpt] enabled: its defaults come from
 * [server] hostname. */
static struct tlsrpt *
deliver_tlsrpt_new(const struct deliver_settings *s,
    const struct dest_self *self, struct queue *q, struct dns *dns, char *err,
    size_t errlen)
{
	const struct config_tlsrpt *c = s->tlsrpt;
	const struct config_delivery *dl = s->delivery;
	char from[300], contact[320];
	struct tlsrpt_settings ts = {
	    .dir = s->queue->path,
	    .interval = c->interval / 1000,
	    .org = c->org_name[0] ? c->org_name : s->hostname,
	    .hostname = s->hostname,
	    .ca_file = dl->ca_file[0] ? dl->ca_file : NULL,
	    .ca_path = dl->ca_path[0] ? dl->ca_path : NULL,
	    .dkim = s->dkim,
	    .allow_private = dl->allow_private,
	    .allow_loopback = dl->allow_loopback,
	    .self = self,
	};

	if (c->from[0])
		str_copy(from, sizeof(from), c->from);
	else
		str_fmt(from, sizeof(from), "noreply-smtp-tls-reporting@%s",
		    s->hostname);
	if (c->contact[0])
		str_copy(contact, sizeof(contact), c->contact);
	else
		str_fmt(contact, sizeof(contact), "mailto:%s", from);
	ts.from = from;
	ts.contact = contact;
	return tlsrpt_new(&ts, q, dns, err, errlen);
}

struct deliver *
deliver_new(const struct deliver_settings *s, struct queue *q, struct dns *dns,
    char *err, size_t errlen)
{
	struct deliver *d = xcalloc(1, sizeof(*d));
	char terr[256];

	d->boot = *s;
	d->q = q;
	d->dns = dns;
	pthread_mutex_init(&d->hosts_lock, NULL);
	pthread_mutex_init(&d->shape_lock, NULL);
	dest_self_init(&d->self, s->server);
	/* One context serves every policy: verification is chosen per
	 * connection (tls_conn_client_new). */
	if (tls_ctx_client_new_ca(s->delivery->ca_file, s->delivery->ca_path,
	        &d->tls, terr, sizeof(terr)) != 0) {
		str_fmt(err, errlen, "delivery: %s", terr);
		goto fail;
	}
	if ((d->sts = deliver_sts_new(d, s, dns, terr, sizeof(terr))) == NULL) {
		str_fmt(err, errlen, "delivery: %s", terr);
		tls_ctx_free(d->tls);
		goto fail;
	}
	if (s->tlsrpt != NULL && s->tlsrpt->enabled &&
	    (d->tlsrpt = deliver_tlsrpt_new(
	         s, &d->self, q, dns, terr, sizeof(terr))) == NULL) {
		str_fmt(err, errlen, "delivery: %s", terr);
		sts_free(d->sts);
		tls_ctx_free(d->tls);
		goto fail;
	}
	d->sched_chan = chan_new();
	queue_listen(q, d->sched_chan);
	d->nworkers = s->delivery->workers ? s->delivery->workers : 1;
	d->workers = xcalloc(d->nworkers, sizeof(*d->workers));
	for (unsigned i = 0; i < d->nworkers; i++)
		d->workers[i] = deliver_worker_new(d, i);
	return d;
fail:
	dest_self_fini(&d->self);
	pthread_mutex_destroy(&d->hosts_lock);
	pthread_mutex_destroy(&d->shape_lock);
	free(d);
	return NULL;
}

int
deliver_start(struct deliver *d)
{
	int rc;

	if ((rc = sts_start(d->sts)) != 0 ||
	    (d->tlsrpt != NULL && (rc = tlsrpt_start(d->tlsrpt)) != 0))
		return rc;
	for (unsigned i = 0; i < d->nworkers; i++)
		if ((rc = deliver_worker_start(d->workers[i])) != 0)
			return rc;
	if ((rc = pthread_create(&d->sched_tid, NULL, deliver_sched_main, d)))
		return -rc;
	d->sched_started = true;
	return 0;
}

void
deliver_ctl_submit(struct deliver *d, struct deliver_ctl *c)
{
	c->msg.type = DELIVER_MSG_CTL;
	chan_send(d->sched_chan, &c->msg);
}

void
deliver_reload(struct deliver *d, struct config *snap)
{
	MTA_ASSERT(d->sched_started);
	chan_send(d->sched_chan, &deliver_cfg_msg(snap)->msg);
	for (unsigned i = 0; i < d->nworkers; i++)
		deliver_worker_config(d->workers[i], deliver_cfg_msg(snap));
}

void
deliver_stop(struct deliver *d, uint64_t grace_ms)
{
	struct chan_msg *stop;

	if (d == NULL)
		return;
	if (d->sched_started) {
		stop = xcalloc(1, sizeof(*stop));
		stop->type = DELIVER_MSG_STOP;
		stop->reqid = grace_ms;
		chan_send(d->sched_chan, stop);
		pthread_join(d->sched_tid, NULL);
	}
	/* workers waiting for a policy get none, so they can stop */
	sts_quiesce(d->sts);
	for (unsigned i = 0; i < d->nworkers; i++)
		deliver_worker_stop(d->workers[i]);
	/* after the workers (they count into it), before the queue and
	 * the resolver (it waits for their answers) */
	tlsrpt_free(d->tlsrpt);
	sts_free(d->sts);
	free(d->workers);
	queue_listen(d->q, NULL);
	/* What reached the scheduler after it stopped: new-message notes
	 * and jobs finished during shutdown. Both are in the queue already
	 * and are picked up again at the next start. */
	for (struct chan_msg *m = chan_take(d->sched_chan), *n; m; m = n) {
		n = m->next;
		if (m->type == DELIVER_MSG_DONE)
			sched_job_free((struct sched_job *)m);
		else if (m->type == QUEUE_NOTE_NEW)
			queue_note_free((struct queue_note *)m);
		else if (m->type == DELIVER_MSG_CONFIG)
			deliver_cfg_msg_free((struct deliver_config *)m);
		else
			free(m);
	}
	chan_free(d->sched_chan);
	while (d->hosts) {
		struct deliver_host *h = d->hosts;

		d->hosts = h->next;
		free(h);
	}
	tls_ctx_free(d->tls);
	dest_self_fini(&d->self);
	pthread_mutex_destroy(&d->hosts_lock);
	pthread_mutex_destroy(&d->shape_lock);
	free(d->shape_text);
	free(d);
}
