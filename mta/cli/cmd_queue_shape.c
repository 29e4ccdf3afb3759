/* SPDX-License-Identifier: ISC */
/*
 * cmd_queue_shape.c - `mta queue shape`: the queue by destination domain
 * and age, as Postfix's qshape. Reads the queue read-only at nice 19
 * (cmd_queue_open, as `list`), one short read transaction per batch of
 * records, and counts pending recipients into shape.c's table. Main
 * thread of the command, no threads.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "cli/cmd_queue.h"
#include "cli/shape.h"
#include "queue/queue.h"

enum shape_which { SHAPE_ALL, SHAPE_DEFERRED, SHAPE_HELD };

struct shape_scan {
	struct shape *s;
	enum shape_which which;
	uint64_t now;
};

/* Pending recipients of the messages selected: --held only held ones,
 * --deferred only tried ones of messages not held, --all every one. */
static int
shape_scan_one(void *arg, const struct queue_envelope *e)
{
	struct shape_scan *sc = arg;
	bool held = (e->flags & QUEUE_FLAG_HELD) != 0;
	uint64_t age = sc->now > e->received_ms ? sc->now - e->received_ms : 0;

	if ((sc->which == SHAPE_HELD && !held) ||
	    (sc->which == SHAPE_DEFERRED && held))
		return 0;
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		if (sc->which == SHAPE_DEFERRED && r->attempts == 0)
			continue;
		shape_add(sc->s, r->addr, age);
	}
	return 0;
}

static int
shape_usage(void)
{
	fprintf(stderr, "usage: mta queue shape [--all|--deferred|--held] "
	                "[--top N] [--buckets N|M1,M2,...]\n");
	return 2;
}

/* Options into *sc's choice, *b and *top; false after the usage line. */
static bool
shape_options(int argc, char **argv, enum shape_which *which,
    struct shape_buckets *b, size_t *top)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end;

		if (strcmp(a, "--all") == 0)
			*which = SHAPE_ALL;
		else if (strcmp(a, "--deferred") == 0)
			*which = SHAPE_DEFERRED;
		else if (strcmp(a, "--held") == 0)
			*which = SHAPE_HELD;
		else if (strcmp(a, "--top") == 0 && i + 1 < argc) {
			unsigned long v;

			errno = 0;
			v = strtoul(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || v > 100000)
				return false;
			*top = (size_t)v;
		} else if (strcmp(a, "--buckets") == 0 && i + 1 < argc) {
			if (shape_buckets_parse(argv[++i], b) < 0)
				return false;
		} else
			return false;
	}
	return true;
}

int
cmd_queue_shape(const char *config_path, int argc, char **argv)
{
	struct shape_scan sc = {.which = SHAPE_ALL};
	struct shape_buckets b;
	struct queue *q;
	size_t top = 20;
	int rc;

	shape_buckets_default(&b);
	if (!shape_options(argc, argv, &sc.which, &b, &top))
		return shape_usage();
	if ((q = cmd_queue_open(config_path, argv[0])) == NULL)
		return 1;
	sc.s = shape_new(&b);
	sc.now = clock_wall_ms();
	rc = queue_scan(q, 0, shape_scan_one, &sc);
	if (rc == 0)
		shape_print(sc.s, stdout, top);
	else
		fprintf(stderr, "mta: queue shape: %s\n", strerror(-rc));
	shape_free(sc.s);
	queue_close(q);
	return rc == 0 ? 0 : 1;
}
