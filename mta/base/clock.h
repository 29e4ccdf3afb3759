/* SPDX-License-Identifier: ISC */
/*
 * clock.h - time. Deadlines use the monotonic clock only; wall time is for
 * logs, headers and queue records.
 */
#ifndef MTA_BASE_CLOCK_H
#define MTA_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5322 3.3 date of wall ms, in UTC so no time zone data is read per
 * message: "Sun, 22 Nov 2026 10:00:00 +0000" into dst (>= 32 bytes;
 * truncated to the epoch's date when it does not fit). Pure. */
void clock_rfc5322(uint64_t ms, char *dst, size_t len);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t clock_mono_ms(void);
/* CLOCK_MONOTONIC in microseconds (for latencies). */
uint64_t clock_mono_us(void);
/* CLOCK_REALTIME in milliseconds since the epoch. */
uint64_t clock_wall_ms(void);
/* CLOCK_REALTIME in microseconds since the epoch. */
uint64_t clock_wall_us(void);

#endif
