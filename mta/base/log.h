/* SPDX-License-Identifier: ISC */
/*
 * log.h - one logfmt line per event on stderr.
 *
 * Every line starts with `ts=<UTC ISO-8601 with ms>`, then `event=NAME`,
 * then `key=value` fields only: a value is a bare token or a quoted
 * string (log_quote()). Event lines are written by callers as
 * `event=NAME key=value ...` through log_event(). The other levels add
 * `level=`: their text, when it starts with `event=NAME`, is laid out
 * the same way (`event=NAME level=warn key=value ...`, errno as a quoted
 * `error=`); free text becomes `event=warning|info|debug|fatal level=..
 * msg="..."`. README lists every event and its fields. Each line is formatted
 * into a stack buffer and written with one write(2), so lines from many
 * threads never interleave and no lock is held. Safe from any thread.
 *
 * Batching: an event loop that logs several event lines per wakeup (a
 * line per message accepted, delivered, removed) brackets its callbacks
 * with log_batch_begin()/log_batch_end(). Event lines are then gathered
 * in a per-thread buffer of at most PIPE_BUF bytes and written by one
 * write(2) when it is full and at log_batch_end()/log_batch_flush(), so
 * a line is still never split or interleaved (PIPE_BUF writes are atomic
 * even on a pipe). The loop flushes before it sleeps, so no line waits
 * for the next event. Levels other than event and debug are written at
 * once, after whatever the batch holds, so the order stays the order of
 * the calls.
 *
 * Peer-supplied strings must go through log_quote() before being logged.
 */
#ifndef MTA_BASE_LOG_H
#define MTA_BASE_LOG_H

#include <stddef.h>
#include <stdbool.h>

#include "compat.h"

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN };

/* Set the minimum level written (default INFO; MTA_DEBUG=1 in the
 * environment selects DEBUG). Call before starting threads. */
void log_set_level(enum log_level level);

/*
 * log_syslog_open - also send every line to a syslog daemon's unix
 * datagram socket at path (usually /dev/log), facility mail, ident mta,
 * one datagram per line, never blocking (lines the daemon has no room
 * for are dropped there; stderr keeps them). Call before starting
 * threads. Returns 0, or negative errno.
 */
MTA_MUST_CHECK int log_syslog_open(const char *path);
bool log_debug_enabled(void);

/* Start batching this thread's lines; nests (the outermost end writes).
 * Must be paired with log_batch_end() on the same thread. */
void log_batch_begin(void);
/* Write what the batch holds; batching goes on. Call before sleeping. */
void log_batch_flush(void);
/* End one level of batching; the outermost writes what is held. */
void log_batch_end(void);

/* `ts=... event=...`: fmt must start with "event=". */
void log_event(const char *fmt, ...) MTA_PRINTF(1, 2);

void log_debug(const char *fmt, ...) MTA_PRINTF(1, 2);
void log_info(const char *fmt, ...) MTA_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) MTA_PRINTF(1, 2);
/* As log_warnx, with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) MTA_PRINTF(1, 2);

/* Startup and corruption only; never from code a peer can reach. fatal()
 * appends strerror(errno). Both exit(1). */
MTA_NORETURN void fatal(const char *fmt, ...) MTA_PRINTF(1, 2);
MTA_NORETURN void fatalx(const char *fmt, ...) MTA_PRINTF(1, 2);

/*
 * log_quote - render (src, len) as a logfmt value into dst: wrapped in
 * double quotes, with `"` and `\` escaped, control and non-ASCII bytes as
 * \xHH, truncated to fit dstlen (with "..." appended when cut). Always
 * NUL-terminates when dstlen > 0. Returns dst, for use inside printf args.
 */
char *log_quote(char *dst, size_t dstlen, const char *src, size_t len);

#endif
