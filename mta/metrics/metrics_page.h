/* SPDX-License-Identifier: ISC */
/*
 * metrics_page.h - the whole /metrics page: every family, from the sums
 * of the per-thread blocks and the scheduler's latest snapshot
 * (base/metrics.h). Any thread; the metrics thread calls it per scrape.
 */
#ifndef MTA_METRICS_PAGE_H
#define MTA_METRICS_PAGE_H

#include "base/buf.h"
#include "base/compat.h"

/* Append the page to out. 0, or -ENOBUFS when out's cap was reached
 * (what fits is there; the caller answers 500). */
int metrics_page(struct buf *out) MTA_MUST_CHECK;

#endif
