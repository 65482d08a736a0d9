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
 * graph's hits (mn_space_index_tail). The graph reads vectors in place from
 * sp->vecs (re-reading the pointer at each operation; the array only moves
 * under the write lock). A graph node whose slot was freed or reused before
 * the index thread caught up may still be visited: every hit is filtered on
 * the slot's live state and re-scored on its current vector.
 *
 * Persistence: <data_dir>/hnsw/<sid>.hnsw, written at clean shutdown (after
 * the index thread drained its work) and stamped with the space's last lsn,
 * nodes labelled by memory id. At start-up a file with the same lsn is loaded
 * and renumbered to the new slots; a missing, corrupt or stale file means a
 * background rebuild.
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
#include "hnsw.h"

#define DEFAULT_THRESHOLD 2000u
#define SELECTIVITY_SAMPLES 256u
#define PROGRESS_EVERY 100000u
#define CHUNK_NS 2000000 /* read-lock hold of the index thread between writer turns */

typedef struct mn_space_index {
    mn_hnsw *h;
    /* slots changed since the index thread last took them (appended under the
     * write lock by the applier, taken under the write lock by the index thread) */
    uint32_t *notes;
    size_t n_notes, cap_notes;
    /* the slots being indexed: set and cleared under the write lock, sorted and
     * unique; work[0..work_done) are in the graph already */
    uint32_t *work;
    size_t n_work, cap_work;
    atomic_size_t work_done;
    bool lost; /* a note could not be kept: rebuild at the next turn (write lock) */
    uint32_t ef_search;
    char *path;
} mn_space_index;

static uint32_t threshold(const mn_engine *e)
{
    return e->opts.hnsw_threshold ? e->opts.hnsw_threshold : DEFAULT_THRESHOLD;
}

static void params_of(const mn_engine *e, const mn_space *sp, mn_hnsw_params *p)
{
    memset(p, 0, sizeof *p);
    p->dim = sp->def.dim;
    p->metric = sp->def.metric;
    p->M = e->opts.hnsw_m;
    p->ef_construction = e->opts.hnsw_ef_construction;
    p->ef_search = e->opts.hnsw_ef_search;
    p->quantize = e->opts.hnsw_quantize;
    p->seed = sp->sid;
}

static char *path_of(const mn_engine *e, const mn_space *sp)
{
    size_t n = strlen(e->data_dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/hnsw/%u.hnsw", e->data_dir, sp->sid);
    return p;
}

static bool indexable(const mn_space *sp, uint32_t slot)
{
    return slot < sp->n_slots && sp->slots[slot].state == SLOT_LIVE && sp->slots[slot].has_vec;
}

void mn_space_index_note(mn_space *sp, uint32_t slot)
{
    mn_space_index *ix = sp->ix;
    if (!ix) return;
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

static mn_space_index *index_new(mn_engine *e, mn_space *sp, mn_hnsw *h)
{
    mn_space_index *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->h = h;
    ix->path = path_of(e, sp);
    atomic_init(&ix->work_done, 0);
    mn_hnsw_info info;
    mn_hnsw_get_info(h, &info);
    ix->ef_search = info.params.ef_search;
    return ix;
}

/* An empty graph for sp (write lock held). */
static mn_hnsw *graph_new(mn_engine *e, mn_space *sp)
{
    mn_hnsw_params p;
    params_of(e, sp, &p);
    mn_hnsw *h = NULL;
    mn_error err = {0};
    if (mn_hnsw_new(&p, &sp->vecs, &h, &err) || mn_hnsw_reserve(h, sp->n_slots, &err)) {
        mn_log_error("space %s: cannot create the vector index: %s", sp->def.name, err.message);
        mn_hnsw_free(h);
        return NULL;
    }
    return h;
}

/* work := every indexed slot (write lock held). */
static bool work_all(mn_space *sp, mn_space_index *ix)
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

void mn_space_index_sync(mn_engine *e, mn_space *sp)
{
    if (threshold(e) == UINT32_MAX) return; /* disabled */
    /* n_live is written by the applier (this thread, or load before the threads run) */
    if (sp->n_live < threshold(e) && !atomic_load(&sp->ix_exists)) return;
    mn_indexer_kick(e, sp);
}

/* Takes the space's pending changes as work (write lock held); creates the
 * graph first when there is none. Returns false when there is nothing to do. */
static bool take_work(mn_engine *e, mn_space *sp, bool *building)
{
    mn_space_index *ix = sp->ix;
    *building = false;
    if (!ix) {
        if (sp->n_live < threshold(e)) return false;
        mn_hnsw *h = graph_new(e, sp);
        if (!h) return false;
        if (!(ix = index_new(e, sp, h)) || !work_all(sp, ix)) {
            if (ix) free(ix->path);
            free(ix);
            mn_hnsw_free(h);
            return false;
        }
        sp->ix = ix;
        atomic_store(&sp->ix_exists, true);
        *building = true;
    } else if (ix->lost) {
        mn_hnsw *h = graph_new(e, sp);
        if (!h || !work_all(sp, ix)) {
            mn_hnsw_free(h);
            ix->n_work = 0;
            return false;
        }
        mn_hnsw_free(ix->h);
        ix->h = h;
        ix->lost = false;
        ix->n_notes = 0;
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

void mn_space_index_work(mn_engine *e, mn_space *sp)
{
    bool building = false;
    pthread_rwlock_wrlock(&sp->lock);
    bool any = take_work(e, sp, &building);
    mn_space_index *ix = sp->ix; /* only this thread replaces it */
    size_t n = any ? ix->n_work : 0;
    pthread_rwlock_unlock(&sp->lock);
    if (!any) return;
    int64_t t0 = mn_time_mono_ns();
    if (building)
        mn_log_info("space %s: building the vector index over %zu memories", sp->def.name, n);
    size_t i = 0, next_progress = PROGRESS_EVERY;
    while (i < n) {
        pthread_rwlock_rdlock(&sp->lock);
        int64_t c0 = mn_time_mono_ns();
        do {
            uint32_t s = ix->work[i];
            if (indexable(sp, s)) {
                mn_error err = {0};
                if (mn_hnsw_insert(ix->h, s, sp->vecs + (size_t)s * sp->def.dim, &err)) {
                    mn_log_error("space %s: vector index: %s", sp->def.name, err.message);
                    ix->lost = true; /* a bool only this thread reads outside the write lock */
                }
            } else {
                mn_hnsw_remove(ix->h, s);
            }
            atomic_store_explicit(&ix->work_done, ++i, memory_order_release);
        } while (i < n && mn_time_mono_ns() - c0 < CHUNK_NS);
        pthread_rwlock_unlock(&sp->lock);
        if (building && i >= next_progress) {
            mn_log_info("space %s: vector index %zu/%zu", sp->def.name, i, n);
            next_progress += PROGRESS_EVERY;
        }
        if (atomic_load(&sp->dropped)) break;
    }
    if (building)
        mn_log_info("space %s: vector index of %zu vectors built in %.1f s", sp->def.name, n,
                    (double)(mn_time_mono_ns() - t0) / 1e9);
    pthread_rwlock_wrlock(&sp->lock);
    ix->n_work = 0;
    atomic_store(&ix->work_done, 0);
    bool more = ix->n_notes > 0 || ix->lost;
    pthread_rwlock_unlock(&sp->lock);
    if (more) mn_indexer_kick(e, sp);
}

void mn_space_index_tail(const mn_space *sp, const uint32_t **a, size_t *na, const uint32_t **b,
                         size_t *nb)
{
    const mn_space_index *ix = sp->ix;
    *a = *b = NULL;
    *na = *nb = 0;
    if (!ix) return;
    *a = ix->notes;
    *na = ix->n_notes;
    size_t done = atomic_load_explicit(&((mn_space_index *)ix)->work_done, memory_order_acquire);
    if (done < ix->n_work) {
        *b = ix->work + done;
        *nb = ix->n_work - done;
    }
}

typedef struct accept_ctx {
    const mn_space *sp;
    const mn_filter_t *f;
    int64_t now;
} accept_ctx;

static bool accept(void *arg, uint32_t slot)
{
    const accept_ctx *a = arg;
    return indexable(a->sp, slot) && mn_filter_match(&a->sp->slots[slot], a->f, a->now);
}

bool mn_space_index_rank(mn_engine *e, const mn_space *sp, const float *q, const mn_recall_req *req,
                         int64_t now, uint32_t n, uint32_t *slots, uint32_t *n_out,
                         uint64_t *visited)
{
    const mn_space_index *ix = sp->ix;
    if (!ix || !ix->h || req->exact || sp->n_live < threshold(e) || !n) return false;
    accept_ctx a = {sp, &req->filter, now};
    uint32_t ef = req->ef ? req->ef : ix->ef_search;
    if (ef < n) ef = n;
    double s = mn_hnsw_selectivity(ix->h, accept, &a, SELECTIVITY_SAMPLES,
                                   (uint64_t)now ^ ((uint64_t)sp->sid << 32));
    if (s * s * (double)sp->n_live < 4.0 * ef) return false;
    mn_hnsw_hit *hits = malloc(n * sizeof *hits);
    if (!hits) return false;
    mn_hnsw_stats st = {0};
    size_t m = mn_hnsw_search(ix->h, q, n, ef, accept, &a, hits, &st);
    for (size_t i = 0; i < m; i++)
        slots[i] = hits[i].slot;
    free(hits);
    *n_out = (uint32_t)m;
    *visited = st.visited;
    return true;
}

bool mn_space_index_nearest(mn_engine *e, const mn_space *sp, const float *q, uint32_t n,
                            uint32_t **slots, size_t *n_out)
{
    const mn_space_index *ix = sp->ix;
    *slots = NULL;
    *n_out = 0;
    if (!ix || !ix->h || sp->n_live < threshold(e) || !n) return false;
    const uint32_t *ta, *tb;
    size_t na, nb;
    mn_space_index_tail(sp, &ta, &na, &tb, &nb);
    uint32_t *out = malloc((n + na + nb) * sizeof *out);
    mn_hnsw_hit *hits = malloc(n * sizeof *hits);
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

void mn_space_index_stats(mn_engine *e, const mn_space *sp, mn_space_stats *out)
{
    const mn_space_index *ix = sp->ix;
    out->index_nodes = out->index_pending = 0;
    if (!ix) {
        bool due = threshold(e) != UINT32_MAX && sp->n_live >= threshold(e);
        out->index_state = due ? "catching_up" : "none";
        if (due) out->index_pending = sp->n_live;
        return;
    }
    mn_hnsw_info info;
    mn_hnsw_get_info(ix->h, &info);
    out->index_nodes = info.live;
    size_t done = atomic_load(&((mn_space_index *)ix)->work_done);
    out->index_pending = ix->n_notes + (ix->n_work > done ? ix->n_work - done : 0);
    out->index_state = out->index_pending ? "catching_up" : "ready";
}

/* Saved node -> slot now, by memory id. */
static uint32_t remap_by_id(void *arg, uint32_t saved, const uint8_t label[16])
{
    (void)saved;
    const mn_space *sp = arg;
    mn_id_t id;
    memcpy(id.b, label, 16);
    uint32_t s = mn_space_find(sp, &id);
    return s != UINT32_MAX && indexable(sp, s) ? s : UINT32_MAX;
}

static void label_by_id(void *arg, uint32_t slot, uint8_t label[16])
{
    const mn_space *sp = arg;
    memcpy(label, sp->slots[slot].id.b, 16);
}

void mn_space_index_load(mn_engine *e, mn_space *sp)
{
    if (threshold(e) == UINT32_MAX || sp->n_live < threshold(e)) return;
    char *path = path_of(e, sp);
    if (!path) return;
    mn_hnsw_params p;
    params_of(e, sp, &p);
    mn_hnsw *h = NULL;
    mn_error err = {0};
    uint64_t lsn = 0;
    int64_t t0 = mn_time_mono_ns();
    mn_err rc = mn_hnsw_load(path, &p, &sp->vecs, remap_by_id, sp, &lsn, &h, &err);
    char why[MN_ERROR_MSG_MAX + 64];
    if (rc == MN_ERR_NOT_FOUND) {
        snprintf(why, sizeof why, "no saved graph");
    } else if (rc) {
        snprintf(why, sizeof why, "saved graph unusable: %s", err.message);
    } else {
        uint64_t want = 0;
        for (uint32_t s = 0; s < sp->n_slots; s++)
            want += indexable(sp, s);
        mn_hnsw_info info;
        mn_hnsw_get_info(h, &info);
        if (lsn != sp->last_lsn || info.live != want) {
            snprintf(why, sizeof why, "saved graph is stale (lsn %llu, space at %llu)",
                     (unsigned long long)lsn, (unsigned long long)sp->last_lsn);
            mn_hnsw_free(h);
            h = NULL;
        } else {
            mn_log_info("space %s: vector index of %llu vectors loaded in %.2f s", sp->def.name,
                        (unsigned long long)info.live, (double)(mn_time_mono_ns() - t0) / 1e9);
        }
    }
    free(path);
    if (!h) { /* the index thread builds it once it starts */
        mn_log_info("space %s: vector index to rebuild in the background (%s)", sp->def.name, why);
        return;
    }
    if (!(sp->ix = index_new(e, sp, h)))
        mn_hnsw_free(h);
    else
        atomic_store(&sp->ix_exists, true);
}

void mn_space_index_save_all(mn_engine *e)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/hnsw", e->data_dir);
    bool made = false;
    for (size_t i = 0; i < e->n_spaces; i++) {
        mn_space *sp = e->spaces[i];
        mn_space_index *ix = sp->ix;
        if (!ix || !ix->h || !ix->path || atomic_load(&sp->dropped)) continue;
        if (!made && mkdir(dir, 0755) && errno != EEXIST) {
            mn_log_error("cannot create %s: %s", dir, strerror(errno));
            return;
        }
        made = true;
        mn_error err = {0};
        pthread_rwlock_rdlock(&sp->lock);
        if (mn_hnsw_save(ix->h, ix->path, sp->last_lsn, label_by_id, sp, &err))
            mn_log_error("space %s: vector index not saved (rebuilt at start-up): %s", sp->def.name,
                         err.message);
        pthread_rwlock_unlock(&sp->lock);
    }
}

bool mn_space_index_size(const mn_space *sp, uint64_t *nodes, uint64_t *bytes)
{
    if (!sp->ix || !sp->ix->h) return false;
    mn_hnsw_info info;
    mn_hnsw_get_info(sp->ix->h, &info);
    *nodes = info.live;
    *bytes = info.bytes;
    return true;
}

void mn_space_index_free(mn_space *sp)
{
    mn_space_index *ix = sp->ix;
    if (!ix) return;
    if (ix->path && atomic_load(&sp->dropped)) unlink(ix->path);
    mn_hnsw_free(ix->h);
    free(ix->notes);
    free(ix->work);
    free(ix->path);
    free(ix);
    sp->ix = NULL;
}
