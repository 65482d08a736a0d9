/* GET /openapi.json, GET /v1/admin/routes, and operation names for logs.
 *
 * docs/openapi.yaml is the source; the build converts it to JSON and embeds it
 * (scripts/openapi_embed.py -> openapi_json.c in the build tree), so the served
 * document is exactly the committed one. /v1/admin/routes lists the router's
 * own table (method, pattern) in registration order: the integration test
 * compares it with the document both ways. The access log names a request's
 * operation with the document's operationId, read once from the embedded JSON. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rest_internal.h"

/* openapi_json.c, generated at build time */
extern const char *const mn_openapi_json;
extern const size_t mn_openapi_json_len;

void rest_h_openapi(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)ctx;
    (void)req;
    mn_http_respond(resp, 200, "application/json", mn_openapi_json, mn_openapi_json_len);
}

void rest_h_routes(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)req;
    mn_api_t *api = ctx;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "routes");
    jw_arr(&w);
    const char *method, *pattern;
    for (size_t i = 0; mn_http_router_route(api->router, i, &method, &pattern); i++) {
        jw_obj(&w);
        jw_key(&w, "method");
        jw_str(&w, method);
        jw_key(&w, "path");
        jw_str(&w, pattern);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

/* ---- operationId by (method, pattern) ---- */

typedef struct op_entry {
    char method[8];
    char *path;
    char *op;
} op_entry;

static op_entry *g_ops;
static size_t g_n_ops;
static pthread_once_t g_ops_once = PTHREAD_ONCE_INIT;

static void ops_load(void)
{
    static const char *const methods[] = {"get", "put", "post", "delete", "patch", "head"};
    cJSON *doc = cJSON_ParseWithLength(mn_openapi_json, mn_openapi_json_len);
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    size_t cap = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, paths)
    {
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(p, methods[m]);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "operationId");
            if (!cJSON_IsString(id) || !p->string) continue;
            if (g_n_ops == cap) {
                size_t nc = cap ? cap * 2 : 32;
                op_entry *n = realloc(g_ops, nc * sizeof *n);
                if (!n) goto out;
                g_ops = n;
                cap = nc;
            }
            op_entry *e = &g_ops[g_n_ops];
            for (size_t k = 0; methods[m][k]; k++) /* at most 6 letters */
                e->method[k] = (char)(methods[m][k] - 'a' + 'A');
            e->method[strlen(methods[m])] = 0;
            e->path = strdup(p->string);
            e->op = strdup(id->valuestring);
            if (!e->path || !e->op) {
                free(e->path);
                free(e->op);
                goto out;
            }
            g_n_ops++;
        }
    }
out:
    cJSON_Delete(doc);
}

const char *rest_openapi_op(const char *method, const char *route)
{
    if (!method || !route) return NULL;
    pthread_once(&g_ops_once, ops_load);
    for (size_t i = 0; i < g_n_ops; i++)
        if (!strcmp(g_ops[i].method, method) && !strcmp(g_ops[i].path, route)) return g_ops[i].op;
    return NULL;
}
