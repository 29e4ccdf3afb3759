/* SPDX-License-Identifier: ISC */
/*
 * cmd_queue.h - what the files of `mta queue` share (cli/ only):
 * cmd_queue.c reads the queue (list, show, stats), cmd_queue_ctl.c acts
 * on it through the relay (delete, retry, hold, release, bounce).
 */
#ifndef MTA_CMD_QUEUE_H
#define MTA_CMD_QUEUE_H

#include <stdio.h>

struct queue;

/* Open the queue named by the configuration, read-only, at nice 19;
 * NULL after one line on stderr ("mta: queue VERB: reason"). */
struct queue *cmd_queue_open(const char *config_path, const char *verb);

/* Write s for a terminal: control bytes as \xHH. */
void cmd_queue_put_text(FILE *fp, const char *s);

/* `mta queue delete|retry|hold|release|bounce ID...|SELECTORS`
 * (cmd_queue_ctl.c). */
int cmd_queue_control(const char *config_path, int argc, char **argv);

/* `mta queue shape [OPTIONS]` (cmd_queue_shape.c). */
int cmd_queue_shape(const char *config_path, int argc, char **argv);

/* cmd_shape.c: `mta queue resume DOMAIN`; and the relay's suspended
 * destinations ("suspended DOMAIN ..." lines) on out, nothing when it
 * is not running. */
int cmd_queue_resume(const char *config_path, int argc, char **argv);
void cmd_shape_suspended(const char *config_path, FILE *out);

#endif
