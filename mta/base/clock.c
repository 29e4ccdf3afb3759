/* SPDX-License-Identifier: ISC */
#include "clock.h"

#include <time.h>

#include "str.h"

static uint64_t
clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
clock_mono_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

uint64_t
clock_mono_us(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000u;
}

uint64_t
clock_wall_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000u;
}

uint64_t
clock_wall_us(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000u;
}

void
clock_rfc5322(uint64_t ms, char *dst, size_t len)
{
	static const char days[][4] = {
	    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    !str_fmt(dst, len, "%s, %d %s %d %02d:%02d:%02d +0000",
	        days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec))
		str_copy(dst, len, "Thu, 1 Jan 1970 00:00:00 +0000");
}
