/* SPDX-License-Identifier: ISC */
/*
 * cmd.h - the subcommands of `mta`, one file each, dispatched by main.c.
 *
 * Each takes the arguments after its own name (argv[0] is the command
 * name) and the -c config path (CONFIG_DEFAULT_PATH unless given), and
 * returns the process exit status. Errors go to stderr as one clear line.
 */
#ifndef MTA_CMD_H
#define MTA_CMD_H

int cmd_serve(const char *config_path, int argc, char **argv); /* serve.c */
int cmd_check_config(
    const char *config_path, int argc, char **argv); /* cmd_config.c */
int cmd_queue(const char *config_path, int argc, char **argv); /* cmd_queue.c */
int cmd_passwd(
    const char *config_path, int argc, char **argv); /* cmd_passwd.c */
int cmd_resolve(
    const char *config_path, int argc, char **argv); /* cmd_resolve.c */
/* sysexits codes; main.c also runs it for argv[0] "sendmail" (argv as
 * given) and "mailq" (as "sendmail -bp"). */
int cmd_sendmail(
    const char *config_path, int argc, char **argv); /* cmd_sendmail.c */

#endif
