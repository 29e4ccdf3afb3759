/* SPDX-License-Identifier: ISC */
/*
 * sendmail_main.c - mta-sendmail: the sendmail command line in a small
 * program (libc and inih only), what `make install` links sendmail and
 * mailq to. A local submission is one process start: `mta` loads
 * OpenSSL, c-ares, LMDB and liburing first, which costs more CPU than
 * the whole submission (bench/sendmail-bench measures both). Same code
 * as `mta sendmail` (sendmail_run); for -bp, and -bs without a relay,
 * it runs `mta sendmail` from its own directory, which has the queue
 * reader and the SMTP state machine.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/str.h"
#include "cli/sendmail.h"
#include "config/config.h"

/* `DIR/mta sendmail -C FILE MODE`, DIR being ours: mta reads the queue
 * (-bp) and serves SMTP itself (-bs without a relay). */
static int
lean_exec(const char *config_path, const char *mode)
{
	char self[PATH_MAX], mta[PATH_MAX + 8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return EX_OSERR;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return EX_OSERR;
	*slash = '\0';
	if (!str_fmt(mta, sizeof(mta), "%s/mta", self))
		return EX_OSERR;
	fflush(stdout);
	execl(mta, "mta", "sendmail", "-C", config_path, mode, (char *)NULL);
	fprintf(stderr, "sendmail: %s: %s\n", mta, strerror(errno));
	return EX_UNAVAILABLE;
}

static int
lean_mailq(const char *config_path, const struct config *cfg)
{
	(void)cfg;
	return lean_exec(config_path, "-bp");
}

static int
lean_bs(const char *config_path, const struct config *cfg)
{
	(void)cfg;
	return lean_exec(config_path, "-bs");
}

static const struct sendmail_hooks lean_hooks = {lean_mailq, lean_bs};

int
main(int argc, char **argv)
{
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	char *bp[8] = {argc > 0 ? argv[0] : "mailq", "-bp"};

	base = base ? base + 1 : (argc > 0 ? argv[0] : "");
	if (strcmp(base, "mailq") != 0)
		return sendmail_run(
		    CONFIG_DEFAULT_PATH, argc, argv, &lean_hooks);
	if (argc > 6) {
		fprintf(stderr, "mailq: too many arguments\n");
		return EX_USAGE;
	}
	for (int i = 1; i < argc; i++)
		bp[i + 1] = argv[i];
	return sendmail_run(CONFIG_DEFAULT_PATH, argc + 1, bp, &lean_hooks);
}
