/* SPDX-License-Identifier: ISC */
/*
 * sendmail_io.c - how `mta sendmail` hands a message over: SMTP on the
 * relay's local socket ([local] socket), or, when no relay answers, a
 * durable file in the maildrop ([local] maildrop) that the relay imports
 * when it runs (receive/maildrop.c). Also -bs, SMTP relayed from stdin
 * and stdout to that socket (without a relay, cmd_sendmail.c serves it).
 *
 * The SMTP dialogue is the plainest one: EHLO, MAIL and every RCPT sent
 * together (the relay pipelines), DATA only when every recipient was
 * taken (all or nothing: a program gets one exit code for one message),
 * the text dot-stuffed, then QUIT. The relay answers the final dot only
 * after its commit, so 250 means stored.
 *
 * The maildrop file is written as a queue file is: a new name (O_EXCL)
 * starting with "." (the importer skips those), written, fsynced, renamed
 * to its final name, then the directory synced: the rename is what the
 * importer sees, so it never reads half a file. The directory is not
 * readable by local users (mode 1733), so for them the sync is syncfs()
 * of the file system instead of fsync() of the directory.
 *
 * Thread: the process's only one.
 */
#include "cli/sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/str.h"
#include "base/unix_path.h"
#include "smtp/local_msg.h"

#define SM_REPLY_TIMEOUT_S 300 /* the relay answers after its commit */
#define SM_LINE_MAX        1024
#define SM_CHUNK           (64 * 1024)

struct sm_conn {
	int fd;
	char in[8192];
	size_t len, off;
	char last[SM_LINE_MAX]; /* the last reply line, for messages */
};

/* ---- the socket ---- */

/* Connected to the relay's local socket, or -1 (errno) when none. */
static int
sm_connect(const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = {.tv_sec = SM_REPLY_TIMEOUT_S};
	int fd = -1, dfd, e;

	if ((e = unix_path_addr(path, &sun, &dfd)) < 0) {
		errno = -e;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	e = errno;
	if (dfd >= 0)
		close(dfd);
	errno = e;
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int
sm_write(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One line into c->last (without CR LF); false at EOF or error. */
static bool
sm_line(struct sm_conn *c)
{
	for (;;) {
		char *nl = memchr(c->in + c->off, '\n', c->len - c->off);
		ssize_t r;

		if (nl != NULL) {
			size_t n = (size_t)(nl - (c->in + c->off));

			(void)str_ncopy(c->last, sizeof(c->last),
			    c->in + c->off,
			    n > 0 && nl[-1] == '\r' ? n - 1 : n);
			c->off += n + 1;
			return true;
		}
		if (c->off > 0) {
			memmove(c->in, c->in + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->len == sizeof(c->in))
			return false; /* a line longer than any reply */
		r = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		c->len += (size_t)r;
	}
}

/* A whole reply: its code, or -1 when the connection ended first. */
static int
sm_reply(struct sm_conn *c)
{
	do {
		if (!sm_line(c) || strlen(c->last) < 3 || c->last[0] < '1' ||
		    c->last[0] > '5')
			return -1;
	} while (c->last[3] == '-');
	return atoi(c->last);
}

/* ---- the dialogue ---- */

/* The message, dot-stuffed, then the final dot. */
static int
sm_send_text(int fd, const struct buf *text)
{
	const uint8_t *p = buf_peek(text), *end = p + buf_avail(text);
	const uint8_t *start = p;

	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *next = nl ? nl + 1 : end;

		if (*p == '.') {
			if (sm_write(fd, start, (size_t)(p - start)) != 0 ||
			    sm_write(fd, ".", 1) != 0)
				return -1;
			start = p;
		}
		p = next;
		if ((size_t)(p - start) >= SM_CHUNK) {
			if (sm_write(fd, start, (size_t)(p - start)) != 0)
				return -1;
			start = p;
		}
	}
	if (sm_write(fd, start, (size_t)(p - start)) != 0)
		return -1;
	return sm_write(fd, ".\r\n", 3);
}

/* A refusal: say it; the exit code for it. */
static int
sm_refused(const struct sm_conn *c, const char *what, int code, int ex)
{
	fprintf(stderr, "sendmail: %s: %s\n", what, c->last);
	if (code / 100 == 4)
		return EX_TEMPFAIL;
	return ex;
}

/* MAIL and every RCPT, pipelined. 0: all taken; 1: a 4xx (try the
 * maildrop); else the exit code. */
static int
sm_envelope(struct sm_conn *c, const struct sendmail_msg *m)
{
	char line[LOCAL_MSG_ADDR_MAX + CONFIG_HOST_MAX + 32];
	int code, ex = 0, temp = 0;

	(void)snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", m->from);
	if (sm_write(c->fd, line, strlen(line)) != 0)
		return 1;
	for (size_t i = 0; i < m->nrcpts; i++) {
		(void)snprintf(
		    line, sizeof(line), "RCPT TO:<%s>\r\n", m->rcpts[i]);
		if (sm_write(c->fd, line, strlen(line)) != 0)
			return 1;
	}
	if ((code = sm_reply(c)) < 0)
		return 1;
	if (code / 100 == 4)
		temp = 1;
	else if (code / 100 != 2)
		ex = sm_refused(c, "sender refused", code,
		    code == 552 ? EX_DATAERR : EX_UNAVAILABLE);
	for (size_t i = 0; i < m->nrcpts; i++) {
		if ((code = sm_reply(c)) < 0)
			return 1;
		if (code / 100 == 4)
			temp = 1;
		else if (code / 100 != 2 && ex == 0) {
			(void)snprintf(line, sizeof(line), "<%s>", m->rcpts[i]);
			ex = sm_refused(c, line, code, EX_NOUSER);
		}
	}
	return ex != 0 ? ex : temp;
}

/* The whole transaction on a connected socket. 0 sent; 1 try the
 * maildrop; else the exit code. */
static int
sm_dialogue(struct sm_conn *c, const struct sendmail_msg *m)
{
	int code, rc;

	if ((code = sm_reply(c)) != 220)
		return code == 554 ? sm_refused(c, "relay", code, EX_NOPERM)
		                   : 1;
	if (sm_write(c->fd, "EHLO localhost\r\n", 16) != 0 ||
	    (code = sm_reply(c)) < 0 || code / 100 == 4)
		return 1;
	if (code != 250)
		return sm_refused(c, "EHLO", code, EX_PROTOCOL);
	if ((rc = sm_envelope(c, m)) != 0)
		return rc;
	if (sm_write(c->fd, "DATA\r\n", 6) != 0 || (code = sm_reply(c)) < 0 ||
	    code / 100 == 4)
		return 1;
	if (code != 354)
		return sm_refused(c, "DATA", code, EX_UNAVAILABLE);
	if (sm_send_text(c->fd, m->text) != 0 || (code = sm_reply(c)) < 0 ||
	    code / 100 == 4)
		return 1; /* no answer: the maildrop (at least once) */
	if (code / 100 != 2)
		return sm_refused(c, "message refused", code, EX_DATAERR);
	(void)sm_write(c->fd, "QUIT\r\n", 6);
	return 0;
}

/* ---- the maildrop ---- */

/* A name no other submission has: time, pid, random. */
static void
sm_drop_name(char *out, size_t len, bool tmp)
{
	uint64_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = clock_mono_ms();
	(void)str_fmt(out, len, "%s%016" PRIx64 ".%d.%016" PRIx64,
	    tmp ? ".tmp." : "", clock_wall_us(), (int)getpid(), rnd);
}

/* Sync the renamed entry: fsync of the directory, or syncfs when the
 * directory cannot be opened for reading (not its owner). */
static int
sm_drop_sync(const char *dir, int fd)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (dfd < 0)
		return syncfs(fd);
	rc = fsync(dfd);
	close(dfd);
	return rc;
}

static int
sm_drop_write(const char *dir, const struct buf *file)
{
	char tmp[128], fin[128], tpath[CONFIG_PATH_MAX + 160],
	    fpath[CONFIG_PATH_MAX + 160];
	int fd, rc = -1;

	sm_drop_name(tmp, sizeof(tmp), true);
	sm_drop_name(fin, sizeof(fin), false);
	if (!str_fmt(tpath, sizeof(tpath), "%s/%s", dir, tmp) ||
	    !str_fmt(fpath, sizeof(fpath), "%s/%s", dir, fin)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(
	    tpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* readable by the relay, which runs as its own user (serve_priv.h):
	 * nobody else finds the file (random name, directory not listable) */
	if (fchmod(fd, 0644) == 0 &&
	    write(fd, buf_peek(file), buf_avail(file)) ==
	        (ssize_t)buf_avail(file) &&
	    fsync(fd) == 0 && rename(tpath, fpath) == 0) {
		rc = sm_drop_sync(dir, fd);
		close(fd);
		return rc;
	}
	rc = errno;
	close(fd);
	(void)unlink(tpath);
	errno = rc;
	return -1;
}

int
sendmail_drop(const struct config *cfg, const struct sendmail_msg *m)
{
	struct buf file;
	int rc;

	buf_init(&file, SIZE_MAX);
	if (local_msg_drop_encode(m->from, m->rcpts, m->nrcpts,
	        buf_peek(m->text), buf_avail(m->text), &file) != 0) {
		buf_fini(&file);
		fprintf(stderr, "sendmail: bad address in the envelope\n");
		return EX_DATAERR;
	}
	rc = sm_drop_write(cfg->local.maildrop, &file);
	buf_fini(&file);
	if (rc != 0) {
		fprintf(stderr,
		    "sendmail: the relay is not running and the maildrop %s "
		    "cannot take the message: %s\n",
		    cfg->local.maildrop, strerror(errno));
		return EX_TEMPFAIL;
	}
	return 0;
}

enum sendmail_result
sendmail_submit(
    const struct config *cfg, const struct sendmail_msg *m, int *exit_code)
{
	struct sm_conn c = {.fd = sm_connect(cfg->local.socket)};
	int rc = 1;

	if (c.fd >= 0) {
		rc = sm_dialogue(&c, m);
		close(c.fd);
	}
	if (rc == 0)
		return SENDMAIL_SENT;
	if (rc == 1 && (rc = sendmail_drop(cfg, m)) == 0)
		return SENDMAIL_DROPPED;
	*exit_code = rc;
	return SENDMAIL_FAILED;
}

/* ---- -bs ---- */

/* Copy what is readable on from to to; false at EOF or error. */
static bool
sm_pump(int from, int to)
{
	char b[SM_CHUNK];
	ssize_t r = read(from, b, sizeof(b));

	if (r < 0 && errno == EINTR)
		return true;
	if (r <= 0)
		return false;
	for (ssize_t o = 0; o < r;) {
		ssize_t w = write(to, b + o, (size_t)(r - o));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		o += w;
	}
	return true;
}

int
sendmail_bs(const struct config *cfg)
{
	int fd = sm_connect(cfg->local.socket);
	struct pollfd p[2];
	bool in_open = true;

	if (fd < 0)
		return -1;
	/* a peer gone mid-write is an error return, not a signal */
	signal(SIGPIPE, SIG_IGN);
	p[0] = (struct pollfd){.fd = 0, .events = POLLIN};
	p[1] = (struct pollfd){.fd = fd, .events = POLLIN};
	for (;;) {
		p[0].fd = in_open ? 0 : -1;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
			if (!sm_pump(fd, 1))
				break; /* the relay closed: after QUIT */
		if (in_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !sm_pump(0, fd)) {
			in_open = false;
			(void)shutdown(fd, SHUT_WR);
		}
	}
	close(fd);
	return 0;
}
