/* SPDX-License-Identifier: ISC */
/*
 * syncrec.c - LD_PRELOAD shim that records every sync the host makes.
 *
 * Each fsync, fdatasync, msync and sync_file_range, and each pwrite to a
 * file opened O_DSYNC or O_SYNC (a write that is its own sync: LMDB
 * writes its meta page that way), appends one line to the file named by
 * $MTA_SYNCREC_LOG:
 *
 *   CALL START_NS END_NS RESULT PATH
 *
 * START_NS is CLOCK_MONOTONIC just before the real call, END_NS just after
 * it returned; the clock is the same for every process on the machine, so
 * a test compares them with its own time.monotonic_ns(). PATH is the file
 * behind the descriptor ("-" for msync). A test proves with it that a sync
 * covering a message completed before the client was answered 250.
 *
 * Lines are written with one write(2) on an O_APPEND descriptor, so lines
 * from concurrent threads never interleave. Without $MTA_SYNCREC_LOG the
 * shim records nothing and only calls through.
 *
 * Built without sanitizers (it loads into processes that may not have
 * them). Under ASan, set ASAN_OPTIONS=verify_asan_link_order=0.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int (*next_fsync)(int);
static int (*next_fdatasync)(int);
static int (*next_msync)(void *, size_t, int);
static int (*next_sync_file_range)(int, off64_t, off64_t, unsigned int);
static ssize_t (*next_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*next_pwrite64)(int, const void *, size_t, off64_t);
static int log_fd = -1;

static void *
syncrec_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);

	if (fn == NULL)
		abort();
	return fn;
}

/* Resolve and open once at load, before any thread of the host exists,
 * so the wrappers share nothing mutable. */
__attribute__((constructor)) static void
syncrec_init(void)
{
	const char *path = getenv("MTA_SYNCREC_LOG");

	next_fsync = (int (*)(int))syncrec_next("fsync");
	next_fdatasync = (int (*)(int))syncrec_next("fdatasync");
	next_msync = (int (*)(void *, size_t, int))syncrec_next("msync");
	next_sync_file_range = (int (*)(int, off64_t, off64_t,
	    unsigned int))syncrec_next("sync_file_range");
	next_pwrite = (ssize_t(*)(
	    int, const void *, size_t, off_t))syncrec_next("pwrite");
	next_pwrite64 = (ssize_t(*)(
	    int, const void *, size_t, off64_t))syncrec_next("pwrite64");
	if (path != NULL && path[0] != '\0')
		log_fd =
		    open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static long long
syncrec_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One line for one call. Leaves errno as the real call set it. */
static void
syncrec_put(const char *call, int fd, long long t0, long long t1, long res)
{
	char link[64], path[512], line[700];
	int saved = errno;
	ssize_t n;
	int len;

	if (log_fd < 0)
		return;
	n = -1;
	if (fd >= 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
	}
	path[n > 0 ? n : 0] = '\0';
	len = snprintf(line, sizeof(line), "%s %lld %lld %ld %s\n", call, t0,
	    t1, res, n > 0 ? path : "-");
	if (len > 0 && (size_t)len < sizeof(line) &&
	    write(log_fd, line, (size_t)len) != len)
		abort(); /* a lost line would make the record lie */
	errno = saved;
}

/* Is fd a file whose writes are synchronous? */
static int
syncrec_dsync(int fd)
{
	int saved = errno;
	int fl = fcntl(fd, F_GETFL);

	errno = saved;
	return fl >= 0 && (fl & (O_DSYNC | O_SYNC)) != 0;
}

int
fsync(int fd)
{
	long long t0 = syncrec_now();
	int r = next_fsync(fd);

	syncrec_put("fsync", fd, t0, syncrec_now(), r);
	return r;
}

int
fdatasync(int fd)
{
	long long t0 = syncrec_now();
	int r = next_fdatasync(fd);

	syncrec_put("fdatasync", fd, t0, syncrec_now(), r);
	return r;
}

int
msync(void *addr, size_t len, int flags)
{
	long long t0 = syncrec_now();
	int r = next_msync(addr, len, flags);

	syncrec_put("msync", -1, t0, syncrec_now(), r);
	return r;
}

int
sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
	long long t0 = syncrec_now();
	int r = next_sync_file_range(fd, off, n, flags);

	syncrec_put("sync_file_range", fd, t0, syncrec_now(), r);
	return r;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	long long t0;
	ssize_t r;

	if (log_fd < 0 || !syncrec_dsync(fd))
		return next_pwrite(fd, buf, n, off);
	t0 = syncrec_now();
	r = next_pwrite(fd, buf, n, off);
	syncrec_put("pwrite_dsync", fd, t0, syncrec_now(), (long)r);
	return r;
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	long long t0;
	ssize_t r;

	if (log_fd < 0 || !syncrec_dsync(fd))
		return next_pwrite64(fd, buf, n, off);
	t0 = syncrec_now();
	r = next_pwrite64(fd, buf, n, off);
	syncrec_put("pwrite_dsync", fd, t0, syncrec_now(), (long)r);
	return r;
}
