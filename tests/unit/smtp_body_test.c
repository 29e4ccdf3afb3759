/* SPDX-License-Identifier: ISC */
/*
 * smtp_body_test.c - the message-content machine alone: line-end
 * normalisation in DATA and BDAT form, the end of DATA, NUL, the line and
 * size limits and the budget, each input also cut at every offset.
 */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "smtp/smtp_body.h"
#include "../harness.h"

#define HDR "Received: x\r\n"

static size_t budget_used;

static bool
reserve(void *arg, size_t n)
{
	size_t limit = *(size_t *)arg;

	if (n > limit - budget_used)
		return false;
	budget_used += n;
	return true;
}

static void
release(void *arg, size_t n)
{
	(void)arg;
	budget_used -= n;
}

static size_t budget_limit = SIZE_MAX;

static void
body_open(struct smtp_body *b, uint64_t max, bool strip, bool rej)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
	b->nul_strip = strip;
	b->bare_reject = rej;
	b->reserve = reserve;
	b->release = release;
	b->arg = &budget_limit;
	buf_init(&b->buf, 0);
	CHECK(smtp_body_begin(b, 64));
	CHECK(buf_append(&b->buf, HDR, strlen(HDR)) == 0);
	smtp_body_open(b);
}

static bool
stored_is(const struct smtp_body *b, const char *want, size_t n)
{
	size_t h = strlen(HDR);

	if (buf_avail(&b->buf) == h + n &&
	    memcmp((const char *)buf_peek(&b->buf) + h, want, n) == 0 &&
	    b->size == n)
		return true;
	fprintf(stderr, "stored: [%.*s]\n", (int)buf_avail(&b->buf),
	    (const char *)buf_peek(&b->buf));
	return false;
}

/* DATA: (wire, n) cut at `cut`, must end exactly at its last byte. */
static bool
data_run(struct smtp_body *b, const char *wire, size_t n, size_t cut)
{
	bool end = false;
	size_t u;

	u = smtp_body_data(b, (const uint8_t *)wire, cut, &end);
	if (end)
		return false;
	if (u != cut)
		return false;
	u = smtp_body_data(b, (const uint8_t *)wire + cut, n - cut, &end);
	return end && u == n - cut;
}

static const struct {
	const char *data, *chunk, *stored;
} rows[] = {
    {"a\r\n.\r\n", "a\r\n", "a\r\n"},
    {"a\nb\n\r\n.\r\n", "a\nb\n\r\n", "a\r\nb\r\n\r\n"},
    {"a\rb\r\r\n.\r\n", "a\rb\r\r\n", "a\r\nb\r\n\r\n"},
    {"..x\r\n.\r\n", ".x\r\n", ".x\r\n"},
    {"\n.\n.\r\n.\r\n", "\n.\n.\r\n", "\r\n.\r\n.\r\n"},
    {"H: v\r\n\r\n..\r\n\r\n.\r\n", "H: v\r\n\r\n.\r\n\r\n",
        "H: v\r\n\r\n.\r\n\r\n"},
    {"H: v\r\n\r\nl1\r\nl2\r\n\r.\r\n.\r\n", "H: v\r\n\r\nl1\r\nl2\r\n\r.\r\n",
        "H: v\r\n\r\nl1\r\nl2\r\n\r\n.\r\n"},
};

/* The same message by DATA and as a BDAT chunk stores the same bytes,
 * wherever the input is cut. */
static void
test_forms(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t dn = strlen(rows[i].data), cn = strlen(rows[i].chunk);
		const char *want = rows[i].stored;

		for (size_t cut = 0; cut < dn; cut++) {
			struct smtp_body b;

			body_open(&b, 1000, false, false);
			CHECK(data_run(&b, rows[i].data, dn, cut));
			CHECK(stored_is(&b, want, strlen(want)));
			CHECK(smtp_body_fault(&b) == SMTP_BODY_OK);
			smtp_body_reset(&b);
		}
		for (size_t cut = 0; cut <= cn; cut++) {
			struct smtp_body b;

			body_open(&b, 1000, false, false);
			smtp_body_chunk(
			    &b, (const uint8_t *)rows[i].chunk, cut);
			smtp_body_chunk(
			    &b, (const uint8_t *)rows[i].chunk + cut, cn - cut);
			smtp_body_last(&b);
			CHECK(stored_is(&b, want, strlen(want)));
			smtp_body_reset(&b);
		}
	}
	CHECK(budget_used == 0);
}

/* A chunk's last line without its end, or with a lone CR, is ended. */
static void
test_last(void)
{
	struct smtp_body b;

	body_open(&b, 1000, false, true);
	smtp_body_chunk(&b, (const uint8_t *)"a\r\nb", 4);
	smtp_body_last(&b);
	CHECK(stored_is(&b, "a\r\nb\r\n", 6));
	CHECK(smtp_body_fault(&b) == SMTP_BODY_OK);
	smtp_body_reset(&b);
	body_open(&b, 1000, false, true);
	smtp_body_chunk(&b, (const uint8_t *)"a\r", 2);
	smtp_body_last(&b);
	CHECK(stored_is(&b, "a\r\n", 3));
	CHECK(smtp_body_fault(&b) == SMTP_BODY_BARE);
	smtp_body_reset(&b);
}

/* The faults, each alone, in both modes where there are two. */
static void
test_faults(void)
{
	char line[1100];
	struct smtp_body b;
	bool end = false;

	body_open(&b, 1000, false, true);
	(void)smtp_body_data(&b, (const uint8_t *)"a\nb\r\n.\r\n", 8, &end);
	CHECK(end && smtp_body_fault(&b) == SMTP_BODY_BARE);
	smtp_body_reset(&b);
	body_open(&b, 1000, false, false);
	(void)smtp_body_data(&b, (const uint8_t *)"a\0b\r\n.\r\n", 8, &end);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_NUL);
	smtp_body_reset(&b);
	body_open(&b, 1000, true, false);
	(void)smtp_body_data(&b, (const uint8_t *)"a\0b\r\n.\r\n", 8, &end);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_OK);
	CHECK(stored_is(&b, "ab\r\n", 4));
	smtp_body_reset(&b);
	/* A bare-LF line counts as if it ended in CR LF: 999 + LF is over. */
	memset(line, 'a', sizeof(line));
	line[998] = '\n';
	body_open(&b, 5000, false, false);
	smtp_body_chunk(&b, (const uint8_t *)line, 999);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_OK);
	smtp_body_chunk(&b, (const uint8_t *)line, 999);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_OK);
	line[998] = 'a';
	line[999] = '\n';
	smtp_body_chunk(&b, (const uint8_t *)line, 1000);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_LONGLINE);
	smtp_body_reset(&b);
	/* Size: the stored form counts (a bare LF becomes two octets). */
	body_open(&b, 4, false, false);
	smtp_body_chunk(&b, (const uint8_t *)"a\nb\n", 4);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_TOOBIG);
	CHECK(b.size == 6 && budget_used == 0);
	smtp_body_reset(&b);
	/* The budget refuses growth past the first slice. */
	budget_limit = 64 * 1024;
	body_open(&b, 1 << 20, false, false);
	for (size_t i = 0; i < 100; i++)
		smtp_body_chunk(&b, (const uint8_t *)line, 998);
	CHECK(smtp_body_fault(&b) == SMTP_BODY_NOBUDGET);
	CHECK(budget_used == 0);
	smtp_body_reset(&b);
	budget_limit = SIZE_MAX;
	budget_limit = SIZE_MAX;
	/* The budget refuses the start: nothing is held. */
	budget_limit = 1;
	memset(&b, 0, sizeof(b));
	b.max = 10;
	b.reserve = reserve;
	b.release = release;
	b.arg = &budget_limit;
	CHECK(!smtp_body_begin(&b, 64));
	CHECK(budget_used == 0);
	smtp_body_reset(&b);
	budget_limit = SIZE_MAX;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* What a client sends by DATA for content c (ending in CR LF): a "." that
 * starts a line (after any CR or LF, or first) doubled, then ".\r\n". */
static size_t
stuff(const char *c, size_t n, char *w)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (c[i] == '.' &&
		    (i == 0 || c[i - 1] == '\n' || c[i - 1] == '\r'))
			w[k++] = '.';
		w[k++] = c[i];
	}
	memcpy(w + k, ".\r\n", 3);
	return k + 3;
}

/* Property: any content of dots, letters, CRs, LFs and NULs stores the
 * same bytes by DATA (stuffed) and by BDAT (raw, cut into two chunks), and
 * is judged the same; DATA ends exactly at its terminator. */
static void
test_data_equals_bdat(void)
{
	static const char alpha[] = "a.\r\n\0";
	char c[128], w[300];

	for (unsigned it = 0; it < 50000; it++) {
		struct smtp_body d, b;
		size_t n = rnd(100), wn, cut, used;
		bool end = false, rej = rnd(2), strip = rnd(2);

		for (size_t i = 0; i < n; i++)
			c[i] = alpha[rnd(sizeof(alpha) - 1)];
		memcpy(c + n, "\r\n", 2);
		n += 2;
		wn = stuff(c, n, w);
		body_open(&d, 1000, strip, rej);
		body_open(&b, 1000, strip, rej);
		cut = rnd((unsigned)wn + 1);
		used = smtp_body_data(&d, (const uint8_t *)w, cut, &end);
		if (!end)
			used += smtp_body_data(
			    &d, (const uint8_t *)w + cut, wn - cut, &end);
		cut = rnd((unsigned)n + 1);
		smtp_body_chunk(&b, (const uint8_t *)c, cut);
		smtp_body_chunk(&b, (const uint8_t *)c + cut, n - cut);
		smtp_body_last(&b);
		if (!end || used != wn || d.size != b.size ||
		    buf_avail(&d.buf) != buf_avail(&b.buf) ||
		    memcmp(buf_peek(&d.buf), buf_peek(&b.buf),
		        buf_avail(&b.buf)) != 0 ||
		    smtp_body_fault(&d) != smtp_body_fault(&b)) {
			fprintf(stderr, "iteration %u differs\n", it);
			harness_failed = 1;
			smtp_body_reset(&d);
			smtp_body_reset(&b);
			return;
		}
		smtp_body_reset(&d);
		smtp_body_reset(&b);
	}
	CHECK(budget_used == 0);
}

static const struct harness_case cases[] = {
    {"forms", test_forms},
    {"last", test_last},
    {"faults", test_faults},
    {"data_equals_bdat", test_data_equals_bdat},
};

HARNESS_MAIN(cases)
