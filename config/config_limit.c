/* SPDX-License-Identifier: ISC */
/*
 * config_limit.c - the values of a [limit NAME] section that need more
 * than the key table's types: the key ("user", "client",
 * "client_network/24" or "client_network/24/56", "sender_domain") and the
 * rate ("N/s", "N/m", "N/h", "N/d"). Called by config_load.c when a
 * section ends, so an error names the line of the key at fault. Pure;
 * any thread.
 */
#include "config/config_keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/un.h>

#include "base/compat.h"

#define PREFIX6_DEFAULT 64 /* client_network/V4 alone: IPv6 by /64 */

bool
config_limit_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(((struct config_limit *)0)->name))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* "24" or "24/56" after "client_network/". */
static int
parse_prefixes(struct config_limit *l, const char *p, char *why, size_t len)
{
	uint64_t v4, v6 = PREFIX6_DEFAULT;
	char buf[16], *slash;

	if (strlen(p) >= sizeof(buf))
		goto bad;
	memcpy(buf, p, strlen(p) + 1);
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash = '\0';
		if (config_parse_uint(slash + 1, &v6) < 0 || v6 > 128)
			goto bad;
	}
	if (config_parse_uint(buf, &v4) < 0 || v4 > 32)
		goto bad;
	l->prefix4 = (uint8_t)v4;
	l->prefix6 = (uint8_t)v6;
	return 0;
bad:
	snprintf(why, len,
	    "invalid network prefix \"%.32s\" (client_network/V4 with V4 "
	    "0..32, or client_network/V4/V6 with V6 0..128)",
	    p);
	return -1;
}

int
config_limit_parse_key(struct config_limit *l, char *why, size_t whylen)
{
	static const char net[] = "client_network/";

	if (strcmp(l->key, "user") == 0)
		l->key_type = CONFIG_LIMIT_KEY_USER;
	else if (strcmp(l->key, "client") == 0)
		l->key_type = CONFIG_LIMIT_KEY_CLIENT;
	else if (strcmp(l->key, "sender_domain") == 0)
		l->key_type = CONFIG_LIMIT_KEY_SENDER_DOMAIN;
	else if (strcmp(l->key, "destination_domain") == 0)
		l->key_type = CONFIG_LIMIT_KEY_DEST_DOMAIN;
	else if (strcmp(l->key, "destination_site") == 0)
		l->key_type = CONFIG_LIMIT_KEY_DEST_SITE;
	else if (strncmp(l->key, net, sizeof(net) - 1) == 0) {
		l->key_type = CONFIG_LIMIT_KEY_CLIENT_NETWORK;
		return parse_prefixes(l, l->key + sizeof(net) - 1, why, whylen);
	} else {
		snprintf(why, whylen,
		    "unknown key type \"%.32s\" (user, client, "
		    "client_network/N, sender_domain, "
		    "destination_domain or destination_site)",
		    l->key);
		return -1;
	}
	if ((l->key_type == CONFIG_LIMIT_KEY_DEST_DOMAIN ||
	        l->key_type == CONFIG_LIMIT_KEY_DEST_SITE) &&
	    l->count != CONFIG_LIMIT_MESSAGES &&
	    l->count != CONFIG_LIMIT_CONNECTIONS) {
		/* delivery shapes transactions and connections only */
		snprintf(why, whylen, "%s counts messages or connections only",
		    l->key);
		return -1;
	}
	return 0;
}

int
config_limit_parse_rate(struct config_limit *l, char *why, size_t whylen)
{
	static const struct {
		char unit;
		uint64_t ms;
	} units[] = {
	    {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
	char buf[32], *slash;
	uint64_t n;

	snprintf(buf, sizeof(buf), "%s", l->rate);
	if ((slash = strchr(buf, '/')) == NULL || slash[1] == '\0' ||
	    slash[2] != '\0')
		goto bad;
	*slash = '\0';
	if (config_parse_uint(buf, &n) < 0 || n > 1000000000)
		goto bad;
	if (n == 0) {
		snprintf(why, whylen,
		    "a rate of zero (\"%s\") lets nothing "
		    "through: remove the limit instead",
		    l->rate);
		return -1;
	}
	for (size_t i = 0; i < MTA_ARRAY_LEN(units); i++)
		if (slash[1] == units[i].unit) {
			l->rate_n = n;
			l->period_ms = units[i].ms;
			return 0;
		}
bad:
	snprintf(why, whylen, "invalid rate \"%.24s\" (N/s, N/m, N/h or N/d)",
	    l->rate);
	return -1;
}

int
config_shared_parse_redis(struct config_shared *sh, char *why, size_t whylen)
{
	struct config_addr a;
	struct sockaddr_un *un = (struct sockaddr_un *)&sh->ss;

	if (sh->redis[0] == '/') {
		if (strlen(sh->redis) >= sizeof(un->sun_path)) {
			snprintf(why, whylen, "socket path too long");
			return -1;
		}
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, sh->redis, strlen(sh->redis) + 1);
		sh->sslen = (socklen_t)sizeof(*un);
		return 0;
	}
	if (config_parse_endpoint(sh->redis, &a) < 0) {
		snprintf(why, whylen,
		    "\"%.64s\" is not IP:PORT or a socket path (no host "
		    "names: nothing may wait on a resolver)",
		    sh->redis);
		return -1;
	}
	sh->ss = a.ss;
	sh->sslen = a.sslen;
	return 0;
}
