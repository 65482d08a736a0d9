/* The steps the REST handlers share around their one engine call: refusing a query they do
 * not take, reading the JSON body, reading the memory id of the path, answering an engine
 * error. Each answers resp itself when it fails, so a handler only returns. */
#include "rest_internal.h"

#include <string.h>

bool rest_failed(mn_http_response_t *resp, mn_err rc, const mn_error *err, api_ctx nf)
{
    if (!rc) return false;
    api_respond_err(resp, rc, err, nf);
    return true;
}

bool rest_done(mn_http_response_t *resp, cJSON *body, api_arena *a, mn_err rc,
               const mn_error *err, api_ctx nf)
{
    api_json_free(body);
    api_arena_free(a);
    return rest_failed(resp, rc, err, nf);
}

bool rest_query_none(const mn_http_request_t *req, mn_http_response_t *resp, api_ctx nf)
{
    api_arena a;
    api_arena_init(&a);
    api_qparam *qs;
    size_t nq;
    mn_error err = {0};
    mn_err rc = api_query_read(req, NULL, false, &a, &qs, &nq, &err);
    api_arena_free(&a);
    return !rest_failed(resp, rc, &err, nf);
}

cJSON *rest_body(const mn_http_request_t *req, mn_http_response_t *resp, api_ctx nf)
{
    if (!rest_query_none(req, resp, nf)) return NULL;
    return api_body_object(req, 0, resp);
}

cJSON *rest_body_in_space(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp)
{
    if (!rest_query_none(req, resp, API_CTX_SPACE)) return NULL;
    mn_space_stats_t st;
    uint32_t dim = 0; /* a space that does not exist: the engine answers 404 after the parse */
    if (!mn_engine_space_get(api->engine, req->params[0], &st, NULL)) dim = st.def.dim;
    return api_body_object(req, dim, resp);
}

bool rest_path_id(const mn_http_request_t *req, mn_id_t *id, mn_http_response_t *resp)
{
    const char *s = req->params[1];
    if (mn_id_parse(s, strlen(s), id)) {
        mn_http_respond_error(resp, 422, "invalid_argument", "id: not a memory id",
                              "memory ids look like 0190a5b2-7c1e-7d3a-9f00-1234567890ab");
        return false;
    }
    return true;
}
