/* SPDX-License-Identifier: ISC */
/*
 * load.c - mta-load: an SMTP load generator.
 *
 * DESIGN. T threads, each with its own uring loop, drive C/T client
 * connections. A connection runs one transaction after another: MAIL,
 * every RCPT and DATA in one write when the server offers PIPELINING (one
 * command per round trip otherwise), then the message and the dot, then
 * either the next MAIL on the same connection (reuse) or QUIT and a new
 * connection (--new-conn). Replies are read with the shared parser
 * (smtp_reply.h), matched to commands in order as RFC 2920 requires.
 *
 * Closed loop (default): every connection starts its next message as
 * soon as the last one ends. Open loop (--rate R): messages are due at
 * fixed intervals whether or not the server keeps up, and a message's
 * latency counts from when it was due, not from when a connection was
 * free, so a slow server cannot hide its queueing (no coordinated
 * omission).
 *
 * Every message carries a unique Message-ID and an X-Mta-Load-Sent header
 * (epoch seconds, microseconds), which mta-sink records, so end-to-end
 * latency through a relay can be measured. Latencies are kept per
 * transaction in microseconds; the report gives p50/p90/p99/p99.9/max.
 *
 * A connection is a stream (net/stream.h): the socket, the connect, TLS
 * and the close are the stream's; this file keeps the client dialogue,
 * the pacing and the statistics. With --starttls a connection says
 * EHLO, STARTTLS, lets the stream run the client handshake, then EHLO
 * again, AUTH and the transactions. There is no certificate check (a
 * load tool, not a delivery). Each thread keeps the newest TLS session
 * and offers it on its next handshake, so --new-conn
 * measures resumptions, as an MTA with a session cache would do them
 * (--no-tls-resume: a full handshake every time).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"
#include "net/stream.h"
#include "net/tls.h"
#include "net/uring.h"

#define LOAD_MAX_DOMAINS 16
#define LOAD_MAX_RCPTS   1000
#define LOAD_CODES       600

struct load_opts {
	struct config_addr server;
	unsigned conns, threads, rcpts;
	uint64_t messages; /* 0 = until duration */
	double duration;   /* seconds; 0 = until messages */
	size_t size;       /* approximate message size, bytes */
	bool new_conn, pipelining, json, quiet;
	bool starttls, tls_resume;
	char host[INET6_ADDRSTRLEN]; /* the server's address, for TLS */
	double rate;                 /* messages/s; 0 = closed loop */
	const char *from;
	const char *auth; /* "user:pass" for AUTH PLAIN */
	const char *ehlo;
	char *domains[LOAD_MAX_DOMAINS];
	unsigned weights[LOAD_MAX_DOMAINS];
	unsigned ndomains, wsum;
};

static struct load_opts opt = {
    .conns = 10,
    .threads = 1,
    .rcpts = 1,
    .size = 1024,
    .pipelining = true,
    .from = "load@mta-load.test",
    .ehlo = "mta-load",
    .tls_resume = true,
};

/* Shared progress: atomics, read by the display. */
static atomic_ulong g_started, g_accepted, g_refused, g_errors;
static atomic_ulong g_tls, g_tls_resumed;     /* handshakes done, resumed */
static atomic_ulong g_setup_ok, g_setup_fail; /* connections through setup */
static atomic_bool g_stop;
static struct tls_ctx *g_tls_ctx; /* --starttls; read-only in threads */
static uint64_t g_t0_us;
static char *g_body; /* filler shared by every message */
static size_t g_bodylen;
static int g_pid; /* in every Message-ID */

struct load_thread;

enum conn_state {
	CS_CONNECT,
	CS_GREETING,
	CS_EHLO,
	CS_STARTTLS,
	CS_HANDSHAKE,
	CS_AUTH,
	CS_RSET,
	CS_IDLE,
	CS_TXN,
	CS_DATA_REPLY,
	CS_QUIT,
	CS_DONE,
};

struct conn {
	struct load_thread *t;
	struct stream s; /* open from conn_start() until `closed` */
	enum conn_state state;
	struct smtp_reply_parser rp;
	bool pipelining; /* negotiated */
	size_t body_off; /* of g_body queued; past the end: the dot too */
	/* the transaction */
	unsigned expect;    /* replies still expected before the 354 */
	unsigned sent_cmds; /* commands sent one at a time (no pipelining) */
	int mail_code, first_bad;
	unsigned rcpt_ok;
	uint64_t txn_start_us;
	uint64_t seq;
	bool dead; /* we are closing it: nothing more counts */
};

struct load_thread {
	pthread_t tid;
	unsigned idx;
	struct uring_loop *loop;
	struct conn *conns;
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

static uint32_t
rng_next(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x ? x : 0x9e3779b9u;
}

static void conn_start(struct conn *c);
static void conn_next(struct conn *c);

static const char *
pick_domain(struct load_thread *t)
{
	unsigned r = rng_next(&t->rng) % opt.wsum;

	for (unsigned i = 0; i < opt.ndomains; i++) {
		if (r < opt.weights[i])
			return opt.domains[i];
		r -= opt.weights[i];
	}
	return opt.domains[0];
}

/* Live latency for the progress line: a histogram of atomics, 8 buckets
 * per power of two of microseconds (within 9% of the true value), that
 * every thread adds to and the display reads without stopping anyone.
 * The final report uses the exact per-thread samples instead. */
#define HIST_SUB 8
#define HIST_N   (64 * HIST_SUB)
static atomic_ulong g_hist[HIST_N];

static unsigned
hist_bucket(uint64_t us)
{
	unsigned e, sub;

	if (us < HIST_SUB)
		return (unsigned)us;
	e = 63u - (unsigned)__builtin_clzll(us);
	sub = (unsigned)((us >> (e - 3)) & (HIST_SUB - 1));
	return (e - 2) * HIST_SUB + sub;
}

/* The upper edge of a bucket, in microseconds. */
static double
hist_edge(unsigned b)
{
	unsigned e = b / HIST_SUB + 2, sub = b % HIST_SUB;

	if (b < HIST_SUB)
		return b + 1;
	return (double)(HIST_SUB + sub + 1) * (double)(1ull << (e - 3));
}

/* Approximate percentile p of everything so far, in ms; 0 when empty. */
static double
hist_pct(double p)
{
	unsigned long n = 0, seen = 0, want;

	for (unsigned b = 0; b < HIST_N; b++)
		n += atomic_load_explicit(&g_hist[b], memory_order_relaxed);
	if (n == 0)
		return 0;
	want = (unsigned long)((double)n * p / 100.0);
	for (unsigned b = 0; b < HIST_N; b++) {
		seen += atomic_load_explicit(&g_hist[b], memory_order_relaxed);
		if (seen > want)
			return hist_edge(b) / 1000.0;
	}
	return hist_edge(HIST_N - 1) / 1000.0;
}

static void
lat_add(struct load_thread *t, uint64_t us)
{
	atomic_fetch_add_explicit(
	    &g_hist[hist_bucket(us)], 1, memory_order_relaxed);
	if (t->nlat == t->caplat) {
		t->caplat = t->caplat ? t->caplat * 2 : 4096;
		t->lat = xreallocarray(t->lat, t->caplat, sizeof(*t->lat));
	}
	t->lat[t->nlat++] = us;
}

/* Send what is queued (also from outside a stream callback). */
static void
conn_send(struct conn *c)
{
	stream_flush(&c->s);
}

/* Commands are small: they always fit the stream's buffer. */
static void
conn_send_str(struct conn *c, const char *s)
{
	if (stream_write(&c->s, s, strlen(s)) != 0)
		abort();
	conn_send(c);
}

/* Tear the connection down; `closed` then starts the next one. */
static void
conn_drop(struct conn *c, bool error)
{
	if (error && !c->dead)
		atomic_fetch_add(&g_errors, 1);
	c->dead = true;
	stream_close(&c->s, "drop", STREAM_CLOSE_ABORT);
}

/*
 * The connection failed before its first transaction (greeting, EHLO,
 * STARTTLS, handshake, AUTH): an error, and the connection starts over,
 * as a real client would. But when every connection has failed so and
 * none ever got through, the server will not take this load at all (no
 * STARTTLS, wrong password): stop the run rather than spin until
 * --messages that can never be reached.
 */
static void
conn_setup_failed(struct conn *c, const char *why)
{
	if (atomic_fetch_add(&g_setup_fail, 1) + 1 >= opt.conns &&
	    atomic_load(&g_setup_ok) == 0 && !atomic_exchange(&g_stop, true))
		fprintf(stderr,
		    "mta-load: no connection got through setup "
		    "(last: %s); stopping\n",
		    why);
	conn_drop(c, true);
}

/* No more messages will be started by this thread. */
static bool
thread_finished(const struct load_thread *t)
{
	if (atomic_load(&g_stop))
		return true;
	if (opt.rate > 0)
		return opt.messages && t->started >= t->quota && t->blen == 0;
	return t->quota && t->started >= t->quota;
}

/* Take the next message if one may start now; *due_us is when it was
 * due (open loop) or now (closed loop). */
static bool
take_message(struct load_thread *t, uint64_t *due_us)
{
	if (atomic_load(&g_stop))
		return false;
	if (opt.rate > 0) {
		if (t->blen == 0)
			return false;
		*due_us = t->backlog[t->bhead];
		t->bhead = (t->bhead + 1) % t->bcap;
		t->blen--;
		return true;
	}
	if (t->quota && t->started >= t->quota)
		return false;
	t->started++;
	*due_us = clock_wall_us();
	return true;
}

/* MAIL, RCPT..., DATA: commands [first, first + count). */
static void
txn_commands(struct conn *c, unsigned first, unsigned count)
{
	for (unsigned i = first; i < first + count; i++) {
		int r;

		if (i == 0)
			r = buf_appendf(stream_outbuf(&c->s),
			    "MAIL FROM:<%s>\r\n", opt.from);
		else if (i <= opt.rcpts)
			r = buf_appendf(stream_outbuf(&c->s),
			    "RCPT TO:<u%u.%" PRIu64 "@%s>\r\n", i, c->seq,
			    pick_domain(c->t));
		else
			r = buf_append(stream_outbuf(&c->s), "DATA\r\n", 6);
		if (r != 0)
			abort();
	}
}

static void
txn_begin(struct conn *c, uint64_t due_us)
{
	struct load_thread *t = c->t;

	atomic_fetch_add(&g_started, 1);
	c->seq = ((uint64_t)t->idx << 56) | ((uint64_t)(c - t->conns) << 36) |
	         ((c->seq & 0xfffffffffULL) + 1);
	c->txn_start_us = due_us;
	c->state = CS_TXN;
	c->mail_code = 0;
	c->first_bad = 0;
	c->rcpt_ok = 0;
	c->sent_cmds = 0;
	c->expect = c->pipelining ? opt.rcpts + 2 : 1;
	txn_commands(c, 0, c->expect);
	conn_send(c);
}

/* After EHLO or a finished transaction: the next message, idle, or QUIT. */
static void
conn_next(struct conn *c)
{
	uint64_t due;

	if (take_message(c->t, &due)) {
		txn_begin(c, due);
	} else if (thread_finished(c->t)) {
		c->state = CS_QUIT;
		conn_send_str(c, "QUIT\r\n");
	} else {
		c->state = CS_IDLE; /* open loop: the ticker wakes it */
	}
}

/* Queue what fits of the body, then the dot; `drained` calls again for
 * the rest of a body larger than the stream's buffer. */
static void
body_fill(struct conn *c)
{
	struct buf *o = stream_outbuf(&c->s);
	size_t room = STREAM_OUT_MAX - buf_avail(o), k;

	if (c->body_off > g_bodylen)
		return;
	k = g_bodylen - c->body_off;
	if (k > room)
		k = room;
	if (buf_append(o, g_body + c->body_off, k) != 0)
		abort();
	c->body_off += k;
	if (c->body_off == g_bodylen && room - k >= 3) {
		if (buf_append(o, ".\r\n", 3) != 0)
			abort();
		c->body_off++;
	}
	conn_send(c);
}

static void
message_send(struct conn *c)
{
	struct buf *o = stream_outbuf(&c->s);
	char hdr[1024];
	int n;

	n = snprintf(hdr, sizeof(hdr),
	    "From: <%s>\r\nTo: <u1.%" PRIu64 "@%s>\r\n"
	    "Subject: mta-load message %" PRIu64 "\r\n"
	    "Message-ID: <%" PRIx64 ".%d@mta-load>\r\n"
	    "X-Mta-Load-Sent: %" PRIu64 ".%06u\r\n\r\n",
	    opt.from, c->seq, opt.domains[0], c->seq, c->seq, g_pid,
	    c->txn_start_us / 1000000, (unsigned)(c->txn_start_us % 1000000));
	/* one allocation for the whole message when it fits */
	if (buf_avail(o) + (size_t)n + g_bodylen + 3 <= STREAM_OUT_MAX)
		(void)buf_reserve(o, (size_t)n + g_bodylen + 3);
	if (buf_append(o, hdr, (size_t)n) != 0)
		abort();
	c->state = CS_DATA_REPLY;
	c->body_off = 0;
	body_fill(c);
}

static void
txn_end(struct conn *c, int code)
{
	struct load_thread *t = c->t;

	t->codes[code % LOAD_CODES]++;
	if (code >= 200 && code < 300) {
		atomic_fetch_add(&g_accepted, 1);
		lat_add(t, clock_wall_us() - c->txn_start_us);
	} else {
		atomic_fetch_add(&g_refused, 1);
	}
	if (opt.new_conn) {
		c->state = CS_QUIT;
		conn_send_str(c, "QUIT\r\n");
	} else if (code >= 300) {
		c->state = CS_RSET; /* a refused transaction: reset first */
		conn_send_str(c, "RSET\r\n");
	} else {
		conn_next(c);
	}
}

/* One reply during a transaction, matched to its command in order. */
static void
txn_reply(struct conn *c, const struct smtp_reply *r)
{
	unsigned idx = c->pipelining ? opt.rcpts + 2 - c->expect : c->sent_cmds;

	c->expect--;
	if (idx == 0) {
		c->mail_code = r->code;
	} else if (idx <= opt.rcpts) {
		if (r->code / 100 == 2)
			c->rcpt_ok++;
		else if (!c->first_bad)
			c->first_bad = r->code;
	} else if (r->code == 354) {
		if (c->mail_code / 100 == 2 && c->rcpt_ok) {
			message_send(c);
		} else {
			/* DATA accepted without recipients: end it empty */
			c->state = CS_DATA_REPLY;
			conn_send_str(c, ".\r\n");
		}
		return;
	} else {
		txn_end(c, c->mail_code / 100 != 2 ? c->mail_code
		           : c->first_bad          ? c->first_bad
		                                   : r->code);
		return;
	}
	if (c->pipelining)
		return;
	/* one command at a time; stop early when MAIL failed */
	if (idx == 0 && r->code / 100 != 2) {
		txn_end(c, r->code);
		return;
	}
	c->sent_cmds++;
	txn_commands(c, c->sent_cmds, 1);
	c->expect = 1;
	conn_send(c);
}

static void
auth_send(struct conn *c)
{
	char raw[512], b64[(sizeof(raw) + 2) / 3 * 4 + 1];
	const char *colon = strchr(opt.auth, ':');
	size_t ul = colon ? (size_t)(colon - opt.auth) : strlen(opt.auth);
	int n;

	n = snprintf(raw, sizeof(raw), "%c%.*s%c%s", 0, (int)ul, opt.auth, 0,
	    colon ? colon + 1 : "");
	if (n < 0 || (size_t)n >= sizeof(raw)) {
		fprintf(stderr, "mta-load: --auth is too long\n");
		exit(2);
	}
	smtp_parse_base64_encode((const uint8_t *)raw, (size_t)n, b64);
	if (buf_appendf(stream_outbuf(&c->s), "AUTH PLAIN %s\r\n", b64) != 0)
		abort();
	c->state = CS_AUTH;
	conn_send(c);
}

/* The 220 to STARTTLS: the stream drops what followed it and runs the
 * client handshake; `tls_done` says how it went. */
static void
conn_tls_start(struct conn *c)
{
	struct stream_tls t = {
	    .ctx = g_tls_ctx,
	    .client = true,
	    .host = opt.host,
	    .policy = CONFIG_TLS_MAY,
	    .resume = opt.tls_resume ? c->t->sess : NULL,
	};

	c->state = CS_HANDSHAKE;
	smtp_reply_reset(&c->rp);
	stream_start_tls(&c->s, &t);
}

/* The handshake is done: EHLO again, over TLS (RFC 3207). */
static void
conn_tls_up(struct conn *c)
{
	struct tls_info ti;

	stream_tls_info(&c->s, &ti);
	atomic_fetch_add(&g_tls, 1);
	if (ti.reused)
		atomic_fetch_add(&g_tls_resumed, 1);
	if (buf_appendf(stream_outbuf(&c->s), "EHLO %s\r\n", opt.ehlo) != 0)
		abort();
	c->state = CS_EHLO;
	conn_send(c);
}

/* Keep the newest session for the thread's next handshake. By the EHLO
 * reply a TLS 1.3 server's tickets have arrived (it sends them first). */
static void
conn_tls_keep_session(struct conn *c)
{
	struct tls_session *s;

	if (!opt.tls_resume || (s = stream_tls_session_take(&c->s)) == NULL)
		return;
	tls_session_free(c->t->sess);
	c->t->sess = s;
}

/* EHLO (and AUTH) done: the connection is ready for transactions. */
static void
conn_setup_done(struct conn *c)
{
	atomic_fetch_add(&g_setup_ok, 1);
	conn_next(c);
}

static void
on_reply(struct conn *c, const struct smtp_reply *r)
{
	struct smtp_ehlo e;

	switch (c->state) {
	case CS_GREETING:
		if (r->code != 220) {
			c->t->codes[r->code % LOAD_CODES]++;
			conn_setup_failed(c, "greeting refused");
			return;
		}
		if (buf_appendf(
		        stream_outbuf(&c->s), "EHLO %s\r\n", opt.ehlo) != 0)
			abort();
		c->state = CS_EHLO;
		conn_send(c);
		return;
	case CS_EHLO:
		if (r->code != 250) {
			conn_setup_failed(c, "EHLO refused");
			return;
		}
		smtp_ehlo_parse(r, &e);
		if (opt.starttls && !stream_tls_on(&c->s)) {
			if (!e.starttls) {
				conn_setup_failed(c, "STARTTLS not offered");
				return;
			}
			c->state = CS_STARTTLS;
			conn_send_str(c, "STARTTLS\r\n");
			return;
		}
		if (stream_tls_on(&c->s))
			conn_tls_keep_session(c);
		c->pipelining = opt.pipelining && e.pipelining;
		if (opt.auth)
			auth_send(c);
		else
			conn_setup_done(c);
		return;
	case CS_STARTTLS:
		if (r->code != 220) {
			conn_setup_failed(c, "STARTTLS refused");
			return;
		}
		conn_tls_start(c);
		return;
	case CS_AUTH:
		if (r->code != 235) {
			c->t->codes[r->code % LOAD_CODES]++;
			conn_setup_failed(c, "AUTH refused");
			return;
		}
		conn_setup_done(c);
		return;
	case CS_RSET:
		conn_next(c);
		return;
	case CS_TXN:
		txn_reply(c, r);
		return;
	case CS_DATA_REPLY:
		txn_end(c, c->rcpt_ok     ? r->code
		           : c->first_bad ? c->first_bad
		                          : r->code);
		return;
	case CS_QUIT:
		conn_drop(c, false);
		return;
	default:
		conn_drop(c, true); /* a reply nobody asked for */
		return;
	}
}

/* Plaintext replies (decrypted with TLS), matched in order. Stops at
 * the 220 to STARTTLS: the stream drops what came after it (RFC 3207). */
static size_t
on_input(struct stream *s, void *user, const uint8_t *p, size_t n)
{
	struct conn *c = user;
	size_t off = 0, used;

	(void)s;
	while (off < n && !c->dead && c->state != CS_HANDSHAKE) {
		int r = smtp_reply_parse(&c->rp, p + off, n - off, &used);

		off += used;
		if (r < 0)
			conn_drop(c, true);
		else if (r == 1)
			on_reply(c, smtp_reply_peek(&c->rp));
	}
	return n;
}

static void
on_connected(struct stream *s, void *user, int res)
{
	struct conn *c = user;

	if (res < 0) {
		/* the stream closes; `closed` retries until the run's
		 * limit stops it */
		atomic_fetch_add(&g_errors, 1);
		c->dead = true;
		return;
	}
	(void)stream_set_nodelay(s);
	c->state = CS_GREETING;
}

static void
on_tls_done(struct stream *s, void *user, const char *err)
{
	struct conn *c = user;

	(void)s;
	if (c->dead)
		return;
	if (err == NULL)
		conn_tls_up(c); /* the EHLO goes with the Finished */
	else if (c->state == CS_HANDSHAKE)
		conn_setup_failed(c, err);
	else
		conn_drop(c, c->state != CS_QUIT);
}

/* The rest of a large body. */
static void
on_drained(struct stream *s, void *user)
{
	struct conn *c = user;

	(void)s;
	if (!c->dead && c->state == CS_DATA_REPLY && c->body_off <= g_bodylen)
		body_fill(c);
}

/* Closed by us, or by the peer, EOF or error: fine after QUIT, an error
 * otherwise. Then the next connection. */
static void
on_closed(struct stream *s, void *user, const char *reason)
{
	struct conn *c = user;

	(void)s, (void)reason;
	if (!c->dead && c->state != CS_QUIT)
		atomic_fetch_add(&g_errors, 1);
	conn_start(c);
}

static const struct stream_cbs load_cbs = {
    .input = on_input,
    .drained = on_drained,
    .tls_done = on_tls_done,
    .connected = on_connected,
    .closed = on_closed,
};

/* (Re)open a connection, or retire it when the thread has no more work. */
static void
conn_start(struct conn *c)
{
	struct load_thread *t = c->t;
	int r;

	smtp_reply_reset(&c->rp);
	c->dead = false;
	c->pipelining = false;
	if (thread_finished(t)) {
		if (c->state != CS_DONE) {
			c->state = CS_DONE;
			if (--t->live == 0)
				t->end_us = clock_wall_us();
		}
		return;
	}
	c->state = CS_CONNECT;
	r = stream_connect(&c->s, t->loop,
	    (const struct sockaddr *)&opt.server.ss, opt.server.sslen, 0,
	    &load_cbs, c);
	if (r < 0) {
		fprintf(stderr, "mta-load: socket: %s\n", strerror(-r));
		exit(1);
	}
}

static void
backlog_push(struct load_thread *t, uint64_t due)
{
	if (t->blen == t->bcap) {
		size_t ncap = t->bcap ? t->bcap * 2 : 1024;
		uint64_t *nb = xcalloc(ncap, sizeof(*nb));

		for (size_t i = 0; i < t->blen; i++)
			nb[i] = t->backlog[(t->bhead + i) % t->bcap];
		free(t->backlog);
		t->backlog = nb;
		t->bcap = ncap;
		t->bhead = 0;
	}
	t->backlog[(t->bhead + t->blen++) % t->bcap] = due;
}

static void
on_tick(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct load_thread *t =
	    uring_container_of(op, struct load_thread, tick);
	uint64_t now = clock_wall_us();

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	if (opt.duration > 0 && (double)(now - g_t0_us) / 1e6 >= opt.duration)
		atomic_store(&g_stop, true);
	if (opt.rate > 0) {
		while (!atomic_load(&g_stop) && t->next_due_us <= now &&
		       (!opt.messages || t->started < t->quota)) {
			backlog_push(t, t->next_due_us);
			t->next_due_us += t->interval_us;
			t->started++;
		}
	}
	/* idle connections take due messages, or quit when all is done */
	for (unsigned i = 0; i < t->nconns; i++)
		if (t->conns[i].state == CS_IDLE &&
		    (t->blen || thread_finished(t)))
			conn_next(&t->conns[i]);
	if (t->live == 0) {
		uring_loop_stop(t->loop);
		return;
	}
	uring_timeout(t->loop, &t->tick, opt.rate > 0 ? 1 : 100);
}

static void *
thread_main(void *arg)
{
	struct load_thread *t = arg;
	char err[256];

	if (uring_loop_new(NULL, &t->loop, err, sizeof(err)) != 0) {
		fprintf(stderr, "mta-load: %s\n", err);
		exit(1);
	}
	t->rng = 0x12345u + t->idx * 7919u;
	t->next_due_us = g_t0_us;
	uring_op_init(&t->tick, on_tick);
	t->live = t->nconns;
	for (unsigned i = 0; i < t->nconns; i++) {
		struct conn *c = &t->conns[i];

		c->t = t;
		smtp_reply_init(&c->rp);
		conn_start(c);
	}
	uring_timeout(t->loop, &t->tick, 1);
	if (uring_loop_run(t->loop) != 0)
		fprintf(stderr, "mta-load: event loop failed\n");
	if (t->end_us == 0)
		t->end_us = clock_wall_us();
	/* every connection is DONE: its stream is closed */
	for (unsigned i = 0; i < t->nconns; i++)
		smtp_reply_fini(&t->conns[i].rp);
	tls_session_free(t->sess);
	uring_loop_free(t->loop);
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)ceil(p / 100.0 * (double)n);
	return (double)v[i ? i - 1 : 0] / 1000.0; /* ms */
}

static void
report(struct load_thread *ts, double elapsed)
{
	unsigned long codes[LOAD_CODES] = {0};
	uint64_t *all = NULL;
	size_t n = 0;
	unsigned long acc = atomic_load(&g_accepted);
	double rate = elapsed > 0 ? (double)acc / elapsed : 0;
	bool first = true;

	for (unsigned i = 0; i < opt.threads; i++) {
		all = xreallocarray(all, n + ts[i].nlat + 1, sizeof(*all));
		if (ts[i].nlat) /* lat is NULL until a message is accepted */
			memcpy(all + n, ts[i].lat, ts[i].nlat * sizeof(*all));
		n += ts[i].nlat;
		for (int k = 0; k < LOAD_CODES; k++)
			codes[k] += ts[i].codes[k];
	}
	qsort(all, n, sizeof(*all), cmp_u64);
	if (opt.json) {
		printf("{\"attempted\":%lu,\"accepted\":%lu,\"refused\":%lu,"
		       "\"errors\":%lu,\"elapsed_s\":%.3f,\"msgs_per_s\":%.1f,"
		       "\"msgs_per_hour\":%.0f,\"latency_ms\":{\"p50\":%.3f,"
		       "\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f},"
		       "\"codes\":{",
		    atomic_load(&g_started), acc, atomic_load(&g_refused),
		    atomic_load(&g_errors), elapsed, rate, rate * 3600,
		    pct(all, n, 50), pct(all, n, 90), pct(all, n, 99),
		    pct(all, n, 99.9), n ? (double)all[n - 1] / 1000.0 : 0);
		for (int k = 0; k < LOAD_CODES; k++)
			if (codes[k]) {
				printf("%s\"%d\":%lu", first ? "" : ",", k,
				    codes[k]);
				first = false;
			}
		printf("}");
		if (opt.starttls)
			printf(",\"tls\":{\"handshakes\":%lu,\"resumed\":%lu}",
			    atomic_load(&g_tls), atomic_load(&g_tls_resumed));
		printf("}\n");
	} else {
		printf("attempted   %lu\naccepted    %lu\nrefused     %lu\n"
		       "errors      %lu\nelapsed     %.3f s\n"
		       "rate        %.1f msgs/s (%.0f msgs/hour)\n"
		       "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
		       "max %.3f\n",
		    atomic_load(&g_started), acc, atomic_load(&g_refused),
		    atomic_load(&g_errors), elapsed, rate, rate * 3600,
		    pct(all, n, 50), pct(all, n, 90), pct(all, n, 99),
		    pct(all, n, 99.9), n ? (double)all[n - 1] / 1000.0 : 0);
		if (opt.starttls)
			printf("tls         %lu handshakes, %lu resumed\n",
			    atomic_load(&g_tls), atomic_load(&g_tls_resumed));
		printf("replies    ");
		for (int k = 0; k < LOAD_CODES; k++)
			if (codes[k])
				printf(" %d:%lu", k, codes[k]);
		printf("\n");
	}
	free(all);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta-load --server ADDR:PORT [options]\n"
	    "  --connections N     concurrent connections (default 10)\n"
	    "  --threads N         event-loop threads (default 1)\n"
	    "  --messages N        total messages (default 1000 unless "
	    "--duration)\n"
	    "  --duration SECS     run for this long\n"
	    "  --rcpts N           recipients per message (default 1)\n"
	    "  --domains LIST      recipient domains, weighted: "
	    "a.test:3,b.test:1\n"
	    "  --size BYTES        message size (default 1024)\n"
	    "  --new-conn          a new connection per message (default: "
	    "reuse)\n"
	    "  --no-pipelining     one command per round trip\n"
	    "  --rate N            open loop: N messages/s (default: closed "
	    "loop)\n"
	    "  --from ADDR         envelope sender\n"
	    "  --auth USER:PASS    AUTH PLAIN after EHLO\n"
	    "  --starttls          STARTTLS after EHLO (an error when not "
	    "offered),\n"
	    "                      no certificate check, then EHLO again\n"
	    "  --no-tls-resume     a full handshake every time (default: "
	    "resume\n"
	    "                      the thread's last session)\n"
	    "  --json              machine-readable final report\n"
	    "  --quiet             no live progress line\n");
}

static void
parse_domains(char *list)
{
	char *save = NULL;

	opt.ndomains = opt.wsum = 0;
	for (char *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		unsigned w = 1;

		if (opt.ndomains == LOAD_MAX_DOMAINS)
			break;
		if (colon) {
			*colon = '\0';
			w = (unsigned)strtoul(colon + 1, NULL, 10);
		}
		if (w == 0)
			continue;
		opt.domains[opt.ndomains] = tok;
		opt.weights[opt.ndomains++] = w;
		opt.wsum += w;
	}
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"server", required_argument, NULL, 's'},
	    {"connections", required_argument, NULL, 'c'},
	    {"threads", required_argument, NULL, 't'},
	    {"messages", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'},
	    {"rcpts", required_argument, NULL, 'r'},
	    {"domains", required_argument, NULL, 'D'},
	    {"size", required_argument, NULL, 'z'},
	    {"new-conn", no_argument, NULL, 'N'},
	    {"no-pipelining", no_argument, NULL, 'P'},
	    {"rate", required_argument, NULL, 'R'},
	    {"from", required_argument, NULL, 'f'},
	    {"auth", required_argument, NULL, 'a'},
	    {"starttls", no_argument, NULL, 'T'},
	    {"no-tls-resume", no_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static char default_domains[] = "example.test";
	bool have_server = false;
	int ch;

	parse_domains(default_domains);
	while ((ch = getopt_long(argc, argv, "s:c:n:d:r:jq", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (config_parse_endpoint(optarg, &opt.server)) {
				fprintf(stderr, "mta-load: bad --server %s\n",
				    optarg);
				exit(2);
			}
			have_server = true;
			break;
		case 'c':
			opt.conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			opt.threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			opt.messages = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			opt.duration = strtod(optarg, NULL);
			break;
		case 'r':
			opt.rcpts = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'D':
			parse_domains(optarg);
			break;
		case 'z':
			opt.size = strtoull(optarg, NULL, 10);
			break;
		case 'N':
			opt.new_conn = true;
			break;
		case 'P':
			opt.pipelining = false;
			break;
		case 'R':
			opt.rate = strtod(optarg, NULL);
			break;
		case 'f':
			opt.from = optarg;
			break;
		case 'a':
			opt.auth = optarg;
			break;
		case 'T':
			opt.starttls = true;
			break;
		case 'S':
			opt.tls_resume = false;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!have_server || optind < argc || opt.ndomains == 0) {
		usage(stderr);
		exit(2);
	}
	if (opt.conns == 0 || opt.conns > 100000 || opt.threads == 0 ||
	    opt.threads > 64 || opt.rcpts == 0 || opt.rcpts > LOAD_MAX_RCPTS ||
	    opt.size > (1u << 30) || opt.rate < 0 || opt.duration < 0) {
		fprintf(stderr, "mta-load: an option is out of range\n");
		exit(2);
	}
	if (opt.messages == 0 && opt.duration == 0)
		opt.messages = 1000;
	inet_ntop(opt.server.ss.ss_family,
	    opt.server.ss.ss_family == AF_INET
	        ? (const void *)&((const struct sockaddr_in *)&opt.server.ss)
	              ->sin_addr
	        : (const void *)&((const struct sockaddr_in6 *)&opt.server.ss)
	              ->sin6_addr,
	    opt.host, sizeof(opt.host));
	if (opt.threads > opt.conns)
		opt.threads = opt.conns;
}

/* The shared body: filler lines of 76 characters up to about opt.size. */
static void
body_make(void)
{
	size_t line = 78, n = opt.size > 300 ? (opt.size - 300) / line : 1;

	if (n == 0)
		n = 1;
	g_bodylen = n * line;
	g_body = xmalloc(g_bodylen + 1);
	for (size_t i = 0; i < n; i++) {
		char *l = g_body + i * line;

		for (size_t k = 0; k < line - 2; k++)
			l[k] = (char)('a' + (i + k) % 26);
		l[line - 2] = '\r';
		l[line - 1] = '\n';
	}
}

/* Share the connections and messages out, and start the threads. */
static struct load_thread *
threads_start(void)
{
	struct load_thread *ts = xcalloc(opt.threads, sizeof(*ts));

	for (unsigned i = 0; i < opt.threads; i++) {
		struct load_thread *t = &ts[i];

		t->idx = i;
		t->nconns =
		    opt.conns / opt.threads + (i < opt.conns % opt.threads);
		t->conns = xcalloc(t->nconns, sizeof(*t->conns));
		if (opt.messages)
			t->quota = opt.messages / opt.threads +
			           (i < opt.messages % opt.threads);
		if (opt.rate > 0)
			t->interval_us =
			    (uint64_t)(1e6 * opt.threads / opt.rate);
		if (t->interval_us == 0)
			t->interval_us = 1;
		if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
			fprintf(stderr, "mta-load: cannot start thread\n");
			exit(1);
		}
	}
	return ts;
}

/* Until every thread has retired its connections; a progress line on a
 * tty. Returns whether it printed one. */
static bool
progress_wait(const struct load_thread *ts)
{
	bool live = !opt.quiet && !opt.json && isatty(STDERR_FILENO);

	for (;;) {
		struct timespec ts1 = {0, 200 * 1000 * 1000};
		bool running = false;

		nanosleep(&ts1, NULL);
		for (unsigned i = 0; i < opt.threads; i++)
			running |= atomic_load(&ts[i].live) != 0;
		if (live) {
			double el = (double)(clock_wall_us() - g_t0_us) / 1e6;

			fprintf(stderr,
			    "\r%8lu accepted %8.0f msgs/s %6lu "
			    "errors %6lu refused  p99 %.2f ms   ",
			    atomic_load(&g_accepted),
			    el > 0 ? (double)atomic_load(&g_accepted) / el : 0,
			    atomic_load(&g_errors), atomic_load(&g_refused),
			    hist_pct(99));
		}
		if (!running)
			return live;
	}
}

int
main(int argc, char **argv)
{
	struct load_thread *ts;
	bool live;
	uint64_t end_us;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (opt.starttls) {
		char err[256];

		/* no trust anchors are needed: policy "may" checks nothing */
		if (tls_ctx_client_new(NULL, &g_tls_ctx, err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "mta-load: %s\n", err);
			return 1;
		}
	}
	body_make();
	g_pid = (int)getpid();
	g_t0_us = clock_wall_us();
	ts = threads_start();
	live = progress_wait(ts);
	/* The run ends when the last thread does, not when the wait, which
	 * polls every 200 ms, noticed it. */
	end_us = g_t0_us;
	for (unsigned i = 0; i < opt.threads; i++) {
		pthread_join(ts[i].tid, NULL);
		if (ts[i].end_us > end_us)
			end_us = ts[i].end_us;
	}
	if (live)
		fputc('\n', stderr);
	report(ts, (double)(end_us - g_t0_us) / 1e6);
	for (unsigned i = 0; i < opt.threads; i++) {
		free(ts[i].conns);
		free(ts[i].lat);
		free(ts[i].backlog);
	}
	free(ts);
	free(g_body);
	tls_ctx_free(g_tls_ctx);
	return atomic_load(&g_errors) && !atomic_load(&g_accepted) ? 1 : 0;
}
