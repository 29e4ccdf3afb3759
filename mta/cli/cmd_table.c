/* SPDX-License-Identifier: ISC */
/*
 * cmd_table.c - the commands of `mta`: one table, and what reads it.
 *
 * Dispatch, `mta help [COMMAND [SUBCOMMAND]]`, `-h/--help` on any
 * command and the usage text all walk cmd_table (and the subcommand
 * tables it points to), so a command added to a table is dispatched,
 * listed and documented at once. Help never reads the configuration:
 * it must work on a host where none exists yet. Main thread, no threads.
 */
#include <stdio.h>
#include <string.h>

#include "base/compat.h"
#include "cli/cmd.h"
#include "dns/dns.h"
#include "net/tls.h"
#include "queue/queue.h"

static int cmd_help(const char *config_path, int argc, char **argv);
static int cmd_version(const char *config_path, int argc, char **argv);

/*
 * A new command is one row here (or in its parent's table): name, the
 * usage after the name, a one-line summary, optional detail for `help`,
 * its handler (declared in cmd.h). A command whose own options include
 * -h (as sendmail's hop count) sets CMD_OWN_HELP: only --help is help.
 */
/* clang-format off */
const struct cmd cmd_table[] = {
	{"serve", "", "run the relay in the foreground",
	 "Reads the configuration, binds the listeners, opens the queue and\n"
	 "runs until SIGTERM or SIGINT; SIGHUP (or `mta reload`) reloads the\n"
	 "configuration.\n",
	 cmd_serve, NULL, 0},
	{"check-config", "",
	 "check the configuration as serve would and print it",
	 "Loads the file, the TLS certificate and key, the users file, the\n"
	 "queue path and the routes exactly as serve does. Errors go to\n"
	 "stderr as FILE:LINE: key: reason (or the path) and exit 1; risky\n"
	 "settings are warned about on stderr. The effective configuration\n"
	 "is printed on stdout with secrets as ***.\n",
	 cmd_check_config, NULL, 0},
	{"queue", "SUBCOMMAND [ARGS]", "look at and act on the queue",
	 NULL, NULL, cmd_queue_table, 0},
	{"passwd", "NAME | -d NAME | -l",
	 "add, change, delete or list submission users",
	 "NAME       add or change NAME; the password is read from stdin\n"
	 "           (two prompts on a terminal)\n"
	 "-d NAME    delete NAME from the users file\n"
	 "-l         list the user names\n",
	 cmd_passwd, NULL, 0},
	{"resolve", "[--host] NAME...", "show the delivery targets of a domain",
	 "--host     NAME is a host: show its addresses, not its MX hosts\n",
	 cmd_resolve, NULL, 0},
	{"sendmail", "[-t] [-i] [-f SENDER] [-F NAME] [RCPT...] | -bs | -bp",
	 "submit a message from stdin, as sendmail does",
	 "-t         recipients from the To, Cc and Bcc header fields\n"
	 "-i         a line of one dot does not end the message\n"
	 "-f SENDER  the envelope sender; -F NAME the From name\n"
	 "-bs        SMTP on stdin and stdout; -bp: list the queue (mailq)\n"
	 "Run as `sendmail` or `mailq` (a link to mta), it reads sendmail's\n"
	 "own command line. -h is sendmail's hop count: use --help.\n",
	 cmd_sendmail, NULL, CMD_OWN_HELP},
	{"dkim",
	 "keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--out FILE]"
	 " | check DOMAIN",
	 "make a DKIM key, or check the published ones",
	 "keygen     write a new private key (PEM, mode 0600, never over a\n"
	 "           file; default RSA 2048 in DOMAIN.SELECTOR.pem) and print\n"
	 "           its [dkim] lines and the DNS TXT record to publish\n"
	 "check      look up each configured selector of DOMAIN through the\n"
	 "           [dns] servers: is the published key the configured one?\n",
	 cmd_dkim, NULL, 0},
	{"reload", "", "make the running relay reload its configuration",
	 "Asks the relay through its control socket (in the queue\n"
	 "directory), as SIGHUP does; the relay logs event=reloaded or\n"
	 "event=reload-failed with the reason.\n",
	 cmd_reload, NULL, 0},
	{"top", "[--once | -n N] [--interval SECONDS] [--listen ADDR]",
	 "a refreshing view of the running relay, from its metrics",
	 "Scrapes the relay's Prometheus endpoint ([metrics] listen; exit 2\n"
	 "when it is off) every interval (default 2 s) and shows message\n"
	 "rates in and out, refusals, connections, the queue, the mean\n"
	 "commit (fsync) latency, and the destinations with the most\n"
	 "queued: connections, deliveries a second, last error class.\n"
	 "--once        one frame (after one interval, for the rates)\n"
	 "-n N          N frames, then exit\n"
	 "--interval S  seconds between frames (0.1 or more)\n"
	 "--listen ADDR scrape ADDR (HOST:PORT) instead of the configured\n"
	 "              one\n",
	 cmd_top, NULL, 0},
	{"limits", "", "show each limit, its use and whether it binds",
	 "Asks the running relay: each [limit] with its key, the\n"
	 "destinations it has met (in flight, admitted, refused,\n"
	 "binding = refused in the last 2 s), then suspended destinations\n"
	 "and cut rates (adaptive backoff).\n",
	 cmd_limits, NULL, 0},
	{"version", "", "print the version and the library versions", NULL,
	 cmd_version, NULL, 0},
	{"help", "[COMMAND [SUBCOMMAND]]", "print help on a command", NULL,
	 cmd_help, NULL, 0},
	{NULL, NULL, NULL, NULL, NULL, NULL, 0},
};
/* clang-format on */

void
cmd_version_print(bool full)
{
	printf("mta %s\n", MTA_VERSION);
	if (!full)
		return;
	printf("%s\n", tls_library_version());
	printf("%s\n", queue_library_version());
	printf("c-ares %s\n", dns_library_version());
}

static int
cmd_version(const char *config_path, int argc, char **argv)
{
	(void)config_path;
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mta version\n");
		return 2;
	}
	cmd_version_print(true);
	return 0;
}

static const struct cmd *
cmd_find(const struct cmd *tab, const char *name)
{
	for (; tab->name != NULL; tab++)
		if (strcmp(tab->name, name) == 0)
			return tab;
	return NULL;
}

/* "queue list" for a subcommand, "serve" for a command. */
static void
cmd_print_row(FILE *fp, const char *parent, const struct cmd *c)
{
	char name[64];

	snprintf(name, sizeof(name), "%s%s%s", parent ? parent : "",
	    parent ? " " : "", c->name);
	fprintf(fp, "  %s%s%s\n      %s\n", name, c->usage[0] ? " " : "",
	    c->usage, c->summary);
}

void
cmd_usage(FILE *fp)
{
	fprintf(fp, "usage: mta [-c FILE] COMMAND [ARGS]\n"
	            "       mta help [COMMAND], mta COMMAND --help, "
	            "mta --version\ncommands:\n");
	for (const struct cmd *c = cmd_table; c->name != NULL; c++) {
		if (c->subs == NULL) {
			cmd_print_row(fp, NULL, c);
			continue;
		}
		for (const struct cmd *s = c->subs; s->name != NULL; s++)
			cmd_print_row(fp, c->name, s);
	}
}

/* The help of one row on stdout; parent is NULL for a command. */
static int
cmd_print_help(FILE *fp, const char *parent, const struct cmd *c)
{
	fprintf(fp, "usage: mta [-c FILE] %s%s%s%s%s\n\n%s.\n",
	    parent ? parent : "", parent ? " " : "", c->name,
	    c->usage[0] ? " " : "", c->usage, c->summary);
	if (c->detail != NULL)
		fprintf(fp, "\n%s", c->detail);
	if (c->subs != NULL) {
		fprintf(fp,
		    "\nsubcommands (mta %s SUBCOMMAND --help for more):\n",
		    c->name);
		for (const struct cmd *s = c->subs; s->name != NULL; s++)
			cmd_print_row(fp, c->name, s);
	}
	return 0;
}

static int
cmd_unknown(const char *parent, const char *name)
{
	fprintf(stderr, "mta: unknown command %s%s%s\n", parent ? parent : "",
	    parent ? " " : "", name);
	cmd_usage(stderr);
	return 2;
}

/* `mta help [COMMAND [SUBCOMMAND]]` */
static int
cmd_help(const char *config_path, int argc, char **argv)
{
	const struct cmd *c, *s;

	(void)config_path;
	if (argc < 2) {
		cmd_usage(stdout);
		return 0;
	}
	if ((c = cmd_find(cmd_table, argv[1])) == NULL)
		return cmd_unknown(NULL, argv[1]);
	if (argc < 3 || c->subs == NULL)
		return cmd_print_help(stdout, NULL, c);
	if ((s = cmd_find(c->subs, argv[2])) == NULL)
		return cmd_unknown(c->name, argv[2]);
	return cmd_print_help(stdout, c->name, s);
}

static bool
cmd_wants_help(const struct cmd *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if ((strcmp(argv[i], "-h") == 0 &&
		        !(c->flags & CMD_OWN_HELP)) ||
		    strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

int
cmd_dispatch(const char *config_path, int argc, char **argv)
{
	const struct cmd *c, *s;

	if ((c = cmd_find(cmd_table, argv[0])) == NULL)
		return cmd_unknown(NULL, argv[0]);
	if (c->subs == NULL)
		return cmd_wants_help(c, argc, argv)
		           ? cmd_print_help(stdout, NULL, c)
		           : c->run(config_path, argc, argv);
	if (argc < 2) {
		cmd_print_help(stderr, NULL, c);
		return 2;
	}
	if (argv[1][0] == '-' && cmd_wants_help(c, argc, argv))
		return cmd_print_help(stdout, NULL, c);
	if ((s = cmd_find(c->subs, argv[1])) == NULL)
		return cmd_unknown(c->name, argv[1]);
	if (cmd_wants_help(s, argc - 1, argv + 1))
		return cmd_print_help(stdout, c->name, s);
	return s->run(config_path, argc - 1, argv + 1);
}
