/* SPDX-License-Identifier: ISC */
/*
 * failsync.c - LD_PRELOAD shim that makes the disk "fail" on demand.
 *
 * While the file named by $MTA_FAILSYNC_FLAG exists, fsync, fdatasync,
 * msync and sync_file_range fail with EIO; otherwise they call through to
 * the next definition (libc). LMDB without MDB_WRITEMAP syncs its data
 * with fdatasync, so a commit fails exactly as after a real I/O error and
 * the relay must not answer 250. Tests create and remove the flag file to
 * switch failure on and off while the process runs.
 *
 * Built without sanitizers (it loads into processes that may not have
 * them). Under ASan, set ASAN_OPTIONS=verify_asan_link_order=0.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int (*next_fsync)(int);
static int (*next_fdatasync)(int);
static int (*next_msync)(void *, size_t, int);
static int (*next_sync_file_range)(int, off64_t, off64_t, unsigned int);

static void *
failsync_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);

	if (fn == NULL)
		abort();
	return fn;
}

/* Resolve once at load, before any thread of the host exists, so the
 * wrappers themselves share nothing mutable. */
__attribute__((constructor)) static void
failsync_init(void)
{
	next_fsync = (int (*)(int))failsync_next("fsync");
	next_fdatasync = (int (*)(int))failsync_next("fdatasync");
	next_msync = (int (*)(void *, size_t, int))failsync_next("msync");
	next_sync_file_range = (int (*)(int, off64_t, off64_t,
	    unsigned int))failsync_next("sync_file_range");
}

/* Is failure switched on? Leaves errno as it was. */
static int
failsync_on(void)
{
	const char *flag = getenv("MTA_FAILSYNC_FLAG");
	int saved = errno;
	int on;

	if (flag == NULL || flag[0] == '\0')
		return 0;
	on = access(flag, F_OK) == 0;
	errno = saved;
	return on;
}

int
fsync(int fd)
{
	if (failsync_on()) {
		errno = EIO;
		return -1;
	}
	return next_fsync(fd);
}

int
fdatasync(int fd)
{
	if (failsync_on()) {
		errno = EIO;
		return -1;
	}
	return next_fdatasync(fd);
}

int
msync(void *addr, size_t len, int flags)
{
	if (failsync_on()) {
		errno = EIO;
		return -1;
	}
	return next_msync(addr, len, flags);
}

int
sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
	if (failsync_on()) {
		errno = EIO;
		return -1;
	}
	return next_sync_file_range(fd, off, n, flags);
}
