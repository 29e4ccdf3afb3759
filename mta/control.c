/* SPDX-License-Identifier: ISC */
/*
 * control.c - the control socket thread (see control.h).
 *
 * The thread owns the listening socket and one client connection at a
 * time; it never touches the schedule or the queue itself. A request
 * becomes a struct deliver_ctl (deliver.h) sent to the scheduler thread,
 * which answers on this thread's chan once the change is committed and
 * in effect (or failed, and changed nothing); only then is the answer
 * written.
 *
 * Blocking I/O on the client socket is fine here (this thread serves
 * nothing else), but every wait is bounded: the request line by
 * CONTROL_IO_TIMEOUT_MS and a stop request, the answer by SO_SNDTIMEO.
 * The scheduler's answer is always awaited, even when asked to stop, so
 * its reply never lands in a freed chan.
 */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "base/unix_path.h"
#include "base/xalloc.h"
#include "deliver/deliver.h"
#include "queue/queue.h"

/* Private chan message type: control_free() asks the thread to finish. */
#define CONTROL_MSG_STOP 0x5350

/* bytes: the longest answer line is under 128 */
#define CONTROL_ANSWER_MAX (CONTROL_IDS_MAX * 128 + 256)
/* how long a control socket that answers may be a dead relay's (as
 * BIND_WAIT_MS for the listeners) */
#define PROBE_WAIT_MS 5000
#define PROBE_STEP_MS 50

struct control {
	int lfd; /* listening socket */
	char path[CONFIG_PATH_MAX + 16];
	dev_t dev;            /* the socket file we made: only that */
	ino_t ino;            /* one is removed at the end */
	struct deliver *d;    /* borrowed */
	struct chan *chan;    /* scheduler answers, the stop marker */
	struct chan_msg stop; /* CONTROL_MSG_STOP */
	bool stopping;        /* control thread only */
	pthread_t th;
	bool started;
};

int
control_path(const struct config_queue *q, char *out, size_t len)
{
	if (!str_fmt(out, len, "%s/%s", q->path, CONTROL_SOCK_NAME))
		return -ENAMETOOLONG;
	return 0;
}

/* Is a relay answering on path? 1 yes, 0 no (nothing there, or a stale
 * socket file), negative errno when it cannot tell. */
static int
control_probe(const char *path)
{
	struct sockaddr_un sun;
	int fd, rc, dfd;

	if ((rc = unix_path_addr(path, &sun, &dfd)) != 0)
		return rc;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		rc = -errno;
		goto out;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	rc = rc == 0                                    ? 1
	     : errno == ECONNREFUSED || errno == ENOENT ? 0
	                                                : -errno;
	close(fd);
out:
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/*
 * control_probe, given the time a relay killed a moment ago needs to be
 * gone: the kernel releases a dead process's io_uring, and the sockets
 * its requests hold, some milliseconds after the process (as with the
 * listeners, which receive waits for the same way). A live relay still
 * answers PROBE_WAIT_MS later and is reported then.
 */
static int
control_probe_wait(const char *path)
{
	const struct timespec step = {0, PROBE_STEP_MS * 1000000L};
	uint64_t start = clock_mono_ms();
	int rc;

	while ((rc = control_probe(path)) > 0 &&
	       clock_mono_ms() - start < PROBE_WAIT_MS)
		(void)nanosleep(&step, NULL);
	return rc;
}

int
control_new(const struct config_queue *q, struct control **out, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	struct control *c;
	struct stat st;
	int rc, dfd = -1;

	c = xcalloc(1, sizeof(*c));
	c->lfd = -1;
	if ((rc = control_path(q, c->path, sizeof(c->path))) != 0) {
		str_fmt(err, errlen,
		    "control socket: %s/%s: path too long "
		    "for a Unix socket",
		    q->path, CONTROL_SOCK_NAME);
		goto fail;
	}
	if (lstat(c->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			rc = -EEXIST;
			str_fmt(err, errlen,
			    "control socket %s: exists and "
			    "is not a socket",
			    c->path);
			goto fail;
		}
		if ((rc = control_probe_wait(c->path)) != 0) {
			if (rc > 0)
				rc = -EADDRINUSE;
			str_fmt(err, errlen, "control socket %s: %s", c->path,
			    rc == -EADDRINUSE ? "another relay is running on "
			                        "this queue"
			                      : strerror(-rc));
			goto fail;
		}
		/* stale: its relay is gone (a crash or kill -9) */
		(void)unlink(c->path);
	}
	if ((rc = unix_path_addr(c->path, &sun, &dfd)) != 0) {
		str_fmt(err, errlen, "control socket %s: %s", c->path,
		    strerror(-rc));
		goto fail;
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* chmod before listen: until then nobody can connect at all (and
	 * the queue directory is 0700 anyway) */
	if (c->lfd < 0 ||
	    bind(c->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(c->path, 0600) < 0 || lstat(c->path, &st) < 0 ||
	    listen(c->lfd, 16) < 0) {
		rc = -errno;
		str_fmt(err, errlen, "control socket %s: %s", c->path,
		    strerror(errno));
		if (dfd >= 0)
			close(dfd);
		goto fail;
	}
	if (dfd >= 0)
		close(dfd);
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->chan = chan_new();
	*out = c;
	return 0;
fail:
	if (c->lfd >= 0) {
		close(c->lfd);
		(void)unlink(c->path);
	}
	free(c);
	return rc;
}

/* One answer line. The buffer is sized for the longest answer, so a
 * failure here is a bug; the client then sees a truncated answer (no
 * `done` line) and reports an error. */
static void MTA_PRINTF(2, 3) control_say(struct buf *out, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    buf_append(out, line, (size_t)n) != 0)
		log_warnx("control: answer too long; truncated");
}

/* Take what is on the chan while no request is out: only the stop. */
static void
control_drain(struct control *c)
{
	struct chan_msg *m, *n;

	chan_ack(c->chan);
	for (m = chan_take(c->chan); m; m = n) {
		n = m->next;
		if (m->type == CONTROL_MSG_STOP)
			c->stopping = true;
		else
			log_warnx("control: unexpected message %#x", m->type);
	}
}

/* Read one request line into line[CONTROL_LINE_MAX + 1]. Returns its
 * length, -E2BIG when it is too long, or another negative errno. */
static ssize_t
control_read_line(struct control *c, int fd, char *line)
{
	uint64_t deadline = clock_mono_ms() + CONTROL_IO_TIMEOUT_MS;
	size_t n = 0;

	for (;;) {
		struct pollfd p[2] = {
		    {fd, POLLIN, 0}, {chan_fd(c->chan), POLLIN, 0}};
		uint64_t now = clock_mono_ms();
		char *nl;
		ssize_t r;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(p, 2, (int)(deadline - now)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents) {
			control_drain(c);
			if (c->stopping)
				return -ESHUTDOWN;
		}
		if (!p[0].revents)
			continue;
		r = read(fd, line + n, CONTROL_LINE_MAX + 1 - n);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (r == 0) /* a last line without LF counts */
			return n > 0 ? (ssize_t)n : -ENODATA;
		if ((nl = memchr(line + n, '\n', (size_t)r)) != NULL) {
			*nl = '\0';
			return nl - line;
		}
		n += (size_t)r;
		if (n > CONTROL_LINE_MAX)
			return -E2BIG;
	}
}

static bool
control_peer_ok(int fd)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return false;
	return uc.uid == 0 || uc.uid == geteuid();
}

static const struct {
	const char *verb;
	enum deliver_ctl_op op;
} control_verbs[] = {
    {"delete", DELIVER_CTL_DELETE},
    {"retry", DELIVER_CTL_RETRY},
    {"hold", DELIVER_CTL_HOLD},
    {"release", DELIVER_CTL_RELEASE},
    {"bounce", DELIVER_CTL_BOUNCE},
};

/* An argument echoed in an answer: only if it is short and plain. */
static const char *
control_arg_text(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return "-";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return "-";
	return s;
}

/* Hand req to the scheduler and wait for it to come back. */
static void
control_ask(struct control *c, struct deliver_ctl *req)
{
	bool back = false;

	req->reply = c->chan;
	deliver_ctl_submit(c->d, req);
	while (!back) {
		struct chan_msg *m = chan_wait(c->chan, 1000), *n;

		for (; m; m = n) {
			n = m->next;
			if (m == &req->msg)
				back = true;
			else if (m->type == CONTROL_MSG_STOP)
				c->stopping = true;
			else
				log_warnx(
				    "control: unexpected message %#x", m->type);
		}
	}
}

/* An operator action's refusal, as the operator reads it. */
static const char *
status_text(int status)
{
	if (status == -ENOENT)
		return "no such message";
	if (status == -EBUSY)
		return "being delivered now; try again";
	return strerror(-status);
}

/* The scheduler's answers to req, one line per id (or one for retry
 * --all), and the closing line; nerr error lines came before. */
static void
control_answers(struct buf *out, const struct deliver_ctl *req, size_t nerr)
{
	char hex[QUEUE_ID_HEX + 1];
	size_t nok = 0;

	if (req->op == DELIVER_CTL_RETRY_ALL && req->error == 0) {
		control_say(out, "ok all messages=%zu\n", req->count);
		nok++;
	} else if (req->op == DELIVER_CTL_RETRY_ALL) {
		control_say(out, "error all: %s (messages=%zu made due)\n",
		    strerror(-req->error), req->count);
		nerr++;
	}
	for (size_t i = 0; i < req->n; i++) {
		queue_id_fmt(req->ids[i], hex);
		if (req->status[i] == 0) {
			control_say(out, "ok %s\n", hex);
			nok++;
		} else {
			control_say(out, "error %s: %s\n", hex,
			    status_text(req->status[i]));
			nerr++;
		}
	}
	control_say(out, "done ok=%zu error=%zu\n", nok, nerr);
}

/* `reload`: what SIGHUP does, asked of the main thread by the very
 * signal (it reads SIGHUP from its signalfd; every thread blocks it).
 * The reload itself is logged: event=reloaded or reload-failed. */
static void
control_reload(struct buf *out, bool alone)
{
	if (!alone) {
		control_say(out, "error: reload takes no argument\n"
		                 "done ok=0 error=1\n");
		return;
	}
	if (kill(getpid(), SIGHUP) != 0) {
		control_say(out, "error: reload: %s\ndone ok=0 error=1\n",
		    strerror(errno));
		return;
	}
	log_event("event=operator action=reload");
	control_say(out, "ok reload\ndone ok=1 error=0\n");
}

/*
 * Parse and carry out one request; the answer goes into out. Ids that
 * do not parse are answered here and never sent on.
 */
static void
control_run(struct control *c, char *line, struct buf *out)
{
	struct deliver_ctl req;
	char *save = NULL, *verb, *arg, **bad;
	size_t nerr = 0, nbad = 0, nargs = 0;
	bool all = false, found = false;
	uint64_t id;

	memset(&req, 0, sizeof(req));
	if ((verb = strtok_r(line, " \t\r", &save)) == NULL)
		verb = "";
	if (strcmp(verb, "reload") == 0) {
		control_reload(out, strtok_r(NULL, " \t\r", &save) == NULL);
		return;
	}
	if (control_shape(c->d, verb, &save, out))
		return;
	for (size_t i = 0; i < MTA_ARRAY_LEN(control_verbs); i++)
		if (strcmp(verb, control_verbs[i].verb) == 0) {
			req.op = control_verbs[i].op;
			found = true;
		}
	if (!found) {
		control_say(out, "error: unknown request (delete, "
		                 "retry, hold, release, bounce or reload)\n"
		                 "done ok=0 error=1\n");
		return;
	}
	req.ids = xcalloc(CONTROL_IDS_MAX, sizeof(*req.ids));
	req.status = xcalloc(CONTROL_IDS_MAX, sizeof(*req.status));
	bad = xcalloc(CONTROL_IDS_MAX, sizeof(*bad));
	while ((arg = strtok_r(NULL, " \t\r", &save)) != NULL) {
		if (++nargs > CONTROL_IDS_MAX)
			break;
		if (req.op == DELIVER_CTL_RETRY && strcmp(arg, "--all") == 0)
			all = true;
		else if (queue_id_parse(arg, &id) == 0)
			req.ids[req.n++] = id;
		else
			bad[nbad++] = arg;
	}
	if (nargs > CONTROL_IDS_MAX || nargs == 0 || (all && nargs > 1)) {
		control_say(out, "error: %s\ndone ok=0 error=1\n",
		    nargs == 0 ? "no message id given"
		    : all      ? "--all takes no ids"
		               : "too many ids in one request");
		goto out;
	}
	for (size_t i = 0; i < nbad; i++)
		control_say(out,
		    "error %s: not a queue id (16 hex "
		    "digits)\n",
		    control_arg_text(bad[i]));
	nerr += nbad;
	if (all)
		req.op = DELIVER_CTL_RETRY_ALL;
	if (all || req.n > 0)
		control_ask(c, &req);
	control_answers(out, &req, nerr);
out:
	free(req.ids);
	free(req.status);
	free(bad);
}

static void
control_write_all(int fd, const struct buf *b)
{
	const uint8_t *p = buf_peek(b);
	size_t n = buf_avail(b);

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the client went away or stalled: its loss */
		p += w;
		n -= (size_t)w;
	}
}

/* Closing with unread input makes the kernel send a reset, which can
 * destroy the answer before the client reads it (a request that was too
 * long): say we are done, then discard what is left, bounded in bytes
 * and time. scratch: CONTROL_LINE_MAX + 1 bytes. */
static void
control_linger(int fd, char *scratch)
{
	uint64_t deadline = clock_mono_ms() + 1000;
	size_t left = 16 * (CONTROL_LINE_MAX + 1);

	(void)shutdown(fd, SHUT_WR);
	while (left > 0) {
		struct pollfd p = {fd, POLLIN, 0};
		uint64_t now = clock_mono_ms();
		ssize_t r;

		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
			return;
		r = read(fd, scratch, CONTROL_LINE_MAX + 1);
		if (r <= 0)
			return;
		left -= (size_t)r < left ? (size_t)r : left;
	}
}

static void
control_serve(struct control *c, int fd)
{
	struct timeval tv = {CONTROL_IO_TIMEOUT_MS / 1000, 0};
	char *line = xmalloc(CONTROL_LINE_MAX + 1);
	struct buf out;
	ssize_t n;

	buf_init(&out, CONTROL_ANSWER_MAX);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!control_peer_ok(fd)) {
		control_say(&out, "error: permission denied\n"
		                  "done ok=0 error=1\n");
	} else if ((n = control_read_line(c, fd, line)) >= 0) {
		control_run(c, line, &out);
	} else if (n == -E2BIG) {
		control_say(&out, "error: request too long\n"
		                  "done ok=0 error=1\n");
	}
	control_write_all(fd, &out);
	control_linger(fd, line);
	buf_fini(&out);
	free(line);
}

static void *
control_main(void *arg)
{
	struct control *c = arg;

	while (!c->stopping) {
		struct pollfd p[2] = {
		    {c->lfd, POLLIN, 0}, {chan_fd(c->chan), POLLIN, 0}};
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR)
				fatal("control: poll");
			continue;
		}
		if (p[1].revents)
			control_drain(c);
		if (c->stopping || !p[0].revents)
			continue;
		fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* EMFILE and friends: do not spin on it */
			if (errno != EINTR && errno != ECONNABORTED)
				(void)poll(NULL, 0, 100);
			continue;
		}
		control_serve(c, fd);
		close(fd);
	}
	return NULL;
}

int
control_start(struct control *c, struct deliver *d)
{
	int rc;

	c->d = d;
	if ((rc = pthread_create(&c->th, NULL, control_main, c)) != 0)
		return -rc;
	pthread_setname_np(c->th, "mta-control");
	c->started = true;
	return 0;
}

void
control_free(struct control *c)
{
	struct stat st;

	if (c == NULL)
		return;
	if (c->started) {
		c->stop.type = CONTROL_MSG_STOP;
		chan_send(c->chan, &c->stop);
		pthread_join(c->th, NULL);
	}
	close(c->lfd);
	/* only our own: a relay started since may own the name now */
	if (lstat(c->path, &st) == 0 && st.st_dev == c->dev &&
	    st.st_ino == c->ino)
		(void)unlink(c->path);
	(void)chan_take(c->chan); /* only the stop marker can be there */
	chan_free(c->chan);
	free(c);
}
