/* SPDX-License-Identifier: ISC */
/* cmd_passwd.c - placeholder until its owner lands it. */
#include <stdio.h>

#include "cmd.h"

int
cmd_passwd(const char *config_path, int argc, char **argv)
{
	(void)config_path;
	(void)argc;
	fprintf(stderr, "mta: %s: not implemented yet\n", argv[0]);
	return 1;
}
