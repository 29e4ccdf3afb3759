/* SPDX-License-Identifier: ISC */
/*
 * sts_cache.c - the MTA-STS policy cache in its own LMDB environment.
 * Thread: the policy thread (or `mta resolve`'s own). Each call is one
 * short transaction; a write is synced (a policy is small and rare).
 */
#include "sts/sts_cache.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

#define STS_CACHE_VERSION 1
#define STS_CACHE_MAP     ((size_t)64 << 20) /* sparse: costs nothing */

struct sts_cache {
	MDB_env *env;
	MDB_dbi dbi;
};

int
sts_cache_open(
    const char *dir, struct sts_cache **out, char *err, size_t errlen)
{
	struct sts_cache *c = xcalloc(1, sizeof(*c));
	char path[4096];
	MDB_txn *txn;
	int rc;

	str_fmt(path, sizeof(path), "%s/sts.mdb", dir);
	if ((rc = mdb_env_create(&c->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(c->env, STS_CACHE_MAP)) != 0 ||
	    (rc = mdb_env_open(c->env, path, MDB_NOSUBDIR | MDB_NOTLS, 0600)) !=
	        0 ||
	    (rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0) {
		str_fmt(
		    err, errlen, "sts cache %s: %s", path, mdb_strerror(rc));
		if (c->env)
			mdb_env_close(c->env);
		free(c);
		return -EIO;
	}
	if ((rc = mdb_dbi_open(txn, NULL, 0, &c->dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		str_fmt(
		    err, errlen, "sts cache %s: %s", path, mdb_strerror(rc));
		mdb_env_close(c->env);
		free(c);
		return -EIO;
	}
	*out = c;
	return 0;
}

void
sts_cache_close(struct sts_cache *c)
{
	if (c == NULL)
		return;
	mdb_env_close(c->env);
	free(c);
}

static int
sts_decode(const uint8_t *p, size_t n, struct sts_cached *out)
{
	uint32_t tlen;
	size_t idlen;

	if (n < 1 + 8 + 1 || p[0] != STS_CACHE_VERSION)
		return -EBADMSG;
	memcpy(&out->fetched, p + 1, 8);
	idlen = p[9];
	if (idlen >= STS_ID_MAX || n - 10 < idlen + 4)
		return -EBADMSG;
	memcpy(out->id, p + 10, idlen);
	out->id[idlen] = '\0';
	memcpy(&tlen, p + 10 + idlen, 4);
	if (n - 14 - idlen != tlen)
		return -EBADMSG;
	buf_reset(&out->text);
	return buf_append(&out->text, p + 14 + idlen, tlen) < 0 ? -EBADMSG : 0;
}

int
sts_cache_get(struct sts_cache *c, const char *domain, struct sts_cached *out)
{
	MDB_val k = {strlen(domain), (void *)(uintptr_t)domain}, v;
	MDB_txn *txn;
	int rc;

	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0)
		return -EIO;
	rc = mdb_get(txn, c->dbi, &k, &v);
	if (rc == 0)
		rc = sts_decode(v.mv_data, v.mv_size, out);
	else
		rc = rc == MDB_NOTFOUND ? -ENOENT : -EIO;
	mdb_txn_abort(txn);
	return rc;
}

int
sts_cache_put(
    struct sts_cache *c, const char *domain, const struct sts_cached *in)
{
	size_t idlen = strlen(in->id), tlen = buf_avail(&in->text);
	MDB_val k = {strlen(domain), (void *)(uintptr_t)domain}, v;
	uint8_t *rec = xmalloc(14 + idlen + tlen);
	uint32_t t32 = (uint32_t)tlen;
	MDB_txn *txn;
	int rc;

	rec[0] = STS_CACHE_VERSION;
	memcpy(rec + 1, &in->fetched, 8);
	rec[9] = (uint8_t)idlen;
	memcpy(rec + 10, in->id, idlen);
	memcpy(rec + 10 + idlen, &t32, 4);
	if (tlen > 0) /* an empty buf has no data pointer */
		memcpy(rec + 14 + idlen, buf_peek(&in->text), tlen);
	v.mv_size = 14 + idlen + tlen;
	v.mv_data = rec;
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) == 0) {
		rc = mdb_put(txn, c->dbi, &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	free(rec);
	return rc == 0 ? 0 : rc == MDB_MAP_FULL ? -ENOSPC : -EIO;
}
