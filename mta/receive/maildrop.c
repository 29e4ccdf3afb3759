/* SPDX-License-Identifier: ISC */
/*
 * maildrop.c - the maildrop importer thread (see maildrop.h): scan,
 * check, submit a batch, remove what was committed, move aside what was
 * refused.
 *
 * Thread: maildrop_new/start/free on the main thread; everything else on
 * the importer's own thread, which owns the directory descriptors and
 * the batch. It talks to the queue only by chan (queue_submit, answers
 * on its own chan), as a receive thread does.
 *
 * Trust: anyone may create a file in the directory (mode 1733), so a
 * file proves nothing but its owner. It is opened without following a
 * link and without blocking (a FIFO cannot hang us), must be a regular
 * file with a single link (no hard link to someone else's file) and
 * small enough; its owner uid is the submitter, checked against the
 * allow list and written in the Received header.
 */
#include "receive/maildrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "dkim/dkim.h"
#include "queue/queue.h"
#include "receive/local.h"
#include "smtp/local_msg.h"
#include "smtp/smtp_parse.h"

#define MAILDROP_MAX_HOPS 50 /* Received: fields, as smtp_in */
#define ENVELOPE_SLACK    64 /* bytes of an envelope line beyond its address */

struct drop_item {
	char name[256];
	struct queue_submit *req; /* NULL once answered */
};

struct maildrop {
	const struct config *cfg;
	struct queue *q;
	struct local_acl *acl;
	int dirfd, refusedfd, stopfd;
	struct chan *chan; /* the committer's answers */
	pthread_t th;
	bool started;
	struct drop_item batch[MAILDROP_BATCH];
	size_t nbatch;
};

/* ---- one file ---- */

/* Move name to refused/ and say why; never deleted: it may be someone's
 * only copy of a message. */
static void
drop_refuse(struct maildrop *m, const char *name, long uid, const char *why)
{
	char q[512], f[600];

	log_quote(f, sizeof(f), name, strlen(name));
	if (renameat(m->dirfd, name, m->refusedfd, name) != 0)
		log_warn("event=maildrop-stuck file=%s", f);
	log_event("event=maildrop-refused file=%s uid=%ld reason=%s", f, uid,
	    log_quote(q, sizeof(q), why, strlen(why)));
}

/* The whole file, at most max bytes; 0 or a reason. */
static const char *
drop_read(int fd, const struct stat *st, size_t max, uint8_t **out, size_t *len)
{
	size_t n = 0, want;
	uint8_t *p;
	ssize_t r;

	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_nlink != 1)
		return "more than one link";
	if ((uint64_t)st->st_size > max)
		return "message size exceeds fixed limit";
	want = (size_t)st->st_size;
	p = xmalloc(want + 1);
	while (n < want && (r = read(fd, p + n, want - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(p);
			return "read error";
		}
		n += (size_t)r;
	}
	*out = p;
	*len = n;
	return NULL;
}

/* The envelope's addresses, as SMTP's MAIL and RCPT would take them. */
static const char *
drop_check_env(const struct local_msg_drop *d)
{
	if (d->from[0] != '\0' && smtp_parse_mailbox(d->from, strlen(d->from),
	                              false) != SMTP_PARSE_OK)
		return "bad sender address";
	for (size_t i = 0; i < d->nrcpts; i++)
		if (smtp_parse_mailbox(d->rcpts[i], strlen(d->rcpts[i]),
		        false) != SMTP_PARSE_OK)
			return "bad recipient address";
	return NULL;
}

static const char *
drop_check_msg(const struct maildrop *m, const struct local_msg_drop *d,
    char *why, size_t whylen)
{
	struct local_msg_hdrs h;
	const char *bad;

	if ((bad = drop_check_env(d)) != NULL)
		return bad;
	if (d->len > m->cfg->server.max_message_size)
		return "message size exceeds fixed limit";
	if (local_msg_scan(d->msg, d->len, &h, why, whylen) != 0)
		return why;
	if (h.rcvd > MAILDROP_MAX_HOPS)
		return "too many hops (mail loop)";
	return NULL;
}

/* The queue request of a checked message, with our Received header. */
/* DKIM: sign as a session would (by From), here on the importer thread,
 * with the keys of the snapshot it was started with. */
static void
drop_sign(struct maildrop *m, struct queue_submit *req)
{
	const struct dkim_table *t = dkim_table_of(m->cfg);
	char label[DKIM_LABEL_MAX], why[32], idh[QUEUE_ID_HEX + 1];
	int rc;

	if (t == NULL)
		return;
	rc = dkim_sign_message(t, &req->body, req->received_ms / 1000, label,
	    sizeof(label), why, sizeof(why));
	queue_id_fmt(req->id, idh);
	if (rc == 1)
		log_event("event=dkim-signed id=%s dkim=%s", idh, label);
	else if (rc < 0 || strcmp(why, "none") != 0)
		log_event("event=dkim-unsigned id=%s reason=%s", idh, why);
}

static struct queue_submit *
drop_request(
    struct maildrop *m, struct local_msg_drop *d, const struct stat *st)
{
	struct queue_submit *req = xcalloc(1, sizeof(*req));
	char date[64], client[32];

	req->msg.type = QUEUE_REQ_SUBMIT;
	req->reply = m->chan;
	req->id = queue_id_new(m->q);
	req->from = d->from;
	req->rcpts = d->rcpts;
	req->nrcpts = d->nrcpts;
	d->from = NULL;
	d->rcpts = NULL;
	d->nrcpts = 0;
	(void)str_fmt(client, sizeof(client), "local:%u", (unsigned)st->st_uid);
	req->client = xstrdup(client);
	req->helo = xstrdup("maildrop");
	req->received_ms = clock_wall_ms();
	clock_rfc5322(req->received_ms, date, sizeof(date));
	buf_init(&req->body, SIZE_MAX);
	if (buf_appendf(&req->body,
	        "Received: by %s (mta, from userid %u)\r\n\tid %016" PRIx64
	        "; %s\r\n",
	        m->cfg->server.hostname, (unsigned)st->st_uid, req->id,
	        date) != 0 ||
	    buf_append(&req->body, d->msg, d->len) != 0)
		fatalx("maildrop: out of memory"); /* no max: cannot fail */
	drop_sign(m, req);
	return req;
}

/* Check name and turn it into a queue request (NULL: vanished, or
 * refused and moved aside). */
static struct queue_submit *
drop_prepare(struct maildrop *m, const char *name)
{
	const struct config_server *cs = &m->cfg->server;
	size_t max = cs->max_message_size + sizeof("MTA-MAILDROP 1\n") +
	             (cs->max_recipients + 1) *
	                 (size_t)(LOCAL_MSG_ADDR_MAX + ENVELOPE_SLACK);
	struct local_msg_drop d = {0};
	struct queue_submit *req = NULL;
	struct stat st;
	const char *bad;
	char why[256];
	uint8_t *p = NULL;
	size_t len = 0;
	long uid = -1;
	int fd;

	fd = openat(m->dirfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT)
			drop_refuse(m, name, -1, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0)
		bad = strerror(errno);
	else if ((uid = (long)st.st_uid) < 0 ||
	         (bad = drop_read(fd, &st, max, &p, &len)) != NULL)
		;
	else if (!local_acl_allows_uid(m->acl, st.st_uid, st.st_gid))
		bad = "user is not allowed to submit mail";
	else if (local_msg_drop_decode(
	             p, len, cs->max_recipients, &d, why, sizeof(why)) != 0)
		bad = why;
	else
		bad = drop_check_msg(m, &d, why, sizeof(why));
	close(fd);
	if (bad != NULL)
		drop_refuse(m, name, uid, bad);
	else
		req = drop_request(m, &d, &st);
	local_msg_drop_fini(&d);
	free(p);
	return req;
}

/* ---- a pass ---- */

/* Wait for every answer of the batch; remove what was committed. */
static void
pass_finish(struct maildrop *m)
{
	size_t owed = m->nbatch, removed = 0;
	struct chan_msg *c, *next;

	while (owed > 0)
		for (c = chan_wait(m->chan, -1); c != NULL; c = next) {
			struct queue_submit *req = (struct queue_submit *)c;
			struct drop_item *it = &m->batch[c->reqid];
			char idh[QUEUE_ID_HEX + 1], f[600];

			next = c->next;
			owed--;
			queue_id_fmt(req->id, idh);
			if (req->status == 0 &&
			    unlinkat(m->dirfd, it->name, 0) == 0) {
				removed++;
				log_event("event=queued id=%s client=%s "
				          "file=%s rcpts=%zu",
				    idh, req->client,
				    log_quote(f, sizeof(f), it->name,
				        strlen(it->name)),
				    req->nrcpts);
			} else if (req->status != 0)
				log_warnx("event=maildrop-deferred file=%s "
				          "error=\"%s\"",
				    log_quote(f, sizeof(f), it->name,
				        strlen(it->name)),
				    strerror(-req->status));
			queue_submit_free(req);
			it->req = NULL;
		}
	/* the removals durable, so a restart does not import them again */
	if (removed > 0)
		(void)fsync(m->dirfd);
	m->nbatch = 0;
}

/* One bounded pass; true when files were left for the next one. */
static bool
pass(struct maildrop *m)
{
	struct dirent *de;
	size_t bytes = 0;
	bool more = false;
	int fd = openat(m->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	if (dir == NULL) {
		log_warnx(
		    "maildrop: cannot read the directory: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((de = readdir(dir)) != NULL) {
		struct drop_item *it;

		/* ".tmp.*" is a file still being written; "refused" too */
		if (de->d_name[0] == '.' || strcmp(de->d_name, "refused") == 0)
			continue;
		if (m->nbatch == MAILDROP_BATCH ||
		    bytes >= MAILDROP_BATCH_BYTES) {
			more = true;
			break;
		}
		it = &m->batch[m->nbatch];
		if (!str_copy(it->name, sizeof(it->name), de->d_name) ||
		    (it->req = drop_prepare(m, de->d_name)) == NULL)
			continue;
		bytes += buf_avail(&it->req->body);
		it->req->msg.reqid = m->nbatch++;
		queue_submit(m->q, it->req);
	}
	closedir(dir);
	pass_finish(m);
	return more;
}

static void *
maildrop_main(void *arg)
{
	struct maildrop *m = arg;
	struct pollfd pfd = {.fd = m->stopfd, .events = POLLIN};
	bool more;

	for (;;) {
		more = pass(m);
		pfd.revents = 0;
		if (poll(&pfd, 1, more ? 0 : MAILDROP_POLL_MS) < 0 &&
		    errno != EINTR)
			fatalx("maildrop: poll: %s", strerror(errno));
		if (pfd.revents & POLLIN)
			break;
	}
	return NULL;
}

/* ---- main thread ---- */

int
maildrop_new(const struct config *cfg, struct queue *q, struct maildrop **out,
    char *err, size_t errlen)
{
	struct maildrop *m = xcalloc(1, sizeof(*m));
	int rc;

	m->cfg = cfg;
	m->q = q;
	m->dirfd = m->refusedfd = m->stopfd = -1;
	if ((rc = local_acl_new(&cfg->local, &m->acl, err, errlen)) < 0)
		goto fail;
	m->dirfd = open(cfg->local.maildrop,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m->dirfd < 0 ||
	    (m->refusedfd = openat(m->dirfd, "refused",
	         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		(void)str_fmt(err, errlen, "maildrop %s: %s",
		    cfg->local.maildrop, strerror(errno));
		goto fail;
	}
	m->chan = chan_new();
	*out = m;
	return 0;
fail:
	maildrop_free(m);
	return rc;
}

int
maildrop_start(struct maildrop *m)
{
	int rc = pthread_create(&m->th, NULL, maildrop_main, m);

	if (rc != 0)
		return -rc;
	m->started = true;
	return 0;
}

void
maildrop_free(struct maildrop *m)
{
	uint64_t one = 1;

	if (m == NULL)
		return;
	if (m->started) {
		if (write(m->stopfd, &one, sizeof(one)) != sizeof(one))
			fatalx("maildrop: cannot stop the thread");
		pthread_join(m->th, NULL);
	}
	if (m->chan != NULL)
		chan_free(m->chan); /* pass_finish took every answer */
	local_acl_free(m->acl);
	if (m->dirfd >= 0)
		close(m->dirfd);
	if (m->refusedfd >= 0)
		close(m->refusedfd);
	if (m->stopfd >= 0)
		close(m->stopfd);
	free(m);
}
