/* SPDX-License-Identifier: ISC */
/*
 * receive_int.h - private to receive.c (threads, listeners, limits, the
 * main-thread API, reload) and receive_conn.c (one connection: transport,
 * TLS, the smtp_in actions, its ops and its closing).
 */
#ifndef MTA_RECEIVE_INT_H
#define MTA_RECEIVE_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/chan.h"
#include "config/config.h"
#include "receive/receive.h"
#include "smtp/smtp_in.h"
#include "net/uring.h"

struct tls_ctx;
struct tls_conn;
struct auth_pool;
struct queue;

#define OUT_MAX            (256 * 1024) /* bytes of replies waiting, hard cap */
#define OUT_HIWAT          (16 * 1024) /* stop reading above this much unsent */
#define OUT_KEEP           4096 /* shrink send buffers bigger than this */
#define LINGER_MS          5000 /* last replies after close, at most */
#define ACCEPT_RETRY_MS    100  /* after EMFILE and friends */
#define IPTAB_BUCKETS      4096
#define PLAIN_CHUNK        16384 /* plaintext handed to smtp_in at once */
#define AUTH_FAIL_DELAY_MS 1000  /* before a failed AUTH is answered */

enum xport {
	XPORT_PLAIN,    /* bytes on the socket are the SMTP stream */
	XPORT_STARTTLS, /* 220 to STARTTLS going out in plaintext; no reads */
	XPORT_TLS,      /* tls_conn between the socket and smtp_in */
};

struct rthread;

struct conn {
	struct rthread *t;
	struct conn *next_free;
	uint32_t slot;
	uint32_t gen; /* bumped at each reuse of the slot */
	int fd;
	enum xport xport;
	bool live;          /* between accept and free */
	bool closing;       /* no more input; finishing the last send */
	bool discard;       /* closing on error: drop unsent replies */
	bool lingering;     /* tmo is the linger timer */
	bool committing;    /* a commit request is with the queue */
	bool authing;       /* a password check, or its failure delay */
	bool implicit;      /* accepted on a listen_tls listener */
	bool tls_shut;      /* close_notify queued */
	bool pumping;       /* inside conn_tls_pump(): no re-entry */
	const char *reason; /* why it closed, for the log */
	struct smtp_in *s;
	struct tls_conn *tls; /* XPORT_TLS only */
	struct rsnap *snap;   /* settings it started with (a reference) */
	struct uring_op rd, wr, tmo;
	struct uring_op dly; /* delay of a failed AUTH answer */
	struct buf out;      /* replies not yet handed to send */
	struct buf wbuf;     /* the replies being sent (wr busy) */
	uint64_t idle_dl;    /* ms, monotonic: next idle deadline */
	uint64_t sess_dl;    /* ms, monotonic: whole-session deadline */
	uint8_t ipkey[17];   /* per-address table key */
	char addr[64];       /* numeric client address */
};

struct listener {
	struct rthread *t;
	int fd;
	bool open;
	struct uring_op acc;   /* multishot accept */
	struct uring_op retry; /* timer before re-arming after an error */
	const char *text;      /* borrowed from the config */
	bool tls;              /* implicit TLS (RFC 8314) */
};

struct rthread {
	struct receive *r;
	unsigned idx;
	pthread_t th;
	bool started; /* pthread_create succeeded */
	struct uring_loop *l;
	struct chan *chan; /* queue answers and control messages */
	struct uring_op chan_rd;
	uint64_t chan_val;
	struct listener *ls;
	size_t nls, nls_open;
	struct conn **slots; /* index = slot */
	uint32_t nslots, capslots;
	struct conn *free;   /* free list of closed conns */
	size_t nconns;       /* live */
	size_t commits;      /* requests with the queue */
	size_t auths;        /* requests with the auth pool */
	uint64_t stale;      /* answers for connections that had gone */
	struct buf pin;      /* scratch: plaintext out of TLS, PLAIN_CHUNK */
	bool shutting;       /* no accepts; sessions closed when idle */
	bool deadline;       /* grace over: close the rest when possible */
	bool finishing;      /* loop is being wound down */
	struct uring_op sdt; /* shutdown grace timer */
	struct rsnap *snap;  /* for new sessions (a reference); swapped
				  on RECEIVE_MSG_RELOAD only */
	int start_res;       /* 0 or -errno, set before start_sem post */
	char start_err[256];
};

/*
 * What a new session gets, derived once per configuration snapshot: its
 * smtp_in_cfg (smtp_in borrows it for the session's life) and the server
 * TLS context. The startup one is r->boot (cfg NULL), which lives as long
 * as the stage. A reloaded one is attached to its snapshot
 * (config_attach) and lives exactly as long as that: whoever holds an
 * rsnap (a thread for new sessions, a connection for its own) holds a
 * reference to its snapshot (receive_snap_ref/unref), so the snapshot's
 * count is the only one. Connections made from a TLS context keep their
 * own reference to the OpenSSL context.
 */
struct rsnap {
	struct config *cfg;                 /* the snapshot; NULL: startup */
	const struct config_server *server; /* in cfg, or the startup one */
	struct smtp_in_cfg scfg;            /* hostname points into server */
	struct tls_ctx *tls;                /* owned; NULL: no STARTTLS */
};

/* Per client address counts, shared by every receive thread. */
struct ipent {
	struct ipent *next; /* iptab.lock */
	uint8_t key[17];    /* family byte + address; immutable */
	unsigned count;     /* iptab.lock: live connections */
};

struct iptab {
	pthread_mutex_t lock; /* protects every bucket and entry below */
	struct ipent *b[IPTAB_BUCKETS];
};

struct receive {
	/* the startup sections (borrowed): listeners, threads, inflight */
	const struct config_server *server;
	struct queue *q;
	struct rsnap boot;        /* the startup settings for sessions */
	struct auth_users *users; /* loaded, until the pool takes it */
	struct auth_pool *auth;   /* NULL: no users file, no AUTH */
	struct rthread *th;
	unsigned nth;
	sem_t start_sem;
	atomic_uint nconns;            /* live connections, all threads */
	atomic_uint_fast64_t inflight; /* body bytes reserved */
	atomic_uint running;           /* threads not yet finished */
	struct iptab ip;
};

/* RECEIVE_MSG_RELOAD: the new settings, for one thread (a reference). */
struct receive_reload_msg {
	struct chan_msg msg;
	struct rsnap *snap;
};

/* What a new session on t gets. */
static inline const struct config_server *
rs_server(const struct rthread *t)
{
	return t->snap->server;
}

/* What c started with. */
static inline const struct smtp_in_cfg *
rs_scfg(const struct conn *c)
{
	return &c->snap->scfg;
}

static inline struct tls_ctx *
rs_tls(const struct conn *c)
{
	return c->snap->tls;
}

static inline uint64_t
rs_idle(const struct conn *c)
{
	return c->snap->server->idle_timeout;
}

/* receive.c */
bool receive_ip_acquire(struct iptab *tab, const uint8_t key[17], unsigned max);
void receive_ip_key(const struct sockaddr_storage *ss, uint8_t key[17]);
void receive_ip_release(struct iptab *tab, const uint8_t key[17]);
struct rsnap *receive_snap_ref(struct rsnap *sn);
void receive_snap_unref(struct rsnap *sn);
void receive_thread_check_done(struct rthread *t);

/* receive_conn.c */
void receive_conn_act(struct conn *c, enum smtp_in_action a);
void receive_conn_begin_close(struct conn *c, const char *reason, bool discard);
void receive_conn_flush(struct conn *c);
void receive_conn_input(struct conn *c, const uint8_t *data, size_t len);
struct conn *receive_conn_lookup(struct rthread *t, uint64_t reqid);
void receive_conn_new(struct listener *ls, int fd);
bool receive_conn_tls_pump(struct conn *c);
void receive_conn_want_read(struct conn *c);

#endif
