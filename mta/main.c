/* SPDX-License-Identifier: ISC */
/*
 * main.c - `mta`: global options (-c FILE, --help, --version), then the
 * command, dispatched through the one table of cli/cmd_table.c; or, run
 * as "sendmail" or "mailq" (a link to mta), sendmail's own command line.
 */
#include <stdio.h>
#include <string.h>

#include "base/compat.h"
#include "cli/cmd.h"
#include "config/config.h"

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
			cmd_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			cmd_version_print(false);
			return 0;
		} else {
			fprintf(stderr, "mta: unknown option %s\n", argv[i]);
			cmd_usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		cmd_usage(stderr);
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
	return cmd_dispatch(config, argc - i, argv + i);
}
