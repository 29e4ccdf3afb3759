/* SPDX-License-Identifier: ISC */
/*
 * auth.h - submission users: the users file, password verification, and
 * the worker pool that runs verification off the event loops.
 *
 * DESIGN. The users file ([auth] users) holds one `NAME:HASH` line per
 * user, HASH being any crypt(3) hash libcrypt supports ($y$ yescrypt,
 * $6$ sha512-crypt, ...); blank lines and lines starting with `#` are
 * ignored, and a hash starting with `!` marks a locked account. It is
 * loaded into an immutable, reference-counted snapshot (struct
 * auth_users), so a reload (SIGHUP) builds a new one and swaps it into
 * the pool while checks in progress finish with the old one.
 *
 * A password check costs tens of milliseconds of CPU (yescrypt is meant
 * to), so it never runs on a receive thread: the loop sends a struct
 * auth_req to the pool's chan and gets the same struct back, answered, on
 * its own chan. Unknown and locked users are checked against a dummy hash
 * of the same cost, and the final comparison is constant-time, so the
 * answer time does not reveal which users exist. Passwords are wiped
 * (explicit_bzero) as soon as they are checked.
 *
 * NOT HERE: delaying the reply after a failed attempt, and the per
 * connection failure limit ([auth] max_failures, then 421 4.7.0), are the
 * receive loop's job, with a timer on its ring: a worker must never sleep,
 * or a password-guessing client would tie up the whole pool.
 *
 * Threads: auth_users_* functions are safe from any thread on a snapshot
 * the caller holds a reference to. auth_verify() and auth_hash_new() block
 * for the hash's cost: pool workers and the `mta passwd` command only.
 */
#ifndef MTA_AUTH_H
#define MTA_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "base/chan.h"
#include "base/compat.h"

#define AUTH_USER_MAX 256  /* bytes of a user name, with NUL */
#define AUTH_PASS_MAX 256  /* bytes of a password, with NUL */
#define AUTH_HASH_MAX 384  /* bytes of a crypt(3) hash, with NUL */
#define AUTH_LINE_MAX 4096 /* bytes of a users file line */
#define AUTH_FILE_MAX (64 * 1024 * 1024) /* bytes of a users file */

/* chan message types of this module. */
enum auth_msg_type {
	AUTH_REQ_CHECK = 0x400, /* struct auth_req, to the pool */
	AUTH_DONE_CHECK,        /* the same struct, back on req->reply */
};

/* A password check. The receive thread allocates it, fills user and pass
 * (NUL-terminated; longer input is refused before it gets here) and
 * submits it; ownership goes to the pool until it comes back on reply
 * with type AUTH_DONE_CHECK, ok set and pass wiped. */
struct auth_req {
	struct chan_msg msg; /* first: type AUTH_REQ_CHECK, reqid = caller's */
	struct chan *reply;  /* borrowed: where the answer is sent */
	char user[AUTH_USER_MAX];
	char pass[AUTH_PASS_MAX];
	bool ok; /* out: the password matched */
};

/* Wipe and free a request (takes NULL). */
void auth_req_free(struct auth_req *req);

struct auth_users;

/*
 * auth_users_load - read and validate the users file at path.
 * Returns 0 and *out (one reference, owned by the caller), or negative
 * errno with one line in err: "PATH: No such file or directory" when it
 * cannot be read, "PATH:LINE: reason" for a bad line (no colon, bad user
 * name, malformed or unsupported hash, duplicate user, line too long).
 * Blocks for one hash computation (the dummy). Any thread.
 */
int auth_users_load(const char *path, struct auth_users **out, char *err,
    size_t errlen) MTA_MUST_CHECK;

/* Take another reference to u; returns u. Any thread holding one. */
struct auth_users *auth_users_ref(struct auth_users *u);
/* Drop a reference; the last one frees. Takes NULL. */
void auth_users_unref(struct auth_users *u);

/* Number of users (locked ones included). */
size_t auth_users_count(const struct auth_users *u);

/* The name of user i (< auth_users_count), in name order. */
const char *auth_users_name(const struct auth_users *u, size_t i);

/* The hash stored for name, or NULL when there is no such user. Valid
 * while the caller holds its reference to u. */
const char *auth_users_lookup(const struct auth_users *u, const char *name);

/*
 * auth_verify - does pass match the hash of user in u? False for unknown
 * and locked users and for hashes libcrypt cannot compute, after the same
 * work as a real check. Borrowed arguments; pass is not wiped here.
 * Blocks (CPU): never call it from an event loop.
 */
bool auth_verify(
    const struct auth_users *u, const char *user, const char *pass);

/* Is name usable in the users file: 1..AUTH_USER_MAX-1 bytes, no ':',
 * no whitespace or control characters? */
bool auth_name_valid(const char *name);

/*
 * auth_hash_new - hash pass with yescrypt and a fresh random salt into
 * out (at least AUTH_HASH_MAX bytes). Returns 0, or negative errno
 * (-EINVAL: libcrypt refused; -ENOSYS: no yescrypt). Blocks (CPU).
 */
int auth_hash_new(const char *pass, char *out, size_t outlen) MTA_MUST_CHECK;

struct auth_pool;

/*
 * auth_pool_new - start nthreads (>= 1) workers checking passwords
 * against users (one reference taken over by the pool). The workers block
 * every signal. Startup thread; aborts if threads cannot be created.
 */
struct auth_pool *auth_pool_new(struct auth_users *users, unsigned nthreads);

/* Submit a request (ownership moves to the pool until it comes back on
 * req->reply). Any thread. Never fails: the bound is the callers' (each
 * session has at most one check outstanding). */
void auth_pool_submit(struct auth_pool *p, struct auth_req *req);

/* The intake chan, for callers that prefer chan_send() directly with
 * req->msg.type = AUTH_REQ_CHECK. Valid until auth_pool_free. */
struct chan *auth_pool_chan(struct auth_pool *p);

/* Replace the users snapshot (one reference taken over); checks already
 * running finish with the old one. Any thread. */
void auth_pool_users_swap(struct auth_pool *p, struct auth_users *users);

/* Answer every request already submitted, stop and join the workers, and
 * free the pool and its snapshot reference. Requests submitted after this
 * began are answered with ok = false. Takes NULL. Not from a worker. */
void auth_pool_free(struct auth_pool *p);

#endif
