/* Placement inside `mnemo serve` (cluster mode): the loop thread steps this
 * node's placement table (spaces/, mn_spaces_driver) from the SWIM view and
 * the spaces of the catalog (every space of the cluster, api/cluster_catalog.c);
 * GET /v1/cluster/spaces serves it from a snapshot. Private to api/. */
#ifndef MN_API_CLUSTER_SPACES_H
#define MN_API_CLUSTER_SPACES_H

#include "cluster_catalog.h"
#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/http.h"
#include "mnemo/swim.h"

typedef struct cl_spaces cl_spaces;

struct cl_repl;

/* The SWIM metadata of this node: "api=HOST:PORT;zone=Z;peer=HOST:PORT", each part only
 * when known (api, peer NULL = not yet; zone "" = none). */
void cl_spaces_meta(const mn_config_t *c, const char *api, const char *peer, char *buf, size_t len);

/* catalog: the names to place (borrowed; it outlives cs). */
mn_err cl_spaces_new(const mn_config_t *c, mn_engine_t *engine, cl_catalog *catalog,
                     const char *self_id, cl_spaces **out, mn_error *err);
void cl_spaces_free(cl_spaces *cs);
/* Replication runs (loop thread, before the first tick): each tick hands repl the table and
 * the members, and records the primaries its core elected in the table (the driver no
 * longer settles the failovers of spaces this node holds). */
void cl_spaces_set_repl(cl_spaces *cs, struct cl_repl *repl);
/* Loop thread: steps the table over the alive and suspect members of the
 * SWIM core (this node included) and the catalog's spaces, then publishes it;
 * gives the catalog the members it syncs with. */
void cl_spaces_tick(cl_spaces *cs, const mn_swim_t *core);
/* GET /v1/cluster/spaces (any thread). */
void cl_spaces_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

#endif
