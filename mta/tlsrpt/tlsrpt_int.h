/* SPDX-License-Identifier: ISC */
/*
 * tlsrpt_int.h - private to mta/tlsrpt/: the stage's state, shared by
 * tlsrpt.c (the thread: counting, the schedule) and tlsrpt_send.c (one
 * report's lookup, build and sending). tlsrpt.c calls tlsrpt_send.c,
 * never the other way. Thread: the TLS-RPT thread.
 */
#ifndef MTA_TLSRPT_INT_H
#define MTA_TLSRPT_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "base/buf.h"
#include "base/chan.h"
#include "deliver/dest_policy.h"
#include "tlsrpt/tlsrpt.h"
#include "tlsrpt/tlsrpt_report.h"
#include "tlsrpt/tlsrpt_store.h"

#define TLSRPT_JOBS_MAX 16 /* reports under way at once */

struct dns_txt_req;

/* One period's report of one domain, from its TXT lookup to the last
 * rua's answer. */
struct rjob {
	struct tlsrpt *t;
	uint64_t seq;            /* in reqids: (seq << 8) | rua index */
	struct tlsrpt_entry e;   /* as stored; done/sent/next updated */
	struct dns_txt_req *dns; /* while the lookup is out */
	struct tlsrpt_rua rua;
	struct buf gz; /* the gzipped report */
	unsigned out;  /* sends not answered yet */
	bool retry;    /* a send failed: try again later */
	struct rjob *next;
};

/* One HTTPS POST. */
struct rpost {
	CURL *easy;
	struct curl_slist *hdr;
	struct rjob *job;
	unsigned idx; /* rua index */
	char err[CURL_ERROR_SIZE];
	struct rpost *next;
};

struct tlsrpt {
	/* settings, copied */
	char dir[4096];
	uint64_t interval; /* s */
	char org[256], contact[256], from[256], hostname[256];
	char ca_file[4096], ca_path[4096];
	const struct dkim_table *dkim;
	struct dest_policy dest; /* what an https: rua may reach */
	struct queue *q;
	struct dns *dns;
	struct tlsrpt_store *store;
	struct chan *chan;
	pthread_t tid;
	bool started;
	atomic_uint inflight; /* records on the chan */
	atomic_ulong dropped; /* records dropped over TLSRPT_INFLIGHT_MAX */
	/* the thread's own */
	CURLM *multi;
	uint64_t cur_start;        /* the period counted in cur */
	struct tlsrpt_entry **cur; /* its domains */
	bool *dirty;               /* cur[i] changed since written */
	size_t ncur, capcur;
	uint64_t next_flush, next_tick; /* mono ms */
	struct rjob *jobs;
	size_t njobs;
	struct rpost *posts; /* in the multi handle */
	uint64_t seq;
	unsigned pending; /* DNS and queue answers not home */
	bool stopping;
};

/* Start the report of e (copied): its TXT lookup. */
void tlsrpt_send_start(struct tlsrpt *t, const struct tlsrpt_entry *e);
/* Is a report of (start, domain) under way? */
bool tlsrpt_send_busy(
    const struct tlsrpt *t, uint64_t start, const char *domain);
/* A message for the sending side came home (DNS_MSG_TXT,
 * QUEUE_DONE_SUBMIT); it is freed or kept as it must be. */
void tlsrpt_send_msg(struct tlsrpt *t, struct chan_msg *m);
/* curl finished a transfer. */
void tlsrpt_send_posted(struct tlsrpt *t, CURL *easy, CURLcode rc);
/* Stopping: abort every POST (its rua tried again at the next start). */
void tlsrpt_send_abort(struct tlsrpt *t);

#endif
