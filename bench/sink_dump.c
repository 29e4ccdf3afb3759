/* SPDX-License-Identifier: ISC */
/*
 * sink_dump.c - mta-sink's --dump DIR: every accepted message is kept as
 * a file, as Postfix's smtp-sink -d does. The file is written while the
 * message streams in (unstuffed, CRLF as received), under a temporary
 * name, after envelope lines (X-Mta-Sink-From, one X-Mta-Sink-Rcpt per
 * accepted recipient, X-Mta-Sink-Auth when authenticated); at the end it
 * is renamed to DIR/<seconds>.<microseconds>.<pid>.<n>.eml when the
 * message was accepted, removed when it was refused.
 *
 * Thread: the connection's. Writes are plain blocking write(2)s on the
 * loop thread: a dump costs throughput, which is fine for a test sink.
 */
#include "bench/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

static atomic_ulong g_seq; /* file numbers, shared by the threads */

static void
dump_failed(struct sink_dump *d, const char *what)
{
	fprintf(stderr, "mta-sink: --dump %s: %s\n", what, strerror(errno));
	if (d->fd >= 0) {
		close(d->fd);
		unlink(d->tmp);
	}
	d->fd = -1;
}

void
sink_dump_begin(struct sink_dump *d, const char *from, char *const *rcpts,
    unsigned nrcpts, const char *auth)
{
	uint64_t now = clock_wall_us();
	unsigned long n = atomic_fetch_add(&g_seq, 1) + 1;
	int len;

	d->fd = -1;
	if (sink_opt.dump_dir == NULL)
		return;
	len = snprintf(d->path, sizeof(d->path),
	    "%s/%" PRIu64 ".%06u.%d.%lu.eml", sink_opt.dump_dir, now / 1000000,
	    (unsigned)(now % 1000000), (int)getpid(), n);
	if (len < 0 || (size_t)len + 5 >= sizeof(d->path)) {
		errno = ENAMETOOLONG;
		dump_failed(d, sink_opt.dump_dir);
		return;
	}
	memcpy(d->tmp, d->path, (size_t)len + 1);
	memcpy(d->tmp + len, ".tmp", 5);
	d->fd = open(d->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (d->fd < 0) {
		dump_failed(d, d->tmp);
		return;
	}
	dprintf(d->fd, "X-Mta-Sink-From: <%s>\r\n", from);
	for (unsigned i = 0; i < nrcpts; i++)
		if (rcpts[i])
			dprintf(d->fd, "X-Mta-Sink-Rcpt: <%s>\r\n", rcpts[i]);
	if (auth && *auth)
		dprintf(d->fd, "X-Mta-Sink-Auth: %s\r\n", auth);
}

void
sink_dump_write(struct sink_dump *d, const void *p, size_t n)
{
	const char *q = p;

	while (d->fd >= 0 && n > 0) {
		ssize_t k = write(d->fd, q, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			dump_failed(d, d->tmp);
			return;
		}
		q += k;
		n -= (size_t)k;
	}
}

void
sink_dump_end(struct sink_dump *d, bool keep)
{
	if (d->fd < 0)
		return;
	close(d->fd);
	d->fd = -1;
	if (!keep) {
		unlink(d->tmp);
		return;
	}
	if (rename(d->tmp, d->path) != 0) {
		fprintf(stderr, "mta-sink: --dump %s: %s\n", d->path,
		    strerror(errno));
		unlink(d->tmp);
	}
}
