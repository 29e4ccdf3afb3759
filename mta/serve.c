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
 * before anything else starts. The control socket (control.h) comes up
 * after the queue and goes down before delivery, which answers it.
 * SIGHUP reloads the configuration (reload()): the startup config stays
 * in use for what cannot change live, so it lives until exit.
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
#include "cli/cmd.h"
#include "config/config.h"
#include "control.h"
#include "deliver/deliver.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "receive/receive.h"

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

/* ---- reload (SIGHUP) ---- */

static bool
reload_addrs_differ(const struct config_addr *a, size_t na,
    const struct config_addr *b, size_t nb)
{
	if (na != nb)
		return true;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].text, b[i].text) != 0)
			return true;
	return false;
}

static void
reload_ignored_key(bool differ, const char *key, const char *why)
{
	if (differ)
		log_event(
		    "event=reload-ignored key=%s reason=\"%s\"", key, why);
}

/* What only a restart changes: say so, and keep the running value. */
static void
reload_ignored(const struct config *old, const struct config *new)
{
	static const char restart[] = "needs a restart";
	static const char sched[] = "the scheduler keeps its start value; "
	                            "needs a restart";
	const struct config_server *os = &old->server, *ns = &new->server;
	const struct config_queue *oq = &old->queue, *nq = &new->queue;
	const struct config_dns *od = &old->dns, *nd = &new->dns;

	reload_ignored_key(reload_addrs_differ(os->listen, os->nlisten,
	                       ns->listen, ns->nlisten),
	    "server.listen", restart);
	reload_ignored_key(reload_addrs_differ(os->listen_tls, os->nlisten_tls,
	                       ns->listen_tls, ns->nlisten_tls),
	    "server.listen_tls", restart);
	reload_ignored_key(
	    os->threads != ns->threads, "server.threads", restart);
	reload_ignored_key(os->max_inflight != ns->max_inflight,
	    "server.max_inflight", restart);
	reload_ignored_key(
	    strcmp(oq->path, nq->path) != 0, "queue.path", restart);
	reload_ignored_key(
	    oq->map_size != nq->map_size, "queue.map_size", restart);
	reload_ignored_key(oq->sync != nq->sync, "queue.sync", restart);
	reload_ignored_key(oq->nretry != nq->nretry ||
	                       memcmp(oq->retry, nq->retry,
	                           oq->nretry * sizeof(*oq->retry)) != 0,
	    "queue.retry", sched);
	reload_ignored_key(oq->max_age != nq->max_age, "queue.max_age", sched);
	reload_ignored_key(old->delivery.workers != new->delivery.workers,
	    "delivery.workers", restart);
	/* the connection caps themselves do apply (new connections) */
	reload_ignored_key(
	    old->delivery.max_connections != new->delivery.max_connections,
	    "delivery.max_connections",
	    "applies to connections; the scheduler's job cap keeps its "
	    "start value until a restart");
	reload_ignored_key(old->delivery.max_connections_per_host !=
	                       new->delivery.max_connections_per_host,
	    "delivery.max_connections_per_host",
	    "applies to connections; "
	    "the scheduler's per-destination window keeps its start value "
	    "until a restart");
	reload_ignored_key(
	    reload_addrs_differ(
	        od->servers, od->nservers, nd->servers, nd->nservers) ||
	        od->timeout != nd->timeout || od->tries != nd->tries ||
	        od->min_ttl != nd->min_ttl || od->max_ttl != nd->max_ttl,
	    "dns", restart);
}

/*
 * SIGHUP: read the file again. One that does not load, or whose
 * certificate or users file does not, changes nothing. Otherwise new
 * sessions get the new limits, certificate and users (receive_reload;
 * open sessions keep theirs), delivery the new routes and limits (the
 * scheduler swaps the snapshot in), and what only a restart can change
 * is logged as reload-ignored. The startup config stays in use for
 * those, so it lives until exit.
 */
static void
reload(const char *path, const struct config *cur, struct receive *r,
    struct control *ctl)
{
	struct config *ncfg;
	char err[1024], qerr[1100];

	if (config_load(path, &ncfg, err, sizeof(err)) < 0) {
		log_event("event=reload-failed error=%s",
		    log_quote(qerr, sizeof(qerr), err, strlen(err)));
		return;
	}
	if (receive_reload(r, ncfg, err, sizeof(err)) < 0) {
		log_event("event=reload-failed error=%s",
		    log_quote(qerr, sizeof(qerr), err, strlen(err)));
		config_free(ncfg);
		return;
	}
	reload_ignored(cur, ncfg);
	log_event("event=reloaded file=%s routes=%zu",
	    log_quote(qerr, sizeof(qerr), ncfg->file, strlen(ncfg->file)),
	    ncfg->nroutes);
	control_reload(ctl, ncfg); /* delivery owns it now */
}

int
cmd_serve(const char *config_path, int argc, char **argv)
{
	struct config *cfg = NULL;
	struct queue *q = NULL;
	struct receive *r = NULL;
	struct dns *dns = NULL;
	struct deliver *d = NULL;
	struct control *ctl = NULL;
	char err[1024], lt[512], ltls[512];
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
	if (getenv("MTA_DEBUG") != NULL &&
	    strcmp(getenv("MTA_DEBUG"), "1") == 0)
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
	/* after queue_open (it makes the directory); refuses to start when
	 * another relay answers on this queue's control socket */
	if (control_new(&cfg->queue, &ctl, err, sizeof(err)) < 0) {
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
	if (control_start(ctl, d) < 0) {
		fprintf(stderr, "mta: cannot start the control thread\n");
		goto out;
	}
	if (receive_start(r, q, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: %s\n", err);
		while (!receive_done(r))
			(void)signal_wait(sfd, 50);
		goto out;
	}
	listen_text(cfg->server.listen, cfg->server.nlisten, lt, sizeof(lt));
	listen_text(cfg->server.listen_tls, cfg->server.nlisten_tls, ltls,
	    sizeof(ltls));
	log_event("event=started listen=%s listen_tls=%s threads=%u tls=%s "
	          "auth=%s",
	    lt, ltls, cfg->server.threads ? cfg->server.threads : 1,
	    cfg->tls.certificate[0] ? "yes" : "no",
	    cfg->auth.users[0] ? "yes" : "no");

	for (;;) {
		sig = signal_wait(sfd, -1);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			reload(config_path, cfg, r, ctl);
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
	/* before delivery: the scheduler answers what it was asked */
	control_free(ctl);
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
