/* SPDX-License-Identifier: ISC */
/*
 * load_conn.c - one mta-load client connection: greeting, EHLO,
 * STARTTLS or implicit TLS, AUTH (PLAIN or LOGIN), then one transaction after another (MAIL, every RCPT
 * and DATA in one write when the server offers PIPELINING, one command
 * per round trip otherwise; the message and the dot; with --bdat, the
 * message goes as one "BDAT n LAST" in the same write), replies matched to
 * commands in order (RFC 2920) with the shared parser (smtp_reply.h).
 * The socket, the connect, TLS and the close are the stream's
 * (net/stream.h). Runs on the thread that owns the connection.
 *
 * Fail fast: the connect, the greeting (with implicit TLS, the handshake
 * and the greeting) and every reply have a timeout; a connection that
 * failed is retried after a backoff that doubles up to a second, so a
 * dead server costs a few tries a second instead of a spin; and when
 * every connection failed before its first transaction and none ever got
 * through, the run stops (load_setup_fail).
 */
#include "bench/load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/tool.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/xalloc.h"
#include "net/stream.h"
#include "net/tls.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"

static const char *
pick_domain(struct load_thread *t)
{
	unsigned r = tool_rng_next(&t->rng) % load_opt.wsum;

	for (unsigned i = 0; i < load_opt.ndomains; i++) {
		if (r < load_opt.weights[i])
			return load_opt.domains[i];
		r -= load_opt.weights[i];
	}
	return load_opt.domains[0];
}

/* Send what is queued (also from outside a stream callback). */
static void
conn_send(struct load_conn *c)
{
	stream_flush(&c->s);
}

/* Commands are small: they always fit the stream's buffer. */
static void
conn_send_str(struct load_conn *c, const char *s)
{
	if (stream_write(&c->s, s, strlen(s)) != 0)
		abort();
	conn_send(c);
}

/* Tear the connection down; `closed` then starts the next one. */
static void
conn_drop(struct load_conn *c, bool error)
{
	if (error && !c->dead) {
		atomic_fetch_add(&load_errors, 1);
		c->failed = true;
	}
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
setup_failed_count(const char *why)
{
	if (atomic_fetch_add(&load_setup_fail, 1) + 1 >= load_opt.conns &&
	    atomic_load(&load_setup_ok) == 0 &&
	    !atomic_exchange(&load_stop, true))
		fprintf(stderr,
		    "mta-load: no connection to %s got through setup "
		    "(last: %s); stopping\n",
		    load_opt.server.text, why);
}

static void
conn_setup_failed(struct load_conn *c, const char *why)
{
	setup_failed_count(why);
	conn_drop(c, true);
}

/* Between the connect and the first transaction. */
static bool
conn_in_setup(const struct load_conn *c)
{
	return c->state >= CS_GREETING && c->state <= CS_AUTH_PASS;
}

static void message_send(struct load_conn *c);

/* MAIL, RCPT..., DATA (or BDAT and the message): commands [first, first +
 * count). */
static void
txn_commands(struct load_conn *c, unsigned first, unsigned count)
{
	for (unsigned i = first; i < first + count; i++) {
		int r;

		if (i == 0)
			r = buf_appendf(stream_outbuf(&c->s),
			    "MAIL FROM:<%s>\r\n", load_opt.from);
		else if (i <= load_opt.rcpts) {
			const char *d = pick_domain(c->t);

			if (i == 1)
				c->rcpt1_domain = d;
			r = buf_appendf(stream_outbuf(&c->s),
			    "RCPT TO:<u%u.%" PRIu64 "@%s>\r\n", i, c->seq, d);
		} else if (c->bdat) {
			message_send(c);
			r = 0;
		} else
			r = buf_append(stream_outbuf(&c->s), "DATA\r\n", 6);
		if (r != 0)
			abort();
	}
}

static void
txn_begin(struct load_conn *c, uint64_t due_us)
{
	struct load_thread *t = c->t;

	c->msgno = atomic_fetch_add(&load_started, 1) + 1;
	atomic_store_explicit(
	    &load_last_start_us, clock_wall_us(), memory_order_relaxed);
	c->seq = ((uint64_t)t->idx << 56) | ((uint64_t)(c - t->conns) << 36) |
	         ((c->seq & 0xfffffffffULL) + 1);
	c->txn_start_us = due_us;
	c->state = CS_TXN;
	c->mail_code = 0;
	c->first_bad = 0;
	c->rcpt_ok = 0;
	c->sent_cmds = 0;
	c->body_off = SIZE_MAX; /* no body pending before its turn */
	c->expect = c->pipelining ? load_opt.rcpts + 2 : 1;
	txn_commands(c, 0, c->expect);
	conn_send(c);
}

/* After EHLO or a finished transaction: the next message, idle, or QUIT. */
void
load_conn_next(struct load_conn *c)
{
	uint64_t due;

	if (load_take_message(c->t, &due)) {
		txn_begin(c, due);
	} else if (load_thread_finished(c->t)) {
		c->state = CS_QUIT;
		conn_send_str(c, "QUIT\r\n");
	} else {
		c->state = CS_IDLE; /* open loop: the ticker wakes it */
	}
}

/* Queue what fits of the body, then the dot (none after BDAT); `drained`
 * calls again for the rest of a body larger than the stream's buffer. */
static void
body_fill(struct load_conn *c)
{
	struct buf *o = stream_outbuf(&c->s);
	size_t room = STREAM_OUT_MAX - buf_avail(o), k;

	if (c->body_off > c->bodylen)
		return;
	k = c->bodylen - c->body_off;
	if (k > room)
		k = room;
	if (buf_append(o, c->body + c->body_off, k) != 0)
		abort();
	c->body_off += k;
	if (c->body_off == c->bodylen && c->bdat)
		c->body_off++;
	else if (c->body_off == c->bodylen && room - k >= 3) {
		if (buf_append(o, ".\r\n", 3) != 0)
			abort();
		c->body_off++;
	}
	conn_send(c);
}

/* BDAT n LAST, then the header block: the size must be known first, so
 * the header is rendered aside. The message's reply stays the
 * transaction's (the state is not CS_DATA_REPLY). A --template body goes
 * as rendered (dot-stuffed): fine for a load, not for content checks. */
static void
bdat_header(struct load_conn *c, struct buf *o)
{
	struct buf h;
	long n;

	buf_init(&h, 64 * 1024);
	if ((n = load_msg_render(c, &h)) < 0) {
		fprintf(stderr, "mta-load: the header block does not fit\n");
		exit(2);
	}
	if (buf_appendf(o, "BDAT %zu LAST\r\n", (size_t)n + c->bodylen) != 0 ||
	    buf_append(o, buf_peek(&h), buf_avail(&h)) != 0)
		abort();
	buf_fini(&h);
}

static void
message_send(struct load_conn *c)
{
	struct buf *o = stream_outbuf(&c->s);

	/* one allocation for the whole message when it fits */
	if (buf_avail(o) + 4096 + load_bodylen + 40 <= STREAM_OUT_MAX)
		(void)buf_reserve(o, 4096 + load_bodylen + 40);
	if (c->bdat) {
		bdat_header(c, o);
	} else if (load_msg_render(c, o) < 0) {
		fprintf(stderr, "mta-load: the header block does not fit\n");
		exit(2);
	} else {
		c->state = CS_DATA_REPLY;
	}
	c->body_off = 0;
	body_fill(c);
}

static void
txn_end(struct load_conn *c, int code)
{
	struct load_thread *t = c->t;

	t->codes[code % LOAD_CODES]++;
	if (code >= 200 && code < 300) {
		atomic_fetch_add(&load_accepted, 1);
		load_lat_add(t, clock_wall_us() - c->txn_start_us);
	} else {
		atomic_fetch_add(&load_refused, 1);
	}
	if (load_opt.new_conn) {
		c->state = CS_QUIT;
		conn_send_str(c, "QUIT\r\n");
	} else if (code >= 300) {
		c->state = CS_RSET; /* a refused transaction: reset first */
		conn_send_str(c, "RSET\r\n");
	} else {
		load_conn_next(c);
	}
}

/* One reply during a transaction, matched to its command in order. */
static void
txn_reply(struct load_conn *c, const struct smtp_reply *r)
{
	unsigned idx =
	    c->pipelining ? load_opt.rcpts + 2 - c->expect : c->sent_cmds;

	c->expect--;
	if (idx == 0) {
		c->mail_code = r->code;
	} else if (idx <= load_opt.rcpts) {
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

/* base64 of (p, n) into out (room for 4 * ceil(n / 3) + 1). */
static void
b64(const char *p, size_t n, char *out)
{
	smtp_parse_base64_encode((const uint8_t *)p, n, out);
}

/* AUTH PLAIN with the initial response, or AUTH LOGIN (three steps). */
static void
auth_send(struct load_conn *c)
{
	char raw[512], enc[(sizeof(raw) + 2) / 3 * 4 + 1];
	const char *colon = strchr(load_opt.auth, ':');
	size_t ul =
	    colon ? (size_t)(colon - load_opt.auth) : strlen(load_opt.auth);
	int n;

	if (load_opt.auth_login) {
		c->state = CS_AUTH_USER;
		conn_send_str(c, "AUTH LOGIN\r\n");
		return;
	}
	n = snprintf(raw, sizeof(raw), "%c%.*s%c%s", 0, (int)ul, load_opt.auth,
	    0, colon ? colon + 1 : "");
	if (n < 0 || (size_t)n >= sizeof(raw)) {
		fprintf(stderr, "mta-load: --auth is too long\n");
		exit(2);
	}
	b64(raw, (size_t)n, enc);
	if (buf_appendf(stream_outbuf(&c->s), "AUTH PLAIN %s\r\n", enc) != 0)
		abort();
	c->state = CS_AUTH;
	conn_send(c);
}

/* AUTH LOGIN: a 334 asks for the name, then for the password. */
static void
auth_login_step(struct load_conn *c, const struct smtp_reply *r)
{
	const char *colon = strchr(load_opt.auth, ':');
	char enc[4 * 128 + 1];
	const char *p;
	size_t n;

	if (r->code != 334) {
		c->t->codes[r->code % LOAD_CODES]++;
		conn_setup_failed(c, "AUTH LOGIN refused");
		return;
	}
	if (c->state == CS_AUTH_USER) {
		p = load_opt.auth;
		n = colon ? (size_t)(colon - p) : strlen(p);
		c->state = CS_AUTH_PASS;
	} else {
		p = colon ? colon + 1 : "";
		n = strlen(p);
		c->state = CS_AUTH;
	}
	if (n > 3 * 128) {
		fprintf(stderr, "mta-load: --auth is too long\n");
		exit(2);
	}
	b64(p, n, enc);
	if (buf_appendf(stream_outbuf(&c->s), "%s\r\n", enc) != 0)
		abort();
	conn_send(c);
}

/* The 220 to STARTTLS: the stream drops what followed it and runs the
 * client handshake; `tls_done` says how it went. */
static void
conn_tls_start(struct load_conn *c)
{
	struct stream_tls t = {
	    .ctx = load_tls_ctx,
	    .client = true,
	    .host = load_opt.host,
	    .policy = CONFIG_TLS_MAY,
	    .resume = load_opt.tls_resume ? c->t->sess : NULL,
	};

	c->state = CS_HANDSHAKE;
	smtp_reply_reset(&c->rp);
	stream_start_tls(&c->s, &t);
}

/* The handshake is done: EHLO again, over TLS (RFC 3207). */
static void
conn_tls_up(struct load_conn *c)
{
	struct tls_info ti;

	stream_tls_info(&c->s, &ti);
	atomic_fetch_add(&load_tls, 1);
	if (ti.reused)
		atomic_fetch_add(&load_tls_resumed, 1);
	if (load_opt.tls) {
		c->state = CS_GREETING; /* implicit TLS: the 220 comes now */
		return;
	}
	if (buf_appendf(stream_outbuf(&c->s), "EHLO %s\r\n", load_opt.ehlo) !=
	    0)
		abort();
	c->state = CS_EHLO;
	conn_send(c);
}

/* Keep the newest session for the thread's next handshake. By the EHLO
 * reply a TLS 1.3 server's tickets have arrived (it sends them first). */
static void
conn_tls_keep_session(struct load_conn *c)
{
	struct tls_session *s;

	if (!load_opt.tls_resume ||
	    (s = stream_tls_session_take(&c->s)) == NULL)
		return;
	tls_session_free(c->t->sess);
	c->t->sess = s;
}

/* EHLO (and AUTH) done: the connection is ready for transactions. */
static void
conn_setup_done(struct load_conn *c)
{
	atomic_fetch_add(&load_setup_ok, 1);
	c->fails = 0;
	load_conn_next(c);
}

static void
on_reply(struct load_conn *c, const struct smtp_reply *r)
{
	struct smtp_ehlo e;

	switch (c->state) {
	case CS_GREETING:
		if (r->code != 220) {
			c->t->codes[r->code % LOAD_CODES]++;
			conn_setup_failed(c, "greeting refused");
			return;
		}
		if (buf_appendf(stream_outbuf(&c->s), "EHLO %s\r\n",
		        load_opt.ehlo) != 0)
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
		if (load_opt.starttls && !stream_tls_on(&c->s)) {
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
		/* the server answers: reply timeouts from now on */
		stream_set_timeouts(
		    &c->s, load_opt.reply_ms, load_opt.reply_ms);
		c->pipelining = load_opt.pipelining && e.pipelining;
		c->bdat = load_opt.bdat && e.chunking;
		if (load_opt.bdat && !e.chunking) {
			conn_setup_failed(c, "CHUNKING not offered");
			return;
		}
		if (load_opt.auth)
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
	case CS_AUTH_USER:
	case CS_AUTH_PASS:
		auth_login_step(c, r);
		return;
	case CS_RSET:
		load_conn_next(c);
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
	struct load_conn *c = user;
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
	struct load_conn *c = user;
	char why[128];

	if (res < 0) {
		/* the stream closes; `closed` retries after a backoff */
		snprintf(why, sizeof(why), "connect: %s", strerror(-res));
		atomic_fetch_add(&load_errors, 1);
		c->dead = c->failed = true;
		setup_failed_count(why);
		return;
	}
	(void)stream_set_nodelay(s);
	/* a message goes out whole (up to the stream's cap): keep room for
	 * one between messages rather than allocate it each time */
	stream_set_keep(s, 2 * (load_bodylen + 4096));
	/* the greeting (and with implicit TLS the handshake) must come */
	stream_set_timeouts(s, load_opt.greeting_ms, load_opt.reply_ms);
	c->state = CS_GREETING;
	if (load_opt.tls)
		conn_tls_start(c);
}

/* A read or write timeout: the server is silent, or does not read. */
static void
on_timeout(struct stream *s, void *user, enum stream_timer which)
{
	struct load_conn *c = user;
	char why[128];

	if (c->dead)
		return;
	if (c->state == CS_IDLE) {
		/* not waiting on the server: watch the next command */
		stream_set_timeouts(s, load_opt.reply_ms, load_opt.reply_ms);
		return;
	}
	if (which == STREAM_TMO_WRITE)
		snprintf(why, sizeof(why), "the server does not read");
	else if (c->state == CS_GREETING || c->state == CS_HANDSHAKE)
		snprintf(why, sizeof(why), "no %s within %.3g s",
		    c->state == CS_GREETING ? "greeting" : "TLS handshake",
		    (double)load_opt.greeting_ms / 1000.0);
	else
		snprintf(why, sizeof(why), "no reply within %.3g s",
		    (double)load_opt.reply_ms / 1000.0);
	if (conn_in_setup(c)) {
		conn_setup_failed(c, why);
		return;
	}
	fprintf(stderr, "mta-load: %s; dropping the connection\n", why);
	conn_drop(c, true);
}

static void
on_tls_done(struct stream *s, void *user, const char *err)
{
	struct load_conn *c = user;

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
	struct load_conn *c = user;

	(void)s;
	if (!c->dead &&
	    (c->state == CS_DATA_REPLY || (c->bdat && c->state == CS_TXN)) &&
	    c->body_off <= c->bodylen)
		body_fill(c);
}

/* Closed by us, or by the peer, EOF or error: fine after QUIT, an error
 * otherwise. Then the next connection, at once after a clean end, after
 * a backoff (10 ms doubling up to 1 s) after a failure. */
static void
on_closed(struct stream *s, void *user, const char *reason)
{
	struct load_conn *c = user;
	unsigned shift;

	(void)s;
	if (!c->dead && c->state != CS_QUIT) {
		atomic_fetch_add(&load_errors, 1);
		c->failed = true;
	}
	/* the server hung up during setup: as much a refusal as a 5xx */
	if (!c->dead && conn_in_setup(c))
		setup_failed_count(reason);
	if (!c->failed || load_thread_finished(c->t)) {
		load_conn_start(c);
		return;
	}
	c->failed = false;
	shift = c->fails < 7 ? c->fails : 7;
	c->fails++;
	c->state = CS_CONNECT;
	uring_timeout(
	    c->t->loop, &c->retry, 10u << shift > 1000 ? 1000 : 10u << shift);
}

/* The backoff after a failure is over. */
static void
on_retry(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct load_conn *c = uring_container_of(op, struct load_conn, retry);

	(void)res, (void)flags, (void)data, (void)len;
	load_conn_start(c);
}

static const struct stream_cbs load_cbs = {
    .input = on_input,
    .drained = on_drained,
    .tls_done = on_tls_done,
    .connected = on_connected,
    .timeout = on_timeout,
    .closed = on_closed,
};

/* Before the first load_conn_start(): c belongs to thread t. */
void
load_conn_init(struct load_conn *c, struct load_thread *t)
{
	c->t = t;
	smtp_reply_init(&c->rp);
	uring_op_init(&c->retry, on_retry);
}

/* (Re)open a connection, or retire it when the thread has no more work. */
void
load_conn_start(struct load_conn *c)
{
	struct load_thread *t = c->t;
	int r;

	smtp_reply_reset(&c->rp);
	c->dead = c->failed = false;
	c->pipelining = false;
	c->bdat = false;
	if (load_thread_finished(t)) {
		if (c->state != CS_DONE) {
			c->state = CS_DONE;
			if (--t->live == 0)
				t->end_us = clock_wall_us();
		}
		return;
	}
	c->state = CS_CONNECT;
	r = stream_connect(&c->s, t->loop,
	    (const struct sockaddr *)&load_opt.server.ss, load_opt.server.sslen,
	    load_opt.connect_ms, &load_cbs, c);
	if (r < 0) {
		fprintf(stderr, "mta-load: socket: %s\n", strerror(-r));
		exit(1);
	}
}
