/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_store.c - TLS-RPT periods in their own LMDB environment
 * (tlsrpt_store.h). Thread: the TLS-RPT thread.
 */
#include "tlsrpt/tlsrpt_store.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/str.h"
#include "base/xalloc.h"

#define STORE_MAP     ((size_t)256 << 20) /* sparse: costs nothing */
#define STORE_VAL_MAX ((size_t)1 << 20)

struct tlsrpt_store {
	MDB_env *env;
	MDB_dbi dbi;
};

int
tlsrpt_store_open(
    const char *dir, struct tlsrpt_store **out, char *err, size_t errlen)
{
	struct tlsrpt_store *s = xcalloc(1, sizeof(*s));
	char path[4096];
	MDB_txn *txn;
	int rc;

	str_fmt(path, sizeof(path), "%s/tlsrpt.mdb", dir);
	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, STORE_MAP)) != 0 ||
	    (rc = mdb_env_open(s->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0600)) !=
	        0 ||
	    (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	str_fmt(err, errlen, "tlsrpt store %s: %s", path, mdb_strerror(rc));
	if (s->env)
		mdb_env_close(s->env);
	free(s);
	return -EIO;
}

void
tlsrpt_store_close(struct tlsrpt_store *s)
{
	if (s == NULL)
		return;
	mdb_env_close(s->env);
	free(s);
}

static void
entry_key(const struct tlsrpt_agg *a, char *key, size_t len)
{
	str_fmt(key, len, "%016" PRIx64 " %s", a->start, a->domain);
}

static int
entry_decode(struct tlsrpt_entry *e, const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	unsigned sent;
	char head[80];

	if (nl == NULL || (size_t)(nl - p) >= sizeof(head))
		return -EBADMSG;
	memcpy(head, p, (size_t)(nl - p));
	head[nl - p] = '\0';
	if (sscanf(head, "m %u %" SCNu32 " %" SCNu64, &sent, &e->done,
	        &e->next) != 3)
		return -EBADMSG;
	e->sent = sent != 0;
	nl++;
	return tlsrpt_agg_decode(&e->agg, nl, n - (size_t)(nl - p));
}

/* Key "<hex start> <domain>" back into a. */
static bool
key_decode(const MDB_val *k, struct tlsrpt_agg *a)
{
	char key[TLSRPT_NAME_MAX + 24], *end;

	if (k->mv_size < 18 || k->mv_size >= sizeof(key))
		return false;
	memcpy(key, k->mv_data, k->mv_size);
	key[k->mv_size] = '\0';
	a->start = strtoull(key, &end, 16);
	return end == key + 16 && *end == ' ' &&
	       str_copy(a->domain, sizeof(a->domain), end + 1);
}

int
tlsrpt_store_get(struct tlsrpt_store *s, struct tlsrpt_entry *e)
{
	char key[TLSRPT_NAME_MAX + 24];
	MDB_val k, v;
	MDB_txn *txn;
	int rc;

	entry_key(&e->agg, key, sizeof(key));
	k = (MDB_val){strlen(key), key};
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return -EIO;
	rc = mdb_get(txn, s->dbi, &k, &v);
	if (rc == 0)
		rc = entry_decode(e, v.mv_data, v.mv_size);
	else
		rc = rc == MDB_NOTFOUND ? -ENOENT : -EIO;
	mdb_txn_abort(txn);
	return rc;
}

static int
entry_put(struct tlsrpt_store *s, MDB_txn *txn, const struct tlsrpt_entry *e)
{
	char key[TLSRPT_NAME_MAX + 24];
	struct buf b;
	MDB_val k, v;
	int rc;

	entry_key(&e->agg, key, sizeof(key));
	k = (MDB_val){strlen(key), key};
	buf_init(&b, STORE_VAL_MAX);
	rc = buf_appendf(&b, "m %u %" PRIu32 " %" PRIu64 "\n", e->sent ? 1 : 0,
	    e->done, e->next);
	if (rc == 0)
		rc = tlsrpt_agg_encode(&e->agg, &b);
	if (rc == 0) {
		v = (MDB_val){buf_avail(&b), (void *)(uintptr_t)buf_peek(&b)};
		rc = mdb_put(txn, s->dbi, &k, &v, 0);
		rc = rc == 0 ? 0 : rc == MDB_MAP_FULL ? -ENOSPC : -EIO;
	}
	buf_fini(&b);
	return rc;
}

int
tlsrpt_store_put(
    struct tlsrpt_store *s, struct tlsrpt_entry *const *e, size_t n)
{
	MDB_txn *txn;
	int rc;

	if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
		return -EIO;
	for (size_t i = 0; i < n; i++)
		if ((rc = entry_put(s, txn, e[i])) != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
	rc = mdb_txn_commit(txn);
	return rc == 0 ? 0 : rc == MDB_MAP_FULL ? -ENOSPC : -EIO;
}

size_t
tlsrpt_store_due(struct tlsrpt_store *s, uint64_t now, uint64_t interval,
    uint64_t keep, void (*fn)(void *arg, const struct tlsrpt_entry *e),
    void *arg)
{
	struct tlsrpt_entry *e = xmalloc(sizeof(*e));
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	size_t n = 0;
	int op = MDB_FIRST;

	if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0 ||
	    mdb_cursor_open(txn, s->dbi, &cur) != 0) {
		free(e);
		return 0;
	}
	for (; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
		memset(e, 0, sizeof(*e));
		if (!key_decode(&k, &e->agg) ||
		    entry_decode(e, v.mv_data, v.mv_size) != 0) {
			log_warnx("event=tlsrpt-bad-record");
			mdb_cursor_del(cur, 0);
			continue;
		}
		if (e->agg.start + interval > now)
			continue;
		if (now - (e->agg.start + interval) > keep) {
			mdb_cursor_del(cur, 0);
			continue;
		}
		if (!e->sent && e->next <= now) {
			fn(arg, e);
			n++;
		}
	}
	mdb_cursor_close(cur);
	if (mdb_txn_commit(txn) != 0)
		log_warnx("event=tlsrpt-store-prune-failed");
	free(e);
	return n;
}
