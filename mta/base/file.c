/* SPDX-License-Identifier: ISC */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"

int
file_read(
    const char *path, size_t max, char **out, size_t *len, struct stat *stp)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	char *p;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = !S_ISREG(st.st_mode)         ? -EINVAL
	     : (uint64_t)st.st_size > max ? -EFBIG
	                                  : 0;
	if (rc != 0)
		goto fail;
	p = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, p + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			free(p);
			goto fail;
		}
		if (n == 0)
			break; /* shrank under us: take what is there */
		got += (size_t)n;
	}
	close(fd);
	p[got] = '\0';
	*out = p;
	*len = got;
	if (stp != NULL)
		*stp = st;
	return 0;
fail:
	close(fd);
	return rc;
}

const char *
file_strerror(int rc)
{
	if (rc == -EINVAL)
		return "not a regular file";
	if (rc == -EFBIG)
		return "file too large";
	return strerror(-rc);
}
