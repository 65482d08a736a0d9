/* JSON <-> engine structs for memories and filters (the shapes of docs/api.md).
 *
 * Input memories point into the cJSON tree and the request arena: nothing is
 * copied that the engine will copy anyway, and everything is freed with the
 * request. Only types are checked here; the engine checks values and names the
 * field in its message, with the same "memories[i]." prefix in batches. */
#include "rest_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const memory_fields[] = {
    "content", "embedding", "kind", "when", "confidence", "importance", "emotional_valence",
    "context", "tags", "metadata", "lifecycle", "ttl_seconds", "idempotency_key",
    "consistency", /* the request's, read by the remember handler (never per memory) */
    NULL};
static const char *const context_fields[] = {"who", "where", "session", NULL};

static mn_err read_context(const cJSON *o, const char *pfx, api_arena *a, mn_memory_t *m,
                           mn_error *err)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "context");
    if (!c || cJSON_IsNull(c)) return MN_OK;
    if (!cJSON_IsObject(c))
        return mn_error_set(err, MN_ERR_INVALID, "%scontext: expected an object", pfx);
    char cpfx[48];
    snprintf(cpfx, sizeof cpfx, "%scontext.", pfx);
    mn_err rc = api_check_fields(c, context_fields, cpfx, err);
    const char *where = NULL, *session = NULL;
    if (!rc) rc = api_get_strings(c, "who", cpfx, true, a, &m->who, &m->n_who, err);
    if (!rc) rc = api_get_string(c, "where", cpfx, &where, err);
    if (!rc) rc = api_get_string(c, "session", cpfx, &session, err);
    m->where = (char *)where;
    m->session = (char *)session;
    return rc;
}

mn_err rest_memory_from_json(const cJSON *o, const char *pfx, api_arena *a, mn_memory_t *m,
                             mn_error *err)
{
    mn_memory_init(m);
    if (!cJSON_IsObject(o))
        return mn_error_set(err, MN_ERR_INVALID, "%.*s: expected an object",
                            (int)(*pfx ? strlen(pfx) - 1 : 6), *pfx ? pfx : "memory");
    mn_err rc = api_check_fields(o, memory_fields, pfx, err);
    if (rc) return rc;
    const char *content = NULL, *kind = NULL, *lifecycle = NULL, *key = NULL;
    if ((rc = api_get_string(o, "content", pfx, &content, err))) return rc;
    if (content) {
        m->content = (char *)content;
        m->content_len = strlen(content);
    }
    if ((rc = api_get_floats(o, "embedding", pfx, a, &m->embedding, &m->dim, err))) return rc;
    if ((rc = api_get_string(o, "kind", pfx, &kind, err))) return rc;
    if (kind && mn_kind_parse(kind, &m->kind))
        return mn_error_set(err, MN_ERR_INVALID, "%skind: must be episodic or semantic, got "
                            "\"%.32s\"", pfx, kind);
    if ((rc = api_get_time(o, "when", pfx, NULL, &m->when_ms, err))) return rc;
    if ((rc = api_get_float(o, "confidence", pfx, NULL, &m->confidence, err))) return rc;
    if ((rc = api_get_float(o, "importance", pfx, NULL, &m->importance, err))) return rc;
    if ((rc = api_get_float(o, "emotional_valence", pfx, NULL, &m->emotional_valence, err)))
        return rc;
    if ((rc = read_context(o, pfx, a, m, err))) return rc;
    if ((rc = api_get_strings(o, "tags", pfx, false, a, &m->tags, &m->n_tags, err))) return rc;
    if ((rc = api_get_string_map(o, "metadata", pfx, a, &m->metadata, &m->n_metadata, err)))
        return rc;
    if ((rc = api_get_string(o, "lifecycle", pfx, &lifecycle, err))) return rc;
    if (lifecycle && mn_lifecycle_parse(lifecycle, &m->lifecycle))
        return mn_error_set(err, MN_ERR_INVALID,
                            "%slifecycle: must be ephemeral, session or persistent, got "
                            "\"%.32s\"",
                            pfx, lifecycle);
    bool has_ttl;
    int64_t ttl = 0;
    if ((rc = api_get_int(o, "ttl_seconds", pfx, &has_ttl, &ttl, err))) return rc;
    if (has_ttl) {
        if (ttl < 0)
            return mn_error_set(err, MN_ERR_INVALID, "%sttl_seconds: must be >= 0 (0 = never "
                                "expires)", pfx);
        m->ttl_seconds = ttl;
    }
    if ((rc = api_get_string(o, "idempotency_key", pfx, &key, err))) return rc;
    m->idempotency_key = (char *)key;
    return MN_OK;
}

/* A memory's version fields (docs/api.md, "Corrections"). */
static void version_to_json(api_jw *w, const mn_memory_t *m)
{
    jw_key(w, "version");
    jw_uint(w, m->version ? m->version : 1);
    jw_key(w, "version_id");
    jw_id(w, mn_id_is_zero(&m->version_id) ? &m->id : &m->version_id);
    jw_key(w, "supersedes");
    if (mn_id_is_zero(&m->supersedes)) jw_null(w);
    else jw_id(w, &m->supersedes);
    jw_key(w, "valid_from");
    jw_time(w, m->valid_from_ms ? m->valid_from_ms : m->created_at_ms);
    jw_key(w, "valid_to");
    if (m->valid_to_ms) jw_time(w, m->valid_to_ms);
    else jw_null(w);
    jw_key(w, "superseded");
    jw_bool(w, m->superseded);
    jw_key(w, "changed");
    jw_arr(w);
    for (unsigned b = 0; b < MN_CHANGED_COUNT; b++)
        if (m->changed & (1u << b)) jw_str(w, mn_changed_name(b));
    jw_arr_end(w);
    jw_key(w, "changed_by");
    jw_str_or_null(w, m->changed_by);
    if (m->valid_to_ms && !m->superseded) { /* invalidated */
        jw_key(w, "invalidated_by");
        if (mn_id_is_zero(&m->invalidated_by)) jw_null(w);
        else jw_id(w, &m->invalidated_by);
        jw_key(w, "invalid_reason");
        jw_str_or_null(w, m->invalid_reason);
    }
}

void rest_memory_to_json(api_jw *w, const mn_memory_t *m)
{
    if (m->forgotten) { /* an as-of read's forgotten memory: what is left of it */
        jw_obj(w);
        jw_key(w, "id");
        jw_id(w, &m->id);
        jw_key(w, "kind");
        jw_str(w, mn_kind_name(m->kind));
        jw_key(w, "when");
        jw_time(w, m->when_ms);
        jw_key(w, "created_at");
        jw_time(w, m->created_at_ms);
        jw_key(w, "forgotten_at");
        jw_time(w, m->forgotten_at_ms);
        jw_key(w, "forgotten");
        jw_bool(w, true);
        jw_obj_end(w);
        return;
    }
    jw_obj(w);
    jw_key(w, "id");
    jw_id(w, &m->id);
    jw_key(w, "kind");
    jw_str(w, mn_kind_name(m->kind));
    jw_key(w, "content");
    jw_strn(w, m->content ? m->content : "", m->content ? m->content_len : 0);
    jw_key(w, "when");
    jw_time(w, m->when_ms);
    jw_key(w, "created_at");
    jw_time(w, m->created_at_ms);
    jw_key(w, "confidence");
    jw_float(w, m->confidence);
    jw_key(w, "importance");
    jw_float(w, m->importance);
    jw_key(w, "emotional_valence");
    jw_float(w, m->emotional_valence);
    jw_key(w, "context");
    jw_obj(w);
    jw_key(w, "who");
    jw_arr(w);
    for (size_t i = 0; i < m->n_who; i++) jw_str(w, m->who[i]);
    jw_arr_end(w);
    jw_key(w, "where");
    jw_str_or_null(w, m->where);
    jw_key(w, "session");
    jw_str_or_null(w, m->session);
    jw_obj_end(w);
    jw_key(w, "tags");
    jw_arr(w);
    for (size_t i = 0; i < m->n_tags; i++) jw_str(w, m->tags[i]);
    jw_arr_end(w);
    jw_key(w, "metadata");
    jw_obj(w);
    for (size_t i = 0; i < m->n_metadata; i++) {
        jw_key(w, m->metadata[i].key);
        jw_str(w, m->metadata[i].value);
    }
    jw_obj_end(w);
    jw_key(w, "lifecycle");
    jw_str(w, mn_lifecycle_name(m->lifecycle));
    jw_key(w, "expires_at");
    if (m->expires_at_ms) jw_time(w, m->expires_at_ms);
    else jw_null(w);
    jw_key(w, "suppressed");
    jw_bool(w, m->suppressed);
    if (m->kind == MN_KIND_SEMANTIC) {
        jw_key(w, "support");
        jw_arr(w);
        for (size_t i = 0; i < m->n_support; i++) jw_id(w, &m->support[i]);
        jw_arr_end(w);
    } else {
        jw_key(w, "consolidated");
        jw_bool(w, m->consolidated);
    }
    jw_key(w, "stability_days");
    jw_float(w, m->stability_days);
    jw_key(w, "last_access");
    if (m->last_access_ms) jw_time(w, m->last_access_ms);
    else jw_null(w);
    jw_key(w, "access_count");
    jw_uint(w, m->access_count);
    version_to_json(w, m);
    if (m->embedding) {
        jw_key(w, "embedding");
        jw_arr(w);
        for (uint32_t i = 0; i < m->dim; i++) jw_float(w, m->embedding[i]);
        jw_arr_end(w);
    }
    jw_obj_end(w);
}

void rest_memories_to_json(api_jw *w, const mn_memory_t *ms, size_t n)
{
    jw_key(w, "memories");
    jw_arr(w);
    for (size_t i = 0; i < n; i++)
        rest_memory_to_json(w, &ms[i]);
    jw_arr_end(w);
}

static const char *const when_fields[] = {"from", "to", NULL};

mn_err rest_filter_from_json(const cJSON *o, api_arena *a, mn_filter_t *f, mn_error *err)
{
    mn_err rc;
    if ((rc = api_get_strings(o, "tags_any", "", false, a, &f->tags_any, &f->n_tags_any, err)))
        return rc;
    if ((rc = api_get_strings(o, "tags_all", "", false, a, &f->tags_all, &f->n_tags_all, err)))
        return rc;
    if ((rc = api_get_string_map(o, "metadata", "", a, &f->metadata, &f->n_metadata, err)))
        return rc;
    const char *kind = NULL;
    if ((rc = api_get_string(o, "kind", "", &kind, err))) return rc;
    if (kind) {
        mn_kind_t k;
        if (mn_kind_parse(kind, &k))
            return mn_error_set(err, MN_ERR_INVALID,
                                "kind: must be episodic or semantic, got \"%.32s\"", kind);
        f->kind = (int)k;
    }
    const cJSON *when = cJSON_GetObjectItemCaseSensitive(o, "when");
    if (when && !cJSON_IsNull(when)) {
        if (!cJSON_IsObject(when))
            return mn_error_set(err, MN_ERR_INVALID,
                                "when: expected an object {\"from\": ..., \"to\": ...}");
        if ((rc = api_check_fields(when, when_fields, "when.", err))) return rc;
        if ((rc = api_get_time(when, "from", "when.", NULL, &f->when_from_ms, err))) return rc;
        if ((rc = api_get_time(when, "to", "when.", NULL, &f->when_to_ms, err))) return rc;
    }
    if ((rc = api_get_float(o, "min_confidence", "", NULL, &f->min_confidence, err))) return rc;
    if ((rc = api_get_bool(o, "include_suppressed", "", NULL, &f->include_suppressed, err)))
        return rc;
    if ((rc = api_get_string(o, "who", "", &f->who, err))) return rc;
    if ((rc = api_get_string(o, "where", "", &f->where, err))) return rc;
    if ((rc = api_get_string(o, "session", "", &f->session, err))) return rc;
    if ((rc = api_get_time(o, "as_of", "", NULL, &f->as_of_ms, err))) return rc;
    return api_filter_compile(cJSON_GetObjectItemCaseSensitive(o, "filter"), a, f, err);
}
