/* protobuf (mnemo.v1) <-> engine structs for the gRPC door.
 *
 * Inputs point into the decoded request message (which outlives the engine
 * call) and the call's arena; nothing is copied that the engine copies anyway.
 * Outputs are protobuf-c messages built in the arena and packed before the
 * arena is freed. Scores the engine leaves NaN (not applicable) are left out,
 * as the HTTP API writes them as null. */
#include "grpc_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void *g_msg(api_arena *a, size_t size, void (*init)(void *))
{
    void *m = api_arena_alloc(a, size);
    if (m) init(m);
    return m;
}

void **g_ptrs(api_arena *a, size_t n)
{
    return n ? api_arena_alloc(a, n * sizeof(void *)) : NULL;
}

/* ---- ids and enums ---- */

mn_err g_id_in(const char *s, const char *field, mn_id_t *id, mn_error *err)
{
    if (!s || !*s) return mn_error_set(err, MN_ERR_INVALID, "%s: required (a memory id)", field);
    if (mn_id_parse(s, strlen(s), id))
        return mn_error_set(err, MN_ERR_INVALID, "%s: not a memory id", field);
    return MN_OK;
}

char *g_id_out(api_arena *a, const mn_id_t *id)
{
    char *s = api_arena_alloc(a, MN_ID_TEXT_LEN + 1);
    if (s) mn_id_format(id, s);
    return s;
}

mn_err g_kind_in(Mnemo__V1__Kind k, bool allow_any, int *out, const char *field, mn_error *err)
{
    switch (k) {
    case MNEMO__V1__KIND__KIND_UNSPECIFIED:
        *out = allow_any ? -1 : MN_KIND_EPISODIC;
        return MN_OK;
    case MNEMO__V1__KIND__KIND_EPISODIC:
        *out = MN_KIND_EPISODIC;
        return MN_OK;
    case MNEMO__V1__KIND__KIND_SEMANTIC:
        *out = MN_KIND_SEMANTIC;
        return MN_OK;
    default:
        return mn_error_set(err, MN_ERR_INVALID, "%s: unknown Kind %d", field, (int)k);
    }
}

Mnemo__V1__Kind g_kind_out(mn_kind_t k)
{
    return k == MN_KIND_SEMANTIC ? MNEMO__V1__KIND__KIND_SEMANTIC : MNEMO__V1__KIND__KIND_EPISODIC;
}

static const Mnemo__V1__EdgeKind edge_out[MN_EDGE_KINDS] = {
    [MN_EDGE_TEMPORAL] = MNEMO__V1__EDGE_KIND__EDGE_KIND_TEMPORAL,
    [MN_EDGE_SEMANTIC] = MNEMO__V1__EDGE_KIND__EDGE_KIND_SEMANTIC,
    [MN_EDGE_CAUSAL] = MNEMO__V1__EDGE_KIND__EDGE_KIND_CAUSAL,
    [MN_EDGE_EXPLICIT] = MNEMO__V1__EDGE_KIND__EDGE_KIND_EXPLICIT,
    [MN_EDGE_CONSOLIDATION] = MNEMO__V1__EDGE_KIND__EDGE_KIND_CONSOLIDATION,
    [MN_EDGE_DUPLICATE] = MNEMO__V1__EDGE_KIND__EDGE_KIND_DUPLICATE,
};

Mnemo__V1__EdgeKind g_edge_kind_out(uint8_t k)
{
    return k < MN_EDGE_KINDS ? edge_out[k] : MNEMO__V1__EDGE_KIND__EDGE_KIND_UNSPECIFIED;
}

mn_err g_edge_kind_in(Mnemo__V1__EdgeKind k, mn_edge_kind_t *out, const char *field, mn_error *err)
{
    if (k == MNEMO__V1__EDGE_KIND__EDGE_KIND_UNSPECIFIED) {
        *out = MN_EDGE_EXPLICIT;
        return MN_OK;
    }
    for (int i = 0; i < MN_EDGE_KINDS; i++)
        if (edge_out[i] == k) {
            *out = (mn_edge_kind_t)i;
            return MN_OK;
        }
    return mn_error_set(err, MN_ERR_INVALID, "%s: unknown EdgeKind %d", field, (int)k);
}

Mnemo__V1__Metric g_metric_out(mn_metric_t m)
{
    switch (m) {
    case MN_METRIC_L2:
        return MNEMO__V1__METRIC__METRIC_L2;
    case MN_METRIC_DOT:
        return MNEMO__V1__METRIC__METRIC_DOT;
    default:
        return MNEMO__V1__METRIC__METRIC_COSINE;
    }
}

mn_err g_metric_in(Mnemo__V1__Metric m, mn_metric_t *out, mn_error *err)
{
    switch (m) {
    case MNEMO__V1__METRIC__METRIC_UNSPECIFIED:
    case MNEMO__V1__METRIC__METRIC_COSINE:
        *out = MN_METRIC_COSINE;
        return MN_OK;
    case MNEMO__V1__METRIC__METRIC_L2:
        *out = MN_METRIC_L2;
        return MN_OK;
    case MNEMO__V1__METRIC__METRIC_DOT:
        *out = MN_METRIC_DOT;
        return MN_OK;
    default:
        return mn_error_set(err, MN_ERR_INVALID, "metric: unknown Metric %d", (int)m);
    }
}

Mnemo__V1__Lifecycle g_lifecycle_out(mn_lifecycle_t l)
{
    switch (l) {
    case MN_LIFECYCLE_EPHEMERAL:
        return MNEMO__V1__LIFECYCLE__LIFECYCLE_EPHEMERAL;
    case MN_LIFECYCLE_SESSION:
        return MNEMO__V1__LIFECYCLE__LIFECYCLE_SESSION;
    default:
        return MNEMO__V1__LIFECYCLE__LIFECYCLE_PERSISTENT;
    }
}

mn_err g_lifecycle_in(Mnemo__V1__Lifecycle l, mn_lifecycle_t *out, const char *field, mn_error *err)
{
    switch (l) {
    case MNEMO__V1__LIFECYCLE__LIFECYCLE_UNSPECIFIED:
        *out = MN_LIFECYCLE_UNSET;
        return MN_OK;
    case MNEMO__V1__LIFECYCLE__LIFECYCLE_EPHEMERAL:
        *out = MN_LIFECYCLE_EPHEMERAL;
        return MN_OK;
    case MNEMO__V1__LIFECYCLE__LIFECYCLE_SESSION:
        *out = MN_LIFECYCLE_SESSION;
        return MN_OK;
    case MNEMO__V1__LIFECYCLE__LIFECYCLE_PERSISTENT:
        *out = MN_LIFECYCLE_PERSISTENT;
        return MN_OK;
    default:
        return mn_error_set(err, MN_ERR_INVALID, "%s: unknown Lifecycle %d", field, (int)l);
    }
}

/* ---- memories ---- */

/* Metadata entries as engine pairs (a NULL value is ""). */
static mn_err kv_in(Mnemo__V1__MetadataEntry *const *in, size_t n, const char *field, api_arena *a,
                    mn_kv_t **out, size_t *n_out, mn_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (!n) return MN_OK;
    mn_kv_t *kv = api_arena_alloc(a, n * sizeof *kv);
    if (!kv) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!in[i]->key)
            return mn_error_set(err, MN_ERR_INVALID, "%s[%zu].key: required", field, i);
        kv[i].key = in[i]->key;
        kv[i].value = in[i]->value ? in[i]->value : "";
    }
    *out = kv;
    *n_out = n;
    return MN_OK;
}

mn_err g_memory_in(const Mnemo__V1__Memory *pm, const char *pfx, api_arena *a, mn_memory_t *m,
                   mn_error *err)
{
    mn_memory_init(m);
    if (!pm) return mn_error_set(err, MN_ERR_INVALID, "%smemory: required", pfx);
    if (pm->content) {
        m->content = pm->content;
        m->content_len = strlen(pm->content);
    }
    if (pm->n_embedding) {
        m->embedding = pm->embedding;
        m->dim = (uint32_t)(pm->n_embedding > UINT32_MAX ? UINT32_MAX : pm->n_embedding);
    }
    char field[48];
    int kind = MN_KIND_EPISODIC;
    mn_err rc;
    snprintf(field, sizeof field, "%skind", pfx);
    if (pm->has_kind && (rc = g_kind_in(pm->kind, false, &kind, field, err))) return rc;
    m->kind = (mn_kind_t)kind;
    if (pm->has_when_ms) m->when_ms = pm->when_ms;
    if (pm->has_confidence) m->confidence = pm->confidence;
    if (pm->has_importance) m->importance = pm->importance;
    if (pm->has_emotional_valence) m->emotional_valence = pm->emotional_valence;
    if (pm->context) {
        m->who = pm->context->who;
        m->n_who = pm->context->n_who;
        m->where = pm->context->where;
        m->session = pm->context->session;
    }
    m->tags = pm->tags;
    m->n_tags = pm->n_tags;
    snprintf(field, sizeof field, "%smetadata", pfx);
    if ((rc = kv_in(pm->metadata, pm->n_metadata, field, a, &m->metadata, &m->n_metadata, err)))
        return rc;
    snprintf(field, sizeof field, "%slifecycle", pfx);
    if (pm->has_lifecycle && (rc = g_lifecycle_in(pm->lifecycle, &m->lifecycle, field, err)))
        return rc;
    if (pm->has_ttl_seconds) {
        if (pm->ttl_seconds < 0)
            return mn_error_set(err, MN_ERR_INVALID,
                                "%sttl_seconds: must be >= 0 (0 = never expires)", pfx);
        m->ttl_seconds = pm->ttl_seconds;
    }
    m->idempotency_key = pm->idempotency_key;
    return MN_OK;
}

static Mnemo__V1__MetadataEntry **kv_out(api_arena *a, const mn_kv_t *kv, size_t n)
{
    Mnemo__V1__MetadataEntry **v = (Mnemo__V1__MetadataEntry **)g_ptrs(a, n);
    for (size_t i = 0; v && i < n; i++) {
        v[i] = G_NEW(a, Mnemo__V1__MetadataEntry, mnemo__v1__metadata_entry__init);
        if (!v[i]) return NULL;
        v[i]->key = kv[i].key;
        v[i]->value = kv[i].value;
    }
    return v;
}

/* Engine strings are copied into the arena: the engine's result is cleared before the
 * response is packed. */
static char *adup(api_arena *a, const char *s)
{
    return s ? api_arena_strndup(a, s, strlen(s)) : NULL;
}

static char **dup_all(api_arena *a, char *const *v, size_t n)
{
    char **out = (char **)g_ptrs(a, n);
    for (size_t i = 0; out && i < n; i++)
        out[i] = adup(a, v[i]);
    return out;
}

/* A memory's version fields (docs/api.md, "Corrections"); false when out of memory. */
static bool version_out(api_arena *a, const mn_memory_t *m, Mnemo__V1__Memory *pm)
{
    pm->has_version = pm->has_valid_from_ms = pm->has_valid_to_ms = pm->has_superseded = true;
    pm->version = m->version ? m->version : 1;
    pm->version_id = g_id_out(a, mn_id_is_zero(&m->version_id) ? &m->id : &m->version_id);
    if (!mn_id_is_zero(&m->supersedes) && !(pm->supersedes = g_id_out(a, &m->supersedes)))
        return false;
    pm->valid_from_ms = m->valid_from_ms ? m->valid_from_ms : m->created_at_ms;
    pm->valid_to_ms = m->valid_to_ms;
    pm->superseded = m->superseded;
    pm->changed = (char **)g_ptrs(a, MN_CHANGED_COUNT);
    for (unsigned b = 0; pm->changed && b < MN_CHANGED_COUNT; b++)
        if (m->changed & (1u << b)) pm->changed[pm->n_changed++] = (char *)mn_changed_name(b);
    pm->changed_by = adup(a, m->changed_by);
    if (!mn_id_is_zero(&m->invalidated_by))
        pm->invalidated_by = g_id_out(a, &m->invalidated_by);
    pm->invalid_reason = adup(a, m->invalid_reason);
    return pm->version_id && pm->changed;
}

Mnemo__V1__Memory *g_memory_out(api_arena *a, const mn_memory_t *m)
{
    Mnemo__V1__Memory *pm = G_NEW(a, Mnemo__V1__Memory, mnemo__v1__memory__init);
    if (!pm) return NULL;
    pm->id = g_id_out(a, &m->id);
    pm->has_kind = true;
    pm->kind = g_kind_out(m->kind);
    if (m->forgotten) { /* an as-of read's forgotten memory: what is left of it */
        pm->has_when_ms = pm->has_created_at_ms = true;
        pm->when_ms = m->when_ms;
        pm->created_at_ms = m->created_at_ms;
        pm->has_forgotten = pm->has_forgotten_at_ms = true;
        pm->forgotten = true;
        pm->forgotten_at_ms = m->forgotten_at_ms;
        return pm;
    }
    pm->content = m->content ? api_arena_strndup(a, m->content, m->content_len) : adup(a, "");
    if (m->embedding && m->dim) {
        pm->embedding = api_arena_alloc(a, m->dim * sizeof(float));
        if (pm->embedding) {
            memcpy(pm->embedding, m->embedding, m->dim * sizeof(float));
            pm->n_embedding = m->dim;
        }
    }
    pm->has_when_ms = pm->has_created_at_ms = true;
    pm->when_ms = m->when_ms;
    pm->created_at_ms = m->created_at_ms;
    pm->has_confidence = pm->has_importance = pm->has_emotional_valence = true;
    pm->confidence = m->confidence;
    pm->importance = m->importance;
    pm->emotional_valence = m->emotional_valence;
    pm->context = G_NEW(a, Mnemo__V1__Context, mnemo__v1__context__init);
    if (pm->context) {
        pm->context->who = dup_all(a, m->who, m->n_who);
        pm->context->n_who = pm->context->who ? m->n_who : 0;
        pm->context->where = adup(a, m->where);
        pm->context->session = adup(a, m->session);
    }
    pm->tags = dup_all(a, m->tags, m->n_tags);
    pm->n_tags = pm->tags ? m->n_tags : 0;
    if (m->n_metadata) {
        mn_kv_t *kv = api_arena_alloc(a, m->n_metadata * sizeof *kv);
        for (size_t i = 0; kv && i < m->n_metadata; i++) {
            kv[i].key = adup(a, m->metadata[i].key);
            kv[i].value = adup(a, m->metadata[i].value);
        }
        pm->metadata = kv ? kv_out(a, kv, m->n_metadata) : NULL;
        pm->n_metadata = pm->metadata ? m->n_metadata : 0;
    }
    pm->has_lifecycle = true;
    pm->lifecycle = g_lifecycle_out(m->lifecycle);
    pm->has_expires_at_ms = true;
    pm->expires_at_ms = m->expires_at_ms;
    pm->has_suppressed = true;
    pm->suppressed = m->suppressed;
    if (m->kind == MN_KIND_SEMANTIC) {
        pm->support = (char **)g_ptrs(a, m->n_support);
        for (size_t i = 0; pm->support && i < m->n_support; i++)
            pm->support[i] = g_id_out(a, &m->support[i]);
        pm->n_support = pm->support ? m->n_support : 0;
    } else {
        pm->has_consolidated = true;
        pm->consolidated = m->consolidated;
    }
    pm->has_stability_days = pm->has_last_access_ms = pm->has_access_count = true;
    pm->stability_days = m->stability_days;
    pm->last_access_ms = m->last_access_ms;
    pm->access_count = m->access_count;
    return version_out(a, m, pm) ? pm : NULL;
}

/* ---- corrections ---- */

/* UpdateMemory's clear: the fields it names are given, empty. */
static mn_err clear_in(char *const *names, size_t n, mn_update_req_t *u, mn_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = names[i];
        if (!strcmp(f, "tags")) u->has_tags = true;
        else if (!strcmp(f, "metadata")) u->has_metadata = true;
        else if (!strcmp(f, "context.who")) u->has_who = true;
        else if (!strcmp(f, "context.where")) u->has_where = true;
        else if (!strcmp(f, "context.session")) u->has_session = true;
        else
            return mn_error_set(err, MN_ERR_INVALID,
                                "clear[%zu]: \"%.32s\" is not one of tags, metadata, "
                                "context.who, context.where, context.session",
                                i, f);
    }
    return MN_OK;
}

mn_err g_update_in(const Mnemo__V1__UpdateMemoryRequest *q, api_arena *a, mn_update_req_t *u,
                   mn_error *err)
{
    mn_err rc = clear_in(q->clear, q->n_clear, u, err);
    if (rc) return rc;
    if (q->content) u->content = q->content, u->content_len = strlen(q->content);
    if (q->n_embedding) u->embedding = q->embedding, u->dim = (uint32_t)q->n_embedding;
    if (q->n_tags) u->has_tags = true, u->tags = q->tags, u->n_tags = q->n_tags;
    if (q->n_metadata) {
        u->has_metadata = true;
        rc = kv_in(q->metadata, q->n_metadata, "metadata", a, &u->metadata, &u->n_metadata, err);
        if (rc) return rc;
    }
    if (q->has_importance) u->has_importance = true, u->importance = q->importance;
    if (q->context) {
        if (q->context->n_who) u->has_who = true, u->who = q->context->who;
        u->n_who = q->context->n_who;
        if (q->context->where) u->has_where = true, u->where = q->context->where;
        if (q->context->session) u->has_session = true, u->session = q->context->session;
    }
    if (q->has_expected_version && !q->expected_version)
        return mn_error_set(err, MN_ERR_INVALID, "expected_version: must be a version number >= 1");
    if (q->has_expected_version) u->expected_version = q->expected_version;
    u->idempotency_key = q->idempotency_key;
    return MN_OK;
}

/* ---- filters ---- */

mn_err g_filter_in(const Mnemo__V1__Filter *pf, api_arena *a, mn_filter_t *f, mn_error *err)
{
    if (!pf) return MN_OK;
    f->tags_any = pf->tags_any;
    f->n_tags_any = pf->n_tags_any;
    f->tags_all = pf->tags_all;
    f->n_tags_all = pf->n_tags_all;
    mn_err rc = kv_in(pf->metadata, pf->n_metadata, "filter.metadata", a, &f->metadata,
                      &f->n_metadata, err);
    if (rc) return rc;
    if (pf->has_kind && (rc = g_kind_in(pf->kind, true, &f->kind, "filter.kind", err))) return rc;
    if (pf->has_when_from_ms) f->when_from_ms = pf->when_from_ms;
    if (pf->has_when_to_ms) f->when_to_ms = pf->when_to_ms;
    if (pf->has_min_confidence) f->min_confidence = pf->min_confidence;
    if (pf->has_include_suppressed) f->include_suppressed = pf->include_suppressed;
    f->who = pf->who;
    f->where = pf->where;
    f->session = pf->session;
    if (pf->has_as_of_ms) f->as_of_ms = pf->as_of_ms;
    return pf->expr ? api_filter_from_text(pf->expr, strlen(pf->expr), a, f, err) : MN_OK;
}

/* ---- recall hits and spaces ---- */

#define SET_IF_NUM(msg, field, v)                                                                  \
    do {                                                                                           \
        if (!isnan(v)) {                                                                           \
            (msg)->has_##field = true;                                                             \
            (msg)->field = (v);                                                                    \
        }                                                                                          \
    } while (0)

Mnemo__V1__RecallHit *g_hit_out(api_arena *a, const mn_recall_hit_t *h, bool spread, bool trace)
{
    Mnemo__V1__RecallHit *ph = G_NEW(a, Mnemo__V1__RecallHit, mnemo__v1__recall_hit__init);
    if (!ph) return NULL;
    ph->id = g_id_out(a, &h->memory.id);
    SET_IF_NUM(ph, score, h->score);
    SET_IF_NUM(ph, distance, h->distance);
    SET_IF_NUM(ph, similarity, h->similarity);
    SET_IF_NUM(ph, keyword, h->keyword);
    SET_IF_NUM(ph, coverage, h->coverage);
    SET_IF_NUM(ph, retention, h->retention);
    if (spread) {
        SET_IF_NUM(ph, activation, h->activation);
        ph->has_seed = true;
        ph->seed = h->seed;
    }
    if (trace && h->n_via) {
        size_t n = h->n_via < MN_MAX_HOPS ? h->n_via : MN_MAX_HOPS;
        ph->via = (Mnemo__V1__ViaStep **)g_ptrs(a, n);
        for (size_t i = 0; ph->via && i < n; i++) {
            Mnemo__V1__ViaStep *s = G_NEW(a, Mnemo__V1__ViaStep, mnemo__v1__via_step__init);
            if (!s) return NULL;
            s->from = g_id_out(a, &h->via[i].from);
            s->has_kind = s->has_weight = true;
            s->kind = g_edge_kind_out(h->via[i].kind);
            s->weight = h->via[i].weight;
            ph->via[i] = s;
        }
        ph->n_via = ph->via ? n : 0;
    }
    Mnemo__V1__Confidence *c = G_NEW(a, Mnemo__V1__Confidence, mnemo__v1__confidence__init);
    if (c) {
        c->has_value = true;
        c->value = h->confidence.value;
        c->category = (char *)(h->confidence.category ? h->confidence.category : "very_low");
        size_t n = 0;
        for (unsigned b = 0; b < MN_REASON_COUNT; b++)
            n += (h->confidence.reasons >> b) & 1u;
        c->reasons = (char **)g_ptrs(a, n);
        for (unsigned b = 0; c->reasons && b < MN_REASON_COUNT; b++)
            if (h->confidence.reasons & (1u << b))
                c->reasons[c->n_reasons++] = (char *)mn_reason_name(b);
    }
    ph->confidence = c;
    ph->has_duplicates = true;
    ph->duplicates = h->duplicates;
    if (h->duplicates && !(ph->duplicate_ids = (char **)g_ptrs(a, h->duplicates))) return NULL;
    for (uint32_t i = 0; i < h->duplicates; i++)
        if (!(ph->duplicate_ids[ph->n_duplicate_ids++] = g_id_out(a, &h->duplicate_ids[i])))
            return NULL;
    ph->memory = g_memory_out(a, &h->memory);
    return ph;
}

Mnemo__V1__Space *g_space_out(api_arena *a, const mn_space_def_t *d)
{
    Mnemo__V1__Space *s = G_NEW(a, Mnemo__V1__Space, mnemo__v1__space__init);
    if (!s) return NULL;
    s->name = adup(a, d->name);
    s->has_dim = s->has_metric = s->has_default_lifecycle = s->has_created_at_ms = true;
    s->dim = d->dim;
    s->metric = g_metric_out(d->metric);
    s->default_lifecycle =
        g_lifecycle_out(d->default_lifecycle ? d->default_lifecycle : MN_LIFECYCLE_PERSISTENT);
    s->created_at_ms = d->created_at_ms;
    s->text_language = adup(a, d->text_language[0] ? d->text_language : "english");
    if (!s->text_language) return NULL;
    if (d->embedding_model_set && !(s->embedding_model = adup(a, d->embedding_model))) return NULL;
    s->dedup = (char *)mn_dedup_mode_name(d->dedup);
    s->has_dedup_threshold = d->dedup_threshold > 0;
    s->dedup_threshold = d->dedup_threshold;
    Mnemo__V1__IndexParams *ix = G_NEW(a, Mnemo__V1__IndexParams, mnemo__v1__index_params__init);
    if (!ix) return NULL;
    ix->has_m = ix->has_ef_construction = ix->has_ef_search = ix->has_quantize = true;
    ix->m = d->index.m;
    ix->ef_construction = d->index.ef_construction;
    ix->ef_search = d->index.ef_search;
    ix->quantize = d->index.quantize == MN_QUANTIZE_INT8;
    s->index = ix;
    return s;
}
