/* SPDX-License-Identifier: ISC */
/*
 * config_value.c - a value into the field a row of the key table names:
 * config_key_set parses the text with the parser of the row's type
 * (config_parse.c), checks it against the row's bounds, stores it in
 * struct config (or struct config_route) and says why when it cannot;
 * config_key_free releases list fields. The loader calls it for file
 * values and defaults alike. Runs on the loading thread; touches only
 * the struct it is given.
 */
#include "config/config_keys.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/compat.h"
#include "base/str.h"
#include "base/xalloc.h"

static void *
field(const struct config_key *k, void *base)
{
	return (char *)base + k->off;
}

static void
why_value(char *why, size_t whylen, const char *what, const char *value)
{
	/* Long values are cut: the line number already finds them. */
	snprintf(why, whylen, "%s \"%.64s%s\"", what, value,
	    strlen(value) > 64 ? "..." : "");
}

static void
why_range(
    const struct config_key *k, char *why, size_t whylen, const char *value)
{
	char lo[CONFIG_FMT_MAX], hi[CONFIG_FMT_MAX], v[96];

	switch (k->type) {
	case CONFIG_T_SIZE:
		config_format_size(k->min, lo, sizeof(lo));
		config_format_size(k->max, hi, sizeof(hi));
		break;
	case CONFIG_T_DURATION:
	case CONFIG_T_DURATIONS:
		config_format_duration(k->min, lo, sizeof(lo));
		config_format_duration(k->max, hi, sizeof(hi));
		break;
	default:
		snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
		snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
		break;
	}
	why_value(v, sizeof(v), "out of range", value);
	snprintf(why, whylen, "%s (%s..%s)", v, lo, hi);
}

/* Parse one number-like value of k's type and check its bounds. */
static int
number_parse(const struct config_key *k, const char *value, uint64_t *out,
    char *why, size_t whylen)
{
	const char *what;
	int rc;

	switch (k->type) {
	case CONFIG_T_SIZE:
		what = "invalid size";
		rc = config_parse_size(value, out);
		break;
	case CONFIG_T_DURATION:
	case CONFIG_T_DURATIONS:
		what = "invalid duration";
		rc = config_parse_duration(value, out);
		break;
	default:
		what = "invalid number";
		rc = config_parse_uint(value, out);
		break;
	}
	if (rc == -EINVAL) {
		why_value(why, whylen, what, value);
		return -1;
	}
	if (rc < 0 || *out < k->min || *out > k->max) {
		why_range(k, why, whylen, value);
		return -1;
	}
	return 0;
}

static int
enum_parse(const struct config_key *k, const char *value, int *out, char *why,
    size_t whylen)
{
	char v[96], list[128] = "";
	int i;

	for (i = 0; k->names[i] != NULL; i++)
		if (strcasecmp(value, k->names[i]) == 0) {
			*out = i;
			return 0;
		}
	for (i = 0; k->names[i] != NULL; i++) {
		size_t used = strlen(list);

		snprintf(list + used, sizeof(list) - used, "%s%s",
		    i ? ", " : "", k->names[i]);
	}
	why_value(v, sizeof(v), "invalid value", value);
	snprintf(why, whylen, "%s (%s)", v, list);
	return -1;
}

static int
string_set(const struct config_key *k, void *base, const char *value, char *why,
    size_t whylen)
{
	const char *p;

	if (*value == '\0' && (k->flags & CONFIG_F_REQUIRED)) {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	if (strlen(value) >= k->size) {
		snprintf(why, whylen, "too long (max %zu bytes)", k->size - 1);
		return -1;
	}
	if (k->type == CONFIG_T_HOST && *value != '\0' &&
	    !config_valid_hostname(value)) {
		why_value(why, whylen, "invalid host name", value);
		return -1;
	}
	for (p = value; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p)) {
			why_value(why, whylen, "control character in", value);
			return -1;
		}
	str_copy(field(k, base), k->size, value);
	return 0;
}

/* Words: a continuation line adds its words after a space. */
static int
words_set(const struct config_key *k, void *base, const char *value,
    bool append, char *why, size_t whylen)
{
	char *joined;
	int res;

	if (!append || *(char *)field(k, base) == '\0')
		return string_set(k, base, value, why, whylen);
	joined = xmalloc(k->size + strlen(value) + 2);
	snprintf(joined, k->size + strlen(value) + 2, "%s %s",
	    (char *)field(k, base), value);
	res = string_set(k, base, joined, why, whylen);
	free(joined);
	return res;
}

static size_t
item_size(const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_T_DURATIONS:
		return sizeof(uint64_t);
	case CONFIG_T_ADDRS:
		return sizeof(struct config_addr);
	case CONFIG_T_NETS:
		return sizeof(struct config_net);
	default:
		MTA_ASSERT(!"not a list");
	}
}

static int
item_parse(const struct config_key *k, const char *item, void *out, char *why,
    size_t whylen)
{
	struct config_net lax;
	char v[96];

	switch (k->type) {
	case CONFIG_T_DURATIONS:
		return number_parse(k, item, out, why, whylen);
	case CONFIG_T_ADDRS:
		if (config_parse_addr(item, k->port, out) == 0)
			return 0;
		why_value(why, whylen, "invalid address", item);
		return -1;
	case CONFIG_T_NETS:
		if (config_parse_net(item, out) == 0)
			return 0;
		why_value(v, sizeof(v), "invalid network", item);
		if (config_parse_net_lax(item, &lax) == 0) {
			char net[INET6_ADDRSTRLEN + 8];

			snprintf(why, whylen, "%s (host bits set; use %s)", v,
			    config_format_net(&lax, net, sizeof(net)));
		} else
			snprintf(why, whylen, "%s", v);
		return -1;
	default:
		MTA_ASSERT(!"not a list");
	}
}

static bool
item_dup(
    const struct config_key *k, const void *items, size_t n, const void *item)
{
	const struct config_addr *a = items, *b = item;
	size_t i;

	/* Binding one address twice fails only at startup; say it now. */
	if (k->type != CONFIG_T_ADDRS)
		return false;
	for (i = 0; i < n; i++)
		if (strcmp(a[i].text, b->text) == 0)
			return true;
	return false;
}

/*
 * A comma-separated list; empty items are skipped so a continued line may
 * end with a comma. Builds a new array and swaps it in only when every
 * item parsed, so a failed set leaves the old list intact.
 */
static int
list_set(const struct config_key *k, void *base, const char *value, bool append,
    char *why, size_t whylen)
{
	size_t isz = item_size(k), n = 0, cap, oldn;
	char *items, *copy, *p, *item, *save = NULL;
	void *old;

	memcpy(&old, field(k, base), sizeof(old));
	memcpy(&oldn, (char *)base + k->count_off, sizeof(oldn));
	cap = CONFIG_LIST_MAX;
	items = xcalloc(cap, isz);
	if (append && oldn > 0) {
		memcpy(items, old, oldn * isz);
		n = oldn;
	}
	copy = xstrdup(value);
	for (p = copy; (item = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		char *end;

		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*item == '\0')
			continue;
		if (n == cap) {
			snprintf(why, whylen, "too many items (max %d)",
			    CONFIG_LIST_MAX);
			goto fail;
		}
		if (item_parse(k, item, items + n * isz, why, whylen) < 0)
			goto fail;
		if (item_dup(k, items, n, items + n * isz)) {
			why_value(why, whylen, "duplicate address", item);
			goto fail;
		}
		n++;
	}
	if (n == 0 && (k->flags & CONFIG_F_REQUIRED)) {
		snprintf(why, whylen, "must not be empty");
		goto fail;
	}
	free(copy);
	free(old);
	if (n == 0) {
		free(items);
		items = NULL;
	}
	memcpy(field(k, base), &items, sizeof(items));
	memcpy((char *)base + k->count_off, &n, sizeof(n));
	return 0;
fail:
	free(copy);
	free(items);
	return -1;
}

int
config_key_set(const struct config_key *k, void *base, const char *value,
    bool append, char *why, size_t whylen)
{
	uint64_t v;
	bool b;
	int e;

	if (append && k->type != CONFIG_T_DURATIONS &&
	    k->type != CONFIG_T_ADDRS && k->type != CONFIG_T_NETS &&
	    k->type != CONFIG_T_WORDS) {
		snprintf(why, whylen,
		    "unexpected indented line (only lists "
		    "may continue on indented lines)");
		return -1;
	}
	switch (k->type) {
	case CONFIG_T_STRING:
	case CONFIG_T_PATH:
	case CONFIG_T_HOST:
		return string_set(k, base, value, why, whylen);
	case CONFIG_T_WORDS:
		return words_set(k, base, value, append, why, whylen);
	case CONFIG_T_BOOL:
		if (strcasecmp(value, "yes") == 0)
			b = true;
		else if (strcasecmp(value, "no") == 0)
			b = false;
		else {
			char v2[96];

			why_value(v2, sizeof(v2), "invalid boolean", value);
			snprintf(why, whylen, "%s (yes or no)", v2);
			return -1;
		}
		memcpy(field(k, base), &b, sizeof(b));
		return 0;
	case CONFIG_T_UINT:
		if (number_parse(k, value, &v, why, whylen) < 0)
			return -1;
		if (k->size == sizeof(uint16_t)) {
			uint16_t v16 = (uint16_t)v;

			MTA_ASSERT(k->max <= UINT16_MAX);
			memcpy(field(k, base), &v16, sizeof(v16));
		} else {
			unsigned u = (unsigned)v;

			MTA_ASSERT(k->size == sizeof(unsigned) &&
			           k->max <= UINT32_MAX);
			memcpy(field(k, base), &u, sizeof(u));
		}
		return 0;
	case CONFIG_T_SIZE:
	case CONFIG_T_DURATION:
		if (number_parse(k, value, &v, why, whylen) < 0)
			return -1;
		memcpy(field(k, base), &v, sizeof(v));
		return 0;
	case CONFIG_T_DURATIONS:
	case CONFIG_T_ADDRS:
	case CONFIG_T_NETS:
		return list_set(k, base, value, append, why, whylen);
	case CONFIG_T_ENUM:
	case CONFIG_T_ROUTE_TLS:
		if (enum_parse(k, value, &e, why, whylen) < 0)
			return -1;
		memcpy(field(k, base), &e, sizeof(e));
		if (k->type == CONFIG_T_ROUTE_TLS)
			((struct config_route *)base)->tls_set = true;
		return 0;
	case CONFIG_T_ROUTE_HOST:
		if (config_parse_route_host(value, base) < 0) {
			why_value(why, whylen, "invalid host", value);
			return -1;
		}
		return 0;
	}
	MTA_ASSERT(!"unknown key type");
}

void
config_key_free(const struct config_key *k, void *base)
{
	size_t zero = 0;
	void *p;

	if (k->type != CONFIG_T_DURATIONS && k->type != CONFIG_T_ADDRS &&
	    k->type != CONFIG_T_NETS)
		return;
	memcpy(&p, field(k, base), sizeof(p));
	free(p);
	p = NULL;
	memcpy(field(k, base), &p, sizeof(p));
	memcpy((char *)base + k->count_off, &zero, sizeof(zero));
}
