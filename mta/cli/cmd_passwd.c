/* SPDX-License-Identifier: ISC */
/*
 * cmd_passwd.c - `mta [-c FILE] passwd NAME`: add or change a submission
 * user in the [auth] users file; `passwd -d NAME` deletes one (the same
 * atomic rewrite), `passwd -l` lists the names (the file read by the
 * relay's own loader, so a file it would refuse is refused here too).
 *
 * The password comes from stdin: its first line, or, on a terminal, two
 * prompts with echo off. It is hashed with yescrypt (auth_hash_new) and
 * the file is rewritten atomically: every other line is kept byte for
 * byte, NAME's line is replaced (or appended), the result goes to a new
 * file in the same directory (mkostemp: O_EXCL, mode 0600, then the
 * original's mode and owner), which is fsynced and renamed over the
 * original, and the directory is fsynced. A crash leaves either the old
 * file or the new one, never a mix.
 *
 * XXX two concurrent runs may lose one update (last rename wins); it is
 * an administrator's command, not a service.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "auth/auth.h"
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"
#include "base/xalloc.h"
#include "config/config.h"

#define PASSWD_ERR_MAX 512

/* For the SIGINT handler: echo must come back if the prompt is aborted. */
static struct termios passwd_tio_saved;
static volatile sig_atomic_t passwd_tio_off;

static void
passwd_sigint(int sig)
{
	(void)sig;
	if (passwd_tio_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &passwd_tio_saved);
	_exit(1);
}

/* One line from fp into buf (without its newline). Returns 0, -ENODATA
 * at EOF before any byte, -E2BIG when longer than size - 1. */
static int
passwd_line(FILE *fp, char *buf, size_t size)
{
	size_t n;

	if (fgets(buf, (int)size, fp) == NULL)
		return -ENODATA;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(fp)) {
		int ch;

		/* Longer than the buffer: swallow the rest, refuse it. */
		while ((ch = fgetc(fp)) != EOF && ch != '\n')
			;
		return -E2BIG;
	}
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

static int
passwd_prompt(const char *prompt, char *buf, size_t size)
{
	struct termios tio;
	struct sigaction sa = {.sa_handler = passwd_sigint};
	int rc;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &passwd_tio_saved) < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	tio = passwd_tio_saved;
	tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	tio.c_lflag |= ICANON;
	passwd_tio_off = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0) {
		passwd_tio_off = 0;
		return -errno;
	}
	rc = passwd_line(stdin, buf, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &passwd_tio_saved);
	passwd_tio_off = 0;
	fputc('\n', stderr);
	return rc;
}

/* The password into pass (AUTH_PASS_MAX bytes). Returns 0, or -1 with a
 * reason in err. */
static int
passwd_read(char *pass, char *err, size_t errlen)
{
	char again[AUTH_PASS_MAX];
	int rc;

	if (isatty(STDIN_FILENO)) {
		if ((rc = passwd_prompt("Password: ", pass, AUTH_PASS_MAX)) ==
		    0)
			rc = passwd_prompt(
			    "Retype password: ", again, sizeof(again));
		if (rc == 0 && strcmp(pass, again) != 0) {
			explicit_bzero(again, sizeof(again));
			str_fmt(err, errlen, "passwords do not match");
			return -1;
		}
		explicit_bzero(again, sizeof(again));
	} else {
		rc = passwd_line(stdin, pass, AUTH_PASS_MAX);
	}
	if (rc == -E2BIG) {
		str_fmt(err, errlen, "password too long (at most %d bytes)",
		    AUTH_PASS_MAX - 1);
		return -1;
	}
	if (rc == -ENODATA || (rc == 0 && pass[0] == '\0')) {
		str_fmt(err, errlen, "empty password");
		return -1;
	}
	if (rc < 0) {
		str_fmt(
		    err, errlen, "cannot read the password: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* Does this line of the users file belong to name? */
static bool
passwd_line_is(const uint8_t *p, size_t len, const char *name)
{
	size_t n = strlen(name);

	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	return len > n && memcmp(p, name, n) == 0 && p[n] == ':';
}

/*
 * Build the new file: old with name's first line replaced by "name:hash"
 * and later ones dropped, or with that line appended. *found says which.
 * hash NULL: name's lines are dropped and nothing is added (delete).
 */
static void
passwd_rewrite(const uint8_t *old, size_t len, const char *name,
    const char *hash, struct buf *out, bool *found)
{
	const uint8_t *p = old, *end = old + len, *nl;
	size_t n;

	*found = false;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		if (!passwd_line_is(p, n, name)) {
			MTA_ASSERT(buf_append(out, p, n) == 0);
		} else if (!*found) {
			if (hash != NULL)
				MTA_ASSERT(buf_appendf(out, "%s:%s\n", name,
				               hash) == 0);
			*found = true;
		}
		p += n;
	}
	if (!*found && hash != NULL) {
		if (buf_avail(out) > 0 &&
		    buf_peek(out)[buf_avail(out) - 1] != '\n')
			MTA_ASSERT(buf_append(out, "\n", 1) == 0);
		MTA_ASSERT(buf_appendf(out, "%s:%s\n", name, hash) == 0);
	}
}

/* The current file, or empty when it does not exist yet (st_mode 0). */
static int
passwd_file_read(const char *path, struct buf *old, struct stat *st, char *err,
    size_t errlen)
{
	char *p;
	size_t n;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = file_read(path, old->max, &p, &n, st);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		str_fmt(err, errlen, "%s: %s", path, file_strerror(rc));
		return -1;
	}
	rc = buf_append(old, p, n); /* fits: file_read kept to old->max */
	free(p);
	MTA_ASSERT(rc == 0);
	return 0;
}

static int
passwd_write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Replace path with data: temp file, fsync, rename, fsync the dir. */
static int
passwd_replace(const char *path, const struct buf *data, const struct stat *st,
    char *err, size_t errlen)
{
	char tmp[PATH_MAX], dcopy[PATH_MAX], bcopy[PATH_MAX];
	const char *dir, *base;
	int fd = -1, dfd = -1, rc;
	bool made = false;

	if (!str_copy(dcopy, sizeof(dcopy), path) ||
	    !str_copy(bcopy, sizeof(bcopy), path)) {
		str_fmt(err, errlen, "%s: path too long", path);
		return -1;
	}
	dir = dirname(dcopy);
	base = basename(bcopy);
	if (!str_fmt(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base)) {
		str_fmt(err, errlen, "%s: path too long", path);
		return -1;
	}
	/* mkostemp: O_CREAT|O_EXCL, mode 0600. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		str_fmt(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	made = true;
	if (st->st_mode != 0 &&
	    ((st->st_uid != geteuid() || st->st_gid != getegid()) &&
	        fchown(fd, st->st_uid, st->st_gid) < 0)) {
		str_fmt(err, errlen, "%s: cannot keep the owner: %s", tmp,
		    strerror(errno));
		goto fail;
	}
	if (st->st_mode != 0 && fchmod(fd, st->st_mode & 07777) < 0) {
		str_fmt(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if ((rc = passwd_write_all(fd, buf_peek(data), buf_avail(data))) < 0 ||
	    (rc = fsync(fd) < 0 ? -errno : 0) < 0) {
		str_fmt(err, errlen, "%s: %s", tmp, strerror(-rc));
		goto fail;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		str_fmt(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		str_fmt(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	made = false;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(dfd) < 0) {
		str_fmt(err, errlen, "%s: fsync: %s", dir, strerror(errno));
		goto fail;
	}
	close(dfd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (made)
		unlink(tmp);
	return -1;
}

/* Add or update name in the users file at path. */
static int
passwd_update(const char *path, const char *name, const char *hash, bool *found,
    char *err, size_t errlen)
{
	char real[PATH_MAX];
	struct buf old, out;
	struct stat st;
	int rc = -1;

	/* Replace the file a symlink points to, not the link. */
	if (realpath(path, real) == NULL) {
		if (errno != ENOENT) {
			str_fmt(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		str_copy(real, sizeof(real), path);
	}
	buf_init(&old, AUTH_FILE_MAX);
	buf_init(&out, (size_t)AUTH_FILE_MAX + AUTH_LINE_MAX);
	if (passwd_file_read(real, &old, &st, err, errlen) < 0)
		goto out;
	passwd_rewrite(
	    buf_peek(&old), buf_avail(&old), name, hash, &out, found);
	if (hash == NULL && !*found) {
		/* a delete of nobody: the file stays as it is */
		str_fmt(err, errlen, "%s: no user %s", path, name);
		goto out;
	}
	rc = passwd_replace(real, &out, &st, err, errlen);
out:
	if (old.data != NULL)
		explicit_bzero(old.data, old.cap);
	buf_fini(&old);
	buf_fini(&out);
	return rc;
}

/* `passwd -l`: the names, one a line, as the relay reads the file. */
static int
passwd_list(const char *users)
{
	struct auth_users *u;
	char err[PASSWD_ERR_MAX];

	if (auth_users_load(users, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta passwd: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < auth_users_count(u); i++)
		printf("%s\n", auth_users_name(u, i));
	auth_users_unref(u);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* `passwd -d NAME` */
static int
passwd_delete(const char *users, const char *name)
{
	char err[PASSWD_ERR_MAX];
	bool found;

	if (passwd_update(users, name, NULL, &found, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta passwd: %s\n", err);
		return 1;
	}
	printf("mta passwd: deleted user %s from %s\n", name, users);
	return 0;
}

/* `passwd NAME`: the password from stdin, hashed, in the file. */
static int
passwd_set(const char *users, const char *name)
{
	char err[PASSWD_ERR_MAX], pass[AUTH_PASS_MAX], hash[AUTH_HASH_MAX];
	bool found;
	int rc;

	if (passwd_read(pass, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta passwd: %s\n", err);
		explicit_bzero(pass, sizeof(pass));
		return 1;
	}
	rc = auth_hash_new(pass, hash, sizeof(hash));
	explicit_bzero(pass, sizeof(pass));
	if (rc < 0) {
		fprintf(stderr, "mta passwd: cannot hash the password: %s\n",
		    strerror(-rc));
		return 1;
	}
	if (passwd_update(users, name, hash, &found, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta passwd: %s\n", err);
		return 1;
	}
	printf("mta passwd: %s user %s in %s\n", found ? "updated" : "added",
	    name, users);
	return 0;
}

int
cmd_passwd(const char *config_path, int argc, char **argv)
{
	char err[PASSWD_ERR_MAX];
	struct config *cfg = NULL;
	const char *name = argc == 2 ? argv[1] : argc == 3 ? argv[2] : NULL;
	bool list = argc == 2 && strcmp(argv[1], "-l") == 0;
	bool del = argc == 3 && strcmp(argv[1], "-d") == 0;
	int status;

	if (!list && !del && (argc != 2 || argv[1][0] == '-')) {
		fprintf(stderr, "usage: mta [-c FILE] passwd NAME | -d NAME | "
		                "-l\n");
		return 2;
	}
	if (!list && !auth_name_valid(name)) {
		fprintf(stderr,
		    "mta passwd: invalid user name: it must be 1 "
		    "to %d bytes without ':' or whitespace\n",
		    AUTH_USER_MAX - 1);
		return 1;
	}
	if (config_load(config_path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "mta passwd: %s\n", err);
		return 1;
	}
	if (cfg->auth.users[0] == '\0') {
		fprintf(stderr,
		    "mta passwd: %s: no users file configured "
		    "([auth] users)\n",
		    cfg->file[0] ? cfg->file : config_path);
		config_unref(cfg);
		return 1;
	}
	if (list)
		status = passwd_list(cfg->auth.users);
	else if (del)
		status = passwd_delete(cfg->auth.users, name);
	else
		status = passwd_set(cfg->auth.users, name);
	config_unref(cfg);
	return status;
}
