/* SPDX-License-Identifier: ISC */
/*
 * cmd_queue.c - `mta queue`: look at the relay's queue from outside.
 *
 * list, show and stats open the queue read-only (queue_open(..., true)):
 * LMDB lets this second process read while the relay writes, and every
 * read here is a short read transaction, so a slow terminal or pager
 * never holds back the relay. The verbs that change the live queue
 * (delete, retry, hold, release) go through the relay itself, since its
 * committer is the only writer: they talk to its control socket
 * (control.h) and say so plainly when the relay is not running.
 *
 * Everything read from the queue came from a peer (addresses, HELO,
 * remote replies, headers), so it is escaped before it reaches a
 * terminal (control bytes as \xHH) or JSON (RFC 8259 escapes, invalid
 * UTF-8 as U+FFFD).
 */
#include <errno.h>
#include <grp.h>
#include <sys/resource.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "cli/cmd.h"
#include "cli/cmd_queue.h"
#include "config/config.h"
#include "queue/queue.h"

#define CMD_QUEUE_HEADERS_MAX (64 * 1024) /* bytes of headers `show` prints */
#define CMD_QUEUE_DOMAIN_MAX  255

static const char *const cmd_queue_state_names[QUEUE_RCPT_NSTATES] = {
    [QUEUE_RCPT_PENDING] = "pending",
    [QUEUE_RCPT_DELIVERED] = "delivered",
    [QUEUE_RCPT_FAILED] = "failed",
};

/* Who may read the queue: root and the relay's group (queue_env.c). */
static void
cmd_queue_denied(const char *path)
{
	struct group gr, *gp = NULL;
	char buf[8192], gid[32];
	struct stat st;
	const char *name = "the queue's group";

	if (stat(path, &st) == 0) {
		if (getgrgid_r(st.st_gid, &gr, buf, sizeof(buf), &gp) == 0 &&
		    gp != NULL)
			name = gp->gr_name;
		else if (str_fmt(gid, sizeof(gid), "%u", (unsigned)st.st_gid))
			name = gid;
	}
	fprintf(stderr,
	    "mta queue: permission denied on %s (run as root or a member "
	    "of group %s)\n",
	    path, name);
}

struct queue *
cmd_queue_open(const char *config_path, const char *verb)
{
	struct config *cfg;
	struct queue *q;
	char err[CONFIG_PATH_MAX + 256];
	int rc;

	if (config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mta: %s\n", err);
		return NULL;
	}
	/* A reader yields the CPU to the relay: listing a million messages
	 * must not slow mail down (measured: -35% throughput at the same
	 * priority on two cores, within noise at nice 19). Best effort. */
	(void)setpriority(PRIO_PROCESS, 0, 19);
	if ((rc = queue_open(&cfg->queue, true, &q, err, sizeof(err))) ==
	    -EACCES)
		cmd_queue_denied(cfg->queue.path);
	else if (rc != 0)
		fprintf(stderr, "mta: queue %s: %s\n", verb, err);
	config_unref(cfg);
	return rc == 0 ? q : NULL;
}

/* Write s for a terminal: bytes as they are, except control bytes
 * (a TAB passes when tab_ok: header continuation lines). */
static void
cmd_queue_put_bytes(FILE *fp, const char *s, size_t n, bool tab_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && !(c == '\t' && tab_ok)) || c == 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			putc(c, fp);
	}
}

void
cmd_queue_put_text(FILE *fp, const char *s)
{
	cmd_queue_put_bytes(fp, s, strlen(s), false);
}

static void
cmd_queue_put_quoted(FILE *fp, const char *s)
{
	putc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			putc('\\', fp);
		cmd_queue_put_bytes(fp, s, 1, false);
	}
	putc('"', fp);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t
cmd_queue_utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* Second-byte limits exclude overlongs, surrogates, > U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static void
cmd_queue_json_str(FILE *fp, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	putc('"', fp);
	while (*s != '\0') {
		if (*s == '"' || *s == '\\') {
			fprintf(fp, "\\%c", *s++);
		} else if (*s == '\n') {
			fputs("\\n", fp);
			s++;
		} else if (*s == '\r') {
			fputs("\\r", fp);
			s++;
		} else if (*s == '\t') {
			fputs("\\t", fp);
			s++;
		} else if (*s < 0x20 || *s == 0x7f) {
			fprintf(fp, "\\u%04x", *s++);
		} else if ((n = cmd_queue_utf8_len(s)) == 0) {
			fputs("\\ufffd", fp);
			s++;
		} else {
			fwrite(s, 1, n, fp);
			s += n;
		}
	}
	putc('"', fp);
}

/* "45s", "12m", "5h", "3d": rough, for a column. */
static void
cmd_queue_fmt_dur(char *out, size_t len, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (s < 120)
		snprintf(out, len, "%" PRIu64 "s", s);
	else if (s < 120 * 60)
		snprintf(out, len, "%" PRIu64 "m", s / 60);
	else if (s < 48 * 3600)
		snprintf(out, len, "%" PRIu64 "h", s / 3600);
	else
		snprintf(out, len, "%" PRIu64 "d", s / 86400);
}

static void
cmd_queue_fmt_time(char *out, size_t len, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* What a message is waiting for, summed over its recipients. */
struct cmd_queue_sum {
	size_t pending;
	uint64_t next_ms;  /* earliest next attempt of a pending rcpt */
	const char *error; /* last reply of a pending rcpt, or NULL */
};

static void
cmd_queue_summarize(const struct queue_envelope *e, struct cmd_queue_sum *s)
{
	uint32_t most = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		if (s->pending++ == 0 || r->next_ms < s->next_ms)
			s->next_ms = r->next_ms;
		/* The most-tried recipient's reply says most about why. */
		if (r->reply[0] != '\0' &&
		    (s->error == NULL || r->attempts > most)) {
			s->error = r->reply;
			most = r->attempts;
		}
	}
}

static void
cmd_queue_fmt_next(char *out, size_t len, const struct queue_envelope *e,
    const struct cmd_queue_sum *s, uint64_t now)
{
	char d[32];

	if (s->pending == 0)
		snprintf(out, len, "-");
	else if (e->flags & QUEUE_FLAG_HELD)
		snprintf(out, len, "held");
	else if (s->next_ms <= now)
		snprintf(out, len, "now");
	else {
		cmd_queue_fmt_dur(d, sizeof(d), s->next_ms - now);
		snprintf(out, len, "in %s", d);
	}
}

static void
cmd_queue_list_text(FILE *fp, const struct queue_envelope *e, uint64_t now)
{
	char id[QUEUE_ID_HEX + 1], age[32], next[48];
	struct cmd_queue_sum s;

	cmd_queue_summarize(e, &s);
	queue_id_fmt(e->id, id);
	cmd_queue_fmt_dur(
	    age, sizeof(age), now > e->received_ms ? now - e->received_ms : 0);
	cmd_queue_fmt_next(next, sizeof(next), e, &s, now);
	fprintf(fp, "%s  %4s  %8" PRIu64 "  <", id, age, e->size);
	cmd_queue_put_text(fp, e->from);
	fprintf(fp, ">  pending=%zu/%zu  next=%s  error=", s.pending, e->nrcpts,
	    next);
	if (s.error)
		cmd_queue_put_quoted(fp, s.error);
	else
		putc('-', fp);
	putc('\n', fp);
	/* then its recipients, one per line, as mailq does */
	for (size_t i = 0; i < e->nrcpts; i++) {
		fputs("    <", fp);
		cmd_queue_put_text(fp, e->rcpts[i].addr);
		fprintf(
		    fp, ">  %s\n", cmd_queue_state_names[e->rcpts[i].state]);
	}
}

static void
cmd_queue_json_rcpts(FILE *fp, const struct queue_envelope *e)
{
	fputs("\"rcpts\":[", fp);
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];

		fputs(i ? ",{\"addr\":" : "{\"addr\":", fp);
		cmd_queue_json_str(fp, r->addr);
		fprintf(fp,
		    ",\"state\":\"%s\",\"attempts\":%" PRIu32
		    ",\"next_attempt_ms\":%" PRIu64 ",\"reply\":",
		    cmd_queue_state_names[r->state], r->attempts, r->next_ms);
		cmd_queue_json_str(fp, r->reply);
		putc('}', fp);
	}
	putc(']', fp);
}

static void
cmd_queue_list_json(FILE *fp, const struct queue_envelope *e, uint64_t now)
{
	char id[QUEUE_ID_HEX + 1];
	struct cmd_queue_sum s;

	cmd_queue_summarize(e, &s);
	queue_id_fmt(e->id, id);
	fprintf(fp,
	    "{\"id\":\"%s\",\"received_ms\":%" PRIu64 ",\"age_s\":%" PRIu64
	    ",\"size\":%" PRIu64 ",\"from\":",
	    id, e->received_ms,
	    now > e->received_ms ? (now - e->received_ms) / 1000 : 0, e->size);
	cmd_queue_json_str(fp, e->from);
	fputs(",\"user\":", fp);
	cmd_queue_json_str(fp, e->user);
	fputs(",\"client\":", fp);
	cmd_queue_json_str(fp, e->client);
	fputs(",\"helo\":", fp);
	cmd_queue_json_str(fp, e->helo);
	fprintf(fp, ",\"held\":%s,\"pending\":%zu,\"next_attempt_ms\":",
	    e->flags & QUEUE_FLAG_HELD ? "true" : "false", s.pending);
	if (s.pending)
		fprintf(fp, "%" PRIu64, s.next_ms);
	else
		fputs("null", fp);
	fputs(",\"last_error\":", fp);
	if (s.error)
		cmd_queue_json_str(fp, s.error);
	else
		fputs("null", fp);
	putc(',', fp);
	cmd_queue_json_rcpts(fp, e);
	fputs("}\n", fp);
}

struct cmd_queue_list {
	bool json;
	uint64_t now;
};

static int
cmd_queue_list_one(void *arg, const struct queue_envelope *e)
{
	struct cmd_queue_list *l = arg;

	if (l->json)
		cmd_queue_list_json(stdout, e, l->now);
	else
		cmd_queue_list_text(stdout, e, l->now);
	/* Stop early when the reader went away (`| head`). */
	return ferror(stdout) ? -EPIPE : 0;
}

static int
cmd_queue_list(struct queue *q, int argc, char **argv)
{
	struct cmd_queue_list l = {false, clock_wall_ms()};
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") != 0) {
			fprintf(stderr,
			    "mta: queue list: unknown argument %s\n", argv[i]);
			return 2;
		}
		l.json = true;
	}
	if (!l.json)
		printf("%-16s  %4s  %8s  %s  pending=N/RCPTS  next=WHEN  "
		       "error=LAST-REPLY; then each recipient and its state\n",
		    "ID", "AGE", "SIZE", "<SENDER>");
	if ((rc = queue_scan(q, 0, cmd_queue_list_one, &l)) != 0 &&
	    rc != -EPIPE) {
		fprintf(stderr, "mta: queue list: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

/* The header section: up to the first empty line (CRLF or bare LF). */
static size_t
cmd_queue_headers_len(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 1;
		if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
			return i + 1;
	}
	return n;
}

static void
cmd_queue_show_headers(FILE *fp, const struct buf *body)
{
	const uint8_t *p = buf_peek(body);
	size_t n = cmd_queue_headers_len(p, buf_avail(body));
	size_t start = 0;

	if (n > CMD_QUEUE_HEADERS_MAX)
		n = CMD_QUEUE_HEADERS_MAX;
	fputs("headers:\n", fp);
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '\n')
			continue;
		if (i > start) {
			size_t len = i - start;

			/* CRLF line ends print as plain newlines. */
			if (p[start + len - 1] == '\r')
				len--;
			fputs("  ", fp);
			cmd_queue_put_bytes(
			    fp, (const char *)p + start, len, true);
			putc('\n', fp);
		}
		start = i + 1;
	}
}

static void
cmd_queue_show_rcpt(
    FILE *fp, const struct queue_rcpt *r, bool held, uint64_t now)
{
	char when[48], d[32];

	fputs("  <", fp);
	cmd_queue_put_text(fp, r->addr);
	fprintf(fp, ">  %s  attempts=%" PRIu32, cmd_queue_state_names[r->state],
	    r->attempts);
	if (r->state == QUEUE_RCPT_PENDING) {
		cmd_queue_fmt_time(when, sizeof(when), r->next_ms);
		if (held)
			snprintf(d, sizeof(d), "held");
		else if (r->next_ms <= now)
			snprintf(d, sizeof(d), "now");
		else {
			char dur[24];

			cmd_queue_fmt_dur(dur, sizeof(dur), r->next_ms - now);
			snprintf(d, sizeof(d), "in %s", dur);
		}
		fprintf(fp, "  next=%s (%s)", when, d);
	}
	fputs("  reply=", fp);
	if (r->reply[0] != '\0')
		cmd_queue_put_quoted(fp, r->reply);
	else
		putc('-', fp);
	putc('\n', fp);
}

static void
cmd_queue_show_field(FILE *fp, const char *name, const char *v)
{
	fprintf(fp, "%-10s ", name);
	if (v[0] == '\0')
		putc('-', fp);
	else
		cmd_queue_put_text(fp, v);
	putc('\n', fp);
}

static void
cmd_queue_show_envelope(FILE *fp, const struct queue_envelope *e)
{
	char id[QUEUE_ID_HEX + 1], when[48], age[32];
	size_t cnt[QUEUE_RCPT_NSTATES] = {0};
	uint64_t now = clock_wall_ms();
	bool held = (e->flags & QUEUE_FLAG_HELD) != 0;

	queue_id_fmt(e->id, id);
	cmd_queue_fmt_time(when, sizeof(when), e->received_ms);
	cmd_queue_fmt_dur(
	    age, sizeof(age), now > e->received_ms ? now - e->received_ms : 0);
	fprintf(fp,
	    "id:        %s\nreceived:  %s (%s ago)\n"
	    "size:      %" PRIu64 "\nfrom:      <",
	    id, when, age, e->size);
	cmd_queue_put_text(fp, e->from);
	fputs(">\n", fp);
	cmd_queue_show_field(fp, "user:", e->user);
	cmd_queue_show_field(fp, "client:", e->client);
	cmd_queue_show_field(fp, "helo:", e->helo);
	fprintf(fp, "held:      %s\n", held ? "yes" : "no");
	for (size_t i = 0; i < e->nrcpts; i++)
		cnt[e->rcpts[i].state]++;
	fprintf(fp,
	    "recipients: %zu (%zu pending, %zu delivered, %zu "
	    "failed)\n",
	    e->nrcpts, cnt[QUEUE_RCPT_PENDING], cnt[QUEUE_RCPT_DELIVERED],
	    cnt[QUEUE_RCPT_FAILED]);
	for (size_t i = 0; i < e->nrcpts; i++)
		cmd_queue_show_rcpt(fp, &e->rcpts[i], held, now);
}

static int
cmd_queue_show_err(const char *arg, int rc)
{
	if (rc == -ENOENT)
		fprintf(stderr, "mta: queue show: %s: no such message\n", arg);
	else
		fprintf(stderr, "mta: queue show: %s: %s\n", arg,
		    rc == -EBADMSG ? "corrupt queue record" : strerror(-rc));
	return 1;
}

static int
cmd_queue_write_all(const struct buf *b)
{
	if (fwrite(buf_peek(b), 1, buf_avail(b), stdout) != buf_avail(b) ||
	    fflush(stdout) != 0) {
		fprintf(
		    stderr, "mta: queue show: write: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

static int
cmd_queue_show(struct queue *q, int argc, char **argv)
{
	struct queue_envelope e;
	struct buf body;
	const char *arg = NULL;
	bool raw = false;
	uint64_t id;
	int rc, status;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0)
			raw = true;
		else if (arg == NULL)
			arg = argv[i];
		else
			arg = "";
	}
	if (arg == NULL || arg[0] == '\0') {
		fprintf(stderr, "usage: mta queue show [--raw] ID\n");
		return 2;
	}
	if (queue_id_parse(arg, &id) != 0) {
		fprintf(stderr,
		    "mta: queue show: %s: not a queue id "
		    "(16 hex digits)\n",
		    arg);
		return 1;
	}
	if ((rc = queue_envelope_get(q, id, &e)) != 0)
		return cmd_queue_show_err(arg, rc);
	buf_init(&body, SIZE_MAX / 2);
	if ((rc = queue_body_get(q, id, &body)) != 0) {
		queue_envelope_fini(&e);
		buf_fini(&body);
		return cmd_queue_show_err(arg, rc);
	}
	if (raw) {
		status = cmd_queue_write_all(&body);
	} else {
		cmd_queue_show_envelope(stdout, &e);
		cmd_queue_show_headers(stdout, &body);
		status = fflush(stdout) == 0 ? 0 : 1;
	}
	queue_envelope_fini(&e);
	buf_fini(&body);
	return status;
}

/*
 * stats: recipients by state, and by destination domain in a small
 * open-addressing table (domains are few next to messages).
 */
struct cmd_queue_dom {
	char *name; /* lowercase; NULL = empty slot */
	uint64_t n[QUEUE_RCPT_NSTATES];
};

struct cmd_queue_stats {
	uint64_t messages, held, deferred;
	uint64_t n[QUEUE_RCPT_NSTATES];
	struct cmd_queue_dom *dom;
	size_t ndom, cap; /* cap: a power of two */
};

static struct cmd_queue_dom *
cmd_queue_dom_slot(struct cmd_queue_dom *tab, size_t cap, const char *name)
{
	size_t i = (size_t)str_hash(name) & (cap - 1);

	while (tab[i].name != NULL && strcmp(tab[i].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static void
cmd_queue_dom_grow(struct cmd_queue_stats *st)
{
	size_t ncap = st->cap ? st->cap * 2 : 64;
	struct cmd_queue_dom *tab = xcalloc(ncap, sizeof(*tab));

	for (size_t i = 0; i < st->cap; i++)
		if (st->dom[i].name != NULL)
			*cmd_queue_dom_slot(tab, ncap, st->dom[i].name) =
			    st->dom[i];
	free(st->dom);
	st->dom = tab;
	st->cap = ncap;
}

static void
cmd_queue_dom_count(struct cmd_queue_stats *st, const char *addr, uint8_t state)
{
	const char *at = strrchr(addr, '@');
	char name[CMD_QUEUE_DOMAIN_MAX + 1];
	struct cmd_queue_dom *d;

	snprintf(name, sizeof(name), "%s", at && at[1] ? at + 1 : "(none)");
	for (char *p = name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if ((st->ndom + 1) * 10 > st->cap * 7)
		cmd_queue_dom_grow(st);
	d = cmd_queue_dom_slot(st->dom, st->cap, name);
	if (d->name == NULL) {
		d->name = xstrdup(name);
		st->ndom++;
	}
	d->n[state]++;
}

static int
cmd_queue_stats_one(void *arg, const struct queue_envelope *e)
{
	struct cmd_queue_stats *st = arg;

	st->messages++;
	if (e->flags & QUEUE_FLAG_HELD)
		st->held++;
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];

		st->n[r->state]++;
		if (r->state == QUEUE_RCPT_PENDING && r->attempts > 0)
			st->deferred++;
		cmd_queue_dom_count(st, r->addr, r->state);
	}
	return 0;
}

/* Most pending first, then most recipients, then by name. */
static int
cmd_queue_dom_cmp(const void *a, const void *b)
{
	const struct cmd_queue_dom *x = a, *y = b;
	uint64_t tx = 0, ty = 0;

	if (x->n[QUEUE_RCPT_PENDING] != y->n[QUEUE_RCPT_PENDING])
		return x->n[QUEUE_RCPT_PENDING] > y->n[QUEUE_RCPT_PENDING] ? -1
		                                                           : 1;
	for (int i = 0; i < QUEUE_RCPT_NSTATES; i++) {
		tx += x->n[i];
		ty += y->n[i];
	}
	if (tx != ty)
		return tx > ty ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
cmd_queue_stats_print(FILE *fp, const struct cmd_queue_stats *st)
{
	struct cmd_queue_dom *dom = xcalloc(st->ndom + 1, sizeof(*dom));
	size_t n = 0;

	/* A sorted copy; the table keeps owning the names. */
	for (size_t i = 0; i < st->cap; i++)
		if (st->dom[i].name != NULL)
			dom[n++] = st->dom[i];
	qsort(dom, n, sizeof(*dom), cmd_queue_dom_cmp);
	fprintf(fp,
	    "messages:   %" PRIu64 " (%" PRIu64 " held)\n"
	    "recipients: %" PRIu64 "\n"
	    "  pending:   %" PRIu64 " (%" PRIu64 " deferred)\n"
	    "  delivered: %" PRIu64 "\n  failed:    %" PRIu64 "\n",
	    st->messages, st->held,
	    st->n[QUEUE_RCPT_PENDING] + st->n[QUEUE_RCPT_DELIVERED] +
	        st->n[QUEUE_RCPT_FAILED],
	    st->n[QUEUE_RCPT_PENDING], st->deferred,
	    st->n[QUEUE_RCPT_DELIVERED], st->n[QUEUE_RCPT_FAILED]);
	if (n > 0)
		fprintf(fp, "%-40s %9s %9s %9s\n", "domain", "pending",
		    "delivered", "failed");
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;

		/* Pad by characters, not bytes (IDN in UTF-8). */
		for (const char *c = dom[i].name; *c != '\0'; c++)
			len += ((unsigned char)*c & 0xc0) != 0x80;
		cmd_queue_put_text(fp, dom[i].name);
		fprintf(fp, "%*s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 "\n",
		    len < 40 ? (int)(40 - len) : 0, "",
		    dom[i].n[QUEUE_RCPT_PENDING],
		    dom[i].n[QUEUE_RCPT_DELIVERED],
		    dom[i].n[QUEUE_RCPT_FAILED]);
	}
	free(dom);
}

static int
cmd_queue_stats(struct queue *q, int argc, char **argv)
{
	struct cmd_queue_stats st;
	int rc;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mta queue stats\n");
		return 2;
	}
	memset(&st, 0, sizeof(st));
	cmd_queue_dom_grow(&st);
	rc = queue_scan(q, 0, cmd_queue_stats_one, &st);
	if (rc == 0)
		cmd_queue_stats_print(stdout, &st);
	else
		fprintf(stderr, "mta: queue stats: %s\n", strerror(-rc));
	for (size_t i = 0; i < st.cap; i++)
		free(st.dom[i].name);
	free(st.dom);
	return rc == 0 ? 0 : 1;
}

/* list, show, stats: on the queue opened read-only. */
static int
cmd_queue_read(const char *config_path, int argc, char **argv,
    int (*fn)(struct queue *q, int argc, char **argv))
{
	struct queue *q;
	int status;

	if ((q = cmd_queue_open(config_path, argv[0])) == NULL)
		return 1;
	status = fn(q, argc, argv);
	queue_close(q);
	return status;
}

static int
cmd_queue_list_run(const char *config_path, int argc, char **argv)
{
	return cmd_queue_read(config_path, argc, argv, cmd_queue_list);
}

static int
cmd_queue_show_run(const char *config_path, int argc, char **argv)
{
	return cmd_queue_read(config_path, argc, argv, cmd_queue_show);
}

static int
cmd_queue_stats_run(const char *config_path, int argc, char **argv)
{
	int status = cmd_queue_read(config_path, argc, argv, cmd_queue_stats);

	if (status == 0)
		cmd_shape_suspended(config_path, stdout); /* the live part */
	return status;
}

#define CMD_QUEUE_SEL "ID... | SELECTOR..."

#define CMD_QUEUE_CTL_DETAIL                                               \
	"Acts through the running relay's control socket: its committer\n" \
	"is the only writer of the queue. By ids: `ok ID` per message.\n"  \
	"By selection, the queue is read and what matches is acted on\n"   \
	"in committed batches of 1000, with one line of counts:\n"         \
	"VERB: selected=N ok=N gone=N error=N (gone: delivered or\n"       \
	"removed meanwhile). Several selectors narrow the choice:\n"       \
	"  --all                every message\n"                           \
	"  --deferred           not held, a recipient tried and pending\n" \
	"  --held               held messages\n"                           \
	"  --domain D           a pending recipient at domain D\n"         \
	"  --sender S           envelope sender S (<> the null sender,\n"  \
	"                       @D any sender at domain D)\n"              \
	"  --older-than DUR     received more than DUR ago (30m, 2d)\n"

/* clang-format off */
const struct cmd cmd_queue_table[] = {
	{"list", "[--json]", "list queued messages",
	 "One line per message after a header line: id, age, size, sender,\n"
	 "pending/total recipients, next attempt, last error, recipients.\n"
	 "--json     one JSON object per line, with every recipient\n",
	 cmd_queue_list_run, NULL, 0},
	{"show", "[--raw] ID", "one message in detail",
	 "--raw      the stored message bytes, exactly\n",
	 cmd_queue_show_run, NULL, 0},
	{"stats", "", "counts by state and by destination domain", NULL,
	 cmd_queue_stats_run, NULL, 0},
	{"shape", "[--all|--deferred|--held] [--top N] [--buckets SPEC]",
	 "pending recipients by domain and age, as qshape",
	 "A table of pending recipients: one row per destination domain\n"
	 "(TOTAL first, then the domains with the most), column T the\n"
	 "total, then one column per age bucket in minutes: `10` counts\n"
	 "ages from the previous bound up to 10, the last `N+` N and older.\n"
	 "--all       every pending recipient (the default)\n"
	 "--deferred  tried and still pending, of messages not held\n"
	 "--held      of held messages\n"
	 "--top N     that many domains (default 20; 0: all)\n"
	 "--buckets N N buckets doubling from 5 minutes (default 9: 5 to\n"
	 "            1280); or a list of ascending minutes: 1,5,60,1440\n",
	 cmd_queue_shape, NULL, 0},
	{"delete", CMD_QUEUE_SEL, "remove messages without a bounce",
	 CMD_QUEUE_CTL_DETAIL, cmd_queue_control, NULL, 0},
	{"bounce", CMD_QUEUE_SEL,
	 "fail messages now, with a bounce to the sender",
	 CMD_QUEUE_CTL_DETAIL, cmd_queue_control, NULL, 0},
	{"retry", CMD_QUEUE_SEL, "attempt messages now (held ones stay held)",
	 CMD_QUEUE_CTL_DETAIL, cmd_queue_control, NULL, 0},
	{"hold", CMD_QUEUE_SEL, "stop delivery attempts of messages",
	 CMD_QUEUE_CTL_DETAIL, cmd_queue_control, NULL, 0},
	{"release", CMD_QUEUE_SEL, "let held messages be delivered again",
	 CMD_QUEUE_CTL_DETAIL, cmd_queue_control, NULL, 0},
	{"resume", "DOMAIN", "lift a destination's backoff suspension now",
	 NULL, cmd_queue_resume, NULL, 0},
	{NULL, NULL, NULL, NULL, NULL, NULL, 0},
};
/* clang-format on */
