/* HTTP handlers for health, readiness, spaces, space stats and backups
 * (docs/api.md). They run on the libuv thread pool and call the blocking
 * engine directly; they only translate JSON <-> engine structs. */
#include "rest_internal.h"

#include "embed/embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rest_h_health(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)ctx;
    (void)req;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "status");
    jw_str(&w, "ok");
    jw_key(&w, "version");
    jw_str(&w, mn_api_version());
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

void rest_h_ready(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)req;
    mn_api_t *api = ctx;
    bool ready = !atomic_load(&api->draining);
    /* a salvaged node serves (its operator chose to), and says so */
    const char *salvaged = mn_engine_salvaged(api->engine);
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "ready");
    jw_bool(&w, ready);
    if (salvaged) {
        jw_key(&w, "salvaged");
        jw_bool(&w, true);
        jw_key(&w, "damage");
        jw_str(&w, salvaged);
    }
    jw_obj_end(&w);
    jw_respond(&w, resp, ready ? 200 : 503);
}

static void space_fields(api_jw *w, const mn_space_def_t *d)
{
    jw_key(w, "name");
    jw_str(w, d->name);
    jw_key(w, "dim");
    jw_uint(w, d->dim);
    jw_key(w, "metric");
    jw_str(w, mn_metric_name(d->metric));
    jw_key(w, "default_lifecycle");
    jw_str(w, mn_lifecycle_name(d->default_lifecycle ? d->default_lifecycle
                                                     : MN_LIFECYCLE_PERSISTENT));
    jw_key(w, "created_at");
    jw_time(w, d->created_at_ms);
    jw_key(w, "text_language");
    jw_str(w, d->text_language[0] ? d->text_language : "english");
    jw_key(w, "embedding_model"); /* the recorded one ("" = none), null: none recorded */
    if (d->embedding_model_set)
        jw_str(w, d->embedding_model);
    else
        jw_null(w);
    jw_key(w, "dedup");
    jw_str(w, mn_dedup_mode_name(d->dedup));
    jw_key(w, "dedup_threshold"); /* null: no near-duplicate links */
    if (d->dedup_threshold > 0)
        jw_float(w, d->dedup_threshold);
    else
        jw_null(w);
    jw_key(w, "index");
    jw_obj(w);
    jw_key(w, "m");
    jw_uint(w, d->index.m);
    jw_key(w, "ef_construction");
    jw_uint(w, d->index.ef_construction);
    jw_key(w, "ef_search");
    jw_uint(w, d->index.ef_search);
    jw_key(w, "quantize");
    jw_bool(w, d->index.quantize == MN_QUANTIZE_INT8);
    jw_obj_end(w);
}

/* The stats of a space; damage: what a salvage start dropped from it (NULL: nothing). */
static void stats_fields(api_jw *w, const mn_space_stats_t *s, const char *damage)
{
    jw_key(w, "memories");
    jw_uint(w, s->memories);
    jw_key(w, "episodic");
    jw_uint(w, s->episodic);
    jw_key(w, "semantic");
    jw_uint(w, s->semantic);
    jw_key(w, "suppressed");
    jw_uint(w, s->suppressed);
    jw_key(w, "tombstones");
    jw_uint(w, s->tombstones);
    jw_key(w, "epoch");
    jw_uint(w, s->epoch);
    jw_key(w, "last_lsn");
    jw_uint(w, s->last_lsn);
    jw_key(w, "wal_first_lsn");
    jw_uint(w, s->wal_first_lsn);
    jw_key(w, "vector_bytes");
    jw_uint(w, s->vector_bytes);
    jw_key(w, "index");
    jw_obj(w);
    jw_key(w, "state");
    jw_str(w, s->index_state ? s->index_state : "none");
    jw_key(w, "nodes");
    jw_uint(w, s->index_nodes);
    jw_key(w, "pending");
    jw_uint(w, s->index_pending);
    jw_obj_end(w);
    jw_key(w, "damaged");
    jw_bool(w, damage != NULL);
    jw_key(w, "damage");
    jw_str_or_null(w, damage);
}

static const char *const space_create_fields[] = {"name",
                                                  "dim",
                                                  "metric",
                                                  "default_lifecycle",
                                                  "text_language",
                                                  "embedding_model",
                                                  "index",
                                                  "dedup",
                                                  "dedup_threshold",
                                                  NULL};
static const char *const index_fields[] = {"m", "ef_construction", "ef_search", "quantize", NULL};

/* One optional positive integer of "index" (absent: the engine default; it checks ranges). */
static mn_err index_int(const cJSON *ix, const char *name, uint32_t *out, mn_error *err)
{
    bool has;
    int64_t v = 0;
    mn_err rc = api_get_int(ix, name, "index.", &has, &v, err);
    if (rc || !has) return rc;
    if (v < 1 || v > UINT32_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "index.%s: must be a positive integer, got %lld",
                            name, (long long)v);
    *out = (uint32_t)v;
    return MN_OK;
}

static mn_err index_def_from_json(const cJSON *o, mn_index_def_t *d, mn_error *err)
{
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(o, "index");
    if (!ix || cJSON_IsNull(ix)) return MN_OK;
    if (!cJSON_IsObject(ix)) return mn_error_set(err, MN_ERR_INVALID, "index: expected an object");
    mn_err rc = api_check_fields(ix, index_fields, "index.", err);
    if (!rc) rc = index_int(ix, "m", &d->m, err);
    if (!rc) rc = index_int(ix, "ef_construction", &d->ef_construction, err);
    if (!rc) rc = index_int(ix, "ef_search", &d->ef_search, err);
    bool has = false, q = false;
    if (!rc) rc = api_get_bool(ix, "quantize", "index.", &has, &q, err);
    if (!rc && has) d->quantize = q ? MN_QUANTIZE_INT8 : MN_QUANTIZE_NONE;
    return rc;
}

/* "dedup" (absent: exact) and "dedup_threshold" (absent or null: no near-duplicate
 * links; the engine checks the range). */
static mn_err dedup_def_from_json(const cJSON *o, mn_space_def_t *d, mn_error *err)
{
    const char *mode = NULL;
    mn_err rc = api_get_string(o, "dedup", "", &mode, err);
    if (rc) return rc;
    if (mode && mn_dedup_mode_parse(mode, &d->dedup))
        return mn_error_set(err, MN_ERR_INVALID,
                            "dedup: must be \"exact\" or \"off\", got \"%.32s\"", mode);
    bool has;
    return api_get_float(o, "dedup_threshold", "", &has, &d->dedup_threshold, err);
}

static mn_err space_def_from_json(const cJSON *o, mn_space_def_t *d, mn_error *err)
{
    memset(d, 0, sizeof *d);
    mn_err rc = api_check_fields(o, space_create_fields, "", err);
    if (rc) return rc;
    const char *name = NULL, *metric = NULL, *lifecycle = NULL;
    if ((rc = api_get_string(o, "name", "", &name, err))) return rc;
    if (!name) return mn_error_set(err, MN_ERR_INVALID, "name: required");
    /* the struct holds at most MN_SPACE_NAME_MAX bytes: never let a long name be cut */
    if (strlen(name) > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_INVALID,
                            "name: must match [a-z0-9][a-z0-9_-]{0,63}, got \"%.80s...\"", name);
    memcpy(d->name, name, strlen(name) + 1);
    bool has_dim;
    int64_t dim = 0;
    if ((rc = api_get_int(o, "dim", "", &has_dim, &dim, err))) return rc;
    if (!has_dim) return mn_error_set(err, MN_ERR_INVALID, "dim: required (1..%d)", MN_DIM_MAX);
    if (dim < 0 || dim > UINT32_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "dim: must be in 1..%d, got %lld", MN_DIM_MAX,
                            (long long)dim);
    d->dim = (uint32_t)dim;
    if ((rc = api_get_string(o, "metric", "", &metric, err))) return rc;
    d->metric = MN_METRIC_COSINE;
    if (metric && mn_metric_parse(metric, &d->metric))
        return mn_error_set(err, MN_ERR_INVALID,
                            "metric: must be cosine, l2 or dot, got "
                            "\"%.32s\"",
                            metric);
    if ((rc = api_get_string(o, "default_lifecycle", "", &lifecycle, err))) return rc;
    d->default_lifecycle = MN_LIFECYCLE_UNSET;
    if (lifecycle && mn_lifecycle_parse(lifecycle, &d->default_lifecycle))
        return mn_error_set(err, MN_ERR_INVALID,
                            "default_lifecycle: must be ephemeral, session or persistent, got "
                            "\"%.32s\"",
                            lifecycle);
    const char *lang = NULL; /* absent: english; the engine checks the name */
    if ((rc = api_get_string(o, "text_language", "", &lang, err))) return rc;
    if (lang && (!*lang || strlen(lang) > MN_TEXT_LANGUAGE_MAX))
        return mn_error_set(err, MN_ERR_INVALID, "text_language: \"%.16s\" is not one of %s", lang,
                            mn_engine_text_languages());
    if (lang) memcpy(d->text_language, lang, strlen(lang) + 1);
    const char *model = NULL; /* absent: the provider's when it applies (mn_embed_space_new) */
    if ((rc = api_get_string(o, "embedding_model", "", &model, err))) return rc;
    if (model) {
        if ((rc = mn_engine_embedding_model_check(model, strlen(model), err))) return rc;
        memcpy(d->embedding_model, model, strlen(model) + 1);
        d->embedding_model_set = true;
    }
    if ((rc = dedup_def_from_json(o, d, err))) return rc;
    return index_def_from_json(o, &d->index, err);
}

void rest_h_space_create(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    mn_error err = {0};
    mn_space_def_t def, out;
    mn_err rc = space_def_from_json(body, &def, &err);
    if (!rc) mn_embed_space_new(api->embed, &def);
    if (!rc) rc = mn_engine_space_create(api->engine, &def, &out, &err);
    api_json_free(body);
    if (rest_failed(resp, rc, &err, API_CTX_SPACE)) return;
    if (api->cluster && api->cluster->space_created)
        api->cluster->space_created(api->cluster->arg, out.name);
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    space_fields(&w, &out);
    jw_obj_end(&w);
    jw_respond(&w, resp, 201);
}

void rest_h_cluster_spaces(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    const api_cluster_hooks *h = api->cluster;
    if (!h || !h->cluster_spaces) {
        mn_http_respond_error(resp, 404, "not_found",
                              "this node runs alone ([cluster] enabled = false): it has no "
                              "placement table",
                              NULL);
        return;
    }
    if (!rest_query_none(req, resp, API_CTX_ADMIN)) return;
    int status = 0;
    mn_error err = {0};
    char *doc = h->cluster_spaces(h->arg, NULL, &status, &err);
    if (!doc)
        mn_http_respond_error(resp, status ? status : 503, "unavailable", err.message, NULL);
    else
        mn_http_respond(resp, 200, NULL, doc, strlen(doc));
    free(doc);
}

/* A cluster view for the MCP tools (the REST routes are the cluster's own): the hook's
 * document, or 404 naming what a single node lacks. */
static void cluster_view(mn_api_t *api, api_cluster_doc_fn fn, const char *lacks,
                         const mn_http_request_t *req, mn_http_response_t *resp)
{
    if (!api->cluster || !fn) {
        char msg[128];
        snprintf(msg, sizeof msg, "this node runs alone ([cluster] enabled = false): it has no %s",
                 lacks);
        mn_http_respond_error(resp, 404, "not_found", msg, NULL);
        return;
    }
    if (rest_query_none(req, resp, API_CTX_ADMIN)) api_respond_doc(resp, fn, api->cluster->arg);
}

void rest_h_cluster_gossip(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cluster_view(api, api->cluster ? api->cluster->cluster_gossip : NULL, "gossip", req, resp);
}

void rest_h_cluster_hints(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cluster_view(api, api->cluster ? api->cluster->cluster_hints : NULL, "hints", req, resp);
}

void rest_h_space_list(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    if (!rest_query_none(req, resp, API_CTX_SPACE)) return;
    mn_error err = {0};
    mn_space_def_t *defs = NULL;
    size_t n = 0;
    bool *held = NULL; /* cluster mode: every space of the catalog, held here or not */
    mn_err rc = api_space_list(api, &defs, &n, &held, &err);
    if (rest_failed(resp, rc, &err, API_CTX_SPACE)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "spaces");
    jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        jw_obj(&w);
        space_fields(&w, &defs[i]);
        if (held) {
            jw_key(&w, "held_here");
            jw_bool(&w, held[i]);
        }
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    free(defs);
    free(held);
    jw_respond(&w, resp, 200);
}

/* The space of the path and its stats: false when resp holds the error. */
static bool space_get(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp,
                      mn_space_stats_t *st)
{
    if (!rest_query_none(req, resp, API_CTX_SPACE)) return false;
    mn_error err = {0};
    mn_err rc = mn_engine_space_get(api->engine, req->params[0], st, &err);
    return !rest_failed(resp, rc, &err, API_CTX_SPACE);
}

void rest_h_space_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_space_stats_t st;
    if (!space_get(api, req, resp, &st)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    space_fields(&w, &st.def);
    /* the model that embeds its text-only memories and cues, or null ([embedding]) */
    jw_key(&w, "embedding_provider");
    const char *model = mn_embed_model_for(api->embed, &st.def);
    if (model) {
        jw_obj(&w);
        jw_key(&w, "model");
        jw_str(&w, model);
        jw_obj_end(&w);
    } else {
        jw_null(&w);
    }
    jw_key(&w, "stats");
    jw_obj(&w);
    stats_fields(&w, &st, mn_engine_space_damage(api->engine, st.def.name));
    jw_obj_end(&w);
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

void rest_h_space_stats(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_space_stats_t st;
    if (!space_get(api, req, resp, &st)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "name");
    jw_str(&w, st.def.name);
    stats_fields(&w, &st, mn_engine_space_damage(api->engine, st.def.name));
    jw_key(&w, "dim");
    jw_uint(&w, st.def.dim);
    jw_key(&w, "metric");
    jw_str(&w, mn_metric_name(st.def.metric));
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

void rest_h_space_drop(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    if (!rest_query_none(req, resp, API_CTX_SPACE)) return;
    mn_error err = {0};
    mn_err rc = mn_engine_space_drop(api->engine, req->params[0], &err);
    if (rest_failed(resp, rc, &err, API_CTX_SPACE)) return;
    if (api->cluster && api->cluster->space_dropped)
        api->cluster->space_dropped(api->cluster->arg, req->params[0]);
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "name");
    jw_str(&w, req->params[0]);
    jw_key(&w, "deleted");
    jw_bool(&w, true);
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

static const char *const checkpoint_fields[] = {"path", NULL};

void rest_h_checkpoint(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    mn_error err = {0};
    const char *path = NULL;
    mn_err rc = api_check_fields(body, checkpoint_fields, "", &err);
    if (!rc) rc = api_get_string(body, "path", "", &path, &err);
    if (!rc) rc = mn_engine_checkpoint(api->engine, path ? path : "", &err);
    if (rc) {
        api_json_free(body);
        /* EXISTS here is the target directory, not a space */
        api_respond_err(resp, rc, &err, API_CTX_ADMIN);
        return;
    }
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "path");
    jw_str(&w, path);
    jw_obj_end(&w);
    api_json_free(body);
    jw_respond(&w, resp, 201);
}
