/* SPDX-License-Identifier: ISC */
/*
 * config_keys.h - the key table, private to config/ (and its unit test).
 *
 * One row per key (Postfix CONFIG_*_TABLE, Redis standardConfig): section,
 * name, type, default in file syntax, bounds, and where the value lives.
 * Loading, defaults, dumping and the example-file test all walk this one
 * table, so a key added here is parsed, defaulted, range-checked and
 * printed without touching any other code, and a reload reports it
 * when its row says it needs a restart. Rows of the [route] section
 * point into struct config_route, rows of [dkim] into struct
 * config_dkim; every other row into struct config.
 */
#ifndef MTA_CONFIG_KEYS_H
#define MTA_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

enum config_section {
	CONFIG_SECT_NONE, /* before the first [section] */
	CONFIG_SECT_SERVER,
	CONFIG_SECT_TLS,
	CONFIG_SECT_AUTH,
	CONFIG_SECT_QUEUE,
	CONFIG_SECT_DNS,
	CONFIG_SECT_DELIVERY,
	CONFIG_SECT_LOCAL,
	CONFIG_SECT_LOG,
	CONFIG_SECT_METRICS,
	CONFIG_SECT_LIMITS, /* [limits]: where the state of [limit] lives */
	CONFIG_SECT_TLSRPT, /* [tlsrpt]: TLS reports (RFC 8460) */
	CONFIG_SECT_ROUTE,  /* [route DOMAIN], [route *] */
	CONFIG_SECT_DKIM,   /* [dkim DOMAIN], [dkim *]; several per domain */
	CONFIG_SECT_LIMIT,  /* [limit NAME] */
};

enum config_type {
	CONFIG_T_STRING,     /* free text, char[size] */
	CONFIG_T_PATH,       /* file or directory, char[size] */
	CONFIG_T_HOST,       /* host name, char[size]; "" allowed */
	CONFIG_T_BOOL,       /* yes | no */
	CONFIG_T_UINT,       /* unsigned or uint16_t (by size) */
	CONFIG_T_SIZE,       /* uint64_t bytes */
	CONFIG_T_DURATION,   /* uint64_t ms */
	CONFIG_T_DURATIONS,  /* uint64_t *, count at count_off */
	CONFIG_T_ADDRS,      /* struct config_addr *, count at count_off */
	CONFIG_T_NETS,       /* struct config_net *, count at count_off */
	CONFIG_T_ENUM,       /* int-sized enum, value = index in names */
	CONFIG_T_ROUTE_HOST, /* config_route host + literal + port */
	CONFIG_T_ROUTE_TLS,  /* config_route tls + tls_set */
	CONFIG_T_WORDS,      /* words, char[size]; may continue on indented
	                        lines (joined by a space) */
};

#define CONFIG_F_REQUIRED 0x1 /* strings and lists: may not be empty */
#define CONFIG_F_SECRET   0x2 /* config_dump_redacted prints *** */
#define CONFIG_LIST_MAX   64  /* items in any list */

struct config_key {
	enum config_section section;
	const char *name;
	enum config_type type;
	const char *def;   /* default in file syntax; NULL = no default */
	uint64_t min, max; /* numbers: base units (bytes, ms); per list item */
	size_t off;        /* of the field in struct config / config_route */
	size_t size;       /* of that field */
	size_t count_off;  /* lists: of the size_t item count */
	const char *const *names; /* enums, NULL-terminated */
	uint16_t port;            /* address lists: port when none is written */
	unsigned flags;           /* CONFIG_F_* */
	/* NULL: a reload applies it. Else it needs a restart, and this says
	 * why, for the reload-ignored log line (config_restart_keys). */
	const char *restart;
};

extern const struct config_key config_keys[];
extern const size_t config_nkeys;

/* "server", ..., "route"; "" for CONFIG_SECT_NONE. */
const char *config_section_name(enum config_section s);

/* The row of name in section, or NULL. */
const struct config_key *config_key_find(
    enum config_section s, const char *name);

/* config_limit.c: the parts of a [limit] section read when it ends.
 * 0, or -1 with the reason in why. */
int config_limit_parse_key(
    struct config_limit *l, char *why, size_t whylen) MTA_MUST_CHECK;
int config_limit_parse_rate(
    struct config_limit *l, char *why, size_t whylen) MTA_MUST_CHECK;
/* Is s usable as a [limit NAME]: 1..63 letters, digits, '-_.'? */
bool config_limit_name_valid(const char *s);
/* [limits] redis: "IP:PORT", "[IPv6]:PORT" or an absolute socket path
 * into sh->ss (never a host name: nothing may wait on a resolver). 0, or
 * -1 with the reason in why. */
int config_shared_parse_redis(
    struct config_shared *sh, char *why, size_t whylen);

/* config_value.c */
/*
 * config_key_set - parse value (borrowed) into the field of k in base
 * (struct config *, or struct config_route * for [route] rows). append
 * adds to a list instead of replacing it (an indented continuation line).
 * Returns 0, or -1 with the reason (the text after "key: ") in why.
 * On failure the field keeps its previous value.
 */
int config_key_set(const struct config_key *k, void *base, const char *value,
    bool append, char *why, size_t whylen);

/* Free what config_key_set allocated for k in base (lists). */
void config_key_free(const struct config_key *k, void *base);

/* config_parse.c (the public parsers are in config.h) */
/* Letters, digits, '-', '_', '.'; no empty label; at most 253 bytes. */
bool config_valid_hostname(const char *s);
/* Decimal digits only: 0, -EINVAL (syntax), or -ERANGE (overflow). */
int config_parse_uint(const char *s, uint64_t *out) MTA_MUST_CHECK;
/* As config_parse_net, but host bits below the prefix are cleared, not
 * refused: only to tell the admin what was probably meant. */
int config_parse_net_lax(const char *s, struct config_net *out) MTA_MUST_CHECK;
/* A route's host: "[192.0.2.10]:25", "[ipv6:2001:db8::1]",
 * "[mx.example]" (bracketed or an IP address: literal, no MX lookup),
 * "mx.example:2525", "mx.example". Sets host, literal and port of r;
 * 0 or -EINVAL (r unchanged). */
int config_parse_route_host(
    const char *s, struct config_route *r) MTA_MUST_CHECK;

/*
 * config_key_dump (config_dump.c) - print "name = value" for k in base as
 * config_key_set reads it back, wrapping long lists onto indented
 * continuation lines; ends with a newline.
 */
void config_key_dump(const struct config_key *k, const void *base, FILE *fp);
/* As config_key_dump, with a CONFIG_F_SECRET value set as "***". */
void config_key_dump_redacted(
    const struct config_key *k, const void *base, FILE *fp);

#endif
