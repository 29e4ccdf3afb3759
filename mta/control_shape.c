/* SPDX-License-Identifier: ISC */
/*
 * control_shape.c - the control socket's delivery-shaping requests:
 *   limits            every [limit], its key(s), use and whether it binds,
 *                     then suspended destinations and cut rates;
 *   suspended         only the suspended destinations and cut rates;
 *   resume DOMAIN     lift DOMAIN's suspension (and rate cut).
 * The report is the scheduler's last published snapshot (at most a
 * second old), so answering never waits on its loop. The control
 * thread.
 */
#include "control.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "deliver/deliver.h"

/* Room kept for the closing line of an answer. */
#define SHAPE_DONE_ROOM 64

/* The lines of report that select keeps (NULL: all), into out. */
static void
shape_lines(struct buf *out, const char *report, bool only_suspended)
{
	size_t room =
	    out->max > SHAPE_DONE_ROOM ? out->max - SHAPE_DONE_ROOM : 0;

	for (const char *p = report; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if ((!only_suspended || strncmp(p, "suspended ", 10) == 0 ||
		        strncmp(p, "rate ", 5) == 0) &&
		    buf_avail(out) + n <= room && buf_append(out, p, n) != 0)
			break;
		p += n;
	}
}

/* A domain as the scheduler keys it: lowercase, plain. */
static bool
shape_domain(char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_' &&
		    ch != '[' && ch != ']' && ch != ':')
			return false;
		s[i] = (char)tolower(ch);
	}
	return true;
}

bool
control_shape(struct deliver *d, const char *verb, char **save, struct buf *out)
{
	char *arg, *report;
	int rc = 0;

	if (strcmp(verb, "limits") == 0 || strcmp(verb, "suspended") == 0) {
		report = deliver_shape_report(d);
		shape_lines(out, report, verb[0] == 's');
		free(report);
		rc = buf_appendf(out, "done ok=1 error=0\n");
	} else if (strcmp(verb, "resume") == 0) {
		arg = strtok_r(NULL, " \t\r", save);
		if (arg == NULL || strtok_r(NULL, " \t\r", save) != NULL ||
		    !shape_domain(arg)) {
			rc = buf_appendf(out, "error: resume takes one "
			                      "destination domain\n"
			                      "done ok=0 error=1\n");
		} else {
			deliver_shape_resume(d, arg);
			log_event(
			    "event=operator action=resume domain=%s", arg);
			rc = buf_appendf(
			    out, "ok resume %s\ndone ok=1 error=0\n", arg);
		}
	} else {
		return false;
	}
	if (rc != 0)
		log_warnx("control: answer too long; truncated");
	return true;
}
