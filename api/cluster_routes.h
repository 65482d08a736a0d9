/* Cluster membership inside `mnemo serve`: with [cluster] enabled = true the
 * server runs SWIM (swim/, libuv adapter) on its loop and answers
 * GET /v1/cluster/members. Private to api/. */
#ifndef MN_API_CLUSTER_ROUTES_H
#define MN_API_CLUSTER_ROUTES_H

#include <uv.h>

#include "api_internal.h"
#include "auth.h"
#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/http.h"

typedef struct mn_cluster mn_cluster_t;

/* Starts SWIM on loop from c->cluster (node id: cluster.node_id, or the one
 * persisted as <storage.data_dir>/node_id, generated on first start; the data
 * dir must exist). Logs "swim: node ID listening on ADDR". Loop thread only. */
mn_err mn_cluster_start(uv_loop_t *loop, const mn_config_t *c, mn_engine_t *engine,
                        mn_cluster_t **out, mn_error *err);
/* Registers GET /v1/cluster/members on router (handlers may run on any thread):
 * self, counts by state, members, and the core's "stats" (datagrams, drops by
 * cause, suspicions raised, refutations, health), GET /v1/cluster/spaces
 * (this node's placement table, api/cluster_spaces.c), GET and POST
 * /v1/cluster/catalog (api/cluster_catalog.c), POST /v1/cluster/drain
 * (api/cluster_drain.c); gives api the cluster's hooks (api->cluster: routing,
 * api/cluster_route.c; the catalog; write_wait, api/cluster_repl.c; they live as
 * long as cl). */
mn_err mn_cluster_register(mn_cluster_t *cl, mn_api_t *api, mn_http_router_t *router,
                           mn_error *err);
/* Sets the HTTP gate of cluster mode on http (cl_route_gate: signed internal hops, then the
 * API keys of auth as mn_auth_http_gate would). Loop thread, before requests arrive. */
void mn_cluster_set_gate(mn_cluster_t *cl, mn_http_server_t *http, const mn_auth_t *auth);
/* Announces this node's API address in its SWIM metadata, with cluster.zone
 * (GET /v1/cluster/spaces lists both per member): http.bind:port, or
 * cluster.bind:port when http.bind is a wildcard. Loop thread only, once the
 * HTTP server listens on port. */
void mn_cluster_advertise(mn_cluster_t *cl, const mn_config_t *c, int port);
/* The first part of a graceful leave (SIGTERM): announces drain=1 (not kept in the data
 * dir), so placement flags a handover of every space this node leads, and calls done(arg)
 * on the loop thread once it leads none that another live voter could take
 * (cl_repl_leading), or after timeout_ms; at once if it leads none. HTTP keeps serving
 * meanwhile. Loop thread only. */
void mn_cluster_hand_over(mn_cluster_t *cl, int64_t timeout_ms, void (*done)(void *arg), void *arg);
/* Leaves the cluster gracefully (bounded by timeout_ms), closes its handles
 * and frees cl, then calls done(arg) on the loop thread. Call it after the
 * HTTP server has stopped (no handler may run during or after it). */
void mn_cluster_stop(mn_cluster_t *cl, int64_t timeout_ms, void (*done)(void *arg), void *arg);

#endif
