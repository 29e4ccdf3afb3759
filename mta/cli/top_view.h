/* SPDX-License-Identifier: ISC */
/*
 * top_view.h - one frame of `mta top`: rates, queue and commit latency
 * from two scrapes of the relay's metrics, and the destinations with the
 * most queued.
 *
 * Pure: two sample sets and the seconds between them in, text out on a
 * FILE. What must outlive a frame (the last error class seen for each
 * destination) is kept in struct top_view. One thread.
 */
#ifndef MTA_CLI_TOP_VIEW_H
#define MTA_CLI_TOP_VIEW_H

#include <stdio.h>

#include "cli/prom.h"

struct top_view;

/* source: what the header names (the scraped address); copied. */
struct top_view *top_view_new(const char *source);
void top_view_free(struct top_view *v);

/*
 * top_view_render - one frame on fp: the header, rates over dt seconds
 * between prev and cur (prev NULL or dt <= 0: rates print as "-"), the
 * queue, and at most rows destinations by queued recipients (most
 * first), each with its connections, delivery rate and last error class
 * (the deferral reason that grew most in the interval, else the last
 * one shown for it, else the most frequent; "suspended" when the relay
 * rests it). Names are escaped (control bytes as \xHH).
 */
void top_view_render(struct top_view *v, FILE *fp, const struct prom_set *prev,
    const struct prom_set *cur, double dt, size_t rows);

#endif
