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
#include <stddef.h>

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
	const char *auth;      /* --auth: "any" or a users file; NULL = off */
	const char *dump_dir;  /* --dump: keep accepted messages here */
};

struct sink_stats {
	atomic_ulong conns, conns_now, msgs, rcpts, bytes, temp, perm, drops;
	atomic_ulong tls, tls_fail;   /* handshakes done, failed */
	atomic_ulong auth, auth_fail; /* AUTH accepted, refused */
};

extern struct sink_opts sink_opt;
extern struct sink_stats sink_st;
extern int sink_record_fd;       /* --record, or -1 */
extern struct tls_ctx *sink_tls; /* --starttls, or NULL */

/* sink_auth.c: --auth */

/* Read the users file (exit 2 when it cannot be read); main thread,
 * before the threads start. Nothing without --auth. */
void sink_auth_init(void);
void sink_auth_fini(void);

/* name and password (borrowed) may authenticate; any thread. */
bool sink_auth_check(const char *name, const char *password);

/* sink_dump.c: --dump, one message's file */
struct sink_dump {
	int fd; /* -1: not dumping (off, or failed: said on stderr) */
	char path[512], tmp[512]; /* final and temporary names */
};

/* At DATA: open the file (when --dump) and write the envelope lines.
 * Arguments are borrowed for the call; rcpts[i] NULL are skipped. */
void sink_dump_begin(struct sink_dump *d, const char *from, char *const *rcpts,
    unsigned nrcpts, const char *auth);

/* Message bytes, unstuffed, as they arrive. */
void sink_dump_write(struct sink_dump *d, const void *p, size_t n);

/* End of data: keep the file under its final name, or remove it. */
void sink_dump_end(struct sink_dump *d, bool keep);

/*
 * sink_conn_new - serve an accepted socket on loop l (the calling
 * thread's): the 220, then the dialogue until the peer quits or is
 * dropped; the connection frees itself. stopping: the thread is
 * shutting down, so refuse with a 421 (as over --max-connections).
 */
void sink_conn_new(struct uring_loop *l, int fd, bool stopping);

#endif
