/* A space's HNSW index inside the engine.
 *
 * When: a space gets a graph the first time it holds engine.hnsw_threshold
 * live memories (default 2000), built on the commit thread (or at start-up),
 * and keeps it from then on; recall uses it while the space is at or above
 * the threshold and the request does not say "exact".
 *
 * Consistency: the graph reads vectors in place from sp->vecs (no copy; it
 * re-reads the pointer at each operation, so sp->vecs may be reallocated
 * under the write lock). Slots that change under the write lock are noted;
 * mn_space_index_sync replays the notes under the READ lock after the apply,
 * so recalls run alongside the graph inserts, and before the commit thread
 * acknowledges the write, so a remembered memory is found once remember
 * returns. A recall between the apply and the sync may meet a slot freed or
 * given to another memory: every hit is filtered on the slot's live state and
 * re-scored on its current vector, so results stay correct.
 *
 * Persistence: <data_dir>/hnsw/<sid>.hnsw, written at clean shutdown and
 * stamped with the space's last lsn, nodes labelled by memory id. At start-up
 * a file with the same lsn is loaded and renumbered to the new slots; a
 * missing, corrupt or stale file means a rebuild, with progress in the log.
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

typedef struct mn_space_index {
    mn_hnsw *h;
    uint32_t *notes; /* slots changed since the last sync (commit thread only) */
    size_t n_notes, cap_notes;
    bool lost; /* a note could not be kept: rebuild at the next sync */
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

/* Builds a graph of every live vector of sp (lock held, shared is enough). */
static mn_hnsw *build(mn_engine *e, mn_space *sp, const char *why)
{
    mn_hnsw_params p;
    params_of(e, sp, &p);
    mn_hnsw *h = NULL;
    mn_error err = {0};
    if (mn_hnsw_new(&p, &sp->vecs, &h, &err) || mn_hnsw_reserve(h, sp->n_slots, &err)) {
        mn_log_error("space %s: cannot build the vector index: %s", sp->def.name, err.message);
        mn_hnsw_free(h);
        return NULL;
    }
    uint64_t total = sp->n_live, done = 0;
    int64_t t0 = mn_time_mono_ns();
    mn_log_info("space %s: building the vector index over %llu memories (%s)", sp->def.name,
                (unsigned long long)total, why);
    for (uint32_t s = 0; s < sp->n_slots; s++) {
        if (!indexable(sp, s)) continue;
        if (mn_hnsw_insert(h, s, sp->vecs + (size_t)s * sp->def.dim, &err)) {
            mn_log_error("space %s: vector index build failed: %s", sp->def.name, err.message);
            mn_hnsw_free(h);
            return NULL;
        }
        if (++done % PROGRESS_EVERY == 0)
            mn_log_info("space %s: vector index %llu/%llu", sp->def.name, (unsigned long long)done,
                        (unsigned long long)total);
    }
    mn_log_info("space %s: vector index of %llu vectors built in %.1f s", sp->def.name,
                (unsigned long long)done, (double)(mn_time_mono_ns() - t0) / 1e9);
    return h;
}

static mn_space_index *index_new(mn_engine *e, mn_space *sp, mn_hnsw *h)
{
    mn_space_index *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->h = h;
    ix->path = path_of(e, sp);
    mn_hnsw_info info;
    mn_hnsw_get_info(h, &info);
    ix->ef_search = info.params.ef_search;
    return ix;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void mn_space_index_sync(mn_engine *e, mn_space *sp)
{
    if (threshold(e) == UINT32_MAX) return; /* disabled */
    mn_space_index *ix = sp->ix;            /* written only by this (the commit) thread */
    if (!ix) {
        if (sp->n_live < threshold(e)) return;
        pthread_rwlock_rdlock(&sp->lock);
        mn_hnsw *h = build(e, sp, "the space reached the threshold");
        pthread_rwlock_unlock(&sp->lock);
        mn_space_index *nix = h ? index_new(e, sp, h) : NULL;
        if (!nix) {
            mn_hnsw_free(h);
            return;
        }
        pthread_rwlock_wrlock(&sp->lock);
        sp->ix = nix;
        pthread_rwlock_unlock(&sp->lock);
        return;
    }
    if (!ix->n_notes && !ix->lost) return;
    pthread_rwlock_rdlock(&sp->lock);
    if (ix->lost) {
        mn_hnsw *h = build(e, sp, "changes were lost to an allocation failure");
        pthread_rwlock_unlock(&sp->lock);
        pthread_rwlock_wrlock(&sp->lock);
        if (h) {
            mn_hnsw_free(ix->h);
            ix->h = h;
            ix->lost = false;
        }
        ix->n_notes = 0;
        pthread_rwlock_unlock(&sp->lock);
        return;
    }
    /* the final state of each touched slot is what counts */
    qsort(ix->notes, ix->n_notes, sizeof *ix->notes, cmp_u32);
    for (size_t i = 0; i < ix->n_notes; i++) {
        uint32_t s = ix->notes[i];
        if (i && s == ix->notes[i - 1]) continue;
        if (indexable(sp, s)) {
            mn_error err = {0};
            if (mn_hnsw_insert(ix->h, s, sp->vecs + (size_t)s * sp->def.dim, &err)) {
                mn_log_error("space %s: vector index: %s", sp->def.name, err.message);
                ix->lost = true;
            }
        } else {
            mn_hnsw_remove(ix->h, s);
        }
    }
    ix->n_notes = 0;
    pthread_rwlock_unlock(&sp->lock);
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
    if (!h && !(h = build(e, sp, why))) return;
    if (!(sp->ix = index_new(e, sp, h))) mn_hnsw_free(h);
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

void mn_space_index_free(mn_space *sp)
{
    mn_space_index *ix = sp->ix;
    if (!ix) return;
    if (ix->path && atomic_load(&sp->dropped)) unlink(ix->path);
    mn_hnsw_free(ix->h);
    free(ix->notes);
    free(ix->path);
    free(ix);
    sp->ix = NULL;
}
