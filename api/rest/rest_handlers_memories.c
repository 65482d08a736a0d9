/* HTTP handlers for memories: remember (one or a batch), list with filters and
 * cursor, get, forget (delete or suppress) and unsuppress (docs/api.md).
 *
 * A batch is all-or-nothing: every memory is type-checked before the engine
 * sees any, and the engine validates and writes the batch as one WAL entry.
 * A malformed memory id in the path is 422 invalid_argument ("id: not a memory
 * id"): the request is wrong, not the lookup. */
#include "rest_internal.h"

#include "embed/embed.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A remember's answer: {"id"} (with "duplicate_of" for a duplicate) or, for a batch,
 * {"ids", "duplicate_of"}; 201 for a duplicate too, as for an idempotent retry. */
static void remember_answer(mn_http_response_t *resp, bool batch, const mn_id_t *ids,
                            const bool *dups, size_t n)
{
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    if (batch) {
        jw_key(&w, "ids");
        jw_arr(&w);
        for (size_t i = 0; i < n; i++) jw_id(&w, &ids[i]);
        jw_arr_end(&w);
        jw_key(&w, "duplicate_of"); /* per memory: the live memory it equals, or null */
        jw_arr(&w);
        for (size_t i = 0; i < n; i++)
            if (dups[i])
                jw_id(&w, &ids[i]);
            else
                jw_null(&w);
        jw_arr_end(&w);
    } else {
        jw_key(&w, "id");
        jw_id(&w, &ids[0]);
        if (dups[0]) {
            jw_key(&w, "duplicate_of");
            jw_id(&w, &ids[0]);
        }
    }
    jw_obj_end(&w);
    jw_respond(&w, resp, 201);
}

mn_err rest_remember_parse(const cJSON *body, api_arena *a, mn_memory_t **mems, size_t *n,
                           int *level, bool *batch_out, mn_error *err)
{
    mn_err rc = rest_consistency_body(body, level, err);
    const cJSON *batch = cJSON_GetObjectItemCaseSensitive(body, "memories");
    *n = 1;
    *mems = NULL;
    *batch_out = batch != NULL;
    if (batch) {
        static const char *const batch_fields[] = {"memories", "consistency", NULL};
        if (!rc) rc = api_check_fields(body, batch_fields, "", err);
        if (!rc && !cJSON_IsArray(batch))
            rc = mn_error_set(err, MN_ERR_INVALID, "memories: expected an array of memories");
        if (!rc) {
            *n = (size_t)cJSON_GetArraySize(batch);
            if (*n == 0)
                rc = mn_error_set(err, MN_ERR_INVALID, "memories: empty batch (1..%d)",
                                  MN_BATCH_MAX);
            else if (*n > MN_BATCH_MAX)
                rc = mn_error_set(err, MN_ERR_INVALID,
                                  "memories: %zu in one batch, the limit is %d", *n, MN_BATCH_MAX);
        }
    }
    if (!rc && !(*mems = api_arena_alloc(a, *n * sizeof **mems)))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (!rc && batch) {
        size_t i = 0;
        for (const cJSON *c = batch->child; c && !rc; c = c->next, i++) {
            char pfx[32];
            snprintf(pfx, sizeof pfx, "memories[%zu].", i);
            if (cJSON_GetObjectItemCaseSensitive(c, "consistency"))
                rc = mn_error_set(err, MN_ERR_INVALID,
                                  "%sconsistency: give it once, beside \"memories\"", pfx);
            if (!rc) rc = rest_memory_from_json(c, pfx, a, &(*mems)[i], err);
        }
    } else if (!rc) {
        rc = rest_memory_from_json(body, "", a, &(*mems)[0], err);
    }
    return rc;
}

/* A remember another node forwarded with its ids chosen ahead (API_HINT_BASE_HEADER on an
 * internal hop, partition writes accepted there): false when it carries none. Its memories
 * get those ids and their time, so a hint of the same request stores nothing twice. */
static bool hinted_ids(const mn_http_request_t *req, const mn_http_response_t *resp,
                       mn_memory_t *mems, size_t n)
{
    const char *v = mn_http_header_get(req, API_HINT_BASE_HEADER);
    mn_id_t base;
    /* the gate names an admitted internal hop "hop:<node>" */
    if (!v || strncmp(resp->principal, "hop:", 4) != 0 || mn_id_parse(v, strlen(v), &base))
        return false;
    for (size_t i = 0; i < n; i++) {
        mems[i].id = api_hint_id(&base, i);
        mems[i].created_at_ms = mn_id_time_ms(&base);
    }
    return true;
}

void rest_h_remember(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body_in_space(api, req, resp);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    int level = -1;
    size_t n = 1;
    mn_memory_t *mems = NULL;
    mn_id_t *ids = NULL;
    bool *dups = NULL, batch = false;
    mn_err rc = rest_remember_parse(body, &a, &mems, &n, &level, &batch, &err);
    if (!rc) {
        ids = api_arena_alloc(&a, n * sizeof *ids);
        dups = api_arena_alloc(&a, n * sizeof *dups);
        if (!ids || !dups) rc = mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    }
    if (!rc && hinted_ids(req, resp, mems, n))
        rc = mn_engine_remember_hinted(api->engine, req->params[0], mems, n, ids, dups, &err);
    else if (!rc)
        rc = mn_engine_remember_dedup(api->engine, req->params[0], mems, n, ids, dups, &err);
    /* memories with text and no embedding get their vector later, off this path */
    if (!rc) mn_embed_remembered(api->embed, req->params[0], mems, ids, n);
    api_json_free(body);
    if (rest_failed(resp, rc, &err, API_CTX_SPACE) ||
        !rest_write_settled(api, req->params[0], level, resp)) {
        api_arena_free(&a);
        return;
    }
    remember_answer(resp, batch, ids, dups, n);
    api_arena_free(&a);
}

/* Appends the comma-separated items of v to a string list in the arena. */
static mn_err add_list(api_arena *a, const char *name, char *v, char ***list, size_t *n,
                       mn_error *err)
{
    size_t cnt = 1;
    for (const char *p = v; *p; p++) cnt += *p == ',';
    char **nl = api_arena_alloc(a, (*n + cnt) * sizeof *nl);
    if (!nl) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (*n) memcpy(nl, *list, *n * sizeof *nl);
    size_t k = *n;
    for (char *tok = v;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        if (*tok) nl[k++] = tok;
        if (!comma) break;
        tok = comma + 1;
    }
    (void)name;
    *list = nl;
    *n = k;
    return MN_OK;
}

static const char *const list_params[] = {
    "limit", "cursor", "tags_any", "tags_all", "kind", "when_from", "when_to", "min_confidence",
    "include_suppressed", "include_embedding", "who", "where", "session", "as_of", "filter",
    "read", /* where to read (cluster mode): validated here, used by the routing step */
    NULL};

/* The query of a list (filter: the filter language as URL-encoded JSON). */
static mn_err list_req_from_query(const mn_http_request_t *req, api_arena *a, mn_list_req_t *lr,
                                  mn_error *err)
{
    api_qparam *qs;
    size_t nq;
    mn_err rc = api_query_read(req, list_params, true, a, &qs, &nq, err);
    if (rc) return rc;
    memset(lr, 0, sizeof *lr);
    mn_filter_init(&lr->filter);
    lr->limit = 100;
    size_t n_meta = 0;
    for (size_t i = 0; i < nq; i++) n_meta += !strncmp(qs[i].key, "metadata.", 9);
    if (n_meta) {
        lr->filter.metadata = api_arena_alloc(a, n_meta * sizeof *lr->filter.metadata);
        if (!lr->filter.metadata) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    mn_filter_t *f = &lr->filter;
    for (size_t i = 0; i < nq && !rc; i++) {
        const char *k = qs[i].key;
        char *v = qs[i].value;
        int64_t x;
        if (!strncmp(k, "metadata.", 9)) {
            f->metadata[f->n_metadata].key = (char *)k + 9;
            f->metadata[f->n_metadata++].value = v;
        } else if (!strcmp(k, "limit")) {
            rc = api_query_int(k, v, 1, MN_BATCH_MAX, &x, err);
            lr->limit = (uint32_t)x;
        } else if (!strcmp(k, "cursor")) {
            lr->cursor = v;
        } else if (!strcmp(k, "tags_any")) {
            rc = add_list(a, k, v, &f->tags_any, &f->n_tags_any, err);
        } else if (!strcmp(k, "tags_all")) {
            rc = add_list(a, k, v, &f->tags_all, &f->n_tags_all, err);
        } else if (!strcmp(k, "kind")) {
            mn_kind_t kind = MN_KIND_EPISODIC;
            if (mn_kind_parse(v, &kind))
                rc = mn_error_set(err, MN_ERR_INVALID,
                                  "kind: must be episodic or semantic, got \"%.32s\"", v);
            f->kind = (int)kind;
        } else if (!strcmp(k, "when_from")) {
            rc = api_query_time(k, v, &f->when_from_ms, err);
        } else if (!strcmp(k, "when_to")) {
            rc = api_query_time(k, v, &f->when_to_ms, err);
        } else if (!strcmp(k, "min_confidence")) {
            char *end;
            errno = 0;
            double d = strtod(v, &end);
            if (!*v || *end || isnan(d))
                rc = mn_error_set(err, MN_ERR_INVALID, "min_confidence: expected a number");
            f->min_confidence = api_to_float(d);
        } else if (!strcmp(k, "include_suppressed")) {
            rc = api_query_bool(k, v, &f->include_suppressed, err);
        } else if (!strcmp(k, "include_embedding")) {
            rc = api_query_bool(k, v, &lr->include_embedding, err);
        } else if (!strcmp(k, "who")) {
            f->who = v;
        } else if (!strcmp(k, "where")) {
            f->where = v;
        } else if (!strcmp(k, "session")) {
            f->session = v;
        } else if (!strcmp(k, "as_of")) {
            rc = api_query_time(k, v, &f->as_of_ms, err);
        } else if (!strcmp(k, "filter")) {
            if (f->expr) rc = mn_error_set(err, MN_ERR_INVALID, "filter: given twice");
            else rc = api_filter_from_text(v, strlen(v), a, f, err);
        } else if (!strcmp(k, "read")) {
            api_read_pref p;
            rc = api_read_parse(v, &p, err);
        }
    }
    return rc;
}

void rest_h_list(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_list_req_t lr;
    mn_list_result_t res = {0};
    mn_err rc = list_req_from_query(req, &a, &lr, &err);
    if (!rc) rc = mn_engine_list(api->engine, req->params[0], &lr, &res, &err);
    api_arena_free(&a);
    if (rest_failed(resp, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    rest_memories_to_json(&w, res.memories, res.n);
    jw_key(&w, "next");
    jw_str_or_null(&w, res.next);
    jw_obj_end(&w);
    mn_list_result_clear(&res);
    jw_respond(&w, resp, 200);
}

void rest_h_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    static const char *const params[] = {"include_embedding", "as_of", "read", NULL};
    mn_api_t *api = ctx;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    api_qparam *qs;
    size_t nq;
    bool with_embedding = false;
    int64_t as_of = MN_TIME_UNSET;
    mn_err rc = api_query_read(req, params, false, &a, &qs, &nq, &err);
    api_read_pref pref;
    for (size_t i = 0; i < nq && !rc; i++)
        rc = !strcmp(qs[i].key, "as_of") ? api_query_time(qs[i].key, qs[i].value, &as_of, &err)
             : !strcmp(qs[i].key, "read")
                 ? api_read_parse(qs[i].value, &pref, &err)
                 : api_query_bool(qs[i].key, qs[i].value, &with_embedding, &err);
    api_arena_free(&a);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY)) return;
    mn_id_t id;
    if (!rest_path_id(req, &id, resp)) return;
    mn_memory_t m;
    rc = mn_engine_get_as_of(api->engine, req->params[0], &id, as_of, with_embedding, &m, &err);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY)) return;
    api_jw w;
    jw_init(&w);
    rest_memory_to_json(&w, &m);
    mn_memory_clear(&m);
    jw_respond(&w, resp, 200);
}

void rest_h_forget(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    static const char *const params[] = {"mode", "consistency", NULL};
    mn_api_t *api = ctx;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    api_qparam *qs;
    size_t nq;
    mn_forget_mode_t mode = MN_FORGET_DELETE;
    int level = -1;
    mn_err rc = api_query_read(req, params, false, &a, &qs, &nq, &err);
    for (size_t i = 0; i < nq && !rc; i++) {
        if (!strcmp(qs[i].key, "consistency")) rc = api_consistency_parse(qs[i].value, &level, &err);
        else if (!strcmp(qs[i].value, "delete")) mode = MN_FORGET_DELETE;
        else if (!strcmp(qs[i].value, "suppress")) mode = MN_FORGET_SUPPRESS;
        else
            rc = mn_error_set(&err, MN_ERR_INVALID, "mode: must be delete or suppress, got "
                              "\"%.32s\"", qs[i].value);
    }
    api_arena_free(&a);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY)) return;
    mn_id_t id;
    if (!rest_path_id(req, &id, resp)) return;
    rc = mn_engine_forget(api->engine, req->params[0], &id, mode, &err);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY) ||
        !rest_write_settled(api, req->params[0], level, resp))
        return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "id");
    jw_id(&w, &id);
    jw_key(&w, "mode");
    jw_str(&w, mode == MN_FORGET_DELETE ? "delete" : "suppress");
    jw_key(&w, "forgotten");
    jw_bool(&w, true);
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

void rest_h_unsuppress(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_id_t id;
    if (!rest_query_none(req, resp, API_CTX_MEMORY) || !rest_path_id(req, &id, resp)) return;
    mn_error err = {0};
    mn_err rc = mn_engine_unsuppress(api->engine, req->params[0], &id, &err);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "id");
    jw_id(&w, &id);
    jw_key(&w, "suppressed");
    jw_bool(&w, false);
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}
