/* SPDX-License-Identifier: ISC */
/*
 * cmd_dkim.c - `mta dkim keygen DOMAIN SELECTOR [--type rsa|ed25519]
 * [--bits N] [--out FILE]` and `mta dkim check DOMAIN [-c FILE]`.
 *
 * keygen writes a new private key (PEM, mode 0600; an existing file is
 * never replaced) and prints, as a zone-file fragment, the [dkim] lines
 * to configure it as comments and the TXT record to publish, split into
 * strings of at most 255 bytes (RFC 1035 character-strings; RFC 6376
 * 3.6.2.2 joins them).
 *
 * check looks up SELECTOR._domainkey.DOMAIN for every [dkim DOMAIN]
 * section through the configured [dns] servers and says, per selector,
 * whether the published p= is the public half of the configured key.
 * Exit 0 when all match, 1 otherwise, 2 for bad usage. Main thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/str.h"
#include "cli/cmd.h"
#include "config/config.h"
#include "dkim/dkim.h"
#include "dns/dns.h"

#define TXT_STRING_MAX 255
#define TAG_MAX        4096 /* a p= of RSA-8192 is about 1400 bytes */

static int
usage(void)
{
	fprintf(stderr, "usage: mta dkim keygen DOMAIN SELECTOR "
	                "[--type rsa|ed25519] [--bits N] [--out FILE]\n"
	                "       mta dkim check DOMAIN [-c FILE]\n");
	return 2;
}

/* rec as a TXT record: quoted strings of at most 255 bytes. */
static void
print_record(const char *domain, const char *selector, const char *rec)
{
	size_t len = strlen(rec), n;

	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (size_t i = 0; i < len; i += n) {
		n = len - i < TXT_STRING_MAX ? len - i : TXT_STRING_MAX;
		printf(" \"%.*s\"", (int)n, rec + i);
	}
	printf(" )\n");
}

struct keygen_args {
	const char *domain, *selector, *out;
	enum dkim_alg alg;
	unsigned bits;
	char outbuf[CONFIG_PATH_MAX];
};

static int
keygen_parse(int argc, char **argv, struct keygen_args *a)
{
	int i;

	if (argc < 4 || argv[2][0] == '-' || argv[3][0] == '-')
		return -1;
	a->domain = argv[2];
	a->selector = argv[3];
	a->alg = DKIM_RSA_SHA256;
	a->bits = 2048;
	a->out = NULL;
	for (i = 4; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--type") == 0 &&
		    strcmp(argv[i + 1], "rsa") == 0)
			a->alg = DKIM_RSA_SHA256;
		else if (strcmp(argv[i], "--type") == 0 &&
		         strcmp(argv[i + 1], "ed25519") == 0)
			a->alg = DKIM_ED25519_SHA256;
		else if (strcmp(argv[i], "--bits") == 0)
			a->bits = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--out") == 0)
			a->out = argv[i + 1];
		else
			return -1;
	}
	if (i != argc || strspn(a->domain, "abcdefghijklmnopqrstuvwxyz"
	                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                   "0123456789-.") != strlen(a->domain))
		return -1;
	if (a->out == NULL) {
		if (!str_fmt(a->outbuf, sizeof(a->outbuf), "%s.%s.pem",
		        a->domain, a->selector))
			return -1;
		a->out = a->outbuf;
	}
	return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
	struct keygen_args a;
	struct dkim_key *k;
	char err[DKIM_ERR_MAX];
	struct buf rec;
	int rc = 0;

	if (keygen_parse(argc, argv, &a) < 0)
		return usage();
	if (dkim_key_generate(a.alg, a.bits, a.out, err, sizeof(err)) < 0 ||
	    dkim_key_load(a.out, &k, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta: dkim keygen: %s\n", err);
		return 1;
	}
	buf_init(&rec, 64 * 1024);
	if (dkim_key_record(k, &rec) < 0) {
		fprintf(stderr, "mta: dkim keygen: cannot encode the key\n");
		rc = 1;
	} else {
		printf("; %s key written to %s (mode 0600); configure it:\n"
		       ";   [dkim %s]\n;   selector = %s\n;   key = %s\n"
		       "; and publish:\n",
		    a.alg == DKIM_RSA_SHA256 ? "RSA" : "Ed25519", a.out,
		    a.domain, a.selector, a.out);
		print_record(
		    a.domain, a.selector, (const char *)buf_peek(&rec));
	}
	buf_fini(&rec);
	dkim_key_free(k);
	return rc;
}

/* The value of tag (e.g. "p") in a key record, blanks removed. */
static void
record_tag(const char *rec, const char *tag, char *out, size_t outlen)
{
	size_t tl = strlen(tag), n = 0;
	const char *p = rec;

	out[0] = '\0';
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (strncmp(p, tag, tl) == 0 && p[tl] == '=') {
			for (p += tl + 1; *p != '\0' && *p != ';'; p++)
				if (*p != ' ' && *p != '\t' && n + 1 < outlen)
					out[n++] = *p;
			out[n] = '\0';
			return;
		}
		p += strcspn(p, ";");
	}
}

/* One selector: 0 when its published key is the configured one. */
static int
check_one(
    const struct config *c, const struct config_dkim *d, const char *domain)
{
	static char want[TAG_MAX], got[TAG_MAX];
	char name[512], err[DKIM_ERR_MAX];
	struct dkim_key *k;
	struct buf rec, txt;
	int n, rc = 1;

	snprintf(name, sizeof(name), "%s._domainkey.%s", d->selector, domain);
	if (dkim_key_load(d->key, &k, err, sizeof(err)) < 0) {
		printf("%s: key: %s\n", name, err);
		return 1;
	}
	buf_init(&rec, 64 * 1024);
	buf_init(&txt, 64 * 1024);
	if (dkim_key_record(k, &rec) == 0)
		record_tag(
		    (const char *)buf_peek(&rec), "p", want, sizeof(want));
	n = dns_txt_lookup(&c->dns, name, &txt, err, sizeof(err));
	if (n < 0)
		printf("%s: lookup failed: %s\n", name, err);
	else if (n == 0)
		printf("%s: no TXT record\n", name);
	else if (n > 1)
		printf("%s: %d TXT records (one expected)\n", name, n);
	else {
		record_tag((const char *)buf_peek(&txt), "p", got, sizeof(got));
		rc = strcmp(got, want) == 0 ? 0 : 1;
		printf("%s: %s (%s, %u bits)\n", name,
		    rc == 0 ? "ok, the published key matches"
		    : got[0] == '\0'
		        ? "the published key is revoked (p=)"
		        : "MISMATCH: the published key is another one",
		    dkim_key_alg(k) == DKIM_RSA_SHA256 ? "rsa" : "ed25519",
		    dkim_key_bits(k));
	}
	buf_fini(&rec);
	buf_fini(&txt);
	dkim_key_free(k);
	return rc;
}

static int
cmd_dkim_check(const char *config_path, const char *arg)
{
	struct config *c;
	char err[1024], domain[CONFIG_HOST_MAX];
	size_t n = 0;
	int rc = 0;

	if (!str_copy(domain, sizeof(domain), arg))
		return usage();
	str_lower(domain);
	if (config_load(config_path, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t i = 0; i < c->ndkims; i++) {
		const struct config_dkim *d = &c->dkims[i];

		if (strcmp(d->domain, domain) != 0 &&
		    strcmp(d->domain, "*") != 0)
			continue;
		n++;
		rc |= check_one(c, d, domain);
	}
	if (n == 0) {
		fprintf(
		    stderr, "mta: dkim check: no [dkim %s] section\n", domain);
		rc = 1;
	}
	config_unref(c);
	return rc;
}

int
cmd_dkim(const char *config_path, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (argc == 3 && strcmp(argv[1], "check") == 0)
		return cmd_dkim_check(config_path, argv[2]);
	return usage();
}
