/* HNSW index: construction, removal and repair.
 *
 * Follows Malkov & Yashunin, "Efficient and robust approximate nearest
 * neighbor search using Hierarchical Navigable Small World graphs" (TPAMI
 * 2018): levels drawn as floor(-ln(U) / ln(M)), greedy descent through the
 * upper layers, a beam of ef_construction on each layer the node lives on, and
 * neighbours chosen by the diversity heuristic (Algorithm 4) with at most M
 * links per upper layer and 2M on layer 0.
 *
 * Concurrency: every operation holds h->grow shared (inserts and removes
 * also h->writers shared, which a save takes exclusively); writers lock one
 * node at a time through its seqlock. A list update is computed outside the lock from
 * a snapshot and written only if the node's seq has not moved since
 * (optimistic, like a compare-and-swap), so readers never wait on a pruning.
 *
 * Removal (our design, measured with bench/ann --churn and in
 * tests/unit/test_hnsw.c; figures in docs/hnsw.md): the node is marked and
 * stays traversable until its slot is reused; every neighbour that links back
 * to it keeps its other live links and has the lost ones replaced from the
 * removed node's links (repair(): heuristic first, then nearest, so the list
 * keeps its length). The candidates are the removed node's out-links, as in
 * FreshDiskANN's delete consolidation (Singh et al. 2021), but the survivor's
 * list is not re-pruned as a whole. Any later pruning also drops links to
 * removed nodes. Reusing the slot re-inserts it with the new vector and its
 * old level. */
#include "hnsw_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"

#define OPTIMISTIC_TRIES 8

/* ---- seqlock ---- */

uint32_t hnsw_read_list(const mn_hnsw_t *h, uint32_t slot, uint32_t level, uint32_t *out,
                        uint32_t *seq_out)
{
    _Atomic uint32_t *seq = hnsw_l0(h, slot);
    _Atomic uint32_t *lst = hnsw_list(h, slot, level);
    uint32_t max = hnsw_max_links(h, level);
    for (;;) { /* ends when no writer interleaves: writers hold a node briefly */
        uint32_t s1 = atomic_load_explicit(seq, memory_order_acquire);
        if (s1 & 1) {
            hnsw_pause();
            continue;
        }
        uint32_t n = atomic_load_explicit(lst, memory_order_relaxed) & HNSW_COUNT_MASK;
        if (n > max) n = max;
        for (uint32_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(lst + 1 + i, memory_order_relaxed);
        if (hnsw_seq_recheck(seq) == s1) {
            if (seq_out) *seq_out = s1;
            return n;
        }
    }
}

bool hnsw_lock_if(const mn_hnsw_t *h, uint32_t slot, uint32_t seen)
{
    uint32_t exp = seen;
    if (!atomic_compare_exchange_strong_explicit(hnsw_l0(h, slot), &exp, seen + 1,
                                                 memory_order_acquire, memory_order_relaxed))
        return false;
    hnsw_fence_release();
    return true;
}

void hnsw_lock(const mn_hnsw_t *h, uint32_t slot)
{
    _Atomic uint32_t *seq = hnsw_l0(h, slot);
    for (;;) {
        uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);
        if (!(s & 1) && hnsw_lock_if(h, slot, s)) return;
        hnsw_pause();
    }
}

void hnsw_unlock(const mn_hnsw_t *h, uint32_t slot)
{
    atomic_fetch_add_explicit(hnsw_l0(h, slot), 1, memory_order_release);
}

void hnsw_write_list(const mn_hnsw_t *h, uint32_t slot, uint32_t level, const uint32_t *ids,
                     uint32_t n)
{
    _Atomic uint32_t *lst = hnsw_list(h, slot, level);
    for (uint32_t i = 0; i < n; i++)
        atomic_store_explicit(lst + 1 + i, ids[i], memory_order_relaxed);
    uint32_t keep = atomic_load_explicit(lst, memory_order_relaxed) & ~HNSW_COUNT_MASK;
    atomic_store_explicit(lst, keep | n, memory_order_relaxed);
}

static void set_flags(mn_hnsw_t *h, uint32_t slot, uint32_t set, uint32_t clear)
{
    hnsw_lock(h, slot);
    _Atomic uint32_t *w = hnsw_l0(h, slot) + 1;
    uint32_t v = atomic_load_explicit(w, memory_order_relaxed);
    atomic_store_explicit(w, (v & ~clear) | set, memory_order_relaxed);
    hnsw_unlock(h, slot);
}

/* ---- allocation ---- */

mn_err hnsw_alloc(const mn_hnsw_params_t *p, float *const *ext, mn_hnsw_t **out, mn_error *err)
{
    *out = NULL;
    if (!p || p->dim == 0 || p->dim > MN_DIM_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "hnsw: dim must be in 1..%d", MN_DIM_MAX);
    if (p->metric != MN_METRIC_COSINE && p->metric != MN_METRIC_L2 && p->metric != MN_METRIC_DOT)
        return mn_error_set(err, MN_ERR_INVALID, "hnsw: unknown metric");
    uint32_t M = p->M ? p->M : 16;
    if (M < 2 || M > HNSW_MAX_M)
        return mn_error_set(err, MN_ERR_INVALID, "hnsw: M must be in 2..%d", HNSW_MAX_M);
    mn_hnsw_t *h = calloc(1, sizeof *h);
    if (!h) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    h->p = *p;
    h->p.M = M;
    if (!h->p.ef_construction) h->p.ef_construction = 200;
    if (!h->p.ef_search) h->p.ef_search = 64;
    if (h->p.ef_construction < M) h->p.ef_construction = M;
    h->k = mn_vec_kernels_best();
    h->dim = p->dim;
    h->M = M;
    h->M0 = 2 * M;
    h->l0w = 2 + h->M0;
    h->upw = 1 + M;
    h->mult = 1.0 / log((double)M);
    h->ext = ext;
    h->code_stride = ((size_t)p->dim + 3) / 4 * 4 + 2 * sizeof(float);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->grow, &attr);
    pthread_rwlock_init(&h->writers, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&h->ublk_mu, NULL);
    pthread_mutex_init(&h->entry_mu, NULL);
    pthread_mutex_init(&h->pool_mu, NULL);
    atomic_init(&h->entry, HNSW_ENTRY_NONE);
    atomic_init(&h->hwm, 0);
    atomic_init(&h->draws, 0);
    atomic_init(&h->live, 0);
    atomic_init(&h->removed, 0);
    h->n_ublk = 1; /* index 0 means "no upper levels" */
    *out = h;
    return MN_OK;
}

mn_err mn_hnsw_new(const mn_hnsw_params_t *p, float *const *ext, mn_hnsw_t **out, mn_error *err)
{
    return hnsw_alloc(p, ext, out, err);
}

void mn_hnsw_free(mn_hnsw_t *h)
{
    if (!h) return;
    for (uint32_t i = 1; i < h->n_ublk; i++)
        free((void *)h->ublk[i]);
    free((void *)h->ublk);
    free((void *)h->l0);
    free(h->upper);
    free(h->own);
    free(h->codes);
    while (h->pool) {
        hnsw_ctx *c = h->pool;
        h->pool = c->next;
        hnsw_ctx_free(c);
    }
    pthread_rwlock_destroy(&h->grow);
    pthread_rwlock_destroy(&h->writers);
    pthread_mutex_destroy(&h->ublk_mu);
    pthread_mutex_destroy(&h->entry_mu);
    pthread_mutex_destroy(&h->pool_mu);
    free(h);
}

/* Grows the per-slot arrays to n slots (exclusive lock held, or no sharing yet). */
mn_err hnsw_grow_locked(mn_hnsw_t *h, uint32_t n)
{
    if (n <= h->cap) return MN_OK;
    size_t old = h->cap;
    _Atomic uint32_t *l0 = realloc((void *)h->l0, (size_t)n * h->l0w * sizeof *l0);
    if (!l0) return MN_ERR_NOMEM;
    memset((void *)(l0 + old * h->l0w), 0, (n - old) * h->l0w * sizeof *l0);
    h->l0 = l0;
    uint32_t *up = realloc(h->upper, (size_t)n * sizeof *up);
    if (!up) return MN_ERR_NOMEM;
    memset(up + old, 0, (n - old) * sizeof *up);
    h->upper = up;
    if (!h->ext) {
        float *v = realloc(h->own, (size_t)n * h->dim * sizeof *v);
        if (!v) return MN_ERR_NOMEM;
        memset(v + old * h->dim, 0, (n - old) * h->dim * sizeof *v);
        h->own = v;
    }
    if (h->p.quantize) {
        uint8_t *c = realloc(h->codes, (size_t)n * h->code_stride);
        if (!c) return MN_ERR_NOMEM;
        memset(c + old * h->code_stride, 0, (n - old) * h->code_stride);
        h->codes = c;
    }
    h->cap = n;
    return MN_OK;
}

mn_err mn_hnsw_reserve(mn_hnsw_t *h, uint32_t n, mn_error *err)
{
    pthread_rwlock_wrlock(&h->grow);
    mn_err rc = hnsw_grow_locked(h, n);
    pthread_rwlock_unlock(&h->grow);
    if (rc) return mn_error_set(err, rc, "hnsw: out of memory growing to %u slots", n);
    return MN_OK;
}

/* Appends an upper block for a node of `level` (shared lock held). Returns
 * MN_ERR_BUSY when the block table is full (grow it under the exclusive lock). */
mn_err hnsw_ublk_add(mn_hnsw_t *h, uint32_t level, uint32_t *idx)
{
    pthread_mutex_lock(&h->ublk_mu);
    if (h->n_ublk >= h->cap_ublk) {
        pthread_mutex_unlock(&h->ublk_mu);
        return MN_ERR_BUSY;
    }
    _Atomic uint32_t *b = calloc(1 + (size_t)level * h->upw, sizeof *b);
    if (!b) {
        pthread_mutex_unlock(&h->ublk_mu);
        return MN_ERR_NOMEM;
    }
    atomic_store_explicit(&b[0], level, memory_order_relaxed);
    *idx = h->n_ublk;
    h->ublk[h->n_ublk++] = b;
    pthread_mutex_unlock(&h->ublk_mu);
    return MN_OK;
}

mn_err hnsw_ublk_grow_locked(mn_hnsw_t *h)
{
    if (h->n_ublk < h->cap_ublk) return MN_OK;
    uint32_t nc = h->cap_ublk ? h->cap_ublk * 2 : 64;
    _Atomic uint32_t **b = realloc((void *)h->ublk, nc * sizeof *b);
    if (!b) return MN_ERR_NOMEM;
    h->ublk = b;
    h->cap_ublk = nc;
    return MN_OK;
}

static uint32_t draw_level(mn_hnsw_t *h)
{
    uint64_t x = h->p.seed + 0x9e3779b97f4a7c15ULL * (atomic_fetch_add(&h->draws, 1) + 1);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL; /* splitmix64 finaliser */
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    double u = ((double)(x >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double l = -log(u) * h->mult;
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (uint32_t)l;
}

/* ---- neighbour selection ---- */

static int cand_cmp(const void *a, const void *b)
{
    const hnsw_cand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Malkov & Yashunin Algorithm 4: from cands sorted nearest first, keep a
 * candidate only if it is nearer to the base than to every one kept so far.
 * Fewer than m candidates are all kept. Returns how many ids went to out. */
static uint32_t select_heuristic(const mn_hnsw_t *h, const float *base, const hnsw_cand *cands,
                                 uint32_t n, uint32_t m, uint32_t *out)
{
    if (n <= m) {
        for (uint32_t i = 0; i < n; i++)
            out[i] = cands[i].id;
        return n;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && k < m; i++) {
        const float *v = hnsw_vec(h, base, cands[i].id);
        bool good = true;
        for (uint32_t j = 0; j < k && good; j++)
            if (hnsw_fdist(h, v, hnsw_vec(h, base, out[j])) < cands[i].d) good = false;
        if (good) out[k++] = cands[i].id;
    }
    return k;
}

/* Reads a list the caller has locked (no seqlock retry). */
static uint32_t read_list_locked(const mn_hnsw_t *h, uint32_t slot, uint32_t level, uint32_t *out)
{
    _Atomic uint32_t *lst = hnsw_list(h, slot, level);
    uint32_t max = hnsw_max_links(h, level);
    uint32_t n = atomic_load_explicit(lst, memory_order_relaxed) & HNSW_COUNT_MASK;
    if (n > max) n = max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(lst + 1 + i, memory_order_relaxed);
    return n;
}

static bool is_removed(const mn_hnsw_t *h, uint32_t slot)
{
    return hnsw_flags(h, slot) & HNSW_REMOVED;
}

/* Adds `extra` ids to the list of `node` at level (an insert's back-links):
 * appended while there is room, else the list and the new ids go through the
 * heuristic, links to removed nodes dropped. Only writes when the node did
 * not change meanwhile; retries a few times, then does it under the lock. */
static void relink(mn_hnsw_t *h, const float *base, uint32_t node, uint32_t level,
                   const uint32_t *extra, uint32_t n_extra)
{
    uint32_t max = hnsw_max_links(h, level);
    uint32_t cur[2 * HNSW_MAX_M], out[2 * HNSW_MAX_M];
    hnsw_cand cands[4 * HNSW_MAX_M + 1];
    for (int attempt = 0; attempt <= OPTIMISTIC_TRIES; attempt++) {
        bool locked = attempt == OPTIMISTIC_TRIES;
        uint32_t seq = 0;
        if (locked) hnsw_lock(h, node);
        uint32_t n = locked ? read_list_locked(h, node, level, cur)
                            : hnsw_read_list(h, node, level, cur, &seq);
        bool has_removed = false;
        uint32_t nc = 0, m;
        for (uint32_t i = 0; i < n; i++) {
            if (is_removed(h, cur[i]))
                has_removed = true;
            else
                cands[nc++] = (hnsw_cand){0, cur[i]};
        }
        for (uint32_t i = 0; i < n_extra; i++) {
            uint32_t id = extra[i];
            if (id == node || is_removed(h, id)) continue;
            bool dup = false;
            for (uint32_t j = 0; j < nc && !dup; j++)
                dup = cands[j].id == id;
            if (!dup && nc < sizeof cands / sizeof cands[0]) cands[nc++] = (hnsw_cand){0, id};
        }
        if (nc <= max && !has_removed) { /* fast path: room to append */
            for (uint32_t i = 0; i < nc; i++)
                out[i] = cands[i].id;
            m = nc;
        } else {
            const float *nv = hnsw_vec(h, base, node);
            for (uint32_t i = 0; i < nc; i++)
                cands[i].d = hnsw_fdist(h, nv, hnsw_vec(h, base, cands[i].id));
            qsort(cands, nc, sizeof cands[0], cand_cmp);
            m = select_heuristic(h, base, cands, nc, max, out);
        }
        if (locked || hnsw_lock_if(h, node, seq)) {
            hnsw_write_list(h, node, level, out, m);
            hnsw_unlock(h, node);
            return;
        }
    }
}

uint32_t hnsw_refill(const mn_hnsw_t *h, const float *base, uint32_t node, uint32_t level,
                     const uint32_t *keep, uint32_t n_keep, const uint32_t *subs, uint32_t n_subs,
                     uint32_t target, uint32_t *out, hnsw_cand *scratch)
{
    uint32_t max = hnsw_max_links(h, level), m = 0, nc = 0;
    if (target > max) target = max;
    for (uint32_t i = 0; i < n_keep && m < max; i++)
        out[m++] = keep[i];
    const float *nv = hnsw_vec(h, base, node);
    /* the candidates' vectors are scattered: start fetching them all first */
    size_t vbytes = (size_t)h->dim * sizeof(float);
    for (uint32_t i = 0; i < n_subs; i++)
        for (size_t off = 0; off < vbytes && off < 512; off += 64)
            __builtin_prefetch((const char *)hnsw_vec(h, base, subs[i]) + off);
    for (uint32_t i = 0; i < n_subs; i++) {
        uint32_t id = subs[i];
        if (id == node || is_removed(h, id)) continue;
        bool dup = false;
        for (uint32_t j = 0; j < m && !dup; j++)
            dup = out[j] == id;
        for (uint32_t j = 0; j < nc && !dup; j++)
            dup = scratch[j].id == id;
        if (!dup) scratch[nc++] = (hnsw_cand){hnsw_fdist(h, nv, hnsw_vec(h, base, id)), id};
    }
    qsort(scratch, nc, sizeof scratch[0], cand_cmp);
    for (uint32_t i = 0; i < nc && m < max; i++) {
        const float *v = hnsw_vec(h, base, scratch[i].id);
        bool good = true;
        for (uint32_t j = 0; j < m && good; j++)
            if (hnsw_fdist(h, v, hnsw_vec(h, base, out[j])) < scratch[i].d) good = false;
        if (good) {
            out[m++] = scratch[i].id;
            scratch[i].id = UINT32_MAX;
        }
    }
    for (uint32_t i = 0; i < nc && m < target; i++)
        if (scratch[i].id != UINT32_MAX) out[m++] = scratch[i].id;
    return m;
}

/* Repairs the list of `node` at level after `gone` was removed (no-op when
 * the list does not hold it): every other live link is kept as it is, and
 * the links to `gone` and to other removed nodes are replaced from `subs`
 * (the removed node's links) by hnsw_refill, so the list keeps its length.
 * Re-pruning the whole union instead (FreshDiskANN's RobustPrune with
 * alpha 1) thinned the lists and cost recall at small ef (docs/hnsw.md). */
static void repair(mn_hnsw_t *h, const float *base, uint32_t node, uint32_t level, uint32_t gone,
                   const uint32_t *subs, uint32_t n_subs)
{
    uint32_t cur[2 * HNSW_MAX_M], keep[2 * HNSW_MAX_M], out[2 * HNSW_MAX_M];
    hnsw_cand scratch[2 * HNSW_MAX_M];
    for (int attempt = 0; attempt <= OPTIMISTIC_TRIES; attempt++) {
        bool locked = attempt == OPTIMISTIC_TRIES;
        uint32_t seq = 0;
        if (locked) hnsw_lock(h, node);
        uint32_t n = locked ? read_list_locked(h, node, level, cur)
                            : hnsw_read_list(h, node, level, cur, &seq);
        bool has_gone = false;
        uint32_t nk = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (cur[i] == gone)
                has_gone = true;
            else if (!is_removed(h, cur[i]))
                keep[nk++] = cur[i];
        }
        if (!has_gone) {
            if (locked) hnsw_unlock(h, node);
            return;
        }
        uint32_t m = hnsw_refill(h, base, node, level, keep, nk, subs, n_subs, n - 1, out, scratch);
        if (locked || hnsw_lock_if(h, node, seq)) {
            hnsw_write_list(h, node, level, out, m);
            hnsw_unlock(h, node);
            return;
        }
    }
}

/* ---- entry point ---- */

static uint64_t pack_entry(uint32_t level, uint32_t slot)
{
    return (uint64_t)level << 32 | slot;
}

/* A live node to enter by once `gone` is removed: its highest-level live
 * neighbour, else the highest-level live node anywhere, else none. */
static uint64_t pick_entry(mn_hnsw_t *h, uint32_t gone, uint32_t level)
{
    uint32_t nb[2 * HNSW_MAX_M];
    for (uint32_t l = level + 1; l-- > 0;) {
        uint32_t n = hnsw_read_list(h, gone, l, nb, NULL);
        uint32_t best = UINT32_MAX, best_lv = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (nb[i] == gone || (hnsw_flags(h, nb[i]) & (HNSW_LIVE | HNSW_REMOVED)) != HNSW_LIVE)
                continue;
            uint32_t lv = hnsw_level(h, nb[i]);
            if (best == UINT32_MAX || lv > best_lv) best = nb[i], best_lv = lv;
        }
        if (best != UINT32_MAX) return pack_entry(best_lv, best);
    }
    uint32_t hwm = atomic_load(&h->hwm), best = UINT32_MAX, best_lv = 0;
    for (uint32_t s = 0; s < hwm; s++) {
        if (s == gone || (hnsw_flags(h, s) & (HNSW_LIVE | HNSW_REMOVED)) != HNSW_LIVE) continue;
        uint32_t lv = hnsw_level(h, s);
        if (best == UINT32_MAX || lv > best_lv) best = s, best_lv = lv;
    }
    return best == UINT32_MAX ? HNSW_ENTRY_NONE : pack_entry(best_lv, best);
}

/* ---- remove ---- */

/* Marks slot removed and repairs its neighbours (shared lock held). */
static void remove_locked(mn_hnsw_t *h, uint32_t slot)
{
    uint32_t w = hnsw_flags(h, slot);
    if (!(w & HNSW_LIVE) || (w & HNSW_REMOVED)) return;
    set_flags(h, slot, HNSW_REMOVED, 0);
    atomic_fetch_sub(&h->live, 1);
    atomic_fetch_add(&h->removed, 1);
    const float *base = hnsw_base(h);
    uint32_t level = hnsw_level(h, slot);
    uint32_t nb[2 * HNSW_MAX_M];
    for (uint32_t l = 0; l <= level; l++) {
        uint32_t n = hnsw_read_list(h, slot, l, nb, NULL);
        for (uint32_t i = 0; i < n; i++)
            if (nb[i] != slot && !is_removed(h, nb[i])) repair(h, base, nb[i], l, slot, nb, n);
    }
    uint64_t e = atomic_load(&h->entry);
    if (e != HNSW_ENTRY_NONE && (uint32_t)e == slot) {
        uint64_t ne = pick_entry(h, slot, level);
        pthread_mutex_lock(&h->entry_mu);
        if (atomic_load(&h->entry) == e) atomic_store(&h->entry, ne);
        pthread_mutex_unlock(&h->entry_mu);
    }
}

mn_err mn_hnsw_remove(mn_hnsw_t *h, uint32_t slot)
{
    pthread_rwlock_rdlock(&h->writers);
    pthread_rwlock_rdlock(&h->grow);
    if (slot < h->cap) remove_locked(h, slot);
    pthread_rwlock_unlock(&h->grow);
    pthread_rwlock_unlock(&h->writers);
    return MN_OK;
}

bool mn_hnsw_contains(mn_hnsw_t *h, uint32_t slot)
{
    pthread_rwlock_rdlock(&h->grow);
    bool in = slot < h->cap && (hnsw_flags(h, slot) & (HNSW_LIVE | HNSW_REMOVED)) == HNSW_LIVE;
    pthread_rwlock_unlock(&h->grow);
    return in;
}

/* ---- insert ---- */

static void store_vector(mn_hnsw_t *h, uint32_t slot, const float *vec)
{
    if (h->own && h->own + (size_t)slot * h->dim != vec)
        memcpy(h->own + (size_t)slot * h->dim, vec, h->dim * sizeof(float));
    if (h->p.quantize) hnsw_quantize(h, vec, h->codes + (size_t)slot * h->code_stride);
}

/* Swaps the shared lock for the exclusive one, runs, and swaps back. */
static mn_err exclusive_grow(mn_hnsw_t *h, uint32_t slot, bool ublk)
{
    pthread_rwlock_unlock(&h->grow);
    pthread_rwlock_wrlock(&h->grow);
    mn_err rc = MN_OK;
    if (slot >= h->cap) {
        uint64_t n = (uint64_t)h->cap + h->cap / 2;
        if (n < 64) n = 64;
        if (n <= slot) n = (uint64_t)slot + 1;
        if (n > UINT32_MAX) n = UINT32_MAX;
        rc = hnsw_grow_locked(h, (uint32_t)n);
    }
    if (!rc && ublk) rc = hnsw_ublk_grow_locked(h);
    pthread_rwlock_unlock(&h->grow);
    pthread_rwlock_rdlock(&h->grow);
    return rc;
}

static mn_err insert(mn_hnsw_t *h, uint32_t slot, const float *vec, mn_error *err)
{
    pthread_rwlock_rdlock(&h->grow);
    mn_err rc = MN_OK;
    if (slot >= h->cap && (rc = exclusive_grow(h, slot, false))) goto fail;
    uint32_t w = hnsw_flags(h, slot);
    bool reuse = w & HNSW_LIVE;
    if (reuse && !(w & HNSW_REMOVED)) remove_locked(h, slot); /* an update: detach first */
    if (reuse && (h->own || h->p.quantize)) {
        /* searches may be reading the old vector through stale links */
        pthread_rwlock_unlock(&h->grow);
        pthread_rwlock_wrlock(&h->grow);
        store_vector(h, slot, vec);
        pthread_rwlock_unlock(&h->grow);
        pthread_rwlock_rdlock(&h->grow);
    } else if (!reuse) {
        store_vector(h, slot, vec); /* no link reaches a fresh slot yet */
    }
    uint32_t level;
    if (reuse) {
        level = hnsw_level(h, slot);
    } else {
        level = draw_level(h);
        if (level) {
            uint32_t idx = 0;
            for (int i = 0; i < 3 && (rc = hnsw_ublk_add(h, level, &idx)) == MN_ERR_BUSY; i++)
                if ((rc = exclusive_grow(h, slot, true))) goto fail;
            if (rc) goto fail;
            h->upper[slot] = idx;
        }
    }
    /* live from now on: a fresh node with empty lists; a reused one keeps its old lists (of
     * nodes on the same layers) until the new ones replace them, so a search that reaches it
     * through a stale link still finds a way on */
    hnsw_lock(h, slot);
    if (!reuse)
        for (uint32_t l = 0; l <= level; l++)
            hnsw_write_list(h, slot, l, NULL, 0);
    _Atomic uint32_t *fw = hnsw_l0(h, slot) + 1;
    atomic_store_explicit(fw, HNSW_LIVE, memory_order_relaxed);
    hnsw_unlock(h, slot);
    uint32_t hw = atomic_load(&h->hwm);
    while (hw < slot + 1 && !atomic_compare_exchange_weak(&h->hwm, &hw, slot + 1)) {
    }
    atomic_fetch_add(&h->live, 1);
    if (reuse) atomic_fetch_sub(&h->removed, 1);

    uint64_t e = atomic_load(&h->entry);
    if (e == HNSW_ENTRY_NONE || (uint32_t)e == slot) {
        pthread_mutex_lock(&h->entry_mu);
        e = atomic_load(&h->entry);
        if (e == HNSW_ENTRY_NONE || (uint32_t)e == slot) {
            atomic_store(&h->entry, pack_entry(level, slot));
            pthread_mutex_unlock(&h->entry_mu);
            pthread_rwlock_unlock(&h->grow);
            return MN_OK;
        }
        pthread_mutex_unlock(&h->entry_mu);
    }
    const float *base = hnsw_base(h);
    hnsw_query q = {vec, NULL};
    uint32_t elev = (uint32_t)(e >> 32), cur = (uint32_t)e;
    float d = hnsw_qdist(h, base, &q, cur);
    if (elev > level) cur = hnsw_greedy(h, base, &q, cur, &d, elev, level);
    hnsw_ctx *c = hnsw_ctx_get(h);
    if (!c) {
        rc = MN_ERR_NOMEM;
        goto fail; /* the node stays live with no links: searches miss it, nothing breaks */
    }
    /* The links of every layer are chosen top-down (each layer's search starts from the
     * nearest node of the one above) but published bottom-up: a search can only reach the
     * node on a layer once a neighbour there links to it, and by then the node's lists on
     * every layer below are written. Published top-down, a search descending through the
     * node met its still empty layer-0 list and answered from a dead end. */
    const uint32_t top = level < elev ? level : elev;
    uint32_t sel[HNSW_MAX_LEVEL + 1][HNSW_MAX_M], n_sel[HNSW_MAX_LEVEL + 1];
    mn_assert(top <= HNSW_MAX_LEVEL);
    for (uint32_t l = top + 1; l-- > 0;) {
        hnsw_search_layer(h, base, &q, l, cur, d, h->p.ef_construction, NULL, NULL, slot, c, NULL);
        qsort(c->res, c->n_res, sizeof c->res[0], cand_cmp);
        n_sel[l] = select_heuristic(h, base, c->res, (uint32_t)c->n_res, h->M, sel[l]);
        if (c->n_res) {
            cur = c->res[0].id;
            d = c->res[0].d;
        }
    }
    hnsw_ctx_put(h, c);
    for (uint32_t l = 0; l <= top; l++) {
        hnsw_lock(h, slot);
        hnsw_write_list(h, slot, l, sel[l], n_sel[l]);
        hnsw_unlock(h, slot);
        for (uint32_t i = 0; i < n_sel[l]; i++)
            relink(h, base, sel[l][i], l, &slot, 1);
    }
    if (level > elev) {
        pthread_mutex_lock(&h->entry_mu);
        uint64_t now = atomic_load(&h->entry);
        if (now == HNSW_ENTRY_NONE || (uint32_t)(now >> 32) < level)
            atomic_store(&h->entry, pack_entry(level, slot));
        pthread_mutex_unlock(&h->entry_mu);
    }
    pthread_rwlock_unlock(&h->grow);
    return MN_OK;
fail:
    pthread_rwlock_unlock(&h->grow);
    return mn_error_set(err, rc, "hnsw: %s inserting slot %u", mn_strerror(rc), slot);
}

mn_err mn_hnsw_insert(mn_hnsw_t *h, uint32_t slot, const float *vec, mn_error *err)
{
    if (!vec || slot >= UINT32_MAX - 1)
        return mn_error_set(err, MN_ERR_INVALID, "hnsw: bad slot or vector");
    pthread_rwlock_rdlock(&h->writers);
    mn_err rc = insert(h, slot, vec, err);
    pthread_rwlock_unlock(&h->writers);
    return rc;
}

void mn_hnsw_get_info(mn_hnsw_t *h, mn_hnsw_info_t *out)
{
    pthread_rwlock_rdlock(&h->grow);
    memset(out, 0, sizeof *out);
    out->params = h->p;
    out->live = atomic_load(&h->live);
    out->removed = atomic_load(&h->removed);
    uint64_t e = atomic_load(&h->entry);
    out->max_level = e == HNSW_ENTRY_NONE ? 0 : (uint32_t)(e >> 32);
    out->simd = h->k->name;
    uint64_t b = sizeof *h + (uint64_t)h->cap * (h->l0w * 4 + sizeof *h->upper);
    pthread_mutex_lock(&h->ublk_mu);
    b += (uint64_t)h->cap_ublk * sizeof *h->ublk;
    for (uint32_t i = 1; i < h->n_ublk; i++)
        b +=
            (1 + (uint64_t)atomic_load_explicit(&h->ublk[i][0], memory_order_relaxed) * h->upw) * 4;
    pthread_mutex_unlock(&h->ublk_mu);
    if (h->own) out->vector_bytes = (uint64_t)h->cap * h->dim * sizeof(float);
    if (h->codes) b += (uint64_t)h->cap * h->code_stride;
    out->bytes = b + out->vector_bytes;
    pthread_rwlock_unlock(&h->grow);
}
