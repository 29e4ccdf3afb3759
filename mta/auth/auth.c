/* SPDX-License-Identifier: ISC */
/*
 * auth.c - users file, crypt_r verification, and the check pool.
 *
 * The pool is leader/follower over one chan (a single-consumer queue):
 * at most one idle worker, the leader, blocks in chan_wait(); it moves the
 * batch it gets to the pool's own list and wakes the followers, which
 * wait on a condition variable. So the chan keeps its one consumer at any
 * time, and a batch of requests from many sessions still spreads over
 * every worker instead of running serially on the one that took it.
 */
#include "auth/auth.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"

struct auth_user {
	const char *name; /* into auth_users.pool */
	const char *hash; /* into auth_users.pool */
	size_t line;      /* for duplicate reports */
};

struct auth_users {
	atomic_uint refs;
	struct auth_user *users; /* sorted by name */
	size_t n;
	char *pool;                /* the file, split in place */
	char dummy[AUTH_HASH_MAX]; /* same cost as real users, never matches */
};

struct auth_pool {
	struct chan *in; /* requests from every thread */
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* lock: work arrived, or stop */
	struct chan_msg *head;    /* lock: taken from `in`, not started */
	struct chan_msg *tail;    /* lock */
	bool polling;             /* lock: a worker is in chan_wait() */
	bool stop;                /* lock: stop_msg was seen */
	struct auth_users *users; /* lock: current snapshot, one reference */
	struct chan_msg stop_msg; /* sent by auth_pool_free */
};

void
auth_req_free(struct auth_req *req)
{
	if (req == NULL)
		return;
	explicit_bzero(req, sizeof(*req));
	free(req);
}

bool
auth_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= AUTH_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == ':' || ch <= ' ' || ch == 0x7f)
			return false;
	}
	return true;
}

static bool
auth_hash_valid(const char *hash)
{
	size_t n = strlen(hash);

	if (n == 0 || n >= AUTH_HASH_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)hash[i];

		if (ch == ':' || ch <= ' ' || ch == 0x7f)
			return false;
	}
	return true;
}

/*
 * crypt_checksalt() judges the setting only: any two characters pass as
 * a traditional DES salt. Hashes without a "$id$" prefix must therefore
 * have the exact DES (13) or BSDi (20, "_") shape.
 */
static bool
auth_hash_shape(const char *hash)
{
	static const char itoa64[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t n = strlen(hash), skip = hash[0] == '_';

	if (hash[0] == '$')
		return true;
	if (n != (skip ? 20u : 13u))
		return false;
	return strspn(hash + skip, itoa64) == n - skip;
}

static int
auth_user_cmp(const void *a, const void *b)
{
	const struct auth_user *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* The whole file, bounded, NUL-terminated. */
static int
auth_file_read(
    const char *path, char **out, size_t *lenp, char *err, size_t errlen)
{
	int rc = file_read(path, AUTH_FILE_MAX, out, lenp, NULL);

	if (rc < 0)
		str_fmt(err, errlen, "%s: %s", path, file_strerror(rc));
	return rc;
}

/* Parse one line in place. Returns 1 for a user, 0 for nothing (blank or
 * comment), -1 with *why set for a bad line. */
static int
auth_line_parse(char *line, struct auth_user *u, const char **why)
{
	char *end = line + strlen(line), *colon;

	while (end > line && isspace((unsigned char)end[-1]))
		*--end = '\0';
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || *line == '#')
		return 0;
	if ((colon = strchr(line, ':')) == NULL) {
		*why = "expected NAME:HASH";
		return -1;
	}
	*colon = '\0';
	if (!auth_name_valid(line)) {
		*why = "bad user name";
		return -1;
	}
	if (!auth_hash_valid(colon + 1)) {
		*why = "bad password hash (expected NAME:HASH)";
		return -1;
	}
	/* "!" locks the account; whatever follows is kept unchecked. */
	if (colon[1] != '!' && !auth_hash_shape(colon + 1)) {
		*why = "malformed or unsupported password hash";
		return -1;
	}
	if (colon[1] != '!') {
		switch (crypt_checksalt(colon + 1)) {
		case CRYPT_SALT_OK:
		case CRYPT_SALT_METHOD_LEGACY:
		case CRYPT_SALT_TOO_CHEAP:
			break;
		case CRYPT_SALT_METHOD_DISABLED:
			*why = "password hash method disabled in libcrypt";
			return -1;
		default:
			*why = "malformed or unsupported password hash";
			return -1;
		}
	}
	u->name = line;
	u->hash = colon + 1;
	return 1;
}

static int
auth_users_parse(
    struct auth_users *u, const char *path, char *err, size_t errlen)
{
	char *line = u->pool, *nl;
	size_t lineno = 0, cap = 0;
	const char *why;
	int r;

	while (*line != '\0') {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (strlen(line) >= AUTH_LINE_MAX) {
			str_fmt(
			    err, errlen, "%s:%zu: line too long", path, lineno);
			return -EINVAL;
		}
		if (u->n == cap) {
			cap = cap ? cap * 2 : 16;
			u->users =
			    xreallocarray(u->users, cap, sizeof(*u->users));
		}
		r = auth_line_parse(line, &u->users[u->n], &why);
		if (r < 0) {
			str_fmt(err, errlen, "%s:%zu: %s", path, lineno, why);
			return -EINVAL;
		}
		if (r > 0)
			u->users[u->n++].line = lineno;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	if (u->n > 1)
		qsort(u->users, u->n, sizeof(*u->users), auth_user_cmp);
	for (size_t i = 1; i < u->n; i++)
		if (strcmp(u->users[i - 1].name, u->users[i].name) == 0) {
			size_t l = u->users[i - 1].line > u->users[i].line
			               ? u->users[i - 1].line
			               : u->users[i].line;

			str_fmt(err, errlen, "%s:%zu: duplicate user %s", path,
			    l, u->users[i].name);
			return -EINVAL;
		}
	return 0;
}

/*
 * The dummy must cost what a real check costs: use the first real user's
 * hash as the setting (same method and cost parameters). With no usable
 * user, a fresh yescrypt hash of random bytes.
 */
static int
auth_dummy_init(struct auth_users *u)
{
	char pw[33];
	uint8_t rnd[16];
	int rc;

	for (size_t i = 0; i < u->n; i++)
		if (u->users[i].hash[0] != '!') {
			str_copy(u->dummy, sizeof(u->dummy), u->users[i].hash);
			return 0;
		}
	if (getentropy(rnd, sizeof(rnd)) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
	rc = auth_hash_new(pw, u->dummy, sizeof(u->dummy));
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

int
auth_users_load(
    const char *path, struct auth_users **out, char *err, size_t errlen)
{
	struct auth_users *u;
	size_t len = 0;
	int rc;

	u = xcalloc(1, sizeof(*u));
	atomic_init(&u->refs, 1);
	if ((rc = auth_file_read(path, &u->pool, &len, err, errlen)) < 0)
		goto fail;
	if (memchr(u->pool, '\0', len) != NULL) {
		str_fmt(err, errlen, "%s: contains a NUL byte", path);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = auth_users_parse(u, path, err, errlen)) < 0)
		goto fail;
	if ((rc = auth_dummy_init(u)) < 0) {
		str_fmt(err, errlen, "%s: cannot make a dummy hash: %s", path,
		    strerror(-rc));
		goto fail;
	}
	*out = u;
	return 0;
fail:
	auth_users_unref(u);
	return rc;
}

struct auth_users *
auth_users_ref(struct auth_users *u)
{
	atomic_fetch_add_explicit(&u->refs, 1, memory_order_relaxed);
	return u;
}

void
auth_users_unref(struct auth_users *u)
{
	if (u == NULL)
		return;
	if (atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (u->pool != NULL)
		explicit_bzero(u->pool, strlen(u->pool));
	free(u->pool);
	free(u->users);
	explicit_bzero(u->dummy, sizeof(u->dummy));
	free(u);
}

size_t
auth_users_count(const struct auth_users *u)
{
	return u->n;
}

const char *
auth_users_name(const struct auth_users *u, size_t i)
{
	MTA_ASSERT(i < u->n);
	return u->users[i].name;
}

const char *
auth_users_lookup(const struct auth_users *u, const char *name)
{
	struct auth_user key = {.name = name}, *hit;

	if (u->n == 0)
		return NULL;
	hit = bsearch(&key, u->users, u->n, sizeof(*u->users), auth_user_cmp);
	return hit ? hit->hash : NULL;
}

/* Time depends only on the length of b (public: the stored hash). */
static bool
auth_ct_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	volatile unsigned char d = la != lb;

	for (size_t i = 0; i < lb; i++)
		d |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
	return d == 0;
}

bool
auth_verify(const struct auth_users *u, const char *user, const char *pass)
{
	const char *hash = auth_users_lookup(u, user), *setting, *res;
	struct crypt_data *cd;
	bool known, ok;

	known = hash != NULL && hash[0] != '!';
	setting = known ? hash : u->dummy;
	/* 32 KiB: too big for a worker's stack to carry casually. */
	cd = xcalloc(1, sizeof(*cd));
	res = crypt_r(pass, setting, cd);
	ok = res != NULL && res[0] != '*' && auth_ct_eq(res, setting);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok && known;
}

int
auth_hash_new(const char *pass, char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *res;
	int rc = 0;

	/* count 0: libcrypt's default cost; NULL: it reads the salt from
	 * the OS random source. */
	if (crypt_gensalt_rn(
	        "$y$", 0, NULL, 0, setting, (int)sizeof(setting)) == NULL)
		return errno == EINVAL ? -ENOSYS : -errno;
	cd = xcalloc(1, sizeof(*cd));
	res = crypt_r(pass, setting, cd);
	if (res == NULL || res[0] == '*')
		rc = -EINVAL;
	else if (!str_copy(out, outlen, res))
		rc = -ENAMETOOLONG;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

static void
auth_pool_answer(struct auth_pool *p, struct auth_req *req, bool check)
{
	struct auth_users *u = NULL;

	req->user[sizeof(req->user) - 1] = '\0';
	req->pass[sizeof(req->pass) - 1] = '\0';
	if (check) {
		pthread_mutex_lock(&p->lock);
		u = auth_users_ref(p->users);
		pthread_mutex_unlock(&p->lock);
		req->ok = auth_verify(u, req->user, req->pass);
		auth_users_unref(u);
	} else {
		req->ok = false;
	}
	explicit_bzero(req->pass, sizeof(req->pass));
	req->msg.type = AUTH_DONE_CHECK;
	chan_send(req->reply, &req->msg);
}

/* Append a batch taken from the chan; lock held. */
static void
auth_pool_enqueue(struct auth_pool *p, struct chan_msg *m)
{
	struct chan_msg *next;

	for (; m != NULL; m = next) {
		next = m->next;
		if (m == &p->stop_msg) {
			p->stop = true;
			continue;
		}
		m->next = NULL;
		if (p->tail)
			p->tail->next = m;
		else
			p->head = m;
		p->tail = m;
	}
}

static void *
auth_pool_worker(void *arg)
{
	struct auth_pool *p = arg;
	struct chan_msg *m;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if ((m = p->head) != NULL) {
			if ((p->head = m->next) == NULL)
				p->tail = NULL;
			pthread_mutex_unlock(&p->lock);
			auth_pool_answer(p, (struct auth_req *)m, true);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->stop)
			break;
		if (p->polling) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		/* Become the leader: the only thread reading the chan. */
		p->polling = true;
		pthread_mutex_unlock(&p->lock);
		m = chan_wait(p->in, -1);
		pthread_mutex_lock(&p->lock);
		p->polling = false;
		auth_pool_enqueue(p, m);
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct auth_pool *
auth_pool_new(struct auth_users *users, unsigned nthreads)
{
	struct auth_pool *p;
	sigset_t all, old;
	int rc;

	MTA_ASSERT(nthreads >= 1);
	p = xcalloc(1, sizeof(*p));
	p->in = chan_new();
	p->users = users;
	p->nthreads = nthreads;
	p->threads = xcalloc(nthreads, sizeof(*p->threads));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	/* Signals go to the main thread's signalfd, never to a worker. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < nthreads; i++)
		if ((rc = pthread_create(
		         &p->threads[i], NULL, auth_pool_worker, p)) != 0) {
			errno = rc;
			fatal("auth: pthread_create");
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p;
}

void
auth_pool_submit(struct auth_pool *p, struct auth_req *req)
{
	MTA_ASSERT(req->reply != NULL);
	req->msg.type = AUTH_REQ_CHECK;
	chan_send(p->in, &req->msg);
}

struct chan *
auth_pool_chan(struct auth_pool *p)
{
	return p->in;
}

void
auth_pool_users_swap(struct auth_pool *p, struct auth_users *users)
{
	struct auth_users *old;

	pthread_mutex_lock(&p->lock);
	old = p->users;
	p->users = users;
	pthread_mutex_unlock(&p->lock);
	auth_users_unref(old);
}

void
auth_pool_free(struct auth_pool *p)
{
	struct chan_msg *m, *next;

	if (p == NULL)
		return;
	chan_send(p->in, &p->stop_msg);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* Late arrivals: answer rather than leak a session's request. */
	for (m = chan_take(p->in); m != NULL; m = next) {
		next = m->next;
		if (m != &p->stop_msg)
			auth_pool_answer(p, (struct auth_req *)m, false);
	}
	chan_free(p->in);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	auth_users_unref(p->users);
	free(p->threads);
	free(p);
}
