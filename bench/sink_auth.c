/* SPDX-License-Identifier: ISC */
/*
 * sink_auth.c - mta-sink's --auth: who may authenticate. "any" takes
 * every name and password; otherwise a file of "name:password" lines
 * (plain text: a test fixture, never real secrets; '#' starts a comment
 * line) is read once at startup into a table the connection threads
 * then only read. The AUTH dialogue itself is sink_conn.c's.
 */
#include "bench/sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

#define SINK_USERS_MAX 10000

static char **g_names, **g_passwords; /* read-only once threads run */
static size_t g_nusers;
static bool g_any;

static void
users_add(char *line, const char *path, unsigned lineno)
{
	char *colon = strchr(line, ':');

	if (colon == NULL || colon == line || g_nusers == SINK_USERS_MAX) {
		fprintf(stderr, "mta-sink: %s:%u: not name:password\n", path,
		    lineno);
		exit(2);
	}
	*colon = '\0';
	g_names = xreallocarray(g_names, g_nusers + 1, sizeof(*g_names));
	g_passwords =
	    xreallocarray(g_passwords, g_nusers + 1, sizeof(*g_passwords));
	g_names[g_nusers] = xstrdup(line);
	g_passwords[g_nusers++] = xstrdup(colon + 1);
}

void
sink_auth_init(void)
{
	char line[1024];
	unsigned lineno = 0;
	FILE *fp;

	if (sink_opt.auth == NULL)
		return;
	if (strcmp(sink_opt.auth, "any") == 0) {
		g_any = true;
		return;
	}
	if ((fp = fopen(sink_opt.auth, "r")) == NULL) {
		fprintf(stderr, "mta-sink: --auth %s: %s\n", sink_opt.auth,
		    strerror(errno));
		exit(2);
	}
	while (fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\r\n")] = '\0';
		lineno++;
		if (line[0] == '\0' || line[0] == '#')
			continue;
		users_add(line, sink_opt.auth, lineno);
	}
	fclose(fp);
}

void
sink_auth_fini(void)
{
	for (size_t i = 0; i < g_nusers; i++) {
		free(g_names[i]);
		free(g_passwords[i]);
	}
	free(g_names);
	free(g_passwords);
}

bool
sink_auth_check(const char *name, const char *password)
{
	if (g_any)
		return true;
	for (size_t i = 0; i < g_nusers; i++)
		if (strcmp(g_names[i], name) == 0)
			return strcmp(g_passwords[i], password) == 0;
	return false;
}
