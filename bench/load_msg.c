/* SPDX-License-Identifier: ISC */
/*
 * load_msg.c - the message mta-load sends: the header block, and either
 * the filler body shared by every message (--size) or a template file
 * rendered for each message (--template), with --header lines added.
 *
 * Template placeholders, replaced in every message: {n} the message's
 * number in the run (1, 2, ...), {from} the envelope sender, {rcpt} the
 * first recipient, {date} the time it went (RFC 5322 date), {msgid} a
 * unique Message-ID with its angle brackets. Anything else in braces is
 * left as it is. Lines may end in LF or CRLF; they go out as CRLF, dot-
 * stuffed. The template is the whole message, headers included: only
 * X-Mta-Load-Sent (for the sink's latency record) and the --header
 * lines are put before it.
 *
 * Thread: load_msg_init/fini on the main thread before and after the
 * load threads; load_msg_render on the connection's thread (it writes
 * only the connection's buffers).
 */
#include "bench/load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/xalloc.h"

#define TMPL_MAX (16u * 1024 * 1024) /* bytes of template, cap */

static char *g_tmpl; /* --template as read, NUL-terminated */
static size_t g_tmpl_len;

/* The shared body: filler lines of 76 characters up to about --size. */
static void
body_make(void)
{
	size_t line = 78,
	       n = load_opt.size > 300 ? (load_opt.size - 300) / line : 1;

	if (n == 0)
		n = 1;
	load_bodylen = n * line;
	load_body = xmalloc(load_bodylen + 1);
	for (size_t i = 0; i < n; i++) {
		char *l = load_body + i * line;

		for (size_t k = 0; k < line - 2; k++)
			l[k] = (char)('a' + (i + k) % 26);
		l[line - 2] = '\r';
		l[line - 1] = '\n';
	}
}

static void
tmpl_read(const char *path)
{
	FILE *fp = fopen(path, "rb");
	size_t cap = 4096;

	if (fp == NULL) {
		fprintf(stderr, "mta-load: --template %s: %s\n", path,
		    strerror(errno));
		exit(2);
	}
	g_tmpl = xmalloc(cap);
	for (;;) {
		size_t k = fread(g_tmpl + g_tmpl_len, 1, cap - g_tmpl_len, fp);

		g_tmpl_len += k;
		if (g_tmpl_len > TMPL_MAX) {
			fprintf(stderr,
			    "mta-load: --template %s: over %u bytes\n", path,
			    TMPL_MAX);
			exit(2);
		}
		if (k == 0)
			break;
		if (g_tmpl_len == cap)
			g_tmpl = xreallocarray(g_tmpl, cap *= 2, 1);
	}
	fclose(fp);
	if (g_tmpl_len == 0) {
		fprintf(stderr, "mta-load: --template %s is empty\n", path);
		exit(2);
	}
	g_tmpl = xreallocarray(g_tmpl, g_tmpl_len + 1, 1);
	g_tmpl[g_tmpl_len] = '\0';
}

void
load_msg_init(void)
{
	body_make();
	if (load_opt.tmpl_path)
		tmpl_read(load_opt.tmpl_path);
}

void
load_msg_fini(void)
{
	free(load_body);
	free(g_tmpl);
}

/* Append n bytes to the connection's rendering buffer. */
static void
tmsg_put(struct load_conn *c, const char *p, size_t n)
{
	if (c->bodylen + n > c->tmsg_cap) {
		size_t cap = c->tmsg_cap ? c->tmsg_cap : 4096;

		while (cap < c->bodylen + n)
			cap *= 2;
		c->tmsg = xreallocarray(c->tmsg, cap, 1);
		c->tmsg_cap = cap;
	}
	memcpy(c->tmsg + c->bodylen, p, n);
	c->bodylen += n;
}

/* The value of placeholder {name} (len bytes) into out; false when it is
 * not one of ours. */
static bool
placeholder(const struct load_conn *c, const char *name, size_t len, char *out,
    size_t outlen)
{
	struct tm tm;
	time_t now;

	if (len == 1 && name[0] == 'n') {
		snprintf(out, outlen, "%" PRIu64, c->msgno);
	} else if (len == 4 && memcmp(name, "from", 4) == 0) {
		snprintf(out, outlen, "%s", load_opt.from);
	} else if (len == 4 && memcmp(name, "rcpt", 4) == 0) {
		snprintf(
		    out, outlen, "u1.%" PRIu64 "@%s", c->seq, c->rcpt1_domain);
	} else if (len == 4 && memcmp(name, "date", 4) == 0) {
		now = (time_t)(c->txn_start_us / 1000000);
		localtime_r(&now, &tm);
		strftime(out, outlen, "%a, %d %b %Y %H:%M:%S %z", &tm);
	} else if (len == 5 && memcmp(name, "msgid", 5) == 0) {
		snprintf(
		    out, outlen, "<%" PRIx64 ".%d@mta-load>", c->seq, load_pid);
	} else {
		return false;
	}
	return true;
}

/* One template line (without its line end): placeholders replaced, a
 * leading dot doubled, CRLF added. */
static void
tmpl_line(struct load_conn *c, const char *p, size_t n)
{
	char val[512];
	size_t i = 0, run = 0;

	if (n && p[0] == '.')
		tmsg_put(c, ".", 1);
	while (i < n) {
		const char *close;

		if (p[i] != '{' ||
		    (close = memchr(p + i, '}', n - i)) == NULL ||
		    !placeholder(c, p + i + 1, (size_t)(close - p - i - 1), val,
		        sizeof(val))) {
			i++;
			continue;
		}
		tmsg_put(c, p + run, i - run);
		tmsg_put(c, val, strlen(val));
		i = run = (size_t)(close - p) + 1;
	}
	tmsg_put(c, p + run, n - run);
	tmsg_put(c, "\r\n", 2);
}

static void
tmpl_render(struct load_conn *c)
{
	const char *p = g_tmpl, *end = g_tmpl + g_tmpl_len;

	c->bodylen = 0;
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *le = lf ? lf : end;
		size_t n = (size_t)(le - p);

		if (n && p[n - 1] == '\r')
			n--;
		tmpl_line(c, p, n);
		p = lf ? lf + 1 : end;
	}
	c->body = c->tmsg;
}

long
load_msg_render(struct load_conn *c, struct buf *o)
{
	size_t before = buf_avail(o);
	int r;

	r = buf_appendf(o, "X-Mta-Load-Sent: %" PRIu64 ".%06u\r\n",
	    c->txn_start_us / 1000000, (unsigned)(c->txn_start_us % 1000000));
	for (unsigned i = 0; i < load_opt.nheaders && r == 0; i++)
		r = buf_appendf(o, "%s\r\n", load_opt.headers[i]);
	if (g_tmpl) {
		tmpl_render(c);
	} else {
		r = r ? r
		      : buf_appendf(o,
		            "From: <%s>\r\nTo: <u1.%" PRIu64 "@%s>\r\n"
		            "Subject: mta-load message %" PRIu64 "\r\n"
		            "Message-ID: <%" PRIx64 ".%d@mta-load>\r\n\r\n",
		            load_opt.from, c->seq, c->rcpt1_domain, c->seq,
		            c->seq, load_pid);
		c->body = load_body;
		c->bodylen = load_bodylen;
	}
	return r == 0 ? (long)(buf_avail(o) - before) : -1;
}
