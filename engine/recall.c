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
 * or with both cues their weighted mean; with spreading on it is that match
 * plus the associative bonus (capped at 1; activation.c). Retention comes from the forgetting curve
 * (decay.c); support from a semantic memory's episodes. */
#include "activation.h"
#include "assoc.h"
#include "background.h"
#include "confidence.h"
#include "decay.h"
#include "engine_internal.h"
#include "events.h"
#include "filter.h"
#include "metrics.h"
#include "mnemo/assert.h"
#include "record.h"
#include "space_index.h"
#include "text/keyword.h"
#include "validate.h"
#include "versions.h"
#include "vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recall_time.h" /* time named in the cue */

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

#define RRF_K 60.0f

/* How well a memory matches the cue, in [0, 1]: the vector match, the keyword
 * coverage, or with both cues their weighted mean. A memory the keyword search
 * did not return has coverage 0; one without a vector is judged by words alone. */
static float cue_match(mn_metric_t m, float sim, float cov, bool by_vec, bool by_text, float wv,
                       float wt)
{
    bool has_v = by_vec && !isnan(sim), has_t = by_text;
    float vm = has_v ? mn__vec_match(m, sim) : 0, c = isnan(cov) ? 0 : cov;
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
    float base;  /* spread: the cue's own score on [0, 1] (order-preserving, §4) */
    float act;   /* spread: match + associative bonus, capped at 1; NAN otherwise */
    float retention;
    bool seed;
    int32_t node;          /* index in the activation nodes, -1 without spread */
    uint32_t vrank, trank; /* 1-based; 0 = not in that ranking */
    uint32_t order;        /* spread: position in the cue's ranking; UINT32_MAX if not in it */
} ranked;

static int ranked_best_first(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return mn_id_cmp(&x->id, &y->id);
}

/* After spreading: activation, then the cue's own order (so equal scores, such
 * as similarities clamped to a match of 0, keep the cue's ranking), then id. */
static int spread_best_first(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    return mn_id_cmp(&x->id, &y->id);
}

typedef struct accept_arg {
    const mn__space *sp;
    const mn_filter_t *f;
    int64_t now;
} accept_arg;

static bool accept_slot(void *arg, uint32_t slot)
{
    const accept_arg *a = arg;
    return slot < a->sp->n_slots && mn__filter_match(&a->sp->slots[slot], a->f, a->now);
}

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

/* Slot's candidate: its similarity to q (read lock held). */
static cand cand_of(const mn__space *sp, const float *q, uint32_t slot)
{
    cand c = {.slot = slot, .id = sp->slots[slot].id};
    uint32_t dim = sp->def.dim;
    c.score = mn__vec_score(sp->def.metric, q, sp->vecs + (size_t)slot * dim, dim, &c.dist);
    return c;
}

static bool below_threshold(const mn_recall_req_t *req, const cand *c)
{
    return req->has_threshold && c->score < req->threshold;
}

/* Vector top-n through the space's HNSW index (space_index.c) when it applies:
 * the filter runs inside the graph search, hits are re-scored exactly here,
 * and the slots the index thread has not reached yet are ranked exactly. */
static bool vector_rank_index(mn_engine_t *e, const mn__space *sp, const float *q,
                              const mn_recall_req_t *req, int64_t now_ms, cand *heap, size_t cap,
                              size_t *n_out, uint64_t *scanned)
{
    /* the tail is read first: a slot the index thread inserts during the search
     * is then in the tail even if the search missed it */
    const uint32_t *tail[2];
    size_t nt[2];
    mn__space_index_tail(sp, &tail[0], &nt[0], &tail[1], &nt[1]);
    uint32_t *slots = malloc(cap * sizeof *slots);
    uint32_t m = 0;
    if (!slots || !mn__space_index_rank(e, sp, q, req, now_ms, (uint32_t)cap, slots, &m, scanned)) {
        free(slots);
        return false;
    }
    size_t n = 0;
    for (uint32_t i = 0; i < m; i++) {
        cand c = cand_of(sp, q, slots[i]);
        if (!below_threshold(req, &c)) heap_offer_unique(heap, &n, cap, &c);
    }
    free(slots);
    for (int r = 0; r < 2; r++)
        for (size_t i = 0; i < nt[r]; i++) {
            uint32_t slot = tail[r][i];
            if (slot >= sp->n_slots) continue;
            const mn__slot *s = &sp->slots[slot];
            if (s->state != SLOT_LIVE || !s->has_vec || !mn__filter_match(s, &req->filter, now_ms))
                continue;
            (*scanned)++;
            cand c = cand_of(sp, q, slot);
            if (!below_threshold(req, &c)) heap_offer_unique(heap, &n, cap, &c);
        }
    qsort(heap, n, sizeof *heap, best_first);
    *n_out = n;
    return true;
}

/* Vector top-n (read lock held): through the index, or an exact scan. */
static size_t vector_rank(mn_engine_t *e, const mn__space *sp, const float *q,
                          const mn_recall_req_t *req, int64_t now_ms, cand *heap, size_t cap,
                          uint64_t *scanned, bool *indexed)
{
    size_t n = 0;
    if ((*indexed = vector_rank_index(e, sp, q, req, now_ms, heap, cap, &n, scanned))) return n;
    for (uint32_t i = 0; i < sp->n_slots; i++) {
        const mn__slot *s = &sp->slots[i];
        if (!s->has_vec || !mn__filter_match(s, &req->filter, now_ms)) continue;
        (*scanned)++;
        cand c = cand_of(sp, q, i);
        if (!below_threshold(req, &c)) heap_offer(heap, &n, cap, &c);
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

static void trace_path(const mn__act_node *nodes, int32_t at, mn_recall_hit_t *h)
{
    mn_via_step_t rev[MN_MAX_HOPS];
    uint32_t n = 0;
    for (int32_t i = at; i >= 0 && nodes[i].parent >= 0 && n < MN_MAX_HOPS; i = nodes[i].parent)
        rev[n++] = (mn_via_step_t){nodes[nodes[i].parent].id, nodes[i].kind, nodes[i].weight};
    for (uint32_t i = 0; i < n; i++)
        h->via[i] = rev[n - 1 - i]; /* seed first */
    h->n_via = n;
}

/* One recall's working state. */
typedef struct recall {
    const mn_recall_req_t *req;
    uint32_t k;
    bool by_vec, by_text;
    float wv, wt; /* fusion weights */
    int64_t now_ms;
    float *q; /* the vector cue as the space holds vectors (unit for cosine) */
    size_t pool;
    cand *vh;      /* vector ranking */
    mn_kw_hit_t *th; /* keyword ranking */
    ranked *r;     /* fused, then activated */
    mn__act_node *nodes;
    size_t n_nodes;
    bool indexed;
    uint64_t scanned;
    mn__time_plan time; /* the text's time window (recall_time.c) */
    /* near-duplicates (docs/recall.md §10): fold them (a space with a
     * dedup_threshold, unless keep_duplicates); more: folding left fewer than k
     * while a ranking was full, so rank deeper (pool at least pool_min) */
    bool collapse, more;
    size_t pool_min;
    mn_id_t *folded;     /* the ids folded ... */
    uint32_t *folded_to; /* ... into rc->r[folded_to[i]] */
    size_t n_folded;
} recall;

/* The request's own checks (the space's come with it). */
static mn_err check_request(const mn_recall_req_t *req, recall *rc, mn_error *err)
{
    rc->k = req->k ? req->k : 10;
    if (rc->k > MN_K_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "k: must be in 1..%d, got %u", MN_K_MAX, rc->k);
    if (req->ef > MN_EF_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "ef: at most %d, got %u", MN_EF_MAX, req->ef);
    mn_err r = mn__validate_filter(&req->filter, err);
    if (r) return r;
    if (req->has_threshold && !isfinite(req->threshold))
        return mn_error_set(err, MN_ERR_INVALID, "threshold: not a finite number");
    rc->by_vec = req->embedding != NULL;
    rc->by_text = req->text != NULL;
    if (!rc->by_vec && !rc->by_text)
        return mn_error_set(err, MN_ERR_INVALID, "a recall needs an embedding, text, or both");
    if (rc->by_text && (req->text_len > MN_CONTENT_MAX || !mn_utf8_valid(req->text, req->text_len)))
        return mn_error_set(err, MN_ERR_INVALID, "text: not valid UTF-8 or longer than %d bytes",
                            MN_CONTENT_MAX);
    rc->wv = req->vector_weight;
    rc->wt = req->text_weight;
    if (!(rc->wv >= 0 && rc->wt >= 0 && isfinite(rc->wv) && isfinite(rc->wt)))
        return mn_error_set(err, MN_ERR_INVALID, "weights: must be finite and >= 0");
    if (rc->wv == 0 && rc->wt == 0) rc->wv = rc->wt = 1;
    if (!req->spread) return MN_OK;
    if (req->max_hops > MN_MAX_HOPS)
        return mn_error_set(err, MN_ERR_INVALID, "max_hops: at most %d", MN_MAX_HOPS);
    if (!(req->hop_decay >= 0 && req->hop_decay <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "hop_decay: must be in (0, 1]");
    if (!(req->min_activation >= 0 && req->min_activation < 1))
        return mn_error_set(err, MN_ERR_INVALID, "min_activation: must be in (0, 1)");
    if (req->max_visited > 100000)
        return mn_error_set(err, MN_ERR_INVALID, "max_visited: at most 100000");
    return MN_OK;
}

/* The vector cue checked against sp and copied into rc->q (unit for cosine). */
static mn_err prepare_query(const mn__space *sp, recall *rc, mn_error *err)
{
    const mn_recall_req_t *req = rc->req;
    uint32_t dim = sp->def.dim;
    if (req->dim != dim)
        return mn_error_set(err, MN_ERR_INVALID, "embedding: expected %u values, got %u", dim,
                            req->dim);
    if (!(rc->q = malloc(dim * sizeof(float))))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(req->embedding[i]))
            return mn_error_set(err, MN_ERR_INVALID, "embedding[%u]: not a finite float32", i);
        rc->q[i] = req->embedding[i];
    }
    if (sp->def.metric == MN_METRIC_COSINE && !mn__vec_normalize(rc->q, dim))
        return mn_error_set(err, MN_ERR_INVALID,
                            "embedding: the zero vector has no direction (cosine space)");
    return MN_OK;
}

/* The rankings' buffers: with two rankings to fuse, or spreading from a cue
 * with words (whose seeds are its top max(2k, 50), so that a memory the words
 * ranked below k keeps its base when an associate lifts it into the top k),
 * each ranking contributes a deeper pool than k. An embedding cue alone seeds
 * its top k: a memory spreading reaches is scored by its own vector anyway. */
static mn_err alloc_pools(recall *rc, mn_error *err)
{
    size_t k = rc->k;
    rc->pool = rc->by_text && (rc->by_vec || rc->req->spread) ? (k * 2 < 50 ? 50 : k * 2) : k;
    if (rc->pool < rc->pool_min) rc->pool = rc->pool_min;
    if (rc->pool > MN_K_MAX) rc->pool = MN_K_MAX;
    rc->vh = rc->by_vec ? malloc(rc->pool * sizeof *rc->vh) : NULL;
    rc->th = rc->by_text ? malloc(rc->pool * sizeof *rc->th) : NULL;
    rc->r = malloc(2 * rc->pool * sizeof *rc->r);
    if ((rc->by_vec && !rc->vh) || (rc->by_text && !rc->th) || !rc->r)
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}

/* Both rankings into rc->r, one entry per memory (read lock held). */
static size_t merge_rankings(const mn__space *sp, recall *rc, size_t nv, size_t nt)
{
    ranked *r = rc->r;
    size_t n = 0;
    for (size_t i = 0; i < nv; i++)
        r[n++] = (ranked){.id = rc->vh[i].id,
                          .slot = rc->vh[i].slot,
                          .sim = rc->vh[i].score,
                          .dist = rc->vh[i].dist,
                          .kw = NAN,
                          .cov = NAN,
                          .vrank = (uint32_t)i + 1};
    for (size_t i = 0; i < nt; i++) {
        const mn_kw_hit_t *h = &rc->th[i];
        ranked *x = rc->by_vec ? find_slot(r, nv, h->slot) : NULL;
        if (!x) {
            const mn__slot *s = &sp->slots[h->slot];
            x = &r[n++];
            *x = (ranked){.id = s->id, .slot = h->slot, .sim = NAN, .dist = NAN};
            if (rc->by_vec && s->has_vec) { /* fused: text-only finds get their similarity too */
                cand c = cand_of(sp, rc->q, h->slot);
                x->sim = c.score;
                x->dist = c.dist;
            }
        }
        x->kw = h->score;
        x->cov = h->coverage;
        x->trank = (uint32_t)i + 1;
    }
    return n;
}

/* Final scores (reciprocal rank fusion with both cues) and the threshold:
 * vector similarity when there is a vector cue, else keyword coverage. */
static size_t score_ranked(mn_metric_t metric, const recall *rc, size_t n)
{
    const mn_recall_req_t *req = rc->req;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        ranked *x = &rc->r[i];
        if (rc->by_vec && rc->by_text)
            x->score = (x->vrank ? rc->wv / (RRF_K + x->vrank) : 0) +
                       (x->trank ? rc->wt / (RRF_K + x->trank) : 0);
        else if (rc->by_vec)
            x->score = x->sim;
        else
            x->score = x->kw;
        if (req->has_threshold && !rc->by_vec && !(x->cov >= req->threshold)) continue;
        x->match = cue_match(metric, x->sim, x->cov, rc->by_vec, rc->by_text, rc->wv, rc->wt);
        x->act = NAN;
        x->seed = true;
        x->node = -1;
        rc->r[kept++] = *x;
    }
    qsort(rc->r, kept, sizeof *rc->r, ranked_best_first);
    return kept;
}

/* The cue's own evidence for a ranked memory, in [0, 1] (docs/recall.md §4):
 * a vector cue's match; the words' BM25 over the best BM25 (both in the
 * cue's order); with both cues their weighted mean, a score fusion (RRF's
 * ranks say nothing of how well a memory matched). Spreading mixes it with
 * associates' activation. */
static float base_of_ranked(const recall *rc, mn_metric_t metric, const ranked *x, float kw_top)
{
    float vm = rc->by_vec && !isnan(x->sim) ? mn__vec_match(metric, x->sim) : 0;
    float t = kw_top > 0 && x->kw > 0 ? x->kw / kw_top : 0;
    if (rc->by_vec && rc->by_text) /* a memory without a vector: its words alone, as match */
        return isnan(x->sim) ? t : (rc->wv * vm + rc->wt * t) / (rc->wv + rc->wt);
    return rc->by_vec ? vm : t;
}

static int float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

typedef struct base_arg {
    const mn__space *sp;
    const recall *rc;
} base_arg;

/* A memory reached only through associations: an embedding cue scores it by
 * its own vector (with words too, weighted as in base_of_ranked: the words
 * did not return it, so their part is 0); words alone have no score for it. */
static float base_of_slot(void *arg, uint32_t slot)
{
    const base_arg *a = arg;
    const recall *rc = a->rc;
    if (!rc->by_vec || !a->sp->slots[slot].has_vec) return 0;
    cand c = cand_of(a->sp, rc->q, slot);
    float vm = mn__vec_match(a->sp->def.metric, c.score);
    return rc->by_text ? rc->wv * vm / (rc->wv + rc->wt) : vm;
}

/* Runs spreading activation from the cue's ranked memories (lock held; the
 * first n of rc->r, best first) and replaces rc->r with every activated
 * memory, ranked by activation. */
static mn_err spread_ranked(const mn__space *sp, recall *rc, size_t *n)
{
    const mn_recall_req_t *req = rc->req;
    mn__spread_params p = {
        .max_hops = req->max_hops ? req->max_hops : 2,
        .hop_decay = req->hop_decay > 0 ? req->hop_decay : 0.75f,
        .min_activation = req->min_activation > 0 ? req->min_activation : 0.1f,
        .max_visited = req->max_visited ? req->max_visited : 1000,
        /* semantic links are made from the vectors: with an embedding cue what
         * they say is in every memory's base already (docs/recall.md §4) */
        .kinds = ((1u << MN_EDGE_KINDS) - 1) & ~(rc->by_vec ? 1u << MN_EDGE_SEMANTIC : 0u) &
                 ~(1u << MN_EDGE_DUPLICATE), /* a twin is no second piece of evidence */
    };
    ranked *r = rc->r;
    uint32_t *slots = malloc(*n * sizeof *slots);
    float *bases = malloc(*n * sizeof *bases);
    if (!slots || !bases) {
        free(slots);
        free(bases);
        return MN_ERR_NOMEM;
    }
    float kw_top = 0;
    for (size_t i = 0; i < *n; i++)
        if (!isnan(r[i].kw) && r[i].kw > kw_top) kw_top = r[i].kw;
    for (size_t i = 0; i < *n; i++) {
        slots[i] = r[i].slot;
        bases[i] = base_of_ranked(rc, sp->def.metric, &r[i], kw_top);
    }
    /* the k-th best base bounds the k-th activation from below: a memory under
     * it cannot lift anything into the top k (activation.h) */
    if (*n >= rc->k) {
        float *sorted = malloc(*n * sizeof *sorted);
        if (!sorted) {
            free(slots);
            free(bases);
            return MN_ERR_NOMEM;
        }
        memcpy(sorted, bases, *n * sizeof *sorted);
        qsort(sorted, *n, sizeof *sorted, float_desc);
        p.fire_floor = sorted[rc->k - 1];
        free(sorted);
    }
    base_arg ba = {sp, rc};
    mn_err err = mn__spread(sp, &req->filter, rc->now_ms, slots, bases, *n, base_of_slot, &ba, &p,
                            &rc->nodes, &rc->n_nodes);
    free(slots);
    free(bases);
    if (err) return err;
    size_t nn = rc->n_nodes;
    ranked *nr = realloc(r, (nn ? nn : 1) * sizeof *nr);
    if (!nr) return MN_ERR_NOMEM;
    rc->r = nr;
    for (size_t i = 0; i < nn; i++) {
        const mn__act_node *nd = &rc->nodes[i];
        ranked *x = &nr[i];
        if (i >= *n) { /* reached only through associations */
            *x = (ranked){.id = nd->id,
                          .slot = nd->slot,
                          .sim = NAN,
                          .dist = NAN,
                          .kw = NAN,
                          .cov = NAN,
                          .order = UINT32_MAX};
            if (rc->by_vec && sp->slots[nd->slot].has_vec) {
                cand c = cand_of(sp, rc->q, nd->slot);
                x->sim = c.score;
                x->dist = c.dist;
            }
            x->match =
                cue_match(sp->def.metric, x->sim, x->cov, rc->by_vec, rc->by_text, rc->wv, rc->wt);
        } else {
            x->order = (uint32_t)i;
        }
        mn_assert(nd->act >= nd->base);
        x->base = nd->base;
        x->score = nd->act;
        float a = x->match + (nd->act - nd->base); /* the cue's match plus the bonus */
        x->act = a < 1 ? a : 1;
        x->seed = nd->seed;
        x->node = (int32_t)i;
    }
    *n = nn;
    qsort(nr, nn, sizeof *nr, spread_best_first);
    return MN_OK;
}

/* Near-duplicates fold into the best-ranked of their group (the memories
 * sharing a canonical, assoc.c), lock held: rc->r[0..*n), best first, keeps the
 * first of each group, at most k groups; the others of those groups are noted
 * in rc->folded for the hit they fold into. */
static mn_err collapse_ranked(const mn__space *sp, recall *rc, size_t *n)
{
    mn_id_t *canon = malloc((rc->k ? rc->k : 1) * sizeof *canon);
    rc->folded = malloc((*n ? *n : 1) * sizeof *rc->folded);
    rc->folded_to = malloc((*n ? *n : 1) * sizeof *rc->folded_to);
    if (!canon || !rc->folded || !rc->folded_to) {
        free(canon);
        return MN_ERR_NOMEM;
    }
    size_t kept = 0;
    rc->n_folded = 0;
    for (size_t i = 0; i < *n; i++) {
        mn_id_t c = mn__slot_canonical(&sp->slots[rc->r[i].slot]);
        size_t j = 0;
        while (j < kept && mn_id_cmp(&canon[j], &c))
            j++;
        if (j < kept) {
            rc->folded[rc->n_folded] = rc->r[i].id;
            rc->folded_to[rc->n_folded++] = (uint32_t)j;
        } else if (kept < rc->k) {
            canon[kept] = c;
            rc->r[kept++] = rc->r[i];
        }
    }
    free(canon);
    mn_assert(kept <= *n && kept <= rc->k);
    *n = kept;
    return MN_OK;
}

/* Ranks sp's memories against the cue under the read lock: the top k (or,
 * with spread, what the top k activate) in rc->r with their retention. */
static mn_err rank(mn_engine_t *e, mn__space *sp, recall *rc, size_t *n_out)
{
    const mn_recall_req_t *req = rc->req;
    size_t nv = 0, nt = 0, n;
    mn_err r = MN_OK;
    pthread_rwlock_rdlock(&sp->lock);
    if (rc->by_vec)
        nv = vector_rank(e, sp, rc->q, req, rc->now_ms, rc->vh, rc->pool, &rc->scanned,
                         &rc->indexed);
    if (rc->by_text) {
        accept_arg aa = {sp, &req->filter, rc->now_ms};
        nt = mn_kw_search(sp->kw, req->text, req->text_len, accept_slot, &aa, rc->pool, rc->th);
        rc->scanned += nt;
        nt = mn__recall_time_boost(sp, &rc->time, req, rc->now_ms, rc->th, nt, rc->pool,
                                   &rc->scanned);
    }
    n = score_ranked(sp->def.metric, rc, merge_rankings(sp, rc, nv, nt));
    if (req->spread && n > 0) /* the cue's top max(2k, 50) (of each ranking) seed the spread */
        r = spread_ranked(sp, rc, &n);
    rc->more = false;
    if (!r && rc->collapse) {
        r = collapse_ranked(sp, rc, &n);
        rc->more = !r && n < rc->k && rc->n_folded && rc->pool < MN_K_MAX &&
                   (nv == rc->pool || nt == rc->pool);
    }
    if (n > rc->k) n = rc->k;
    for (size_t i = 0; i < n; i++) {
        mn_strength_t st;
        mn__slot_strength(&sp->slots[rc->r[i].slot], e->opts.initial_stability_days, &st);
        rc->r[i].retention = mn__retention(st.stability_days, rc->now_ms - st.last_access_ms);
    }
    pthread_rwlock_unlock(&sp->lock);
    *n_out = r ? 0 : n;
    return r;
}

/* Hit h from ranked x and its record (read after the lock). */
static void fill_hit(const recall *rc, const ranked *x, mn_recall_hit_t *h)
{
    const mn_recall_req_t *req = rc->req;
    if (req->filter.as_of_ms != MN_TIME_UNSET) /* as it was then */
        h->memory.suppressed =
            mn__filter_suppressed_at(h->memory.suppressed, h->memory.suppressed_at_ms,
                                     h->memory.unsuppressed_at_ms, req->filter.as_of_ms);
    h->score = x->score;
    h->similarity = x->sim;
    h->distance = x->dist;
    h->keyword = x->kw;
    h->coverage = x->cov;
    h->activation = isnan(x->act) ? NAN : x->act > 1 ? 1 : x->act;
    h->seed = x->seed;
    if (req->trace && x->node >= 0) trace_path(rc->nodes, x->node, h);
    h->retention = x->retention;
    float match = req->spread ? h->activation : x->match;
    bool semantic = h->memory.kind == MN_KIND_SEMANTIC;
    mn__confidence_of(match, h->memory.confidence, x->retention,
                      mn__support_factor(semantic, h->memory.n_support), &h->confidence);
    if (!x->seed) h->confidence.reasons |= MN_REASON_ASSOCIATIVE;
    /* invalidated by then (a superseded version is only ever ranked in its own time) */
    int64_t t = req->filter.as_of_ms != MN_TIME_UNSET ? req->filter.as_of_ms : rc->now_ms;
    if (h->memory.valid_to_ms && !h->memory.superseded && h->memory.valid_to_ms <= t)
        mn__confidence_superseded(&h->confidence);
}

/* The near-duplicates folded into rc->r[i], onto h. */
static mn_err attach_duplicates(const recall *rc, size_t i, mn_recall_hit_t *h)
{
    uint32_t n = 0;
    for (size_t j = 0; j < rc->n_folded; j++)
        n += rc->folded_to[j] == i;
    if (!n) return MN_OK;
    if (!(h->duplicate_ids = malloc(n * sizeof *h->duplicate_ids))) return MN_ERR_NOMEM;
    for (size_t j = 0; j < rc->n_folded; j++)
        if (rc->folded_to[j] == i) h->duplicate_ids[h->duplicates++] = rc->folded[j];
    return MN_OK;
}

/* The ids h shows besides its own (trace steps, folded near-duplicates) come from slots:
 * a corrected memory's are its current version's; clients see lineage ids. */
static void show_lineages(mn_engine_t *e, const mn__space *sp, mn_recall_hit_t *h)
{
    for (uint32_t i = 0; i < h->n_via; i++)
        h->via[i].from = mn__versions_lineage_of(&e->store, sp, &h->via[i].from);
    for (uint32_t i = 0; i < h->duplicates; i++)
        h->duplicate_ids[i] = mn__versions_lineage_of(&e->store, sp, &h->duplicate_ids[i]);
}

/* The hits of the n ranked memories, read from the store (a memory forgotten
 * since the ranking is left out). */
static mn_err read_hits(mn_engine_t *e, const mn__space *sp, const recall *rc, size_t n,
                        mn_recall_result_t *out, mn_error *err)
{
    out->hits = calloc(n ? n : 1, sizeof *out->hits);
    if (!out->hits) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        mn_recall_hit_t *h = &out->hits[out->n_hits];
        mn_error rerr = {0};
        mn_err rr = mn__record_read(&e->store, e->opts.initial_stability_days, sp, &rc->r[i].id,
                                    rc->req->include_embedding, &h->memory, &rerr);
        if (rr == MN_ERR_GONE || rr == MN_ERR_NOT_FOUND) continue; /* forgotten meanwhile */
        if (rr) {
            if (err) *err = rerr;
            return rr;
        }
        mn__versions_present(&h->memory);
        fill_hit(rc, &rc->r[i], h);
        out->n_hits++;
        if (attach_duplicates(rc, i, h)) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        show_lineages(e, sp, h);
    }
    return MN_OK;
}

/* After a recall: reinforcement of the hits, and the recall event. */
static void after_recall(mn_engine_t *e, mn__space *sp, const char *space, const recall *rc,
                         const mn_recall_result_t *out)
{
    if (rc->req->reinforce && out->n_hits) {
        mn_id_t *ids = malloc(out->n_hits * sizeof *ids);
        if (ids) {
            for (size_t i = 0; i < out->n_hits; i++)
                ids[i] = out->hits[i].memory.version_id; /* the version ranked */
            mn__reinforce_enqueue(e, sp, ids, out->n_hits, rc->now_ms);
            free(ids);
        }
    }
    if (!mn__events_wanted(e)) return;
    mn_event_t ev = {.kind = MN_EVENT_RECALL,
                   .at_ms = rc->now_ms,
                   .count = (uint32_t)out->n_hits,
                   .recall_confidence = out->recall_confidence};
    snprintf(ev.path, sizeof ev.path, "%s", out->path);
    mn__events_publish(e, space, &ev);
}

static void free_rankings(recall *rc)
{
    free(rc->nodes);
    free(rc->vh);
    free(rc->th);
    free(rc->r);
    free(rc->folded);
    free(rc->folded_to);
    rc->nodes = NULL;
    rc->vh = NULL;
    rc->th = NULL;
    rc->r = NULL;
    rc->folded = NULL;
    rc->folded_to = NULL;
    rc->n_nodes = rc->n_folded = 0;
}

/* Folding near-duplicates left fewer than k: rank again with twice the pool. */
static mn_err deepen(recall *rc, mn_error *err)
{
    rc->pool_min = 2 * rc->pool;
    free_rankings(rc);
    return alloc_pools(rc, err);
}

static mn_err recall_op(mn_engine_t *e, const char *space, const mn_recall_req_t *req,
                        mn_recall_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    recall rc = {.req = req};
    mn_err r = check_request(req, &rc, err);
    if (r) return r;
    mn__space *sp = mn__registry_acquire(&e->reg, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    if (rc.by_vec && (r = prepare_query(sp, &rc, err))) goto out;
    rc.collapse = !req->keep_duplicates && sp->def.dedup_threshold > 0;
    if (rc.collapse) rc.pool_min = 2 * (size_t)rc.k; /* room for the folded */
    if ((r = alloc_pools(&rc, err))) goto out;
    rc.now_ms = mn__now(e);
    r = mn__filter_check_as_of(&req->filter, rc.now_ms, e->opts.as_of_max_age_ms, err);
    if (r) goto out;
    mn_recall_req_t treq; /* req with the text's time window applied */
    if ((r = mn__recall_time_plan(req, rc.now_ms, &treq, &rc.time, out, err))) goto out;
    rc.req = &treq;
    size_t n;
    for (;;) {
        if ((r = rank(e, sp, &rc, &n))) {
            mn_error_set(err, r, "out of memory spreading activation");
            goto out;
        }
        if (!rc.more) break;
        if ((r = deepen(&rc, err))) goto out;
    }
    if (rc.by_vec && rc.by_text)
        out->path = rc.indexed ? "hnsw+keyword" : "exact+keyword";
    else
        out->path = rc.by_vec ? (rc.indexed ? "hnsw" : "exact") : "keyword";
    out->scanned = rc.scanned;
    if ((r = read_hits(e, sp, &rc, n, out, err))) goto out;
    for (size_t i = 0; i < out->n_hits; i++)
        if (out->hits[i].confidence.value > out->recall_confidence)
            out->recall_confidence = out->hits[i].confidence.value;
    after_recall(e, sp, space, &rc, out);
out:
    if (r) mn_recall_result_clear(out);
    free(rc.q);
    free_rankings(&rc);
    mn__space_unref(sp);
    return r;
}

mn_err mn_engine_recall(mn_engine_t *e, const char *space, const mn_recall_req_t *req,
                        mn_recall_result_t *out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn__timed(&e->h_recall, t0, recall_op(e, space, req, out, err));
}
