/* The REST door (api/rest): the route handlers of the HTTP API (docs/api.md) and the
 * server's observer. api_server.c registers the handlers; the MCP tools call them too. */
#ifndef MN_API_REST_H
#define MN_API_REST_H

#include <stdbool.h>
#include <stdint.h>

#include "mnemo/api.h"
#include "mnemo/http.h"

/* ---- observability (rest_metrics.c, rest_openapi.c) ---- */
/* Registers the HTTP families in the process registry. */
void rest_metrics_init(mn_api_t *api);
/* The server's observer: counts the response, times it, writes the access log line. */
void rest_access_observe(void *api, const char *method, const char *route, int status,
                         int64_t duration_ns, const char *request_id, const mn_http_request_t *req);
void rest_h_metrics(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_openapi(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_routes(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

/* ---- routing (rest_route.c) ---- */
struct api_route_ctx; /* api_internal.h */
/* Is the route about one space (routed in cluster mode)? */
bool rest_routable(const char *method, const char *pattern);
/* The handler of every routable route (ctx: its api_route_ctx): rest_dispatch. */
void rest_h_routed(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* Runs route's handler for req, after asking the cluster's route hook (cluster mode), which
 * may answer it from another node. The MCP tools call their handlers through this. */
void rest_dispatch(const struct api_route_ctx *route, const mn_http_request_t *req,
                   mn_http_response_t *resp);
/* The registered route of handler fn with method (NULL: none). */
const struct api_route_ctx *rest_route_of(const mn_api_t *api, mn_http_handler_fn fn,
                                          const char *method);

/* ---- route handlers ---- */
void rest_h_health(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_ready(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_space_create(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_space_list(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* The cluster's placement table as GET /v1/cluster/spaces gives it (that route is the
 * cluster's own handler; the MCP door calls this one): 404 on a single node. */
void rest_h_cluster_spaces(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* The gossip and hints views for the MCP tools (GET /v1/cluster/gossip and /hints are the
 * cluster's routes); 404 on a single node. */
void rest_h_cluster_gossip(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_cluster_hints(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_space_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_space_drop(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_space_stats(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_checkpoint(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_remember(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_list(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_forget(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_unsuppress(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* Forget by filter and its jobs (rest_handlers_forget.c). */
void rest_h_forget_where(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_job_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_job_cancel(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_recall(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* POST /v1/recall: one cue over many spaces (rest_handlers_recall_many.c). */
void rest_h_recall_many(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_associate(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_associations(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_consolidate(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_recognize(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_reminisce(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_complete(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* Corrections (rest_handlers_versions.c): PATCH a memory, its history, invalidation. */
void rest_h_update(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_history(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void rest_h_invalidate(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* POST /v1/spaces/{space}/grpc/{method}: a gRPC call another node forwarded (internal;
 * rest_grpc_hop.c). */
void rest_h_grpc_hop(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* GET /v1/spaces/{space}/events: Server-Sent Events (rest_events.c). */
void rest_h_events(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

#endif
