/* SPDX-License-Identifier: ISC */
/*
 * queue_env.c - the LMDB environment: open, recover, close, and the read
 * side (count, scan, get).
 *
 * The environment is a directory (data.mdb + lock.mdb) created 0750. The
 * writer opens it with full syncs: never MDB_NOSYNC, MDB_NOMETASYNC or
 * MDB_MAPASYNC, because "250 only after the commit is on disk" rests on
 * mdb_txn_commit() syncing. Readers (`mta queue`, in another process)
 * open it MDB_RDONLY; LMDB lets them read while the relay writes. The
 * relay's group may list the queue (`mta queue list` as a member): the
 * directory is group-searchable, data.mdb group-readable and lock.mdb
 * group-writable, because an LMDB reader takes a slot in the lock file;
 * nobody else gets in.
 *
 * MDB_NOTLS ties a reader slot to its transaction rather than to a
 * thread, so the many threads of the relay do not each pin a slot.
 * Read transactions here are short: a scan reads a batch of records,
 * ends its transaction, and only then runs the callbacks, so a slow
 * consumer (a pager on `mta queue list`) never stops LMDB from reusing
 * pages. LMDB codes are translated at this boundary (queue_env_err).
 */
#include "queue_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/chan.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"

#define QUEUE_MAXDBS     4   /* msgs, bodies, and room for a retry index */
#define QUEUE_SCAN_BATCH 256 /* records per read transaction */

int
queue_env_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	default:
		/* Positive values are errno (from write, fdatasync, open). */
		return rc > 0 ? -rc : -EIO;
	}
}

int
queue_env_read_begin(struct queue *q, MDB_txn **txn)
{
	int rc;

	rc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry.
		 * Only readers in a separate process can see this, and they
		 * hold no other transaction at this point. */
		if ((rc = mdb_env_set_mapsize(q->env, 0)) == 0)
			rc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, txn);
	}
	return queue_env_err(rc);
}

/* The deepest existing directory on the way to path, into dir. */
static int
queue_env_existing_parent(const char *path, char *dir, size_t len)
{
	struct stat st;
	char *slash;

	str_copy(dir, len, path);
	for (;;) {
		if ((slash = strrchr(dir, '/')) == NULL)
			str_copy(dir, len, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir, &st) == 0)
			return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
		if (errno != ENOENT)
			return -errno;
		if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
			return -ENOENT;
	}
}

int
queue_path_check(const struct config_queue *cfg, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX], db[CONFIG_PATH_MAX + 16];
	const char *path = cfg->path;
	struct stat st;
	int rc;

	if (path[0] == '\0') {
		snprintf(err, errlen, "queue path is empty");
		return -EINVAL;
	}
	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			goto fail;
		/* made at start: its nearest existing parent must let us */
		if ((rc = queue_env_existing_parent(path, dir, sizeof(dir))) <
		    0) {
			snprintf(err, errlen, "%s: cannot be created: %s", path,
			    strerror(-rc));
			return rc;
		}
		if (access(dir, W_OK | X_OK) != 0) {
			snprintf(err, errlen, "%s: cannot be created: %s: %s",
			    path, dir, strerror(errno));
			return -errno;
		}
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	if (access(path, R_OK | W_OK | X_OK) != 0)
		goto fail;
	snprintf(db, sizeof(db), "%s/data.mdb", path);
	if (access(db, F_OK) == 0 && access(db, R_OK | W_OK) != 0) {
		snprintf(err, errlen, "%s: %s", db, strerror(errno));
		return -errno;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return -errno;
}

/* mkdir -p, with the queue directory itself the relay's and its group's
 * (0750). */
static int
queue_env_mkdir(const char *path, char *err, size_t errlen)
{
	char tmp[CONFIG_PATH_MAX];
	struct stat st;
	size_t n;

	str_copy(tmp, sizeof(tmp), path);
	n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
		goto fail;
	if (stat(tmp, &st) != 0)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
	return -errno;
}

static int
queue_env_dbi_open(struct queue *q)
{
	unsigned flags = q->readonly ? 0 : MDB_CREATE;
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(q->env, NULL, q->readonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return rc;
	if ((rc = mdb_dbi_open(txn, "msgs", flags, &q->msgs)) != 0 ||
	    (rc = mdb_dbi_open(txn, "bodies", flags, &q->bodies)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	/* Committing (even a read txn) makes the handles shared. */
	return mdb_txn_commit(txn);
}

static int
queue_env_last_id(struct queue *q, uint64_t *id)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*id = 0;
	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, q->msgs, &cur)) == 0) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		if (rc == 0 && k.mv_size == 8)
			*id = queue_key_get(k.mv_data);
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : queue_env_err(rc);
}

struct queue_recovery {
	uint64_t messages;
	uint64_t pending;
};

static int
queue_env_recover_one(void *arg, const struct queue_envelope *env)
{
	struct queue_recovery *r = arg;

	r->messages++;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING)
			r->pending++;
	return 0;
}

/*
 * Startup check of everything stored: every record must decode (the scan
 * logs those that do not). The scheduler rebuilds its due heap with its
 * own queue_scan(); this pass only reports what survived the restart.
 */
static int
queue_env_recover(struct queue *q)
{
	struct queue_recovery r = {0, 0};
	int rc;

	if ((rc = queue_scan(q, 0, queue_env_recover_one, &r)) != 0)
		return rc;
	log_event("event=recovered messages=%" PRIu64 " pending_rcpts=%" PRIu64,
	    r.messages, r.pending);
	return 0;
}

/* The group's access (file comment), whatever the umask or an older
 * relay left: best effort, a reader is told plainly when it lacks it. */
static void
queue_env_group_access(const char *path)
{
	char f[CONFIG_PATH_MAX + 16];
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & 0050) != 0050)
		(void)chmod(path, (st.st_mode & 07777) | 0050);
	if (str_fmt(f, sizeof(f), "%s/data.mdb", path))
		(void)chmod(f, 0640);
	if (str_fmt(f, sizeof(f), "%s/lock.mdb", path))
		(void)chmod(f, 0660);
}

static int
queue_env_open_lmdb(struct queue *q, const struct config_queue *cfg)
{
	unsigned flags = MDB_NOTLS | (q->readonly ? MDB_RDONLY : 0);
	int rc, dead;

	if ((rc = mdb_env_create(&q->env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(q->env, QUEUE_MAXDBS)) != 0)
		return rc;
	/* Readers take the size the writer recorded in the file. */
	if (!q->readonly && cfg->map_size != 0 &&
	    (rc = mdb_env_set_mapsize(q->env, (size_t)cfg->map_size)) != 0)
		return rc;
	if ((rc = mdb_env_open(q->env, q->path, flags, 0640)) != 0)
		return rc;
	if (!q->readonly)
		queue_env_group_access(q->path);
	/* Free reader slots left by dead processes (a killed `mta queue`),
	 * which would otherwise pin old pages forever. */
	if (!q->readonly)
		(void)mdb_reader_check(q->env, &dead);
	return queue_env_dbi_open(q);
}

int
queue_open(const struct config_queue *cfg, bool readonly, struct queue **out,
    char *err, size_t errlen)
{
	struct queue *q;
	uint64_t last;
	int rc;

	*out = NULL;
	if (cfg->path[0] == '\0') {
		snprintf(err, errlen, "queue path is empty");
		return -EINVAL;
	}
	q = xcalloc(1, sizeof(*q));
	q->readonly = readonly;
	str_copy(q->path, sizeof(q->path), cfg->path);
	if (!readonly && ((rc = queue_path_check(cfg, err, errlen)) != 0 ||
	                     (rc = queue_env_mkdir(q->path, err, errlen)) != 0))
		goto fail;
	if ((rc = queue_env_open_lmdb(q, cfg)) != 0) {
		snprintf(err, errlen, "%s: %s", q->path,
		    rc == MDB_NOTFOUND ? "not a queue (no msgs database)"
		                       : mdb_strerror(rc));
		rc = queue_env_err(rc);
		goto fail;
	}
	if ((rc = queue_env_last_id(q, &last)) != 0 ||
	    (!readonly && (rc = queue_env_recover(q)) != 0)) {
		snprintf(err, errlen, "%s: reading the queue: %s", q->path,
		    strerror(-rc));
		goto fail;
	}
	atomic_store(&q->last_id, last);
	if (!readonly) {
		q->chan = chan_new();
		queue_room_init(q, cfg->min_free_space);
	}
	*out = q;
	return 0;
fail:
	if (q->env != NULL)
		mdb_env_close(q->env);
	free(q);
	return rc;
}

void
queue_env_close(struct queue *q)
{
	chan_free(q->chan);
	mdb_env_close(q->env);
	free(q);
}

int
queue_count(struct queue *q, uint64_t *n)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	*n = 0;
	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	rc = mdb_stat(txn, q->msgs, &st);
	mdb_txn_abort(txn);
	if (rc != 0)
		return queue_env_err(rc);
	*n = st.ms_entries;
	return 0;
}

static void
queue_env_corrupt(const MDB_val *k)
{
	char hex[QUEUE_ID_HEX + 1];

	if (k->mv_size == 8)
		queue_id_fmt(queue_key_get(k->mv_data), hex);
	else
		str_copy(hex, sizeof(hex), "bad-key");
	log_warnx("event=record-corrupt id=%s action=skipped", hex);
}

/*
 * Decode up to QUEUE_SCAN_BATCH envelopes with id >= *next into batch, in
 * one read transaction. *next becomes the id to resume from; *more is
 * false at the end of the database.
 */
static int
queue_env_scan_batch(struct queue *q, uint64_t *next, bool *more,
    struct queue_envelope *batch, size_t *n)
{
	uint8_t key[8];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_SET_RANGE;
	uint64_t id;
	int rc;

	*n = 0;
	*more = false;
	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, q->msgs, &cur)) != 0)
		goto out;
	queue_key_put(key, *next);
	k.mv_data = key;
	k.mv_size = sizeof(key);
	while (*n < QUEUE_SCAN_BATCH &&
	       (rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (k.mv_size != 8) {
			queue_env_corrupt(&k);
			continue;
		}
		id = queue_key_get(k.mv_data);
		if (queue_envelope_decode(v.mv_data, v.mv_size, &batch[*n]) !=
		    0)
			queue_env_corrupt(&k);
		else
			(*n)++;
		/* The largest id is the last of all: stop there. */
		if (id == UINT64_MAX) {
			rc = MDB_NOTFOUND;
			break;
		}
		*next = id + 1;
	}
	if (rc == 0)
		*more = true;
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cur);
out:
	mdb_txn_abort(txn);
	return queue_env_err(rc);
}

int
queue_scan(struct queue *q, uint64_t start, queue_scan_fn *fn, void *arg)
{
	struct queue_envelope *batch;
	uint64_t next = start;
	size_t n, i;
	bool more = true;
	int rc = 0;

	batch = xcalloc(QUEUE_SCAN_BATCH, sizeof(*batch));
	while (rc == 0 && more) {
		if ((rc = queue_env_scan_batch(q, &next, &more, batch, &n)) !=
		    0)
			break;
		/* The transaction is over: callbacks may take their time. */
		for (i = 0; i < n && rc == 0; i++)
			rc = fn(arg, &batch[i]);
		for (i = 0; i < n; i++)
			queue_envelope_fini(&batch[i]);
	}
	free(batch);
	return rc;
}

/* mdb_get of id in dbi, inside an open read txn. */
static int
queue_env_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, MDB_val *v)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key};

	queue_key_put(key, id);
	return queue_env_err(mdb_get(txn, dbi, &k, v));
}

int
queue_envelope_get(struct queue *q, uint64_t id, struct queue_envelope *env)
{
	MDB_txn *txn;
	MDB_val v;
	int rc;

	memset(env, 0, sizeof(*env));
	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	if ((rc = queue_env_get(txn, q->msgs, id, &v)) == 0)
		rc = queue_envelope_decode(v.mv_data, v.mv_size, env);
	mdb_txn_abort(txn);
	return rc;
}

int
queue_body_get(struct queue *q, uint64_t id, struct buf *out)
{
	MDB_txn *txn;
	MDB_val v;
	int rc;

	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	/* v points into the map until the txn ends: copy before that. */
	if ((rc = queue_env_get(txn, q->bodies, id, &v)) == 0)
		rc = buf_append(out, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	return rc;
}

ssize_t
queue_body_read(struct queue *q, uint64_t id, uint64_t off, void *dst,
    size_t len, uint64_t *total)
{
	MDB_txn *txn;
	MDB_val v;
	size_t n = 0;
	int rc;

	if ((rc = queue_env_read_begin(q, &txn)) != 0)
		return rc;
	/* v points into the map until the txn ends: copy before that. */
	if ((rc = queue_env_get(txn, q->bodies, id, &v)) == 0) {
		if (total != NULL)
			*total = v.mv_size;
		if (off < v.mv_size && len > 0) {
			n = v.mv_size - off < len ? v.mv_size - off : len;
			memcpy(dst, (const uint8_t *)v.mv_data + off, n);
		}
	}
	mdb_txn_abort(txn);
	return rc != 0 ? rc : (ssize_t)n;
}

const char *
queue_library_version(void)
{
	return mdb_version(NULL, NULL, NULL);
}
