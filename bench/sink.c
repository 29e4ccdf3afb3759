/* SPDX-License-Identifier: ISC */
/*
 * sink.c - mta-sink: a fast SMTP sink for tests and benchmarks. This
 * file is the process: options, threads, listeners, signals and totals;
 * one connection's dialogue is sink_conn.c (sink.h is what they share).
 *
 * DESIGN. T threads, each with its own uring loop and its own
 * SO_REUSEPORT listener per address, like the relay's receive stage. A
 * connection is a stream (net/stream.h) with a small SMTP state machine
 * on top: it takes every complete line it holds, queues the replies, and
 * the stream sends them with one send per batch, so a pipelining client
 * gets pipelined answers. Message bodies are never stored: they are
 * hashed (SHA-256 of the unstuffed body) and measured as they stream
 * past, so a sink can take millions of messages in constant memory. With
 * --record, one JSON line per accepted message is appended to a file
 * with one write(2), so concurrent threads never interleave.
 *
 * Push-back like a real receiver: a share of 4xx or 5xx per RCPT or at
 * end of DATA, a delay before chosen replies, dropped connections, a
 * connection cap, PIPELINING on or off, STARTTLS (--starttls CERT[:KEY]),
 * AUTH (--auth any|FILE, sink_auth.c). With --dump DIR every accepted
 * message is also kept as a file (sink_dump.c), as smtp-sink -d does.
 * Counters are atomics shared by the threads; the main thread owns
 * signals (signalfd) and the display.
 */
#include "bench/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/tool.h"
#include "base/chan.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"
#include "net/tls.h"
#include "net/uring.h"

struct sink_opts sink_opt = {
    .threads = 1, .pipelining = true, .fail_at = AT_RCPT};
struct sink_stats sink_st;
int sink_record_fd = -1;
struct tls_ctx *sink_tls; /* read-only once the threads run */

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
};

static void
on_accept(struct uring_op *op, int res, unsigned flags, const uint8_t *data,
    size_t len)
{
	struct sink_thread *t =
	    uring_container_of(op, struct sink_listener, op)->t;

	(void)data;
	(void)len;
	if (res >= 0)
		sink_conn_new(t->loop, res, t->stopping);
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
	for (size_t i = 0; i < sink_opt.nlisten; i++)
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

	t->loop = tool_loop_new("mta-sink");
	for (size_t i = 0; i < sink_opt.nlisten; i++) {
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
	    prefix, atomic_load(&sink_st.conns), atomic_load(&sink_st.msgs),
	    atomic_load(&sink_st.rcpts), atomic_load(&sink_st.bytes),
	    atomic_load(&sink_st.temp), atomic_load(&sink_st.perm),
	    atomic_load(&sink_st.drops));
	if (sink_tls)
		fprintf(fp, " tls=%lu tlsfail=%lu", atomic_load(&sink_st.tls),
		    atomic_load(&sink_st.tls_fail));
	if (sink_opt.auth)
		fprintf(fp, " auth=%lu authfail=%lu",
		    atomic_load(&sink_st.auth),
		    atomic_load(&sink_st.auth_fail));
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
	    "  --auth any|FILE         offer AUTH PLAIN and LOGIN and require "
	    "it\n"
	    "                          before MAIL: any name and password, or\n"
	    "                          those of FILE (name:password lines)\n"
	    "  --dump DIR              keep each accepted message as a file "
	    "in DIR\n"
	    "                          (envelope as X-Mta-Sink-* lines "
	    "first)\n"
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

	if (n == 0 || n >= sizeof(sink_opt.tls.certificate) ||
	    !str_copy(sink_opt.tls.private_key,
	        sizeof(sink_opt.tls.private_key), colon ? colon + 1 : "")) {
		fprintf(stderr, "mta-sink: bad --starttls %s\n", arg);
		exit(2);
	}
	str_ncopy(
	    sink_opt.tls.certificate, sizeof(sink_opt.tls.certificate), arg, n);
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
	    {"auth", required_argument, NULL, 'a'},
	    {"dump", required_argument, NULL, 'u'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int ch;

	str_copy(sink_opt.delay_cmds, sizeof(sink_opt.delay_cmds), "all");
	while ((ch = getopt_long(argc, argv, "l:t:r:q", lo, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (sink_opt.nlisten == 8 ||
			    config_parse_endpoint(optarg,
			        &sink_opt.listen[sink_opt.nlisten]) != 0) {
				fprintf(stderr, "mta-sink: bad --listen %s\n",
				    optarg);
				exit(2);
			}
			sink_opt.nlisten++;
			break;
		case 't':
			sink_opt.threads = (unsigned)strtoul(optarg, NULL, 10);
			if (sink_opt.threads == 0 || sink_opt.threads > 64)
				sink_opt.threads = 1;
			break;
		case 'r':
			sink_opt.record = optarg;
			break;
		case '4':
			sink_opt.tempfail_pct = pct_arg(optarg);
			break;
		case '5':
			sink_opt.permfail_pct = pct_arg(optarg);
			break;
		case 'f':
			sink_opt.fail_at =
			    strcmp(optarg, "data") == 0 ? AT_DATA : AT_RCPT;
			break;
		case 'd':
			sink_opt.drop_pct = pct_arg(optarg);
			break;
		case 'D':
			sink_opt.delay_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'C':
			str_copy(sink_opt.delay_cmds,
			    sizeof(sink_opt.delay_cmds), optarg);
			break;
		case 'P':
			sink_opt.pipelining = false;
			break;
		case 'T':
			parse_tls(optarg);
			break;
		case 'm':
			sink_opt.max_conns =
			    (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'a':
			sink_opt.auth = optarg;
			break;
		case 'u':
			sink_opt.dump_dir = optarg;
			break;
		case 'q':
			sink_opt.quiet = true;
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
	if (sink_opt.nlisten == 0 &&
	    config_parse_endpoint("127.0.0.1:2525", &sink_opt.listen[0]) == 0)
		sink_opt.nlisten = 1;
}

/* The TLS context and the record file; exits 1 when either fails. */
static void
sink_setup(void)
{
	char err[256];

	if (sink_opt.tls.certificate[0] &&
	    tls_ctx_server_new(&sink_opt.tls, &sink_tls, err, sizeof(err)) !=
	        0) {
		fprintf(stderr, "mta-sink: %s\n", err);
		exit(1);
	}
	sink_auth_init();
	if (sink_opt.dump_dir && access(sink_opt.dump_dir, W_OK) != 0) {
		fprintf(stderr, "mta-sink: --dump %s: %s\n", sink_opt.dump_dir,
		    strerror(errno));
		exit(1);
	}
	if (sink_opt.record) {
		sink_record_fd = open(sink_opt.record,
		    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (sink_record_fd < 0) {
			fprintf(stderr, "mta-sink: %s: %s\n", sink_opt.record,
			    strerror(errno));
			exit(1);
		}
	}
}

/* Block the signals the main thread reads (threads inherit the mask). */
static int
signals_take(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/* Bind every listener of every thread, then start the threads. */
static struct sink_thread *
threads_start(void)
{
	struct sink_thread *threads =
	    xcalloc(sink_opt.threads, sizeof(*threads));

	for (unsigned i = 0; i < sink_opt.threads; i++) {
		struct sink_thread *t = &threads[i];

		for (size_t k = 0; k < sink_opt.nlisten; k++) {
			t->lfd[k] = listen_on(
			    &sink_opt.listen[k].ss, sink_opt.listen[k].sslen);
			if (t->lfd[k] < 0) {
				fprintf(stderr, "mta-sink: listen %s: %s\n",
				    sink_opt.listen[k].text,
				    strerror(-t->lfd[k]));
				exit(1);
			}
		}
		t->ctl = chan_new();
		if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
			fprintf(stderr, "mta-sink: cannot start thread\n");
			exit(1);
		}
	}
	return threads;
}

/* Until SIGINT or SIGTERM: totals on SIGUSR1, live counters on a tty. */
static void
signals_wait(int sfd)
{
	struct signalfd_siginfo si;
	bool live = !sink_opt.quiet && isatty(STDERR_FILENO);

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
			    atomic_load(&sink_st.msgs),
			    atomic_load(&sink_st.conns_now));
		}
	}
	if (live)
		fputc('\n', stderr);
}

int
main(int argc, char **argv)
{
	struct sink_thread *threads;
	int sfd;

	parse_args(argc, argv);
	sink_setup();
	sfd = signals_take();
	threads = threads_start();
	fprintf(stderr, "mta-sink: ready\n");
	signals_wait(sfd);
	for (unsigned i = 0; i < sink_opt.threads; i++) {
		struct chan_msg *m = xcalloc(1, sizeof(*m));

		chan_send(threads[i].ctl, m);
		pthread_join(threads[i].tid, NULL);
		free(chan_take(threads[i].ctl));
	}
	print_totals(stdout, "mta-sink: total ");
	if (sink_record_fd >= 0)
		close(sink_record_fd);
	_exit(0);
}
