/* SPDX-License-Identifier: ISC */
/*
 * config_keys.c - every configuration key: the table and its lookup.
 *
 * DESIGN
 * The table below is the only list of keys: the loader (config_load.c)
 * looks each name up here and applies the `def` column through the same
 * parser a file value takes (so a default can never be out of its own
 * range), the dumper (config_dump.c) walks it to print, the snapshot code
 * (config_snap.c) reads its restart column, and the unit test checks that
 * mta.conf.example mentions every row. Defaults are written in file
 * syntax ("35M", "5m") so the table reads like the documentation.
 *
 * This file is the bottom of config/ and calls nothing in it: a row's
 * value is set by config_value.c, with the parsers of config_parse.c,
 * and printed by config_dump.c with config_format.c. Read-only data;
 * any thread.
 */
#include "config/config_keys.h"

#include <string.h>

#include "base/compat.h"

#define KB  1024ULL
#define MB  (1024ULL * KB)
#define GB  (1024ULL * MB)
#define TB  (1024ULL * GB)
#define SEC 1000ULL
#define MIN (60 * SEC)
#define HR  (60 * MIN)
#define DAY (24 * HR)

static const char *const tls_policy_names[] = {
    "none", "may", "encrypt", "verify", NULL};
static const char *const sync_names[] = {"full", NULL};
static const char *const dkim_canon_names[] = {"relaxed/relaxed",
    "relaxed/simple", "simple/relaxed", "simple/simple", NULL};
static const char *const bare_names[] = {"normalize", "reject", NULL};
static const char *const nul_names[] = {"reject", "strip", NULL};
static const char *const limits_backend_names[] = {"local", "redis", NULL};
static const char *const limit_count_names[] = {
    "messages", "recipients", "connections", "bytes", NULL};

/* Enums are stored through an int; the table relies on this. */
_Static_assert(sizeof(enum config_tls_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_sync) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_dkim_canon) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_bare_newline) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_nul_body) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_limit_count) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_limits_backend) == sizeof(int), "enum size");

#define FIELD(f)                           \
	.off = offsetof(struct config, f), \
	.size = sizeof(((struct config *)0)->f)
#define RFIELD(f)                                \
	.off = offsetof(struct config_route, f), \
	.size = sizeof(((struct config_route *)0)->f)
#define DFIELD(f)                               \
	.off = offsetof(struct config_dkim, f), \
	.size = sizeof(((struct config_dkim *)0)->f)
#define LFIELD(f)                                \
	.off = offsetof(struct config_limit, f), \
	.size = sizeof(((struct config_limit *)0)->f)
#define COUNT(f) .count_off = offsetof(struct config, f)

#define KEY(sect, nm, ty, df, lo, hi, ...)                              \
	{                                                               \
		.section = CONFIG_SECT_##sect, .name = nm,              \
		.type = CONFIG_T_##ty, .def = df, .min = lo, .max = hi, \
		__VA_ARGS__                                             \
	}

/* The restart column: why a reload keeps the running value. */
#define RESTART .restart = "needs a restart"
#define SCHED_START                                        \
	.restart = "the scheduler keeps its start value; " \
	           "needs a restart"

/* clang-format off */
const struct config_key config_keys[] = {
	KEY(SERVER, "hostname", HOST, "", 0, 0, FIELD(server.hostname)),
	KEY(SERVER, "listen", ADDRS, "0.0.0.0:587", 0, 0,
	    FIELD(server.listen), COUNT(server.nlisten), .port = 587,
	    RESTART),
	KEY(SERVER, "listen_tls", ADDRS, "", 0, 0,
	    FIELD(server.listen_tls), COUNT(server.nlisten_tls), .port = 465,
	    RESTART),
	KEY(SERVER, "threads", UINT, "0", 0, 1024, FIELD(server.threads),
	    RESTART),
	KEY(SERVER, "max_message_size", SIZE, "35M", 1 * KB, 2 * GB,
	    FIELD(server.max_message_size)),
	KEY(SERVER, "max_recipients", UINT, "1000", 1, 100000,
	    FIELD(server.max_recipients)),
	KEY(SERVER, "max_connections", UINT, "10000", 1, 1000000,
	    FIELD(server.max_connections)),
	KEY(SERVER, "max_connections_per_ip", UINT, "200", 1, 1000000,
	    FIELD(server.max_connections_per_ip)),
	KEY(SERVER, "idle_timeout", DURATION, "5m", 1 * SEC, 1 * DAY,
	    FIELD(server.idle_timeout)),
	KEY(SERVER, "session_timeout", DURATION, "1h", 1 * SEC, 7 * DAY,
	    FIELD(server.session_timeout)),
	KEY(SERVER, "command_timeout", DURATION, "5m", 1 * SEC, 1 * DAY,
	    FIELD(server.command_timeout)),
	KEY(SERVER, "min_data_rate", UINT, "500", 0, 1000000000,
	    FIELD(server.min_data_rate)),
	KEY(SERVER, "greet_pause", DURATION, "0", 0, 1 * MIN,
	    FIELD(server.greet_pause)),
	KEY(SERVER, "max_inflight", SIZE, "512M", 1 * MB, 1 * TB,
	    FIELD(server.max_inflight), RESTART),
	KEY(SERVER, "max_errors", UINT, "20", 1, 1000,
	    FIELD(server.max_errors)),
	KEY(SERVER, "bare_newline", ENUM, "normalize", 0, 0,
	    FIELD(server.bare_newline), .names = bare_names),
	KEY(SERVER, "nul_in_body", ENUM, "reject", 0, 0,
	    FIELD(server.nul_in_body), .names = nul_names),
	KEY(SERVER, "relay_networks", NETS, "127.0.0.0/8, ::1/128", 0, 0,
	    FIELD(server.relay_networks), COUNT(server.nrelay_networks)),
	KEY(SERVER, "relay_sender_domains", WORDS, "", 0, 0,
	    FIELD(server.relay_sender_domains)),
	KEY(SERVER, "relay_null_sender", BOOL, "yes", 0, 0,
	    FIELD(server.relay_null_sender)),
	KEY(SERVER, "check_from_header", BOOL, "no", 0, 0,
	    FIELD(server.check_from_header)),
	/* the privilege drop (mta/serve_priv.c) */
	KEY(SERVER, "user", STRING, "", 0, 0, FIELD(server.user), RESTART),
	KEY(SERVER, "group", STRING, "", 0, 0, FIELD(server.group), RESTART),
	KEY(SERVER, "run_as_root", BOOL, "no", 0, 0,
	    FIELD(server.run_as_root), RESTART),

	KEY(TLS, "certificate", PATH, "", 0, 0, FIELD(tls.certificate)),
	KEY(TLS, "private_key", PATH, "", 0, 0, FIELD(tls.private_key)),

	KEY(AUTH, "users", PATH, "", 0, 0, FIELD(auth.users)),
	KEY(AUTH, "require_tls", BOOL, "yes", 0, 0, FIELD(auth.require_tls)),
	KEY(AUTH, "max_failures", UINT, "3", 1, 100,
	    FIELD(auth.max_failures)),
	KEY(AUTH, "senders", PATH, "", 0, 0, FIELD(auth.senders)),
	KEY(AUTH, "null_sender", BOOL, "yes", 0, 0, FIELD(auth.null_sender)),

	KEY(QUEUE, "path", PATH, "/var/spool/mta", 0, 0, FIELD(queue.path),
	    .flags = CONFIG_F_REQUIRED, RESTART),
	KEY(QUEUE, "retry", DURATIONS, "1m, 5m, 15m, 30m, 1h, 2h, 4h",
	    1 * SEC, 30 * DAY, FIELD(queue.retry), COUNT(queue.nretry),
	    .flags = CONFIG_F_REQUIRED, SCHED_START),
	KEY(QUEUE, "max_age", DURATION, "5d", 1 * SEC, 365 * DAY,
	    FIELD(queue.max_age), SCHED_START),
	KEY(QUEUE, "delay_warning", DURATION, "0s", 0, 30 * DAY,
	    FIELD(queue.delay_warning)),
	KEY(QUEUE, "sync", ENUM, "full", 0, 0, FIELD(queue.sync),
	    .names = sync_names, RESTART),
	KEY(QUEUE, "map_size", SIZE, "8G", 64 * KB, 1 * TB,
	    FIELD(queue.map_size), RESTART),
	KEY(QUEUE, "min_free_space", SIZE, "100M", 0, 1 * TB,
	    FIELD(queue.min_free_space), RESTART),

	KEY(DNS, "servers", ADDRS, "", 0, 0, FIELD(dns.servers),
	    COUNT(dns.nservers), .port = 53, RESTART),
	KEY(DNS, "timeout", DURATION, "5s", 100, 60 * SEC, FIELD(dns.timeout),
	    RESTART),
	KEY(DNS, "tries", UINT, "2", 1, 10, FIELD(dns.tries),
	    RESTART),
	KEY(DNS, "min_ttl", DURATION, "60s", 0, 1 * DAY, FIELD(dns.min_ttl),
	    RESTART),
	KEY(DNS, "max_ttl", DURATION, "1d", 0, 30 * DAY, /* 0: no cache */
	    FIELD(dns.max_ttl), RESTART),
	KEY(DNS, "dnssec", BOOL, "no", 0, 0, FIELD(dns.dnssec), RESTART),

	KEY(DELIVERY, "workers", UINT, "0", 0, 4096, FIELD(delivery.workers),
	    RESTART),
	KEY(DELIVERY, "port", UINT, "25", 1, 65535, FIELD(delivery.port)),
	KEY(DELIVERY, "max_connections", UINT, "1000", 1, 1000000,
	    FIELD(delivery.max_connections),
	    .restart = "applies to connections; the scheduler's job cap "
	               "keeps its start value until a restart"),
	KEY(DELIVERY, "max_connections_per_host", UINT, "20", 1, 10000,
	    FIELD(delivery.max_connections_per_host),
	    .restart = "applies to connections; the scheduler's "
	               "per-destination window keeps its start value "
	               "until a restart"),
	KEY(DELIVERY, "max_messages_per_connection", UINT, "100", 1, 100000,
	    FIELD(delivery.max_messages_per_connection)),
	KEY(DELIVERY, "tls", ENUM, "may", 0, 0, FIELD(delivery.tls),
	    .names = tls_policy_names),
	KEY(DELIVERY, "connect_timeout", DURATION, "30s", 1 * SEC, 10 * MIN,
	    FIELD(delivery.connect_timeout)),
	KEY(DELIVERY, "command_timeout", DURATION, "5m", 1 * SEC, 1 * HR,
	    FIELD(delivery.command_timeout)),
	KEY(DELIVERY, "data_timeout", DURATION, "10m", 1 * SEC, 1 * HR,
	    FIELD(delivery.data_timeout)),
	KEY(DELIVERY, "idle_timeout", DURATION, "30s", 0, 1 * HR,
	    FIELD(delivery.idle_timeout)),
	KEY(DELIVERY, "helo_name", HOST, "", 0, 0, FIELD(delivery.helo_name)),
	/* at least one body chunk (64K), so any job can start */
	KEY(DELIVERY, "max_inflight", SIZE, "64M", 64 * KB, 1 * TB,
	    FIELD(delivery.max_inflight)),
	KEY(DELIVERY, "allow_address_literals", BOOL, "no", 0, 0,
	    FIELD(delivery.allow_address_literals)),
	KEY(DELIVERY, "allow_private", BOOL, "no", 0, 0,
	    FIELD(delivery.allow_private)),
	KEY(DELIVERY, "allow_loopback", BOOL, "no", 0, 0,
	    FIELD(delivery.allow_loopback)),
	/* the client TLS context is built once, at start */
	KEY(DELIVERY, "ca_file", PATH, "", 0, 0, FIELD(delivery.ca_file),
	    RESTART),
	KEY(DELIVERY, "ca_path", PATH, "", 0, 0, FIELD(delivery.ca_path),
	    RESTART),
	KEY(DELIVERY, "mta_sts", BOOL, "yes", 0, 0, FIELD(delivery.mta_sts)),
	KEY(DELIVERY, "mta_sts_timeout", DURATION, "30s", 1 * SEC, 5 * MIN,
	    FIELD(delivery.mta_sts_timeout), RESTART),
	KEY(DELIVERY, "mta_sts_recheck", DURATION, "1h", 1 * SEC, 1 * DAY,
	    FIELD(delivery.mta_sts_recheck), RESTART),
	KEY(DELIVERY, "backoff_defaults", BOOL, "yes", 0, 0,
	    FIELD(delivery.backoff_defaults)),
	KEY(DELIVERY, "backoff_suspend", DURATION, "5m", 1 * SEC, 1 * DAY,
	    FIELD(delivery.backoff_suspend)),

	KEY(LOCAL, "socket", PATH, "", 0, 0, FIELD(local.socket), RESTART),
	KEY(LOCAL, "maildrop", PATH, "", 0, 0, FIELD(local.maildrop),
	    RESTART),
	KEY(LOCAL, "allow_users", STRING, "", 0, 0, FIELD(local.allow_users),
	    RESTART),
	KEY(LOCAL, "allow_groups", STRING, "", 0, 0,
	    FIELD(local.allow_groups), RESTART),

	KEY(LOG, "syslog", BOOL, "no", 0, 0, FIELD(log.syslog), RESTART),
	KEY(LOG, "syslog_socket", PATH, "/dev/log", 0, 0,
	    FIELD(log.syslog_socket), RESTART),

	KEY(METRICS, "listen", ADDRS, "", 0, 0, FIELD(metrics.listen),
	    COUNT(metrics.nlisten), .port = 9725, RESTART),
	KEY(METRICS, "destinations", UINT, "50", 0, 1000,
	    FIELD(metrics.destinations), RESTART),

	/* Where limits live; redis: an IP:PORT or a socket path (no
	 * resolver on a loop), checked with backend (config_load.c). */
	KEY(LIMITS, "backend", ENUM, "local", 0, 0, FIELD(shared.backend),
	    .names = limits_backend_names, RESTART),
	KEY(LIMITS, "redis", STRING, "", 0, 0, FIELD(shared.redis), RESTART),
	KEY(LIMITS, "nodes", UINT, "1", 1, 10000, FIELD(shared.nodes),
	    RESTART),
	KEY(LIMITS, "redis_timeout", DURATION, "200ms", 1, 1 * MIN,
	    FIELD(shared.redis_timeout), RESTART),

	/* "" = derived from [server] hostname (mta/tlsrpt/tlsrpt.c) */
	KEY(TLSRPT, "enabled", BOOL, "no", 0, 0, FIELD(tlsrpt.enabled),
	    RESTART),
	KEY(TLSRPT, "interval", DURATION, "1d", 1 * SEC, 7 * DAY,
	    FIELD(tlsrpt.interval), RESTART),
	KEY(TLSRPT, "org_name", STRING, "", 0, 0, FIELD(tlsrpt.org_name),
	    RESTART),
	KEY(TLSRPT, "contact", STRING, "", 0, 0, FIELD(tlsrpt.contact),
	    RESTART),
	KEY(TLSRPT, "from", STRING, "", 0, 0, FIELD(tlsrpt.from), RESTART),

	/* No default host: a route without one is an error. No default tls:
	 * unset means [delivery] tls applies (tls_set stays false). */
	KEY(ROUTE, "host", ROUTE_HOST, NULL, 0, 0, RFIELD(host)),
	KEY(ROUTE, "tls", ROUTE_TLS, NULL, 0, 0, RFIELD(tls),
	    .names = tls_policy_names),
	KEY(ROUTE, "username", STRING, "", 0, 0, RFIELD(username)),
	KEY(ROUTE, "password", STRING, "", 0, 0, RFIELD(password),
	    .flags = CONFIG_F_SECRET),
	KEY(ROUTE, "auth_without_tls", BOOL, "no", 0, 0,
	    RFIELD(auth_without_tls)),

	/* A [dkim] section needs selector and key; headers "" = the
	 * default list (mta/dkim/dkim_table.c). */
	KEY(DKIM, "selector", STRING, NULL, 0, 0, DFIELD(selector),
	    .flags = CONFIG_F_REQUIRED),
	KEY(DKIM, "key", PATH, NULL, 0, 0, DFIELD(key),
	    .flags = CONFIG_F_REQUIRED),
	KEY(DKIM, "headers", WORDS, "", 0, 0, DFIELD(headers)),
	KEY(DKIM, "canonicalization", ENUM, "relaxed/relaxed", 0, 0,
	    DFIELD(canon), .names = dkim_canon_names),
	KEY(DKIM, "expire", DURATION, "0", 0, 3650 * DAY, DFIELD(expire)),
	KEY(DKIM, "subdomains", BOOL, "no", 0, 0, DFIELD(subdomains)),

	/* A [limit] section needs key and rate (checked when it ends). */
	KEY(LIMIT, "count", ENUM, "messages", 0, 0, LFIELD(count),
	    .names = limit_count_names),
	KEY(LIMIT, "key", STRING, NULL, 0, 0, LFIELD(key),
	    .flags = CONFIG_F_REQUIRED),
	KEY(LIMIT, "rate", STRING, NULL, 0, 0, LFIELD(rate),
	    .flags = CONFIG_F_REQUIRED),
	KEY(LIMIT, "burst", UINT, "0", 0, 1000000000, LFIELD(burst)),
	KEY(LIMIT, "max", UINT, "0", 0, 1000000, LFIELD(max)),
};
/* clang-format on */

const size_t config_nkeys = MTA_ARRAY_LEN(config_keys);

static const char *const section_names[] = {
    [CONFIG_SECT_NONE] = "",
    [CONFIG_SECT_SERVER] = "server",
    [CONFIG_SECT_TLS] = "tls",
    [CONFIG_SECT_AUTH] = "auth",
    [CONFIG_SECT_QUEUE] = "queue",
    [CONFIG_SECT_DNS] = "dns",
    [CONFIG_SECT_DELIVERY] = "delivery",
    [CONFIG_SECT_LOCAL] = "local",
    [CONFIG_SECT_LOG] = "log",
    [CONFIG_SECT_METRICS] = "metrics",
    [CONFIG_SECT_LIMITS] = "limits",
    [CONFIG_SECT_TLSRPT] = "tlsrpt",
    [CONFIG_SECT_ROUTE] = "route",
    [CONFIG_SECT_DKIM] = "dkim",
    [CONFIG_SECT_LIMIT] = "limit",
};

const char *
config_section_name(enum config_section s)
{
	MTA_ASSERT((size_t)s < MTA_ARRAY_LEN(section_names));
	return section_names[s];
}

const struct config_key *
config_key_find(enum config_section s, const char *name)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].section == s &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

const char *
config_tls_policy_name(enum config_tls_policy p)
{
	MTA_ASSERT((size_t)p < MTA_ARRAY_LEN(tls_policy_names) - 1);
	return tls_policy_names[p];
}
