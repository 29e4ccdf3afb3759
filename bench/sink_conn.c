/* SPDX-License-Identifier: ISC */
/*
 * sink_conn.c - one mta-sink connection: the SMTP server dialogue, the
 * fault injection (4xx/5xx shares, delays, drops) and the --record line.
 * The socket, TLS and the close are the stream's (net/stream.h); this
 * file sees plaintext in and queues replies. Runs on the thread of the
 * connection's loop.
 *
 * Input is taken as it comes: every complete command line, and in DATA
 * whole runs of the body at once. Bodies are never stored: they are
 * hashed (SHA-256 of the unstuffed body) and measured as they stream
 * past. Replies of one batch go out in one send, so a pipelining client
 * gets pipelined answers. A delayed reply (--delay) is held back with
 * everything after it, and input is paused, until its timer fires.
 *
 * AUTH (--auth): PLAIN and LOGIN (RFC 4954), with or without an
 * initial response, checked by sink_auth.c; MAIL needs it then. With
 * --dump, the message is also written to a file as it streams past
 * (sink_dump.c).
 *
 * STARTTLS: the 220 is queued, then the stream switches (plaintext
 * pipelined behind the command is dropped, RFC 3207) and the session
 * starts over: EHLO again, STARTTLS no longer offered.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench/sink.h"
#include "bench/tool.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "net/stream.h"
#include "net/tls.h"
#include "smtp/smtp_parse.h"

#define SINK_LINE_MAX 4096 /* command line cap, bytes */
#define SINK_LONG_LINE \
	(32 * 1024) /* a header line this long is hashed
				      in parts */
#define SINK_OUT_MAX  (64 * 1024)
#define SINK_RCPT_MAX 1000
#define SINK_HDR_MAX  998

enum sink_phase { PH_CMD, PH_DATA };

/* Where an AUTH dialogue stands: the next line is its response. */
enum sink_auth_step { AU_NONE, AU_PLAIN, AU_LOGIN_USER, AU_LOGIN_PASS };

struct conn {
	struct stream s;
	struct buf held; /* replies held back by --delay */
	enum sink_phase phase;
	bool ending;    /* QUIT, a drop, an error: close after the replies */
	bool delayed;   /* a --delay timer runs: input paused, replies held */
	bool starttls;  /* the 220 is queued: switch after this batch */
	bool need_ehlo; /* after the handshake, until EHLO/HELO */
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
	/* AUTH */
	enum sink_auth_step auth_step;
	char auth_user[256]; /* authenticated as (or the LOGIN name given) */
	bool authed;
	struct sink_dump dump; /* --dump: the current message's file */
};

static bool
roll(struct conn *c, unsigned pct)
{
	return pct && tool_rng_next(&c->rng) % 100 < pct;
}

/* Replies go straight to the stream, or are held while --delay is on. */
static void
reply(struct conn *c, const char *s)
{
	struct buf *b = sink_opt.delay_ms ? &c->held : stream_outbuf(&c->s);

	if (buf_append(b, s, strlen(s)) != 0 || buf_append(b, "\r\n", 2) != 0)
		c->ending = true;
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

/* One JSON line per accepted message, in one write(2): threads never
 * interleave. */
static void
record_message(struct conn *c, const uint8_t digest[32])
{
	struct buf b;
	char hex[65];
	uint64_t now;
	int r;

	if (sink_record_fd < 0)
		return;
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	buf_init(&b, 1 << 20);
	now = clock_wall_us();
	r = buf_appendf(&b,
	    "{\"time\":%" PRIu64 ".%06u,\"from\":", now / 1000000,
	    (unsigned)(now % 1000000));
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
	r = r ? r
	      : buf_appendf(
	            &b, ",\"tls\":%s", stream_tls_on(&c->s) ? "true" : "false");
	if (r == 0 && c->sent_ts[0])
		r = buf_appendf(&b, ",\"sent\":%s", c->sent_ts);
	if (r == 0 && c->authed) {
		r = buf_append(&b, ",\"auth\":", 8);
		r = r ? r : json_str(&b, c->auth_user);
	}
	r = r ? r : buf_append(&b, "}\n", 2);
	if (r == 0 && write(sink_record_fd, buf_peek(&b), buf_avail(&b)) < 0)
		perror("mta-sink: record");
	buf_fini(&b);
}

static bool
delayed_cmd(const char *cmd)
{
	return sink_opt.delay_ms &&
	       (strcmp(sink_opt.delay_cmds, "all") == 0 ||
	           strstr(sink_opt.delay_cmds, cmd) != NULL);
}

/* Hold the replies so far, and further input, until the timer fires. */
static void
delay_then_continue(struct conn *c)
{
	c->delayed = true;
	stream_pause(&c->s);
	stream_timer(&c->s, sink_opt.delay_ms);
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
	if (sink_opt.fail_at == AT_DATA && roll(c, sink_opt.permfail_pct)) {
		atomic_fetch_add(&sink_st.perm, 1);
		reply(c, "554 5.6.0 sink: rejected at end of data");
	} else if (sink_opt.fail_at == AT_DATA &&
	           roll(c, sink_opt.tempfail_pct)) {
		atomic_fetch_add(&sink_st.temp, 1);
		reply(c, "451 4.3.0 sink: try again later");
	} else {
		atomic_fetch_add(&sink_st.msgs, 1);
		atomic_fetch_add(&sink_st.rcpts, c->nok);
		atomic_fetch_add(&sink_st.bytes, c->size);
		record_message(c, digest);
		sink_dump_end(&c->dump, true);
		reply(c, "250 2.0.0 Ok: sunk");
	}
	sink_dump_end(&c->dump, false); /* refused: gone (kept: a no-op) */
	txn_reset(c);
	if (delayed_cmd("dot"))
		delay_then_continue(c);
}

static void
body_hash(struct conn *c, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	EVP_DigestUpdate(c->md, p, n);
	sink_dump_write(&c->dump, p, n);
	c->size += n;
}

/* A header line (unstuffed) of the message: is it one we record? */
static void
header_look(struct conn *c, const uint8_t *q, size_t qn, bool whole)
{
	size_t h;

	if (qn <= 2) {
		c->in_headers = false;
		return;
	}
	if (q[0] == ' ' || q[0] == '\t')
		return; /* folded: ignore */
	h = qn - (whole ? 2 : 0);
	if (h > SINK_HDR_MAX)
		h = SINK_HDR_MAX;
	memcpy(c->hdr, q, h);
	c->hdrlen = h;
	header_line(c);
}

/* In the headers: one whole line at a time (a very long one in parts). */
static size_t
data_header_take(struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *lf = memchr(p, '\n', n), *q = p;
	size_t len, qn;
	bool at_start = c->line_start;

	if (lf == NULL) {
		if (n < SINK_LONG_LINE)
			return 0;
		len = n;
	} else {
		len = (size_t)(lf - p) + 1;
	}
	if (lf && len == 3 && p[0] == '.' && p[1] == '\r') {
		data_end(c);
		return len;
	}
	qn = len;
	if (at_start && qn > 1 && q[0] == '.')
		q++, qn--;
	body_hash(c, q, qn);
	if (at_start)
		header_look(c, q, qn, lf != NULL);
	c->line_start = lf != NULL;
	return len;
}

/*
 * In the body: everything up to the end marker, hashed in as few calls
 * as possible (a run ends only at a stuffed dot). A line start that may
 * be the marker (".", ".\r" at the end of what is there) waits for more.
 */
static size_t
data_body_take(struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *lf;
	size_t i = 0, run = 0;

	while (i < n) {
		if (c->line_start && p[i] == '.') {
			if (n - i < 2 || (p[i + 1] == '\r' && n - i < 3))
				break;
			body_hash(c, p + run, i - run);
			if (p[i + 1] == '\r' && p[i + 2] == '\n') {
				data_end(c);
				return i + 3;
			}
			run = ++i; /* the stuffed dot is dropped */
			c->line_start = false;
		}
		lf = memchr(p + i, '\n', n - i);
		if (lf == NULL) {
			i = n;
			c->line_start = false;
			break;
		}
		i = (size_t)(lf - p) + 1;
		c->line_start = true;
	}
	body_hash(c, p + run, i - run);
	return i;
}

static void
cmd_mail(struct conn *c, const char *arg)
{
	const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	if (c->have_mail) {
		reply(c, "503 5.5.1 sink: nested MAIL");
		return;
	}
	if (sink_opt.auth && !c->authed) {
		reply(c, "530 5.7.0 sink: authentication required");
		return;
	}
	if (roll(c, sink_opt.drop_pct)) {
		atomic_fetch_add(&sink_st.drops, 1);
		c->ending = true;
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
	if (sink_opt.fail_at == AT_RCPT && roll(c, sink_opt.permfail_pct)) {
		atomic_fetch_add(&sink_st.perm, 1);
		reply(c, "550 5.1.1 sink: no such user");
		return;
	}
	if (sink_opt.fail_at == AT_RCPT && roll(c, sink_opt.tempfail_pct)) {
		atomic_fetch_add(&sink_st.temp, 1);
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
	sink_dump_begin(&c->dump, c->from, c->rcpts, c->nrcpts,
	    c->authed ? c->auth_user : NULL);
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
	c->starttls = true; /* input stops here: the rest is dropped */
}

static void
cmd_ehlo(struct conn *c)
{
	txn_reset(c);
	c->need_ehlo = false;
	reply(c, "250-mta-sink");
	if (sink_opt.pipelining)
		reply(c, "250-PIPELINING");
	if (sink_tls && !stream_tls_on(&c->s))
		reply(c, "250-STARTTLS");
	if (sink_opt.auth)
		reply(c, "250-AUTH PLAIN LOGIN");
	reply(c, "250-8BITMIME");
	reply(c, "250-SMTPUTF8");
	reply(c, "250-ENHANCEDSTATUSCODES");
	reply(c, "250 SIZE 0");
}

/* Commands that need a fresh EHLO after the handshake. */
static bool
needs_ehlo(const char *verb)
{
	return strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0 ||
	       strcmp(verb, "DATA") == 0;
}

/* The transaction's commands, each with its optional --delay. */
static bool
command_txn(struct conn *c, const char *verb, const char *arg)
{
	if (strcmp(verb, "MAIL") == 0) {
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
	} else {
		return false;
	}
	return true;
}

/* The credentials are in: 235 or 535. */
static void
auth_finish(struct conn *c, const char *name, const char *password)
{
	c->auth_step = AU_NONE;
	if (sink_auth_check(name, password)) {
		str_copy(c->auth_user, sizeof(c->auth_user), name);
		c->authed = true;
		atomic_fetch_add(&sink_st.auth, 1);
		reply(c, "235 2.7.0 sink: authentication successful");
	} else {
		atomic_fetch_add(&sink_st.auth_fail, 1);
		reply(c, "535 5.7.8 sink: authentication credentials invalid");
	}
}

/* A base64 response of the AUTH dialogue: decoded, NUL-terminated in
 * out; its length, or -1 (a 501 sent, the dialogue over) when malformed
 * or "*". */
static int
auth_decode(struct conn *c, const char *b64, char *out, size_t outmax)
{
	int n;

	if (strcmp(b64, "*") == 0) {
		c->auth_step = AU_NONE;
		reply(c, "501 5.7.0 sink: authentication cancelled");
		return -1;
	}
	n = smtp_parse_base64(b64, strlen(b64), (uint8_t *)out, outmax - 1);
	if (n < 0) {
		c->auth_step = AU_NONE;
		reply(c, "501 5.5.2 sink: malformed base64");
		return -1;
	}
	out[n] = '\0';
	return n;
}

/* PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616). */
static void
auth_plain(struct conn *c, const char *b64)
{
	char raw[768];
	const char *id, *pw;
	int n = auth_decode(c, b64, raw, sizeof(raw));

	if (n < 0)
		return;
	id = memchr(raw, '\0', (size_t)n);
	pw = id ? memchr(id + 1, '\0', (size_t)(raw + n - id - 1)) : NULL;
	if (pw == NULL) {
		c->auth_step = AU_NONE;
		reply(c, "501 5.5.2 sink: malformed PLAIN response");
		return;
	}
	auth_finish(c, id + 1, pw + 1);
}

/* A line of the AUTH dialogue (the response to a 334). */
static void
auth_line(struct conn *c, const char *line)
{
	char raw[768];

	if (c->auth_step == AU_PLAIN) {
		auth_plain(c, line);
	} else if (c->auth_step == AU_LOGIN_USER) {
		if (auth_decode(c, line, raw, sizeof(raw)) < 0)
			return;
		str_copy(c->auth_user, sizeof(c->auth_user), raw);
		c->auth_step = AU_LOGIN_PASS;
		reply(c, "334 UGFzc3dvcmQ6"); /* "Password:" */
	} else if (auth_decode(c, line, raw, sizeof(raw)) >= 0) {
		char name[sizeof(c->auth_user)];

		str_copy(name, sizeof(name), c->auth_user);
		auth_finish(c, name, raw);
	}
}

/* AUTH PLAIN|LOGIN [initial-response] */
static void
cmd_auth(struct conn *c, const char *arg)
{
	char mech[16];
	const char *ir;
	size_t n = strcspn(arg, " ");

	if (c->authed || c->have_mail) {
		reply(c, "503 5.5.1 sink: AUTH not now");
		return;
	}
	str_ncopy(mech, sizeof(mech), arg, n);
	ir = arg[n] == ' ' ? arg + n + 1 : NULL;
	if (strcasecmp(mech, "PLAIN") == 0) {
		c->auth_step = AU_PLAIN;
		if (ir)
			auth_line(c, ir);
		else
			reply(c, "334 ");
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		c->auth_step = AU_LOGIN_USER;
		if (ir)
			auth_line(c, ir);
		else
			reply(c, "334 VXNlcm5hbWU6"); /* "Username:" */
	} else {
		reply(c, "504 5.5.4 sink: unrecognized authentication type");
	}
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
	if (c->auth_step != AU_NONE) {
		auth_line(c, line);
	} else if (c->need_ehlo && needs_ehlo(verb)) {
		reply(c, "503 5.5.1 sink: send EHLO first");
	} else if (strcmp(verb, "EHLO") == 0) {
		cmd_ehlo(c);
	} else if (strcmp(verb, "HELO") == 0) {
		txn_reset(c);
		c->need_ehlo = false;
		reply(c, "250 mta-sink");
	} else if (strcmp(verb, "STARTTLS") == 0 && sink_tls &&
	           !stream_tls_on(&c->s)) {
		cmd_starttls(c, arg[0] == ' ' ? arg + 1 : arg);
	} else if (strcmp(verb, "AUTH") == 0 && sink_opt.auth) {
		cmd_auth(c, arg[0] == ' ' ? arg + 1 : arg);
	} else if (command_txn(c, verb, arg)) {
		;
	} else if (strcmp(verb, "RSET") == 0) {
		txn_reset(c);
		reply(c, "250 2.0.0 Ok");
	} else if (strcmp(verb, "NOOP") == 0) {
		reply(c, "250 2.0.0 Ok");
	} else if (strcmp(verb, "QUIT") == 0) {
		reply(c, "221 2.0.0 Bye");
		c->ending = true;
	} else {
		reply(c, "502 5.5.2 sink: command not implemented");
	}
}

/* One command line, when a whole one is there. */
static size_t
line_take(struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *lf = memchr(p, '\n', n);
	char line[SINK_LINE_MAX];
	size_t len;

	if (lf == NULL) {
		if (n >= SINK_LINE_MAX) {
			reply(c, "500 5.5.2 sink: line too long");
			c->ending = true;
		}
		return 0;
	}
	len = (size_t)(lf - p);
	if (len && p[len - 1] == '\r')
		len--;
	str_ncopy(line, sizeof(line), (const char *)p,
	    len < sizeof(line) ? len : sizeof(line) - 1);
	command(c, line);
	return (size_t)(lf - p) + 1;
}

/* After a batch (or a delay): send what is held, then switch to TLS or
 * close when the dialogue said so. */
static void
conn_settle(struct conn *c)
{
	static const struct stream_tls server = {.client = false};
	struct stream_tls t = server;

	if (c->delayed)
		return;
	if (buf_avail(&c->held) > 0) {
		if (stream_write(
		        &c->s, buf_peek(&c->held), buf_avail(&c->held)) != 0)
			c->ending = true;
		buf_reset(&c->held);
	}
	if (c->ending) {
		stream_close(&c->s, "done", STREAM_CLOSE_ORDERLY);
	} else if (c->starttls) {
		c->starttls = false;
		t.ctx = sink_tls;
		stream_start_tls(&c->s, &t);
	}
}

static size_t
on_input(struct stream *s, void *user, const uint8_t *p, size_t n)
{
	struct conn *c = user;
	size_t used = 0, k;

	(void)s;
	while (used < n && !c->delayed && !c->ending && !c->starttls) {
		if (c->phase == PH_CMD)
			k = line_take(c, p + used, n - used);
		else if (c->in_headers)
			k = data_header_take(c, p + used, n - used);
		else
			k = data_body_take(c, p + used, n - used);
		if (k == 0)
			break;
		used += k;
	}
	conn_settle(c);
	return used;
}

static void
on_timeout(struct stream *s, void *user, enum stream_timer which)
{
	struct conn *c = user;

	if (which != STREAM_TMO_TIMER)
		return;
	c->delayed = false;
	conn_settle(c);
	if (!stream_closing(s))
		stream_resume(s);
}

/* The handshake is done: the SMTP session starts over (RFC 3207). */
static void
on_tls_done(struct stream *s, void *user, const char *err)
{
	struct conn *c = user;

	(void)s;
	if (err != NULL) {
		atomic_fetch_add(&sink_st.tls_fail, 1);
		return;
	}
	atomic_fetch_add(&sink_st.tls, 1);
	txn_reset(c);
	c->need_ehlo = true;
	c->authed = false; /* the session starts over (RFC 3207) */
}

static void
on_closed(struct stream *s, void *user, const char *reason)
{
	struct conn *c = user;

	(void)s, (void)reason;
	txn_reset(c);
	sink_dump_end(&c->dump, false);
	EVP_MD_CTX_free(c->md);
	buf_fini(&c->held);
	atomic_fetch_sub(&sink_st.conns_now, 1);
	free(c);
}

static const struct stream_cbs sink_cbs = {
    .input = on_input,
    .tls_done = on_tls_done,
    .timeout = on_timeout,
    .closed = on_closed,
};

void
sink_conn_new(struct uring_loop *l, int fd, bool stopping)
{
	static const char busy[] = "421 4.7.0 sink: too many connections\r\n";
	struct conn *c;

	atomic_fetch_add(&sink_st.conns, 1);
	if (stopping ||
	    (sink_opt.max_conns &&
	        atomic_load(&sink_st.conns_now) >= sink_opt.max_conns)) {
		if (write(fd, busy, sizeof(busy) - 1) < 0)
			(void)0;
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->dump.fd = -1;
	c->rng =
	    (uint32_t)(clock_wall_us() ^ ((uint64_t)fd << 16) ^ (uintptr_t)c);
	buf_init(&c->held, SINK_OUT_MAX);
	atomic_fetch_add(&sink_st.conns_now, 1);
	stream_open(&c->s, l, fd, &sink_cbs, c);
	(void)stream_set_nodelay(&c->s);
	reply(c, "220 mta-sink ESMTP");
	conn_settle(c);
	stream_flush(&c->s);
}
