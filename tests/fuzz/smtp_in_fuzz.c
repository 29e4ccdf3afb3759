/* SPDX-License-Identifier: ISC */
/*
 * smtp_in_fuzz.c - libFuzzer target for the receive-side state machine
 * and its parsers. Not built by default; with the tree built by `make`:
 *
 *	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *	    -I. -Imta tests/fuzz/smtp_in_fuzz.c mta/smtp/smtp_in.c
 *	    mta/smtp/smtp_body.c mta/smtp/smtp_parse.c
 *	    build/libmta.a -llmdb -luring -lssl -lcrypto -lcares -linih -lcrypt
 *	    -o build/smtp_in_fuzz && build/smtp_in_fuzz -max_len=4096
 *
 * The first input byte picks the read size (1..256), the second the
 * session's settings (the input's length picks nul_in_body); the rest is
 * what the client sends (DATA and BDAT alike). Every action is
 * completed as a receive loop would, with outcomes taken from the input,
 * so COMMIT, AUTH and STARTTLS paths are all reachable. Invariants: no
 * crash or sanitizer report, `out` stays bounded, the in-flight budget
 * returns to zero, and a CLOSE is final.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "queue/queue.h"
#include "smtp/smtp_in.h"
#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t fuzz_budget;

static bool
fuzz_reserve(void *arg, size_t n)
{
	(void)arg;
	if (n > (1 << 20) - fuzz_budget)
		return false;
	fuzz_budget += n;
	return true;
}

static void
fuzz_release(void *arg, size_t n)
{
	(void)arg;
	fuzz_budget -= n;
}

static uint64_t
fuzz_id(void *arg)
{
	return ++*(uint64_t *)arg;
}

/* Drive the parsers directly too: the line is any byte string. */
static void
fuzz_parsers(const uint8_t *p, size_t n)
{
	struct smtp_parse_path path;
	struct smtp_parse_cmd cmd;
	uint8_t dec[512];
	uint64_t size;
	bool last;

	(void)smtp_parse_command((const char *)p, n, &cmd);
	(void)smtp_parse_mail((const char *)p, n, &path);
	(void)smtp_parse_rcpt((const char *)p, n, true, &path);
	(void)smtp_parse_base64((const char *)p, n, dec, sizeof(dec));
	(void)smtp_parse_xtext((const char *)p, n);
	(void)smtp_parse_bdat((const char *)p, n, &size, &last);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_in_cfg cfg = {0};
	struct smtp_in_peer peer = {0};
	enum smtp_in_action act = SMTP_IN_READ;
	struct smtp_in *s;
	struct buf out;
	uint64_t ids = 0;
	size_t chunk, off = 2;
	unsigned turn = 0;

	if (size < 2)
		return 0;
	log_set_level(LOG_LEVEL_WARN);
	fuzz_parsers(data + 2, size - 2);
	chunk = (size_t)data[0] + 1;
	cfg.hostname = "fuzz.test";
	cfg.max_message_size = data[1] & 1 ? 200 : 100000;
	cfg.max_recipients = 3;
	cfg.max_errors = 20;
	cfg.tls_available = data[1] & 2;
	cfg.auth_available = data[1] & 4;
	cfg.auth_require_tls = data[1] & 8;
	cfg.auth_max_failures = 3;
	cfg.id_new = fuzz_id;
	cfg.id_arg = &ids;
	cfg.inflight_reserve = fuzz_reserve;
	cfg.inflight_release = fuzz_release;
	strcpy(peer.addr, data[1] & 16 ? "::1" : "127.0.0.1");
	peer.relay_allowed = data[1] & 32;
	peer.tls = data[1] & 64;
	cfg.bare_reject = data[1] & 128;
	cfg.nul_strip = size & 1;
	buf_init(&out, 1 << 22);
	s = smtp_in_new(&cfg, &peer, &out);
	while (act != SMTP_IN_CLOSE) {
		bool ok = (turn++ + size) % 3 != 0;
		const char *u, *p;
		struct queue_submit *q;

		switch (act) {
		case SMTP_IN_COMMIT:
			q = smtp_in_commit_take(s);
			q->status = ok ? 0 : -ENOSPC;
			act = smtp_in_commit_done(s, q, &out);
			continue;
		case SMTP_IN_AUTH:
			smtp_in_auth_peek(s, &u, &p);
			act = smtp_in_auth_done(s, ok, &out);
			continue;
		case SMTP_IN_STARTTLS:
			act = smtp_in_tls_done(s, ok, &out);
			continue;
		default:
			break;
		}
		buf_reset(&out);
		if (off >= size)
			break;
		if (!smtp_in_want_read(s))
			abort();
		if (chunk > size - off)
			chunk = size - off;
		act = smtp_in_feed(s, data + off, chunk, &out);
		off += chunk;
	}
	if (act != SMTP_IN_CLOSE && off >= size)
		act = smtp_in_timeout(s, &out);
	if (act != SMTP_IN_CLOSE)
		abort();
	smtp_in_free(s);
	buf_fini(&out);
	if (fuzz_budget != 0)
		abort();
	return 0;
}
