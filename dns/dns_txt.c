/* SPDX-License-Identifier: ISC */
/*
 * dns_txt.c - one blocking TXT lookup for command-line tools (`mta dkim
 * check`): its own c-ares channel on the configured servers, driven by
 * poll until the answer or the channel's own timeout. The relay never
 * calls it (its resolver thread is dns_ares.c, which never blocks).
 * Runs on the caller's thread; the channel lives for one call.
 */
#include "dns/dns.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "dns/dns_int.h"

struct txt_result {
	struct buf *out;
	int status; /* ARES_* */
	int n;      /* records */
	bool done;
};

int
dns_txt_records(const unsigned char *abuf, int alen, struct buf *out, int *n)
{
	struct ares_txt_ext *txt = NULL, *t;
	bool open = false;
	int full = 0, status;

	status = ares_parse_txt_reply_ext(abuf, alen, &txt);
	for (t = txt; t != NULL && status == ARES_SUCCESS; t = t->next) {
		if (t->record_start && open) {
			full |= buf_append(out, "", 1);
			(*n)++;
		}
		open = true;
		full |= buf_append(out, t->txt, t->length);
	}
	if (open) {
		full |= buf_append(out, "", 1);
		(*n)++;
	}
	if (full != 0)
		status = ARES_ENOMEM;
	if (status == ARES_ENODATA)
		status = ARES_SUCCESS;
	ares_free_data(txt);
	return status;
}

/* Each record: its strings joined, then NUL. */
static void
txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct txt_result *res = arg;

	(void)timeouts;
	res->done = true;
	res->status = status;
	if (status == ARES_SUCCESS)
		res->status = dns_txt_records(abuf, alen, res->out, &res->n);
}

static int
txt_channel(const struct config_dns *cfg, ares_channel *ch)
{
	struct ares_options o;
	char csv[1024] = "";
	size_t len = 0;

	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	o.timeout = cfg->timeout
	                ? (int)(cfg->timeout > 60000 ? 60000 : cfg->timeout)
	                : 5000;
	o.tries = cfg->tries ? (int)(cfg->tries > 5 ? 5 : cfg->tries) : 2;
	if (ares_init_options(
	        ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) !=
	    ARES_SUCCESS)
		return -EIO;
	for (size_t i = 0; i < cfg->nservers && len < sizeof(csv); i++)
		len += (size_t)snprintf(csv + len, sizeof(csv) - len, "%s%s",
		    i > 0 ? "," : "", cfg->servers[i].text);
	if (len > 0 && ares_set_servers_ports_csv(*ch, csv) != ARES_SUCCESS) {
		ares_destroy(*ch);
		return -EINVAL;
	}
	return 0;
}

/* c-ares's ARES_GETSOCK_* macros shift an int into its sign bit. */
static bool
sock_bit(int bits, int i, bool write)
{
	return ((unsigned)bits >> (i + (write ? ARES_GETSOCK_MAXNUM : 0))) & 1u;
}

/* Drive the channel until the callback ran. */
static void
txt_wait(ares_channel ch, struct txt_result *res)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	struct timeval tv, *tvp;
	int bits, n, ms;

	while (!res->done) {
		bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		n = 0;
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			bool r = sock_bit(bits, i, false);
			bool w = sock_bit(bits, i, true);

			if (!r && !w)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events =
			    (short)((r ? POLLIN : 0) | (w ? POLLOUT : 0));
			pfd[n++].revents = 0;
		}
		tvp = ares_timeout(ch, NULL, &tv);
		ms = tvp ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000)
		         : 1000;
		(void)poll(pfd, (nfds_t)n, ms);
		for (int i = 0; i < n; i++)
			ares_process_fd(ch,
			    pfd[i].revents & (POLLIN | POLLERR | POLLHUP)
			        ? pfd[i].fd
			        : ARES_SOCKET_BAD,
			    pfd[i].revents & POLLOUT ? pfd[i].fd
			                             : ARES_SOCKET_BAD);
		if (n == 0)
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

int
dns_txt_lookup(const struct config_dns *cfg, const char *name, struct buf *out,
    char *err, size_t errlen)
{
	struct txt_result res = {out, ARES_SUCCESS, 0, false};
	ares_channel ch;

	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
	    txt_channel(cfg, &ch) < 0) {
		snprintf(err, errlen, "cannot set up a resolver");
		return -EIO;
	}
	ares_query(ch, name, ns_c_in, ns_t_txt, txt_cb, &res);
	txt_wait(ch, &res);
	ares_destroy(ch);
	ares_library_cleanup();
	if (res.status == ARES_SUCCESS)
		return res.n;
	snprintf(err, errlen, "%s: %s", name, ares_strerror(res.status));
	return res.status == ARES_ENOTFOUND ? -ENOENT : -EAGAIN;
}
