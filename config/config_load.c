/* SPDX-License-Identifier: ISC */
/*
 * config_load.c - read an INI file into a struct config with inih.
 *
 * DESIGN
 * inih does the INI syntax; this file adds what inih lacks. Debian's
 * libinih is built without INI_HANDLER_LINENO, so we feed it through
 * ini_parse_stream() with our own fgets-like reader that counts physical
 * lines: inih calls the handler for a line before it asks for the next,
 * so the reader's count is the handler's line. The reader also sees
 * "[section]" lines, which the handler never does, so it is where
 * unknown sections, duplicate routes and empty routes are caught.
 * [dkim DOMAIN] sections work as [route DOMAIN] ones do, except that one
 * domain may have several (one per selector: dual signing).
 * The library is built with a fixed 200-byte line buffer (INI_MAX_LINE,
 * stack); the reader turns a longer line into an error instead of
 * letting inih split it into two lines. Long lists continue on indented
 * lines (inih's multi-line values).
 *
 * The first error stops the parse (the reader returns EOF) and becomes
 * the one line "FILE:LINE: key: reason". Keys are checked against the
 * table in config_keys.c; checks between keys run after the whole file.
 * Nothing here touches inih's global knobs, so loads on two threads do
 * not interfere. Relative paths in the file stay relative to the current
 * directory of the process, as written.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config_keys.h"

#define CPU_MAX 1024 /* the bound of threads and workers */

struct load {
	const char *path;
	FILE *fp;
	struct config *c;
	unsigned line; /* physical line last handed to inih */
	bool indented; /* that line starts with a blank */
	enum config_section sect;
	size_t route;             /* index in c->routes when sect is ROUTE */
	char prev_name[64];       /* last key in this section */
	unsigned bad_header;      /* first "[..." line without "]" */
	unsigned *key_line;       /* [config_nkeys]: line each key was set */
	unsigned *route_line;     /* [nroutes]: line of each [route] header */
	unsigned *route_key_line; /* [nroutes * config_nkeys] */
	size_t dkim;              /* index in c->dkims when sect is DKIM */
	unsigned *dkim_key_line;  /* [ndkims * config_nkeys] */
	size_t limit;             /* index in c->limits when sect is LIMIT */
	unsigned *limit_key_line; /* [nlimits * config_nkeys] */

	bool failed;       /* the first error is kept */
	unsigned err_line; /* 0: the error concerns the whole file */
	char err_key[96];  /* "" when the error names no key */
	char err_why[320];
};

static void load_fail(struct load *l, unsigned line, const char *key,
    const char *fmt, ...) MTA_PRINTF(4, 5);

static void
load_fail(struct load *l, unsigned line, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (l->failed)
		return;
	l->failed = true;
	l->err_line = line;
	str_copy(l->err_key, sizeof(l->err_key), key != NULL ? key : "");
	va_start(ap, fmt);
	vsnprintf(l->err_why, sizeof(l->err_why), fmt, ap);
	va_end(ap);
}

static size_t
key_index(const struct config_key *k)
{
	return (size_t)(k - config_keys);
}

static const struct config_key *
key_get(enum config_section s, const char *name)
{
	const struct config_key *k = config_key_find(s, name);

	MTA_ASSERT(k != NULL);
	return k;
}

static unsigned
route_key_line(struct load *l, size_t route, const char *name)
{
	return l->route_key_line[route * config_nkeys +
	                         key_index(key_get(CONFIG_SECT_ROUTE, name))];
}

/* The checks that need a whole [route] section: run when it ends. */
static void
load_route_end(struct load *l)
{
	const struct config_route *r;
	unsigned uline, pline;

	if (l->sect != CONFIG_SECT_ROUTE || l->failed)
		return;
	r = &l->c->routes[l->route];
	if (r->host[0] == '\0') {
		load_fail(l, l->route_line[l->route], "host",
		    "missing in [route %s]", r->domain);
		return;
	}
	uline = route_key_line(l, l->route, "username");
	pline = route_key_line(l, l->route, "password");
	if (r->username[0] != '\0' && r->password[0] == '\0')
		load_fail(l, uline, "username", "set without password");
	else if (r->password[0] != '\0' && r->username[0] == '\0')
		load_fail(l, pline, "password", "set without username");
}

static void
load_route_begin(struct load *l, const char *header, char *domain)
{
	struct config *c = l->c;
	size_t i, len = strlen(domain);

	str_lower(domain);
	if (len > 1 && domain[len - 1] == '.')
		domain[len - 1] = '\0';
	if (strcmp(domain, "*") != 0 && !config_valid_hostname(domain)) {
		load_fail(
		    l, l->line, header, "invalid domain \"%.64s\"", domain);
		return;
	}
	for (i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].domain, domain) == 0) {
			load_fail(l, l->line, header,
			    "duplicate route (first on line %u)",
			    l->route_line[i]);
			return;
		}
	c->routes =
	    xreallocarray(c->routes, c->nroutes + 1, sizeof(*c->routes));
	l->route_line = xreallocarray(
	    l->route_line, c->nroutes + 1, sizeof(*l->route_line));
	l->route_key_line = xreallocarray(l->route_key_line,
	    (c->nroutes + 1) * config_nkeys, sizeof(*l->route_key_line));
	memset(&c->routes[c->nroutes], 0, sizeof(*c->routes));
	memset(&l->route_key_line[c->nroutes * config_nkeys], 0,
	    config_nkeys * sizeof(*l->route_key_line));
	str_copy(c->routes[c->nroutes].domain, CONFIG_HOST_MAX, domain);
	l->route_line[c->nroutes] = l->line;
	l->route = c->nroutes++;
	l->sect = CONFIG_SECT_ROUTE;
}

/* The checks that need a whole [dkim] section: run when it ends. */
static void
load_dkim_end(struct load *l)
{
	struct config_dkim *d;
	const char *p;
	size_t i;

	if (l->sect != CONFIG_SECT_DKIM || l->failed)
		return;
	d = &l->c->dkims[l->dkim];
	d->key_line =
	    l->dkim_key_line[l->dkim * config_nkeys +
	                     key_index(key_get(CONFIG_SECT_DKIM, "key"))];
	if (d->selector[0] == '\0' || d->key[0] == '\0') {
		load_fail(l, d->line,
		    d->selector[0] == '\0' ? "selector" : "key",
		    "missing in [dkim %s]", d->domain);
		return;
	}
	for (p = d->selector; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.') {
			load_fail(l, d->line, "selector",
			    "invalid selector \"%.64s\"", d->selector);
			return;
		}
	for (i = 0; i < l->dkim; i++)
		if (strcmp(l->c->dkims[i].domain, d->domain) == 0 &&
		    strcmp(l->c->dkims[i].selector, d->selector) == 0) {
			load_fail(l, d->line, "selector",
			    "duplicate [dkim %s] selector %s (first on line "
			    "%u)",
			    d->domain, d->selector, l->c->dkims[i].line);
			return;
		}
}

static void
load_dkim_begin(struct load *l, const char *header, char *domain)
{
	struct config *c = l->c;
	struct config_dkim *d;
	size_t len = strlen(domain);

	str_lower(domain);
	if (len > 1 && domain[len - 1] == '.')
		domain[len - 1] = '\0';
	if (strcmp(domain, "*") != 0 && !config_valid_hostname(domain)) {
		load_fail(
		    l, l->line, header, "invalid domain \"%.64s\"", domain);
		return;
	}
	c->dkims = xreallocarray(c->dkims, c->ndkims + 1, sizeof(*c->dkims));
	l->dkim_key_line = xreallocarray(l->dkim_key_line,
	    (c->ndkims + 1) * config_nkeys, sizeof(*l->dkim_key_line));
	d = &c->dkims[c->ndkims];
	memset(d, 0, sizeof(*d));
	memset(&l->dkim_key_line[c->ndkims * config_nkeys], 0,
	    config_nkeys * sizeof(*l->dkim_key_line));
	str_copy(d->domain, CONFIG_HOST_MAX, domain);
	d->line = l->line;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		char why[320];

		if (k->section == CONFIG_SECT_DKIM && k->def != NULL &&
		    config_key_set(k, d, k->def, false, why, sizeof(why)) < 0)
			fatalx("config: default of %s: %s", k->name, why);
	}
	l->dkim = c->ndkims++;
	l->sect = CONFIG_SECT_DKIM;
}

/* The checks of a whole [limit] section, when it ends: key and rate are
 * there and parse (the error on their line). */
static void
load_limit_end(struct load *l)
{
	struct config_limit *m;
	const char *const names[] = {"key", "rate"};
	char why[256];

	if (l->sect != CONFIG_SECT_LIMIT || l->failed)
		return;
	m = &l->c->limits[l->limit];
	for (size_t i = 0; i < MTA_ARRAY_LEN(names); i++) {
		unsigned line =
		    l->limit_key_line[l->limit * config_nkeys +
		                      key_index(key_get(
		                          CONFIG_SECT_LIMIT, names[i]))];
		int res = i == 0 ? config_limit_parse_key(m, why, sizeof(why))
		                 : config_limit_parse_rate(m, why, sizeof(why));

		/* a connection cap alone needs no rate */
		if (line == 0 && i == 1 && m->max > 0)
			continue;
		if (line == 0)
			load_fail(l, m->line, names[i], "missing in [limit %s]",
			    m->name);
		else if (res < 0)
			load_fail(l, line, names[i], "%s", why);
		if (l->failed)
			return;
	}
	if (m->max > 0 && m->count != CONFIG_LIMIT_CONNECTIONS)
		load_fail(l,
		    l->limit_key_line[l->limit * config_nkeys +
		                      key_index(
		                          key_get(CONFIG_SECT_LIMIT, "max"))],
		    "max", "only for count = connections");
}

static void
load_limit_begin(struct load *l, const char *header, const char *name)
{
	struct config *c = l->c;
	struct config_limit *m;

	if (!config_limit_name_valid(name)) {
		load_fail(
		    l, l->line, header, "invalid limit name \"%.64s\"", name);
		return;
	}
	for (size_t i = 0; i < c->nlimits; i++)
		if (strcmp(c->limits[i].name, name) == 0) {
			load_fail(l, l->line, header,
			    "duplicate limit (first on line %u)",
			    c->limits[i].line);
			return;
		}
	c->limits = xreallocarray(c->limits, c->nlimits + 1, sizeof(*m));
	l->limit_key_line = xreallocarray(l->limit_key_line,
	    (c->nlimits + 1) * config_nkeys, sizeof(*l->limit_key_line));
	m = &c->limits[c->nlimits];
	memset(m, 0, sizeof(*m));
	memset(&l->limit_key_line[c->nlimits * config_nkeys], 0,
	    config_nkeys * sizeof(*l->limit_key_line));
	str_copy(m->name, sizeof(m->name), name);
	m->line = l->line;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		char why[320];

		if (k->section == CONFIG_SECT_LIMIT && k->def != NULL &&
		    config_key_set(k, m, k->def, false, why, sizeof(why)) < 0)
			fatalx("config: default of %s: %s", k->name, why);
	}
	l->limit = c->nlimits++;
	l->sect = CONFIG_SECT_LIMIT;
}

/* "[route DOMAIN]" or "[dkim DOMAIN]": the DOMAIN, or NULL. */
static char *
section_arg(char *name, const char *kind)
{
	size_t n = strlen(kind);
	char *d;

	if (strncmp(name, kind, n) != 0 || (name[n] != ' ' && name[n] != '\t'))
		return NULL;
	for (d = name + n; *d == ' ' || *d == '\t'; d++)
		;
	return d;
}

/* name: the text between the brackets, trimmed. */
static void
load_section(struct load *l, char *name)
{
	static const enum config_section plain[] = {CONFIG_SECT_SERVER,
	    CONFIG_SECT_TLS, CONFIG_SECT_AUTH, CONFIG_SECT_QUEUE,
	    CONFIG_SECT_DNS, CONFIG_SECT_DELIVERY, CONFIG_SECT_LOCAL,
	    CONFIG_SECT_LOG, CONFIG_SECT_METRICS, CONFIG_SECT_LIMITS,
	    CONFIG_SECT_TLSRPT};
	char header[96], *d;
	size_t i;

	load_route_end(l);
	load_dkim_end(l);
	load_limit_end(l);
	if (l->failed)
		return;
	l->prev_name[0] = '\0';
	snprintf(header, sizeof(header), "[%.80s]", name);
	for (i = 0; i < MTA_ARRAY_LEN(plain); i++)
		if (strcmp(name, config_section_name(plain[i])) == 0) {
			l->sect = plain[i];
			return;
		}
	if ((d = section_arg(name, "route")) != NULL) {
		load_route_begin(l, header, d);
		return;
	}
	if ((d = section_arg(name, "dkim")) != NULL) {
		load_dkim_begin(l, header, d);
		return;
	}
	if ((d = section_arg(name, "limit")) != NULL) {
		load_limit_begin(l, header, d);
		return;
	}
	if (strcmp(name, "limit") == 0)
		load_fail(l, l->line, header, "missing name ([limit NAME])");
	else if (strcmp(name, "route") == 0 || strcmp(name, "dkim") == 0)
		load_fail(l, l->line, header,
		    "missing domain ([%s DOMAIN] or [%s *])", name, name);
	else
		load_fail(l, l->line, header, "unknown section");
}

/*
 * Is p (after the indentation) "key =" or "[section" with a known section
 * name? No list item looks like either: "=" never occurs in one, and an
 * IPv6 literal is never a section name.
 */
static bool
load_is_key_or_header(const char *p)
{
	static const char *const sects[] = {"server", "tls", "auth", "queue",
	    "dns", "delivery", "route", "dkim", "limit"};
	size_t i, n;

	if (*p == '[') {
		for (p++; *p == ' ' || *p == '\t'; p++)
			;
		for (i = 0; i < MTA_ARRAY_LEN(sects); i++) {
			n = strlen(sects[i]);
			if (strncmp(p, sects[i], n) == 0 &&
			    (p[n] == ']' || p[n] == ' ' || p[n] == '\t'))
				return true;
		}
		return false;
	}
	if (!isalpha((unsigned char)*p) && *p != '_')
		return false;
	while (isalnum((unsigned char)*p) || *p == '_')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '=';
}

/*
 * Spot "[name]" the way inih does (after a UTF-8 BOM on line 1 and leading
 * blanks; "]" must come before any " ;" comment). A header inih will
 * reject is only remembered, for the wording of inih's error.
 */
static void
load_peek(struct load *l, char *line)
{
	char *p = line, *end, name[CONFIG_HOST_MAX + 16];
	size_t len;

	if (l->line == 1 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	l->indented = *p == ' ' || *p == '\t';
	while (*p == ' ' || *p == '\t')
		p++;
	/* inih reads any indented line after a key as a continuation of
	 * that key. Only list items continue; an indented key or section
	 * is a style, so hand it to inih without its indentation. */
	if (l->indented && l->prev_name[0] != '\0' &&
	    load_is_key_or_header(p)) {
		memmove(line, p, strlen(p) + 1);
		p = line;
		l->indented = false;
	}
	/* inih 55 keeps a " ; comment" on a continuation line (later
	 * releases strip it, as on any other line): cut it here. */
	if (l->indented && l->prev_name[0] != '\0') {
		for (end = p; *end != '\0'; end++)
			if (*end == ';' &&
			    (end[-1] == ' ' || end[-1] == '\t')) {
				*end = '\0';
				break;
			}
		return;
	}
	if (*p != '[')
		return;
	for (end = p + 1; *end != '\0' && *end != ']'; end++)
		if (*end == ';' && (end[-1] == ' ' || end[-1] == '\t'))
			break;
	if (*end != ']') {
		if (l->bad_header == 0)
			l->bad_header = l->line;
		return;
	}
	p++;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	len = (size_t)(end - p);
	if (len >= sizeof(name)) {
		load_fail(l, l->line, NULL, "section name too long");
		return;
	}
	memcpy(name, p, len);
	name[len] = '\0';
	load_section(l, name);
}

static char *
load_reader(char *str, int num, void *stream)
{
	struct load *l = stream;
	size_t len;
	int ch;

	if (l->failed)
		return NULL; /* inih sees EOF: the first error ends the parse */
	if (fgets(str, num, l->fp) == NULL) {
		if (ferror(l->fp))
			load_fail(
			    l, 0, NULL, "cannot read: %s", strerror(errno));
		return NULL;
	}
	l->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n') {
		/* Exactly full: fine if only the newline did not fit. */
		ch = getc(l->fp);
		if (ch != '\n' && ch != EOF) {
			load_fail(l, l->line, NULL,
			    "line too long (max %d bytes)", num - 2);
			return NULL;
		}
	}
	load_peek(l, str);
	return l->failed ? NULL : str;
}

static int
load_handler(
    void *user, const char *section, const char *name, const char *value)
{
	struct load *l = user;
	const struct config_key *k;
	unsigned *set;
	void *base;
	char why[320];
	bool cont;

	(void)section; /* ours, from load_peek, is trimmed and validated */
	if (l->failed)
		return 0;
	if (l->sect == CONFIG_SECT_NONE) {
		load_fail(l, l->line, name, "outside any [section]");
		return 0;
	}
	/* inih hands an indented line after a key to the handler again
	 * under that key's name: a continuation. */
	cont = l->indented && strcmp(name, l->prev_name) == 0;
	str_copy(l->prev_name, sizeof(l->prev_name), name);
	if ((k = config_key_find(l->sect, name)) == NULL) {
		if (l->sect == CONFIG_SECT_ROUTE)
			load_fail(l, l->line, name, "unknown key in [route %s]",
			    l->c->routes[l->route].domain);
		else if (l->sect == CONFIG_SECT_DKIM)
			load_fail(l, l->line, name, "unknown key in [dkim %s]",
			    l->c->dkims[l->dkim].domain);
		else if (l->sect == CONFIG_SECT_LIMIT)
			load_fail(l, l->line, name, "unknown key in [limit %s]",
			    l->c->limits[l->limit].name);
		else
			load_fail(l, l->line, name, "unknown key in [%s]",
			    config_section_name(l->sect));
		return 0;
	}
	if (l->sect == CONFIG_SECT_ROUTE) {
		set =
		    &l->route_key_line[l->route * config_nkeys + key_index(k)];
		base = &l->c->routes[l->route];
	} else if (l->sect == CONFIG_SECT_DKIM) {
		set = &l->dkim_key_line[l->dkim * config_nkeys + key_index(k)];
		base = &l->c->dkims[l->dkim];
	} else if (l->sect == CONFIG_SECT_LIMIT) {
		set =
		    &l->limit_key_line[l->limit * config_nkeys + key_index(k)];
		base = &l->c->limits[l->limit];
	} else {
		set = &l->key_line[key_index(k)];
		base = l->c;
	}
	if (!cont && *set != 0) {
		load_fail(
		    l, l->line, name, "duplicate key (first on line %u)", *set);
		return 0;
	}
	/* An indented "key = value" reads as a continuation of the key
	 * above; no list item contains "=", so name the real mistake. */
	if (cont && strchr(value, '=') != NULL) {
		load_fail(l, l->line, name,
		    "unexpected indented line (only "
		    "lists may continue on indented lines)");
		return 0;
	}
	if (config_key_set(k, base, value, cont, why, sizeof(why)) < 0) {
		load_fail(l, l->line, name, "%s", why);
		return 0;
	}
	if (!cont)
		*set = l->line;
	return 1;
}

static unsigned
load_key_line(const struct load *l, enum config_section s, const char *name)
{
	return l->key_line[key_index(key_get(s, name))];
}

/*
 * small must not exceed big. Blame whichever of the two keys was written
 * last in the file: that is the edit that broke the pair.
 */
static void
load_check_order(struct load *l, enum config_section s, const char *small,
    uint64_t smallv, const char *big, uint64_t bigv, const char *smallfmt,
    const char *bigfmt)
{
	unsigned sl = load_key_line(l, s, small), bl = load_key_line(l, s, big);

	if (smallv <= bigv)
		return;
	if (sl >= bl)
		load_fail(l, sl, small, "greater than %s (%s)", big, bigfmt);
	else
		load_fail(l, bl, big, "less than %s (%s)", small, smallfmt);
}

/* [limits]: backend = redis needs a usable redis address. */
static void
load_check_shared(struct load *l)
{
	struct config_shared *sh = &l->c->shared;
	char why[200];

	if (sh->backend != CONFIG_LIMITS_REDIS)
		return;
	if (sh->redis[0] == '\0')
		load_fail(l, load_key_line(l, CONFIG_SECT_LIMITS, "backend"),
		    "backend",
		    "redis needs [limits] redis = IP:PORT or a "
		    "socket path");
	else if (config_shared_parse_redis(sh, why, sizeof(why)) < 0)
		load_fail(l, load_key_line(l, CONFIG_SECT_LIMITS, "redis"),
		    "redis", "%s", why);
}

static void
load_check(struct load *l)
{
	const struct config *c = l->c;
	char a[CONFIG_FMT_MAX], b[CONFIG_FMT_MAX];
	unsigned line;

	if (c->server.nlisten == 0 && c->server.nlisten_tls == 0) {
		line = load_key_line(l, CONFIG_SECT_SERVER, "listen");
		load_fail(l, line, "listen",
		    "no address to listen on "
		    "(listen and listen_tls are both empty)");
	}
	if (c->server.nlisten_tls > 0 &&
	    (c->tls.certificate[0] == '\0' || c->tls.private_key[0] == '\0'))
		load_fail(l, load_key_line(l, CONFIG_SECT_SERVER, "listen_tls"),
		    "listen_tls", "needs [tls] certificate and private_key");
	if (c->tls.certificate[0] != '\0' && c->tls.private_key[0] == '\0')
		load_fail(l, load_key_line(l, CONFIG_SECT_TLS, "certificate"),
		    "certificate", "set without private_key");
	l->c->delivery.ca_file_line =
	    load_key_line(l, CONFIG_SECT_DELIVERY, "ca_file");
	l->c->delivery.ca_path_line =
	    load_key_line(l, CONFIG_SECT_DELIVERY, "ca_path");
	if (c->tls.private_key[0] != '\0' && c->tls.certificate[0] == '\0')
		load_fail(l, load_key_line(l, CONFIG_SECT_TLS, "private_key"),
		    "private_key", "set without certificate");

	load_check_order(l, CONFIG_SECT_SERVER, "max_message_size",
	    c->server.max_message_size, "max_inflight", c->server.max_inflight,
	    config_format_size(c->server.max_message_size, a, sizeof(a)),
	    config_format_size(c->server.max_inflight, b, sizeof(b)));
	snprintf(a, sizeof(a), "%u", c->server.max_connections_per_ip);
	snprintf(b, sizeof(b), "%u", c->server.max_connections);
	load_check_order(l, CONFIG_SECT_SERVER, "max_connections_per_ip",
	    c->server.max_connections_per_ip, "max_connections",
	    c->server.max_connections, a, b);
	snprintf(a, sizeof(a), "%u", c->delivery.max_connections_per_host);
	snprintf(b, sizeof(b), "%u", c->delivery.max_connections);
	load_check_order(l, CONFIG_SECT_DELIVERY, "max_connections_per_host",
	    c->delivery.max_connections_per_host, "max_connections",
	    c->delivery.max_connections, a, b);
	load_check_shared(l);
	if (c->dns.max_ttl != 0) /* 0 turns the cache off */
		load_check_order(l, CONFIG_SECT_DNS, "min_ttl", c->dns.min_ttl,
		    "max_ttl", c->dns.max_ttl,
		    config_format_duration(c->dns.min_ttl, a, sizeof(a)),
		    config_format_duration(c->dns.max_ttl, b, sizeof(b)));
}

/* CPUs this process may run on (cgroup/affinity aware), 1..CPU_MAX. */
static unsigned
cpu_count(void)
{
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > CPU_MAX ? CPU_MAX : (unsigned)n;
}

/* [local] paths left empty live in the queue directory. A path too long
 * for the field stays empty, and whoever binds or opens it says so. */
static void
config_resolve_local(struct config *c)
{
	if (c->local.socket[0] == '\0' &&
	    !str_fmt(c->local.socket, sizeof(c->local.socket), "%s/submit.sock",
	        c->queue.path))
		c->local.socket[0] = '\0';
	if (c->local.maildrop[0] == '\0' &&
	    !str_fmt(c->local.maildrop, sizeof(c->local.maildrop),
	        "%s/maildrop", c->queue.path))
		c->local.maildrop[0] = '\0';
}

/* The "0 = automatic" values, so every module sees a concrete number. */
static void
config_resolve(struct config *c)
{
	char host[CONFIG_HOST_MAX];

	size_t i;

	if (c->server.hostname[0] == '\0') {
		if (gethostname(host, sizeof(host)) != 0)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0'; /* it may truncate silently */
		if (!config_valid_hostname(host))
			str_copy(host, sizeof(host), "localhost");
		str_copy(c->server.hostname, sizeof(c->server.hostname), host);
	}
	/* Half the CPUs receive: the committer, the scheduler and the
	 * delivery workers need the rest (on 2 CPUs one receive thread
	 * took 10-20% more mail for 15% less CPU than two). */
	if (c->server.threads == 0)
		c->server.threads = cpu_count() > 1 ? cpu_count() / 2 : 1;
	if (c->delivery.workers == 0)
		c->delivery.workers = cpu_count();
	config_resolve_local(c);
	for (i = 0; i < c->nroutes; i++)
		if (!c->routes[i].tls_set)
			c->routes[i].tls = c->delivery.tls;
}

static struct config *
config_new(void)
{
	struct config *c = xcalloc(1, sizeof(*c));
	char why[320];
	size_t i;

	atomic_init(&c->refs, 1);
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];

		if (k->section == CONFIG_SECT_ROUTE ||
		    k->section == CONFIG_SECT_DKIM ||
		    k->section == CONFIG_SECT_LIMIT)
			continue;
		if (config_key_set(k, c, k->def, false, why, sizeof(why)) < 0)
			fatalx("config: default of %s: %s", k->name, why);
	}
	return c;
}

struct config *
config_defaults(void)
{
	struct config *c = config_new();

	config_resolve(c);
	return c;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct load l;
	int rc;

	*out = NULL;
	memset(&l, 0, sizeof(l));
	l.path = path;
	if ((l.fp = fopen(path, "re")) == NULL) {
		snprintf(
		    err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	l.c = config_new();
	l.key_line = xcalloc(config_nkeys, sizeof(*l.key_line));
	if (!str_copy(l.c->file, sizeof(l.c->file), path))
		load_fail(&l, 0, NULL, "path too long");

	rc = l.failed ? 0 : ini_parse_stream(load_reader, &l, load_handler, &l);
	/* inih marks a line it cannot parse and carries on; the earliest
	 * problem wins. On the line of our own error, the mark is ours. */
	if (rc > 0 && (!l.failed || (unsigned)rc < l.err_line)) {
		l.failed = false;
		load_fail(&l, (unsigned)rc, NULL, "syntax error: %s",
		    (unsigned)rc == l.bad_header
		        ? "section header without \"]\""
		        : "expected \"key = value\"");
	}
	load_route_end(&l);
	load_dkim_end(&l);
	load_limit_end(&l);
	if (!l.failed)
		load_check(&l);
	fclose(l.fp);
	free(l.key_line);
	free(l.route_line);
	free(l.route_key_line);
	free(l.dkim_key_line);
	free(l.limit_key_line);

	if (l.failed) {
		if (l.err_line > 0 && l.err_key[0] != '\0')
			snprintf(err, errlen, "%s:%u: %s: %s", path, l.err_line,
			    l.err_key, l.err_why);
		else if (l.err_line > 0)
			snprintf(err, errlen, "%s:%u: %s", path, l.err_line,
			    l.err_why);
		else if (l.err_key[0] != '\0')
			snprintf(err, errlen, "%s: %s: %s", path, l.err_key,
			    l.err_why);
		else
			snprintf(err, errlen, "%s: %s", path, l.err_why);
		config_unref(l.c);
		return -1;
	}
	config_resolve(l.c);
	*out = l.c;
	return 0;
}

const struct config_route *
config_route_find(
    const struct config_route *routes, size_t n, const char *domain)
{
	size_t i, len = strlen(domain);

	if (len > 0 && domain[len - 1] == '.')
		len--;
	for (i = 0; i < n; i++)
		if (strcmp(routes[i].domain, "*") != 0 &&
		    strlen(routes[i].domain) == len &&
		    strncasecmp(routes[i].domain, domain, len) == 0)
			return &routes[i];
	for (i = 0; i < n; i++)
		if (strcmp(routes[i].domain, "*") == 0)
			return &routes[i];
	return NULL;
}

static bool
prefix_match(const uint8_t *net, const uint8_t *addr, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(net, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff00u >> rest);
	return (net[full] & mask) == (addr[full] & mask);
}

bool
config_net_match(
    const struct config_net *nets, size_t n, const struct sockaddr *addr)
{
	const uint8_t *v4 = NULL, *v6 = NULL;
	size_t i;

	if (addr->sa_family == AF_INET) {
		v4 = (const uint8_t *)&(
		    (const struct sockaddr_in *)(const void *)addr)
		         ->sin_addr;
	} else if (addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)(const void *)addr)
		         ->sin6_addr;

		v6 = a6->s6_addr;
		/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
		if (IN6_IS_ADDR_V4MAPPED(a6))
			v4 = v6 + 12;
	} else
		return false;
	for (i = 0; i < n; i++) {
		if (nets[i].family == AF_INET && v4 != NULL &&
		    prefix_match(nets[i].addr, v4, nets[i].prefix))
			return true;
		if (nets[i].family == AF_INET6 && v6 != NULL &&
		    prefix_match(nets[i].addr, v6, nets[i].prefix))
			return true;
	}
	return false;
}
