/* SPDX-License-Identifier: ISC */
/*
 * dest_site.c - the MX host set of a destination as one key (see
 * dest_site.h). Pure; any thread (the delivery workers).
 */
#include "deliver/dest_site.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool
dest_site_key(const struct dns_target *t, size_t n, char *out, size_t len)
{
	char names[DNS_MAX_TARGETS][DNS_NAME_MAX];
	const char *v[DNS_MAX_TARGETS];
	size_t k = 0, used = 0;

	out[0] = '\0';
	if (n > DNS_MAX_TARGETS)
		n = DNS_MAX_TARGETS;
	for (size_t i = 0; i < n; i++) {
		size_t m = strnlen(t[i].name, DNS_NAME_MAX - 1);

		for (size_t j = 0; j < m; j++)
			names[k][j] =
			    (char)tolower((unsigned char)t[i].name[j]);
		if (m > 0 && names[k][m - 1] == '.')
			m--;
		names[k][m] = '\0';
		if (m > 0)
			v[k] = names[k], k++;
	}
	if (k == 0)
		return false;
	qsort(v, k, sizeof(v[0]), by_name);
	for (size_t i = 0; i < k; i++) {
		size_t m = strlen(v[i]);

		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		if (used + m + 2 > len) {
			out[0] = '\0';
			return false;
		}
		if (used > 0)
			out[used++] = ',';
		memcpy(out + used, v[i], m);
		used += m;
		out[used] = '\0';
	}
	return true;
}
