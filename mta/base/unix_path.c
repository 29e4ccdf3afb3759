/* SPDX-License-Identifier: ISC */
/*
 * unix_path.c - unix socket addresses for long paths (unix_path.h).
 */
#include "base/unix_path.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/str.h"

#define DIR_MAX 4096

int
unix_path_addr(const char *path, struct sockaddr_un *sun, int *dfd)
{
	const char *slash = strrchr(path, '/');
	char dir[DIR_MAX];

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	*dfd = -1;
	if (str_copy(sun->sun_path, sizeof(sun->sun_path), path))
		return 0;
	if (slash == NULL ||
	    !str_ncopy(dir, sizeof(dir), path, (size_t)(slash - path)))
		return -ENAMETOOLONG;
	if ((*dfd = open(
	         dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (!str_fmt(sun->sun_path, sizeof(sun->sun_path),
	        "/proc/self/fd/%d/%s", *dfd, slash + 1)) {
		close(*dfd);
		*dfd = -1;
		return -ENAMETOOLONG;
	}
	return 0;
}
