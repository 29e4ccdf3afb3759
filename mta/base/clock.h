/* SPDX-License-Identifier: ISC */
/*
 * clock.h - time. Deadlines use the monotonic clock only; wall time is for
 * logs, headers and queue records.
 */
#ifndef MTA_BASE_CLOCK_H
#define MTA_BASE_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t clock_mono_ms(void);
/* CLOCK_REALTIME in milliseconds since the epoch. */
uint64_t clock_wall_ms(void);
/* CLOCK_REALTIME in microseconds since the epoch. */
uint64_t clock_wall_us(void);

#endif
