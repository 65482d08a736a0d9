/* Exact recall: a full scan of a space's vectors under its read lock, with the
 * filters applied per slot and a bounded min-heap for the top k. It is correct
 * for every metric and stays as the oracle for the HNSW index and the path for
 * small spaces. Records of the winners are read from the store after the lock
 * is released.
 *
 * Scores (higher is better): cosine = cos(q, v); dot = q.v;
 * l2 = 1 / (1 + |q - v|). Confidence = similarity01 x encoding confidence,
 * where similarity01 is clamp(cos, 0, 1), clamp(q.v, 0, 1) or 1 / (1 + |q - v|). */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool has_tag(const mn_slot *s, const char *t)
{
    for (uint32_t i = 0; i < s->n_tags; i++)
        if (!strcmp(s->tags[i], t)) return true;
    return false;
}

bool mn_filter_match(const mn_slot *s, const mn_filter_t *f, int64_t now)
{
    if (s->state != SLOT_LIVE) return false;
    if (s->expires_at_ms && s->expires_at_ms <= now) return false;
    if (s->suppressed && !f->include_suppressed) return false;
    if (f->kind >= 0 && s->kind != f->kind) return false;
    if (f->when_from_ms != MN_TIME_UNSET && s->when_ms < f->when_from_ms) return false;
    if (f->when_to_ms != MN_TIME_UNSET && s->when_ms >= f->when_to_ms) return false;
    if (s->confidence < f->min_confidence) return false;
    if (f->n_tags_any) {
        bool any = false;
        for (size_t i = 0; i < f->n_tags_any && !any; i++) any = has_tag(s, f->tags_any[i]);
        if (!any) return false;
    }
    for (size_t i = 0; i < f->n_tags_all; i++)
        if (!has_tag(s, f->tags_all[i])) return false;
    for (size_t i = 0; i < f->n_metadata; i++) {
        bool ok = false;
        for (uint32_t j = 0; j < s->n_metadata && !ok; j++)
            ok = !strcmp(s->metadata[j].key, f->metadata[i].key) &&
                 !strcmp(s->metadata[j].value, f->metadata[i].value);
        if (!ok) return false;
    }
    return true;
}

typedef struct cand {
    float score;
    float dist;
    uint32_t slot;
    mn_id_t id;
} cand;

/* Worse-first ordering for the heap: lower score, then larger id, is worse. */
static bool worse(const cand *a, const cand *b)
{
    if (a->score != b->score) return a->score < b->score;
    return mn_id_cmp(&a->id, &b->id) > 0;
}

static void sift_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m])) m = l;
        if (r < n && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(cand *h, size_t i)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (!worse(&h[i], &h[p])) return;
        cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static int best_first(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (worse(x, y)) return 1;
    if (worse(y, x)) return -1;
    return 0;
}

static float score_of(mn_metric m, const float *q, const float *v, uint32_t dim, float *dist)
{
    switch (m) {
    case MN_METRIC_COSINE: {
        float c = mn_vec_dot(q, v, dim);
        *dist = 1.0f - c;
        return c;
    }
    case MN_METRIC_DOT: {
        float d = mn_vec_dot(q, v, dim);
        *dist = -d;
        return d;
    }
    case MN_METRIC_L2: {
        float d = sqrtf(mn_vec_l2sq(q, v, dim));
        *dist = d;
        return 1.0f / (1.0f + d);
    }
    }
    *dist = 0;
    return 0;
}

static float clamp01(float x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

static void confidence_of(mn_metric m, float score, float encoding, mn_confidence *c)
{
    float sim = m == MN_METRIC_L2 ? score : clamp01(score);
    c->value = clamp01(sim * clamp01(encoding));
    c->reasons = 0;
    if (sim < 0.5f) c->reasons |= MN_REASON_LOW_SIMILARITY;
    if (encoding < 0.9f) c->reasons |= MN_REASON_LOW_ENCODING_CONFIDENCE;
    c->category = c->value >= 0.8f ? "high" : c->value >= 0.6f ? "medium" : c->value >= 0.3f ? "low"
                                                                                            : "very_low";
}

mn_err mn_engine_recall(mn_engine_t *e, const char *space, const mn_recall_req *req,
                        mn_recall_result *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t k = req->k ? req->k : 10;
    if (k > MN_K_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..%d, got %u", MN_K_MAX, k);
    mn_err rc = mn_validate_filter(&req->filter, err);
    if (rc) return rc;
    if (req->has_threshold && !isfinite(req->threshold))
        return mn_error_set(err, MN_ERR_INVALID, "threshold: not a finite number");
    mn_space *sp = mn_engine_space_acquire(e, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    uint32_t dim = sp->def.dim;
    if (!req->embedding || req->dim != dim) {
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_INVALID, "embedding: expected %u values, got %u", dim,
                            req->embedding ? req->dim : 0);
    }
    float *q = malloc(dim * sizeof(float));
    cand *heap = malloc((size_t)k * sizeof *heap);
    if (!q || !heap) {
        free(q);
        free(heap);
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(req->embedding[i])) {
            free(q);
            free(heap);
            mn_engine_space_release(e, sp);
            return mn_error_set(err, MN_ERR_INVALID, "embedding[%u]: not a finite float32", i);
        }
        q[i] = req->embedding[i];
    }
    if (sp->def.metric == MN_METRIC_COSINE && !mn_vec_normalize(q, dim)) {
        free(q);
        free(heap);
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_INVALID,
                            "embedding: the zero vector has no direction (cosine space)");
    }

    int64_t now = mn_engine_now(e);
    size_t n = 0;
    uint64_t scanned = 0;
    pthread_rwlock_rdlock(&sp->lock);
    for (uint32_t i = 0; i < sp->n_slots; i++) {
        const mn_slot *s = &sp->slots[i];
        if (!mn_filter_match(s, &req->filter, now)) continue;
        scanned++;
        cand c = {.slot = i, .id = s->id};
        c.score = score_of(sp->def.metric, q, sp->vecs + (size_t)i * dim, dim, &c.dist);
        if (req->has_threshold && c.score < req->threshold) continue;
        if (n < k) {
            heap[n++] = c;
            sift_up(heap, n - 1);
        } else if (worse(&heap[0], &c)) {
            heap[0] = c;
            sift_down(heap, n, 0);
        }
    }
    pthread_rwlock_unlock(&sp->lock);
    qsort(heap, n, sizeof *heap, best_first);

    out->hits = calloc(n ? n : 1, sizeof *out->hits);
    if (!out->hits) {
        free(q);
        free(heap);
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    out->path = "exact";
    out->scanned = scanned;
    for (size_t i = 0; i < n; i++) {
        mn_recall_hit *h = &out->hits[out->n_hits];
        mn_error rerr = {0};
        rc = mn_engine_read_memory(e, sp, &heap[i].id, req->include_embedding, &h->memory, &rerr);
        if (rc == MN_ERR_GONE || rc == MN_ERR_NOT_FOUND) continue; /* forgotten meanwhile */
        if (rc) {
            if (err) *err = rerr;
            mn_recall_result_clear(out);
            free(q);
            free(heap);
            mn_engine_space_release(e, sp);
            return rc;
        }
        h->score = heap[i].score;
        h->distance = heap[i].dist;
        confidence_of(sp->def.metric, h->score, h->memory.confidence, &h->confidence);
        out->n_hits++;
    }
    free(q);
    free(heap);
    mn_engine_space_release(e, sp);
    return MN_OK;
}
