/* Background work that follows reads and writes, off their paths, on one thread:
 *
 * - semantic linking: each newly remembered memory is linked to its nearest
 *   neighbours (similarity >= link_threshold, at most link_max), and in a space
 *   with a dedup_threshold, to the canonical memory of its best older neighbour
 *   at or above it by a duplicate edge (assoc.c). A remember
 *   returns as soon as it is durable; the links are found here under the
 *   space's read lock and committed as one associate WAL entry per batch.
 * - reinforcement: memories recalled with reinforce get a new stability (the
 *   spacing effect, decay.c), committed as one reinforce WAL entry per batch,
 *   without fsync: many recalls share one write, never one fsync per hit. A
 *   reinforce job waits up to REINFORCE_COALESCE_MS for more (or until
 *   BG_BATCH are queued), so a burst of reinforcing recalls becomes one entry
 *   per window or per BG_BATCH hits; at shutdown the queued ones are written.
 *
 * - repair: a space this node was promoted to lead re-derives the semantic memories
 *   its old primary left un-re-derived (repair.c).
 * - scheduled consolidation: every engine.consolidate_interval_ms (the first
 *   run one interval after start), every space is consolidated
 *   (consolidate.c). It runs here rather than on the expiry sweeper so that it
 *   runs whether or not the sweeper does; link and reinforce jobs wait
 *   meanwhile.
 *
 * Links and reinforcements are derived from durable data and computed by this
 * node, so the WAL carries the results and replicas and restarts agree. If the
 * queue overflows (BG_QUEUE_MAX) jobs are dropped and counted rather than
 * slowing callers. */
#include "background.h"

#include "assoc.h"
#include "commit.h"
#include "decay.h"
#include "engine_internal.h"
#include "indexer.h"
#include "repair.h"
#include "replica.h"
#include "space_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BG_QUEUE_MAX 100000
#define BG_BATCH 256
#define REINFORCE_COALESCE_MS 50
/* Without a vector index, a space larger than this is not auto-linked (each
 * link would scan it: more than linking is worth, so jobs are dropped and
 * counted); with one, neighbours come from the graph. */
#define LINK_SCAN_MAX 50000

typedef struct link_job {
    mn__space *sp; /* referenced while queued */
    mn_id_t id;
    uint8_t kind;  /* BG_LINK | BG_REINFORCE | BG_REPAIR (id unused) */
    int64_t at_ms; /* reinforce: when the memory was recalled */
} link_job;

enum { BG_LINK = 0, BG_REINFORCE = 1, BG_REPAIR = 2 };

/* The job queue and the thread that drains it. */
struct mn__linker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* work arrived or stop */
    pthread_cond_t idle_cv; /* queue drained */
    link_job *jobs;
    size_t n, cap, busy;
    bool stop;
};

static void enqueue(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n, uint8_t kind,
                    int64_t at_ms)
{
    struct mn__linker *lk = e->linker;
    if (!lk || !n) return;
    pthread_mutex_lock(&lk->mu);
    for (size_t i = 0; i < n; i++) {
        if (lk->n >= BG_QUEUE_MAX) {
            atomic_fetch_add(&e->n_links_dropped, n - i);
            break;
        }
        if (lk->n == lk->cap) {
            size_t nc = lk->cap ? lk->cap * 2 : 1024;
            link_job *grown = realloc(lk->jobs, nc * sizeof *grown);
            if (!grown) {
                atomic_fetch_add(&e->n_links_dropped, n - i);
                break;
            }
            lk->jobs = grown;
            lk->cap = nc;
        }
        mn__space_ref(sp);
        lk->jobs[lk->n++] = (link_job){sp, ids[i], kind, at_ms};
    }
    pthread_cond_signal(&lk->work_cv);
    pthread_mutex_unlock(&lk->mu);
}

void mn__linker_enqueue(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n)
{
    if (e->opts.link_max) enqueue(e, sp, ids, n, BG_LINK, 0);
}

void mn__reinforce_enqueue(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n,
                           int64_t at_ms)
{
    enqueue(e, sp, ids, n, BG_REINFORCE, at_ms);
}

void mn__repair_enqueue(mn_engine_t *e, mn__space *sp)
{
    mn_id_t none = {0};
    enqueue(e, sp, &none, 1, BG_REPAIR, 0);
}

/* New strengths for recalled memories of sp, committed as one entry. */
static void reinforce_space(mn_engine_t *e, mn__space *sp, const link_job *jobs, size_t n)
{
    if (mn__space_is_replica(sp)) return; /* its primary reinforces */
    mn_strength_t *items = malloc(n * sizeof *items);
    if (!items) return;
    size_t m = 0;
    pthread_rwlock_rdlock(&sp->lock);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = mn__space_find(sp, &jobs[i].id);
        if (slot == UINT32_MAX) continue;
        /* a memory recalled twice in one batch is reinforced from its first new state */
        mn_strength_t cur;
        size_t j;
        for (j = 0; j < m && mn_id_cmp(&items[j].id, &jobs[i].id); j++) {
        }
        if (j < m)
            cur = items[j];
        else
            mn__slot_strength(&sp->slots[slot], e->opts.initial_stability_days, &cur);
        mn_strength_t next = mn__reinforce(&cur, jobs[i].at_ms);
        if (j < m)
            items[j] = next;
        else
            items[m++] = next;
    }
    pthread_rwlock_unlock(&sp->lock);
    if (m) {
        /* without fsync: a crash may forget a reinforcement, never a memory */
        mn__pending p;
        mn__pending_init(&p, MN_WAL_OP_REINFORCE, sp, false);
        p.entry.op.reinforce.items = items;
        p.entry.op.reinforce.n = m;
        if (mn__commit_submit(e, &p) == MN_OK) atomic_fetch_add(&e->n_reinforced, m);
    }
    free(items);
}

/* Links the jobs of one space (all jobs[i].sp == sp). */
static void link_space(mn_engine_t *e, mn__space *sp, const link_job *jobs, size_t n)
{
    if (mn__space_is_replica(sp)) return; /* its primary links, and ships the links */
    pthread_rwlock_rdlock(&sp->lock);
    bool too_big = sp->n_live > LINK_SCAN_MAX && !atomic_load(&sp->ix_exists);
    pthread_rwlock_unlock(&sp->lock);
    if (too_big) {
        atomic_fetch_add(&e->n_links_dropped, n);
        return;
    }
    mn_edge_t *edges = NULL;
    size_t n_edges = 0, cap = 0;
    int64_t now = mn__now(e);
    uint32_t dim = sp->def.dim;
    float *v = malloc(dim * sizeof(float));
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        /* the read lock is taken per memory: the commit thread needs the write
         * lock between scans and must not wait for a whole batch */
        pthread_rwlock_rdlock(&sp->lock);
        uint32_t slot = mn__space_find(sp, &jobs[i].id);
        if (slot == UINT32_MAX || !sp->slots[slot].has_vec) { /* forgotten meanwhile */
            pthread_rwlock_unlock(&sp->lock);
            continue;
        }
        mn_memory_t m;
        mn_memory_init(&m);
        m.id = jobs[i].id;
        memcpy(v, sp->vecs + (size_t)slot * dim, dim * sizeof(float));
        m.embedding = v;
        m.dim = dim;
        /* with a graph: its nearest (one more than link_max: the memory itself) */
        uint32_t *cands = NULL;
        size_t n_cands = 0;
        bool indexed = mn__space_index_nearest(e, sp, v, e->opts.link_max + 1, &cands, &n_cands);
        if (!indexed && sp->n_live > LINK_SCAN_MAX) {
            pthread_rwlock_unlock(&sp->lock);
            atomic_fetch_add(&e->n_links_dropped, 1);
            continue;
        }
        size_t from = n_edges;
        mn_err rc = mn__space_autolink(sp, &m, NULL, 0, indexed ? cands : NULL, n_cands,
                                       e->opts.link_threshold, e->opts.link_max, 0, now, &edges,
                                       &n_edges, &cap);
        if (!rc)
            rc = mn__space_link_duplicate(sp, &m.id, sp->def.dedup_threshold, from, &edges,
                                          &n_edges, &cap);
        pthread_rwlock_unlock(&sp->lock);
        free(cands);
        if (rc) break;
    }
    free(v);
    if (n_edges) {
        /* derived data, without fsync: a crash loses at most links, never memories */
        mn__pending p;
        mn__pending_init(&p, MN_WAL_OP_ASSOCIATE, sp, false);
        p.entry.op.associate.edges = edges;
        p.entry.op.associate.n = n_edges;
        if (mn__commit_submit(e, &p) == MN_OK) atomic_fetch_add(&e->n_links, n_edges);
    }
    free(edges);
}

/* Scheduled consolidation of every space. */
static void consolidate_all(mn_engine_t *e)
{
    mn_space_def_t *defs;
    size_t n;
    if (mn_engine_space_list(e, &defs, &n, NULL)) return;
    for (size_t i = 0; i < n; i++) {
        mn_consolidate_result_t r;
        mn_error err = {0};
        if (mn_engine_consolidate(e, defs[i].name, &e->opts.consolidate, &r, &err)) {
            /* gone meanwhile, or a replica here (its primary consolidates) */
            if (err.code != MN_ERR_NOT_FOUND && err.code != MN_ERR_UNAVAILABLE)
                mn_log_warn("scheduled consolidation of %s failed: %s", defs[i].name, err.message);
            continue;
        }
        if (r.created || r.updated || r.retired)
            mn_log_info("consolidated %s: %u new, %u updated, %u retired semantic memories",
                        defs[i].name, r.created, r.updated, r.retired);
        free(r.ids);
    }
    free(defs);
}

/* Shutdown: the queued reinforcements stay to be written, the link jobs go
 * (mu held). Returns how many jobs are left. */
static size_t keep_reinforcements(struct mn__linker *lk)
{
    size_t m = 0;
    for (size_t i = 0; i < lk->n; i++)
        if (lk->jobs[i].kind == BG_REINFORCE)
            lk->jobs[m++] = lk->jobs[i];
        else
            mn__space_unref(lk->jobs[i].sp);
    lk->n = m;
    return m;
}

/* Runs a batch of jobs: consecutive runs of one space and kind together (jobs
 * arrive in order), each job's space released after. */
static void run_batch(mn_engine_t *e, link_job *batch, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && batch[j].sp == batch[i].sp && batch[j].kind == batch[i].kind)
            j++;
        if (!atomic_load(&batch[i].sp->dropped)) {
            if (batch[i].kind == BG_LINK)
                link_space(e, batch[i].sp, batch + i, j - i);
            else if (batch[i].kind == BG_REPAIR)
                mn__repair_space(e, batch[i].sp);
            else
                reinforce_space(e, batch[i].sp, batch + i, j - i);
        }
        for (size_t x = i; x < j; x++)
            mn__space_unref(batch[x].sp);
        i = j;
    }
}

static void *linker_main(void *arg)
{
    mn_engine_t *e = arg;
    struct mn__linker *lk = e->linker;
    link_job *batch = malloc(BG_BATCH * sizeof *batch);
    int64_t interval_ms = e->opts.consolidate_interval_ms;
    int64_t next_run_ms = interval_ms > 0 ? mn__mono_ms() + interval_ms : 0;
    int64_t coalesce_until_ms = 0; /* a reinforce job heads the queue: wait for more until then */
    pthread_mutex_lock(&lk->mu);
    while (batch) {
        while (!lk->n && !lk->stop && !(next_run_ms && mn__mono_ms() >= next_run_ms))
            mn__cond_wait_until(&lk->work_cv, &lk->mu, next_run_ms);
        if (lk->stop) {
            if (!keep_reinforcements(lk)) break;
            coalesce_until_ms = 0;
        }
        if (!lk->stop && next_run_ms && mn__mono_ms() >= next_run_ms) {
            pthread_mutex_unlock(&lk->mu);
            consolidate_all(e);
            next_run_ms = mn__mono_ms() + interval_ms;
            pthread_mutex_lock(&lk->mu);
            continue;
        }
        if (!lk->stop && lk->jobs[0].kind == BG_REINFORCE && lk->n < BG_BATCH) {
            int64_t now_ms = mn__mono_ms();
            if (!coalesce_until_ms) coalesce_until_ms = now_ms + REINFORCE_COALESCE_MS;
            if (now_ms < coalesce_until_ms) {
                mn__cond_wait_until(&lk->work_cv, &lk->mu,
                                    next_run_ms && next_run_ms < coalesce_until_ms
                                        ? next_run_ms
                                        : coalesce_until_ms);
                continue;
            }
        }
        coalesce_until_ms = 0;
        size_t n = lk->n < BG_BATCH ? lk->n : BG_BATCH;
        memcpy(batch, lk->jobs, n * sizeof *batch);
        memmove(lk->jobs, lk->jobs + n, (lk->n - n) * sizeof *batch);
        lk->n -= n;
        lk->busy = n;
        pthread_mutex_unlock(&lk->mu);
        run_batch(e, batch, n);
        pthread_mutex_lock(&lk->mu);
        lk->busy = 0;
        if (!lk->n) pthread_cond_broadcast(&lk->idle_cv);
    }
    pthread_mutex_unlock(&lk->mu);
    free(batch);
    return NULL;
}

static void linker_free(struct mn__linker *lk)
{
    for (size_t i = 0; i < lk->n; i++)
        mn__space_unref(lk->jobs[i].sp);
    free(lk->jobs);
    pthread_mutex_destroy(&lk->mu);
    pthread_cond_destroy(&lk->work_cv);
    pthread_cond_destroy(&lk->idle_cv);
    free(lk);
}

mn_err mn__linker_start(mn_engine_t *e, mn_error *err)
{
    struct mn__linker *lk = calloc(1, sizeof *lk);
    if (!lk) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&lk->mu, NULL);
    pthread_cond_init(&lk->work_cv, NULL);
    pthread_cond_init(&lk->idle_cv, NULL);
    e->linker = lk;
    if (pthread_create(&lk->thread, NULL, linker_main, e)) {
        e->linker = NULL;
        linker_free(lk);
        return mn_error_set(err, MN_ERR_IO, "cannot start the background thread");
    }
    return MN_OK;
}

void mn__linker_stop(mn_engine_t *e)
{
    struct mn__linker *lk = e->linker;
    if (!lk) return;
    pthread_mutex_lock(&lk->mu);
    lk->stop = true;
    pthread_cond_signal(&lk->work_cv);
    pthread_mutex_unlock(&lk->mu);
    pthread_join(lk->thread, NULL);
    e->linker = NULL;
    linker_free(lk);
}

void mn_engine_wait_background(mn_engine_t *e)
{
    struct mn__linker *lk = e->linker;
    if (lk) {
        pthread_mutex_lock(&lk->mu);
        while (lk->n || lk->busy)
            pthread_cond_wait(&lk->idle_cv, &lk->mu);
        pthread_mutex_unlock(&lk->mu);
    }
    mn__indexer_wait(e);
}
