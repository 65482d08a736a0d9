/* A space's HNSW index inside the engine.
 *
 * When: a space gets a graph once it holds engine.hnsw_threshold live
 * memories (default 2000) and keeps it from then on; recall uses it while the
 * space is at or above the threshold and the request does not say "exact".
 *
 * Who writes it: the index thread (indexer.c), never the commit thread. Slots
 * that change under the write lock (insert, replace, remove) are appended to
 * `notes`; the commit thread then only kicks the index thread and answers the
 * writer. The index thread takes the notes under the write lock (they become
 * `work`, sorted and unique) and inserts or removes them under the READ lock
 * in chunks of about CHUNK_NS, so recalls run alongside and writers get the
 * lock between chunks. A graph is first built the same way: an empty graph
 * whose work is every indexed slot (also after a lost note or at start-up
 * without a usable saved graph), with progress in the log.
 *
 * Fresh writes are still found: until a slot is in the graph it is in the
 * tail (notes, and work[work_done..]), which recall ranks exactly beside the
 * graph's hits (mn__space_index_tail). The graph reads vectors in place from
 * sp->vecs (re-reading the pointer at each operation; the array only moves
 * under the write lock). A graph node whose slot was freed or reused before
 * the index thread caught up may still be visited: every hit is filtered on
 * the slot's live state and re-scored on its current vector.
 *
 * Parameters: each space's own (mn_space_def_t.index: M, ef_construction,
 * ef_search, int8), fixed when it was created; a space created before they
 * existed takes the engine's (engine.hnsw_*). If its graph cannot be created
 * the space ranks exactly and its stats say "failed" (logged once).
 *
 * Persistence: <data_dir>/hnsw/<sid>.hnsw, written by the index thread (so
 * no insert runs meanwhile and nothing else waits: recalls go on, writers are
 * only noted) every engine.hnsw_save_interval_s while the graph has unsaved
 * changes, also between chunks of a long build, and at shutdown, which saves
 * what the graph holds without applying the backlog (the index thread stops
 * after its current chunk). Each node is labelled with its memory id and a
 * checksum of the vector it was inserted with (kept per slot by the index
 * thread). At start-up a saved graph of any age is loaded and reconciled by
 * label: a node whose memory is gone or whose vector changed is dropped (its
 * neighbours repaired), a live memory not in the graph is noted for the index
 * thread, ranked exactly meanwhile, like any fresh write. Only a missing or
 * unusable file (checksum, structure, other dim/metric/M) means a rebuild.
 *
 * Filters: the recall filter runs inside the search (hnsw_search.c). The
 * graph costs about ef / s node visits for a filter passing a share s of the
 * space, the scan s N distances plus N cheap filter checks, so the scan runs
 * when s^2 N < 4 ef (s sampled from 256 live nodes). */
#include "space_index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_internal.h"
#include "filter.h"
#include "hnsw/hnsw.h"
#include "indexer.h"

#define DEFAULT_THRESHOLD 2000u
#define SELECTIVITY_SAMPLES 256u
#define PROGRESS_EVERY 100000u
#define CHUNK_NS 2000000 /* read-lock hold of the index thread between writer turns */

typedef struct mn__space_index {
    mn_hnsw_t *h; /* NULL when it could not be created (failed) */
    /* slots changed since the index thread last took them (appended under the
     * write lock by the applier, taken under the write lock by the index thread) */
    uint32_t *notes;
    size_t n_notes, cap_notes;
    /* the slots being indexed: set and cleared under the write lock, sorted and
     * unique; work[0..work_done) are in the graph already */
    uint32_t *work;
    size_t n_work, cap_work;
    atomic_size_t work_done;
    bool lost;   /* a note could not be kept: rebuild at the next turn (write lock) */
    bool failed; /* no graph could be created: the space ranks exactly (set under the write lock) */
    bool catch_up; /* the work after a load: its end is logged */
    uint32_t ef_search;
    char *path;
    /* index thread only (and the closing thread once it stopped) */
    uint8_t *labels;     /* per slot: the label of the graph node in it (MN_HNSW_LABEL_LEN) */
    uint32_t cap_labels; /* slots labels holds */
    uint64_t unsaved;    /* graph changes since the file was written */
    int64_t saved_ns;    /* when it was written (or loaded), monotonic */
} mn__space_index;

static uint32_t threshold(const mn_engine_t *e)
{
    return e->opts.hnsw_threshold ? e->opts.hnsw_threshold : DEFAULT_THRESHOLD;
}

void mn__space_index_defaults(const mn_engine_t *e, mn_index_def_t *d)
{
    if (!d->m) d->m = e->opts.hnsw_m ? e->opts.hnsw_m : 16;
    if (!d->ef_construction)
        d->ef_construction = e->opts.hnsw_ef_construction ? e->opts.hnsw_ef_construction : 200;
    if (!d->ef_search) d->ef_search = e->opts.hnsw_ef_search ? e->opts.hnsw_ef_search : 64;
    if (!d->quantize) d->quantize = e->opts.hnsw_quantize ? MN_QUANTIZE_INT8 : MN_QUANTIZE_NONE;
}

mn_err mn__space_index_check(const mn_index_def_t *d, mn_error *err)
{
    if (d->m < MN_INDEX_M_MIN || d->m > MN_INDEX_M_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "index.m: must be in %d..%d, got %u",
                            MN_INDEX_M_MIN, MN_INDEX_M_MAX, d->m);
    if (d->ef_construction < MN_INDEX_EFC_MIN || d->ef_construction > MN_INDEX_EF_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "index.ef_construction: must be in %d..%d, got %u",
                            MN_INDEX_EFC_MIN, MN_INDEX_EF_MAX, d->ef_construction);
    if (d->ef_search < 1 || d->ef_search > MN_INDEX_EF_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "index.ef_search: must be in 1..%d, got %u",
                            MN_INDEX_EF_MAX, d->ef_search);
    if (d->quantize != MN_QUANTIZE_NONE && d->quantize != MN_QUANTIZE_INT8)
        return mn_error_set(err, MN_ERR_INVALID, "index.quantize: unknown");
    return MN_OK;
}

static void params_of(const mn_engine_t *e, const mn__space *sp, mn_hnsw_params_t *p)
{
    mn_index_def_t d = sp->def.index;
    mn__space_index_defaults(e, &d);
    memset(p, 0, sizeof *p);
    p->dim = sp->def.dim;
    p->metric = sp->def.metric;
    p->M = d.m;
    p->ef_construction = d.ef_construction;
    p->ef_search = d.ef_search;
    p->quantize = d.quantize == MN_QUANTIZE_INT8;
    p->seed = sp->sid;
}

static char *path_of(const mn_engine_t *e, const mn__space *sp)
{
    size_t n = strlen(e->data_dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/hnsw/%u.hnsw", e->data_dir, sp->sid);
    return p;
}

static bool indexable(const mn__space *sp, uint32_t slot)
{
    return slot < sp->n_slots && sp->slots[slot].state == SLOT_LIVE && sp->slots[slot].has_vec;
}

void mn__space_index_note(mn__space *sp, uint32_t slot)
{
    mn__space_index *ix = sp->ix;
    if (!ix || ix->failed) return;
    if (ix->n_notes == ix->cap_notes) {
        size_t nc = ix->cap_notes ? ix->cap_notes * 2 : 64;
        uint32_t *n = realloc(ix->notes, nc * sizeof *n);
        if (!n) {
            ix->lost = true;
            return;
        }
        ix->notes = n;
        ix->cap_notes = nc;
    }
    ix->notes[ix->n_notes++] = slot;
}

/* The index state of sp around graph h (NULL: creating it failed). */
static mn__space_index *index_new(mn_engine_t *e, mn__space *sp, mn_hnsw_t *h)
{
    mn__space_index *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->h = h;
    ix->failed = !h;
    ix->path = path_of(e, sp);
    atomic_init(&ix->work_done, 0);
    mn_hnsw_params_t p;
    params_of(e, sp, &p);
    ix->ef_search = p.ef_search;
    ix->saved_ns = mn_time_mono_ns();
    return ix;
}

/* An empty graph for sp (write lock held); NULL (logged) when it cannot be made. */
static mn_hnsw_t *graph_new(mn_engine_t *e, mn__space *sp)
{
    mn_hnsw_params_t p;
    params_of(e, sp, &p);
    mn_hnsw_t *h = NULL;
    mn_error err = {0};
    if (mn_hnsw_new(&p, &sp->vecs, &h, &err) || mn_hnsw_reserve(h, sp->n_slots, &err)) {
        mn_log_error("space %s: cannot create the vector index (recall stays exact, index state "
                     "\"failed\" until a restart): %s",
                     sp->def.name, err.message);
        mn_hnsw_free(h);
        return NULL;
    }
    return h;
}

/* ---- labels: memory id + a checksum of the vector, per graph node ---- */

static uint32_t vec_check(const mn__space *sp, uint32_t slot)
{
    uint32_t c = mn_crc32c(0, sp->vecs + (size_t)slot * sp->def.dim, sp->def.dim * sizeof(float));
    return c ? c : 1; /* 0 means "not known" (files of format 1) */
}

static bool labels_reserve(mn__space_index *ix, uint32_t n)
{
    if (n <= ix->cap_labels) return true;
    uint32_t nc = ix->cap_labels ? ix->cap_labels : 1024;
    while (nc < n)
        nc = nc > UINT32_MAX / 2 ? n : nc * 2;
    uint8_t *l = realloc(ix->labels, (size_t)nc * MN_HNSW_LABEL_LEN);
    if (!l) return false;
    memset(l + (size_t)ix->cap_labels * MN_HNSW_LABEL_LEN, 0,
           (size_t)(nc - ix->cap_labels) * MN_HNSW_LABEL_LEN);
    ix->labels = l;
    ix->cap_labels = nc;
    return true;
}

/* Labels slot with its memory now (read lock held; labels_reserve done). */
static void label_set(mn__space_index *ix, const mn__space *sp, uint32_t slot)
{
    uint8_t *l = ix->labels + (size_t)slot * MN_HNSW_LABEL_LEN;
    memcpy(l, sp->slots[slot].id.b, 16);
    uint32_t c = vec_check(sp, slot);
    memcpy(l + 16, &c, 4);
}

static void label_of(void *arg, uint32_t slot, uint8_t label[MN_HNSW_LABEL_LEN])
{
    const mn__space_index *ix = arg;
    if (slot < ix->cap_labels)
        memcpy(label, ix->labels + (size_t)slot * MN_HNSW_LABEL_LEN, MN_HNSW_LABEL_LEN);
    else
        memset(label, 0, MN_HNSW_LABEL_LEN);
}

/* Writes sp's graph to its file (index thread, or closing with it stopped). */
static void save_graph(mn_engine_t *e, mn__space *sp, mn__space_index *ix, bool closing)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/hnsw", e->data_dir);
    if (mkdir(dir, 0755) && errno != EEXIST) {
        mn_log_error("cannot create %s: %s", dir, strerror(errno));
        return;
    }
    int64_t t0 = mn_time_mono_ns();
    uint64_t lsn = __atomic_load_n(&sp->last_lsn, __ATOMIC_ACQUIRE);
    mn_error err = {0};
    if (mn_hnsw_save(ix->h, ix->path, lsn, label_of, ix, &err)) {
        mn_log_error("space %s: vector index not saved: %s", sp->def.name, err.message);
        return;
    }
    int64_t t1 = mn_time_mono_ns();
    ix->unsaved = 0;
    ix->saved_ns = t1;
    mn_hnsw_info_t info;
    mn_hnsw_get_info(ix->h, &info);
    mn_log(closing ? MN_LOG_INFO : MN_LOG_DEBUG,
           "space %s: vector index saved (%llu vectors, lsn %llu) in %.2f s", sp->def.name,
           (unsigned long long)info.live, (unsigned long long)lsn, (double)(t1 - t0) / 1e9);
    if (atomic_load(&sp->dropped)) unlink(ix->path); /* dropped meanwhile */
}

/* Saves when the graph changed and the last save is older than the interval. */
static void maybe_save(mn_engine_t *e, mn__space *sp, mn__space_index *ix)
{
    int64_t every = e->opts.hnsw_save_interval_ms;
    if (every <= 0 || !ix || !ix->h || !ix->unsaved || atomic_load(&sp->dropped)) return;
    if ((mn_time_mono_ns() - ix->saved_ns) / 1000000 < every) return;
    save_graph(e, sp, ix, false);
}

void mn__space_index_tick(mn_engine_t *e, mn__space *sp)
{
    maybe_save(e, sp, sp->ix); /* the index thread is the only one that sets sp->ix */
}

/* work := every indexed slot (write lock held). */
static bool work_all(mn__space *sp, mn__space_index *ix)
{
    if (ix->cap_work < sp->n_slots) {
        uint32_t *w = realloc(ix->work, (sp->n_slots ? sp->n_slots : 1) * sizeof *w);
        if (!w) return false;
        ix->work = w;
        ix->cap_work = sp->n_slots;
    }
    ix->n_work = 0;
    for (uint32_t s = 0; s < sp->n_slots; s++)
        if (indexable(sp, s)) ix->work[ix->n_work++] = s;
    return true;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void mn__space_index_sync(mn_engine_t *e, mn__space *sp)
{
    if (threshold(e) == UINT32_MAX) return; /* disabled */
    /* n_live is written by the applier (this thread, or load before the threads run) */
    if (sp->n_live < threshold(e) && !atomic_load(&sp->ix_exists)) return;
    mn__indexer_kick(e, sp);
}

/* Takes the space's pending changes as work (write lock held); creates the
 * graph first when there is none. Returns false when there is nothing to do. */
static bool take_work(mn_engine_t *e, mn__space *sp, bool *building)
{
    mn__space_index *ix = sp->ix;
    *building = false;
    if (!ix) {
        if (sp->n_live < threshold(e)) return false;
        mn_hnsw_t *h = graph_new(e, sp);
        if (!(ix = index_new(e, sp, h)) || (h && !work_all(sp, ix))) {
            if (ix) free(ix->path);
            free(ix);
            mn_hnsw_free(h);
            return false;
        }
        sp->ix = ix; /* a failed one too: its stats say so */
        atomic_store(&sp->ix_exists, true);
        if (!h) return false;
        *building = true;
    } else if (ix->failed) {
        return false;
    } else if (ix->lost) {
        mn_hnsw_t *h = graph_new(e, sp);
        if (!h) {
            mn_hnsw_free(ix->h);
            ix->h = NULL;
            ix->failed = true;
            ix->n_notes = ix->n_work = 0;
            return false;
        }
        if (!work_all(sp, ix)) {
            mn_hnsw_free(h);
            ix->n_work = 0;
            return false;
        }
        mn_hnsw_free(ix->h);
        ix->h = h;
        ix->lost = false;
        ix->n_notes = 0;
        ix->unsaved++;
        *building = true;
    } else {
        if (!ix->n_notes) return false;
        uint32_t *w = ix->work;
        size_t cw = ix->cap_work;
        ix->work = ix->notes;
        ix->cap_work = ix->cap_notes;
        ix->n_work = ix->n_notes;
        ix->notes = w;
        ix->cap_notes = cw;
        ix->n_notes = 0;
        /* the final state of each touched slot is what counts */
        qsort(ix->work, ix->n_work, sizeof *ix->work, cmp_u32);
        size_t u = 0;
        for (size_t i = 0; i < ix->n_work; i++)
            if (!u || ix->work[i] != ix->work[u - 1]) ix->work[u++] = ix->work[i];
        ix->n_work = u;
    }
    atomic_store(&ix->work_done, 0);
    return ix->n_work > 0;
}

void mn__space_index_work(mn_engine_t *e, mn__space *sp)
{
    bool building = false;
    pthread_rwlock_wrlock(&sp->lock);
    bool any = take_work(e, sp, &building);
    mn__space_index *ix = sp->ix; /* only this thread replaces it */
    size_t n = any ? ix->n_work : 0;
    pthread_rwlock_unlock(&sp->lock);
    if (!any) return;
    bool catch_up = ix->catch_up;
    ix->catch_up = false;
    int64_t t0 = mn_time_mono_ns();
    if (building)
        mn_log_info("space %s: building the vector index over %zu memories", sp->def.name, n);
    size_t i = 0, next_progress = PROGRESS_EVERY;
    while (i < n && !mn__indexer_halted(e)) {
        pthread_rwlock_rdlock(&sp->lock);
        if (!labels_reserve(ix, sp->n_slots)) ix->lost = true;
        int64_t c0 = mn_time_mono_ns();
        do {
            uint32_t s = ix->work[i];
            if (ix->lost) {
                /* out of memory: the next turn rebuilds */
            } else if (indexable(sp, s)) {
                mn_error err = {0};
                if (mn_hnsw_insert(ix->h, s, sp->vecs + (size_t)s * sp->def.dim, &err)) {
                    mn_log_error("space %s: vector index: %s", sp->def.name, err.message);
                    ix->lost = true; /* a bool only this thread reads outside the write lock */
                } else {
                    label_set(ix, sp, s);
                }
            } else {
                mn_hnsw_remove(ix->h, s);
            }
            ix->unsaved++;
            atomic_store_explicit(&ix->work_done, ++i, memory_order_release);
        } while (i < n && mn_time_mono_ns() - c0 < CHUNK_NS);
        pthread_rwlock_unlock(&sp->lock);
        if (building && i >= next_progress) {
            mn_log_info("space %s: vector index %zu/%zu", sp->def.name, i, n);
            next_progress += PROGRESS_EVERY;
        }
        if (atomic_load(&sp->dropped)) break;
        maybe_save(e, sp, ix); /* a long build or catch-up is saved as it goes */
    }
    double secs = (double)(mn_time_mono_ns() - t0) / 1e9;
    if (i < n && mn__indexer_halted(e)) {
        /* shutdown: the rest stays unapplied; the next start finds it by difference */
        mn_log_info("space %s: index thread stopped with %zu of %zu changes not in the graph "
                    "(applied after the next start)",
                    sp->def.name, n - i, n);
        return;
    }
    if (building)
        mn_log_info("space %s: vector index of %zu vectors built in %.1f s", sp->def.name, n, secs);
    else if (catch_up)
        mn_log_info("space %s: vector index caught up: %zu changes since the saved graph applied "
                    "in %.1f s",
                    sp->def.name, n, secs);
    pthread_rwlock_wrlock(&sp->lock);
    ix->n_work = 0;
    atomic_store(&ix->work_done, 0);
    bool more = ix->n_notes > 0 || ix->lost;
    pthread_rwlock_unlock(&sp->lock);
    if (more) mn__indexer_kick(e, sp);
}

void mn__space_index_tail(const mn__space *sp, const uint32_t **a, size_t *na, const uint32_t **b,
                          size_t *nb)
{
    const mn__space_index *ix = sp->ix;
    *a = *b = NULL;
    *na = *nb = 0;
    if (!ix) return;
    *a = ix->notes;
    *na = ix->n_notes;
    size_t done = atomic_load_explicit(&((mn__space_index *)ix)->work_done, memory_order_acquire);
    if (done < ix->n_work) {
        *b = ix->work + done;
        *nb = ix->n_work - done;
    }
}

typedef struct accept_ctx {
    const mn__space *sp;
    const mn_filter_t *f;
    int64_t now;
} accept_ctx;

static bool accept(void *arg, uint32_t slot)
{
    const accept_ctx *a = arg;
    return indexable(a->sp, slot) && mn__filter_match(&a->sp->slots[slot], a->f, a->now);
}

bool mn__space_index_rank(mn_engine_t *e, const mn__space *sp, const float *q,
                          const mn_recall_req_t *req, int64_t now, uint32_t n, uint32_t *slots,
                          uint32_t *n_out, uint64_t *visited)
{
    const mn__space_index *ix = sp->ix;
    if (!ix || !ix->h || req->exact || sp->n_live < threshold(e) || !n) return false;
    accept_ctx a = {sp, &req->filter, now};
    uint32_t ef = req->ef ? req->ef : ix->ef_search;
    if (ef < n) ef = n;
    double s = mn_hnsw_selectivity(ix->h, accept, &a, SELECTIVITY_SAMPLES,
                                   (uint64_t)now ^ ((uint64_t)sp->sid << 32));
    if (s * s * (double)sp->n_live < 4.0 * ef) return false;
    mn_hnsw_hit_t *hits = malloc(n * sizeof *hits);
    if (!hits) return false;
    mn_hnsw_stats_t st = {0};
    size_t m = mn_hnsw_search(ix->h, q, n, ef, accept, &a, hits, &st);
    for (size_t i = 0; i < m; i++)
        slots[i] = hits[i].slot;
    free(hits);
    *n_out = (uint32_t)m;
    *visited = st.visited;
    return true;
}

bool mn__space_index_nearest(mn_engine_t *e, const mn__space *sp, const float *q, uint32_t n,
                             uint32_t **slots, size_t *n_out)
{
    const mn__space_index *ix = sp->ix;
    *slots = NULL;
    *n_out = 0;
    if (!ix || !ix->h || sp->n_live < threshold(e) || !n) return false;
    const uint32_t *ta, *tb;
    size_t na, nb;
    mn__space_index_tail(sp, &ta, &na, &tb, &nb);
    uint32_t *out = malloc((n + na + nb) * sizeof *out);
    mn_hnsw_hit_t *hits = malloc(n * sizeof *hits);
    if (!out || !hits) {
        free(out);
        free(hits);
        return false;
    }
    uint32_t ef = ix->ef_search > n ? ix->ef_search : n;
    size_t m = mn_hnsw_search(ix->h, q, n, ef, NULL, NULL, hits, NULL);
    for (size_t i = 0; i < m; i++)
        out[i] = hits[i].slot;
    if (na) memcpy(out + m, ta, na * sizeof *out);
    if (nb) memcpy(out + m + na, tb, nb * sizeof *out);
    free(hits);
    *slots = out;
    *n_out = m + na + nb;
    return true;
}

void mn__space_index_stats(mn_engine_t *e, const mn__space *sp, mn_space_stats_t *out)
{
    const mn__space_index *ix = sp->ix;
    out->index_nodes = out->index_pending = 0;
    if (!ix) {
        bool due = threshold(e) != UINT32_MAX && sp->n_live >= threshold(e);
        out->index_state = due ? "catching_up" : "none";
        if (due) out->index_pending = sp->n_live;
        return;
    }
    if (ix->failed) {
        out->index_state = "failed";
        return;
    }
    /* done before the node count: nodes + pending never undercounts the inserts */
    size_t done = atomic_load(&((mn__space_index *)ix)->work_done);
    mn_hnsw_info_t info;
    mn_hnsw_get_info(ix->h, &info);
    out->index_nodes = info.live;
    out->index_pending = ix->n_notes + (ix->n_work > done ? ix->n_work - done : 0);
    out->index_state = out->index_pending ? "catching_up" : "ready";
}

/* Saved node -> slot now: the slot of the memory the label names, if it is
 * indexed and its vector is the one the node was inserted with; labels the
 * slot in the new index's table. */
typedef struct load_ctx {
    const mn__space *sp;
    mn__space_index *ix;
} load_ctx;

static uint32_t remap_by_label(void *arg, uint32_t saved, const uint8_t label[MN_HNSW_LABEL_LEN])
{
    (void)saved;
    const load_ctx *c = arg;
    mn_id_t id;
    memcpy(id.b, label, 16);
    uint32_t check, s = mn__space_find(c->sp, &id);
    memcpy(&check, label + 16, 4);
    if (s == UINT32_MAX || !indexable(c->sp, s) || s >= c->ix->cap_labels) return UINT32_MAX;
    uint32_t now = vec_check(c->sp, s);
    if (check && check != now) return UINT32_MAX; /* its vector changed since */
    label_set(c->ix, c->sp, s);
    return s;
}

void mn__space_index_load(mn_engine_t *e, mn__space *sp)
{
    mn__space_index_defaults(e, &sp->def.index); /* spaces created before they were stored */
    if (threshold(e) == UINT32_MAX || sp->n_live < threshold(e)) return;
    mn__space_index *ix = index_new(e, sp, NULL);
    if (!ix || !ix->path || !labels_reserve(ix, sp->n_slots)) {
        if (ix) {
            free(ix->path);
            free(ix->labels);
        }
        free(ix);
        return; /* out of memory: the index thread builds it */
    }
    mn_hnsw_params_t p;
    params_of(e, sp, &p);
    mn_hnsw_t *h = NULL;
    mn_error err = {0};
    uint64_t lsn = 0, dropped = 0;
    int64_t t0 = mn_time_mono_ns();
    load_ctx ctx = {sp, ix};
    mn_err rc =
        mn_hnsw_load(ix->path, &p, &sp->vecs, remap_by_label, &ctx, &lsn, &h, &dropped, &err);
    if (rc || mn_hnsw_reserve(h, sp->n_slots, &err)) {
        if (rc == MN_ERR_NOT_FOUND)
            mn_log_info("space %s: vector index to rebuild in the background (no saved graph)",
                        sp->def.name);
        else
            mn_log_warn("space %s: vector index to rebuild in the background (saved graph "
                        "unusable: %s)",
                        sp->def.name, err.message);
        mn_hnsw_free(h);
        free(ix->path);
        free(ix->labels);
        free(ix);
        return; /* the index thread builds it once it starts */
    }
    ix->h = h;
    ix->failed = false;
    sp->ix = ix;
    atomic_store(&sp->ix_exists, true);
    /* live memories the graph lacks: the index thread adds them, recall ranks them exactly */
    for (uint32_t s = 0; s < sp->n_slots; s++)
        if (indexable(sp, s) && !mn_hnsw_contains(h, s)) mn__space_index_note(sp, s);
    mn_hnsw_info_t info;
    mn_hnsw_get_info(h, &info);
    ix->catch_up = ix->n_notes > 0;
    ix->unsaved = dropped; /* the file still holds the dropped nodes */
    mn_log_info("space %s: vector index loaded in %.2f s: %llu vectors from the saved graph "
                "(lsn %llu, space at %llu), %llu dropped (forgotten or changed since), %zu to add "
                "in the background",
                sp->def.name, (double)(mn_time_mono_ns() - t0) / 1e9, (unsigned long long)info.live,
                (unsigned long long)lsn, (unsigned long long)sp->last_lsn,
                (unsigned long long)dropped, ix->n_notes);
}

void mn__space_index_save_all(mn_engine_t *e)
{
    for (size_t i = 0; i < e->reg.n; i++) {
        mn__space *sp = e->reg.spaces[i];
        mn__space_index *ix = sp->ix;
        if (!ix || !ix->h || !ix->path || atomic_load(&sp->dropped)) continue;
        if (!ix->unsaved && access(ix->path, F_OK) == 0) continue; /* the file is the graph */
        save_graph(e, sp, ix, true);
    }
}

bool mn__space_index_size(const mn__space *sp, uint64_t *nodes, uint64_t *bytes)
{
    if (!sp->ix || !sp->ix->h) return false;
    mn_hnsw_info_t info;
    mn_hnsw_get_info(sp->ix->h, &info);
    *nodes = info.live;
    /* and the persistence labels, 20 bytes a slot (their table, owned by the
     * index thread, is at least that and grows by doubling) */
    *bytes = info.bytes + (uint64_t)sp->n_slots * MN_HNSW_LABEL_LEN;
    return true;
}

void mn__space_index_free(mn__space *sp)
{
    mn__space_index *ix = sp->ix;
    if (!ix) return;
    if (ix->path && atomic_load(&sp->dropped)) unlink(ix->path);
    mn_hnsw_free(ix->h);
    free(ix->notes);
    free(ix->work);
    free(ix->path);
    free(ix->labels);
    free(ix);
    sp->ix = NULL;
}
