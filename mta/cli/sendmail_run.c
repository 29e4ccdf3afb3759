/* SPDX-License-Identifier: ISC */
/*
 * sendmail_run.c - the sendmail command line that local programs (PHP's
 * mail(), cron, git send-email, monitoring) call: `mta sendmail`
 * (cmd_sendmail.c) and the lean `mta-sendmail` (sendmail_main.c) both
 * run it.
 *
 * Options are the ones programs really pass: -t (recipients from To, Cc
 * and Bcc, added to those of the command line, as Postfix does; Bcc is
 * removed), -i and -oi (a lone "." does not end the message), -f/-r
 * SENDER, -F NAME (for a From: made when the message has none), -bs
 * (SMTP on stdin/stdout), -bp (the queue, as mailq), -bm (the default),
 * -bi/-I (no aliases here: nothing to do), -C FILE (the configuration);
 * the others of sendmail and Postfix that do not apply here (-odi, -oem,
 * -v, -N, -R, -V, -X, -B, -h, -L, -O, -G, -U, -n, -m, other -oX) are
 * taken and ignored. The message is made what SMTP would carry
 * (local_msg.h): CR LF lines, header syntax and limits checked before
 * anything is sent, From:, Date: and Message-ID: added when missing.
 *
 * A bare name ("root") as sender or recipient gets "@" and the
 * [server] hostname, as Postfix appends myorigin.
 *
 * Thread: the process's only one.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "cli/sendmail.h"
#include "config/config.h"
#include "smtp/local_msg.h"
#include "smtp/smtp_parse.h"

#define SM_HEADERS_ADD_MAX 2048 /* From:, Date:, Message-ID: we add */

struct sm_opts {
	bool extract; /* -t */
	bool dot;     /* a lone "." ends the input (no -i) */
	char mode;    /* -b: 'm' (default), 's', 'p', 'i' */
	const char *from;
	const char *fullname;
	const char *config;
	char **args; /* recipients on the command line */
	int nargs;
};

/* The envelope being built. */
struct sm_env {
	const struct config *cfg;
	char from[LOCAL_MSG_ADDR_MAX + CONFIG_HOST_MAX];
	char **rcpts;
	size_t nrcpts;
	int ex; /* first error: an exit code */
};

static void
sm_usage(void)
{
	fprintf(stderr,
	    "usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-C FILE] "
	    "[RECIPIENT...] < message\n"
	    "       sendmail -bs | -bp\n");
}

/* ---- options ---- */

/* An option with a value (c, v). 0 or EX_USAGE. */
static int
sm_opt_value(struct sm_opts *o, char c, const char *v)
{
	switch (c) {
	case 'f':
	case 'r':
		o->from = v;
		return 0;
	case 'F':
		o->fullname = v;
		return 0;
	case 'C':
		o->config = v;
		return 0;
	case 'o':
		if (strcmp(v, "i") == 0)
			o->dot = false;
		return 0; /* -oem, -odi, -oXxx: nothing to do here */
	case 'b':
		if (strlen(v) == 1 && strchr("mspi", v[0]) != NULL) {
			o->mode = v[0];
			return 0;
		}
		fprintf(stderr, "sendmail: -b%s is not supported\n", v);
		return EX_USAGE;
	default: /* -N -R -V -X -B -h -L -O: not for a relay client */
		return 0;
	}
}

/* One "-xyz" argument; *i moves past a value in the next argument. */
static int
sm_opt(struct sm_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	for (size_t j = 1; a[j] != '\0'; j++) {
		char c = a[j];

		if (strchr("bfrFCNRVXBhLOo", c) != NULL) {
			const char *v = a[j + 1] ? a + j + 1 : NULL;

			if (v == NULL && *i + 1 < argc)
				v = argv[++*i];
			if (v == NULL) {
				fprintf(
				    stderr, "sendmail: -%c needs a value\n", c);
				return EX_USAGE;
			}
			return sm_opt_value(o, c, v);
		}
		if (c == 't')
			o->extract = true;
		else if (c == 'i')
			o->dot = false;
		else if (c == 'I')
			o->mode = 'i';
		else if (strchr("vnmGUe", c) == NULL) {
			fprintf(stderr, "sendmail: unknown option -%c\n", c);
			return EX_USAGE;
		}
	}
	return 0;
}

static int
sm_parse(struct sm_opts *o, int argc, char **argv)
{
	int i, rc;

	o->dot = true;
	o->mode = 'm';
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (argv[i][0] != '-' || argv[i][1] == '\0')
			break;
		if ((rc = sm_opt(o, argc, argv, &i)) != 0)
			return rc;
	}
	o->args = argv + i;
	o->nargs = argc - i;
	return 0;
}

/* ---- addresses ---- */

/* addr (borrowed) as an envelope address into out: without <>, with
 * "@hostname" when it has no domain. False when it is not one. */
static bool
sm_addr(const struct config *cfg, const char *addr, char *out, size_t len)
{
	size_t n = strlen(addr);

	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		addr++;
		n -= 2;
	}
	if (!str_ncopy(out, len, addr, n))
		return false;
	if (n > 0 && strchr(out, '@') == NULL &&
	    !str_fmt(out, len, "%.*s@%s", (int)n, addr, cfg->server.hostname))
		return false;
	return smtp_parse_mailbox(out, strlen(out), false) == SMTP_PARSE_OK;
}

/* local_msg_rcpts callback, and for each command-line recipient. */
static int
sm_rcpt_add(void *arg, const char *addr)
{
	struct sm_env *e = arg;
	char a[LOCAL_MSG_ADDR_MAX + CONFIG_HOST_MAX];

	if (!sm_addr(e->cfg, addr, a, sizeof(a))) {
		fprintf(
		    stderr, "sendmail: <%s>: bad recipient address\n", addr);
		if (e->ex == 0)
			e->ex = EX_NOUSER;
		return 0; /* report every bad one */
	}
	for (size_t i = 0; i < e->nrcpts; i++)
		if (strcmp(e->rcpts[i], a) == 0)
			return 0;
	e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1, sizeof(char *));
	e->rcpts[e->nrcpts++] = xstrdup(a);
	return 0;
}

/* "a@x, b@y" arguments, as sendmail splits them. */
static void
sm_rcpt_args(struct sm_env *e, char **args, int n)
{
	for (int i = 0; i < n; i++) {
		char *copy = xstrdup(args[i]), *save = NULL, *t;

		for (t = strtok_r(copy, ", \t", &save); t != NULL;
		     t = strtok_r(NULL, ", \t", &save))
			(void)sm_rcpt_add(e, t);
		free(copy);
	}
}

static int
sm_sender(struct sm_env *e, const struct sm_opts *o)
{
	struct passwd *pw;
	char name[64];

	if (o->from != NULL && (strcmp(o->from, "<>") == 0 || !o->from[0])) {
		e->from[0] = '\0';
		return 0;
	}
	if (o->from == NULL) {
		if ((pw = getpwuid(getuid())) != NULL)
			(void)str_copy(name, sizeof(name), pw->pw_name);
		else
			(void)str_fmt(
			    name, sizeof(name), "uid%u", (unsigned)getuid());
	}
	if (!sm_addr(
	        e->cfg, o->from ? o->from : name, e->from, sizeof(e->from))) {
		fprintf(stderr, "sendmail: %s: bad sender address\n",
		    o->from ? o->from : name);
		return EX_USAGE;
	}
	return 0;
}

/* ---- the message ---- */

/* stdin, at most max bytes; 0, EX_DATAERR (larger) or EX_OSERR. */
static int
sm_read(struct buf *raw, size_t max)
{
	for (;;) {
		size_t room = raw->max - buf_avail(raw);
		uint8_t *p =
		    room ? buf_reserve(raw, (room < 65536 ? room : 65536))
		         : NULL;
		ssize_t r;

		if (p == NULL) {
			fprintf(stderr,
			    "sendmail: message size exceeds the "
			    "limit of %zu bytes\n",
			    max);
			return EX_DATAERR;
		}
		r = read(0, p, (room < 65536 ? room : 65536));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "sendmail: reading the message: %s\n",
			    strerror(errno));
			return EX_OSERR;
		}
		if (r == 0)
			return 0;
		buf_commit(raw, (size_t)r);
	}
}

/* "From: "NAME" <addr>" with NAME as a quoted string. */
static void
sm_from_field(char *out, size_t len, const char *name, const char *addr)
{
	char q[256];
	size_t j = 0;

	if (name == NULL || name[0] == '\0') {
		(void)str_fmt(out, len, "From: %s\r\n", addr);
		return;
	}
	for (size_t i = 0; name[i] != '\0' && j + 3 < sizeof(q); i++) {
		if ((unsigned char)name[i] < 32)
			continue;
		if (name[i] == '"' || name[i] == '\\')
			q[j++] = '\\';
		q[j++] = name[i];
	}
	q[j] = '\0';
	(void)str_fmt(out, len, "From: \"%s\" <%s>\r\n", q, addr);
}

/* The fields a local submission gets when it lacks them (Postfix's
 * cleanup adds the same three). */
static void
sm_fields(const struct sm_env *e, const struct sm_opts *o,
    const struct local_msg_hdrs *h, char *add, size_t len)
{
	char line[SM_HEADERS_ADD_MAX / 2], date[64];
	uint64_t rnd = 0;
	size_t n = 0;

	add[0] = '\0';
	if (!h->from) {
		sm_from_field(line, sizeof(line), o->fullname,
		    e->from[0] ? e->from : "MAILER-DAEMON");
		n += strlen(line);
		(void)str_copy(add, len, line);
	}
	if (!h->date) {
		clock_rfc5322(clock_wall_ms(), date, sizeof(date));
		(void)str_fmt(add + n, len - n, "Date: %s\r\n", date);
		n += strlen(add + n);
	}
	if (!h->msgid) {
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint64_t)getpid();
		(void)str_fmt(add + n, len - n,
		    "Message-ID: <%llx.%llx@%s>\r\n",
		    (unsigned long long)clock_wall_us(),
		    (unsigned long long)rnd, e->cfg->server.hostname);
	}
}

/* raw (stdin) -> out (the message as sent); recipients of -t into e. */
static int
sm_build(struct sm_env *e, const struct sm_opts *o, const struct buf *raw,
    struct buf *out)
{
	size_t max = e->cfg->server.max_message_size;
	struct local_msg_hdrs h;
	struct buf text;
	char why[256], add[SM_HEADERS_ADD_MAX];
	int ex = EX_DATAERR;

	buf_init(&text, max);
	if (local_msg_crlf(
	        buf_peek(raw), buf_avail(raw), o->dot, &text, NULL) != 0)
		goto toobig;
	if (local_msg_scan(
	        buf_peek(&text), buf_avail(&text), &h, why, sizeof(why)) != 0) {
		fprintf(stderr, "sendmail: bad message: %s\n", why);
		goto out;
	}
	if (h.rcvd > 50) {
		fprintf(stderr, "sendmail: too many hops (mail loop)\n");
		goto out;
	}
	if (o->extract &&
	    local_msg_rcpts(buf_peek(&text), h.end, sm_rcpt_add, e) != 0) {
		fprintf(stderr, "sendmail: an address in the header is too "
		                "long\n");
		goto out;
	}
	sm_fields(e, o, &h, add, sizeof(add));
	if (local_msg_rewrite(
	        buf_peek(&text), buf_avail(&text), &h, add, out) != 0)
		goto toobig;
	ex = 0;
	goto out;
toobig:
	fprintf(stderr,
	    "sendmail: message size exceeds the limit of %zu "
	    "bytes\n",
	    max);
out:
	buf_fini(&text);
	return ex;
}

/* The envelope's recipients: what there is, checked against the limits. */
static int
sm_rcpts_check(const struct sm_env *e, const struct sm_opts *o)
{
	if (e->ex != 0)
		return e->ex;
	if (e->nrcpts == 0) {
		fprintf(stderr, "sendmail: no recipients: give them as "
		                "arguments, or use -t and To:, Cc: or Bcc:\n");
		return o->extract ? EX_DATAERR : EX_USAGE;
	}
	if (e->nrcpts > e->cfg->server.max_recipients) {
		fprintf(stderr,
		    "sendmail: %zu recipients, over the limit of "
		    "%u\n",
		    e->nrcpts, e->cfg->server.max_recipients);
		return EX_DATAERR;
	}
	return 0;
}

static int
sm_message(const struct config *cfg, const struct sm_opts *o)
{
	struct sm_env e = {.cfg = cfg};
	struct buf raw, out;
	struct sendmail_msg m;
	int ex;

	/* the raw text is never longer than its CR LF form */
	buf_init(&raw, cfg->server.max_message_size + 1);
	buf_init(&out, cfg->server.max_message_size);
	if ((ex = sm_sender(&e, o)) != 0)
		goto out;
	sm_rcpt_args(&e, o->args, o->nargs);
	if ((ex = sm_read(&raw, cfg->server.max_message_size)) != 0 ||
	    (ex = sm_build(&e, o, &raw, &out)) != 0 ||
	    (ex = sm_rcpts_check(&e, o)) != 0)
		goto out;
	m = (struct sendmail_msg){e.from, e.rcpts, e.nrcpts, &out};
	if (sendmail_submit(cfg, &m, &ex) != SENDMAIL_FAILED)
		ex = 0;
out:
	for (size_t i = 0; i < e.nrcpts; i++)
		free(e.rcpts[i]);
	free(e.rcpts);
	buf_fini(&raw);
	buf_fini(&out);
	return ex;
}

int
sendmail_run(const char *config_path, int argc, char **argv,
    const struct sendmail_hooks *hooks)
{
	struct sm_opts o = {0};
	struct config *cfg;
	char err[1024];
	int ex;

	if ((ex = sm_parse(&o, argc, argv)) != 0) {
		sm_usage();
		return ex;
	}
	if (o.mode == 'i')
		return 0; /* no aliases to rebuild */
	if (o.config != NULL)
		config_path = o.config;
	if (config_load(config_path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "sendmail: %s\n", err);
		return EX_CONFIG;
	}
	if (o.mode == 'p')
		ex = hooks->mailq(config_path, cfg);
	else if (o.mode == 's')
		ex = sendmail_bs(cfg) < 0 ? hooks->bs_offline(config_path, cfg)
		                          : 0;
	else
		ex = sm_message(cfg, &o);
	config_unref(cfg);
	return ex;
}
