/* SPDX-License-Identifier: ISC */
/*
 * log.c - logfmt lines on stderr, one write(2) each, no locks.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level log_min = LOG_LEVEL_INFO;

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

static size_t
log_stamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03ldZ ",
	    ts.tv_nsec / 1000000);
	return n;
}

/* Format prefix + message (+ errno text) + "\n" and write it at once. */
static void
log_vwrite(const char *level, int errnum, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], msg[LOG_LINE_MAX - 128];
	size_t n;
	int r;

	n = log_stamp(line, sizeof(line));
	if (level == NULL) {
		r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	} else {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		if (errnum) {
			size_t m = strlen(msg);
			snprintf(msg + m, sizeof(msg) - m, ": %s",
			    strerror(errnum));
		}
		r = snprintf(line + n, sizeof(line) - n - 1, "level=%s msg=",
		    level);
		if (r > 0 && (size_t)r < sizeof(line) - n - 1) {
			n += (size_t)r;
			log_quote(line + n, sizeof(line) - n - 1, msg,
			    strlen(msg));
			r = (int)strlen(line + n);
		}
	}
	if (r < 0)
		r = 0;
	n += (size_t)r < sizeof(line) - n - 1 ? (size_t)r :
					      sizeof(line) - n - 2;
	line[n++] = '\n';
	/* A short or failed write to stderr has nowhere better to go. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

#define LOG_BODY(level, errnum)                   \
	do {                                      \
		va_list ap;                       \
		va_start(ap, fmt);                \
		log_vwrite(level, errnum, fmt, ap); \
		va_end(ap);                       \
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

void
mta_assert_fail(const char *expr, const char *file, int line)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf),
	    "level=panic msg=\"assertion failed: %s at %s:%d\"\n", expr, file,
	    line);
	if (n > 0 && write(STDERR_FILENO, buf,
			 (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1) < 0)
		abort();
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
