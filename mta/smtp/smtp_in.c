/* SPDX-License-Identifier: ISC */
/*
 * smtp_in.c - the receive-side SMTP state machine behind smtp_in.h.
 *
 * Owns: one session's protocol state, its bounded input, the envelope of
 * the transaction in progress and the body being received. Runs on the
 * receive thread that created the session; does no I/O and takes no lock.
 *
 * DESIGN. Input is consumed in place from the caller's bytes; only a
 * partial command line, or what arrives behind a pending action, is
 * copied into s->in, so an idle session holds a few hundred bytes. Command
 * lines go through one table of {verb, check, proceed} rows (as OpenSMTPD's
 * smtp_session.c); every state change goes through smtp_in_enter_state().
 * The message content (DATA bytes, BDAT chunks) goes through the byte
 * machine of smtp_body.c, which this file calls and which knows nothing of
 * the session: only CR LF "." CR LF ends DATA, bare line ends are stored
 * as CR LF or refused (bare_newline), NULs refused or stripped. A BDAT
 * chunk's octets are counted off the input (s->chunk) before anything is
 * read as a command, even when the BDAT is refused, so the session stays
 * in step. A command line may end in a bare LF unless bare_newline =
 * reject; a bare CR inside one is refused.
 *
 * Must not: answer 250 to a message before the committer says so, keep
 * plaintext buffered across STARTTLS, or log AUTH data or bodies.
 */
#include "smtp/smtp_in.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "dkim/dkim.h"
#include "queue/queue.h"
#include "smtp/smtp_body.h"
#include "smtp/smtp_dsn.h"
#include "smtp/smtp_parse.h"
#include "smtp/sender_policy.h"
#include "limits/limits.h"

#define SMTP_IN_CMD_MAX     512         /* command line with CRLF, 4.5.3.1.4 */
#define SMTP_IN_AUTH_MAX    12290       /* AUTH line with CRLF, RFC 4954 */
#define SMTP_IN_INPUT_MAX   (64 * 1024) /* bytes held in s->in */
#define SMTP_IN_INPUT_HIWAT (32 * 1024) /* stop reading above this */
#define SMTP_IN_INPUT_KEEP  1024        /* free s->in storage above this */
#define SMTP_IN_FILL_MAX    4096        /* bytes moved into s->in per step */
#define SMTP_IN_HELO_MAX    255
#define SMTP_IN_USER_MAX    255
#define SMTP_IN_PASS_MAX    255
#define SMTP_IN_RCVD_MAX    2048 /* our Received header, bound */
#define SMTP_IN_REPLY_MAX   1024

enum smtp_in_state {
	SMTP_IN_S_CONNECTED,  /* greeted; HELO/EHLO expected */
	SMTP_IN_S_HELO,       /* no transaction */
	SMTP_IN_S_MAIL,       /* MAIL accepted, no recipient yet */
	SMTP_IN_S_RCPT,       /* at least one recipient */
	SMTP_IN_S_DATA,       /* receiving the body */
	SMTP_IN_S_BDAT,       /* between BDAT chunks (RFC 3030) */
	SMTP_IN_S_AUTH_PLAIN, /* waiting for the PLAIN response */
	SMTP_IN_S_AUTH_USER,  /* LOGIN: waiting for the user name */
	SMTP_IN_S_AUTH_PASS,  /* LOGIN: waiting for the password */
};

struct smtp_in {
	const struct smtp_in_cfg *cfg; /* borrowed, outlives the session */
	struct smtp_in_peer peer;
	enum smtp_in_state state;    /* only smtp_in_enter_state() writes */
	enum smtp_in_action pending; /* outstanding action; READ if none */
	bool esmtp;                  /* greeted with EHLO */
	bool tls;                    /* the connection is encrypted */
	bool authed;                 /* AUTH succeeded; user holds the name */
	bool skipping; /* discarding the rest of an over-long line */
	bool discard;  /* drop buffered input (after STARTTLS) */
	bool overflow; /* input was lost while an action was pending */
	unsigned nerrors;
	unsigned nauthfail;
	bool tx_ended; /* metrics: the transaction got its final reply */
	size_t more;   /* input bytes behind the line being handled */

	bool greeted;   /* the 220 is out (cfg->greet_wait: after the pause) */
	bool skip_auth; /* the line being skipped is an AUTH line */
	uint64_t nreq;  /* lines completed and DATA phases begun */
	char helo[SMTP_IN_HELO_MAX + 1];
	char user[SMTP_IN_USER_MAX + 1];
	char *pass;    /* only between AUTH and smtp_in_auth_done; wiped */
	struct buf in; /* partial line, or input behind an action */

	/* The transaction: "from\0rcpt\0rcpt\0..." in one arena. */
	struct buf env;
	size_t nrcpts;
	bool smtputf8;
	uint64_t declared; /* MAIL SIZE=, bytes; 0: none */
	/* RET, ENVID, NOTIFY, ORCPT (RFC 3461) */
	struct smtp_dsn_tx dsn;

	/* DATA and BDAT */
	struct smtp_body b; /* Received header + message */
	uint64_t id;
	uint64_t chunk;      /* BDAT octets still to read */
	uint64_t chunk_size; /* octets of that chunk */
	bool chunk_last;     /* that chunk is the LAST */
	bool chunk_keep;     /* its octets go into the message (else dropped) */
	struct queue_submit *req; /* built at end of DATA until taken */
	struct dkim_msg *dk;      /* signing, from the end of the headers */
	struct dkim_job *job;     /* built at end of DATA until taken */
	char dkim[600];           /* for the log: "DOMAIN/SELECTOR,..." */
	char *from_bad;           /* From: address the sender policy refused */

	/* A MAIL waiting for the shared limits (SMTP_IN_LIMIT) */
	char *limit_arg; /* its argument, to go on with */
	size_t limit_arglen;
	int limit_answer; /* LIMIT_ASK while asking, then the answer */
	struct limits_subject limit_subj;
	char limit_dom[SMTP_PARSE_PATH_MAX + 1];
	char limit_name[64]; /* the limit that refused */
};

enum { LIMIT_ASK, LIMIT_PASSED, LIMIT_REFUSED };

struct smtp_in_cmd {
	const char *verb;
	/* false: refused, and the reply is already in out */
	bool (*check)(
	    struct smtp_in *, const struct smtp_parse_cmd *, struct buf *);
	void (*proceed)(
	    struct smtp_in *, const struct smtp_parse_cmd *, struct buf *);
};

static void smtp_in_vreply(
    struct smtp_in *, struct buf *, const char *, va_list) MTA_PRINTF(3, 0);
static void smtp_in_reply(struct smtp_in *, struct buf *, const char *, ...)
    MTA_PRINTF(3, 4);
static void smtp_in_error(struct smtp_in *, struct buf *, const char *, ...)
    MTA_PRINTF(3, 4);
static size_t smtp_in_run(
    struct smtp_in *, const uint8_t *, size_t, size_t, struct buf *);
static void smtp_in_proceed_bdat(
    struct smtp_in *, const struct smtp_parse_cmd *, struct buf *);

static void
smtp_in_close(struct smtp_in *s)
{
	s->pending = SMTP_IN_CLOSE;
}

static void
smtp_in_vreply(struct smtp_in *s, struct buf *out, const char *fmt, va_list ap)
{
	char line[SMTP_IN_REPLY_MAX];
	int n;

	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	/*
	 * The loop stops reading while out is large, so this only fails for
	 * a peer that pipelines far more than it reads back: drop it.
	 */
	if (buf_append(out, line, (size_t)n) != 0) {
		log_warnx("event=output-full client=%s", s->peer.addr);
		smtp_in_close(s);
	}
}

static void
smtp_in_reply(struct smtp_in *s, struct buf *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_in_vreply(s, out, fmt, ap);
	va_end(ap);
}

/* A refused command: reply, and count it against max_errors. */
static void
smtp_in_error(struct smtp_in *s, struct buf *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_in_vreply(s, out, fmt, ap);
	va_end(ap);
	if (++s->nerrors > s->cfg->max_errors) {
		smtp_in_reply(s, out, "421 4.7.0 %s Error: too many errors",
		    s->cfg->hostname);
		smtp_in_close(s);
	}
}

/*
 * A peer string as a logfmt value: as is when it needs no quoting (the
 * common case, and the form SPEC shows: from=<a@b>), else log_quote()d.
 */
static const char *
smtp_in_logval(
    char *dst, size_t dstlen, const char *v, size_t len, bool brackets)
{
	char tmp[SMTP_PARSE_PATH_MAX + 3];
	size_t n = 0, i;
	bool plain = true;

	if (brackets)
		tmp[n++] = '<';
	for (i = 0; i < len && n < sizeof(tmp) - 2; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=')
			plain = false;
		tmp[n++] = (char)c;
	}
	if (i < len)
		plain = false;
	if (brackets)
		tmp[n++] = '>';
	if (plain && n < dstlen) {
		memcpy(dst, tmp, n);
		dst[n] = '\0';
		return dst;
	}
	return log_quote(dst, dstlen, tmp, n);
}

/* The queue's filesystem or map is too full for a message of size
 * bytes: 452 4.3.1 before the client sends a body (Postfix refuses at
 * MAIL the same way). */
static bool
smtp_in_room(struct smtp_in *s, uint64_t size, struct buf *out)
{
	if (s->cfg->room == NULL ||
	    s->cfg->room(s->cfg->room_arg, size, s->cfg->max_message_size))
		return true;
	smtp_in_reply(s, out, "452 4.3.1 Insufficient system storage");
	log_event("event=rejected client=%s reason=storage", s->peer.addr);
	return false;
}

/* Forget the transaction: envelope, body and their budget. */
static void
smtp_in_tx_reset(struct smtp_in *s)
{
	buf_fini(&s->env);
	smtp_body_reset(&s->b);
	s->nrcpts = 0;
	s->smtputf8 = false;
	s->declared = 0;
	smtp_dsn_tx_reset(&s->dsn);
	s->id = 0;
	dkim_msg_free(s->dk);
	s->dk = NULL;
	free(s->from_bad);
	s->from_bad = NULL;
}

static const char *
smtp_in_state_name(enum smtp_in_state st)
{
	static const char *names[] = {"connected", "helo", "mail", "rcpt",
	    "data", "bdat", "auth_plain", "auth_user", "auth_pass"};

	return (size_t)st < MTA_ARRAY_LEN(names) ? names[st] : "?";
}

/*
 * The one place the state changes. Leaving a transaction for CONNECTED or
 * HELO drops it, so no path can leak an envelope into the next one.
 */
static void
smtp_in_enter_state(struct smtp_in *s, enum smtp_in_state st)
{
	if (log_debug_enabled())
		log_debug("event=smtp-in-state client=%s from=%s to=%s",
		    s->peer.addr, smtp_in_state_name(s->state),
		    smtp_in_state_name(st));
	switch (st) {
	case SMTP_IN_S_CONNECTED:
	case SMTP_IN_S_HELO:
		if (s->state == SMTP_IN_S_MAIL || s->state == SMTP_IN_S_RCPT ||
		    s->state == SMTP_IN_S_DATA || s->state == SMTP_IN_S_BDAT) {
			if (!s->tx_ended)
				metrics_inc(METRICS_TX_ABORTED);
			smtp_in_tx_reset(s);
		}
		break;
	case SMTP_IN_S_MAIL:
		s->tx_ended = false;
		break;
	case SMTP_IN_S_DATA:
		s->nreq++; /* a new deadline: the content's */
		break;
	default:
		break;
	}
	s->state = st;
}

static void
smtp_in_auth_wipe(struct smtp_in *s)
{
	if (s->pass != NULL) {
		explicit_bzero(s->pass, strlen(s->pass));
		free(s->pass);
		s->pass = NULL;
	}
}

/* ---- Received header ---- */

/* "from\0rcpt1\0..." -> the i-th string (0 = sender). */
static const char *
smtp_in_env_str(const struct smtp_in *s, size_t i)
{
	const char *p = (const char *)buf_peek(&s->env);

	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

/*
 * The HELO name as it goes into Received: characters that would open or
 * close a comment, quote, escape or end an address there become '?', as
 * Postfix neuters them, so "from" stays one token and the comment after
 * it stays whole. (Controls and spaces were refused at HELO.)
 */
static void
smtp_in_helo_neuter(char *dst, size_t dstlen, const char *helo)
{
	size_t i;

	for (i = 0; helo[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = strchr(" <>()\\\";@", helo[i]) != NULL ||
		                 (unsigned char)helo[i] < ' ' ||
		                 (unsigned char)helo[i] >= 0x7f
		             ? '?'
		             : helo[i];
	dst[i] = '\0';
}

static int
smtp_in_received(struct smtp_in *s)
{
	char date[64], tcpinfo[80], helo[SMTP_IN_HELO_MAX + 1];
	const char *proto;

	clock_rfc5322(clock_wall_ms(), date, sizeof(date));
	smtp_in_helo_neuter(helo, sizeof(helo), s->helo);
	/* a local client by its uid, as Postfix says "from userid N" */
	if (s->peer.local)
		(void)str_fmt(tcpinfo, sizeof(tcpinfo), "local, from userid %u",
		    (unsigned)s->peer.uid);
	else if (!str_fmt(tcpinfo, sizeof(tcpinfo), "rdns-less [%s%s]",
	             strchr(s->peer.addr, ':') != NULL ? "IPv6:" : "",
	             s->peer.addr))
		return -ENAMETOOLONG;
	/* RFC 3848 protocol types; AUTH data never appears. */
	if (!s->esmtp)
		proto = "SMTP";
	else if (s->tls)
		proto = s->authed ? "ESMTPSA" : "ESMTPS";
	else
		proto = s->authed ? "ESMTPA" : "ESMTP";
	if (buf_appendf(&s->b.buf,
	        "Received: from %s (%s)\r\n"
	        "\tby %s (mta) with %s id %016" PRIx64 "%s",
	        helo, tcpinfo, s->cfg->hostname, proto, s->id,
	        s->nrcpts == 1 ? "\r\n\tfor <" : ";\r\n\t") != 0)
		return -ENOBUFS;
	if (s->nrcpts == 1 &&
	    buf_appendf(&s->b.buf, "%s>; ", smtp_in_env_str(s, 1)) != 0)
		return -ENOBUFS;
	if (buf_appendf(&s->b.buf, "%s\r\n", date) != 0)
		return -ENOBUFS;
	return 0;
}

/* ---- checks ---- */

static bool
smtp_in_check_helo(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	if (s->state == SMTP_IN_S_CONNECTED) {
		smtp_in_error(s, out, "503 5.5.1 Error: send HELO/EHLO first");
		return false;
	}
	return true;
}

static bool
smtp_in_check_mail(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	if (!smtp_in_check_helo(s, cmd, out))
		return false;
	if (s->state != SMTP_IN_S_HELO) {
		smtp_in_error(s, out, "503 5.5.1 Error: nested MAIL command");
		return false;
	}
	return true;
}

static bool
smtp_in_check_rcpt(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	if (s->state != SMTP_IN_S_MAIL && s->state != SMTP_IN_S_RCPT) {
		smtp_in_error(s, out, "503 5.5.1 Error: need MAIL command");
		return false;
	}
	return true;
}

static bool
smtp_in_check_data(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	/*
	 * RFC 2920 3.1: DATA ends a pipelined group; the client waits for
	 * 354. Bytes already behind it were sent blind, and would run as
	 * commands if DATA failed: a desynchronised or hostile client.
	 */
	if (s->more > 0) {
		smtp_in_reply(
		    s, out, "554 5.5.0 Error: SMTP protocol synchronization");
		log_event(
		    "event=rejected client=%s reason=pipelining", s->peer.addr);
		smtp_in_close(s);
		return false;
	}
	if (s->state == SMTP_IN_S_MAIL) {
		smtp_in_error(s, out, "503 5.5.1 Error: need RCPT command");
		return false;
	}
	if (s->state == SMTP_IN_S_BDAT) { /* RFC 3030 2 */
		smtp_in_error(s, out, "503 5.5.1 Error: DATA after BDAT");
		return false;
	}
	if (s->state != SMTP_IN_S_RCPT) {
		smtp_in_error(s, out, "503 5.5.1 Error: need MAIL command");
		return false;
	}
	if (cmd->arglen > 0) {
		smtp_in_error(s, out, "501 5.5.4 Syntax: DATA");
		return false;
	}
	return true;
}

static bool
smtp_in_check_starttls(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	if (!s->cfg->tls_available) {
		smtp_in_error(
		    s, out, "502 5.5.1 Error: command not implemented");
		return false;
	}
	if (!smtp_in_check_helo(s, cmd, out))
		return false;
	if (s->tls) {
		smtp_in_error(s, out, "503 5.5.1 Error: TLS already active");
		return false;
	}
	if (s->state != SMTP_IN_S_HELO) {
		smtp_in_error(
		    s, out, "503 5.5.1 Error: MAIL transaction in progress");
		return false;
	}
	if (cmd->arglen > 0) {
		smtp_in_error(s, out, "501 5.5.4 Syntax: STARTTLS");
		return false;
	}
	return true;
}

static bool
smtp_in_check_auth(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	/* After HELO too, as Postfix does: hand-written clients send it
	 * (SPEC). The mechanisms were not advertised to them, but are the
	 * same. */
	if (s->state == SMTP_IN_S_CONNECTED) {
		smtp_in_error(s, out, "503 5.5.1 Error: send HELO/EHLO first");
		return false;
	}
	if (s->authed) {
		smtp_in_error(s, out, "503 5.5.1 Error: already authenticated");
		return false;
	}
	if (s->state != SMTP_IN_S_HELO) {
		smtp_in_error(
		    s, out, "503 5.5.1 Error: MAIL transaction in progress");
		return false;
	}
	if (!s->cfg->auth_available) {
		smtp_in_error(
		    s, out, "503 5.5.1 Error: authentication not enabled");
		return false;
	}
	if (s->cfg->auth_require_tls && !s->tls) {
		smtp_in_error(s, out,
		    "538 5.7.11 Encryption required for "
		    "requested authentication mechanism");
		return false;
	}
	return true;
}

/* ---- proceed ---- */

/* RFC 5321 4.1.1.1: a domain or address literal; we only refuse what
 * would be unsafe or meaningless in a Received header. */
static bool
smtp_in_helo_ok(const char *p, size_t len)
{
	if (len == 0 || len > SMTP_IN_HELO_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return false;
	return true;
}

static void
smtp_in_proceed_helo(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	bool ehlo = smtp_parse_verb_is(cmd, "EHLO");

	if (!smtp_in_helo_ok(cmd->arg, cmd->arglen)) {
		smtp_in_error(s, out, "501 5.5.4 Syntax: %s hostname",
		    ehlo ? "EHLO" : "HELO");
		return;
	}
	str_ncopy(s->helo, sizeof(s->helo), cmd->arg, cmd->arglen);
	s->esmtp = ehlo;
	/* RFC 5321 4.1.4: a new EHLO/HELO resets the transaction. */
	smtp_in_enter_state(s, SMTP_IN_S_HELO);
	if (!ehlo) {
		smtp_in_reply(s, out, "250 %s", s->cfg->hostname);
		return;
	}
	smtp_in_reply(s, out, "250-%s", s->cfg->hostname);
	smtp_in_reply(s, out, "250-PIPELINING");
	smtp_in_reply(s, out, "250-SIZE %" PRIu64, s->cfg->max_message_size);
	smtp_in_reply(s, out, "250-8BITMIME");
	smtp_in_reply(s, out, "250-CHUNKING");
	smtp_in_reply(s, out, "250-SMTPUTF8");
	smtp_in_reply(s, out, "250-DSN");
	if (s->cfg->tls_available && !s->tls)
		smtp_in_reply(s, out, "250-STARTTLS");
	if (s->cfg->auth_available && (s->tls || !s->cfg->auth_require_tls))
		smtp_in_reply(s, out, "250-AUTH PLAIN LOGIN");
	smtp_in_reply(s, out, "250 ENHANCEDSTATUSCODES");
}

static void
smtp_in_path_error(
    struct smtp_in *s, struct buf *out, enum smtp_parse_status st, bool mail)
{
	const char *what = mail ? "MAIL FROM" : "RCPT TO";
	const char *dsn = mail ? "5.1.7" : "5.1.3";

	switch (st) {
	case SMTP_PARSE_SYNTAX:
		smtp_in_error(s, out, "501 5.5.4 Syntax: %s:<address>", what);
		break;
	case SMTP_PARSE_TOOLONG:
		smtp_in_error(s, out, "501 %s Error: address too long", dsn);
		break;
	case SMTP_PARSE_PARAM_UNKNOWN:
		smtp_in_error(s, out, "555 5.5.4 Error: unsupported parameter");
		break;
	case SMTP_PARSE_PARAM_BAD:
		smtp_in_error(s, out, "501 5.5.4 Error: bad parameter");
		break;
	case SMTP_PARSE_ADDRESS:
	default:
		smtp_in_error(s, out, "501 %s Error: bad %s address syntax",
		    dsn, mail ? "sender" : "recipient");
		break;
	}
}

/* Who the session is for [limit] keys; dom (SMTP_PARSE_PATH_MAX + 1
 * bytes) holds the sender's domain, lowercase. */
static void
smtp_in_subject(const struct smtp_in *s, const char *sender, size_t len,
    char *dom, struct limits_subject *subj)
{
	const char *at = memrchr(sender, '@', len);

	subj->user = s->authed ? s->user : NULL;
	subj->client = s->peer.local ? NULL : s->peer.addr;
	subj->sender_domain = NULL;
	if (at != NULL && str_ncopy(dom, SMTP_PARSE_PATH_MAX + 1, at + 1,
	                      len - (size_t)(at + 1 - sender))) {
		str_lower(dom);
		subj->sender_domain = dom;
	}
}

/* Over limit name: the log line and the 450. */
static void
smtp_in_limit_refused(struct smtp_in *s, enum config_limit_count what,
    const char *name, const char *user, struct buf *out)
{
	static const char *const what_name[] = {
	    "messages", "recipients", "connections", "bytes"};

	log_event("event=rejected client=%s reason=rate_limit limit=%s "
	          "count=%s user=%s",
	    s->peer.addr, name, what_name[what], user ? user : "-");
	smtp_in_reply(
	    s, out, "450 4.7.1 Error: too many %s, slow down", what_name[what]);
}

/*
 * Charge n units of what (sender: the MAIL FROM address) against the
 * [limit] sections; false: over one, 450 4.7.1 in out and the limit's
 * name in the log. Bytes ask with n = 0: is the key out of debt?
 */
static bool
smtp_in_limit_ok(struct smtp_in *s, enum config_limit_count what,
    const char *sender, size_t len, uint64_t n, struct buf *out)
{
	struct limits_subject subj;
	char dom[SMTP_PARSE_PATH_MAX + 1];
	const char *name = "?";

	if (!limits_counts(s->cfg->limits, what))
		return true;
	smtp_in_subject(s, sender, len, dom, &subj);
	if (limits_take(s->cfg->limits, what, &subj, n, limits_now(), &name))
		return true;
	smtp_in_limit_refused(s, what, name, subj.user, out);
	return false;
}

/* [limits] backend = redis: the message limits are asked of the shared
 * store (SMTP_IN_LIMIT) before the MAIL goes on; true: asked, and the
 * MAIL runs again from smtp_in_limit_done with the answer. */
static bool
smtp_in_limit_defer(struct smtp_in *s, const struct smtp_parse_cmd *cmd,
    const struct smtp_parse_path *p)
{
	if (!s->cfg->limits_shared || s->limit_arg != NULL ||
	    !limits_counts(s->cfg->limits, CONFIG_LIMIT_MESSAGES))
		return false;
	s->limit_arg = xmalloc(cmd->arglen + 1);
	memcpy(s->limit_arg, cmd->arg, cmd->arglen);
	s->limit_arg[cmd->arglen] = '\0';
	s->limit_arglen = cmd->arglen;
	s->limit_answer = LIMIT_ASK;
	smtp_in_subject(s, p->addr, p->addrlen, s->limit_dom, &s->limit_subj);
	s->pending = SMTP_IN_LIMIT;
	return true;
}

/* MAIL: the message and byte limits. */
static bool
smtp_in_mail_limits(
    struct smtp_in *s, const struct smtp_parse_path *p, struct buf *out)
{
	if (s->limit_arg != NULL && s->limit_answer == LIMIT_REFUSED) {
		smtp_in_limit_refused(s, CONFIG_LIMIT_MESSAGES, s->limit_name,
		    s->limit_subj.user, out);
		return false;
	}
	return (s->limit_arg != NULL ||
	           smtp_in_limit_ok(s, CONFIG_LIMIT_MESSAGES, p->addr,
	               p->addrlen, 1, out)) &&
	       smtp_in_limit_ok(
	           s, CONFIG_LIMIT_BYTES, p->addr, p->addrlen, 0, out);
}

/* Relaying by relay_networks (the local socket is not a relay client:
 * it is trusted by uid, like Postfix's sendmail). */
static bool
smtp_in_relay_client(const struct smtp_in *s)
{
	return s->peer.relay_allowed && !s->peer.local;
}

/* The sender policy for this client; false: refused (553 in out). */
static bool
smtp_in_sender_ok(
    struct smtp_in *s, const struct smtp_parse_path *p, struct buf *out)
{
	const char *user = s->authed ? s->user : NULL;
	char v[SMTP_PARSE_PATH_MAX * 4 + 8];
	enum sender_verdict vd;

	vd = sender_policy_check(s->cfg->senders, user, smtp_in_relay_client(s),
	    p->addr, p->addrlen);
	if (vd == SENDER_OK)
		return true;
	smtp_in_logval(v, sizeof(v), p->addr, p->addrlen, true);
	log_event("event=rejected client=%s reason=%s from=%s user=%s",
	    s->peer.addr, user ? "sender_not_owned" : "sender_not_allowed", v,
	    user ? user : "-");
	if (user != NULL)
		smtp_in_reply(s, out,
		    "553 5.7.1 <%.*s>: sender not owned by user %s",
		    (int)p->addrlen, p->addr, user);
	else
		smtp_in_reply(s, out,
		    "553 5.7.1 <%.*s>: sender not allowed from this client",
		    (int)p->addrlen, p->addr);
	return false;
}

static void
smtp_in_proceed_mail(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	struct smtp_parse_path p;
	enum smtp_parse_status st;
	char v[SMTP_PARSE_PATH_MAX * 4 + 8];
	size_t max;

	if ((st = smtp_parse_mail(cmd->arg, cmd->arglen, &p)) !=
	    SMTP_PARSE_OK) {
		smtp_in_path_error(s, out, st, true);
		return;
	}
	/* Extensions were offered to EHLO only (RFC 6152, RFC 6531). */
	if (!s->esmtp && (p.smtputf8 || p.body == SMTP_PARSE_BODY_8BITMIME)) {
		smtp_in_error(s, out, "555 5.5.4 Unsupported option: %s",
		    p.smtputf8 ? "SMTPUTF8" : "BODY=8BITMIME");
		return;
	}
	if (p.has_size && p.size > s->cfg->max_message_size) {
		smtp_in_reply(s, out,
		    "552 5.3.4 Error: message size exceeds fixed limit");
		log_event("event=rejected client=%s reason=size from=%s "
		          "size=%" PRIu64,
		    s->peer.addr,
		    smtp_in_logval(v, sizeof(v), p.addr, p.addrlen, true),
		    p.size);
		return;
	}
	if (!smtp_in_sender_ok(s, &p, out) || smtp_in_limit_defer(s, cmd, &p) ||
	    !smtp_in_mail_limits(s, &p, out))
		return;
	if (!smtp_in_room(s, p.has_size ? p.size : 0, out))
		return;
	/* Sender and every recipient, each with its NUL. */
	max = ((size_t)s->cfg->max_recipients + 1) * (SMTP_PARSE_PATH_MAX + 1);
	buf_init(&s->env, max);
	if (buf_append(&s->env, p.addr, p.addrlen) != 0 ||
	    buf_append(&s->env, "", 1) != 0) {
		smtp_in_reply(s, out, "452 4.3.1 Insufficient system storage");
		buf_fini(&s->env);
		return;
	}
	s->smtputf8 = p.smtputf8;
	s->declared = p.has_size ? p.size : 0;
	smtp_dsn_tx_mail(&s->dsn, &p);
	smtp_in_enter_state(s, SMTP_IN_S_MAIL);
	smtp_in_reply(s, out, "250 2.1.0 Ok");
}

static bool
smtp_in_rcpt_dup(const struct smtp_in *s, const char *a, size_t len)
{
	const char *p = smtp_in_env_str(s, 1);

	for (size_t i = 0; i < s->nrcpts; i++) {
		size_t n = strlen(p);

		if (n == len && memcmp(p, a, len) == 0)
			return true;
		p += n + 1;
	}
	return false;
}

static void
smtp_in_proceed_rcpt(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	struct smtp_parse_path p;
	enum smtp_parse_status st;
	char v[SMTP_PARSE_PATH_MAX * 4 + 8];

	if ((st = smtp_parse_rcpt(cmd->arg, cmd->arglen, s->smtputf8, &p)) !=
	    SMTP_PARSE_OK) {
		smtp_in_path_error(s, out, st, false);
		return;
	}
	/* No local domains: every recipient is a relay. */
	if (!s->authed && !s->peer.relay_allowed) {
		log_event("event=rejected client=%s reason=relay_denied "
		          "rcpt=%s",
		    s->peer.addr,
		    smtp_in_logval(v, sizeof(v), p.addr, p.addrlen, true));
		smtp_in_error(s, out, "554 5.7.1 Relay access denied");
		return;
	}
	/* x@[10.0.0.1] would aim the relay at any address, internal ones
	 * first: refused unless the admin allows it */
	if (!s->cfg->allow_address_literals &&
	    smtp_parse_addr_literal(p.addr, p.addrlen)) {
		log_event("event=rejected client=%s reason=address_literal "
		          "rcpt=%s",
		    s->peer.addr,
		    smtp_in_logval(v, sizeof(v), p.addr, p.addrlen, true));
		smtp_in_error(
		    s, out, "550 5.7.1 Address literals are not accepted here");
		return;
	}
	/* A duplicate is accepted once: one delivery per mailbox. */
	if (smtp_in_rcpt_dup(s, p.addr, p.addrlen)) {
		smtp_in_reply(s, out, "250 2.1.5 Ok");
		return;
	}
	if (s->nrcpts >= s->cfg->max_recipients) {
		smtp_in_reply(s, out, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (!smtp_in_limit_ok(s, CONFIG_LIMIT_RECIPIENTS, smtp_in_env_str(s, 0),
	        strlen(smtp_in_env_str(s, 0)), 1, out))
		return;
	if (memchr(p.addr, '\0', p.addrlen) != NULL ||
	    buf_append(&s->env, p.addr, p.addrlen) != 0 ||
	    buf_append(&s->env, "", 1) != 0) {
		smtp_in_reply(s, out, "452 4.3.1 Insufficient system storage");
		return;
	}
	smtp_dsn_tx_rcpt(&s->dsn, s->nrcpts, &p);
	s->nrcpts++;
	smtp_in_enter_state(s, SMTP_IN_S_RCPT);
	smtp_in_reply(s, out, "250 2.1.5 Ok");
}

/*
 * The message starts (DATA, or the first BDAT): budget, id, our Received
 * header. False: refused, and the reply is in out.
 */
static bool
smtp_in_body_start(struct smtp_in *s, struct buf *out)
{
	/* Again: the disk may have filled since MAIL. */
	if (!smtp_in_room(s, s->declared, out))
		return false;
	if (!smtp_body_begin(&s->b, SMTP_IN_RCVD_MAX)) {
		smtp_in_reply(s, out, "452 4.3.1 Insufficient system storage");
		log_event("event=rejected client=%s reason=inflight_budget",
		    s->peer.addr);
		return false;
	}
	s->id = s->cfg->id_new(s->cfg->id_arg);
	if (smtp_in_received(s) != 0) {
		smtp_in_enter_state(s, SMTP_IN_S_HELO);
		smtp_in_reply(s, out, "451 4.3.0 Error: local error");
		return false;
	}
	smtp_body_open(&s->b);
	str_copy(s->dkim, sizeof(s->dkim), "none");
	return true;
}

static void
smtp_in_proceed_data(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	if (!smtp_in_body_start(s, out))
		return;
	smtp_in_enter_state(s, SMTP_IN_S_DATA);
	smtp_in_reply(s, out, "354 End data with <CR><LF>.<CR><LF>");
}

static void
smtp_in_proceed_rset(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	if (s->state != SMTP_IN_S_CONNECTED)
		smtp_in_enter_state(s, SMTP_IN_S_HELO);
	smtp_in_reply(s, out, "250 2.0.0 Ok");
}

static void
smtp_in_proceed_noop(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	smtp_in_reply(s, out, "250 2.0.0 Ok");
}

static void
smtp_in_proceed_quit(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	smtp_in_reply(s, out, "221 2.0.0 Bye");
	smtp_in_close(s);
}

static void
smtp_in_proceed_vrfy(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	/* RFC 5321 3.5.3: 252 says nothing about the mailbox. */
	smtp_in_reply(
	    s, out, "252 2.0.0 Cannot VRFY user, but will accept message");
}

static void
smtp_in_proceed_help(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	smtp_in_reply(s, out,
	    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
	    "BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

static void
smtp_in_proceed_starttls(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	(void)cmd;
	smtp_in_reply(s, out, "220 2.0.0 Ready to start TLS");
	/*
	 * CVE-2011-0411: plaintext already behind STARTTLS must never be
	 * read as if it came through TLS. The callers drop it (s->in may be
	 * the very buffer being walked, so not here).
	 */
	s->discard = true;
	s->pending = SMTP_IN_STARTTLS;
}

/* ---- AUTH (RFC 4954) ---- */

static void
smtp_in_auth_fail(struct smtp_in *s, struct buf *out)
{
	char u[SMTP_IN_USER_MAX * 4 + 8];

	smtp_in_auth_wipe(s);
	metrics_inc(METRICS_AUTH_FAILURE);
	log_event("event=auth_failed client=%s user=%s", s->peer.addr,
	    smtp_in_logval(u, sizeof(u), s->user, strlen(s->user), false));
	s->user[0] = '\0';
	smtp_in_reply(s, out, "535 5.7.8 Error: authentication failed");
	if (++s->nauthfail >= s->cfg->auth_max_failures) {
		smtp_in_reply(s, out,
		    "421 4.7.0 %s Error: too many authentication failures",
		    s->cfg->hostname);
		smtp_in_close(s);
	}
}

/* The credentials are complete: hand them to the loop. */
static void
smtp_in_auth_ready(struct smtp_in *s, const uint8_t *pass, size_t len)
{
	s->pass = xmalloc(len + 1);
	memcpy(s->pass, pass, len);
	s->pass[len] = '\0';
	s->pending = SMTP_IN_AUTH;
}

static bool
smtp_in_set_user(struct smtp_in *s, const uint8_t *p, size_t len)
{
	if (len == 0 || len > SMTP_IN_USER_MAX || memchr(p, '\0', len) != NULL)
		return false;
	memcpy(s->user, p, len);
	s->user[len] = '\0';
	return true;
}

/* Decode one client response; "=" alone is an empty initial response.
 * Returns the length, or -1 after replying. */
static int
smtp_in_auth_decode(struct smtp_in *s, const char *p, size_t len, uint8_t *dec,
    size_t decmax, struct buf *out)
{
	int n;

	if (len == 1 && p[0] == '=')
		return 0;
	if ((n = smtp_parse_base64(p, len, dec, decmax)) < 0) {
		smtp_in_reply(s, out, "501 5.5.2 Error: invalid base64 data");
		return -1;
	}
	return n;
}

/* PLAIN: authzid NUL authcid NUL passwd (RFC 4616). */
static void
smtp_in_auth_plain(
    struct smtp_in *s, const char *p, size_t len, struct buf *out)
{
	uint8_t dec[SMTP_IN_AUTH_MAX];
	const uint8_t *z1, *z2;
	size_t zlen, ulen, plen;
	int n;

	smtp_in_enter_state(s, SMTP_IN_S_HELO);
	if ((n = smtp_in_auth_decode(s, p, len, dec, sizeof(dec), out)) < 0)
		return;
	if ((z1 = memchr(dec, '\0', (size_t)n)) == NULL ||
	    (z2 = memchr(z1 + 1, '\0', (size_t)n - (size_t)(z1 + 1 - dec))) ==
	        NULL) {
		smtp_in_auth_fail(s, out);
		goto wipe;
	}
	zlen = (size_t)(z1 - dec);
	ulen = (size_t)(z2 - z1 - 1);
	plen = (size_t)n - (size_t)(z2 + 1 - dec);
	/* No proxy authorization: authzid is empty or the user itself. */
	if ((zlen != 0 && (zlen != ulen || memcmp(dec, z1 + 1, ulen) != 0)) ||
	    !smtp_in_set_user(s, z1 + 1, ulen) || plen > SMTP_IN_PASS_MAX ||
	    memchr(z2 + 1, '\0', plen) != NULL) {
		smtp_in_auth_fail(s, out);
		goto wipe;
	}
	smtp_in_auth_ready(s, z2 + 1, plen);
wipe:
	explicit_bzero(dec, sizeof(dec));
}

static void
smtp_in_auth_login_user(
    struct smtp_in *s, const char *p, size_t len, struct buf *out)
{
	uint8_t dec[SMTP_IN_AUTH_MAX];
	int n;

	smtp_in_enter_state(s, SMTP_IN_S_HELO);
	if ((n = smtp_in_auth_decode(s, p, len, dec, sizeof(dec), out)) < 0)
		return;
	if (!smtp_in_set_user(s, dec, (size_t)n)) {
		smtp_in_auth_fail(s, out);
		return;
	}
	smtp_in_enter_state(s, SMTP_IN_S_AUTH_PASS);
	smtp_in_reply(s, out, "334 UGFzc3dvcmQ6");
}

static void
smtp_in_auth_login_pass(
    struct smtp_in *s, const char *p, size_t len, struct buf *out)
{
	uint8_t dec[SMTP_IN_AUTH_MAX];
	int n;

	smtp_in_enter_state(s, SMTP_IN_S_HELO);
	if ((n = smtp_in_auth_decode(s, p, len, dec, sizeof(dec), out)) < 0)
		goto wipe;
	if ((size_t)n > SMTP_IN_PASS_MAX || memchr(dec, '\0', (size_t)n)) {
		smtp_in_auth_fail(s, out);
		goto wipe;
	}
	smtp_in_auth_ready(s, dec, (size_t)n);
wipe:
	explicit_bzero(dec, sizeof(dec));
}

/* A line while an AUTH exchange waits for the client. */
static void
smtp_in_auth_line(
    struct smtp_in *s, const char *line, size_t len, struct buf *out)
{
	if (len == 1 && line[0] == '*') {
		smtp_in_enter_state(s, SMTP_IN_S_HELO);
		s->user[0] = '\0';
		smtp_in_reply(s, out, "501 5.7.0 Authentication cancelled");
		return;
	}
	/* A continuation line is the bare response: "=" is not special. */
	if (len == 1 && line[0] == '=') {
		smtp_in_enter_state(s, SMTP_IN_S_HELO);
		smtp_in_reply(s, out, "501 5.5.2 Error: invalid base64 data");
		return;
	}
	switch (s->state) {
	case SMTP_IN_S_AUTH_PLAIN:
		smtp_in_auth_plain(s, line, len, out);
		break;
	case SMTP_IN_S_AUTH_USER:
		smtp_in_auth_login_user(s, line, len, out);
		break;
	case SMTP_IN_S_AUTH_PASS:
	default:
		smtp_in_auth_login_pass(s, line, len, out);
		break;
	}
}

static void
smtp_in_proceed_auth(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	const char *mech = cmd->arg, *ir = NULL, *sp;
	size_t mechlen = cmd->arglen, irlen = 0;

	if ((sp = memchr(mech, ' ', mechlen)) != NULL) {
		ir = sp + 1;
		irlen = mechlen - (size_t)(ir - mech);
		mechlen = (size_t)(sp - mech);
		while (irlen > 0 && ir[0] == ' ') {
			ir++;
			irlen--;
		}
		if (irlen == 0 || memchr(ir, ' ', irlen) != NULL) {
			smtp_in_error(s, out,
			    "501 5.5.4 Syntax: AUTH mechanism [response]");
			return;
		}
	}
	if (mechlen == 0) {
		smtp_in_error(
		    s, out, "501 5.5.4 Syntax: AUTH mechanism [response]");
		return;
	}
	if (str_ieq(mech, mechlen, "PLAIN")) {
		if (ir != NULL) {
			smtp_in_auth_plain(s, ir, irlen, out);
			return;
		}
		smtp_in_enter_state(s, SMTP_IN_S_AUTH_PLAIN);
		smtp_in_reply(s, out, "334 ");
	} else if (str_ieq(mech, mechlen, "LOGIN")) {
		if (ir != NULL) {
			smtp_in_auth_login_user(s, ir, irlen, out);
			return;
		}
		smtp_in_enter_state(s, SMTP_IN_S_AUTH_USER);
		smtp_in_reply(s, out, "334 VXNlcm5hbWU6");
	} else {
		smtp_in_error(s, out,
		    "504 5.5.4 Error: unrecognized authentication type");
	}
}

static const struct smtp_in_cmd smtp_in_commands[] = {
    {"EHLO", NULL, smtp_in_proceed_helo},
    {"HELO", NULL, smtp_in_proceed_helo},
    {"MAIL", smtp_in_check_mail, smtp_in_proceed_mail},
    {"RCPT", smtp_in_check_rcpt, smtp_in_proceed_rcpt},
    {"DATA", smtp_in_check_data, smtp_in_proceed_data},
    {"BDAT", NULL, smtp_in_proceed_bdat},
    {"RSET", NULL, smtp_in_proceed_rset},
    {"NOOP", NULL, smtp_in_proceed_noop},
    {"QUIT", NULL, smtp_in_proceed_quit},
    {"VRFY", NULL, smtp_in_proceed_vrfy},
    {"HELP", NULL, smtp_in_proceed_help},
    {"STARTTLS", smtp_in_check_starttls, smtp_in_proceed_starttls},
    {"AUTH", smtp_in_check_auth, smtp_in_proceed_auth},
};

/* ---- lines ---- */

static void
smtp_in_line_error(struct smtp_in *s, struct buf *out, const char *what)
{
	/* A broken AUTH response ends the exchange, not just the line. */
	if (s->state >= SMTP_IN_S_AUTH_PLAIN) {
		smtp_in_enter_state(s, SMTP_IN_S_HELO);
		s->user[0] = '\0';
	}
	smtp_in_error(s, out, "500 5.5.2 Error: %s", what);
}

/* A line over its limit was dropped; auth: an AUTH command or response. */
static void
smtp_in_toolong(struct smtp_in *s, struct buf *out, bool auth)
{
	s->nreq++;
	if (!auth) {
		smtp_in_line_error(s, out, "line too long");
		return;
	}
	/* RFC 4954 4: the exchange fails with its own code */
	if (s->state >= SMTP_IN_S_AUTH_PLAIN) {
		smtp_in_enter_state(s, SMTP_IN_S_HELO);
		s->user[0] = '\0';
	}
	smtp_in_error(
	    s, out, "500 5.5.6 Authentication Exchange line is too long");
}

/*
 * HTTP sent to the SMTP port (a browser, a proxy probe through an open
 * proxy): a method, a request line "X /path HTTP/1.1", or a header line
 * ("Host:"), as Postfix's smtpd_forbidden_commands. No SMTP verb ends
 * in ':' or takes "HTTP/" as its third word.
 */
static bool
smtp_in_forbidden(const char *line, size_t len)
{
	static const char *const verbs[] = {
	    "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS"};
	const char *sp = memchr(line, ' ', len), *sp2;
	size_t vlen = sp != NULL ? (size_t)(sp - line) : len;

	if (sp != NULL && vlen > 0 && line[vlen - 1] == ':')
		return true; /* "Name: value" */
	for (size_t i = 0; i < MTA_ARRAY_LEN(verbs); i++)
		if (str_ieq(line, vlen, verbs[i]))
			return true;
	if (sp == NULL || (sp2 = memchr(sp + 1, ' ', len - vlen - 1)) == NULL)
		return false;
	return str_iprefix(sp2 + 1, len - (size_t)(sp2 + 1 - line), "HTTP/");
}

/* Postfix's answer to HTTP: a 221 and the connection closed at once. */
static void
smtp_in_http(struct smtp_in *s, const char *line, size_t len, struct buf *out)
{
	const char *sp = memchr(line, ' ', len);
	size_t vlen = sp != NULL ? (size_t)(sp - line) : len;
	char v[64];

	log_event("event=rejected client=%s reason=http_command cmd=%s",
	    s->peer.addr,
	    smtp_in_logval(v, sizeof(v), line, vlen < 16 ? vlen : 16, false));
	smtp_in_reply(
	    s, out, "221 2.7.0 Error: I can break rules, too. Goodbye.");
	smtp_in_close(s);
}

/* One command line, LF included. */
static void
smtp_in_line(
    struct smtp_in *s, const char *line, size_t linelen, struct buf *out)
{
	struct smtp_parse_cmd cmd;
	size_t len;

	s->nreq++;
	if (linelen >= 2 && line[linelen - 2] == '\r')
		len = linelen - 2;
	else if (!s->cfg->bare_reject)
		len = linelen - 1; /* a bare LF ends the line (normalize) */
	else {
		smtp_in_line_error(s, out, "bare <LF> received");
		return;
	}
	if (memchr(line, '\r', len) != NULL) {
		smtp_in_line_error(s, out, "bare <CR> received");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		smtp_in_line_error(s, out, "NUL character received");
		return;
	}
	if (s->state >= SMTP_IN_S_AUTH_PLAIN) {
		smtp_in_auth_line(s, line, len, out);
		return;
	}
	if (smtp_in_forbidden(line, len)) {
		smtp_in_http(s, line, len, out);
		return;
	}
	if (smtp_parse_command(line, len, &cmd)) {
		for (size_t i = 0; i < MTA_ARRAY_LEN(smtp_in_commands); i++) {
			const struct smtp_in_cmd *c = &smtp_in_commands[i];

			if (!smtp_parse_verb_is(&cmd, c->verb))
				continue;
			if (c->check == NULL || c->check(s, &cmd, out))
				c->proceed(s, &cmd, out);
			return;
		}
	}
	smtp_in_error(s, out, "500 5.5.1 Error: command not recognized");
}

/* ---- DATA and BDAT ---- */

/* The transaction got its final reply: count the message's fate. */
static void
smtp_in_count_end(struct smtp_in *s, enum metrics_counter msg)
{
	s->tx_ended = true;
	metrics_inc(msg);
	metrics_inc(msg == METRICS_MSG_ACCEPTED ? METRICS_TX_ACCEPTED
	                                        : METRICS_TX_REFUSED);
}

static void
smtp_in_data_reject(
    struct smtp_in *s, struct buf *out, const char *reason, const char *fmt)
{
	char v[SMTP_PARSE_PATH_MAX * 4 + 8];
	const char *from = smtp_in_env_str(s, 0);

	log_event("event=rejected client=%s reason=%s from=%s rcpts=%zu "
	          "size=%" PRIu64,
	    s->peer.addr, reason,
	    smtp_in_logval(v, sizeof(v), from, strlen(from), true), s->nrcpts,
	    s->b.size);
	smtp_in_count_end(s,
	    fmt[0] == '4' ? METRICS_MSG_REFUSED_4XX : METRICS_MSG_REFUSED_5XX);
	smtp_in_enter_state(s, SMTP_IN_S_HELO);
	smtp_in_reply(s, out, "%s", fmt);
}

static struct queue_submit *
smtp_in_submit_new(struct smtp_in *s)
{
	struct queue_submit *req = xcalloc(1, sizeof(*req));
	const char *p;

	req->msg.type = QUEUE_REQ_SUBMIT;
	req->id = s->id;
	req->from = xstrdup(smtp_in_env_str(s, 0));
	req->rcpts = xcalloc(s->nrcpts, sizeof(*req->rcpts));
	p = smtp_in_env_str(s, 1);
	for (size_t i = 0; i < s->nrcpts; i++) {
		req->rcpts[i] = xstrdup(p);
		p += strlen(p) + 1;
	}
	req->nrcpts = s->nrcpts;
	smtp_dsn_tx_take(&s->dsn, req);
	req->user = s->authed ? xstrdup(s->user) : NULL;
	req->client = xstrdup(s->peer.addr);
	req->helo = xstrdup(s->helo);
	req->received_ms = clock_wall_ms();
	/* The body moves as is: no copy of the message. */
	req->body = s->b.buf;
	buf_init(&s->b.buf, 0);
	return req;
}

/*
 * The header section is (start, end) of the stored message: choose the
 * DKIM keys by its From (smtp_body's tap, when [dkim] keys exist).
 * Unsigned mail says why in the log, never a reply: a message is not
 * refused for DKIM's sake.
 */
static void
smtp_in_dkim_start(void *arg, size_t start, size_t end)
{
	struct smtp_in *s = arg;
	const uint8_t *p = buf_peek(&s->b.buf) + start;

	str_copy(s->dkim, sizeof(s->dkim), "none");
	if (s->cfg->dkim == NULL)
		return;
	s->dk = dkim_msg_start(
	    s->cfg->dkim, p, end - start, s->dkim, sizeof(s->dkim));
	if (s->dk == NULL && strcmp(s->dkim, "none") != 0) {
		log_event("event=dkim-unsigned id=%016" PRIx64 " reason=%s",
		    s->id, s->dkim);
		str_copy(s->dkim, sizeof(s->dkim), "none");
	}
}

/*
 * check_from_header: is the From: address of the header section (start,
 * end) one this client may use? If not, s->from_bad keeps it for the
 * refusal at the end of the message (the body is still read, so the
 * session stays in step).
 */
static void
smtp_in_from_check(struct smtp_in *s, size_t start, size_t end)
{
	const struct sender_policy *sp = s->cfg->senders;
	const char *user = s->authed ? s->user : NULL;
	char a[SMTP_PARSE_PATH_MAX + 1];

	bool relay = smtp_in_relay_client(s);

	if (!sender_policy_check_from(sp) ||
	    !sender_policy_active(sp, user, relay))
		return;
	if (dkim_from_address(
	        buf_peek(&s->b.buf) + start, end - start, a, sizeof(a)) < 0)
		a[0] = '\0';
	/* no usable address is not the null sender: nobody owns it */
	if (a[0] != '\0' &&
	    sender_policy_check(sp, user, relay, a, strlen(a)) == SENDER_OK)
		return;
	for (char *c = a; *c != '\0'; c++) /* it goes into a reply */
		if ((unsigned char)*c < 0x21 || *c == 0x7f)
			*c = '?';
	free(s->from_bad);
	s->from_bad = xstrdup(a);
}

/* The header section is complete (smtp_body's tap): DKIM keys and the
 * From: check. */
static void
smtp_in_headers(void *arg, size_t start, size_t end)
{
	struct smtp_in *s = arg;

	smtp_in_from_check(s, start, end);
	smtp_in_dkim_start(s, start, end);
}

/* Body bytes as stored, hashed as they stream in (smtp_body's tap). */
static void
smtp_in_dkim_body(void *arg, const uint8_t *p, size_t n)
{
	struct smtp_in *s = arg;

	if (s->dk != NULL)
		dkim_msg_body(s->dk, p, n);
}

/*
 * End of the message: when it is to be signed, the job that finishes it
 * (off the loop: SMTP_IN_SIGN), the stored message moved into it. NULL:
 * nothing to sign.
 */
static struct dkim_job *
smtp_in_dkim_job(struct smtp_in *s)
{
	struct dkim_job *j;

	if (s->dk == NULL)
		return NULL;
	j = xcalloc(1, sizeof(*j));
	j->m = s->dk;
	j->t = s->cfg->dkim;
	s->dk = NULL;
	j->body = s->b.buf;
	buf_init(&s->b.buf, 0);
	j->now = clock_wall_ms() / 1000;
	return j;
}

/* Refuse the message for fault f. */
static void
smtp_in_body_refuse(struct smtp_in *s, struct buf *out, enum smtp_body_fault f)
{
	static const struct {
		const char *reason, *reply;
	} faults[] = {
	    [SMTP_BODY_BARE] = {"bare_newline",
	        "550 5.5.2 Error: bare <CR> or <LF> in message"},
	    [SMTP_BODY_NUL] = {"nul",
	        "554 5.6.0 Error: NUL character in message"},
	    [SMTP_BODY_LONGLINE] = {"line_too_long",
	        "500 5.5.2 Error: message line too long"},
	    [SMTP_BODY_TOOBIG] = {"size",
	        "552 5.3.4 Error: message size exceeds fixed limit"},
	    [SMTP_BODY_NOBUDGET] = {"inflight_budget",
	        "452 4.3.1 Insufficient system storage"},
	    [SMTP_BODY_LOOP] = {"loop",
	        "554 5.4.6 Error: too many hops (mail loop)"},
	};
	smtp_in_data_reject(s, out, faults[f].reason, faults[f].reply);
}

/* check_from_header refused the From: address (550 5.7.1). */
static void
smtp_in_from_refuse(struct smtp_in *s, struct buf *out)
{
	char reply[SMTP_IN_REPLY_MAX];

	if (s->authed)
		str_fmt(reply, sizeof(reply),
		    "550 5.7.1 <%s>: From: header not owned by user %s",
		    s->from_bad, s->user);
	else
		str_fmt(reply, sizeof(reply),
		    "550 5.7.1 <%s>: From: header not allowed from this "
		    "client",
		    s->from_bad);
	smtp_in_data_reject(s, out, "from_header", reply);
}

/* The whole message is in: judge it, or hand it to the committer. */
static void
smtp_in_data_end(struct smtp_in *s, struct buf *out)
{
	enum smtp_body_fault f = smtp_body_fault(&s->b);

	if (f != SMTP_BODY_OK) {
		smtp_in_body_refuse(s, out, f);
		return;
	}
	if (s->b.headers && s->b.tap_headers != NULL) /* all header, no body */
		smtp_in_headers(s, s->b.msgstart, buf_avail(&s->b.buf));
	if (s->from_bad != NULL) {
		smtp_in_from_refuse(s, out);
		return;
	}
	if ((s->job = smtp_in_dkim_job(s)) != NULL) {
		s->pending = SMTP_IN_SIGN;
		return;
	}
	s->req = smtp_in_submit_new(s);
	s->pending = SMTP_IN_COMMIT;
}

/*
 * Feed body bytes through the DATA machine; returns the bytes used, which
 * is all of them unless the message ended inside (p, n).
 */
static size_t
smtp_in_data(struct smtp_in *s, const uint8_t *p, size_t n, struct buf *out)
{
	bool end = false;
	size_t used = smtp_body_data(&s->b, p, n, &end);

	if (end)
		smtp_in_data_end(s, out);
	return used;
}

/* A BDAT chunk was read to its end. */
static void
smtp_in_chunk_end(struct smtp_in *s, struct buf *out)
{
	if (!s->chunk_keep)
		return;
	s->chunk_keep = false;
	/* Over the size or the budget: say so now, not at LAST (the body
	 * is gone already); later chunks get 503. */
	if (s->b.toobig || s->b.nobudget) {
		smtp_in_body_refuse(s, out,
		    s->b.toobig ? SMTP_BODY_TOOBIG : SMTP_BODY_NOBUDGET);
		return;
	}
	if (!s->chunk_last) {
		smtp_in_reply(s, out,
		    "250 2.0.0 Ok: %" PRIu64 " octets received", s->chunk_size);
		return;
	}
	smtp_body_last(&s->b);
	smtp_in_data_end(s, out);
}

/* BDAT octets: all of (p, n) that belong to the current chunk. */
static size_t
smtp_in_chunk(struct smtp_in *s, const uint8_t *p, size_t n, struct buf *out)
{
	size_t take = n < s->chunk ? n : (size_t)s->chunk;

	if (s->chunk_keep)
		smtp_body_chunk(&s->b, p, take);
	s->chunk -= take;
	if (s->chunk == 0)
		smtp_in_chunk_end(s, out);
	return take;
}

/*
 * BDAT n [LAST] (RFC 3030). A well-formed BDAT always has its n octets
 * read, even when it is refused, so the session stays in step; only a
 * size that cannot be read closes the session (nothing tells where the
 * chunk ends).
 */
static void
smtp_in_proceed_bdat(
    struct smtp_in *s, const struct smtp_parse_cmd *cmd, struct buf *out)
{
	uint64_t size;
	bool last;

	if (!smtp_parse_bdat(cmd->arg, cmd->arglen, &size, &last)) {
		smtp_in_reply(s, out, "501 5.5.4 Syntax: BDAT count [LAST]");
		smtp_in_close(s);
		return;
	}
	s->chunk = s->chunk_size = size;
	s->chunk_last = last;
	s->chunk_keep = false;
	if (s->state == SMTP_IN_S_CONNECTED)
		smtp_in_error(s, out, "503 5.5.1 Error: send HELO/EHLO first");
	else if (s->state == SMTP_IN_S_MAIL)
		smtp_in_error(s, out, "503 5.5.1 Error: need RCPT command");
	else if (s->state != SMTP_IN_S_RCPT && s->state != SMTP_IN_S_BDAT)
		smtp_in_error(s, out, "503 5.5.1 Error: need MAIL command");
	else if (s->state == SMTP_IN_S_BDAT || smtp_in_body_start(s, out)) {
		smtp_in_enter_state(s, SMTP_IN_S_BDAT);
		s->chunk_keep = true;
	}
	if (s->chunk == 0)
		smtp_in_chunk_end(s, out);
}

/* ---- input ---- */

/* The limit for the line starting at (p, n): an AUTH response, or an
 * AUTH command (with an initial response), may be as long as RFC 4954
 * allows; RFC 3461 5 lets the DSN parameters lengthen MAIL by 100 octets
 * and RCPT by 500; other commands have RFC 5321's. */
static size_t
smtp_in_line_max(const struct smtp_in *s, const uint8_t *p, size_t n)
{
	if (s->state >= SMTP_IN_S_AUTH_PLAIN ||
	    str_iprefix((const char *)p, n, "AUTH "))
		return SMTP_IN_AUTH_MAX;
	if (str_iprefix((const char *)p, n, "MAIL "))
		return SMTP_IN_CMD_MAX + 100;
	if (str_iprefix((const char *)p, n, "RCPT "))
		return SMTP_IN_CMD_MAX + 500;
	return SMTP_IN_CMD_MAX;
}

/*
 * Consume complete lines (or body bytes) of (p, n) until it runs out or an
 * action is pending; `more` is how many input bytes follow p + n. Returns
 * the bytes used; the rest is a partial line or waits behind the action.
 */
static size_t
smtp_in_run(
    struct smtp_in *s, const uint8_t *p, size_t n, size_t more, struct buf *out)
{
	const uint8_t *lf;
	size_t done = 0, linelen, limit;

	while (done < n && s->pending == SMTP_IN_READ) {
		if (s->chunk > 0) {
			done += smtp_in_chunk(s, p + done, n - done, out);
			continue;
		}
		if (s->state == SMTP_IN_S_DATA) {
			done += smtp_in_data(s, p + done, n - done, out);
			if (s->state == SMTP_IN_S_DATA &&
			    s->pending == SMTP_IN_READ)
				MTA_ASSERT(done == n);
			continue;
		}
		lf = memchr(p + done, '\n', n - done);
		if (s->skipping) {
			if (lf == NULL)
				return n;
			done = (size_t)(lf - p) + 1;
			s->skipping = false;
			smtp_in_toolong(s, out, s->skip_auth);
			continue;
		}
		limit = smtp_in_line_max(s, p + done, n - done);
		if (lf == NULL) {
			/* Already past the limit: stop holding it. */
			if (n - done >= limit) {
				s->skipping = true;
				s->skip_auth = limit == SMTP_IN_AUTH_MAX;
				done = n;
			}
			break;
		}
		linelen = (size_t)(lf - (p + done)) + 1;
		if (linelen > limit) {
			done += linelen;
			smtp_in_toolong(s, out, limit == SMTP_IN_AUTH_MAX);
			continue;
		}
		s->more = n - done - linelen + more;
		smtp_in_line(s, (const char *)p + done, linelen, out);
		done += linelen;
	}
	return done;
}

/* Keep what cannot be consumed now: a partial line, or input that
 * arrived behind an action. */
static void
smtp_in_stash(struct smtp_in *s, const uint8_t *p, size_t n)
{
	if (s->discard || s->pending == SMTP_IN_CLOSE) {
		buf_reset(&s->in);
		return;
	}
	if (n > 0 && buf_append(&s->in, p, n) != 0)
		s->overflow = true;
}

/* Give back s->in storage once it is empty, so idle sessions stay small. */
static void
smtp_in_trim(struct smtp_in *s)
{
	if (buf_avail(&s->in) == 0 && s->in.cap > SMTP_IN_INPUT_KEEP)
		buf_fini(&s->in);
}

/* Move bytes into s->in up to the end of the line they complete. */
static size_t
smtp_in_fill(struct smtp_in *s, const uint8_t *p, size_t n)
{
	const uint8_t *lf = memchr(p, '\n', n);
	size_t take = lf != NULL ? (size_t)(lf - p) + 1 : n;

	if (take > SMTP_IN_FILL_MAX)
		take = SMTP_IN_FILL_MAX;
	if (buf_append(&s->in, p, take) != 0)
		return 0;
	return take;
}

/*
 * Input before the greeting: the client did not wait for the 220 (RFC
 * 5321 3.1), as spam engines that blast a whole transaction do. Refused
 * and closed, as Exim's smtp_enforce_sync and Postfix's postscreen do;
 * nothing of it is run.
 */
static void
smtp_in_early_talker(struct smtp_in *s, struct buf *out)
{
	log_event("event=rejected client=%s reason=early_talker", s->peer.addr);
	smtp_in_reply(s, out,
	    "554 5.5.0 %s Error: SMTP protocol synchronization "
	    "(input before greeting)",
	    s->cfg->hostname);
	smtp_in_close(s);
}

enum smtp_in_action
smtp_in_feed(
    struct smtp_in *s, const uint8_t *data, size_t len, struct buf *out)
{
	size_t n;

	if (!s->greeted && len > 0 && s->pending == SMTP_IN_READ)
		smtp_in_early_talker(s, out);
	while (len > 0 && s->pending == SMTP_IN_READ) {
		if (buf_avail(&s->in) == 0) {
			n = smtp_in_run(s, data, len, 0, out);
			data += n;
			len -= n;
			break;
		}
		/* Finish the held partial line, then go back to in place. */
		if ((n = smtp_in_fill(s, data, len)) == 0)
			break;
		data += n;
		len -= n;
		n = smtp_in_run(
		    s, buf_peek(&s->in), buf_avail(&s->in), len, out);
		buf_consume(&s->in, n);
	}
	smtp_in_stash(s, data, len);
	smtp_in_trim(s);
	return s->pending;
}

/* After an action: report lost input, or go on with what is held. */
static enum smtp_in_action
smtp_in_resume(struct smtp_in *s, struct buf *out)
{
	size_t n;

	if (s->pending == SMTP_IN_READ && s->overflow) {
		smtp_in_reply(s, out,
		    "421 4.7.0 %s Error: too much pipelined input",
		    s->cfg->hostname);
		smtp_in_close(s);
	}
	if (s->pending == SMTP_IN_READ && buf_avail(&s->in) > 0) {
		n = smtp_in_run(s, buf_peek(&s->in), buf_avail(&s->in), 0, out);
		buf_consume(&s->in, n);
	}
	smtp_in_stash(s, NULL, 0);
	smtp_in_trim(s);
	return s->pending;
}

/* ---- public ---- */

struct smtp_in *
smtp_in_new(const struct smtp_in_cfg *cfg, const struct smtp_in_peer *peer,
    struct buf *out)
{
	struct smtp_in *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->peer = *peer;
	s->peer.addr[sizeof(s->peer.addr) - 1] = '\0';
	s->tls = peer->tls;
	s->pending = SMTP_IN_READ;
	s->state = SMTP_IN_S_CONNECTED;
	buf_init(&s->in, SMTP_IN_INPUT_MAX);
	buf_init(&s->env, 0);
	buf_init(&s->b.buf, 0);
	s->b.max = cfg->max_message_size;
	s->b.bare_reject = cfg->bare_reject;
	s->b.nul_strip = cfg->nul_strip;
	s->b.reserve = cfg->inflight_reserve;
	s->b.release = cfg->inflight_release;
	s->b.arg = cfg->inflight_arg;
	if (cfg->dkim != NULL || sender_policy_check_from(cfg->senders)) {
		s->b.tap_headers = smtp_in_headers;
		s->b.tap_arg = s;
	}
	if (cfg->dkim != NULL)
		s->b.tap_body = smtp_in_dkim_body;
	if (!cfg->greet_wait)
		(void)smtp_in_greet(s, out);
	return s;
}

enum smtp_in_action
smtp_in_greet(struct smtp_in *s, struct buf *out)
{
	if (s->greeted || s->pending != SMTP_IN_READ)
		return s->pending;
	s->greeted = true;
	smtp_in_reply(s, out, "220 %s ESMTP", s->cfg->hostname);
	return s->pending;
}

void
smtp_in_free(struct smtp_in *s)
{
	if (s == NULL)
		return;
	smtp_in_auth_wipe(s);
	explicit_bzero(s->user, sizeof(s->user));
	queue_submit_free(s->req);
	dkim_job_free(s->job);
	if (s->state >= SMTP_IN_S_MAIL && s->state <= SMTP_IN_S_BDAT &&
	    !s->tx_ended)
		metrics_inc(METRICS_TX_ABORTED);
	smtp_in_tx_reset(s);
	buf_fini(&s->in);
	free(s->limit_arg);
	free(s);
}

bool
smtp_in_want_read(const struct smtp_in *s)
{
	return s->pending == SMTP_IN_READ &&
	       buf_avail(&s->in) < SMTP_IN_INPUT_HIWAT;
}

struct queue_submit *
smtp_in_commit_take(struct smtp_in *s)
{
	struct queue_submit *req = s->req;

	s->req = NULL;
	return req;
}

struct dkim_job *
smtp_in_sign_take(struct smtp_in *s)
{
	struct dkim_job *j = s->job;

	s->job = NULL;
	return j;
}

enum smtp_in_action
smtp_in_sign_done(struct smtp_in *s, struct dkim_job *j, struct buf *out)
{
	(void)out;
	if (s->pending != SMTP_IN_SIGN) {
		dkim_job_free(j);
		return s->pending;
	}
	if (j->status < 0) {
		log_event("event=dkim-unsigned id=%016" PRIx64 " reason=%s",
		    s->id, j->why);
		str_copy(s->dkim, sizeof(s->dkim), "none");
	} else {
		str_copy(s->dkim, sizeof(s->dkim), j->label);
	}
	/* the message comes back, signed or as it was */
	buf_fini(&s->b.buf);
	s->b.buf = j->body;
	buf_init(&j->body, 0);
	dkim_job_free(j);
	s->req = smtp_in_submit_new(s);
	s->pending = SMTP_IN_COMMIT;
	return SMTP_IN_COMMIT;
}

/* count = bytes: the queued message's size, after the fact. */
static void
smtp_in_charge_bytes(struct smtp_in *s, const struct queue_submit *req)
{
	struct limits_subject subj;
	char dom[SMTP_PARSE_PATH_MAX + 1];

	if (!limits_counts(s->cfg->limits, CONFIG_LIMIT_BYTES))
		return;
	smtp_in_subject(s, req->from, strlen(req->from), dom, &subj);
	limits_charge(s->cfg->limits, CONFIG_LIMIT_BYTES, &subj,
	    buf_avail(&req->body), limits_now());
}

enum smtp_in_action
smtp_in_commit_done(
    struct smtp_in *s, struct queue_submit *req, struct buf *out)
{
	char idhex[QUEUE_ID_HEX + 1], v[SMTP_PARSE_PATH_MAX * 4 + 8];
	char u[SMTP_IN_USER_MAX * 4 + 8];
	int status = req != NULL ? req->status : -EIO;

	if (s->pending != SMTP_IN_COMMIT) {
		queue_submit_free(req);
		return s->pending;
	}
	s->pending = SMTP_IN_READ;
	snprintf(idhex, sizeof(idhex), "%016" PRIx64, s->id);
	smtp_in_count_end(
	    s, status == 0 ? METRICS_MSG_ACCEPTED : METRICS_MSG_REFUSED_4XX);
	if (status == 0) {
		log_event("event=queued id=%s from=%s rcpts=%zu size=%zu "
		          "client=%s%s%s dkim=%s",
		    idhex,
		    smtp_in_logval(
		        v, sizeof(v), req->from, strlen(req->from), true),
		    req->nrcpts, buf_avail(&req->body), s->peer.addr,
		    s->authed ? " user=" : "",
		    s->authed ? smtp_in_logval(u, sizeof(u), s->user,
		                    strlen(s->user), false)
		              : "",
		    s->dkim);
		smtp_in_reply(s, out, "250 2.0.0 Ok: queued as %s", idhex);
		smtp_in_charge_bytes(s, req);
	} else {
		log_event("event=rejected client=%s reason=%s id=%s status=%d",
		    s->peer.addr,
		    status == -ENOSPC ? "queue_full" : "queue_error", idhex,
		    status);
		if (status == -ENOSPC)
			smtp_in_reply(
			    s, out, "452 4.3.1 Insufficient system storage");
		else
			smtp_in_reply(
			    s, out, "451 4.3.0 Error: queue file write error");
	}
	/* Our copy, if the loop never took it, goes with the request. */
	if (req != s->req)
		queue_submit_free(s->req);
	s->req = NULL;
	queue_submit_free(req);
	smtp_in_enter_state(s, SMTP_IN_S_HELO);
	return smtp_in_resume(s, out);
}

enum smtp_in_action
smtp_in_tls_done(struct smtp_in *s, bool ok, struct buf *out)
{
	(void)out;
	if (s->pending != SMTP_IN_STARTTLS)
		return s->pending;
	s->discard = false;
	buf_reset(&s->in);
	if (!ok) {
		smtp_in_close(s);
		return s->pending;
	}
	s->pending = SMTP_IN_READ;
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	s->tls = true;
	s->esmtp = false;
	s->authed = false;
	s->helo[0] = '\0';
	s->user[0] = '\0';
	smtp_in_enter_state(s, SMTP_IN_S_CONNECTED);
	return s->pending;
}

void
smtp_in_auth_peek(const struct smtp_in *s, const char **user, const char **pass)
{
	*user = s->user;
	*pass = s->pass != NULL ? s->pass : "";
}

enum smtp_in_action
smtp_in_auth_done(struct smtp_in *s, bool ok, struct buf *out)
{
	if (s->pending != SMTP_IN_AUTH)
		return s->pending;
	s->pending = SMTP_IN_READ;
	if (ok) {
		smtp_in_auth_wipe(s);
		metrics_inc(METRICS_AUTH_SUCCESS);
		s->authed = true;
		smtp_in_reply(s, out, "235 2.7.0 Authentication successful");
	} else {
		smtp_in_auth_fail(s, out);
	}
	return smtp_in_resume(s, out);
}

void
smtp_in_limit_peek(const struct smtp_in *s, struct limits_subject *subj)
{
	*subj = s->limit_subj;
}

enum smtp_in_action
smtp_in_limit_done(
    struct smtp_in *s, bool ok, const char *name, struct buf *out)
{
	struct smtp_parse_cmd cmd = {.verb = "MAIL", .verblen = 4};

	if (s->pending != SMTP_IN_LIMIT)
		return s->pending;
	s->pending = SMTP_IN_READ;
	s->limit_answer = ok ? LIMIT_PASSED : LIMIT_REFUSED;
	(void)str_copy(s->limit_name, sizeof(s->limit_name), name ? name : "?");
	cmd.arg = s->limit_arg;
	cmd.arglen = s->limit_arglen;
	smtp_in_proceed_mail(s, &cmd, out);
	free(s->limit_arg);
	s->limit_arg = NULL;
	return smtp_in_resume(s, out);
}

void
smtp_in_progress(const struct smtp_in *s, struct smtp_in_progress *p)
{
	p->seq = s->nreq;
	p->bytes = 0;
	if (!s->greeted || s->pending != SMTP_IN_READ)
		p->wait = SMTP_IN_WAIT_NONE;
	else if (s->state == SMTP_IN_S_DATA) {
		p->wait = SMTP_IN_WAIT_DATA;
		p->bytes = s->b.size;
	} else if (s->chunk > 0) {
		/* a BDAT chunk is content too: its command line began the
		 * request, its octets keep the rate */
		p->wait = SMTP_IN_WAIT_DATA;
		p->bytes = s->chunk_size - s->chunk;
	} else if (buf_avail(&s->in) > 0 || s->skipping)
		p->wait = SMTP_IN_WAIT_LINE;
	else
		p->wait = SMTP_IN_WAIT_COMMAND;
}

enum smtp_in_action
smtp_in_deadline(struct smtp_in *s, struct buf *out)
{
	bool data = s->state == SMTP_IN_S_DATA || s->chunk > 0;

	log_event("event=rejected client=%s reason=%s", s->peer.addr,
	    data ? "data_rate" : "command_deadline");
	smtp_in_reply(
	    s, out, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
	smtp_in_close(s);
	return s->pending;
}

enum smtp_in_action
smtp_in_timeout(struct smtp_in *s, struct buf *out)
{
	smtp_in_reply(s, out, "421 4.4.2 %s Timeout - closing connection",
	    s->cfg->hostname);
	smtp_in_close(s);
	return s->pending;
}

enum smtp_in_action
smtp_in_shutdown(struct smtp_in *s, struct buf *out)
{
	smtp_in_reply(
	    s, out, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
	smtp_in_close(s);
	return s->pending;
}

bool
smtp_in_busy(const struct smtp_in *s)
{
	return s->pending == SMTP_IN_COMMIT || s->pending == SMTP_IN_SIGN ||
	       s->state == SMTP_IN_S_MAIL || s->state == SMTP_IN_S_RCPT ||
	       s->state == SMTP_IN_S_DATA || s->state == SMTP_IN_S_BDAT;
}
