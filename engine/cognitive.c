/* Cognitive operations built on recall and listing: recognition (familiarity),
 * reminiscing (episodes by time, people, place and topic) and pattern
 * completion (the rest of a partially remembered memory). Each is a thin,
 * deterministic composition of the engine's recall and list paths, so the
 * HTTP, gRPC and MCP doors can share them. */
#include "mnemo/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float hit_match(const mn_recall_hit_t *h)
{
    float m = 0;
    if (!isnan(h->similarity)) m = h->similarity < 0 ? 0 : h->similarity > 1 ? 1 : h->similarity;
    if (!isnan(h->coverage) && h->coverage > m) m = h->coverage;
    return m;
}

mn_err mn_engine_recognize(mn_engine_t *e, const char *space, const mn_recognize_req_t *req,
                           mn_recognize_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    /* the one range check of every door (HTTP, gRPC, MCP): 0 = the default; NaN fails */
    if (!(req->threshold >= 0 && req->threshold <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "threshold: must be in 0..1 (0 = default)");
    float threshold = req->threshold > 0 ? req->threshold : 0.85f;
    mn_recall_req_t r = {0};
    r.embedding = req->embedding;
    r.dim = req->dim;
    r.text = req->text;
    r.text_len = req->text_len;
    r.k = 5;
    r.filter = req->filter;
    mn_recall_result_t res;
    mn_err rc = mn_engine_recall(e, space, &r, &res, err);
    if (rc) return rc;
    for (size_t i = 0; i < res.n_hits; i++) {
        float m = hit_match(&res.hits[i]);
        if (!out->has_best || m > out->familiarity) {
            out->familiarity = m;
            out->best = res.hits[i].memory.id;
            out->has_best = true;
        }
    }
    out->recognized = out->has_best && out->familiarity >= threshold;
    mn_recall_result_clear(&res);
    return MN_OK;
}

static int by_when(const void *a, const void *b)
{
    const mn_memory_t *x = a, *y = b;
    if (x->when_ms != y->when_ms) return x->when_ms < y->when_ms ? -1 : 1;
    return mn_id_cmp(&x->id, &y->id);
}

mn_err mn_engine_reminisce(mn_engine_t *e, const char *space, const mn_reminisce_req_t *req,
                           mn_list_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t limit = req->limit ? req->limit : 50;
    if (limit > 1000)
        return mn_error_set(err, MN_ERR_INVALID, "limit: must be in 1..1000, got %u", limit);
    mn_filter_t f = req->filter;
    if (f.kind < 0) f.kind = MN_KIND_EPISODIC;
    if (!req->topic) {
        mn_list_req_t lr = {.filter = f, .limit = limit, .include_embedding = req->include_embedding};
        return mn_engine_list(e, space, &lr, out, err);
    }
    mn_recall_req_t r = {0};
    r.text = req->topic;
    r.text_len = req->topic_len;
    r.k = limit;
    r.filter = f;
    r.include_embedding = req->include_embedding;
    mn_recall_result_t res;
    mn_err rc = mn_engine_recall(e, space, &r, &res, err);
    if (rc) return rc;
    out->memories = calloc(res.n_hits ? res.n_hits : 1, sizeof *out->memories);
    if (!out->memories) {
        mn_recall_result_clear(&res);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < res.n_hits; i++) {
        out->memories[i] = res.hits[i].memory; /* move */
        memset(&res.hits[i].memory, 0, sizeof res.hits[i].memory);
    }
    out->n = res.n_hits;
    mn_recall_result_clear(&res);
    qsort(out->memories, out->n, sizeof *out->memories, by_when);
    return MN_OK;
}

const char *mn_field_name(mn_field_t f)
{
    static const char *names[MN_FIELD_COUNT] = {"content", "who", "where", "session", "tags"};
    return (unsigned)f < MN_FIELD_COUNT ? names[f] : "unknown";
}

void mn_complete_result_clear(mn_complete_result_t *r)
{
    mn_recall_result_clear(&r->candidates);
    for (size_t i = 0; i < r->n_fields; i++)
        free(r->fields[i].value);
    memset(r, 0, sizeof *r);
}

/* Renders a candidate's value of field f into buf ("" when it has none). */
static void field_value(const mn_memory_t *m, mn_field_t f, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t off = 0;
    switch (f) {
    case MN_FIELD_CONTENT:
        snprintf(buf, len, "%s", m->content ? m->content : "");
        break;
    case MN_FIELD_WHERE:
        snprintf(buf, len, "%s", m->where ? m->where : "");
        break;
    case MN_FIELD_SESSION:
        snprintf(buf, len, "%s", m->session ? m->session : "");
        break;
    case MN_FIELD_WHO:
        for (size_t i = 0; i < m->n_who && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", m->who[i]);
        break;
    case MN_FIELD_TAGS:
        for (size_t i = 0; i < m->n_tags && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", m->tags[i]);
        break;
    default:
        break;
    }
}

static bool field_given(const mn_memory_t *p, mn_field_t f)
{
    switch (f) {
    case MN_FIELD_CONTENT:
        return p->content && p->content_len > 0;
    case MN_FIELD_WHO:
        return p->n_who > 0;
    case MN_FIELD_WHERE:
        return p->where != NULL;
    case MN_FIELD_SESSION:
        return p->session != NULL;
    case MN_FIELD_TAGS:
        return p->n_tags > 0;
    default:
        return true;
    }
}

mn_err mn_engine_complete(mn_engine_t *e, const char *space, const mn_memory_t *partial, uint32_t k,
                          mn_complete_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    if (!k) k = 5;
    if (k > 100) return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..100, got %u", k);
    bool has_text = partial->content && partial->content_len > 0;
    if (!partial->embedding && !has_text)
        return mn_error_set(err, MN_ERR_INVALID,
                            "a partial memory needs content words, an embedding, or both");
    mn_recall_req_t r = {0};
    r.embedding = partial->embedding;
    r.dim = partial->dim;
    r.text = has_text ? partial->content : NULL;
    r.text_len = has_text ? partial->content_len : 0;
    r.k = k < 20 ? 20 : k; /* vote over a wider pool than we return */
    mn_filter_init(&r.filter);
    mn_recall_result_t res;
    mn_err rc = mn_engine_recall(e, space, &r, &res, err);
    if (rc) return rc;
    /* context the cue did give is evidence: candidates that agree weigh more */
    float *w = calloc(res.n_hits ? res.n_hits : 1, sizeof *w);
    char *a = malloc(MN_CONTENT_MAX + 1), *b = malloc(MN_CONTENT_MAX + 1);
    if (!w || !a || !b) {
        free(w);
        free(a);
        free(b);
        mn_recall_result_clear(&res);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < res.n_hits; i++) {
        const mn_memory_t *m = &res.hits[i].memory;
        float wi = res.hits[i].confidence.value;
        for (int f = MN_FIELD_WHO; f < MN_FIELD_COUNT; f++) {
            if (!field_given(partial, (mn_field_t)f)) continue;
            field_value(partial, (mn_field_t)f, a, MN_CONTENT_MAX + 1);
            field_value(m, (mn_field_t)f, b, MN_CONTENT_MAX + 1);
            wi *= strcmp(a, b) ? 0.5f : 1.0f;
        }
        w[i] = wi;
    }
    float best_w = 0, total = 0;
    for (size_t i = 0; i < res.n_hits; i++) {
        total += w[i];
        if (w[i] > best_w) best_w = w[i];
    }
    for (int f = 0; f < MN_FIELD_COUNT && total > 0; f++) {
        if (field_given(partial, (mn_field_t)f)) continue;
        /* weighted vote: the value with the most weight among the candidates */
        float win = 0;
        size_t win_i = SIZE_MAX;
        for (size_t i = 0; i < res.n_hits; i++) {
            field_value(&res.hits[i].memory, (mn_field_t)f, a, MN_CONTENT_MAX + 1);
            if (!a[0]) continue;
            float sum = 0;
            for (size_t j = 0; j < res.n_hits; j++) {
                field_value(&res.hits[j].memory, (mn_field_t)f, b, MN_CONTENT_MAX + 1);
                if (!strcmp(a, b)) sum += w[j];
            }
            if (sum > win) {
                win = sum;
                win_i = i;
            }
        }
        if (win_i == SIZE_MAX) continue;
        field_value(&res.hits[win_i].memory, (mn_field_t)f, a, MN_CONTENT_MAX + 1);
        mn_field_guess_t *g = &out->fields[out->n_fields];
        g->field = (mn_field_t)f;
        g->value = strdup(a);
        g->confidence = win / total * best_w;
        if (g->value) out->n_fields++;
    }
    free(a);
    free(b);
    free(w);
    if (res.n_hits > k) {
        for (size_t i = k; i < res.n_hits; i++) {
            mn_memory_clear(&res.hits[i].memory);
            free(res.hits[i].duplicate_ids);
        }
        res.n_hits = k;
    }
    out->candidates = res;
    return MN_OK;
}
