/* Private to the REST door (api/rest/rest_*.c): JSON <-> engine structs of the handlers. */
#ifndef MN_API_REST_INTERNAL_H
#define MN_API_REST_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "api_internal.h"
#include "mnemo/engine.h"
#include "rest.h"

/* ---- the steps every handler takes (rest_request.c); on failure resp holds the answer ---- */
/* Answers the engine error rc (nf names a 404 / 409); false when rc is MN_OK. */
bool rest_failed(mn_http_response_t *resp, mn_err rc, const mn_error *err, api_ctx nf);
/* The end of a body handler's input side: frees the parsed body and the request's arena,
 * then, when rc failed, answers it (rest_failed) and returns true. */
bool rest_done(mn_http_response_t *resp, cJSON *body, api_arena *a, mn_err rc,
               const mn_error *err, api_ctx nf);
/* Refuses any query parameter: false when there is one. */
bool rest_query_none(const mn_http_request_t *req, mn_http_response_t *resp, api_ctx nf);
/* rest_query_none, then the JSON object body of api_body_object (free it with api_json_free);
 * NULL on failure. */
cJSON *rest_body(const mn_http_request_t *req, mn_http_response_t *resp, api_ctx nf);
/* rest_body for a route under /v1/spaces/{space} whose body may hold embeddings: the space's
 * dim bounds every number array while the body is parsed (422 as the engine words it). */
cJSON *rest_body_in_space(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp);
/* The memory id of the path ({id}, the second parameter): false (422) when it is not one. */
bool rest_path_id(const mn_http_request_t *req, mn_id_t *id, mn_http_response_t *resp);

/* ---- cluster-mode options (rest_route.c; docs/api.md, "Cluster mode") ---- */
/* The body's "consistency" (api_consistency_parse); absent or null -> -1 (the configured
 * default). */
mn_err rest_consistency_body(const cJSON *o, int *level, mn_error *err);
/* The body's "read" (api_read_parse); absent or null -> primary. */
mn_err rest_read_body(const cJSON *o, api_read_pref *out, mn_error *err);
/* After a write the engine made durable here: in cluster mode, waits until it reached level
 * (write_wait); false when it did not, with 503 unavailable in resp. True in single-node
 * mode. */
bool rest_write_settled(mn_api_t *api, const char *space, int level, mn_http_response_t *resp);

/* ---- memories, filters, hits (rest_convert.c, rest_handlers_recall.c) ---- */
/* Reads one input memory (remember). pfx is "" or "memories[i]." */
mn_err rest_memory_from_json(const cJSON *o, const char *pfx, api_arena *a, mn_memory_t *m,
                             mn_error *err);
/* The memories of a remember body (one, or "memories": a batch of 1..MN_BATCH_MAX) into
 * *mems (from a), its "consistency" into *level; *batch: it was a batch. */
mn_err rest_remember_parse(const cJSON *body, api_arena *a, mn_memory_t **mems, size_t *n,
                           int *level, bool *batch, mn_error *err);
/* A remember whose space's primary is unreachable, kept as a hint (ask->hint; rest_hint.c):
 * 202 with the ids and "accepted": "partition", or 503 when no hint can be kept. */
void rest_hint_remember(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp,
                        const api_route_ask *ask);
/* Writes the memory object of docs/api.md. */
void rest_memory_to_json(api_jw *w, const mn_memory_t *m);
/* Writes the member "memories": the array of the n memories ms. */
void rest_memories_to_json(api_jw *w, const mn_memory_t *ms, size_t n);
/* Reads the filter members of a recall body into f (already initialised): the shorthands
 * (tags_any, ..., as_of) and "filter", the filter language (api_filter_compile). */
mn_err rest_filter_from_json(const cJSON *o, api_arena *a, mn_filter_t *f, mn_error *err);

/* Writes one recall hit (docs/api.md, "Recall"); activation and seed with spread, via with
 * trace. */
void rest_hit_to_json(api_jw *w, const mn_recall_hit_t *h, bool spread, bool trace);
/* The same with the member "space" (a recall over many spaces; NULL: none). */
void rest_hit_in_space_to_json(api_jw *w, const mn_recall_hit_t *h, const char *space, bool spread,
                               bool trace);
/* The body of a recall (docs/api.md, "Recall") into r: every member but the space's. */
mn_err rest_recall_req_from_json(const cJSON *o, api_arena *a, mn_recall_req_t *r, mn_error *err);
/* The request's time fields (time, time_boost, time_ref; docs/api.md) and the
 * response's time_window (null when the text names no time). */
mn_err rest_recall_time_from_json(const cJSON *o, mn_recall_req_t *r, mn_error *err);
void rest_time_window_to_json(api_jw *w, const mn_recall_result_t *res);
/* A recall's timeout_ms: the default and the largest (cluster mode: the bound on reaching a
 * copy of the space; a single node accepts it and has nothing to wait for). */
#define REST_RECALL_TIMEOUT_MS 1000
#define REST_RECALL_TIMEOUT_MAX_MS 600000
/* A recall no copy of its space answered (ask->unreachable): answered from the gossiped
 * semantic memories (rest_partition.c), or 503 naming ask->why. */
void rest_partition_recall(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp,
                           const api_route_ask *ask);

/* The configured name of the request's API key, for "who changed it" (NULL: auth off, no
 * key, or a key without a name); lives as long as the server's auth table. */
const char *rest_caller_name(const mn_api_t *api, const mn_http_request_t *req);

/* The operationId docs/openapi.yaml gives (method, route pattern), or NULL. */
const char *rest_openapi_op(const char *method, const char *route);

#endif
