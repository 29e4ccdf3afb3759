/* SPDX-License-Identifier: ISC */
/*
 * serve.c - `mta serve`: startup, thread spawn, the signal loop, shutdown.
 *
 * Runs on the main thread only. Order matters: every signal is blocked
 * before the first thread exists (threads inherit the mask, so no signal
 * is ever delivered to a handler on a worker), SIGPIPE is ignored, and
 * the main thread reads SIGTERM/SIGINT/SIGHUP from a signalfd: no logic
 * runs in a signal handler. Shutdown: receive threads stop accepting and
 * close idle sessions with 421, give transactions in progress a grace
 * period; then delivery stops (jobs in flight get a grace period and
 * their results are committed), then the queue commits what it was sent
 * and closes.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "cmd.h"
#include "config/config.h"
#include "deliver.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "receive.h"

/* How long jobs in flight get to finish at shutdown. */
#define DELIVER_GRACE_MS 5000

/* File descriptors beyond the connections: listeners, rings, eventfds,
 * LMDB, DNS, delivery sockets (a margin, not a bound). */
#define FD_MARGIN 1024

static void
raise_nofile(const struct config *cfg)
{
	rlim_t need = (rlim_t)cfg->server.max_connections + FD_MARGIN;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		/* Root may raise the hard limit too. */
		struct rlimit want = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		log_warnx("RLIMIT_NOFILE is %llu, below max_connections + %d "
		    "= %llu: connections may fail with EMFILE",
		    (unsigned long long)rl.rlim_cur, FD_MARGIN,
		    (unsigned long long)need);
}

/* Block every asynchronous signal for this thread and all it creates;
 * return a signalfd for the ones we act on. Faults (SEGV, BUS, ...) stay
 * unblocked so crashes and sanitizer reports behave normally. */
static int
signals_setup(void)
{
	static const int sync_sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL,
		SIGTRAP, SIGABRT, SIGSYS };
	sigset_t all, mine;

	signal(SIGPIPE, SIG_IGN);
	sigfillset(&all);
	for (size_t i = 0; i < MTA_ARRAY_LEN(sync_sigs); i++)
		sigdelset(&all, sync_sigs[i]);
	if (pthread_sigmask(SIG_BLOCK, &all, NULL) != 0)
		return -1;
	sigemptyset(&mine);
	sigaddset(&mine, SIGTERM);
	sigaddset(&mine, SIGINT);
	sigaddset(&mine, SIGHUP);
	return signalfd(-1, &mine, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Wait up to timeout_ms for a signal; its number, 0 on timeout. */
static int
signal_wait(int sfd, int timeout_ms)
{
	struct pollfd pfd = { .fd = sfd, .events = POLLIN };
	struct signalfd_siginfo si;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

static void
listen_text(const struct config_server *cs, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < cs->nlisten && n < len; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? "," : "",
		    cs->listen[i].text);

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

int
cmd_serve(const char *config_path, int argc, char **argv)
{
	struct config *cfg = NULL;
	struct queue *q = NULL;
	struct receive *r = NULL;
	struct dns *dns = NULL;
	struct deliver *d = NULL;
	char err[1024], lt[512];
	int sfd = -1, sig, rc = 1;

	if (argc > 1) {
		fprintf(stderr, "mta serve: unexpected argument %s\n", argv[1]);
		return 1;
	}
	if (config_load(config_path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		return 1;
	}
	/* log.h documents MTA_DEBUG=1; nothing else reads it yet. */
	if (getenv("MTA_DEBUG") != NULL && strcmp(getenv("MTA_DEBUG"), "1") == 0)
		log_set_level(LOG_LEVEL_DEBUG);
	raise_nofile(cfg);
	if ((sfd = signals_setup()) < 0) {
		fprintf(stderr, "mta: signals: %s\n", strerror(errno));
		goto out;
	}
	if (receive_new(cfg, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		goto out;
	}
	if (queue_open(&cfg->queue, false, &q, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		goto out;
	}
	if ((dns = dns_new(&cfg->dns, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mta: %s\n", err);
		goto out;
	}
	/* before queue_start: delivery subscribes to new-message notes */
	if ((d = deliver_new(cfg, q, dns, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mta: %s\n", err);
		goto out;
	}
	if (queue_start(q) < 0) {
		fprintf(stderr, "mta: queue: cannot start the committer\n");
		goto out;
	}
	if (dns_start(dns) < 0 || deliver_start(d) < 0) {
		fprintf(stderr, "mta: cannot start the delivery threads\n");
		goto out;
	}
	if (receive_start(r, q, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		while (!receive_done(r))
			(void)signal_wait(sfd, 50);
		goto out;
	}
	listen_text(&cfg->server, lt, sizeof(lt));
	log_event("event=started listen=%s threads=%u", lt,
	    cfg->server.threads ? cfg->server.threads : 1);

	for (;;) {
		sig = signal_wait(sfd, -1);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			log_info("SIGHUP: configuration reload is not "
			    "implemented yet; ignored");
	}
	log_event("event=stopping signal=%s", sig == SIGINT ? "INT" : "TERM");
	receive_shutdown(r, false);
	while (!receive_done(r)) {
		sig = signal_wait(sfd, 50);
		if (sig == SIGTERM || sig == SIGINT) /* a second one: now */
			receive_shutdown(r, true);
	}
	rc = 0;
out:
	receive_free(r);
	/* delivery before the queue: its last results are committed */
	deliver_stop(d, DELIVER_GRACE_MS);
	dns_free(dns);
	queue_close(q); /* commits everything it was sent */
	if (rc == 0)
		log_event("event=stopped");
	if (sfd >= 0)
		close(sfd);
	config_free(cfg);
	return rc;
}
