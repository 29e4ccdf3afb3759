/* SPDX-License-Identifier: ISC */
/*
 * config_dump.c - print a struct config back as an INI file.
 *
 * DESIGN
 * The output is the input language: `mta check-config > new.conf` must
 * load again and give the same struct (the unit test round-trips it). So
 * sizes and durations are printed in the largest exact unit ("35M",
 * "5m"), lists that would pass inih's 200-byte line wrap onto indented
 * continuation lines, and route keys that were not set are left out
 * rather than printed as a value the loader would then treat as set.
 * Values resolved at load (hostname, threads, workers) print as resolved:
 * this is the effective configuration. Read-only on the struct; any
 * thread.
 */
#include "config/config.h"

#include <stdio.h>
#include <string.h>

#include "base/compat.h"
#include "config/config_keys.h"

#define WRAP 72 /* columns before a list continues on the next line */

static const void *
field(const struct config_key *k, const void *base)
{
	return (const char *)base + k->off;
}

/* Items of a list as text, wrapped: "a, b," NL TAB "c". */
static void
dump_list(const struct config_key *k, const void *base, FILE *fp)
{
	const char *items;
	size_t n, i, col;
	char buf[96];

	memcpy(&items, field(k, base), sizeof(items));
	memcpy(&n, (const char *)base + k->count_off, sizeof(n));
	col = strlen(k->name) + 2;
	for (i = 0; i < n; i++) {
		const char *text = buf;

		switch (k->type) {
		case CONFIG_T_DURATIONS: {
			uint64_t v;

			memcpy(&v, items + i * sizeof(v), sizeof(v));
			config_format_duration(v, buf, sizeof(buf));
			break;
		}
		case CONFIG_T_ADDRS:
			text =
			    ((const struct config_addr *)(const void *)items)[i]
			        .text;
			break;
		case CONFIG_T_NETS:
			config_format_net(
			    &((const struct config_net *)(const void *)
			            items)[i],
			    buf, sizeof(buf));
			break;
		default:
			MTA_ASSERT(!"not a list");
		}
		if (i > 0 && col + strlen(text) + 2 > WRAP) {
			fprintf(fp, ",\n\t%s", text);
			col = 8 + strlen(text);
		} else {
			fprintf(fp, "%s%s", i > 0 ? ", " : " ", text);
			col += strlen(text) + 2;
		}
	}
}

/* Words, wrapped onto indented continuation lines. */
static void
dump_words(const char *s, FILE *fp)
{
	size_t col = 16, n;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		if ((n = strcspn(s, " ")) == 0)
			break;
		if (col + n + 1 > WRAP) {
			fputs("\n\t", fp);
			col = 8;
		} else {
			fputc(' ', fp);
			col++;
		}
		fwrite(s, 1, n, fp);
		col += n;
		s += n;
	}
}

void
config_key_dump(const struct config_key *k, const void *base, FILE *fp)
{
	const struct config_route *r = base;
	char buf[CONFIG_FMT_MAX];
	const char *s;
	uint64_t v;
	unsigned u;
	uint16_t v16;
	bool b;
	int e;

	fprintf(fp, "%s =", k->name);
	switch (k->type) {
	case CONFIG_T_WORDS:
		dump_words(field(k, base), fp);
		break;
	case CONFIG_T_STRING:
	case CONFIG_T_PATH:
	case CONFIG_T_HOST:
		s = field(k, base);
		if (*s != '\0')
			fprintf(fp, " %s", s);
		break;
	case CONFIG_T_BOOL:
		memcpy(&b, field(k, base), sizeof(b));
		fprintf(fp, " %s", b ? "yes" : "no");
		break;
	case CONFIG_T_UINT:
		if (k->size == sizeof(uint16_t)) {
			memcpy(&v16, field(k, base), sizeof(v16));
			u = v16;
		} else
			memcpy(&u, field(k, base), sizeof(u));
		fprintf(fp, " %u", u);
		break;
	case CONFIG_T_SIZE:
		memcpy(&v, field(k, base), sizeof(v));
		fprintf(fp, " %s", config_format_size(v, buf, sizeof(buf)));
		break;
	case CONFIG_T_DURATION:
		memcpy(&v, field(k, base), sizeof(v));
		fprintf(fp, " %s", config_format_duration(v, buf, sizeof(buf)));
		break;
	case CONFIG_T_DURATIONS:
	case CONFIG_T_ADDRS:
	case CONFIG_T_NETS:
		dump_list(k, base, fp);
		break;
	case CONFIG_T_ENUM:
	case CONFIG_T_ROUTE_TLS:
		memcpy(&e, field(k, base), sizeof(e));
		fprintf(fp, " %s", k->names[e]);
		break;
	case CONFIG_T_ROUTE_HOST:
		fprintf(fp, r->literal ? " [%s]" : " %s", r->host);
		if (r->port != 0)
			fprintf(fp, ":%u", r->port);
		break;
	}
	fputc('\n', fp);
}

void
config_key_dump_redacted(const struct config_key *k, const void *base, FILE *fp)
{
	/* only a value that is set: "" says there is none */
	if ((k->flags & CONFIG_F_SECRET) && k->type == CONFIG_T_STRING &&
	    *(const char *)field(k, base) != '\0')
		fprintf(fp, "%s = ***\n", k->name);
	else
		config_key_dump(k, base, fp);
}

static void
dump_route(const struct config_route *r, bool redact, FILE *fp)
{
	size_t i;

	fprintf(fp, "\n[route %s]\n", r->domain);
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];

		if (k->section != CONFIG_SECT_ROUTE)
			continue;
		if (k->type == CONFIG_T_ROUTE_TLS && !r->tls_set)
			continue;
		if (k->type == CONFIG_T_STRING &&
		    *(const char *)field(k, r) == '\0')
			continue;
		if (redact)
			config_key_dump_redacted(k, r, fp);
		else
			config_key_dump(k, r, fp);
	}
}

static void
dump_dkim(const struct config_dkim *d, FILE *fp)
{
	fprintf(fp, "\n[dkim %s]\n", d->domain);
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].section == CONFIG_SECT_DKIM)
			config_key_dump(&config_keys[i], d, fp);
}

static void
dump_limit(const struct config_limit *m, FILE *fp)
{
	fprintf(fp, "\n[limit %s]\n", m->name);
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].section == CONFIG_SECT_LIMIT)
			config_key_dump(&config_keys[i], m, fp);
}

static void
dump(const struct config *c, bool redact, FILE *fp)
{
	enum config_section s;
	size_t i;

	fprintf(fp, "# mta effective configuration%s%s\n",
	    c->file[0] != '\0' ? " from " : "", c->file);
	for (s = CONFIG_SECT_SERVER; s < CONFIG_SECT_ROUTE; s++) {
		fprintf(fp, "\n[%s]\n", config_section_name(s));
		for (i = 0; i < config_nkeys; i++) {
			if (config_keys[i].section != s)
				continue;
			if (redact)
				config_key_dump_redacted(
				    &config_keys[i], c, fp);
			else
				config_key_dump(&config_keys[i], c, fp);
		}
	}
	for (i = 0; i < c->nroutes; i++)
		dump_route(&c->routes[i], redact, fp);
	for (i = 0; i < c->ndkims; i++)
		dump_dkim(&c->dkims[i], fp);
	for (i = 0; i < c->nlimits; i++)
		dump_limit(&c->limits[i], fp);
}

void
config_dump(const struct config *c, FILE *fp)
{
	dump(c, false, fp);
}

void
config_dump_redacted(const struct config *c, FILE *fp)
{
	dump(c, true, fp);
}
