/* SPDX-License-Identifier: ISC */
/*
 * load.c - mta-load: an SMTP load generator. This file is the process:
 * options and threads; load_pace.c is the pacing (which message goes
 * when), load_conn.c one connection's dialogue, load_msg.c the message,
 * load_stats.c the latencies and the report (load.h).
 *
 * DESIGN. T threads, each with its own uring loop, drive C/T client
 * connections. A connection runs one transaction after another: MAIL,
 * every RCPT and DATA in one write when the server offers PIPELINING (one
 * command per round trip otherwise), then the message and the dot, then
 * either the next MAIL on the same connection (reuse) or QUIT and a new
 * connection (--new-conn). Replies are read with the shared parser
 * (smtp_reply.h), matched to commands in order as RFC 2920 requires.
 *
 * Closed loop (default): every connection starts its next message as
 * soon as the last one ends. Open loop (--rate R): messages are due at
 * fixed intervals whether or not the server keeps up, and a message's
 * latency counts from when it was due, not from when a connection was
 * free, so a slow server cannot hide its queueing (no coordinated
 * omission).
 *
 * Every message carries a unique Message-ID and an X-Mta-Load-Sent header
 * (epoch seconds, microseconds), which mta-sink records, so end-to-end
 * latency through a relay can be measured. Latencies are kept per
 * transaction in microseconds; the report gives p50/p90/p99/p99.9/max.
 *
 * A connection is a stream (net/stream.h): the socket, the connect, TLS
 * and the close are the stream's; load_conn.c keeps only the client
 * dialogue. With --starttls a connection says EHLO, STARTTLS, lets the
 * stream run the client handshake, then EHLO again, AUTH and the
 * transactions. There is no certificate check (a load tool, not a
 * delivery). Each thread keeps the newest TLS session and offers it on
 * its next handshake, so --new-conn measures resumptions, as an MTA with
 * a session cache would do them (--no-tls-resume: a full handshake every
 * time). --tls is implicit TLS (port 465): the handshake right after
 * the connect, then the greeting.
 *
 * Exit status: 0 when at least one message was accepted, 1 when none was
 * (no connection, every one refused), 2 for a usage error. A run that
 * had most messages refused, or missed its --rate, says so on stderr.
 */
#include "bench/load.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/tool.h"
#include "base/clock.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "net/tls.h"
#include "net/uring.h"

struct load_opts load_opt = {
    .conns = 10,
    .threads = 1,
    .rcpts = 1,
    .size = 1024,
    .pipelining = true,
    .from = "load@mta-load.test",
    .ehlo = "mta-load",
    .tls_resume = true,
    .connect_ms = 5000,
    .greeting_ms = 10000,
    .reply_ms = 60000,
};

/* Shared progress: atomics, read by the display. */
atomic_ulong load_started, load_accepted, load_refused, load_errors;
atomic_ulong load_tls, load_tls_resumed;     /* handshakes done, resumed */
atomic_ulong load_setup_ok, load_setup_fail; /* connections through setup */
atomic_ulong load_due;            /* open loop: messages that came due */
atomic_ullong load_last_start_us; /* wall us of the newest start */
atomic_bool load_stop;
struct tls_ctx *load_tls_ctx; /* --starttls; read-only in threads */
uint64_t load_t0_us;
char *load_body; /* filler shared by every message */
size_t load_bodylen;
int load_pid;

static void
on_tick(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct load_thread *t =
	    uring_container_of(op, struct load_thread, tick);
	uint64_t now = clock_wall_us();

	(void)res;
	(void)flags;
	(void)data;
	(void)len;
	if (load_opt.duration > 0 &&
	    (double)(now - load_t0_us) / 1e6 >= load_opt.duration)
		atomic_store(&load_stop, true);
	if (load_opt.rate > 0) {
		while (!atomic_load(&load_stop) && t->next_due_us <= now &&
		       (!load_opt.messages || t->started < t->quota)) {
			load_pace_due(t, t->next_due_us);
			atomic_fetch_add(&load_due, 1);
			t->next_due_us += t->interval_us;
			t->started++;
		}
	}
	/* idle connections take due messages, or quit when all is done */
	for (unsigned i = 0; i < t->nconns; i++)
		if (t->conns[i].state == CS_IDLE &&
		    (t->blen || load_thread_finished(t)))
			load_conn_next(&t->conns[i]);
	if (t->live == 0) {
		uring_loop_stop(t->loop);
		return;
	}
	uring_timeout(t->loop, &t->tick, load_opt.rate > 0 ? 1 : 100);
}

static void *
thread_main(void *arg)
{
	struct load_thread *t = arg;

	t->loop = tool_loop_new("mta-load");
	t->rng = 0x12345u + t->idx * 7919u;
	t->next_due_us = load_t0_us;
	uring_op_init(&t->tick, on_tick);
	t->live = t->nconns;
	for (unsigned i = 0; i < t->nconns; i++) {
		struct load_conn *c = &t->conns[i];

		load_conn_init(c, t);
		load_conn_start(c);
	}
	uring_timeout(t->loop, &t->tick, 1);
	if (uring_loop_run(t->loop) != 0)
		fprintf(stderr, "mta-load: event loop failed\n");
	if (t->end_us == 0)
		t->end_us = clock_wall_us();
	/* every connection is DONE: its stream is closed */
	for (unsigned i = 0; i < t->nconns; i++) {
		smtp_reply_fini(&t->conns[i].rp);
		free(t->conns[i].tmsg);
	}
	tls_session_free(t->sess);
	uring_loop_free(t->loop);
	return NULL;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta-load --server HOST:PORT [options]\n"
	    "  --server HOST:PORT  where to connect: an address (1.2.3.4:25,\n"
	    "                      [::1]:25) or a host name (localhost:25)\n"
	    "  --connections N     concurrent connections (default 10)\n"
	    "  --threads N         event-loop threads (default 1)\n"
	    "  --messages N        total messages (default 1000 unless "
	    "--duration)\n"
	    "  --duration SECS     run for this long\n"
	    "  --rcpts N           recipients per message (default 1)\n"
	    "  --domains LIST      recipient domains, weighted: "
	    "a.test:3,b.test:1\n"
	    "  --size BYTES        message size (default 1024)\n"
	    "  --template FILE     send this message instead (headers and "
	    "body);\n"
	    "                      placeholders {n} {from} {rcpt} {date} "
	    "{msgid}\n"
	    "  --header 'N: V'     add this header line (repeatable)\n"
	    "  --new-conn          a new connection per message (default: "
	    "reuse)\n"
	    "  --no-pipelining     one command per round trip\n"
	    "  --bdat              send each message as one BDAT n LAST "
	    "(CHUNKING)\n"
	    "                      instead of DATA (an error when not "
	    "offered)\n"
	    "  --rate N            open loop: N messages/s (default: closed "
	    "loop)\n"
	    "  --from ADDR         envelope sender\n"
	    "  --auth USER:PASS    AUTH after EHLO (PLAIN unless "
	    "--auth-login)\n"
	    "  --auth-login        AUTH LOGIN instead of AUTH PLAIN\n"
	    "  --starttls          STARTTLS after EHLO (an error when not "
	    "offered),\n"
	    "                      no certificate check, then EHLO again\n"
	    "  --tls               implicit TLS (port 465): handshake first, "
	    "no\n"
	    "                      certificate check\n"
	    "  --no-tls-resume     a full handshake every time (default: "
	    "resume\n"
	    "                      the thread's last session)\n"
	    "  --connect-timeout S connect timeout, seconds (default 5)\n"
	    "  --greeting-timeout S  wait this long for the 220 (with --tls: "
	    "the\n"
	    "                      handshake and the 220; default 10)\n"
	    "  --timeout S         wait this long for any other reply "
	    "(default 60)\n"
	    "  --interval S        a time-series line every S seconds on "
	    "stdout\n"
	    "  --json              machine-readable report (the last line)\n"
	    "  --quiet             no live progress line\n"
	    "Exit status: 0 when a message was accepted, 1 when none was, "
	    "2 usage.\n");
}

static void
parse_domains(char *list)
{
	char *save = NULL;

	load_opt.ndomains = load_opt.wsum = 0;
	for (char *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		unsigned w = 1;

		if (load_opt.ndomains == LOAD_MAX_DOMAINS)
			break;
		if (colon) {
			*colon = '\0';
			w = (unsigned)strtoul(colon + 1, NULL, 10);
		}
		if (w == 0)
			continue;
		load_opt.domains[load_opt.ndomains] = tok;
		load_opt.weights[load_opt.ndomains++] = w;
		load_opt.wsum += w;
	}
}

/* SECS (fractions allowed) as milliseconds; 0 = no timeout. */
static uint64_t
seconds_ms(const char *arg)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end || v < 0 || v > 86400) {
		fprintf(stderr, "mta-load: bad number of seconds: %s\n", arg);
		exit(2);
	}
	return (uint64_t)(v * 1000.0 + 0.5);
}

/* "Name: value": a field name of printable characters, a colon, and no
 * line break anywhere (RFC 5322 2.2). */
static bool
header_ok(const char *h)
{
	const char *colon = strchr(h, ':');

	if (colon == NULL || colon == h || strpbrk(h, "\r\n"))
		return false;
	for (const char *p = h; p < colon; p++)
		if (*p <= ' ' || *p > '~')
			return false;
	return true;
}

/* A TCP connect to ai answers within ms (then closed again at once). */
static bool
addr_answers(const struct addrinfo *ai, uint64_t ms)
{
	int fd = socket(
	        ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0),
	    err = 0;
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	socklen_t len = sizeof(err);
	bool ok = false;

	if (fd < 0)
		return false;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		ok = true;
	else if (errno == EINPROGRESS &&
	         poll(&pfd, 1, ms ? (int)ms : -1) == 1 &&
	         getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0)
		ok = err == 0;
	close(fd);
	return ok;
}

/*
 * --server HOST:PORT: a numeric address as the relay's own parser takes
 * it, or a name looked up once with getaddrinfo. Of a name's addresses
 * the first that accepts a connection is used (localhost may be ::1
 * first while the server listens on 127.0.0.1 only), else the last.
 * load_opt.host keeps the name as written (for TLS SNI).
 */
static void
server_resolve(const char *arg)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	const char *colon = strrchr(arg, ':');
	char name[256];
	int r;

	if (config_parse_endpoint(arg, &load_opt.server) == 0) {
		snprintf(load_opt.host, sizeof(load_opt.host), "%s", arg);
		*strrchr(load_opt.host, ':') = '\0';
		if (load_opt.host[0] == '[') { /* [v6] */
			memmove(load_opt.host, load_opt.host + 1,
			    strlen(load_opt.host));
			load_opt.host[strlen(load_opt.host) - 1] = '\0';
		}
		return;
	}
	if (colon == NULL || colon == arg ||
	    (size_t)(colon - arg) >= sizeof(name) || !colon[1]) {
		fprintf(stderr, "mta-load: bad --server %s (HOST:PORT)\n", arg);
		exit(2);
	}
	snprintf(name, sizeof(name), "%.*s", (int)(colon - arg), arg);
	if ((r = getaddrinfo(name, colon + 1, &hints, &res)) != 0) {
		fprintf(stderr, "mta-load: --server %s: %s\n", arg,
		    gai_strerror(r));
		exit(1);
	}
	for (ai = res; ai->ai_next && !addr_answers(ai, load_opt.connect_ms);
	     ai = ai->ai_next)
		;
	memcpy(&load_opt.server.ss, ai->ai_addr, ai->ai_addrlen);
	load_opt.server.sslen = ai->ai_addrlen;
	snprintf(load_opt.server.text, sizeof(load_opt.server.text), "%s", arg);
	snprintf(load_opt.host, sizeof(load_opt.host), "%s", name);
	freeaddrinfo(res);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"server", required_argument, NULL, 's'},
	    {"connections", required_argument, NULL, 'c'},
	    {"threads", required_argument, NULL, 't'},
	    {"messages", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'},
	    {"rcpts", required_argument, NULL, 'r'},
	    {"domains", required_argument, NULL, 'D'},
	    {"size", required_argument, NULL, 'z'},
	    {"new-conn", no_argument, NULL, 'N'},
	    {"no-pipelining", no_argument, NULL, 'P'},
	    {"bdat", no_argument, NULL, 'B'},
	    {"rate", required_argument, NULL, 'R'},
	    {"from", required_argument, NULL, 'f'},
	    {"auth", required_argument, NULL, 'a'},
	    {"auth-login", no_argument, NULL, 'L'},
	    {"starttls", no_argument, NULL, 'T'},
	    {"tls", no_argument, NULL, 'I'},
	    {"connect-timeout", required_argument, NULL, 'C'},
	    {"greeting-timeout", required_argument, NULL, 'G'},
	    {"timeout", required_argument, NULL, 'W'},
	    {"interval", required_argument, NULL, 'i'},
	    {"template", required_argument, NULL, 'm'},
	    {"header", required_argument, NULL, 'H'},
	    {"no-tls-resume", no_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static char default_domains[] = "example.test";
	const char *server = NULL;
	int ch;

	parse_domains(default_domains);
	while ((ch = getopt_long(argc, argv, "s:c:n:d:r:jq", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case 'c':
			load_opt.conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			load_opt.threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			load_opt.messages = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			load_opt.duration = strtod(optarg, NULL);
			break;
		case 'r':
			load_opt.rcpts = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'D':
			parse_domains(optarg);
			break;
		case 'z':
			load_opt.size = strtoull(optarg, NULL, 10);
			break;
		case 'N':
			load_opt.new_conn = true;
			break;
		case 'P':
			load_opt.pipelining = false;
			break;
		case 'B':
			load_opt.bdat = true;
			break;
		case 'R':
			load_opt.rate = strtod(optarg, NULL);
			break;
		case 'f':
			load_opt.from = optarg;
			break;
		case 'a':
			load_opt.auth = optarg;
			break;
		case 'L':
			load_opt.auth_login = true;
			break;
		case 'T':
			load_opt.starttls = true;
			break;
		case 'I':
			load_opt.tls = true;
			break;
		case 'C':
			load_opt.connect_ms = seconds_ms(optarg);
			break;
		case 'G':
			load_opt.greeting_ms = seconds_ms(optarg);
			break;
		case 'W':
			load_opt.reply_ms = seconds_ms(optarg);
			break;
		case 'i':
			load_opt.interval = strtod(optarg, NULL);
			break;
		case 'm':
			load_opt.tmpl_path = optarg;
			break;
		case 'H':
			if (load_opt.nheaders == LOAD_MAX_HEADERS ||
			    !header_ok(optarg)) {
				fprintf(stderr, "mta-load: bad --header %s\n",
				    optarg);
				exit(2);
			}
			load_opt.headers[load_opt.nheaders++] = optarg;
			break;
		case 'S':
			load_opt.tls_resume = false;
			break;
		case 'j':
			load_opt.json = true;
			break;
		case 'q':
			load_opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!server || optind < argc || load_opt.ndomains == 0) {
		usage(stderr);
		exit(2);
	}
	if (load_opt.conns == 0 || load_opt.conns > 100000 ||
	    load_opt.threads == 0 || load_opt.threads > 64 ||
	    load_opt.rcpts == 0 || load_opt.rcpts > LOAD_MAX_RCPTS ||
	    load_opt.size > (1u << 30) || load_opt.rate < 0 ||
	    load_opt.duration < 0 || load_opt.interval < 0 ||
	    (load_opt.tls && load_opt.starttls) ||
	    (load_opt.auth_login && !load_opt.auth)) {
		fprintf(stderr, "mta-load: an option is out of range\n");
		exit(2);
	}
	if (load_opt.messages == 0 && load_opt.duration == 0)
		load_opt.messages = 1000;
	server_resolve(server);
	if (load_opt.threads > load_opt.conns)
		load_opt.threads = load_opt.conns;
}

/* Share the connections and messages out, and start the threads. */
static struct load_thread *
threads_start(void)
{
	struct load_thread *ts = xcalloc(load_opt.threads, sizeof(*ts));

	for (unsigned i = 0; i < load_opt.threads; i++) {
		struct load_thread *t = &ts[i];

		t->idx = i;
		t->nconns = load_opt.conns / load_opt.threads +
		            (i < load_opt.conns % load_opt.threads);
		t->conns = xcalloc(t->nconns, sizeof(*t->conns));
		if (load_opt.messages)
			t->quota = load_opt.messages / load_opt.threads +
			           (i < load_opt.messages % load_opt.threads);
		if (load_opt.rate > 0)
			t->interval_us =
			    (uint64_t)(1e6 * load_opt.threads / load_opt.rate);
		if (t->interval_us == 0)
			t->interval_us = 1;
		if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
			fprintf(stderr, "mta-load: cannot start thread\n");
			exit(1);
		}
	}
	return ts;
}

/* Until every thread has retired its connections; a progress line on a
 * tty, a time-series line every --interval. Returns whether it printed a
 * progress line. */
static bool
progress_wait(const struct load_thread *ts)
{
	bool live = !load_opt.quiet && !load_opt.json && isatty(STDERR_FILENO);
	uint64_t step = (uint64_t)(load_opt.interval * 1e6),
	         next = load_t0_us + step;

	for (;;) {
		struct timespec ts1 = {0, 200 * 1000 * 1000};
		bool running = false;
		uint64_t now = clock_wall_us();

		if (step && next > now && next - now < 200000)
			ts1.tv_nsec = (long)(next - now) * 1000;
		nanosleep(&ts1, NULL);
		for (unsigned i = 0; i < load_opt.threads; i++)
			running |= atomic_load(&ts[i].live) != 0;
		now = clock_wall_us();
		if (step && now >= next && running) {
			load_series_line((double)(now - load_t0_us) / 1e6);
			while (next <= now)
				next += step;
		}
		if (live) {
			double el = (double)(now - load_t0_us) / 1e6;

			fprintf(stderr,
			    "\r%8lu accepted %8.0f msgs/s %6lu "
			    "errors %6lu refused  p99 %.2f ms   ",
			    atomic_load(&load_accepted),
			    el > 0 ? (double)atomic_load(&load_accepted) / el
			           : 0,
			    atomic_load(&load_errors),
			    atomic_load(&load_refused), load_hist_pct(99));
		}
		if (!running)
			return live;
	}
}

/* What went wrong, on stderr; the exit status. */
static int
verdict(void)
{
	unsigned long acc = atomic_load(&load_accepted),
	              ref = atomic_load(&load_refused),
	              started = atomic_load(&load_started);

	if (acc == 0 && started == 0) {
		fprintf(stderr, "mta-load: no message was sent (%lu errors)\n",
		    atomic_load(&load_errors));
		return 1;
	}
	if (acc == 0) {
		fprintf(
		    stderr, "mta-load: every message was refused (%lu)\n", ref);
		return 1;
	}
	if (ref * 2 > started)
		fprintf(stderr,
		    "mta-load: most messages were refused: %lu of %lu\n", ref,
		    started);
	return 0;
}

int
main(int argc, char **argv)
{
	struct load_thread *ts;
	bool live;
	uint64_t end_us;
	int rc;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (load_opt.starttls || load_opt.tls) {
		char err[256];

		/* no trust anchors are needed: policy "may" checks nothing */
		if (tls_ctx_client_new(NULL, &load_tls_ctx, err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "mta-load: %s\n", err);
			return 1;
		}
	}
	load_msg_init();
	load_pid = (int)getpid();
	load_t0_us = clock_wall_us();
	ts = threads_start();
	live = progress_wait(ts);
	/* The run ends when the last thread does, not when the wait, which
	 * polls every 200 ms, noticed it. */
	end_us = load_t0_us;
	for (unsigned i = 0; i < load_opt.threads; i++) {
		pthread_join(ts[i].tid, NULL);
		if (ts[i].end_us > end_us)
			end_us = ts[i].end_us;
	}
	if (live)
		fputc('\n', stderr);
	load_report(ts, (double)(end_us - load_t0_us) / 1e6);
	rc = verdict();
	for (unsigned i = 0; i < load_opt.threads; i++) {
		free(ts[i].conns);
		free(ts[i].lat);
		free(ts[i].backlog);
	}
	free(ts);
	load_msg_fini();
	tls_ctx_free(load_tls_ctx);
	return rc;
}
