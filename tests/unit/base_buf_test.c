/* SPDX-License-Identifier: ISC */
#include <errno.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/log.h"
#include "../harness.h"

static void
test_buf_cap(void)
{
	struct buf b;

	buf_init(&b, 8);
	CHECK(buf_append(&b, "12345678", 8) == 0);
	CHECK(buf_append(&b, "9", 1) == -ENOBUFS);
	CHECK(buf_avail(&b) == 8);
	buf_consume(&b, 3);
	CHECK(buf_append(&b, "abc", 3) == 0);
	CHECK_MEM(buf_peek(&b), buf_avail(&b), "45678abc");
	CHECK(buf_appendf(&b, "x") == -ENOBUFS);
	buf_fini(&b);
}

static void
test_log_quote(void)
{
	char out[32];

	log_quote(out, sizeof(out), "a\"b\\c\r\n", 7);
	CHECK(strcmp(out, "\"a\\\"b\\\\c\\x0d\\x0a\"") == 0);
	log_quote(out, 12, "0123456789abcdef", 16);
	CHECK(strlen(out) < 12 && strstr(out, "...\"") != NULL);
}

struct tmsg {
	struct chan_msg msg;
	int v;
};

static void
test_chan_fifo(void)
{
	struct chan *c = chan_new();
	struct tmsg m[3];
	struct chan_msg *l;
	int i = 0;

	for (int k = 0; k < 3; k++) {
		m[k].v = k;
		chan_send(c, &m[k].msg);
	}
	l = chan_wait(c, 100);
	for (; l; l = l->next)
		CHECK(((struct tmsg *)l)->v == i++);
	CHECK(i == 3);
	CHECK(chan_wait(c, 10) == NULL);
	chan_free(c);
}

static const struct harness_case cases[] = {
	{ "buf_cap", test_buf_cap },
	{ "log_quote", test_log_quote },
	{ "chan_fifo", test_chan_fifo },
};

HARNESS_MAIN(cases)
