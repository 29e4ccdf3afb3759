/* SPDX-License-Identifier: ISC */
/*
 * log.c - logfmt lines on stderr, one write(2) each (or one per batch of
 * up to PIPE_BUF bytes, see log.h), no locks.
 */
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX      4096
#define LOG_FACILITY_MAIL 2 /* RFC 5424 facility 2: mail system */

static enum log_level log_min = LOG_LEVEL_INFO;

/* The syslog target (log_syslog_open): set before threads start, read
 * only afterwards. */
static struct {
	int fd; /* -1: off */
	struct sockaddr_un addr;
	socklen_t addrlen;
	char tag[32]; /* "mta[PID]: " */
} log_sys = {.fd = -1};

/* The calling thread's batch (log.h): whole lines only, n <= PIPE_BUF. */
static _Thread_local struct {
	unsigned depth; /* log_batch_begin() calls not yet ended */
	size_t n;       /* bytes held */
	char buf[PIPE_BUF];
} log_tb;

static void
log_out(const char *p, size_t n)
{
	/* A short or failed write to stderr has nowhere better to go. */
	if (write(STDERR_FILENO, p, n) < 0)
		return;
}

void
log_batch_flush(void)
{
	if (log_tb.n > 0)
		log_out(log_tb.buf, log_tb.n);
	log_tb.n = 0;
}

void
log_batch_begin(void)
{
	log_tb.depth++;
}

void
log_batch_end(void)
{
	MTA_ASSERT(log_tb.depth > 0);
	if (--log_tb.depth == 0)
		log_batch_flush();
}

/* One whole line: held in the batch when one is open and it is an event
 * or debug line, else written now, after what is held. */
static void
log_line(bool batchable, const char *line, size_t n)
{
	if (log_tb.depth > 0 && batchable && n <= sizeof(log_tb.buf)) {
		if (log_tb.n + n > sizeof(log_tb.buf))
			log_batch_flush();
		memcpy(log_tb.buf + log_tb.n, line, n);
		log_tb.n += n;
		return;
	}
	log_batch_flush();
	log_out(line, n);
}

void
log_set_level(enum log_level level)
{
	log_min = level;
}

bool
log_debug_enabled(void)
{
	return log_min <= LOG_LEVEL_DEBUG;
}

/* The date and time of the last second this thread logged in, formatted:
 * a busy thread logs many lines per second, and gmtime_r + strftime cost
 * more than the rest of the line. */
static _Thread_local struct {
	time_t sec;
	size_t len;
	char text[32]; /* "ts=YYYY-MM-DDTHH:MM:SS" */
} log_ts = {.sec = (time_t)-1};

static size_t
log_stamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	unsigned ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != log_ts.sec) {
		gmtime_r(&ts.tv_sec, &tm);
		log_ts.len = strftime(log_ts.text, sizeof(log_ts.text),
		    "ts=%Y-%m-%dT%H:%M:%S", &tm);
		log_ts.sec = ts.tv_sec;
	}
	MTA_ASSERT(len > log_ts.len + 6);
	memcpy(buf, log_ts.text, log_ts.len);
	ms = (unsigned)(ts.tv_nsec / 1000000);
	buf[log_ts.len] = '.';
	buf[log_ts.len + 1] = (char)('0' + ms / 100);
	buf[log_ts.len + 2] = (char)('0' + ms / 10 % 10);
	buf[log_ts.len + 3] = (char)('0' + ms % 10);
	buf[log_ts.len + 4] = 'Z';
	buf[log_ts.len + 5] = ' ';
	return log_ts.len + 6;
}

/* The free-text diagnostic's event name per level (log.h). */
static const char *
log_diag_event(const char *level)
{
	if (strcmp(level, "warn") == 0)
		return "warning";
	return level;
}

/* A diagnostic: `event=NAME level=L rest [error="..."]` when the text is
 * already `event=NAME rest`, else `event=warning level=warn msg="..."`. */
static size_t
log_diag(char *dst, size_t len, const char *level, int errnum, char *msg,
    size_t msglen)
{
	char q[LOG_LINE_MAX / 2];
	size_t n;

	if (strncmp(msg, "event=", 6) == 0) {
		size_t name = strcspn(msg, " ");

		n = (size_t)snprintf(dst, len, "%.*s level=%s%s", (int)name,
		    msg, level, msg + name);
		if (n < len && errnum != 0) {
			const char *e = strerror(errnum);

			n += (size_t)snprintf(dst + n, len - n, " error=%s",
			    log_quote(q, sizeof(q), e, strlen(e)));
		}
		return n;
	}
	if (errnum != 0) {
		size_t m = strlen(msg);

		snprintf(msg + m, msglen - m, ": %s", strerror(errnum));
	}
	n = (size_t)snprintf(
	    dst, len, "event=%s level=%s msg=", log_diag_event(level), level);
	if (n < len) {
		log_quote(dst + n, len - n, msg, strlen(msg));
		n += strlen(dst + n);
	}
	return n;
}

int
log_syslog_open(const char *path)
{
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(log_sys.addr.sun_path))
		return -ENAMETOOLONG;
	if (log_sys.fd < 0)
		log_sys.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (log_sys.fd < 0)
		return -errno;
	memset(&log_sys.addr, 0, sizeof(log_sys.addr));
	log_sys.addr.sun_family = AF_UNIX;
	memcpy(log_sys.addr.sun_path, path, len);
	log_sys.addrlen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	snprintf(
	    log_sys.tag, sizeof(log_sys.tag), "mta[%ld]: ", (long)getpid());
	return 0;
}

/* RFC 5424 severity of a line: events are info, as Postfix logs them. */
static int
log_syslog_severity(const char *level)
{
	if (level == NULL || strcmp(level, "info") == 0)
		return 6;
	if (strcmp(level, "debug") == 0)
		return 7;
	if (strcmp(level, "warn") == 0)
		return 4;
	return 2; /* fatal, panic: crit */
}

/* Send one line as one datagram, `<PRI>Mmm dd hh:mm:ss mta[PID]: ...`
 * without our ts= field (syslog stamps it). Never blocks: a full or
 * absent syslog daemon drops the line; stderr still has it. */
static void
log_syslog_line(const char *level, const char *line, size_t n)
{
	char dgram[LOG_LINE_MAX + 96], stamp[32];
	const char *body = line, *sp;
	struct tm tm;
	time_t now;
	int k;

	if (log_sys.fd < 0)
		return;
	if (strncmp(body, "ts=", 3) == 0 && (sp = memchr(body, ' ', n)))
		body = sp + 1;
	n -= (size_t)(body - line);
	if (n > 0 && body[n - 1] == '\n')
		n--;
	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	k = snprintf(dgram, sizeof(dgram), "<%d>%s %s%.*s",
	    LOG_FACILITY_MAIL * 8 + log_syslog_severity(level), stamp,
	    log_sys.tag, (int)n, body);
	if (k <= 0)
		return;
	(void)sendto(log_sys.fd, dgram,
	    (size_t)k < sizeof(dgram) ? (size_t)k : sizeof(dgram) - 1,
	    MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&log_sys.addr,
	    log_sys.addrlen);
}

/* Format prefix + message + "\n" and write it at once. */
static void
log_vwrite(const char *level, int errnum, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], msg[LOG_LINE_MAX - 128];
	size_t n, room;
	int r;

	n = log_stamp(line, sizeof(line));
	room = sizeof(line) - n - 1;
	if (level == NULL) {
		r = vsnprintf(line + n, room, fmt, ap);
		n += r < 0 ? 0 : (size_t)r < room ? (size_t)r : room - 1;
	} else {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		r = (int)log_diag(
		    line + n, room, level, errnum, msg, sizeof(msg));
		n += (size_t)r < room ? (size_t)r : room - 1;
	}
	line[n++] = '\n';
	log_line(level == NULL || strcmp(level, "debug") == 0, line, n);
	log_syslog_line(level, line, n);
}

#define LOG_BODY(level, errnum)                     \
	do {                                        \
		va_list ap;                         \
		va_start(ap, fmt);                  \
		log_vwrite(level, errnum, fmt, ap); \
		va_end(ap);                         \
	} while (0)

void
log_event(const char *fmt, ...)
{
	LOG_BODY(NULL, 0);
}

void
log_debug(const char *fmt, ...)
{
	if (log_min > LOG_LEVEL_DEBUG)
		return;
	LOG_BODY("debug", 0);
}

void
log_info(const char *fmt, ...)
{
	if (log_min > LOG_LEVEL_INFO)
		return;
	LOG_BODY("info", 0);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("warn", 0);
}

void
log_warn(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY("warn", e);
}

void
fatal(const char *fmt, ...)
{
	int e = errno;

	LOG_BODY("fatal", e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", 0);
	exit(1);
}

/* A broken invariant: `event=panic level=panic msg="..."`, as any line. */
static MTA_PRINTF(1, 2) void log_panic(const char *fmt, ...)
{
	LOG_BODY("panic", 0);
}

void
mta_assert_fail(const char *expr, const char *file, int line)
{
	log_batch_flush();
	log_panic("assertion failed: %s at %s:%d", expr, file, line);
	abort();
}

char *
log_quote(char *dst, size_t dstlen, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (dstlen == 0)
		return dst;
	if (dstlen < 6) {
		dst[0] = '\0';
		return dst;
	}
	dst[o++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char esc[4];
		size_t k = 0;

		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'x';
			esc[k++] = hex[c >> 4];
			esc[k++] = hex[c & 15];
		} else {
			esc[k++] = (char)c;
		}
		/* keep room for `..."` + NUL */
		if (o + k + 5 > dstlen) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, esc, k);
		o += k;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}
