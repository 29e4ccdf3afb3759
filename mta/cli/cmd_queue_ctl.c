/* SPDX-License-Identifier: ISC */
/*
 * cmd_queue_ctl.c - `mta queue delete|retry|hold|release|bounce`: act on
 * the live queue through the running relay's control socket (control.h),
 * since its committer is the only writer and its scheduler the owner of
 * what is due.
 *
 * By id: ids go in requests of at most CONTROL_IDS_MAX, and each answer
 * line is printed as it is (`ok ID` on stdout, errors on stderr).
 *
 * By selection (--all, --deferred, --held, --domain D, --sender S,
 * --older-than DURATION; several narrow the choice): the queue is read
 * here, read-only, in short read transactions (as `queue list`), the ids
 * that match are collected, and they go to the relay in the same bounded
 * requests: each is one committed change of at most CONTROL_IDS_MAX
 * messages, so delivery and receipt go on between them however large the
 * queue. The answer is one line of counts: selected, ok, gone (delivered
 * or removed between the read and the action: not an error), error.
 * Main thread, no threads.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/unix_path.h"
#include "base/xalloc.h"
#include "cli/cmd.h"
#include "cli/cmd_queue.h"
#include "config/config.h"
#include "control.h"
#include "queue/queue.h"

/* What an action by selection picks; every given criterion must hold. */
struct ctl_select {
	bool any; /* a selector was given */
	bool all, deferred, held;
	bool retry;         /* retry: a held message is left out */
	const char *domain; /* a pending recipient's domain */
	const char *sender; /* "" = <>; "@dom" = any sender at dom */
	uint64_t older_ms;  /* received before this wall time; 0 = any */
};

/* The answers to requests, summed. */
struct ctl_counts {
	size_t ok, gone, error;
	bool quiet; /* count ok and gone lines instead of printing them */
};

/* Connect to the control socket; the fd, or -1 after one line on
 * stderr. */
static int
ctl_connect(const char *verb, const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = {30, 0};
	int fd, e, dfd, rc;

	if ((rc = unix_path_addr(path, &sun, &dfd)) != 0) {
		/* the queue directory itself is missing or unreadable */
		fprintf(stderr,
		    "mta: queue %s: the relay is not running (no "
		    "control socket at %s: %s)\n",
		    verb, path, strerror(-rc));
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "mta: queue %s: socket: %s\n", verb,
		    strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	if (dfd >= 0)
		close(dfd);
	if (rc < 0) {
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr,
			    "mta: queue %s: the relay is not "
			    "running (no control socket at %s)\n",
			    verb, path);
		else
			fprintf(stderr, "mta: queue %s: %s: %s\n", verb, path,
			    strerror(e));
		return -1;
	}
	/* The relay answers once its commit is done: seconds at worst. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* One answer line: printed, or counted when quiet. */
static void
ctl_answer(const char *verb, const char *line, struct ctl_counts *n)
{
	const char *why;

	if (strncmp(line, "ok ", 3) == 0) {
		n->ok++;
		if (!n->quiet)
			printf("%s\n", line);
		return;
	}
	why = strstr(line, ": no such message");
	if (n->quiet && strncmp(line, "error ", 6) == 0 && why != NULL &&
	    why[17] == '\0') {
		n->gone++;
		return;
	}
	n->error++;
	if (strncmp(line, "error: ", 7) == 0)
		line += 7;
	else if (strncmp(line, "error ", 6) == 0)
		line += 6;
	fprintf(stderr, "mta: queue %s: ", verb);
	cmd_queue_put_text(stderr, line);
	putc('\n', stderr);
}

static int
ctl_send(int fd, const char *verb, const char *path, const struct buf *req)
{
	for (size_t off = 0; off < buf_avail(req);) {
		ssize_t w = send(fd, buf_peek(req) + off, buf_avail(req) - off,
		    MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "mta: queue %s: %s: %s\n", verb, path,
			    strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* Read answer lines up to the `done` line; false if it never came. */
static bool
ctl_read_answers(int fd, const char *verb, struct ctl_counts *n)
{
	struct buf in;
	bool done = false;

	buf_init(&in, CONTROL_IDS_MAX * 256);
	while (!done) {
		uint8_t *p = buf_reserve(&in, 4096), *nl;
		ssize_t r;

		if (p == NULL)
			break; /* more than any answer: stop */
		if ((r = read(fd, p, 4096)) < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		buf_commit(&in, (size_t)r);
		while (!done && (nl = memchr(buf_peek(&in), '\n',
		                     buf_avail(&in))) != NULL) {
			*nl = '\0';
			if (strncmp((const char *)buf_peek(&in), "done ", 5) ==
			    0)
				done = true;
			else
				ctl_answer(
				    verb, (const char *)buf_peek(&in), n);
			buf_consume(&in, (size_t)(nl - buf_peek(&in)) + 1);
		}
	}
	buf_fini(&in);
	return done;
}

/* One request of n ids (or words): send it, take the answers. 0 when it
 * was answered in full, 1 otherwise (each answer is in n). */
static int
ctl_request(const char *verb, const char *path, char **ids, size_t nids,
    struct ctl_counts *n)
{
	struct buf req;
	bool ok = true;
	int fd;

	if ((fd = ctl_connect(verb, path)) < 0)
		return 1;
	buf_init(&req, CONTROL_LINE_MAX + 1);
	if (buf_append(&req, verb, strlen(verb)) != 0)
		ok = false;
	for (size_t i = 0; i < nids; i++)
		if (buf_appendf(&req, " %s", ids[i]) < 0)
			ok = false;
	if (!ok || buf_append(&req, "\n", 1) != 0) {
		fprintf(stderr, "mta: queue %s: request too long\n", verb);
		ok = false;
	} else if (ctl_send(fd, verb, path, &req) != 0) {
		ok = false;
	} else if (!ctl_read_answers(fd, verb, n)) {
		fprintf(stderr,
		    "mta: queue %s: the relay did not finish its "
		    "answer\n",
		    verb);
		ok = false;
	}
	close(fd);
	buf_fini(&req);
	return ok ? 0 : 1;
}

/* The control socket's path from the configuration; 0 or 1 (said). */
static int
ctl_path(const char *config_path, const char *verb, char *path, size_t len)
{
	char err[CONFIG_PATH_MAX + 256];
	struct config *cfg;
	int rc = 0;

	if (config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mta: %s\n", err);
		return 1;
	}
	if (control_path(&cfg->queue, path, len) != 0) {
		fprintf(stderr,
		    "mta: queue %s: %s/%s: path too long for a "
		    "Unix socket\n",
		    verb, cfg->queue.path, CONTROL_SOCK_NAME);
		rc = 1;
	}
	config_unref(cfg);
	return rc;
}

/* ---- selection ---- */

static bool
ctl_domain_is(const char *addr, const char *domain)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && strcasecmp(at + 1, domain) == 0;
}

static bool
ctl_matches(const struct ctl_select *s, const struct queue_envelope *e)
{
	bool held = (e->flags & QUEUE_FLAG_HELD) != 0;
	bool deferred = false, domain = s->domain == NULL;

	if ((s->held && !held) || (s->retry && held && !s->held))
		return false;
	if (s->older_ms != 0 && e->received_ms >= s->older_ms)
		return false;
	if (s->sender != NULL &&
	    !(s->sender[0] == '@' ? ctl_domain_is(e->from, s->sender + 1)
	                          : strcasecmp(e->from, s->sender) == 0))
		return false;
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		deferred |= r->attempts > 0;
		domain |=
		    s->domain != NULL && ctl_domain_is(r->addr, s->domain);
	}
	return domain && (!s->deferred || (deferred && !held));
}

struct ctl_ids {
	const struct ctl_select *sel;
	char (*hex)[QUEUE_ID_HEX + 1];
	size_t n, cap;
};

static int
ctl_collect(void *arg, const struct queue_envelope *e)
{
	struct ctl_ids *ids = arg;

	if (!ctl_matches(ids->sel, e))
		return 0;
	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? ids->cap * 2 : 1024;
		ids->hex = xreallocarray(ids->hex, ids->cap, sizeof(*ids->hex));
	}
	queue_id_fmt(e->id, ids->hex[ids->n++]);
	return 0;
}

/* One selector at argv[*i] into s; 0, or 2 after a line on stderr. */
static int
ctl_select_arg(
    const char *verb, int argc, char **argv, int *i, struct ctl_select *s)
{
	const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
	uint64_t ms;

	s->any = true;
	if (strcmp(a, "--all") == 0) {
		s->all = true;
		return 0;
	}
	if (strcmp(a, "--deferred") == 0) {
		s->deferred = true;
		return 0;
	}
	if (strcmp(a, "--held") == 0) {
		s->held = true;
		return 0;
	}
	if (v == NULL)
		goto bad;
	(*i)++;
	if (strcmp(a, "--domain") == 0 && v[0] != '\0') {
		s->domain = v;
		return 0;
	}
	if (strcmp(a, "--sender") == 0) {
		s->sender = strcmp(v, "<>") == 0 ? "" : v;
		return 0;
	}
	if (strcmp(a, "--older-than") == 0 &&
	    config_parse_duration(v, &ms) == 0 && ms > 0) {
		s->older_ms = clock_wall_ms() - ms;
		return 0;
	}
bad:
	fprintf(stderr, "mta: queue %s: bad selector %s%s%s\n", verb, a,
	    v ? " " : "", v ? v : "");
	return 2;
}

/* Read the queue and act on what matches, in bounded requests. */
static int
ctl_by_selection(const char *config_path, const char *verb, const char *path,
    const struct ctl_select *sel)
{
	struct ctl_counts n = {0, 0, 0, true};
	struct ctl_ids ids = {sel, NULL, 0, 0};
	struct queue *q;
	int rc, status = 0;

	/* say "not running" before reading a large queue for nothing */
	if ((rc = ctl_connect(verb, path)) < 0)
		return 1;
	close(rc);
	if ((q = cmd_queue_open(config_path, verb)) == NULL)
		return 1;
	rc = queue_scan(q, 0, ctl_collect, &ids);
	queue_close(q);
	if (rc != 0) {
		fprintf(stderr, "mta: queue %s: %s\n", verb, strerror(-rc));
		free(ids.hex);
		return 1;
	}
	for (size_t i = 0; i < ids.n && status == 0; i += CONTROL_IDS_MAX) {
		size_t k =
		    ids.n - i < CONTROL_IDS_MAX ? ids.n - i : CONTROL_IDS_MAX;
		char *batch[CONTROL_IDS_MAX];

		for (size_t j = 0; j < k; j++)
			batch[j] = ids.hex[i + j];
		status = ctl_request(verb, path, batch, k, &n);
	}
	printf("%s: selected=%zu ok=%zu gone=%zu error=%zu\n", verb, ids.n,
	    n.ok, n.gone, n.error);
	free(ids.hex);
	return status != 0 || n.error != 0 ? 1 : 0;
}

/* By ids: only well-formed ones reach the relay (and the protocol). */
static int
ctl_by_ids(const char *verb, const char *path, int argc, char **argv)
{
	struct ctl_counts n = {0, 0, 0, false};
	char **ids = xcalloc((size_t)argc, sizeof(*ids));
	size_t nids = 0;
	uint64_t id;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		if (queue_id_parse(argv[i], &id) == 0) {
			ids[nids++] = argv[i];
			continue;
		}
		fprintf(stderr, "mta: queue %s: ", verb);
		cmd_queue_put_text(stderr, argv[i]);
		fprintf(stderr, ": not a queue id (16 hex digits)\n");
		status = 1;
	}
	for (size_t i = 0; i < nids; i += CONTROL_IDS_MAX) {
		size_t k =
		    nids - i < CONTROL_IDS_MAX ? nids - i : CONTROL_IDS_MAX;

		if (ctl_request(verb, path, ids + i, k, &n) != 0)
			status = 1;
		fflush(stdout);
	}
	free(ids);
	return status != 0 || n.error != 0 ? 1 : 0;
}

int
cmd_queue_control(const char *config_path, int argc, char **argv)
{
	const char *verb = argv[0];
	char path[CONFIG_PATH_MAX + 16];
	struct ctl_select sel = {0};
	bool ids = false;
	int rc;

	sel.retry = strcmp(verb, "retry") == 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-') {
			ids = true;
			continue;
		}
		if ((rc = ctl_select_arg(verb, argc, argv, &i, &sel)) != 0)
			return rc;
	}
	if (ids == sel.any) {
		fprintf(stderr,
		    "usage: mta queue %s ID... | --all | [--deferred] "
		    "[--held] [--domain D] [--sender S] [--older-than "
		    "DURATION]\n",
		    verb);
		return 2;
	}
	if (ctl_path(config_path, verb, path, sizeof(path)) != 0)
		return 1;
	if (sel.any)
		return ctl_by_selection(config_path, verb, path, &sel);
	return ctl_by_ids(verb, path, argc, argv);
}

int
cmd_reload(const char *config_path, int argc, char **argv)
{
	struct ctl_counts n = {0, 0, 0, false};
	char path[CONFIG_PATH_MAX + 16];

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mta [-c FILE] reload\n");
		return 2;
	}
	if (ctl_path(config_path, "reload", path, sizeof(path)) != 0)
		return 1;
	if (ctl_request("reload", path, NULL, 0, &n) != 0 || n.error != 0)
		return 1;
	return 0;
}
