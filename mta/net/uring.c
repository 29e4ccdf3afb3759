/* SPDX-License-Identifier: ISC */
/*
 * uring.c - the event loop over io_uring (see uring.h for the contract).
 *
 * Runs on exactly one thread per loop. The only includer of liburing.h.
 *
 * An op's life: idle -> armed (ST_KERNEL: an SQE is queued or in the
 * kernel, its final CQE not yet seen) or parked (ST_LISTED: on the
 * deferred list, to be armed at the next iteration because the SQ was
 * full, buffers ran out, or a multishot needs re-arming) -> final callback
 * -> idle. ST_STOP records uring_cancel(): a parked op then completes with
 * -ECANCELED instead of being armed, a send stops resending. Deferred work
 * is run before every submit, so arming never fails and never recurses
 * into callbacks.
 *
 * Provided buffers: one ring (bgid 0) per loop; a buffer goes back to the
 * ring right after the callback that saw it, and the ring tail is
 * published once per CQE batch, before deferred recvs are re-armed.
 */
#include "net/uring.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xalloc.h"

enum {
	OP_NONE,
	OP_ACCEPT,
	OP_RECV,
	OP_RECV_MULTI,
	OP_SEND,
	OP_CONNECT,
	OP_READ,
	OP_TIMEOUT,
};

#define ST_KERNEL     0x01 /* SQE queued or in flight */
#define ST_LISTED     0x02 /* on the deferred list */
#define ST_STOP       0x04 /* uring_cancel() called */
#define ST_POLL       0x08 /* read: waiting for POLLIN before reading */
#define ST_CANCEL_SQE 0x10 /* listed only to queue a cancel SQE */

#define BGID 0

struct uring_loop {
	struct io_uring ring;
	struct io_uring_buf_ring *br; /* provided-buffer ring, mmap'd */
	size_t brsize;                /* bytes of br */
	uint8_t *bufs;                /* nbufs * bufsize, mmap'd (lazy) */
	size_t bufs_size;             /* bytes */
	unsigned nbufs;
	unsigned bufsize; /* bytes */
	int bufmask;
	int nret; /* buffers added, tail not yet published */
	struct uring_op *dhead, *dtail; /* deferred ops, FIFO */
	size_t nbusy;                   /* ops between arm and final callback */
	bool stop;
};

int
uring_available(void)
{
	struct io_uring ring;
	int r;

	if ((r = io_uring_queue_init(2, &ring, 0)) < 0)
		return r;
	io_uring_queue_exit(&ring);
	return 0;
}

static int
ring_init(struct uring_loop *l, unsigned entries)
{
	static const unsigned flagsets[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	    IORING_SETUP_COOP_TASKRUN,
	    0,
	};
	struct io_uring_params p;
	int r = -EINVAL;

	for (size_t i = 0; i < MTA_ARRAY_LEN(flagsets); i++) {
		memset(&p, 0, sizeof(p));
		/* Multishot ops can complete many times per SQE: a big CQ.
		 * The kernel keeps overflow (FEAT_NODROP) anyway. */
		p.flags =
		    flagsets[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = entries * 16;
		r = io_uring_queue_init_params(entries, &l->ring, &p);
		if (r != -EINVAL)
			return r;
	}
	return r;
}

static int
bufs_init(struct uring_loop *l)
{
	struct io_uring_buf_reg reg;
	long page = sysconf(_SC_PAGESIZE);
	int r;

	l->brsize = (size_t)l->nbufs * sizeof(struct io_uring_buf);
	l->brsize = (l->brsize + (size_t)page - 1) & ~((size_t)page - 1);
	l->br = mmap(NULL, l->brsize, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->br == MAP_FAILED) {
		l->br = NULL;
		return -errno;
	}
	l->bufs_size = (size_t)l->nbufs * l->bufsize;
	l->bufs = mmap(NULL, l->bufs_size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->bufs == MAP_FAILED) {
		l->bufs = NULL;
		return -errno;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)l->br;
	reg.ring_entries = l->nbufs;
	reg.bgid = BGID;
	if ((r = io_uring_register_buf_ring(&l->ring, &reg, 0)) < 0)
		return r;
	io_uring_buf_ring_init(l->br);
	l->bufmask = io_uring_buf_ring_mask(l->nbufs);
	for (unsigned i = 0; i < l->nbufs; i++)
		io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * l->bufsize,
		    l->bufsize, (unsigned short)i, l->bufmask, (int)i);
	io_uring_buf_ring_advance(l->br, (int)l->nbufs);
	return 0;
}

int
uring_loop_new(const struct uring_loop_opts *opts, struct uring_loop **out,
    char *err, size_t errlen)
{
	struct uring_loop *l;
	unsigned entries = 256;
	int r;

	l = xcalloc(1, sizeof(*l));
	l->nbufs = 256;
	l->bufsize = 16384;
	if (opts) {
		if (opts->entries)
			entries = opts->entries;
		if (opts->nbufs)
			l->nbufs = opts->nbufs;
		if (opts->bufsize)
			l->bufsize = opts->bufsize;
	}
	if (l->nbufs > 32768 || (l->nbufs & (l->nbufs - 1)) != 0) {
		snprintf(err, errlen,
		    "io_uring: nbufs %u: not a power of two "
		    "up to 32768",
		    l->nbufs);
		free(l);
		return -EINVAL;
	}
	if ((r = ring_init(l, entries)) < 0) {
		snprintf(err, errlen, "io_uring setup: %s", strerror(-r));
		free(l);
		return r;
	}
	if ((r = bufs_init(l)) < 0) {
		snprintf(err, errlen, "io_uring buffer ring: %s", strerror(-r));
		uring_loop_free(l);
		return r;
	}
	*out = l;
	return 0;
}

void
uring_loop_free(struct uring_loop *l)
{
	if (l == NULL)
		return;
	if (l->br)
		(void)io_uring_unregister_buf_ring(&l->ring, BGID);
	io_uring_queue_exit(&l->ring);
	if (l->br)
		munmap(l->br, l->brsize);
	if (l->bufs)
		munmap(l->bufs, l->bufs_size);
	free(l);
}

void
uring_loop_stop(struct uring_loop *l)
{
	l->stop = true;
}

size_t
uring_loop_busy(const struct uring_loop *l)
{
	return l->nbusy;
}

void
uring_op_init(struct uring_op *op, uring_cb_fn *cb)
{
	memset(op, 0, sizeof(*op));
	op->cb = cb;
	op->fd = -1;
}

bool
uring_op_busy(const struct uring_op *op)
{
	return (op->state & (ST_KERNEL | ST_LISTED)) != 0;
}

/* An SQE, flushing the SQ once when it is full; NULL when even that
 * fails (CQ overflow backlog): the caller parks its op. */
static struct io_uring_sqe *
sqe_get(struct uring_loop *l)
{
	struct io_uring_sqe *sqe;

	if ((sqe = io_uring_get_sqe(&l->ring)) != NULL)
		return sqe;
	(void)io_uring_submit(&l->ring);
	return io_uring_get_sqe(&l->ring);
}

static void
defer(struct uring_loop *l, struct uring_op *op)
{
	op->state |= ST_LISTED;
	op->next = NULL;
	if (l->dtail)
		l->dtail->next = op;
	else
		l->dhead = op;
	l->dtail = op;
}

/* Rare (a final CQE for an op parked only to queue its cancel): O(n). */
static void
undefer(struct uring_loop *l, struct uring_op *op)
{
	struct uring_op **pp, *prev = NULL;

	for (pp = &l->dhead; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			if (l->dtail == op)
				l->dtail = prev;
			break;
		}
	op->next = NULL;
	op->state &= (uint8_t) ~(ST_LISTED | ST_CANCEL_SQE);
}

/* Queue the SQE for op's current step, or park it. */
static void
arm(struct uring_loop *l, struct uring_op *op)
{
	struct io_uring_sqe *sqe;

	if ((sqe = sqe_get(l)) == NULL) {
		defer(l, op);
		return;
	}
	switch (op->kind) {
	case OP_ACCEPT:
		io_uring_prep_multishot_accept(
		    sqe, op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		break;
	case OP_RECV:
		io_uring_prep_recv(sqe, op->fd, NULL, l->bufsize, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
		break;
	case OP_RECV_MULTI:
		io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
		break;
	case OP_SEND:
		io_uring_prep_send(sqe, op->fd,
		    op->u.send.buf + op->u.send.done,
		    op->u.send.len - op->u.send.done, MSG_NOSIGNAL);
		break;
	case OP_CONNECT:
		io_uring_prep_connect(sqe, op->fd,
		    (const struct sockaddr *)op->u.io.buf, op->u.io.len);
		break;
	case OP_READ:
		if (op->state & ST_POLL)
			io_uring_prep_poll_add(sqe, op->fd, POLLIN);
		else
			io_uring_prep_read(sqe, op->fd, op->u.io.buf,
			    op->u.io.len, (uint64_t)-1);
		break;
	case OP_TIMEOUT:
		io_uring_prep_timeout(sqe, &op->u.ts, 0, 0);
		break;
	default:
		MTA_ASSERT(!"bad op kind");
	}
	io_uring_sqe_set_data(sqe, op);
	op->state |= ST_KERNEL;
}

static void
start(struct uring_loop *l, struct uring_op *op, int kind, int fd)
{
	MTA_ASSERT(op->cb != NULL);
	MTA_ASSERT(!uring_op_busy(op));
	op->kind = (uint8_t)kind;
	op->state = 0;
	op->fd = fd;
	l->nbusy++;
	arm(l, op);
}

void
uring_accept(struct uring_loop *l, struct uring_op *op, int fd)
{
	start(l, op, OP_ACCEPT, fd);
}

void
uring_recv(struct uring_loop *l, struct uring_op *op, int fd, bool multishot)
{
	start(l, op, multishot ? OP_RECV_MULTI : OP_RECV, fd);
}

void
uring_send(struct uring_loop *l, struct uring_op *op, int fd, const void *buf,
    size_t len)
{
	MTA_ASSERT(len <= UINT32_MAX);
	op->u.send.buf = buf;
	op->u.send.len = (uint32_t)len;
	op->u.send.done = 0;
	if (len == 0) {
		/* Nothing to send: complete from the loop, never inline. */
		MTA_ASSERT(!uring_op_busy(op));
		op->kind = OP_SEND;
		op->state = 0;
		op->fd = fd;
		l->nbusy++;
		defer(l, op);
		return;
	}
	start(l, op, OP_SEND, fd);
}

void
uring_connect(struct uring_loop *l, struct uring_op *op, int fd,
    const struct sockaddr *addr, socklen_t addrlen)
{
	op->u.io.buf = (void *)(uintptr_t)addr; /* read-only in the kernel */
	op->u.io.len = addrlen;
	start(l, op, OP_CONNECT, fd);
}

void
uring_read(
    struct uring_loop *l, struct uring_op *op, int fd, void *buf, size_t len)
{
	MTA_ASSERT(len <= UINT32_MAX);
	op->u.io.buf = buf;
	op->u.io.len = (uint32_t)len;
	start(l, op, OP_READ, fd);
}

void
uring_timeout(struct uring_loop *l, struct uring_op *op, uint64_t ms)
{
	op->u.ts.tv_sec = (long long)(ms / 1000);
	op->u.ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	start(l, op, OP_TIMEOUT, -1);
}

static void
cancel_sqe(struct uring_loop *l, struct uring_op *op)
{
	struct io_uring_sqe *sqe;

	if ((sqe = sqe_get(l)) == NULL) {
		op->state |= ST_CANCEL_SQE;
		defer(l, op);
		return;
	}
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data64(sqe, 0); /* its own CQE is ignored */
}

void
uring_cancel(struct uring_loop *l, struct uring_op *op)
{
	if (!uring_op_busy(op) || (op->state & ST_STOP))
		return;
	op->state |= ST_STOP;
	/* A parked op is completed by run_deferred(). */
	if (op->state & ST_KERNEL)
		cancel_sqe(l, op);
}

void
uring_close(struct uring_loop *l, int fd)
{
	struct io_uring_sqe *sqe;

	if ((sqe = sqe_get(l)) == NULL) {
		close(fd);
		return;
	}
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, 0);
}

/* The last callback of an op: after it the op belongs to the caller. */
static void
final(struct uring_loop *l, struct uring_op *op, int res, const uint8_t *data,
    size_t len)
{
	op->state = 0;
	l->nbusy--;
	op->cb(op, res, 0, data, len);
}

static void
buf_return(struct uring_loop *l, unsigned bid)
{
	io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * l->bufsize,
	    l->bufsize, (unsigned short)bid, l->bufmask, l->nret++);
}

static void
on_recv(struct uring_loop *l, struct uring_op *op, int res, unsigned cflags)
{
	bool more = (cflags & IORING_CQE_F_MORE) != 0;
	const uint8_t *data = NULL;
	size_t len = 0;
	unsigned bid = 0;
	bool hasbuf = (cflags & IORING_CQE_F_BUFFER) != 0;

	if (hasbuf) {
		bid = cflags >> IORING_CQE_BUFFER_SHIFT;
		data = l->bufs + (size_t)bid * l->bufsize;
		len = res > 0 ? (size_t)res : 0;
	}
	if (res == -ENOBUFS && !more) {
		/* Every buffer is in a CQE of this batch; they come back
		 * before the deferred list runs. */
		if (op->state & ST_STOP)
			final(l, op, -ECANCELED, NULL, 0);
		else
			defer(l, op);
	} else if (op->kind == OP_RECV || res <= 0) {
		if (more)
			op->cb(op, res, URING_F_MORE, data, len);
		else
			final(l, op, res, data, len);
	} else if (!more && !(op->state & ST_STOP)) {
		/* The kernel ended the multishot (CQ pressure): re-arm. */
		defer(l, op);
		op->cb(op, res, URING_F_MORE, data, len);
	} else {
		if (more)
			op->cb(op, res, URING_F_MORE, data, len);
		else
			final(l, op, res, data, len);
	}
	if (hasbuf)
		buf_return(l, bid);
}

static void
dispatch(struct uring_loop *l, struct uring_op *op, int res, unsigned cflags)
{
	bool more = (cflags & IORING_CQE_F_MORE) != 0;

	if (!more) {
		op->state &= (uint8_t)~ST_KERNEL;
		if (op->state & ST_LISTED) /* parked for a cancel SQE */
			undefer(l, op);
	}
	switch (op->kind) {
	case OP_RECV:
	case OP_RECV_MULTI:
		on_recv(l, op, res, cflags);
		return;
	case OP_ACCEPT:
		if (more)
			op->cb(op, res, URING_F_MORE, NULL, 0);
		else if (res >= 0 && !(op->state & ST_STOP)) {
			defer(l, op);
			op->cb(op, res, URING_F_MORE, NULL, 0);
		} else
			final(l, op, res, NULL, 0);
		return;
	case OP_SEND:
		if (res > 0) {
			op->u.send.done += (uint32_t)res;
			if (op->u.send.done == op->u.send.len)
				res = (int)op->u.send.done;
			else if (op->state & ST_STOP)
				res = -ECANCELED;
			else {
				arm(l, op); /* short send: the rest */
				return;
			}
		} else if (res == 0)
			res = -EPIPE; /* cannot happen on a stream; no spin */
		final(l, op, res, NULL, 0);
		return;
	case OP_READ:
		if (op->state & ST_POLL) {
			op->state &= (uint8_t)~ST_POLL;
			if (res >= 0 && !(op->state & ST_STOP)) {
				arm(l, op);
				return;
			}
			final(l, op, res >= 0 ? -ECANCELED : res, NULL, 0);
			return;
		}
		if (res == -EAGAIN && !(op->state & ST_STOP)) {
			/* O_NONBLOCK fd on a kernel that does not retry it. */
			op->state |= ST_POLL;
			arm(l, op);
			return;
		}
		final(l, op, res, NULL, 0);
		return;
	case OP_TIMEOUT:
		final(l, op, res == -ETIME ? 0 : res, NULL, 0);
		return;
	case OP_CONNECT:
	default:
		final(l, op, res, NULL, 0);
		return;
	}
}

static void
run_deferred(struct uring_loop *l)
{
	struct uring_op *op, *list = l->dhead;

	l->dhead = l->dtail = NULL;
	while ((op = list) != NULL) {
		list = op->next;
		op->next = NULL;
		op->state &= (uint8_t)~ST_LISTED;
		if (op->state & ST_CANCEL_SQE) {
			op->state &= (uint8_t)~ST_CANCEL_SQE;
			if (op->state & ST_KERNEL)
				cancel_sqe(l, op);
		} else if (op->state & ST_STOP)
			final(l, op, -ECANCELED, NULL, 0);
		else if (op->kind == OP_SEND &&
		         op->u.send.done == op->u.send.len)
			final(l, op, (int)op->u.send.len, NULL, 0);
		else
			arm(l, op);
	}
}

static void
reap(struct uring_loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		struct uring_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		unsigned flags = cqe->flags;

		n++;
		if (op != NULL)
			dispatch(l, op, res, flags);
	}
	io_uring_cq_advance(&l->ring, n);
	if (l->nret) {
		io_uring_buf_ring_advance(l->br, l->nret);
		l->nret = 0;
	}
}

int
uring_loop_run(struct uring_loop *l)
{
	int r;

	/* Callbacks log a line per message: one write(2) per wakeup for all
	 * of them, flushed before the loop sleeps (log.h). */
	log_batch_begin();
	while (!l->stop) {
		run_deferred(l);
		if (l->stop)
			break;
		log_batch_flush();
		if (l->dhead != NULL)
			r = io_uring_submit_and_get_events(&l->ring);
		else
			r = io_uring_submit_and_wait(&l->ring, 1);
		if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN &&
		    r != -ETIME) {
			log_batch_end();
			return r;
		}
		reap(l);
	}
	log_batch_end();
	l->stop = false;
	/* Hand over what callbacks queued, so a caller that stops and frees
	 * soon after does not leave cancels unsent. */
	(void)io_uring_submit(&l->ring);
	return 0;
}
