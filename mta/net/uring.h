/* SPDX-License-Identifier: ISC */
/*
 * uring.h - the one event loop: a thin wrapper around io_uring shared by
 * the receive threads, the delivery workers and the bench tools. uring.c
 * is the only includer of liburing.h.
 *
 * DESIGN. One struct uring_loop per thread: a ring (SINGLE_ISSUER +
 * DEFER_TASKRUN when the kernel has them) and one provided-buffer ring
 * shared by every recv of that thread, so an idle connection holds no
 * receive buffer. The caller embeds a struct uring_op in its own object
 * for each operation it may have outstanding (a session has one for recv,
 * one for send, one for its timer...) and arms it with one of the
 * uring_<verb>() functions below. user_data is the op pointer; nothing
 * ever encodes a raw fd.
 *
 * The op's callback runs on the loop thread, from uring_loop_run(). An op
 * is BUSY from the moment it is armed until its final callback, the one
 * without URING_F_MORE in flags. While busy it must be neither re-armed,
 * nor freed, nor its fd closed: to stop it early call uring_cancel() and
 * wait for the final callback (res = -ECANCELED, or its natural result if
 * it won the race). After the final callback the wrapper never touches the
 * op again, so the callback may free the object that embeds it.
 *
 * The wrapper does the io_uring chores so callers do not: it flushes the
 * SQ when full (and defers arming when it cannot), retries -EINTR, sends
 * the rest of a short send, re-arms multishot accept/recv when the kernel
 * drops F_MORE, parks a recv that hit -ENOBUFS until buffers come back,
 * and returns each provided buffer to the ring after its callback.
 *
 * Thread: everything here is for the thread that created the loop, except
 * uring_available(). Cross-thread wakeups go through a chan eventfd read
 * with uring_read().
 */
#ifndef MTA_URING_H
#define MTA_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <linux/time_types.h>

#include "base/compat.h"

struct uring_loop;
struct uring_op;

/* flags passed to a callback */
#define URING_F_MORE 0x1u /* not the final callback: the op stays busy */

/*
 * A completion. res: as documented for each uring_<verb>() (>= 0 success,
 * negative errno failure). data/len: only for recv, the bytes received;
 * borrowed, valid until the callback returns (copy them out). Runs on the
 * loop thread; may arm, cancel and free other ops, and may free this op's
 * object when flags lacks URING_F_MORE.
 */
typedef void uring_cb_fn(struct uring_op *op, int res, unsigned flags,
    const uint8_t *data, size_t len);

/* Embed in the caller's object; initialise with uring_op_init(). Fields
 * are private to uring.c. 40 bytes on x86-64. */
struct uring_op {
	uring_cb_fn *cb;
	struct uring_op *next; /* deferred list link */
	int fd;
	uint8_t kind;
	uint8_t state; /* URING_ST_* bits, uring.c */
	uint16_t pad_;
	union {
		struct { /* send */
			const uint8_t *buf;
			uint32_t len, done; /* bytes */
		} send;
		struct { /* read, connect */
			void *buf;
			uint32_t len; /* bytes, or socklen for connect */
		} io;
		struct __kernel_timespec ts; /* timeout */
	} u;
};

/* Tuning for uring_loop_new(); zero fields take the defaults. */
struct uring_loop_opts {
	unsigned entries; /* SQ entries, default 256 (CQ gets 16x) */
	unsigned nbufs;   /* provided recv buffers, power of two, default 256 */
	unsigned bufsize; /* bytes each, default 16384 */
};

/* Is io_uring usable here (not disabled by sysctl or seccomp)? 0, or
 * negative errno. Any thread; tests exit 77 when it is not. */
int uring_available(void);

/*
 * uring_loop_new - create a loop for the CALLING thread (the ring is
 * single-issuer: only this thread may arm ops and run it).
 * opts: borrowed, may be NULL. Returns 0 and *out, or negative errno with
 * a one-line reason in err.
 */
int uring_loop_new(const struct uring_loop_opts *opts, struct uring_loop **out,
    char *err, size_t errlen) MTA_MUST_CHECK;

/* Free the loop. Every op must be idle (cancel and run the loop until
 * uring_loop_busy() is 0 first). Takes NULL. Loop thread. */
void uring_loop_free(struct uring_loop *l);

/*
 * uring_loop_run - submit, wait and dispatch completions until
 * uring_loop_stop(). Returns 0 after a stop, or negative errno when the
 * ring itself fails (a bug or resource exhaustion; the caller logs it).
 * Not reentrant: never call it from a callback.
 */
int uring_loop_run(struct uring_loop *l) MTA_MUST_CHECK;

/* Make uring_loop_run() return after the current batch of callbacks. Loop
 * thread only (other threads: send a message the loop reads). A later
 * uring_loop_run() runs again. */
void uring_loop_stop(struct uring_loop *l);

/* Number of busy ops (armed, not yet final). */
size_t uring_loop_busy(const struct uring_loop *l);

/* Prepare op for use with callback cb. Must not be busy. */
void uring_op_init(struct uring_op *op, uring_cb_fn *cb);

/* True from arming until the final callback has started. */
bool uring_op_busy(const struct uring_op *op);

/* Recover the embedding object: uring_container_of(op, struct conn, rd). */
#define uring_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * The arming functions. None can fail: when the SQ is full they flush it,
 * and when that does not help the op is armed at the next loop iteration.
 * Errors arrive in the callback. fd is borrowed: keep it open until the
 * final callback. The op must be idle.
 */

/* Multishot accept on a listening socket. Each accepted connection
 * arrives as res = new fd (SOCK_NONBLOCK|SOCK_CLOEXEC) with URING_F_MORE;
 * the caller owns that fd (getpeername() it for the address). res < 0
 * (e.g. -EMFILE) is final: re-arm when it makes sense. After
 * uring_cancel() the final callback may still carry res >= 0: a new
 * connection the caller owns (close it). */
void uring_accept(struct uring_loop *l, struct uring_op *op, int fd);

/*
 * Receive into a provided buffer. res > 0: data/len hold the bytes; res
 * = 0: end of stream (final); res < 0: error (final). -ENOBUFS is never
 * reported: the recv waits until buffers return to the ring.
 * multishot = false: one callback with data, then the op is idle (re-arm
 * to read on: the natural way to stop reading, for backpressure).
 * multishot = true: data callbacks carry URING_F_MORE until EOF, error or
 * cancel; after uring_cancel() data callbacks may still arrive before the
 * final one, and the caller must take them.
 */
void uring_recv(
    struct uring_loop *l, struct uring_op *op, int fd, bool multishot);

/*
 * Send all of buf[0..len) with MSG_NOSIGNAL, re-sending the rest after a
 * short send. buf is borrowed and must stay valid and unchanged until the
 * final callback. res = len on success, negative errno otherwise (bytes
 * may have been sent). len < 4 GiB. One callback.
 */
void uring_send(struct uring_loop *l, struct uring_op *op, int fd,
    const void *buf, size_t len);

/* Connect a non-blocking socket. addr is borrowed until the callback.
 * res = 0 or negative errno (e.g. -ECONNREFUSED). One callback. */
void uring_connect(struct uring_loop *l, struct uring_op *op, int fd,
    const struct sockaddr *addr, socklen_t addrlen);

/* read(2) into buf (borrowed until the callback): for an eventfd, pass an
 * 8-byte buffer. Works on O_NONBLOCK fds (waits for readability). res =
 * bytes or negative errno. One callback. */
void uring_read(
    struct uring_loop *l, struct uring_op *op, int fd, void *buf, size_t len);

/* Fire after ms milliseconds (CLOCK_MONOTONIC). res = 0 when it fired,
 * -ECANCELED when cancelled. One callback. */
void uring_timeout(struct uring_loop *l, struct uring_op *op, uint64_t ms);

/* Ask a busy op to finish early; no-op when idle. Its final callback still
 * comes (usually res = -ECANCELED) and must be waited for. Safe from any
 * callback, including the op's own. */
void uring_cancel(struct uring_loop *l, struct uring_op *op);

/* Close fd asynchronously, no callback. Only once no op uses fd. */
void uring_close(struct uring_loop *l, int fd);

#endif
