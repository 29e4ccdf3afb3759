/* SPDX-License-Identifier: ISC */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/chan.h"
#include "base/log.h"
#include "base/str.h"
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

/* 8-bit detection at every offset around the 64-byte blocks. */
static void
test_mem_8bit(void)
{
	uint8_t b[200];

	memset(b, 'a', sizeof(b));
	for (size_t n = 0; n <= sizeof(b); n++)
		CHECK(!mem_has_8bit(b, n));
	for (size_t at = 0; at < sizeof(b); at++) {
		b[at] = 0x80;
		CHECK(mem_has_8bit(b, sizeof(b)));
		CHECK(mem_has_8bit(b, at + 1));
		CHECK(!mem_has_8bit(b, at));
		b[at] = 'a';
	}
}

/* A batch holds event lines until its outermost end; a warning goes out
 * at once, after them, so the order is the order of the calls. */
static void
test_log_batch(void)
{
	char path[] = "/tmp/mta-logtest.XXXXXX", buf[4096];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	const char *a, *w, *b;
	ssize_t n;

	CHECK(fd >= 0 && saved >= 0);
	unlink(path);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	log_batch_begin();
	log_batch_begin();
	log_event("event=test-batch n=1");
	log_batch_end();
	CHECK(lseek(fd, 0, SEEK_END) == 0); /* still held */
	log_warnx("test-warning");
	log_event("event=test-batch n=2");
	CHECK(lseek(fd, 0, SEEK_END) > 0);
	log_batch_end();
	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	a = strstr(buf, "n=1");
	w = strstr(buf, "test-warning");
	b = strstr(buf, "n=2");
	CHECK(a != NULL && w != NULL && b != NULL && a < w && w < b);
}

static const struct harness_case cases[] = {
    {"buf_cap", test_buf_cap},
    {"log_quote", test_log_quote},
    {"chan_fifo", test_chan_fifo},
    {"mem_8bit", test_mem_8bit},
    {"log_batch", test_log_batch},
};

HARNESS_MAIN(cases)
