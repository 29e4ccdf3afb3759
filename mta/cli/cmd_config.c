/* SPDX-License-Identifier: ISC */
/*
 * cmd_config.c - `mta check-config [-c FILE]`.
 *
 * Loads the file exactly as `mta serve` would and prints the effective
 * configuration (defaults filled in, "0 = per CPU" resolved) as INI on
 * stdout; on error prints the loader's one line, "FILE:LINE: key: reason",
 * on stderr with no prefix, so editors can jump to it. Exit 0 or 1 (2 for
 * bad usage, as every mta command). Runs on the main thread, no threads.
 */
#include <stdio.h>

#include "cli/cmd.h"
#include "config/config.h"

int
cmd_check_config(const char *config_path, int argc, char **argv)
{
	struct config *c;
	char err[1024];

	if (argc > 1) {
		fprintf(stderr, "usage: mta check-config [-c FILE]\n");
		return 2;
	}
	(void)argv;
	if (config_load(config_path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	config_dump(c, stdout);
	config_unref(c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("mta: check-config: stdout");
		return 1;
	}
	return 0;
}
