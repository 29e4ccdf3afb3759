/* SPDX-License-Identifier: ISC */
/*
 * queue_codec_test.c - the envelope record: round trip, and strict
 * rejection of truncated, unknown-version, trailing and corrupt input.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "queue/queue.h"
#include "../harness.h"

static char s_from[] = "alice@example.org";
static char s_user[] = "alice";
static char s_client[] = "192.0.2.7";
static char s_helo[] = "client.example.org";
static char s_empty[] = "";
static char s_r1[] = "bob@example.com";
static char s_r2[] = "j\xc3\xb6rg@b\xc3\xbc"
                     "cher.example"; /* SMTPUTF8 */
static char s_r3[] = "carol@example.net";
static char s_reply2[] = "451 4.7.1 greylisted, \"try\" again later";
static char s_reply3[] = "550 5.1.1 no such user";

static struct queue_rcpt sample_rcpts[] = {
    {s_r1, QUEUE_RCPT_PENDING, 0, 1700000000000ull, s_empty},
    {s_r2, QUEUE_RCPT_PENDING, 3, 1700000900000ull, s_reply2},
    {s_r3, QUEUE_RCPT_FAILED, 1, 0, s_reply3},
};

static const struct queue_envelope sample = {
    .id = 0x0006123456789abcull,
    .received_ms = 1700000000123ull,
    .size = 1834,
    .flags = QUEUE_FLAG_HELD,
    .from = s_from,
    .user = s_user,
    .client = s_client,
    .helo = s_helo,
    .rcpts = sample_rcpts,
    .nrcpts = 3,
};

static int
rcpt_eq(const struct queue_rcpt *a, const struct queue_rcpt *b)
{
	return strcmp(a->addr, b->addr) == 0 && a->state == b->state &&
	       a->attempts == b->attempts && a->next_ms == b->next_ms &&
	       strcmp(a->reply, b->reply) == 0;
}

static int
env_eq(const struct queue_envelope *a, const struct queue_envelope *b)
{
	if (a->id != b->id || a->received_ms != b->received_ms ||
	    a->size != b->size || a->flags != b->flags ||
	    strcmp(a->from, b->from) || strcmp(a->user, b->user) ||
	    strcmp(a->client, b->client) || strcmp(a->helo, b->helo) ||
	    a->nrcpts != b->nrcpts)
		return 0;
	for (size_t i = 0; i < a->nrcpts; i++)
		if (!rcpt_eq(&a->rcpts[i], &b->rcpts[i]))
			return 0;
	return 1;
}

static int
is_zero(const struct queue_envelope *e)
{
	static const struct queue_envelope z;

	return memcmp(e, &z, sizeof(z)) == 0;
}

static void
test_round_trip(void)
{
	struct buf b, b2;
	struct queue_envelope d;

	buf_init(&b, 1 << 20);
	buf_init(&b2, 1 << 20);
	CHECK(queue_envelope_encode(&sample, &b) == 0);
	CHECK(buf_peek(&b)[0] == QUEUE_RECORD_VERSION);
	CHECK(queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) == 0);
	CHECK(env_eq(&sample, &d));
	/* Decoding then encoding again gives the same bytes. */
	CHECK(queue_envelope_encode(&d, &b2) == 0);
	CHECK(buf_avail(&b) == buf_avail(&b2));
	CHECK(memcmp(buf_peek(&b), buf_peek(&b2), buf_avail(&b)) == 0);
	queue_envelope_fini(&d);
	CHECK(is_zero(&d));
	queue_envelope_fini(NULL);
	buf_fini(&b);
	buf_fini(&b2);
}

static void
test_no_rcpts_empty_strings(void)
{
	struct queue_envelope e = {.id = 1,
	    .from = s_empty,
	    .user = s_empty,
	    .client = s_empty,
	    .helo = s_empty};
	struct queue_envelope d;
	struct buf b;

	buf_init(&b, 1024);
	CHECK(queue_envelope_encode(&e, &b) == 0);
	CHECK(queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) == 0);
	CHECK(env_eq(&e, &d) && d.rcpts == NULL);
	queue_envelope_fini(&d);
	buf_fini(&b);
}

static void
test_truncated(void)
{
	struct queue_envelope d;
	struct buf b;
	size_t n;

	buf_init(&b, 1 << 20);
	CHECK(queue_envelope_encode(&sample, &b) == 0);
	n = buf_avail(&b);
	/* Every proper prefix, including empty, is rejected whole. */
	for (size_t len = 0; len < n; len++) {
		memset(&d, 0xa5, sizeof(d));
		CHECK(queue_envelope_decode(buf_peek(&b), len, &d) == -EBADMSG);
		CHECK(is_zero(&d));
	}
	buf_fini(&b);
}

static void
test_unknown_version(void)
{
	static const uint8_t versions[] = {0, 2, 0x7f, 0xff};
	struct queue_envelope d;
	struct buf b;

	buf_init(&b, 1 << 20);
	CHECK(queue_envelope_encode(&sample, &b) == 0);
	for (size_t i = 0; i < sizeof(versions); i++) {
		b.data[b.off] = versions[i];
		CHECK(queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) ==
		      -EBADMSG);
		CHECK(is_zero(&d));
	}
	buf_fini(&b);
}

static void
test_trailing(void)
{
	struct queue_envelope d;
	struct buf b;

	buf_init(&b, 1 << 20);
	CHECK(queue_envelope_encode(&sample, &b) == 0);
	CHECK(buf_append(&b, "", 1) == 0);
	CHECK(
	    queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) == -EBADMSG);
	CHECK(is_zero(&d));
	buf_fini(&b);
}

/* Offsets in the v1 layout, from queue_codec.c. */
#define OFF_FROM_LEN (1 + 8 + 8 + 8 + 4)

static void
test_corrupt_fields(void)
{
	struct queue_envelope d;
	struct buf b;
	uint8_t *p;
	size_t n, nrcpts_off;

	buf_init(&b, 1 << 20);
	CHECK(queue_envelope_encode(&sample, &b) == 0);
	p = b.data + b.off;
	n = buf_avail(&b);

	/* A NUL inside a string. */
	p[OFF_FROM_LEN + 4 + 2] = '\0';
	CHECK(queue_envelope_decode(p, n, &d) == -EBADMSG);
	p[OFF_FROM_LEN + 4 + 2] = (uint8_t)s_from[2];
	CHECK(queue_envelope_decode(p, n, &d) == 0);
	queue_envelope_fini(&d);

	/* A string length past the end. */
	p[OFF_FROM_LEN] = 0x7f;
	CHECK(queue_envelope_decode(p, n, &d) == -EBADMSG);
	p[OFF_FROM_LEN] = 0;

	/* A recipient count no input could hold: rejected before any
	 * allocation (ASan would notice a 4G-entry calloc). */
	nrcpts_off = OFF_FROM_LEN + 4 * 4 + strlen(s_from) + strlen(s_user) +
	             strlen(s_client) + strlen(s_helo);
	CHECK(p[nrcpts_off + 3] == 3);
	memset(p + nrcpts_off, 0xff, 4);
	CHECK(queue_envelope_decode(p, n, &d) == -EBADMSG);
	CHECK(is_zero(&d));
	/* One recipient fewer: the rest becomes trailing bytes. */
	memset(p + nrcpts_off, 0, 4);
	p[nrcpts_off + 3] = 2;
	CHECK(queue_envelope_decode(p, n, &d) == -EBADMSG);
	p[nrcpts_off + 3] = 3;

	/* An unknown recipient state (the last recipient's state byte sits
	 * before attempts, next_ms and its reply). */
	p[n - strlen(s_reply3) - 4 - 8 - 4 - 1] = QUEUE_RCPT_NSTATES;
	CHECK(queue_envelope_decode(p, n, &d) == -EBADMSG);
	CHECK(is_zero(&d));
	buf_fini(&b);
}

static void
test_encode_errors(void)
{
	struct queue_rcpt bad = {s_r1, QUEUE_RCPT_NSTATES, 0, 0, s_empty};
	struct queue_envelope e = sample;
	struct buf b;

	buf_init(&b, 1 << 20);
	CHECK(buf_append(&b, "xy", 2) == 0);
	e.rcpts = &bad;
	e.nrcpts = 1;
	CHECK(queue_envelope_encode(&e, &b) == -EINVAL);
	CHECK_MEM(buf_peek(&b), buf_avail(&b), "xy");
	buf_fini(&b);

	/* Out of room: nothing of the record is left behind. */
	buf_init(&b, 40);
	CHECK(buf_append(&b, "xy", 2) == 0);
	CHECK(queue_envelope_encode(&sample, &b) == -ENOBUFS);
	CHECK_MEM(buf_peek(&b), buf_avail(&b), "xy");
	buf_fini(&b);
}

static void
test_key_order(void)
{
	uint8_t a[8], b[8];

	queue_key_put(a, 0x00000000000000ffull);
	queue_key_put(b, 0x0000000000000100ull);
	CHECK(memcmp(a, b, 8) < 0);
	CHECK(queue_key_get(b) == 0x100);
	queue_key_put(a, 0x0102030405060708ull);
	CHECK(a[0] == 1 && a[7] == 8);
	CHECK(queue_key_get(a) == 0x0102030405060708ull);
}

static void
test_id_text(void)
{
	char s[QUEUE_ID_HEX + 1];
	uint64_t id;

	queue_id_fmt(0x0006123456789abcull, s);
	CHECK(strcmp(s, "0006123456789abc") == 0);
	CHECK(queue_id_parse(s, &id) == 0 && id == 0x0006123456789abcull);
	CHECK(queue_id_parse("0006123456789ABC", &id) == 0 &&
	      id == 0x0006123456789abcull);
	CHECK(queue_id_parse("ffffffffffffffff", &id) == 0 && id == UINT64_MAX);
	CHECK(queue_id_parse("", &id) == -EINVAL);
	CHECK(queue_id_parse("0006123456789ab", &id) == -EINVAL);
	CHECK(queue_id_parse("0006123456789abcd", &id) == -EINVAL);
	CHECK(queue_id_parse("0006123456789abg", &id) == -EINVAL);
	CHECK(queue_id_parse(" 006123456789abc", &id) == -EINVAL);
}

static const struct harness_case cases[] = {
    {"round_trip", test_round_trip},
    {"no_rcpts_empty_strings", test_no_rcpts_empty_strings},
    {"truncated", test_truncated},
    {"unknown_version", test_unknown_version},
    {"trailing", test_trailing},
    {"corrupt_fields", test_corrupt_fields},
    {"encode_errors", test_encode_errors},
    {"key_order", test_key_order},
    {"id_text", test_id_text},
};

HARNESS_MAIN(cases)
