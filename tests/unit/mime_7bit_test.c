/* SPDX-License-Identifier: ISC */
/*
 * mime_7bit_test.c - the 8-bit to 7-bit downgrade: exact outputs for
 * small messages, quoted-printable rules (76-character lines, soft
 * breaks, trailing white space, '='), MIME structure (nested multiparts,
 * 7-bit parts byte for byte), the cases that cannot be converted, and a
 * round trip of pseudo-random bodies through a decoder written here.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "smtp/mime_7bit.h"
#include "../harness.h"

/* Convert s (n bytes) into a fresh buffer; the status. */
static enum mime_7bit_status
conv(const char *s, size_t n, struct buf *out)
{
	buf_init(out, mime_7bit_bound(n));
	return mime_7bit_convert((const uint8_t *)s, n, out);
}

#define CONV(s, out) conv((s), sizeof(s) - 1, (out))

/* Does the output equal the string? Prints both when not. */
static bool
same(const struct buf *b, const char *want)
{
	size_t n = strlen(want);

	if (buf_avail(b) == n && memcmp(buf_peek(b), want, n) == 0)
		return true;
	fprintf(stderr, "got:\n%.*s\nwant:\n%s\n", (int)buf_avail(b),
	    (const char *)buf_peek(b), want);
	return false;
}

/* Every line of p ends with CRLF (except maybe the last), is at most max
 * bytes, and every byte is 7-bit. */
static bool
lines_ok(const uint8_t *p, size_t n, size_t max)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] > 127)
			return false;
		if (p[i] == '\n') {
			if (i == 0 || p[i - 1] != '\r')
				return false;
			col = 0;
			continue;
		}
		if (p[i] != '\r' && ++col > max)
			return false;
	}
	return true;
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Quoted-printable decoding, strict (uppercase hex, '=' only before a
 * line end or two hex digits); the length, or -1 when malformed. */
static long
qp_decode(const uint8_t *p, size_t n, uint8_t *w)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '=') {
			w[k++] = p[i];
			continue;
		}
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
			i += 2;
			continue;
		}
		if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
			return -1;
		w[k++] = (uint8_t)(hexval(p[i + 1]) << 4 | hexval(p[i + 2]));
		i += 2;
	}
	return (long)k;
}

/* The body after the first empty line of the output. */
static const uint8_t *
body_of(const struct buf *b, size_t *n)
{
	const uint8_t *p = buf_peek(b);
	const uint8_t *e = memmem(p, buf_avail(b), "\r\n\r\n", 4);

	if (e == NULL)
		return NULL;
	*n = buf_avail(b) - (size_t)(e + 4 - p);
	return e + 4;
}

static void
test_seven_bit_unchanged(void)
{
	static const char m[] =
	    "Subject: x\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "pre\r\n--b\r\n\r\nhello\r\n.\r\n--b--\r\nepi\r\n";
	struct buf out;

	CHECK(CONV(m, &out) == MIME_7BIT_OK);
	CHECK(same(&out, m));
	buf_fini(&out);
}

static void
test_plain_utf8(void)
{
	struct buf out;
	bool ok = true;

	STEP(ok,
	    CONV("Subject: x\r\n\r\ncaf\xc3\xa9\r\n", &out) == MIME_7BIT_OK);
	STEP(ok, same(&out, "Subject: x\r\nMIME-Version: 1.0\r\n"
	                    "Content-Type: text/plain; charset=utf-8\r\n"
	                    "Content-Transfer-Encoding: quoted-printable\r\n"
	                    "\r\ncaf=C3=A9\r\n"));
	buf_fini(&out);
}

/* Invalid UTF-8: unknown-8bit; the meaningless old fields go. */
static void
test_plain_unknown(void)
{
	struct buf out;
	bool ok = true;

	STEP(ok, CONV("Subject: x\r\nContent-Type: text/html;\r\n a=b\r\n"
	              "From: a@b\r\n\r\n\xff\xc3\r\n",
	             &out) == MIME_7BIT_OK);
	STEP(ok, same(&out, "Subject: x\r\nFrom: a@b\r\nMIME-Version: 1.0\r\n"
	                    "Content-Type: text/plain; charset=unknown-8bit\r\n"
	                    "Content-Transfer-Encoding: quoted-printable\r\n"
	                    "\r\n=FF=C3\r\n"));
	buf_fini(&out);
}

/* Trailing space and tab are encoded, inner ones are not; '=' always;
 * a lone "." line stays (the SMTP client stuffs it); an unended last
 * line stays unended; a bare LF becomes CRLF. */
static void
test_qp_rules(void)
{
	struct buf out;
	bool ok = true;

	STEP(ok, CONV("S: x\r\n\r\n\xe9 a\tb \r\nx\t\r\na=b\r\n.\r\n"
	              "lf\n..\r\nend \xe9",
	             &out) == MIME_7BIT_OK);
	STEP(ok, same(&out, "S: x\r\nMIME-Version: 1.0\r\n"
	                    "Content-Type: text/plain; charset=unknown-8bit\r\n"
	                    "Content-Transfer-Encoding: quoted-printable\r\n"
	                    "\r\n=E9 a\tb=20\r\nx=09\r\na=3Db\r\n.\r\n"
	                    "lf\r\n..\r\nend =E9"));
	buf_fini(&out);
}

/* 76 characters fit on a line; 77 break after 75 with "="; an encoded
 * byte is never split; a space before a soft break stays literal. */
static void
test_qp_line_length(void)
{
	char in[512], want[1024];
	struct buf out;
	bool ok = true;
	size_t n;

	n = (size_t)snprintf(in, sizeof(in),
	    "S: x\r\n\r\n\xe9\r\n%.76s\r\n"
	    "%.77s\r\n%.74s\xe9\xe9\r\n%.74s zz\r\n",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxx",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxx",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxx",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxx");
	STEP(ok, conv(in, n, &out) == MIME_7BIT_OK);
	(void)snprintf(want, sizeof(want),
	    "S: x\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=unknown-8bit\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n"
	    "%.76s\r\n%.75s=\r\nxx\r\n%.74s=\r\n=E9=E9\r\n%.74s =\r\nzz\r\n",
	    in + 11, in + 11, in + 11, in + 11);
	STEP(ok, same(&out, want));
	STEP(ok, lines_ok(buf_peek(&out), buf_avail(&out), 76));
	buf_fini(&out);
}

/* A multipart/mixed: a 7-bit part byte for byte, an 8-bit part with
 * CTE 8bit rewritten, one without CTE given one, base64 untouched, a
 * nested alternative walked, preamble and epilogue kept. */
static const char mixed_in[] =
    "Subject: m\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed;\r\n boundary=\"=_outer b\"\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\n"
    "preamble\r\n"
    "--=_outer b\r\nContent-Type: text/plain\r\n\r\nseven bit\r\n"
    "--=_outer b  \r\nContent-Type: text/plain; charset=utf-8\r\n"
    "content-transfer-encoding: 8BIT\r\nX-A: 1\r\n\r\nna\xc3\xafve\r\n"
    "--=_outer b\r\nContent-Type: multipart/alternative; boundary=in\r\n"
    "\r\n--in\r\nContent-Type: text/html\r\n\r\n<p>\xe9</p>\r\n--in--\r\n"
    "\r\n--=_outer b\r\nContent-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n"
    "--=_outer b--\r\nepilogue\r\n";

static void
test_multipart(void)
{
	struct buf out;
	bool ok = true;

	STEP(ok, CONV(mixed_in, &out) == MIME_7BIT_OK);
	STEP(ok,
	    same(&out,
	        "Subject: m\r\nMIME-Version: 1.0\r\n"
	        "Content-Type: multipart/mixed;\r\n boundary=\"=_outer b\"\r\n"
	        "Content-Transfer-Encoding: 7bit\r\n\r\n"
	        "preamble\r\n"
	        "--=_outer b\r\nContent-Type: text/plain\r\n\r\nseven bit\r\n"
	        "--=_outer b  \r\nContent-Type: text/plain; charset=utf-8\r\n"
	        "Content-Transfer-Encoding: quoted-printable\r\nX-A: 1\r\n"
	        "\r\nna=C3=AFve\r\n"
	        "--=_outer b\r\nContent-Type: multipart/alternative; "
	        "boundary=in\r\n\r\n--in\r\nContent-Type: text/html\r\n"
	        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	        "<p>=E9</p>\r\n--in--\r\n"
	        "\r\n--=_outer b\r\nContent-Type: application/octet-stream\r\n"
	        "Content-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n"
	        "--=_outer b--\r\nepilogue\r\n"));
	buf_fini(&out);
}

/* A part with no header at all, and a multipart never closed. */
static void
test_multipart_edges(void)
{
	struct buf out;
	bool ok = true;

	STEP(ok, CONV("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	              "boundary=b\r\n\r\n--b\r\n\r\n\xe9\r\n--b\r\n"
	              "\r\nlast \xe9",
	             &out) == MIME_7BIT_OK);
	STEP(ok,
	    same(&out, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	               "boundary=b\r\n\r\n--b\r\n"
	               "Content-Transfer-Encoding: quoted-printable\r\n"
	               "\r\n=E9\r\n--b\r\n"
	               "Content-Transfer-Encoding: quoted-printable\r\n"
	               "\r\nlast =E9"));
	buf_fini(&out);
}

/* A message/rfc822 part that is 7-bit stays as it is beside an 8-bit
 * part. */
static void
test_message_part_seven_bit(void)
{
	struct buf out;
	bool ok = true;

	STEP(ok,
	    CONV("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	         "boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
	         "\r\nSubject: in\r\n\r\nhi\r\n--b\r\n\r\n\xe9\r\n--b--\r\n",
	        &out) == MIME_7BIT_OK);
	STEP(ok, same(&out,
	             "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
	             "boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
	             "\r\nSubject: in\r\n\r\nhi\r\n--b\r\n"
	             "Content-Transfer-Encoding: quoted-printable\r\n"
	             "\r\n=E9\r\n--b--\r\n"));
	buf_fini(&out);
}

struct refuse {
	const char *label;
	const char *in;
	enum mime_7bit_status want;
};

static const struct refuse refusals[] = {
    {"8-bit Subject", "Subject: caf\xc3\xa9\r\n\r\nbody\r\n", MIME_7BIT_HEADER},
    {"8-bit folded", "Subject: a\r\n \xe9\r\nMIME-Version: 1.0\r\n\r\nb\r\n",
        MIME_7BIT_HEADER},
    {"8-bit part header",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Disposition: attachment; filename=\xe9\r\n\r\nx\r\n"
        "--b--\r\n",
        MIME_7BIT_HEADER},
    {"message/rfc822",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\n\xe9\r\n"
        "--b--\r\n",
        MIME_7BIT_MESSAGE},
    {"top message/global",
        "MIME-Version: 1.0\r\nContent-Type: message/global\r\n\r\n\xe9\r\n",
        MIME_7BIT_MESSAGE},
    {"digest default",
        "MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=b\r\n"
        "\r\n--b\r\n\r\nSubject: s\r\n\r\n\xe9\r\n--b--\r\n",
        MIME_7BIT_MESSAGE},
    {"base64 with 8-bit",
        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: "
        "base64\r\n\r\n\xe9\r\n",
        MIME_7BIT_ENCODED},
    {"qp with 8-bit",
        "MIME-Version: 1.0\r\nContent-Transfer-Encoding: Quoted-Printable\r\n"
        "\r\n\xe9\r\n",
        MIME_7BIT_ENCODED},
    {"no boundary",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n\xe9\r\n",
        MIME_7BIT_STRUCTURE},
    {"8-bit preamble",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "\xe9\r\n--b\r\n\r\nx\r\n--b--\r\n",
        MIME_7BIT_STRUCTURE},
    {"8-bit epilogue",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\n\r\nx\r\n--b--\r\n\xe9\r\n",
        MIME_7BIT_STRUCTURE},
    {"boundary never seen",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--c\r\n\r\n\xe9\r\n",
        MIME_7BIT_STRUCTURE},
};

static void
test_refusals(void)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refuse *r = &refusals[i];
		enum mime_7bit_status st;
		struct buf out;

		st = conv(r->in, strlen(r->in), &out);
		buf_fini(&out);
		if (st != r->want)
			fprintf(stderr, "%s: got %d (%s)\n", r->label, (int)st,
			    mime_7bit_reason(st));
		CHECK(st == r->want);
		CHECK(strlen(mime_7bit_reason(st)) > 0);
	}
}

/* Nesting past MIME_7BIT_DEPTH is refused, within it converted. */
static void
nested(char *m, size_t size, int levels)
{
	size_t n = (size_t)snprintf(m, size, "MIME-Version: 1.0\r\n");

	for (int i = 0; i < levels; i++)
		n += (size_t)snprintf(m + n, size - n,
		    "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
		    "--b%d\r\n",
		    i, i);
	(void)snprintf(m + n, size - n, "\r\n\xe9\r\n");
}

static void
test_depth(void)
{
	static char m[8192];
	struct buf out;
	enum mime_7bit_status st;

	nested(m, sizeof(m), MIME_7BIT_DEPTH);
	st = conv(m, strlen(m), &out);
	buf_fini(&out);
	CHECK(st == MIME_7BIT_OK);
	nested(m, sizeof(m), MIME_7BIT_DEPTH + 1);
	st = conv(m, strlen(m), &out);
	buf_fini(&out);
	CHECK(st == MIME_7BIT_STRUCTURE);
}

static void
test_too_big(void)
{
	static const char m[] = "S: x\r\n\r\n\xe9\xe9\xe9\xe9\r\n";
	struct buf out;
	enum mime_7bit_status st;

	buf_init(&out, sizeof(m));
	st = mime_7bit_convert((const uint8_t *)m, sizeof(m) - 1, &out);
	buf_fini(&out);
	CHECK(st == MIME_7BIT_TOO_BIG);
	CHECK(mime_7bit_bound(SIZE_MAX / 2) == SIZE_MAX);
}

/* Pseudo-random bodies (every byte value but CR and LF, CRLF line ends,
 * long lines, white space at line ends) decode to what went in. */
static void
test_round_trip(void)
{
	static uint8_t in[20000], dec[20000];
	uint32_t x = 12345;

	for (int round = 0; round < 50; round++) {
		size_t n = 9, bn, len = 0;
		const uint8_t *b;
		struct buf out;
		long k;
		bool ok = true;

		memcpy(in, "S: x\r\n\r\n", 8);
		n = 8;
		len = 100 + (size_t)round * 300;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245 + 12345;
			uint8_t c = (uint8_t)(x >> 16);
			if ((x >> 8) % 37 == 0 || c == '\n' || c == '\r') {
				in[n++] = (x >> 12) & 1 ? ' ' : '\t';
				in[n++] = '\r';
				c = '\n';
			}
			in[n++] = c;
		}
		in[n++] = 0xe9;
		STEP(ok, conv((const char *)in, n, &out) == MIME_7BIT_OK);
		STEP(ok, lines_ok(buf_peek(&out), buf_avail(&out), 76));
		b = ok ? body_of(&out, &bn) : NULL;
		STEP(ok, b != NULL);
		k = ok ? qp_decode(b, bn, dec) : -1;
		STEP(ok, k == (long)(n - 8) && memcmp(dec, in + 8, n - 8) == 0);
		buf_fini(&out);
		if (!ok)
			return;
	}
}

static const struct harness_case cases[] = {
    {"seven_bit_unchanged", test_seven_bit_unchanged},
    {"plain_utf8", test_plain_utf8},
    {"plain_unknown", test_plain_unknown},
    {"qp_rules", test_qp_rules},
    {"qp_line_length", test_qp_line_length},
    {"multipart", test_multipart},
    {"multipart_edges", test_multipart_edges},
    {"message_part_seven_bit", test_message_part_seven_bit},
    {"refusals", test_refusals},
    {"depth", test_depth},
    {"too_big", test_too_big},
    {"round_trip", test_round_trip},
};

HARNESS_MAIN(cases)
