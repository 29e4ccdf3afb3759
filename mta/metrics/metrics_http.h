/* SPDX-License-Identifier: ISC */
/*
 * metrics_http.h - the Prometheus endpoint: GET /metrics over HTTP/1.1 on
 * [metrics] listen.
 *
 * DESIGN. One small thread with its own uring loop (net/uring.h): a
 * multishot accept per listen address and one net/stream per client, as
 * every other connection of the relay, so a scrape never runs on a
 * receive or delivery thread and never blocks one. Each request is
 * bounded: its header must fit METRICS_REQ_MAX bytes and arrive within
 * METRICS_REQ_MS of the connect (a client that trickles is closed), the
 * answer must be taken within METRICS_SEND_MS, and at most
 * METRICS_CONNS_MAX clients are open at once (more are closed at
 * accept), so a flood costs this thread only. GET or HEAD of /metrics
 * is answered 200 with the page (metrics_page.h) and the connection is
 * closed after it ("Connection: close": a scrape a second needs no
 * keep-alive); any other path is 404, any other method 405, a malformed
 * or over-long request 400 or 431.
 *
 * Threads: new/start/free on the main thread; the rest on the metrics
 * thread.
 */
#ifndef MTA_METRICS_HTTP_H
#define MTA_METRICS_HTTP_H

#include <stddef.h>

#include "base/compat.h"
#include "config/config.h"

#define METRICS_REQ_MAX   8192  /* bytes of a request header */
#define METRICS_REQ_MS    5000  /* from connect to the end of the header */
#define METRICS_SEND_MS   10000 /* for the client to take the answer */
#define METRICS_CONNS_MAX 64    /* clients open at once */
#define METRICS_PAGE_MAX  (64 * 1024 * 1024) /* bytes of a page, cap */

struct metrics_server;

/*
 * metrics_server_new - bind every address of cfg->listen (none: *out is
 * NULL and nothing runs). Binding here, before any thread, makes a busy
 * port one line and exit 1 at startup. cfg: borrowed for the call.
 * Returns 0, or negative errno with one line in err. Main thread.
 */
int metrics_server_new(const struct config_metrics *cfg,
    struct metrics_server **out, char *err, size_t errlen) MTA_MUST_CHECK;

/* Start the thread (NULL: nothing). 0 or negative errno. Signals must
 * be blocked already (the thread inherits the mask). */
int metrics_server_start(struct metrics_server *m) MTA_MUST_CHECK;

/* Stop the thread (clients are closed at once), close the sockets and
 * free. Takes NULL. Main thread. */
void metrics_server_free(struct metrics_server *m);

#endif
