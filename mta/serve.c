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
 * and closes. receive_new() comes first: besides binding the ports it
 * loads the [tls] certificate and the [auth] users file, so a busy port,
 * a bad certificate or key, or a bad users file is one line and exit 1
 * before anything else starts. Then, started as root, the relay becomes
 * [server] user for good (serve_priv.h) before the queue opens and
 * before any thread exists. The control socket (control.h) comes up
 * after the queue and goes down before delivery, which answers it.
 * SIGHUP reloads the configuration (reload()): one new snapshot, a
 * reference to it sent to every stage; the startup snapshot stays in use
 * for what cannot change live, so it lives until exit.
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
#include "base/metrics.h"
#include "base/str.h"
#include "cli/cmd.h"
#include "config/config.h"
#include "control.h"
#include "deliver/deliver.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "metrics/metrics_http.h"
#include "queue/queue.h"
#include "receive/local.h"
#include "receive/maildrop.h"
#include "receive/receive.h"
#include "serve_priv.h"

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
		struct rlimit want = {need, need};

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
	static const int sync_sigs[] = {
	    SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
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
	struct pollfd pfd = {.fd = sfd, .events = POLLIN};
	struct signalfd_siginfo si;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

/* "a,b" for a list of addresses; "-" when empty (logfmt needs a value). */
static void
listen_text(const struct config_addr *a, size_t na, char *buf, size_t len)
{
	size_t n = 0;

	str_copy(buf, len, na ? "" : "-");
	for (size_t i = 0; i < na && n < len; i++) {
		int w =
		    snprintf(buf + n, len - n, "%s%s", i ? "," : "", a[i].text);

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* The stages, in start order. */
struct stages {
	struct receive *r;
	struct queue *q;
	struct control *ctl;
	struct dns *dns;
	struct deliver *d;
	struct maildrop *md; /* local submissions written while we were down */
	struct metrics_server *metrics; /* NULL: [metrics] listen is empty */
};

/* ---- reload (SIGHUP) ---- */

/* What only a restart changes (the key table's restart column): say so.
 * Compared with the startup snapshot, whose values stay in use. */
static void
reload_ignored(const struct config *boot, const struct config *next)
{
	struct config_restart_key keys[64];
	size_t n = config_restart_keys(boot, next, keys, MTA_ARRAY_LEN(keys));

	for (size_t i = 0; i < n && i < MTA_ARRAY_LEN(keys); i++)
		log_event("event=reload-ignored key=%s reason=\"%s\"",
		    keys[i].key, keys[i].reason);
}

/*
 * SIGHUP: read the file again, once. One that does not load, or whose
 * certificate or users file does not, changes nothing. Otherwise every
 * thread that owns state gets a reference to the new snapshot by chan
 * and swaps it in at its own loop boundary: new sessions get the new
 * limits, certificate and users (open sessions keep theirs), delivery
 * the new routes and limits (jobs and connections under way keep the
 * snapshot they started with). What only a restart can change is logged
 * as reload-ignored; the startup snapshot stays in use for those, so it
 * lives until exit. The last reference to a retired snapshot frees it.
 */
static void
reload(const char *path, const struct config *boot, struct stages *st)
{
	struct config *next;
	char err[1024], qerr[1100];

	if (config_load(path, &next, err, sizeof(err)) < 0 ||
	    dkim_table_attach(next, err, sizeof(err)) < 0) {
		log_event("event=reload-failed error=%s",
		    log_quote(qerr, sizeof(qerr), err, strlen(err)));
		config_unref(next);
		return;
	}
	if (receive_reload(st->r, next, err, sizeof(err)) < 0) {
		log_event("event=reload-failed error=%s",
		    log_quote(qerr, sizeof(qerr), err, strlen(err)));
		config_unref(next);
		return;
	}
	reload_ignored(boot, next);
	log_event("event=reloaded file=%s routes=%zu",
	    log_quote(qerr, sizeof(qerr), next->file, strlen(next->file)),
	    next->nroutes);
	deliver_reload(st->d, next);
	config_unref(next); /* the threads hold theirs */
}

/* ---- start and stop ---- */

/* Build and start every stage; false (with the reason on stderr, and
 * what was built left in st for serve_close) on failure. */
static bool
serve_open(
    const struct config *cfg, const struct serve_priv *priv, struct stages *st)
{
	struct deliver_settings ds;
	char err[1024];

	if (receive_new(&cfg->server, &cfg->tls, &cfg->auth, &cfg->delivery,
	        dkim_table_of(cfg), &st->r, err, sizeof(err)) < 0)
		goto fail;
	receive_limits(st->r, cfg);
	if (metrics_server_new(&cfg->metrics, &st->metrics, err, sizeof(err)) <
	    0)
		goto fail;
	metrics_set_enabled(st->metrics != NULL, cfg->metrics.destinations);
	/* ports bound, keys read: from here on, the relay's user */
	if (serve_priv_queue(priv, cfg, err, sizeof(err)) < 0 ||
	    serve_priv_drop(priv, err, sizeof(err)) < 0)
		goto fail;
	serve_priv_reload_check(priv, cfg);
	if (queue_open(&cfg->queue, false, &st->q, err, sizeof(err)) < 0)
		goto fail;
	/* after queue_open (it makes the directory); refuses to start when
	 * another relay answers on this queue's control socket */
	if (control_new(&cfg->queue, &st->ctl, err, sizeof(err)) < 0)
		goto fail;
	/* after control_new: only the relay of this queue replaces the
	 * local socket */
	if (local_dirs(cfg, err, sizeof(err)) < 0 ||
	    receive_local(st->r, &cfg->local, err, sizeof(err)) < 0 ||
	    maildrop_new(cfg, st->q, &st->md, err, sizeof(err)) < 0)
		goto fail;
	if ((st->dns = dns_new(&cfg->dns, err, sizeof(err))) == NULL)
		goto fail;
	/* before queue_start: delivery subscribes to new-message notes */
	deliver_settings_of(cfg, &ds);
	if ((st->d = deliver_new(&ds, st->q, st->dns, err, sizeof(err))) ==
	    NULL)
		goto fail;
	if (queue_start(st->q) < 0) {
		fprintf(stderr, "mta: queue: cannot start the committer\n");
		return false;
	}
	if (dns_start(st->dns) < 0 || deliver_start(st->d) < 0) {
		fprintf(stderr, "mta: cannot start the delivery threads\n");
		return false;
	}
	if (maildrop_start(st->md) < 0) {
		fprintf(stderr, "mta: cannot start the maildrop thread\n");
		return false;
	}
	if (metrics_server_start(st->metrics) < 0) {
		fprintf(stderr, "mta: cannot start the metrics thread\n");
		return false;
	}
	if (control_start(st->ctl, st->d) < 0) {
		fprintf(stderr, "mta: cannot start the control thread\n");
		return false;
	}
	return true;
fail:
	fprintf(stderr, "mta: %s\n", err);
	return false;
}

static void
serve_close(struct stages *st)
{
	metrics_server_free(st->metrics);
	/* before delivery: the scheduler answers what it was asked */
	control_free(st->ctl);
	receive_free(st->r);
	/* before the queue: it waits for the commits it asked for */
	maildrop_free(st->md);
	/* delivery before the queue: its last results are committed */
	deliver_stop(st->d, DELIVER_GRACE_MS);
	dns_free(st->dns);
	queue_close(st->q); /* commits everything it was sent */
}

static void
log_started(const struct config *cfg)
{
	char lt[512], ltls[512];

	listen_text(cfg->server.listen, cfg->server.nlisten, lt, sizeof(lt));
	listen_text(cfg->server.listen_tls, cfg->server.nlisten_tls, ltls,
	    sizeof(ltls));
	log_event("event=started listen=%s listen_tls=%s threads=%u tls=%s "
	          "auth=%s",
	    lt, ltls, cfg->server.threads ? cfg->server.threads : 1,
	    cfg->tls.certificate[0] ? "yes" : "no",
	    cfg->auth.users[0] ? "yes" : "no");
}

/* Serve until SIGTERM or SIGINT, reloading on SIGHUP; then let receive
 * wind down (a second signal: now). */
static void
serve_run(
    int sfd, const char *path, const struct config *cfg, struct stages *st)
{
	int sig;

	for (;;) {
		sig = signal_wait(sfd, -1);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			reload(path, cfg, st);
	}
	log_event("event=stopping signal=%s", sig == SIGINT ? "INT" : "TERM");
	receive_shutdown(st->r, false);
	while (!receive_done(st->r)) {
		sig = signal_wait(sfd, 50);
		if (sig == SIGTERM || sig == SIGINT) /* a second one: now */
			receive_shutdown(st->r, true);
	}
}

int
cmd_serve(const char *config_path, int argc, char **argv)
{
	struct config *cfg = NULL;
	struct serve_priv priv;
	struct stages st = {0};
	char err[1024];
	int sfd = -1, rc = 1;

	if (argc > 1) {
		fprintf(stderr, "mta serve: unexpected argument %s\n", argv[1]);
		return 1;
	}
	/* the DKIM keys load with the file: a bad one refuses the start */
	if (config_load(config_path, &cfg, err, sizeof(err)) < 0 ||
	    dkim_table_attach(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		config_unref(cfg);
		return 1;
	}
	if (serve_priv_plan(&cfg->server, &priv, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		config_unref(cfg);
		return 1;
	}
	/* log.h documents MTA_DEBUG=1; nothing else reads it yet. */
	if (getenv("MTA_DEBUG") != NULL &&
	    strcmp(getenv("MTA_DEBUG"), "1") == 0)
		log_set_level(LOG_LEVEL_DEBUG);
	if (cfg->log.syslog && log_syslog_open(cfg->log.syslog_socket) < 0) {
		fprintf(stderr, "mta: [log] syslog_socket %s: unusable\n",
		    cfg->log.syslog_socket);
		goto out;
	}
	raise_nofile(cfg);
	if ((sfd = signals_setup()) < 0) {
		fprintf(stderr, "mta: signals: %s\n", strerror(errno));
		goto out;
	}
	if (!serve_open(cfg, &priv, &st))
		goto out;
	if (receive_start(st.r, st.q, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		while (!receive_done(st.r))
			(void)signal_wait(sfd, 50);
		goto out;
	}
	log_started(cfg);
	serve_run(sfd, config_path, cfg, &st);
	rc = 0;
out:
	serve_close(&st);
	if (rc == 0)
		log_event("event=stopped");
	if (sfd >= 0)
		close(sfd);
	config_unref(cfg);
	return rc;
}
