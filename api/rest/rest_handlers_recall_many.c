/* HTTP handler for a recall over many spaces: POST /v1/recall (docs/api.md, "Recall over many
 * spaces"). The body is a recall's (read by the same reader as a single-space recall) plus
 * "spaces" or "space_prefix" and "timeout_ms"; the answer is a recall's, each result naming
 * its space, plus the spaces searched, the ones missing and why, and the reachable share. */
#include "api_recall_many.h"
#include "auth.h"
#include "rest_internal.h"

#include <string.h>

/* Takes the members a single-space recall does not know out of body (a tree of references,
 * so the body itself is untouched) into in; what is left is a recall's body. */
static mn_err many_from_json(cJSON *refs, api_arena *a, api_many_req *in, mn_error *err)
{
    cJSON *spaces = cJSON_DetachItemFromObjectCaseSensitive(refs, "spaces");
    cJSON *prefix = cJSON_DetachItemFromObjectCaseSensitive(refs, "space_prefix");
    cJSON *timeout = cJSON_DetachItemFromObjectCaseSensitive(refs, "timeout_ms");
    cJSON *own = cJSON_CreateObject(); /* the three, to read them with the typed readers */
    mn_err rc = own ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (own && spaces) cJSON_AddItemToObject(own, "spaces", spaces);
    if (own && prefix) cJSON_AddItemToObject(own, "space_prefix", prefix);
    if (own && timeout) cJSON_AddItemToObject(own, "timeout_ms", timeout);
    char **names = NULL;
    size_t n = 0;
    if (!rc && spaces && !cJSON_IsNull(spaces) && !cJSON_IsArray(spaces))
        rc = mn_error_set(err, MN_ERR_INVALID, "spaces: expected an array of space names");
    if (!rc && spaces && !cJSON_IsNull(spaces))
        rc = api_get_strings(own, "spaces", "", false, a, &names, &n, err);
    if (!rc && spaces && !cJSON_IsNull(spaces)) {
        in->names = (const char *const *)names;
        in->n_names = n;
    }
    if (!rc) rc = api_get_string(own, "space_prefix", "", &in->prefix, err);
    if (in->prefix) in->prefix = api_arena_strndup(a, in->prefix, strlen(in->prefix));
    bool has;
    in->timeout_ms = MN_QUERY_TIMEOUT_MS_DEFAULT;
    if (!rc) rc = api_get_int(own, "timeout_ms", "", &has, &in->timeout_ms, err);
    cJSON_Delete(own);
    return rc;
}

static void many_to_json(api_jw *w, const api_many *m, const mn_recall_req_t *r)
{
    const mn_query_result_t *res = &m->res;
    jw_key(w, "results");
    jw_arr(w);
    for (size_t i = 0; i < res->n_hits; i++)
        rest_hit_in_space_to_json(w, &res->hits[i], m->plan.spaces[res->hit_space[i]], r->spread,
                                  r->trace);
    jw_arr_end(w);
    jw_key(w, "spaces");
    jw_arr(w);
    for (size_t i = 0; i < m->plan.n; i++)
        jw_str(w, m->plan.spaces[i]);
    jw_arr_end(w);
    jw_key(w, "missing");
    jw_arr(w);
    for (size_t i = 0; i < res->n_missing; i++) {
        jw_obj(w);
        jw_key(w, "space");
        jw_str(w, m->plan.spaces[res->missing[i].space]);
        jw_key(w, "reason");
        jw_str(w, res->missing[i].reason);
        if (res->missing[i].no_stand_in) { /* its gossiped memories could not stand in */
            jw_key(w, "no_stand_in");
            jw_str(w, res->missing[i].no_stand_in);
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "reachable");
    jw_float(w, res->reachable);
    jw_key(w, "recall_confidence");
    jw_float(w, res->recall_confidence);
    jw_key(w, "scanned");
    jw_uint(w, res->scanned);
    rest_time_window_to_json(w, &res->window);
}

void rest_h_recall_many(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    int64_t t0 = mn_time_mono_ns();
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    api_many_req in = {0};
    api_many m = {0};
    mn_recall_req_t r;
    cJSON *refs = api_json_refs(body);
    mn_err rc = refs ? many_from_json(refs, &a, &in, &err)
                     : mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    if (!rc) rc = rest_read_body(refs, &in.read, &err);
    if (!rc) rc = rest_recall_req_from_json(refs, &a, &r, &err);
    cJSON_Delete(refs);
    const char *key = mn_auth_http_key(req);
    in.key = key;
    in.key_len = key ? strlen(key) : 0;
    if (!rc) rc = api_recall_many(api, &in, &r, &m, &err);
    if (rc && m.plan.denied[0]) {
        api_json_free(body);
        api_arena_free(&a);
        api_many_clear(&m);
        mn_http_respond_error(resp, 403, "permission_denied", err.message,
                              "a key reads the spaces its [[auth.keys]] entry lists");
        return;
    }
    if (!rc) {
        api_jw w;
        jw_init(&w);
        jw_obj(&w);
        many_to_json(&w, &m, &r);
        jw_key(&w, "took_ms");
        jw_double(&w, (double)(mn_time_mono_ns() - t0) / 1e6, 4);
        jw_obj_end(&w);
        jw_respond(&w, resp, 200);
    }
    api_many_clear(&m);
    rest_done(resp, body, &a, rc, &err, API_CTX_SPACE);
}
