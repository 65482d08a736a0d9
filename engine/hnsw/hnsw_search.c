/* HNSW search: greedy descent through the upper layers, then a beam search
 * of width ef on layer 0 (Malkov & Yashunin 2018, Algorithms 2 and 5).
 *
 * Filters run inside the search, as in hnswlib's filtered search: a rejected
 * (or removed) node is still expanded, so the graph stays connected, but never
 * enters the result heap, and the search does not stop until the result heap
 * holds ef accepted nodes or the frontier is exhausted. A very selective
 * filter therefore costs up to a full traversal: callers estimate the share
 * with mn_hnsw_selectivity and take the exact path below a threshold.
 *
 * Hot loop: the neighbour list is copied under the node's seqlock, unvisited
 * neighbours are marked and their vectors prefetched in one pass, distances
 * computed in a second. Visited marks are 16-bit epochs in a pooled per-search
 * scratch (cleared only when the epoch wraps).
 *
 * int8 mode: each vector has a code row (x / s rounded, s = max|x| / 127, and
 * the exact squared norm); the query is quantized the same way, traversal
 * uses s_q s_v (q8 . v8) as the dot product (l2 = |q|^2 + |v|^2 - 2 dot), and
 * the ef pool is re-ranked with exact float distances before the top k. */
#include "hnsw_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"

/* ---- scratch pool ---- */

void hnsw_ctx_free(hnsw_ctx *c)
{
    if (!c) return;
    free(c->tags);
    free(c->cand);
    free(c->res);
    free(c->qcode);
    free(c);
}

hnsw_ctx *hnsw_ctx_get(mn_hnsw_t *h)
{
    pthread_mutex_lock(&h->pool_mu);
    hnsw_ctx *c = h->pool;
    if (c) h->pool = c->next;
    pthread_mutex_unlock(&h->pool_mu);
    if (!c && !(c = calloc(1, sizeof *c))) return NULL;
    c->next = NULL;
    if (c->tag_cap < h->cap) {
        uint16_t *t = realloc(c->tags, (size_t)h->cap * sizeof *t);
        if (!t) {
            hnsw_ctx_free(c);
            return NULL;
        }
        memset(t + c->tag_cap, 0, (size_t)(h->cap - c->tag_cap) * sizeof *t);
        c->tags = t;
        c->tag_cap = h->cap;
    }
    if (h->p.quantize && !c->qcode && !(c->qcode = malloc(h->code_stride))) {
        hnsw_ctx_free(c);
        return NULL;
    }
    return c;
}

void hnsw_ctx_put(mn_hnsw_t *h, hnsw_ctx *c)
{
    pthread_mutex_lock(&h->pool_mu);
    c->next = h->pool;
    h->pool = c;
    pthread_mutex_unlock(&h->pool_mu);
}

/* ---- heaps of (distance, id): cand is a min-heap, res a max-heap ---- */

static bool heap_reserve(hnsw_cand **a, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 256;
    while (nc < need)
        nc *= 2;
    hnsw_cand *n = realloc(*a, nc * sizeof *n);
    if (!n) return false;
    *a = n;
    *cap = nc;
    return true;
}

static inline void min_push(hnsw_cand *h, size_t *n, hnsw_cand x)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void min_pop(hnsw_cand *h, size_t *n)
{
    hnsw_cand x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        if (l + 1 < m && h[l + 1].d < h[l].d) l++;
        if (x.d <= h[l].d) break;
        h[i] = h[l];
        i = l;
    }
    if (m) h[i] = x;
}

static inline void max_push(hnsw_cand *h, size_t *n, hnsw_cand x)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].d >= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void max_pop(hnsw_cand *h, size_t *n)
{
    hnsw_cand x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        if (l + 1 < m && h[l + 1].d > h[l].d) l++;
        if (x.d >= h[l].d) break;
        h[i] = h[l];
        i = l;
    }
    if (m) h[i] = x;
}

/* ---- distances ---- */

void hnsw_quantize(const mn_hnsw_t *h, const float *v, uint8_t *row)
{
    float m = 0;
    double sq = 0;
    for (uint32_t i = 0; i < h->dim; i++) {
        float a = fabsf(v[i]);
        if (a > m) m = a;
        sq += (double)v[i] * v[i];
    }
    float scale = m > 0 ? m / 127.0f : 1.0f, inv = 1.0f / scale;
    int8_t *c = (int8_t *)row;
    for (uint32_t i = 0; i < h->dim; i++) {
        long q = lrintf(v[i] * inv);
        c[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
    memset(row + h->dim, 0, h->code_stride - 2 * sizeof(float) - h->dim);
    float sqf = (float)sq;
    memcpy(row + h->code_stride - 2 * sizeof(float), &scale, sizeof scale);
    memcpy(row + h->code_stride - sizeof(float), &sqf, sizeof sqf);
}

static inline float code_dist(const mn_hnsw_t *h, const uint8_t *a, const uint8_t *b)
{
    float sa, sb, na, nb;
    size_t off = h->code_stride - 2 * sizeof(float);
    memcpy(&sa, a + off, 4);
    memcpy(&na, a + off + 4, 4);
    memcpy(&sb, b + off, 4);
    memcpy(&nb, b + off + 4, 4);
    float dot = sa * sb * (float)h->k->dot_i8((const int8_t *)a, (const int8_t *)b, h->dim);
    switch (h->p.metric) {
    case MN_METRIC_L2: {
        float d = na + nb - 2.0f * dot;
        return d > 0 ? d : 0;
    }
    case MN_METRIC_COSINE:
        return 1.0f - dot;
    case MN_METRIC_DOT:
        return -dot;
    }
    return 0;
}

/* Early abandoning (l2 on floats only, where partial sums only grow): the
 * distance is summed in blocks and given up once it exceeds `bound`, the
 * distance a node must beat to enter a full result heap. The search takes the
 * same decisions as with the full distance, reading less of far vectors. */
#define ABANDON_BLOCK 128u

static inline float qdist_bounded(const mn_hnsw_t *h, const float *base, const hnsw_query *q,
                                  uint32_t slot, float bound)
{
#ifdef HNSW_NO_ABANDON
    (void)bound;
    return hnsw_qdist(h, base, q, slot);
#endif
    if (q->code || h->p.metric != MN_METRIC_L2 || h->dim < 2 * ABANDON_BLOCK)
        return hnsw_qdist(h, base, q, slot);
    const float *v = hnsw_vec(h, base, slot);
    float sum = 0;
    uint32_t i = 0;
    for (; i + ABANDON_BLOCK < h->dim; i += ABANDON_BLOCK) {
        sum += h->k->l2sq(q->v + i, v + i, ABANDON_BLOCK);
        if (sum > bound) return sum;
    }
    return sum + h->k->l2sq(q->v + i, v + i, h->dim - i);
}

float hnsw_qdist(const mn_hnsw_t *h, const float *base, const hnsw_query *q, uint32_t slot)
{
    if (q->code) return code_dist(h, q->code, h->codes + (size_t)slot * h->code_stride);
    return hnsw_fdist(h, q->v, hnsw_vec(h, base, slot));
}

/* How much of a vector to prefetch: the whole of a short one; the start of a
 * long one (the hardware prefetcher follows a sequential walk). */
#ifndef HNSW_PREFETCH_BYTES
#define HNSW_PREFETCH_BYTES 512
#endif

static inline void prefetch_node(const mn_hnsw_t *h, const float *base, const hnsw_query *q,
                                 uint32_t slot)
{
    const char *p = q->code ? (const char *)(h->codes + (size_t)slot * h->code_stride)
                            : (const char *)hnsw_vec(h, base, slot);
    size_t bytes = q->code ? h->code_stride : (size_t)h->dim * sizeof(float);
    if (bytes > HNSW_PREFETCH_BYTES) bytes = HNSW_PREFETCH_BYTES;
    for (size_t off = 0; off < bytes; off += 64)
        __builtin_prefetch(p + off);
}

/* The part of a long vector prefetch_node left out, fetched one neighbour
 * ahead of its distance computation. */
static inline void prefetch_rest(const mn_hnsw_t *h, const float *base, const hnsw_query *q,
                                 uint32_t slot)
{
    size_t bytes = q->code ? h->code_stride : (size_t)h->dim * sizeof(float);
    if (bytes <= HNSW_PREFETCH_BYTES) return;
    const char *p = q->code ? (const char *)(h->codes + (size_t)slot * h->code_stride)
                            : (const char *)hnsw_vec(h, base, slot);
    for (size_t off = HNSW_PREFETCH_BYTES; off < bytes; off += 64)
        __builtin_prefetch(p + off);
}

/* ---- layer search ---- */

uint32_t hnsw_greedy(const mn_hnsw_t *h, const float *base, const hnsw_query *q, uint32_t cur,
                     float *curd, uint32_t from_level, uint32_t to_level)
{
    uint32_t nb[2 * HNSW_MAX_M];
    for (uint32_t l = from_level; l > to_level; l--) {
        /* each step strictly improves the distance, so this ends; the cap is a guard */
        for (uint32_t step = 0; step < (1u << 24); step++) {
            bool moved = false;
            uint32_t n = hnsw_read_list(h, cur, l, nb, NULL);
            for (uint32_t i = 0; i < n; i++) {
                if (nb[i] >= h->cap) continue;
                float d = hnsw_qdist(h, base, q, nb[i]);
                if (d < *curd) {
                    *curd = d;
                    cur = nb[i];
                    moved = true;
                }
            }
            if (!moved) break;
        }
    }
    return cur;
}

/* Links only ever point at inserted (LIVE) nodes, so without removals the
 * flags need not be read: that saves a cache miss per result candidate. */
static inline bool acceptable(const mn_hnsw_t *h, uint32_t slot, mn_hnsw_accept_fn accept, void *arg,
                              uint32_t exclude, bool any_removed)
{
    if (slot == exclude) return false;
    if (any_removed && (hnsw_flags(h, slot) & HNSW_REMOVED)) return false;
    return !accept || accept(arg, slot);
}

void hnsw_search_layer(const mn_hnsw_t *h, const float *base, const hnsw_query *q, uint32_t level,
                       uint32_t entry, float d_entry, uint32_t ef, mn_hnsw_accept_fn accept,
                       void *arg, uint32_t exclude, hnsw_ctx *c, mn_hnsw_stats_t *st)
{
    hnsw_ctx_next_epoch(c);
    const uint16_t epoch = c->epoch;
    uint16_t *tags = c->tags;
    c->n_cand = c->n_res = 0;
    uint64_t visited = 1, rejected = 0;
    const bool any_removed = atomic_load_explicit(&h->removed, memory_order_relaxed) != 0;
    if (!heap_reserve(&c->res, &c->cap_res, (size_t)ef + 2) ||
        !heap_reserve(&c->cand, &c->cap_cand, (size_t)ef + 2 * HNSW_MAX_M + 2))
        return;
    tags[entry] = epoch;
    if (exclude < c->tag_cap) tags[exclude] = epoch;
    min_push(c->cand, &c->n_cand, (hnsw_cand){d_entry, entry});
    if (acceptable(h, entry, accept, arg, exclude, any_removed))
        max_push(c->res, &c->n_res, (hnsw_cand){d_entry, entry});
    else
        rejected++;
    float lower = c->n_res ? c->res[0].d : INFINITY;
    uint32_t nb[2 * HNSW_MAX_M];
    while (c->n_cand) {
        hnsw_cand cur = c->cand[0];
        if (cur.d > lower && c->n_res >= ef) break;
        min_pop(c->cand, &c->n_cand);
        uint32_t n = hnsw_read_list(h, cur.id, level, nb, NULL);
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t id = nb[i];
            if (id >= c->tag_cap || tags[id] == epoch) continue;
            tags[id] = epoch;
            nb[m++] = id;
            prefetch_node(h, base, q, id);
        }
        if (!heap_reserve(&c->cand, &c->cap_cand, c->n_cand + m)) break;
        for (uint32_t i = 0; i < m; i++) {
            uint32_t id = nb[i];
#ifndef HNSW_NO_PREFETCH_REST
            if (i + 1 < m) prefetch_rest(h, base, q, nb[i + 1]);
#endif
            float d = qdist_bounded(h, base, q, id, c->n_res < ef ? INFINITY : lower);
            visited++;
            if (c->n_res < ef || d < lower) {
                min_push(c->cand, &c->n_cand, (hnsw_cand){d, id});
                if (acceptable(h, id, accept, arg, exclude, any_removed)) {
                    max_push(c->res, &c->n_res, (hnsw_cand){d, id});
                    if (c->n_res > ef) max_pop(c->res, &c->n_res);
                    lower = c->res[0].d;
                } else {
                    rejected++;
                }
            }
        }
        if (c->n_cand) __builtin_prefetch((const void *)hnsw_l0(h, c->cand[0].id));
    }
    if (st) {
        st->visited += visited;
        st->rejected += rejected;
    }
}

static int hit_cmp(const void *a, const void *b)
{
    const hnsw_cand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

size_t mn_hnsw_search(mn_hnsw_t *h, const float *q, uint32_t k, uint32_t ef, mn_hnsw_accept_fn accept,
                      void *arg, mn_hnsw_hit_t *out, mn_hnsw_stats_t *st)
{
    if (!k || !q) return 0;
    if (!ef) ef = h->p.ef_search;
    if (ef < k) ef = k;
    pthread_rwlock_rdlock(&h->grow);
    uint64_t e = atomic_load_explicit(&h->entry, memory_order_acquire);
    hnsw_ctx *c = e == HNSW_ENTRY_NONE ? NULL : hnsw_ctx_get(h);
    if (!c) {
        pthread_rwlock_unlock(&h->grow);
        return 0;
    }
    const float *base = hnsw_base(h);
    hnsw_query hq = {q, NULL};
    if (h->p.quantize) {
        hnsw_quantize(h, q, (uint8_t *)c->qcode);
        hq.code = (const uint8_t *)c->qcode;
    }
    uint32_t cur = (uint32_t)e;
    float d = hnsw_qdist(h, base, &hq, cur);
    cur = hnsw_greedy(h, base, &hq, cur, &d, (uint32_t)(e >> 32), 0);
    hnsw_search_layer(h, base, &hq, 0, cur, d, ef, accept, arg, UINT32_MAX, c, st);
    if (hq.code) /* exact re-ranking of the pool */
        for (size_t i = 0; i < c->n_res; i++)
            c->res[i].d = hnsw_fdist(h, q, hnsw_vec(h, base, c->res[i].id));
    qsort(c->res, c->n_res, sizeof c->res[0], hit_cmp);
    size_t n = c->n_res < k ? c->n_res : k;
    for (size_t i = 0; i < n; i++)
        out[i] = (mn_hnsw_hit_t){c->res[i].d, c->res[i].id};
    hnsw_ctx_put(h, c);
    pthread_rwlock_unlock(&h->grow);
    return n;
}

double mn_hnsw_selectivity(mn_hnsw_t *h, mn_hnsw_accept_fn accept, void *arg, uint32_t samples,
                           uint64_t seed)
{
    if (!accept || !samples) return 1.0;
    pthread_rwlock_rdlock(&h->grow);
    uint32_t hwm = atomic_load(&h->hwm);
    uint64_t live = 0, ok = 0;
    mn_prng_t p;
    mn_prng_seed(&p, seed);
    for (uint64_t t = 0; hwm && t < 4ull * samples && live < samples; t++) {
        uint32_t s = (uint32_t)mn_prng_below(&p, hwm);
        if ((hnsw_flags(h, s) & (HNSW_LIVE | HNSW_REMOVED)) != HNSW_LIVE) continue;
        live++;
        if (accept(arg, s)) ok++;
    }
    pthread_rwlock_unlock(&h->grow);
    return live ? (double)ok / (double)live : 1.0;
}
