/* SPDX-License-Identifier: ISC */
/*
 * load.h - what the three parts of mta-load share: load.c (the process:
 * options, threads, pacing), load_conn.c (one client connection: the
 * SMTP dialogue over a stream) and load_stats.c (latencies and the
 * report). Options and the body are written by the main thread before
 * the threads start and only read afterwards; the counters are atomics;
 * a struct load_thread and its connections belong to its thread.
 */
#ifndef MTA_BENCH_LOAD_H
#define MTA_BENCH_LOAD_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"
#include "net/stream.h"
#include "net/uring.h"
#include "smtp/smtp_reply.h"

struct tls_ctx;
struct tls_session;

#define LOAD_MAX_DOMAINS 16
#define LOAD_MAX_RCPTS   1000
#define LOAD_CODES       600
#define LOAD_MAX_HEADERS 32

struct load_opts {
	struct config_addr server;
	unsigned conns, threads, rcpts;
	uint64_t messages; /* 0 = until duration */
	double duration;   /* seconds; 0 = until messages */
	size_t size;       /* approximate message size, bytes */
	bool new_conn, pipelining, json, quiet;
	bool bdat; /* BDAT n LAST instead of DATA when offered */
	bool starttls, tls_resume;
	bool tls;       /* implicit TLS from the connect (port 465) */
	char host[256]; /* the server as named (name or address), for TLS */
	double rate;    /* messages/s; 0 = closed loop */
	const char *from;
	const char *auth; /* "user:pass" */
	bool auth_login;  /* AUTH LOGIN instead of AUTH PLAIN */
	const char *ehlo;
	uint64_t connect_ms, greeting_ms, reply_ms; /* timeouts; 0 = none */
	double interval;       /* seconds between time-series lines; 0 = off */
	const char *tmpl_path; /* --template FILE */
	const char *headers[LOAD_MAX_HEADERS]; /* --header "Name: value" */
	unsigned nheaders;
	char *domains[LOAD_MAX_DOMAINS];
	unsigned weights[LOAD_MAX_DOMAINS];
	unsigned ndomains, wsum;
};

extern struct load_opts load_opt;

/* Shared progress: atomics, read by the display. */
extern atomic_ulong load_started, load_accepted, load_refused, load_errors;
extern atomic_ulong load_tls, load_tls_resumed; /* handshakes done, resumed */
extern atomic_ulong load_setup_ok,
    load_setup_fail;                     /* connections through setup */
extern atomic_ulong load_due;            /* open loop: messages that came due */
extern atomic_ullong load_last_start_us; /* wall us of the newest start */
extern atomic_bool load_stop;
extern struct tls_ctx *load_tls_ctx; /* --starttls; read-only in threads */
extern uint64_t load_t0_us;
extern char *load_body; /* filler shared by every message */
extern size_t load_bodylen;
extern int load_pid; /* in every Message-ID */

enum conn_state {
	CS_CONNECT,
	CS_GREETING,
	CS_EHLO,
	CS_STARTTLS,
	CS_HANDSHAKE,
	CS_AUTH,
	CS_AUTH_USER, /* AUTH LOGIN: the 334 asking for the name */
	CS_AUTH_PASS, /* AUTH LOGIN: the 334 asking for the password */
	CS_RSET,
	CS_IDLE,
	CS_TXN,
	CS_DATA_REPLY,
	CS_QUIT,
	CS_DONE,
};

struct load_conn {
	struct load_thread *t;
	struct stream s; /* open from load_conn_start() until `closed` */
	enum conn_state state;
	struct smtp_reply_parser rp;
	bool pipelining; /* negotiated */
	bool bdat;       /* negotiated: the message goes as one BDAT LAST */
	size_t body_off; /* of load_body queued; past the end: the dot too */
	/* the transaction */
	unsigned expect;    /* replies still expected before the 354 */
	unsigned sent_cmds; /* commands sent one at a time (no pipelining) */
	int mail_code, first_bad;
	unsigned rcpt_ok;
	uint64_t txn_start_us;
	uint64_t seq;
	uint64_t msgno;           /* the message's number in the run, from 1 */
	const char *rcpt1_domain; /* of the first RCPT, for To: and {rcpt} */
	/* the message being sent: load_body, or this connection's rendering
	 * of --template (tmsg, reused) */
	const char *body;
	size_t bodylen;
	char *tmsg;
	size_t tmsg_cap;
	bool dead;      /* we are closing it: nothing more counts */
	bool failed;    /* this connection ended in an error */
	unsigned fails; /* connects or setups failed in a row (backoff) */
	struct uring_op retry; /* backoff timer before the next connect */
};

struct load_thread {
	pthread_t tid;
	unsigned idx;
	struct uring_loop *loop;
	struct load_conn *conns;
	unsigned nconns;
	atomic_uint live; /* connections not DONE; read by main */
	uint64_t *lat;    /* microseconds, one per accepted message */
	size_t nlat, caplat;
	unsigned long codes[LOAD_CODES];
	uint64_t quota; /* messages this thread may start */
	uint64_t started;
	struct uring_op tick; /* progress / stop checks / open-loop pacing */
	uint32_t rng;
	/* open loop: messages due and not yet taken by a connection */
	uint64_t next_due_us, interval_us;
	uint64_t *backlog; /* FIFO of due times, wall us */
	size_t bhead, blen, bcap;
	uint64_t end_us;          /* when this thread's last connection ended */
	struct tls_session *sess; /* newest, for the next handshake */
};

/* load_pace.c: pacing */

/* No more messages will be started by this thread. */
bool load_thread_finished(const struct load_thread *t);

/* Take the next message if one may start now; *due_us is when it was
 * due (open loop) or now (closed loop). */
bool load_take_message(struct load_thread *t, uint64_t *due_us);

/* Open loop: a message is due at `due` (wall us); queue it. */
void load_pace_due(struct load_thread *t, uint64_t due);

/* load_conn.c: a connection */

/* Before the first load_conn_start(): c (zeroed) belongs to thread t. */
void load_conn_init(struct load_conn *c, struct load_thread *t);

/* (Re)open connection c (after load_conn_init()), or retire it
 * (CS_DONE, t->live down by one) when the thread has no more work. */
void load_conn_start(struct load_conn *c);

/* After EHLO or a finished transaction, or from the ticker for an idle
 * one: the next message, idle (open loop), or QUIT. */
void load_conn_next(struct load_conn *c);

/* load_msg.c: the message */

/* Read --template (exit 2 with a message when it cannot be used) and
 * build the filler body; main thread, before the threads start. */
void load_msg_init(void);

/* Free what load_msg_init() made. */
void load_msg_fini(void);

/*
 * load_msg_render - append the header block of connection c's current
 * message to o (the stream's output buffer, or a scratch buffer when the
 * size must be known first, as for BDAT): X-Mta-Load-Sent, the --header
 * lines, and without --template From/To/Subject/Message-ID; and point
 * c->body, c->bodylen at the rest: the shared filler, or the template
 * rendered for this message (dot-stuffed, CRLF). Returns the header
 * bytes appended, or -1 when they did not fit o.
 */
long load_msg_render(struct load_conn *c, struct buf *o);

/* load_stats.c: latencies and the report */

/* One accepted message's latency, in microseconds. */
void load_lat_add(struct load_thread *t, uint64_t us);

/* Approximate percentile p of every latency so far, in ms (0: none). */
double load_hist_pct(double p);

/* The final report on stdout (--json: one line). */
void load_report(struct load_thread *ts, double elapsed);

/* --interval: one time-series line on stdout for the seconds since the
 * last one (main thread only; --json: a JSON object). */
void load_series_line(double t_s);

#endif
