/* Recall: rank a space's memories against a cue (an embedding, words, or both)
 * under the space's read lock, then read the winners' records from the store.
 *
 * Vector ranking is an exact scan with the filters applied per slot and a
 * bounded min-heap: correct for every metric, the oracle for the HNSW index and
 * the path for small spaces. Similarity (higher is better): cosine = cos(q, v);
 * dot = q.v; l2 = 1 / (1 + |q - v|).
 * Keyword ranking is BM25 over content (keyword.c), filtered inside the search.
 * With both cues the two rankings are fused by reciprocal rank fusion (Cormack,
 * Clarke & Buettcher, SIGIR 2009) with k = 60 and per-cue weights.
 *
 * Confidence (confidence.c) = match x encoding confidence x (0.5 + 0.5
 * retention) x support, where match is the vector similarity mapped to [0, 1]
 * (clamp(cos, 0, 1), clamp(q.v, 0, 1), or 1 / (1 + |q - v|)), the keyword
 * coverage (the idf-weighted share of the query words the memory contains),
 * or with both cues their weighted mean; with spreading on it is the
 * activation (capped at 1). Retention comes from the forgetting curve
 * (decay.c); support from a semantic memory's episodes. */
#include "activation.h"
#include "confidence.h"
#include "engine_internal.h"
#include "text/keyword.h"
#include "space_index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_tag(const mn_slot *s, const char *t)
{
    for (uint32_t i = 0; i < s->n_tags; i++)
        if (!strcmp(s->tags[i], t)) return true;
    return false;
}

bool mn_suppressed_at(bool suppressed_now, int64_t suppressed_at, int64_t unsuppressed_at,
                      int64_t t)
{
    if (suppressed_now) return suppressed_at <= t;
    return suppressed_at && unsuppressed_at && suppressed_at <= t && t < unsuppressed_at;
}

/* As-of reads (issue 4): a view of the space as it was at as_of. A memory is in
 * it when it was created by then (created_at, which for a semantic memory is
 * what consolidation says) and was not forgotten by then. Suppression is
 * judged at as_of from the times of the latest suppress and unsuppress. A
 * memory deleted or expired after as_of was there, but its content is erased:
 * it is never ranked, and list shows it as a redacted entry (list.c). Expiry
 * counts against the real now even in an as-of view, for the same reason. */
bool mn_filter_match(const mn_slot *s, const mn_filter_t *f, int64_t now)
{
    if (s->state != SLOT_LIVE) return false;
    if (s->expires_at_ms && s->expires_at_ms <= now) return false;
    bool suppressed = s->suppressed;
    if (f->as_of_ms != MN_TIME_UNSET) {
        if (s->created_at_ms > f->as_of_ms) return false;
        suppressed = mn_suppressed_at(s->suppressed, s->suppressed_at_ms, s->unsuppressed_at_ms,
                                      f->as_of_ms);
    }
    if (suppressed && !f->include_suppressed) return false;
    if (f->kind >= 0 && s->kind != f->kind) return false;
    if (f->when_from_ms != MN_TIME_UNSET && s->when_ms < f->when_from_ms) return false;
    if (f->when_to_ms != MN_TIME_UNSET && s->when_ms >= f->when_to_ms) return false;
    if (s->confidence < f->min_confidence) return false;
    if (f->n_tags_any) {
        bool any = false;
        for (size_t i = 0; i < f->n_tags_any && !any; i++)
            any = has_tag(s, f->tags_any[i]);
        if (!any) return false;
    }
    for (size_t i = 0; i < f->n_tags_all; i++)
        if (!has_tag(s, f->tags_all[i])) return false;
    if (f->where && (!s->where || strcmp(s->where, f->where))) return false;
    if (f->session && (!s->session || strcmp(s->session, f->session))) return false;
    if (f->who) {
        bool any = false;
        for (uint32_t i = 0; i < s->n_who && !any; i++)
            any = !strcmp(s->who[i], f->who);
        if (!any) return false;
    }
    for (size_t i = 0; i < f->n_metadata; i++) {
        bool ok = false;
        for (uint32_t j = 0; j < s->n_metadata && !ok; j++)
            ok = !strcmp(s->metadata[j].key, f->metadata[i].key) &&
                 !strcmp(s->metadata[j].value, f->metadata[i].value);
        if (!ok) return false;
    }
    return true;
}

bool mn_filter_match_gone(uint8_t kind, int64_t when_ms, int64_t created_at_ms, int64_t gone_at_ms,
                          const mn_filter_t *f)
{
    if (f->as_of_ms == MN_TIME_UNSET) return false;
    if (created_at_ms > f->as_of_ms || gone_at_ms <= f->as_of_ms) return false;
    if (f->kind >= 0 && kind != f->kind) return false;
    if (f->when_from_ms != MN_TIME_UNSET && when_ms < f->when_from_ms) return false;
    if (f->when_to_ms != MN_TIME_UNSET && when_ms >= f->when_to_ms) return false;
    /* the rest of the memory is erased: a filter on it cannot be answered */
    return !(f->n_tags_any || f->n_tags_all || f->n_metadata || f->who || f->where || f->session ||
             f->min_confidence > 0);
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
        float c = mn_vec_dot_fast(q, v, dim);
        *dist = 1.0f - c;
        return c;
    }
    case MN_METRIC_DOT: {
        float d = mn_vec_dot_fast(q, v, dim);
        *dist = -d;
        return d;
    }
    case MN_METRIC_L2: {
        float d = sqrtf(mn_vec_l2sq_fast(q, v, dim));
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

static float vector_match(mn_metric m, float sim)
{
    return m == MN_METRIC_L2 ? sim : clamp01(sim);
}

#define RRF_K 60.0f

/* How well a memory matches the cue, in [0, 1]: the vector match, the keyword
 * coverage, or with both cues their weighted mean. A memory the keyword search
 * did not return has coverage 0; one without a vector is judged by words alone. */
static float cue_match(mn_metric m, float sim, float cov, bool by_vec, bool by_text, float wv,
                       float wt)
{
    bool has_v = by_vec && !isnan(sim), has_t = by_text;
    float vm = has_v ? vector_match(m, sim) : 0, c = isnan(cov) ? 0 : cov;
    if (has_v && has_t) return (wv * vm + wt * c) / (wv + wt);
    if (has_v) return vm;
    return c;
}

/* A ranked candidate, gathered under the lock. */
typedef struct ranked {
    mn_id_t id;
    uint32_t slot;
    float score; /* final ranking score */
    float sim, dist, kw, cov;
    float match; /* the cue's match in [0, 1]: best of vector similarity and coverage */
    float act;   /* activation (spread), NAN otherwise */
    float retention;
    bool seed;
    int32_t node;          /* index in the activation nodes, -1 without spread */
    uint32_t vrank, trank; /* 1-based; 0 = not in that ranking */
} ranked;

static int ranked_best_first(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return mn_id_cmp(&x->id, &y->id);
}

typedef struct accept_arg {
    const mn_space *sp;
    const mn_filter_t *f;
    int64_t now;
} accept_arg;

static bool accept_slot(void *arg, uint32_t slot)
{
    const accept_arg *a = arg;
    return slot < a->sp->n_slots && mn_filter_match(&a->sp->slots[slot], a->f, a->now);
}

/* Vector top-n under the lock (sp->lock held). */
/* Adds c to the bounded heap of the best cap. */
static void heap_offer(cand *heap, size_t *n, size_t cap, const cand *c)
{
    if (*n < cap) {
        heap[(*n)++] = *c;
        sift_up(heap, *n - 1);
    } else if (worse(&heap[0], c)) {
        heap[0] = *c;
        sift_down(heap, *n, 0);
    }
}

/* Offers c unless its slot is in the heap already (the graph's hits and the
 * unindexed tail may name the same slot). */
static void heap_offer_unique(cand *heap, size_t *n, size_t cap, const cand *c)
{
    if (*n == cap && !worse(&heap[0], c)) return;
    for (size_t i = 0; i < *n; i++)
        if (heap[i].slot == c->slot) return;
    heap_offer(heap, n, cap, c);
}

/* Vector top-n through the space's HNSW index (space_index.c) when it applies:
 * the filter runs inside the graph search, hits are re-scored exactly here,
 * and the slots the index thread has not reached yet are ranked exactly. */
static bool vector_rank_index(mn_engine *e, const mn_space *sp, const float *q,
                              const mn_recall_req *req, int64_t now, cand *heap, size_t cap,
                              size_t *n_out, uint64_t *scanned)
{
    /* the tail is read first: a slot the index thread inserts during the search
     * is then in the tail even if the search missed it */
    const uint32_t *tail[2];
    size_t nt[2];
    mn_space_index_tail(sp, &tail[0], &nt[0], &tail[1], &nt[1]);
    uint32_t *slots = malloc(cap * sizeof *slots);
    uint32_t m = 0;
    if (!slots || !mn_space_index_rank(e, sp, q, req, now, (uint32_t)cap, slots, &m, scanned)) {
        free(slots);
        return false;
    }
    uint32_t dim = sp->def.dim;
    size_t n = 0;
    for (uint32_t i = 0; i < m; i++) {
        const mn_slot *s = &sp->slots[slots[i]];
        cand c = {.slot = slots[i], .id = s->id};
        c.score = score_of(sp->def.metric, q, sp->vecs + (size_t)slots[i] * dim, dim, &c.dist);
        if (req->has_threshold && c.score < req->threshold) continue;
        heap_offer_unique(heap, &n, cap, &c);
    }
    free(slots);
    for (int r = 0; r < 2; r++)
        for (size_t i = 0; i < nt[r]; i++) {
            uint32_t slot = tail[r][i];
            if (slot >= sp->n_slots) continue;
            const mn_slot *s = &sp->slots[slot];
            if (s->state != SLOT_LIVE || !s->has_vec || !mn_filter_match(s, &req->filter, now))
                continue;
            (*scanned)++;
            cand c = {.slot = slot, .id = s->id};
            c.score = score_of(sp->def.metric, q, sp->vecs + (size_t)slot * dim, dim, &c.dist);
            if (req->has_threshold && c.score < req->threshold) continue;
            heap_offer_unique(heap, &n, cap, &c);
        }
    qsort(heap, n, sizeof *heap, best_first);
    *n_out = n;
    return true;
}

static size_t vector_rank(mn_engine *e, const mn_space *sp, const float *q,
                          const mn_recall_req *req, int64_t now, cand *heap, size_t cap,
                          uint64_t *scanned, bool *indexed)
{
    uint32_t dim = sp->def.dim;
    size_t n = 0;
    if ((*indexed = vector_rank_index(e, sp, q, req, now, heap, cap, &n, scanned))) return n;
    for (uint32_t i = 0; i < sp->n_slots; i++) {
        const mn_slot *s = &sp->slots[i];
        if (!s->has_vec || !mn_filter_match(s, &req->filter, now)) continue;
        (*scanned)++;
        cand c = {.slot = i, .id = s->id};
        c.score = score_of(sp->def.metric, q, sp->vecs + (size_t)i * dim, dim, &c.dist);
        if (req->has_threshold && c.score < req->threshold) continue;
        if (n < cap) {
            heap[n++] = c;
            sift_up(heap, n - 1);
        } else if (worse(&heap[0], &c)) {
            heap[0] = c;
            sift_down(heap, n, 0);
        }
    }
    qsort(heap, n, sizeof *heap, best_first);
    return n;
}

static ranked *find_slot(ranked *r, size_t n, uint32_t slot)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].slot == slot) return &r[i];
    return NULL;
}

/* Runs spreading activation from the ranked seeds (lock held) and replaces
 * *r with every activated memory, ranked by activation. */
static mn_err spread_ranked(const mn_space *sp, const mn_recall_req *req, int64_t now, ranked **r,
                            size_t *n, mn_act_node **nodes, size_t *n_nodes)
{
    mn_spread_params p = {
        .max_hops = req->max_hops ? req->max_hops : 2,
        .hop_decay = req->hop_decay > 0 ? req->hop_decay : 0.5f,
        .min_activation = req->min_activation > 0 ? req->min_activation : 0.05f,
        .max_visited = req->max_visited ? req->max_visited : 1000,
    };
    uint32_t *slots = malloc(*n * sizeof *slots);
    float *acts = malloc(*n * sizeof *acts);
    if (!slots || !acts) {
        free(slots);
        free(acts);
        return MN_ERR_NOMEM;
    }
    for (size_t i = 0; i < *n; i++) {
        slots[i] = (*r)[i].slot;
        acts[i] = (*r)[i].match;
    }
    mn_err rc = mn_spread(sp, &req->filter, now, slots, acts, *n, &p, nodes, n_nodes);
    free(slots);
    free(acts);
    if (rc) return rc;
    ranked *nr = realloc(*r, (*n_nodes ? *n_nodes : 1) * sizeof *nr);
    if (!nr) return MN_ERR_NOMEM;
    *r = nr;
    for (size_t i = 0; i < *n_nodes; i++) {
        const mn_act_node *nd = &(*nodes)[i];
        if (i >= *n) /* reached only through associations */
            nr[i] = (ranked){.id = nd->id,
                             .slot = nd->slot,
                             .sim = NAN,
                             .dist = NAN,
                             .kw = NAN,
                             .cov = NAN,
                             .match = 0};
        nr[i].act = nd->act;
        nr[i].seed = nd->seed;
        nr[i].node = (int32_t)i;
        nr[i].score = nd->act;
    }
    *n = *n_nodes;
    qsort(nr, *n, sizeof *nr, ranked_best_first);
    return MN_OK;
}

static void trace_path(const mn_act_node *nodes, int32_t at, mn_recall_hit *h)
{
    mn_via_step rev[MN_MAX_HOPS];
    uint32_t n = 0;
    for (int32_t i = at; i >= 0 && nodes[i].parent >= 0 && n < MN_MAX_HOPS; i = nodes[i].parent)
        rev[n++] = (mn_via_step){nodes[nodes[i].parent].id, nodes[i].kind, nodes[i].weight};
    for (uint32_t i = 0; i < n; i++)
        h->via[i] = rev[n - 1 - i]; /* seed first */
    h->n_via = n;
}

static mn_err recall_op(mn_engine_t *e, const char *space, const mn_recall_req *req,
                        mn_recall_result *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t k = req->k ? req->k : 10;
    if (k > MN_K_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..%d, got %u", MN_K_MAX, k);
    if (req->ef > MN_EF_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "ef: at most %d, got %u", MN_EF_MAX, req->ef);
    mn_err rc = mn_validate_filter(&req->filter, err);
    if (rc) return rc;
    if (req->has_threshold && !isfinite(req->threshold))
        return mn_error_set(err, MN_ERR_INVALID, "threshold: not a finite number");
    bool by_vec = req->embedding != NULL;
    bool by_text = req->text != NULL;
    if (!by_vec && !by_text)
        return mn_error_set(err, MN_ERR_INVALID, "a recall needs an embedding, text, or both");
    if (by_text && (req->text_len > MN_CONTENT_MAX || !mn_utf8_valid(req->text, req->text_len)))
        return mn_error_set(err, MN_ERR_INVALID, "text: not valid UTF-8 or longer than %d bytes",
                            MN_CONTENT_MAX);
    float wv = req->vector_weight, wt = req->text_weight;
    if (!(wv >= 0 && wt >= 0 && isfinite(wv) && isfinite(wt)))
        return mn_error_set(err, MN_ERR_INVALID, "weights: must be finite and >= 0");
    if (wv == 0 && wt == 0) wv = wt = 1;
    if (req->spread) {
        if (req->max_hops > MN_MAX_HOPS)
            return mn_error_set(err, MN_ERR_INVALID, "max_hops: at most %d", MN_MAX_HOPS);
        if (!(req->hop_decay >= 0 && req->hop_decay <= 1))
            return mn_error_set(err, MN_ERR_INVALID, "hop_decay: must be in (0, 1]");
        if (!(req->min_activation >= 0 && req->min_activation < 1))
            return mn_error_set(err, MN_ERR_INVALID, "min_activation: must be in (0, 1)");
        if (req->max_visited > 100000)
            return mn_error_set(err, MN_ERR_INVALID, "max_visited: at most 100000");
    }

    mn_space *sp = mn_engine_space_acquire(e, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    uint32_t dim = sp->def.dim;
    float *q = NULL;
    if (by_vec) {
        if (req->dim != dim) {
            mn_engine_space_release(e, sp);
            return mn_error_set(err, MN_ERR_INVALID, "embedding: expected %u values, got %u", dim,
                                req->dim);
        }
        q = malloc(dim * sizeof(float));
        if (!q) {
            mn_engine_space_release(e, sp);
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        }
        for (uint32_t i = 0; i < dim; i++) {
            if (!isfinite(req->embedding[i])) {
                free(q);
                mn_engine_space_release(e, sp);
                return mn_error_set(err, MN_ERR_INVALID, "embedding[%u]: not a finite float32", i);
            }
            q[i] = req->embedding[i];
        }
        if (sp->def.metric == MN_METRIC_COSINE && !mn_vec_normalize(q, dim)) {
            free(q);
            mn_engine_space_release(e, sp);
            return mn_error_set(err, MN_ERR_INVALID,
                                "embedding: the zero vector has no direction (cosine space)");
        }
    }
    /* With two rankings to fuse, each contributes a deeper pool than k. */
    size_t pool = by_vec && by_text ? (k * 2 < 50 ? 50 : k * 2) : k;
    if (pool > MN_K_MAX) pool = MN_K_MAX;
    cand *vh = by_vec ? malloc(pool * sizeof *vh) : NULL;
    mn_kw_hit *th = by_text ? malloc(pool * sizeof *th) : NULL;
    ranked *r = malloc(2 * pool * sizeof *r);
    if ((by_vec && !vh) || (by_text && !th) || !r) {
        free(q);
        free(vh);
        free(th);
        free(r);
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }

    int64_t now = mn_engine_now(e);
    if ((rc = mn_engine_check_as_of(e, &req->filter, now, err))) {
        free(q);
        free(vh);
        free(th);
        free(r);
        mn_engine_space_release(e, sp);
        return rc;
    }
    size_t nv = 0, nt = 0, n = 0;
    uint64_t scanned = 0;
    pthread_rwlock_rdlock(&sp->lock);
    bool indexed = false;
    if (by_vec) nv = vector_rank(e, sp, q, req, now, vh, pool, &scanned, &indexed);
    if (by_text) {
        accept_arg aa = {sp, &req->filter, now};
        nt = mn_kw_search(sp->kw, req->text, req->text_len, accept_slot, &aa, pool, th);
        scanned += nt;
    }
    for (size_t i = 0; i < nv; i++)
        r[n++] = (ranked){.id = vh[i].id,
                          .slot = vh[i].slot,
                          .sim = vh[i].score,
                          .dist = vh[i].dist,
                          .kw = NAN,
                          .cov = NAN,
                          .vrank = (uint32_t)i + 1};

    for (size_t i = 0; i < nt; i++) {
        ranked *x = by_vec ? find_slot(r, nv, th[i].slot) : NULL;
        if (!x) {
            const mn_slot *s = &sp->slots[th[i].slot];
            x = &r[n++];
            *x = (ranked){.id = s->id, .slot = th[i].slot, .sim = NAN, .dist = NAN};
            if (by_vec && s->has_vec) /* fused: give text-only finds their similarity too */
                x->sim =
                    score_of(sp->def.metric, q, sp->vecs + (size_t)th[i].slot * dim, dim, &x->dist);
        }
        x->kw = th[i].score;
        x->cov = th[i].coverage;
        x->trank = (uint32_t)i + 1;
    }

    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        ranked *x = &r[i];
        if (by_vec && by_text)
            x->score =
                (x->vrank ? wv / (RRF_K + x->vrank) : 0) + (x->trank ? wt / (RRF_K + x->trank) : 0);
        else if (by_vec)
            x->score = x->sim;
        else
            x->score = x->kw;
        /* threshold: vector similarity when there is a vector cue, else keyword coverage */
        if (req->has_threshold && !by_vec && !(x->cov >= req->threshold)) continue;
        x->match = cue_match(sp->def.metric, x->sim, x->cov, by_vec, by_text, wv, wt);
        x->act = NAN;
        x->seed = true;
        x->node = -1;
        r[kept++] = *x;
    }
    n = kept;
    qsort(r, n, sizeof *r, ranked_best_first);

    mn_act_node *nodes = NULL;
    size_t n_nodes = 0;
    if (req->spread && n > 0) {
        if (n > k) n = k; /* the cue's own top k seed the spread */
        rc = spread_ranked(sp, req, now, &r, &n, &nodes, &n_nodes);
    }
    if (n > k) n = k;
    for (size_t i = 0; i < n; i++) {
        mn_strength st;
        mn_slot_strength(sp, r[i].slot, e->opts.initial_stability_days, &st);
        r[i].retention = mn_retention(st.stability_days, now - st.last_access_ms);
    }
    pthread_rwlock_unlock(&sp->lock);

    if (rc) {
        mn_error_set(err, rc, "out of memory spreading activation");
        n = 0;
    }
    out->hits = rc ? NULL : calloc(n ? n : 1, sizeof *out->hits);
    if (!rc && !out->hits) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (by_vec && by_text)
        out->path = indexed ? "hnsw+keyword" : "exact+keyword";
    else
        out->path = by_vec ? (indexed ? "hnsw" : "exact") : "keyword";
    out->scanned = scanned;
    for (size_t i = 0; i < n && !rc; i++) {
        mn_recall_hit *h = &out->hits[out->n_hits];
        mn_error rerr = {0};
        mn_err rr =
            mn_engine_read_memory(e, sp, &r[i].id, req->include_embedding, &h->memory, &rerr);
        if (rr == MN_ERR_GONE || rr == MN_ERR_NOT_FOUND) continue; /* forgotten meanwhile */
        if (rr) {
            if (err) *err = rerr;
            rc = rr;
            break;
        }
        if (req->filter.as_of_ms != MN_TIME_UNSET) /* as it was then */
            h->memory.suppressed =
                mn_suppressed_at(h->memory.suppressed, h->memory.suppressed_at_ms,
                                 h->memory.unsuppressed_at_ms, req->filter.as_of_ms);
        h->score = r[i].score;
        h->similarity = r[i].sim;
        h->distance = r[i].dist;
        h->keyword = r[i].kw;
        h->coverage = r[i].cov;
        h->activation = isnan(r[i].act) ? NAN : r[i].act > 1 ? 1 : r[i].act;
        h->seed = r[i].seed;
        if (req->trace && r[i].node >= 0) trace_path(nodes, r[i].node, h);
        h->retention = r[i].retention;
        float match = req->spread ? h->activation : r[i].match;
        bool semantic = h->memory.kind == MN_KIND_SEMANTIC;
        mn_confidence_of(match, h->memory.confidence, r[i].retention,
                         mn_support_factor(semantic, h->memory.n_support), &h->confidence);
        if (!r[i].seed) h->confidence.reasons |= MN_REASON_ASSOCIATIVE;
        out->n_hits++;
    }
    if (!rc && req->reinforce && out->n_hits) {
        mn_id_t *ids = malloc(out->n_hits * sizeof *ids);
        if (ids) {
            for (size_t i = 0; i < out->n_hits; i++)
                ids[i] = out->hits[i].memory.id;
            mn_reinforce_enqueue(e, sp, ids, out->n_hits, now);
            free(ids);
        }
    }
    for (size_t i = 0; !rc && i < out->n_hits; i++)
        if (out->hits[i].confidence.value > out->recall_confidence)
            out->recall_confidence = out->hits[i].confidence.value;
    if (rc)
        mn_recall_result_clear(out);
    else if (mn_events_wanted(e)) {
        mn_event ev = {.kind = MN_EVENT_RECALL,
                       .at_ms = now,
                       .count = (uint32_t)out->n_hits,
                       .recall_confidence = out->recall_confidence};
        snprintf(ev.path, sizeof ev.path, "%s", out->path);
        mn_events_publish(e, space, &ev);
    }
    free(nodes);
    free(q);
    free(vh);
    free(th);
    free(r);
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_recall(mn_engine_t *e, const char *space, const mn_recall_req *req,
                        mn_recall_result *out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn_engine_timed(&e->h_recall, t0, recall_op(e, space, req, out, err));
}
