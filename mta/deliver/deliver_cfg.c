/* SPDX-License-Identifier: ISC */
/*
 * deliver_cfg.c - the delivery stage's view of a configuration snapshot:
 * which parts it reads, and the references its threads, jobs and
 * connections hold (see deliver.h).
 *
 * Thread: whichever owns the struct deliver_cfg; deliver_cfg_msg on the
 * main thread. A reference is only ever taken from one already held, so
 * a snapshot cannot be freed while something here points into it.
 */
#include <stdlib.h>

#include "base/xalloc.h"
#include "dkim/dkim.h"
#include "deliver/deliver_int.h"

void
deliver_settings_of(const struct config *c, struct deliver_settings *out)
{
	out->delivery = &c->delivery;
	out->routes = c->routes;
	out->nroutes = c->nroutes;
	out->queue = &c->queue;
	out->hostname = c->server.hostname;
	out->server = &c->server;
	out->dkim = dkim_table_of(c);
	out->tlsrpt = &c->tlsrpt;
	out->config = c;
}

void
deliver_cfg_init(struct deliver_cfg *dc, const struct deliver_settings *boot)
{
	dc->snap = NULL;
	dc->set = *boot;
}

void
deliver_cfg_take(struct deliver_cfg *dc, struct deliver_config *m)
{
	config_unref(dc->snap);
	dc->snap = m->snap;
	deliver_settings_of(dc->snap, &dc->set);
	free(m);
}

void
deliver_cfg_copy(struct deliver_cfg *dst, const struct deliver_cfg *src)
{
	dst->snap = config_ref(src->snap);
	dst->set = src->set;
}

void
deliver_cfg_drop(struct deliver_cfg *dc)
{
	config_unref(dc->snap);
	dc->snap = NULL;
}

struct deliver_config *
deliver_cfg_msg(struct config *snap)
{
	struct deliver_config *m = xcalloc(1, sizeof(*m));

	m->msg.type = DELIVER_MSG_CONFIG;
	m->snap = config_ref(snap);
	return m;
}

void
deliver_cfg_msg_free(struct deliver_config *m)
{
	config_unref(m->snap);
	free(m);
}
