/* SPDX-License-Identifier: ISC */
/*
 * config_format.c - values as the file writes them: sizes and durations
 * in their largest exact unit ("35M", "5m"), networks as "addr/prefix".
 * The inverse of the parsers (config_parse.c); used for range messages
 * (config_value.c), cross-key errors (config_load.c) and the dump.
 * Pure functions on caller buffers; any thread. Calls nothing else in
 * config/.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <stdio.h>

#include "base/compat.h"

#define KB (1024ULL)

char *
config_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "TGMK";
	unsigned i;

	for (i = 0; bytes != 0 && i < sizeof(units) - 1; i++) {
		uint64_t unit = KB << (10 * (3 - i));

		if (bytes % unit == 0) {
			snprintf(buf, len, "%llu%c",
			    (unsigned long long)(bytes / unit), units[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
	return buf;
}

char *
config_format_duration(uint64_t ms, char *buf, size_t len)
{
	static const struct {
		uint64_t ms;
		char unit;
	} units[] = {
	    {86400000, 'd'},
	    {3600000, 'h'},
	    {60000, 'm'},
	    {1000, 's'},
	};
	size_t i;

	if (ms == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	for (i = 0; i < MTA_ARRAY_LEN(units); i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%llu%c",
			    (unsigned long long)(ms / units[i].ms),
			    units[i].unit);
			return buf;
		}
	snprintf(buf, len, "%llums", (unsigned long long)ms);
	return buf;
}

char *
config_format_net(const struct config_net *net, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(net->family, net->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, net->prefix);
	return buf;
}
