/* SPDX-License-Identifier: ISC */
/*
 * main.c - `mta` command dispatch: global options, then one subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "base/compat.h"
#include "cli/cmd.h"
#include "config/config.h"
#include "dns/dns.h"
#include "queue/queue.h"
#include "net/tls.h"

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta [-c FILE] COMMAND [ARGS]\n"
	    "commands:\n"
	    "  serve                      run the relay in the foreground\n"
	    "  check-config               validate and print the "
	    "configuration\n"
	    "  queue list [--json]        list queued messages\n"
	    "  queue show ID              one message in detail\n"
	    "  queue stats                counts by state and domain\n"
	    "  queue delete|retry|hold|release ID...\n"
	    "  passwd NAME                add or change a submission user\n"
	    "  resolve [--host] NAME      show the delivery targets of a "
	    "domain\n"
	    "  sendmail [-t] [-i] [-f SENDER] [RCPT...]   submit a message "
	    "(sendmail -bs, -bp too)\n"
	    "  version                    version and library versions\n");
}

static int
cmd_version(void)
{
	printf("mta %s\n", MTA_VERSION);
	printf("%s\n", tls_library_version());
	printf("%s\n", queue_library_version());
	printf("c-ares %s\n", dns_library_version());
	return 0;
}

/* Run as "sendmail" or "mailq" (a link to mta): sendmail's own command
 * line, config from -C FILE only; mailq is "sendmail -bp". */
static int
main_as_sendmail(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	char *bp[8] = {argv[0], "-bp"};

	base = base ? base + 1 : argv[0];
	if (strcmp(base, "sendmail") == 0)
		return cmd_sendmail(CONFIG_DEFAULT_PATH, argc, argv);
	if (strcmp(base, "mailq") != 0)
		return -1;
	if (argc > 6) {
		fprintf(stderr, "mailq: too many arguments\n");
		return 64; /* EX_USAGE */
	}
	for (int i = 1; i < argc; i++)
		bp[i + 1] = argv[i];
	return cmd_sendmail(CONFIG_DEFAULT_PATH, argc + 1, bp);
}

int
main(int argc, char **argv)
{
	const char *config = CONFIG_DEFAULT_PATH;
	int i = 1, rc;

	if (argc > 0 && (rc = main_as_sendmail(argc, argv)) >= 0)
		return rc;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			config = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 ||
		           strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "mta: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	/* `mta serve -c FILE` reads as naturally as `mta -c FILE serve`. */
	for (int j = i + 1; j + 1 < argc; j++)
		if (strcmp(argv[j], "-c") == 0) {
			config = argv[j + 1];
			memmove(&argv[j], &argv[j + 2],
			    sizeof(char *) * (size_t)(argc - j - 1));
			argc -= 2;
			break;
		}
	if (strcmp(argv[i], "serve") == 0)
		return cmd_serve(config, argc - i, argv + i);
	if (strcmp(argv[i], "check-config") == 0)
		return cmd_check_config(config, argc - i, argv + i);
	if (strcmp(argv[i], "queue") == 0)
		return cmd_queue(config, argc - i, argv + i);
	if (strcmp(argv[i], "passwd") == 0)
		return cmd_passwd(config, argc - i, argv + i);
	if (strcmp(argv[i], "resolve") == 0)
		return cmd_resolve(config, argc - i, argv + i);
	if (strcmp(argv[i], "sendmail") == 0)
		return cmd_sendmail(config, argc - i, argv + i);
	if (strcmp(argv[i], "version") == 0)
		return cmd_version();
	fprintf(stderr, "mta: unknown command %s\n", argv[i]);
	usage(stderr);
	return 2;
}
