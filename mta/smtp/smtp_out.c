/* SPDX-License-Identifier: ISC */
/*
 * smtp_out.c - client-side SMTP state machine (see smtp_out.h DESIGN).
 *
 * Replies are dispatched through a table indexed by state; a 421 is
 * handled before the table, in every state, because it means the same
 * thing everywhere (RFC 5321 3.8): the server is going away.
 *
 * A transaction is a fixed sequence of steps, [RSET] MAIL RCPT... DATA,
 * walked by two cursors: `snd`, the next step to write, and `rcv`, the
 * step whose reply comes next. Without PIPELINING snd runs at most one
 * step ahead of rcv; with it snd runs to the end at once (in chunks when
 * out is small). Both walk the same step_next(), so replies are matched
 * to commands strictly in order, as RFC 2920 requires.
 *
 * The body is streamed from the caller's (ptr, len) straight into out,
 * one chunk per call; the only state carried between chunks is the read
 * position and whether we are at the start of a line or after a CR.
 */
#include "smtp/smtp_out.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "smtp/smtp_parse.h"

#define ADDR_MAX 1000 /* bytes of a path we are willing to send */
#define CMD_MAX  (ADDR_MAX + 128 + 800) /* + DSN: ENVID, NOTIFY, ORCPT */

enum state {
	ST_GREETING, /* waiting for 220 */
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,  /* waiting for 220 to STARTTLS */
	ST_TLS,       /* the loop is doing the handshake */
	ST_AUTH,      /* waiting for 235 to our whole response */
	ST_AUTH_USER, /* AUTH LOGIN sent: waiting for 334 (username) */
	ST_AUTH_PASS, /* username sent: waiting for 334 (password) */
	ST_READY,     /* between jobs */
	ST_TX,        /* [RSET] MAIL RCPT... DATA */
	ST_BODY,      /* streaming the body */
	ST_DOT,       /* waiting for the reply to the final dot */
	ST_FAILED,    /* host failed, dialogue in step: QUIT possible */
	ST_QUIT,      /* QUIT sent */
	ST_CLOSED,
};

static const char *const state_names[] = {
    "greeting",
    "ehlo",
    "helo",
    "starttls",
    "tls",
    "auth",
    "auth-user",
    "auth-pass",
    "ready",
    "tx",
    "body",
    "dot",
    "failed",
    "quit",
    "closed",
};

enum rcpt_state {
	R_PENDING,  /* not sent yet */
	R_SKIP,     /* refused locally, never sent */
	R_WAIT,     /* RCPT sent */
	R_ACCEPTED, /* 2xx to RCPT; waits for DATA and the dot */
	R_DONE,     /* result final */
};

enum step_kind { STEP_RSET, STEP_MAIL, STEP_RCPT, STEP_DATA, STEP_END };

struct step {
	enum step_kind kind;
	size_t i; /* recipient index for STEP_RCPT */
};

struct smtp_out {
	struct smtp_out_cfg cfg;
	uint64_t id;
	enum state state;
	struct smtp_reply_parser rp;
	struct smtp_ehlo ehlo;
	bool tls;          /* encrypted */
	bool tls_refused;  /* STARTTLS got 4xx/5xx under `may` */
	char tls_why[200]; /* smtp_out_tls_reason(): "" = generic */
	bool used;         /* a transaction was left open: RSET first */
	bool host_failed;
	bool has_err;
	struct smtp_out_result err;
	char errtext[SMTP_OUT_TEXT_MAX + 1];

	bool has_job;
	struct smtp_out_job job;
	uint8_t *rst; /* enum rcpt_state per recipient */
	size_t rst_cap;
	char **texts; /* reply texts the results point to */
	size_t ntexts, ctexts;
	struct step snd, rcv;
	bool mail_failed;
	size_t naccepted;
	bool discard_dot; /* "." only closes a DATA nobody needs */
	char dgtext[SMTP_OUT_TEXT_MAX + 1]; /* why a downgrade failed */

	size_t bpos;   /* body bytes consumed */
	bool bol;      /* at the start of a line */
	bool pend_cr;  /* last body byte was CR, its LF not seen yet */
	bool body_end; /* the final ".\r\n" is written */
};

typedef enum smtp_out_action reply_fn(
    struct smtp_out *, const struct smtp_reply *, struct buf *);

static enum smtp_out_action ready(struct smtp_out *, struct buf *);
static enum smtp_out_action tx_pump(struct smtp_out *, struct buf *);

static void
enter(struct smtp_out *s, enum state st)
{
	if (s->state != st && log_debug_enabled())
		log_debug("event=smtp-out-state id=%016" PRIx64
		          " from=%s to=%s",
		    s->id, state_names[s->state], state_names[st]);
	s->state = st;
}

static size_t
out_target(const struct buf *out)
{
	return out->max < SMTP_OUT_CHUNK ? out->max : SMTP_OUT_CHUNK;
}

struct smtp_out *
smtp_out_new(const struct smtp_out_cfg *cfg, uint64_t id)
{
	struct smtp_out *s = xcalloc(1, sizeof(*s));

	s->cfg = *cfg;
	s->id = id;
	s->tls = cfg->tls_on_connect;
	smtp_reply_init(&s->rp);
	s->state = ST_GREETING;
	return s;
}

static void
texts_clear(struct smtp_out *s)
{
	size_t i;

	for (i = 0; i < s->ntexts; i++)
		free(s->texts[i]);
	s->ntexts = 0;
}

void
smtp_out_free(struct smtp_out *s)
{
	if (s == NULL)
		return;
	texts_clear(s);
	free(s->texts);
	free(s->rst);
	smtp_reply_fini(&s->rp);
	free(s);
}

/* Keep a reply's text for the results of this job. */
static const char *
text_keep(struct smtp_out *s, const struct smtp_reply *r)
{
	size_t n = r->len < SMTP_OUT_TEXT_MAX ? r->len : SMTP_OUT_TEXT_MAX;

	if (s->ntexts == s->ctexts) {
		s->ctexts = s->ctexts ? s->ctexts * 2 : 8;
		s->texts =
		    xreallocarray(s->texts, s->ctexts, sizeof(*s->texts));
	}
	s->texts[s->ntexts] = xstrndup(r->text, n);
	return s->texts[s->ntexts++];
}

static enum smtp_out_outcome
outcome_of(int code)
{
	if (code / 100 == 2)
		return SMTP_OUT_OK;
	if (code / 100 == 5)
		return SMTP_OUT_PERMFAIL;
	return SMTP_OUT_TEMPFAIL;
}

static void
result_reply(struct smtp_out_result *res, enum smtp_out_cmd cmd,
    const struct smtp_reply *r, const char *text)
{
	res->outcome = outcome_of(r->code);
	res->cmd = cmd;
	res->code = r->code;
	if (r->enhanced[0] != '\0')
		str_copy(res->enhanced, sizeof(res->enhanced), r->enhanced);
	else
		(void)str_fmt(res->enhanced, sizeof(res->enhanced), "%d.0.0",
		    r->code / 100 == 3 ? 4 : r->code / 100);
	res->text = text;
}

static void
result_local(struct smtp_out_result *res, enum smtp_out_outcome o,
    const char *enhanced, const char *text)
{
	res->outcome = o;
	res->cmd = SMTP_OUT_CMD_NONE;
	res->code = 0;
	str_copy(res->enhanced, sizeof(res->enhanced), enhanced);
	res->text = text;
}

/* Give every recipient still without a final result this one. */
static void
rcpts_resolve(struct smtp_out *s, const struct smtp_out_result *res)
{
	size_t i;

	for (i = 0; i < s->job.nrcpts; i++) {
		if (s->rst[i] == R_SKIP || s->rst[i] == R_DONE)
			continue;
		s->job.results[i] = *res;
		s->rst[i] = R_DONE;
	}
}

/* Give the recipients accepted at RCPT the reply to DATA or the dot. */
static void
rcpts_accepted(
    struct smtp_out *s, enum smtp_out_cmd cmd, const struct smtp_reply *r)
{
	const char *text = text_keep(s, r);
	size_t i;

	for (i = 0; i < s->job.nrcpts; i++) {
		if (s->rst[i] != R_ACCEPTED)
			continue;
		result_reply(&s->job.results[i], cmd, r, text);
		s->job.results[i].peer_dsn = s->ehlo.dsn;
		s->rst[i] = R_DONE;
	}
}

static enum smtp_out_action
job_done(struct smtp_out *s)
{
	s->has_job = false;
	return SMTP_OUT_JOB_DONE;
}

static void
err_reply(struct smtp_out *s, enum smtp_out_cmd cmd, const struct smtp_reply *r)
{
	str_ncopy(s->errtext, sizeof(s->errtext), r->text, r->len);
	result_reply(&s->err, cmd, r, s->errtext);
	s->has_err = true;
}

static void
err_local(struct smtp_out *s, const char *enhanced, const char *reason)
{
	str_copy(s->errtext, sizeof(s->errtext), reason);
	result_local(&s->err, SMTP_OUT_TEMPFAIL, enhanced, s->errtext);
	s->has_err = true;
}

static enum smtp_out_action
quit_send(struct smtp_out *s, struct buf *out)
{
	if (buf_append(out, "QUIT\r\n", 6) < 0) {
		enter(s, ST_CLOSED);
		return SMTP_OUT_CLOSE;
	}
	enter(s, ST_QUIT);
	return SMTP_OUT_READ;
}

/*
 * The host failed (s->err says why): defer what is unresolved. A host
 * failure never bounces: a 5xx from a host that will not talk to us says
 * nothing final about the recipients, so the class becomes 4 (as a soft
 * bounce would).
 */
static enum smtp_out_action
host_down(struct smtp_out *s, bool can_quit, struct buf *out)
{
	s->host_failed = true;
	s->err.outcome = SMTP_OUT_TEMPFAIL;
	s->err.enhanced[0] = '4';
	if (log_debug_enabled())
		log_debug("event=smtp-out-host-failed id=%016" PRIx64
		          " state=%s code=%d"
		          " dsn=%s",
		    s->id, state_names[s->state], s->err.code, s->err.enhanced);
	if (s->has_job) {
		rcpts_resolve(s, &s->err);
		enter(s, can_quit ? ST_FAILED : ST_CLOSED);
		return job_done(s);
	}
	if (can_quit && out != NULL)
		return quit_send(s, out);
	enter(s, ST_CLOSED);
	return SMTP_OUT_CLOSE;
}

static enum smtp_out_action
proto_error(struct smtp_out *s, const char *reason, struct buf *out)
{
	err_local(s, "4.5.0", reason);
	return host_down(s, false, out);
}

static enum smtp_out_action
reply_fail(struct smtp_out *s, enum smtp_out_cmd cmd,
    const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 == 3)
		return proto_error(s, "unexpected 3xx reply", out);
	err_reply(s, cmd, r);
	return host_down(s, true, out);
}

static enum smtp_out_action
emit_fail(struct smtp_out *s, struct buf *out)
{
	err_local(s, "4.3.0", "output buffer full");
	return host_down(s, false, out);
}

static enum smtp_out_action
send_hello(
    struct smtp_out *s, const char *verb, enum state next, struct buf *out)
{
	if (buf_appendf(out, "%s %s\r\n", verb, s->cfg.helo_name) < 0)
		return emit_fail(s, out);
	enter(s, next);
	return SMTP_OUT_READ;
}

/* ---- AUTH to the next hop ---- */

/*
 * With credentials configured the session authenticates or the host
 * fails: it never carries on unauthenticated (the smarthost would then
 * relay for us only by accident, or refuse every RCPT). Credentials go
 * out only on an encrypted session, unless the route allows plaintext
 * (auth_plaintext). PLAIN is preferred; LOGIN when it is all the server
 * has. A 5xx to AUTH defers too (Postfix's smtp_sasl_auth_soft_bounce):
 * a wrong password is for the relay's administrator to fix, and the
 * mail waits for that rather than bouncing to its sender.
 */
static bool
auth_configured(const struct smtp_out *s)
{
	return s->cfg.auth_user != NULL && s->cfg.auth_user[0] != '\0';
}

/* base64 of p[0..n) into "VERB b64\r\n" (verb may be ""); the secret
 * copies are wiped. <0 when out is full. */
static int
auth_line(struct buf *out, const char *verb, const uint8_t *p, size_t n)
{
	char enc[(2 * 256 + 2 + 2) / 3 * 4 + 1];
	int rc;

	smtp_parse_base64_encode(p, n, enc);
	rc = buf_appendf(out, "%s%s\r\n", verb, enc);
	explicit_bzero(enc, sizeof(enc));
	return rc;
}

/* "AUTH PLAIN base64(\0user\0pass)" (RFC 4616), the initial response
 * inline (RFC 4954). The secret never reaches a log. */
static enum smtp_out_action
send_auth_plain(struct smtp_out *s, const char *pass, struct buf *out)
{
	uint8_t raw[2 * 256 + 2];
	size_t ul = strlen(s->cfg.auth_user), pl = strlen(pass);
	int rc;

	raw[0] = '\0';
	memcpy(raw + 1, s->cfg.auth_user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, pass, pl);
	rc = auth_line(out, "AUTH PLAIN ", raw, ul + pl + 2);
	explicit_bzero(raw, sizeof(raw));
	if (rc < 0)
		return emit_fail(s, out);
	enter(s, ST_AUTH);
	return SMTP_OUT_READ;
}

static enum smtp_out_action
auth_refuse(struct smtp_out *s, const char *reason, struct buf *out)
{
	err_local(s, "4.7.0", reason);
	return host_down(s, true, out);
}

static enum smtp_out_action
send_auth(struct smtp_out *s, struct buf *out)
{
	const char *pass = s->cfg.auth_pass ? s->cfg.auth_pass : "";

	if (!s->tls && !s->cfg.auth_plaintext)
		return auth_refuse(s,
		    "AUTH credentials not sent without TLS (the host offered "
		    "no STARTTLS, refused it, or tls = none; see "
		    "auth_without_tls)",
		    out);
	if (strlen(s->cfg.auth_user) > 256 || strlen(pass) > 256)
		return auth_refuse(s, "AUTH credentials too long", out);
	if (s->ehlo.auth & SMTP_AUTH_PLAIN)
		return send_auth_plain(s, pass, out);
	if (!(s->ehlo.auth & SMTP_AUTH_LOGIN))
		return auth_refuse(s, "smarthost offered no usable AUTH", out);
	if (buf_append(out, "AUTH LOGIN\r\n", 12) < 0)
		return emit_fail(s, out);
	enter(s, ST_AUTH_USER);
	return SMTP_OUT_READ;
}

/* ---- the handshake ---- */

static enum smtp_out_action
after_tls(struct smtp_out *s, struct buf *out)
{
	if (auth_configured(s))
		return send_auth(s, out);
	return ready(s, out);
}

/* TLS is required and STARTTLS is missing or refused. Under a policy
 * (DANE, MTA-STS) that is 4.7.5, with its RFC 8460 result type. */
static void
tls_required(struct smtp_out *s)
{
	const char *how = s->tls_refused ? "was refused by the host"
	                                 : "was not offered by the host";
	char why[160];

	if (s->cfg.tls_policy == NULL) {
		err_local(s, "4.7.4",
		    s->tls_refused
		        ? "TLS is required, but the host refused STARTTLS"
		        : "TLS is required, but was not offered by host");
		return;
	}
	str_fmt(why, sizeof(why),
	    "TLS is required by %s policy, but STARTTLS %s "
	    "(result=starttls-not-supported)",
	    s->cfg.tls_policy, how);
	err_local(s, "4.7.5", why);
}

static enum smtp_out_action
after_hello(struct smtp_out *s, struct buf *out)
{
	if (!s->tls && s->cfg.tls != CONFIG_TLS_NONE && s->ehlo.starttls &&
	    !s->tls_refused) {
		if (buf_append(out, "STARTTLS\r\n", 10) < 0)
			return emit_fail(s, out);
		enter(s, ST_STARTTLS);
		return SMTP_OUT_READ;
	}
	if (!s->tls && (s->cfg.tls == CONFIG_TLS_ENCRYPT ||
	                   s->cfg.tls == CONFIG_TLS_VERIFY)) {
		tls_required(s);
		return host_down(s, true, out);
	}
	return after_tls(s, out);
}

static enum smtp_out_action
on_greeting(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 != 2)
		return reply_fail(s, SMTP_OUT_CMD_GREETING, r, out);
	return send_hello(s, "EHLO", ST_EHLO, out);
}

static enum smtp_out_action
on_ehlo(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 == 5)
		return send_hello(s, "HELO", ST_HELO, out);
	if (r->code / 100 != 2)
		return reply_fail(s, SMTP_OUT_CMD_EHLO, r, out);
	smtp_ehlo_parse(r, &s->ehlo);
	return after_hello(s, out);
}

static enum smtp_out_action
on_helo(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 != 2)
		return reply_fail(s, SMTP_OUT_CMD_HELO, r, out);
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	return after_hello(s, out);
}

static enum smtp_out_action
on_starttls(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 == 2) {
		/* feed() drops whatever follows this reply. */
		enter(s, ST_TLS);
		return SMTP_OUT_STARTTLS;
	}
	if (r->code / 100 == 3 || s->cfg.tls != CONFIG_TLS_MAY)
		return reply_fail(s, SMTP_OUT_CMD_STARTTLS, r, out);
	/* `may`: carry on in plaintext. */
	s->tls_refused = true;
	return after_tls(s, out);
}

static enum smtp_out_action
on_auth(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 == 2)
		return ready(s, out);
	if (r->code / 100 == 3) {
		/* A challenge: we sent the whole response already, so the
		 * dialogue is out of step. */
		err_reply(s, SMTP_OUT_CMD_AUTH, r);
		return host_down(s, false, out);
	}
	return reply_fail(s, SMTP_OUT_CMD_AUTH, r, out);
}

/* AUTH LOGIN: each 334 asks for the next item, the username then the
 * password, base64 (the prompts' text is not standard: not checked). */
static enum smtp_out_action
on_auth_login(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	const char *item = s->state == ST_AUTH_USER ? s->cfg.auth_user
	                   : s->cfg.auth_pass       ? s->cfg.auth_pass
	                                            : "";

	if (r->code / 100 == 2)
		return proto_error(s, "AUTH LOGIN ended early", out);
	if (r->code != 334)
		return reply_fail(s, SMTP_OUT_CMD_AUTH, r, out);
	if (auth_line(out, "", (const uint8_t *)item, strlen(item)) < 0)
		return emit_fail(s, out);
	enter(s, s->state == ST_AUTH_USER ? ST_AUTH_PASS : ST_AUTH);
	return SMTP_OUT_READ;
}

static enum smtp_out_action
on_quit(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	(void)r;
	(void)out;
	enter(s, ST_CLOSED);
	return SMTP_OUT_CLOSE;
}

static enum smtp_out_action
on_unsolicited(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	(void)r;
	return proto_error(s, "unsolicited reply", out);
}

/* ---- the transaction ---- */

static bool
addr_ok(const char *a)
{
	size_t i;

	for (i = 0; a[i] != '\0'; i++)
		if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f || i >= ADDR_MAX)
			return false;
	return true;
}

static struct step
rcpt_from(const struct smtp_out *s, size_t i)
{
	while (i < s->job.nrcpts && s->rst[i] == R_SKIP)
		i++;
	if (i < s->job.nrcpts)
		return (struct step){STEP_RCPT, i};
	return (struct step){STEP_DATA, 0};
}

static struct step
step_next(const struct smtp_out *s, struct step st)
{
	switch (st.kind) {
	case STEP_RSET:
		return (struct step){STEP_MAIL, 0};
	case STEP_MAIL:
		return rcpt_from(s, 0);
	case STEP_RCPT:
		return rcpt_from(s, st.i + 1);
	case STEP_DATA:
	case STEP_END:
		break;
	}
	return (struct step){STEP_END, 0};
}

static bool
step_eq(struct step a, struct step b)
{
	return a.kind == b.kind && a.i == b.i;
}

static enum smtp_out_cmd
step_cmd(struct step st)
{
	static const enum smtp_out_cmd cmds[] = {
	    [STEP_RSET] = SMTP_OUT_CMD_RSET,
	    [STEP_MAIL] = SMTP_OUT_CMD_MAIL,
	    [STEP_RCPT] = SMTP_OUT_CMD_RCPT,
	    [STEP_DATA] = SMTP_OUT_CMD_DATA,
	    [STEP_END] = SMTP_OUT_CMD_NONE,
	};

	return cmds[st.kind];
}

/* The command line for a step, into cmd; its length. */
static int
step_format(const struct smtp_out *s, struct step st, char *cmd, size_t size)
{
	const struct smtp_out_job *j = &s->job;
	char sz[32] = "";

	switch (st.kind) {
	case STEP_RSET:
		return snprintf(cmd, size, "RSET\r\n");
	case STEP_MAIL:
		if (s->ehlo.size)
			(void)str_fmt(sz, sizeof(sz), " SIZE=%zu", j->body_len);
		return snprintf(cmd, size, "MAIL FROM:<%s>%s%s%s\r\n", j->from,
		    sz,
		    j->need_8bitmime && s->ehlo.eightbitmime ? " BODY=8BITMIME"
		                                             : "",
		    j->need_smtputf8 ? " SMTPUTF8" : "");
	case STEP_RCPT:
		return snprintf(cmd, size, "RCPT TO:<%s>\r\n", j->rcpts[st.i]);
	case STEP_DATA:
		return snprintf(cmd, size, "DATA\r\n");
	case STEP_END:
		break;
	}
	return 0;
}

/*
 * The DSN parameters (RFC 3461) of a MAIL or RCPT step, inserted before
 * the CRLF of its command line cmd (n bytes, size room); only to a host
 * that offers DSN, as given by the client (xtext stays xtext). Returns
 * the new length.
 */
static int
step_dsn(
    const struct smtp_out *s, struct step st, char *cmd, int n, size_t size)
{
	static const struct {
		uint8_t bit;
		const char *name;
	} kw[] = {
	    {SMTP_PARSE_NOTIFY_SUCCESS, "SUCCESS"},
	    {SMTP_PARSE_NOTIFY_FAILURE, "FAILURE"},
	    {SMTP_PARSE_NOTIFY_DELAY, "DELAY"},
	    {SMTP_PARSE_NOTIFY_NEVER, "NEVER"},
	};
	const struct smtp_out_job *j = &s->job;
	char p[CMD_MAX];
	size_t k;

	if (!s->ehlo.dsn || n < 2)
		return n;
	p[0] = '\0';
	if (st.kind == STEP_MAIL) {
		if (j->ret != SMTP_PARSE_RET_NONE)
			(void)str_fmt(p, sizeof(p), " RET=%s",
			    j->ret == SMTP_PARSE_RET_FULL ? "FULL" : "HDRS");
		if (j->envid != NULL && j->envid[0] != '\0')
			(void)str_fmt(p + strlen(p), sizeof(p) - strlen(p),
			    " ENVID=%s", j->envid);
	} else if (st.kind == STEP_RCPT && j->notify != NULL) {
		for (size_t i = 0; i < MTA_ARRAY_LEN(kw); i++)
			if (j->notify[st.i] & kw[i].bit)
				(void)str_fmt(p + strlen(p),
				    sizeof(p) - strlen(p), "%s%s",
				    strchr(p, '=') ? "," : " NOTIFY=",
				    kw[i].name);
	}
	if (st.kind == STEP_RCPT && j->orcpts != NULL &&
	    j->orcpts[st.i] != NULL && j->orcpts[st.i][0] != '\0')
		(void)str_fmt(p + strlen(p), sizeof(p) - strlen(p), " ORCPT=%s",
		    j->orcpts[st.i]);
	k = strlen(p);
	if (k == 0 || (size_t)n + k >= size)
		return n;
	memcpy(cmd + n - 2, p, k);
	memcpy(cmd + n - 2 + k, "\r\n", 3);
	return n + (int)k;
}

/*
 * Write the next step(s): all of them with PIPELINING (while out has
 * room), else one, and only when its predecessor has been answered.
 * Returns WRITE when steps remain for lack of room.
 */
static enum smtp_out_action
tx_pump(struct smtp_out *s, struct buf *out)
{
	char cmd[CMD_MAX];
	int n;

	while (s->snd.kind != STEP_END) {
		if (!s->ehlo.pipelining && !step_eq(s->snd, s->rcv))
			return SMTP_OUT_READ;
		if (s->snd.kind == STEP_DATA && s->naccepted == 0 &&
		    !s->ehlo.pipelining) {
			/* Every recipient refused: no DATA; RSET comes with
			 * the next job. */
			enter(s, ST_READY);
			return job_done(s);
		}
		n = step_format(s, s->snd, cmd, sizeof(cmd));
		MTA_ASSERT(n > 0 && (size_t)n < sizeof(cmd));
		n = step_dsn(s, s->snd, cmd, n, sizeof(cmd));
		if (buf_avail(out) > 0 &&
		    buf_avail(out) + (size_t)n > out_target(out))
			return SMTP_OUT_WRITE;
		if (buf_append(out, cmd, (size_t)n) < 0)
			return buf_avail(out) ? SMTP_OUT_WRITE
			                      : emit_fail(s, out);
		if (s->snd.kind == STEP_MAIL)
			s->used = true;
		else if (s->snd.kind == STEP_RCPT)
			s->rst[s->snd.i] = R_WAIT;
		s->snd = step_next(s, s->snd);
	}
	return SMTP_OUT_READ;
}

/*
 * An 8-bit body for a server without 8BITMIME (RFC 6152 section 3): take
 * the caller's 7-bit form of it instead, whole, for the rest of the job;
 * false with res set when there is none (5.6.3) or it cannot be read.
 */
static bool
tx_downgrade(struct smtp_out *s, struct smtp_out_result *res)
{
	struct smtp_out_job *j = &s->job;
	const char *why = "no conversion available";
	const uint8_t *b = NULL;
	size_t n = 0;
	int rc;

	if (!j->need_8bitmime || s->ehlo.eightbitmime)
		return true;
	rc = j->body_7bit ? j->body_7bit(j->body_arg, &b, &n, &why) : 1;
	if (rc < 0) {
		result_local(res, SMTP_OUT_TEMPFAIL, "4.3.0",
		    "cannot read the message to convert it to 7 bits");
		return false;
	}
	if (rc > 0) {
		(void)str_fmt(s->dgtext, sizeof(s->dgtext),
		    "message has 8-bit content, host does not offer 8BITMIME, "
		    "and the conversion to 7 bits is not possible: %s",
		    why);
		result_local(res, SMTP_OUT_PERMFAIL, "5.6.3", s->dgtext);
		return false;
	}
	j->body = b;
	j->body_len = n;
	j->body_peek = NULL;
	j->need_8bitmime = false;
	return true;
}

/* Refuse a whole job before MAIL; true when it was refused. */
static bool
tx_refuse(struct smtp_out *s)
{
	const struct smtp_out_job *j = &s->job;
	struct smtp_out_result res;

	if (!addr_ok(j->from))
		result_local(&res, SMTP_OUT_PERMFAIL, "5.1.7",
		    "bad sender address syntax");
	else if (j->need_smtputf8 && !s->ehlo.smtputf8)
		result_local(&res, SMTP_OUT_PERMFAIL, "5.6.7",
		    "SMTPUTF8 is required, but was not offered by host");
	else if (!tx_downgrade(s, &res))
		(void)0; /* res says why; the size check needs the 7-bit size */
	else if (s->ehlo.size && s->ehlo.size_max > 0 &&
	         j->body_len > s->ehlo.size_max)
		result_local(&res, SMTP_OUT_PERMFAIL, "5.3.4",
		    "message size exceeds fixed maximum message size of host");
	else
		return false;
	rcpts_resolve(s, &res);
	return true;
}

static enum smtp_out_action
tx_start(struct smtp_out *s, struct buf *out)
{
	size_t i, nsend = 0;

	for (i = 0; i < s->job.nrcpts; i++) {
		if (addr_ok(s->job.rcpts[i])) {
			nsend++;
			continue;
		}
		result_local(&s->job.results[i], SMTP_OUT_PERMFAIL, "5.1.3",
		    "bad recipient address syntax");
		s->rst[i] = R_SKIP;
	}
	if (tx_refuse(s) || nsend == 0)
		return job_done(s);
	s->mail_failed = false;
	s->naccepted = 0;
	s->discard_dot = false;
	s->bpos = 0;
	s->bol = true;
	s->pend_cr = false;
	s->body_end = false;
	s->snd.kind = s->used ? STEP_RSET : STEP_MAIL;
	s->snd.i = 0;
	s->rcv = s->snd;
	enter(s, ST_TX);
	return tx_pump(s, out);
}

static enum smtp_out_action
ready(struct smtp_out *s, struct buf *out)
{
	enter(s, ST_READY);
	if (s->has_job)
		return tx_start(s, out);
	return SMTP_OUT_IDLE;
}

/*
 * Dot-stuff the window b[0..n) into w, at most about lim bytes (one CRLF
 * or stuffed dot may go past it: the caller keeps a margin). The line
 * state (bol, pend_cr) lives in s, so a window may end anywhere. Returns
 * the bytes written; s->bpos advances by the bytes consumed.
 */
static size_t
body_stuff(
    struct smtp_out *s, const uint8_t *b, size_t len, uint8_t *w0, size_t lim)
{
	size_t pos = 0, n;
	uint8_t *w = w0, c;

	while (pos < len && (size_t)(w - w0) < lim) {
		if (s->bol && !s->pend_cr) {
			/* whole plain lines need no stuffing: copy them */
			n = lim - (size_t)(w - w0);
			n = smtp_parse_plain_lines(
			    b + pos, len - pos < n ? len - pos : n, SIZE_MAX);
			if (n > 0) {
				memcpy(w, b + pos, n);
				w += n;
				pos += n;
				continue;
			}
		}
		c = b[pos];
		if (s->pend_cr) {
			/* CR LF, or a bare CR made into CRLF. */
			s->pend_cr = false;
			*w++ = '\n';
			s->bol = true;
			pos += c == '\n';
			continue;
		}
		if (c == '\r' || c == '\n') {
			*w++ = '\r';
			if (c == '\n') {
				*w++ = '\n';
				s->bol = true;
			} else
				s->pend_cr = true;
			pos++;
			continue;
		}
		if (s->bol && c == '.')
			*w++ = '.';
		s->bol = false;
		for (n = 0; pos + n < len && n < lim - (size_t)(w - w0) &&
		            b[pos + n] != '\r' && b[pos + n] != '\n';
		     n++)
			;
		memcpy(w, b + pos, n);
		w += n;
		pos += n;
	}
	s->bpos += pos;
	return (size_t)(w - w0);
}

/* The end of the body: close a pending or missing line end, then ".". */
static size_t
body_tail(struct smtp_out *s, uint8_t *w0)
{
	uint8_t *w = w0;

	if (s->pend_cr) {
		*w++ = '\n';
		s->pend_cr = false;
		s->bol = true;
	}
	if (!s->bol) {
		*w++ = '\r';
		*w++ = '\n';
	}
	memcpy(w, ".\r\n", 3);
	w += 3;
	s->body_end = true;
	return (size_t)(w - w0);
}

/* The body bytes from s->bpos on that are at hand: the caller's whole
 * body, or its next chunk. NULL when the chunk cannot be read. */
static const uint8_t *
body_window(struct smtp_out *s, size_t *n)
{
	size_t left = s->job.body_len - s->bpos;
	const uint8_t *p;

	if (s->job.body_peek == NULL) {
		*n = left;
		return s->job.body + s->bpos;
	}
	*n = 0;
	p = s->job.body_peek(s->job.body_arg, s->bpos, n);
	if (p == NULL || *n == 0)
		return NULL;
	if (*n > left)
		*n = left;
	return p;
}

/*
 * Stream dot-stuffed body into out, up to the target size, window after
 * window. Every input byte costs at most two output bytes and the tail
 * ("\r\n" ".\r\n" after a pending CR) at most six, hence the margin.
 * false: a chunk could not be read (what was stuffed stays in out).
 */
static bool
body_fill(struct smtp_out *s, struct buf *out)
{
	size_t room, used = 0, n;
	const uint8_t *b;
	uint8_t *w0;

	if (buf_avail(out) + 16 > out_target(out))
		return true;
	room = out_target(out) - buf_avail(out);
	if ((w0 = buf_reserve(out, room)) == NULL)
		return true;
	while (s->bpos < s->job.body_len && used < room - 8) {
		if ((b = body_window(s, &n)) == NULL) {
			buf_commit(out, used);
			return false;
		}
		used += body_stuff(s, b, n, w0 + used, room - 8 - used);
	}
	if (s->bpos == s->job.body_len)
		used += body_tail(s, w0 + used);
	buf_commit(out, used);
	return true;
}

/* The body could not be read: the transaction cannot be ended, so it is
 * left open and the connection closes (the server then drops it). Not
 * the host's fault: the recipients are deferred, final for this try. */
static enum smtp_out_action
body_fail(struct smtp_out *s)
{
	err_local(s, "4.3.0", "cannot read the message from the queue");
	rcpts_resolve(s, &s->err);
	enter(s, ST_CLOSED);
	return job_done(s);
}

static enum smtp_out_action
body_pump(struct smtp_out *s, struct buf *out)
{
	if (!body_fill(s, out))
		return body_fail(s);
	if (!s->body_end)
		return SMTP_OUT_WRITE;
	enter(s, ST_DOT);
	return SMTP_OUT_READ;
}

static enum smtp_out_action
on_data(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	bool want = !s->mail_failed && s->naccepted > 0;

	if (r->code == 354) {
		if (!want) {
			/* Pipelined DATA accepted with nobody to deliver
			 * to: end it at once (RFC 2920 3.1). */
			if (buf_append(out, ".\r\n", 3) < 0)
				return emit_fail(s, out);
			s->discard_dot = true;
			enter(s, ST_DOT);
			return SMTP_OUT_READ;
		}
		enter(s, ST_BODY);
		return body_pump(s, out);
	}
	if (r->code / 100 == 2 || r->code / 100 == 3)
		return proto_error(s, "unexpected reply to DATA", out);
	/* Refused: the expected 503/554 when nobody was accepted, or the
	 * answer for everyone accepted. */
	if (want)
		rcpts_accepted(s, SMTP_OUT_CMD_DATA, r);
	enter(s, ST_READY);
	return job_done(s);
}

static void
on_mail(struct smtp_out *s, const struct smtp_reply *r)
{
	struct smtp_out_result res;

	if (r->code / 100 == 2)
		return;
	/* Every recipient takes the MAIL reply; with PIPELINING their
	 * RCPT replies (503) are still to come and are ignored. */
	s->mail_failed = true;
	result_reply(&res, SMTP_OUT_CMD_MAIL, r, text_keep(s, r));
	rcpts_resolve(s, &res);
}

static void
on_rcpt(struct smtp_out *s, size_t i, const struct smtp_reply *r)
{
	if (s->mail_failed)
		return;
	if (r->code / 100 == 2) {
		s->rst[i] = R_ACCEPTED;
		s->naccepted++;
		return;
	}
	result_reply(&s->job.results[i], SMTP_OUT_CMD_RCPT, r, text_keep(s, r));
	s->rst[i] = R_DONE;
}

static enum smtp_out_action
on_tx(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	struct step st = s->rcv;

	if (step_eq(s->rcv, s->snd))
		return proto_error(s, "unsolicited reply", out);
	s->rcv = step_next(s, s->rcv);
	if (r->code / 100 == 3 && st.kind != STEP_DATA)
		return proto_error(s, "unexpected 3xx reply", out);
	switch (st.kind) {
	case STEP_RSET:
		if (r->code / 100 != 2) {
			err_reply(s, SMTP_OUT_CMD_RSET, r);
			return host_down(s, step_eq(s->rcv, s->snd), out);
		}
		break;
	case STEP_MAIL:
		on_mail(s, r);
		if (s->mail_failed && !s->ehlo.pipelining) {
			enter(s, ST_READY);
			return job_done(s);
		}
		break;
	case STEP_RCPT:
		on_rcpt(s, st.i, r);
		break;
	case STEP_DATA:
		return on_data(s, r, out);
	case STEP_END:
		break;
	}
	return tx_pump(s, out);
}

/* A reply while the body is still going out: the server gave up on the
 * message. The dot was not sent, so the connection is done for. */
static enum smtp_out_action
on_body(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 != 4 && r->code / 100 != 5)
		return proto_error(s, "reply before end of data", out);
	rcpts_accepted(s, SMTP_OUT_CMD_DATA, r);
	err_reply(s, SMTP_OUT_CMD_DATA, r);
	enter(s, ST_CLOSED);
	return job_done(s);
}

static enum smtp_out_action
on_dot(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (r->code / 100 == 3)
		return proto_error(s, "unexpected 3xx reply", out);
	if (!s->discard_dot)
		rcpts_accepted(s, SMTP_OUT_CMD_DOT, r);
	/* The reply to the dot ended the transaction (RFC 5321 4.1.1.4),
	 * whatever it said: the next MAIL needs no RSET. */
	s->used = false;
	enter(s, ST_READY);
	return job_done(s);
}

static reply_fn *const reply_table[] = {
    [ST_GREETING] = on_greeting,
    [ST_EHLO] = on_ehlo,
    [ST_HELO] = on_helo,
    [ST_STARTTLS] = on_starttls,
    [ST_TLS] = on_unsolicited,
    [ST_AUTH] = on_auth,
    [ST_AUTH_USER] = on_auth_login,
    [ST_AUTH_PASS] = on_auth_login,
    [ST_READY] = on_unsolicited,
    [ST_TX] = on_tx,
    [ST_BODY] = on_body,
    [ST_DOT] = on_dot,
    [ST_FAILED] = on_unsolicited,
    [ST_QUIT] = on_quit,
    [ST_CLOSED] = on_unsolicited,
};

/* The command whose reply is expected now. */
static enum smtp_out_cmd
cur_cmd(const struct smtp_out *s)
{
	static const enum smtp_out_cmd cmds[] = {
	    [ST_GREETING] = SMTP_OUT_CMD_GREETING,
	    [ST_EHLO] = SMTP_OUT_CMD_EHLO,
	    [ST_HELO] = SMTP_OUT_CMD_HELO,
	    [ST_STARTTLS] = SMTP_OUT_CMD_STARTTLS,
	    [ST_AUTH] = SMTP_OUT_CMD_AUTH,
	    [ST_AUTH_USER] = SMTP_OUT_CMD_AUTH,
	    [ST_AUTH_PASS] = SMTP_OUT_CMD_AUTH,
	    [ST_BODY] = SMTP_OUT_CMD_DATA,
	    [ST_DOT] = SMTP_OUT_CMD_DOT,
	    [ST_QUIT] = SMTP_OUT_CMD_QUIT,
	};

	if (s->state == ST_TX)
		return step_eq(s->rcv, s->snd) ? SMTP_OUT_CMD_NONE
		                               : step_cmd(s->rcv);
	return cmds[s->state];
}

static enum smtp_out_action
dispatch(struct smtp_out *s, const struct smtp_reply *r, struct buf *out)
{
	if (log_debug_enabled())
		log_debug("event=smtp-out-reply id=%016" PRIx64
		          " state=%s code=%d",
		    s->id, state_names[s->state], r->code);
	if (r->code == 421 && s->state != ST_QUIT) {
		err_reply(s, cur_cmd(s), r);
		return host_down(s, false, out);
	}
	return reply_table[s->state](s, r, out);
}

/* What the loop does next when nothing happened but I/O. */
static enum smtp_out_action
io_action(const struct smtp_out *s)
{
	switch (s->state) {
	case ST_TLS:
		return SMTP_OUT_STARTTLS;
	case ST_READY:
	case ST_FAILED:
		return SMTP_OUT_IDLE;
	case ST_CLOSED:
		return SMTP_OUT_CLOSE;
	case ST_BODY:
		return SMTP_OUT_WRITE;
	case ST_TX:
		return s->ehlo.pipelining && s->snd.kind != STEP_END
		           ? SMTP_OUT_WRITE
		           : SMTP_OUT_READ;
	default:
		return SMTP_OUT_READ;
	}
}

enum smtp_out_action
smtp_out_feed(struct smtp_out *s, const uint8_t *p, size_t n, struct buf *out)
{
	enum smtp_out_action act;
	size_t used;
	int rc;

	MTA_ASSERT(out->max >= SMTP_OUT_OUT_MIN);
	while (n > 0 && s->state != ST_CLOSED && s->state != ST_TLS) {
		rc = smtp_reply_parse(&s->rp, p, n, &used);
		p += used;
		n -= used;
		if (rc < 0 && s->state == ST_QUIT) {
			enter(s, ST_CLOSED);
			return SMTP_OUT_CLOSE;
		}
		if (rc < 0)
			return proto_error(s,
			    rc == -EMSGSIZE ? "reply too long"
			                    : "malformed reply",
			    out);
		if (rc == 0)
			break;
		act = dispatch(s, smtp_reply_peek(&s->rp), out);
		if (s->state == ST_TLS) {
			/* Plaintext after "220 ready for TLS" is an
			 * injection attempt or garbage: drop it. */
			smtp_reply_reset(&s->rp);
			return act;
		}
		if (act == SMTP_OUT_JOB_DONE || act == SMTP_OUT_IDLE) {
			if (n == 0)
				return act;
			/* Bytes nobody asked for: out of step. */
			if (act == SMTP_OUT_IDLE)
				return proto_error(s, "unsolicited reply", out);
			enter(s, ST_CLOSED);
			return act;
		}
		if (act == SMTP_OUT_CLOSE)
			return act;
	}
	return io_action(s);
}

enum smtp_out_action
smtp_out_flushed(struct smtp_out *s, struct buf *out)
{
	MTA_ASSERT(out->max >= SMTP_OUT_OUT_MIN);
	if (s->state == ST_TX)
		return tx_pump(s, out);
	if (s->state == ST_BODY)
		return body_pump(s, out);
	return io_action(s);
}

enum smtp_out_action
smtp_out_job_set(
    struct smtp_out *s, const struct smtp_out_job *job, struct buf *out)
{
	struct smtp_out_result res;

	MTA_ASSERT(!s->has_job);
	texts_clear(s);
	s->job = *job;
	s->has_job = true;
	if (job->nrcpts > s->rst_cap) {
		s->rst = xreallocarray(s->rst, job->nrcpts, sizeof(*s->rst));
		s->rst_cap = job->nrcpts;
	}
	if (job->nrcpts > 0)
		memset(s->rst, R_PENDING, job->nrcpts);
	memset(job->results, 0, job->nrcpts * sizeof(*job->results));
	switch (s->state) {
	case ST_READY:
		return tx_start(s, out);
	case ST_FAILED:
	case ST_QUIT:
	case ST_CLOSED:
		if (s->has_err)
			res = s->err;
		else
			result_local(&res, SMTP_OUT_TEMPFAIL, "4.4.2",
			    "connection closed");
		rcpts_resolve(s, &res);
		return job_done(s);
	default:
		/* Handshake in progress (maybe TLS, which the loop is already
		 * doing): the job starts when it is over. */
		return SMTP_OUT_READ;
	}
}

void
smtp_out_tls_reason(struct smtp_out *s, const char *why)
{
	str_copy(s->tls_why, sizeof(s->tls_why), why);
}

enum smtp_out_action
smtp_out_tls_done(struct smtp_out *s, bool ok, struct buf *out)
{
	MTA_ASSERT(s->state == ST_TLS);
	if (!ok) {
		err_local(s, "4.7.5",
		    s->tls_why[0] ? s->tls_why : "TLS handshake failed");
		return host_down(s, false, out);
	}
	s->tls = true;
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	smtp_reply_reset(&s->rp);
	return send_hello(s, "EHLO", ST_EHLO, out);
}

enum smtp_out_action
smtp_out_quit(struct smtp_out *s, struct buf *out)
{
	s->has_job = false;
	switch (s->state) {
	case ST_READY:
	case ST_FAILED:
		return quit_send(s, out);
	case ST_QUIT:
		return SMTP_OUT_READ;
	default:
		enter(s, ST_CLOSED);
		return SMTP_OUT_CLOSE;
	}
}

enum smtp_out_action
smtp_out_abort(struct smtp_out *s, enum smtp_out_abort why)
{
	static const char *const reasons[] = {
	    [SMTP_OUT_ABORT_TIMEOUT] = "conversation timed out",
	    [SMTP_OUT_ABORT_EOF] = "lost connection",
	    [SMTP_OUT_ABORT_IO] = "connection error",
	};

	switch (s->state) {
	case ST_READY:
	case ST_FAILED:
	case ST_QUIT:
	case ST_CLOSED:
		if (!s->has_job) {
			enter(s, ST_CLOSED);
			return SMTP_OUT_CLOSE;
		}
		break;
	default:
		break;
	}
	err_local(s, "4.4.2", reasons[why]);
	return host_down(s, false, NULL);
}

uint64_t
smtp_out_timeout(const struct smtp_out *s)
{
	switch (s->state) {
	case ST_READY:
	case ST_FAILED:
	case ST_CLOSED:
		return 0;
	case ST_TX:
		return s->rcv.kind == STEP_DATA ? s->cfg.data_timeout
		                                : s->cfg.command_timeout;
	case ST_BODY:
	case ST_DOT:
		return s->cfg.data_timeout;
	default:
		return s->cfg.command_timeout;
	}
}

bool
smtp_out_reusable(const struct smtp_out *s)
{
	return s->state == ST_READY && !s->has_job;
}

bool
smtp_out_host_failed(const struct smtp_out *s)
{
	return s->host_failed;
}

const struct smtp_out_result *
smtp_out_error(const struct smtp_out *s)
{
	return s->has_err ? &s->err : NULL;
}

const struct smtp_ehlo *
smtp_out_ehlo(const struct smtp_out *s)
{
	return &s->ehlo;
}

bool
smtp_out_tls_active(const struct smtp_out *s)
{
	return s->tls;
}

const char *
smtp_out_cmd_name(enum smtp_out_cmd cmd)
{
	static const char *const names[] = {
	    [SMTP_OUT_CMD_NONE] = "none",
	    [SMTP_OUT_CMD_GREETING] = "greeting",
	    [SMTP_OUT_CMD_EHLO] = "EHLO",
	    [SMTP_OUT_CMD_HELO] = "HELO",
	    [SMTP_OUT_CMD_STARTTLS] = "STARTTLS",
	    [SMTP_OUT_CMD_AUTH] = "AUTH",
	    [SMTP_OUT_CMD_RSET] = "RSET",
	    [SMTP_OUT_CMD_MAIL] = "MAIL FROM",
	    [SMTP_OUT_CMD_RCPT] = "RCPT TO",
	    [SMTP_OUT_CMD_DATA] = "DATA",
	    [SMTP_OUT_CMD_DOT] = "end of data",
	    [SMTP_OUT_CMD_QUIT] = "QUIT",
	};

	if ((size_t)cmd >= MTA_ARRAY_LEN(names))
		return "?";
	return names[cmd];
}

const char *
smtp_out_outcome_name(enum smtp_out_outcome o)
{
	switch (o) {
	case SMTP_OUT_OK:
		return "delivered";
	case SMTP_OUT_TEMPFAIL:
		return "deferred";
	case SMTP_OUT_PERMFAIL:
		return "bounced";
	}
	return "?";
}
