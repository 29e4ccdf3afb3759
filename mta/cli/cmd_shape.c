/* SPDX-License-Identifier: ISC */
/*
 * cmd_shape.c - delivery shaping from the command line, through the
 * running relay's control socket (control_shape.c answers):
 *   mta limits                   each limit, its key(s), use, binding;
 *   mta queue resume DOMAIN      lift a destination's suspension;
 *   cmd_shape_suspended()        the suspended destinations, for the end
 *                                of `mta queue stats` (nothing when the
 *                                relay is not running).
 * Main thread, no threads.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/unix_path.h"
#include "cli/cmd.h"
#include "cli/cmd_queue.h"
#include "config/config.h"
#include "control.h"

/* Connect to the relay of config_path; the fd, or -1 (said on stderr
 * unless quiet). */
static int
shape_connect(const char *config_path, const char *what, bool quiet)
{
	char err[CONFIG_PATH_MAX + 256], path[CONFIG_PATH_MAX + 16];
	struct timeval tv = {30, 0};
	struct sockaddr_un sun;
	struct config *cfg;
	int fd = -1, dfd = -1, rc;

	if (config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mta: %s\n", err);
		return -1;
	}
	rc = control_path(&cfg->queue, path, sizeof(path));
	config_unref(cfg);
	if (rc != 0 || unix_path_addr(path, &sun, &dfd) != 0 ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		if (!quiet)
			fprintf(stderr,
			    "mta: %s: the relay is not running (no control "
			    "socket at %s: %s)\n",
			    what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0) {
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

/* Send request, copy the answer's lines to out (errors to stderr) up to
 * its `done` line. 0 when it said error=0. */
static int
shape_ask(const char *config_path, const char *what, const char *request,
    FILE *out, bool quiet)
{
	int fd = shape_connect(config_path, what, quiet), status = 1;
	FILE *in;
	char *line = NULL;
	size_t cap = 0;

	if (fd < 0)
		return 1;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) !=
	        (ssize_t)strlen(request) ||
	    (in = fdopen(fd, "r")) == NULL) {
		fprintf(stderr, "mta: %s: %s\n", what, strerror(errno));
		close(fd);
		return 1;
	}
	while (getline(&line, &cap, in) > 0) {
		if (strncmp(line, "done ", 5) == 0) {
			status = strstr(line, " error=0") != NULL ? 0 : 1;
			break;
		}
		if (strncmp(line, "error", 5) == 0)
			fprintf(stderr, "mta: %s: %s", what, line);
		else
			fputs(line, out);
	}
	free(line);
	fclose(in);
	return status;
}

int
cmd_limits(const char *config_path, int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mta [-c FILE] limits\n");
		return 2;
	}
	return shape_ask(config_path, "limits", "limits\n", stdout, false);
}

int
cmd_queue_resume(const char *config_path, int argc, char **argv)
{
	char req[320];

	if (argc != 2 || strlen(argv[1]) > 253 || strchr(argv[1], ' ')) {
		fprintf(stderr, "usage: mta [-c FILE] queue resume DOMAIN\n");
		return 2;
	}
	snprintf(req, sizeof(req), "resume %s\n", argv[1]);
	return shape_ask(config_path, "queue resume", req, stdout, false);
}

void
cmd_shape_suspended(const char *config_path, FILE *out)
{
	(void)shape_ask(config_path, "queue stats", "suspended\n", out, true);
}
