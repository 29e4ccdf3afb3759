/* SPDX-License-Identifier: ISC */
/*
 * queue_codec.c - the on-disk envelope record and the key format.
 *
 * Pure functions over buffers: no LMDB, no threads, so the decoder can be
 * fuzzed. Layout, all integers big-endian:
 *
 *	u8 version (1 or 2)
 *	u64 id, u64 received_ms, u64 size, u32 flags
 *	str from, str user, str client, str helo
 *	v2 only: str envid, u8 ret
 *	u32 nrcpts, then per recipient:
 *	    str addr, u8 state, u32 attempts, u64 next_ms, str reply
 *	    v2 only: u8 notify, str orcpt
 *
 * Version 2 (DSN, RFC 3461) only appends fields, so one decoder reads
 * both: a version 1 record (written before DSN, or since by an envelope
 * without DSN parameters, which the encoder still writes as version 1
 * so that an older relay can read it) decodes with the DSN fields empty.
 *
 * where str is a u32 length and that many bytes, without NUL. The decoder
 * is strict (OpenSMTPD m_get/m_end): every read checks `end - pos < need`
 * first, and bytes left over are an error, so a record either decodes
 * completely or not at all. A new field means a new version.
 */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"

/* Smallest encoded recipient: empty addr and reply. Bounds nrcpts before
 * anything is allocated, so a corrupt count cannot ask for gigabytes. */
#define QUEUE_RCPT_MIN (4 + 1 + 4 + 8 + 4)

struct queue_rd {
	const uint8_t *pos;
	const uint8_t *end;
};

void
queue_key_put(uint8_t key[8], uint64_t id)
{
	for (int i = 7; i >= 0; i--) {
		key[i] = (uint8_t)id;
		id >>= 8;
	}
}

uint64_t
queue_key_get(const uint8_t key[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | key[i];
	return v;
}

static int
queue_wr_u8(struct buf *out, uint8_t v)
{
	return buf_append(out, &v, 1);
}

static int
queue_wr_u32(struct buf *out, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v};

	return buf_append(out, b, sizeof(b));
}

static int
queue_wr_u64(struct buf *out, uint64_t v)
{
	uint8_t b[8];

	queue_key_put(b, v);
	return buf_append(out, b, sizeof(b));
}

static int
queue_wr_str(struct buf *out, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	int rc;

	if (n > UINT32_MAX)
		return -ENOBUFS;
	if ((rc = queue_wr_u32(out, (uint32_t)n)) != 0)
		return rc;
	return buf_append(out, s, n);
}

static int
queue_wr_rcpt(struct buf *out, const struct queue_rcpt *r, uint8_t version)
{
	int rc;

	if (r->state >= QUEUE_RCPT_NSTATES)
		return -EINVAL;
	if ((rc = queue_wr_str(out, r->addr)) != 0 ||
	    (rc = queue_wr_u8(out, r->state)) != 0 ||
	    (rc = queue_wr_u32(out, r->attempts)) != 0 ||
	    (rc = queue_wr_u64(out, r->next_ms)) != 0 ||
	    (rc = queue_wr_str(out, r->reply)) != 0)
		return rc;
	if (version < 2)
		return 0;
	if ((rc = queue_wr_u8(out, r->notify)) != 0)
		return rc;
	return queue_wr_str(out, r->orcpt);
}

static bool
queue_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* Version 1 unless a DSN field is set. */
static uint8_t
queue_envelope_version(const struct queue_envelope *env)
{
	if (queue_set(env->envid) || env->ret != QUEUE_RET_NONE)
		return 2;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].notify != 0 || queue_set(env->rcpts[i].orcpt))
			return 2;
	return 1;
}

int
queue_envelope_encode(const struct queue_envelope *env, struct buf *out)
{
	size_t avail0 = buf_avail(out); /* len moves if the buffer compacts */
	uint8_t version;
	int rc;

	if (env->nrcpts > UINT32_MAX)
		return -EINVAL;
	version = queue_envelope_version(env);
	if ((rc = queue_wr_u8(out, version)) != 0 ||
	    (rc = queue_wr_u64(out, env->id)) != 0 ||
	    (rc = queue_wr_u64(out, env->received_ms)) != 0 ||
	    (rc = queue_wr_u64(out, env->size)) != 0 ||
	    (rc = queue_wr_u32(out, env->flags)) != 0 ||
	    (rc = queue_wr_str(out, env->from)) != 0 ||
	    (rc = queue_wr_str(out, env->user)) != 0 ||
	    (rc = queue_wr_str(out, env->client)) != 0 ||
	    (rc = queue_wr_str(out, env->helo)) != 0)
		goto fail;
	if (version >= 2 && ((rc = queue_wr_str(out, env->envid)) != 0 ||
	                        (rc = queue_wr_u8(out, env->ret)) != 0))
		goto fail;
	if ((rc = queue_wr_u32(out, (uint32_t)env->nrcpts)) != 0)
		goto fail;
	for (size_t i = 0; i < env->nrcpts; i++)
		if ((rc = queue_wr_rcpt(out, &env->rcpts[i], version)) != 0)
			goto fail;
	if (buf_avail(out) - avail0 > QUEUE_RECORD_MAX) {
		rc = -ENOBUFS;
		goto fail;
	}
	return 0;
fail:
	/* Never leave half a record in the caller's buffer. */
	out->len = out->off + avail0;
	return rc;
}

static int
queue_rd_u8(struct queue_rd *rd, uint8_t *v)
{
	if (rd->end - rd->pos < 1)
		return -EBADMSG;
	*v = *rd->pos++;
	return 0;
}

static int
queue_rd_u32(struct queue_rd *rd, uint32_t *v)
{
	const uint8_t *p = rd->pos;

	if (rd->end - rd->pos < 4)
		return -EBADMSG;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	     p[3];
	rd->pos += 4;
	return 0;
}

static int
queue_rd_u64(struct queue_rd *rd, uint64_t *v)
{
	if (rd->end - rd->pos < 8)
		return -EBADMSG;
	*v = queue_key_get(rd->pos);
	rd->pos += 8;
	return 0;
}

static int
queue_rd_str(struct queue_rd *rd, char **s)
{
	uint32_t n;

	if (queue_rd_u32(rd, &n) != 0)
		return -EBADMSG;
	if ((size_t)(rd->end - rd->pos) < n)
		return -EBADMSG;
	/* An embedded NUL would silently shorten the string: reject it. */
	if (memchr(rd->pos, '\0', n) != NULL)
		return -EBADMSG;
	*s = xstrndup((const char *)rd->pos, n);
	rd->pos += n;
	return 0;
}

static int
queue_rd_rcpt(struct queue_rd *rd, struct queue_rcpt *r, uint8_t version)
{
	if (queue_rd_str(rd, &r->addr) != 0 ||
	    queue_rd_u8(rd, &r->state) != 0 ||
	    queue_rd_u32(rd, &r->attempts) != 0 ||
	    queue_rd_u64(rd, &r->next_ms) != 0 ||
	    queue_rd_str(rd, &r->reply) != 0)
		return -EBADMSG;
	if (version < 2)
		r->orcpt = xstrdup("");
	else if (queue_rd_u8(rd, &r->notify) != 0 ||
	         queue_rd_str(rd, &r->orcpt) != 0)
		return -EBADMSG;
	if (r->state >= QUEUE_RCPT_NSTATES || r->notify > 0xf)
		return -EBADMSG;
	return 0;
}

int
queue_envelope_decode(const uint8_t *p, size_t len, struct queue_envelope *env)
{
	struct queue_rd rd = {p, p + len};
	uint8_t version;
	uint32_t n;

	memset(env, 0, sizeof(*env));
	if (queue_rd_u8(&rd, &version) != 0 || version < 1 ||
	    version > QUEUE_RECORD_VERSION)
		return -EBADMSG;
	if (queue_rd_u64(&rd, &env->id) != 0 ||
	    queue_rd_u64(&rd, &env->received_ms) != 0 ||
	    queue_rd_u64(&rd, &env->size) != 0 ||
	    queue_rd_u32(&rd, &env->flags) != 0 ||
	    queue_rd_str(&rd, &env->from) != 0 ||
	    queue_rd_str(&rd, &env->user) != 0 ||
	    queue_rd_str(&rd, &env->client) != 0 ||
	    queue_rd_str(&rd, &env->helo) != 0)
		goto fail;
	if (version < 2)
		env->envid = xstrdup("");
	else if (queue_rd_str(&rd, &env->envid) != 0 ||
	         queue_rd_u8(&rd, &env->ret) != 0 || env->ret > QUEUE_RET_HDRS)
		goto fail;
	if (queue_rd_u32(&rd, &n) != 0)
		goto fail;
	if ((size_t)(rd.end - rd.pos) / QUEUE_RCPT_MIN < n)
		goto fail;
	if (n > 0)
		env->rcpts = xcalloc(n, sizeof(*env->rcpts));
	for (uint32_t i = 0; i < n; i++) {
		/* Count it first, so fini frees a half-decoded recipient. */
		env->nrcpts = (size_t)i + 1;
		if (queue_rd_rcpt(&rd, &env->rcpts[i], version) != 0)
			goto fail;
	}
	if (rd.pos != rd.end)
		goto fail;
	return 0;
fail:
	queue_envelope_fini(env);
	return -EBADMSG;
}

void
queue_envelope_fini(struct queue_envelope *env)
{
	if (env == NULL)
		return;
	free(env->from);
	free(env->user);
	free(env->client);
	free(env->helo);
	free(env->envid);
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].reply);
		free(env->rcpts[i].orcpt);
	}
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

void
queue_id_fmt(uint64_t id, char out[QUEUE_ID_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = QUEUE_ID_HEX - 1; i >= 0; i--) {
		out[i] = hex[id & 0xf];
		id >>= 4;
	}
	out[QUEUE_ID_HEX] = '\0';
}

int
queue_id_parse(const char *s, uint64_t *id)
{
	uint64_t v = 0;
	int d;

	for (int i = 0; i < QUEUE_ID_HEX; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -EINVAL; /* also catches a short string's NUL */
		v = v << 4 | (uint64_t)d;
	}
	if (s[QUEUE_ID_HEX] != '\0')
		return -EINVAL;
	*id = v;
	return 0;
}
