/* Layout of the HNSW index shared by hnsw.c (insert, remove, repair),
 * hnsw_search.c (layer search, queries) and hnsw_persist.c (save, load).
 *
 * Per slot, layer 0 is one block of L0 words: [seq][count|flags][2M ids].
 * seq is the node's seqlock (odd while a writer holds it) and covers every
 * layer of the node; readers copy a list and retry if seq moved. Links and
 * count words are only accessed atomically (relaxed, ordered by seq), so
 * searches are data-race free alongside writers. A node with levels above 0
 * has upper[slot] = i > 0 and ublk[i] = [level][(count, M ids) per level 1..level].
 * A node's level never changes once drawn, so a reused slot keeps its block
 * (blocks are freed only with the index). */
#ifndef MN_HNSW_INTERNAL_H
#define MN_HNSW_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "hnsw.h"
#include "vec_kernels.h"

#define HNSW_LIVE (1u << 16)    /* slot holds a node (searchable unless removed) */
#define HNSW_REMOVED (1u << 17) /* removed: traversed, never returned */
#define HNSW_COUNT_MASK 0xffffu
#define HNSW_MAX_LEVEL 16
#define HNSW_MAX_M 64
#define HNSW_ENTRY_NONE UINT64_MAX

typedef struct hnsw_cand {
    float d;
    uint32_t id;
} hnsw_cand;

/* Per-search scratch, pooled by the index: visited tags and the two heaps. */
typedef struct hnsw_ctx {
    uint16_t *tags;
    uint32_t tag_cap;
    uint16_t epoch;
    hnsw_cand *cand; /* min-heap: frontier */
    size_t n_cand, cap_cand;
    hnsw_cand *res; /* max-heap: best ef accepted */
    size_t n_res, cap_res;
    int8_t *qcode; /* quantized query (code row layout) */
    struct hnsw_ctx *next;
} hnsw_ctx;

/* A query as the distance functions see it. */
typedef struct hnsw_query {
    const float *v;
    const uint8_t *code; /* quantized row of the query, or NULL: exact distances */
} hnsw_query;

struct mn_hnsw {
    mn_hnsw_params_t p;
    const mn_vec_kernels_t *k;
    uint32_t dim, M, M0, l0w, upw; /* l0w = 2 + M0 words; upw = 1 + M words per upper level */
    double mult;                   /* 1 / ln(M) */
    pthread_rwlock_t grow;         /* shared: every operation; exclusive: grow, overwrite */
    pthread_rwlock_t writers;      /* shared: insert, remove; exclusive: save (taken first) */
    uint32_t cap;                  /* slots the arrays hold */
    _Atomic uint32_t hwm;          /* 1 + highest slot ever used */
    _Atomic uint32_t *l0;          /* cap * l0w */
    uint32_t *upper;               /* cap; index into ublk, 0 = level 0 only */
    _Atomic uint32_t **ublk;
    uint32_t n_ublk, cap_ublk; /* guarded by ublk_mu (growth: exclusive grow lock) */
    pthread_mutex_t ublk_mu;
    float *own;             /* cap * dim when the index owns vectors */
    float *const *ext;      /* else: *ext + slot * dim */
    uint8_t *codes;         /* cap * code_stride when quantized */
    size_t code_stride;     /* dim int8 rounded up to 4, then float scale, float sqnorm */
    _Atomic uint64_t entry; /* level << 32 | slot, or HNSW_ENTRY_NONE */
    pthread_mutex_t entry_mu;
    _Atomic uint64_t draws; /* level draws so far (seeded sequence) */
    _Atomic uint64_t live, removed;
    pthread_mutex_t pool_mu;
    hnsw_ctx *pool;
};

static inline _Atomic uint32_t *hnsw_l0(const mn_hnsw_t *h, uint32_t slot)
{
    return h->l0 + (size_t)slot * h->l0w;
}

static inline uint32_t hnsw_level(const mn_hnsw_t *h, uint32_t slot)
{
    uint32_t u = h->upper[slot];
    return u ? atomic_load_explicit(&h->ublk[u][0], memory_order_relaxed) : 0;
}

/* The count word of slot's list at level (ids follow it). */
static inline _Atomic uint32_t *hnsw_list(const mn_hnsw_t *h, uint32_t slot, uint32_t level)
{
    if (level == 0) return hnsw_l0(h, slot) + 1;
    return h->ublk[h->upper[slot]] + 1 + (size_t)(level - 1) * h->upw;
}

static inline uint32_t hnsw_max_links(const mn_hnsw_t *h, uint32_t level)
{
    return level ? h->M : h->M0;
}

static inline uint32_t hnsw_flags(const mn_hnsw_t *h, uint32_t slot)
{
    return atomic_load_explicit(hnsw_l0(h, slot) + 1, memory_order_relaxed) & ~HNSW_COUNT_MASK;
}

static inline const float *hnsw_vec(const mn_hnsw_t *h, const float *base, uint32_t slot)
{
    return base + (size_t)slot * h->dim;
}

static inline const float *hnsw_base(const mn_hnsw_t *h)
{
    return h->own ? h->own : *h->ext;
}

/* Distance between two float vectors under the index metric. */
static inline float hnsw_fdist(const mn_hnsw_t *h, const float *a, const float *b)
{
    switch (h->p.metric) {
    case MN_METRIC_L2:
        return h->k->l2sq(a, b, h->dim);
    case MN_METRIC_COSINE:
        return 1.0f - h->k->dot(a, b, h->dim);
    case MN_METRIC_DOT:
        return -h->k->dot(a, b, h->dim);
    }
    return 0;
}

/* ---- seqlock on a node ---- */
#if defined(__SANITIZE_THREAD__)
#define HNSW_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HNSW_TSAN 1
#endif
#endif

/* A reader's second look at seq: an acquire fence then a relaxed load; under
 * TSan (which has no fences) a read-modify-write of 0, its documented
 * equivalent (Boehm, "Can seqlocks get along with programming language
 * memory models?", MSPC 2012). */
static inline uint32_t hnsw_seq_recheck(_Atomic uint32_t *seq)
{
#ifdef HNSW_TSAN
    return atomic_fetch_add_explicit(seq, 0, memory_order_acq_rel);
#else
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(seq, memory_order_relaxed);
#endif
}

/* After a writer takes a node's seqlock: later stores stay after it. */
static inline void hnsw_fence_release(void)
{
#ifndef HNSW_TSAN
    atomic_thread_fence(memory_order_release);
#endif
}

static inline void hnsw_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Copies slot's list at level into out; returns the count. */
uint32_t hnsw_read_list(const mn_hnsw_t *h, uint32_t slot, uint32_t level, uint32_t *out,
                        uint32_t *seq_out);
/* Locks slot's seqlock if it still reads `seen` (even); false if it moved. */
bool hnsw_lock_if(const mn_hnsw_t *h, uint32_t slot, uint32_t seen);
void hnsw_lock(const mn_hnsw_t *h, uint32_t slot);
void hnsw_unlock(const mn_hnsw_t *h, uint32_t slot);
/* Writes a list (caller holds the node's lock); level 0 keeps the flags. */
void hnsw_write_list(const mn_hnsw_t *h, uint32_t slot, uint32_t level, const uint32_t *ids,
                     uint32_t n);

/* The list of node at level after some links were lost: keep[n_keep] stay
 * as they are, then subs (repeats, node itself and removed nodes skipped)
 * fill the room nearest first, those passing the heuristic against the
 * links so far first, then the nearest of the rest until `target` links.
 * scratch holds n_subs candidates. Returns the count written to out. */
uint32_t hnsw_refill(const mn_hnsw_t *h, const float *base, uint32_t node, uint32_t level,
                     const uint32_t *keep, uint32_t n_keep, const uint32_t *subs, uint32_t n_subs,
                     uint32_t target, uint32_t *out, hnsw_cand *scratch);

/* ---- search (hnsw_search.c) ---- */
hnsw_ctx *hnsw_ctx_get(mn_hnsw_t *h);
/* Starts a new set of visited marks (c->tags[id] == c->epoch: visited). */
static inline void hnsw_ctx_next_epoch(hnsw_ctx *c)
{
    if (++c->epoch == 0) {
        for (uint32_t i = 0; i < c->tag_cap; i++)
            c->tags[i] = 0;
        c->epoch = 1;
    }
}
void hnsw_ctx_put(mn_hnsw_t *h, hnsw_ctx *c);
void hnsw_ctx_free(hnsw_ctx *c);
/* Greedy walk from (cur, *curd) down to level `to` (exclusive of levels <= to);
 * returns the nearest node found. */
uint32_t hnsw_greedy(const mn_hnsw_t *h, const float *base, const hnsw_query *q, uint32_t cur,
                     float *curd, uint32_t from_level, uint32_t to_level);
/* Beam search of one layer from entry (distance d_entry) with width ef:
 * leaves the best ef accepted nodes in c->res (a max-heap). Removed nodes and
 * `exclude` are never accepted; accept (may be NULL) filters the rest. */
void hnsw_search_layer(const mn_hnsw_t *h, const float *base, const hnsw_query *q, uint32_t level,
                       uint32_t entry, float d_entry, uint32_t ef, mn_hnsw_accept_fn accept,
                       void *arg, uint32_t exclude, hnsw_ctx *c, mn_hnsw_stats_t *st);
/* Distance from a query to a node (codes when q->code is set). */
float hnsw_qdist(const mn_hnsw_t *h, const float *base, const hnsw_query *q, uint32_t slot);
/* Fills a code row from a float vector. */
void hnsw_quantize(const mn_hnsw_t *h, const float *v, uint8_t *row);

/* ---- hnsw.c helpers used by persistence ---- */
mn_err hnsw_alloc(const mn_hnsw_params_t *p, float *const *ext, mn_hnsw_t **out, mn_error *err);
mn_err hnsw_grow_locked(mn_hnsw_t *h, uint32_t n);
mn_err hnsw_ublk_add(mn_hnsw_t *h, uint32_t level, uint32_t *idx);
/* Doubles the upper-block table when full (exclusive lock held). */
mn_err hnsw_ublk_grow_locked(mn_hnsw_t *h);

#endif
