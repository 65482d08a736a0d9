/* Gossip of consolidated memories inside `mnemo serve` (cluster mode; docs/gossip.md, "In
 * the server"): one mn_gossip_t per node on peer channel MN_PEER_CH_GOSSIP, driven by the
 * replication thread's bus (cl_repl_attach), fed by a thread that reads the WAL of the
 * spaces this node leads, and an in-memory store of the semantic memories received, which
 * answers recalls when a space's holders cannot be reached (partition mode). Private to
 * api/. */
#ifndef MN_API_CLUSTER_GOSSIP_H
#define MN_API_CLUSTER_GOSSIP_H

#include <cjson/cJSON.h>

#include "cluster_catalog.h"
#include "cluster_repl.h"
#include "cluster_spaces.h"
#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/http.h"

typedef struct cl_gossip cl_gossip;

/* Creates the core, attaches it to r's bus and starts the feeder thread. Loop thread. cat
 * (borrowed, outlives g) says which spaces are dropped: their gossiped memories go. */
mn_err cl_gossip_start(const mn_config_t *c, mn_engine_t *engine, cl_repl *r, cl_spaces *cs,
                       cl_catalog *cat, const char *self, cl_gossip **out, mn_error *err);
/* Stops the feeder; frees g. Call after cl_repl_stop (the bus calls into g until then). */
void cl_gossip_free(cl_gossip *g);

/* GET /v1/cluster/gossip (ctx = the cl_gossip). */
void cl_gossip_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* Its document (api_cluster_doc_fn; arg = the cl_gossip): malloc'd JSON text. */
char *cl_gossip_render(void *arg, int *status, mn_error *err);

/* Any thread: space's gossiped semantic memories that pass req's filter (the engine's
 * matcher: mn_engine_recall_filter, mn_engine_filter_match), ranked against req's cue
 * (api_cluster_hooks.partition_recall). MN_ERR_NOT_FOUND: none of space here;
 * MN_ERR_UNSUPPORTED: req asks as_of, which they cannot answer (they keep no history);
 * MN_ERR_INVALID: a filter a recall refuses. */
mn_err cl_gossip_recall(cl_gossip *g, const char *space, const mn_recall_req_t *req,
                        mn_recall_result_t *out, mn_error *err);

#endif
