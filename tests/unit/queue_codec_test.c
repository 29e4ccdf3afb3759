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
    {s_r1, QUEUE_RCPT_PENDING, 0, 1700000000000ull, s_empty, 0, NULL},
    {s_r2, QUEUE_RCPT_PENDING, 3, 1700000900000ull, s_reply2, 0, NULL},
    {s_r3, QUEUE_RCPT_FAILED, 1, 0, s_reply3, 0, NULL},
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
	       strcmp(a->reply, b->reply) == 0 && a->notify == b->notify &&
	       strcmp(a->orcpt ? a->orcpt : "", b->orcpt ? b->orcpt : "") == 0;
}

static int
env_eq(const struct queue_envelope *a, const struct queue_envelope *b)
{
	if (a->id != b->id || a->received_ms != b->received_ms ||
	    a->size != b->size || a->flags != b->flags ||
	    strcmp(a->from, b->from) || strcmp(a->user, b->user) ||
	    strcmp(a->client, b->client) || strcmp(a->helo, b->helo) ||
	    a->nrcpts != b->nrcpts || a->ret != b->ret ||
	    strcmp(a->envid ? a->envid : "", b->envid ? b->envid : ""))
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
	/* no DSN field: still version 1, which an older relay reads */
	CHECK(buf_peek(&b)[0] == 1);
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
	static const uint8_t versions[] = {0, 3, 0x7f, 0xff};
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
	struct queue_rcpt bad = {
	    s_r1, QUEUE_RCPT_NSTATES, 0, 0, s_empty, 0, NULL};
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

/* The version 1 layout, written field by field as the relay wrote it
 * before DSN (not with the encoder under test). */
static void
v1_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v};

	CHECK(buf_append(b, x, 4) == 0);
}

static void
v1_u64(struct buf *b, uint64_t v)
{
	v1_u32(b, (uint32_t)(v >> 32));
	v1_u32(b, (uint32_t)v);
}

static void
v1_str(struct buf *b, const char *s)
{
	v1_u32(b, (uint32_t)strlen(s));
	CHECK(buf_append(b, s, strlen(s)) == 0);
}

static void
test_v1_record_decodes(void)
{
	struct queue_envelope d;
	struct buf b;

	buf_init(&b, 4096);
	CHECK(buf_append(&b, "\x01", 1) == 0);
	v1_u64(&b, 42);
	v1_u64(&b, 1700000000123ull);
	v1_u64(&b, 99);
	v1_u32(&b, QUEUE_FLAG_WARNED);
	v1_str(&b, "a@x.example");
	v1_str(&b, "");
	v1_str(&b, "192.0.2.1");
	v1_str(&b, "h.example");
	v1_u32(&b, 2);
	v1_str(&b, "r1@y.example");
	CHECK(buf_append(&b, "\x00", 1) == 0); /* pending */
	v1_u32(&b, 1);
	v1_u64(&b, 1700000060000ull);
	v1_str(&b, "451 4.7.1 later");
	v1_str(&b, "r2@y.example");
	CHECK(buf_append(&b, "\x02", 1) == 0); /* failed */
	v1_u32(&b, 1);
	v1_u64(&b, 0);
	v1_str(&b, "550 5.1.1 no");
	CHECK(queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) == 0);
	CHECK(d.id == 42 && d.size == 99 && d.flags == QUEUE_FLAG_WARNED);
	CHECK(strcmp(d.from, "a@x.example") == 0 && d.nrcpts == 2);
	CHECK(strcmp(d.rcpts[1].reply, "550 5.1.1 no") == 0);
	CHECK(d.rcpts[0].state == QUEUE_RCPT_PENDING &&
	      d.rcpts[1].state == QUEUE_RCPT_FAILED);
	/* the DSN fields it never had: empty, not NULL */
	CHECK(d.envid != NULL && d.envid[0] == '\0' && d.ret == 0);
	for (size_t i = 0; i < d.nrcpts; i++)
		CHECK(d.rcpts[i].notify == 0 && d.rcpts[i].orcpt != NULL &&
		      d.rcpts[i].orcpt[0] == '\0');
	queue_envelope_fini(&d);
	buf_fini(&b);
}

static void
test_dsn_round_trip(void)
{
	static char envid[] = "QQ+2B1", orcpt[] = "rfc822;bob+40example.com";
	struct queue_rcpt r[3];
	struct queue_envelope e = sample, d;
	struct buf b, b2;
	size_t n;

	memcpy(r, sample_rcpts, sizeof(r));
	r[0].notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE;
	r[0].orcpt = orcpt;
	r[2].notify = QUEUE_NOTIFY_NEVER;
	e.rcpts = r;
	e.envid = envid;
	e.ret = QUEUE_RET_HDRS;
	buf_init(&b, 1 << 20);
	buf_init(&b2, 1 << 20);
	CHECK(queue_envelope_encode(&e, &b) == 0);
	CHECK(buf_peek(&b)[0] == 2);
	CHECK(queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) == 0);
	CHECK(env_eq(&e, &d));
	CHECK(queue_envelope_encode(&d, &b2) == 0);
	CHECK(buf_avail(&b) == buf_avail(&b2) &&
	      memcmp(buf_peek(&b), buf_peek(&b2), buf_avail(&b)) == 0);
	queue_envelope_fini(&d);
	/* every prefix fails whole; an unknown NOTIFY bit is corrupt */
	n = buf_avail(&b);
	for (size_t len = 0; len < n; len++) {
		CHECK(queue_envelope_decode(buf_peek(&b), len, &d) == -EBADMSG);
		CHECK(is_zero(&d));
	}
	/* the last recipient's notify byte sits before its empty orcpt */
	b.data[b.off + n - 4 - 1] = 0x10;
	CHECK(queue_envelope_decode(buf_peek(&b), n, &d) == -EBADMSG);
	/* RET alone makes version 2 too */
	buf_fini(&b);
	buf_init(&b, 1 << 20);
	e.rcpts = sample_rcpts;
	e.envid = NULL;
	e.ret = QUEUE_RET_FULL;
	CHECK(queue_envelope_encode(&e, &b) == 0 && buf_peek(&b)[0] == 2);
	CHECK(queue_envelope_decode(buf_peek(&b), buf_avail(&b), &d) == 0);
	CHECK(d.ret == QUEUE_RET_FULL && strcmp(d.envid, "") == 0);
	queue_envelope_fini(&d);
	buf_fini(&b);
	buf_fini(&b2);
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
    {"v1_record_decodes", test_v1_record_decodes},
    {"dsn_round_trip", test_dsn_round_trip},
    {"key_order", test_key_order},
    {"id_text", test_id_text},
};

HARNESS_MAIN(cases)
