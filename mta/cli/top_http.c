/* SPDX-License-Identifier: ISC */
/*
 * top_http.c - GET /metrics over one short TCP connection: connect with
 * a deadline, send the request with `Connection: close`, read to the end
 * (or Content-Length), and take the body out of the response (chunked
 * bodies decoded). Blocking with poll(2) deadlines; the command's own
 * thread. The relay's endpoint is on loopback or a trusted network, but
 * its answer is still checked and bounded.
 */
#include "cli/top_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"

/* Wait for ev on fd until the deadline; -ETIMEDOUT past it. */
static int
top_http_wait(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};
	uint64_t now = clock_mono_ms();
	int r;

	if (now >= deadline)
		return -ETIMEDOUT;
	r = poll(&p, 1, (int)(deadline - now));
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* A wildcard listener is reached on this host's loopback. */
static void
top_http_target(const struct config_addr *a, struct sockaddr_storage *ss)
{
	*ss = a->ss;
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
}

static int
top_http_connect(const struct config_addr *a, uint64_t deadline)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(sl);
	int fd, r, soerr = 0;

	top_http_target(a, &ss);
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, a->sslen) == 0)
		return fd;
	r = errno == EINPROGRESS ? top_http_wait(fd, POLLOUT, deadline)
	                         : -errno;
	sl = sizeof(soerr);
	if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		r = -errno;
	if (r == 0 && soerr != 0)
		r = -soerr;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* Send all of (p, n) before the deadline. */
static int
top_http_send(int fd, const char *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		int r;

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((r = top_http_wait(fd, POLLOUT, deadline)) < 0)
			return r;
	}
	return 0;
}

/* Read to EOF (bounded) into a NUL-terminated *out of *len bytes. */
static int
top_http_recv(int fd, uint64_t deadline, char **out, size_t *len)
{
	size_t cap = 64 * 1024, n = 0;
	char *b = xmalloc(cap + 1);
	int r = 0;

	for (;;) {
		ssize_t got;

		if (n == cap) {
			if (cap >= TOP_HTTP_MAX) {
				r = -EFBIG;
				break;
			}
			cap *= 2;
			b = xrealloc(b, cap + 1);
		}
		got = recv(fd, b + n, cap - n, 0);
		if (got > 0) {
			n += (size_t)got;
			continue;
		}
		if (got == 0)
			break;
		if (errno != EAGAIN && errno != EINTR) {
			r = -errno;
			break;
		}
		if ((r = top_http_wait(fd, POLLIN, deadline)) < 0)
			break;
	}
	b[n] = '\0';
	*out = b;
	*len = n;
	return r;
}

/* Decode a chunked body in place; -EBADMSG when malformed. */
static int
top_http_unchunk(char *p, size_t n, size_t *outlen)
{
	size_t i = 0, o = 0;

	for (;;) {
		char *end;
		unsigned long sz = strtoul(p + i, &end, 16);
		char *crlf = strstr(p + i, "\r\n");

		if (end == p + i || crlf == NULL || (size_t)(crlf - p) >= n)
			return -EBADMSG;
		i = (size_t)(crlf - p) + 2;
		if (sz == 0)
			break;
		if (sz > n - i || n - i - sz < 2)
			return -EBADMSG;
		memmove(p + o, p + i, sz);
		o += sz;
		i += sz + 2;
	}
	p[o] = '\0';
	*outlen = o;
	return 0;
}

/* The status, then the body moved to the start of buf. */
static int
top_http_body(char *buf, size_t n, size_t *len, char *err, size_t errlen)
{
	char *hend = strstr(buf, "\r\n\r\n"), *te;
	int status = 0;

	if (hend == NULL || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		str_fmt(err, errlen, "not an HTTP response");
		return -EBADMSG;
	}
	if (status != 200) {
		str_fmt(err, errlen, "HTTP status %d", status);
		return -EPROTO;
	}
	*hend = '\0';
	te = strcasestr(buf, "\r\ntransfer-encoding:");
	n -= (size_t)(hend + 4 - buf);
	memmove(buf, hend + 4, n + 1);
	*len = n;
	if (te != NULL && strcasestr(te, "chunked") != NULL &&
	    top_http_unchunk(buf, n, len) < 0) {
		str_fmt(err, errlen, "malformed chunked body");
		return -EBADMSG;
	}
	return 0;
}

int
top_http_get(const struct config_addr *a, const char *path, unsigned timeout_ms,
    char **body, size_t *len, char *err, size_t errlen)
{
	uint64_t deadline = clock_mono_ms() + timeout_ms;
	char req[512], *buf = NULL;
	size_t n = 0;
	int fd, r;

	*body = NULL;
	*len = 0;
	if ((fd = top_http_connect(a, deadline)) < 0) {
		str_fmt(err, errlen, "%s: %s", a->text, strerror(-fd));
		return fd;
	}
	str_fmt(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mta-top\r\n"
	    "Accept: text/plain\r\nConnection: close\r\n\r\n",
	    path, a->text);
	r = top_http_send(fd, req, strlen(req), deadline);
	if (r == 0)
		r = top_http_recv(fd, deadline, &buf, &n);
	close(fd);
	if (r < 0) {
		str_fmt(err, errlen, "%s: %s", a->text, strerror(-r));
		free(buf);
		return r;
	}
	if ((r = top_http_body(buf, n, len, err, errlen)) < 0) {
		free(buf);
		return r;
	}
	*body = buf;
	return 0;
}
