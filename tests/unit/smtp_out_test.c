/* SPDX-License-Identifier: ISC */
/*
 * smtp_out_test.c - the client state machine against scripted servers.
 *
 * A script is a table of steps: the server sends bytes (S) and the
 * session must answer with an action; the client's bytes on the wire
 * must be exactly C; the loop sets a job (J), finishes TLS (T/F), quits
 * (Q), times out (O) or sees EOF (E); R checks the per-recipient results
 * ("outcome:code:enhanced" per recipient), H/U the host-failed and
 * reusable flags, X that the host failure's text contains a string. Every script runs once per split point of the server's
 * bytes (each S step cut in two at the same offset) and once a byte at a
 * time, and must behave the same. WRITE actions are drained as the loop
 * would: out is "sent", then smtp_out_flushed().
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_out.h"
#include "smtp/smtp_parse.h"
#include "../harness.h"

#define TMAX_RCPTS 8

struct tjob {
	const char *from;
	const char *rcpts[TMAX_RCPTS]; /* NULL-terminated */
	const char *body;
	bool b8, utf8;
	int conv; /* body_7bit: 0 none, 1 converts, 2 cannot, 3 read error */
};

struct tstep {
	char op;
	const char *s;
	enum smtp_out_action act;
};

struct script {
	const char *name;
	const struct smtp_out_cfg *cfg;
	const struct tjob *jobs; /* J takes the next one */
	const struct tstep *steps;
	size_t nsteps;
	size_t outmax; /* 0 = 1 MiB */
};

static const char *const act_names[] = {
    "READ",
    "WRITE",
    "STARTTLS",
    "JOB_DONE",
    "IDLE",
    "CLOSE",
};

/* The loop's view of one run. */
struct run {
	struct smtp_out *s;
	struct buf out;
	struct buf wire; /* everything the client sent */
	struct smtp_out_job job;
	struct smtp_out_result res[TMAX_RCPTS];
	size_t njobs;
	const struct script *sc;
	long split; /* -1 = byte at a time */
	size_t step;
};

static int
fail_at(const struct run *r, const char *what)
{
	fprintf(stderr, "script %s split %ld step %zu: %s\n", r->sc->name,
	    r->split, r->step, what);
	return 0;
}

/* Send out, then let a WRITE produce the rest. */
static enum smtp_out_action
drain(struct run *r, enum smtp_out_action act)
{
	for (;;) {
		if (buf_avail(&r->out) > 0) {
			if (buf_avail(&r->out) > SMTP_OUT_CHUNK ||
			    buf_avail(&r->out) > r->out.max)
				abort();
			if (buf_append(&r->wire, buf_peek(&r->out),
			        buf_avail(&r->out)) < 0)
				abort();
			buf_reset(&r->out);
		}
		if (act != SMTP_OUT_WRITE)
			return act;
		act = smtp_out_flushed(r->s, &r->out);
	}
}

static enum smtp_out_action
server_sends(struct run *r, const char *p)
{
	size_t len = strlen(p), k, off = 0;
	enum smtp_out_action act = SMTP_OUT_READ;

	if (r->split < 0) {
		for (k = 0; k < len; k++)
			act = drain(r, smtp_out_feed(r->s,
			                   (const uint8_t *)p + k, 1, &r->out));
		return act;
	}
	k = (size_t)r->split < len ? (size_t)r->split : len;
	if (k > 0) {
		act = drain(
		    r, smtp_out_feed(r->s, (const uint8_t *)p, k, &r->out));
		off = k;
	}
	if (off < len)
		act = drain(r, smtp_out_feed(r->s, (const uint8_t *)p + off,
		                   len - off, &r->out));
	return act;
}

/* The caller's 7-bit form (a lone "." line in it, to be stuffed). */
#define CONV7                                                                \
	"Subject: hi\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" \
	"=E9\r\n.\r\n" /* 68 bytes */
#define CONV7_WIRE                                                           \
	"Subject: hi\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" \
	"=E9\r\n..\r\n.\r\n"

static int
body7(void *arg, const uint8_t **body, size_t *len, const char **why)
{
	switch ((intptr_t)arg) {
	case 1:
		*body = (const uint8_t *)CONV7;
		*len = strlen(CONV7);
		return 0;
	case 2:
		*why = "the test says so";
		return 1;
	}
	return -EIO;
}

static void
job_load(struct run *r)
{
	const struct tjob *t = &r->sc->jobs[r->njobs++];
	size_t n = 0;

	while (n < TMAX_RCPTS && t->rcpts[n] != NULL)
		n++;
	memset(&r->job, 0, sizeof(r->job));
	r->job.from = t->from;
	r->job.rcpts = t->rcpts;
	r->job.nrcpts = n;
	r->job.body = (const uint8_t *)t->body;
	r->job.body_len = strlen(t->body);
	r->job.need_8bitmime = t->b8;
	r->job.need_smtputf8 = t->utf8;
	if (t->conv != 0) {
		r->job.body_7bit = body7;
		r->job.body_arg = (void *)(intptr_t)t->conv;
	}
	r->job.results = r->res;
}

static const char outcome_ch[] = {'O', 'T', 'P'};

static void
results_fmt(const struct run *r, char *dst, size_t size)
{
	size_t i, o = 0;

	dst[0] = '\0';
	for (i = 0; i < r->job.nrcpts && o < size; i++)
		o += (size_t)snprintf(dst + o, size - o, "%s%c:%d:%s",
		    i ? " " : "", outcome_ch[r->res[i].outcome], r->res[i].code,
		    r->res[i].enhanced);
}

static int
act_check(struct run *r, enum smtp_out_action got, enum smtp_out_action want)
{
	char msg[64];

	if (got == want)
		return 1;
	snprintf(msg, sizeof(msg), "action %s, want %s", act_names[got],
	    act_names[want]);
	return fail_at(r, msg);
}

static int
wire_check(struct run *r, const char *want)
{
	size_t n = strlen(want);

	if (buf_avail(&r->wire) == n &&
	    memcmp(buf_peek(&r->wire), want, n) == 0) {
		buf_reset(&r->wire);
		return 1;
	}
	fprintf(stderr, "wire: [%.*s]\nwant: [%s]\n", (int)buf_avail(&r->wire),
	    (const char *)buf_peek(&r->wire), want);
	return fail_at(r, "wire differs");
}

static int
step_run(struct run *r, const struct tstep *t)
{
	char got[256];

	switch (t->op) {
	case 'S':
		return act_check(r, server_sends(r, t->s), t->act);
	case 'C':
		return wire_check(r, t->s);
	case 'J':
		job_load(r);
		return act_check(r,
		    drain(r, smtp_out_job_set(r->s, &r->job, &r->out)), t->act);
	case 'T':
	case 'F':
		return act_check(r,
		    drain(r, smtp_out_tls_done(r->s, t->op == 'T', &r->out)),
		    t->act);
	case 'Q':
		return act_check(
		    r, drain(r, smtp_out_quit(r->s, &r->out)), t->act);
	case 'O':
	case 'E':
		return act_check(r,
		    smtp_out_abort(r->s, t->op == 'O' ? SMTP_OUT_ABORT_TIMEOUT
		                                      : SMTP_OUT_ABORT_EOF),
		    t->act);
	case 'R':
		results_fmt(r, got, sizeof(got));
		if (strcmp(got, t->s) == 0)
			return 1;
		fprintf(stderr, "results: %s\nwant:    %s\n", got, t->s);
		return fail_at(r, "results differ");
	case 'H':
		return smtp_out_host_failed(r->s) == (t->s[0] == '1') ||
		       fail_at(r, "host_failed");
	case 'U':
		return smtp_out_reusable(r->s) == (t->s[0] == '1') ||
		       fail_at(r, "reusable");
	case 'X':
		return (smtp_out_error(r->s) != NULL &&
		           strstr(smtp_out_error(r->s)->text, t->s) != NULL) ||
		       fail_at(r, "host failure text");
	}
	return fail_at(r, "bad op");
}

static int
script_run(const struct script *sc, long split)
{
	struct run r;
	int ok = 1;

	memset(&r, 0, sizeof(r));
	r.sc = sc;
	r.split = split;
	r.s = smtp_out_new(sc->cfg, 0x1234);
	buf_init(&r.out, sc->outmax ? sc->outmax : 1 << 20);
	buf_init(&r.wire, 64 << 20);
	for (r.step = 0; ok && r.step < sc->nsteps; r.step++)
		ok = step_run(&r, &sc->steps[r.step]);
	if (ok && buf_avail(&r.wire) != 0)
		ok = wire_check(&r, "");
	smtp_out_free(r.s);
	buf_fini(&r.out);
	buf_fini(&r.wire);
	return ok;
}

static int
script_all(const struct script *sc)
{
	size_t i, max = 0;
	long k;

	for (i = 0; i < sc->nsteps; i++)
		if (sc->steps[i].op == 'S' && strlen(sc->steps[i].s) > max)
			max = strlen(sc->steps[i].s);
	for (k = 0; k <= (long)max; k++)
		if (!script_run(sc, k))
			return 0;
	return script_run(sc, -1);
}

/* ---- configurations and jobs ---- */

static const struct smtp_out_cfg cfg_plain = {
    .helo_name = "client.example",
    .tls = CONFIG_TLS_NONE,
    .command_timeout = 300000,
    .data_timeout = 600000,
};

static const struct smtp_out_cfg cfg_may = {
    .helo_name = "client.example",
    .tls = CONFIG_TLS_MAY,
    .command_timeout = 300000,
    .data_timeout = 600000,
};

static const struct smtp_out_cfg cfg_encrypt = {
    .helo_name = "client.example",
    .tls = CONFIG_TLS_ENCRYPT,
    .command_timeout = 300000,
    .data_timeout = 600000,
};

/* DANE (deliver/tls_policy.h): TLS required by a policy */
static const struct smtp_out_cfg cfg_dane = {
    .helo_name = "client.example",
    .tls = CONFIG_TLS_VERIFY,
    .tls_policy = "dane",
    .command_timeout = 300000,
    .data_timeout = 600000,
};

static const struct smtp_out_cfg cfg_smarthost = {
    .helo_name = "client.example",
    .tls = CONFIG_TLS_MAY,
    .auth_user = "user",
    .auth_pass = "pass",
    .command_timeout = 300000,
    .data_timeout = 600000,
};

static const struct smtp_out_cfg cfg_auth_plaintext = {
    .helo_name = "client.example",
    .tls = CONFIG_TLS_NONE,
    .auth_user = "user",
    .auth_pass = "pass",
    .auth_plaintext = true,
    .command_timeout = 300000,
    .data_timeout = 600000,
};

#define BODY1      "Subject: hi\r\n\r\nbody\r\n" /* 21 bytes */
#define BODY1_WIRE BODY1 ".\r\n"
#define BODY2      ".dot first\r\nsecond" /* 18 bytes */
#define BODY2_WIRE "..dot first\r\nsecond\r\n.\r\n"

static const struct tjob jobs_std[] = {
    {"a@x.test", {"b@y.test", "c@y.test"}, BODY1, false, false, 0},
    {"", {"d@y.test"}, BODY2, false, false, 0},
    {"a@x.test", {"b@y.test", "c@y.test", "d@y.test"}, BODY1, false, false, 0},
};

static const struct tjob jobs_three[] = {
    {"a@x.test", {"b@y.test", "c@y.test", "d@y.test"}, BODY1, false, false, 0},
};

static const struct tjob jobs_flags[] = {
    {"a@x.test", {"b@y.test"}, BODY1, true, true, 0},
    {"a@x.test", {"b@y.test"}, BODY1, true, false, 0},
};

#define BODY8 "Subject: hi\r\n\r\n\xe9\r\n.\r\n"

static const struct tjob jobs_conv[] = {
    {"a@x.test", {"b@y.test"}, BODY8, true, false, 1},
    {"a@x.test", {"b@y.test"}, BODY8, true, false, 2},
    {"a@x.test", {"b@y.test"}, BODY8, true, false, 3},
    {"a@x.test", {"b@y.test"}, BODY8, true, false, 0},
};

/* A conversion that would fail if it were asked for. */
static const struct tjob jobs_noconv[] = {
    {"a@x.test", {"b@y.test"}, BODY8, true, false, 3},
};

static const struct tjob jobs_bad[] = {
    {"a@x.test", {"b@y.test\r\nRSET", "c@y.test"}, BODY1, false, false, 0},
    {"a\r@x.test", {"c@y.test"}, BODY1, false, false, 0},
};

#define GREET    "220 mx.y.test ESMTP\r\n"
#define EHLO     "EHLO client.example\r\n"
#define EHLO_MIN "250-mx.y.test\r\n250 8BITMIME\r\n"
#define EHLO_PIPE                                                  \
	"250-mx.y.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n" \
	"250 ENHANCEDSTATUSCODES\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define GO      "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED  "250 2.0.0 Ok: queued as 4F2\r\n"

#define SCRIPT(id, c, j, ...)                                          \
	static const struct tstep steps_##id[] = {__VA_ARGS__};        \
	static const struct script sc_##id = {                         \
	    #id, &(c), (j), steps_##id, MTA_ARRAY_LEN(steps_##id), 0}; \
	static void test_##id(void)                                    \
	{                                                              \
		CHECK(script_all(&sc_##id));                           \
	}

SCRIPT(plain, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<b@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "RCPT TO:<c@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "DATA\r\n", 0}, {'S', GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0 O:250:2.0.0", 0},
    {'H', "0", 0}, {'U', "1", 0}, {'Q', NULL, SMTP_OUT_READ},
    {'C', "QUIT\r\n", 0}, {'S', "221 2.0.0 Bye\r\n", SMTP_OUT_CLOSE}, )

SCRIPT(pipelined, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_PIPE, SMTP_OUT_IDLE}, {'J', NULL, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT OK_RCPT GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0 O:250:2.0.0", 0},
    {'Q', NULL, SMTP_OUT_READ}, {'C', "QUIT\r\n", 0},
    {'E', NULL, SMTP_OUT_CLOSE}, {'H', "0", 0}, )

SCRIPT(mixed, cfg_plain, jobs_three, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n",
        0},
    {'S',
        OK_MAIL OK_RCPT "451 4.2.0 mailbox busy\r\n"
                        "550-5.1.1 no such\r\n550 5.1.1 user\r\n" GO,
        SMTP_OUT_READ},
    {'C', BODY1_WIRE, 0}, {'S', QUEUED, SMTP_OUT_JOB_DONE},
    {'R', "O:250:2.0.0 T:451:4.2.0 P:550:5.1.1", 0}, {'U', "1", 0}, )

/* Without PIPELINING nobody accepted means no DATA at all; the next job
 * starts with RSET. */
SCRIPT(all_refused, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<b@y.test>\r\n", 0},
    {'S', "550 5.1.1 no\r\n", SMTP_OUT_READ},
    {'C', "RCPT TO:<c@y.test>\r\n", 0},
    {'S', "450 4.2.1 later\r\n", SMTP_OUT_JOB_DONE},
    {'R', "P:550:5.1.1 T:450:4.2.1", 0}, {'U', "1", 0},
    {'J', NULL, SMTP_OUT_READ}, {'C', "RSET\r\n", 0},
    {'S', "250 2.0.0 Ok\r\n", SMTP_OUT_READ}, {'C', "MAIL FROM:<>\r\n", 0},
    {'S', OK_MAIL, SMTP_OUT_READ}, {'C', "RCPT TO:<d@y.test>\r\n", 0},
    {'S', OK_RCPT, SMTP_OUT_READ}, {'C', "DATA\r\n", 0},
    {'S', GO, SMTP_OUT_READ}, {'C', BODY2_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0", 0}, )

/* With PIPELINING DATA went out anyway: its 554 is expected. */
SCRIPT(all_refused_pipelined, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S',
        OK_MAIL "550 5.1.1 no\r\n550 5.1.1 no\r\n"
                "554 5.5.1 Error: no valid recipients\r\n",
        SMTP_OUT_JOB_DONE},
    {'R', "P:550:5.1.1 P:550:5.1.1", 0}, {'U', "1", 0},
    {'J', NULL, SMTP_OUT_READ},
    {'C',
        "RSET\r\nMAIL FROM:<> SIZE=18\r\nRCPT TO:<d@y.test>\r\n"
        "DATA\r\n",
        0},
    {'S', "250 2.0.0 Ok\r\n" OK_MAIL OK_RCPT GO, SMTP_OUT_READ},
    {'C', BODY2_WIRE, 0}, {'S', QUEUED, SMTP_OUT_JOB_DONE},
    {'R', "O:250:2.0.0", 0}, )

/* A server that says 354 with no valid recipient gets a lone dot. */
SCRIPT(all_refused_354, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL "550 5.1.1 no\r\n550 5.1.1 no\r\n" GO, SMTP_OUT_READ},
    {'C', ".\r\n", 0},
    {'S', "554 5.5.1 no valid recipients\r\n", SMTP_OUT_JOB_DONE},
    {'R', "P:550:5.1.1 P:550:5.1.1", 0}, {'U', "1", 0}, )

SCRIPT(mail_refused_pipelined, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S',
        "553 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n"
        "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n",
        SMTP_OUT_JOB_DONE},
    {'R', "P:553:5.7.1 P:553:5.7.1", 0}, {'U', "1", 0}, {'H', "0", 0}, )

SCRIPT(mail_refused, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0},
    {'S', "451 4.3.0 try later\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:451:4.3.0 T:451:4.3.0", 0}, {'U', "1", 0}, )

SCRIPT(data_refused, cfg_plain, jobs_three, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n",
        0},
    {'S',
        OK_MAIL OK_RCPT "550 5.1.1 no\r\n" OK_RCPT "451 4.3.0 no DATA now\r\n",
        SMTP_OUT_JOB_DONE},
    {'R', "T:451:4.3.0 P:550:5.1.1 T:451:4.3.0", 0}, {'U', "1", 0}, )

SCRIPT(dot_451, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT "550 5.1.1 no\r\n" GO, SMTP_OUT_READ},
    {'C', BODY1_WIRE, 0},
    {'S', "451 4.3.0 queue trouble\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:451:4.3.0 P:550:5.1.1", 0}, {'U', "1", 0}, )

SCRIPT(dot_552, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<b@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "RCPT TO:<c@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "DATA\r\n", 0}, {'S', GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', "552 5.3.4 message too big\r\n", SMTP_OUT_JOB_DONE},
    {'R', "P:552:5.3.4 P:552:5.3.4", 0}, )

/* 421 after a RCPT was refused: the refusal stands, the rest defer, the
 * host is marked failed and no QUIT is sent. */
SCRIPT(reply_421, cfg_plain, jobs_three, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n",
        0},
    {'S',
        OK_MAIL OK_RCPT "550 5.1.1 no\r\n"
                        "421 4.3.2 shutting down\r\n",
        SMTP_OUT_JOB_DONE},
    {'R', "T:421:4.3.2 P:550:5.1.1 T:421:4.3.2", 0}, {'H', "1", 0},
    {'U', "0", 0}, {'Q', NULL, SMTP_OUT_CLOSE}, )

SCRIPT(reply_421_dot, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT OK_RCPT GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', "421 timeout\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:421:4.0.0 T:421:4.0.0", 0}, {'H', "1", 0},
    {'Q', NULL, SMTP_OUT_CLOSE}, )

SCRIPT(helo_fallback, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "502 5.5.2 Error: command not recognized\r\n", SMTP_OUT_READ},
    {'C', "HELO client.example\r\n", 0},
    {'S', "250 mx.y.test\r\n", SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<b@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "RCPT TO:<c@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "DATA\r\n", 0}, {'S', GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0 O:250:2.0.0", 0}, )

SCRIPT(helo_refused, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "500 what\r\n", SMTP_OUT_READ}, {'C', "HELO client.example\r\n", 0},
    {'S', "550 go away\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:550:4.0.0 T:550:4.0.0", 0}, {'H', "1", 0},
    {'Q', NULL, SMTP_OUT_READ}, {'C', "QUIT\r\n", 0}, )

/* The STARTTLS 220 and a forged reply in the same packet: the forged one
 * is dropped, the dialogue restarts with EHLO over TLS. */
SCRIPT(starttls_may, cfg_may, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx.y.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n", SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0},
    {'S', "220 2.0.0 Ready to start TLS\r\n250-forged\r\n", SMTP_OUT_STARTTLS},
    {'T', NULL, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx.y.test\r\n250 PIPELINING\r\n", SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT OK_RCPT GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0 O:250:2.0.0", 0}, )

SCRIPT(starttls_none, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx.y.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n", SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, )

SCRIPT(starttls_refused_may, cfg_may, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx.y.test\r\n250 STARTTLS\r\n", SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0},
    {'S', "454 4.7.0 TLS not available\r\n", SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, )

SCRIPT(encrypt_not_offered, cfg_encrypt, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_JOB_DONE}, {'R', "T:0:4.7.4 T:0:4.7.4", 0},
    {'H', "1", 0}, {'U', "0", 0}, {'Q', NULL, SMTP_OUT_READ},
    {'C', "QUIT\r\n", 0}, {'S', "221 bye\r\n", SMTP_OUT_CLOSE}, )

/* under a policy (DANE, MTA-STS) a missing STARTTLS is 4.7.5 */
SCRIPT(dane_not_offered, cfg_dane, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_JOB_DONE}, {'R', "T:0:4.7.5 T:0:4.7.5", 0},
    {'H', "1", 0}, )

SCRIPT(encrypt_refused, cfg_encrypt, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx.y.test\r\n250 STARTTLS\r\n", SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0},
    {'S', "454 4.7.0 TLS not available\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:454:4.7.0 T:454:4.7.0", 0}, {'H', "1", 0}, )

SCRIPT(tls_handshake_fails, cfg_encrypt, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx.y.test\r\n250 STARTTLS\r\n", SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0}, {'S', "220 go ahead\r\n", SMTP_OUT_STARTTLS},
    {'F', NULL, SMTP_OUT_JOB_DONE}, {'R', "T:0:4.7.5 T:0:4.7.5", 0},
    {'H', "1", 0}, {'Q', NULL, SMTP_OUT_CLOSE}, )

/* The worker hands over a job while the TLS handshake is running. */
SCRIPT(job_during_tls, cfg_may, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', "250-mx.y.test\r\n250 STARTTLS\r\n", SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0}, {'S', "220 go ahead\r\n", SMTP_OUT_STARTTLS},
    {'J', NULL, SMTP_OUT_READ}, {'T', NULL, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0}, )

/* Garbage in answer to QUIT: just close, the host did nothing wrong. */
SCRIPT(quit_garbage, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_IDLE}, {'Q', NULL, SMTP_OUT_READ},
    {'C', "QUIT\r\n", 0}, {'Q', NULL, SMTP_OUT_READ},
    {'S', "bye bye\r\n", SMTP_OUT_CLOSE}, {'H', "0", 0}, )

/* Smarthost: STARTTLS first, then AUTH PLAIN over TLS only. */
SCRIPT(auth_smarthost, cfg_smarthost, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-relay.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
        SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0}, {'S', "220 ready\r\n", SMTP_OUT_STARTTLS},
    {'T', NULL, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-relay.test\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n",
        SMTP_OUT_READ},
    {'C', "AUTH PLAIN AHVzZXIAcGFzcw==\r\n", 0},
    {'S', "235 2.7.0 Authentication successful\r\n", SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0}, )

/* Credentials but no TLS and no plaintext permission: never sent, and
 * never skipped either: the host fails, every recipient deferred. */
SCRIPT(auth_needs_tls, cfg_smarthost, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-relay.test\r\n250 AUTH PLAIN\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:0:4.7.0 T:0:4.7.0", 0}, {'H', "1", 0},
    {'X', "not sent without TLS", 0}, {'Q', NULL, SMTP_OUT_READ},
    {'C', "QUIT\r\n", 0}, )

/* STARTTLS refused under `may`: the session goes on in plaintext, so
 * the credentials stay home. */
SCRIPT(auth_starttls_refused, cfg_smarthost, jobs_std,
    {'J', NULL, SMTP_OUT_READ}, {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-relay.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
        SMTP_OUT_READ},
    {'C', "STARTTLS\r\n", 0},
    {'S', "454 4.7.0 TLS not available\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:0:4.7.0 T:0:4.7.0", 0}, {'H', "1", 0}, {'Q', NULL, SMTP_OUT_READ},
    {'C', "QUIT\r\n", 0}, )

#define TLS_UP                                                          \
	{'J', NULL, SMTP_OUT_READ}, {'S', GREET, SMTP_OUT_READ},        \
	    {'C', EHLO, 0},                                             \
	    {'S', "250-relay.test\r\n250 STARTTLS\r\n", SMTP_OUT_READ}, \
	    {'C', "STARTTLS\r\n", 0},                                   \
	    {'S', "220 ready\r\n", SMTP_OUT_STARTTLS},                  \
	    {'T', NULL, SMTP_OUT_READ},                                 \
	{                                                               \
		'C', EHLO, 0                                            \
	}

/* Only LOGIN offered: username and password, each after its 334. */
SCRIPT(auth_login_only, cfg_smarthost, jobs_std, TLS_UP,
    {'S', "250-relay.test\r\n250 AUTH LOGIN\r\n", SMTP_OUT_READ},
    {'C', "AUTH LOGIN\r\n", 0}, {'S', "334 VXNlcm5hbWU6\r\n", SMTP_OUT_READ},
    {'C', "dXNlcg==\r\n", 0}, {'S', "334 UGFzc3dvcmQ6\r\n", SMTP_OUT_READ},
    {'C', "cGFzcw==\r\n", 0},
    {'S', "235 2.7.0 Authentication successful\r\n", SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, )

/* A wrong password under LOGIN: the server's words, deferred (soft
 * bounce, as Postfix by default), QUIT. */
SCRIPT(auth_login_535, cfg_smarthost, jobs_std, TLS_UP,
    {'S', "250-relay.test\r\n250 AUTH=LOGIN\r\n", SMTP_OUT_READ},
    {'C', "AUTH LOGIN\r\n", 0}, {'S', "334 VXNlcm5hbWU6\r\n", SMTP_OUT_READ},
    {'C', "dXNlcg==\r\n", 0}, {'S', "334 UGFzc3dvcmQ6\r\n", SMTP_OUT_READ},
    {'C', "cGFzcw==\r\n", 0},
    {'S', "535 5.7.8 bad credentials\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:535:4.7.8 T:535:4.7.8", 0}, {'H', "1", 0},
    {'X', "bad credentials", 0}, {'Q', NULL, SMTP_OUT_READ},
    {'C', "QUIT\r\n", 0}, )

/* LOGIN refused at once (504 to AUTH LOGIN): deferred with that reply. */
SCRIPT(auth_login_refused, cfg_smarthost, jobs_std, TLS_UP,
    {'S', "250-relay.test\r\n250 AUTH LOGIN\r\n", SMTP_OUT_READ},
    {'C', "AUTH LOGIN\r\n", 0},
    {'S', "504 5.5.4 mechanism disabled\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:504:4.5.4 T:504:4.5.4", 0}, {'H', "1", 0}, )

/* No AUTH at all, or none we speak: deferred 4.7.0, nothing sent. */
SCRIPT(auth_not_offered, cfg_smarthost, jobs_std, TLS_UP,
    {'S', EHLO_PIPE, SMTP_OUT_JOB_DONE}, {'R', "T:0:4.7.0 T:0:4.7.0", 0},
    {'H', "1", 0}, {'X', "smarthost offered no usable AUTH", 0},
    {'Q', NULL, SMTP_OUT_READ}, {'C', "QUIT\r\n", 0}, )

SCRIPT(auth_no_usable_mech, cfg_smarthost, jobs_std, TLS_UP,
    {'S', "250-relay.test\r\n250 AUTH CRAM-MD5 GSSAPI\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:0:4.7.0 T:0:4.7.0", 0},
    {'X', "smarthost offered no usable AUTH", 0}, )

/* auth_plaintext: LOGIN in clear, because the route says so. */
SCRIPT(auth_login_plaintext, cfg_auth_plaintext, jobs_std,
    {'J', NULL, SMTP_OUT_READ}, {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-relay.test\r\n250 AUTH LOGIN\r\n", SMTP_OUT_READ},
    {'C', "AUTH LOGIN\r\n", 0}, {'S', "334 VXNlcm5hbWU6\r\n", SMTP_OUT_READ},
    {'C', "dXNlcg==\r\n", 0}, {'S', "334 UGFzc3dvcmQ6\r\n", SMTP_OUT_READ},
    {'C', "cGFzcw==\r\n", 0}, {'S', "235 2.7.0 ok\r\n", SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, )

SCRIPT(auth_plaintext_refused, cfg_auth_plaintext, jobs_std,
    {'J', NULL, SMTP_OUT_READ}, {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-relay.test\r\n250 AUTH=PLAIN\r\n", SMTP_OUT_READ},
    {'C', "AUTH PLAIN AHVzZXIAcGFzcw==\r\n", 0},
    {'S', "535 5.7.8 Error: authentication failed\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:535:4.7.8 T:535:4.7.8", 0}, {'H', "1", 0},
    {'Q', NULL, SMTP_OUT_READ}, {'C', "QUIT\r\n", 0}, )

/* Two jobs on one connection: the first ended with its dot, so no RSET. */
SCRIPT(reuse, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', EHLO_PIPE, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT OK_RCPT GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0 O:250:2.0.0", 0},
    {'U', "1", 0}, {'J', NULL, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<> SIZE=18\r\nRCPT TO:<d@y.test>\r\n"
        "DATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT GO, SMTP_OUT_READ}, {'C', BODY2_WIRE, 0},
    {'S', "250 2.0.0 Ok: queued as 4F3\r\n", SMTP_OUT_JOB_DONE},
    {'R', "O:250:2.0.0", 0}, {'Q', NULL, SMTP_OUT_READ}, {'C', "QUIT\r\n", 0},
    {'S', "221 2.0.0 Bye\r\n", SMTP_OUT_CLOSE}, )

SCRIPT(reuse_unpipelined, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_IDLE}, {'U', "1", 0},
    {'J', NULL, SMTP_OUT_READ}, {'C', "MAIL FROM:<a@x.test>\r\n", 0},
    {'S', OK_MAIL, SMTP_OUT_READ}, {'C', "RCPT TO:<b@y.test>\r\n", 0},
    {'S', OK_RCPT, SMTP_OUT_READ}, {'C', "RCPT TO:<c@y.test>\r\n", 0},
    {'S', OK_RCPT, SMTP_OUT_READ}, {'C', "DATA\r\n", 0},
    {'S', GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'J', NULL, SMTP_OUT_READ},
    {'C', "MAIL FROM:<>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<d@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "DATA\r\n", 0}, {'S', GO, SMTP_OUT_READ}, {'C', BODY2_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0", 0}, )

/* A reused connection that died while idle: MAIL gets 421. */
SCRIPT(reuse_dead, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_PIPE, SMTP_OUT_IDLE}, {'J', NULL, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<a@x.test> SIZE=21\r\nRCPT TO:<b@y.test>\r\n"
        "RCPT TO:<c@y.test>\r\nDATA\r\n",
        0},
    {'S', OK_MAIL OK_RCPT OK_RCPT GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'J', NULL, SMTP_OUT_READ},
    {'C',
        "MAIL FROM:<> SIZE=18\r\nRCPT TO:<d@y.test>\r\n"
        "DATA\r\n",
        0},
    {'S', "421 4.4.2 idle too long\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:421:4.4.2", 0}, {'H', "1", 0}, {'J', NULL, SMTP_OUT_JOB_DONE},
    {'R', "T:421:4.4.2 T:421:4.4.2 T:421:4.4.2", 0}, )

SCRIPT(greeting_554, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', "554 5.7.1 no thanks\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:554:4.7.1 T:554:4.7.1", 0}, {'H', "1", 0},
    {'Q', NULL, SMTP_OUT_READ}, {'C', "QUIT\r\n", 0},
    {'S', "221 bye\r\n", SMTP_OUT_CLOSE}, )

SCRIPT(greeting_421_nojob, cfg_plain, jobs_std,
    {'S', "421 4.3.2 busy\r\n", SMTP_OUT_CLOSE}, {'H', "1", 0}, )

SCRIPT(greeting_450_nojob, cfg_plain, jobs_std,
    {'S', "450 busy\r\n", SMTP_OUT_READ}, {'C', "QUIT\r\n", 0},
    {'E', NULL, SMTP_OUT_CLOSE}, )

SCRIPT(garbage_greeting, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', "SSH-2.0-OpenSSH_9.2\r\n", SMTP_OUT_JOB_DONE},
    {'R', "T:0:4.5.0 T:0:4.5.0", 0}, {'Q', NULL, SMTP_OUT_CLOSE}, )

SCRIPT(idle_421, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_PIPE, SMTP_OUT_IDLE},
    {'S', "421 4.4.2 timeout\r\n", SMTP_OUT_CLOSE}, {'U', "0", 0}, )

SCRIPT(idle_unsolicited, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_PIPE, SMTP_OUT_IDLE},
    {'S', "250 surprise\r\n", SMTP_OUT_CLOSE}, )

SCRIPT(timeout_in_tx, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<b@y.test>\r\n", 0},
    {'S', "550 5.1.1 no\r\n", SMTP_OUT_READ},
    {'C', "RCPT TO:<c@y.test>\r\n", 0}, {'O', NULL, SMTP_OUT_JOB_DONE},
    {'R', "P:550:5.1.1 T:0:4.4.2", 0}, {'H', "1", 0},
    {'Q', NULL, SMTP_OUT_CLOSE}, )

SCRIPT(idle_eof, cfg_plain, jobs_std, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_IDLE}, {'E', NULL, SMTP_OUT_CLOSE},
    {'H', "0", 0}, {'J', NULL, SMTP_OUT_JOB_DONE},
    {'R', "T:0:4.4.2 T:0:4.4.2", 0}, )

/* SMTPUTF8 and 8BITMIME parameters; SMTPUTF8 missing bounces. */
SCRIPT(mail_params, cfg_plain, jobs_flags, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0},
    {'S', "250-mx\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE\r\n",
        SMTP_OUT_IDLE},
    {'J', NULL, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test> SIZE=21 BODY=8BITMIME SMTPUTF8\r\n", 0}, )

SCRIPT(no_smtputf8, cfg_plain, jobs_flags, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_IDLE},
    {'J', NULL, SMTP_OUT_JOB_DONE}, {'R', "P:0:5.6.7", 0}, {'U', "1", 0},
    {'J', NULL, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n", 0}, )

/* No 8BITMIME: the converted body goes (SIZE its length, no BODY=,
 * dot-stuffed); a conversion that is impossible or missing bounces
 * 5.6.3, one that cannot be read defers 4.3.0, all before MAIL. */
SCRIPT(downgrade, cfg_plain, jobs_conv, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', "250-mx.y.test\r\n250 SIZE\r\n", SMTP_OUT_IDLE},
    {'J', NULL, SMTP_OUT_READ}, {'C', "MAIL FROM:<a@x.test> SIZE=68\r\n", 0},
    {'S', OK_MAIL, SMTP_OUT_READ}, {'C', "RCPT TO:<b@y.test>\r\n", 0},
    {'S', OK_RCPT, SMTP_OUT_READ}, {'C', "DATA\r\n", 0},
    {'S', GO, SMTP_OUT_READ}, {'C', CONV7_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0", 0},
    {'J', NULL, SMTP_OUT_JOB_DONE}, {'R', "P:0:5.6.3", 0},
    {'J', NULL, SMTP_OUT_JOB_DONE}, {'R', "T:0:4.3.0", 0},
    {'J', NULL, SMTP_OUT_JOB_DONE}, {'R', "P:0:5.6.3", 0}, {'U', "1", 0},
    {'H', "0", 0}, )

/* With 8BITMIME the body goes as it is: no conversion is asked for. */
SCRIPT(no_downgrade, cfg_plain, jobs_noconv, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_IDLE}, {'J', NULL, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n", 0},
    {'S', OK_MAIL, SMTP_OUT_READ}, {'C', "RCPT TO:<b@y.test>\r\n", 0},
    {'S', OK_RCPT, SMTP_OUT_READ}, {'C', "DATA\r\n", 0},
    {'S', GO, SMTP_OUT_READ},
    {'C', "Subject: hi\r\n\r\n\xe9\r\n..\r\n.\r\n", 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "O:250:2.0.0", 0}, )

SCRIPT(size_too_big, cfg_plain, jobs_std, {'J', NULL, SMTP_OUT_READ},
    {'S', GREET, SMTP_OUT_READ}, {'C', EHLO, 0},
    {'S', "250-mx\r\n250 SIZE 20\r\n", SMTP_OUT_JOB_DONE},
    {'R', "P:0:5.3.4 P:0:5.3.4", 0}, {'U', "1", 0}, {'H', "0", 0}, )

/* CR/LF inside an address is never sent (no command injection). */
SCRIPT(bad_addresses, cfg_plain, jobs_bad, {'S', GREET, SMTP_OUT_READ},
    {'C', EHLO, 0}, {'S', EHLO_MIN, SMTP_OUT_IDLE}, {'J', NULL, SMTP_OUT_READ},
    {'C', "MAIL FROM:<a@x.test>\r\n", 0}, {'S', OK_MAIL, SMTP_OUT_READ},
    {'C', "RCPT TO:<c@y.test>\r\n", 0}, {'S', OK_RCPT, SMTP_OUT_READ},
    {'C', "DATA\r\n", 0}, {'S', GO, SMTP_OUT_READ}, {'C', BODY1_WIRE, 0},
    {'S', QUEUED, SMTP_OUT_JOB_DONE}, {'R', "P:0:5.1.3 O:250:2.0.0", 0},
    {'J', NULL, SMTP_OUT_JOB_DONE}, {'R', "P:0:5.1.7", 0}, )

/* ---- tests that are not scripts ---- */

struct conv {
	struct smtp_out *s;
	struct buf out;
	struct buf wire;
	struct smtp_out_job job;
	struct smtp_out_result res[TMAX_RCPTS];
	const char *rcpts[TMAX_RCPTS];
};

static enum smtp_out_action
conv_feed(struct conv *c, const char *p)
{
	return smtp_out_feed(c->s, (const uint8_t *)p, strlen(p), &c->out);
}

/* Move out to the wire; WRITE -> flushed() until done. */
static enum smtp_out_action
conv_drain(struct conv *c, enum smtp_out_action act)
{
	for (;;) {
		if (buf_avail(&c->out) > SMTP_OUT_CHUNK)
			abort();
		if (buf_append(
		        &c->wire, buf_peek(&c->out), buf_avail(&c->out)) < 0)
			abort();
		buf_reset(&c->out);
		if (act != SMTP_OUT_WRITE)
			return act;
		act = smtp_out_flushed(c->s, &c->out);
	}
}

/* Greeting and EHLO done, the job set, DATA answered with 354. The body
 * is (body, len), or comes from peek (then body is its arg). */
static enum smtp_out_action
conv_open_src(struct conv *c, const uint8_t *body, size_t len,
    const uint8_t *(*peek)(void *, size_t, size_t *), size_t outmax,
    bool pipelining)
{
	memset(c, 0, sizeof(*c));
	c->s = smtp_out_new(&cfg_plain, 1);
	buf_init(&c->out, outmax);
	buf_init(&c->wire, 128 << 20);
	c->rcpts[0] = "b@y.test";
	c->job.from = "a@x.test";
	c->job.rcpts = c->rcpts;
	c->job.nrcpts = 1;
	c->job.body = peek ? NULL : body;
	c->job.body_len = len;
	c->job.body_peek = peek;
	c->job.body_arg = (void *)(uintptr_t)body;
	c->job.results = c->res;
	conv_feed(c, GREET);
	conv_feed(
	    c, pipelining ? "250-mx\r\n250 PIPELINING\r\n" : "250 mx\r\n");
	if (smtp_out_job_set(c->s, &c->job, &c->out) != SMTP_OUT_READ)
		return SMTP_OUT_CLOSE;
	if (!pipelining) {
		conv_feed(c, OK_MAIL);
		conv_feed(c, OK_RCPT);
	} else
		conv_feed(c, OK_MAIL OK_RCPT);
	buf_reset(&c->out);
	buf_reset(&c->wire);
	return conv_feed(c, GO);
}

static enum smtp_out_action
conv_open(struct conv *c, const uint8_t *body, size_t len, size_t outmax,
    bool pipelining)
{
	return conv_open_src(c, body, len, NULL, outmax, pipelining);
}

static void
conv_close(struct conv *c)
{
	smtp_out_free(c->s);
	buf_fini(&c->out);
	buf_fini(&c->wire);
}

/* Reference encoder: the obvious byte loop. */
static size_t
stuff_ref(const uint8_t *b, size_t n, uint8_t *dst)
{
	size_t i, o = 0;
	bool bol = true;

	for (i = 0; i < n; i++) {
		if (b[i] == '\r' || b[i] == '\n') {
			dst[o++] = '\r';
			dst[o++] = '\n';
			bol = true;
			if (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n')
				i++;
			continue;
		}
		if (bol && b[i] == '.')
			dst[o++] = '.';
		dst[o++] = b[i];
		bol = false;
	}
	if (!bol) {
		dst[o++] = '\r';
		dst[o++] = '\n';
	}
	memcpy(dst + o, ".\r\n", 3);
	return o + 3;
}

struct dcase {
	const char *body;
	const char *wire;
};

static const struct dcase dcases[] = {
    {"", ".\r\n"},
    {".", "..\r\n.\r\n"},
    {".\r\n", "..\r\n.\r\n"},
    {"no newline at end", "no newline at end\r\n.\r\n"},
    {".hidden\r\n..two\r\nmid.dot\r\n.\r\n",
        "..hidden\r\n...two\r\nmid.dot\r\n..\r\n.\r\n"},
    {"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
    {"a\nb\n", "a\r\nb\r\n.\r\n"},
    {"a\n.\n", "a\r\n..\r\n.\r\n"},
    {"a\rb", "a\r\nb\r\n.\r\n"},
    {"a\r\n.\r", "a\r\n..\r\n.\r\n"},
    {"\r\n.\n.", "\r\n..\r\n..\r\n.\r\n"},
    {"x\r\r\n", "x\r\n\r\n.\r\n"},
    {"\r\n\r\n", "\r\n\r\n.\r\n"},
};

static void
test_dot_stuffing(void)
{
	struct conv c;
	size_t i;

	for (i = 0; i < MTA_ARRAY_LEN(dcases); i++) {
		const char *b = dcases[i].body;

		CHECK(
		    conv_drain(&c, conv_open(&c, (const uint8_t *)b, strlen(b),
		                       1 << 20, i & 1)) == SMTP_OUT_READ);
		if (buf_avail(&c.wire) != strlen(dcases[i].wire) ||
		    memcmp(buf_peek(&c.wire), dcases[i].wire,
		        buf_avail(&c.wire)) != 0)
			fprintf(stderr, "dot case %zu: [%.*s]\n", i,
			    (int)buf_avail(&c.wire),
			    (const char *)buf_peek(&c.wire));
		CHECK_MEM(
		    buf_peek(&c.wire), buf_avail(&c.wire), dcases[i].wire);
		CHECK(smtp_out_timeout(c.s) == cfg_plain.data_timeout);
		CHECK(conv_feed(&c, QUEUED) == SMTP_OUT_JOB_DONE);
		CHECK(c.res[0].outcome == SMTP_OUT_OK);
		conv_close(&c);
	}
}

/* A big body through the smallest allowed out buffer: every chunk within
 * bounds, the result equal to the reference, byte for byte. */
static void
test_big_body(void)
{
	static const size_t sizes[] = {3 << 20, 21 << 20};
	size_t outmax[] = {SMTP_OUT_OUT_MIN, 1 << 20};
	struct conv c;
	uint8_t *body, *want;
	size_t i, k, n, wn, calls;
	uint32_t x = 12345;
	enum smtp_out_action act;

	for (k = 0; k < MTA_ARRAY_LEN(sizes); k++) {
		n = sizes[k];
		body = malloc(n);
		want = malloc(2 * n + 8);
		CHECK(body != NULL && want != NULL);
		for (i = 0; i < n; i++) {
			x = x * 1103515245 + 12345;
			/* Mostly text, with dots, CRs and LFs thrown in. */
			switch (x >> 27) {
			case 0:
			case 1:
				body[i] = '.';
				break;
			case 2:
				body[i] = '\r';
				break;
			case 3:
			case 4:
				body[i] = '\n';
				break;
			default:
				body[i] = (uint8_t)('a' + (x >> 20) % 26);
			}
		}
		wn = stuff_ref(body, n, want);
		act = conv_open(&c, body, n, outmax[k], k == 0);
		calls = 0;
		while (act == SMTP_OUT_WRITE) {
			CHECK(buf_avail(&c.out) <= outmax[k]);
			CHECK(buf_append(&c.wire, buf_peek(&c.out),
			          buf_avail(&c.out)) == 0);
			buf_reset(&c.out);
			act = smtp_out_flushed(c.s, &c.out);
			calls++;
		}
		CHECK(act == SMTP_OUT_READ);
		CHECK(calls > n / SMTP_OUT_CHUNK);
		CHECK(buf_append(
		          &c.wire, buf_peek(&c.out), buf_avail(&c.out)) == 0);
		CHECK(buf_avail(&c.wire) == wn);
		CHECK(memcmp(buf_peek(&c.wire), want, wn) == 0);
		CHECK(conv_feed(&c, QUEUED) == SMTP_OUT_JOB_DONE);
		conv_close(&c);
		free(body);
		free(want);
	}
}

/* The server gives up while the body is still going out. */
static void
test_reply_during_body(void)
{
	static uint8_t body[200000];
	struct conv c;

	memset(body, 'z', sizeof(body));
	CHECK(conv_open(&c, body, sizeof(body), SMTP_OUT_OUT_MIN, true) ==
	      SMTP_OUT_WRITE);
	CHECK(buf_avail(&c.out) <= SMTP_OUT_OUT_MIN);
	CHECK(conv_feed(&c, "552 5.3.4 too big\r\n") == SMTP_OUT_JOB_DONE);
	CHECK(c.res[0].outcome == SMTP_OUT_PERMFAIL);
	CHECK(c.res[0].code == 552);
	CHECK(c.res[0].cmd == SMTP_OUT_CMD_DATA);
	CHECK(!smtp_out_reusable(c.s));
	buf_reset(&c.out);
	CHECK(smtp_out_quit(c.s, &c.out) == SMTP_OUT_CLOSE);
	CHECK(buf_avail(&c.out) == 0);
	conv_close(&c);
}

/*
 * A body in chunks (body_peek): each call copies at most k bytes into a
 * scratch buffer of exactly that size (ASan sees a read past it) that the
 * next call overwrites (a stale pointer shows in the output). Offsets
 * must come in order, each where the previous chunk was left.
 */
struct chunks {
	const uint8_t *b;
	size_t len, k;
	size_t fail_at; /* NULL from this offset on */
	uint8_t *scratch;
	size_t next; /* offset the producer should ask for next, at least */
	size_t calls;
	bool bad; /* out of range or out of order */
};

static const uint8_t *
chunk_peek(void *arg, size_t off, size_t *n)
{
	struct chunks *ch = arg;

	ch->calls++;
	if (off >= ch->len || off < ch->next)
		ch->bad = true;
	if (off >= ch->fail_at || off >= ch->len)
		return NULL;
	*n = ch->len - off < ch->k ? ch->len - off : ch->k;
	memcpy(ch->scratch, ch->b + off, *n);
	memset(ch->scratch + *n, 0xee, ch->k - *n);
	ch->next = off;
	return ch->scratch;
}

static void
chunks_init(struct chunks *ch, const void *b, size_t len, size_t k)
{
	memset(ch, 0, sizeof(*ch));
	ch->b = b;
	ch->len = len;
	ch->k = k;
	ch->fail_at = SIZE_MAX;
	ch->scratch = malloc(k);
	CHECK(ch->scratch != NULL);
}

/* Run one chunked body through a fresh session; the wire in c. */
static enum smtp_out_action
chunked_send(struct conv *c, struct chunks *ch, size_t outmax, bool pl)
{
	return conv_drain(c, conv_open_src(c, (const uint8_t *)ch, ch->len,
	                         chunk_peek, outmax, pl));
}

/* Edges the chunks must not break, each at every chunk size. */
static const struct dcase chunk_cases[] = {
    /* a line's leading dot right after a chunk edge ("a\r\n" | ".b") */
    {"a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"},
    /* CR and LF in two chunks: one line end, not two */
    {"ab\r\ncd\r\n", "ab\r\ncd\r\n.\r\n"},
    /* the final line end missing */
    {"x\r\n.y", "x\r\n..y\r\n.\r\n"},
    {"last line", "last line\r\n.\r\n"},
    /* a trailing CR alone, then nothing */
    {"z\r", "z\r\n.\r\n"},
    {"..\r\n.\r\n.", "...\r\n..\r\n..\r\n.\r\n"},
};

static void
chunk_case(const struct dcase *dc, size_t k, size_t outmax)
{
	struct chunks ch;
	struct conv c;

	chunks_init(&ch, dc->body, strlen(dc->body), k);
	CHECK(chunked_send(&c, &ch, outmax, k & 1) == SMTP_OUT_READ);
	if (buf_avail(&c.wire) != strlen(dc->wire) ||
	    memcmp(buf_peek(&c.wire), dc->wire, buf_avail(&c.wire)) != 0)
		fprintf(stderr, "chunk %zu [%s]: [%.*s]\n", k, dc->body,
		    (int)buf_avail(&c.wire), (const char *)buf_peek(&c.wire));
	CHECK_MEM(buf_peek(&c.wire), buf_avail(&c.wire), dc->wire);
	CHECK(!ch.bad);
	CHECK(ch.len == 0 || ch.calls >= (ch.len + k - 1) / k);
	CHECK(conv_feed(&c, QUEUED) == SMTP_OUT_JOB_DONE);
	CHECK(c.res[0].outcome == SMTP_OUT_OK);
	conv_close(&c);
	free(ch.scratch);
}

static void
test_chunked_dot_stuffing(void)
{
	size_t i, k;

	for (i = 0; i < MTA_ARRAY_LEN(chunk_cases); i++)
		for (k = 1; k <= strlen(chunk_cases[i].body) + 1; k++)
			chunk_case(&chunk_cases[i], k, 1 << 20);
	/* the plain cases too, split everywhere */
	for (i = 0; i < MTA_ARRAY_LEN(dcases); i++)
		for (k = 1; k <= strlen(dcases[i].body) + 1; k++)
			chunk_case(&dcases[i], k, SMTP_OUT_OUT_MIN);
}

/* A big random body in odd-sized chunks through a small out buffer and
 * through a large one: equal to the reference, byte for byte. */
static void
test_chunked_big_body(void)
{
	static const size_t ks[] = {65536, 7777, 1};
	size_t n = 1 << 20, i, k, wn;
	uint8_t *body = malloc(n), *want = malloc(2 * n + 8);
	uint32_t x = 777;
	struct chunks ch;
	struct conv c;

	CHECK(body != NULL && want != NULL);
	for (i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		body[i] = "..\r\n\nab"[(x >> 24) % 7];
		if ((x >> 20) % 3)
			body[i] = (uint8_t)('a' + (x >> 8) % 26);
	}
	wn = stuff_ref(body, n, want);
	for (k = 0; k < MTA_ARRAY_LEN(ks); k++) {
		chunks_init(&ch, body, ks[k] == 1 ? 5000 : n, ks[k]);
		CHECK(chunked_send(&c, &ch, k ? SMTP_OUT_OUT_MIN : 1 << 20,
		          k == 0) == SMTP_OUT_READ);
		CHECK(!ch.bad);
		if (ks[k] == 1) {
			uint8_t small[10016];
			size_t sn = stuff_ref(body, 5000, small);

			CHECK(buf_avail(&c.wire) == sn);
			CHECK(memcmp(buf_peek(&c.wire), small, sn) == 0);
		} else {
			CHECK(buf_avail(&c.wire) == wn);
			CHECK(memcmp(buf_peek(&c.wire), want, wn) == 0);
		}
		conv_close(&c);
		free(ch.scratch);
	}
	free(body);
	free(want);
}

/* A chunk cannot be read halfway through: the transaction is abandoned
 * without its final dot, the recipient deferred, the host not blamed,
 * and the session closes without another word. */
static void
test_chunked_read_error(void)
{
	static uint8_t body[300000];
	enum smtp_out_action act;
	struct chunks ch;
	struct conv c;

	memset(body, 'q', sizeof(body));
	chunks_init(&ch, body, sizeof(body), 65536);
	ch.fail_at = 131072;
	act = chunked_send(&c, &ch, SMTP_OUT_OUT_MIN, true);
	CHECK(act == SMTP_OUT_JOB_DONE);
	CHECK(buf_avail(&c.wire) >= 131072 && buf_avail(&c.wire) < 140000);
	CHECK(buf_avail(&c.wire) < 3 ||
	      memcmp(buf_peek(&c.wire) + buf_avail(&c.wire) - 3, ".\r\n", 3) !=
	          0);
	CHECK(c.res[0].outcome == SMTP_OUT_TEMPFAIL);
	CHECK(strcmp(c.res[0].enhanced, "4.3.0") == 0);
	CHECK(c.res[0].code == 0);
	CHECK(!smtp_out_host_failed(c.s));
	CHECK(!smtp_out_reusable(c.s));
	CHECK(smtp_out_timeout(c.s) == 0);
	buf_reset(&c.out);
	CHECK(smtp_out_quit(c.s, &c.out) == SMTP_OUT_CLOSE);
	CHECK(buf_avail(&c.out) == 0);
	conv_close(&c);
	free(ch.scratch);
}

/* Many recipients, pipelined through a small out buffer: the group goes
 * out in chunks, replies are matched in order. */
static void
test_pipeline_chunks(void)
{
	enum { N = 400 };
	static char addrs[N][64];
	static const char *rcpts[N];
	static struct smtp_out_result res[N];
	struct smtp_out_job job = {0};
	struct smtp_out *s = smtp_out_new(&cfg_plain, 2);
	struct buf out, wire, want;
	enum smtp_out_action act;
	size_t i, writes = 0;

	buf_init(&out, SMTP_OUT_OUT_MIN);
	buf_init(&wire, 1 << 20);
	buf_init(&want, 1 << 20);
	CHECK(buf_appendf(&want, "MAIL FROM:<a@x.test>\r\n") == 0);
	for (i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]),
		    "recipient-number-%zu@y.test", i);
		rcpts[i] = addrs[i];
		CHECK(buf_appendf(&want, "RCPT TO:<%s>\r\n", addrs[i]) == 0);
	}
	CHECK(buf_appendf(&want, "DATA\r\n") == 0);
	job.from = "a@x.test";
	job.rcpts = rcpts;
	job.nrcpts = N;
	job.body = (const uint8_t *)"x\r\n";
	job.body_len = 3;
	job.results = res;
	smtp_out_feed(s, (const uint8_t *)GREET, strlen(GREET), &out);
	buf_reset(&out);
	CHECK(smtp_out_feed(s, (const uint8_t *)"250-mx\r\n250 PIPELINING\r\n",
	          24, &out) == SMTP_OUT_IDLE);
	act = smtp_out_job_set(s, &job, &out);
	while (act == SMTP_OUT_WRITE) {
		CHECK(buf_avail(&out) <= SMTP_OUT_OUT_MIN);
		CHECK(buf_append(&wire, buf_peek(&out), buf_avail(&out)) == 0);
		buf_reset(&out);
		writes++;
		/* A reply may arrive between writes. */
		if (writes == 1)
			CHECK(smtp_out_feed(s, (const uint8_t *)OK_MAIL,
			          strlen(OK_MAIL), &out) == SMTP_OUT_WRITE);
		act = smtp_out_flushed(s, &out);
	}
	CHECK(act == SMTP_OUT_READ);
	CHECK(writes >= 3);
	CHECK(buf_append(&wire, buf_peek(&out), buf_avail(&out)) == 0);
	buf_reset(&out);
	CHECK(buf_avail(&wire) == buf_avail(&want));
	CHECK(memcmp(buf_peek(&wire), buf_peek(&want), buf_avail(&want)) == 0);
	/* Odd recipients refused, then DATA; a byte at a time. */
	buf_reset(&wire);
	for (i = 0; i < N; i++) {
		const char *r = i % 2 ? "550 5.1.1 no\r\n" : OK_RCPT;

		for (const char *p = r; *p; p++)
			CHECK(smtp_out_feed(s, (const uint8_t *)p, 1, &out) ==
			      SMTP_OUT_READ);
	}
	CHECK(smtp_out_feed(s, (const uint8_t *)GO, strlen(GO), &out) ==
	      SMTP_OUT_READ);
	CHECK_MEM(buf_peek(&out), buf_avail(&out), "x\r\n.\r\n");
	CHECK(smtp_out_feed(s, (const uint8_t *)QUEUED, strlen(QUEUED), &out) ==
	      SMTP_OUT_JOB_DONE);
	for (i = 0; i < N; i++) {
		CHECK(res[i].outcome ==
		      (i % 2 ? SMTP_OUT_PERMFAIL : SMTP_OUT_OK));
		CHECK(res[i].cmd ==
		      (i % 2 ? SMTP_OUT_CMD_RCPT : SMTP_OUT_CMD_DOT));
	}
	smtp_out_free(s);
	buf_fini(&out);
	buf_fini(&wire);
	buf_fini(&want);
}

/* A reply after the final one, in the same read: the results stand, the
 * connection is out of step and not reused. */
static void
test_trailing_reply(void)
{
	struct conv c;
	const char *p = "250 2.0.0 Ok\r\n250 extra\r\n";

	CHECK(conv_drain(&c, conv_open(&c, (const uint8_t *)"x", 1, 1 << 16,
	                         true)) == SMTP_OUT_READ);
	CHECK(conv_feed(&c, p) == SMTP_OUT_JOB_DONE);
	CHECK(c.res[0].outcome == SMTP_OUT_OK);
	CHECK(!smtp_out_reusable(c.s));
	buf_reset(&c.out);
	CHECK(smtp_out_quit(c.s, &c.out) == SMTP_OUT_CLOSE);
	CHECK(buf_avail(&c.out) == 0);
	conv_close(&c);
}

/* Replies over the line and reply bounds end the session. */
static void
test_overlong_reply(void)
{
	static char line[SMTP_REPLY_LINE_MAX + 16];
	static const char *rcpts[] = {"b@y.test"};
	struct smtp_out_result res[1];
	struct smtp_out_job job = {.from = "a@x.test",
	    .rcpts = rcpts,
	    .nrcpts = 1,
	    .body = (const uint8_t *)"",
	    .results = res};
	struct smtp_out *s;
	struct buf out;
	size_t i;

	buf_init(&out, 1 << 16);
	memcpy(line, "250-", 4);
	memset(line + 4, 'X', SMTP_REPLY_LINE_MAX);
	memcpy(line + 4 + SMTP_REPLY_LINE_MAX, "\r\n", 2);
	/* One long line, fed in pieces. */
	s = smtp_out_new(&cfg_plain, 5);
	CHECK(smtp_out_job_set(s, &job, &out) == SMTP_OUT_READ);
	CHECK(smtp_out_feed(s, (const uint8_t *)GREET, strlen(GREET), &out) ==
	      SMTP_OUT_READ);
	CHECK(smtp_out_feed(s, (const uint8_t *)line, 2000, &out) ==
	      SMTP_OUT_READ);
	CHECK(smtp_out_feed(s, (const uint8_t *)line + 2000,
	          SMTP_REPLY_LINE_MAX + 6 - 2000, &out) == SMTP_OUT_JOB_DONE);
	CHECK(res[0].outcome == SMTP_OUT_TEMPFAIL);
	CHECK(strcmp(res[0].enhanced, "4.5.0") == 0);
	CHECK(smtp_out_host_failed(s));
	buf_reset(&out);
	CHECK(smtp_out_quit(s, &out) == SMTP_OUT_CLOSE);
	CHECK(buf_avail(&out) == 0);
	smtp_out_free(s);
	/* Many short lines past the reply bound, no job: close. */
	s = smtp_out_new(&cfg_plain, 6);
	CHECK(smtp_out_feed(s, (const uint8_t *)GREET, strlen(GREET), &out) ==
	      SMTP_OUT_READ);
	memset(line + 4, 'Y', 996);
	memcpy(line + 1000, "\r\n", 2);
	for (i = 0; i < 100; i++)
		if (smtp_out_feed(s, (const uint8_t *)line, 1002, &out) !=
		    SMTP_OUT_READ)
			break;
	CHECK(i > 60 && i < 100);
	CHECK(smtp_out_error(s) != NULL);
	CHECK(strcmp(smtp_out_error(s)->text, "reply too long") == 0);
	/* Anything after the close is ignored. */
	CHECK(smtp_out_feed(s, (const uint8_t *)"250 ok\r\n", 8, &out) ==
	      SMTP_OUT_CLOSE);
	smtp_out_free(s);
	buf_fini(&out);
}

/* Result texts, commands and the session error, for logs and DSNs. */
static void
test_result_text(void)
{
	static const char *rcpts[] = {"b@y.test", "c@y.test"};
	struct smtp_out_result res[2];
	struct smtp_out_job job = {.from = "a@x.test",
	    .rcpts = rcpts,
	    .nrcpts = 2,
	    .body = (const uint8_t *)"",
	    .results = res};
	struct smtp_out *s = smtp_out_new(&cfg_plain, 3);
	struct buf out;
	const char *srv = GREET EHLO_PIPE;
	const char *tx =
	    OK_MAIL "550-5.1.1 The email account does not exist.\r\n"
	            "550 5.1.1 Try again.\r\n" OK_RCPT GO;

	buf_init(&out, 1 << 16);
	CHECK(smtp_out_job_set(s, &job, &out) == SMTP_OUT_READ);
	CHECK(smtp_out_timeout(s) == cfg_plain.command_timeout);
	CHECK(smtp_out_feed(s, (const uint8_t *)srv, strlen(srv), &out) ==
	      SMTP_OUT_READ);
	CHECK(smtp_out_ehlo(s)->pipelining);
	CHECK(!smtp_out_tls_active(s));
	CHECK(smtp_out_timeout(s) == cfg_plain.command_timeout);
	CHECK(smtp_out_feed(s, (const uint8_t *)tx, strlen(tx), &out) ==
	      SMTP_OUT_READ);
	CHECK(smtp_out_timeout(s) == cfg_plain.data_timeout);
	CHECK(smtp_out_feed(s, (const uint8_t *)"451 4.7.1 greylisted\r\n", 22,
	          &out) == SMTP_OUT_JOB_DONE);
	CHECK(smtp_out_timeout(s) == 0);
	CHECK(res[0].cmd == SMTP_OUT_CMD_RCPT);
	CHECK(strcmp(res[0].text, "5.1.1 The email account does not exist."
	                          "\n5.1.1 Try again.") == 0);
	CHECK(res[1].cmd == SMTP_OUT_CMD_DOT);
	CHECK(res[1].outcome == SMTP_OUT_TEMPFAIL);
	CHECK(strcmp(res[1].text, "4.7.1 greylisted") == 0);
	CHECK(strcmp(smtp_out_cmd_name(res[1].cmd), "end of data") == 0);
	CHECK(strcmp(smtp_out_outcome_name(res[0].outcome), "bounced") == 0);
	CHECK(smtp_out_error(s) == NULL);
	CHECK(smtp_out_abort(s, SMTP_OUT_ABORT_EOF) == SMTP_OUT_CLOSE);
	CHECK(!smtp_out_host_failed(s));
	smtp_out_free(s);

	s = smtp_out_new(&cfg_plain, 4);
	CHECK(smtp_out_feed(s, (const uint8_t *)"554 5.7.1 go away\r\n", 19,
	          &out) == SMTP_OUT_READ);
	CHECK(smtp_out_error(s) != NULL);
	CHECK(smtp_out_error(s)->cmd == SMTP_OUT_CMD_GREETING);
	CHECK(smtp_out_error(s)->outcome == SMTP_OUT_TEMPFAIL);
	CHECK(strcmp(smtp_out_error(s)->text, "5.7.1 go away") == 0);
	CHECK(smtp_out_host_failed(s));
	smtp_out_free(s);
	smtp_out_free(NULL);
	buf_fini(&out);
}

/* DSN parameters (RFC 3461) go out to a host that offers DSN, as given;
 * a host without DSN gets none of them. */
static void
dsn_run(const char *ehlo, const char *want_mail, const char *want_rcpts,
    bool peer_dsn)
{
	static const char *rcpts[] = {"b@y.test", "c@y.test", "d@y.test"};
	static const uint8_t notify[] = {
	    SMTP_PARSE_NOTIFY_SUCCESS | SMTP_PARSE_NOTIFY_DELAY, 0,
	    SMTP_PARSE_NOTIFY_NEVER};
	static const char *const orcpts[] = {
	    "rfc822;b+40orig.test", NULL, "rfc822;d@y.test"};
	struct smtp_out_result res[3];
	struct smtp_out_job job = {.from = "a@x.test",
	    .rcpts = rcpts,
	    .nrcpts = 3,
	    .body = (const uint8_t *)"x\r\n",
	    .body_len = 3,
	    .results = res,
	    .envid = "QQ+2B1",
	    .ret = SMTP_PARSE_RET_HDRS,
	    .notify = notify,
	    .orcpts = orcpts};
	struct smtp_out *s = smtp_out_new(&cfg_plain, 7);
	struct buf out;
	char srv[512], want[1024];

	buf_init(&out, 1 << 16);
	CHECK(smtp_out_job_set(s, &job, &out) == SMTP_OUT_READ);
	(void)snprintf(srv, sizeof(srv), "%s%s", GREET, ehlo);
	CHECK(smtp_out_feed(s, (const uint8_t *)srv, strlen(srv), &out) ==
	      SMTP_OUT_READ);
	(void)snprintf(
	    want, sizeof(want), "%s%s%sDATA\r\n", EHLO, want_mail, want_rcpts);
	CHECK_MEM(buf_peek(&out), buf_avail(&out), want);
	buf_reset(&out);
	(void)snprintf(srv, sizeof(srv), "%s%s%s%s%s", OK_MAIL, OK_RCPT,
	    OK_RCPT, OK_RCPT, GO);
	CHECK(smtp_out_feed(s, (const uint8_t *)srv, strlen(srv), &out) ==
	      SMTP_OUT_READ);
	CHECK(smtp_out_feed(s, (const uint8_t *)QUEUED, strlen(QUEUED), &out) ==
	      SMTP_OUT_JOB_DONE);
	for (int i = 0; i < 3; i++)
		CHECK(res[i].outcome == SMTP_OUT_OK &&
		      res[i].peer_dsn == peer_dsn);
	smtp_out_free(s);
	buf_fini(&out);
}

static void
test_dsn_pass_on(void)
{
	dsn_run("250-mx.y.test\r\n250-PIPELINING\r\n250 DSN\r\n",
	    "MAIL FROM:<a@x.test> RET=HDRS ENVID=QQ+2B1\r\n",
	    "RCPT TO:<b@y.test> NOTIFY=SUCCESS,DELAY "
	    "ORCPT=rfc822;b+40orig.test\r\n"
	    "RCPT TO:<c@y.test>\r\n"
	    "RCPT TO:<d@y.test> NOTIFY=NEVER ORCPT=rfc822;d@y.test\r\n",
	    true);
	dsn_run("250-mx.y.test\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<a@x.test>\r\n",
	    "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
	    "RCPT TO:<d@y.test>\r\n",
	    false);
}

static const struct harness_case cases[] = {
    {"plain", test_plain},
    {"dsn_pass_on", test_dsn_pass_on},
    {"pipelined", test_pipelined},
    {"mixed", test_mixed},
    {"all_refused", test_all_refused},
    {"all_refused_pipelined", test_all_refused_pipelined},
    {"all_refused_354", test_all_refused_354},
    {"mail_refused", test_mail_refused},
    {"mail_refused_pipelined", test_mail_refused_pipelined},
    {"data_refused", test_data_refused},
    {"dot_451", test_dot_451},
    {"dot_552", test_dot_552},
    {"reply_421", test_reply_421},
    {"reply_421_dot", test_reply_421_dot},
    {"helo_fallback", test_helo_fallback},
    {"helo_refused", test_helo_refused},
    {"starttls_may", test_starttls_may},
    {"starttls_none", test_starttls_none},
    {"starttls_refused_may", test_starttls_refused_may},
    {"encrypt_not_offered", test_encrypt_not_offered},
    {"dane_not_offered", test_dane_not_offered},
    {"encrypt_refused", test_encrypt_refused},
    {"tls_handshake_fails", test_tls_handshake_fails},
    {"job_during_tls", test_job_during_tls},
    {"quit_garbage", test_quit_garbage},
    {"auth_smarthost", test_auth_smarthost},
    {"auth_needs_tls", test_auth_needs_tls},
    {"auth_starttls_refused", test_auth_starttls_refused},
    {"auth_login_only", test_auth_login_only},
    {"auth_login_535", test_auth_login_535},
    {"auth_login_refused", test_auth_login_refused},
    {"auth_not_offered", test_auth_not_offered},
    {"auth_no_usable_mech", test_auth_no_usable_mech},
    {"auth_login_plaintext", test_auth_login_plaintext},
    {"auth_plaintext_refused", test_auth_plaintext_refused},
    {"reuse", test_reuse},
    {"reuse_unpipelined", test_reuse_unpipelined},
    {"reuse_dead", test_reuse_dead},
    {"greeting_554", test_greeting_554},
    {"greeting_421_nojob", test_greeting_421_nojob},
    {"greeting_450_nojob", test_greeting_450_nojob},
    {"garbage_greeting", test_garbage_greeting},
    {"idle_421", test_idle_421},
    {"idle_unsolicited", test_idle_unsolicited},
    {"trailing_reply", test_trailing_reply},
    {"timeout_in_tx", test_timeout_in_tx},
    {"idle_eof", test_idle_eof},
    {"mail_params", test_mail_params},
    {"no_smtputf8", test_no_smtputf8},
    {"downgrade", test_downgrade},
    {"no_downgrade", test_no_downgrade},
    {"size_too_big", test_size_too_big},
    {"bad_addresses", test_bad_addresses},
    {"overlong_reply", test_overlong_reply},
    {"dot_stuffing", test_dot_stuffing},
    {"big_body", test_big_body},
    {"reply_during_body", test_reply_during_body},
    {"chunked_dot_stuffing", test_chunked_dot_stuffing},
    {"chunked_big_body", test_chunked_big_body},
    {"chunked_read_error", test_chunked_read_error},
    {"pipeline_chunks", test_pipeline_chunks},
    {"result_text", test_result_text},
};

HARNESS_MAIN(cases)
