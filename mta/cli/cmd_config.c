/* SPDX-License-Identifier: ISC */
/*
 * cmd_config.c - `mta check-config [-c FILE]`.
 *
 * Catches what `mta serve` would refuse at start, with the very functions
 * serve uses: config_load (keys, values, routes), serve_priv_check (the
 * [server] user and group exist; root without one), receive_check (the [tls]
 * certificate and key load and match, the [auth] users file parses, a
 * listen_tls has a certificate), queue_path_check (the queue directory
 * is usable or can be made) and deliver_check (the [delivery] ca_file and
 * ca_path load). It binds no port and opens no queue, so it
 * runs beside a live relay. Then it warns on stderr about settings serve
 * accepts but an administrator rarely means (an open relay, AUTH without
 * TLS, a smarthost password sent without TLS), and prints the effective
 * configuration (defaults filled in, "0 = per CPU" resolved, secrets as
 * ***) as INI on stdout. DKIM keys are loaded as serve loads them.
 *
 * Errors are one line on stderr with no prefix, "FILE:LINE: key: reason"
 * or "PATH: reason", so editors can jump to it; exit 1 (2 for bad usage,
 * as every mta command; 0 with or without warnings). Main thread.
 */
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#include "cli/cmd.h"
#include "config/config.h"
#include "deliver/deliver.h"
#include "dkim/dkim.h"
#include "queue/queue.h"
#include "receive/receive.h"
#include "serve_priv.h"

static void
check_warn(const struct config *c, const char *what)
{
	fprintf(stderr, "%s: warning: %s\n", c->file, what);
}

/* A prefix of 0 (0.0.0.0/0, ::/0) lets the whole Internet relay. */
static void
check_open_relay(const struct config *c)
{
	const struct config_server *s = &c->server;

	for (size_t i = 0; i < s->nrelay_networks; i++)
		if (s->relay_networks[i].prefix == 0) {
			check_warn(c,
			    s->relay_networks[i].family == AF_INET6
			        ? "[server] relay_networks includes ::/0: an "
			          "open relay, every IPv6 client may relay "
			          "without AUTH"
			        : "[server] relay_networks includes "
			          "0.0.0.0/0: an open relay, every IPv4 "
			          "client may relay without AUTH");
		}
}

static void
check_auth_tls(const struct config *c)
{
	if (c->auth.users[0] == '\0')
		return;
	if (!c->auth.require_tls)
		check_warn(c, "[auth] require_tls = no: AUTH is offered "
		              "before TLS, passwords may cross the network "
		              "in clear");
	else if (c->tls.certificate[0] == '\0')
		check_warn(c, "[auth] users is set but there is no [tls] "
		              "certificate and require_tls = yes: AUTH is "
		              "never offered");
}

/* A smarthost password under a policy that may not protect it. It is
 * only sent once TLS is up, unless auth_without_tls says otherwise
 * (smtp_out.c); under none or may that can defer every delivery. */
static void
check_route_passwords(const struct config *c)
{
	char line[CONFIG_HOST_MAX + 200];

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct config_route *r = &c->routes[i];
		enum config_tls_policy p =
		    r->tls_set ? r->tls : c->delivery.tls;

		if (r->password[0] == '\0' || p >= CONFIG_TLS_ENCRYPT)
			continue;
		snprintf(line, sizeof(line),
		    "[route %s] password with tls = %s: %s", r->domain,
		    config_tls_policy_name(p),
		    r->auth_without_tls
		        ? "auth_without_tls = yes, it may be sent without TLS"
		        : "it is never sent without TLS, so mail is deferred "
		          "when the host has none (use tls = encrypt or "
		          "verify)");
		check_warn(c, line);
	}
}

/* What serve loads besides the file: 0, or 1 after the error line. */
static int
check_loads(const struct config *c)
{
	char err[CONFIG_PATH_MAX + 512];

	struct dkim_table *dkim;

	if (serve_priv_check(&c->server, err, sizeof(err)) < 0 ||
	    receive_check(&c->server, &c->tls, &c->auth, err, sizeof(err)) <
	        0 ||
	    queue_path_check(&c->queue, err, sizeof(err)) < 0 ||
	    deliver_check(c, err, sizeof(err)) < 0 ||
	    dkim_table_new(c, &dkim, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	dkim_table_free(dkim);
	return 0;
}

int
cmd_check_config(const char *config_path, int argc, char **argv)
{
	struct config *c;
	char err[1024];
	int rc;

	if (argc > 1) {
		fprintf(stderr, "usage: mta check-config [-c FILE]\n");
		return 2;
	}
	(void)argv;
	if (config_load(config_path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if ((rc = check_loads(c)) == 0) {
		check_open_relay(c);
		check_auth_tls(c);
		check_route_passwords(c);
		config_dump_redacted(c, stdout);
	}
	config_unref(c);
	if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
		perror("mta: check-config: stdout");
		return 1;
	}
	return rc;
}
