/* HTTP handlers for the cognitive operations of docs/recall.md §4-§8:
 * associate and list associations, consolidate, recognize, reminisce and
 * complete (docs/api.md, "Cognitive operations").
 *
 * Handlers only translate: JSON in through the typed readers of api_json.c,
 * one engine call, JSON out. Every value check (weights, kinds of edges,
 * thresholds, as-of age) is the engine's, so the messages match the library's.
 * A request that names a memory the space lacks is 404 memory_not_found. */
#include "rest_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- associations ---- */

static const char *const associate_fields[] = {"edges", NULL};
static const char *const edge_fields[] = {"from", "to", "kind", "weight", NULL};

static mn_err read_id(const cJSON *o, const char *name, const char *pfx, mn_id_t *id, mn_error *err)
{
    const char *s = NULL;
    mn_err rc = api_get_string(o, name, pfx, &s, err);
    if (rc) return rc;
    if (!s) return mn_error_set(err, MN_ERR_INVALID, "%s%s: required (a memory id)", pfx, name);
    if (mn_id_parse(s, strlen(s), id))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: not a memory id", pfx, name);
    return MN_OK;
}

static mn_err edges_from_json(const cJSON *body, api_arena *a, mn_edge_t **out, size_t *n,
                              mn_error *err)
{
    mn_err rc = api_check_fields(body, associate_fields, "", err);
    if (rc) return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "edges");
    if (!arr || !cJSON_IsArray(arr))
        return mn_error_set(err, MN_ERR_INVALID, "edges: expected an array of edges");
    int cnt = cJSON_GetArraySize(arr);
    if (cnt < 1 || cnt > MN_BATCH_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "edges: %d in one request, must be 1..%d", cnt,
                            MN_BATCH_MAX);
    mn_edge_t *edges = api_arena_alloc(a, (size_t)cnt * sizeof *edges);
    if (!edges) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        char pfx[32];
        snprintf(pfx, sizeof pfx, "edges[%zu].", i);
        if (!cJSON_IsObject(c))
            return mn_error_set(err, MN_ERR_INVALID, "edges[%zu]: expected an object", i);
        if ((rc = api_check_fields(c, edge_fields, pfx, err))) return rc;
        if ((rc = read_id(c, "from", pfx, &edges[i].from, err))) return rc;
        if ((rc = read_id(c, "to", pfx, &edges[i].to, err))) return rc;
        const char *kind = NULL;
        if ((rc = api_get_string(c, "kind", pfx, &kind, err))) return rc;
        mn_edge_kind_t k = MN_EDGE_EXPLICIT;
        if (kind && mn_edge_kind_parse(kind, &k))
            return mn_error_set(err, MN_ERR_INVALID,
                                "%skind: must be causal or explicit, got "
                                "\"%.32s\"",
                                pfx, kind);
        edges[i].kind = (uint8_t)k;
        bool has_w;
        float wt = 1;
        if ((rc = api_get_float(c, "weight", pfx, &has_w, &wt, err))) return rc;
        edges[i].weight = has_w ? wt : 1.0f;
    }
    *out = edges;
    *n = i;
    return MN_OK;
}

void rest_h_associate(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_MEMORY);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_edge_t *edges = NULL;
    size_t n = 0;
    mn_err rc = edges_from_json(body, &a, &edges, &n, &err);
    if (!rc) rc = mn_engine_associate(api->engine, req->params[0], edges, n, &err);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_MEMORY)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "created");
    jw_uint(&w, n);
    jw_obj_end(&w);
    jw_respond(&w, resp, 201);
}

void rest_h_associations(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_id_t id;
    if (!rest_query_none(req, resp, API_CTX_MEMORY) || !rest_path_id(req, &id, resp)) return;
    mn_error err = {0};
    mn_assoc_t *as = NULL;
    size_t n = 0;
    mn_err rc = mn_engine_associations(api->engine, req->params[0], &id, &as, &n, &err);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "associations");
    jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        jw_obj(&w);
        jw_key(&w, "id");
        jw_id(&w, &as[i].other);
        jw_key(&w, "kind");
        jw_str(&w, mn_edge_kind_name((mn_edge_kind_t)as[i].kind));
        jw_key(&w, "direction");
        jw_str(&w, as[i].outgoing ? "out" : "in");
        jw_key(&w, "weight");
        jw_float(&w, as[i].weight);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    free(as);
    jw_respond(&w, resp, 200);
}

/* ---- consolidate ---- */

void rest_h_consolidate(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    static const char *const fields[] = {"threshold", "min_support", "filter", NULL};
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_consolidate_opts_t o = {0};
    mn_consolidate_result_t res = {0};
    bool has;
    int64_t ms = 0;
    mn_filter_t f;
    mn_filter_init(&f);
    /* the filter scopes which changes of a full run are applied (consolidate.c) */
    mn_err rc = api_check_fields(body, fields, "", &err);
    if (!rc)
        rc = api_filter_compile(cJSON_GetObjectItemCaseSensitive(body, "filter"), &a, &f, &err);
    if (!rc && f.n_expr) o.filter = &f;
    if (!rc) rc = api_get_float(body, "threshold", "", NULL, &o.threshold, &err);
    if (!rc) rc = api_get_int(body, "min_support", "", &has, &ms, &err);
    /* ranges are the engine's to judge; a value outside uint32 saturates to one it refuses */
    if (!rc && has) o.min_support = ms < 0 || ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    if (!rc) rc = mn_engine_consolidate(api->engine, req->params[0], &o, &res, &err);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "candidates");
    jw_uint(&w, res.candidates);
    jw_key(&w, "created");
    jw_uint(&w, res.created);
    jw_key(&w, "updated");
    jw_uint(&w, res.updated);
    jw_key(&w, "episodes");
    jw_uint(&w, res.episodes);
    jw_key(&w, "retired");
    jw_uint(&w, res.retired);
    jw_key(&w, "skipped");
    jw_uint(&w, res.skipped);
    jw_key(&w, "ids");
    jw_arr(&w);
    for (size_t i = 0; i < res.n_ids; i++)
        jw_id(&w, &res.ids[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    free(res.ids);
    jw_respond(&w, resp, 200);
}

/* ---- recognize ---- */

static const char *const recognize_fields[] = {
    "embedding", "text",  "threshold", "tags_any",       "tags_all",
    "metadata",  "kind",  "when",      "min_confidence", "include_suppressed",
    "who",       "where", "session",   "as_of",          "filter", NULL};

void rest_h_recognize(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body_in_space(api, req, resp);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_recognize_req_t r;
    memset(&r, 0, sizeof r);
    mn_filter_init(&r.filter);
    mn_recognize_result_t res = {0};
    float *emb = NULL;
    const char *text = NULL;
    mn_err rc = api_check_fields(body, recognize_fields, "", &err);
    if (!rc) rc = api_get_floats(body, "embedding", "", &a, &emb, &r.dim, &err);
    if (!rc) rc = api_get_string(body, "text", "", &text, &err);
    if (!rc) rc = api_get_float(body, "threshold", "", NULL, &r.threshold, &err);
    if (!rc) rc = rest_filter_from_json(body, &a, &r.filter, &err);
    r.embedding = emb;
    if (text) {
        r.text = text;
        r.text_len = strlen(text);
    }
    if (!rc && !emb && !text)
        rc = mn_error_set(&err, MN_ERR_INVALID, "a cue needs an embedding, text, or both");
    if (!rc) rc = mn_engine_recognize(api->engine, req->params[0], &r, &res, &err);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "recognized");
    jw_bool(&w, res.recognized);
    jw_key(&w, "familiarity");
    jw_float(&w, res.familiarity);
    jw_key(&w, "best");
    if (res.has_best)
        jw_id(&w, &res.best);
    else
        jw_null(&w);
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

/* ---- reminisce ---- */

static const char *const reminisce_fields[] = {"from",
                                               "to",
                                               "who",
                                               "where",
                                               "session",
                                               "topic",
                                               "kind",
                                               "limit",
                                               "include_embedding",
                                               "tags_any",
                                               "tags_all",
                                               "metadata",
                                               "min_confidence",
                                               "include_suppressed",
                                               "as_of",
                                               "filter",
                                               NULL};

static mn_err reminisce_from_json(const cJSON *o, api_arena *a, mn_reminisce_req_t *r, mn_error *err)
{
    memset(r, 0, sizeof *r);
    mn_filter_init(&r->filter);
    mn_err rc = api_check_fields(o, reminisce_fields, "", err);
    if (rc) return rc;
    /* "when" is not a member here: the window is from/to at the top level */
    if ((rc = rest_filter_from_json(o, a, &r->filter, err))) return rc;
    if ((rc = api_get_time(o, "from", "", NULL, &r->filter.when_from_ms, err))) return rc;
    if ((rc = api_get_time(o, "to", "", NULL, &r->filter.when_to_ms, err))) return rc;
    const char *topic = NULL;
    if ((rc = api_get_string(o, "topic", "", &topic, err))) return rc;
    if (topic) {
        r->topic = topic;
        r->topic_len = strlen(topic);
    }
    bool has;
    int64_t limit = 50;
    if ((rc = api_get_int(o, "limit", "", &has, &limit, err))) return rc;
    if (limit < 1 || limit > 1000)
        return mn_error_set(err, MN_ERR_INVALID, "limit: must be in 1..1000, got %lld",
                            (long long)limit);
    r->limit = (uint32_t)limit;
    return api_get_bool(o, "include_embedding", "", NULL, &r->include_embedding, err);
}

void rest_h_reminisce(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_reminisce_req_t r;
    mn_list_result_t res = {0};
    mn_err rc = reminisce_from_json(body, &a, &r, &err);
    if (!rc) rc = mn_engine_reminisce(api->engine, req->params[0], &r, &res, &err);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    rest_memories_to_json(&w, res.memories, res.n);
    jw_obj_end(&w);
    mn_list_result_clear(&res);
    jw_respond(&w, resp, 200);
}

/* ---- complete ---- */

static const char *const complete_fields[] = {"content", "embedding", "context", "tags", "k", NULL};

static mn_err complete_from_json(const cJSON *o, api_arena *a, mn_memory_t *m, uint32_t *k,
                                 mn_error *err)
{
    mn_err rc = api_check_fields(o, complete_fields, "", err);
    if (rc) return rc;
    /* k is not a memory field: read it, then read the rest as a partial memory */
    bool has;
    int64_t kk = 5;
    if ((rc = api_get_int(o, "k", "", &has, &kk, err))) return rc;
    if (kk < 1 || kk > 100)
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..100, got %lld", (long long)kk);
    *k = (uint32_t)kk;
    cJSON *copy = api_json_refs(o); /* references: a compact embedding stays as it is */
    if (!copy) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "k");
    rc = rest_memory_from_json(copy, "", a, m, err);
    /* the strings point into copy: keep them in the arena before it goes */
    if (!rc && m->content) {
        m->content = api_arena_strndup(a, m->content, m->content_len);
        if (!m->content) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    if (!rc && m->where && !(m->where = api_arena_strndup(a, m->where, strlen(m->where))))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (!rc && m->session && !(m->session = api_arena_strndup(a, m->session, strlen(m->session))))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_who; i++)
        if (!(m->who[i] = api_arena_strndup(a, m->who[i], strlen(m->who[i]))))
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_tags; i++)
        if (!(m->tags[i] = api_arena_strndup(a, m->tags[i], strlen(m->tags[i]))))
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cJSON_Delete(copy);
    return rc;
}

void rest_h_complete(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body_in_space(api, req, resp);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_memory_t partial;
    uint32_t k = 5;
    mn_complete_result_t res;
    memset(&res, 0, sizeof res);
    mn_err rc = complete_from_json(body, &a, &partial, &k, &err);
    if (!rc) rc = mn_engine_complete(api->engine, req->params[0], &partial, k, &res, &err);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "candidates");
    jw_arr(&w);
    for (size_t i = 0; i < res.candidates.n_hits; i++)
        rest_hit_to_json(&w, &res.candidates.hits[i], false, false);
    jw_arr_end(&w);
    jw_key(&w, "fields");
    jw_obj(&w);
    for (size_t i = 0; i < res.n_fields && i < MN_FIELD_COUNT; i++) {
        jw_key(&w, mn_field_name(res.fields[i].field));
        jw_obj(&w);
        jw_key(&w, "value");
        jw_str_or_null(&w, res.fields[i].value);
        jw_key(&w, "confidence");
        jw_float(&w, res.fields[i].confidence);
        jw_obj_end(&w);
    }
    jw_obj_end(&w);
    jw_obj_end(&w);
    mn_complete_result_clear(&res);
    jw_respond(&w, resp, 200);
}
