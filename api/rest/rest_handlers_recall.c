/* HTTP handler for recall: a cue (embedding, text or both) plus filters in,
 * ranked memories with their confidence out (docs/api.md, "Recall").
 *
 * Scores, distances and the per-cue figures are NaN in the engine when they do
 * not apply (a text-only hit has no distance); they are written as null. */
#include "rest_internal.h"

#include "embed/embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const recall_fields[] = {
    "embedding", "text", "weights", "k", "threshold", "tags_any", "tags_all", "metadata",
    "kind", "when", "min_confidence", "include_suppressed", "who", "where", "session",
    "include_embedding", "spread", "max_hops", "hop_decay", "min_activation", "max_visited",
    "trace", "reinforce", "exact", "ef", "as_of", "time", "time_boost", "time_ref", "filter",
    "collapse_duplicates", "read", "timeout_ms", NULL};
static const char *const weight_fields[] = {"vector", "text", NULL};

mn_err rest_recall_req_from_json(const cJSON *o, api_arena *a, mn_recall_req_t *r, mn_error *err)
{
    memset(r, 0, sizeof *r);
    mn_filter_init(&r->filter);
    mn_err rc = api_check_fields(o, recall_fields, "", err);
    api_read_pref pref; /* where to read (cluster mode): used by the routing step */
    if (!rc) rc = rest_read_body(o, &pref, err);
    if (rc) return rc;
    int64_t timeout_ms; /* the routing step's bound (cluster mode): checked here */
    bool has_timeout;
    if ((rc = api_get_int(o, "timeout_ms", "", &has_timeout, &timeout_ms, err))) return rc;
    if (has_timeout && (timeout_ms < 1 || timeout_ms > REST_RECALL_TIMEOUT_MAX_MS))
        return mn_error_set(err, MN_ERR_INVALID, "timeout_ms: must be in 1..%d, got %lld",
                            REST_RECALL_TIMEOUT_MAX_MS, (long long)timeout_ms);
    float *emb = NULL;
    if ((rc = api_get_floats(o, "embedding", "", a, &emb, &r->dim, err))) return rc;
    r->embedding = emb;
    const char *text = NULL;
    if ((rc = api_get_string(o, "text", "", &text, err))) return rc;
    if (text) {
        r->text = text;
        r->text_len = strlen(text);
    }
    const cJSON *wts = cJSON_GetObjectItemCaseSensitive(o, "weights");
    if (wts && !cJSON_IsNull(wts)) {
        if (!cJSON_IsObject(wts))
            return mn_error_set(err, MN_ERR_INVALID,
                                "weights: expected an object {\"vector\": ..., \"text\": ...}");
        if ((rc = api_check_fields(wts, weight_fields, "weights.", err))) return rc;
        bool hv, ht;
        if ((rc = api_get_float(wts, "vector", "weights.", &hv, &r->vector_weight, err)))
            return rc;
        if ((rc = api_get_float(wts, "text", "weights.", &ht, &r->text_weight, err))) return rc;
        /* one weight given: the other keeps its default of 1 */
        if (hv && !ht) r->text_weight = 1;
        if (ht && !hv) r->vector_weight = 1;
    }
    bool has_k;
    int64_t k = 10;
    if ((rc = api_get_int(o, "k", "", &has_k, &k, err))) return rc;
    if (k < 1 || k > MN_K_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..%d, got %lld", MN_K_MAX,
                            (long long)k);
    r->k = (uint32_t)k;
    if ((rc = api_get_float(o, "threshold", "", &r->has_threshold, &r->threshold, err)))
        return rc;
    if ((rc = rest_filter_from_json(o, a, &r->filter, err))) return rc;
    if ((rc = api_get_bool(o, "include_embedding", "", NULL, &r->include_embedding, err)))
        return rc;
    r->spread = true; /* spreading activation is on unless the request turns it off */
    if ((rc = api_get_bool(o, "spread", "", NULL, &r->spread, err))) return rc;
    bool has;
    int64_t v;
    if ((rc = api_get_int(o, "max_hops", "", &has, &v, err))) return rc;
    if (has) {
        if (v < 1 || v > MN_MAX_HOPS)
            return mn_error_set(err, MN_ERR_INVALID, "max_hops: must be in 1..%d", MN_MAX_HOPS);
        r->max_hops = (uint32_t)v;
    }
    if ((rc = api_get_float(o, "hop_decay", "", NULL, &r->hop_decay, err))) return rc;
    if ((rc = api_get_float(o, "min_activation", "", NULL, &r->min_activation, err))) return rc;
    if ((rc = api_get_int(o, "max_visited", "", &has, &v, err))) return rc;
    if (has) {
        if (v < 1 || v > 100000)
            return mn_error_set(err, MN_ERR_INVALID, "max_visited: must be in 1..100000");
        r->max_visited = (uint32_t)v;
    }
    if ((rc = api_get_bool(o, "trace", "", NULL, &r->trace, err))) return rc;
    if ((rc = api_get_bool(o, "reinforce", "", NULL, &r->reinforce, err))) return rc;
    if ((rc = api_get_bool(o, "exact", "", NULL, &r->exact, err))) return rc;
    bool collapse = true;
    if ((rc = api_get_bool(o, "collapse_duplicates", "", NULL, &collapse, err))) return rc;
    r->keep_duplicates = !collapse;
    if ((rc = api_get_int(o, "ef", "", &has, &v, err))) return rc;
    if (has) {
        if (v < 1 || v > 4096) return mn_error_set(err, MN_ERR_INVALID, "ef: must be in 1..4096");
        r->ef = (uint32_t)v;
    }
    return rest_recall_time_from_json(o, r, err);
}

mn_err rest_recall_time_from_json(const cJSON *o, mn_recall_req_t *r, mn_error *err)
{
    /* a time the text names boosts the memories of then unless turned off */
    r->time = MN_RECALL_TIME_BOOST;
    const char *time = NULL;
    mn_err rc = api_get_string(o, "time", "", &time, err);
    if (rc) return rc;
    if (time && mn_recall_time_parse(time, &r->time))
        return mn_error_set(err, MN_ERR_INVALID,
                            "time: must be \"boost\", \"filter\" or \"off\", got \"%.32s\"",
                            time);
    bool has_boost;
    if ((rc = api_get_float(o, "time_boost", "", &has_boost, &r->time_boost, err))) return rc;
    if (has_boost && r->time_boost == 0) /* 0 would mean the default in the engine */
        return mn_error_set(err, MN_ERR_INVALID, "time_boost: must be in 1..%g",
                            (double)MN_RECALL_TIME_BOOST_MAX);
    return api_get_time(o, "time_ref", "", &r->has_time_ref, &r->time_ref_ms, err);
}

void rest_time_window_to_json(api_jw *w, const mn_recall_result_t *res)
{
    jw_key(w, "time_window");
    if (!res->has_time_window) {
        jw_null(w);
        return;
    }
    jw_obj(w);
    jw_key(w, "text");
    jw_str(w, res->time_window.text);
    jw_key(w, "from");
    if (res->time_window.has_from)
        jw_time(w, res->time_window.from_ms);
    else
        jw_null(w);
    jw_key(w, "to");
    if (res->time_window.has_to)
        jw_time(w, res->time_window.to_ms);
    else
        jw_null(w);
    jw_key(w, "unit");
    jw_str(w, res->time_window.unit);
    jw_key(w, "applied");
    jw_str(w, res->time_window.applied);
    jw_obj_end(w);
}

void rest_hit_to_json(api_jw *w, const mn_recall_hit_t *h, bool spread, bool trace)
{
    rest_hit_in_space_to_json(w, h, NULL, spread, trace);
}

void rest_hit_in_space_to_json(api_jw *w, const mn_recall_hit_t *h, const char *space, bool spread,
                               bool trace)
{
    jw_obj(w);
    jw_key(w, "id");
    jw_id(w, &h->memory.id);
    if (space) {
        jw_key(w, "space");
        jw_str(w, space);
    }
    jw_key(w, "score");
    jw_float(w, h->score);
    jw_key(w, "distance");
    jw_float(w, h->distance);
    jw_key(w, "similarity");
    jw_float(w, h->similarity);
    jw_key(w, "keyword");
    jw_float(w, h->keyword);
    jw_key(w, "coverage");
    jw_float(w, h->coverage);
    jw_key(w, "retention");
    jw_float(w, h->retention);
    if (spread) {
        jw_key(w, "activation");
        jw_float(w, h->activation);
        jw_key(w, "seed");
        jw_bool(w, h->seed);
    }
    if (trace) {
        jw_key(w, "via");
        jw_arr(w);
        for (uint32_t i = 0; i < h->n_via && i < MN_MAX_HOPS; i++) {
            jw_obj(w);
            jw_key(w, "from");
            jw_id(w, &h->via[i].from);
            jw_key(w, "kind");
            jw_str(w, mn_edge_kind_name((mn_edge_kind_t)h->via[i].kind));
            jw_key(w, "weight");
            jw_float(w, h->via[i].weight);
            jw_obj_end(w);
        }
        jw_arr_end(w);
    }
    jw_key(w, "duplicates"); /* near-duplicates folded into this hit */
    jw_uint(w, h->duplicates);
    if (h->duplicates) {
        jw_key(w, "duplicate_ids");
        jw_arr(w);
        for (uint32_t i = 0; i < h->duplicates; i++)
            jw_id(w, &h->duplicate_ids[i]);
        jw_arr_end(w);
    }
    jw_key(w, "confidence");
    jw_obj(w);
    jw_key(w, "value");
    jw_float(w, h->confidence.value);
    jw_key(w, "category");
    jw_str(w, h->confidence.category ? h->confidence.category : "very_low");
    jw_key(w, "reasons");
    jw_arr(w);
    for (unsigned b = 0; b < MN_REASON_COUNT; b++)
        if (h->confidence.reasons & (1u << b)) jw_str(w, mn_reason_name(b));
    jw_arr_end(w);
    jw_obj_end(w);
    jw_key(w, "memory");
    rest_memory_to_json(w, &h->memory);
    jw_obj_end(w);
}

void rest_h_recall(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body_in_space(api, req, resp);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_recall_req_t r;
    mn_recall_result_t res = {0};
    int64_t t0 = mn_time_mono_ns();
    mn_err rc = rest_recall_req_from_json(body, &a, &r, &err);
    /* a text-only cue in a space with an embedding provider: its vector too (or words only,
     * said on every hit, when the provider cannot answer in time) */
    if (!rc) rc = mn_embed_recall(api->embed, api->engine, req->params[0], &r, &res, &err);
    double took_ms = (double)(mn_time_mono_ns() - t0) / 1e6;
    if (rest_done(resp, body, &a, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "results");
    jw_arr(&w);
    for (size_t i = 0; i < res.n_hits; i++)
        rest_hit_to_json(&w, &res.hits[i], r.spread, r.trace);
    jw_arr_end(&w);
    jw_key(&w, "path");
    jw_str(&w, res.path ? res.path : "exact");
    jw_key(&w, "recall_confidence");
    jw_float(&w, res.recall_confidence);
    jw_key(&w, "scanned");
    jw_uint(&w, res.scanned);
    rest_time_window_to_json(&w, &res);
    jw_key(&w, "took_ms");
    jw_double(&w, took_ms, 4);
    jw_obj_end(&w);
    mn_recall_result_clear(&res);
    jw_respond(&w, resp, 200);
}
