/* SPDX-License-Identifier: ISC */
/*
 * control.h - the relay's control socket: how `mta queue delete|retry|
 * hold|release` act on the live queue.
 *
 * DESIGN. A Unix stream socket, control.sock in the queue directory,
 * mode 0600: only the relay's own user (and root) may connect, and the
 * peer's uid is checked again with SO_PEERCRED. One small thread accepts
 * connections one at a time (operator commands are rare and quick),
 * reads one request line, hands it to the delivery scheduler (the owner
 * of the schedule; it commits to the queue before it answers) and writes
 * the answer. A client that does not finish its line within
 * CONTROL_IO_TIMEOUT_MS is dropped, so one stuck client cannot wedge the
 * socket for long.
 *
 * Protocol (one request per connection, lines end in LF):
 *
 *	request:  VERB ID...        VERB: delete, retry, hold, release,
 *	                            bounce;
 *	          retry --all       ID: 16 hex digits; at most
 *	                            CONTROL_IDS_MAX ids, CONTROL_LINE_MAX bytes
 *	answer:   ok ID             one line per id, in request order, once
 *	          error ID: REASON  the change is on disk and in effect; an
 *	          ok all messages=N error (e.g. a failed commit) changed
 *	          error all: REASON nothing for that id
 *	          done ok=N error=M the last line
 *
 *	request:  reload            answer: ok reload, done ok=1 error=0
 *	                            (SIGHUP is raised; the log tells how
 *	                            the reload went)
 *
 * A malformed request gets `error: REASON` and the `done` line.
 *
 * Threads: control_new/start/free on the main thread; everything else on
 * the control thread.
 */
#ifndef MTA_CONTROL_H
#define MTA_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/compat.h"
#include "config/config.h"

#define CONTROL_SOCK_NAME     "control.sock"
#define CONTROL_LINE_MAX      (32 * 1024) /* bytes of a request line */
#define CONTROL_IDS_MAX       1000        /* ids per request */
#define CONTROL_IO_TIMEOUT_MS 5000        /* to read a request, to answer */

struct control;
struct deliver;

/*
 * control_path - the control socket of the queue at q->path, into
 * out[len] (CONFIG_PATH_MAX + 16 is always enough). 0 or -ENAMETOOLONG.
 */
int control_path(
    const struct config_queue *q, char *out, size_t len) MTA_MUST_CHECK;

/*
 * control_new - create the control socket of the queue at q->path (the
 * directory must exist: call after queue_open). A socket file left by a
 * relay that is gone is replaced; if a live relay answers on it, fails
 * with -EADDRINUSE ("another relay is running on this queue"). The
 * socket is mode 0600. No thread yet. Returns 0 and *out, or negative
 * errno with one line in err. Main thread.
 */
int control_new(const struct config_queue *q, struct control **out, char *err,
    size_t errlen) MTA_MUST_CHECK;

struct buf;
/* control_shape.c: answer the shaping requests (limits, suspended,
 * resume DOMAIN) into out; false when verb is none of them. save: the
 * strtok_r state after the verb. The control thread. */
bool control_shape(
    struct deliver *d, const char *verb, char **save, struct buf *out);

/* Start the thread; d (borrowed, started) receives the requests and
 * must outlive control_free(). Returns 0 or negative errno. */
int control_start(struct control *c, struct deliver *d) MTA_MUST_CHECK;

/* Stop the thread (a request in progress is finished and answered
 * first), close and remove the socket, free. Before deliver_stop(): the
 * scheduler answers every request it was sent. Takes NULL. */
void control_free(struct control *c);

#endif
