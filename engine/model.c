/* Data-model helpers: names and parsing of enums, defaults, freeing owned
 * memories and results. The text forms are the API's (and the docs'). */
#include "mnemo/engine.h"

#include <stdlib.h>
#include <string.h>

const char *mn_metric_name(mn_metric_t m)
{
    switch (m) {
    case MN_METRIC_COSINE:
        return "cosine";
    case MN_METRIC_L2:
        return "l2";
    case MN_METRIC_DOT:
        return "dot";
    }
    return "unknown";
}

mn_err mn_metric_parse(const char *s, mn_metric_t *out)
{
    if (!strcmp(s, "cosine"))
        *out = MN_METRIC_COSINE;
    else if (!strcmp(s, "l2"))
        *out = MN_METRIC_L2;
    else if (!strcmp(s, "dot"))
        *out = MN_METRIC_DOT;
    else
        return MN_ERR_INVALID;
    return MN_OK;
}

const char *mn_kind_name(mn_kind_t k)
{
    return k == MN_KIND_SEMANTIC ? "semantic" : "episodic";
}

mn_err mn_kind_parse(const char *s, mn_kind_t *out)
{
    if (!strcmp(s, "episodic"))
        *out = MN_KIND_EPISODIC;
    else if (!strcmp(s, "semantic"))
        *out = MN_KIND_SEMANTIC;
    else
        return MN_ERR_INVALID;
    return MN_OK;
}

const char *mn_lifecycle_name(mn_lifecycle_t l)
{
    switch (l) {
    case MN_LIFECYCLE_EPHEMERAL:
        return "ephemeral";
    case MN_LIFECYCLE_SESSION:
        return "session";
    case MN_LIFECYCLE_PERSISTENT:
        return "persistent";
    case MN_LIFECYCLE_UNSET:
        break;
    }
    return "unset";
}

mn_err mn_lifecycle_parse(const char *s, mn_lifecycle_t *out)
{
    if (!strcmp(s, "ephemeral"))
        *out = MN_LIFECYCLE_EPHEMERAL;
    else if (!strcmp(s, "session"))
        *out = MN_LIFECYCLE_SESSION;
    else if (!strcmp(s, "persistent"))
        *out = MN_LIFECYCLE_PERSISTENT;
    else
        return MN_ERR_INVALID;
    return MN_OK;
}

static const char *edge_names[MN_EDGE_KINDS] = {"temporal", "semantic",      "causal",
                                                "explicit", "consolidation", "duplicate"};

const char *mn_dedup_mode_name(mn_dedup_mode_t m)
{
    return m == MN_DEDUP_OFF ? "off" : "exact";
}

mn_err mn_dedup_mode_parse(const char *s, mn_dedup_mode_t *out)
{
    if (!strcmp(s, "exact"))
        *out = MN_DEDUP_EXACT;
    else if (!strcmp(s, "off"))
        *out = MN_DEDUP_OFF;
    else
        return MN_ERR_INVALID;
    return MN_OK;
}

const char *mn_edge_kind_name(mn_edge_kind_t k)
{
    return (unsigned)k < MN_EDGE_KINDS ? edge_names[k] : "unknown";
}

mn_err mn_edge_kind_parse(const char *s, mn_edge_kind_t *out)
{
    for (int i = 0; i < MN_EDGE_KINDS; i++)
        if (!strcmp(s, edge_names[i])) {
            *out = (mn_edge_kind_t)i;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

bool mn_space_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MN_SPACE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-'))) return false;
    }
    return true;
}

void mn_memory_init(mn_memory_t *m)
{
    memset(m, 0, sizeof *m);
    m->kind = MN_KIND_EPISODIC;
    m->when_ms = MN_TIME_UNSET;
    m->confidence = 1.0f;
    m->importance = 0.5f;
    m->emotional_valence = 0.0f;
    m->lifecycle = MN_LIFECYCLE_UNSET;
    m->ttl_seconds = -1;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mn_memory_clear(mn_memory_t *m)
{
    free(m->content);
    free(m->embedding);
    free_strv(m->who, m->n_who);
    free(m->where);
    free(m->session);
    free_strv(m->tags, m->n_tags);
    for (size_t i = 0; i < m->n_metadata; i++) {
        free(m->metadata[i].key);
        free(m->metadata[i].value);
    }
    free(m->metadata);
    free(m->idempotency_key);
    free(m->support);
    free(m->changed_by);
    free(m->invalid_reason);
    memset(m, 0, sizeof *m);
}

void mn_filter_init(mn_filter_t *f)
{
    memset(f, 0, sizeof *f);
    f->kind = -1;
    f->when_from_ms = MN_TIME_UNSET;
    f->when_to_ms = MN_TIME_UNSET;
    f->min_confidence = 0.0f;
    f->as_of_ms = MN_TIME_UNSET;
}

const char *mn_reason_name(unsigned bit_index)
{
    static const char *names[MN_REASON_COUNT] = {
        "low_similarity", "low_encoding_confidence", "associative", "decayed",
        "low_support",    "embedding_unavailable",   "superseded",  "missing_partition",
        "partition",      "stale_replica"};
    return bit_index < MN_REASON_COUNT ? names[bit_index] : "unknown";
}

const char *mn_changed_name(unsigned bit_index)
{
    static const char *names[MN_CHANGED_COUNT] = {"content",  "embedding",  "tags",
                                                  "metadata", "importance", "context"};
    return bit_index < MN_CHANGED_COUNT ? names[bit_index] : "unknown";
}

void mn_recall_result_clear(mn_recall_result_t *r)
{
    for (size_t i = 0; i < r->n_hits; i++) {
        mn_memory_clear(&r->hits[i].memory);
        free(r->hits[i].duplicate_ids);
    }
    free(r->hits);
    memset(r, 0, sizeof *r);
}

void mn_list_result_clear(mn_list_result_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        mn_memory_clear(&r->memories[i]);
    free(r->memories);
    free(r->next);
    memset(r, 0, sizeof *r);
}
