/* SPDX-License-Identifier: ISC */
/*
 * cmd_top.c - `mta top`: a refreshing view of the running relay, read
 * through its Prometheus endpoint ([metrics] listen), never through the
 * queue: a scrape costs the relay one short HTTP answer, so watching it
 * does not slow it down. Rates are differences between two scrapes over
 * the time between them (top_view.c). The command's own thread.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cmd.h"
#include "cli/prom.h"
#include "cli/top_http.h"
#include "cli/top_view.h"
#include "config/config.h"

#define TOP_PORT       9725 /* [metrics] listen's default port */
#define TOP_TIMEOUT_MS 5000 /* one scrape, connect to last byte */
#define TOP_ROWS       20   /* destinations when not on a terminal */
#define TOP_HEAD_LINES 9    /* lines above the destinations */

struct top_opts {
	double interval; /* seconds */
	long frames;     /* 0: until interrupted */
	const char *listen;
};

static int
top_usage(void)
{
	fprintf(stderr, "usage: mta top [--once | -n N] [--interval SECONDS] "
	                "[--listen ADDR]\n");
	return 2;
}

static bool
top_options(int argc, char **argv, struct top_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end;

		if (strcmp(a, "--once") == 0)
			o->frames = 1;
		else if (strcmp(a, "-n") == 0 && i + 1 < argc) {
			errno = 0;
			o->frames = strtol(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || o->frames < 1)
				return false;
		} else if (strcmp(a, "--interval") == 0 && i + 1 < argc) {
			o->interval = strtod(argv[++i], &end);
			if (*end || end == argv[i] || !(o->interval >= 0.1) ||
			    o->interval > 3600)
				return false;
		} else if (strcmp(a, "--listen") == 0 && i + 1 < argc)
			o->listen = argv[++i];
		else
			return false;
	}
	return true;
}

/*
 * The metrics address: --listen, else the first [metrics] listen of the
 * configuration. 0, 2 when metrics are off (said on stderr), 1 on
 * another error.
 */
static int
top_address(
    const char *config_path, const struct top_opts *o, struct config_addr *out)
{
	struct config *cfg;
	char err[CONFIG_PATH_MAX + 256];

	if (o->listen != NULL) {
		if (config_parse_addr(o->listen, TOP_PORT, out) == 0)
			return 0;
		fprintf(stderr, "mta top: --listen %s: not an address\n",
		    o->listen);
		return 2;
	}
	if (config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mta: %s\n", err);
		return 1;
	}
	if (cfg->metrics.nlisten > 0) {
		*out = cfg->metrics.listen[0];
		config_unref(cfg);
		return 0;
	}
	config_unref(cfg);
	fprintf(stderr,
	    "mta top: metrics are off in %s: set [metrics] listen = "
	    "127.0.0.1:%d and restart the relay\n",
	    config_path, TOP_PORT);
	return 2;
}

/* One scrape into *set (emptied first); 0 or -errno after a line. */
static int
top_scrape(const struct config_addr *a, struct prom_set *set)
{
	char err[512], *body;
	size_t len, line = 0;
	int r;

	prom_set_fini(set);
	r = top_http_get(
	    a, "/metrics", TOP_TIMEOUT_MS, &body, &len, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "mta top: %s\n", err);
		return r;
	}
	r = prom_parse(body, len, set, &line);
	free(body);
	if (r < 0)
		fprintf(stderr,
		    "mta top: %s: line %zu is not Prometheus text\n", a->text,
		    line);
	return r;
}

static void
top_sleep(double sec)
{
	struct timespec ts = {(time_t)sec, (long)((sec - floor(sec)) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Rows of destinations that fit the terminal (TOP_ROWS off one). */
static size_t
top_rows(bool tty)
{
	struct winsize ws;

	if (!tty || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0)
		return TOP_ROWS;
	return ws.ws_row > TOP_HEAD_LINES + 3 ? ws.ws_row - TOP_HEAD_LINES : 3;
}

/* Scrape, wait, scrape, show; frames times (0: until interrupted). */
static int
top_loop(const struct config_addr *a, const struct top_opts *o)
{
	struct prom_set sets[2] = {{0}};
	struct top_view *v = top_view_new(a->text);
	bool tty = isatty(STDOUT_FILENO);
	uint64_t t0 = clock_mono_ms(), t1;
	int r, cur = 1;

	r = top_scrape(a, &sets[0]);
	for (long i = 0; r == 0 && (o->frames == 0 || i < o->frames); i++) {
		/* the first frame soon, then one per interval */
		top_sleep(i == 0 && o->interval > 1 ? 1 : o->interval);
		if ((r = top_scrape(a, &sets[cur])) < 0)
			break;
		t1 = clock_mono_ms();
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (i > 0)
			fputc('\n', stdout);
		top_view_render(v, stdout, &sets[!cur], &sets[cur],
		    (double)(t1 - t0) / 1000, top_rows(tty));
		fflush(stdout);
		t0 = t1;
		cur = !cur;
	}
	prom_set_fini(&sets[0]);
	prom_set_fini(&sets[1]);
	top_view_free(v);
	return r == 0 ? 0 : 1;
}

int
cmd_top(const char *config_path, int argc, char **argv)
{
	struct top_opts o = {.interval = 2};
	struct config_addr a;
	int r;

	if (!top_options(argc, argv, &o))
		return top_usage();
	if ((r = top_address(config_path, &o, &a)) != 0)
		return r;
	return top_loop(&a, &o);
}
