/* The methods of mnemo.v1.Mnemo (api/proto/mnemo/v1/mnemo.proto): one table
 * row each (path, shape, request type, auth operation, what a NOT_FOUND is about,
 * handler), and the handlers. A handler turns the decoded request into the
 * engine's request, makes one engine call and builds the response in the
 * call's arena. Results the engine returns are copied into the arena before
 * they are released. */
#include "grpc_internal.h"

#include "embed/embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OOM(err) mn_error_set((err), MN_ERR_NOMEM, "out of memory")
#define REQ(T, r) const T *q = (const T *)(r)

static const char *space_of(const char *s)
{
    return s ? s : "";
}

/* ---- service and spaces ---- */

static mn_err m_health(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    (void)r;
    Mnemo__V1__HealthResponse *o =
        G_NEW(&c->arena, Mnemo__V1__HealthResponse, mnemo__v1__health_response__init);
    if (!o) return OOM(err);
    o->status = "ok";
    o->version = (char *)mn_api_version();
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_create_space(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                             mn_error *err)
{
    REQ(Mnemo__V1__CreateSpaceRequest, r);
    mn_space_def_t def, out;
    memset(&def, 0, sizeof def);
    if (!q->name) return mn_error_set(err, MN_ERR_INVALID, "name: required");
    if (strlen(q->name) > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_INVALID,
                            "name: must match [a-z0-9][a-z0-9_-]{0,63}, got \"%.80s...\"", q->name);
    memcpy(def.name, q->name, strlen(q->name) + 1);
    if (!q->has_dim) return mn_error_set(err, MN_ERR_INVALID, "dim: required (1..%d)", MN_DIM_MAX);
    def.dim = q->dim;
    mn_err rc;
    if (q->has_metric && (rc = g_metric_in(q->metric, &def.metric, err))) return rc;
    if (q->has_default_lifecycle &&
        (rc = g_lifecycle_in(q->default_lifecycle, &def.default_lifecycle, "default_lifecycle",
                             err)))
        return rc;
    if (q->text_language) { /* absent: english; the engine checks the name */
        if (!*q->text_language || strlen(q->text_language) > MN_TEXT_LANGUAGE_MAX)
            return mn_error_set(err, MN_ERR_INVALID, "text_language: \"%.16s\" is not one of %s",
                                q->text_language, mn_engine_text_languages());
        memcpy(def.text_language, q->text_language, strlen(q->text_language) + 1);
    }
    if (q->embedding_model) { /* absent: the provider's when it applies */
        size_t n = strlen(q->embedding_model);
        if ((rc = mn_engine_embedding_model_check(q->embedding_model, n, err))) return rc;
        memcpy(def.embedding_model, q->embedding_model, n + 1);
        def.embedding_model_set = true;
    }
    if (q->dedup && mn_dedup_mode_parse(q->dedup, &def.dedup)) /* absent: exact */
        return mn_error_set(err, MN_ERR_INVALID,
                            "dedup: must be \"exact\" or \"off\", got \"%.32s\"", q->dedup);
    if (q->has_dedup_threshold) def.dedup_threshold = q->dedup_threshold; /* the engine checks */
    if (q->index) { /* absent: the engine default; the engine checks ranges */
        const Mnemo__V1__IndexParams *x = q->index;
        if ((x->has_m && !x->m) || (x->has_ef_construction && !x->ef_construction) ||
            (x->has_ef_search && !x->ef_search))
            return mn_error_set(err, MN_ERR_INVALID,
                                "index: m, ef_construction and ef_search "
                                "must be positive when given");
        if (x->has_m) def.index.m = x->m;
        if (x->has_ef_construction) def.index.ef_construction = x->ef_construction;
        if (x->has_ef_search) def.index.ef_search = x->ef_search;
        if (q->index->has_quantize)
            def.index.quantize = q->index->quantize ? MN_QUANTIZE_INT8 : MN_QUANTIZE_NONE;
    }
    mn_embed_space_new(c->api->embed, &def);
    if ((rc = mn_engine_space_create(c->api->engine, &def, &out, err))) return rc;
    if (c->api->cluster && c->api->cluster->space_created)
        c->api->cluster->space_created(c->api->cluster->arg, out.name);
    Mnemo__V1__Space *s = g_space_out(&c->arena, &out);
    if (!s) return OOM(err);
    *resp = &s->base;
    return MN_OK;
}

static mn_err m_list_spaces(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                            mn_error *err)
{
    (void)r;
    mn_space_def_t *defs = NULL;
    size_t n = 0;
    mn_err rc = api_space_list(c->api, &defs, &n, NULL, err);
    if (rc) return rc;
    Mnemo__V1__ListSpacesResponse *o =
        G_NEW(&c->arena, Mnemo__V1__ListSpacesResponse, mnemo__v1__list_spaces_response__init);
    if (o && n) o->spaces = (Mnemo__V1__Space **)g_ptrs(&c->arena, n);
    for (size_t i = 0; o && o->spaces && i < n; i++)
        if ((o->spaces[i] = g_space_out(&c->arena, &defs[i]))) o->n_spaces++;
    free(defs);
    if (!o || o->n_spaces != n) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_stats(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    REQ(Mnemo__V1__SpaceRequest, r);
    mn_space_stats_t st;
    mn_err rc = mn_engine_space_get(c->api->engine, space_of(q->space), &st, err);
    if (rc) return rc;
    Mnemo__V1__SpaceStats *o =
        G_NEW(&c->arena, Mnemo__V1__SpaceStats, mnemo__v1__space_stats__init);
    if (!o || !(o->space = g_space_out(&c->arena, &st.def))) return OOM(err);
    o->has_memories = o->has_episodic = o->has_semantic = o->has_suppressed = true;
    o->has_tombstones = o->has_epoch = o->has_last_lsn = o->has_wal_first_lsn = true;
    o->has_vector_bytes = o->has_index_nodes = o->has_index_pending = true;
    o->memories = st.memories;
    o->episodic = st.episodic;
    o->semantic = st.semantic;
    o->suppressed = st.suppressed;
    o->tombstones = st.tombstones;
    o->epoch = st.epoch;
    o->last_lsn = st.last_lsn;
    o->wal_first_lsn = st.wal_first_lsn;
    o->vector_bytes = st.vector_bytes;
    o->index_state = (char *)(st.index_state ? st.index_state : "none");
    o->index_nodes = st.index_nodes;
    o->index_pending = st.index_pending;
    o->embedding_model = (char *)mn_embed_model_for(c->api->embed, &st.def); /* NULL: none */
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_drop_space(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                           mn_error *err)
{
    REQ(Mnemo__V1__SpaceRequest, r);
    mn_err rc = mn_engine_space_drop(c->api->engine, space_of(q->space), err);
    if (rc) return rc;
    if (c->api->cluster && c->api->cluster->space_dropped)
        c->api->cluster->space_dropped(c->api->cluster->arg, space_of(q->space));
    Mnemo__V1__DropSpaceResponse *o =
        G_NEW(&c->arena, Mnemo__V1__DropSpaceResponse, mnemo__v1__drop_space_response__init);
    if (!o) return OOM(err);
    o->name = q->space ? api_arena_strndup(&c->arena, q->space, strlen(q->space)) : "";
    o->has_deleted = true;
    o->deleted = true;
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_checkpoint(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                           mn_error *err)
{
    REQ(Mnemo__V1__CheckpointRequest, r);
    if (!q->path || !*q->path) return mn_error_set(err, MN_ERR_INVALID, "path: required");
    mn_err rc = mn_engine_checkpoint(c->api->engine, q->path, err);
    if (rc) return rc;
    Mnemo__V1__CheckpointResponse *o =
        G_NEW(&c->arena, Mnemo__V1__CheckpointResponse, mnemo__v1__checkpoint_response__init);
    if (!o || !(o->path = api_arena_strndup(&c->arena, q->path, strlen(q->path)))) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

/* ---- memories ---- */

static mn_err m_remember(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    REQ(Mnemo__V1__RememberRequest, r);
    mn_memory_t m;
    mn_id_t id;
    bool dup = false;
    mn_err rc = g_memory_in(q->memory, "", &c->arena, &m, err);
    const api_cluster_hooks *h = c->api->cluster;
    if (!rc && c->hint_base) /* the primary is unreachable: kept here (docs/gossip.md) */
        rc = h && h->hint_remember
                 ? h->hint_remember(h->arg, space_of(q->space), &m, 1, c->hint_base, &id, err)
                 : mn_error_set(err, MN_ERR_UNAVAILABLE, "partition writes are not kept here");
    else if (!rc && c->ids) {
        m.id = *c->ids;
        m.created_at_ms = mn_id_time_ms(c->ids);
        rc = mn_engine_remember_hinted(c->api->engine, space_of(q->space), &m, 1, &id, &dup, err);
    } else if (!rc)
        rc = mn_engine_remember_dedup(c->api->engine, space_of(q->space), &m, 1, &id, &dup, err);
    if (rc == MN_ERR_LIMIT && c->hint_base) /* full: unavailable, as the REST door says */
        rc = MN_ERR_UNAVAILABLE;
    if (rc) return rc;
    if (!c->hint_base)
        mn_embed_remembered(c->api->embed, space_of(q->space), &m, &id, 1); /* text: later */
    Mnemo__V1__RememberResponse *o =
        G_NEW(&c->arena, Mnemo__V1__RememberResponse, mnemo__v1__remember_response__init);
    if (!o || !(o->id = g_id_out(&c->arena, &id))) return OOM(err);
    if (c->hint_base) {
        o->accepted = (char *)"partition";
        o->has_merged = true;
        o->merged = false;
    }
    if (dup) o->duplicate_of = o->id;
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_remember_batch(gctx *c, ProtobufCMessage *const *rs, size_t n,
                               ProtobufCMessage **resp, mn_error *err)
{
    mn_memory_t *mems = api_arena_alloc(&c->arena, n * sizeof *mems);
    mn_id_t *ids = api_arena_alloc(&c->arena, n * sizeof *ids);
    bool *dups = api_arena_alloc(&c->arena, n * sizeof *dups);
    if (!mems || !ids || !dups) return OOM(err);
    const char *space = space_of(((const Mnemo__V1__RememberRequest *)rs[0])->space);
    for (size_t i = 0; i < n; i++) {
        const Mnemo__V1__RememberRequest *q = (const Mnemo__V1__RememberRequest *)rs[i];
        if (i && strcmp(space_of(q->space), space))
            return mn_error_set(err, MN_ERR_INVALID,
                                "memories[%zu].space: \"%.64s\", the stream is for \"%.64s\"", i,
                                space_of(q->space), space);
        char pfx[32];
        snprintf(pfx, sizeof pfx, "memories[%zu].", i);
        mn_err rc = g_memory_in(q->memory, pfx, &c->arena, &mems[i], err);
        if (rc) return rc;
    }
    mn_err rc = mn_engine_remember_dedup(c->api->engine, space, mems, n, ids, dups, err);
    if (rc) return rc;
    mn_embed_remembered(c->api->embed, space, mems, ids, n); /* text-only: later */
    Mnemo__V1__RememberBatchResponse *o = G_NEW(&c->arena, Mnemo__V1__RememberBatchResponse,
                                                mnemo__v1__remember_batch_response__init);
    if (!o || !(o->ids = (char **)g_ptrs(&c->arena, n))) return OOM(err);
    if (!(o->duplicate_of = (char **)g_ptrs(&c->arena, n))) return OOM(err);
    for (size_t i = 0; i < n; i++) {
        if (!(o->ids[i] = g_id_out(&c->arena, &ids[i]))) return OOM(err);
        o->duplicate_of[i] = dups[i] ? o->ids[i] : (char *)""; /* "": stored */
    }
    o->n_ids = o->n_duplicate_of = n;
    *resp = &o->base;
    return MN_OK;
}

/* The memory the engine returned, as the response (it is cleared). */
static mn_err memory_resp(gctx *c, mn_memory_t *m, ProtobufCMessage **resp, mn_error *err)
{
    Mnemo__V1__Memory *o = g_memory_out(&c->arena, m);
    mn_memory_clear(m);
    if (!o) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_get_memory(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                           mn_error *err)
{
    REQ(Mnemo__V1__GetMemoryRequest, r);
    mn_id_t id;
    mn_err rc = g_id_in(q->id, "id", &id, err);
    if (rc) return rc;
    mn_memory_t m;
    memset(&m, 0, sizeof m);
    rc = mn_engine_get(c->api->engine, space_of(q->space), &id,
                       q->has_include_embedding && q->include_embedding, &m, err);
    if (rc) return rc;
    return memory_resp(c, &m, resp, err);
}

/* ---- corrections ---- */

static mn_err m_update_memory(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                              mn_error *err)
{
    REQ(Mnemo__V1__UpdateMemoryRequest, r);
    mn_id_t id;
    mn_update_req_t u;
    memset(&u, 0, sizeof u);
    mn_err rc = g_id_in(q->id, "id", &id, err);
    if (!rc) rc = g_update_in(q, &c->arena, &u, err);
    if (rc) return rc;
    u.by = c->key_name;
    u.drop_embedding = u.content && !u.embedding && mn_embed_space_uses(c->api->embed, space_of(q->space));
    mn_memory_t m;
    if ((rc = mn_engine_update(c->api->engine, space_of(q->space), &id, &u, &m, err))) return rc;
    if (u.drop_embedding) mn_embed_remembered(c->api->embed, space_of(q->space), &m, &m.version_id, 1);
    return memory_resp(c, &m, resp, err);
}

static mn_err m_memory_history(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                               mn_error *err)
{
    REQ(Mnemo__V1__MemoryRequest, r);
    mn_id_t id;
    mn_err rc = g_id_in(q->id, "id", &id, err);
    if (rc) return rc;
    mn_memory_t *vs;
    size_t n;
    if ((rc = mn_engine_history(c->api->engine, space_of(q->space), &id, &vs, &n, err))) return rc;
    Mnemo__V1__MemoryHistoryResponse *o = G_NEW(&c->arena, Mnemo__V1__MemoryHistoryResponse,
                                                mnemo__v1__memory_history_response__init);
    if (o) o->id = g_id_out(&c->arena, &id);
    if (o) o->versions = (Mnemo__V1__Memory **)g_ptrs(&c->arena, n);
    for (size_t i = 0; i < n; i++) {
        if (o && o->versions && (o->versions[o->n_versions] = g_memory_out(&c->arena, &vs[i])))
            o->n_versions++;
        mn_memory_clear(&vs[i]);
    }
    free(vs);
    if (!o || !o->id || o->n_versions != n) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_invalidate_memory(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                                  mn_error *err)
{
    REQ(Mnemo__V1__InvalidateMemoryRequest, r);
    mn_id_t id, by;
    mn_err rc = g_id_in(q->id, "id", &id, err);
    if (!rc && q->by) rc = g_id_in(q->by, "by", &by, err);
    if (rc) return rc;
    mn_memory_t m;
    if ((rc = mn_engine_invalidate(c->api->engine, space_of(q->space), &id, q->by ? &by : NULL,
                                   q->reason, &m, err)))
        return rc;
    return memory_resp(c, &m, resp, err);
}

/* A limit of 0 is refused: proto3 cannot tell it from an unset one, and the engine would
 * read it as its default. */
static mn_err limit_in(protobuf_c_boolean has, uint32_t limit, mn_error *err)
{
    if (has && limit == 0)
        return mn_error_set(err, MN_ERR_INVALID, "limit: must be in 1..1000, got 0");
    return MN_OK;
}

/* The memories of a list result as a repeated Memory field. */
static mn_err memories_out(gctx *c, const mn_list_result_t *lr, Mnemo__V1__Memory ***out, size_t *n,
                           mn_error *err)
{
    *out = (Mnemo__V1__Memory **)g_ptrs(&c->arena, lr->n);
    if (lr->n && !*out) return OOM(err);
    for (size_t i = 0; i < lr->n; i++)
        if (!((*out)[i] = g_memory_out(&c->arena, &lr->memories[i]))) return OOM(err);
    *n = lr->n;
    return MN_OK;
}

static mn_err m_list_memories(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                              mn_error *err)
{
    REQ(Mnemo__V1__ListMemoriesRequest, r);
    mn_list_req_t lr;
    memset(&lr, 0, sizeof lr);
    mn_filter_init(&lr.filter);
    mn_err rc = g_filter_in(q->filter, &c->arena, &lr.filter, err);
    if (rc) return rc;
    lr.limit = q->has_limit ? q->limit : 0;
    if ((rc = limit_in(q->has_limit, q->limit, err))) return rc;
    lr.cursor = q->cursor && *q->cursor ? q->cursor : NULL;
    lr.include_embedding = q->has_include_embedding && q->include_embedding;
    mn_list_result_t res;
    memset(&res, 0, sizeof res);
    if ((rc = mn_engine_list(c->api->engine, space_of(q->space), &lr, &res, err))) return rc;
    Mnemo__V1__ListMemoriesResponse *o =
        G_NEW(&c->arena, Mnemo__V1__ListMemoriesResponse, mnemo__v1__list_memories_response__init);
    rc = o ? memories_out(c, &res, &o->memories, &o->n_memories, err) : OOM(err);
    if (!rc && res.next && !(o->next = api_arena_strndup(&c->arena, res.next, strlen(res.next))))
        rc = OOM(err);
    mn_list_result_clear(&res);
    if (!rc) *resp = &o->base;
    return rc;
}

static mn_err m_forget(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    REQ(Mnemo__V1__ForgetRequest, r);
    mn_id_t id;
    mn_err rc = g_id_in(q->id, "id", &id, err);
    if (rc) return rc;
    mn_forget_mode_t mode = MN_FORGET_DELETE;
    if (q->has_mode) {
        if (q->mode == MNEMO__V1__FORGET_MODE__FORGET_MODE_SUPPRESS)
            mode = MN_FORGET_SUPPRESS;
        else if (q->mode != MNEMO__V1__FORGET_MODE__FORGET_MODE_DELETE &&
                 q->mode != MNEMO__V1__FORGET_MODE__FORGET_MODE_UNSPECIFIED)
            return mn_error_set(err, MN_ERR_INVALID, "mode: unknown ForgetMode %d", (int)q->mode);
    }
    if ((rc = mn_engine_forget(c->api->engine, space_of(q->space), &id, mode, err))) return rc;
    Mnemo__V1__ForgetResponse *o =
        G_NEW(&c->arena, Mnemo__V1__ForgetResponse, mnemo__v1__forget_response__init);
    if (!o || !(o->id = g_id_out(&c->arena, &id))) return OOM(err);
    o->has_mode = o->has_forgotten = true;
    o->mode = mode == MN_FORGET_SUPPRESS ? MNEMO__V1__FORGET_MODE__FORGET_MODE_SUPPRESS
                                         : MNEMO__V1__FORGET_MODE__FORGET_MODE_DELETE;
    o->forgotten = true;
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_unsuppress(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                           mn_error *err)
{
    REQ(Mnemo__V1__MemoryRequest, r);
    mn_id_t id;
    mn_err rc = g_id_in(q->id, "id", &id, err);
    if (!rc) rc = mn_engine_unsuppress(c->api->engine, space_of(q->space), &id, err);
    if (rc) return rc;
    Mnemo__V1__UnsuppressResponse *o =
        G_NEW(&c->arena, Mnemo__V1__UnsuppressResponse, mnemo__v1__unsuppress_response__init);
    if (!o || !(o->id = g_id_out(&c->arena, &id))) return OOM(err);
    o->has_suppressed = true;
    o->suppressed = false;
    *resp = &o->base;
    return MN_OK;
}

/* ---- recall ---- */

mn_err g_recall_in(gctx *c, const Mnemo__V1__RecallRequest *q, mn_recall_req_t *rr, mn_error *err)
{
    memset(rr, 0, sizeof *rr);
    mn_filter_init(&rr->filter);
    if (q->n_embedding) {
        rr->embedding = q->embedding;
        rr->dim = (uint32_t)(q->n_embedding > UINT32_MAX ? UINT32_MAX : q->n_embedding);
    }
    if (q->text) {
        rr->text = q->text;
        rr->text_len = strlen(q->text);
    }
    if (q->has_vector_weight || q->has_text_weight) {
        /* one weight given: the other keeps its default of 1 */
        rr->vector_weight = q->has_vector_weight ? q->vector_weight : 1;
        rr->text_weight = q->has_text_weight ? q->text_weight : 1;
    }
    rr->k = q->has_k ? q->k : 0;
    if (q->has_k && q->k == 0)
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..%d, got 0", MN_K_MAX);
    rr->has_threshold = q->has_threshold;
    rr->threshold = q->threshold;
    rr->include_embedding = q->has_include_embedding && q->include_embedding;
    rr->spread = q->has_spread ? q->spread : true;
    rr->max_hops = q->max_hops;
    rr->hop_decay = q->hop_decay;
    rr->min_activation = q->min_activation;
    rr->max_visited = q->max_visited;
    rr->trace = q->has_trace && q->trace;
    rr->reinforce = q->has_reinforce && q->reinforce;
    rr->exact = q->has_exact && q->exact;
    rr->keep_duplicates = q->has_collapse_duplicates && !q->collapse_duplicates;
    rr->ef = q->ef;
    rr->time = MN_RECALL_TIME_BOOST; /* as over HTTP */
    if (q->time && mn_recall_time_parse(q->time, &rr->time))
        return mn_error_set(err, MN_ERR_INVALID,
                            "time: must be \"boost\", \"filter\" or \"off\", got \"%.32s\"",
                            q->time);
    rr->time_boost = q->has_time_boost ? q->time_boost : 0;
    if (q->has_time_boost && q->time_boost == 0)
        return mn_error_set(err, MN_ERR_INVALID, "time_boost: must be in 1..%g",
                            (double)MN_RECALL_TIME_BOOST_MAX);
    rr->has_time_ref = q->has_time_ref_ms;
    rr->time_ref_ms = q->time_ref_ms;
    return g_filter_in(q->filter, &c->arena, &rr->filter, err);
}

/* The time window the text named (absent when none). */
mn_err g_time_window_out(gctx *c, const mn_recall_result_t *res, Mnemo__V1__TimeWindow **out,
                         mn_error *err)
{
    if (!res->has_time_window) return MN_OK;
    Mnemo__V1__TimeWindow *t =
        G_NEW(&c->arena, Mnemo__V1__TimeWindow, mnemo__v1__time_window__init);
    if (!t) return OOM(err);
    t->text = api_arena_strndup(&c->arena, res->time_window.text, strlen(res->time_window.text));
    if (!t->text) return OOM(err);
    t->has_from_ms = res->time_window.has_from;
    t->from_ms = res->time_window.from_ms;
    t->has_to_ms = res->time_window.has_to;
    t->to_ms = res->time_window.to_ms;
    t->unit = (char *)res->time_window.unit;
    t->applied = (char *)res->time_window.applied;
    *out = t;
    return MN_OK;
}

/* Recall hits as a repeated RecallHit field. */
static mn_err hits_out(gctx *c, const mn_recall_result_t *res, bool spread, bool trace,
                       Mnemo__V1__RecallHit ***out, size_t *n, mn_error *err)
{
    *out = (Mnemo__V1__RecallHit **)g_ptrs(&c->arena, res->n_hits);
    if (res->n_hits && !*out) return OOM(err);
    for (size_t i = 0; i < res->n_hits; i++)
        if (!((*out)[i] = g_hit_out(&c->arena, &res->hits[i], spread, trace))) return OOM(err);
    *n = res->n_hits;
    return MN_OK;
}

/* Every hit says stale_replica (its copy was more than API_STALE_REPLICA_MS behind). */
static mn_err mark_stale(gctx *c, Mnemo__V1__RecallResponse *o, mn_error *err)
{
    o->has_replica_lag_ms = true;
    o->replica_lag_ms = c->replica_lag_ms;
    for (size_t i = 0; i < o->n_results; i++) {
        Mnemo__V1__Confidence *conf = o->results[i]->confidence;
        if (!conf) continue;
        char **r = (char **)g_ptrs(&c->arena, conf->n_reasons + 1);
        if (!r) return OOM(err);
        if (conf->n_reasons) memcpy(r, conf->reasons, conf->n_reasons * sizeof *r);
        r[conf->n_reasons++] = "stale_replica";
        conf->reasons = r;
    }
    return MN_OK;
}

/* The RecallResponse of res (partition: the partition mode's reason, or NULL). */
static mn_err recall_out(gctx *c, const mn_recall_req_t *rr, const mn_recall_result_t *res,
                         int64_t t0, const char *partition, ProtobufCMessage **resp, mn_error *err)
{
    Mnemo__V1__RecallResponse *o =
        G_NEW(&c->arena, Mnemo__V1__RecallResponse, mnemo__v1__recall_response__init);
    mn_err rc =
        o ? hits_out(c, res, rr->spread, rr->trace, &o->results, &o->n_results, err) : OOM(err);
    if (rc) return rc;
    o->path = (char *)(res->path ? res->path : "exact");
    o->has_recall_confidence = o->has_scanned = o->has_took_ms = true;
    o->recall_confidence = res->recall_confidence;
    o->scanned = res->scanned;
    o->took_ms = (double)(mn_time_mono_ns() - t0) / 1e6;
    if (!partition && c->replica_lag_ms > API_STALE_REPLICA_MS && (rc = mark_stale(c, o, err)))
        return rc;
    if (partition) {
        Mnemo__V1__PartitionInfo *p =
            G_NEW(&c->arena, Mnemo__V1__PartitionInfo, mnemo__v1__partition_info__init);
        if (!p) return OOM(err);
        p->episodes = "unreachable";
        p->reason = (char *)partition;
        p->cue = rr->embedding && rr->text ? "embedding+text"
                 : rr->embedding           ? "embedding"
                                           : "text";
        o->partition = p;
    }
    rc = g_time_window_out(c, res, &o->time_window, err);
    if (!rc) *resp = &o->base;
    return rc;
}

/* No copy of the space answered (gctx.partition): the answer of this node's gossiped
 * semantic memories of it (docs/gossip.md, "Partition mode"), or UNAVAILABLE. */
static mn_err recall_partition(gctx *c, const Mnemo__V1__RecallRequest *q,
                               const mn_recall_req_t *rr, mn_recall_result_t *res, mn_error *err)
{
    const api_cluster_hooks *h = c->api->cluster;
    mn_error why = {0};
    mn_err rc = h && h->partition_recall
                    ? h->partition_recall(h->arg, space_of(q->space), rr, res, &why)
                    : mn_error_set(&why, MN_ERR_NOT_FOUND, "this node keeps no gossiped memories");
    if (rc == MN_ERR_NOT_FOUND || rc == MN_ERR_UNAVAILABLE || rc == MN_ERR_UNSUPPORTED)
        return mn_error_set(err, MN_ERR_UNAVAILABLE, "%.300s; %.400s", c->partition, why.message);
    if (rc) *err = why;
    return rc;
}

static mn_err m_recall(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    REQ(Mnemo__V1__RecallRequest, r);
    mn_recall_req_t rr;
    mn_recall_result_t res;
    memset(&res, 0, sizeof res);
    int64_t t0 = mn_time_mono_ns();
    mn_err rc = g_recall_in(c, q, &rr, err);
    if (!rc && c->partition) rc = recall_partition(c, q, &rr, &res, err);
    /* a text-only cue in a space with an embedding provider: its vector too (api/embed) */
    else if (!rc)
        rc = mn_embed_recall(c->api->embed, c->api->engine, space_of(q->space), &rr, &res, err);
    if (!rc) rc = recall_out(c, &rr, &res, t0, c->partition, resp, err);
    mn_recall_result_clear(&res);
    return rc;
}

/* ---- cognitive operations ---- */

static mn_err m_associate(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                          mn_error *err)
{
    REQ(Mnemo__V1__AssociateRequest, r);
    if (q->n_edges < 1 || q->n_edges > MN_BATCH_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "edges: %zu in one request, must be 1..%d",
                            q->n_edges, MN_BATCH_MAX);
    mn_edge_t *edges = api_arena_alloc(&c->arena, q->n_edges * sizeof *edges);
    if (!edges) return OOM(err);
    for (size_t i = 0; i < q->n_edges; i++) {
        const Mnemo__V1__Edge *pe = q->edges[i];
        char f[40];
        mn_err rc;
        snprintf(f, sizeof f, "edges[%zu].from", i);
        if ((rc = g_id_in(pe->from, f, &edges[i].from, err))) return rc;
        snprintf(f, sizeof f, "edges[%zu].to", i);
        if ((rc = g_id_in(pe->to, f, &edges[i].to, err))) return rc;
        mn_edge_kind_t k = MN_EDGE_EXPLICIT;
        snprintf(f, sizeof f, "edges[%zu].kind", i);
        if (pe->has_kind && (rc = g_edge_kind_in(pe->kind, &k, f, err))) return rc;
        edges[i].kind = (uint8_t)k;
        edges[i].weight = pe->has_weight ? pe->weight : 1.0f;
    }
    mn_err rc = mn_engine_associate(c->api->engine, space_of(q->space), edges, q->n_edges, err);
    if (rc) return rc;
    Mnemo__V1__AssociateResponse *o =
        G_NEW(&c->arena, Mnemo__V1__AssociateResponse, mnemo__v1__associate_response__init);
    if (!o) return OOM(err);
    o->has_created = true;
    o->created = (uint32_t)q->n_edges;
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_associations(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                             mn_error *err)
{
    REQ(Mnemo__V1__MemoryRequest, r);
    mn_id_t id;
    mn_err rc = g_id_in(q->id, "id", &id, err);
    mn_assoc_t *as = NULL;
    size_t n = 0;
    if (!rc) rc = mn_engine_associations(c->api->engine, space_of(q->space), &id, &as, &n, err);
    if (rc) return rc;
    Mnemo__V1__ListAssociationsResponse *o = G_NEW(&c->arena, Mnemo__V1__ListAssociationsResponse,
                                                   mnemo__v1__list_associations_response__init);
    if (o && n) o->associations = (Mnemo__V1__Association **)g_ptrs(&c->arena, n);
    for (size_t i = 0; o && o->associations && i < n; i++) {
        Mnemo__V1__Association *pa =
            G_NEW(&c->arena, Mnemo__V1__Association, mnemo__v1__association__init);
        if (!pa || !(pa->id = g_id_out(&c->arena, &as[i].other))) break;
        pa->has_kind = pa->has_outgoing = pa->has_weight = true;
        pa->kind = g_edge_kind_out(as[i].kind);
        pa->outgoing = as[i].outgoing;
        pa->weight = as[i].weight;
        o->associations[o->n_associations++] = pa;
    }
    free(as);
    if (!o || o->n_associations != n) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_consolidate(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                            mn_error *err)
{
    REQ(Mnemo__V1__ConsolidateRequest, r);
    mn_consolidate_opts_t opts = {0};
    /* ranges are the engine's to judge (mn_engine_consolidate), as for every door */
    if (q->has_threshold) opts.threshold = q->threshold;
    if (q->has_min_support) opts.min_support = q->min_support;
    mn_filter_t f;
    mn_filter_init(&f);
    mn_err rc = g_filter_in(q->filter, &c->arena, &f, err);
    if (rc) return rc;
    if (q->filter) opts.filter = &f;
    mn_consolidate_result_t res = {0};
    rc = mn_engine_consolidate(c->api->engine, space_of(q->space), &opts, &res, err);
    if (rc) return rc;
    Mnemo__V1__ConsolidateResponse *o =
        G_NEW(&c->arena, Mnemo__V1__ConsolidateResponse, mnemo__v1__consolidate_response__init);
    if (o) {
        o->has_candidates = o->has_created = o->has_updated = o->has_episodes = true;
        o->has_retired = o->has_skipped = true;
        o->retired = res.retired;
        o->skipped = res.skipped;
        o->candidates = res.candidates;
        o->created = res.created;
        o->updated = res.updated;
        o->episodes = res.episodes;
        o->ids = (char **)g_ptrs(&c->arena, res.n_ids);
        for (size_t i = 0; o->ids && i < res.n_ids; i++)
            if ((o->ids[i] = g_id_out(&c->arena, &res.ids[i]))) o->n_ids++;
    }
    size_t want = res.n_ids;
    free(res.ids);
    if (!o || o->n_ids != want) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_recognize(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                          mn_error *err)
{
    REQ(Mnemo__V1__RecognizeRequest, r);
    mn_recognize_req_t rr;
    memset(&rr, 0, sizeof rr);
    mn_filter_init(&rr.filter);
    if (q->n_embedding) {
        rr.embedding = q->embedding;
        rr.dim = (uint32_t)(q->n_embedding > UINT32_MAX ? UINT32_MAX : q->n_embedding);
    }
    if (q->text) {
        rr.text = q->text;
        rr.text_len = strlen(q->text);
    }
    if (q->has_threshold) rr.threshold = q->threshold; /* its range is the engine's to judge */
    mn_err rc = g_filter_in(q->filter, &c->arena, &rr.filter, err);
    if (!rc && !rr.embedding && !rr.text)
        rc = mn_error_set(err, MN_ERR_INVALID, "a cue needs an embedding, text, or both");
    mn_recognize_result_t res = {0};
    if (!rc) rc = mn_engine_recognize(c->api->engine, space_of(q->space), &rr, &res, err);
    if (rc) return rc;
    Mnemo__V1__RecognizeResponse *o =
        G_NEW(&c->arena, Mnemo__V1__RecognizeResponse, mnemo__v1__recognize_response__init);
    if (!o) return OOM(err);
    o->has_recognized = o->has_familiarity = true;
    o->recognized = res.recognized;
    o->familiarity = res.familiarity;
    if (res.has_best && !(o->best = g_id_out(&c->arena, &res.best))) return OOM(err);
    *resp = &o->base;
    return MN_OK;
}

static mn_err m_reminisce(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                          mn_error *err)
{
    REQ(Mnemo__V1__ReminisceRequest, r);
    mn_reminisce_req_t rr;
    memset(&rr, 0, sizeof rr);
    mn_filter_init(&rr.filter);
    mn_err rc = g_filter_in(q->filter, &c->arena, &rr.filter, err);
    if (rc) return rc;
    if (q->topic) {
        rr.topic = q->topic;
        rr.topic_len = strlen(q->topic);
    }
    if ((rc = limit_in(q->has_limit, q->limit, err))) return rc;
    rr.limit = q->limit;
    rr.include_embedding = q->has_include_embedding && q->include_embedding;
    mn_list_result_t res;
    memset(&res, 0, sizeof res);
    if ((rc = mn_engine_reminisce(c->api->engine, space_of(q->space), &rr, &res, err))) return rc;
    Mnemo__V1__ReminisceResponse *o =
        G_NEW(&c->arena, Mnemo__V1__ReminisceResponse, mnemo__v1__reminisce_response__init);
    rc = o ? memories_out(c, &res, &o->memories, &o->n_memories, err) : OOM(err);
    mn_list_result_clear(&res);
    if (!rc) *resp = &o->base;
    return rc;
}

static mn_err m_complete(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    REQ(Mnemo__V1__CompleteRequest, r);
    mn_memory_t partial;
    mn_err rc = g_memory_in(q->partial, "partial.", &c->arena, &partial, err);
    if (rc) return rc;
    if (q->has_k && (q->k == 0 || q->k > 100))
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..100, got %u", q->k);
    mn_complete_result_t res;
    memset(&res, 0, sizeof res);
    rc = mn_engine_complete(c->api->engine, space_of(q->space), &partial, q->has_k ? q->k : 5, &res,
                            err);
    if (rc) return rc;
    Mnemo__V1__CompleteResponse *o =
        G_NEW(&c->arena, Mnemo__V1__CompleteResponse, mnemo__v1__complete_response__init);
    rc = o ? hits_out(c, &res.candidates, false, false, &o->candidates, &o->n_candidates, err)
           : OOM(err);
    if (!rc && res.n_fields) {
        size_t n = res.n_fields < MN_FIELD_COUNT ? res.n_fields : MN_FIELD_COUNT;
        o->fields = (Mnemo__V1__FieldGuess **)g_ptrs(&c->arena, n);
        for (size_t i = 0; o->fields && i < n; i++) {
            Mnemo__V1__FieldGuess *fg =
                G_NEW(&c->arena, Mnemo__V1__FieldGuess, mnemo__v1__field_guess__init);
            if (!fg) break;
            fg->field = (char *)mn_field_name(res.fields[i].field);
            if (res.fields[i].value)
                fg->value =
                    api_arena_strndup(&c->arena, res.fields[i].value, strlen(res.fields[i].value));
            fg->has_confidence = true;
            fg->confidence = res.fields[i].confidence;
            o->fields[o->n_fields++] = fg;
        }
        if (o->n_fields != n) rc = OOM(err);
    }
    mn_complete_result_clear(&res);
    if (!rc) *resp = &o->base;
    return rc;
}

/* ---- the table ---- */

#define P(name) "/mnemo.v1.Mnemo/" name
#define D(type) &mnemo__v1__##type##__descriptor

static const g_method methods[] = {
    {P("Health"), G_UNARY, D(health_request), MN_AUTH_OP_PROBE, API_CTX_ADMIN, m_health, NULL},
    {P("CreateSpace"), G_UNARY, D(create_space_request), MN_AUTH_OP_SPACE_CREATE, API_CTX_SPACE,
     m_create_space, NULL},
    {P("ListSpaces"), G_UNARY, D(list_spaces_request), MN_AUTH_OP_SPACE_LIST, API_CTX_SPACE, m_list_spaces,
     NULL},
    {P("GetSpace"), G_UNARY, D(space_request), MN_AUTH_OP_SPACE_READ, API_CTX_SPACE, m_stats, NULL},
    {P("DropSpace"), G_UNARY, D(space_request), MN_AUTH_OP_SPACE_DROP, API_CTX_SPACE, m_drop_space, NULL},
    {P("Stats"), G_UNARY, D(space_request), MN_AUTH_OP_SPACE_READ, API_CTX_SPACE, m_stats, NULL},
    {P("Remember"), G_UNARY, D(remember_request), MN_AUTH_OP_REMEMBER, API_CTX_SPACE, m_remember, NULL},
    {P("RememberBatch"), G_CLIENT_STREAM, D(remember_request), MN_AUTH_OP_REMEMBER, API_CTX_SPACE, NULL,
     m_remember_batch},
    {P("GetMemory"), G_UNARY, D(get_memory_request), MN_AUTH_OP_MEMORY_READ, API_CTX_MEMORY, m_get_memory,
     NULL},
    {P("ListMemories"), G_UNARY, D(list_memories_request), MN_AUTH_OP_MEMORY_READ, API_CTX_SPACE,
     m_list_memories, NULL},
    {P("Forget"), G_UNARY, D(forget_request), MN_AUTH_OP_FORGET, API_CTX_MEMORY, m_forget, NULL},
    {P("Unsuppress"), G_UNARY, D(memory_request), MN_AUTH_OP_FORGET, API_CTX_MEMORY, m_unsuppress,
     NULL},
    {P("UpdateMemory"), G_UNARY, D(update_memory_request), MN_AUTH_OP_REMEMBER, API_CTX_MEMORY,
     m_update_memory, NULL},
    {P("MemoryHistory"), G_UNARY, D(memory_request), MN_AUTH_OP_MEMORY_READ, API_CTX_MEMORY,
     m_memory_history, NULL},
    {P("InvalidateMemory"), G_UNARY, D(invalidate_memory_request), MN_AUTH_OP_REMEMBER,
     API_CTX_MEMORY, m_invalidate_memory, NULL},
    {P("ForgetWhere"), G_UNARY, D(forget_where_request), MN_AUTH_OP_FORGET, API_CTX_SPACE,
     g_m_forget_where, NULL},
    {P("GetJob"), G_UNARY, D(job_request), MN_AUTH_OP_FORGET, API_CTX_ADMIN, g_m_get_job, NULL},
    {P("CancelJob"), G_UNARY, D(job_request), MN_AUTH_OP_FORGET, API_CTX_ADMIN, g_m_cancel_job,
     NULL},
    {P("Recall"), G_UNARY, D(recall_request), MN_AUTH_OP_RECALL, API_CTX_SPACE, m_recall, NULL},
    {P("RecallMany"), G_UNARY, D(recall_many_request), MN_AUTH_OP_RECALL, API_CTX_SPACE,
     g_m_recall_many, NULL},
    {P("Associate"), G_UNARY, D(associate_request), MN_AUTH_OP_ASSOCIATE, API_CTX_MEMORY, m_associate,
     NULL},
    {P("ListAssociations"), G_UNARY, D(memory_request), MN_AUTH_OP_MEMORY_READ, API_CTX_MEMORY,
     m_associations, NULL},
    {P("Consolidate"), G_UNARY, D(consolidate_request), MN_AUTH_OP_CONSOLIDATE, API_CTX_SPACE, m_consolidate,
     NULL},
    {P("Recognize"), G_UNARY, D(recognize_request), MN_AUTH_OP_RECALL, API_CTX_SPACE, m_recognize, NULL},
    {P("Reminisce"), G_UNARY, D(reminisce_request), MN_AUTH_OP_RECALL, API_CTX_SPACE, m_reminisce, NULL},
    {P("Complete"), G_UNARY, D(complete_request), MN_AUTH_OP_RECALL, API_CTX_SPACE, m_complete, NULL},
    {P("Watch"), G_SERVER_STREAM, D(watch_request), MN_AUTH_OP_EVENTS, API_CTX_SPACE, NULL, NULL},
    {P("Checkpoint"), G_UNARY, D(checkpoint_request), MN_AUTH_OP_ADMIN, API_CTX_ADMIN, m_checkpoint,
     NULL},
    {P("ClusterSpaces"), G_UNARY, D(cluster_spaces_request), MN_AUTH_OP_ADMIN, API_CTX_ADMIN,
     g_m_cluster_spaces, NULL},
    {P("ClusterGossip"), G_UNARY, D(cluster_gossip_request), MN_AUTH_OP_ADMIN, API_CTX_ADMIN,
     g_m_cluster_gossip, NULL},
    {P("ClusterHints"), G_UNARY, D(cluster_hints_request), MN_AUTH_OP_ADMIN, API_CTX_ADMIN,
     g_m_cluster_hints, NULL},
};

const g_method *g_method_find(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].path) == len && !memcmp(methods[i].path, path, len))
            return &methods[i];
    return NULL;
}

const g_method *g_methods_all(size_t *n)
{
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
