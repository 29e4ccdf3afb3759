/* SPDX-License-Identifier: ISC */
/*
 * config.h - the typed, validated configuration.
 *
 * config/ reads the INI file with inih into one immutable struct config,
 * one sub-struct per section. Each module receives only its own section
 * (struct config_queue to queue_open(), and so on), never the file.
 * Units: sizes in bytes, durations in milliseconds.
 *
 * A loaded struct config is a snapshot: immutable once shared, and
 * reference-counted (config_ref, config_unref; the last unref frees it).
 * SIGHUP loads and validates a new one once and sends a reference to
 * every thread that owns state; each swaps it in at its own loop boundary
 * and drops the old one, so no thread ever sees a snapshot change or
 * disappear under it, and no timer guesses when an old one is unused.
 * A module reads only its own part of a snapshot it holds. A module that
 * derives state from a snapshot (a TLS context) attaches it
 * (config_attach) and it lives exactly as long as the snapshot.
 *
 * The key table (config_keys.c) is the single source of every key, its
 * type, default, bounds and whether a reload applies it (else a reload
 * reports it: config_restart_keys); mta.conf.example documents each one.
 */
#ifndef MTA_CONFIG_H
#define MTA_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "base/compat.h"

#define CONFIG_HOST_MAX 256 /* host names, with NUL */
#define CONFIG_PATH_MAX 4096

/* A listen or server address: "0.0.0.0:587", "[::1]:587", "127.0.0.1". */
struct config_addr {
	struct sockaddr_storage ss; /* resolved numeric address */
	socklen_t sslen;
	char
	    text[64]; /* as written, normalised: "127.0.0.1:587", "[::1]:587" */
};

/* One CIDR block of relay_networks. */
struct config_net {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order; IPv4 in the first 4 */
	uint8_t prefix;   /* bits */
};

/* [server] bare_newline: a bare LF, or a CR not followed by LF, in
 * commands and message content. */
enum config_bare_newline {
	CONFIG_BARE_NORMALIZE, /* taken as a line end, stored as CRLF */
	CONFIG_BARE_REJECT,    /* message refused 550 5.5.2 */
};

/* [server] nul_in_body: a NUL octet in message content. */
enum config_nul_body {
	CONFIG_NUL_REJECT, /* message refused 554 5.6.0 */
	CONFIG_NUL_STRIP,  /* NULs removed, the message kept */
};

struct config_server {
	char hostname[CONFIG_HOST_MAX]; /* default: gethostname() */
	struct config_addr *listen;     /* STARTTLS-capable submission */
	size_t nlisten;
	struct config_addr *listen_tls; /* implicit TLS */
	size_t nlisten_tls;
	unsigned threads;          /* 0 = one per CPU (resolved at load) */
	uint64_t max_message_size; /* bytes */
	unsigned max_recipients;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	uint64_t idle_timeout;    /* ms, per command */
	uint64_t session_timeout; /* ms, whole session */
	uint64_t command_timeout; /* ms, first byte to end of a line */
	unsigned min_data_rate;   /* bytes/s of DATA after that grace; 0 off */
	uint64_t greet_pause;     /* ms before the 220; input then: 554 */
	uint64_t
	    max_inflight;    /* bytes of bodies being received, all sessions */
	unsigned max_errors; /* bad commands before 421 */
	enum config_bare_newline bare_newline;
	enum config_nul_body nul_in_body;
	struct config_net *relay_networks;
	size_t nrelay_networks;
	/* sender identity (smtp/sender_policy.h) */
	char relay_sender_domains[1024]; /* words; "" = any domain */
	bool relay_null_sender;          /* relay clients may use <> */
	bool check_from_header;          /* From: must be owned too */
	char user[64];    /* drop to this user after start; "" = none */
	char group[64];   /* and group; "" = the user's primary group */
	bool run_as_root; /* may run as root without user */
};

struct config_tls {
	char certificate[CONFIG_PATH_MAX]; /* PEM, chain allowed; "" = no TLS */
	char private_key[CONFIG_PATH_MAX];
};

struct config_auth {
	char users[CONFIG_PATH_MAX]; /* NAME:CRYPT_HASH lines; "" = no AUTH */
	bool require_tls;
	unsigned max_failures;         /* per connection, then 421 4.7.0 */
	char senders[CONFIG_PATH_MAX]; /* NAME: PATTERN lines; "" = any */
	bool null_sender;              /* users may use MAIL FROM:<> */
};

enum config_sync {
	CONFIG_SYNC_FULL, /* fsync before 250 */
};

struct config_queue {
	char path[CONFIG_PATH_MAX];
	uint64_t *retry; /* ms; the last repeats */
	size_t nretry;
	uint64_t max_age;       /* ms, then bounce */
	uint64_t delay_warning; /* ms; 0 = off */
	enum config_sync sync;
	uint64_t map_size;       /* bytes, LMDB map */
	uint64_t min_free_space; /* bytes kept free on the queue's fs */
};

struct config_dns {
	struct config_addr
	    *servers; /* none: /etc/resolv.conf; port 53 default */
	size_t nservers;
	uint64_t timeout; /* ms per try */
	unsigned tries;
	uint64_t min_ttl, max_ttl; /* ms, cache floor and ceiling */
	bool dnssec; /* trust the AD bit of the (local, validating)
			resolver: DANE for delivery */
};

enum config_tls_policy {
	CONFIG_TLS_NONE,
	CONFIG_TLS_MAY,
	CONFIG_TLS_ENCRYPT,
	CONFIG_TLS_VERIFY,
};

struct config_delivery {
	unsigned workers;         /* 0 = one per CPU (resolved at load) */
	uint16_t port;            /* remote SMTP port */
	unsigned max_connections; /* all hosts */
	unsigned max_connections_per_host;
	unsigned max_messages_per_connection;
	enum config_tls_policy tls;
	uint64_t connect_timeout;        /* ms */
	uint64_t command_timeout;        /* ms: greeting, EHLO, MAIL, RCPT */
	uint64_t data_timeout;           /* ms: DATA, body, final dot */
	uint64_t idle_timeout;           /* ms an unused connection is kept */
	char helo_name[CONFIG_HOST_MAX]; /* "" = [server] hostname */
	uint64_t max_inflight; /* bytes of body buffers, all workers */
	/* destination policy (deliver/dest_policy.h) */
	bool allow_address_literals; /* RCPT x@[1.2.3.4] accepted */
	bool allow_private;  /* MX/A into 10/8, 172.16/12, ... fc00::/7 */
	bool allow_loopback; /* MX/A into 127/8, ::1: tests, benchmarks */
	/* trust anchors for tls = verify: PEM bundle, hashed directory;
	 * both "" = the system store */
	char ca_file[CONFIG_PATH_MAX];
	char ca_path[CONFIG_PATH_MAX];
	unsigned ca_file_line, ca_path_line; /* where set, for errors; 0 */
	bool mta_sts;                  /* RFC 8461 policies (mta/sts/) */
	uint64_t mta_sts_timeout;      /* ms, one policy fetch in all */
	uint64_t mta_sts_recheck;      /* ms between TXT id checks */
	/* adaptive backoff (mta/deliver/backoff.h) */
	bool backoff_defaults;   /* the built-in throttling-reply rules */
	uint64_t backoff_suspend; /* ms a matching reply suspends for */
};

/* [local]: sendmail-compatible local submission (mta sendmail). */
struct config_local {
	char socket[CONFIG_PATH_MAX];   /* unix SMTP socket; "" at load:
					   <queue path>/submit.sock */
	char maildrop[CONFIG_PATH_MAX]; /* used when the relay is down; ""
					   at load: <queue path>/maildrop */
	char allow_users[1024];  /* names or uids; both lists "": everyone */
	char allow_groups[1024]; /* names or gids */
};

/* [log]: where lines go besides stderr (mta/base/log.h). */
struct config_log {
	bool syslog;                         /* also to syslog, facility mail */
	char syslog_socket[CONFIG_PATH_MAX]; /* its unix datagram socket */
};

/* [metrics]: the Prometheus endpoint (mta/metrics/metrics_http.h). */
struct config_metrics {
	struct config_addr *listen; /* none: off */
	size_t nlisten;
	unsigned destinations; /* shown by name; the rest are "other" */
};

/* [tlsrpt]: SMTP TLS reports (RFC 8460), mta/tlsrpt/. */
struct config_tlsrpt {
	bool enabled;
	uint64_t interval;  /* ms: a report period (1d: a UTC day) */
	char org_name[256]; /* organization-name; "" = hostname */
	char contact[256];  /* contact-info; "" = mailto:<from> */
	char from[256];     /* the reports' sender; "" =
			       noreply-smtp-tls-reporting@hostname */
};

/* [route DOMAIN] or [route *]. */
struct config_route {
	char domain[CONFIG_HOST_MAX]; /* lowercase; "*" = every other domain */
	char host[CONFIG_HOST_MAX];   /* host name or IP, without brackets */
	bool literal;                 /* written [bracketed]: no MX lookup */
	uint16_t port;                /* 0 = [delivery] port */
	enum config_tls_policy tls;
	bool tls_set;       /* false: [delivery] tls applies */
	char username[256]; /* AUTH to the upstream; "" = none */
	char password[256];
	bool auth_without_tls; /* may send them on a plaintext session */
};

/* [dkim DOMAIN] or [dkim *]: one signing key. Several sections of one
 * domain (different selectors) put one signature each (dual signing). */
enum config_dkim_canon {
	CONFIG_DKIM_RELAXED_RELAXED,
	CONFIG_DKIM_RELAXED_SIMPLE,
	CONFIG_DKIM_SIMPLE_RELAXED,
	CONFIG_DKIM_SIMPLE_SIMPLE,
};

struct config_dkim {
	char domain[CONFIG_HOST_MAX]; /* lowercase; "*" = any other domain */
	char selector[64];
	char key[CONFIG_PATH_MAX]; /* PEM private key */
	char headers[2048];        /* names to sign; "" = the default */
	enum config_dkim_canon canon;
	uint64_t expire;   /* ms; 0 = signatures do not expire */
	bool subdomains;   /* also signs for *.domain */
	unsigned line;     /* of the [dkim] header, for errors */
	unsigned key_line; /* of its key */
};

/* [limits]: where the state of every [limit] lives. */
enum config_limits_backend {
	CONFIG_LIMITS_LOCAL, /* this process (mta/limits/limits_store.c) */
	CONFIG_LIMITS_REDIS, /* shared by nodes (mta/limits/limits_redis.c) */
};

struct config_shared {
	enum config_limits_backend backend;
	char redis[CONFIG_PATH_MAX]; /* "IP:PORT" or a socket path */
	unsigned nodes;              /* Redis down: each takes rate/nodes */
	uint64_t redis_timeout;      /* ms; slower answers: as down */
	struct sockaddr_storage ss;  /* redis, parsed by config_load */
	socklen_t sslen;
};

/* [limit NAME]: one throttle (mta/limits/limits.h). */
enum config_limit_count {
	CONFIG_LIMIT_MESSAGES,    /* MAIL commands */
	CONFIG_LIMIT_RECIPIENTS,  /* accepted RCPT commands */
	CONFIG_LIMIT_CONNECTIONS, /* new connections */
	CONFIG_LIMIT_BYTES,       /* message bytes, charged after queueing */
};

enum config_limit_key {
	CONFIG_LIMIT_KEY_USER,           /* the authenticated user */
	CONFIG_LIMIT_KEY_CLIENT,         /* the client's address */
	CONFIG_LIMIT_KEY_CLIENT_NETWORK, /* client_network/V4[/V6] */
	CONFIG_LIMIT_KEY_SENDER_DOMAIN,  /* the MAIL FROM domain */
	/* delivery shaping (mta/deliver/shape.c): the recipient domain */
	CONFIG_LIMIT_KEY_DEST_DOMAIN,
	CONFIG_LIMIT_KEY_DEST_SITE, /* its MX host set (MX rollup) */
};

struct config_limit {
	char name[64]; /* letters, digits, '-', '_', '.' */
	enum config_limit_count count;
	char key[64];   /* as written: "user", "client_network/24" */
	char rate[32];  /* as written: "100/h" */
	unsigned burst; /* units at once; 0 = the rate's count */
	unsigned max;   /* connections: leases held at once; 0 = none */
	/* parsed from key and rate when the section ends */
	enum config_limit_key key_type;
	uint8_t prefix4, prefix6; /* client_network: bits kept */
	uint64_t rate_n;          /* units ... */
	uint64_t period_ms;       /* ... per this long */
	unsigned line;            /* of the [limit] header, for errors */
};

struct config_attachment;

struct config {
	atomic_uint refs;                   /* config_ref / config_unref only */
	struct config_attachment *attached; /* config_attach */
	char file[CONFIG_PATH_MAX];         /* the file it was read from */
	struct config_server server;
	struct config_tls tls;
	struct config_auth auth;
	struct config_queue queue;
	struct config_dns dns;
	struct config_delivery delivery;
	struct config_local local;
	struct config_log log;
	struct config_metrics metrics;
	struct config_shared shared;
	struct config_tlsrpt tlsrpt;
	struct config_route *routes;
	size_t nroutes;
	struct config_dkim *dkims;
	size_t ndkims;
	struct config_limit *limits;
	size_t nlimits;
};

#define CONFIG_DEFAULT_PATH "/etc/mta/mta.conf"

/*
 * config_load - read and validate path.
 * On success returns 0 and *out is a new snapshot holding one reference,
 * the caller's (config_unref it).
 * On failure returns -1 and writes one line "FILE:LINE: key: reason" (or
 * "FILE: reason" when the file cannot be read) into err.
 */
int config_load(const char *path, struct config **out, char *err,
    size_t errlen) MTA_MUST_CHECK;

/* A config with every default, as if loaded from an empty file; one
 * reference, the caller's. */
struct config *config_defaults(void);

/* Take one more reference to c (NULL: none) and return c. Any thread. */
struct config *config_ref(struct config *c);

/* Drop one reference (NULL: nothing); the last one frees c and runs
 * what is attached to it. Any thread. */
void config_unref(struct config *c);

/*
 * config_attach - tie derived state p to c: free_fn(p) runs when the last
 * reference to c is dropped. free_fn is also the key config_attached()
 * finds p by, so one module attaches one thing per function. Only while
 * c is not yet shared with another thread (its loader's thread, before
 * the first reference is sent anywhere): a snapshot is read-only once
 * shared, which is what lets threads read it without a lock.
 */
void config_attach(struct config *c, void *p, void (*free_fn)(void *));

/* What config_attach tied to c under free_fn, or NULL. Any thread. */
void *config_attached(const struct config *c, void (*free_fn)(void *));

/* Print the effective configuration as a valid INI file. */
void config_dump(const struct config *c, FILE *fp);

/* The same with every secret (a route's password) set as "***": for
 * eyes and logs, not to load again. */
void config_dump_redacted(const struct config *c, FILE *fp);

/* Find the route for a domain among routes[0..n) (exact, then "*");
 * NULL when none. */
const struct config_route *config_route_find(
    const struct config_route *routes, size_t n, const char *domain);

/*
 * The keys that only a restart changes (the `restart` column of the key
 * table), for a reload to report: config_restart_keys() stores in out
 * (at most max) every such key whose value differs between the running
 * snapshot and the new one, in table order, and returns how many differ
 * (possibly more than max). A reloadable key is never reported.
 */
struct config_restart_key {
	char key[80];       /* "server.threads" */
	const char *reason; /* static: why the running value stays */
};

size_t config_restart_keys(const struct config *running,
    const struct config *next, struct config_restart_key *out, size_t max);

/* Is addr (AF_INET/AF_INET6 sockaddr; v4-mapped v6 counts as v4) in one of
 * the networks? */
bool config_net_match(
    const struct config_net *nets, size_t n, const struct sockaddr *addr);

/*
 * Value parsers and formatters, pure and thread-safe, for any module that
 * takes the same syntax (mta-sink --listen, logs of delays and sizes).
 * Parsers return 0, -EINVAL for bad syntax or -ERANGE for overflow, and
 * leave *out untouched on failure.
 *
 * config_parse_size: "35M", "512K", "1G", "2T" (binary units, either case)
 * or a bare number of bytes.
 * config_parse_duration: "500ms", "30s", "5m", "4h", "5d"; a bare number
 * is seconds. *out is in milliseconds.
 * config_parse_addr: "1.2.3.4:587", "1.2.3.4", "[::1]:587", "[::1]", "::1";
 * default_port applies when none is written. Numeric only: no DNS.
 * config_parse_net: "10.0.0.0/8", "::1/128", "[::1]/128", or a bare address
 * (= /32 or /128). Host bits set below the prefix are -EINVAL.
 */
int config_parse_size(const char *s, uint64_t *out) MTA_MUST_CHECK;
int config_parse_duration(const char *s, uint64_t *out) MTA_MUST_CHECK;
int config_parse_addr(const char *s, uint16_t default_port,
    struct config_addr *out) MTA_MUST_CHECK;
/* As config_parse_addr, but the port must be written ("1.2.3.4:25",
 * "[::1]:25"): the address of a peer, for the bench tools. */
int config_parse_endpoint(
    const char *s, struct config_addr *out) MTA_MUST_CHECK;
int config_parse_net(const char *s, struct config_net *out) MTA_MUST_CHECK;

/* Render in the largest unit that is exact ("35M", "90s", "1500ms");
 * buf (borrowed) is returned, NUL-terminated, truncated to len. */
#define CONFIG_FMT_MAX 32 /* enough for any uint64_t with a unit */
char *config_format_size(uint64_t bytes, char *buf, size_t len);
char *config_format_duration(uint64_t ms, char *buf, size_t len);
/* "192.0.2.0/24", "::1/128" */
char *config_format_net(const struct config_net *net, char *buf, size_t len);

/* "none", "may", "encrypt", "verify": static strings. */
const char *config_tls_policy_name(enum config_tls_policy p);

#endif
