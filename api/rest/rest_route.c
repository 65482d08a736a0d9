/* The one routing step of the REST door, and the request options of cluster mode
 * (docs/api.md, "Cluster mode").
 *
 * Every route about one space (/v1/spaces/{space}/..., and POST /v1/spaces, which names its
 * space in the body) is registered through rest_h_routed, and the MCP tools call their
 * handlers through rest_dispatch: in cluster mode both ask the cluster's route hook first,
 * which may forward the request to the space's primary and answer it from there. In
 * single-node mode api->cluster is NULL and the handler runs at once.
 *
 * The options: "consistency" (one | quorum | all) on writes, "read" (primary | nearest) on
 * recall, get and list. The handlers read and validate them in both modes (422 naming the
 * field); a write's level goes to the cluster's write_wait once the write is durable here. */
#include "rest_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define ROUTE_PATH_MAX 512

bool rest_routable(const char *method, const char *pattern)
{
    static const char prefix[] = "/v1/spaces/{space}";
    if (!strcmp(method, "POST") && !strcmp(pattern, "/v1/spaces")) return true;
    if (strncmp(pattern, prefix, sizeof prefix - 1) != 0) return false;
    /* a stream stays on the node it was opened on; a forwarded gRPC call is served where it
     * arrives (its handler checks the hop) */
    return strcmp(pattern, "/v1/spaces/{space}/events") != 0 &&
           strcmp(pattern, "/v1/spaces/{space}/grpc/{method}") != 0;
}

/* ---- the options ---- */

mn_err rest_consistency_body(const cJSON *o, int *level, mn_error *err)
{
    const char *v = NULL;
    *level = -1;
    mn_err rc = api_get_string(o, "consistency", "", &v, err);
    return rc || !v ? rc : api_consistency_parse(v, level, err);
}

mn_err rest_read_body(const cJSON *o, api_read_pref *out, mn_error *err)
{
    const char *v = NULL;
    *out = API_READ_PRIMARY;
    mn_err rc = api_get_string(o, "read", "", &v, err);
    return rc || !v ? rc : api_read_parse(v, out, err);
}

bool rest_write_settled(mn_api_t *api, const char *space, int level, mn_http_response_t *resp)
{
    mn_error err = {0};
    uint64_t lsn;
    if (api_write_wait(api, space, level, &lsn, &err) == MN_OK) return true;
    char msg[sizeof err.message + 200];
    snprintf(msg, sizeof msg,
             "%s; the write is durable on the primary (lsn %llu) but did not reach its "
             "consistency level in time",
             err.message, (unsigned long long)lsn);
    mn_http_respond_error(resp, 503, "unavailable", msg,
                          "retry it: remember with the same idempotency_key stores nothing "
                          "twice; or ask for consistency \"one\"");
    return false;
}

/* ---- what the route hook is asked ---- */

/* The read preference of req, as far as routing needs it (a bad value: primary; the handler
 * refuses it). */
static api_read_pref read_pref(const api_route *r, const mn_http_request_t *req)
{
    api_read_pref p = API_READ_PRIMARY;
    char v[16];
    if (!strcmp(r->method, "GET")) {
        if (mn_http_query_get(req, "read", v, sizeof v)) api_read_parse(v, &p, NULL);
        return p;
    }
    if (strcmp(r->pattern, "/v1/spaces/{space}/recall") != 0) return p;
    const cJSON *tree = api_inproc_tree(req);
    if (tree) {
        rest_read_body(tree, &p, NULL);
        return p;
    }
    /* the body is parsed again only when it may name a preference */
    if (!req->body || !memmem(req->body, req->body_len, "\"read\"", 6)) return p;
    api_json_result jr;
    cJSON *j = api_json_parse(req->body, req->body_len, &jr);
    if (cJSON_IsObject(j)) rest_read_body(j, &p, NULL);
    api_json_free(j);
    return p;
}

/* A recall's timeout_ms (docs/api.md, "Cluster mode"): how long routing may try to reach a
 * copy of the space before the answer comes from gossiped memories. A bad value: the default
 * (the handler refuses it). */
static int64_t recall_timeout(const api_route *r, const mn_http_request_t *req)
{
    int64_t ms = REST_RECALL_TIMEOUT_MS;
    if (strcmp(r->pattern, "/v1/spaces/{space}/recall") != 0) return 0;
    const cJSON *tree = api_inproc_tree(req);
    if (!tree && (!req->body || !memmem(req->body, req->body_len, "\"timeout_ms\"", 12))) return ms;
    api_json_result jr;
    cJSON *j = tree ? NULL : api_json_parse(req->body, req->body_len, &jr);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tree ? tree : j, "timeout_ms");
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= REST_RECALL_TIMEOUT_MAX_MS)
        ms = (int64_t)v->valuedouble;
    api_json_free(j);
    return ms;
}

/* The name a space creation names (the space is NULL when it names none: served here, where
 * the handler refuses it). Copied into buf. */
static const char *create_name(const mn_http_request_t *req, char *buf, size_t cap)
{
    const cJSON *tree = api_inproc_tree(req);
    api_json_result jr;
    cJSON *j = tree ? NULL : api_json_parse(req->body ? req->body : "", req->body_len, &jr);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(tree ? tree : j, "name");
    const char *out = NULL;
    if (cJSON_IsString(name) && strlen(name->valuestring) < cap) {
        memcpy(buf, name->valuestring, strlen(name->valuestring) + 1);
        out = buf;
    }
    api_json_free(j);
    return out;
}

/* The path of r with req's parameters in it ({space} first, {id} second). */
static bool fill_path(const api_route *r, const mn_http_request_t *req, char *out, size_t cap)
{
    size_t n = 0, k = 0;
    for (const char *p = r->pattern; *p;) {
        const char *v = NULL;
        size_t len = 1;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            if (!end || k >= req->n_params) return false;
            v = req->params[k++];
            len = (size_t)(end - p) + 1;
        }
        size_t vl = v ? strlen(v) : 1;
        if (n + vl >= cap) return false;
        memcpy(out + n, v ? v : p, vl);
        n += vl;
        p += len;
    }
    out[n] = 0;
    return true;
}

/* Every recall hit of a replica's answer says it may be stale, and by how much. */
static void mark_stale(mn_http_response_t *resp, int64_t lag_ms)
{
    cJSON *j = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(j, "results");
    for (const cJSON *h = results ? results->child : NULL; h; h = h->next) {
        cJSON *conf = cJSON_GetObjectItemCaseSensitive(h, "confidence");
        cJSON *reasons = cJSON_GetObjectItemCaseSensitive(conf, "reasons");
        if (cJSON_IsArray(reasons))
            cJSON_AddItemToArray(reasons, cJSON_CreateString("stale_replica"));
    }
    if (cJSON_IsObject(j)) cJSON_AddNumberToObject(j, "replica_lag_ms", (double)lag_ms);
    char *text = cJSON_IsObject(j) ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (text) mn_http_respond(resp, resp->status, NULL, text, strlen(text));
    cJSON_free(text);
}

void rest_dispatch(const api_route_ctx *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx->api;
    const api_route *r = &ctx->route;
    const api_cluster_hooks *h = api->cluster;
    mn_engine_write_begin(); /* a write's level is waited for on the entry this request made */
    if (!h || !h->route || !rest_routable(r->method, r->pattern)) {
        r->fn(api, req, resp);
        return;
    }
    char path[ROUTE_PATH_MAX], name[MN_SPACE_NAME_MAX + 1];
    api_route_ask ask = {.path = path, .tree = api_inproc_tree(req), .replica_lag_ms = -1};
    ask.create = !strcmp(r->pattern, "/v1/spaces");
    ask.space = ask.create ? create_name(req, name, sizeof name) : req->params[0];
    ask.write = mn_auth_op_role(mn_auth_route_op(r->method, r->pattern)) >= MN_AUTH_WRITE;
    ask.read = ask.write ? API_READ_PRIMARY : read_pref(r, req);
    ask.timeout_ms = ask.write ? 0 : recall_timeout(r, req);
    ask.hintable = r->fn == rest_h_remember; /* partition mode: a remember may become a hint */
    if (ask.space && fill_path(r, req, path, sizeof path) && h->route(h->arg, req, resp, &ask))
        return;
    if (ask.hint) {
        rest_hint_remember(api, req, resp, &ask);
        return;
    }
    if (ask.unreachable) {
        rest_partition_recall(api, req, resp, &ask);
        return;
    }
    r->fn(api, req, resp);
    if (ask.replica_lag_ms > API_STALE_REPLICA_MS && resp->status == 200 &&
        !strcmp(r->pattern, "/v1/spaces/{space}/recall"))
        mark_stale(resp, ask.replica_lag_ms);
}

void rest_h_routed(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    rest_dispatch(ctx, req, resp);
}

const api_route_ctx *rest_route_of(const mn_api_t *api, mn_http_handler_fn fn, const char *method)
{
    for (size_t i = 0; i < api->n_routes; i++)
        if (api->routes[i].route.fn == fn && !strcmp(api->routes[i].route.method, method))
            return &api->routes[i];
    return NULL;
}
