/* SPDX-License-Identifier: ISC */
/*
 * cmd.h - the subcommands of `mta`, one file each, and the one table of
 * them (cmd_table.c) that dispatch, `mta help` and the usage text read.
 *
 * Each takes the arguments after its own name (argv[0] is the command
 * name) and the -c config path (CONFIG_DEFAULT_PATH unless given), and
 * returns the process exit status. Errors go to stderr as one clear line.
 */
#ifndef MTA_CMD_H
#define MTA_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef int cmd_fn(const char *config_path, int argc, char **argv);

#define CMD_OWN_HELP 0x1 /* -h is the command's own option: --help only */

/* A row of a command table: `mta NAME ...` or `mta PARENT NAME ...`. */
struct cmd {
	const char *name;
	const char *usage;      /* arguments after the name, "" for none */
	const char *summary;    /* one line, no period */
	const char *detail;     /* options and notes for `help`, or NULL */
	cmd_fn *run;            /* NULL when subs dispatch */
	const struct cmd *subs; /* subcommands, name NULL ends them */
	unsigned flags;         /* CMD_* */
};

/* The top-level table (cmd_table.c); name NULL ends it. */
extern const struct cmd cmd_table[];

/* The subcommands of `mta queue` (cmd_queue.c); name NULL ends them. */
extern const struct cmd cmd_queue_table[];

/*
 * cmd_dispatch - run `mta NAME ARGS` (argv[0] = NAME): the row's handler,
 * or, when -h/--help is among its arguments, its help on stdout and 0
 * without reading the configuration. An unknown name: usage on stderr, 2.
 */
int cmd_dispatch(const char *config_path, int argc, char **argv);

/* cmd_usage - every command of the table, one line each, on fp. */
void cmd_usage(FILE *fp);

/* cmd_version - "mta VERSION" on stdout (and the libraries when full). */
void cmd_version_print(bool full);

int cmd_serve(const char *config_path, int argc, char **argv); /* serve.c */
int cmd_check_config(
    const char *config_path, int argc, char **argv); /* cmd_config.c */
int cmd_passwd(
    const char *config_path, int argc, char **argv); /* cmd_passwd.c */
int cmd_resolve(
    const char *config_path, int argc, char **argv); /* cmd_resolve.c */
/* sysexits codes; main.c also runs it for argv[0] "sendmail" (argv as
 * given) and "mailq" (as "sendmail -bp"). */
int cmd_sendmail(
    const char *config_path, int argc, char **argv); /* cmd_sendmail.c */
int cmd_reload(
    const char *config_path, int argc, char **argv); /* cmd_queue_ctl.c */
int cmd_dkim(const char *config_path, int argc, char **argv); /* cmd_dkim.c */
int cmd_top(const char *config_path, int argc, char **argv);  /* cmd_top.c */
int cmd_limits(
    const char *config_path, int argc, char **argv); /* cmd_shape.c */

#endif
