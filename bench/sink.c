/* SPDX-License-Identifier: ISC */
/*
 * sink.c - mta-sink: a fast SMTP sink for tests and benchmarks.
 *
 * DESIGN. T threads, each with its own uring loop and its own
 * SO_REUSEPORT listener per address, like the relay's receive stage. A
 * connection is a small state machine: it consumes every complete line it
 * holds, queues the replies, and sends them with one send per batch, so a
 * pipelining client gets pipelined answers. Message bodies are never
 * stored: they are hashed (SHA-256 of the unstuffed body) and measured as
 * they stream past, so a sink can take millions of messages in constant
 * memory. With --record, one JSON line per accepted message is appended
 * to a file with one write(2), so concurrent threads never interleave.
 *
 * Push-back like a real receiver: a share of 4xx or 5xx per RCPT or at
 * end of DATA, a delay before chosen replies, dropped connections, a
 * connection cap, PIPELINING on or off. Counters are atomics shared by
 * the threads; the main thread owns signals (signalfd) and the display.
 *
 * STARTTLS (--starttls CERT[:KEY]) runs on the same loop through tls.h:
 * after the 220 goes out as the last plaintext, every recv is fed to the
 * TLS layer and conn_tls_pump() decrypts into `in`, where the same line
 * machine takes it. Plaintext pipelined after STARTTLS is dropped (RFC
 * 3207: commands injected before the handshake must not run), and the
 * session starts over: EHLO again, no STARTTLS offered.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "net/tls.h"
#include "net/uring.h"

#define SINK_LINE_MAX  4096 /* command line cap, bytes */
#define SINK_INPUT_MAX (64 * 1024)
#define SINK_OUT_MAX   (64 * 1024)
#define SINK_RCPT_MAX  1000
#define SINK_HDR_MAX   998

enum sink_phase { PH_CMD, PH_DATA };
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

static struct sink_opts opt = {
    .threads = 1, .pipelining = true, .fail_at = AT_RCPT};
static struct sink_stats st;
static int record_fd = -1;
static struct tls_ctx *sink_tls; /* read-only once the threads run */

struct sink_thread;

struct conn {
	struct sink_thread *t;
	int fd;
	struct uring_op rd, wr, tm;
	struct buf in;           /* unconsumed input */
	struct buf out, sending; /* queued replies; the one being sent */
	enum sink_phase phase;
	bool closing, eof, delayed, after_send_close;
	/* STARTTLS: the 220 is queued, TLS starts once it is on its way */
	bool starttls;
	bool need_ehlo; /* after the handshake, until EHLO/HELO */
	bool pumping;   /* inside conn_tls_pump(): no re-entry, no free */
	bool tls_shut;  /* close_notify queued */
	struct tls_conn *tls;
	/* the transaction */
	bool have_mail;
	char from[256];
	char *rcpts[SINK_RCPT_MAX];
	unsigned nrcpts, nok;
	EVP_MD_CTX *md;
	uint64_t size;
	bool in_headers, line_start;
	char msgid[128];
	char sent_ts[32];
	char hdr[SINK_HDR_MAX + 2]; /* current header line, for Message-ID */
	size_t hdrlen;
	uint32_t rng;
};

struct sink_listener {
	struct uring_op op;
	struct sink_thread *t;
};

struct sink_thread {
	pthread_t tid;
	struct uring_loop *loop;
	int lfd[8];
	struct sink_listener acc[8];
	struct chan *ctl;
	struct uring_op ctl_op;
	uint64_t ctl_val;
	bool stopping;
	unsigned nconns;
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

static bool
roll(struct conn *c, unsigned pct)
{
	return pct && rng_next(&c->rng) % 100 < pct;
}

static void conn_process(struct conn *c);
static void conn_flush(struct conn *c);

static void
conn_maybe_free(struct conn *c)
{
	if (!c->closing || c->pumping || uring_op_busy(&c->rd) ||
	    uring_op_busy(&c->wr) || uring_op_busy(&c->tm))
		return;
	uring_close(c->t->loop, c->fd);
	tls_conn_free(c->tls);
	buf_fini(&c->in);
	buf_fini(&c->out);
	buf_fini(&c->sending);
	for (unsigned i = 0; i < c->nrcpts; i++)
		free(c->rcpts[i]);
	EVP_MD_CTX_free(c->md);
	c->t->nconns--;
	atomic_fetch_sub(&st.conns_now, 1);
	free(c);
}

static void
conn_close(struct conn *c)
{
	c->closing = true;
	uring_cancel(c->t->loop, &c->rd);
	uring_cancel(c->t->loop, &c->tm);
	conn_maybe_free(c);
}

static void
reply(struct conn *c, const char *s)
{
	if (buf_append(&c->out, s, strlen(s)) != 0 ||
	    buf_append(&c->out, "\r\n", 2) != 0)
		c->after_send_close = true;
}

static void
txn_reset(struct conn *c)
{
	for (unsigned i = 0; i < c->nrcpts; i++)
		free(c->rcpts[i]);
	c->nrcpts = c->nok = 0;
	c->have_mail = false;
	c->from[0] = '\0';
}

/* Append s as a JSON string (quotes included) to b. */
static int
json_str(struct buf *b, const char *s)
{
	int r = buf_append(b, "\"", 1);

	for (; *s && r == 0; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			r = buf_appendf(b, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			r = buf_appendf(b, "\\u%04x", ch);
		else
			r = buf_append(b, s, 1);
	}
	return r ? r : buf_append(b, "\"", 1);
}

static void
record_message(struct conn *c, const uint8_t digest[32])
{
	struct buf b;
	char hex[65];
	int r;

	if (record_fd < 0)
		return;
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	buf_init(&b, 1 << 20);
	r = buf_appendf(
	    &b, "{\"time\":%.6f,\"from\":", (double)clock_wall_us() / 1e6);
	r = r ? r : json_str(&b, c->from);
	r = r ? r : buf_append(&b, ",\"rcpts\":[", 10);
	for (unsigned i = 0, n = 0; i < c->nrcpts && r == 0; i++) {
		if (c->rcpts[i] == NULL)
			continue;
		r = n++ ? buf_append(&b, ",", 1) : 0;
		r = r ? r : json_str(&b, c->rcpts[i]);
	}
	r = r ? r
	      : buf_appendf(&b,
	            "],\"size\":%" PRIu64 ",\"sha256\":\"%s\""
	            ",\"message_id\":",
	            c->size, hex);
	r = r ? r : json_str(&b, c->msgid);
	r = r ? r : buf_appendf(&b, ",\"tls\":%s", c->tls ? "true" : "false");
	if (r == 0 && c->sent_ts[0])
		r = buf_appendf(&b, ",\"sent\":%s", c->sent_ts);
	r = r ? r : buf_append(&b, "}\n", 2);
	if (r == 0 && write(record_fd, buf_peek(&b), buf_avail(&b)) < 0)
		perror("mta-sink: record");
	buf_fini(&b);
}

static bool
delayed_cmd(const char *cmd)
{
	return opt.delay_ms && (strcmp(opt.delay_cmds, "all") == 0 ||
	                           strstr(opt.delay_cmds, cmd) != NULL);
}

/* Hold further processing until the timer fires, then resume. */
static void
delay_then_continue(struct conn *c)
{
	c->delayed = true;
	uring_timeout(c->t->loop, &c->tm, opt.delay_ms);
}

/* Look at one complete header line of the message. */
static void
header_line(struct conn *c)
{
	char *v;

	c->hdr[c->hdrlen] = '\0';
	if (str_iprefix(c->hdr, c->hdrlen, "message-id:")) {
		v = c->hdr + 11;
		while (*v == ' ' || *v == '\t')
			v++;
		str_copy(c->msgid, sizeof(c->msgid), v);
	} else if (str_iprefix(c->hdr, c->hdrlen, "x-mta-load-sent:")) {
		v = c->hdr + 16;
		while (*v == ' ')
			v++;
		/* a number only: it goes into JSON unquoted */
		if (strspn(v, "0123456789.") == strlen(v) && *v)
			str_copy(c->sent_ts, sizeof(c->sent_ts), v);
	}
}

static void
data_end(struct conn *c)
{
	uint8_t digest[32];
	unsigned dlen = 0;

	EVP_DigestFinal_ex(c->md, digest, &dlen);
	c->phase = PH_CMD;
	if (opt.fail_at == AT_DATA && roll(c, opt.permfail_pct)) {
		atomic_fetch_add(&st.perm, 1);
		reply(c, "554 5.6.0 sink: rejected at end of data");
	} else if (opt.fail_at == AT_DATA && roll(c, opt.tempfail_pct)) {
		atomic_fetch_add(&st.temp, 1);
		reply(c, "451 4.3.0 sink: try again later");
	} else {
		atomic_fetch_add(&st.msgs, 1);
		atomic_fetch_add(&st.rcpts, c->nok);
		atomic_fetch_add(&st.bytes, c->size);
		record_message(c, digest);
		reply(c, "250 2.0.0 Ok: sunk");
	}
	txn_reset(c);
	if (delayed_cmd("dot"))
		delay_then_continue(c);
}

/* Consume DATA bytes from the input: hash unstuffed lines until CRLF.CRLF.
 * Lines are taken whole (bounded by the input cap); a partial line waits. */
static void
data_consume(struct conn *c)
{
	while (c->phase == PH_DATA && !c->delayed) {
		const uint8_t *p = buf_peek(&c->in), *lf;
		size_t n = buf_avail(&c->in), len;

		lf = memchr(p, '\n', n);
		if (lf == NULL) {
			if (n < SINK_INPUT_MAX / 2)
				return;
			/* a very long line: hash what we have */
			len = n;
		} else {
			len = (size_t)(lf - p) + 1;
		}
		if (lf && len == 3 && p[0] == '.' && p[1] == '\r') {
			buf_consume(&c->in, len);
			data_end(c);
			return;
		}
		{
			const uint8_t *q = p;
			size_t qn = len;

			if (c->line_start && qn > 1 && q[0] == '.') {
				q++;
				qn--;
			}
			EVP_DigestUpdate(c->md, q, qn);
			c->size += qn;
			if (c->in_headers && c->line_start) {
				if (qn <= 2) {
					c->in_headers = false;
				} else if ((q[0] == ' ' || q[0] == '\t')) {
					/* folded: ignore */
				} else {
					size_t h = qn - (lf ? 2 : 0);

					if (h > SINK_HDR_MAX)
						h = SINK_HDR_MAX;
					memcpy(c->hdr, q, h);
					c->hdrlen = h;
					header_line(c);
				}
			}
		}
		c->line_start = lf != NULL;
		buf_consume(&c->in, len);
	}
}

static void
cmd_mail(struct conn *c, const char *arg)
{
	const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	if (c->have_mail) {
		reply(c, "503 5.5.1 sink: nested MAIL");
		return;
	}
	if (roll(c, opt.drop_pct)) {
		atomic_fetch_add(&st.drops, 1);
		c->after_send_close = true;
		c->eof = true;
		return;
	}
	str_ncopy(c->from, sizeof(c->from), lt ? lt + 1 : "",
	    gt ? (size_t)(gt - lt - 1) : 0);
	c->have_mail = true;
	reply(c, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct conn *c, const char *arg)
{
	const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	if (!c->have_mail) {
		reply(c, "503 5.5.1 sink: need MAIL");
		return;
	}
	if (c->nrcpts >= SINK_RCPT_MAX) {
		reply(c, "452 4.5.3 sink: too many recipients");
		return;
	}
	if (opt.fail_at == AT_RCPT && roll(c, opt.permfail_pct)) {
		atomic_fetch_add(&st.perm, 1);
		reply(c, "550 5.1.1 sink: no such user");
		return;
	}
	if (opt.fail_at == AT_RCPT && roll(c, opt.tempfail_pct)) {
		atomic_fetch_add(&st.temp, 1);
		reply(c, "451 4.2.0 sink: try again later");
		return;
	}
	c->rcpts[c->nrcpts++] =
	    xstrndup(lt ? lt + 1 : "", gt ? (size_t)(gt - lt - 1) : 0);
	c->nok++;
	reply(c, "250 2.1.5 Ok");
}

static void
cmd_data(struct conn *c)
{
	if (!c->have_mail || c->nok == 0) {
		reply(c, "554 5.5.1 sink: no valid recipients");
		return;
	}
	reply(c, "354 End data with <CR><LF>.<CR><LF>");
	c->phase = PH_DATA;
	c->size = 0;
	c->in_headers = true;
	c->line_start = true;
	c->msgid[0] = c->sent_ts[0] = '\0';
	if (c->md == NULL)
		c->md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
}

/* STARTTLS: the 220, then nothing more in plaintext either way. */
static void
cmd_starttls(struct conn *c, const char *arg)
{
	if (*arg) {
		reply(c, "501 5.5.4 sink: STARTTLS takes no argument");
		return;
	}
	if (c->have_mail) {
		reply(c, "503 5.5.1 sink: STARTTLS inside a transaction");
		return;
	}
	reply(c, "220 2.0.0 Ready to start TLS");
	/* whatever the client sent after STARTTLS was sent before the
	 * handshake: drop it, never run it (conn_process stops here) */
	buf_reset(&c->in);
	c->starttls = true;
}

/* Commands that need a fresh EHLO after the handshake. */
static bool
needs_ehlo(const char *verb)
{
	return strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0 ||
	       strcmp(verb, "DATA") == 0;
}

static void
command(struct conn *c, char *line)
{
	char *arg = line;
	char verb[16];
	size_t n = strcspn(line, " ");

	str_ncopy(verb, sizeof(verb), line, n);
	for (char *p = verb; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	arg += n;
	if (c->need_ehlo && needs_ehlo(verb)) {
		reply(c, "503 5.5.1 sink: send EHLO first");
		return;
	}
	if (strcmp(verb, "EHLO") == 0) {
		txn_reset(c);
		c->need_ehlo = false;
		reply(c, "250-mta-sink");
		if (opt.pipelining)
			reply(c, "250-PIPELINING");
		if (sink_tls && c->tls == NULL)
			reply(c, "250-STARTTLS");
		reply(c, "250-8BITMIME");
		reply(c, "250-SMTPUTF8");
		reply(c, "250-ENHANCEDSTATUSCODES");
		reply(c, "250 SIZE 0");
	} else if (strcmp(verb, "HELO") == 0) {
		txn_reset(c);
		c->need_ehlo = false;
		reply(c, "250 mta-sink");
	} else if (strcmp(verb, "STARTTLS") == 0 && sink_tls && !c->tls) {
		cmd_starttls(c, arg[0] == ' ' ? arg + 1 : arg);
	} else if (strcmp(verb, "MAIL") == 0) {
		cmd_mail(c, arg);
		if (delayed_cmd("mail"))
			delay_then_continue(c);
	} else if (strcmp(verb, "RCPT") == 0) {
		cmd_rcpt(c, arg);
		if (delayed_cmd("rcpt"))
			delay_then_continue(c);
	} else if (strcmp(verb, "DATA") == 0) {
		cmd_data(c);
		if (delayed_cmd("data"))
			delay_then_continue(c);
	} else if (strcmp(verb, "RSET") == 0) {
		txn_reset(c);
		reply(c, "250 2.0.0 Ok");
	} else if (strcmp(verb, "NOOP") == 0) {
		reply(c, "250 2.0.0 Ok");
	} else if (strcmp(verb, "QUIT") == 0) {
		reply(c, "221 2.0.0 Bye");
		c->after_send_close = true;
		c->eof = true;
	} else {
		reply(c, "502 5.5.2 sink: command not implemented");
	}
}

/* Consume every complete line, then send what was queued at once. */
static void
conn_process(struct conn *c)
{
	while (!c->delayed && !c->eof && !c->starttls) {
		const uint8_t *p, *lf;
		char line[SINK_LINE_MAX];
		size_t len;

		if (c->phase == PH_DATA) {
			data_consume(c);
			if (c->phase == PH_DATA)
				break;
			continue;
		}
		p = buf_peek(&c->in);
		lf = memchr(p, '\n', buf_avail(&c->in));
		if (lf == NULL) {
			if (buf_avail(&c->in) >= SINK_LINE_MAX) {
				reply(c, "500 5.5.2 sink: line too long");
				c->after_send_close = c->eof = true;
			}
			break;
		}
		len = (size_t)(lf - p);
		if (len && p[len - 1] == '\r')
			len--;
		str_ncopy(line, sizeof(line), (const char *)p,
		    len < sizeof(line) ? len : sizeof(line) - 1);
		buf_consume(&c->in, (size_t)(lf - p) + 1);
		command(c, line);
	}
	/* a delayed reply waits in out until its timer fires */
	if (!c->delayed)
		conn_flush(c);
}

static void on_recv(struct uring_op *op, int res, unsigned flags,
    const uint8_t *data, size_t len);
static void conn_tls_pump(struct conn *c);

static void
conn_read_more(struct conn *c)
{
	if (c->closing || c->eof || c->delayed || c->pumping ||
	    uring_op_busy(&c->rd))
		return;
	/* TLS may hold plaintext already: the pump uses it up first and
	 * reads the socket only when the layer needs more */
	if (c->tls != NULL) {
		conn_tls_pump(c);
		return;
	}
	uring_recv(c->t->loop, &c->rd, c->fd, false);
}

static void
on_sent(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, wr);

	(void)flags;
	(void)data;
	(void)len;
	buf_reset(&c->sending);
	if (res < 0) {
		conn_close(c);
		return;
	}
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	conn_flush(c);
}

/* Replies into the TLS layer (once the handshake is done), its records
 * into `sending`. A failed write ends the session; once everything is
 * written on a closing session, queue the close_notify. */
static void
conn_tls_encrypt(struct conn *c)
{
	ssize_t n;
	int rc;

	if (tls_conn_handshake_done(c->tls)) {
		while (buf_avail(&c->out) > 0) {
			n = tls_conn_write(
			    c->tls, buf_peek(&c->out), buf_avail(&c->out));
			if (n > 0) {
				buf_consume(&c->out, (size_t)n);
				continue;
			}
			if (n != -ENOBUFS) { /* broken: nothing more goes */
				buf_reset(&c->out);
				c->after_send_close = c->eof = true;
			}
			break;
		}
		if (buf_avail(&c->out) == 0)
			buf_reset(&c->out);
		if (c->after_send_close && !c->tls_shut &&
		    buf_avail(&c->out) == 0) {
			c->tls_shut = true;
			rc = tls_conn_close(c->tls);
			(void)rc; /* already broken: just close */
		}
	}
	tls_conn_out_to_buf(c->tls, &c->sending);
}

/* Start a send of what is queued, if none is in flight. Never closes. */
static void
conn_send_out(struct conn *c)
{
	struct buf tmp;

	if (uring_op_busy(&c->wr) || c->closing)
		return;
	if (c->tls != NULL) {
		conn_tls_encrypt(c);
	} else if (buf_avail(&c->out) > 0) {
		tmp = c->sending;
		c->sending = c->out;
		c->out = tmp;
		/* the 220 to STARTTLS was the last plaintext reply: the
		 * client's next bytes are its ClientHello */
		if (c->starttls) {
			c->starttls = false;
			c->tls = tls_conn_server_new(sink_tls);
		}
	}
	if (buf_avail(&c->sending) > 0)
		uring_send(c->t->loop, &c->wr, c->fd, buf_peek(&c->sending),
		    buf_avail(&c->sending));
}

static void
conn_flush(struct conn *c)
{
	if (uring_op_busy(&c->wr) || c->closing)
		return;
	conn_send_out(c);
	if (!uring_op_busy(&c->wr) && c->after_send_close) {
		conn_close(c);
		return;
	}
	conn_read_more(c);
}

/* The handshake is done: the SMTP session starts over (RFC 3207). */
static void
conn_tls_up(struct conn *c)
{
	atomic_fetch_add(&st.tls, 1);
	txn_reset(c);
	c->need_ehlo = true;
}

/*
 * Drive the TLS layer: finish the handshake, then decrypt into `in` and
 * run the line machine on it while the session takes input (not delayed,
 * not ending). conn_process() calls back into conn_read_more() through
 * conn_flush(); `pumping` makes that a no-op (and defers any free) and
 * this loop goes on instead. Ends by sending what TLS produced, and reads
 * the socket only when the layer needs more ciphertext.
 */
static void
conn_tls_pump(struct conn *c)
{
	bool need = false;
	ssize_t r;

	c->pumping = true;
	if (!tls_conn_handshake_done(c->tls)) {
		r = tls_conn_handshake(c->tls);
		if (r == -EAGAIN) {
			need = true;
		} else if (r < 0) {
			atomic_fetch_add(&st.tls_fail, 1);
			c->after_send_close = c->eof = true; /* alert, close */
		} else {
			conn_tls_up(c);
		}
	}
	while (!need && !c->closing && !c->eof && !c->delayed) {
		r = tls_conn_read(c->tls, &c->in);
		if (r > 0) {
			conn_process(c);
			continue;
		}
		if (r == -EAGAIN) {
			need = true;
		} else if (r == -ENOBUFS) {
			reply(c, "500 5.5.2 sink: input buffer full");
			c->after_send_close = c->eof = true;
		} else { /* close_notify, or broken */
			c->after_send_close = c->eof = true;
		}
	}
	c->pumping = false;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	conn_send_out(c); /* handshake records, tickets, alerts, replies */
	if (!uring_op_busy(&c->wr) && c->after_send_close) {
		conn_close(c);
		return;
	}
	if (need && !c->eof && !c->delayed && !uring_op_busy(&c->rd))
		uring_recv(c->t->loop, &c->rd, c->fd, false);
}

static void
on_recv(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, rd);

	(void)flags;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (res <= 0) {
		conn_close(c);
		return;
	}
	if (c->eof)
		return;
	if (c->starttls) { /* pipelined after STARTTLS: dropped */
		conn_read_more(c);
		return;
	}
	if (c->tls != NULL) {
		/* read only once the layer had used up its input: far
		 * below TLS_IN_MAX */
		if (tls_conn_feed(c->tls, data, len) != 0) {
			c->after_send_close = c->eof = true;
			conn_flush(c);
			return;
		}
		conn_read_more(c);
		return;
	}
	if (buf_append(&c->in, data, len) != 0) {
		reply(c, "500 5.5.2 sink: input buffer full");
		c->after_send_close = c->eof = true;
		conn_flush(c);
		return;
	}
	conn_process(c);
}

static void
on_timer(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct conn *c = uring_container_of(op, struct conn, tm);

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	c->delayed = false;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	conn_process(c);
}

static void
conn_new(struct sink_thread *t, int fd)
{
	struct conn *c;
	int one = 1;

	atomic_fetch_add(&st.conns, 1);
	if (t->stopping ||
	    (opt.max_conns && atomic_load(&st.conns_now) >= opt.max_conns)) {
		static const char busy[] =
		    "421 4.7.0 sink: too many connections\r\n";

		if (write(fd, busy, sizeof(busy) - 1) < 0)
			(void)0;
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = xcalloc(1, sizeof(*c));
	c->t = t;
	c->fd = fd;
	c->rng =
	    (uint32_t)(clock_wall_us() ^ ((uint64_t)fd << 16) ^ (uintptr_t)c);
	buf_init(&c->in, SINK_INPUT_MAX);
	buf_init(&c->out, SINK_OUT_MAX);
	buf_init(&c->sending, SINK_OUT_MAX);
	uring_op_init(&c->rd, on_recv);
	uring_op_init(&c->wr, on_sent);
	uring_op_init(&c->tm, on_timer);
	t->nconns++;
	atomic_fetch_add(&st.conns_now, 1);
	reply(c, "220 mta-sink ESMTP");
	conn_flush(c);
}

static void
on_accept(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct sink_thread *t =
	    uring_container_of(op, struct sink_listener, op)->t;

	(void)data;
	(void)len;
	if (res >= 0)
		conn_new(t, res);
	else if (!(flags & URING_F_MORE) && !t->stopping && res != -ECANCELED)
		fprintf(stderr, "mta-sink: accept: %s\n", strerror(-res));
}

static void
on_ctl(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct sink_thread *t =
	    uring_container_of(op, struct sink_thread, ctl_op);

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	/* the only control message is "stop" */
	t->stopping = true;
	for (size_t i = 0; i < opt.nlisten; i++)
		uring_cancel(t->loop, &t->acc[i].op);
	uring_loop_stop(t->loop);
}

static int
listen_on(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd, one = 1;

	fd = socket(
	    ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    listen(fd, 4096) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static void *
thread_main(void *arg)
{
	struct sink_thread *t = arg;
	char err[256];

	if (uring_loop_new(NULL, &t->loop, err, sizeof(err)) != 0) {
		fprintf(stderr, "mta-sink: %s\n", err);
		exit(1);
	}
	for (size_t i = 0; i < opt.nlisten; i++) {
		t->acc[i].t = t;
		uring_op_init(&t->acc[i].op, on_accept);
		uring_accept(t->loop, &t->acc[i].op, t->lfd[i]);
	}
	uring_op_init(&t->ctl_op, on_ctl);
	uring_read(t->loop, &t->ctl_op, chan_fd(t->ctl), &t->ctl_val,
	    sizeof(t->ctl_val));
	if (uring_loop_run(t->loop) != 0)
		fprintf(stderr, "mta-sink: event loop failed\n");
	/* Process exit follows; connections are not drained one by one. */
	return NULL;
}

static void
print_totals(FILE *fp, const char *prefix)
{
	fprintf(fp,
	    "%sconnections=%lu messages=%lu recipients=%lu bytes=%lu "
	    "tempfail=%lu permfail=%lu dropped=%lu",
	    prefix, atomic_load(&st.conns), atomic_load(&st.msgs),
	    atomic_load(&st.rcpts), atomic_load(&st.bytes),
	    atomic_load(&st.temp), atomic_load(&st.perm),
	    atomic_load(&st.drops));
	if (sink_tls)
		fprintf(fp, " tls=%lu tlsfail=%lu", atomic_load(&st.tls),
		    atomic_load(&st.tls_fail));
	fputc('\n', fp);
	fflush(fp);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mta-sink [options]\n"
	    "  --listen ADDR:PORT      listen here (repeatable; default "
	    "127.0.0.1:2525)\n"
	    "  --threads N             event-loop threads (default 1)\n"
	    "  --record FILE           append one JSON line per accepted "
	    "message\n"
	    "  --tempfail PCT          share of 4xx replies (default at RCPT)\n"
	    "  --permfail PCT          share of 5xx replies\n"
	    "  --fail-at rcpt|data     where --tempfail/--permfail apply\n"
	    "  --drop PCT              share of connections dropped at MAIL\n"
	    "  --delay MS              delay before the replies named by "
	    "--delay-cmds\n"
	    "  --delay-cmds LIST       mail,rcpt,data,dot or all (default "
	    "all)\n"
	    "  --no-pipelining         do not advertise PIPELINING\n"
	    "  --starttls CERT[:KEY]   offer STARTTLS with this PEM "
	    "certificate\n"
	    "                          (and key; default: the key is in CERT)\n"
	    "  --max-connections N     refuse connections over N with 421\n"
	    "  --quiet                 no live counters\n"
	    "Totals are printed at exit (SIGINT/SIGTERM) and on SIGUSR1.\n");
}

static unsigned
pct_arg(const char *s)
{
	long v = strtol(s, NULL, 10);

	if (v < 0 || v > 100) {
		fprintf(stderr, "mta-sink: percentage out of range: %s\n", s);
		exit(2);
	}
	return (unsigned)v;
}

/* CERT[:KEY], split at the last colon. */
static void
parse_tls(const char *arg)
{
	const char *colon = strrchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);

	if (n == 0 || n >= sizeof(opt.tls.certificate) ||
	    !str_copy(opt.tls.private_key, sizeof(opt.tls.private_key),
	        colon ? colon + 1 : "")) {
		fprintf(stderr, "mta-sink: bad --starttls %s\n", arg);
		exit(2);
	}
	str_ncopy(opt.tls.certificate, sizeof(opt.tls.certificate), arg, n);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"threads", required_argument, NULL, 't'},
	    {"record", required_argument, NULL, 'r'},
	    {"tempfail", required_argument, NULL, '4'},
	    {"permfail", required_argument, NULL, '5'},
	    {"fail-at", required_argument, NULL, 'f'},
	    {"drop", required_argument, NULL, 'd'},
	    {"delay", required_argument, NULL, 'D'},
	    {"delay-cmds", required_argument, NULL, 'C'},
	    {"no-pipelining", no_argument, NULL, 'P'},
	    {"starttls", required_argument, NULL, 'T'},
	    {"max-connections", required_argument, NULL, 'm'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int ch;

	str_copy(opt.delay_cmds, sizeof(opt.delay_cmds), "all");
	while ((ch = getopt_long(argc, argv, "l:t:r:q", lo, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (opt.nlisten == 8 ||
			    config_parse_endpoint(
			        optarg, &opt.listen[opt.nlisten]) != 0) {
				fprintf(stderr, "mta-sink: bad --listen %s\n",
				    optarg);
				exit(2);
			}
			opt.nlisten++;
			break;
		case 't':
			opt.threads = (unsigned)strtoul(optarg, NULL, 10);
			if (opt.threads == 0 || opt.threads > 64)
				opt.threads = 1;
			break;
		case 'r':
			opt.record = optarg;
			break;
		case '4':
			opt.tempfail_pct = pct_arg(optarg);
			break;
		case '5':
			opt.permfail_pct = pct_arg(optarg);
			break;
		case 'f':
			opt.fail_at =
			    strcmp(optarg, "data") == 0 ? AT_DATA : AT_RCPT;
			break;
		case 'd':
			opt.drop_pct = pct_arg(optarg);
			break;
		case 'D':
			opt.delay_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'C':
			str_copy(
			    opt.delay_cmds, sizeof(opt.delay_cmds), optarg);
			break;
		case 'P':
			opt.pipelining = false;
			break;
		case 'T':
			parse_tls(optarg);
			break;
		case 'm':
			opt.max_conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage();
			exit(0);
		default:
			usage();
			exit(2);
		}
	}
	if (optind < argc) {
		usage();
		exit(2);
	}
	if (opt.nlisten == 0 &&
	    config_parse_endpoint("127.0.0.1:2525", &opt.listen[0]) == 0)
		opt.nlisten = 1;
}

int
main(int argc, char **argv)
{
	struct sink_thread *threads;
	struct signalfd_siginfo si;
	sigset_t set;
	int sfd;
	bool live;

	parse_args(argc, argv);
	if (opt.tls.certificate[0]) {
		char err[256];

		if (tls_ctx_server_new(&opt.tls, &sink_tls, err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "mta-sink: %s\n", err);
			return 1;
		}
	}
	if (opt.record) {
		record_fd = open(opt.record,
		    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (record_fd < 0) {
			fprintf(stderr, "mta-sink: %s: %s\n", opt.record,
			    strerror(errno));
			return 1;
		}
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	threads = xcalloc(opt.threads, sizeof(*threads));
	for (unsigned i = 0; i < opt.threads; i++) {
		struct sink_thread *t = &threads[i];

		for (size_t k = 0; k < opt.nlisten; k++) {
			t->lfd[k] =
			    listen_on(&opt.listen[k].ss, opt.listen[k].sslen);
			if (t->lfd[k] < 0) {
				fprintf(stderr, "mta-sink: listen %s: %s\n",
				    opt.listen[k].text, strerror(-t->lfd[k]));
				return 1;
			}
		}
		t->ctl = chan_new();
		if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
			fprintf(stderr, "mta-sink: cannot start thread\n");
			return 1;
		}
	}
	live = !opt.quiet && isatty(STDERR_FILENO);
	fprintf(stderr, "mta-sink: ready\n");
	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		int n = poll(&pfd, 1, live ? 1000 : -1);

		if (n > 0 && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGUSR1) {
				print_totals(stdout, "mta-sink: ");
				continue;
			}
			if (si.ssi_signo == SIGPIPE)
				continue;
			break;
		}
		if (live) {
			fprintf(stderr, "\r%lu msgs %lu conns open    ",
			    atomic_load(&st.msgs), atomic_load(&st.conns_now));
		}
	}
	if (live)
		fputc('\n', stderr);
	for (unsigned i = 0; i < opt.threads; i++) {
		struct chan_msg *m = xcalloc(1, sizeof(*m));

		chan_send(threads[i].ctl, m);
		pthread_join(threads[i].tid, NULL);
		free(chan_take(threads[i].ctl));
	}
	print_totals(stdout, "mta-sink: total ");
	if (record_fd >= 0)
		close(record_fd);
	_exit(0);
}
