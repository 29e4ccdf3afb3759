/* SPDX-License-Identifier: ISC */
/*
 * sendmail.h - `mta sendmail` and mta-sendmail, private to mta/cli/
 * (and sendmail_main.c): cmd_sendmail.c and sendmail_main.c call
 * sendmail_run.c (options, the message, exit codes), which calls
 * sendmail_io.c (the relay's unix socket, the maildrop, -bs); never the
 * other way round.
 *
 * Exit codes are sysexits(3), as every sendmail's: EX_USAGE (64) for
 * options, EX_DATAERR (65) for a message SMTP would refuse, EX_NOUSER
 * (67) for a refused recipient, EX_NOPERM (77) for a user the allow list
 * refuses, EX_TEMPFAIL (75) when the message could not be stored at all,
 * EX_CONFIG (78) for a configuration that does not load.
 *
 * Thread: the process's only one.
 */
#ifndef MTA_CLI_SENDMAIL_H
#define MTA_CLI_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "config/config.h"

/* A message ready to go: envelope and CR LF text (not dot-stuffed). */
struct sendmail_msg {
	const char *from; /* "" for <> */
	char **rcpts;
	size_t nrcpts;
	const struct buf *text;
};

/* What the two programs do differently: mta reads the queue and runs
 * SMTP itself; mta-sendmail, which has neither, runs mta for them. */
struct sendmail_hooks {
	/* -bp: print the queue as mailq does; the exit code */
	int (*mailq)(const char *config_path, const struct config *cfg);
	/* -bs and no relay answers: SMTP on stdin/stdout with commits to
	 * the maildrop (nothing was read from stdin yet); the exit code */
	int (*bs_offline)(const char *config_path, const struct config *cfg);
};

/*
 * sendmail_run - the whole sendmail command line (argv[0] is the name it
 * was run by; -C FILE overrides config_path); returns the exit code.
 * (sendmail_run.c)
 */
int sendmail_run(const char *config_path, int argc, char **argv,
    const struct sendmail_hooks *hooks);

/* What sendmail_submit() did. */
enum sendmail_result {
	SENDMAIL_SENT,    /* the relay answered 250 after its commit */
	SENDMAIL_DROPPED, /* the relay was unreachable or said 4xx: the
			     message is durably in the maildrop */
	SENDMAIL_FAILED,  /* *exit_code says why (stderr has said it) */
};

/*
 * sendmail_submit - hand m to the relay on cfg's local socket; when that
 * is not possible now (no relay, a 4xx), write it to the maildrop
 * instead. Returns what happened; on SENDMAIL_FAILED *exit_code is the
 * sysexits code, with one line per problem on stderr.
 */
enum sendmail_result sendmail_submit(
    const struct config *cfg, const struct sendmail_msg *m, int *exit_code);

/*
 * sendmail_bs - `-bs`: SMTP on stdin and stdout, relayed to the relay's
 * local socket. Returns the exit code, or -1 when no relay answers (and
 * nothing was read or written yet).
 */
int sendmail_bs(const struct config *cfg);

/*
 * sendmail_drop - write m to the maildrop durably (sendmail_submit does
 * when the relay cannot take it). Returns 0, or the exit code with one
 * line on stderr.
 */
int sendmail_drop(const struct config *cfg, const struct sendmail_msg *m);

#endif
