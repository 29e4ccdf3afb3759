/* SPDX-License-Identifier: ISC */
/*
 * sink.h - what the two halves of mta-sink share: sink.c (the process:
 * options, threads, listeners, signals, totals) and sink_conn.c (one
 * connection: the SMTP server dialogue, fault injection, records). The
 * options and the TLS context are written by the main thread before the
 * threads start and only read afterwards; the counters are atomics.
 */
#ifndef MTA_BENCH_SINK_H
#define MTA_BENCH_SINK_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"
#include "net/uring.h"

struct tls_ctx;

enum sink_when { AT_RCPT, AT_DATA };

struct sink_opts {
	struct config_addr listen[8];
	size_t nlisten;
	unsigned threads;
	const char *record;
	unsigned tempfail_pct, permfail_pct; /* share of replies, 0..100 */
	enum sink_when fail_at;
	unsigned drop_pct;   /* connections dropped after MAIL */
	unsigned delay_ms;   /* before each delayed reply */
	char delay_cmds[64]; /* "mail,rcpt,data,dot" or "all" */
	bool pipelining;
	unsigned max_conns;
	bool quiet;
	struct config_tls tls; /* --starttls; certificate "" = off */
};

struct sink_stats {
	atomic_ulong conns, conns_now, msgs, rcpts, bytes, temp, perm, drops;
	atomic_ulong tls, tls_fail; /* handshakes done, failed */
};

extern struct sink_opts sink_opt;
extern struct sink_stats sink_st;
extern int sink_record_fd;       /* --record, or -1 */
extern struct tls_ctx *sink_tls; /* --starttls, or NULL */

/*
 * sink_conn_new - serve an accepted socket on loop l (the calling
 * thread's): the 220, then the dialogue until the peer quits or is
 * dropped; the connection frees itself. stopping: the thread is
 * shutting down, so refuse with a 421 (as over --max-connections).
 */
void sink_conn_new(struct uring_loop *l, int fd, bool stopping);

#endif
